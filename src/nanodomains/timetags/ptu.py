r"""PicoQuant unified TTTR (PTU) files: chunked reading (via ptufile) with verification, and writing.

Reading PTU
-----------
The records of PicoQuant devices carry only a few bits of time; the counter wraps and
the file holds *overflow* records. HydraHarp v2, TimeHarp 260 and MultiHarp overflow
records carry the number of wraps they stand for (one record may stand for up to
2**25 - 1 wraps), whereas PicoHarp records stand for one wrap each (PicoQuant, "PTU
file format demos", github.com/PicoQuant/PicoQuant-Time-Tagged-File-Format-Demos). A
reader that counts each HydraHarp overflow record as one wrap loses time: the real
file ``hydraharp_v20_t2.ptu`` holds 5.00 s, not 4.35 s. Decoding is delegated to
ptufile (C. Gohlke, doi 10.5281/zenodo.10120021), which handles both conventions.

:func:`iter_ptu_chunks` reads the raw 32-bit records block by block from disk (memory
bounded by ``chunk_records``) and decodes each block with ptufile. A block decoded on
its own starts from time zero; the time base carried across blocks is the one the
block's last overflow record establishes. It is derived from ptufile's own decoding
of that record (decoding the record once and twice gives its increment and its
payload), so no per-device wrap constant is hard-coded here. In T3 mode photons of
the last sync period of a block are held back and merged into the next block, so the
concatenated chunks are globally time ordered.

Verification (issue 18): the records read are those the file holds (its size after the
header), not the header's ``TTResult_NumberOfRecords``; a disagreement is a warning
with both numbers. Photon times must not decrease within a channel after overflow
correction, micro times must lie within the sync period, and photons on inputs the
header says the device does not have (``HW_InpChannels``) are counted as corrupt
records: a header whose tag lengths are corrupted shifts the record offset, and the
header bytes then decode as photons in impossible channels.

Writing PTU
-----------
:func:`write_ptu` writes PicoQuant unified TTTR files (magic ``PQTTTR``, tag header of
48-byte tag records: 32-byte ident, int32 index, uint32 type code, 8-byte value or
length + payload) with HydraHarp v2 records (32 bit, little endian)::

    T2: special(1) | channel(6) | time tag(25)            wrap 2^25 units of 1 ps
    T3: special(1) | channel(6) | dtime(15) | nsync(10)   wrap 1024 syncs

Overflow records (special = 1, channel = 63) carry the number of wraps they stand for
(the format allows 1 .. 2^25-1 in T2 and 1 .. 1023 in T3; HydraHarp v2 firmware writes
small counts). T2 records here carry at most 127 wraps, because ptufile 2026.2 decodes
only the low 7 bits of a T2 overflow count (PicoQuant's demo reads all 25); longer gaps
get several overflow records, which every reader sums correctly.

Examples
--------
>>> import numpy as np, tempfile, pathlib
>>> from nanodomains.timetags import PhotonStream, read_photons
>>> s = PhotonStream(np.array([5, 900, 1200]), np.array([0, 1, 0]), duration_s=1e-9)
>>> s.channel_counts()
{0: 2, 1: 1}
>>> path = pathlib.Path(tempfile.mkdtemp()) / "tags.ptu"
>>> back = read_photons(write_ptu(s, path))
>>> back.times_ps.tolist(), back.channels.tolist()
([5, 900, 1200], [0, 1, 0])
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np

from nanodomains import __version__
from nanodomains.errors import FileFormatError, InputError
from nanodomains.files import atomic_path
from nanodomains.timetags.blocks import raw_blocks
from nanodomains.timetags.stream import PhotonStream, StreamChecks, concat_chunks, merge_held, record_count_warning

__all__ = [
    "read_ptu",
    "iter_ptu_chunks",
    "ptu_facts",
    "write_ptu",
    "encode_hydraharp_t2",
    "encode_hydraharp_t3",
]

RECTYPE_HH2_T2 = 0x01010204
RECTYPE_HH2_T3 = 0x01010304
T2_WRAP = 1 << 25
T3_WRAP = 1 << 10
# Wraps per overflow record. The format allows 2^25 - 1 (T2) and 1023 (T3), but ptufile
# (2026.2) decodes only the low 7 bits of a HydraHarp v2 T2 overflow count, so T2 records
# carry at most 127 wraps; a longer gap gets several records (valid for every reader).
T2_MAX_WRAPS_PER_RECORD = 127
T3_MAX_WRAPS_PER_RECORD = 1023


# ---------------------------------------------------------------------------------
# PTU


@contextlib.contextmanager
def _quiet_ptufile():
    """Keep ptufile's header-parsing log lines off stderr (issue 18).

    ptufile logs user-header tags with indices out of order ("tag index out of order",
    seen in PicoQuant's own sample files) at ERROR level although the data are
    unaffected; what matters for the data (record counts, times) is checked here.
    """
    logger = logging.getLogger("ptufile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _open_ptu(path: Path):
    with _quiet_ptufile():
        return _open_ptu_quiet(path)


def _open_ptu_quiet(path: Path):
    import ptufile

    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    try:
        ptu = ptufile.PtuFile(path)
    except FileFormatError:
        raise
    except Exception as exc:  # PqFileError (ValueError), struct errors on truncation
        raise FileFormatError(f"{path}: not a readable PicoQuant PTU file ({exc})") from exc
    try:
        bits = int(ptu.tags.get("TTResultFormat_BitsPerRecord", 32))
        if bits not in (0, 32):
            raise FileFormatError(f"{path}: TTResultFormat_BitsPerRecord = {bits}, expected 32")
        n_declared = int(ptu.tags.get("TTResult_NumberOfRecords", -1))
        size = path.stat().st_size
        offset = int(ptu.record_offset)
        if not 0 < offset <= size:
            raise FileFormatError(f"{path}: header ends at byte {offset}, beyond the file ({size} bytes)")
        n_present = (size - offset) // 4
        warnings = record_count_warning(path, n_declared, n_present, (size - offset) - 4 * n_present)
        if n_present == 0:
            raise FileFormatError(f"{path}: holds no TTTR records (header of {offset} bytes, file of {size})")
        mode = int(ptu.tags["Measurement_Mode"])
        if mode not in (2, 3):
            raise FileFormatError(f"{path}: Measurement_Mode = {mode}, expected 2 (T2) or 3 (T3)")
        ptu.tags["MeasDesc_GlobalResolution"]
    except FileFormatError:
        ptu.close()
        raise
    except KeyError as exc:
        ptu.close()
        raise FileFormatError(f"{path}: PTU header lacks tag {exc}") from exc
    except (TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
        ptu.close()  # a tag of the wrong type or shape: the header is corrupt
        raise FileFormatError(f"{path}: corrupt PTU header ({type(exc).__name__}: {exc})") from exc
    return ptu, n_present, warnings


def _overflow_base_after(ptu, raw_record: np.uint32, decoded_time: int) -> int:
    """Time base (in record time units) established by an overflow record.

    ``decoded_time`` is ptufile's time of the record inside its block. Decoding the
    record alone and twice in a row gives its wrap increment and its payload, so the
    base after it follows without device-specific constants.
    """
    once = ptu.decode_records(np.array([raw_record], dtype=np.uint32))["time"]
    twice = ptu.decode_records(np.array([raw_record, raw_record], dtype=np.uint32))["time"]
    t1, t2 = int(once[0]), int(twice[1])
    return int(decoded_time) - (2 * t1 - t2)


def _check_resolutions(ptu, path: Path, is_t3: bool) -> list[str]:
    """Header fields that must agree with each other (a corrupted one changes every time silently).

    T2: the time-tag unit (``MeasDesc_GlobalResolution``) is the device's base resolution.
    T3: the global resolution is the sync period, 1 / ``TTResult_SyncRate``, and the
    micro-time bin is the base resolution times a power of two (the binning). PicoQuant
    software writes these consistently to double precision; a disagreement beyond 1e-9
    is a warning, beyond 1e-3 (1 % for the measured sync rate) an error.
    """
    tags = ptu.tags
    warnings: list[str] = []

    def agree(value, expected, what, error_rel):
        rel = abs(value / expected - 1.0)
        if rel > error_rel:
            raise FileFormatError(f"{path}: header inconsistent: {what} (relative difference {rel:.2g}; corrupt header?)")
        if rel > 1e-9:
            warnings.append(f"{path}: header fields disagree slightly: {what} (relative difference {rel:.2g})")

    glob = float(tags["MeasDesc_GlobalResolution"])
    base = tags.get("HW_BaseResolution")
    base = float(base) if isinstance(base, (int, float)) and base > 0 else None
    if not is_t3:
        if base is not None:
            agree(glob, base, f"T2 time unit MeasDesc_GlobalResolution {glob!r} s vs HW_BaseResolution {base!r} s",
                  1e-3)
        return warnings
    rate = tags.get("TTResult_SyncRate")
    if isinstance(rate, (int, float)) and rate > 0:
        agree(glob * rate, 1.0, f"sync period MeasDesc_GlobalResolution {glob!r} s vs 1 / TTResult_SyncRate "
                                f"({rate} Hz)", 0.01)
    res = float(ptu.tcspc_resolution)
    if base is not None and res > 0:
        k = round(math.log2(res / base))
        agree(res, base * 2**k, f"micro-time bin {res!r} s vs HW_BaseResolution {base!r} s x 2^{k}", 1e-3)
    return warnings


class _PtuBlocks:
    """Decoder of successive blocks of one PTU file, carrying the time base across blocks.

    Holds the state :func:`iter_ptu_chunks` needs between blocks: the time base of the
    last overflow record, the latest photon time, and (T3) the photons of the last sync
    period held back to merge with the next block.
    """

    def __init__(self, ptu, path: Path):
        self.ptu, self.path = ptu, path
        self.is_t3 = bool(ptu.is_t3)
        unit_s = float(ptu.global_resolution)
        if self.is_t3:
            self.sync_period_ps = unit_s * 1e12
            self.resolution_ps = float(ptu.tcspc_resolution) * 1e12
            if not self.resolution_ps > 0:
                raise FileFormatError(f"{path}: T3 file without MeasDesc_Resolution")
            self.unit_ps = self.sync_period_ps
        else:
            self.sync_period_ps = None
            self.resolution_ps = unit_s * 1e12
            self.unit_ps = self.resolution_ps
        if not (math.isfinite(self.unit_ps) and self.unit_ps > 0):
            raise FileFormatError(f"{path}: MeasDesc_GlobalResolution must be > 0, got {unit_s}")
        self.header_warnings = _check_resolutions(ptu, path, self.is_t3)
        self.checks = StreamChecks(path, self.sync_period_ps, self.resolution_ps)
        self.n_inputs = int(ptu.tags.get("HW_InpChannels", 0) or 0)
        self.n_impossible = 0
        acq_ms = ptu.tags.get("MeasDesc_AcquisitionTime")
        self.acquisition_s = float(acq_ms) / 1000 if isinstance(acq_ms, (int, float)) and acq_ms > 0 else None
        self.base = 0  # record time units
        self.end_units = 0
        self.last_units = 0  # latest photon time (record units) seen so far
        self.held = self._empty()

    def _empty(self):
        return (np.zeros(0, np.int64), np.zeros(0, np.uint8), np.zeros(0, np.int64) if self.is_t3 else None)

    def decode(self, raw: np.ndarray, start: int):
        """Photons of one block (times ps, channels, micro times), merged with the held ones."""
        try:
            dec = self.ptu.decode_records(raw)
        except Exception as exc:
            raise FileFormatError(f"{self.path}: cannot decode records at {start}: {exc}") from exc
        time_units = dec["time"].astype(np.int64)
        chan = dec["channel"]
        is_photon = chan >= 0
        is_overflow = (chan < 0) & (dec["marker"] == 0)
        ph_units = time_units[is_photon] + self.base
        if ph_units.size:
            self.end_units = max(self.end_units, int(ph_units.max()))
            self.last_units = max(self.last_units, int(ph_units.max()))
        if np.any(is_overflow):
            last = int(np.flatnonzero(is_overflow)[-1])
            self.base += _overflow_base_after(self.ptu, raw[last], int(time_units[last]))
            self.end_units = max(self.end_units, self.base)
        ch = chan[is_photon].astype(np.uint8)
        index = start + np.flatnonzero(is_photon)
        if self.n_inputs > 0:
            # HW_InpChannels counts the sync input on some devices and not on others
            possible = ch <= self.n_inputs
            if not np.all(possible):
                self.n_impossible += int(np.count_nonzero(~possible))
                ph_units, ch, index = ph_units[possible], ch[possible], index[possible]
                is_photon = is_photon.copy()
                is_photon[np.flatnonzero(is_photon)[~possible]] = False
        self.checks.macro_order(ph_units, ch, index)
        if self.is_t3:
            micro = np.rint(dec["dtime"][is_photon].astype(np.float64) * self.resolution_ps).astype(np.int64)
            self.checks.micro_range(micro)
            t = np.rint(ph_units.astype(np.float64) * self.sync_period_ps).astype(np.int64) + micro
        else:
            micro = None
            t = ph_units if self.unit_ps == 1.0 else np.rint(ph_units * self.unit_ps).astype(np.int64)
        # merge photons held back from the previous block, order by time
        return merge_held(self.held, t, ch, micro if self.is_t3 else None)

    def release(self, t, ch, micro, more: bool) -> PhotonStream:
        """The chunk to yield; in T3 photons of the last sync period wait for the next block."""
        if self.is_t3 and more and t.size:
            cut = int(np.rint(float(self.last_units) * self.sync_period_ps))
            keep = t < cut
            self.held = (t[~keep], ch[~keep], micro[~keep])
            t, ch, micro = t[keep], ch[keep], micro[keep]
        else:
            self.held = self._empty()
        return PhotonStream(times_ps=t, channels=ch, microtimes_ps=micro, resolution_ps=self.resolution_ps,
                            sync_period_ps=self.sync_period_ps,
                            duration_s=self.end_units * self.unit_ps * 1e-12, source=str(self.path))

    def final_warnings(self) -> list[str]:
        """Warnings of the checks over the whole file."""
        out = []
        if self.n_impossible:
            out.append(f"{self.path}: {self.n_impossible} photon records on channels > {self.n_inputs}, which the "
                       "header says the device does not have (corrupt records or header); they were skipped")
        return self.header_warnings + out + self.checks.warnings(self.end_units * self.unit_ps * 1e-12,
                                                                  self.acquisition_s)


def iter_ptu_chunks(
    path: str | os.PathLike,
    *,
    chunk_records: int = 1 << 22,
) -> Iterator[PhotonStream]:
    """Iterate over a PTU file (T2 or T3) in chunks of bounded memory.

    Parameters
    ----------
    path : path-like
        PicoQuant PTU file.
    chunk_records : int
        Number of 32-bit records read and decoded at a time.

    Yields
    ------
    PhotonStream
        Photons of one chunk, globally time ordered across chunks; ``duration_s`` is
        the acquisition time covered up to the end of the chunk.

    Raises
    ------
    FileFormatError
        Missing, truncated or corrupt file.
    """
    path = Path(path)
    if chunk_records < 2:
        raise InputError(f"chunk_records must be >= 2, got {chunk_records}")
    ptu, n_records, warnings = _open_ptu(path)
    try:
        try:
            blocks = _PtuBlocks(ptu, path)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
            raise FileFormatError(f"{path}: corrupt PTU header ({type(exc).__name__}: {exc})") from exc
        pending = None  # one block late, so that the last chunk carries the final warnings
        n_photons = 0
        for start, raw in raw_blocks(path, int(ptu.record_offset), n_records, chunk_records):
            t, ch, micro = blocks.decode(raw, start)
            chunk = blocks.release(t, ch, micro, more=start + raw.size < n_records)
            chunk.warnings = list(warnings)
            n_photons += chunk.n_photons
            if pending is not None:
                yield pending
            pending = chunk
        if n_photons == 0:
            raise FileFormatError(f"{path}: holds no photon records ({n_records} records)")
        pending.warnings = warnings + blocks.final_warnings()
        yield pending
    finally:
        ptu.close()


def read_ptu(path: str | os.PathLike, *, chunk_records: int = 1 << 22) -> PhotonStream:
    """Read all photons of a PicoQuant PTU file (T2 or T3) into memory.

    Parameters
    ----------
    path : path-like
        PTU file.
    chunk_records : int
        Records decoded at a time (bounds the decoding buffers, not the result).

    Returns
    -------
    PhotonStream
        Time-ordered photons; ``microtimes_ps`` and ``sync_period_ps`` set for T3.
    """
    return concat_chunks(list(iter_ptu_chunks(path, chunk_records=chunk_records)))


def ptu_facts(path: str | os.PathLike) -> dict:
    """Header facts of a PTU file: record type and the header's record count."""
    import ptufile

    with _quiet_ptufile(), ptufile.PtuFile(path) as ptu:
        return {"record_type": ptu.record_type.name,
                "n_records_header": int(ptu.tags.get("TTResult_NumberOfRecords", 0))}


# ---------------------------------------------------------------------------------
# PTU writing

def _overflow_runs(wraps: np.ndarray, max_per_record: int):
    """Per photon, the overflow records to insert before it: counts and their values."""
    delta = np.diff(np.concatenate([[0], wraps]))
    n_rec = -(-delta // max_per_record)  # ceil
    return delta, n_rec


def _encode(times_units: np.ndarray, channels: np.ndarray, payload_bits: int, make_photon,
            end_wraps: int | None) -> np.ndarray:
    """Interleave photon records with HydraHarp-v2 overflow records (counted wraps)."""
    wraps = times_units >> payload_bits
    max_per = T2_MAX_WRAPS_PER_RECORD if payload_bits == 25 else T3_MAX_WRAPS_PER_RECORD
    delta, n_rec = _overflow_runs(wraps, max_per)
    total_ovf = int(n_rec.sum())
    n = times_units.size
    out = np.empty(n + total_ovf, np.uint32)
    # position of each photon in the output
    pos = np.arange(n) + np.cumsum(n_rec)
    out[pos] = make_photon(times_units, channels)
    if total_ovf:
        ovf_pos = np.ones(out.size, bool)
        ovf_pos[pos] = False
        # values: for each photon with n_rec > 0, (n_rec - 1) x max_per then the remainder
        reps = np.repeat(np.arange(n), n_rec)
        first = np.repeat(np.cumsum(n_rec) - n_rec, n_rec)
        k_in_run = np.arange(total_ovf) - first
        last = k_in_run == n_rec[reps] - 1
        vals = np.where(last, delta[reps] - (n_rec[reps] - 1) * max_per, max_per).astype(np.uint32)
        out[ovf_pos] = np.uint32(0xFE000000) | vals
    tail = []
    if end_wraps is not None:
        extra = int(end_wraps) - int(wraps[-1] if n else 0)
        while extra > 0:
            v = min(extra, max_per)
            tail.append(np.uint32(0xFE000000) | np.uint32(v))
            extra -= v
    if tail:
        out = np.concatenate([out, np.array(tail, np.uint32)])
    return out


def encode_hydraharp_t2(times_ps: np.ndarray, channels: np.ndarray, *, end_ps: int | None = None) -> np.ndarray:
    """HydraHarp v2 T2 records (1 ps units) for sorted times and channels 0..62."""
    t = np.asarray(times_ps, np.int64)
    c = np.asarray(channels, np.int64)
    _check_stream(t, c)

    def photon(tu, ch):
        return ((ch.astype(np.uint32) << np.uint32(25)) | (tu & (T2_WRAP - 1)).astype(np.uint32)).astype(np.uint32)

    return _encode(t, c, 25, photon, None if end_ps is None else int(end_ps) >> 25)


def encode_hydraharp_t3(times_ps: np.ndarray, channels: np.ndarray, microtimes_ps: np.ndarray,
                        sync_period_ps: int, resolution_ps: int, *, end_ps: int | None = None) -> np.ndarray:
    """HydraHarp v2 T3 records; requires ``times = nsync T + micro`` with ``micro = dtime r``."""
    t = np.asarray(times_ps, np.int64)
    c = np.asarray(channels, np.int64)
    m = np.asarray(microtimes_ps, np.int64)
    _check_stream(t, c)
    period, res = int(sync_period_ps), int(resolution_ps)
    nsync = (t - m) // period
    if np.any(m < 0) or np.any(m >= period) or np.any(m % res) or np.any(nsync * period + m != t):
        raise InputError("T3 stream must satisfy times = nsync * sync_period + microtime with "
                         "0 <= microtime < sync_period on the resolution grid")
    dtime = m // res
    if np.any(dtime >= (1 << 15)):
        raise InputError(f"microtimes need more than 15 bits at {res} ps resolution")
    if nsync.size > 1 and np.any(np.diff(nsync) < 0):
        raise InputError("T3 records must be ordered by sync number")

    def photon(ns, ch, dt=dtime):
        return ((ch.astype(np.uint32) << np.uint32(25)) | (dt.astype(np.uint32) << np.uint32(10))
                | (ns & (T3_WRAP - 1)).astype(np.uint32)).astype(np.uint32)

    return _encode(nsync, c, 10, photon, None if end_ps is None else (int(end_ps) // period) >> 10)


def _check_stream(t: np.ndarray, c: np.ndarray) -> None:
    if t.shape != c.shape or t.ndim != 1:
        raise InputError("times and channels must be 1-D arrays of equal length")
    if t.size and (t.min() < 0 or np.any(np.diff(t) < 0)):
        raise InputError("times must be non-negative and sorted")
    if c.size and (c.min() < 0 or c.max() > 62):
        raise InputError("HydraHarp channels must lie in 0..62")


def _tag(ident: str, value, index: int = -1) -> bytes:
    if value is None:
        typ, payload = 0xFFFF0008, b"\0" * 8
    elif isinstance(value, bool):
        typ, payload = 0x00000008, struct.pack("<q", int(value))
    elif isinstance(value, (int, np.integer)):
        typ, payload = 0x10000008, struct.pack("<q", int(value))
    elif isinstance(value, float):
        typ, payload = 0x20000008, struct.pack("<d", value)
    elif isinstance(value, datetime):
        days = (value - datetime(1899, 12, 30)) / timedelta(days=1)
        typ, payload = 0x21000008, struct.pack("<d", days)
    elif isinstance(value, str):
        raw = value.encode("windows-1252", errors="replace") + b"\0"
        raw += b"\0" * (-len(raw) % 8)
        typ, payload = 0x4001FFFF, struct.pack("<q", len(raw)) + raw
    else:
        raise InputError(f"PTU tag {ident}: unsupported value type {type(value).__name__}")
    name = ident.encode("ascii")
    if len(name) > 32:
        raise InputError(f"PTU tag identifier {ident!r} longer than 32 characters")
    return struct.pack("<32siI", name, index, typ) + payload


def write_ptu(stream: PhotonStream, path: str | os.PathLike, *, mode: Literal["T2", "T3"] | None = None,
              comment: str | None = None) -> Path:
    """Write a PicoQuant PTU file (HydraHarp v2 T2 or T3 records) atomically.

    Parameters
    ----------
    stream : PhotonStream
        Stream to write (a simulation is one); T3 needs micro times and a sync period.
    path : path-like
        Output ``.ptu`` file.
    mode : {"T2", "T3"}, optional
        Default: T3 when the stream has micro times, else T2.
    comment : str, optional
        ``File_Comment`` tag; default the stream's ``source``.
    """
    p = Path(path)
    comment = comment if comment is not None else (stream.source or "nanodomains photon stream")
    if p.suffix.lower() != ".ptu":
        raise InputError(f"{p}: PTU files must end in .ptu")
    if mode is None:
        mode = "T3" if stream.microtimes_ps is not None else "T2"
    if mode not in ("T2", "T3"):
        raise InputError(f"mode must be 'T2' or 'T3', got {mode!r}")
    end_ps = int(round(stream.duration_s * 1e12))
    if mode == "T3":
        if stream.microtimes_ps is None or stream.sync_period_ps is None:
            raise InputError("T3 PTU needs a pulsed stream with micro times")
        period, res = int(stream.sync_period_ps), int(stream.resolution_ps)
        records = encode_hydraharp_t3(stream.times_ps, stream.channels, stream.microtimes_ps, period, res,
                                      end_ps=end_ps)
        rectype, glob_res, meas_res = RECTYPE_HH2_T3, period * 1e-12, res * 1e-12
        sync_rate = int(round(1e12 / period))
    else:
        records = encode_hydraharp_t2(stream.times_ps, stream.channels, end_ps=end_ps)
        rectype, glob_res, meas_res = RECTYPE_HH2_T2, 1e-12, 1e-12
        sync_rate = int(round(1e12 / stream.sync_period_ps)) if stream.sync_period_ps else 0
    tags = [
        ("File_GUID", "{" + str(uuid.uuid4()).upper() + "}"),
        ("File_CreatingTime", datetime.now().replace(microsecond=0)),
        ("File_Comment", comment),
        ("CreatorSW_Name", "nanodomains"),
        ("CreatorSW_Version", __version__),
        ("Measurement_Mode", 3 if mode == "T3" else 2),
        ("Measurement_SubMode", 0),
        ("TTResult_StopReason", 0),
        ("TTResultFormat_TTTRRecType", rectype),
        ("TTResultFormat_BitsPerRecord", 32),
        ("MeasDesc_BinningFactor", int(round(meas_res * 1e12))),
        ("MeasDesc_Offset", 0),
        ("MeasDesc_AcquisitionTime", int(round(stream.duration_s * 1000))),
        ("HW_Type", "HydraHarp"),
        ("HW_Version", "2.0"),
        ("HW_InpChannels", int(stream.channels.max()) + 2 if stream.channels.size else 3),
        ("HW_BaseResolution", 1e-12),
        ("MeasDesc_Resolution", meas_res),
        ("MeasDesc_GlobalResolution", glob_res),
        ("TTResult_SyncRate", sync_rate),
        ("TTResult_NumberOfRecords", int(records.size)),
    ]
    header = b"PQTTTR\0\0" + b"1.0.00\0\0" + b"".join(_tag(k, v) for k, v in tags) + _tag("Header_End", None)
    with atomic_path(p) as tmp, open(tmp, "wb") as fh:
        fh.write(header)
        fh.write(records.astype("<u4").tobytes())
    return p

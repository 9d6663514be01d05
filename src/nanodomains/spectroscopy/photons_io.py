"""Photon time tags and decay histograms: the :class:`PhotonStream` type and its readers.

A photon stream is what a time-tagging (TTTR) module records behind a Hanbury Brown
and Twiss (HBT) setup: for every detected photon a macro time ``t`` (int64, ps, from
the start of the acquisition), the detector channel ``c`` (uint8) and, in T3 mode,
the micro time ``m`` (int64, ps) since the last excitation (sync) pulse. In T3 mode
the macro time is reconstructed as

    t = n_sync * T_sync + m,

with ``n_sync`` the sync counter and ``T_sync`` the sync period; in T2 mode ``t`` is
the time tag itself (``resolution_ps`` per unit). The records of PicoQuant devices
carry only a few bits of time; the counter wraps and the file holds *overflow*
records. HydraHarp v2, TimeHarp 260 and MultiHarp overflow records carry the number
of wraps they stand for (one record may stand for up to 2**25 - 1 wraps), whereas
PicoHarp records stand for one wrap each (PicoQuant, "PTU file format demos",
github.com/PicoQuant/PicoQuant-Time-Tagged-File-Format-Demos). A reader that counts
each HydraHarp overflow record as one wrap loses time: the real file
``hydraharp_v20_t2.ptu`` holds 5.00 s, not 4.35 s. Decoding is delegated to ptufile
(C. Gohlke, doi 10.5281/zenodo.10120021), which handles both conventions.

Chunked reading
---------------
:func:`iter_ptu_chunks` reads the raw 32-bit records block by block from disk (memory
bounded by ``chunk_records``) and decodes each block with ptufile. A block decoded on
its own starts from time zero; the time base carried across blocks is the one the
block's last overflow record establishes. It is derived from ptufile's own decoding
of that record (decoding the record once and twice gives its increment and its
payload), so no per-device wrap constant is hard-coded here. In T3 mode photons of
the last sync period of a block are held back and merged into the next block, so the
concatenated chunks are globally time ordered.

Decay histograms
----------------
TCSPC decay curves are read from two-column text (time in ns, counts; tab, space or
comma separated, optional ``key: value`` header lines) or from PicoQuant PHU files
into a :class:`DecayHistogram`.

Project npz
-----------
``times_ps`` (int64), ``channels`` (uint8), optional ``microtimes_ps`` (int64), and the
scalar attributes ``resolution_ps``, ``duration_s``, optional ``sync_period_ps`` (absent
for T2/CW streams) and ``source``; see :func:`write_photons_npz`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanodomains.errors import FileFormatError, InputError

__all__ = [
    "PhotonStream",
    "DecayHistogram",
    "read_photons",
    "read_ptu",
    "iter_ptu_chunks",
    "iter_photon_chunks",
    "read_photons_npz",
    "write_photons_npz",
    "read_two_column_text",
    "uniform_step",
    "json_ready",
    "write_text_atomic",
    "JsonResult",
    "read_decay",
    "photon_file_summary",
]

_NPZ_ARRAYS = ("times_ps", "channels", "microtimes_ps")


@dataclass
class PhotonStream:
    """Time-tagged photons of one acquisition (or one chunk of it).

    Parameters
    ----------
    times_ps : ndarray of int64, shape (N,)
        Macro times in ps from the start of the acquisition, non-decreasing.
    channels : ndarray of uint8, shape (N,)
        Detector channel of each photon.
    microtimes_ps : ndarray of int64, shape (N,), optional
        Delay after the last sync (excitation) pulse, T3 data only.
    resolution_ps : float
        Time-tag unit (T2) or micro-time bin width (T3) in ps.
    sync_period_ps : float or None
        Excitation (sync) period in ps; None for T2/CW data.
    duration_s : float
        Acquisition time in s. For a chunk from :func:`iter_ptu_chunks`, the time
        covered up to the end of that chunk (the last chunk carries the file's).
    source : str
        File the photons came from (or a free description).
    """

    times_ps: np.ndarray
    channels: np.ndarray
    microtimes_ps: np.ndarray | None = None
    resolution_ps: float = 1.0
    sync_period_ps: float | None = None
    duration_s: float = 0.0
    source: str = ""

    def __post_init__(self) -> None:
        times = np.asarray(self.times_ps)
        chans = np.asarray(self.channels)
        if times.ndim != 1 or chans.shape != times.shape:
            raise InputError(
                f"{self.source or 'photon stream'}: times_ps and channels must be 1-D of equal "
                f"length, got shapes {times.shape} and {chans.shape}"
            )
        if times.size and not np.issubdtype(times.dtype, np.integer):
            raise InputError(f"{self.source or 'photon stream'}: times_ps must be integer ps, got {times.dtype}")
        self.times_ps = times.astype(np.int64, copy=False)
        if chans.size and (chans.min() < 0 or chans.max() > 255):
            raise InputError(f"{self.source or 'photon stream'}: channels must fit uint8 (0-255)")
        self.channels = chans.astype(np.uint8, copy=False)
        if self.microtimes_ps is not None:
            micro = np.asarray(self.microtimes_ps)
            if micro.shape != times.shape:
                raise InputError(
                    f"{self.source or 'photon stream'}: microtimes_ps shape {micro.shape} != times_ps {times.shape}"
                )
            self.microtimes_ps = micro.astype(np.int64, copy=False)
        if not (math.isfinite(self.resolution_ps) and self.resolution_ps > 0):
            raise InputError(f"{self.source or 'photon stream'}: resolution_ps must be > 0, got {self.resolution_ps!r}")
        if self.sync_period_ps is not None and not (
            math.isfinite(self.sync_period_ps) and self.sync_period_ps > 0
        ):
            raise InputError(
                f"{self.source or 'photon stream'}: sync_period_ps must be > 0 or None, got {self.sync_period_ps!r}"
            )
        if not (math.isfinite(self.duration_s) and self.duration_s >= 0):
            raise InputError(f"{self.source or 'photon stream'}: duration_s must be >= 0, got {self.duration_s!r}")

    @property
    def n_photons(self) -> int:
        """Number of photons."""
        return int(self.times_ps.size)

    @property
    def is_t3(self) -> bool:
        """True when micro times are present."""
        return self.microtimes_ps is not None

    def channel_counts(self) -> dict[int, int]:
        """Photons per channel, ``{channel: count}`` for channels with photons."""
        counts = np.bincount(self.channels, minlength=1) if self.channels.size else np.zeros(0, int)
        return {int(c): int(n) for c, n in enumerate(counts) if n > 0}

    def select(self, channel: int, microtime_gate_ps: tuple[float, float] | None = None) -> np.ndarray:
        """Sorted macro times (ps) of one channel, optionally micro-time gated.

        Parameters
        ----------
        channel : int
            Detector channel.
        microtime_gate_ps : (float, float), optional
            Keep photons with ``lo <= microtime < hi`` (T3 only).
        """
        if microtime_gate_ps is None:
            return self.times_ps[self.channels == channel]
        mask = self.channels == channel
        if microtime_gate_ps is not None:
            if self.microtimes_ps is None:
                raise InputError(
                    f"{self.source or 'photon stream'}: micro-time gating needs T3 data (microtimes_ps), "
                    "this stream has none"
                )
            lo, hi = microtime_gate_ps
            if not hi > lo:
                raise InputError(f"micro-time gate must have hi > lo, got ({lo}, {hi}) ps")
            mask &= (self.microtimes_ps >= lo) & (self.microtimes_ps < hi)
        return self.times_ps[mask]

    def summary(self) -> dict:
        """Facts about the stream as a JSON-ready dict."""
        counts = self.channel_counts()
        dur = self.duration_s
        return {
            "source": self.source,
            "mode": "T3" if self.is_t3 else "T2",
            "n_photons": self.n_photons,
            "duration_s": dur,
            "channels": counts,
            "rates_hz": {c: (n / dur if dur > 0 else float("nan")) for c, n in counts.items()},
            "resolution_ps": self.resolution_ps,
            "sync_period_ps": self.sync_period_ps,
            "sync_rate_hz": (1e12 / self.sync_period_ps) if self.sync_period_ps else None,
        }


@dataclass
class DecayHistogram:
    """A TCSPC decay histogram on uniform bins.

    Parameters
    ----------
    time_ns : ndarray, shape (M,)
        Left edge of each bin in ns (uniform spacing ``bin_ns``).
    counts : ndarray, shape (M,)
        Photon counts per bin (non-negative).
    bin_ns : float
        Bin width in ns.
    period_ns : float or None
        Excitation period in ns when known (T3 data), else None.
    source : str
        File the histogram came from.
    """

    time_ns: np.ndarray
    counts: np.ndarray
    bin_ns: float
    period_ns: float | None = None
    source: str = ""

    def __post_init__(self) -> None:
        self.time_ns = np.asarray(self.time_ns, dtype=float)
        self.counts = np.asarray(self.counts, dtype=float)
        name = self.source or "decay histogram"
        if self.time_ns.ndim != 1 or self.counts.shape != self.time_ns.shape:
            raise InputError(f"{name}: time_ns and counts must be 1-D of equal length")
        if self.counts.size < 3:
            raise InputError(f"{name}: a decay histogram needs at least 3 bins, got {self.counts.size}")
        if not np.all(np.isfinite(self.counts)) or np.any(self.counts < 0):
            raise InputError(f"{name}: counts must be finite and >= 0")
        if not (math.isfinite(self.bin_ns) and self.bin_ns > 0):
            raise InputError(f"{name}: bin_ns must be > 0, got {self.bin_ns!r}")


# ---------------------------------------------------------------------------------
# PTU


def _open_ptu(path: Path):
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
        n_declared = int(ptu.tags.get("TTResult_NumberOfRecords", 0))
        size = path.stat().st_size
        n_present = (size - ptu.record_offset) // 4
        if n_declared <= 0:
            n_declared = n_present
        if n_present < n_declared:
            raise FileFormatError(
                f"{path}: truncated: header declares {n_declared} TTTR records, the file holds "
                f"{max(n_present, 0)}"
            )
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
    return ptu, n_declared


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
    ptu, n_records = _open_ptu(path)
    try:
        is_t3 = bool(ptu.is_t3)
        unit_s = float(ptu.global_resolution)
        if is_t3:
            sync_period_ps = unit_s * 1e12
            resolution_ps = float(ptu.tcspc_resolution) * 1e12
            if not resolution_ps > 0:
                raise FileFormatError(f"{path}: T3 file without MeasDesc_Resolution")
            unit_ps = sync_period_ps
        else:
            sync_period_ps = None
            resolution_ps = unit_s * 1e12
            unit_ps = resolution_ps
        if not unit_ps > 0:
            raise FileFormatError(f"{path}: MeasDesc_GlobalResolution must be > 0, got {unit_s}")
        offset = int(ptu.record_offset)
        base = 0  # record time units
        end_units = 0
        last_units = 0  # latest photon time (record units) seen so far
        held_t = np.zeros(0, np.int64)
        held_c = np.zeros(0, np.uint8)
        held_m = np.zeros(0, np.int64) if is_t3 else None
        with open(path, "rb") as fh:
            start = 0
            while start < n_records:
                count = min(chunk_records, n_records - start)
                fh.seek(offset + 4 * start)
                raw = np.fromfile(fh, dtype="<u4", count=count)
                if raw.size != count:
                    raise FileFormatError(
                        f"{path}: truncated: expected {count} records at record {start}, read {raw.size}"
                    )
                try:
                    dec = ptu.decode_records(raw)
                except Exception as exc:
                    raise FileFormatError(f"{path}: cannot decode records at {start}: {exc}") from exc
                time_units = dec["time"].astype(np.int64)
                chan = dec["channel"]
                is_photon = chan >= 0
                is_overflow = (chan < 0) & (dec["marker"] == 0)
                ph_units = time_units[is_photon] + base
                if ph_units.size:
                    end_units = max(end_units, int(ph_units.max()))
                if np.any(is_overflow):
                    last = int(np.flatnonzero(is_overflow)[-1])
                    base_rel = _overflow_base_after(ptu, raw[last], int(time_units[last]))
                    base += base_rel
                    end_units = max(end_units, base)
                ch = chan[is_photon].astype(np.uint8)
                if is_t3:
                    micro = np.rint(dec["dtime"][is_photon].astype(np.float64) * resolution_ps).astype(np.int64)
                    t = np.rint(ph_units.astype(np.float64) * sync_period_ps).astype(np.int64) + micro
                else:
                    micro = None
                    t = ph_units if unit_ps == 1.0 else np.rint(ph_units * unit_ps).astype(np.int64)
                # merge photons held back from the previous chunk, order by time
                t = np.concatenate([held_t, t])
                ch = np.concatenate([held_c, ch])
                if is_t3:
                    micro = np.concatenate([held_m, micro])
                if t.size > 1 and np.any(np.diff(t) < 0):
                    order = np.argsort(t, kind="stable")
                    t, ch = t[order], ch[order]
                    if micro is not None:
                        micro = micro[order]
                start += count
                if ph_units.size:
                    last_units = max(last_units, int(ph_units.max()))
                if is_t3 and start < n_records and t.size:
                    # photons of the last sync period seen may interleave with the next chunk
                    cut = int(np.rint(float(last_units) * sync_period_ps))
                    keep = t < cut
                    held_t, held_c, held_m = t[~keep], ch[~keep], micro[~keep]
                    t, ch, micro = t[keep], ch[keep], micro[keep]
                else:
                    held_t = np.zeros(0, np.int64)
                    held_c = np.zeros(0, np.uint8)
                    held_m = np.zeros(0, np.int64) if is_t3 else None
                yield PhotonStream(
                    times_ps=t,
                    channels=ch,
                    microtimes_ps=micro,
                    resolution_ps=resolution_ps,
                    sync_period_ps=sync_period_ps,
                    duration_s=end_units * unit_ps * 1e-12,
                    source=str(path),
                )
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
    chunks = list(iter_ptu_chunks(path, chunk_records=chunk_records))
    if not chunks:
        raise FileFormatError(f"{path}: holds no TTTR records")
    return _concat(chunks)


def _concat(chunks: list[PhotonStream]) -> PhotonStream:
    first, last = chunks[0], chunks[-1]
    micro = None
    if first.microtimes_ps is not None:
        micro = np.concatenate([c.microtimes_ps for c in chunks])
    return PhotonStream(
        times_ps=np.concatenate([c.times_ps for c in chunks]),
        channels=np.concatenate([c.channels for c in chunks]),
        microtimes_ps=micro,
        resolution_ps=first.resolution_ps,
        sync_period_ps=first.sync_period_ps,
        duration_s=last.duration_s,
        source=first.source,
    )


def photon_file_summary(path: str | os.PathLike, *, chunk_records: int = 1 << 22) -> dict:
    """Facts about a photon file (mode, photons per channel, rates, duration).

    PTU files are scanned chunk by chunk, so memory stays bounded by
    ``chunk_records`` whatever the file size; npz files are loaded.
    """
    path = Path(path)
    counts: dict[int, int] = {}
    n = 0
    last = None
    for chunk in iter_photon_chunks(path, chunk_records=chunk_records):
        for c, k in chunk.channel_counts().items():
            counts[c] = counts.get(c, 0) + k
        n += chunk.n_photons
        last = chunk
    if last is None:
        raise FileFormatError(f"{path}: holds no TTTR records")
    summary = last.summary()
    dur = last.duration_s
    summary.update(
        source=str(path),
        n_photons=n,
        channels=counts,
        rates_hz={c: k / dur if dur > 0 else float("nan") for c, k in counts.items()},
    )
    if path.suffix.lower() == ".ptu":
        import ptufile

        with ptufile.PtuFile(path) as ptu:
            summary["record_type"] = ptu.record_type.name
            summary["n_records"] = int(ptu.tags.get("TTResult_NumberOfRecords", 0))
    return summary


# ---------------------------------------------------------------------------------
# npz


def write_photons_npz(stream: PhotonStream, path: str | os.PathLike, *, compressed: bool = True) -> Path:
    """Write a :class:`PhotonStream` to the project npz format.

    Keys: ``times_ps`` (int64), ``channels`` (uint8), ``microtimes_ps`` (int64, T3
    only), ``resolution_ps``, ``duration_s``, ``sync_period_ps`` (only when set), and
    ``source`` (str), all scalars as 0-d arrays. Written atomically (temp file + rename).
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"{path}: photon streams are written as .npz")
    arrays: dict[str, np.ndarray] = {
        "times_ps": stream.times_ps.astype(np.int64, copy=False),
        "channels": stream.channels.astype(np.uint8, copy=False),
        "resolution_ps": np.float64(stream.resolution_ps),
        "duration_s": np.float64(stream.duration_s),
        "source": np.str_(stream.source),
    }
    if stream.microtimes_ps is not None:
        arrays["microtimes_ps"] = stream.microtimes_ps.astype(np.int64, copy=False)
    if stream.sync_period_ps is not None:
        arrays["sync_period_ps"] = np.float64(stream.sync_period_ps)
    tmp = path.with_name(path.name + ".tmp.npz")
    (np.savez_compressed if compressed else np.savez)(tmp, **arrays)
    os.replace(tmp, path)
    return path


def read_photons_npz(path: str | os.PathLike) -> PhotonStream:
    """Read a photon stream written by :func:`write_photons_npz` (or the simulator).

    Raises
    ------
    FileFormatError
        Missing keys, wrong dtypes, unreadable or truncated archive.
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as exc:
        raise FileFormatError(f"{path}: not a readable npz archive ({exc})") from exc
    for key in ("times_ps", "channels", "resolution_ps", "duration_s"):
        if key not in data:
            raise FileFormatError(f"{path}: photon npz lacks '{key}' (has {sorted(data)})")
    times, chans = data["times_ps"], data["channels"]
    if times.dtype != np.int64:
        raise FileFormatError(f"{path}: 'times_ps' must be int64, got {times.dtype}")
    if chans.dtype != np.uint8:
        raise FileFormatError(f"{path}: 'channels' must be uint8, got {chans.dtype}")
    micro = data.get("microtimes_ps")
    if micro is not None and micro.dtype != np.int64:
        raise FileFormatError(f"{path}: 'microtimes_ps' must be int64, got {micro.dtype}")
    if times.size > 1 and np.any(np.diff(times) < 0):
        raise FileFormatError(f"{path}: 'times_ps' is not sorted in time")
    sync = data.get("sync_period_ps")
    try:
        return PhotonStream(
            times_ps=times,
            channels=chans,
            microtimes_ps=micro,
            resolution_ps=float(data["resolution_ps"]),
            sync_period_ps=None if sync is None else float(sync),
            duration_s=float(data["duration_s"]),
            source=str(data["source"]) if "source" in data else str(path),
        )
    except InputError as exc:
        raise FileFormatError(f"{path}: {exc}") from exc


# ---------------------------------------------------------------------------------
# dispatch


def read_photons(path: str | os.PathLike) -> PhotonStream:
    """Read a photon stream from a PTU (T2/T3) or project npz file, by suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".ptu":
        return read_ptu(path)
    if suffix == ".npz":
        return read_photons_npz(path)
    raise FileFormatError(f"{path}: unknown photon file type '{suffix}', expected .ptu or .npz")


def iter_photon_chunks(path: str | os.PathLike, *, chunk_records: int = 1 << 22) -> Iterator[PhotonStream]:
    """Chunks of a photon file: PTU read block by block; npz yielded as one chunk."""
    path = Path(path)
    if path.suffix.lower() == ".ptu":
        yield from iter_ptu_chunks(path, chunk_records=chunk_records)
    else:
        yield read_photons(path)


# ---------------------------------------------------------------------------------
# text and PHU decay histograms

_NUMBER_ROW = re.compile(r"^[\s,;]*[-+0-9.]")


def read_two_column_text(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Read two numeric columns from a text file with an optional header.

    Header lines of the form ``key: value`` are returned as a dict; other
    non-numeric lines (column titles, comments starting with ``#``) are skipped.
    Columns may be separated by tabs, spaces, commas or semicolons.

    Returns
    -------
    x, y : ndarray
        First and second column.
    meta : dict
        Header ``key: value`` pairs.

    Raises
    ------
    FileFormatError
        Missing file, no numeric rows, rows with fewer than two numbers, non-finite values.
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    meta: dict[str, str] = {}
    rows: list[tuple[float, float]] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            if not _NUMBER_ROW.match(s):
                if not rows and ":" in s:
                    k, _, v = s.partition(":")
                    meta[k.strip()] = v.strip()
                elif rows:
                    raise FileFormatError(f"{path}: line {lineno}: expected two numbers, got {s[:40]!r}")
                continue
            parts = [p for p in re.split(r"[\s,;]+", s) if p]
            try:
                values = [float(p) for p in parts[:2]]
            except ValueError as exc:
                raise FileFormatError(f"{path}: line {lineno}: expected two numbers, got {s[:40]!r}") from exc
            if len(values) < 2:
                raise FileFormatError(f"{path}: line {lineno}: expected two columns, got {len(values)}")
            rows.append((values[0], values[1]))
    if not rows:
        raise FileFormatError(f"{path}: no numeric data rows")
    data = np.asarray(rows, dtype=float)
    if not np.all(np.isfinite(data)):
        raise FileFormatError(f"{path}: non-finite values in the data")
    return data[:, 0], data[:, 1], meta


def uniform_step(x: np.ndarray, name: str, *, rtol: float = 1e-3) -> float:
    """Return the spacing of a uniform, increasing axis or raise FileFormatError."""
    if x.size < 2:
        raise FileFormatError(f"{name}: needs at least two samples on the time axis")
    d = np.diff(x)
    step = float(np.median(d))
    if not step > 0 or np.max(np.abs(d - step)) > rtol * step:
        raise FileFormatError(
            f"{name}: time axis must be uniform and increasing (median step {step:g}, "
            f"range of steps {d.min():g}..{d.max():g})"
        )
    return step


def read_decay(path: str | os.PathLike, *, curve: int = 0) -> DecayHistogram:
    """Read a TCSPC decay histogram from text (time ns, counts) or a PicoQuant PHU file.

    Parameters
    ----------
    path : path-like
        Two-column text file or ``.phu`` histogram file.
    curve : int
        Index of the histogram in a PHU file.
    """
    path = Path(path)
    if path.suffix.lower() == ".phu":
        return _read_phu(path, curve)
    t, c, _ = read_two_column_text(path)
    step = uniform_step(t, str(path))
    if np.any(c < 0):
        raise FileFormatError(f"{path}: negative counts in the decay histogram")
    return DecayHistogram(time_ns=t, counts=c, bin_ns=step, source=str(path))


def _read_phu(path: Path, curve: int) -> DecayHistogram:
    import ptufile

    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    try:
        with ptufile.PhuFile(path) as phu:
            n = phu.number_histograms
            if not 0 <= curve < n:
                raise InputError(f"{path}: curve {curve} out of range, the file holds {n} histograms")
            nbins = int(phu.tags["HistResDscr_HistogramBins"][curve])
            hist = phu.histograms(curve)[0]
            res = phu.tags.get("HistResDscr_MDescResolution")
            res_s = float(res[curve]) if res is not None else float(phu.tcspc_resolution)
    except (InputError, FileFormatError):
        raise
    except Exception as exc:
        raise FileFormatError(f"{path}: not a readable PicoQuant PHU file ({exc})") from exc
    if hist.size != nbins:
        raise FileFormatError(f"{path}: truncated: curve {curve} declares {nbins} bins, read {hist.size}")
    if not res_s > 0:
        raise FileFormatError(f"{path}: histogram resolution missing or zero")
    bin_ns = res_s * 1e9
    return DecayHistogram(
        time_ns=np.arange(hist.size) * bin_ns, counts=hist.astype(float), bin_ns=bin_ns, source=str(path)
    )


# ---------------------------------------------------------------------------------
# result serialisation shared by the g2 and lifetime results


def json_ready(obj):
    """Nested dicts/lists with numpy scalars turned into JSON types (NaN/inf -> None)."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write text through a temporary file and rename, so a crash leaves no partial file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


class JsonResult:
    """Mixin for result dataclasses with ``to_dict(arrays=...)``: JSON out and in."""

    def to_json(self, path: str | os.PathLike | None = None, *, arrays: bool = True) -> str:
        """Serialise to JSON; write it atomically to ``path`` when given."""
        import json

        text = json.dumps(self.to_dict(arrays=arrays), indent=1)
        if path is not None:
            write_text_atomic(path, text)
        return text

    @staticmethod
    def _load_json(text_or_path: str | os.PathLike) -> dict:
        import json

        s = str(text_or_path)
        return json.loads(s if s.lstrip().startswith("{") else Path(s).read_text())

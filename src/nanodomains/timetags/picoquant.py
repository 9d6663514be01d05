r"""Legacy PicoQuant files: HydraHarp HT2/HT3, PicoHarp PT2/PT3, TimeHarp T3R; PHD histograms.

Before the unified PTU/PHU formats (2013-2016) each PicoQuant device wrote its own
files: a fixed binary header (a 328-byte text block, then device-specific fields) and,
for time-tag files, 32-bit little-endian records. Layouts follow PicoQuant's legacy
file-format demos (github.com/PicoQuant/PicoQuant-Time-Tagged-File-Format-Demos,
``legacy`` folder: Read_HT2/HT3, Read_PT2/PT3, Read_T3R, Read_PHD).

Records
-------
::

    HydraHarp T2 (HT2)  special(1) channel(6) timetag(25)
                        special & channel 63: overflow; v1: one wrap of 33,552,000;
                        v2: timetag = number of wraps of 2^25 (0 counts as 1)
                        special & channel 0: sync; 1-15: markers
    HydraHarp T3 (HT3)  special(1) channel(6) dtime(15) nsync(10)
                        overflow: v1 one wrap of 1024 syncs; v2 nsync = number of wraps
    PicoHarp T2 (PT2)   channel(4) time(28); channel 15 special: low 4 bits 0 = overflow
                        (wrap 210,698,240 units of 4 ps), else markers
    PicoHarp T3 (PT3)   channel(4) dtime(12) nsync(16); channel 15: dtime 0 = overflow
                        (wrap 65,536 syncs), else markers; channels 1-4 = inputs 0-3
    TimeHarp T3R        reserved(1) valid(1) route(2) data(12) timetag(16): valid = photon
                        (route = detector, data = micro time); invalid: data bit 11 =
                        overflow (wrap 65,536 clock ticks of 100 ns), bits 0-2 markers

Channels are reported 0-based (PT3 input 1 -> channel 0). In HT3/PT3 the macro time
counts sync periods of ``1 / SyncRate``; in T3R it counts the 100 ns global clock, so the
micro time is kept apart (not added to the macro time).

Histograms
----------
A PHD file (PicoHarp 300, format 2.0) holds ``NumberOfCurves`` curve headers (one per
histogram: resolution, channels, ``IntegralCount``, ``DataOffset``) and the curves as
uint32 counts at their data offsets. :func:`read_phd` checks each curve's counts
against its ``IntegralCount`` (a corrupted or truncated file is caught there).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nanodomains.errors import FileFormatError
from nanodomains.timetags.blocks import (
    INVALID, MARKER, OVERFLOW, PHOTON, SYNC, UNKNOWN, DecodedBlock, RecordCounts, RecordLayout,
    iter_record_chunks,
)
from nanodomains.timetags.detect import identify_file
from nanodomains.timetags.stream import PhotonStream

__all__ = ["LegacyHeader", "read_legacy_header", "iter_legacy_chunks", "read_phd", "PhdCurve"]

HT2_V1_WRAP = 33_552_000
PT2_WRAP = 210_698_240


class _Reader:
    """Sequential little-endian reader over a header buffer, with truncation errors."""

    def __init__(self, buf: bytes, path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.buf):
            raise FileFormatError(f"{self.path}: header truncated at byte {self.pos}")
        vals = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return vals if len(vals) > 1 else vals[0]

    def text(self, n: int) -> str:
        raw = self.take(f"{n}s")
        return raw.split(b"\0")[0].decode("latin-1").strip()

    def skip(self, n: int) -> None:
        if self.pos + n > len(self.buf):
            raise FileFormatError(f"{self.path}: header truncated at byte {self.pos}")
        self.pos += n


@dataclass
class LegacyHeader:
    """What a legacy PicoQuant header says (the fields the readers use)."""

    kind: str
    version: str
    measurement_mode: int
    acquisition_s: float | None
    record_offset: int
    declared_records: int | None
    resolution_ps: float
    sync_rate_hz: float | None = None
    sync_divider: int = 1
    global_clock_ps: float | None = None
    n_curves: int = 0
    n_boards: int = 1
    warnings: list = field(default_factory=list)
    fields: dict = field(default_factory=dict)


def _check_range(path, name, value, lo, hi):
    if not (lo <= value <= hi):
        raise FileFormatError(f"{path}: header field {name} = {value!r} outside {lo}..{hi} (corrupt header?)")
    return value


def _agree(path, value: float, expected: float, what: str, *, error_rel=1e-3, warn_rel=1e-9) -> list[str]:
    """Two header fields that must agree: an error beyond ``error_rel``, a warning beyond ``warn_rel``."""
    rel = abs(value / expected - 1.0)
    if rel > error_rel:
        raise FileFormatError(f"{path}: header inconsistent: {what} (relative difference {rel:.2g}; corrupt header?)")
    return [f"{path}: header fields disagree slightly: {what} (relative difference {rel:.2g})"] if rel > warn_rel else []


def _text_header(r: _Reader) -> tuple[str, str]:
    ident = r.text(16)
    version = r.text(6)
    r.skip(18 + 12 + 18 + 2 + 256)  # creator name/version, file time, CRLF, comment
    return ident, version


def _hydraharp_header(buf: bytes, path, kind: str) -> LegacyHeader:
    r = _Reader(buf, path)
    _, version = _text_header(r)
    if version not in ("1.0", "2.0"):
        raise FileFormatError(f"{path}: unsupported format: HydraHarp file format version {version!r} "
                              "(readable: 1.0, 2.0)")
    n_curves, bits, _active, mode, _sub, binning = r.take("6i")
    resolution_ps = r.take("d")
    _offset, tacq_ms = r.take("2i")
    r.skip(4 * 8 + 8 * 8 + 3 * 12 + 4 * 4 + 20)  # StopAt..DispCountsTo, curves, params, repeat, script
    r.skip(16 + 8)  # hardware ident, part number
    _serial, n_modules = r.take("2i")
    r.skip(10 * 8)  # module info
    base_res_s = r.take("d")
    _inputs_enabled = r.take("q")
    n_inputs = _check_range(path, "InpChansPresent", r.take("i"), 0, 64)
    _ref_clock, _ext, _marker, sync_divider = r.take("4i")
    r.skip(3 * 4)  # sync CFD level, zero cross, offset
    r.skip(n_inputs * 16 + n_inputs * 4)  # per input: module, CFD level, zero cross, offset; rates
    sync_rate, _stop_after, _stop_reason, img_size = r.take("4i")
    n_records = r.take("q")
    img_size = _check_range(path, "ImgHdrSize", img_size, 0, 1 << 16)
    offset = r.pos + 4 * img_size
    _check_range(path, "BitsPerRecord", bits, 32, 32)
    if not (resolution_ps > 0 and np.isfinite(resolution_ps)):
        raise FileFormatError(f"{path}: header resolution {resolution_ps!r} ps must be finite and > 0")
    # the bin is the base resolution (ps) times 2^binning: two fields that must agree
    _check_range(path, "Binning", binning, 0, 24)
    _check_range(path, "BaseResolution (ps)", base_res_s, 0.1, 1000)
    warnings = _agree(path, resolution_ps, base_res_s * 2**binning,
                      f"Resolution {resolution_ps!r} ps vs BaseResolution {base_res_s!r} ps x 2^Binning ({binning})")
    if kind == "ht3":
        _check_range(path, "SyncRate", sync_rate, 1, 10**10)
    return LegacyHeader(kind=kind, version=version, measurement_mode=mode,
                        acquisition_s=tacq_ms / 1000 if tacq_ms > 0 else None, record_offset=offset,
                        declared_records=int(n_records), resolution_ps=float(resolution_ps),
                        sync_rate_hz=float(sync_rate) if sync_rate > 0 else None, sync_divider=sync_divider,
                        n_curves=n_curves, warnings=warnings,
                        fields=dict(base_resolution_s=base_res_s, inputs=n_inputs, modules=n_modules))


def _picoharp_common(r: _Reader, path):
    n_curves, bits, _routing, n_boards, _active, mode, _sub, range_no, _offset, tacq_ms = r.take("10i")
    r.skip(4 * 8 + 8 * 8 + 3 * 12 + 4 * 4 + 20)  # StopAt..DispCountsTo, curves, params, repeat, script
    return n_curves, bits, n_boards, mode, tacq_ms, range_no


def _picoharp_board(r: _Reader, path) -> dict:
    r.skip(16 + 8)
    _serial, sync_divider, _zc0, _l0, _zc1, _l1 = r.take("6i")
    resolution_ns = r.take("f")
    _router_model, _router_enabled = r.take("2i")
    r.skip(4 * 6 * 4)  # RtChan1..4
    return dict(sync_divider=sync_divider, resolution_ns=resolution_ns)


def _picoharp_header(buf: bytes, path, kind: str) -> LegacyHeader:
    r = _Reader(buf, path)
    _, version = _text_header(r)
    if version != "2.0":
        raise FileFormatError(f"{path}: unsupported format: PicoHarp file format version {version!r} (readable: 2.0)")
    n_curves, bits, n_boards, mode, tacq_ms, range_no = _picoharp_common(r, path)
    n_boards = _check_range(path, "NumberOfBoards", n_boards, 1, 4)
    boards = [_picoharp_board(r, path) for _ in range(n_boards)]
    res_ns = boards[0]["resolution_ns"]
    # PicoHarp 300 bins are 4 ps x 2^RangeNo: two header fields that must agree
    _check_range(path, "RangeNo", range_no, 0, 16)
    # stored as float32: agreement to its precision (~1e-7)
    warnings = _agree(path, res_ns * 1000, 4.0 * 2**range_no,
                      f"Resolution {res_ns!r} ns vs 4 ps x 2^RangeNo ({range_no})", warn_rel=1e-6)
    if kind == "phd":
        return LegacyHeader(kind=kind, version=version, measurement_mode=mode,
                            acquisition_s=tacq_ms / 1000 if tacq_ms > 0 else None, record_offset=r.pos,
                            declared_records=None, resolution_ps=float(res_ns) * 1000, n_curves=n_curves,
                            n_boards=n_boards, warnings=warnings)
    _check_range(path, "BitsPerRecord", bits, 32, 32)
    _ext, _r1, _r2, cnt0, _cnt1, _stop_after, _stop_reason, n_records, img_size = r.take("9i")
    img_size = _check_range(path, "ImgHdrSize", img_size, 0, 1 << 16)
    res_ps = float(res_ns) * 1000 if kind == "pt3" else 4.0  # PicoHarp T2 time tags: 4 ps
    if not (res_ps > 0 and np.isfinite(res_ps)):
        raise FileFormatError(f"{path}: header resolution {res_ns!r} ns must be finite and > 0")
    if kind == "pt3":
        _check_range(path, "CntRate0 (sync rate)", cnt0, 1, 10**10)
    return LegacyHeader(kind=kind, version=version, measurement_mode=mode,
                        acquisition_s=tacq_ms / 1000 if tacq_ms > 0 else None, record_offset=r.pos + 4 * img_size,
                        declared_records=int(n_records), resolution_ps=res_ps,
                        sync_rate_hz=float(cnt0) if cnt0 > 0 else None,
                        sync_divider=boards[0]["sync_divider"], n_curves=n_curves, n_boards=n_boards,
                        warnings=warnings)


def _timeharp_header(buf: bytes, path, kind: str) -> LegacyHeader:
    r = _Reader(buf, path)
    r.text(16)
    version = r.text(6)
    if version not in ("5.0", "6.0"):
        raise FileFormatError(f"{path}: unsupported format: TimeHarp 200 file version {version!r} (readable: 5.0, 6.0)")
    r.skip(6 + 18 + 2 + 256)
    _nch, n_curves, bits, _routing, _boards, _active, mode, _sub, _range_no, _offset, tacq_ms = r.take("11i")
    r.skip(4 * 8 + 8 * 8 + 3 * 12 + 4 * 4 + 20)
    _serial, _cfd_zc, _cfd_min, _sync_level, _curve_offset = r.take("5i")
    resolution_ns = r.take("f")
    glob_clock_ns, _ext = r.take("2i")
    r.skip(5 * 4)
    sync_rate, _avg_cfd, _stop_after, _stop_reason, n_records, img_size = r.take("6i")
    img_size = _check_range(path, "ImgHdrSize", img_size, 0, 1 << 16)
    _check_range(path, "BitsPerRecord", bits, 32, 32)
    _check_range(path, "TTTRGlobclock (ns)", glob_clock_ns, 1, 10**6)
    res_ps = float(resolution_ns) * 1000
    if not (res_ps > 0 and np.isfinite(res_ps)):
        raise FileFormatError(f"{path}: header resolution {resolution_ns!r} ns must be finite and > 0")
    return LegacyHeader(kind=kind, version=version, measurement_mode=mode,
                        acquisition_s=tacq_ms / 1000 if tacq_ms > 0 else None, record_offset=r.pos + 4 * img_size,
                        declared_records=int(n_records), resolution_ps=res_ps,
                        sync_rate_hz=float(sync_rate) if sync_rate > 0 else None,
                        global_clock_ps=float(glob_clock_ns) * 1000, n_curves=n_curves)


def read_legacy_header(path: str | os.PathLike, kind: str | None = None) -> LegacyHeader:
    """Parse the header of a legacy PicoQuant file (HT2, HT3, PT2, PT3, T3R or PHD).

    Raises
    ------
    FileFormatError
        Not such a file, an unsupported version, or header fields out of range.
    """
    path = Path(path)
    kind = kind or identify_file(path).kind
    with open(path, "rb") as fh:
        buf = fh.read(1 << 20)
    if kind in ("ht2", "ht3"):
        return _hydraharp_header(buf, path, kind)
    if kind in ("pt2", "pt3", "phd"):
        return _picoharp_header(buf, path, kind)
    if kind == "t3r":
        return _timeharp_header(buf, path, kind)
    raise FileFormatError(f"{path}: unsupported format: no legacy PicoQuant reader for {kind.upper()} files")


# ---------------------------------------------------------------------------------
# record codecs (vectorised over a block)


def _codec_hydraharp(raw: np.ndarray, t3: bool, version: str) -> DecodedBlock:
    special = (raw >> np.uint32(31)).astype(bool)
    chan = ((raw >> np.uint32(25)) & np.uint32(63)).astype(np.uint8)
    if t3:
        tfield = (raw & np.uint32(1023)).astype(np.int64)
        dtime = ((raw >> np.uint32(10)) & np.uint32(0x7FFF)).astype(np.int64)
    else:
        tfield = (raw & np.uint32((1 << 25) - 1)).astype(np.int64)
        dtime = None
    kind = np.full(raw.size, PHOTON, np.uint8)
    ovf = special & (chan == 63)
    kind[special] = UNKNOWN
    kind[ovf] = OVERFLOW
    kind[special & (chan >= 1) & (chan <= 15)] = MARKER
    if not t3:
        kind[special & (chan == 0)] = SYNC
    wraps = np.zeros(raw.size, np.int64)
    if version == "1.0":
        wraps[ovf] = 1
    else:
        wraps[ovf] = np.maximum(tfield[ovf], 1)
    tfield = np.where(kind == PHOTON, tfield, 0)
    return DecodedBlock(kind=kind, channel=chan, time_field=tfield, wraps=wraps, dtime=dtime)


def _codec_pt2(raw: np.ndarray) -> DecodedBlock:
    chan = (raw >> np.uint32(28)).astype(np.uint8)
    tfield = (raw & np.uint32(0x0FFFFFFF)).astype(np.int64)
    special = chan == 15
    markers = tfield & 15
    kind = np.full(raw.size, PHOTON, np.uint8)
    kind[(chan > 4) & ~special] = UNKNOWN
    kind[special] = MARKER
    ovf = special & (markers == 0)
    kind[ovf] = OVERFLOW
    wraps = ovf.astype(np.int64)
    return DecodedBlock(kind=kind, channel=chan, time_field=np.where(kind == PHOTON, tfield, 0), wraps=wraps)


def _codec_pt3(raw: np.ndarray) -> DecodedBlock:
    chan = (raw >> np.uint32(28)).astype(np.int64)
    dtime = ((raw >> np.uint32(16)) & np.uint32(0xFFF)).astype(np.int64)
    nsync = (raw & np.uint32(0xFFFF)).astype(np.int64)
    special = chan == 15
    kind = np.full(raw.size, UNKNOWN, np.uint8)
    kind[(chan >= 1) & (chan <= 4)] = PHOTON
    kind[special] = MARKER
    ovf = special & (dtime == 0)
    kind[ovf] = OVERFLOW
    out_chan = np.clip(chan - 1, 0, 255).astype(np.uint8)
    return DecodedBlock(kind=kind, channel=out_chan, time_field=np.where(kind == PHOTON, nsync, 0),
                        wraps=ovf.astype(np.int64), dtime=dtime)


def _codec_t3r(raw: np.ndarray) -> DecodedBlock:
    tag = (raw & np.uint32(0xFFFF)).astype(np.int64)
    data = ((raw >> np.uint32(16)) & np.uint32(0xFFF)).astype(np.int64)
    route = ((raw >> np.uint32(28)) & np.uint32(3)).astype(np.uint8)
    valid = ((raw >> np.uint32(30)) & np.uint32(1)).astype(bool)
    kind = np.full(raw.size, UNKNOWN, np.uint8)
    kind[valid] = PHOTON
    ovf = ~valid & ((data >> 11) & 1).astype(bool)
    kind[~valid & ((data & 7) != 0)] = MARKER
    kind[ovf] = OVERFLOW
    return DecodedBlock(kind=kind, channel=route, time_field=np.where(valid, tag, 0),
                        wraps=ovf.astype(np.int64), dtime=data)


def _layout(h: LegacyHeader, path) -> tuple[RecordLayout, callable]:
    if h.kind == "ht2":
        wrap = HT2_V1_WRAP if h.version == "1.0" else 1 << 25
        return (RecordLayout(wrap=wrap, macro_unit_ps=h.resolution_ps, resolution_ps=h.resolution_ps,
                             sync_period_ps=None, acquisition_s=h.acquisition_s),
                lambda raw: _codec_hydraharp(raw, False, h.version))
    if h.kind == "pt2":
        return (RecordLayout(wrap=PT2_WRAP, macro_unit_ps=h.resolution_ps, resolution_ps=h.resolution_ps,
                             sync_period_ps=None, acquisition_s=h.acquisition_s), _codec_pt2)
    if h.sync_rate_hz is None:
        raise FileFormatError(f"{path}: T3 header without a sync rate")
    period_ps = 1e12 / h.sync_rate_hz
    if h.kind == "ht3":
        return (RecordLayout(wrap=1024, macro_unit_ps=period_ps, resolution_ps=h.resolution_ps,
                             sync_period_ps=period_ps, acquisition_s=h.acquisition_s),
                lambda raw: _codec_hydraharp(raw, True, h.version))
    if h.kind == "pt3":
        return (RecordLayout(wrap=65536, macro_unit_ps=period_ps, resolution_ps=h.resolution_ps,
                             sync_period_ps=period_ps, acquisition_s=h.acquisition_s), _codec_pt3)
    if h.kind == "t3r":
        return (RecordLayout(wrap=65536, macro_unit_ps=h.global_clock_ps, resolution_ps=h.resolution_ps,
                             sync_period_ps=period_ps, micro_in_macro=False, acquisition_s=h.acquisition_s),
                _codec_t3r)
    raise FileFormatError(f"{path}: {h.kind.upper()} is not a time-tag file")


def iter_legacy_chunks(path: str | os.PathLike, *, chunk_records: int = 1 << 22,
                       counts: RecordCounts | None = None) -> Iterator[PhotonStream]:
    """Photon chunks of a legacy PicoQuant time-tag file (HT2, HT3, PT2, PT3, T3R).

    Parameters
    ----------
    path : path-like
        The file (its type is read from the header).
    chunk_records : int
        Records decoded at a time (bounds memory).
    counts : RecordCounts, optional
        Filled with record tallies (photons, overflows, markers, unknown).

    Yields
    ------
    PhotonStream
        Time-ordered chunks; the last carries every warning (record count against the
        file size, unknown records, records beyond the acquisition time).
    """
    path = Path(path)
    h = read_legacy_header(path)
    layout, codec = _layout(h, path)
    yield from iter_record_chunks(path, offset=h.record_offset, declared_records=h.declared_records,
                                  layout=layout, codec=codec, chunk_records=chunk_records, counts=counts,
                                  header_warnings=h.warnings)


# ---------------------------------------------------------------------------------
# PHD histograms


@dataclass
class PhdCurve:
    """One histogram of a PHD file: counts per bin and its bin width."""

    index: int
    counts: np.ndarray
    resolution_ns: float
    integral_count: int
    sync_rate_hz: float | None
    acquisition_s: float | None


_PHD_CURVE = "<iI16s8s" + "i" * 6 + "i" * 5 + "fff" + "i" + "f" + "i" * 7 + "q" + "ii" + "i" * 8


def read_phd(path: str | os.PathLike) -> list[PhdCurve]:
    """All curves of a PicoHarp 300 PHD histogram file (format 2.0).

    Raises
    ------
    FileFormatError
        Not a PHD file, curve headers out of range, data beyond the end of the file,
        or counts that do not sum to the curve's ``IntegralCount``.
    """
    path = Path(path)
    h = read_legacy_header(path, "phd")
    if h.measurement_mode != 0:
        raise FileFormatError(f"{path}: PicoHarp file in mode {h.measurement_mode}, not a histogram (PHD)")
    n = _check_range(path, "NumberOfCurves", h.n_curves, 0, 512)
    size = path.stat().st_size
    data = path.read_bytes()
    rec = struct.calcsize(_PHD_CURVE)
    curves = []
    for k in range(n):
        pos = h.record_offset + k * rec
        if pos + rec > size:
            raise FileFormatError(f"{path}: truncated: curve header {k} of {n} beyond the end of the file")
        f = struct.unpack_from(_PHD_CURVE, data, pos)
        idx, res_ns, channels, tacq_ms = f[0], f[19], f[20], f[21]
        inp_rate0, integral, data_offset = f[24], f[27], f[29]
        channels = _check_range(path, f"curve {k} Channels", channels, 1, 1 << 20)
        if not (np.isfinite(res_ns) and res_ns > 0):
            raise FileFormatError(f"{path}: curve {k} resolution {res_ns!r} ns must be finite and > 0")
        if data_offset < 0 or data_offset + 4 * channels > size:
            raise FileFormatError(f"{path}: truncated: curve {k} data ({channels} bins at byte {data_offset}) "
                                  f"beyond the end of the file ({size} bytes)")
        counts = np.frombuffer(data, "<u4", count=channels, offset=data_offset).astype(np.int64)
        if int(counts.sum()) != int(integral):
            raise FileFormatError(f"{path}: curve {k}: counts sum to {int(counts.sum())}, the header's "
                                  f"IntegralCount is {integral} (corrupt data)")
        curves.append(PhdCurve(index=int(idx), counts=counts, resolution_ns=float(res_ns),
                               integral_count=int(integral),
                               sync_rate_hz=float(inp_rate0) if inp_rate0 > 0 else None,
                               acquisition_s=tacq_ms / 1000 if tacq_ms > 0 else None))
    return curves

"""The chunked decoder shared by the 32-bit TTTR formats without a kept streaming reader.

Legacy PicoQuant files (HT2, HT3, PT2, PT3, T3R) and Becker & Hickl SPC files hold a
header and then 32-bit little-endian records. Every record is one of: a photon (channel,
time field, micro-time field in T3), an overflow record (the time counter wrapped, once
or a counted number of times), a marker, or something the format does not define. A
format is described by a :class:`RecordLayout` (units, wrap) and a codec: a vectorised
function of a block of raw records returning a :class:`DecodedBlock`.

The macro time of record ``i`` is

    macro_i = W * (wraps before the block + sum_{j <= i} n_j) + field_i,

with ``W`` the wrap (2^bits of the time field, or the device's constant) and ``n_j`` the
wraps record ``j`` stands for (0 for photons, 1 or the record's count for overflows).
Cumulative sums over a block and one carried integer make the decoding exact across
blocks with no Python loop over records. In T3 mode the photon time is
``macro * T_sync + micro``; photons of a block's last sync period are held back and
merged with the next block so that chunks are globally time ordered (as for PTU).

Every block goes through :class:`~nanodomains.timetags.stream.StreamChecks` (macro
times never decrease within a channel; micro times within the sync period); records of
undefined type and FIFO-gap flags are counted and reported as warnings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nanodomains.errors import FileFormatError, InputError
from nanodomains.timetags.stream import PhotonStream, StreamChecks, merge_held, record_count_warning

__all__ = ["RecordLayout", "raw_blocks", "DecodedBlock", "RecordCounts", "iter_record_chunks",
           "PHOTON", "OVERFLOW", "MARKER", "SYNC", "UNKNOWN", "INVALID"]

#: largest block decoded at once (records)
MAX_BLOCK_RECORDS = 1 << 20

# record kinds
PHOTON, OVERFLOW, MARKER, SYNC, UNKNOWN, INVALID = 0, 1, 2, 3, 4, 5


@dataclass
class DecodedBlock:
    """One block of records decoded field by field (record order).

    ``kind`` uses :data:`PHOTON` ... :data:`INVALID`; ``wraps`` is the number of wraps
    each record stands for (non-zero for overflow records, and for SPC photons that
    carry their own overflow flag); ``dtime`` the micro-time field in bins (T3 only);
    ``gap`` flags records after which the device lost data (FIFO overflow), if the
    format records it.
    """

    kind: np.ndarray
    channel: np.ndarray
    time_field: np.ndarray
    wraps: np.ndarray
    dtime: np.ndarray | None = None
    gap: np.ndarray | None = None


@dataclass
class RecordLayout:
    """Units of one file's records.

    Parameters
    ----------
    wrap : int
        Macro-time units per wrap of the time field.
    macro_unit_ps : float
        Macro-time unit: the time-tag unit (T2), the sync period (T3) or the global
        clock (TimeHarp T3R) in ps.
    resolution_ps : float
        Micro-time bin (T3) or time-tag unit (T2) in ps.
    sync_period_ps : float or None
        Excitation period (T3), None for T2.
    micro_in_macro : bool
        True when the macro time counts sync periods, so the photon time is
        ``macro * T_sync + micro`` (PicoQuant T3, SPC); False when it is a clock of its
        own (TimeHarp T3R) and the micro time is kept apart.
    acquisition_s : float or None
        Acquisition time from the header, for the plausibility check.
    """

    wrap: int
    macro_unit_ps: float
    resolution_ps: float
    sync_period_ps: float | None
    micro_in_macro: bool = True
    acquisition_s: float | None = None

    @property
    def is_t3(self) -> bool:
        return self.sync_period_ps is not None


@dataclass
class RecordCounts:
    """Record tallies of one file (filled while reading)."""

    records: int = 0
    photons: int = 0
    overflows: int = 0
    markers: int = 0
    sync: int = 0
    unknown: int = 0
    invalid: int = 0
    gaps: int = 0
    per_kind: dict = field(default_factory=dict)

    def add(self, d: DecodedBlock) -> None:
        counts = np.bincount(d.kind, minlength=6)
        self.records += int(d.kind.size)
        self.photons += int(counts[PHOTON])
        self.overflows += int(counts[OVERFLOW])
        self.markers += int(counts[MARKER])
        self.sync += int(counts[SYNC])
        self.unknown += int(counts[UNKNOWN])
        self.invalid += int(counts[INVALID])
        if d.gap is not None:
            self.gaps += int(np.count_nonzero(d.gap))

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "per_kind"}


def raw_blocks(path: Path, offset: int, n_records: int, chunk_records: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(first record index, raw little-endian uint32 records)`` of successive blocks of a
    file of 32-bit records starting at byte ``offset`` (PTU, HT2/HT3, PT2/PT3, T3R, SPC)."""
    with open(path, "rb") as fh:
        start = 0
        while start < n_records:
            count = min(chunk_records, n_records - start)
            fh.seek(offset + 4 * start)
            raw = np.fromfile(fh, dtype="<u4", count=count)
            if raw.size != count:
                raise FileFormatError(
                    f"{path}: truncated: expected {count} records at record {start}, read {raw.size}")
            yield start, raw
            start += count


class _Assembler:
    """Turns decoded blocks into time-ordered photon chunks, carrying state across blocks."""

    def __init__(self, path, layout: RecordLayout, checks: StreamChecks):
        self.path, self.layout, self.checks = path, layout, checks
        self.wraps = 0  # wraps before the current block
        self.end_units = 0
        self.held = self._empty()

    def _empty(self):
        micro = np.zeros(0, np.int64) if self.layout.is_t3 else None
        return np.zeros(0, np.int64), np.zeros(0, np.uint8), micro

    def photons(self, d: DecodedBlock, start: int):
        lay = self.layout
        cum = self.wraps + np.cumsum(d.wraps, dtype=np.int64)
        if cum.size:
            self.wraps = int(cum[-1])
            self.end_units = max(self.end_units, self.wraps * lay.wrap)
        ph = np.flatnonzero(d.kind == PHOTON)
        macro = cum[ph] * lay.wrap + d.time_field[ph].astype(np.int64)
        ch = d.channel[ph].astype(np.uint8)
        self.checks.macro_order(macro, ch, start + ph)
        if macro.size:
            self.end_units = max(self.end_units, int(macro.max()))
        micro = None
        if lay.is_t3:
            micro = np.rint(d.dtime[ph].astype(np.float64) * lay.resolution_ps).astype(np.int64)
            self.checks.micro_range(micro)
        t = np.rint(macro.astype(np.float64) * lay.macro_unit_ps).astype(np.int64)
        if lay.is_t3 and lay.micro_in_macro:
            t = t + micro
        return t, ch, micro, (int(macro.max()) if macro.size else None)

    def release(self, t, ch, micro, last_macro, more: bool):
        t, ch, micro = merge_held(self.held, t, ch, micro)
        if self.layout.is_t3 and self.layout.micro_in_macro and more:
            # photons of the last sync period may interleave with the next block's
            keep = t < int(np.rint(float(last_macro) * self.layout.macro_unit_ps)) if last_macro is not None \
                else np.zeros(t.size, bool)
            self.held = (t[~keep], ch[~keep], micro[~keep])
            t, ch, micro = t[keep], ch[keep], micro[keep]
        else:
            self.held = self._empty()
        return t, ch, micro

    def duration_s(self) -> float:
        return self.end_units * self.layout.macro_unit_ps * 1e-12


def iter_record_chunks(
    path: Path,
    *,
    offset: int,
    declared_records: int | None,
    layout: RecordLayout,
    codec: Callable[[np.ndarray], DecodedBlock],
    chunk_records: int = 1 << 22,
    counts: RecordCounts | None = None,
    header_warnings: list[str] | None = None,
) -> Iterator[PhotonStream]:
    """Decode a 32-bit record stream block by block into time-ordered photon chunks.

    Parameters
    ----------
    path : Path
        The file.
    offset : int
        Byte offset of the first record.
    declared_records : int or None
        The header's record count (compared with the file size; the records present
        are read).
    layout : RecordLayout
        Units of the records.
    codec : callable
        ``codec(raw uint32 block) -> DecodedBlock``.
    chunk_records : int
        Records per block (bounds memory); at most :data:`MAX_BLOCK_RECORDS`.
    counts : RecordCounts, optional
        Filled with the record tallies while reading.
    header_warnings : list of str, optional
        Warnings found while reading the header, passed on with the chunks.

    Yields
    ------
    PhotonStream
        One chunk per block; the last carries every warning.

    Raises
    ------
    FileFormatError
        No records, no photons, or photon times that go backwards within a channel.
    """
    if chunk_records < 2:
        raise InputError(f"chunk_records must be >= 2, got {chunk_records}")
    size = path.stat().st_size
    present = max((size - offset) // 4, 0)
    trailing = max(size - offset, 0) - 4 * present
    warnings = list(header_warnings or []) + record_count_warning(path, declared_records, present, trailing)
    if present == 0:
        raise FileFormatError(f"{path}: holds no records (header of {offset} bytes, file of {size} bytes)")
    counts = counts if counts is not None else RecordCounts()
    checks = StreamChecks(path, layout.sync_period_ps, layout.resolution_ps)
    asm = _Assembler(path, layout, checks)
    pending = None  # yield one block late, so the last chunk can carry the final warnings
    # decoding needs ~60 bytes per record of temporaries: blocks of at most 2^20 records
    # keep that near 60 MB (and in cache) whatever chunk size the caller asks for
    for start, raw in raw_blocks(path, offset, present, min(chunk_records, MAX_BLOCK_RECORDS)):
        decoded = codec(raw)
        counts.add(decoded)
        t, ch, micro, last_macro = asm.photons(decoded, start)
        more = start + raw.size < present
        t, ch, micro = asm.release(t, ch, micro, last_macro, more)
        chunk = PhotonStream(times_ps=t, channels=ch, microtimes_ps=micro, resolution_ps=layout.resolution_ps,
                             sync_period_ps=layout.sync_period_ps, duration_s=asm.duration_s(),
                             source=str(path), warnings=list(warnings))
        if pending is not None:
            yield pending
        pending = chunk
    if counts.photons == 0:
        raise FileFormatError(
            f"{path}: holds no photon records ({counts.records} records: {counts.overflows} overflows, "
            f"{counts.markers} markers, {counts.unknown} of unknown type)")
    final = warnings + _count_warnings(path, counts) + checks.warnings(asm.duration_s(), layout.acquisition_s)
    pending.warnings = final
    yield pending


def _count_warnings(path, counts: RecordCounts) -> list[str]:
    out = []
    if counts.unknown:
        out.append(f"{path}: {counts.unknown} of {counts.records} records are of a type the format does not "
                   "define (corrupt records?); they were skipped")
    if counts.gaps:
        out.append(f"{path}: {counts.gaps} records flag a data gap (FIFO overflow in the device): photons "
                   "were lost there")
    return out

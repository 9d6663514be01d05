r"""Becker & Hickl SPC-130/132/140/150/160/830 FIFO files (``.spc``), read in chunks.

Format (B&H, "The bh TCSPC Handbook", FIFO data format of the SPC-1xx/8xx modules)
----------------------------------------------------------------------------------
The first 32-bit word is a header: bits 0-23 the macro-time clock period in units of
0.1 ns, bits 24-31 flags (number of routing bits, raw-data flag). Every following
32-bit little-endian record is::

    bit 31 INVALID | 30 MTOV | 29 GAP | 28 MARK | 27-16 ADC | 15-12 ROUT | 11-0 MT

* INVALID = 0: a photon on routing channel ROUT; macro time MT (12 bits); micro time
  ``4095 - ADC`` bins (the TAC runs from the photon to the next sync: reversed start-stop);
  MTOV = 1 means the macro-time counter wrapped (4096 clocks) once before this record.
* INVALID = 1, MTOV = 1, MARK = 0: bits 0-27 count the macro-time wraps since the last
  record (several overflows in one record).
* INVALID = 1, MARK = 1: a marker (ROUT = marker bits); MTOV counts one wrap.
* INVALID = 1, otherwise: a photon rejected by the hardware (counted, not used).
* GAP = 1: the FIFO overflowed before this record and photons were lost.

The micro-time bin width is set by the TAC range and gain, stored in the separate
``.set`` file, not in the ``.spc``. When the ``.set`` file is absent the bin is taken as
the macro-clock period / 4096 (the convention of tttrlib, which reads these files the
same way); the reader says so in a warning, because a TAC range different from the
clock period scales every lifetime. The macro clock is taken as the sync period (the
usual setup: macro time clocked by the laser).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from nanodomains.errors import FileFormatError
from nanodomains.timetags.blocks import (
    INVALID, MARKER, OVERFLOW, PHOTON, DecodedBlock, RecordCounts, RecordLayout, iter_record_chunks,
)
from nanodomains.timetags.stream import PhotonStream

__all__ = ["iter_spc_chunks", "spc_macro_clock_ps", "SPC_ADC_BINS"]

SPC_ADC_BINS = 4096
SPC_WRAP = 4096


def spc_macro_clock_ps(path: str | os.PathLike) -> float:
    """The macro-time clock period (ps) from an SPC file's first word."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(4)
    if len(head) < 4:
        raise FileFormatError(f"{path}: too short for a B&H SPC header")
    clock = struct.unpack("<I", head)[0] & 0x00FFFFFF
    if clock == 0:
        raise FileFormatError(f"{path}: SPC header gives a macro-time clock of 0")
    return clock * 100.0


def _codec_spc(raw: np.ndarray) -> DecodedBlock:
    invalid = (raw >> np.uint32(31)).astype(bool)
    mtov = ((raw >> np.uint32(30)) & np.uint32(1)).astype(bool)
    gap = ((raw >> np.uint32(29)) & np.uint32(1)).astype(bool)
    mark = ((raw >> np.uint32(28)) & np.uint32(1)).astype(bool)
    adc = ((raw >> np.uint32(16)) & np.uint32(0xFFF)).astype(np.int64)
    rout = ((raw >> np.uint32(12)) & np.uint32(0xF)).astype(np.uint8)
    mt = (raw & np.uint32(0xFFF)).astype(np.int64)
    multi = invalid & mtov & ~mark
    kind = np.full(raw.size, PHOTON, np.uint8)
    kind[invalid] = INVALID
    kind[invalid & mark] = MARKER
    kind[multi] = OVERFLOW
    wraps = mtov.astype(np.int64)
    wraps[multi] = (raw[multi] & np.uint32(0x0FFFFFFF)).astype(np.int64)
    return DecodedBlock(kind=kind, channel=rout, time_field=np.where(kind == PHOTON, mt, 0), wraps=wraps,
                        dtime=(SPC_ADC_BINS - 1) - adc, gap=gap)


def _set_file_resolution_ps(path: Path) -> float | None:
    """Micro-time bin from the ``.set`` file beside the ``.spc`` (TAC range / gain / ADC bins)."""
    for set_path in (path.with_suffix(".set"), path.with_suffix(".SET")):
        if set_path.is_file():
            try:
                from phconvert.bhreader import load_set

                setup = load_set(set_path)["sys_params"]
                tac_range_s = float(setup["SP_TAC_R"])
                gain = float(setup["SP_TAC_G"])
                adc = float(setup.get("SP_ADC_RE", SPC_ADC_BINS))
            except Exception as exc:
                raise FileFormatError(f"{set_path}: unreadable B&H .set file ({exc})") from exc
            if not (tac_range_s > 0 and gain > 0 and adc > 0):
                raise FileFormatError(f"{set_path}: TAC range {tac_range_s}, gain {gain}, ADC {adc} must be > 0")
            return tac_range_s / gain / adc * 1e12
    return None


def iter_spc_chunks(path: str | os.PathLike, *, chunk_records: int = 1 << 22,
                    counts: RecordCounts | None = None) -> Iterator[PhotonStream]:
    """Photon chunks of a B&H SPC-130/132/830 FIFO file.

    Channels are the routing channels (ROUT, 0-15). See the module docstring for the
    micro-time bin width.

    Yields
    ------
    PhotonStream
        T3 chunks, time ordered; the last carries every warning.
    """
    path = Path(path)
    clock_ps = spc_macro_clock_ps(path)
    res_ps = _set_file_resolution_ps(path)
    warnings = []
    if res_ps is None:
        res_ps = clock_ps / SPC_ADC_BINS
        warnings.append(
            f"{path}: no .set file beside it, so the TAC range is unknown: micro-time bin taken as the macro "
            f"clock {clock_ps / 1000:.4g} ns / {SPC_ADC_BINS} = {res_ps:.5g} ps (tttrlib's convention); "
            "lifetimes scale with this assumption")
    layout = RecordLayout(wrap=SPC_WRAP, macro_unit_ps=clock_ps, resolution_ps=res_ps, sync_period_ps=clock_ps)
    yield from iter_record_chunks(path, offset=4, declared_records=None, layout=layout, codec=_codec_spc,
                                  chunk_records=chunk_records, counts=counts, header_warnings=warnings)

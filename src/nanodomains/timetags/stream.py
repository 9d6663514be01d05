"""The :class:`PhotonStream` type and the checks every reader applies to what it decodes.

Readers verify instead of trusting (issue 18): a file's header is one claim, its
records are another, and a reader reports where they disagree.
:class:`StreamChecks` holds the checks a reader runs block by block on the photons it
decodes, in record order and after overflow correction:

* time tags (macro times) never decrease within a detector channel: a T2/T3 record
  stream is written in arrival order, so a backwards step means a corrupt record or a
  wrong overflow count (error, naming the record);
* micro times lie within ``[0, sync period + one bin)`` (warning with the count: a
  TCSPC range longer than the sync period is legal but leaves photons in the wrong
  period);
* the acquisition covered by the records agrees with the header's acquisition time
  (warning: a corrupted overflow record makes time jump forward).

:func:`record_count_warning` compares the header's record count with the file size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numba
import numpy as np

from nanodomains.errors import FileFormatError, InputError

__all__ = ["PhotonStream", "StreamChecks", "record_count_warning", "concat_chunks", "merge_held"]


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
    warnings : list of str
        What the reader found doubtful but not fatal (record counts that disagree with
        the header, records of unknown type, a FIFO gap...). Every chunk of a file
        carries the warnings found so far; the last chunk carries them all.
    """

    times_ps: np.ndarray
    channels: np.ndarray
    microtimes_ps: np.ndarray | None = None
    resolution_ps: float = 1.0
    sync_period_ps: float | None = None
    duration_s: float = 0.0
    source: str = ""
    warnings: list[str] = field(default_factory=list)

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
            "warnings": list(self.warnings),
        }


def concat_chunks(chunks: list[PhotonStream]) -> PhotonStream:
    """One stream from the chunks of one file (time ordered, as the readers yield them)."""
    if not chunks:
        raise InputError("no chunks to concatenate")
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
        warnings=list(last.warnings),
    )


def merge_held(held, t: np.ndarray, ch: np.ndarray, micro: np.ndarray | None):
    """Photons held back from the previous block put before this block's, ordered by time.

    ``held`` is ``(times, channels, micro times)``; ``micro`` is None for T2 data. The sort
    is stable and runs only when the merged times are not already in order.
    """
    held_t, held_c, held_m = held
    t, ch = np.concatenate([held_t, t]), np.concatenate([held_c, ch])
    if micro is not None:
        micro = np.concatenate([held_m, micro])
    if t.size > 1 and np.any(np.diff(t) < 0):
        order = np.argsort(t, kind="stable")
        t, ch = t[order], ch[order]
        if micro is not None:
            micro = micro[order]
    return t, ch, micro


def record_count_warning(path, declared: int | None, present: int, trailing_bytes: int = 0) -> list[str]:
    """Warnings when the header's record count and the file size disagree.

    The records present in the file are what a reader decodes; a header count larger
    than that means a truncated file or a header written wrong, a smaller one means
    the header was not updated (both seen in real files).
    """
    out = []
    if declared is not None and declared != present:
        if declared > present:
            out.append(f"{path}: header declares {declared} records, the file holds {present}: "
                       f"{declared - present} records missing (file truncated, or header count wrong); "
                       f"read the {present} present")
        else:
            out.append(f"{path}: header declares {declared} records, the file holds {present}: "
                       f"read all {present} (header count not updated)")
    if trailing_bytes:
        out.append(f"{path}: {trailing_bytes} bytes after the last whole record ignored (truncated record)")
    return out


@numba.njit(cache=True, nogil=True)
def _first_backwards(macro: np.ndarray, channels: np.ndarray, last: np.ndarray) -> int:
    """Index of the first photon whose time is below its channel's previous one, else -1.

    ``last`` (per channel) is updated in place up to that photon: one pass, no sort.
    """
    for i in range(macro.size):
        c = channels[i]
        if macro[i] < last[c]:
            return i
        last[c] = macro[i]
    return -1


class StreamChecks:
    """Checks on decoded photons, carried from block to block of one file.

    Parameters
    ----------
    path : str
        File name for messages.
    sync_period_ps : float or None
        Sync period of T3 data (micro times are checked against it).
    resolution_ps : float
        Micro-time bin (T3) or time-tag unit (T2).
    """

    def __init__(self, path, sync_period_ps: float | None, resolution_ps: float):
        self.path = path
        self.sync_period_ps = sync_period_ps
        self.resolution_ps = resolution_ps
        self.last_per_channel = np.full(256, np.iinfo(np.int64).min, np.int64)
        self.n_micro_outside = 0
        self.max_micro_ps = 0

    def macro_order(self, macro_units: np.ndarray, channels: np.ndarray, first_record: np.ndarray) -> None:
        """Raise FileFormatError when a channel's macro time decreases (record order).

        ``macro_units`` are overflow-corrected time tags (T2) or sync counts (T3) of the
        photons of one block in record order; ``first_record`` their record indices.
        """
        if macro_units.size == 0:
            return
        bad = _first_backwards(np.ascontiguousarray(macro_units, np.int64),
                               np.ascontiguousarray(channels, np.uint8), self.last_per_channel)
        if bad >= 0:
            c = int(channels[bad])
            raise FileFormatError(
                f"{self.path}: time tags go backwards in channel {c} at record {int(first_record[bad])} "
                f"({int(macro_units[bad])} after {int(self.last_per_channel[c])} time units): corrupt record "
                "or overflow count"
            )

    def micro_range(self, micro_ps: np.ndarray) -> None:
        """Count micro times outside ``[0, sync period + one bin)``; negative ones are an error."""
        if micro_ps is None or micro_ps.size == 0:
            return
        if int(micro_ps.min()) < 0:
            raise FileFormatError(f"{self.path}: negative micro times")
        self.max_micro_ps = max(self.max_micro_ps, int(micro_ps.max()))
        if self.sync_period_ps is not None:
            limit = self.sync_period_ps + self.resolution_ps
            self.n_micro_outside += int(np.count_nonzero(micro_ps >= limit))

    def warnings(self, duration_s: float, acquisition_s: float | None) -> list[str]:
        """Warnings from the checks so far (call at the end of the file)."""
        out = []
        if self.n_micro_outside:
            out.append(
                f"{self.path}: {self.n_micro_outside} photons have micro times beyond the sync period "
                f"{self.sync_period_ps / 1000:.4g} ns (max {self.max_micro_ps / 1000:.4g} ns): TCSPC range "
                "longer than the period, a sync divider, or corrupt records"
            )
        if acquisition_s is not None and acquisition_s > 0 and math.isfinite(duration_s):
            if duration_s > 1.001 * acquisition_s + 0.01:  # a device stops at its acquisition time
                out.append(
                    f"{self.path}: the records span {duration_s:.6g} s, the header's acquisition time is "
                    f"{acquisition_s:.6g} s: corrupt overflow records?"
                )
        return out

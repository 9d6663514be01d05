"""TCSPC decay histograms: the :class:`DecayHistogram` type and its readers.

Photon streams (:class:`~nanodomains.timetags.PhotonStream`) and their files live in
:mod:`nanodomains.timetags`, shared with the photon simulator.

Decay histograms
----------------
TCSPC decay curves are read into a :class:`DecayHistogram` from

* PicoQuant PHU (unified histogram, via ptufile),
* PicoQuant PHD (PicoHarp 300 legacy histogram; :func:`nanodomains.timetags.picoquant.read_phd`,
  each curve checked against its header's integral count),
* two-column text (time in ns, counts; tab, space or comma separated, optional
  ``key: value`` header lines).

The type is decided by the file's magic bytes (:func:`nanodomains.timetags.identify_file`):
a binary file is never handed to the text reader. HydraHarp HHD and TimeHarp THD
histogram files are recognised and refused ("unsupported format"): no test file was
available to check a reader against.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nanodomains.errors import FileFormatError, InputError
from nanodomains.timetags import identify_file

__all__ = [
    "DecayHistogram",
    "read_two_column_text",
    "uniform_step",
    "read_decay",
]


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
    warnings : list of str
        What the reader found doubtful (passed on to the fit's record).
    """

    time_ns: np.ndarray
    counts: np.ndarray
    bin_ns: float
    period_ns: float | None = None
    source: str = ""
    warnings: list[str] = field(default_factory=list)

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
        if not np.all(np.isfinite(self.time_ns)):
            raise InputError(f"{name}: time_ns must be finite")


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
    """Read a TCSPC decay histogram: PicoQuant PHU or PHD, or text (time ns, counts).

    Parameters
    ----------
    path : path-like
        Histogram file; its type is read from its first bytes.
    curve : int
        Index of the histogram in a PHU/PHD file.

    Raises
    ------
    FileFormatError
        ``unsupported format: ...`` for binary files that are not histograms (photon
        time-tag files are histogrammed by
        :func:`nanodomains.spectroscopy.lifetime.load_decay`), and any corruption found.
    """
    path = Path(path)
    kind = identify_file(path)
    if kind.kind == "phu":
        return _read_phu(path, curve)
    if kind.kind == "phd":
        return _read_phd(path, curve)
    if kind.kind in ("hhd", "thd"):
        raise FileFormatError(f"{path}: unsupported format: {kind.description} histogram (no reader: no test "
                              "file was available to check one against)")
    if kind.kind != "text":
        raise FileFormatError(f"{path}: {kind.description} is a photon time-tag file, not a decay histogram "
                              "(use nanodomains.spectroscopy.lifetime.load_decay)")
    if curve != 0:
        raise InputError(f"{path}: curve applies to PHU/PHD files, this is a text file")
    t, c, _ = read_two_column_text(path)
    step = uniform_step(t, str(path))
    if np.any(c < 0):
        raise FileFormatError(f"{path}: negative counts in the decay histogram")
    return DecayHistogram(time_ns=t, counts=c, bin_ns=step, source=str(path))


def _read_phd(path: Path, curve: int) -> DecayHistogram:
    from nanodomains.timetags.picoquant import read_phd

    curves = read_phd(path)
    if not 0 <= curve < len(curves):
        raise InputError(f"{path}: curve {curve} out of range, the file holds {len(curves)} histograms")
    c = curves[curve]
    counts = c.counts.astype(float)
    warnings = []
    if counts.sum() <= 0:
        raise FileFormatError(f"{path}: curve {curve} holds no counts")
    return DecayHistogram(time_ns=np.arange(counts.size) * c.resolution_ns, counts=counts, bin_ns=c.resolution_ns,
                          source=f"{path} (curve {curve})", warnings=warnings)


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

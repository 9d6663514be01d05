"""Second-order photon correlation g2(tau) of a Hanbury Brown-Twiss (HBT) experiment.

Histogram
---------
For two detector channels A and B with sorted time tags a_i, b_j (int64 ps) the
coincidence histogram counts every pair by its delay tau = b_j - a_i:

    C_k = #{(i, j) : lo + k w <= b_j - a_i < lo + (k + 1) w},   k = 0 .. 2K,

with bin width w (integer ps), K = round(window / w) and lo = -K w - floor(w / 2), so
bin K is centred on zero delay. It is computed exactly (integer arithmetic) by a
two-pointer sweep: for each a_i the first b_j >= a_i + lo only moves forward, so the
cost is O(N_A + N_B + pairs) instead of O(N x bins) of the per-bin search of
Laurence et al., Opt. Lett. 31, 829 (2006) (pycorrelate).

CW normalisation
----------------
For uncorrelated (Poissonian) streams of N_A and N_B photons in a duration T the
expected count per bin is N_A N_B w (T - ``|tau|``) / T^2 (the factor (T - ``|tau|``)/T is the
overlap of the two records; Loudon, The Quantum Theory of Light, 3rd ed., ch. 6), so

    g2(tau_k) = C_k T^2 / (N_A N_B w (T - ``|tau_k|``)).

g2(0) is read from the bins within ``zero_window`` of zero delay (default: the
central bin) with a Poisson error sqrt(C) on the counts.

Pulsed normalisation
--------------------
Under pulsed excitation of period T_rep the histogram consists of peaks at
tau = offset + m T_rep. With A_0 the area (summed counts) of the zero-delay peak and
A_m the areas of the side peaks (m != 0, every peak fully inside the window),

    g2(0) = A_0 / mean(A_m),

the ratio of the probability of two photons from one pulse to that from two pulses
(Santori et al., Nature 419, 594 (2002); Michler et al., Science 290, 2282 (2000)).
For photon-number probabilities p_n per pulse g2(0) = sum n(n-1) p_n / (sum n p_n)^2;
detection losses and the 50:50 splitter thin photons binomially and leave it unchanged.
Peaks are integrated over +-``peak_window``/2 around each peak centre (default the full
period). The variance follows from Poisson statistics on the areas:

    var(g2) = (A_0 + g2^2 mean(A_m) / n_side) / mean(A_m)^2,

with A_0 replaced by 1 when it is 0 (an empty peak does not prove zero variance). The
grid offset (detector/cable delay) is taken from the mirror symmetry of the curve unless given,
and the period from the sync period of the stream, or estimated from the peak spacing
of the histogram when the stream carries none (T2). Both are recorded in the result.

Results
-------
:func:`compute_g2` and :func:`g2_from_peak_areas` return a
:class:`~nanodomains.records.G2Record` (schema ``nanodomains.g2/2``): g2(0) as a
:class:`~nanodomains.records.Measured`, the normalisation bookkeeping and the histogram.
:func:`write_g2_csv` and :func:`plot_g2` write its table and figure.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numba
import numpy as np

from nanodomains.errors import FileFormatError, FitError, InputError, require_positive
from nanodomains.files import atomic_path
from nanodomains.records import G2Record, Measured
from nanodomains.spectroscopy.photons_io import read_two_column_text, uniform_step
from nanodomains.timetags import PhotonStream, iter_photon_chunks

__all__ = [
    "G2Record",
    "plot_g2",
    "write_g2_csv",
    "cross_correlation_counts",
    "g2_histogram",
    "compute_g2",
    "compute_g2_file",
    "normalize_cw",
    "expected_uncorrelated",
    "g2_histogram_chunks",
    "pulsed_peak_areas",
    "estimate_peak_grid",
    "read_g2_text",
    "g2_from_peak_areas",
]


# ---------------------------------------------------------------------------------
# exact histogram


@numba.njit(cache=True, nogil=True)
def _xcorr_linear(a, b, lo, width, counts):  # pragma: no cover - compiled
    nbins = counts.size
    span = lo + width * nbins
    nb = b.size
    j0 = 0
    pairs = 0
    for i in range(a.size):
        t = a[i]
        start = t + lo
        while j0 < nb and b[j0] < start:
            j0 += 1
        stop = t + span
        j = j0
        while j < nb and b[j] < stop:
            counts[(b[j] - start) // width] += 1
            j += 1
        pairs += j - j0
    return pairs


def _bin_ps(bin_ns: float) -> int:
    require_positive("bin_ns", bin_ns)
    w = int(round(bin_ns * 1000.0))
    if w < 1 or abs(bin_ns * 1000.0 - w) > 1e-6 * max(1.0, w):
        raise InputError(f"bin_ns must be a whole number of ps (>= 0.001 ns), got {bin_ns!r}")
    return w


def _bins(bin_ps: int, window_ps: float) -> tuple[int, int]:
    """Return (lo_ps, nbins) of the centred linear bins covering +-window."""
    require_positive("window", window_ps)
    k = int(round(window_ps / bin_ps))
    if k < 1:
        raise InputError(f"window ({window_ps} ps) must be at least one bin ({bin_ps} ps)")
    return -k * bin_ps - bin_ps // 2, 2 * k + 1


@numba.njit(cache=True, nogil=True)
def _is_sorted(a):  # pragma: no cover - compiled
    for i in range(1, a.size):
        if a[i] < a[i - 1]:
            return False
    return True


def _sorted_int64(x, name: str) -> np.ndarray:
    arr = np.ascontiguousarray(x)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"{name} must be a 1-D integer array of ps, got {arr.dtype} shape {arr.shape}")
    arr = arr.astype(np.int64, copy=False)
    if not _is_sorted(arr):
        raise InputError(f"{name} must be sorted in time")
    return arr


def cross_correlation_counts(
    times_a_ps: np.ndarray,
    times_b_ps: np.ndarray,
    *,
    bin_ps: int,
    window_ps: float,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Exact linear-bin coincidence histogram of delays ``b - a``.

    Parameters
    ----------
    times_a_ps, times_b_ps : ndarray of int64
        Sorted time tags (ps) of the start and stop channels.
    bin_ps : int
        Bin width in ps.
    window_ps : float
        Half range; bins are centred on ``k * bin_ps`` for ``|k| <= round(window/bin)``.
    out : ndarray of int64, optional
        Histogram to add the counts to (for chunked processing).

    Returns
    -------
    edges_ps : ndarray of int64, shape (nbins + 1,)
        Bin edges; bin k holds ``edges[k] <= b - a < edges[k+1]``.
    counts : ndarray of int64, shape (nbins,)
    pairs : int
        Number of pairs counted (sum of ``counts`` added by this call).
    """
    width = int(bin_ps)
    if width < 1:
        raise InputError(f"bin_ps must be an integer >= 1, got {bin_ps!r}")
    lo, nbins = _bins(width, float(window_ps))
    a = _sorted_int64(times_a_ps, "times_a_ps")
    b = _sorted_int64(times_b_ps, "times_b_ps")
    if out is None:
        out = np.zeros(nbins, dtype=np.int64)
    elif out.shape != (nbins,) or out.dtype != np.int64:
        raise InputError(f"out must be int64 of shape ({nbins},)")
    pairs = int(_xcorr_linear(a, b, np.int64(lo), np.int64(width), out))
    edges = lo + width * np.arange(nbins + 1, dtype=np.int64)
    return edges, out, pairs


# ---------------------------------------------------------------------------------
# result: a G2Record (nanodomains.records), its figure and its CSV


def plot_g2(result: G2Record, path: str | os.PathLike | None = None, *, ax=None):
    """Plot g2(tau) with the zero-peak window (pulsed); saved to ``path`` if given.

    Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.plot(result.tau_ns, result.g2, lw=0.6, color="0.2", drawstyle="steps-mid")
    if result.mode == "pulsed" and result.period_ns:
        half = (result.peak_window_ns or result.period_ns) / 2
        off = result.offset_ns or 0.0
        ax.axvspan(off - half, off + half, color="C3", alpha=0.12, label="zero peak")
    ax.axhline(1.0, color="C0", lw=0.6, ls="--")
    ax.set_xlabel("tau (ns)")
    ax.set_ylabel("g2(tau)")
    err = result.g2_0.stderr
    ax.set_title(f"{result.mode}: g2(0) = {float(result.g2_0):.3f} ± {math.nan if err is None else err:.3f}",
                 fontsize=9)
    if fig is not None:
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=120)
            plt.close(fig)
    return ax


def write_g2_csv(result: G2Record, path: str | os.PathLike) -> Path:
    """Write the histogram as columns ``tau_ns, counts, g2`` (plain CSV, atomically).

    Examples
    --------
    >>> import tempfile, pathlib, pandas as pd
    >>> r = G2Record(g2_0=(0.1, 0.02), mode="cw", tau_ns=[-0.1, 0.0, 0.1], counts=[9, 1, 8],
    ...              g2=[0.9, 0.1, 0.8])
    >>> p = write_g2_csv(r, pathlib.Path(tempfile.mkdtemp()) / "g2.csv")
    >>> list(pd.read_csv(p).columns)
    ['tau_ns', 'counts', 'g2']
    """
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["tau_ns", "counts", "g2"])
        for t, c, g in zip(result.tau_ns, result.counts, result.g2):
            w.writerow([f"{t:.6f}", int(c), f"{g:.6g}"])
    return path


# ---------------------------------------------------------------------------------
# normalisation


def expected_uncorrelated(
    tau_ns: np.ndarray, *, n_a: int, n_b: int, bin_ns: float, duration_s: float
) -> np.ndarray:
    """Coincidences per bin of uncorrelated streams: N_A N_B w (T - ``|tau|``) / T^2."""
    T_ns = require_positive("duration_s", duration_s) * 1e9
    if n_a <= 0 or n_b <= 0:
        raise InputError(f"g2 normalisation needs photons in both channels, got {n_a} and {n_b}")
    return n_a * n_b * bin_ns * (T_ns - np.abs(np.asarray(tau_ns, float))) / T_ns**2


def normalize_cw(
    counts: np.ndarray, tau_ns: np.ndarray, *, n_a: int, n_b: int, bin_ns: float, duration_s: float
) -> np.ndarray:
    """g2(tau): counts over the uncorrelated expectation N_A N_B w (T - ``|tau|``) / T^2."""
    expected = expected_uncorrelated(tau_ns, n_a=n_a, n_b=n_b, bin_ns=bin_ns, duration_s=duration_s)
    return np.asarray(counts, float) / expected


def estimate_peak_grid(
    tau_ns: np.ndarray,
    counts: np.ndarray,
    *,
    period_ns: float | None = None,
) -> tuple[float, float]:
    """Period and offset of the pulsed peak comb ``offset + m * period``.

    The offset is the axis about which the curve is mirror symmetric (maximum of its
    self-convolution within +-period/2 of zero): the g2 of two equivalent detectors
    is symmetric in tau about the true zero delay whatever the height of the
    (antibunched) zero peak. The period, unless given, is first taken from the
    highest maximum of the histogram's autocorrelation beyond its first zero
    crossing, then refined by epoch folding: the side-peak part of the curve
    (``|tau - offset|`` >= period/2) folded modulo P has the largest contrast when P is
    the true period.

    Returns
    -------
    period_ns, offset_ns : float
    """
    tau = np.asarray(tau_ns, float)
    c = np.asarray(counts, float)
    step = float(np.median(np.diff(tau)))
    if period_ns is not None:
        period = require_positive("period_ns", period_ns)
        return period, _mirror_offset(tau, c, step, period)
    period0 = _acf_period(c, step)
    offset = _mirror_offset(tau, c, step, period0)
    period = _fold_period(tau, c, step, period0, offset)
    return period, _mirror_offset(tau, c, step, period)


def _parabola_vertex(y: np.ndarray, k: int) -> float:
    """Sub-sample position of a maximum at index k from a parabola through 3 points."""
    if 0 < k < y.size - 1:
        den = y[k - 1] - 2 * y[k] + y[k + 1]
        if den < 0:
            return k + 0.5 * (y[k - 1] - y[k + 1]) / den
    return float(k)


def _acf_period(c: np.ndarray, step: float) -> float:
    x = c - c.mean()
    n = x.size
    spec = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(spec * np.conj(spec))[:n]
    acf /= np.arange(n, 0, -1)  # unbiased: fewer overlapping samples at long lags
    below = np.flatnonzero(acf <= 0)
    if below.size == 0 or acf[0] <= 0:
        raise FitError("pulsed g2: no periodic peak structure found to estimate the pulse period")
    first = int(below[0])
    lim = n // 2 + 1  # the lag must fit at least twice in the window
    if first >= lim - 1:
        raise FitError("pulsed g2: window too short to estimate the pulse period; pass period_ns")
    k = first + int(np.argmax(acf[first:lim]))
    if acf[k] < 0.2 * acf[0]:
        raise FitError(
            "pulsed g2: the histogram shows no clear periodic peaks (autocorrelation at the "
            f"best lag {k * step:.4g} ns is {acf[k] / acf[0]:.2f} of its zero-lag value); pass period_ns"
        )
    return _parabola_vertex(acf, k) * step


def _mirror_offset(tau: np.ndarray, c: np.ndarray, step: float, period: float) -> float:
    # the self-convolution sum_i x_i x_(m-i) peaks at m = 2 i0 for a curve symmetric about i0
    x = c - c.mean()
    n = x.size
    conv = np.fft.irfft(np.fft.rfft(x, 2 * n) ** 2, 2 * n)[: 2 * n - 1]
    axis = tau[0] + 0.5 * np.arange(2 * n - 1) * step
    ok = np.flatnonzero(np.abs(axis) <= period / 2)
    if ok.size == 0:
        raise FitError("pulsed g2: cannot locate the zero-delay peak within +-period/2")
    m = int(ok[np.argmax(conv[ok])])
    return float(tau[0] + 0.5 * _parabola_vertex(conv, m) * step)


def _fold_period(tau: np.ndarray, c: np.ndarray, step: float, period0: float, offset: float) -> float:
    side = np.abs(tau - offset) >= period0 / 2
    t, y = tau[side] - offset, c[side]
    nph = max(8, int(round(period0 / step / 2)))
    trials = period0 * (1 + np.linspace(-0.02, 0.02, 801))
    stat = np.empty(trials.size)
    for i, p in enumerate(trials):  # a few hundred folds of ~1e3-1e4 bins: vectorised inside
        ph = np.floor((t / p % 1.0) * nph).astype(np.int64)
        sums = np.bincount(ph, weights=y, minlength=nph)
        num = np.bincount(ph, minlength=nph)
        good = num > 0
        stat[i] = np.sum(sums[good] ** 2 / num[good])  # between-phase sum of squares (+ const)
    k = int(np.argmax(stat))
    frac = _parabola_vertex(stat, k) - k
    return float(period0 * (1 + (-0.02 + (k + frac) * 0.04 / 800)))


def _full_peaks(tau: np.ndarray, period: float, offset: float, peak_window: float, step: float) -> list[int]:
    """Peak indices m whose whole integration window lies inside the histogram."""
    lo, hi = tau[0] - step / 2, tau[-1] + step / 2
    m_min = math.ceil((lo + peak_window / 2 - offset) / period - 1e-9)
    m_max = math.floor((hi - peak_window / 2 - offset) / period + 1e-9)
    return list(range(m_min, m_max + 1))


def pulsed_peak_areas(
    tau_ns: np.ndarray,
    counts: np.ndarray,
    *,
    period_ns: float,
    offset_ns: float = 0.0,
    peak_window_ns: float | None = None,
) -> tuple[float, list[float], list[int]]:
    """Areas of the zero-delay peak and the complete side peaks.

    Bins whose centre lies within ``offset + m * period +- peak_window/2`` belong to
    peak m (half-open, so adjacent full-period windows never share a bin).

    Returns
    -------
    zero_area : float
    side_areas : list of float
    side_index : list of int
        The m of each side peak.
    """
    tau = np.asarray(tau_ns, float)
    c = np.asarray(counts, float)
    period = require_positive("period_ns", period_ns)
    win = period if peak_window_ns is None else require_positive("peak_window_ns", peak_window_ns)
    if win > period * (1 + 1e-9):
        raise InputError(f"peak_window_ns ({win}) must not exceed the period ({period})")
    step = float(np.median(np.diff(tau)))
    peaks = _full_peaks(tau, period, offset_ns, win, step)
    if 0 not in peaks:
        raise InputError("the zero-delay peak is not fully inside the histogram window")
    zero, sides, idx = 0.0, [], []
    for m in peaks:
        rel = tau - (offset_ns + m * period)
        area = float(c[(rel >= -win / 2) & (rel < win / 2)].sum())
        if m == 0:
            zero = area
        else:
            sides.append(area)
            idx.append(m)
    if not sides:
        raise InputError(
            f"no complete side peak inside the window (period {period:.4g} ns, window "
            f"{tau[0]:.4g}..{tau[-1]:.4g} ns); widen the window"
        )
    return zero, sides, idx


def _pulsed_fields(period, period_source, offset, offset_source, peak_window, zero, sides) -> dict:
    """g2(0) with its error and the peak bookkeeping of a pulsed result as G2Record fields."""
    g0, err = _pulsed_g2(zero, sides)
    return dict(
        g2_0=Measured(value=g0, stderr=err),
        period_ns=float(period),
        period_source=period_source,
        offset_ns=float(offset),
        offset_source=offset_source,
        peak_window_ns=float(period if peak_window is None else peak_window),
        zero_peak_area=zero,
        side_peak_areas=tuple(float(s) for s in sides),
    )


def _pulsed_g2(zero: float, sides: list[float]) -> tuple[float, float]:
    mean_side = float(np.mean(sides))
    if mean_side <= 0:
        raise FitError("pulsed g2: the side peaks are empty, cannot normalise")
    g = zero / mean_side
    err = math.sqrt(max(zero, 1.0) + g * g * mean_side / len(sides)) / mean_side
    return g, err


# ---------------------------------------------------------------------------------
# streams


def _check_channels(channels, available: dict[int, int], source: str) -> tuple[int, int]:
    ca, cb = (int(c) for c in channels)
    if ca == cb:
        raise InputError(f"g2 needs two different detector channels, got {ca} and {cb}")
    if len([c for c, n in available.items() if n > 0]) < 2:
        raise InputError(
            f"{source or 'photon stream'}: g2 needs photons in two channels, the data have "
            f"only {sorted(available) or 'none'}"
        )
    for c in (ca, cb):
        if available.get(c, 0) == 0:
            raise InputError(
                f"{source or 'photon stream'}: channel {c} holds no photons; channels with photons: "
                f"{sorted(available)}"
            )
    return ca, cb


@numba.njit(cache=True, nogil=True)
def _split_kernel(times, channels, micro, ca, cb, use_gate, lo, hi):  # pragma: no cover - compiled
    na = nb = 0
    for i in range(times.size):
        c = channels[i]
        if c != ca and c != cb:
            continue
        if use_gate and not (micro[i] >= lo and micro[i] < hi):
            continue
        if c == ca:
            na += 1
        else:
            nb += 1
    a = np.empty(na, np.int64)
    b = np.empty(nb, np.int64)
    ia = ib = 0
    for i in range(times.size):
        c = channels[i]
        if c != ca and c != cb:
            continue
        if use_gate and not (micro[i] >= lo and micro[i] < hi):
            continue
        if c == ca:
            a[ia] = times[i]
            ia += 1
        else:
            b[ib] = times[i]
            ib += 1
    return a, b


def _split_channels(stream: PhotonStream, ca: int, cb: int, gate) -> tuple[np.ndarray, np.ndarray]:
    """Times of two channels in one pass (optionally micro-time gated), as ``select``."""
    if gate is not None:
        if stream.microtimes_ps is None:
            stream.select(ca, gate)  # raises the clear T3 error
        lo, hi = gate
        if not hi > lo:
            raise InputError(f"micro-time gate must have hi > lo, got ({lo}, {hi}) ps")
        micro = stream.microtimes_ps
    else:
        lo, hi, micro = 0.0, 0.0, np.zeros(1, np.int64)
    return _split_kernel(
        stream.times_ps, stream.channels, micro, np.uint8(ca), np.uint8(cb), gate is not None, float(lo), float(hi)
    )


def _gate_ps(gate_ns) -> tuple[float, float] | None:
    if gate_ns is None:
        return None
    lo, hi = (float(v) * 1000.0 for v in gate_ns)
    return lo, hi


def g2_histogram(
    stream: PhotonStream,
    *,
    channels: tuple[int, int] = (0, 1),
    bin_ns: float = 0.1,
    window_ns: float = 500.0,
    microtime_gate_ns: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int], int]:
    """Raw coincidence histogram of one stream.

    Returns
    -------
    tau_ns : ndarray
        Bin centres.
    counts : ndarray of int64
    n_per_channel : (int, int)
        Photons in the two channels after gating.
    pairs : int
    """
    tau, counts, n_ab, pairs, _ = g2_histogram_chunks(
        [stream], channels=channels, bin_ns=bin_ns, window_ns=window_ns, microtime_gate_ns=microtime_gate_ns
    )
    return tau, counts, n_ab, pairs


def _centres_ns(edges_ps: np.ndarray) -> np.ndarray:
    return 0.5 * (edges_ps[:-1] + edges_ps[1:]) / 1000.0


def _cw_fields(tau_ns, counts, n_ab, bin_ns, duration_s, offset_ns, zero_window_ns) -> dict:
    """CW g2(0): coincidences of the bins within ``zero_window`` of zero delay over their
    uncorrelated expectation, with the Poisson error of the counts."""
    off = 0.0 if offset_ns is None else float(offset_ns)
    half = bin_ns / 2 if zero_window_ns is None else require_positive("zero_window_ns", zero_window_ns) / 2
    sel = np.abs(tau_ns - off) <= half + 1e-9
    if not np.any(sel):
        raise InputError(f"zero_window_ns={zero_window_ns} selects no bin around {off} ns")
    c0 = float(counts[sel].sum())
    expected = float(
        expected_uncorrelated(tau_ns[sel], n_a=n_ab[0], n_b=n_ab[1], bin_ns=bin_ns, duration_s=duration_s).sum()
    )
    return dict(g2_0=Measured(value=c0 / expected, stderr=math.sqrt(max(c0, 1.0)) / expected),
                offset_ns=off, offset_source="given", zero_window_ns=2 * half)


def _finish(
    tau_ns,
    counts,
    n_ab,
    pairs,
    duration_s,
    *,
    mode,
    channels,
    bin_ns,
    window_ns,
    period_ns,
    period_source,
    offset_ns,
    peak_window_ns,
    zero_window_ns,
    microtime_gate_ns,
    source,
    settings,
) -> G2Record:
    if mode not in ("cw", "pulsed"):
        raise InputError(f"mode must be 'cw' or 'pulsed', got {mode!r}")
    if n_ab[0] == 0 or n_ab[1] == 0:
        raise InputError(f"{source}: no photons left in channel(s) {channels} after gating")
    g2 = normalize_cw(counts, tau_ns, n_a=n_ab[0], n_b=n_ab[1], bin_ns=bin_ns, duration_s=duration_s)
    common = dict(
        mode=mode,
        n_photons=int(n_ab[0] + n_ab[1]),
        duration_s=float(duration_s),
        tau_ns=tau_ns,
        counts=counts,
        g2=g2,
        channels=tuple(channels),
        bin_ns=bin_ns,
        window_ns=window_ns,
        n_pairs=int(pairs),
        counts_per_channel=tuple(int(n) for n in n_ab),
        microtime_gate_ns=None if microtime_gate_ns is None else tuple(map(float, microtime_gate_ns)),
        source=source,
        settings=settings,
    )
    if mode == "cw":
        return G2Record(**_cw_fields(tau_ns, counts, n_ab, bin_ns, duration_s, offset_ns, zero_window_ns), **common)
    if period_ns is None:
        raise InputError(f"{source}: pulsed g2 needs the pulse period; pass period_ns")
    offset_source = "given"
    if offset_ns is None:
        _, offset_ns = estimate_peak_grid(tau_ns, counts, period_ns=period_ns)
        offset_source = "mirror symmetry"
    zero, sides, _ = pulsed_peak_areas(
        tau_ns, counts, period_ns=period_ns, offset_ns=offset_ns, peak_window_ns=peak_window_ns
    )
    pulsed = _pulsed_fields(period_ns, period_source, offset_ns, offset_source, peak_window_ns, zero, sides)
    return G2Record(**pulsed, **common)


def _period_for(mode: str, period_ns, sync_period_ps, tau_ns, counts) -> tuple[float | None, str | None]:
    if mode != "pulsed":
        return None, None
    if period_ns is not None:
        return require_positive("period_ns", period_ns), "given"
    if sync_period_ps is not None:
        return sync_period_ps / 1000.0, "sync"
    period, _ = estimate_peak_grid(tau_ns, counts)
    return period, "estimated"


def compute_g2(
    stream: PhotonStream | Iterable[PhotonStream],
    *,
    channels: tuple[int, int] = (0, 1),
    bin_ns: float = 0.1,
    window_ns: float = 500.0,
    mode: str = "pulsed",
    period_ns: float | None = None,
    offset_ns: float | None = None,
    peak_window_ns: float | None = None,
    zero_window_ns: float | None = None,
    microtime_gate_ns: tuple[float, float] | None = None,
) -> G2Record:
    """g2(tau) and g2(0) of a photon stream.

    Parameters
    ----------
    stream : PhotonStream or iterable of PhotonStream
        The photons, or time-ordered chunks of them (see :func:`g2_histogram_chunks`).
    channels : (int, int)
        Start and stop channel; tau = t_stop - t_start.
    bin_ns, window_ns : float
        Bin width (a whole number of ps) and half range of the histogram.
    mode : {'pulsed', 'cw'}
        Normalisation (see module docstring).
    period_ns : float, optional
        Pulse period; default the stream's sync period, else estimated from the peaks.
    offset_ns : float, optional
        Delay of the zero peak (detector/cable delay). Pulsed: default from the mirror
        symmetry of the histogram. CW: default 0.
    peak_window_ns : float, optional
        Pulsed: integration width of each peak (default the full period).
    zero_window_ns : float, optional
        CW: width around zero delay averaged for g2(0) (default one bin).
    microtime_gate_ns : (float, float), optional
        Keep only photons with micro time in [lo, hi) ns (T3 data).

    Returns
    -------
    G2Record
        g2(0) with its Poisson error, the histogram and how it was normalised.
    """
    if mode not in ("cw", "pulsed"):
        raise InputError(f"mode must be 'cw' or 'pulsed', got {mode!r}")
    chunks = [stream] if isinstance(stream, PhotonStream) else stream
    tau, counts, n_ab, pairs, last = g2_histogram_chunks(
        chunks, channels=channels, bin_ns=bin_ns, window_ns=window_ns, microtime_gate_ns=microtime_gate_ns
    )
    period, psrc = _period_for(mode, period_ns, last.sync_period_ps, tau, counts)
    settings = dict(channels=list(channels), bin_ns=bin_ns, window_ns=window_ns, mode=mode, period_ns=period_ns,
                    offset_ns=offset_ns, peak_window_ns=peak_window_ns, zero_window_ns=zero_window_ns,
                    microtime_gate_ns=microtime_gate_ns)
    return _finish(
        tau,
        counts,
        n_ab,
        pairs,
        last.duration_s,
        mode=mode,
        channels=tuple(int(c) for c in channels),
        bin_ns=_bin_ps(bin_ns) / 1000.0,
        window_ns=float(window_ns),
        period_ns=period,
        period_source=psrc,
        offset_ns=offset_ns,
        peak_window_ns=peak_window_ns,
        zero_window_ns=zero_window_ns,
        microtime_gate_ns=microtime_gate_ns,
        source=last.source,
        settings=settings,
    )


def g2_histogram_chunks(
    chunks: Iterable[PhotonStream],
    *,
    channels: tuple[int, int] = (0, 1),
    bin_ns: float = 0.1,
    window_ns: float = 500.0,
    microtime_gate_ns: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int], int, PhotonStream]:
    """Exact coincidence histogram over time-ordered chunks with bounded memory.

    Photons within one window of the end of each chunk are carried into the next;
    the histogram of (carried + new) minus that of the carried photons alone adds
    exactly the pairs with at least one new photon, so the total equals the
    histogram of the whole stream.

    Returns
    -------
    tau_ns, counts, n_per_channel, pairs, last_chunk
    """
    ca, cb = (int(c) for c in channels)
    if ca == cb:
        raise InputError(f"g2 needs two different detector channels, got {ca} and {cb}")
    w = _bin_ps(bin_ns)
    window_ps = window_ns * 1000.0
    lo, nbins = _bins(w, window_ps)
    reach = -lo + w  # any pair further apart than this falls outside all bins
    gate = _gate_ps(microtime_gate_ns)
    counts = np.zeros(nbins, np.int64)
    scratch = np.zeros(nbins, np.int64)
    tail_a = np.zeros(0, np.int64)
    tail_b = np.zeros(0, np.int64)
    n_a = n_b = 0
    pairs = 0
    last = None
    seen: dict[int, int] = {}
    for chunk in chunks:
        last = chunk
        for c, n in chunk.channel_counts().items():
            seen[c] = seen.get(c, 0) + n
        a_new, b_new = _split_channels(chunk, ca, cb, gate)
        n_a += a_new.size
        n_b += b_new.size
        a = np.concatenate([tail_a, a_new]) if tail_a.size else a_new
        b = np.concatenate([tail_b, b_new]) if tail_b.size else b_new
        _, _, p_all = cross_correlation_counts(a, b, bin_ps=w, window_ps=window_ps, out=counts)
        scratch[:] = 0
        _, _, p_tail = cross_correlation_counts(tail_a, tail_b, bin_ps=w, window_ps=window_ps, out=scratch)
        counts -= scratch
        pairs += p_all - p_tail
        if a.size or b.size:
            t_end = max(a[-1] if a.size else -(2**62), b[-1] if b.size else -(2**62))
            tail_a = a[np.searchsorted(a, t_end - reach) :]
            tail_b = b[np.searchsorted(b, t_end - reach) :]
    if last is None:
        raise FileFormatError("photon file holds no chunks")
    _check_channels(channels, seen, last.source)
    edges = lo + w * np.arange(nbins + 1, dtype=np.int64)
    return _centres_ns(edges), counts, (n_a, n_b), pairs, last


def compute_g2_file(path: str | os.PathLike, *, chunk_records: int = 1 << 22, **options) -> G2Record:
    """:func:`compute_g2` of a PTU or npz file; PTU files are read in chunks of
    ``chunk_records`` records (bounded memory). ``options`` as for :func:`compute_g2`."""
    return compute_g2(iter_photon_chunks(path, chunk_records=chunk_records), **options)


# ---------------------------------------------------------------------------------
# processed g2 curves


def read_g2_text(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Read a processed g2 curve: two columns (tau in ns, counts or g2) plus header.

    Header ``key: value`` lines (e.g. ``tauStart_ns: -210``) are returned as a dict.
    The tau axis must be uniform.
    """
    tau, y, meta = read_two_column_text(path)
    uniform_step(tau, str(path))
    return tau, y, meta


def g2_from_peak_areas(
    tau_ns: np.ndarray,
    counts: np.ndarray,
    *,
    period_ns: float | None = None,
    offset_ns: float | None = None,
    peak_window_ns: float | None = None,
    source: str = "",
) -> G2Record:
    """Pulsed g2(0) of a processed coincidence curve from its peak areas.

    Parameters
    ----------
    tau_ns, counts : ndarray
        Delay axis (uniform) and coincidence counts (or any quantity proportional to
        them; the error is Poisson only when they are counts).
    period_ns, offset_ns : float, optional
        Peak comb; estimated from the curve when not given (see
        :func:`estimate_peak_grid`).
    peak_window_ns : float, optional
        Integration width of each peak, default the full period.

    Returns
    -------
    G2Record
        ``g2`` is the curve over the mean side-peak level per bin (the uncorrelated
        expectation for a stationary source); ``n_photons`` and ``duration_s`` are None
        (listed in ``not_computed``) since a processed curve carries neither.
    """
    tau = np.asarray(tau_ns, float)
    c = np.asarray(counts, float)
    if tau.ndim != 1 or c.shape != tau.shape or tau.size < 8:
        raise InputError("tau_ns and counts must be 1-D of equal length (>= 8 samples)")
    step = uniform_step(tau, source or "g2 curve")
    psrc = "given" if period_ns is not None else "estimated"
    if offset_ns is None or period_ns is None:
        period, offset = estimate_peak_grid(tau, c, period_ns=period_ns)
        osrc = "mirror symmetry"
        if offset_ns is not None:
            offset, osrc = float(offset_ns), "given"
    else:
        period, offset, osrc = float(period_ns), float(offset_ns), "given"
    zero, sides, _ = pulsed_peak_areas(tau, c, period_ns=period, offset_ns=offset, peak_window_ns=peak_window_ns)
    # without photon numbers and duration, normalise by the mean side-peak level per
    # bin: for a stationary source this equals the uncorrelated (CW) expectation
    window = period if peak_window_ns is None else peak_window_ns
    level = float(np.mean(sides)) * step / window
    return G2Record(
        mode="pulsed",
        tau_ns=tau,
        counts=c,
        g2=c / level,
        channels=(0, 1),
        bin_ns=step,
        window_ns=float(max(-tau[0], tau[-1])),
        n_pairs=int(round(c.sum())),
        **_pulsed_fields(period, psrc, offset, osrc, peak_window_ns, zero, sides),
        source=source,
        settings=dict(period_ns=period_ns, offset_ns=offset_ns, peak_window_ns=peak_window_ns),
        not_computed={"n_photons": "a processed g2 curve carries no photon numbers",
                      "duration_s": "a processed g2 curve carries no acquisition time"},
    )

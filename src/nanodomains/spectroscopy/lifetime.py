"""Fluorescence lifetimes from TCSPC decay histograms by Poisson maximum likelihood.

Model
-----
A decay histogram n_j (bins of width dt starting at t_j) is fitted with

    mu_j = sum_i A_i [IRF(. - s) (*) k_i]_j + b,    k_i(m) = (1 - q_i) q_i^m,  q_i = exp(-dt / tau_i),

where IRF is the measured instrument response (background-subtracted, normalised to
unit sum), shifted by s (cubic-spline interpolation, a free parameter: the IRF and
decay are rarely recorded with identical delays), k_i the exponential decay
integrated over each bin (normalised, so A_i is the number of photons of component
i), and b a constant background per bin (dark counts, ambient light). The discrete
convolution with a geometric kernel is the recursion y_j = q y_(j-1) + (1 - q) x_j
(scipy.signal.lfilter). With periodic excitation of period T (N = T/dt bins) photons
from earlier pulses add up (incomplete decay, "pile-up" of the tail); the periodic
solution is y_j + q^(j+1) y_(N-1) / (1 - q^N), exact for the geometric kernel.

Without an IRF, a tail fit uses mu_j = sum_i a_i exp(-(t_j - t_0) / tau_i) + b on
bins after t_0.

Estimation
----------
Photon counts are Poisson; the estimate minimises the Poisson deviance

    D = 2 sum_j [mu_j - n_j + n_j ln(n_j / mu_j)],

which is -2 log-likelihood up to a constant and handles the many near-zero bins of a
decay tail where least squares is biased (Bajzer et al., Eur. Biophys. J. 20, 247
(1991); Maus et al., Anal. Chem. 73, 2078 (2001)). scipy.optimize.minimize
(L-BFGS-B, bounds keep amplitudes, lifetimes and background physical) does the
minimisation. Uncertainties come from the inverse Fisher information of the Poisson
likelihood, I = J^T diag(1/mu) J with J = d mu / d theta at the optimum (Cramer-Rao).
The fit quality is reported as reduced deviance D/(M - p) and Pearson chi2/(M - p);
both are ~1 for an adequate model.

Goodness and model choice
-------------------------
A reduced deviance near 1 is necessary, not sufficient: a wrong model can spread its
misfit over many low-count bins. Two further checks are reported:

* **Runs test** (Wald and Wolfowitz, Ann. Math. Stat. 11, 147 (1940)) on the signs of
  the residuals n_j - mu_j in the fitted range: with n+ positive and n- negative signs
  (N = n+ + n-), the number of runs R has mean 1 + 2 n+ n- / N and variance
  2 n+ n- (2 n+ n- - N) / (N^2 (N - 1)) when residuals are independent; a systematic
  misfit gives long runs, so ``runs_test_p`` is the one-sided normal p-value of too
  few runs (``runs_test_z`` < 0).
* **One against two exponentials** on the same bins by information criteria,
  AIC = D + 2k (Akaike, IEEE Trans. Autom. Control 19, 716 (1974)) and
  BIC = D + k ln M (Schwarz, Ann. Stat. 6, 461 (1978)); D is -2 log-likelihood up
  to a constant that cancels between models of the same bins. :func:`fit_lifetime`
  fits both (``comparison``); the one-exponential model is flagged inadequate when
  BIC prefers two exponentials by more than 10 ("very strong" evidence, Kass and
  Raftery, J. Am. Stat. Assoc. 90, 773 (1995)) or its residuals fail the runs test at
  p < 0.001, and the warning names the two-exponential lifetimes.

Start of a tail fit
-------------------
Without an IRF the fit starts where the excitation has died out. The rule (used when
``start_ns`` is not given, recorded in ``start_rule`` and drawn in the plot):
``t_start = t_peak + 2 (t_peak - t_half)``, with t_half the last time before the
peak at which the counts are below half the maximum: the rise of the decay is the
IRF's width, and two rise times after the peak the IRF (for a response narrower than
the decay) holds less than a few per cent of its area. With an IRF, the
reconvolution fit starts at the first bin of the histogram (``start_rule`` says so).

Results
-------
Both fits return a :class:`~nanodomains.records.LifetimeRecord` (schema
``nanodomains.lifetime/2``): components sorted by lifetime, each lifetime and amplitude
a :class:`~nanodomains.records.Measured`, the goodness numbers, and the decay and model
curves. :func:`fit_lifetime` is the one place that chooses between them (IRF given ->
reconvolution, else tail fit); :func:`plot_lifetime` draws a result.
"""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path

import numpy as np
from scipy import ndimage, optimize, signal

from nanodomains.errors import FitError, InputError, require_positive
from nanodomains.records import LifetimeComponent, LifetimeModelFit, LifetimeRecord, Measured
from nanodomains.spectroscopy.photons_io import DecayHistogram, read_decay
from nanodomains.timetags import PhotonStream, identify_file, iter_photon_chunks

__all__ = [
    "LifetimeRecord",
    "fit_lifetime",
    "plot_lifetime",
    "tcspc_histogram",
    "tcspc_histogram_file",
    "load_decay",
    "fit_reconvolution",
    "fit_tail",
    "poisson_deviance",
    "exp_convolve",
    "runs_test",
    "information_criteria",
]

#: BIC difference beyond which two exponentials are preferred "very strongly" (Kass and Raftery 1995)
BIC_STRONG = 10.0
#: runs-test p-value below which residuals are called structured
RUNS_P_LIMIT = 1e-3
#: largest micro-time histogram accepted (bins); beyond it the micro times are corrupt
MAX_HISTOGRAM_BINS = 1 << 22

_TINY = 1e-12


# ---------------------------------------------------------------------------------
# histograms


def _micro_counts(stream: PhotonStream, channel: int | None, binning: int) -> np.ndarray:
    """Counts per micro-time bin of one stream (chunk), one sync period long.

    Without a recorded sync period (Full_SMS files) the histogram ends at the latest
    micro time. Micro times far beyond the period (corrupt data) are refused rather
    than histogrammed into an enormous array.
    """
    if stream.microtimes_ps is None:
        raise InputError(f"{stream.source or 'photon stream'}: a TCSPC histogram needs T3 data (micro times)")
    if int(binning) != binning or binning < 1:
        raise InputError(f"binning must be an integer >= 1, got {binning!r}")
    micro = stream.microtimes_ps if channel is None else stream.microtimes_ps[stream.channels == channel]
    res = stream.resolution_ps
    idx = np.rint(micro / res).astype(np.int64) // int(binning)
    if idx.size and idx.min() < 0:
        raise InputError(f"{stream.source}: negative micro times")
    period_bins = int(round(stream.sync_period_ps / (res * binning))) if stream.sync_period_ps else 1
    nbins = max(period_bins, int(idx.max()) + 1 if idx.size else 1)
    if nbins > max(4 * period_bins, MAX_HISTOGRAM_BINS):
        raise InputError(
            f"{stream.source}: micro times up to {int(micro.max())} ps would need a histogram of {nbins} bins "
            f"(sync period {stream.sync_period_ps} ps, bin {res * binning:g} ps): corrupt micro times")
    return np.bincount(idx, minlength=nbins).astype(float)


def _decay_from_counts(counts: np.ndarray, stream: PhotonStream, binning: int, source: str) -> DecayHistogram:
    bin_ns = stream.resolution_ps * binning / 1000.0
    return DecayHistogram(
        time_ns=np.arange(counts.size) * bin_ns,
        counts=counts,
        bin_ns=bin_ns,
        period_ns=stream.sync_period_ps / 1000.0 if stream.sync_period_ps else None,
        source=source,
        warnings=list(stream.warnings),
    )


def _check_channel(channel, seen: dict[int, int], source) -> None:
    if channel is not None and seen.get(int(channel), 0) == 0:
        raise InputError(f"{source}: channel {channel} holds no photons; channels: {sorted(seen)}")


def tcspc_histogram(
    stream: PhotonStream,
    *,
    channel: int | None = None,
    binning: int = 1,
) -> DecayHistogram:
    """TCSPC decay histogram from the micro times of a T3 stream.

    Parameters
    ----------
    stream : PhotonStream
        T3 stream (``microtimes_ps`` and ``sync_period_ps`` set).
    channel : int, optional
        Detector channel; all channels when None.
    binning : int
        Number of micro-time bins merged into one histogram bin.

    Returns
    -------
    DecayHistogram
        Bins of ``binning * resolution_ps`` covering one sync period (rounded to whole
        bins, extended if micro times reach beyond).
    """
    counts = _micro_counts(stream, channel, binning)
    _check_channel(channel, stream.channel_counts(), stream.source)
    return _decay_from_counts(counts, stream, binning, stream.source)


def tcspc_histogram_file(
    path: str | os.PathLike,
    *,
    channel: int | None = None,
    binning: int = 1,
    chunk_records: int = 1 << 22,
) -> DecayHistogram:
    """:func:`tcspc_histogram` of a T3 PTU/npz file, accumulated chunk by chunk."""
    total: np.ndarray | None = None
    last: PhotonStream | None = None
    seen: dict[int, int] = {}
    for chunk in iter_photon_chunks(path, chunk_records=chunk_records):
        for c, k in chunk.channel_counts().items():
            seen[c] = seen.get(c, 0) + k
        counts = _micro_counts(chunk, channel, binning)
        if total is None:
            total = counts
        else:
            if counts.size > total.size:
                total = np.concatenate([total, np.zeros(counts.size - total.size)])
            total[: counts.size] += counts
        last = chunk
    if last is None:
        raise InputError(f"{path}: holds no photons")
    _check_channel(channel, seen, path)
    if total.sum() <= 0:
        raise InputError(f"{path}: the decay histogram is empty (no photons{'' if channel is None else f' in channel {channel}'})")
    return _decay_from_counts(total, last, binning, str(path))


def load_decay(path: str | os.PathLike, *, channel: int | None = None, binning: int = 1,
               curve: int = 0) -> DecayHistogram:
    """Decay histogram from a T3 photon file or a histogram file, by the file's magic bytes.

    Photon files (PTU, HT3, PT3, T3R, SPC, Photon-HDF5, Full_SMS, npz) are histogrammed
    chunk by chunk (:func:`tcspc_histogram_file`); histogram files (PHU, PHD, two-column
    text) are read by :func:`~nanodomains.spectroscopy.photons_io.read_decay`.
    """
    kind = identify_file(path)
    if kind.is_time_tags:
        if curve != 0:
            raise InputError(f"{path}: curve applies to histogram files, this is {kind.description}")
        return tcspc_histogram_file(path, channel=channel, binning=binning)
    if channel is not None or binning != 1:
        raise InputError(f"{path}: channel/binning apply to T3 photon files only, this is {kind.description}")
    return read_decay(path, curve=curve)


# ---------------------------------------------------------------------------------
# model pieces


def poisson_deviance(counts: np.ndarray, mu: np.ndarray) -> float:
    """Poisson deviance 2 sum [mu - n + n ln(n / mu)] (0 ln 0 = 0)."""
    n = np.asarray(counts, float)
    m = np.maximum(np.asarray(mu, float), _TINY)
    pos = n > 0
    return float(2.0 * (np.sum(m - n) + np.sum(n[pos] * np.log(n[pos] / m[pos]))))


def runs_test(residuals: np.ndarray) -> tuple[float, float]:
    """Wald-Wolfowitz runs test on the signs of residuals (zeros dropped).

    Returns
    -------
    z : float
        (R - E[R]) / sd(R); negative when there are too few runs (structured residuals).
    p : float
        One-sided p-value P(Z <= z) of too few runs; NaN when fewer than 2 signs of
        either kind (the test is undefined).

    Examples
    --------
    >>> z, p = runs_test(np.array([1, 1, 1, 1, 1, -1, -1, -1, -1, -1] * 3))
    >>> bool(p < 0.01)
    True
    """
    r = np.asarray(residuals, float)
    signs = np.sign(r[np.isfinite(r) & (r != 0)])
    n_pos, n_neg = int(np.sum(signs > 0)), int(np.sum(signs < 0))
    n = n_pos + n_neg
    if n_pos < 2 or n_neg < 2:
        return float("nan"), float("nan")
    runs = 1 + int(np.count_nonzero(signs[1:] != signs[:-1]))
    mean = 1.0 + 2.0 * n_pos * n_neg / n
    var = 2.0 * n_pos * n_neg * (2.0 * n_pos * n_neg - n) / (n * n * (n - 1.0))
    z = (runs - mean) / math.sqrt(var) if var > 0 else float("nan")
    p = float(0.5 * math.erfc(-z / math.sqrt(2.0))) if math.isfinite(z) else float("nan")
    return float(z), p


def information_criteria(deviance: float, n_params: int, n_bins: int) -> tuple[float, float]:
    """AIC = D + 2k and BIC = D + k ln(M) from the Poisson deviance of a fit (lower is better)."""
    return float(deviance + 2 * n_params), float(deviance + n_params * math.log(n_bins))


def exp_convolve(x: np.ndarray, tau_bins: float, *, periodic: bool = False) -> np.ndarray:
    """Convolve ``x`` with the bin-integrated, unit-sum exponential (1 - q) q^m.

    Parameters
    ----------
    x : ndarray
        Input (e.g. the IRF), one period long when ``periodic``.
    tau_bins : float
        Lifetime in units of the bin width.
    periodic : bool
        Circular convolution with the infinite kernel (excitation repeats every
        ``len(x)`` bins).
    """
    q = math.exp(-1.0 / tau_bins)
    y = signal.lfilter([1.0 - q], [1.0, -q], x)
    if periodic:
        n = y.size
        y = y + q ** np.arange(1, n + 1) * (y[-1] / (1.0 - q**n))
    return y


def _shift(x: np.ndarray, shift_bins: float, periodic: bool) -> np.ndarray:
    out = ndimage.shift(x, shift_bins, order=3, mode="grid-wrap" if periodic else "constant", cval=0.0)
    return np.maximum(out, 0.0)


# ---------------------------------------------------------------------------------
# result: a LifetimeRecord (nanodomains.records) and its figure


def plot_lifetime(result: LifetimeRecord, path: str | os.PathLike | None = None):
    """Decay, model and weighted residuals (log scale); saved to ``path`` if given.

    Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    fig, (ax, axr) = plt.subplots(
        2, 1, figsize=(6.4, 4.8), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    t, n, m = result.time_ns, result.counts, result.model
    ax.semilogy(t, np.maximum(n, 0.5), ".", ms=2, color="0.4", label="data")
    ax.semilogy(t, np.maximum(m, 1e-3), "-", color="C3", label="model")
    lo, hi = result.fit_range_ns if result.fit_range_ns is not None else (float(t[0]), float(t[-1]))
    ax.axvspan(lo, hi, color="C0", alpha=0.06, label="fit range")
    rule = textwrap.fill(f"fit start: {result.start_rule or f'{lo:.4g} ns'}", 60)
    ax.axvline(lo, color="C0", lw=0.8, ls="--", label=rule)
    taus = ", ".join(f"{c.tau_ns.value:.3g}±{c.tau_ns.stderr:.2g}" for c in result.components)
    title = f"{result.method}: tau = {taus} ns, reduced deviance {result.reduced_deviance:.2f}"
    if result.runs_test_p is not None:
        title += f", runs p = {result.runs_test_p:.2g}"
    others = [m for m in result.comparison if m.n_exp != result.n_exp]
    for m in others:
        alt = " / ".join(f"{x.value:.3g}" for x in m.tau_ns)
        title += f"\n{m.n_exp} exp: {alt} ns, red. dev. {m.reduced_deviance:.2f}, dBIC {m.bic - result.bic:+.1f}"
    ax.set_title(title, fontsize=8)
    ax.set_ylabel("counts")
    ax.set_ylim(0.5, max(float(np.max(n)) * 2, 1.0))
    ax.legend(fontsize=7, loc="upper right")
    sel = (t >= lo) & (t <= hi)
    axr.plot(t[sel], result.residuals[sel], lw=0.5, color="0.2")
    axr.axhline(0, color="C3", lw=0.8)
    axr.set_ylabel("(n-mu)/sqrt(mu)")
    axr.set_xlabel("time (ns)")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig


# ---------------------------------------------------------------------------------
# Poisson maximum likelihood engine


def _poisson_ml(model, jacobian, counts, theta0, bounds, scale):
    """Minimise the Poisson deviance; return theta, covariance, deviance, converged, message."""
    n = counts
    scale = np.asarray(scale, float)

    def fun(z):
        theta = z * scale
        mu = np.maximum(model(theta), _TINY)
        J = jacobian(theta, mu)
        dev = poisson_deviance(n, mu)
        grad = 2.0 * (J.T @ (1.0 - n / mu)) * scale
        return dev, grad

    zb = [(None if lo is None else lo / s, None if hi is None else hi / s) for (lo, hi), s in zip(bounds, scale)]
    z0 = np.asarray(theta0, float) / scale
    res = optimize.minimize(fun, z0, jac=True, method="L-BFGS-B", bounds=zb, options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9})
    # restart once from the optimum: L-BFGS-B memory resets help on curved valleys
    res2 = optimize.minimize(fun, res.x, jac=True, method="L-BFGS-B", bounds=zb, options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-10})
    if res2.fun <= res.fun:
        res = res2
    theta = res.x * scale
    lo = np.array([-np.inf if b[0] is None else b[0] for b in bounds])
    hi = np.array([np.inf if b[1] is None else b[1] for b in bounds])
    theta, decrement = _fisher_scoring(model, jacobian, n, theta, lo, hi)
    converged = decrement < 1e-3  # expected further decrease of the deviance
    msg = f"L-BFGS-B: {res.message}; Fisher scoring: remaining decrement {decrement:.2g}"
    mu = np.maximum(model(theta), _TINY)
    J = jacobian(theta, mu)
    fisher = J.T @ (J / mu[:, None])
    try:
        cov = np.linalg.inv(fisher)
    except np.linalg.LinAlgError as exc:
        raise FitError("singular Fisher information: the parameters cannot be separated (try fewer exponentials)") from exc
    if not np.all(np.isfinite(cov)) or np.any(np.diag(cov) < 0):
        raise FitError("Fisher information not positive definite: parameters not identifiable (try fewer exponentials)")
    return theta, cov, poisson_deviance(n, mu), mu, bool(converged), msg


def _fisher_scoring(model, jacobian, n, theta, lo, hi, *, max_iter=50):
    """Polish a Poisson ML estimate by Fisher scoring (Gauss-Newton for the deviance).

    Parameters held at an active bound are frozen. Returns the estimate and the
    Newton decrement g^T (2 I)^-1 g of the free parameters, the deviance decrease a
    further full step would still bring.
    """
    theta = np.clip(theta, lo, hi)
    mu = np.maximum(model(theta), _TINY)
    dev = poisson_deviance(n, mu)
    decrement = np.inf
    for _ in range(max_iter):
        J = jacobian(theta, mu)
        g = 2.0 * (J.T @ (1.0 - n / mu))
        H = 2.0 * (J.T @ (J / mu[:, None]))
        atol = 1e-12 * np.maximum(1.0, np.abs(theta))
        free = ~(((theta <= lo + atol) & (g > 0)) | ((theta >= hi - atol) & (g < 0)))
        if not np.any(free):
            return theta, 0.0
        try:
            step = np.linalg.solve(H[np.ix_(free, free)], g[free])
        except np.linalg.LinAlgError:
            break
        decrement = float(g[free] @ step)
        if decrement < 1e-8:
            break
        lam = 1.0
        while lam > 1e-6:
            trial = theta.copy()
            trial[free] = trial[free] - lam * step
            trial = np.clip(trial, lo, hi)
            mu_t = np.maximum(model(trial), _TINY)
            dev_t = poisson_deviance(n, mu_t)
            if dev_t <= dev:
                break
            lam *= 0.5
        else:
            break
        theta, mu, dev = trial, mu_t, dev_t
    return theta, decrement


def _fd_column(f, theta, k, h):
    tp = theta.copy()
    tm = theta.copy()
    tp[k] += h
    tm[k] -= h
    return (f(tp) - f(tm)) / (2 * h)


def _quality(n_fit, mu_fit, dev, p):
    dof = int(n_fit.size - p)
    if dof <= 0:
        raise FitError(f"fit has {n_fit.size} bins for {p} parameters: no degrees of freedom")
    chi2 = float(np.sum((n_fit - mu_fit) ** 2 / np.maximum(mu_fit, _TINY)))
    return dof, dev / dof, chi2 / dof


def _mean_tau(amps, taus, cov_amp_tau):
    """Intensity-weighted mean lifetime sum(A_i tau_i)/sum(A_i) and its delta-method error."""
    A = np.asarray(amps, float)
    t = np.asarray(taus, float)
    S = A.sum()
    if S <= 0:
        return float("nan"), float("nan")
    mean = float(np.sum(A * t) / S)
    grad = np.concatenate([(t - mean) / S, A / S])
    return mean, float(math.sqrt(max(grad @ cov_amp_tau @ grad, 0.0)))


def _trim_range(counts: np.ndarray, fit_range_ns, t: np.ndarray, name: str) -> tuple[int, int]:
    if fit_range_ns is None:
        nz = np.flatnonzero(counts > 0)
        if nz.size == 0:
            raise InputError(f"{name}: the decay histogram is empty")
        # bins after the last photon are outside the recorded range (TCSPC window end)
        return 0, int(nz[-1]) + 1
    lo, hi = fit_range_ns
    tol = 1e-3 * (t[1] - t[0])  # bin edges computed as k * bin_ns carry rounding
    i0 = int(np.searchsorted(t, lo - tol))
    i1 = int(np.searchsorted(t, hi + tol))
    if i1 - i0 < 3:
        raise InputError(f"{name}: fit range {fit_range_ns} ns holds fewer than 3 bins")
    return i0, i1


# ---------------------------------------------------------------------------------
# reconvolution fit


def _irf_background(irf: np.ndarray) -> float:
    """Median of the IRF bins below 1 % of its maximum: the flat floor under the response."""
    low = irf[irf < 0.01 * irf.max()]
    return float(np.median(low)) if low.size else 0.0


def fit_reconvolution(
    decay: DecayHistogram,
    irf: DecayHistogram,
    *,
    n_exp: int = 1,
    period_ns: float | None = None,
    fit_range_ns: tuple[float, float] | None = None,
    irf_background: float | str | None = "auto",
    tau_init_ns: list[float] | None = None,
) -> LifetimeRecord:
    """Fit 1-3 exponentials convolved with a measured IRF by Poisson maximum likelihood.

    Parameters
    ----------
    decay, irf : DecayHistogram
        Decay and instrument response on the same bin width (and time origin up to
        whole bins).
    n_exp : {1, 2, 3}
        Number of exponential components.
    period_ns : float, optional
        Excitation period: when given, photons of earlier pulses are included
        (periodic model). Default: no periodic term for text data; the period of a
        histogram built from T3 data is used when it spans the whole period.
    fit_range_ns : (float, float), optional
        Time range of bins entering the likelihood; default from the first bin to
        the last bin with counts.
    irf_background : 'auto', float or None
        Constant subtracted from the IRF before normalising: 'auto' takes the median
        of IRF bins below 1 % of the maximum; None or 0 subtracts nothing.
    tau_init_ns : list of float, optional
        Starting lifetimes; default from the first moment of the decay tail.

    Returns
    -------
    LifetimeRecord
        ``method="reconvolution"``; amplitudes are photons per component.
    """
    name = decay.source or "decay"
    if n_exp not in (1, 2, 3):
        raise InputError(f"n_exp must be 1, 2 or 3, got {n_exp!r}")
    dt = decay.bin_ns
    if abs(irf.bin_ns - dt) > 1e-3 * dt:
        raise InputError(f"IRF bin width {irf.bin_ns} ns differs from the decay's {dt} ns")
    M = decay.counts.size
    if period_ns is None and decay.period_ns is not None and abs(decay.period_ns - M * dt) <= dt:
        period_ns = decay.period_ns
    periodic = period_ns is not None
    g, irf_bg = _irf_on_decay_grid(decay, irf, irf_background)
    grid = _model_grid(g, period_ns, M, dt) if periodic else g
    i0, i1 = _trim_range(decay.counts, fit_range_ns, decay.time_ns, name)
    n = decay.counts[i0:i1]
    if n.sum() <= 0:
        raise InputError(f"{name}: no counts in the fit range")
    model, jacobian = _reconvolution_model(grid, n_exp, dt, periodic, i0, i1)
    theta0, bounds, scale = _reconvolution_start(decay, g, model, n_exp, (i0, i1), tau_init_ns)
    fit = _poisson_ml(model, jacobian, n, theta0, bounds, scale)
    theta, cov = fit[0], fit[1]
    return _build_result(
        "reconvolution",
        decay,
        (i0, i1),
        fit,
        n_exp,
        tail_amplitudes=False,
        shift_ns=Measured(value=float(theta[2 * n_exp]), stderr=float(np.sqrt(cov[2 * n_exp, 2 * n_exp]))),
        period_ns=float(period_ns) if periodic else None,
        irf_background=irf_bg,
        irf_source=irf.source,
        start_rule=("whole histogram (IRF reconvolution): first bin to last bin with counts" if fit_range_ns is None
                    else f"given: {fit_range_ns[0]:g}-{fit_range_ns[1]:g} ns"),
        settings=dict(n_exp=n_exp, period_ns=period_ns, fit_range_ns=fit_range_ns,
                      irf_background=irf_background, tau_init_ns=tau_init_ns),
    )


def _irf_on_decay_grid(decay: DecayHistogram, irf: DecayHistogram, irf_background) -> tuple[np.ndarray, float]:
    """The IRF on the decay's bins (aligned by whole bins of time origin), background
    subtracted and normalised to unit sum; returns it and the subtracted background."""
    M, dt = decay.counts.size, decay.bin_ns
    lag = int(round((irf.time_ns[0] - decay.time_ns[0]) / dt))
    g = np.zeros(M)
    src = irf.counts
    lo_d, lo_s = max(lag, 0), max(-lag, 0)
    k = min(M - lo_d, src.size - lo_s)
    if k <= 0:
        raise InputError("the IRF and the decay do not overlap in time")
    g[lo_d : lo_d + k] = src[lo_s : lo_s + k]
    nz = np.flatnonzero(g > 0)
    if nz.size == 0:
        raise InputError(f"IRF {irf.source}: empty")
    if irf_background == "auto":
        irf_bg = _irf_background(g[: nz[-1] + 1])
    elif irf_background is None:
        irf_bg = 0.0
    else:
        irf_bg = float(irf_background)
        if not math.isfinite(irf_bg) or irf_bg < 0:
            raise InputError(f"irf_background must be 'auto', None or a number >= 0, got {irf_background!r}")
    g[: nz[-1] + 1] = np.maximum(g[: nz[-1] + 1] - irf_bg, 0.0)
    if g.sum() <= 0:
        raise InputError(f"IRF {irf.source}: nothing left after subtracting background {irf_bg}")
    return g / g.sum(), irf_bg


def _model_grid(g: np.ndarray, period_ns: float, M: int, dt: float) -> np.ndarray:
    """The IRF on one excitation period (zero beyond the histogram) for the periodic model."""
    N = int(round(require_positive("period_ns", period_ns) / dt))
    if N < M:
        raise InputError(f"period {period_ns} ns is shorter than the histogram ({M * dt:.4g} ns)")
    grid = np.zeros(N)
    grid[:M] = g
    return grid


def _reconvolution_model(grid: np.ndarray, n_exp: int, dt: float, periodic: bool, i0: int, i1: int):
    """Model mu(theta) on bins [i0, i1) and its Jacobian; theta = [amplitudes, taus, shift, background]."""

    def components(theta):
        xs = _shift(grid, theta[2 * n_exp] / dt, periodic)
        return [exp_convolve(xs, theta[n_exp + i] / dt, periodic=periodic)[i0:i1] for i in range(n_exp)]

    def model(theta):
        comps = components(theta)
        return sum(theta[i] * comps[i] for i in range(n_exp)) + theta[-1]

    def jacobian(theta, mu):
        comps = components(theta)
        J = np.empty((i1 - i0, theta.size))
        for i in range(n_exp):
            J[:, i] = comps[i]
        for i in range(n_exp):
            h = 1e-4 * theta[n_exp + i]
            J[:, n_exp + i] = _fd_column(model, theta, n_exp + i, h)
        J[:, 2 * n_exp] = _fd_column(model, theta, 2 * n_exp, 0.05 * dt)
        J[:, -1] = 1.0
        return J

    return model, jacobian


def _reconvolution_start(decay: DecayHistogram, g: np.ndarray, model, n_exp: int, fit_range, tau_init_ns):
    """Starting values (with a coarse search of the IRF shift), bounds and scales."""
    i0, i1 = fit_range
    t, n_all, dt = decay.time_ns, decay.counts, decay.bin_ns
    n = n_all[i0:i1]
    peak = int(np.argmax(n_all))
    irf_peak = int(np.argmax(g))
    pre = n_all[i0 : max(i0 + 1, min(irf_peak, peak) - int(round(0.5 / dt)))]
    b0 = float(np.mean(pre)) if pre.size >= 10 else float(np.percentile(n, 5))
    total = max(float(n.sum() - b0 * n.size), 1.0)
    if tau_init_ns is None:
        tail = np.clip(n_all[peak:i1] - b0, 0, None)
        tt = t[peak:i1] - t[peak]
        tau0 = float(np.sum(tail * tt) / tail.sum()) if tail.sum() > 0 else 10 * dt
        tau0 = min(max(tau0, 3 * dt), (i1 - i0) * dt)
        taus = {1: [tau0], 2: [0.4 * tau0, 2.0 * tau0], 3: [0.2 * tau0, tau0, 3.0 * tau0]}[n_exp]
    else:
        taus = [require_positive("tau_init_ns", v) for v in tau_init_ns]
        if len(taus) != n_exp:
            raise InputError(f"tau_init_ns needs {n_exp} values, got {len(taus)}")
    amps = [total / n_exp] * n_exp
    # coarse search of the IRF shift (the likelihood is multimodal in it)
    best = None
    for s in np.arange(-40, 41, 2) * dt:
        th = np.array(amps + taus + [s, b0])
        mu = model(th)
        scale_fac = (n.sum() - b0 * n.size) / max(float((mu - b0).sum()), _TINY)
        th[:n_exp] *= max(scale_fac, _TINY)
        dev = poisson_deviance(n, model(th))
        if best is None or dev < best[0]:
            best = (dev, th)
    span = (i1 - i0) * dt
    bounds = (
        [(0.0, None)] * n_exp
        + [(0.2 * dt, 100.0 * span)] * n_exp
        + [(-0.5 * span, 0.5 * span)]
        + [(0.0, None)]
    )
    scale = np.concatenate([np.full(n_exp, total), np.array(taus), [max(10 * dt, 1e-3)], [max(b0, 1.0)]])
    return best[1], bounds, scale


def _build_result(method, decay, fit_range, fit, n_exp, *, tail_amplitudes, **extra) -> LifetimeRecord:
    """Sort components by lifetime, derive fractions and the mean lifetime with errors.

    Parameters are ``[amplitudes..., taus..., (shift,) background]``. Reconvolution
    amplitudes are photons per component; tail amplitudes are counts per bin at the
    start of the fit, i.e. a_i tau_i / dt photons.
    """
    theta, cov, dev, mu, ok, msg = fit
    i0, i1 = fit_range
    dt = decay.bin_ns
    err = np.sqrt(np.diag(cov))
    order = np.argsort(theta[n_exp : 2 * n_exp])
    idx_amp, idx_tau = order, n_exp + order
    amp, tau = theta[idx_amp], theta[idx_tau]
    sel = np.concatenate([idx_amp, idx_tau])
    # photons per component and the Jacobian of (photons, tau) w.r.t. (amplitude, tau)
    jac = np.eye(2 * n_exp)
    if tail_amplitudes:
        photons = amp * tau / dt
        jac[np.arange(n_exp), np.arange(n_exp)] = tau / dt
        jac[np.arange(n_exp), n_exp + np.arange(n_exp)] = amp / dt
    else:
        photons = amp
    mean, mean_err = _mean_tau(photons, tau, jac @ cov[np.ix_(sel, sel)] @ jac.T)
    n_fit = decay.counts[i0:i1]
    dof, rdev, rchi2 = _quality(n_fit, mu, dev, theta.size)
    runs_z, runs_p = runs_test(n_fit - mu)
    aic, bic = information_criteria(dev, theta.size, n_fit.size)
    full_model = np.full(decay.counts.size, np.nan)
    full_model[i0:i1] = mu
    total = float(photons.sum())
    fractions = photons / total if total > 0 else np.full(n_exp, np.nan)
    components = tuple(
        LifetimeComponent(tau_ns=Measured(value=tau[i], stderr=err[idx_tau][i]),
                          amplitude=Measured(value=amp[i], stderr=err[idx_amp][i]),
                          fraction=float(fractions[i]) if np.isfinite(fractions[i]) else None)
        for i in range(n_exp)
    )
    return LifetimeRecord(
        method=method,
        n_exp=n_exp,
        components=components,
        tau_mean_ns=Measured(value=mean, stderr=mean_err),
        background=Measured(value=float(theta[-1]), stderr=float(err[-1])),
        deviance=dev,
        reduced_deviance=rdev,
        reduced_chi2=rchi2,
        dof=dof,
        fit_range_ns=(float(decay.time_ns[i0]), float(decay.time_ns[i1 - 1])),
        converged=ok,
        message=msg,
        runs_test_z=runs_z if math.isfinite(runs_z) else None,
        runs_test_p=runs_p if math.isfinite(runs_p) else None,
        aic=aic,
        bic=bic,
        warnings=tuple(decay.warnings),
        source=decay.source,
        time_ns=decay.time_ns.copy(),
        counts=decay.counts.copy(),
        model=full_model,
        **extra,
    )


# ---------------------------------------------------------------------------------
# tail fit


def fit_tail(
    decay: DecayHistogram,
    *,
    n_exp: int = 1,
    start_ns: float | None = None,
    stop_ns: float | None = None,
) -> LifetimeRecord:
    """Fit exponentials plus background to the decay tail (no IRF) by Poisson ML.

    Parameters
    ----------
    decay : DecayHistogram
    n_exp : {1, 2, 3}
    start_ns : float, optional
        First time fitted; default the peak time plus twice its rise time (peak
        minus the half-maximum crossing before it), where the IRF has died out for
        an IRF narrower than the decay.
    stop_ns : float, optional
        Last time fitted; default the last bin with counts.

    Returns
    -------
    LifetimeRecord
        ``method="tail"``; amplitudes are counts per bin at the start of the fit.
    """
    name = decay.source or "decay"
    if n_exp not in (1, 2, 3):
        raise InputError(f"n_exp must be 1, 2 or 3, got {n_exp!r}")
    t, n_all, dt = decay.time_ns, decay.counts, decay.bin_ns
    if not n_all.sum() > 0:
        raise InputError(f"{name}: the decay histogram is empty (all counts zero)")
    i0, rule = tail_start(decay) if start_ns is None else (
        int(np.searchsorted(t, start_ns - 1e-3 * dt)), f"given: {start_ns:g} ns")
    if stop_ns is None:
        nz = np.flatnonzero(n_all > 0)
        i1 = int(nz[-1]) + 1
    else:
        i1 = int(np.searchsorted(t, stop_ns + 1e-3 * dt))
    if i1 - i0 < 2 * n_exp + 3:
        raise InputError(f"{name}: tail fit range holds {max(i1 - i0, 0)} bins, too few for {n_exp} exponentials")
    n = n_all[i0:i1]
    x = t[i0:i1] - t[i0]

    def model(theta):
        out = np.full(x.size, theta[-1])
        for i in range(n_exp):
            out = out + theta[i] * np.exp(-x / theta[n_exp + i])
        return out

    def jacobian(theta, mu):
        J = np.empty((x.size, theta.size))
        for i in range(n_exp):
            e = np.exp(-x / theta[n_exp + i])
            J[:, i] = e
            J[:, n_exp + i] = theta[i] * e * x / theta[n_exp + i] ** 2
        J[:, -1] = 1.0
        return J

    b0 = float(np.mean(n[-max(5, n.size // 20) :])) * 0.5
    a0 = max(float(np.mean(n[: max(3, n.size // 50)])) - b0, 1.0)
    tail = np.clip(n - b0, 0, None)
    tau0 = float(np.sum(tail * x) / tail.sum()) if tail.sum() > 0 else 10 * dt
    tau0 = min(max(tau0, 3 * dt), x[-1])
    taus = {1: [tau0], 2: [0.4 * tau0, 2.0 * tau0], 3: [0.2 * tau0, tau0, 3.0 * tau0]}[n_exp]
    theta0 = np.array([a0 / n_exp] * n_exp + taus + [b0])
    span = x[-1] + dt
    bounds = [(0.0, None)] * n_exp + [(0.2 * dt, 100 * span)] * n_exp + [(0.0, None)]
    scale = np.array([max(a0, 1.0)] * n_exp + taus + [max(b0, 1.0)])
    fit = _poisson_ml(model, jacobian, n, theta0, bounds, scale)
    return _build_result("tail", decay, (i0, i1), fit, n_exp, tail_amplitudes=True, start_rule=rule,
                         settings=dict(n_exp=n_exp, start_ns=start_ns, stop_ns=stop_ns))


def tail_start(decay: DecayHistogram) -> tuple[int, str]:
    """The default first bin of a tail fit and the rule that chose it, as text.

    ``t_start = t_peak + 2 (t_peak - t_half)``, t_half the last time before the peak with
    counts below half the maximum (see the module docstring).
    """
    n_all, t, dt = decay.counts, decay.time_ns, decay.bin_ns
    peak = int(np.argmax(n_all))
    half = n_all[peak] / 2
    before = np.flatnonzero(n_all[:peak] < half)
    rise = peak - (int(before[-1]) if before.size else peak - 1)
    i0 = min(peak + 2 * max(rise, 1), n_all.size - 3)
    rule = (f"peak {t[peak]:.4g} ns + 2 x rise {max(rise, 1) * dt:.3g} ns (half maximum to peak) "
            f"= {t[i0]:.4g} ns")
    return i0, rule


# ---------------------------------------------------------------------------------
# the one choice between the two fits


def fit_lifetime(
    decay: DecayHistogram,
    irf: DecayHistogram | str | os.PathLike | None = None,
    *,
    n_exp: int = 1,
    start_ns: float | None = None,
    stop_ns: float | None = None,
    period_ns: float | None = None,
    compare: bool = True,
    **options,
) -> LifetimeRecord:
    """Fit lifetimes: IRF reconvolution when an IRF is given, else a tail fit.

    Parameters
    ----------
    decay : DecayHistogram
        The decay to fit.
    irf : DecayHistogram or path, optional
        Measured instrument response (a histogram, or a file read by :func:`load_decay`).
        Given: :func:`fit_reconvolution` over ``[start_ns, stop_ns]`` (each end defaults
        to the histogram's). Not given: :func:`fit_tail` from ``start_ns`` to ``stop_ns``.
    n_exp : {1, 2, 3}
        Number of exponentials.
    start_ns, stop_ns : float, optional
        The fitted time range.
    period_ns : float, optional
        Excitation period for the pile-up term (reconvolution only).
    compare : bool
        Also fit one and two exponentials on the same bins and report them in
        ``comparison`` with AIC/BIC and the runs test; warn when the one-exponential
        model is inadequate (module docstring). ``preferred_n_exp`` is BIC's choice.
    **options
        Further keywords of :func:`fit_reconvolution` (``irf_background``,
        ``tau_init_ns``, or ``fit_range_ns`` instead of start/stop); a tail fit takes none.

    Returns
    -------
    LifetimeRecord

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(400) * 0.05
    >>> counts = np.random.default_rng(0).poisson(2000 * np.exp(-t / 1.5) + 2)
    >>> fit = fit_lifetime(DecayHistogram(t, counts, 0.05))
    >>> fit.method, round(fit.components[0].tau_ns.value, 1), fit.preferred_n_exp
    ('tail', 1.5, 1)
    """
    if irf is None:
        if period_ns is not None:
            raise InputError("period_ns applies to IRF reconvolution fits (give an IRF)")
        if options:
            raise InputError(f"options {sorted(options)} apply to IRF reconvolution fits (give an IRF)")

        def fit(n, start, stop):
            return fit_tail(decay, n_exp=n, start_ns=start, stop_ns=stop)
    else:
        if not isinstance(irf, DecayHistogram):
            irf = load_decay(irf)
        if start_ns is not None or stop_ns is not None:
            if options.get("fit_range_ns") is not None:
                raise InputError("give start_ns/stop_ns or fit_range_ns, not both")
            options["fit_range_ns"] = (
                float(decay.time_ns[0]) if start_ns is None else float(start_ns),
                float(decay.time_ns[-1]) if stop_ns is None else float(stop_ns),
            )

        def fit(n, start, stop):
            opts = dict(options)
            if n != n_exp:
                opts.pop("tau_init_ns", None)
            return fit_reconvolution(decay, irf, n_exp=n, period_ns=period_ns, **opts)
    result = fit(n_exp, start_ns, stop_ns)
    if not compare:
        return result
    return _compare_models(result, fit, n_exp)


def _model_fit(r: LifetimeRecord) -> LifetimeModelFit:
    return LifetimeModelFit(n_exp=r.n_exp, tau_ns=r.tau_ns, fractions=tuple(c.fraction for c in r.components),
                            reduced_deviance=r.reduced_deviance, aic=r.aic, bic=r.bic,
                            runs_test_p=r.runs_test_p, converged=r.converged)


def _compare_models(result: LifetimeRecord, fit, n_exp: int) -> LifetimeRecord:
    """Fit one and two exponentials on the bins of ``result``; record the comparison and its verdict."""
    lo, hi = result.fit_range_ns
    fits = {n_exp: result}
    not_computed = dict(result.not_computed)
    for n in (1, 2):
        if n in fits:
            continue
        try:
            fits[n] = fit(n, lo, hi) if result.method == "tail" else fit(n, None, None)
        except (FitError, InputError) as exc:
            not_computed[f"comparison n_exp={n}"] = str(exc)
    models = tuple(_model_fit(fits[n]) for n in sorted(fits))
    preferred = min(models, key=lambda m: m.bic).n_exp
    warnings = list(result.warnings) + _adequacy_warnings(fits, n_exp)
    return result.model_copy(update=dict(comparison=models, preferred_n_exp=preferred,
                                         warnings=tuple(dict.fromkeys(warnings)), not_computed=not_computed))


def _taus_text(r: LifetimeRecord) -> str:
    return " / ".join(f"{c.tau_ns.value:.4g} +- {c.tau_ns.stderr:.2g}" for c in r.components) + " ns"


def _adequacy_warnings(fits: dict[int, LifetimeRecord], requested: int) -> list[str]:
    """Warnings on the one-exponential model (inadequate) or on a second exponential the data do not support."""
    out = []
    one, two = fits.get(1), fits.get(2)
    if one is None:
        return out
    reasons = []
    if two is not None and one.bic - two.bic > BIC_STRONG:
        reasons.append(f"BIC prefers two exponentials by {one.bic - two.bic:.1f} (> {BIC_STRONG:g})")
    if one.runs_test_p is not None and one.runs_test_p < RUNS_P_LIMIT:
        reasons.append(f"its residuals are structured (runs test z = {one.runs_test_z:.2f}, p = {one.runs_test_p:.2g})")
    if reasons:
        alt = (f"; two exponentials give {_taus_text(two)} (reduced deviance {two.reduced_deviance:.3g} against "
               f"{one.reduced_deviance:.3g})" if two is not None else "")
        out.append(f"one exponential is inadequate for this decay: {' and '.join(reasons)}{alt}")
    elif requested >= 2 and two is not None and two.bic - one.bic > 0:
        out.append(f"two exponentials are not supported by the data: BIC prefers one by {two.bic - one.bic:.1f}")
    return out

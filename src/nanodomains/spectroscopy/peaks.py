"""Frame-wise preprocessing, peak detection and batched line fits of PL spectral movies.

Line shapes
-----------
A bright-exciton line at 4 K is a Lorentzian (homogeneous broadening, HWHM gamma)
seen through the spectrometer's (roughly Gaussian, sd sigma) instrument function, i.e.
a Voigt profile (scipy.special.voigt_profile):

    L(x) = A / (1 + ((x - x0) / gamma)^2)
    V(x) = A * voigt(x - x0; sigma, gamma) / voigt(0; sigma, gamma)

with A the peak height in counts. The Lorentzian model is integrated over each pixel
of width d (exact for a CCD, and needed when the line is not much wider than a pixel):
F_i = (A gamma / d) [atan((x_i + d/2 - x0)/gamma) - atan((x_i - d/2 - x0)/gamma)];
the Voigt model is sampled at the pixel centres. The integrated counts of a Lorentzian line are
``pi * A * gamma / dlambda`` (dlambda = pixel width in nm). Lines that overlap are fit
together with one shared width (lines of one fine-structure set share the exciton's
dephasing), on a linear baseline ``b0 + b1 (x - x_mid)``.

Fine-structure splitting (FSS) in energy with E = hc / lambda (hc = 1239.842 eV nm,
scipy.constants): for a doublet FSS = ``|E1 - E2|``; for a triplet the mean of the two gaps,
FSS = (E_max - E_min) / 2, as in the seed paper (Liu et al., Nano Lett. 2023, 23, 10089,
Fig. 4: 677 ueV doublet, 878 ueV triplet). Its variance follows from the fit covariance
of the line centres, dE/dlambda = -hc / lambda^2.

Preprocessing
-------------
* Background: SNIP clipping (Ryan et al., Nucl. Instrum. Methods B 34, 396 (1988);
  Morhac et al., Nucl. Instrum. Methods A 401, 113 (1997)) on the log-log-sqrt
  transformed spectrum, ``v_i <- min(v_i, (v_{i-p} + v_{i+p}) / 2)`` for p = 1..m,
  vectorised over frames; or a rolling low percentile.
* Cosmic rays: a temporal outlier test. For every pixel the residual against the
  median of the ``k`` preceding frames and against the median of the ``k`` following
  frames is taken; the smaller one must exceed ``threshold`` robust standard
  deviations (per-pixel MAD over time). A blinking line switching on is matched by
  one of the two medians and is not flagged. Candidate runs of pixels are accepted as
  cosmic rays only if their spectral flanks carry little excess (a line that appears
  for one frame has Lorentzian flanks) and they are narrow (<= ``max_width_px``) or,
  up to ``max_shower_px`` wide, jagged: a peak sharper than any sampled line, i.e.
  max(-second difference) >= ``jag_ratio`` x peak (a Lorentzian sampled with HWHM
  gamma pixels reaches 2 / (gamma^2 + 1): 0.4 at 2 px), as for the multi-pixel hits
  of a particle crossing the chip in full vertical binning.
  Replaced values are the matching median; every replacement is recorded.
* Noise: robust per-frame sd from first differences, 1.4826 MAD(diff) / sqrt(2).

Fitting
-------
All line groups of all frames are fit at once by a vectorised Levenberg-Marquardt
(Marquardt's diagonal damping) in numpy: groups with the same number of lines form one
batch of shape (n_groups, n_window_px, n_params), each group fit only on a window of
``window_hwhm`` widths around its lines. Covariance = (J^T W J)^-1 scaled by the reduced
chi-square (as scipy.optimize.curve_fit with ``absolute_sigma=False``), so the quoted
uncertainties do not depend on the detector gain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr
from scipy import ndimage, signal
from scipy.special import voigt_profile

from nanodomains import materials
from nanodomains.errors import FitError, InputError

__all__ = [
    "HC_EV_NM",
    "lorentzian",
    "voigt",
    "estimate_background",
    "estimate_noise",
    "remove_cosmic_rays",
    "CosmicRays",
    "bin_movie",
    "detect_peaks",
    "mean_multiplets",
    "complete_multiplets",
    "Peaks",
    "fit_lines",
    "LineFits",
    "lorentzian_pixels",
    "fit_amplitudes",
    "levenberg_marquardt_batch",
    "fss_uev",
]

#: h c in eV nm (scipy.constants), E[eV] = HC_EV_NM / lambda[nm]
HC_EV_NM = materials.HC_EV_NM  # photon energy x wavelength, one definition (materials.py)


def lorentzian(x, center, hwhm, amplitude=1.0):
    """Lorentzian of peak height ``amplitude`` and half width ``hwhm`` (units of x)."""
    return amplitude / (1.0 + ((np.asarray(x) - center) / hwhm) ** 2)


def voigt(x, center, hwhm, sigma, amplitude=1.0):
    """Voigt profile (Lorentzian HWHM ``hwhm`` with Gaussian sd ``sigma``) of peak height ``amplitude``."""
    return amplitude * voigt_profile(np.asarray(x) - center, sigma, hwhm) / voigt_profile(0.0, sigma, hwhm)


# ---------------------------------------------------------------------------- background / noise


def _as_2d(counts) -> np.ndarray:
    a = np.asarray(counts.values if isinstance(counts, xr.DataArray) else counts, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.size == 0:
        raise InputError(f"expected a non-empty (frames, pixels) array, got shape {a.shape}")
    return a


def estimate_background(
    counts, *, method: str = "snip", window_px: int = 30, percentile: float = 10.0, smooth_px: float = 2.0
) -> np.ndarray:
    """Per-frame baseline under the emission lines.

    Parameters
    ----------
    counts : array_like, shape (n_frames, n_pixels)
    method : {"snip", "percentile"}
        SNIP clipping on the log-log-sqrt transform, or a rolling percentile filter
        followed by a moving average of the same width.
    window_px : int
        SNIP: number of clipping iterations (about the half width of the broadest
        feature to keep out of the baseline); percentile: window width.
    percentile : float
        Percentile of the rolling filter.
    smooth_px : float
        Gaussian sd (px) of the smoothing applied before clipping; clipping follows the
        lower envelope of the noise, so the result is finally shifted by the per-frame
        median of ``counts - background`` (most pixels carry no line) to remove that
        bias.

    Returns
    -------
    background : ndarray, same shape as ``counts``
    """
    y0 = _as_2d(counts)
    window_px = int(window_px)
    if window_px < 1:
        raise InputError(f"window_px must be >= 1, got {window_px}")
    y = ndimage.gaussian_filter1d(y0, smooth_px, axis=1, mode="nearest") if smooth_px > 0 else y0
    if method == "percentile":
        size = min(window_px, y.shape[1])
        b = ndimage.percentile_filter(y, percentile, size=(1, size), mode="nearest")
        b = ndimage.uniform_filter1d(b, size, axis=1, mode="nearest")
    elif method == "snip":
        shift = np.minimum(y.min(axis=1, keepdims=True), 0.0)
        v = np.log(np.log(np.sqrt(y - shift + 1.0) + 1.0) + 1.0)
        n = v.shape[1]
        for p in range(1, min(window_px, (n - 1) // 2) + 1):
            mid = 0.5 * (v[:, : n - 2 * p] + v[:, 2 * p :])
            np.minimum(v[:, p : n - p], mid, out=v[:, p : n - p])
        b = (np.exp(np.exp(v) - 1.0) - 1.0) ** 2 - 1.0 + shift
    else:
        raise InputError(f"background method must be 'snip' or 'percentile', got {method!r}")
    return b + np.median(y0 - b, axis=1, keepdims=True)


def estimate_noise(signal_counts) -> np.ndarray:
    """Robust per-frame noise sd from first differences: 1.4826 MAD(diff) / sqrt(2).

    Parameters
    ----------
    signal_counts : array_like, shape (n_frames, n_pixels)

    Returns
    -------
    sigma : ndarray, shape (n_frames,)
    """
    y = _as_2d(signal_counts)
    if y.shape[1] < 3:
        raise InputError(f"need at least 3 pixels to estimate noise, got {y.shape[1]}")
    d = np.diff(y, axis=1)
    mad = np.median(np.abs(d - np.median(d, axis=1, keepdims=True)), axis=1)
    return 1.4826 * mad / np.sqrt(2.0)


# ---------------------------------------------------------------------------- cosmic rays


@dataclass
class CosmicRays:
    """Record of cosmic-ray replacements.

    Attributes
    ----------
    frame, pixel_start, pixel_stop : ndarray of int
        Replaced pixels ``[pixel_start, pixel_stop)`` in ``frame``.
    wavelength_nm : ndarray
        Wavelength of the strongest replaced pixel.
    excess_counts : ndarray
        Summed counts removed.
    peak_sigma : ndarray
        Residual of the strongest pixel in robust standard deviations.
    tested : bool
        False when the movie has fewer than 2 frames (no temporal test possible).
    """

    frame: np.ndarray
    pixel_start: np.ndarray
    pixel_stop: np.ndarray
    wavelength_nm: np.ndarray
    excess_counts: np.ndarray
    peak_sigma: np.ndarray
    tested: bool = True

    def __len__(self) -> int:
        return int(self.frame.size)

    def to_records(self) -> list[dict]:
        return [
            {
                "frame": int(f), "pixel_start": int(a), "pixel_stop": int(b),
                "wavelength_nm": float(w), "excess_counts": float(e), "peak_sigma": float(s),
            }
            for f, a, b, w, e, s in zip(self.frame, self.pixel_start, self.pixel_stop,
                                        self.wavelength_nm, self.excess_counts, self.peak_sigma)
        ]


def _neighbour_medians(y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    T = y.shape[0]
    pad = np.full((k, y.shape[1]), np.nan)
    yp = np.concatenate([pad, y, pad], axis=0)
    before = np.stack([yp[k - j : k - j + T] for j in range(1, k + 1)])
    after = np.stack([yp[k + j : k + j + T] for j in range(1, k + 1)])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices at the movie edges
        return np.nanmedian(before, axis=0), np.nanmedian(after, axis=0)


def _temporal_residual(y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Residual of every pixel against the median of ``k`` frames before or after (the
    smaller), that reference, and the residual in units of its robust sd (read noise
    plus shot noise growing with the reference)."""
    mb, ma = _neighbour_medians(y, k)
    rb, ra = y - mb, y - ma
    use_b = np.isnan(ra) | (~np.isnan(rb) & (rb < ra))
    r = np.where(use_b, rb, ra)
    ref = np.where(use_b, mb, ma)
    med_r = np.nanmedian(r, axis=0)
    sig = 1.4826 * np.nanmedian(np.abs(r - med_r), axis=0)
    floor = 0.25 * np.nanmedian(sig) if np.nanmedian(sig) > 0 else 1e-12
    sig = np.maximum(sig, floor)
    # shot noise grows with the signal: add kappa * (reference above its time median),
    # kappa ~ variance per count estimated from the quiet columns (gain; read noise makes it conservative)
    level = np.nanmedian(ref, axis=0)
    pos = level > 0
    kappa = float(np.median(sig[pos] ** 2 / level[pos])) if pos.any() else 0.0
    sig_eff = np.sqrt(sig**2 + kappa * np.maximum(ref - level, 0.0))
    return r, ref, r / sig_eff


def _spike_shape(r: np.ndarray, a: int, b: int, *, max_width_px: int, max_shower_px: int,
                 jag_ratio: float, flank_ratio: float) -> bool:
    """Whether the run ``[a, b)`` of one frame's residual ``r`` looks like a cosmic ray:
    narrow (or a jagged shower) with quiet flanks."""
    peak = np.nanmax(r[a:b])
    if b - a > max_width_px:
        seg = r[a:b]
        sharp = -(seg[:-2] - 2 * seg[1:-1] + seg[2:]) if seg.size >= 3 else np.zeros(0)
        if b - a > max_shower_px or not sharp.size or sharp.max() < jag_ratio * peak:
            return False
    # both flanks (2-3 px outside) must be quiet: a line that appears or shifts
    # leaves Lorentzian (same sign) or derivative-like (opposite sign) flanks
    for fl in (np.arange(a - 3, a - 1), np.arange(b + 1, b + 3)):
        fl = fl[(fl >= 0) & (fl < r.size)]
        if fl.size and abs(np.nanmean(r[fl])) > flank_ratio * peak:
            return False
    return True


def remove_cosmic_rays(
    counts,
    wavelength_nm=None,
    *,
    n_neighbors: int = 2,
    threshold: float = 8.0,
    max_width_px: int = 3,
    flank_ratio: float = 0.3,
    max_shower_px: int = 30,
    jag_ratio: float = 0.8,
) -> tuple[np.ndarray, CosmicRays]:
    """Replace cosmic-ray spikes by a temporal outlier test (see module docstring).

    Parameters
    ----------
    counts : array_like, shape (n_frames, n_pixels)
    wavelength_nm : array_like, shape (n_pixels,), optional
        For the record only.
    n_neighbors : int
        Frames on each side whose median is the reference.
    threshold : float
        Detection threshold in robust standard deviations of the temporal residual.
    max_width_px : int
        Widest run of pixels accepted as one cosmic ray.
    flank_ratio : float
        The mean residual 2-3 px outside the run must be below this fraction of its
        peak residual (a one-frame emission line has Lorentzian flanks).
    max_shower_px, jag_ratio : int, float
        Wider runs (up to ``max_shower_px``) are cosmic rays when jagged (module
        docstring).

    Returns
    -------
    cleaned : ndarray
    record : CosmicRays
    """
    y = _as_2d(counts).copy()
    T, W = y.shape
    wl = np.arange(W, dtype=float) if wavelength_nm is None else np.asarray(wavelength_nm, float)
    empty = CosmicRays(*(np.zeros(0, int) for _ in range(3)), np.zeros(0), np.zeros(0), np.zeros(0), tested=T >= 2)
    if T < 2:
        return y, empty
    r, ref, z = _temporal_residual(y, max(1, min(int(n_neighbors), T - 1)))
    cand = z > threshold
    if not cand.any():
        return y, empty
    lab, n = ndimage.label(cand, structure=np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]]))
    rec = {k_: [] for k_ in ("frame", "a", "b", "wl", "exc", "sig")}
    for sl in ndimage.find_objects(lab):
        f = sl[0].start
        a, b = sl[1].start, sl[1].stop
        if not _spike_shape(r[f], a, b, max_width_px=max_width_px, max_shower_px=max_shower_px,
                            jag_ratio=jag_ratio, flank_ratio=flank_ratio):
            continue
        # grow by one pixel where the residual is still > 3 sd (the spike's wings)
        a2 = a - 1 if a > 0 and z[f, a - 1] > 3 else a
        b2 = b + 1 if b < W and z[f, b] > 3 else b
        exc = float(np.nansum(r[f, a2:b2]))
        y[f, a2:b2] = ref[f, a2:b2]
        j = a + int(np.nanargmax(r[f, a:b]))
        for key, v in zip(rec, (f, a2, b2, wl[j], exc, z[f, j])):
            rec[key].append(v)
    return y, CosmicRays(
        np.asarray(rec["frame"], int), np.asarray(rec["a"], int), np.asarray(rec["b"], int),
        np.asarray(rec["wl"], float), np.asarray(rec["exc"], float), np.asarray(rec["sig"], float),
    )


def bin_movie(movie: xr.DataArray, *, time_bin: int = 1, wavelength_bin: int = 1) -> xr.DataArray:
    """Sum ``time_bin`` frames and ``wavelength_bin`` pixels (trailing remainder dropped, recorded).

    Parameters
    ----------
    movie : xarray.DataArray
        dims (time, wavelength).
    time_bin, wavelength_bin : int
        Bin factors >= 1.

    Returns
    -------
    binned : xarray.DataArray
        Counts summed; time = start of the first frame of each bin, wavelength = mean.
    """
    tb, wb = int(time_bin), int(wavelength_bin)
    if tb < 1 or wb < 1:
        raise InputError(f"bin factors must be >= 1, got time_bin={time_bin}, wavelength_bin={wavelength_bin}")
    if tb > movie.sizes["time"] or wb > movie.sizes["wavelength"]:
        raise InputError(f"bin factors ({tb}, {wb}) exceed the movie size {dict(movie.sizes)}")
    if tb == 1 and wb == 1:
        return movie
    out = movie.coarsen(time=tb, wavelength=wb, boundary="trim").sum()
    t = movie["time"].values[: (movie.sizes["time"] // tb) * tb : tb]
    out = out.assign_coords(time=t)
    out.attrs = dict(movie.attrs)
    out.attrs.update(
        time_bin=tb, wavelength_bin=wb,
        binning_dropped=f"{movie.sizes['time'] % tb} trailing frames, {movie.sizes['wavelength'] % wb} trailing pixels",
    )
    return out


# ---------------------------------------------------------------------------- detection


@dataclass
class Peaks:
    """Peaks found frame by frame (one entry per peak).

    Attributes
    ----------
    frame, pixel : ndarray of int
    position_nm : ndarray
        Parabolic interpolation of the smoothed maximum.
    height : ndarray
        Smoothed height above the baseline (counts).
    snr : ndarray
        Height over the frame's raw noise sd.
    fwhm_px : ndarray
        Width at half prominence (scipy.signal.peak_widths), pixels.
    noise : ndarray, shape (n_frames,)
        Per-frame noise sd of the raw (unsmoothed) signal.
    """

    frame: np.ndarray
    pixel: np.ndarray
    position_nm: np.ndarray
    height: np.ndarray
    snr: np.ndarray
    fwhm_px: np.ndarray
    noise: np.ndarray

    def __len__(self) -> int:
        return int(self.frame.size)


def detect_peaks(
    signal_counts,
    wavelength_nm,
    *,
    snr_min: float = 5.0,
    prominence_snr: float = 3.0,
    smooth_px: float = 1.0,
    min_distance_px: int = 2,
    noise=None,
    gain: float | None = None,
) -> Peaks:
    """Find emission lines in every frame of a baseline-subtracted movie.

    A peak is a local maximum of the Gaussian-smoothed frame whose height exceeds
    ``snr_min`` and whose prominence exceeds ``prominence_snr`` times the noise sd of
    the smoothed frame (raw sd x sqrt(sum of squared kernel weights)). With ``gain``
    (counts per photon) the prominence is compared with the local noise on top of the
    line, sqrt(sd^2 + gain x height): shot noise on a bright line cannot then split it
    into several peaks.

    Parameters
    ----------
    signal_counts : array_like, shape (n_frames, n_pixels)
        Baseline-subtracted counts.
    wavelength_nm : array_like, shape (n_pixels,)
    snr_min, prominence_snr : float
    smooth_px : float
        Gaussian smoothing sd in pixels (0: none).
    min_distance_px : int
    noise : array_like, shape (n_frames,), optional
        Raw noise sd per frame (default :func:`estimate_noise`).
    gain : float, optional
        Variance per count of signal (1 for photon counts); None: background noise only.

    Returns
    -------
    peaks : Peaks
    """
    y = _as_2d(signal_counts)
    wl = np.asarray(wavelength_nm, float)
    if wl.size != y.shape[1]:
        raise InputError(f"wavelength axis has {wl.size} values for {y.shape[1]} pixels")
    sigma = estimate_noise(y) if noise is None else np.broadcast_to(np.asarray(noise, float), (y.shape[0],))
    if smooth_px > 0:
        ys = ndimage.gaussian_filter1d(y, smooth_px, axis=1, mode="nearest")
        delta = np.zeros(int(8 * smooth_px) * 2 + 1)
        delta[delta.size // 2] = 1.0
        ksum = np.sqrt(np.sum(ndimage.gaussian_filter1d(delta, smooth_px) ** 2))
    else:
        ys, ksum = y, 1.0
    out = {k: [] for k in ("frame", "pixel", "pos", "h", "snr", "w")}
    for f in range(y.shape[0]):  # loop over frames only; find_peaks is C inside
        s = max(sigma[f], 1e-12)
        idx, props = signal.find_peaks(
            ys[f], height=snr_min * s * ksum, prominence=prominence_snr * s * ksum, distance=max(1, int(min_distance_px))
        )
        if gain is not None and idx.size:
            local = np.sqrt(s * s + gain * np.maximum(props["peak_heights"], 0.0)) * ksum
            keep = props["prominences"] >= prominence_snr * local
            idx = idx[keep]
            props = {k: v[keep] for k, v in props.items()}
        if idx.size == 0:
            continue
        w = signal.peak_widths(ys[f], idx, rel_height=0.5, prominence_data=(props["prominences"], props["left_bases"], props["right_bases"]))[0]
        i0 = np.clip(idx, 1, y.shape[1] - 2)
        ym, y0, yp = ys[f, i0 - 1], ys[f, i0], ys[f, i0 + 1]
        den = ym - 2 * y0 + yp
        dx = np.where(den < 0, 0.5 * (ym - yp) / np.where(den < 0, den, -1.0), 0.0)
        dx = np.clip(dx, -0.5, 0.5)
        pos = np.interp(i0 + dx, np.arange(wl.size), wl)
        out["frame"].append(np.full(idx.size, f))
        out["pixel"].append(idx)
        out["pos"].append(pos)
        out["h"].append(props["peak_heights"])
        out["snr"].append(props["peak_heights"] / s)
        out["w"].append(w)
    cat = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in out.items()}
    return Peaks(
        cat["frame"].astype(int), cat["pixel"].astype(int), cat["pos"], cat["h"], cat["snr"], cat["w"], np.asarray(sigma, float)
    )


def mean_multiplets(signal_counts, wavelength_nm, *, snr_min: float = 5.0, prominence_snr: float = 3.0,
                    noise=None, gain: float | None = None, variance=None, profile: str = "lorentzian",
                    instrument_sigma_nm: float | None = None, cluster_fwhm: float = 2.0) -> list[dict]:
    """Multiplets resolved in the time-averaged spectrum of a movie.

    The mean of T frames has sqrt(T) less noise than one frame, so a fine-structure
    multiplet whose lines are blended in every (smoothed) frame can show one maximum
    per line in the mean. Peaks of the unsmoothed mean spectrum are found as in
    :func:`detect_peaks` (noise sd / sqrt(T), gain / T: the prominence test is against
    the noise of the mean) and fitted by :func:`fit_lines` (shared width per group);
    fitted lines below ``snr_min`` of the mean's noise are dropped, and adjacent lines
    closer than ``cluster_fwhm`` fitted FWHM form one multiplet.

    Parameters
    ----------
    signal_counts : array_like, shape (n_frames, n_pixels)
        Baseline-subtracted counts.
    wavelength_nm : array_like, shape (n_pixels,)
    snr_min, prominence_snr : float
        As for :func:`detect_peaks`.
    noise : array_like, shape (n_frames,), optional
        Per-frame noise sd (default :func:`estimate_noise`).
    gain : float, optional
        Variance per count of signal of one frame.
    variance : array_like, shape (n_frames, n_pixels), optional
        Per-pixel variance of the frames (the mean's is its mean / T).
    profile, instrument_sigma_nm
        As for :func:`fit_lines`.
    cluster_fwhm : float

    Returns
    -------
    multiplets : list of dict
        ``position_nm`` (ascending), ``pixel`` and ``height`` of the lines of every
        multiplet of two or more lines, their fitted ``fwhm_nm`` (the widest of the
        multiplet's fit groups) and the span ``lo_nm`` / ``hi_nm`` (outer lines +- half
        that width).
    """
    y = _as_2d(signal_counts)
    wl = np.asarray(wavelength_nm, float)
    n = y.shape[0]
    sd = estimate_noise(y) if noise is None else np.broadcast_to(np.asarray(noise, float), (n,))
    mean = y.mean(axis=0)[None, :]
    sd_mean = np.array([float(np.median(sd)) / np.sqrt(n)])
    mp = detect_peaks(mean, wl, snr_min=snr_min, prominence_snr=prominence_snr, smooth_px=0.0, noise=sd_mean,
                      gain=None if gain is None else float(gain) / n)
    if len(mp) < 2:
        return []
    var = None if variance is None else (np.mean(_as_2d(variance), axis=0) / n)[None, :]
    fit = fit_lines(mean, wl, mp, variance=var, profile=profile, instrument_sigma_nm=instrument_sigma_nm)
    good = fit.converged & np.isfinite(fit.center_nm) & (fit.amplitude >= snr_min * sd_mean[0])
    if good.sum() < 2:
        return []
    o = np.flatnonzero(good)[np.argsort(fit.center_nm[good])]
    pos, fwhm = fit.center_nm[o], 2.0 * fit.hwhm_nm[o]
    pix = np.clip(np.searchsorted(wl, pos), 0, wl.size - 1)
    close = np.diff(pos) < cluster_fwhm * np.maximum(fwhm[:-1], fwhm[1:])
    starts = np.flatnonzero(np.concatenate([[True], ~close]))
    ends = np.concatenate([starts[1:], [pos.size]])
    out = []
    for a, b in zip(starts, ends):
        if b - a < 2:
            continue
        w = float(np.max(fwhm[a:b]))
        out.append({"position_nm": pos[a:b], "pixel": pix[a:b], "height": fit.amplitude[o][a:b], "fwhm_nm": w,
                    "lo_nm": float(pos[a] - 0.5 * w), "hi_nm": float(pos[b - 1] + 0.5 * w)})
    return out


def complete_multiplets(peaks: Peaks, signal_counts, wavelength_nm, multiplets: list[dict], *,
                        smooth_px: float = 1.0, blend_gap: float = 0.5) -> tuple[Peaks, int]:
    """Per-frame peaks with every mean-spectrum multiplet seeded line by line.

    In each frame whose peaks inside a multiplet's span (:func:`mean_multiplets`) are
    fewer than its lines and are all blends of them, those peaks are replaced by one
    start per line at the multiplet's mean positions (heights from the frame's counts
    at those pixels), so :func:`fit_lines` fits the multiplet as its lines; a line
    absent from that frame fits to a small amplitude and is dropped by the usual SNR
    cut. A frame's peak is a blend when it lies between the multiplet's outer lines and
    its width (:attr:`Peaks.fwhm_px`, measured on the frame smoothed by ``smooth_px``
    as :func:`detect_peaks` does) exceeds that of one of its lines in such a frame,
    sqrt(FWHM^2 + (2.355 smooth)^2), by ``blend_gap`` times the smallest gap of the
    multiplet: a peak as narrow as one line is that line (the others weak or absent
    in that frame, or a bright line's noise wiggles in the mean, as the lamp lines of a
    real SIF series show). Frames with a peak within one line width outside the span
    (the pattern has moved by spectral diffusion) get no seeds.

    Returns
    -------
    peaks : Peaks
        The completed peaks.
    n_seeded : int
        Frame-multiplet pairs that were seeded.
    """
    if not multiplets or len(peaks) == 0:
        return peaks, 0
    y = _as_2d(signal_counts)
    wl = np.asarray(wavelength_nm, float)
    T = y.shape[0]
    dwl = np.abs(np.gradient(wl))
    width_nm = peaks.fwhm_px * np.interp(peaks.position_nm, wl, dwl)
    drop = np.zeros(len(peaks), bool)
    add = {k: [] for k in ("frame", "pixel", "pos", "h", "snr", "w")}
    n_seeded = 0
    for m in multiplets:  # loop over multiplets (a few), each vectorised over frames
        pos, lines = peaks.position_nm, m["position_nm"]
        d = float(np.interp(lines.mean(), wl, dwl))
        single = float(np.hypot(m["fwhm_nm"], 2.3548 * smooth_px * d))
        blend = ((pos > lines[0]) & (pos < lines[-1])
                 & (width_nm >= single + blend_gap * float(np.min(np.diff(lines)))))
        inside = (pos >= m["lo_nm"]) & (pos <= m["hi_nm"])
        near = ((pos >= m["lo_nm"] - m["fwhm_nm"]) & (pos < m["lo_nm"])) | \
               ((pos > m["hi_nm"]) & (pos <= m["hi_nm"] + m["fwhm_nm"]))
        count = np.bincount(peaks.frame[inside], minlength=T)
        stray = np.bincount(peaks.frame[(inside & ~blend) | near], minlength=T)
        frames = np.flatnonzero((count >= 1) & (count < lines.size) & (stray == 0))
        if frames.size == 0:
            continue
        n_seeded += frames.size
        drop |= inside & np.isin(peaks.frame, frames)
        ff = np.repeat(frames, lines.size)
        px = np.tile(m["pixel"], frames.size)
        height = np.maximum(y[ff, px], 1e-3)
        add["frame"].append(ff)
        add["pixel"].append(px)
        add["pos"].append(np.tile(lines, frames.size))
        add["h"].append(height)
        add["snr"].append(height / np.maximum(peaks.noise[ff], 1e-12))
        add["w"].append(np.full(ff.size, m["fwhm_nm"] / d))
    if n_seeded == 0:
        return peaks, 0
    keep = ~drop
    cat = {k: np.concatenate(v) for k, v in add.items()}
    return Peaks(np.concatenate([peaks.frame[keep], cat["frame"]]).astype(int),
                 np.concatenate([peaks.pixel[keep], cat["pixel"]]).astype(int),
                 np.concatenate([peaks.position_nm[keep], cat["pos"]]),
                 np.concatenate([peaks.height[keep], cat["h"]]),
                 np.concatenate([peaks.snr[keep], cat["snr"]]),
                 np.concatenate([peaks.fwhm_px[keep], cat["w"]]), peaks.noise), n_seeded


# ---------------------------------------------------------------------------- batched LM


def levenberg_marquardt_batch(
    model_jac,
    p0: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    *,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    max_iter: int = 100,
    rtol: float = 1e-9,
    lam0: float = 1e-3,
):
    """Minimise sum_w (y - f(p))^2 for many independent problems at once.

    Parameters
    ----------
    model_jac : callable
        ``model_jac(p, rows) -> (f, J)`` with ``p`` of shape (m, P) for the problems
        ``rows`` (indices into the batch), ``f`` (m, N) and ``J`` (m, N, P).
    p0 : ndarray, shape (B, P)
    y, weights : ndarray, shape (B, N)
        Data and weights 1/variance (0 masks a point out).
    lower, upper : ndarray, shape (B, P), optional
        Box bounds (steps are clipped).
    max_iter : int
    rtol : float
        Stop when the relative chi-square decrease of an accepted step is below this.
    lam0 : float
        Initial Marquardt damping.

    Returns
    -------
    p : ndarray, shape (B, P)
    cov : ndarray, shape (B, P, P)
        (J^T W J)^-1 scaled by chi2 / (n_points - P); NaN where singular.
    chi2 : ndarray, shape (B,)
    dof : ndarray, shape (B,)
    converged : ndarray of bool, shape (B,)
    """
    B, P = p0.shape
    p = p0.astype(np.float64).copy()
    lo = np.full_like(p, -np.inf) if lower is None else lower
    hi = np.full_like(p, np.inf) if upper is None else upper
    p = np.clip(p, lo, hi)
    rows_all = np.arange(B)
    f, J = model_jac(p, rows_all)
    r = y - f
    chi2 = np.einsum("bn,bn->b", weights * r, r)
    lam = np.full(B, lam0)
    active = np.ones(B, bool)
    converged = np.zeros(B, bool)
    eye = np.eye(P)
    for _ in range(max_iter):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        wr = weights[rows]
        dp = _marquardt_step(J[rows], wr, r[rows], lam[rows], eye)
        pn = np.clip(p[rows] + dp, lo[rows], hi[rows])
        fn, Jn = model_jac(pn, rows)
        rn = y[rows] - fn
        chin = np.einsum("bn,bn->b", wr * rn, rn)
        ok = np.isfinite(chin) & (chin <= chi2[rows])
        acc = rows[ok]
        small = (chi2[acc] - chin[ok]) <= rtol * np.maximum(chi2[acc], 1e-300)
        p[acc], f[acc], J[acc], r[acc], chi2[acc] = pn[ok], fn[ok], Jn[ok], rn[ok], chin[ok]
        lam[acc] = np.maximum(lam[acc] * 0.3, 1e-12)
        lam[rows[~ok]] *= 10.0
        done = acc[small]
        converged[done] = True
        active[done] = False
        stuck = rows[~ok][lam[rows[~ok]] > 1e10]
        converged[stuck] = True  # no downhill step left: at a minimum to numerical precision
        active[stuck] = False
    cov, dof = _scaled_covariance(J, weights, chi2)
    return p, cov, chi2, dof, converged


def _marquardt_step(J: np.ndarray, w: np.ndarray, r: np.ndarray, lam: np.ndarray, eye: np.ndarray) -> np.ndarray:
    """Damped Gauss-Newton steps ``(J^T W J + lam diag) dp = J^T W r`` of a batch."""
    JTW = np.transpose(J, (0, 2, 1)) * w[:, None, :]
    A = JTW @ J
    g = np.einsum("bpn,bn->bp", JTW, r)
    dA = np.einsum("bii->bi", A)
    Ad = A + (lam[:, None, None] * eye) * np.maximum(dA, 1e-30)[:, :, None]
    try:
        return np.linalg.solve(Ad, g[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return np.einsum("bij,bj->bi", np.linalg.pinv(Ad), g)


def _scaled_covariance(J: np.ndarray, weights: np.ndarray, chi2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(J^T W J)^-1 scaled by the reduced chi-square (NaN where singular), and the dof."""
    B, _, P = J.shape
    JTW = np.transpose(J, (0, 2, 1)) * weights[:, None, :]
    A = JTW @ J
    dof = (weights > 0).sum(axis=1) - P
    cov = np.full((B, P, P), np.nan)
    det_ok = np.linalg.cond(A) < 1e14
    if det_ok.any():
        cov[det_ok] = np.linalg.inv(A[det_ok])
    scale = np.where(dof > 0, chi2 / np.maximum(dof, 1), np.nan)
    return cov * scale[:, None, None], dof


# ---------------------------------------------------------------------------- line fits


@dataclass
class LineFits:
    """Fitted lines, one entry per line per frame.

    Attributes
    ----------
    frame, group, slot : ndarray of int
        Frame, fit group (lines fit together) and index within the group.
    center_nm, center_err_nm : ndarray
    amplitude, amplitude_err : ndarray
        Peak height (counts) and its sd.
    area_counts, area_err : ndarray
        Integrated counts of the line (pi A gamma / dlambda for a Lorentzian).
    hwhm_nm, hwhm_err_nm : ndarray
        Shared Lorentzian half width of the group.
    sigma_nm : ndarray
        Gaussian sd of the Voigt (0 for Lorentzian fits).
    snr : ndarray
        Amplitude over the frame's noise sd.
    redchi : ndarray
        Reduced chi-square of the group fit.
    converged : ndarray of bool
    center_cov : ndarray, shape (n_groups, max_lines, max_lines)
        Covariance of the centres within each group (nm^2), NaN padded.
    profile : str
    """

    frame: np.ndarray
    group: np.ndarray
    slot: np.ndarray
    center_nm: np.ndarray
    center_err_nm: np.ndarray
    amplitude: np.ndarray
    amplitude_err: np.ndarray
    area_counts: np.ndarray
    area_err: np.ndarray
    hwhm_nm: np.ndarray
    hwhm_err_nm: np.ndarray
    sigma_nm: np.ndarray
    snr: np.ndarray
    redchi: np.ndarray
    converged: np.ndarray
    center_cov: np.ndarray
    profile: str = "lorentzian"
    n_frames: int = 0
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.frame.size)

    def select(self, mask) -> "LineFits":
        """Subset of the lines (``center_cov`` is kept whole, indexed by ``group``)."""
        m = np.asarray(mask)
        kw = {k: getattr(self, k)[m] for k in (
            "frame", "group", "slot", "center_nm", "center_err_nm", "amplitude", "amplitude_err",
            "area_counts", "area_err", "hwhm_nm", "hwhm_err_nm", "sigma_nm", "snr", "redchi", "converged")}
        return LineFits(**kw, center_cov=self.center_cov, profile=self.profile, n_frames=self.n_frames, extra=self.extra)


def _group_peaks(frames: np.ndarray, pos: np.ndarray, gap_nm: float, max_lines: int):
    """Split each frame's sorted peaks into groups at gaps > gap_nm, max ``max_lines`` per group."""
    order = np.lexsort((pos, frames))
    f, x = frames[order], pos[order]
    new = np.ones(f.size, bool)
    new[1:] = (f[1:] != f[:-1]) | (np.diff(x) > gap_nm)
    gid = np.cumsum(new) - 1
    # split oversized groups at their largest internal gaps
    groups = []
    for g in np.unique(gid):
        idx = np.flatnonzero(gid == g)
        stack = [idx]
        while stack:
            cur = stack.pop()
            if cur.size <= max_lines:
                groups.append(cur)
                continue
            cut = int(np.argmax(np.diff(x[cur]))) + 1
            stack.extend([cur[cut:], cur[:cut]])
    out = np.empty(f.size, int)
    for k, idx in enumerate(sorted(groups, key=lambda a: (f[a[0]], x[a[0]]))):
        out[idx] = k
    inv = np.empty_like(order)
    inv[order] = np.arange(order.size)
    return out[inv]


def fit_lines(
    signal_counts,
    wavelength_nm,
    peaks: Peaks,
    *,
    variance=None,
    profile: str = "lorentzian",
    instrument_sigma_nm: float | None = None,
    hwhm_guess_nm: float | None = None,
    group_gap_hwhm: float = 10.0,
    window_hwhm: float = 6.0,
    max_lines: int = 4,
    max_iter: int = 100,
) -> LineFits:
    """Fit all detected lines of all frames with multi-line profiles of shared width.

    Peaks closer than ``group_gap_hwhm`` widths are fit together (one shared HWHM,
    linear baseline) on a window extending ``window_hwhm`` widths beyond the outer
    lines; all groups with the same number of lines are fit in one vectorised
    Levenberg-Marquardt batch (see :func:`levenberg_marquardt_batch`).

    Parameters
    ----------
    signal_counts : array_like, shape (n_frames, n_pixels)
        Baseline-subtracted counts.
    wavelength_nm : array_like, shape (n_pixels,)
    peaks : Peaks
        From :func:`detect_peaks` (positions and heights are the starting values).
    variance : array_like, shape (n_frames, n_pixels), optional
        Per-pixel variance for the weights (e.g. raw counts for shot noise); default
        uniform weights (the per-frame noise sd). Covariances are rescaled by the
        reduced chi-square in either case.
    profile : {"lorentzian", "voigt"}
    instrument_sigma_nm : float, optional
        Voigt: fixed Gaussian sd of the instrument; None fits one shared sd per group.
    hwhm_guess_nm : float, optional
        Starting HWHM; default from the median peak width.
    group_gap_hwhm, window_hwhm : float
    max_lines : int
        Most lines in one group (larger clusters are split at their widest gaps).
    max_iter : int

    Returns
    -------
    fits : LineFits
    """
    y = _as_2d(signal_counts)
    wl = np.asarray(wavelength_nm, float)
    _check_profile(profile, instrument_sigma_nm)
    T = y.shape[0]
    n_pk = len(peaks)
    if n_pk == 0:
        return _no_fits(profile, T, max_lines)
    dwl = np.gradient(wl)
    hwhm0 = _start_hwhm(peaks, dwl, profile, hwhm_guess_nm)
    gid = _group_peaks(peaks.frame, peaks.position_nm, group_gap_hwhm * hwhm0, max_lines)
    n_groups = int(gid.max()) + 1
    var = None if variance is None else np.maximum(_as_2d(variance), 1e-12)
    noise = np.maximum(peaks.noise, 1e-12)
    out = _FitTable.empty(n_pk, n_groups, max_lines)
    counts_per = np.bincount(gid, minlength=n_groups)
    members = _group_members(gid, counts_per, peaks.position_nm)
    fit_sigma = profile == "voigt" and instrument_sigma_nm is None
    for n in range(1, max_lines + 1):  # one batch per group size
        gs = np.flatnonzero(counts_per == n)
        if gs.size == 0:
            continue
        idx = np.stack([members[g] for g in gs])  # (B, n)
        win = _fit_windows(y, wl, var, noise, peaks.frame[idx[:, 0]], peaks.position_nm[idx], window_hwhm * hwhm0)
        p0, lo, hi = _start_and_bounds(win, peaks.height[idx], peaks.position_nm[idx], hwhm0, dwl, fit_sigma)
        model_jac = (_lorentz_model(win.xc, n, dwl[win.pix]) if profile == "lorentzian"
                     else _voigt_model(win.xc, n, instrument_sigma_nm))
        fit = levenberg_marquardt_batch(model_jac, p0, win.y, win.w, lower=lo, upper=hi, max_iter=max_iter)
        out.store(idx, gs, fit, win.xmid, fit_sigma, instrument_sigma_nm if profile == "voigt" else 0.0)
    area, area_err = _line_areas(out, wl, dwl, profile)
    return LineFits(
        frame=peaks.frame.copy(), group=gid, slot=out.slot, center_nm=out.c, center_err_nm=out.ce,
        amplitude=out.a, amplitude_err=out.ae, area_counts=area, area_err=area_err,
        hwhm_nm=out.g, hwhm_err_nm=out.ge, sigma_nm=out.s, snr=out.a / noise[peaks.frame],
        redchi=out.chi, converged=out.conv, center_cov=out.center_cov, profile=profile, n_frames=T,
    )


def _check_profile(profile: str, instrument_sigma_nm: float | None) -> None:
    if profile not in ("lorentzian", "voigt"):
        raise InputError(f"profile must be 'lorentzian' or 'voigt', got {profile!r}")
    if instrument_sigma_nm is not None and not (np.isfinite(instrument_sigma_nm) and instrument_sigma_nm > 0):
        raise InputError(f"instrument_sigma_nm must be > 0, got {instrument_sigma_nm!r}")


def _no_fits(profile: str, n_frames: int, max_lines: int) -> LineFits:
    z, zi = np.zeros(0), np.zeros(0, int)
    return LineFits(zi, zi, zi, z, z, z, z, z, z, z, z, z, z, z, np.zeros(0, bool),
                    np.zeros((0, max_lines, max_lines)), profile, n_frames)


def _start_hwhm(peaks: Peaks, dwl: np.ndarray, profile: str, hwhm_guess_nm: float | None) -> float:
    """Starting HWHM (nm): the given guess, else half the median detected FWHM (x0.7 for
    a Voigt, whose Gaussian takes part of the width); at least half a pixel."""
    if hwhm_guess_nm is None:
        hwhm_guess_nm = float(np.median(peaks.fwhm_px * np.interp(peaks.pixel, np.arange(dwl.size), dwl))) / 2.0
        if profile == "voigt":
            hwhm_guess_nm *= 0.7
    return max(float(hwhm_guess_nm), 0.5 * float(np.median(dwl)))


def _group_members(gid: np.ndarray, counts_per: np.ndarray, position_nm: np.ndarray) -> list[np.ndarray]:
    """Peak indices of every group, ordered by position."""
    members = np.argsort(gid, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts_per)])
    groups = [members[starts[g]: starts[g + 1]] for g in range(counts_per.size)]
    return [m[np.argsort(position_nm[m])] for m in groups]


@dataclass
class _Windows:
    """Pixel windows of a batch of groups (B groups, padded to the widest window)."""

    pix: np.ndarray     # (B, Wm) pixel indices
    valid: np.ndarray   # (B, Wm) inside the group's window
    width: np.ndarray   # (B,) pixels in the window
    x: np.ndarray       # wavelengths
    xc: np.ndarray      # wavelengths relative to the window centre
    xmid: np.ndarray    # (B,) window centre
    y: np.ndarray       # counts
    w: np.ndarray       # weights (0 outside the window)


def _fit_windows(y, wl, var, noise, frame, pos, margin_nm) -> _Windows:
    """Windows from ``margin_nm`` below the first to ``margin_nm`` above the last line."""
    W = wl.size
    p_lo = np.clip(np.searchsorted(wl, pos[:, 0] - margin_nm), 0, W - 1)
    p_hi = np.clip(np.searchsorted(wl, pos[:, -1] + margin_nm, side="right"), 1, W)
    width = p_hi - p_lo
    pix = p_lo[:, None] + np.arange(int(width.max()))[None, :]
    valid = pix < p_hi[:, None]
    pix = np.minimum(pix, W - 1)
    x = wl[pix]
    w = valid / (var[frame[:, None], pix] if var is not None else (noise[frame] ** 2)[:, None])
    xmid = 0.5 * (x[:, 0] + wl[p_hi - 1])
    return _Windows(pix, valid, width, x, x - xmid[:, None], xmid, y[frame[:, None], pix], w)


def _start_and_bounds(win: _Windows, height, pos, hwhm0: float, dwl: np.ndarray, fit_sigma: bool):
    """Start values and bounds of [baseline, slope, amplitudes, centres, HWHM(, sigma)]."""
    B, n = pos.shape
    P = 3 + 2 * n + (1 if fit_sigma else 0)
    p0 = np.zeros((B, P))
    edge = np.where(win.valid, win.y, np.nan)
    last = np.take_along_axis(edge, (win.width - 1)[:, None] - np.arange(3)[None, :], 1)
    p0[:, 0] = np.nanmedian(np.concatenate([edge[:, :3], last], 1), axis=1)
    p0[:, 2: 2 + n] = np.maximum(height, 1e-3)
    p0[:, 2 + n: 2 + 2 * n] = pos - win.xmid[:, None]
    p0[:, 2 + 2 * n] = hwhm0
    lo = np.full((B, P), -np.inf)
    hi = np.full((B, P), np.inf)
    lo[:, 2: 2 + n] = 0.0
    half = 0.5 * (win.x[np.arange(B), win.width - 1] - win.x[:, 0])
    lo[:, 2 + n: 2 + 2 * n] = -half[:, None]
    hi[:, 2 + n: 2 + 2 * n] = half[:, None]
    lo[:, 2 + 2 * n] = 0.2 * float(np.median(dwl))
    hi[:, 2 + 2 * n] = half
    if fit_sigma:
        p0[:, -1] = hwhm0
        lo[:, -1] = 0.1 * float(np.median(dwl))
        hi[:, -1] = half
    return p0, lo, hi


@dataclass
class _FitTable:
    """Per-peak results of the group fits (NaN until the peak's group is fit)."""

    c: np.ndarray
    ce: np.ndarray
    a: np.ndarray
    ae: np.ndarray
    g: np.ndarray
    ge: np.ndarray
    s: np.ndarray
    chi: np.ndarray
    slot: np.ndarray
    conv: np.ndarray
    center_cov: np.ndarray

    @classmethod
    def empty(cls, n_peaks: int, n_groups: int, max_lines: int) -> _FitTable:
        nan = [np.full(n_peaks, np.nan) for _ in range(8)]
        return cls(*nan, np.zeros(n_peaks, int), np.zeros(n_peaks, bool),
                   np.full((n_groups, max_lines, max_lines), np.nan))

    def store(self, idx, gs, fit, xmid, fit_sigma: bool, fixed_sigma: float) -> None:
        """Write a batch of ``n``-line group fits (``fit`` from levenberg_marquardt_batch)."""
        p, cov, chi2, dof, ok = fit
        B, n = idx.shape
        err = np.sqrt(np.clip(np.einsum("bii->bi", cov), 0, None))
        flat = idx.ravel()
        self.a[flat], self.ae[flat] = p[:, 2: 2 + n].ravel(), err[:, 2: 2 + n].ravel()
        self.c[flat] = (p[:, 2 + n: 2 + 2 * n] + xmid[:, None]).ravel()
        self.ce[flat] = err[:, 2 + n: 2 + 2 * n].ravel()
        self.g[flat] = np.repeat(p[:, 2 + 2 * n], n)
        self.ge[flat] = np.repeat(err[:, 2 + 2 * n], n)
        self.s[flat] = np.repeat(p[:, -1] if fit_sigma else np.full(B, fixed_sigma), n)
        self.chi[flat] = np.repeat(np.where(dof > 0, chi2 / np.maximum(dof, 1), np.nan), n)
        self.slot[flat] = np.tile(np.arange(n), B)
        self.conv[flat] = np.repeat(ok, n)
        self.center_cov[gs, :n, :n] = cov[:, 2 + n: 2 + 2 * n, 2 + n: 2 + 2 * n]


def _line_areas(t: _FitTable, wl: np.ndarray, dwl: np.ndarray, profile: str) -> tuple[np.ndarray, np.ndarray]:
    """Integrated counts of every line and their sd (profile area over the pixel width)."""
    dl = np.interp(t.c, wl, dwl)
    if profile == "lorentzian":
        area = np.pi * t.a * t.g / dl
        return area, np.pi / dl * np.sqrt((t.ae * t.g) ** 2 + (t.a * t.ge) ** 2)
    v0 = voigt_profile(0.0, np.maximum(t.s, 1e-12), t.g)
    return t.a / v0 / dl, t.ae / v0 / dl


def _lorentz_model(xc: np.ndarray, n: int, width: np.ndarray):
    """Pixel-integrated Lorentzians (mean over each pixel of width ``width``) + linear baseline.

    F = (A gamma / d) [atan(u+) - atan(u-)], u+- = (x +- d/2 - c) / gamma: exact for
    a CCD pixel, equal to the sampled Lorentzian when gamma >> d.
    """
    hw = 0.5 * width

    def f(p, rows):
        x = xc[rows]
        h = hw[rows][:, None, :]
        b0, b1 = p[:, 0:1], p[:, 1:2]
        A = p[:, 2 : 2 + n][:, :, None]
        c = p[:, 2 + n : 2 + 2 * n][:, :, None]
        g = p[:, 2 + 2 * n][:, None, None]
        up = (x[:, None, :] + h - c) / g
        um = (x[:, None, :] - h - c) / g
        at = np.arctan(up) - np.arctan(um)
        dp, dm = 1.0 / (1.0 + up * up), 1.0 / (1.0 + um * um)
        k = g / (2.0 * h)
        prof = k * at
        f = b0 + b1 * x + np.sum(A * prof, axis=1)
        J = np.empty((x.shape[0], x.shape[1], 3 + 2 * n))
        J[:, :, 0] = 1.0
        J[:, :, 1] = x
        J[:, :, 2 : 2 + n] = np.transpose(prof, (0, 2, 1))
        J[:, :, 2 + n : 2 + 2 * n] = np.transpose(-A / (2.0 * h) * (dp - dm), (0, 2, 1))
        J[:, :, 2 + 2 * n] = np.sum(A / (2.0 * h) * (at - up * dp + um * dm), axis=1)
        return f, J

    return f


def _voigt_model(xc: np.ndarray, n: int, sigma_fixed: float | None):
    P = 3 + 2 * n + (1 if sigma_fixed is None else 0)

    def value(p, x):
        b0, b1 = p[:, 0:1], p[:, 1:2]
        A = p[:, 2 : 2 + n][:, :, None]
        c = p[:, 2 + n : 2 + 2 * n][:, :, None]
        g = p[:, 2 + 2 * n][:, None, None]
        s = (p[:, -1] if sigma_fixed is None else np.full(p.shape[0], sigma_fixed))[:, None, None]
        prof = voigt_profile(x[:, None, :] - c, s, g) / voigt_profile(0.0, s, g)
        return b0 + b1 * x + np.sum(A * prof, axis=1)

    def f(p, rows):
        x = xc[rows]
        f0 = value(p, x)
        J = np.empty((x.shape[0], x.shape[1], P))
        scale = np.maximum(np.abs(p), 1e-6) * 1e-6
        for k in range(P):  # central differences, vectorised over the batch
            dp = np.zeros_like(p)
            dp[:, k] = scale[:, k]
            J[:, :, k] = (value(p + dp, x) - value(p - dp, x)) / (2 * scale[:, k : k + 1])
        return f0, J

    return f


def lorentzian_pixels(wavelength_nm, center_nm, hwhm_nm) -> np.ndarray:
    """Unit-height Lorentzians integrated over each pixel (mean over the pixel width).

    Parameters
    ----------
    wavelength_nm : ndarray, shape (n_pixels,)
    center_nm : array_like, shape (...,)
        Line centres (e.g. one per frame).
    hwhm_nm : float or array_like broadcastable to ``center_nm``

    Returns
    -------
    profile : ndarray, shape (..., n_pixels)
    """
    wl = np.asarray(wavelength_nm, float)
    h = 0.5 * np.abs(np.gradient(wl))
    c = np.asarray(center_nm, float)[..., None]
    g = np.broadcast_to(np.asarray(hwhm_nm, float), np.shape(center_nm))[..., None]
    return g / (2 * h) * (np.arctan((wl + h - c) / g) - np.arctan((wl - h - c) / g))


def fit_amplitudes(signal_counts, wavelength_nm, position_nm, hwhm_nm, *, variance=None, chunk_frames: int = 64):
    """Peak heights of lines at fixed positions and widths, all lines of a frame jointly.

    A weighted linear least-squares fit per frame of a constant plus one
    pixel-integrated Lorentzian per line (:func:`lorentzian_pixels`): overlapping
    lines are separated, and a line that is off gets an amplitude consistent with 0.
    Frames are processed in chunks (bounded memory).

    Parameters
    ----------
    signal_counts : array_like, shape (n_frames, n_pixels)
        Baseline-subtracted counts.
    wavelength_nm : array_like, shape (n_pixels,)
    position_nm : array_like, shape (n_lines, n_frames)
        Line centre in every frame.
    hwhm_nm : array_like, shape (n_lines,)
    variance : array_like, shape (n_frames, n_pixels), optional
        Per-pixel variance (default uniform). Errors are scaled by the reduced chi-square.
    chunk_frames : int

    Returns
    -------
    amplitude, amplitude_err : ndarray, shape (n_lines, n_frames)
    """
    y = _as_2d(signal_counts)
    wl = np.asarray(wavelength_nm, float)
    pos = np.atleast_2d(np.asarray(position_nm, float))
    L, T = pos.shape
    if T != y.shape[0]:
        raise InputError(f"positions cover {T} frames, the movie has {y.shape[0]}")
    g = np.asarray(hwhm_nm, float)
    if g.shape != (L,) or np.any(~np.isfinite(g)) or np.any(g <= 0):
        raise InputError(f"hwhm_nm must hold {L} finite values > 0, got {g!r}")
    var = None if variance is None else np.maximum(_as_2d(variance), 1e-12)
    amp = np.full((L, T), np.nan)
    err = np.full((L, T), np.nan)
    if L == 0:
        return amp, err
    for a in range(0, T, max(1, int(chunk_frames))):
        b = min(T, a + max(1, int(chunk_frames)))
        X = np.empty((b - a, wl.size, L + 1))
        X[:, :, 0] = 1.0
        X[:, :, 1:] = np.transpose(lorentzian_pixels(wl, pos[:, a:b], g[:, None]), (1, 2, 0))
        w = np.ones((b - a, wl.size)) if var is None else 1.0 / var[a:b]
        XtW = np.transpose(X, (0, 2, 1)) * w[:, None, :]
        A = XtW @ X
        rhs = np.einsum("fpn,fn->fp", XtW, y[a:b])
        Ainv = np.linalg.pinv(A)
        beta = np.einsum("fpq,fq->fp", Ainv, rhs)
        res = y[a:b] - np.einsum("fnp,fp->fn", X, beta)
        dof = max(wl.size - (L + 1), 1)
        scale = np.einsum("fn,fn->f", w * res, res) / dof
        amp[:, a:b] = beta[:, 1:].T
        err[:, a:b] = np.sqrt(np.clip(np.einsum("fii->fi", Ainv)[:, 1:] * scale[:, None], 0, None)).T
    return amp, err


def fss_uev(centers_nm, cov_nm2) -> tuple[float, float]:
    """Fine-structure splitting of one set of lines fitted together, with its sd.

    Parameters
    ----------
    centers_nm : array_like, shape (n,)
        Line centres (n = 2: doublet ``|E1 - E2|``; n = 3: (E_max - E_min) / 2).
    cov_nm2 : array_like, shape (n, n)
        Covariance of the centres in nm^2.

    Returns
    -------
    fss, fss_err : float
        In micro-eV.
    """
    c = np.asarray(centers_nm, float)
    cov = np.asarray(cov_nm2, float)
    n = c.size
    if n < 2:
        raise InputError(f"FSS needs at least 2 lines, got {n}")
    e = HC_EV_NM / c
    i, j = int(np.argmax(e)), int(np.argmin(e))
    factor = 1.0 if n == 2 else 0.5
    grad = np.zeros(n)
    grad[i] = -HC_EV_NM / c[i] ** 2
    grad[j] = HC_EV_NM / c[j] ** 2
    grad *= factor
    val = factor * (e[i] - e[j])
    var = float(grad @ cov @ grad)
    if not np.isfinite(var) or var < 0:
        raise FitError(f"FSS covariance is not usable (variance {var!r}) for lines {c.tolist()} nm")
    return val * 1e6, np.sqrt(var) * 1e6

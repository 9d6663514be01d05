r"""4 K PL spectral movies (time x wavelength) of one NC, with a CCD model and a truth sidecar.

Spectrometer
------------
Pixel p = 0..N-1 (N = 1340 by default, a common back-illuminated spectroscopy CCD)
maps to wavelength ``lambda(p) = lambda_c + d1 (p - p_c) + d2 (p - p_c)^2`` with
``p_c = (N-1)/2``; pixel edges lie half-way between pixel centres. Each line of an
emitter is a Lorentzian in energy (FWHM ``Gamma`` in ueV), mapped to wavelength with
the local Jacobian (HWHM ``gamma = lambda^2 Gamma / (2 h c)``) and integrated exactly
over each pixel::

    S_p = A / pi [ atan((l_p+ - l0)/gamma) - atan((l_p- - l0)/gamma) ]

then convolved with the instrument function, a Gaussian of FWHM ``resolution_nm``
(scipy.ndimage.gaussian_filter1d), so the recorded line is a Voigt profile integrated
over each pixel. When the Gaussian sigma is narrower than 4 pixels the Lorentzian is
integrated over ``n_sub`` equal sub-pixels, filtered on that grid and summed back:
filtering pixel sums directly would give the Gaussian part of every line the same
profile wherever the line sits inside its pixel (sub-pixel positions lost; two lines
1.2 px apart at 0.85 px Gaussian sigma then came out 9 % closer to 16 % wider apart
depending on their phase; tests/test_optics_movies.py). The line centre of frame k is
the emitter's energy plus the frame-averaged Stark shift of its domain (:mod:`nanodomains.optics.emitters`), its area the emitted
photons of the frame (rate x on-weight x frame time) x line intensity x detection
efficiency (collection x spectrometer throughput).

CCD
---
Per pixel and frame (Janesick, Scientific Charge-Coupled Devices, SPIE 2001, ch. 2; for
EM gain Basden et al., MNRAS 345, 985 (2003))::

    n_e  ~ Poisson(QE (S + B t) + D t)           (shot noise, background B, dark D)
    n_em ~ Gamma(n_e, g_EM)                       (only when em_gain > 1)
    ADU  = round((n_em + N(0, sigma_read)) / (e-/ADU)) + bias,  clipped to [0, 2^bits - 1]

with full-well clipping before the ADC, and cosmic rays: Poisson(rate x t) hits per
frame at random pixels, each depositing an exponential charge (mean ``cosmic_mean_e``)
over 1-2 pixels. Excitation-power saturation enters through the emitter rates
(``1 - exp(-<N>)`` per pulse).

Output
------
:func:`simulate_movie` returns an ``xarray.DataArray`` named ``counts`` with dims
``("time", "wavelength")`` (frame start times in s, wavelengths in nm) and the truth,
a :class:`~nanodomains.records.emitters.PLEmitters` record (``origin="truth"``, the
type :func:`~nanodomains.spectroscopy.movie_analysis.analyze_movie` returns) from
:meth:`NCDynamics.truth` with each emitter's expected counts, peak SNR and whether it
falls in the window, and per-frame expected counts and line centres in ``frames``.
:func:`save_movie` writes ``NAME.nc`` (h5netcdf) and ``NAME.truth.json``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from scipy import ndimage

from nanodomains.errors import CalibrationError, InputError, require_finite, require_in_range, require_positive
from nanodomains.files import atomic_path, dumps
from nanodomains.materials import HC_EV_NM
from nanodomains.optics.emitters import NCDynamics
from nanodomains.records import PLEmitters, measured
from nanodomains.seeds import SeedLike
from nanodomains.seeds import rng as make_rng

__all__ = ["Spectrometer", "CCD", "wavelength_axis", "render_expected", "apply_ccd",
           "simulate_movie", "save_movie", "truth_path"]


@dataclass(frozen=True)
class Spectrometer:
    """Spectrometer and collection optics.

    ``center_nm=None`` centres the window on the emitters' lines. ``detection_efficiency``
    is collection x throughput (QE is in :class:`CCD`).
    """

    center_nm: float | None = None
    n_pixels: int = 1340
    dispersion_nm_per_px: float = 0.025
    dispersion_quadratic_nm_per_px2: float = 0.0
    resolution_nm: float = 0.05
    detection_efficiency: float = 0.03

    def __post_init__(self) -> None:
        if self.center_nm is not None:
            require_positive("spectrometer center_nm", self.center_nm)
        if int(self.n_pixels) != self.n_pixels or self.n_pixels < 8:
            raise InputError(f"n_pixels must be an integer >= 8, got {self.n_pixels!r}")
        require_positive("dispersion_nm_per_px", self.dispersion_nm_per_px)
        require_finite("dispersion_quadratic_nm_per_px2", self.dispersion_quadratic_nm_per_px2)
        require_positive("resolution_nm", self.resolution_nm)
        require_in_range("detection_efficiency", self.detection_efficiency, 0.0, 1.0, lo_open=True)


@dataclass(frozen=True)
class CCD:
    """Detector model (units in the names); defaults of a cooled back-illuminated CCD."""

    qe: float = 0.9
    electrons_per_adu: float = 1.0
    em_gain: float = 1.0
    read_noise_e: float = 5.0
    dark_e_per_px_s: float = 0.01
    background_photons_per_px_s: float = 2.0
    bias_adu: float = 100.0
    full_well_e: float = 2.0e5
    adc_bits: int = 16
    cosmic_rate_per_s: float = 0.05
    cosmic_mean_e: float = 1500.0

    def __post_init__(self) -> None:
        require_in_range("qe", self.qe, 0.0, 1.0, lo_open=True)
        require_positive("electrons_per_adu", self.electrons_per_adu)
        require_in_range("em_gain", self.em_gain, 1.0)
        for name in ("read_noise_e", "dark_e_per_px_s", "background_photons_per_px_s", "bias_adu",
                     "cosmic_rate_per_s"):
            require_in_range(name, getattr(self, name))
        require_positive("full_well_e", self.full_well_e)
        require_positive("cosmic_mean_e", self.cosmic_mean_e)
        if int(self.adc_bits) != self.adc_bits or not 8 <= self.adc_bits <= 32:
            raise InputError(f"adc_bits must be an integer in [8, 32], got {self.adc_bits!r}")


def wavelength_axis(spec: Spectrometer, center_nm: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres and pixel edges (nm) of the spectrometer centred at ``center_nm``."""
    c = require_positive("center_nm", center_nm)
    n = int(spec.n_pixels)
    p = np.arange(n + 1) - 0.5 - (n - 1) / 2
    pc = np.arange(n) - (n - 1) / 2
    d1, d2 = spec.dispersion_nm_per_px, spec.dispersion_quadratic_nm_per_px2
    edges = c + d1 * p + d2 * p**2
    centres = c + d1 * pc + d2 * pc**2
    if np.any(np.diff(edges) <= 0) or edges[0] <= 0:
        raise CalibrationError(
            f"spectrometer dispersion d1={d1}, d2={d2} gives a non-monotonic or negative wavelength axis")
    return centres, edges


def _auto_center(dyn: NCDynamics) -> float:
    lam = np.concatenate([em.lines_nm for em in dyn.emitters if em.rate_hz > 0] or [np.array([600.0])])
    return float(0.5 * (lam.min() + lam.max()))


def _frame_edges(n_frames: int, frame_s: float) -> np.ndarray:
    return np.arange(n_frames + 1) * frame_s


def render_expected(dyn: NCDynamics, wl_edges_nm: np.ndarray, frame_edges_s: np.ndarray, *,
                    exposure_s: float, detection_efficiency: float, resolution_nm: float,
                    ) -> tuple[np.ndarray, dict]:
    """Expected detected photons per pixel and frame (before QE), shape (n_frames, n_px).

    Returns the image and per-emitter per-frame bookkeeping (expected photons and
    line-centre shifts) for the truth.
    """
    wl_edges = np.asarray(wl_edges_nm, float)
    n_px = wl_edges.size - 1
    frames = np.asarray(frame_edges_s, float)
    n_fr = frames.size - 1
    # frame k covers [t_k, t_k+1): frames are back to back
    weights_all = dyn.frame_weights(frames)
    shifts_all = dyn.frame_shifts_ev(frames)
    photons = np.array([em.rate_hz for em in dyn.emitters])[:, None] * weights_all * exposure_s * detection_efficiency
    # gather active (line, frame) pairs
    rows, amps, centres, hwhm = [], [], [], []
    for k, em in enumerate(dyn.emitters):
        active = np.flatnonzero(photons[k] > 0)
        if active.size == 0:
            continue
        for e_line, frac in zip(em.line_ev, em.intensity):
            energy = e_line + shifts_all[k, active]
            lam0 = HC_EV_NM / energy
            rows.append(active)
            amps.append(photons[k, active] * frac)
            centres.append(lam0)
            hwhm.append(lam0**2 * em.linewidth_uev * 1e-6 / (2 * HC_EV_NM))
    disp = np.diff(wl_edges)
    sigma_px = resolution_nm / (2 * math.sqrt(2 * math.log(2))) / float(np.median(disp))
    # sub-pixels so that the instrument sigma spans >= 4 of them (exact pixel sums of a Voigt)
    n_sub = int(min(8, math.ceil(4.0 / sigma_px))) if sigma_px > 0.05 else 1
    edges_sub = np.interp(np.arange(n_px * n_sub + 1) / n_sub, np.arange(n_px + 1), wl_edges)
    image = np.zeros((n_fr, n_px * n_sub))
    if rows:
        r = np.concatenate(rows)
        a = np.concatenate(amps)
        c = np.concatenate(centres)
        g = np.concatenate(hwhm)
        # keep only lines within reach of the window (50 HWHM)
        reach = (c + 50 * g > wl_edges[0]) & (c - 50 * g < wl_edges[-1])
        r, a, c, g = r[reach], a[reach], c[reach], g[reach]
        if r.size:
            cdf = np.arctan((edges_sub[None, :] - c[:, None]) / g[:, None])
            prof = np.diff(cdf, axis=1) * (a / np.pi)[:, None]
            onehot = np.zeros((n_fr, r.size))
            onehot[r, np.arange(r.size)] = 1.0
            image = onehot @ prof
    if sigma_px > 0.05:
        image = ndimage.gaussian_filter1d(image, sigma_px * n_sub, axis=1, mode="constant", truncate=6.0)
    image = image.reshape(n_fr, n_px, n_sub).sum(axis=2)
    book = {"photons": photons, "shift_ev": shifts_all, "weights": weights_all}
    return np.clip(image, 0, None), book


def apply_ccd(expected_photons: np.ndarray, ccd: CCD, exposure_s: float,
              rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """Detector counts (ADU, float64 integers) from expected photons per pixel and frame."""
    lam = ccd.qe * (expected_photons + ccd.background_photons_per_px_s * exposure_s) \
        + ccd.dark_e_per_px_s * exposure_s
    electrons = rng.poisson(lam).astype(float)
    if ccd.em_gain > 1:
        pos = electrons > 0
        electrons[pos] = rng.gamma(electrons[pos], ccd.em_gain)
    cosmics = []
    n_fr, n_px = electrons.shape
    n_hits = rng.poisson(ccd.cosmic_rate_per_s * exposure_s, n_fr)
    if n_hits.sum():
        fr = np.repeat(np.arange(n_fr), n_hits)
        px = rng.integers(0, n_px, fr.size)
        charge = rng.exponential(ccd.cosmic_mean_e, fr.size) + 200.0
        width = rng.integers(1, 3, fr.size)
        for f, p, q, w in zip(fr, px, charge, width):  # a handful per movie
            sl = slice(p, min(p + w, n_px))
            electrons[f, sl] += q / w * (ccd.em_gain if ccd.em_gain > 1 else 1.0)
            cosmics.append({"frame": int(f), "pixel": int(p), "width_px": int(w), "electrons": float(q)})
    electrons = np.minimum(electrons, ccd.full_well_e * max(ccd.em_gain, 1.0))
    adu = np.round((electrons + rng.normal(0, ccd.read_noise_e, electrons.shape)) / ccd.electrons_per_adu
                   + ccd.bias_adu)
    return np.clip(adu, 0, 2**ccd.adc_bits - 1), cosmics


def simulate_movie(dyn: NCDynamics, *, n_frames: int = 120, frame_s: float = 1.0,
                   spectrometer: Spectrometer = Spectrometer(), ccd: CCD = CCD(),
                   seed: SeedLike = 0, name: str = "") -> tuple[xr.DataArray, PLEmitters]:
    """Render a PL spectral movie of the NC dynamics ``dyn``.

    Parameters
    ----------
    dyn : NCDynamics
        From :func:`nanodomains.optics.emitters.simulate_dynamics` (or a preset).
    n_frames : int
        Number of frames (default 120).
    frame_s : float
        Exposure per frame in s (frames are back to back; default 1 s).
    spectrometer, ccd : Spectrometer, CCD
    seed : int or Generator
        Detector noise randomness (:func:`nanodomains.seeds.rng`).

    Returns
    -------
    movie : xarray.DataArray
        ``counts`` (ADU), dims (time, wavelength).
    truth : PLEmitters
        The truth record (see :meth:`NCDynamics.truth`): emitters with their expected
        ``mean_counts``, ``peak_snr`` and ``in_window``; ``frames`` (expected counts and
        centres per emitter and frame); ``meta`` with the spectrometer, CCD, cosmic
        rays and movie size.
    """
    if int(n_frames) != n_frames or n_frames < 1:
        raise InputError(f"n_frames must be an integer >= 1, got {n_frames!r}")
    exposure = require_positive("frame_s", frame_s)
    n_frames = int(n_frames)
    if n_frames * exposure > dyn.duration_s * (1 + 1e-9):
        raise InputError(f"{n_frames} frames of {exposure} s exceed the simulated {dyn.duration_s} s")
    rng = make_rng(seed)
    center = spectrometer.center_nm if spectrometer.center_nm is not None else _auto_center(dyn)
    wl, wl_edges = wavelength_axis(spectrometer, center)
    frames = _frame_edges(n_frames, exposure)
    expected, book = render_expected(dyn, wl_edges, frames, exposure_s=exposure,
                                     detection_efficiency=spectrometer.detection_efficiency,
                                     resolution_nm=spectrometer.resolution_nm)
    counts, cosmics = apply_ccd(expected, ccd, exposure, rng)
    time_s = frames[:-1]
    attrs = {
        "units": "ADU", "long_name": "CCD counts", "source": "nanodomains.optics simulator",
        "exposure_s": exposure, "frame_s": exposure, "n_frames": n_frames,
        "spectrometer_center_nm": float(center), "dispersion_nm_per_px": spectrometer.dispersion_nm_per_px,
        "resolution_nm": spectrometer.resolution_nm, "bias_adu": ccd.bias_adu,
        "electrons_per_adu": ccd.electrons_per_adu, "qe": ccd.qe, "em_gain": ccd.em_gain,
        "read_noise_e": ccd.read_noise_e, "seed": -1 if not isinstance(seed, (int, np.integer)) else int(seed),
        "dynamics_seed": -1 if dyn.seed is None else int(dyn.seed), "name": name,
        "format": "nanodomains simulated movie",
        "time_source": "simulated frame start times",
        "wavelength_source": "simulated spectrometer dispersion",
    }
    movie = xr.DataArray(counts, dims=("time", "wavelength"),
                         coords={"time": ("time", time_s, {"units": "s"}),
                                 "wavelength": ("wavelength", wl, {"units": "nm"})},
                         name="counts", attrs=attrs)
    truth = _movie_truth(dyn, book, expected, wl, frames, exposure, spectrometer, ccd, cosmics, counts, name)
    return movie, truth


def _noise_adu(ccd: CCD, expected: np.ndarray, exposure: float) -> np.ndarray:
    e_var = ccd.qe * (expected + ccd.background_photons_per_px_s * exposure) + ccd.dark_e_per_px_s * exposure
    excess = 2.0 if ccd.em_gain > 1 else 1.0
    return np.sqrt(excess * e_var * max(ccd.em_gain, 1.0) ** 2 + ccd.read_noise_e**2) / ccd.electrons_per_adu


def _visibility(em, on: np.ndarray, counts_k: np.ndarray, noise: np.ndarray, wl: np.ndarray,
                spec: Spectrometer) -> dict:
    """Whether an emitter's lines fall in the window, and the peak counts and SNR of its
    strongest line in a typical on frame (rough Voigt peak of the median on counts)."""
    lam = em.lines_nm
    inside = (lam > wl[0]) & (lam < wl[-1])
    out = {"in_window": bool(inside.any()), "peak_counts": 0.0, "peak_snr": 0.0}
    if on.any() and inside.any():
        j = int(np.argmax(em.intensity * inside))
        px = int(np.argmin(np.abs(wl - lam[j])))
        hw = lam[j] ** 2 * em.linewidth_uev * 1e-6 / (2 * HC_EV_NM)
        disp = abs(wl[min(px + 1, wl.size - 1)] - wl[max(px - 1, 0)]) / 2
        sig = math.hypot(spec.resolution_nm / 2.3548, hw / 1.1774)  # rough Voigt width
        frac = min(1.0, disp / (sig * math.sqrt(2 * math.pi)))
        peak = float(np.median(counts_k[on])) * float(em.intensity[j]) * frac
        out.update(peak_counts=peak, peak_snr=peak / float(np.median(noise[:, px])))
    return out


def _movie_truth(dyn, book, expected, wl, frames, exposure, spec, ccd, cosmics, counts, name) -> PLEmitters:
    """:meth:`NCDynamics.truth` with what the movie shows of each emitter and per frame."""
    truth = dyn.truth(frame_edges_s=frames)
    gain = ccd.qe * max(ccd.em_gain, 1.0) / ccd.electrons_per_adu
    photons = book["photons"]
    noise = _noise_adu(ccd, expected, exposure)
    index = {em.id: k for k, em in enumerate(dyn.emitters)}
    emitters = []
    for em_t in truth.emitters:
        k = index[em_t.id]
        on = book["weights"][k] > 0.5
        counts_k = photons[k] * gain
        mean = float(counts_k[on].mean()) if on.any() else 0.0
        lines = [line.replace(mean_counts=measured(mean * float(line.fraction), 0.0)) for line in em_t.lines]
        emitters.append(em_t.replace(mean_counts=measured(mean, 0.0), lines=lines,
                                     **_visibility(dyn.emitters[k], on, counts_k, noise, wl, spec)))
    frames_truth = {
        "time_s": [float(t) for t in frames[:-1]],
        "exposure_s": exposure,
        "expected_counts": {em.id: [round(float(x), 3) for x in photons[k] * gain]
                            for k, em in enumerate(dyn.emitters)},
        "center_nm": {em.id: [round(float(HC_EV_NM / (em.center_ev + s)), 6) for s in book["shift_ev"][k]]
                      for k, em in enumerate(dyn.emitters)},
    }
    meta = {"spectrometer": {**asdict(spec), "center_nm": float(0.5 * (wl[0] + wl[-1]))}, "ccd": asdict(ccd),
            "cosmic_rays": cosmics, "saturated_pixels": int(np.sum(counts >= 2**ccd.adc_bits - 1)),
            "movie": name, "n_pixels": int(counts.shape[1])}
    return truth.replace(emitters=emitters, frames=frames_truth, meta=meta, n_frames=int(counts.shape[0]),
                         frame_s=exposure, source=name or None)


def truth_path(path) -> Path:
    """``movie.nc`` -> ``movie.truth.json`` (any suffix replaced)."""
    p = Path(path)
    return p.with_name(p.stem + ".truth.json")


def save_movie(movie: xr.DataArray, truth: PLEmitters | None, path) -> tuple[Path, Path | None]:
    """Write the movie to netCDF (h5netcdf) and the truth record to ``*.truth.json``, atomically."""
    p = Path(path)
    if p.suffix.lower() not in (".nc", ".nc4", ".h5", ".netcdf"):
        raise InputError(f"{p}: movies are written as netCDF (.nc)")
    out = movie.copy()
    out.attrs = {k: (dumps(v, indent=None) if isinstance(v, (dict, list)) else v) for k, v in movie.attrs.items()}
    tp = truth_path(p) if truth is not None else None
    if tp is not None:
        out.attrs["truth_file"] = tp.name
    with atomic_path(p) as tmp:
        out.to_netcdf(tmp, engine="h5netcdf")
    if tp is not None:
        truth.to_json(tp)
    return p, tp

"""Does a spectral movie fit the single-emitter analysis? Saturation, exclusions, line classes.

:func:`~nanodomains.spectroscopy.movie_analysis.analyze_movie` assumes a 4 K single-NC
movie: narrow lines that blink and wander on a smooth dark background, recorded within
the detector's range. Real files break this in ways this module detects and reports,
so that an analysis says what the data are instead of calling everything an emitter.

Saturation (:func:`detect_saturation`)
    A pixel at the detector ceiling carries no intensity information. Two tests: the
    format's ceiling when the file records it (an integer data type, an ADC bit depth:
    counts >= ``ceiling``), and a plateau in the data: at least ``min_run`` adjacent
    pixels of one frame at exactly that frame's maximum (>= ``min_level`` counts). Photon
    noise makes ties of a few adjacent bright pixels improbable (the chance that two
    Poisson counts of mean N are equal is ~1/(2 sqrt(pi N)): 3 % at N = 100, so three
    equal neighbours ~1e-3 per frame at 100 counts and less above); a clipped detector
    gives flat tops (the Full_SMS file: ~500 of 512 pixels at ~16,200 counts in every
    frame). Lines whose fit window holds a clipped pixel are not measured in that frame.

Exclusions (:func:`exclusion_ranges`)
    The excitation laser (wavelength from the file header or given) +- a half-width, and
    user ranges; line detections inside them are dropped before tracking.

Line classes (:func:`classify_line`), in this order
    ``raman``: with a known laser, a line whose Stokes shift
    ``1e7/lambda_laser - 1e7/lambda`` (cm-1) lies within the resolution (and at least
    ``raman_tol_cm1``) of a substrate Raman line in :data:`nanodomains.materials.RAMAN_SHIFTS_CM1`
    (Si 520.7 cm-1).
    ``static``: detected in at least ``static_presence`` of the frames (movies of at
    least ``min_frames_static`` frames) and not moving: the reduced chi-square of its
    centre about the median is at most ``static_chi2`` (scatter consistent with the fit
    errors) or its robust wander (1.4826 MAD) is below ``static_wander_hwhm`` of its
    HWHM. Single emitters at 4 K wander spectrally by a good fraction of their width
    from frame to frame (spectral diffusion: Empedocles & Bawendi, Science 278, 2114
    (1997)); laser, Raman and lamp lines do not. On this project's simulated
    movies emitters wander with chi-square 70-2900 and 0.2-1 HWHM; the lines of the
    real SIF series 0.4-6.5 and 0.01-0.1 HWHM (measured, see docs/spectroscopy.md).
    ``broad``: FWHM larger than ``broad_factor`` times the spectrometer resolution
    (when the resolution is known: given, from the file, or the laser line's own width).
    ``band``: the movie is a broad band (:func:`band_check`: the continuum under the
    lines holds more counts than all the lines together and spans a tenth of the
    window) and the line sits on that continuum: structure of the band, not an emitter.

Counts (:func:`offset_check`)
    Counts below the camera offset by more than the read noise mean the file was
    background-subtracted or corrupt: reported, not refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nanodomains.errors import InputError
from nanodomains.materials import RAMAN_SHIFTS_CM1

__all__ = [
    "Saturation",
    "detect_saturation",
    "exclusion_ranges",
    "in_ranges",
    "raman_shift_cm1",
    "match_raman",
    "centre_wander",
    "classify_line",
    "band_check",
    "offset_check",
]


@dataclass
class Saturation:
    """Clipped pixels of a movie.

    Attributes
    ----------
    mask : ndarray of bool, shape (n_frames, n_pixels)
    level : ndarray, shape (n_frames,)
        Plateau or ceiling value of each frame with clipped pixels (NaN elsewhere).
    ceiling : float or None
        The format's ceiling used (None when the file records none).
    ceiling_source : str
    """

    mask: np.ndarray
    level: np.ndarray
    ceiling: float | None
    ceiling_source: str

    @property
    def frames(self) -> np.ndarray:
        """Indices of the frames with at least one clipped pixel."""
        return np.flatnonzero(self.mask.any(axis=1))

    @property
    def any(self) -> bool:
        return bool(self.mask.any())

    def summary(self) -> dict:
        """JSON-ready facts: frames, clipped pixel counts, levels, ceiling."""
        fr = self.frames
        return {
            "n_frames": int(fr.size), "frames": fr.tolist(),
            "n_pixels": int(self.mask.sum()),
            "fraction_of_pixels": float(self.mask.mean()) if self.mask.size else 0.0,
            "levels_counts": [float(v) for v in np.unique(self.level[fr])] if fr.size else [],
            "ceiling_counts": self.ceiling, "ceiling_source": self.ceiling_source,
        }

    def message(self, n_frames: int) -> str:
        fr = self.frames
        lv = self.level[fr]
        rng = f"{np.nanmin(lv):.6g}" if np.nanmin(lv) == np.nanmax(lv) else f"{np.nanmin(lv):.6g}-{np.nanmax(lv):.6g}"
        return (f"detector saturated: {int(self.mask.sum())} pixels clipped at {rng} counts in {fr.size} of "
                f"{n_frames} frames ({100 * self.mask[fr].mean():.0f} % of their pixels); lines on clipped "
                "pixels are not measured in those frames")


def detect_saturation(counts, *, ceiling: float | None = None, ceiling_source: str = "",
                      min_run: int = 3, min_level: float = 100.0) -> Saturation:
    """Clipped pixels: at the format's ceiling, or on a flat top at the frame maximum.

    Parameters
    ----------
    counts : array_like, shape (n_frames, n_pixels)
        Raw counts (before any cleaning).
    ceiling : float, optional
        The largest value the format or ADC can hold (e.g. 65535 for 16 bits).
    ceiling_source : str
        Where ``ceiling`` comes from (reported).
    min_run : int
        Adjacent pixels at exactly the frame maximum that make a plateau.
    min_level : float
        Frame maxima below this are never called a plateau (ties are common at low counts).

    Returns
    -------
    saturation : Saturation
    """
    y = np.asarray(counts, dtype=np.float64)
    if y.ndim != 2:
        raise InputError(f"counts must be 2-D (frames, pixels), got shape {y.shape}")
    if min_run < 2:
        raise InputError(f"min_run must be >= 2, got {min_run}")
    top = np.max(y, axis=1, keepdims=True)
    at_top = (y == top) & (top >= min_level)
    # pixels inside a run of >= min_run equal maxima: a moving sum over the run length
    c = np.concatenate([np.zeros((y.shape[0], 1), np.int64), np.cumsum(at_top, axis=1)], axis=1)
    full = (c[:, min_run:] - c[:, :-min_run]) == min_run
    plateau_frame = full.any(axis=1)
    mask = at_top & plateau_frame[:, None]  # every pixel at the plateau value of such a frame
    if ceiling is not None and math.isfinite(ceiling):
        mask |= y >= ceiling
    level = np.where(mask.any(axis=1), np.max(np.where(mask, y, -np.inf), axis=1), np.nan)
    return Saturation(mask=mask, level=level, ceiling=None if ceiling is None else float(ceiling),
                      ceiling_source=ceiling_source or ("none recorded in the file" if ceiling is None else "given"))


def clipped_near(saturation: Saturation, frame, center_nm, halfwidth_nm, wavelength_nm) -> np.ndarray:
    """True for every (frame, centre +- halfwidth) window that holds a clipped pixel."""
    wl = np.asarray(wavelength_nm, float)
    frame = np.asarray(frame, int)
    if frame.size == 0 or not saturation.any:
        return np.zeros(frame.size, bool)
    csum = np.concatenate([np.zeros((saturation.mask.shape[0], 1), np.int64),
                           np.cumsum(saturation.mask, axis=1)], axis=1)
    lo = np.searchsorted(wl, np.asarray(center_nm) - halfwidth_nm, side="left")
    hi = np.searchsorted(wl, np.asarray(center_nm) + halfwidth_nm, side="right")
    return (csum[frame, hi] - csum[frame, lo]) > 0


def exclusion_ranges(*, laser_nm: float | None = None, laser_source: str = "",
                     laser_halfwidth_nm: float = 1.0, exclude_nm=()) -> list[dict]:
    """Wavelength ranges whose line detections are dropped, each with its reason.

    Parameters
    ----------
    laser_nm : float, optional
        Excitation wavelength.
    laser_source : str
        Where it comes from (file header, user).
    laser_halfwidth_nm : float
        Half-width excluded around the laser.
    exclude_nm : sequence of (lo, hi)
        User ranges (nm).

    Returns
    -------
    ranges : list of dict
        ``{"lo_nm", "hi_nm", "reason"}``.
    """
    out = []
    if laser_nm is not None:
        if not (math.isfinite(laser_nm) and laser_nm > 0):
            raise InputError(f"laser wavelength must be a positive number of nm, got {laser_nm!r}")
        if not laser_halfwidth_nm > 0:
            raise InputError(f"laser half-width must be > 0 nm, got {laser_halfwidth_nm!r}")
        out.append({"lo_nm": laser_nm - laser_halfwidth_nm, "hi_nm": laser_nm + laser_halfwidth_nm,
                    "reason": f"excitation laser {laser_nm:g} nm ({laser_source or 'given'})"})
    for r in exclude_nm or ():
        lo, hi = (float(v) for v in r)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise InputError(f"excluded range must be lo < hi in nm, got {r!r}")
        out.append({"lo_nm": lo, "hi_nm": hi, "reason": "excluded by the user"})
    return out


def in_ranges(x_nm, ranges: list[dict]) -> np.ndarray:
    """True where ``x_nm`` falls in any of ``ranges`` (closed intervals)."""
    x = np.asarray(x_nm, float)
    hit = np.zeros(x.shape, bool)
    for r in ranges:
        hit |= (x >= r["lo_nm"]) & (x <= r["hi_nm"])
    return hit


def raman_shift_cm1(laser_nm: float, wavelength_nm):
    """Stokes Raman shift (cm-1) of light at ``wavelength_nm`` excited at ``laser_nm``."""
    return 1e7 / float(laser_nm) - 1e7 / np.asarray(wavelength_nm, float)


def match_raman(shift_cm1: float, tol_cm1: float) -> str | None:
    """Name of the substrate Raman line within ``tol_cm1`` of ``shift_cm1`` (None if none)."""
    best = min(RAMAN_SHIFTS_CM1.items(), key=lambda kv: abs(kv[1] - shift_cm1))
    return f"{best[0]} {best[1]:g} cm-1" if abs(best[1] - shift_cm1) <= tol_cm1 else None


def centre_wander(center_nm, center_err_nm) -> dict:
    """Presence and spectral wander of one line over a movie.

    Parameters
    ----------
    center_nm, center_err_nm : array_like, shape (n_frames,)
        Fitted centre and its standard error per frame (NaN where not detected).

    Returns
    -------
    wander : dict
        ``presence`` (fraction of frames detected), ``wander_nm`` (1.4826 MAD of the
        centre), ``chi2`` (reduced chi-square of the centres about their median).
    """
    c, e = np.asarray(center_nm, float), np.asarray(center_err_nm, float)
    ok = np.isfinite(c) & np.isfinite(e) & (e > 0)
    n = int(ok.sum())
    if n < 2:
        return {"presence": n / max(c.size, 1), "wander_nm": math.nan, "chi2": math.nan}
    med = float(np.median(c[ok]))
    mad = 1.4826 * float(np.median(np.abs(c[ok] - med)))
    chi2 = float(np.sum(((c[ok] - med) / e[ok]) ** 2) / (n - 1))
    return {"presence": n / c.size, "wander_nm": mad, "chi2": chi2}


def classify_line(*, center_nm: float, fwhm_nm: float, wander: dict, n_frames: int,
                  laser_nm: float | None = None, resolution_nm: float | None = None,
                  on_band: bool = False, raman_tol_cm1: float = 10.0, static_presence: float = 0.9,
                  min_frames_static: int = 5, static_chi2: float = 10.0, static_wander_hwhm: float = 0.1,
                  broad_factor: float = 3.0) -> tuple[str, str]:
    """Class of one line or emitter and the reason (see the module docstring).

    Returns
    -------
    cls : str
        ``"emitter"``, ``"raman"``, ``"static"``, ``"broad"`` or ``"band"``.
    reason : str
    """
    if laser_nm is not None and center_nm > laser_nm:
        shift = float(raman_shift_cm1(laser_nm, center_nm))
        # tolerance: the resolution expressed in cm-1 at this wavelength, at least raman_tol_cm1
        tol = raman_tol_cm1
        if resolution_nm:
            tol = max(tol, 1e7 * resolution_nm / center_nm**2)
        name = match_raman(shift, tol)
        if name:
            return "raman", f"Raman line of {name} (shift {shift:.1f} cm-1 from the {laser_nm:g} nm laser)"
    if n_frames >= min_frames_static and wander["presence"] >= static_presence:
        hwhm = 0.5 * fwhm_nm
        still = (wander["chi2"] <= static_chi2) or (wander["wander_nm"] <= static_wander_hwhm * hwhm)
        if still:
            return "static", (f"present in {100 * wander['presence']:.0f} % of frames and not moving (wander "
                              f"{wander['wander_nm']:.3g} nm = {wander['wander_nm'] / hwhm:.2f} HWHM, chi2 "
                              f"{wander['chi2']:.2g}): an instrument, lamp or Raman line, not a single emitter")
    if resolution_nm and fwhm_nm > broad_factor * resolution_nm:
        return "broad", (f"FWHM {fwhm_nm:.3g} nm is {fwhm_nm / resolution_nm:.1f} x the resolution "
                         f"{resolution_nm:.3g} nm: not a single 4 K emitter line")
    if on_band:
        return "band", "structure on a broad emission band, not a narrow emitter"
    return "emitter", ""


def band_check(mean_counts, baseline, *, line_area_counts: float, noise_sd: float,
               usable=None, offset_percentile: float = 1.0, min_extent: float = 0.1) -> dict:
    """Is the time-mean spectrum a broad band rather than narrow lines on a dark floor?

    Parameters
    ----------
    mean_counts : array_like, shape (n_pixels,)
        Time-mean of the cleaned counts.
    baseline : array_like, shape (n_pixels,)
        Time-mean of the per-frame baseline under the lines.
    line_area_counts : float
        Summed time-mean integrated counts of all detected lines (per frame).
    noise_sd : float
        Noise sd of one pixel of ``mean_counts``.
    usable : array_like of bool, optional
        Pixels to use (not excluded, not clipped).
    offset_percentile : float
        The dark level (camera offset) is this percentile of ``mean_counts``.
    min_extent : float
        Fraction of the usable pixels the continuum must cover.

    Returns
    -------
    check : dict
        ``is_band``, ``offset_counts``, ``continuum_counts`` (summed over pixels, per
        frame), ``line_counts``, ``band_fraction``, ``extent_fraction``, ``band_mask``
        (pixels of the continuum), ``reason``.
    """
    m = np.asarray(mean_counts, float)
    b = np.asarray(baseline, float)
    use = np.ones(m.shape, bool) if usable is None else np.asarray(usable, bool)
    if use.sum() < 8:
        return {"is_band": False, "reason": "too few usable pixels", "band_mask": np.zeros(m.shape, bool)}
    offset = float(np.percentile(m[use], offset_percentile))
    cont = np.clip(b - offset, 0.0, None)
    band_mask = use & (cont > 5.0 * max(noise_sd, 1e-12))
    cont_sum = float(cont[band_mask].sum())
    total = cont_sum + max(line_area_counts, 0.0)
    frac = cont_sum / total if total > 0 else 0.0
    extent = float(band_mask.sum() / use.sum())
    is_band = frac > 0.5 and extent >= min_extent
    reason = (f"the continuum above the camera offset ({offset:.6g} counts) holds {100 * frac:.0f} % of the "
              f"emission over {100 * extent:.0f} % of the window")
    return {"is_band": bool(is_band), "offset_counts": offset, "continuum_counts": cont_sum,
            "line_counts": float(line_area_counts), "band_fraction": frac, "extent_fraction": extent,
            "band_mask": band_mask, "reason": reason}


def offset_check(counts, offset: float, noise_sd) -> dict:
    """Pixels below the camera offset by more than 6 noise sd (physically impossible in raw counts)."""
    y = np.asarray(counts, float)
    sd = np.asarray(noise_sd, float).reshape(-1, 1) if np.ndim(noise_sd) else float(noise_sd)
    low = y < offset - 6.0 * np.maximum(sd, 1e-12)
    return {"n_pixels": int(low.sum()), "fraction": float(low.mean()) if low.size else 0.0}

"""Screening of PL movies (what the data are): saturation, laser/ranges, static and band
lines, never-on sets, multiple-testing correction. Synthetic movies with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from nanodomains.errors import InputError
from nanodomains.spectroscopy.correlation import adjust_pvalues
from nanodomains.spectroscopy.io import movie_from_arrays
from nanodomains.spectroscopy.movie_analysis import analyze_movie
from nanodomains.spectroscopy.screening import (
    band_check,
    classify_line,
    detect_saturation,
    raman_shift_cm1,
)
from nanodomains.testing.pl import fig4_like


def _with_line(movie: xr.DataArray, center_nm: float, peak: float, hwhm_nm: float, seed: int = 5) -> xr.DataArray:
    """The movie plus a Lorentzian line of constant height in every frame (Poisson noise)."""
    wl = movie["wavelength"].values
    prof = peak / (1 + ((wl - center_nm) / hwhm_nm) ** 2)
    extra = np.random.default_rng(seed).poisson(np.broadcast_to(prof, movie.shape)).astype(float)
    return movie.copy(data=movie.values + extra)


def test_saturation_plateau_and_ceiling():
    rng = np.random.default_rng(0)
    y = rng.poisson(500, size=(4, 200)).astype(float)
    y[1, 50:60] = 16200.0  # a flat top: clipped
    y[2, 10] = 3000.0  # a single bright pixel is not a plateau
    s = detect_saturation(y)
    assert s.frames.tolist() == [1] and s.mask[1, 50:60].all() and s.mask.sum() == 10
    assert s.level[1] == 16200.0 and np.isnan(s.level[0])
    s2 = detect_saturation(y, ceiling=3000.0, ceiling_source="test")
    assert set(s2.frames.tolist()) == {1, 2} and s2.mask[2, 10]
    # a plain Poisson movie at moderate counts has no plateau
    assert not detect_saturation(rng.poisson(2000, size=(50, 500)).astype(float)).any


def test_benjamini_hochberg_and_holm_by_hand():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    bh = adjust_pvalues(p, "bh")
    # step-up: q_(i) = min_{j >= i} p_(j) m / j
    assert bh[0] == pytest.approx(0.01) and bh[1] == pytest.approx(0.04)
    assert bh[2:5] == pytest.approx([0.084] * 3)
    holm = adjust_pvalues(p, "holm")
    assert holm[0] == pytest.approx(0.01) and holm[1] == pytest.approx(0.072)
    assert np.isnan(adjust_pvalues([np.nan, 0.5], "bh")[0])
    with pytest.raises(InputError):
        adjust_pvalues([0.1], "fdr")


def test_raman_shift_and_si_line():
    # Si 520.7 cm-1 from a 636.3 nm laser lies at 658.1 nm (the SPE 2.2 test file)
    lam = 1e7 / (1e7 / 636.3 - 520.7)
    assert lam == pytest.approx(658.104, abs=0.001)
    assert raman_shift_cm1(636.3, lam) == pytest.approx(520.7)
    wander = {"presence": 0.3, "wander_nm": 0.2, "chi2": 30.0}
    cls, why = classify_line(center_nm=lam + 0.1, fwhm_nm=0.8, wander=wander, n_frames=35, laser_nm=636.3)
    assert cls == "raman" and "Si" in why
    cls, _ = classify_line(center_nm=lam + 3, fwhm_nm=0.8, wander=wander, n_frames=35, laser_nm=636.3)
    assert cls == "emitter"


def test_band_check_by_hand():
    wl = np.linspace(600, 700, 500)
    band = 100 + 50 * np.exp(-0.5 * ((wl - 650) / 15) ** 2)
    chk = band_check(band, band, line_area_counts=100.0, noise_sd=1.0)
    # continuum 50 * 15 * sqrt(2 pi) / 0.2 nm-per-px ~ 9400 counts against 100 in lines
    assert chk["is_band"] and chk["band_fraction"] > 0.95 and chk["offset_counts"] == pytest.approx(100, abs=0.5)
    flat = np.full(500, 100.0)
    assert not band_check(flat, flat, line_area_counts=100.0, noise_sd=1.0)["is_band"]


def test_static_line_laser_and_range_on_a_synthetic_movie():
    movie, truth = fig4_like(seed=11)
    # a lamp-like line: constant height, fixed position, every frame; and a laser line
    movie = _with_line(_with_line(movie, 657.5, 3000.0, 0.04), 642.0, 8000.0, 0.04, seed=6)
    res = analyze_movie(movie, n_surrogates=99, laser_nm=642.0).record
    centres = [float(e.center_nm) for e in res.emitters]
    assert not any(abs(c - 642.0) < 1 for c in centres) and not any(abs(c - 657.5) < 0.2 for c in centres)
    static = [o for o in res.meta["not_emitters"] if o["class"] == "static"]
    assert len(static) == 1 and abs(static[0]["center_nm"] - 657.5) < 0.01 and static[0]["presence"] == 1.0
    assert res.meta["dropped_detections"]["in_excluded_ranges"] >= 100
    assert len(res.emitters) == 4  # the truth's doublet, triplet, singlet and trion remain
    # a user range: only the trion region
    crop = analyze_movie(movie, n_surrogates=99, laser_nm=642.0, range_nm=(654.0, 660.0)).record
    assert crop.meta["cropped_to_nm"] == [654.0, 660.0]
    assert all(654 < float(e.center_nm) < 660 for e in crop.emitters)
    with pytest.raises(InputError, match="range"):
        analyze_movie(movie, range_nm=(700.0, 710.0))


def test_clipped_frames_give_no_emitters():
    movie, truth = fig4_like(seed=12)
    y = movie.values.copy()
    y[:, :] = np.minimum(y, 400.0)  # every line top clipped at 400 counts
    res = analyze_movie(movie.copy(data=y), n_surrogates=99).record
    assert res.meta["saturation"]["n_frames"] > 0
    assert any("saturated" in w for w in res.warnings)
    # no line is measured on clipped pixels: only lines that never reach 400 counts remain
    assert res.meta["dropped_detections"]["on_clipped_pixels"] > 0
    assert len(res.emitters) < 4


def test_frame_index_movies_say_so():
    movie, _ = fig4_like(seed=11, n_frames=40)
    bare = movie_from_arrays(movie.values, movie["wavelength"].values)  # no timing
    res = analyze_movie(bare, n_surrogates=49).record
    assert res.meta["time_units"] == "frame"
    assert any("frame indices" in w for w in res.warnings)


def test_still_line_that_dims_is_an_emitter_a_steady_one_static():
    """Two narrow lines that never move and are in every frame: one keeps its height (a
    lamp), the other drops to a quarter for 15 frames (an emitter under a shared trap)."""
    movie, _ = fig4_like(seed=11)
    wl = movie["wavelength"].values
    lamp = _with_line(movie, 657.5, 3000.0, 0.04)
    height = np.full(movie.sizes["time"], 3000.0)
    height[60:75] = 750.0
    prof = height[:, None] / (1 + ((wl[None, :] - 647.0) / 0.04) ** 2)
    both = lamp.copy(data=lamp.values + np.random.default_rng(8).poisson(prof).astype(float))
    res = analyze_movie(both, n_surrogates=99).record
    static = [o for o in res.meta["not_emitters"] if o["class"] == "static"]
    assert len(static) == 1 and abs(static[0]["center_nm"] - 657.5) < 0.01
    dimmed = [e for e in res.emitters if abs(float(e.center_nm) - 647.0) < 0.05]
    assert len(dimmed) == 1 and dimmed[0].kind == "singlet"
    assert any("647.00 nm" in w and "intensity steps" in w for w in res.warnings)

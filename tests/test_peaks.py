"""Preprocessing, peak detection and batched line fits against known truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import curve_fit

from nanodomains.errors import FitError, InputError
from nanodomains.spectroscopy.io import movie_from_arrays
from nanodomains.spectroscopy.peaks import (
    HC_EV_NM,
    bin_movie,
    complete_multiplets,
    detect_peaks,
    estimate_background,
    estimate_noise,
    fit_lines,
    fss_uev,
    lorentzian,
    mean_multiplets,
    remove_cosmic_rays,
    voigt,
)
from nanodomains.testing.pl import fig4_like, lines_nm, make_movie, on_between


def test_profiles_and_areas():
    x = np.linspace(-50, 50, 200001)
    dx = x[1] - x[0]
    L = lorentzian(x, 0.3, 0.05, 7.0)
    assert L.max() == pytest.approx(7.0, rel=1e-6)
    assert np.sum(L) * dx == pytest.approx(np.pi * 7.0 * 0.05, rel=2e-3)  # pi A gamma
    # Voigt with a vanishing Gaussian is the Lorentzian; peak height = amplitude
    np.testing.assert_allclose(voigt(x[::1000], 0.3, 0.05, 1e-9, 7.0), L[::1000], rtol=1e-5)
    assert voigt(0.3, 0.3, 0.05, 0.04, 2.0) == pytest.approx(2.0)


def test_hc_and_fss_analytic():
    assert HC_EV_NM == pytest.approx(1239.84198, rel=1e-8)
    e0 = HC_EV_NM / 650.0
    lam = HC_EV_NM / np.array([e0 + 338.5e-6, e0 - 338.5e-6])
    v, s = fss_uev(lam, np.diag([1e-6, 1e-6]))
    assert v == pytest.approx(677.0, abs=1e-6)
    # sd: sqrt(2) * 1e-3 nm * hc / lambda^2
    assert s == pytest.approx(np.sqrt(2) * 1e-3 * HC_EV_NM / 650.0**2 * 1e6, rel=1e-3)
    tri = lines_nm(650.0, "triplet", 878.0)
    assert fss_uev(tri, np.zeros((3, 3)))[0] == pytest.approx(878.0, abs=1e-6)  # mean of the two gaps
    with pytest.raises(InputError):
        fss_uev([650.0], np.zeros((1, 1)))
    with pytest.raises(FitError):
        fss_uev(lam, np.full((2, 2), np.nan))


def test_noise_estimate_white_noise():
    rng = np.random.default_rng(1)
    y = rng.normal(0, 10.0, (50, 1024)) + np.linspace(0, 300, 1024)  # slow baseline is removed by differences
    s = estimate_noise(y)
    assert np.median(s) == pytest.approx(10.0, rel=0.03)


def test_snip_background_is_unbiased_under_lines():
    rng = np.random.default_rng(2)
    wl = 640 + 0.02 * np.arange(1024)
    base = 200 + 80 * np.sin((wl - 640) / 6.0)
    lines = lorentzian(wl, 645.0, 0.04, 800) + lorentzian(wl, 652.0, 0.04, 300)
    y = rng.poisson(base + lines, (40, 1024)).astype(float)
    bg = estimate_background(y)
    sigma = np.sqrt(base.mean())
    err = bg - base
    assert abs(np.median(err)) < 0.2 * sigma
    # at the line centres the baseline stays near the true background (lines not eaten)
    for c in (645.0, 652.0):
        i = np.argmin(abs(wl - c))
        assert abs(np.median(err[:, i])) < 1.0 * sigma
    pb = estimate_background(y, method="percentile", window_px=40)
    assert abs(np.median(pb - base)) < 0.5 * sigma
    with pytest.raises(InputError, match="background method"):
        estimate_background(y, method="magic")


def test_cosmic_rays_found_and_blinking_lines_kept():
    movie, truth = fig4_like(seed=4)
    clean, rec = remove_cosmic_rays(movie.values, movie["wavelength"].values)
    injected = {(f, p) for f, p, w, a in truth["frames"]["cosmics"]}
    found = {(int(f), int(a)) for f, a in zip(rec.frame, rec.pixel_start)}
    # every injected spike is replaced (start may include one wing pixel) and nothing else
    assert len(rec) == len(injected)
    for f, p in injected:
        assert any(ff == f and abs(aa - p) <= 1 for ff, aa in found)
    # the replaced excess is the spike, within the noise of a few pixels
    amp = {f: a * w for f, p, w, a in truth["frames"]["cosmics"]}
    for f, e in zip(rec.frame, rec.excess_counts):
        assert e == pytest.approx(amp[int(f)], abs=150)
    # blinking lines (switching on and off) are untouched outside the spikes
    mask = np.ones_like(clean, bool)
    for f, a, b in zip(rec.frame, rec.pixel_start, rec.pixel_stop):
        mask[f, a:b] = False
    np.testing.assert_array_equal(clean[mask], movie.values[mask])


def test_one_frame_line_is_not_a_cosmic_ray():
    rng = np.random.default_rng(5)
    wl = 640 + 0.02 * np.arange(300)
    model = np.full((20, 300), 200.0)
    model[7] += lorentzian(wl, 643.0, 0.04, 600)  # an emission line seen in one frame only
    y = rng.poisson(model).astype(float)
    y[12, 100] += 3000  # and one real spike
    clean, rec = remove_cosmic_rays(y, wl)
    assert rec.frame.tolist() == [12]
    assert clean[12, 100] < 400
    assert clean[7].max() > 600


def test_particle_shower_removed_smooth_wide_line_kept():
    rng = np.random.default_rng(6)
    wl = 640 + 0.02 * np.arange(300)
    model = np.full((20, 300), 200.0)
    model[7] += lorentzian(wl, 643.0, 0.04, 3000)  # strong one-frame line, HWHM 2 px: wide but smooth
    y = rng.poisson(model).astype(float)
    y[15, 200:207] += [400, 2600, 5200, 1000, 6800, 2800, 2400]  # a jagged multi-pixel hit
    clean, rec = remove_cosmic_rays(y, wl)
    assert rec.frame.tolist() == [15]
    assert rec.pixel_start[0] <= 201 and rec.pixel_stop[0] >= 206
    assert clean[15, 200:207].max() < 300
    assert clean[7].max() > 2500


@pytest.mark.realdata
def test_real_sif_cosmic_rays():
    from conftest import REALDATA

    from nanodomains.spectroscopy.io import load_movie

    m = load_movie(REALDATA / "spectra" / "measurement.sif")
    clean, rec = remove_cosmic_rays(m.values, m["wavelength"].values)
    # the hit near 579.3 nm in the last frame (up to 8,500 counts over a ~700 count floor)
    i = int(np.argmin(np.abs(m["wavelength"].values - 579.3)))
    assert m.values[-1, i - 3 : i + 4].max() > 8000
    assert clean[-1, i - 3 : i + 4].max() < 2000
    assert 19 in rec.frame.tolist()
    # the bright 550 nm line is untouched in every frame
    j = int(np.argmin(np.abs(m["wavelength"].values - 550.0)))
    np.testing.assert_array_equal(clean[:, j - 20 : j + 20], m.values[:, j - 20 : j + 20])


def test_single_frame_has_no_temporal_test():
    y = np.ones((1, 50))
    clean, rec = remove_cosmic_rays(y)
    assert not rec.tested and len(rec) == 0


def _truth_positions(truth):
    out = []
    for eid, pos in truth["frames"]["lines_nm"].items():
        on = truth["frames"]["on"][eid]
        for f in np.flatnonzero(on):
            for x in pos[f]:
                out.append((f, x))
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 7])
def test_detect_and_fit_recover_lines_and_fss(seed):
    movie, truth = fig4_like(seed=seed)
    wl = movie["wavelength"].values
    clean, _ = remove_cosmic_rays(movie.values, wl)
    sig = clean - estimate_background(clean)
    pk = detect_peaks(sig, wl)
    fits = fit_lines(sig, wl, pk, variance=np.maximum(clean, 1.0))
    tp = _truth_positions(truth)
    assert fits.converged.all()
    errs, pulls = [], []
    for f, x in tp:
        sel = np.flatnonzero(fits.frame == f)
        k = sel[np.argmin(np.abs(fits.center_nm[sel] - x))]
        errs.append(abs(fits.center_nm[k] - x))
        pulls.append((fits.center_nm[k] - x) / fits.center_err_nm[k])
    errs = np.array(errs)
    assert len(fits) == len(tp)  # every line found, nothing false
    assert np.median(errs) <= 0.02 and errs.max() < 0.02
    # quoted uncertainties are honest: pulls have unit spread
    assert 0.75 < np.std(pulls) < 1.3
    assert np.median(fits.hwhm_nm) == pytest.approx(0.04, rel=0.05)
    # FSS of doublet and triplet from the fits of single frames
    for eid, fss0 in (("X1", 677.0), ("X2", 878.0)):
        on = np.flatnonzero(truth["frames"]["on"][eid])
        n_lines = truth["frames"]["lines_nm"][eid].shape[1]
        vals = []
        for f in on[:20]:
            sel = np.flatnonzero(fits.frame == f)
            lam0 = truth["frames"]["lines_nm"][eid][f]
            rows = [sel[np.argmin(np.abs(fits.center_nm[sel] - x))] for x in lam0]
            g = fits.group[rows[0]]
            assert np.all(fits.group[rows] == g)  # lines of one set are fit together
            cov = fits.center_cov[g][np.ix_(fits.slot[rows], fits.slot[rows])]
            v, s = fss_uev(fits.center_nm[rows], cov)
            assert abs(v - fss0) < 5 * s + 5
            vals.append(v)
        assert len(rows) == n_lines
        assert abs(np.mean(vals) - fss0) < 50


def test_batched_fit_matches_scipy_curve_fit():
    rng = np.random.default_rng(11)
    wl = 640 + 0.02 * np.arange(400)
    lam = lines_nm(644.0, "triplet", 878.0)
    model = 100 + sum(lorentzian(wl, x, 0.05, a) for x, a in zip(lam, (500, 300, 400)))
    y = rng.poisson(np.broadcast_to(model, (5, 400))).astype(float) - 100
    pk = detect_peaks(y, wl)
    fits = fit_lines(y, wl, pk, window_hwhm=400)  # whole frame, like the peers
    d = 0.02  # pixel width: our model integrates each Lorentzian over the pixel

    def pix(x, c, g, a):
        return a * g / d * (np.arctan((x + d / 2 - c) / g) - np.arctan((x - d / 2 - c) / g))

    def f3(x, b0, b1, a1, a2, a3, c1, c2, c3, g):
        xm = 0.5 * (wl[0] + wl[-1])
        return b0 + b1 * (x - xm) + sum(pix(x, c, g, a) for c, a in ((c1, a1), (c2, a2), (c3, a3)))
    for f in range(5):
        sel = np.flatnonzero(fits.frame == f)
        assert sel.size == 3
        p0 = [0, 0, *fits.amplitude[sel], *fits.center_nm[sel], fits.hwhm_nm[sel][0]]
        popt, pcov = curve_fit(f3, wl, y[f], p0=p0)
        np.testing.assert_allclose(fits.center_nm[sel], popt[5:8], atol=2e-5)
        np.testing.assert_allclose(fits.hwhm_nm[sel][0], popt[8], rtol=1e-3)
        np.testing.assert_allclose(fits.center_err_nm[sel], np.sqrt(np.diag(pcov))[5:8], rtol=0.02)


def test_voigt_fit_with_instrument_function():
    ems = [dict(id="A", kind="doublet", center_nm=648.0, fss_uev=677.0, peak_counts=600.0, on=np.ones(15, bool))]
    movie, truth = make_movie(ems, n_frames=15, instrument_sigma_nm=0.03, hwhm_nm=0.03, n_cosmics=0, diffusion_nm=0.0, seed=8)
    wl = movie["wavelength"].values
    sig = movie.values - estimate_background(movie.values)
    pk = detect_peaks(sig, wl)
    fits = fit_lines(sig, wl, pk, profile="voigt", instrument_sigma_nm=0.03, variance=np.maximum(movie.values, 1))
    assert len(fits) == 30
    lam = np.array(truth["emitters"][0]["lines_nm"])
    err = np.abs(fits.center_nm.reshape(15, 2) - lam[None, :])
    assert np.median(err) < 0.005
    assert np.median(fits.hwhm_nm) == pytest.approx(0.03, rel=0.1)
    free = fit_lines(sig, wl, pk, profile="voigt")  # Gaussian width fitted too
    assert np.median(free.sigma_nm) == pytest.approx(0.03, rel=0.25)


def test_bin_movie_sums_counts():
    m = movie_from_arrays(np.arange(7 * 10, dtype=float).reshape(7, 10), 600 + np.arange(10.0), np.arange(7.0))
    b = bin_movie(m, time_bin=2, wavelength_bin=5)
    assert b.shape == (3, 2)
    assert b.values[0, 0] == m.values[:2, :5].sum()
    np.testing.assert_allclose(b["time"].values, [0, 2, 4])
    np.testing.assert_allclose(b["wavelength"].values, [602, 607])
    assert "1 trailing frames" in b.attrs["binning_dropped"]
    with pytest.raises(InputError):
        bin_movie(m, time_bin=0)


def test_bad_inputs():
    with pytest.raises(InputError):
        detect_peaks(np.zeros((2, 10)), np.arange(9.0))
    with pytest.raises(InputError, match="profile"):
        fit_lines(np.zeros((2, 10)), np.arange(10.0), detect_peaks(np.zeros((2, 10)) + 1e-9, np.arange(10.0)), profile="gauss")
    with pytest.raises(InputError):
        estimate_noise(np.zeros((0, 10)))
    # no peaks -> empty result, not an error
    y = np.random.default_rng(0).normal(0, 1, (3, 100))
    fits = fit_lines(y, np.arange(100.0), detect_peaks(y, np.arange(100.0), snr_min=50))
    assert len(fits) == 0



def test_doublet_resolved_in_the_mean_is_fitted_as_two_lines_per_frame():
    """0.31 nm doublet at 0.1 nm/px, instrument FWHM 0.19 nm: every smoothed frame shows one
    blended peak, the mean of 60 frames two; the seeded per-frame fits find both lines.
    A lone line of the same height 10 nm away is no multiplet and gets no seeds."""
    T = 60
    em = [dict(id="X1", kind="doublet", center_nm=650.0, fss_uev=900.0, peak_counts=300.0, on=on_between(T, 0, T)),
          dict(id="L", kind="singlet", center_nm=660.0, fss_uev=0.0, peak_counts=300.0, on=on_between(T, 0, T))]
    movie, truth = make_movie(em, n_frames=T, wl_start_nm=640, n_px=256, dispersion_nm=0.1, hwhm_nm=0.04,
                              instrument_sigma_nm=0.08, diffusion_nm=0.005, n_cosmics=0, seed=3)
    wl = movie["wavelength"].values
    sig = movie.values - estimate_background(movie.values)
    noise = estimate_noise(sig)
    var = noise[:, None] ** 2 + np.maximum(sig, 0.0)
    pk = detect_peaks(sig, wl, noise=noise, gain=1.0)
    near = np.abs(pk.position_nm - 650.0) < 1.0
    assert np.all(np.bincount(pk.frame[near], minlength=T) == 1)  # blended in every frame
    mm = mean_multiplets(sig, wl, noise=noise, gain=1.0, variance=var)
    assert len(mm) == 1 and np.allclose(mm[0]["position_nm"], truth["emitters"][0]["lines_nm"], atol=0.02)
    seeded, n = complete_multiplets(pk, sig, wl, mm)
    assert n == T
    assert np.all(np.abs(seeded.position_nm[np.abs(seeded.position_nm - 660.0) < 1.0] - 660.0) < 0.1)
    fits = fit_lines(sig, wl, seeded, variance=var)
    d = np.abs(fits.center_nm - 650.0) < 1.0
    assert np.all(np.bincount(fits.frame[d], minlength=T) == 2)
    for lam in truth["emitters"][0]["lines_nm"]:
        c = fits.center_nm[d][np.abs(fits.center_nm[d] - lam) < 0.1]
        assert c.size == T and abs(np.median(c) - lam) < 0.01

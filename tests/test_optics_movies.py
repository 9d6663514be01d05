"""NC dynamics, spectral movies, CCD model and the seed presets (truth and rendered movies)."""

import json

import numpy as np
import pytest
from scipy import optimize, special

from nanodomains import materials
from nanodomains.errors import InputError
from nanodomains.optics import emitters as em
from nanodomains.optics import movies as mv
from nanodomains.optics import presets as pr
from nanodomains.records import PLEmitters, load_record
from nanodomains.spectroscopy.io import load_movie
from nanodomains.spectroscopy.tracking import voigt_fwhm_nm
from nanodomains.structure import homogeneous, paper_fig1, random_domains

HC = materials.HC_EV_NM


@pytest.fixture(scope="module")
def preset_movies():
    return {name: pr.simulate_preset_movie(name, seed=1) for name in pr.preset_names()}


# ---- dynamics -----------------------------------------------------------------------

def test_forster_makes_br_rich_donors_weak():
    specs = pr.preset("fig5a").dynamics.specs
    flow = em.excitation_flow(specs, em.DEFAULT_DYNAMICS, 15.0**3)
    donor = int(np.argmax([s.levels.exciton_ev for s in specs]))
    assert flow["quantum_yield"][donor] < 0.3 < min(np.delete(flow["quantum_yield"], donor))
    # excitons are conserved: arrivals = captures + transfers in
    t = flow["transfer"]
    assert flow["arrival"] == pytest.approx(flow["capture"] + t.T @ flow["arrival"])
    assert flow["capture"].sum() == pytest.approx(1.0)
    # no transfer uphill
    e = np.array([s.levels.exciton_ev for s in specs])
    i, j = np.nonzero(flow["forster_rate_per_ns"])
    assert np.all(e[i] > e[j])


def test_computed_forster_radius_prediction_for_fig5a_is_as_documented():
    """docs/optics.md: why the fixed R0 stays the default (numbers quoted there)."""
    specs = pr.preset("fig5a").dynamics.specs
    fixed = em.excitation_flow(specs, em.DEFAULT_DYNAMICS, 15.0**3)["quantum_yield"]
    computed = em.excitation_flow(specs, em.DynamicsParameters(forster_r0_nm=None), 15.0**3)["quantum_yield"]
    assert em.DEFAULT_DYNAMICS.forster_r0_nm == 6.0
    # middle (615.83 nm) set: 0.93 with R0 = 6 nm, 0.19 with the computed R0 (~13.6 nm)
    assert fixed[2] == pytest.approx(0.93, abs=0.02) and computed[2] == pytest.approx(0.19, abs=0.02)
    assert computed[1] < 0.01 < fixed[1] < 0.2


def test_forster_rate_follows_inverse_sixth_power():
    rng = np.random.default_rng(0)
    specs, _ = em.domain_specs_from_nc(paper_fig1(), rng)
    flow = em.excitation_flow(specs, em.DEFAULT_DYNAMICS, 15.0**3)
    k = flow["forster_rate_per_ns"]
    i, j = np.argwhere(k > 0)[0]
    r = np.linalg.norm(np.subtract(specs[i].center_nm, specs[j].center_nm))
    tau_d = 1 / (1 / specs[i].levels.lifetime_ns + em.DEFAULT_DYNAMICS.nonradiative_rate_per_ns)
    # with a fixed R0 and point dipoles the rate is (1/tau_D)(R0/R)^6; adjacent domains get the volume average
    p = em.DynamicsParameters(forster_r0_nm=6.0)
    assert em.forster_rate_per_ns(specs[i], specs[j], tau_d, em.DynamicsParameters(forster_r0_nm=None))[0] > 0
    k_fixed, point = em.forster_rate_per_ns(specs[i], specs[j], tau_d, p)
    assert k_fixed == pytest.approx((1 / tau_d) * (6.0 / r) ** 6)
    assert k[i, j] == pytest.approx(em.forster_rate_per_ns(specs[i], specs[j], tau_d)[0])


def test_blinking_statistics_two_state():
    p = em.DynamicsParameters(on_mean_s=2.0, off_mean_s=1.0, charge_rate_per_s=0.0, bleach_mean_s=1e12)
    dyn = em.simulate_dynamics(homogeneous(12.0), duration_s=4000.0, seed=3, params=p)
    tr = dyn.trajectories[0]
    on = np.array([b - a for a, b in tr.intervals(em.STATE_CODES["X"])][1:-1])
    off = np.array([b - a for a, b in tr.intervals(em.STATE_CODES["off"])][1:-1])
    assert on.mean() == pytest.approx(2.0, rel=0.1)
    assert off.mean() == pytest.approx(1.0, rel=0.1)


def test_power_law_blinking_is_heavy_tailed():
    p = em.DynamicsParameters(blinking="power-law", charge_rate_per_s=0.0, bleach_mean_s=1e12)
    dyn = em.simulate_dynamics(homogeneous(12.0), duration_s=3000.0, seed=4, params=p)
    off = np.array([b - a for a, b in dyn.trajectories[0].intervals(em.STATE_CODES["off"])][1:-1])
    assert off.min() >= p.power_law_min_s * 0.999
    # maximum-likelihood exponent of a power law above t_min (truncation at t_max is negligible)
    alpha = 1 + off.size / np.sum(np.log(off / p.power_law_min_s))
    assert alpha == pytest.approx(p.power_law_alpha_off, abs=4 * (alpha - 1) / np.sqrt(off.size))


def test_spectral_diffusion_is_one_field_for_all_domains():
    # a fixed small polarisability keeps linear-dominated domains (the default is the confinement model)
    dyn = em.simulate_dynamics(paper_fig1(), duration_s=300.0, seed=5,
                               params=em.DynamicsParameters(stark_polarizability_e_nm2_per_v=0.2))
    shifts = dyn.domain_shift_ev()
    # every domain's shift is -p.n F - alpha/2 (F^2 - <F^2>) of the one field F(t)
    f = dyn.field_v_per_nm
    basis = np.column_stack([f, f**2, np.ones_like(f)])
    for row, (pn, alpha) in zip(shifts, dyn.stark):
        coef, *_ = np.linalg.lstsq(basis, row, rcond=None)
        assert coef[0] == pytest.approx(-pn, rel=1e-9, abs=1e-15)
        assert coef[1] == pytest.approx(-alpha / 2, rel=1e-9, abs=1e-15)
    # so domains dominated by the linear term move in lock step (|r| ~ 1)
    sd = dyn.params.field_sd_v_per_nm
    lin = np.abs(dyn.stark[:, 0]) * sd > 5 * dyn.stark[:, 1] * sd**2
    r = np.corrcoef(shifts[lin])
    assert lin.sum() >= 2 and np.abs(r).min() > 0.95
    # the quadratic term has zero stationary mean (line centres stay at the truth)
    assert np.abs(shifts.mean(axis=1)).max() < 3 * shifts.std(axis=1).max() / np.sqrt(300 / 5.0)


def test_truth_intervals_follow_the_state_trajectory():
    dyn = pr.preset("fig4_charging").dynamics
    truth = dyn.truth()
    assert isinstance(truth, PLEmitters) and truth.origin == "truth"
    assert truth.emitter("D0-X*").intervals_s == ((0.0, 37.0),)
    assert truth.emitter("D0-X").intervals_s == ((37.0, 120.0),)
    # the trion names its neutral set, which carries the charged intervals (as the analysis does)
    assert truth.emitter("D0-X*").trion_of == "D0-X"
    assert truth.emitter("D0-X").charged_intervals_s == ((0.0, 37.0),)
    assert truth.dynamics["domains"][0]["states"] == [[0.0, 37.0, "X*"], [37.0, 120.0, "X"]]
    # every truth number is exact
    assert all(e.center_nm.stderr == 0 and e.fss_uev.stderr == 0 for e in truth.emitters)
    w = dyn.frame_weights(np.arange(121.0))
    assert w[0, :37].sum() == 0 and w[0, 37:].min() == 1.0
    assert w[1, :37].min() == 1.0 and w[1, 37:].sum() == 0


# ---- movie and CCD ----------------------------------------------------------------------------

def test_ccd_noise_statistics():
    ccd = mv.CCD(read_noise_e=4.0, background_photons_per_px_s=10.0, dark_e_per_px_s=1.0, bias_adu=100.0,
                 cosmic_rate_per_s=0.0)
    counts, cosmics = mv.apply_ccd(np.zeros((400, 500)), ccd, 2.0, np.random.default_rng(0))
    lam = ccd.qe * 10.0 * 2.0 + 1.0 * 2.0
    assert counts.mean() == pytest.approx(100.0 + lam, abs=0.05)
    assert counts.var() == pytest.approx(lam + 16.0 + 1 / 12, rel=0.02)
    assert cosmics == []


def test_ccd_saturates_and_records_cosmics():
    ccd = mv.CCD(cosmic_rate_per_s=5.0, full_well_e=1e9)
    counts, cosmics = mv.apply_ccd(np.full((20, 64), 1e6), ccd, 1.0, np.random.default_rng(1))
    assert counts.max() == 2**16 - 1
    assert len(cosmics) > 50


def test_movie_axes_netcdf_and_truth(tmp_path):
    dyn = em.simulate_dynamics(random_domains(14.0, n_domains=6, seed=2), duration_s=60.0, seed=2)
    movie, truth = mv.simulate_movie(dyn, n_frames=60, frame_s=1.0, seed=3)
    assert movie.dims == ("time", "wavelength") and movie.shape == (60, 1340)
    assert np.all(np.diff(movie["wavelength"].values) > 0)
    assert movie["time"].values[1] - movie["time"].values[0] == 1.0
    path, tpath = mv.save_movie(movie, truth, tmp_path / "m.nc")
    assert tpath.name == "m.truth.json"
    back = load_movie(path)
    assert np.array_equal(back.values, movie.values)
    assert json.loads(tpath.read_text())["schema"] == "nanodomains.emitters/2"
    t = PLEmitters.from_json(tpath)
    assert t == truth and load_record(tpath) == truth
    for e in t.emitters:
        assert e.lines and e.lifetime_ns > 0 and e.domain is not None and e.intervals_s
        assert e.kind in ("singlet", "doublet", "triplet", "trion")
        assert e.center_nm.stderr == 0
    assert len(t.couplings) > 0 and len(t.dynamics["domains"]) == 6 and t.n_frames == 60


def test_rendered_line_area_matches_expected_counts():
    dyn = pr.preset("fig4_doublet").dynamics
    ccd = mv.CCD(read_noise_e=0.0, background_photons_per_px_s=0.0, dark_e_per_px_s=0.0, bias_adu=0.0,
                 cosmic_rate_per_s=0.0, qe=1.0)
    spec = mv.Spectrometer(dispersion_nm_per_px=0.02)
    movie, truth = mv.simulate_movie(dyn, n_frames=40, spectrometer=spec, ccd=ccd, seed=0)
    expected = np.array(truth.frames["expected_counts"]["D0-X"])
    got = movie.values.sum(axis=1)
    on = expected > 0
    # within Poisson noise and the Lorentzian tails beyond the 26.8 nm window (~0.3 %)
    assert np.allclose(got[on], expected[on], rtol=0.02)


def test_six_domain_random_nc_renders_full_movie():
    dyn = em.simulate_dynamics(random_domains(15.0, n_domains=6, seed=1), duration_s=120.0, seed=1)
    movie, _ = mv.simulate_movie(dyn, seed=1)
    assert movie.shape == (120, 1340)


# ---- presets -------------------------------------------------------------------------------

def test_presets_reproduce_stated_numbers_in_truth(preset_movies):
    for name, (movie, truth) in preset_movies.items():
        for key, stated in truth.preset["stated"].items():
            if key in ("correlated", "sets"):
                continue
            e = truth.emitter(key)
            if "center_nm" in stated:
                assert abs(e.center_nm.value - stated["center_nm"]) <= 0.05, (name, key)
            fit = truth.preset["structures"][key.split("-")[0]]
            if "fss_uev" in stated:  # reachable: met; else the model's nearest physical NC, reported
                assert abs(e.fss_uev.value - stated["fss_uev"] - fit["residuals"]["fss_uev"]) <= 1e-6, (name, key)
                assert fit["reachable"] or fit["unbounded_size_nm"] < fit["size_bounds_nm"][0]
            if "kind" in stated:
                assert e.kind == stated["kind"]
            # lifetimes are the model's (seed S14: 0.54 / 0.66 ns; not prescribed, see docs/optics.md)
            for (a, b), (c, d) in zip(stated.get("intervals_s", []), e.intervals_s):
                assert abs(a - c) < 1e-9 and abs(b - d) < 1e-9


def test_fig5_specifics(preset_movies):
    _, t5a = preset_movies["fig5a"]
    rates = {round(e.center_nm.value, 2): e.mean_counts.value for e in t5a.emitters}
    assert rates[557.93] < 0.2 * min(rates[615.83], rates[657.88])  # the Br-rich set is weak
    _, t5c = preset_movies["fig5c"]
    centres = sorted(e.center_nm.value for e in t5c.emitters if e.kind != "trion")
    assert len(centres) == 6 and 670 <= centres[0] and centres[-1] <= 690
    coupled = {frozenset(c.emitters) for c in t5c.couplings if c.verdict == "coupled"}
    four = ["D0-X", "D1-X", "D2-X", "D3-X"]
    assert coupled == {frozenset((a, b)) for i, a in enumerate(four) for b in four[i + 1:]}
    w = np.array(t5c.frames["expected_counts"]["D0-X"])
    assert w[67:75].mean() == pytest.approx(0.25 * w[:60].mean(), rel=0.05)
    _, t5d = preset_movies["fig5d"]
    assert t5d.emitter("D1-X").intervals_s == t5d.emitter("D0-X*").intervals_s == ((18.0, 98.0),)
    dE = (HC / 652.36 - HC / 655.76) * 1e3
    assert 5 < dE < 25  # a trion 5-25 meV to the red
    assert t5d.coupling("D1-X", "D0-X*").verdict == "coupled"


def _voigt_sum(x, *p, n_lines, sigma, pixel_nm):
    """Baseline + Voigt lines integrated over pixels of width ``pixel_nm`` (what a pixel records).

    Sampling the Voigt at pixel centres instead biases the FSS of lines closer than the
    resolution (+5 % at 0.58 FWHM, 0.1 nm pixels, 0.2 nm resolution)."""
    base = p[0] + p[1] * (x - x.mean())
    y = np.full_like(x, base)
    sub = ((np.arange(8) + 0.5) / 8 - 0.5) * pixel_nm  # midpoint rule over the pixel
    for k in range(n_lines):
        a, c, g = p[2 + 3 * k: 5 + 3 * k]
        y = y + a * special.voigt_profile(x[:, None] + sub - c, sigma, abs(g)).mean(axis=1)
    return y


def _fit_set(movie, truth, e):
    """Fit the time-averaged spectrum of one emitter over its on frames."""
    t = movie["time"].values
    on = np.zeros(t.size, bool)
    for a, b in e.intervals_s:
        on |= (t >= a) & (t + 1 <= b + 1e-9)
    wl = movie["wavelength"].values
    lines = np.array(e.lines_nm)
    resolution = truth.meta["spectrometer"]["resolution_nm"]
    pad = max(0.4, 4 * resolution)  # wings of >= 2 instrument FWHM each side (enough pixels for 3 + 2 n parameters)
    lo, hi = lines.min() - pad, lines.max() + pad
    sel = (wl > lo) & (wl < hi)
    x = wl[sel]
    y = movie.values[on][:, sel].mean(axis=0)
    disp = float(np.median(np.diff(wl)))
    sigma = resolution / 2.3548
    hw = lines.mean() ** 2 * e.linewidth_uev.value * 1e-6 / (2 * HC)
    p0 = [float(np.median(y)), 0.0]
    for c in lines:
        p0 += [float(y.max() - np.median(y)) * np.pi * np.hypot(hw, sigma) / disp, float(c), hw]
    popt, pcov = optimize.curve_fit(lambda xx, *p: _voigt_sum(xx, *p, n_lines=len(lines), sigma=sigma, pixel_nm=disp) * disp,
                                    x, y, p0=p0, maxfev=20000)
    return np.sort(popt[3::3][: len(lines)])


def test_close_lines_keep_their_splitting_at_any_subpixel_position():
    """A doublet 0.58 instrument FWHM apart on a coarse CCD (Gaussian sigma 0.85 px).

    Filtering pixel sums (the old renderer) lost sub-pixel positions: the fitted FSS
    then ranged from -9 % to +16 % with the doublet's phase on the pixel grid."""
    dyn = pr.preset("fig4_doublet").dynamics
    em0 = next(e for e in dyn.emitters if e.state == "X")
    spec = mv.Spectrometer(dispersion_nm_per_px=0.2, resolution_nm=0.4)
    fss_true = (max(em0.line_ev) - min(em0.line_ev)) * 1e6
    lines = np.sort(em0.lines_nm)
    hw = lines.mean() ** 2 * em0.linewidth_uev * 1e-6 / (2 * HC)
    sigma = spec.resolution_nm / 2.3548
    got = []
    for phase in np.linspace(0.0, 0.8, 5):
        wl, edges = mv.wavelength_axis(spec, lines.mean() + phase * spec.dispersion_nm_per_px)
        image, _ = mv.render_expected(dyn, edges, np.array([37.0, 38.0]), exposure_s=1.0,
                                      detection_efficiency=1.0, resolution_nm=spec.resolution_nm)
        sel = np.abs(wl - lines.mean()) < 2.0
        p0 = [0.0, 0.0] + [v for c in lines for v in (image[0, sel].sum() / 2, c, hw)]
        popt, _ = optimize.curve_fit(
            lambda xx, *p: _voigt_sum(xx, *p, n_lines=2, sigma=sigma, pixel_nm=0.2) * 0.2, wl[sel],
            image[0, sel], p0=p0)
        c = np.sort(popt[3::3])
        got.append((HC / c[0] - HC / c[1]) * 1e6)
    assert np.allclose(got, fss_true, rtol=0.01), (fss_true, got)


def test_rendered_movies_show_the_stated_lines(preset_movies):
    checked = 0
    for name, (movie, truth) in preset_movies.items():
        for e in truth.emitters:
            if not e.visible(10.0):
                continue
            fitted = _fit_set(movie, truth, e)
            assert np.max(np.abs(fitted - np.sort(e.lines_nm))) < 0.05, (name, e.id, fitted, e.lines_nm)
            gaps = np.diff(np.sort(e.lines_nm))
            # the fit recovers a splitting within 1 % from 0.7 FWHM of the line profile up
            # (docs/optics.md, resolution limit); a closer pair (the weak third line of fig5a's
            # slab triplet, 0.113 nm at 0.2 nm resolution) is noise-limited and not judged here
            lam = float(np.mean(e.lines_nm))
            fwhm = voigt_fwhm_nm(e.linewidth_uev.value * 1e-6 * lam**2 / HC, float(movie.attrs["resolution_nm"]))
            if e.kind in ("doublet", "triplet") and gaps.min() >= 0.7 * fwhm:
                fss = np.mean(np.diff(HC / fitted[::-1])) * 1e6
                # FSS from the time-averaged spectrum within 5 % (lines move together)
                assert fss == pytest.approx(e.fss_uev.value, rel=0.05), (name, e.id)
            checked += 1
    assert checked >= 15


def test_preset_figure(tmp_path, preset_movies):
    movie, truth = preset_movies["fig5d"]
    fig = pr.plot_preset(movie, truth, path=tmp_path / "fig5d.png")
    assert (tmp_path / "fig5d.png").stat().st_size > 10_000
    assert len(fig.axes) >= 2


def test_composition_for_wavelength_inverts_the_level_model():
    f = pr.composition_for_wavelength(640.0, (6.0, 8.0, 10.0))
    from nanodomains.optics.levels import exciton_state
    assert exciton_state(f, (6.0, 8.0, 10.0), "4K").wavelength_nm == pytest.approx(640.0, abs=1e-6)
    with pytest.raises(Exception):
        pr.composition_for_wavelength(760.0, 5.0)


# ---- bad input -------------------------------------------------------------------------------

def test_bad_input_errors():
    dyn = pr.preset("fig4_doublet").dynamics
    with pytest.raises(InputError):
        mv.simulate_movie(dyn, frame_s=0.0)
    with pytest.raises(InputError):
        mv.simulate_movie(dyn, frame_s=float("nan"))
    with pytest.raises(InputError):
        mv.simulate_movie(dyn, n_frames=0)
    with pytest.raises(InputError):
        mv.simulate_movie(dyn, n_frames=200)  # longer than the simulated dynamics
    with pytest.raises(InputError):
        pr.preset("fig6")
    with pytest.raises(InputError):
        em.DynamicsParameters(power_w_cm2=-1.0)
    with pytest.raises(InputError):
        em.DynamicsParameters(field_tau_s=float("nan"))
    with pytest.raises(InputError):
        em.simulate_dynamics(homogeneous(10.0), duration_s=-5)
    with pytest.raises(InputError):
        mv.Spectrometer(dispersion_nm_per_px=0.0)
    with pytest.raises(InputError):
        mv.CCD(qe=1.5)
    with pytest.raises(InputError):
        em.schedule_trajectory([[5, 2, "X"]], 10.0)
    with pytest.raises(InputError):
        em.schedule_trajectory([[0, 2, "on"]], 10.0)

"""nanodomains.stem.composition and .linescan: Z-contrast inversion and EDS steps.

Acceptance (issue 4): Br fraction error <= 0.05 with the power-law table on incoherent
images at 1e5 e/A^2 (paper_fig1 and a homogeneous NC here; every domain of
paper_fig1 in test_stem_analyze.py); the multislice path on a small multislice image
(slow); EDS step position, width and Br/I change with uncertainties.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from nanodomains.testing.stem import analysed

from nanodomains.errors import FitError, InputError
from nanodomains.stem import composition as C
from nanodomains.stem import linescan as L
from nanodomains.stem import table_build, tables
from nanodomains.stem.simulate import ColumnModel
from nanodomains.stem.validation import match_regions, projected_regions


def _pure_table():
    grid = np.linspace(0, 1, 11)
    return tables.power_law_table(grid, grid, (8, 16, 24), ColumnModel())


# --------------------------------------------------------------------------- inversion


@pytest.mark.parametrize("b,m", [(0.0, 0.0), (0.27, 0.12), (0.52, 0.25), (0.9, 0.45)])
def test_inversion_recovers_the_table_point(b, m):
    model = C.CompositionModel(_pure_table(), 24.0)
    r = model.ratios(np.array([b]), np.array([m]))
    bb, mm, chi2 = C.invert_ratios(model, r)
    assert bb[0] == pytest.approx(b, abs=2e-3) and mm[0] == pytest.approx(m, abs=2e-3)
    assert chi2[0] < 1e-6


def test_termination_model_equals_hand_counted_columns():
    """A CsX-terminated column of N cells: Cs N+1 | Pb N + X N+1 | X N atoms (Z^1.7 power law)."""
    mdl = ColumnModel()
    n, b = 24, 0.4
    bright = mdl.column(0, n, (n + 1) * b, (n + 1) * (1 - b))
    dim = mdl.column(n + 1, 0, 0, 0)
    x = mdl.column(0, 0, n * b, n * (1 - b))
    model = C.CompositionModel(_pure_table(), float(n), "CsX")
    np.testing.assert_allclose(model.intensities(np.array(b), np.array(0.0)), [bright, dim, x], rtol=1e-9)
    bb, mm, _ = C.invert_ratios(model, np.array([[dim / bright, x / bright]]))
    assert bb[0] == pytest.approx(b, abs=2e-3) and mm[0] == pytest.approx(0.0, abs=2e-3)
    # without the termination term the same columns read as a different composition
    b_none, _, _ = C.invert_ratios(C.CompositionModel(_pure_table(), float(n), "none"),
                                   np.array([[dim / bright, x / bright]]))
    assert abs(b_none[0] - b) > 0.02


def test_bootstrap_intervals_and_vegard_flag():
    rng = np.random.default_rng(3)
    model = C.CompositionModel(_pure_table(), 24.0)
    true = model.intensities(np.array(0.4), np.array(0.1))
    n = 60
    inten = np.concatenate([rng.normal(true[0], 0.02 * true[0], n), rng.normal(true[1], 0.02 * true[1], n),
                            rng.normal(true[2], 0.02 * true[2], n)])
    cls = np.repeat(["bright", "dim", "X"], n)
    dom = np.ones(3 * n, int)
    rows = [{"id": 1, "registry": -1, "lattice_pm": 612.3, "lattice_pm_err": 0.05}]
    out = C.domain_composition(inten, cls, dom, np.ones(3 * n, bool), rows, lambda d: model, n_boot=400, seed=1,
                               table_method="power_law")[0]
    b, comp = out["br_fraction"], out["composition"]
    assert b.value == pytest.approx(0.4, abs=3 * b.stderr + 0.005)
    assert 0.002 < b.stderr < 0.05
    lo, hi = comp.br_fraction_ci95
    assert lo < b.value < hi
    assert out["mixed_fraction"].value == pytest.approx(0.1, abs=0.03)
    assert out["shifted_fraction"].value == pytest.approx(1 - out["mixed_fraction"].value)  # registry -1
    assert out["formula"] == "CsPbBr{:g}I{:g}".format(round(3 * b.value, 2), round(3 - 3 * b.value, 2))
    assert comp.vegard_agrees is True  # 612.3 pm is b = 0.40 by Vegard (cubic)
    assert comp.model == C.COMPOSITION_MODEL and comp.table == "power_law" and comp.reason is None
    rows[0]["lattice_pm"] = 600.0  # b_V ~ 0.70: beyond the uncertainties
    out2 = C.domain_composition(inten, cls, dom, np.ones(3 * n, bool), rows, lambda d: model, n_boot=100)[0]
    assert out2["composition"].vegard_agrees is False
    # too few columns: no value, the reason given, not a made-up number
    few = C.domain_composition(inten[:8], cls[:8], dom[:8], np.ones(8, bool), rows, lambda d: model)[0]
    assert few["br_fraction"].value is None and "fewer than" in few["composition"].reason


def test_default_table_states_its_cross_talk():
    _, note = C.default_table({"beam_energy_kev": 300.0, "convergence_semiangle_mrad": 24.0,
                               "source_fwhm_pm": 40.0})
    assert "cross-talk for the probe 300 kV, 24 mrad, source 40 pm" in note
    t, note = C.default_table({})
    assert "no cross-talk correction" in note and t.attrs["method"] == "power_law"


def test_bad_input():
    with pytest.raises(InputError, match="termination"):
        C.CompositionModel(_pure_table(), 24.0, "CsPb")
    with pytest.raises(InputError, match="outside the table"):
        table = _pure_table()
        table.attrs["column_saturation_a2"] = 1.0  # not linear: no extrapolation
        C.CompositionModel(table, 60.0)
    with pytest.raises(InputError, match="vacuum"):
        C.background_level(np.ones((100, 100)), np.argwhere(np.ones((20, 20))) * 5.0, 5.0)
    with pytest.raises(InputError, match="thickness"):
        C.thickness_cells("cube", 612.0, 200.0, touches_border=True)
    with pytest.raises(InputError, match="thickness_nm"):
        C.thickness_cells("sphere", 612.0, 200.0, False)


# --------------------------------------------------------------------------- forward-model images


def test_homogeneous_nc_composition():
    sim, res = analysed("homogeneous", 1, edge_nm=10.0)
    d = res.domains[0]
    truth_b = sim.truth["record"].domains[0].projected_br_fraction.value
    assert d.br_fraction.value == pytest.approx(truth_b, abs=0.05)
    assert abs(d.br_fraction.value - truth_b) < 3 * d.br_fraction.stderr + 0.02
    assert d.mixed_fraction.value < 0.03 and d.composition.vegard_agrees
    assert res.record.table.method == "power_law" and "cross-talk" in res.record.table.note


def test_paper_fig1_compositions_and_shifted_fractions():
    sim, res = analysed("fig1", 1)
    tm, regions = projected_regions(sim.truth)
    matches = match_regions(res.segmentation.labels, tm, regions)
    flips = []
    by_id = {d.id: d for d in res.domains}
    for m in matches:
        d = by_id[m["match"]]
        assert d.br_fraction.value == pytest.approx(m["br_fraction"], abs=0.05), d.name
        assert d.mixed_fraction.value == pytest.approx(m["mixed_fraction"], abs=0.05), d.name
        flips.append(abs(d.shifted_fraction.value - m["shifted_fraction"]) > 0.5)
    # the reference registry is a convention: all domains agree with the model or all are flipped
    assert len(set(flips)) == 1
    for m in matches:
        d = by_id[m["match"]]
        s = 1 - d.shifted_fraction.value if flips[0] else d.shifted_fraction.value
        assert s == pytest.approx(m["shifted_fraction"], abs=0.05)


# --------------------------------------------------------------------------- EDS steps


def _step_profile(x0=4.0, w=0.3, before=(100.0, 300.0), after=(220.0, 180.0), n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = (np.arange(n) + 0.5) * 0.2
    phi = 0.5 * (1 + np.vectorize(__import__("math").erf)((x - x0) / (np.sqrt(2) * w)))
    lam_br = before[0] + (after[0] - before[0]) * phi
    lam_i = before[1] + (after[1] - before[1]) * phi
    br, i_ = rng.poisson(lam_br).astype(float), rng.poisson(lam_i).astype(float)
    ds = xr.Dataset({"Br_K": ("distance_nm", br), "I_L": ("distance_nm", i_)}, coords={"distance_nm": x})
    nb, ni = br / 37.0, i_ / 36.0
    ds["br_fraction"] = ("distance_nm", nb / (nb + ni))
    ds["br_fraction_err"] = ("distance_nm", np.sqrt(ni**2 * br / 37.0**2 + nb**2 * i_ / 36.0**2) / (nb + ni) ** 2)
    return ds


def test_step_fit_recovers_position_width_and_changes():
    fits = [L.fit_step(_step_profile(seed=s)) for s in range(20)]
    pos = np.array([f.position_nm for f in fits])
    err = np.array([f.position_nm_err for f in fits])
    assert np.mean(pos) == pytest.approx(4.0, abs=0.03)
    assert 0.5 < np.std((pos - 4.0) / err) < 1.6  # the quoted errors describe the scatter
    f = fits[0]
    assert f.width_nm == pytest.approx(0.3, abs=4 * f.width_nm_err + 0.05)
    assert f.lines["Br_K"]["change"] == pytest.approx(120, abs=4 * f.lines["Br_K"]["change_err"])
    assert f.lines["I_L"]["change"] == pytest.approx(-120, abs=4 * f.lines["I_L"]["change_err"])
    b1 = (100 / 37) / (100 / 37 + 300 / 36)
    b2 = (220 / 37) / (220 / 37 + 180 / 36)
    assert f.br_fraction_before == pytest.approx(b1, abs=4 * f.br_fraction_before_err)
    assert f.br_fraction_change == pytest.approx(b2 - b1, abs=4 * f.br_fraction_change_err)
    assert f.significant and 0.5 < f.redchi < 2.0


def test_sharp_step_width_is_an_upper_limit_and_flat_profile_is_not_significant():
    f = L.fit_step(_step_profile(w=0.01, before=(200.0, 200.0), after=(400.0, 100.0)))
    assert f.extra["width_is_upper_limit"] and np.isnan(f.width_nm_err)
    assert f.position_nm == pytest.approx(4.0, abs=0.15)
    flat = L.fit_step(_step_profile(before=(200.0, 200.0), after=(200.0, 200.0), seed=2))
    assert not flat.significant


def test_step_fit_bad_input():
    with pytest.raises(InputError, match="lacks"):
        L.fit_step(_step_profile().drop_vars("I_L"))
    with pytest.raises(InputError, match="8"):
        L.fit_step(_step_profile(n=5))
    empty = _step_profile()
    empty["Br_K"][:] = 0
    with pytest.raises(FitError, match="no counts"):
        L.fit_step(empty)


def test_eds_boundary_scan_on_paper_fig1():
    """The R1 | R2 RP fault of paper_fig1 in simulated EDS maps (1e8 e/A^2, 50 pm)."""
    from nanodomains.stem.eds import simulate_eds
    from nanodomains.structure import paper_fig1

    em = simulate_eds(paper_fig1(), dose_e_per_a2=1e8, pixel_size_pm=50.0, seed=3)
    seg = next(b for b in em.truth["model_boundaries"] if b["model_domains"] == [0, 1])
    (x0, y0), (x1, y1) = seg["segment_nm"]
    bnd = {"midpoint_nm": [(x0 + x1) / 2, (y0 + y1) / 2], "normal": [1.0, 0.0], "length_nm": seg["length_nm"]}
    r = L.boundary_scan(em.maps, bnd, 612.3)
    d = {x.id: x.projected_br_fraction.value for x in em.truth["record"].domains}
    assert r["significant"]
    assert abs(r["offset_nm"]) < max(3 * r["position_nm_err"], 0.35)
    assert r["br_fraction_before"] == pytest.approx(d[0], abs=3 * r["br_fraction_before_err"] + 0.02)
    assert r["br_fraction_after"] == pytest.approx(d[1], abs=3 * r["br_fraction_after_err"] + 0.02)
    assert r["lines"]["Br_K"]["change"] > 0 > r["lines"]["I_L"]["change"]


# --------------------------------------------------------------------------- multislice path


def _periodic_multislice_image(b: float, n_cells: int, n_shifted: int, scan_points: int, tiles: int,
                               dose: float, seed: int = 1):
    """Frozen-phonon multislice image of a periodic CsPbX3 slab: one cell scanned, tiled.

    The slab of :func:`nanodomains.stem.table_build.cspbx3_slab` is periodic (2 x 2 cells), so
    its ADF image is periodic: one cell is scanned (abTEM, 8 configurations, 300 kV,
    24 mrad, 70-190 mrad) on the grid a multislice table with ``scan_points`` uses
    (step a / (2 m), offset half a step), so that Voronoi sums of the image sample the
    columns as the table does (the table has no source blur; neither has the image);
    then tiled and given Poisson noise at ``dose``.
    """
    from dataclasses import replace

    from nanodomains import materials
    from nanodomains.stem.io import image_from_array
    from nanodomains.stem.multislice import MultisliceSettings, scan_region

    a_a = materials.lattice_constant_pm(b) / 100.0
    st = replace(MultisliceSettings(), slice_thickness_a=a_a / 2)
    slab = table_build.cspbx3_slab(b, n_cells, n_shifted, tile=2, seed=seed)
    m = 2 * scan_points
    d = a_a / m
    cell = scan_region(slab, st, start_a=(d / 2, d / 2), end_a=(a_a + d / 2, a_a + d / 2), gpts=(m, m), seed=seed)
    img = np.tile(cell.mean(axis=0).T, (tiles, tiles))  # (y, x)
    px_pm = d * 100.0
    counts = np.random.default_rng(seed).poisson(img * dose * (px_pm / 100.0) ** 2).astype(float)
    attrs = {"beam_energy_kev": 300.0, "convergence_semiangle_mrad": 24.0, "source_fwhm_pm": 0.0}
    return image_from_array(counts, px_pm, **attrs), a_a * 100.0


@pytest.mark.slow
def test_multislice_table_inverts_a_multislice_image():
    """The multislice path end to end: frozen-phonon table and image of an 8-cell slab, b = 0.5, s = 0.25.

    The image is of the slab the table computes for (b, s) = (0.5, 0.25) (same seed).
    Such a table (2 x 2 cells, 8 configurations, 6 x 6 quarter-cell points) has a
    frozen-phonon spread of 6-16 % per entry (its ``intensity_err``), and its
    quarter-cell shortcut (mm symmetry) differs from full Voronoi cells of the same
    slab by 5-10 %, so b is only loosely determined; the result must say so through
    its uncertainty, and contain the truth within it. The channelling-dominated
    shifted fraction is the robust number; the power law misses it (PHYSICS.md).
    """
    from nanodomains.stem.analyze import analyze_image

    n, b_true, s_true = 8, 0.5, 0.25
    table = table_build.multislice_table((0.0, 0.5, 1.0), (0.0, 0.25, 0.5), (n,), scan_points=6, progress=False)
    img, a_pm = _periodic_multislice_image(b_true, n, 2, scan_points=6, tiles=12, dose=1e5)
    kw = dict(thickness_nm=n * a_pm / 1000, termination="none", background=0.0, n_boot=300)
    ms = analyze_image(img, table, **kw)
    assert len(ms.domains) == 1 and ms.boundaries == ()
    d = ms.domains[0]
    assert ms.record.table.method == "multislice" and d.composition.table == "multislice"
    assert all(v > 0 for v in d.composition.table_ratios_err)  # the table's spread is propagated
    lo, hi = d.composition.br_fraction_ci95
    assert lo <= b_true <= hi
    assert d.mixed_fraction.value == pytest.approx(s_true, abs=max(3 * d.mixed_fraction.stderr, 0.03))
    assert d.lattice_pm.value == pytest.approx(a_pm, rel=2e-3)
    pl = analyze_image(img, None, **kw).domains[0]
    assert abs(pl.mixed_fraction.value - s_true) > 0.05

"""Incoherent ADF-STEM forward model: lattice spacing, column weights, noise, distortions, truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nanodomains import materials
from nanodomains.errors import FileFormatError, InputError
from nanodomains.stem import simulate as S
from nanodomains.stem.tables import crosstalk_matrix
from nanodomains.structure import homogeneous, paper_fig1

NO_SUPPORT = S.SupportFilm(0.0)


@pytest.fixture(scope="module")
def nc15():
    return homogeneous(15.0, "CsPbBr1.2I1.8", seed=3)


@pytest.fixture(scope="module")
def cols15(nc15):
    return nc15.project_columns(seed=3)


def _fft_spacing_pm(img: np.ndarray, pixel_pm: float, expect_pm: float, order: int = 2) -> float:
    """Lattice spacing from the 2-D FFT peak nearest order/a (zero padded x4, parabolic refinement)."""
    a = img - img.mean()
    win = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    n = 4 * max(a.shape)
    f = np.abs(np.fft.fft2(a * win, s=(n, n)))
    k = np.fft.fftfreq(n, d=pixel_pm)
    kk = np.hypot(k[:, None], k[None, :])
    ring = np.abs(kk - order / expect_pm) < 0.1 * order / expect_pm
    f_ring = np.where(ring, f, 0)
    i, j = np.unravel_index(np.argmax(f_ring), f.shape)

    def refine(lo, c, hi):
        return 0.5 * (np.log(lo) - np.log(hi)) / (np.log(lo) - 2 * np.log(c) + np.log(hi))

    di = refine(f[(i - 1) % n, j], f[i, j], f[(i + 1) % n, j])
    dj = refine(f[i, (j - 1) % n], f[i, j], f[i, (j + 1) % n])
    ky = (np.fft.fftfreq(n)[i] * n + di) / (n * pixel_pm)
    kx = (np.fft.fftfreq(n)[j] * n + dj) / (n * pixel_pm)
    return order / math.hypot(kx, ky)


@pytest.mark.parametrize("rotation_deg", [0.0, 27.0])
def test_fft_peak_at_vegard_spacing(nc15, cols15, rotation_deg):
    """Acceptance: the FFT of a homogeneous NC image peaks at the Vegard lattice constant (0.5 %)."""
    res = S.simulate_image(nc15, shape=512, pixel_size_pm=40.0, columns=cols15, rotation_deg=rotation_deg,
                           seed=4)
    a_vegard = materials.lattice_constant_pm(materials.parse_formula("CsPbBr1.2I1.8"))
    spacing = _fft_spacing_pm(res.image.values, 40.0, a_vegard)
    assert abs(spacing / a_vegard - 1) < 0.005


def test_benchmark_size_image_is_calibrated_and_fast_enough_to_run(nc15, cols15):
    res = S.simulate_image(nc15, shape=1024, columns=cols15, seed=1)
    im = res.image
    assert im.shape == (1024, 1024)
    assert im.dims == ("y", "x")
    assert im.attrs["pixel_size_pm"] == 20.0
    assert np.isclose(float(im["x"][1] - im["x"][0]), 0.02)
    assert im.attrs["dose_e_per_a2"] == 1e5 and im.attrs["method"] == "incoherent"
    # the NC (bright) sits in the middle of the field of view
    prof = im.values.mean(axis=0)
    assert prof[512] > 5 * prof[5]


def test_truth_cross_sections_equal_hand_power_law(cols15, nc15):
    """Acceptance: power-law column weights equal hand-computed values (PHYSICS.md)."""
    res = S.simulate_image(nc15, shape=256, pixel_size_pm=20.0, columns=cols15, seed=1, support=NO_SUPPORT)
    c = res.truth["columns"]
    n = 1.7
    hand = (np.array(c["n_cs"]) * 55**n + np.array(c["n_pb"]) * 82**n + np.array(c["n_br"]) * 35**n
            + np.array(c["n_i"]) * 53**n) * 4.55e-3 / 50**n
    np.testing.assert_allclose(c["cross_section_a2"], hand, rtol=1e-6)


@pytest.mark.parametrize("model", [S.ColumnModel(), S.ColumnModel(exponent=2.2, spread_pm_per_nm=15.0)])
def test_voronoi_integrals_match_analytic_crosstalk(model):
    """Image intensities integrated over a/2 squares = crosstalk matrix x power-law cross-sections (1 %).

    Two independent routes: the image (splat, FFT convolution, scan sampling) and the
    Fourier-series cross-talk of a periodic lattice; with and without the column model's
    thickness spread.
    """
    from dataclasses import replace

    nc = homogeneous(6.0, "CsPbI3", seed=1)
    px = 20.0
    probe = S.ProbeParameters()
    res = S.simulate_image(nc, pixel_size_pm=px, support=NO_SUPPORT, noise=False, dose_e_per_a2=1e5, seed=1,
                           column_model=model, probe=probe)
    img = res.image.values / (1e5 * (px / 100) ** 2)  # detected fraction
    c = res.truth["columns"]
    x, y, typ = np.array(c["x_nm"]), np.array(c["y_nm"]), np.array(c["type"])
    sig = np.array(c["cross_section_a2"])
    thick = np.array(c["n_cells"]) * nc.reference_lattice_pm / 1000
    a_nm = materials.lattice_constant_pm(0.0) / 1000
    inner = (np.abs(x - x.mean()) < 1.5) & (np.abs(y - y.mean()) < 1.5)
    h = px * 1e-3
    xx = np.arange(img.shape[1]) * h
    yy = np.arange(img.shape[0]) * h
    meas = {}
    for t in ("Cs", "PbX", "X"):
        vals = []
        for k in np.flatnonzero(inner & (typ == t)):
            mx = np.abs(xx - x[k]) < a_nm / 4
            my = np.abs(yy - y[k]) < a_nm / 4
            vals.append(img[np.ix_(my, mx)].sum() * (px / 100) ** 2)
        meas[t] = np.mean(vals)
    pred = np.zeros(4)
    for j, t in enumerate(("Cs", "PbX", "X", "X")):  # source column type t' spreads with its thickness
        sel = inner & (typ == t)
        fwhm = float(model.spread_fwhm_pm(thick[sel].mean()))
        m = crosstalk_matrix(a_nm * 1000, replace(probe, source_fwhm_pm=math.hypot(probe.source_fwhm_pm, fwhm)))
        pred += m[:, j] * sig[sel].mean()
    np.testing.assert_allclose([meas["Cs"], meas["PbX"], meas["X"]], pred[:3], rtol=0.01)
    # and the ratios differ from the bare cross-sections by the cross-talk (a few %)
    s_x, s_pbx = sig[inner & (typ == "X")].mean(), sig[inner & (typ == "PbX")].mean()
    assert meas["X"] / meas["PbX"] > 1.02 * s_x / s_pbx


def test_flux_is_conserved():
    nc = homogeneous(4.0, "CsPbBr3", seed=2)
    res = S.simulate_image(nc, pixel_size_pm=20.0, support=NO_SUPPORT, noise=False, dose_e_per_a2=1e4, seed=2)
    total = res.image.values.sum() / 1e4  # = sum of cross-sections, A^2
    assert math.isclose(total, sum(res.truth["columns"]["cross_section_a2"]), rel_tol=1e-3)


def test_oversampled_internal_grid_matches_direct():
    """A pixel coarser than lambda/4alpha is rendered oversampled: same image as a fine render, subsampled."""
    nc = homogeneous(3.0, "CsPbI3", seed=2)
    kw = dict(support=NO_SUPPORT, noise=False, dose_e_per_a2=1e4, seed=2)
    fine = S.simulate_image(nc, pixel_size_pm=15.0, shape=(241, 241), **kw).image.values
    coarse = S.simulate_image(nc, pixel_size_pm=45.0, shape=(81, 81), **kw).image.values
    # same field of view (3.6 nm, NC centred); coarse pixel (i, j) = fine (3i, 3j), fluence x9
    # (the two internal grids differ in extent, so the probes differ by ~1e-4 of the peak)
    assert np.abs(coarse - 9 * fine[::3, ::3]).max() < 1e-3 * coarse.max()


def test_poisson_statistics_on_flat_region():
    """Acceptance: variance / mean within 5 % for a flat illumination (and = gain with gain)."""
    rng = np.random.default_rng(7)
    frac = np.full((400, 400), 0.02)
    for gain in (1.0, 3.5):
        counts = S.detector_counts(frac, 1e5, 20.0, rng, gain=gain)
        assert abs(counts.mean() / (gain * 0.02 * 4000) - 1) < 0.01
        assert abs(counts.var() / counts.mean() / gain - 1) < 0.05


def test_image_pixels_are_poisson_about_expected():
    """In a simulated image (NC + carbon film) (counts - mean)^2 / mean averages to 1 (5 %)."""
    nc = homogeneous(5.0, seed=5)
    kw = dict(pixel_size_pm=20.0, shape=(300, 300), dose_e_per_a2=2e4, seed=11)
    noisy = S.simulate_image(nc, **kw).image.values
    mean = S.simulate_image(nc, noise=False, **kw).image.values
    ok = mean > 5
    z2 = (noisy[ok] - mean[ok]) ** 2 / mean[ok]
    assert abs(z2.mean() - 1) < 0.05
    # support film: a textured, non-zero background outside the NC
    assert mean[:20, :20].mean() > 0.1 and mean[:20, :20].std() > 0


def test_offset_read_noise_and_gain():
    nc = homogeneous(3.0, seed=5)
    kw = dict(pixel_size_pm=20.0, shape=(400, 400), dose_e_per_a2=1e4, seed=3, support=NO_SUPPORT)
    im = S.simulate_image(nc, gain=2.0, offset=100.0, read_noise=3.0, **kw).image.values
    corner = im[:40, :40]  # vacuum 2 nm from the NC: offset + read noise only
    assert abs(corner.mean() - 100.0) < 0.5
    assert abs(corner.std() - 3.0) < 0.3


def test_line_jitter_and_drift_recorded_and_applied():
    nc = homogeneous(4.0, "CsPbI3", seed=1)
    kw = dict(pixel_size_pm=20.0, shape=(256, 256), support=NO_SUPPORT, noise=False, dose_e_per_a2=1e4, seed=9)
    ref = S.simulate_image(nc, **kw).image.values
    res = S.simulate_image(nc, scan=S.ScanDistortion(line_jitter_pm=30.0), **kw)
    jit = np.array(res.truth["scan_distortion"]["line_jitter_pm"])
    assert jit.shape == (256,) and 20 < jit.std() < 40
    img = res.image.values
    # measured shift of each NC row against the undistorted row (sub-pixel cross-correlation)
    rows = np.flatnonzero(ref.sum(axis=1) > 0.3 * ref.sum(axis=1).max())
    shifts = []
    for r in rows:
        f = np.fft.irfft(np.fft.rfft(img[r]) * np.conj(np.fft.rfft(ref[r])), n=2048 * 8)
        k = np.argmax(f)
        shifts.append((k if k < f.size // 2 else k - f.size) / 8 * 256 / 2048)
    # the image shows the specimen displaced opposite to the probe offset
    corr = np.corrcoef(np.array(shifts), -jit[rows] / 20.0)[0, 1]
    assert corr > 0.9
    # drift: the NC appears displaced by -drift x line index in the lower rows
    res = S.simulate_image(nc, scan=S.ScanDistortion(drift_pm_per_line=(0.5, 0.0)), **kw)
    top = res.image.values[rows[:10]].sum(axis=0)
    bottom = res.image.values[rows[-10:]].sum(axis=0)
    com = lambda p: np.sum(p * np.arange(p.size)) / p.sum()  # noqa: E731
    ref_shift = com(ref[rows[-10:]].sum(axis=0)) - com(ref[rows[:10]].sum(axis=0))
    measured = com(bottom) - com(top) - ref_shift
    expected = -0.5 * (rows[-10:].mean() - rows[:10].mean()) / 20.0
    assert abs(measured - expected) < 0.15 * abs(expected)


def test_truth_sidecar_domains_boundaries_and_roundtrip(tmp_path):
    nc = paper_fig1(seed=1)
    res = S.simulate_image(nc, seed=2, shape=900)
    truth = res.truth
    labels = S.decode_array(truth["label_map"])
    assert labels.shape == (900, 900)
    rec = truth["record"]
    assert rec.origin == "truth" and rec.SCHEMA == "nanodomains.stem.domains/4"
    visible = [d for d in rec.domains if d.visible]
    assert {d.id for d in visible} == {0, 1, 2, 3}  # R5 lies behind R2
    # R1 (shifted through the whole thickness), R2 with R5 behind it (partly shifted)
    d = {x.id: x for x in rec.domains}
    assert d[0].shifted_fraction.value == pytest.approx(1.0) and d[0].mixed_fraction.value == 0.0
    assert d[0].lattice_pm.stderr == 0.0
    assert 0.2 < d[1].shifted_fraction.value < 0.4
    assert d[1].projected_br_fraction.value == pytest.approx(0.52 * 0.7 + 0.40 * 0.3, abs=0.02)
    assert d[0].lattice_pm.value == pytest.approx(materials.lattice_constant_pm(0.27))
    # projected area of the NC ~ (15 nm)^2
    total = sum(x.area_nm2 for x in visible)
    assert 200 < total < 240
    # RP boundaries seen edge-on, separating the right image domains
    rp = [b for b in truth["model_boundaries"] if b["type"] == "RP" and b["edge_on"]]
    pairs = {tuple(b["domains"]) for b in rp}
    assert {(0, 1), (0, 2), (1, 3), (2, 3)} <= pairs
    assert {b.domains for b in rec.boundaries if b.type == "RP"} == pairs
    assert all(6.5 < b["length_nm"] < 9 for b in rp)
    # a boundary segment separates its two labels: sample either side of the midpoint
    h = truth["pixel_size_pm"] * 1e-3
    for b in rp:
        (x0, y0), (x1, y1) = b["segment_nm"]
        t = np.array([x1 - x0, y1 - y0]) / b["length_nm"]
        nrm = np.array([-t[1], t[0]])
        mid = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        sides = sorted(int(labels[int(round(p[1] / h)), int(round(p[0] / h))]) for p in (mid - 0.3 * nrm, mid + 0.3 * nrm))
        assert sides == sorted(b["domains"])
    p_img, p_truth = S.write_simulation(res, tmp_path / "img.nc")
    assert p_truth.name == "img.truth.json"
    back = S.load_truth(p_truth)
    assert np.array_equal(back["label_map"], labels)
    assert back["record"] == rec


def test_rotation_moves_columns_and_truth_follows():
    nc = homogeneous(5.0, "CsPbI3", seed=1)
    kw = dict(pixel_size_pm=20.0, support=NO_SUPPORT, noise=False, dose_e_per_a2=1e4, seed=1)
    res = S.simulate_image(nc, rotation_deg=33.0, **kw)
    img = res.image.values
    c = res.truth["columns"]
    h = 0.02
    x, y, typ = np.array(c["x_nm"]), np.array(c["y_nm"]), np.array(c["type"])
    pbx = typ == "PbX"
    on = img[np.round(y[pbx] / h).astype(int), np.round(x[pbx] / h).astype(int)]
    off = img[np.round((y[pbx] + 0.15) / h).astype(int), np.round((x[pbx] + 0.0) / h).astype(int)]
    assert np.median(on) > 3 * np.median(off)
    # the PbX sublattice direction is rotated by 33 degrees
    i = np.argsort(x[pbx])
    xs, ys = x[pbx], y[pbx]
    d = np.hypot(xs[:, None] - xs[None], ys[:, None] - ys[None])
    np.fill_diagonal(d, np.inf)
    j = np.argmin(d, axis=1)
    ang = np.degrees(np.arctan2(ys[j] - ys, xs[j] - xs)) % 90
    assert np.median(ang) == pytest.approx(33.0, abs=0.5)
    del i


def test_channelling_saturation_compresses_contrast():
    nc = homogeneous(8.0, "CsPbI3", seed=1)
    cols = nc.project_columns(seed=1)
    lin = S.ColumnModel()
    sat = S.ColumnModel(saturation_a2=0.1)
    v_lin = lin.column(cols.n_cs, cols.n_pb, cols.n_br, cols.n_i)
    v_sat = sat.column(cols.n_cs, cols.n_pb, cols.n_br, cols.n_i)
    pbx = (cols.site == "PbX").to_numpy()
    cs = (cols.site == "Cs").to_numpy()
    assert np.all(v_sat < v_lin)
    assert v_sat[cs].mean() / v_sat[pbx].mean() > v_lin[cs].mean() / v_lin[pbx].mean()
    assert np.all(v_sat < 0.1)


def test_probe_is_normalised_and_defocus_broadens_it():
    p0 = S.probe_intensity((256, 256), 10.0, S.ProbeParameters(source_fwhm_pm=0))
    p1 = S.probe_intensity((256, 256), 10.0, S.ProbeParameters(defocus_nm=10.0, source_fwhm_pm=0))
    for p in (p0, p1):
        assert math.isclose(p.sum() * 0.1**2, 1.0, rel_tol=1e-9)
    assert p0.max() > 3 * p1.max()
    assert np.unravel_index(np.argmax(p0), p0.shape) == (128, 128)
    assert S.wavelength_pm(300.0) == pytest.approx(1.9687, abs=1e-4)
    assert S.wavelength_pm(200.0) == pytest.approx(2.5079, abs=1e-4)


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, match", [
    ({"dose_e_per_a2": 0}, "dose"),
    ({"dose_e_per_a2": -5}, "dose"),
    ({"dose_e_per_a2": float("nan")}, "dose"),
    ({"pixel_size_pm": 200.0}, "quarter of the smallest lattice"),
    ({"pixel_size_pm": 0.0}, "pixel_size_pm"),
    ({"detector_mrad": (20.0, 190.0)}, "inner angle"),
    ({"detector_mrad": (190.0, 70.0)}, "inner < outer"),
    ({"rotation_deg": float("inf")}, "rotation_deg"),
    ({"shape": 4}, "shape"),
    ({"gain": 0.0}, "gain"),
    ({"read_noise": -1.0}, "read_noise"),
])
def test_bad_parameters_raise(kwargs, match):
    nc = homogeneous(3.0, seed=1)
    with pytest.raises(InputError, match=match):
        S.simulate_image(nc, seed=1, **kwargs)


@pytest.mark.parametrize("factory, match", [
    (lambda: S.ProbeParameters(convergence_semiangle_mrad=0), "semiangle"),
    (lambda: S.ProbeParameters(source_fwhm_pm=-1), "source_fwhm"),
    (lambda: S.ColumnModel(exponent=7), "exponent"),
    (lambda: S.ColumnModel(saturation_a2=-1.0), "saturation"),
    (lambda: S.ScanDistortion(line_jitter_pm=-1), "jitter"),
    (lambda: S.SupportFilm(thickness_nm=-1), "thickness"),
])
def test_bad_parameter_objects_raise(factory, match):
    with pytest.raises(InputError, match=match):
        factory()


def test_truth_loader_rejects_bad_files(tmp_path):
    with pytest.raises(FileFormatError, match="not found"):
        S.load_truth(tmp_path / "none.truth.json")
    bad = tmp_path / "bad.truth.json"
    bad.write_text("{not json")
    with pytest.raises(FileFormatError, match="not valid JSON"):
        S.load_truth(bad)
    bad.write_text('{"schema": "other"}')
    with pytest.raises(FileFormatError, match="truth sidecar"):
        S.load_truth(bad)
    with pytest.raises(FileFormatError, match="decode"):
        S.decode_array({"encoding": "zlib+base64", "dtype": "<i2", "shape": [3], "data": "AAAA"})


def test_simulated_image_records_its_probe_and_detector():
    """The image attributes are ProbeParameters.to_attrs: from_attrs gives the probe back."""
    probe = S.ProbeParameters(defocus_nm=1.0)
    res = S.simulate_image(homogeneous(3.0, "CsPbI3", seed=2), probe=probe, support=NO_SUPPORT, noise=False,
                           seed=2, detector_mrad=(60.0, 160.0))
    assert S.ProbeParameters.from_attrs(res.image.attrs) == probe.with_detector((60.0, 160.0))
    assert S.ColumnModel.from_attrs(res.image.attrs) == S.ColumnModel()
    default = S.simulate_image(homogeneous(3.0, "CsPbI3", seed=2), support=NO_SUPPORT, noise=False, seed=2)
    assert S.ProbeParameters.from_attrs(default.image.attrs).detector_mrad == (70.0, 190.0)

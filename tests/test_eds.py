"""EDS forward model: expected counts, Poisson noise, truth, line scans across a boundary."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nanodomains.errors import FileFormatError, InputError
from nanodomains.stem import eds as E
from nanodomains.stem import linescan as L
from nanodomains.stem.simulate import load_truth
from nanodomains.structure import homogeneous, paper_fig1


@pytest.fixture(scope="module")
def fig1():
    return paper_fig1(seed=1)


@pytest.fixture(scope="module")
def fig1_maps(fig1):
    return E.simulate_eds(fig1, dose_e_per_a2=2e8, seed=4)


def test_expected_counts_equal_columns_times_cross_section_times_dose():
    nc = homogeneous(5.0, "CsPbBr1.5I1.5", seed=2)
    det = E.EDSDetector(solid_angle_sr=0.9, efficiency=0.8)
    res = E.simulate_eds(nc, dose_e_per_a2=1e6, detector=det, continuum_fraction=0.0, noise=False, seed=2,
                         shape=260)
    cols = res.truth["columns"]
    for line in E.DEFAULT_LINES:
        n_atoms = sum(cols["n_br"] if line.element == "Br" else cols["n_i"])
        expected = 1e6 * n_atoms * line.production_barn * 1e-8 * 0.9 / (4 * math.pi) * 0.8
        assert float(res.maps[line.name].sum()) == pytest.approx(expected, rel=1e-3)


def test_counts_are_poisson():
    nc = homogeneous(4.0, seed=1)
    kw = dict(dose_e_per_a2=5e8, continuum_fraction=0.0, shape=160, seed=3)
    mean = E.simulate_eds(nc, noise=False, **kw).maps["I_L"].values
    noisy = E.simulate_eds(nc, **kw).maps["I_L"].values
    assert noisy.dtype.kind == "i"
    ok = mean > 5
    z2 = (noisy[ok] - mean[ok]) ** 2 / mean[ok]
    assert abs(z2.mean() - 1) < 0.05


def test_continuum_adds_uniform_background_over_the_nc():
    nc = homogeneous(4.0, seed=1)
    kw = dict(dose_e_per_a2=1e7, noise=False, shape=160, seed=3)
    with_c = E.simulate_eds(nc, continuum_fraction=0.1, **kw)
    without = E.simulate_eds(nc, continuum_fraction=0.0, **kw)
    labels = load_truth_labels(with_c.truth)
    inside = labels >= 0
    for name in ("Br_K", "I_L"):
        diff = with_c.maps[name].values - without.maps[name].values
        assert np.allclose(diff[~inside], 0)
        assert diff[inside].mean() == pytest.approx(0.1 * without.maps[name].values[inside].mean(), rel=1e-6)


def load_truth_labels(truth):
    from nanodomains.stem.simulate import decode_array

    return decode_array(truth["label_map"])


def test_line_scan_across_rp_boundary_recovers_compositions(fig1, fig1_maps):
    """Across the R1 | R2 boundary (vertical line at x ~ 8.1 nm): Br fraction steps from ~0.27 to ~0.49."""
    truth = fig1_maps.truth
    seg = next(b for b in truth["model_boundaries"] if b["model_domains"] == [0, 1])
    (x0, y0), (x1, y1) = seg["segment_nm"]
    xb, ym = (x0 + x1) / 2, (y0 + y1) / 2
    prof = L.line_scan(fig1_maps.maps, (xb - 4.0, ym), (xb + 4.0, ym), width_nm=4.0, bin_nm=1.0)
    assert prof.sizes["distance_nm"] == 8
    b = prof["br_fraction"].values
    err = prof["br_fraction_err"].values
    left = np.average(b[:3], weights=1 / err[:3] ** 2)
    right = np.average(b[-3:], weights=1 / err[-3:] ** 2)
    d = {x.id: x.projected_br_fraction.value for x in truth["record"].domains}
    e_left = 1 / np.sqrt(np.sum(1 / err[:3] ** 2))
    e_right = 1 / np.sqrt(np.sum(1 / err[-3:] ** 2))
    # the a/2 X-column signal is diluted by cross-talk only between domains; inside: the projected truth
    assert abs(left - d[0]) < 4 * e_left + 0.01
    assert abs(right - d[1]) < 4 * e_right + 0.01
    assert right - left > 0.15
    # counts in the band are exact pixel sums
    h = fig1_maps.maps.attrs["pixel_size_pm"] * 1e-3
    assert prof["n_pixels"].sum() == pytest.approx((8.0 / h) * (4.0 / h), rel=0.03)


def test_line_scan_pixel_sums_are_exact():
    y = np.arange(50) * 0.1
    x = np.arange(60) * 0.1
    rng = np.random.default_rng(0)
    data = rng.poisson(3.0, size=(50, 60))
    import xarray as xr

    maps = xr.Dataset({"Br_K": (("y", "x"), data)}, coords={"y": y, "x": x}, attrs={"pixel_size_pm": 100.0})
    prof = L.line_scan(maps, (0.0, 2.0), (5.0, 2.0), width_nm=1.0)
    band = (np.abs(y - 2.0) <= 0.5)[:, None] & (x < 5.0)[None, :]
    assert prof["Br_K"].sum() == data[band].sum()
    assert "br_fraction" not in prof


def test_write_load_roundtrip(tmp_path, fig1):
    res = E.simulate_eds(fig1, seed=1, pixel_size_pm=100.0)
    p, t = E.write_eds(res, tmp_path / "eds.nc")
    assert t.name == "eds.truth.json"
    back = E.load_eds(p)
    np.testing.assert_array_equal(back["Br_K"].values, res.maps["Br_K"].values)
    assert back["I_L"].attrs["production_barn"] == pytest.approx(36.0)
    truth = load_truth(t)
    assert truth["kind"] == "eds" and truth["lines"][0]["name"] == "Br_K"
    assert truth["label_map"].shape == res.maps["Br_K"].shape


@pytest.mark.parametrize("kwargs, match", [
    ({"dose_e_per_a2": 0.0}, "dose"),
    ({"dose_e_per_a2": -1.0}, "dose"),
    ({"pixel_size_pm": 400.0}, "quarter"),
    ({"spread_fwhm_pm": -1.0}, "spread"),
    ({"continuum_fraction": -0.1}, "continuum"),
    ({"lines": ()}, "lines"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(InputError, match=match):
        E.simulate_eds(homogeneous(3.0, seed=1), seed=1, **kwargs)


def test_bad_line_scans_and_files(tmp_path, fig1_maps):
    with pytest.raises(InputError, match="zero length"):
        L.line_scan(fig1_maps.maps, (1.0, 1.0), (1.0, 1.0))
    with pytest.raises(InputError, match="outside"):
        L.line_scan(fig1_maps.maps, (100.0, 100.0), (110.0, 100.0))
    with pytest.raises(InputError, match="width_nm"):
        L.line_scan(fig1_maps.maps, (1.0, 1.0), (5.0, 1.0), width_nm=0.0)
    with pytest.raises(FileFormatError, match="not found"):
        E.load_eds(tmp_path / "none.nc")
    bad = tmp_path / "bad.nc"
    bad.write_text("junk")
    with pytest.raises(FileFormatError, match="netCDF"):
        E.load_eds(bad)
    with pytest.raises(InputError, match="netCDF"):
        E.write_eds(fig1_maps, tmp_path / "eds.tif")
    with pytest.raises(InputError, match="element"):
        E.XrayLine("Cs_L", "Cs", 4.3, 10.0)

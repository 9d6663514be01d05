"""nanodomains.testing (synthetic data with known truth) and the CI rule of tests/conftest.py."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REALDATA, on_ci, realdata_path, require_realdata, skip_or_fail

from nanodomains.materials import HC_EV_NM
from nanodomains.testing import fig4_like, lines_nm, make_movie, on_between, perovskite_columns, perovskite_image


@pytest.mark.parametrize("value, expected", [("", False), ("0", False), ("false", False), ("no", False),
                                             ("true", True), ("1", True), ("yes", True)])
def test_on_ci(monkeypatch, value, expected):
    monkeypatch.setenv("CI", value)
    assert on_ci() is expected


def test_skip_or_fail(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no browser"):
        skip_or_fail("no browser")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no browser.*CI is set"):
        skip_or_fail("no browser")


def test_missing_realdata_skips_then_fails_on_ci(monkeypatch, tmp_path):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not-there.ptu"):
        realdata_path("photons", "not-there.ptu")
    monkeypatch.setattr("conftest.REALDATA", tmp_path / "absent")
    with pytest.raises(pytest.skip.Exception, match="real data folder .*absent not found"):
        require_realdata()
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require_realdata()


@pytest.mark.realdata("photons/picoharp_v30_t2.ptu")
def test_marker_with_file_names():
    assert (REALDATA / "photons" / "picoharp_v30_t2.ptu").is_file()


def test_perovskite_image_peaks_on_the_true_columns():
    img, pos, typ = perovskite_image((120, 120), a_px=20.0, sigma_px=2.0, background=0.0)
    inside = (pos[:, 0] > 5) & (pos[:, 0] < 114) & (pos[:, 1] > 5) & (pos[:, 1] < 114)
    pbx = np.round(pos[inside & (typ == "PbX")]).astype(int)
    assert np.allclose(img[pbx[:, 0], pbx[:, 1]], 1.0, atol=0.02)  # Pb+X peaks at 1 (relative units)
    cs = np.round(pos[inside & (typ == "Cs")]).astype(int)
    assert np.all(img[cs[:, 0], cs[:, 1]] < 0.7)


def test_rp_fault_shifts_columns_by_half_a_cell():
    pos0, _, typ0 = perovskite_columns((100, 100), 20.0)
    pos1, _, typ1 = perovskite_columns((100, 100), 20.0, fault_x_px=50.0)
    inner = (pos1[:, 1] > 65) & (pos1[:, 1] < 90) & (pos1[:, 0] > 15) & (pos1[:, 0] < 85)
    # each column right of the fault is an unfaulted column of its type moved by (a/2, a/2)
    d = np.abs(pos1[inner][:, None, :] - (pos0[None, :, :] + 10.0)).sum(-1)
    nearest = d.argmin(1)
    assert np.all(d.min(1) < 1e-9) and np.array_equal(typ0[nearest], typ1[inner])


def test_lines_nm_fine_structure():
    lam = lines_nm(650.0, "triplet", 878.0)
    e = np.sort(HC_EV_NM / lam)
    gaps = np.diff(e) * 1e6
    assert gaps.mean() == pytest.approx(878.0) and gaps == pytest.approx([0.9 * 878, 1.1 * 878])
    assert e.mean() == pytest.approx(HC_EV_NM / 650.0)  # energy centroid at the centre


def test_movies_are_reproducible_and_truth_matches_the_masks():
    a, ta = fig4_like(seed=3, n_frames=60)
    b, _ = fig4_like(seed=3, n_frames=60)
    c, _ = fig4_like(seed=4, n_frames=60)
    assert np.array_equal(a.values, b.values) and not np.array_equal(a.values, c.values)
    for em in ta["emitters"]:
        on = ta["frames"]["on"][em["id"]]
        frames = sum(stop - start for start, stop in em["intervals_s"])
        assert frames == on.sum()
    movie, truth = make_movie([dict(id="A", kind="singlet", center_nm=650.0, peak_counts=300.0,
                                    on=on_between(10, 2, 5))], n_frames=10, n_px=200, n_cosmics=0, seed=0)
    assert truth["emitters"][0]["intervals_s"] == [[2.0, 5.0]]
    assert movie.attrs["seed"] == 0

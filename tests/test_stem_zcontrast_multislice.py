"""The shipped registry-depth multislice table and the joint inversion on independent abTEM
multislice validation images (issue 14): the table's own interpolation errors, recovery of
b, s and thickness with honest intervals, the whole `analyze_image` chain, bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from nanodomains.errors import InputError
from nanodomains.stem import zcontrast as zc
from nanodomains.stem.table_build import VALIDATION_CASES
from nanodomains.stem.validation import registry_case, registry_image

VALID = Path(__file__).parent / "data" / "zcontrast_validation"
CASES = sorted(p.stem for p in VALID.glob("*.nc"))
#: the second, independent set (other occupancy and phonon seeds: --seed 107), pooled with the first
VALID_2 = Path(__file__).parent / "data" / "zcontrast_validation_seed107"


@pytest.fixture(scope="module")
def table():
    return zc.load_registry_table()


@pytest.fixture(scope="module")
def model(table):
    return zc.RegistryModel(table)


def _load(name, folder=VALID):
    return xr.load_dataset(folder / f"{name}.nc")


def test_shipped_table_carries_its_provenance(table):
    a = table.attrs
    assert a["schema"] == zc.REGISTRY_SCHEMA and "stem table --method registry" in a["command"]
    assert a["num_configs"] >= 8 and a["frozen_phonons"] == 1 and a["wall_time_s"] > 0
    assert a["abtem_version"] and a["beam_energy_kev"] == 300.0
    assert table.sizes["thickness_cells"] >= 30 and float(table["thickness_nm"].max()) >= 24.0
    runs = table.sizes["br_fraction"] * table.sizes["regular_cells"]
    assert len(set(a["seeds"].split(","))) == int(a.get("passes", 1)) * runs  # every run its own seed
    assert a["num_configs"] == table.sizes["config"]


def test_frozen_phonon_contrast_and_channelling_in_table(table):
    """Cs-site/PbX-site of CsPbI3 well below 0.6 (the static-lattice signature), and the
    channelling asymmetry: a column is not the sum of its parts along the depth."""
    i = table["intensity_configs"].mean("config")
    reg = i.sel(br_fraction=0.0, regular_cells=int(table["regular_cells"].max()))
    assert float((reg.sel(site="Cs-site") / reg.sel(site="PbX-site")).sel(thickness_cells=16)) < 0.6
    n = 30
    k = 15
    run = i.sel(br_fraction=0.0, regular_cells=k, thickness_cells=n)
    add = (reg.sel(thickness_cells=k, site="Cs-site") + reg.sel(thickness_cells=n, site="PbX-site")
           - reg.sel(thickness_cells=k, site="PbX-site"))
    dev = float(run.sel(site="Cs-site") / add - 1)
    assert abs(dev) > 0.01  # measured: see docs/stem_zcontrast.md


@pytest.mark.parametrize("held", [9, 22])
def test_depth_interpolation_error_is_within_the_stated_floor(table, held):
    """Leave one boundary depth out: the model built without it predicts it within its
    stated interpolation error plus the table's frozen-phonon errors (2 sigma)."""
    ks = [k for k in table["regular_cells"].values if k != held]
    m = zc.RegistryModel(table.sel(regular_cells=ks))
    i = table["intensity_configs"].sel(regular_cells=held)
    mean = i.mean("config")
    err = i.std("config") / np.sqrt(i.sizes["config"])
    worst = 0.0
    for b in table["br_fraction"].values:
        for n in (16, 24, 32, 40):
            s = (n - held) / n
            pred = m.site_intensities(float(b), s, n)
            meas = mean.sel(br_fraction=b, thickness_cells=n).values
            e = err.sel(br_fraction=b, thickness_cells=n).values
            tol = 2 * np.sqrt(e**2 + (max(m.interp_rel_err) * meas) ** 2 + (m.sites_rel_err.max() * meas) ** 2)
            assert np.all(np.abs(pred - meas) <= tol), (b, n, pred, meas)
            worst = max(worst, float(np.max(np.abs(pred / meas - 1))))
    assert worst < 0.10


def _cases(model, **kw):
    out = []
    for folder in (VALID, VALID_2):
        for name in CASES:
            if name == "boundary":
                continue
            ds = _load(name, folder)
            for i in range(ds.sizes["thickness_cells"]):
                out.append(registry_case(ds, i, model, seed=i, **kw))
    return out


@pytest.fixture(scope="module")
def fitted(model):
    return _cases(model)


def test_validation_images_are_shipped():
    assert set(CASES) >= {"b000", "b027", "b052", "b075", "b100"}
    assert sorted(p.stem for p in VALID_2.glob("*.nc")) == CASES
    for name, folder in [(n, f) for n in CASES for f in (VALID, VALID_2)]:
        ds = _load(name, folder)
        assert ds.attrs["method"] == "multislice validation image" and ds.attrs["occupancy"].startswith("random")
        assert ds.attrs["tile"][0] >= 2 and ds.sizes["config"] >= 8
        assert np.allclose(ds["thickness_nm"].values, [8, 12, 16, 24], atol=0.4)
        assert ds.attrs["br_fraction_nominal"] == VALIDATION_CASES[name][0]


def test_thickness_within_10_percent(fitted):
    for r in fitted:
        assert abs(r["fit"].thickness_nm / r["t_true_nm"] - 1) <= 0.10, r


def test_br_fraction_and_its_intervals(fitted):
    """b within 0.05 where the output calls it determined (90 % interval within +-0.05) is the
    issue's target; the 90 % intervals cover the truth (both sets pooled, three noise draws:
    88 % with the thickness fitted, docs/stem_zcontrast.md); every b is reported, with its
    interval."""
    err = np.array([r["fit"].br_fraction - r["b_true"] for r in fitted])
    det = np.array([r["fit"].br_fraction_status == "determined" for r in fitted])
    cover = np.mean([r["fit"].br_fraction_ci90[0] <= r["b_true"] <= r["fit"].br_fraction_ci90[1] for r in fitted])
    assert np.all(np.abs(err[det]) <= 0.05)
    assert np.all(np.abs(err[~det]) <= 0.5)  # ambiguous: still reported, inside the table
    assert cover >= 0.85
    assert np.sqrt(np.mean(err**2)) <= 0.15


def test_shifted_fraction_claimed_only_where_right(fitted):
    m_cover = np.mean([r["fit"].mixed_fraction_ci90[0] - 0.01 <= min(r["s_true"], 1 - r["s_true"])
                       <= r["fit"].mixed_fraction_ci90[1] + 0.01 for r in fitted])
    assert m_cover >= 0.85
    for r in fitted:
        f = r["fit"]
        if f.shifted_fraction is not None:
            assert abs(f.shifted_fraction - r["s_true"]) <= 0.10, r


def test_boundary_image_two_domains(model):
    """The 4 x 1 supercell with a lateral registry boundary: each side inverted on its own
    (k = 3 and 20 cells at b = 0.5): thickness within 10 %, b and m inside their intervals."""
    ds = _load("boundary")
    for cells in ((0, 1), (2, 3)):
        for i in range(ds.sizes["thickness_cells"]):
            r = registry_case(ds, i, model, seed=i, x_cells=cells)
            f = r["fit"]
            assert abs(f.thickness_nm / r["t_true_nm"] - 1) <= 0.10
            assert f.br_fraction_ci90[0] - 0.02 <= r["b_true"] <= f.br_fraction_ci90[1] + 0.02


def test_ratio_mode_with_known_thickness(model):
    ds = _load("b027")
    r = registry_case(ds, 2, model, absolute=False, thickness_known=True)
    f = r["fit"]
    assert f.br_fraction_ci90[0] <= r["b_true"] <= f.br_fraction_ci90[1]
    assert "ratios" in f.mode and f.thickness_source.startswith("given")


def test_analyze_image_names_model_and_table(tmp_path):
    """The whole chain: lattice, columns, one domain, joint inversion; domains.json says how."""
    from nanodomains.stem.analyze import analyze_image

    ds = _load("b027")
    img = registry_image(ds, 2, field_cells=(16, 16), seed=3)
    res = analyze_image(img, table="registry", background=0.0, thickness_nm=None, n_boot=100)
    rec = res.record
    assert len(rec.domains) == 1 and not rec.boundaries
    d = rec.domains[0]
    c = d.composition
    assert c.model == zc.ZCONTRAST_MODEL and "registry-depth multislice table" in c.table
    assert "absolute" in c.intensity_mode
    assert abs(c.thickness_nm.value / float(ds["thickness_nm"][2]) - 1) <= 0.10
    assert c.br_fraction_ci90[0] - 0.02 <= float(ds["br_fraction"][2]) <= c.br_fraction_ci90[1] + 0.02
    paths = res.write(tmp_path / "out")
    data = json.loads((tmp_path / "out" / "domains.json").read_text())
    assert data["schema"] == "nanodomains.stem.domains/4"
    assert data["domains"][0]["composition"]["table"].startswith("registry-depth")
    assert paths


def test_probe_mismatch_is_warned_in_the_record():
    from nanodomains.stem.analyze import analyze_image

    ds = _load("b052")
    img = registry_image(ds, 1, seed=1)
    img.attrs["convergence_semiangle_mrad"] = 30.0
    rec = analyze_image(img, table="registry", background=0.0, thickness_nm=None, n_boot=50).record
    assert any("convergence semi-angle (mrad): table 24, image 30" in w for w in rec.warnings)


def test_registry_table_on_an_incoherent_image_is_warned():
    """The incoherent renderer has no channelling: the multislice table's b does not apply to it
    (found by the microscopist tutorial: b 0.8-1.0 for truth 0.27-0.49, no warning)."""
    from nanodomains.stem.analyze import analyze_image

    img = registry_image(_load("b052"), 1, seed=1)
    img.attrs["method"] = "incoherent"
    rec = analyze_image(img, table="registry", background=0.0, thickness_nm=None, n_boot=20).record
    assert any("incoherent renderer" in w and "no channelling" in w for w in rec.warnings)


def test_thickness_outside_the_table_is_not_extrapolated(model):
    ds = _load("b075")
    r_img = registry_image(ds, 1, seed=0)
    with pytest.raises(InputError, match="outside the table"):
        zc.invert_domain(model, np.array([1.0, 0.5, 0.3]), np.array([0.01, 0.01, 0.01]), thickness_nm=45.0)
    from nanodomains.stem.analyze import analyze_image

    rec = analyze_image(r_img, table="registry", background=0.0, thickness_nm=45.0, n_boot=20).record
    assert rec.domains[0].br_fraction.value is None
    assert "outside the table" in rec.domains[0].composition.reason


def test_fig1g_command(tmp_path, capsys):
    from nanodomains.cli import main

    out = tmp_path / "fig1g.png"
    assert main(["stem", "fig1g", "--out", str(out), "--thickness-nm", "16"]) == 0
    assert out.stat().st_size > 10_000
    assert main(["stem", "fig1g", "--out", str(out), "--thickness-nm", "40"]) == 2
    assert "outside the table" in capsys.readouterr().err


@pytest.mark.slow
def test_regenerate_a_validation_image_and_invert_it(tmp_path, model):
    """`stem validation-images` (abTEM, ~3 min): a fresh 8 nm image of case b100 inverts to its truth."""
    from nanodomains.cli import main

    assert main(["stem", "validation-images", "--out", str(tmp_path), "--cases", "b100", "--thickness", "8",
                 "--seed", "11"]) == 0
    ds = xr.load_dataset(tmp_path / "b100.nc")
    res = registry_case(ds, 0, model)
    f = res["fit"]
    assert abs(f.thickness_nm / res["t_true_nm"] - 1) <= 0.10
    assert f.br_fraction_ci90[0] - 0.02 <= res["b_true"] <= f.br_fraction_ci90[1] + 0.02


def test_registry_table_command_builds_resumes_and_refuses(tmp_path, capsys):
    """`stem table --method registry` on a tiny grid (1-2 cells; real abTEM runs): parts are
    saved and reused, the table loads, and bad options are refused with the reason."""
    from nanodomains.cli import main

    out = tmp_path / "t.nc"
    parts = tmp_path / "parts"
    args = ["stem", "table", "--method", "registry", "--out", str(out), "--parts", str(parts), "--br", "0,0.5,1",
            "--cells", "1-2", "--regular-cells", "2"]
    assert main(args) == 0
    t = zc.load_registry_table(out)
    assert t.sizes["br_fraction"] == 3 and list(t["thickness_cells"].values) == [1, 2]
    assert len(list(parts.glob("*.npz"))) == 3
    mtimes = {p: p.stat().st_mtime for p in parts.glob("*.npz")}
    assert main(args) == 0  # resumes: nothing recomputed
    assert {p: p.stat().st_mtime for p in parts.glob("*.npz")} == mtimes
    # a second pass (own seeds) merged: configurations concatenated, counts averaged
    parts2 = tmp_path / "parts2"
    two = [a if a != str(parts) else f"{parts},{parts2}" for a in args]
    assert main(two) == 0
    t2 = zc.load_registry_table(out)
    assert t2.sizes["config"] == 2 * t.sizes["config"] and t2.attrs["passes"] == 2
    np.testing.assert_array_equal(t2["intensity_configs"].values[..., : t.sizes["config"], :],
                                  t["intensity_configs"].values)
    seeds1, seeds2 = t.attrs["seeds"].split(","), t2.attrs["seeds"].split(",")
    assert seeds2[:3] == seeds1 and all(int(a) - int(b) == 1000 for a, b in zip(seeds2[3:], seeds1))
    assert np.all(t2["x_count"].values == t["x_count"].values)  # same sites, other halide order
    capsys.readouterr()
    assert main(args[:-1] + ["1"]) == 2  # no run reaches the largest thickness
    assert "regular column" in capsys.readouterr().err
    assert main(args + ["--configs", "4"]) != 0
    assert "configs" in capsys.readouterr().err


def test_incident_level_turns_counts_into_fractions():
    """An image in detector counts with the detector scan's incident level gives the same
    thickness and Br fraction as the normalised image; an impossible level is refused."""
    from nanodomains.stem.analyze import analyze_image

    ds = _load("b052")
    img = registry_image(ds, 2, seed=2)
    ref = analyze_image(img, table="registry", background=0.0, thickness_nm=None, n_boot=50).record.domains[0]
    counts = img * 5000.0
    counts.attrs = {k: v for k, v in img.attrs.items() if k != "intensity_unit"}
    got = analyze_image(counts, table="registry", background=0.0, thickness_nm=None, n_boot=50,
                        incident_level=5000.0).record.domains[0]
    assert got.composition.thickness_nm.value == pytest.approx(ref.composition.thickness_nm.value, rel=0.01)
    assert got.br_fraction.value == pytest.approx(ref.br_fraction.value, abs=0.01)
    with pytest.raises(InputError, match="incident beam"):
        analyze_image(counts, table="registry", background=0.0, thickness_nm=None, incident_level=10.0)

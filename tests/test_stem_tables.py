"""Column-intensity tables: power law vs hand values, frozen-phonon multislice guard, fit, I/O."""

from __future__ import annotations

import numpy as np
import pytest

from nanodomains.errors import FileFormatError, FitError, InputError
from nanodomains.stem import multislice as M
from nanodomains.stem import table_build as TB
from nanodomains.stem import tables as T
from nanodomains.stem.simulate import ColumnModel, ProbeParameters
from nanodomains.structure import homogeneous

Z = {"Cs": 55, "Pb": 82, "Br": 35, "I": 53}


def hand_ratios(b, s, n=1.7):
    """PHYSICS.md: I_Cs ~ (1-s) 55^n + s (82^n + <Z_X^n>), I_PbX ~ (1-s)(82^n + <Z_X^n>) + s 55^n, I_X ~ <Z_X^n>."""
    zx = b * Z["Br"] ** n + (1 - b) * Z["I"] ** n
    cs = (1 - s) * Z["Cs"] ** n + s * (Z["Pb"] ** n + zx)
    pbx = (1 - s) * (Z["Pb"] ** n + zx) + s * Z["Cs"] ** n
    return cs / pbx, zx / pbx


@pytest.mark.parametrize("b, s", [(0.0, 0.0), (0.27, 0.88), (0.52, 0.75), (1.0, 0.5), (0.4, 0.1)])
def test_power_law_ratios_equal_hand_values(b, s):
    """Acceptance: power-law column ratios equal hand-computed values within 1 %."""
    table = T.power_law_table([b], [s], [24])
    r = T.column_ratios(table)
    cs_pbx, x_pbx = hand_ratios(b, s)
    assert float(r["cs_pbx"].squeeze()) == pytest.approx(cs_pbx, rel=0.01)
    assert float(r["x_pbx"].squeeze()) == pytest.approx(x_pbx, rel=0.01)
    # absolute scale: sigma50 (Z/50)^n per atom, 24 cells
    x = float(table["intensity"].sel(column="X").squeeze())
    assert x == pytest.approx(24 * 4.55e-3 * (b * 35**1.7 + (1 - b) * 53**1.7) / 50**1.7, rel=1e-9)


def test_physics_md_formula_values():
    # PHYSICS.md quotes the formula Cs/PbX = 0.37 (s = 0) and 1.60 (s = 0.75) for CsPbI3 with n ~ 1.7
    r = T.column_ratios(T.power_law_table([0.0], [0.0, 0.75], [8], ColumnModel(exponent=1.7)))["cs_pbx"]
    assert r.values.ravel() == pytest.approx([0.343, 1.647], abs=0.005)
    r = T.column_ratios(T.power_law_table([0.0], [0.0, 0.75], [8], ColumnModel(exponent=2.0)))["cs_pbx"]
    assert r.values.ravel()[0] == pytest.approx(0.317, abs=0.005)


def test_table_counts_match_nc_columns():
    """Table column contents equal those of project_columns for a homogeneous unshifted NC interior."""
    nc = homogeneous(6.0, "CsPbI3", seed=1)
    cols = nc.project_columns(seed=1)
    n = nc.n_cells[0]
    counts = T.column_counts(0.0, 0.0, n)
    for site, key in (("Cs", "Cs"), ("PbX", "PbX"), ("X", "X")):
        c = cols[cols.site == site]
        # the most common content of that column type (interior columns)
        row = c[["n_cs", "n_pb", "n_br", "n_i"]].mode().iloc[0].to_numpy()
        exp = counts[key]
        # CsX-terminated surfaces add one Cs to Cs-site and one X to PbX-site columns
        extra = {"Cs": [1, 0, 0, 0], "PbX": [0, 0, 0, 1], "X": [0, 0, 0, 0]}[key]
        np.testing.assert_allclose(row, exp + np.array(extra))


def test_crosstalk_table_moves_ratios_towards_one_and_conserves_flux():
    bare = T.power_law_table([0.4], [0.0], [24])
    seen = T.power_law_table([0.4], [0.0], [24], crosstalk_probe=ProbeParameters())
    rb, rs = T.column_ratios(bare), T.column_ratios(seen)
    assert float(rs["cs_pbx"].squeeze()) > float(rb["cs_pbx"].squeeze())
    assert float(rs["x_pbx"].squeeze()) > float(rb["x_pbx"].squeeze())
    # per cell: one Cs, one PbX and two X columns; the total is conserved
    w = np.array([1, 1, 2])
    assert float((seen["intensity"].squeeze() * w).sum()) == pytest.approx(
        float((bare["intensity"].squeeze() * w).sum()), rel=1e-9)
    m = T.crosstalk_matrix(612.3)
    np.testing.assert_allclose(m.sum(axis=0), 1.0, atol=1e-9)
    np.testing.assert_allclose(m, m.T, atol=1e-12)
    assert 0.9 < m[0, 0] < 0.99


PROBE0 = ProbeParameters(source_fwhm_pm=0.0)


def _as_multislice(tab):
    tab.attrs.update({"method": "multislice", "frozen_phonons": 1, "num_configs": 8, "energy_kev": 300.0,
                      "semiangle_mrad": 24.0, "defocus_nm": 0.0, "cs_um": 0.0})
    tab["intensity_err"] = tab["intensity"] * 0.01
    return tab


def test_fit_recovers_known_model():
    """A synthetic 'multislice' table (power law seen through the probe's cross-talk) is fitted back."""
    grid = ([0.0, 0.5, 1.0], [0.0, 0.25, 0.5, 0.75], [8, 16, 24])
    truth = ColumnModel(exponent=2.3, sigma50_a2=2.5e-3, spread_pm_per_nm=12.0)
    tab = _as_multislice(T.power_law_table(*grid, truth, crosstalk_probe=PROBE0))
    fit = T.fit_column_model(tab)
    assert fit.model.exponent == pytest.approx(2.3, rel=1e-4)
    assert fit.model.sigma50_a2 == pytest.approx(2.5e-3, rel=1e-4)
    assert fit.model.spread_pm_per_nm == pytest.approx(12.0, rel=1e-3)
    assert fit.rms_relative < 1e-6 and fit.saturation_err is None
    # without the spread the same data leave systematic residuals
    fit0 = T.fit_column_model(tab, spread=False)
    assert fit0.model.spread_pm_per_nm == 0 and fit0.rms_relative > 0.01
    assert fit0.exponent_err > 0
    # the saturation term on its own
    truth = ColumnModel(exponent=1.9, sigma50_a2=3e-3, saturation_a2=0.4)
    tab = _as_multislice(T.power_law_table(*grid, truth, crosstalk_probe=PROBE0))
    fit = T.fit_column_model(tab, saturation=True, spread=False)
    assert fit.model.saturation_a2 == pytest.approx(0.4, rel=1e-3)
    assert fit.model.exponent == pytest.approx(1.9, rel=1e-4)


def test_fit_refuses_unconstrained_terms_and_power_law_tables():
    tab = _as_multislice(T.power_law_table([0.0, 1.0], [0.0, 0.5], [8, 16], crosstalk_probe=PROBE0))
    with pytest.raises(FitError, match="bound"):
        T.fit_column_model(tab, saturation=True, spread=True)  # no saturation in the data
    with pytest.raises(InputError, match="multislice"):
        T.fit_column_model(T.power_law_table([0.0], [0.0], [8]))


def test_shipped_multislice_table():
    """Acceptance (HAADF 70-190 mrad, 0.034 A, 8 configurations): CsPbI3 s = 0 has Cs/PbX < 0.6 at 5-15 nm."""
    tab = T.default_multislice_table()  # load runs the frozen-phonon guard
    assert tab.attrs["frozen_phonons"] == 1 and tab.attrs["num_configs"] == 8
    assert tab.attrs["detector_inner_mrad"] == 70.0 and tab.attrs["detector_outer_mrad"] == 190.0
    r = T.column_ratios(tab)["cs_pbx"].sel(br_fraction=0.0, shifted_fraction=0.0).values
    assert np.all(r < 0.6)
    # the configuration spread is the frozen-phonon statistics: a few % of the signal
    rel = (tab["intensity_err"] / tab["intensity"]).values
    assert 0.005 < np.median(rel) < 0.15
    # the documented fit
    fit = T.fit_column_model(tab)
    m = T.MULTISLICE_COLUMN_MODEL
    assert fit.model.exponent == pytest.approx(m.exponent, abs=2 * fit.exponent_err)
    assert fit.model.sigma50_a2 == pytest.approx(m.sigma50_a2, abs=2 * fit.sigma50_err)
    assert fit.model.spread_pm_per_nm == pytest.approx(m.spread_pm_per_nm, abs=2 * fit.spread_err)
    pure = T.fit_column_model(tab, spread=False, exponent=1.7)
    assert fit.rms_relative < 0.09 < pure.rms_relative


def test_save_load_roundtrip_and_bad_files(tmp_path):
    tab = T.power_law_table([0.0, 1.0], [0.0, 0.5], [8])
    p = T.save_table(tab, tmp_path / "t.nc")
    back = T.load_table(p)
    np.testing.assert_allclose(back["intensity"].values, tab["intensity"].values)
    assert back.attrs["column_exponent"] == 1.7
    with pytest.raises(FileFormatError, match="not found"):
        T.load_table(tmp_path / "missing.nc")
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"not a netcdf file at all")
    with pytest.raises(FileFormatError, match="netCDF"):
        T.load_table(junk)
    with pytest.raises(InputError, match=".nc"):
        T.save_table(tab, tmp_path / "t.csv")
    other = tab.rename({"intensity": "foo"})
    with pytest.raises(FileFormatError, match="intensity"):
        T.check_table(other)


def _fake_multislice(**attrs):
    tab = T.power_law_table([0.0, 1.0], [0.0, 0.5], [8, 16], ColumnModel(exponent=2.5))
    tab.attrs.update({"method": "multislice", "frozen_phonons": 1, "num_configs": 8})
    tab["intensity_err"] = tab["intensity"] * 0.02
    tab.attrs.update(attrs)
    return tab


def test_guard_rejects_tables_without_frozen_phonons():
    T.check_table(_fake_multislice())  # passes
    with pytest.raises(InputError, match="without frozen phonons"):
        T.check_table(_fake_multislice(frozen_phonons=0))
    with pytest.raises(InputError, match="at least 8"):
        T.check_table(_fake_multislice(num_configs=4))
    zero = _fake_multislice()
    zero["intensity_err"] = zero["intensity"] * 0
    with pytest.raises(InputError, match="zero spread"):
        T.check_table(zero)
    flat = _fake_multislice()  # static-lattice-like contrast: Cs = 0.7 PbX for CsPbI3
    flat["intensity"].loc[dict(br_fraction=0.0, shifted_fraction=0.0, column="Cs")] = (
        0.7 * flat["intensity"].sel(br_fraction=0.0, shifted_fraction=0.0, column="PbX"))
    with pytest.raises(InputError, match="not below 0.6"):
        T.check_table(flat)
    thin = _fake_multislice()  # below 8 cells the contrast test does not apply
    thin = thin.isel(thickness_cells=[0]).assign_coords(thickness_cells=[4])
    thin["intensity"].loc[dict(br_fraction=0.0, shifted_fraction=0.0, column="Cs")] = (
        0.7 * thin["intensity"].sel(br_fraction=0.0, shifted_fraction=0.0, column="PbX"))
    T.check_table(thin)


@pytest.mark.parametrize("kwargs, match", [
    ({"shifted_fraction": [0.3], "thickness_cells": [8]}, "whole cells"),
    ({"scan_points": 5}, "even"),
    ({"br_fraction": [1.5]}, "br_fraction"),
    ({"thickness_cells": [2.5]}, "whole numbers"),
])
def test_multislice_table_bad_input(kwargs, match):
    args = {"br_fraction": [0.0], "shifted_fraction": [0.0], "thickness_cells": [8]}
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        TB.multislice_table(**args)


def test_slab_geometry():
    slab = TB.cspbx3_slab(0.5, 8, 2, tile=2, seed=3)
    sym = np.array(slab.get_chemical_symbols())
    assert (sym == "Cs").sum() == 4 * 8 and (sym == "Pb").sum() == 4 * 8
    assert (sym == "Br").sum() == (sym == "I").sum() == 4 * 12
    # exactly half Br in every halide column
    xy = np.round(slab.positions[:, :2] / (slab.cell.lengths()[0] / 4)).astype(int)
    hal = np.isin(sym, ["Br", "I"])
    for key in {tuple(k) for k in xy[hal]}:
        col = hal & np.all(xy == key, axis=1)
        assert (sym[col] == "Br").sum() * 2 == col.sum()
    # the last two cells are shifted: Pb on the Cs-site column (0, 0)
    a = slab.cell.lengths()[0] / 2
    at00 = np.all(np.abs(slab.positions[:, :2]) < 0.1, axis=1)
    assert sorted(set(sym[at00])) == ["Br", "Cs", "I", "Pb"] or sorted(set(sym[at00])) == ["Cs", "I", "Pb"] \
        or sorted(set(sym[at00])) == ["Br", "Cs", "Pb"]
    assert (sym[at00] == "Pb").sum() == 2 and (sym[at00] == "Cs").sum() == 6
    assert slab.cell.lengths()[2] == pytest.approx(8.5 * a)


# ---------------------------------------------------------------------------- multislice (abTEM)

# A tiny CsPbI3 slab: 2 x 2 cells, 8 cells (5 nm) thick, 0.05 A sampling (detector up to 131 mrad),
# 4 x 4 scan points over the quarter cell, 8 frozen-phonon configurations.
SMALL = dict(br_fraction=[0.0], shifted_fraction=[0.0], thickness_cells=[8], scan_points=4, tile=2,
             progress=False)


def _small_settings(**kw):
    return M.MultisliceSettings(sampling_a=0.05, detector_mrad=(70.0, 125.0), **kw)


def test_multislice_table_frozen_phonon_contrast_and_guard():
    """Acceptance: multislice Cs/PbX < 0.6 for CsPbI3 at s = 0; without frozen phonons the guard fails."""
    table = TB.multislice_table(settings=_small_settings(), **SMALL)  # checked inside
    r_fp = float(T.column_ratios(table)["cs_pbx"].squeeze())
    assert r_fp < 0.6
    assert np.all(table["intensity_err"].values > 0)
    assert table["intensity_configs"].sizes["config"] == 8
    assert table.attrs["num_configs"] == 8 and table.attrs["frozen_phonons"] == 1
    # switching frozen phonons off: the table is refused ...
    with pytest.raises(InputError, match="frozen phonons"):
        TB.multislice_table(settings=_small_settings(frozen_phonons=False), **SMALL)
    # ... because its contrast is the static lattice's, much weaker
    static = TB.multislice_table(settings=_small_settings(frozen_phonons=False), check=False, **SMALL)
    r_static = float(T.column_ratios(static)["cs_pbx"].squeeze())
    assert r_static >= 0.6 and r_static > 1.8 * r_fp
    assert np.all(static["intensity_err"].values == 0)


def test_multislice_settings_validation():
    with pytest.raises(InputError, match="exceeds"):
        M.MultisliceSettings(sampling_a=0.05, detector_mrad=(70.0, 190.0))
    with pytest.raises(InputError, match="at least 8"):
        M.MultisliceSettings(num_configs=4)
    with pytest.raises(InputError, match="rms displacement"):
        M.MultisliceSettings(sigmas_a={"Cs": 0.0, "Pb": 0.1, "I": 0.1, "Br": 0.1})
    s = M.MultisliceSettings()
    assert M.max_detector_angle_mrad(s.sampling_a, 300.0) > 190.0
    assert M.max_detector_angle_mrad(0.05, 300.0) == pytest.approx(131.2, abs=0.5)
    d = s.describe()
    assert d["num_configs"] == 8 and d["sigma_Cs_a"] == 0.20 and d["detector_outer_mrad"] == 190.0


def test_multislice_image_refuses_runs_that_are_too_large():
    nc = homogeneous(15.0, seed=1)
    with pytest.raises(InputError, match="FFT points"):
        M.multislice_image(nc, pixel_size_pm=40.0)


def test_beam_frame_atoms_permutes_axes():
    nc = homogeneous(2.0, "CsPbI3", seed=1)
    atoms = nc.to_atoms(seed=1)
    beam = M.beam_frame_atoms(atoms, "100")
    np.testing.assert_allclose(beam.positions[:, 2], atoms.positions[:, 0])
    np.testing.assert_allclose(beam.positions[:, 0], atoms.positions[:, 1])
    np.testing.assert_allclose(beam.positions[:, 1], atoms.positions[:, 2])


@pytest.mark.slow
def test_multislice_image_of_small_nc_has_truth_and_contrast():
    nc = homogeneous(1.3, "CsPbI3", seed=1)  # 2 x 2 x 2 cells
    a = nc.reference_lattice_pm / 1000
    res = M.multislice_image(nc, region_nm=(0.0, 0.0, a, a), pixel_size_pm=a * 1000 / 8, dose_e_per_a2=None,
                             settings=M.MultisliceSettings(sampling_a=0.06, detector_mrad=(70.0, 105.0)))
    img = res.image.values
    assert img.shape == (8, 8) and res.image.attrs["method"] == "multislice"
    # PbX column at (a/2, a/2) brighter than the Cs column at (0, 0)
    assert img[4, 4] > 1.5 * img[0, 0]
    assert res.truth["method"] == "multislice" and res.truth["cost"]["n_configs"] == 8

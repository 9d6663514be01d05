"""materials.py against hand-computed values and the sources' table end points."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nanodomains import materials as m
from nanodomains.errors import FormulaError, InputError


def test_end_points_match_table():
    assert m.lattice_constant_pm(1.0) == pytest.approx(587.4)
    assert m.lattice_constant_pm(0.0) == pytest.approx(628.9)
    assert m.lattice_constant_pm(1.0, "pseudocubic") == pytest.approx(584.0)
    assert m.bandgap_ev(1.0, "4K") == pytest.approx(2.342)
    assert m.bandgap_ev(0.0, "4K") == pytest.approx(1.723)
    assert m.bandgap_ev(1.0, "RT") == pytest.approx(m.FIT_GAP_RT_BR_EV)
    assert m.reduced_mass(1.0) == pytest.approx(m.FIT_REDUCED_MASS_BR_M0)
    assert m.dielectric_constant(0.0) == pytest.approx(10.0)
    assert m.dielectric_constant(1.0, "inf") == pytest.approx(4.96)
    assert m.ATOMIC_NUMBER == {"Cs": 55, "Pb": 82, "Br": 35, "I": 53}
    assert m.IONIC_RADIUS_PM["Br"] == 196.0 and m.IONIC_RADIUS_PM["I"] == 220.0


def test_seed_domains_lattice_difference_1p5_to_2_percent():
    a_r1, a_r2 = m.lattice_constant_pm(0.27), m.lattice_constant_pm(0.52)
    diff = (a_r1 - a_r2) / a_r2
    assert 0.015 <= diff <= 0.020
    assert a_r1 > a_r2  # R1 (I-rich) has the larger lattice constant


def test_bowing_by_hand():
    # Eg(0.5) = Eg_I + (Eg_Br - Eg_I - b)/2 + b/4; default b = 0 (Yin, Yan & Wei 2014, Cs compounds)
    assert m.DEFAULT_PARAMETERS.bowing_ev == 0.0
    hand = 1.723 + (2.342 - 1.723 - 0.33) * 0.5 + 0.33 * 0.25
    assert m.bandgap_ev(0.5, bowing_ev=0.33) == pytest.approx(hand, abs=1e-12)
    assert m.bandgap_ev(0.5) == pytest.approx((1.723 + 2.342) / 2)
    f = np.linspace(0.05, 0.95, 10)
    assert np.all(m.bandgap_ev(f, bowing_ev=0.33) < m.bandgap_ev(f))


def test_exciton_set_is_consistent():
    # CsPbBr3: E_b held at 32.5 meV, eps = sqrt(Ry mu / E_b) with the fitted mu; a_B = a0 eps / mu
    mu = m.FIT_REDUCED_MASS_BR_M0
    assert 1e3 * m.exciton_binding_ev(1.0) == pytest.approx(32.5, abs=1e-9)
    assert m.bohr_radius_nm(1.0) == pytest.approx(0.0529177 * np.sqrt(13.6057 * mu / 0.0325) / mu, rel=1e-5)
    # CsPbI3 keeps Yang 2017's set (hydrogenic 15.5 meV, a_B 4.6 nm)
    assert 1e3 * m.exciton_binding_ev(0.0) == pytest.approx(15.5, abs=0.1)
    assert m.bohr_radius_nm(0.0) == pytest.approx(4.6, abs=0.05)
    assert m.electron_mass(0.0) == pytest.approx(2 * 0.114)


def test_vectorised_and_inverse():
    f = np.array([0.0, 0.27, 0.52, 1.0])
    a = m.lattice_constant_pm(f)
    assert a.shape == (4,)
    np.testing.assert_allclose(m.br_fraction_from_lattice(a), f, atol=1e-12)


def test_wavelength_energy_round_trip():
    assert m.wavelength_nm(m.energy_ev(620.0)) == pytest.approx(620.0)
    assert m.energy_ev(1239.84198) == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("formula, f", [
    ("CsPbBr1.2I1.8", 0.4), ("CsPbBr3", 1.0), ("CsPbI3", 0.0), ("CsPbI1.8Br1.2", 0.4),
    ("CsPbBr0.81I2.19", 0.27), ("CsPbBr1.56I1.44", 0.52),
])
def test_parse_formula(formula, f):
    assert m.parse_formula(formula) == pytest.approx(f, abs=1e-9)


def test_format_round_trip_two_decimals():
    assert m.format_formula(0.4) == "CsPbBr1.2I1.8"
    assert m.format_formula(m.parse_formula("CsPbBr0.81I2.19")) == "CsPbBr0.81I2.19"
    assert m.format_formula(1.0) == "CsPbBr3" and m.format_formula(0.0) == "CsPbI3"


@given(st.integers(min_value=0, max_value=300))
def test_format_parse_round_trip_property(x100):
    formula = m.format_formula(x100 / 300)
    assert m.parse_formula(formula) == pytest.approx(x100 / 300, abs=0.5e-2 / 3 + 1e-12)


@pytest.mark.parametrize("bad, fragment", [
    ("CsPbCl3", "unknown element"), ("CsSnBr3", "unknown element"), ("CsBr3", "Pb missing"),
    ("PbBr3", "Cs missing"), ("CsPbBr3.5I", "x must lie"), ("CsPbBr1.2I1.2", "expected 3"),
    ("", "non-empty"), ("CsPbBr1.2I1.8x", "cannot parse"), ("Cs2PbBr3", "Cs count"),
])
def test_bad_formulas(bad, fragment):
    with pytest.raises(FormulaError, match=fragment):
        m.parse_formula(bad)


@pytest.mark.parametrize("bad", [-0.1, 1.2, np.nan])
def test_bad_fraction(bad):
    with pytest.raises(InputError):
        m.lattice_constant_pm(bad)
    with pytest.raises(InputError):
        m.bandgap_ev(bad)


def test_bad_options():
    with pytest.raises(InputError, match="temperature"):
        m.bandgap_ev(0.4, temperature="300K")
    with pytest.raises(InputError, match="convention"):
        m.lattice_constant_pm(0.4, convention="tetragonal")
    with pytest.raises(InputError, match="bowing"):
        m.bandgap_ev(0.4, bowing_ev=float("nan"))


def test_inverse_vegard_rejects_unknown_convention():
    with pytest.raises(InputError, match="convention"):
        m.br_fraction_from_lattice(610.0, convention="tetragonal")

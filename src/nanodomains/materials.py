r"""Composition -> properties of CsPbBr\ :sub:`x`\ I\ :sub:`3-x` (f = x/3 = Br fraction).

Every material number of the project lives here, each with its source. Values the
project's physics reference (``shared/PHYSICS.md``) marks *(unchecked)* were collected
from memory of the cited paper and are flagged the same way below; they are defaults,
and every function takes the parameter set as an argument so a user can replace them.

Relations
---------
Vegard's law for the pseudo-cubic lattice constant::

    a(f) = a_I + f (a_Br - a_I)

Bandgap with a bowing parameter b (Noh et al., Nano Lett. 13, 1764 (2013))::

    Eg(f) = Eg_I + (Eg_Br - Eg_I - b) f + b f^2

Reduced mass and dielectric constants are interpolated linearly in f (virtual-crystal
approximation). The exciton is hydrogenic (Wannier-Mott)::

    E_b = Ry mu / eps^2,   Ry = 13.6057 eV
    a_B = a_0 eps / mu,    a_0 = 0.0529177 nm  (Bohr radius; diameter = 2 a_B)

With Yang et al.'s set (mu = 0.126 / 0.114 m0, eps = 7.3 / 10.0) this gives
E_b = 32.2 / 15.5 meV and a_B = 3.07 / 4.64 nm for CsPbBr3 / CsPbI3.

Parameter sets (cite a set as a set)
------------------------------------
* Lattice, convention ``"cubic"`` (default): high-temperature cubic CsPbBr3 5.874 A
  (Moller, Nature 182, 1436 (1958)) and CsPbI3 6.289 A (Trots & Myagkota, J. Phys.
  Chem. Solids 69, 2520 (2008)) (unchecked). Convention ``"pseudocubic"``: the
  orthorhombic room-temperature / 4 K phase expressed as a pseudo-cubic cell,
  ~5.84 A and ~6.20 A (Stoumpos et al., Cryst. Growth Des. 13, 2722 (2013))
  (unchecked). Space groups of CsPbBr3 are debated (Liu et al. 2021): both are
  pseudo-cubic conventions. The cubic set reproduces the seed's ~2 % lattice
  difference between R1 (f = 0.27) and R2 (f = 0.52): 1.7 %.
* Bandgap at ~4 K: 2.342 / 1.723 eV (Yang et al., ACS Energy Lett. 2, 1621 (2017))
  (unchecked); room temperature ~2.36 / ~1.73 eV (Stoumpos 2013; Eperon et al.,
  J. Mater. Chem. A 3, 19688 (2015)) (unchecked).
* Bowing b = 0.33 eV measured for MAPb(I,Br)3 (Noh 2013). For the Cs compounds
  reports are divided between very small and significant bowing (Yin, Yan & Wei,
  JPCL 5, 3625 (2014); Butorin, arXiv 2409.16775): keep it a parameter.
* Exciton set of Yang et al. 2017 (unchecked): mu = 0.126 / 0.114 m0, effective
  dielectric constant 7.3 / 10.0. Carrier masses: equal-mass approximation
  m_e = m_h = 2 mu within the same set, as Protesescu et al. (Nano Lett. 15, 3692
  (2015), SI) use for CsPbI3; their DFT masses for CsPbBr3 (0.15 / 0.14 m0) belong to
  another set and are not mixed in.
* High-frequency dielectric constant 4.96 / 6.32 (Protesescu 2015) (unchecked).
* Ionic radii (Shannon, Acta Cryst. A32, 751 (1976)): Br- 1.96 A and I- 2.20 A
  (CN 6), Pb2+ 1.19 A (CN 6), Cs+ 1.88 A (CN 12).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import constants

from nanodomains.errors import FormulaError, InputError

# Rydberg energy (eV) and Bohr radius (nm) from CODATA via scipy.constants.
RYDBERG_EV: float = constants.physical_constants["Rydberg constant times hc in eV"][0]
BOHR_RADIUS_NM: float = constants.physical_constants["Bohr radius"][0] * 1e9
HC_EV_NM: float = constants.h * constants.c / constants.e * 1e9  # photon energy x wavelength
KB_EV: float = constants.k / constants.e  # Boltzmann constant, eV/K

ATOMIC_NUMBER: dict[str, int] = {"Cs": 55, "Pb": 82, "Br": 35, "I": 53}

#: Shannon (1976) effective ionic radii in pm, with the coordination number used.
IONIC_RADIUS_PM: dict[str, float] = {"Cs": 188.0, "Pb": 119.0, "Br": 196.0, "I": 220.0}
IONIC_RADIUS_CN: dict[str, int] = {"Cs": 12, "Pb": 6, "Br": 6, "I": 6}

#: Bulk halide-vacancy hop barriers (eV) of the training set of the ReaxFF IBrPbCs
#: force field: DFT and ReaxFF values, Pols et al., J. Phys. Chem. C 128, 4111 (2024).
VACANCY_BARRIERS_EV: dict[str, dict[str, float]] = {"dft": {"Br": 0.195, "I": 0.21},
                                                     "reaxff": {"Br": 0.24, "I": 0.26}}

#: Pseudo-cubic cell edges of common ABO3 perovskites, pm: LaAlO3 3.79 A (small end) to
#: the PbTiO3 c axis 4.152 A (Glazer & Mabud, Acta Cryst. B34, 1065 (1978)); SrTiO3
#: 3.905, SrRuO3 3.93, BaTiO3 c 4.036 lie inside.
ABO3_LATTICE_PM: tuple[float, float] = (379.0, 415.2)

#: Pseudo-cubic perovskite cell edges searched by default when finding a lattice, pm:
#: ABO3 oxides ~380-420 pm up to CsPbI3 6.29 A with margin (PHYSICS.md).
PEROVSKITE_LATTICE_PM: tuple[float, float] = (350.0, 700.0)

#: Exciton binding energy of CsPbBr3 (eV): 33 meV (Yang 2017, unchecked) and 32.5 meV
#: (high-field magneto-optics, arXiv 2307.07035, as quoted in PHYSICS.md); the CsPbBr3
#: end of the exciton set keeps it fixed and takes mu from the NC size series.
EXCITON_BINDING_BR_EV: float = 0.0325

#: Least-squares fit of the level model to the room-temperature NC PL peaks of the
#: literature table (``nanodomains.optics.literature.fit_level_parameters``; rerun with
#: ``python -m nanodomains.optics.literature``). Values and 1-sigma uncertainties:
FIT_REDUCED_MASS_BR_M0: float = 0.172
FIT_REDUCED_MASS_BR_M0_SD: float = 0.061
FIT_GAP_RT_BR_EV: float = 2.422
FIT_GAP_RT_BR_EV_SD: float = 0.029
FIT_GAP_RT_I_EV: float = 1.744
FIT_GAP_RT_I_EV_SD: float = 0.032

#: Exciton set of CsPbCl3, used only to calibrate the exchange constant on the 8 nm
#: CsPbCl3 NCs of doi 10.1021/acsnano.3c00772: mu = 0.202 m0, eps = 6.56 (E_b = 64 meV),
#: Baranowski & Plochocka, Adv. Energy Mater. 10, 1903659 (2020) (unchecked).
CSPBCL3_EXCITON: dict = {"reduced_mass_m0": 0.202, "dielectric": 6.56,
                         "source": "Baranowski & Plochocka 2020 Adv. Energy Mater. 10, 1903659 (unchecked)"}

Temperature = Literal["4K", "RT"]
LatticeConvention = Literal["cubic", "pseudocubic"]


@dataclass(frozen=True)
class EndPoints:
    """A property at the two end members CsPbBr3 (``br``) and CsPbI3 (``i``)."""

    br: float
    i: float
    source: str

    def linear(self, br_fraction):
        """Linear interpolation (Vegard / virtual crystal) at Br fraction ``f``."""
        return self.i + np.asarray(br_fraction, dtype=float) * (self.br - self.i)


@dataclass(frozen=True)
class MaterialParameters:
    """One consistent parameter set; replace fields with :func:`dataclasses.replace`."""

    lattice_cubic_pm: EndPoints = EndPoints(
        587.4, 628.9, "Moller 1958 Nature 182, 1436; Trots 2008 JPCS 69, 2520 (unchecked)")
    lattice_pseudocubic_pm: EndPoints = EndPoints(
        584.0, 620.0, "Stoumpos 2013 Cryst. Growth Des. 13, 2722 (unchecked)")
    bandgap_4k_ev: EndPoints = EndPoints(
        2.342, 1.723, "Yang 2017 ACS Energy Lett. 2, 1621 (unchecked)")
    bandgap_rt_ev: EndPoints = EndPoints(
        FIT_GAP_RT_BR_EV, FIT_GAP_RT_I_EV,
        "RT band-edge emission energies fitted to RT NC PL (optics.literature); "
        "compare 2.36 / 1.73 eV, Stoumpos 2013; Eperon 2015 (unchecked)")
    bowing_ev: float = 0.0  # Yin, Yan & Wei 2014 JPCL 5, 3625: negligible for CsPb(I,Br)3
    reduced_mass_m0: EndPoints = EndPoints(
        FIT_REDUCED_MASS_BR_M0, 0.114,
        "CsPbBr3: least-squares fit to RT NC PL (optics.literature); CsPbI3: Yang 2017 (unchecked)")
    dielectric_exciton: EndPoints = EndPoints(
        math.sqrt(RYDBERG_EV * FIT_REDUCED_MASS_BR_M0 / EXCITON_BINDING_BR_EV), 10.0,
        "CsPbBr3: from E_b = 32.5 meV and the fitted mu; CsPbI3: Yang 2017 (unchecked)")
    dielectric_inf: EndPoints = EndPoints(
        4.96, 6.32, "Protesescu 2015 Nano Lett. 15, 3692 (unchecked)")
    sources: dict[str, str] = field(default_factory=lambda: {
        "bowing_ev": "Yin, Yan & Wei 2014 JPCL 5, 3625 (CsPb(I,Br)3: negligible or negative bowing); "
                     "0.33 eV of MAPb(I,Br)3 (Noh 2013) is not used for the Cs compounds",
        "carrier_masses": "m_e = m_h = 2 mu (equal-mass approximation, Protesescu 2015 SI)",
        "exciton_br": "E_b = 32.5 meV (Yang 2017: 33 meV; arXiv 2307.07035: 32.5 meV, both "
                      "magneto-optics), mu fitted, eps = sqrt(Ry mu / E_b)",
        "ionic_radii": "Shannon 1976 Acta Cryst. A32, 751",
    })


DEFAULT_PARAMETERS = MaterialParameters()


# ---- validation -------------------------------------------------------------

def _check_fraction(br_fraction, name: str = "br_fraction") -> np.ndarray:
    f = np.asarray(br_fraction, dtype=float)
    if not np.all(np.isfinite(f)):
        raise InputError(f"{name} must be finite, got {br_fraction!r}")
    if np.any((f < 0) | (f > 1)):
        raise InputError(f"{name} must lie in [0, 1] (Br fraction x/3), got {br_fraction!r}")
    return f


def _scalar_or_array(a: np.ndarray):
    return float(a) if np.ndim(a) == 0 else a


# ---- properties -------------------------------------------------------------

def _lattice_ends(convention: str, params: MaterialParameters) -> EndPoints:
    if convention == "cubic":
        return params.lattice_cubic_pm
    if convention == "pseudocubic":
        return params.lattice_pseudocubic_pm
    raise InputError(f"lattice convention must be 'cubic' or 'pseudocubic', got {convention!r}")


def lattice_constant_pm(br_fraction, convention: LatticeConvention = "cubic",
                        params: MaterialParameters = DEFAULT_PARAMETERS):
    """Pseudo-cubic lattice constant in pm by Vegard's law.

    Parameters
    ----------
    br_fraction : float or array
        Br fraction f = x/3 in [0, 1].
    convention : {"cubic", "pseudocubic"}
        ``"cubic"``: high-temperature cubic end members (default; see module docstring).
        ``"pseudocubic"``: orthorhombic RT / 4 K phase as a pseudo-cubic cell.
    """
    f = _check_fraction(br_fraction)
    return _scalar_or_array(_lattice_ends(convention, params).linear(f))


def br_fraction_from_lattice(lattice_pm, convention: LatticeConvention = "cubic",
                             params: MaterialParameters = DEFAULT_PARAMETERS):
    """Invert Vegard's law: Br fraction from a measured lattice constant (not clipped)."""
    ends = _lattice_ends(convention, params)
    a = np.asarray(lattice_pm, dtype=float)
    return _scalar_or_array((a - ends.i) / (ends.br - ends.i))


def bandgap_ev(br_fraction, temperature: Temperature = "4K", bowing_ev: float | None = None,
               params: MaterialParameters = DEFAULT_PARAMETERS):
    """Bulk bandgap in eV with quadratic bowing.

    ``Eg(f) = Eg_I + (Eg_Br - Eg_I - b) f + b f^2``; ``bowing_ev`` defaults to
    ``params.bowing_ev`` (0 eV, Yin, Yan & Wei 2014; see :class:`MaterialParameters`).
    """
    f = _check_fraction(br_fraction)
    if temperature == "4K":
        ends = params.bandgap_4k_ev
    elif temperature == "RT":
        ends = params.bandgap_rt_ev
    else:
        raise InputError(f"temperature must be '4K' or 'RT', got {temperature!r}")
    b = params.bowing_ev if bowing_ev is None else float(bowing_ev)
    if not math.isfinite(b) or abs(b) > 2.0:
        raise InputError(f"bowing_ev must be finite and |b| <= 2 eV, got {bowing_ev!r}")
    eg = ends.i + (ends.br - ends.i - b) * f + b * f**2
    return _scalar_or_array(eg)


def reduced_mass(br_fraction, params: MaterialParameters = DEFAULT_PARAMETERS):
    """Exciton reduced mass in units of m0 (Yang 2017 set, linear in f)."""
    return _scalar_or_array(params.reduced_mass_m0.linear(_check_fraction(br_fraction)))


def electron_mass(br_fraction, params: MaterialParameters = DEFAULT_PARAMETERS):
    """Electron effective mass in m0: equal-mass approximation m_e = 2 mu."""
    return _scalar_or_array(2.0 * np.asarray(reduced_mass(br_fraction, params)))


def hole_mass(br_fraction, params: MaterialParameters = DEFAULT_PARAMETERS):
    """Hole effective mass in m0: equal-mass approximation m_h = 2 mu."""
    return electron_mass(br_fraction, params)


def dielectric_constant(br_fraction, kind: Literal["exciton", "inf"] = "exciton",
                        params: MaterialParameters = DEFAULT_PARAMETERS):
    """Dielectric constant: ``"exciton"`` (effective, Yang 2017) or ``"inf"`` (Protesescu 2015)."""
    f = _check_fraction(br_fraction)
    if kind == "exciton":
        return _scalar_or_array(params.dielectric_exciton.linear(f))
    if kind == "inf":
        return _scalar_or_array(params.dielectric_inf.linear(f))
    raise InputError(f"dielectric kind must be 'exciton' or 'inf', got {kind!r}")


def exciton_binding_ev(br_fraction, params: MaterialParameters = DEFAULT_PARAMETERS):
    """Hydrogenic exciton binding energy ``Ry mu / eps^2`` in eV."""
    mu = np.asarray(reduced_mass(br_fraction, params))
    eps = np.asarray(dielectric_constant(br_fraction, "exciton", params))
    return _scalar_or_array(RYDBERG_EV * mu / eps**2)


def bohr_radius_nm(br_fraction, params: MaterialParameters = DEFAULT_PARAMETERS):
    """Hydrogenic exciton Bohr radius ``a0 eps / mu`` in nm (the diameter is twice this)."""
    mu = np.asarray(reduced_mass(br_fraction, params))
    eps = np.asarray(dielectric_constant(br_fraction, "exciton", params))
    return _scalar_or_array(BOHR_RADIUS_NM * eps / mu)


def mean_halide_z(br_fraction, power: float = 1.0):
    """Mean of Z^n over the halide site: ``f 35^n + (1 - f) 53^n``."""
    f = _check_fraction(br_fraction)
    return _scalar_or_array(f * ATOMIC_NUMBER["Br"] ** power + (1 - f) * ATOMIC_NUMBER["I"] ** power)


def tolerance_factor(br_fraction):
    """Goldschmidt tolerance factor with Shannon radii, halide radius linear in f."""
    f = _check_fraction(br_fraction)
    r_x = IONIC_RADIUS_PM["I"] + f * (IONIC_RADIUS_PM["Br"] - IONIC_RADIUS_PM["I"])
    t = (IONIC_RADIUS_PM["Cs"] + r_x) / (math.sqrt(2) * (IONIC_RADIUS_PM["Pb"] + r_x))
    return _scalar_or_array(t)


def wavelength_nm(energy_ev):
    """Photon wavelength (nm, vacuum) from energy in eV: ``h c / E``."""
    e = np.asarray(energy_ev, dtype=float)
    if np.any(e <= 0):
        raise InputError(f"photon energy must be > 0 eV, got {energy_ev!r}")
    return _scalar_or_array(HC_EV_NM / e)


def energy_ev(wavelength_nm_):
    """Photon energy (eV) from vacuum wavelength in nm."""
    w = np.asarray(wavelength_nm_, dtype=float)
    if np.any(w <= 0):
        raise InputError(f"wavelength must be > 0 nm, got {wavelength_nm_!r}")
    return _scalar_or_array(HC_EV_NM / w)



def properties(br_fraction: float, temperature: Temperature = "4K",
               params: MaterialParameters = DEFAULT_PARAMETERS) -> dict[str, float]:
    """All scalar properties at one composition, for tables and reports."""
    f = float(_check_fraction(br_fraction))
    return {
        "br_fraction": f,
        "formula": format_formula(f),
        "lattice_pm": lattice_constant_pm(f, params=params),
        "bandgap_ev": bandgap_ev(f, temperature, params=params),
        "reduced_mass_m0": reduced_mass(f, params),
        "dielectric_exciton": dielectric_constant(f, "exciton", params),
        "exciton_binding_mev": 1e3 * exciton_binding_ev(f, params),
        "bohr_radius_nm": bohr_radius_nm(f, params),
    }


# ---- formulas ---------------------------------------------------------------

_TOKEN = re.compile(r"([A-Z][a-z]?)(\d+(?:\.\d+)?|\.\d+)?")
_SUM_TOL = 0.011  # two-decimal rounding of x and 3 - x


def parse_formula(formula: str) -> float:
    """Br fraction f = x/3 of ``"CsPbBr{x}I{3-x}"`` (order of halides free).

    Accepts ``CsPbBr3``, ``CsPbI3``, ``CsPbBr1.2I1.8``, ``CsPbI1.8Br1.2``. Raises
    :class:`FormulaError` for unknown elements, a missing Cs or Pb, stoichiometry
    other than 1:1:3, or x outside [0, 3].
    """
    if not isinstance(formula, str) or not formula.strip():
        raise FormulaError(f"formula must be a non-empty string, got {formula!r}")
    text = formula.strip().replace(" ", "")
    counts: dict[str, float] = {}
    pos = 0
    for match in _TOKEN.finditer(text):
        if match.start() != pos:
            break
        element, number = match.group(1), match.group(2)
        if element not in ATOMIC_NUMBER:
            raise FormulaError(
                f"formula {formula!r}: unknown element {element!r} (expected Cs, Pb, Br, I)")
        if element in counts:
            raise FormulaError(f"formula {formula!r}: element {element} appears twice")
        counts[element] = float(number) if number else 1.0
        pos = match.end()
    if pos != len(text):
        raise FormulaError(
            f"formula {formula!r}: cannot parse {text[pos:]!r} (expected e.g. CsPbBr1.2I1.8)")
    for cation in ("Cs", "Pb"):
        if cation not in counts:
            raise FormulaError(f"formula {formula!r}: {cation} missing (expected CsPbBr_xI_(3-x))")
        if abs(counts[cation] - 1.0) > 1e-9:
            raise FormulaError(f"formula {formula!r}: {cation} count must be 1, got {counts[cation]:g}")
    x_br, x_i = counts.get("Br", 0.0), counts.get("I", 0.0)
    if "Br" not in counts and "I" not in counts:
        raise FormulaError(f"formula {formula!r}: no halide (expected Br and/or I)")
    if x_br < 0 or x_br > 3 or x_i < 0 or x_i > 3:
        raise FormulaError(f"formula {formula!r}: x must lie in [0, 3]")
    if abs(x_br + x_i - 3.0) > _SUM_TOL:
        raise FormulaError(
            f"formula {formula!r}: Br + I = {x_br + x_i:g}, expected 3 (CsPbX3 stoichiometry)")
    return x_br / (x_br + x_i)


def format_formula(br_fraction: float, decimals: int = 2) -> str:
    """``"CsPbBr{x}I{3-x}"`` with x = 3 f rounded to ``decimals`` (trailing zeros dropped)."""
    f = float(_check_fraction(br_fraction))
    x = round(3.0 * f, decimals)
    y = round(3.0 - x, decimals)

    def num(v: float) -> str:
        s = f"{v:.{decimals}f}".rstrip("0").rstrip(".")
        return "" if s == "1" else s

    if x <= 0:
        return "CsPbI3"
    if y <= 0:
        return "CsPbBr3"
    return f"CsPbBr{num(x)}I{num(y)}"


# Raman lines of common substrates (first-order Stokes shift, cm-1): a PL movie taken on
# such a substrate shows them at a fixed shift from the laser, in every frame, and they
# must not be taken for emitters (spectroscopy.screening).
RAMAN_SHIFTS_CM1: dict[str, float] = {
    # crystalline Si, zone-centre optical phonon: 520.7 cm-1 at room temperature, the usual
    # spectrometer calibration line; it hardens to ~524 cm-1 near 4 K (Hart, Aggarwal &
    # Lax, Phys. Rev. B 1, 638 (1970)), inside the matching tolerance at any resolution
    # coarser than 4 cm-1
    "Si": 520.7,
}

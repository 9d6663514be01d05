r"""Energy levels of one nanodomain: exciton, bright fine structure, trion, lifetime.

A domain is a cuboid of edges ``L = (L1, L2, L3)`` (nm) and Br fraction ``f``. All
material numbers (gap, bowing, masses, dielectric constants, hydrogenic E_b and a_B)
come from :mod:`nanodomains.materials`; the optics-specific numbers below live in
:class:`LevelParameters`, each with its source, and the ones calibrated on the seed
(Liu, Zhu, Pols et al., Nano Lett. 23, 10089 (2023)) say so.

Exciton energy (intermediate confinement, variational)
------------------------------------------------------
Effective-mass Hamiltonian of an electron-hole pair in a box with infinite walls::

    H = -hbar^2/(2 m_e) lap_e - hbar^2/(2 m_h) lap_h - e^2 / (4 pi eps0 eps |r_e - r_h|)

with ``m_e = m_h = 2 mu`` and ``eps`` the exciton dielectric constant (materials.py,
Yang et al. 2017 set). Trial function (Kayanuma, PRB 38, 9797 (1988), "model I",
written for a cuboid)::

    Psi = phi(r_e) phi(r_h) exp(-beta |r_e - r_h|),
    phi(r) = prod_i sqrt(2/L_i) sin(pi x_i / L_i).

It obeys the boundary conditions exactly, so the energy is a variational upper bound
of the model. Because ``phi`` is an eigenfunction of the Laplacian (``k^2 = sum_i
pi^2/L_i^2``) the kinetic energy is exactly ``hbar^2 (k^2 + beta^2) / (2 mu)``, and
the Coulomb term needs only the distribution of ``r = r_e - r_h``,
``C(r) = prod_i c_i(x_i)`` with the closed-form autocorrelation of ``sin^2``::

    c(x) = [ (L-|x|)(1 + cos(2 pi x/L)/2) + (3L/4pi) sin(2 pi |x|/L) ] / L^2,  |x| < L

In units of the hydrogenic ``E_b = Ry mu/eps^2`` and ``a_B = a_0 eps/mu``::

    E(beta)/E_b = (k a_B)^2 + (beta a_B)^2 - 2 a_B <exp(-2 beta r)/r>_C / <exp(-2 beta r)>_C

minimised over ``beta`` (3-D integrals by Gauss-Legendre quadrature in spherical
coordinates over the octants, radial nodes clustered at r = 0; converged to 1e-9 E_b).
Limits: ``beta -> 0`` for ``L << a_B`` (strong confinement: ``hbar^2 k^2/2mu`` minus
the first-order Coulomb term, ~2.9 e^2/(4 pi eps0 eps L) for a cube) and, for ``L >>
a_B``, ``beta -> 1/a_B`` and ``E -> -E_b + (4/3) hbar^2 k^2/(2M)`` with ``M = 4 mu``
(the centre of mass sees the density phi^4, whose kinetic energy is 4/3 of the exact
sine's): the ansatz over-confines large domains by a third of their (small)
centre-of-mass energy and is exact in the strong limit (both checked in the tests).

Band nonparabolicity (two-band Kane model, as used for CsPbX3 NC size series by
Brennan et al., JACS 139, 12201 (2017) and Sercel et al., J. Chem. Phys. 151, 234106
(2019)) is applied to each carrier's kinetic energy ``eps_c`` (half of the total for
equal masses)::

    E_c (1 + E_c/E_g) = eps_c   ->   E_c = (E_g/2) (sqrt(1 + 4 eps_c/E_g) - 1)

Energy of the exciton::

    E_X = E_g(f, T) + E_kin(beta*) - E_coul(beta*) + dE_diel

reported as ``confinement_ev = E_kin(0)`` (uncorrelated pair), ``binding_ev =
E_kin(0) - E_kin(beta*) + E_coul(beta*)`` (size-dependent binding: tends to E_b for
large domains and to the first-order Coulomb energy for small ones).

Dielectric confinement (Brus, J. Chem. Phys. 80, 4403 (1984)): for a sphere of equal
volume (radius R) in a medium ``eps_out``, the first-order polarisation energy of the
pair (the n = 0 terms of the self and cross energies cancel)::

    dE_diel = s e^2/(4 pi eps0 eps R) sum_{n>=1} a_n <(r/R)^{2n}>,
    a_n = (e_r - 1)(n + 1)/(n e_r + n + 1),  e_r = eps/eps_out,

with ``<...>`` over the sphere ground state density ``2 sin^2(pi x)`` and ``s`` the
fraction of the domain surface on the NC surface (a domain boundary between two
perovskite domains has no dielectric step). ``eps_out = 2.1`` by default (oleate /
oleylamine ligands, toluene 2.4, hexane 1.9) (illustrative).

Validation (tests/test_optics_levels.py, RT gaps, default parameters): CsPbBr3 cubes
of 4 / 12 nm at 454 / 523 nm against ~460 / ~512 nm, CsPbI3 10 nm at 696 nm against
685-690 nm for 8-12 nm NCs (Protesescu et al., Nano Lett. 15, 3692 (2015)). The
seed's CsPbBr1.2I1.8 NCs (10-20 nm) emit near 620 nm in solution; with the default
bowing b = 0.33 eV (Noh 2013, MAPb(I,Br)3) the model puts them at ~650 nm, with the
small bowing of CsPb(I,Br)3 (b <= 0.1 eV, Yin, Yan & Wei, JPCL 5, 3625 (2014)) within
15 nm of 620 nm: pass ``bowing_ev`` to move it.

Bright-exciton fine structure
-----------------------------
The bright triplet has transition dipoles along the crystal axes, taken along the NC
edges. Energies ``E_i = E_X + F(L) v_i`` (i = x, y, z) with::

    F(L) = F_ref (L_ref / L_eff)^p,    L_eff^-2 = (1/3) sum_i L_i^-2
    v = v_sym + kappa * 3 (N - 1/3)

``p = 2`` (FSS scales as L^-2..L^-3: Tamarat et al., Nat. Commun. 14, 229 (2023)),
``v_sym`` the crystal-field pattern (cubic: 0; tetragonal: (-1/3, -1/3, 2/3), one gap
of F; orthorhombic: (-(1-r), 0, 1+r) minus its mean, two gaps with mean F), ``N_i``
the depolarisation factors of the ellipsoid with semi-axes ~ L_i (long-range
exchange grows with the depolarisation along the dipole, so the line polarised along
a long axis lies lowest), ``kappa = 1`` (illustrative: no measurement calibrates it).
Calibrated: ``F_ref = 677 ueV`` (the seed's Fig. 4 doublet) at ``L_ref = 14.1 nm``,
the geometric mean of the seed's 10-20 nm NCs; the seed's triplet (878 ueV, mean of
the two gaps) then corresponds to L = 12.4 nm, and 10-20 nm NCs span 0.34-1.35 meV,
inside the 0.2-1.5 meV measured on single NCs (Becker et al., Nature 553, 189 (2018);
Fu et al., Nano Lett. 17, 2895 (2017); Yin et al., PRL 119, 026401 (2017)).

Intensities for a collection geometry: an objective of numerical aperture NA
(half-angle ``alpha``, vacuum) collects from a dipole at angle ``theta`` to the
optical axis (lab z) the fraction::

    eta(theta) = eta_par cos^2 theta + eta_perp sin^2 theta,
    eta_par = (2 - 3 cos a + cos^3 a)/4,   eta_perp = (4 - 3 cos a - cos^3 a)/8

(radiation pattern of a dipole in a homogeneous medium; the substrate interface is
neglected). Each line is linearly polarised along its dipole projected on the image
plane. Lines below ``visibility`` of the brightest are not seen; lines closer than
``merge_uev`` merge (intensity-weighted), which decides singlet / doublet / triplet.

Trion and lifetime
------------------
X* is one line red-shifted by ``E_T(L) = A + B/L_eff^2``, A = -10 meV, B = -780 meV
nm^2 (fit from an unidentified source, PHYSICS.md; trion binding ~10-20 meV: Fu et al.
2017 (unchecked)). Radiative lifetime of the bright exciton, with the oscillator
strength enhancement of the variational state ``K = |int Psi(r, r) dr|^2 / <Psi|Psi>
= 1 / <exp(-2 beta r)>_C`` and the rate proportional to the photon energy (fixed Kane
energy E_p)::

    tau = tau_ref (K_ref / K) (E_ref / E_X)

Calibrated: ``tau_ref = 0.60 ns`` for an 8 nm cube of CsPbBr1.2I1.8 at 4 K, the mean
of the seed's S14 lifetimes 0.54 and 0.66 ns; 4 K lifetimes of 0.1-1 ns are reported
for CsPbX3 NCs (Raino et al., ACS Nano 10, 2485 (2016) (unchecked)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

import numpy as np
from numpy.polynomial.legendre import leggauss
from scipy import constants, integrate, optimize

from nanodomains import materials
from nanodomains.errors import InputError, require_finite, require_in_range, require_positive

__all__ = [
    "LevelParameters",
    "DEFAULT_LEVEL_PARAMETERS",
    "ExcitonState",
    "FineStructure",
    "DomainLevels",
    "exciton_state",
    "exciton_energy_ev",
    "fine_structure",
    "fine_structure_from_fss",
    "fss_scale_uev",
    "trion_shift_ev",
    "radiative_lifetime_ns",
    "domain_levels",
    "collection_efficiency",
    "depolarization_factors",
    "effective_size_nm",
]

#: e^2 / (4 pi eps0) in eV nm.
COULOMB_EV_NM: float = constants.e / (4 * math.pi * constants.epsilon_0) * 1e9

Symmetry = Literal["cubic", "tetragonal", "orthorhombic"]


@dataclass(frozen=True)
class LevelParameters:
    """Optics-specific parameters of one domain (see the module docstring for sources).

    Attributes
    ----------
    kane : bool
        Apply two-band Kane nonparabolicity to the carriers' kinetic energies.
    eps_out : float
        Dielectric constant of the NC surroundings (ligands/solvent/matrix), illustrative 2.1.
    fss_ref_uev, fss_ref_size_nm, fss_exponent : float
        FSS scale ``F(L) = fss_ref_uev (fss_ref_size_nm / L_eff)^fss_exponent``;
        677 ueV at 14.1 nm calibrated on the seed, exponent 2 (Tamarat 2023).
    fss_shape_coeff : float
        ``kappa``, weight of the shape (depolarisation) anisotropy (illustrative).
    fss_asymmetry : float
        ``r`` of the orthorhombic pattern: gaps ``(1 - r) F`` and ``(1 + r) F``.
    symmetry : {"cubic", "tetragonal", "orthorhombic"}
        Crystal-field pattern of the bright triplet.
    collection_na : float
        Numerical aperture of the collection objective (vacuum), 0.7.
    visibility : float
        Lines below this fraction of the brightest line are not seen.
    merge_uev : float
        Lines closer than this merge into one (unresolvable).
    trion_a_mev, trion_b_mev_nm2 : float
        Trion shift ``A + B / L_eff^2`` (meV), unidentified-source fit.
    lifetime_ref_ns, lifetime_ref_br_fraction, lifetime_ref_size_nm : float
        Calibration point of the radiative lifetime (seed S14).
    """

    kane: bool = True
    eps_out: float = 2.1
    fss_ref_uev: float = 677.0
    fss_ref_size_nm: float = math.sqrt(10.0 * 20.0)
    fss_exponent: float = 2.0
    fss_shape_coeff: float = 1.0
    fss_asymmetry: float = 0.1
    symmetry: Symmetry = "orthorhombic"
    collection_na: float = 0.7
    visibility: float = 0.05
    merge_uev: float = 60.0
    trion_a_mev: float = -10.0
    trion_b_mev_nm2: float = -780.0
    lifetime_ref_ns: float = 0.60
    lifetime_ref_br_fraction: float = 0.4
    lifetime_ref_size_nm: float = 8.0

    def __post_init__(self) -> None:
        for name in ("eps_out", "fss_ref_size_nm", "collection_na", "lifetime_ref_ns",
                     "lifetime_ref_size_nm"):
            require_positive(name, getattr(self, name))
        for name in ("fss_ref_uev", "fss_exponent", "fss_shape_coeff", "merge_uev", "visibility"):
            require_in_range(name, getattr(self, name))
        require_finite("trion_a_mev", self.trion_a_mev)
        require_finite("trion_b_mev_nm2", self.trion_b_mev_nm2)
        require_in_range("fss_asymmetry", self.fss_asymmetry, 0.0, 1.0, hi_open=True)
        require_in_range("collection_na (objective in vacuum)", self.collection_na, 0.0, 1.0, hi_open=True)
        if self.symmetry not in ("cubic", "tetragonal", "orthorhombic"):
            raise InputError(f"symmetry must be cubic, tetragonal or orthorhombic, got {self.symmetry!r}")


DEFAULT_LEVEL_PARAMETERS = LevelParameters()

#: Where each default of :class:`LevelParameters` comes from.
LEVEL_SOURCES: dict[str, str] = {
    "fss": "calibrated: 677 ueV (seed Fig. 4 doublet) at 14.1 nm; exponent 2, Tamarat 2023",
    "trion": "A = -10 meV, B = -780 meV nm^2, unidentified source (PHYSICS.md)",
    "lifetime": "calibrated: 0.60 ns = mean of the seed's S14 lifetimes 0.54/0.66 ns",
    "eps_out": "illustrative 2.1 (ligand shell)",
    "fss_shape_coeff": "illustrative 1.0 (no measurement calibrates it)",
}


# ---- input checks ---------------------------------------------------------------

def _edges(edges_nm) -> np.ndarray:
    e = np.asarray(edges_nm, dtype=float)
    if e.ndim == 0:
        e = np.full(3, float(e))
    if e.shape != (3,):
        raise InputError(f"edges_nm must be one size or three edge lengths (nm), got {edges_nm!r}")
    if not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise InputError(f"domain edge lengths must be finite and > 0 nm, got {edges_nm!r}")
    if np.any(e > 500):
        raise InputError(f"domain edge lengths above 500 nm are not nanodomains, got {edges_nm!r}")
    return e


def effective_size_nm(edges_nm) -> float:
    """Confinement-weighted size ``L_eff = (mean_i L_i^-2)^(-1/2)`` in nm (cube: its edge)."""
    e = _edges(edges_nm)
    return float(1.0 / math.sqrt(np.mean(1.0 / e**2)))


# ---- variational exciton ---------------------------------------------------------------

def _sin2_autocorr(x: np.ndarray, length: float) -> np.ndarray:
    """Autocorrelation of the normalised density (2/L) sin^2(pi u/L) at shift x."""
    t = np.abs(x)
    ph = 2 * np.pi * t / length
    val = ((length - t) * (1 + 0.5 * np.cos(ph)) + 0.75 * length / np.pi * np.sin(ph)) / length**2
    return np.where(t < length, val, 0.0)


@lru_cache(maxsize=64)
def _angular_nodes(n_ang: int):
    x, w = leggauss(n_ang)
    th = (x + 1) * np.pi / 4
    wt = w * np.pi / 4
    t, p = np.meshgrid(th, th, indexing="ij")
    weight = np.outer(wt, wt) * np.sin(t)
    direc = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], axis=-1)
    return direc, weight


@lru_cache(maxsize=4096)
def _pair_quadrature(l_ab: tuple[float, float, float], n_ang: int = 16, n_rad: int = 32):
    """Nodes r (a_B units) and weights w C(r) d^3r over the 8 octants of |x_i| < L_i."""
    direc, weight = _angular_nodes(n_ang)
    lengths = np.array(l_ab)
    with np.errstate(divide="ignore"):
        rmax = np.min(lengths / np.maximum(direc, 1e-300), axis=-1)
    xr, wr = leggauss(n_rad)
    u = (xr + 1) / 2
    r = rmax[..., None] * u**2                        # nodes clustered at r = 0
    dr = rmax[..., None] * 2 * u * (wr / 2)
    w = 8 * weight[..., None] * dr * r**2
    c = np.ones_like(r)
    for i in range(3):
        c = c * _sin2_autocorr(r * direc[..., i, None], lengths[i])
    return r.ravel(), (w * c).ravel()


def _kane(kin_ev: float, gap_ev: float | None) -> float:
    """Two-band Kane kinetic energy of the pair (equal masses), eV."""
    if gap_ev is None:
        return kin_ev
    eps_c = kin_ev / 2
    return gap_ev * (math.sqrt(1 + 4 * eps_c / gap_ev) - 1)


@lru_cache(maxsize=4096)
def _variational(l_ab: tuple[float, float, float], eb_ev: float, kane_gap_ev: float | None):
    """Minimise the trial energy; returns (E_kin(0), E_kin*, E_coul*, beta* [1/a_B], K)."""
    r, wc = _pair_quadrature(l_ab)
    k2 = float(np.pi**2 * np.sum(1.0 / np.asarray(l_ab) ** 2))

    def parts(beta):
        j2 = np.exp(-2 * beta * r)
        norm = float(np.sum(wc * j2))
        kin = _kane((k2 + beta * beta) * eb_ev, kane_gap_ev)
        coul = 2 * eb_ev * float(np.sum(wc * j2 / r)) / norm
        return kin, coul, norm

    def total(beta):
        kin, coul, _ = parts(beta)
        return kin - coul

    res = optimize.minimize_scalar(total, bounds=(0.0, 12.0), method="bounded",
                                   options={"xatol": 1e-7})
    beta = float(res.x)
    if total(0.0) < res.fun:  # the bounded search never does worse than beta = 0
        beta = 0.0
    kin, coul, norm = parts(beta)
    kin0 = _kane(k2 * eb_ev, kane_gap_ev)
    return kin0, kin, coul, beta, 1.0 / norm


@lru_cache(maxsize=256)
def _sphere_moments(n_terms: int) -> np.ndarray:
    """<x^(2n)> for n = 1..n_terms over the density 2 sin^2(pi x), x in [0, 1]."""
    x, w = leggauss(200)
    x = (x + 1) / 2
    w = w / 2
    dens = 2 * np.sin(np.pi * x) ** 2
    n = np.arange(1, n_terms + 1)[:, None]
    return np.sum(w * dens * x ** (2 * n), axis=1)


def _dielectric_shift_ev(volume_nm3: float, eps_in: float, eps_out: float, n_terms: int = 400) -> float:
    radius = (3 * volume_nm3 / (4 * math.pi)) ** (1 / 3)
    er = eps_in / eps_out
    n = np.arange(1, n_terms + 1)
    a_n = (er - 1) * (n + 1) / (n * er + n + 1)
    return float(COULOMB_EV_NM / (eps_in * radius) * np.sum(a_n * _sphere_moments(n_terms)))


@dataclass(frozen=True)
class ExcitonState:
    """Ground-state exciton of one domain (energies in eV).

    ``energy_ev = bandgap_ev + confinement_ev - binding_ev + dielectric_ev``.
    """

    br_fraction: float
    edges_nm: tuple[float, float, float]
    temperature: str
    bandgap_ev: float
    confinement_ev: float
    binding_ev: float
    dielectric_ev: float
    energy_ev: float
    beta_per_nm: float
    oscillator_enhancement: float
    bohr_radius_nm: float

    @property
    def wavelength_nm(self) -> float:
        return float(materials.wavelength_nm(self.energy_ev))


def exciton_state(br_fraction: float, edges_nm, temperature: materials.Temperature = "4K", *,
                  bowing_ev: float | None = None, surface_fraction: float = 1.0,
                  params: LevelParameters = DEFAULT_LEVEL_PARAMETERS,
                  material_params: materials.MaterialParameters = materials.DEFAULT_PARAMETERS,
                  ) -> ExcitonState:
    """Variational exciton of a cuboid domain (see the module docstring).

    Parameters
    ----------
    br_fraction : float
        Br fraction f = x/3 of CsPbBr_xI_(3-x), in [0, 1].
    edges_nm : float or (3,) array
        Edge lengths of the domain (one number: a cube).
    temperature : {"4K", "RT"}
        Which bulk gap to start from.
    bowing_ev : float, optional
        Bandgap bowing (default: ``material_params.bowing_ev``).
    surface_fraction : float
        Fraction of the domain's surface on the NC surface (dielectric step), in [0, 1].

    Returns
    -------
    ExcitonState
    """
    f = float(require_finite("br_fraction", br_fraction))
    edges = _edges(edges_nm)
    s = require_in_range("surface_fraction", surface_fraction, 0.0, 1.0)
    gap = float(materials.bandgap_ev(f, temperature, bowing_ev=bowing_ev, params=material_params))
    eb = float(materials.exciton_binding_ev(f, material_params))
    ab = float(materials.bohr_radius_nm(f, material_params))
    eps = float(materials.dielectric_constant(f, "exciton", material_params))
    l_ab = tuple(sorted(round(float(x), 9) for x in edges / ab))
    kin0, kin, coul, beta, k_osc = _variational(l_ab, round(eb, 12), round(gap, 12) if params.kane else None)
    binding = kin0 - kin + coul
    diel = s * _dielectric_shift_ev(float(np.prod(edges)), eps, params.eps_out) if s > 0 else 0.0
    energy = gap + kin0 - binding + diel
    return ExcitonState(br_fraction=f, edges_nm=tuple(float(x) for x in edges), temperature=temperature,
                        bandgap_ev=gap, confinement_ev=kin0, binding_ev=binding, dielectric_ev=diel,
                        energy_ev=energy, beta_per_nm=beta / ab, oscillator_enhancement=k_osc,
                        bohr_radius_nm=ab)


def exciton_energy_ev(br_fraction, edges_nm, temperature: materials.Temperature = "4K", **kwargs):
    """Exciton energy (eV) of a domain; arrays of Br fractions and/or cube sizes broadcast.

    ``edges_nm`` may be a scalar, a (3,) array (one cuboid) or an array of cube edges.
    Keyword arguments go to :func:`exciton_state`.
    """
    f = np.asarray(br_fraction, dtype=float)
    e = np.asarray(edges_nm, dtype=float)
    if e.shape == (3,) and f.ndim == 0:
        return exciton_state(float(f), e, temperature, **kwargs).energy_ev
    fb, eb = np.broadcast_arrays(f, e)
    out = np.array([exciton_state(float(a), float(b), temperature, **kwargs).energy_ev
                    for a, b in zip(fb.ravel(), eb.ravel())]).reshape(fb.shape)
    return float(out) if out.ndim == 0 else out


# ---- fine structure ---------------------------------------------------------------------

def depolarization_factors(edges_nm) -> np.ndarray:
    """Depolarisation factors N_i of the ellipsoid with semi-axes proportional to the edges.

    ``N_i = (a b c / 2) int_0^inf ds / ((s + a_i^2) sqrt((s + a^2)(s + b^2)(s + c^2)))``;
    they sum to 1 (1/3 each for a cube).
    """
    e = _edges(edges_nm) / 2
    e = e / e.max()
    out = np.empty(3)
    for i in range(3):
        def integrand(s, i=i):
            return 1.0 / ((s + e[i] ** 2) * math.sqrt(np.prod(s + e**2)))
        out[i] = 0.5 * np.prod(e) * integrate.quad(integrand, 0, np.inf, limit=200)[0]
    return out / out.sum()


def fss_scale_uev(edges_nm, params: LevelParameters = DEFAULT_LEVEL_PARAMETERS) -> float:
    """FSS scale ``F(L) = F_ref (L_ref / L_eff)^p`` in ueV."""
    return params.fss_ref_uev * (params.fss_ref_size_nm / effective_size_nm(edges_nm)) ** params.fss_exponent


def _symmetry_pattern(symmetry: str, asym: float) -> np.ndarray:
    if symmetry == "cubic":
        return np.zeros(3)
    if symmetry == "tetragonal":
        return np.array([-1.0, -1.0, 2.0]) / 3
    if symmetry == "orthorhombic":
        v = np.array([-(1 - asym), 0.0, 1 + asym])
        return v - v.mean()
    raise InputError(f"symmetry must be cubic, tetragonal or orthorhombic, got {symmetry!r}")


def collection_efficiency(dipoles_lab: np.ndarray, na: float) -> np.ndarray:
    """Fraction of a linear dipole's emission collected along lab z by an objective of NA.

    Parameters
    ----------
    dipoles_lab : (..., 3) array
        Dipole directions in the lab frame (need not be normalised).
    na : float
        Numerical aperture in vacuum (0 < NA < 1).
    """
    na = require_in_range("collection NA (vacuum)", na, 0.0, 1.0, lo_open=True, hi_open=True)
    d = np.asarray(dipoles_lab, dtype=float)
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    ca = math.cos(math.asin(na))
    eta_par = (2 - 3 * ca + ca**3) / 4
    eta_perp = (4 - 3 * ca - ca**3) / 8
    cos2 = d[..., 2] ** 2
    return eta_par * cos2 + eta_perp * (1 - cos2)


@dataclass(frozen=True)
class FineStructure:
    """Bright-exciton lines of one domain as seen by the collection optics.

    ``line_ev`` / ``intensity`` / ``polarization_deg`` hold the *visible*, merged lines,
    sorted by energy; ``intensity`` sums to 1. ``kind`` is singlet/doublet/triplet and
    ``fss_uev`` the mean gap between adjacent visible lines (0 for a singlet).
    """

    line_ev: np.ndarray
    intensity: np.ndarray
    polarization_deg: np.ndarray
    kind: str
    fss_uev: float
    all_ev: np.ndarray
    all_intensity: np.ndarray
    collected_fraction: float

    @property
    def center_ev(self) -> float:
        """Mean energy of the visible lines (the convention of ``center_nm`` in the truth)."""
        return float(np.mean(self.line_ev))

    @property
    def lines_nm(self) -> np.ndarray:
        return np.sort(np.asarray(materials.wavelength_nm(self.line_ev)))

    @property
    def center_nm(self) -> float:
        return float(materials.wavelength_nm(self.center_ev))


_KINDS = {1: "singlet", 2: "doublet", 3: "triplet"}


def _merge_lines(e: np.ndarray, inten: np.ndarray, pol: np.ndarray, merge_ev: float):
    order = np.argsort(e)
    e, inten, pol = e[order], inten[order], pol[order]
    groups: list[list[int]] = [[0]]
    for i in range(1, len(e)):
        if e[i] - e[groups[-1][-1]] < merge_ev:
            groups[-1].append(i)
        else:
            groups.append([i])
    ge = np.array([np.average(e[g], weights=inten[g]) if inten[g].sum() > 0 else e[g].mean() for g in groups])
    gi = np.array([inten[g].sum() for g in groups])
    gp = np.array([pol[g][np.argmax(inten[g])] for g in groups])
    return ge, gi, gp


def fine_structure(energy_ev: float, edges_nm, *, orientation: np.ndarray | None = None,
                   symmetry: Symmetry | None = None,
                   params: LevelParameters = DEFAULT_LEVEL_PARAMETERS) -> FineStructure:
    """Bright-triplet lines of a domain, their intensities and polarisations.

    Parameters
    ----------
    energy_ev : float
        Exciton energy (centre of the triplet before splitting).
    edges_nm : float or (3,) array
        Domain edges along the crystal axes x, y, z.
    orientation : (3, 3) array, optional
        Rotation matrix from crystal to lab frame (columns: crystal axes in the lab);
        the optical axis is lab z. Default: identity (NC lying flat on a face).
    symmetry : {"cubic", "tetragonal", "orthorhombic"}, optional
        Crystal-field pattern (default ``params.symmetry``).
    """
    e0 = require_positive("energy_ev", energy_ev)
    edges = _edges(edges_nm)
    rot = np.eye(3) if orientation is None else np.asarray(orientation, dtype=float)
    if rot.shape != (3, 3) or not np.all(np.isfinite(rot)) or not np.allclose(rot.T @ rot, np.eye(3), atol=1e-6):
        raise InputError("orientation must be a 3x3 rotation matrix (orthonormal columns)")
    sym = params.symmetry if symmetry is None else symmetry
    v = _symmetry_pattern(sym, params.fss_asymmetry)
    v = v + params.fss_shape_coeff * 3 * (depolarization_factors(edges) - 1 / 3)
    scale_ev = fss_scale_uev(edges, params) * 1e-6
    all_ev = e0 + scale_ev * v
    dip_lab = rot.T  # row i: crystal axis i (a column of rot) in the lab frame
    eff = collection_efficiency(dip_lab, params.collection_na)
    pol = np.degrees(np.arctan2(dip_lab[:, 1], dip_lab[:, 0])) % 180.0
    inten = eff / eff.sum()
    visible = inten >= params.visibility * inten.max()
    ge, gi, gp = _merge_lines(all_ev[visible], inten[visible], pol[visible], params.merge_uev * 1e-6)
    gi = gi / gi.sum()
    kind = _KINDS[len(ge)]
    fss = float(np.mean(np.diff(ge)) * 1e6) if len(ge) > 1 else 0.0
    return FineStructure(line_ev=ge, intensity=gi, polarization_deg=gp, kind=kind, fss_uev=fss,
                         all_ev=all_ev, all_intensity=inten, collected_fraction=float(eff.mean()))


def fine_structure_from_fss(center_ev: float, fss_uev: float, kind: str, *,
                            asymmetry: float = 0.1, intensities=None,
                            polarization_deg=None) -> FineStructure:
    """Fine structure with a prescribed FSS (presets): lines whose mean energy is ``center_ev``.

    doublet: ``E0 -+ F/2``; triplet: gaps ``(1 - r) F`` and ``(1 + r) F`` (mean F);
    singlet / trion: one line at ``E0``.
    """
    e0 = require_positive("center_ev", center_ev)
    f = require_in_range("fss_uev", fss_uev) * 1e-6
    if kind in ("singlet", "trion"):
        v = np.zeros(1)
    elif kind == "doublet":
        v = np.array([-0.5, 0.5])
    elif kind == "triplet":
        require_in_range("asymmetry", asymmetry, 0.0, 1.0, hi_open=True)
        v = np.array([-(1 - asymmetry), 0.0, 1 + asymmetry])
        v = v - v.mean()
    else:
        raise InputError(f"kind must be singlet, doublet, triplet or trion, got {kind!r}")
    if kind in ("doublet", "triplet") and f <= 0:
        raise InputError(f"a {kind} needs fss_uev > 0, got {fss_uev}")
    lines = e0 + f * v
    n = len(lines)
    inten = np.full(n, 1.0 / n) if intensities is None else np.asarray(intensities, float)
    if inten.shape != (n,) or np.any(~np.isfinite(inten)) or np.any(inten < 0) or inten.sum() <= 0:
        raise InputError(f"intensities must be {n} finite non-negative numbers, got {intensities!r}")
    pol = np.linspace(0, 90, n) if polarization_deg is None else np.asarray(polarization_deg, float)
    return FineStructure(line_ev=lines, intensity=inten / inten.sum(), polarization_deg=pol,
                         kind="singlet" if kind == "trion" else kind,
                         fss_uev=float(np.mean(np.diff(lines)) * 1e6) if n > 1 else 0.0,
                         all_ev=lines, all_intensity=inten / inten.sum(), collected_fraction=1.0)


# ---- trion and lifetime --------------------------------------------------------------

def trion_shift_ev(edges_nm, params: LevelParameters = DEFAULT_LEVEL_PARAMETERS) -> float:
    """Trion line position relative to the exciton, ``(A + B/L_eff^2)`` in eV (negative: red)."""
    lf = effective_size_nm(edges_nm)
    return (params.trion_a_mev + params.trion_b_mev_nm2 / lf**2) * 1e-3


def _lifetime_reference(params: LevelParameters, material_params: materials.MaterialParameters):
    ref = exciton_state(params.lifetime_ref_br_fraction, params.lifetime_ref_size_nm, "4K",
                        params=params, material_params=material_params)
    return ref.oscillator_enhancement, ref.energy_ev


def radiative_lifetime_ns(state: ExcitonState, params: LevelParameters = DEFAULT_LEVEL_PARAMETERS,
                          material_params: materials.MaterialParameters = materials.DEFAULT_PARAMETERS) -> float:
    """Bright-exciton radiative lifetime ``tau_ref (K_ref/K)(E_ref/E)`` in ns."""
    k_ref, e_ref = _lifetime_reference(params, material_params)
    return params.lifetime_ref_ns * (k_ref / state.oscillator_enhancement) * (e_ref / state.energy_ev)


# ---- everything for one domain -------------------------------------------------------

@dataclass(frozen=True)
class DomainLevels:
    """Levels of one domain: exciton, visible bright lines, trion line, lifetime."""

    exciton: ExcitonState
    fine: FineStructure
    trion_ev: float
    lifetime_ns: float
    trion_lifetime_ns: float

    @property
    def exciton_ev(self) -> float:
        return self.exciton.energy_ev

    @property
    def trion_nm(self) -> float:
        return float(materials.wavelength_nm(self.trion_ev))

    def summary(self) -> dict:
        return {
            "energy_ev": self.exciton.energy_ev, "wavelength_nm": self.exciton.wavelength_nm,
            "bandgap_ev": self.exciton.bandgap_ev, "confinement_ev": self.exciton.confinement_ev,
            "binding_ev": self.exciton.binding_ev, "dielectric_ev": self.exciton.dielectric_ev,
            "kind": self.fine.kind, "lines_nm": [float(x) for x in self.fine.lines_nm],
            "fss_uev": self.fine.fss_uev, "trion_nm": self.trion_nm,
            "lifetime_ns": self.lifetime_ns,
        }


def domain_levels(br_fraction: float, edges_nm, *, temperature: materials.Temperature = "4K",
                  bowing_ev: float | None = None, surface_fraction: float = 1.0,
                  orientation: np.ndarray | None = None, symmetry: Symmetry | None = None,
                  trion_lifetime_ratio: float = 0.5,
                  params: LevelParameters = DEFAULT_LEVEL_PARAMETERS,
                  material_params: materials.MaterialParameters = materials.DEFAULT_PARAMETERS,
                  ) -> DomainLevels:
    """Exciton, fine structure, trion and radiative lifetime of one cuboid domain.

    ``trion_lifetime_ratio``: trion / exciton lifetime (two recombination channels for
    the charged exciton; ~0.5 is typical of CsPbX3 NCs (unchecked)).
    """
    ratio = require_positive("trion_lifetime_ratio", trion_lifetime_ratio)
    st = exciton_state(br_fraction, edges_nm, temperature, bowing_ev=bowing_ev,
                       surface_fraction=surface_fraction, params=params, material_params=material_params)
    fs = fine_structure(st.energy_ev, edges_nm, orientation=orientation, symmetry=symmetry, params=params)
    tau = radiative_lifetime_ns(st, params, material_params)
    return DomainLevels(exciton=st, fine=fs, trion_ev=st.energy_ev + trion_shift_ev(edges_nm, params),
                        lifetime_ns=tau, trion_lifetime_ns=tau * ratio)


def with_parameters(params: LevelParameters = DEFAULT_LEVEL_PARAMETERS, **changes) -> LevelParameters:
    """A copy of ``params`` with fields replaced (validated)."""
    return replace(params, **changes)

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

Validation: parameters chosen against the literature table (mu_Br, RT emission gaps;
:mod:`nanodomains.optics.literature`); the seed's ~620 nm for 10-20 nm CsPbBr1.2I1.8 is
held out (603-617 nm with b = 0, Yin, Yan & Wei 2014). See docs/optics.md.

Bright-exciton fine structure (exchange)
----------------------------------------
The band-edge exciton splits by electron-hole exchange into a dark singlet and a bright
triplet; the dark singlet lies lowest (magneto-optics of single NCs: Tamarat et al.,
Nat. Mater. 18, 717 (2019); Nat. Commun. 14, 229 (2023); the Rashba-reversed order of
Becker et al., Nature 553, 189 (2018) is not used). Exchange energy from the contact
density of the variational state::

    E_x = M <delta(r_e - r_h)> = M (27 / 8V) K,   K = 1 / <exp(-2 beta r)>_C

``(a_B/L)^3`` scaling in strong confinement (K -> 1), the bulk value ``M/(pi a_B^3)`` in
weak confinement. ``M = 145 +- 12 meV nm^3`` (composition independent, assumed) is
calibrated on the 10.7 meV dark-bright splitting of 8 nm CsPbCl3 NCs (doi
10.1021/acsnano.3c00772, CsPbCl3 exciton set unchecked). Bright triplet: energies
``E_X + F v_i`` with ``F = eta E_x``, ``eta = 1.53/10.7`` (same paper), and::

    v = v_sym + kappa * 3 (N - 1/3)

``v_sym`` the crystal-field pattern (cubic: 0, one line; tetragonal: (-1/3, -1/3, 2/3),
a doublet; orthorhombic: (-(1-r), 0, 1+r) minus its mean, a triplet with mean gap F),
``N_i`` the depolarisation factors of the ellipsoid with semi-axes ~ L_i (long-range
exchange grows with the depolarisation along the dipole, so the line polarised along a
long axis lies lowest), ``kappa = 1`` (illustrative). Held out: the seed's 677 / 878 ueV
(the model gives ~0.1-0.4 meV for 10-20 nm NCs at f = 0.4).

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
X* is one line red-shifted by ``E_T = A E_b(f)/E_b(1) + B (mu(1)/mu(f)) / L_eff^2``: the
CsPbBr3 single-NC law A = -10 meV, B = -780 meV nm^2 (quoted from a study citing Tamarat
2023, primary paper not identified) carried to other compositions through the exciton
set, following the universal scaling with confinement of Tamarat et al. 2023.

Quantum-confined Stark polarisability (:func:`stark_polarizability`): the second-order
shift of a particle in an infinite well, ``alpha = (15 - pi^2)/(12 pi^4) e^2 m L^4 /
hbar^2`` (Bastard et al., PRB 28, 3241 (1983)), for electron plus hole along each edge,
in series with the hydrogenic relative-motion value ``(9/2) 4 pi eps0 eps a_B^3`` that
limits it in weak confinement. Forster transfer (:func:`forster_r0_nm`,
:func:`forster_geometry_factor`): R0 from the overlap of the donor line with the
acceptor's above-edge absorption ``sigma = alpha V``; point dipoles only when the
centres are farther apart than the domains, else a volume average (see emitters).

Radiative lifetime of the bright exciton, with the oscillator
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
    "exchange_energy_uev",
    "trion_shift_ev",
    "exciton_arrays",
    "ExcitonArrays",
    "domain_observables",
    "stark_polarizability",
    "forster_r0_nm",
    "forster_geometry_factor",
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
    exchange_volume_mev_nm3 : float
        ``M`` of the exchange energy ``E_x = M (27/8V) K`` (CsPbCl3 calibration).
    bright_splitting_ratio : float
        ``eta = F / E_x`` (1.53 / 10.7, CsPbCl3 NCs, doi 10.1021/acsnano.3c00772).
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
        CsPbBr3 trion law ``A + B / L_eff^2`` (meV), scaled to other compositions.
    lifetime_ref_ns, lifetime_ref_br_fraction, lifetime_ref_size_nm : float
        Calibration point of the radiative lifetime (seed S14).
    """

    kane: bool = True
    eps_out: float = 2.1
    exchange_volume_mev_nm3: float = 145.3  # +- 12, optics.literature.exchange_volume_from_cspbcl3
    bright_splitting_ratio: float = 1.53 / 10.7
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
        for name in ("eps_out", "collection_na", "lifetime_ref_ns",
                     "lifetime_ref_size_nm"):
            require_positive(name, getattr(self, name))
        for name in ("bright_splitting_ratio", "fss_shape_coeff", "merge_uev", "visibility"):
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
    "fss": "exchange M = 145 meV nm^3 and eta = 1.53/10.7 from 8 nm CsPbCl3 NCs (doi 10.1021/acsnano.3c00772)",
    "trion": "A = -10 meV, B = -780 meV nm^2 (CsPbBr3 single-NC law quoted via Tamarat 2023 citations)",
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


def exchange_energy_uev(edges_nm, br_fraction, *, oscillator_enhancement: float | None = None,
                        params: LevelParameters = DEFAULT_LEVEL_PARAMETERS,
                        material_params: materials.MaterialParameters = materials.DEFAULT_PARAMETERS) -> float:
    """Electron-hole exchange energy ``E_x = M <delta(r_e - r_h)>`` in ueV (dark-bright splitting).

    ``<delta> = (27 / 8V) K`` for the variational state (``K`` its oscillator enhancement),
    so ``E_x = M (27 / 8V) K``: ``(a_B/L)^3`` scaling in strong confinement, the bulk
    splitting ``M / (pi a_B^3)`` in weak confinement. ``M`` is
    ``params.exchange_volume_mev_nm3`` (see the module docstring).
    """
    edges = _edges(edges_nm)
    k = oscillator_enhancement
    if k is None:
        k = exciton_state(br_fraction, edges, "4K", params=params, material_params=material_params).oscillator_enhancement
    return 1e3 * params.exchange_volume_mev_nm3 * 27.0 / (8.0 * float(np.prod(edges))) * float(k)


def fss_scale_uev(edges_nm, br_fraction, params: LevelParameters = DEFAULT_LEVEL_PARAMETERS,
                  material_params: materials.MaterialParameters = materials.DEFAULT_PARAMETERS) -> float:
    """Mean bright-triplet splitting ``F = eta E_x`` in ueV for a domain of this size and composition."""
    return params.bright_splitting_ratio * exchange_energy_uev(edges_nm, br_fraction, params=params,
                                                               material_params=material_params)


def symmetry_pattern(symmetry: str, asym: float) -> np.ndarray:
    """Crystal-field pattern ``v`` of the bright triplet (lines at ``E_X + F v``, mean 0)."""
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


def fine_structure(energy_ev: float, edges_nm, *, br_fraction: float | None = None,
                   scale_uev: float | None = None, orientation: np.ndarray | None = None,
                   symmetry: Symmetry | None = None,
                   params: LevelParameters = DEFAULT_LEVEL_PARAMETERS,
                   material_params: materials.MaterialParameters = materials.DEFAULT_PARAMETERS) -> FineStructure:
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
    br_fraction, scale_uev : float
        The splitting scale ``F`` is ``scale_uev`` if given, else :func:`fss_scale_uev` of
        the domain (which needs ``br_fraction``); one of the two is required.
    """
    e0 = require_positive("energy_ev", energy_ev)
    if scale_uev is None:
        if br_fraction is None:
            raise InputError("fine_structure needs br_fraction (to compute the exchange scale) or scale_uev")
        scale_uev = fss_scale_uev(edges_nm, br_fraction, params, material_params)
    edges = _edges(edges_nm)
    rot = np.eye(3) if orientation is None else np.asarray(orientation, dtype=float)
    if rot.shape != (3, 3) or not np.all(np.isfinite(rot)) or not np.allclose(rot.T @ rot, np.eye(3), atol=1e-6):
        raise InputError("orientation must be a 3x3 rotation matrix (orthonormal columns)")
    sym = params.symmetry if symmetry is None else symmetry
    v = symmetry_pattern(sym, params.fss_asymmetry)
    v = v + params.fss_shape_coeff * 3 * (depolarization_factors(edges) - 1 / 3)
    scale_ev = require_in_range("scale_uev", scale_uev) * 1e-6
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

def trion_shift_ev(edges_nm, br_fraction, params: LevelParameters = DEFAULT_LEVEL_PARAMETERS,
                   material_params: materials.MaterialParameters = materials.DEFAULT_PARAMETERS) -> float:
    """Trion line relative to the exciton (eV, negative: red), see the module docstring.

    ``E_T = A E_b(f)/E_b(1) + B (mu(1)/mu(f)) / L_eff^2``: the CsPbBr3 law ``A + B/L^2``
    carried to other compositions through the exciton set.
    """
    lf = effective_size_nm(edges_nm)
    f = float(require_in_range("br_fraction", br_fraction, 0.0, 1.0))
    eb_ratio = materials.exciton_binding_ev(f, material_params) / materials.exciton_binding_ev(1.0, material_params)
    mu_ratio = materials.reduced_mass(1.0, material_params) / materials.reduced_mass(f, material_params)
    return (params.trion_a_mev * eb_ratio + params.trion_b_mev_nm2 * mu_ratio / lf**2) * 1e-3


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
    dark_ev: float | None = None  # dark singlet, E_x below the mean of the bright triplet

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
            "dark_bright_uev": None if self.dark_ev is None else 1e6 * (self.exciton.energy_ev - self.dark_ev),
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
    scale = params.bright_splitting_ratio * exchange_energy_uev(
        edges_nm, br_fraction, oscillator_enhancement=st.oscillator_enhancement, params=params)
    fs = fine_structure(st.energy_ev, edges_nm, scale_uev=scale, orientation=orientation, symmetry=symmetry,
                        params=params)
    tau = radiative_lifetime_ns(st, params, material_params)
    trion = trion_shift_ev(edges_nm, br_fraction, params, material_params)
    dark = st.energy_ev - scale / params.bright_splitting_ratio * 1e-6
    return DomainLevels(exciton=st, fine=fs, trion_ev=st.energy_ev + trion,
                        lifetime_ns=tau, trion_lifetime_ns=tau * ratio, dark_ev=dark)


def with_parameters(params: LevelParameters = DEFAULT_LEVEL_PARAMETERS, **changes) -> LevelParameters:
    """A copy of ``params`` with fields replaced (validated)."""
    return replace(params, **changes)


# ---- vectorised forward model (for fits and inverses) -----------------------------------

#: Grid of the tabulated Coulomb term: cube side / a_B and beta a_B.
_TABLE_SIDE = np.geomspace(0.08, 250.0, 161)
_TABLE_BETA = np.linspace(0.0, 2.0, 161)


@lru_cache(maxsize=1)
def _coulomb_table() -> tuple[np.ndarray, np.ndarray]:
    """log <exp(-2 beta r)/r>/<exp(-2 beta r)> (a_B units) and log <exp(-2 beta r)> for cubes."""
    log_g = np.empty((_TABLE_SIDE.size, _TABLE_BETA.size))
    log_n = np.empty_like(log_g)
    for i, side in enumerate(_TABLE_SIDE):
        r, wc = _pair_quadrature((float(side),) * 3)
        j = np.exp(-2.0 * np.outer(_TABLE_BETA, r))
        norm = j @ wc
        log_n[i] = np.log(norm)
        log_g[i] = np.log((j / r) @ wc / norm)
    return log_g, log_n


def _interp_side(table: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Rows of ``table`` interpolated linearly in log(side); shape side.shape + (n_beta,)."""
    x = np.log(side)
    grid = np.log(_TABLE_SIDE)
    if np.any(x < grid[0]) or np.any(x > grid[-1]):
        raise InputError(f"domain size / Bohr radius outside the tabulated {_TABLE_SIDE[0]:g}-{_TABLE_SIDE[-1]:g}")
    i = np.clip(np.searchsorted(grid, x) - 1, 0, grid.size - 2)
    w = ((x - grid[i]) / (grid[i + 1] - grid[i]))[..., None]
    return table[i] * (1 - w) + table[i + 1] * w


def _edges_array(edges_nm) -> np.ndarray:
    e = np.asarray(edges_nm, dtype=float)
    if e.ndim == 0 or e.shape[-1] != 3:
        e = np.repeat(e[..., None], 3, axis=-1)
    if not np.all(np.isfinite(e)) or np.any(e <= 0) or np.any(e > 500):
        raise InputError("domain edge lengths must be finite, > 0 and <= 500 nm")
    return e


def _dielectric_shift_array(volume_nm3: np.ndarray, eps_in: np.ndarray, eps_out: float,
                            n_terms: int = 400) -> np.ndarray:
    radius = (3 * volume_nm3 / (4 * math.pi)) ** (1 / 3)
    er = (eps_in / eps_out)[..., None]
    n = np.arange(1, n_terms + 1)
    a_n = (er - 1) * (n + 1) / (n * er + n + 1)
    return COULOMB_EV_NM / (eps_in * radius) * np.sum(a_n * _sphere_moments(n_terms), axis=-1)


@dataclass(frozen=True)
class ExcitonArrays:
    """Vectorised exciton energies (eV) and state numbers, arrays of the broadcast shape."""

    energy_ev: np.ndarray
    bandgap_ev: np.ndarray
    confinement_ev: np.ndarray
    binding_ev: np.ndarray
    dielectric_ev: np.ndarray
    oscillator_enhancement: np.ndarray
    bohr_radius_nm: np.ndarray
    volume_nm3: np.ndarray
    effective_size_nm: np.ndarray


def exciton_arrays(br_fraction, edges_nm, temperature: materials.Temperature = "4K", *,
                   bowing_ev=None, surface_fraction=1.0, gap_shift_ev=0.0,
                   params: LevelParameters = DEFAULT_LEVEL_PARAMETERS,
                   material_params: materials.MaterialParameters = materials.DEFAULT_PARAMETERS,
                   ) -> ExcitonArrays:
    """The variational exciton for arrays of compositions and sizes (fast, tabulated).

    Same model as :func:`exciton_state`, with the Coulomb term of a cuboid taken from a
    table for the cube of equal volume (kinetic term exact) and ``beta`` minimised on a
    grid with parabolic refinement: within 1 meV of :func:`exciton_state` for cubes and
    within ~5 meV for cuboids with aspect ratios up to 3 (tests/test_optics_levels.py).
    ~10 us per domain: what a sampler over compositions and sizes needs.

    Parameters
    ----------
    br_fraction : array_like
        Br fractions in [0, 1].
    edges_nm : array_like
        Cube edges (any shape) or cuboid edges with a trailing axis of length 3.
    surface_fraction : array_like
        Fraction of each domain's surface on the NC surface (broadcast).
    bowing_ev : float or array_like, optional
        Gap bowing ``b`` (default ``material_params.bowing_ev``); an array broadcasts with
        the domains (one value per posterior sample): ``Eg(f) = Eg_lin(f) - b f (1 - f)``.
    gap_shift_ev : float or array_like
        Shift added to the bulk gap of every domain (broadcast): the absolute-energy
        offset a posterior marginalises over.
    """
    f = np.asarray(br_fraction, dtype=float)
    if not np.all(np.isfinite(f)) or np.any((f < 0) | (f > 1)):
        raise InputError("br_fraction must be finite and lie in [0, 1]")
    edges = _edges_array(edges_nm)
    s = np.asarray(surface_fraction, dtype=float)
    if np.any((s < 0) | (s > 1)) or not np.all(np.isfinite(s)):
        raise InputError("surface_fraction must lie in [0, 1]")
    bow = np.asarray(material_params.bowing_ev if bowing_ev is None else bowing_ev, dtype=float)
    shift = np.asarray(gap_shift_ev, dtype=float)
    if not (np.all(np.isfinite(bow)) and np.all(np.abs(bow) <= 2.0) and np.all(np.isfinite(shift))):
        raise InputError("bowing_ev must be finite with |b| <= 2 eV and gap_shift_ev finite")
    shape = np.broadcast_shapes(f.shape, edges.shape[:-1], s.shape, bow.shape, shift.shape)
    f = np.broadcast_to(f, shape)
    edges = np.broadcast_to(edges, shape + (3,))
    s = np.broadcast_to(s, shape)
    gap = (np.asarray(materials.bandgap_ev(f, temperature, bowing_ev=0.0, params=material_params))
           - bow * f * (1 - f) + shift)
    eb = np.asarray(materials.exciton_binding_ev(f, material_params))
    ab = np.asarray(materials.bohr_radius_nm(f, material_params))
    eps = np.asarray(materials.dielectric_constant(f, "exciton", material_params))
    volume = np.prod(edges, axis=-1)
    k2ab = np.pi**2 * np.sum(1.0 / edges**2, axis=-1) * ab**2
    log_g, log_n = _coulomb_table()
    side = volume ** (1 / 3) / ab
    g = np.exp(_interp_side(log_g, side))
    kin = ((k2ab[..., None] + _TABLE_BETA**2) * eb[..., None])
    if params.kane:
        kin = gap[..., None] * (np.sqrt(1 + 2 * kin / gap[..., None]) - 1)
    total = kin - 2 * eb[..., None] * g
    beta, e_min = _grid_minimum(total)
    norm = np.exp(_interp_side(log_n, side))
    k_osc = 1.0 / _interp_beta(norm, beta)
    kin0 = kin[..., 0]
    binding = kin0 - e_min
    diel = np.where(s > 0, s * _dielectric_shift_array(volume, eps, params.eps_out), 0.0)
    energy = gap + e_min + diel
    leff = 1.0 / np.sqrt(np.mean(1.0 / edges**2, axis=-1))
    return ExcitonArrays(energy_ev=energy, bandgap_ev=gap, confinement_ev=kin0, binding_ev=binding,
                         dielectric_ev=diel, oscillator_enhancement=k_osc, bohr_radius_nm=ab,
                         volume_nm3=volume, effective_size_nm=leff)


def _grid_minimum(total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum over the last (beta) axis with a parabola through the three nearest nodes."""
    i = np.clip(np.argmin(total, axis=-1), 1, total.shape[-1] - 2)
    y0 = np.take_along_axis(total, (i - 1)[..., None], -1)[..., 0]
    y1 = np.take_along_axis(total, i[..., None], -1)[..., 0]
    y2 = np.take_along_axis(total, (i + 1)[..., None], -1)[..., 0]
    h = _TABLE_BETA[1] - _TABLE_BETA[0]
    curv = y0 - 2 * y1 + y2
    with np.errstate(divide="ignore", invalid="ignore"):
        dx = np.where(curv > 0, 0.5 * (y0 - y2) / curv, 0.0)
    dx = np.clip(dx, -1.0, 1.0)
    beta = np.clip(_TABLE_BETA[i] + dx * h, 0.0, _TABLE_BETA[-1])
    e_min = y1 - 0.25 * (y0 - y2) * dx
    edge0 = total[..., 0] <= e_min  # minimum at beta = 0 (strong confinement)
    return np.where(edge0, 0.0, beta), np.where(edge0, total[..., 0], e_min)


def _interp_beta(table: np.ndarray, beta: np.ndarray) -> np.ndarray:
    x = beta / (_TABLE_BETA[1] - _TABLE_BETA[0])
    i = np.clip(np.floor(x).astype(int), 0, _TABLE_BETA.size - 2)
    w = x - i
    a = np.take_along_axis(table, i[..., None], -1)[..., 0]
    b = np.take_along_axis(table, (i + 1)[..., None], -1)[..., 0]
    return a * (1 - w) + b * w


def domain_observables(br_fraction, edges_nm, temperature: materials.Temperature = "4K", *,
                       bowing_ev=None, surface_fraction=1.0, gap_shift_ev=0.0,
                       params: LevelParameters = DEFAULT_LEVEL_PARAMETERS,
                       material_params: materials.MaterialParameters = materials.DEFAULT_PARAMETERS) -> dict:
    """Everything an inverse compares with measured lines, vectorised over domains.

    Returns arrays (broadcast shape of ``br_fraction`` and ``edges_nm``): ``exciton_ev``
    (mean of the bright triplet), ``fss_uev`` (mean bright splitting scale F),
    ``dark_bright_uev`` (E_x), ``trion_shift_ev``, ``oscillator_enhancement``.
    """
    ex = exciton_arrays(br_fraction, edges_nm, temperature, bowing_ev=bowing_ev, gap_shift_ev=gap_shift_ev,
                        surface_fraction=surface_fraction, params=params, material_params=material_params)
    f = np.broadcast_to(np.asarray(br_fraction, float), ex.energy_ev.shape)
    ex_uev = 1e3 * params.exchange_volume_mev_nm3 * 27.0 / (8.0 * ex.volume_nm3) * ex.oscillator_enhancement
    eb_ratio = np.asarray(materials.exciton_binding_ev(f, material_params)) / materials.exciton_binding_ev(1.0, material_params)
    mu_ratio = materials.reduced_mass(1.0, material_params) / np.asarray(materials.reduced_mass(f, material_params))
    trion = (params.trion_a_mev * eb_ratio + params.trion_b_mev_nm2 * mu_ratio / ex.effective_size_nm**2) * 1e-3
    return {"exciton_ev": ex.energy_ev, "fss_uev": params.bright_splitting_ratio * ex_uev,
            "dark_bright_uev": ex_uev, "trion_shift_ev": trion,
            "oscillator_enhancement": ex.oscillator_enhancement}


def exciton_oscillator_enhancement_cube(side_over_ab: float, eb_ev: float, kane_gap_ev: float | None) -> float:
    """Oscillator enhancement K of the variational exciton in a cube of side ``side_over_ab`` a_B."""
    side = require_positive("side_over_ab", side_over_ab)
    return float(_variational((round(float(side), 9),) * 3, round(float(eb_ev), 12),
                              None if kane_gap_ev is None else round(float(kane_gap_ev), 12))[4])


# ---- quantum-confined Stark effect -----------------------------------------------------

#: Second-order coefficient of the infinite well: alpha = C e^2 m L^4 / hbar^2,
#: C = (15 - pi^2) / (12 pi^4) (Bastard, Mendez, Chang & Esaki, PRB 28, 3241 (1983)).
BOX_POLARIZABILITY_COEFF: float = (15.0 - math.pi**2) / (12.0 * math.pi**4)
_HBAR2_OVER_M0_EV_NM2: float = constants.hbar**2 / constants.m_e / constants.e * 1e18


def stark_polarizability(br_fraction, edges_nm,
                         material_params: materials.MaterialParameters = materials.DEFAULT_PARAMETERS
                         ) -> np.ndarray:
    """Exciton polarisability along each edge, e nm^2 / V (see the module docstring).

    ``1/alpha_i = 1/alpha_box,i + 1/alpha_H``: strong-confinement electron + hole
    ``C (m_e + m_h) L_i^4 / hbar^2`` in series with the hydrogenic relative-motion
    value ``(9/2) 4 pi eps0 eps a_B^3``.
    """
    e = _edges(edges_nm)
    m_sum = float(materials.electron_mass(br_fraction, material_params) + materials.hole_mass(br_fraction, material_params))
    box = BOX_POLARIZABILITY_COEFF * m_sum * e**4 / _HBAR2_OVER_M0_EV_NM2
    eps = float(materials.dielectric_constant(br_fraction, "exciton", material_params))
    ab = float(materials.bohr_radius_nm(br_fraction, material_params))
    hyd = 4.5 * eps * ab**3 / COULOMB_EV_NM
    return 1.0 / (1.0 / box + 1.0 / hyd)


# ---- Forster transfer between domains ---------------------------------------------------

#: Absorption coefficient of the perovskite above its band edge (1/cm), order of magnitude
#: for direct-gap lead halide perovskites (illustrative, unchecked); R0 ~ alpha^(1/6).
ABSORPTION_PER_CM: float = 1.0e5


def forster_r0_nm(donor_ev: float, acceptor_ev: float, acceptor_volume_nm3: float, *,
                  donor_linewidth_uev: float = 200.0, kappa2: float = 2.0 / 3.0,
                  refractive_index: float = 2.3, quantum_yield: float = 1.0,
                  absorption_per_cm: float = ABSORPTION_PER_CM) -> float:
    """Forster radius (nm) from the spectral overlap of a donor line and an acceptor domain.

    ``R0^6 = 9 kappa^2 Q_D / (128 pi^5 n^4) int f_D(lambda) sigma_A(lambda) lambda^4 dlambda``
    with the donor line a normalised Lorentzian and the acceptor cross-section
    ``sigma_A = alpha V_A`` above the acceptor's exciton energy (zero below).
    """
    for name, v in (("acceptor_volume_nm3", acceptor_volume_nm3), ("refractive_index", refractive_index),
                    ("donor_linewidth_uev", donor_linewidth_uev), ("absorption_per_cm", absorption_per_cm)):
        require_positive(name, v)
    e = donor_ev + np.linspace(-40, 40, 4001) * donor_linewidth_uev * 1e-6
    g = 0.5 * donor_linewidth_uev * 1e-6
    line = g / np.pi / ((e - donor_ev) ** 2 + g**2)
    line /= np.trapezoid(line, e)
    sigma_cm2 = absorption_per_cm * acceptor_volume_nm3 * 1e-21 * (e >= acceptor_ev)
    lam_cm = materials.HC_EV_NM / e * 1e-7
    overlap = np.trapezoid(line * sigma_cm2 * lam_cm**4, e)   # cm^6 (f_D normalised in energy)
    r0_6 = 9 * kappa2 * quantum_yield * overlap / (128 * np.pi**5 * refractive_index**4)
    return float(r0_6 ** (1 / 6) * 1e7)


def forster_geometry_factor(donor_lo, donor_hi, acceptor_lo, acceptor_hi, *, n_sub: int = 6,
                            r_min_nm: float = 0.6) -> tuple[float, bool]:
    """``<R^-6>`` (nm^-6) over the two boxes and whether the point-dipole form holds.

    Point-dipole Forster needs ``R`` (centre distance) larger than the domains; adjacent
    domains are not. Then the rate uses the volume average of ``r^-6`` over ``n_sub^3``
    sub-cells of each box, with separations cut at ``r_min_nm`` (one lattice constant):
    the contact region dominates and the result scales with ``r_min^-2`` (an
    order-of-magnitude estimate: transfer efficiency ~1 whenever it applies).
    """
    boxes = [np.asarray(x, float) for x in (donor_lo, donor_hi, acceptor_lo, acceptor_hi)]
    centres = [(boxes[0] + boxes[1]) / 2, (boxes[2] + boxes[3]) / 2]
    r = float(np.linalg.norm(centres[0] - centres[1]))
    size = max(float(np.max(boxes[1] - boxes[0])), float(np.max(boxes[3] - boxes[2])))
    if r > size:
        return r**-6, True
    u = (np.arange(n_sub) + 0.5) / n_sub

    def points(lo, hi):
        g = np.stack(np.meshgrid(u, u, u, indexing="ij"), -1).reshape(-1, 3)
        return lo + g * (hi - lo)

    d = np.linalg.norm(points(*boxes[:2])[:, None, :] - points(*boxes[2:])[None, :, :], axis=-1)
    return float(np.mean(np.maximum(d, r_min_nm) ** -6.0)), False

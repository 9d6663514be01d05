r"""Growth of mixed-halide NC populations: nucleation, aggregation, coalescence (seed Fig. 2).

The seed study (Liu, Zhu, Pols et al., Nano Lett. 23, 10089 (2023), Fig. 2) explains
its multi-domain NCs by classical nucleation: Br-rich and I-rich nuclei form, nuclei
that sit close together coalesce into one NC with Ruddlesden-Popper (RP) faults
between them, and isolated nuclei grow into homogeneous NCs. This module turns that
picture into a stochastic simulation whose multi-domain fraction *emerges* from the
nucleation and aggregation statistics; nothing assigns it directly.

Model
-----
1. **Driving force.** A nucleus of Br fraction f forms from a solution whose halide
   supply has Br fraction ``f_sol`` and total supersaturation S. With an ideal solid
   solution plus a regular-solution mixing enthalpy Omega, the chemical-potential gain
   per formula unit is (derived from mu_X^sol - mu_X^solid for X = Br, I)::

       dmu(f) = kT ln S - kT [f ln(f/f_sol) + (1-f) ln((1-f)/(1-f_sol))] - Omega f (1-f)

2. **Classical nucleation theory** (Gibbs; e.g. Mullin, *Crystallization*, 4th ed.,
   ch. 5; for NCs Thanh, Maclean & Mahiddine, Chem. Rev. 114, 7610 (2014))::

       r*    = 2 gamma v / dmu
       dG*   = 16 pi gamma^3 v^2 / (3 dmu^2)
       J(f)  = A exp(-dG*(f) / kT)          [nuclei nm^-3 s^-1 per unit f]

   with v(f) = a(f)^3 the volume of one formula unit (one pseudo-cubic cell; a(f) by
   Vegard's law, :func:`nanodomains.materials.lattice_constant_pm`) and gamma(f) the
   nucleus/solution interfacial energy, linear in f. Nucleus compositions are drawn
   from J(f) itself (inverse-CDF sampling on a fine grid), so the composition spread,
   and its Br-rich / I-rich tails, follows from CNT: a higher supersaturation widens
   it. ``f_sol`` is solved (Brent) so that the mean nucleus composition equals the
   nominal Br fraction (mass balance with the nominal product composition).
3. **Spatial aggregation: a Matern cluster process.** Background nuclei form a Poisson
   process of intensity ``t_burst * int J(f, S_bulk) df``. Supersaturation hot spots
   (inhomogeneous mixing after injection) form a Poisson process of intensity
   ``hotspot_density_nm3``; each holds Poisson(mu) nuclei, uniform in a ball of radius
   ``hotspot_radius_nm``, with ``mu = t_burst V_ball int J(f, S_hot) df``. Nuclei closer
   than ``capture_distance_nm`` (pairs found with a k-d tree in a periodic box) belong
   to one NC (connected components of that contact graph).
4. **Coalescence.** Inside one NC, nuclei are sorted by lattice constant and grouped
   greedily: a nucleus merges into the current group if its lattice mismatch
   ``|a_i - a_j| / mean(a)`` with every member is at most ``mismatch_threshold``
   (complete linkage; the merged composition is the growth-weighted mean), otherwise
   it starts a new domain, separated by an RP fault. (Single linkage would chain a
   large cluster of finely spaced compositions into one domain.) Domains are stacked
   as {100} slabs along one crystal axis with alternating registry (shift 0 /
   1/2 a<111>), so every boundary is an RP fault. Slabs follow
   the order of their nuclei along the cluster's longest extent, and each slab's
   thickness is proportional to the summed growth weight of its nuclei (Gamma
   distributed, shape ``growth_weight_shape``). A slab thinner than
   ``min_domain_cells`` is overgrown by its neighbours (dropped, its volume shared).
5. **Growth.** Each nucleus (or merged group) templates the composition of the domain
   it grows into (halides attach in the domain's ratio); an isolated nucleus becomes a
   homogeneous NC. Final NC edges are ligand limited: a normal distribution truncated
   to ``edge_range_nm`` (the seed's 10-20 nm), with a small per-axis aspect scatter.

Fault or coherent interface, from energies (``fault_rule="energy"``)
--------------------------------------------------------------------
Replaces the 1 % mismatch threshold when a computed barrier table is given
(:func:`energy_rule_parameters`). Geometry (a coherent-bicrystal estimate): two cubic
nuclei of edge L meet face to face; their centres are then L apart, so L is the
capture distance. A coherent interface forces both lattices to one in-plane spacing:
each nucleus carries half the misfit eps = ``|a_i - a_j|`` / mean(a) as a biaxial strain
over its whole volume (the coherent-film energy of Matthews & Blakeslee, J. Cryst.
Growth 27, 118 (1974), per unit area M eps^2 h, applied to both nuclei), so::

    E_coh = 2 M (eps/2)^2 L^3 = M eps^2 L^3 / 2,     M = 3 K (1 - 2 nu) / (1 - nu)

(M the biaxial modulus from the bulk modulus K of the table and a Poisson ratio nu).
An RP fault decouples the two lattices at the cost ``E_RP = gamma_RP L^2`` with the
computed fault formation energy. The pair forms a fault when E_coh > E_RP, i.e. when
``eps > eps_c = sqrt(2 gamma_RP / (M L))``; gamma_RP and K are interpolated in the Br
fraction between the table's compositions at the pair's mean composition. The
complete-linkage grouping of step 4 then uses eps_c instead of the fixed threshold.
A fault energy <= 0 (the shipped CHGNet table: -0.007 to -0.058 J/m^2, within the
model's error, i.e. ``|gamma_RP|`` <~ 0.1 J/m^2 with the sign unresolved) gives eps_c = 0:
every coalescence of nuclei with different lattice constants forms a fault.
``energy_rule_parameters(..., gamma_j_m2=g)`` sets one fault energy for all
compositions, for scans over that model uncertainty.
``poisson_ratio`` 0.30 is an assumed value (typical of DFT elastic constants of
halide perovskites; unchecked); the strained volume (whole nuclei) is an upper bound,
so eps_c is a lower bound.

Parameters (:class:`GrowthParameters`) and their status
-------------------------------------------------------
* ``temperature_k`` 433 K: hot-injection synthesis of CsPbX3 NCs at 140-200 C
  (Protesescu et al., Nano Lett. 15, 3692 (2015)) (unchecked).
* v(f) from Vegard's law with the cubic end members of :mod:`nanodomains.materials`
  (Moller 1958; Trots 2008) (unchecked there).
* ``interfacial_energy_*_j_m2`` 0.05 J/m^2: **phenomenological** (a ligand-covered
  nucleus/solvent interface, below DFT vacuum surface energies; not measured for
  these NCs).
* ``ln_supersaturation_bulk`` 4.5 and ``ln_supersaturation_hotspot`` 5.5:
  **phenomenological** (hot injection creates a burst of very high supersaturation).
* ``mixing_enthalpy_ev`` Omega = 0: ideal solid solution by default; a positive
  value (a miscibility gap, as computed for MAPb(I,Br)3 by Brivio et al., JPCL 7,
  1083 (2016), unchecked) makes the nucleus compositions bimodal.
* ``prefactor_nm3_s`` A, ``burst_duration_s``, ``hotspot_radius_nm``,
  ``capture_distance_nm``, ``growth_weight_shape``, ``mismatch_threshold`` (1 %,
  below the seed's ~2 % between R1 and R2), ``edge_*``: **phenomenological**.
* ``hotspot_density_nm3``: **calibrated** (:func:`calibrate`) so that the preset
  :data:`SEED_PRESET` gives a multi-domain fraction of 0.31 for CsPbBr1.2I1.8 (the
  seed: ~40 of ~130 NCs). Every other statistic (domains per NC, composition spread,
  domain sizes) and the fraction at other compositions are predictions of the model.

Limitations: domains are slabs (the data model needs boxes, and slab stacks keep
every boundary an RP fault); coalescence is instantaneous; Ostwald ripening and
post-synthetic ion exchange are not modelled.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np
from scipy import constants, optimize
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from numba import njit
from scipy.spatial import cKDTree

from nanodomains import materials
from nanodomains.errors import InputError, require_positive
from nanodomains.files import atomic_path
from nanodomains.records.populations import GrowthPopulationSummary, NucleationStatistics, Statistics
from nanodomains.seeds import check_seed
from nanodomains.seeds import rng as make_rng

KB_EV: float = materials.KB_EV  # Boltzmann constant, eV/K (materials.py)
J_M2_TO_EV_NM2: float = 1.0 / constants.e * 1e-18  # 1 J/m^2 in eV/nm^2
SEED_FORMULAS = ("CsPbBr1.2I1.8", "CsPbBr2.1I0.9", "CsPbBr1.8I1.2", "CsPbBr1.5I1.5", "CsPbBr0.9I2.1")
_F_GRID = np.linspace(1e-4, 1 - 1e-4, 4001)


@dataclass(frozen=True)
class GrowthParameters:
    """Parameters of the growth model (units in the names; see module docstring)."""

    temperature_k: float = 433.0
    interfacial_energy_br_j_m2: float = 0.05
    interfacial_energy_i_j_m2: float = 0.05
    ln_supersaturation_bulk: float = 4.5
    ln_supersaturation_hotspot: float = 5.15
    mixing_enthalpy_ev: float = 0.0
    prefactor_nm3_s: float = 1.7e7
    burst_duration_s: float = 1.0
    hotspot_density_nm3: float = 1.78e-5  # calibrated, see SEED_PRESET
    hotspot_radius_nm: float = 4.0
    capture_distance_nm: float = 6.0
    mismatch_threshold: float = 0.01
    growth_weight_shape: float = 4.0
    edge_mean_nm: float = 15.0
    edge_sd_nm: float = 2.5
    edge_range_nm: tuple[float, float] = (10.0, 20.0)
    aspect_sd: float = 0.05
    min_domain_cells: int = 3
    lattice_convention: str = "cubic"
    fault_rule: str = "threshold"
    #: ((Br fraction, gamma_RP J/m^2, bulk modulus GPa), ...) from a barrier table
    fault_energy_curve: tuple = ()
    poisson_ratio: float = 0.30
    status: dict = field(default_factory=lambda: {
        "temperature_k": "Protesescu 2015 Nano Lett. 15, 3692 (hot injection 140-200 C) (unchecked)",
        "interfacial_energy": "phenomenological",
        "ln_supersaturation": "phenomenological",
        "mixing_enthalpy_ev": "ideal solution (Brivio 2016 JPCL 7, 1083 for a MAPb(I,Br)3 gap; unchecked)",
        "prefactor_nm3_s": "phenomenological",
        "burst_duration_s": "phenomenological",
        "hotspot_density_nm3": "phenomenological",
        "hotspot_radius_nm": "phenomenological",
        "capture_distance_nm": "phenomenological",
        "mismatch_threshold": "phenomenological (below the seed's ~2 % R1/R2 mismatch)",
        "edges": "seed paper: edges 10-20 nm",
    })

    def validate(self) -> "GrowthParameters":
        """Raise :class:`InputError` naming the first invalid field."""
        for name in ("temperature_k", "interfacial_energy_br_j_m2", "interfacial_energy_i_j_m2",
                     "ln_supersaturation_bulk", "ln_supersaturation_hotspot", "prefactor_nm3_s",
                     "burst_duration_s", "hotspot_radius_nm", "capture_distance_nm",
                     "mismatch_threshold", "growth_weight_shape", "edge_mean_nm"):
            require_positive(name, getattr(self, name))
        if not (math.isfinite(self.hotspot_density_nm3) and self.hotspot_density_nm3 >= 0):
            raise InputError(f"hotspot_density_nm3 must be >= 0, got {self.hotspot_density_nm3!r}")
        if not (math.isfinite(self.mixing_enthalpy_ev) and 0 <= self.mixing_enthalpy_ev < 1):
            raise InputError(f"mixing_enthalpy_ev must lie in [0, 1) eV, got {self.mixing_enthalpy_ev!r}")
        lo, hi = self.edge_range_nm
        if not (0 < lo < hi <= 200):
            raise InputError(f"edge_range_nm must be (lo, hi) with 0 < lo < hi <= 200, got {self.edge_range_nm}")
        if not (0 <= self.edge_sd_nm and 0 <= self.aspect_sd < 0.5):
            raise InputError(f"edge_sd_nm must be >= 0 and aspect_sd in [0, 0.5), got "
                             f"{self.edge_sd_nm!r}, {self.aspect_sd!r}")
        if int(self.min_domain_cells) != self.min_domain_cells or self.min_domain_cells < 1:
            raise InputError(f"min_domain_cells must be an integer >= 1, got {self.min_domain_cells!r}")
        if self.fault_rule not in ("threshold", "energy"):
            raise InputError(f"fault_rule must be 'threshold' or 'energy', got {self.fault_rule!r}")
        if self.fault_rule == "energy":
            if len(self.fault_energy_curve) == 0:
                raise InputError("fault_rule 'energy' needs fault energies and bulk moduli from a barrier table "
                                 "(energy_rule_parameters)")
            for row in self.fault_energy_curve:
                f, g, k = row
                if not (0 <= f <= 1 and math.isfinite(g) and abs(g) < 1.0 and math.isfinite(k) and k > 0):
                    raise InputError(f"fault_energy_curve row {row}: need Br fraction in [0, 1], a finite "
                                     "|gamma| < 1 J/m^2, K > 0")
        if not 0 <= self.poisson_ratio < 0.5:
            raise InputError(f"poisson_ratio must lie in [0, 0.5), got {self.poisson_ratio!r}")
        if self.lattice_convention not in ("cubic", "pseudocubic"):
            raise InputError(f"lattice_convention must be 'cubic' or 'pseudocubic', got "
                             f"{self.lattice_convention!r}")
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["edge_range_nm"] = list(self.edge_range_nm)
        d["fault_energy_curve"] = [list(r) for r in self.fault_energy_curve]
        return d

    def critical_mismatch(self, br_fraction):
        """Mismatch above which two coalescing nuclei form an RP fault (module docstring).

        ``threshold`` rule: ``mismatch_threshold``; ``energy`` rule:
        ``sqrt(2 gamma_RP / (M L))`` at the given Br fraction(s).
        """
        f = np.asarray(br_fraction, dtype=float)
        if self.fault_rule == "threshold":
            return np.full(f.shape, self.mismatch_threshold)
        rows = sorted(self.fault_energy_curve)
        fs = np.array([r[0] for r in rows])
        gamma = np.interp(f, fs, [r[1] for r in rows])  # J/m^2
        k_pa = np.interp(f, fs, [r[2] for r in rows]) * 1e9
        nu = self.poisson_ratio
        m_pa = 3 * k_pa * (1 - 2 * nu) / (1 - nu)
        # gamma <= 0: a fault costs nothing, so any misfit makes one (eps_c = 0)
        return np.sqrt(2 * np.maximum(gamma, 0.0) / (m_pa * self.capture_distance_nm * 1e-9))


def energy_rule_parameters(table, params: "GrowthParameters | None" = None, energy_shift_j_m2: float = 0.0,
                           gamma_j_m2: float | None = None, **changes) -> "GrowthParameters":
    """Growth parameters with the energy fault rule from a barrier table's fault energies.

    Every ``FaultEnergy`` of the table needs a bulk modulus; a missing one is an error
    naming the composition. ``energy_shift_j_m2`` shifts every fault energy (for the
    propagation of its uncertainty); ``gamma_j_m2`` replaces every fault energy by one
    value (a scan over the model uncertainty; the bulk moduli stay the table's).
    """
    rows = []
    for fe in table.faults:
        if fe.energy_j_per_m2.value is None:
            raise InputError(f"barrier table: fault energy of {fe.composition} is missing (failed calculation)")
        if fe.bulk_modulus_gpa is None or fe.bulk_modulus_gpa.value is None:
            raise InputError(f"barrier table: no bulk modulus for {fe.composition} (needed for the strain energy)")
        g = float(fe.energy_j_per_m2.value) if gamma_j_m2 is None else float(gamma_j_m2)
        rows.append((float(fe.br_fraction), g + energy_shift_j_m2,
                     float(fe.bulk_modulus_gpa.value)))
    if not rows:
        raise InputError("barrier table holds no RP fault energies: the energy fault rule cannot be used")
    base = SEED_PRESET if params is None else params
    return replace(base, fault_rule="energy", fault_energy_curve=tuple(rows), **changes).validate()


#: Preset for the seed study. ``hotspot_density_nm3`` is the one calibrated value:
#: ``calibrate(0.31, "CsPbBr1.2I1.8", bracket=(1e-6, 1e-4))`` (3 x 20,000 NCs, seeds
#: 101-103) returned 1.778e-5 nm^-3 with a multi-domain fraction of 0.3102 +/- 0.0019.
SEED_PRESET = GrowthParameters()


# ---- classical nucleation theory ------------------------------------------------

def driving_force_ev(br_fraction, ln_supersaturation: float, solution_br_fraction: float,
                     temperature_k: float, mixing_enthalpy_ev: float = 0.0):
    """Chemical-potential gain per formula unit (eV) for a nucleus of Br fraction f.

    ``dmu = kT ln S - kT KL(f || f_sol) - Omega f (1 - f)`` (module docstring, step 1).
    """
    f = np.clip(np.asarray(br_fraction, dtype=float), 1e-12, 1 - 1e-12)
    fs = float(solution_br_fraction)
    kt = KB_EV * temperature_k
    kl = f * np.log(f / fs) + (1 - f) * np.log((1 - f) / (1 - fs))
    return kt * ln_supersaturation - kt * kl - mixing_enthalpy_ev * f * (1 - f)


def _cnt_terms(br_fraction, ln_supersaturation, solution_br_fraction, params):
    """Driving force dmu (eV), interfacial energy gamma (eV/nm^2), cell volume v (nm^3)."""
    f = np.asarray(br_fraction, dtype=float)
    dmu = driving_force_ev(f, ln_supersaturation, solution_br_fraction, params.temperature_k,
                           params.mixing_enthalpy_ev)
    gamma = J_M2_TO_EV_NM2 * (params.interfacial_energy_i_j_m2
                              + f * (params.interfacial_energy_br_j_m2 - params.interfacial_energy_i_j_m2))
    v_nm3 = (np.asarray(materials.lattice_constant_pm(f, params.lattice_convention)) / 1000.0) ** 3
    return dmu, gamma, v_nm3


def nucleation_barrier_ev(br_fraction, ln_supersaturation: float, solution_br_fraction: float,
                          params: GrowthParameters = SEED_PRESET):
    """CNT barrier ``dG* = 16 pi gamma^3 v^2 / (3 dmu^2)`` in eV (inf where dmu <= 0)."""
    dmu, gamma, v_nm3 = _cnt_terms(br_fraction, ln_supersaturation, solution_br_fraction, params)
    with np.errstate(divide="ignore", over="ignore"):
        return np.where(dmu > 0, 16 * np.pi * gamma**3 * v_nm3**2 / (3 * np.maximum(dmu, 1e-300) ** 2), np.inf)


def critical_radius_nm(br_fraction, ln_supersaturation: float, solution_br_fraction: float,
                       params: GrowthParameters = SEED_PRESET):
    """CNT critical radius ``r* = 2 gamma v / dmu`` in nm."""
    dmu, gamma, v_nm3 = _cnt_terms(br_fraction, ln_supersaturation, solution_br_fraction, params)
    return 2 * gamma * v_nm3 / dmu


def nucleation_rate(br_fraction, ln_supersaturation: float, solution_br_fraction: float,
                    params: GrowthParameters = SEED_PRESET):
    """CNT rate density ``J(f) = A exp(-dG*/kT)`` in nuclei nm^-3 s^-1 per unit f."""
    kt = KB_EV * params.temperature_k
    return params.prefactor_nm3_s * np.exp(
        -nucleation_barrier_ev(br_fraction, ln_supersaturation, solution_br_fraction, params) / kt)


def _rate_on_grid(ln_s: float, f_sol: float, params: GrowthParameters) -> tuple[np.ndarray, float]:
    """J on the composition grid and its integral over f (trapezoid)."""
    j = nucleation_rate(_F_GRID, ln_s, f_sol, params)
    return j, float(np.trapezoid(j, _F_GRID))


def solution_br_fraction(nominal_br_fraction: float, params: GrowthParameters = SEED_PRESET) -> float:
    """Br fraction of the halide supply that makes the mean nucleus composition nominal.

    Mass balance over both nucleus populations (background and hot spots), weighted by
    their expected numbers per unit volume.
    """
    f0 = float(nominal_br_fraction)
    if not (0.01 <= f0 <= 0.99):
        raise InputError(f"nominal Br fraction must lie in [0.01, 0.99] for the growth model, got {f0}")

    def mean_minus_target(fs):
        jb, nb = _rate_on_grid(params.ln_supersaturation_bulk, fs, params)
        jh, nh = _rate_on_grid(params.ln_supersaturation_hotspot, fs, params)
        wb, wh = _population_weights(nb, nh, params)
        mean = (wb * np.trapezoid(jb * _F_GRID, _F_GRID) / max(nb, 1e-300)
                + wh * np.trapezoid(jh * _F_GRID, _F_GRID) / max(nh, 1e-300)) / (wb + wh)
        return mean - f0

    return float(optimize.brentq(mean_minus_target, 1e-4, 1 - 1e-4, xtol=1e-7))


def _population_weights(int_j_bulk: float, int_j_hot: float, params: GrowthParameters):
    """Expected nuclei per nm^3 from background and from hot spots."""
    rho_b = params.burst_duration_s * int_j_bulk
    v_ball = 4.0 / 3.0 * np.pi * params.hotspot_radius_nm**3
    mu = params.burst_duration_s * v_ball * int_j_hot
    return rho_b, params.hotspot_density_nm3 * mu


def nucleation_summary(nominal_formula: str, params: GrowthParameters = SEED_PRESET) -> dict:
    """CNT numbers at the nominal composition (barriers, radii, rates, cluster sizes)."""
    params.validate()
    f0 = materials.parse_formula(nominal_formula)
    fs = solution_br_fraction(f0, params)
    kt = KB_EV * params.temperature_k
    out = {"nominal_br_fraction": f0, "solution_br_fraction": fs, "kT_ev": kt}
    for label, ln_s in (("bulk", params.ln_supersaturation_bulk), ("hotspot", params.ln_supersaturation_hotspot)):
        j, total = _rate_on_grid(ln_s, fs, params)
        p = j / total
        mean = float(np.trapezoid(p * _F_GRID, _F_GRID))
        sd = float(np.sqrt(np.trapezoid(p * (_F_GRID - mean) ** 2, _F_GRID)))
        out[label] = {
            "ln_supersaturation": ln_s,
            "barrier_kT": float(nucleation_barrier_ev(f0, ln_s, fs, params) / kt),
            "critical_radius_nm": float(critical_radius_nm(f0, ln_s, fs, params)),
            "rate_nm3_s": total,
            "nucleus_br_fraction_mean": mean,
            "nucleus_br_fraction_sd": sd,
        }
    rho_b, rho_h = _population_weights(out["bulk"]["rate_nm3_s"], out["hotspot"]["rate_nm3_s"], params)
    v_ball = 4.0 / 3.0 * np.pi * params.hotspot_radius_nm**3
    out["background_nuclei_nm3"] = rho_b
    out["nuclei_per_hotspot"] = params.burst_duration_s * v_ball * out["hotspot"]["rate_nm3_s"]
    out["hotspot_nuclei_nm3"] = rho_h
    return out


# ---- population simulation ------------------------------------------------------

@dataclass
class Population:
    """A simulated NC population, stored as flat arrays; NCs are built lazily.

    Attributes
    ----------
    nominal_formula : str
    seed : int
    params : GrowthParameters
    edges_nm : (N, 3) float
    crystal_seed : (N,) int64, the ``seed`` each NC model records
    n_domains : (N,) int
    domain_offset : (N + 1,) int, domains of NC i are ``domain_offset[i]:domain_offset[i+1]``
    domain_br_fraction : (M,) float
    domain_shifted : (M,) bool
    slab_axis : (N,) int, stacking axis (0, 1, 2)
    domain_lo_cell, domain_hi_cell : (M,) int, slab bounds in reference cells along the axis
    n_cells : (N, 3) int, reference cells per axis
    n_nuclei : (N,) int, nuclei that formed the NC
    nucleus_br_fraction : (K,) float, composition of every nucleus used
    nucleus_from_hotspot : (K,) bool
    dropped_domains : int, groups overgrown because thinner than ``min_domain_cells``
    solution_br_fraction : float
    """

    nominal_formula: str
    seed: int
    params: GrowthParameters
    edges_nm: np.ndarray
    crystal_seed: np.ndarray
    n_domains: np.ndarray
    domain_offset: np.ndarray
    domain_br_fraction: np.ndarray
    domain_shifted: np.ndarray
    slab_axis: np.ndarray
    domain_lo_cell: np.ndarray
    domain_hi_cell: np.ndarray
    n_cells: np.ndarray
    n_nuclei: np.ndarray
    nucleus_br_fraction: np.ndarray
    nucleus_from_hotspot: np.ndarray
    dropped_domains: int
    solution_br_fraction: float

    def __len__(self) -> int:
        return int(len(self.n_domains))

    @property
    def reference_lattice_nm(self) -> float:
        f0 = materials.parse_formula(self.nominal_formula)
        return float(materials.lattice_constant_pm(f0, self.params.lattice_convention)) / 1000.0

    @property
    def multi_domain(self) -> np.ndarray:
        return self.n_domains > 1

    # ---- per-NC records -----------------------------------------------------------

    def record(self, i: int) -> dict:
        """The ``nc.json`` dict of NC ``i`` (same schema as ``NanoCrystal.model_dump``)."""
        if not 0 <= i < len(self):
            raise InputError(f"NC index {i} outside the population of {len(self)}")
        a = self.reference_lattice_nm
        edges = [float(e) for e in self.edges_nm[i]]
        axis = int(self.slab_axis[i])
        n_axis = int(self.n_cells[i, axis])
        s, e = int(self.domain_offset[i]), int(self.domain_offset[i + 1])
        domains, boundaries = [], []
        for k, d in enumerate(range(s, e)):
            lo, hi = [0.0, 0.0, 0.0], list(edges)
            lo_c, hi_c = int(self.domain_lo_cell[d]), int(self.domain_hi_cell[d])
            lo[axis] = 0.0 if lo_c == 0 else lo_c * a
            hi[axis] = edges[axis] if hi_c == n_axis else hi_c * a
            f = float(self.domain_br_fraction[d])
            domains.append({
                "id": k, "br_fraction": f,
                "shift": [0.5, 0.5, 0.5] if self.domain_shifted[d] else [0.0, 0.0, 0.0],
                "region": {"lo_nm": lo, "hi_nm": hi}, "formula": materials.format_formula(f)})
            if k > 0:
                normal = [0, 0, 0]
                normal[axis] = 1
                other = [int(self.n_cells[i, j]) for j in range(3) if j != axis]
                kind = "RP" if self.domain_shifted[d] != self.domain_shifted[d - 1] else "coherent"
                boundaries.append({"domains": [k - 1, k], "normal": normal, "type": kind,
                                   "plane_nm": round(lo_c * a, 4),
                                   "area_nm2": round(other[0] * other[1] * a * a, 4)})
        return {"edges_nm": edges, "nominal_formula": self.nominal_formula,
                "seed": int(self.crystal_seed[i]), "domains": domains, "boundaries": boundaries,
                "lattice_convention": self.params.lattice_convention}

    def crystal(self, i: int, validate: bool = True):
        """NC ``i`` as a :class:`~nanodomains.structure.NanoCrystal` (validated by default)."""
        from nanodomains.structure import NanoCrystal

        rec = self.record(i)
        if validate:
            return NanoCrystal.model_validate(rec)
        return NanoCrystal.model_construct(**rec)

    def crystals(self, validate: bool = True) -> Iterator:
        """Iterate over all NCs as :class:`NanoCrystal` models (built one at a time)."""
        for i in range(len(self)):
            yield self.crystal(i, validate=validate)

    def to_jsonl(self, path: str | Path) -> Path:
        """Write one ``nc.json`` record per line, atomically."""
        with atomic_path(path) as tmp, tmp.open("w") as fh:
            for i in range(len(self)):
                fh.write(json.dumps(self.record(i), separators=(",", ":")))
                fh.write("\n")
        return Path(path)

    # ---- statistics ---------------------------------------------------------------

    def domain_volumes_nm3(self) -> np.ndarray:
        """Volume of every domain (flat, aligned with ``domain_br_fraction``)."""
        a = self.reference_lattice_nm
        nc_of = np.repeat(np.arange(len(self)), self.n_domains)
        thick = (self.domain_hi_cell - self.domain_lo_cell).astype(float)
        cells = self.n_cells[nc_of].astype(float)
        other = np.prod(cells, axis=1) / cells[np.arange(len(nc_of)), self.slab_axis[nc_of]]
        return thick * other * a**3

    def rp_fault_mask(self) -> np.ndarray:
        """(M,) bool: the domain meets the previous slab of its NC across an RP fault."""
        mask = np.r_[False, self.domain_shifted[1:] != self.domain_shifted[:-1]]
        mask[self.domain_offset[:-1]] = False  # first slab of an NC
        return mask

    def rp_faults(self) -> np.ndarray:
        """RP faults of every NC (registry changes between neighbouring slabs), (N,) int.

        Examples
        --------
        >>> pop = simulate_population("CsPbBr1.2I1.8", n_crystals=20, seed=1)
        >>> bool((pop.rp_faults() == pop.n_domains - 1).all())
        True
        """
        nc_of = np.repeat(np.arange(len(self)), self.n_domains)
        return np.bincount(nc_of[self.rp_fault_mask()], minlength=len(self)).astype(np.int64)

    def summary(self) -> GrowthPopulationSummary:
        """Population statistics as the simulator's truth record.

        Multi-domain fraction (binomial standard error and Wilson 95 % interval),
        domains and RP faults per NC, composition statistics, domain volumes, edges,
        lattice mismatch across RP faults, and the nucleation numbers only the
        simulator knows; ``settings`` records the seed and the parameters. The analysis
        of the written NC models (:func:`nanodomains.structure.population.summarize_crystals`)
        returns the same record type.

        Examples
        --------
        >>> s = simulate_population("CsPbBr1.2I1.8", n_crystals=20, seed=1).summary()
        >>> s.n_crystals, s.origin, s.settings["seed"], s.multi_domain_fraction.stderr > 0
        (20, 'truth', 1, True)
        """
        is_rp = self.rp_fault_mask()
        a_pm = np.asarray(materials.lattice_constant_pm(self.domain_br_fraction, self.params.lattice_convention))
        mismatch = np.abs(np.diff(a_pm, prepend=np.nan)) / a_pm
        nucleation = NucleationStatistics(
            solution_br_fraction=self.solution_br_fraction, nucleus_br_fraction=Statistics.of(self.nucleus_br_fraction),
            nuclei_per_nc=Statistics.of(self.n_nuclei),
            nuclei_from_hotspots_fraction=float(self.nucleus_from_hotspot.mean()) if len(self.nucleus_from_hotspot)
            else 0.0,
            dropped_thin_domains=int(self.dropped_domains))
        return GrowthPopulationSummary.from_arrays(
            n_domains=self.n_domains, rp_faults=self.rp_faults(), edges_nm=self.edges_nm,
            domain_br_fraction=self.domain_br_fraction, domain_volume_nm3=self.domain_volumes_nm3(),
            rp_lattice_mismatch=mismatch[is_rp], nominal_formula=self.nominal_formula, nucleation=nucleation,
            origin="truth", settings={"seed": self.seed, "n_crystals": len(self),
                                      "nominal_formula": self.nominal_formula, "params": self.params.to_dict()})


def _sample_compositions(rng: np.random.Generator, n: int, density: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws of Br fractions from a density on the composition grid."""
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(_F_GRID))])
    cdf /= cdf[-1]
    return np.interp(rng.random(n), cdf, _F_GRID)


def _nuclei(rng: np.random.Generator, box_nm: float, f_sol: float, params: GrowthParameters):
    """Positions, compositions and hot-spot flags of the nuclei in a periodic cube."""
    jb, int_b = _rate_on_grid(params.ln_supersaturation_bulk, f_sol, params)
    jh, int_h = _rate_on_grid(params.ln_supersaturation_hotspot, f_sol, params)
    vol = box_nm**3
    rho_b = params.burst_duration_s * int_b
    n_b = rng.poisson(rho_b * vol)
    pos_b = rng.random((n_b, 3)) * box_nm
    n_parents = rng.poisson(params.hotspot_density_nm3 * vol)
    mu = params.burst_duration_s * 4.0 / 3.0 * np.pi * params.hotspot_radius_nm**3 * int_h
    kids = rng.poisson(mu, n_parents)
    parents = rng.random((n_parents, 3)) * box_nm
    n_h = int(kids.sum())
    direction = rng.normal(size=(n_h, 3))
    direction /= np.linalg.norm(direction, axis=1)[:, None]
    radius = params.hotspot_radius_nm * rng.random(n_h) ** (1.0 / 3.0)
    pos_h = np.mod(np.repeat(parents, kids, axis=0) + direction * radius[:, None], box_nm)
    pos = np.concatenate([pos_b, pos_h])
    pos[pos >= box_nm] = 0.0  # np.mod of a tiny negative number can return box_nm
    f = np.concatenate([_sample_compositions(rng, n_b, jb), _sample_compositions(rng, n_h, jh)])
    hot = np.concatenate([np.zeros(n_b, bool), np.ones(n_h, bool)])
    return pos, f, hot


def _components(pos: np.ndarray, box_nm: float, capture_nm: float) -> np.ndarray:
    """Connected components of the contact graph (pairs closer than ``capture_nm``)."""
    n = len(pos)
    if n == 0:
        return np.zeros(0, int)
    tree = cKDTree(pos, boxsize=box_nm)
    pairs = tree.query_pairs(capture_nm, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _allocate_cells(weights: np.ndarray, n_cells: int, min_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Slab thicknesses (cells) proportional to ``weights``, each >= ``min_cells``.

    Groups that cannot get ``min_cells`` are dropped (overgrown), smallest first.
    Returns (kept mask, thickness of kept groups, summing to ``n_cells``).
    """
    keep = np.ones(len(weights), bool)
    while True:
        w = np.where(keep, weights, 0.0)
        ideal = w / w.sum() * n_cells
        small = keep & (ideal < min_cells)
        if keep.sum() * min_cells > n_cells or (small.any() and keep.sum() > 1):
            if not small.any():
                small = keep.copy()
            cand = np.flatnonzero(small)
            keep[cand[np.argmin(ideal[cand])]] = False
            if keep.sum() == 1:
                break
            continue
        break
    ideal = np.where(keep, weights, 0.0)
    ideal = ideal / ideal.sum() * n_cells
    cells = np.floor(ideal).astype(int)
    rem = n_cells - cells.sum()
    order = np.argsort(-(ideal - cells) + (~keep) * 1e9)
    cells[order[:rem]] += 1
    return keep, cells[keep]


def simulate_population(nominal_formula: str = "CsPbBr1.2I1.8", n_crystals: int = 130, seed: int = 1,
                        params: GrowthParameters = SEED_PRESET) -> Population:
    """Simulate ``n_crystals`` NCs by nucleation, aggregation, coalescence and growth.

    Parameters
    ----------
    nominal_formula : str
        Nominal composition of the synthesis, e.g. ``"CsPbBr1.2I1.8"``.
    n_crystals : int
        Number of NCs to return (nuclei are simulated in periodic boxes until enough
        clusters exist; the first ``n_crystals`` in random order are kept).
    seed : int
        Seed of the ``numpy.random.Generator`` (:func:`nanodomains.seeds.rng`); recorded
        in the result and its summary; each NC records its own seed drawn from it.
    params : GrowthParameters
        Model parameters; :data:`SEED_PRESET` is calibrated for the seed study.

    Returns
    -------
    Population
    """
    params.validate()
    seed = check_seed(seed)
    if int(n_crystals) != n_crystals or n_crystals < 1:
        raise InputError(f"n_crystals must be an integer >= 1, got {n_crystals!r}")
    n_crystals = int(n_crystals)
    if n_crystals > 10_000_000:
        raise InputError(f"n_crystals must be <= 1e7, got {n_crystals}")
    f0 = materials.parse_formula(nominal_formula)
    f_sol = solution_br_fraction(f0, params)
    rng = make_rng(seed)
    _, int_b = _rate_on_grid(params.ln_supersaturation_bulk, f_sol, params)
    _, int_h = _rate_on_grid(params.ln_supersaturation_hotspot, f_sol, params)
    rho_b = params.burst_duration_s * int_b
    mu = params.burst_duration_s * 4.0 / 3.0 * np.pi * params.hotspot_radius_nm**3 * int_h
    clusters_per_nm3 = rho_b + params.hotspot_density_nm3 * (1.0 - np.exp(-mu))
    if clusters_per_nm3 <= 0:
        raise InputError("the parameters give no nuclei (nucleation rate and hot-spot density are zero)")
    # -- nuclei in periodic boxes until enough NCs exist
    comp_all, f_all, hot_all, pos_all, box_all = [], [], [], [], []
    n_found, offset = 0, 0
    while n_found < n_crystals:
        want = (n_crystals - n_found) * 1.1 + 20
        box = max((want / clusters_per_nm3) ** (1 / 3), 4 * params.capture_distance_nm)
        pos, f, hot = _nuclei(rng, box, f_sol, params)
        if len(pos) == 0:
            continue
        comp = _components(pos, box, params.capture_distance_nm)
        comp_all.append(comp + offset)
        f_all.append(f)
        hot_all.append(hot)
        pos_all.append(pos)
        box_all.append(np.full(len(pos), box))
        offset += int(comp.max()) + 1
        n_found += int(comp.max()) + 1
    comp = np.concatenate(comp_all)
    f = np.concatenate(f_all)
    hot = np.concatenate(hot_all)
    pos = np.concatenate(pos_all)
    box = np.concatenate(box_all)
    # keep a random subset of n_crystals components
    chosen = rng.permutation(offset)[:n_crystals]
    new_id = np.full(offset, -1)
    new_id[chosen] = np.arange(n_crystals)
    nid = new_id[comp]
    sel = nid >= 0
    nid, f, hot, pos, box = nid[sel], f[sel], hot[sel], pos[sel], box[sel]
    return _assemble(nominal_formula, seed, params, f_sol, rng, nid, f, hot, pos, box, n_crystals)


def _assemble(nominal_formula, seed, params, f_sol, rng, nid, f, hot, pos, box, n):
    """Coalescence (composition grouping), slab layout and growth to final edges."""
    a_nm = float(materials.lattice_constant_pm(materials.parse_formula(nominal_formula),
                                               params.lattice_convention)) / 1000.0
    lat = np.asarray(materials.lattice_constant_pm(f, params.lattice_convention))
    weight = rng.gamma(params.growth_weight_shape, 1.0, len(f))
    # sort nuclei by (NC, lattice constant); new group where NC changes or mismatch > threshold
    order = np.lexsort((lat, nid))
    nid, f, hot, pos, box, lat, weight = (nid[order], f[order], hot[order], pos[order], box[order],
                                          lat[order], weight[order])
    new_nc = np.r_[True, nid[1:] != nid[:-1]]
    new_group = _complete_linkage(new_nc, lat, params.critical_mismatch(f))
    gid = np.cumsum(new_group) - 1
    n_groups = int(gid[-1]) + 1
    g_nc = nid[new_group]
    g_w = np.bincount(gid, weights=weight, minlength=n_groups)
    g_f = np.bincount(gid, weights=weight * f, minlength=n_groups) / g_w
    n_nuclei = np.bincount(nid, minlength=n)
    # final edges: truncated normal (ligand-limited size) with aspect scatter
    lo, hi = params.edge_range_nm
    edge = _truncated_normal(rng, params.edge_mean_nm, params.edge_sd_nm, lo, hi, n)
    edges = np.clip(edge[:, None] * (1 + params.aspect_sd * rng.standard_normal((n, 3))), lo, hi)
    edges = np.round(edges, 4)
    n_cells = np.maximum(1, np.rint(edges / a_nm)).astype(int)
    axis = rng.integers(0, 3, n)
    # order of groups along the cluster's longest lab extent (periodic images unwrapped
    # by the minimum image relative to the first nucleus of the NC)
    first = np.flatnonzero(new_nc)
    ref = np.repeat(pos[first], np.diff(np.r_[first, len(pos)]), axis=0)
    rel = pos - ref
    rel -= box[:, None] * np.rint(rel / box[:, None])
    g_pos = np.stack([np.bincount(gid, weights=weight * rel[:, k], minlength=n_groups) / g_w
                      for k in range(3)], axis=1)
    ext = np.stack([np.maximum.reduceat(rel[:, k], first) - np.minimum.reduceat(rel[:, k], first)
                    for k in range(3)], axis=1)
    main_axis = np.argmax(ext, axis=1)
    g_key = g_pos[np.arange(n_groups), main_axis[g_nc]]
    g_order = np.lexsort((g_key, g_nc))
    g_nc, g_w, g_f = g_nc[g_order], g_w[g_order], g_f[g_order]
    groups_per_nc = np.bincount(g_nc, minlength=n)
    g_start = np.r_[0, np.cumsum(groups_per_nc)]
    # slab thicknesses; only NCs with several groups need the allocation
    dropped = 0
    thick_all = np.empty(n_groups, int)
    keep_all = np.ones(n_groups, bool)
    multi = np.flatnonzero(groups_per_nc > 1)
    min_cells = int(params.min_domain_cells)
    for i in multi:
        s, e = g_start[i], g_start[i + 1]
        keep, cells = _allocate_cells(g_w[s:e], int(n_cells[i, axis[i]]), min_cells)
        keep_all[s:e] = keep
        thick_all[s:e][keep] = cells
        dropped += int((~keep).sum())
    single = groups_per_nc == 1
    thick_all[g_start[:-1][single]] = n_cells[single, axis[single]]
    g_nc, g_f, thick = g_nc[keep_all], g_f[keep_all], thick_all[keep_all]
    n_dom = np.bincount(g_nc, minlength=n)
    offset = np.r_[0, np.cumsum(n_dom)]
    cum = np.cumsum(thick)
    hi_cell = cum - np.repeat(cum[offset[:-1]] - thick[offset[:-1]], n_dom)
    lo_cell = hi_cell - thick
    # registries alternate along the stack, the first one random
    first_shift = rng.random(n) < 0.5
    pos_in_nc = np.arange(len(g_nc)) - np.repeat(offset[:-1], n_dom)
    shifted = np.repeat(first_shift, n_dom) ^ (pos_in_nc % 2 == 1)
    shifted[np.repeat(n_dom == 1, n_dom)] = False  # homogeneous NCs: reference registry
    return Population(
        nominal_formula=nominal_formula, seed=int(seed), params=params, edges_nm=edges,
        crystal_seed=rng.integers(0, 2**31 - 1, n), n_domains=n_dom, domain_offset=offset,
        domain_br_fraction=np.round(g_f, 4), domain_shifted=shifted, slab_axis=axis,
        domain_lo_cell=lo_cell, domain_hi_cell=hi_cell, n_cells=n_cells, n_nuclei=n_nuclei,
        nucleus_br_fraction=f, nucleus_from_hotspot=hot, dropped_domains=dropped,
        solution_br_fraction=f_sol)


@njit(cache=True)
def _complete_linkage(new_nc, lattice_pm, threshold):
    """Group flags for nuclei sorted by (NC, lattice constant).

    A nucleus joins the current group if its mismatch with the group's first (smallest
    lattice) member is at most the critical mismatch (per nucleus, ``threshold``; the
    mean of the pair's values), so all members of a group are pairwise within it;
    otherwise it starts a new group (an RP-separated domain).
    """
    n = len(lattice_pm)
    start = np.empty(n, dtype=np.bool_)
    first = 0.0
    first_t = 0.0
    for i in range(n):
        if new_nc[i] or abs(lattice_pm[i] - first) > 0.5 * (threshold[i] + first_t) * 0.5 * (lattice_pm[i] + first):
            start[i] = True
            first = lattice_pm[i]
            first_t = threshold[i]
        else:
            start[i] = False
    return start


def _truncated_normal(rng, mean, sd, lo, hi, n):
    """Normal draws truncated to [lo, hi] by inverse CDF."""
    from scipy.stats import norm

    if sd == 0:
        return np.full(n, float(np.clip(mean, lo, hi)))
    a, b = norm.cdf((lo - mean) / sd), norm.cdf((hi - mean) / sd)
    return mean + sd * norm.ppf(a + rng.random(n) * (b - a))


def calibrate(target_fraction: float = 0.31, nominal_formula: str = "CsPbBr1.2I1.8",
              parameter: str = "hotspot_density_nm3", params: GrowthParameters = SEED_PRESET,
              n_crystals: int = 20000, seeds=(101, 102, 103), bracket=(1e-6, 1e-4),
              rtol: float = 0.002) -> tuple[GrowthParameters, dict]:
    """Calibrate one positive parameter so the multi-domain fraction hits a target.

    Bisection in log space over ``bracket``; each evaluation simulates ``n_crystals``
    NCs for every seed in ``seeds`` (the same seeds at every step: common random
    numbers make the objective smooth). Returns the new parameters and a record of
    the calibration (target, achieved fraction with its standard error, iterations).
    Raises :class:`InputError` if the target is not bracketed.
    """
    if not 0 < target_fraction < 1:
        raise InputError(f"target_fraction must lie in (0, 1), got {target_fraction!r}")
    if not hasattr(params, parameter) or not isinstance(getattr(params, parameter), float):
        raise InputError(f"cannot calibrate {parameter!r}: not a float field of GrowthParameters")

    def fraction(value):
        p = replace(params, **{parameter: float(value)})
        k = n = 0
        for s in seeds:
            pop = simulate_population(nominal_formula, n_crystals, s, p)
            k += int(pop.multi_domain.sum())
            n += len(pop)
        return k / n, n

    lo, hi = (math.log(v) for v in bracket)
    f_lo, _ = fraction(math.exp(lo))
    f_hi, _ = fraction(math.exp(hi))
    if not (min(f_lo, f_hi) <= target_fraction <= max(f_lo, f_hi)):
        raise InputError(f"target {target_fraction} not within [{f_lo:.3f}, {f_hi:.3f}] reached by "
                         f"{parameter} in {bracket}")
    increasing = f_hi > f_lo
    history = []
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        f_mid, n = fraction(math.exp(mid))
        history.append((math.exp(mid), f_mid))
        if abs(f_mid - target_fraction) < rtol or hi - lo < 1e-4:
            break
        if (f_mid < target_fraction) == increasing:
            lo = mid
        else:
            hi = mid
    value = math.exp(mid)
    se = math.sqrt(f_mid * (1 - f_mid) / n)
    return replace(params, **{parameter: value}), {
        "parameter": parameter, "value": value, "target_fraction": target_fraction,
        "achieved_fraction": f_mid, "achieved_fraction_se": se, "n_crystals": n,
        "nominal_formula": nominal_formula, "seeds": list(seeds), "iterations": history}


def predict_fractions(table, formulas=SEED_FORMULAS, n_crystals: int = 5000, seeds=(11, 12),
                      params: GrowthParameters | None = None, hotspot_factor: float = 1.25,
                      model_gammas_j_m2=(0.01, 0.1)) -> list[dict]:
    """Multi-domain fraction per nominal formula with the energy fault rule.

    Uncertainty: the binomial standard error over the simulated NCs, and the fault
    energy's standard error propagated (runs at gamma +- its largest table stderr,
    half the difference), combined in quadrature. Sensitivity to the one calibrated
    parameter: the fraction at ``hotspot_density_nm3`` times and divided by
    ``hotspot_factor``. Model uncertainty of the fault energy (the atomistic model's
    error, larger than the table's stderr): the fraction with every fault energy set to
    each of ``model_gammas_j_m2`` (``model_gamma_scan``).
    """
    base = energy_rule_parameters(table, params)
    se_gamma = max((fe.energy_j_per_m2.stderr or 0.0) for fe in table.faults)

    def frac(p, formula):
        k = n = 0
        for s in seeds:
            pop = simulate_population(formula, n_crystals, s, p)
            k, n = k + int(pop.multi_domain.sum()), n + len(pop)
        return k / n, n

    out = []
    for formula in formulas:
        f, n = frac(base, formula)
        binom = math.sqrt(f * (1 - f) / n)
        if se_gamma > 0:
            lo, _ = frac(energy_rule_parameters(table, params, -se_gamma), formula)
            hi, _ = frac(energy_rule_parameters(table, params, +se_gamma), formula)
            prop = 0.5 * abs(hi - lo)
        else:
            prop = 0.0
        up, _ = frac(replace(base, hotspot_density_nm3=base.hotspot_density_nm3 * hotspot_factor), formula)
        down, _ = frac(replace(base, hotspot_density_nm3=base.hotspot_density_nm3 / hotspot_factor), formula)
        scan = {f"{g:g}": frac(energy_rule_parameters(table, params, gamma_j_m2=g), formula)[0]
                for g in model_gammas_j_m2}
        f0 = materials.parse_formula(formula)
        out.append({"model_gamma_scan": scan, "nominal_formula": formula, "x_br": 3 * f0, "multi_domain_fraction": f,
                    "stderr": math.hypot(binom, prop), "binomial_se": binom, "fault_energy_se_contribution": prop,
                    "critical_mismatch": float(base.critical_mismatch(f0)), "n_crystals": n,
                    "hotspot_sensitivity": {f"x{hotspot_factor:g}": up, f"/{hotspot_factor:g}": down}})
    return out

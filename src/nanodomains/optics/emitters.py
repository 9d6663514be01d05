r"""Dynamics of one nanocrystal with N emitting domains; every trajectory kept as truth.

Each domain of a :class:`~nanodomains.structure.NanoCrystal` is a quantum dot with the
levels of :func:`nanodomains.optics.levels.domain_levels`. This module decides how
bright each domain's lines are and when they are on, and records every state
trajectory so that the analysis can be validated field by field.

Excitation, capture and Forster transfer
----------------------------------------
Mean number of excitons absorbed by the NC per pulse (pulsed) or per lifetime (CW)::

    <N> = (P / P_sat) (V_NC / V_ref),   V_ref = (15 nm)^3

Each exciton relaxes into domain i with probability ``p_i = V_i / sum V`` (absorption
and capture ~ volume). From domain i it is transferred to every lower-gap domain j
(``E_i > E_j + dE_min``) at the Forster rate (PHYSICS.md)::

    k_ij = (1 / tau_i) (R0 / R_ij)^6,

with ``tau_i`` the donor lifetime without acceptors (``1/tau_i = k_r,i + k_nr``),
``R0`` computed from the spectral overlap of the donor line with the acceptor's
absorption (:func:`nanodomains.optics.levels.forster_r0_nm`: kappa^2 = 2/3, n =
sqrt(eps_inf)) and ``R_ij^-6`` the point-dipole value for domains farther apart than
their size, else the volume average over both boxes (domains in contact: the
point-dipole form fails; the average, cut at one lattice constant, is an order-of-
magnitude estimate and ``flow["point_dipole"]`` flags it). Branching ratios ``T_ij = k_ij / G_i``,
``G_i = k_r,i + k_nr + sum_j k_ij``. Excitons arriving in each domain (captured or
transferred) solve ``a = p + T^T a``; the domain emits with quantum yield
``k_r,i / G_i``, so Br-rich donors come out weak. Independent routing of each exciton
(Poisson thinning) makes the per-domain exciton numbers Poisson with mean
``<N> a_i``; the X line of domain i is emitted per pulse with probability
``(1 - exp(-<N> a_i)) QY_i``, the trion with ``trion_brightness`` times that. CW
excitation of the same average power gives the arrival rate ``g = <N> a_i f_rep`` and
the two-level emission rate ``QY g / (1 + g tau)``. ``P_sat = 50 W/cm2`` (illustrative:
<N> = 0.1 at the seed's 5 W/cm2; absorption cross-sections of ~1e-14 cm2 give
~0.01-0.1 per pulse at 10 MHz).

Blinking, charging, bleaching
-----------------------------
Each domain has an on/off process, either two-state (exponential dwell times) or
power-law (dwell-time density ~ t^-alpha between t_min and t_max; Kuno et al., J.
Chem. Phys. 112, 3117 (2000)), and a neutral/charged telegraph (X <-> X*; a charged
domain emits its trion line, Yin et al. PRL 119, 026401 (2017)). Bleaching ends all
emission after an exponential time whose mean scales as ``1/P``. States: ``X``
(neutral, on), ``X*`` (charged, on), ``off``, ``bleached``. Shared events (an NC-level
trap, a charge in the shell) multiply the emission of several domains by one factor
over one interval: their intensity changes correlate.

Spectral diffusion (quantum-confined Stark effect)
--------------------------------------------------
One environmental field along a fixed direction n (random per NC) fluctuates as an
Ornstein-Uhlenbeck process ``F(t)`` (mean ``F0``, s.d. ``sigma_F``, correlation time
``tau_F``) and acts on every domain (PHYSICS.md, Empedocles & Bawendi, Science 278,
2114 (1997))::

    dE_i(t) = -(p_i . n) F(t) - (alpha_i / 2) (F(t)^2 - <F^2>),

with a permanent dipole ``p_i = p_0 (L_i/L_0) u_i`` (u_i random unit vector) and
the polarisability of the confinement model
(:func:`nanodomains.optics.levels.stark_polarizability`, isotropic mean; ~120 e nm^2/V
for an 8 nm CsPbBr1.2I1.8 cube) unless ``stark_polarizability_e_nm2_per_v`` fixes
``alpha_0 (L_i/L_0)^4``. The
stationary mean of the quadratic term is absorbed in the line centre, so the
time-averaged line sits at the truth's ``center_nm``. Because one field drives all
domains, their shifts correlate (sign set by ``p_i . n``). Magnitudes are
illustrative (``p_0 = 0.3 e nm`` ~ 14 D, ``sigma_F = 3 kV/cm`` give ~90 ueV linear
wander for 8 nm domains and ~60 ueV quadratic wander for a 15 nm NC (alpha ~1400 e nm^2/V),
the scale of the seed's 4 K line wander).

Defaults marked illustrative have no measurement behind them. The default keeps R0 =
6 nm (de Weerd 2016, between NCs, unchecked); ``forster_r0_nm=None`` computes it. The computed R0 (~13 nm
for a 558 nm donor line and a 5 x 15 x 15 nm acceptor) exceeds the ~6-7 nm reported
between separate CsPbX3 NCs (de Weerd et al., J. Phys. Chem. C 120, 13310 (2016))
(unchecked): inside one NC the acceptor is large and no ligand shell separates it. With
it the middle (615.83 nm) set of the fig5a preset keeps a quantum yield of 0.19 only,
while the seed shows that set: the computed transfer is not yet the default (it rests
on an illustrative absorption coefficient; numbers and reasoning in docs/optics.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import numpy as np
from scipy import signal
from scipy.spatial.transform import Rotation

from nanodomains import materials
from nanodomains.errors import InputError, require_finite, require_in_range, require_positive
from nanodomains.optics import levels as lv
from nanodomains.records import PLCoupling, PLEmitter, PLEmitters, PLLine, measured
from nanodomains.seeds import SeedLike
from nanodomains.seeds import rng as make_rng
from nanodomains.structure import NanoCrystal

__all__ = [
    "DynamicsParameters",
    "DEFAULT_DYNAMICS",
    "Trajectory",
    "DomainSpec",
    "SharedEvent",
    "Emitter",
    "NCDynamics",
    "simulate_dynamics",
    "domain_specs_from_nc",
    "STATE_CODES",
    "merge_piecewise",
]

STATE_CODES = {"X": 0, "X*": 1, "off": 2, "bleached": 3}
STATE_NAMES = {v: k for k, v in STATE_CODES.items()}
V_REF_NM3 = 15.0**3


@dataclass(frozen=True)
class DynamicsParameters:
    """Parameters of the NC dynamics (see the module docstring; units in the names)."""

    excitation: Literal["pulsed", "cw"] = "pulsed"
    power_w_cm2: float = 5.0                 # seed: ~5 W/cm2
    saturation_power_w_cm2: float = 50.0     # <N> = P/P_sat for a 15 nm NC (illustrative)
    rep_rate_hz: float = 10e6
    nonradiative_rate_per_ns: float = 0.1
    forster_r0_nm: float | None = 6.0       # None: from the spectral overlap (levels.forster_r0_nm)
    forster_min_gap_mev: float = 1.0
    blinking: Literal["two-state", "power-law", "none"] = "two-state"
    on_mean_s: float = 30.0
    off_mean_s: float = 2.0
    power_law_alpha_on: float = 1.6
    power_law_alpha_off: float = 1.8
    power_law_min_s: float = 0.05
    power_law_max_s: float = 200.0
    charge_rate_per_s: float = 1.0 / 80.0
    neutralize_rate_per_s: float = 1.0 / 15.0
    trion_brightness: float = 0.6
    bleach_mean_s: float = 5000.0            # at power_w_cm2 = 5 W/cm2; scales as 1/P
    field_mean_v_per_nm: float = 0.0
    field_sd_v_per_nm: float = 0.0003        # 3 kV/cm (illustrative)
    field_tau_s: float = 5.0
    field_dt_s: float = 0.05
    stark_dipole_e_nm: float = 0.3           # at stark_ref_size_nm (illustrative, ~14 D)
    stark_polarizability_e_nm2_per_v: float | None = None  # None: confinement model (levels)
    stark_ref_size_nm: float = 8.0
    linewidth_uev: float = 200.0             # FWHM of each line (Lorentzian)
    symmetry_weights: tuple[float, float, float] = (0.2, 0.4, 0.4)  # cubic, tetragonal, orthorhombic
    tilt_sd_deg: float = 10.0
    temperature: Literal["4K", "RT"] = "4K"

    def __post_init__(self) -> None:
        if self.forster_r0_nm is not None:
            require_positive("forster_r0_nm", self.forster_r0_nm)
        if self.stark_polarizability_e_nm2_per_v is not None:
            require_in_range("stark_polarizability_e_nm2_per_v", self.stark_polarizability_e_nm2_per_v)
        for name in ("power_w_cm2", "saturation_power_w_cm2", "rep_rate_hz",
                     "on_mean_s", "off_mean_s", "power_law_min_s", "power_law_max_s",
                     "bleach_mean_s", "field_tau_s", "field_dt_s", "stark_ref_size_nm", "linewidth_uev"):
            require_positive(name, getattr(self, name))
        for name in ("nonradiative_rate_per_ns", "forster_min_gap_mev", "charge_rate_per_s",
                     "neutralize_rate_per_s", "trion_brightness", "field_sd_v_per_nm",
                     "stark_dipole_e_nm", "tilt_sd_deg"):
            require_in_range(name, getattr(self, name))
        require_finite("field_mean_v_per_nm", self.field_mean_v_per_nm)
        if self.excitation not in ("pulsed", "cw"):
            raise InputError(f"excitation must be 'pulsed' or 'cw', got {self.excitation!r}")
        if self.blinking not in ("two-state", "power-law", "none"):
            raise InputError(f"blinking must be 'two-state', 'power-law' or 'none', got {self.blinking!r}")
        for name in ("power_law_alpha_on", "power_law_alpha_off"):
            if not require_finite(name, getattr(self, name)) > 1:
                raise InputError(f"{name} must be > 1, got {getattr(self, name)}")
        if self.power_law_max_s <= self.power_law_min_s:
            raise InputError("power_law_max_s must exceed power_law_min_s")
        w = np.asarray(self.symmetry_weights, float)
        if w.shape != (3,) or np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise InputError(f"symmetry_weights must be 3 non-negative numbers, got {self.symmetry_weights!r}")


DEFAULT_DYNAMICS = DynamicsParameters()


# ---- piecewise-constant trajectories -------------------------------------------------

@dataclass
class Trajectory:
    """Piecewise-constant state: ``states[k]`` holds on ``[times[k], times[k+1])``."""

    times: np.ndarray
    states: np.ndarray

    def __post_init__(self) -> None:
        self.times = np.asarray(self.times, dtype=float)
        self.states = np.asarray(self.states)
        if self.times.ndim != 1 or self.states.shape != (self.times.size - 1,):
            raise InputError("trajectory needs len(times) = len(states) + 1")
        if np.any(np.diff(self.times) < 0):
            raise InputError("trajectory times must be non-decreasing")

    def at(self, t) -> np.ndarray:
        idx = np.clip(np.searchsorted(self.times, t, side="right") - 1, 0, self.states.size - 1)
        return self.states[idx]

    def intervals(self, value) -> list[list[float]]:
        """Merged ``[start, end]`` intervals where the state equals ``value``."""
        on = self.states == value
        keep = np.diff(self.times) > 0
        on, t0, t1 = on[keep], self.times[:-1][keep], self.times[1:][keep]
        if not on.any():
            return []
        d = np.diff(np.concatenate([[0], on.astype(int), [0]]))
        starts, stops = np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1
        return [[float(t0[a]), float(t1[b])] for a, b in zip(starts, stops)]

    def as_list(self) -> list[list]:
        names = [STATE_NAMES.get(int(s), str(s)) if np.issubdtype(self.states.dtype, np.integer) else s
                 for s in self.states]
        return [[float(a), float(b), n] for a, b, n in zip(self.times[:-1], self.times[1:], names)]


def _weighted_fraction(breaks: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean of a piecewise-constant function over each interval [edges[k], edges[k+1])."""
    cum = np.concatenate([[0.0], np.cumsum(values * np.diff(breaks))])
    at = np.interp(edges, breaks, cum)
    return np.diff(at) / np.diff(edges)


def merge_piecewise(*trajs: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Several piecewise-constant functions on the union of their breakpoints.

    Each function is ``(times, values)`` with ``values[k]`` holding on
    ``[times[k], times[k+1])``. Returns the sorted union of all breakpoints and, per
    function, its values on each interval of that union.

    Examples
    --------
    >>> breaks, (a, b) = merge_piecewise((np.array([0.0, 2.0, 4.0]), np.array([1, 0])),
    ...                                  (np.array([0.0, 1.0, 4.0]), np.array([5, 6])))
    >>> breaks.tolist(), a.tolist(), b.tolist()
    ([0.0, 1.0, 2.0, 4.0], [1, 1, 0], [5, 6, 6])
    """
    breaks = np.unique(np.concatenate([t for t, _ in trajs]))
    mids = 0.5 * (breaks[:-1] + breaks[1:])
    out = []
    for t, v in trajs:
        idx = np.clip(np.searchsorted(t, mids, side="right") - 1, 0, len(v) - 1)
        out.append(np.asarray(v)[idx])
    return breaks, out


def _dwell_times(rng, n: int, kind: str, mean_s: float, alpha: float, tmin: float, tmax: float) -> np.ndarray:
    if kind == "two-state":
        return rng.exponential(mean_s, n)
    u = rng.random(n)
    a1 = alpha - 1
    return tmin * (1 - u * (1 - (tmin / tmax) ** a1)) ** (-1 / a1)


def _telegraph(rng, duration: float, start_on: bool, draw_on, draw_off) -> tuple[np.ndarray, np.ndarray]:
    """Alternating on/off trajectory on [0, duration], drawn in blocks of 128 dwell times."""
    times, vals = [0.0], []
    state, t = start_on, 0.0
    while t < duration:
        first, second = (draw_on(64), draw_off(64)) if state else (draw_off(64), draw_on(64))
        seq = np.empty(128)
        seq[0::2], seq[1::2] = first, second
        ends = t + np.cumsum(seq)
        n = min(int(np.searchsorted(ends, duration)) + 1, 128)
        times.extend(ends[:n].tolist())
        vals.extend([state if k % 2 == 0 else not state for k in range(n)])
        t = float(ends[n - 1])  # a full block has an even length: the state is unchanged
    out = np.asarray(times)
    out[-1] = duration
    return out, np.asarray(vals, dtype=bool)


# ---- domain description ----------------------------------------------------------------

@dataclass
class DomainSpec:
    """What the dynamics needs of one domain (from an NC model or written by a preset)."""

    id: int
    br_fraction: float
    edges_nm: tuple[float, float, float]
    center_nm: tuple[float, float, float]
    volume_nm3: float
    surface_fraction: float
    levels: lv.DomainLevels
    symmetry: str = "orthorhombic"


@dataclass
class SharedEvent:
    """Emission of ``domains`` multiplied by ``factor`` during ``interval_s`` (correlated change)."""

    domains: tuple[int, ...]
    interval_s: tuple[float, float]
    factor: float
    name: str = "shared event"

    def __post_init__(self) -> None:
        t0, t1 = (require_finite("event interval", x) for x in self.interval_s)
        if not t1 > t0 >= 0:
            raise InputError(f"event interval must satisfy 0 <= start < end, got {self.interval_s}")
        require_in_range("event factor", self.factor)


@dataclass
class Emitter:
    """One set of lines of one domain: the neutral fine-structure set or the trion."""

    id: str
    domain: int
    kind: str               # singlet | doublet | triplet | trion
    state: str              # "X" or "X*"
    line_ev: np.ndarray
    intensity: np.ndarray   # relative, sums to 1
    polarization_deg: np.ndarray
    fss_uev: float
    lifetime_ns: float
    rate_hz: float          # photons/s emitted when on (before detection)
    linewidth_uev: float

    @property
    def center_ev(self) -> float:
        return float(np.mean(self.line_ev))

    @property
    def center_nm(self) -> float:
        return float(materials.wavelength_nm(self.center_ev))

    @property
    def lines_nm(self) -> np.ndarray:
        return np.asarray(materials.wavelength_nm(self.line_ev), dtype=float)


def _surface_fraction(nc: NanoCrystal, dom) -> float:
    lo, hi = np.array(dom.region.lo_nm), np.array(dom.region.hi_nm)
    size = hi - lo
    edges = np.array(nc.edges_nm)
    tol = 1e-6 + 0.01 * nc.reference_lattice_pm / 1000
    area = 0.0
    total = 0.0
    for ax in range(3):
        face = np.prod(np.delete(size, ax))
        total += 2 * face
        area += face * (abs(lo[ax]) < tol) + face * (abs(hi[ax] - edges[ax]) < tol)
    return float(area / total)


def _orientation(rng, tilt_sd_deg: float) -> np.ndarray:
    """NC lying on a face: random rotation about z, small random tilt."""
    phi = rng.uniform(0, 2 * np.pi)
    tilt = np.radians(tilt_sd_deg) * rng.normal(size=2)
    rot = Rotation.from_euler("xyz", [tilt[0], tilt[1], phi])
    return rot.as_matrix()


def domain_specs_from_nc(nc: NanoCrystal, rng: np.random.Generator,
                         params: DynamicsParameters = DEFAULT_DYNAMICS,
                         level_params: lv.LevelParameters = lv.DEFAULT_LEVEL_PARAMETERS,
                         material_params: materials.MaterialParameters = materials.DEFAULT_PARAMETERS,
                         orientation: np.ndarray | None = None) -> tuple[list[DomainSpec], np.ndarray]:
    """Levels of every domain of ``nc`` with a random crystal-field symmetry and NC orientation."""
    rot = _orientation(rng, params.tilt_sd_deg) if orientation is None else np.asarray(orientation, float)
    w = np.asarray(params.symmetry_weights, float)
    names = ["cubic", "tetragonal", "orthorhombic"]
    volumes = nc.domain_volumes_nm3()
    specs = []
    for dom in nc.domains:
        sym = names[int(rng.choice(3, p=w / w.sum()))]
        perm = rng.permutation(3)  # which crystal axis carries which crystal-field component
        edges = tuple(float(x) for x in dom.region.size_nm)
        sfrac = _surface_fraction(nc, dom)
        # permuting the axes of the pattern = permuting the frame: rotate edges and orientation
        lev = lv.domain_levels(dom.br_fraction, np.asarray(edges)[perm], temperature=params.temperature,
                               surface_fraction=sfrac, orientation=rot[:, perm], symmetry=sym,
                               params=level_params, material_params=material_params)
        specs.append(DomainSpec(id=dom.id, br_fraction=dom.br_fraction, edges_nm=edges,
                                center_nm=tuple(float(x) for x in dom.region.center_nm),
                                volume_nm3=float(volumes[dom.id]), surface_fraction=sfrac,
                                levels=lev, symmetry=sym))
    return specs, rot


# ---- steady-state excitation flow --------------------------------------------------------

def excitation_flow(specs: list[DomainSpec], params: DynamicsParameters,
                    nc_volume_nm3: float) -> dict:
    """Capture, Forster routing, quantum yields and mean excitons per pulse of each domain."""
    n = len(specs)
    vol = np.array([s.volume_nm3 for s in specs])
    p = vol / vol.sum()
    e = np.array([s.levels.exciton_ev for s in specs])
    kr = np.array([1.0 / s.levels.lifetime_ns for s in specs])  # 1/ns
    knr = params.nonradiative_rate_per_ns
    tau_d = 1.0 / (kr + knr)
    centers = np.array([s.center_nm for s in specs])
    k = np.zeros((n, n))
    point_dipole = np.ones((n, n), dtype=bool)
    for i in range(n):
        for j in range(n):
            if i != j and e[i] > e[j] + params.forster_min_gap_mev * 1e-3:
                k[i, j], point_dipole[i, j] = forster_rate_per_ns(specs[i], specs[j], tau_d[i], params)
    gamma = kr + knr + k.sum(axis=1)
    t = k / gamma[:, None]
    arrival = np.linalg.solve(np.eye(n) - t.T, p)
    qy = kr / gamma
    mean_n = (params.power_w_cm2 / params.saturation_power_w_cm2) * (nc_volume_nm3 / V_REF_NM3)
    return {"capture": p, "forster_rate_per_ns": k, "point_dipole": point_dipole, "transfer": t, "arrival": arrival,
            "quantum_yield": qy, "lifetime_ns": 1.0 / gamma, "mean_excitons": mean_n * arrival}


def forster_rate_per_ns(donor: DomainSpec, acceptor: DomainSpec, donor_lifetime_ns: float,
                        params: DynamicsParameters = DEFAULT_DYNAMICS) -> tuple[float, bool]:
    """Forster rate donor -> acceptor (1/ns) and whether the point-dipole form holds.

    ``k = (1/tau_D) R0^6 <R^-6>``: R0 from the spectral overlap of the donor line with
    the acceptor's absorption (:func:`~nanodomains.optics.levels.forster_r0_nm`, n =
    sqrt(eps_inf) of the acceptor, kappa^2 = 2/3 for the isotropic bright triplet) unless
    ``params.forster_r0_nm`` fixes it; ``<R^-6>`` from the domain boxes
    (:func:`~nanodomains.optics.levels.forster_geometry_factor`) with a computed R0, the
    centre distance with a fixed one (the flag is returned either way).
    """
    if params.forster_r0_nm is None:
        n_ref = math.sqrt(float(materials.dielectric_constant(acceptor.br_fraction, "inf")))
        r0 = lv.forster_r0_nm(donor.levels.exciton_ev, acceptor.levels.exciton_ev, acceptor.volume_nm3,
                              donor_linewidth_uev=params.linewidth_uev, refractive_index=n_ref)
    else:
        r0 = params.forster_r0_nm
    half = [np.asarray(s.edges_nm) / 2 for s in (donor, acceptor)]
    inv_r6, point = lv.forster_geometry_factor(np.subtract(donor.center_nm, half[0]), np.add(donor.center_nm, half[0]),
                                               np.subtract(acceptor.center_nm, half[1]),
                                               np.add(acceptor.center_nm, half[1]))
    if params.forster_r0_nm is not None:  # a fixed (inter-NC) R0 refers to centre distances
        inv_r6 = max(float(np.linalg.norm(np.subtract(donor.center_nm, acceptor.center_nm))), 1e-3) ** -6
    return (1.0 / donor_lifetime_ns) * r0**6 * inv_r6, point


def emission_rate_hz(mean_excitons: np.ndarray, qy: np.ndarray, lifetime_ns: np.ndarray,
                     params: DynamicsParameters) -> np.ndarray:
    """Photons/s of the X line when on: pulsed ``f_rep (1 - e^-N) QY``, CW ``g/(1 + g tau) QY``."""
    if params.excitation == "pulsed":
        return params.rep_rate_hz * -np.expm1(-mean_excitons) * qy
    # CW at the same average power: arrival rate g = <N> f_rep (1/s), two-level saturation
    g = mean_excitons * params.rep_rate_hz
    return g / (1 + g * lifetime_ns * 1e-9) * qy


# ---- the simulation ------------------------------------------------------------------------

@dataclass
class NCDynamics:
    """Everything the renderers need, plus the truth.

    Attributes
    ----------
    specs : list of DomainSpec
    emitters : list of Emitter
    trajectories : list of Trajectory (per domain, integer state codes)
    events : list of SharedEvent
    field_time_s, field_v_per_nm : arrays
        The environmental field (scalar along ``field_direction``) on a regular grid.
    stark : (n_domains, 2) array
        ``(p_i . n)`` in e nm and ``alpha_i`` in e nm^2/V.
    flow : dict
        Output of :func:`excitation_flow`.
    """

    duration_s: float
    specs: list
    emitters: list
    trajectories: list
    events: list
    field_time_s: np.ndarray
    field_v_per_nm: np.ndarray
    field_direction: np.ndarray
    stark: np.ndarray
    flow: dict
    params: DynamicsParameters
    seed: int | None = None
    orientation: np.ndarray = field(default_factory=lambda: np.eye(3))
    notes: dict = field(default_factory=dict)
    declared_couplings: list = field(default_factory=list)

    # ---- per-emitter time functions --------------------------------------------------

    def _weight_function(self, em: Emitter) -> tuple[np.ndarray, np.ndarray]:
        traj = self.trajectories[em.domain]
        code = STATE_CODES[em.state]
        parts = [(traj.times, (traj.states == code).astype(float))]
        for ev in self.events:
            if em.domain in ev.domains:
                d = self.duration_s
                t0, t1 = min(ev.interval_s[0], d), min(ev.interval_s[1], d)
                parts.append((np.array([0.0, t0, t1, d]), np.array([1.0, ev.factor, 1.0])))
        breaks, vals = merge_piecewise(*parts)
        return breaks, np.prod(vals, axis=0)

    def weight_function(self, emitter_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Breakpoints and values of emitter's on-weight (state indicator x event factors)."""
        return self._weight_function(self.emitters[emitter_index])

    def frame_weights(self, edges_s: np.ndarray) -> np.ndarray:
        """Mean on-weight of every emitter over each frame: shape (n_emitters, n_frames)."""
        edges = np.asarray(edges_s, float)
        return np.array([_weighted_fraction(*self._weight_function(em), edges) for em in self.emitters])

    def domain_shift_ev(self, t_s=None) -> np.ndarray:
        """Stark shift of every domain on the field grid (or interpolated at ``t_s``)."""
        f = self.field_v_per_nm
        f2_mean = self.params.field_mean_v_per_nm**2 + self.params.field_sd_v_per_nm**2
        pn, alpha = self.stark[:, 0:1], self.stark[:, 1:2]
        shift = -pn * f[None, :] - 0.5 * alpha * (f[None, :] ** 2 - f2_mean)
        if t_s is None:
            return shift
        return np.array([np.interp(t_s, self.field_time_s, s) for s in shift])

    def frame_shifts_ev(self, edges_s: np.ndarray) -> np.ndarray:
        """Mean Stark shift of every emitter over each frame, shape (n_emitters, n_frames).

        The field is piecewise constant on its grid (value ``F(t_k)`` on ``[t_k, t_k+1)``).
        """
        edges = np.asarray(edges_s, float)
        t = self.field_time_s
        shift = self.domain_shift_ev()
        if t.size < 2:
            dom = np.repeat(shift[:, :1], len(edges) - 1, axis=1)
        else:
            dom = np.array([_weighted_fraction(t, row[:-1], edges) for row in shift])
        return np.array([dom[em.domain] for em in self.emitters])

    # ---- truth -----------------------------------------------------------------------

    def truth(self, *, frame_edges_s: np.ndarray | None = None, **fields) -> PLEmitters:
        """The truth as a :class:`~nanodomains.records.emitters.PLEmitters` record.

        The same record type the movie analysis returns (``origin="truth"``, every
        stderr 0): the emitters that emit at some time (lines, FSS, on intervals, charge
        partner, lifetime), their couplings, and in ``dynamics`` the domains with their
        state trajectories, shared events, the field and Forster transfer.

        Parameters
        ----------
        frame_edges_s : array, optional
            Frame edges (s) over which the couplings' wavelength correlations are taken
            (default: 1 s bins over the whole run).
        **fields
            Further record fields (``source``, ``n_frames``, ...).
        """
        active = [k for k, em in enumerate(self.emitters) if self._emits(em)]
        couplings = self._couplings(frame_edges_s, skip={k for k in range(len(self.emitters)) if k not in active})
        dynamics = {
            "duration_s": self.duration_s,
            "inactive_emitters": [em.id for k, em in enumerate(self.emitters) if k not in active],
            "domains": self._truth_domains(),
            "events": [{"domains": list(ev.domains), "interval_s": list(ev.interval_s),
                        "factor": ev.factor, "name": ev.name} for ev in self.events],
            "field": {"direction": [float(x) for x in self.field_direction],
                      "dt_s": float(self.field_time_s[1] - self.field_time_s[0]) if self.field_time_s.size > 1 else 0.0,
                      "v_per_nm": [round(float(x), 9) for x in self.field_v_per_nm]},
            "forster": [{"donor": int(i), "acceptor": int(j),
                         "rate_per_ns": float(self.flow["forster_rate_per_ns"][i, j]),
                         "efficiency": float(self.flow["transfer"][i, j])}
                        for i, j in zip(*np.nonzero(self.flow["forster_rate_per_ns"]))],
            "notes": {"center_nm": "wavelength of the mean energy of the visible lines; "
                                   "Stark shifts have zero time average",
                      **self.notes},
        }
        settings = {"seed": self.seed,
                    "dynamics": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.params.__dict__.items()}}
        return PLEmitters(origin="truth", emitters=[self._truth_emitter(self.emitters[k]) for k in active],
                          couplings=couplings, dynamics=dynamics, settings=settings, **fields)

    def _emits(self, em: Emitter) -> bool:
        return em.rate_hz > 0 and bool(self.trajectories[em.domain].intervals(STATE_CODES[em.state]))

    def _truth_emitter(self, em: Emitter) -> PLEmitter:
        """One emitter of the truth: exact lines (blue to red), FSS, intervals, partner."""
        order = np.argsort(em.lines_nm)
        exact = partial(measured, stderr=0.0)
        lines = [PLLine(center_nm=exact(em.lines_nm[i]), linewidth_uev=exact(em.linewidth_uev),
                        fraction=exact(em.intensity[i]), polarization_deg=exact(em.polarization_deg[i]))
                 for i in order]
        traj = self.trajectories[em.domain]
        other = "X*" if em.state == "X" else "X"
        partner = next((o for o in self.emitters if o.domain == em.domain and o.state == other and self._emits(o)),
                       None)
        return PLEmitter(
            id=em.id, kind=em.kind, center_nm=exact(em.center_nm), lines=lines, fss_uev=exact(em.fss_uev),
            linewidth_uev=exact(em.linewidth_uev), state=em.state, intervals_s=traj.intervals(STATE_CODES[em.state]),
            charged_intervals_s=traj.intervals(STATE_CODES["X*"]) if em.state == "X" and partner else (),
            trion_of=partner.id if em.state == "X*" and partner else None, domain=em.domain,
            lifetime_ns=float(em.lifetime_ns), rate_hz=float(em.rate_hz))

    def _truth_domains(self) -> list[dict]:
        """Every domain: composition, geometry, level terms, excitation flow, states."""
        domains = []
        for s, traj in zip(self.specs, self.trajectories):
            st = s.levels.exciton
            domains.append({
                "id": s.id, "br_fraction": s.br_fraction, "formula": materials.format_formula(s.br_fraction),
                "edges_nm": list(s.edges_nm), "center_nm": list(s.center_nm), "volume_nm3": s.volume_nm3,
                "surface_fraction": s.surface_fraction, "symmetry": s.symmetry,
                "exciton_ev": st.energy_ev, "bandgap_ev": st.bandgap_ev, "confinement_ev": st.confinement_ev,
                "binding_ev": st.binding_ev, "dielectric_ev": st.dielectric_ev,
                "capture_fraction": float(self.flow["capture"][s.id]),
                "arrival_fraction": float(self.flow["arrival"][s.id]),
                "quantum_yield": float(self.flow["quantum_yield"][s.id]),
                "mean_excitons_per_pulse": float(self.flow["mean_excitons"][s.id]),
                "stark_dipole_e_nm": float(self.stark[s.id, 0]),
                "polarizability_e_nm2_per_v": float(self.stark[s.id, 1]),
                "states": traj.as_list(),
            })
        return domains

    def _couplings(self, frame_edges_s, skip=frozenset()) -> list[PLCoupling]:
        ems = self.emitters
        declared = {frozenset(c["emitters"]): c for c in self.declared_couplings}
        if frame_edges_s is None:
            frame_edges_s = np.linspace(0, self.duration_s, max(2, int(round(self.duration_s))) + 1)
        shifts = self.frame_shifts_ev(frame_edges_s)
        out = []
        for a in range(len(ems)):
            for b in range(a + 1, len(ems)):
                if a in skip or b in skip:
                    continue
                ea, eb = ems[a], ems[b]
                mech = []
                verdict = "independent"
                if ea.domain == eb.domain:
                    mech.append("charge: neutral and charged states of one domain")
                    verdict = "anti-correlated"
                shared = [ev for ev in self.events if ea.domain in ev.domains and eb.domain in ev.domains
                          and ea.domain != eb.domain]
                for ev in shared:
                    mech.append(f"{ev.name}: x{ev.factor:g} during {ev.interval_s[0]:g}-{ev.interval_s[1]:g} s")
                    verdict = "coupled"
                k = self.flow["transfer"]
                if k[ea.domain, eb.domain] > 0 or k[eb.domain, ea.domain] > 0:
                    d, acc = (ea.domain, eb.domain) if k[ea.domain, eb.domain] > 0 else (eb.domain, ea.domain)
                    mech.append(f"forster: domain {d} -> {acc}, efficiency {k[d, acc]:.3f}")
                sa, sb = shifts[a], shifts[b]
                r = float(np.corrcoef(sa, sb)[0, 1]) if np.std(sa) > 0 and np.std(sb) > 0 else 0.0
                coupled_events = [list(ev.interval_s) for ev in shared]
                dec = declared.get(frozenset((ea.id, eb.id)))
                if dec is not None:
                    verdict = dec["verdict"]
                    mech.append(dec.get("mechanism", "declared by the preset"))
                    coupled_events += [list(x) for x in dec.get("intervals_s", [])]
                out.append(PLCoupling(emitters=(ea.id, eb.id), verdict=verdict, mechanisms=mech,
                                      intervals_s=coupled_events, wavelength_r=r))
        return out


def _stark(specs: list[DomainSpec], direction: np.ndarray, rng, params: DynamicsParameters) -> np.ndarray:
    out = np.zeros((len(specs), 2))
    for i, s in enumerate(specs):
        size = lv.effective_size_nm(s.edges_nm) / params.stark_ref_size_nm
        u = rng.normal(size=3)
        u /= np.linalg.norm(u)
        out[i, 0] = params.stark_dipole_e_nm * size * float(u @ direction)
        if params.stark_polarizability_e_nm2_per_v is None:  # isotropic mean of the confinement model
            out[i, 1] = float(np.mean(lv.stark_polarizability(s.br_fraction, s.edges_nm)))
        else:
            out[i, 1] = params.stark_polarizability_e_nm2_per_v * size**4
    return out


def _ou_field(rng, duration: float, params: DynamicsParameters) -> tuple[np.ndarray, np.ndarray]:
    n = int(math.ceil(duration / params.field_dt_s)) + 1
    t = np.arange(n) * params.field_dt_s
    sd = params.field_sd_v_per_nm
    if sd == 0:
        return t, np.full(n, params.field_mean_v_per_nm)
    a = math.exp(-params.field_dt_s / params.field_tau_s)
    xi = rng.normal(size=n)
    xi[0] = xi[0] / math.sqrt(1 - a * a)  # stationary start
    x = signal.lfilter([sd * math.sqrt(1 - a * a)], [1.0, -a], xi)
    return t, params.field_mean_v_per_nm + x


def _random_trajectory(rng, duration: float, params: DynamicsParameters) -> Trajectory:
    p = params
    if p.blinking == "none":
        bt, bv = np.array([0.0, duration]), np.array([True])
    else:
        kind = p.blinking

        def draw_on(n):
            return _dwell_times(rng, n, kind, p.on_mean_s, p.power_law_alpha_on, p.power_law_min_s, p.power_law_max_s)

        def draw_off(n):
            return _dwell_times(rng, n, kind, p.off_mean_s, p.power_law_alpha_off, p.power_law_min_s, p.power_law_max_s)

        frac_on = p.on_mean_s / (p.on_mean_s + p.off_mean_s)
        bt, bv = _telegraph(rng, duration, bool(rng.random() < frac_on), draw_on, draw_off)
    if p.charge_rate_per_s > 0:
        if p.neutralize_rate_per_s > 0:
            frac_n = p.neutralize_rate_per_s / (p.charge_rate_per_s + p.neutralize_rate_per_s)
            ct, cv = _telegraph(rng, duration, bool(rng.random() < frac_n),
                                lambda n: rng.exponential(1 / p.charge_rate_per_s, n),
                                lambda n: rng.exponential(1 / p.neutralize_rate_per_s, n))
        else:
            t_c = min(rng.exponential(1 / p.charge_rate_per_s), duration)
            ct, cv = np.array([0.0, t_c, duration]), np.array([True, False])
    else:
        ct, cv = np.array([0.0, duration]), np.array([True])
    t_bleach = float(rng.exponential(p.bleach_mean_s * 5.0 / p.power_w_cm2))
    if t_bleach < duration:
        bleach = (np.array([0.0, t_bleach, duration]), np.array([0.0, 1.0]))
    else:
        bleach = (np.array([0.0, duration]), np.array([0.0]))
    breaks, (on, neutral, gone) = merge_piecewise((bt, bv.astype(float)), (ct, cv.astype(float)), bleach)
    states = np.where(on > 0.5, np.where(neutral > 0.5, 0, 1), 2).astype(np.int8)
    states[gone > 0.5] = STATE_CODES["bleached"]
    return _simplify(Trajectory(breaks, states))


def _simplify(tr: Trajectory) -> Trajectory:
    keep = np.diff(tr.times) > 0
    times = np.concatenate([tr.times[:-1][keep], [tr.times[-1]]])
    states = tr.states[keep]
    if states.size == 0:
        return Trajectory(np.array([tr.times[0], tr.times[-1]]), tr.states[:1])
    change = np.concatenate([[True], states[1:] != states[:-1]])
    return Trajectory(np.concatenate([times[:-1][change], [times[-1]]]), states[change])


def schedule_trajectory(schedule: list, duration: float, default: str = "off") -> Trajectory:
    """Trajectory from explicit ``[[t0, t1, state], ...]`` (states X, X*, off, bleached)."""
    if default not in STATE_CODES:
        raise InputError(f"unknown state {default!r}; expected one of {list(STATE_CODES)}")
    breaks = [0.0, duration]
    for item in schedule:
        if len(item) != 3 or item[2] not in STATE_CODES:
            raise InputError(f"schedule entries must be [t0, t1, state] with state in {list(STATE_CODES)}, got {item!r}")
        t0, t1 = float(item[0]), float(item[1])
        if not (math.isfinite(t0) and math.isfinite(t1) and 0 <= t0 < t1):
            raise InputError(f"schedule interval must satisfy 0 <= t0 < t1, got {item!r}")
        breaks += [min(t0, duration), min(t1, duration)]
    b = np.unique(breaks)
    mids = 0.5 * (b[:-1] + b[1:])
    states = np.full(mids.size, STATE_CODES[default], dtype=np.int8)
    for t0, t1, st in schedule:
        states[(mids >= t0) & (mids < t1)] = STATE_CODES[st]
    return _simplify(Trajectory(b, states))


def build_emitters(specs: list[DomainSpec], flow: dict, params: DynamicsParameters,
                   brightness: np.ndarray | None = None) -> list[Emitter]:
    """The X set and the X* line of every domain, with their emission rates when on."""
    rates = emission_rate_hz(flow["mean_excitons"], flow["quantum_yield"], flow["lifetime_ns"], params)
    if brightness is not None:
        rates = rates * np.asarray(brightness, float)
    out = []
    for s, rate, tau in zip(specs, rates, flow["lifetime_ns"]):
        fs = s.levels.fine
        out.append(Emitter(id=f"D{s.id}-X", domain=s.id, kind=fs.kind, state="X", line_ev=fs.line_ev.copy(),
                           intensity=fs.intensity.copy(), polarization_deg=fs.polarization_deg.copy(),
                           fss_uev=fs.fss_uev, lifetime_ns=float(tau), rate_hz=float(rate),
                           linewidth_uev=params.linewidth_uev))
        out.append(Emitter(id=f"D{s.id}-X*", domain=s.id, kind="trion", state="X*",
                           line_ev=np.array([s.levels.trion_ev]), intensity=np.ones(1),
                           polarization_deg=np.zeros(1), fss_uev=0.0,
                           lifetime_ns=float(s.levels.trion_lifetime_ns),
                           rate_hz=float(rate * params.trion_brightness), linewidth_uev=params.linewidth_uev))
    return out


def simulate_dynamics(nc: NanoCrystal | None = None, *, duration_s: float = 120.0, seed: SeedLike = 0,
                      params: DynamicsParameters = DEFAULT_DYNAMICS,
                      level_params: lv.LevelParameters = lv.DEFAULT_LEVEL_PARAMETERS,
                      material_params: materials.MaterialParameters = materials.DEFAULT_PARAMETERS,
                      specs: list[DomainSpec] | None = None,
                      schedules: dict[int, list] | None = None,
                      events: list[SharedEvent] | None = None,
                      emitters: list[Emitter] | None = None,
                      stark: np.ndarray | None = None,
                      declared_couplings: list[dict] | None = None) -> NCDynamics:
    """Simulate one NC: levels, excitation flow, state trajectories, field.

    Parameters
    ----------
    nc : NanoCrystal, optional
        The NC model (not needed when ``specs`` are given).
    duration_s : float
        Length of the record in s.
    seed : int or numpy.random.Generator
        Randomness (:func:`nanodomains.seeds.rng`; recorded in the truth when an int).
    specs : list of DomainSpec, optional
        Domains with their levels (presets); default from ``nc``.
    schedules : dict {domain id: [[t0, t1, state], ...]}, optional
        Explicit state trajectories replacing the random blinking/charging of those domains.
    events : list of SharedEvent, optional
        Correlated intensity changes.
    emitters : list of Emitter, optional
        Emitters replacing those derived from the levels (presets prescribe lines).
    stark : (n_domains, 2) array, optional
        ``(p.n [e nm], alpha [e nm^2/V])`` per domain replacing the random ones.
    declared_couplings : list of dict, optional
        ``{"emitters": [id_a, id_b], "verdict", "mechanism", "intervals_s"}`` for pairs
        coupled through schedules (presets); they override the derived verdict.

    Returns
    -------
    NCDynamics
    """
    duration = require_positive("duration_s", duration_s)
    if duration > 1e6:
        raise InputError(f"duration_s must be <= 1e6 s, got {duration_s}")
    rng = make_rng(seed)
    if specs is None:
        if nc is None:
            raise InputError("simulate_dynamics needs an NC model or domain specs")
        specs, rot = domain_specs_from_nc(nc, rng, params, level_params, material_params)
        nc_volume = float(np.prod(nc.edges_nm))
    else:
        rot = np.eye(3)
        nc_volume = float(np.prod(nc.edges_nm)) if nc is not None else float(sum(s.volume_nm3 for s in specs))
    ids = [s.id for s in specs]
    if ids != list(range(len(specs))):
        raise InputError(f"domain specs must have ids 0..{len(specs) - 1}, got {ids}")
    flow = excitation_flow(specs, params, nc_volume)
    ems = build_emitters(specs, flow, params) if emitters is None else list(emitters)
    for em in ems:
        if not 0 <= em.domain < len(specs):
            raise InputError(f"emitter {em.id} refers to domain {em.domain}, NC has {len(specs)}")
    schedules = dict(schedules or {})
    trajs = []
    for s in specs:
        if s.id in schedules:
            trajs.append(schedule_trajectory(schedules[s.id], duration))
        else:
            trajs.append(_random_trajectory(rng, duration, params))
    evs = list(events or [])
    for ev in evs:
        bad = [d for d in ev.domains if not 0 <= d < len(specs)]
        if bad:
            raise InputError(f"event {ev.name!r} refers to domains {bad}, NC has {len(specs)}")
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    st = _stark(specs, direction, rng, params) if stark is None else np.asarray(stark, float)
    if st.shape != (len(specs), 2) or not np.all(np.isfinite(st)):
        raise InputError(f"stark must be finite with shape ({len(specs)}, 2)")
    ft, fv = _ou_field(rng, duration, params)
    return NCDynamics(duration_s=duration, specs=specs, emitters=ems, trajectories=trajs, events=evs,
                      field_time_s=ft, field_v_per_nm=fv, field_direction=direction, stark=st, flow=flow,
                      params=params, seed=seed if isinstance(seed, (int, np.integer)) else None,
                      orientation=rot, declared_couplings=list(declared_couplings or []))

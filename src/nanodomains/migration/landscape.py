r"""The computed energy landscape of halide-vacancy hops: barrier table -> kMC rates.

A :class:`~nanodomains.records.atomistic.BarrierTable` (CI-NEB barriers, vacancy site
energies and RP fault energies computed with one atomistic model, see
``nanodomains.migration.barriers``) is turned into the rates of every hop of an
:class:`~nanodomains.migration.lattice.XLattice`.

Environment of a hop
--------------------
Every bond gets one environment (first match wins):

* ``across_fault``: an RP bond (through the CsX double layer);
* ``along_fault``: an along bond (in-plane neighbours of one CsX layer);
* ``surface``: an octahedron edge with an end on the outer surface;
* ``near_fault``: an octahedron edge with an end in a CsX layer of an RP fault;
* ``bulk``: every other octahedron edge.

The *local Br fraction* of a hop is the Br fraction of the occupied X sites around the
path, the two ends excluded: the other four X of the octahedron that holds the edge,
or, for RP and along bonds, the other X of the octahedra of both ends. Excluding the
ends makes it the same for a hop and its reverse (needed for detailed balance). With
no occupied site around, the mover's own composition is used (1 for Br, 0 for I).

Rates (kinetically resolved activation, KRA)
--------------------------------------------
Van der Ven, Ceder, Asta & Tepesch, Phys. Rev. B 64, 184307 (2001): the barrier of a
hop from state i to state f is split into a symmetric part and half the energy change::

    E_a(i -> f) = E_KRA + (U_f - U_i) / 2,      E_KRA = (E_fwd + E_rev) / 2
    k(i -> f)   = nu exp(-E_a / kT)

``E_fwd`` / ``E_rev`` are the table's forward and reverse NEB barriers of the path of
that environment and halide, linearly interpolated in the local Br fraction between
the tabulated paths (held at the nearest tabulated value outside their range; a
warning says so). ``U`` is the site-energy landscape: an ion of halide X on a site at
distance d from the fault has energy ``-E_V,X(d)``, with ``E_V,X(d)`` the table's
vacancy site energy relative to the bulk-like vacancy (a trap, E_V < 0, is a site the
ion leaves more easily); linear in d between tabulated distances, the farthest value
beyond them, 0 in domains without an RP fault. Since U is a sum over ions of their
site energies, ``k(i->f)/k(f->i) = exp(-(U_f - U_i)/kT)``: detailed balance with
respect to ``exp(-U/kT)``; vacancies gather in traps.

``nu`` is the harmonic transition-state (Vineyard) attempt frequency of the path from
the table (``attempt_frequency_hz=None``, an error if a path lacks it) or one value for
all paths given by the user with its source (``attempt_frequency_source``). Where the
table has no harmonic-TST value for a path (at the across-fault saddles the partial
Hessian has no imaginary mode, see ``docs/atomistic.md``), ``missing_attempt_frequency=
"bulk"`` is the explicit choice to use the same halide's pure-bulk Vineyard value
(``bulk_I`` 0.50 THz, ``bulk_Br`` 0.62 THz in the shipped table) for those paths only;
each such substitution is listed in the run's warnings and settings. Without it a
missing value is an error.

No default barrier: every (environment, halide) the lattice needs must be in the table,
else :class:`~nanodomains.errors.InputError` names it. ``overrides`` set a pair
explicitly: a barrier in eV, ``"closed"`` (no hop), or another pair's key to borrow
(``{"along_fault/Br": "along_fault/I"}``); each override is recorded in the settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nanodomains import materials
from nanodomains.errors import InputError, require_positive
from nanodomains.migration.lattice import BOND_ALONG, BOND_RP, BOND_SURFACE, SPECIES_NAMES, XLattice
from nanodomains.records.atomistic import BarrierTable

ENV_BULK, ENV_SURFACE, ENV_ACROSS, ENV_ALONG, ENV_NEAR = 0, 1, 2, 3, 4
ENV_NAMES = ("bulk", "surface", "across_fault", "along_fault", "near_fault")
#: local-environment counts (Br, occupied) run over 0..N_LOCAL-1 (10 sites at most)
N_LOCAL = 11
KB_EV: float = materials.KB_EV


@dataclass
class RateArrays:
    """What the kMC engine needs: see :func:`nanodomains.migration.kmc.run_kmc`.

    Attributes
    ----------
    w : ndarray, shape (2, 5, N_LOCAL, N_LOCAL)
        Rates in 1/ps by species, environment, Br count and occupied count around the
        path (site energies not included).
    env : ndarray of int8, shape (S, D)
        Environment of every bond.
    ion_energy_ev : ndarray, shape (2, S)
        Site energy of an ion of each species on each site.
    info : dict
        How the arrays were made (for the run's settings).
    warnings : list of str
    """

    w: np.ndarray
    env: np.ndarray
    ion_energy_ev: np.ndarray
    info: dict
    warnings: list = field(default_factory=list)


def bond_environments(lattice: XLattice) -> np.ndarray:
    """Environment (``ENV_*``) of every bond of the lattice, (S, D) int8."""
    bt = lattice.bond_type
    nbr = lattice.neighbors
    env = np.full(bt.shape, ENV_BULK, np.int8)
    iface_end = lattice.interface[:, None] | np.where(nbr >= 0, lattice.interface[np.maximum(nbr, 0)], False)
    env[iface_end] = ENV_NEAR
    env[bt == BOND_SURFACE] = ENV_SURFACE
    env[bt == BOND_ALONG] = ENV_ALONG
    env[bt == BOND_RP] = ENV_ACROSS
    env[nbr < 0] = ENV_BULK
    return env


def needed_pairs(lattice: XLattice) -> list[tuple[str, str]]:
    """(environment, halide) pairs the lattice's bonds and species need."""
    env = bond_environments(lattice)[lattice.neighbors >= 0]
    present = sorted(set(env.tolist()))
    halides = [SPECIES_NAMES[s] for s in sorted(set(lattice.species.tolist()))]
    return [(ENV_NAMES[e], h) for e in present for h in halides]


def load_table(path=None) -> BarrierTable:
    """A barrier table from a JSON file, or the shipped one (``path=None``)."""
    if path is not None:
        return BarrierTable.from_json(path)
    try:
        from nanodomains.migration.barriers import load_barrier_table
    except ModuleNotFoundError as exc:
        raise InputError("no barrier table ships with this installation (nanodomains.migration.barriers "
                         "is missing); pass the path of a barrier table") from exc
    return load_barrier_table(None)


#: Stand-ins used only while a path of the shipped table has no converged NEB: the
#: missing pair borrows the same environment's path of the other halide. Explicit: callers
#: pass :func:`provisional_overrides` as ``overrides`` and report it; nothing applies it
#: silently, and it stops applying as soon as the table holds the converged path.
PROVISIONAL_BORROW = {"along_fault/I": "along_fault/Br"}


def provisional_overrides(table: BarrierTable) -> dict[str, str]:
    """The :data:`PROVISIONAL_BORROW` entries whose own path the table lacks (or has unconverged).

    Examples
    --------
    >>> from nanodomains.migration.barriers import load_barrier_table
    >>> set(provisional_overrides(load_barrier_table())) <= set(PROVISIONAL_BORROW)
    True
    """
    have = {_key(p.environment, p.halide) for p in table.paths if p.converged
            and p.name == f"{p.environment}_{p.halide}"}
    return {k: v for k, v in PROVISIONAL_BORROW.items() if k not in have}


def _key(env: str, halide: str) -> str:
    return f"{env}/{halide}"


def _path_curve(table: BarrierTable, env: str, halide: str):
    """Sorted local Br fractions, KRA barriers, their SEs and attempt frequencies (THz or nan)."""
    paths = [p for p in table.paths if p.environment == env and p.halide == halide]
    if not paths:
        return None
    failed = [p.name for p in paths if not p.converged or p.barrier_ev.value is None
              or p.reverse_barrier_ev.value is None]
    if failed:
        raise InputError(f"barrier table: path(s) {', '.join(failed)} ({env}, {halide}) failed or did not "
                         "converge; no barrier is substituted")
    paths.sort(key=lambda p: p.local_br_fraction)
    f = np.array([p.local_br_fraction for p in paths])
    kra = np.array([0.5 * (p.barrier_ev.value + p.reverse_barrier_ev.value) for p in paths])
    se = np.array([0.5 * math.hypot(p.barrier_ev.stderr or 0.0, p.reverse_barrier_ev.stderr or 0.0)
                   for p in paths])
    nu = np.array([np.nan if p.attempt_frequency_thz is None or p.attempt_frequency_thz.value is None
                   else p.attempt_frequency_thz.value for p in paths])
    return f, kra, se, nu, [p.name for p in paths]


@dataclass(frozen=True)
class TabulatedLandscape:
    """kMC parameters from a computed barrier table (see module docstring).

    Parameters
    ----------
    table : BarrierTable
    temperature_k : float
    attempt_frequency_hz : float, optional
        None: the table's harmonic-TST attempt frequency of every path (an error if a
        needed path has none). A number: that value for every path; then
        ``attempt_frequency_source`` must say where it comes from.
    attempt_frequency_source : str, optional
    missing_attempt_frequency : {None, "bulk"}
        None: a path without a harmonic-TST value is an error. ``"bulk"``: such paths
        use the same halide's pure-bulk path value (recorded in ``substituted_nu``).
    overrides : dict, optional
        ``{"env/halide": barrier_ev | "closed" | "env/halide"}`` explicit user choices.
    site_energies : bool
        Use the table's vacancy site energies (default); False is a flat landscape.
    energy_shift_ev : float
        Added to every KRA barrier (for sensitivity runs: the table's uncertainty).
    table_source : str, optional
        Where the table came from (recorded).
    photocarriers, bandgap_temperature
        The light term, as in :class:`~nanodomains.migration.KMCParameters`.
    """

    table: BarrierTable
    temperature_k: float = 500.0
    attempt_frequency_hz: float | None = None
    attempt_frequency_source: str | None = None
    missing_attempt_frequency: str | None = None
    overrides: dict = field(default_factory=dict)
    site_energies: bool = True
    energy_shift_ev: float = 0.0
    table_source: str | None = None
    photocarriers: float = 0.0
    bandgap_temperature: str = "RT"

    def validate(self) -> "TabulatedLandscape":
        t = self.temperature_k
        if not (isinstance(t, (int, float)) and math.isfinite(t) and t > 0):
            raise InputError(f"temperature_k must be a finite number > 0 K, got {t!r}")
        if not isinstance(self.table, BarrierTable):
            raise InputError(f"table must be a BarrierTable, got {type(self.table).__name__}")
        if self.attempt_frequency_hz is not None:
            require_positive("attempt_frequency_hz", self.attempt_frequency_hz)
            if not self.attempt_frequency_source:
                raise InputError("an attempt frequency given by hand needs attempt_frequency_source (its citation)")
        if self.missing_attempt_frequency not in (None, "bulk"):
            raise InputError(f"missing_attempt_frequency must be None or 'bulk', got "
                             f"{self.missing_attempt_frequency!r}")
        for k, v in self.overrides.items():
            env, _, hal = k.partition("/")
            if env not in ENV_NAMES or hal not in SPECIES_NAMES:
                raise InputError(f"override key {k!r}: expected 'environment/halide' with environment in "
                                 f"{ENV_NAMES} and halide Br or I")
            if not (v == "closed" or (isinstance(v, str) and v.partition("/")[0] in ENV_NAMES)
                    or (isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v < 5)):
                raise InputError(f"override {k!r}: {v!r} is not a barrier in [0, 5) eV, 'closed' or a pair key")
        if not math.isfinite(self.energy_shift_ev):
            raise InputError(f"energy_shift_ev must be finite, got {self.energy_shift_ev!r}")
        if not (math.isfinite(self.photocarriers) and self.photocarriers >= 0):
            raise InputError(f"photocarriers must be >= 0, got {self.photocarriers!r}")
        if self.bandgap_temperature not in ("RT", "4K"):
            raise InputError(f"bandgap_temperature must be 'RT' or '4K', got {self.bandgap_temperature!r}")
        return self

    # ---- barriers ----------------------------------------------------------------

    def barrier_curve(self, env: str, halide: str):
        """(local Br fractions, KRA barriers eV, SEs, attempt frequencies Hz, source) of a pair.

        The source names the paths, the override or the borrowed pair. A closed pair
        returns None.
        """
        key = _key(env, halide)
        if key in self.overrides:
            v = self.overrides[key]
            if v == "closed":
                return None
            if isinstance(v, str):
                env2, _, hal2 = v.partition("/")
                curve = _path_curve(self.table, env2, hal2)
                if curve is None:
                    raise InputError(f"override {key} -> {v}: the barrier table has no path for {v}")
                f, kra, se, nu, names = curve
                return f, kra + self.energy_shift_ev, se, self._nu(nu, names, v), f"borrowed from {v}: {names}"
            return (np.array([0.0]), np.array([float(v) + self.energy_shift_ev]), np.array([0.0]),
                    self._nu(np.array([np.nan]), [f"override {key}"], key), f"user value {v} eV")
        curve = _path_curve(self.table, env, halide)
        if curve is None:
            raise InputError(f"barrier table has no path for {key} (environment {env}, halide {halide}), which "
                             "this lattice needs; no default barrier is used (give an explicit override to "
                             "proceed)")
        f, kra, se, nu, names = curve
        return f, kra + self.energy_shift_ev, se, self._nu(nu, names, key), str(names)

    def _nu(self, nu_thz: np.ndarray, names: list, key: str) -> np.ndarray:
        if self.attempt_frequency_hz is not None:
            return np.full(len(nu_thz), float(self.attempt_frequency_hz))
        if np.any(~np.isfinite(nu_thz)) and self.missing_attempt_frequency == "bulk":
            bulk_nu = self.bulk_attempt_frequency_thz(key.partition("/")[2])
            nu_thz = np.where(np.isfinite(nu_thz), nu_thz, bulk_nu)
        if np.any(~np.isfinite(nu_thz)):
            missing = [n for n, v in zip(names, nu_thz) if not np.isfinite(v)]
            raise InputError(f"no harmonic-TST attempt frequency in the barrier table for {', '.join(missing)} "
                             f"({key}); give attempt_frequency_hz with its source, or missing_attempt_frequency='bulk' "
                             "(CLI: --missing-attempt-frequency bulk) to use the halide's pure-bulk value")
        return nu_thz * 1e12

    def bulk_attempt_frequency_thz(self, halide: str) -> float:
        """Vineyard attempt frequency (THz) of the halide's pure-bulk path (local Br
        fraction 1 for Br, 0 for I); an error if the table has none."""
        pure = 1.0 if halide == "Br" else 0.0
        paths = [p for p in self.table.paths if p.environment == "bulk" and p.halide == halide and p.converged
                 and abs(p.local_br_fraction - pure) < 1e-6]
        nu = [p.attempt_frequency_thz.value for p in paths
              if p.attempt_frequency_thz is not None and p.attempt_frequency_thz.value is not None]
        if not nu:
            raise InputError(f"missing_attempt_frequency='bulk': the table has no pure-bulk {halide} path with a "
                             "harmonic-TST attempt frequency")
        return float(nu[0])

    def substituted_nu(self) -> dict:
        """Paths without a table attempt frequency that get the bulk value (``{name: THz}``)."""
        if self.attempt_frequency_hz is not None or self.missing_attempt_frequency != "bulk":
            return {}
        return {p.name: self.bulk_attempt_frequency_thz(p.halide) for p in self.table.paths
                if p.attempt_frequency_thz is None or p.attempt_frequency_thz.value is None}

    def rate_arrays(self, lattice: XLattice) -> RateArrays:
        """Rates by species, environment and local occupancy; site energies per site."""
        self.validate()
        kt = KB_EV * self.temperature_k
        w = np.zeros((2, len(ENV_NAMES), N_LOCAL, N_LOCAL))
        nb, no = np.meshgrid(np.arange(N_LOCAL), np.arange(N_LOCAL), indexing="ij")
        info, warnings = {"pairs": {}}, []
        for env, hal in needed_pairs(lattice):
            s = SPECIES_NAMES.index(hal)
            curve = self.barrier_curve(env, hal)
            if curve is None:
                info["pairs"][_key(env, hal)] = "closed (user override)"
                continue
            f, kra, se, nu, source = curve
            local = np.where(no > 0, nb / np.maximum(no, 1), 1.0 if hal == "Br" else 0.0)
            if len(f) > 1 and (local.min() < f[0] - 1e-9 or local.max() > f[-1] + 1e-9):
                warnings.append(f"{_key(env, hal)}: barriers tabulated for local Br fractions {f[0]:.2f}-"
                                f"{f[-1]:.2f}; held at the end values outside")
            e = np.interp(local, f, kra)
            nu_l = np.interp(local, f, nu)
            w[s, ENV_NAMES.index(env)] = nu_l * 1e-12 * np.exp(-e / kt)
            info["pairs"][_key(env, hal)] = {
                "local_br_fraction": f.tolist(), "kra_barrier_ev": kra.tolist(), "kra_barrier_se_ev": se.tolist(),
                "attempt_frequency_hz": nu.tolist(), "source": source}
        info["attempt_frequency"] = ("harmonic TST (table)" if self.attempt_frequency_hz is None
                                     else f"{self.attempt_frequency_hz:g} Hz ({self.attempt_frequency_source})")
        subs = {k: v for k, v in self.substituted_nu().items()
                if any(src for src in info["pairs"].values() if isinstance(src, dict) and k in src["source"])}
        if subs:
            info["attempt_frequency_substituted_thz"] = subs
            warnings.append("no harmonic-TST attempt frequency in the table for " + ", ".join(subs)
                            + ": the same halide's pure-bulk value is used (missing_attempt_frequency='bulk')")
        ion_energy = self.ion_energies(lattice, info, warnings)
        return RateArrays(w=w, env=bond_environments(lattice), ion_energy_ev=ion_energy, info=info,
                          warnings=warnings)

    def ion_energies(self, lattice: XLattice, info: dict | None = None, warnings: list | None = None) -> np.ndarray:
        """Site energy (eV) of a Br / I ion on every site, (2, S): ``-E_V(d)``."""
        out = np.zeros((2, lattice.n_sites))
        d = lattice.fault_distance_nm
        near = np.isfinite(d)
        if not self.site_energies or not near.any():
            return out
        for s in sorted(set(lattice.species.tolist())):
            hal = SPECIES_NAMES[s]
            rows = sorted((e for e in self.table.site_energies if e.halide == hal),
                          key=lambda e: e.distance_from_fault_nm)
            if not rows:
                raise InputError(f"barrier table has no vacancy site energies for V_{hal} near the fault, which "
                                 "this lattice needs (pass site_energies=False for an explicit flat landscape)")
            dist = np.array([e.distance_from_fault_nm for e in rows])
            ev = np.array([e.energy_ev.value for e in rows], dtype=float)
            if np.any(~np.isfinite(ev)):
                raise InputError(f"barrier table: a V_{hal} site energy is missing (failed calculation)")
            out[s, near] = -np.interp(d[near], dist, ev)
            if info is not None:
                info.setdefault("site_energies", {})[hal] = {"distance_nm": dist.tolist(), "energy_ev": ev.tolist()}
            if warnings is not None and abs(ev[-1]) > 0.02:
                warnings.append(f"V_{hal} site energy at the farthest tabulated distance ({dist[-1]:.2f} nm) is "
                                f"{ev[-1]:+.3f} eV, not bulk-like; held beyond it")
        return out

    def effective_barrier_ev(self, env: str, halide: str, local_br_fraction: float = 0.5) -> float:
        """KRA barrier of one pair at one local Br fraction (eV)."""
        curve = self.barrier_curve(env, halide)
        if curve is None:
            return math.inf
        f, kra, *_ = curve
        return float(np.interp(local_br_fraction, f, kra))

    def to_dict(self) -> dict:
        return {"kind": "tabulated", "model": self.table.model, "table_source": self.table_source,
                "temperature_k": float(self.temperature_k), "attempt_frequency_hz": self.attempt_frequency_hz,
                "attempt_frequency_source": self.attempt_frequency_source,
                "missing_attempt_frequency": self.missing_attempt_frequency, "overrides": dict(self.overrides),
                "site_energies": self.site_energies, "energy_shift_ev": self.energy_shift_ev,
                "photocarriers": float(self.photocarriers), "bandgap_temperature": self.bandgap_temperature}

    def record_fields(self) -> dict:
        """Fields of a :class:`~nanodomains.records.MigrationSummary`."""
        def bulk(h):
            try:
                return self.effective_barrier_ev("bulk", h)
            except InputError:
                return None

        across = {}
        for h in SPECIES_NAMES:
            try:
                across[h] = self.effective_barrier_ev("across_fault", h)
            except InputError:
                across[h] = None
        rp = across.get("I") if across.get("I") is not None else across.get("Br")
        return {"temperature_k": float(self.temperature_k), "barrier_set": f"table: {self.table.model}",
                "barrier_br_ev": bulk("Br"), "barrier_i_ev": bulk("I"), "surface_barrier_ev": None,
                "rp_barrier_ev": "closed" if rp == math.inf else rp,
                "attempt_frequency_hz": self.attempt_frequency_hz, "photocarriers": float(self.photocarriers)}

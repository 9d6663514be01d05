"""Records of the atomistic energy model: NEB barriers, site and fault energies.

The contract between :mod:`nanodomains.migration.barriers` (which builds the table by
climbing-image NEB with an ML potential) and the kMC / growth models (which read it).

:class:`BarrierPath`
    One halide-vacancy hop computed by CI-NEB: forward barrier (saddle - initial),
    reverse barrier (saddle - final), attempt frequency (harmonic TST, Vineyard) when
    computed, convergence (``converged``, the final maximum NEB force), cost
    (``force_calls``, ``wall_s``) and the energy profile along the path.
    ``n_images`` counts the movable (intermediate) images.
:class:`SiteEnergy`
    Vacancy energy at a site at some distance from an RP fault, relative to the same
    vacancy at the site farthest from the fault in the same cell (bulk-like).
:class:`FaultEnergy`
    RP fault (1/2 a<111>, CsX double layer) formation energy per area, the relaxed
    pseudo-cubic lattice constant and the bulk modulus (E(V) fit) of one composition.
:class:`BarrierTable`
    The versioned table (``nanodomains.barriers/1``) with the model name and version.
    :meth:`BarrierTable.path` returns a converged path by name and raises naming the
    path when it is missing or was not converged: no default barrier replaces it.
:class:`MDCheck`
    A short NVT MD run with the same model (``nanodomains.md_check/1``): hops observed
    against the number expected from the table's bulk barrier and attempt frequency.
"""

from __future__ import annotations

from typing import Literal

from nanodomains.errors import InputError
from nanodomains.records.base import FloatArray, Item, Measured, Record

__all__ = ["BarrierPath", "SiteEnergy", "FaultEnergy", "BarrierTable", "MDCheck"]

Halide = Literal["I", "Br"]
Environment = Literal["bulk", "near_fault", "along_fault", "across_fault", "surface"]


class BarrierPath(Item):
    """One vacancy hop computed by CI-NEB (energies in eV, forces in eV/A)."""

    MATCH_ON = "name"
    LABEL = "name"
    name: str
    halide: Halide
    environment: Environment
    local_br_fraction: float
    barrier_ev: Measured
    reverse_barrier_ev: Measured
    attempt_frequency_thz: Measured | None = None
    converged: bool
    max_force_ev_per_a: float
    n_images: int
    force_calls: int
    wall_s: float
    reaction_coordinate_a: FloatArray
    energy_ev: FloatArray


class SiteEnergy(Item):
    """Vacancy energy at ``distance_from_fault_nm``, relative to the bulk-like site."""

    MATCH_ON = "name"
    LABEL = "name"
    name: str
    halide: Halide
    distance_from_fault_nm: float
    energy_ev: Measured


class FaultEnergy(Item):
    """RP fault formation energy, lattice constant and bulk modulus of a composition."""

    MATCH_ON = "composition"
    LABEL = "composition"
    composition: str
    br_fraction: float
    energy_j_per_m2: Measured
    lattice_pm: Measured
    bulk_modulus_gpa: Measured | None = None


class BarrierTable(Record):
    """Barriers, site energies and fault energies computed with one energy model."""

    SCHEMA = "nanodomains.barriers/1"
    model: str
    paths: tuple[BarrierPath, ...]
    site_energies: tuple[SiteEnergy, ...] = ()
    faults: tuple[FaultEnergy, ...] = ()

    def path(self, name: str, *, allow_unconverged: bool = False) -> BarrierPath:
        """The path called ``name``; an error naming it when missing or unconverged."""
        for p in self.paths:
            if p.name == name:
                if not p.converged and not allow_unconverged:
                    raise InputError(f"barrier path {name!r} did not converge (max force "
                                     f"{p.max_force_ev_per_a:.3f} eV/A); it has no usable barrier")
                return p
        reason = self.not_computed.get(name)
        known = ", ".join(p.name for p in self.paths) or "none"
        raise InputError(f"barrier path {name!r} is not in the table"
                         + (f" (not computed: {reason})" if reason else "") + f"; paths: {known}")

    def fault(self, composition: str) -> FaultEnergy:
        """The fault energy of ``composition``; an error naming it when missing."""
        for f in self.faults:
            if f.composition == composition:
                return f
        known = ", ".join(f.composition for f in self.faults) or "none"
        raise InputError(f"no RP fault energy for {composition!r} in the table; compositions: {known}")


class MDCheck(Record):
    """Hops in a short NVT MD run with the atomistic model against the kMC rate law."""

    SCHEMA = "nanodomains.md_check/1"
    model: str
    halide: Halide
    temperature_k: float
    time_ps: float
    timestep_fs: float
    n_atoms: int
    n_vacancies: int
    steps_per_s: float
    wall_s: float
    n_hops: int
    hop_times_ps: FloatArray
    fault_crossings: int
    expected_hops: Measured                  # n_vac * 8 * nu * exp(-Ea/kT) * t
    observed_hops_95: tuple[float, float]    # Poisson 95 % interval of the mean from n_hops
    bulk_barrier_ev: Measured
    attempt_frequency_thz: Measured | None = None

"""Population records: the growth population summary and the migration (kMC) summary.

Both are written by a simulator as its truth and returned, as the same type, by the
analysis of its output, so one :func:`~nanodomains.records.base.compare` validates the
analysis (see nanodomains.records.base for the conventions):

* :class:`GrowthPopulationSummary` (``nanodomains.growth.population/1``): the truth is
  :meth:`nanodomains.growth.Population.summary` (from the simulator's flat arrays), the
  analysis :func:`nanodomains.structure.population.summarize_crystals` (from the NC
  models, e.g. the lines of ``population.jsonl``). Nucleation numbers exist only in the
  simulator: they sit in ``nucleation``, which :func:`compare` skips.
* :class:`MigrationSummary` (``nanodomains.migration.summary/1``): the truth is
  :meth:`nanodomains.migration.KMCResult.summary` (inline trackers of the kMC), the
  analysis :func:`nanodomains.migration.analysis.summarize_trajectory` (hop events of
  ``trajectory.nc`` replayed through the trackers).

Examples
--------
>>> s = Statistics.of([1.0, 2.0, 3.0])
>>> s.n, s.mean.value, s.median
(3, 2.0, 2.0)
>>> f, wilson = binomial_fraction(40, 130)
>>> round(f.value, 3), round(f.stderr, 3)
(0.308, 0.04)
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from pydantic import Field

from nanodomains.records.base import FloatArray, IntArray, Item, Measured, Record, measured

__all__: list[str] = ["Statistics", "binomial_fraction", "CompositionStatistics", "NucleationStatistics",
                      "GrowthPopulationSummary", "Crossings", "BoundaryMigration", "DomainMigration",
                      "MigrationSummary", "CrossingPoint", "Equalisation", "ResidenceTimes", "FaultKinetics"]

_Z95 = 1.959963984540054  # two-sided 95 % normal quantile


class Statistics(Item):
    """Sample statistics of one quantity: ``n``, ``mean`` (stderr: standard error of
    the mean), ``sd`` (ddof 1), 5th / 50th / 95th percentiles. Empty samples have only
    ``n = 0``."""

    n: int
    mean: Measured | None = None
    sd: float | None = None
    p05: float | None = None
    median: float | None = None
    p95: float | None = None

    @classmethod
    def of(cls, values) -> Statistics:
        """Statistics of an array of numbers (NaN not allowed)."""
        x = np.asarray(values, dtype=float).ravel()
        if x.size == 0:
            return cls(n=0)
        sd = float(x.std(ddof=1)) if x.size > 1 else 0.0
        sem = sd / math.sqrt(x.size) if x.size > 1 else None
        return cls(n=int(x.size), mean=measured(float(x.mean()), sem), sd=sd,
                   p05=float(np.percentile(x, 5)), median=float(np.median(x)), p95=float(np.percentile(x, 95)))


def binomial_fraction(k: int, n: int) -> tuple[Measured, tuple[float, float] | None]:
    """Fraction ``k / n`` with its binomial standard error, and the Wilson 95 % interval."""
    if n <= 0:
        return measured(None), None
    p = k / n
    se = math.sqrt(p * (1 - p) / n)
    z2 = _Z95 * _Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = _Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return measured(p, se), (centre - half, centre + half)


def _histogram(counts) -> dict[str, int]:
    values, n = np.unique(np.asarray(counts, dtype=np.int64), return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(values, n)}


class CompositionStatistics(Item):
    """Br fractions over a population: per NC (volume-weighted), per domain, spreads."""

    nc_br_fraction: Statistics
    homogeneous_nc_br_fraction: Statistics
    domain_br_fraction: Statistics
    multi_domain_br_fraction: Statistics
    within_nc_br_spread: Statistics  # max - min domain Br fraction in multi-domain NCs


class NucleationStatistics(Item):
    """Numbers only the growth simulator knows (its nuclei); not in the NC models."""

    solution_br_fraction: float
    nucleus_br_fraction: Statistics
    nuclei_per_nc: Statistics
    nuclei_from_hotspots_fraction: float
    dropped_thin_domains: int


class GrowthPopulationSummary(Record):
    """Statistics of an NC population (growth truth, or the analysis of its NC models).

    ``multi_domain_fraction`` carries its binomial standard error; every mean carries
    its standard error (:class:`Statistics`). ``domains_per_nc`` and ``rp_faults_per_nc``
    are histograms ``{"count": number of NCs}``. ``settings`` holds the seed and the
    growth parameters when the record is the simulator's truth.
    """

    SCHEMA: ClassVar[str] = "nanodomains.growth.population/1"

    nominal_formula: str | None = None
    n_crystals: int
    multi_domain_count: int
    multi_domain_fraction: Measured
    multi_domain_fraction_wilson95: tuple[float, float] | None = None
    domains_per_nc: dict[str, int]
    domains_per_nc_mean: Measured
    rp_faults_per_nc: dict[str, int]
    rp_faults_per_nc_mean: Measured
    composition: CompositionStatistics
    domain_volume_nm3: Statistics
    multi_domain_volume_nm3: Statistics
    edge_nm: Statistics
    rp_lattice_mismatch: Statistics
    nucleation: NucleationStatistics | None = Field(None, json_schema_extra={"compare": False})

    @classmethod
    def from_arrays(cls, *, n_domains, rp_faults, edges_nm, domain_br_fraction, domain_volume_nm3,
                    rp_lattice_mismatch, nominal_formula: str | None = None,
                    nucleation: NucleationStatistics | None = None, **provenance) -> GrowthPopulationSummary:
        """Build the summary from per-NC and per-domain arrays.

        Parameters
        ----------
        n_domains, rp_faults : (N,) int
            Domains and RP faults of every NC.
        edges_nm : (N, 3) float
        domain_br_fraction, domain_volume_nm3 : (M,) float
            Every domain, NC by NC (NC ``i`` owns the next ``n_domains[i]`` entries).
        rp_lattice_mismatch : (K,) float
            ``|a_i - a_j| / a_j`` across every RP fault.
        nominal_formula : str, optional
        nucleation : NucleationStatistics, optional
            Simulator-only numbers.
        **provenance
            ``origin``, ``source``, ``settings``, ``not_computed``, ``warnings``.
        """
        n_dom = np.asarray(n_domains, dtype=np.int64)
        n = int(n_dom.size)
        multi = n_dom > 1
        f = np.asarray(domain_br_fraction, dtype=float)
        vol = np.asarray(domain_volume_nm3, dtype=float)
        nc_of = np.repeat(np.arange(n), n_dom)
        multi_dom = np.repeat(multi, n_dom)
        nc_vol = np.bincount(nc_of, weights=vol, minlength=n)
        nc_f = np.bincount(nc_of, weights=vol * f, minlength=n) / np.where(nc_vol > 0, nc_vol, 1.0)
        starts = np.r_[0, np.cumsum(n_dom)[:-1]].astype(np.int64)
        spread = (np.maximum.reduceat(f, starts) - np.minimum.reduceat(f, starts))[multi] if n else f[:0]
        k = int(multi.sum())
        fraction, wilson = binomial_fraction(k, n)
        rp = np.asarray(rp_faults, dtype=np.int64)
        return cls(
            nominal_formula=nominal_formula, n_crystals=n, multi_domain_count=k,
            multi_domain_fraction=fraction, multi_domain_fraction_wilson95=wilson,
            domains_per_nc=_histogram(n_dom), domains_per_nc_mean=Statistics.of(n_dom).mean or measured(None),
            rp_faults_per_nc=_histogram(rp), rp_faults_per_nc_mean=Statistics.of(rp).mean or measured(None),
            composition=CompositionStatistics(
                nc_br_fraction=Statistics.of(nc_f), homogeneous_nc_br_fraction=Statistics.of(nc_f[~multi]),
                domain_br_fraction=Statistics.of(f), multi_domain_br_fraction=Statistics.of(f[multi_dom]),
                within_nc_br_spread=Statistics.of(spread)),
            domain_volume_nm3=Statistics.of(vol), multi_domain_volume_nm3=Statistics.of(vol[multi_dom]),
            edge_nm=Statistics.of(np.asarray(edges_nm, dtype=float).ravel()),
            rp_lattice_mismatch=Statistics.of(rp_lattice_mismatch), nucleation=nucleation, **provenance)


# ---------------------------------------------------------------------------- migration


class Crossings(Item):
    """Ion crossings between domains, by the bond used (``unresolved``: MD jumps longer
    than one bond)."""

    total: int
    coherent: int
    rp: int
    unresolved: int = 0


class BoundaryMigration(Item):
    """Ion traffic across the boundary between domains ``pair`` = ``"i-j"`` (i < j)."""

    MATCH_ON: ClassVar[str | None] = "pair"
    LABEL: ClassVar[str | None] = "pair"

    pair: str
    type: str  # "RP" or "coherent"
    crossings: int  # ions crossing it, both directions, both species
    net_br_ions: int  # net Br ions moved from domain i to domain j
    net_i_ions: int


class DomainMigration(Item):
    """One domain over a run: Br fraction of its ions at the start and end, and the
    mean time an ion spent in it."""

    MATCH_ON: ClassVar[str | None] = "id"

    id: int
    br_fraction_initial: float | None = None
    br_fraction_final: float | None = None
    mean_residence_ps: float


class MigrationSummary(Record):
    """A halide-migration run: hops, hop time, crossings, residence (kMC truth, or the
    analysis of its trajectory / of MD hop events).

    ``mean_hop_time_ps`` is the mean waiting time of a vacancy between its hops, with
    its standard error; ``site_residence_ps`` the mean waiting time of an ion between
    its hops (ratio estimator over ions, with its standard error). ``settings`` holds
    the seed and every kMC parameter.
    """

    SCHEMA: ClassVar[str] = "nanodomains.migration.summary/1"

    temperature_k: float | None = None
    time_ps: float
    n_vacancies: int | None = None
    n_sites: int
    hops: int
    mean_hop_time_ps: Measured = Field(default_factory=lambda: measured(None))
    boundary_crossings: Crossings
    boundaries: tuple[BoundaryMigration, ...] = ()
    domains: tuple[DomainMigration, ...] = ()
    ions_moved: int
    ions_changed_domain: int
    ion_hops_max: int
    site_residence_ps: Measured = Field(default_factory=lambda: measured(None))
    msd_br_nm2: float
    msd_i_nm2: float
    barrier_set: str | None = None
    barrier_br_ev: float | None = None
    barrier_i_ev: float | None = None
    surface_barrier_ev: float | None = None
    rp_barrier_ev: float | str | None = None  # None: RP bonds closed; "bulk": species' bulk barriers
    attempt_frequency_hz: float | None = None
    photocarriers: float | None = None
    vacancy_hops: IntArray = Field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def rp_crossings(self) -> int:
        """Ions that crossed an RP fault (``boundary_crossings.rp``)."""
        return self.boundary_crossings.rp


# ------------------------------------------------------------------ fault kinetics


class CrossingPoint(Item):
    """RP crossings at one temperature: kMC count against the analytic rate model."""

    MATCH_ON: ClassVar[str | None] = "temperature_k"

    temperature_k: float
    time_ps: float
    hops: int
    crossings: int
    crossing_rate_per_site_hz: Measured  # kMC: crossings / (interface sites x time), Poisson SE
    model_rate_per_site_hz: float  # analytic equilibrium rate model, same quantity


class Equalisation(Item):
    """Time for the Br fractions on the two sides of a fault to equalise (1/e of the
    difference), with the method that gave it."""

    MATCH_ON: ClassVar[str | None] = "temperature_k"

    temperature_k: float
    time_s: Measured
    method: str  # "analytic model" or "Arrhenius extrapolation of kMC crossings"
    extrapolated: bool
    interface_limited_time_s: float | None = None
    diffusion_limited_time_s: float | None = None


class ResidenceTimes(Item):
    """Waiting times of vacancies between hops over one run."""

    temperature_k: float
    n: int
    mean_ps: float | None = None
    median_ps: float | None = None
    p99_ps: float | None = None
    max_ps: float | None = None
    over_1ns: int = 0
    histogram_edges_ps: FloatArray = Field(default_factory=lambda: np.zeros(0))
    histogram_counts: IntArray = Field(default_factory=lambda: np.zeros(0, np.int64))


class FaultKinetics(Record):
    """Ion exchange across RP faults on a computed landscape (kMC and rate model).

    ``points`` are kMC runs (crossings per interface site against temperature) with the
    analytic rate at the same temperature; ``effective_barrier_ev`` the Arrhenius fit
    of the kMC rates (null with fewer than two temperatures with crossings);
    ``equalisation`` the times for the two sides to equalise; ``residence`` the
    vacancy waiting-time distributions.
    """

    SCHEMA: ClassVar[str] = "nanodomains.migration.fault_kinetics/1"

    model: str
    interface_sites: int
    n_vacancies: int
    across_barrier_ev: dict[str, float | None]
    points: tuple[CrossingPoint, ...] = ()
    effective_barrier_ev: Measured = Field(default_factory=lambda: measured(None))
    prefactor_per_site_hz: Measured = Field(default_factory=lambda: measured(None))
    model_to_kmc_ratio: Measured = Field(default_factory=lambda: measured(None))
    equalisation: tuple[Equalisation, ...] = ()
    residence: tuple[ResidenceTimes, ...] = ()

"""Hop and boundary-crossing trackers shared by the kinetic Monte Carlo and MD analysis.

Every halide ion is followed through its hops (site a -> site b at time t):

* hop count and mean waiting time between its hops (site residence time);
* unwrapped displacement, hence the mean squared displacement (MSD) per species,
  kept as a running sum so it is O(1) per hop;
* its domain: residence time in every domain, and the cross-boundary flux
  ``flux[species, from_domain, to_domain]``;
* boundary crossings, classified by the bond used: across an RP bond, or across a
  bulk/surface bond between two domains (a coherent boundary); ``-1`` for an
  unresolved jump (MD frames where an ion moved further than one bond);
* the Br and ion counts of every domain (hence its Br fraction at any time).

:func:`track_hop` is compiled with numba and called inline by the kMC engine;
:func:`track_events` replays a list of hop events (from MD or from a recorded kMC
run) through the same function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from nanodomains.errors import InputError
from nanodomains.migration.lattice import BOUNDARY_NONE, BOUNDARY_RP, XLattice
from nanodomains.records.base import Measured, measured
from nanodomains.records.populations import BoundaryMigration, Crossings, DomainMigration, MigrationSummary

CROSS_COHERENT, CROSS_RP, CROSS_UNRESOLVED = 0, 1, 2


@dataclass
class Trackers:
    """State of the per-ion trackers (arrays updated in place by :func:`track_hop`)."""

    ion_species: np.ndarray      # (I,) int8
    ion_site: np.ndarray         # (I,) int32, current site
    ion_initial_site: np.ndarray  # (I,) int32
    ion_hops: np.ndarray         # (I,) int64
    ion_disp_nm: np.ndarray      # (I, 3) float64, unwrapped displacement
    ion_t_last_ps: np.ndarray    # (I,) float64, time of the last hop
    ion_wait_ps: np.ndarray      # (I,) float64, summed waiting time before each hop
    ion_t_enter_ps: np.ndarray   # (I,) float64, time the ion entered its current domain
    residence_ps: np.ndarray     # (I, nd) float64, completed stays per domain
    flux: np.ndarray             # (2, nd, nd) int64
    msd_sum_nm2: np.ndarray      # (2,) float64, sum over ions of |disp|^2 per species
    domain_br: np.ndarray        # (nd,) int64, Br ions per domain
    domain_ions: np.ndarray      # (nd,) int64, ions per domain
    crossings: np.ndarray        # (3,) int64: coherent, RP, unresolved

    @classmethod
    def start(cls, lattice: XLattice, occupancy: np.ndarray, ion_species: np.ndarray) -> "Trackers":
        """Trackers for ions ``0..I-1`` at the sites given by ``occupancy`` (site -> ion or -1)."""
        n_ions = len(ion_species)
        nd = lattice.n_domains
        ion_site = np.full(n_ions, -1, dtype=np.int32)
        occ_sites = np.flatnonzero(occupancy >= 0)
        ion_site[occupancy[occ_sites]] = occ_sites
        dom = lattice.domain[ion_site]
        return cls(
            ion_species=ion_species.astype(np.int8), ion_site=ion_site, ion_initial_site=ion_site.copy(),
            ion_hops=np.zeros(n_ions, np.int64), ion_disp_nm=np.zeros((n_ions, 3)),
            ion_t_last_ps=np.zeros(n_ions), ion_wait_ps=np.zeros(n_ions), ion_t_enter_ps=np.zeros(n_ions),
            residence_ps=np.zeros((n_ions, nd)), flux=np.zeros((2, nd, nd), np.int64),
            msd_sum_nm2=np.zeros(2), domain_br=np.bincount(dom[ion_species == 0], minlength=nd).astype(np.int64),
            domain_ions=np.bincount(dom, minlength=nd).astype(np.int64), crossings=np.zeros(3, np.int64))

    def arrays(self) -> tuple:
        """The arrays in the argument order of :func:`track_hop` (after the hop data)."""
        return (self.ion_species, self.ion_site, self.ion_hops, self.ion_disp_nm, self.ion_t_last_ps,
                self.ion_wait_ps, self.ion_t_enter_ps, self.residence_ps, self.flux, self.msd_sum_nm2,
                self.domain_br, self.domain_ions, self.crossings)

    def finish(self, lattice: XLattice, t_end_ps: float) -> np.ndarray:
        """Residence per domain including the current, unfinished stay (I, nd)."""
        res = self.residence_ps.copy()
        dom = lattice.domain[self.ion_site]
        res[np.arange(len(dom)), dom] += t_end_ps - self.ion_t_enter_ps
        return res

    def msd_nm2(self) -> np.ndarray:
        """Current MSD per species (Br, I), nm^2."""
        counts = np.bincount(self.ion_species, minlength=2)
        return self.msd_sum_nm2 / np.maximum(counts, 1)

    def domain_counts(self, lattice: XLattice, initial: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(Br ions, ions) of every domain, now or at the start (``initial=True``)."""
        site = self.ion_initial_site if initial else self.ion_site
        dom = lattice.domain[site]
        nd = lattice.n_domains
        return (np.bincount(dom[self.ion_species == 0], minlength=nd).astype(np.int64),
                np.bincount(dom, minlength=nd).astype(np.int64))

    def site_residence_ps(self) -> Measured:
        """Mean waiting time of an ion between its hops, over the ions that moved.

        Ratio estimator ``sum(wait) / sum(hops)``; its standard error treats ions as
        independent clusters (delta method).
        """
        moved = self.ion_hops > 0
        h = self.ion_hops[moved].astype(float)
        wt = self.ion_wait_ps[moved]
        if h.sum() == 0:
            return measured(None)
        r = float(wt.sum() / h.sum())
        n = len(h)
        se = math.sqrt(float(((wt - r * h) ** 2).sum()) * n / (n - 1)) / float(h.sum()) if n > 1 else None
        return measured(r, se)


@njit(cache=True, inline="always")
def track_hop(ion, a, b, bond, t_ps, positions, site_domain,
              ion_species, ion_site, ion_hops, ion_disp, ion_t_last, ion_wait, ion_t_enter,
              residence, flux, msd_sum, domain_br, domain_ions, crossings):
    """Record one hop of ``ion`` from site ``a`` to ``b`` over a bond of type ``bond``.

    ``bond`` is the lattice bond type (0 bulk, 1 surface, 2 RP) or -1 if the jump is
    not a single bond (unresolved).
    """
    s = ion_species[ion]
    ion_wait[ion] += t_ps - ion_t_last[ion]
    ion_t_last[ion] = t_ps
    ion_hops[ion] += 1
    ion_site[ion] = b
    dx = positions[b, 0] - positions[a, 0]
    dy = positions[b, 1] - positions[a, 1]
    dz = positions[b, 2] - positions[a, 2]
    d0 = ion_disp[ion, 0]
    d1 = ion_disp[ion, 1]
    d2 = ion_disp[ion, 2]
    msd_sum[s] += 2.0 * (d0 * dx + d1 * dy + d2 * dz) + dx * dx + dy * dy + dz * dz
    ion_disp[ion, 0] = d0 + dx
    ion_disp[ion, 1] = d1 + dy
    ion_disp[ion, 2] = d2 + dz
    da = site_domain[a]
    db = site_domain[b]
    if da != db:
        residence[ion, da] += t_ps - ion_t_enter[ion]
        ion_t_enter[ion] = t_ps
        flux[s, da, db] += 1
        domain_ions[da] -= 1
        domain_ions[db] += 1
        if s == 0:
            domain_br[da] -= 1
            domain_br[db] += 1
        if bond < 0:
            crossings[2] += 1
        elif bond == 2:
            crossings[1] += 1
        else:
            crossings[0] += 1


@njit(cache=True)
def _replay(times, ions, froms, tos, bonds, positions, site_domain,
            ion_species, ion_site, ion_hops, ion_disp, ion_t_last, ion_wait, ion_t_enter,
            residence, flux, msd_sum, domain_br, domain_ions, crossings):
    for k in range(len(times)):
        track_hop(ions[k], froms[k], tos[k], bonds[k], times[k], positions, site_domain,
                  ion_species, ion_site, ion_hops, ion_disp, ion_t_last, ion_wait, ion_t_enter,
                  residence, flux, msd_sum, domain_br, domain_ions, crossings)


def bond_types_of(lattice: XLattice, froms: np.ndarray, tos: np.ndarray) -> np.ndarray:
    """Bond type of each jump ``froms[k] -> tos[k]``, -1 where the sites are not bonded."""
    froms = np.asarray(froms, dtype=np.int64)
    tos = np.asarray(tos, dtype=np.int64)
    if len(froms) == 0:
        return np.zeros(0, np.int8)
    match = lattice.neighbors[froms] == tos[:, None]
    has = match.any(axis=1)
    k = np.argmax(match, axis=1)
    return np.where(has, lattice.bond_type[froms, k], -1).astype(np.int8)


def track_events(lattice: XLattice, occupancy: np.ndarray, ion_species: np.ndarray,
                 times_ps: np.ndarray, ions: np.ndarray, from_sites: np.ndarray, to_sites: np.ndarray,
                 trackers: Trackers | None = None) -> Trackers:
    """Replay hop events (sorted by time) through :func:`track_hop`.

    Parameters
    ----------
    lattice : XLattice
    occupancy : (S,) int, ion index on every site at time 0 (-1 for a vacancy)
    ion_species : (I,) int, 0 Br / 1 I
    times_ps, ions, from_sites, to_sites : (E,) arrays, one row per hop
    trackers : Trackers, optional
        Continue from existing trackers instead of starting fresh.

    Returns
    -------
    Trackers
    """
    times_ps = np.asarray(times_ps, dtype=np.float64)
    if len(times_ps) > 1 and np.any(np.diff(times_ps) < 0):
        raise InputError("hop events must be sorted by time")
    tr = trackers if trackers is not None else Trackers.start(lattice, np.asarray(occupancy), np.asarray(ion_species))
    bonds = bond_types_of(lattice, from_sites, to_sites)
    _replay(times_ps, np.asarray(ions, np.int64), np.asarray(from_sites, np.int64),
            np.asarray(to_sites, np.int64), bonds, lattice.positions_nm, lattice.domain, *tr.arrays())
    return tr


def mean_waiting_time(n_waits, wait_sum, wait2_sum) -> Measured:
    """Mean of waiting times from their count, sum and sum of squares (pooled over
    vacancies), with the standard error ``sd / sqrt(n)``; no value when nothing waited.

    Examples
    --------
    >>> str(mean_waiting_time([2, 2], [4.0, 6.0], [10.0, 20.0]))
    '2.5 +- 0.56'
    """
    n = int(np.sum(n_waits))
    if n == 0:
        return measured(None)
    mean = float(np.sum(wait_sum)) / n
    var = max(float(np.sum(wait2_sum)) / n - mean * mean, 0.0)
    return measured(mean, math.sqrt(var / n))


def vacancy_waits(times_ps, vacancy, n_vacancies: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per vacancy: number of hops, summed waiting time and summed squared waiting time
    (the first wait counts from t = 0) from hop events sorted by time.

    Examples
    --------
    >>> n, w, w2 = vacancy_waits([1.0, 2.0, 4.0], [0, 1, 0], 2)
    >>> n.tolist(), w.tolist(), w2.tolist()
    ([2, 1], [4.0, 2.0], [10.0, 4.0])
    """
    t = np.asarray(times_ps, dtype=float)
    v = np.asarray(vacancy, dtype=np.int64)
    order = np.argsort(v, kind="stable")
    t, v = t[order], v[order]
    first = np.r_[True, v[1:] != v[:-1]] if len(v) else np.zeros(0, bool)
    wait = t - np.where(first, 0.0, np.r_[0.0, t[:-1]])
    return (np.bincount(v, minlength=n_vacancies).astype(np.int64),
            np.bincount(v, weights=wait, minlength=n_vacancies),
            np.bincount(v, weights=wait * wait, minlength=n_vacancies))


def _boundary_traffic(lattice: XLattice, trackers: Trackers) -> tuple[BoundaryMigration, ...]:
    out = []
    flux = trackers.flux
    for i in range(lattice.n_domains):
        for j in range(i + 1, lattice.n_domains):
            kind = int(lattice.boundary_type[i, j])
            if kind == BOUNDARY_NONE and not (flux[:, i, j].any() or flux[:, j, i].any()):
                continue
            out.append(BoundaryMigration(
                pair=f"{i}-{j}", type="RP" if kind == BOUNDARY_RP else "coherent",
                crossings=int(flux[:, i, j].sum() + flux[:, j, i].sum()),
                net_br_ions=int(flux[0, i, j] - flux[0, j, i]), net_i_ions=int(flux[1, i, j] - flux[1, j, i])))
    return tuple(out)


def _domain_history(lattice: XLattice, trackers: Trackers, residence_ps: np.ndarray) -> tuple[DomainMigration, ...]:
    br0, ions0 = trackers.domain_counts(lattice, initial=True)
    br1, ions1 = trackers.domain_counts(lattice)
    mean_res = residence_ps.sum(axis=0) / max(residence_ps.shape[0], 1)
    return tuple(DomainMigration(id=d, br_fraction_initial=br0[d] / ions0[d] if ions0[d] else None,
                                 br_fraction_final=br1[d] / ions1[d] if ions1[d] else None,
                                 mean_residence_ps=float(mean_res[d])) for d in range(lattice.n_domains))


def summarize_trackers(lattice: XLattice, trackers: Trackers, time_ps: float, **fields) -> MigrationSummary:
    """The :class:`~nanodomains.records.MigrationSummary` of a run from its trackers.

    Used by the kMC for its truth (inline trackers) and by the analyses of its
    trajectory and of MD hop events (replayed trackers), so both give one record type.

    Parameters
    ----------
    lattice : XLattice
    trackers : Trackers
        After the run (or the replay of its hop events).
    time_ps : float
        Duration of the run; unfinished domain stays count up to it.
    **fields
        The other record fields (``mean_hop_time_ps``, ``n_vacancies``,
        ``vacancy_hops``, run parameters) and provenance (``origin``, ``settings``...).

    Examples
    --------
    >>> import numpy as np
    >>> from nanodomains.migration.lattice import build_x_lattice
    >>> from nanodomains.structure import homogeneous
    >>> lat = build_x_lattice(homogeneous(2.4, seed=1))
    >>> occ = np.arange(lat.n_sites, dtype=np.int32)
    >>> tr = Trackers.start(lat, occ, lat.species)
    >>> summarize_trackers(lat, tr, 10.0, temperature_k=300.0).hops
    0
    """
    tr = trackers
    c = tr.crossings
    msd = tr.msd_nm2()
    return MigrationSummary(
        time_ps=float(time_ps), n_sites=lattice.n_sites, hops=int(tr.ion_hops.sum()),
        boundary_crossings=Crossings(total=int(c.sum()), coherent=int(c[CROSS_COHERENT]), rp=int(c[CROSS_RP]),
                                     unresolved=int(c[CROSS_UNRESOLVED])),
        boundaries=_boundary_traffic(lattice, tr), domains=_domain_history(lattice, tr, tr.finish(lattice, time_ps)),
        ions_moved=int((tr.ion_hops > 0).sum()),
        ions_changed_domain=int(np.sum(lattice.domain[tr.ion_site] != lattice.domain[tr.ion_initial_site])),
        ion_hops_max=int(tr.ion_hops.max()) if len(tr.ion_hops) else 0,
        site_residence_ps=tr.site_residence_ps(), msd_br_nm2=float(msd[0]), msd_i_nm2=float(msd[1]), **fields)


__all__ = ["Trackers", "track_hop", "track_events", "bond_types_of", "mean_waiting_time", "vacancy_waits",
           "summarize_trackers", "CROSS_COHERENT", "CROSS_RP", "CROSS_UNRESOLVED"]

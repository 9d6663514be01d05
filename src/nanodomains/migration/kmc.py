r"""Rejection-free kinetic Monte Carlo of halide vacancies on the X sublattice.

Two ways to set the rates
-------------------------
* :class:`~nanodomains.migration.landscape.TabulatedLandscape` (the default of the CLI
  and the demo): barriers, vacancy site energies and attempt frequencies computed with
  an atomistic model (CI-NEB table) by local environment (bulk by local Br fraction,
  near / along / across an RP fault, surface), with detailed balance over the
  site-energy landscape (see :mod:`nanodomains.migration.landscape`). The RP crossing
  is the computed, finite ``across_fault`` barrier.
* :class:`KMCParameters`: the literature bulk barriers below, for comparison and
  sensitivity runs; an RP crossing barrier must then be given (a number, ``"bulk"``,
  or ``"closed"``, the explicit choice of no crossing at all).

Both give the engine one rate table ``w[species, environment, n_Br, n_occ]`` and the
site energies; the engine multiplies ``exp(-(eps_s(u) - eps_s(j)) / 2kT)`` for an ion
of species s moving j -> u (KRA, Van der Ven et al. PRB 64, 184307 (2001)).

Literature model
----------------
Vacancies live on the X sublattice of an NC model (:mod:`.lattice`). A vacancy at
site u exchanges with the halide ion at a bonded site j; the rate is an Arrhenius
law with the barrier of the moving species (transition-state theory, Vineyard,
J. Phys. Chem. Solids 3, 121 (1957))::

    k(u <- j) = nu exp(-(E_a(species_j, bond) + dU / 2) / kT)

* ``E_a`` bulk barriers of the vacancy hop (training set of the ReaxFF IBrPbCs force
  field, Pols et al., J. Phys. Chem. C 128, 4111 (2024)): V_Br 0.195 eV and V_I
  0.21 eV by DFT; 0.24 and 0.26 eV with the ReaxFF force field. Default ``"reaxff"``,
  because the seed's Fig. 3 is a ReaxFF MD run.
* ``nu`` attempt frequency, default 4e12 /s: phenomenological, of the order of the
  LO-phonon frequency of CsPbX3 (~16-19 meV, ~4 THz; unchecked) and inside the
  1e12-1e13 /s range usual for ion hops. Mean hop times scale as 1/nu.
* bonds with an end on the outer surface use ``surface_barrier_ev`` (default: the
  bulk barrier); bonds across an RP fault use ``rp_barrier_ev``: a number in eV,
  ``"bulk"`` for each species' bulk barrier, or ``"closed"`` (no crossing; an explicit
  user choice, never the default: a lattice with RP bonds and no RP barrier is an
  error). Bonds along the fault plane (``along`` bonds) are closed in this model, as
  they were before the computed landscape; octahedron edges at a fault use the bulk
  barrier.
* ``dU`` is the change of a configuration energy U. Without light U = 0, the rate
  matrix is symmetric and the stationary distribution uniform over configurations
  (detailed balance). With ``photocarriers`` > 0, U is the mean band-gap energy of
  the photocarriers, distributed over the octahedra by Boltzmann statistics on their
  local band gaps (the band-gap model of LattiKEM: Ruth et al., ACS Energy Lett. 3,
  2321 (2018); J. Phys. Chem. C 127, 18547 (2023))::

      U = N_c sum_p Eg_p exp(-Eg_p/kT) / sum_p exp(-Eg_p/kT)

  with Eg_p from the Br fraction of the (occupied) X sites of octahedron p
  (:func:`nanodomains.materials.bandgap_ev`, room-temperature end members, bowing
  from ``materials``). Carriers funnel into I-rich octahedra, which lowers U when I
  gathers there: light-driven demixing. The symmetric split ``dU/2`` keeps detailed
  balance with respect to exp(-U/kT) (our choice; LattiKEM's exact rate form may
  differ).

Algorithm: BKL / Gillespie (Bortz, Kalos & Lebowitz, J. Comput. Phys. 17, 10 (1975);
Gillespie, J. Comput. Phys. 22, 403 (1976)). Each vacancy keeps the rates of its
hops; a binary sum tree over vacancies picks the vacancy in O(log n), a scan of its
<= D rates picks the hop, and the clock advances by an exponential waiting time. After
a hop only the moving vacancy and vacancies next to its old or new site are updated
(all vacancies when the light term is on, since U couples them). Compiled with numba;
the run is chunked so long runs show progress and can be interrupted.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from numba import njit

from nanodomains import materials
from nanodomains.errors import InputError, require_positive
from nanodomains.files import atomic_path, dumps
from nanodomains.migration.landscape import ENV_ACROSS, ENV_ALONG, ENV_NAMES, ENV_NEAR, ENV_SURFACE, N_LOCAL, RateArrays
from nanodomains.migration.lattice import BOND_RP, SPECIES_NAMES, XLattice, build_x_lattice
from nanodomains.migration.tracking import Trackers, mean_waiting_time, summarize_trackers, track_hop
from nanodomains.records.populations import MigrationSummary
from nanodomains.seeds import SeedLike, check_seed, seed_record, spawn
from nanodomains.seeds import rng as make_rng

KB_EV: float = materials.KB_EV  # Boltzmann constant, eV/K (materials.py)


@dataclass(frozen=True)
class KMCParameters:
    """Parameters of the vacancy kMC (see module docstring).

    Parameters
    ----------
    temperature_k : float
    attempt_frequency_hz : float
    barrier_set : {"reaxff", "dft"}
    barrier_br_ev, barrier_i_ev : float, optional
        Override the bulk barriers of the set.
    surface_barrier_ev : float, optional
        Barrier of hops with an end on the outer surface (both species); None = bulk.
    rp_barrier_ev : float, "bulk" or "closed", optional
        A number opens RP bonds with that barrier (both species); "bulk" with each
        species' bulk barrier; "closed" closes them. None (not given) is an error on a
        lattice with RP bonds.
    photocarriers : float
        Number of photocarriers N_c in the NC (0: dark, no segregation energy).
    bandgap_temperature : {"RT", "4K"}
        End members used for the local band gaps of the light term.
    """

    temperature_k: float = 500.0
    attempt_frequency_hz: float = 4.0e12
    barrier_set: str = "reaxff"
    barrier_br_ev: float | None = None
    barrier_i_ev: float | None = None
    surface_barrier_ev: float | None = None
    rp_barrier_ev: float | str | None = None
    photocarriers: float = 0.0
    bandgap_temperature: str = "RT"
    sources: dict = field(default_factory=lambda: {
        "barriers": "Pols et al. J. Phys. Chem. C 128, 4111 (2024) (DFT / ReaxFF)",
        "attempt_frequency_hz": "phenomenological (~LO phonon of CsPbX3, unchecked)",
        "segregation": "LattiKEM band-gap model, Ruth et al. ACS Energy Lett. 3, 2321 (2018)",
    })

    def validate(self) -> "KMCParameters":
        t = self.temperature_k
        if not (isinstance(t, (int, float)) and math.isfinite(t) and t > 0):
            raise InputError(f"temperature_k must be a finite number > 0 K, got {t!r}")
        require_positive("attempt_frequency_hz", self.attempt_frequency_hz)
        if self.barrier_set not in materials.VACANCY_BARRIERS_EV:
            raise InputError(f"barrier_set must be one of {sorted(materials.VACANCY_BARRIERS_EV)}, "
                             f"got {self.barrier_set!r}")
        for name in ("barrier_br_ev", "barrier_i_ev", "surface_barrier_ev"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and 0 <= v < 5):
                raise InputError(f"{name} must lie in [0, 5) eV, got {v!r}")
        rp = self.rp_barrier_ev
        if rp is not None and rp not in ("bulk", "closed") and not (
                isinstance(rp, (int, float)) and not isinstance(rp, bool) and math.isfinite(rp) and 0 <= rp < 5):
            raise InputError(f"rp_barrier_ev must be 'closed', 'bulk' or a barrier in [0, 5) eV, got {rp!r}")
        if not (math.isfinite(self.photocarriers) and self.photocarriers >= 0):
            raise InputError(f"photocarriers must be >= 0, got {self.photocarriers!r}")
        if self.bandgap_temperature not in ("RT", "4K"):
            raise InputError(f"bandgap_temperature must be 'RT' or '4K', got {self.bandgap_temperature!r}")
        return self

    def bulk_barriers_ev(self) -> tuple[float, float]:
        """(Br, I) bulk barriers in eV."""
        s = materials.VACANCY_BARRIERS_EV[self.barrier_set]
        br = s["Br"] if self.barrier_br_ev is None else float(self.barrier_br_ev)
        i = s["I"] if self.barrier_i_ev is None else float(self.barrier_i_ev)
        return br, i

    def barrier_table_ev(self) -> np.ndarray:
        """Barriers (2 species x 3 bond types: bulk, surface, RP), inf for closed bonds
        (and for RP bonds when no RP barrier is given)."""
        br, i = self.bulk_barriers_ev()
        table = np.empty((2, 3))
        table[:, 0] = (br, i)
        table[:, 1] = (br, i) if self.surface_barrier_ev is None else self.surface_barrier_ev
        if self.rp_barrier_ev in (None, "closed"):
            table[:, 2] = np.inf
        elif self.rp_barrier_ev == "bulk":
            table[:, 2] = (br, i)
        else:
            table[:, 2] = float(self.rp_barrier_ev)
        return table

    def rate_table_per_ps(self) -> np.ndarray:
        """Hop rates nu exp(-Ea/kT) in 1/ps (2 x 3), 0 for closed bonds."""
        kt = KB_EV * self.temperature_k
        return self.attempt_frequency_hz * 1e-12 * np.exp(-self.barrier_table_ev() / kt)

    def rate_arrays(self, lattice: XLattice) -> RateArrays:
        """Engine arrays: the rate of a bond depends on species and environment only."""
        self.validate()
        if self.rp_barrier_ev is None and np.any(lattice.bond_type[lattice.neighbors >= 0] == BOND_RP):
            raise InputError("the lattice has RP faults but no RP crossing barrier was given: use a computed "
                             "barrier table (TabulatedLandscape) or set rp_barrier_ev (eV, 'bulk' or 'closed')")
        r = self.rate_table_per_ps()  # (2, 3): bulk, surface, RP
        w = np.zeros((2, len(ENV_NAMES), N_LOCAL, N_LOCAL))
        w[:, :, :, :] = r[:, 0][:, None, None, None]  # bulk and near-fault edges
        w[:, ENV_SURFACE] = r[:, 1][:, None, None]
        w[:, ENV_ACROSS] = r[:, 2][:, None, None]
        w[:, ENV_ALONG] = 0.0  # not part of the literature model
        from nanodomains.migration.landscape import bond_environments

        return RateArrays(w=w, env=bond_environments(lattice), ion_energy_ev=np.zeros((2, lattice.n_sites)),
                          info={"kind": "literature", "rates_per_ps": {
                              "bulk": r[:, 0].tolist(), "surface": r[:, 1].tolist(), "rp": r[:, 2].tolist(),
                              "along": [0.0, 0.0], "species": list(SPECIES_NAMES)}})

    def to_dict(self) -> dict:
        return asdict(self)

    def record_fields(self) -> dict:
        """The parameters a :class:`~nanodomains.records.MigrationSummary` carries
        (bulk barriers resolved from the barrier set).

        Examples
        --------
        >>> f = KMCParameters(barrier_set="dft").record_fields()
        >>> f["barrier_br_ev"], f["barrier_i_ev"], f["rp_barrier_ev"]
        (0.195, 0.21, None)
        """
        br, i = self.bulk_barriers_ev()
        return {"temperature_k": float(self.temperature_k), "barrier_set": self.barrier_set,
                "barrier_br_ev": br, "barrier_i_ev": i, "surface_barrier_ev": self.surface_barrier_ev,
                "rp_barrier_ev": self.rp_barrier_ev, "attempt_frequency_hz": float(self.attempt_frequency_hz),
                "photocarriers": float(self.photocarriers)}


# ---- numba engine -----------------------------------------------------------------

@njit(cache=True, inline="always")
def _delta_u(u, j, s, pb_of_x, n_br_pb, n_occ_pb, eg_table, zs, beta, ncar):
    """Change of the photocarrier energy when the ion (species s) at j moves to u."""
    z = zs[0]
    sm = zs[1]
    eg0 = zs[2]
    dz = 0.0
    ds = 0.0
    isbr = 1 if s == 0 else 0
    for side in range(2):
        x = j if side == 0 else u
        y = u if side == 0 else j
        for q in range(2):
            p = pb_of_x[x, q]
            if p < 0:
                continue
            if p == pb_of_x[y, 0] or p == pb_of_x[y, 1]:
                continue  # octahedron holds both sites: unchanged
            nb = n_br_pb[p]
            no = n_occ_pb[p]
            e_old = eg_table[nb, no]
            if side == 0:
                e_new = eg_table[nb - isbr, no - 1]
            else:
                e_new = eg_table[nb + isbr, no + 1]
            w_old = math.exp(-beta * (e_old - eg0))
            w_new = math.exp(-beta * (e_new - eg0))
            dz += w_new - w_old
            ds += e_new * w_new - e_old * w_old
    return ncar * ((sm + ds) / (z + dz) - sm / z)


@njit(cache=True, inline="always")
def _local_counts(u, j, edge, occ, species, pb_of_x, x_of_pb):
    """Br and occupied X around the hop u <-> j, both ends excluded (landscape docstring)."""
    nb = 0
    no = 0
    for side in range(2):
        site = u if side == 0 else j
        for r in range(2):
            p = pb_of_x[site, r]
            if p < 0:
                continue
            if edge:  # only the octahedron holding the edge, counted once
                if side == 1 or (p != pb_of_x[j, 0] and p != pb_of_x[j, 1]):
                    continue
            for q in range(6):
                x = x_of_pb[p, q]
                if x != u and x != j:
                    ion = occ[x]
                    if ion >= 0:
                        no += 1
                        if species[ion] == 0:
                            nb += 1
    return nb, no


@njit(cache=True, inline="always")
def _vacancy_rates(v, vac_site, nbr, env, occ, species, w, rates, seg_on,
                   pb_of_x, n_br_pb, n_occ_pb, eg_table, zs, beta, ncar,
                   x_of_pb, ion_energy, local_on, energy_on):
    u = vac_site[v]
    tot = 0.0
    for k in range(nbr.shape[1]):
        j = nbr[u, k]
        r = 0.0
        if j >= 0:
            ion = occ[j]
            if ion >= 0:
                s = species[ion]
                e = env[u, k]
                nb = 0
                no = 0
                if local_on:
                    nb, no = _local_counts(u, j, e <= 1 or e == 4, occ, species, pb_of_x, x_of_pb)
                r = w[s, e, nb, no]
                if r > 0.0 and energy_on:
                    r *= math.exp(-0.5 * beta * (ion_energy[s, u] - ion_energy[s, j]))
                if r > 0.0 and seg_on:
                    r *= math.exp(-0.5 * beta * _delta_u(u, j, s, pb_of_x, n_br_pb, n_occ_pb,
                                                         eg_table, zs, beta, ncar))
        rates[v, k] = r
        tot += r
    return tot


@njit(cache=True, inline="always")
def _tree_set(tree, p, v, value):
    i = p + v
    tree[i] = value
    i //= 2
    while i >= 1:
        tree[i] = tree[2 * i] + tree[2 * i + 1]
        i //= 2


@njit(cache=True)
def _init_rates(vac_site, nbr, env, occ, species, w, rates, tree, p, seg_on,
                pb_of_x, n_br_pb, n_occ_pb, eg_table, zs, beta, ncar, x_of_pb, ion_energy, local_on, energy_on,
                dependents):
    tree[:] = 0.0
    for v in range(len(vac_site)):
        tree[p + v] = _vacancy_rates(v, vac_site, nbr, env, occ, species, w, rates, seg_on,
                                     pb_of_x, n_br_pb, n_occ_pb, eg_table, zs, beta, ncar,
                                     x_of_pb, ion_energy, local_on, energy_on)
    for i in range(p - 1, 0, -1):
        tree[i] = tree[2 * i] + tree[2 * i + 1]


@njit(cache=True, inline="always")
def _snapshot(f, hops, vac_site, msd_sum, domain_br, domain_ions, crossings,
              fr_msd, fr_dom_br, fr_dom_ions, fr_vac, fr_hops, fr_cross):
    """Store the current state as frame ``f``."""
    for s in range(2):
        fr_msd[f, s] = msd_sum[s]
    for d in range(len(domain_br)):
        fr_dom_br[f, d] = domain_br[d]
        fr_dom_ions[f, d] = domain_ions[d]
    for v in range(len(vac_site)):
        fr_vac[f, v] = vac_site[v]
    fr_hops[f] = hops
    for c in range(3):
        fr_cross[f, c] = crossings[c]


@njit(cache=True, inline="always")
def _light_octahedron(q, d_br, d_occ, n_br_pb, n_occ_pb, eg_table, zs, beta):
    """Move the Br / ion counts of octahedron ``q`` and update the Boltzmann sums ``zs``."""
    e_old = eg_table[n_br_pb[q], n_occ_pb[q]]
    n_br_pb[q] += d_br
    n_occ_pb[q] += d_occ
    e_new = eg_table[n_br_pb[q], n_occ_pb[q]]
    w_old = math.exp(-beta * (e_old - zs[2]))
    w_new = math.exp(-beta * (e_new - zs[2]))
    zs[0] += w_new - w_old
    zs[1] += e_new * w_new - e_old * w_old


@njit(cache=True, inline="always")
def _light_move(u, j, s, pb_of_x, n_br_pb, n_occ_pb, eg_table, zs, beta):
    """Light-term bookkeeping of the ion (species s) moving from site j to site u."""
    isbr = 1 if s == 0 else 0
    for q in range(2):
        pj = pb_of_x[j, q]
        if pj >= 0 and pj != pb_of_x[u, 0] and pj != pb_of_x[u, 1]:
            _light_octahedron(pj, -isbr, -1, n_br_pb, n_occ_pb, eg_table, zs, beta)
        pu = pb_of_x[u, q]
        if pu >= 0 and pu != pb_of_x[j, 0] and pu != pb_of_x[j, 1]:
            _light_octahedron(pu, isbr, 1, n_br_pb, n_occ_pb, eg_table, zs, beta)


@njit(cache=True, inline="always")
def _update_all_rates(vac_site, nbr, env, occ, species, w, rates, tree, p, seg_on,
                      pb_of_x, n_br_pb, n_occ_pb, eg_table, zs, beta, ncar, x_of_pb, ion_energy, local_on,
                      energy_on):
    """Rates of every vacancy (the light term couples them all through U)."""
    for x in range(len(vac_site)):
        _tree_set(tree, p, x, _vacancy_rates(x, vac_site, nbr, env, occ, species, w, rates,
                                             seg_on, pb_of_x, n_br_pb, n_occ_pb, eg_table, zs, beta, ncar,
                                             x_of_pb, ion_energy, local_on, energy_on))


@njit(cache=True)
def _run(rng, clock, t_end, max_hops, nbr, btype, occ, site_vac, vac_site, species, w,
         rates, tree, p, seg_on, pb_of_x, n_br_pb, n_occ_pb, eg_table, zs, beta, ncar,
         env, x_of_pb, ion_energy, local_on, energy_on, dependents,
         positions, site_domain,
         ion_species, ion_site, ion_hops, ion_disp, ion_t_last, ion_wait, ion_t_enter,
         residence, flux, msd_sum, domain_br, domain_ions, crossings,
         vac_hops, vac_t_last, vac_wait, vac_wait2,
         ev_time, ev_vac, ev_from, ev_to, ev_ion, ev_count,
         frame_times, frame_idx, fr_msd, fr_dom_br, fr_dom_ions, fr_vac, fr_hops, fr_cross):
    """Advance until ``t_end`` (ps) or ``max_hops`` hops; returns 0 time, 1 hops, 2 stuck.

    One BKL step per pass: waiting time from the total rate, frames before the hop,
    vacancy (sum-tree descent) and hop (scan of its rates), the move and its trackers,
    the rates it changed. The hot path stays in this one function on purpose: inlined
    helpers with many array arguments cost numba reference counting on every hop
    (35-50 % slower when event recording or the rate update were helpers).
    """
    t = clock[0]
    nv = len(vac_site)
    hops = 0
    status = 1
    n_frames = len(frame_times)
    cap = len(ev_time)
    while hops < max_hops:
        total = tree[1]
        if total <= 0.0:
            status = 2
            break
        t_next = t - math.log(1.0 - rng.random()) / total
        # frames falling before the next hop see the current state
        while frame_idx[0] < n_frames and frame_times[frame_idx[0]] <= min(t_next, t_end):
            _snapshot(frame_idx[0], clock[1] + hops, vac_site, msd_sum, domain_br, domain_ions, crossings,
                      fr_msd, fr_dom_br, fr_dom_ions, fr_vac, fr_hops, fr_cross)
            frame_idx[0] += 1
        if t_next > t_end:
            t = t_end
            status = 0
            break
        t = t_next
        # pick the vacancy, then its hop
        r = rng.random() * total
        i = 1
        while i < p:
            if r < tree[2 * i]:
                i = 2 * i
            else:
                r -= tree[2 * i]
                i = 2 * i + 1
        v = min(i - p, nv - 1)
        kk = -1
        for k in range(nbr.shape[1]):
            if rates[v, k] > 0.0:
                kk = k
                if r < rates[v, k]:
                    break
                r -= rates[v, k]
        u = vac_site[v]
        j = nbr[u, kk]
        ion = occ[j]
        if seg_on:  # before the occupancy changes
            _light_move(u, j, ion_species[ion], pb_of_x, n_br_pb, n_occ_pb, eg_table, zs, beta)
        # execute: ion j -> u, vacancy u -> j
        occ[u] = ion
        occ[j] = -1
        site_vac[u] = -1
        site_vac[j] = v
        vac_site[v] = j
        track_hop(ion, j, u, btype[u, kk], t, positions, site_domain,
                  ion_species, ion_site, ion_hops, ion_disp, ion_t_last, ion_wait, ion_t_enter,
                  residence, flux, msd_sum, domain_br, domain_ions, crossings)
        wait = t - vac_t_last[v]
        vac_wait[v] += wait
        vac_wait2[v] += wait * wait
        vac_t_last[v] = t
        vac_hops[v] += 1
        c = ev_count[0]
        if c < cap:
            ev_time[c] = t
            ev_vac[c] = v
            ev_from[c] = u
            ev_to[c] = j
            ev_ion[c] = ion
        ev_count[0] = c + 1
        hops += 1
        # rate updates: all vacancies with the light term, else the mover, vacancies next to
        # its old and new site, and (with a local-environment landscape) every vacancy whose
        # hop environment reads an octahedron of either site
        if seg_on:
            _update_all_rates(vac_site, nbr, env, occ, species, w, rates, tree, p, seg_on,
                              pb_of_x, n_br_pb, n_occ_pb, eg_table, zs, beta, ncar,
                              x_of_pb, ion_energy, local_on, energy_on)
            continue
        _tree_set(tree, p, v, _vacancy_rates(v, vac_site, nbr, env, occ, species, w, rates,
                                             seg_on, pb_of_x, n_br_pb, n_occ_pb, eg_table, zs, beta, ncar,
                                             x_of_pb, ion_energy, local_on, energy_on))
        for x in (u, j):
            for k in range(nbr.shape[1]):
                ov = site_vac[nbr[x, k]] if nbr[x, k] >= 0 else -1
                if ov >= 0 and ov != v:
                    _tree_set(tree, p, ov, _vacancy_rates(ov, vac_site, nbr, env, occ, species, w, rates,
                                                          seg_on, pb_of_x, n_br_pb, n_occ_pb, eg_table,
                                                          zs, beta, ncar, x_of_pb, ion_energy, local_on,
                                                          energy_on))
            if local_on:
                for q in range(2):
                    pq = pb_of_x[x, q]
                    if pq < 0:
                        continue
                    for m in range(dependents.shape[1]):
                        y = dependents[pq, m]
                        if y < 0:
                            break
                        ov = site_vac[y]
                        if ov >= 0 and ov != v:
                            _tree_set(tree, p, ov, _vacancy_rates(ov, vac_site, nbr, env, occ, species, w,
                                                                  rates, seg_on, pb_of_x, n_br_pb, n_occ_pb,
                                                                  eg_table, zs, beta, ncar, x_of_pb,
                                                                  ion_energy, local_on, energy_on))
    clock[0] = t
    clock[1] += hops
    return status


# ---- Python API -------------------------------------------------------------------

#: Named random streams of a run, spawned from its seed (the Br/I occupancy of an NC
#: model uses the seed itself, as ``nc.to_atoms(seed)`` and ``build_x_lattice`` do).
KMC_STREAMS = ("vacancies", "kmc")


@dataclass
class KMCResult:
    """Outcome of :func:`run_kmc` (times in ps, distances in nm).

    Frames are snapshots at ``frame_time_ps``; events are every hop (up to
    ``max_events``; ``events_truncated`` says whether some were not stored).
    """

    lattice: XLattice
    params: KMCParameters
    seed: int
    time_ps: float
    hops: int
    status: str
    vacancy_initial_site: np.ndarray
    vacancy_site: np.ndarray
    vacancy_hops: np.ndarray
    vacancy_wait_ps: np.ndarray
    vacancy_wait2_ps2: np.ndarray
    trackers: Trackers
    residence_ps: np.ndarray
    occupancy: np.ndarray
    frame_time_ps: np.ndarray
    frame_msd_nm2: np.ndarray
    frame_domain_br_fraction: np.ndarray
    frame_vacancy_site: np.ndarray
    frame_hops: np.ndarray
    frame_crossings: np.ndarray
    event_time_ps: np.ndarray
    event_vacancy: np.ndarray
    event_from_site: np.ndarray
    event_to_site: np.ndarray
    event_ion: np.ndarray
    events_truncated: bool
    landscape_info: dict = field(default_factory=dict)
    landscape_warnings: tuple = ()

    @property
    def n_vacancies(self) -> int:
        return int(len(self.vacancy_site))

    @property
    def initial_occupancy(self) -> np.ndarray:
        occ = np.full(self.lattice.n_sites, -1, dtype=np.int32)
        occ[self.trackers.ion_initial_site] = np.arange(len(self.trackers.ion_initial_site))
        return occ

    def mean_hop_time_ps(self) -> tuple[float, float]:
        """Mean waiting time of a vacancy between hops and its standard error."""
        m = mean_waiting_time(self.vacancy_hops, self.vacancy_wait_ps, self.vacancy_wait2_ps2)
        return (float("inf"), float("nan")) if m.value is None else (m.value, m.stderr)

    def boundary_crossings(self) -> dict:
        c = self.trackers.crossings
        return {"total": int(c.sum()), "coherent": int(c[0]), "rp": int(c[1]), "unresolved": int(c[2])}

    def net_flux(self) -> dict:
        """Net ions moved between each pair of domains, per species: {"Br 0->1": n, ...}."""
        out = {}
        nd = self.lattice.n_domains
        for s, name in enumerate(SPECIES_NAMES):
            f = self.trackers.flux[s]
            for i in range(nd):
                for j in range(i + 1, nd):
                    if f[i, j] or f[j, i]:
                        out[f"{name} {i}->{j}"] = int(f[i, j] - f[j, i])
        return out

    def settings(self) -> dict:
        """How the run was made: seed and its streams, parameters, rates, stop reason."""
        return {"seed": self.seed, "seeds": seed_record(self.seed, KMC_STREAMS),
                "lattice_seed": self.lattice.seed, "status": self.status,
                "events_stored": int(len(self.event_time_ps)), "events_truncated": self.events_truncated,
                "params": self.params.to_dict(), "landscape": self.landscape_info}

    def summary(self) -> MigrationSummary:
        """The run's truth as a :class:`~nanodomains.records.MigrationSummary`.

        From the inline trackers: hops, mean vacancy hop time (with its standard
        error), crossings in total and per boundary, residence times, MSD, domain
        compositions; parameters and seed in ``settings``. The analysis of the written
        trajectory (:func:`nanodomains.migration.analysis.summarize_trajectory`)
        returns the same record type.
        """
        return summarize_trackers(
            self.lattice, self.trackers, self.time_ps, n_vacancies=self.n_vacancies, vacancy_hops=self.vacancy_hops,
            mean_hop_time_ps=mean_waiting_time(self.vacancy_hops, self.vacancy_wait_ps, self.vacancy_wait2_ps2),
            origin="truth", settings=self.settings(), warnings=self.landscape_warnings,
            **self.params.record_fields())

    def to_dataset(self):
        """xarray Dataset: sites, frames and hop events (the trajectory)."""
        import xarray as xr

        lat = self.lattice
        ds = xr.Dataset(
            {
                "site_position_nm": (("site", "xyz"), lat.positions_nm),
                "site_domain": (("site",), lat.domain),
                "site_surface": (("site",), lat.surface.astype(np.int8)),
                "site_initial_species": (("site",), _site_species(self.initial_occupancy, self.trackers.ion_species)),
                "site_final_species": (("site",), _site_species(self.occupancy, self.trackers.ion_species)),
                "frame_msd_nm2": (("frame", "species"), self.frame_msd_nm2),
                "frame_domain_br_fraction": (("frame", "domain"), self.frame_domain_br_fraction),
                "frame_vacancy_site": (("frame", "vacancy"), self.frame_vacancy_site),
                "frame_hops": (("frame",), self.frame_hops),
                "frame_crossings": (("frame", "crossing_type"), self.frame_crossings),
                "hop_time_ps": (("hop",), self.event_time_ps),
                "hop_vacancy": (("hop",), self.event_vacancy.astype(np.int32)),
                "hop_from_site": (("hop",), self.event_from_site.astype(np.int32)),
                "hop_to_site": (("hop",), self.event_to_site.astype(np.int32)),
                "hop_ion": (("hop",), self.event_ion.astype(np.int32)),
                "ion_hops": (("ion",), self.trackers.ion_hops),
                "ion_residence_ps": (("ion", "domain"), self.residence_ps),
            },
            coords={"frame_time_ps": (("frame",), self.frame_time_ps), "species": list(SPECIES_NAMES),
                    "crossing_type": ["coherent", "RP", "unresolved"], "xyz": ["x", "y", "z"]},
            attrs={"title": "nanodomains halide-vacancy kMC trajectory",
                   "note": "hop_*: vacancy moves from_site -> to_site, ion moves to_site -> from_site; "
                           "site_*_species: 0 Br, 1 I, -1 vacancy",
                   "seed": self.seed, "lattice_seed": -1 if lat.seed is None else int(lat.seed),
                   "time_ps": self.time_ps, "hops": self.hops, "n_vacancies": self.n_vacancies,
                   "events_truncated": int(self.events_truncated),
                   "nc_json": lat.nc.to_json() if lat.nc is not None else "",
                   "params_json": json.dumps(self.params.to_dict()),
                   "record_fields_json": json.dumps(self.params.record_fields()),
                   "settings_json": dumps(self.settings(), indent=None)})
        return ds

    def to_netcdf(self, path: str | Path) -> Path:
        """Write :meth:`to_dataset` to netCDF (h5netcdf engine), atomically."""
        with atomic_path(path) as tmp:
            self.to_dataset().to_netcdf(tmp, engine="h5netcdf")
        return Path(path)


def _site_species(occ, ion_species):
    out = np.full(len(occ), -1, dtype=np.int8)
    m = occ >= 0
    out[m] = ion_species[occ[m]]
    return out


def _eg_table(params: KMCParameters) -> np.ndarray:
    """Band gap (eV) of an octahedron with n_br Br among n_occ occupied X (7 x 7)."""
    table = np.full((7, 7), float(materials.bandgap_ev(1.0, params.bandgap_temperature)))
    for no in range(1, 7):
        for nb in range(0, no + 1):
            table[nb, no] = materials.bandgap_ev(nb / no, params.bandgap_temperature)
    return table


def place_vacancies(lattice: XLattice, n_vacancies: int | None = None, vacancy_fraction: float | None = None,
                    seed: SeedLike = 0) -> np.ndarray:
    """Random distinct X sites for the vacancies (by number or by site fraction).

    ``seed`` is an int, SeedSequence or Generator (:func:`nanodomains.seeds.rng`).
    """
    if (n_vacancies is None) == (vacancy_fraction is None):
        raise InputError("give exactly one of n_vacancies or vacancy_fraction")
    if vacancy_fraction is not None:
        if not (math.isfinite(vacancy_fraction) and 0 < vacancy_fraction < 1):
            raise InputError(f"vacancy_fraction must lie in (0, 1), got {vacancy_fraction!r}")
        n_vacancies = max(1, int(round(vacancy_fraction * lattice.n_sites)))
    if int(n_vacancies) != n_vacancies or n_vacancies < 1:
        raise InputError(f"the number of vacancies must be an integer >= 1, got {n_vacancies!r}")
    if n_vacancies >= lattice.n_sites:
        raise InputError(f"{n_vacancies} vacancies do not fit on {lattice.n_sites} X sites "
                         "(at least one ion must remain)")
    return np.sort(make_rng(seed).choice(lattice.n_sites, int(n_vacancies), replace=False)).astype(np.int32)


# ---- run_kmc, step by step -----------------------------------------------------------

def _check_limits(time_ns, max_hops, n_frames) -> tuple[float, int]:
    """End time (ps, inf without ``time_ns``) and hop limit, checked."""
    if time_ns is None and max_hops is None:
        raise InputError("give time_ns or max_hops (or both)")
    t_end = np.inf if time_ns is None else require_positive("time_ns", time_ns) * 1e3
    if max_hops is not None and (int(max_hops) != max_hops or max_hops < 1):
        raise InputError(f"max_hops must be an integer >= 1, got {max_hops!r}")
    if int(n_frames) != n_frames or n_frames < 0:
        raise InputError(f"n_frames must be an integer >= 0, got {n_frames!r}")
    return t_end, (int(max_hops) if max_hops is not None else int(np.iinfo(np.int64).max))


def _initial_vacancies(lattice: XLattice, vacancies, vacancy_fraction, vacancy_sites,
                       rng: np.random.Generator) -> np.ndarray:
    """Vacancy sites: explicit, by fraction, or by number (random, from ``rng``)."""
    if vacancy_sites is None:
        if vacancy_fraction is not None:
            return place_vacancies(lattice, vacancy_fraction=vacancy_fraction, seed=rng)
        if vacancies is None:
            raise InputError("give vacancies, vacancy_fraction or vacancy_sites")
        return place_vacancies(lattice, n_vacancies=vacancies, seed=rng)
    vac = np.unique(np.asarray(vacancy_sites, dtype=np.int64))
    if len(vac) != len(np.asarray(vacancy_sites)) or len(vac) == 0:
        raise InputError("vacancy_sites must be distinct site indices (at least one)")
    if vac.min() < 0 or vac.max() >= lattice.n_sites:
        raise InputError(f"vacancy_sites must lie in [0, {lattice.n_sites - 1}]")
    if len(vac) >= lattice.n_sites:
        raise InputError(f"{len(vac)} vacancies do not fit on {lattice.n_sites} X sites")
    return vac.astype(np.int32)


@dataclass
class _Light:
    """State of the photocarrier (light) term: octahedron counts and Boltzmann sums."""

    on: bool
    beta: float
    ncar: float
    eg: np.ndarray
    eg0: float
    n_br_pb: np.ndarray
    n_occ_pb: np.ndarray
    zs: np.ndarray  # sum of weights, sum of Eg x weight, reference gap eg0

    @classmethod
    def start(cls, lattice: XLattice, occ: np.ndarray, params: KMCParameters) -> "_Light":
        eg = _eg_table(params)
        x_occ = occ[lattice.x_of_pb] >= 0
        x_br = x_occ & (lattice.species[lattice.x_of_pb] == 0)
        light = cls(on=params.photocarriers > 0 and len(lattice.x_of_pb) > 0,
                    beta=1.0 / (KB_EV * params.temperature_k), ncar=float(params.photocarriers), eg=eg,
                    eg0=float(eg.min()), n_br_pb=x_br.sum(axis=1).astype(np.int64),
                    n_occ_pb=x_occ.sum(axis=1).astype(np.int64), zs=np.zeros(3))
        light.zs[2] = light.eg0
        light.refresh()
        return light

    def refresh(self) -> None:
        """Recompute the running sums from the counts (against rounding drift)."""
        eg_p = self.eg[self.n_br_pb, self.n_occ_pb]
        wts = np.exp(-self.beta * (eg_p - self.eg0))
        self.zs[0], self.zs[1] = wts.sum(), (eg_p * wts).sum()


@dataclass
class _Engine:
    """Occupancy, vacancies, rates and sum tree of a running kMC."""

    lattice: XLattice
    occ: np.ndarray  # site -> ion or -1
    site_vac: np.ndarray  # site -> vacancy or -1
    vac_site: np.ndarray  # vacancy -> site
    ion_species: np.ndarray
    trackers: Trackers
    light: _Light
    land: RateArrays  # rates by species, environment, local occupancy (1/ps); site energies
    rates: np.ndarray  # (vacancies, D)
    tree: np.ndarray
    p: int

    @classmethod
    def start(cls, lattice: XLattice, vac: np.ndarray, params: KMCParameters) -> "_Engine":
        """Ions on every non-vacant site (numbered in site order), trackers, rates."""
        s, nv = lattice.n_sites, len(vac)
        occupied = np.ones(s, bool)
        occupied[vac] = False
        occ = np.full(s, -1, dtype=np.int32)
        occ[occupied] = np.arange(int(occupied.sum()), dtype=np.int32)
        ion_species = lattice.species[occupied].astype(np.int8)
        site_vac = np.full(s, -1, dtype=np.int32)
        site_vac[vac] = np.arange(nv, dtype=np.int32)
        p = 1
        while p < nv:
            p *= 2
        eng = cls(lattice=lattice, occ=occ, site_vac=site_vac, vac_site=vac.copy(), ion_species=ion_species,
                  trackers=Trackers.start(lattice, occ, ion_species), light=_Light.start(lattice, occ, params),
                  land=params.rate_arrays(lattice), rates=np.zeros((nv, lattice.neighbors.shape[1])),
                  tree=np.zeros(2 * p), p=p)
        _init_rates(eng.vac_site, lattice.neighbors, eng.land.env, occ, ion_species, eng.land.w, eng.rates,
                    eng.tree, p, *eng.light_args(), *eng.land_args())
        return eng

    def light_args(self) -> tuple:
        lt = self.light
        return (lt.on, self.lattice.pb_of_x, lt.n_br_pb, lt.n_occ_pb, lt.eg, lt.zs, lt.beta, lt.ncar)

    def land_args(self) -> tuple:
        """Landscape arrays of the engine after the bond environments: octahedra, site
        energies, switches, octahedron dependents."""
        w = self.land.w
        local_on = bool(np.any(w != w[:, :, :1, :1]))  # rates depend on the occupancy around a path
        energy_on = bool(np.any(self.land.ion_energy_ev != 0.0))
        return (self.lattice.x_of_pb, self.land.ion_energy_ev, local_on, energy_on, self.lattice.dependents)


@dataclass
class _Recorder:
    """Frames (snapshots at fixed times), stored hop events and vacancy waiting times."""

    frame_times: np.ndarray
    frame_idx: np.ndarray
    frames: tuple  # msd (F, 2), domain Br (F, nd), domain ions (F, nd), vacancy sites, hops, crossings
    events: tuple  # time, vacancy, from site, to site, ion; then the stored count
    waits: tuple  # vacancy hops, time of last hop, summed wait, summed squared wait

    @classmethod
    def allocate(cls, t_end: float, n_frames: int, n_domains: int, nv: int, max_events: int) -> "_Recorder":
        if np.isfinite(t_end) and n_frames > 0:
            times = np.linspace(0.0, t_end, int(n_frames))
        else:
            times = np.zeros(1) if n_frames > 0 else np.zeros(0)
        nf, cap = len(times), int(max(0, max_events))
        frames = (np.zeros((nf, 2)), np.zeros((nf, n_domains), np.int64), np.zeros((nf, n_domains), np.int64),
                  np.zeros((nf, nv), np.int32), np.zeros(nf, np.int64), np.zeros((nf, 3), np.int64))
        events = (np.zeros(cap), np.zeros(cap, np.int32), np.zeros(cap, np.int32), np.zeros(cap, np.int32),
                  np.zeros(cap, np.int32), np.zeros(1, np.int64))
        waits = (np.zeros(nv, np.int64), np.zeros(nv), np.zeros(nv), np.zeros(nv))
        return cls(frame_times=times, frame_idx=np.zeros(1, np.int64), frames=frames, events=events, waits=waits)

    def hold_to_end(self, tr: Trackers, vac_site: np.ndarray, hops: int) -> None:
        """A stuck run keeps its state to the end: fill the remaining frames with it."""
        msd, dom_br, dom_ions, vac, fr_hops, cross = self.frames
        while self.frame_idx[0] < len(self.frame_times):
            f = int(self.frame_idx[0])
            msd[f], dom_br[f], dom_ions[f], vac[f], fr_hops[f], cross[f] = (
                tr.msd_sum_nm2, tr.domain_br, tr.domain_ions, vac_site, hops, tr.crossings)
            self.frame_idx[0] = f + 1


def _advance(eng: _Engine, rec: _Recorder, rng: np.random.Generator, t_end: float, max_hops: int,
             chunk_hops: int, progress) -> tuple[int, np.ndarray]:
    """Run the compiled engine in chunks of ``chunk_hops``; returns (status, clock)."""
    lat = eng.lattice
    clock = np.zeros(2)  # time (ps), hops so far
    status, done = 1, 0
    while done < max_hops:
        chunk = int(min(chunk_hops, max_hops - done))
        status = _run(rng, clock, t_end, chunk, lat.neighbors, lat.bond_type, eng.occ, eng.site_vac, eng.vac_site,
                      eng.ion_species, eng.land.w, eng.rates, eng.tree, eng.p, *eng.light_args(), eng.land.env,
                      *eng.land_args(),
                      lat.positions_nm, lat.domain, *eng.trackers.arrays(), *rec.waits, *rec.events,
                      rec.frame_times, rec.frame_idx, *rec.frames)
        done = int(clock[1])
        if progress is not None:
            progress(float(clock[0]), done)
        if status != 1:
            break
        if eng.light.on:
            eng.light.refresh()
    return status, clock


def _result(eng: _Engine, rec: _Recorder, params: KMCParameters, seed: int, vac: np.ndarray, status: int,
            clock: np.ndarray, t_end: float) -> KMCResult:
    """Trim the frame and event buffers and package the run."""
    t_final, done = float(clock[0]), int(clock[1])
    if status == 2:  # stuck (no possible hop): the state persists to the end time
        t_final = float(t_end) if np.isfinite(t_end) else t_final
        rec.hold_to_end(eng.trackers, eng.vac_site, done)
    nf = int(rec.frame_idx[0])
    msd, dom_br, dom_ions, fr_vac, fr_hops, fr_cross = (a[:nf] for a in rec.frames)
    ev_time, ev_vac, ev_from, ev_to, ev_ion, ev_count = rec.events
    n_ev = int(min(ev_count[0], len(ev_time)))
    counts = np.bincount(eng.ion_species, minlength=2)
    vac_hops, _, vac_wait, vac_wait2 = rec.waits
    return KMCResult(
        lattice=eng.lattice, params=params, seed=int(seed), time_ps=t_final, hops=done,
        status={0: "time", 1: "max_hops", 2: "stuck"}[int(status)],
        vacancy_initial_site=vac, vacancy_site=eng.vac_site.copy(), vacancy_hops=vac_hops,
        vacancy_wait_ps=vac_wait, vacancy_wait2_ps2=vac_wait2, trackers=eng.trackers,
        residence_ps=eng.trackers.finish(eng.lattice, t_final), occupancy=eng.occ,
        frame_time_ps=rec.frame_times[:nf], frame_msd_nm2=msd / np.maximum(counts, 1),
        frame_domain_br_fraction=dom_br / np.maximum(dom_ions, 1), frame_vacancy_site=fr_vac, frame_hops=fr_hops,
        frame_crossings=fr_cross, event_time_ps=ev_time[:n_ev], event_vacancy=ev_vac[:n_ev],
        event_from_site=ev_from[:n_ev], event_to_site=ev_to[:n_ev], event_ion=ev_ion[:n_ev],
        events_truncated=bool(ev_count[0] > len(ev_time)), landscape_info=eng.land.info,
        landscape_warnings=tuple(eng.land.warnings))


def run_kmc(system, params=KMCParameters(), *, time_ns: float | None = 10.0,
            max_hops: int | None = None, vacancies: int | None = 2, vacancy_fraction: float | None = None,
            vacancy_sites=None, seed: int = 1, n_frames: int = 201, max_events: int = 2_000_000,
            chunk_hops: int = 2_000_000, progress: Callable[[float, int], None] | None = None) -> KMCResult:
    """Run the vacancy kMC on an NC model or a prepared :class:`XLattice`.

    Parameters
    ----------
    system : NanoCrystal or XLattice
        An NC model (its X sublattice is built with occupancy seed ``seed``, the
        occupancy of ``nc.to_atoms(seed)``) or a lattice (used as is; its ``species`` is
        the initial occupancy).
    params : TabulatedLandscape or KMCParameters
        The computed landscape (see :mod:`nanodomains.migration.landscape`) or the
        literature model.
    time_ns : float, optional
        Simulated time; None runs until ``max_hops``.
    max_hops : int, optional
        Stop after this many hops (whichever of time and hops comes first).
    vacancies : int, optional
        Number of vacancies placed at random sites (ignored if ``vacancy_fraction``
        or ``vacancy_sites`` is given).
    vacancy_fraction : float, optional
        Vacancy concentration as a fraction of X sites.
    vacancy_sites : array of int, optional
        Explicit vacancy sites.
    seed : int
        The run's seed (recorded): the Br/I occupancy of an NC model, and the
        independent streams :data:`KMC_STREAMS` (vacancy placement, kMC) spawned from it
        by :func:`nanodomains.seeds.spawn`.
    n_frames : int
        Snapshots (MSD, domain compositions, vacancy sites) evenly spaced in time
        (needs ``time_ns``).
    max_events : int
        Hop events stored for trajectories and figures (all hops are tracked).
    chunk_hops : int
        Hops per compiled call; ``progress(time_ps, hops)`` is called between chunks.

    Returns
    -------
    KMCResult
        Its :meth:`~KMCResult.summary` is the run's truth record.

    Examples
    --------
    >>> from nanodomains.structure import homogeneous
    >>> res = run_kmc(homogeneous(2.4, seed=1), time_ns=0.05, vacancies=1, seed=3, n_frames=0)
    >>> res.status, res.hops > 0, res.summary().SCHEMA
    ('time', True, 'nanodomains.migration.summary/1')
    """
    params.validate()
    seed = check_seed(seed)
    if vacancy_sites is None and vacancy_fraction is None and vacancies is not None and (
            int(vacancies) != vacancies or vacancies < 1):
        raise InputError(f"the number of vacancies must be an integer >= 1, got {vacancies!r}")
    lattice = system if isinstance(system, XLattice) else build_x_lattice(system, seed=seed)
    t_end, max_hops = _check_limits(time_ns, max_hops, n_frames)
    streams = spawn(seed, KMC_STREAMS)
    vac = _initial_vacancies(lattice, vacancies, vacancy_fraction, vacancy_sites, streams["vacancies"])
    eng = _Engine.start(lattice, vac, params)
    rec = _Recorder.allocate(t_end, n_frames, lattice.n_domains, len(vac), max_events)
    status, clock = _advance(eng, rec, streams["kmc"], t_end, max_hops, chunk_hops, progress)
    return _result(eng, rec, params, seed, vac, status, clock, t_end)


@njit(cache=True)
def _single_vacancy_rates(nbr, env, occ, species, w, pb_of_x, x_of_pb, ion_energy, beta, local_on, energy_on):
    n, d = nbr.shape
    out = np.zeros((n, d))
    rates = np.zeros((1, d))
    vac = np.zeros(1, np.int32)
    dummy_i = np.zeros(1, np.int64)
    dummy_e = np.zeros((1, 1))
    zs = np.zeros(3)
    for u in range(n):
        ion = occ[u]
        occ[u] = -1
        vac[0] = u
        _vacancy_rates(0, vac, nbr, env, occ, species, w, rates, False, pb_of_x, dummy_i, dummy_i, dummy_e, zs,
                       beta, 0.0, x_of_pb, ion_energy, local_on, energy_on)
        out[u] = rates[0]
        occ[u] = ion
    return out


def single_vacancy_rates(lattice: XLattice, params) -> tuple[np.ndarray, "RateArrays"]:
    """Hop rates (1/ps) of one vacancy at every site, all other sites occupied as in
    ``lattice.species``: ``rates[u, k]`` exchanges it with the ion at ``neighbors[u, k]``.

    The same rate expression as the kMC engine (light term off); used by the analytic
    rate models of :mod:`nanodomains.migration.fault`.

    Returns
    -------
    rates : (S, D) float
    arrays : RateArrays (environments, site energies, info)
    """
    params.validate()
    if getattr(params, "photocarriers", 0.0):
        raise InputError("single_vacancy_rates: the analytic rate model has no light term (photocarriers = 0)")
    land = params.rate_arrays(lattice)
    occ = np.arange(lattice.n_sites, dtype=np.int32)
    w = land.w
    local_on = bool(np.any(w != w[:, :, :1, :1]))
    energy_on = bool(np.any(land.ion_energy_ev != 0.0))
    beta = 1.0 / (KB_EV * params.temperature_k)
    rates = _single_vacancy_rates(lattice.neighbors, land.env, occ, lattice.species.astype(np.int8), w,
                                  lattice.pb_of_x, lattice.x_of_pb, land.ion_energy_ev, beta, local_on, energy_on)
    return rates, land

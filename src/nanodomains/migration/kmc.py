r"""Rejection-free kinetic Monte Carlo of halide vacancies on the X sublattice.

Model
-----
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
  bulk barrier); bonds across an RP fault are closed (``rp_barrier_ev=None``: the
  rock-salt CsX layer breaks the corner-sharing X-X path) or use a crossing barrier
  (a number in eV, or ``"bulk"`` for each species' bulk barrier).
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
from scipy import constants

from nanodomains import materials
from nanodomains.errors import InputError, require_positive
from nanodomains.migration.lattice import SPECIES_NAMES, XLattice, build_x_lattice
from nanodomains.migration.tracking import Trackers, track_hop

KB_EV: float = constants.k / constants.e

#: Bulk vacancy-hop barriers (eV): :data:`nanodomains.materials.VACANCY_BARRIERS_EV`.
BARRIERS_EV = materials.VACANCY_BARRIERS_EV


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
    rp_barrier_ev : None, float or "bulk"
        None closes RP bonds; a number opens them with that barrier (both species);
        "bulk" opens them with each species' bulk barrier.
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
        if self.barrier_set not in BARRIERS_EV:
            raise InputError(f"barrier_set must be one of {sorted(BARRIERS_EV)}, got {self.barrier_set!r}")
        for name in ("barrier_br_ev", "barrier_i_ev", "surface_barrier_ev"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and 0 <= v < 5):
                raise InputError(f"{name} must lie in [0, 5) eV, got {v!r}")
        rp = self.rp_barrier_ev
        if rp is not None and rp != "bulk" and not (isinstance(rp, (int, float)) and math.isfinite(rp) and 0 <= rp < 5):
            raise InputError(f"rp_barrier_ev must be None (blocked), 'bulk' or a barrier in [0, 5) eV, got {rp!r}")
        if not (math.isfinite(self.photocarriers) and self.photocarriers >= 0):
            raise InputError(f"photocarriers must be >= 0, got {self.photocarriers!r}")
        if self.bandgap_temperature not in ("RT", "4K"):
            raise InputError(f"bandgap_temperature must be 'RT' or '4K', got {self.bandgap_temperature!r}")
        return self

    def bulk_barriers_ev(self) -> tuple[float, float]:
        """(Br, I) bulk barriers in eV."""
        s = BARRIERS_EV[self.barrier_set]
        br = s["Br"] if self.barrier_br_ev is None else float(self.barrier_br_ev)
        i = s["I"] if self.barrier_i_ev is None else float(self.barrier_i_ev)
        return br, i

    def barrier_table_ev(self) -> np.ndarray:
        """Barriers (2 species x 3 bond types), inf for closed bonds."""
        br, i = self.bulk_barriers_ev()
        table = np.empty((2, 3))
        table[:, 0] = (br, i)
        table[:, 1] = (br, i) if self.surface_barrier_ev is None else self.surface_barrier_ev
        if self.rp_barrier_ev is None:
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

    def to_dict(self) -> dict:
        return asdict(self)


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
def _vacancy_rates(v, vac_site, nbr, btype, occ, species, w, rates, seg_on,
                   pb_of_x, n_br_pb, n_occ_pb, eg_table, zs, beta, ncar):
    u = vac_site[v]
    tot = 0.0
    for k in range(nbr.shape[1]):
        j = nbr[u, k]
        r = 0.0
        if j >= 0:
            ion = occ[j]
            if ion >= 0:
                s = species[ion]
                r = w[s, btype[u, k]]
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
def _init_rates(vac_site, nbr, btype, occ, species, w, rates, tree, p, seg_on,
                pb_of_x, n_br_pb, n_occ_pb, eg_table, zs, beta, ncar):
    tree[:] = 0.0
    for v in range(len(vac_site)):
        tree[p + v] = _vacancy_rates(v, vac_site, nbr, btype, occ, species, w, rates, seg_on,
                                     pb_of_x, n_br_pb, n_occ_pb, eg_table, zs, beta, ncar)
    for i in range(p - 1, 0, -1):
        tree[i] = tree[2 * i] + tree[2 * i + 1]


@njit(cache=True)
def _run(rng, clock, t_end, max_hops, nbr, btype, occ, site_vac, vac_site, species, w,
         rates, tree, p, seg_on, pb_of_x, n_br_pb, n_occ_pb, eg_table, zs, beta, ncar,
         positions, site_domain,
         ion_species, ion_site, ion_hops, ion_disp, ion_t_last, ion_wait, ion_t_enter,
         residence, flux, msd_sum, domain_br, domain_ions, crossings,
         vac_hops, vac_t_last, vac_wait, vac_wait2,
         ev_time, ev_vac, ev_from, ev_to, ev_ion, ev_count,
         frame_times, frame_idx, fr_msd, fr_dom_br, fr_dom_ions, fr_vac, fr_hops, fr_cross):
    """Advance until ``t_end`` (ps) or ``max_hops`` hops; returns 0 time, 1 hops, 2 stuck."""
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
        dt = -math.log(1.0 - rng.random()) / total
        t_next = t + dt
        # frames falling before the next hop see the current state
        while frame_idx[0] < n_frames and frame_times[frame_idx[0]] <= min(t_next, t_end):
            f = frame_idx[0]
            for s in range(2):
                fr_msd[f, s] = msd_sum[s]
            for d in range(len(domain_br)):
                fr_dom_br[f, d] = domain_br[d]
                fr_dom_ions[f, d] = domain_ions[d]
            for v in range(nv):
                fr_vac[f, v] = vac_site[v]
            fr_hops[f] = clock[1] + hops
            for c in range(3):
                fr_cross[f, c] = crossings[c]
            frame_idx[0] = f + 1
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
        v = i - p
        if v >= nv:
            v = nv - 1
        kk = -1
        last = -1
        for k in range(nbr.shape[1]):
            rk = rates[v, k]
            if rk > 0.0:
                last = k
                if r < rk:
                    kk = k
                    break
                r -= rk
        if kk < 0:
            kk = last
        u = vac_site[v]
        j = nbr[u, kk]
        ion = occ[j]
        s = ion_species[ion]
        # light term bookkeeping before the occupancy changes
        if seg_on:
            isbr = 1 if s == 0 else 0
            for q in range(2):
                pj = pb_of_x[j, q]
                if pj >= 0 and pj != pb_of_x[u, 0] and pj != pb_of_x[u, 1]:
                    e_old = eg_table[n_br_pb[pj], n_occ_pb[pj]]
                    n_br_pb[pj] -= isbr
                    n_occ_pb[pj] -= 1
                    e_new = eg_table[n_br_pb[pj], n_occ_pb[pj]]
                    w_old = math.exp(-beta * (e_old - zs[2]))
                    w_new = math.exp(-beta * (e_new - zs[2]))
                    zs[0] += w_new - w_old
                    zs[1] += e_new * w_new - e_old * w_old
                pu = pb_of_x[u, q]
                if pu >= 0 and pu != pb_of_x[j, 0] and pu != pb_of_x[j, 1]:
                    e_old = eg_table[n_br_pb[pu], n_occ_pb[pu]]
                    n_br_pb[pu] += isbr
                    n_occ_pb[pu] += 1
                    e_new = eg_table[n_br_pb[pu], n_occ_pb[pu]]
                    w_old = math.exp(-beta * (e_old - zs[2]))
                    w_new = math.exp(-beta * (e_new - zs[2]))
                    zs[0] += w_new - w_old
                    zs[1] += e_new * w_new - e_old * w_old
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
        # rate updates
        if seg_on:
            for x in range(nv):
                _tree_set(tree, p, x, _vacancy_rates(x, vac_site, nbr, btype, occ, species, w, rates,
                                                     seg_on, pb_of_x, n_br_pb, n_occ_pb, eg_table,
                                                     zs, beta, ncar))
        else:
            _tree_set(tree, p, v, _vacancy_rates(v, vac_site, nbr, btype, occ, species, w, rates,
                                                 seg_on, pb_of_x, n_br_pb, n_occ_pb, eg_table,
                                                 zs, beta, ncar))
            for side in range(2):
                x = u if side == 0 else j
                for k in range(nbr.shape[1]):
                    y = nbr[x, k]
                    if y >= 0:
                        ov = site_vac[y]
                        if ov >= 0 and ov != v:
                            _tree_set(tree, p, ov, _vacancy_rates(ov, vac_site, nbr, btype, occ, species,
                                                                  w, rates, seg_on, pb_of_x, n_br_pb,
                                                                  n_occ_pb, eg_table, zs, beta, ncar))
    clock[0] = t
    clock[1] += hops
    return status


# ---- Python API -------------------------------------------------------------------

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
        n = int(self.vacancy_hops.sum())
        if n == 0:
            return float("inf"), float("nan")
        mean = float(self.vacancy_wait_ps.sum() / n)
        var = max(float(self.vacancy_wait2_ps2.sum() / n) - mean * mean, 0.0)
        return mean, math.sqrt(var / n)

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

    def summary(self) -> dict:
        """JSON-ready summary (hops, mean hop time, crossings, flux, MSD, compositions)."""
        mean, se = self.mean_hop_time_ps()
        rates = self.params.rate_table_per_ps()
        res = self.residence_ps
        moved = self.trackers.ion_hops > 0
        dom_f = self.frame_domain_br_fraction
        return {
            "time_ps": self.time_ps,
            "hops": self.hops,
            "status": self.status,
            "n_vacancies": self.n_vacancies,
            "n_sites": self.lattice.n_sites,
            "mean_hop_time_ps": mean,
            "mean_hop_time_ps_se": se,
            "vacancy_hops": self.vacancy_hops.tolist(),
            "boundary_crossings": self.boundary_crossings(),
            "net_flux": self.net_flux(),
            "ions_moved": int(moved.sum()),
            "ion_hops_max": int(self.trackers.ion_hops.max()) if len(moved) else 0,
            "ion_mean_residence_per_hop_ps": float(self.trackers.ion_wait_ps[moved].sum()
                                                   / max(self.trackers.ion_hops[moved].sum(), 1)),
            "ions_changed_domain": int(np.sum(self.lattice.domain[self.trackers.ion_site]
                                              != self.lattice.domain[self.trackers.ion_initial_site])),
            "msd_nm2": dict(zip(SPECIES_NAMES, self.trackers.msd_nm2().tolist())),
            "domain_br_fraction_initial": dom_f[0].tolist() if len(dom_f) else [],
            "domain_br_fraction_final": dom_f[-1].tolist() if len(dom_f) else [],
            "mean_domain_residence_ps": (res.sum(axis=0) / max(res.shape[0], 1)).tolist(),
            "rates_per_ps": {"bulk": rates[:, 0].tolist(), "surface": rates[:, 1].tolist(),
                             "rp": rates[:, 2].tolist(), "species": list(SPECIES_NAMES)},
            "seed": self.seed,
            "params": self.params.to_dict(),
            "events_stored": int(len(self.event_time_ps)),
            "events_truncated": self.events_truncated,
        }

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
                   "seed": self.seed, "time_ps": self.time_ps, "hops": self.hops,
                   "events_truncated": int(self.events_truncated),
                   "nc_json": lat.nc.to_json() if lat.nc is not None else "",
                   "params_json": json.dumps(self.params.to_dict())})
        return ds

    def to_netcdf(self, path: str | Path) -> Path:
        """Write :meth:`to_dataset` to netCDF (h5netcdf engine), atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        self.to_dataset().to_netcdf(tmp, engine="h5netcdf")
        tmp.replace(path)
        return path


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
                    seed: int = 0) -> np.ndarray:
    """Random distinct X sites for the vacancies (by number or by site fraction)."""
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
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(lattice.n_sites, int(n_vacancies), replace=False)).astype(np.int32)


def run_kmc(system, params: KMCParameters = KMCParameters(), *, time_ns: float | None = 10.0,
            max_hops: int | None = None, vacancies: int | None = 2, vacancy_fraction: float | None = None,
            vacancy_sites=None, seed: int = 1, n_frames: int = 201, max_events: int = 2_000_000,
            chunk_hops: int = 2_000_000, progress: Callable[[float, int], None] | None = None) -> KMCResult:
    """Run the vacancy kMC on an NC model or a prepared :class:`XLattice`.

    Parameters
    ----------
    system : NanoCrystal or XLattice
        An NC model (its X sublattice is built with occupancy seed ``seed``) or a
        lattice (used as is; its ``species`` is the initial occupancy).
    params : KMCParameters
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
        Seeds occupancy, vacancy placement and the kMC random stream.
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
    """
    params.validate()
    if vacancy_sites is None and vacancy_fraction is None and vacancies is not None and (
            int(vacancies) != vacancies or vacancies < 1):
        raise InputError(f"the number of vacancies must be an integer >= 1, got {vacancies!r}")
    if isinstance(system, XLattice):
        lattice = system
    else:
        lattice = build_x_lattice(system, seed=seed)
    if time_ns is None and max_hops is None:
        raise InputError("give time_ns or max_hops (or both)")
    t_end = np.inf
    if time_ns is not None:
        t_end = require_positive("time_ns", time_ns) * 1e3
    if max_hops is not None and (int(max_hops) != max_hops or max_hops < 1):
        raise InputError(f"max_hops must be an integer >= 1, got {max_hops!r}")
    max_hops = int(max_hops) if max_hops is not None else np.iinfo(np.int64).max
    if int(n_frames) != n_frames or n_frames < 0:
        raise InputError(f"n_frames must be an integer >= 0, got {n_frames!r}")
    if vacancy_sites is not None:
        vac = np.unique(np.asarray(vacancy_sites, dtype=np.int64))
        if len(vac) != len(np.asarray(vacancy_sites)) or len(vac) == 0:
            raise InputError("vacancy_sites must be distinct site indices (at least one)")
        if vac.min() < 0 or vac.max() >= lattice.n_sites:
            raise InputError(f"vacancy_sites must lie in [0, {lattice.n_sites - 1}]")
        if len(vac) >= lattice.n_sites:
            raise InputError(f"{len(vac)} vacancies do not fit on {lattice.n_sites} X sites")
        vac = vac.astype(np.int32)
    elif vacancy_fraction is not None:
        vac = place_vacancies(lattice, vacancy_fraction=vacancy_fraction, seed=seed)
    else:
        if vacancies is None:
            raise InputError("give vacancies, vacancy_fraction or vacancy_sites")
        vac = place_vacancies(lattice, n_vacancies=vacancies, seed=seed)
    nv = len(vac)
    s = lattice.n_sites
    # ions: every non-vacant site, numbered in site order
    occupied = np.ones(s, bool)
    occupied[vac] = False
    occ = np.full(s, -1, dtype=np.int32)
    occ[occupied] = np.arange(int(occupied.sum()), dtype=np.int32)
    ion_species = lattice.species[occupied].astype(np.int8)
    site_vac = np.full(s, -1, dtype=np.int32)
    site_vac[vac] = np.arange(nv, dtype=np.int32)
    vac_site = vac.copy()
    tr = Trackers.start(lattice, occ, ion_species)
    # light term
    seg_on = params.photocarriers > 0
    kt = KB_EV * params.temperature_k
    beta = 1.0 / kt
    eg = _eg_table(params)
    x_occ = occ[lattice.x_of_pb] >= 0
    x_br = x_occ & (lattice.species[lattice.x_of_pb] == 0)
    n_occ_pb = x_occ.sum(axis=1).astype(np.int64)
    n_br_pb = x_br.sum(axis=1).astype(np.int64)
    eg_p = eg[n_br_pb, n_occ_pb]
    eg0 = float(eg.min())
    wts = np.exp(-beta * (eg_p - eg0))
    zs = np.array([wts.sum(), (eg_p * wts).sum(), eg0])
    pb_of_x = lattice.pb_of_x
    if len(lattice.x_of_pb) == 0:
        seg_on = False
    # rates
    w = params.rate_table_per_ps()
    p = 1
    while p < nv:
        p *= 2
    tree = np.zeros(2 * p)
    d = lattice.neighbors.shape[1]
    rates = np.zeros((nv, d))
    _init_rates(vac_site, lattice.neighbors, lattice.bond_type, occ, ion_species, w, rates, tree, p,
                seg_on, pb_of_x, n_br_pb, n_occ_pb, eg, zs, beta, float(params.photocarriers))
    # frames and events
    if np.isfinite(t_end) and n_frames > 0:
        frame_times = np.linspace(0.0, t_end, int(n_frames))
    else:
        frame_times = np.zeros(1) if n_frames > 0 else np.zeros(0)
    nf = len(frame_times)
    nd = lattice.n_domains
    fr_msd = np.zeros((nf, 2))
    fr_dom_br = np.zeros((nf, nd), np.int64)
    fr_dom_ions = np.zeros((nf, nd), np.int64)
    fr_vac = np.zeros((nf, nv), np.int32)
    fr_hops = np.zeros(nf, np.int64)
    fr_cross = np.zeros((nf, 3), np.int64)
    frame_idx = np.zeros(1, np.int64)
    cap = int(max(0, max_events))
    ev_time = np.zeros(cap)
    ev_vac = np.zeros(cap, np.int32)
    ev_from = np.zeros(cap, np.int32)
    ev_to = np.zeros(cap, np.int32)
    ev_ion = np.zeros(cap, np.int32)
    ev_count = np.zeros(1, np.int64)
    vac_hops = np.zeros(nv, np.int64)
    vac_t_last = np.zeros(nv)
    vac_wait = np.zeros(nv)
    vac_wait2 = np.zeros(nv)
    clock = np.zeros(2)  # time (ps), hops so far
    rng = np.random.default_rng([seed, 0x6B4D43])
    status = 1
    done = 0
    while done < max_hops:
        chunk = int(min(chunk_hops, max_hops - done))
        status = _run(rng, clock, t_end, chunk, lattice.neighbors, lattice.bond_type, occ, site_vac, vac_site,
                      ion_species, w, rates, tree, p, seg_on, pb_of_x, n_br_pb, n_occ_pb, eg, zs, beta,
                      float(params.photocarriers), lattice.positions_nm, lattice.domain, *tr.arrays(),
                      vac_hops, vac_t_last, vac_wait, vac_wait2,
                      ev_time, ev_vac, ev_from, ev_to, ev_ion, ev_count,
                      frame_times, frame_idx, fr_msd, fr_dom_br, fr_dom_ions, fr_vac, fr_hops, fr_cross)
        done = int(clock[1])
        if progress is not None:
            progress(float(clock[0]), done)
        if status != 1:
            break
        if seg_on:  # refresh the running sums against rounding drift
            eg_p = eg[n_br_pb, n_occ_pb]
            wts = np.exp(-beta * (eg_p - eg0))
            zs[0], zs[1] = wts.sum(), (eg_p * wts).sum()
    t_final = float(clock[0])
    if status == 2:
        # stuck (no possible hop): the state persists to the end time
        t_final = float(t_end) if np.isfinite(t_end) else t_final
        while frame_idx[0] < nf:
            f = int(frame_idx[0])
            fr_msd[f] = tr.msd_sum_nm2
            fr_dom_br[f] = tr.domain_br
            fr_dom_ions[f] = tr.domain_ions
            fr_vac[f] = vac_site
            fr_hops[f] = done
            fr_cross[f] = tr.crossings
            frame_idx[0] = f + 1
    nf_done = int(frame_idx[0])
    counts = np.bincount(ion_species, minlength=2)
    n_ev = int(min(ev_count[0], cap))
    frac = fr_dom_br[:nf_done] / np.maximum(fr_dom_ions[:nf_done], 1)
    return KMCResult(
        lattice=lattice, params=params, seed=int(seed), time_ps=t_final, hops=done,
        status={0: "time", 1: "max_hops", 2: "stuck"}[int(status)],
        vacancy_initial_site=vac, vacancy_site=vac_site.copy(), vacancy_hops=vac_hops,
        vacancy_wait_ps=vac_wait, vacancy_wait2_ps2=vac_wait2, trackers=tr,
        residence_ps=tr.finish(lattice, t_final), occupancy=occ,
        frame_time_ps=frame_times[:nf_done], frame_msd_nm2=fr_msd[:nf_done] / np.maximum(counts, 1),
        frame_domain_br_fraction=frac, frame_vacancy_site=fr_vac[:nf_done], frame_hops=fr_hops[:nf_done],
        frame_crossings=fr_cross[:nf_done],
        event_time_ps=ev_time[:n_ev], event_vacancy=ev_vac[:n_ev], event_from_site=ev_from[:n_ev],
        event_to_site=ev_to[:n_ev], event_ion=ev_ion[:n_ev], events_truncated=bool(ev_count[0] > cap))

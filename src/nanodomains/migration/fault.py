r"""Ion exchange across RP faults: kMC crossings, an analytic rate model, equalisation times.

On a computed landscape (:class:`~nanodomains.migration.landscape.TabulatedLandscape`)
or the literature model, this module answers the seed's Fig. 3 question with numbers:
how often do halides cross an RP fault, and how long do the compositions on the two
sides take to equalise?

Analytic rate model (dilute vacancies, equilibrium)
---------------------------------------------------
With ``n_v`` vacancies among S sites and vacancy site energies ``E_V(u)`` (minus the
site energy of the ion the vacancy replaces, :mod:`.landscape`), a vacancy sits on
site u with probability ``P(u) = n_v exp(-E_V(u)/kT) / sum_s exp(-E_V(s)/kT)``
(Boltzmann; exact for one vacancy at fixed Br/I occupancy). The rate of crossings
(both directions) is::

    C = sum over RP bonds (u <- j) of P(u) k(u <- j)

with k the kMC's own rate of that hop (:func:`~nanodomains.migration.kmc.single_vacancy_rates`).
Reported per interface site (sites with an RP bond). An ion that has just crossed
returns at once with probability ``p_back = k_back / sum_k k(j, k)`` (the vacancy's
next hop from its new site); the *exchange* rate one way is
``G = (1/2) sum P(u) k(u <- j) (1 - p_back)``.

Equalisation
------------
For two domains of N1 and N2 halide sites exchanging through the fault, the Br
fraction difference decays as ``exp(-t/tau)`` with the interface-limited time
``tau_int = 1 / (G (1/N1 + 1/N2))`` (both species given the same exchange rate: the
mean over the actual occupants; the Nernst-Planck coupling of unequal Br/I mobilities
is neglected). Bulk diffusion adds ``tau_diff = L^2 / (pi^2 D)`` (slowest mode of two
slabs in a box of length L along the fault normal, :func:`.analysis.slab_decay_time_ps`)
with the ion tracer diffusion coefficient ``D = (n_v / S) Gamma_v lambda^2 / 6``
(Gamma_v the vacancy's mean total hop rate in the bulk, lambda = a/sqrt(2), correlation
factor taken as 1). ``tau = tau_int + tau_diff`` (series resistances; exact in both
limits). Checked against kMC where both can run (tests, docs).

Arrhenius
---------
kMC runs at temperatures where crossings happen in an affordable number of hops give
crossings per interface site per second; :func:`.analysis.fit_arrhenius` (Poisson
weights) gives the effective barrier with its standard error. Equalisation times at
300 K and 433 K come from the analytic model at those temperatures, with the
uncertainty of the table's across-fault barrier propagated; when the kMC reaches a
temperature the model's ratio to the kMC is reported beside it, and an Arrhenius
extrapolation of the kMC crossing rates (labelled as extrapolation) is given as a
second estimate.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from nanodomains.errors import InputError
from nanodomains.migration.analysis import fit_arrhenius, slab_decay_time_ps
from nanodomains.migration.kmc import KB_EV, run_kmc, single_vacancy_rates
from nanodomains.migration.landscape import ENV_ACROSS, ENV_BULK, TabulatedLandscape
from nanodomains.migration.lattice import XLattice, build_x_lattice
from nanodomains.records.base import measured
from nanodomains.records.populations import CrossingPoint, Equalisation, FaultKinetics, ResidenceTimes

SYNTHESIS_TEMPERATURE_K = 433.0  # hot injection 140-200 C (Protesescu 2015), as in growth.py
ROOM_TEMPERATURE_K = 300.0


def interface_site_count(lattice: XLattice) -> int:
    """Sites with at least one RP bond."""
    from nanodomains.migration.lattice import BOND_RP

    return int(np.any((lattice.bond_type == BOND_RP) & (lattice.neighbors >= 0), axis=1).sum())


def rate_model(lattice: XLattice, params, n_vacancies: int, domains: tuple[int, int] = (0, 1)) -> dict:
    """Analytic crossing and exchange rates and equalisation time (module docstring).

    Returns
    -------
    dict: ``crossing_rate_hz`` (both directions), ``crossing_rate_per_site_hz``,
    ``exchange_rate_hz`` (one way, returns removed), ``tau_interface_s``,
    ``tau_diffusion_s``, ``tau_s``, ``interface_sites``, ``vacancy_hop_rate_hz``.
    """
    rates, land = single_vacancy_rates(lattice, params)
    beta = 1.0 / (KB_EV * params.temperature_k)
    sites = np.arange(lattice.n_sites)
    e_v = -land.ion_energy_ev[lattice.species.astype(int), sites]
    wts = np.exp(-beta * (e_v - e_v.min()))
    p_vac = n_vacancies * wts / wts.sum()
    nbr = lattice.neighbors
    across = (land.env == ENV_ACROSS) & (nbr >= 0)
    u_idx, k_idx = np.nonzero(across)
    j_idx = nbr[u_idx, k_idx]
    k_fwd = rates[u_idx, k_idx] * 1e12  # Hz
    flow = p_vac[u_idx] * k_fwd
    # return probability: the vacancy, now at j, swaps back with the ion at u
    back = np.array([rates[j, np.flatnonzero(nbr[j] == u)[0]] for u, j in zip(u_idx, j_idx)]) if len(u_idx) else \
        np.zeros(0)
    out_j = rates[j_idx].sum(axis=1)
    p_back = np.where(out_j > 0, back / np.maximum(out_j, 1e-300), 0.0)
    crossing = float(flow.sum())
    exchange = 0.5 * float((flow * (1 - p_back)).sum())
    n_iface = interface_site_count(lattice)
    d1, d2 = domains
    n1, n2 = int((lattice.domain == d1).sum()), int((lattice.domain == d2).sum())
    if n1 == 0 or n2 == 0:
        raise InputError(f"domains {domains}: a domain has no X sites")
    tau_int = math.inf if exchange <= 0 else 1.0 / (exchange * (1.0 / n1 + 1.0 / n2))
    # bulk diffusion: vacancy hop rate over bulk sites, weighted by occupancy probability
    bulk_site = np.all((land.env == ENV_BULK) | (nbr < 0), axis=1)
    gamma_v = float((rates[bulk_site].sum(axis=1) * wts[bulk_site]).sum() / wts[bulk_site].sum()) * 1e12
    ok = nbr >= 0
    rows = np.nonzero(ok)[0]
    bond_nm = float(np.median(np.linalg.norm(lattice.positions_nm[rows] - lattice.positions_nm[nbr[ok]], axis=1)))
    d_ion_nm2_s = n_vacancies / lattice.n_sites * gamma_v * bond_nm**2 / 6.0
    members = (lattice.domain == d1) | (lattice.domain == d2)
    axis = _normal_axis(lattice, across, u_idx, j_idx)
    length = float(np.ptp(lattice.positions_nm[members, axis])) + bond_nm
    tau_diff = slab_decay_time_ps(length, d_ion_nm2_s * 1e-12) * 1e-12 if d_ion_nm2_s > 0 else math.inf
    return {"crossing_rate_hz": crossing, "crossing_rate_per_site_hz": crossing / max(n_iface, 1),
            "exchange_rate_hz": exchange, "tau_interface_s": tau_int, "tau_diffusion_s": tau_diff,
            "tau_s": tau_int + tau_diff, "interface_sites": n_iface, "vacancy_hop_rate_hz": gamma_v,
            "ion_diffusion_nm2_s": d_ion_nm2_s}


def _normal_axis(lattice, across, u_idx, j_idx) -> int:
    if len(u_idx) == 0:
        return 0
    mid = 0.5 * (lattice.positions_nm[u_idx] + lattice.positions_nm[j_idx])
    return int(np.argmin(mid.std(axis=0)))


def residence_times(result, n_bins: int = 40) -> ResidenceTimes:
    """Distribution of vacancy waiting times between hops over a kMC run (stored events)."""
    t = np.asarray(result.event_time_ps)
    v = np.asarray(result.event_vacancy)
    waits = []
    for k in range(result.n_vacancies):
        tk = t[v == k]
        if len(tk):
            waits.append(np.diff(np.r_[0.0, tk]))
    w = np.concatenate(waits) if waits else np.zeros(0)
    temp = float(result.params.temperature_k)
    if len(w) == 0:
        return ResidenceTimes(temperature_k=temp, n=0)
    edges = np.logspace(math.log10(max(w.min(), 1e-3)), math.log10(w.max() * 1.0001), n_bins + 1)
    counts, _ = np.histogram(w, bins=edges)
    return ResidenceTimes(temperature_k=temp, n=int(len(w)), mean_ps=float(w.mean()), median_ps=float(np.median(w)),
                          p99_ps=float(np.percentile(w, 99)), max_ps=float(w.max()),
                          over_1ns=int((w > 1000.0).sum()), histogram_edges_ps=edges, histogram_counts=counts)


def across_barriers(params) -> dict:
    """The across-fault KRA barrier (eV) per halide at local Br fraction 0.5, as used."""
    out = {}
    for h in ("Br", "I"):
        if isinstance(params, TabulatedLandscape):
            try:
                out[h] = params.effective_barrier_ev("across_fault", h)
            except InputError:
                out[h] = None
        else:
            rp = params.rp_barrier_ev
            out[h] = (None if rp is None else math.inf if rp == "closed"
                      else params.bulk_barriers_ev()[0 if h == "Br" else 1] if rp == "bulk" else float(rp))
    return {k: (None if v is None or not math.isfinite(v) else v) for k, v in out.items()}


def _kmc_point(lattice, params, temperature_k, vacancy_fraction, max_hops, time_ns, seed, n_iface):
    p = replace(params, temperature_k=float(temperature_k))
    res = run_kmc(lattice, p, time_ns=time_ns, max_hops=max_hops, vacancy_fraction=vacancy_fraction, seed=seed,
                  n_frames=0, max_events=min(int(max_hops or 2_000_000), 2_000_000))
    n = int(res.boundary_crossings()["rp"])
    denom = n_iface * res.time_ps * 1e-12
    model = rate_model(lattice, p, res.n_vacancies)
    return res, CrossingPoint(temperature_k=float(temperature_k), time_ps=float(res.time_ps), hops=int(res.hops),
                              crossings=n, crossing_rate_per_site_hz=measured(n / denom, math.sqrt(max(n, 1)) / denom),
                              model_rate_per_site_hz=model["crossing_rate_per_site_hz"])


def _shifted(params, shift_ev: float):
    """The landscape with every barrier shifted (uncertainty propagation); literature
    parameters have no table uncertainty."""
    if isinstance(params, TabulatedLandscape):
        return replace(params, energy_shift_ev=params.energy_shift_ev + shift_ev)
    return params


def _across_se(params) -> float:
    """Standard error of the across-fault barrier from the table (0 without a table)."""
    if not isinstance(params, TabulatedLandscape):
        return 0.0
    ses = []
    for h in ("Br", "I"):
        try:
            curve = params.barrier_curve("across_fault", h)
        except InputError:
            continue
        if curve is not None:
            ses.extend(curve[2].tolist())
    return float(max(ses)) if ses else 0.0


def _equalisation(lattice, params, n_vac, temperature_k, fit) -> list[Equalisation]:
    """Analytic equalisation time at one temperature (+- the across barrier's SE), and the
    Arrhenius extrapolation of the kMC crossings when a fit exists."""
    p = replace(params, temperature_k=float(temperature_k))
    m = rate_model(lattice, p, n_vac)
    se = _across_se(params)
    if se > 0:
        lo = rate_model(lattice, _shifted(p, -se), n_vac)["tau_s"]
        hi = rate_model(lattice, _shifted(p, +se), n_vac)["tau_s"]
        tau_se = 0.5 * abs(hi - lo)
    else:
        tau_se = None
    out = [Equalisation(temperature_k=float(temperature_k), time_s=measured(m["tau_s"], tau_se),
                        method="analytic model", extrapolated=False, interface_limited_time_s=m["tau_interface_s"],
                        diffusion_limited_time_s=m["tau_diffusion_s"])]
    if fit is not None:
        # the kMC crossing rate extrapolated; equalisation scales as 1 / crossing rate
        x = 1.0 / (KB_EV * temperature_k)
        ln_rate = math.log(fit["prefactor"]) - fit["barrier_ev"] * x
        model_rate = m["crossing_rate_per_site_hz"]
        if model_rate > 0 and math.isfinite(m["tau_interface_s"]):
            scale = model_rate / math.exp(ln_rate)
            tau = m["tau_interface_s"] * scale + m["tau_diffusion_s"]
            rel = math.hypot(fit["prefactor_rel_se"], fit["barrier_se_ev"] * x)
            out.append(Equalisation(temperature_k=float(temperature_k),
                                    time_s=measured(tau, m["tau_interface_s"] * scale * rel),
                                    method="Arrhenius extrapolation of kMC crossings", extrapolated=True,
                                    interface_limited_time_s=m["tau_interface_s"] * scale,
                                    diffusion_limited_time_s=m["tau_diffusion_s"]))
    return out


def fault_kinetics(system, params, temperatures_k=(600.0, 700.0, 800.0, 900.0), *, vacancy_fraction: float = 0.005,
                   max_hops: int = 2_000_000, time_ns: float | None = None, seed: int = 1,
                   residence_temperature_k: float | None = 500.0, residence_time_ns: float = 5.0,
                   equalisation_temperatures_k=(ROOM_TEMPERATURE_K, SYNTHESIS_TEMPERATURE_K),
                   source: str | None = None) -> FaultKinetics:
    """Crossings against temperature, Arrhenius fit, equalisation times, residence times.

    Parameters
    ----------
    system : NanoCrystal or XLattice
        With at least one RP fault between domains 0 and 1.
    params : TabulatedLandscape or KMCParameters
        Its temperature is replaced by each of ``temperatures_k``.
    temperatures_k : sequence of float
        kMC temperatures (crossings must happen in ``max_hops`` hops to enter the fit).
    vacancy_fraction : float
    max_hops, time_ns : run limits per temperature (whichever comes first).
    residence_temperature_k : float, optional
        Temperature of the residence-time run (the seed's 500 K); None skips it.
    residence_time_ns : float
    equalisation_temperatures_k : sequence of float

    Returns
    -------
    FaultKinetics
    """
    lattice = system if isinstance(system, XLattice) else build_x_lattice(system, seed=seed)
    n_iface = interface_site_count(lattice)
    if n_iface == 0:
        raise InputError("fault_kinetics needs a lattice with an RP fault (no RP bonds found)")
    points, n_vac = [], None
    for t in temperatures_k:
        res, pt = _kmc_point(lattice, params, t, vacancy_fraction, max_hops, time_ns, seed, n_iface)
        n_vac = res.n_vacancies
        points.append(pt)
    with_cross = [p for p in points if p.crossings > 0]
    fit, warnings = None, []
    if len(with_cross) >= 2:
        fit = fit_arrhenius([p.temperature_k for p in with_cross],
                            [p.crossing_rate_per_site_hz.value for p in with_cross],
                            [p.crossing_rate_per_site_hz.stderr for p in with_cross])
    else:
        warnings.append(f"crossings at {len(with_cross)} of {len(points)} temperatures: no Arrhenius fit; "
                        "equalisation from the analytic model only")
    ratios = [p.model_rate_per_site_hz / p.crossing_rate_per_site_hz.value for p in with_cross if p.crossings >= 10]
    ratio = measured(float(np.mean(ratios)), float(np.std(ratios, ddof=1) / math.sqrt(len(ratios)))
                     if len(ratios) > 1 else None) if ratios else measured(None)
    equal = [e for t in equalisation_temperatures_k for e in _equalisation(lattice, params, n_vac, t, fit)]
    residence = ()
    if residence_temperature_k is not None:
        res = run_kmc(lattice, replace(params, temperature_k=float(residence_temperature_k)),
                      time_ns=residence_time_ns, vacancy_fraction=vacancy_fraction, seed=seed, n_frames=0)
        residence = (residence_times(res),)
    model = params.table.model if isinstance(params, TabulatedLandscape) else f"literature ({params.barrier_set})"
    return FaultKinetics(
        model=model, interface_sites=n_iface, n_vacancies=int(n_vac), across_barrier_ev=across_barriers(params),
        points=tuple(points),
        effective_barrier_ev=measured(fit["barrier_ev"], fit["barrier_se_ev"]) if fit else measured(None),
        prefactor_per_site_hz=measured(fit["prefactor"], fit["prefactor"] * fit["prefactor_rel_se"]) if fit
        else measured(None),
        model_to_kmc_ratio=ratio, equalisation=tuple(equal), residence=residence, source=source,
        warnings=tuple(warnings), settings={"params": params.to_dict(), "temperatures_k": list(temperatures_k),
                                            "vacancy_fraction": vacancy_fraction, "max_hops": max_hops,
                                            "time_ns": time_ns, "seed": seed})

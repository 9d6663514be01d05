"""Fits on migration runs: Arrhenius barriers, diffusion coefficients, composition decay.

* Arrhenius: ``ln k = ln k0 - E_a / (kT)``; weighted linear least squares in 1/kT, with
  the standard error of the slope from the fit covariance.
* Diffusion: ``MSD(t) = 6 D t`` (3-D random walk), least squares through the origin
  over ``t <= t_max``; successive MSD frames are correlated, so the quoted standard
  error (from the residuals) is a lower bound.
* Composition decay between two domains: ``dF(t) = dF_inf + (dF_0 - dF_inf) exp(-t / tau)``
  (scipy ``curve_fit``; uncertainty from the covariance, again a lower bound because
  frames are correlated). For two slabs of thickness L/2 each in a cuboid of length L
  with no flux through the surfaces, the slowest diffusion mode gives
  ``tau = L^2 / (pi^2 D)`` with D the tracer diffusion coefficient of the ions
  (for identical hop kinetics the colour density relaxes with the self-diffusion
  coefficient); :func:`slab_decay_time_ps` returns that estimate.
* Trajectory summary: :func:`summarize_trajectory` replays the hop events of a kMC
  trajectory (``trajectory.nc``) through the trackers and returns the same
  :class:`~nanodomains.records.MigrationSummary` the kMC writes as its truth, so
  ``compare(result.summary(), summarize_trajectory(path))`` validates the file.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
from scipy import optimize

from nanodomains import materials
from nanodomains.errors import FileFormatError, FitError, InputError
from nanodomains.migration.lattice import XLattice, build_x_lattice
from nanodomains.migration.tracking import mean_waiting_time, summarize_trackers, track_events, vacancy_waits
from nanodomains.records.populations import MigrationSummary

KB_EV: float = materials.KB_EV  # Boltzmann constant, eV/K (materials.py)


def fit_arrhenius(temperature_k, rate, rate_se=None) -> dict:
    """Barrier from rates at several temperatures.

    Parameters
    ----------
    temperature_k : array of float, > 0
    rate : array of float, > 0 (any unit)
    rate_se : array of float, optional
        Standard errors of the rates (weights 1 / (se / rate)^2 on ln rate).

    Returns
    -------
    dict with ``barrier_ev``, ``barrier_se_ev``, ``prefactor`` (same unit as rate),
    ``prefactor_rel_se``.
    """
    t = np.asarray(temperature_k, dtype=float)
    k = np.asarray(rate, dtype=float)
    if t.shape != k.shape or t.size < 2:
        raise InputError("fit_arrhenius needs at least two (temperature, rate) pairs of equal length")
    if np.any(~np.isfinite(t)) or np.any(t <= 0) or np.any(~np.isfinite(k)) or np.any(k <= 0):
        raise InputError("temperatures and rates must be finite and > 0")
    x = 1.0 / (KB_EV * t)
    y = np.log(k)
    if rate_se is None:
        wts = np.ones_like(y)
    else:
        rel = np.asarray(rate_se, dtype=float) / k
        if np.any(~np.isfinite(rel)) or np.any(rel <= 0):
            raise InputError("rate_se must be finite and > 0")
        wts = 1.0 / rel**2
    a = np.stack([np.ones_like(x), x], axis=1)
    aw = a * np.sqrt(wts)[:, None]
    yw = y * np.sqrt(wts)
    coef, *_ = np.linalg.lstsq(aw, yw, rcond=None)
    resid = yw - aw @ coef
    dof = max(len(y) - 2, 1)
    if rate_se is None:
        s2 = float(resid @ resid) / dof
    else:
        s2 = max(1.0, float(resid @ resid) / dof)  # inflate if the scatter exceeds the errors
    cov = s2 * np.linalg.inv(aw.T @ aw)
    return {"barrier_ev": float(-coef[1]), "barrier_se_ev": float(math.sqrt(cov[1, 1])),
            "prefactor": float(math.exp(coef[0])), "prefactor_rel_se": float(math.sqrt(cov[0, 0]))}


def diffusion_coefficient(time_ps, msd_nm2, t_max_ps: float | None = None) -> tuple[float, float]:
    """Tracer diffusion coefficient (nm^2/ps) from ``MSD = 6 D t``, with its standard error."""
    t = np.asarray(time_ps, dtype=float)
    m = np.asarray(msd_nm2, dtype=float)
    sel = t > 0
    if t_max_ps is not None:
        sel &= t <= t_max_ps
    if sel.sum() < 2:
        raise FitError("fewer than two MSD frames in the fit window")
    t, m = t[sel], m[sel]
    slope = float((t @ m) / (t @ t))
    resid = m - slope * t
    se = float(math.sqrt((resid @ resid) / (len(t) - 1) / (t @ t)))
    return slope / 6.0, se / 6.0


def fit_exponential_decay(time_ps, values) -> dict:
    """Fit ``y = y_inf + (y_0 - y_inf) exp(-t / tau)``; returns tau, y_0, y_inf and their SEs."""
    t = np.asarray(time_ps, dtype=float)
    y = np.asarray(values, dtype=float)
    ok = np.isfinite(t) & np.isfinite(y)
    t, y = t[ok], y[ok]
    if len(t) < 4:
        raise FitError("an exponential fit needs at least four finite points")
    span = float(t.max() - t.min())
    if span <= 0:
        raise FitError("all times are equal")
    y0, yend = float(y[0]), float(y[-1])
    # initial tau: time where y crosses halfway, else the span
    half = yend + 0.5 * (y0 - yend)
    cross = np.flatnonzero((y - half) * np.sign(y0 - yend) <= 0)
    tau0 = float(t[cross[0]] - t[0]) / math.log(2) if len(cross) and t[cross[0]] > t[0] else span

    def model(tt, a, b, tau):
        return b + (a - b) * np.exp(-(tt - t[0]) / tau)

    try:
        popt, pcov = optimize.curve_fit(model, t, y, p0=(y0, yend, max(tau0, span * 1e-3)),
                                        bounds=([-np.inf, -np.inf, span * 1e-6], [np.inf, np.inf, span * 1e3]),
                                        maxfev=20000)
    except (RuntimeError, ValueError) as exc:
        raise FitError(f"exponential decay fit failed: {exc}") from exc
    err = np.sqrt(np.diag(pcov))
    if not np.all(np.isfinite(err)):
        raise FitError("exponential decay fit gave no finite uncertainty (flat data?)")
    return {"tau_ps": float(popt[2]), "tau_se_ps": float(err[2]), "y0": float(popt[0]), "y0_se": float(err[0]),
            "y_inf": float(popt[1]), "y_inf_se": float(err[1]), "t0_ps": float(t[0])}


def composition_decay(result, domain_a: int = 0, domain_b: int = 1) -> dict:
    """Br-fraction difference of two domains over a kMC run and its exponential fit."""
    nd = result.frame_domain_br_fraction.shape[1]
    for d in (domain_a, domain_b):
        if not 0 <= d < nd:
            raise InputError(f"domain {d} outside 0..{nd - 1}")
    diff = result.frame_domain_br_fraction[:, domain_a] - result.frame_domain_br_fraction[:, domain_b]
    fit = fit_exponential_decay(result.frame_time_ps, diff)
    fit["difference"] = diff
    fit["time_ps"] = result.frame_time_ps
    return fit


def slab_decay_time_ps(length_nm: float, diffusion_nm2_ps: float) -> float:
    """Slowest-mode relaxation time ``L^2 / (pi^2 D)`` of two slabs in a box of length L."""
    return float(length_nm**2 / (math.pi**2 * diffusion_nm2_ps))


def hop_rate_per_ps(result) -> tuple[float, float]:
    """Hops per vacancy per ps and its Poisson standard error."""
    n = result.hops
    denom = result.time_ps * result.n_vacancies
    if denom <= 0:
        raise FitError("run has zero duration")
    return n / denom, math.sqrt(max(n, 1)) / denom


# ---- trajectory summary ------------------------------------------------------------

#: :func:`~nanodomains.records.compare` tolerances of a trajectory summary against the
#: kMC truth: the mean times within one combined standard error, everything else
#: (replayed exactly) within 1e-6 in its unit; integers, strings and flags must match.
TRAJECTORY_TOLERANCES = {"mean_hop_time_ps": "1sigma", "site_residence_ps": "1sigma", "*": 1e-6}

_TRAJECTORY_VARS = ("site_position_nm", "site_initial_species", "hop_time_ps", "hop_vacancy", "hop_from_site",
                    "hop_to_site", "hop_ion")


def _open_trajectory(trajectory):
    """(Dataset loaded in memory, source label) from a Dataset or a netCDF path."""
    import xarray as xr

    if isinstance(trajectory, xr.Dataset):
        return trajectory, None
    path = os.fspath(trajectory)
    if not os.path.isfile(path):
        raise FileFormatError(f"{path}: trajectory file not found")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return ds.load(), path
    except (OSError, ValueError) as exc:
        raise FileFormatError(f"{path}: not a netCDF trajectory ({exc})") from exc


def _trajectory_lattice(ds, lattice: XLattice | None, label: str) -> XLattice:
    """The hop graph of the trajectory: given, or rebuilt from its NC model."""
    if lattice is None:
        from nanodomains.structure import NanoCrystal

        if not ds.attrs.get("nc_json"):
            raise InputError(f"{label}: the run was on a hand-made lattice (no NC model stored); pass lattice=")
        seed = int(ds.attrs.get("lattice_seed", -1))
        lattice = build_x_lattice(NanoCrystal.from_json(ds.attrs["nc_json"]), seed=max(seed, 0))
    pos = ds["site_position_nm"].values
    if pos.shape != lattice.positions_nm.shape or not np.allclose(pos, lattice.positions_nm, atol=1e-6):
        raise FileFormatError(f"{label}: the X sites of the trajectory do not match the lattice of its NC model")
    return lattice


def summarize_trajectory(trajectory, lattice: XLattice | None = None) -> MigrationSummary:
    """Migration summary of a kMC trajectory, from its stored hop events.

    The hop events are replayed through the trackers (hops, crossings per boundary,
    residence, MSD, domain compositions); the vacancy hop time comes from the event
    times of every vacancy. The run's parameters are read from the file's metadata.

    Parameters
    ----------
    trajectory : str, path or xarray.Dataset
        A trajectory written by :meth:`nanodomains.migration.KMCResult.to_netcdf` (or its
        ``to_dataset()``).
    lattice : XLattice, optional
        The hop graph; by default rebuilt from the NC model stored in the file.

    Returns
    -------
    MigrationSummary
        ``origin="analysis"``; a warning when the file holds only part of the events.

    Examples
    --------
    >>> from nanodomains.migration import run_kmc
    >>> from nanodomains.structure import homogeneous
    >>> res = run_kmc(homogeneous(2.4, seed=1), time_ns=0.05, vacancies=1, seed=3, n_frames=0)
    >>> found = summarize_trajectory(res.to_dataset())
    >>> found.hops == res.summary().hops
    True
    """
    ds, source = _open_trajectory(trajectory)
    label = source or "trajectory"
    missing = [v for v in _TRAJECTORY_VARS if v not in ds]
    if missing:
        raise FileFormatError(f"{label}: not a kMC trajectory (missing {', '.join(missing)})")
    lat = _trajectory_lattice(ds, lattice, label)
    species = ds["site_initial_species"].values.astype(np.int8)
    occupied = species >= 0
    occ = np.full(len(species), -1, dtype=np.int32)
    occ[occupied] = np.arange(int(occupied.sum()), dtype=np.int32)
    times = ds["hop_time_ps"].values
    # the ion moves to the site the vacancy left
    tr = track_events(lat, occ, species[occupied], times, ds["hop_ion"].values, ds["hop_to_site"].values,
                      ds["hop_from_site"].values)
    n_vac = int(ds.attrs.get("n_vacancies", int((~occupied).sum())))
    hops, wait, wait2 = vacancy_waits(times, ds["hop_vacancy"].values, n_vac)
    fields = json.loads(ds.attrs.get("record_fields_json", "{}"))
    warnings = ()
    if int(ds.attrs.get("events_truncated", 0)):
        warnings = (f"{label}: the run stored only its first {len(times)} of {ds.attrs.get('hops')} hops; "
                    "the summary covers those",)
    return summarize_trackers(lat, tr, float(ds.attrs["time_ps"]), n_vacancies=n_vac, vacancy_hops=hops,
                              mean_hop_time_ps=mean_waiting_time(hops, wait, wait2), source=source,
                              warnings=warnings, settings={"seed": ds.attrs.get("seed"), "trajectory": label},
                              **fields)

"""Fault kinetics on the shipped CHGNet barrier table (issue 15, item 4).

Run: ``PYTHONPATH=src python docs/img/make_fault_kinetics_real.py [--table PATH]``.
Writes ``docs/img/fault_kinetics_real.json`` (the FaultKinetics record plus the
along_fault/I sensitivity) and ``docs/img/fault_kinetics_real.png``.

System: the demo's 6.1 nm CsPbBr1.2I1.8 pair (R1 Br 0.27 | RP fault | R2 Br 0.52),
0.5 % vacancies. Attempt frequencies: the table's harmonic-TST values; the paths
without one (across-fault saddles, along_fault_Br, surface_Br) take the same halide's
pure-bulk value (``missing_attempt_frequency="bulk"``). If the table lacks
``along_fault_I`` the run is PROVISIONAL: that pair borrows ``along_fault/Br``
(explicit override, recorded), and the rate model is also evaluated with the pair
closed and at 0.1 eV to show how much it matters.
"""

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nanodomains.files import atomic_path, write_json_atomic, to_jsonable  # noqa: E402
from nanodomains.migration import build_x_lattice  # noqa: E402
from nanodomains.migration.fault import fault_kinetics, rate_model  # noqa: E402
from nanodomains.migration.landscape import TabulatedLandscape, load_table, provisional_overrides  # noqa: E402
from nanodomains.structure import SHIFT_RP, Domain, NanoCrystal, Region  # noqa: E402

HERE = Path(__file__).parent


def pair_nc(e=6.1):
    return NanoCrystal(edges_nm=(e, e, e), nominal_formula="CsPbBr1.2I1.8", seed=1, domains=[
        Domain(id=0, br_fraction=0.27, region=Region(lo_nm=(0, 0, 0), hi_nm=(e / 2, e, e))),
        Domain(id=1, br_fraction=0.52, shift=SHIFT_RP, region=Region(lo_nm=(e / 2, 0, 0), hi_nm=(e, e, e)))])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--table", default=None)
    ap.add_argument("--max-hops", type=int, default=1_000_000)
    args = ap.parse_args()
    table = load_table(args.table)
    overrides = provisional_overrides(table)
    has_along_i = not overrides
    land = TabulatedLandscape(table, temperature_k=500.0, missing_attempt_frequency="bulk", overrides=overrides,
                              table_source=args.table or "shipped")
    lat = build_x_lattice(pair_nc(), seed=1)
    t0 = time.perf_counter()
    fk = fault_kinetics(lat, land, temperatures_k=(250.0, 300.0, 350.0, 433.0, 500.0), vacancy_fraction=0.005,
                        max_hops=args.max_hops, seed=1, residence_temperature_k=500.0, residence_time_ns=5.0)
    wall = time.perf_counter() - t0
    n_vac = fk.n_vacancies
    sens = {}
    for label, ov in (("along_fault/I closed", {"along_fault/I": "closed"}),
                      ("along_fault/I 0.1 eV", {"along_fault/I": 0.1}),
                      ("along_fault/I = along_fault/Br", {"along_fault/I": "along_fault/Br"})):
        p = replace(land, overrides=ov)
        sens[label] = {str(t): rate_model(lat, replace(p, temperature_k=t), n_vac)["tau_s"] for t in (300.0, 433.0)}
    # flat landscape and a 0.1 eV shift of every barrier: how the table's model error moves tau
    shifts = {}
    for dE in (-0.05, 0.05, 0.1):
        p = replace(land, energy_shift_ev=dE)
        shifts[f"{dE:+.2f} eV"] = {str(t): rate_model(lat, replace(p, temperature_k=t), n_vac)["tau_s"]
                                   for t in (300.0, 433.0)}
    out = {"provisional": not has_along_i, "overrides": overrides, "wall_s": wall, "record": fk.to_dict(),
           "along_fault_i_sensitivity_tau_s": sens, "barrier_shift_tau_s": shifts,
           "substituted_attempt_frequency_thz": land.substituted_nu(), "sites": lat.n_sites}
    write_json_atomic(out, HERE / "fault_kinetics_real.json")
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.6))
    pts = [p for p in fk.points if p.crossings > 0]
    x = np.array([1 / p.temperature_k for p in pts])
    y = np.array([p.crossing_rate_per_site_hz.value for p in pts])
    ye = np.array([p.crossing_rate_per_site_hz.stderr for p in pts])
    ax[0].errorbar(1000 * x, y, ye, fmt="o", label="kMC")
    ax[0].plot(1000 * x, [p.model_rate_per_site_hz for p in pts], "s", mfc="none", label="rate model")
    if fk.effective_barrier_ev.value is not None:
        xx = np.linspace(x.min(), x.max(), 50)
        ax[0].plot(1000 * xx, fk.prefactor_per_site_hz.value * np.exp(-fk.effective_barrier_ev.value / (8.617333e-5 / xx)),
                   "-", label=f"Arrhenius {fk.effective_barrier_ev.value:.3f} +- {fk.effective_barrier_ev.stderr:.3f} eV")
    ax[0].set_yscale("log")
    ax[0].set_xlabel("1000 / T (1/K)")
    ax[0].set_ylabel("RP crossings per interface site (1/s)")
    ax[0].legend(fontsize=7)
    r = fk.residence[0]
    edges = np.asarray(r.histogram_edges_ps)
    ax[1].stairs(np.asarray(r.histogram_counts), edges)
    ax[1].axvline(1000.0, color="k", ls=":", label="1 ns")
    ax[1].set_xscale("log")
    ax[1].set_yscale("log")
    ax[1].set_xlabel("vacancy waiting time (ps)")
    ax[1].set_ylabel("count")
    ax[1].set_title(f"500 K, 5 ns: {r.n} waits, {r.over_1ns} > 1 ns", fontsize=8)
    ax[1].legend(fontsize=7)
    fig.suptitle(f"{table.model}" + (" (PROVISIONAL: along_fault/I borrowed)" if not has_along_i else ""), fontsize=8)
    fig.tight_layout()
    with atomic_path(HERE / "fault_kinetics_real.png") as tmp:
        fig.savefig(tmp, dpi=120)
    print(json.dumps({"effective_barrier_ev": str(fk.effective_barrier_ev), "prefactor": str(fk.prefactor_per_site_hz),
                      "points": [(p.temperature_k, p.crossings, p.hops, p.time_ps, str(p.crossing_rate_per_site_hz),
                                  p.model_rate_per_site_hz) for p in fk.points],
                      "ratio": str(fk.model_to_kmc_ratio),
                      "equalisation": [(e.temperature_k, e.method, str(e.time_s), e.interface_limited_time_s,
                                        e.diffusion_limited_time_s) for e in fk.equalisation],
                      "residence": {k: getattr(r, k) for k in ("n", "mean_ps", "median_ps", "p99_ps", "max_ps",
                                                               "over_1ns")},
                      "sens": sens, "shifts": shifts, "wall_s": wall, "warnings": list(fk.warnings)}, indent=1,
                     default=str))


if __name__ == "__main__":
    main()

"""Figures of docs/atomistic.md from the shipped barrier table (and an MD check record if given).

    python docs/img/make_atomistic_figures.py [barriers.json] [md_check.json]

Writes docs/img/neb_profiles.png (CI-NEB energy profiles, one panel per environment) and
docs/img/neb_site_energies.png (vacancy energy against distance from the RP fault).
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nanodomains.migration.barriers import PATHS, load_barrier_table  # noqa: E402

HERE = Path(__file__).parent
ENV_OF = {p.name: p.environment for p in PATHS}
PANELS = [("bulk", "bulk (pure and mixed hosts)"), ("near_fault", "next to / into the fault"),
          ("along_fault", "along the fault (CsX layer)"), ("across_fault", "across the fault (CsX double layer)"),
          ("surface", "CsX-terminated surface")]


def profiles(table, out: Path) -> None:
    fig, axes = plt.subplots(1, len(PANELS), figsize=(3.2 * len(PANELS), 3.2), sharey=True)
    for ax, (env, title) in zip(axes, PANELS):
        paths = [p for p in table.paths if p.environment == env]
        for p in paths:
            s = np.asarray(p.reaction_coordinate_a)
            e = np.asarray(p.energy_ev)
            style = "-" if p.converged else ":"
            colour = "C0" if p.halide == "I" else "C3"
            alpha = 1.0 if p.local_br_fraction in (0.0, 1.0) else 0.5
            ax.plot(s, e, style, marker="o", ms=3, color=colour, alpha=alpha,
                    label=f"{p.name} ({p.barrier_ev.value:.2f} eV)" + ("" if p.converged else " unconverged"))
        missing = [n for n in table.not_computed if n in ENV_OF and ENV_OF[n] == env]
        if missing:
            ax.text(0.02, 0.02, "not computed:\n" + "\n".join(missing), transform=ax.transAxes, fontsize=6,
                    va="bottom", color="0.4")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("reaction coordinate (A)")
        if paths:
            ax.legend(fontsize=6, loc="upper right")
    axes[0].set_ylabel("E - E(initial) (eV)")
    fig.suptitle(f"CI-NEB halide-vacancy hops, {table.model}, fmax {table.settings.get('fmax')} eV/A", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=130)
    plt.close(fig)


def site_energies(table, out: Path) -> None:
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    for halide, colour in (("I", "C0"), ("Br", "C3")):
        s = sorted((x for x in table.site_energies if x.halide == halide), key=lambda x: x.distance_from_fault_nm)
        if s:
            ax.plot([x.distance_from_fault_nm for x in s], [x.energy_ev.value for x in s], "o-", color=colour,
                    label=f"V_{halide} (CsPb{halide}3 RP cell)")
    ax.axhline(0, color="0.7", lw=0.8)
    ax.set_xlabel("distance from the RP fault plane (nm)")
    ax.set_ylabel("vacancy energy - bulk-like site (eV)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=130)
    plt.close(fig)


def markdown(table) -> str:
    """The tables of docs/atomistic.md (paths, site energies, faults), as markdown."""
    cost = table.settings.get("unit_cost", {})
    rows = ["| path | environment | local Br fraction | Ea forward (eV) | Ea reverse (eV) | nu* (THz) | converged "
            "(max F eV/A) | force calls | wall (s) |", "|---|---|---|---|---|---|---|---|---|"]
    for p in table.paths:
        nu = "n/a" if p.attempt_frequency_thz is None else f"{p.attempt_frequency_thz.value:.2f} +- " \
            f"{p.attempt_frequency_thz.stderr:.2f}"
        c = cost.get(p.name, {})
        rows.append(f"| {p.name} | {p.environment} | {p.local_br_fraction:.2f} | {p.barrier_ev.value:.3f} +- "
                    f"{p.barrier_ev.stderr:.3f} | {p.reverse_barrier_ev.value:.3f} | {nu} | {p.converged} "
                    f"({p.max_force_ev_per_a:.3f}) | {c.get('force_calls', p.force_calls)} | "
                    f"{c.get('wall_s', round(p.wall_s))} |")
    rows += ["", "| site | halide | distance from fault (nm) | E_v - E_v(bulk-like) (eV) |", "|---|---|---|---|"]
    rows += [f"| {s.name} | {s.halide} | {s.distance_from_fault_nm:.2f} | {s.energy_ev.value:+.3f} |"
             for s in sorted(table.site_energies, key=lambda s: (s.halide, s.distance_from_fault_nm))]
    rows += ["", "| composition | gamma_RP (J/m^2) | a (pm) | B (GPa) |", "|---|---|---|---|"]
    rows += [f"| {f.composition} | {f.energy_j_per_m2} | {f.lattice_pm} | {f.bulk_modulus_gpa} |" for f in table.faults]
    rows += ["", "Not computed:", ""] + ([f"- `{k}`: {v}" for k, v in table.not_computed.items()]
                                         or ["- none: every path, site-energy set and fault composition converged"])
    return "\n".join(rows)


def main(argv: list[str]) -> None:
    table = load_barrier_table(argv[0] if argv else None)
    profiles(table, HERE / "neb_profiles.png")
    if table.site_energies:
        site_energies(table, HERE / "neb_site_energies.png")
    print("wrote", HERE / "neb_profiles.png")
    print(markdown(table))


if __name__ == "__main__":
    main(sys.argv[1:])

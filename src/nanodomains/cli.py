"""Thin Typer front end over the nanodomains API.

Every command calls library functions and prints their results; no physics lives
here. A :class:`~nanodomains.errors.NanodomainsError` is printed on one line and the
process exits with status 2; nothing is written when an input is bad.
"""

from __future__ import annotations

import sys
from typing import Optional  # noqa: F401  (used by command signatures)

import typer
from rich.console import Console

from nanodomains.errors import InputError, NanodomainsError

app = typer.Typer(
    name="nanodomains",
    help="Mixed-halide perovskite nanocrystals: structure, STEM, migration, 4 K optics, spectroscopy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
stem_app = typer.Typer(help="ADF-STEM: simulate and analyse images.", no_args_is_help=True)
eds_app = typer.Typer(help="EDS maps: simulate and line scans.", no_args_is_help=True)
pl_app = typer.Typer(help="4 K PL spectral movies: simulate and analyse.", no_args_is_help=True)
photons_app = typer.Typer(help="Photon time tags: simulate, g2, lifetimes.", no_args_is_help=True)
app.add_typer(stem_app, name="stem")
app.add_typer(eds_app, name="eds")
app.add_typer(pl_app, name="pl")
app.add_typer(photons_app, name="photons")

console = Console()
err_console = Console(stderr=True)


# ---- structure (foundation) -------------------------------------------------


def _print_nc_table(desc: dict, names: list[str] | None = None) -> None:
    from rich.table import Table

    t = Table(title=f"NC {desc['edges_nm']} nm, nominal {desc['nominal_formula']}, "
                    f"a_ref {desc['reference_lattice_pm']:.1f} pm")
    for col in ("domain", "formula", "Br", "registry", "V nm3", "a pm", "Eg4K eV"):
        t.add_column(col, justify="right", no_wrap=True, min_width=15 if col == "formula" else None)
    for i, d in enumerate(desc["domains"]):
        label = names[i] if names and i < len(names) else str(d["id"])
        t.add_row(label, d["formula"], f"{d['br_fraction']:.3f}", d["shift"], f"{d['volume_nm3']:.0f}",
                  f"{d['lattice_pm']:.1f}", f"{d['bandgap_4k_ev']:.3f}")
    console.print(t)
    if desc["boundaries"]:
        b = Table(title="boundaries")
        for col in ("domains", "normal", "type", "plane (nm)", "area (nm2)"):
            b.add_column(col, justify="right")
        for row in desc["boundaries"]:
            b.add_row("-".join(str(k) for k in row["domains"]), row["normal"], row["type"],
                      f"{row['plane_nm']:.2f}", f"{row['area_nm2']:.1f}")
        console.print(b)
    else:
        console.print("no boundaries (single domain)")


@app.command()
def build(
    out: str = typer.Option(..., "--out", help="Output NC model (JSON)."),
    composition: str = typer.Option("CsPbBr1.2I1.8", "--composition", help="Nominal formula."),
    edge_nm: float = typer.Option(15.0, "--edge-nm", help="Cube edge (nm)."),
    domains: int = typer.Option(1, "--domains", help="Number of nanodomains (random {100} boxes)."),
    seed: int = typer.Option(1, "--seed", help="Random seed (partition, compositions, Br/I occupancy)."),
    xyz: Optional[str] = typer.Option(None, "--xyz", help="Also write atoms (.extxyz or .cif)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="paper_fig1 | homogeneous (overrides geometry)."),
) -> None:
    """Build an NC model and write it as JSON (and optionally atoms)."""
    from nanodomains.structure import homogeneous, preset as make_preset, random_domains, write_atoms

    if preset:
        nc = make_preset(preset, seed=seed)
    elif domains == 1:
        nc = homogeneous(edge_nm, composition, seed=seed)
    else:
        nc = random_domains(edge_nm, composition, n_domains=domains, seed=seed)
    atoms = nc.to_atoms() if xyz else None  # build everything before writing anything
    if xyz and not xyz.lower().endswith((".extxyz", ".xyz", ".cif")):
        raise InputError(f"--xyz {xyz}: use a .extxyz, .xyz or .cif file name")
    nc.to_json(out)
    if atoms is not None:
        write_atoms(atoms, xyz)
    console.print(f"wrote {out}" + (f" and {xyz} ({len(atoms)} atoms)" if xyz else ""))


@app.command()
def describe(model: str = typer.Argument(..., help="NC model JSON.")) -> None:
    """Print domains (formula, volume, lattice constant, bandgap) and boundaries."""
    from nanodomains.structure import NanoCrystal

    _print_nc_table(NanoCrystal.from_json(model).describe())

# ---- growth and migration ---------------------------------------------------

# ---- stem / eds -------------------------------------------------------------

# ---- pl ---------------------------------------------------------------------

# ---- photons ----------------------------------------------------------------

# ---- pipeline (demo, batch) -------------------------------------------------


@app.command()
def demo(
    out: str = typer.Option("demo_out", "--out", help="Output directory."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
) -> None:
    """Run the seed study end to end on embedded defaults (grows as capabilities land)."""
    from nanodomains.pipeline.demo import run_demo

    with console.status("demo") as status:
        summary = run_demo(out, seed=seed, progress=lambda stage: status.update(f"demo: {stage}"))
    fig1 = summary["stages"]["structure"]["paper_fig1"]
    names = [d.get("name", str(d["id"])) for d in fig1["domains"]]
    _print_nc_table(fig1, names)
    console.print(f"demo finished in {summary['elapsed_s']:.1f} s; outputs in {out}/ (summary.json)")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: run the app, turn project errors into one line."""
    try:
        app(args=argv, standalone_mode=False)
    except NanodomainsError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        return int(code or 0)
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except Exception as exc:  # click usage errors come here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())

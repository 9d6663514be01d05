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

from nanodomains.errors import NanodomainsError

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

# ---- growth and migration ---------------------------------------------------

# ---- stem / eds -------------------------------------------------------------

# ---- pl ---------------------------------------------------------------------

# ---- photons ----------------------------------------------------------------

# ---- pipeline (demo, batch) -------------------------------------------------


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

"""Thin Typer front end over the nanodomains API.

Every command calls library functions and prints their results; no physics lives
here. A :class:`~nanodomains.errors.NanodomainsError` is printed on one line and the
process exits with status 2; nothing is written when an input is bad.
"""

from __future__ import annotations

import os
import sys
from typing import Optional  # noqa: F401  (used by command signatures)

import typer
from rich.console import Console

from nanodomains.errors import (InputError, NanodomainsError, Terminated, acknowledge_interrupt,
                                install_interrupt_handlers, restore_interrupt_handlers)
from nanodomains.limits import check_axis, check_counts, require_memory

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


@app.command()
def grow(
    out: str = typer.Option(..., "--out", help="Output directory (population.jsonl, summary.json)."),
    nominal: str = typer.Option("CsPbBr1.2I1.8", "--nominal", help="Nominal formula of the synthesis."),
    crystals: int = typer.Option(130, "--crystals", help="Number of NCs."),
    seed: int = typer.Option(1, "--seed", help="Random seed."),
) -> None:
    """Simulate an NC population (nucleation, aggregation, coalescence) with the seed preset."""
    from pathlib import Path

    from rich.table import Table

    from nanodomains.growth import SEED_PRESET, simulate_population

    pop = simulate_population(nominal, crystals, seed=seed, params=SEED_PRESET)
    summary = pop.summary()
    outdir = Path(out)
    pop.to_jsonl(outdir / "population.jsonl")
    summary.to_json(outdir / "summary.json")
    t = Table(title=f"{crystals} NCs, nominal {nominal}, seed {seed}")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    lo, hi = summary.multi_domain_fraction_wilson95
    f = summary.multi_domain_fraction
    t.add_row("multi-domain fraction", f"{f.value:.3f} +/- {f.stderr:.3f} (95 %: {lo:.3f}-{hi:.3f})")
    t.add_row("domains per NC", ", ".join(f"{k}: {v}" for k, v in summary.domains_per_nc.items()))
    nc_f = summary.composition.nc_br_fraction
    t.add_row("NC Br fraction", f"{nc_f.mean.value:.3f} +/- {nc_f.sd:.3f} (sd)")
    spread = summary.composition.within_nc_br_spread
    if spread.n:
        t.add_row("Br spread within multi-domain NCs", f"{spread.mean.value:.3f} +/- {spread.sd:.3f} (sd)")
    t.add_row("domain volume (nm3)", f"{summary.domain_volume_nm3.median:.0f} (median)")
    t.add_row("edge (nm)", f"{summary.edge_nm.mean.value:.1f} +/- {summary.edge_nm.sd:.1f} (sd)")
    console.print(t)
    console.print(f"wrote {outdir / 'population.jsonl'} and {outdir / 'summary.json'}")


def _rp_barrier_option(text: Optional[str]):
    if text is None:
        return None
    if text.lower() in ("closed", "bulk"):
        return text.lower()
    try:
        return float(text)
    except ValueError:
        raise InputError(f"--rp-barrier {text!r}: expected 'closed', 'bulk' or a barrier in eV") from None


def _kmc_params(barriers: str, temperature_k: float, barrier_set: str, rp_barrier: Optional[str],
                surface_barrier_ev: Optional[float], photocarriers: float, attempt_frequency_hz: Optional[float],
                missing_attempt_frequency: Optional[str] = None):
    """The computed landscape (shipped or given table) or the literature model."""
    from nanodomains.migration import KMCParameters
    from nanodomains.migration.landscape import TabulatedLandscape, load_table

    if barriers == "literature":
        return KMCParameters(temperature_k=temperature_k, barrier_set=barrier_set,
                             rp_barrier_ev=_rp_barrier_option(rp_barrier), surface_barrier_ev=surface_barrier_ev,
                             photocarriers=photocarriers).validate()
    if rp_barrier is not None or surface_barrier_ev is not None:
        raise InputError("--rp-barrier and --surface-barrier-ev belong to --barriers literature; a barrier table "
                         "sets every barrier")
    path = None if barriers == "table" else barriers
    return TabulatedLandscape(load_table(path), temperature_k=temperature_k,
                              attempt_frequency_hz=attempt_frequency_hz,
                              attempt_frequency_source="user value (--attempt-frequency-hz)" if attempt_frequency_hz
                              else None, table_source=path or "shipped", photocarriers=photocarriers,
                              missing_attempt_frequency=missing_attempt_frequency).validate()


@app.command()
def migrate(
    model: str = typer.Argument(..., help="NC model JSON."),
    out: str = typer.Option(..., "--out", help="Output directory (trajectory.nc, summary.json, paths.png)."),
    temperature_k: float = typer.Option(500.0, "--temperature-k", help="Temperature (K)."),
    time_ns: float = typer.Option(10.0, "--time-ns", help="Simulated time (ns)."),
    vacancies: int = typer.Option(2, "--vacancies", help="Number of halide vacancies."),
    vacancy_fraction: Optional[float] = typer.Option(None, "--vacancy-fraction",
                                                     help="Vacancy concentration (fraction of X sites); "
                                                          "overrides --vacancies."),
    seed: int = typer.Option(1, "--seed", help="Seed (occupancy, vacancy sites, kMC)."),
    barriers: str = typer.Option("table", "--barriers",
                                 help="table (the shipped computed barrier table) | PATH of a barrier table | "
                                      "literature (Pols et al. 2024 bulk barriers)."),
    attempt_frequency_hz: Optional[float] = typer.Option(None, "--attempt-frequency-hz",
                                                         help="With a table: one attempt frequency for all paths "
                                                              "instead of the table's harmonic-TST values."),
    missing_attempt_frequency: Optional[str] = typer.Option(
        None, "--missing-attempt-frequency",
        help="With a table: 'bulk' gives paths without a harmonic-TST attempt frequency the same halide's "
             "pure-bulk value (listed in the summary's settings); default: such a path is an error."),
    barrier_set: str = typer.Option("reaxff", "--barrier-set", help="literature: reaxff | dft (Pols et al. 2024)."),
    rp_barrier: Optional[str] = typer.Option(None, "--rp-barrier",
                                             help="literature: closed | bulk | barrier in eV (needed with RP faults)."),
    surface_barrier_ev: Optional[float] = typer.Option(None, "--surface-barrier-ev",
                                                       help="literature: barrier of surface hops (default: bulk)."),
    photocarriers: float = typer.Option(0.0, "--photocarriers", help="Photocarriers (light term; 0 = dark)."),
    frames: int = typer.Option(201, "--frames", help="Snapshots stored in the trajectory."),
) -> None:
    """Halide-vacancy kMC on an NC model: trajectory, summary and vacancy-path figure."""
    from pathlib import Path

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    import numpy as np

    from nanodomains.migration import plot_vacancy_paths, run_kmc
    from nanodomains.structure import NanoCrystal

    nc = NanoCrystal.from_json(model)
    n_vac = vacancy_fraction * 3 * int(np.prod(nc.n_cells)) if vacancy_fraction else vacancies
    # per frame: MSD, hops, crossings, per-domain Br and ions (int64), vacancy sites (int32); x2 for the file
    require_memory(2 * frames * (48 + 16 * len(nc.domains) + 4 * n_vac), f"a kMC trajectory of {frames} frames")
    params = _kmc_params(barriers, temperature_k, barrier_set, rp_barrier, surface_barrier_ev, photocarriers,
                         attempt_frequency_hz, missing_attempt_frequency)
    with Progress(TextColumn("kMC"), BarColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task("kmc", total=time_ns * 1e3, info="")

        def progress(t_ps, hops):
            bar.update(task, completed=t_ps, info=f"{t_ps / 1e3:.3g} ns, {hops} hops")

        result = run_kmc(nc, params, time_ns=time_ns, vacancies=None if vacancy_fraction else vacancies,
                         vacancy_fraction=vacancy_fraction, seed=seed, n_frames=frames,
                         chunk_hops=500_000, progress=progress)
    summary = result.summary()
    outdir = Path(out)
    result.to_netcdf(outdir / "trajectory.nc")
    summary.to_json(outdir / "summary.json")
    plot_vacancy_paths(result, outdir / "paths.png")
    t = Table(title=f"{model}: {temperature_k:g} K, {result.n_vacancies} vacancies, {time_ns:g} ns")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_row("hops", str(summary.hops))
    t.add_row("mean hop time (ps)", str(summary.mean_hop_time_ps))
    c = summary.boundary_crossings
    t.add_row("boundary crossings", f"{c.total} (RP {c.rp}, coherent {c.coherent})")
    t.add_row("ions moved / changed domain", f"{summary.ions_moved} / {summary.ions_changed_domain}")
    t.add_row("MSD Br / I (nm2)", f"{summary.msd_br_nm2:.4f} / {summary.msd_i_nm2:.4f}")
    console.print(t)
    console.print(f"wrote {outdir / 'trajectory.nc'}, {outdir / 'summary.json'}, {outdir / 'paths.png'}")


# ---- stem / eds -------------------------------------------------------------

_IMAGE_SUFFIXES = (".tif", ".tiff", ".nc", ".hspy")


def _float_list(text: str, option: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise InputError(f"{option} {text!r}: expected comma-separated numbers, e.g. 0,0.5,1") from exc


def _region_slices(text: Optional[str]) -> Optional[tuple[slice, slice]]:
    """'y0:y1,x0:x1' (px) as a pair of slices."""
    if text is None:
        return None
    try:
        (y0, y1), (x0, x1) = ([int(v) for v in part.split(":")] for part in text.split(","))
    except ValueError:
        raise InputError(f"--calibration-region {text!r}: expected y0:y1,x0:x1 in px, e.g. 0:200,100:900") from None
    if not (0 <= y0 < y1 and 0 <= x0 < x1):
        raise InputError(f"--calibration-region {text!r}: need 0 <= y0 < y1 and 0 <= x0 < x1")
    return slice(y0, y1), slice(x0, x1)


def _print_truth_domains(truth: dict) -> None:
    from rich.table import Table

    t = Table(title="truth: domains in the image")
    for col in ("id", "formula", "area nm2", "a pm", "Br", "shifted s"):
        t.add_column(col, justify="right")
    for d in truth["record"].domains:
        if d.visible:
            s = d.shifted_fraction.value
            t.add_row(str(d.id), d.formula, f"{d.area_nm2:.1f}", f"{d.lattice_pm.value:.1f}",
                      f"{d.br_fraction.value:.3f}", "-" if s is None else f"{s:.2f}")
    console.print(t)


@stem_app.command("simulate")
def stem_simulate(
    model: str = typer.Argument(..., help="NC model JSON (from `nanodomains build`)."),
    out: str = typer.Option(..., "--out", help="Image file: .tif, .nc or .hspy; the truth goes to <stem>.truth.json."),
    method: str = typer.Option("incoherent", "--method", help="incoherent | multislice (abTEM, frozen phonons)."),
    dose: float = typer.Option(1e5, "--dose", help="Electron dose (e/A^2)."),
    pixel_pm: float = typer.Option(20.0, "--pixel-pm", help="Pixel size / scan step (pm)."),
    rotation_deg: float = typer.Option(0.0, "--rotation-deg", help="In-plane rotation of the NC (incoherent)."),
    seed: int = typer.Option(1, "--seed", help="Seed for occupancy, support film, jitter, phonons and noise."),
    size_px: Optional[int] = typer.Option(None, "--size-px", help="Square image size (default: NC + 1.5 nm margins)."),
    jitter_pm: float = typer.Option(0.0, "--jitter-pm", help="rms scan-line jitter along x (pm)."),
    drift: tuple[float, float] = typer.Option((0.0, 0.0), "--drift-pm-per-line", help="Drift vx vy per scan line (pm)."),
    support_nm: float = typer.Option(3.0, "--support-nm", help="Amorphous carbon support thickness (nm), 0 for none."),
    region: Optional[str] = typer.Option(None, "--region-nm", help="Multislice: scanned region x0,y0,x1,y1 (nm)."),
) -> None:
    """Simulate an ADF-STEM image of an NC model, with a truth sidecar."""
    from pathlib import Path

    from nanodomains.stem.simulate import ScanDistortion, SupportFilm, simulate_image, write_simulation
    from nanodomains.structure import NanoCrystal

    if Path(out).suffix.lower() not in _IMAGE_SUFFIXES:
        raise InputError(f"--out {out}: use one of {', '.join(_IMAGE_SUFFIXES)}")
    nc = NanoCrystal.from_json(model)
    side = size_px or int(1000 * (max(nc.edges_nm) + 3.0) / pixel_pm) + 1
    require_memory(12 * 8 * side**2, f"a {side} x {side} px image at {pixel_pm:g} pm/px")  # ~12 float64 maps
    if method == "incoherent":
        if region is not None:
            raise InputError("--region-nm applies to --method multislice only")
        result = simulate_image(nc, pixel_size_pm=pixel_pm, shape=size_px, dose_e_per_a2=dose,
                                rotation_deg=rotation_deg, seed=seed,
                                scan=ScanDistortion(jitter_pm, tuple(drift)), support=SupportFilm(support_nm))
    elif method == "multislice":
        from nanodomains.stem.multislice import multislice_image

        if rotation_deg or size_px or jitter_pm or any(drift):
            raise InputError("--rotation-deg, --size-px, --jitter-pm and --drift-pm-per-line apply to "
                             "--method incoherent only (use --region-nm for multislice)")
        box = _float_list(region, "--region-nm") if region else None
        if box is not None and len(box) != 4:
            raise InputError(f"--region-nm {region!r}: expected x0,y0,x1,y1")
        result = multislice_image(nc, region_nm=box, pixel_size_pm=pixel_pm, dose_e_per_a2=dose, seed=seed,
                                  progress=True)
    else:
        raise InputError(f"--method {method!r}: expected 'incoherent' or 'multislice'")
    img_path, truth_path = write_simulation(result, out)
    _print_truth_domains(result.truth)
    ny, nx = result.image.shape
    console.print(f"wrote {img_path} ({nx} x {ny} px, {pixel_pm:g} pm) and {truth_path}")


@stem_app.command("table")
def stem_table(
    out: str = typer.Option(..., "--out", help="Output table (.nc)."),
    method: str = typer.Option("power-law", "--method",
                               help="power-law | multislice (abTEM, frozen phonons) | registry (abTEM registry-depth "
                                    "table for the joint inversion, nanodomains.stem.zcontrast)."),
    br: str = typer.Option("0,0.5,1", "--br", help="Br fractions (comma-separated)."),
    shifted: str = typer.Option("0,0.25,0.5,0.75", "--shifted", help="Shifted-cell fractions."),
    cells: str = typer.Option("8,16,24", "--cells", help="Thicknesses in unit cells (registry: every cell of LO-HI)."),
    exponent: float = typer.Option(1.7, "--exponent", help="Power-law exponent n."),
    scan_points: int = typer.Option(6, "--scan-points", help="Multislice: scan points per axis over a quarter cell."),
    seed: int = typer.Option(1, "--seed", help="Multislice: halide order and frozen-phonon seed."),
    regular_cells: str = typer.Option("41,22,9,30,4,15", "--regular-cells",
                                      help="Registry: boundary depths k (regular cells at the entrance), in run order; "
                                           "one k >= the largest thickness gives the regular column."),
    parts: Optional[str] = typer.Option(None, "--parts", help="Registry: folder of finished runs (resumes); "
                                        "several comma-separated folders are passes with their own seeds, merged."),
    kv: float = typer.Option(300.0, "--kv", help="Multislice/registry: beam energy (kV)."),
    mrad: float = typer.Option(24.0, "--mrad", help="Multislice/registry: convergence semi-angle (mrad)."),
    detector: str = typer.Option("70,190", "--detector", help="Multislice/registry: ADF inner,outer angle (mrad)."),
    configs: int = typer.Option(8, "--configs", help="Multislice/registry: frozen-phonon configurations (>= 8)."),
) -> None:
    """Column-intensity table (Cs, PbX, X) over Br fraction, shifted fraction and thickness."""
    from rich.table import Table

    from nanodomains.stem import table_build, tables
    from nanodomains.stem.multislice import MultisliceSettings
    from nanodomains.stem.probe import ColumnModel, ProbeParameters

    if not out.lower().endswith(".nc"):
        raise InputError(f"--out {out}: tables are written as netCDF (.nc)")
    m = method.replace("_", "-").lower()
    det = _float_list(detector, "--detector")
    if len(det) != 2:
        raise InputError(f"--detector {detector!r}: expected inner,outer in mrad, e.g. 70,190")
    settings = MultisliceSettings(probe=ProbeParameters(beam_energy_kev=kv, convergence_semiangle_mrad=mrad),
                                  detector_mrad=tuple(det), num_configs=configs)
    if m == "registry":
        _registry_table_command(out, br, cells, regular_cells, parts, settings)
        return
    b, s, n = _float_list(br, "--br"), _float_list(shifted, "--shifted"), _float_list(cells, "--cells")
    if m in ("power-law", "powerlaw"):
        table = tables.power_law_table(b, s, n, ColumnModel(exponent=exponent))
    elif m == "multislice":
        table = table_build.multislice_table(b, s, n, settings=settings, scan_points=scan_points, seed=seed)
    else:
        raise InputError(f"--method {method!r}: expected 'power-law', 'multislice' or 'registry'")
    tables.save_table(table, out)
    ratios = tables.column_ratios(table)
    t = Table(title=f"{table.attrs['method']} table: Cs/PbX at the largest thickness")
    t.add_column("Br \\ s", justify="right")
    for sv in table["shifted_fraction"].values:
        t.add_column(f"{sv:g}", justify="right")
    last = ratios["cs_pbx"].isel(thickness_cells=-1)
    for i, bv in enumerate(table["br_fraction"].values):
        t.add_row(f"{bv:g}", *(f"{v:.3f}" for v in last.values[i]))
    console.print(t)
    if table.attrs["method"] == "multislice":
        fit = tables.fit_column_model(table)
        console.print("fit of the power law: " + ", ".join(
            f"{k} = {v:.4g}" for k, v in fit.summary().items() if v is not None))
    console.print(f"wrote {out}")


def _cell_range(text: str) -> list[int]:
    """'6-41' or '8,16,24' as a list of whole cells."""
    if "-" in text and "," not in text:
        try:
            lo, hi = (int(v) for v in text.split("-"))
        except ValueError as exc:
            raise InputError(f"--cells {text!r}: expected LO-HI or a comma-separated list") from exc
        return list(range(lo, hi + 1))
    vals = _float_list(text, "--cells")
    if any(v != int(v) for v in vals):
        raise InputError(f"--cells {text!r}: whole cells expected")
    return [int(v) for v in vals]


def _registry_table_command(out: str, br: str, cells: str, regular_cells: str, parts: Optional[str],
                            settings) -> None:
    """``stem table --method registry``: build (resuming from --parts), write and summarise."""
    from nanodomains.stem import table_build
    from nanodomains.stem.io import save_netcdf
    from pathlib import Path

    from nanodomains.stem.zcontrast import RegistryModel

    n = _cell_range(cells)
    ks = [int(v) for v in _float_list(regular_cells, "--regular-cells")]
    folders = [p for p in (parts or str(Path(out).with_suffix("")) + "_parts").split(",") if p]
    table = table_build.registry_table(_float_list(br, "--br"), ks, n, settings=settings, parts_dir=folders)
    save_netcdf(table, out)
    model = RegistryModel(table)
    console.print(f"{model.describe()}; {table.attrs['wall_time_s'] / 60:.0f} min of runs; wrote {out}")


@stem_app.command("validation-images")
def stem_validation_images(
    out: str = typer.Option(..., "--out", help="Output folder (<case>.nc each)."),
    cases: Optional[str] = typer.Option(None, "--cases", help="Comma-separated case names (default all)."),
    thickness: str = typer.Option("8,12,16,24", "--thickness", help="Thicknesses (nm), exit planes of one run."),
    seed: int = typer.Option(7, "--seed", help="Seed of the first case (case i: seed + i)."),
) -> None:
    """Multislice (abTEM) validation images of registry slabs with known b, s and thickness."""
    from nanodomains.stem.table_build import validation_images

    names = [c.strip() for c in cases.split(",")] if cases else None
    for p in validation_images(out, names, tuple(_float_list(thickness, "--thickness")), seed=seed):
        console.print(f"wrote {p}")


@stem_app.command("fig1g")
def stem_fig1g(
    out: str = typer.Option("fig1g.png", "--out", help="Output figure (.png, .pdf, .svg)."),
    table: Optional[str] = typer.Option(None, "--table", help="Registry-depth table (.nc); default the shipped one."),
    thickness_nm: float = typer.Option(16.0, "--thickness-nm", help="Column thickness (nm)."),
) -> None:
    """The seed's Fig. 1g: column intensities against b and s from the registry-depth table."""
    from nanodomains.stem.zcontrast import RegistryModel, fig1g_numbers, load_registry_table, plot_fig1g

    model = RegistryModel(load_registry_table(table))
    console.print(f"wrote {plot_fig1g(model, out, thickness_nm)}")
    for key, value in fig1g_numbers(model, thickness_nm).items():
        console.print(f"  {key}: {value:+.3f}")


@eds_app.command("simulate")
def eds_simulate(
    model: str = typer.Argument(..., help="NC model JSON."),
    out: str = typer.Option(..., "--out", help="Output maps (.nc); the truth goes to <stem>.truth.json."),
    dose: float = typer.Option(1e7, "--dose", help="Total electron dose of the map (e/A^2)."),
    pixel_pm: float = typer.Option(50.0, "--pixel-pm", help="Pixel size (pm)."),
    rotation_deg: float = typer.Option(0.0, "--rotation-deg", help="In-plane rotation of the NC."),
    seed: int = typer.Option(1, "--seed", help="Seed for occupancy and noise."),
) -> None:
    """Simulate Br K and I L line-count maps of an NC model, with a truth sidecar."""
    from nanodomains.stem.eds import simulate_eds, write_eds
    from nanodomains.structure import NanoCrystal

    if not out.lower().endswith(".nc"):
        raise InputError(f"--out {out}: EDS maps are written as netCDF (.nc)")
    nc = NanoCrystal.from_json(model)
    result = simulate_eds(nc, pixel_size_pm=pixel_pm, dose_e_per_a2=dose, rotation_deg=rotation_deg, seed=seed)
    maps_path, truth_path = write_eds(result, out)
    _print_truth_domains(result.truth)
    totals = ", ".join(f"{k} {int(v.sum())}" for k, v in result.maps.data_vars.items())
    console.print(f"counts: {totals}; wrote {maps_path} and {truth_path}")


def _fmt(value, spec: str) -> str:
    """``value`` formatted with ``spec``; ``-`` for None or NaN (table cells)."""
    return "-" if value is None or value != value else format(value, spec)


@stem_app.command("analyze")
def stem_analyze(
    image: str = typer.Argument(..., help="ADF-STEM image (dm3/dm4/emd/ser/tif/hspy/npy/nc)."),
    out: str = typer.Option(..., "--out", help="Output folder: domains.json, columns.csv, gpa.nc, overview.png."),
    pixel_size_pm: Optional[float] = typer.Option(None, "--pixel-size-pm", help="Pixel size (pm) for files without calibration."),
    table: Optional[str] = typer.Option(None, "--table", help="Column-intensity table (.nc, `stem table`) or 'registry' "
                                                              "(the shipped multislice registry-depth table: joint "
                                                              "b, s, thickness inversion); default power law."),
    thickness_nm: Optional[float] = typer.Option(None, "--thickness-nm", help="Crystal thickness (default: cube from the projected area)."),
    incident_level: Optional[float] = typer.Option(
        None, "--incident-level",
        help="Detector signal of the whole incident beam above dark (image units, from a detector scan): "
             "intensities become fractions of the incident beam."),
    fit_thickness: bool = typer.Option(False, "--fit-thickness",
                                       help="Registry table: thickness from the intensities (image normalised to the "
                                            "incident beam) or marginalised, not from --thickness-nm / the cube."),
    names: str = typer.Option("Cs,PbX,X", "--names", help="Column names dim,bright,X (B,A,O for ABO3: no composition)."),
    classification: str = typer.Option("local", "--classification", help="local (follows RP faults) | global."),
    eds: Optional[str] = typer.Option(None, "--eds", help="Registered EDS maps (.nc): step fit across each boundary."),
    probe: Optional[str] = typer.Option(None, "--probe", help="kV,mrad,source-FWHM-pm for the cross-talk if not in the file."),
    calibrate_lattice_pm: Optional[float] = typer.Option(
        None, "--calibrate-lattice-pm", help="Set the pixel size from a reference lattice of this cell edge (pm) in the image."),
    calibration_region: Optional[str] = typer.Option(
        None, "--calibration-region", help="Reference region in px, y0:y1,x0:x1 (default the whole image)."),
    calibration_direction: str = typer.Option("both", "--calibration-direction", help="both | x | y: which cell edge is known."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    background: str = typer.Option(
        "auto", "--background",
        help="Background for the composition: a level (image units per pixel), vacuum, columns (the column fits' "
             "background, for crystals that fill the field) or auto (vacuum if the field has some, else columns)."),
) -> None:
    """Nanodomains, boundaries, lattice constants and compositions of an image.

    Lattice, columns, strain, domains and boundaries need no vacuum; the composition
    is computed where its inputs exist and otherwise reported as not computed.
    """
    from rich.table import Table

    from nanodomains.stem.analyze import analyze_image
    from nanodomains.stem.probe import ProbeParameters

    type_names = tuple(v.strip() for v in names.split(","))
    pr = None
    if probe is not None:
        vals = _float_list(probe, "--probe")
        if len(vals) != 3:
            raise InputError(f"--probe {probe!r}: expected kV,mrad,source-FWHM-pm, e.g. 300,24,40")
        pr = dict(zip(("beam_energy_kev", "convergence_semiangle_mrad", "source_fwhm_pm"), vals))
        ProbeParameters(**pr)  # refused up front, even when no stage ends up using the probe
    res = analyze_image(image, table, pixel_size_pm=pixel_size_pm, names=type_names, classification=classification,
                        thickness_nm=None if fit_thickness else (thickness_nm if thickness_nm is not None else "cube"),
                        eds_maps=eds, seed=seed, incident_level=incident_level,
                        probe=pr, calibrate_lattice_pm=calibrate_lattice_pm,
                        calibration_region=_region_slices(calibration_region), calibration_direction=calibration_direction,
                        background=background)
    paths = res.write(out)
    rec = res.record
    if calibrate_lattice_pm is not None:
        prev = rec.previous_pixel_size_pm
        console.print(f"pixel size {rec.pixel_size_pm:.3f} pm from {rec.pixel_size_source}; replaces "
                      + (f"{prev:.3f} pm ({rec.previous_pixel_size_source})" if prev is not None
                         else "no calibration"))
    for w in rec.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")
    for stage, reason in rec.not_computed.items():
        console.print(f"{stage}: not computed ({reason})")
    t = Table(title=f"{len(rec.domains)} domain(s), {int(len(res.columns))} columns; table: "
                    f"{rec.table.method if rec.table else 'none'}")
    for col in ("domain", "area nm2", "a (pm)", "a1, a2 (pm)", "Br", "s", "formula", "Vegard"):
        t.add_column(col, justify="right")
    for d in rec.domains:
        vegard = d.composition.vegard_agrees if d.composition is not None else None
        a12 = ", ".join(_fmt(m.value if m is not None else None, ".1f") for m in (d.lattice_a1_pm, d.lattice_a2_pm))
        t.add_row(d.name, f"{d.area_nm2:.1f}", f"{d.lattice_pm.value:.2f} ± {_fmt(d.lattice_pm.stderr, '.2f')}", a12,
                  f"{_fmt(d.br_fraction.value, '.3f')} ± {_fmt(d.br_fraction.stderr, '.3f')}",
                  _fmt(d.shifted_fraction.value, ".2f"), d.formula or "-",
                  {True: "agrees", False: "DISAGREES", None: "-"}[vegard])
    console.print(t)
    if rec.background is not None:
        console.print(f"background: {rec.background.method} ({rec.background.source}), "
                      f"{rec.background.level_per_px.value:.4g} per px")
    for b in rec.boundaries:
        console.print(f"boundary R{b.domains[0]}-R{b.domains[1]}: {b.type}, {b.length_nm:.1f} nm"
                      + (f" ({b.evidence})" if b.evidence else ""))
    console.print(f"wrote {', '.join(str(p) for p in paths.values())}")


@stem_app.command("validate")
def stem_validate(
    analysis: str = typer.Argument(..., help="Output folder of `stem analyze` (domains.json, gpa.nc)."),
    truth: str = typer.Argument(..., help="Truth sidecar of the simulated image (NAME.truth.json)."),
    out: Optional[str] = typer.Option(None, "--out", help="Also write the comparison as JSON."),
    min_area_nm2: float = typer.Option(25.0, "--min-area-nm2", help="Compare projected regions at least this large."),
) -> None:
    """Compare a STEM analysis with the truth of the simulated image, region by region."""
    from rich.table import Table

    from nanodomains.stem.validation import compare_files, region_table

    val = compare_files(analysis, truth, min_area_nm2=min_area_nm2)
    t = Table(title=f"{val.n_domains_found} domain(s) found, {val.n_regions_compared} truth region(s) "
                    f">= {min_area_nm2:g} nm2")
    for col in ("region", "model domains", "area nm2", "found", "IoU", "a (pm)", "truth a", "Br", "truth Br"):
        t.add_column(col, justify="right")
    for r in region_table(val):
        t.add_row(str(r["region"]), ",".join(str(k) for k in r["model_domains"]), f"{r['area_nm2']:.1f}",
                  r["found_as"] or "-", f"{r['iou']:.3f}", _fmt(r["lattice_pm"], ".2f"),
                  _fmt(r["lattice_pm_truth"], ".2f"), _fmt(r["br_fraction"], ".3f"), _fmt(r["br_fraction_truth"], ".3f"))
    console.print(t)
    console.print(f"RP boundaries (edge-on, between compared regions): {len(val.rp_truth)} in the truth, "
                  f"{len(val.rp_truth) - len(val.rp_missed)} found" +
                  (f"; missed {[list(p) for p in val.rp_missed]}" if val.rp_missed else ""))
    failed = val.comparison.failures
    console.print(f"fields within tolerance: {'all' if not failed else ', '.join(r.path for r in failed) + ' FAIL'}")
    if out:
        val.to_json(out)
        console.print(f"wrote {out}")

# ---- pl ---------------------------------------------------------------------


@pl_app.command("simulate")
def pl_simulate(
    nc_json: Optional[str] = typer.Argument(None, help="NC model JSON (or use --preset)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="fig4_doublet, fig4_triplet, fig4_charging, fig5a-d."),
    out: str = typer.Option(..., "--out", help="Output movie (.nc); the truth goes to NAME.truth.json."),
    seed: int = typer.Option(1, "--seed", help="Random seed (dynamics, noise)."),
    frames: int = typer.Option(120, "--frames", help="Number of frames."),
    frame_s: float = typer.Option(1.0, "--frame-s", help="Exposure per frame (s)."),
    figure: Optional[str] = typer.Option(None, "--figure", help="Also write a PNG like the seed's figures."),
) -> None:
    """Simulate a 4 K PL spectral movie (time x wavelength) with its truth sidecar."""
    from rich.table import Table

    from nanodomains.optics.movies import save_movie
    from nanodomains.optics.presets import movie_from, plot_preset

    movie, truth = movie_from(nc_json, preset, seed=seed, n_frames=frames, frame_s=frame_s)
    path, tpath = save_movie(movie, truth, out)
    if figure:
        plot_preset(movie, truth, path=figure)
    t = Table(title=f"{preset or nc_json}: {movie.sizes['time']} frames x {movie.sizes['wavelength']} px")
    for col in ("id", "kind", "center nm", "FSS ueV", "on (s)", "counts/frame", "SNR"):
        t.add_column(col, justify="right")
    for e in truth.emitters:
        t.add_row(e.id, e.kind, f"{float(e.center_nm):.3f}", f"{float(e.fss_uev):.0f}",
                  f"{e.on_time_s:.0f}", f"{float(e.mean_counts):.0f}", f"{e.peak_snr:.0f}")
    console.print(t)
    console.print(f"wrote {path} and {tpath}" + (f" and {figure}" if figure else ""))



@pl_app.command("analyze")
def pl_analyze(
    movie: str = typer.Argument(..., help="PL movie: .sif, .spe, .csv/.txt, .nc or .hspy (time x wavelength)."),
    out: str = typer.Option(..., "--out", help="Output directory (emitters.json, correlations.csv, overview.png)."),
    snr: float = typer.Option(5.0, "--snr", help="Peak detection threshold (height / noise sd)."),
    profile: str = typer.Option("lorentzian", "--profile", help="Line shape: lorentzian | voigt."),
    instrument_sigma_nm: Optional[float] = typer.Option(None, "--instrument-sigma-nm", help="Voigt: fixed Gaussian sd (nm)."),
    resolution_nm: Optional[float] = typer.Option(None, "--resolution-nm", help="Voigt with the spectrometer's Gaussian FWHM (nm)."),
    frame_time_s: Optional[float] = typer.Option(None, "--frame-time-s", help="Frame period for files without timing."),
    bad_frames: str = typer.Option("raise", "--bad-frames", help="NaN/inf frames: raise | drop (dropped frames are recorded)."),
    window_s: float = typer.Option(10.0, "--window-s", help="Sliding correlation window (s)."),
    surrogates: int = typer.Option(999, "--surrogates", help="Surrogates per correlation test."),
    seed: int = typer.Option(0, "--seed", help="Seed of the surrogate tests."),
    laser_nm: Optional[float] = typer.Option(None, "--laser-nm", help="Excitation laser (nm); default: the file header's, if any."),
    no_file_laser: bool = typer.Option(False, "--no-file-laser", help="Ignore the laser wavelength in the file header."),
    laser_halfwidth_nm: float = typer.Option(1.0, "--laser-halfwidth-nm", help="Half-width excluded around the laser (nm)."),
    range_nm: Optional[str] = typer.Option(None, "--range-nm", help="Analyse only LO,HI (nm)."),
    exclude_nm: list[str] = typer.Option([], "--exclude-nm", help="Exclude LO,HI (nm); repeatable."),
    multiple_testing: str = typer.Option("bh", "--multiple-testing", help="Pair verdict correction: bh | holm | none."),
) -> None:
    """Find emitters, fine structure, on/off/charged intervals and correlations in a PL movie.

    The laser line and excluded ranges are dropped; saturated pixels, Raman, static and
    broad lines, broad bands and sets of lines never on are reported, not made emitters."""
    from rich.table import Table

    from nanodomains.spectroscopy.io import load_movie
    from nanodomains.spectroscopy.movie_analysis import analyze_movie

    if bad_frames not in ("raise", "drop"):
        raise InputError(f"--bad-frames must be 'raise' or 'drop', got {bad_frames!r}")
    if resolution_nm is not None:
        if instrument_sigma_nm is not None:
            raise InputError("give --resolution-nm (FWHM) or --instrument-sigma-nm (sd), not both")
        if not resolution_nm > 0:
            raise InputError(f"--resolution-nm must be > 0, got {resolution_nm}")
        profile, instrument_sigma_nm = "voigt", resolution_nm / 2.3548200450309493
    mv = load_movie(movie, frame_time_s=frame_time_s, bad_frames=bad_frames)
    check_movie(mv, movie)
    res = analyze_movie(mv, snr_min=snr, profile=profile, instrument_sigma_nm=instrument_sigma_nm,
                        window_s=window_s, n_surrogates=surrogates, seed=seed, laser_nm=laser_nm,
                        use_file_laser=not no_file_laser, laser_halfwidth_nm=laser_halfwidth_nm,
                        range_nm=_nm_range(range_nm, "--range-nm") if range_nm else None,
                        exclude_nm=tuple(_nm_range(x, "--exclude-nm") for x in exclude_nm),
                        resolution_nm=resolution_nm, multiple_testing=multiple_testing)
    paths = res.write(out)
    _print_pl_result(movie, mv, res)
    console.print("wrote " + ", ".join(str(v) for v in paths.values()))


@app.command()
def infer(
    emitters: str = typer.Argument(..., help="emitters.json of one NC (from `pl analyze`): centres and FSS with stderr."),
    out: str = typer.Option(..., "--out", help="Output folder (inference.json, posterior.nc, corner.png, predictive.png)."),
    stem: Optional[str] = typer.Option(None, "--stem", help="STEM domains.json of the same kind of NC: composition/size prior."),
    steps: int = typer.Option(10000, "--steps", help="emcee steps per walker (40 % burn-in)."),
    walkers: Optional[int] = typer.Option(None, "--walkers", help="emcee walkers (default max(32, 4 x parameters))."),
    nc_edge_nm: str = typer.Option("10,20", "--nc-edge-nm", help="Prior on the NC's lateral edge LO,HI (nm); seed: 10-20."),
    bowing_ev: str = typer.Option("-0.10,0.35", "--bowing-ev", help="Prior on the gap bowing LO,HI (eV)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampler."),
) -> None:
    """Posterior over the composition and size of every emitting domain (and the shared bowing).

    Bayesian inverse of the level model with emcee; the size/composition degeneracy shows
    as wide, correlated intervals (corner.png). See docs/inference.md."""
    from nanodomains.spectroscopy import inference as inf

    edge, bow = _float_list(nc_edge_nm, "--nc-edge-nm"), _float_list(bowing_ev, "--bowing-ev")
    if len(edge) != 2 or len(bow) != 2:
        raise InputError("--nc-edge-nm and --bowing-ev take LO,HI")
    priors = inf.InferencePriors(nc_edge_nm=(edge[0], edge[1]), bowing_ev=(bow[0], bow[1]))
    settings = inf.InferenceSettings(n_steps=steps, n_walkers=walkers, seed=seed)  # 4 K lines
    rec = inf.load_emitters(emitters)
    stem_rec = inf.load_stem_domains(stem) if stem else None
    with console.status("sampling the posterior ...") as status:
        def progress(i, n):
            status.update(f"sampling the posterior: step {i}/{n}")
        run = inf.infer_emitters(rec, stem=stem_rec, priors=priors, settings=settings, source=emitters,
                                 progress=progress)
    paths = inf.write_inference(run, out)
    _print_inference(run.record)
    console.print("wrote " + ", ".join(str(v) for v in paths.values()))


def _print_inference(rec) -> None:
    from rich.table import Table

    table = Table(title="Emitting domains (posterior mean +- sd, 90 % interval)")
    for col in ("emitter", "kind", "centre (nm)", "Br fraction", "f 90 %", "thickness (nm)", "t 90 %", "corr(f,t)"):
        table.add_column(col)
    for d in rec.domains:
        table.add_row(d.emitter_id, d.kind, _fmt(d.measured_center_nm.value, ".2f"), str(d.br_fraction),
                      f"{d.br_fraction_ci90[0]:.2f}-{d.br_fraction_ci90[1]:.2f}", str(d.thickness_nm),
                      f"{d.thickness_nm_ci90[0]:.1f}-{d.thickness_nm_ci90[1]:.1f}",
                      _fmt(d.size_composition_corr, ".2f"))
    console.print(table)
    console.print(f"bowing {rec.bowing_ev} eV (90 %: {rec.bowing_ev_ci90[0]:.2f}-{rec.bowing_ev_ci90[1]:.2f}); "
                  f"NC edge {rec.nc_edge_nm} nm; gap offset {rec.gap_offset_ev} eV; "
                  f"sampler: acceptance {rec.sampler['acceptance_fraction']}, n_eff {rec.sampler['n_effective']}, "
                  f"{rec.elapsed_s} s")
    _print_warnings(rec.warnings)


def _nm_range(text: str, option: str) -> tuple[float, float]:
    """``"LO,HI"`` -> (lo, hi) in nm, lo < hi."""
    vals = _float_list(text, option)
    if len(vals) != 2 or not vals[0] < vals[1]:
        raise InputError(f"{option} takes LO,HI in nm with LO < HI, got {text!r}")
    return vals[0], vals[1]


def _print_pl_result(name: str, mv, res) -> None:
    """Timing, warnings, the emitter table, the lines that are not emitters, the couplings."""
    from rich.table import Table

    meta = res.meta
    timed = meta.get("time_units") == "s"
    console.print(f"timing: {meta.get('time_source')}" + (f"; exposure {meta['exposure_s']:g} s" if meta.get("exposure_s") else ""),
                  highlight=False, soft_wrap=True)
    for w in res.record.warnings:
        err_console.print(f"[yellow]warning[/]: {w}", highlight=False, soft_wrap=True)
    unit = "s" if timed else "frames"
    t = Table(title=f"{name}: {mv.sizes['time']} frames x {mv.sizes['wavelength']} px, {len(res.emitters)} emitters")
    for col in ("id", "kind", "center nm", "lines nm", "FSS ueV", "FWHM ueV", f"on ({unit})", "counts/frame"):
        t.add_column(col, justify="right")
    for e in res.emitters:
        fss = str(e.fss_uev) if e.kind in ("doublet", "triplet") else "-"
        t.add_row(e.id, e.kind + (f" of {e.trion_of}" if e.trion_of else ""), f"{float(e.center_nm):.3f}",
                  " ".join(f"{x:.3f}" for x in e.lines_nm), fss, f"{float(e.linewidth_uev):.0f}",
                  f"{e.on_time_s:.0f}", f"{float(e.mean_counts):.0f}")
    console.print(t)
    others = meta.get("not_emitters") or []
    if others:
        o = Table(title="lines that are not emitters")
        for col in ("center nm", "class", "why"):
            o.add_column(col, justify="right" if col == "center nm" else "left")
        for x in others:
            o.add_row(f"{x['center_nm']:.3f}", x["class"], x["reason"])
        console.print(o)
    for p in res.pairs:
        if p.verdict != "independent" or p.relation:
            console.print(f"{p.a}-{p.b}: {p.verdict}" + (f" ({p.relation})" if p.relation else "")
                          + f", r = {p.pearson_r:.2f} (p = {p.pearson_p:.3g}, {p.multiple_testing} q = {p.pearson_q:.3g})")


def check_movie(mv, source: str) -> None:
    """A PL movie's physics sanity: wavelengths in (0, 100 um], monotonic; some counts above 0
    (a camera may read below zero after its offset, but not everywhere)."""
    check_axis(mv["wavelength"].values, f"{source}: wavelength", "nm", 0.0, 1e5)
    check_counts(mv.values, f"{source}: movie", camera_offset=True)


@pl_app.command("population")
def pl_population(
    source: str = typer.Argument(..., help="Folder of movies (with <stem>.ptu/.npz, <stem>_decay.txt) or a CSV/YAML manifest."),
    out: str = typer.Option(..., "--out", help="Output directory (population.csv, population_emitters.csv, population.json, population.png)."),
    g2_mode: str = typer.Option("pulsed", "--g2-mode", help="g2 normalisation for photon files: pulsed | cw."),
) -> None:
    """Table S2: sets of peaks per NC, wavelengths, FSS, linewidths, g2(0), lifetimes."""
    from rich.progress import Progress

    from nanodomains.spectroscopy.population import analyze_population, find_population

    if g2_mode not in ("pulsed", "cw"):
        raise InputError(f"--g2-mode must be 'pulsed' or 'cw', got {g2_mode!r}")
    n = len(find_population(source))
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("NCs", total=n)
        res = analyze_population(source, g2_options={"mode": g2_mode}, progress=lambda _: bar.advance(task))
    paths = res.write(out)
    s = res.summary()
    console.print(f"{s['n_analysed']} NCs analysed ({s['n_failed']} failed): {s['several_sets']} with several "
                  f"sets of peaks, {s['one_set']} with one; sets per NC {s['sets_per_nc']}")
    for row in res.rows:
        if row["status"] != "ok":
            err_console.print(f"[red]{row['nc']}[/]: {row['error']}", highlight=False, soft_wrap=True)
    console.print("wrote " + ", ".join(str(p) for p in paths.values()))


# ---- photons ----------------------------------------------------------------
# (`photons simulate` of the optical forward model goes here too.)


@photons_app.command("simulate")
def photons_simulate(
    nc_json: Optional[str] = typer.Argument(None, help="NC model JSON (or use --preset)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="fig4_doublet, fig4_triplet, fig4_charging, fig5a-d."),
    mode: str = typer.Option("pulsed", "--mode", help="Excitation: pulsed (T3 records) or cw (T2)."),
    out: str = typer.Option(..., "--out", help="Output .ptu (PicoQuant, HydraHarp v2) or .npz; truth in NAME.truth.json."),
    seed: int = typer.Option(1, "--seed", help="Random seed."),
    duration_s: float = typer.Option(10.0, "--duration-s", help="Acquisition time (s)."),
    efficiency: float = typer.Option(0.01, "--efficiency", help="System detection efficiency per photon."),
    emitter: Optional[str] = typer.Option(None, "--emitter", help="Band-pass filter on one emitter, e.g. D0-X."),
    t2: bool = typer.Option(False, "--t2", help="Pulsed: write T2 records instead of T3."),
) -> None:
    """Simulate HBT photon time tags (two detectors behind a 50:50 splitter) with their truth."""
    import numpy as np

    from nanodomains.optics.presets import photons_from, write_photon_file

    if mode not in ("pulsed", "cw"):
        raise InputError(f"--mode must be 'pulsed' or 'cw', got {mode!r}")
    sim = photons_from(nc_json, preset, mode=mode, seed=seed, duration_s=duration_s, efficiency=efficiency,
                       emitter=emitter, t3=False if t2 else None)
    path, tpath = write_photon_file(sim, out)
    counts = np.bincount(sim.channels, minlength=2) if sim.n_photons else [0, 0]
    _print_facts(f"{preset or nc_json} ({mode})", {
        "photons": sim.n_photons, "channel 0": int(counts[0]), "channel 1": int(counts[1]),
        "duration_s": sim.duration_s, "expected g2(0)": float(sim.truth.g2.g2_0),
        "records": "T3" if sim.microtimes_ps is not None else "T2", "filtered to": emitter or "-",
    })
    console.print(f"wrote {path} and {tpath}")

def _nan_if_none(value) -> float:
    return float("nan") if value is None else float(value)


def _print_warnings(warnings) -> None:
    """Reader and analysis warnings, one line each, on stderr."""
    for w in dict.fromkeys(warnings or ()):
        err_console.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)


def _print_facts(title: str, facts: dict) -> None:
    from rich.table import Table

    table = Table(title=title, show_header=False)
    for key, value in facts.items():
        if isinstance(value, float):
            value = f"{value:.6g}"
        elif isinstance(value, list):
            value = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in value)
        elif isinstance(value, dict):
            value = ", ".join(f"{k}: {v:.6g}" if isinstance(v, float) else f"{k}: {v}" for k, v in value.items())
        table.add_row(key, str(value))
    console.print(table)


@photons_app.command("info")
def photons_info(
    file: str = typer.Argument(..., help="Photon file: PTU, HT2/HT3, PT2/PT3, T3R, B&H SPC, Photon-HDF5, "
                                         "Full_SMS HDF5 or project .npz (type read from the file's bytes)."),
) -> None:
    """Print facts about a photon stream (format, mode, photons per channel, rates, duration)."""
    from nanodomains.timetags import photon_file_summary

    facts = photon_file_summary(file)
    warnings = facts.pop("warnings", [])
    _print_facts(file, facts)
    _print_warnings(warnings)


@photons_app.command("g2")
def photons_g2(
    file: str = typer.Argument(..., help="Photon file (any format of `photons info`) or a processed g2 curve "
                                         "(text: tau_ns, counts)."),
    out: str = typer.Option(..., "--out", help="Output directory for g2.csv, g2.json, g2.png."),
    channels: tuple[int, int] = typer.Option((0, 1), "--channels", help="Start and stop channel."),
    bin_ns: float = typer.Option(0.1, "--bin-ns", help="Bin width in ns (whole ps)."),
    window_ns: float = typer.Option(500.0, "--window-ns", help="Histogram half range in ns."),
    mode: str = typer.Option("pulsed", "--mode", help="Normalisation: pulsed (peak areas) or cw."),
    period_ns: Optional[float] = typer.Option(None, "--period-ns", help="Pulse period (default: sync or estimated)."),
    offset_ns: Optional[float] = typer.Option(None, "--offset-ns", help="Delay of the zero peak (default: estimated)."),
    gate_ns: Optional[tuple[float, float]] = typer.Option(None, "--gate-ns", help="Micro-time gate LO HI in ns (T3)."),
) -> None:
    """g2(tau) and g2(0) with uncertainty; writes DIR/g2.csv (tau_ns, counts, g2) and DIR/g2.json."""
    from pathlib import Path

    from nanodomains.spectroscopy import g2 as g2mod

    if mode not in ("pulsed", "cw"):
        raise InputError(f"--mode must be 'pulsed' or 'cw', got {mode!r}")
    # the histogram and its work arrays: ~4 int64/float64 arrays of 2 window / bin bins
    require_memory(4 * 8 * (2 * window_ns / bin_ns + 1), f"a g2 histogram of +-{window_ns:g} ns in {bin_ns:g} ns bins")
    from nanodomains.timetags import identify_file, iter_photon_chunks

    kind = identify_file(file)
    if kind.is_time_tags:
        reader_warnings: list[str] = []

        def chunks():  # keeps the reader's warnings (the last chunk carries them all)
            for chunk in iter_photon_chunks(file):
                reader_warnings[:] = chunk.warnings
                yield chunk

        result = g2mod.compute_g2(
            chunks(),
            channels=channels,
            bin_ns=bin_ns,
            window_ns=window_ns,
            mode=mode,
            period_ns=period_ns,
            offset_ns=offset_ns,
            microtime_gate_ns=gate_ns,
        )
        if reader_warnings:
            result = result.model_copy(update={"warnings": tuple(result.warnings) + tuple(reader_warnings)})
    elif kind.kind == "text":
        if mode != "pulsed":
            raise InputError(f"{file}: a processed g2 curve is analysed by pulsed peak areas only (--mode pulsed)")
        tau, counts, _ = g2mod.read_g2_text(file)
        result = g2mod.g2_from_peak_areas(tau, counts, period_ns=period_ns, offset_ns=offset_ns, source=file)
    else:
        raise InputError(f"{file}: {kind.description} holds no photon time tags for g2")
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    g2mod.write_g2_csv(result, out_dir / "g2.csv")
    result.to_json(out_dir / "g2.json")
    g2mod.plot_g2(result, out_dir / "g2.png")
    facts = _record_facts(result)
    facts.pop("side_peak_areas", None)
    facts.pop("warnings", None)
    _print_facts(f"g2 of {file}", facts)
    _print_warnings(result.warnings)


def _record_facts(record) -> dict:
    """A record's scalar fields for :func:`_print_facts` (empty values left out)."""
    return {k: v for k, v in record.flat().items() if v not in (None, [], (), "")}


def _warn_if_unterminated(path) -> None:
    """A text histogram whose last line has no line end may be truncated: say so."""
    from pathlib import Path

    from nanodomains.timetags import identify_file

    p = Path(str(path)) if path else None
    if p is None or not p.is_file() or identify_file(p).kind != "text":
        return
    with open(p, "rb") as fh:
        fh.seek(max(0, p.stat().st_size - 1))
        last = fh.read(1)
    if last not in (b"\n", b"\r", b""):
        err_console.print(f"[yellow]warning:[/yellow] {p} does not end with a line end: the file may be "
                          "truncated (its last bin is read as it stands)", highlight=False, soft_wrap=True)


def _checked_irf(irf):
    """An IRF that can be fitted: counts that make sense, >= 16 bins, its peak inside (not truncated)."""
    import numpy as np

    counts = check_counts(irf.counts, f"IRF {irf.source}" if getattr(irf, "source", None) else "IRF")
    if counts.size < 16:
        raise InputError(f"IRF: {counts.size} bins; an IRF needs at least 16 to be sampled across its peak")
    k = int(np.argmax(counts))
    if k in (0, counts.size - 1):
        raise InputError(f"IRF: its maximum lies in the {'first' if k == 0 else 'last'} bin: the IRF is truncated")
    return irf


@photons_app.command("lifetime")
def photons_lifetime(
    file: str = typer.Argument(..., help="T3 photon file (any format of `photons info`) or decay histogram "
                                         "(PHU, PHD, text: time ns, counts); type read from the file's bytes."),
    out: str = typer.Option(..., "--out", help="Output directory for lifetime.json and lifetime.png."),
    irf: Optional[str] = typer.Option(None, "--irf", help="Measured IRF (same formats); without it a tail fit."),
    n_exp: int = typer.Option(1, "--n-exp", help="Number of exponentials (1-3)."),
    channel: Optional[int] = typer.Option(None, "--channel", help="Detector channel of a T3 file (default all)."),
    period_ns: Optional[float] = typer.Option(None, "--period-ns", help="Excitation period for the pile-up term."),
    start_ns: Optional[float] = typer.Option(None, "--start-ns", help="First time fitted."),
    stop_ns: Optional[float] = typer.Option(None, "--stop-ns", help="Last time fitted."),
    curve: int = typer.Option(0, "--curve", help="Histogram index in a PHU/PHD file."),
    compare: bool = typer.Option(True, "--compare/--no-compare",
                                 help="Also fit 1 and 2 exponentials on the same bins (AIC/BIC, runs test)."),
) -> None:
    """Fit lifetimes by Poisson maximum likelihood (IRF reconvolution, or tail fit without IRF).

    Reports goodness (reduced deviance, runs test of the residuals) and, by default, the
    one- and two-exponential fits side by side with AIC/BIC; warns when one exponential
    is inadequate. The tail-fit start rule is printed and drawn in lifetime.png.
    """
    from pathlib import Path

    from nanodomains.spectroscopy import lifetime as lt

    if irf is None and period_ns is not None:
        raise InputError("--period-ns applies to IRF reconvolution fits (give --irf)")
    decay = lt.load_decay(file, channel=channel, curve=curve)
    irf = _checked_irf(lt.load_decay(irf)) if irf is not None else None
    for text_file in (file, irf and irf.source):
        _warn_if_unterminated(text_file)
    check_counts(decay.counts, f"{file}: decay")
    result = lt.fit_lifetime(decay, irf, n_exp=n_exp, start_ns=start_ns, stop_ns=stop_ns, period_ns=period_ns,
                             compare=compare)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    result.to_json(out_dir / "lifetime.json")
    lt.plot_lifetime(result, out_dir / "lifetime.png")
    facts = {f"tau_ns[{i}]": str(c.tau_ns) for i, c in enumerate(result.components)}
    facts.update({k: v for k, v in _record_facts(result).items() if not k.startswith("comparison")})
    for m in result.comparison:
        facts[f"{m.n_exp} exp"] = (" / ".join(str(x) for x in m.tau_ns) + f" ns; reduced deviance "
                                   f"{m.reduced_deviance:.3g}, BIC {m.bic:.1f}, runs p {_nan_if_none(m.runs_test_p):.2g}")
    _print_facts(f"lifetime of {file}", facts)
    _print_warnings(result.warnings)


# ---- pipeline (demo, batch) -------------------------------------------------


@app.command()
def demo(
    out: str = typer.Option("demo_out", "--out", help="Output directory."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    crystals: int = typer.Option(130, "--crystals", help="NCs in the grown population (seed study: ~130)."),
    stages: Optional[str] = typer.Option(None, "--stages", help="Comma-separated subset of stages "
                                         "(structure,growth,migration,stem,pl,photons); default all."),
) -> None:
    """Run the seed study end to end on embedded defaults (grows as capabilities land).

    The outputs appear in --out only when the run has ended (written in a staging
    folder and swapped in whole); run.json records each stage's status and the files."""
    from nanodomains.pipeline.demo import run_demo

    with console.status("demo") as status:
        summary = run_demo(out, seed=seed, n_crystals=crystals,
                           progress=lambda stage: status.update(f"demo: {stage}"),
                           stages=[v.strip() for v in stages.split(",") if v.strip()] if stages else None)
    fig1 = summary["stages"].get("structure", {}).get("paper_fig1")
    if fig1:
        _print_nc_table(fig1, [d.get("name", str(d["id"])) for d in fig1["domains"]])
    from rich.table import Table

    t = Table(title="recovered vs truth vs seed study")
    for col in ("quantity", "value", "+-", "truth", "paper"):
        t.add_column(col, justify="right")

    def cell(v):  # numbers to 4 significant digits, text as is
        return "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))

    for row in summary["comparisons"]:
        t.add_row(row["quantity"], cell(row["value"]), cell(row["error"]), cell(row["truth"]), cell(row["paper"]))
    console.print(t)
    failed = {k: v["error"] for k, v in summary["stages"].items() if isinstance(v, dict) and "error" in v}
    for name, why in failed.items():
        err_console.print(f"[red]stage {name} failed:[/red] {why}", highlight=False, soft_wrap=True)
    console.print(f"demo finished in {summary['elapsed_s']:.1f} s; outputs in {out}/ (summary.json)")
    if failed:  # the other stages' outputs are kept; run.json says "partial"
        err_console.print(f"demo incomplete: {len(failed)} stage(s) failed ({', '.join(failed)}); "
                          "run.json marks the run partial", highlight=False)
        raise typer.Exit(1)


@app.command()
def batch(
    manifest: str = typer.Argument(..., help="CSV or YAML manifest (path, optional id, kind, options)."),
    out: str = typer.Option(..., "--out", help="Output directory (items/, batch.parquet, report.html)."),
    workers: int = typer.Option(2, "--workers", help="LocalCluster worker processes (0: in-process)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Address of an existing Dask scheduler."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Rerun items that failed before."),
) -> None:
    """Run analyses or simulations over a manifest on Dask; rerun skips finished items."""
    from rich.progress import Progress

    from nanodomains.pipeline.batch import read_manifest, run_batch

    n = len(read_manifest(manifest))
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("batch", total=n)

        def tick(rec):
            bar.advance(task)
            if rec["status"] != "ok":
                err_console.print(f"[red]{rec['id']}[/]: {rec.get('error_type')}: {rec.get('error')}",
                                  highlight=False, soft_wrap=True)

        records = run_batch(manifest, out, workers=workers, scheduler=scheduler, progress=tick,
                            retry_failed=retry_failed)
    n_ok = sum(r["status"] == "ok" for r in records)
    n_err = sum(r["status"] == "error" for r in records)
    console.print(f"{n_ok} ok, {n_err} failed of {len(records)}; table {out}/batch.parquet, report {out}/report.html")
    if n_ok < len(records):  # any failed (or unrun) item: a non-zero status, after the summary
        raise typer.Exit(1)


# ---- the entry point: range checks, signals, one-line errors ---------------------

#: commands whose --out is a folder (the others write one file)
FOLDER_OUTPUTS = {"grow", "migrate", "infer", "stem analyze", "stem validation-images", "pl analyze", "pl population", "photons g2",
                  "photons lifetime", "demo", "batch"}
#: parameters that name one input file (a folder there is an error, not "no such file")
FILE_INPUTS = ("file", "image", "movie", "model", "manifest", "nc_json", "irf", "table", "eds", "truth", "emitters",
               "stem")


def _check_paths(command_path: str, params: dict) -> None:
    """Shared path checks: an input file that is a folder, an --out of the wrong kind."""
    from pathlib import Path

    from nanodomains.errors import FileFormatError

    for name in FILE_INPUTS:
        value = params.get(name)
        if isinstance(value, str) and Path(value).is_dir():
            raise FileFormatError(f"{value}: is a folder, expected a file")
    out = params.get("out")
    if isinstance(out, str):
        p = Path(out)
        if command_path in FOLDER_OUTPUTS:
            if p.exists() and not p.is_dir():
                raise FileFormatError(f"--out {out}: is a file, expected a folder")
        elif p.is_dir():
            raise FileFormatError(f"--out {out}: is a folder, expected a file name")
        for parent in p.absolute().parents:  # the nearest existing ancestor must be a writable folder
            if parent.exists():
                if not parent.is_dir():
                    raise FileFormatError(f"--out {out}: {parent} is a file, not a folder")
                _require_writable(parent, out)
                break


def _require_writable(folder, out: str) -> None:
    """Try to create a file in ``folder`` (permission bits do not tell for root or /proc)."""
    import tempfile

    from nanodomains.errors import FileFormatError

    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".nanodomains-probe-"):
            pass
    except OSError as exc:
        raise FileFormatError(f"--out {out}: {folder} is not writable ({exc.strerror or exc})") from None


def _with_range_checks(command_path: str, callback):
    """``callback`` that first checks its parameters against :data:`nanodomains.limits.RANGES`
    and the shared path rules (:func:`_check_paths`)."""
    import functools

    from nanodomains.limits import check_params

    @functools.wraps(callback)
    def checked(*args, **kwargs):
        check_params(command_path, kwargs)
        _check_paths(command_path, kwargs)
        return callback(*args, **kwargs)

    return checked


def cli_command(argv=None):
    """The Click command of the app, every leaf command wrapped with its range checks."""
    import typer.main

    root = typer.main.get_command(app)

    def wrap(cmd, path):
        for name, sub in getattr(cmd, "commands", {}).items():
            full = f"{path} {name}".strip()
            if getattr(sub, "commands", None):
                wrap(sub, full)
            elif sub.callback is not None:
                sub.callback = _with_range_checks(full, sub.callback)

    wrap(root, "")
    return root


def _quiet_library_logs() -> None:
    """Library log records (ptufile's "tag index out of order", ...) below ERROR stay off stderr;
    what a user must know reaches them as the command's own warning or error."""
    import logging

    logging.basicConfig(level=logging.ERROR, format="%(name)s: %(message)s")
    logging.captureWarnings(False)


def _interrupted(signum: int) -> int:
    import signal as _signal

    name = {_signal.SIGINT: "Ctrl-C", _signal.SIGTERM: "SIGTERM"}.get(signum, _signal.Signals(signum).name)
    err_console.print(f"interrupted ({name}): finished outputs are complete, partial ones were removed; "
                      "rerun to complete the rest", highlight=False, soft_wrap=True)
    return 128 + int(signum)


# ---- atomistic energy model: NEB barrier table, MD check (issue 15) ---------------

atomistic_app = typer.Typer(help="Atomistic energy model (CHGNet via ASE): NEB barriers, MD check.",
                            no_args_is_help=True)
app.add_typer(atomistic_app, name="atomistic")


@atomistic_app.command("barriers")
def atomistic_barriers(
    out: str = typer.Option("barriers.json", "--out", help="Barrier table JSON (parts in <out>.parts/)."),
    calculator: str = typer.Option("chgnet", "--calculator", help="Energy model (chgnet)."),
    paths: Optional[str] = typer.Option(None, "--paths", help="Comma-separated path names (default: all)."),
    sites: bool = typer.Option(True, "--sites/--no-sites", help="Vacancy site energies near the fault."),
    faults: str = typer.Option("0,0.4,0.5,1", "--faults", help="Br fractions for RP fault energies ('' none)."),
    fmax: float = typer.Option(0.05, "--fmax", help="NEB convergence, max force eV/A."),
    n_images: int = typer.Option(5, "--images", help="Intermediate NEB images."),
    workers: int = typer.Option(1, "--workers", help="Dask worker processes (one torch thread each)."),
) -> None:
    """Compute (or resume) the barrier table by CI-NEB; failed paths are listed, never defaulted."""
    from nanodomains.migration.barriers import build_barrier_table

    names = [p.strip() for p in paths.split(",") if p.strip()] if paths else None
    fracs = tuple(_float_list(faults, "--faults")) if faults.strip() else ()
    table = build_barrier_table(out, calculator=calculator, paths=names, sites=sites, faults=fracs, fmax=fmax,
                                n_images=n_images, workers=workers,
                                command="nanodomains atomistic barriers " + " ".join(sys.argv[3:]))
    _print_barrier_table(table)
    console.print(f"table written to {out}")


def _print_barrier_table(table) -> None:
    from rich.table import Table

    t = Table(title=f"vacancy barriers ({table.model})")
    for c in ("path", "env", "Br frac", "Ea (eV)", "reverse (eV)", "nu (THz)", "converged", "calls", "wall s"):
        t.add_column(c)
    for p in table.paths:
        t.add_row(p.name, p.environment, f"{p.local_br_fraction:.2f}", str(p.barrier_ev), str(p.reverse_barrier_ev),
                  str(p.attempt_frequency_thz or "n/a"), str(p.converged), str(p.force_calls), f"{p.wall_s:.0f}")
    console.print(t)
    for name, reason in table.not_computed.items():
        err_console.print(f"not computed: {name}: {reason}", highlight=False, soft_wrap=True)


@atomistic_app.command("md")
def atomistic_md(
    out: str = typer.Option("md_check.json", "--out", help="MDCheck record JSON (trajectory beside it, .npz)."),
    calculator: str = typer.Option("chgnet", "--calculator", help="Energy model (chgnet)."),
    halide: str = typer.Option("I", "--halide", help="Vacancy species: I (CsPbI3 cell) or Br (CsPbBr3)."),
    temperature: float = typer.Option(500.0, "--temperature", help="K."),
    time_ps: float = typer.Option(10.0, "--time-ps", help="Simulated time, ps."),
    timestep_fs: float = typer.Option(2.0, "--timestep-fs", help="fs."),
    table: Optional[str] = typer.Option(None, "--table", help="Barrier table (default: the shipped one)."),
    seed: int = typer.Option(1, "--seed"),
) -> None:
    """NVT MD of an RP supercell with two vacancies: hops against the table's rate law."""
    from pathlib import Path

    from nanodomains.migration.barriers import load_barrier_table
    from nanodomains.migration.md import md_check

    tab = load_barrier_table(table)

    def progress(step, n):
        if step % max(1, n // 20) < 10:
            console.print(f"MD step {step}/{n}", highlight=False)

    rec = md_check(calculator, halide=halide, temperature_k=temperature, time_ps=time_ps, timestep_fs=timestep_fs,
                   seed=seed, table=tab, progress=progress, out_npz=Path(out).with_suffix(".npz"))
    rec.to_json(out)
    console.print(f"{rec.n_hops} hops in {rec.time_ps:g} ps (expected {rec.expected_hops.value:.2f} from "
                  f"Ea {rec.bulk_barrier_ev} eV, nu {rec.attempt_frequency_thz} THz); fault crossings "
                  f"{rec.fault_crossings}; {rec.steps_per_s:.2f} MD steps/s; record {out}")


# ---- files users open directly: HyperSpy, ImageJ, xarray, pandas (issue 19) -------------


@app.command("export")
def export_cmd(
    input: str = typer.Argument(..., help="An output or image: .nc (image, movie, maps), .hspy, .tif/.dm4/.emd/..., "
                                "columns.csv/.parquet, domains.json/emitters.json (their items)."),
    output: str = typer.Argument(..., help="The file to write: .tif (ImageJ, calibrated), .hspy, .nc or .parquet."),
    variable: Optional[str] = typer.Option(None, "--variable", help="One variable of a netCDF Dataset "
                                           "(e.g. exx of gpa.nc), or the item list of a record (e.g. boundaries)."),
    pixel_size_pm: Optional[float] = typer.Option(None, "--pixel-size-pm", help="For images without calibration."),
) -> None:
    """Convert an output to a file HyperSpy, ImageJ/Fiji, xarray or pandas opens with its calibration."""
    from nanodomains.interop import EXPORT_SUFFIXES, export, read_output

    from pathlib import Path

    if Path(output).suffix.lower() not in EXPORT_SUFFIXES:  # before reading anything
        raise InputError(f"{output}: unknown export format {Path(output).suffix or '(no suffix)'!r}; "
                         f"use {', '.join(EXPORT_SUFFIXES)}")
    path = export(read_output(input, pixel_size_pm=pixel_size_pm, variable=variable), output)
    console.print(f"wrote {path} ({EXPORT_SUFFIXES[path.suffix.lower()]})", highlight=False)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: run the app, turn every expected failure into one line.

    Exit status: 0 done; 1 a batch with failed or unrun items or a demo with a failed stage; 2 bad input, an
    unreadable or unwritable file, or not enough memory (one ``error:`` line, nothing
    written); 130 Ctrl-C; 143 SIGTERM (one ``interrupted`` line; atomic writers leave
    no partial file). Click usage errors keep Click's own status (2).
    """
    import signal

    _quiet_library_logs()
    previous = install_interrupt_handlers()
    try:
        # non-standalone: an Exit (typer.Exit(1), Ctrl-C turned into Exit(130)) comes back as its code
        rv = cli_command().main(args=argv, prog_name="nanodomains", standalone_mode=False)
        code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
    except NanodomainsError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        return int(code or 0)
    except Terminated as exc:
        acknowledge_interrupt()
        return _interrupted(exc.signum)
    except (typer.Abort, KeyboardInterrupt) as exc:
        pending = acknowledge_interrupt()
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, Terminated):
            return _interrupted(cause.signum)
        return _interrupted(pending or signal.SIGINT)
    except MemoryError as exc:
        err_console.print(f"[bold red]error:[/] not enough memory ({exc}); "
                          "the step needs smaller parameters or inputs", highlight=False, soft_wrap=True)
        return 2
    except OSError as exc:  # the file system refused: one line naming the file
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        err_console.print(f"[bold red]error:[/] {where}{exc.strerror or exc}", highlight=False, soft_wrap=True)
        return 2
    except Exception as exc:  # click usage errors (typer's own click) come here in non-standalone mode
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            return exc.exit_code
        raise
    finally:
        pending = acknowledge_interrupt()  # an interrupt Python lost in a callback still counts
        restore_interrupt_handlers(previous)
    if pending is not None or code == 130:
        return _interrupted(pending or signal.SIGINT)
    return code


if __name__ == "__main__":
    sys.exit(main())

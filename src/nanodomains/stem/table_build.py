r"""Building column-intensity tables by frozen-phonon multislice (simulation).

Table (b) of :mod:`nanodomains.stem.tables`: abTEM frozen-phonon multislice
(:mod:`nanodomains.stem.multislice`) of a 2 x 2-cell periodic CsPbX3 slab, cubic with
the Vegard lattice constant, N cells thick along the beam, the last round(s N) cells
(exit side) translated by 1/2 a<111>. Halides are Br or I with exactly round(b n) Br
atoms per halide column of n sites, at random depths. One quarter of the cell,
[0, a/2]^2, is scanned on an m x m grid; by the projected mm symmetry it holds one
quarter of each column's a/2-square Voronoi cell, so a column's cross-section is
4 x (sum of its m/2 x m/2 block) x (a/2m)^2. ``intensity_err`` is the standard error
over the frozen-phonon configurations. s = 0 uses abTEM exit planes so one run gives
every thickness. Reading, checking and fitting tables stays in
:mod:`nanodomains.stem.tables` (which analysis imports; this module it must not).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import xarray as xr

from nanodomains import materials, seeds
from nanodomains.errors import InputError, require_in_range
from nanodomains.stem.multislice import MultisliceSettings, abtem_probe, frozen_phonon_source, scan_region
from nanodomains.stem.tables import (
    REGISTRY_SCHEMA,
    SITES,
    check_registry_table,
    check_table,
    table_axes,
    table_dataset,
    voronoi_site_integrals,
)

__all__ = ["cspbx3_slab", "multislice_table", "registry_slab", "registry_run", "registry_validation_image",
           "scan_points_per_cell", "voronoi_site_integrals", "registry_table", "assemble_registry_table",
           "validation_images", "VALIDATION_CASES", "fft_size"]


def cspbx3_slab(br_fraction: float, n_cells: int, n_shifted: int = 0, tile: int = 2, seed: int = 1):
    """Periodic cubic CsPbX3 slab, beam along z, the last ``n_shifted`` cells shifted by 1/2 a<111>.

    Atomic layers lie at z = (j + 1/2) a/2, j = 0, 1, ..., so slices of thickness a/2
    hold one layer each and the exit plane after N cells is after slice 2N - 1.

    Parameters
    ----------
    br_fraction : float
        Exactly ``round(b n)`` of the ``n`` halide sites of every halide column are Br,
        at random depths.
    n_cells, n_shifted : int
        Slab thickness and number of shifted cells at the exit side.
    tile : int
        In-plane repetition (tile x tile cells).
    seed : int

    Returns
    -------
    ase.Atoms
        Cell (tile a, tile a, (n_cells + 1/2) a).
    """
    from ase import Atoms

    b = require_in_range("br_fraction", br_fraction, 0.0, 1.0)
    if int(n_cells) < 1 or not (0 <= int(n_shifted) <= int(n_cells)):
        raise InputError(f"need n_cells >= 1 and 0 <= n_shifted <= n_cells, got {n_cells}, {n_shifted}")
    a = materials.lattice_constant_pm(b) / 100.0
    regular = {"Cs": [(0, 0, 0)], "Pb": [(0.5, 0.5, 0.5)], "X": [(0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)]}
    shifted = {el: [((u + 0.5) % 1.0, (v + 0.5) % 1.0, w + 0.5) for (u, v, w) in pos]
               for el, pos in regular.items()}
    k = np.arange(int(n_cells))
    is_shift = k >= int(n_cells) - int(n_shifted)
    sym, frac = [], []
    ti, tj = np.meshgrid(np.arange(tile), np.arange(tile), indexing="ij")
    for el in ("Cs", "Pb", "X"):
        for layer_set, mask in ((regular, ~is_shift), (shifted, is_shift)):
            for (u, v, w) in layer_set[el]:
                kk = k[mask]
                if kk.size == 0:
                    continue
                uu = (ti.ravel()[:, None] + u) + 0 * kk[None, :]
                vv = (tj.ravel()[:, None] + v) + 0 * kk[None, :]
                ww = (kk[None, :] + w) + 0 * ti.ravel()[:, None]
                frac.append(np.stack([uu.ravel(), vv.ravel(), ww.ravel()], axis=1))
                sym += [el] * uu.size
    frac = np.concatenate(frac)
    sym = np.array(sym)
    # exact Br count per halide column, random depths
    rng = seeds.rng(seed)
    xmask = sym == "X"
    key = np.round(frac[xmask, :2] * 2).astype(int)
    _, col = np.unique(key, axis=0, return_inverse=True)
    col = col.ravel()
    order = np.lexsort((rng.random(col.size), col))
    rank = np.empty(col.size, int)
    counts = np.bincount(col)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank[order] = np.arange(col.size) - starts[col[order]]
    n_br = np.round(b * counts).astype(int)
    sym[np.flatnonzero(xmask)] = np.where(rank < n_br[col], "Br", "I")
    pos = frac * a
    pos[:, 2] += a / 4
    return Atoms(symbols=list(sym), positions=pos, cell=[tile * a, tile * a, (int(n_cells) + 0.5) * a], pbc=True)


def _quarter_integrals(arr: np.ndarray, a_a: float) -> np.ndarray:
    """(..., m, m) quarter-cell scan -> (..., 3) cross-sections of Cs, PbX, X (A^2)."""
    m = arr.shape[-1]
    h = m // 2
    area = (a_a / 2 / m) ** 2
    cs = arr[..., :h, :h].sum(axis=(-2, -1))
    pbx = arr[..., h:, h:].sum(axis=(-2, -1))
    x = 0.5 * (arr[..., h:, :h].sum(axis=(-2, -1)) + arr[..., :h, h:].sum(axis=(-2, -1)))
    return 4 * area * np.stack([cs, pbx, x], axis=-1)


def multislice_table(br_fraction=(0.0, 0.5, 1.0), shifted_fraction=(0.0, 0.25, 0.5, 0.75),
                     thickness_cells=(8, 16, 24), settings=None, scan_points: int = 6, tile: int = 2,
                     seed: int = 1, progress: bool = True, compute_kwargs: dict | None = None,
                     check: bool = True) -> xr.Dataset:
    """Table (b): frozen-phonon multislice column cross-sections (see module docstring).

    Parameters
    ----------
    br_fraction, shifted_fraction : sequence of float in [0, 1]
        ``s N`` must be a whole number for every s and N.
    thickness_cells : sequence of int
    settings : MultisliceSettings, optional
        Default: 300 kV, 24 mrad, HAADF 70-190 mrad, 0.034 A, 8 configurations,
        slices of half a lattice constant are used when ``settings`` is None.
    scan_points : int
        Even number m of scan positions per axis over the quarter cell.
    tile : int
        In-plane supercell (tile x tile cells).
    seed : int
    progress : bool
        Print one line per run (rich) and abTEM's progress bars.
    compute_kwargs : dict, optional
        Passed to dask.
    check : bool
        Run :func:`check_table` on the result (False only to demonstrate what a
        table without frozen phonons looks like).

    Returns
    -------
    xarray.Dataset
        ``intensity`` and ``intensity_err`` (A^2), plus ``intensity_configs``
        (dims ``config``, ...), with all parameters as attributes.
    """
    b, s, n = table_axes(br_fraction, shifted_fraction, thickness_cells)
    n_shift = _shifted_cells(s, n, scan_points, tile)
    if settings is None:
        settings = MultisliceSettings()
    n_conf = int(settings.num_configs) if settings.frozen_phonons else 1
    out = np.full((b.size, s.size, n.size, n_conf, 3), np.nan)
    m = int(scan_points)
    log = _logger(progress)
    for ib, bb in enumerate(b):
        out[ib] = _composition_runs(bb, s, n, n_shift, settings, m, tile, seed, compute_kwargs, progress, log)
    mean = out.mean(axis=3)
    err = (out.std(axis=3, ddof=1) / math.sqrt(n_conf)) if n_conf > 1 else np.zeros_like(mean)
    attrs = {"method": "multislice", **settings.describe(), "slice_thickness_a": "a(b)/2, one atomic layer",
             "source_fwhm_pm": 0.0, "source_note": "no source blur applied (intensities are scan integrals)",
             "scan_points": m, "tile": int(tile),
             "seed": int(seed), "scan": "quarter cell [0, a/2]^2, column = 4 x quarter Voronoi block",
             "shifted_side": "exit", "structure": "cubic CsPbX3, Vegard lattice constant (cubic convention)"}
    ds = table_dataset(b, s, n, mean, err, attrs)
    ds["intensity_configs"] = (("br_fraction", "shifted_fraction", "thickness_cells", "config", "column"), out,
                               {"units": "A^2"})
    if check:
        check_table(ds)
    return ds


def _shifted_cells(s: np.ndarray, n: np.ndarray, scan_points, tile) -> np.ndarray:
    """Checked scan and tile sizes; the number of shifted cells s N (whole) per (s, N)."""
    if int(scan_points) != scan_points or scan_points < 2 or scan_points % 2:
        raise InputError(f"scan_points must be an even integer >= 2, got {scan_points!r}")
    if int(tile) < 1:
        raise InputError(f"tile must be >= 1, got {tile!r}")
    n_shift = np.outer(s, n)
    if not np.allclose(n_shift, np.round(n_shift)):
        raise InputError(f"shifted_fraction x thickness_cells must be whole cells; got s={list(s)}, N={list(n)}")
    return np.round(n_shift).astype(int)


def _composition_runs(bb: float, s, n, n_shift, settings, m: int, tile: int, seed: int, compute_kwargs,
                      progress: bool, log) -> np.ndarray:
    """Column cross-sections of one Br fraction, shape (ns, nN, configs, 3)."""
    a_a = materials.lattice_constant_pm(bb) / 100.0
    st = replace(settings, slice_thickness_a=a_a / 2)  # one atomic layer per slice
    d = a_a / 2 / m  # scan step; positions at the centres of the quarter's m x m cells
    scan_kw = dict(start_a=(d / 2, d / 2), end_a=(a_a / 2 + d / 2, a_a / 2 + d / 2), gpts=(m, m))
    n_conf = int(settings.num_configs) if settings.frozen_phonons else 1
    out = np.full((s.size, n.size, n_conf, 3), np.nan)
    for i_s, ss in enumerate(s):
        if ss == 0:
            # one run at the largest thickness with exit planes at every N
            slab = cspbx3_slab(bb, int(n.max()), 0, tile, seed)
            res = _scan_exit_planes(slab, st, n, scan_kw, seed, compute_kwargs, progress)
            out[i_s] = _quarter_integrals(res, a_a)
            log(f"b={bb:g} s=0 N={list(n)} done")
            continue
        for i_n, nn in enumerate(n):
            slab = cspbx3_slab(bb, int(nn), int(n_shift[i_s, i_n]), tile, seed)
            res = scan_region(slab, st, seed=seed, compute_kwargs=compute_kwargs, progress=progress, **scan_kw)
            out[i_s, i_n] = _quarter_integrals(res, a_a)
            log(f"b={bb:g} s={ss:g} N={nn} done")
    return out


def _scan_exit_planes(slab, settings, n_cells, scan_kw, seed, compute_kwargs, progress) -> np.ndarray:
    """Scan with an exit plane after each requested thickness; returns (N, configs, m, m).

    The slab's layers sit at slice centres (slices of a/2, see :func:`cspbx3_slab`), so
    the exit plane after N cells is after slice 2N - 1.
    """
    import abtem

    source = frozen_phonon_source(slab, settings, seed)
    # grid: the next 2^a 3^b 5^c size at or above extent / sampling (a prime size such as
    # 173 or 179 points makes every FFT 2-3x slower; the sampling only gets finer)
    gpts = tuple(fft_size(math.ceil(length / settings.sampling_a)) for length in slab.cell.lengths()[:2])
    potential = abtem.Potential(source, gpts=gpts, slice_thickness=settings.slice_thickness_a,
                                parametrization=settings.parametrization, projection="infinite",
                                exit_planes=tuple(int(2 * nn - 1) for nn in n_cells))
    probe = abtem_probe(settings)
    probe.grid.match(potential)
    scan = abtem.GridScan(start=scan_kw["start_a"], end=scan_kw["end_a"], gpts=scan_kw["gpts"], endpoint=False)
    det = abtem.AnnularDetector(inner=float(settings.detector_mrad[0]), outer=float(settings.detector_mrad[1]))
    res = probe.scan(potential, scan=scan, detectors=det).compute(progress_bar=progress, **(compute_kwargs or {}))
    arr = np.asarray(res.array, dtype=np.float64)
    gx, gy = (int(g) for g in scan_kw["gpts"])
    arr = arr.reshape((-1, len(n_cells), gx, gy))  # (configs, exit planes, x, y)
    return np.moveaxis(arr, 1, 0)


def fft_size(n: int) -> int:
    """Smallest integer >= n whose only prime factors are 2, 3 and 5 (fast FFT sizes)."""
    m = max(1, int(n))
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def _logger(progress: bool):
    if not progress:
        return lambda msg: None
    from rich.console import Console

    console = Console(stderr=True)
    return lambda msg: console.print(f"[dim]multislice table:[/] {msg}")


# ------------------------------------------------------------------ registry-depth table (v2)

def registry_slab(br_fraction: float, n_cells: int, regular_cells, tile=1, seed: int = 1,
                  occupancy: str = "stratified"):
    """Cubic CsPbX3 slab whose first ``regular_cells`` cells (entrance side) are in the
    regular registry and the rest translated in-plane by (a/2, a/2) (the projected
    1/2 a<111> shift), with no gap along the beam: every exit plane after N cells holds
    exactly min(N, k) regular and N - k shifted cells (k = ``regular_cells``).

    Layers lie at z = (j + 1/2) a/2 (one per a/2 slice). The registry boundary is a
    compact stacking (a PbX2 layer followed by the shifted CsX layer); the extra CsX
    layer of a real RP fault adds one atom per column and is left out.

    Parameters
    ----------
    br_fraction : float
    n_cells : int
    regular_cells : int or array of int, shape (tx, ty)
        Regular cells at the entrance, for the whole slab or per in-plane cell (a lateral
        registry boundary).
    tile : int or (int, int)
        In-plane repetition (tx, ty).
    seed : int
    occupancy : {"stratified", "random"}
        ``stratified``: in every projected halide column Br sits at cell j when
        floor((j+1) b + phi) > floor(j b + phi), phi uniform per column, so every depth
        prefix of N cells holds bN +- 1 Br and the mean over phi is exactly bN (the table
        is an expectation over occupancy). ``random``: independent Bernoulli(b) sites
        (the validation images).

    Returns
    -------
    ase.Atoms
        Cell (tx a, ty a, n_cells a), pbc.
    """
    from ase import Atoms

    b = require_in_range("br_fraction", br_fraction, 0.0, 1.0)
    tx, ty = (int(tile), int(tile)) if np.ndim(tile) == 0 else (int(tile[0]), int(tile[1]))
    n = int(n_cells)
    k = np.broadcast_to(np.asarray(regular_cells, int), (tx, ty))
    if n < 1 or tx < 1 or ty < 1 or np.any(k < 0):
        raise InputError(f"need n_cells >= 1, tile >= 1 and regular_cells >= 0, got {n_cells}, {tile}, "
                         f"{regular_cells}")
    if occupancy not in ("stratified", "random"):
        raise InputError(f"occupancy must be 'stratified' or 'random', got {occupancy!r}")
    a = materials.lattice_constant_pm(b) / 100.0
    # regular cell: CsX layer at w = 0, PbX2 layer at w = 1/2; shifted: same layers, (1/2, 1/2) in-plane
    sites = [("Cs", 0.0, 0.0, 0.0), ("X", 0.5, 0.5, 0.0), ("Pb", 0.5, 0.5, 0.5), ("X", 0.5, 0.0, 0.5),
             ("X", 0.0, 0.5, 0.5)]
    j = np.arange(n)
    ti, tj = np.meshgrid(np.arange(tx), np.arange(ty), indexing="ij")
    shifted = (j[None, :] >= k.ravel()[:, None]).astype(float)  # (cells in plane, depth)
    sym, pos = [], []
    for el, u, v, w in sites:
        uu = ti.ravel()[:, None] + (u + 0.5 * shifted) % 1.0
        vv = tj.ravel()[:, None] + (v + 0.5 * shifted) % 1.0
        ww = np.broadcast_to(j[None, :] + w, uu.shape)
        pos.append(np.stack([uu.ravel(), vv.ravel(), ww.ravel()], axis=1))
        sym += [el] * uu.size
    pos = np.concatenate(pos)
    sym = np.array(sym, dtype=object)
    rng = seeds.rng(seed)
    xmask = sym == "X"
    if occupancy == "random":
        sym[xmask] = np.where(rng.random(int(xmask.sum())) < b, "Br", "I")
    else:
        key = np.round(pos[xmask, :2] * 2).astype(int)
        _, col = np.unique(key, axis=0, return_inverse=True)
        col = col.ravel()
        phi = rng.random(col.max() + 1)[col]
        depth = np.floor(pos[xmask, 2]).astype(int)  # cell index of the site
        is_br = np.floor((depth + 1) * b + phi) > np.floor(depth * b + phi)
        sym[xmask] = np.where(is_br, "Br", "I")
    xyz = pos * a
    xyz[:, 2] += a / 4
    return Atoms(symbols=list(sym), positions=xyz, cell=[tx * a, ty * a, n * a], pbc=True)


def scan_points_per_cell(lattice_a: float, probe) -> int:
    """Scan positions per cell edge M (a multiple of 4) with step <= lambda / (2 alpha).

    The ADF signal against probe position is band-limited to 2 alpha / lambda (the
    autocorrelation of the probe aperture), so a step below lambda / (2 alpha) integrates
    the periodic cell exactly and the Voronoi sub-cells to ~0.1 % (measured by
    ``benchmarks/zcontrast_scan_step.py``: 16 vs 24 points per 6.08 A cell, static CsPbX3,
    300 kV, 24 mrad; 12 points lose 9-12 %).
    """
    from nanodomains.stem.probe import wavelength_pm

    step_a = wavelength_pm(probe.beam_energy_kev) / 100.0 / (2e-3 * probe.convergence_semiangle_mrad)
    return int(4 * math.ceil(lattice_a / step_a / 4))


def registry_run(br_fraction: float, regular_cells: int, thickness_cells, settings, seed: int,
                 compute_kwargs: dict | None = None, progress: bool = False) -> np.ndarray:
    """One frozen-phonon run of a tile-1 registry slab to max(thickness_cells) with an exit
    plane after every requested thickness; returns (N, configs, 3) site cross-sections."""
    n = np.asarray(thickness_cells, int)
    a_a = materials.lattice_constant_pm(br_fraction) / 100.0
    st = replace(settings, slice_thickness_a=a_a / 2)
    m = scan_points_per_cell(a_a, st.probe)
    d = a_a / m
    scan_kw = dict(start_a=(d / 2, d / 2), end_a=(a_a + d / 2, a_a + d / 2), gpts=(m, m))
    slab = registry_slab(br_fraction, int(n.max()), regular_cells, 1, seed)
    res = _scan_exit_planes(slab, st, n, scan_kw, seed, compute_kwargs, progress)
    return voronoi_site_integrals(res, a_a)


def registry_validation_image(br_fraction: float, regular_cells, thickness_nm=(8.0, 12.0, 16.0, 24.0),
                              tile=(2, 1), settings=None, seed: int = 7, compute_kwargs: dict | None = None,
                              progress: bool = False) -> xr.Dataset:
    """A periodic multislice ADF image of a registry slab with random (Bernoulli) halide
    occupancy, independent of the tables: its own supercell, occupancy and phonon seed,
    and a whole-supercell scan at lambda / (2 alpha) steps with an exit plane at each
    requested thickness (N = round(t / a) cells).

    Returns
    -------
    xarray.Dataset
        ``image`` (thickness, config, y, x): detected fraction of the incident beam; the
        truth (Br fraction of the realised halides within each thickness, regular cells
        per in-plane cell, N) as variables and attributes; pixel size and probe attributes.
    """
    b = require_in_range("br_fraction", br_fraction, 0.0, 1.0)
    if settings is None:
        from nanodomains.stem.probe import ProbeParameters

        settings = MultisliceSettings(probe=ProbeParameters(detector_mrad=(70.0, 190.0)))
    tx, ty = (int(tile), int(tile)) if np.ndim(tile) == 0 else (int(tile[0]), int(tile[1]))
    a_a = materials.lattice_constant_pm(b) / 100.0
    n = np.array(sorted({int(round(10.0 * t / a_a)) for t in thickness_nm}))
    st = replace(settings, slice_thickness_a=a_a / 2)
    m = scan_points_per_cell(a_a, st.probe)
    d = a_a / m
    slab = registry_slab(b, int(n.max()), regular_cells, (tx, ty), seed, occupancy="random")
    scan_kw = dict(start_a=(d / 2, d / 2), end_a=(tx * a_a + d / 2, ty * a_a + d / 2), gpts=(tx * m, ty * m))
    res = _scan_exit_planes(slab, st, n, scan_kw, seed, compute_kwargs, progress)  # (N, conf, x, y)
    img = np.swapaxes(res, -1, -2).astype(np.float32)  # (N, conf, y, x)
    sym = np.array(slab.get_chemical_symbols())
    z_cell = np.floor(slab.positions[:, 2] / a_a).astype(int)
    is_x = np.isin(sym, ("Br", "I"))
    br_real = np.array([np.mean(sym[is_x & (z_cell < nn)] == "Br") for nn in n])
    k = np.broadcast_to(np.asarray(regular_cells, int), (tx, ty))
    shifted = np.array([[np.clip(nn - kk, 0, nn) / nn for kk in k.ravel()] for nn in n]).reshape(len(n), tx, ty)
    attrs = {"method": "multislice validation image", **st.describe(), "pixel_size_pm": d * 100.0,
             "lattice_pm": a_a * 100.0, "br_fraction_nominal": b, "tile": [tx, ty], "seed": int(seed),
             "occupancy": "random (Bernoulli)", "intensity_unit": "fraction of the incident beam",
             "structure": "registry slab (nanodomains.stem.table_build.registry_slab), shifted part at the exit"}
    return xr.Dataset(
        {"image": (("thickness_cells", "config", "y", "x"), img, {"units": "fraction of incident beam"}),
         "br_fraction": ("thickness_cells", br_real),
         "shifted_fraction": (("thickness_cells", "cell_x", "cell_y"), shifted),
         "regular_cells": (("cell_x", "cell_y"), np.array(k))},
        coords={"thickness_cells": n, "thickness_nm": ("thickness_cells", n * a_a / 10.0)}, attrs=attrs)


def registry_table(br_fraction=(0.0, 0.25, 0.5, 0.75, 1.0), regular_cells=(41, 22, 9, 30, 4, 15),
                   thickness_cells=tuple(range(6, 42)), settings=None, seed: int = 1000,
                   parts_dir=None, compute_kwargs: dict | None = None,
                   progress: bool = True) -> xr.Dataset:
    """Registry-depth table (:mod:`nanodomains.stem.zcontrast`): one tile-1 run per (b, k)
    to max(thickness_cells) with an exit plane after every cell.

    Each run is saved to ``parts_dir`` (``b{b:.2f}_k{k:02d}.npz``) as it finishes and
    skipped when present, so an interrupted build resumes; the table is assembled from
    the parts (:func:`assemble_registry_table`). Runs go in the order of
    ``regular_cells`` (outer) and ``br_fraction`` (inner); the seed of run (ib, ik) is
    ``seed + 100 ib + ik``. abTEM computes each run with dask (threads by default).

    ``parts_dir`` may be a list of folders: *passes*, each a full set of runs with its
    own seeds (pass ``p`` adds ``1000 p`` to ``seed``) and so its own frozen phonons and
    halide order; the table then holds every pass's configurations.
    """
    from pathlib import Path

    from nanodomains.stem.probe import ProbeParameters

    if settings is None:
        settings = MultisliceSettings(probe=ProbeParameters(detector_mrad=(70.0, 190.0)))
    n = np.asarray(sorted(int(c) for c in thickness_cells))
    if n.size < 2 or n.min() < 1:
        raise InputError(f"thickness_cells needs at least two values >= 1, got {list(thickness_cells)}")
    ks = [int(k) for k in regular_cells]
    if max(ks) < n.max():
        raise InputError(f"regular_cells must include a run with k >= max(thickness_cells) = {n.max()} "
                         "(the regular column)")
    dirs = _pass_dirs(parts_dir)
    for p, parts in enumerate(dirs):
        parts.mkdir(parents=True, exist_ok=True)
        _run_missing_parts(parts, br_fraction, ks, n, settings, int(seed) + 1000 * p, compute_kwargs, progress)
    return assemble_registry_table(dirs, settings, br_fraction, ks, n)


def _pass_dirs(parts_dir) -> list:
    from pathlib import Path

    if parts_dir is None:
        return [Path.cwd() / "registry_parts"]
    if isinstance(parts_dir, (str, Path)):
        return [Path(parts_dir)]
    dirs = [Path(d) for d in parts_dir]
    if not dirs or len(set(dirs)) != len(dirs):
        raise InputError(f"registry parts: give one or more distinct folders, got {parts_dir!r}")
    return dirs


def _run_missing_parts(parts, br_fraction, ks, n, settings, seed, compute_kwargs, progress) -> None:
    import time

    log = _logger(progress)
    for ik, k in enumerate(ks):
        for ib, b in enumerate(br_fraction):
            f = parts / f"b{float(b):.2f}_k{k:02d}.npz"
            if f.exists():
                continue
            t0 = time.time()
            run_seed = int(seed) + 100 * ib + ik
            inten = registry_run(float(b), k, n, settings, run_seed, compute_kwargs, False)
            np.savez(f, intensity=inten, thickness_cells=n, regular_cells=k, br_fraction=float(b),
                     seed=run_seed, wall_time_s=time.time() - t0)
            log(f"b={float(b):g} k={k} done in {time.time() - t0:.0f} s ({parts.name})")


def _realised_halides(b: np.ndarray, ks: np.ndarray, n: np.ndarray, seeds_used: list[int]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Br and halide counts per site column and thickness of every run, from its slab
    (regenerated from the run's seed: no multislice). (b, k, N, site) each."""
    br = np.zeros((b.size, ks.size, n.size, 3))
    xs = np.zeros_like(br)
    it = iter(seeds_used)
    for ib, bb in enumerate(b):
        for ik, k in enumerate(ks):
            slab = registry_slab(float(bb), int(n.max()), int(k), 1, next(it))
            sym = np.array(slab.get_chemical_symbols())
            a = slab.cell[0, 0]
            uv = np.round(slab.positions[:, :2] / a * 2).astype(int) % 2  # half-cell site indices
            cell = np.floor(slab.positions[:, 2] / a).astype(int)
            is_x = np.isin(sym, ("Br", "I"))
            for c, pick in enumerate(((0, 0), (1, 1))):
                col = is_x & (uv[:, 0] == pick[0]) & (uv[:, 1] == pick[1])
                br[ib, ik, :, c] = [np.sum(col & (sym == "Br") & (cell < nn)) for nn in n]
                xs[ib, ik, :, c] = [np.sum(col & (cell < nn)) for nn in n]
            col = is_x & (uv[:, 0] != uv[:, 1])  # the two X columns, averaged
            br[ib, ik, :, 2] = [0.5 * np.sum(col & (sym == "Br") & (cell < nn)) for nn in n]
            xs[ib, ik, :, 2] = [0.5 * np.sum(col & (cell < nn)) for nn in n]
    return br, xs


def _read_pass(parts_dir, b, ks, n) -> tuple[np.ndarray, float, list[int]]:
    """One pass's runs: intensities (b, k, N, config, site), wall time, seeds in run order."""
    from pathlib import Path

    arr, wall, seeds_used = None, 0.0, []
    for ib, bb in enumerate(b):
        for ik, k in enumerate(ks):
            f = Path(parts_dir) / f"b{bb:.2f}_k{k:02d}.npz"
            if not f.exists():
                raise InputError(f"registry table part {f} is missing (run registry_table to compute it)")
            with np.load(f) as z:
                if not np.array_equal(z["thickness_cells"], n):
                    raise InputError(f"{f}: thickness cells differ from the requested ones")
                v = z["intensity"]
                wall += float(z["wall_time_s"])
                seeds_used.append(int(z["seed"]))
            if arr is None:
                arr = np.full((b.size, ks.size) + v.shape, np.nan)
            if v.shape != arr.shape[2:]:
                raise InputError(f"{f}: {v.shape} intensities, the pass's other runs have {arr.shape[2:]}")
            arr[ib, ik] = v
    return arr, wall, seeds_used


def assemble_registry_table(parts_dir, settings, br_fraction, regular_cells, thickness_cells) -> xr.Dataset:
    """Stack saved runs into a registry table (schema ``nanodomains.stem.registry_table/1``).

    ``parts_dir``: one folder, or a list of folders (passes, see :func:`registry_table`)
    whose configurations are concatenated. The occupancy correction of
    :class:`~nanodomains.stem.zcontrast.RegistryModel` is linear in the realised Br
    count, so the table stores each run's counts averaged over the passes (weighted by
    their configurations): correcting the merged mean equals averaging the per-pass
    corrections.
    """
    b = np.asarray(sorted(float(v) for v in br_fraction))
    run_order = [int(k) for k in regular_cells]  # the seeds follow it (registry_table)
    ks = np.asarray(sorted(run_order))
    n = np.asarray(thickness_cells, int)
    passes = [_read_pass(d, b, ks, n) for d in _pass_dirs(parts_dir)]
    arr = np.concatenate([p[0] for p in passes], axis=3)
    wall = sum(p[1] for p in passes)
    seeds_used = [s for p in passes for s in p[2]]
    weights = np.array([p[0].shape[3] for p in passes], float)
    counts = [_realised_halides(b, ks, n, p[2]) for p in passes]
    br_count = sum(w * c[0] for w, c in zip(weights, counts)) / weights.sum()
    x_count = sum(w * c[1] for w, c in zip(weights, counts)) / weights.sum()
    a_nm = np.asarray(materials.lattice_constant_pm(b)) / 1000
    attrs = {"schema": REGISTRY_SCHEMA, "table_version": "1" if len(passes) == 1 else "1.1",
             "method": "multislice registry-depth table",
             **settings.describe(), "num_configs": int(arr.shape[3]), "passes": len(passes),
             "slice_thickness_a": "a(b)/2, one atomic layer", "tile": 1,
             "scan": "full cell, M x M points at steps <= lambda/(2 alpha); a/2-square Voronoi integrals",
             "occupancy": "stratified along the depth (every prefix holds bN +- 1 Br)",
             "structure": "cubic CsPbX3, Vegard lattice constant; first k cells regular, the rest shifted by "
                          "(a/2, a/2) in projection (registry_slab)",
             "seeds": ",".join(str(s) for s in seeds_used), "wall_time_s": wall,
             "command": ("nanodomains stem table --method registry --out registry_table.nc --parts "
                         + ",".join(f"DIR{i + 1}" for i in range(len(passes)))
                         + f" --configs {int(passes[0][0].shape[3])}"
                         + f" --br {','.join(f'{v:g}' for v in b)} --regular-cells {','.join(str(k) for k in run_order)} "
                         f"--cells {n.min()}-{n.max()}")}
    count_note = " (mean over the passes, weighted by configurations)" if len(passes) > 1 else ""
    ds = xr.Dataset(
        {"intensity_configs": (("br_fraction", "regular_cells", "thickness_cells", "config", "site"), arr,
                               {"units": "A^2", "long_name": "column cross-section per frozen-phonon configuration"})},
        coords={"br_fraction": b, "regular_cells": ks, "thickness_cells": n, "site": list(SITES),
                "br_count": (("br_fraction", "regular_cells", "thickness_cells", "site"), br_count,
                             {"long_name": "Br atoms in the site's column within N cells (X: mean of the two)"
                                           + count_note}),
                "x_count": (("br_fraction", "regular_cells", "thickness_cells", "site"), x_count,
                            {"long_name": "halide sites in the site's column within N cells" + count_note}),
                "lattice_pm": ("br_fraction", a_nm * 1000, {"units": "pm"}),
                "thickness_nm": (("br_fraction", "thickness_cells"), np.outer(a_nm, n), {"units": "nm"})},
        attrs=attrs)
    return check_registry_table(ds)


#: the shipped multislice validation images (tests/data/zcontrast_validation): name -> (b, regular cells
#: per in-plane cell, tile). Shifted parts at the exit; s = (N - k)/N varies with the thickness.
VALIDATION_CASES = {
    "b000": (0.0, 64, (2, 1)),
    "b027": (0.27, 3, (2, 1)),
    "b052": (0.52, 6, (2, 1)),
    "b075": (0.75, 20, (2, 1)),
    "b100": (1.0, 10, (2, 1)),
    "boundary": (0.5, [[3], [3], [20], [20]], (4, 1)),
}


def validation_images(out_dir, cases=None, thickness_nm=(8.0, 12.0, 16.0, 24.0), seed: int = 7,
                      compute_kwargs: dict | None = None, progress: bool = True) -> list:
    """Write the multislice validation images of :data:`VALIDATION_CASES` (or ``cases``) to
    ``out_dir/<name>.nc``, skipping those present; the seed of case i is ``seed + i``."""
    import time
    from pathlib import Path

    from nanodomains.stem.io import save_netcdf

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(VALIDATION_CASES) if cases is None else list(cases)
    unknown = [n for n in names if n not in VALIDATION_CASES]
    if unknown:
        raise InputError(f"unknown validation case(s) {unknown}; known: {list(VALIDATION_CASES)}")
    log = _logger(progress)
    written = []
    for name in names:
        f = out / f"{name}.nc"
        if f.exists():
            continue
        i = list(VALIDATION_CASES).index(name)
        b, k, tile = VALIDATION_CASES[name]
        t0 = time.time()
        ds = registry_validation_image(b, k, thickness_nm=thickness_nm, tile=tile, seed=seed + i,
                                       compute_kwargs=compute_kwargs)
        ds.attrs.update(name=name, wall_time_s=time.time() - t0,
                        command=f"nanodomains stem validation-images --out DIR --cases {name}")
        written.append(save_netcdf(ds, f))
        log(f"{name}: {time.time() - t0:.0f} s")
    return written

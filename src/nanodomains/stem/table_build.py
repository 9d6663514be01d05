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
from nanodomains.stem.tables import check_table, table_axes, table_dataset

__all__ = ["cspbx3_slab", "multislice_table"]


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
    potential = abtem.Potential(source, sampling=settings.sampling_a, slice_thickness=settings.slice_thickness_a,
                                parametrization=settings.parametrization, projection="infinite",
                                exit_planes=tuple(int(2 * nn - 1) for nn in n_cells))
    probe = abtem_probe(settings)
    probe.grid.match(potential)
    scan = abtem.GridScan(start=scan_kw["start_a"], end=scan_kw["end_a"], gpts=scan_kw["gpts"], endpoint=False)
    det = abtem.AnnularDetector(inner=float(settings.detector_mrad[0]), outer=float(settings.detector_mrad[1]))
    res = probe.scan(potential, scan=scan, detectors=det).compute(progress_bar=progress, **(compute_kwargs or {}))
    arr = np.asarray(res.array, dtype=np.float64)
    m = scan_kw["gpts"][0]
    arr = arr.reshape((-1, len(n_cells), m, m))
    return np.moveaxis(arr, 1, 0)


def _logger(progress: bool):
    if not progress:
        return lambda msg: None
    from rich.console import Console

    console = Console(stderr=True)
    return lambda msg: console.print(f"[dim]multislice table:[/] {msg}")

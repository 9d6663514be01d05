"""Figures of migration runs: vacancy paths over the domain map (like the seed's Fig. 3c,d)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nanodomains.errors import InputError
from nanodomains.files import atomic_path
from nanodomains.migration.lattice import BOUNDARY_RP


def vacancy_paths(result) -> list[np.ndarray]:
    """Site sequence of every vacancy, from the stored hop events (or frames if truncated)."""
    paths = []
    if not result.events_truncated:
        for v in range(result.n_vacancies):
            sel = result.event_vacancy == v
            paths.append(np.r_[result.vacancy_initial_site[v], result.event_to_site[sel]].astype(int))
    else:
        for v in range(result.n_vacancies):
            paths.append(np.asarray(result.frame_vacancy_site[:, v], int))
    return paths


def _boundary_segments(cmap2d: np.ndarray, a_nm: float, btype: np.ndarray):
    """Line segments (nm) between cells of different domains in a 2-D domain map."""
    segs, kinds = [], []
    n0, n1 = cmap2d.shape
    i, j = np.nonzero(cmap2d[1:, :] != cmap2d[:-1, :])
    for ii, jj in zip(i, j):
        segs.append([((ii + 1) * a_nm, jj * a_nm), ((ii + 1) * a_nm, (jj + 1) * a_nm)])
        kinds.append(btype[cmap2d[ii, jj], cmap2d[ii + 1, jj]])
    i, j = np.nonzero(cmap2d[:, 1:] != cmap2d[:, :-1])
    for ii, jj in zip(i, j):
        segs.append([(ii * a_nm, (jj + 1) * a_nm), ((ii + 1) * a_nm, (jj + 1) * a_nm)])
        kinds.append(btype[cmap2d[ii, jj], cmap2d[ii, jj + 1]])
    return segs, np.asarray(kinds)


def _draw_view(ax, view: str, result, paths, centre, colours):
    """One panel: domain map slice through ``centre`` across the view axis, boundaries,
    and every vacancy path projected on the plane. Returns the image artist."""
    from matplotlib.collections import LineCollection

    if view not in "xyz" or len(view) != 1:
        raise InputError(f"view must be 'x', 'y' or 'z', got {view!r}")
    lat = result.lattice
    nc = lat.nc
    cmap = nc.cell_map()
    a_nm = nc.reference_lattice_pm / 1000.0
    br = np.array([d.br_fraction for d in nc.domains])
    ref_pos = lat.half_index * (a_nm / 2.0)
    k = "xyz".index(view)
    keep = [d for d in range(3) if d != k]
    idx = int(np.clip(centre[k] // a_nm, 0, cmap.shape[k] - 1))
    slab = np.take(cmap, idx, axis=k)  # axes in order keep[0], keep[1]
    extent = (0, slab.shape[0] * a_nm, 0, slab.shape[1] * a_nm)
    im = ax.imshow(br[slab].T, origin="lower", extent=extent, cmap="coolwarm_r", vmin=0.0, vmax=1.0,
                   interpolation="nearest", alpha=0.55)
    segs, kinds = _boundary_segments(slab, a_nm, lat.boundary_type)
    if segs:
        segs = np.asarray(segs)
        rp = kinds == BOUNDARY_RP
        if rp.any():
            ax.add_collection(LineCollection(segs[rp], colors="k", linewidths=2.2, label="RP fault"))
        if (~rp).any():
            ax.add_collection(LineCollection(segs[~rp], colors="0.3", linewidths=1.0, linestyles="--",
                                             label="coherent"))
    for v, (p, c) in enumerate(zip(paths, colours)):
        xy = ref_pos[p][:, keep]
        ax.plot(xy[:, 0], xy[:, 1], "-", color=c, lw=0.8, alpha=0.9, label=f"vacancy {v}")
        ax.plot(*xy[0], "o", color=c, ms=5)
        ax.plot(*xy[-1], "x", color=c, ms=7, mew=2)
    ax.set_xlabel(f"{'xyz'[keep[0]]} (nm)")
    ax.set_ylabel(f"{'xyz'[keep[1]]} (nm)")
    ax.set_title(f"view along {view}, slice at {view} = {(idx + 0.5) * a_nm:.1f} nm")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    return im


def plot_vacancy_paths(result, path: str | Path | None = None, views=("z", "x"), dpi: int = 150):
    """Vacancy paths projected on two planes over the domain map.

    Each panel shows the domain map (Br fraction, colour) in the slice perpendicular
    to the view axis through the mean vacancy position, RP boundaries as thick black
    lines and coherent ones dashed, and every vacancy's path projected on the plane
    (start: circle, end: cross).

    Parameters
    ----------
    result : KMCResult (from an NC model, not a hand-made lattice)
    path : str or Path, optional
        Write a PNG there (atomically); the figure is returned either way.
    views : sequence of {"x", "y", "z"}
        Projection axis of each panel.
    """
    import matplotlib.pyplot as plt

    lat = result.lattice
    if lat.nc is None:
        raise InputError("plot_vacancy_paths needs a run on an NC model (the lattice has no NC)")
    a_nm = lat.nc.reference_lattice_pm / 1000.0
    paths = vacancy_paths(result)
    allsites = np.concatenate(paths) if paths else np.zeros(0, int)
    centre = (lat.half_index * (a_nm / 2.0))[allsites].mean(axis=0) if len(allsites) else np.array(lat.nc.edges_nm) / 2
    fig, axes = plt.subplots(1, len(views), figsize=(5.2 * len(views), 4.6), squeeze=False)
    colours = plt.cm.tab10(np.arange(max(len(paths), 1)) % 10)
    for ax, view in zip(axes[0], views):
        im = _draw_view(ax, view, result, paths, centre, colours)
    fig.colorbar(im, ax=axes[0].tolist(), label="domain Br fraction", shrink=0.8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        axes[0][0].legend(handles[:6], labels[:6], fontsize=7, loc="upper right")
    mean, _ = result.mean_hop_time_ps()
    fig.suptitle(f"{result.params.temperature_k:g} K, {result.n_vacancies} vacancies, "
                 f"{result.time_ps / 1e3:.3g} ns: {result.hops} hops, mean hop time "
                 f"{mean:.1f} ps, RP crossings {result.boundary_crossings()['rp']}", fontsize=10)
    if path is not None:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi)
    return fig

"""Figures shared by the demo report and the docs (matplotlib, Agg-safe)."""

from __future__ import annotations

import numpy as np


def structure_figure(nc, names=None, direction: str = "100"):
    """Three panels of an NC model, in the manner of the seed's Fig. 1 model panels.

    Domains in the front slab, the [100] columns coloured by their shifted cell
    fraction, and a zoom on the first RP fault (empty when the NC has none).

    Parameters
    ----------
    nc : NanoCrystal
    names : list of str, optional
        Domain labels (default ``D0``, ``D1``, ...).
    direction : str
        Viewing direction of the column panel.

    Returns
    -------
    matplotlib.figure.Figure
        Open: save it or pass it to :func:`nanodomains.pipeline.report.figure_to_png_bytes`.

    Examples
    --------
    >>> from nanodomains.structure import random_domains
    >>> fig = structure_figure(random_domains(6.0, n_domains=2, seed=1))
    >>> [ax.get_title() for ax in fig.axes[:2]]
    ['domains in the front slab', '[100] columns: shifted cell fraction']
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    import matplotlib.pyplot as plt

    cols = nc.project_columns(direction)
    names = names or [f"D{d.id}" for d in nc.domains]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
    grid = nc.cell_map()
    a = nc.reference_lattice_pm / 1000
    ax = axes[0]
    ax.imshow(grid[1].T, origin="lower", extent=[0, grid.shape[1] * a, 0, grid.shape[2] * a],
              cmap="tab10", vmin=0, vmax=9)
    for d in nc.domains:
        c = d.region.center_nm
        if d.region.lo_nm[0] <= a:
            ax.text(c[1], c[2], f"{names[d.id]}\n{d.formula}", ha="center", va="center", fontsize=8)
    ax.set(title="domains in the front slab", xlabel="y (nm)", ylabel="z (nm)")
    ax = axes[1]
    for site, marker, size in (("Cs", "o", 6), ("PbX", "s", 6), ("X", ".", 2)):
        c = cols[cols.site == site]
        sc = ax.scatter(c.x_nm, c.y_nm, c=c.shifted_fraction, s=size, marker=marker, cmap="viridis",
                        vmin=0, vmax=1)
    fig.colorbar(sc, ax=ax, label="shifted fraction s")
    u, v = cols.attrs["image_axes"]
    ax.set(title=f"[{direction}] columns: shifted cell fraction", xlabel=f"image x = crystal {u} (nm)",
           ylabel=f"image y = crystal {v} (nm)", aspect="equal")
    ax = axes[2]
    rp = [b for b in nc.boundaries if b.type == "RP" and b.normal[0] == 0]
    if rp:
        b = rp[0]
        axis_img = 0 if b.normal[1] else 1
        centre = np.array([cols.x_nm.mean(), cols.y_nm.mean()])
        centre[axis_img] = b.plane_nm
        zoom = cols[(np.abs(cols.x_nm - centre[0]) < 2) & (np.abs(cols.y_nm - centre[1]) < 2)]
        kind = np.where((zoom.n_pb > 0) & (zoom.n_cs > 0), "Cs | Pb+X mixed in depth",
                        np.where(zoom.n_pb > 0, "Pb+X", np.where(zoom.n_cs > 0, "Cs", "X")))
        for k, colour in (("Cs", "tab:blue"), ("Pb+X", "tab:red"),
                          ("Cs | Pb+X mixed in depth", "tab:orange"), ("X", "tab:green")):
            z = zoom[kind == k]
            ax.scatter(z.x_nm, z.y_nm, s=40 if k != "X" else 12, color=colour, label=k)
        (ax.axvline if axis_img == 0 else ax.axhline)(b.plane_nm, color="k", lw=0.8, ls="--")
        i, j = b.domains
        ax.set(title=f"{names[i]} | {names[j]} RP fault: Cs and Pb+X swap")
        ax.legend(loc="upper right", fontsize=7)
    ax.set(xlabel="image x (nm)", ylabel="image y (nm)", aspect="equal")
    fig.tight_layout()
    return fig

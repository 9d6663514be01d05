"""Figures for docs/structure.md: python docs/img/make_structure_figures.py"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nanodomains.structure import paper_fig1  # noqa: E402
from nanodomains.structure.presets import DOMAIN_NAMES  # noqa: E402

here = Path(__file__).parent
nc = paper_fig1(seed=1)
cols = nc.project_columns("100")
names = DOMAIN_NAMES["paper_fig1"]

fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
grid = nc.cell_map()
a = nc.reference_lattice_pm / 1000
ext = [0, nc.n_cells[1] * a, 0, nc.n_cells[2] * a]
ax = axes[0]
ax.imshow(grid[2].T, origin="lower", extent=ext, cmap="tab10", vmin=0, vmax=9)
for d in nc.domains:
    c = d.region.center_nm
    if d.region.lo_nm[0] <= 1.0:
        ax.text(c[1], c[2], f"{names[d.id]}\n{d.formula}", ha="center", va="center", fontsize=8)
ax.set(title="domains in the front slab (x = 1 nm)", xlabel="y (nm)", ylabel="z (nm)")
ax = axes[1]
for site, marker, size in (("Cs", "o", 6), ("PbX", "s", 6), ("X", ".", 2)):
    c = cols[cols.site == site]
    sc = ax.scatter(c.x_nm, c.y_nm, c=c.shifted_fraction, s=size, marker=marker, cmap="viridis",
                    vmin=0, vmax=1, label=site)
fig.colorbar(sc, ax=ax, label="shifted fraction s")
ax.set(title="[100] columns: shifted cell fraction", xlabel="image x = crystal y (nm)",
       ylabel="image y = crystal z (nm)", aspect="equal")
ax = axes[2]
zoom = cols[(cols.x_nm > 5.0) & (cols.x_nm < 9.0) & (cols.y_nm > 2.0) & (cols.y_nm < 6.0)]
colour = {"Cs": "tab:blue", "PbX": "tab:red", "X": "tab:green"}
# show what sits in each column: cation-only (Cs), Pb+X, or X
kind = np.where((zoom.n_pb > 0) & (zoom.n_cs > 0), "Cs | Pb+X mixed in depth",
                np.where(zoom.n_pb > 0, "Pb+X", np.where(zoom.n_cs > 0, "Cs", "X")))
for k, col in (("Cs", "tab:blue"), ("Pb+X", "tab:red"), ("Cs | Pb+X mixed in depth", "tab:orange"),
               ("X", "tab:green")):
    z = zoom[kind == k]
    ax.scatter(z.x_nm, z.y_nm, s=40 if k != "X" else 12, color=col, label=k)
ax.axvline(nc.boundaries[0].plane_nm, color="k", lw=0.8, ls="--")
ax.set(title="R1 | R2 RP fault (R5 behind R2)", xlabel="image x (nm)", ylabel="image y (nm)",
       aspect="equal")
ax.legend(loc="upper right", fontsize=8)
fig.tight_layout()
fig.savefig(here / "structure_paper_fig1.png", dpi=110)
print("wrote", here / "structure_paper_fig1.png")

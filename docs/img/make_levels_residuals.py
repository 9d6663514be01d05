"""Residuals of the level model against the literature table (docs/optics.md). Rerun:
PYTHONPATH=src python docs/img/make_levels_residuals.py"""
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from nanodomains import materials
from nanodomains.files import atomic_path
from nanodomains.optics import levels as lv
from nanodomains.optics import literature as li

fig, ax = plt.subplots(1, 2, figsize=(9, 3.6))
sizes = np.linspace(3.5, 20, 60)
for f, c, name in ((1.0, "tab:green", "CsPbBr3"), (0.0, "tab:red", "CsPbI3"), (0.4, "tab:orange", "CsPbBr1.2I1.8")):
    e = lv.exciton_arrays(f, np.repeat(sizes[:, None], 3, 1), "RT").energy_ev
    ax[0].plot(sizes, materials.wavelength_nm(e), color=c, label=name)
for use, mk in (("fit", "o"), ("check", "s"), ("heldout", "*")):
    p = li.pl_points(use=use)
    ax[0].errorbar(p["edge_nm"], materials.wavelength_nm(p["energy_ev"]), xerr=p["edge_sd_nm"], fmt=mk, color="k",
                   label=f"table: {use}")
    model = [lv.exciton_state(f, e, "RT").energy_ev for f, e in zip(p["br_fraction"], p["edge_nm"])]
    ax[1].errorbar(p["edge_nm"], 1e3 * (np.array(model) - p["energy_ev"]), yerr=1e3 * p["energy_sd_ev"], fmt=mk,
                   color="k", label=use)
ax[0].set(xlabel="edge (nm)", ylabel="RT PL peak (nm)")
ax[0].legend(fontsize=7)
ax[1].axhline(0, color="0.6")
ax[1].set(xlabel="edge (nm)", ylabel="model - data (meV)")
ax[1].legend(fontsize=7)
fig.tight_layout()
with atomic_path(Path(__file__).with_name("levels_residuals.png")) as tmp:
    fig.savefig(tmp, dpi=110, format="png")

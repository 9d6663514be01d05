"""Make docs/img/stem_overview.png: GPA and atom columns on a synthetic CsPbX3 image
with a Ruddlesden-Popper fault, and on the real PbTiO3/SrRuO3 image.

Run from the repository root: python docs/img/make_stem_overview.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nanodomains.stem.columns import CLASSIFY_REFLECTIONS, find_columns, render_columns  # noqa: E402
from nanodomains.stem.gpa import gpa  # noqa: E402
from nanodomains.stem.io import image_from_array, load_image  # noqa: E402

HERE = Path(__file__).resolve().parent
REAL = HERE.parents[2] / "shared" / "realdata" / "stem" / "pto_sro_haadf.hspy"


def synthetic_cspbx3(n_px=320, a_px=23.6, fault_x_px=150.0, dose=200, seed=0):
    """[100] CsPbI3-like columns (Z^1.7 intensities), RP shift (a/2, a/2) beyond x_b."""
    m = int(n_px / a_px) + 4
    i, j = np.meshgrid(np.arange(-2, m), np.arange(-2, m), indexing="ij")
    z = {"Cs": 55**1.7, "PbX": 82**1.7 + 53**1.7, "X": 53**1.7}
    pos, amp = [], []
    for (fy, fx), t in (((0, 0), "Cs"), ((0.5, 0.5), "PbX"), ((0, 0.5), "X"), ((0.5, 0), "X")):
        y, x = (i + fy).ravel() * a_px, (j + fx).ravel() * a_px
        sh = x > fault_x_px
        pos.append(np.stack([y + sh * a_px / 2, x + sh * a_px / 2], 1))
        amp.append(np.full(y.size, z[t] / z["PbX"]))
    img = render_columns((n_px, n_px), np.concatenate(pos), np.concatenate(amp), 2.4, background=0.05)
    return np.random.default_rng(seed).poisson(img * dose) / dose


def show_columns(ax, da, tab, colours):
    px = da.attrs["pixel_size_pm"] * 1e-3
    ext = [float(da.x[0]), float(da.x[-1]), float(da.y[-1]), float(da.y[0])]
    ax.imshow(da.values, cmap="gray", extent=ext)
    for t, c in colours.items():
        s = tab[tab.type == t]
        ax.plot(s.x_nm, s.y_nm, ".", ms=3, c=c, label=t)
    ax.legend(loc="upper right", fontsize=7, markerscale=2, framealpha=0.7)
    ax.set_xlabel("x (nm)")
    return px


def main() -> None:
    da = image_from_array(synthetic_cspbx3(), 25.0, title="synthetic CsPbI3, RP fault")
    res = gpa(da, reflections=CLASSIFY_REFLECTIONS)
    tab = find_columns(da, res)
    fig, axes = plt.subplots(2, 3, figsize=(13, 8.5))
    ext = [float(da.x[0]), float(da.x[-1]), float(da.y[-1]), float(da.y[0])]
    show_columns(axes[0, 0], da, tab, {"Cs": "tab:blue", "PbX": "tab:red", "X": "gold"})
    axes[0, 0].set_title("columns: Cs / PbX swap across the RP fault")
    im = axes[0, 1].imshow(res.amplitude_100_norm, cmap="viridis", vmin=0, vmax=1, extent=ext)
    axes[0, 1].set_title("(100) GPA amplitude, normalised")
    fig.colorbar(im, ax=axes[0, 1], shrink=0.8)
    im = axes[0, 2].imshow(res.phase[0], cmap="twilight", vmin=-np.pi, vmax=np.pi, extent=ext)
    axes[0, 2].set_title("(100) phase (rad): pi step at the fault")
    fig.colorbar(im, ax=axes[0, 2], shrink=0.8)
    real = load_image(REAL).isel(x=slice(0, 560))
    rres = gpa(real, reflections=CLASSIFY_REFLECTIONS, unwrap=False)
    rtab = find_columns(real, rres, names=("B", "A", "O"), method="global")
    ax = plt.subplot2grid((2, 3), (1, 0), colspan=2, fig=fig)
    axes[1, 0].remove()
    axes[1, 1].remove()
    show_columns(ax, real, rtab, {"A": "tab:red", "B": "tab:cyan", "unindexed": "m"})
    ax.set_title("PbTiO3/SrRuO3 HAADF (TEMUL example data): A and B sublattices")
    rext = [float(real.x[0]), float(real.x[-1]), float(real.y[-1]), float(real.y[0])]
    im = axes[1, 2].imshow(rres.exx, cmap="RdBu_r", vmin=-0.05, vmax=0.05, extent=rext)
    axes[1, 2].set_title("PbTiO3/SrRuO3: GPA exx")
    fig.colorbar(im, ax=axes[1, 2], shrink=0.6)
    for a in fig.axes:
        if a.get_label() != "<colorbar>":
            a.set_ylabel("y (nm)")
    fig.tight_layout()
    out = HERE / "stem_overview.png"
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

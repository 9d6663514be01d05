"""Figure for docs/stem_simulation.md: simulated ADF-STEM and EDS of the paper_fig1 NC, with truth.

Run from the repository root: python docs/img/make_stem_simulation_figure.py
Writes docs/img/stem_simulation.png (about 20 s).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nanodomains.stem import eds, linescan, tables  # noqa: E402
from nanodomains.stem.io import decode_array  # noqa: E402
from nanodomains.stem.probe import ProbeParameters  # noqa: E402
from nanodomains.stem.simulate import simulate_image  # noqa: E402
from nanodomains.structure import paper_fig1  # noqa: E402

OUT = Path(__file__).with_name("stem_simulation.png")


def main() -> None:
    nc = paper_fig1(seed=1)
    res = simulate_image(nc, seed=2, rotation_deg=8.0)
    img = res.image.values
    truth = res.truth
    h = truth["pixel_size_pm"] * 1e-3
    labels = decode_array(truth["label_map"])
    ext = [0, img.shape[1] * h, img.shape[0] * h, 0]

    fig, ax = plt.subplots(2, 3, figsize=(15, 9.6))
    a = ax[0, 0]
    a.imshow(img, cmap="gray", extent=ext, vmax=np.percentile(img, 99.8))
    for b in truth["model_boundaries"]:
        if b["edge_on"]:
            (x0, y0), (x1, y1) = b["segment_nm"]
            a.plot([x0, x1], [y0, y1], "-" if b["type"] == "RP" else ":", color="tab:red" if b["type"] == "RP"
                   else "tab:cyan", lw=1)
    a.set_title("incoherent ADF-STEM, 1e5 e/A$^2$, 20 pm px, 8$^\\circ$\n(truth boundaries: red RP, cyan coherent)")
    a.set_xlabel("x (nm)")
    a.set_ylabel("y (nm)")

    a = ax[0, 1]
    seg = next(b for b in truth["model_boundaries"] if b["model_domains"] == [0, 2])  # R1 | R3, RP
    (x0, y0), (x1, y1) = seg["segment_nm"]
    cx, cy = (x0 + x1) / 2 / h, (y0 + y1) / 2 / h
    w = int(1.2 / h)
    crop = img[int(cy - w):int(cy + w), int(cx - w):int(cx + w)]
    a.imshow(crop, cmap="gray", extent=[(cx - w) * h, (cx + w) * h, (cy + w) * h, (cy - w) * h])
    c = truth["columns"]
    x, y = np.array(c["x_nm"]), np.array(c["y_nm"])
    n_cs, n_pb = np.array(c["n_cs"]), np.array(c["n_pb"])
    kind = np.where(n_pb > n_cs, "Pb+X", np.where(n_cs > 0, "Cs", "X"))
    sel = (np.abs(x - cx * h) < w * h) & (np.abs(y - cy * h) < w * h)
    for typ, col in (("Cs", "tab:orange"), ("Pb+X", "tab:blue"), ("X", "tab:green")):
        m = sel & (kind == typ)
        a.scatter(x[m], y[m], s=5, c=col, label=f"{typ} column (truth)")
    a.plot([x0, x1], [y0, y1], "r-", lw=0.8)
    a.set_xlim((cx - w) * h, (cx + w) * h)
    a.set_ylim((cy + w) * h, (cy - w) * h)
    a.legend(loc="upper right", fontsize=8)
    a.set_title("detail across the R1 | R3 RP fault:\nCs and Pb+X columns swap sites")
    a.set_xlabel("x (nm)")

    a = ax[0, 2]
    cmap = plt.get_cmap("tab10")
    lab = np.ma.masked_less(labels, 0)
    a.imshow(lab, cmap=cmap, vmin=0, vmax=9, extent=ext, interpolation="nearest")
    for d in truth["record"].domains:
        if d.visible:
            a.text(*d.centroid_nm, f"R{d.id + 1}\nb={d.br_fraction.value:.2f}\ns={d.shifted_fraction.value:.2f}",
                   ha="center", va="center", fontsize=9, color="white")
    a.set_title("truth label map (majority domain along the beam)")
    a.set_xlabel("x (nm)")

    a = ax[1, 0]
    s = np.linspace(0, 1, 41)
    bare = tables.power_law_table([0.0, 0.5, 1.0], s, [24])
    seen = tables.power_law_table([0.0, 0.5, 1.0], s, [24], crosstalk_probe=ProbeParameters())
    for i, b in enumerate([0.0, 0.5, 1.0]):
        r = tables.column_ratios(bare)["cs_pbx"].isel(br_fraction=i, thickness_cells=0)
        a.plot(s, r, color=cmap(i), label=f"b = {b:g}")
        r = tables.column_ratios(seen)["cs_pbx"].isel(br_fraction=i, thickness_cells=0)
        a.plot(s, r, "--", color=cmap(i))
    a.set_yscale("log")
    a.set_xlabel("shifted-cell fraction s")
    a.set_ylabel("I(Cs site) / I(PbX site)")
    a.set_title("power-law table, 24 cells, n = 1.7\n(dashed: as a/2-square integration sees it)")
    a.legend()

    a = ax[1, 1]
    em = eds.simulate_eds(nc, seed=3, dose_e_per_a2=5e7)
    br, io = em.maps["Br_K"].values.astype(float), em.maps["I_L"].values.astype(float)
    from scipy import ndimage

    k = 6
    sb, si = ndimage.uniform_filter(br, k), ndimage.uniform_filter(io, k)
    frac = np.where(sb + si > 0.02, (sb / 37.08) / (sb / 37.08 + si / 36.0 + 1e-12), np.nan)
    eh = em.maps.attrs["pixel_size_pm"] * 1e-3
    im = a.imshow(frac, cmap="viridis", vmin=0.1, vmax=0.7, extent=[0, br.shape[1] * eh, br.shape[0] * eh, 0])
    fig.colorbar(im, ax=a, label="Br fraction (EDS, 0.3 nm box)")
    seg = next(b for b in em.truth["model_boundaries"] if b["model_domains"] == [0, 1])
    (x0, y0), (x1, y1) = seg["segment_nm"]
    xb, ym = (x0 + x1) / 2, (y0 + y1) / 2
    a.plot([xb - 5, xb + 5], [ym, ym], "w-", lw=1)
    a.set_title("EDS Br K / I L, 5e7 e/A$^2$, 50 pm px")
    a.set_xlabel("x (nm)")

    a = ax[1, 2]
    prof = linescan.line_scan(em.maps, (xb - 5, ym), (xb + 5, ym), width_nm=3.0, bin_nm=0.6)
    a.errorbar(prof["distance_nm"] - 5, prof["br_fraction"], prof["br_fraction_err"], fmt="o", ms=4)
    dd = {d.id: d.projected_br_fraction.value for d in em.truth["record"].domains}
    a.hlines([dd[0]], -5, 0, colors="tab:red", label="truth R1 (projected)")
    a.hlines([dd[1]], 0, 5, colors="tab:orange", label="truth R2 (+R5 behind)")
    a.axvline(0, color="gray", lw=0.8)
    a.set_xlabel("distance from the R1-R2 RP boundary (nm)")
    a.set_ylabel("Br fraction")
    a.set_title("EDS line scan across R1 | R2 (3 nm band)")
    a.legend()
    fig.tight_layout()
    fig.savefig(OUT, dpi=80)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

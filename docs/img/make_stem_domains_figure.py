"""Figures and numbers for the segmentation / composition part of docs/stem_analysis.md.

Simulates the paper_fig1 NC (incoherent, 1e5 e/A^2, default probe, seed 1), analyses
it with `nanodomains.stem.analyze.analyze_image`, and writes

- docs/img/stem_domains_overview.png: the overview figure `stem analyze` writes;
- docs/img/stem_domains_maps.png: registry map, local lattice map, contrast map and
  the found domains against the truth;
- docs/img/stem_domains_numbers.json: per-domain results next to the projected truth.

Run from the repository root: ``python docs/img/make_stem_domains_figure.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent

from nanodomains.stem.analyze import analyze_image  # noqa: E402
from nanodomains.stem.simulate import simulate_image  # noqa: E402
from nanodomains.stem.validation import match_regions, projected_regions  # noqa: E402
from nanodomains.structure import paper_fig1  # noqa: E402


def main() -> None:
    sim = simulate_image(paper_fig1(seed=1), pixel_size_pm=20.0, dose_e_per_a2=1e5, seed=1)
    res = analyze_image(sim.image, n_boot=300)
    res.plot_overview(HERE / "stem_domains_overview.png")
    seg = res.segmentation
    tm, regions = projected_regions(sim.truth)
    matches = match_regions(seg.labels, tm, regions)
    h = sim.image.attrs["pixel_size_pm"] * 1e-3
    ext = (0, sim.image.shape[1] * h, sim.image.shape[0] * h, 0)
    fig, ax = plt.subplots(1, 4, figsize=(18, 4.6))
    im = ax[0].imshow(seg.registry_map, cmap="RdBu", vmin=-1, vmax=1, extent=ext)
    ax[0].set_title("registry map rho")
    fig.colorbar(im, ax=ax[0], shrink=0.8)
    lat = np.where(seg.nc_mask, seg.lattice_map_pm, np.nan)
    im = ax[1].imshow(lat, cmap="viridis", extent=ext, vmin=np.nanpercentile(lat, 2), vmax=np.nanpercentile(lat, 98))
    ax[1].set_title("local cell edge a (pm), (110) lock-ins")
    fig.colorbar(im, ax=ax[1], shrink=0.8)
    im = ax[2].imshow(np.where(seg.nc_mask, seg.contrast_map, np.nan), cmap="magma", extent=ext)
    ax[2].set_title("contrast kappa (cation-site contrast)")
    fig.colorbar(im, ax=ax[2], shrink=0.8)
    ax[3].imshow(np.where(tm >= 0, tm, np.nan), cmap="Pastel1", extent=ext)
    ax[3].contour(seg.labels, levels=np.arange(0.5, seg.n_domains + 1), colors="k", linewidths=0.8,
                  extent=(ext[0], ext[1], ext[3], ext[2]), origin="upper")
    ax[3].set_title("truth (colour), found domains (black)")
    for a in ax:
        a.set_xlabel("x (nm)")
    ax[0].set_ylabel("y (nm)")
    fig.tight_layout()
    fig.savefig(HERE / "stem_domains_maps.png", dpi=90)
    rows = []
    by_id = {d.id: d for d in res.domains}
    for m in matches:
        d = by_id[m["match"]]
        rows.append({"domain": d.name, "model_domains": m["model_domains"], "iou": round(m["iou"], 3),
                     "area_nm2": round(d.area_nm2, 1),
                     "lattice_pm": round(d.lattice_pm.value, 2), "lattice_pm_err": round(d.lattice_pm.stderr, 3),
                     "lattice_truth_pm": round(m["lattice_pm"], 2),
                     "br_fraction": d.br_fraction.value, "br_fraction_err": d.br_fraction.stderr,
                     "br_fraction_truth": round(m["br_fraction"], 3),
                     "shifted_fraction": d.shifted_fraction.value, "shifted_fraction_err": d.shifted_fraction.stderr,
                     "shifted_fraction_truth": round(m["shifted_fraction"], 3), "formula": d.formula,
                     "vegard_br_fraction": round(d.composition.vegard_br_fraction.value, 3),
                     "vegard_agrees": d.composition.vegard_agrees})
    rec = res.record
    out = {"image": "paper_fig1, incoherent, 1e5 e/A^2, 20 pm, seed 1", "elapsed_s": round(rec.elapsed_s, 1),
           "table": rec.table.note, "thickness": rec.thickness, "domains": rows,
           "boundaries": [{"domains": list(b.domains), "type": b.type, "length_nm": b.length_nm}
                          for b in res.boundaries]}
    (HERE / "stem_domains_numbers.json").write_text(json.dumps(out, indent=1, default=float))
    print(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()

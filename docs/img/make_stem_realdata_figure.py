"""The `stem analyze` overview of real images (issue 13) and the numbers quoted in docs/stem_analysis.md.

Run from the repository root (the real files are in ../shared/realdata, see its README):

    python docs/img/make_stem_realdata_figure.py

Writes docs/img/stem_realdata_stemfit_overview.png (the STEMfit tri-layer, calibrated
on its SrTiO3 substrate as 390.5 pm) and docs/img/stem_realdata_numbers.json (that
analysis beside STEMfit's own per-column results, STOimage_1 in the default mode,
the crop from inside the paper_fig1 nanocrystal without vacuum).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nanodomains.files import write_json_atomic
from nanodomains.stem.analyze import analyze_image

ROOT = Path(__file__).resolve().parents[2]
STEM = ROOT.parent / "shared" / "realdata" / "stem"
OUT = Path(__file__).resolve().parent


def stemfit() -> dict:
    t = time.perf_counter()
    res = analyze_image(STEM / "stemfit_oxide_trilayer_on_STO.tif", names=("B", "A", "O"), calibrate_lattice_pm=390.5,
                        calibration_region=(slice(1000, 1258), slice(0, 1258)))
    elapsed = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        paths = res.write(tmp)
        shutil.copy(paths["overview"], OUT / "stem_realdata_stemfit_overview.png")
    ref = pd.read_csv(STEM / "stemfit_oxide_trilayer_on_STO.STEMfit_results.csv")
    layers = []
    for d, (lo, hi) in zip(sorted(res.domains, key=lambda d: d.centroid_nm[1]), ((0, 15), (15, 25), (27.5, 34.5))):
        sel = (ref["y0 (nm)"] >= lo) & (ref["y0 (nm)"] < hi)
        a1, a2 = (1e3 * ref.loc[sel, c].median() for c in ("vector 1 lp (nm)", "vector 2 lp (nm)"))
        layers.append({"domain": d.name, "in_plane_pm": d.lattice_a1_pm.value, "out_of_plane_pm": d.lattice_a2_pm.value,
                       "stemfit_in_plane_pm": a1, "stemfit_out_of_plane_pm": a2,
                       "rel_diff": [d.lattice_a1_pm.value / a1 - 1, d.lattice_a2_pm.value / a2 - 1]})
    seg = res.segmentation
    return {"pixel_size_pm": res.record.pixel_size_pm, "width_nm": 1258 * res.record.pixel_size_pm * 1e-3,
            "layers": layers, "labelled_fraction": float((seg.labels > 0).mean()),
            "boundaries": [{"domains": b.domains, "type": b.type, "length_nm": b.length_nm,
                            "lattice_step_rel": b.lattice_step_rel, "evidence": b.evidence} for b in res.boundaries],
            "elapsed_s": elapsed}


def sto_default() -> dict:
    res = analyze_image(STEM / "ncem_STO_16_STOimage_1.ser")
    d = res.domains[0]
    return {"n_domains": len(res.domains), "n_boundaries": len(res.boundaries),
            "lattice_pm": [d.lattice_pm.value, d.lattice_pm.stderr], "not_computed": res.record.not_computed}


def crop_without_vacuum() -> dict:
    from nanodomains.stem.validation import projected_regions
    from nanodomains.testing.stem import simulated

    sim = simulated("fig1", 1)
    tm, regions = projected_regions(sim.truth)
    res = analyze_image(sim.image.isel(y=slice(110, 770), x=slice(110, 770)), thickness_nm=15.0, n_boot=200)
    by_label = {r["label"]: r for r in regions}
    tmc, lab = tm[110:770, 110:770], res.segmentation.labels
    rows = []
    for d in res.domains:
        t = by_label[int(np.bincount(tmc[lab == d.id] + 1).argmax()) - 1]
        rows.append({"domain": d.name, "br_fraction": [d.br_fraction.value, d.br_fraction.stderr],
                     "br_truth": t["br_fraction"], "lattice_pm": d.lattice_pm.value, "lattice_truth": t["lattice_pm"]})
    bg = res.record.background
    return {"background": {"method": bg.method, "level_per_px": bg.level_per_px.value}, "domains": rows,
            "boundaries": [b.type for b in res.boundaries]}


if __name__ == "__main__":
    numbers = {"stemfit_trilayer": stemfit(), "sto_image_1_default": sto_default(),
               "fig1_crop_without_vacuum": crop_without_vacuum()}
    write_json_atomic(numbers, OUT / "stem_realdata_numbers.json")
    print(json.dumps(numbers, indent=1, default=str))

"""Accuracy of the joint Z-contrast inversion on the multislice validation images.

Every shipped validation image (tests/data/zcontrast_validation) at every thickness, with
3 counting-noise realisations at 1e5 e/A^2, thickness fitted (absolute intensities) and
thickness known (5 %): errors of b, m, s and thickness, coverage of the 90 % intervals,
how often s is resolved; the boundary image per domain. Prints Markdown tables
(docs/stem_zcontrast.md).

    PYTHONPATH=src python -W ignore benchmarks/zcontrast_validation.py [--images DIR] [--interp-scale X]

``--images`` names other folders of validation images (pooled; e.g. the second set made
with ``nanodomains stem validation-images --seed 107``); ``--interp-scale`` multiplies the
model's interpolation error (``RegistryModel.interp_rel_err``).
"""

import argparse
import time
from pathlib import Path

import numpy as np
import xarray as xr

from nanodomains.stem.validation import registry_case
from nanodomains.stem.zcontrast import RegistryModel, load_registry_table

VALID = Path(__file__).resolve().parents[1] / "tests" / "data" / "zcontrast_validation"


def rows(model, seeds=(0, 1, 2), folder=VALID):
    out = []
    for f in sorted(Path(folder).glob("*.nc")):
        ds = xr.load_dataset(f)
        domains = [None] if f.stem != "boundary" else [(0, 1), (2, 3)]
        for cells in domains:
            for i in range(ds.sizes["thickness_cells"]):
                for known in (False, True):
                    for seed in seeds:
                        r = registry_case(ds, i, model, seed=seed, thickness_known=known, x_cells=cells)
                        r["case"] = f.stem + ("" if cells is None else f"[{cells[0]}-{cells[1]}]")
                        r["known"] = known
                        r["seed"] = seed
                        out.append(r)
    return out


def summary(rs):
    f = [r["fit"] for r in rs]
    b_err = np.array([x.br_fraction - r["b_true"] for x, r in zip(f, rs)])
    b_cov = np.mean([x.br_fraction_ci90[0] <= r["b_true"] <= x.br_fraction_ci90[1] for x, r in zip(f, rs)])
    m_true = np.array([min(r["s_true"], 1 - r["s_true"]) for r in rs])
    m_err = np.array([x.mixed_fraction for x in f]) - m_true
    m_cov = np.mean([x.mixed_fraction_ci90[0] <= mt <= x.mixed_fraction_ci90[1] for x, mt in zip(f, m_true)])
    t_err = np.array([x.thickness_nm / r["t_true_nm"] - 1 for x, r in zip(f, rs)])
    res = [(x, r) for x, r in zip(f, rs) if x.shifted_fraction is not None]
    s_err = np.array([x.shifted_fraction - r["s_true"] for x, r in res]) if res else np.array([np.nan])
    amb_b = np.mean([x.br_fraction_status != "determined" for x in f])
    det = np.array([x.br_fraction_status == "determined" for x in f])
    det_max = np.max(np.abs(b_err[det])) if det.any() else np.nan
    return {"n": len(rs), "b_rms": np.sqrt(np.mean(b_err**2)), "b_max": np.max(np.abs(b_err)),
            "b_within_0.05": np.mean(np.abs(b_err) <= 0.05), "b_cov90": b_cov, "b_ambiguous": amb_b,
            "b_det": det.mean(), "b_det_max": det_max,
            "ci_width": np.mean([x.br_fraction_ci90[1] - x.br_fraction_ci90[0] for x in f]),
            "m_rms": np.sqrt(np.mean(m_err**2)), "m_cov90": m_cov, "s_resolved": len(res) / len(rs),
            "s_max_err": np.nanmax(np.abs(s_err)), "t_max": np.max(np.abs(t_err)), "t_rms": np.sqrt(np.mean(t_err**2))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", nargs="+", default=[str(VALID)],
                    help="folder(s) of validation images (<case>.nc); several folders are pooled")
    ap.add_argument("--interp-scale", type=float, default=1.0, help="factor on the interpolation error")
    args = ap.parse_args()
    t0 = time.perf_counter()
    base = RegistryModel.__dataclass_fields__["interp_rel_err"].default
    model = RegistryModel(load_registry_table(), interp_rel_err=tuple(args.interp_scale * e for e in base))
    print(f"images {args.images}; interpolation error {model.interp_rel_err}")
    rs = [r for folder in args.images for r in rows(model, folder=folder)]
    print(f"{len(rs)} inversions in {time.perf_counter() - t0:.0f} s\n")
    print("| thickness | cases | b rms | b max | b within 0.05 | b determined (max err) | b 90 % coverage | "
          "mean 90 % width | m rms | m 90 % coverage | s resolved (max err) | thickness rms / max |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for known in (False, True):
        for nm in (8, 12, 16, 24):
            sel = [r for r in rs if r["known"] == known and abs(r["t_true_nm"] - nm) < 1.0]
            if not sel:
                continue
            s = summary(sel)
            print(f"| {nm} nm, {'given' if known else 'fitted'} | {s['n']} | {s['b_rms']:.3f} | {s['b_max']:.3f} | "
                  f"{s['b_within_0.05']:.0%} | {s['b_det']:.0%} ({s['b_det_max']:.3f}) | {s['b_cov90']:.0%} | {s['ci_width']:.2f} | {s['m_rms']:.3f} | "
                  f"{s['m_cov90']:.0%} | {s['s_resolved']:.0%} ({s['s_max_err']:.2f}) | "
                  f"{s['t_rms']:.1%} / {s['t_max']:.1%} |")
        s = summary([r for r in rs if r["known"] == known])
        print(f"| all, {'given' if known else 'fitted'} | {s['n']} | {s['b_rms']:.3f} | {s['b_max']:.3f} | "
              f"{s['b_within_0.05']:.0%} | {s['b_det']:.0%} ({s['b_det_max']:.3f}) | {s['b_cov90']:.0%} | {s['ci_width']:.2f} | {s['m_rms']:.3f} | "
              f"{s['m_cov90']:.0%} | {s['s_resolved']:.0%} ({s['s_max_err']:.2f}) | "
              f"{s['t_rms']:.1%} / {s['t_max']:.1%} |")
    print("\nper case (thickness fitted, seed 0):\n")
    print("| case | N | b true | b (90 %) | s true | s / status | m (90 %) | thickness nm true / fit |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rs:
        if r["known"] or r["seed"] != 0:
            continue
        x = r["fit"]
        s = f"{x.shifted_fraction:.2f}" if x.shifted_fraction is not None else f"ambiguous (P_entr {x.p_minority_at_entrance:.2f})"
        print(f"| {r['case']} | {r['n_true']} | {r['b_true']:.3f} | {x.br_fraction:.3f} ({x.br_fraction_ci90[0]:.2f}-"
              f"{x.br_fraction_ci90[1]:.2f}) | {r['s_true']:.3f} | {s} | {x.mixed_fraction:.2f} "
              f"({x.mixed_fraction_ci90[0]:.2f}-{x.mixed_fraction_ci90[1]:.2f}) | {r['t_true_nm']:.1f} / "
              f"{x.thickness_nm:.1f} |")


if __name__ == "__main__":
    main()

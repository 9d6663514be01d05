"""Batch throughput per item type on dask.distributed: 1 worker vs 2 workers.

Makes a manifest of ``--per-kind`` items of each kind (NC models, simulated PL movies,
simulated pulsed photon streams, simulated ADF-STEM images when the STEM analysis is
installed) in a temporary folder, runs ``run_batch`` with a LocalCluster of 1 and of 2
worker processes (one thread each), and prints items per minute for each kind and the
speed-up. Cluster start-up is included (it is part of what a user waits for).

Usage::

    python benchmarks/bench_batch.py [--per-kind 6]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd

from nanodomains.pipeline.batch import HANDLERS, run_batch


def make_items(folder: Path, per_kind: int) -> dict[str, list[dict]]:
    from nanodomains.optics import movies, presets
    from nanodomains.structure import random_domains

    items: dict[str, list[dict]] = {"nc_model": [], "pl_movie": [], "photons_g2": []}
    names = ["fig4_doublet", "fig4_triplet", "fig5d", "fig5c", "fig5b", "fig4_charging"]
    for i in range(per_kind):
        random_domains(15.0, n_domains=1 + i % 4, seed=i).to_json(folder / f"nc{i}.json")
        items["nc_model"].append({"id": f"nc{i}", "path": f"nc{i}.json"})
        movie, truth = presets.simulate_preset_movie(names[i % len(names)], seed=i + 1)
        movies.save_movie(movie, truth, folder / f"movie{i}.nc")
        items["pl_movie"].append({"id": f"movie{i}", "kind": "pl_movie", "path": f"movie{i}.nc"})
        sim = presets.photons_from(preset_name="fig4_doublet", mode="pulsed", seed=i, duration_s=20.0,
                                   efficiency=0.1, t3=True)
        presets.write_photon_file(sim, folder / f"tags{i}.ptu")
        items["photons_g2"].append({"id": f"tags{i}", "path": f"tags{i}.ptu", "mode": "pulsed"})
    if "stem_image" in HANDLERS:
        from nanodomains.stem.simulate import simulate_image, write_simulation
        from nanodomains.structure import paper_fig1

        items["stem_image"] = []
        for i in range(per_kind):
            res = simulate_image(paper_fig1(seed=i), pixel_size_pm=20.0, dose_e_per_a2=1e5, seed=i)
            write_simulation(res, folder / f"img{i}.tif")
            items["stem_image"].append({"id": f"img{i}", "kind": "stem_image", "path": f"img{i}.tif"})
    return items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-kind", type=int, default=6)
    args = ap.parse_args()
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    print(f"machine: {cpu}, nproc {os.cpu_count()}, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        items = make_items(folder, args.per_kind)
        for kind, its in items.items():
            manifest = folder / f"{kind}.csv"
            pd.DataFrame(its).to_csv(manifest, index=False)
            times = {}
            for workers in (1, 2):
                t0 = time.perf_counter()
                recs = run_batch(manifest, folder / f"out_{kind}_{workers}", workers=workers)
                times[workers] = time.perf_counter() - t0
                bad = [r for r in recs if r["status"] != "ok"]
                if bad:
                    raise SystemExit(f"{kind}: {len(bad)} items failed: {bad[0].get('error')}")
            rows.append((kind, len(its), times[1], times[2]))
    print("\n| item type | items | 1 worker (s) | 2 workers (s) | items/min, 1 worker | items/min, 2 workers | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for kind, n, t1, t2 in rows:
        print(f"| {kind} | {n} | {t1:.1f} | {t2:.1f} | {60 * n / t1:.0f} | {60 * n / t2:.0f} | {t1 / t2:.2f}x |")


if __name__ == "__main__":
    main()

"""Coverage of `nanodomains infer` on NCs from the growth model (issue 16 acceptance).

For each multi-domain NC (2-4 domains) of a simulated CsPbBr1.2I1.8 population:

1. shared material parameters are drawn from the inverse's own priors (bowing, gap
   offset, exchange scale: simulation-based calibration, Talts et al. 2018,
   arXiv:1804.06788: a calibrated posterior's 90 % intervals then cover the truth in
   90 % of cases);
2. the NC's dynamics and 4 K PL movie are simulated (`optics.emitters`,
   `optics.movies`, a 150 nm window at 0.025 nm/px, 0.05 nm resolution) without
   charging (``--charging`` turns it on: `pl analyze` then reports unpaired trion
   lines as singlets, which `infer` must treat as extra domains; measured in the docs);
3. the movie is analysed (`spectroscopy.movie_analysis.analyze_movie`) and every found
   neutral emitter is matched to the truth emitter nearest in centre (< 0.3 nm);
4. `infer_emitters` runs on the analysis record, without and with a STEM prior; the
   STEM prior is the truth's domain compositions with the error the Z-contrast
   inversion achieves on multislice images (sd 0.05, docs/stem_zcontrast.md) and
   projected areas with 15 % scatter, each drawn at random (stated: no STEM image is
   simulated here).

Prints and writes (JSON lines, resumable) per domain: truth f and t, posterior mean,
90 % interval, covered, interval width with and without STEM.

    PYTHONPATH=src python benchmarks/infer_coverage.py --n 100 --out coverage.jsonl
    PYTHONPATH=src python benchmarks/infer_coverage.py --summary coverage.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from nanodomains import growth, materials
from nanodomains.optics import levels as lv
from nanodomains.optics.emitters import DynamicsParameters, simulate_dynamics
from nanodomains.optics.movies import Spectrometer, simulate_movie
from nanodomains.spectroscopy import inference as inf
from nanodomains.spectroscopy.movie_analysis import analyze_movie

SPECTROMETER = Spectrometer(n_pixels=6000, dispersion_nm_per_px=0.025, resolution_nm=0.05)


def shared_truth(rng, priors: inf.InferencePriors) -> dict:
    return {"bowing_ev": float(rng.uniform(*priors.bowing_ev)),
            "gap_offset_ev": float(rng.normal(0, priors.gap_offset_sd_ev)),
            "exchange_scale": float(rng.normal(1, priors.exchange_rel_sd))}


def parameters_for(truth: dict):
    mp = materials.DEFAULT_PARAMETERS
    g = mp.bandgap_4k_ev
    mp = replace(mp, bowing_ev=truth["bowing_ev"],
                 bandgap_4k_ev=replace(g, br=g.br + truth["gap_offset_ev"], i=g.i + truth["gap_offset_ev"]))
    lp = replace(lv.DEFAULT_LEVEL_PARAMETERS,
                 exchange_volume_mev_nm3=lv.DEFAULT_LEVEL_PARAMETERS.exchange_volume_mev_nm3 * truth["exchange_scale"])
    return lp, mp


def stem_prior_for(nc, rng, sd=0.05, area_sd=0.15) -> inf.StemPrior:
    f = np.array([d.br_fraction for d in nc.domains])
    size = np.array([d.region.size_nm for d in nc.domains])
    stack = int(np.argmax(np.std(size, axis=0))) if len(nc.domains) > 1 else 0  # the slab axis
    thick = size[:, stack]
    lateral = np.sqrt(np.prod(np.delete(size, stack, axis=1), axis=1))
    area = thick * lateral * (1 + area_sd * rng.normal(size=f.size))
    return inf.StemPrior(br_fraction=np.clip(f + sd * rng.normal(size=f.size), 0, 1),
                         br_fraction_sd=np.full(f.size, sd), area_nm2=area, area_rel_sd=area_sd,
                         source="truth + STEM-like errors (benchmarks/infer_coverage.py)")


def one_nc(i, nc, rng, steps, charging=False) -> list[dict]:
    priors = inf.InferencePriors()
    truth = shared_truth(rng, priors)
    lp, mp = parameters_for(truth)
    dyn = simulate_dynamics(nc, duration_s=120.0, seed=int(rng.integers(2**31)),
                            params=DynamicsParameters() if charging else DynamicsParameters(charge_rate_per_s=0.0),
                            level_params=lp, material_params=mp)
    movie, truth_rec = simulate_movie(dyn, spectrometer=SPECTROMETER, seed=int(rng.integers(2**31)))
    found = analyze_movie(movie).record
    size = {d.id: d.region.size_nm for d in nc.domains}
    stack = int(np.argmax(np.std(np.array(list(size.values())), axis=0)))
    rows = []
    runs = {}
    try:
        runs["plain"] = inf.infer_emitters(found, settings=inf.InferenceSettings(n_steps=steps, seed=i)).record
        runs["stem"] = inf.infer_emitters(found, stem=stem_prior_for(nc, rng),
                                          settings=inf.InferenceSettings(n_steps=steps, seed=i)).record
    except Exception as exc:  # reported, never hidden: the row says why
        return [{"nc": i, "error": f"{type(exc).__name__}: {exc}"}]
    truth_em = [e for e in truth_rec.emitters if e.state == "X"]
    for d in runs["plain"].domains:
        c = d.measured_center_nm.value
        near = min(truth_em, key=lambda e: abs(e.center_nm.value - c))
        if abs(near.center_nm.value - c) > 0.3 or near.domain is None:
            rows.append({"nc": i, "emitter": d.emitter_id, "unmatched": True})
            continue
        dom = next(x for x in nc.domains if x.id == near.domain)
        f_true, t_true = float(dom.br_fraction), float(dom.region.size_nm[stack])
        row = {"nc": i, "emitter": d.emitter_id, "kind": d.kind, "n_domains": len(nc.domains),
               "f_true": f_true, "t_true": t_true, "shared_truth": truth}
        for key, rec in runs.items():
            dd = rec.domain(d.emitter_id)
            lo, hi = dd.br_fraction_ci90
            row[key] = {"f_mean": dd.br_fraction.value, "f_ci90": [lo, hi], "covered": lo <= f_true <= hi,
                        "width": hi - lo, "t_ci90": list(dd.thickness_nm_ci90),
                        "t_covered": dd.thickness_nm_ci90[0] <= t_true <= dd.thickness_nm_ci90[1],
                        "converged": rec.sampler.get("converged"), "fit_ok": rec.fit_ok,
                        "elapsed_s": rec.elapsed_s}
        rows.append(row)
    return rows


def summary(paths) -> dict:
    """Coverage over one or more JSON-lines files (an NC present in several counts once)."""
    rows, seen = [], set()
    for path in ([paths] if isinstance(paths, (str, Path)) else paths):
        new = [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]
        rows += [r for r in new if r["nc"] not in seen]
        seen |= {r["nc"] for r in new}
    ok = [r for r in rows if "plain" in r]
    out = {"rows": len(rows), "domains": len(ok), "ncs": len({r["nc"] for r in rows}),
           "errors": sum("error" in r for r in rows), "unmatched": sum(bool(r.get("unmatched")) for r in rows)}
    for key in ("plain", "stem"):
        cov = np.array([r[key]["covered"] for r in ok])
        width = np.array([r[key]["width"] for r in ok])
        out[key] = {"coverage_f90": float(cov.mean()) if cov.size else None,
                    "coverage_binomial_se": float(np.sqrt(cov.mean() * (1 - cov.mean()) / cov.size)) if cov.size else None,
                    "coverage_t90": float(np.mean([r[key]["t_covered"] for r in ok])) if ok else None,
                    "median_width_f90": float(np.median(width)) if width.size else None,
                    "converged": float(np.mean([bool(r[key]["converged"]) for r in ok])) if ok else None}
    if ok:
        out["narrowing_factor_median"] = float(np.median([r["plain"]["width"] / r["stem"]["width"] for r in ok]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="number of multi-domain NCs")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--charging", action="store_true", help="random charging on (trion lines appear)")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--out", default="coverage.jsonl")
    ap.add_argument("--summary", nargs="+", default=None, help="only summarise these JSON-lines files")
    ap.add_argument("--reverse", action="store_true", help="take the NCs last first (a second process)")
    a = ap.parse_args()
    if a.summary:
        print(json.dumps(summary(a.summary), indent=1))
        return
    out = Path(a.out)
    done = {json.loads(x)["nc"] for x in out.read_text().splitlines() if x.strip()} if out.exists() else set()
    pop = growth.simulate_population("CsPbBr1.2I1.8", n_crystals=max(400, 4 * a.n), seed=a.seed)
    multi = [i for i in range(len(pop)) if 2 <= pop.n_domains[i] <= 4][: a.n]
    if a.reverse:
        multi = multi[::-1]
    print(f"{len(multi)} NCs with 2-4 domains of {len(pop)}", flush=True)
    for i in multi:
        if i in done:
            continue
        t0 = time.time()
        rows = one_nc(i, pop.crystal(i), np.random.default_rng([a.seed, i]), a.steps, a.charging)
        with out.open("a") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")
        print(f"NC {i}: {len(rows)} rows, {time.time() - t0:.0f} s", flush=True)
    print(json.dumps(summary(out), indent=1))


if __name__ == "__main__":
    main()

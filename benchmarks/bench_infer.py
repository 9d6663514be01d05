"""Speed of `nanodomains infer` on a three-emitter NC (issue 16: within 60 s on two cores).

Times, in one run: the slab table (built once per process and parameter set), the
inference at the default 3000 steps, and, side by side, the same posterior sampled
with the Br fractions as explicit parameters (the naive sampler the analytic
marginalisation replaces), as effective samples per second.

    PYTHONPATH=src python benchmarks/bench_infer.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import emcee
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_inference import synthetic_emitters  # noqa: E402  (the tests' exact-model emitters)

from nanodomains.spectroscopy import inference as inf  # noqa: E402


def joint_log_prob(model: inf.PosteriorModel):
    """Log posterior with f explicit: theta = (f, phi)."""
    n = model.obs.n

    def lp(theta):
        theta = np.atleast_2d(theta)
        f, phi = theta[:, :n], theta[:, n:]
        out = np.full(theta.shape[0], -np.inf)
        ok = model.in_support(phi) & np.all((f >= 0) & (f <= 1), axis=1)
        if not ok.any():
            return out
        pred = model.predict(theta[ok])
        o = model.obs
        var = o.center_sd_ev**2 + pred["var_energy"]
        val = np.sum(-0.5 * (o.center_ev - pred["energy_ev"]) ** 2 / var - 0.5 * np.log(var), axis=1)
        val += np.sum(model.fine_structure_log_likelihood(pred), axis=1)
        _, _, _, _, de, m = model.split(theta[ok])
        val += -0.5 * (de / model.priors.gap_offset_sd_ev) ** 2 - 0.5 * ((m - 1) / model.priors.exchange_rel_sd) ** 2
        out[ok] = np.where(np.isfinite(val), val, -np.inf)
        return out

    return lp


def main() -> None:
    rec = synthetic_emitters()
    t0 = time.perf_counter()
    inf.slab_level_table()
    t_table = time.perf_counter() - t0
    t0 = time.perf_counter()
    run = inf.infer_emitters(rec, settings=inf.InferenceSettings(seed=1))
    t_infer = time.perf_counter() - t0
    s = run.record.sampler
    neff_rate = s["n_effective"] / t_infer
    model = run.model
    rng = np.random.default_rng(1)
    start_phi = run.samples[rng.choice(run.samples.shape[0], 32), model.obs.n:]
    f0, _, _, _ = model.solve_composition(start_phi)
    start = np.column_stack([f0, start_phi])  # started at the posterior: no burn-in handicap
    sampler = emcee.EnsembleSampler(32, start.shape[1], joint_log_prob(model), vectorize=True,
                                    moves=[(emcee.moves.DEMove(), 0.8), (emcee.moves.DESnookerMove(), 0.2)])
    t0 = time.perf_counter()
    steps = run.record.sampler["steps"]
    sampler.run_mcmc(start, steps)
    t_joint = time.perf_counter() - t0
    kept = steps - run.record.sampler["burn"]
    tau = np.nanmax(sampler.get_autocorr_time(discard=run.record.sampler["burn"], quiet=True))
    neff_joint = kept * 32 / tau
    print(f"slab table (once per process): {t_table:.1f} s")
    print(f"infer, 3 emitters, {s['steps']} steps x {s['walkers']} walkers: {t_infer:.1f} s "
          f"(target 60 s), n_eff {s['n_effective']}, acceptance {s['acceptance_fraction']}")
    print(f"joint sampler with explicit f: {t_joint:.1f} s, acceptance {np.mean(sampler.acceptance_fraction):.3f}, "
          f"tau {tau:.0f} steps, n_eff {neff_joint:.0f}")
    print(f"effective samples per second: marginalised {neff_rate:.0f}, joint {neff_joint / t_joint:.1f}, "
          f"ratio {neff_rate / (neff_joint / t_joint):.0f}x")


if __name__ == "__main__":
    main()

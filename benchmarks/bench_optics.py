"""Optical forward model: movie rendering and photon streams, side by side with direct approaches.

Movie (120 frames x 1340 px, six-domain NC): nanodomains renders every line as a
pixel-integrated Lorentzian (one arctan per pixel edge) convolved once per frame with
the Gaussian instrument function; the direct approach evaluates
``scipy.special.voigt_profile`` for every line, frame and pixel (the textbook Voigt,
as lmfit's VoigtModel does). Both images are compared (relative L1 difference).
Timed: the render alone and the whole pipeline (dynamics of a random six-domain NC,
render, CCD noise, truth).

Photons: nanodomains draws only pulses with at least one detected photon (geometric
gaps, numba kernel, numpy pools); the direct approach draws a uniform number for every
laser pulse (per-pulse Bernoulli, chunks of 10 M pulses, numpy). Both are timed on the
same emitter (single domain, 10 MHz, pulsed) for 1 M detected photons; ours also for
10 M photons (T3 micro times, sorted, with the expected g2(0)).

Usage::

    python benchmarks/bench_optics.py [--repeat 3] [--n-photons 10000000]
"""

from __future__ import annotations

import argparse
import math
import os
import platform

import numpy as np
from scipy import special

from nanodomains.materials import HC_EV_NM
from nanodomains.optics import emitters as em
from nanodomains.optics import movies as mv
from nanodomains.optics import photons as ph
from nanodomains.structure import homogeneous, random_domains

from bench_g2 import best_of, cpu_model  # noqa: E402  (same timing helpers as the g2 benchmark)


def voigt_direct(dyn, wl, frames, detection_efficiency, resolution_nm):
    """Direct rendering: voigt_profile at every pixel centre for every line and frame."""
    weights = dyn.frame_weights(frames)
    shifts = dyn.frame_shifts_ev(frames)
    disp = np.gradient(wl)
    sigma = resolution_nm / (2 * math.sqrt(2 * math.log(2)))
    image = np.zeros((frames.size - 1, wl.size))
    for k, e in enumerate(dyn.emitters):
        photons = e.rate_hz * weights[k] * np.diff(frames) * detection_efficiency
        for f in np.flatnonzero(photons > 0):
            for line, frac in zip(e.line_ev, e.intensity):
                lam0 = HC_EV_NM / (line + shifts[k, f])
                gamma = lam0**2 * e.linewidth_uev * 1e-6 / (2 * HC_EV_NM)
                image[f] += photons[f] * frac * special.voigt_profile(wl - lam0, sigma, gamma) * disp
    return image


def bench_movie(repeat: int) -> list[tuple]:
    nc = random_domains(15.0, n_domains=6, seed=11)
    dyn = em.simulate_dynamics(nc, duration_s=120.0, seed=11)
    spec = mv.Spectrometer(dispersion_nm_per_px=0.05)
    center = mv._auto_center(dyn)
    wl, edges = mv.wavelength_axis(spec, center)
    frames = np.arange(121.0)
    args = dict(exposure_s=1.0, detection_efficiency=spec.detection_efficiency, resolution_nm=spec.resolution_nm)
    mv.render_expected(dyn, edges, frames, **args)  # warm-up
    t_ours, (img, _) = best_of(lambda: mv.render_expected(dyn, edges, frames, **args), repeat)
    t_peer, ref = best_of(lambda: voigt_direct(dyn, wl, frames, spec.detection_efficiency, spec.resolution_nm), 1)
    diff = float(np.abs(img - ref).sum() / ref.sum())
    n_lines = sum(len(e.line_ev) for e in dyn.emitters)

    def pipeline():
        d = em.simulate_dynamics(random_domains(15.0, n_domains=6, seed=12), duration_s=120.0, seed=12)
        return mv.simulate_movie(d, spectrometer=spec, seed=1)

    pipeline()
    t_pipe, (movie, _) = best_of(pipeline, repeat)
    return [("render 120 x 1340 (expected photons)", f"6 domains, {n_lines} lines", t_ours, t_peer, diff),
            ("dynamics + render + CCD + truth", f"{movie.shape[0]} x {movie.shape[1]}", t_pipe, None, None)]


def per_pulse_direct(n_photons: int, p_det: float, tau_ps: float, period_ps: int, seed: int):
    """Direct photon simulation: one uniform draw per laser pulse (single-photon emitter)."""
    rng = np.random.default_rng(seed)
    out_t, n, k0 = [], 0, 0
    chunk = 10_000_000
    while n < n_photons:
        hit = np.flatnonzero(rng.random(chunk) < p_det) + k0
        t = hit * float(period_ps) + rng.exponential(tau_ps, hit.size) + rng.normal(0, 30.0, hit.size)
        ch = rng.random(hit.size) < 0.5
        out_t.append(np.rint(t).astype(np.int64))
        n += hit.size
        k0 += chunk
    t = np.concatenate(out_t)[:n_photons]
    return np.sort(t), ch


def bench_photons(repeat: int, n_big: int) -> list[tuple]:
    params = em.DynamicsParameters(blinking="none", charge_rate_per_s=0.0, bleach_mean_s=1e12, power_w_cm2=50.0)
    dyn = em.simulate_dynamics(homogeneous(12.0), duration_s=300.0, seed=1, params=params)
    det = ph.Detectors(efficiency=0.12)
    rate = dyn.emitters[0].rate_hz * det.efficiency
    ph.simulate_photons(dyn, duration_s=0.01, seed=0, detectors=det)  # compile / warm-up
    rows = []
    n_small = 1_000_000
    dur_small = n_small / rate
    t_ours, sim = best_of(lambda: ph.simulate_photons(dyn, duration_s=dur_small, seed=1, detectors=det), repeat)
    p_det = rate / dyn.params.rep_rate_hz
    t_peer, (tp, _) = best_of(lambda: per_pulse_direct(sim.n_photons, p_det, dyn.emitters[0].lifetime_ns * 1e3,
                                                        100_000, 2), 1)
    rows.append(("pulsed stream, T3, expected g2", f"{sim.n_photons:,}", t_ours, t_peer, None))
    dur_big = n_big / rate
    t_big, sim_big = best_of(lambda: ph.simulate_photons(dyn, duration_s=dur_big, seed=3, detectors=det), repeat)
    rows.append(("pulsed stream, T3, expected g2", f"{sim_big.n_photons:,}", t_big, None, None))
    t_t2, sim_t2 = best_of(lambda: ph.simulate_photons(dyn, duration_s=dur_big, seed=3, detectors=det, t3=False), 1)
    rows.append(("pulsed stream, T2 (1 ps)", f"{sim_t2.n_photons:,}", t_t2, None, None))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--n-photons", type=int, default=10_000_000)
    a = ap.parse_args()
    print(f"machine: {cpu_model()}, nproc {os.cpu_count()}, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    rows = bench_movie(a.repeat) + bench_photons(a.repeat, a.n_photons)
    print("| task | size | nanodomains (s) | direct (s) | ratio | image difference |")
    print("|---|---|---|---|---|---|")
    for task, size, ours, peer, diff in rows:
        ratio = f"{peer / ours:.1f}x" if peer else "-"
        print(f"| {task} | {size} | {ours:.3f} | {peer:.3f} | {ratio} | "
              f"{diff:.2e} |" if peer and diff is not None else
              f"| {task} | {size} | {ours:.3f} | {f'{peer:.3f}' if peer else '-'} | {ratio} | - |")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

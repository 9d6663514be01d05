"""Time the batched multi-Lorentzian fit against lmfit and scipy curve_fit.

Same synthetic triplet frames (1024 px, FSS 878 ueV, shared HWHM 0.04 nm, Poisson
noise on a flat background), same starting values (from our peak detection), one
process, one run; prints per-frame times, the ratio to ours and the median error of
the fitted centres against the truth. Ours integrates each Lorentzian over the pixel
(arctan form); the peers use the usual sampled Lorentzian, as a user would.

    python benchmarks/bench_peaks.py [--frames 200] [--lmfit-frames 40]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from nanodomains.spectroscopy.peaks import HC_EV_NM, detect_peaks, fit_lines, lorentzian


def make_frames(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    wl = 640.0 + 0.02 * np.arange(1024)
    e0 = HC_EV_NM / 650.0
    f = 878e-6
    e = e0 + np.array([-0.9 * f, 0.0, 1.1 * f])
    lam = np.sort(HC_EV_NM / (e - (e.mean() - e0)))
    shift = rng.normal(0, 0.02, n)  # spectral diffusion
    amps = np.array([500.0, 400.0, 450.0])
    model = 200.0 + sum(lorentzian(wl[None, :], lam[k] + shift[:, None], 0.04, amps[k]) for k in range(3))
    y = rng.poisson(model).astype(float) - 200.0
    return wl, y, lam[None, :] + shift[:, None]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--lmfit-frames", type=int, default=40)
    args = ap.parse_args(argv)
    wl, y, truth = make_frames(args.frames)
    pk = detect_peaks(y, wl)
    # keep the frames in which detection found exactly the three lines (all, as a rule)
    good = np.flatnonzero(np.bincount(pk.frame, minlength=args.frames) == 3)
    y, truth = y[good], truth[good]
    args.frames = good.size
    pk = detect_peaks(y, wl)
    var = np.maximum(y + 200.0, 1.0)
    xm = 0.5 * (wl[0] + wl[-1])
    rows = []

    # ours: all frames in one batch, windowed (default) and on the whole frame
    for label, kw in (("nanodomains batched LM, window +-6 HWHM", {}),
                      ("nanodomains batched LM, whole 1024 px frame", {"window_hwhm": 1e4})):
        fit_lines(y[:2], wl, detect_peaks(y[:2], wl), variance=var[:2], **kw)  # warm-up
        t0 = time.perf_counter()
        fits = fit_lines(y, wl, pk, variance=var, **kw)
        dt = time.perf_counter() - t0
        c = fits.center_nm.reshape(args.frames, 3)
        rows.append((label, args.frames, dt, np.median(np.abs(c - truth))))

    p0 = []
    for f in range(args.frames):
        sel = pk.frame == f
        p0.append([0.0, 0.0, *pk.height[sel], *pk.position_nm[sel], 0.05])

    from scipy.optimize import curve_fit

    def tri(x, b0, b1, a1, a2, a3, c1, c2, c3, g):
        return b0 + b1 * (x - xm) + lorentzian(x, c1, g, a1) + lorentzian(x, c2, g, a2) + lorentzian(x, c3, g, a3)

    t0 = time.perf_counter()
    cen = []
    for f in range(args.frames):
        popt, _ = curve_fit(tri, wl, y[f], p0=p0[f], sigma=np.sqrt(var[f]))
        cen.append(popt[5:8])
    dt = time.perf_counter() - t0
    rows.append(("scipy.optimize.curve_fit (per frame, whole frame)", args.frames, dt, np.median(np.abs(np.array(cen) - truth))))

    try:
        import lmfit
    except ImportError:  # pragma: no cover
        lmfit = None
    if lmfit is not None:
        mod = lmfit.models.ConstantModel(prefix="b_")
        for k in range(3):
            mod = mod + lmfit.models.LorentzianModel(prefix=f"l{k}_")
        n = min(args.lmfit_frames, args.frames)
        cen = []
        t0 = time.perf_counter()
        for f in range(n):
            pars = mod.make_params()
            pars["b_c"].set(value=0.0)
            for k in range(3):
                pars[f"l{k}_center"].set(value=p0[f][5 + k])
                pars[f"l{k}_amplitude"].set(value=p0[f][2 + k] * np.pi * 0.05, min=0)
                pars[f"l{k}_sigma"].set(value=0.05, min=1e-4)
                if k:
                    pars[f"l{k}_sigma"].set(expr="l0_sigma")
            r = mod.fit(y[f], pars, x=wl, weights=1.0 / np.sqrt(var[f]))
            cen.append([r.params[f"l{k}_center"].value for k in range(3)])
        dt = time.perf_counter() - t0
        rows.append(("lmfit (3 LorentzianModel + constant, shared sigma)", n, dt, np.median(np.abs(np.array(cen) - truth[:n]))))

    ours = rows[0][2] / rows[0][1]
    print(f"triplet fits of 1024 px frames ({args.frames} frames; lmfit on {rows[-1][1]})")
    print(f"{'method':55s} {'frames':>6s} {'total s':>8s} {'ms/frame':>9s} {'x ours':>8s} {'median |dc| nm':>15s}")
    for label, n, dt, err in rows:
        per = dt / n
        print(f"{label:55s} {n:6d} {dt:8.3f} {per * 1e3:9.3f} {per / ours:8.1f} {err:15.5f}")


if __name__ == "__main__":
    main()

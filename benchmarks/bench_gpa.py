"""GPA lock-in: cropped-spectrum band-limited interpolation vs a plain full-grid GPA.

Both compute the complex lock-in images (amplitude and phase) of two reflections,
(100) and (010), of the same synthetic [100] CsPbX3-like image with the same
Gaussian mask; the plain version does a full-size forward FFT, multiplies by the
mask and does a full-size inverse FFT per reflection (numpy.fft), as a plain GPA
does. Prints timings (best of ``--repeat``), the ratio, and the largest phase
difference between the two inside the mask band (pixels where the lock-in
amplitude exceeds 1 % of its maximum). "ours + periodic/smooth edge" adds the
Moisan edge treatment that ``gpa()`` applies by default (done in Fourier space at
the gathered coefficients, so it costs two 1-D FFTs).

Run: python benchmarks/bench_gpa.py [--sizes 1024 2048] [--repeat 3]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from nanodomains.stem.columns import render_columns
from nanodomains.stem.gpa import gpa, lock_ins
from nanodomains.stem.io import image_from_array

A_PX = 23.6


def synthetic(n: int, seed: int = 0) -> np.ndarray:
    m = int(n / A_PX) + 3
    i, j = np.meshgrid(np.arange(-1, m), np.arange(-1, m), indexing="ij")
    pos, amp = [], []
    for (fy, fx), a in (((0, 0), 0.38), ((0.5, 0.5), 1.0), ((0, 0.5), 0.32), ((0.5, 0), 0.32)):
        pos.append(np.stack([(i + fy).ravel() * A_PX, (j + fx).ravel() * A_PX], 1))
        amp.append(np.full(i.size, a))
    img = render_columns((n, n), np.concatenate(pos), np.concatenate(amp), 2.4, background=0.05)
    return np.random.default_rng(seed).poisson(img * 100) / 100


def plain_gpa(img: np.ndarray, gs: np.ndarray, radius: float) -> list[tuple[np.ndarray, np.ndarray]]:
    ny, nx = img.shape
    f = np.fft.fft2(img)
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.fftfreq(nx)[None, :]
    yy = np.arange(ny)[:, None]
    xx = np.arange(nx)[None, :]
    out = []
    for gy, gx in gs:
        m = np.exp(-2.0 * ((fy - gy) ** 2 + (fx - gx) ** 2) / radius**2)
        h = np.fft.ifft2(f * m) * np.exp(-2j * np.pi * (gy * yy + gx * xx))
        out.append((np.abs(h), np.angle(h)))
    return out


def plain_gpa_unwrapped(img: np.ndarray, gs: np.ndarray, radius: float) -> list[np.ndarray]:
    """Plain GPA plus the full-grid phase unwrap (scikit-image) of both phases."""
    from skimage.restoration import unwrap_phase

    return [unwrap_phase(p.astype(np.float64)) for _, p in plain_gpa(img, gs, radius)]


def ours(img: np.ndarray, gs: np.ndarray, radius: float, edge: str = "none") -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.abs(h), np.angle(h)) for h in lock_ins(img, gs, mask_radius_per_px=radius, edge=edge)]


def best_time(fn, repeat: int) -> tuple[float, object]:
    best, res = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        res = fn()
        best = min(best, time.perf_counter() - t)
    return best, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    gs = np.array([[0.0, 1.0 / A_PX], [1.0 / A_PX, 0.0]]) + 1e-4  # off-grid, as after refinement
    radius = 0.25 / A_PX
    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}, numpy {np.__version__}")
    print("| size | plain full-grid GPA (s) | ours, cropped lock-in (s) | ratio | ours + periodic/smooth edge (s) | ratio with edge | max phase diff in band (rad) |")
    print("|---|---|---|---|---|---|---|")
    for n in args.sizes:
        img = synthetic(n)
        t_plain, r_plain = best_time(lambda: plain_gpa(img, gs, radius), args.repeat)
        t_ours, r_ours = best_time(lambda: ours(img, gs, radius), args.repeat)
        t_edge, _ = best_time(lambda: ours(img, gs, radius, "periodic_smooth"), args.repeat)
        dmax = 0.0
        for (a_p, p_p), (_, p_o) in zip(r_plain, r_ours):
            band = a_p > 0.01 * a_p.max()
            dmax = max(dmax, float(np.abs(np.angle(np.exp(1j * (p_o[band] - p_p[band])))).max()))
        print(f"| {n}^2 | {t_plain:.3f} | {t_ours:.3f} | {t_plain / t_ours:.1f}x | {t_edge:.3f} | {t_plain / t_edge:.1f}x | {dmax:.1e} |")
    print()
    print("End to end: nanodomains `gpa()` (detect and index reflections, refine g, two")
    print("lock-ins, strain, coarse-grid unwrap) vs plain GPA + scikit-image unwrap of both phases")
    print()
    print("| size | plain GPA + unwrap (s) | gpa() end to end (s) | ratio |")
    print("|---|---|---|---|")
    for n in args.sizes:
        img = synthetic(n)
        da = image_from_array(img, pixel_size_pm=25.0)
        t_plain, _ = best_time(lambda: plain_gpa_unwrapped(img, gs, radius), args.repeat)
        t_full, _ = best_time(lambda: gpa(da), args.repeat)
        print(f"| {n}^2 | {t_plain:.3f} | {t_full:.3f} | {t_plain / t_full:.1f}x |")


if __name__ == "__main__":
    main()

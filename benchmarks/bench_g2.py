"""g2 histogram: nanodomains vs pycorrelate, side by side in one run.

Both compute the exact linear-bin cross-correlation of two channels, +-500 ns in
0.1 ns bins (10001 bins), on the same Poissonian CW stream (1 MHz total; one row at 10 MHz, ten times the pairs). The
peer (pycorrelate.pcorrelate, Laurence et al. 2006 algorithm) runs on 1 M photons;
ours runs on 1 M and on 10 M photons. Compile time is excluded for both (warm-up
call on a tiny input). The counts of the two codes are compared bin by bin.

Usage::

    python benchmarks/bench_g2.py [--n-peer 1000000] [--n-big 10000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from nanodomains.spectroscopy.g2 import compute_g2, cross_correlation_counts
from nanodomains.timetags import PhotonStream

BIN_PS = 100
WINDOW_PS = 500_000.0


def cw_stream(n_photons: int, rate_hz: float, seed: int) -> PhotonStream:
    rng = np.random.default_rng(seed)
    duration_s = n_photons / rate_hz
    t = np.sort(rng.integers(0, int(duration_s * 1e12), n_photons))
    ch = rng.integers(0, 2, n_photons).astype(np.uint8)
    return PhotonStream(t, ch, resolution_ps=1.0, duration_s=duration_s, source=f"cw seed {seed}")


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-peer", type=int, default=1_000_000, help="photons for the side-by-side run")
    ap.add_argument("--n-big", type=int, default=10_000_000, help="photons for our large run")
    ap.add_argument("--repeat", type=int, default=3, help="repeats of our timings (best of)")
    ap.add_argument("--rate-hz", type=float, default=1e6, help="total count rate of the stream")
    args = ap.parse_args()

    import pycorrelate

    print(f"machine: {cpu_model()}, nproc {os.cpu_count()}, python {platform.python_version()}")
    print(f"pycorrelate {pycorrelate.__version__}; bins {BIN_PS} ps, window +-{WINDOW_PS / 1e3:.0f} ns")

    # warm-up (JIT compile) on tiny input, excluded from timings
    tiny = cw_stream(1000, args.rate_hz, 0)
    a0, b0 = tiny.select(0), tiny.select(1)
    edges, _, _ = cross_correlation_counts(a0, b0, bin_ps=BIN_PS, window_ps=WINDOW_PS)
    pycorrelate.pcorrelate(a0, b0, edges.astype(np.float64))

    rows = []
    s = cw_stream(args.n_peer, args.rate_hz, 1)
    a, b = s.select(0), s.select(1)
    t_ours, (edges, ours, pairs) = best_of(
        lambda: cross_correlation_counts(a, b, bin_ps=BIN_PS, window_ps=WINDOW_PS), args.repeat
    )
    t0 = time.perf_counter()
    peer = pycorrelate.pcorrelate(a, b, edges.astype(np.float64))
    t_peer = time.perf_counter() - t0
    peer_counts = np.rint(peer * np.diff(edges)).astype(np.int64)
    same = bool(np.array_equal(peer_counts, ours))
    rows.append(("histogram", args.n_peer, pairs, t_ours, t_peer, same))

    big = cw_stream(args.n_big, args.rate_hz, 2)
    ab, bb = big.select(0), big.select(1)
    t_big, (_, _, pairs_big) = best_of(
        lambda: cross_correlation_counts(ab, bb, bin_ps=BIN_PS, window_ps=WINDOW_PS), args.repeat
    )
    rows.append(("histogram", args.n_big, pairs_big, t_big, None, None))
    dense = cw_stream(args.n_big, 10 * args.rate_hz, 3)  # 10x the rate: 10x the pairs
    ad, bd = dense.select(0), dense.select(1)
    t_dense, (_, _, pairs_dense) = best_of(
        lambda: cross_correlation_counts(ad, bd, bin_ps=BIN_PS, window_ps=WINDOW_PS), args.repeat
    )
    rows.append((f"histogram at {10 * args.rate_hz / 1e6:g} MHz", args.n_big, pairs_dense, t_dense, None, None))
    t_full, _ = best_of(lambda: compute_g2(big, mode="cw", bin_ns=0.1, window_ns=500.0), args.repeat)
    rows.append(("compute_g2 (select + histogram + normalise)", args.n_big, pairs_big, t_full, None, None))

    print()
    print("| task | photons | pairs in window | nanodomains (s) | pycorrelate (s) | ratio | identical counts |")
    print("|---|---|---|---|---|---|---|")
    for task, n, p, t1, t2, eq in rows:
        peer_s = f"{t2:.2f}" if t2 is not None else "-"
        ratio = f"{t2 / t1:.0f}x" if t2 is not None else "-"
        eq_s = {True: "yes", False: "NO", None: "-"}[eq]
        print(f"| {task} | {n:,} | {p:,} | {t1:.3f} | {peer_s} | {ratio} | {eq_s} |")


if __name__ == "__main__":
    main()

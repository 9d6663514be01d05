"""ADF-STEM forward model: incoherent simulator vs abTEM multislice of the same field of view.

1. nanodomains ``simulate_image``: a 1024 x 1024 image (20 pm pixels, 20.5 nm field)
   of a 15 nm homogeneous CsPbBr1.2I1.8 cube (67k atoms, 2,300 columns) with carbon
   support, Poisson noise and truth sidecar. Timed separately: building the atoms
   and projecting the columns (done once per model), and the image itself (best of
   ``--repeat``).
2. abTEM 1.0 multislice of the same atoms and the same 20.5 nm field of view on a
   reduced grid: potential sampling ``--ms-sampling`` (default 0.1 A, so the
   detector is limited to 2/3 of Nyquist, here 40-65 mrad), slices of 2 A, one
   frozen-phonon configuration, a ``--ms-positions`` x ``--ms-positions`` scan
   (default 2 x 2). The time per probe position is extrapolated to the 1024^2
   positions and 8 configurations of a like-for-like image (same reduced potential
   grid), which is what the second ratio compares.

Both run in the same process, one after the other; the machine's load is printed.

Run: python benchmarks/bench_stem_simulate.py [--repeat 3] [--ms-sampling 0.1] [--ms-positions 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ms-sampling", type=float, default=0.1)
    ap.add_argument("--ms-positions", type=int, default=2)
    ap.add_argument("--skip-abtem", action="store_true")
    args = ap.parse_args()

    from nanodomains.stem.simulate import simulate_image
    from nanodomains.structure import homogeneous

    nc = homogeneous(15.0, "CsPbBr1.2I1.8", seed=1)
    t = time.perf_counter()
    atoms = nc.to_atoms(seed=1)
    cols = nc.project_columns(atoms=atoms)
    t_model = time.perf_counter() - t
    simulate_image(nc, shape=256, columns=cols, seed=0)  # warm-up (imports, FFT plans)
    times = []
    for i in range(args.repeat):
        t = time.perf_counter()
        res = simulate_image(nc, shape=1024, pixel_size_pm=20.0, columns=cols, seed=i + 1)
        times.append(time.perf_counter() - t)
    t_ours = min(times)
    fov_nm = 1024 * 0.020
    print(f"machine: {platform.processor() or platform.machine()}, nproc {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"model: {len(atoms)} atoms, {len(cols)} columns, atoms + projection {t_model:.3f} s")
    print(f"nanodomains incoherent 1024x1024 ({fov_nm:.2f} nm): best {t_ours:.3f} s, "
          f"all {', '.join(f'{x:.3f}' for x in times)} s; image sum {res.image.values.sum():.3e}")
    if args.skip_abtem:
        return

    import abtem

    from nanodomains.stem.multislice import MultisliceSettings, beam_frame_atoms, max_detector_angle_mrad
    from nanodomains.stem.simulate import ProbeParameters

    outer = 0.98 * max_detector_angle_mrad(args.ms_sampling, 300.0)
    inner = min(40.0, 0.6 * outer)
    settings = MultisliceSettings(probe=ProbeParameters(source_fwhm_pm=0.0), sampling_a=args.ms_sampling,
                                  detector_mrad=(inner, outer), slice_thickness_a=2.0, num_configs=1,
                                  frozen_phonons=False)
    beam = beam_frame_atoms(atoms, "100")
    # same field of view as the incoherent image, centred on the NC
    centre = beam.positions[:, :2].mean(axis=0)
    beam.positions[:, :2] += fov_nm * 10 / 2 - centre
    beam.cell = np.diag([fov_nm * 10, fov_nm * 10, beam.positions[:, 2].max() + 2.0])
    beam.pbc = True
    potential = abtem.Potential(beam, sampling=settings.sampling_a, slice_thickness=settings.slice_thickness_a,
                                projection="infinite", parametrization="lobato")
    probe = abtem.Probe(energy=300e3, semiangle_cutoff=24.0)
    probe.grid.match(potential)
    n = args.ms_positions
    c = fov_nm * 10 / 2
    scan = abtem.GridScan(start=(c - 1.0, c - 1.0), end=(c + 1.0, c + 1.0), gpts=(n, n), endpoint=False)
    det = abtem.AnnularDetector(inner=inner, outer=outer)
    t = time.perf_counter()
    out = probe.scan(potential, scan=scan, detectors=det).compute(progress_bar=False)
    t_ab = time.perf_counter() - t
    per_pos = t_ab / (n * n)
    full = per_pos * 1024 * 1024 * 8
    print(f"abTEM {abtem.__version__} multislice: grid {potential.gpts}, {potential.num_slices} slices, "
          f"detector {inner:.0f}-{outer:.0f} mrad, {n}x{n} positions, 1 configuration: {t_ab:.1f} s "
          f"({per_pos:.2f} s per position); mean signal {float(np.mean(out.array)):.4f}")
    print()
    print("| task | field of view | nanodomains (s) | abTEM (s) | ratio |")
    print("|---|---|---|---|---|")
    print(f"| as run: ours 1024^2 px vs abTEM {n}x{n} positions, 1 config | {fov_nm:.1f} nm | {t_ours:.3f} | "
          f"{t_ab:.1f} | {t_ab / t_ours:.0f}x |")
    print(f"| extrapolated: 1024^2 positions, 8 configs, same reduced grid | {fov_nm:.1f} nm | {t_ours:.3f} | "
          f"{full:.2e} | {full / t_ours:.1e}x |")


if __name__ == "__main__":
    main()

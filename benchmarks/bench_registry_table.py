"""Registry-depth table generation: plain multislice against PRISM (abTEM SMatrix), side by side.

One table run = a tile-1 CsPbX3 registry slab (b = 0.5, boundary after k cells), a full-cell
scan at lambda/(2 alpha) steps, 8 frozen-phonon configurations, 300 kV, 24 mrad, HAADF
70-190 mrad. Prints the wall time per run and per cell of thickness for both, their ratio,
and how far PRISM's site cross-sections lie from multislice's (same phonon seed).
Also times the joint inversion per domain on the shipped table.

    PYTHONPATH=src python -W ignore benchmarks/bench_registry_table.py [--cells 16]
"""

import argparse
import time
from dataclasses import replace

import numpy as np

from nanodomains import materials
from nanodomains.stem.multislice import MultisliceSettings, abtem_probe, frozen_phonon_source
from nanodomains.stem.probe import ProbeParameters
from nanodomains.stem.table_build import registry_run, registry_slab, scan_points_per_cell
from nanodomains.stem.tables import voronoi_site_integrals


def prism_run(b, k, n_cells, settings, seed):
    import abtem

    a_a = materials.lattice_constant_pm(b) / 100.0
    st = replace(settings, slice_thickness_a=a_a / 2)
    m = scan_points_per_cell(a_a, st.probe)
    d = a_a / m
    slab = registry_slab(b, n_cells, k, 1, seed)
    pot = abtem.Potential(frozen_phonon_source(slab, st, seed), sampling=st.sampling_a,
                          slice_thickness=st.slice_thickness_a, parametrization=st.parametrization,
                          projection="infinite")
    p = st.probe
    sm = abtem.SMatrix(semiangle_cutoff=p.convergence_semiangle_mrad, energy=p.beam_energy_kev * 1e3,
                       potential=pot, interpolation=1)
    scan = abtem.GridScan(start=(d / 2, d / 2), end=(a_a + d / 2, a_a + d / 2), gpts=(m, m), endpoint=False)
    det = abtem.AnnularDetector(inner=float(st.detector_mrad[0]), outer=float(st.detector_mrad[1]))
    res = sm.scan(scan=scan, detectors=det).compute(progress_bar=False, scheduler="threads")
    arr = np.asarray(res.array, float).reshape((-1, m, m))
    return voronoi_site_integrals(arr, a_a)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=16)
    args = ap.parse_args()
    st = MultisliceSettings(probe=ProbeParameters(detector_mrad=(70.0, 190.0)), num_configs=8)
    b, k, n = 0.5, args.cells // 2, args.cells
    t = time.perf_counter()
    ms = registry_run(b, k, [n], st, seed=5, compute_kwargs={"scheduler": "threads"})[0]  # (conf, 3)
    t_ms = time.perf_counter() - t
    t = time.perf_counter()
    pr = prism_run(b, k, n, st, seed=5)
    t_pr = time.perf_counter() - t
    diff = np.abs(pr.mean(0) / ms.mean(0) - 1)
    print(f"one run, {n} cells, 8 configurations, 16 x 16 positions:")
    print(f"  multislice {t_ms:7.1f} s ({t_ms / n:.2f} s/cell)   PRISM {t_pr:7.1f} s ({t_pr / n:.2f} s/cell)   "
          f"PRISM / multislice = {t_pr / t_ms:.2f}")
    print(f"  site cross-sections, PRISM vs multislice: max |rel. diff| = {diff.max():.4f}")
    try:
        from nanodomains.stem.zcontrast import RegistryModel, invert_domain, load_registry_table

        t = time.perf_counter()
        model = RegistryModel(load_registry_table())
        t_model = time.perf_counter() - t
        y = model.site_intensities(0.3, 0.2, 26)[[1, 0, 2]]
        t = time.perf_counter()
        for _ in range(5):
            invert_domain(model, y, 0.01 * y)
        t_inv = (time.perf_counter() - t) / 5
        print(f"joint inversion: model grid {t_model:.2f} s once per table, {t_inv * 1e3:.0f} ms per domain")
    except Exception as exc:  # the shipped table may be absent while it is being built
        print(f"joint inversion not timed: {exc}")


if __name__ == "__main__":
    main()

"""Convergence of Voronoi cross-sections with the scan step (why 16 points per cell).

Static lattice (no frozen phonons: the sharpest probe-position signal), CsPbX3 b = 0.5,
24 cells, 300 kV, 24 mrad, HAADF 70-190 mrad; a full cell scanned with M x M points for
M = 8, 12, 16, 24; prints the Cs-site, PbX-site and X cross-sections and their ratio to
M = 24. The signal is band-limited to 2 alpha / lambda, so steps below lambda / (2 alpha)
(0.41 A here, M >= 15 for a 6.1 A cell) integrate the cell exactly.

    PYTHONPATH=src python -W ignore benchmarks/zcontrast_scan_step.py
"""

from dataclasses import replace

import numpy as np

from nanodomains import materials
from nanodomains.stem.multislice import MultisliceSettings
from nanodomains.stem.probe import ProbeParameters
from nanodomains.stem.table_build import _scan_exit_planes, registry_slab
from nanodomains.stem.tables import voronoi_site_integrals


def main():
    b, n = 0.5, 24
    a = materials.lattice_constant_pm(b) / 100
    st = replace(MultisliceSettings(probe=ProbeParameters(detector_mrad=(70, 190)), num_configs=1,
                                    frozen_phonons=False), slice_thickness_a=a / 2)
    slab = registry_slab(b, n, n, 1, 1)
    out = {}
    for m in (8, 12, 16, 24):
        d = a / m
        res = _scan_exit_planes(slab, st, [n], dict(start_a=(d / 2, d / 2), end_a=(a + d / 2, a + d / 2),
                                                    gpts=(m, m)), 1, {"scheduler": "threads"}, False)
        out[m] = voronoi_site_integrals(res[0, 0], a)
    ref = out[24]
    print(f"step limit lambda/(2 alpha) = 0.41 A; cell {a:.3f} A")
    for m, v in out.items():
        print(f"M = {m:2d} (step {a / m:.3f} A): Cs-site {v[0]:.4f}  PbX-site {v[1]:.4f}  X {v[2]:.4f} A^2   "
              f"ratio to M = 24: {np.round(v / ref, 4)}")


if __name__ == "__main__":
    main()

"""Vineyard attempt frequency against the size of the partial Hessian (docs/atomistic.md).

    PYTHONPATH=src python docs/img/attempt_frequency_scan.py [bulk_I bulk_Br ...]

For each path: relaxed host (seed 0, as the table), CI-NEB with the table's protocol,
then nu* = prod(real frequencies at the minimum) / prod(real frequencies at the saddle,
the imaginary one left out) from ``ase.vibrations`` finite differences (0.01 and 0.02 A)
of the atoms within a growing radius of the moving ion; the full periodic cell drops its
three translations. Prints the number of imaginary modes at both points and nu*
(``None`` when the minimum has one or the saddle not exactly one). About 2,000-4,000
force calls per bulk path (a few minutes on one core); RP paths cost ~10x per call.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile

import numpy as np

H_EV_S = 4.135667696e-15


def modes(atoms, indices, delta, calc):
    from ase.vibrations import Vibrations

    a = atoms.copy()
    a.calc = calc
    with tempfile.TemporaryDirectory() as tmp:
        vib = Vibrations(a, indices=indices, name=os.path.join(tmp, "v"), delta=delta)
        vib.run()
        e = np.asarray(vib.get_energies())
    return e


def vineyard(e_min, e_sad, drop: int):
    """(imaginary at minimum, imaginary at saddle, nu* THz or None) with ``drop`` zero modes removed."""
    e_min = e_min[np.argsort(np.abs(e_min))[drop:]]
    e_sad = e_sad[np.argsort(np.abs(e_sad))[drop:]]
    im_min = np.abs(e_min.imag) > np.abs(e_min.real)
    im_sad = np.abs(e_sad.imag) > np.abs(e_sad.real)
    nu = None
    if not im_min.any() and im_sad.sum() == 1:
        nu = math.exp(np.log(np.abs(e_min.real)).sum() - np.log(np.abs(e_sad.real[~im_sad])).sum()) / H_EV_S / 1e12
    return int(im_min.sum()), int(im_sad.sum()), nu


def main(names) -> None:
    from nanodomains.migration.atomistic import CountingCalculator, make_calculator
    from ase.geometry import find_mic

    from nanodomains.migration.barriers import PATHS, host_structure, neb_path

    calc = CountingCalculator(make_calculator("chgnet", threads=1))
    for name in names:
        spec = next(p for p in PATHS if p.name == name)
        host = host_structure(spec.host, spec.br_fraction, calc)
        path, st = neb_path(host, spec, calc)
        ini, sad, j = st["initial"], st["saddle"], st["ion"]
        print(f"{name}: Ea {path.barrier_ev} eV, max force {path.max_force_ev_per_a:.3f} eV/A", flush=True)
        _, d = find_mic(ini.positions - ini.positions[j], ini.cell, ini.pbc)
        for cut in (3.6, 4.5, 5.5, 7.0, np.inf):
            idx = [int(i) for i in np.flatnonzero(d <= cut)]
            drop = 3 if len(idx) == len(ini) and spec.host == "bulk" else 0
            for delta in (0.01, 0.02):
                n_min, n_sad, nu = vineyard(modes(ini, idx, delta, calc), modes(sad, idx, delta, calc), drop)
                print(f"  radius {cut} A ({len(idx)} atoms), delta {delta} A: imaginary modes minimum {n_min}, "
                      f"saddle {n_sad}; nu* {'None' if nu is None else f'{nu:.3f}'} THz", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["bulk_I", "bulk_Br"])

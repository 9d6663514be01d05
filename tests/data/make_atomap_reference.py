"""Regenerate ``atomap_test_ADF_cropped_refined.csv``: atomap 0.4.2's refined columns.

atomap's own experimental SrTiO3 [110] image (``atomap/tests/datasets/test_ADF_cropped.hdf5``,
shipped with atomap) through atomap's pipeline as its tutorial runs it: peak finding
(``get_atom_positions``, separation 7 px), one Sublattice, centre-of-mass then 2-D
Gaussian refinement (``refine_atom_positions_using_center_of_mass`` and
``refine_atom_positions_using_2d_gaussian`` with atomap's defaults). Written as plain CSV
(x_px, y_px). Needs the ``bench`` extra (atomap); tests read only the CSV.

Run: ``python tests/data/make_atomap_reference.py``
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import version
from pathlib import Path

import numpy as np


def atomap_image_path() -> Path:
    spec = importlib.util.find_spec("atomap")
    if spec is None or spec.origin is None:
        raise SystemExit("atomap is not installed (pip install nanodomains[bench])")
    return Path(spec.origin).parent / "tests" / "datasets" / "test_ADF_cropped.hdf5"


def main() -> None:
    import atomap.api as am
    import hyperspy.api as hs

    s = hs.load(str(atomap_image_path()), reader="HSPY")
    s = s.deepcopy()
    s.change_dtype("float64")  # the file is float16, which scipy filters refuse
    pos = am.get_atom_positions(s, separation=7)
    sub = am.Sublattice(pos, image=s.data)
    sub.find_nearest_neighbors()
    sub.refine_atom_positions_using_center_of_mass()
    sub.refine_atom_positions_using_2d_gaussian()
    out = Path(__file__).with_name("atomap_test_ADF_cropped_refined.csv")
    xy = np.column_stack([sub.x_position, sub.y_position])
    np.savetxt(out, xy, delimiter=",", fmt="%.4f", header="x_px,y_px", comments="")
    print(f"atomap {version('atomap')}: {len(xy)} columns -> {out}")


if __name__ == "__main__":
    main()

"""Atomistic perovskite model of a :class:`~nanodomains.structure.model.NanoCrystal`.

Construction (all in half-cell integer units H = 2 r / a_ref of the reference lattice)
-------------------------------------------------------------------------------------
The crystal is built from corner-sharing PbX6 octahedra, each with its 8 Cs neighbours,
so every surface and every RP interface is CsX-terminated:

* registry 0 (``shift = [0,0,0]``): one octahedron per reference cell c of the domain,
  Pb at H = 2c + 1 (cell centre), X at Pb +- 1 along each axis, Cs at Pb + (+-1,+-1,+-1);
* registry 1/2 (``shift = 1/2 a<111>``): octahedra centred on cell corners p (H = 2p),
  kept only where all 8 cells around the corner belong to shifted domains.

Where a shifted and an unshifted domain meet across a {100} plane at cell index K,
the unshifted side ends with its CsX layer at K and the shifted side starts with its
CsX layer at K + 1/2, displaced by (1/2, 1/2) in the plane: the rock-salt CsX double
layer of a Ruddlesden-Popper fault, and the two lattices differ by the 1/2 a<111>
translation. Where two domains of one registry meet, the lattice is continuous.

Each domain is then expanded about its box centre to its own Vegard lattice constant,
``r = c_d + (r_ref - c_d) a_d / a_ref``, and halide sites are occupied by Br with the
domain's Br fraction (independent Bernoulli draws from the given seed).

Per-atom arrays on the returned ``ase.Atoms``: ``domain`` (int), ``site`` (0 Cs, 1 Pb,
2 X) and ``half_index`` (int, shape (N, 3): H, the reference-lattice coordinates used
by :func:`~nanodomains.structure.columns.project_columns`).
"""

from __future__ import annotations

import numpy as np

from nanodomains.errors import InputError
from nanodomains.files import atomic_path
from nanodomains.seeds import rng as make_rng

SITE_CS, SITE_PB, SITE_X = 0, 1, 2
SITE_NAMES = {SITE_CS: "Cs", SITE_PB: "Pb", SITE_X: "X"}

_X_OFFSETS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])
_CS_OFFSETS = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)])


def octahedra(nc) -> tuple[np.ndarray, np.ndarray]:
    """Pb positions (half-cell units, int (M, 3)) and their domain ids."""
    grid = nc.cell_map()
    shifted_domain = np.array([d.is_shifted for d in nc.domains])
    shifted = shifted_domain[grid]
    # registry 0: one octahedron per unshifted cell, at the cell centre
    cells0 = np.argwhere(~shifted)
    pb0 = 2 * cells0 + 1
    dom0 = grid[~shifted]
    # registry 1/2: interior corners with all 8 surrounding cells shifted
    all8 = np.ones(tuple(k - 1 for k in grid.shape), dtype=bool)
    for di in (0, 1):
        for dj in (0, 1):
            for dk in (0, 1):
                all8 &= shifted[di:di + all8.shape[0], dj:dj + all8.shape[1], dk:dk + all8.shape[2]]
    corners = np.argwhere(all8) + 1  # corner p sits between cells p-1 and p
    pb1 = 2 * corners
    dom1 = grid[corners[:, 0], corners[:, 1], corners[:, 2]]
    return np.concatenate([pb0, pb1]), np.concatenate([dom0, dom1]).astype(np.int32)


def build_atoms(nc, seed: int | np.random.Generator | None = None):
    """Build the ``ase.Atoms`` model of ``nc`` (see module docstring).

    Parameters
    ----------
    nc : NanoCrystal
    seed : int, numpy.random.SeedSequence or numpy.random.Generator
        Halide occupancy randomness (:func:`nanodomains.seeds.rng`); recorded in
        ``atoms.info["seed"]`` when an int (-1 otherwise).
    """
    from ase import Atoms

    if seed is None:
        raise InputError("to_atoms needs a seed (int or numpy Generator) for the Br/I occupancy")
    rng = make_rng(seed)
    pb, dom = octahedra(nc)
    m = len(pb)
    half = np.concatenate([
        pb,
        (pb[:, None, :] + _X_OFFSETS[None]).reshape(-1, 3),
        (pb[:, None, :] + _CS_OFFSETS[None]).reshape(-1, 3),
    ])
    domain = np.concatenate([dom, np.repeat(dom, 6), np.repeat(dom, 8)])
    site = np.concatenate([np.full(m, SITE_PB), np.full(6 * m, SITE_X), np.full(8 * m, SITE_CS)])
    # shared corners/faces: keep each lattice site once (first owner wins)
    base = int(half.max()) + 3
    key = ((half[:, 0] + 1) * base + (half[:, 1] + 1)) * base + (half[:, 2] + 1)
    _, first = np.unique(key, return_index=True)
    first.sort()
    half, domain, site = half[first], domain[first], site[first].astype(np.int8)

    numbers = np.where(site == SITE_CS, 55, 82)
    x_mask = site == SITE_X
    br_fraction = np.array([d.br_fraction for d in nc.domains])
    is_br = rng.random(len(site)) < br_fraction[domain]
    numbers = np.where(x_mask, np.where(is_br, 35, 53), numbers)

    a_ref_nm = nc.reference_lattice_pm / 1000
    pos_nm = half * (a_ref_nm / 2)
    scale = np.array([nc.domain_lattice_pm(d.id) for d in nc.domains]) / nc.reference_lattice_pm
    centre = np.array([np.clip(d.region.center_nm, 0, nc.edges_nm) for d in nc.domains])
    pos_nm = centre[domain] + (pos_nm - centre[domain]) * scale[domain, None]

    atoms = Atoms(numbers=numbers, positions=pos_nm * 10.0,  # ASE uses Angstrom
                  cell=np.array(nc.edges_nm) * 10.0 + 10.0, pbc=False)
    atoms.set_array("domain", domain.astype(np.int32))
    atoms.set_array("site", site.astype(np.int32))
    atoms.set_array("half_index", half.astype(np.int32))
    atoms.info.update({"nominal_formula": nc.nominal_formula,
                       "reference_lattice_pm": nc.reference_lattice_pm,
                       "seed": seed if isinstance(seed, (int, np.integer)) else -1})
    return atoms


def write_atoms(atoms, path) -> None:
    """Write extxyz (with per-atom ``domain``/``site`` arrays) or CIF by file extension, atomically."""
    from pathlib import Path

    from ase.io import write

    p = Path(path)
    formats = {".extxyz": "extxyz", ".xyz": "extxyz", ".cif": "cif"}
    fmt = formats.get(p.suffix.lower())
    if fmt is None:
        raise InputError(f"{p}: atoms export supports .extxyz/.xyz or .cif, got {p.suffix.lower()!r}")
    with atomic_path(p) as tmp:
        write(tmp, atoms, format=fmt)

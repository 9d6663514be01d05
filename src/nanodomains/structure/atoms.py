"""Atomistic perovskite model of a :class:`~nanodomains.structure.model.NanoCrystal`.

Construction (all in half-cell integer units H = 2 r / a_ref of the reference lattice)
--------------------------------------------------------------------------------------
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


def periodic_atoms(n_cells=(2, 2, 2), br_fraction: float = 0.0, lattice_pm: float | None = None, *,
                   rp_layers: int | None = None, slab_layers: int | None = None, vacuum_a: float = 15.0,
                   seed: int | np.random.Generator = 0):
    """A periodic CsPbX3 supercell, optionally with RP faults or as a CsX-terminated slab.

    Same half-cell integer grid as :func:`build_atoms` (Pb at odd H, Cs at even H, X
    between two Pb). Three kinds, stacked along z:

    * bulk (default): ``n_cells`` cubic cells, ``Cs Pb X3`` per cell;
    * ``rp_layers=L``: two blocks of L octahedral layers per period, each ending in a CsX
      layer; the second block is displaced by 1/2 a<111> (its CsX layer starts a/2 above
      the last one of the first block, shifted by (a/2, a/2) in plane), so the period holds
      two rock-salt CsX double layers (RP faults) at z = (L + 1/4) a and (2L + 3/4) a:
      ``Cs_{L+1} Pb_L X_{3L+1}`` per in-plane cell and block, period (2L + 1) a
      (``n_cells[2]`` is ignored);
    * ``slab_layers=L``: one block of L octahedral layers, CsX-terminated on both sides,
      with ``vacuum_a`` of vacuum along z (periodic in plane).

    Halide sites get exactly ``round(br_fraction * n_X)`` Br atoms at random (``seed``).
    Per-atom arrays ``site`` (0 Cs, 1 Pb, 2 X) and ``half_index`` (H, int (N, 3)) as in
    :func:`build_atoms`; ``atoms.info`` holds ``kind``, ``layers`` and, for RP cells,
    ``fault_planes_a`` (z of the two fault planes, A, unrelaxed).
    """
    from ase import Atoms

    from nanodomains import materials

    nx, ny, nz = (int(v) for v in n_cells)
    if min(nx, ny, nz) < 1:
        raise InputError(f"n_cells must be positive integers, got {n_cells!r}")
    if not 0.0 <= br_fraction <= 1.0:
        raise InputError(f"br_fraction must be in [0, 1], got {br_fraction!r}")
    if rp_layers is not None and slab_layers is not None:
        raise InputError("give rp_layers or slab_layers, not both")
    a = float(lattice_pm if lattice_pm is not None else materials.lattice_constant_pm(br_fraction)) / 100.0
    if rp_layers is not None:
        layers = _layer_stack([(int(rp_layers), 0), (int(rp_layers), 1)])
        period_h, kind, n_layers = 4 * int(rp_layers) + 2, "rp", int(rp_layers)
    elif slab_layers is not None:
        layers = _layer_stack([(int(slab_layers), 0)])
        period_h, kind, n_layers = None, "slab", int(slab_layers)
    else:
        layers = [(z, "PbX2" if z % 2 else "CsX", 0) for z in range(2 * nz)]
        period_h, kind, n_layers = 2 * nz, "bulk", nz
    if n_layers < 1:
        raise InputError(f"the number of octahedral layers must be >= 1, got {n_layers}")
    half, site = _fill_layers(layers, nx, ny)
    rng = make_rng(seed)
    x_idx = np.flatnonzero(site == SITE_X)
    n_br = int(round(br_fraction * len(x_idx)))
    is_br = np.zeros(len(site), bool)
    is_br[rng.permutation(x_idx)[:n_br]] = True
    numbers = np.where(site == SITE_CS, 55, np.where(site == SITE_PB, 82, np.where(is_br, 35, 53)))
    if period_h is None:
        zmax = float(half[:, 2].max()) * a / 2
        cell_z = zmax + vacuum_a
    else:
        cell_z = period_h * a / 2
    atoms = Atoms(numbers=numbers, positions=half * (a / 2), cell=[nx * a, ny * a, cell_z], pbc=True)
    if period_h is None:
        atoms.positions[:, 2] += vacuum_a / 2
    atoms.set_array("site", site.astype(np.int32))
    atoms.set_array("half_index", half.astype(np.int32))
    atoms.info.update({"kind": kind, "layers": n_layers, "lattice_pm": a * 100.0, "br_fraction": br_fraction})
    if kind == "rp":
        atoms.info["fault_planes_a"] = [(2 * n_layers + 0.5) * a / 2, (4 * n_layers + 1.5) * a / 2]
    return atoms


def _layer_stack(blocks):
    """(z, kind, registry) of consecutive blocks of (L octahedral layers, registry)."""
    out, z = [], 0
    for n, reg in blocks:
        for k in range(2 * n + 1):
            out.append((z, "PbX2" if k % 2 else "CsX", reg))
            z += 1
    return out


def _fill_layers(layers, nx: int, ny: int):
    """Half-index positions and site kinds of a stack of CsX / PbX2 layers.

    Registry 0: CsX layer Cs (even, even), X (odd, odd); PbX2 layer Pb (odd, odd),
    X (even, odd) and (odd, even). Registry 1 (1/2 a<111> shift) swaps even and odd.
    """
    ii, jj = np.meshgrid(np.arange(2 * nx), np.arange(2 * ny), indexing="ij")
    ii, jj = ii.ravel(), jj.ravel()
    half, site = [], []
    for z, kind, reg in layers:
        pi, pj = (ii + reg) % 2, (jj + reg) % 2  # parity in the layer's own registry
        if kind == "CsX":
            sel = [(pi == 0) & (pj == 0), (pi == 1) & (pj == 1)]
            kinds = [SITE_CS, SITE_X]
        else:
            sel = [(pi == 1) & (pj == 1), pi != pj]
            kinds = [SITE_PB, SITE_X]
        for m, s in zip(sel, kinds):
            half.append(np.column_stack([ii[m], jj[m], np.full(m.sum(), z)]))
            site.append(np.full(m.sum(), s))
    return np.concatenate(half), np.concatenate(site)

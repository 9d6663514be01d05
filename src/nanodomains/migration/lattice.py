"""The halide (X) sublattice of an NC model as a hop graph for vacancy kinetics.

Built from :func:`nanodomains.structure.atoms.build_atoms` (``nc.to_atoms``), whose
per-atom ``half_index`` H gives every site in half cells of the reference lattice:
each PbX6 octahedron has its Pb at P and its six X at P +- e_k. Corner sharing makes
every bulk X belong to two octahedra.

Hop paths (bonds)
-----------------
* **bulk / coherent**: the 12 X-X edges of every octahedron, |dH| = sqrt(2) half
  cells, i.e. a/sqrt(2): each bulk X has 8 such neighbours (4 in each of its two
  octahedra). Coherent domain boundaries (same registry) do not interrupt them.
* **RP**: at a Ruddlesden-Popper fault the rock-salt CsX double layer separates the
  two lattices (CsX layer of one side at H_n = 2K, of the other at 2K + 1, shifted by
  (1/2, 1/2) a in plane). No octahedron spans the fault, so no a/sqrt(2) path crosses
  it: the X-X path is broken. The nearest X pairs across the fault are at
  dH = (+-1, +-1, +-1), a sqrt(3)/2; they are kept as candidate bonds of type ``RP``
  so a kinetic model may open them with a crossing barrier.
* **surface**: a bond with at least one end on the outer NC surface (an X bound to
  one octahedron whose missing partner lies outside the NC). X in the CsX layers of
  an RP fault are also bound to one octahedron but are interface, not surface, sites.

Bond types: 0 bulk, 1 surface, 2 RP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nanodomains.errors import InputError

BOND_BULK, BOND_SURFACE, BOND_RP = 0, 1, 2
BOND_NAMES = ("bulk", "surface", "RP")
SPECIES_BR, SPECIES_I = 0, 1
SPECIES_NAMES = ("Br", "I")
#: boundary types between two domains in ``XLattice.boundary_type``
BOUNDARY_NONE, BOUNDARY_COHERENT, BOUNDARY_RP = 0, 1, 2

_X_OFFSETS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])
# the 12 non-opposite pairs of octahedron corners (X-X edges)
_EDGE_PAIRS = np.array([(a, b) for a in range(6) for b in range(a + 1, 6) if a // 2 != b // 2])
_CROSS_OFFSETS = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)])


@dataclass
class XLattice:
    """Halide sublattice of one NC (see module docstring).

    Attributes
    ----------
    positions_nm : (S, 3) float, relaxed (per-domain Vegard) positions
    half_index : (S, 3) int, reference-lattice coordinates in half cells
    domain : (S,) int32, domain id of every X site
    registry : (S,) int8, 0 unshifted, 1 shifted by 1/2 a<111>
    surface : (S,) bool, outer-surface sites
    species : (S,) int8, initial occupant (0 Br, 1 I)
    neighbors : (S, D) int32, neighbour site indices, -1 padded
    bond_type : (S, D) int8, 0 bulk, 1 surface, 2 RP
    pb_of_x : (S, 2) int32, octahedra (Pb index) holding each X, -1 padded
    x_of_pb : (P, 6) int32, the six X of each octahedron
    boundary_type : (nd, nd) int8, 0 not adjacent, 1 coherent, 2 RP
    nc : NanoCrystal the lattice was built from (None for hand-made lattices)
    seed : int or None, occupancy seed
    """

    positions_nm: np.ndarray
    half_index: np.ndarray
    domain: np.ndarray
    registry: np.ndarray
    surface: np.ndarray
    species: np.ndarray
    neighbors: np.ndarray
    bond_type: np.ndarray
    pb_of_x: np.ndarray
    x_of_pb: np.ndarray
    boundary_type: np.ndarray
    nc: object = None
    seed: int | None = None

    @property
    def n_sites(self) -> int:
        return int(len(self.domain))

    @property
    def n_domains(self) -> int:
        return int(self.boundary_type.shape[0])

    def coordination(self, include_rp: bool = False) -> np.ndarray:
        """Number of hop partners of every site (RP bonds counted only if asked)."""
        ok = self.neighbors >= 0
        if not include_rp:
            ok &= self.bond_type != BOND_RP
        return ok.sum(axis=1)


def _encode(h: np.ndarray, base: int) -> np.ndarray:
    h = np.asarray(h, dtype=np.int64) + 2
    return (h[..., 0] * base + h[..., 1]) * base + h[..., 2]


def _lookup(keys_sorted, order, query) -> np.ndarray:
    """Index of each query key in the original array, -1 where absent."""
    pos = np.searchsorted(keys_sorted, query)
    pos = np.clip(pos, 0, len(keys_sorted) - 1)
    found = keys_sorted[pos] == query
    return np.where(found, order[pos], -1)


def _octahedra(hx, hp, keys_sorted, order, base) -> tuple[np.ndarray, np.ndarray]:
    """The six X of every octahedron (P, 6) and the one or two octahedra of every X (S, 2)."""
    x_of_pb = _lookup(keys_sorted, order, _encode(hp[:, None, :] + _X_OFFSETS[None], base)).astype(np.int32)
    if np.any(x_of_pb < 0):
        raise InputError("inconsistent atoms model: an octahedron misses one of its X sites")
    flat_x = x_of_pb.ravel()
    flat_p = np.repeat(np.arange(len(hp)), 6)
    o = np.argsort(flat_x, kind="stable")
    fx, fp = flat_x[o], flat_p[o]
    first = np.r_[True, fx[1:] != fx[:-1]]
    rank = np.arange(len(fx)) - np.maximum.accumulate(np.where(first, np.arange(len(fx)), 0))
    pb_of_x = np.full((len(hx), 2), -1, dtype=np.int32)
    pb_of_x[fx, rank] = fp
    return x_of_pb, pb_of_x


def _bonds(hx, hp, x_of_pb, pb_of_x, n_cells, keys_sorted, order, base):
    """Bonds (E, 2), their types, the registry and the outer-surface flag of every X."""
    # registry from parity: unshifted X have exactly one even coordinate
    registry = ((hx % 2 == 0).sum(axis=1) == 2).astype(np.int8)
    # outer surface: bound to one octahedron whose missing partner lies outside the NC
    one = (pb_of_x >= 0).sum(axis=1) == 1
    missing = 2 * hx - hp[np.maximum(pb_of_x[:, 0], 0)]
    outside = np.any((missing <= 0) | (missing >= 2 * n_cells[None, :]), axis=1)
    surface = one & outside
    e = x_of_pb[:, _EDGE_PAIRS].reshape(-1, 2)  # octahedron edges
    # candidate RP bonds: interface X (one octahedron, not outer surface) across the fault
    iface = np.flatnonzero(one & ~outside)
    cand = _lookup(keys_sorted, order, _encode(hx[iface][:, None, :] + _CROSS_OFFSETS[None], base))
    ii, jj = np.repeat(iface, 8), cand.ravel()
    ok = jj >= 0
    ii, jj = ii[ok], jj[ok]
    ok = registry[ii] != registry[jj]
    rp = np.stack([ii[ok], jj[ok]], axis=1)
    rp = rp[rp[:, 0] < rp[:, 1]]
    edges = np.concatenate([e, rp])
    etype = np.concatenate([np.full(len(e), BOND_BULK, np.int8), np.full(len(rp), BOND_RP, np.int8)])
    etype[(etype == BOND_BULK) & (surface[edges[:, 0]] | surface[edges[:, 1]])] = BOND_SURFACE
    return edges, etype, registry, surface


def _neighbor_table(edges, etype, s) -> tuple[np.ndarray, np.ndarray]:
    """Both directions of every bond as a padded (S, D) neighbour table and bond types."""
    src = np.concatenate([edges[:, 0], edges[:, 1]])
    dst = np.concatenate([edges[:, 1], edges[:, 0]])
    typ = np.concatenate([etype, etype])
    o = np.lexsort((dst, src))
    src, dst, typ = src[o], dst[o], typ[o]
    deg = np.bincount(src, minlength=s)
    dmax = int(deg.max()) if s else 0
    start = np.r_[0, np.cumsum(deg)[:-1]]
    col = np.arange(len(src)) - start[src]
    neighbors = np.full((s, dmax), -1, dtype=np.int32)
    bond_type = np.zeros((s, dmax), dtype=np.int8)
    neighbors[src, col] = dst
    bond_type[src, col] = typ
    return neighbors, bond_type


def _boundary_types(nc) -> np.ndarray:
    nd = len(nc.domains)
    btype = np.zeros((nd, nd), dtype=np.int8)
    for b in nc.boundaries:
        i, j = b.domains
        kind = BOUNDARY_RP if b.type == "RP" else BOUNDARY_COHERENT
        btype[i, j] = btype[j, i] = max(btype[i, j], kind)
    return btype


def build_x_lattice(nc, seed: int | None = None) -> XLattice:
    """Build the X-sublattice hop graph of a :class:`~nanodomains.structure.NanoCrystal`.

    Parameters
    ----------
    nc : NanoCrystal
    seed : int, optional
        Seed of the Br/I occupancy (``nc.to_atoms(seed)``); defaults to ``nc.seed``.

    Returns
    -------
    XLattice

    Examples
    --------
    >>> from nanodomains.structure import homogeneous
    >>> lat = build_x_lattice(homogeneous(2.4, seed=1))
    >>> lat.n_sites, int(lat.coordination().max())
    (240, 8)
    """
    seed = nc.seed if seed is None else seed
    if seed is None:
        raise InputError("building the X sublattice needs a seed for the Br/I occupancy "
                         "(the NC model has none; pass seed=)")
    atoms = nc.to_atoms(seed)
    site = atoms.get_array("site")
    half = atoms.get_array("half_index").astype(np.int64)
    dom = atoms.get_array("domain").astype(np.int32)
    xm, pm = site == 2, site == 1
    hx, hp = half[xm], half[pm]
    species = np.where(atoms.numbers[xm] == 35, SPECIES_BR, SPECIES_I).astype(np.int8)
    base = int(half.max()) + 6
    keys = _encode(hx, base)
    order = np.argsort(keys)
    keys_sorted = keys[order]
    x_of_pb, pb_of_x = _octahedra(hx, hp, keys_sorted, order, base)
    edges, etype, registry, surface = _bonds(hx, hp, x_of_pb, pb_of_x, np.array(nc.n_cells), keys_sorted,
                                             order, base)
    neighbors, bond_type = _neighbor_table(edges, etype, len(hx))
    return XLattice(positions_nm=atoms.positions[xm] / 10.0,  # Angstrom -> nm
                    half_index=hx.astype(np.int32), domain=dom[xm], registry=registry, surface=surface,
                    species=species, neighbors=neighbors, bond_type=bond_type, pb_of_x=pb_of_x, x_of_pb=x_of_pb,
                    boundary_type=_boundary_types(nc), nc=nc, seed=seed)

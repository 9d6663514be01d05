"""The halide (X) sublattice of an NC model as a hop graph for vacancy kinetics.

Built from :func:`nanodomains.structure.atoms.build_atoms` (``nc.to_atoms``), whose
per-atom ``half_index`` H gives every site in half cells of the reference lattice:
each PbX6 octahedron has its Pb at P and its six X at P +- e_k. Corner sharing makes
every bulk X belong to two octahedra.

Hop paths (bonds)
-----------------
* **bulk / coherent**: the 12 X-X edges of every octahedron, ``|dH|`` = sqrt(2) half
  cells, i.e. a/sqrt(2): each bulk X has 8 such neighbours (4 in each of its two
  octahedra). Coherent domain boundaries (same registry) do not interrupt them.
* **RP**: at a Ruddlesden-Popper fault the rock-salt CsX double layer separates the
  two lattices (CsX layer of one side at H_n = 2K, of the other at 2K + 1, shifted by
  (1/2, 1/2) a in plane). No octahedron spans the fault, so no a/sqrt(2) path crosses
  it: the X-X path is broken. The nearest X pairs across the fault are at
  dH = (+-1, +-1, +-1), a sqrt(3)/2; they are kept as candidate bonds of type ``RP``
  so a kinetic model may open them with a crossing barrier.
* **along** (the fault plane): the X of one CsX layer of an RP fault (``interface``
  sites: bound to one octahedron, not on the outer surface) are in-plane neighbours at
  distance a (dH = 2 along an axis perpendicular to the fault). No octahedron edge
  joins them; they are kept as bonds of type ``along`` so a kinetic model can give
  the hop along the fault its own barrier.
* **surface**: a bond with at least one end on the outer NC surface (an X bound to
  one octahedron whose missing partner lies outside the NC). X in the CsX layers of
  an RP fault are also bound to one octahedron but are interface, not surface, sites.

Bond types: 0 bulk, 1 surface, 2 RP, 3 along.

Distance from the fault
-----------------------
``fault_distance_nm`` of a site is its distance along the fault normal from the
midplane of the CsX double layer of the nearest RP fault of its domain (the midplane
is the mean of the midpoints of that fault's RP bonds); sites of domains without an RP
fault get ``inf``. The interface X sit at about a/4 from the midplane, the next X
layer at 3a/4.

``dependents`` lists, per octahedron, the sites whose hop environment (the Br/I
occupancy around a path, see :mod:`nanodomains.migration.landscape`) reads that
octahedron: its six X and the RP partners of its interface X.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nanodomains.errors import InputError

BOND_BULK, BOND_SURFACE, BOND_RP, BOND_ALONG = 0, 1, 2, 3
BOND_NAMES = ("bulk", "surface", "RP", "along")
SPECIES_BR, SPECIES_I = 0, 1
SPECIES_NAMES = ("Br", "I")
#: boundary types between two domains in ``XLattice.boundary_type``
BOUNDARY_NONE, BOUNDARY_COHERENT, BOUNDARY_RP = 0, 1, 2

_X_OFFSETS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])
# the 12 non-opposite pairs of octahedron corners (X-X edges)
_EDGE_PAIRS = np.array([(a, b) for a in range(6) for b in range(a + 1, 6) if a // 2 != b // 2])
_CROSS_OFFSETS = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)])
_ALONG_OFFSETS = 2 * _X_OFFSETS


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
    interface : (S,) bool, X of the CsX layers of an RP fault (one octahedron, not surface)
    fault_distance_nm : (S,) float, distance from the nearest RP fault midplane (inf: none)
    species : (S,) int8, initial occupant (0 Br, 1 I)
    neighbors : (S, D) int32, neighbour site indices, -1 padded
    bond_type : (S, D) int8, 0 bulk, 1 surface, 2 RP, 3 along
    pb_of_x : (S, 2) int32, octahedra (Pb index) holding each X, -1 padded
    x_of_pb : (P, 6) int32, the six X of each octahedron
    dependents : (P, K) int32, sites whose hop environment reads octahedron P, -1 padded
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
    interface: np.ndarray | None = None
    fault_distance_nm: np.ndarray | None = None
    dependents: np.ndarray | None = None

    def __post_init__(self):
        # hand-made lattices may omit the derived arrays: no interface, no fault
        s = len(self.domain)
        if self.interface is None:
            self.interface = np.zeros(s, bool)
        if self.fault_distance_nm is None:
            self.fault_distance_nm = np.full(s, np.inf)
        if self.dependents is None:
            self.dependents = dependents_of(self.x_of_pb, self.neighbors, self.bond_type, self.interface)

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
    along = _along_bonds(hx, hp, pb_of_x, iface, registry, keys_sorted, order, base)
    edges = np.concatenate([e, rp, along])
    etype = np.concatenate([np.full(len(e), BOND_BULK, np.int8), np.full(len(rp), BOND_RP, np.int8),
                            np.full(len(along), BOND_ALONG, np.int8)])
    etype[(etype == BOND_BULK) & (surface[edges[:, 0]] | surface[edges[:, 1]])] = BOND_SURFACE
    interface = np.zeros(len(hx), bool)
    interface[iface] = True
    return edges, etype, registry, surface, interface


def _along_bonds(hx, hp, pb_of_x, iface, registry, keys_sorted, order, base) -> np.ndarray:
    """In-plane neighbours (distance a) among the interface X of one CsX layer (E, 2)."""
    if len(iface) == 0:
        return np.zeros((0, 2), np.int64)
    normal = hx[iface] - hp[pb_of_x[iface, 0]]  # unit vector from the octahedron to its apical X
    cand = _lookup(keys_sorted, order, _encode(hx[iface][:, None, :] + _ALONG_OFFSETS[None], base))
    in_plane = (normal[:, None, :] * _ALONG_OFFSETS[None]).sum(axis=2) == 0
    ii, jj = np.repeat(iface, 6), cand.ravel()
    ok = (jj >= 0) & in_plane.ravel()
    ii, jj = ii[ok], jj[ok]
    is_iface = np.zeros(len(hx), bool)
    is_iface[iface] = True
    ok = is_iface[jj] & (registry[ii] == registry[jj])
    pairs = np.stack([ii[ok], jj[ok]], axis=1)
    return pairs[pairs[:, 0] < pairs[:, 1]]


def dependents_of(x_of_pb, neighbors, bond_type, interface) -> np.ndarray:
    """Per octahedron, the sites whose hop environment reads it (P, K), -1 padded.

    The environment of a hop along an octahedron edge is that octahedron; of a hop
    across an RP fault (or along it), the octahedra of both ends. So an octahedron is
    read by its own six X and by the RP / along partners of its interface X.
    """
    n_pb = len(x_of_pb)
    if n_pb == 0:
        return np.zeros((0, 6), np.int32)
    far = (bond_type == BOND_RP) | (bond_type == BOND_ALONG)
    extra = np.where(far, neighbors, -1)  # (S, D) partners reached by non-edge bonds
    # partners of the six X of each octahedron (only interface X have any)
    partners = extra[x_of_pb].reshape(n_pb, -1)
    cols = np.concatenate([x_of_pb, partners], axis=1)
    cols = np.sort(cols, axis=1)[:, ::-1]  # -1 padding last
    dup = np.zeros_like(cols, bool)
    dup[:, 1:] = cols[:, 1:] == cols[:, :-1]
    cols = np.where(dup, -1, cols)
    cols = np.sort(cols, axis=1)[:, ::-1]
    width = int((cols >= 0).sum(axis=1).max())
    return np.ascontiguousarray(cols[:, :width]).astype(np.int32)


def _fault_distances(positions_nm, domain, neighbors, bond_type, boundary_normals) -> np.ndarray:
    """Distance of every site from the midplane of its domain's nearest RP fault (nm)."""
    s = len(domain)
    dist = np.full(s, np.inf)
    ok = bond_type == BOND_RP
    if not ok.any():
        return dist
    rows = np.nonzero(ok)[0]
    cols = neighbors[ok]
    pairs = np.stack([domain[rows], domain[cols]], axis=1)
    pairs.sort(axis=1)
    for d1, d2 in np.unique(pairs, axis=0):
        sel = (pairs[:, 0] == d1) & (pairs[:, 1] == d2)
        mid = 0.5 * (positions_nm[rows[sel]] + positions_nm[cols[sel]])
        axis = boundary_normals.get((int(d1), int(d2)))
        if axis is None:  # hand-made lattice: the axis along which the midpoints are flat
            axis = int(np.argmin(mid.std(axis=0)))
        plane = float(mid[:, axis].mean())
        members = (domain == d1) | (domain == d2)
        dist[members] = np.minimum(dist[members], np.abs(positions_nm[members, axis] - plane))
    return dist


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
    edges, etype, registry, surface, interface = _bonds(hx, hp, x_of_pb, pb_of_x, np.array(nc.n_cells),
                                                        keys_sorted, order, base)
    neighbors, bond_type = _neighbor_table(edges, etype, len(hx))
    positions = atoms.positions[xm] / 10.0  # Angstrom -> nm
    normals = {tuple(sorted(b.domains)): int(np.argmax(np.abs(b.normal))) for b in nc.boundaries if b.type == "RP"}
    return XLattice(positions_nm=positions,
                    half_index=hx.astype(np.int32), domain=dom[xm], registry=registry, surface=surface,
                    species=species, neighbors=neighbors, bond_type=bond_type, pb_of_x=pb_of_x, x_of_pb=x_of_pb,
                    boundary_type=_boundary_types(nc), nc=nc, seed=seed, interface=interface,
                    fault_distance_nm=_fault_distances(positions, dom[xm], neighbors, bond_type, normals))

r"""Nanodomain segmentation of [100]-projected perovskite ADF-STEM images.

Signals (seed: Liu et al., Nano Lett. 23, 10089 (2023), Fig. 1a,b; GPA after Hytch,
Snoeck & Kilaas, Ultramicroscopy 74, 131 (1998)):

Registry. A Ruddlesden-Popper (RP) fault translates the lattice by 1/2 a<111>, which
projects along [100] to (1/2, 1/2) a. With geometric phases
:math:`P_g = \varphi_g - 2\pi\,\mathbf g\cdot\mathbf u` of the lock-in images of
:mod:`nanodomains.stem.gpa`, the combinations

.. math:: D_{10} = P_{10} - \tfrac12 (P_{11} + P_{1\bar1}), \qquad
          D_{01} = P_{01} - \tfrac12 (P_{11} - P_{1\bar1})

are independent of any smooth displacement field **u** (strain, lattice-constant
differences between domains, scan distortion), because
:math:`\mathbf g_{10} = (\mathbf g_{11} + \mathbf g_{1\bar1})/2`, provided the (110)
phases are unwrapped; they are smooth across an RP fault (which shifts them by
:math:`2\pi`) and are unwrapped inside the nanocrystal (NC) with
:func:`skimage.restoration.unwrap_phase`. The (100) and (010) phases jump by
:math:`\pi` across the fault, so :math:`D` is 0 in one registry and :math:`\pi` in the
other (the structure-factor phases of the centrosymmetric cell are 0 or :math:`\pi`).
The registry map is the amplitude-weighted

.. math:: \rho = \frac{A_{10}\cos D_{10} + A_{01}\cos D_{01}}{A_{10} + A_{01}}
          \in [-1, 1].

In projection a half-cell shift and an inversion of the two cation-site contrasts are
the same thing (the bright and dim sublattices swap), so :math:`\rho` changes sign at
both; for CsPbX3 that is an RP fault (type ``"RP"``), for an oxide heterostructure it
may be an A/B contrast inversion.

Lattice constant. The local cell edge follows from the (110) and (1-10) lock-ins,
which an RP fault leaves unchanged, as :math:`a(\mathbf r) = a_\mathrm{ref}
(1 + (\varepsilon_{xx} + \varepsilon_{yy})/2)` (GPA strain relative to the refined
reference lattice). Domains of different Br fraction differ by up to ~7 % (Vegard,
PHYSICS.md); the seed's R1 and R2 by ~2 %.

Contrast. :math:`\kappa = (A_{10} + A_{01})/(A_{11} + A_{1\bar1})` measures the
cation-site contrast :math:`|I_\mathrm{Cs} - I_\mathrm{PbX}|` relative to the
lattice signal: it drops as :math:`|1 - 2s|` where a fraction s of the thickness is in
the other registry (a face-on boundary) and changes with composition.

Segmentation (:func:`segment_domains`).

1. NC mask: :math:`A_{11} + A_{1\bar1}` above half its 90th percentile (the lock-in
   amplitude falls to half at the crystal edge), holes filled.
2. Registry components: connected regions (4-connectivity) of sign :math:`\rho`
   where the contrast is not below ``min_registry_contrast`` x its 90th percentile
   (the dip along RP faults keeps domains that meet only at a corner apart), after
   an opening of each sign class; low-contrast regions wider than the GPA
   resolution form domains of mixed registry (shifted fraction near 1/2). Regions
   smaller than ``min_area_nm2`` are absorbed by their neighbours.
3. Each registry component is split recursively in two, first by the lattice map,
   then by the contrast map, when Otsu's threshold separates parts whose medians
   differ by more than ``split_sigma`` pooled robust standard deviations (MAD x
   1.4826, evaluated at least 1/2R from the split line and the crystal edge) and by
   more than ``min_lattice_step`` (relative) or ``min_contrast_step``; the boundary
   is then drawn at the midpoint level (the middle of a blurred step), pixels within
   1/2R of the crystal edge (biased GPA maps) taking the side of their nearest
   neighbours; every connected piece is a region.
4. Columns take the region under them and are re-assigned near boundaries at atomic
   resolution (:func:`refine_column_labels`: their Voronoi intensity against each
   neighbouring domain's bright / dim / X column intensities, and their local cell
   edge, iterated until stable). Domains of fewer columns than ``min_area_nm2``
   holds join their most frequent neighbour; touching domains whose interior columns
   differ significantly in none of registry, lattice spacing and the dim/bright and
   X/bright intensity ratios are merged.
5. The registry of a domain is the sublattice of its bright columns
   (:func:`column_sublattice`) where significant (else the GPA class), relative to
   the crystal's largest domain; boundaries between opposite registries are RP,
   others "other" (composition or thickness change, no half-cell shift).
6. The label map is rebuilt from the columns as the truth sidecar of the simulator
   defines it: every pixel within the covering radius of the column net
   (:func:`covering_radius_px`; :math:`a/(2\sqrt2)`, the corner of a column's a/2
   cell, when the X columns are found, a/2 when only the cations are, as for the
   weak oxygen columns of oxides; x 1.05 so that no gaps open) of a column takes its
   nearest column's label, and holes (undetected columns) are filled
   (:func:`fill_label_holes`): the crystal mask has none.

Per-domain lattice constants (a Table S1) are least-squares lattices through the
domain's interior columns (:func:`nanodomains.stem.columns.lattice_from_columns`,
columns at least one cell from other domains and from the NC edge), with the standard
errors of that fit; the pseudo-cubic value is the mean of the two edges. Boundary
lengths are measured along the boundary, traced at the resolution of the GPA maps
(:func:`boundary_table` with ``smooth_px`` = 1/R: the zero contour of the smoothed
two-label indicator), so that neither the cell-by-cell zigzag of a boundary drawn
around the columns nor the one- or two-cell meander of its placement counts as length
(on the STEMfit tri-layer the interfaces traced at 1/(2R) measure 3-4 % more than the
image width they cross, at 1/R 1 %).

Boundary types are claimed on evidence (:func:`boundary_evidence`): "RP" only where
the half-cell registry shift is measured (both registry phases jump by ~pi, with the
z-score against the within-domain scatter in the record, and the bright and dim
columns do not stay on their sublattices); a change of lattice constant or contrast
without it is "other"; a single crystal has no boundary.

The resolution of the GPA maps is ~1/R (R the mask radius; default ``|g|``/4, four
cells): a domain must be about 1/R wide to be found; its boundaries are then placed
column by column. Domains narrower than ~2 cells, and domains differing by less than
the minimum steps (a Br-fraction difference below ~0.02-0.03 at constant registry),
are not resolved.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numba as nb
import numpy as np
import xarray as xr
from scipy import ndimage
from scipy.spatial import cKDTree

from nanodomains.errors import FitError, InputError
from nanodomains.stem.columns import CLASSIFY_REFLECTIONS, lattice_from_columns, nearest_column_map
from nanodomains.stem.gpa import GPAResult, Lattice, strain_from_lock_in

__all__ = [
    "DomainSegmentation",
    "boundary_evidence",
    "boundary_table",
    "column_labels",
    "column_registry",
    "column_sublattice",
    "column_spacing_px",
    "contrast_map",
    "covering_radius_px",
    "distance_to_background",
    "fill_label_holes",
    "fill_nearest",
    "unwrap_in_mask",
    "domain_lattices",
    "fill_distance",
    "interior_columns",
    "lattice_map_pm",
    "strain_110",
    "local_basis_px",
    "nc_mask",
    "refine_column_labels",
    "registry_map",
    "segment_domains",
    "SegmentationSettings",
]

_MAD = 1.4826
#: an RP boundary needs the registry phases D10 and D01 to jump by more than pi/2
#: (nearer the half-cell pi than 0) by at least this many within-domain scatters
RP_MIN_Z = 3.0
#: a domain's bright / dim column contrast counts as measured beyond this z-score
COLUMN_Z = 3.0


# --------------------------------------------------------------------------- distance transform

_FAR = 1.0e18  # "no background pixel in this row/column yet"; its square stays finite


@nb.njit(cache=True)
def _edt_squared(fg: np.ndarray) -> np.ndarray:
    """Exact squared Euclidean distance of every pixel to the nearest False pixel.

    Columns: distance to the nearest background pixel by two sweeps; rows: the lower
    envelope of parabolas (Felzenszwalb & Huttenlocher, Theory of Computing 8, 415
    (2012)). Every value is an integer held exactly in float64.
    """
    ny, nx = fg.shape
    g = np.empty((ny, nx))
    for j in range(nx):
        g[0, j] = _FAR if fg[0, j] else 0.0
    for i in range(1, ny):
        for j in range(nx):
            g[i, j] = g[i - 1, j] + 1.0 if fg[i, j] else 0.0
    for i in range(ny - 2, -1, -1):
        for j in range(nx):
            if g[i + 1, j] + 1.0 < g[i, j]:
                g[i, j] = g[i + 1, j] + 1.0
    out = np.empty((ny, nx))
    f = np.empty(nx)
    v = np.empty(nx, np.int64)
    z = np.empty(nx + 1)
    for i in range(ny):
        for j in range(nx):
            f[j] = g[i, j] * g[i, j]
        k = 0
        v[0] = 0
        z[0] = -np.inf
        z[1] = np.inf
        for q in range(1, nx):
            s = ((f[q] + q * q) - (f[v[k]] + v[k] * v[k])) / (2.0 * (q - v[k]))
            while s <= z[k]:
                k -= 1
                s = ((f[q] + q * q) - (f[v[k]] + v[k] * v[k])) / (2.0 * (q - v[k]))
            k += 1
            v[k] = q
            z[k] = s
            z[k + 1] = np.inf
        k = 0
        for q in range(nx):
            while z[k + 1] < q:
                k += 1
            out[i, q] = (q - v[k]) * (q - v[k]) + f[v[k]]
    return out


def distance_to_background(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance (px) of every True pixel of ``mask`` to the nearest False pixel.

    The same numbers as :func:`scipy.ndimage.distance_transform_edt` (the squared
    distances are exact integers; their float64 square roots are identical) in a
    numba kernel an order of magnitude faster on megapixel maps (O(N), no feature
    transform). A mask without any False pixel is passed to scipy (whose convention
    then applies).

    Examples
    --------
    >>> m = np.ones((3, 5), bool); m[1, 0] = False
    >>> distance_to_background(m)[1]
    array([0., 1., 2., 3., 4.])
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2 or m.all() or m.size == 0:
        return ndimage.distance_transform_edt(m)
    return np.sqrt(_edt_squared(np.ascontiguousarray(m)))


# --------------------------------------------------------------------------- maps


def _refl_index(res: GPAResult, hk: tuple[int, int]) -> int:
    if tuple(hk) not in res.reflections_hk:
        raise InputError(
            f"the GPA result lacks reflection {hk}; compute it with reflections={CLASSIFY_REFLECTIONS}"
        )
    return res.reflections_hk.index(tuple(hk))


def _lock_in(res: GPAResult, hk: tuple[int, int]) -> np.ndarray:
    i = _refl_index(res, hk)
    return res.amplitude[i].astype(np.float64) * np.exp(1j * res.phase[i].astype(np.float64))


def nc_mask(res: GPAResult, *, level: float = 0.5, min_area_px: int = 64) -> np.ndarray:
    """Crystal region: (110) lock-in amplitude above ``level`` x its 90th percentile.

    Parameters
    ----------
    res : GPAResult
        With the (1,1) and (1,-1) reflections.
    level : float
        Fraction of the interior amplitude at the edge (0.5: half maximum).
    min_area_px : int
        Smaller connected regions are dropped.

    Returns
    -------
    ndarray of bool
    """
    a = res.amplitude[_refl_index(res, (1, 1))].astype(np.float64) + res.amplitude[_refl_index(res, (1, -1))]
    ref = float(np.percentile(a, 90))
    if not ref > 0:
        raise FitError("no lattice signal: (110) lock-in amplitude is zero")
    m = ndimage.binary_fill_holes(a > level * ref)
    lab, n = ndimage.label(m)
    if n == 0:
        raise FitError("no crystal region found in the (110) amplitude map")
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    out = np.isin(lab, np.flatnonzero(sizes >= min_area_px))
    if not out.any():
        raise FitError(f"no crystal region of at least {min_area_px} px in the (110) amplitude map "
                       f"(largest {int(sizes.max())} px)")
    return out


def _half_phases(res: GPAResult, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(U11 + U1-1)/2 and (U11 - U1-1)/2 from the (110) phases unwrapped inside ``mask``.

    These are the (100) and (010) phases a lattice without RP shifts would have.
    """
    box = _bbox(mask, 1)  # unwrap only around the crystal: the rest is masked anyway
    out = []
    for hk in ((1, 1), (1, -1)):
        u = np.zeros(mask.shape)
        u[box] = unwrap_in_mask(res.phase[_refl_index(res, hk)][box].astype(np.float64), mask[box],
                                MASK_SUPPORT_RADII * res.mask_radius_per_px)
        out.append(u)
    return 0.5 * (out[0] + out[1]), 0.5 * (out[0] - out[1])


#: support of the GPA mask in units of its radius: the Gaussian mask exp(-2 (k/R)^2)
#: falls below 1e-4 at 2.15 R (the cosine mask ends at R)
MASK_SUPPORT_RADII = 0.5 * float(np.sqrt(2.0 * np.log(1e4)))


def _linear_upsample(coarse: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear interpolation of values on the grid ``rows x cols`` to every pixel."""
    def weights(n: int, knots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i = np.clip(np.searchsorted(knots, np.arange(n), side="right") - 1, 0, len(knots) - 2)
        return i, (np.arange(n) - knots[i]) / (knots[i + 1] - knots[i])

    iy, wy = weights(shape[0], rows)
    ix, wx = weights(shape[1], cols)
    along_y = coarse[iy] * (1 - wy)[:, None] + coarse[iy + 1] * wy[:, None]
    return along_y[:, ix] * (1 - wx) + along_y[:, ix + 1] * wx


def unwrap_in_mask(phase: np.ndarray, mask: np.ndarray, band_per_px: float) -> np.ndarray:
    r"""Unwrap a band-limited lock-in phase inside ``mask`` on a coarse grid (0 outside).

    As :func:`nanodomains.stem.gpa.unwrap_band_limited`, with a mask: the phase of a
    lock-in image band-limited to :math:`k_s` changes by less than :math:`\pi/2`
    between pixels ``s = 1/(4 k_s)`` apart, so the masked phase is unwrapped
    (:func:`skimage.restoration.unwrap_phase`, Herraez et al. 2002) on the grid of
    every s-th pixel (coarse points outside the mask take the value of the nearest one
    inside), interpolated back, and each wrapped pixel gets the multiple of
    :math:`2\pi` nearest the interpolated value. The result is checked: where any two
    neighbouring pixels of the mask differ by more than pi (phase singularities, a
    mask part the coarse grid misses) the full-resolution unwrap is used instead. Each
    connected part of the mask has its own arbitrary multiple of :math:`2\pi`, as with
    the full-resolution unwrap.
    """
    from skimage.restoration import unwrap_phase

    p = np.asarray(phase, dtype=np.float64)
    step = max(1, int(1.0 / (4.0 * band_per_px)))
    ny_, nx_ = p.shape
    rows = np.unique(np.r_[np.arange(0, ny_, step), ny_ - 1])
    cols = np.unique(np.r_[np.arange(0, nx_, step), nx_ - 1])
    cmask = mask[np.ix_(rows, cols)]
    if step >= 2 and len(rows) >= 2 and len(cols) >= 2 and cmask.sum() >= 4:
        coarse = unwrap_phase(np.ma.masked_array(p[np.ix_(rows, cols)], ~cmask)).filled(0.0)
        if not cmask.all():
            _, (iy, ix) = ndimage.distance_transform_edt(~cmask, return_indices=True)  # small grid
            coarse = coarse[iy, ix]
        smooth = _linear_upsample(coarse, rows.astype(float), cols.astype(float), p.shape)
        out = np.where(mask, p + 2 * np.pi * np.round((smooth - p) / (2 * np.pi)), 0.0)
        jumps = (np.abs(np.diff(out, axis=0)) > np.pi) & mask[1:] & mask[:-1]
        if not jumps.any() and not ((np.abs(np.diff(out, axis=1)) > np.pi) & mask[:, 1:] & mask[:, :-1]).any():
            return out
    return unwrap_phase(np.ma.masked_array(p, ~mask)).filled(0.0)


def registry_map(res: GPAResult, mask: np.ndarray, half_phases: tuple[np.ndarray, np.ndarray] | None = None
                 ) -> np.ndarray:
    """Registry map rho in [-1, 1] (module docstring); NaN outside ``mask``.

    Parameters
    ----------
    res : GPAResult
        With reflections (1,0), (0,1), (1,1), (1,-1).
    mask : ndarray of bool
        Crystal region (phases are unwrapped inside it; each connected part has its
        own arbitrary overall sign).
    half_phases : (ndarray, ndarray), optional
        Precomputed unwrapped half phases (internal).
    """
    h10, h01 = half_phases if half_phases is not None else _half_phases(res, mask)
    a10 = res.amplitude[_refl_index(res, (1, 0))].astype(np.float64)
    a01 = res.amplitude[_refl_index(res, (0, 1))].astype(np.float64)
    d10 = res.phase[_refl_index(res, (1, 0))].astype(np.float64) - h10
    d01 = res.phase[_refl_index(res, (0, 1))].astype(np.float64) - h01
    rho = (a10 * np.cos(d10) + a01 * np.cos(d01)) / np.maximum(a10 + a01, 1e-300)
    return np.where(mask, rho, np.nan)


def column_sublattice(positions_px: np.ndarray, res: GPAResult, half_phases: tuple[np.ndarray, np.ndarray]
                      ) -> np.ndarray:
    r"""Cation sublattice of each column in a frame without RP shifts (+1, -1; 0: X site).

    The (100) fringe of a lattice without RP shifts has the phase
    :math:`\psi_{10} = 2\pi\,\mathbf g_{10}\cdot\mathbf r + (U_{11} + U_{1\bar1})/2`
    (unwrapped (110) phases), likewise for (010); :math:`\cos\psi_{10} +
    \cos\psi_{01}` is +2 on one cation sublattice, -2 on the other and 0 on X
    sites, in the sign convention of :func:`registry_map`: in registry +1 the bright
    cation columns sit on sublattice +1.
    """
    h10, h01 = half_phases
    iy = np.clip(np.round(positions_px[:, 0]).astype(int), 0, h10.shape[0] - 1)
    ix = np.clip(np.round(positions_px[:, 1]).astype(int), 0, h10.shape[1] - 1)
    g10 = res.g_per_px[_refl_index(res, (1, 0))]
    g01 = res.g_per_px[_refl_index(res, (0, 1))]
    c = np.cos(2 * np.pi * positions_px @ g10 + h10[iy, ix]) + np.cos(2 * np.pi * positions_px @ g01 + h01[iy, ix])
    return np.where(c > 1.0, 1, np.where(c < -1.0, -1, 0)).astype(np.int64)


def column_registry(sublattice: np.ndarray, types: np.ndarray, names: tuple[str, str, str] = ("Cs", "PbX", "X")
                    ) -> np.ndarray:
    """Registry of each cation column (+1, -1; 0 for X and unindexed columns).

    A bright column (``names[1]``) on sublattice +1, or a dim one (``names[0]``) on
    sublattice -1 (:func:`column_sublattice`), is in registry +1.
    """
    types = np.asarray(types).astype(str)
    sub = np.asarray(sublattice)
    return np.where(types == names[1], sub, np.where(types == names[0], -sub, 0)).astype(np.int64)


def column_spacing_px(positions_px: np.ndarray, lattice: Lattice, tol: float = 0.2,
                      both: bool = False) -> np.ndarray:
    """Local cell edge at each column (px), along both cell vectors of ``lattice``.

    Along each cell vector a_i the edge is the distance between the column's +-a_i/2
    neighbours (the X / O columns of a cation, the cations of an X column), or, where
    those are not in the table (oxygen columns are often too weak to detect), half
    the distance between its +-a_i neighbours (the same site one cell away). The
    neighbour vectors are the found lattice's basis, so any orientation and cell
    shape work. NaN where neither pair is found within ``tol`` x ``|a_i|``/2 of its
    expected place (crystal edge); the result is the mean over the two vectors
    found, with ``both`` NaN unless both are (the column is not at the crystal edge).
    """
    tree = cKDTree(positions_px)
    out = []
    for a in lattice.basis_px:
        r = tol * 0.5 * float(np.linalg.norm(a))
        d = np.full(len(positions_px), np.nan)
        for step, per_cell in ((0.5 * a, 1.0), (a, 0.5)):  # half-cell pair first, full-cell pair where missing
            todo = ~np.isfinite(d)
            if not todo.any():
                break
            p = positions_px[todo]
            dp, ip = tree.query(p + step, distance_upper_bound=r)
            dm, im = tree.query(p - step, distance_upper_bound=r)
            ok = np.isfinite(dp) & np.isfinite(dm)
            sub = np.full(len(p), np.nan)
            sub[ok] = per_cell * np.linalg.norm(positions_px[ip[ok]] - positions_px[im[ok]], axis=1)
            d[todo] = sub
        out.append(d)
    st = np.stack(out)
    if both:
        return st.mean(axis=0)
    n = np.isfinite(st).sum(axis=0)
    return np.where(n > 0, np.nansum(st, axis=0) / np.maximum(n, 1), np.nan)


def strain_110(res: GPAResult) -> dict[str, np.ndarray]:
    """Strain and rotation maps from the (110) and (1-10) lock-ins (unaffected by RP shifts).

    :func:`nanodomains.stem.gpa.strain_from_lock_in` of those two reflections.
    """
    i, j = _refl_index(res, (1, 1)), _refl_index(res, (1, -1))
    return strain_from_lock_in(_lock_in(res, (1, 1)), _lock_in(res, (1, -1)), res.g_per_px[i], res.g_per_px[j])


def lattice_map_pm(res: GPAResult, strain: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Local cell edge a(r) in pm from the (110) and (1-10) lock-ins (module docstring).

    ``strain``: :func:`strain_110` of ``res`` when already computed.
    """
    if res.lattice.pixel_size_pm is None:
        raise InputError("lattice_map_pm needs a calibrated image")
    st = strain if strain is not None else strain_110(res)
    a_ref = float(np.mean(res.lattice.lattice_pm))
    return a_ref * (1.0 + 0.5 * (st["exx"] + st["eyy"]))


def contrast_map(res: GPAResult) -> np.ndarray:
    """Cation-site contrast kappa = (A10 + A01) / (A11 + A1-1) (module docstring)."""
    num = res.amplitude[_refl_index(res, (1, 0))].astype(np.float64) + res.amplitude[_refl_index(res, (0, 1))]
    den = res.amplitude[_refl_index(res, (1, 1))].astype(np.float64) + res.amplitude[_refl_index(res, (1, -1))]
    return num / np.maximum(den, 1e-300)


# --------------------------------------------------------------------------- segmentation


def fill_distance(shape: tuple[int, ...]) -> int:
    """A growth distance that reaches every pixel of an array (its diagonal).

    For :func:`skimage.segmentation.expand_labels`: labels grown this far fill every
    pixel of an array of ``shape``.

    Examples
    --------
    >>> fill_distance((3, 4))
    6
    """
    return int(np.ceil(np.hypot(*shape))) + 1


def _bbox(mask: np.ndarray, pad: int) -> tuple[slice, slice]:
    """Bounding box of ``mask`` grown by ``pad`` px (clipped): morphology, distance
    transforms and unwrapping of a region need only its neighbourhood, not the frame."""
    if not mask.any():
        return slice(0, 0), slice(0, 0)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (slice(max(rows[0] - pad, 0), min(rows[-1] + pad + 1, mask.shape[0])),
            slice(max(cols[0] - pad, 0), min(cols[-1] + pad + 1, mask.shape[1])))


def fill_nearest(labels: np.ndarray) -> np.ndarray:
    """Every pixel takes the label of its nearest labelled (nonzero) pixel.

    :func:`skimage.segmentation.expand_labels` with a distance that reaches every
    pixel (:func:`fill_distance`), the same pixels and ties, without the distances
    (only scipy's feature transform): about half the time on megapixel maps.
    """
    if not (labels == 0).any():
        return labels.copy()
    idx = ndimage.distance_transform_edt(labels == 0, return_distances=False, return_indices=True)
    return labels[tuple(idx)]


def _erode(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Erosion by a Euclidean disk (via the distance transform; fast for large radii)."""
    if radius_px <= 0:
        return mask.copy()
    return distance_to_background(np.pad(mask, 1))[1:-1, 1:-1] > radius_px


def _open(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Opening by a Euclidean disk: erosion then dilation (distance transforms)."""
    if radius_px <= 0:
        return mask.copy()
    er = _erode(mask, radius_px)
    if not er.any():
        return er
    return distance_to_background(~er) <= radius_px


def _absorb_small(labels: np.ndarray, mask: np.ndarray, min_area_px: int) -> np.ndarray:
    """Relabel regions smaller than ``min_area_px`` by their nearest large region (inside ``mask``)."""
    sizes = np.bincount(labels.ravel(), minlength=1)
    small = np.flatnonzero(sizes < min_area_px)
    small = small[small > 0]
    if len(small) == 0:
        return labels
    out = np.where(np.isin(labels, small), 0, labels)
    if not (out > 0).any():
        return labels
    return np.where(mask, fill_nearest(out), 0)


def _registry_components(rho: np.ndarray, kappa: np.ndarray, mask: np.ndarray, open_px: float,
                         min_area_px: int, min_contrast: float, exclusion_px: float,
                         mixed_contrast: float | None = None) -> tuple[np.ndarray, dict]:
    """Connected regions (1..n, 0 outside) of equal registry; their registry (+1, -1, 0).

    Pixels with contrast below ``min_contrast`` (the amplitude dip along RP faults)
    belong to no sign class, which keeps domains that meet only at a corner apart.
    Regions with contrast below ``mixed_contrast`` (default ``min_contrast``; nearly
    equal registry mixture through the thickness) that survive an erosion by half
    the GPA resolution are domains of undetermined (mixed) registry (0). The rest is
    filled by growing the labelled regions.
    """
    lab = np.zeros(rho.shape, dtype=np.int64)
    reg: dict[int, int] = {}
    n = 0
    strong = mask & (kappa >= min_contrast)
    weak = mask & (kappa < (mixed_contrast if mixed_contrast is not None else min_contrast))
    weak_core = _erode(weak, exclusion_px / 2) if weak.any() else weak
    mixed = ndimage.binary_propagation(weak_core, mask=weak) if weak_core.any() else weak_core
    strong &= ~mixed
    classes = [(1, strong & (np.nan_to_num(rho) > 0)), (-1, strong & (np.nan_to_num(rho) < 0))]
    if mixed.any():
        classes.append((0, mixed))
    for sign, cls in classes:
        if open_px >= 1 and sign != 0:
            cls = _open(cls, open_px)
        l, k = ndimage.label(cls)
        sizes = np.bincount(l.ravel(), minlength=k + 1)
        for j in range(1, k + 1):
            if sizes[j] < min_area_px:
                continue
            n += 1
            lab[l == j] = n
            reg[n] = sign
    if n == 0:
        raise FitError("no registry region found in the crystal (no (100) lattice fringes)")
    lab = np.where(mask, fill_nearest(lab), 0)
    return lab, reg


def _robust_sd(v: np.ndarray) -> float:
    return float(_MAD * np.median(np.abs(v - np.median(v)))) if len(v) else np.inf


def _try_split(region: np.ndarray, feature: np.ndarray, exclusion_px: float, min_area_px: int,
               min_step: float, split_sigma: float, reliable: np.ndarray) -> tuple[np.ndarray, dict] | None:
    """Split a region in two by Otsu's threshold of a feature map, if significant."""
    from skimage.filters import threshold_otsu

    core = region & (distance_to_background(region) >= exclusion_px / 2)
    vals = feature[core]
    if len(vals) < 50 or np.ptp(vals) <= 0:
        return None
    t = float(threshold_otsu(vals))
    sides = _two_sides(region, feature > t, min_area_px, reliable)
    if sides is None:
        return None
    side_hi, side_lo = sides == 1, sides == 2
    c_hi = side_hi & (distance_to_background(side_hi) >= exclusion_px / 2)
    c_lo = side_lo & (distance_to_background(side_lo) >= exclusion_px / 2)
    if c_hi.sum() < 20 or c_lo.sum() < 20:
        return None
    m_hi, m_lo = float(np.median(feature[c_hi])), float(np.median(feature[c_lo]))
    sd = np.sqrt(0.5 * (_robust_sd(feature[c_hi]) ** 2 + _robust_sd(feature[c_lo]) ** 2))
    step = abs(m_hi - m_lo)
    if step < min_step or step < split_sigma * sd:
        return None
    # the boundary of a blurred step lies where the map crosses the midpoint level
    t_mid = 0.5 * (m_hi + m_lo)
    sides = _two_sides(region, feature > t_mid, min_area_px, reliable)
    if sides is None:
        return None
    return sides, {"step": step, "sd": sd, "threshold": t_mid}


def _two_sides(region: np.ndarray, hi: np.ndarray, min_area_px: int, reliable: np.ndarray) -> np.ndarray | None:
    """1 / 2 map of the two sides of a thresholded region, small fragments absorbed.

    Only ``reliable`` pixels (away from the crystal edge, where the GPA maps are
    biased) are classified by the threshold; the others take the side of the nearest
    classified pixel.
    """
    rel = region & reliable
    if rel.sum() < 2 * min_area_px // 4:
        rel = region
    parts = np.zeros(region.shape, dtype=np.int64)
    lab_hi, n_hi = ndimage.label(rel & hi)
    lab_lo, _ = ndimage.label(rel & ~hi)
    parts[lab_hi > 0] = lab_hi[lab_hi > 0]
    parts[lab_lo > 0] = lab_lo[lab_lo > 0] + n_hi
    parts = _absorb_small(parts, rel, min_area_px)
    if not (parts[region] > 0).all():  # growing changes only unlabelled pixels: skip it when there are none
        parts = np.where(region, fill_nearest(parts), 0)
    side_hi = np.isin(parts, np.arange(1, n_hi + 1)) & region
    side_lo = region & ~side_hi
    if side_hi.sum() < min_area_px or side_lo.sum() < min_area_px:
        return None
    return np.where(side_hi, 1, np.where(side_lo, 2, 0))


def _split_recursive(region: np.ndarray, features: list[tuple[np.ndarray, float]], exclusion_px: float,
                     min_area_px: int, split_sigma: float, max_depth: int, reliable: np.ndarray) -> list[np.ndarray]:
    """Regions after recursive significant splits (features tried in order)."""
    if max_depth <= 0:
        return [region]
    for fmap, min_step in features:
        res = _try_split(region, fmap, exclusion_px, min_area_px, min_step, split_sigma, reliable)
        if res is not None:
            two, _ = res
            out: list[np.ndarray] = []
            for k in (1, 2):
                # each connected piece of a side is a region of its own
                pieces, n = ndimage.label(two == k)
                for c in range(1, n + 1):
                    out += _split_recursive(pieces == c, features, exclusion_px, min_area_px, split_sigma,
                                            max_depth - 1, reliable)
            return out
    return [region]


def _image_geometry(image: Any, res: GPAResult) -> tuple[float, tuple[float, float]]:
    px_pm = res.lattice.pixel_size_pm
    if px_pm is None:
        raise InputError("domain segmentation needs a calibrated image (pixel_size_pm)")
    if isinstance(image, xr.DataArray) and "y" in image.coords:
        return float(px_pm), (float(image["y"][0]), float(image["x"][0]))
    return float(px_pm), (float(res.y_nm[0]), float(res.x_nm[0]))


def column_positions_px(columns: Any, pixel_size_pm: float, origin_nm: tuple[float, float]) -> np.ndarray:
    """(n, 2) column positions (y, x) in px from a column table's nm coordinates."""
    h = pixel_size_pm * 1e-3
    return np.stack([(columns["y_nm"].to_numpy(float) - origin_nm[0]) / h,
                     (columns["x_nm"].to_numpy(float) - origin_nm[1]) / h], axis=1)


def column_labels(positions_px: np.ndarray, labels: np.ndarray, valid: np.ndarray | None = None,
                  reach_px: float = 0.0) -> np.ndarray:
    """Label of the pixel under each column (0: none), the labels grown by ``reach_px`` first.

    Parameters
    ----------
    positions_px : ndarray, shape (n, 2)
        Column positions (y, x) in px.
    labels : ndarray of int, shape (ny, nx)
        Region labels, 0 = background.
    valid : ndarray of bool, optional
        Columns to label (others get 0).
    reach_px : float
        Grow the regions by this distance into the background first, so that
        columns at the crystal edge (outside a half-maximum mask) are labelled.
    """
    from skimage.segmentation import expand_labels

    lab = expand_labels(labels, distance=int(np.ceil(reach_px))) if reach_px > 0 else labels
    iy = np.clip(np.round(positions_px[:, 0]).astype(int), 0, labels.shape[0] - 1)
    ix = np.clip(np.round(positions_px[:, 1]).astype(int), 0, labels.shape[1] - 1)
    inside = (positions_px[:, 0] > -0.5) & (positions_px[:, 0] < labels.shape[0] - 0.5) & (
        positions_px[:, 1] > -0.5) & (positions_px[:, 1] < labels.shape[1] - 0.5)
    out = np.where(inside, lab[iy, ix], 0)
    if valid is not None:
        out = np.where(valid, out, 0)
    return out.astype(np.int64)


def label_map_from_columns(positions_px: np.ndarray, column_domain: np.ndarray, shape: tuple[int, int],
                           radius_px: float) -> np.ndarray:
    """Pixel labels: the label of the nearest labelled column within ``radius_px``, else 0.

    The truth sidecars of :mod:`nanodomains.stem.simulate` define their label maps the
    same way (radius a / (2 sqrt 2), the corner of a column's a/2-square cell).
    """
    keep = column_domain > 0
    out = np.zeros(shape, dtype=np.int32)
    if not keep.any():
        return out
    idx, _ = nearest_column_map(positions_px[keep], shape, radius_px)  # -1: no column within the radius
    ok = idx >= 0
    out[ok] = column_domain[keep][idx[ok]]
    return out


def covering_radius_px(positions_px: np.ndarray) -> float:
    """Distance from the farthest point of a column net to its nearest column (px).

    The median circumradius of the Delaunay triangles of the columns: a/(2 sqrt 2)
    for a [100] perovskite with its X (O) columns, a/2 for the cations alone (oxygen
    columns not detected), sqrt(p^2 + q^2)/2 for a rectangular net p x q; any
    orientation. Within it of some column, every pixel of the crystal is covered.
    """
    from scipy.spatial import Delaunay

    pos = np.asarray(positions_px, float)
    if len(pos) < 3:
        raise FitError(f"only {len(pos)} labelled columns: no column net to cover the crystal")
    tri = pos[Delaunay(pos).simplices]  # (m, 3, 2)
    a = np.linalg.norm(tri[:, 1] - tri[:, 2], axis=1)
    b = np.linalg.norm(tri[:, 0] - tri[:, 2], axis=1)
    c = np.linalg.norm(tri[:, 0] - tri[:, 1], axis=1)
    d1, d2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    area2 = np.abs(d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0])  # twice the triangle area
    ok = area2 > 1e-9 * np.maximum(a * b, 1e-300)
    return float(np.median(a[ok] * b[ok] * c[ok] / (2 * area2[ok])))


def fill_label_holes(labels: np.ndarray, positions_px: np.ndarray, column_domain: np.ndarray,
                     gap_px: float = 0.0) -> np.ndarray:
    """Unlabelled pixels enclosed by the crystal take the label of their nearest labelled column.

    A column that was not detected (a weak oxygen column, a failed fit) leaves a hole
    in a label map drawn around the columns, and the wider spacing at a
    Ruddlesden-Popper fault (the rock-salt layer) a gap across the crystal; the
    crystal has neither. Holes are filled, and gaps narrower than 2 ``gap_px``
    (a morphological closing by a disk of radius ``gap_px``, the image border
    continued) are closed.
    """
    occupied = labels > 0
    if gap_px > 0:  # closing by a Euclidean disk (distance transforms), the border continued
        r = int(np.ceil(gap_px)) + 1
        padded = np.pad(occupied, r, mode="edge")
        dilated = distance_to_background(~padded) <= gap_px if not padded.all() else padded
        if dilated.all():  # no background left: the closing fills everything (EDT needs a zero)
            occupied = np.ones_like(occupied)
        else:
            occupied = occupied | (distance_to_background(dilated) > gap_px)[r:-r, r:-r]
    # holes: connected unoccupied regions that do not reach the image border
    empty, _ = ndimage.label(~occupied)
    border = np.unique(np.concatenate([empty[0], empty[-1], empty[:, 0], empty[:, -1]]))
    holes = (labels == 0) & (occupied | ((empty > 0) & ~np.isin(empty, border)))
    if not holes.any():
        return labels
    keep = column_domain > 0
    _, i = cKDTree(positions_px[keep]).query(np.argwhere(holes).astype(float), workers=-1)
    out = labels.copy()
    out[holes] = column_domain[keep][i]
    return out


def _neighbour_lists(tree: cKDTree, points: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
    """(owner, neighbour) index pairs of all points of ``tree`` within ``r`` of each point."""
    if len(points) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = cKDTree(points).sparse_distance_matrix(tree, r, output_type="ndarray")  # self pairs (0) included
    order = np.lexsort((pairs["j"], pairs["i"]))
    return pairs["i"][order].astype(np.int64), pairs["j"][order].astype(np.int64)


def refine_column_labels(positions_px: np.ndarray, column_domain: np.ndarray, sublattice: np.ndarray,
                         intensity: np.ndarray, spacing_px: np.ndarray, band_px: float, cell_px: float,
                         complete: np.ndarray | None = None, intensity_cap: float = 4.5,
                         lattice_cap: float = 2.0, n_smooth: int = 2, n_iter: int = 6) -> np.ndarray:
    r"""Re-assign columns near domain boundaries at atomic resolution.

    Every labelled column within ``band_px`` of a column of another domain (and with
    all four nearest neighbours: not at the crystal perimeter) is given the candidate
    domain d (any domain within ``band_px``) of highest log-likelihood

    .. math:: L_d = -\min\big(z_I^2/2,\ c_I\big) - \min\big(z_a^2/2,\ c_a\big),
              \quad z_I = \frac{I_c - \mu_{d,k}}{s_k},\quad
              z_a = \frac{a_c - \mu_{a,d}}{s_a},

    where k is the column's site class (cation sublattice +1 or -1 of
    :func:`column_sublattice`, or X), :math:`\mu_{d,k}` the median intensity of the
    domain's interior columns of that class (so the registry, the bright sublattice,
    and the composition of the domain enter), :math:`a_c` the local cell edge
    (:func:`column_spacing_px`) and the s their pooled robust scatter. The caps keep
    outliers (the wider spacing at the rock-salt layer of an RP fault, an incomplete
    Voronoi cell) from deciding. Cation columns then take the majority of themselves
    and their diagonal cation neighbours (``n_smooth`` times); X columns take the
    unique majority of their four cation neighbours (a/2 away), else their own best.
    The domain statistics are recomputed from the new labels and the assignment
    repeated (at most ``n_iter`` times, until no column changes), so that a boundary
    first placed a few cells off moves to where the columns change.

    Returns
    -------
    ndarray of int
        New column labels.
    """
    lab = np.asarray(column_domain).copy()
    complete = np.ones(len(lab), bool) if complete is None else np.asarray(complete, bool)
    for _ in range(max(int(n_iter), 1)):
        interior = interior_columns(positions_px, lab, cell_px)
        new = _refine_once(positions_px, lab, sublattice, intensity, spacing_px, interior, band_px, cell_px,
                           complete, intensity_cap, lattice_cap, n_smooth)
        if np.array_equal(new, lab):
            break
        lab = new
    return lab


def _refine_once(positions_px, column_domain, sublattice, intensity, spacing_px, interior, band_px, cell_px,
                 complete, intensity_cap, lattice_cap, n_smooth) -> np.ndarray:
    """One pass of :func:`refine_column_labels`."""
    lab = np.asarray(column_domain).copy()
    ok = lab > 0
    if ok.sum() < 4 or len(np.unique(lab[ok])) < 2:
        return lab
    idx = np.flatnonzero(ok)
    pos = positions_px[idx]
    lv = lab[idx]
    sub = np.asarray(sublattice)[idx]
    inten = np.asarray(intensity, float)[idx]
    a = np.asarray(spacing_px, float)[idx]
    inner = np.asarray(interior, bool)[idx]
    tree = cKDTree(pos)
    ids = np.unique(lv)
    classes = (1, -1, 0)
    ll = np.zeros((len(idx), len(ids)))
    # intensity term per site class
    for k in classes:
        in_k = sub == k
        mu = np.full(len(ids), np.nan)
        res_all = []
        for j, d in enumerate(ids):
            ref = inner & (lv == d) & in_k & np.isfinite(inten)
            if ref.sum() >= 3:
                mu[j] = np.median(inten[ref])
                res_all.append(inten[ref] - mu[j])
        sd = _robust_sd(np.concatenate(res_all)) if res_all else np.inf
        if not (np.isfinite(sd) and sd > 0):
            continue
        z2 = (inten[in_k, None] - mu[None, :]) ** 2 / (2 * sd**2)
        ll[in_k] -= np.minimum(np.where(np.isfinite(z2), z2, intensity_cap), intensity_cap)
    # lattice term
    mu_a = np.array([np.nanmedian(a[inner & (lv == d)]) if (inner & (lv == d) & np.isfinite(a)).any() else np.nan
                     for d in ids])
    res_a = np.concatenate([a[inner & (lv == d)] - mu_a[j] for j, d in enumerate(ids)])
    res_a = res_a[np.isfinite(res_a)]
    sd_a = _robust_sd(res_a) if len(res_a) > 10 else np.inf
    if np.isfinite(sd_a) and sd_a > 0:
        z2 = (a[:, None] - mu_a[None, :]) ** 2 / (2 * sd_a**2)
        ll -= np.minimum(np.where(np.isfinite(z2), z2, lattice_cap), lattice_cap)
    owner, nb = _neighbour_lists(tree, pos, band_px)
    cand = np.zeros((len(idx), len(ids)), bool)
    cand[owner, np.searchsorted(ids, lv[nb])] = True
    band = (cand.sum(axis=1) > 1) & complete[idx]
    if not band.any():
        return lab
    ll = np.where(cand, ll, -np.inf)
    rows = np.arange(len(idx))
    cur = np.searchsorted(ids, lv)
    best = ll.argmax(axis=1)
    keep = ll[rows, cur] >= ll[rows, best]  # ties keep the current label
    new = np.where(band & ~keep, ids[best], lv)
    cation = sub != 0
    ci = np.flatnonzero(cation)
    if len(ci) > 1:
        ctree = cKDTree(pos[ci])
        o2, n2 = _neighbour_lists(ctree, pos[ci], 0.8 * cell_px)
        for _ in range(n_smooth):
            votes = np.zeros((len(ci), len(ids)))
            np.add.at(votes, (o2, np.searchsorted(ids, new[ci][n2])), 1.0)
            own = votes[np.arange(len(ci)), np.searchsorted(ids, new[ci])]
            flip = band[ci] & (votes.max(axis=1) > own)
            new[ci] = np.where(flip, ids[votes.argmax(axis=1)], new[ci])
        others = np.flatnonzero(band & ~cation)
        if len(others):
            o3, n3 = _neighbour_lists(ctree, pos[others], 0.55 * cell_px)
            votes = np.zeros((len(others), len(ids)))
            np.add.at(votes, (o3, np.searchsorted(ids, new[ci][n3])), 1.0)
            top = votes.max(axis=1)
            unique_top = (votes == top[:, None]).sum(axis=1) == 1
            new[others] = np.where((top > 0) & unique_top, ids[votes.argmax(axis=1)], new[others])
    lab[idx] = new
    return lab


def _labelled_neighbours(positions_px: np.ndarray, lab: np.ndarray, r_px: float
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Indices of the labelled columns and their (owner, neighbour) pairs within ``r_px``; None if < 2."""
    idx = np.flatnonzero(lab > 0)
    if len(idx) < 2:
        return None
    owner, nb = _neighbour_lists(cKDTree(positions_px[idx]), positions_px[idx], r_px)
    return idx, owner, nb


def _absorb_small_domains(positions_px: np.ndarray, column_domain: np.ndarray, cell_px: float,
                          min_columns: float) -> np.ndarray:
    """Give connected pieces of fewer than ``min_columns`` columns to their most frequent neighbour.

    A piece is a connected set of equally labelled columns (neighbours within 0.8
    cell): a whole small domain, or a fragment cut off from its domain (a strip of
    boundary columns on the far side of another domain). A domain is one connected
    region, so such fragments are not part of it. Pieces without a differently
    labelled neighbour (a separate small crystal) are kept.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    lab = np.asarray(column_domain).copy()
    nbrs = _labelled_neighbours(positions_px, lab, 0.8 * cell_px)
    if nbrs is None:
        return lab
    idx, owner, nb = nbrs
    n = len(idx)
    for _ in range(10):
        sub = lab[idx]
        same = sub[owner] == sub[nb]
        graph = coo_matrix((np.ones(int(same.sum())), (owner[same], nb[same])), shape=(n, n))
        n_comp, comp = connected_components(graph, directed=False)
        size = np.bincount(comp, minlength=n_comp)
        touching = sub[owner] != sub[nb]
        small = (size[comp[owner]] < min_columns) & touching
        if not small.any():
            break
        # most frequent other label around each small piece (pairs sorted by piece, then label)
        pc, other = comp[owner][small], sub[nb][small]
        keys, counts = np.unique(np.stack([pc, other], axis=1), axis=0, return_counts=True)
        order = np.lexsort((-counts, keys[:, 0]))  # by piece, most frequent label first
        first = order[np.r_[True, np.diff(keys[order, 0]) != 0]]
        target = np.full(n_comp, -1, dtype=np.int64)
        target[keys[first, 0]] = keys[first, 1]
        new = np.where(target[comp] >= 0, target[comp], sub)
        if np.array_equal(new, sub):
            break
        lab[idx] = new
    return lab


def _domain_column_stats(ids: np.ndarray, lab: np.ndarray, use: np.ndarray, sub: np.ndarray,
                         inten: np.ndarray, spacing: np.ndarray) -> dict[int, dict[str, float]]:
    """Per domain: sublattice and X mean intensities, ratios, lattice spacing, with standard errors."""
    out = {}
    for d in ids:
        sel = use & (lab == d)
        st: dict[str, float] = {}
        for key, k in (("p", 1), ("m", -1), ("x", 0)):
            v = inten[sel & (sub == k)]
            v = v[np.isfinite(v)]
            st[key], st[key + "_se"] = (float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v)))) if len(v) >= 3 \
                else (np.nan, np.nan)
        a = spacing[sel]
        a = a[np.isfinite(a)]
        st["a"], st["a_se"] = (float(np.median(a)), float(_robust_sd(a) / np.sqrt(len(a)))) if len(a) >= 3 \
            else (np.nan, np.nan)
        hi, lo = max(st["p"], st["m"]), min(st["p"], st["m"])
        hi_se = st["p_se"] if st["p"] >= st["m"] else st["m_se"]
        lo_se = st["m_se"] if st["p"] >= st["m"] else st["p_se"]
        st["r1"] = lo / hi
        st["r1_se"] = st["r1"] * np.hypot(lo_se / lo, hi_se / hi)
        st["r2"] = st["x"] / hi
        st["r2_se"] = st["r2"] * np.hypot(st["x_se"] / st["x"], hi_se / hi)
        diff = st["p"] - st["m"]
        st["registry"] = 0 if not abs(diff) > 3 * np.hypot(st["p_se"], st["m_se"]) else int(np.sign(diff))
        out[int(d)] = st
    return out


def _merge_similar_domains(positions_px: np.ndarray, lab: np.ndarray, use: np.ndarray, sub: np.ndarray,
                           inten: np.ndarray, spacing: np.ndarray, cell_px: float, split_sigma: float,
                           min_lattice_step: float, min_ratio_step: float) -> np.ndarray:
    """Merge neighbouring domains whose column statistics do not differ significantly.

    Two touching domains are different if their registries are opposite (an RP
    fault), or their lattice spacings, dim/bright or X/bright ratios differ by more
    than ``split_sigma`` standard errors *and* by more than the minimum steps
    (``min_lattice_step`` relative, ``min_ratio_step`` relative). A quantity not
    measured on both sides (no X columns detected, as for the weak oxygen columns of
    oxides) is no evidence of a difference; with none measured the pair is kept. Otherwise the pair
    with the smallest difference is merged first and the statistics recomputed.
    """
    lab = lab.copy()
    nbrs = _labelled_neighbours(positions_px, lab, 0.8 * cell_px)
    if nbrs is None:
        return lab
    idx, owner, nb = nbrs
    for _ in range(50):
        ids = np.unique(lab[idx])
        if len(ids) < 2:
            break
        la, lb = lab[idx][owner], lab[idx][nb]
        touch = np.unique(np.sort(np.stack([la[la != lb], lb[la != lb]], axis=1), axis=1), axis=0)
        if len(touch) == 0:
            break
        st = _domain_column_stats(ids, lab, use, sub, inten, spacing)
        best, best_score = None, np.inf
        for i, j in touch:
            a, b = st[int(i)], st[int(j)]
            if a["registry"] * b["registry"] < 0:
                continue
            scores = []
            for key, step in (("a", min_lattice_step), ("r1", min_ratio_step), ("r2", min_ratio_step)):
                d = abs(a[key] - b[key])
                se = np.hypot(a[key + "_se"], b[key + "_se"])
                if not (np.isfinite(d) and np.isfinite(se)):
                    continue  # not measured in both (e.g. oxygen columns not detected): no evidence either way
                # different: beyond split_sigma standard errors and beyond the minimum step
                scores.append(min(d / max(split_sigma * se, 1e-300), d / (step * max(abs(a[key]), 1e-300))))
            score = max(scores) if scores else np.inf  # > 1: different in some quantity; nothing measured: kept
            if score <= 1.0 and score < best_score:
                best, best_score = (int(i), int(j)), score
        if best is None:
            break
        keep, drop = best if (lab == best[0]).sum() >= (lab == best[1]).sum() else best[::-1]
        lab[lab == drop] = keep
    return lab


def interior_columns(positions_px: np.ndarray, column_domain: np.ndarray, cell_px: float,
                     margin_cells: float = 1.0) -> np.ndarray:
    """Columns at least ``margin_cells`` from other domains and from the crystal edge.

    A column is interior when every labelled column within ``margin_cells`` cells
    carries its label, and within ``margin_cells`` - 0.2 cells it has as many
    neighbours as the median column (the crystal edge or a gap is farther away).
    """
    lab = np.asarray(column_domain)
    ok = lab > 0
    out = np.zeros(len(lab), bool)
    if ok.sum() < 2:
        return out
    idx = np.flatnonzero(ok)
    tree = cKDTree(positions_px[idx])
    owner, flat = _neighbour_lists(tree, positions_px[idx], margin_cells * cell_px)
    differs = np.bincount(owner, weights=(lab[idx][flat] != lab[idx][owner]).astype(float), minlength=len(idx))
    o2, _ = _neighbour_lists(tree, positions_px[idx], max(margin_cells - 0.2, 0.55) * cell_px)
    fill = np.bincount(o2, minlength=len(idx))
    out[idx] = (differs == 0) & (fill >= np.median(fill))
    return out


def _mst_length(points: np.ndarray, max_step: float = 1.5) -> float:
    """Length (px) of the minimum spanning forest of points joined within ``max_step``, +1 px per tree."""
    from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

    if len(points) < 2:
        return float(len(points))
    dm = cKDTree(points).sparse_distance_matrix(cKDTree(points), max_step, output_type="coo_matrix")
    mst = minimum_spanning_tree(dm.tocsr())
    n_comp, _ = connected_components(dm, directed=False)
    return float(mst.sum()) + n_comp


def _traced_length(labels: np.ndarray, i: int, j: int, points: np.ndarray, smooth_px: float) -> float:
    """Length (px) of the boundary between labels i and j traced at the resolution ``smooth_px``.

    The indicator +1 (label i) / -1 (label j) is smoothed by a Gaussian of
    ``smooth_px`` as a normalised convolution over the pixels of the two labels
    (vacuum and third domains do not pull it), and the length of its zero contour
    (marching squares, :func:`skimage.measure.find_contours`) is taken inside the
    crystal where the two labels make up at least half of the crystal around, within
    ``smooth_px`` of the boundary's pixel edges (so it runs up to the crystal edge,
    and not across corner contacts with a third domain). A boundary drawn around
    columns zigzags cell by cell; traced at about half a cell its length is that
    of the line along the boundary, at any orientation.
    """
    from skimage.measure import find_contours

    pad = int(np.ceil(3 * smooth_px)) + 2
    lo = np.maximum(np.floor(points.min(axis=0)).astype(int) - pad, 0)
    hi = np.minimum(np.ceil(points.max(axis=0)).astype(int) + pad + 1, labels.shape)
    # a trace smoothed over smooth_px needs no finer grid than ~smooth_px / 6: subsample
    step = max(int(smooth_px // 6), 1)
    box = labels[lo[0]:hi[0]:step, lo[1]:hi[1]:step]
    points = (points - lo) / step
    lo = np.zeros(2)
    smooth_px = smooth_px / step
    wi, wj = (box == i).astype(float), (box == j).astype(float)
    num = ndimage.gaussian_filter(wi - wj, smooth_px, mode="nearest")
    den = ndimage.gaussian_filter(wi + wj, smooth_px, mode="nearest")
    near = np.zeros(box.shape, bool)  # only the contour along this boundary, not across corner contacts
    ij = np.clip(np.round(points - lo).astype(int), 0, np.array(box.shape) - 1)
    near[ij[:, 0], ij[:, 1]] = True
    near = distance_to_background(~near) <= smooth_px
    crystal = box > 0
    share = den / np.maximum(ndimage.gaussian_filter(crystal.astype(float), smooth_px, mode="nearest"), 1e-12)
    valid = crystal & (share > 0.5) & near  # vacuum does not count: the trace runs up to the crystal edge
    f = np.where(valid, num / np.maximum(den, 1e-12), 0.0)
    length = 0.0
    for c in find_contours(f, 0.0, mask=valid):
        length += float(np.hypot(*np.diff(c, axis=0).T).sum())
    return length * step


def boundary_table(labels: np.ndarray, registry: dict[int, int], pixel_size_pm: float,
                   min_length_nm: float = 0.0, origin_nm: tuple[float, float] = (0.0, 0.0),
                   smooth_px: float = 0.0) -> list[dict[str, Any]]:
    """Boundaries between labelled domains: pairs, type and length.

    Parameters
    ----------
    labels : ndarray of int, shape (ny, nx)
        Domain labels (0 = outside).
    registry : dict
        Domain label -> registry (+1 or -1; 0 undetermined).
    pixel_size_pm : float
    min_length_nm : float
        Shorter contacts (corners where domains touch diagonally) are dropped.
    origin_nm : (float, float)
        (y, x) of the first pixel centre (image coordinates).
    smooth_px : float
        Resolution at which the boundary is traced (:func:`_traced_length`; half
        a lattice cell for label maps drawn around columns); 0: pixel by pixel
        (minimum spanning tree of the pixel-edge midpoints).

    Returns
    -------
    list of dict
        ``domains`` [i, j] (i < j), ``type`` ("RP" when the registries differ,
        else "other"; :func:`segment_domains` then asks for the evidence),
        ``length_nm`` (along the boundary: minimum spanning tree of the pixel-edge
        midpoints between the two labels, or the traced line of ``smooth_px``), ``midpoint_nm`` [x, y],
        ``segment_nm`` [[x0, y0], [x1, y1]] (the extent of those midpoints along
        their principal direction), ``normal`` [x, y] (mean unit step from domain i
        to domain j), ``n_edges``.
    """
    h_nm = pixel_size_pm * 1e-3
    pts: list[np.ndarray] = []
    pairs: list[np.ndarray] = []
    steps: list[np.ndarray] = []
    for axis in (0, 1):
        a = np.take(labels, np.arange(labels.shape[axis] - 1), axis=axis)
        b = np.take(labels, np.arange(1, labels.shape[axis]), axis=axis)
        sel = (a > 0) & (b > 0) & (a != b)
        iy, ix = np.nonzero(sel)
        mid = np.stack([iy + (0.5 if axis == 0 else 0.0), ix + (0.5 if axis == 1 else 0.0)], axis=1)
        pts.append(mid)
        pr = np.stack([a[sel], b[sel]], axis=1)
        pairs.append(np.sort(pr, axis=1))
        # unit step (x, y) from the lower-id side to the higher-id side
        sgn = np.where(pr[:, 0] < pr[:, 1], 1.0, -1.0)
        st = np.zeros((len(sgn), 2))
        st[:, 1 - axis] = sgn  # axis 0 (y) -> column 1 of (x, y)
        steps.append(st)
    allp = np.concatenate(pts)
    allpair = np.concatenate(pairs)
    allstep = np.concatenate(steps)
    out = []
    if len(allpair) == 0:
        return out
    keys, inv = np.unique(allpair, axis=0, return_inverse=True)
    inv = inv.ravel()
    for k, (i, j) in enumerate(keys):
        sel = inv == k
        p = allp[sel]
        pixel_length = _mst_length(p) * h_nm
        if pixel_length < min_length_nm:  # a corner contact (judged pixel by pixel, as drawn)
            continue
        length = _traced_length(labels, int(i), int(j), p, smooth_px) * h_nm if smooth_px > 0 else pixel_length
        ri, rj = registry.get(int(i), 0), registry.get(int(j), 0)
        kind = "RP" if ri * rj < 0 else "other"
        nrm = allstep[sel].mean(axis=0)
        nrm = nrm / max(np.hypot(*nrm), 1e-12)
        xy = np.stack([p[:, 1] * h_nm + origin_nm[1], p[:, 0] * h_nm + origin_nm[0]], axis=1)
        out.append({"domains": [int(i), int(j)], "type": kind, "length_nm": float(length),
                    "midpoint_nm": [float(v) for v in xy.mean(axis=0)], "segment_nm": _segment(xy),
                    "normal": [float(nrm[0]), float(nrm[1])], "n_edges": int(len(p))})
    return out


def _segment(xy: np.ndarray) -> list[list[float]]:
    """End points of a point set along its principal direction ([[x0, y0], [x1, y1]])."""
    c = xy.mean(axis=0)
    if len(xy) < 2:
        return [[float(c[0]), float(c[1])]] * 2
    _, _, vt = np.linalg.svd(xy - c, full_matrices=False)
    t = (xy - c) @ vt[0]
    return [[float(v) for v in c + t.min() * vt[0]], [float(v) for v in c + t.max() * vt[0]]]


def local_basis_px(positions_px: np.ndarray, basis_px: np.ndarray, tol: float = 0.2) -> np.ndarray | None:
    """A domain's own basis: the mean of the column-to-neighbour vectors one cell along each basis vector.

    Every column with a neighbour within ``tol`` x ``|a_i|`` of r + a_i (the same site one
    cell on; any orientation and cell shape, O columns not needed) contributes its
    vector; their mean is the domain's mean cell vector, without the accumulated
    indexing error of a reference lattice that differs from the domain's (a film
    layer's out-of-plane parameter differs from the image mean by several %, which
    over tens of cells misindexes the columns). None if fewer than 6 pairs per vector.
    """
    tree = cKDTree(positions_px)
    out = []
    for a in np.asarray(basis_px, float):
        d, i = tree.query(positions_px + a, distance_upper_bound=tol * float(np.linalg.norm(a)))
        ok = np.isfinite(d)
        if ok.sum() < 6:
            return None
        v = positions_px[i[ok]] - positions_px[ok]
        med = np.median(v, axis=0)
        keep = np.linalg.norm(v - med, axis=1) < 0.5 * tol * float(np.linalg.norm(a))  # outliers: misfits, gaps
        out.append(v[keep].mean(axis=0) if keep.sum() >= 6 else med)
    return np.array(out)


def _domain_lattice_fit(positions_px: np.ndarray, reference: Lattice) -> dict[str, Any] | None:
    """Least-squares lattice of one domain's columns, indexed on the domain's own basis (two passes)."""
    lat = reference
    fit = None
    for _ in range(2):
        basis = local_basis_px(positions_px, lat.basis_px) if fit is None else fit["basis_px"]
        if basis is None:
            basis = lat.basis_px
        lat = Lattice(np.linalg.inv(basis).T, reference.g_err_per_px, reference.pixel_size_pm)
        try:
            fit = lattice_from_columns(positions_px, lat)
        except FitError:
            return fit
    return fit


def domain_lattices(positions_px: np.ndarray, column_domain: np.ndarray, interior: np.ndarray,
                    fit_ok: np.ndarray, lattice: Lattice, domain_ids: list[int],
                    lattice_map: np.ndarray | None = None, labels: np.ndarray | None = None,
                    min_columns: int = 12, mask_radius_per_px: float = 0.25) -> list[dict[str, Any]]:
    """Per-domain lattice constants from a least-squares lattice through its columns.

    The columns are indexed on the domain's own basis (:func:`local_basis_px`: the
    mean neighbour vectors one cell along the found lattice's basis, started from
    the reference g vectors scaled by a_ref / a_domain, a_domain the median of the
    GPA lattice map over the domain), then fitted, re-indexed on the fitted basis and
    fitted again, so that the half-cell indexing holds across large domains whose
    cell differs from the image's mean in size, shape or orientation.

    Parameters
    ----------
    positions_px : ndarray, shape (n, 2)
    column_domain : ndarray of int, shape (n,)
    interior : ndarray of bool
        Columns used (:func:`interior_columns`); if a domain has fewer than
        ``min_columns`` of them, all of its well-fitted columns are used.
    fit_ok : ndarray of bool
    lattice : Lattice
        Reference lattice (calibrated).
    domain_ids : list of int
    lattice_map, labels : ndarray, optional
        GPA lattice map (pm) and pixel labels for the g scaling (and the fallback).
    min_columns : int
    mask_radius_per_px : float
        GPA mask radius R: the map has ~(2R)^2 independent samples per px (fallback
        uncertainty).

    Returns
    -------
    list of dict
        ``lattice_pm`` (mean of the two edges), ``lattice_pm_err``, ``lattice_a1_pm``,
        ``lattice_a2_pm``, ``lattice_a1_pm_err``, ``lattice_a2_pm_err``,
        ``lattice_n_columns``, ``lattice_residual_pm``, ``lattice_source``
        ("interior columns", "all columns" or "gpa map" when too few columns).
    """
    if lattice.pixel_size_pm is None:
        raise InputError("domain lattices need a calibrated lattice")
    px_pm = lattice.pixel_size_pm
    a_ref = float(np.mean(lattice.lattice_pm))
    out = []
    for d in domain_ids:
        sel = (column_domain == d) & interior & fit_ok
        source = "interior columns"
        if sel.sum() < min_columns:
            sel = (column_domain == d) & fit_ok
            source = "all columns"
        scale = 1.0
        a_map = np.nan
        if lattice_map is not None and labels is not None and (labels == d).any():
            a_map = float(np.median(lattice_map[labels == d]))
            scale = a_ref / a_map
        row: dict[str, Any] = {}
        fit = None
        if sel.sum() >= min_columns:
            fit = _domain_lattice_fit(positions_px[sel], Lattice(lattice.g_per_px * scale, lattice.g_err_per_px,
                                                                  px_pm))
        if fit is not None:
            a = fit["lattice_pm"]
            e = fit["lattice_pm_err"]
            row.update({"lattice_pm": float(a.mean()), "lattice_pm_err": float(0.5 * np.hypot(*e)),
                        "lattice_a1_pm": float(a[0]), "lattice_a2_pm": float(a[1]),
                        "lattice_a1_pm_err": float(e[0]), "lattice_a2_pm_err": float(e[1]),
                        "lattice_n_columns": int(fit["n_used"]),
                        "lattice_residual_pm": float(fit["residual_rms_px"] * px_pm),
                        "lattice_source": source})
        else:
            vals = lattice_map[labels == d] if (lattice_map is not None and labels is not None) else np.array([])
            n_eff = max(len(vals) * (2.0 * mask_radius_per_px) ** 2, 1.0)
            err = _robust_sd(vals) / np.sqrt(n_eff) if len(vals) else np.nan
            row.update({"lattice_pm": a_map, "lattice_pm_err": float(err), "lattice_a1_pm": np.nan,
                        "lattice_a2_pm": np.nan, "lattice_a1_pm_err": np.nan, "lattice_a2_pm_err": np.nan,
                        "lattice_n_columns": int(sel.sum()), "lattice_residual_pm": np.nan,
                        "lattice_source": "gpa map"})
        out.append(row)
    return out


@dataclass
class DomainSegmentation:
    """Result of :func:`segment_domains`.

    Attributes
    ----------
    labels : ndarray of int32, shape (ny, nx)
        Domain id per pixel (1..n), 0 outside the crystal.
    domains : list of dict
        One row per domain (a Table S1): ``id``, ``name`` (R1..Rn), ``area_nm2``,
        ``centroid_nm`` [x, y] (image coordinates), ``registry`` (+1 the reference
        registry of its crystal = its largest domain, -1 the half-cell shifted one),
        ``registry_signal`` (median rho), ``contrast`` (median kappa), ``n_columns``
        and the lattice fields of :func:`domain_lattices`.
    boundaries : list of dict
        From :func:`boundary_table` (``domains`` as ids).
    column_domain : ndarray of int, shape (n_columns,)
        Domain id of every column of the input table (0: none).
    column_interior : ndarray of bool
        Columns at least one cell from other domains and the crystal edge.
    registry_map, lattice_map_pm, contrast_map : ndarray, shape (ny, nx)
        The GPA signal maps (NaN outside the crystal for the registry map).
    nc_mask : ndarray of bool
    pixel_size_pm : float
    origin_nm : (float, float)
        (y, x) of the first pixel centre.
    parameters : dict
        Settings used.
    column_sublattice : ndarray of int, shape (n_columns,)
        Sublattice (+1 / -1, 0 for X or unplaced) of every column
        (:func:`column_sublattice`).
    """

    labels: np.ndarray
    domains: list[dict[str, Any]]
    boundaries: list[dict[str, Any]]
    column_domain: np.ndarray
    column_interior: np.ndarray
    registry_map: np.ndarray
    lattice_map_pm: np.ndarray
    contrast_map: np.ndarray
    nc_mask: np.ndarray
    pixel_size_pm: float
    origin_nm: tuple[float, float]
    parameters: dict[str, Any] = field(default_factory=dict)
    column_sublattice: np.ndarray | None = None
    #: :func:`strain_110` of the GPA result (the maps the lattice map was made from)
    strain_110: dict[str, np.ndarray] | None = None

    @property
    def n_domains(self) -> int:
        return len(self.domains)

    def table(self) -> Any:
        """The domain rows as a :class:`pandas.DataFrame` (Table S1 style)."""
        import pandas as pd

        return pd.DataFrame(self.domains)


@dataclass(frozen=True)
class SegmentationSettings:
    """Every setting of :func:`segment_domains` (recorded in ``DomainSegmentation.parameters``).

    Examples
    --------
    >>> SegmentationSettings(split_sigma=5.0).split_sigma
    5.0
    """

    min_area_nm2: float = 4.0
    split_sigma: float = 4.0
    min_lattice_step: float = 1.5e-3
    min_contrast_step: float = 0.2
    open_cells: float = 0.5
    min_registry_contrast: float = 0.15
    mixed_contrast: float = 0.25
    max_depth: int = 4
    min_boundary_cells: float = 4.0
    rp_min_z: float = RP_MIN_Z
    refine: bool = True
    merge: bool = True
    min_ratio_step: float = 0.03
    intensity: str = "integrated_intensity"


@dataclass(frozen=True)
class _Frame:
    """Pixel geometry of one segmentation: calibration, cell size, GPA resolution."""

    px_pm: float
    origin: tuple[float, float]
    cell_px: float
    min_area_px: int
    exclusion_px: float  # GPA resolution 1/R (px)

    @property
    def h_nm(self) -> float:
        return self.px_pm * 1e-3


@dataclass(frozen=True)
class _Maps:
    """The GPA signal maps of :func:`segment_domains` (module docstring)."""

    mask: np.ndarray
    half: tuple[np.ndarray, np.ndarray]
    rho: np.ndarray
    lattice: np.ndarray
    contrast: np.ndarray
    strain_110: dict[str, np.ndarray]


@dataclass(frozen=True)
class _Columns:
    """Per-column inputs of the column steps."""

    pos: np.ndarray
    real: np.ndarray  # not an insignificant-amplitude fit
    fit_ok: np.ndarray
    complete: np.ndarray  # all four nearest neighbours (column_spacing_px both)
    sublattice: np.ndarray
    spacing: np.ndarray
    intensity: np.ndarray


def _frame(image: Any, res: GPAResult, st: SegmentationSettings) -> _Frame:
    px_pm, origin = _image_geometry(image, res)
    h_nm = px_pm * 1e-3
    return _Frame(px_pm, origin, float(np.mean(res.lattice.cell_px)),
                  max(int(round(st.min_area_nm2 / h_nm**2)), 1), 1.0 / res.mask_radius_per_px)


def _signal_maps(res: GPAResult, fr: _Frame) -> _Maps:
    """Step 1: crystal mask, unwrapped half phases, registry, lattice and contrast maps."""
    mask = nc_mask(res, min_area_px=fr.min_area_px)
    half = _half_phases(res, mask)
    strain = strain_110(res)
    return _Maps(mask, half, registry_map(res, mask, half), lattice_map_pm(res, strain), contrast_map(res), strain)


def _pixel_regions(res: GPAResult, maps: _Maps, fr: _Frame, st: SegmentationSettings
                   ) -> tuple[np.ndarray, list[int]]:
    """Steps 2-3: registry components, split by the lattice and contrast maps.

    Returns the region map (1..n, 0 outside) and the GPA registry class of each region.
    """
    mask, kap = maps.mask, maps.contrast
    k_ref = float(np.percentile(kap[mask], 90))
    box = _bbox(mask, int(np.ceil(max(st.open_cells * fr.cell_px, fr.exclusion_px))) + 2)
    comps = np.zeros(mask.shape, dtype=np.int64)
    comps[box], comp_reg = _registry_components(maps.rho[box], kap[box], mask[box], st.open_cells * fr.cell_px,
                                                fr.min_area_px, st.min_registry_contrast * k_ref, fr.exclusion_px,
                                                st.mixed_contrast * k_ref)
    a_ref = float(np.mean(res.lattice.lattice_pm))
    reliable = _erode(mask, 0.5 * fr.exclusion_px)  # GPA maps are biased within ~1/2R of the crystal edge
    pix = np.zeros(mask.shape, dtype=np.int64)
    region_sign: list[int] = []
    for c in range(1, int(comps.max()) + 1):
        comp = comps == c
        if not comp.any():
            continue
        k_med = float(np.median(kap[comp]))
        box = _bbox(comp, 2)  # the splits only see the component (distance transforms are local to it)
        feats = [(maps.lattice[box], st.min_lattice_step * a_ref), (kap[box], st.min_contrast_step * k_med)]
        parts = _split_recursive(comp[box], feats, fr.exclusion_px, fr.min_area_px, st.split_sigma, st.max_depth,
                                 reliable[box])
        for part in parts:
            region_sign.append(comp_reg[c])
            pix[box][part] = len(region_sign)
    return pix, region_sign


def _column_inputs(columns: Any, res: GPAResult, maps: _Maps, fr: _Frame, st: SegmentationSettings) -> _Columns:
    pos = column_positions_px(columns, fr.px_pm, fr.origin)
    n = len(pos)
    status = columns["fit_status"].astype(str).to_numpy() if "fit_status" in columns else np.full(n, "ok")
    fit_ok = columns["fit_ok"].to_numpy(bool) if "fit_ok" in columns else np.ones(n, bool)
    inten = columns[st.intensity].to_numpy(float) if st.intensity in columns else np.full(n, np.nan)
    return _Columns(pos, status != "insignificant_amplitude", fit_ok,
                    np.isfinite(column_spacing_px(pos, res.lattice, both=True)),
                    column_sublattice(pos, res, maps.half), column_spacing_px(pos, res.lattice), inten)


def _column_domains(pix: np.ndarray, cols: _Columns, fr: _Frame, st: SegmentationSettings) -> np.ndarray:
    """Step 4: columns take the region under them, refined, small pieces absorbed, similar ones merged."""
    col_lab = column_labels(cols.pos, pix, valid=cols.real, reach_px=0.5 * fr.exclusion_px)
    if st.refine:
        col_lab = refine_column_labels(cols.pos, col_lab, cols.sublattice, cols.intensity, cols.spacing,
                                       fr.exclusion_px, fr.cell_px, cols.complete)
    col_lab = _absorb_small_domains(cols.pos, col_lab, fr.cell_px, fr.min_area_px / (0.5 * fr.cell_px) ** 2)
    if st.merge:
        use = interior_columns(cols.pos, col_lab, fr.cell_px) & cols.fit_ok & cols.complete
        col_lab = _merge_similar_domains(cols.pos, col_lab, use, cols.sublattice, cols.intensity, cols.spacing,
                                         fr.cell_px, st.split_sigma, st.min_lattice_step, st.min_ratio_step)
    return col_lab


def _relabel_by_area(cols: _Columns, col_lab: np.ndarray, n_regions: int, region_sign: list[int],
                     shape: tuple[int, int], res: GPAResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 6: label map rebuilt from the columns; ids 1..n by decreasing area.

    Returns the label map, the column labels and the GPA registry class per new id.
    """
    radius = 1.05 * covering_radius_px(cols.pos[col_lab > 0])
    lab_map = label_map_from_columns(cols.pos, col_lab, shape, radius)
    lab_map = fill_label_holes(lab_map, cols.pos, col_lab, gap_px=radius)
    areas = np.bincount(lab_map.ravel(), minlength=n_regions + 1)[1:]
    order = [k + 1 for k in np.argsort(-areas, kind="stable") if areas[k] > 0]
    if not order:
        raise FitError("segmentation found no domain with columns")
    remap = np.zeros(n_regions + 1, dtype=np.int64)
    remap[order] = np.arange(1, len(order) + 1)
    sign_of = np.zeros(max(n_regions, len(order)) + 1, dtype=np.int64)
    sign_of[remap[1:]] = region_sign
    return remap[lab_map].astype(np.int32), remap[col_lab], sign_of


def _domain_registries(lab_map: np.ndarray, col_lab: np.ndarray, interior: np.ndarray, cols: _Columns,
                       sign_of: np.ndarray, n: int) -> dict[int, int]:
    """Step 5: registry of each domain relative to the largest domain of its connected crystal.

    The bright sublattice of its interior columns where significant, else the GPA class.
    """
    sign_of = sign_of.copy()
    stats = _domain_column_stats(np.arange(1, n + 1), col_lab, interior & cols.fit_ok & cols.complete,
                                 cols.sublattice, cols.intensity, cols.spacing)
    for d in range(1, n + 1):
        if stats[d]["registry"] != 0:
            sign_of[d] = stats[d]["registry"]
    crystal, _ = ndimage.label(lab_map > 0)
    registry: dict[int, int] = {}
    for cid in range(1, int(crystal.max()) + 1):
        ds = [d for d in range(1, n + 1) if np.any(crystal[lab_map == d] == cid)]
        signed = [d for d in ds if sign_of[d] != 0]
        ref = sign_of[min(signed)] if signed else 1  # largest domain of definite registry
        for d in ds:
            registry[d] = int(sign_of[d] * ref)
    return registry


def _domain_rows(lab_map: np.ndarray, col_lab: np.ndarray, interior: np.ndarray, registry: dict[int, int],
                 maps: _Maps, lat_rows: list[dict], fr: _Frame, n: int) -> list[dict[str, Any]]:
    """One row per domain: area, centroid, registry, signals, columns, lattice."""
    h_nm, origin = fr.h_nm, fr.origin
    ii, jj = np.nonzero(lab_map > 0)
    lab_flat = lab_map[ii, jj]
    cnt = np.bincount(lab_flat, minlength=n + 1)
    cy = np.bincount(lab_flat, weights=ii.astype(float), minlength=n + 1)
    cx = np.bincount(lab_flat, weights=jj.astype(float), minlength=n + 1)
    rows = []
    for d in range(1, n + 1):
        sel = (lab_map == d) & maps.mask
        row = {
            "id": d,
            "name": f"R{d}",
            "area_nm2": float(cnt[d] * h_nm**2),
            "centroid_nm": [float(origin[1] + cx[d] / cnt[d] * h_nm), float(origin[0] + cy[d] / cnt[d] * h_nm)],
            "registry": registry.get(d, 0),
            "registry_signal": float(np.nanmedian(maps.rho[sel])) if sel.any() else 0.0,
            "contrast": float(np.median(maps.contrast[sel])) if sel.any() else float("nan"),
            "n_columns": int((col_lab == d).sum()),
            "n_interior_columns": int(((col_lab == d) & interior).sum()),
        }
        row.update(lat_rows[d - 1])
        rows.append(row)
    return rows


def _circular_stats(values: np.ndarray) -> tuple[complex, float]:
    """Mean unit phasor and circular standard deviation sqrt(-2 ln R) of phases (rad)."""
    m = complex(np.exp(1j * values).mean()) if len(values) else complex("nan")
    r = abs(m)
    return m, float(np.sqrt(-2.0 * np.log(r))) if r > 0 else float("inf")


def boundary_evidence(bounds: list[dict[str, Any]], lab_map: np.ndarray, res: GPAResult,
                      half_phases: tuple[np.ndarray, np.ndarray], mask: np.ndarray,
                      column_stats: dict[int, dict[str, float]], exclusion_px: float,
                      rp_min_z: float = RP_MIN_Z) -> list[dict[str, Any]]:
    r"""Type every boundary on measured evidence: RP only where the half-cell shift is measured.

    A Ruddlesden-Popper fault shifts the lattice by (1/2, 1/2) a in projection: the
    registry phases :math:`D_{10}` and :math:`D_{01}` (module docstring; free of any
    smooth displacement, so of strain and lattice-constant steps) jump by
    :math:`\pi`, and the bright and dim cation columns swap sublattices. For each
    boundary the circular mean of :math:`e^{iD}` is taken over each domain's pixels
    at least half the GPA resolution from its edge; the jump
    :math:`\Delta_g = \arg(\bar m_j \bar m_i^*)` is compared with the
    within-domain scatter (circular standard deviations :math:`\sigma_i, \sigma_j`):
    :math:`z_g = |\Delta_g| / \sqrt{\sigma_i^2 + \sigma_j^2}`. The column
    contrast of each domain is :math:`z = (\bar I_{+} - \bar I_{-}) / \mathrm{se}`
    (mean intensities of its interior columns on the two cation sublattices).

    The boundary is "RP" when the registries of the two domains are opposite, both
    jumps exceed :math:`\pi/2` with :math:`\min z_g \ge` ``rp_min_z``, and the
    columns do not contradict it (both contrasts measured, :math:`|z| \ge 3`, with the
    same sign: no swap). Otherwise it is "other" (a change of lattice constant or
    contrast without a shift: film interfaces, composition steps); ``evidence`` says
    which. Each boundary gains ``phase_jump_rad`` [D10, D01], ``phase_jump_z`` (the
    smaller z), ``column_contrast_z`` [z_i, z_j], ``column_swap`` (measured swap),
    ``lattice_step_rel`` (relative step of the median column spacing, j vs i) with
    ``lattice_step_z`` and ``evidence`` (one line).
    """
    if not bounds:  # a single crystal: nothing to type, no phase maps needed
        return []
    i10, i01 = _refl_index(res, (1, 0)), _refl_index(res, (0, 1))
    dmaps = [np.angle(np.exp(1j * (res.phase[k].astype(np.float64) - h))) for k, h in ((i10, half_phases[0]),
                                                                                          (i01, half_phases[1]))]
    cache: dict[int, list[tuple[complex, float]]] = {}

    def phasors(d: int) -> list[tuple[complex, float]]:
        if d not in cache:
            own = lab_map == d
            box = _bbox(own, 1)
            core = np.zeros(own.shape, bool)
            core[box] = distance_to_background(np.pad(own[box], 1))[1:-1, 1:-1] >= 0.5 * exclusion_px
            core &= mask
            if core.sum() < 20:
                core = own & mask
            cache[d] = [_circular_stats(m[core]) for m in dmaps]
        return cache[d]

    out = []
    for b in bounds:
        i, j = b["domains"]
        pi_, pj = phasors(i), phasors(j)
        jumps = [float(np.angle(mj * np.conj(mi))) for (mi, _), (mj, _) in zip(pi_, pj)]
        zs = [abs(jmp) / max(float(np.hypot(si, sj)), 1e-12) for jmp, (_, si), (_, sj) in zip(jumps, pi_, pj)]
        si, sj = column_stats.get(i, {}), column_stats.get(j, {})
        cz = [float((st.get("p", np.nan) - st.get("m", np.nan))
                    / np.hypot(st.get("p_se", np.nan), st.get("m_se", np.nan))) for st in (si, sj)]
        measured = [np.isfinite(z) and abs(z) >= COLUMN_Z for z in cz]
        swap = bool(all(measured) and cz[0] * cz[1] < 0)
        no_swap = bool(all(measured) and cz[0] * cz[1] > 0)
        a_i, a_j = si.get("a", np.nan), sj.get("a", np.nan)
        a_se = float(np.hypot(si.get("a_se", np.nan), sj.get("a_se", np.nan)))
        step = float((a_j - a_i) / a_i) if np.isfinite(a_i) and a_i > 0 else float("nan")
        phase_ok = min(abs(v) for v in jumps) > np.pi / 2 and min(zs) >= rp_min_z
        if b["type"] == "RP" and phase_ok and not no_swap:
            kind = "RP"
            why = (f"half-cell shift measured: registry phases jump {jumps[0]:+.2f}, {jumps[1]:+.2f} rad "
                   f"(z >= {min(zs):.1f})" + (", bright/dim columns swap" if swap else
                                              ", column contrast too weak to confirm the swap"))
        else:
            kind = "other"
            if b["type"] == "RP" and no_swap:
                why = "no half-cell shift: the bright and dim columns stay on their sublattices"
            elif b["type"] == "RP":
                why = (f"no half-cell shift measured: registry phase jumps {jumps[0]:+.2f}, {jumps[1]:+.2f} rad "
                       f"(z = {zs[0]:.1f}, {zs[1]:.1f}; RP needs both > pi/2 with z >= {rp_min_z:g})")
            else:
                why = "same registry on both sides (no half-cell shift); lattice or contrast step"
        out.append({**b, "type": kind, "phase_jump_rad": jumps, "phase_jump_z": float(min(zs)),
                    "column_contrast_z": cz, "column_swap": swap, "lattice_step_rel": step,
                    "lattice_step_z": float(abs(a_j - a_i) / a_se) if a_se > 0 else float("nan"),
                    "evidence": why})
    return out


def segment_domains(
    image: Any,
    gpa_result: GPAResult,
    columns: Any,
    *,
    min_area_nm2: float = 4.0,
    split_sigma: float = 4.0,
    min_lattice_step: float = 1.5e-3,
    min_contrast_step: float = 0.2,
    open_cells: float = 0.5,
    min_registry_contrast: float = 0.15,
    mixed_contrast: float = 0.25,
    max_depth: int = 4,
    min_boundary_cells: float = 4.0,
    rp_min_z: float = RP_MIN_Z,
    refine: bool = True,
    merge: bool = True,
    min_ratio_step: float = 0.03,
    intensity: str = "integrated_intensity",
) -> DomainSegmentation:
    """Segment a [100] perovskite image into nanodomains (module docstring).

    Parameters
    ----------
    image : xarray.DataArray
        The calibrated image (for its coordinates).
    gpa_result : GPAResult
        GPA of the image with reflections (1,0), (0,1), (1,1), (1,-1)
        (:data:`~nanodomains.stem.columns.CLASSIFY_REFLECTIONS`).
    columns : pandas.DataFrame
        Column table of :func:`~nanodomains.stem.columns.find_columns`.
    min_area_nm2 : float
        Smallest domain reported; smaller regions join their neighbours.
    split_sigma : float
        Significance of a lattice or contrast step (in pooled robust standard
        deviations of the two sides) needed to split a region.
    min_lattice_step : float
        Smallest relative lattice-constant step that splits a region (1.5e-3:
        a Br-fraction step of ~0.02 by Vegard).
    min_contrast_step : float
        Smallest contrast step, relative to the region's median contrast.
    open_cells : float
        Radius (cells) of the opening of each registry class.
    min_registry_contrast : float
        Pixels whose contrast kappa is below this fraction of its 90th percentile
        have no registry class (RP amplitude dips).
    mixed_contrast : float
        Regions below this fraction, wider than the GPA resolution, are domains of
        mixed registry (shifted fraction near 1/2: ``|1 - 2s|`` below ~this value).
    max_depth : int
        Levels of recursive splitting.
    min_boundary_cells : float
        Boundaries shorter than this many cells (corner contacts) are not listed.
    rp_min_z : float
        Significance of the half-cell registry phase jump an RP boundary needs
        (:func:`boundary_evidence`).
    refine : bool
        Re-assign columns near boundaries by their intensity and local cell edge
        (:func:`refine_column_labels`).
    merge : bool
        Merge touching domains whose interior columns do not differ significantly
        (registry, lattice spacing, dim/bright and X/bright intensity ratios; see
        ``min_ratio_step``).
    min_ratio_step : float
        Smallest relative difference of the intensity ratios that keeps two
        domains apart (0.03: a Br-fraction step of ~0.05 in X/bright).
    intensity : str
        Column measure used by the refinement.

    Returns
    -------
    DomainSegmentation
        ``parameters`` holds every setting above (:class:`SegmentationSettings`) and
        the GPA mask radius.
    """
    st = SegmentationSettings(min_area_nm2=min_area_nm2, split_sigma=split_sigma, min_lattice_step=min_lattice_step,
                              min_contrast_step=min_contrast_step, open_cells=open_cells,
                              min_registry_contrast=min_registry_contrast, mixed_contrast=mixed_contrast,
                              max_depth=max_depth, min_boundary_cells=min_boundary_cells, rp_min_z=rp_min_z,
                              refine=refine, merge=merge, min_ratio_step=min_ratio_step, intensity=intensity)
    fr = _frame(image, gpa_result, st)
    maps = _signal_maps(gpa_result, fr)
    pix, region_sign = _pixel_regions(gpa_result, maps, fr, st)
    cols = _column_inputs(columns, gpa_result, maps, fr, st)
    col_lab = _column_domains(pix, cols, fr, st)
    lab_map, col_lab, sign_of = _relabel_by_area(cols, col_lab, len(region_sign), region_sign, maps.mask.shape,
                                                 gpa_result)
    n = int(lab_map.max())
    interior = interior_columns(cols.pos, col_lab, fr.cell_px)
    registry = _domain_registries(lab_map, col_lab, interior, cols, sign_of, n)
    lat_rows = domain_lattices(cols.pos, col_lab, interior, cols.fit_ok, gpa_result.lattice, list(range(1, n + 1)),
                               maps.lattice, lab_map, mask_radius_per_px=gpa_result.mask_radius_per_px)
    rows = _domain_rows(lab_map, col_lab, interior, registry, maps, lat_rows, fr, n)
    a_ref = float(np.mean(gpa_result.lattice.lattice_pm))
    bounds = boundary_table(lab_map, registry, fr.px_pm, min_length_nm=st.min_boundary_cells * a_ref * 1e-3,
                            origin_nm=fr.origin, smooth_px=fr.exclusion_px)
    stats = _domain_column_stats(np.arange(1, n + 1), col_lab, interior & cols.fit_ok & cols.complete,
                                 cols.sublattice, cols.intensity, cols.spacing)
    bounds = boundary_evidence(bounds, lab_map, gpa_result, maps.half, maps.mask, stats, fr.exclusion_px,
                               st.rp_min_z)
    params = {**asdict(st), "gpa_mask_radius_per_px": gpa_result.mask_radius_per_px}
    return DomainSegmentation(lab_map, rows, bounds, col_lab, interior, maps.rho, maps.lattice, maps.contrast,
                              maps.mask, fr.px_pm, fr.origin, params, cols.sublattice, maps.strain_110)

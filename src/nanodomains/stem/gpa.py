r"""Geometric phase analysis (GPA) of atomic-resolution ADF-STEM images.

Method (Hytch, Snoeck & Kilaas, Ultramicroscopy 74, 131 (1998) [1]_). An image of a
crystal is a sum of Fourier components :math:`I(\mathbf r)=\sum_g H_g(\mathbf r)\,
e^{2\pi i\,\mathbf g\cdot\mathbf r}`. Isolating one Bragg reflection
:math:`\mathbf g` with a mask :math:`M` in Fourier space and demodulating gives the
complex lock-in image

.. math:: H_g(\mathbf r) = \mathcal F^{-1}[M(\mathbf k-\mathbf g)\,\tilde I(\mathbf k)]
          \,e^{-2\pi i\,\mathbf g\cdot\mathbf r} = A_g(\mathbf r)\,e^{iP_g(\mathbf r)},

with amplitude :math:`A_g` (local strength of the lattice fringes) and geometric
phase :math:`P_g = -2\pi\,\mathbf g\cdot\mathbf u(\mathbf r)` for a displacement
field :math:`\mathbf u`. Two non-collinear reflections give
:math:`\mathbf u = -\frac{1}{2\pi}\,G^{-1}(P_{g_1}, P_{g_2})^T` (rows of
:math:`G` are :math:`\mathbf g_1, \mathbf g_2`) and the distortion tensor
:math:`\partial u_j/\partial r_k = -\frac{1}{2\pi}\sum_i (G^{-1})_{ji}\,
\partial P_{g_i}/\partial r_k`. The phase gradient is computed from the complex
lock-in image, :math:`\nabla P = \arg(H(\mathbf r+\delta)\,H^*(\mathbf r-\delta))/2\delta`,
so no unwrapping is needed for strain [1]_. Strain
:math:`\varepsilon_{xx}=\partial_x u_x`, :math:`\varepsilon_{yy}=\partial_y u_y`,
:math:`\varepsilon_{xy}=(\partial_y u_x+\partial_x u_y)/2`, rotation
:math:`\omega=(\partial_x u_y-\partial_y u_x)/2`, all in image coordinates
(x to the right, y down, so positive :math:`\omega` is clockwise on screen) and
relative to the reference lattice.

A local shift of the lattice by a vector :math:`\mathbf t` changes the phase by
:math:`-2\pi\,\mathbf g\cdot\mathbf t`: the Ruddlesden-Popper fault of the seed
study (1/2 a<111>, projected (1/2, 1/2) a along [100]) shifts the (100) and (010)
phases by :math:`\pi` and leaves (110) unchanged, and dips the (100) amplitude along
the fault plane (seed: Liu et al., Nano Lett. 23, 10089 (2023), Fig. 1b).

Masks: Gaussian :math:`M=\exp(-2|\mathbf k-\mathbf g|^2/R^2)` (``R`` is the
1/e^2 radius, sigma = R/2) or cosine :math:`M=\tfrac12(1+\cos(\pi|\mathbf k-\mathbf g|/R))`
for :math:`|\mathbf k-\mathbf g|<R`, else 0. The spatial resolution of the maps is
~1/R.

Speed: :math:`H_g` is band-limited to the mask support. It is computed exactly from
the cropped spectrum (the n x n Fourier coefficients where the mask exceeds
``crop_tol``, 1e-4 by default) by a separable trigonometric (band-limited)
interpolation onto the full grid, :math:`H = E_y\,C\,E_x^T` with
:math:`E_y[y,q]=e^{2\pi i(q/N_y-g_y)y}`, i.e. two small matrix products instead of a
full-size inverse FFT per reflection; only one forward FFT of the image is done.
This equals the full-grid result up to the mask truncation (see
``benchmarks/bench_gpa.py``). The phases are unwrapped on a coarse grid of pixel
step ~1/(4 x mask support) (:func:`unwrap_band_limited`), which the band limit
allows, instead of on every pixel.

Edges: the FFT treats the image as periodic; the image is split into its periodic
and smooth components (Moisan, J. Math. Imaging Vis. 39, 161 (2011) [2]_) and only
the periodic one is analysed, which removes the edge cross in the spectrum. The
split is done in Fourier space at the gathered coefficients only (``_Spectrum``). Lock-in
maps within ~1/R of the image border are still unreliable; the default reference
region excludes that border.

Reflection detection: Hann-windowed power spectrum, 3x3 box-averaged, divided by
its ring (``|k|``) geometric-mean background; local maxima above ``min_snr`` (pure noise
gives a ratio of ~1 with a spread of ~1/3, so the default 8 practically never fires
on noise).

Lattice finding (:func:`find_lattice`), for any 2-D lattice in any orientation:
(i) the reflections with at least :data:`STRONG_POWER_FRACTION` of the strongest
power generate the lattice: the strongest and the strongest non-collinear one give a
Lagrange-Gauss reduced basis; each other strong reflection, in order of decreasing
power, is indexed (integer h, k within 0.2, loose enough for split reflections of
multi-domain images), or sits at a third-integer position with >=
:data:`HALF_INTEGER_POWER_FRACTION` of the strongest power within :data:`HALF_INTEGER_TOL`,
which refines the cell to the index-3 superlattice it generates with the basis (a
hexagonal lattice whose two strongest reflections are (11)-type, 60 deg apart, spanning
a sublattice of index 3; the (20)-type then sits at third-integer indices), or sits at
a half-integer position, which refines the cell to an index-2 supercell when the column motif agrees (the translations it removes change the
image, motif difference M below) or when the reflection alone is conclusive (within
:data:`HALF_INTEGER_TOL` of the half-integer position with >=
:data:`HALF_INTEGER_POWER_FRACTION` of the strongest power: only the image's own
periodicity puts that much power exactly there); any other stays unindexed.
(ii) The primitive cell comes from the column motif: an index-2 supercell of that
cell replaces it when every translation it removes changes the image (two inequivalent
columns, e.g. the A and B columns of a [100] perovskite whose contrast difference
makes only weak (100) reflections, or (100) split by RP faults). (iii) The projection
is named from the primitive cell's shape: square [100] (a x a), rectangle with sqrt 2
[110] (a/sqrt2 x a), hexagon [111], else "none"; the basis is oriented with
g1 nearest +x and g2 towards +y. g1 and g2 are then refined on
a reference region from the (110) and (1-10) reflections (which an RP shift leaves
unchanged), each as the amplitude-weighted mean phase gradient,
:math:`\Delta\mathbf g = \langle\nabla P\rangle/2\pi` (Hytch 1998, Sect. 3),
iterated until g moves by less than a tenth of its uncertainty. The quoted uncertainty of
g is the weighted standard deviation of the gradient divided by the square root of
the number of independent samples, area x (2R)^2 (band-limited samples).

The normalised (100) amplitude map is :math:`A_{100}/A_{99}` clipped to [0, 1],
where :math:`A_{99}` is the 99th percentile of :math:`A_{100}`: a 0-1 relative
amplitude as displayed in the seed's Fig. 1b (the seed's exact normalisation is not
stated in its main text: unchecked).

References
----------
.. [1] M. J. Hytch, E. Snoeck, R. Kilaas, "Quantitative measurement of displacement
   and strain fields from HREM micrographs", Ultramicroscopy 74, 131-146 (1998).
.. [2] L. Moisan, "Periodic plus smooth image decomposition", J. Math. Imaging Vis.
   39, 161-179 (2011).
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from scipy import fft as sfft
from scipy import ndimage

from nanodomains import materials
from nanodomains.errors import FitError, InputError, require_positive
from nanodomains.files import atomic_path
from nanodomains.records import StemLattice, measured
from nanodomains.stem.io import validate_image_array

__all__ = [
    "GPAResult",
    "Lattice",
    "calibrate_on_lattice",
    "detect_reflections",
    "find_lattice",
    "gpa",
    "lock_in",
    "lock_in_full_grid",
    "lock_ins",
    "periodic_component",
    "phase_gradient",
    "refine_g",
    "strain_from_lock_in",
    "unwrap_band_limited",
]

#: default pseudo-cubic perovskite lattice range searched, pm (materials.py)
PEROVSKITE_LATTICE_PM = materials.PEROVSKITE_LATTICE_PM
_INDEX_TOL = 0.2
#: reflections with at least this fraction of the strongest power generate the lattice;
#: NSMO's charge-order superlattice reflections carry < 0.7 % (kemstem FigS6), the
#: weakest fundamental reflections of the real oxide images here > 5 %
STRONG_POWER_FRACTION = 0.02
#: a translation that changes the image by M >= this (and >= MOTIF_RATIO x the M of
#: the supercell's own generators) is not a lattice translation: the two sites differ
MOTIF_MIN_DIFFERENCE = 0.1
MOTIF_RATIO = 2.5
#: ... and >= this x the M of each of its generators (a modulated direction, as the
#: layering of a PbTiO3/SrRuO3 supercrystal, may repeat the motif only roughly)
MOTIF_RATIO_EACH = 1.5
#: a strong reflection this close (in each index) to a half-integer position of the cell,
#: with at least this fraction of the strongest power, belongs to the image's reciprocal
#: lattice whatever the motif test says: only the image's own periodicity puts that much
#: power exactly there (fig. 1 forward model: (110) at 27 %, (130) of the a/2 column grid at
#: 55 %; NSMO's superlattice < 0.7 %, split-reflection side lobes sit off half-integers)
HALF_INTEGER_TOL = 0.05
HALF_INTEGER_POWER_FRACTION = 0.1
#: M below which a translation counts as repeating the motif exactly (noise-free images)
MOTIF_FLOOR = 0.02
#: M above which no short cell translation reproduces the image: no lattice
MAX_LATTICE_MOTIF_DIFFERENCE = 0.6
#: cell-shape tolerances for naming the projection (relative edge ratio, angle in deg):
#: PbTiO3's c/a = 1.06 is still [100]
PROJECTION_RATIO_TOL = 0.08
PROJECTION_ANGLE_TOL_DEG = 5.0


# --------------------------------------------------------------------------- helpers


def _as_image(image: Any) -> tuple[np.ndarray, float | None]:
    """(float64 2-D array, pixel size in pm or None) from a DataArray or array."""
    if isinstance(image, xr.DataArray):
        px = image.attrs.get("pixel_size_pm")
        return validate_image_array(image.values, "image", allow_stack=False), (
            float(px) if px is not None else None
        )
    return validate_image_array(image, "image", allow_stack=False), None


def periodic_component(image: np.ndarray) -> np.ndarray:
    """Periodic component of the periodic-plus-smooth decomposition (Moisan 2011).

    Parameters
    ----------
    image : ndarray, shape (ny, nx)

    Returns
    -------
    ndarray
        ``image - smooth``, whose FFT has no edge-discontinuity cross.
    """
    u = np.asarray(image, dtype=np.float64)
    ny, nx = u.shape
    v = np.zeros_like(u)
    v[0, :] += u[-1, :] - u[0, :]
    v[-1, :] += u[0, :] - u[-1, :]
    v[:, 0] += u[:, -1] - u[:, 0]
    v[:, -1] += u[:, 0] - u[:, -1]
    vf = sfft.rfft2(v, workers=-1)
    cy = np.cos(2 * np.pi * np.arange(ny) / ny)[:, None]
    cx = np.cos(2 * np.pi * np.arange(nx // 2 + 1) / nx)[None, :]
    denom = 2 * cy + 2 * cx - 4
    denom[0, 0] = 1.0
    sf = vf / denom
    sf[0, 0] = 0.0
    return u - sfft.irfft2(sf, s=u.shape, workers=-1)


def _mask_support(mask: str, radius: float, crop_tol: float) -> float:
    """Radius (cycles/px) outside which the mask is below crop_tol."""
    if mask == "gaussian":
        sigma = radius / 2.0
        return sigma * np.sqrt(2.0 * np.log(1.0 / crop_tol))
    if mask == "cosine":
        return radius
    raise InputError(f"mask must be 'gaussian' or 'cosine', got {mask!r}")


def _mask_values(mask: str, dist: np.ndarray, radius: float) -> np.ndarray:
    if mask == "gaussian":
        return np.exp(-2.0 * (dist / radius) ** 2)
    if mask == "cosine":
        return np.where(dist < radius, 0.5 * (1.0 + np.cos(np.pi * np.minimum(dist / radius, 1.0))), 0.0)
    raise InputError(f"mask must be 'gaussian' or 'cosine', got {mask!r}")


@dataclass
class _Spectrum:
    r"""Spectrum of an image (after optional edge treatment) for repeated lock-ins.

    The periodic-plus-smooth edge treatment is applied in Fourier space, only at the
    coefficients a lock-in gathers: the smooth component's spectrum is
    :math:`S = V/(2\cos(2\pi k_y/N_y) + 2\cos(2\pi k_x/N_x) - 4)` (Moisan 2011), and the
    boundary image ``v`` lives on four lines, so
    :math:`V(k_y,k_x) = \hat a(k_x)(1-e^{2\pi i k_y/N_y}) + \hat b(k_y)(1-e^{2\pi i k_x/N_x})`
    with :math:`a = u_{N_y-1,:}-u_{0,:}` and :math:`b = u_{:,N_x-1}-u_{:,0}`. That is
    two 1-D FFTs instead of an inverse and a forward full-size FFT, and equals
    ``rfft2(periodic_component(u))`` to rounding.
    """

    rf: np.ndarray
    shape: tuple[int, int]
    edge_x: np.ndarray | None = None  # fft of a (length nx), periodic_smooth only
    edge_y: np.ndarray | None = None  # fft of b (length ny)

    @classmethod
    def of(cls, image: np.ndarray, edge: str = "periodic_smooth") -> _Spectrum:
        u = np.asarray(image, dtype=np.float64)
        rf = sfft.rfft2(u, workers=-1)
        if edge == "none":
            return cls(rf, u.shape)
        if edge != "periodic_smooth":
            raise InputError(f"edge must be 'periodic_smooth' or 'none', got {edge!r}")
        return cls(rf, u.shape, sfft.fft(u[-1, :] - u[0, :]), sfft.fft(u[:, -1] - u[:, 0]))

    def gather(self, ky: np.ndarray, kx: np.ndarray) -> np.ndarray:
        """Full-plane spectrum values at integer frequency indices (any sign)."""
        ny, nx = self.shape
        kyb, kxb = np.broadcast_arrays(np.mod(ky, ny), np.mod(kx, nx))
        direct = kxb <= nx // 2
        out = np.empty(kyb.shape, dtype=np.complex128)
        out[direct] = self.rf[kyb[direct], kxb[direct]]
        out[~direct] = np.conj(self.rf[np.mod(-kyb[~direct], ny), np.mod(-kxb[~direct], nx)])
        if self.edge_x is not None:
            out -= self._smooth(kyb, kxb)
        return out

    def _smooth(self, ky: np.ndarray, kx: np.ndarray) -> np.ndarray:
        """Spectrum of the smooth component at (ky, kx) (0 at the origin)."""
        ny, nx = self.shape
        py = np.exp(2j * np.pi * ky / ny)
        px = np.exp(2j * np.pi * kx / nx)
        v = self.edge_x[kx] * (1 - py) + self.edge_y[ky] * (1 - px)
        denom = 2 * py.real + 2 * px.real - 4
        origin = (ky == 0) & (kx == 0)
        return np.where(origin, 0.0, v / np.where(origin, 1.0, denom))


def _masked_crop(
    spec: _Spectrum, gy: float, gx: float, mask: str, mask_radius_per_px: float, crop_tol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frequencies (fy, fx) and masked spectrum / (ny nx) of the crop around g."""
    ny, nx = spec.shape
    if not (abs(gy) < 0.5 and abs(gx) < 0.5):
        raise InputError(f"g = ({gy}, {gx}) cycles/px is beyond Nyquist (0.5)")
    radius = require_positive("mask_radius_per_px", mask_radius_per_px)
    support = _mask_support(mask, radius, crop_tol)
    hy = int(np.ceil(support * ny)) + 1
    hx = int(np.ceil(support * nx)) + 1
    if 2 * hy + 1 > ny or 2 * hx + 1 > nx:
        raise InputError(f"mask radius {radius:.4g} cycles/px is too large for a {ny} x {nx} image")
    k0y, k0x = int(round(gy * ny)), int(round(gx * nx))
    qy = np.arange(k0y - hy, k0y + hy + 1)
    qx = np.arange(k0x - hx, k0x + hx + 1)
    fy = qy / ny
    fx = qx / nx
    dist = np.hypot((fy - gy)[:, None], (fx - gx)[None, :])
    c = spec.gather(qy[:, None], qx[None, :]) * _mask_values(mask, dist, radius)
    return fy, fx, c / (ny * nx)


def lock_in(
    image: np.ndarray,
    g_per_px: tuple[float, float] | np.ndarray,
    *,
    mask: str = "gaussian",
    mask_radius_per_px: float,
    edge: str = "periodic_smooth",
    crop_tol: float = 1e-4,
    dtype: Any = np.complex64,
    _spectrum: _Spectrum | None = None,
) -> np.ndarray:
    """Complex lock-in image :math:`H_g` from the cropped spectrum (fast path).

    Parameters
    ----------
    image : ndarray, shape (ny, nx)
        Real image.
    g_per_px : (gy, gx)
        Reflection in cycles per pixel (``|gy|``, ``|gx|`` < 0.5).
    mask : {"gaussian", "cosine"}
        Mask shape (module docstring).
    mask_radius_per_px : float
        Mask radius R in cycles per pixel.
    edge : {"periodic_smooth", "none"}
        Edge treatment before the FFT.
    crop_tol : float
        Fourier coefficients where the mask is below this are dropped.
    dtype : numpy dtype
        complex64 (default) or complex128 output.

    Returns
    -------
    ndarray, shape (ny, nx), complex
        :math:`A_g e^{iP_g}`; ``np.abs`` is the amplitude, ``np.angle`` the wrapped
        geometric phase in rad.
    """
    spec = _spectrum if _spectrum is not None else _Spectrum.of(validate_image_array(image, "image", allow_stack=False), edge)
    ny, nx = spec.shape
    gy, gx = (float(v) for v in np.asarray(g_per_px, dtype=float))
    fy, fx, c = _masked_crop(spec, gy, gx, mask, mask_radius_per_px, crop_tol)
    ctype = np.dtype(dtype)
    ey = np.exp(2j * np.pi * np.outer(np.arange(ny), fy - gy)).astype(ctype)
    ex = np.exp(2j * np.pi * np.outer(fx - gx, np.arange(nx))).astype(ctype)
    return ey @ (c.astype(ctype) @ ex)


def lock_ins(
    image: np.ndarray,
    gs_per_px: np.ndarray,
    *,
    mask: str = "gaussian",
    mask_radius_per_px: float,
    edge: str = "periodic_smooth",
    crop_tol: float = 1e-4,
    dtype: Any = np.complex64,
) -> list[np.ndarray]:
    """Lock-in images of several reflections sharing one forward FFT.

    Same parameters as :func:`lock_in`, with ``gs_per_px`` of shape (n, 2).
    """
    arr = validate_image_array(image, "image", allow_stack=False)
    spec = _Spectrum.of(arr, edge)
    return [
        lock_in(arr, g, mask=mask, mask_radius_per_px=mask_radius_per_px, crop_tol=crop_tol, dtype=dtype, _spectrum=spec)
        for g in np.atleast_2d(gs_per_px)
    ]


def lock_in_full_grid(
    image: np.ndarray,
    g_per_px: tuple[float, float] | np.ndarray,
    *,
    mask: str = "gaussian",
    mask_radius_per_px: float,
    edge: str = "periodic_smooth",
) -> np.ndarray:
    """Reference lock-in by a full-size inverse FFT (plain GPA; slow, exact mask).

    Same parameters and result as :func:`lock_in` (complex128), used to validate
    it and as the benchmark baseline.
    """
    arr = validate_image_array(image, "image", allow_stack=False)
    u = periodic_component(arr) if edge == "periodic_smooth" else arr
    ny, nx = u.shape
    gy, gx = (float(v) for v in np.asarray(g_per_px, dtype=float))
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.fftfreq(nx)[None, :]
    m = _mask_values(mask, np.hypot(fy - gy, fx - gx), float(mask_radius_per_px))
    b = np.fft.ifft2(np.fft.fft2(u) * m)
    yy = np.arange(ny)[:, None]
    xx = np.arange(nx)[None, :]
    return b * np.exp(-2j * np.pi * (gy * yy + gx * xx))


def _linear_weights(n: int, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left node index and weight of the right node for pixels 0..n-1 (sorted nodes)."""
    pos = np.arange(n, dtype=np.float64)
    left = np.clip(np.searchsorted(nodes, pos, side="right") - 1, 0, len(nodes) - 2)
    return left, (pos - nodes[left]) / (nodes[left + 1] - nodes[left])


def unwrap_band_limited(phase: np.ndarray, band_per_px: float) -> np.ndarray:
    r"""Unwrap the phase of a band-limited lock-in image on a coarse grid.

    A lock-in image is band-limited to the mask support :math:`k_s` (cycles/px), so
    its phase changes by less than :math:`2\pi k_s` per pixel away from amplitude
    zeros. The phase is unwrapped (:func:`skimage.restoration.unwrap_phase`,
    Herraez et al. 2002) on the grid of every ``s``-th pixel, ``s = 1/(4 k_s)``
    (a change of at most pi/2 between coarse neighbours), linearly interpolated back
    to every pixel, and each wrapped pixel gets the multiple of :math:`2\pi` that
    brings it nearest to the interpolated value. Equal to the full-grid unwrap up to
    one constant multiple of :math:`2\pi` wherever the phase is band-limited; at
    phase singularities (dislocation cores, amplitude zeros) no unwrap is unique.

    Parameters
    ----------
    phase : ndarray, shape (ny, nx)
        Wrapped phase in rad.
    band_per_px : float
        Band limit :math:`k_s` in cycles per pixel (> 0).

    Returns
    -------
    ndarray, shape (ny, nx), float64
    """
    from skimage.restoration import unwrap_phase

    p = np.asarray(phase, dtype=np.float64)
    if p.ndim != 2:
        raise InputError(f"phase must be 2-D, got shape {p.shape}")
    step = max(1, int(1.0 / (4.0 * require_positive("band_per_px", band_per_px))))
    ny_, nx_ = p.shape
    rows = np.unique(np.r_[np.arange(0, ny_, step), ny_ - 1])
    cols = np.unique(np.r_[np.arange(0, nx_, step), nx_ - 1])
    if len(rows) < 2 or len(cols) < 2:
        return unwrap_phase(p)
    coarse = unwrap_phase(p[np.ix_(rows, cols)])
    iy, wy = _linear_weights(ny_, rows.astype(np.float64))
    ix, wx = _linear_weights(nx_, cols.astype(np.float64))
    along_y = coarse[iy] * (1 - wy)[:, None] + coarse[iy + 1] * wy[:, None]
    smooth = along_y[:, ix] * (1 - wx) + along_y[:, ix + 1] * wx
    return p + 2 * np.pi * np.round((smooth - p) / (2 * np.pi))


def phase_gradient(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient (d/dy, d/dx) of the phase of a complex map, in rad/px.

    Central differences of the phase computed as ``angle(h[+1] * conj(h[-1])) / 2``
    (one-sided at the edges), so phase wraps do not matter.
    """
    h = np.asarray(h)
    out = []
    for axis in (0, 1):
        n = h.shape[axis]
        sl = lambda a, b: tuple(slice(a, b) if ax == axis else slice(None) for ax in range(2))  # noqa: E731
        d = np.empty(h.shape, dtype=np.float64)
        d[sl(1, n - 1)] = np.angle(h[sl(2, n)] * np.conj(h[sl(0, n - 2)])) / 2.0
        d[sl(0, 1)] = np.angle(h[sl(1, 2)] * np.conj(h[sl(0, 1)]))
        d[sl(n - 1, n)] = np.angle(h[sl(n - 1, n)] * np.conj(h[sl(n - 2, n - 1)]))
        out.append(d)
    return out[0], out[1]


# --------------------------------------------------------------------------- lattice


@dataclass(frozen=True)
class Lattice:
    """A 2-D lattice found in an image, with the perovskite projection it matches.

    Attributes
    ----------
    g_per_px : ndarray, shape (2, 2)
        Reciprocal basis rows g1, g2; components (gy, gx) in cycles per pixel. For a
        square or hexagonal cell g1 is the one nearest +x (g1 = (100), g2 = (010) of
        a [100] projection); for the rectangular [110] cell a1 is the short edge
        (a/sqrt 2) and a2 the long one (a).
    g_err_per_px : ndarray, shape (2, 2)
        One-sigma uncertainty of each component (0 where not refined).
    pixel_size_pm : float or None
        Pixel size (None for uncalibrated arrays: only px quantities then).
    reflections_per_px : ndarray, shape (n, 2)
        Detected reflections (gy, gx), both Friedel mates.
    reflections_hk : ndarray, shape (n, 2)
        Their (h, k) indices in the (g1, g2) basis (-999 where not indexed).
    reflections_snr : ndarray, shape (n,)
        Peak-to-background power ratio of each reflection.
    projection : str
        "[100]", "[110]", "[111]" (the perovskite projection the primitive cell
        matches) or "none" (module docstring, "Lattice finding").
    evidence : str
        Why: strong reflections indexed, the column-motif test, the cell shape.
    refine_hk : tuple of two (h, k)
        The reflections g1, g2 are refined from (:func:`gpa` uses the same).
    motif : dict
        Motif difference M(t) of the translations tested (module docstring).
    """

    g_per_px: np.ndarray
    g_err_per_px: np.ndarray
    pixel_size_pm: float | None = None
    reflections_per_px: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    reflections_hk: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), int))
    reflections_snr: np.ndarray = field(default_factory=lambda: np.zeros(0))
    projection: str = "none"
    evidence: str = ""
    refine_hk: tuple[tuple[int, int], tuple[int, int]] = ((1, 1), (1, -1))
    motif: dict[str, float] = field(default_factory=dict)

    @property
    def basis_px(self) -> np.ndarray:
        """Real-space basis, rows a1, a2 as (y, x) in px, with a_i . g_j = delta_ij."""
        return np.linalg.inv(self.g_per_px).T

    @property
    def cell_px(self) -> np.ndarray:
        """Cell edge lengths ``|a1|``, ``|a2|`` in px."""
        return np.linalg.norm(self.basis_px, axis=1)

    def _propagate(self, fn: Any) -> np.ndarray:
        """One-sigma error of ``fn(g)`` (array) by linear propagation of ``g_err_per_px``."""
        g = self.g_per_px
        err2 = np.zeros(np.shape(fn(g)))
        for i, j in itertools.product(range(2), range(2)):
            if self.g_err_per_px[i, j] == 0:
                continue
            d = np.zeros((2, 2))
            d[i, j] = 1e-7 * max(np.abs(g).max(), 1e-3)
            deriv = (np.asarray(fn(g + d)) - np.asarray(fn(g - d))) / (2 * d[i, j])
            err2 = err2 + (deriv * self.g_err_per_px[i, j]) ** 2
        return np.sqrt(err2)

    @property
    def cell_err_px(self) -> np.ndarray:
        """One-sigma uncertainty of ``|a1|``, ``|a2|`` (linear propagation of g_err)."""
        return self._propagate(lambda g: np.linalg.norm(np.linalg.inv(g).T, axis=1))

    @property
    def angle_deg(self) -> float:
        """Angle between a1 and a2 in degrees."""
        return float(_cell_angle_deg(self.g_per_px))

    @property
    def angle_err_deg(self) -> float:
        """One-sigma uncertainty of :attr:`angle_deg`."""
        return float(self._propagate(_cell_angle_deg))

    @property
    def ratio(self) -> float:
        """``|a2|`` / ``|a1|``."""
        c = self.cell_px
        return float(c[1] / c[0])

    @property
    def ratio_err(self) -> float:
        """One-sigma uncertainty of :attr:`ratio`."""
        return float(self._propagate(lambda g: np.divide(*np.linalg.norm(np.linalg.inv(g).T, axis=1)[::-1])))

    def _px_pm(self) -> float:
        if self.pixel_size_pm is None:
            raise InputError("lattice has no pixel size: use the *_px quantities or analyse a calibrated image")
        return self.pixel_size_pm

    @property
    def lattice_pm(self) -> np.ndarray:
        """Cell edge lengths ``|a1|``, ``|a2|`` in pm."""
        return self.cell_px * self._px_pm()

    @property
    def lattice_pm_err(self) -> np.ndarray:
        """One-sigma uncertainty of :attr:`lattice_pm` (from g refinement only)."""
        return self.cell_err_px * self._px_pm()

    @property
    def pseudocubic_px(self) -> tuple[float, float] | None:
        """(a, error) of the pseudo-cubic perovskite cell the projection implies, px.

        [100]: mean of ``|a1|``, ``|a2|``; [110]: mean of sqrt(2) ``|a1|`` and ``|a2|``; [111]:
        ``|a|`` / sqrt(2/3) (mean edge); None for "none".
        """
        c, e = self.cell_px, self.cell_err_px
        if self.projection == "[100]":
            return float(c.mean()), float(np.hypot(*e) / 2)
        if self.projection == "[110]":
            return float((np.sqrt(2) * c[0] + c[1]) / 2), float(np.hypot(np.sqrt(2) * e[0], e[1]) / 2)
        if self.projection == "[111]":
            f = 1.0 / np.sqrt(2.0 / 3.0)
            return float(f * c.mean()), float(f * np.hypot(*e) / 2)
        return None

    @property
    def g_inv_nm(self) -> np.ndarray:
        """g1, g2 rows (gy, gx) in 1/nm."""
        return self.g_per_px / (self._px_pm() * 1e-3)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        d: dict[str, Any] = {
            "g_per_px": self.g_per_px.tolist(),
            "g_err_per_px": self.g_err_per_px.tolist(),
            "cell_px": self.cell_px.tolist(),
            "angle_deg": self.angle_deg,
            "pixel_size_pm": self.pixel_size_pm,
            "projection": self.projection,
            "evidence": self.evidence,
        }
        if self.pixel_size_pm is not None:
            d["lattice_pm"] = self.lattice_pm.tolist()
            d["lattice_pm_err"] = self.lattice_pm_err.tolist()
        return d

    def to_record(self, note: str | None = None) -> StemLattice:
        """The lattice as a :class:`~nanodomains.records.StemLattice` (needs a pixel size).

        Cell edges, angle and ``|a2|``/``|a1|`` with their uncertainties, the projection
        with its evidence, and the pseudo-cubic cell edge it implies.
        """
        a, e = self.lattice_pm, self.lattice_pm_err
        pc = self.pseudocubic_px
        return StemLattice(
            a1_pm=measured(a[0], e[0]), a2_pm=measured(a[1], e[1]), angle_deg=self.angle_deg,
            angle_err_deg=self.angle_err_deg, ratio=measured(self.ratio, self.ratio_err),
            basis_pm=self.basis_px * self._px_pm(), projection=self.projection, evidence=self.evidence,
            pseudocubic_pm=None if pc is None else measured(pc[0] * self._px_pm(), pc[1] * self._px_pm()),
            note=note)


def _cell_angle_deg(g: np.ndarray) -> float:
    """Angle between the real-space basis vectors of the reciprocal basis ``g``."""
    a = np.linalg.inv(g).T
    c = a[0] @ a[1] / (np.linalg.norm(a[0]) * np.linalg.norm(a[1]))
    return float(np.degrees(np.arccos(np.clip(c, -1, 1))))


def detect_reflections(
    image: Any,
    *,
    min_snr: float = 8.0,
    max_fft_px: int = 1024,
    min_period_px: float = 2.5,
    max_period_px: float | None = None,
    max_reflections: int = 60,
) -> tuple[np.ndarray, np.ndarray]:
    """Bragg reflections in the windowed power spectrum.

    Parameters
    ----------
    image : DataArray or ndarray, shape (ny, nx)
    min_snr : float
        Threshold of the 3x3-averaged power over its ring background.
    max_fft_px : int
        The central ``max_fft_px`` square of larger images is used.
    min_period_px, max_period_px : float
        Only frequencies 1/max_period < ``|k|`` < 1/min_period are searched
        (default max: a quarter of the analysed size).
    max_reflections : int
        Keep at most this many (strongest) reflections in the half plane.

    Returns
    -------
    k_per_px : ndarray, shape (n, 2)
        Reflections (ky, kx) in cycles/px, both Friedel mates, sub-pixel
        (power-weighted centroid).
    snr : ndarray, shape (n,)
        Their peak-to-background power ratio.
    """
    arr, _ = _as_image(image)
    ny0, nx0 = arr.shape
    cy, cx = max(0, (ny0 - max_fft_px) // 2), max(0, (nx0 - max_fft_px) // 2)
    a = arr[cy : cy + min(ny0, max_fft_px), cx : cx + min(nx0, max_fft_px)]
    ny, nx = a.shape
    w = np.hanning(ny)[:, None] * np.hanning(nx)[None, :]
    f = sfft.rfft2((a - a.mean()) * w, workers=-1)
    p = np.fft.fftshift(f.real**2 + f.imag**2, axes=0)
    fy = (np.arange(ny) - ny // 2)[:, None] / ny
    fx = (np.arange(nx // 2 + 1))[None, :] / nx
    r = np.hypot(fy, fx)
    ps = ndimage.uniform_filter(p, 3, mode="nearest")
    logp = np.log(ps + ps.max() * 1e-18 + 1e-300)
    dr = 1.0 / min(ny, nx)
    ring = np.minimum((r / dr).astype(np.int64), int(0.75 / dr))
    cnt = np.bincount(ring.ravel())
    mean_log = np.bincount(ring.ravel(), logp.ravel()) / np.maximum(cnt, 1)
    snr_map = np.exp(logp - mean_log[ring])
    max_period = max_period_px if max_period_px is not None else min(ny, nx) / 4.0
    valid = (r > 1.0 / max_period) & (r < 1.0 / min_period_px)
    snr_map = np.where(valid, snr_map, 0.0)
    from skimage.feature import peak_local_max

    pk = peak_local_max(snr_map, min_distance=2, threshold_abs=min_snr, exclude_border=False)
    if len(pk) == 0:
        return np.zeros((0, 2)), np.zeros(0)
    # drop Hann side lobes of strong peaks: power below 1e-3 of the strongest
    pw = ps[pk[:, 0], pk[:, 1]]
    keep = pw >= 1e-3 * pw.max()
    pk = pk[keep]
    order = np.argsort(-snr_map[pk[:, 0], pk[:, 1]])[:max_reflections]
    pk = pk[order]
    # sub-pixel centroid of background-free power over 3x3
    offs = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    yy = np.clip(pk[:, None, 0] + offs[None, :, 0], 0, ny - 1)
    xx = np.clip(pk[:, None, 1] + offs[None, :, 1], 0, p.shape[1] - 1)
    wts = np.maximum(p[yy, xx] - np.exp(mean_log[ring[yy, xx]]), 0.0)
    wsum = wts.sum(axis=1)
    wsum[wsum == 0] = 1.0
    ky = ((wts * yy).sum(axis=1) / wsum - ny // 2) / ny
    kx = ((wts * xx).sum(axis=1) / wsum) / nx
    k = np.stack([ky, kx], axis=1)
    s = snr_map[pk[:, 0], pk[:, 1]]
    # half plane kx >= 0 holds one of each pair (both on kx = 0): add Friedel mates
    half = ~((np.abs(kx) < 0.5 / nx) & (ky < 0))
    k, s = k[half], s[half]
    return np.concatenate([k, -k]), np.concatenate([s, s])


def _reduce(g1: np.ndarray, g2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lagrange-Gauss reduction of a 2-D basis: ``|g1|`` <= ``|g2|`` <= ``|g2 +- g1|``."""
    g1, g2 = np.asarray(g1, float).copy(), np.asarray(g2, float).copy()
    for _ in range(64):
        if g1 @ g1 > g2 @ g2:
            g1, g2 = g2, g1
        m = round(float(g1 @ g2) / float(g1 @ g1))
        if m == 0:
            break
        g2 = g2 - m * g1
    return g1, g2


def _index(k: np.ndarray, basis: np.ndarray, tol: float = _INDEX_TOL) -> tuple[np.ndarray, np.ndarray]:
    """(hk rounded, indexed mask) of reflections ``k`` in the reciprocal ``basis``."""
    hk = k @ np.linalg.inv(basis)
    return np.round(hk).astype(int), np.abs(hk - np.round(hk)).max(axis=1) < tol


def _strong_lattice(k: np.ndarray, snr: np.ndarray, min_snr: float, arr: np.ndarray | None
                    ) -> tuple[np.ndarray, str]:
    """Reduced reciprocal basis of the lattice of the strong reflections (module docstring).

    Strong: power above :data:`STRONG_POWER_FRACTION` of the strongest. The strongest
    reflection and the strongest one not collinear with it (angle > ~15 deg) give a
    first basis (Lagrange-Gauss reduced); the other strong reflections are taken in
    order of decreasing power: one with integer indices (within 0.2, ``|h|``, ``|k|`` <= 6)
    is explained; one at a third-integer position (``|h|``, ``|k|`` <= 4) that is conclusive by
    itself (:func:`_self_evident` with n = 3) refines the lattice to the index-3
    superlattice it generates with the basis (:func:`_generated_lattice`; a hexagonal
    lattice whose strongest pair is (11)-type, 60 deg apart, spans an index-3
    sublattice, which no index-2 step can undo; a third-integer reflection carrying that
    much power is never an artefact, and the NSMO-type superlattice reflections stay far
    below the power fraction); one at a half-integer position (``|h|``, ``|k|`` <= 4) refines the lattice
    to an index-2 supercell if the column motif agrees (the translations that supercell
    removes change the image, :func:`_motif_test`; side lobes of reflections split by a
    fault do not pass; skipped with ``arr`` None), or else to the supercell it generates
    with the basis if the reflection alone is conclusive (:func:`_self_evident`: on the
    half-integer position within :data:`HALF_INTEGER_TOL`, >= :data:`HALF_INTEGER_POWER_FRACTION`
    of the strongest power). The latter is needed on the forward model's [100] CsPbX3
    image with RP domains (strongest reflections (220)-type in units of the primitive
    cell a, then (240), (110)): the first cell (edge a/(2 sqrt 2)) is 8 times smaller
    than the primitive one and its first index-2 step, the a/2 column grid, does not
    pass the motif test (its generators, Cs -> X, change the image too). Any other reflection (scan noise, artefacts) stays
    unindexed. Weak reflections (superlattice, sublattice contrast) play no part.
    """
    strong = np.flatnonzero(snr >= max(min_snr, STRONG_POWER_FRACTION * snr.max()))
    order = strong[np.argsort(-snr[strong], kind="stable")]
    norm = np.linalg.norm(k, axis=1)
    ga = k[order[0]]
    second = [i for i in order if abs(ga[0] * k[i][1] - ga[1] * k[i][0]) >= 0.25 * norm[order[0]] * norm[i]]
    if not second:
        raise FitError(f"no lattice found: {len(strong) // 2} strong reflection(s), no two non-collinear")
    basis = np.stack(_reduce(ga, k[second[0]]))
    notes: list[str] = []
    tried: set[tuple[int, int]] = set()
    for i in order:
        hk = k[i] @ np.linalg.inv(basis)
        if _self_evident(hk, snr[i], snr[order[0]], 3):
            # index-3 sublattice (a hexagonal lattice's (11)-type pair): the lattice it generates with the basis
            basis = _generated_lattice(basis, hk, 3)
            notes.append(f"third-integer reflection at {1 / norm[i]:.2f} px ({float(snr[i] / snr[order[0]]):.0%} of "
                         f"the strongest power, indices ({hk[0]:.3f}, {hk[1]:.3f})): index-3 superlattice "
                         "(the lattice of the reflections)")
            tried.clear()
            continue
        twice = np.round(2 * hk)
        if (np.abs(hk - np.round(hk)).max() < _INDEX_TOL or np.abs(2 * hk - twice).max() >= 2 * _INDEX_TOL
                or np.abs(hk).max() > 4.5):
            continue
        parity = (int(twice[0]) % 2, int(twice[1]) % 2)
        where = f"half-integer reflection at {1 / norm[i]:.2f} px"
        if arr is not None and parity not in tried:
            tried.add(parity)
            m = _motif_values(arr, basis)
            tests = [_motif_test(arr, basis, w, m) + (w,) for w in _SUPERCELLS_FOR_PARITY[parity]]
            passed = [t for t in tests if t[0]]
            best = max(passed, key=lambda t: _motif_score(m, t[3])) if passed else tests[0]
            notes.append(f"{where}: " + best[1])
            if passed:
                basis = best[2]
                tried.clear()
                continue
        if _self_evident(hk, snr[i], snr[order[0]]):
            # the reciprocal lattice generated by the basis and this reflection (index-2 supercell)
            name, _, _, new = _SUPERCELLS[_SUPERCELLS_FOR_PARITY[parity][0]]
            basis = np.stack(_reduce(*new(basis[0], basis[1])))
            notes.append(f"{where} ({float(snr[i] / snr[order[0]]):.0%} of the strongest power, indices "
                         f"({hk[0]:.3f}, {hk[1]:.3f})): {name} (the lattice of the reflections)")
            tried.clear()
    hk_s, ok_s = _index(k[strong], basis)
    ok_s &= np.abs(hk_s).max(axis=1) <= 6
    frac = float(snr[strong][ok_s].sum() / snr[strong].sum())
    if frac < 0.5:
        raise FitError(f"no lattice found: the lattice of the strongest reflections indexes only {frac:.0%} "
                       "of the strong reflections' power")
    hk_all, ok_all = _index(k, basis)
    beyond = ok_all & (np.abs(hk_all).max(axis=1) <= 4) & ~(np.abs(hk_all).sum(axis=1) <= 1)
    if beyond.sum() < 2:  # both Friedel mates of at least one reflection besides +-g1, +-g2
        raise FitError("no lattice found: no reflection besides the two basis reflections is indexed "
                       f"({len(k) // 2} detected); two isolated peaks do not make a lattice")
    return basis, "; ".join([f"{len(strong) // 2} strong reflection(s) (power >= {STRONG_POWER_FRACTION:g} x the "
                             f"strongest): their lattice indexes {frac:.0%} of their power"] + notes)


def _self_evident(hk: np.ndarray, power: float, strongest: float, n: int = 2) -> bool:
    """A fractional (1/n-integer, n = 2 or 3) reflection that belongs to the lattice on the
    reflections' evidence alone: not integer, within :data:`HALF_INTEGER_TOL` of the 1/n-integer
    position in both indices, with at least :data:`HALF_INTEGER_POWER_FRACTION` of the strongest power."""
    near = np.round(n * hk)
    return bool(np.abs(hk - near / n).max() <= HALF_INTEGER_TOL and (near % n != 0).any()
                and np.abs(hk).max() <= 4.5 and power >= HALF_INTEGER_POWER_FRACTION * strongest)


def _generated_lattice(basis: np.ndarray, hk: np.ndarray, n: int) -> np.ndarray:
    """Reduced reciprocal basis of the lattice generated by ``basis`` and the reflection at
    1/n-integer indices ``hk`` (Hermite normal form of the integer generators (n, 0), (0, n),
    round(n hk), divided by n)."""
    rows = [np.array([n, 0]), np.array([0, n]), np.round(n * np.asarray(hk)).astype(int)]
    pivots = []
    for col in (0, 1):
        while sum(r[col] != 0 for r in rows) > 1:  # Euclid on column ``col``
            live = sorted((r for r in rows if r[col] != 0), key=lambda r: abs(int(r[col])))
            rows = [live[0]] + [r - (r[col] // live[0][col]) * live[0] for r in live[1:]] + \
                   [r for r in rows if r[col] == 0]
        pivots.append(next(r for r in rows if r[col] != 0))
        rows = [r for r in rows if r[col] == 0]
    return np.stack(_reduce(*(np.stack(pivots) / n @ basis)))


def _motif_values(arr: np.ndarray, basis: np.ndarray) -> dict[str, float]:
    """M(t) for the short translations of the real cell of reciprocal ``basis``."""
    a1, a2 = np.linalg.inv(basis).T
    named = {"a1": a1, "a2": a2, "a1+a2": a1 + a2, "a1-a2": a1 - a2, "2a1": 2 * a1, "2a2": 2 * a2}
    smooth = 0.15 * float(min(np.linalg.norm(a1), np.linalg.norm(a2)))
    return {n: float(v) for n, v in zip(named, _motif_difference(arr, np.stack(list(named.values())), smooth))}


def _motif_score(m: dict[str, float], which: int) -> float:
    """Least M of the translations supercell ``which`` removes over the geometric mean
    M of its generators (each floored at :data:`MOTIF_FLOOR`)."""
    _, removed, kept, _ = _SUPERCELLS[which]
    return min(m[t] for t in removed) / float(np.sqrt(np.prod([max(m[t], MOTIF_FLOOR) for t in kept])))


def _motif_test(arr: np.ndarray, basis: np.ndarray, which: int, m: dict[str, float] | None = None
                ) -> tuple[bool, str, np.ndarray]:
    """(accepted, note, new basis) of the index-2 supercell ``_SUPERCELLS[which]`` of ``basis``.

    Accepted when every translation it removes changes the image: M >=
    :data:`MOTIF_MIN_DIFFERENCE`, >= :data:`MOTIF_RATIO` x the geometric mean M of
    the supercell's generators (each floored at :data:`MOTIF_FLOOR`) and >=
    :data:`MOTIF_RATIO_EACH` x the M of each generator.
    """
    m = m if m is not None else _motif_values(arr, basis)
    name, removed, kept, new = _SUPERCELLS[which]
    score = _motif_score(m, which)
    lo = min(m[t] for t in removed)
    hi = float(np.sqrt(np.prod([max(m[t], MOTIF_FLOOR) for t in kept])))
    worst_kept = max(m[t] for t in kept)
    ok = bool(np.isfinite(score) and lo >= MOTIF_MIN_DIFFERENCE and score >= MOTIF_RATIO
              and lo >= MOTIF_RATIO_EACH * worst_kept)
    note = (f"{name} {'accepted' if ok else 'rejected'}: translations {', '.join(removed)} change the column motif "
            f"by M >= {lo:.3f}, {score:.1f} x the M of its generators {' and '.join(kept)} "
            f"({', '.join(f'{m[t]:.3f}' for t in kept)}, geometric mean)")
    return ok, note, np.stack(_reduce(*new(basis[0], basis[1])))


def _motif_difference(arr: np.ndarray, translations: np.ndarray, smooth_px: float) -> np.ndarray:
    r"""Motif difference :math:`M(\mathbf t)` of the image for each translation (module docstring).

    :math:`M = \langle (I_s(\mathbf r+\mathbf t) - I_s(\mathbf r))^2\rangle / 2\,\mathrm{var}(I_s)`
    on the central <= 512^2 px, with :math:`I_s` the image smoothed by a Gaussian of
    ``smooth_px`` (against shot noise); sub-pixel shifts by a Fourier phase ramp, the
    wrapped border excluded. 0 for a symmetry translation of a noise-free image, ~1
    for an unrelated shift.
    """
    ny0, nx0 = arr.shape
    n = 512
    cy, cx = max(0, (ny0 - n) // 2), max(0, (nx0 - n) // 2)
    a = arr[cy: cy + min(ny0, n), cx: cx + min(nx0, n)]
    ny, nx = a.shape
    fy = sfft.fftfreq(ny)[:, None]
    fx = sfft.fftfreq(nx)[None, :]
    f = sfft.fft2(a - a.mean(), workers=-1) * np.exp(-2 * np.pi**2 * smooth_px**2 * (fy**2 + fx**2))
    base = sfft.ifft2(f, workers=-1).real
    out = np.empty(len(translations))
    for i, t in enumerate(np.asarray(translations, float)):
        shifted = sfft.ifft2(f * np.exp(2j * np.pi * (fy * t[0] + fx * t[1])), workers=-1).real  # I_s(r + t)
        b = int(np.ceil(np.abs(t).max())) + 2
        if 2 * b >= min(ny, nx) - 8:
            out[i] = np.nan
            continue
        core = base[b: ny - b, b: nx - b]
        out[i] = np.mean((shifted[b: ny - b, b: nx - b] - core) ** 2) / (2 * max(core.var(), 1e-300))
    return out


#: the index-2 superlattices of a cell (a1, a2): name, removed translations, kept generators, new reciprocal basis
_SUPERCELLS = (
    ("doubled along a1", ("a1", "a1+a2", "a1-a2"), ("2a1", "a2"), lambda g1, g2: (g1 / 2, g2)),
    ("doubled along a2", ("a2", "a1+a2", "a1-a2"), ("a1", "2a2"), lambda g1, g2: (g1, g2 / 2)),
    ("centred cell made primitive", ("a1", "a2"), ("a1+a2", "a1-a2"), lambda g1, g2: ((g1 + g2) / 2, (g1 - g2) / 2)),
    ("doubled along a1 and a2", ("a1", "a2", "a1+a2", "a1-a2"), ("2a1", "2a2"), lambda g1, g2: (g1 / 2, g2 / 2)),
)
#: supercells whose reciprocal lattice holds a half-integer reflection of parity (h, k) mod 2
_SUPERCELLS_FOR_PARITY = {(1, 0): (0, 3), (0, 1): (1, 3), (1, 1): (2, 3)}


def _primitive_from_motif(arr: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, str, dict[str, float]]:
    """The primitive cell from the column motif: (reciprocal basis, evidence, M values).

    The cell of the strong reflections may hold two inequivalent columns (A and B of
    a perovskite, whose contrast makes only weak reflections). Each index-2 supercell
    is tested (:func:`_motif_test`) and the best-scoring accepted one replaces the
    cell; repeated once. Raises FitError when no short translation of the cell
    reproduces the image (M > :data:`MAX_LATTICE_MOTIF_DIFFERENCE`): no lattice.
    """
    notes: list[str] = []
    m = _motif_values(arr, basis)
    first = dict(m)
    if not np.isfinite(max(m["a1"], m["a2"])):
        raise FitError("no lattice found: the cell is too large for the image to test its translations")
    best_any = np.nanmin([m["a1"], m["a2"], m["a1+a2"], m["a1-a2"], m["2a1"], m["2a2"]])
    if best_any > MAX_LATTICE_MOTIF_DIFFERENCE:
        raise FitError(f"no lattice found: no translation by the cell found reproduces the image (motif "
                       f"difference M >= {best_any:.2f}; a lattice gives << {MAX_LATTICE_MOTIF_DIFFERENCE})")
    for _ in range(2):
        tests = [_motif_test(arr, basis, w, m) + (w,) for w in range(len(_SUPERCELLS))]
        passed = [t for t in tests if t[0]]
        if not passed:
            break
        ok, note, basis, _ = max(passed, key=lambda t: _motif_score(m, t[3]))
        notes.append(note)
        m = _motif_values(arr, basis)
    if not notes:
        notes.append(f"no index-2 supercell: the translations of the cell repeat the column motif "
                     f"(M(a1) = {m['a1']:.3f}, M(a2) = {m['a2']:.3f})")
    return basis, "; ".join(notes), first


def _name_projection(g: np.ndarray, g_err: np.ndarray | None = None) -> tuple[str, str]:
    """(projection, evidence) of a primitive reciprocal basis from its real-space cell shape."""
    a = np.linalg.inv(g).T
    c = np.linalg.norm(a, axis=1)
    ratio = float(c.max() / c.min())
    ang = _cell_angle_deg(g)
    acute = min(ang, 180.0 - ang)
    shape = f"primitive cell {c[0]:.2f} x {c[1]:.2f} px, |long|/|short| = {ratio:.3f}, angle {ang:.2f} deg"
    if abs(acute - 90) <= PROJECTION_ANGLE_TOL_DEG and ratio <= 1 + PROJECTION_RATIO_TOL:
        return "[100]", shape + ": square, the perovskite [100] projection (a x a)"
    if abs(acute - 90) <= PROJECTION_ANGLE_TOL_DEG and abs(ratio / np.sqrt(2) - 1) <= PROJECTION_RATIO_TOL:
        return "[110]", shape + ": rectangular with sqrt 2, the perovskite [110] projection (a/sqrt2 x a)"
    if abs(acute - 60) <= PROJECTION_ANGLE_TOL_DEG and ratio <= 1 + PROJECTION_RATIO_TOL:
        return "[111]", shape + ": hexagonal, the perovskite [111] projection (a sqrt(2/3))"
    return "none", shape + ": matches no perovskite projection ([100] square, [110] sqrt 2 rectangle, [111] hexagon)"


def _orient(g1: np.ndarray, g2: np.ndarray, projection: str = "[100]") -> np.ndarray:
    """Basis rows in the image frame; components are (y, x).

    g1 is the reflection nearest +x and g2 points to +y ([100], [111], none); for the
    rectangular [110] cell a1 is the short edge (a/sqrt 2), a2 the long one (a),
    whatever the rotation.
    """
    pairs = [(g1, g2), (-g1, g2), (g2, g1), (-g2, g1)]
    if projection == "[110]":
        # the short real edge a1 belongs to the long reflection g1 (rectangular cell)
        long_g = g1 if g1 @ g1 >= g2 @ g2 else g2
        pairs = [p for p in pairs if np.allclose(np.abs(p[0]), np.abs(long_g))]
    g_x, other = max(pairs, key=lambda pr: pr[0][1] / np.linalg.norm(pr[0]))
    g_y = other if other[0] >= 0 else -other
    return np.stack([g_x, g_y])


def _refine_pair(basis: np.ndarray, k: np.ndarray, snr: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """Two detected reflections to refine the basis from.

    (1,1) and (1,-1) when both are detected (a Ruddlesden-Popper shift leaves their
    phases unchanged), else (1,0) and (0,1), else the two strongest non-collinear
    indexed reflections.
    """
    hk, ok = _index(k, basis)
    seen = {tuple(int(v) for v in h) for h in hk[ok]}
    for pair in (((1, 1), (1, -1)), ((1, 0), (0, 1))):
        if all(p in seen or (-p[0], -p[1]) in seen for p in pair):
            return pair
    order = [tuple(int(v) for v in hk[i]) for i in np.argsort(-snr) if ok[i]]
    first = order[0]
    second = next(h for h in order if first[0] * h[1] - first[1] * h[0] != 0)
    return first, second


def _refine_basis(
    arr: np.ndarray, basis: np.ndarray, region: np.ndarray, radius: float, mask: str, spec: _Spectrum,
    max_iter: int = 12, pair: tuple[tuple[int, int], tuple[int, int]] = ((1, 1), (1, -1)),
) -> tuple[np.ndarray, np.ndarray]:
    """Refine (g1, g2) from the lock-ins of the reflections ``pair`` (default (1,1), (1,-1)).

    Iterated until g moves by less than a tenth of its uncertainty: a start far off
    (a short image side resolves the spectrum coarsely) takes several rounds, as the
    amplitude weighting of the mean phase gradient depends on g.
    """
    hmat = np.array(pair, dtype=float)
    if abs(np.linalg.det(hmat)) < 1e-9:
        raise InputError(f"refinement reflections {pair} are collinear")
    hinv = np.linalg.inv(hmat)
    p, q = hmat @ basis
    ep = eq = np.zeros(2)
    for _ in range(max_iter):
        hp = lock_in(arr, p, mask=mask, mask_radius_per_px=radius, _spectrum=spec)
        p_new, ep = refine_g(hp, p, region, radius)
        hq = lock_in(arr, q, mask=mask, mask_radius_per_px=radius, _spectrum=spec)
        q_new, eq = refine_g(hq, q, region, radius)
        step = max(np.abs(p_new - p).max(), np.abs(q_new - q).max())
        p, q = p_new, q_new
        if step < max(0.1 * max(ep.max(), eq.max()), 1e-9):
            break
    else:
        warnings.warn(f"GPA: g refinement still moved {step:.2e} cycles/px after {max_iter} iterations "
                      "(uncertainty " f"{max(ep.max(), eq.max()):.1e}); check the reference region", RuntimeWarning,
                      stacklevel=3)
    err = np.sqrt(hinv**2 @ np.stack([ep**2, eq**2]))
    return hinv @ np.stack([p, q]), err


def _default_mask_radius(g: np.ndarray) -> float:
    return 0.25 * float(np.linalg.norm(g, axis=1).min())


def _border_region(shape: tuple[int, int], border_px: int) -> np.ndarray:
    ny, nx = shape
    b = min(border_px, ny // 4, nx // 4)
    reg = np.zeros(shape, bool)
    reg[b : ny - b, b : nx - b] = True
    return reg


def _reference_mask(reference: Any, shape: tuple[int, int], radius: float) -> np.ndarray:
    """Reference region: the given one minus the image border of ~1/R px.

    Lock-in images are unreliable within ~1/R of the border (the lattice is not
    periodic across it), which biases g by several tenths of a percent when border
    pixels enter the reference, so they never do.
    """
    inner = _border_region(shape, int(np.ceil(1.0 / radius)))
    if reference is None:
        return inner
    if isinstance(reference, tuple) and len(reference) == 2 and all(isinstance(s, slice) for s in reference):
        reg = np.zeros(shape, bool)
        reg[reference] = True
    else:
        reg = np.array(reference, dtype=bool)  # a copy: the border is removed below
        if reg.shape != shape:
            raise InputError(f"reference mask shape {reg.shape} differs from the image {shape}")
    given = int(reg.sum())
    reg &= inner
    if reg.sum() < 16:
        raise InputError(
            f"reference region has {int(reg.sum())} px ({given} given) once the image border, where "
            "lock-in maps are unreliable (~1/R px), is excluded; need at least 16"
        )
    return reg


def refine_g(
    h: np.ndarray,
    g_per_px: np.ndarray,
    region: np.ndarray,
    mask_radius_per_px: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Refine a reflection from the mean phase gradient of its lock-in image.

    Parameters
    ----------
    h : ndarray, complex, shape (ny, nx)
        Lock-in image for ``g_per_px``.
    g_per_px : (gy, gx)
        Reflection used for the lock-in, cycles/px.
    region : ndarray of bool
        Reference region (a part of the image taken as the unstrained lattice).
    mask_radius_per_px : float
        Mask radius used, for the number of independent samples.

    Returns
    -------
    g_refined, g_err : ndarray, shape (2,)
        Refined reflection and its one-sigma uncertainty (cycles/px).
    """
    dy, dx = phase_gradient(h)
    w = np.abs(h)[region].astype(np.float64) ** 2
    if not np.isfinite(w).all() or w.sum() <= 0:
        raise FitError("lock-in amplitude is zero in the reference region")
    w = w / w.sum()
    grads = np.stack([dy[region], dx[region]])
    mean = grads @ w
    var = ((grads - mean[:, None]) ** 2) @ w
    n_eff = max(region.sum() * (2.0 * mask_radius_per_px) ** 2, 1.0)
    g_new = np.asarray(g_per_px, float) + mean / (2 * np.pi)
    g_err = np.sqrt(var / n_eff) / (2 * np.pi)
    return g_new, g_err


def find_lattice(
    image: Any,
    *,
    lattice_pm_range: tuple[float, float] | None = PEROVSKITE_LATTICE_PM,
    min_snr: float = 8.0,
    require_pseudocubic: bool = False,
    refine: bool = True,
    reference: Any = None,
    mask: str = "gaussian",
    mask_radius_per_px: float | None = None,
    centring: str = "motif",
) -> Lattice:
    """Find, index and refine the 2-D lattice of an image and name its projection.

    Any 2-D lattice in any orientation (module docstring, "Lattice finding"): the
    lattice generated by the strong reflections, reduced; its primitive cell decided
    from the column motif; named [100], [110], [111] or none from its shape.

    Parameters
    ----------
    image : DataArray or ndarray, shape (ny, nx)
        Calibrated image (DataArray) or bare array (then give
        ``lattice_pm_range=None``).
    lattice_pm_range : (float, float) or None
        Pseudo-cubic cell edges expected (pm); default the perovskite range 350-700 pm.
        Sets the longest period searched (1.25 x the upper end); the cell itself is
        found without it, whatever its shape. None: periods up to a quarter of the image.
    min_snr : float
        Detection threshold of reflections (see :func:`detect_reflections`).
    require_pseudocubic : bool
        Raise :class:`FitError` unless the cell is the square [100] one
        (``|a1|``/``|a2|`` < 1.15 and angle within 10 deg of 90 deg).
    refine : bool
        Refine g1, g2 on the reference region by GPA (iterated to convergence).
    reference : tuple of slices or bool ndarray, optional
        Reference region; default the image minus a border of ~1/R px (that
        border, at most a quarter of the image, is excluded from any region).
    mask, mask_radius_per_px :
        GPA mask for the refinement (default R = ``|g|``/4).
    centring : {"motif", "none"}
        "motif": decide the primitive cell from the column motif; "none": the lattice
        of the strong reflections alone (the half-integer reflections that are
        conclusive by themselves included, no motif test), e.g. the centred (110) cell
        of a [100] perovskite whose (100) reflections are weak or split by RP faults.

    Returns
    -------
    Lattice
        With ``projection`` and ``evidence``.

    Raises
    ------
    FitError
        "no lattice found" (pure noise, amorphous: no strong reflections that index
        as a lattice, or translations by the cell that do not reproduce the image).
    """
    arr, px_pm = _as_image(image)
    if centring not in ("motif", "none"):
        raise InputError(f"centring must be 'motif' or 'none', got {centring!r}")
    max_period = None
    if lattice_pm_range is not None:
        if px_pm is None:
            raise InputError("lattice_pm_range needs a calibrated image (DataArray with pixel_size_pm)")
        max_period = 1.25 * max(float(v) for v in lattice_pm_range) / px_pm
        if max_period > min(arr.shape) / 2:
            raise InputError(f"image of {arr.shape} px is too small for a lattice up to "
                             f"{max(lattice_pm_range)} pm at {px_pm} pm/px")
    k, snr = detect_reflections(arr, min_snr=min_snr, min_period_px=2.5, max_period_px=max_period)
    if len(k) == 0:
        raise FitError(f"no lattice found: no reflection above SNR {min_snr} in the power spectrum")
    basis, why = _strong_lattice(k, snr, min_snr, arr if centring == "motif" else None)
    motif: dict[str, float] = {}
    if centring == "motif":
        basis, motif_note, motif = _primitive_from_motif(arr, basis)
        why += "; " + motif_note
    projection, shape = _name_projection(basis)
    basis = _orient(basis[0], basis[1], projection)
    pair = _refine_pair(basis, k, snr)
    err = np.zeros((2, 2))
    if refine:
        radius = mask_radius_per_px or _default_mask_radius(basis)
        region = _reference_mask(reference, arr.shape, radius)
        basis, err = _refine_basis(arr, basis, region, radius, mask, _Spectrum.of(arr), pair=pair)
        projection, shape = _name_projection(basis)
    hk, ok = _index(k, basis)
    lat = Lattice(basis, err, px_pm, k, np.where(ok[:, None], hk, -999), snr, projection,
                  f"{why}; {shape}" + ("" if refine else " (unrefined)"), pair, motif)
    if require_pseudocubic and (lat.cell_px.max() / lat.cell_px.min() > 1.15 or abs(lat.angle_deg - 90) > 10):
        raise FitError(f"lattice found is not pseudo-cubic: |a1|/|a2| = {lat.cell_px.max() / lat.cell_px.min():.3f}, "
                       f"angle {lat.angle_deg:.1f} deg ({lat.projection} projection: {shape})")
    return lat


def calibrate_on_lattice(
    image: xr.DataArray,
    lattice_pm: float,
    *,
    region: tuple[slice, slice] | None = None,
    direction: str = "both",
    reference_name: str = "",
) -> xr.DataArray:
    """Set the pixel size from a lattice of known spacing in the image.

    The usual STEM practice when the instrument's magnification calibration is in
    doubt: the lattice found by :func:`find_lattice` (refined on ``region``, searched
    in px so the file's calibration plays no part) is given the known cell edge.

    Parameters
    ----------
    image : DataArray, dims (y, x)
        Image from :func:`nanodomains.stem.io.load_image` (any calibration).
    lattice_pm : float
        Known cell edge of the reference lattice, pm.
    region : (slice, slice), optional
        Pixels of the reference crystal (default: the whole image); the image
        border of ~1/R px is excluded in any case (:func:`find_lattice`).
    direction : {"both", "x", "y"}
        Cell edge(s) that have the known spacing: the mean of ``|a1|`` and ``|a2|``, or
        only the one nearest x (``|a1|``) or y (``|a2|``), e.g. the in-plane lattice of
        a film that is coherent with its substrate.
    reference_name : str
        What the reference is (recorded in ``pixel_size_source``).

    Returns
    -------
    DataArray
        A copy with ``pixel_size_pm`` replaced, coordinates (nm) rescaled, and
        ``pixel_size_source`` ("reference lattice ..."), ``previous_pixel_size_pm``
        and ``previous_pixel_size_source`` (the replaced calibration, None if the
        image had none) and ``pixel_size_rel_err`` set.
    """
    if not isinstance(image, xr.DataArray) or image.dims != ("y", "x"):
        raise InputError("calibrate_on_lattice needs a 2-D image DataArray with dims (y, x) (use load_image)")
    known = require_positive("lattice_pm", lattice_pm)
    if direction not in ("both", "x", "y"):
        raise InputError(f"direction must be 'both', 'x' or 'y', got {direction!r}")
    try:
        lat = find_lattice(image.values, lattice_pm_range=None, reference=region)
    except InputError as exc:
        raise InputError(f"calibration region: {exc}") from exc
    pick = {"both": [0, 1], "x": [0], "y": [1]}[direction]
    cell = float(np.mean(lat.cell_px[pick]))
    cell_err = float(np.sqrt(np.sum(lat.cell_err_px[pick] ** 2)) / len(pick))
    new_px = known / cell
    old_px = image.attrs.get("pixel_size_pm")
    out = image.copy()
    coords = {}
    for dim in ("y", "x"):
        if dim in image.coords:
            c = image[dim]
            vals = (np.asarray(c, float) * (new_px / float(old_px)) if old_px is not None
                    else np.arange(image.sizes[dim]) * new_px * 1e-3)
            coords[dim] = (dim, vals, {**c.attrs, "units": "nm"})
    out = out.assign_coords(coords)
    region_txt = "whole image" if region is None else f"rows {region[0].start}:{region[0].stop}, columns {region[1].start}:{region[1].stop}"
    out.attrs.update({
        "pixel_size_pm": new_px,
        "pixel_size_source": f"reference lattice {known:g} pm" + (f" {reference_name}" if reference_name else "")
                             + f" ({direction}, {region_txt}, measured {cell:.3f} +- {cell_err:.3f} px)",
        "previous_pixel_size_pm": None if old_px is None else float(old_px),
        "previous_pixel_size_source": image.attrs.get("pixel_size_source"),
        "pixel_size_rel_err": cell_err / cell,
    })
    return out


# --------------------------------------------------------------------------- GPA


def strain_from_lock_in(
    h1: np.ndarray, h2: np.ndarray, g1_per_px: np.ndarray, g2_per_px: np.ndarray
) -> dict[str, np.ndarray]:
    """Distortion, strain and rotation maps from two lock-in images.

    Parameters
    ----------
    h1, h2 : ndarray, complex, shape (ny, nx)
        Lock-in images of two non-collinear reflections.
    g1_per_px, g2_per_px : (gy, gx)
        The reflections (cycles/px) used for the lock-ins (the reference lattice).

    Returns
    -------
    dict
        ``exx, eyy, exy, rotation_rad`` (dimensionless, rad), float64 maps.
    """
    gmat = np.stack([np.asarray(g1_per_px, float), np.asarray(g2_per_px, float)])
    if abs(np.linalg.det(gmat)) < 1e-12:
        raise InputError("g1 and g2 are collinear; strain needs two non-collinear reflections")
    ginv = np.linalg.inv(gmat)  # u = -(1/2pi) ginv @ P ; components (y, x)
    d1 = phase_gradient(h1)  # (dP1/dy, dP1/dx)
    d2 = phase_gradient(h2)
    # D[j][k] = du_j/dr_k, j,k in (y, x)
    dist = [[-(ginv[j, 0] * d1[kk] + ginv[j, 1] * d2[kk]) / (2 * np.pi) for kk in range(2)] for j in range(2)]
    return {
        "exx": dist[1][1],
        "eyy": dist[0][0],
        "exy": 0.5 * (dist[1][0] + dist[0][1]),
        "rotation_rad": 0.5 * (dist[0][1] - dist[1][0]),
    }


@dataclass
class GPAResult:
    """Result of :func:`gpa` (maps on the image grid).

    Attributes
    ----------
    lattice : Lattice
        Reference lattice (refined g1 = (100), g2 = (010)).
    reflections_hk : list of (int, int)
        Reflections analysed, in the lattice basis; the first two give the strain.
    g_per_px : ndarray, shape (n, 2)
        Their g vectors (cycles/px).
    amplitude, phase : ndarray, shape (n, ny, nx)
        Lock-in amplitude (image units) and wrapped phase (rad).
    phase_unwrapped : ndarray or None
        Unwrapped phases (rad), if requested.
    exx, eyy, exy, rotation_rad : ndarray, shape (ny, nx)
        Strain and rotation relative to the reference lattice.
    ux_nm, uy_nm : ndarray or None
        Displacement (from the unwrapped phases; None without unwrapping).
    amplitude_100_norm : ndarray, shape (ny, nx)
        (100) amplitude normalised to [0, 1] (module docstring).
    reference : ndarray of bool
        Reference region.
    mask, mask_radius_per_px : str, float
        Mask used.
    y_nm, x_nm : ndarray
        Image coordinates.
    """

    lattice: Lattice
    reflections_hk: list[tuple[int, int]]
    g_per_px: np.ndarray
    amplitude: np.ndarray
    phase: np.ndarray
    phase_unwrapped: np.ndarray | None
    exx: np.ndarray
    eyy: np.ndarray
    exy: np.ndarray
    rotation_rad: np.ndarray
    ux_nm: np.ndarray | None
    uy_nm: np.ndarray | None
    amplitude_100_norm: np.ndarray
    reference: np.ndarray
    mask: str
    mask_radius_per_px: float
    y_nm: np.ndarray
    x_nm: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    def to_dataset(self) -> xr.Dataset:
        """The maps as an :class:`xarray.Dataset` (dims reflection, y, x)."""
        refl = [f"({h}{k})".replace("-", "-") for h, k in self.reflections_hk]
        coords = {
            "y": ("y", self.y_nm, {"units": "nm"}),
            "x": ("x", self.x_nm, {"units": "nm"}),
            "reflection": ("reflection", refl),
        }
        dv: dict[str, Any] = {
            "amplitude": (("reflection", "y", "x"), self.amplitude),
            "phase": (("reflection", "y", "x"), self.phase, {"units": "rad"}),
            "g_per_px": (("reflection", "component"), self.g_per_px),
            "hk": (("reflection", "index"), np.asarray(self.reflections_hk, dtype=np.int32)),
            "exx": (("y", "x"), self.exx),
            "eyy": (("y", "x"), self.eyy),
            "exy": (("y", "x"), self.exy),
            "rotation": (("y", "x"), self.rotation_rad, {"units": "rad"}),
            "amplitude_100_norm": (("y", "x"), self.amplitude_100_norm),
            "reference_region": (("y", "x"), self.reference.astype(np.int8)),
        }
        if self.phase_unwrapped is not None:
            dv["phase_unwrapped"] = (("reflection", "y", "x"), self.phase_unwrapped, {"units": "rad"})
        if self.ux_nm is not None and self.uy_nm is not None:
            dv["ux"] = (("y", "x"), self.ux_nm, {"units": "nm"})
            dv["uy"] = (("y", "x"), self.uy_nm, {"units": "nm"})
        attrs = {
            "method": "geometric phase analysis (Hytch, Snoeck & Kilaas, Ultramicroscopy 74, 131 (1998))",
            "mask": self.mask,
            "mask_radius_per_px": self.mask_radius_per_px,
            "g1_per_px": self.lattice.g_per_px[0],
            "g2_per_px": self.lattice.g_per_px[1],
            "g1_err_per_px": self.lattice.g_err_per_px[0],
            "g2_err_per_px": self.lattice.g_err_per_px[1],
            "cell_px": self.lattice.cell_px,
            "cell_err_px": self.lattice.cell_err_px,
            "cell_angle_deg": self.lattice.angle_deg,
            "strain_convention": "image coordinates, x right, y down; relative to the reference lattice",
        }
        if self.lattice.pixel_size_pm is not None:
            attrs["pixel_size_pm"] = self.lattice.pixel_size_pm
            attrs["lattice_pm"] = self.lattice.lattice_pm
            attrs["lattice_pm_err"] = self.lattice.lattice_pm_err
        attrs.update(self.attrs)
        return xr.Dataset(dv, coords=coords, attrs=attrs)

    def to_netcdf(self, path: str | Path) -> Path:
        """Write :meth:`to_dataset` to netCDF (h5netcdf), atomically."""
        path = Path(path)
        with atomic_path(path) as tmp:
            self.to_dataset().to_netcdf(tmp, engine="h5netcdf")
        return path


def gpa(
    image: Any,
    lattice: Lattice | None = None,
    *,
    reflections: tuple[tuple[int, int], ...] = ((1, 0), (0, 1)),
    mask: str = "gaussian",
    mask_radius_per_px: float | None = None,
    mask_radius_inv_nm: float | None = None,
    reference: Any = None,
    unwrap: bool = True,
    edge: str = "periodic_smooth",
    **find_kwargs: Any,
) -> GPAResult:
    """Geometric phase analysis of an image.

    Parameters
    ----------
    image : DataArray or ndarray, shape (ny, nx)
        Calibrated image (from :func:`nanodomains.stem.io.load_image`) or array.
    lattice : Lattice, optional
        Reference lattice; found with :func:`find_lattice` (``**find_kwargs``)
        when not given. Its g vectors are refined on ``reference`` either way.
    reflections : sequence of (h, k)
        Reflections to lock in; the first two (non-collinear) give the strain
        and displacement. Default (100), (010).
    mask : {"gaussian", "cosine"}
    mask_radius_per_px, mask_radius_inv_nm : float, optional
        Mask radius R (one of the two); default ``|g1|``/4.
    reference : tuple of slices or bool ndarray, optional
        Reference (unstrained) region; default the image minus a border of 1/R
        (excluded from any region given, as in :func:`find_lattice`).
    unwrap : bool
        Unwrap the phases (:func:`unwrap_band_limited`) and compute the
        displacement field.
    edge : {"periodic_smooth", "none"}

    Returns
    -------
    GPAResult
    """
    arr, px_pm = _as_image(image)
    lattice = _start_lattice(image, lattice, px_pm, reference, mask, find_kwargs)
    if mask_radius_inv_nm is not None:
        if px_pm is None:
            raise InputError("mask_radius_inv_nm needs a calibrated image; use mask_radius_per_px")
        mask_radius_per_px = require_positive("mask_radius_inv_nm", mask_radius_inv_nm) * px_pm * 1e-3
    radius = mask_radius_per_px or _default_mask_radius(lattice.g_per_px)
    if len(reflections) < 2:
        raise InputError("need at least two reflections for strain")
    hk = [tuple(int(v) for v in r) for r in reflections]
    region = _reference_mask(reference, arr.shape, radius)
    spec = _Spectrum.of(arr, edge)
    # refine the basis on the reference region
    basis, err = _refine_basis(arr, lattice.g_per_px.copy(), region, radius, mask, spec, pair=lattice.refine_hk)
    lattice = dataclasses.replace(lattice, g_per_px=basis, g_err_per_px=err, pixel_size_pm=px_pm,
                                  evidence=lattice.evidence.replace(" (unrefined)", ""))
    gs = np.array([h_ * basis[0] + k_ * basis[1] for h_, k_ in hk])
    if abs(np.linalg.det(gs[:2])) < 1e-12:
        raise InputError(f"the first two reflections {hk[:2]} are collinear")
    hs = [lock_in(arr, g, mask=mask, mask_radius_per_px=radius, _spectrum=spec) for g in gs]
    amp = np.stack([np.abs(h) for h in hs]).astype(np.float32)
    phase = np.stack([np.angle(h) for h in hs]).astype(np.float32)
    strain = strain_from_lock_in(hs[0], hs[1], gs[0], gs[1])
    amp100 = _normalised_amplitude(amp[0], region)
    unwrapped = ux = uy = None
    if unwrap:
        unwrapped, ux, uy = _displacement(phase[:2], gs[:2], _mask_support(mask, radius, 1e-4), px_pm)
    y_nm, x_nm = _image_coords_nm(image, arr.shape, px_pm)
    attrs: dict[str, Any] = {}
    if isinstance(image, xr.DataArray) and "source_file" in image.attrs:
        attrs["source_file"] = image.attrs["source_file"]
    if px_pm is None:
        attrs["displacement_units"] = "px (uncalibrated image)"
    return GPAResult(
        lattice=lattice,
        reflections_hk=hk,
        g_per_px=gs,
        amplitude=amp,
        phase=phase,
        phase_unwrapped=unwrapped,
        exx=strain["exx"],
        eyy=strain["eyy"],
        exy=strain["exy"],
        rotation_rad=strain["rotation_rad"],
        ux_nm=ux,
        uy_nm=uy,
        amplitude_100_norm=amp100,
        reference=region,
        mask=mask,
        mask_radius_per_px=float(radius),
        y_nm=y_nm,
        x_nm=x_nm,
        attrs=attrs,
    )


def _start_lattice(image: Any, lattice: Lattice | None, px_pm: float | None, reference: Any, mask: str,
                   find_kwargs: dict) -> Lattice:
    """The given lattice, or :func:`find_lattice` (unrefined: :func:`gpa` refines it once)."""
    if lattice is not None:
        if find_kwargs:
            raise InputError(f"unexpected arguments {sorted(find_kwargs)} when a lattice is given")
        return lattice
    find_kwargs.setdefault("reference", reference)
    find_kwargs.setdefault("mask", mask)
    find_kwargs.setdefault("refine", False)  # refined in gpa, once
    if px_pm is None:
        find_kwargs.setdefault("lattice_pm_range", None)
    return find_lattice(image, **find_kwargs)


def _normalised_amplitude(amp100: np.ndarray, region: np.ndarray) -> np.ndarray:
    """(100) amplitude / its 99th percentile, clipped to [0, 1]; FitError without fringes."""
    ref_amp = amp100[region]
    if not np.isfinite(ref_amp).all() or ref_amp.max() <= 0:
        raise FitError("GPA: (100) amplitude is zero; no lattice fringes in the image")
    a99 = float(np.percentile(amp100, 99))
    return np.clip(amp100 / a99, 0.0, 1.0)


def _displacement(phase2: np.ndarray, g2: np.ndarray, band_per_px: float, px_pm: float | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unwrapped phases of the first two reflections, u_x, u_y) in nm (px when uncalibrated)."""
    unwrapped = np.stack([unwrap_band_limited(p, band_per_px) for p in phase2]).astype(np.float32)
    ginv = np.linalg.inv(g2)
    u_px = -np.einsum("ji,iyx->jyx", ginv, unwrapped.astype(np.float64)) / (2 * np.pi)
    scale = px_pm * 1e-3 if px_pm is not None else 1.0
    return unwrapped, u_px[1] * scale, u_px[0] * scale


def _image_coords_nm(image: Any, shape: tuple[int, int], px_pm: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) coordinates in nm: the DataArray's, else pixel index x pixel size (px uncalibrated)."""
    if isinstance(image, xr.DataArray) and "y" in image.coords:
        return np.asarray(image["y"], float), np.asarray(image["x"], float)
    s = px_pm * 1e-3 if px_pm is not None else 1.0
    return np.arange(shape[0]) * s, np.arange(shape[1]) * s

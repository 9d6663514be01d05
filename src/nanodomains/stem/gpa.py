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
its ring (|k|) geometric-mean background; local maxima above ``min_snr`` (pure noise
gives a ratio of ~1 with a spread of ~1/3, so the default 8 practically never fires
on noise). A basis (g1, g2) is chosen among the detected reflections with
1/|g| in ``lattice_pm_range`` (the 10 shortest and 12 strongest) as the largest
reciprocal cell that indexes (integer h, k within 0.2, loose enough for split
reflections of multi-domain images) at least 90 % of the SNR-weighted reflections
indexed by the best candidate, then Lagrange-reduced and oriented: g1 = (100)
nearest +x, g2 = (010) nearest +y. For a [100]-projected perovskite (CsPbX3: Cs at
(0,0), Pb+X at (1/2,1/2), X at (1/2,0), (0,1/2)) that is the pseudo-cubic cell; if
the chosen cell is square and unindexed reflections sit at its (1/2, 1/2)
positions, it is the centred (110) cell (weak (100) reflections, or (100) split by
an RP fault) and the primitive cell is used instead. g1 and g2 are then refined on
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
    """Periodic component of the periodic-plus-smooth decomposition [2]_.

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
    :math:`S = V/(2\cos(2\pi k_y/N_y) + 2\cos(2\pi k_x/N_x) - 4)` [2]_, and the
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


def _band_power(spec: _Spectrum, g_per_px: np.ndarray, mask_radius_per_px: float, mask: str = "gaussian") -> float:
    """Mean of :math:`|H_g|^2` over the image, from the crop by Parseval (no lock-in map)."""
    gy, gx = (float(v) for v in np.asarray(g_per_px, dtype=float))
    _, _, c = _masked_crop(spec, gy, gx, mask, mask_radius_per_px, 1e-4)
    return float(np.sum(c.real**2 + c.imag**2))


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
        Reflection in cycles per pixel (|gy|, |gx| < 0.5).
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
    """A 2-D (pseudo-cubic) lattice found in an image.

    Attributes
    ----------
    g_per_px : ndarray, shape (2, 2)
        Rows g1 = (100), g2 = (010); components (gy, gx) in cycles per pixel.
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
    """

    g_per_px: np.ndarray
    g_err_per_px: np.ndarray
    pixel_size_pm: float | None = None
    reflections_per_px: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    reflections_hk: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), int))
    reflections_snr: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def basis_px(self) -> np.ndarray:
        """Real-space basis, rows a1, a2 as (y, x) in px, with a_i . g_j = delta_ij."""
        return np.linalg.inv(self.g_per_px).T

    @property
    def cell_px(self) -> np.ndarray:
        """Cell edge lengths |a1|, |a2| in px."""
        return np.linalg.norm(self.basis_px, axis=1)

    @property
    def cell_err_px(self) -> np.ndarray:
        """One-sigma uncertainty of |a1|, |a2| (linear propagation of g_err)."""
        g = self.g_per_px
        err2 = np.zeros(2)
        for i, j in itertools.product(range(2), range(2)):
            if self.g_err_per_px[i, j] == 0:
                continue
            d = np.zeros((2, 2))
            d[i, j] = 1e-7 * max(np.abs(g).max(), 1e-3)
            dc = (np.linalg.norm(np.linalg.inv(g + d).T, axis=1) - np.linalg.norm(np.linalg.inv(g - d).T, axis=1)) / (2 * d[i, j])
            err2 += (dc * self.g_err_per_px[i, j]) ** 2
        return np.sqrt(err2)

    @property
    def angle_deg(self) -> float:
        """Angle between a1 and a2 in degrees."""
        a = self.basis_px
        c = a[0] @ a[1] / (np.linalg.norm(a[0]) * np.linalg.norm(a[1]))
        return float(np.degrees(np.arccos(np.clip(c, -1, 1))))

    def _px_pm(self) -> float:
        if self.pixel_size_pm is None:
            raise InputError("lattice has no pixel size: use the *_px quantities or analyse a calibrated image")
        return self.pixel_size_pm

    @property
    def lattice_pm(self) -> np.ndarray:
        """Cell edge lengths |a1|, |a2| in pm."""
        return self.cell_px * self._px_pm()

    @property
    def lattice_pm_err(self) -> np.ndarray:
        """One-sigma uncertainty of :attr:`lattice_pm` (from g refinement only)."""
        return self.cell_err_px * self._px_pm()

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
        }
        if self.pixel_size_pm is not None:
            d["lattice_pm"] = self.lattice_pm.tolist()
            d["lattice_pm_err"] = self.lattice_pm_err.tolist()
        return d


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
        Only frequencies 1/max_period < |k| < 1/min_period are searched
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


def _choose_basis(k: np.ndarray, snr: np.ndarray, gmin: float, gmax: float) -> tuple[np.ndarray, np.ndarray]:
    """Largest reciprocal cell among reflection pairs that indexes the reflections."""
    norm = np.linalg.norm(k, axis=1)
    scoring = norm >= 0.9 * gmin
    ks = k[scoring]
    wts = snr[scoring]
    cand = np.flatnonzero((norm >= gmin) & (norm <= gmax))
    if len(ks) < 4 or len(cand) < 2:
        raise FitError(
            f"no lattice found: {len(k)} reflection(s) detected, {len(cand)} with a period in the "
            "searched lattice range; the image shows no crystal lattice"
        )
    # the 10 shortest and the 12 strongest reflections in range
    cand = np.union1d(cand[np.argsort(norm[cand])][:10], cand[np.argsort(-snr[cand])][:12])
    best = []
    for i, j in itertools.combinations(cand, 2):
        g = np.stack([k[i], k[j]])
        det = abs(np.linalg.det(g))
        if det < 0.3 * norm[i] * norm[j]:  # nearly collinear (angle < ~17 deg)
            continue
        hk = ks @ np.linalg.inv(g)
        ok = (np.abs(hk - np.round(hk)).max(axis=1) < _INDEX_TOL) & (np.abs(hk).max(axis=1) <= 8.5)
        best.append((float(wts[ok].sum() / wts.sum()), det, g))
    if not best:
        raise FitError("no lattice found: no two non-collinear reflections")
    top = max(b[0] for b in best)
    if top < 0.5:
        raise FitError(f"no lattice found: the best basis indexes only {top:.0%} of the reflections")
    score, _, g = max((b for b in best if b[0] >= 0.9 * top), key=lambda b: b[1])
    # Lagrange-Gauss reduction
    g1, g2 = g[0].copy(), g[1].copy()
    for _ in range(20):
        if g1 @ g1 > g2 @ g2:
            g1, g2 = g2, g1
        m = round(float(g1 @ g2) / float(g1 @ g1))
        if m == 0:
            break
        g2 = g2 - m * g1
    basis = _orient(g1, g2)
    # a square cell whose unindexed reflections sit at (1/2, 1/2) positions is the
    # centred (110) cell of the perovskite: (100) reflections weak, or split by a
    # Ruddlesden-Popper fault (which shifts their phase by pi). Use the primitive cell.
    hk_all = k @ np.linalg.inv(basis)
    frac = hk_all - np.floor(hk_all)
    centring = (np.abs(frac - 0.5) < 0.25).all(axis=1)
    ratio = np.linalg.norm(basis[0]) / np.linalg.norm(basis[1])
    cosang = basis[0] @ basis[1] / (np.linalg.norm(basis[0]) * np.linalg.norm(basis[1]))
    prim = 0.5 * np.stack([basis[0] + basis[1], basis[0] - basis[1]])
    if (
        centring.sum() >= 4
        and 0.9 < ratio < 1.1
        and abs(cosang) < 0.17
        and np.linalg.norm(prim, axis=1).min() >= 0.9 * gmin
    ):
        basis = _orient(prim[0], prim[1])
    hk_all = k @ np.linalg.inv(basis)
    okall = np.abs(hk_all - np.round(hk_all)).max(axis=1) < _INDEX_TOL
    hk_idx = np.where(okall[:, None], np.round(hk_all), -999).astype(int)
    return basis, hk_idx


def _orient(g1: np.ndarray, g2: np.ndarray) -> np.ndarray:
    """Basis rows (g along +x, g along +y); components are (y, x)."""
    pairs = [(g1, g2), (-g1, g2), (g2, g1), (-g2, g1)]
    g_x, other = max(pairs, key=lambda pr: pr[0][1] / np.linalg.norm(pr[0]))
    g_y = other if other[0] >= 0 else -other
    return np.stack([g_x, g_y])


def _refine_basis(
    arr: np.ndarray, basis: np.ndarray, region: np.ndarray, radius: float, mask: str, spec: _Spectrum,
    max_iter: int = 12,
) -> tuple[np.ndarray, np.ndarray]:
    """Refine (g1, g2) from the (1,1) and (1,-1) lock-ins (unaffected by RP shifts).

    Iterated until g moves by less than a tenth of its uncertainty: a start far off
    (a short image side resolves the spectrum coarsely) takes several rounds, as the
    amplitude weighting of the mean phase gradient depends on g.
    """
    p, q = basis[0] + basis[1], basis[0] - basis[1]
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
    err = 0.5 * np.sqrt(ep**2 + eq**2)
    return np.stack([0.5 * (p + q), 0.5 * (p - q)]), np.stack([err, err])


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


def _primitive_if_centred(
    spec: _Spectrum, basis: np.ndarray, hk: np.ndarray, k: np.ndarray, gmin: float, mask: str, min_ratio: float
) -> tuple[np.ndarray, np.ndarray]:
    """The primitive cell (g1 +- g2)/2 if the square cell ``basis`` is centred.

    Where Ruddlesden-Popper faults split the (100) reflections into weak lobes, the
    reflection search can settle on the centred cell of the (110) and (1-10)
    reflections (edge a/sqrt 2). The split lobes still carry the (100) power within
    a mask of radius |g|/4 = R, so the mean power at the (1/2, +-1/2) positions is
    compared with the mean at 2R beside them along x and y (the local background,
    including leakage streaks of strong reflections that run along the image axes).
    """
    norms = np.linalg.norm(basis, axis=1)
    cosang = basis[0] @ basis[1] / (norms[0] * norms[1])
    half = np.stack([(basis[0] + basis[1]) / 2, (basis[0] - basis[1]) / 2])
    if not (0.9 < norms[0] / norms[1] < 1.1 and abs(cosang) < 0.17) or np.linalg.norm(half, axis=1).min() < 0.9 * gmin:
        return basis, hk
    radius = 0.25 * float(np.linalg.norm(half, axis=1).min())
    # local background 2R beside each half position along both image axes: streaks of
    # strong reflections (lattice not periodic across the border) run along the axes
    # and cross some half positions, so distant controls would see less leakage
    steps = 2 * radius * np.array([[1, 0], [-1, 0], [0, 1], [0, -1]])
    signal = np.mean([_band_power(spec, g, radius, mask) for g in half])
    background = np.mean([_band_power(spec, g + d, radius, mask) for g in half for d in steps])
    if signal < min_ratio * max(background, 1e-300):
        return basis, hk
    prim = _orient(half[0], half[1])
    hk_all = k @ np.linalg.inv(prim)
    ok = np.abs(hk_all - np.round(hk_all)).max(axis=1) < _INDEX_TOL
    return prim, np.where(ok[:, None], np.round(hk_all), -999).astype(int)


def find_lattice(
    image: Any,
    *,
    lattice_pm_range: tuple[float, float] | None = PEROVSKITE_LATTICE_PM,
    min_snr: float = 8.0,
    require_pseudocubic: bool = True,
    refine: bool = True,
    reference: Any = None,
    mask: str = "gaussian",
    mask_radius_per_px: float | None = None,
    min_half_power_ratio: float | None = 9.0,
) -> Lattice:
    """Detect, index and refine the (pseudo-cubic) lattice of an image.

    Parameters
    ----------
    image : DataArray or ndarray, shape (ny, nx)
        Calibrated image (DataArray) or bare array (then give
        ``lattice_pm_range=None`` or the range is meaningless).
    lattice_pm_range : (float, float) or None
        Cell edge range searched (pm); default the perovskite range 350-700 pm.
        None: any period between 2.5 px and a quarter of the image.
    min_snr : float
        Detection threshold of reflections (see :func:`detect_reflections`).
    require_pseudocubic : bool
        Raise :class:`FitError` unless |a1|/|a2| < 1.15 (PbTiO3 c/a is 1.06;
        a [110] zone gives 1.41) and the cell angle is within 10 deg of 90 deg.
    refine : bool
        Refine g1, g2 on the reference region by GPA (iterated to convergence).
    reference : tuple of slices or bool ndarray, optional
        Reference region; default the image minus a border of ~1/R px (that
        border, at most a quarter of the image, is excluded from any region).
    mask, mask_radius_per_px :
        GPA mask for the refinement (default R = |g|/4).
    min_half_power_ratio : float or None
        Centred-cell test (module docstring): a square cell is replaced by the
        primitive cell (g1 +- g2)/2 when the lock-in power at its (1/2, +-1/2)
        positions exceeds that at (1/2, 0), (0, 1/2) this many times (default 9,
        an amplitude ratio of 3). None skips the test.

    Returns
    -------
    Lattice

    Raises
    ------
    FitError
        "no lattice found" (pure noise, amorphous) or a non-pseudo-cubic lattice.
    """
    arr, px_pm = _as_image(image)
    min_period, max_period = 2.5, None
    if lattice_pm_range is not None:
        if px_pm is None:
            raise InputError("lattice_pm_range needs a calibrated image (DataArray with pixel_size_pm)")
        lo, hi = sorted(float(v) for v in lattice_pm_range)
        max_period = 1.25 * hi / px_pm
        gmin, gmax = px_pm / (1.1 * hi), px_pm / (0.9 * lo)
    else:
        gmin, gmax = 4.0 / min(arr.shape), 1.0 / 2.5
    if max_period is not None and max_period > min(arr.shape) / 2:
        raise InputError(
            f"image of {arr.shape} px is too small for a lattice up to {lattice_pm_range[1]} pm at {px_pm} pm/px"  # type: ignore[index]
        )
    k, snr = detect_reflections(arr, min_snr=min_snr, min_period_px=min_period, max_period_px=max_period)
    if len(k) == 0:
        raise FitError(f"no lattice found: no reflection above SNR {min_snr} in the power spectrum")
    basis, hk = _choose_basis(k, snr, gmin, gmax)
    spec = _Spectrum.of(arr)
    if min_half_power_ratio is not None:
        basis, hk = _primitive_if_centred(spec, basis, hk, k, gmin, mask, float(min_half_power_ratio))
    err = np.zeros((2, 2))
    if refine:
        radius = mask_radius_per_px or _default_mask_radius(basis)
        region = _reference_mask(reference, arr.shape, radius)
        basis, err = _refine_basis(arr, basis, region, radius, mask, spec)
    lat = Lattice(basis, err, px_pm, k, hk, snr)
    if require_pseudocubic:
        c = lat.cell_px
        ratio = c.max() / c.min()
        if ratio > 1.15 or abs(lat.angle_deg - 90) > 10:
            raise FitError(
                f"lattice found is not pseudo-cubic: |a1|/|a2| = {ratio:.3f}, angle {lat.angle_deg:.1f} deg "
                "(expected a [100]-projected perovskite; pass require_pseudocubic=False to accept)"
            )
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
        Cell edge(s) that have the known spacing: the mean of |a1| and |a2|, or
        only the one nearest x (|a1|) or y (|a2|), e.g. the in-plane lattice of
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
        Mask radius R (one of the two); default |g1|/4.
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
    basis, err = _refine_basis(arr, lattice.g_per_px.copy(), region, radius, mask, spec)
    lattice = Lattice(basis, err, px_pm, lattice.reflections_per_px, lattice.reflections_hk, lattice.reflections_snr)
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

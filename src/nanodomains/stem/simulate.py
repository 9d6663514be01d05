r"""Fast incoherent Z-contrast (ADF-STEM) images of nanocrystal models, with ground truth.

Physics
-------
Incoherent imaging model [1]_: the ADF signal at probe position **r** (fraction of the
incident electrons reaching the detector) is the probe intensity convolved with an
object function made of one scattering cross-section per projected atom column,

.. math::  F(\mathbf r) = \sum_c \sigma_c \, P(\mathbf r - \mathbf r_c) + F_\mathrm{bg}(\mathbf r),
           \qquad \int P \, dA = 1 ,

so :math:`\sigma_c` (in A^2) is the probe-integrated column cross-section, the
quantity Voronoi-cell integration of an image measures (E et al. [2]_).

Column cross-section (:class:`ColumnModel`). Each atom of atomic number Z scatters
:math:`\sigma_{50} (Z/50)^n` (the Z^n power law of PHYSICS.md, "Z-contrast of
[100]-projected CsPbX3"; n ~ 1.6-2.0 by detector angles, ~1.7 for HAADF). The linear
sum over a column, :math:`\sigma_\mathrm{lin} = \sum_i \sigma_{50}(Z_i/50)^n`, gets two
optional *thickness / channelling corrections*:

* a saturation :math:`\sigma_c = S \, (1 - e^{-\sigma_\mathrm{lin}/S})`, the sublinear
  growth of ADF column intensity with thickness (Van Aert et al. [3]_; E et al. [2]_);
* a thickness-dependent spread: the column's signal is convolved with a Gaussian of
  FWHM :math:`\beta t` (t the column thickness), standing for the lateral spreading of
  the channelled probe that makes columns of thick crystals pick up signal from their
  neighbours (cross-talk, E et al. [2]_). It moves intensity between the a/2 Voronoi
  squares of neighbouring columns and leaves cross-sections unchanged.

Defaults: n = 1.7, ``sigma50_a2 = 4.55e-3`` A^2, no saturation, no spread: the pure
power law, which the power-law composition table uses too, so images and table agree.
sigma_50 is the fit of the n = 1.7 power law to the abTEM frozen-phonon multislice
table shipped in :mod:`nanodomains.stem.tables` (70-190 mrad, 5-15 nm thick). The fit
with the spread, :data:`nanodomains.stem.tables.MULTISLICE_COLUMN_MODEL` (n = 2.23,
beta = 15.4 pm/nm), reproduces that table to 7.5 % rms against 12.6 % for the pure
power law.

Probe. Coherent aberration function (Kirkland [4]_, eq. 3.42, underfocus positive):

.. math::  \chi(k) = \pi \lambda k^2 \left(\tfrac12 C_s \lambda^2 k^2 - \Delta f\right),
           \qquad \psi(\mathbf r) = \mathcal F^{-1}[A(k)\, e^{-i\chi(k)}],

A a circular aperture of semi-angle alpha (soft edge of one reciprocal pixel), with
the relativistic wavelength :math:`\lambda = h/\sqrt{2 m_0 e V (1 + eV/2m_0c^2)}`
(scipy.constants). The intensity :math:`|\psi|^2` is computed by FFT on the image
grid and blurred by a Gaussian effective source (FWHM ``source_fwhm_pm``); its
transfer function is band-limited to :math:`2\alpha/\lambda`, so the grid is
internally oversampled by an integer factor when the pixel is coarser than
:math:`\lambda/4\alpha` and the output is the point-sampled scan.
Typical effective source sizes of aberration-corrected instruments are a few tens of
pm (Dwyer et al. [5]_; unchecked): default 40 pm FWHM.

Rendering. Column weights are splatted bilinearly onto the grid (integral and
centroid exact) and convolved with P through ``scipy.fft``; the bilinear kernel's
transfer function sinc^2 is divided out (gridding de-apodisation).

Amorphous support. A carbon film of thickness ``support_nm`` (default 3 nm, density
2.0 g/cm^3, i.e. 0.100 atoms/A^3) is random carbon atoms of cross-section
:math:`\sigma_{50}(6/50)^n` each, rendered through the same probe: a textured
background whose mean is exact.

Detector and noise. For a dose D (e/A^2) a pixel of area A_px receives D A_px
electrons; the detected count is Poisson with mean :math:`D A_\mathrm{px} F`, then
``signal = gain * counts + offset + N(0, read_noise)``.

Scan distortions. The fast scan runs along x. Each line i is displaced along x by a
random jitter :math:`\delta_i \sim N(0, \sigma_j)`; slow drift moves the probe by
``drift_pm_per_line`` (vx, vy) per line, linearly in time within the line. The
signal of pixel (i, j) is F at the displaced probe position (cubic spline
interpolation of the band-limited F). Specimen rotation ``rotation_deg`` turns the
column positions counter-clockwise (from +x towards +y) about the NC centre before
rendering.

Image frame. Beam along the crystal axis ``direction`` (default [100]); image axes as
in :func:`nanodomains.structure.project_columns` (beam along x: image x = crystal y,
image y = crystal z). Pixel (i, j) is at ``(y, x) = (i h, j h)``: the origin is the
first pixel centre, and the NC centre sits at the field-of-view centre.

References
----------
.. [1] P. D. Nellist, S. J. Pennycook, "The principles and interpretation of annular
   dark-field Z-contrast imaging", Adv. Imaging Electron Phys. 113, 147 (2000).
.. [2] H. E, K. E. MacArthur, T. J. Pennycook, E. Okunishi, A. J. D'Alfonso,
   N. R. Lugg, L. J. Allen, P. D. Nellist, "Probe integrated scattering cross
   sections in the analysis of atomic resolution HAADF STEM images",
   Ultramicroscopy 133, 109 (2013) (unchecked).
.. [3] S. Van Aert, A. De Backer, G. T. Martinez, B. Goris, S. Bals, G. Van
   Tendeloo, A. Rosenauer, "Procedure to count atoms with trustworthy single-atom
   sensitivity", Phys. Rev. B 87, 064107 (2013) (unchecked).
.. [4] E. J. Kirkland, *Advanced Computing in Electron Microscopy*, 2nd ed.,
   Springer (2010), ch. 3 and 5.
.. [5] C. Dwyer, R. Erni, J. Etheridge, "Method to measure spatial coherence of
   subangstrom electron beams", Appl. Phys. Lett. 93, 021115 (2008) (unchecked).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.fft as sfft
import xarray as xr
from scipy import constants, ndimage

from nanodomains import seeds
from nanodomains.errors import InputError, require_finite, require_positive
from nanodomains.files import to_jsonable
from nanodomains.records import StemBoundary, StemComposition, StemDomain, StemDomains, StemLattice, measured
from nanodomains.stem.io import decode_array, encode_array, load_netcdf, save_netcdf
from nanodomains.stem.truth import (
    TRUTH_SCHEMA,
    load_truth,
    truth_record,
    truth_sidecar_path,
    write_truth,
)
from nanodomains.stem.probe import (
    ADF_DETECTOR_MRAD,
    ATOMIC_NUMBER,
    FFT_WORKERS,
    ColumnModel,
    ProbeParameters,
    gaussian_transfer,
    max_pixel_pm,
    probe_intensity,
    probe_transfer,
    wavelength_pm,
)

__all__ = [
    "ProbeParameters",
    "ColumnModel",
    "ScanDistortion",
    "SupportFilm",
    "SimulatedImage",
    "wavelength_pm",
    "max_pixel_pm",
    "probe_intensity",
    "probe_transfer",
    "render_fraction",
    "scan_fraction",
    "check_pixel",
    "check_adf_detector",
    "image_attrs",
    "build_truth",
    "detector_counts",
    "image_frame",
    "simulate_image",
    "truth_sidecar_path",
    "write_simulation",
    "write_truth",
    "load_truth",
    "truth_record",
    "TRUTH_SCHEMA",
    "encode_array",
    "decode_array",
    "save_netcdf",
    "load_netcdf",
]

#: number density of amorphous carbon at 2.0 g/cm^3, atoms per A^3
CARBON_DENSITY_A3 = 2.0 / (12.011 * constants.atomic_mass * 1e3) * 1e-24


# ---------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class ScanDistortion:
    """Scan distortions: per-line jitter along the fast (x) axis and slow linear drift.

    Parameters
    ----------
    line_jitter_pm : float
        Standard deviation of the random x offset of each scan line.
    drift_pm_per_line : (float, float)
        Drift (vx, vy) of the probe relative to the specimen per scan line.
    """

    line_jitter_pm: float = 0.0
    drift_pm_per_line: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self):
        if not math.isfinite(self.line_jitter_pm) or self.line_jitter_pm < 0:
            raise InputError(f"line_jitter_pm must be finite and >= 0, got {self.line_jitter_pm!r}")
        if len(self.drift_pm_per_line) != 2 or not all(math.isfinite(v) for v in self.drift_pm_per_line):
            raise InputError(f"drift_pm_per_line must be two finite numbers, got {self.drift_pm_per_line!r}")

    @property
    def active(self) -> bool:
        return self.line_jitter_pm > 0 or any(v != 0 for v in self.drift_pm_per_line)


@dataclass(frozen=True)
class SupportFilm:
    """Amorphous carbon support film under the NC.

    Parameters
    ----------
    thickness_nm : float
        Film thickness (default 3 nm, an ultrathin carbon grid); 0 for none.
    density_atoms_a3 : float
        Carbon number density (default 0.100 / A^3 = 2.0 g/cm^3).
    """

    thickness_nm: float = 3.0
    density_atoms_a3: float = CARBON_DENSITY_A3

    def __post_init__(self):
        if not math.isfinite(self.thickness_nm) or self.thickness_nm < 0:
            raise InputError(f"support thickness_nm must be finite and >= 0, got {self.thickness_nm!r}")
        require_positive("support density_atoms_a3", self.density_atoms_a3)


class SimulatedImage(NamedTuple):
    """An image (``xarray.DataArray`` in detector units, nm coords) and its truth dict."""

    image: xr.DataArray
    truth: dict


# ---------------------------------------------------------------------------- rendering


def _splat(x_px: np.ndarray, y_px: np.ndarray, w: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear (cloud-in-cell) deposit of weights at fractional pixel positions, periodic."""
    ny, nx = shape
    x0 = np.floor(x_px)
    y0 = np.floor(y_px)
    fx = x_px - x0
    fy = y_px - y0
    ix = x0.astype(np.int64) % nx
    iy = y0.astype(np.int64) % ny
    ix1 = (ix + 1) % nx
    iy1 = (iy + 1) % ny
    idx = np.concatenate([iy * nx + ix, iy * nx + ix1, iy1 * nx + ix, iy1 * nx + ix1])
    wt = np.concatenate([w * (1 - fx) * (1 - fy), w * fx * (1 - fy), w * (1 - fx) * fy, w * fx * fy])
    return np.bincount(idx, weights=wt, minlength=ny * nx).reshape(ny, nx)


def _deapodise(shape: tuple[int, int]) -> np.ndarray:
    """1 / transfer function of the bilinear splat kernel on the rfft grid."""
    fy = np.sinc(sfft.fftfreq(shape[0])) ** 2
    fx = np.sinc(sfft.rfftfreq(shape[1])) ** 2
    return 1.0 / (fy[:, None] * fx[None, :])


def render_fraction(x_nm, y_nm, weight_a2, shape: tuple[int, int], pixel_size_pm: float,
                    probe: ProbeParameters = ProbeParameters(), transfer: np.ndarray | None = None,
                    blur_fwhm_pm=None) -> np.ndarray:
    """Detected fraction ``F(r) = sum_c w_c (P * G_c)(r - r_c)`` on a regular grid (no noise).

    Parameters
    ----------
    x_nm, y_nm : array_like
        Point positions in the grid frame (pixel (i, j) at (y, x) = (i h, j h)).
    weight_a2 : array_like
        Cross-section of each point, A^2.
    shape : (int, int)
        Grid (ny, nx); points are wrapped periodically (keep a margin).
    pixel_size_pm : float
    probe : ProbeParameters
    transfer : numpy.ndarray, optional
        Precomputed :func:`probe_transfer` for this grid.
    blur_fwhm_pm : array_like, optional
        Per-point FWHM of an extra Gaussian G_c (e.g. the column model's thickness
        spread); points are grouped by value rounded to 1 pm, one FFT per group.

    Returns
    -------
    numpy.ndarray
        F, dimensionless, float64; ``F.sum() * A_px == sum(weight_a2)``.
    """
    h_nm = pixel_size_pm * 1e-3
    x = np.asarray(x_nm, float) / h_nm
    y = np.asarray(y_nm, float) / h_nm
    w = np.asarray(weight_a2, float)
    if transfer is None:
        transfer = probe_transfer(shape, pixel_size_pm, probe)
    if blur_fwhm_pm is None:
        spec = sfft.rfft2(_splat(x, y, w, shape), workers=FFT_WORKERS)
    else:
        blur = np.round(np.broadcast_to(np.asarray(blur_fwhm_pm, float), w.shape))
        spec = None
        for value in np.unique(blur):
            g = blur == value
            part = sfft.rfft2(_splat(x[g], y[g], w[g], shape), workers=FFT_WORKERS)
            if value > 0:
                part *= gaussian_transfer(shape, pixel_size_pm, value)
            spec = part if spec is None else spec + part
    spec *= transfer
    spec *= _deapodise(shape)
    return sfft.irfft2(spec, s=shape, workers=FFT_WORKERS)


def detector_counts(fraction: np.ndarray, dose_e_per_a2: float, pixel_size_pm: float,
                    rng: np.random.Generator, gain: float = 1.0, offset: float = 0.0,
                    read_noise: float = 0.0) -> np.ndarray:
    """Noisy detector signal: ``gain * Poisson(D A_px F) + offset + N(0, read_noise)``.

    Parameters
    ----------
    fraction : numpy.ndarray
        Detected fraction F of the incident electrons at each probe position (>= 0).
    dose_e_per_a2 : float
        Electron dose, e/A^2 (> 0).
    pixel_size_pm : float
        Scan step; each pixel receives ``dose * A_px`` electrons.
    rng : numpy.random.Generator
    gain, offset, read_noise : float
        Detector gain (units per electron, > 0), offset and Gaussian read noise (>= 0).
    """
    dose = require_positive("dose_e_per_a2", dose_e_per_a2)
    require_positive("gain", gain)
    require_finite("offset", offset)
    if not math.isfinite(read_noise) or read_noise < 0:
        raise InputError(f"read_noise must be finite and >= 0, got {read_noise!r}")
    electrons = dose * (pixel_size_pm / 100.0) ** 2
    lam = np.clip(fraction, 0.0, None) * electrons
    out = rng.poisson(lam).astype(np.float64)
    if gain != 1.0:
        out *= gain
    if offset:
        out += offset
    if read_noise > 0:
        out += rng.normal(0.0, read_noise, size=out.shape)
    return out


def _guard_px(pixel_size_pm: float, scan: ScanDistortion, ny: int) -> int:
    """Guard band (px) around the field of view: probe tails (1 nm) plus the scan distortions' reach."""
    reach_pm = 1000.0 + 4 * scan.line_jitter_pm + (abs(scan.drift_pm_per_line[0])
                                                   + abs(scan.drift_pm_per_line[1])) * (ny + 1)
    return int(math.ceil(reach_pm / pixel_size_pm)) + 2


def _support_atoms(shape: tuple[int, int], pixel_size_pm: float, support: SupportFilm,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random carbon atom positions (nm) of the support film over the field of view plus 1 nm."""
    h_nm = pixel_size_pm * 1e-3
    lo = -1.0
    wx, wy = shape[1] * h_nm + 2.0, shape[0] * h_nm + 2.0
    n_c = rng.poisson(support.density_atoms_a3 * support.thickness_nm * 10.0 * (wx * wy * 100.0))
    return rng.uniform(lo, lo + wx, n_c), rng.uniform(lo, lo + wy, n_c)


def scan_fraction(x_nm, y_nm, weight_a2, shape: tuple[int, int], pixel_size_pm: float,
                  probe: ProbeParameters, scan: ScanDistortion, rng: np.random.Generator,
                  blur_fwhm_pm=None) -> tuple[np.ndarray, np.ndarray]:
    """Scanned, noise-free detected fraction at the output pixels, with scan distortions.

    Renders on an internal grid oversampled by ``m = ceil(h / (lambda / 4 alpha))``
    with a guard band (so nothing wraps around), then point-samples it at the probe
    positions: the pixel centres, displaced by the line jitter and drift (cubic spline
    interpolation when distorted). ``blur_fwhm_pm`` (per point) is passed to
    :func:`render_fraction`.

    Returns
    -------
    fraction : numpy.ndarray
        Shape ``shape``.
    jitter_pm : numpy.ndarray
        The x offset drawn for each scan line (zeros without jitter).
    """
    ny, nx = shape
    h = float(pixel_size_pm)
    m = max(1, int(math.ceil(h / max_pixel_pm(probe) - 1e-9)))
    g = _guard_px(h, scan, ny)
    gshape = (sfft.next_fast_len((ny + 2 * g) * m, real=True), sfft.next_fast_len((nx + 2 * g) * m, real=True))
    h_nm = h * 1e-3
    x = np.asarray(x_nm, float) + g * h_nm
    y = np.asarray(y_nm, float) + g * h_nm
    keep = (x >= 0) & (x < (gshape[1] - 1) * h_nm / m) & (y >= 0) & (y < (gshape[0] - 1) * h_nm / m)
    blur = None if blur_fwhm_pm is None else np.broadcast_to(np.asarray(blur_fwhm_pm, float), x.shape)[keep]
    frac = render_fraction(x[keep], y[keep], np.asarray(weight_a2, float)[keep], gshape, h / m, probe,
                           blur_fwhm_pm=blur)
    jitter = rng.normal(0.0, scan.line_jitter_pm, ny) if scan.line_jitter_pm > 0 else np.zeros(ny)
    if not scan.active:
        return frac[g * m:(g + ny) * m:m, g * m:(g + nx) * m:m].copy(), jitter
    vx, vy = scan.drift_pm_per_line
    t_lines = np.arange(ny)[:, None] + np.arange(nx)[None, :] / nx  # time in scan lines
    xs = (np.arange(nx)[None, :] + g + (jitter[:, None] + vx * t_lines) / h) * m
    ys = (np.arange(ny)[:, None] + g + (vy * t_lines) / h) * m
    img = ndimage.map_coordinates(frac, [ys.ravel(), xs.ravel()], order=3, mode="nearest")
    return img.reshape(ny, nx), jitter


# ---------------------------------------------------------------------------- geometry and truth


def check_pixel(pixel_size_pm: float, lattice_min_pm: float) -> float:
    """``pixel_size_pm`` if it resolves the four [100] columns per cell (at most a/4), else InputError.

    Examples
    --------
    >>> check_pixel(20.0, 600.0)
    20.0
    """
    px = require_positive("pixel_size_pm", pixel_size_pm)
    if px > lattice_min_pm / 4:
        raise InputError(
            f"pixel_size_pm {px:g} is larger than a quarter of the smallest lattice spacing "
            f"({lattice_min_pm:.1f} pm / 4 = {lattice_min_pm / 4:.1f} pm): the four [100] columns "
            "per cell would not be resolved; use a smaller pixel")
    return px


def image_frame(columns, pixel_size_pm: float, shape: int | tuple[int, int] | None = None,
                rotation_deg: float = 0.0, margin_nm: float = 1.5):
    """Place projected columns in the image frame.

    Parameters
    ----------
    columns : pandas.DataFrame
        From :func:`nanodomains.structure.project_columns`.
    pixel_size_pm : float
    shape : int or (int, int), optional
        Image (ny, nx); default: the rotated NC plus ``margin_nm`` on each side.
    rotation_deg : float
        Counter-clockwise rotation of the specimen about its centre.
    margin_nm : float

    Returns
    -------
    x_nm, y_nm : numpy.ndarray
        Column positions in the image frame.
    shape : (int, int)
    transform : dict
        ``centre_nm`` (NC centre in the model's projected frame), ``fov_centre_nm``
        and ``rotation_deg``, so that
        ``r_image = R (r_model - centre) + fov_centre``.
    """
    h_nm = pixel_size_pm * 1e-3
    x = columns["x_nm"].to_numpy(float)
    y = columns["y_nm"].to_numpy(float)
    rot = require_finite("rotation_deg", rotation_deg)
    cx, cy = (x.min() + x.max()) / 2, (y.min() + y.max()) / 2
    c, s = math.cos(math.radians(rot)), math.sin(math.radians(rot))
    xr_, yr_ = c * (x - cx) - s * (y - cy), s * (x - cx) + c * (y - cy)
    if shape is None:
        half_w = np.abs(xr_).max() + margin_nm
        half_h = np.abs(yr_).max() + margin_nm
        shape = (int(math.ceil(2 * half_h / h_nm)), int(math.ceil(2 * half_w / h_nm)))
    elif isinstance(shape, int | np.integer):
        shape = (int(shape), int(shape))
    shape = (int(shape[0]), int(shape[1]))
    if min(shape) < 8 or max(shape) > 16384:
        raise InputError(f"image shape must lie between 8 and 16384 px per side, got {shape}")
    fov = ((shape[1] - 1) * h_nm / 2, (shape[0] - 1) * h_nm / 2)
    transform = {"centre_nm": [float(cx), float(cy)], "fov_centre_nm": [float(fov[0]), float(fov[1])],
                 "rotation_deg": rot}
    return xr_ + fov[0], yr_ + fov[1], shape, transform


def _to_image(transform: dict, x, y):
    """Map model-frame projected coordinates to the image frame (see :func:`image_frame`)."""
    cx, cy = transform["centre_nm"]
    fx, fy = transform["fov_centre_nm"]
    r = math.radians(transform["rotation_deg"])
    c, s = math.cos(r), math.sin(r)
    x = np.asarray(x, float) - cx
    y = np.asarray(y, float) - cy
    return c * x - s * y + fx, s * x + c * y + fy


def _label_map(x_nm, y_nm, labels, shape, pixel_size_pm, lattice_pm) -> np.ndarray:
    """Majority-domain label of each pixel: the label of the nearest column, -1 outside the NC.

    A pixel belongs to the NC when it lies within a/(2 sqrt 2) of a column (the
    corner distance of the a/2-square Voronoi cell of the [100] column lattice).
    Nearest columns come from a Euclidean distance transform of the column positions
    rounded to pixels (half a pixel of precision).
    """
    h_nm = pixel_size_pm * 1e-3
    iy = np.round(np.asarray(y_nm) / h_nm).astype(np.int64)
    ix = np.round(np.asarray(x_nm) / h_nm).astype(np.int64)
    ok = (iy >= 0) & (iy < shape[0]) & (ix >= 0) & (ix < shape[1])
    out = np.full(shape, -1, dtype=np.int16)
    if not ok.any():
        return out
    seeds = np.full(shape, -1, dtype=np.int64)
    seeds[iy[ok], ix[ok]] = np.flatnonzero(ok)
    dist, (ny_, nx_) = ndimage.distance_transform_edt(seeds < 0, return_indices=True)
    inside = dist * h_nm <= lattice_pm * 1e-3 / (2 * math.sqrt(2))
    nearest = seeds[ny_[inside], nx_[inside]]
    out[inside] = np.asarray(labels, np.int16)[nearest]
    return out


def _boundary_segments(nc, beam_axis: int, image_axes: tuple[int, int], transform: dict, label_map,
                       pixel_size_pm: float) -> list[dict]:
    """Every model boundary, with its image-frame line segment when edge-on.

    Entries: ``model_domains``, ``type``, ``normal`` (axis), ``plane_nm``, ``edge_on``;
    edge-on ones also ``domains`` (image labels either side), ``length_nm`` and
    ``segment_nm`` [[x0, y0], [x1, y1]].
    """
    out = []
    for b in nc.boundaries:
        axis = int(np.argmax(np.abs(b.normal)))
        entry = {"model_domains": [int(v) for v in b.domains], "type": b.type, "normal": "xyz"[axis],
                 "plane_nm": float(b.plane_nm), "edge_on": axis != beam_axis}
        if axis != beam_axis:
            entry.update(_edge_on_segment(nc, b, axis, image_axes, transform, label_map, pixel_size_pm))
        out.append(entry)
    return out


def _edge_on_segment(nc, b, axis: int, image_axes: tuple[int, int], transform: dict, label_map,
                     pixel_size_pm: float) -> dict:
    """Image-frame segment of an edge-on boundary and the image labels either side."""
    a_ref = nc.reference_lattice_pm
    edges = np.array(nc.edges_nm)
    scale = np.array([nc.domain_lattice_pm(d.id) for d in nc.domains]) / a_ref
    centre = np.array([np.clip(d.region.center_nm, 0, edges) for d in nc.domains])
    h_nm = pixel_size_pm * 1e-3
    i, j = b.domains
    other = image_axes[1] if axis == image_axes[0] else image_axes[0]
    ri, rj = nc.domains[i].region, nc.domains[j].region
    lo = max(ri.lo_nm[other], rj.lo_nm[other], 0.0)
    hi = min(ri.hi_nm[other], rj.hi_nm[other], edges[other])

    def expand(coord, ax, doms=(i, j)):  # Vegard expansion about each domain's centre
        return np.mean([centre[d, ax] + (coord - centre[d, ax]) * scale[d] for d in doms], axis=0)

    # terminating layers: at the cell boundary K, except that across an RP fault the
    # shifted side's last CsX layer lies half a cell into its own side (see
    # nanodomains.structure.atoms); the line is midway between the two layers
    low, high = (i, j) if ri.center_nm[axis] < rj.center_nm[axis] else (j, i)
    k_ref = b.plane_nm
    half = a_ref * 1e-3 / 2
    k_low = k_ref - (half if (b.type == "RP" and nc.domains[low].is_shifted) else 0.0)
    k_high = k_ref + (half if (b.type == "RP" and nc.domains[high].is_shifted) else 0.0)
    p_norm = 0.5 * (expand(k_low, axis, (low,)) + expand(k_high, axis, (high,)))
    ends = expand(np.array([lo, hi]), other)
    pts = np.zeros((2, 2))  # projected (u, v) of both ends
    for k in range(2):
        uv = {axis: p_norm, other: ends[k]}
        pts[k] = [uv[image_axes[0]], uv[image_axes[1]]]
    xs, ys = _to_image(transform, pts[:, 0], pts[:, 1])
    # image-domain labels either side, sampled at the midpoint +- a/4 along the normal
    mid = np.array([xs.mean(), ys.mean()])
    tangent = np.array([xs[1] - xs[0], ys[1] - ys[0]])
    length = float(np.hypot(*tangent))
    nrm = np.array([-tangent[1], tangent[0]]) / max(length, 1e-12)
    side = []
    for sgn in (-1, 1):
        px_ = mid + sgn * (a_ref * 1e-3 / 4) * nrm
        r_, c_ = int(round(px_[1] / h_nm)), int(round(px_[0] / h_nm))
        ok = 0 <= r_ < label_map.shape[0] and 0 <= c_ < label_map.shape[1]
        side.append(int(label_map[r_, c_]) if ok else -1)
    return {"domains": sorted(side), "length_nm": length,
            "segment_nm": [[float(xs[0]), float(ys[0])], [float(xs[1]), float(ys[1])]],
            "midpoint_nm": [float(mid[0]), float(mid[1])],
            "normal_xy": [float(v) for v in (nrm if side[0] <= side[1] else -nrm)]}


def _boundary_truth(model_boundaries: list[dict]) -> tuple[StemBoundary, ...]:
    """Edge-on boundaries between two image domains, as record items (model type "coherent" -> "other")."""
    out = []
    for b in model_boundaries:
        if not b["edge_on"] or min(b["domains"]) < 0 or b["domains"][0] == b["domains"][1]:
            continue
        # the record's types are those an image can tell: "RP" (half-cell shift) or "other"
        out.append(StemBoundary(domains=tuple(b["domains"]), type="RP" if b["type"] == "RP" else "other",
                                length_nm=b["length_nm"],
                                segment_nm=b["segment_nm"], midpoint_nm=b["midpoint_nm"], normal=b["normal_xy"],
                                model_domains=tuple(b["model_domains"])))
    return tuple(out)


#: the composition model named in the truth's domains
TRUTH_COMPOSITION = "simulation truth: the model domain's Br fraction; projected_br_fraction counts its X columns"


def _domain_truth(nc, cols, label_map, pixel_size_pm: float) -> tuple[StemDomain, ...]:
    """Per-domain projected truth as record items (standard errors 0).

    ``area_nm2`` and ``centroid_nm`` from the label map (the domain's visible part),
    ``shifted_fraction`` the mean over its cation columns (cell-weighted) of the
    fraction of cells in the 1/2<111> registry (model frame: ``registry`` +1 for the
    unshifted lattice, -1 for the shifted one), ``projected_br_fraction`` Br / (Br +
    I) of its X columns.
    """
    from nanodomains import materials

    h_nm = pixel_size_pm * 1e-3
    n_dom = max(d.id for d in nc.domains) + 1
    counts = np.bincount(label_map[label_map >= 0].ravel().astype(np.int64), minlength=n_dom)
    ii, jj = np.nonzero(label_map >= 0)
    lab = label_map[ii, jj].astype(np.int64)
    cy = np.bincount(lab, weights=ii * h_nm, minlength=n_dom)
    cx = np.bincount(lab, weights=jj * h_nm, minlength=n_dom)
    dom = cols["domain"].to_numpy()
    cation = cols["site"].to_numpy() != "X"
    n_br = cols["n_br"].to_numpy(float)
    n_x = n_br + cols["n_i"].to_numpy(float)
    s = cols["shifted_fraction"].to_numpy(float)
    ncell = cols["n_cells"].to_numpy(float)
    exact = lambda v: measured(v, 0.0)  # noqa: E731
    out = []
    for d in nc.domains:
        sel_c = cation & (dom == d.id)
        sel_x = ~cation & (dom == d.id)
        nx_sum = n_x[sel_x].sum()
        s_mean = float(np.average(s[sel_c], weights=ncell[sel_c])) if sel_c.any() else None
        a = nc.domain_lattice_pm(d.id)
        out.append(StemDomain(
            id=d.id, name=f"D{d.id}", formula=materials.format_formula(d.br_fraction),
            area_nm2=float(counts[d.id] * h_nm**2),
            centroid_nm=[cx[d.id] / counts[d.id], cy[d.id] / counts[d.id]] if counts[d.id] else [],
            lattice_pm=exact(a), lattice_a1_pm=exact(a), lattice_a2_pm=exact(a),
            br_fraction=exact(d.br_fraction), shifted_fraction=exact(s_mean),
            mixed_fraction=exact(None if s_mean is None else min(s_mean, 1 - s_mean)),
            projected_br_fraction=exact(n_br[sel_x].sum() / nx_sum if nx_sum > 0 else None),
            registry=-1 if d.is_shifted else 1, n_columns=int((dom == d.id).sum()), visible=bool(counts[d.id] > 0),
            model_domains=(d.id,), composition=StemComposition(model=TRUTH_COMPOSITION)))
    return tuple(out)


def _column_truth(cols, x_img, y_img, sigma, inside) -> dict:
    return {
        "x_nm": np.round(x_img, 5).tolist(), "y_nm": np.round(y_img, 5).tolist(),
        "type": cols["site"].tolist(), "domain": cols["domain"].astype(int).tolist(),
        "n_cs": cols["n_cs"].astype(int).tolist(), "n_pb": cols["n_pb"].astype(int).tolist(),
        "n_br": cols["n_br"].astype(int).tolist(), "n_i": cols["n_i"].astype(int).tolist(),
        "n_cells": cols["n_cells"].astype(int).tolist(),
        "shifted_fraction": np.round(cols["shifted_fraction"].to_numpy(float), 5).tolist(),
        "cross_section_a2": [float(v) if np.isfinite(v) else None for v in np.round(sigma, 8)],
        "in_field": inside.tolist(),
    }


def build_truth(nc, cols, x_img, y_img, weights, shape, pixel_size_pm, transform, *, kind: str,
                extra: dict | None = None) -> tuple[dict, np.ndarray]:
    """Truth sidecar dict shared by the STEM and EDS simulators; returns (truth, label map).

    ``truth["record"]`` is the projected truth as a
    :class:`~nanodomains.records.StemDomains` (``origin="truth"``, standard errors 0),
    the type :func:`nanodomains.stem.analyze.analyze_image` returns; beside it the
    truth-only geometry (see :func:`write_truth`).
    """
    from nanodomains.structure import parse_direction

    direction = cols.attrs.get("direction", "100")
    beam, axes = parse_direction(direction)
    h_nm = pixel_size_pm * 1e-3
    lattice_min = min(nc.domain_lattice_pm(d.id) for d in nc.domains)
    labels = _label_map(x_img, y_img, cols["domain"].to_numpy(), shape, pixel_size_pm, lattice_min)
    inside = (x_img >= 0) & (x_img <= (shape[1] - 1) * h_nm) & (y_img >= 0) & (y_img <= (shape[0] - 1) * h_nm)
    model_boundaries = _boundary_segments(nc, beam, axes, transform, labels, pixel_size_pm)
    a_ref = measured(nc.reference_lattice_pm, 0.0)
    r = math.radians(transform["rotation_deg"])
    record = StemDomains(
        origin="truth", source=f"nanodomains {kind} simulation", settings={"kind": kind},
        pixel_size_pm=float(pixel_size_pm), shape_px=(int(shape[0]), int(shape[1])),
        pixel_size_source="simulation",
        lattice=StemLattice(a1_pm=a_ref, a2_pm=a_ref, angle_deg=90.0,
                            basis_pm=nc.reference_lattice_pm * np.array([[math.sin(r), math.cos(r)],
                                                                         [math.cos(r), -math.sin(r)]]),
                            note="the model's reference lattice (Vegard value of the nominal formula)"),
        domains=_domain_truth(nc, cols, labels, pixel_size_pm), boundaries=_boundary_truth(model_boundaries))
    truth = {
        "schema": TRUTH_SCHEMA,
        "kind": kind,
        "record": record,
        "pixel_size_pm": float(pixel_size_pm),
        "shape": [int(shape[0]), int(shape[1])],
        "origin_nm": [0.0, 0.0],
        "frame": ("pixel (i, j) at (y, x) = (i, j) * pixel_size; coordinates [x, y] in nm; "
                  f"beam along crystal {'xyz'[beam]}, image x = crystal {'xyz'[axes[0]]}, "
                  f"image y = crystal {'xyz'[axes[1]]}, then rotated by rotation_deg about the NC centre"),
        "direction": str(direction),
        "transform": transform,
        "nc": json.loads(nc.to_json()),
        "model_boundaries": model_boundaries,
        "columns": _column_truth(cols, x_img, y_img, weights, inside),
        "label_map": encode_array(labels),
    }
    if extra:
        truth.update(extra)
    return truth, labels


# ---------------------------------------------------------------------------- simulator


def _prepare(nc, *, direction: str, seed: int, columns, atoms, pixel_size_pm: float):
    from nanodomains.structure import project_columns

    if columns is None:
        columns = project_columns(nc, direction=direction, seed=seed, atoms=atoms)
    lattice_min = min(nc.domain_lattice_pm(d.id) for d in nc.domains)
    check_pixel(pixel_size_pm, lattice_min)
    return columns


def simulate_image(nc, *, pixel_size_pm: float = 20.0, shape: int | tuple[int, int] | None = None,
                   dose_e_per_a2: float = 1e5, probe: ProbeParameters = ProbeParameters(),
                   column_model: ColumnModel = ColumnModel(), rotation_deg: float = 0.0,
                   scan: ScanDistortion = ScanDistortion(), support: SupportFilm = SupportFilm(),
                   detector_mrad: tuple[float, float] | None = None, gain: float = 1.0,
                   offset: float = 0.0, read_noise: float = 0.0, direction: str = "100",
                   seed: int = 1, columns=None, atoms=None, noise: bool = True) -> SimulatedImage:
    """Incoherent ADF-STEM image of an NC model with its truth (see module docstring).

    Parameters
    ----------
    nc : NanoCrystal
    pixel_size_pm : float
        Scan step (default 20 pm); at most a quarter of the smallest lattice constant.
    shape : int or (int, int), optional
        Image size in pixels (ny, nx); default fits the (rotated) NC with 1.5 nm margins.
    dose_e_per_a2 : float
        Electron dose (> 0).
    probe : ProbeParameters
    column_model : ColumnModel
    rotation_deg : float
        In-plane rotation of the specimen, counter-clockwise.
    scan : ScanDistortion
    support : SupportFilm
        Amorphous carbon background (``SupportFilm(0)`` for none).
    detector_mrad : (float, float), optional
        Inner and outer ADF angles; default ``probe.detector_mrad``, else
        :data:`~nanodomains.stem.probe.ADF_DETECTOR_MRAD` (70, 190). Recorded (the
        column model's exponent stands for them in the incoherent model); the inner
        angle must exceed the convergence semi-angle.
    gain, offset, read_noise : float
        Detector response (see :func:`detector_counts`).
    direction : {"100", "010", "001"}
        Zone axis.
    seed : int
        Seeds the halide occupancy (when ``columns``/``atoms`` are not given), the
        support film, the scan jitter and the noise.
    columns : pandas.DataFrame, optional
        Precomputed ``project_columns`` output (reused).
    atoms : ase.Atoms, optional
        Precomputed ``nc.to_atoms`` output (reused).
    noise : bool
        False returns the noise-free expected signal ``gain * D A_px F + offset``.

    Returns
    -------
    SimulatedImage
        ``image``: DataArray dims (y, x), coords in nm, detector units; ``truth``:
        dict (see :func:`write_truth`).
    """
    probe = probe.with_detector(check_adf_detector(detector_mrad or probe.detector_mrad or ADF_DETECTOR_MRAD,
                                                   probe))
    dose = require_positive("dose_e_per_a2", dose_e_per_a2)
    cols = _prepare(nc, direction=direction, seed=seed, columns=columns, atoms=atoms,
                    pixel_size_pm=pixel_size_pm)
    rng = seeds.rng(seed)
    x_img, y_img, shape, transform = image_frame(cols, pixel_size_pm, shape, rotation_deg)
    sigma = column_model.column(cols["n_cs"].to_numpy(), cols["n_pb"].to_numpy(),
                                cols["n_br"].to_numpy(), cols["n_i"].to_numpy())
    h = float(pixel_size_pm)
    sampled, jitter = _scan_columns_and_support(x_img, y_img, sigma, cols, shape, h, probe, column_model,
                                                scan, support, rng)
    if noise:
        data = detector_counts(sampled, dose, h, rng, gain, offset, read_noise)
    else:
        require_positive("gain", gain)
        data = gain * np.clip(sampled, 0, None) * dose * (h / 100.0) ** 2 + offset
    attrs = image_attrs(probe, dose, gain, offset, read_noise, rotation_deg, seed,
                        column_model, support, scan, method="incoherent")
    from nanodomains.stem.io import image_from_array

    da = image_from_array(data, h, title="nanodomains incoherent ADF-STEM simulation", **attrs)
    truth, _ = build_truth(nc, cols, x_img, y_img, sigma, shape, h, transform, kind="stem",
                           extra={"method": "incoherent", "seed": int(seed) if not isinstance(seed, np.random.Generator) else None,
                                  "simulation": to_jsonable(attrs),
                                  "scan_distortion": {"line_jitter_pm": np.round(jitter, 3).tolist(),
                                                      "drift_pm_per_line": list(scan.drift_pm_per_line)}})
    return SimulatedImage(da, truth)


def _scan_columns_and_support(x_img, y_img, sigma, cols, shape, pixel_size_pm, probe, column_model, scan,
                              support, rng) -> tuple[np.ndarray, np.ndarray]:
    """Scanned detected fraction of the columns plus the carbon support film (see :func:`scan_fraction`)."""
    blur = None
    if column_model.spread_pm_per_nm > 0:
        blur = column_model.spread_fwhm_pm(cols["thickness_nm"].to_numpy(float))
    if support.thickness_nm <= 0:
        return scan_fraction(x_img, y_img, sigma, shape, pixel_size_pm, probe, scan, rng, blur_fwhm_pm=blur)
    sx, sy = _support_atoms(shape, pixel_size_pm, support, rng)
    return scan_fraction(
        np.concatenate([x_img, sx]), np.concatenate([y_img, sy]),
        np.concatenate([sigma, np.full(len(sx), column_model.atom(ATOMIC_NUMBER["C"]))]),
        shape, pixel_size_pm, probe, scan, rng,
        blur_fwhm_pm=None if blur is None else np.concatenate([blur, np.zeros(len(sx))]))


def check_adf_detector(detector_mrad, probe: ProbeParameters) -> tuple[float, float]:
    """(inner, outer) ADF angles in mrad, checked: 0 <= inner < outer and inner > convergence semi-angle.

    Examples
    --------
    >>> check_adf_detector((70, 190), ProbeParameters())
    (70.0, 190.0)
    """
    inner, outer = probe.with_detector(detector_mrad).detector_mrad
    if inner <= probe.convergence_semiangle_mrad:
        raise InputError(
            f"ADF inner angle {inner:g} mrad must exceed the convergence semi-angle "
            f"{probe.convergence_semiangle_mrad:g} mrad for incoherent (dark-field) imaging")
    return inner, outer


def image_attrs(probe: ProbeParameters, dose, gain, offset, read_noise, rotation_deg, seed,
                column_model: ColumnModel | None, support: SupportFilm | None, scan: ScanDistortion | None,
                method: str) -> dict:
    """Attributes of a simulated image: probe and detector (:meth:`ProbeParameters.to_attrs`),
    dose, detector response, rotation, seed, column model, support film and scan distortions."""
    attrs = {"units": "detector counts", "method": method, **probe.to_attrs(),
             "dose_e_per_a2": dose, "gain": gain, "offset": offset, "read_noise": read_noise,
             "rotation_deg": float(rotation_deg),
             "seed": int(seed) if not isinstance(seed, np.random.Generator) else -1}
    if column_model is not None:
        attrs.update(column_model.to_attrs())
    if support is not None:
        attrs["support_carbon_nm"] = support.thickness_nm
    if scan is not None:
        attrs["line_jitter_pm"] = scan.line_jitter_pm
        attrs["drift_pm_per_line"] = list(scan.drift_pm_per_line)
    return attrs


# ---------------------------------------------------------------------------- files


def write_simulation(result: SimulatedImage, path: str | Path) -> tuple[Path, Path]:
    """Write the image (``.tif``, ``.nc`` or ``.hspy`` by extension) and ``<stem>.truth.json``."""
    from nanodomains.stem.io import save_image

    p = save_image(result.image, path)
    return p, write_truth(result.truth, truth_sidecar_path(p))

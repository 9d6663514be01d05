r"""Electron probe and column cross-section model: the physics core that the STEM
simulators (:mod:`nanodomains.stem.simulate`, :mod:`nanodomains.stem.multislice`) and
the analysis (:mod:`nanodomains.stem.tables`, :mod:`nanodomains.stem.composition`)
share, so that analysis never imports a simulator.

Column cross-section (:class:`ColumnModel`). Each atom of atomic number Z scatters
:math:`\sigma_{50} (Z/50)^n` (the Z^n power law of PHYSICS.md, "Z-contrast of
[100]-projected CsPbX3"; n ~ 1.6-2.0 by detector angles, ~1.7 for HAADF), with the
optional saturation and thickness-dependent spread described in
:mod:`nanodomains.stem.simulate`.

Probe. Coherent aberration function (Kirkland, *Advanced Computing in Electron
Microscopy*, 2nd ed. (2010), eq. 3.42, underfocus positive):

.. math::  \chi(k) = \pi \lambda k^2 \left(\tfrac12 C_s \lambda^2 k^2 - \Delta f\right),
           \qquad \psi(\mathbf r) = \mathcal F^{-1}[A(k)\, e^{-i\chi(k)}],

A a circular aperture of semi-angle alpha (soft edge of one reciprocal pixel), with
the relativistic wavelength :math:`\lambda = h/\sqrt{2 m_0 e V (1 + eV/2m_0c^2)}`
(scipy.constants); the intensity is blurred by a Gaussian effective source (FWHM
``source_fwhm_pm``, default 40 pm; Dwyer et al., Appl. Phys. Lett. 93, 021115 (2008),
unchecked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from scipy import constants

from nanodomains.errors import InputError, require_finite, require_positive

__all__ = [
    "ColumnModel",
    "ProbeParameters",
    "max_pixel_pm",
    "probe_intensity",
    "probe_transfer",
    "wavelength_pm",
]

#: atomic numbers used by the column model (same values as nanodomains.materials)
_Z = {"Cs": 55, "Pb": 82, "Br": 35, "I": 53, "C": 6}
_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
_WORKERS = -1


@dataclass(frozen=True)
class ProbeParameters:
    """Electron probe of an aberration-corrected STEM.

    Parameters
    ----------
    energy_kev : float
        Beam energy (default 300 keV).
    semiangle_mrad : float
        Convergence semi-angle alpha (default 24 mrad).
    defocus_nm : float
        Defocus, positive = underfocus (Kirkland's sign).
    cs_um : float
        Spherical aberration C_s in um (default 0: corrected).
    source_fwhm_pm : float
        FWHM of the Gaussian effective source (default 40 pm).
    """

    energy_kev: float = 300.0
    semiangle_mrad: float = 24.0
    defocus_nm: float = 0.0
    cs_um: float = 0.0
    source_fwhm_pm: float = 40.0

    def __post_init__(self):
        require_positive("energy_kev", self.energy_kev)
        require_positive("semiangle_mrad", self.semiangle_mrad)
        require_finite("defocus_nm", self.defocus_nm)
        require_finite("cs_um", self.cs_um)
        if not math.isfinite(self.source_fwhm_pm) or self.source_fwhm_pm < 0:
            raise InputError(f"source_fwhm_pm must be finite and >= 0, got {self.source_fwhm_pm!r}")
        if self.semiangle_mrad > 100:
            raise InputError(f"semiangle_mrad {self.semiangle_mrad} is beyond any STEM probe (expected <= 100 mrad)")


@dataclass(frozen=True)
class ColumnModel:
    """Column cross-section model: ``S (1 - exp(-sum sigma50 (Z/50)^n / S))``, spread by thickness.

    Parameters
    ----------
    exponent : float
        Power n of Z (default 1.7, HAADF; PHYSICS.md).
    sigma50_a2 : float
        Cross-section of one atom of Z = 50, A^2 (scale of the image).
    saturation_a2 : float or None
        Saturation cross-section S of the channelling correction; None = pure
        power law (no saturation).
    spread_pm_per_nm : float
        Channelling / beam-spreading cross-talk: a column of thickness t spreads its
        signal over a Gaussian of FWHM ``spread_pm_per_nm * t`` (convolved with the
        probe). 0 (default) = none. It redistributes intensity between neighbouring
        columns (what a/2-square integration sees) without changing cross-sections.
    """

    exponent: float = 1.7
    sigma50_a2: float = 4.55e-3
    saturation_a2: float | None = None
    spread_pm_per_nm: float = 0.0

    def __post_init__(self):
        if not (math.isfinite(self.exponent) and 0.5 <= self.exponent <= 4.0):
            raise InputError(f"column-model exponent must lie in [0.5, 4], got {self.exponent!r}")
        require_positive("sigma50_a2", self.sigma50_a2)
        if self.saturation_a2 is not None:
            require_positive("saturation_a2", self.saturation_a2)
        if not (math.isfinite(self.spread_pm_per_nm) and 0 <= self.spread_pm_per_nm <= 200):
            raise InputError(f"spread_pm_per_nm must lie in [0, 200], got {self.spread_pm_per_nm!r}")

    def spread_fwhm_pm(self, thickness_nm) -> np.ndarray:
        """FWHM (pm) of the thickness-dependent spread of columns of the given thickness."""
        return self.spread_pm_per_nm * np.asarray(thickness_nm, dtype=float)

    def atom(self, z) -> np.ndarray:
        """Linear (unsaturated) cross-section of single atoms of atomic number ``z``, A^2."""
        return self.sigma50_a2 * (np.asarray(z, dtype=float) / 50.0) ** self.exponent

    def saturate(self, sigma_linear) -> np.ndarray:
        """Apply the channelling correction to linear column sums (A^2)."""
        s = np.asarray(sigma_linear, dtype=float)
        if self.saturation_a2 is None:
            return s
        return self.saturation_a2 * -np.expm1(-s / self.saturation_a2)

    def column(self, n_cs, n_pb, n_br, n_i) -> np.ndarray:
        """Cross-section of columns holding the given numbers of Cs, Pb, Br and I atoms."""
        lin = (np.asarray(n_cs) * self.atom(_Z["Cs"]) + np.asarray(n_pb) * self.atom(_Z["Pb"])
               + np.asarray(n_br) * self.atom(_Z["Br"]) + np.asarray(n_i) * self.atom(_Z["I"]))
        return self.saturate(lin)



def wavelength_pm(energy_kev: float) -> float:
    """Relativistic electron wavelength in pm for a beam energy in keV (300 keV: 1.9687 pm)."""
    e = require_positive("energy_kev", energy_kev) * 1e3 * constants.e
    m0c2 = constants.m_e * constants.c**2
    return constants.h / math.sqrt(2 * constants.m_e * e * (1 + e / (2 * m0c2))) * 1e12


def max_pixel_pm(probe: ProbeParameters) -> float:
    """Largest grid sampling (pm) that holds the probe-intensity transfer without aliasing.

    The coherent intensity is band-limited to ``2 alpha / lambda``; the Gaussian source
    (sigma_s) further cuts it where ``exp(-2 pi^2 sigma_s^2 k^2) < 1e-3``, i.e. at
    ``k = sqrt(ln 1000 / 2) / (pi sigma_s)``. Returns ``1 / (2 k_limit)``
    (``lambda / 4 alpha`` = 20.5 pm at 300 kV, 24 mrad, no source).
    """
    lam_pm = wavelength_pm(probe.energy_kev)
    k_lim = 2 * probe.semiangle_mrad * 1e-3 / lam_pm  # 1/pm
    if probe.source_fwhm_pm > 0:
        sig = probe.source_fwhm_pm * _FWHM_TO_SIGMA
        k_lim = min(k_lim, math.sqrt(math.log(1e3) / 2) / (math.pi * sig))
    return 1.0 / (2 * k_lim)


def _kgrid(shape: tuple[int, int], pixel_a: float) -> tuple[np.ndarray, np.ndarray]:
    ky = sfft.fftfreq(shape[0], d=pixel_a)
    kx = sfft.fftfreq(shape[1], d=pixel_a)
    return ky, kx


def probe_intensity(shape: tuple[int, int], pixel_size_pm: float, probe: ProbeParameters = ProbeParameters(),
                    centred: bool = True) -> np.ndarray:
    """Coherent probe intensity |psi|^2 on a grid, normalised to ``sum(P) * A_px = 1`` (1/A^2).

    Parameters
    ----------
    shape : (int, int)
        Grid (ny, nx).
    pixel_size_pm : float
        Grid sampling.
    probe : ProbeParameters
    centred : bool
        Put the probe at the grid centre (True) or at pixel (0, 0) (FFT order).

    Returns
    -------
    numpy.ndarray
        float64 intensity per A^2 (the source blur is not included; see
        :func:`probe_transfer`).
    """
    h_a = require_positive("pixel_size_pm", pixel_size_pm) / 100.0
    lam_a = wavelength_pm(probe.energy_kev) / 100.0
    ky, kx = _kgrid(shape, h_a)
    kmax = probe.semiangle_mrad * 1e-3 / lam_a
    dk = max(1.0 / (shape[0] * h_a), 1.0 / (shape[1] * h_a))
    # only the aperture disk (plus its one-pixel soft edge) is non-zero: evaluate chi there
    iy = np.flatnonzero(np.abs(ky) <= kmax + dk)
    ix = np.flatnonzero(np.abs(kx) <= kmax + dk)
    k2 = ky[iy, None] ** 2 + kx[None, ix] ** 2
    aperture = np.clip((kmax - np.sqrt(k2)) / dk + 0.5, 0.0, 1.0)
    cs_a = probe.cs_um * 1e4
    df_a = probe.defocus_nm * 10.0
    chi = np.pi * lam_a * k2 * (0.5 * cs_a * lam_a**2 * k2 - df_a)
    spec = np.zeros(shape, dtype=np.complex128)
    spec[np.ix_(iy, ix)] = aperture * np.exp(-1j * chi)
    psi = sfft.ifft2(spec, workers=_WORKERS, overwrite_x=True)
    p = psi.real**2 + psi.imag**2
    p /= p.sum() * h_a**2
    if centred:
        p = np.fft.fftshift(p)
    return p


def probe_transfer(shape: tuple[int, int], pixel_size_pm: float, probe: ProbeParameters = ProbeParameters(),
                   real: bool = True) -> np.ndarray:
    """Transfer function (FFT) of the probe intensity including the source size.

    ``irfft2(rfft2(S) * T)`` convolves a splatted column map S (A^2 per pixel) with
    the probe to give the detected fraction F; ``T[0, 0] = 1 / A_px``, so
    ``T * A_px`` is the continuous transform of the normalised probe, P^(0) = 1.

    Parameters
    ----------
    shape : (int, int)
    pixel_size_pm : float
    probe : ProbeParameters
    real : bool
        rfft2 half plane (True) or the full fft2 plane.
    """
    p = probe_intensity(shape, pixel_size_pm, probe, centred=False)
    if real:
        t = sfft.rfft2(p, workers=_WORKERS)
        if probe.source_fwhm_pm > 0:
            t *= _gaussian_transfer(shape, pixel_size_pm, probe.source_fwhm_pm)
        return t
    t = sfft.fft2(p, workers=_WORKERS)
    if probe.source_fwhm_pm > 0:
        h_a = pixel_size_pm / 100.0
        sig_a = probe.source_fwhm_pm * _FWHM_TO_SIGMA / 100.0
        ky = sfft.fftfreq(shape[0], d=h_a)
        kx = sfft.fftfreq(shape[1], d=h_a)
        t *= np.exp(-2 * np.pi**2 * sig_a**2 * (ky[:, None] ** 2 + kx[None, :] ** 2))
    return t


def _gaussian_transfer(shape: tuple[int, int], pixel_size_pm: float, fwhm_pm: float) -> np.ndarray:
    """rfft2-plane transfer function of a normalised Gaussian of the given FWHM."""
    sig_a = fwhm_pm * _FWHM_TO_SIGMA / 100.0
    h_a = pixel_size_pm / 100.0
    ky = sfft.fftfreq(shape[0], d=h_a)
    kx = sfft.rfftfreq(shape[1], d=h_a)
    return np.exp(-2 * np.pi**2 * sig_a**2 * (ky[:, None] ** 2 + kx[None, :] ** 2))

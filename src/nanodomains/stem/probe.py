r"""Electron probe, ADF detector and column cross-section model: the physics core that
the STEM simulators (:mod:`nanodomains.stem.simulate`, :mod:`nanodomains.stem.multislice`,
:mod:`nanodomains.stem.eds`, :mod:`nanodomains.stem.table_build`) and the analysis
(:mod:`nanodomains.stem.tables`, :mod:`nanodomains.stem.composition`) share, so that
analysis never imports a simulator.

Probe and detector (:class:`ProbeParameters`): one object, one name set. Its field
names are the attribute names image files, tables and truth sidecars carry
(``beam_energy_kev``, ``convergence_semiangle_mrad``, ``defocus_nm``, ``cs_um``,
``source_fwhm_pm``, ``detector_inner_mrad``, ``detector_outer_mrad``);
:meth:`ProbeParameters.to_attrs` writes them and :meth:`ProbeParameters.from_attrs`
reads them back, also from files written with the older table names
``energy_kev`` / ``semiangle_mrad``.

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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft as sfft
from scipy import constants

from nanodomains import materials
from nanodomains.errors import FileFormatError, InputError, require_finite, require_positive

__all__ = [
    "ADF_DETECTOR_MRAD",
    "ATOMIC_NUMBER",
    "FFT_WORKERS",
    "ColumnModel",
    "ProbeParameters",
    "gaussian_transfer",
    "max_pixel_pm",
    "probe_intensity",
    "probe_transfer",
    "wavelength_pm",
]

#: atomic numbers used by the column model (materials.ATOMIC_NUMBER plus carbon of the support)
ATOMIC_NUMBER: dict[str, int] = {**materials.ATOMIC_NUMBER, "C": 6}
#: default ADF detector (inner, outer) in mrad, HAADF
ADF_DETECTOR_MRAD: tuple[float, float] = (70.0, 190.0)
#: ``workers`` argument of every scipy.fft call of the STEM simulators (all cores)
FFT_WORKERS = -1
_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))

#: attribute names of older files -> field: multislice tables before the one name set, and
#: images read from RosettaSciIO metadata (``convergence_angle_mrad``)
_OLD_ATTR_NAMES = {"energy_kev": "beam_energy_kev", "semiangle_mrad": "convergence_semiangle_mrad",
                   "convergence_angle_mrad": "convergence_semiangle_mrad"}


def _attr(attrs: Mapping[str, Any], name: str) -> Any:
    """``attrs[name]`` (or an older name of it); None when absent or None."""
    v = attrs.get(name)
    if v is None:
        for old, new in _OLD_ATTR_NAMES.items():
            if new == name and attrs.get(old) is not None:
                return attrs[old]
    return v


@dataclass(frozen=True)
class ProbeParameters:
    """Electron probe of an aberration-corrected STEM and its ADF detector.

    Parameters
    ----------
    beam_energy_kev : float
        Beam energy (default 300 keV).
    convergence_semiangle_mrad : float
        Convergence semi-angle alpha (default 24 mrad).
    defocus_nm : float
        Defocus, positive = underfocus (Kirkland's sign).
    cs_um : float
        Spherical aberration C_s in um (default 0: corrected).
    source_fwhm_pm : float
        FWHM of the Gaussian effective source (default 40 pm).
    detector_mrad : (float, float) or None
        ADF detector inner and outer angles; None = not known / no ADF detector
        (the ADF simulators then use :data:`ADF_DETECTOR_MRAD`).

    Examples
    --------
    >>> p = ProbeParameters(detector_mrad=(70, 190))
    >>> p.to_attrs()["convergence_semiangle_mrad"]
    24.0
    >>> ProbeParameters.from_attrs(p.to_attrs()) == p
    True
    >>> ProbeParameters.from_attrs({"energy_kev": 200, "semiangle_mrad": 20}).beam_energy_kev  # older tables
    200.0
    """

    beam_energy_kev: float = 300.0
    convergence_semiangle_mrad: float = 24.0
    defocus_nm: float = 0.0
    cs_um: float = 0.0
    source_fwhm_pm: float = 40.0
    detector_mrad: tuple[float, float] | None = None

    def __post_init__(self):
        for name in ("beam_energy_kev", "convergence_semiangle_mrad", "defocus_nm", "cs_um", "source_fwhm_pm"):
            object.__setattr__(self, name, float(getattr(self, name)))
        require_positive("beam_energy_kev", self.beam_energy_kev)
        require_positive("convergence_semiangle_mrad", self.convergence_semiangle_mrad)
        require_finite("defocus_nm", self.defocus_nm)
        require_finite("cs_um", self.cs_um)
        if not math.isfinite(self.source_fwhm_pm) or self.source_fwhm_pm < 0:
            raise InputError(f"source_fwhm_pm must be finite and >= 0, got {self.source_fwhm_pm!r}")
        if self.convergence_semiangle_mrad > 100:
            raise InputError(f"convergence_semiangle_mrad {self.convergence_semiangle_mrad} is beyond any STEM "
                             "probe (expected <= 100 mrad)")
        if self.detector_mrad is not None:
            object.__setattr__(self, "detector_mrad", _check_angles(self.detector_mrad))

    def with_detector(self, detector_mrad) -> ProbeParameters:
        """A copy with the ADF detector angles (inner, outer) set."""
        return ProbeParameters(self.beam_energy_kev, self.convergence_semiangle_mrad, self.defocus_nm, self.cs_um,
                               self.source_fwhm_pm, detector_mrad)

    def to_attrs(self, detector: bool = True) -> dict[str, float]:
        """Flat attributes for image files, tables and truth (the one name set).

        ``detector=False`` leaves out the ADF angles (e.g. for EDS maps); they are
        left out anyway when the detector is not known.
        """
        out = {"beam_energy_kev": self.beam_energy_kev,
               "convergence_semiangle_mrad": self.convergence_semiangle_mrad,
               "defocus_nm": self.defocus_nm, "cs_um": self.cs_um, "source_fwhm_pm": self.source_fwhm_pm}
        if detector and self.detector_mrad is not None:
            out["detector_inner_mrad"], out["detector_outer_mrad"] = self.detector_mrad
        return out

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], detector: bool = True) -> ProbeParameters:
        """The probe recorded in file attributes (inverse of :meth:`to_attrs`).

        Beam energy and convergence semi-angle are required (also under the older
        names ``energy_kev`` / ``semiangle_mrad`` / ``convergence_angle_mrad``); absent defocus, C_s and source size
        are 0 (no source blur assumed) and absent detector angles give
        ``detector_mrad=None``, as does ``detector=False`` (the angles are not read).

        Raises
        ------
        FileFormatError
            Beam energy or convergence semi-angle missing.
        InputError
            A value out of range.
        """
        values = {}
        for name in ("beam_energy_kev", "convergence_semiangle_mrad"):
            v = _attr(attrs, name)
            if v is None:
                raise FileFormatError(f"attribute {name!r} missing (probe parameters)")
            values[name] = _float_attr(name, v)
        for name in ("defocus_nm", "cs_um", "source_fwhm_pm"):
            v = _attr(attrs, name)
            values[name] = 0.0 if v is None else _float_attr(name, v)
        inner, outer = attrs.get("detector_inner_mrad"), attrs.get("detector_outer_mrad")
        if detector and inner is not None and outer is not None:
            values["detector_mrad"] = (_float_attr("detector_inner_mrad", inner),
                                       _float_attr("detector_outer_mrad", outer))
        return cls(**values)


def _float_attr(name: str, value: Any) -> float:
    try:
        return float(np.asarray(value).item())
    except (TypeError, ValueError) as exc:
        raise FileFormatError(f"attribute {name!r} = {value!r} is not a number") from exc


def _check_angles(detector_mrad) -> tuple[float, float]:
    try:
        inner, outer = (float(v) for v in detector_mrad)
    except (TypeError, ValueError) as exc:
        raise InputError(f"detector_mrad must be (inner, outer) in mrad, got {detector_mrad!r}") from exc
    if not (math.isfinite(inner) and math.isfinite(outer)) or not (0 <= inner < outer):
        raise InputError(f"detector angles must satisfy 0 <= inner < outer, got {detector_mrad!r}")
    return inner, outer


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

    Examples
    --------
    >>> m = ColumnModel(exponent=2.0)
    >>> ColumnModel.from_attrs(m.to_attrs()) == m
    True
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

    def to_attrs(self) -> dict[str, float]:
        """Flat attributes (``column_*``; a saturation of 0 means none, netCDF has no None)."""
        return {"column_exponent": self.exponent, "column_sigma50_a2": self.sigma50_a2,
                "column_saturation_a2": self.saturation_a2 or 0.0,
                "column_spread_pm_per_nm": self.spread_pm_per_nm}

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> ColumnModel:
        """Inverse of :meth:`to_attrs` (``column_exponent`` required, the rest default)."""
        if attrs.get("column_exponent") is None:
            raise FileFormatError("attribute 'column_exponent' missing (column model)")
        sat = attrs.get("column_saturation_a2")
        return cls(exponent=_float_attr("column_exponent", attrs["column_exponent"]),
                   sigma50_a2=_float_attr("column_sigma50_a2", attrs.get("column_sigma50_a2", cls.sigma50_a2)),
                   saturation_a2=_float_attr("column_saturation_a2", sat) if sat else None,
                   spread_pm_per_nm=_float_attr("column_spread_pm_per_nm",
                                                attrs.get("column_spread_pm_per_nm", 0.0)))

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
        z = ATOMIC_NUMBER
        lin = (np.asarray(n_cs) * self.atom(z["Cs"]) + np.asarray(n_pb) * self.atom(z["Pb"])
               + np.asarray(n_br) * self.atom(z["Br"]) + np.asarray(n_i) * self.atom(z["I"]))
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
    lam_pm = wavelength_pm(probe.beam_energy_kev)
    k_lim = 2 * probe.convergence_semiangle_mrad * 1e-3 / lam_pm  # 1/pm
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
    """Coherent probe intensity ``|psi|``^2 on a grid, normalised to ``sum(P) * A_px = 1`` (1/A^2).

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
    lam_a = wavelength_pm(probe.beam_energy_kev) / 100.0
    ky, kx = _kgrid(shape, h_a)
    kmax = probe.convergence_semiangle_mrad * 1e-3 / lam_a
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
    psi = sfft.ifft2(spec, workers=FFT_WORKERS, overwrite_x=True)
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
        t = sfft.rfft2(p, workers=FFT_WORKERS)
        if probe.source_fwhm_pm > 0:
            t *= gaussian_transfer(shape, pixel_size_pm, probe.source_fwhm_pm)
        return t
    t = sfft.fft2(p, workers=FFT_WORKERS)
    if probe.source_fwhm_pm > 0:
        h_a = pixel_size_pm / 100.0
        sig_a = probe.source_fwhm_pm * _FWHM_TO_SIGMA / 100.0
        ky = sfft.fftfreq(shape[0], d=h_a)
        kx = sfft.fftfreq(shape[1], d=h_a)
        t *= np.exp(-2 * np.pi**2 * sig_a**2 * (ky[:, None] ** 2 + kx[None, :] ** 2))
    return t


def gaussian_transfer(shape: tuple[int, int], pixel_size_pm: float, fwhm_pm: float) -> np.ndarray:
    """rfft2-plane transfer function of a normalised Gaussian of the given FWHM.

    Examples
    --------
    >>> float(gaussian_transfer((8, 8), 20.0, 40.0)[0, 0])
    1.0
    """
    sig_a = fwhm_pm * _FWHM_TO_SIGMA / 100.0
    h_a = pixel_size_pm / 100.0
    ky = sfft.fftfreq(shape[0], d=h_a)
    kx = sfft.rfftfreq(shape[1], d=h_a)
    return np.exp(-2 * np.pi**2 * sig_a**2 * (ky[:, None] ** 2 + kx[None, :] ** 2))

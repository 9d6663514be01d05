r"""STEM-EDS maps of Br and I from nanocrystal models (the EDS simulator).

Reading the maps (:func:`nanodomains.stem.io.load_eds`, also importable from here),
line scans and their step fits (:mod:`nanodomains.stem.linescan`) are analysis and
live outside this simulator module.

Model
-----
X-ray emission is incoherent and localised on the atom, so a line map is the same
column sum as the ADF model with a different cross-section per atom:

.. math::  C_\ell(\mathbf r) \sim \mathrm{Poisson}\Big(D\, A_\mathrm{px}
           \sum_c N^{(\ell)}_c \, \sigma_\ell \, \frac{\Omega}{4\pi}\, \varepsilon\,
           P_\mathrm{eds}(\mathbf r - \mathbf r_c)\Big) + \mathrm{continuum},

with D the dose (e/A^2), A_px the pixel area, N_c the number of atoms of the line's
element in column c, sigma_l the X-ray production cross-section of the line family
(ionisation cross-section x fluorescence yield), Omega the detector solid angle and
epsilon its efficiency. P_eds is the probe intensity of
:mod:`nanodomains.stem.simulate` broadened by a Gaussian of FWHM ``spread_fwhm_pm``
standing for beam spreading / channelling cross-talk in the crystal (default 80 pm).
The continuum (bremsstrahlung under each line window) is a uniform Poisson
background over the NC whose mean is ``continuum_fraction`` of the mean line signal
there (default 0.05, i.e. peak/background ~ 20, typical of thin specimens).
Absorption of the X-rays in a 10-20 nm crystal is neglected.

Default lines (300 keV; every value unchecked, estimated and a parameter):

* ``Br_K`` (K alpha 11.92 keV + K beta 13.29 keV): K-shell ionisation ~ 60 barn
  (Bethe cross-section with Powell's constants, relativistic correction, Powell,
  Rev. Mod. Phys. 48, 33 (1976)), fluorescence yield omega_K = 0.618 (Krause,
  J. Phys. Chem. Ref. Data 8, 307 (1979)): 37 barn.
* ``I_L`` (L alpha 3.94 keV and the other L lines): L-shell ionisation ~ 450 barn
  (same method), mean L fluorescence yield ~ 0.08 (Krause 1979): 36 barn.

Detector: solid angle 0.7 sr (a multi-SDD system), efficiency 1.

The Br atomic fraction of a region follows from the counts with these known
cross-sections (Cliff-Lorimer with theoretical k-factors):
:math:`b = (C_\mathrm{Br}/\sigma_\mathrm{Br}) / (C_\mathrm{Br}/\sigma_\mathrm{Br} + C_\mathrm I/\sigma_\mathrm I)`,
see :func:`nanodomains.stem.linescan.line_scan`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import xarray as xr

from nanodomains import seeds
from nanodomains.errors import InputError, require_positive
from nanodomains.files import to_jsonable
from nanodomains.stem.io import load_eds, save_netcdf
from nanodomains.stem.probe import ProbeParameters
from nanodomains.stem.simulate import (
    ScanDistortion,
    build_truth,
    check_pixel,
    image_frame,
    scan_fraction,
    truth_sidecar_path,
    write_truth,
)

__all__ = ["XrayLine", "DEFAULT_LINES", "EDSDetector", "EDSMaps", "simulate_eds", "write_eds", "load_eds"]

_BARN_A2 = 1e-8


@dataclass(frozen=True)
class XrayLine:
    """An X-ray line family counted in one energy window.

    Parameters
    ----------
    name : str
        Variable name in the map dataset (e.g. ``"Br_K"``).
    element : {"Br", "I"}
    energy_kev : float
        Energy of the main line.
    production_barn : float
        X-ray production cross-section per atom (ionisation x fluorescence yield), barn.
    """

    name: str
    element: str
    energy_kev: float
    production_barn: float

    def __post_init__(self):
        if self.element not in ("Br", "I"):
            raise InputError(f"EDS line {self.name!r}: element must be 'Br' or 'I', got {self.element!r}")
        require_positive(f"{self.name} energy_kev", self.energy_kev)
        require_positive(f"{self.name} production_barn", self.production_barn)


DEFAULT_LINES = (XrayLine("Br_K", "Br", 11.92, 60.0 * 0.618), XrayLine("I_L", "I", 3.94, 450.0 * 0.08))


@dataclass(frozen=True)
class EDSDetector:
    """EDS detector: solid angle (sr) and efficiency."""

    solid_angle_sr: float = 0.7
    efficiency: float = 1.0

    def __post_init__(self):
        if not (0 < self.solid_angle_sr <= 4 * math.pi):
            raise InputError(f"solid_angle_sr must lie in (0, 4 pi], got {self.solid_angle_sr!r}")
        if not (0 < self.efficiency <= 1):
            raise InputError(f"efficiency must lie in (0, 1], got {self.efficiency!r}")

    @property
    def collection(self) -> float:
        return self.solid_angle_sr / (4 * math.pi) * self.efficiency


class EDSMaps(NamedTuple):
    """Line-count maps (``xarray.Dataset``, one variable per line, dims (y, x)) and truth."""

    maps: xr.Dataset
    truth: dict


def simulate_eds(nc, *, pixel_size_pm: float = 50.0, shape: int | tuple[int, int] | None = None,
                 dose_e_per_a2: float = 1e7, probe: ProbeParameters = ProbeParameters(),
                 lines: tuple[XrayLine, ...] = DEFAULT_LINES, detector: EDSDetector = EDSDetector(),
                 spread_fwhm_pm: float = 80.0, continuum_fraction: float = 0.05, rotation_deg: float = 0.0,
                 scan: ScanDistortion = ScanDistortion(), direction: str = "100", seed: int = 1,
                 columns=None, atoms=None, noise: bool = True) -> EDSMaps:
    """Br and I X-ray line-count maps of an NC model (see module docstring).

    Parameters
    ----------
    nc : NanoCrystal
    pixel_size_pm : float
        Scan step (default 50 pm; at most a quarter of the smallest lattice constant).
    shape : int or (int, int), optional
        Map size (ny, nx); default the NC plus 1.5 nm margins.
    dose_e_per_a2 : float
        Total electron dose of the map (default 1e7 e/A^2, summed over frames).
    probe : ProbeParameters
    lines : tuple of XrayLine
    detector : EDSDetector
    spread_fwhm_pm : float
        Extra Gaussian broadening of the probe (beam spreading, cross-talk).
    continuum_fraction : float
        Mean continuum counts under each window per NC pixel, as a fraction of that
        line's mean counts per NC pixel (>= 0).
    rotation_deg : float
    scan : ScanDistortion
    direction : str
    seed : int
        Seeds the halide occupancy (when ``columns``/``atoms`` are not given) and the
        stream (:func:`nanodomains.seeds.rng`) that draws the scan seed (one jitter for
        all lines: one scan records them all), then the counting noise.
    columns, atoms : optional
        Precomputed ``project_columns`` / ``to_atoms`` output.
    noise : bool
        False returns the expected counts.

    Returns
    -------
    EDSMaps
    """
    from nanodomains.structure import project_columns

    dose = require_positive("dose_e_per_a2", dose_e_per_a2)
    _check_eds_inputs(spread_fwhm_pm, continuum_fraction, lines)
    h = check_pixel(pixel_size_pm, min(nc.domain_lattice_pm(d.id) for d in nc.domains))
    rng = seeds.rng(seeds.check_seed(seed))
    if columns is None:
        columns = project_columns(nc, direction=direction, seed=seed, atoms=atoms)
    x_img, y_img, shape, transform = image_frame(columns, h, shape, rotation_deg)
    eff_probe = replace(probe, source_fwhm_pm=math.hypot(probe.source_fwhm_pm, spread_fwhm_pm))
    counts_of = {"Br": columns["n_br"].to_numpy(float), "I": columns["n_i"].to_numpy(float)}
    expected = {}
    scan_seed = int(rng.integers(2**63))  # one scan records every line: same jitter for all
    for line in lines:
        w = counts_of[line.element] * line.production_barn * _BARN_A2 * detector.collection
        frac, jitter = scan_fraction(x_img, y_img, w, shape, h, eff_probe, scan, seeds.rng(scan_seed))
        expected[line.name] = np.clip(frac, 0, None) * dose * (h / 100.0) ** 2
    truth, labels = build_truth(nc, columns, x_img, y_img, np.full(len(columns), np.nan), shape, h, transform,
                                kind="eds")
    data_vars = _count_maps(expected, lines, labels >= 0, continuum_fraction, rng, noise)
    attrs = to_jsonable({
        "pixel_size_pm": h, "dose_e_per_a2": dose, **probe.to_attrs(detector=False),
        "spread_fwhm_pm": spread_fwhm_pm, "solid_angle_sr": detector.solid_angle_sr,
        "efficiency": detector.efficiency, "continuum_fraction": continuum_fraction,
        "rotation_deg": float(rotation_deg), "seed": int(seed),
        "method": "incoherent EDS",
        "line_jitter_pm": scan.line_jitter_pm, "drift_pm_per_line": list(scan.drift_pm_per_line),
        "title": "nanodomains EDS simulation"})
    h_nm = h * 1e-3
    ds = xr.Dataset(data_vars, coords={"y": ("y", np.arange(shape[0]) * h_nm, {"units": "nm"}),
                                       "x": ("x", np.arange(shape[1]) * h_nm, {"units": "nm"})}, attrs=attrs)
    cols_t = truth["columns"]
    del cols_t["cross_section_a2"]
    truth.update({"method": "incoherent EDS", "seed": int(seed), "simulation": attrs,
                  "lines": [{"name": ln.name, "element": ln.element, "energy_kev": ln.energy_kev,
                             "production_barn": ln.production_barn} for ln in lines],
                  "scan_distortion": {"line_jitter_pm": np.round(jitter, 3).tolist(),
                                      "drift_pm_per_line": list(scan.drift_pm_per_line)}})
    return EDSMaps(ds, truth)


def _check_eds_inputs(spread_fwhm_pm: float, continuum_fraction: float, lines) -> None:
    if not math.isfinite(spread_fwhm_pm) or spread_fwhm_pm < 0:
        raise InputError(f"spread_fwhm_pm must be finite and >= 0, got {spread_fwhm_pm!r}")
    if not math.isfinite(continuum_fraction) or continuum_fraction < 0:
        raise InputError(f"continuum_fraction must be finite and >= 0, got {continuum_fraction!r}")
    if not lines or len({ln.name for ln in lines}) != len(lines):
        raise InputError("lines must be a non-empty tuple of XrayLine with distinct names")


def _count_maps(expected: dict, lines, nc_mask: np.ndarray, continuum_fraction: float,
                rng: np.random.Generator, noise: bool) -> dict:
    """Line maps: expected counts plus the uniform continuum over the NC, Poisson-drawn if ``noise``."""
    data_vars = {}
    for line in lines:
        lam = expected[line.name]
        cont = continuum_fraction * (lam[nc_mask].mean() if nc_mask.any() else 0.0)
        lam = lam + np.where(nc_mask, cont, 0.0)
        data = rng.poisson(lam).astype(np.int64) if noise else lam
        data_vars[line.name] = (("y", "x"), data, {"units": "counts", "element": line.element,
                                                   "energy_kev": line.energy_kev,
                                                   "production_barn": line.production_barn,
                                                   "continuum_counts_per_px": float(cont)})
    return data_vars


def write_eds(result: EDSMaps, path: str | Path) -> tuple[Path, Path]:
    """Write the maps as netCDF (``.nc``) and the truth as ``<stem>.truth.json``."""
    p = Path(path)
    if p.suffix.lower() != ".nc":
        raise InputError(f"{p}: EDS maps are written as netCDF (.nc)")
    save_netcdf(result.maps, p)
    return p, write_truth(result.truth, truth_sidecar_path(p))

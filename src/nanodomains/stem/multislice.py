r"""Multislice ADF-STEM of nanocrystal models through abTEM, with frozen phonons.

Method
------
abTEM [1]_ (version 1.0): the independent-atom potential (Lobato-Van Dyck
parametrisation, infinite projection) of the atoms is cut into slices and a
convergent probe is propagated through them at every scan position; the annular
detector integrates the exit-wave diffraction intensity between the inner and outer
angles. Thermal diffuse scattering, which carries most of the ADF signal, enters by
the frozen-phonon average over ``num_configs`` >= 8 configurations with independent
Gaussian displacements of rms ``sigmas_a`` per Cartesian direction (Einstein model;
abTEM ``FrozenPhonons``) [2]_. Without it the column contrast of CsPbX3 collapses
(see :mod:`nanodomains.stem.tables`).

Defaults (:class:`MultisliceSettings`)
--------------------------------------
* 300 kV, convergence semi-angle 24 mrad, no aberrations, HAADF 70-190 mrad.
* Potential sampling 0.034 A: abTEM band-limits the wave to 2/3 of the Nyquist
  frequency, so the largest detector angle it can record is
  :math:`\theta_\max = \tfrac23 \lambda / (2 h)` = 193 mrad at 300 kV
  (:func:`max_detector_angle_mrad`); larger outer angles raise
  :class:`~nanodomains.errors.InputError`.
* Slice thickness 2 A.
* rms displacements (A): Cs 0.20, Pb 0.14, Br 0.18, I 0.18, i.e. U_iso ~ 0.02-0.04
  A^2, the room-temperature atomic displacement parameters of CsPbX3 nanocrystals
  (Bertolotti et al. [3]_, Fig. 3d, read as an order of magnitude; unchecked).
  Cs rattles in its cage and the halides vibrate mainly perpendicular to Pb-X-Pb.
* The Gaussian effective source (``probe.source_fwhm_pm``) blurs the final image.

Geometry: the beam runs along the crystal axis ``direction``; the model is rotated so
abTEM's z is the beam and (x, y) are the image axes of
:func:`nanodomains.structure.project_columns`. A region of the projected model
(``region_nm`` = x0, y0, x1, y1 in the projected frame) is scanned; atoms within
``margin_nm`` of it are kept so the probe sees its surroundings, in a periodic cell
with that margin as vacuum.

Cost scales as positions x configurations x slices x FFT(grid); on a laptop core a
2 nm field of a 15 nm thick NC at atomic-resolution sampling takes hours, so this
path is for small regions, thin slabs and the column-intensity tables.
:func:`estimate_cost` gives the number of FFTs before running.

References
----------
.. [1] J. Madsen, T. Susi, "The abTEM code: transmission electron microscopy from
   first principles", Open Research Europe 1, 24 (2021).
.. [2] R. F. Loane, P. Xu, J. Silcox, "Thermal vibrations in convergent-beam
   electron diffraction", Acta Cryst. A47, 267 (1991).
.. [3] F. Bertolotti et al., "Coherent nanotwins and dynamic disorder in cesium
   lead halide perovskite nanocrystals", ACS Nano 11, 3819 (2017) (unchecked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nanodomains import seeds
from nanodomains.errors import InputError, require_positive
from nanodomains.files import to_jsonable
from nanodomains.stem.probe import ADF_DETECTOR_MRAD, ProbeParameters, wavelength_pm
from nanodomains.stem.simulate import (
    SimulatedImage,
    build_truth,
    check_adf_detector,
    check_pixel,
    detector_counts,
    image_attrs,
)

__all__ = [
    "DEFAULT_SIGMAS_A",
    "MultisliceSettings",
    "max_detector_angle_mrad",
    "beam_frame_atoms",
    "estimate_cost",
    "abtem_probe",
    "frozen_phonon_source",
    "scan_region",
    "multislice_image",
]

#: rms thermal displacement per Cartesian direction, A (see module docstring; unchecked)
DEFAULT_SIGMAS_A: dict[str, float] = {"Cs": 0.20, "Pb": 0.14, "Br": 0.18, "I": 0.18}
_MIN_CONFIGS = 8


def max_detector_angle_mrad(sampling_a: float, energy_kev: float) -> float:
    """Largest scattering angle abTEM resolves at a potential sampling: (2/3) lambda / (2 h)."""
    h = require_positive("sampling_a", sampling_a)
    return 2.0 / 3.0 * (wavelength_pm(energy_kev) / 100.0) / (2 * h) * 1e3


@dataclass(frozen=True)
class MultisliceSettings:
    """Parameters of an abTEM frozen-phonon ADF simulation (see module docstring).

    Parameters
    ----------
    probe : ProbeParameters
    detector_mrad : (float, float), optional
        ADF inner and outer angles; default ``probe.detector_mrad``, else (70, 190).
        The probe of the settings carries the angles used.
    sampling_a : float
        Potential and wave sampling, A.
    slice_thickness_a : float
    num_configs : int
        Frozen-phonon configurations (>= 8).
    sigmas_a : dict
        rms displacement per element and direction, A.
    frozen_phonons : bool
        False switches thermal displacements off (for demonstrations only: tables
        computed so are rejected by :func:`nanodomains.stem.tables.check_table`).
    parametrization : str
        abTEM potential parametrisation.
    """

    probe: ProbeParameters = ProbeParameters()
    detector_mrad: tuple[float, float] | None = None
    sampling_a: float = 0.034
    slice_thickness_a: float = 2.0
    num_configs: int = 8
    sigmas_a: dict = field(default_factory=lambda: dict(DEFAULT_SIGMAS_A))
    frozen_phonons: bool = True
    parametrization: str = "lobato"

    def __post_init__(self):
        det = self.detector_mrad if self.detector_mrad is not None else self.probe.detector_mrad
        inner, outer = check_adf_detector(det or ADF_DETECTOR_MRAD, self.probe)
        object.__setattr__(self, "detector_mrad", (inner, outer))
        object.__setattr__(self, "probe", self.probe.with_detector((inner, outer)))
        require_positive("sampling_a", self.sampling_a)
        require_positive("slice_thickness_a", self.slice_thickness_a)
        limit = max_detector_angle_mrad(self.sampling_a, self.probe.beam_energy_kev)
        if outer > limit:
            raise InputError(
                f"detector outer angle {outer:g} mrad exceeds the {limit:.1f} mrad that a potential "
                f"sampling of {self.sampling_a:g} A allows at {self.probe.beam_energy_kev:g} keV; use "
                f"sampling_a <= {self.sampling_a * limit / outer:.4f} A or a smaller outer angle")
        if self.probe.convergence_semiangle_mrad >= limit:
            raise InputError(f"convergence semi-angle {self.probe.convergence_semiangle_mrad:g} mrad exceeds the "
                             f"{limit:.1f} mrad the sampling allows")
        if int(self.num_configs) != self.num_configs or self.num_configs < 1:
            raise InputError(f"num_configs must be a positive integer, got {self.num_configs!r}")
        if self.frozen_phonons and self.num_configs < _MIN_CONFIGS:
            raise InputError(f"frozen-phonon averages need at least {_MIN_CONFIGS} configurations, "
                             f"got num_configs={self.num_configs}")
        for el, s in self.sigmas_a.items():
            if not (math.isfinite(s) and 0 < s < 1.0):
                raise InputError(f"rms displacement of {el} must lie in (0, 1) A, got {s!r}")

    def describe(self) -> dict:
        """Flat dict of all parameters (netCDF/JSON attributes)."""
        d = {"engine": "abtem", **self.probe.to_attrs(),
             "sampling_a": self.sampling_a, "slice_thickness_a": self.slice_thickness_a,
             "num_configs": int(self.num_configs) if self.frozen_phonons else 1,
             "frozen_phonons": int(bool(self.frozen_phonons)),
             "parametrization": self.parametrization, "projection": "infinite"}
        for el, s in sorted(self.sigmas_a.items()):
            d[f"sigma_{el}_a"] = float(s) if self.frozen_phonons else 0.0
        try:
            import abtem

            d["abtem_version"] = abtem.__version__
        except ImportError:  # pragma: no cover - reported where abtem is needed
            pass
        return d


def _abtem():
    try:
        import abtem
    except ImportError as exc:  # pragma: no cover
        raise InputError("multislice needs abTEM: pip install 'nanodomains[stem]'") from exc
    return abtem


def beam_frame_atoms(atoms, direction: str = "100"):
    """Copy of ``atoms`` rotated so the beam runs along z and (x, y) are the image axes."""
    from nanodomains.structure import parse_direction

    beam, (u, v) = parse_direction(direction)
    out = atoms.copy()
    out.positions = atoms.positions[:, [u, v, beam]]
    cell = np.asarray(atoms.cell.lengths()) if atoms.cell.rank == 3 else np.ptp(atoms.positions, axis=0)
    out.cell = np.diag(np.asarray(cell)[[u, v, beam]])
    return out


def frozen_phonon_source(atoms, settings: MultisliceSettings, seed: int):
    """The abTEM object a Potential is built from: FrozenPhonons, or the atoms themselves."""
    abtem = _abtem()
    if not settings.frozen_phonons:
        return atoms
    symbols = sorted(set(atoms.get_chemical_symbols()))
    missing = [s for s in symbols if s not in settings.sigmas_a]
    if missing:
        raise InputError(f"no rms displacement given for element(s) {missing}; set sigmas_a")
    return abtem.FrozenPhonons(atoms, num_configs=int(settings.num_configs),
                               sigmas={s: float(settings.sigmas_a[s]) for s in symbols},
                               ensemble_mean=False, seed=int(seed))


def _potential(source, settings: MultisliceSettings):
    abtem = _abtem()
    return abtem.Potential(source, sampling=settings.sampling_a, slice_thickness=settings.slice_thickness_a,
                           parametrization=settings.parametrization, projection="infinite")


def abtem_probe(settings: MultisliceSettings):
    """The ``abtem.Probe`` of the settings (energy in eV, defocus and C_s in A)."""
    abtem = _abtem()
    p = settings.probe
    return abtem.Probe(energy=p.beam_energy_kev * 1e3, semiangle_cutoff=p.convergence_semiangle_mrad,
                       defocus=p.defocus_nm * 10.0, Cs=p.cs_um * 1e4)


def estimate_cost(extent_a: tuple[float, float], thickness_a: float, n_positions: int,
                  settings: MultisliceSettings) -> dict:
    """Grid size and number of 2-D FFTs a scan needs (two per slice per position per configuration)."""
    gpts = [int(math.ceil(e / settings.sampling_a)) for e in extent_a]
    n_slices = max(1, int(math.ceil(thickness_a / settings.slice_thickness_a)))
    n_conf = int(settings.num_configs) if settings.frozen_phonons else 1
    return {"gpts": gpts, "n_slices": n_slices, "n_positions": int(n_positions), "n_configs": n_conf,
            "n_fft": 2 * n_slices * int(n_positions) * n_conf,
            "fft_points": 2.0 * n_slices * n_positions * n_conf * gpts[0] * gpts[1]}


def scan_region(atoms_beam, settings: MultisliceSettings, start_a, end_a, gpts, *, seed: int = 1,
                compute_kwargs: dict | None = None, progress: bool = False) -> np.ndarray:
    """Frozen-phonon ADF signal on a scan grid of a beam-frame ``ase.Atoms`` (z = beam).

    Parameters
    ----------
    atoms_beam : ase.Atoms
        Atoms in the beam frame with the periodic cell abTEM should use.
    settings : MultisliceSettings
    start_a, end_a : (float, float)
        Scan rectangle in A (end exclusive).
    gpts : (int, int)
        Scan positions along (x, y).
    seed : int
        Frozen-phonon seed.
    compute_kwargs : dict, optional
        Passed to the dask compute (e.g. ``{"scheduler": "threads"}``).
    progress : bool
        Show abTEM's progress bar.

    Returns
    -------
    numpy.ndarray
        Shape (n_configs, nx, ny): detected fraction per configuration (abTEM's
        (x, y) order); one configuration without frozen phonons.
    """
    abtem = _abtem()
    source = frozen_phonon_source(atoms_beam, settings, seed)
    potential = _potential(source, settings)
    probe = abtem_probe(settings)
    probe.grid.match(potential)
    scan = abtem.GridScan(start=tuple(float(v) for v in start_a), end=tuple(float(v) for v in end_a),
                          gpts=tuple(int(g) for g in gpts), endpoint=False)
    detector = abtem.AnnularDetector(inner=float(settings.detector_mrad[0]),
                                     outer=float(settings.detector_mrad[1]))
    measurement = probe.scan(potential, scan=scan, detectors=detector)
    result = measurement.compute(progress_bar=progress, **(compute_kwargs or {}))
    arr = np.asarray(result.array, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    return arr.reshape((-1,) + arr.shape[-2:])


def multislice_image(nc, *, region_nm: tuple[float, float, float, float] | None = None,
                     pixel_size_pm: float = 40.0, dose_e_per_a2: float | None = 1e5,
                     settings: MultisliceSettings = MultisliceSettings(), margin_nm: float = 0.5,
                     direction: str = "100", seed: int = 1, gain: float = 1.0, offset: float = 0.0,
                     read_noise: float = 0.0, atoms=None, max_fft_points: float = 5e11,
                     compute_kwargs: dict | None = None, progress: bool = False) -> SimulatedImage:
    """Frozen-phonon multislice ADF-STEM image of (a region of) an NC model, with truth.

    Parameters
    ----------
    nc : NanoCrystal
    region_nm : (x0, y0, x1, y1), optional
        Scanned rectangle in the projected model frame of
        :func:`~nanodomains.structure.project_columns`; default the whole NC.
    pixel_size_pm : float
        Scan step (default 40 pm; at most a quarter of the smallest lattice constant).
    dose_e_per_a2 : float or None
        Dose for Poisson noise (see :func:`~nanodomains.stem.simulate.detector_counts`);
        None returns the noise-free detected fraction.
    settings : MultisliceSettings
    margin_nm : float
        Atoms kept (and vacuum added) around the region.
    direction : {"100", "010", "001"}
    seed : int
        Halide occupancy, frozen phonons and noise.
    gain, offset, read_noise : float
    atoms : ase.Atoms, optional
        ``nc.to_atoms`` output (reused).
    max_fft_points : float
        Refuse runs whose estimated work (see :func:`estimate_cost`) exceeds this
        many FFT points (default 5e11, about an hour on one core); crop instead.
    compute_kwargs : dict, optional
    progress : bool

    Returns
    -------
    SimulatedImage
        Image dims (y, x) with coords in nm (origin at the region's first pixel)
        and its truth (kind "stem", method "multislice").
    """
    from nanodomains.structure import project_columns
    from nanodomains.stem.io import image_from_array

    h = require_positive("pixel_size_pm", pixel_size_pm)
    check_pixel(h, min(nc.domain_lattice_pm(d.id) for d in nc.domains))
    if dose_e_per_a2 is not None:
        require_positive("dose_e_per_a2", dose_e_per_a2)
    rng = seeds.rng(seed)
    if atoms is None:
        atoms = nc.to_atoms(seed=seed)
    cols = project_columns(nc, direction=direction, atoms=atoms)
    sub, box, extent, (nx, ny) = _region_cell(beam_frame_atoms(atoms, direction), region_nm, margin_nm, h)
    x0, y0, x1, y1 = box
    cost = estimate_cost(extent, float(sub.cell[2, 2]), nx * ny, settings)
    if cost["fft_points"] > max_fft_points:
        raise InputError(
            f"multislice of {nx} x {ny} positions over {extent[0] / 10:.1f} x {extent[1] / 10:.1f} nm "
            f"({cost['n_slices']} slices, {cost['n_configs']} configurations, grid {cost['gpts']}) needs "
            f"{cost['fft_points']:.2e} FFT points, above max_fft_points={max_fft_points:.1e}; crop with "
            "region_nm, coarsen pixel_size_pm, or raise max_fft_points")
    frac = _scan_fraction_image(sub, settings, margin_nm, h, (nx, ny), seed, compute_kwargs, progress)
    if dose_e_per_a2 is None:
        data = frac
    else:
        data = detector_counts(frac, dose_e_per_a2, h, rng, gain, offset, read_noise)
    attrs = image_attrs(settings.probe, dose_e_per_a2 or 0.0, gain, offset, read_noise, 0.0, seed, None, None,
                        None, method="multislice")
    attrs.update({k: v for k, v in settings.describe().items() if k not in attrs})
    attrs["units"] = "detector counts" if dose_e_per_a2 is not None else "detected fraction"
    attrs["region_nm"] = [x0, y0, x1, y1]
    da = image_from_array(data, h, title="nanodomains multislice ADF-STEM simulation (abTEM)", **attrs)
    transform = {"centre_nm": [x0, y0], "fov_centre_nm": [0.0, 0.0], "rotation_deg": 0.0}
    x_img = cols["x_nm"].to_numpy(float) - x0
    y_img = cols["y_nm"].to_numpy(float) - y0
    sigma = np.full(len(cols), np.nan)
    truth, _ = build_truth(nc, cols, x_img, y_img, sigma, (ny, nx), h, transform, kind="stem",
                           extra={"method": "multislice", "seed": int(seed),
                                  "simulation": to_jsonable(attrs), "cost": cost})
    return SimulatedImage(da, truth)


def _region_cell(beam, region_nm, margin_nm: float, pixel_size_pm: float):
    """Atoms of a beam-frame model within ``margin_nm`` of the region, in a periodic cell.

    Returns (atoms, (x0, y0, x1, y1) in nm, cell extent (x, y) in A, scan size (nx, ny)).
    The atoms are shifted so the region starts at (margin, margin) and z at 2 A; the
    cell has the margin as vacuum around the region and 2 A above and below.
    """
    pos_nm = beam.positions / 10.0
    if region_nm is None:
        region_nm = (float(pos_nm[:, 0].min()), float(pos_nm[:, 1].min()),
                     float(pos_nm[:, 0].max()), float(pos_nm[:, 1].max()))
    x0, y0, x1, y1 = (float(v) for v in region_nm)
    if not (x1 > x0 and y1 > y0) or not all(map(math.isfinite, (x0, y0, x1, y1))):
        raise InputError(f"region_nm must be (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {region_nm!r}")
    h_nm = pixel_size_pm * 1e-3
    nx, ny = max(1, int(round((x1 - x0) / h_nm))), max(1, int(round((y1 - y0) / h_nm)))
    keep = ((pos_nm[:, 0] > x0 - margin_nm) & (pos_nm[:, 0] < x1 + margin_nm)
            & (pos_nm[:, 1] > y0 - margin_nm) & (pos_nm[:, 1] < y1 + margin_nm))
    if not keep.any():
        raise InputError(f"region_nm {region_nm} holds no atoms of the model")
    sub = beam[keep]
    lo = np.array([x0 - margin_nm, y0 - margin_nm]) * 10.0
    sub.positions[:, :2] -= lo
    zmin, zmax = sub.positions[:, 2].min(), sub.positions[:, 2].max()
    sub.positions[:, 2] -= zmin - 2.0
    extent = ((x1 - x0 + 2 * margin_nm) * 10.0, (y1 - y0 + 2 * margin_nm) * 10.0)
    sub.cell = np.diag([extent[0], extent[1], zmax - zmin + 4.0])
    sub.pbc = True
    return sub, (x0, y0, x1, y1), extent, (nx, ny)


def _scan_fraction_image(sub, settings: MultisliceSettings, margin_nm: float, pixel_size_pm: float, n_xy,
                         seed, compute_kwargs, progress) -> np.ndarray:
    """Frozen-phonon mean detected fraction on the (y, x) scan grid, blurred by the effective source."""
    nx, ny = n_xy
    h = pixel_size_pm
    start = (margin_nm * 10.0, margin_nm * 10.0)
    end = (start[0] + nx * h / 100.0, start[1] + ny * h / 100.0)
    per_conf = scan_region(sub, settings, start, end, (nx, ny), seed=seed,
                           compute_kwargs=compute_kwargs, progress=progress)
    frac = per_conf.mean(axis=0).T  # (y, x)
    if settings.probe.source_fwhm_pm > 0:
        from scipy import ndimage

        sig_px = settings.probe.source_fwhm_pm / (2 * math.sqrt(2 * math.log(2))) / h
        frac = ndimage.gaussian_filter(frac, sig_px, mode="nearest")
    return frac

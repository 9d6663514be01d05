r"""Column-intensity tables for [100]-projected CsPbX3 (the seed's Fig. 1g): the column
model, reading and checking tables, and the power-law fit. This module imports no
simulator (analysis reads it); *building* multislice tables is simulation and lives
in :mod:`nanodomains.stem.table_build`.

Three inequivalent columns per cell (PHYSICS.md, "Z-contrast of [100]-projected
CsPbX3"): Cs-site (0, 0), PbX-site (1/2, 1/2) and X (1/2, 0) ~ (0, 1/2). A column of
N cells, a fraction s of which lies in the 1/2 a<111>-shifted registry, with Br
fraction b on the halide sites, holds

* Cs-site: (1-s) N Cs + s N (Pb + X)
* PbX-site: (1-s) N (Pb + X) + s N Cs
* X: N X

Tables are ``xarray.Dataset`` objects with dims ``(br_fraction, shifted_fraction,
thickness_cells, column)`` (column = Cs, PbX, X), a 2-D coordinate ``thickness_nm``
(N times the Vegard lattice constant of b), the variable ``intensity`` (probe-
integrated column cross-section in A^2, i.e. detected electrons per column per
incident e/A^2) and ``intensity_err``, plus every simulation parameter as attributes.

(a) Power law (:func:`power_law_table`): :class:`~nanodomains.stem.probe.ColumnModel`
    (sum of sigma_50 (Z/50)^n with the optional channelling saturation) evaluated on
    the counts above: exactly the incoherent simulator's column weights.

(b) Multislice (:func:`nanodomains.stem.table_build.multislice_table`): abTEM frozen-phonon multislice
    (:mod:`nanodomains.stem.multislice`) of a 2 x 2-cell periodic CsPbX3 slab, cubic with
    the Vegard lattice constant, N cells thick along the beam, the last round(s N)
    cells (exit side) translated by 1/2 a<111>. Halides are Br or I with exactly
    round(b n) Br atoms per halide column of n sites, at random depths. One quarter
    of the cell, [0, a/2]^2, is scanned on an m x m grid; by the projected mm symmetry
    it holds one quarter of each column's a/2-square Voronoi cell, so a column's
    cross-section is 4 x (sum of its m/2 x m/2 block) x (a/2m)^2. ``intensity_err`` is
    the standard error over the frozen-phonon configurations. s = 0 uses abTEM exit
    planes so one run gives every thickness.

Frozen phonons are mandatory: without thermal diffuse scattering the column contrast
of the ADF signal largely collapses (abTEM 1.0.11, PHYSICS.md: 0.217 / 0.215 / 0.210
for a 4.9 nm slab; measured here for 2 x 2 cells of CsPbI3, 8 cells = 5.0 nm,
0.05 A sampling, 70-125 mrad: Cs/PbX = 0.64 without and 0.24-0.27 with them; at 4
cells 0.46 without and 0.27-0.44 with, too close to tell apart). :func:`check_table`
rejects a multislice table whose attributes say frozen phonons were off or fewer
than 8 configurations were used, whose configuration spread is zero (a static
lattice gives identical configurations), or whose CsPbI3 s = 0 contrast Cs/PbX is
not below 0.6 at 8 cells or more.

Fit (:func:`fit_column_model`): the exponent n, sigma_50 and the saturation S of the
power law are fitted to a multislice table by least squares on relative residuals
(lmfit, standard errors scaled by the reduced chi-square); the residuals are
returned per table entry.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import xarray as xr

from nanodomains import materials
from nanodomains.errors import FileFormatError, FitError, InputError
from nanodomains.stem.io import load_netcdf, save_netcdf
from nanodomains.stem.probe import ColumnModel, ProbeParameters, max_pixel_pm, probe_transfer

__all__ = [
    "COLUMNS",
    "column_counts",
    "crosstalk_matrix",
    "model_intensities",
    "MULTISLICE_COLUMN_MODEL",
    "default_multislice_table",
    "power_law_table",
    "table_axes",
    "table_dataset",
    "table_probe",
    "check_table",
    "save_table",
    "load_table",
    "ColumnModelFit",
    "fit_column_model",
    "column_ratios",
    "REGISTRY_SCHEMA",
    "SITES",
    "check_registry_table",
    "load_registry_table",
    "voronoi_site_integrals",
]

COLUMNS = ("Cs", "PbX", "X")

#: Power law fitted (:func:`fit_column_model`, spread on, no saturation) to the shipped
#: frozen-phonon multislice table (:func:`default_multislice_table`: 300 kV, 24 mrad,
#: 70-190 mrad, b = 0, 0.5, 1; s = 0, 0.5, 0.75; 8, 16, 24 cells): n = 2.23 +- 0.06,
#: sigma_50 = (4.19 +- 0.06)e-3 A^2, spread 15.4 +- 0.4 pm FWHM per nm of thickness;
#: relative residuals 7.5 % rms, 21 % max (the pure n = 1.7 power law: 12.6 % / 33 %).
MULTISLICE_COLUMN_MODEL = ColumnModel(exponent=2.23, sigma50_a2=4.19e-3, saturation_a2=None, spread_pm_per_nm=15.4)
_DATA = Path(__file__).with_name("data")
_MAX_CS_PBX = 0.6
_CONTRAST_MIN_CELLS = 8  # below ~5 nm the static-lattice contrast is not yet distinct


def table_axes(br_fraction, shifted_fraction, thickness_cells) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked, sorted table axes: Br fractions and shifted fractions in [0, 1], whole cells >= 1.

    Examples
    --------
    >>> b, s, n = table_axes([1, 0], [0.5], [16, 8])
    >>> b.tolist(), n.tolist()
    ([0.0, 1.0], [8, 16])
    """
    return (_grid("br_fraction", br_fraction, 0, 1), _grid("shifted_fraction", shifted_fraction, 0, 1),
            _cells(thickness_cells))


def _grid(name: str, values, lo: float, hi: float | None) -> np.ndarray:
    v = np.atleast_1d(np.asarray(values, dtype=float))
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
        raise InputError(f"{name} must be a non-empty 1-D list of finite numbers, got {values!r}")
    if np.any(v < lo) or (hi is not None and np.any(v > hi)):
        raise InputError(f"{name} must lie in [{lo}, {hi if hi is not None else 'inf'}], got {values!r}")
    if np.unique(v).size != v.size:
        raise InputError(f"{name} has repeated values: {values!r}")
    return np.sort(v)


def _cells(values) -> np.ndarray:
    v = _grid("thickness_cells", values, 1, None)
    if not np.allclose(v, np.round(v)):
        raise InputError(f"thickness_cells must be whole numbers of unit cells, got {values!r}")
    return v.astype(int)


def column_counts(br_fraction, shifted_fraction, n_cells) -> dict[str, np.ndarray]:
    """Atom counts (n_cs, n_pb, n_br, n_i) of the three columns, broadcast over b, s, N.

    Returns a dict column -> array of shape (..., 4). Counts are real numbers
    (the power law is linear in them; the multislice slab rounds s N and b n).
    """
    b = np.asarray(br_fraction, float)
    s = np.asarray(shifted_fraction, float)
    n = np.asarray(n_cells, float)
    un, sh = (1 - s) * n, s * n
    zero = np.zeros(np.broadcast_shapes(b.shape, s.shape, n.shape))
    return {
        "Cs": np.stack(np.broadcast_arrays(un, sh, sh * b, sh * (1 - b)), axis=-1) + zero[..., None],
        "PbX": np.stack(np.broadcast_arrays(sh, un, un * b, un * (1 - b)), axis=-1) + zero[..., None],
        "X": np.stack(np.broadcast_arrays(0 * n, 0 * n, n * b, n * (1 - b)), axis=-1) + zero[..., None],
    }


#: projected positions (units of a) of the four [100] columns of a cell: Cs, PbX, X(1/2,0), X(0,1/2)
_SITES = np.array([[0.0, 0.0], [0.5, 0.5], [0.5, 0.0], [0.0, 0.5]])


def crosstalk_matrix(lattice_pm: float, probe: ProbeParameters = ProbeParameters(),
                     cells: int = 8) -> np.ndarray:
    r"""Probe cross-talk between the [100] columns for Voronoi-square integration.

    In an infinite [100] lattice the intensity integrated over the a/2 x a/2 square
    around a column of type t is :math:`\sum_{t'} M_{tt'} \sigma_{t'}` with

    .. math:: M_{tt'} = \tfrac14 \sum_{h,k} \hat P(\mathbf g_{hk})
              e^{2\pi i\, (h, k)\cdot(\mathbf r_t - \mathbf r_{t'})}
              \operatorname{sinc}(h/2) \operatorname{sinc}(k/2),
              \qquad \mathbf g_{hk} = (h, k)/a,

    :math:`\hat P` the probe transform (source included, P^(0) = 1), computed by FFT
    on a grid of ``cells`` x ``cells`` unit cells so that every g falls on a grid
    frequency. Columns of each type sum to one (flux is conserved).

    Parameters
    ----------
    lattice_pm : float
        Lattice constant a.
    probe : ProbeParameters
    cells : int
        Periods per side of the FFT grid (the probe must fit in it).

    Returns
    -------
    numpy.ndarray
        (4, 4) matrix over (Cs, PbX, X(1/2,0), X(0,1/2)).
    """
    hk, ph = _probe_on_reciprocal_lattice(float(lattice_pm), probe, int(cells))
    return _crosstalk_sum(hk, ph)


@functools.lru_cache(maxsize=64)
def _probe_on_reciprocal_lattice(a: float, probe: ProbeParameters, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Reflection indices hk and P^(g_hk) (rows k, columns h) inside the grid's Nyquist limit."""
    n_a = int(math.ceil(a / max_pixel_pm(probe)))
    n_a += n_a % 2
    n = cells * n_a
    px = a / n_a
    p_hat = probe_transfer((n, n), px, probe, real=False) * (px / 100.0) ** 2
    hk = np.arange(-(n_a // 2) + 1, n_a // 2)
    idx = (hk * cells) % n
    return hk, p_hat[np.ix_(idx, idx)].real  # P^ is real for a centro-symmetric probe


def _crosstalk_sum(hk: np.ndarray, ph: np.ndarray) -> np.ndarray:
    w = ph * np.sinc(hk / 2)[:, None] * np.sinc(hk / 2)[None, :]
    d = _SITES[:, None, :] - _SITES[None, :, :]  # (t, t', xy)
    phase = np.exp(2j * np.pi * (d[..., 0, None, None] * hk[None, None, None, :]
                                 + d[..., 1, None, None] * hk[None, None, :, None]))
    return 0.25 * np.real(np.einsum("kh,stkh->st", w, phase))


def _crosstalk3(lattice_pm: float, probe: ProbeParameters, extra_fwhm_pm: float) -> np.ndarray:
    """3 x 3 cross-talk (Cs, PbX, X) with an extra Gaussian spread (the probe part is cached)."""
    hk, ph = _probe_on_reciprocal_lattice(float(lattice_pm), probe, 8)
    if extra_fwhm_pm > 0:
        sig = extra_fwhm_pm / (2 * math.sqrt(2 * math.log(2)))
        g2 = (hk[:, None] ** 2 + hk[None, :] ** 2) / float(lattice_pm) ** 2
        ph = ph * np.exp(-2 * np.pi**2 * sig**2 * g2)
    m4 = _crosstalk_sum(hk, ph)
    rows = [0, 1, 2]
    return np.column_stack([m4[rows, 0], m4[rows, 1], m4[rows, 2] + m4[rows, 3]])


def model_intensities(model: ColumnModel, br_fraction, shifted_fraction, thickness_cells,
                      crosstalk_probe: ProbeParameters | None = None) -> np.ndarray:
    """Column intensities (A^2) of the power-law model on a (b, s, N) grid, shape (nb, ns, nN, 3).

    Without ``crosstalk_probe`` these are the cross-sections; with it, what a/2-square
    integration measures: cross-sections mixed by the probe's cross-talk, widened by the
    model's thickness spread (FWHM ``spread_pm_per_nm * N a(b)``).
    """
    b = np.asarray(br_fraction, float)
    s = np.asarray(shifted_fraction, float)
    n = np.asarray(thickness_cells, float)
    counts = column_counts(b[:, None, None], s[None, :, None], n[None, None, :])
    inten = np.stack([model.column(*np.moveaxis(counts[c], -1, 0)) for c in COLUMNS], axis=-1)
    if crosstalk_probe is None:
        return inten
    for ib, bb in enumerate(b):
        a_pm = float(materials.lattice_constant_pm(bb))
        for i_n, nn in enumerate(n):
            fwhm = float(model.spread_fwhm_pm(nn * a_pm / 1000))
            inten[ib, :, i_n] = inten[ib, :, i_n] @ _crosstalk3(a_pm, crosstalk_probe, fwhm).T
    return inten


def table_dataset(b, s, n, intensity, err, attrs: dict, convention: str = "cubic") -> xr.Dataset:
    """A column-intensity table from its axes (:func:`table_axes`), ``intensity`` and
    ``intensity_err`` (A^2, shape (nb, ns, nN, 3)) and attributes; adds the
    ``thickness_nm`` and ``lattice_pm`` coordinates (Vegard, ``convention``)."""
    a_nm = np.asarray(materials.lattice_constant_pm(b, convention)) / 1000
    return xr.Dataset(
        {"intensity": (("br_fraction", "shifted_fraction", "thickness_cells", "column"), intensity,
                       {"units": "A^2", "long_name": "probe-integrated column cross-section"}),
         "intensity_err": (("br_fraction", "shifted_fraction", "thickness_cells", "column"), err,
                           {"units": "A^2"})},
        coords={"br_fraction": b, "shifted_fraction": s, "thickness_cells": n, "column": list(COLUMNS),
                "thickness_nm": (("br_fraction", "thickness_cells"), np.outer(a_nm, n),
                                 {"units": "nm"}),
                "lattice_pm": ("br_fraction", a_nm * 1000, {"units": "pm"})},
        attrs=attrs)


def power_law_table(br_fraction=np.linspace(0, 1, 11), shifted_fraction=np.linspace(0, 1, 11),
                    thickness_cells=(8, 16, 24), model: ColumnModel = ColumnModel(),
                    crosstalk_probe: ProbeParameters | None = None) -> xr.Dataset:
    """Table (a): column cross-sections from the power law (see module docstring).

    Parameters
    ----------
    br_fraction, shifted_fraction : sequence of float in [0, 1]
    thickness_cells : sequence of int
        Column lengths in unit cells.
    model : ColumnModel
        Exponent, scale and optional channelling saturation.
    crosstalk_probe : ProbeParameters, optional
        If given, the intensities are those a/2-square (Voronoi) integration measures
        in an incoherent image with this probe (and the model's thickness spread),
        i.e. the cross-sections mixed by :func:`crosstalk_matrix` of each
        composition's lattice constant (2-4 % of a column's signal lands in its
        neighbours' squares with the default probe and no spread).

    Returns
    -------
    xarray.Dataset
        ``intensity`` (A^2) with ``intensity_err`` = 0 (exact); ``method`` = "power_law".
    """
    b, s, n = table_axes(br_fraction, shifted_fraction, thickness_cells)
    inten = model_intensities(model, b, s, n, crosstalk_probe)
    attrs = {"method": "power_law", **model.to_attrs(),
             "formula": "S (1 - exp(-sum sigma50 (Z/50)^n / S)); S = 0 means no saturation",
             "crosstalk": ("none: pure column cross-sections" if crosstalk_probe is None else
                           "a/2-square Voronoi integration with probe " + ", ".join(
                               f"{k}={v}" for k, v in crosstalk_probe.to_attrs().items())),
             "reference": "PHYSICS.md, Z-contrast of [100]-projected CsPbX3"}
    return table_dataset(b, s, n, inten, np.zeros_like(inten), attrs)


# ---------------------------------------------------------------------------- guard, I/O


def column_ratios(table: xr.Dataset) -> xr.Dataset:
    """Cs/PbX and X/PbX intensity ratios of a table."""
    i = table["intensity"]
    pbx = i.sel(column="PbX")
    return xr.Dataset({"cs_pbx": i.sel(column="Cs") / pbx, "x_pbx": i.sel(column="X") / pbx})


def check_table(table: xr.Dataset, label: str = "table") -> xr.Dataset:
    """Validate a column-intensity table; multislice tables must carry frozen phonons.

    Raises
    ------
    FileFormatError
        Missing variables, coordinates or non-finite intensities.
    InputError
        A multislice table computed without frozen phonons: attributes say so, fewer
        than 8 configurations, zero spread over configurations, or CsPbI3 (b = 0,
        s = 0) contrast Cs/PbX >= 0.6 at 8 cells or more (the static-lattice
        signature).
    """
    for name in ("intensity", "intensity_err"):
        if name not in table:
            raise FileFormatError(f"{label}: variable {name!r} missing (not a column-intensity table)")
    dims = ("br_fraction", "shifted_fraction", "thickness_cells", "column")
    if tuple(table["intensity"].dims) != dims:
        raise FileFormatError(f"{label}: intensity dims {table['intensity'].dims}, expected {dims}")
    if list(table["column"].values) != list(COLUMNS):
        raise FileFormatError(f"{label}: columns {list(table['column'].values)}, expected {list(COLUMNS)}")
    if not np.all(np.isfinite(table["intensity"].values)) or np.any(table["intensity"].values <= 0):
        raise FileFormatError(f"{label}: intensities must be finite and > 0")
    method = table.attrs.get("method")
    if method not in ("power_law", "multislice"):
        raise FileFormatError(f"{label}: attribute method={method!r}, expected 'power_law' or 'multislice'")
    if method == "multislice":
        if int(table.attrs.get("frozen_phonons", 0)) != 1:
            raise InputError(f"{label}: multislice table computed without frozen phonons; column contrast "
                             "is then unphysical (recompute with frozen_phonons=True)")
        if int(table.attrs.get("num_configs", 0)) < 8:
            raise InputError(f"{label}: multislice table with {table.attrs.get('num_configs')} frozen-phonon "
                             "configurations; at least 8 are required")
        if not np.all(table["intensity_err"].values > 0):
            raise InputError(f"{label}: zero spread over frozen-phonon configurations: thermal displacements "
                             "were not applied")
        ratios = column_ratios(table)["cs_pbx"]
        thick = table["thickness_cells"].values >= _CONTRAST_MIN_CELLS
        if 0.0 in table["br_fraction"].values and 0.0 in table["shifted_fraction"].values and thick.any():
            r0 = ratios.sel(br_fraction=0.0, shifted_fraction=0.0).values[thick]
            if np.any(r0 >= _MAX_CS_PBX):
                raise InputError(f"{label}: CsPbI3 (s = 0) contrast Cs/PbX = {np.round(r0, 3).tolist()} is not "
                                 f"below {_MAX_CS_PBX}: the frozen-phonon (thermal diffuse) contrast is missing")
    return table


def save_table(table: xr.Dataset, path: str | Path) -> Path:
    """Write a checked table to netCDF (h5netcdf), atomically."""
    p = Path(path)
    if p.suffix.lower() != ".nc":
        raise InputError(f"{p}: column-intensity tables are written as netCDF (.nc)")
    check_table(table, str(p))
    return save_netcdf(table, p)


def load_table(path: str | Path) -> xr.Dataset:
    """Read and check a column-intensity table written by :func:`save_table`."""
    return check_table(load_netcdf(path, "column-intensity table"), str(path))


def default_multislice_table() -> xr.Dataset:
    """The frozen-phonon multislice table shipped with nanodomains (see :data:`MULTISLICE_COLUMN_MODEL`).

    Computed with ``nanodomains.stem.table_build.multislice_table((0, 0.5, 1), (0, 0.5, 0.75), (8, 16, 24),
    scan_points=6, tile=2, seed=1)`` and the default :class:`MultisliceSettings`
    (abTEM 1.0.11; 39 min on two shared cores); its attributes hold every parameter.
    """
    return load_table(_DATA / "multislice_table.nc")


# ---------------------------------------------------------------------------- fit


@dataclass
class ColumnModelFit:
    """Power-law fit to a multislice table.

    Attributes
    ----------
    model : ColumnModel
        Best-fit model.
    exponent_err, sigma50_err : float
        Standard errors (0 for a parameter held fixed).
    saturation_err, spread_err : float or None
        Standard errors (None when the term is not fitted).
    residuals : xarray.DataArray
        Relative residuals (model - multislice) / multislice per table entry.
    rms_relative : float
        Root-mean-square relative residual.
    max_relative : float
        Largest absolute relative residual.
    """

    model: ColumnModel
    exponent_err: float
    sigma50_err: float
    saturation_err: float | None
    spread_err: float | None
    residuals: xr.DataArray
    rms_relative: float
    max_relative: float

    def summary(self) -> dict:
        m = self.model
        return {"exponent": m.exponent, "exponent_err": self.exponent_err,
                "sigma50_a2": m.sigma50_a2, "sigma50_err": self.sigma50_err,
                "saturation_a2": m.saturation_a2, "saturation_err": self.saturation_err,
                "spread_pm_per_nm": m.spread_pm_per_nm, "spread_err": self.spread_err,
                "rms_relative": self.rms_relative, "max_relative": self.max_relative}


def table_probe(table: xr.Dataset) -> ProbeParameters:
    """The probe of a multislice table (:meth:`ProbeParameters.from_attrs`; no source
    blur: the table applies none)."""
    try:
        return replace(ProbeParameters.from_attrs(table.attrs), source_fwhm_pm=0.0)
    except FileFormatError as exc:
        raise FileFormatError(f"multislice table: {exc}") from exc


def fit_column_model(table: xr.Dataset, saturation: bool = False, spread: bool = True,
                     exponent: float | None = None) -> ColumnModelFit:
    """Fit n, sigma_50 (and the saturation S and/or thickness spread) to a multislice table.

    The multislice intensities are a/2-square integrals, so the model is compared
    through the cross-talk of the table's probe (:func:`model_intensities`). Residuals
    are relative; standard errors are lmfit's (scaled by the reduced chi-square).

    Parameters
    ----------
    table : xarray.Dataset
        A multislice table (checked with :func:`check_table`).
    saturation : bool
        Fit the saturation S.
    spread : bool
        Fit the thickness spread (pm of FWHM per nm).
    exponent : float, optional
        Hold n fixed at this value.

    Returns
    -------
    ColumnModelFit

    Raises
    ------
    FitError
        The fit did not converge, its covariance is undefined, or a parameter ran
        to its bound.
    """
    import lmfit

    check_table(table)
    if table.attrs.get("method") != "multislice":
        raise InputError("fit_column_model needs a multislice table (method = 'multislice')")
    probe = table_probe(table)
    b = table["br_fraction"].values
    s = table["shifted_fraction"].values
    n = table["thickness_cells"].values
    data = table["intensity"].values

    def model_of(p) -> tuple[ColumnModel, np.ndarray]:
        mdl = ColumnModel(exponent=p["exponent"].value, sigma50_a2=10 ** p["log10_sigma50"].value,
                          saturation_a2=10 ** p["log10_saturation"].value if saturation else None,
                          spread_pm_per_nm=p["spread"].value if spread else 0.0)
        return mdl, model_intensities(mdl, b, s, n, probe)

    params = lmfit.Parameters()
    params.add("exponent", value=exponent or 1.7, min=0.5, max=4.0, vary=exponent is None)
    unit = model_intensities(ColumnModel(exponent=exponent or 1.7, sigma50_a2=1.0), b, s, n)
    params.add("log10_sigma50", value=math.log10(float(np.median(data / unit))), min=-8, max=2)
    if saturation:
        params.add("log10_saturation", value=math.log10(data.max() * 3), min=-6, max=4)
    if spread:
        params.add("spread", value=10.0, min=0.0, max=200.0)

    def resid(p):
        return ((model_of(p)[1] - data) / data).ravel()

    res = lmfit.minimize(resid, params, method="least_squares")
    if not res.success:
        raise FitError(f"column-model fit did not converge: {res.message}")
    if res.covar is None:
        raise FitError("column-model fit: covariance undefined (parameters not constrained by the table)")
    p = res.params
    for name, par in p.items():
        tol = 1e-3 * (par.max - par.min)
        if par.vary and (par.value - par.min < tol or par.max - par.value < tol):
            raise FitError(f"column-model fit: parameter {name} ran to its bound ({par.value:g}); the table does "
                           "not constrain it, fit without that term")
    mdl, pred = model_of(p)
    rel = (pred - data) / data
    sig_err = math.log(10) * mdl.sigma50_a2 * (p["log10_sigma50"].stderr or 0.0)
    sat_err = (math.log(10) * mdl.saturation_a2 * (p["log10_saturation"].stderr or 0.0)) if saturation else None
    spr_err = float(p["spread"].stderr or 0.0) if spread else None
    residuals = xr.DataArray(rel, dims=table["intensity"].dims, coords=table["intensity"].coords,
                             name="relative_residual")
    return ColumnModelFit(model=mdl, exponent_err=float(p["exponent"].stderr or 0.0), sigma50_err=float(sig_err),
                          saturation_err=sat_err, spread_err=spr_err, residuals=residuals,
                          rms_relative=float(np.sqrt(np.mean(rel**2))), max_relative=float(np.abs(rel).max()))


#: schema of the registry-depth table (:mod:`nanodomains.stem.zcontrast`; built by
#: :func:`nanodomains.stem.table_build.registry_table`)
REGISTRY_SCHEMA = "nanodomains.stem.registry_table/1"
#: its three sites: Cs-site (0, 0), PbX-site (1/2, 1/2), X (mean of (1/2, 0) and (0, 1/2))
SITES = ("Cs-site", "PbX-site", "X")


# ------------------------------------------------------------------ registry-depth tables (reading)


def check_registry_table(table: xr.Dataset, label: str = "registry table") -> xr.Dataset:
    """Validate a registry-depth table (variables, dims, finiteness, frozen phonons)."""
    if table.attrs.get("schema") != REGISTRY_SCHEMA:
        raise FileFormatError(f"{label}: schema {table.attrs.get('schema')!r}, expected {REGISTRY_SCHEMA!r}")
    dims = ("br_fraction", "regular_cells", "thickness_cells", "config", "site")
    if "intensity_configs" not in table or tuple(table["intensity_configs"].dims) != dims:
        raise FileFormatError(f"{label}: variable intensity_configs with dims {dims} missing")
    v = table["intensity_configs"].values
    if not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise FileFormatError(f"{label}: intensities must be finite and > 0")
    if list(table["site"].values) != list(SITES):
        raise FileFormatError(f"{label}: sites {list(table['site'].values)}, expected {list(SITES)}")
    if table.sizes["config"] < 8 or not np.all(v.std(axis=3) > 0):
        raise InputError(f"{label}: needs >= 8 frozen-phonon configurations with non-zero spread")
    if table.sizes["br_fraction"] < 3:
        raise InputError(f"{label}: needs at least three Br fractions")
    return table


def load_registry_table(path: str | Path | None = None) -> xr.Dataset:
    """Read and check a registry table (default: the shipped ``stem/data/registry_table.nc``)."""
    p = Path(path) if path is not None else _DATA / "registry_table.nc"
    if not p.exists():
        raise InputError(f"registry table {p} not found")
    return check_registry_table(load_netcdf(p, "registry table"), str(p))


def voronoi_site_integrals(arr: np.ndarray, a_a: float) -> np.ndarray:
    """(..., M, M) scan of one full cell at ((i + 1/2) a / M) -> (..., 3) cross-sections (A^2) of
    the Cs-site (0, 0), PbX-site (1/2, 1/2) and mean X-site columns over their a/2 squares."""
    m = arr.shape[-1]
    if arr.shape[-2] != m or m % 4:
        raise InputError(f"full-cell scan must be M x M with M a multiple of 4, got {arr.shape[-2:]}")
    h = m // 4
    idx = np.arange(m)
    inner = (idx >= h) & (idx < m - h)
    area = (a_a / m) ** 2

    def block(mx, my):
        return arr[..., mx, :][..., my].sum(axis=(-2, -1)) * area

    return np.stack([block(~inner, ~inner), block(inner, inner),
                     0.5 * (block(inner, ~inner) + block(~inner, inner))], axis=-1)

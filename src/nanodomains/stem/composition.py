r"""Per-domain composition from Z-contrast column intensities (the seed's Fig. 1g).

Measured intensities. Each column's scattering cross-section is the sum of the image
minus the vacuum level over its Voronoi cell (StatSTEM's measure, see
:mod:`nanodomains.stem.columns`): the vacuum level (detector offset, amorphous support)
is the mean of the pixels farther than ``vacuum_cells`` cells from every column. Per
domain the mean cross-sections of its *interior* columns (one cell from other domains
and the crystal edge, complete Voronoi cells, good fits) of the three classes are taken:
the bright cation column :math:`I_B`, the dim one :math:`I_D` and the X column
:math:`I_X`. The ratios

.. math:: r_1 = I_D / I_B, \qquad r_2 = I_X / I_B

do not depend on the dose, the detector gain or the scale of the table.

Crystals that fill the field. Without vacuum pixels (a crystal larger than the
field, a crop from inside a nanocrystal) no vacuum level can be measured. The column
intensities are then the volumes :math:`2\pi A\sigma^2` of the Gaussians of the
joint column fit above its fitted background (:mod:`nanodomains.stem.columns`; the
smooth lower envelope of the image under the columns): StatSTEM's scattering
cross-sections (De Backer et al., Ultramicroscopy 171, 104 (2016)), which a joint
fit separates from the neighbouring columns, so the default power-law table is then
used *without* the a/2-square cross-talk (:func:`background_from_column_fits`). On
the forward-model images of the Fig. 1 nanocrystal the Br fractions from the column
volumes agree with those from vacuum-subtracted Voronoi sums within 0.015
(docs/stem_analysis.md). The diffuse intensity between columns (probe tails,
thermal diffuse scattering) is part of that background, so the level (reported) lies
well above the vacuum level, and a Voronoi sum minus it would bias the ratios.

Model (PHYSICS.md, "Z-contrast of [100]-projected CsPbX3"; tables of
:mod:`nanodomains.stem.tables`). A column of N cells with a fraction s of them in the
other registry (1/2 a<111> shifted) and Br fraction b has the intensities
:math:`I_\mathrm{Cs}(b, s, N)`, :math:`I_\mathrm{PbX}(b, s, N)`, :math:`I_X(b, s, N)`
of the table. The two registries are symmetric (:math:`I_\mathrm{Cs}(b, s) =
I_\mathrm{PbX}(b, 1-s)`), so the intensities determine the *mixed fraction*
:math:`m = \min(s, 1-s) \in [0, 1/2]`: the bright column is the PbX site and the dim
one the Cs site of the majority registry,

.. math:: I_B = I_\mathrm{PbX}(b, m, N) + t_B, \quad I_D = I_\mathrm{Cs}(b, m, N) + t_D,
          \quad I_X = I_X(b, m, N).

Termination (``termination="CsX"``, default): CsPbX3 nanocrystals end in CsX layers
on both faces along the beam, so a column holds one more CsX layer than cells: its Cs
adds to the Cs site and its X (at (1/2, 1/2) in projection) to the PbX site, in the
surface cell's registry: :math:`t_D = (1-m)\,\delta_\mathrm{Cs} + m\,\delta_X`,
:math:`t_B = (1-m)\,\delta_X + m\,\delta_\mathrm{Cs}` with the per-cell
contributions :math:`\delta_\mathrm{Cs} = I_\mathrm{Cs}(b, 0, N)/N` and
:math:`\delta_X = I_X(b, 0, N)/N` of the table (exact for the linear power law, a
first-order correction for a multislice table). ``termination="none"`` drops it.
The thickness N enters only through this correction for a power-law table (ratios
of a linear model do not depend on N); for a multislice table through the table
itself. N is ``thickness_nm`` / a, or, with ``thickness_nm="cube"``, the square root
of the crystal's projected area (a cube seen along [100]; the crystal must lie
inside the image).

Table. Default: the power law of :func:`nanodomains.stem.tables.power_law_table`
(n = 1.7, no channelling saturation) with the probe cross-talk of a/2-square
integration (:func:`nanodomains.stem.tables.crosstalk_matrix`) for the probe in the
image metadata (beam energy, convergence semi-angle, source size; without them no
cross-talk correction, which biases X/PbX by +4-6 %: said in the result). Any table
of that module (power law with other parameters, frozen-phonon multislice) can be
given; its method is stated in the result.

Inversion. :math:`(b, m)` minimise
:math:`\chi^2 = \sum_k (r_k - \hat r_k(b, m))^2/\sigma_k^2` (:math:`\sigma_k`: bootstrap
standard deviations of the measured ratios) over :math:`b \in [0, 1]`,
:math:`m \in [0, 1/2]`: a grid search (steps 0.02 and 0.01) refined on a local grid of
step 0.001, vectorised over bootstrap samples. Uncertainties: ``n_boot`` bootstrap
resamplings of the domain's columns (each class resampled with replacement; the
spread includes shot noise and the random Br/I occupation of the columns), the
half-width of the 16-84 % interval as ``*_err`` and the 2.5-97.5 % interval as
``*_ci95``. The table's own ``intensity_err`` (the frozen-phonon spread of a
multislice table; zero for the power law) enters by perturbing every bootstrap
sample's ratios with it. Systematic errors of the table (exponent, channelling of
the power law; slab size of a multislice table) are not included.

Shifted unit-cell ratio. The seed (Liu et al., Nano Lett. 23, 10089 (2023)) does not
define its "shifted unit-cell ratio" in the main text. Here ``shifted_fraction`` s is
the fraction of the column's cells (along the beam) that lie in the registry opposite
to the *reference registry* of the crystal, the registry of its largest domain
(:mod:`nanodomains.stem.domains`): s = m for domains in the reference registry and
s = 1 - m for the others. Only m, the ``mixed_fraction``, is independent of that
choice; which registry is called "unshifted" is a convention.

Vegard cross-check. :math:`b_V = (a - a_\mathrm I)/(a_\mathrm{Br} - a_\mathrm I)`
from the domain's measured lattice constant (:func:`nanodomains.materials.br_fraction_from_lattice`,
cubic end members by default) with
:math:`\sigma_V = \sqrt{\sigma_a^2 + (\epsilon a)^2}/|a_\mathrm{Br} - a_\mathrm I|`,
:math:`\epsilon` the relative pixel-size calibration uncertainty (``pixel_size_rel_err``,
0 unless given: a 1 % calibration error alone moves b_V by ~0.15). The result flags
``vegard_agrees = False`` when :math:`|b - b_V| > k\sqrt{\sigma_b^2 + \sigma_V^2}`
(k = ``vegard_sigma``, 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
from scipy.interpolate import RegularGridInterpolator

from nanodomains import materials
from nanodomains.errors import InputError, require_positive

__all__ = [
    "CompositionModel",
    "background_from_column_fits",
    "background_level",
    "column_cross_sections",
    "default_table",
    "domain_composition",
    "domain_class_means",
    "class_means",
    "not_computed_result",
    "vegard_check",
    "invert_ratios",
    "thickness_cells",
    "SHIFTED_FRACTION_DEFINITION",
    "COMPOSITION_MODEL",
]

#: a column length within this relative distance of a table's thickness uses that thickness
_THICKNESS_TOL = 0.05

SHIFTED_FRACTION_DEFINITION = (
    "shifted_fraction s = fraction of the column thickness (unit cells along the beam) in the "
    "registry opposite to the crystal's reference registry (that of its largest domain); "
    "mixed_fraction = min(s, 1 - s) is what the column intensities determine; the seed paper does "
    "not define its 'shifted unit-cell ratio'"
)


# --------------------------------------------------------------------------- intensities


def background_level(image: np.ndarray, positions_px: np.ndarray, cell_px: float,
                     vacuum_cells: float = 1.5, min_pixels: int = 400) -> tuple[float, float, int]:
    """Mean vacuum level: pixels farther than ``vacuum_cells`` cells from every column.

    Returns
    -------
    level, level_err : float
        Mean and its standard error (per pixel, image units).
    n_pixels : int

    Raises
    ------
    InputError
        Fewer than ``min_pixels`` vacuum pixels (the crystal fills the field): give
        the background explicitly.
    """
    from scipy import ndimage

    occupied = np.zeros(image.shape, bool)
    iy = np.clip(np.round(positions_px[:, 0]).astype(int), 0, image.shape[0] - 1)
    ix = np.clip(np.round(positions_px[:, 1]).astype(int), 0, image.shape[1] - 1)
    occupied[iy, ix] = True
    vac = ndimage.distance_transform_edt(~occupied) > vacuum_cells * cell_px
    n = int(vac.sum())
    if n < min_pixels:
        raise InputError(
            f"only {n} vacuum pixels (> {vacuum_cells} cells from every column): the crystal fills the "
            "field, so the background cannot be measured; give background= (image units per pixel)"
        )
    v = image[vac]
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(n)), n


def background_from_column_fits(fitted_background: np.ndarray, use: np.ndarray) -> tuple[float, float, int]:
    """Background level of the joint column fits under the columns used (no vacuum needed).

    Parameters
    ----------
    fitted_background : ndarray, shape (n_columns,)
        The fitted background under each column (``background`` of the column
        table of :func:`nanodomains.stem.columns.find_columns`).
    use : ndarray of bool
        Columns that count (good fits inside the crystal).

    Returns
    -------
    level, level_err : float
        Median and its standard error (robust scatter / sqrt(n)), image units per pixel.
    n_columns : int

    Raises
    ------
    InputError
        Fewer than 10 usable columns.
    """
    v = np.asarray(fitted_background, float)[np.asarray(use, bool)]
    v = v[np.isfinite(v)]
    if len(v) < 10:
        raise InputError(f"only {len(v)} well-fitted columns: no background from the column fits")
    med = float(np.median(v))
    return med, float(1.4826 * np.median(np.abs(v - med)) / np.sqrt(len(v))), int(len(v))


def column_cross_sections(image: np.ndarray, positions_px: np.ndarray, cell_px: float,
                          background: float) -> tuple[np.ndarray, np.ndarray]:
    """Voronoi-cell sums of ``image - background`` (image units x px) and completeness.

    Uses :func:`nanodomains.stem.columns.voronoi_integrate` with the cell radius of
    :func:`~nanodomains.stem.columns.find_columns` (0.75 cell).
    """
    from nanodomains.stem.columns import voronoi_integrate

    integ, _, complete = voronoi_integrate(image - background, positions_px, max_radius_px=0.75 * cell_px)
    return integ, complete


# --------------------------------------------------------------------------- table model


def default_table(attrs: dict[str, Any] | None = None, *, exponent: float = 1.7,
                  crosstalk: bool = True) -> tuple[xr.Dataset, str]:
    """Power-law table (b, s on 0.05 grids; 8-40 cells) with the image's probe cross-talk.

    Parameters
    ----------
    attrs : dict, optional
        Image attributes; ``beam_energy_kev`` and ``convergence_semiangle_mrad`` (and
        ``source_fwhm_pm``, ``defocus_nm``, ``cs_um`` if present) define the probe.
    exponent : float
        Power-law exponent n.
    crosstalk : bool
        Include the a/2-square cross-talk when the probe is known.

    Returns
    -------
    table : xarray.Dataset
    note : str
        How the table was made (for the result).
    """
    from nanodomains.errors import FileFormatError
    from nanodomains.stem import tables
    from nanodomains.stem.probe import ColumnModel, ProbeParameters

    attrs = attrs or {}
    note = f"power law n = {exponent:g} (PHYSICS.md), no channelling saturation"
    try:
        probe = ProbeParameters.from_attrs(attrs, detector=False) if crosstalk else None
    except FileFormatError:  # beam energy or convergence angle not recorded
        probe = None
    if probe is not None:
        src = attrs.get("source_fwhm_pm")
        note += (f"; a/2-square cross-talk for the probe {probe.beam_energy_kev:g} kV, "
                 f"{probe.convergence_semiangle_mrad:g} mrad, source {probe.source_fwhm_pm:g} pm FWHM"
                 + ("" if src is not None else " (source size not in the metadata: 0 assumed)"))
    elif crosstalk:
        note += "; no cross-talk correction (beam energy / convergence angle not in the metadata)"
    else:
        note += "; no cross-talk correction"
    grid = np.linspace(0.0, 1.0, 21)
    table = tables.power_law_table(grid, grid, (8, 16, 24, 32, 40), ColumnModel(exponent=exponent),
                                   crosstalk_probe=probe)
    return table, note


@dataclass
class CompositionModel:
    """Ratios r1 = I_dim/I_bright, r2 = I_X/I_bright of a table at one thickness.

    Parameters
    ----------
    table : xarray.Dataset
        Column-intensity table (:mod:`nanodomains.stem.tables`).
    n_cells : float
        Column length in cells.
    termination : {"CsX", "none"}
        Extra CsX layer (module docstring).
    """

    table: xr.Dataset
    n_cells: float
    termination: str = "CsX"
    _interp: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        from nanodomains.stem.tables import COLUMNS, check_table

        check_table(self.table)
        if self.termination not in ("CsX", "none"):
            raise InputError(f"termination must be 'CsX' or 'none', got {self.termination!r}")
        n = require_positive("n_cells", self.n_cells)
        dims = ("br_fraction", "shifted_fraction", "thickness_cells", "column")
        cells = self.table["thickness_cells"].values.astype(float)
        vals = self.table["intensity"].transpose(*dims).values
        errs = self.table["intensity_err"].transpose(*dims).values
        if self._linear():  # the power law is linear in N: exact inter- and extrapolation
            scale = n / cells[0] if len(cells) == 1 else None
        else:
            # a thickness within _THICKNESS_TOL of the table's range uses the end value
            if cells.min() / (1 + _THICKNESS_TOL) <= n < cells.min():
                n = float(cells.min())
            elif cells.max() < n <= cells.max() * (1 + _THICKNESS_TOL):
                n = float(cells.max())
            if not cells.min() <= n <= cells.max():
                raise InputError(
                    f"thickness {n:.1f} cells lies outside the table's {cells.min():g}-{cells.max():g} cells "
                    f"(by more than {_THICKNESS_TOL:.0%}); compute a table that covers it"
                )
            scale = 1.0 if len(cells) == 1 else None

        def at_thickness(v: np.ndarray) -> np.ndarray:
            if scale is not None:
                return v[:, :, 0, :] * scale
            j = int(np.clip(np.searchsorted(cells, n) - 1, 0, len(cells) - 2))
            w = (n - cells[j]) / (cells[j + 1] - cells[j])
            return (1 - w) * v[:, :, j, :] + w * v[:, :, j + 1, :]

        at_n = at_thickness(vals)
        err_n = np.abs(at_thickness(errs))
        self.n_cells = n
        order = [list(self.table["column"].values).index(c) for c in COLUMNS]
        at_n = at_n[..., order]
        err_n = err_n[..., order]
        b = self.table["br_fraction"].values
        s = self.table["shifted_fraction"].values
        if b.size < 2 or s.size < 2 or s.min() > 0 or s.max() < 0.5:
            raise InputError("the table needs at least two Br fractions and shifted fractions covering 0-0.5")
        self._interp = RegularGridInterpolator((b, s), at_n, bounds_error=False, fill_value=None)
        self._per_cell = RegularGridInterpolator((b,), at_n[:, np.argmin(np.abs(s)), :] / n,
                                                 bounds_error=False, fill_value=None)
        self._interp_rel_err = RegularGridInterpolator((b, s), err_n / at_n, bounds_error=False, fill_value=None)
        self.b_range = (float(b.min()), float(b.max()))

    def _linear(self) -> bool:
        return self.table.attrs.get("method") == "power_law" and not float(self.table.attrs.get("column_saturation_a2", 0.0))

    def intensities(self, b: np.ndarray, m: np.ndarray) -> np.ndarray:
        """(..., 3) model intensities (bright, dim, X) at Br fraction b and mixed fraction m."""
        b = np.asarray(b, float)
        m = np.asarray(m, float)
        pts = np.stack(np.broadcast_arrays(b, m), axis=-1)
        v = self._interp(pts.reshape(-1, 2)).reshape(pts.shape[:-1] + (3,))  # Cs, PbX, X
        bright, dim, x = v[..., 1], v[..., 0], v[..., 2]
        if self.termination == "CsX":
            pc = self._per_cell(np.broadcast_to(b, pts.shape[:-1]).reshape(-1, 1)).reshape(pts.shape[:-1] + (3,))
            d_cs, d_x = pc[..., 0], pc[..., 2]
            mm = pts[..., 1]
            dim = dim + (1 - mm) * d_cs + mm * d_x
            bright = bright + (1 - mm) * d_x + mm * d_cs
        return np.stack([bright, dim, x], axis=-1)

    def ratios(self, b: np.ndarray, m: np.ndarray) -> np.ndarray:
        """(..., 2) model ratios (dim/bright, X/bright)."""
        v = self.intensities(b, m)
        return np.stack([v[..., 1] / v[..., 0], v[..., 2] / v[..., 0]], axis=-1)

    def ratio_err(self, b: float, m: float) -> np.ndarray:
        """Standard errors of the model ratios from the table's ``intensity_err``.

        Relative errors of the columns (frozen-phonon spread of a multislice table;
        zero for the power law) added in quadrature: (dim/bright, X/bright).
        """
        e = self._interp_rel_err(np.array([[b, m]]))[0]  # Cs, PbX, X
        r = self.ratios(np.array(b), np.array(m))
        return np.abs(r) * np.array([np.hypot(e[0], e[1]), np.hypot(e[2], e[1])])


def invert_ratios(model: CompositionModel, ratios: np.ndarray, sigma: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Br fraction b and mixed fraction m that best reproduce measured ratios.

    Parameters
    ----------
    model : CompositionModel
    ratios : ndarray, shape (k, 2)
        Measured (dim/bright, X/bright), one row per sample (e.g. bootstrap).
    sigma : ndarray, shape (2,), optional
        Weights of the two ratios (default equal).

    Returns
    -------
    b, m, chi2 : ndarray, shape (k,)
        Best fit and its chi^2 (0 when the ratios are reproduced exactly).
    """
    r = np.atleast_2d(np.asarray(ratios, float))
    w = np.ones(2) if sigma is None else 1.0 / np.maximum(np.asarray(sigma, float), 1e-12)
    lo, hi = model.b_range
    bg = np.linspace(lo, hi, 51)
    mg = np.linspace(0.0, 0.5, 51)
    bb, mm = np.meshgrid(bg, mg, indexing="ij")
    grid_r = model.ratios(bb.ravel(), mm.ravel())  # (G, 2)
    chi = (((grid_r[None, :, :] - r[:, None, :]) * w) ** 2).sum(axis=-1)
    k = chi.argmin(axis=1)
    b0, m0 = bb.ravel()[k], mm.ravel()[k]
    db, dm = bg[1] - bg[0], mg[1] - mg[0]
    fb = np.linspace(-1.5 * db, 1.5 * db, 31)
    fm = np.linspace(-1.5 * dm, 1.5 * dm, 31)
    lb = np.clip(b0[:, None, None] + fb[None, :, None], lo, hi) + 0 * fm[None, None, :]
    lm = np.clip(m0[:, None, None] + fm[None, None, :], 0.0, 0.5) + 0 * fb[None, :, None]
    loc_r = model.ratios(lb, lm)  # (k, 31, 31, 2)
    chi2 = (((loc_r - r[:, None, None, :]) * w) ** 2).sum(axis=-1).reshape(len(r), -1)
    j = chi2.argmin(axis=1)
    rows = np.arange(len(r))
    return lb.reshape(len(r), -1)[rows, j], lm.reshape(len(r), -1)[rows, j], chi2[rows, j]


# --------------------------------------------------------------------------- per domain


def class_means(values: np.ndarray, groups: list[np.ndarray], rng: np.random.Generator | None,
                 n_boot: int) -> np.ndarray:
    """(n_boot + 1, n_groups) means: row 0 of the data, then bootstrap resamples."""
    out = np.empty((n_boot + 1, len(groups)))
    for g, idx in enumerate(groups):
        v = values[idx]
        out[0, g] = v.mean()
        if n_boot:
            pick = rng.integers(0, len(v), size=(n_boot, len(v)))
            out[1:, g] = v[pick].mean(axis=1)
    return out


def domain_composition(
    intensity: np.ndarray,
    column_class: np.ndarray,
    column_domain: np.ndarray,
    use: np.ndarray,
    domains: list[dict[str, Any]],
    model_for: Any,
    *,
    n_boot: int = 300,
    seed: int = 0,
    min_columns: int = 5,
    lattice_convention: str = "cubic",
    pixel_size_rel_err: float = 0.0,
    vegard_sigma: float = 2.0,
    table_method: str | None = None,
) -> list[dict[str, Any]]:
    """Br fraction, mixed and shifted fraction of every domain (module docstring).

    Parameters
    ----------
    intensity : ndarray, shape (n_columns,)
        Background-subtracted column cross-sections.
    column_class : ndarray of str
        "bright", "dim" or "X" per column (others ignored).
    column_domain : ndarray of int
        Domain id per column (0 none).
    use : ndarray of bool
        Columns usable for the means (interior, complete cell, good fit).
    domains : list of dict
        Domain rows with ``id``, ``registry`` (+1 reference, -1 other, 0 mixed),
        ``lattice_pm`` and ``lattice_pm_err`` (floats).
    model_for : callable
        ``model_for(domain_row) -> CompositionModel`` (thickness per domain).
    n_boot, seed :
        Bootstrap resamplings and their seed (:func:`nanodomains.seeds.rng`).
    min_columns : int
        Fewest columns per class; below it the domain gets no values and the reason.
    lattice_convention, pixel_size_rel_err, vegard_sigma :
        Vegard cross-check (module docstring).
    table_method : str, optional
        The table's method, named in each result's composition item.

    Returns
    -------
    list of dict
        Per domain: ``br_fraction``, ``mixed_fraction``, ``shifted_fraction``
        (:class:`~nanodomains.records.Measured`, stderr the half 16-84 % bootstrap
        interval), ``formula`` and ``composition``
        (:class:`~nanodomains.records.StemComposition`: model, table, thickness,
        measured ratios, chi2, columns used, 95 % intervals, Vegard cross-check, note,
        or the reason nothing was computed).
    """
    from nanodomains.seeds import rng as make_rng

    rng = make_rng(seed)
    out = []
    for d, groups, means, reason in domain_class_means(intensity, column_class, column_domain, use, domains, rng,
                                                       n_boot, min_columns):
        if reason is not None:
            out.append(not_computed_result(reason, table_method))
            continue
        out.append(_invert_domain(means, groups, d, model_for(d), rng, n_boot, lattice_convention,
                                  pixel_size_rel_err, vegard_sigma, table_method))
    return out


def domain_class_means(intensity: np.ndarray, column_class: np.ndarray, column_domain: np.ndarray,
                       use: np.ndarray, domains: list[dict[str, Any]], rng: np.random.Generator, n_boot: int,
                       min_columns: int):
    """Per domain: (row, column index groups of bright/dim/X, class means (row 0 data, then
    ``n_boot`` bootstrap rows) or None, the reason nothing can be computed or None)."""
    cls = np.asarray(column_class).astype(str)
    values = np.asarray(intensity, float)
    for d in domains:
        groups = [np.flatnonzero(use & (column_domain == d["id"]) & (cls == c)) for c in ("bright", "dim", "X")]
        if min(len(g) for g in groups) < min_columns:
            yield d, groups, None, (f"fewer than {min_columns} interior columns per class "
                                    f"({', '.join(str(len(g)) for g in groups)})")
            continue
        means = class_means(values, groups, rng, n_boot)
        if np.any(means[0] <= 0):
            yield d, groups, None, "non-positive mean column intensity (background too high?)"
            continue
        yield d, groups, means, None


def _invert_domain(means: np.ndarray, groups: list[np.ndarray], d: dict, model: CompositionModel,
                   rng: np.random.Generator, n_boot: int, lattice_convention: str, pixel_size_rel_err: float,
                   vegard_sigma: float, table_method: str | None) -> dict[str, Any]:
    """One domain's inversion of its (bootstrapped) class means."""
    from nanodomains.records import StemComposition, measured

    ratios = np.stack([means[:, 1] / means[:, 0], means[:, 2] / means[:, 0]], axis=1)
    sig = ratios[1:].std(axis=0, ddof=1) if n_boot > 1 else None
    b, m, chi2 = invert_ratios(model, ratios, sig)
    t_err = model.ratio_err(float(b[0]), float(m[0]))
    if n_boot > 1 and np.any(t_err > 0):
        # the table's own uncertainty: each bootstrap sample meets a perturbed table
        pert = ratios.copy()
        pert[1:] += rng.normal(0.0, 1.0, (n_boot, 2)) * t_err
        b_t, m_t, _ = invert_ratios(model, pert[1:], np.hypot(sig, t_err))
        b, m = np.concatenate([b[:1], b_t]), np.concatenate([m[:1], m_t])
    reg = int(d.get("registry", 0))
    s = np.where(reg >= 0, m, 1.0 - m)
    values, ci95 = {}, {}
    for name, v in (("br_fraction", b), ("mixed_fraction", m), ("shifted_fraction", s)):
        if n_boot > 1:
            p = np.percentile(v[1:], [2.5, 16, 84, 97.5])
            values[name] = measured(float(v[0]), float(0.5 * (p[2] - p[1])))
            ci95[name] = (float(p[0]), float(p[3]))
        else:
            values[name] = measured(float(v[0]), None)
            ci95[name] = (None, None)
    notes = []
    if reg == 0:
        notes.append("registry undetermined (mixed domain): shifted_fraction = mixed_fraction")
    if chi2[0] > 9.0:
        notes.append(f"ratios not reproduced by the table (chi2 = {chi2[0]:.1f})")
    vegard = vegard_check(values["br_fraction"], d, lattice_convention, pixel_size_rel_err, vegard_sigma)
    comp = StemComposition(
        model=COMPOSITION_MODEL, table=table_method, thickness_cells=float(model.n_cells),
        ratio_dim_bright=measured(ratios[0, 0], None if sig is None else sig[0]),
        ratio_x_bright=measured(ratios[0, 1], None if sig is None else sig[1]),
        table_ratios_err=(float(t_err[0]), float(t_err[1])), chi2=float(chi2[0]),
        n_columns_used={"bright": len(groups[0]), "dim": len(groups[1]), "X": len(groups[2])},
        br_fraction_ci95=ci95["br_fraction"], mixed_fraction_ci95=ci95["mixed_fraction"],
        shifted_fraction_ci95=ci95["shifted_fraction"], note="; ".join(notes) or None, **vegard)
    return {**values, "formula": materials.format_formula(float(np.clip(b[0], 0, 1))), "composition": comp}


#: the method named in every composition result of :func:`domain_composition`
COMPOSITION_MODEL = ("Z-contrast: dim/bright and X/bright column-intensity ratios inverted against a "
                     "column-intensity table (nanodomains.stem.composition)")


def not_computed_result(reason: str, table_method: str | None) -> dict[str, Any]:
    from nanodomains.records import Measured, StemComposition

    none = Measured(value=None)
    return {"br_fraction": none, "mixed_fraction": none, "shifted_fraction": none, "formula": None,
            "composition": StemComposition(model=COMPOSITION_MODEL, table=table_method, reason=reason)}


def vegard_check(b, d: dict, convention: str, rel_err: float, k: float) -> dict[str, Any]:
    """Vegard cross-check of a measured Br fraction ``b`` (Measured) against the domain's lattice."""
    from nanodomains.records import measured

    a = float(d.get("lattice_pm", np.nan))
    a_err = float(d.get("lattice_pm_err", np.nan))
    if not np.isfinite(a):
        return {"vegard_br_fraction": None, "vegard_agrees": None, "vegard_convention": convention}
    span = abs(materials.lattice_constant_pm(1.0, convention) - materials.lattice_constant_pm(0.0, convention))
    bv = float(materials.br_fraction_from_lattice(a, convention))
    ev = float(np.hypot(a_err if np.isfinite(a_err) else 0.0, rel_err * a) / span)
    tol = k * float(np.hypot(b.stderr or 0.0, ev))
    return {"vegard_br_fraction": measured(bv, ev), "vegard_agrees": bool(abs(b.value - bv) <= tol),
            "vegard_convention": convention}


def thickness_cells(thickness_nm: Any, lattice_pm: float, crystal_area_nm2: float | None,
                    touches_border: bool) -> tuple[float, str]:
    """Column length in cells from ``thickness_nm`` (a number or "cube")."""
    a_nm = require_positive("lattice_pm", lattice_pm) * 1e-3
    if isinstance(thickness_nm, str):
        if thickness_nm != "cube":
            raise InputError(f"thickness_nm must be a number (nm) or 'cube', got {thickness_nm!r}")
        if touches_border or crystal_area_nm2 is None:
            raise InputError(
                "the crystal touches the image border, so its thickness cannot be estimated from its projected "
                "area; give thickness_nm (nm)"
            )
        t = float(np.sqrt(crystal_area_nm2))
        return t / a_nm, f"cube: sqrt(projected area) = {t:.2f} nm"
    t = require_positive("thickness_nm", thickness_nm)
    return t / a_nm, f"given: {t:g} nm"

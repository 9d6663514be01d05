"""One call from an ADF-STEM image to nanodomains, lattice constants and compositions.

:func:`analyze_image` chains

1. :func:`nanodomains.stem.gpa.find_lattice` (with its centred-cell test) and
   :func:`nanodomains.stem.gpa.gpa` with the reflections (100), (010), (110), (1-10);
2. :func:`nanodomains.stem.columns.find_columns` (detection, joint Gaussian fits,
   Voronoi cross-sections, Cs / PbX / X classification);
3. :func:`nanodomains.stem.domains.segment_domains` (registry, lattice and contrast
   maps; domains R1..Rn; RP and other boundaries; per-domain lattice constants);
4. :func:`nanodomains.stem.composition.domain_composition` (Br fraction, mixed and
   shifted fraction with bootstrap intervals, formula, Vegard cross-check) for
   CsPbX3 images, where its inputs exist: a [100] zone axis with bright, dim and X
   columns, a background (the vacuum level; without vacuum the fitted background of
   the joint column fits, the column intensities then the Gaussian volumes above it,
   StatSTEM's scattering cross-sections, De Backer et al., Ultramicroscopy 171, 104
   (2016); or a level given), and a thickness;
5. optionally :func:`nanodomains.stem.linescan.boundary_scan` across every boundary
   of registered EDS maps;

Each stage reports what it could do: lattice, columns, strain, domains and boundaries
need no vacuum; a stage whose inputs are missing is written to ``not_computed`` with
the reason while everything else is written. :meth:`AnalysisResult.write` writes
``domains.json`` (the :class:`~nanodomains.records.StemDomains` record, schema
``nanodomains.stem.domains/4``,
the same type the simulators' truth sidecars hold), ``columns.csv`` (plain CSV: its
metadata are in ``domains.json`` under ``columns``), ``gpa.nc`` and ``overview.png``
(image with the domain outlines and names, (100) amplitude map, and the composition
plot in the manner of the seed's Fig. 1a, b, g, Liu et al., Nano Lett. 23, 10089
(2023), or the per-domain lattice parameters). The physics and its
references are in the docstrings of those modules.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from nanodomains.errors import FileFormatError, FitError, InputError, NanodomainsError
from nanodomains.files import atomic_path
from nanodomains.records import (
    Measured,
    StemBackground,
    StemBoundary,
    StemColumnSet,
    StemComposition,
    StemDomain,
    StemDomains,
    StemLattice,
    StemTable,
    measured,
)

__all__ = ["AnalysisResult", "analyze_image", "analyze_for_batch", "lattice_check", "CSPBX3_NAMES", "ABO3_NAMES"]

CSPBX3_NAMES = ("Cs", "PbX", "X")
ABO3_NAMES = ("B", "A", "O")
#: a measured lattice this far (relative) outside the expected range is flagged:
#: beyond strain in a coherent film (~1-2 %), i.e. a calibration problem
LATTICE_CHECK_TOL = 0.02


def lattice_check(lattice_pm: float, names: tuple[str, ...], convention: str = "cubic") -> dict[str, Any]:
    """Compare a measured cell edge with the range expected for the material.

    CsPbX3 (``CSPBX3_NAMES``): the Vegard end members CsPbBr3 and CsPbI3
    (:mod:`nanodomains.materials`, ``convention``); ABO3 (``ABO3_NAMES``):
    :data:`nanodomains.materials.ABO3_LATTICE_PM`. Outside by more than :data:`LATTICE_CHECK_TOL` the status
    is "outside" and the note names the pixel calibration as the likely cause.
    Other column names: "not checked".
    """
    from nanodomains import materials

    if tuple(names) == CSPBX3_NAMES:
        lo, hi = (materials.lattice_constant_pm(b, convention) for b in (1.0, 0.0))
        material = f"CsPbBr3-CsPbI3 ({convention} Vegard end members)"
    elif tuple(names) == ABO3_NAMES:
        lo, hi = materials.ABO3_LATTICE_PM
        material = "ABO3 perovskites (LaAlO3 to PbTiO3 c)"
    else:
        return {"status": "not checked", "measured_pm": float(lattice_pm), "note": f"no expected range for {names}"}
    inside = lo * (1 - LATTICE_CHECK_TOL) <= lattice_pm <= hi * (1 + LATTICE_CHECK_TOL)
    out = {"status": "ok" if inside else "outside", "measured_pm": float(lattice_pm), "expected_pm": [lo, hi],
           "tolerance": LATTICE_CHECK_TOL, "material": material}
    if not inside:
        out["note"] = (f"the measured cell edge {lattice_pm:.1f} pm is outside the {lo:.0f}-{hi:.0f} pm of {material} "
                       f"by more than {LATTICE_CHECK_TOL:.0%}: check the pixel calibration, or calibrate on a "
                       "reference lattice (calibrate_lattice_pm / --calibrate-lattice-pm)")
    return out


@dataclass
class AnalysisResult:
    """Everything :func:`analyze_image` found.

    Attributes
    ----------
    image : xarray.DataArray
    gpa : GPAResult
    columns : pandas.DataFrame
        The column table of :func:`~nanodomains.stem.columns.find_columns` plus
        ``domain`` (id, 0 none), ``sublattice``, ``registry``, ``interior`` and
        ``cross_section`` (Voronoi sum minus the vacuum level, image units x nm^2).
    segmentation : DomainSegmentation
    record : StemDomains
        The result as a record (``domains.json``): domains, boundaries, lattice,
        compositions, settings, warnings.
    table : xarray.Dataset or None
        Column-intensity table used.
    """

    image: xr.DataArray
    gpa: Any
    columns: Any
    segmentation: Any
    record: StemDomains
    table: Any = None

    @property
    def domains(self) -> tuple[StemDomain, ...]:
        """The domains (``record.domains``; id i is ``domains[i - 1]``)."""
        return self.record.domains

    @property
    def boundaries(self) -> tuple[StemBoundary, ...]:
        """The boundaries (``record.boundaries``)."""
        return self.record.boundaries

    def to_dict(self) -> dict[str, Any]:
        """The ``domains.json`` content (JSON types, NaN as null)."""
        return self.record.to_dict()

    def write(self, out_dir: str | Path, figure: bool = True) -> dict[str, Path]:
        """Write ``domains.json``, ``columns.csv``, ``gpa.nc`` and ``overview.png`` into ``out_dir``.

        Every file is written atomically (:func:`nanodomains.files.atomic_path`).
        ``columns.csv`` is plain CSV (``pandas.read_csv(path)``); its metadata are in
        ``domains.json`` (``columns``).
        """
        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FileFormatError(f"{out}: cannot create the output folder ({exc})") from exc
        paths = {"domains": out / "domains.json", "columns": out / "columns.csv", "gpa": out / "gpa.nc"}
        self.record.to_json(paths["domains"])
        with atomic_path(paths["columns"]) as tmp:
            self.columns.to_csv(tmp, index=False, float_format="%.6g")
        ds = self.maps_dataset()
        with atomic_path(paths["gpa"]) as tmp:
            ds.to_netcdf(tmp, engine="h5netcdf", encoding=_map_encoding(ds))
        if figure:
            paths["overview"] = out / "overview.png"
            with atomic_path(paths["overview"]) as tmp:
                self.plot_overview(tmp)
        return paths

    def maps_dataset(self) -> xr.Dataset:
        """GPA maps plus the segmentation maps (registry, lattice, contrast, domain labels) when segmented.

        Every map on the image grid is float32 (the GPA maps are float32 already; the
        strain maps of the GPA result, float64 in memory, are rounded to float32, a
        relative precision of 6e-8, far below their noise); coordinates stay float64.
        """
        from nanodomains.stem import domains as dom

        ds = self.gpa.to_dataset()
        seg = self.segmentation
        dims = ("y", "x")
        if seg is not None:
            ds["registry"] = (dims, seg.registry_map.astype(np.float32),
                              {"long_name": "registry map rho (see domains.py)"})
            ds["lattice_local"] = (dims, seg.lattice_map_pm.astype(np.float32),
                                   {"units": "pm", "long_name": "local cell edge from the (110) and (1-10) lock-ins"})
            ds["contrast"] = (dims, seg.contrast_map.astype(np.float32),
                              {"long_name": "(A10 + A01) / (A11 + A1-1)"})
            ds["domain"] = (dims, seg.labels.astype(np.int16), {"long_name": "domain id (0: outside the crystal)"})
        st = seg.strain_110 if seg is not None and seg.strain_110 is not None else dom.strain_110(self.gpa)
        for k, v in st.items():
            ds[f"{k}_110"] = (dims, v.astype(np.float32),
                              {"long_name": f"{k} from the (110) and (1-10) reflections (unaffected by RP shifts)"})
        ds.attrs["strain_note"] = ("exx, eyy, exy, rotation use (100) and (010), whose phases jump by pi at RP faults; "
                                   "the *_110 maps use (110) and (1-10)")
        for name, var in ds.data_vars.items():
            if var.dtype == np.float64 and {"y", "x"} <= set(var.dims):
                ds[name] = var.astype(np.float32)
        return ds

    def plot_overview(self, path: str | Path) -> Path:
        """Overview figure, readable for images of 1000+ px and thousands of columns.

        (a) the image with the domain outlines (RP boundaries red, other boundaries
        cyan, crystal edge white) and the domain names; (b) the normalised (100)
        GPA amplitude with the same outlines; (c) the compositions against the model
        (Z-contrast, CsPbX3) or, where no composition was computed, the lattice
        parameters a1, a2 of every domain.
        """
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D

        # rasters drawn at screen resolution: f x f pixel blocks averaged (a panel is ~600 px wide)
        f = max(1, math.ceil(max(self.image.shape) / OVERVIEW_MAX_PX))
        img = _block_mean(self.image.values, f)
        h_nm = self.image.attrs["pixel_size_pm"] * 1e-3
        y0, x0 = (float(self.image["y"][0]), float(self.image["x"][0])) if "y" in self.image.coords else (0.0, 0.0)
        ext = (x0 - h_nm / 2, x0 + (img.shape[1] * f - 0.5) * h_nm, y0 + (img.shape[0] * f - 0.5) * h_nm,
               y0 - h_nm / 2)
        has_comp = any(d.br_fraction.value is not None for d in self.domains)
        aspect = img.shape[0] / img.shape[1]
        fig, axes = plt.subplots(1, 3, figsize=(16, 5.6 * min(max(aspect, 0.5), 1.5)))
        lo, hi = np.percentile(img, [1, 99.5])
        axes[0].imshow(np.clip((img - lo) / max(hi - lo, 1e-12), 0, 1) ** 0.6, cmap="gray", extent=ext)
        axes[1].imshow(_block_mean(self.gpa.amplitude_100_norm, f), cmap="viridis", vmin=0, vmax=1, extent=ext)
        outlines = self._outline_rgba(f)
        for ax in axes[:2]:
            if outlines is not None:
                ax.imshow(outlines, extent=ext, interpolation="nearest")
            self._label_domains(ax)
            ax.set_xlabel("x (nm)")
        axes[0].set_ylabel("y (nm)")
        nb = len(self.boundaries)
        n_rp = sum(b.type == "RP" for b in self.boundaries)
        axes[0].set_title(f"(a) ADF-STEM image: {len(self.domains)} domain(s), {n_rp} RP + {nb - n_rp} other "
                          "boundaries", fontsize=10)
        axes[1].set_title("(b) normalised (100) GPA amplitude", fontsize=10)
        axes[0].legend(handles=[Line2D([], [], color="red", lw=2, label="RP boundary"),
                                Line2D([], [], color="cyan", lw=2, label="other boundary"),
                                Line2D([], [], color="white", lw=2, label="crystal edge")],
                       loc="lower right", fontsize=7, framealpha=0.7)
        if has_comp:
            self._plot_composition(axes[2])
        else:
            self._plot_lattices(axes[2])
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=130, format="png")
        plt.close(fig)
        return path

    def _outline_rgba(self, f: int = 1) -> np.ndarray | None:
        """RGBA overlay of the boundary pixels (RP red, other cyan, crystal edge white), widened for large images.

        ``f``: drawn on the labels of every f-th pixel (the centres of the f x f blocks
        the figure's rasters average).
        """
        from scipy import ndimage

        seg = self.segmentation
        if seg is None:
            return None
        ny, nx = (seg.labels.shape[0] // f) * f, (seg.labels.shape[1] // f) * f
        lab = seg.labels[f // 2:ny:f, f // 2:nx:f].astype(np.int64)
        n = int(lab.max())
        kind = np.zeros((n + 1, n + 1), np.int8)  # 1 other, 2 RP, 3 crystal edge
        kind[0, 1:] = kind[1:, 0] = 3
        for b in self.boundaries:
            i, j = b.domains
            kind[i, j] = kind[j, i] = 2 if b.type == "RP" else 1
        edge = np.zeros(lab.shape, np.int8)
        for axis in (0, 1):
            a, c = np.take(lab, np.arange(lab.shape[axis] - 1), axis=axis), np.take(lab, np.arange(1, lab.shape[axis]),
                                                                                   axis=axis)
            k = np.where(a != c, kind[a, c], 0)
            sl = (slice(None, -1), slice(None)) if axis == 0 else (slice(None), slice(None, -1))
            edge[sl] = np.maximum(edge[sl], k)
        width = max(int(round(max(lab.shape) / 500)), 0)  # ~2-3 px lines on 1000-1500 px images
        out = np.zeros(lab.shape + (4,), np.float32)
        colours = {3: (1, 1, 1, 0.8), 1: (0, 1, 1, 1), 2: (1, 0, 0, 1)}
        for k in (3, 1, 2):  # RP drawn last, on top
            m = edge == k
            if width:
                m = ndimage.binary_dilation(m, iterations=width)
            out[m] = colours[k]
        return out if edge.any() else None

    def _label_domains(self, ax) -> None:
        import matplotlib.patheffects as pe

        size = 11 if len(self.domains) <= 8 else 8
        for d in self.domains:
            ax.text(*d.centroid_nm, d.name, color="white", ha="center", va="center", fontsize=size,
                    fontweight="bold", path_effects=[pe.withStroke(linewidth=2.5, foreground="black")])

    def _plot_lattices(self, ax) -> None:
        """Cell edges a1, a2 (pm) of every domain with their standard errors."""
        names = [d.name for d in self.domains]
        x = np.arange(len(names))
        for k, (key, mk) in enumerate((("lattice_a1_pm", "o"), ("lattice_a2_pm", "s"))):
            v = [getattr(d, key) for d in self.domains]
            val = [m.value if m is not None and m.value is not None else np.nan for m in v]
            err = [m.stderr if m is not None and m.stderr is not None else 0.0 for m in v]
            ax.errorbar(x + (k - 0.5) * 0.15, val, yerr=err, fmt=mk, capsize=3, label=key.split("_")[1])
        ax.set_xticks(x, names)
        ax.set_ylabel("cell edge (pm)")
        ax.set_title("(c) lattice parameters per domain (columns' least-squares lattice)", fontsize=10)
        ax.legend(fontsize=8)
        reason = self.record.not_computed.get("composition")
        if reason:
            ax.text(0.02, 0.02, "composition not computed:\n" + "\n".join(_wrap(reason, 60)), transform=ax.transAxes,
                    fontsize=7, va="bottom")

    def _plot_composition(self, ax) -> None:
        from nanodomains.stem.composition import CompositionModel
        from nanodomains.stem.zcontrast import is_registry_table

        if is_registry_table(self.table):
            self._plot_registry_composition(ax)
            return
        b = np.linspace(0, 1, 101)
        n = next((d.composition.thickness_cells for d in self.domains
                  if d.composition is not None and d.composition.thickness_cells), 24.0)
        model = CompositionModel(self.table, float(n), self.record.termination or "CsX")
        for m, ls in ((0.0, "-"), (0.25, "--"), (0.5, ":")):
            r = model.ratios(b, np.full_like(b, m))
            ax.plot(b, r[:, 1], ls, color="k", lw=1, label=f"X/bright, m = {m:g}")
        for d in self.domains:
            if d.br_fraction.value is None:
                continue
            r2 = d.composition.ratio_x_bright
            ax.errorbar(d.br_fraction.value, r2.value, xerr=d.br_fraction.stderr, yerr=r2.stderr, fmt="o", ms=6,
                        capsize=2, label=f"{d.name}: {d.formula}, s = {d.shifted_fraction.value:.2f}")
        ax.set_xlabel("Br fraction b")
        ax.set_ylabel("column intensity ratio X / bright")
        method = self.record.table.method if self.record.table is not None else "?"
        ax.set_title(f"(c) Z-contrast composition ({method})", fontsize=10)
        ax.legend(fontsize=7, loc="upper right")

    def _plot_registry_composition(self, ax) -> None:
        """Br fraction and shifted fraction per domain with their 90 % credible intervals."""
        rows = [d for d in self.domains if d.br_fraction.value is not None]
        x = np.arange(len(rows))
        for off, key, colour in ((-0.12, "br_fraction", "C0"), (0.12, "shifted_fraction", "C3")):
            for i, d in enumerate(rows):
                ci = getattr(d.composition, f"{key}_ci90")
                v = getattr(d, key).value
                if v is None or ci is None:
                    ci, v = d.composition.mixed_fraction_ci90, d.mixed_fraction.value
                    ax.plot([i + off] * 2, [v, 1 - v], "x", color=colour)  # s ambiguous: both candidates
                    continue
                ax.errorbar(i + off, v, yerr=[[v - ci[0]], [ci[1] - v]], fmt="o", color=colour, capsize=3)
        ax.plot([], [], "o", color="C0", label="Br fraction b (90 % interval)")
        ax.plot([], [], "o", color="C3", label="shifted fraction s (x: s or 1 - s, ambiguous)")
        ax.set_xticks(x, [f"{d.name}\n{d.composition.thickness_nm.value:.1f} nm" for d in rows])
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(-0.6, max(len(rows), 1) - 0.4)
        ax.set_ylabel("fraction")
        ax.set_title("(c) Z-contrast: joint inversion against the registry-depth multislice table", fontsize=10)
        ax.legend(fontsize=7, loc="upper right")


def _map_encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """netCDF encoding of ``gpa.nc``: the integer label maps (mostly constant) zlib-compressed
    (level 1: ~100x smaller, a few ms), the float maps stored as they are (noise does not compress)."""
    return {name: {"zlib": True, "complevel": 1} for name, var in ds.data_vars.items()
            if np.issubdtype(var.dtype, np.integer) and {"y", "x"} <= set(var.dims)}


#: the overview's rasters are averaged in blocks to at most this many pixels a side
OVERVIEW_MAX_PX = 1024


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Mean of f x f blocks (the last rows/columns that do not fill a block dropped)."""
    if f <= 1:
        return np.asarray(a)
    ny, nx = (a.shape[0] // f) * f, (a.shape[1] // f) * f
    return np.asarray(a[:ny, :nx], dtype=np.float64).reshape(ny // f, f, nx // f, f).mean(axis=(1, 3))


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width)


def _load_table(table: Any) -> xr.Dataset | None:
    """A column-intensity table (:mod:`~nanodomains.stem.tables`) or a registry-depth table
    (:mod:`~nanodomains.stem.zcontrast`; ``"registry"`` = the shipped one), checked."""
    from nanodomains.stem import tables, zcontrast
    from nanodomains.stem.io import load_netcdf

    if table is None:
        return None
    if isinstance(table, str) and table == "registry":
        return zcontrast.load_registry_table()
    if isinstance(table, xr.Dataset):
        return zcontrast.check_registry_table(table) if zcontrast.is_registry_table(table) else \
            tables.check_table(table)
    ds = load_netcdf(table, "column-intensity table")
    return zcontrast.check_registry_table(ds, str(table)) if zcontrast.is_registry_table(ds) else \
        tables.check_table(ds, str(table))


def _load_for_analysis(path: Any, pixel_size_pm: float | None, calibrating: bool) -> xr.DataArray:
    """load_image; a file without calibration is accepted when a reference lattice will set it."""
    from nanodomains.errors import CalibrationError
    from nanodomains.stem.io import load_image

    try:
        return load_image(path, pixel_size_pm)
    except CalibrationError:
        if not calibrating:
            raise
    image = load_image(path, 1.0)  # a scale is needed to load; replaced by the reference lattice
    image.attrs.pop("pixel_size_pm")
    image.attrs["pixel_size_source"] = "none (the file has no length calibration)"
    return image


def _check_calibration_args(calibrate_lattice_pm: float | None, calibration_region: Any,
                            calibration_direction: str) -> None:
    if calibration_direction not in ("both", "x", "y"):
        raise InputError(f"calibration_direction (--calibration-direction) must be both, x or y, "
                         f"got {calibration_direction!r}")
    if calibrate_lattice_pm is None and (calibration_region is not None or calibration_direction != "both"):
        raise InputError("a calibration region or direction (--calibration-region / --calibration-direction) "
                         "needs the reference lattice (calibrate_lattice_pm, --calibrate-lattice-pm)")
    if calibrate_lattice_pm is not None and not (math.isfinite(calibrate_lattice_pm) and calibrate_lattice_pm > 0):
        raise InputError(f"the reference lattice (calibrate_lattice_pm, --calibrate-lattice-pm) must be > 0 pm, "
                         f"got {calibrate_lattice_pm!r}")


def _prepare_image(image: Any, pixel_size_pm: float | None, names: tuple[str, ...],
                   calibrate_lattice_pm: float | None, calibration_region: Any,
                   calibration_direction: str) -> xr.DataArray:
    """Step 1: load and check the image; set its pixel size from a reference lattice if asked."""
    from nanodomains.stem.gpa import calibrate_on_lattice
    from nanodomains.stem.io import check_pixel_size_coords

    _check_calibration_args(calibrate_lattice_pm, calibration_region, calibration_direction)
    if not isinstance(image, xr.DataArray):
        image = _load_for_analysis(image, pixel_size_pm, calibrate_lattice_pm is not None)
    elif pixel_size_pm is not None:
        raise InputError("pixel_size_pm applies to files; a DataArray carries its own calibration")
    if image.ndim != 2:
        raise InputError(f"analyze_image needs a 2-D image, got dims {image.dims} (average the stack first)")
    if "pixel_size_pm" not in image.attrs and calibrate_lattice_pm is None:
        raise InputError("the image has no pixel_size_pm attribute (use nanodomains.stem.io.load_image)")
    if calibrate_lattice_pm is None:  # a sliced image keeps the attribute but not its pixel size
        check_pixel_size_coords(image)
    if len(names) != 3:
        raise InputError(f"names must be three type names (dim, bright, X), got {names!r}")
    if calibrate_lattice_pm is not None:
        image = calibrate_on_lattice(image, calibrate_lattice_pm, region=calibration_region,
                                     direction=calibration_direction)
    return image


def _reference_lattice(image: xr.DataArray, calibrate_lattice_pm: float | None, calibration_region: Any) -> Any:
    """The lattice the analysis is referred to (not refined: :func:`~nanodomains.stem.gpa.gpa` refines it).

    After a calibration on a reference lattice, the lattice that calibration measured
    (searched in px, :func:`~nanodomains.stem.gpa.calibrate_on_lattice`), with the
    new pixel size: searching again in pm could settle on another cell of the same
    reflections (on the ~17 deg rotated SrTiO3 of Acquisition_18 the centred
    a sqrt 2 cell, 552 pm instead of 390.5 pm).
    """
    from nanodomains.stem.gpa import find_lattice

    if calibrate_lattice_pm is None:
        return find_lattice(image, refine=False)
    found = find_lattice(image.values, lattice_pm_range=None, reference=calibration_region, refine=False)
    return dataclasses.replace(found, pixel_size_pm=float(image.attrs["pixel_size_pm"]))


def _annotate_columns(cols: Any, seg: Any, names: tuple[str, ...]) -> Any:
    """Step 4: the column table with its domain, sublattice, registry and interior flag."""
    from nanodomains.stem.domains import column_registry

    cols = cols.copy()
    cols["domain"] = seg.column_domain
    cols["sublattice"] = seg.column_sublattice
    cols["registry"] = column_registry(seg.column_sublattice, cols["type"].to_numpy(), names)
    cols["interior"] = seg.column_interior
    return cols


@dataclass
class _CompositionStep:
    """What the composition step adds to the record."""

    per_domain: dict[int, dict[str, Any]]
    background: StemBackground
    table: StemTable
    table_used: Any
    thickness: str | None
    warnings: list[str]


BACKGROUND_CHOICES = ("auto", "vacuum", "columns")


def _check_background(background: Any) -> float | str:
    """``background``: a level (image units per pixel) or one of :data:`BACKGROUND_CHOICES`."""
    if background is None:
        return "auto"
    if isinstance(background, str):
        if background in BACKGROUND_CHOICES:
            return background
        try:
            background = float(background)
        except ValueError:
            raise InputError(f"background (--background) must be a level (image units per pixel) or one of "
                             f"{', '.join(BACKGROUND_CHOICES)}, got {background!r}") from None
    if isinstance(background, bool) or not isinstance(background, (int, float)) or not math.isfinite(background):
        raise InputError(f"background (--background) must be a finite level or one of {', '.join(BACKGROUND_CHOICES)}, "
                         f"got {background!r}")
    return float(background)


def _background(img: np.ndarray, pos: np.ndarray, cell_px: float, background: float | str, cols: Any,
                use: np.ndarray, px: float
                ) -> tuple[StemBackground | None, np.ndarray | None, np.ndarray | None, str | None]:
    """The background and the column intensities above it (image units x px).

    Returns (background item, intensities, complete-cell flags, reason if none).
    ``auto``: the vacuum level where the field has vacuum, else the column fits.
    """
    from nanodomains.stem import composition as comp

    if not isinstance(background, str):
        inten, complete = comp.column_cross_sections(img, pos, cell_px, background)
        return (StemBackground(level_per_px=measured(background, None), source="argument (--background)",
                               method="argument", cross_section=_VORONOI),
                inten, complete, None)
    if background in ("auto", "vacuum"):
        try:
            bg, bg_err, n_vac = comp.background_level(img, pos, cell_px)
        except InputError as exc:
            if background == "vacuum":
                return None, None, None, f"no vacuum level: {exc}"
        else:
            inten, complete = comp.column_cross_sections(img, pos, cell_px, bg)
            return (StemBackground(level_per_px=measured(bg, bg_err), n_vacuum_px=n_vac,
                                   source="mean of pixels > 1.5 cells from every column", method="vacuum",
                                   cross_section=_VORONOI),
                    inten, complete, None)
    try:
        lev, lev_err, n = comp.background_from_column_fits(cols["background"].to_numpy(float), use)
    except InputError as exc:
        return None, None, None, str(exc)
    inten = cols["gaussian_volume"].to_numpy(float) / (px * 1e-3) ** 2  # back to image units x px
    return (StemBackground(level_per_px=measured(lev, lev_err), n_columns=n, method="column_fits",
                           source="fitted background of the joint column fits (median under the columns; "
                                  "no vacuum in the field)" if background == "auto" else
                                  "fitted background of the joint column fits (median under the columns)",
                           cross_section="Gaussian column volume 2 pi A sigma^2 above the fitted background "
                                         "(StatSTEM scattering cross-section, De Backer et al., Ultramicroscopy "
                                         "171, 104 (2016))"),
            inten, np.isfinite(inten), None)


_VORONOI = "Voronoi-cell sum of the image minus the background level (StatSTEM)"


def _table_item(tab: xr.Dataset, note: str) -> StemTable:
    """The table's model parameters and, where the table records one, its probe and
    detector (read through :meth:`ProbeParameters.from_attrs`, which knows every name)."""
    from nanodomains.stem.probe import ProbeParameters

    keep = ("column_exponent", "column_saturation_a2", "crosstalk", "num_configs", "frozen_phonons")
    parameters = {k: v for k, v in tab.attrs.items() if k in keep}
    try:
        parameters.update(ProbeParameters.from_attrs(tab.attrs).to_attrs())
    except FileFormatError:
        pass  # a table made without a probe (power law): none to record
    return StemTable(method=tab.attrs.get("method"), note=note, parameters=parameters)


def _composition_step(image: xr.DataArray, cols: Any, seg: Any, tab: xr.Dataset | None, names: tuple[str, ...],
                      cell_px: float, *, background: float | str, probe: dict | None, thickness_nm: Any,
                      termination: str, n_boot: int, seed: int, lattice_convention: str,
                      pixel_size_rel_err: float) -> _CompositionStep | str:
    """Step 5: background, cross-sections (added to ``cols``), table and per-domain inversion.

    Returns the step, or the reason it could not be done (no background, the
    thickness unknown for a crystal that fills the field).
    """
    from nanodomains.stem import composition as comp
    from nanodomains.stem import zcontrast
    from nanodomains.stem.domains import column_positions_px

    px = float(image.attrs["pixel_size_pm"])
    pos = column_positions_px(cols, px, seg.origin_nm)
    lab = seg.labels
    touches = bool(np.any(lab[0] > 0) or np.any(lab[-1] > 0) or np.any(lab[:, 0] > 0) or np.any(lab[:, -1] > 0))
    registry = tab is not None and zcontrast.is_registry_table(tab)
    if thickness_nm is None and not registry:
        return "thickness_nm=None (fit the thickness) needs a registry-depth table (table='registry')"
    if thickness_nm == "cube" and touches and not registry:
        return ("the crystal touches the image border, so its thickness cannot be estimated from its projected "
                "area (thickness_nm='cube'); give thickness_nm (--thickness-nm)")
    fit_ok = cols["fit_ok"].to_numpy(bool)
    bg, inten, complete, reason = _background(image.values, pos, cell_px, background, cols,
                                              fit_ok & (seg.column_domain > 0), px)
    if bg is None:
        return f"no background: {reason}"
    cols["cross_section"] = inten * (px * 1e-3) ** 2
    warnings = []
    volumes = bg.method == "column_fits"
    cls = np.select([cols["type"] == names[1], cols["type"] == names[0], cols["type"] == names[2]],
                    ["bright", "dim", "X"], "none")
    use = seg.column_interior & complete & fit_ok
    if registry:
        return _registry_step(image, tab, inten * (px / 100.0) ** 2, cls, use, seg, bg, volumes, thickness_nm,
                              touches, n_boot=n_boot, seed=seed, lattice_convention=lattice_convention,
                              pixel_size_rel_err=pixel_size_rel_err, probe=probe)
    if tab is None:
        # column volumes of a joint fit are separated from their neighbours: no a/2-square cross-talk
        tab, note = comp.default_table({**image.attrs, **(probe or {})}, crosstalk=not volumes)
        if volumes:
            note += " (column volumes of the joint fit: neighbours separated by the fit)"
    else:
        note = f"{tab.attrs.get('method')} table given by the user"
        if volumes:
            warnings.append("column intensities are Gaussian volumes above the column fits' background (no vacuum "
                            "in the field), but the given table describes Voronoi sums above vacuum: the Br "
                            "fractions may be biased; give --background with the vacuum level if known")
    if "no cross-talk correction (beam energy" in note:
        warnings.append(f"column-intensity table: {note} (Br fraction biased low by ~0.1; give --probe)")
    area = float((lab > 0).sum() * (px * 1e-3) ** 2)
    models: dict[int, Any] = {}
    thick_note: list[str] = []

    def model_for(d):
        n, src = comp.thickness_cells(thickness_nm, d["lattice_pm"], area, touches)
        thick_note.append(src)
        key = int(round(n * 10))
        if key not in models:
            models[key] = comp.CompositionModel(tab, n, termination)
        return models[key]

    res = comp.domain_composition(inten, cls, seg.column_domain, use, seg.domains, model_for, n_boot=n_boot,
                                  seed=seed, lattice_convention=lattice_convention,
                                  pixel_size_rel_err=pixel_size_rel_err, table_method=tab.attrs.get("method"))
    return _CompositionStep({d["id"]: r for d, r in zip(seg.domains, res)}, bg, _table_item(tab, note), tab,
                            thick_note[0] if thick_note else None, warnings)


#: relative error given to a thickness from the projected area ("cube")
_CUBE_THICKNESS_REL_ERR = 0.10
_REGISTRY_MODELS: dict[int, Any] = {}


def _registry_model(tab: xr.Dataset) -> Any:
    """One :class:`~nanodomains.stem.zcontrast.RegistryModel` per table object (built in ~1 s)."""
    from nanodomains.stem.zcontrast import RegistryModel

    key = id(tab)
    if key not in _REGISTRY_MODELS:
        _REGISTRY_MODELS.clear()
        _REGISTRY_MODELS[key] = (tab, RegistryModel(tab))
    return _REGISTRY_MODELS[key][1]


def _registry_step(image: xr.DataArray, tab: xr.Dataset, cross_a2: np.ndarray, cls: np.ndarray, use: np.ndarray,
                   seg: Any, bg: StemBackground, volumes: bool, thickness_nm: Any, touches: bool, *, n_boot: int,
                   seed: int, lattice_convention: str, pixel_size_rel_err: float,
                   probe: dict | None) -> _CompositionStep | str:
    """Step 5 with a registry-depth table: joint (b, s, thickness) inversion per domain."""
    from nanodomains.stem import zcontrast

    attrs = {**image.attrs, **(probe or {})}
    warnings = []
    diff = zcontrast.probe_mismatch(tab.attrs, attrs)
    if diff:
        warnings.append("registry table made for another probe/detector than the image: " + "; ".join(diff))
    if str(image.attrs.get("method", "")).lower() == "incoherent":
        # the incoherent renderer has no channelling, the table's physics: its b is not meaningful
        warnings.append("image made by the incoherent renderer (method 'incoherent'): it has no channelling, which the "
                        "registry-depth multislice table models; these compositions do not apply to it (use the "
                        "power-law table, the default)")
    if volumes:
        warnings.append("column intensities are Gaussian volumes above the column fits' background (no vacuum in "
                        "the field), but the registry table holds Voronoi sums: compositions may be biased")
    absolute = zcontrast.is_normalised(image.attrs)
    area = float((seg.labels > 0).sum() * (float(image.attrs["pixel_size_pm"]) * 1e-3) ** 2)

    def thickness_for(d):
        if thickness_nm is None:
            return None, None, None
        if isinstance(thickness_nm, str):
            if thickness_nm != "cube":
                raise InputError(f"thickness_nm must be a number (nm), 'cube' or None, got {thickness_nm!r}")
            if touches:  # crystal fills the field: fitted (absolute) or flat prior (ratios)
                return None, None, None
            t = float(np.sqrt(area))
            return t, _CUBE_THICKNESS_REL_ERR * t, f"cube: sqrt(projected area) = {t:.2f} nm +- 10 %"
        t = float(thickness_nm)
        return t, 0.05 * t, f"given: {t:g} nm +- 5 %"

    model = _registry_model(tab)
    res = zcontrast.domain_compositions(cross_a2, cls, seg.column_domain, use, seg.domains, model,
                                        absolute=absolute, thickness_for=thickness_for, n_boot=n_boot, seed=seed,
                                        lattice_convention=lattice_convention,
                                        pixel_size_rel_err=pixel_size_rel_err)
    note = model.describe() + ("; intensities normalised to the incident beam" if absolute
                               else "; image not normalised to the incident beam: ratios only")
    from nanodomains.files import to_jsonable

    keep = ("table_version", "abtem_version", "beam_energy_kev", "convergence_semiangle_mrad", "detector_inner_mrad",
            "detector_outer_mrad", "num_configs", "command")
    item = StemTable(method=tab.attrs.get("method"), note=note,
                     parameters=to_jsonable({k: tab.attrs[k] for k in keep if k in tab.attrs}))
    thick = next((r["composition"].thickness_source for r in res if r["composition"].thickness_source), None)
    return _CompositionStep({d["id"]: r for d, r in zip(seg.domains, res)}, bg, item, tab, thick, warnings)


def _normalise_to_incident(image: xr.DataArray, level: float, background: Any) -> tuple[xr.DataArray, Any]:
    """Image / incident level: fractions of the incident beam (a numeric background too)."""
    from nanodomains.errors import require_positive

    lv = require_positive("incident_level", level)
    if float(np.nanmax(image.values)) > 1.5 * lv:
        raise InputError(f"incident_level {lv:g} is below the image maximum {float(np.nanmax(image.values)):g}: an ADF "
                         "detector cannot record more than the incident beam (wrong level or units?)")
    out = image / lv
    out.attrs = {**image.attrs, "intensity_unit": "fraction of the incident beam (image / incident_level)",
                 "incident_level": lv}
    if isinstance(background, (int, float)) and not isinstance(background, bool):
        background = float(background) / lv
    return out, background


def _composition_inputs(lattice: Any, cols: Any, names: tuple[str, ...], seg: Any) -> str | None:
    """Why the composition cannot be computed from these inputs (None: it can).

    It needs a [100] zone axis (the Z-contrast model of :mod:`nanodomains.stem.composition`
    is for [100]-projected CsPbX3: a square cell), domains, and columns of all three
    types.
    """
    if seg is None:
        return "no domains (see not_computed['domains'])"
    projection = getattr(lattice, "projection", None)  # named by the lattice step when it knows the zone axis
    if projection is not None and "100" not in str(projection):
        return f"zone axis {projection}: the Z-contrast composition model is for [100] projections"
    c = lattice.cell_px
    if c.max() / c.min() > 1.15 or abs(lattice.angle_deg - 90) > 10:
        return (f"the cell is not square (|a1|/|a2| = {c.max() / c.min():.3f}, {lattice.angle_deg:.1f} deg): "
                "not a [100] projection, for which the Z-contrast composition model is made")
    counts = cols["type"].astype(str).value_counts()
    missing = [n for n in names if counts.get(n, 0) == 0]
    if missing:
        return f"no columns typed {', '.join(missing)}: the three column types are needed"
    return None


def _m(value, err) -> Measured:
    return measured(value, err)


def _domain_item(row: dict[str, Any], comp: dict[str, Any] | None, reason: str | None) -> StemDomain:
    """A segmentation row (and its composition) as a record item."""
    lat = {}
    if row.get("lattice_source") != "gpa map":
        lat = {"lattice_a1_pm": _m(row["lattice_a1_pm"], row["lattice_a1_pm_err"]),
               "lattice_a2_pm": _m(row["lattice_a2_pm"], row["lattice_a2_pm_err"])}
    if comp is None:
        none = Measured(value=None)
        comp = {"br_fraction": none, "mixed_fraction": none, "shifted_fraction": none, "formula": None,
                "composition": StemComposition(model="none", reason=reason)}
    return StemDomain(
        id=row["id"], name=row["name"], area_nm2=row["area_nm2"], centroid_nm=row["centroid_nm"],
        lattice_pm=_m(row["lattice_pm"], row["lattice_pm_err"]), **lat,
        lattice_n_columns=row["lattice_n_columns"], lattice_residual_pm=row["lattice_residual_pm"],
        lattice_source=row["lattice_source"], registry=row["registry"], registry_signal=row["registry_signal"],
        contrast=row["contrast"], n_columns=row["n_columns"], n_interior_columns=row["n_interior_columns"],
        **comp)


def _boundary_item(b: dict[str, Any]) -> StemBoundary:
    return StemBoundary(domains=tuple(b["domains"]), type=b["type"], length_nm=b["length_nm"],
                        segment_nm=b.get("segment_nm", []), midpoint_nm=b["midpoint_nm"], normal=b["normal"],
                        n_edges=b.get("n_edges"), eds_step=b.get("eds_step"),
                        phase_jump_rad=_finite_tuple(b.get("phase_jump_rad")),
                        phase_jump_z=_finite(b.get("phase_jump_z")),
                        column_contrast_z=_finite_tuple(b.get("column_contrast_z")), column_swap=b.get("column_swap"),
                        lattice_step_rel=_finite(b.get("lattice_step_rel")),
                        lattice_step_z=_finite(b.get("lattice_step_z")), evidence=b.get("evidence"))


def _finite(v: Any) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def _finite_tuple(v: Any) -> tuple[float | None, ...] | None:
    return None if v is None else tuple(_finite(x) for x in v)


def _lattice_item(lattice: Any) -> StemLattice:
    return lattice.to_record(note="GPA reference lattice of the whole image; basis rows a1, a2 as (y, x) in pm; "
                                  "per-domain values in domains[]")


def _column_set(cols: Any) -> StemColumnSet:
    counts = cols["type"].astype(str).value_counts()
    return StemColumnSet(n_columns=int(len(cols)), counts={str(k): int(v) for k, v in counts.items()},
                         n_fit_failed=int((~cols["fit_ok"].to_numpy(bool)).sum()),
                         fit_sweeps=cols.attrs.get("fit_sweeps"), classification=cols.attrs.get("classification"),
                         file="columns.csv")


def _settings(table: Any, kw: dict[str, Any], seg: Any) -> dict[str, Any]:
    """Every argument of the analysis and of the segmentation, JSON-ready."""
    region = kw.get("calibration_region")
    if region is not None:
        kw = {**kw, "calibration_region": [[s.start, s.stop] for s in region]}
    if not isinstance(kw.get("eds_maps"), (str, Path, type(None))):
        kw = {**kw, "eds_maps": f"given {type(kw['eds_maps']).__name__}"}
    tab = table if isinstance(table, (str, Path, type(None))) else f"given {type(table).__name__}"
    return {"analysis": {"table": tab, **kw}, "segmentation": seg.parameters if seg is not None else None}


def analyze_image(
    image: Any,
    table: Any = None,
    *,
    pixel_size_pm: float | None = None,
    names: tuple[str, str, str] = CSPBX3_NAMES,
    classification: str = "local",
    composition: bool | None = None,
    thickness_nm: Any = "cube",
    termination: str = "CsX",
    background: float | str | None = "auto",
    n_boot: int = 300,
    seed: int = 0,
    lattice_convention: str = "cubic",
    pixel_size_rel_err: float = 0.0,
    eds_maps: Any = None,
    probe: dict[str, float] | None = None,
    calibrate_lattice_pm: float | None = None,
    calibration_region: tuple[slice, slice] | None = None,
    calibration_direction: str = "both",
    segment_kwargs: dict[str, Any] | None = None,
    incident_level: float | None = None,
) -> AnalysisResult:
    """Analyse a [100] perovskite ADF-STEM image (module docstring).

    Parameters
    ----------
    image : xarray.DataArray or str or Path
        Calibrated image, or a file for :func:`nanodomains.stem.io.load_image`.
    table : xarray.Dataset or str or Path, optional
        Column-intensity table (:mod:`nanodomains.stem.tables`; power law or
        multislice), or a registry-depth table (:mod:`nanodomains.stem.zcontrast`;
        ``"registry"``: the shipped one) for the joint inversion of b, s and
        thickness; default the power law with the image probe's cross-talk
        (:func:`nanodomains.stem.composition.default_table`).
    pixel_size_pm : float, optional
        Pixel size for files without calibration (overrides the file's).
    names : (dim, bright, X)
        Column type names: CsPbX3 ("Cs", "PbX", "X") or ABO3 ("B", "A", "O").
    classification : {"local", "global"}
        Column classification (:func:`nanodomains.stem.columns.classify_columns`).
    composition : bool, optional
        Invert the column intensities (default: for CsPbX3 names only).
    thickness_nm : float or "cube" or None
        Column length for the inversion (see :mod:`nanodomains.stem.composition`). With a
        registry-depth table (``table="registry"``, :mod:`nanodomains.stem.zcontrast`)
        None fits it from intensities normalised to the incident beam (or marginalises
        it for ratios), and "cube" on a crystal that fills the field does the same.
    termination : {"CsX", "none"}
    background : float or {"auto", "vacuum", "columns"}
        Background under the columns for the composition (:class:`~nanodomains.records.StemBackground`
        says which was used). A number: that level (image units per pixel),
        subtracted from the Voronoi sums. "auto" (default, also None): the vacuum
        level where the field has vacuum, else the fitted background of the joint
        column fits with the Gaussian column volumes as intensities (StatSTEM's
        scattering cross-sections; De Backer et al., Ultramicroscopy 171, 104
        (2016)). "vacuum" / "columns" force one of the two. No other stage needs a
        background.
    n_boot, seed : int
        Bootstrap resamplings and seed.
    lattice_convention : {"cubic", "pseudocubic"}
        Vegard end members of the cross-check.
    pixel_size_rel_err : float
        Relative calibration uncertainty for the Vegard cross-check.
    eds_maps : xarray.Dataset or str or Path, optional
        EDS line maps registered to the image (same nm frame): a line scan with a
        fitted step across every boundary.
    probe : dict, optional
        ``beam_energy_kev``, ``convergence_semiangle_mrad``, ``source_fwhm_pm`` (and
        ``defocus_nm``, ``cs_um``) for the cross-talk of the default table, overriding
        the image metadata (plain TIFF and .npy files carry none: without them the
        default table has no cross-talk correction, which biases b low by ~0.1; said
        in the result).
    calibrate_lattice_pm : float, optional
        Known cell edge (pm) of a reference lattice in the image: the pixel size
        is set from it (:func:`nanodomains.stem.gpa.calibrate_on_lattice`, over
        ``calibration_region`` and ``calibration_direction``) instead of the
        file's, and its uncertainty enters the Vegard cross-check. The file's value
        is kept as ``previous_pixel_size_pm`` / ``previous_pixel_size_source``. A
        file without a length calibration can then be analysed without
        ``pixel_size_pm``.
    calibration_region : (slice, slice), optional
    calibration_direction : {"both", "x", "y"}
    segment_kwargs : dict, optional
        Passed to :func:`nanodomains.stem.domains.segment_domains`.
    incident_level : float, optional
        Detector signal of the whole incident beam above the dark level, in image units
        (a detector scan; LeBeau & Stemmer, Ultramicroscopy 108, 1653 (2008)): the image
        (and a numeric ``background``) are divided by it, so intensities become
        fractions of the incident beam and a registry table fits the thickness.

    Returns
    -------
    AnalysisResult
        With ``record``, the :class:`~nanodomains.records.StemDomains` written as
        ``domains.json`` (every argument above in ``record.settings``).

    Raises
    ------
    FileFormatError, CalibrationError, InputError
        Unreadable file, missing calibration, 1-D / colour / NaN data (from
        :func:`~nanodomains.stem.io.load_image`).
    FitError
        "no lattice found" (noise, amorphous), or no columns / domains.
    """
    from nanodomains.stem import domains as dom
    from nanodomains.stem.columns import CLASSIFY_REFLECTIONS, find_columns
    from nanodomains.stem.gpa import gpa

    kw = dict(pixel_size_pm=pixel_size_pm, names=list(names), classification=classification,
              composition=composition, thickness_nm=thickness_nm, termination=termination, background=background,
              n_boot=n_boot, seed=seed, lattice_convention=lattice_convention,
              pixel_size_rel_err=pixel_size_rel_err, eds_maps=eds_maps, probe=probe,
              calibrate_lattice_pm=calibrate_lattice_pm, calibration_region=calibration_region,
              calibration_direction=calibration_direction, segment_kwargs=segment_kwargs,
              incident_level=incident_level)
    t0 = time.perf_counter()
    names = tuple(names)
    image = _prepare_image(image, pixel_size_pm, names, calibrate_lattice_pm, calibration_region,
                           calibration_direction)
    if calibrate_lattice_pm is not None:
        pixel_size_rel_err = max(pixel_size_rel_err, float(image.attrs["pixel_size_rel_err"]))
    if composition is None:
        composition = names == CSPBX3_NAMES
    tab = _load_table(table)
    background = _check_background(background)
    if incident_level is not None:
        image, background = _normalise_to_incident(image, incident_level, background)
    # steps 2-3: lattice, GPA, columns (no vacuum needed); a failure here means no lattice: raised
    lat = _reference_lattice(image, calibrate_lattice_pm, calibration_region)
    res = gpa(image, lattice=lat, reflections=CLASSIFY_REFLECTIONS, unwrap=False)
    cols = find_columns(image, res, names=names, method=classification)
    check = lattice_check(float(np.mean(res.lattice.lattice_pm)), names, lattice_convention)
    warnings = [check["note"]] if check["status"] == "outside" else []
    not_computed: dict[str, str] = {}
    # step 4: domains and boundaries (no vacuum needed); what cannot be segmented is said, the rest written
    seg = None
    try:
        seg = dom.segment_domains(image, res, cols, **(segment_kwargs or {}))
    except FitError as exc:
        not_computed["domains"] = f"domain segmentation failed: {exc}"
        not_computed["boundaries"] = "no domains"
    if seg is not None:
        cols = _annotate_columns(cols, seg, names)
    # step 5: composition where its inputs exist
    step = None
    if not composition:
        not_computed["composition"] = "column names are not CsPbX3, or composition=False"
    else:
        reason = _composition_inputs(res.lattice, cols, names, seg)
        out = reason if reason is not None else _composition_step(
            image, cols, seg, tab, names, float(np.mean(res.lattice.cell_px)), background=background, probe=probe,
            thickness_nm=thickness_nm, termination=termination, n_boot=n_boot, seed=seed,
            lattice_convention=lattice_convention, pixel_size_rel_err=pixel_size_rel_err)
        if isinstance(out, str):
            not_computed["composition"] = out
        else:
            step = out
            warnings += step.warnings
    rows = seg.domains if seg is not None else []
    bounds = [dict(b) for b in seg.boundaries] if seg is not None else []
    if eds_maps is not None and bounds:
        _eds_steps(eds_maps, bounds, rows)
    reason = not_computed.get("composition")
    record = StemDomains(
        source=image.attrs.get("source_file"), settings=_settings(table, kw, seg), warnings=tuple(warnings),
        not_computed=not_computed, pixel_size_pm=float(image.attrs["pixel_size_pm"]), shape_px=image.shape,
        pixel_size_source=image.attrs.get("pixel_size_source"),
        # the calibration a reference lattice replaced (None: not calibrated on a lattice, or none in the file)
        previous_pixel_size_pm=image.attrs.get("previous_pixel_size_pm"),
        previous_pixel_size_source=image.attrs.get("previous_pixel_size_source"),
        column_names=names, lattice=_lattice_item(res.lattice), lattice_check=check,
        columns=_column_set(cols),
        background=step.background if step else None, table=step.table if step else None,
        termination=termination if step else None, thickness=step.thickness if step else None,
        shifted_fraction_definition=_shifted_definition() if step else None,
        eds=("line scan with an error-function step across each boundary (nanodomains.stem.linescan)"
             if eds_maps is not None else None),
        domains=tuple(_domain_item(r, step.per_domain.get(r["id"]) if step else None, reason) for r in rows),
        boundaries=tuple(_boundary_item(b) for b in bounds),
        elapsed_s=time.perf_counter() - t0)
    return AnalysisResult(image, res, cols, seg, record, step.table_used if step else None)


def _shifted_definition() -> str:
    from nanodomains.stem.composition import SHIFTED_FRACTION_DEFINITION

    return SHIFTED_FRACTION_DEFINITION

def _eds_steps(eds_maps: Any, bounds: list[dict], rows: list[dict]) -> None:
    from nanodomains.stem import linescan

    if not isinstance(eds_maps, xr.Dataset):
        from nanodomains.stem.io import load_eds

        eds_maps = load_eds(eds_maps)
    lat = {r["id"]: r["lattice_pm"] for r in rows}
    for b in bounds:
        a = float(np.nanmean([lat[b["domains"][0]], lat[b["domains"][1]]]))
        try:
            r = linescan.boundary_scan(eds_maps, b, a)
            r.pop("profile")
            b["eds_step"] = r
        except NanodomainsError as exc:
            b["eds_step"] = {"error": f"{type(exc).__name__}: {exc}"}


def analyze_for_batch(path: Path, out_dir: Path, options: dict) -> tuple[dict, AnalysisResult]:
    """Batch handler ``stem_image``: analyse one image file into ``out_dir``.

    ``options`` are keyword arguments of :func:`analyze_image` (``pixel_size_pm``,
    ``table``, ``thickness_nm``, ``names`` as "B,A,O", ``composition``, ...). The
    files are those of ``nanodomains stem analyze`` (:meth:`AnalysisResult.write`):
    ``domains.json`` is the same :class:`~nanodomains.records.StemDomains` record.

    Returns
    -------
    values : dict
        Scalars for the batch table: ``n_domains``, ``n_rp_boundaries``,
        ``n_other_boundaries``, ``n_columns``, ``lattice_pm_min``,
        ``lattice_pm_max``, ``br_fraction_min``, ``br_fraction_max``, ``figure``.
    result : AnalysisResult
        The analysis itself (for the batch report's interactive figure, without reading
        the files again).
    """
    opts = dict(options)
    if isinstance(opts.get("names"), str):
        opts["names"] = tuple(v.strip() for v in opts["names"].split(","))
    res = analyze_image(Path(path), **opts)
    res.write(out_dir)
    lat = [d.lattice_pm.value for d in res.domains if d.lattice_pm.value is not None]
    brs = [d.br_fraction.value for d in res.domains if d.br_fraction.value is not None]
    return {
        "n_domains": len(res.domains),
        "n_rp_boundaries": sum(b.type == "RP" for b in res.boundaries),
        "n_other_boundaries": sum(b.type != "RP" for b in res.boundaries),
        "n_columns": int(len(res.columns)),
        "lattice_pm_min": float(min(lat)) if lat else float("nan"),
        "lattice_pm_max": float(max(lat)) if lat else float("nan"),
        "br_fraction_min": float(min(brs)) if brs else float("nan"),
        "br_fraction_max": float(max(brs)) if brs else float("nan"),
        "figure": "overview.png",
    }, res

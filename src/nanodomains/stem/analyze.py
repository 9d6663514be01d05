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
   CsPbX3 images;
5. optionally :func:`nanodomains.stem.linescan.boundary_scan` across every boundary
   of registered EDS maps;

and :meth:`AnalysisResult.write` writes ``domains.json``, ``columns.csv``, ``gpa.nc``
and ``overview.png`` (image, labelled (100) amplitude map and composition plot in the
manner of the seed's Fig. 1a, b, g; Liu et al., Nano Lett. 23, 10089 (2023)).
The physics and its references are in the docstrings of those modules.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from nanodomains import __version__
from nanodomains.errors import FileFormatError, InputError, NanodomainsError

__all__ = ["AnalysisResult", "analyze_image", "analyze_for_batch", "lattice_check", "CSPBX3_NAMES", "ABO3_NAMES"]

CSPBX3_NAMES = ("Cs", "PbX", "X")
ABO3_NAMES = ("B", "A", "O")
SCHEMA = "nanodomains.stem.domains/1"
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


def _clean(obj: Any) -> Any:
    """JSON-ready copy: numpy scalars to Python, NaN/inf to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


def _atomic(path: Path, write: Any) -> Path:
    """Write through a temporary file in the same folder (same suffix), then rename."""
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    write(tmp)
    tmp.replace(path)
    return path


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
    domains : list of dict
        Rows of ``domains.json`` (segmentation + composition).
    boundaries : list of dict
    info : dict
        Top-level fields of ``domains.json`` (table, thickness, background, ...).
    table : xarray.Dataset or None
        Column-intensity table used.
    """

    image: xr.DataArray
    gpa: Any
    columns: Any
    segmentation: Any
    domains: list[dict[str, Any]]
    boundaries: list[dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)
    table: Any = None

    def to_dict(self) -> dict[str, Any]:
        """The ``domains.json`` content (NaN as null)."""
        return _clean({**self.info, "domains": self.domains, "boundaries": self.boundaries})

    def write(self, out_dir: str | Path, figure: bool = True) -> dict[str, Path]:
        """Write ``domains.json``, ``columns.csv``, ``gpa.nc`` and ``overview.png`` into ``out_dir``.

        Files are written to temporary names and renamed, so a crash leaves no
        half-written file.
        """
        from nanodomains.stem.columns import write_columns_csv

        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FileFormatError(f"{out}: cannot create the output folder ({exc})") from exc
        paths = {
            "domains": _atomic(out / "domains.json",
                               lambda t: t.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False))),
            "columns": _atomic(out / "columns.csv", lambda t: write_columns_csv(self.columns, t)),
            "gpa": _atomic(out / "gpa.nc", lambda t: self.maps_dataset().to_netcdf(t, engine="h5netcdf")),
        }
        if figure:
            paths["overview"] = _atomic(out / "overview.png", self.plot_overview)
        return paths

    def maps_dataset(self) -> xr.Dataset:
        """GPA maps plus the segmentation maps (registry, lattice, contrast, domain labels)."""
        from nanodomains.stem.gpa import strain_from_lock_in

        ds = self.gpa.to_dataset()
        seg = self.segmentation
        dims = ("y", "x")
        ds["registry"] = (dims, seg.registry_map.astype(np.float32), {"long_name": "registry map rho (see domains.py)"})
        ds["lattice_local"] = (dims, seg.lattice_map_pm.astype(np.float32),
                               {"units": "pm", "long_name": "local cell edge from the (110) and (1-10) lock-ins"})
        ds["contrast"] = (dims, seg.contrast_map.astype(np.float32),
                          {"long_name": "(A10 + A01) / (A11 + A1-1)"})
        ds["domain"] = (dims, seg.labels.astype(np.int16), {"long_name": "domain id (0: outside the crystal)"})
        hk = self.gpa.reflections_hk
        i, j = hk.index((1, 1)), hk.index((1, -1))
        h = [self.gpa.amplitude[k].astype(np.float64) * np.exp(1j * self.gpa.phase[k].astype(np.float64)) for k in (i, j)]
        st = strain_from_lock_in(h[0], h[1], self.gpa.g_per_px[i], self.gpa.g_per_px[j])
        for k, v in st.items():
            ds[f"{k}_110"] = (dims, v.astype(np.float32),
                              {"long_name": f"{k} from the (110) and (1-10) reflections (unaffected by RP shifts)"})
        ds.attrs["strain_note"] = ("exx, eyy, exy, rotation use (100) and (010), whose phases jump by pi at RP faults; "
                                   "the *_110 maps use (110) and (1-10)")
        return ds

    def plot_overview(self, path: str | Path) -> Path:
        """Overview figure: image with domains (a), labelled (100) amplitude (b), compositions (g)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        seg = self.segmentation
        img = self.image.values
        h_nm = self.image.attrs["pixel_size_pm"] * 1e-3
        y0, x0 = seg.origin_nm
        ext = (x0 - h_nm / 2, x0 + (img.shape[1] - 0.5) * h_nm, y0 + (img.shape[0] - 0.5) * h_nm, y0 - h_nm / 2)
        has_comp = any(d.get("br_fraction") is not None and np.isfinite(d.get("br_fraction", np.nan))
                       for d in self.domains)
        fig, axes = plt.subplots(1, 3 if has_comp else 2, figsize=(15 if has_comp else 10, 5))
        ax = axes[0]
        lo, hi = np.percentile(img, [1, 99.5])
        ax.imshow(np.clip((img - lo) / max(hi - lo, 1e-12), 0, 1) ** 0.6, cmap="gray", extent=ext)
        if seg.n_domains > 1:
            ax.contour(seg.labels, levels=np.arange(0.5, seg.n_domains + 1), colors="yellow", linewidths=0.6,
                       extent=(ext[0], ext[1], ext[3], ext[2]), origin="upper")
        ax.set_title("(a) ADF-STEM image, domain boundaries")
        ax.set_xlabel("x (nm)")
        ax.set_ylabel("y (nm)")
        ax = axes[1]
        ax.imshow(self.gpa.amplitude_100_norm, cmap="viridis", vmin=0, vmax=1, extent=ext)
        for b in self.boundaries:
            c = "red" if b["type"] == "RP" else "white"
            ax.plot(*b["midpoint_nm"], marker="o", ms=3, color=c)
        for d in self.domains:
            ax.text(*d["centroid_nm"], d["name"], color="white", ha="center", va="center", fontsize=11,
                    fontweight="bold")
        ax.set_title("(b) normalised (100) GPA amplitude, domains R1..Rn")
        ax.set_xlabel("x (nm)")
        if has_comp:
            self._plot_composition(axes[2])
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

    def _plot_composition(self, ax) -> None:
        from nanodomains.stem.composition import CompositionModel

        b = np.linspace(0, 1, 101)
        n = next((d["thickness_cells"] for d in self.domains if d.get("thickness_cells")), 24.0)
        model = CompositionModel(self.table, float(n), self.info.get("termination", "CsX"))
        for m, ls in ((0.0, "-"), (0.25, "--"), (0.5, ":")):
            r = model.ratios(b, np.full_like(b, m))
            ax.plot(b, r[:, 1], ls, color="k", lw=1, label=f"X/bright, m = {m:g}")
        for d in self.domains:
            bb = d.get("br_fraction")
            if bb is None or not np.isfinite(bb):
                continue
            r2, e2 = d["ratios"][1], d["ratios_err"][1]
            ax.errorbar(bb, r2, xerr=d.get("br_fraction_err"), yerr=e2, fmt="o", ms=6, capsize=2,
                        label=f"{d['name']}: {d['formula']}, s = {d['shifted_fraction']:.2f}")
        ax.set_xlabel("Br fraction b")
        ax.set_ylabel("column intensity ratio X / bright")
        ax.set_title("(g) Z-contrast composition (" + self.info.get("table", {}).get("method", "?") + ")")
        ax.legend(fontsize=7, loc="upper right")


def _load_table(table: Any) -> xr.Dataset | None:
    from nanodomains.stem import tables

    if table is None:
        return None
    if isinstance(table, xr.Dataset):
        return tables.check_table(table)
    return tables.load_table(table)


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
    background: float | None = None,
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
) -> AnalysisResult:
    """Analyse a [100] perovskite ADF-STEM image (module docstring).

    Parameters
    ----------
    image : xarray.DataArray or str or Path
        Calibrated image, or a file for :func:`nanodomains.stem.io.load_image`.
    table : xarray.Dataset or str or Path, optional
        Column-intensity table (:mod:`nanodomains.stem.tables`; power law or
        multislice); default the power law with the image probe's cross-talk
        (:func:`nanodomains.stem.composition.default_table`).
    pixel_size_pm : float, optional
        Pixel size for files without calibration (overrides the file's).
    names : (dim, bright, X)
        Column type names: CsPbX3 ("Cs", "PbX", "X") or ABO3 ("B", "A", "O").
    classification : {"local", "global"}
        Column classification (:func:`nanodomains.stem.columns.classify_columns`).
    composition : bool, optional
        Invert the column intensities (default: for CsPbX3 names only).
    thickness_nm : float or "cube"
        Column length for the inversion (see :mod:`nanodomains.stem.composition`).
    termination : {"CsX", "none"}
    background : float, optional
        Vacuum level per pixel; default measured on the vacuum pixels.
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

    Returns
    -------
    AnalysisResult

    Raises
    ------
    FileFormatError, CalibrationError, InputError
        Unreadable file, missing calibration, 1-D / colour / NaN data (from
        :func:`~nanodomains.stem.io.load_image`).
    FitError
        "no lattice found" (noise, amorphous), or no columns / domains.
    """
    from nanodomains.stem import composition as comp
    from nanodomains.stem import domains as dom
    from nanodomains.stem.columns import CLASSIFY_REFLECTIONS, find_columns
    from nanodomains.stem.gpa import calibrate_on_lattice, find_lattice, gpa

    t0 = time.perf_counter()
    if calibration_direction not in ("both", "x", "y"):
        raise InputError(f"calibration_direction (--calibration-direction) must be both, x or y, "
                         f"got {calibration_direction!r}")
    if calibrate_lattice_pm is None and (calibration_region is not None or calibration_direction != "both"):
        raise InputError("a calibration region or direction (--calibration-region / --calibration-direction) "
                         "needs the reference lattice (calibrate_lattice_pm, --calibrate-lattice-pm)")
    if calibrate_lattice_pm is not None and not (math.isfinite(calibrate_lattice_pm) and calibrate_lattice_pm > 0):
        raise InputError(f"the reference lattice (calibrate_lattice_pm, --calibrate-lattice-pm) must be > 0 pm, "
                         f"got {calibrate_lattice_pm!r}")
    if not isinstance(image, xr.DataArray):
        image = _load_for_analysis(image, pixel_size_pm, calibrate_lattice_pm is not None)
    elif pixel_size_pm is not None:
        raise InputError("pixel_size_pm applies to files; a DataArray carries its own calibration")
    if image.ndim != 2:
        raise InputError(f"analyze_image needs a 2-D image, got dims {image.dims} (average the stack first)")
    if "pixel_size_pm" not in image.attrs and calibrate_lattice_pm is None:
        raise InputError("the image has no pixel_size_pm attribute (use nanodomains.stem.io.load_image)")
    if len(names) != 3:
        raise InputError(f"names must be three type names (dim, bright, X), got {names!r}")
    if composition is None:
        composition = tuple(names) == CSPBX3_NAMES
    if calibrate_lattice_pm is not None:
        image = calibrate_on_lattice(image, calibrate_lattice_pm, region=calibration_region,
                                     direction=calibration_direction)
        pixel_size_rel_err = max(pixel_size_rel_err, float(image.attrs["pixel_size_rel_err"]))
    tab = _load_table(table)
    lat = find_lattice(image, refine=False)  # gpa() refines it
    res = gpa(image, lattice=lat, reflections=CLASSIFY_REFLECTIONS, unwrap=False)
    cols = find_columns(image, res, names=names, method=classification)
    seg = dom.segment_domains(image, res, cols, **(segment_kwargs or {}))
    px = float(image.attrs["pixel_size_pm"])
    cell_px = float(np.mean(res.lattice.cell_px))
    pos = dom.column_positions_px(cols, px, seg.origin_nm)
    sub = seg.column_sublattice
    cols = cols.copy()
    cols["domain"] = seg.column_domain
    cols["sublattice"] = sub
    cols["registry"] = dom.column_registry(sub, cols["type"].to_numpy(), names)
    cols["interior"] = seg.column_interior
    info: dict[str, Any] = {
        "schema": SCHEMA,
        "software": f"nanodomains {__version__}",
        "source_file": image.attrs.get("source_file"),
        "pixel_size_pm": px,
        "pixel_size_source": image.attrs.get("pixel_size_source"),
        # the calibration a reference lattice replaced (None: not calibrated on a lattice, or none in the file)
        "previous_pixel_size_pm": image.attrs.get("previous_pixel_size_pm"),
        "previous_pixel_size_source": image.attrs.get("previous_pixel_size_source"),
        "shape_px": list(image.shape),
        "lattice": {"reference_lattice_pm": [float(v) for v in res.lattice.lattice_pm],
                    "reference_lattice_pm_err": [float(v) for v in res.lattice.lattice_pm_err],
                    "angle_deg": res.lattice.angle_deg,
                    "note": "GPA reference lattice of the whole image; per-domain values in domains[]"},
        "column_names": list(names),
        "n_columns": int(len(cols)),
        "n_columns_fit_failed": int((~cols["fit_ok"]).sum()),
        "segmentation": seg.parameters,
        "registry_convention": "+1: the registry of the crystal's largest domain (reference), -1: half-cell shifted",
        "lattice_check": lattice_check(float(np.mean(res.lattice.lattice_pm)), names, lattice_convention),
        "warnings": [],
    }
    if info["lattice_check"]["status"] == "outside":
        info["warnings"].append(info["lattice_check"]["note"])
    rows = [dict(d) for d in seg.domains]
    table_used = None
    if composition:
        img = image.values
        if background is None:
            bg, bg_err, n_vac = comp.background_level(img, pos, cell_px)
            info["background"] = {"level_per_px": bg, "level_err": bg_err, "n_vacuum_px": n_vac,
                                  "source": "mean of pixels > 1.5 cells from every column"}
        else:
            bg = float(background)
            info["background"] = {"level_per_px": bg, "source": "argument"}
        inten, complete = comp.column_cross_sections(img, pos, cell_px, bg)
        cols["cross_section"] = inten * (px * 1e-3) ** 2
        if tab is None:
            tab, note = comp.default_table({**image.attrs, **(probe or {})})
        else:
            note = f"{tab.attrs.get('method')} table given by the user"
        table_used = tab
        if "no cross-talk correction" in note:
            info["warnings"].append(f"column-intensity table: {note} (Br fraction biased low by ~0.1; give --probe)")
        info["table"] = {"method": tab.attrs.get("method"), "note": note,
                         **{k: _clean(v) for k, v in tab.attrs.items() if k in (
                             "column_exponent", "column_saturation_a2", "crosstalk", "num_configs",
                             "frozen_phonons", "energy_kev", "detector_mrad")}}
        info["termination"] = termination
        info["shifted_fraction_definition"] = comp.SHIFTED_FRACTION_DEFINITION
        area = float((seg.labels > 0).sum() * (px * 1e-3) ** 2)
        lab = seg.labels
        touches = bool(np.any(lab[0] > 0) or np.any(lab[-1] > 0) or np.any(lab[:, 0] > 0) or np.any(lab[:, -1] > 0))
        models: dict[int, Any] = {}
        thick_note = []

        def model_for(d):
            n, src = comp.thickness_cells(thickness_nm, d["lattice_pm"], area, touches)
            thick_note.append(src)
            key = int(round(n * 10))
            if key not in models:
                models[key] = comp.CompositionModel(tab, n, termination)
            return models[key]

        cls = np.select([cols["type"] == names[1], cols["type"] == names[0], cols["type"] == names[2]],
                        ["bright", "dim", "X"], "none")
        use = seg.column_interior & complete & cols["fit_ok"].to_numpy(bool)
        res_c = comp.domain_composition(inten, cls, seg.column_domain, use, rows, model_for, n_boot=n_boot,
                                        seed=seed, lattice_convention=lattice_convention,
                                        pixel_size_rel_err=pixel_size_rel_err)
        for r, c in zip(rows, res_c):
            r.update(c)
        info["thickness"] = thick_note[0] if thick_note else None
        info["bootstrap"] = {"n_boot": n_boot, "seed": seed, "intervals": "*_err: half 16-84 %, *_ci95: 2.5-97.5 %"}
    else:
        for r in rows:
            r.update({k: None for k in ("br_fraction", "br_fraction_err", "shifted_fraction", "shifted_fraction_err",
                                        "formula")})
        info["composition"] = "not computed (column names are not CsPbX3, or composition=False)"
    bounds = [dict(b) for b in seg.boundaries]
    if eds_maps is not None:
        _eds_steps(eds_maps, bounds, rows)
        info["eds"] = "line scan with an error-function step across each boundary (nanodomains.stem.linescan)"
    info["elapsed_s"] = time.perf_counter() - t0
    return AnalysisResult(image, res, cols, seg, rows, bounds, info, table_used)


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


def analyze_for_batch(path: Path, out_dir: Path, options: dict) -> dict:
    """Batch handler ``stem_image``: analyse one image file into ``out_dir``.

    ``options`` are keyword arguments of :func:`analyze_image` (``pixel_size_pm``,
    ``table``, ``thickness_nm``, ``names`` as "B,A,O", ``composition``, ...).

    Returns
    -------
    dict
        Scalars for the batch table: ``n_domains``, ``n_rp_boundaries``,
        ``n_other_boundaries``, ``n_columns``, ``lattice_pm_min``,
        ``lattice_pm_max``, ``br_fraction_min``, ``br_fraction_max``, ``figure``.
    """
    opts = dict(options)
    if isinstance(opts.get("names"), str):
        opts["names"] = tuple(v.strip() for v in opts["names"].split(","))
    res = analyze_image(Path(path), **opts)
    res.write(out_dir)
    lat = [d["lattice_pm"] for d in res.domains if d.get("lattice_pm") is not None and np.isfinite(d["lattice_pm"])]
    brs = [d["br_fraction"] for d in res.domains if d.get("br_fraction") is not None and np.isfinite(d["br_fraction"])]
    return {
        "n_domains": len(res.domains),
        "n_rp_boundaries": sum(b["type"] == "RP" for b in res.boundaries),
        "n_other_boundaries": sum(b["type"] != "RP" for b in res.boundaries),
        "n_columns": int(len(res.columns)),
        "lattice_pm_min": float(min(lat)) if lat else float("nan"),
        "lattice_pm_max": float(max(lat)) if lat else float("nan"),
        "br_fraction_min": float(min(brs)) if brs else float("nan"),
        "br_fraction_max": float(max(brs)) if brs else float("nan"),
        "figure": "overview.png",
    }

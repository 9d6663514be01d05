"""Read and write calibrated ADF-STEM images.

Every image in nanodomains is an :class:`xarray.DataArray` with dims ``("y", "x")``
(or ``("frame", "y", "x")`` for a kept stack), coordinates in nm (pixel centres,
``coord = offset + index * pixel size``) and attributes:

``pixel_size_pm``
    Square pixel size in pm (always present).
``pixel_size_source``
    ``"file"`` (read from the file's calibration), ``"signal"`` (from a HyperSpy
    signal's axes, :mod:`nanodomains.interop`) or ``"argument"`` (given by the
    caller, which overrides the file).
``source_file``
    The path the image was read from (absent for images made in memory).
probe, detector and acquisition attributes
    ``beam_energy_kev``, ``convergence_semiangle_mrad``, ``detector_inner_mrad``,
    ``detector_outer_mrad``, ``camera_length_mm``, ``magnification``, ``microscope``,
    ``title``, ``acquisition_date``: copied from the file's metadata when it holds
    them, never invented. The probe
    and detector names are those of
    :meth:`nanodomains.stem.probe.ProbeParameters.to_attrs`, so
    ``ProbeParameters.from_attrs(image.attrs)`` reads them back.
``frames_averaged``, ``registration_shifts_px``
    For stacks reduced to one image by :func:`load_image`.

Readers: RosettaSciIO [1]_ plug-ins for Gatan DigitalMicrograph (``.dm3``,
``.dm4``), EMD (Velox and NCEM, ``.emd``), FEI TIA (``.ser``, ``.emi``), TIFF
(ImageJ / DigitalMicrograph / FEI calibrations), HyperSpy (``.hspy``, ``.hdf5``) and
the other RosettaSciIO formats by extension; NumPy ``.npy`` and netCDF ``.nc``
(nanodomains' own format) directly. A length calibration is taken only from the
file's axis units (every spelling of :data:`LENGTH_UNITS_NM`: nm, n_m, A, Å,
angstrom, um, µm, pm, m, ...); a file without one needs
``pixel_size_pm``, otherwise :class:`~nanodomains.errors.CalibrationError` is
raised. Nothing is guessed.

Stacks (3-D data, frames first) can be rigidly registered by phase correlation [2]_
(:func:`skimage.registration.phase_cross_correlation` with sub-pixel upsampling,
shifts applied by Fourier shift) and averaged, frame by frame so memory stays at a
few frames.

References
----------
.. [1] RosettaSciIO, https://hyperspy.org/rosettasciio (file_reader returns a list of
   dicts with ``data``, ``axes`` and ``metadata``).
.. [2] M. Guizar-Sicairos, S. T. Thurman, J. R. Fienup, "Efficient subpixel image
   registration algorithms", Opt. Lett. 33, 156 (2008).
"""

from __future__ import annotations

import base64
import importlib
import json
import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from nanodomains.errors import (
    CalibrationError,
    FileFormatError,
    InputError,
    require_positive,
)
from nanodomains.files import atomic_path, to_jsonable

__all__ = [
    "check_pixel_size_coords",
    "tiff_calibration",
    "axes_calibration",
    "decode_array",
    "encode_array",
    "image_from_array",
    "load_eds",
    "load_image",
    "load_netcdf",
    "metadata_attrs",
    "netcdf_attrs",
    "normalise_unit",
    "register_stack",
    "save_image",
    "save_netcdf",
    "tem_metadata",
    "unit_to_nm",
    "validate_image_array",
]

#: length units accepted as a calibration, in nm per unit. Keys are normalised spellings
#: (:func:`_normalise_unit`: Unicode NFKC, lower case, no spaces, underscores or dots), so
#: "nm", "n_m" (NCEM EMD v0.2), "NM", "Å" (U+00C5 or the angstrom sign U+212B), "A",
#: "angstrom", "um", "µm"/"μm" (micro sign or Greek mu), "micron", "pm", "m", "meters"
#: (RosettaSciIO's MRC/DE readers) and "mm" all parse.
LENGTH_UNITS_NM = {
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometers": 1.0,
    "nanometre": 1.0,
    "nanometres": 1.0,
    "a": 0.1,
    "å": 0.1,
    "angstrom": 0.1,
    "angstroms": 0.1,
    "ångström": 0.1,
    "ångstrom": 0.1,
    "pm": 1e-3,
    "picometer": 1e-3,
    "picometers": 1e-3,
    "picometre": 1e-3,
    "picometres": 1e-3,
    "um": 1e3,
    "μm": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "micrometers": 1e3,
    "micrometre": 1e3,
    "micrometres": 1e3,
    "mm": 1e6,
    "m": 1e9,
    "meter": 1e9,
    "meters": 1e9,
    "metre": 1e9,
    "metres": 1e9,
}

#: extension -> RosettaSciIO plug-in module
_RSCIIO_BY_EXT = {
    ".dm3": "rsciio.digitalmicrograph",
    ".dm4": "rsciio.digitalmicrograph",
    ".emd": "rsciio.emd",
    ".ser": "rsciio.tia",
    ".emi": "rsciio.tia",
    ".tif": "rsciio.tiff",
    ".tiff": "rsciio.tiff",
    ".hspy": "rsciio.hspy",
    ".hdf5": "rsciio.hspy",
    ".zspy": "rsciio.zspy",
    ".mrc": "rsciio.mrc",
}

_SQUARE_PIXEL_RTOL = 0.01


def _normalise_unit(units: Any) -> str:
    """A unit string in the spelling of :data:`LENGTH_UNITS_NM`'s keys.

    NFKC folds the angstrom sign (U+212B) into "Å" and the micro sign (U+00B5) into
    Greek mu; case, spaces, underscores ("n_m") and dots ("nm.") are dropped.
    """
    import unicodedata

    u = unicodedata.normalize("NFKC", str(units)).strip().lower()
    return u.replace("_", "").replace(" ", "").replace(".", "")


def _unit_to_nm(units: Any) -> float | None:
    """nm per unit for a length unit string, or None if not a length unit (or empty)."""
    if units is None:
        return None
    return LENGTH_UNITS_NM.get(_normalise_unit(units))


def validate_image_array(data: Any, name: str = "image", *, allow_stack: bool = True) -> np.ndarray:
    """Check that ``data`` is a real-valued 2-D image (or 3-D stack) without NaN.

    Parameters
    ----------
    data : array_like
        Candidate image.
    name : str
        Name used in error messages (file name or argument name).
    allow_stack : bool
        Accept 3-D data (frames first).

    Returns
    -------
    numpy.ndarray
        The data as float64 (a view when already float64).

    Raises
    ------
    InputError
        1-D or >3-D data, colour (RGB/RGBA) data, complex data, or non-finite values.
    """
    arr = np.asarray(data)
    if arr.dtype.names is not None:
        raise InputError(
            f"{name}: colour data (structured dtype with fields {arr.dtype.names}); "
            "expected a single-channel ADF-STEM image"
        )
    if np.iscomplexobj(arr):
        raise InputError(f"{name}: complex data; expected a real-valued intensity image")
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{name}: data of dtype {arr.dtype} is not numeric")
    if arr.ndim < 2:
        raise InputError(f"{name}: {arr.ndim}-D data of shape {arr.shape}; expected a 2-D image")
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and min(arr.shape[:2]) > 4:
        raise InputError(
            f"{name}: shape {arr.shape} looks like colour (RGB/RGBA) data; "
            "expected a single-channel image or a stack with frames first"
        )
    if arr.ndim == 3 and arr.shape[0] == 0:
        raise InputError(f"{name}: empty stack of shape {arr.shape} (0 frames)")
    if arr.ndim > 3 or (arr.ndim == 3 and not allow_stack):
        raise InputError(
            f"{name}: {arr.ndim}-D data of shape {arr.shape}; expected a 2-D image"
            + (" or a 3-D stack (frame, y, x)" if allow_stack else "")
        )
    if min(arr.shape[-2:]) < 8:
        raise InputError(f"{name}: image of shape {arr.shape[-2:]} is too small (need >= 8 x 8 px)")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise InputError(f"{name}: {n_bad} NaN/inf pixel(s); expected finite intensities")
    return arr


def image_from_array(
    data: Any,
    pixel_size_pm: float,
    *,
    origin_nm: tuple[float, float] = (0.0, 0.0),
    name: str = "image",
    **attrs: Any,
) -> xr.DataArray:
    """Wrap a 2-D array (or 3-D stack, frames first) as a calibrated image.

    Parameters
    ----------
    data : array_like
        Intensities, shape (ny, nx) or (n_frames, ny, nx).
    pixel_size_pm : float
        Square pixel size in pm.
    origin_nm : (float, float)
        Coordinates (y, x) of the first pixel centre in nm.
    name : str
        Name used in error messages.
    **attrs
        Extra attributes (``beam_energy_kev``, ``source_file``, ...). ``None``
        values are dropped (netCDF cannot store them).

    Returns
    -------
    xarray.DataArray
        dims ("y", "x") or ("frame", "y", "x"), coords in nm.
    """
    arr = validate_image_array(data, name)
    px_pm = require_positive("pixel_size_pm", pixel_size_pm)
    px_nm = px_pm * 1e-3
    ny, nx = arr.shape[-2:]
    coords = {
        "y": ("y", origin_nm[0] + px_nm * np.arange(ny), {"units": "nm"}),
        "x": ("x", origin_nm[1] + px_nm * np.arange(nx), {"units": "nm"}),
    }
    dims: tuple[str, ...] = ("y", "x")
    if arr.ndim == 3:
        dims = ("frame", "y", "x")
        coords["frame"] = ("frame", np.arange(arr.shape[0]))
    out_attrs = {"pixel_size_pm": px_pm}
    out_attrs.update({k: v for k, v in attrs.items() if v is not None})
    out_attrs.setdefault("pixel_size_source", "argument")
    return xr.DataArray(arr, dims=dims, coords=coords, attrs=out_attrs, name="intensity")


# --------------------------------------------------------------------------- reading


def _read_rsciio(path: Path, module: str) -> list[dict]:
    try:
        plugin = importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise FileFormatError(
            f"{path}: reading this format needs {module} ({exc}); install nanodomains[stem]"
        ) from exc
    try:
        signals = plugin.file_reader(str(path))
    except Exception as exc:  # noqa: BLE001 - every reader failure is a format error
        raise FileFormatError(
            f"{path}: cannot read as {module.split('.')[-1]} file "
            f"(truncated or corrupt?): {type(exc).__name__}: {exc}"
        ) from exc
    if isinstance(signals, dict):
        signals = [signals]
    if not signals:
        raise FileFormatError(f"{path}: the file holds no dataset")
    return list(signals)


def _signal_title(sig: dict) -> str:
    return str(sig.get("metadata", {}).get("General", {}).get("title", "") or "")


def _pick_signal(path: Path, signals: list[dict], signal: int | str | None) -> dict:
    """Choose the image dataset of a multi-dataset file (EMD, DM)."""
    images = [s for s in signals if np.ndim(s.get("data")) >= 2]
    titles = [_signal_title(s) for s in signals]
    if isinstance(signal, int):
        if not -len(signals) <= signal < len(signals):
            raise InputError(f"{path}: signal index {signal} out of range; datasets: {titles}")
        return signals[signal]
    if isinstance(signal, str):
        for s in signals:
            if _signal_title(s).lower() == signal.lower():
                return s
        raise InputError(f"{path}: no dataset titled {signal!r}; datasets: {titles}")
    if len(signals) == 1:
        return signals[0]
    haadf = [s for s in images if "haadf" in _signal_title(s).lower()]
    if len(haadf) == 1:
        return haadf[0]
    if len(images) == 1:
        return images[0]
    raise InputError(
        f"{path}: {len(signals)} datasets {titles}; choose one with signal=<index or title>"
    )


def _get(d: dict, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


#: RosettaSciIO/HyperSpy ``Acquisition_instrument.TEM`` keys <-> image attributes (the names of
#: :meth:`nanodomains.stem.probe.ProbeParameters.to_attrs`; HyperSpy's ``convergence_angle`` is
#: the semi-angle in mrad)
_RSCIIO_TEM_KEYS = (
    ("beam_energy", "beam_energy_kev"),
    ("camera_length", "camera_length_mm"),
    ("magnification", "magnification"),
    ("convergence_angle", "convergence_semiangle_mrad"),
)
_RSCIIO_DETECTOR_KEYS = (("inner_angle", "detector_inner_mrad"), ("outer_angle", "detector_outer_mrad"))


def _metadata_attrs(md: dict) -> dict[str, Any]:
    """Instrument attributes present in a RosettaSciIO metadata tree."""
    tem = _get(md, "Acquisition_instrument", "TEM") or {}
    out: dict[str, Any] = {}
    for key, attr in _RSCIIO_TEM_KEYS:
        v = tem.get(key) if isinstance(tem, dict) else None
        if v is not None:
            try:
                out[attr] = float(v)
            except (TypeError, ValueError):
                pass
    det = _get(tem, "Detector", "STEM") if isinstance(tem, dict) else None
    if isinstance(det, dict):
        for key, attr in _RSCIIO_DETECTOR_KEYS:
            if det.get(key) is not None:
                out[attr] = float(det[key])
    if isinstance(tem, dict) and tem.get("microscope"):
        out["microscope"] = str(tem["microscope"])
    title = _get(md, "General", "title")
    if title:
        out["title"] = str(title)
    date = _get(md, "General", "date")
    if date:
        out["acquisition_date"] = str(date)
    return out


# ---- the same rules for HyperSpy signals (nanodomains.interop reuses them, no copy)


def normalise_unit(units: Any) -> str:
    """A unit string spelled as :data:`LENGTH_UNITS_NM`'s keys (NFKC, lower case, no spaces, ``_`` or ``.``)."""
    return _normalise_unit(units)


def unit_to_nm(units: Any) -> float | None:
    """nm per unit of a length unit (any spelling of :data:`LENGTH_UNITS_NM`), or None if not a length."""
    return _unit_to_nm(units)


#: relative disagreement between ``pixel_size_pm`` and the coordinates' step that is refused
PIXEL_SIZE_COORDS_RTOL = 1e-3


def check_pixel_size_coords(da: xr.DataArray) -> None:
    """CalibrationError when ``pixel_size_pm`` disagrees with the step of the y / x coordinates.

    xarray keeps the attribute through ``image[::2, ::2]`` (or a flip, a resampling) while
    the coordinates follow the pixels: an analysis or a file using the attribute would then
    carry a wrong calibration. Coordinates are in their ``units`` attribute (nm when absent).
    """
    px = da.attrs.get("pixel_size_pm")
    if px is None:
        return
    for dim in ("y", "x"):
        if dim not in da.coords or da.sizes[dim] < 2:
            continue
        f_nm = _unit_to_nm(da[dim].attrs.get("units") or "nm")
        if f_nm is None:
            continue
        v = np.asarray(da[dim].values, dtype=np.float64)
        step_pm = (v[-1] - v[0]) / (v.size - 1) * f_nm * 1e3
        if not abs(step_pm - float(px)) <= PIXEL_SIZE_COORDS_RTOL * abs(float(px)):
            raise CalibrationError(
                f"{da.name or 'image'!r}: pixel_size_pm = {float(px):g} but its {dim!r} coordinates step by "
                f"{step_pm:.6g} pm (sliced with a step such as [::2, ::2], flipped or resampled?); set "
                ".attrs['pixel_size_pm'] to the coordinates' step, or drop it")


def metadata_attrs(md: dict) -> dict[str, Any]:
    """Image attributes (beam energy, convergence and detector angles, ...) from a RosettaSciIO/HyperSpy
    metadata tree (``Acquisition_instrument.TEM``, ``General``); only what the tree holds."""
    return _metadata_attrs(md)


def tem_metadata(attrs: dict) -> dict[str, Any]:
    """The ``Acquisition_instrument.TEM`` tree of RosettaSciIO/HyperSpy for image attributes (inverse of
    :func:`metadata_attrs` for the probe and detector; empty when ``attrs`` hold none)."""
    tem: dict[str, Any] = {key: float(attrs[attr]) for key, attr in _RSCIIO_TEM_KEYS if attr in attrs}
    det = {key: float(attrs[attr]) for key, attr in _RSCIIO_DETECTOR_KEYS if attr in attrs}
    if det:
        tem["Detector"] = {"STEM": det}
    if attrs.get("microscope"):
        tem["microscope"] = str(attrs["microscope"])
    return tem


def axes_calibration(source: str, axes: list[dict]) -> tuple[float | None, tuple[float, float]]:
    """(pixel size pm or None, origin (y, x) nm) of the last two of RosettaSciIO-style axes (``units``,
    ``scale``, ``offset``, in array order): the file reader's rules (length units, square pixels)."""
    return _calibration_from_axes(source, axes, 2)  # type: ignore[arg-type]  (a name for the messages)


def netcdf_attrs(attrs: dict) -> dict:
    """Attributes netCDF can hold: numbers, strings, 1-D numeric arrays (the rest as text; None dropped)."""
    return _netcdf_attrs(attrs)


def _calibration_from_axes(path: Path, axes: list[dict], ndim: int) -> tuple[float | None, tuple[float, float]]:
    """(pixel size in pm or None, origin (y, x) in nm) from RosettaSciIO axes."""
    if len(axes) < 2:
        return None, (0.0, 0.0)
    ax_y, ax_x = list(axes)[-2], list(axes)[-1]  # RosettaSciIO lists axes in array order
    f_y = _unit_to_nm(ax_y.get("units"))
    f_x = _unit_to_nm(ax_x.get("units"))
    units = (ax_y.get("units"), ax_x.get("units"))
    if f_y is None or f_x is None:
        if any(u is not None and "1/" in str(u) for u in units):
            raise InputError(f"{path}: axes in {units}: a diffraction pattern/FFT, not a real-space image")
        return None, (0.0, 0.0)
    s_y = float(ax_y.get("scale", 1.0)) * f_y
    s_x = float(ax_x.get("scale", 1.0)) * f_x
    if not (math.isfinite(s_y) and math.isfinite(s_x)) or s_y <= 0 or s_x <= 0:
        raise CalibrationError(f"{path}: invalid pixel scale {s_y} x {s_x} nm in the file")
    if abs(s_y - s_x) > _SQUARE_PIXEL_RTOL * max(s_y, s_x):
        raise CalibrationError(
            f"{path}: non-square pixels ({s_y * 1e3:.4g} x {s_x * 1e3:.4g} pm); "
            "resample to square pixels first"
        )
    origin = (float(ax_y.get("offset", 0.0)) * f_y, float(ax_x.get("offset", 0.0)) * f_x)
    return 0.5 * (s_y + s_x) * 1e3, origin


def _read_any(path: Path, signal: int | str | None) -> tuple[np.ndarray, float | None, tuple[float, float], dict]:
    """(data, pixel size pm or None, origin nm, attrs) for any supported file."""
    ext = path.suffix.lower()
    if ext == ".npy":
        try:
            data = np.load(path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001
            raise FileFormatError(f"{path}: cannot read as .npy (truncated or corrupt?): {exc}") from exc
        return data, None, (0.0, 0.0), {}
    if ext == ".nc":
        try:
            with xr.open_dataarray(path, engine="h5netcdf") as da:
                da = da.load()
        except Exception as exc:  # noqa: BLE001
            raise FileFormatError(f"{path}: cannot read as a netCDF image: {exc}") from exc
        px = da.attrs.get("pixel_size_pm")
        origin = (float(da["y"][0]), float(da["x"][0])) if "y" in da.coords and "x" in da.coords else (0.0, 0.0)
        attrs = {k: v for k, v in da.attrs.items() if k not in ("pixel_size_pm", "pixel_size_source", "source_file")}
        return da.values, (float(px) if px is not None else None), origin, attrs
    module = _RSCIIO_BY_EXT.get(ext)
    if module is None:
        module = _rsciio_module_for(ext)
    if module is None:
        raise FileFormatError(
            f"{path}: unknown image format {ext!r}; expected one of "
            f"{sorted(set(_RSCIIO_BY_EXT) | {'.npy', '.nc'})} or another RosettaSciIO format"
        )
    sig = _pick_signal(path, _read_rsciio(path, module), signal)
    data = sig["data"]
    if hasattr(data, "compute"):
        data = data.compute()
    data = np.asarray(data)
    if data.dtype.names is not None:
        raise InputError(f"{path}: colour data (fields {data.dtype.names}); expected a single-channel image")
    px, origin = (None, (0.0, 0.0))
    if data.ndim >= 2:
        px, origin = _calibration_from_axes(path, sig.get("axes", []), data.ndim)
    attrs = _metadata_attrs(sig.get("metadata", {}) or {})
    if px is None and data.ndim >= 2 and len(sig.get("axes", [])) >= 2:
        ax = sig["axes"][-1]
        attrs["_axes_without_length_unit"] = f"scale {float(ax.get('scale', 1.0)):.6g} and unit {ax.get('units')!r}"
    if ext in (".tif", ".tiff"):
        attrs = {**_tiff_acquisition_attrs(path), **attrs}
        if (problem := _tiff_calibration_problem(path)) is not None:  # never a made-up scale
            px, attrs["invalid_calibration"] = None, problem
    elif ext == ".hspy":  # what save_image stored beside the HyperSpy metadata
        stored = _get(sig.get("original_metadata") or {}, "nanodomains") or {}
        skip = {"pixel_size_pm", "pixel_size_source", "source_file", "origin_nm"}
        attrs = {**{k: v for k, v in stored.items() if k not in skip}, **attrs}
    return data, px, origin, attrs


_TIFF_ATTRS_KEY = "nanodomains_attrs"


def _tiff_calibration_problem(path: Path) -> str | None:
    """What is wrong with a TIFF's pixel-size tags (zero, negative, NaN), or None.

    RosettaSciIO replaces an unusable DigitalMicrograph scale (tags 65009/65010) or a
    zero XResolution by 1 unit per pixel; such a file has an invalid calibration, not
    a calibration of 1 nm/px.
    """
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            tags = tif.pages[0].tags
            values = {name: tags[name].value for name in ("XResolution", "YResolution", "65009", "65010")
                      if name in tags}
    except Exception:  # noqa: BLE001 - unreadable tags: the reader reports the file itself
        return None
    for name, v in values.items():
        if isinstance(v, tuple) and len(v) == 2:  # a rational: pixels per unit
            ok = v[0] > 0 and v[1] > 0
        else:
            v = v[0] if isinstance(v, tuple) else v
            ok = isinstance(v, (int, float)) and math.isfinite(v) and v > 0
        if not ok:
            return f"pixel-size tag {name} = {v!r}"
    return None


def _tiff_acquisition_attrs(path: Path) -> dict:
    """Acquisition attributes that :func:`save_image` stored in the ImageJ metadata."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            meta = tif.imagej_metadata or {}
    except Exception:  # noqa: BLE001 - plain TIFFs without ImageJ metadata carry none
        return {}
    text = meta.get(_TIFF_ATTRS_KEY)
    if not text:
        return {}
    try:
        stored = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileFormatError(f"{path}: corrupt nanodomains attributes in the ImageJ metadata ({exc})") from exc
    skip = {"pixel_size_pm", "pixel_size_source", "source_file", "origin_nm"}
    return {k: v for k, v in stored.items() if k not in skip}


def _rsciio_module_for(ext: str) -> str | None:
    try:
        from rsciio import IO_PLUGINS
    except ImportError:  # pragma: no cover
        return None
    for plugin in IO_PLUGINS:
        exts = [f".{e.lower()}" for e in plugin.get("file_extensions", [])]
        if ext in exts:
            return plugin["api"]
    return None


def load_image(
    path: str | Path,
    pixel_size_pm: float | None = None,
    *,
    signal: int | str | None = None,
    stack: str = "average",
    register: bool = False,
    upsample_factor: int = 20,
) -> xr.DataArray:
    """Read an ADF-STEM image with its length calibration.

    Parameters
    ----------
    path : str or Path or hyperspy.signals.Signal2D
        Image file: any RosettaSciIO format (dm3, dm4, emd, ser, tif, hspy, ...),
        ``.npy`` or ``.nc`` (written by :func:`save_image`); or a HyperSpy signal,
        calibrated from its axes (:func:`nanodomains.interop.image_from_hyperspy`).
    pixel_size_pm : float, optional
        Pixel size in pm. Required when the file has no length calibration
        (``.npy``, plain TIFF); overrides the file's calibration when given.
    signal : int or str, optional
        Dataset index or title in multi-dataset files (Velox EMD, DM). By default
        the only image, or the one titled HAADF.
    stack : {"average", "keep"}
        For 3-D data (frames first): return the (optionally registered) frame
        average with dims (y, x), or the stack with dims (frame, y, x).
    register : bool
        Rigidly register the frames to the first one by phase correlation before
        averaging or returning them.
    upsample_factor : int
        Sub-pixel precision 1/upsample_factor px of the registration.

    Returns
    -------
    xarray.DataArray
        float64 intensities with nm coordinates and the attributes described in
        the module docstring.

    Raises
    ------
    FileFormatError
        Missing, unknown, truncated or corrupt file.
    CalibrationError
        No length calibration in the file and no ``pixel_size_pm``.
    InputError
        1-D, colour, complex, >3-D or NaN-containing data.
    """
    if stack not in ("average", "keep"):
        raise InputError(f"stack must be 'average' or 'keep', got {stack!r}")
    from nanodomains.interop import image_from_hyperspy, is_hyperspy_signal

    if is_hyperspy_signal(path):  # calibration and metadata from the signal's axes (nanodomains.interop)
        image = image_from_hyperspy(path, pixel_size_pm)
        if image.ndim == 2:
            return image
        attrs = dict(image.attrs)
        arr = _reduce_stack(image.values, stack, register, upsample_factor, attrs)
        return image_from_array(arr, attrs.pop("pixel_size_pm"), origin_nm=(float(image.y[0]), float(image.x[0])),
                                **attrs)
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    data, px_file, origin, attrs = _read_any(path, signal)
    arr = validate_image_array(data, str(path))
    px, source = _choose_pixel_size(path, pixel_size_pm, px_file, attrs)
    if arr.ndim == 3:
        arr = _reduce_stack(arr, stack, register, upsample_factor, attrs)
    return image_from_array(
        arr,
        px,
        origin_nm=origin,
        name=str(path),
        source_file=str(path),
        pixel_size_source=source,
        **attrs,
    )


def _units_found(attrs: dict) -> str:
    """What the file's axes say instead of a length unit (for the calibration error)."""
    found = attrs.pop("_axes_without_length_unit", None)
    return f"; its axes have {found}" if found else ""


def _choose_pixel_size(path: Path, pixel_size_pm: float | None, px_file: float | None,
                       attrs: dict) -> tuple[float, str]:
    """(pixel size pm, source): the argument overrides the file (recorded in ``attrs``)."""
    if pixel_size_pm is not None or px_file is not None:
        attrs.pop("_axes_without_length_unit", None)
    if pixel_size_pm is not None:
        px = require_positive("pixel_size_pm", pixel_size_pm)
        if px_file is not None:
            attrs["pixel_size_file_pm"] = px_file
        return px, "argument"
    if px_file is not None:
        return px_file, "file"
    if "invalid_calibration" in attrs:
        raise CalibrationError(f"{path}: invalid calibration in the file ({attrs['invalid_calibration']}); "
                               "give the pixel size explicitly (--pixel-size-pm)")
    raise CalibrationError(
        f"{path}: the file has no length calibration (no axis unit of length such as nm/A/pm"
        f"{_units_found(attrs)}); "
        "give the pixel size explicitly (pixel_size_pm=... / --pixel-size-pm)"
    )


def _reduce_stack(arr: np.ndarray, stack: str, register: bool, upsample_factor: int, attrs: dict) -> np.ndarray:
    """Register (optionally) and average or keep a (frame, y, x) stack; notes go to ``attrs``."""
    shifts = None
    if register:
        arr, shifts = register_stack(arr, upsample_factor=upsample_factor)
    if stack == "average":
        attrs["frames_averaged"] = int(arr.shape[0])
        arr = arr.mean(axis=0)
    if shifts is not None:
        attrs["registration_shifts_px"] = shifts.ravel().tolist()
    return arr


def register_stack(
    frames: np.ndarray,
    *,
    reference: int = 0,
    upsample_factor: int = 20,
) -> tuple[np.ndarray, np.ndarray]:
    """Rigidly register a stack of frames to one reference frame.

    Each frame is shifted (Fourier shift, periodic) by the sub-pixel translation
    that maximises its phase correlation with the reference (reference [2] of the
    module docstring).

    Parameters
    ----------
    frames : ndarray, shape (n, ny, nx)
        Image stack, frames first.
    reference : int
        Index of the reference frame.
    upsample_factor : int
        Registration precision is 1/upsample_factor px.

    Returns
    -------
    aligned : ndarray, shape (n, ny, nx)
        Registered frames (float64).
    shifts_px : ndarray, shape (n, 2)
        (dy, dx) shift applied to each frame, in px.
    """
    from scipy import fft as sfft
    from scipy.ndimage import fourier_shift
    from skimage.registration import phase_cross_correlation

    arr = validate_image_array(frames, "frames")
    if arr.ndim != 3:
        raise InputError(f"frames must be 3-D (frame, y, x), got shape {arr.shape}")
    n = arr.shape[0]
    if not 0 <= reference < n:
        raise InputError(f"reference frame {reference} out of range 0..{n - 1}")
    ref_f = sfft.fft2(arr[reference], workers=-1)
    out = np.empty_like(arr)
    shifts = np.zeros((n, 2))
    for i in range(n):  # one FFT pair per frame: a loop over frames, not pixels
        mov_f = sfft.fft2(arr[i], workers=-1)
        shift, _, _ = phase_cross_correlation(ref_f, mov_f, upsample_factor=upsample_factor, space="fourier")
        shifts[i] = shift
        out[i] = sfft.ifft2(fourier_shift(mov_f, shift), workers=-1).real
    return out, shifts


# --------------------------------------------------------------------------- writing


def _netcdf_attrs(attrs: dict) -> dict:
    """Attributes netCDF can hold: numbers, strings, 1-D numeric lists."""
    out = {}
    for k, v in attrs.items():
        if v is None:
            continue
        if isinstance(v, bool | np.bool_):
            out[k] = int(v)
        elif isinstance(v, str | int | float | np.integer | np.floating):
            out[k] = v
        elif isinstance(v, list | tuple | np.ndarray):
            a = np.asarray(v)
            out[k] = a.ravel() if a.dtype.kind in "biuf" else str(list(v))
        else:
            out[k] = str(v)
    return out


def _image_calibration(da: xr.DataArray) -> tuple[np.ndarray, float, tuple[float, float]]:
    if not isinstance(da, xr.DataArray):
        raise InputError(f"save_image needs an xarray.DataArray from load_image/image_from_array, got {type(da).__name__}")
    if tuple(da.dims[-2:]) != ("y", "x"):
        raise InputError(f"image dims must end with ('y', 'x'), got {da.dims}")
    if "pixel_size_pm" not in da.attrs:
        raise CalibrationError("image has no pixel_size_pm attribute; cannot save a calibrated file")
    px = require_positive("pixel_size_pm", da.attrs["pixel_size_pm"])
    check_pixel_size_coords(da)
    origin = (float(da["y"][0]), float(da["x"][0])) if "y" in da.coords else (0.0, 0.0)
    return np.asarray(da.values), px, origin


def save_image(da: xr.DataArray, path: str | Path) -> Path:
    """Write a calibrated image (or stack) so that :func:`load_image` reads it back.

    Parameters
    ----------
    da : xarray.DataArray
        Image with dims (..., "y", "x") and a ``pixel_size_pm`` attribute.
    path : str or Path
        Output file; the format follows the extension:

        ``.nc``
            netCDF4 via h5netcdf, full precision, all attributes.
        ``.tif`` / ``.tiff``
            ImageJ hyperstack, float32, calibrated (resolution in px per nm and
            ``unit=nm`` for ImageJ; DigitalMicrograph scale/unit tags that
            RosettaSciIO reads).
        ``.hspy``
            HyperSpy HDF5 via RosettaSciIO, with beam energy in the metadata.

    Returns
    -------
    Path
        The written path.
    """
    path = Path(path)
    data, px_pm, origin = _image_calibration(da)
    ext = path.suffix.lower()
    writers = {".nc": _write_image_netcdf, ".tif": _write_image_tiff, ".tiff": _write_image_tiff,
               ".hspy": _write_image_hspy}
    if ext not in writers:
        raise InputError(f"{path}: cannot save images as {ext!r}; use .nc, .tif or .hspy")
    try:
        with atomic_path(path) as tmp:
            writers[ext](tmp, da, data, px_pm * 1e-3, origin)
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot write: {exc}") from exc
    return path


def _write_image_netcdf(path: Path, da: xr.DataArray, data: np.ndarray, px_nm: float,
                        origin: tuple[float, float]) -> None:
    """netCDF4 via h5netcdf, full precision, all attributes netCDF can hold."""
    out = da.copy()
    out.attrs = _netcdf_attrs(da.attrs)
    out.to_netcdf(path, engine="h5netcdf")


def tiff_calibration(px_nm: float, origin_nm: tuple[float, float]) -> dict[str, Any]:
    """``tifffile.imwrite`` keywords that calibrate an ImageJ TIFF for ImageJ/Fiji and HyperSpy.

    ImageJ reads the resolution (px per nm), ``unit`` and the origin in pixels
    (``xorigin``/``yorigin``: calibrated x = (pixel - xorigin) * pixel width) from its
    description; RosettaSciIO (so HyperSpy) takes an ImageJ unit only when it is "micron",
    so unit, scale and origin also go in the DigitalMicrograph tags 65003-65010 it reads.
    Merge ``metadata`` with the caller's own (axes, labels).
    """
    y0, x0 = float(origin_nm[0]), float(origin_nm[1])
    return {
        "imagej": True,
        "resolution": (1.0 / px_nm, 1.0 / px_nm),
        "metadata": {"unit": "nm", "xorigin": -x0 / px_nm, "yorigin": -y0 / px_nm},
        "extratags": [(65003, "s", 3, "nm", False), (65004, "s", 3, "nm", False),
                      (65006, "d", 1, x0, False), (65007, "d", 1, y0, False),
                      (65009, "d", 1, px_nm, False), (65010, "d", 1, px_nm, False)],
    }


def _write_image_tiff(path: Path, da: xr.DataArray, data: np.ndarray, px_nm: float,
                      origin: tuple[float, float]) -> None:
    """ImageJ hyperstack, float32, with ImageJ and DigitalMicrograph calibration tags."""
    import tifffile

    kw = tiff_calibration(px_nm, origin)
    kw["metadata"].update({"axes": "ZYX" if data.ndim == 3 else "YX",
                           # acquisition attributes (probe, detector, dose) survive a round trip
                           _TIFF_ATTRS_KEY: json.dumps(to_jsonable(_netcdf_attrs(da.attrs)))})
    tifffile.imwrite(path, data.astype(np.float32), **kw)


def _hspy_axes(data: np.ndarray, px_nm: float, origin: tuple[float, float]) -> list[dict]:
    names = ["frame", "y", "x"][-data.ndim:]
    axes = []
    for i, nm in enumerate(names):
        if nm == "frame":
            axes.append({"name": "frame", "size": data.shape[i], "scale": 1.0, "offset": 0.0, "units": "",
                         "navigate": True})
        else:
            axes.append({"name": nm, "size": data.shape[i], "scale": px_nm,
                         "offset": origin[0] if nm == "y" else origin[1], "units": "nm", "navigate": False})
    return axes


def _write_image_hspy(path: Path, da: xr.DataArray, data: np.ndarray, px_nm: float,
                      origin: tuple[float, float]) -> None:
    """HyperSpy HDF5 via RosettaSciIO, with beam energy etc. in the TEM metadata."""
    from rsciio.hspy import file_writer

    from nanodomains import __version__

    tem = tem_metadata(da.attrs)
    md = {
        "General": {"title": str(da.attrs.get("title", "nanodomains image"))},
        "Signal": {"signal_type": "", "record_by": "image"},
    }
    if tem:
        md["Acquisition_instrument"] = {"TEM": tem}
    signal = {
        "data": data,
        "axes": _hspy_axes(data, px_nm, origin),
        "metadata": md,
        "original_metadata": {"nanodomains": _netcdf_attrs(da.attrs)},
        "tmp_parameters": {},
        "attributes": {"_lazy": False},
        "learning_results": {},
        "models": {},
        "package_info": {"name": "nanodomains", "version": __version__},
    }
    file_writer(str(path), signal, show_progressbar=False)


def save_netcdf(ds: xr.Dataset | xr.DataArray, path: str | Path) -> Path:
    """Write a Dataset/DataArray to netCDF (h5netcdf) atomically (:func:`nanodomains.files.atomic_path`)."""
    p = Path(path)
    try:
        with atomic_path(p) as tmp:
            ds.to_netcdf(tmp, engine="h5netcdf")
    except OSError as exc:
        raise FileFormatError(f"{p}: cannot write: {exc}") from exc
    return p


def load_netcdf(path: str | Path, what: str) -> xr.Dataset:
    """Read a netCDF Dataset; a missing or unreadable file raises FileFormatError naming ``what``."""
    p = Path(path)
    if not p.is_file():
        raise FileFormatError(f"{p}: {what} not found")
    try:
        return xr.load_dataset(p, engine="h5netcdf")
    except Exception as exc:  # h5py/h5netcdf raise many types for corrupt files
        raise FileFormatError(f"{p}: not a readable netCDF file ({exc})") from exc


def load_eds(path: str | Path) -> xr.Dataset:
    """Read EDS line-count maps (netCDF, one variable per line, dims (y, x)).

    The format :func:`nanodomains.stem.eds.write_eds` writes: a ``pixel_size_pm``
    attribute and at least one map variable (each line's ``production_barn``
    attribute is what :func:`nanodomains.stem.linescan.line_scan` quantifies with).

    Raises
    ------
    FileFormatError
        Missing or unreadable file, no calibration or no maps.
    """
    p = Path(path)
    ds = load_netcdf(p, "EDS map file")
    if "pixel_size_pm" not in ds.attrs or not ds.data_vars:
        raise FileFormatError(f"{p}: no pixel_size_pm attribute or no line maps (not an EDS map file)")
    return ds


# --------------------------------------------------------------------------- arrays in JSON


def encode_array(a: np.ndarray) -> dict:
    """Compact JSON form of an integer array: zlib-compressed, base64 text with dtype and shape.

    Examples
    --------
    >>> d = encode_array(np.arange(4, dtype=np.int16))
    >>> d["shape"], decode_array(d).tolist()
    ([4], [0, 1, 2, 3])
    """
    a = np.ascontiguousarray(a)
    return {"encoding": "zlib+base64", "dtype": a.dtype.str, "shape": list(a.shape),
            "data": base64.b64encode(zlib.compress(a.tobytes(), 6)).decode("ascii")}


def decode_array(d: dict) -> np.ndarray:
    """Inverse of :func:`encode_array` (:class:`FileFormatError` on a corrupt entry)."""
    try:
        if d.get("encoding") != "zlib+base64":
            raise ValueError(f"unknown encoding {d.get('encoding')!r}")
        raw = zlib.decompress(base64.b64decode(d["data"]))
        return np.frombuffer(raw, dtype=np.dtype(d["dtype"])).reshape(d["shape"]).copy()
    except (KeyError, ValueError, TypeError, zlib.error) as exc:
        raise FileFormatError(f"truth sidecar: cannot decode array ({exc})") from exc

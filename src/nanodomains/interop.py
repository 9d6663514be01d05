"""HyperSpy signals in and out, and the files users open directly.

Microscopists work in HyperSpy [1]_, spectroscopists in Jupyter and ImageJ [2]_; this
module converts between their objects and nanodomains' data model, and writes the
files those programs open with their calibration.

The data model (``docs/architecture.md``)
    Images: :class:`xarray.DataArray` dims ``("y", "x")`` (``("frame", "y", "x")``
    for a stack), coordinates in nm, ``pixel_size_pm`` and the probe and detector
    attributes of :mod:`nanodomains.stem.io`. PL movies: dims ``("time",
    "wavelength")``, time in s, wavelength in nm (:mod:`nanodomains.spectroscopy.io`).
    Maps: variables on the image grid (GPA strain, rotation, registry, domain labels).
    Tables: :class:`pandas.DataFrame`.

HyperSpy -> nanodomains (:func:`from_hyperspy`)
    A ``Signal2D`` (or ``LazySignal2D``) becomes an image: its two signal axes give
    the pixel size and origin through the length units :mod:`nanodomains.stem.io`
    accepts for files (:func:`~nanodomains.stem.io.unit_to_nm`), its
    ``Acquisition_instrument.TEM`` metadata the beam energy, convergence semi-angle,
    detector angles, camera length, magnification and microscope through the same
    mapping the file reader uses (:func:`~nanodomains.stem.io.metadata_attrs`). A
    ``Signal1D`` with at most one navigation axis becomes a PL movie: the signal axis
    in a length unit is the wavelength, in eV or meV the photon energy (converted by
    lambda = hc / E, :data:`nanodomains.materials.HC_EV_NM`, and reordered so the
    wavelength increases); the navigation axis in a time unit (s, ms, us, ns, min, h)
    gives the frame times, an axis without a unit the frame index (recorded as such:
    the movie is then untimed, as a CSV without a time column). Any other signal
    becomes a DataArray with one dimension per axis, named after it, with coordinates
    in the axis's own units. Lazy signals are computed.

    An axis whose calibration is needed and absent (HyperSpy's default scale 1 and
    unit ``<undefined>``, or any unit that is not a length for an image, or neither a
    length nor an energy for a spectrum) raises
    :class:`~nanodomains.errors.CalibrationError` naming the axis; a pixel size is
    never invented. ``pixel_size_pm=`` supplies one (it overrides the signal's, which
    is kept as ``pixel_size_signal_pm``), as for files.

nanodomains -> HyperSpy (:func:`to_hyperspy`)
    A DataArray with ``y`` and ``x`` dims becomes a ``Signal2D`` (signal axes y, x),
    any other one a ``Signal1D`` whose signal axis is ``wavelength`` when there is one,
    else the last dimension; a Dataset (or an analysis result with ``maps_dataset()``
    or ``to_dataset()``: :class:`~nanodomains.stem.analyze.AnalysisResult`, the GPA
    result) a dict of signals, one per map. Every axis keeps its name, its unit (the
    coordinate's ``units`` attribute) and its calibration: a uniform coordinate as
    scale and offset, a non-uniform one (a spectrometer's polynomial wavelength axis,
    an energy axis) as a HyperSpy non-uniform ``DataAxis``. Image attributes go to
    ``Acquisition_instrument.TEM`` (:func:`~nanodomains.stem.io.tem_metadata`) and,
    all of them, to ``original_metadata.nanodomains`` so that :func:`from_hyperspy`
    restores them.

Files (:func:`export`, CLI ``nanodomains export INPUT OUTPUT``)
    ``.tif`` ImageJ TIFF with the pixel size in the resolution tags and ``unit=nm``
    (ImageJ's Image > Properties, Fiji, tifffile, RosettaSciIO); a Dataset of maps is
    an ImageJ hyperstack with one labelled channel per map. ``.hspy`` HyperSpy HDF5
    (``hyperspy.api.load``). ``.nc`` netCDF-4 through h5netcdf (``xarray.open_dataset``,
    ncview, Panoply, MATLAB ``ncread``). ``.parquet`` tables (``pandas.read_parquet``,
    pyarrow, polars, R arrow, DuckDB); a record (``domains.json``, ``emitters.json``)
    is written as the table of its items. Every file is written atomically
    (:func:`nanodomains.files.atomic_path`).

HyperSpy is imported inside the functions that need it, so ``import nanodomains``
stays light; it is the optional extra ``nanodomains[hyperspy]``.

References
----------
.. [1] F. de la Pena et al., HyperSpy, https://hyperspy.org (signals, axes managers,
   ``UniformDataAxis`` / ``DataAxis``; version 2).
.. [2] C. A. Schneider, W. S. Rasband, K. W. Eliceiri, "NIH Image to ImageJ: 25 years
   of image analysis", Nat. Methods 9, 671 (2012); the calibration in the TIFF
   description (``unit=``) and the XResolution / YResolution tags.

Examples
--------
>>> import numpy as np
>>> from nanodomains.stem.io import image_from_array
>>> image = image_from_array(np.ones((16, 16)), 15.0, beam_energy_kev=300.0)
>>> signal = to_hyperspy(image)
>>> signal.axes_manager["x"].scale, signal.axes_manager["x"].units
(0.015, 'nm')
>>> signal.metadata.Acquisition_instrument.TEM.beam_energy
300.0
>>> from_hyperspy(signal).attrs["pixel_size_pm"]
15.0
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from nanodomains.errors import CalibrationError, FileFormatError, InputError, require_positive
from nanodomains.files import atomic_path, to_jsonable
from nanodomains.materials import HC_EV_NM
from nanodomains.stem import io as stem_io

__all__ = [
    "EXPORT_SUFFIXES",
    "export",
    "from_hyperspy",
    "image_from_hyperspy",
    "is_hyperspy_signal",
    "movie_parts_from_hyperspy",
    "read_output",
    "records_table",
    "to_hyperspy",
]

#: suffix -> what :func:`export` writes there and which programs open it
EXPORT_SUFFIXES = {
    ".tif": "ImageJ TIFF, calibrated (ImageJ/Fiji, tifffile, RosettaSciIO, HyperSpy)",
    ".tiff": "ImageJ TIFF, calibrated (ImageJ/Fiji, tifffile, RosettaSciIO, HyperSpy)",
    ".hspy": "HyperSpy HDF5 (hyperspy.api.load)",
    ".nc": "netCDF-4 via h5netcdf (xarray.open_dataset, ncview, Panoply)",
    ".parquet": "Parquet table (pandas.read_parquet, pyarrow, polars, DuckDB)",
}

#: time units of a movie's navigation axis, in s (keys spelled as :func:`~nanodomains.stem.io.normalise_unit`)
_TIME_UNITS_S = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "us": 1e-6, "μs": 1e-6,
                 "ns": 1e-9, "min": 60.0, "h": 3600.0}
#: energy units of a spectrum's signal axis, in eV
_ENERGY_UNITS_EV = {"ev": 1.0, "mev": 1e-3}
#: attributes that describe one conversion, not the data: never carried from a stored copy
_CONVERSION_ATTRS = ("pixel_size_pm", "pixel_size_source", "pixel_size_signal_pm", "source_file", "origin_nm")
#: relative tolerance of "uniform" for a coordinate written as scale and offset
_UNIFORM_RTOL = 1e-6
#: largest relative disagreement of ``pixel_size_pm`` with the step of the y / x coordinates


# --------------------------------------------------------------------------- HyperSpy -> nanodomains


def is_hyperspy_signal(obj: Any) -> bool:
    """True for a HyperSpy signal (``BaseSignal`` or a subclass: exspy, atomap, lazy ones).

    Decided from the class hierarchy, so HyperSpy is not imported to answer.

    Examples
    --------
    >>> is_hyperspy_signal(np.zeros((4, 4)))
    False
    """
    return hasattr(obj, "axes_manager") and any(
        c.__module__.split(".")[0] == "hyperspy" for c in type(obj).__mro__)


def _defined(value: Any) -> str | None:
    """A HyperSpy name or unit as text, None when undefined (traits' ``<undefined>``) or empty."""
    if value is None:
        return None
    text = str(value).strip()
    return None if text in ("", "<undefined>", "Undefined") else text


def _signal_name(signal: Any) -> str:
    """How errors name a signal: its class and title (and file, when it was loaded from one)."""
    title = _defined(getattr(signal.metadata.General, "title", None)) if signal.metadata.has_item("General") else None
    where = _source_file(signal)
    return f"{type(signal).__name__}" + (f" {title!r}" if title else "") + (f" from {where}" if where else "")


def _source_file(signal: Any) -> str | None:
    """The file a signal was loaded from (HyperSpy's ``tmp_parameters``), if known."""
    tp = signal.tmp_parameters
    if not (tp.has_item("filename") and tp.has_item("folder")):
        return None
    return str(Path(str(tp.folder)) / f"{tp.filename}{tp.extension if tp.has_item('extension') else ''}")


def _axes_in_array_order(signal: Any) -> list[Any]:
    am = signal.axes_manager
    return sorted(list(am.navigation_axes) + list(am.signal_axes), key=lambda a: a.index_in_array)


def _axis_label(ax: Any, role: str | None = None) -> str:
    """``'x' (array axis 1, scale 1, unit <undefined>)`` for error messages; an unnamed axis by its role."""
    name = _defined(ax.name)
    label = repr(name) if name else (f"{role!r} (unnamed)" if role else "(unnamed)")
    scale = f"scale {ax.scale:g}" if ax.is_uniform else "non-uniform"
    return f"{label} (array axis {ax.index_in_array}, {scale}, unit {_defined(ax.units) or '<undefined>'})"


def _data(signal: Any) -> np.ndarray:
    """The signal's data as numpy (a lazy signal is computed); InputError for an empty signal."""
    data = signal.data
    if 0 in tuple(data.shape):
        raise InputError(f"{_signal_name(signal)}: empty signal (data shape {tuple(data.shape)})")
    if hasattr(data, "compute"):
        data = data.compute()
    return np.asarray(data)


def _stored_attrs(signal: Any) -> dict[str, Any]:
    """Attributes :func:`to_hyperspy` (or :func:`nanodomains.stem.io.save_image`) kept in
    ``original_metadata.nanodomains``, without those of one conversion (pixel size, source)."""
    om = signal.original_metadata
    if not om.has_item("nanodomains"):
        return {}
    stored = om.nanodomains.as_dictionary()
    out = {}
    for k, v in stored.items():
        if k in _CONVERSION_ATTRS:
            continue
        out[k] = v.tolist() if isinstance(v, np.ndarray) else v
    return out


def _image_pixel_size(signal: Any, name: str) -> tuple[float, tuple[float, float]]:
    """(pixel size pm, origin (y, x) nm) from a Signal2D's signal axes; CalibrationError naming the axis."""
    natural = list(signal.axes_manager.signal_axes)  # HyperSpy's order: x first
    sig_axes = sorted(natural, key=lambda a: a.index_in_array)  # array order: y, x
    for ax, role in zip(sig_axes, ("y", "x")):
        if not ax.is_uniform:
            raise CalibrationError(f"{name}: signal axis {_axis_label(ax, role)} is non-uniform; an image needs "
                                   "square pixels of one size")
        if stem_io.unit_to_nm(_defined(ax.units)) is None:
            units = _defined(ax.units)
            what = "a reciprocal (diffraction/FFT) unit" if units and "1/" in units else "no length calibration"
            k = natural.index(ax)
            raise CalibrationError(
                f"{name}: signal axis {_axis_label(ax, role)} has {what}; set it in HyperSpy "
                f"(signal.axes_manager.signal_axes[{k}].units = 'nm' and .scale) or give pixel_size_pm=...; "
                "a pixel size is never guessed")
    axes = [{"units": _defined(a.units), "scale": a.scale, "offset": a.offset} for a in sig_axes]
    px, origin = stem_io.axes_calibration(name, axes)
    return px, origin


def image_from_hyperspy(signal: Any, pixel_size_pm: float | None = None) -> xr.DataArray:
    """A calibrated nanodomains image from a HyperSpy ``Signal2D`` (or ``LazySignal2D``).

    Parameters
    ----------
    signal : hyperspy.signals.Signal2D
        Two signal axes (y, x) in a length unit; no navigation axis (an image) or one
        (a stack, frames first).
    pixel_size_pm : float, optional
        Overrides the signal's calibration (kept as ``pixel_size_signal_pm``); needed
        when its axes carry none.

    Returns
    -------
    xarray.DataArray
        dims ("y", "x") or ("frame", "y", "x"), coordinates in nm, the attributes of
        :mod:`nanodomains.stem.io` with ``pixel_size_source`` "signal" or "argument".

    Raises
    ------
    CalibrationError
        A signal axis without a length unit (named) and no ``pixel_size_pm``, a
        non-uniform axis, or non-square pixels.
    InputError
        Not a HyperSpy signal, not two signal axes, more than one navigation axis,
        colour, complex or NaN data.
    """
    if not is_hyperspy_signal(signal):
        raise InputError(f"expected a HyperSpy signal, got {type(signal).__name__}")
    name = _signal_name(signal)
    am = signal.axes_manager
    if am.signal_dimension != 2:
        raise InputError(f"{name}: {am.signal_dimension} signal axis/axes; an image needs a Signal2D with two "
                         "(a spectrum or movie goes to nanodomains.spectroscopy; signal.as_signal2D(...) "
                         "turns other axes into image axes)")
    if am.navigation_dimension > 1:
        raise InputError(f"{name}: {am.navigation_dimension} navigation axes (shape {tuple(signal.data.shape)}); "
                         "expected an image or a stack with one frame axis (choose frames with signal.inav[...])")
    attrs = {**_stored_attrs(signal), **stem_io.metadata_attrs(signal.metadata.as_dictionary())}
    origin = (0.0, 0.0)
    if pixel_size_pm is None:
        px, origin = _image_pixel_size(signal, name)
        source = "signal"
    else:
        px, source = require_positive("pixel_size_pm", pixel_size_pm), "argument"
        try:
            attrs["pixel_size_signal_pm"], origin = _image_pixel_size(signal, name)
        except CalibrationError:
            pass  # the signal has no calibration of its own: the argument's is the only one
    return stem_io.image_from_array(_data(signal), px, origin_nm=origin, name=name,
                                    source_file=_source_file(signal), pixel_size_source=source, **attrs)


def _mega_not_milli(units: str, name: str, ax: Any, what: str, role: str) -> None:
    """Units are matched without case, except where case carries the meaning: "MeV" and "Ms"
    (capital M, then lower case) are mega, not milli; refused rather than read 1e9 x off.
    All capitals ("MEV", "MS", as old instrument files write milli) stay milli."""
    raw = str(units).strip()
    if raw[:1] == "M" and raw[1:2].islower() and stem_io.normalise_unit(raw) in ("mev", "ms"):
        raise CalibrationError(
            f"{name}: {what} {_axis_label(ax, role)} is in {raw!r}, which is mega-, not milli-: "
            f"write {'meV' if raw[1:2] == 'e' else 'ms'} if milli is meant")


def _spectral_axis_nm(ax: Any, name: str) -> tuple[np.ndarray, str]:
    """(wavelength nm per pixel, how it was obtained) from a spectrum's signal axis."""
    units = _defined(ax.units)
    values = np.asarray(ax.axis, dtype=np.float64)
    f_nm = stem_io.unit_to_nm(units)
    if f_nm is not None:
        return values * f_nm, f"HyperSpy signal axis {_defined(ax.name) or '<unnamed>'!r} ({units})"
    f_ev = _ENERGY_UNITS_EV.get(stem_io.normalise_unit(units)) if units else None
    if f_ev is not None:
        _mega_not_milli(units, name, ax, "signal axis", "energy")
    if f_ev is None:
        raise CalibrationError(
            f"{name}: signal axis {_axis_label(ax, 'wavelength')} is neither a wavelength (nm, A, um, ...) nor a photon energy "
            "(eV, meV); set its units and calibration in HyperSpy (a Raman shift in cm-1 needs the laser "
            "wavelength to become one)")
    energy = values * f_ev
    if np.any(~np.isfinite(energy)) or np.any(energy <= 0):
        raise CalibrationError(f"{name}: signal axis {_axis_label(ax, 'energy')} has energies <= 0 or non-finite: "
                               "not a photon-energy calibration")
    return HC_EV_NM / energy, f"HyperSpy signal axis {_defined(ax.name) or '<unnamed>'!r} ({units}), lambda = hc/E"


def _time_axis_s(ax: Any, name: str) -> tuple[np.ndarray | None, str]:
    """(frame times in s or None, how they were obtained) from a movie's navigation axis."""
    units = _defined(ax.units)
    if units is None or stem_io.normalise_unit(units) in ("frame", "frames", "index"):  # an untimed movie
        return None, f"frame index (HyperSpy navigation axis {_axis_label(ax, 'time')} has no time unit)"
    f_s = _TIME_UNITS_S.get(stem_io.normalise_unit(units))
    if f_s is not None:
        _mega_not_milli(units, name, ax, "navigation axis", "time")
    if f_s is None:
        raise InputError(f"{name}: navigation axis {_axis_label(ax, 'time')} is not a time axis (unit {units}); a PL "
                         "movie is time x wavelength (a line scan or spectrum image is not a movie)")
    return np.asarray(ax.axis, dtype=np.float64) * f_s, f"HyperSpy navigation axis {_defined(ax.name) or '<unnamed>'!r} ({units})"


def movie_parts_from_hyperspy(signal: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict]:
    """The arrays of a PL movie from a HyperSpy ``Signal1D`` (one frame per navigation index).

    :func:`nanodomains.spectroscopy.io.load_movie` builds and validates the movie from
    them (``movie_from_arrays``, with its ``bad_frames`` rule for NaN frames).

    Parameters
    ----------
    signal : hyperspy.signals.Signal1D
        Signal axis: wavelength (a length unit) or photon energy (eV, meV); at most
        one navigation axis: time (s, ms, us, ns, min, h) or no unit (frame index).

    Returns
    -------
    counts : ndarray, shape (n_frames, n_pixels)
        Wavelength increasing (energy axes are reversed).
    wavelength_nm : ndarray, shape (n_pixels,)
    time_s : ndarray or None
        None when the navigation axis has no time unit (or there is none).
    attrs : dict
        ``format``, ``source``, ``time_source``, ``wavelength_source``, ``units`` and
        what :func:`to_hyperspy` stored.

    Raises
    ------
    CalibrationError
        The signal axis is neither a wavelength nor an energy (named).
    InputError
        Not a Signal1D, or more than one navigation axis, or a navigation axis in a
        unit that is not time.
    """
    if not is_hyperspy_signal(signal):
        raise InputError(f"expected a HyperSpy signal, got {type(signal).__name__}")
    name = _signal_name(signal)
    am = signal.axes_manager
    if am.signal_dimension != 1:
        raise InputError(f"{name}: {am.signal_dimension} signal axes; a PL movie needs a Signal1D (spectra) "
                         "with one signal axis")
    if am.navigation_dimension > 1:
        raise InputError(f"{name}: {am.navigation_dimension} navigation axes (shape {tuple(signal.data.shape)}); "
                         "a PL movie is 2-D (time x wavelength): a spectrum image needs one position chosen "
                         "(signal.inav[...]) or summed first")
    wl, wl_source = _spectral_axis_nm(am.signal_axes[0], name)
    time_s, t_source = (None, "frame index (a single spectrum)")
    if am.navigation_dimension == 1:
        time_s, t_source = _time_axis_s(am.navigation_axes[0], name)
    data = _data(signal)
    if not (np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)):
        raise InputError(f"{name}: data of dtype {data.dtype}; a PL movie holds real-valued counts")
    counts = data.reshape(-1, wl.size).astype(np.float64, copy=False)
    if wl.size > 1 and wl[-1] < wl[0]:  # energy axes: reversed so the wavelength increases
        wl, counts = wl[::-1], counts[:, ::-1]
    attrs = _stored_attrs(signal)
    attrs.update({"format": f"HyperSpy {type(signal).__name__}",
                  "source": _source_file(signal) or attrs.get("source") or name,
                  "wavelength_source": wl_source, "time_source": t_source})
    quantity = _defined(signal.metadata.get_item("Signal.quantity")) or ""
    if "(" in quantity and quantity.endswith(")"):  # HyperSpy's "Intensity (counts)"
        attrs.setdefault("units", quantity[quantity.rindex("(") + 1:-1])
    # the axis decides, not a stored copy: an untimed movie calibrated in HyperSpy is timed (s)
    if time_s is None:
        attrs.pop("time_units", None)
    else:
        attrs["time_units"] = "s"
    return np.ascontiguousarray(counts), np.ascontiguousarray(wl), time_s, attrs


def _array_from_hyperspy(signal: Any) -> xr.DataArray:
    """Any signal as a DataArray: one dim per axis (its name), coordinates in the axis's own units."""
    dims, coords, seen = [], {}, set()
    for i, ax in enumerate(_axes_in_array_order(signal)):
        dim = _defined(ax.name) or f"axis{i}"
        while dim in seen:
            dim += "_"
        seen.add(dim)
        dims.append(dim)
        units = _defined(ax.units)
        coords[dim] = (dim, np.asarray(ax.axis), {"units": units} if units else {})
    attrs = _stored_attrs(signal)
    title = _defined(signal.metadata.get_item("General.title"))
    if title:
        attrs["title"] = title
    if _source_file(signal):
        attrs["source_file"] = _source_file(signal)
    return xr.DataArray(_data(signal), dims=dims, coords=coords, attrs=attrs,
                        name=_defined(signal.metadata.get_item("Signal.quantity")) or "data")


def from_hyperspy(signal: Any, *, kind: str = "auto", pixel_size_pm: float | None = None) -> xr.DataArray:
    """nanodomains' data model for a HyperSpy signal (module docstring).

    Parameters
    ----------
    signal : hyperspy.signals.BaseSignal
        ``Signal2D``, ``Signal1D`` or another signal, lazy or not.
    kind : {"auto", "image", "movie", "array"}
        ``"auto"``: an image for two signal axes, a movie for one signal axis and at
        most one navigation axis, else a plain array.
    pixel_size_pm : float, optional
        For images: overrides the signal's calibration (needed when it has none).

    Returns
    -------
    xarray.DataArray
        An image as :func:`image_from_hyperspy`; a movie with dims ("time",
        "wavelength") as :func:`nanodomains.spectroscopy.io.load_movie` reads it (NaN
        frames are judged there); else one dim per axis.

    Raises
    ------
    CalibrationError
        An axis whose calibration the kind needs is uncalibrated (the error names it).
    InputError
        A kind the signal's dimensions do not fit; NaN, colour or complex image data.

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> s = hs.signals.Signal2D(np.ones((16, 16)))
    >>> for ax in s.axes_manager.signal_axes:
    ...     ax.units, ax.scale = "nm", 0.02
    >>> from_hyperspy(s).attrs["pixel_size_pm"]
    20.0
    """
    if not is_hyperspy_signal(signal):
        raise InputError(f"expected a HyperSpy signal, got {type(signal).__name__}")
    if kind not in ("auto", "image", "movie", "array"):
        raise InputError(f"kind must be 'auto', 'image', 'movie' or 'array', got {kind!r}")
    am = signal.axes_manager
    if kind == "auto":
        kind = ("image" if am.signal_dimension == 2 else
                "movie" if am.signal_dimension == 1 and am.navigation_dimension <= 1 else "array")
    if kind == "image":
        return image_from_hyperspy(signal, pixel_size_pm)
    if pixel_size_pm is not None:
        raise InputError("pixel_size_pm applies to images (Signal2D) only")
    if kind == "movie":
        counts, wl, time_s, attrs = movie_parts_from_hyperspy(signal)
        t = np.arange(counts.shape[0], dtype=np.float64) if time_s is None else time_s
        attrs.setdefault("time_units", "s" if time_s is not None else "frame")
        attrs.setdefault("wavelength_units", "nm")
        return xr.DataArray(counts, dims=("time", "wavelength"),
                            coords={"time": ("time", t, {"units": attrs["time_units"]}),
                                    "wavelength": ("wavelength", wl, {"units": "nm"})},
                            name="counts", attrs=attrs)
    return _array_from_hyperspy(signal)


# --------------------------------------------------------------------------- nanodomains -> HyperSpy


def _axis_dict(name: str, values: np.ndarray | None, size: int, units: str | None, navigate: bool) -> dict:
    """A HyperSpy axis: uniform (scale, offset) when the coordinate is, else non-uniform (``axis``)."""
    ax: dict[str, Any] = {"name": name, "navigate": navigate}
    if units:
        ax["units"] = units
    if values is None or values.dtype.kind not in "iuf" or size < 2:
        offset = float(values[0]) if values is not None and values.dtype.kind in "iuf" and size == 1 else 0.0
        return {**ax, "size": size, "scale": 1.0, "offset": offset}
    v = values.astype(np.float64)
    d = np.diff(v)
    if np.all(np.abs(d - d[0]) <= _UNIFORM_RTOL * abs(d[0])) and d[0] != 0:
        return {**ax, "size": size, "scale": float((v[-1] - v[0]) / (size - 1)), "offset": float(v[0])}
    return {**ax, "axis": v}


def _coord_units(da: xr.DataArray, dim: str) -> str | None:
    """A dimension's unit: its coordinate's ``units``; the data model's defaults where it has none."""
    if dim in da.coords and da[dim].attrs.get("units"):
        return str(da[dim].attrs["units"])
    defaults = {"y": "nm", "x": "nm", "wavelength": "nm", "time": da.attrs.get("time_units", "s")}
    return defaults.get(dim) if dim in da.coords else None


def _signal_dims(da: xr.DataArray) -> tuple[str, ...]:
    if "y" in da.dims and "x" in da.dims:
        return ("y", "x")
    if "wavelength" in da.dims:
        return ("wavelength",)
    if da.ndim == 0:
        raise InputError("a 0-D value is not a signal")
    return (da.dims[-1],)


def _hyperspy_metadata(da: xr.DataArray, two_d: bool) -> tuple[dict, dict]:
    """(metadata, original_metadata) for a DataArray's signal."""
    attrs = dict(da.attrs)
    md: dict[str, Any] = {"General": {"title": str(attrs.get("title") or da.name or "nanodomains")},
                          "Signal": {"signal_type": ""}}
    units = attrs.get("units")
    if da.name or units:
        md["Signal"]["quantity"] = f"{da.name or 'intensity'}" + (f" ({units})" if units else "")
    tem = stem_io.tem_metadata(attrs) if two_d else {}
    if tem:
        md["Acquisition_instrument"] = {"TEM": tem}
    if attrs.get("acquisition_date"):
        md["General"]["date"] = str(attrs["acquisition_date"])
    stored = stem_io.netcdf_attrs({k: v for k, v in attrs.items() if k != "origin_nm"})
    return md, {"nanodomains": stored}


def _energy_view(da: xr.DataArray) -> xr.DataArray:
    """The movie on a photon-energy axis (eV, increasing): E = hc / lambda, counts per pixel unchanged."""
    wl = np.asarray(da["wavelength"].values, dtype=np.float64)
    if np.any(~np.isfinite(wl)) or np.any(wl <= 0):
        raise CalibrationError("the wavelength axis has values <= 0 or non-finite; no energy axis can be made")
    out = da.assign_coords(wavelength=HC_EV_NM / wl).rename(wavelength="energy")
    out["energy"].attrs["units"] = "eV"
    return out.sortby("energy")


def _dataarray_signal(da: xr.DataArray, spectral_axis: str, lazy: bool) -> Any:
    import hyperspy.api as hs

    if spectral_axis == "energy" and "wavelength" in da.dims:
        da = _energy_view(da)
    sig_dims = _signal_dims(da) if "energy" not in da.dims else ("energy",)
    nav_dims = [d for d in da.dims if d not in sig_dims]
    da = da.transpose(*nav_dims, *sig_dims)
    axes = [_axis_dict(d, np.asarray(da[d].values) if d in da.coords else None, da.sizes[d],
                       _coord_units(da, d), d in nav_dims) for d in da.dims]
    px_pm = da.attrs.get("pixel_size_pm")
    if px_pm and len(sig_dims) == 2:
        stem_io.check_pixel_size_coords(da)
    for ax in axes:  # the image's own pixel size, not one recomputed from rounded coordinates
        if px_pm and ax["name"] in ("y", "x") and ax.get("units") == "nm" and "scale" in ax:
            ax["scale"] = float(px_pm) * 1e-3
    md, om = _hyperspy_metadata(da, len(sig_dims) == 2)
    if len(sig_dims) == 2:
        cls = hs.signals.Signal2D
    elif np.issubdtype(da.dtype, np.number):
        cls = hs.signals.Signal1D
    else:
        raise InputError(f"{da.name}: data of dtype {da.dtype} cannot become a HyperSpy signal")
    signal = cls(da.data, axes=axes, metadata=md, original_metadata=om)
    return signal.as_lazy() if lazy or hasattr(da.data, "dask") else signal


def _as_data(obj: Any) -> Any:
    """An analysis result as its data: ``maps_dataset()`` (STEM analysis), ``to_dataset()`` (GPA), the
    cosmic-ray-free movie of a PL movie analysis (``cleaned`` on ``time_s`` x ``wavelength_nm``)."""
    if isinstance(obj, (xr.DataArray, xr.Dataset)):
        return obj
    for method in ("maps_dataset", "to_dataset"):
        if callable(getattr(obj, method, None)):
            return getattr(obj, method)()
    if all(hasattr(obj, k) for k in ("cleaned", "time_s", "wavelength_nm", "record")):
        meta = getattr(obj.record, "meta", {}) or {}
        t_units = meta.get("time_units", "s")
        return xr.DataArray(np.asarray(obj.cleaned), dims=("time", "wavelength"), name="counts",
                            coords={"time": ("time", np.asarray(obj.time_s), {"units": t_units}),
                                    "wavelength": ("wavelength", np.asarray(obj.wavelength_nm), {"units": "nm"})},
                            attrs={"title": "PL movie, cosmic rays removed", "units": "counts",
                                   "time_units": t_units, "source": obj.record.source or ""})
    return obj


def to_hyperspy(obj: Any, *, spectral_axis: str = "wavelength", lazy: bool = False) -> Any:
    """HyperSpy signal(s) with calibrated axes for an image, map, movie or a set of maps.

    Parameters
    ----------
    obj : xarray.DataArray or xarray.Dataset or analysis result
        An image (dims ending y, x), a map, a PL movie (time, wavelength), or a
        Dataset / an object with ``maps_dataset()`` (the STEM analysis result: GPA
        strain, rotation, registry, local lattice, domain labels) or ``to_dataset()``
        (the GPA result), or a PL movie analysis
        (:class:`~nanodomains.spectroscopy.movie_analysis.MovieAnalysis`: its
        cosmic-ray-free movie).
    spectral_axis : {"wavelength", "energy"}
        A movie's signal axis: wavelength in nm as stored, or photon energy in eV
        (non-uniform, increasing; counts per pixel unchanged).
    lazy : bool
        Return lazy signals (dask-backed DataArrays always give lazy ones).

    Returns
    -------
    hyperspy.signals.Signal2D or hyperspy.signals.Signal1D or dict
        One signal for a DataArray; for a Dataset a dict name -> signal of its
        variables with both y and x dims or a wavelength dim (the others, such as
        the GPA reflection vectors, are not maps and are left out).

    Raises
    ------
    InputError
        A table, a 0-D value, a non-numeric array, or a Dataset without any map.

    Examples
    --------
    >>> from nanodomains.stem.io import image_from_array
    >>> sig = to_hyperspy(image_from_array(np.ones((16, 16)), 15.0))
    >>> [(a.name, a.scale, a.units) for a in sig.axes_manager.signal_axes]
    [('x', 0.015, 'nm'), ('y', 0.015, 'nm')]
    """
    if spectral_axis not in ("wavelength", "energy"):
        raise InputError(f"spectral_axis must be 'wavelength' or 'energy', got {spectral_axis!r}")
    data = _as_data(obj)
    if isinstance(data, xr.DataArray):
        return _dataarray_signal(data, spectral_axis, lazy)
    if isinstance(data, xr.Dataset):
        maps = {name: var for name, var in data.data_vars.items()
                if {"y", "x"} <= set(var.dims) or "wavelength" in var.dims}
        if not maps:
            raise InputError(f"the Dataset has no map (no variable with dims y and x or wavelength): "
                             f"{dict(data.sizes)}")
        return {name: _dataarray_signal(var.assign_attrs({**data.attrs, **var.attrs}), spectral_axis, lazy)
                for name, var in maps.items()}
    kind = "a table: export it as .parquet" if hasattr(obj, "to_parquet") else type(obj).__name__
    raise InputError(f"cannot make a HyperSpy signal of {kind}")


# --------------------------------------------------------------------------- tables from records


def _flatten_json(d: dict, prefix: str, out: dict) -> None:
    for k, v in d.items():
        key = prefix + k
        if isinstance(v, dict) and set(v) == {"value", "stderr"}:
            out[key], out[key + "_stderr"] = v["value"], v["stderr"]
        elif isinstance(v, dict):
            _flatten_json(v, key + ".", out)
        elif isinstance(v, (list, tuple)):
            out[key] = json.dumps(to_jsonable(v))  # ragged across rows: one JSON text per cell
        else:
            out[key] = v


def records_table(record: Any, field: str | None = None) -> Any:
    """The items of a record (domains, boundaries, emitters, ...) as a flat table.

    Parameters
    ----------
    record : nanodomains.records.Record
        E.g. :class:`~nanodomains.records.StemDomains` (``domains.json``) or
        :class:`~nanodomains.records.PLEmitters` (``emitters.json``).
    field : str, optional
        The list of items to tabulate; default the record's first non-empty list of
        items (``domains``, ``emitters``).

    Returns
    -------
    pandas.DataFrame
        One row per item; a ``Measured`` number as two columns ``name`` and
        ``name_stderr``; nested items as ``parent.child``; lists (centroids, lines,
        intervals) as JSON text. The record's schema and source are in
        ``DataFrame.attrs``.

    Raises
    ------
    InputError
        ``field`` is not a list of items of the record, or the record has none.
    """
    import pandas as pd

    from nanodomains.records import Item

    lists = {name: getattr(record, name) for name in type(record).model_fields
             if isinstance(getattr(record, name), (list, tuple)) and getattr(record, name)
             and isinstance(getattr(record, name)[0], Item)}
    if field is None:
        if not lists:
            raise InputError(f"{type(record).__name__}: the record holds no list of items to tabulate")
        field = next(iter(lists))
    if field not in lists:
        raise InputError(f"{type(record).__name__}: {field!r} is not a non-empty list of items "
                         f"(lists: {sorted(lists)})")
    rows = []
    for item in lists[field]:
        row: dict[str, Any] = {}
        _flatten_json(item.model_dump(mode="json"), "", row)
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs.update({"schema": getattr(record, "SCHEMA", ""), "items": field, "source": record.source or ""})
    return table


# --------------------------------------------------------------------------- files


def _is_image(da: xr.DataArray) -> bool:
    return isinstance(da, xr.DataArray) and da.ndim in (2, 3) and tuple(da.dims[-2:]) == ("y", "x")


def _with_pixel_size(da: xr.DataArray) -> xr.DataArray:
    """A map on the image grid with ``pixel_size_pm`` from its nm coordinates (square, uniform)."""
    if "pixel_size_pm" in da.attrs:
        stem_io.check_pixel_size_coords(da)
        return da
    steps = []
    for dim in ("y", "x"):
        units = _coord_units(da, dim)
        f_nm = stem_io.unit_to_nm(units) if dim in da.coords else None
        if f_nm is None or da.sizes[dim] < 2:
            raise CalibrationError(f"map {da.name!r}: coordinate {dim!r} has no length calibration "
                                   f"(unit {units!r}); a calibrated file needs one")
        ax = _axis_dict(dim, np.asarray(da[dim].values), da.sizes[dim], units, False)
        if "scale" not in ax:
            raise CalibrationError(f"map {da.name!r}: coordinate {dim!r} is not uniform")
        steps.append(ax["scale"] * f_nm * 1e3)
    if abs(steps[0] - steps[1]) > 0.01 * max(abs(steps[0]), abs(steps[1])):
        raise CalibrationError(f"map {da.name!r}: non-square pixels ({steps[0]:.4g} x {steps[1]:.4g} pm)")
    return da.assign_attrs(pixel_size_pm=float(np.mean(steps)), pixel_size_source="coordinates")


def _channels(ds: xr.Dataset) -> tuple[list[str], list[np.ndarray]]:
    """Every (y, x) plane of a Dataset's maps with its label (a map per reflection: one per reflection)."""
    labels, planes = [], []
    for name, var in ds.data_vars.items():
        if not {"y", "x"} <= set(var.dims) or var.ndim > 3:
            continue
        var = var.transpose(..., "y", "x")
        if var.ndim == 2:
            labels.append(name)
            planes.append(np.asarray(var.values, dtype=np.float32))
            continue
        extra = var.dims[0]
        for i in range(var.sizes[extra]):
            value = var[extra].values[i] if extra in var.coords else i
            labels.append(f"{name} {value}")
            planes.append(np.asarray(var.isel({extra: i}).values, dtype=np.float32))
    return labels, planes


def _write_maps_tiff(ds: xr.Dataset, path: Path) -> None:
    """An ImageJ hyperstack (axes CYX), one labelled channel per map plane, calibrated in nm."""
    import tifffile

    labels, planes = _channels(ds)
    if not planes:
        raise InputError(f"{path}: the Dataset has no map with dims y and x to write as TIFF")
    grid = _with_pixel_size(xr.DataArray(planes[0], dims=("y", "x"), coords={"y": ds["y"], "x": ds["x"]},
                                         name=labels[0]))
    px_nm = grid.attrs["pixel_size_pm"] * 1e-3
    origin = (float(grid["y"][0]), float(grid["x"][0]))
    kw = stem_io.tiff_calibration(px_nm, origin)  # ImageJ and HyperSpy calibration, as save_image
    kw["metadata"].update({"axes": "CYX", "Labels": labels,
                           "nanodomains_attrs": json.dumps(to_jsonable(stem_io.netcdf_attrs(ds.attrs)))})
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, np.stack(planes), **kw)


def _write_netcdf(obj: Any, path: Path) -> None:
    out = obj.copy()
    out.attrs = stem_io.netcdf_attrs(obj.attrs)
    if isinstance(out, xr.Dataset):
        for name in out.data_vars:
            out[name].attrs = stem_io.netcdf_attrs(out[name].attrs)
    elif out.name is None:
        out.name = "data"
    with atomic_path(path) as tmp:
        out.to_netcdf(tmp, engine="h5netcdf")


def _write_hspy(obj: Any, path: Path) -> None:
    signal = obj if is_hyperspy_signal(obj) else to_hyperspy(obj)
    if isinstance(signal, dict):
        raise InputError(f"{path}: a .hspy file holds one signal and these are {len(signal)} maps "
                         f"({', '.join(signal)}); export one (ds['exx']) or use .nc or .tif")
    with atomic_path(path) as tmp:
        signal.save(str(tmp), overwrite=True, file_format="HSPY")


def _write_parquet(obj: Any, path: Path) -> None:
    table = obj if hasattr(obj, "to_parquet") else records_table(obj)
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, engine="pyarrow", index=False)


def export(obj: Any, path: str | Path) -> Path:
    """Write an image, map(s), movie or table to the file format its suffix names.

    Parameters
    ----------
    obj : xarray.DataArray, xarray.Dataset, pandas.DataFrame, record, analysis result or HyperSpy signal
        Image or map (dims ending y, x), PL movie (time, wavelength), a Dataset of
        maps or an analysis result with ``maps_dataset()`` / ``to_dataset()``, a table,
        or a record (its items become a table, :func:`records_table`).
    path : str or Path
        ``.tif``/``.tiff`` (images and maps: ImageJ TIFF with the pixel size in the
        resolution tags, ``unit=nm``; a Dataset of maps as a hyperstack with one
        labelled channel per map), ``.hspy`` (one signal), ``.nc`` (netCDF-4, h5netcdf)
        or ``.parquet`` (tables and records).

    Returns
    -------
    Path
        The written file (written atomically).

    Raises
    ------
    InputError
        An unknown suffix, or an object that format cannot hold (a movie as TIFF, a
        table as netCDF, several maps in one .hspy).
    CalibrationError
        An image or map without a length calibration for TIFF.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> path = Path(tempfile.mkdtemp()) / "columns.parquet"
    >>> export(pd.DataFrame({"x_nm": [0.1, 0.7], "type": ["Cs", "PbX"]}), path).name
    'columns.parquet'
    >>> pd.read_parquet(path)["type"].tolist()
    ['Cs', 'PbX']
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise InputError(f"{path}: unknown export format {suffix or '(no suffix)'!r}; use one of "
                         + ", ".join(f"{k} ({v})" for k, v in EXPORT_SUFFIXES.items() if k != ".tiff"))
    if is_hyperspy_signal(obj) and suffix != ".hspy":
        obj = from_hyperspy(obj)
    obj = _as_data(obj)
    is_table = hasattr(obj, "to_parquet") or hasattr(obj, "SCHEMA")
    if suffix == ".parquet":
        if not is_table:
            raise InputError(f"{path}: Parquet holds tables (pandas DataFrames, records); got "
                             f"{type(obj).__name__}: use .nc, .hspy or .tif")
        _write_parquet(obj, path)
        return path
    if is_table:
        raise InputError(f"{path}: a table ({type(obj).__name__}) is written as .parquet")
    if suffix == ".hspy":
        _write_hspy(obj, path)
    elif suffix == ".nc":
        if _is_image(obj) and "pixel_size_pm" in obj.attrs:
            stem_io.check_pixel_size_coords(obj)
            stem_io.save_image(obj, path)
        else:
            _write_netcdf(obj, path)
    elif isinstance(obj, xr.Dataset):
        _write_maps_tiff(obj, path)
    elif _is_image(obj):
        stem_io.save_image(_with_pixel_size(obj), path)
    else:
        raise InputError(f"{path}: TIFF holds images and maps (dims ending y, x) calibrated in one length unit; "
                         f"got dims {getattr(obj, 'dims', None)}: a PL movie goes to .nc or .hspy")
    return path


def read_output(path: str | Path, *, pixel_size_pm: float | None = None, variable: str | None = None) -> Any:
    """Read a nanodomains output (or any image the project reads) for :func:`export`.

    Parameters
    ----------
    path : str or Path
        ``.nc`` (an image, a movie, or a Dataset of maps such as ``gpa.nc``), ``.hspy``
        (HyperSpy, through :func:`from_hyperspy`), ``.csv`` / ``.parquet`` (a table),
        ``.json`` (a record: the table of its items), or any image format of
        :func:`nanodomains.stem.io.load_image`.
    pixel_size_pm : float, optional
        For images without a calibration (plain TIFF, ``.npy``).
    variable : str, optional
        One variable of a netCDF Dataset, or the list of items of a record.

    Returns
    -------
    xarray.DataArray or xarray.Dataset or pandas.DataFrame

    Raises
    ------
    FileFormatError
        Missing or unreadable file.
    InputError
        An unknown ``variable``.
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise FileFormatError(f"{p}: no such file")
    ext = p.suffix.lower()
    if ext in (".nc", ".nc4", ".netcdf"):
        return _netcdf_content(stem_io.load_netcdf(p, "netCDF file"), p, variable)
    if ext in (".hspy", ".zspy"):
        import hyperspy.api as hs

        try:
            signal = hs.load(str(p))
        except Exception as exc:  # noqa: BLE001 - every reader failure is a format error
            raise FileFormatError(f"{p}: cannot read with hyperspy.api.load ({type(exc).__name__}: {exc})") from exc
        if isinstance(signal, list):
            raise InputError(f"{p}: holds {len(signal)} signals; export them from Python one by one")
        return from_hyperspy(signal, pixel_size_pm=pixel_size_pm)
    if ext == ".csv":
        return pd.read_csv(p)
    if ext == ".parquet":
        return pd.read_parquet(p)
    if ext == ".json":
        from nanodomains.records import load_record

        return records_table(load_record(p), variable)
    return stem_io.load_image(p, pixel_size_pm)


def _netcdf_content(ds: xr.Dataset, p: Path, variable: str | None) -> Any:
    """One DataArray (a named variable, the only one, or the movie) or the Dataset of maps."""
    movies = [k for k, v in ds.data_vars.items() if set(v.dims) == {"time", "wavelength"}]
    if variable is not None and variable not in ds.data_vars:
        raise InputError(f"{p}: no variable {variable!r} (variables: {list(ds.data_vars)})")
    name = variable or (next(iter(ds.data_vars)) if len(ds.data_vars) == 1 else
                        movies[0] if len(movies) == 1 else None)
    if name is None:
        return ds
    da = ds[name]
    return da.assign_attrs({**ds.attrs, **da.attrs})


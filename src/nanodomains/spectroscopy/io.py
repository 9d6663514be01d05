"""Read and write PL spectral movies (time x wavelength).

A spectral movie is an :class:`xarray.DataArray` with dims ``("time", "wavelength")``:
``time`` in s (frame start times), ``wavelength`` in nm, strictly increasing, values in
detector counts. Every reader returns the same object and records where its axes came
from in ``attrs`` (``source``, ``format``, ``time_source``, ``wavelength_source``).

Supported inputs
----------------
* Andor SIF (``.sif``) through ``sif_parser.np_open`` (kinetic series and single
  spectra). Wavelength axis from the file's calibration polynomial
  ``lambda(p) = c0 + c1 p + c2 p^2 + c3 p^3`` with pixel number ``p = 1..N``
  (``sif_parser.utils.extract_calibration``). Time axis from the per-frame time stamps
  when they increase, otherwise ``frame index x CycleTime`` (the kinetic cycle time,
  recorded in ``attrs["time_source"]``).
* Princeton Instruments SPE 2.x and 3.0 (``.spe``), read by a small reader of the
  documented layout (SPE 3.0 File Format Specification, Princeton Instruments 2012):
  a 4100-byte binary header (``xdim`` uint16 @42, ``datatype`` int16 @108, ``ydim``
  uint16 @656, ``NumFrames`` int32 @1446, ``file_header_ver`` float32 @1992; SPE 3.0
  adds the XML footer offset uint64 @678), frames from byte 4100. SPE 2.x wavelength
  calibration: ``polynocoeff`` (6 float64 @3263) of order ``polynoorder`` (int8 @3101),
  evaluated at pixel numbers ``1..xdim`` as most published readers do (IDL readers use
  ``0..xdim-1``; pass ``spe2_pixel_origin=0`` for those files). SPE 3.0 wavelength
  axis from ``<Calibrations><WavelengthMapping><Wavelength>`` (or ``WavelengthError``)
  in the XML footer, restricted to the region through its ``SensorMapping``
  (``x``, ``width``, ``xBinning``); frame time stamps from the per-frame metadata
  (``<MetaFormat><MetaBlock><TimeStamp event="ExposureStarted" resolution=...>``)
  when present.
* CSV/text: first row the wavelengths (nm); then one row per frame. An optional first
  column holds the frame time in s: it is recognised when the first cell of the first
  row is empty or not a number (e.g. ``time_s``), or when the data rows have one cell
  more than the wavelength row. Delimiter ``,``, ``;``, tab or whitespace.
* Full_SMS HDF5 (``.h5``, BioPhysicsUP/Full_SMS): only the spectra of one particle,
  dataset ``Particle N/Spectra (counts\\s)`` (frames x pixels) with the attributes
  ``Wavelengths`` (nm, descending in the files seen: flipped), ``Spectra Abs. Times (s)``
  (frame times) and ``Exposure Time (s)``. The photon streams of the same file are read
  by the photon readers. The file records no detector ceiling; saturation is detected
  from the data by the analysis (:func:`~nanodomains.spectroscopy.screening.detect_saturation`).
* netCDF (``.nc``): the optical forward model's movies and :func:`save_movie` output;
  the data variable with dims (time, wavelength).
* HyperSpy ``Signal1D`` objects and ``.hspy`` files: time x wavelength or photon energy,
  calibrated from the signal's axes (:mod:`nanodomains.interop`).

Validation (:func:`validate_movie`, applied by every reader): a non-empty 2-D movie,
a finite strictly monotonic wavelength axis (a decreasing axis is flipped and the flip
recorded), a finite strictly increasing time axis, and no NaN/inf values: frames that
hold them are reported by index and time (``bad_frames="raise"``, the default) or
dropped with the dropped indices recorded in ``attrs["dropped_frames"]`` and a warning
(``bad_frames="drop"``). Nothing is dropped or invented silently.
"""

from __future__ import annotations

import io
import json
import struct
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import xarray as xr

from nanodomains.errors import CalibrationError, FileFormatError, InputError
from nanodomains.files import atomic_path, to_jsonable

__all__ = [
    "load_movie",
    "save_movie",
    "movie_from_arrays",
    "validate_movie",
    "read_sif",
    "read_spe",
    "read_csv_movie",
    "read_netcdf_movie",
    "read_fullsms_spectra",
    "is_fullsms_file",
]

_SPE_HEADER_BYTES = 4100
_SPE2_DTYPES = {0: "<f4", 1: "<i4", 2: "<i2", 3: "<u2", 5: "<f8", 6: "u1", 8: "<u4"}
_SPE3_DTYPES = {
    "MonochromeFloating32": "<f4",
    "MonochromeUnsigned32": "<u4",
    "MonochromeUnsigned16": "<u2",
    "MonochromeSigned32": "<i4",
    "MonochromeSigned16": "<i2",
}


# ---------------------------------------------------------------------------- core


def movie_from_arrays(
    counts,
    wavelength_nm,
    time_s=None,
    *,
    attrs: dict | None = None,
    source: str = "<array>",
    bad_frames: str = "raise",
) -> xr.DataArray:
    """Build and validate a spectral movie from plain arrays.

    Parameters
    ----------
    counts : array_like, shape (n_frames, n_pixels) or (n_pixels,)
        Detector counts; a 1-D spectrum becomes a one-frame movie.
    wavelength_nm : array_like, shape (n_pixels,)
        Wavelength of every pixel in nm (strictly monotonic).
    time_s : array_like, shape (n_frames,), optional
        Frame start times in s. ``None`` uses the frame index and records
        ``attrs["time_source"] = "frame index (no timing given)"`` and
        ``attrs["time_units"] = "frame"``.
    attrs : dict, optional
        Extra attributes.
    source : str
        Name used in error messages.
    bad_frames : {"raise", "drop"}
        What to do with frames holding NaN/inf values (see :func:`validate_movie`).

    Returns
    -------
    movie : xarray.DataArray
        dims ("time", "wavelength").
    """
    data = np.asarray(counts, dtype=np.float64)
    if data.ndim == 1:
        data = data[None, :]
    if data.ndim != 2:
        raise InputError(f"{source}: counts must be 2-D (time, wavelength), got shape {data.shape}")
    wl = np.asarray(wavelength_nm, dtype=np.float64).ravel()
    if wl.size != data.shape[1]:
        raise CalibrationError(
            f"{source}: wavelength axis has {wl.size} values but the frames have {data.shape[1]} pixels"
        )
    a = dict(attrs or {})
    if time_s is None:
        t = np.arange(data.shape[0], dtype=np.float64)
        a.setdefault("time_source", "frame index (no timing given)")
        a.setdefault("time_units", "frame")
    else:
        t = np.asarray(time_s, dtype=np.float64).ravel()
        if t.size != data.shape[0]:
            raise InputError(f"{source}: {t.size} time values for {data.shape[0]} frames")
        a.setdefault("time_units", "s")
        a.setdefault("time_source", "given time_s")
    a.setdefault("source", source)
    a.setdefault("units", "counts")
    a.setdefault("wavelength_units", "nm")
    movie = xr.DataArray(
        data,
        dims=("time", "wavelength"),
        coords={"time": t, "wavelength": wl},
        name="counts",
        attrs=a,
    )
    return validate_movie(movie, source=source, bad_frames=bad_frames)


def validate_movie(movie: xr.DataArray, *, source: str | None = None, bad_frames: str = "raise") -> xr.DataArray:
    """Check a spectral movie and return it in canonical form.

    Parameters
    ----------
    movie : xarray.DataArray
        dims ("time", "wavelength") in either order, with both coordinates.
    source : str, optional
        Name used in error messages (default ``movie.attrs["source"]``).
    bad_frames : {"raise", "drop"}
        Frames with NaN/inf: ``"raise"`` an :class:`InputError` listing them, or
        ``"drop"`` them with a warning and ``attrs["dropped_frames"]`` (indices in the
        input).

    Returns
    -------
    movie : xarray.DataArray
        float64, dims ("time", "wavelength"), wavelength increasing.

    Raises
    ------
    InputError
        Empty movie, wrong dims, bad time axis, NaN/inf frames.
    CalibrationError
        Missing, non-finite or non-monotonic wavelength axis.
    """
    src = source or movie.attrs.get("source", "<movie>")
    if bad_frames not in ("raise", "drop"):
        raise InputError(f"bad_frames must be 'raise' or 'drop', got {bad_frames!r}")
    movie = _canonical_dims(movie, src)
    attrs = dict(movie.attrs)
    movie, wl = _increasing_wavelength(movie, src, attrs)
    t = _time_axis(movie, src)
    data, t = _finite_frames(np.asarray(movie.values, dtype=np.float64), t, src, bad_frames, attrs)
    out = xr.DataArray(
        data,
        dims=("time", "wavelength"),
        coords={"time": t, "wavelength": wl},
        name=movie.name or "counts",
        attrs=attrs,
    )
    out["time"].attrs["units"] = attrs.get("time_units", "s")
    out["wavelength"].attrs["units"] = "nm"
    return out


def _canonical_dims(movie, src: str) -> xr.DataArray:
    """A non-empty DataArray with dims (time, wavelength) and both coordinates."""
    if not isinstance(movie, xr.DataArray):
        raise InputError(f"{src}: expected an xarray.DataArray, got {type(movie).__name__}")
    if set(movie.dims) != {"time", "wavelength"}:
        raise InputError(f"{src}: movie dims must be ('time', 'wavelength'), got {movie.dims}")
    movie = movie.transpose("time", "wavelength")
    if movie.sizes["time"] == 0 or movie.sizes["wavelength"] == 0:
        raise InputError(
            f"{src}: empty movie ({movie.sizes['time']} frames x {movie.sizes['wavelength']} pixels)"
        )
    for c in ("time", "wavelength"):
        if c not in movie.coords:
            raise (CalibrationError if c == "wavelength" else InputError)(f"{src}: movie has no '{c}' coordinate")
    return movie


def _increasing_wavelength(movie: xr.DataArray, src: str, attrs: dict) -> tuple[xr.DataArray, np.ndarray]:
    """Finite, strictly monotonic wavelength axis, flipped to increase (recorded in ``attrs``)."""
    wl = np.asarray(movie["wavelength"].values, dtype=np.float64)
    if not np.all(np.isfinite(wl)):
        bad = np.flatnonzero(~np.isfinite(wl))
        raise CalibrationError(f"{src}: wavelength axis has non-finite values at pixels {bad[:10].tolist()}")
    if np.any(wl <= 0):
        bad = np.flatnonzero(wl <= 0)
        raise CalibrationError(f"{src}: wavelength axis has non-positive values ({wl[bad[0]]:.6g} nm at pixel "
                               f"{int(bad[0])}; {bad.size} pixels): not a wavelength calibration")
    if wl.size > 1:
        d = np.diff(wl)
        if np.all(d < 0):
            movie = movie.isel(wavelength=slice(None, None, -1))
            attrs["wavelength_flipped"] = 1
            wl = wl[::-1]
        elif not np.all(d > 0):
            i = int(np.flatnonzero(d <= 0)[0]) if np.any(d > 0) else int(np.flatnonzero(d >= 0)[0])
            raise CalibrationError(
                f"{src}: wavelength axis is not strictly monotonic: pixel {i} = {wl[i]:.6g} nm, "
                f"pixel {i + 1} = {wl[i + 1]:.6g} nm"
            )
    return movie, wl


def _time_axis(movie: xr.DataArray, src: str) -> np.ndarray:
    """Finite, strictly increasing frame times."""
    t = np.asarray(movie["time"].values, dtype=np.float64)
    if not np.all(np.isfinite(t)):
        raise InputError(f"{src}: time axis has non-finite values at frames {np.flatnonzero(~np.isfinite(t))[:10].tolist()}")
    if t.size > 1 and not np.all(np.diff(t) > 0):
        i = int(np.flatnonzero(np.diff(t) <= 0)[0])
        raise InputError(f"{src}: time axis is not strictly increasing at frame {i + 1} ({t[i]} s -> {t[i + 1]} s)")
    return t


def _finite_frames(data: np.ndarray, t: np.ndarray, src: str, bad_frames: str,
                   attrs: dict) -> tuple[np.ndarray, np.ndarray]:
    """Frames with NaN/inf raise, or are dropped (``attrs["dropped_frames"]``) with a warning."""
    finite = np.isfinite(data)
    bad = np.flatnonzero(~finite.all(axis=1))
    if not bad.size:
        return data, t
    n_bad_px = (~finite[bad]).sum(axis=1)
    desc = ", ".join(f"{int(i)} (t={t[i]:g} s, {int(n)} px)" for i, n in zip(bad[:20], n_bad_px[:20]))
    more = f" and {bad.size - 20} more" if bad.size > 20 else ""
    if bad_frames == "raise":
        raise InputError(
            f"{src}: {bad.size} frame(s) contain NaN/inf values: {desc}{more}; "
            "fix or remove them, or load with bad_frames='drop' to drop them explicitly"
        )
    warnings.warn(f"{src}: dropping {bad.size} frame(s) with NaN/inf values: {desc}{more}", stacklevel=4)
    keep = np.setdiff1d(np.arange(data.shape[0]), bad)
    if keep.size == 0:
        raise InputError(f"{src}: every frame contains NaN/inf values")
    attrs["dropped_frames"] = bad.astype(np.int64).tolist()
    return data[keep], t[keep]


def load_movie(
    path,
    *,
    frame_time_s: float | None = None,
    rows: str | None = None,
    bad_frames: str = "raise",
    spe2_pixel_origin: int = 1,
    variable: str | None = None,
) -> xr.DataArray:
    """Load a PL spectral movie from SIF, SPE, CSV/text or netCDF.

    Parameters
    ----------
    path : str or Path or hyperspy.signals.Signal1D
        The file; the format is chosen by extension (``.sif``, ``.spe``, ``.csv``/
        ``.txt``/``.dat``/``.tsv``, ``.nc``/``.h5``/``.netcdf``, ``.hspy``). Or a
        HyperSpy ``Signal1D`` (time x wavelength or photon energy), calibrated from
        its axes (:func:`nanodomains.interop.movie_parts_from_hyperspy`).
    frame_time_s : float, optional
        Frame period in s for files that record no timing (CSV without a time
        column, SPE without time stamps). Ignored when the file has timing.
    rows : {None, "sum"}
        Multi-row (image-mode) frames: ``None`` raises, ``"sum"`` sums the rows
        (software full vertical binning).
    bad_frames : {"raise", "drop"}
        See :func:`validate_movie`.
    spe2_pixel_origin : {1, 0}
        First pixel number of the SPE 2.x calibration polynomial.
    variable : str, optional
        netCDF data variable to read when the file holds several.

    Returns
    -------
    movie : xarray.DataArray
        dims ("time", "wavelength"), time in s, wavelength in nm.

    Raises
    ------
    FileFormatError
        Missing, truncated or unrecognised file.
    CalibrationError
        No usable wavelength calibration.
    InputError
        Empty movie or NaN/inf frames.
    """
    from nanodomains.interop import is_hyperspy_signal, movie_parts_from_hyperspy

    if is_hyperspy_signal(path):  # calibrated from the signal's axes (nanodomains.interop)
        counts, wl, time_s, attrs = movie_parts_from_hyperspy(path)
        return movie_from_arrays(counts, wl, time_s, attrs=attrs, source=attrs["source"], bad_frames=bad_frames)
    p = Path(path)
    if not p.exists():
        raise FileFormatError(f"{p}: no such file")
    if p.is_dir():
        raise FileFormatError(f"{p}: is a directory, expected a movie file")
    if frame_time_s is not None:
        frame_time_s = float(frame_time_s)
        if not np.isfinite(frame_time_s) or frame_time_s <= 0:
            raise InputError(f"frame_time_s must be a finite number > 0, got {frame_time_s!r}")
    ext = p.suffix.lower()
    if ext == ".sif":
        return read_sif(p, rows=rows, bad_frames=bad_frames)
    if ext == ".spe":
        return read_spe(p, frame_time_s=frame_time_s, rows=rows, bad_frames=bad_frames, spe2_pixel_origin=spe2_pixel_origin)
    if ext in (".csv", ".txt", ".dat", ".tsv"):
        return read_csv_movie(p, frame_time_s=frame_time_s, bad_frames=bad_frames)
    if ext in (".h5", ".hdf5") and is_fullsms_file(p):
        return read_fullsms_spectra(p, bad_frames=bad_frames)
    if ext in (".nc", ".h5", ".netcdf", ".nc4", ".cdf"):
        return read_netcdf_movie(p, variable=variable, bad_frames=bad_frames)
    if ext in (".hspy", ".zspy"):  # a HyperSpy Signal1D (time x wavelength or energy)
        import hyperspy.api as hs

        try:
            signal = hs.load(str(p))
        except Exception as exc:  # noqa: BLE001 - every reader failure is a format error
            raise FileFormatError(f"{p}: cannot read with hyperspy.api.load ({type(exc).__name__}: {exc})") from exc
        return load_movie(signal, bad_frames=bad_frames)
    raise FileFormatError(
        f"{p}: unknown movie format '{ext}'; expected .sif, .spe, .csv/.txt/.dat/.tsv, .nc or .hspy"
    )


def save_movie(movie: xr.DataArray, path) -> Path:
    """Write a spectral movie to netCDF (h5netcdf engine), readable by :func:`load_movie`.

    Parameters
    ----------
    movie : xarray.DataArray
        A valid movie (see :func:`validate_movie`).
    path : str or Path
        Output file (``.nc``); written atomically (temporary file + rename).

    Returns
    -------
    path : Path
    """
    movie = validate_movie(movie)
    p = Path(path)
    out = movie.copy()
    out.attrs = _netcdf_safe_attrs(movie.attrs)
    out.name = movie.name or "counts"
    with atomic_path(p) as tmp:
        out.to_netcdf(tmp, engine="h5netcdf")
    return p


def _netcdf_safe_attrs(attrs: dict) -> dict:
    safe = {}
    for k, v in attrs.items():
        if isinstance(v, bool):
            safe[k] = int(v)
        elif isinstance(v, (str, int, float, np.integer, np.floating)):
            safe[k] = v
        elif isinstance(v, (list, tuple, np.ndarray)) and np.asarray(v).dtype.kind in "iuf" and np.asarray(v).ndim == 1:
            safe[k] = np.asarray(v)
        else:
            safe[k] = json.dumps(to_jsonable(v), default=str)
    return safe


# ---------------------------------------------------------------------------- SIF


class _EOFGuardFile(io.FileIO):
    """Unbuffered file whose ``read(n > 0)`` raises EOFError at end of file."""

    def read(self, size=-1):
        b = super().read(size)
        if size is not None and size > 0 and not b:
            raise EOFError(f"unexpected end of file at byte {self.tell()}")
        return b


def read_sif(path, *, rows: str | None = None, bad_frames: str = "raise") -> xr.DataArray:
    """Read an Andor SIF spectrum or kinetic series (see module docstring).

    Parameters
    ----------
    path : str or Path
    rows : {None, "sum"}
        Image-mode files (more than one row per frame) need ``"sum"``.
    bad_frames : {"raise", "drop"}

    Returns
    -------
    movie : xarray.DataArray
    """
    import sif_parser  # extra "photons"; imported here so the package imports without it
    from sif_parser.utils import extract_calibration

    p = Path(path)
    try:
        # sif_parser's header reader loops forever at end of file: read through a
        # file object that raises EOFError instead (a real file, so np.fromfile works)
        with _EOFGuardFile(p) as fh:
            data, info = sif_parser.np_open(fh)
    except (SyntaxError,) as exc:
        raise FileFormatError(f"{p}: not an Andor SIF file ({exc})") from exc
    except Exception as exc:  # sif_parser raises ValueError/EOFError/... on cut files
        raise FileFormatError(f"{p}: truncated or corrupt Andor SIF file ({type(exc).__name__}: {exc})") from exc
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 3 or data.shape[0] == 0:
        raise FileFormatError(f"{p}: SIF holds no frames (data shape {data.shape})")
    n_frames, height, width = data.shape
    if height > 1:
        if rows != "sum":
            raise FileFormatError(
                f"{p}: image-mode SIF with {height} rows per frame; pass rows='sum' to sum them into spectra"
            )
        data = data.sum(axis=1)
    else:
        data = data[:, 0, :]
    try:
        calib = extract_calibration(info)
    except Exception as exc:
        raise CalibrationError(f"{p}: cannot evaluate the SIF wavelength calibration ({exc})") from exc
    if calib is None:
        raise CalibrationError(f"{p}: SIF file has no wavelength calibration (no Calibration_data)")
    calib = np.asarray(calib, dtype=np.float64)
    if calib.ndim == 2:
        if not np.allclose(calib, calib[0]):
            raise CalibrationError(f"{p}: SIF frames have different wavelength calibrations (step-and-glue); not a movie")
        calib = calib[0]
    if calib.size != width:
        raise CalibrationError(f"{p}: calibration has {calib.size} values for {width} pixels")
    if np.all(calib == calib[0]) or not np.any(np.asarray(info.get("Calibration_data", [0, 1]))[1:]):
        raise CalibrationError(f"{p}: SIF calibration polynomial is constant (uncalibrated file)")
    stamps = np.array([info.get(f"timestamp_of_{i}", 0) for i in range(n_frames)], dtype=np.float64) * 1e-6
    cycle = float(info.get("CycleTime", 0.0) or 0.0)
    exposure = float(info.get("ExposureTime", 0.0) or 0.0)
    if n_frames > 1 and np.all(np.diff(stamps) > 0):
        time = stamps - stamps[0]
        tsrc = "SIF per-frame time stamps"
    elif n_frames == 1:
        time = np.zeros(1)
        tsrc = "single frame"
    elif cycle > 0:
        time = np.arange(n_frames) * cycle
        tsrc = f"frame index x CycleTime ({cycle:g} s); per-frame time stamps absent or constant"
    else:
        raise FileFormatError(f"{p}: SIF kinetic series has neither time stamps nor a CycleTime")
    attrs = {
        "format": "Andor SIF",
        "time_source": tsrc,
        "wavelength_source": "SIF Calibration_data polynomial at pixels 1..N",
        "exposure_s": exposure,
        "cycle_time_s": cycle,
        "sif_version": int(info.get("SifVersion", 0)),
        "detector": str(info.get("DetectorType", "")),
        "detector_temperature_c": float(info.get("DetectorTemperature", np.nan)),
        "accumulations": int(info.get("AccumulatedCycles", 1) or 1),
    }
    laser = float(info.get("RamanExWavelength", 0.0) or 0.0)
    if 150.0 < laser < 3000.0:  # Andor Solis' Raman excitation wavelength (0 when unset)
        attrs["laser_nm"], attrs["laser_source"] = laser, "SIF RamanExWavelength"
    return movie_from_arrays(data, calib, time, attrs=attrs, source=str(p), bad_frames=bad_frames)


# ---------------------------------------------------------------------------- SPE


def read_spe(
    path,
    *,
    frame_time_s: float | None = None,
    rows: str | None = None,
    bad_frames: str = "raise",
    spe2_pixel_origin: int = 1,
) -> xr.DataArray:
    """Read a Princeton Instruments SPE 2.x or 3.0 file (see module docstring).

    Parameters
    ----------
    path : str or Path
    frame_time_s : float, optional
        Frame period when the file has no time stamps (SPE 2.x: default is the
        header exposure time ``exp_sec``, recorded as such).
    rows : {None, "sum"}
    bad_frames : {"raise", "drop"}
    spe2_pixel_origin : {1, 0}

    Returns
    -------
    movie : xarray.DataArray
    """
    p = Path(path)
    raw = p.read_bytes()
    if len(raw) < _SPE_HEADER_BYTES:
        raise FileFormatError(f"{p}: {len(raw)} bytes, shorter than the {_SPE_HEADER_BYTES}-byte SPE header (truncated?)")
    hdr = raw[:_SPE_HEADER_BYTES]
    (lastvalue,) = struct.unpack_from("<h", hdr, 4098)
    version = struct.unpack_from("<f", hdr, 1992)[0]
    if lastvalue != 0x5555 and not (np.isfinite(version) and 1.0 <= version < 10.0):
        raise FileFormatError(f"{p}: not a Princeton SPE file (lastvalue {lastvalue:#x}, header version {version!r})")
    if version >= 3.0:
        return _read_spe3(p, raw, frame_time_s=frame_time_s, rows=rows, bad_frames=bad_frames)
    return _read_spe2(p, raw, version, frame_time_s=frame_time_s, rows=rows, bad_frames=bad_frames, origin=spe2_pixel_origin)


def _frames_to_spectra(p, frames: np.ndarray, rows: str | None) -> np.ndarray:
    if frames.shape[1] > 1:
        if rows != "sum":
            raise FileFormatError(f"{p}: {frames.shape[1]} rows per frame (image mode); pass rows='sum' to sum them")
        return frames.sum(axis=1)
    return frames[:, 0, :]


def _read_spe2(p, raw, version, *, frame_time_s, rows, bad_frames, origin):
    xdim, = struct.unpack_from("<H", raw, 42)
    ydim, = struct.unpack_from("<H", raw, 656)
    nframes, = struct.unpack_from("<i", raw, 1446)
    dtype_code, = struct.unpack_from("<h", raw, 108)
    if dtype_code not in _SPE2_DTYPES:
        raise FileFormatError(f"{p}: SPE datatype code {dtype_code} unknown (expected one of {sorted(_SPE2_DTYPES)})")
    dt = np.dtype(_SPE2_DTYPES[dtype_code])
    if xdim == 0 or ydim == 0 or nframes <= 0:
        raise InputError(f"{p}: empty SPE movie (xdim={xdim}, ydim={ydim}, NumFrames={nframes})")
    need = _SPE_HEADER_BYTES + nframes * xdim * ydim * dt.itemsize
    if len(raw) < need:
        raise FileFormatError(f"{p}: truncated SPE file: {len(raw)} bytes, {need} needed for {nframes} frames of {ydim}x{xdim} {dt}")
    frames = np.frombuffer(raw, dtype=dt, count=nframes * xdim * ydim, offset=_SPE_HEADER_BYTES)
    spectra = _frames_to_spectra(p, frames.reshape(nframes, ydim, xdim).astype(np.float64), rows)
    order, = struct.unpack_from("<b", raw, 3101)
    coeffs = np.array(struct.unpack_from("<6d", raw, 3263))
    valid, = struct.unpack_from("<b", raw, 3098)
    if not (0 < order <= 5) or not np.any(coeffs[1 : order + 1]):
        raise CalibrationError(
            f"{p}: SPE 2.x header has no wavelength calibration (polynoorder={order}, calib_valid={valid}, "
            f"polynocoeff={coeffs.tolist()})"
        )
    pix = np.arange(xdim, dtype=np.float64) + origin
    wl = np.polynomial.polynomial.polyval(pix, coeffs[: order + 1])
    time, attrs = _spe2_timing(p, raw, nframes, frame_time_s)
    attrs.update({
        "format": f"Princeton SPE {version:.1f}",
        "wavelength_source": f"SPE 2.x polynocoeff order {order} at pixels {origin}..{xdim - 1 + origin}",
    })
    attrs.update(_spe2_laser(raw))
    if dt.kind in "iu" and ydim == 1:  # integer pixels: the data type's ceiling is the ADC's at most
        attrs["saturation_counts"] = float(np.iinfo(dt).max)
        attrs["saturation_source"] = f"SPE 2.x data type {dt} ceiling"
    return movie_from_arrays(spectra, wl, time, attrs=attrs, source=str(p), bad_frames=bad_frames)


def _spe2_timing(p, raw, nframes: int, frame_time_s) -> tuple[np.ndarray | None, dict]:
    """Frame times of an SPE 2.x movie: frame index x (exposure ``exp_sec`` @10 +
    ``ReadoutTime`` @672, float32 in ms, WinSpec header), or ``frame_time_s`` when given."""
    exp_s, = struct.unpack_from("<f", raw, 10)
    readout_ms, = struct.unpack_from("<f", raw, 672)
    attrs = {"exposure_s": float(exp_s)}
    readout_ok = bool(np.isfinite(readout_ms) and 0 < readout_ms < 1e7)
    if readout_ok:
        attrs["readout_s"] = float(readout_ms) * 1e-3
    if frame_time_s is not None:
        period, tsrc = frame_time_s, f"frame index x frame_time_s ({frame_time_s:g} s, given)"
    elif nframes == 1:
        period, tsrc = 1.0, "single frame"
    elif np.isfinite(exp_s) and exp_s > 0 and readout_ok:
        period = float(exp_s) + float(readout_ms) * 1e-3
        tsrc = (f"frame index x (exposure exp_sec {exp_s:g} s + ReadoutTime {readout_ms:.4g} ms) "
                "from the SPE 2.x header; no per-frame time stamps")
    elif np.isfinite(exp_s) and exp_s > 0:
        period = float(exp_s)
        tsrc = f"frame index x exposure exp_sec ({exp_s:g} s); ReadoutTime not recorded (0), dead time unknown"
    else:
        period, tsrc = None, "frame index (SPE 2.x without exposure time)"
    if period is not None and nframes > 1:
        attrs["frame_period_s"] = float(period)
    attrs["time_source"] = tsrc
    if period is None:
        warnings.warn(f"{p}: SPE 2.x file has no timing; time axis is the frame index", stacklevel=4)
        return None, attrs
    return np.arange(nframes) * period, attrs


def _spe2_laser(raw) -> dict:
    """Excitation wavelength from ``xcalibration.laser_position`` (float64 @3311, nm),
    when it is a plausible wavelength (WinSpec writes 0 when none was set)."""
    laser, = struct.unpack_from("<d", raw, 3311)
    if np.isfinite(laser) and 150.0 < laser < 3000.0:
        return {"laser_nm": float(laser), "laser_source": "SPE 2.x header xcalibration.laser_position"}
    return {}


def _xml_strip_ns(root: ET.Element) -> ET.Element:
    for el in root.iter():
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    return root


def _read_spe3(p, raw, *, frame_time_s, rows, bad_frames):
    xml_offset, = struct.unpack_from("<Q", raw, 678)
    if xml_offset < _SPE_HEADER_BYTES or xml_offset >= len(raw):
        raise FileFormatError(f"{p}: SPE 3.0 XML footer offset {xml_offset} lies outside the file ({len(raw)} bytes): truncated?")
    try:
        root = _xml_strip_ns(ET.fromstring(raw[xml_offset:].rstrip(b"\x00")))
    except ET.ParseError as exc:
        raise FileFormatError(f"{p}: SPE 3.0 XML footer unreadable ({exc})") from exc
    frame_block = root.find("DataFormat/DataBlock[@type='Frame']")
    if frame_block is None:
        raise FileFormatError(f"{p}: SPE 3.0 XML has no DataFormat/DataBlock type='Frame'")
    regions = frame_block.findall("DataBlock[@type='Region']")
    if len(regions) != 1:
        raise FileFormatError(f"{p}: SPE 3.0 file has {len(regions)} regions of interest; exactly one is supported")
    region = regions[0]
    buf, px, layout = _spe3_frames(p, raw, frame_block, region, xml_offset)
    spectra = _frames_to_spectra(p, px.astype(np.float64), rows)
    wl = _spe3_wavelengths(p, root, region, layout["width"])
    timing = _spe3_camera_timing(root)
    time, tsrc = _spe3_times(p, root, buf, layout, frame_time_s, timing.get("frame_rate_hz"))
    attrs = {
        "format": "Princeton SPE 3.0",
        "time_source": tsrc,
        "wavelength_source": "SPE 3.0 XML Calibrations/WavelengthMapping",
        **timing,
        **_spe3_laser(root),
    }
    bits = _xml_float(root, ".//Cameras/Camera/Adc/BitDepth")
    if bits and int(region.get("height", 1)) == 1 and np.dtype(_SPE3_DTYPES[region.get("pixelFormat") or frame_block.get("pixelFormat")]).kind in "iu":
        attrs["saturation_counts"] = float(2 ** int(bits) - 1)
        attrs["saturation_source"] = f"SPE 3.0 XML Camera/Adc/BitDepth {int(bits)} bits"
    return movie_from_arrays(spectra, wl, time, attrs=attrs, source=str(p), bad_frames=bad_frames)


def _spe3_frames(p, raw, frame_block, region, xml_offset) -> tuple[np.ndarray, np.ndarray, dict]:
    """Raw frame bytes (n_frames, stride), pixels (n_frames, height, width) and the layout."""
    pix_fmt = region.get("pixelFormat") or frame_block.get("pixelFormat")
    if pix_fmt not in _SPE3_DTYPES:
        raise FileFormatError(f"{p}: SPE 3.0 pixelFormat {pix_fmt!r} unsupported ({sorted(_SPE3_DTYPES)})")
    dt = np.dtype(_SPE3_DTYPES[pix_fmt])
    try:
        nframes = int(frame_block.get("count"))
        stride = int(frame_block.get("stride"))
        fsize = int(frame_block.get("size"))
        width = int(region.get("width"))
        height = int(region.get("height"))
    except (TypeError, ValueError) as exc:
        raise FileFormatError(f"{p}: SPE 3.0 DataBlock attributes missing or invalid ({exc})") from exc
    if nframes <= 0 or width <= 0 or height <= 0:
        raise InputError(f"{p}: empty SPE 3.0 movie (frames={nframes}, width={width}, height={height})")
    if fsize < width * height * dt.itemsize or stride < fsize:
        raise FileFormatError(f"{p}: SPE 3.0 frame size {fsize}/stride {stride} inconsistent with {height}x{width} {dt}")
    need = _SPE_HEADER_BYTES + nframes * stride
    if xml_offset < need:
        raise FileFormatError(
            f"{p}: truncated SPE 3.0 data: {nframes} frames of stride {stride} need {need} bytes before the XML footer at {xml_offset}"
        )
    buf = np.frombuffer(raw, dtype=np.uint8, count=nframes * stride, offset=_SPE_HEADER_BYTES).reshape(nframes, stride)
    px = buf[:, : width * height * dt.itemsize].copy().view(dt).reshape(nframes, height, width)
    return buf, px, {"n_frames": nframes, "stride": stride, "frame_size": fsize, "width": width}


def _spe3_wavelengths(p, root, region, width: int) -> np.ndarray:
    """Wavelength of every pixel of the region (binned through its SensorMapping)."""
    wl_el = root.find("Calibrations/WavelengthMapping/Wavelength")
    err_el = root.find("Calibrations/WavelengthMapping/WavelengthError")
    if wl_el is not None and (wl_el.text or "").strip():
        wl = np.array([float(v) for v in wl_el.text.replace(";", ",").split(",") if v.strip()])
    elif err_el is not None and (err_el.text or "").strip():
        pairs = [s for s in err_el.text.split() if s.strip()]
        wl = np.array([float(s.split(",")[0]) for s in pairs])
    else:
        raise CalibrationError(f"{p}: SPE 3.0 XML footer has no Calibrations/WavelengthMapping/Wavelength")
    if wl.size == width:
        return wl
    smap = None
    cal_id = region.get("calibrations")
    for sm in root.findall("Calibrations/SensorMapping"):
        if cal_id is None or sm.get("id") in str(cal_id).split(","):
            smap = sm
            break
    if smap is None:
        raise CalibrationError(f"{p}: {wl.size} wavelengths for a {width}-pixel region and no SensorMapping")
    x0 = int(smap.get("x", 0))
    xw = int(smap.get("width", width))
    xb = int(smap.get("xBinning", 1))
    if x0 + xw > wl.size or xw // xb != width:
        raise CalibrationError(f"{p}: SensorMapping x={x0} width={xw} xBinning={xb} does not fit {wl.size} wavelengths / {width} px")
    return wl[x0 : x0 + xw].reshape(width, xb).mean(axis=1)


def _xml_float(root: ET.Element, path: str) -> float | None:
    """The number in the first element at ``path`` (None when absent or not a number)."""
    el = root.find(path)
    try:
        v = float((el.text or "").strip()) if el is not None else None
    except ValueError:
        return None
    return v if v is not None and np.isfinite(v) else None


def _spe3_camera_timing(root: ET.Element) -> dict:
    """Exposure (``ShutterTiming/ExposureTime``, ms) and frame rate (``Acquisition/FrameRate``,
    Hz) of the camera as LightField recorded them in the XML footer."""
    out = {}
    exp_ms = _xml_float(root, ".//Cameras/Camera/ShutterTiming/ExposureTime")
    rate = _xml_float(root, ".//Cameras/Camera/Acquisition/FrameRate")
    if exp_ms is not None and exp_ms > 0:
        out["exposure_s"] = exp_ms * 1e-3
    if rate is not None and rate > 0:
        out["frame_rate_hz"] = rate
    return out


def _spe3_laser(root: ET.Element) -> dict:
    """Excitation wavelength (nm) from a ``LaserLine`` / ``WavelengthLaserLine`` element
    that LightField marks relevant to the experiment (``relevance="False"`` ones are
    settings not in use, e.g. of the CSV export)."""
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag in ("LaserLine", "WavelengthLaserLine"):
            if el.get("relevance") == "False":
                continue
            try:
                v = float((el.text or "").strip())
            except ValueError:
                continue
            if 150.0 < v < 3000.0:
                return {"laser_nm": v, "laser_source": f"SPE 3.0 XML {el.tag}"}
    return {}


def _spe3_times(p, root, buf: np.ndarray, layout: dict, frame_time_s,
                frame_rate_hz: float | None = None) -> tuple[np.ndarray | None, str]:
    """Frame times from the ExposureStarted stamps, else ``frame_time_s``, else the
    camera's ``FrameRate``; and their source."""
    nframes, stride, fsize = layout["n_frames"], layout["stride"], layout["frame_size"]
    meta = root.find("MetaFormat/MetaBlock")
    if meta is not None and stride > fsize:
        off = fsize
        for child in list(meta):
            bits = int(child.get("bitDepth", 64))
            if child.tag == "TimeStamp" and child.get("event") == "ExposureStarted":
                res = float(child.get("resolution", 1e6))
                vals = buf[:, off : off + 8].copy().view("<i8").ravel().astype(np.float64) / res
                return vals - vals[0], "SPE 3.0 ExposureStarted time stamps"
            off += bits // 8
    if frame_time_s is not None:
        return np.arange(nframes) * frame_time_s, f"frame index x frame_time_s ({frame_time_s:g} s, given)"
    if nframes == 1:
        return np.zeros(1), "single frame"
    if frame_rate_hz:
        return (np.arange(nframes) / frame_rate_hz,
                f"frame index / FrameRate ({frame_rate_hz:.6g} Hz, SPE 3.0 XML); no per-frame time stamps")
    warnings.warn(f"{p}: SPE 3.0 file has no time stamps; time axis is the frame index", stacklevel=4)
    return None, "frame index (SPE 3.0 without time stamps)"


# ---------------------------------------------------------------------------- CSV


def _split(line: str, delim: str | None) -> list[str]:
    return [c.strip() for c in (line.split(delim) if delim else line.split())]


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def read_csv_movie(path, *, frame_time_s: float | None = None, bad_frames: str = "raise") -> xr.DataArray:
    """Read a text movie: first row wavelengths (nm), one row per frame, optional time column.

    Parameters
    ----------
    path : str or Path
    frame_time_s : float, optional
        Frame period when there is no time column.
    bad_frames : {"raise", "drop"}
        Empty cells and ``nan`` count as NaN (see :func:`validate_movie`).

    Returns
    -------
    movie : xarray.DataArray
    """
    p = Path(path)
    text = p.read_text(errors="replace")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise InputError(f"{p}: empty movie file")
    first = lines[0]
    delim = next((d for d in (",", ";", "\t") if d in first), None)
    head = _split(first, delim)
    rows = [_split(ln, delim) for ln in lines[1:]]
    if not rows:
        raise InputError(f"{p}: empty movie: a wavelength row but no frames")
    n_cols = {len(r) for r in rows}
    if len(n_cols) != 1:
        bad = [i + 2 for i, r in enumerate(rows) if len(r) != len(rows[0])]
        raise FileFormatError(f"{p}: rows have different numbers of cells {sorted(n_cols)} (first odd line {bad[0]})")
    ncol = n_cols.pop()
    has_time = (head and (head[0] == "" or not _is_number(head[0]))) or ncol == len(head) + 1
    wl_cells = head[1:] if (head and (head[0] == "" or not _is_number(head[0]))) else head
    try:
        wl = np.array([float(c) for c in wl_cells])
    except ValueError as exc:
        raise CalibrationError(f"{p}: first row must hold the wavelengths in nm ({exc})") from exc

    def num(c: str) -> float:
        if c == "" or c.lower() in ("nan", "na", "null"):
            return np.nan
        try:
            return float(c)
        except ValueError as exc:
            raise FileFormatError(f"{p}: non-numeric cell {c!r}") from exc

    table = np.array([[num(c) for c in r] for r in rows], dtype=np.float64)
    if has_time:
        time, counts = table[:, 0], table[:, 1:]
        tsrc = "CSV first column"
    else:
        counts = table
        time = None if frame_time_s is None else np.arange(len(rows)) * frame_time_s
        tsrc = "frame index x frame_time_s (given)" if frame_time_s is not None else None
        if time is None:
            warnings.warn(f"{p}: CSV has no time column; time axis is the frame index", stacklevel=2)
    if counts.shape[1] != wl.size:
        raise CalibrationError(f"{p}: {wl.size} wavelengths in the first row but {counts.shape[1]} values per frame")
    attrs = {"format": "CSV", "wavelength_source": "CSV first row"}
    if tsrc:
        attrs["time_source"] = tsrc
    return movie_from_arrays(counts, wl, time, attrs=attrs, source=str(p), bad_frames=bad_frames)


# ---------------------------------------------------------------------------- netCDF


def read_netcdf_movie(path, *, variable: str | None = None, bad_frames: str = "raise") -> xr.DataArray:
    """Read a movie from netCDF (simulator output or :func:`save_movie`).

    Parameters
    ----------
    path : str or Path
    variable : str, optional
        Data variable; default the only variable with dims (time, wavelength).
    bad_frames : {"raise", "drop"}

    Returns
    -------
    movie : xarray.DataArray
    """
    p = Path(path)
    try:
        ds = xr.open_dataset(p, engine="h5netcdf")
    except Exception:
        try:
            ds = xr.open_dataset(p)
        except Exception as exc:
            raise FileFormatError(f"{p}: cannot open as netCDF ({type(exc).__name__}: {exc})") from exc
    with ds:
        cands = [k for k, v in ds.data_vars.items() if set(v.dims) == {"time", "wavelength"}]
        if variable is not None:
            if variable not in ds.data_vars:
                raise FileFormatError(f"{p}: no variable {variable!r} (has {list(ds.data_vars)})")
            name = variable
        elif len(cands) == 1:
            name = cands[0]
        elif not cands:
            raise FileFormatError(f"{p}: no data variable with dims (time, wavelength) (variables: {dict(ds.sizes)})")
        else:
            pref = [c for c in ("counts", "movie", "intensity") if c in cands]
            if not pref:
                raise FileFormatError(f"{p}: several (time, wavelength) variables {cands}; pass variable=")
            name = pref[0]
        da = ds[name].load()
    attrs = dict(ds.attrs)
    attrs.update(da.attrs)
    attrs.setdefault("format", "netCDF")
    attrs.setdefault("time_source", "netCDF time coordinate")
    attrs.setdefault("wavelength_source", "netCDF wavelength coordinate")
    attrs["source"] = str(p)
    da.attrs = attrs
    return validate_movie(da, source=str(p), bad_frames=bad_frames)


# ---------------------------------------------------------------------------- Full_SMS


_FULLSMS_SPECTRA = "Spectra (counts\\s)"


def is_fullsms_file(path) -> bool:
    """True for an HDF5 file in the Full_SMS layout (root attribute ``# Particles``)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "# Particles" in f.attrs
    except (OSError, ValueError):
        return False


def read_fullsms_spectra(path, *, particle: int = 1, bad_frames: str = "raise") -> xr.DataArray:
    """Read the spectral series of one particle of a Full_SMS HDF5 file.

    Parameters
    ----------
    path : str or Path
    particle : int
        Particle number (the group ``Particle <n>``; Full_SMS counts from 1).
    bad_frames : {"raise", "drop"}

    Returns
    -------
    movie : xarray.DataArray
        Time from ``Spectra Abs. Times (s)`` (relative to the first frame; the absolute
        start is kept in ``attrs["time_origin_s"]``), wavelength increasing.

    Raises
    ------
    FileFormatError
        Not a Full_SMS file, no such particle, no spectra, or inconsistent attributes.
    """
    import h5py

    p = Path(path)
    try:
        f = h5py.File(p, "r")
    except (OSError, ValueError) as exc:
        raise FileFormatError(f"{p}: cannot open as HDF5 ({exc})") from exc
    with f:
        n_particles = f.attrs.get("# Particles")
        if n_particles is None:
            raise FileFormatError(f"{p}: not a Full_SMS file (no '# Particles' attribute)")
        group = f.get(f"Particle {int(particle)}")
        if group is None:
            raise FileFormatError(f"{p}: no group 'Particle {particle}' ({int(n_particles)} particles in the file)")
        if _FULLSMS_SPECTRA not in group:
            raise FileFormatError(f"{p}: Particle {particle} holds no spectra (no dataset {_FULLSMS_SPECTRA!r})")
        ds = group[_FULLSMS_SPECTRA]
        try:
            data = np.asarray(ds[()], dtype=np.float64)
        except OSError as exc:
            raise FileFormatError(f"{p}: spectra of Particle {particle} unreadable (truncated? {exc})") from exc
        wl = ds.attrs.get("Wavelengths")
        stamps = ds.attrs.get("Spectra Abs. Times (s)")
        exposure = ds.attrs.get("Exposure Time (s)")
    if wl is None:
        raise CalibrationError(f"{p}: Particle {particle} spectra have no 'Wavelengths' attribute")
    if data.ndim != 2:
        raise FileFormatError(f"{p}: spectra of Particle {particle} have shape {data.shape}, expected (frames, pixels)")
    attrs = {"format": "Full_SMS HDF5 spectra", "wavelength_source": "Full_SMS 'Wavelengths' attribute",
             "particle": int(particle), "units": "counts/s"}
    if exposure is not None:
        attrs["exposure_s"] = float(np.asarray(exposure).ravel()[0])
    time = None
    if stamps is not None and np.asarray(stamps).size == data.shape[0]:
        stamps = np.asarray(stamps, dtype=np.float64).ravel()
        time = stamps - stamps[0]
        attrs["time_origin_s"] = float(stamps[0])
        attrs["time_source"] = "Full_SMS 'Spectra Abs. Times (s)'"
    elif data.shape[0] == 1:
        time, attrs["time_source"] = np.zeros(1), "single frame"
    else:
        attrs["time_source"] = "frame index (Full_SMS file without spectra times)"
        warnings.warn(f"{p}: Full_SMS spectra have no frame times; time axis is the frame index", stacklevel=2)
    return movie_from_arrays(data, np.asarray(wl, dtype=np.float64), time, attrs=attrs, source=str(p),
                             bad_frames=bad_frames)

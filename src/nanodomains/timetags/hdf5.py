"""Photon time tags in HDF5: Photon-HDF5 and Full_SMS, read in slices with h5py.

Photon-HDF5
-----------
Ingargiola et al., "Photon-HDF5: an open file format for timestamp-based
single-molecule fluorescence experiments", Biophys. J. 110, 26 (2016); specification
photon-hdf5.readthedocs.io (0.4/0.5). Read here:

* ``/photon_data/timestamps`` (int) in ``timestamps_specs/timestamps_unit`` (s);
* ``/photon_data/detectors`` (channel per photon; absent: one detector, channel 0);
* ``/photon_data/nanotimes`` (TCSPC micro times) in ``nanotimes_specs/tcspc_unit`` (s);
* ``/setup/laser_repetition_rates`` (0.5; all equal) or
  ``/photon_data/measurement_specs/laser_repetition_rate`` (0.4), Hz: the sync period;
* ``/acquisition_duration`` (s).

When the timestamps unit equals the laser period (files converted from T3 data, where
the macro time counts syncs) the photon time is ``timestamp * unit + nanotime``, as for
PTU; otherwise the timestamp alone (a clock of its own). Multi-spot files
(``photon_data0``, ``photon_data1``, ...) are refused with the list of spots (pass
``spot``).

Full_SMS
--------
The HDF5 files of the Full_SMS single-particle software (BioPhysicsUP/Full_SMS, file
specification in its docs): groups ``Particle N`` (1-based) holding ``Absolute Times
(ns)`` (uint64, photon arrival times) and ``Micro Times (s)``, which despite its name
holds nanoseconds (Full_SMS reads it as ns; the sample file's values are 20-47). The
micro-time bin is not stored: it is the smallest spacing of distinct micro times
(Full_SMS's own rule), and the sync period is not stored either, so the stream has
``sync_period_ps = None`` and the reader says so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from nanodomains.errors import FileFormatError, InputError
from nanodomains.timetags.stream import PhotonStream, StreamChecks

__all__ = ["iter_photon_hdf5_chunks", "iter_fullsms_chunks", "fullsms_particles"]


def _open(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except Exception as exc:
        raise FileFormatError(f"{path}: unreadable HDF5 file ({exc})") from exc


def _scalar(group, key, path, default=None):
    if key not in group:
        return default
    try:
        value = group[key][()]
    except Exception as exc:
        raise FileFormatError(f"{path}: cannot read {group.name}/{key} ({exc})") from exc
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value


def _positive(value, name, path) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise FileFormatError(f"{path}: {name} = {value!r} is not a number") from exc
    if not (np.isfinite(v) and v > 0):
        raise FileFormatError(f"{path}: {name} = {v!r} must be finite and > 0")
    return v


def _slices(n: int, chunk: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, chunk):
        yield start, min(n, start + chunk)


def _read(ds, lo, hi, path):
    try:
        return ds[lo:hi]
    except Exception as exc:
        raise FileFormatError(f"{path}: cannot read {ds.name}[{lo}:{hi}] ({exc})") from exc


def iter_photon_hdf5_chunks(path: str | os.PathLike, *, chunk_records: int = 1 << 22,
                            spot: int | None = None) -> Iterator[PhotonStream]:
    """Photon chunks of a Photon-HDF5 file (single spot, or the given ``spot``).

    Raises
    ------
    FileFormatError
        Missing timestamps or units, non-positive units, arrays of different lengths,
        timestamps going backwards.
    """
    path = Path(path)
    if chunk_records < 1:
        raise InputError(f"chunk_records must be >= 1, got {chunk_records}")
    with _open(path) as f:
        spots = sorted(k for k in f.keys() if k.startswith("photon_data"))
        if spot is None:
            if spots != ["photon_data"]:
                raise FileFormatError(f"{path}: multi-spot Photon-HDF5 ({', '.join(spots)}): choose a spot")
            name = "photon_data"
        else:
            name = f"photon_data{int(spot)}"
            if name not in f:
                raise FileFormatError(f"{path}: no group {name} (has {', '.join(spots)})")
        pd = f[name]
        if "timestamps" not in pd:
            raise FileFormatError(f"{path}: {name} lacks 'timestamps'")
        ts = pd["timestamps"]
        unit_s = _positive(_scalar(pd, "timestamps_specs/timestamps_unit", path), "timestamps_unit", path)
        det = pd["detectors"] if "detectors" in pd else None
        nano = pd["nanotimes"] if "nanotimes" in pd else None
        n = ts.shape[0]
        for key, ds in (("detectors", det), ("nanotimes", nano)):
            if ds is not None and ds.shape != (n,):
                raise FileFormatError(f"{path}: {name}/{key} has shape {ds.shape}, timestamps ({n},)")
        rate = _scalar(pd, "measurement_specs/laser_repetition_rate", path)  # Photon-HDF5 0.4
        if rate is None and "setup/laser_repetition_rates" in f:  # 0.5: one rate per laser
            rates = np.atleast_1d(_scalar(f, "setup/laser_repetition_rates", path))
            if rates.size > 1 and not np.allclose(rates, rates[0], rtol=1e-9):
                raise FileFormatError(f"{path}: several laser repetition rates {rates.tolist()}: no single period")
            rate = rates[0] if rates.size else None
        period_ps = 1e12 / _positive(rate, "laser_repetition_rate", path) if rate is not None else None
        res_ps = None
        warnings = []
        if nano is not None:
            res_ps = _positive(_scalar(pd, "nanotimes_specs/tcspc_unit", path), "tcspc_unit", path) * 1e12
            if period_ps is None:
                warnings.append(f"{path}: no laser_repetition_rate: sync period unknown")
        micro_in_macro = period_ps is not None and abs(unit_s * 1e12 - period_ps) <= 1e-6 * period_ps
        duration = _scalar(f, "acquisition_duration", path)
        checks = StreamChecks(path, period_ps, res_ps or unit_s * 1e12)
        last = np.iinfo(np.int64).min
        for lo, hi in _slices(n, chunk_records):
            t_units = _read(ts, lo, hi, path).astype(np.int64)
            if t_units.size and (t_units[0] < last or np.any(np.diff(t_units) < 0)):
                raise FileFormatError(f"{path}: timestamps go backwards near photon {lo}")
            last = int(t_units[-1]) if t_units.size else last
            ch = _read(det, lo, hi, path) if det is not None else np.zeros(hi - lo, np.uint8)
            if ch.size and (int(ch.min()) < 0 or int(ch.max()) > 255):
                raise FileFormatError(f"{path}: detector numbers outside 0-255")
            t = np.rint(t_units.astype(np.float64) * unit_s * 1e12).astype(np.int64)
            micro = None
            if nano is not None:
                micro = np.rint(_read(nano, lo, hi, path).astype(np.float64) * res_ps).astype(np.int64)
                checks.micro_range(micro)
                if micro_in_macro:
                    t = t + micro
            end_s = float(duration) if duration is not None else (t[-1] * 1e-12 if t.size else 0.0)
            yield PhotonStream(times_ps=t, channels=ch.astype(np.uint8), microtimes_ps=micro,
                               resolution_ps=res_ps or unit_s * 1e12, sync_period_ps=period_ps if nano is not None
                               else None, duration_s=max(end_s, 0.0), source=str(path),
                               warnings=warnings + (checks.warnings(end_s, None) if hi == n else []))
        if n == 0:
            raise FileFormatError(f"{path}: holds no photons")


def fullsms_particles(path: str | os.PathLike) -> list[str]:
    """Names of the particle groups of a Full_SMS file ("Particle 1", ...)."""
    path = Path(path)
    with _open(path) as f:
        names = [k for k in f.keys() if k.startswith("Particle ")]
    return sorted(names, key=lambda k: int(k.split()[-1]) if k.split()[-1].isdigit() else 0)


def _fullsms_resolution_ps(micro_ns: np.ndarray, path) -> float:
    u = np.unique(micro_ns)
    d = np.diff(u)
    d = d[d > 0]
    if d.size == 0:
        raise FileFormatError(f"{path}: cannot derive the micro-time bin (fewer than two distinct micro times)")
    return float(d.min()) * 1000.0


def iter_fullsms_chunks(path: str | os.PathLike, *, chunk_records: int = 1 << 22,
                        particle: int = 1) -> Iterator[PhotonStream]:
    """Photon chunks of one particle of a Full_SMS HDF5 file.

    Parameters
    ----------
    particle : int
        1-based particle number (``Particle N`` group).
    """
    path = Path(path)
    names = fullsms_particles(path)
    name = f"Particle {int(particle)}"
    if name not in names:
        raise FileFormatError(f"{path}: no group '{name}' (has {', '.join(names) or 'no particles'})")
    with _open(path) as f:
        g = f[name]
        for key in ("Absolute Times (ns)", "Micro Times (s)"):
            if key not in g:
                raise FileFormatError(f"{path}: {name} lacks '{key}'")
        abs_ds, micro_ds = g["Absolute Times (ns)"], g["Micro Times (s)"]
        n = abs_ds.shape[0]
        if micro_ds.shape != (n,):
            raise FileFormatError(f"{path}: {name}: {n} absolute times but {micro_ds.shape} micro times")
        if n == 0:
            raise FileFormatError(f"{path}: {name} holds no photons")
        res_ps = _fullsms_resolution_ps(_read(micro_ds, 0, min(n, 1 << 20), path), path)
        warnings = [f"{path}: Full_SMS files do not record the sync period; micro-time bin {res_ps:.5g} ps "
                    "from the smallest spacing of micro times"]
        if len(names) > 1:
            warnings.append(f"{path}: the file holds {len(names)} particles; read {name}")
        checks = StreamChecks(path, None, res_ps)
        last = np.iinfo(np.int64).min
        for lo, hi in _slices(n, chunk_records):
            t_ns = _read(abs_ds, lo, hi, path)
            if t_ns.size and int(t_ns.max()) > (np.iinfo(np.int64).max // 1000):
                raise FileFormatError(f"{path}: absolute times beyond the int64 ps range")
            t = t_ns.astype(np.int64) * 1000
            if t.size and (t[0] < last or np.any(np.diff(t) < 0)):
                raise FileFormatError(f"{path}: absolute times go backwards near photon {lo}")
            last = int(t[-1])
            m_ns = _read(micro_ds, lo, hi, path).astype(np.float64)
            if not np.all(np.isfinite(m_ns)):
                raise FileFormatError(f"{path}: non-finite micro times near photon {lo}")
            micro = np.rint(m_ns * 1000.0).astype(np.int64)
            checks.micro_range(micro)
            yield PhotonStream(times_ps=t, channels=np.zeros(t.size, np.uint8), microtimes_ps=micro,
                               resolution_ps=res_ps, sync_period_ps=None, duration_s=last * 1e-12,
                               source=str(path), warnings=list(warnings))

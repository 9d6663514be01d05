"""The project's photon npz: writing, and reading chunk by chunk (bounded memory).

Keys: ``times_ps`` (int64), ``channels`` (uint8), optional ``microtimes_ps`` (int64),
and the 0-d scalars ``resolution_ps``, ``duration_s``, optional ``sync_period_ps``
(absent for T2/CW streams) and ``source``.

:func:`iter_npz_chunks` never loads an array whole: each member ``.npy`` of the zip is
opened as a stream (decompressed on the fly when the archive is compressed), its
header parsed by :mod:`numpy.lib.format`, and ``chunk_records`` elements read at a
time, so 1e8 photons are read in ~100 MB rather than 2.6-3.3 GB (issue 18). Each chunk
is checked: times sorted (also across chunks), micro times in ``[0, sync period]``,
channels and lengths consistent.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from nanodomains.errors import FileFormatError, InputError
from nanodomains.files import atomic_path
from nanodomains.timetags.stream import PhotonStream, StreamChecks, concat_chunks

__all__ = ["write_photons_npz", "read_photons_npz", "iter_npz_chunks"]

_ARRAYS = {"times_ps": np.int64, "channels": np.uint8, "microtimes_ps": np.int64}
_SCALARS = ("resolution_ps", "duration_s", "sync_period_ps", "source")


def write_photons_npz(stream: PhotonStream, path: str | os.PathLike, *, compressed: bool = True) -> Path:
    """Write a :class:`PhotonStream` to the project npz format.

    Keys: ``times_ps`` (int64), ``channels`` (uint8), ``microtimes_ps`` (int64, T3
    only), ``resolution_ps``, ``duration_s``, ``sync_period_ps`` (only when set), and
    ``source`` (str), all scalars as 0-d arrays. Written atomically.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"{path}: photon streams are written as .npz")
    arrays: dict[str, np.ndarray] = {
        "times_ps": stream.times_ps.astype(np.int64, copy=False),
        "channels": stream.channels.astype(np.uint8, copy=False),
        "resolution_ps": np.float64(stream.resolution_ps),
        "duration_s": np.float64(stream.duration_s),
        "source": np.str_(stream.source),
    }
    if stream.microtimes_ps is not None:
        arrays["microtimes_ps"] = stream.microtimes_ps.astype(np.int64, copy=False)
    if stream.sync_period_ps is not None:
        arrays["sync_period_ps"] = np.float64(stream.sync_period_ps)
    with atomic_path(path) as tmp:
        (np.savez_compressed if compressed else np.savez)(tmp, **arrays)
    return path


class _NpyStream:
    """One ``.npy`` member of a zip, read ``count`` elements at a time."""

    def __init__(self, zf: zipfile.ZipFile, name: str, path: Path):
        self.name, self.path = name, path
        try:
            self.fh = zf.open(name)
            version = np.lib.format.read_magic(self.fh)
            reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = reader(self.fh)
        except Exception as exc:
            raise FileFormatError(f"{path}: member {name} is not a readable .npy array ({exc})") from exc
        if dtype.hasobject:
            raise FileFormatError(f"{path}: member {name} holds Python objects; refused")
        self.shape, self.dtype, self.fortran = shape, dtype, fortran
        self.size = int(np.prod(shape)) if shape else 1

    def read(self, count: int) -> np.ndarray:
        nbytes = count * self.dtype.itemsize
        try:
            buf = self.fh.read(nbytes)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise FileFormatError(f"{self.path}: member {self.name} is corrupt ({exc})") from exc
        if len(buf) != nbytes:
            raise FileFormatError(f"{self.path}: member {self.name} truncated ({len(buf)} of {nbytes} bytes)")
        return np.frombuffer(buf, dtype=self.dtype).copy()

    def finish(self) -> None:
        """Read to the member's end, where zipfile checks its CRC-32 (corruption is caught)."""
        try:
            rest = self.fh.read()
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise FileFormatError(f"{self.path}: member {self.name} is corrupt ({exc})") from exc
        if rest:
            raise FileFormatError(f"{self.path}: member {self.name} holds {len(rest)} bytes beyond its array")

    def scalar(self):
        return self.read(1).reshape(self.shape)[()] if self.shape == () else None

    def close(self):
        self.fh.close()


def _open_npz(path: Path) -> tuple[zipfile.ZipFile, dict[str, str]]:
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    try:
        zf = zipfile.ZipFile(path)
        members = {n[:-4]: n for n in zf.namelist() if n.endswith(".npy")}
    except Exception as exc:
        raise FileFormatError(f"{path}: not a readable npz archive ({exc})") from exc
    for key in ("times_ps", "channels", "resolution_ps", "duration_s"):
        if key not in members:
            zf.close()
            raise FileFormatError(f"{path}: photon npz lacks '{key}' (has {sorted(members)})")
    return zf, members


def _scalars(zf, members, path) -> dict:
    out = {}
    for key in _SCALARS:
        if key in members:
            s = _NpyStream(zf, members[key], path)
            try:
                if s.shape != ():
                    raise FileFormatError(f"{path}: '{key}' must be a scalar, got shape {s.shape}")
                out[key] = s.read(1)[0] if s.dtype.kind != "U" else str(s.read(1)[0])
                s.finish()
            finally:
                s.close()
    return out


def iter_npz_chunks(path: str | os.PathLike, *, chunk_records: int = 1 << 22) -> Iterator[PhotonStream]:
    """Chunks of a project photon npz, read without loading the arrays whole.

    Raises
    ------
    FileFormatError
        Missing keys, wrong dtypes or shapes, a truncated archive, unsorted times or
        micro times outside the sync period.
    """
    path = Path(path)
    if chunk_records < 1:
        raise InputError(f"chunk_records must be >= 1, got {chunk_records}")
    zf, members = _open_npz(path)
    streams: dict[str, _NpyStream] = {}
    try:
        sc = _scalars(zf, members, path)
        for key, dtype in _ARRAYS.items():
            if key in members:
                s = streams[key] = _NpyStream(zf, members[key], path)
                if s.dtype != np.dtype(dtype) or len(s.shape) != 1 or s.fortran:
                    raise FileFormatError(f"{path}: '{key}' must be a 1-D {np.dtype(dtype)} array, "
                                          f"got {s.dtype} of shape {s.shape}")
        n = streams["times_ps"].size
        for key, s in streams.items():
            if s.size != n:
                raise FileFormatError(f"{path}: '{key}' has {s.size} values, 'times_ps' {n}")
        try:
            resolution = float(sc["resolution_ps"])
            duration = float(sc["duration_s"])
            sync = float(sc["sync_period_ps"]) if "sync_period_ps" in sc else None
        except (TypeError, ValueError) as exc:
            raise FileFormatError(f"{path}: scalar attributes not numeric ({exc})") from exc
        source = sc.get("source", str(path))
        checks = StreamChecks(path, sync, resolution)
        last_t = np.iinfo(np.int64).min
        done = 0
        while True:
            count = min(chunk_records, n - done)
            t = streams["times_ps"].read(count)
            ch = streams["channels"].read(count)
            micro = streams["microtimes_ps"].read(count) if "microtimes_ps" in streams else None
            if t.size and (t[0] < last_t or np.any(np.diff(t) < 0)):
                raise FileFormatError(f"{path}: 'times_ps' is not sorted in time (near photon {done})")
            if micro is not None:
                checks.micro_range(micro)
                if sync is not None and checks.n_micro_outside:
                    raise FileFormatError(
                        f"{path}: {checks.n_micro_outside} micro times beyond the sync period {sync:g} ps "
                        f"(max {checks.max_micro_ps} ps): not a valid T3 stream")
            if t.size:
                last_t = int(t[-1])
            done += count
            if done >= n:
                for s in streams.values():
                    s.finish()  # CRC-32 of every member checked before the last chunk is handed out
            try:
                chunk = PhotonStream(times_ps=t, channels=ch, microtimes_ps=micro, resolution_ps=resolution,
                                     sync_period_ps=sync, duration_s=duration, source=source)
            except InputError as exc:
                raise FileFormatError(f"{path}: {exc}") from exc
            yield chunk
            if done >= n:
                break
    finally:
        for s in streams.values():
            s.close()
        zf.close()


def read_photons_npz(path: str | os.PathLike) -> PhotonStream:
    """Read a photon stream written by :func:`write_photons_npz` (all of it, in memory).

    Raises
    ------
    FileFormatError
        Missing keys, wrong dtypes, unreadable or truncated archive.
    """
    return concat_chunks(list(iter_npz_chunks(path, chunk_records=1 << 24)))

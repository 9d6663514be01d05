r"""Photon time tags: the :class:`PhotonStream` type and every file format it is read from.

This is the one home of photon-stream I/O: the photon simulator
(:mod:`nanodomains.optics.photons`) writes its streams with :func:`write_ptu` and
:func:`write_photons_npz`, and the analyses (:mod:`nanodomains.spectroscopy.g2`,
:mod:`nanodomains.spectroscopy.lifetime`) read them with :func:`read_photons` and
:func:`iter_photon_chunks`. It imports only ground-floor modules.

Photon streams
--------------
A photon stream is what a time-tagging (TTTR) module records behind a Hanbury Brown
and Twiss (HBT) setup: for every detected photon a macro time ``t`` (int64, ps, from
the start of the acquisition), the detector channel ``c`` (uint8) and, in T3 mode,
the micro time ``m`` (int64, ps) since the last excitation (sync) pulse. In T3 mode
the macro time is reconstructed as

    t = n_sync * T_sync + m,

with ``n_sync`` the sync counter and ``T_sync`` the sync period; in T2 mode ``t`` is
the time tag itself (``resolution_ps`` per unit).

Formats (one module each)
-------------------------
==================================  =================  ==========================================
format                              module             decoded by
==================================  =================  ==========================================
PicoQuant PTU (T2/T3, any device)   :mod:`.ptu`        ptufile (C. Gohlke), chunked here
HydraHarp HT2/HT3, PicoHarp         :mod:`.picoquant`  this package (numpy, vectorised): phconvert
PT2/PT3, TimeHarp T3R                                  reads HT3 v1.0 only, tttrlib no HT2/T3R
Becker & Hickl SPC-130/132/830      :mod:`.bh`         this package (checked against tttrlib)
Photon-HDF5 0.4/0.5                 :mod:`.hdf5`       h5py, sliced
Full_SMS HDF5                       :mod:`.hdf5`       h5py, sliced
project npz                         :mod:`.npz`        zip members streamed (never loaded whole)
==================================  =================  ==========================================

The type of a file is decided by its magic bytes and header (:func:`identify_file`),
never by falling through to a text reader. Every reader streams chunks of bounded
memory and verifies what it reads (:mod:`.stream`): record counts against the file
size, time tags that never go backwards within a channel, micro times within the
sync period, records of undefined type; doubts are warnings carried by the chunks
(``PhotonStream.warnings``), impossible data is a :class:`~nanodomains.errors.FileFormatError`.

Examples
--------
>>> import numpy as np, tempfile, pathlib
>>> s = PhotonStream(np.array([5, 900, 1200]), np.array([0, 1, 0]), duration_s=1e-9)
>>> s.channel_counts()
{0: 2, 1: 1}
>>> path = pathlib.Path(tempfile.mkdtemp()) / "tags.ptu"
>>> back = read_photons(write_ptu(s, path))
>>> back.times_ps.tolist(), back.channels.tolist()
([5, 900, 1200], [0, 1, 0])
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from nanodomains.errors import FileFormatError
from nanodomains.timetags.blocks import RecordCounts
from nanodomains.timetags.detect import FileKind, identify_file
from nanodomains.timetags.npz import iter_npz_chunks, read_photons_npz, write_photons_npz
from nanodomains.timetags.ptu import (
    encode_hydraharp_t2, encode_hydraharp_t3, iter_ptu_chunks, ptu_facts, read_ptu, write_ptu,
)
from nanodomains.timetags.stream import PhotonStream, concat_chunks

__all__ = [
    "PhotonStream",
    "FileKind",
    "identify_file",
    "read_photons",
    "iter_photon_chunks",
    "read_ptu",
    "iter_ptu_chunks",
    "write_ptu",
    "encode_hydraharp_t2",
    "encode_hydraharp_t3",
    "read_photons_npz",
    "write_photons_npz",
    "photon_file_summary",
]


def iter_photon_chunks(path: str | os.PathLike, *, chunk_records: int = 1 << 22,
                       counts: RecordCounts | None = None) -> Iterator[PhotonStream]:
    """Chunks of bounded memory of any photon time-tag file, by its magic bytes.

    Parameters
    ----------
    path : path-like
        PTU, HT2, HT3, PT2, PT3, T3R, SPC, Photon-HDF5, Full_SMS HDF5 or project npz.
    chunk_records : int
        Records (or photons) per chunk.
    counts : RecordCounts, optional
        Filled with record tallies by the 32-bit record readers (legacy PicoQuant, SPC).

    Yields
    ------
    PhotonStream
        Time-ordered chunks; the last one carries every warning of the reader.

    Raises
    ------
    FileFormatError
        ``unsupported format: ...`` for files that are not photon time tags, and any
        corruption the reader detects.
    """
    path = Path(path)
    kind = identify_file(path)
    if kind.kind == "ptu":
        yield from iter_ptu_chunks(path, chunk_records=chunk_records)
    elif kind.kind in ("ht2", "ht3", "pt2", "pt3", "t3r"):
        from nanodomains.timetags.picoquant import iter_legacy_chunks

        yield from iter_legacy_chunks(path, chunk_records=chunk_records, counts=counts)
    elif kind.kind == "spc":
        from nanodomains.timetags.bh import iter_spc_chunks

        yield from iter_spc_chunks(path, chunk_records=chunk_records, counts=counts)
    elif kind.kind in ("photon-hdf5", "fullsms"):
        from nanodomains.timetags.hdf5 import iter_fullsms_chunks, iter_photon_hdf5_chunks

        reader = iter_photon_hdf5_chunks if kind.kind == "photon-hdf5" else iter_fullsms_chunks
        yield from reader(path, chunk_records=chunk_records)
    elif kind.kind == "npz":
        yield from iter_npz_chunks(path, chunk_records=chunk_records)
    else:
        raise FileFormatError(f"{path}: unsupported format: {kind.description}, not photon time tags "
                              "(decay histograms are read by `photons lifetime`)")


def read_photons(path: str | os.PathLike, *, chunk_records: int = 1 << 22) -> PhotonStream:
    """Read a whole photon file into memory (any format of :func:`iter_photon_chunks`)."""
    return concat_chunks(list(iter_photon_chunks(path, chunk_records=chunk_records)))


def photon_file_summary(path: str | os.PathLike, *, chunk_records: int = 1 << 22) -> dict:
    """Facts about a photon file (format, mode, photons per channel, rates, duration, warnings).

    Every format is scanned chunk by chunk, so memory stays bounded by
    ``chunk_records`` whatever the file size.
    """
    path = Path(path)
    kind = identify_file(path)
    counts: dict[int, int] = {}
    tallies = RecordCounts()
    n = 0
    last = None
    for chunk in iter_photon_chunks(path, chunk_records=chunk_records, counts=tallies):
        for c, k in chunk.channel_counts().items():
            counts[c] = counts.get(c, 0) + k
        n += chunk.n_photons
        last = chunk
    summary = {"format": kind.description, **last.summary()}
    dur = last.duration_s
    summary.update(
        source=str(path),
        n_photons=n,
        channels=counts,
        rates_hz={c: k / dur if dur > 0 else float("nan") for c, k in counts.items()},
    )
    if tallies.records:
        summary.update({f"records_{k}": v for k, v in tallies.as_dict().items() if v})
    if kind.kind == "ptu":
        summary.update(ptu_facts(path))
    return summary

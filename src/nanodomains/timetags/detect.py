r"""What a photon or decay file is, decided from its bytes (magic and header), not its name.

:func:`identify_file` reads the first bytes of a file and returns a :class:`FileKind`.
The file name's suffix is used only where a format has no magic at all (Becker & Hickl
SPC: the first 32-bit word holds the macro-time clock, checked for plausibility) and to
tell a text file meant as a decay histogram from other text. An unknown binary file is
``unsupported format: <what it looks like>``; it never falls through to a text reader.

Signatures
----------
=====================  ==========================================================
``PQTTTR``             PicoQuant unified TTTR (PTU), any device
``PQHISTO``            PicoQuant unified histogram (PHU)
``HydraHarp``          legacy HydraHarp file; binary header's measurement mode:
                       0 histogram (HHD), 2 T2 (HT2), 3 T3 (HT3)
``PicoHarp 300``       legacy PicoHarp file: 0 histogram (PHD), 2 T2 (PT2), 3 T3 (PT3)
``TimeHarp 200``       legacy TimeHarp 200: T3R time tags (format 5.0/6.0) or THD
                       histogram (by the header's measurement mode)
``\x89HDF\r\n\x1a\n``  HDF5: Photon-HDF5 (``/photon_data``), Full_SMS (``Particle N``
                       groups with photon times), else unsupported
``PK\x03\x04``         zip: the project's photon npz
=====================  ==========================================================

Legacy PicoQuant headers are described in PicoQuant's file-format demos
(github.com/PicoQuant/PicoQuant-Time-Tagged-File-Format-Demos, folder ``legacy``);
Photon-HDF5 in Ingargiola et al., Biophys. J. 110, 26 (2016); Full_SMS in its file
specification (github.com/BioPhysicsUP/Full_SMS, docs).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from nanodomains.errors import FileFormatError

__all__ = ["FileKind", "identify_file", "TIME_TAG_KINDS", "HISTOGRAM_KINDS"]

#: kinds holding photon time tags (read by :func:`nanodomains.timetags.iter_photon_chunks`)
TIME_TAG_KINDS = ("ptu", "ht2", "ht3", "pt2", "pt3", "t3r", "spc", "photon-hdf5", "fullsms", "npz")
#: kinds holding decay histograms (read by :func:`nanodomains.spectroscopy.photons_io.read_decay`)
HISTOGRAM_KINDS = ("phu", "phd", "hhd", "thd", "text")

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_LEGACY_IDENTS = {b"HydraHarp": "HydraHarp", b"PicoHarp 300": "PicoHarp", b"TimeHarp 200": "TimeHarp"}
# offset of MeasurementMode in the legacy binary header (after the 328-byte text header)
_MODE_OFFSET = {"HydraHarp": 328 + 12, "PicoHarp": 328 + 20, "TimeHarp": 304 + 24}
_MODE_KINDS = {
    "HydraHarp": {0: "hhd", 2: "ht2", 3: "ht3"},
    "PicoHarp": {0: "phd", 2: "pt2", 3: "pt3"},
    "TimeHarp": {0: "thd", 2: "t3r"},  # 1 (continuous mode, THC) has no reader
}


@dataclass(frozen=True)
class FileKind:
    """What :func:`identify_file` found.

    Attributes
    ----------
    kind : str
        One of :data:`TIME_TAG_KINDS` or :data:`HISTOGRAM_KINDS`.
    description : str
        Human-readable name, e.g. "PicoQuant HydraHarp HT3 (format 2.0)".
    version : str
        Format version from the header ("" when the format has none).
    """

    kind: str
    description: str
    version: str = ""

    @property
    def is_time_tags(self) -> bool:
        """True for photon time-tag files."""
        return self.kind in TIME_TAG_KINDS

    @property
    def is_histogram(self) -> bool:
        """True for decay-histogram files (binary or text)."""
        return self.kind in HISTOGRAM_KINDS


def _text_like(head: bytes) -> bool:
    if not head or b"\0" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = head.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
            return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable >= 0.98 * len(text)


def _looks_like(head: bytes, size: int) -> str:
    """A short description of an unrecognised file for the error message."""
    if size == 0:
        return "empty file"
    if not head.strip(b"\0"):
        return f"all {size} bytes zero" if size <= len(head) else f"first {len(head)} bytes all zero"
    printable = bytes(b if 32 <= b < 127 else 46 for b in head[:16]).decode("ascii")
    return f"binary file of {size} bytes starting {head[:16].hex(' ')} ('{printable}')"


def _legacy_kind(head: bytes, family: str, path: Path) -> FileKind:
    version = head[16:22].split(b"\0")[0].decode("ascii", "replace").strip()
    off = _MODE_OFFSET[family]
    if len(head) < off + 4:
        raise FileFormatError(f"{path}: truncated {family} header ({len(head)} bytes)")
    mode = struct.unpack_from("<i", head, off)[0]
    kinds = _MODE_KINDS[family]
    kind = kinds.get(mode)
    if kind is None:
        raise FileFormatError(
            f"{path}: unsupported format: {family} file (format {version}) with measurement mode {mode} "
            f"(readable modes: {', '.join(f'{m} {k.upper()}' for m, k in kinds.items())})")
    return FileKind(kind, f"PicoQuant {family} {kind.upper()} (format {version})", version)


def _hdf5_kind(path: Path) -> FileKind:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            keys = list(f.keys())
            if "photon_data" in f or any(k.startswith("photon_data") for k in keys):
                version = f.attrs.get("format_version", b"")
                version = version.decode() if isinstance(version, bytes) else str(version)
                return FileKind("photon-hdf5", f"Photon-HDF5 {version}".strip(), version)
            particles = [k for k in keys if k.startswith("Particle ")]
            if particles and "Absolute Times (ns)" in f[particles[0]]:
                version = f.attrs.get("Version", "")
                version = version.decode() if isinstance(version, bytes) else str(version)
                return FileKind("fullsms", f"Full_SMS HDF5 {version}".strip(), version)
    except FileFormatError:
        raise
    except Exception as exc:
        raise FileFormatError(f"{path}: unreadable HDF5 file ({exc})") from exc
    raise FileFormatError(f"{path}: unsupported format: HDF5 file with groups {keys[:8]} "
                          "(neither Photon-HDF5 nor Full_SMS)")


def _spc_plausible(head: bytes, size: int) -> bool:
    """B&H SPC-130/132/150/160/830 FIFO file: word 0 = macro clock in 0.1 ns (bits 0-23)."""
    if size < 8 or size % 4:
        return False
    word = struct.unpack_from("<I", head, 0)[0]
    clock_01ns = word & 0x00FFFFFF
    return 1 <= clock_01ns <= 10_000_000  # 0.1 ns .. 1 ms


def identify_file(path: str | os.PathLike) -> FileKind:
    """The kind of a photon or decay file, from its magic bytes and header.

    Parameters
    ----------
    path : path-like
        File to look at.

    Returns
    -------
    FileKind

    Raises
    ------
    FileFormatError
        Missing file, a directory, or ``unsupported format: <what it looks like>``.
    """
    path = Path(path)
    if path.is_dir():
        raise FileFormatError(f"{path}: is a directory, expected a photon or decay file")
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"PQTTTR"):
        return FileKind("ptu", "PicoQuant unified TTTR (PTU)", head[8:16].split(b"\0")[0].decode("ascii", "replace"))
    if head.startswith(b"PQHISTO"):
        return FileKind("phu", "PicoQuant unified histogram (PHU)", head[8:16].split(b"\0")[0].decode("ascii", "replace"))
    for ident, family in _LEGACY_IDENTS.items():
        if head.startswith(ident):
            return _legacy_kind(head, family, path)
    if head.startswith(_HDF5_MAGIC):
        return _hdf5_kind(path)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return FileKind("npz", "project photon npz (zip archive)")
    suffix = path.suffix.lower()
    if suffix == ".spc":
        if _spc_plausible(head, size):
            return FileKind("spc", "Becker & Hickl SPC-130/132 FIFO")
        raise FileFormatError(f"{path}: unsupported format: .spc name but not a B&H SPC-130/132 FIFO file "
                              f"({_looks_like(head, size)})")
    if suffix == ".sdt":
        raise FileFormatError(f"{path}: unsupported format: Becker & Hickl SDT histogram file "
                              "(no reader: no test file was available)")
    if _text_like(head):
        return FileKind("text", "text")
    raise FileFormatError(f"{path}: unsupported format: {_looks_like(head, size)}")

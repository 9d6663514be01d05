"""The STEM / EDS truth sidecar: its file format, reading and writing.

A simulator (:mod:`nanodomains.stem.simulate`, the EDS and multislice simulators)
builds the truth (:func:`nanodomains.stem.simulate.build_truth`); this module only
encodes, writes and reads it, so that validation and users can read a truth without
importing a simulator. The sidecar (``NAME.truth.json`` beside the image, schema
``nanodomains.stem.truth/2``) holds the projected truth as a
:class:`~nanodomains.records.StemDomains` record (``record``) and the truth-only
geometry beside it (:func:`write_truth`).

Examples
--------
>>> import numpy as np
>>> a = np.array([[-1, 0], [1, 2]], dtype=np.int16)
>>> np.array_equal(decode_array(encode_array(a)), a)
True
>>> truth_sidecar_path("run/img.tif").name
'img.truth.json'
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nanodomains.errors import FileFormatError
from nanodomains.files import read_json, write_json_atomic
from nanodomains.records import StemDomains
from nanodomains.stem.io import decode_array, encode_array

__all__ = ["TRUTH_SCHEMA", "encode_array", "decode_array", "truth_sidecar_path", "write_truth", "load_truth",
           "truth_record"]

#: schema of the STEM / EDS truth sidecar (the record plus the truth-only geometry)
TRUTH_SCHEMA = "nanodomains.stem.truth/2"


def truth_sidecar_path(path: str | Path) -> Path:
    """``img.tif`` -> ``img.truth.json`` (same folder, extension replaced)."""
    p = Path(path)
    return p.with_name(p.stem + ".truth.json") if p.suffix else p.with_name(p.name + ".truth.json")


def write_truth(truth: dict, path: str | Path) -> Path:
    """Write a truth sidecar atomically (JSON, :func:`nanodomains.files.write_json_atomic`).

    Schema ``nanodomains.stem.truth/2``:

    - ``record``: the projected truth as a :class:`~nanodomains.records.StemDomains`
      (schema ``nanodomains.stem.domains/4``, ``origin`` "truth", standard errors 0):
      one domain per model domain (``id`` the model id, the value in ``label_map``;
      ``area_nm2``, ``centroid_nm``, ``lattice_pm``, ``br_fraction``,
      ``shifted_fraction`` (model frame), ``mixed_fraction``,
      ``projected_br_fraction``, ``n_columns``, ``visible``) and the edge-on
      boundaries between image domains (``domains`` the labels either side,
      ``type``, ``length_nm``, ``segment_nm``, ``model_domains``);
    - the truth-only geometry beside it: ``pixel_size_pm``, ``shape``, ``frame``
      (text), ``direction``, ``transform``, ``nc`` (the model), ``model_boundaries``
      (every model boundary, edge-on or not), ``columns`` (column-wise lists),
      ``label_map`` (:func:`encode_array`; -1 = outside the NC) and the simulation
      parameters.
    """
    return write_json_atomic(truth, path)


def load_truth(path: str | Path, decode: bool = True) -> dict:
    """Read a truth sidecar (:func:`write_truth`).

    ``record`` becomes a :class:`~nanodomains.records.StemDomains`; with ``decode``
    the label map becomes an int16 array.
    """
    p = Path(path)
    if not p.is_file():
        raise FileFormatError(f"{p}: truth sidecar not found")
    truth = read_json(p)
    if not isinstance(truth, dict) or truth.get("schema") != TRUTH_SCHEMA:
        found = truth.get("schema") if isinstance(truth, dict) else None
        raise FileFormatError(f"{p}: not a nanodomains STEM truth sidecar (schema {TRUTH_SCHEMA}, found {found!r})")
    truth["record"] = StemDomains.from_dict(truth.get("record"), source=f"{p} (record)")
    if decode and "label_map" in truth:
        truth["label_map"] = decode_array(truth["label_map"])
    return truth


def truth_record(truth: dict | str | Path) -> StemDomains:
    """The :class:`~nanodomains.records.StemDomains` truth of a sidecar (dict or file)."""
    if not isinstance(truth, dict):
        truth = load_truth(truth, decode=False)
    rec = truth["record"]
    return rec if isinstance(rec, StemDomains) else StemDomains.from_dict(rec, source="truth sidecar record")

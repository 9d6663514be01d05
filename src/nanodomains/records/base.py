"""Record types: the one contract between simulators and analyses.

Every result that has a truth is a frozen, versioned :class:`Record`: an analysis
returns it, the matching simulator writes its truth as the same type, and
:func:`compare` matches the two field by field. The model is lmfit's
``Parameter``/``ModelResult``: a fitted number is a :class:`Measured` (value and
standard error), units stay in field names (``lattice_pm``, ``fss_uev``), and a record
serialises to one JSON document with its schema version and reads back through
:meth:`Record.from_json`.

Building blocks
---------------
:class:`Measured`
    ``{"value": v, "stderr": s}``; ``stderr`` is ``None`` when not estimated and ``0``
    for a truth. NaN/inf become ``None`` (JSON has no NaN).
:class:`Item`
    A frozen piece of a record (a domain, a line, an emitter); no schema of its own.
    ``MATCH_ON`` names the field :func:`compare` pairs items by when a record holds a
    list of them (an exact key such as ``id``, or a number paired by least total
    distance, Hungarian).
:class:`Record`
    A top-level result: ``SCHEMA`` = ``"nanodomains.<name>/<version>"``, provenance
    (``origin`` "analysis" or "truth", ``software``, ``source``, ``settings``), the
    stages it could not run (``not_computed``: field -> reason) and ``warnings``.
    ``to_json(path)`` writes atomically; ``from_json`` checks the schema.
:func:`compare`
    Truth against result: a :class:`Comparison` record of rows (path, truth, value,
    stderr, difference, tolerance, ok), with missed and extra items reported.

Examples
--------
>>> class Demo(Record):
...     SCHEMA = "nanodomains.doctest_demo/1"
...     tau_ns: Measured
...     n_photons: int
>>> truth = Demo(tau_ns=Measured(value=0.54, stderr=0), n_photons=10, origin="truth")
>>> found = Demo(tau_ns=Measured(value=0.55, stderr=0.01), n_photons=10)
>>> Demo.from_json(found.to_json()) == found
True
>>> cmp = compare(truth, found, tolerances={"tau_ns": 0.02})
>>> [(r.path, r.ok) for r in cmp.rows]
[('tau_ns', True), ('n_photons', True)]
"""

from __future__ import annotations

import fnmatch
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

from nanodomains.errors import FileFormatError, InputError
from nanodomains.files import dumps, read_json, to_jsonable, write_text_atomic

__all__ = ["Measured", "Item", "Record", "FloatArray", "IntArray", "ComparisonRow", "Comparison",
           "compare", "load_record", "record_types", "measured", "PROVENANCE_FIELDS"]


def _finite_or_none(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _array(dtype):
    def convert(v):
        return np.asarray([] if v is None else v, dtype=dtype)

    return Annotated[np.ndarray, BeforeValidator(convert),
                     PlainSerializer(lambda a: to_jsonable(np.asarray(a)), return_type=list)]


FloatArray = _array(float)
"""A numpy float array field, serialised as a JSON list (NaN as null)."""
IntArray = _array(np.int64)
"""A numpy int64 array field, serialised as a JSON list."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True,
                              ser_json_inf_nan="null")

    def __eq__(self, other) -> bool:  # arrays compare element-wise, NaN equal to NaN
        if type(self) is not type(other):
            return NotImplemented
        return _equal(self.model_dump(), other.model_dump())

    __hash__ = None  # arrays are unhashable; records are compared, not hashed

    def replace(self, **changes):
        """A validated copy with ``changes`` applied (the record itself is frozen)."""
        return type(self).model_validate({**self.model_dump(), **changes})


def _equal(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return False
        if a.dtype.kind in "fc" or b.dtype.kind in "fc":
            return bool(np.array_equal(a, b, equal_nan=True))
        return bool(np.array_equal(a, b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


class Measured(_Frozen):
    """A number with its standard error (``None``: not estimated; ``0``: exact, truth).

    A bare number validates as ``Measured(value=number)``; a ``(value, stderr)`` pair
    as both.

    Examples
    --------
    >>> Measured.model_validate(0.27)
    Measured(value=0.27, stderr=None)
    >>> str(Measured(value=617.7, stderr=0.31))
    '617.7 +- 0.31'
    """

    value: float | None
    stderr: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, data):
        if data is None or isinstance(data, (int, float, np.integer, np.floating)):
            return {"value": data}
        if isinstance(data, (tuple, list)) and len(data) == 2:
            return {"value": data[0], "stderr": data[1]}
        if isinstance(data, Mapping):
            out = dict(data)
            out["value"] = _finite_or_none(out.get("value"))
            if "stderr" in out:
                se = _finite_or_none(out["stderr"])
                if se is not None and se < 0:
                    raise ValueError(f"stderr must be >= 0, got {se}")
                out["stderr"] = se
            return out
        return data

    def __str__(self) -> str:
        if self.value is None:
            return "n/a"
        return f"{self.value:.6g}" + ("" if self.stderr is None else f" +- {self.stderr:.2g}")

    def __float__(self) -> float:
        return math.nan if self.value is None else float(self.value)


def measured(value, stderr=None) -> Measured:
    """Shorthand for ``Measured(value=value, stderr=stderr)`` (NaN -> None)."""
    return Measured.model_validate({"value": value, "stderr": stderr})


class Item(_Frozen):
    """A frozen part of a record; ``MATCH_ON`` pairs lists of items in :func:`compare`."""

    MATCH_ON: ClassVar[str | None] = None
    LABEL: ClassVar[str | None] = None  # field that names an item in comparison paths

    def label(self, index: int) -> str:
        key = self.LABEL or ("id" if "id" in type(self).model_fields else None)
        value = getattr(self, key, None) if key else None
        return str(index) if value is None else str(value)


_REGISTRY: dict[str, type[Record]] = {}

PROVENANCE_FIELDS = ("origin", "software", "source", "settings", "not_computed", "warnings")


def _software() -> str:
    from nanodomains import __version__

    return f"nanodomains {__version__}"


class Record(Item):
    """A top-level, versioned result. Subclasses set ``SCHEMA = "nanodomains.<name>/<n>"``."""

    SCHEMA: ClassVar[str] = ""

    origin: str = Field("analysis", pattern="^(analysis|truth)$")
    software: str = Field(default_factory=_software)
    source: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    not_computed: dict[str, str] = Field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        schema = cls.__dict__.get("SCHEMA")
        if schema:
            name, _, version = schema.rpartition("/")
            if not name.startswith("nanodomains.") or not version.isdigit():
                raise TypeError(f"{cls.__name__}.SCHEMA must look like 'nanodomains.<name>/<n>', got {schema!r}")
            if schema in _REGISTRY and _REGISTRY[schema].__qualname__ != cls.__qualname__:
                raise TypeError(f"schema {schema} is already used by {_REGISTRY[schema].__name__}")
            _REGISTRY[schema] = cls

    @model_validator(mode="before")
    @classmethod
    def _settings_jsonable(cls, data):
        if isinstance(data, Mapping) and "settings" in data:
            data = {**data, "settings": to_jsonable(data["settings"])}
        return data

    # ---- JSON
    def to_dict(self) -> dict:
        """``{"schema": SCHEMA, field: value, ...}`` with JSON types only."""
        return {"schema": self.SCHEMA, **to_jsonable(self.model_dump(mode="json"))}

    def to_json(self, path: str | os.PathLike | None = None, *, indent: int | None = 1) -> str:
        """The record as JSON text; written atomically to ``path`` when given."""
        text = dumps(self.to_dict(), indent=indent)
        if path is not None:
            write_text_atomic(path, text)
        return text

    @classmethod
    def from_dict(cls, data: Mapping, *, source: str = "record") -> Record:
        """Validate a dict written by :meth:`to_dict` (its schema must be this type's)."""
        if not isinstance(data, Mapping):
            raise FileFormatError(f"{source}: expected a JSON object, got {type(data).__name__}")
        schema = data.get("schema")
        if schema != cls.SCHEMA:
            raise FileFormatError(f"{source}: schema {schema!r}, expected {cls.SCHEMA!r} ({cls.__name__})")
        try:
            return cls.model_validate({k: v for k, v in data.items() if k != "schema"})
        except ValueError as exc:
            raise FileFormatError(f"{source}: not a valid {cls.SCHEMA} record: {exc}") from exc

    @classmethod
    def from_json(cls, text_or_path: str | os.PathLike) -> Record:
        """Read a record from JSON text or a file written by :meth:`to_json`."""
        s = os.fspath(text_or_path)
        source = "JSON text" if s.lstrip()[:1] == "{" else s
        return cls.from_dict(read_json(s), source=source)

    # ---- views
    def flat(self) -> dict[str, Any]:
        """One level of ``name: value`` (``name_stderr`` beside each Measured), for tables."""
        return _flatten(self, "")

    def report(self) -> str:
        """Human-readable lines ``name: value +- stderr`` (lmfit's ``fit_report`` idea)."""
        lines = [f"[{self.SCHEMA}] origin={self.origin}"]
        for name in type(self).model_fields:
            if name in PROVENANCE_FIELDS:
                continue
            v = getattr(self, name)
            if isinstance(v, (list, tuple)) and v and isinstance(v[0], Item):
                lines.append(f"{name}: {len(v)} items")
            elif isinstance(v, np.ndarray):
                lines.append(f"{name}: array{v.shape}")
            else:
                lines.append(f"{name}: {v}")
        lines += [f"not computed: {k}: {r}" for k, r in self.not_computed.items()]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _flatten(obj: Item, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in type(obj).model_fields:
        if name in PROVENANCE_FIELDS:
            continue
        v = getattr(obj, name)
        key = prefix + name
        if isinstance(v, Measured):
            out[key] = v.value
            out[key + "_stderr"] = v.stderr
        elif isinstance(v, Item):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, np.ndarray) or (isinstance(v, (list, tuple)) and v and isinstance(v[0], Item)):
            continue  # arrays and item lists get their own tables
        else:
            out[key] = to_jsonable(v)
    return out


def record_types() -> dict[str, type[Record]]:
    """Every registered schema -> record type."""
    import nanodomains.records  # noqa: F401  (registers the project's types)

    return dict(_REGISTRY)


def load_record(path_or_text: str | os.PathLike) -> Record:
    """Read any nanodomains record; its type is chosen by the ``schema`` it carries."""
    s = os.fspath(path_or_text)
    source = "JSON text" if s.lstrip()[:1] == "{" else s
    data = read_json(s)
    schema = data.get("schema") if isinstance(data, Mapping) else None
    types = record_types()
    if schema not in types:
        raise FileFormatError(f"{source}: unknown record schema {schema!r} (known: {', '.join(sorted(types))})")
    return types[schema].from_dict(data, source=source)


# ------------------------------------------------------------------------- compare


class ComparisonRow(Item):
    """One field of a truth/result pair; ``status`` is matched, missed or extra."""

    path: str
    truth: Any = None
    value: Any = None
    stderr: float | None = None
    difference: float | None = None
    tolerance: str | None = None
    ok: bool | None = None
    status: str = "matched"


class Comparison(Record):
    """The field-by-field comparison of a truth and a result (output of :func:`compare`)."""

    SCHEMA: ClassVar[str] = "nanodomains.comparison/1"
    record_type: str
    rows: tuple[ComparisonRow, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no judged row failed and no truth item was missed."""
        return all(r.ok is not False for r in self.rows) and not any(r.status == "missed" for r in self.rows)

    @property
    def failures(self) -> list[ComparisonRow]:
        return [r for r in self.rows if r.ok is False or r.status == "missed"]

    def table(self):
        """The rows as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame([r.model_dump() for r in self.rows],
                            columns=list(ComparisonRow.model_fields))

    def row(self, path: str) -> ComparisonRow:
        """The row at ``path`` (exact), else KeyError."""
        for r in self.rows:
            if r.path == path:
                return r
        raise KeyError(path)


Tolerance = float | str  # absolute, "2%" relative to truth, "3sigma" in combined stderr


def _tolerance_for(path: str, tolerances: Mapping[str, Tolerance]) -> Tolerance | None:
    bare = _strip_labels(path)
    for pattern, tol in tolerances.items():
        if fnmatch.fnmatchcase(bare, pattern) or fnmatch.fnmatchcase(path, pattern):
            return tol
    return None


def _strip_labels(path: str) -> str:
    import re

    return re.sub(r"\[[^\]]*\]", "", path)


def _judge(truth: float, value: float, se_t, se_v, tol: Tolerance | None) -> tuple[bool | None, str | None]:
    d = abs(value - truth)
    if tol is None:
        return None, None
    if isinstance(tol, str):
        t = tol.strip()
        if t.endswith("%"):
            lim = abs(truth) * float(t[:-1]) / 100.0
        elif t.endswith("sigma"):
            se = math.hypot(se_t or 0.0, se_v or 0.0)
            if se == 0:
                return None, t
            lim = float(t[:-5]) * se
        else:
            raise InputError(f"tolerance {tol!r}: give a number, 'N%' or 'Nsigma'")
        return bool(d <= lim), t
    return bool(d <= float(tol)), f"{float(tol):g}"


def _number(v) -> tuple[float | None, float | None]:
    if isinstance(v, Measured):
        return v.value, v.stderr
    if isinstance(v, (bool, np.bool_)) or v is None:
        return None, None
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v), None
    return None, None


def _compare_values(path: str, t, r, tolerances, rows: list[ComparisonRow]) -> None:
    if isinstance(t, Item) and not isinstance(t, Measured):
        _compare_items(t, r, path + ".", tolerances, {}, rows)
        return
    if isinstance(t, (list, tuple)) and t and isinstance(t[0], Item) and not isinstance(t[0], Measured):
        return  # lists are paired by _compare_items
    if (isinstance(t, (list, tuple)) and isinstance(r, (list, tuple)) and (t or r)
            and all(isinstance(x, Measured) for x in (*t, *r))):
        for i in range(max(len(t), len(r))):  # element by element; a missing one fails
            _compare_values(f"{path}[{i}]", t[i] if i < len(t) else None, r[i] if i < len(r) else None,
                            tolerances, rows)
        return
    if isinstance(t, np.ndarray) or isinstance(r, np.ndarray):
        return  # arrays (histograms, maps) are not compared field by field
    tv, tse = _number(t)
    rv, rse = _number(r)
    tol = _tolerance_for(path, tolerances)
    if tv is not None or rv is not None:
        if tv is None or rv is None:
            ok = None if tv is None else False
            rows.append(ComparisonRow(path=path, truth=tv, value=rv, stderr=rse, ok=ok,
                                      tolerance=None if tol is None else str(tol)))
            return
        if tol is None and not isinstance(t, (Measured, float, np.floating)):
            ok, tol_s = (tv == rv), "exact"
        else:
            ok, tol_s = _judge(tv, rv, tse, rse, tol)
        rows.append(ComparisonRow(path=path, truth=tv, value=rv, stderr=rse, difference=rv - tv,
                                  tolerance=tol_s, ok=ok))
        return
    tj, rj = to_jsonable(t), to_jsonable(r)
    rows.append(ComparisonRow(path=path, truth=tj, value=rj, ok=(tj == rj), tolerance="exact"))


def _pair(truth_items: Sequence[Item], found: Sequence[Item], path: str, tolerances,
          pairs: Mapping[str, Sequence[tuple[int, int]]]) -> list[tuple[int, int]]:
    if path in pairs:
        return [(int(i), int(j)) for i, j in pairs[path]]
    if not truth_items or not found:
        return []
    key = type(truth_items[0]).MATCH_ON
    if key is None:
        return [(i, i) for i in range(min(len(truth_items), len(found)))]
    tk = [getattr(x, key) for x in truth_items]
    fk = [getattr(x, key) for x in found]
    tnum = [_number(v)[0] for v in tk]
    if all(v is None for v in tnum):  # exact keys (ids, names)
        index = {v: j for j, v in enumerate(fk)}
        return [(i, index[v]) for i, v in enumerate(tk) if v in index]
    from scipy.optimize import linear_sum_assignment

    fnum = np.array([np.nan if _number(v)[0] is None else _number(v)[0] for v in fk])
    tarr = np.array([np.nan if v is None else v for v in tnum])
    cost = np.abs(tarr[:, None] - fnum[None, :])
    big = 1e30
    cost = np.where(np.isfinite(cost), cost, big)
    limit = _tolerance_for(path, {k[:-len(".match")]: v for k, v in tolerances.items()
                                  if k.endswith(".match")})
    ti, fj = linear_sum_assignment(cost)
    out = []
    for i, j in zip(ti, fj):
        if cost[i, j] >= big or (limit is not None and cost[i, j] > float(limit)):
            continue
        out.append((int(i), int(j)))
    return sorted(out)


def _compare_items(truth: Item, result: Item, prefix: str, tolerances, pairs, rows) -> None:
    for name in type(truth).model_fields:
        if name in PROVENANCE_FIELDS or name == "id":
            continue
        info = type(truth).model_fields[name]
        if (info.json_schema_extra or {}).get("compare") is False:
            continue
        t, r = getattr(truth, name), getattr(result, name, None)
        path = prefix + name
        if isinstance(t, (list, tuple)) and (t or r) and isinstance((t or r)[0], Item) \
                and not isinstance((t or r)[0], Measured):
            matched = _pair(t, r or (), _strip_labels(path), tolerances, pairs)
            seen_t, seen_r = {i for i, _ in matched}, {j for _, j in matched}
            for i, j in matched:
                _compare_items(t[i], r[j], f"{path}[{t[i].label(i)}].", tolerances, pairs, rows)
            rows.extend(ComparisonRow(path=f"{path}[{t[i].label(i)}]", status="missed", ok=False)
                        for i in range(len(t)) if i not in seen_t)
            rows.extend(ComparisonRow(path=f"{path}[+{r[j].label(j)}]", status="extra")
                        for j in range(len(r or ())) if j not in seen_r)
            continue
        _compare_values(path, t, r, tolerances, rows)


def compare(truth: Record, result: Record, *, tolerances: Mapping[str, Tolerance] | None = None,
            pairs: Mapping[str, Sequence[tuple[int, int]]] | None = None) -> Comparison:
    """Compare a truth record with a result record of the same type, field by field.

    Parameters
    ----------
    truth, result : Record
        Same record type (a simulator's truth and the analysis of its output).
    tolerances : dict, optional
        Glob pattern on the field path without item labels (``"domains.br_fraction"``,
        ``"*.fss_uev"``) -> absolute tolerance, ``"N%"`` of the truth, or ``"Nsigma"``
        of the combined standard errors. Numbers without a tolerance are reported but
        not judged; integers, strings and flags must match exactly. A pattern ending in
        ``.match`` (``"emitters.match": 0.5``) limits the distance at which list items
        are paired by their ``MATCH_ON`` field.
    pairs : dict, optional
        Explicit ``(truth index, result index)`` pairs for a list field (by its path),
        for matches decided elsewhere (e.g. STEM domains by overlap of their maps).

    Returns
    -------
    Comparison
        Rows per compared field; unmatched truth items are "missed" (fail), unmatched
        result items "extra".
    """
    if type(truth) is not type(result):
        raise InputError(f"compare needs two records of one type, got {type(truth).__name__} "
                         f"and {type(result).__name__}")
    rows: list[ComparisonRow] = []
    _compare_items(truth, result, "", dict(tolerances or {}), dict(pairs or {}), rows)
    return Comparison(record_type=truth.SCHEMA, rows=tuple(rows),
                      settings={"tolerances": {k: str(v) for k, v in (tolerances or {}).items()}},
                      source=result.source)


def read_record_file(path: str | os.PathLike, record_type: type[Record]) -> Record:
    """``record_type.from_json(path)`` with a clear error when the file is missing."""
    p = Path(path)
    if not p.is_file():
        raise FileFormatError(f"{p}: no such file" if not p.exists() else f"{p}: is not a file")
    return record_type.from_json(p)

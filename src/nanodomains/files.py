"""JSON and atomic file writes: the one home for both.

Every file nanodomains writes goes through :func:`atomic_path` (or the helpers built
on it): the data land in a temporary file in the target folder, which replaces the
target only when writing finished, so a crash or Ctrl-C never leaves a truncated file
under the final name. :func:`to_jsonable` is the one JSON cleaner: numpy scalars and
arrays become Python types and NaN/inf become ``null`` (JSON has no NaN).

Examples
--------
>>> import numpy as np
>>> to_jsonable({"a": np.float64(1.5), "b": np.array([1, 2]), "c": float("nan")})
{'a': 1.5, 'b': [1, 2], 'c': None}
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["to_jsonable", "atomic_path", "atomic_dir", "write_text_atomic", "write_json_atomic",
           "read_json", "dumps"]


def to_jsonable(obj: Any) -> Any:
    """JSON-ready copy: numpy scalars/arrays to Python, NaN/inf to None, paths to str."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "to_dict") and callable(obj.to_dict):  # records and similar
        return to_jsonable(obj.to_dict())
    return obj


def dumps(obj: Any, *, indent: int | None = 1) -> str:
    """``json.dumps`` of :func:`to_jsonable` (strict: no NaN tokens in the text)."""
    return json.dumps(to_jsonable(obj), indent=indent, allow_nan=False)


def _temp_name(path: Path) -> Path:
    # keep the suffix so writers that choose the format by extension (tifffile, numpy,
    # xarray) still see it; the pid keeps concurrent writers apart
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    On any exception (including KeyboardInterrupt) the temporary file is removed and
    ``path`` keeps what it held before.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(obj: Any, path: str | os.PathLike, *, indent: int | None = 1) -> Path:
    """Write ``obj`` (cleaned by :func:`to_jsonable`) as JSON to ``path`` atomically."""
    return write_text_atomic(path, dumps(obj, indent=indent))


def read_json(text_or_path: str | os.PathLike) -> Any:
    """Parse JSON given as text (starting with ``{`` or ``[``) or as a file path.

    Raises :class:`~nanodomains.errors.FileFormatError` naming the file when it is
    missing or not valid JSON.
    """
    from nanodomains.errors import FileFormatError

    s = os.fspath(text_or_path)
    if s.lstrip()[:1] in ("{", "["):
        source, text = "JSON text", s
    else:
        source = s
        try:
            text = Path(s).read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise FileFormatError(f"{s}: no such file") from exc
        except IsADirectoryError as exc:
            raise FileFormatError(f"{s}: is a directory, expected a JSON file") from exc
        except UnicodeDecodeError as exc:
            raise FileFormatError(f"{s}: not UTF-8 text, expected JSON") from exc
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise FileFormatError(f"{source}: not valid JSON ({exc})") from exc

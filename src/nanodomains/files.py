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
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from nanodomains.errors import FileFormatError, NanodomainsError

__all__ = ["to_jsonable", "atomic_path", "atomic_dir", "write_text_atomic", "write_json_atomic",
           "read_json", "dumps", "safe_name", "slug", "path_inside", "remove_stale_temporaries",
           "ensure_dir", "folder_lock", "TEMPORARY_MARKERS"]


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


# ---- safe names and paths ------------------------------------------------------------

#: Markers in the names of the hidden temporaries of :func:`atomic_path`, :func:`atomic_dir`
#: and staged runs (``.<name>.tmp-<pid>``, ``.<name>.old-<pid>``, ``.<name>.staging-<pid>``).
TEMPORARY_MARKERS = ("tmp", "old", "staging")
_TEMPORARY = re.compile(r"^\.(?P<name>.+?)\.(?P<kind>tmp|old|staging)-(?P<pid>\d+)(?P<suffix>\.[^.]*)?$")
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
MAX_NAME_LENGTH = 100


def safe_name(name, what: str = "name") -> str:
    """``name`` if it is safe as one file or folder name, else :class:`InputError`.

    Safe: 1-100 characters from ``A-Z a-z 0-9 . _ -``, starting with a letter or digit
    (so never ``.``, ``..`` or a hidden file), no path separator, no temporary marker
    (``.tmp-``, ``.old-``, ``.staging-``), not a Windows device name (``con``, ``nul``...).

    Examples
    --------
    >>> safe_name("sample_01.a")
    'sample_01.a'
    >>> safe_name("..", "item id")
    Traceback (most recent call last):
    ...
    nanodomains.errors.InputError: item id '..' is not a safe name: use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit
    """
    from nanodomains.errors import InputError

    text = str(name)
    rule = "use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"
    if not _SAFE.fullmatch(text) or len(text) > MAX_NAME_LENGTH:
        raise InputError(f"{what} {text!r} is not a safe name: {rule}")
    if any(f".{m}-" in text for m in TEMPORARY_MARKERS):
        raise InputError(f"{what} {text!r} contains a temporary-file marker (.tmp-, .old-, .staging-)")
    if text.split(".")[0].lower() in _RESERVED:
        raise InputError(f"{what} {text!r} is a reserved device name on Windows")
    return text


def slug(text: str, fallback: str = "item") -> str:
    """A :func:`safe_name` made from ``text``: unsafe runs become ``_``, cut to 100 characters.

    Examples
    --------
    >>> slug("../my image (2).tif")
    'my_image_2_.tif'
    """
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).lstrip("._-")
    for m in TEMPORARY_MARKERS:
        s = s.replace(f".{m}-", f"_{m}-")
    s = s[:MAX_NAME_LENGTH].rstrip(".")
    if not s or s.split(".")[0].lower() in _RESERVED:
        s = f"{fallback}_{s}" if s else fallback
    return s


def path_inside(base: str | os.PathLike, *parts: str) -> Path:
    """``base/parts...`` resolved (symlinks followed), refused unless it lies inside ``base``.

    Raises :class:`InputError` naming both paths when ``parts`` climb out of ``base``
    (``..``, an absolute part, a symlink pointing elsewhere) or name ``base`` itself.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path_inside(d, "items", "a").relative_to(Path(d).resolve()).as_posix()
    'items/a'
    """
    from nanodomains.errors import InputError

    root = Path(base).resolve()
    target = root.joinpath(*parts).resolve()
    if target == root or not target.is_relative_to(root):
        raise InputError(f"output path {Path(base).joinpath(*parts)} would lie outside {base}: refused")
    return target


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, *, only_dead: bool = True,
                             name: str | None = None) -> list[Path]:
    """Delete temporaries a killed writer left in ``folder``; return what was removed.

    Temporaries are the hidden ``.<name>.tmp-<pid>[.suffix]`` files and folders of
    :func:`atomic_path` / :func:`atomic_dir` and the ``.<name>.staging-<pid>`` folders
    of staged runs. ``.<name>.old-<pid>`` (the previous version of a folder being
    replaced) is renamed back to ``<name>`` when a kill between the two renames of
    :func:`atomic_dir` left ``<name>`` missing, else deleted: nothing finished is lost.

    Parameters
    ----------
    folder : path
        Folder to clean (not recursive).
    only_dead : bool
        Touch only entries whose writer process no longer runs (safe while other
        writers work in ``folder``). ``False`` when the caller holds the folder's lock.
    name : str, optional
        Only the temporaries of this file or folder name.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     (Path(d) / ".a.tmp-999999999").mkdir()
    ...     _ = (Path(d) / ".b.tmp-999999999.json").write_text("{")
    ...     [p.name for p in remove_stale_temporaries(d)]
    ['.a.tmp-999999999', '.b.tmp-999999999.json']
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for p in sorted(folder.iterdir()):
        m = _TEMPORARY.match(p.name)
        if m is None or (only_dead and _pid_alive(int(m["pid"]))):
            continue
        original = m["name"] + (m["suffix"] or "")
        if name is not None and name not in (m["name"], original):
            continue
        if m["kind"] == "old" and not (folder / m["name"]).exists():
            os.replace(p, folder / m["name"])  # interrupted swap: the old version comes back
            removed.append(p)
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


# ---- atomic writers -------------------------------------------------------------------

def _temp_name(path: Path) -> Path:
    # keep the suffix so writers that choose the format by extension (tifffile, numpy,
    # xarray) still see it; the pid keeps concurrent writers apart
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


def _check_target(path: Path) -> None:
    """A clear error before writing when ``path`` cannot be a file (folder, or a parent is a file)."""
    from nanodomains.errors import FileFormatError

    if path.is_dir():
        raise FileFormatError(f"{path}: is a directory, expected a file name to write")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise FileFormatError(f"{path}: cannot write, {parent} is a file, not a folder")
            break


def ensure_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create folder ``path`` (and parents); a clear :class:`FileFormatError` when it cannot be one.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     ensure_dir(Path(d) / "a" / "b").is_dir()
    True
    """
    from nanodomains.errors import FileFormatError

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise FileFormatError(f"{what} {p}: is a file, not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise FileFormatError(f"{what} {p}: a parent is a file, not a folder") from exc
    except OSError as exc:
        raise FileFormatError(f"{what} {p}: cannot create ({exc.strerror or exc})") from exc
    if not os.access(p, os.W_OK | os.X_OK):
        raise FileFormatError(f"{what} {p}: not writable")
    return p


def _acknowledge(exc: BaseException) -> None:
    """An interrupt is being handled here: stop it from repeating during the cleanup."""
    from nanodomains.errors import Terminated, acknowledge_interrupt

    if isinstance(exc, (KeyboardInterrupt, Terminated)):
        acknowledge_interrupt()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    On any exception (including KeyboardInterrupt) the temporary file is removed and
    ``path`` keeps what it held before. Temporaries of the same target left by a
    killed writer (a dead pid) are removed first. Not ``fsync``-ed: safe against a
    killed process, not against a power cut.
    """
    path = Path(path)
    _check_target(path)
    ensure_dir(path.parent, f"folder of {path.name}:")
    remove_stale_temporaries(path.parent, name=path.name)
    tmp = _temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        _acknowledge(exc)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, NanodomainsError) and \
                getattr(exc, "filename", None) in (str(tmp), tmp):
            raise FileFormatError(f"{path}: cannot write ({exc.strerror or exc})") from exc
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` whole."""
    path = Path(path)
    if path.name in ("", ".", ".."):
        from nanodomains.errors import InputError

        raise InputError(f"{path}: not a folder name that can be replaced")
    ensure_dir(path.parent, f"folder of {path.name}:")
    remove_stale_temporaries(path.parent, name=path.name)
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
    except BaseException as exc:
        _acknowledge(exc)
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "run") -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (file ``.nanodomains.lock`` in it) for one writer.

    A second run on the same folder gets a clear :class:`InputError` instead of mixing
    its files with the first; the lock dies with the process (``flock``), so a killed
    run never leaves the folder locked.
    """
    import fcntl

    from nanodomains.errors import InputError

    folder = ensure_dir(folder)
    lock = folder / ".nanodomains.lock"
    with open(lock, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise InputError(f"{folder}: another {what} is writing here; wait for it or choose another --out") from exc
        try:
            yield folder
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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
        except PermissionError as exc:
            raise FileFormatError(f"{s}: not readable (permission denied)") from exc
        except UnicodeDecodeError as exc:
            raise FileFormatError(f"{s}: not UTF-8 text, expected JSON") from exc
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise FileFormatError(f"{source}: not valid JSON ({exc})") from exc

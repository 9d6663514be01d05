"""Shared test configuration: real data from other labs, and what CI never skips.

Real instrument files live in ``../shared/realdata`` beside the repository (or where
``NANODOMAINS_REALDATA`` points). A test that reads them says so, in one of three ways:

* ``@pytest.mark.realdata`` on the test (paths built from :data:`REALDATA` at module
  level, e.g. ``PH_T2 = REALDATA / "photons" / "picoharp_v30_t2.ptu"``);
* :func:`require_realdata` (paths) at the top of a fixture that reads them (markers on
  fixtures have no effect);
* :func:`realdata_path` (or the ``realdata`` fixture, the same function) inside the
  test: the path, checked.

When the folder (or a named file) is missing the test is skipped with the reason on a
user's clone, and FAILS when the environment variable ``CI`` is set (to anything but
``""``, ``0``, ``false`` or ``no``): CI never skips real data. :func:`skip_or_fail`
is the same rule for other required tools (headless Chromium).

Test modules import these helpers with ``from conftest import ...`` (the tests folder
is on ``sys.path`` under pytest's default import mode).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

#: The real-data folder: ``$NANODOMAINS_REALDATA``, else ``../shared/realdata`` beside the repository.
REALDATA = Path(os.environ.get("NANODOMAINS_REALDATA")
                or Path(__file__).resolve().parents[2] / "shared" / "realdata")


def on_ci() -> bool:
    """True when the environment variable ``CI`` is set to a true value."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the running test with ``reason``; fail it instead when on CI (:func:`on_ci`)."""
    if on_ci():
        pytest.fail(f"{reason} [CI is set: this is required there, not skipped]", pytrace=False)
    pytest.skip(reason)


def _missing_reason(paths: list[Path]) -> str:
    where = "expected ../shared/realdata beside the repository; NANODOMAINS_REALDATA names another folder"
    if not REALDATA.is_dir():
        return f"real data folder {REALDATA} not found ({where})"
    return f"real data file(s) {', '.join(str(p) for p in paths)} not found in {REALDATA} ({where})"


def require_realdata(*paths: str | os.PathLike) -> None:
    """Skip (fail on CI) the calling test or fixture unless the real-data folder and ``paths`` exist.

    ``paths`` are absolute or relative to :data:`REALDATA`.
    """
    full = [REALDATA / p for p in paths]  # an absolute p stays as it is
    missing = [p for p in full if not p.exists()]
    if not REALDATA.is_dir() or missing:
        skip_or_fail(_missing_reason(missing))


def realdata_path(*parts: str) -> Path:
    """``REALDATA / parts...``, after :func:`require_realdata` on it (call inside a test)."""
    path = REALDATA.joinpath(*parts)
    require_realdata(path)
    return path


@pytest.fixture
def realdata():
    """:func:`realdata_path`: ``realdata("photons", "picoharp_v30_t2.ptu")`` in a test."""
    return realdata_path


def pytest_runtest_setup(item):
    """``@pytest.mark.realdata`` (optionally with file names): the folder and files must exist."""
    marker = item.get_closest_marker("realdata")
    if marker is not None:
        require_realdata(*marker.args)

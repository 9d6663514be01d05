"""One exception hierarchy for the whole project.

Every error names what was wrong (file, field, value) and what was expected, so the
CLI can print it on one line and exit non-zero. Nothing in nanodomains falls back to
an invented value: it raises one of these instead.
"""

from __future__ import annotations


class NanodomainsError(Exception):
    """Base class of every error nanodomains raises on purpose."""


class InputError(NanodomainsError, ValueError):
    """A parameter or value is outside what the physics or the code allows."""


class FormulaError(InputError):
    """A chemical formula cannot be parsed as CsPbBr_xI_(3-x)."""


class GeometryError(InputError):
    """A nanocrystal geometry is impossible (non-positive edge, domains that do not fit)."""


class FileFormatError(NanodomainsError, OSError):
    """A file is missing, truncated, corrupt or not of the expected format."""


class CalibrationError(InputError):
    """A required calibration (pixel size, wavelength axis, resolution) is missing or invalid."""


class FitError(NanodomainsError, RuntimeError):
    """A fit did not converge or produced an unusable result; never silently replaced."""


def require_positive(name: str, value: float) -> float:
    """Return ``value`` as float if finite and > 0, else raise :class:`InputError`."""
    import math

    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a number, got {value!r}") from exc
    if not math.isfinite(v) or v <= 0:
        raise InputError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def require_finite(name: str, value: float) -> float:
    """Return ``value`` as float if finite, else raise :class:`InputError`."""
    import math

    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a number, got {value!r}") from exc
    if not math.isfinite(v):
        raise InputError(f"{name} must be finite, got {value!r}")
    return v


def require_in_range(name: str, value, lo: float = 0.0, hi: float = float("inf"), *,
                     lo_open: bool = False, hi_open: bool = False) -> float:
    """``value`` as a finite float in [lo, hi] (ends open when asked), else :class:`InputError`.

    Examples
    --------
    >>> require_in_range("fraction", 0.3, 0, 1)
    0.3
    """
    v = require_finite(name, value)
    if v < lo or v > hi or (lo_open and v == lo) or (hi_open and v == hi):
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        raise InputError(f"{name} must lie in {left}{lo:g}, {hi:g}{right}, got {value!r}")
    return v

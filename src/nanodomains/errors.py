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


# ---- interrupts ---------------------------------------------------------------------
# Ctrl-C raises KeyboardInterrupt at the next Python instruction; when that instruction
# lies in a weakref callback or a __del__ (frequent in numpy/xarray code), Python prints
# "Exception ignored" and the interrupt is lost: the command ran on and exited 0. So the
# handler below repeats the interrupt every 0.5 s until the code that handles it
# acknowledges it (the CLI's main, the atomic writers' cleanup, the batch's summary).

class Terminated(BaseException):
    """SIGTERM or SIGHUP as an exception: cleanup runs as for Ctrl-C; never an item failure
    (not an :class:`Exception`)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_PENDING: dict = {"signum": None}


def _raise_for(signum: int):
    import signal

    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


def _on_signal(signum, frame):
    import signal

    _PENDING["signum"] = signum
    signal.setitimer(signal.ITIMER_REAL, 0.5, 0.5)  # repeat until acknowledged
    _raise_for(signum)


def _on_alarm(signum, frame):
    import signal

    if _PENDING["signum"] is None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return
    _raise_for(_PENDING["signum"])


def install_interrupt_handlers() -> dict:
    """Ctrl-C, SIGTERM and SIGHUP raise (KeyboardInterrupt / :class:`Terminated`) until
    acknowledged; return the previous handlers (for :func:`restore_interrupt_handlers`).

    Only in the main thread; elsewhere nothing changes (empty dict).
    """
    import signal

    previous = {}
    for sig, handler in ((signal.SIGINT, _on_signal), (signal.SIGTERM, _on_signal),
                         (signal.SIGHUP, _on_signal), (signal.SIGALRM, _on_alarm)):
        try:
            previous[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):  # not the main thread
            return {}
    return previous


def restore_interrupt_handlers(previous: dict) -> None:
    """Put back the handlers :func:`install_interrupt_handlers` replaced."""
    import signal

    acknowledge_interrupt()
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def acknowledge_interrupt() -> int | None:
    """Stop repeating a pending interrupt; return its signal number (None if there was none)."""
    import signal

    signum, _PENDING["signum"] = _PENDING["signum"], None
    if signum is not None:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        except (ValueError, OSError):
            pass
    return signum

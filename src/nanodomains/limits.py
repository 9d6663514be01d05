"""Valid ranges of every parameter, and memory estimates before large allocations.

One table (:data:`RANGES`) holds the documented range of each numeric parameter of the
command line and of the API functions behind it, with its unit and the reason for the
bounds. The CLI checks every option against it before a command runs
(:func:`check_params`); API functions call :func:`check` with the same names. A value
outside its range is an :class:`~nanodomains.errors.InputError` naming the parameter,
the range and the value: never a hang, a traceback or a silently meaningless result.

Bounds are physical where physics gives one (an efficiency lies in (0, 1], a
threshold in units of the noise must be > 0) and practical otherwise (a nanocrystal
edge above 200 nm is not a nanocrystal; 1e6 kMC frames already fill 100 MB): a
practical bound says so in its reason and is wider than any run the seed study needs.

Memory: :func:`require_memory` refuses an allocation estimated above the limit (the
environment variable ``NANODOMAINS_MEMORY_LIMIT_GB``, else 80 % of the memory
available when the check runs) with a message such as "would need 149 GiB, limit
17.6 GiB", before anything is allocated or written.

Examples
--------
>>> check("efficiency", 0.5)
0.5
>>> check("snr", 0)
Traceback (most recent call last):
...
nanodomains.errors.InputError: --snr must lie in (0, 1000], got 0 (peak detection threshold, peak height / noise sd: 0 or less would take every noise sample as a peak)
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass

from nanodomains.errors import InputError

__all__ = ["Range", "RANGES", "RELATIONS", "check", "check_params", "memory_limit_bytes",
           "require_memory", "format_bytes", "ranges_markdown", "check_counts", "check_axis", "MAX_COUNT"]


@dataclass(frozen=True)
class Range:
    """A documented valid range: ``lo``..``hi`` (ends open when asked), unit and reason."""

    lo: float
    hi: float
    unit: str
    reason: str
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False

    def text(self) -> str:
        left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
        if self.integer:
            return f"{left}{int(self.lo)}, {int(self.hi)}{right}"
        return f"{left}{self.lo:g}, {self.hi:g}{right}"

    def contains(self, v: float) -> bool:
        return (self.lo < v if self.lo_open else self.lo <= v) and (v < self.hi if self.hi_open else v <= self.hi)


def _r(lo, hi, unit, reason, *, lo_open=False, hi_open=False, integer=False) -> Range:
    return Range(float(lo), float(hi), unit, reason, lo_open, hi_open, integer)


SEED_MAX = 2**32 - 1  # the common 32-bit seed; the project's own streams draw below 2**31

#: parameter -> range. Keys are the Python names of CLI options (``--pixel-size-pm`` is
#: ``pixel_size_pm``); ``"<command> <name>"`` overrides a name for one command.
RANGES: dict[str, Range] = {
    # shared
    "seed": _r(0, SEED_MAX, "", "random seed: a non-negative integer (numpy SeedSequence)", integer=True),
    "workers": _r(0, 256, "", "local Dask worker processes; 0 runs in this process", integer=True),
    # structure, growth, migration
    "edge_nm": _r(0, 200, "nm", "NC edge: above 200 nm it is not a nanocrystal (atoms grow as edge^3)",
                  lo_open=True),
    "domains": _r(1, 1000, "", "number of nanodomains (each must still hold whole unit cells)", integer=True),
    "crystals": _r(1, 1_000_000, "", "NCs in a grown population (practical: ~400 bytes and ~6 us each)",
                   integer=True),
    "demo crystals": _r(1, 100_000, "", "NCs in the demo's population (seed study: ~130)", integer=True),
    "steps": _r(100, 1_000_000, "", "emcee steps per walker (infer)", integer=True),
    "walkers": _r(8, 10_000, "", "emcee walkers (infer)", integer=True),
    "temperature_k": _r(0, 2000, "K", "kMC temperature (CsPbX3 melts near 800 K)", lo_open=True),
    "time_ns": _r(0, 1e9, "ns", "simulated kMC time", lo_open=True),
    "attempt_frequency_hz": _r(1e9, 1e15, "Hz", "hop attempt frequency (phonons: ~0.1-30 THz)"),
    # atomistic (CHGNet NEB and MD)
    "fmax": _r(0.001, 1.0, "eV/A", "NEB convergence on the max force (0.05 is the shipped table's)"),
    "n_images": _r(1, 64, "", "intermediate NEB images", integer=True),
    "temperature": _r(0, 2000, "K", "MD temperature (CsPbX3 melts near 800 K)", lo_open=True),
    "time_ps": _r(0, 1e5, "ps", "simulated MD time (CHGNet runs ~2 steps/s here)", lo_open=True),
    "timestep_fs": _r(0.1, 10, "fs", "MD time step (H-free halides: 1-5 fs)"),
    "vacancies": _r(0, 10_000_000, "", "halide vacancies (at most the X sites of the NC)", integer=True),
    "vacancy_fraction": _r(0, 1, "", "fraction of X sites that are vacant", lo_open=True, hi_open=True),
    "surface_barrier_ev": _r(0, 10, "eV", "hop barrier of surface sites"),
    "photocarriers": _r(0, 1e6, "", "photocarriers per NC driving the light term (0 = dark)"),
    "migrate frames": _r(0, 1_000_000, "", "trajectory snapshots (practical: 1e6 frames ~ 100 MB per vacancy set)",
                         integer=True),
    # stem and eds
    "dose": _r(0, 1e12, "e/A^2", "electron dose", lo_open=True),
    "pixel_pm": _r(1, 10_000, "pm", "simulated pixel size (the image grows as 1/pixel^2)"),
    "rotation_deg": _r(-360, 360, "deg", "in-plane rotation"),
    "size_px": _r(16, 16384, "px", "square image size", integer=True),
    "jitter_pm": _r(0, 1000, "pm", "rms scan-line jitter (1 nm rms already smears every column)"),
    "drift": _r(-1000, 1000, "pm/line", "drift per scan line"),
    "support_nm": _r(0, 100, "nm", "amorphous carbon support thickness"),
    "exponent": _r(0, 4, "", "power-law exponent of column intensity in Z (Rutherford: 2)", lo_open=True),
    "scan_points": _r(1, 64, "", "multislice scan points per axis", integer=True),
    "kv": _r(20, 1000, "kV", "TEM beam energy (20-1000 kV instruments exist)"),
    "mrad": _r(1, 100, "mrad", "probe convergence semi-angle (aberration-corrected STEM: 20-35)"),
    "incident_level": _r(0, 1e12, "", "detector signal of the incident beam (image units)", lo_open=True),
    "configs": _r(8, 1000, "", "frozen-phonon configurations (fewer than 8 are refused as a table)", integer=True),
    "pixel_size_pm": _r(1, 100_000, "pm", "image pixel size (1 pm to 0.1 um per pixel)"),
    "thickness_nm": _r(0, 500, "nm", "crystal thickness (STEM needs electron-transparent samples)", lo_open=True),
    "calibrate_lattice_pm": _r(100, 3000, "pm", "reference cell edge (perovskites ~600 pm, oxides ~390 pm)"),
    "min_area_nm2": _r(0, 1e6, "nm^2", "smallest region compared", lo_open=True),
    # pl movies
    "frames": _r(1, 100_000, "", "frames of a simulated PL movie", integer=True),
    "frame_s": _r(0, 3600, "s", "exposure per frame", lo_open=True),
    "snr": _r(0, 1000, "", "peak detection threshold, peak height / noise sd: 0 or less would take every "
                           "noise sample as a peak", lo_open=True),
    "instrument_sigma_nm": _r(0, 100, "nm", "spectrometer Gaussian sd", lo_open=True),
    "resolution_nm": _r(0, 100, "nm", "spectrometer Gaussian FWHM", lo_open=True),
    "frame_time_s": _r(0, 3600, "s", "frame period", lo_open=True),
    "laser_nm": _r(100, 20_000, "nm", "excitation laser wavelength (UV to mid-IR)"),
    "laser_halfwidth_nm": _r(0, 100, "nm", "half width of the window excluded around the laser line",
                             lo_open=True),
    "window_s": _r(0, 1e6, "s", "sliding correlation window", lo_open=True),
    "surrogates": _r(19, 1_000_000, "", "surrogates per test: fewer than 19 cannot give p < 0.05 "
                                        "(the smallest p is 1/(n+1))", integer=True),
    # photons
    "duration_s": _r(0, 1e5, "s", "acquisition time", lo_open=True),
    "efficiency": _r(0, 1, "", "detection efficiency per photon", lo_open=True),
    "channels": _r(0, 63, "", "detector channel (PicoQuant routers: up to 64)", integer=True),
    "channel": _r(0, 63, "", "detector channel (PicoQuant routers: up to 64)", integer=True),
    "bin_ns": _r(0.001, 1e6, "ns", "histogram bin (whole ps, at least 1 ps)"),
    "window_ns": _r(0, 1e7, "ns", "g2 histogram half range (memory is checked too)", lo_open=True),
    "period_ns": _r(0.5, 1e9, "ns", "pulse period (lasers up to 2 GHz; shorter is below detector timing)"),
    "offset_ns": _r(-1e6, 1e6, "ns", "delay of the zero peak"),
    "gate_ns": _r(-1e6, 1e6, "ns", "micro-time gate"),
    "n_exp": _r(1, 3, "", "exponential components", integer=True),
    "curve": _r(0, 4095, "", "histogram index in a PicoQuant PHU/PHD file", integer=True),
    "start_ns": _r(-1e6, 1e6, "ns", "first time fitted"),
    "stop_ns": _r(-1e6, 1e6, "ns", "last time fitted"),
}


def _g2_relations(p: dict) -> None:
    period, bin_ns = p.get("period_ns"), p.get("bin_ns")
    if period is not None and bin_ns is not None and period < 5 * bin_ns:
        raise InputError(f"--period-ns {period:g} is shorter than 5 bins of --bin-ns {bin_ns:g}: "
                         "the peaks of a pulsed g2 cannot be separated")
    gate = p.get("gate_ns")
    if gate is not None and not gate[0] < gate[1]:
        raise InputError(f"--gate-ns {gate[0]:g} {gate[1]:g}: need LO < HI")


def _lifetime_relations(p: dict) -> None:
    start, stop = p.get("start_ns"), p.get("stop_ns")
    if start is not None and stop is not None and not start < stop:
        raise InputError(f"--start-ns {start:g} must be below --stop-ns {stop:g}")


#: command -> check of relations between its parameters (after each is in range).
RELATIONS = {"photons g2": _g2_relations, "photons lifetime": _lifetime_relations}


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def check(name: str, value, *, command: str | None = None, label: str | None = None):
    """``value`` checked against the range of ``name`` (``RANGES``); return it unchanged.

    Parameters
    ----------
    name : str
        Key of :data:`RANGES` (the CLI option's Python name).
    value : number, tuple of numbers or None
        None passes (an unset optional parameter); each element of a tuple is checked.
    command : str, optional
        CLI command (``"photons g2"``): its own entry ``"<command> <name>"`` wins.
    label : str, optional
        How the message names the parameter (default ``--name-with-dashes``).

    Raises
    ------
    InputError
        Not a number, NaN/inf, not an integer where one is needed, or out of range.
    KeyError
        ``name`` has no documented range (a programming error, caught by the tests).
    """
    if value is None:
        return value
    rng = RANGES.get(f"{command} {name}") if command else None
    rng = rng or RANGES[name]
    label = label or (f"{_option(name)} ({name})" if "_" in name else _option(name))
    values = value if isinstance(value, (tuple, list)) else (value,)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise InputError(f"{label} must be a number, got {v!r}")
        if not math.isfinite(v):
            raise InputError(f"{label} must be a finite number, got {v!r}")
        if rng.integer and int(v) != v:
            raise InputError(f"{label} must be an integer, got {v!r}")
        if not rng.contains(v):
            unit = f" {rng.unit}" if rng.unit else ""
            raise InputError(f"{label} must lie in {rng.text()}{unit}, got {v!r} ({rng.reason})")
    return value


def check_params(command: str, params: dict) -> None:
    """Check every parameter of ``command`` that has a range, then the command's relations.

    Parameters without an entry in :data:`RANGES` (text, paths, flags) are left alone.
    """
    for name, value in params.items():
        if f"{command} {name}" in RANGES or name in RANGES:
            check(name, value, command=command)
    if command in RELATIONS:
        RELATIONS[command](params)


# ---- memory --------------------------------------------------------------------------

def format_bytes(n: float) -> str:
    """``n`` bytes in GiB (or MiB below 1 GiB), e.g. ``"149 GiB"``.

    >>> format_bytes(160e9)
    '149 GiB'
    """
    gib = n / 2**30
    if gib >= 1:
        return f"{gib:.3g} GiB"
    return f"{n / 2**20:.3g} MiB"


def _available_bytes() -> float:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 8 * 2.0**30


def memory_limit_bytes() -> float:
    """The memory limit: ``NANODOMAINS_MEMORY_LIMIT_GB`` (GiB) if set, else 80 % of available memory."""
    env = os.environ.get("NANODOMAINS_MEMORY_LIMIT_GB", "").strip()
    if env:
        try:
            gb = float(env)
        except ValueError:
            raise InputError(f"NANODOMAINS_MEMORY_LIMIT_GB={env!r}: expected a number of GiB") from None
        if not (math.isfinite(gb) and gb > 0):
            raise InputError(f"NANODOMAINS_MEMORY_LIMIT_GB={env!r}: expected a number of GiB > 0")
        return gb * 2**30
    return 0.8 * _available_bytes()


def require_memory(n_bytes: float, what: str, limit: float | None = None) -> float:
    """Refuse (:class:`InputError`) when ``n_bytes`` exceeds ``limit`` (default :func:`memory_limit_bytes`).

    Call it before a large allocation with an estimate of the peak memory of the step;
    the message names the step, the estimate and the limit.

    Examples
    --------
    >>> require_memory(1e6, "a small histogram", limit=2**30)
    1000000.0
    >>> require_memory(160e9, "the g2 histogram", limit=16 * 2**30)
    Traceback (most recent call last):
    ...
    nanodomains.errors.InputError: the g2 histogram would need 149 GiB, limit 16 GiB (set NANODOMAINS_MEMORY_LIMIT_GB to change it)
    """
    limit = memory_limit_bytes() if limit is None else float(limit)
    n = float(n_bytes)
    if not math.isfinite(n) or n > limit:
        need = format_bytes(n) if math.isfinite(n) else "unbounded memory"
        raise InputError(f"{what} would need {need}, limit {format_bytes(limit)} "
                         "(set NANODOMAINS_MEMORY_LIMIT_GB to change it)")
    return n


# ---- physics sanity of input data -----------------------------------------------------

#: Largest count per bin or pixel accepted: 2**53, where float64 stops holding whole counts.
MAX_COUNT = float(2**53)


def check_counts(counts, what: str, *, camera_offset: bool = False, min_total: float = 1.0):
    """Detector counts that can be analysed, else :class:`InputError` saying why.

    Counts must be finite, at most :data:`MAX_COUNT`, hold some signal (a total of at
    least ``min_total`` above the lowest value for cameras) and, for photon counters,
    be >= 0. A camera (``camera_offset=True``) may read below zero after its offset
    or background is subtracted, but a frame stack whose every value is <= 0 holds no
    signal.

    Examples
    --------
    >>> check_counts([0, 0, 0], "decay")
    Traceback (most recent call last):
    ...
    nanodomains.errors.InputError: decay: every count is 0; no signal to analyse
    """
    import numpy as np

    a = np.asarray(counts, dtype=float)
    if a.size == 0:
        raise InputError(f"{what}: no data (0 bins)")
    finite = np.isfinite(a)
    if not finite.all():
        raise InputError(f"{what}: {int((~finite).sum())} NaN/inf count(s)")
    top = float(np.max(np.abs(a)))
    if top > MAX_COUNT:
        raise InputError(f"{what}: a count of {top:.3g} is beyond any detector (limit {MAX_COUNT:.3g})")
    if camera_offset:
        if float(a.max()) <= 0:
            raise InputError(f"{what}: every count is <= 0; no signal to analyse")
        return a
    if float(a.min()) < 0:
        raise InputError(f"{what}: {int((a < 0).sum())} negative count(s) (min {a.min():.3g}); "
                         "photon counts cannot be negative")
    if float(a.sum()) < min_total:
        raise InputError(f"{what}: every count is 0; no signal to analyse" if a.sum() == 0 else
                         f"{what}: {a.sum():.3g} counts in all, fewer than {min_total:g}")
    return a


def check_axis(values, what: str, unit: str, lo: float, hi: float, *, min_points: int = 2):
    """A calibrated axis (wavelengths, times): finite, strictly monotonic, within (lo, hi].

    Examples
    --------
    >>> check_axis([-652.0, -651.9], "wavelength", "nm", 0, 1e5)
    Traceback (most recent call last):
    ...
    nanodomains.errors.InputError: wavelength axis from -652 to -651.9 nm: must lie in (0, 100000] nm
    """
    import numpy as np

    a = np.asarray(values, dtype=float)
    if a.size < min_points:
        raise InputError(f"{what} axis: {a.size} point(s), need at least {min_points}")
    if not np.isfinite(a).all():
        raise InputError(f"{what} axis: NaN/inf values")
    if a.min() <= lo or a.max() > hi:
        raise InputError(f"{what} axis from {a[0]:.6g} to {a[-1]:.6g} {unit}: must lie in ({lo:g}, {hi:g}] {unit}")
    d = np.diff(a)
    if not ((d > 0).all() or (d < 0).all()):
        raise InputError(f"{what} axis: not strictly monotonic")
    return a


def ranges_markdown() -> str:
    """The :data:`RANGES` table as Markdown (docs/guarantees.md embeds it; a test keeps them equal)."""
    lines = ["| parameter | valid range | unit | why |", "|---|---|---|---|"]
    for key, r in RANGES.items():
        cmd, _, name = key.rpartition(" ")
        label = f"`{cmd} {_option(name)}`" if cmd else f"`{_option(name)}`"
        rng = r.text() + (" integer" if r.integer else "")
        lines.append(f"| {label} | {rng} | {r.unit} | {r.reason} |")
    return "\n".join(lines) + "\n"

"""Emitter records: the lines, emitters and couplings of one NC's 4 K PL movie.

One record type, :class:`PLEmitters` (schema ``nanodomains.emitters/2``), is both

- what :func:`nanodomains.spectroscopy.movie_analysis.analyze_movie` finds in a movie
  (``origin="analysis"``, written as ``emitters.json``), and
- what the optical forward model put in (``origin="truth"``, every stderr 0, written
  beside a simulated movie as ``NAME.truth.json``),

so recovery is one :func:`~nanodomains.records.base.compare`. Emitters are paired by
their centre wavelength (least total distance; limit it with an ``"emitters.match"``
tolerance in nm), the lines of a paired emitter by their centres too.

Conventions (units in the names)
--------------------------------
``center_nm``
    wavelength of the mean photon energy of the emitter's lines.
``fss_uev``
    fine-structure splitting: ``|E1 - E2|`` for a doublet, ``(E_max - E_min) / 2`` for
    a triplet, 0 for a singlet or a trion.
``linewidth_uev``
    Lorentzian FWHM in energy.
``mean_counts``
    integrated counts per frame of all the emitter's lines while it is on (ADU).
``intervals_s``
    on intervals ``[t_start, t_end]``; ``charged_intervals_s`` those in which the
    emitter's trion (``X*``) emits instead.
``state``
    ``"X"`` (neutral exciton set) or ``"X*"`` (charged exciton, kind ``trion``).

Fields that only one side knows (the model's domain id, lifetime and in-window flag,
the analysis' emitter grouping) are kept but not compared (``compare: False``);
``couplings`` name emitters by their ids, which differ between truth (``D0-X``) and
analysis (``E1``), so they are not compared field by field either: pair them through
the matched emitters.

Examples
--------
>>> from nanodomains.records.base import compare, measured
>>> line = PLLine(center_nm=measured(652.0, 0))
>>> truth = PLEmitters(origin="truth", emitters=[PLEmitter(
...     id="D0-X", kind="singlet", center_nm=measured(652.0, 0), fss_uev=measured(0.0, 0),
...     lines=[line])])
>>> found = PLEmitters(emitters=[PLEmitter(
...     id="E1", kind="singlet", center_nm=measured(652.01, 0.004), fss_uev=measured(0.0, 0),
...     lines=[PLLine(center_nm=measured(652.01, 0.004))])])
>>> PLEmitters.from_json(found.to_json()) == found
True
>>> cmp = compare(truth, found, tolerances={"emitters.match": 0.5, "*center_nm": 0.05})
>>> cmp.ok, cmp.row("emitters[D0-X].center_nm").difference < 0.02
(True, True)
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from nanodomains.records.base import Item, Measured, Record

__all__ = ["PLLine", "PLEmitter", "PLCoupling", "PLEmitters", "EMITTER_KINDS"]

EMITTER_KINDS = ("singlet", "doublet", "triplet", "trion", "biexciton")
"""Kinds of emitter: a neutral fine-structure set of 1-3 lines, a trion, a biexciton."""

_NO_COMPARE = {"compare": False}
Interval = tuple[float, float]


class PLLine(Item):
    """One emission line of an emitter.

    ``center_nm`` is the line's mean position (analysis: the time-median of its fitted
    centre over the on frames; truth: the model line without spectral diffusion),
    ``fraction`` its share of the emitter's counts, ``mean_counts`` its integrated
    counts per on frame, ``polarization_deg`` its dipole angle where known (the
    forward model's; a movie does not measure it, so it is not compared).
    """

    MATCH_ON: ClassVar[str] = "center_nm"

    center_nm: Measured
    linewidth_uev: Measured | None = None
    fraction: Measured | None = None
    mean_counts: Measured | None = None
    polarization_deg: Measured | None = Field(None, json_schema_extra=_NO_COMPARE)


class PLEmitter(Item):
    """One emitter: a neutral fine-structure set (singlet, doublet, triplet) or a trion.

    Paired in :func:`~nanodomains.records.base.compare` by ``center_nm``.
    """

    MATCH_ON: ClassVar[str] = "center_nm"

    id: str
    kind: str = Field(pattern="^(" + "|".join(EMITTER_KINDS) + ")$")
    center_nm: Measured
    lines: tuple[PLLine, ...] = ()
    fss_uev: Measured
    linewidth_uev: Measured | None = None
    mean_counts: Measured | None = None
    state: str = Field("X", pattern=r"^(X|X\*|XX)$")
    intervals_s: tuple[Interval, ...] = Field((), json_schema_extra=_NO_COMPARE)
    charged_intervals_s: tuple[Interval, ...] = Field((), json_schema_extra=_NO_COMPARE)
    trion_of: str | None = Field(None, json_schema_extra=_NO_COMPARE)
    domain: int | None = Field(None, json_schema_extra=_NO_COMPARE)
    # known to the forward model only
    lifetime_ns: float | None = Field(None, json_schema_extra=_NO_COMPARE)
    rate_hz: float | None = Field(None, json_schema_extra=_NO_COMPARE)
    in_window: bool | None = Field(None, json_schema_extra=_NO_COMPARE)
    peak_counts: float | None = Field(None, json_schema_extra=_NO_COMPARE)
    peak_snr: float | None = Field(None, json_schema_extra=_NO_COMPARE)
    # known to the analysis only: indices of its line tracks
    tracks: tuple[int, ...] = Field((), json_schema_extra=_NO_COMPARE)

    @property
    def lines_nm(self) -> list[float]:
        """Centres of the lines (nm), in the record's order (blue to red)."""
        return [float(line.center_nm) for line in self.lines]

    @property
    def on_time_s(self) -> float:
        """Total length of the on intervals (s)."""
        return float(sum(b - a for a, b in self.intervals_s))

    def visible(self, min_snr: float = 10.0) -> bool:
        """True unless the forward model marks it outside the window or below ``min_snr``."""
        return self.in_window is not False and (self.peak_snr is None or self.peak_snr >= min_snr)


class PLCoupling(Item):
    """A pair of emitters and how their intensities (and wavelengths) relate.

    ``verdict`` is ``independent``, ``coupled``, ``anti-correlated`` (or the analysis'
    other verdicts); ``pearson_r`` / ``pearson_p`` the intensity correlation and its
    surrogate-test p-value (the p-value is its uncertainty), ``wavelength_r`` the
    correlation of the two spectral wanders, ``intervals_s`` the windows in which they
    change together.
    """

    emitters: tuple[str, str]
    verdict: str
    mechanisms: tuple[str, ...] = ()
    intervals_s: tuple[Interval, ...] = ()
    wavelength_r: float | None = None
    pearson_r: float | None = None
    pearson_p: float | None = None
    spearman_rho: float | None = None
    windows: tuple[dict[str, Any], ...] = ()


class PLEmitters(Record):
    """The emitters of one NC's PL movie: analysis result or forward-model truth.

    Attributes
    ----------
    emitters : tuple of PLEmitter
    couplings : tuple of PLCoupling
        One per pair of emitters (not compared: ids differ between truth and result).
    n_frames : int, optional
    frame_s : float, optional
        Frame period (s).
    meta : dict
        Run facts (analysis: source file, format, time source, pixel, detection, track
        and cosmic-ray counts; truth: spectrometer, CCD, cosmic rays, movie name).
    frames : dict, optional
        Truth only: per-frame expected counts and line centres of every emitter.
    dynamics : dict, optional
        Truth only: the domains, their state trajectories, shared events, the field,
        Forster transfer and the emitters that never emit.
    preset : dict, optional
        Truth only: the seed-study preset the movie was built from.
    """

    SCHEMA: ClassVar[str] = "nanodomains.emitters/2"

    emitters: tuple[PLEmitter, ...] = ()
    couplings: tuple[PLCoupling, ...] = Field((), json_schema_extra=_NO_COMPARE)
    n_frames: int | None = None
    frame_s: float | None = None
    meta: dict[str, Any] = Field(default_factory=dict, json_schema_extra=_NO_COMPARE)
    frames: dict[str, Any] | None = Field(None, json_schema_extra=_NO_COMPARE)
    dynamics: dict[str, Any] | None = Field(None, json_schema_extra=_NO_COMPARE)
    preset: dict[str, Any] | None = Field(None, json_schema_extra=_NO_COMPARE)

    def emitter(self, emitter_id: str) -> PLEmitter:
        """The emitter with id ``emitter_id`` (KeyError when absent)."""
        for e in self.emitters:
            if e.id == emitter_id:
                return e
        raise KeyError(emitter_id)

    def coupling(self, a: str, b: str) -> PLCoupling:
        """The coupling of emitters ``a`` and ``b`` (either order; KeyError when absent)."""
        for c in self.couplings:
            if set(c.emitters) == {a, b}:
                return c
        raise KeyError((a, b))

    def visible(self, min_snr: float = 10.0) -> PLEmitters:
        """A copy keeping only the emitters a movie can show (see :meth:`PLEmitter.visible`)."""
        keep = [e for e in self.emitters if e.visible(min_snr)]
        ids = {e.id for e in keep}
        return self.replace(emitters=keep, couplings=[c for c in self.couplings if set(c.emitters) <= ids])

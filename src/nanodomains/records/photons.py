"""Photon-statistics records: g2 and fluorescence lifetimes, and the photon simulator's truth.

The analyses (:mod:`nanodomains.spectroscopy.g2`, :mod:`nanodomains.spectroscopy.lifetime`)
return :class:`G2Record` and :class:`LifetimeRecord`; the photon simulator
(:mod:`nanodomains.optics.photons`) writes its truth as a :class:`PhotonTruth` that holds
the expected g2 as a :class:`G2Record` and every emitter's lifetime as a
:class:`LifetimeRecord` (``origin="truth"``, standard errors 0), so a result and its truth
are compared with :func:`nanodomains.records.compare`, field by field, with no renames.

Histogram and decay arrays are stored (the JSON of a record round-trips whole) but are not
compared; the analysis bookkeeping (how peaks were found, fit ranges, goodness of fit) is
not compared either, since a truth has no counterpart for it.

Examples
--------
>>> truth = LifetimeRecord(n_exp=1, components=[LifetimeComponent(tau_ns=(0.54, 0))],
...                        tau_mean_ns=(0.54, 0), origin="truth")
>>> fit = LifetimeRecord(method="tail", n_exp=1,
...                      components=[LifetimeComponent(tau_ns=(0.55, 0.01), amplitude=(900, 30))],
...                      tau_mean_ns=(0.55, 0.01))
>>> from nanodomains.records.base import compare
>>> compare(truth, fit, tolerances={"*tau*": "3sigma"}).ok
True
>>> LifetimeRecord.from_json(fit.to_json()) == fit
True
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BeforeValidator, Field

from nanodomains.files import to_jsonable
from nanodomains.records.base import FloatArray, Item, Measured, Record

__all__: list[str] = ["G2Record", "LifetimeComponent", "LifetimeModelFit", "LifetimeRecord", "PhotonEmitterTruth",
                      "PhotonTruth"]


def _skip(default=None, **kw):
    """A field :func:`~nanodomains.records.base.compare` skips (bookkeeping, arrays)."""
    return Field(default, json_schema_extra={"compare": False}, **kw)


def _array():
    return Field(default_factory=lambda: np.zeros(0), json_schema_extra={"compare": False})


class G2Record(Record):
    """Second-order correlation g2(tau) of an HBT experiment and g2(0) with its error.

    ``g2_0`` is the zero-delay value (pulsed: zero-peak over mean side-peak area; CW:
    central bins over the uncorrelated expectation). ``channels`` are (start, stop),
    tau = t_stop - t_start. ``n_photons`` counts the photons of the two channels after
    gating; ``duration_s`` and ``n_photons`` are None for a processed curve, which
    carries neither. The histogram (``tau_ns`` bin centres, raw ``counts``, normalised
    ``g2``) is stored but not compared.
    """

    SCHEMA: ClassVar[str] = "nanodomains.g2/2"

    g2_0: Measured
    mode: str = Field(pattern="^(pulsed|cw)$")
    channels: tuple[int, int] = (0, 1)
    period_ns: float | None = None
    duration_s: float | None = None
    n_photons: int | None = None
    # how the analysis was made (not compared)
    period_source: str | None = _skip()
    offset_ns: float | None = _skip()
    offset_source: str | None = _skip()
    bin_ns: float | None = _skip()
    window_ns: float | None = _skip()
    peak_window_ns: float | None = _skip()
    zero_window_ns: float | None = _skip()
    microtime_gate_ns: tuple[float, float] | None = _skip()
    n_pairs: int | None = _skip()
    counts_per_channel: tuple[int, int] | None = _skip()
    zero_peak_area: float | None = _skip()
    side_peak_areas: tuple[float, ...] = _skip(())
    tau_ns: FloatArray = _array()
    counts: FloatArray = _array()
    g2: FloatArray = _array()


class LifetimeComponent(Item):
    """One exponential of a decay: lifetime, amplitude and intensity fraction.

    ``amplitude`` is photons in the component for a reconvolution fit and counts per bin
    at the start of the fit range for a tail fit. Components of two records are paired
    by lifetime in :func:`~nanodomains.records.compare`.
    """

    MATCH_ON: ClassVar[str | None] = "tau_ns"

    tau_ns: Measured
    amplitude: Measured = Measured(value=None)
    fraction: float | None = None


class LifetimeModelFit(Item):
    """One model of a decay in a model comparison: its lifetimes and goodness numbers.

    ``aic = D + 2k`` and ``bic = D + k ln(M)`` with D the Poisson deviance, k the free
    parameters and M the bins fitted (the deviance is -2 log-likelihood up to a
    constant shared by every model of the same bins); lower is better.
    ``runs_test_p`` is the one-sided p-value of too few sign runs in the residuals.
    """

    MATCH_ON: ClassVar[str | None] = "n_exp"

    n_exp: int
    tau_ns: tuple[Measured, ...] = ()
    fractions: tuple[float | None, ...] = ()
    reduced_deviance: float | None = None
    aic: float | None = None
    bic: float | None = None
    runs_test_p: float | None = None
    converged: bool | None = None


class LifetimeRecord(Record):
    """Fluorescence lifetimes of a TCSPC decay (Poisson maximum likelihood).

    ``components`` are sorted by lifetime; ``tau_mean_ns`` is the intensity-weighted mean
    lifetime sum(f_i tau_i) (one exponential: tau itself). ``method`` is
    "reconvolution" (IRF given) or "tail"; the goodness numbers (``deviance``,
    ``reduced_deviance`` = D/dof, ``reduced_chi2``) are ~1 for an adequate model. The decay
    (``time_ns``, ``counts``) and the ``model`` (NaN outside the fit range) are stored but
    not compared; :attr:`residuals` derives the weighted residuals from them.

    Schema 3 adds the goodness of fit beyond the deviance: the runs test of the
    residual signs (``runs_test_z``, ``runs_test_p``), the information criteria
    (``aic``, ``bic``), the ``comparison`` of one and two exponentials on the same bins
    (:class:`LifetimeModelFit`, with ``preferred_n_exp`` by BIC), and ``start_rule``:
    how the start of the fitted range was chosen.
    """

    SCHEMA: ClassVar[str] = "nanodomains.lifetime/3"

    n_exp: int
    components: tuple[LifetimeComponent, ...]
    tau_mean_ns: Measured
    background: Measured = Measured(value=None)
    shift_ns: Measured | None = None
    period_ns: float | None = None
    # how the fit was made and how good it is (not compared)
    method: str | None = _skip()
    fit_range_ns: tuple[float, float] | None = _skip()
    irf_background: float | None = _skip()
    irf_source: str | None = _skip()
    deviance: float | None = _skip()
    reduced_deviance: float | None = _skip()
    reduced_chi2: float | None = _skip()
    dof: int | None = _skip()
    converged: bool | None = _skip()
    message: str = _skip("")
    runs_test_z: float | None = _skip()
    runs_test_p: float | None = _skip()
    aic: float | None = _skip()
    bic: float | None = _skip()
    comparison: tuple[LifetimeModelFit, ...] = _skip(())
    preferred_n_exp: int | None = _skip()
    start_rule: str | None = _skip()
    time_ns: FloatArray = _array()
    counts: FloatArray = _array()
    model: FloatArray = _array()

    @property
    def tau_ns(self) -> tuple[Measured, ...]:
        """The lifetimes of the components (shorthand for ``c.tau_ns for c in components``)."""
        return tuple(c.tau_ns for c in self.components)

    @property
    def residuals(self) -> np.ndarray:
        """Weighted residuals (counts - model) / sqrt(model); NaN outside the fit range."""
        m = np.asarray(self.model, float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (np.asarray(self.counts, float) - m) / np.sqrt(np.maximum(m, 1e-12))


class PhotonEmitterTruth(Item):
    """One emitter of a simulated photon stream: its photons and its lifetime (truth)."""

    LABEL: ClassVar[str | None] = "id"
    MATCH_ON: ClassVar[str | None] = "id"

    id: str
    index: int
    n_photons: int
    lifetime: LifetimeRecord


class PhotonTruth(Record):
    """What the photon simulator put into a stream (its ``*.truth.json`` sidecar).

    ``g2`` is the model's expected g2 (a :class:`G2Record`, ``origin="truth"``, g2(0) with
    standard error 0); ``emitters`` give each emitter's detected photons and lifetime (a
    :class:`LifetimeRecord`, ``origin="truth"``). ``origin`` of a photon in the stream is
    ``8 * index + line`` (line 7: biexciton of that emitter's domain), -1 dark count,
    -2 afterpulse. The simulation parameters, detectors and seed are in ``settings``.
    """

    SCHEMA: ClassVar[str] = "nanodomains.optics.photons.truth/2"

    origin: str = Field("truth", pattern="^(analysis|truth)$")
    g2: G2Record
    emitters: tuple[PhotonEmitterTruth, ...] = ()
    mode: str = Field(pattern="^(pulsed|cw)$")
    t3: bool
    duration_s: float
    sync_period_ps: float | None = None
    resolution_ps: float
    band_nm: tuple[float, float] | None = None
    irf_sigma_ps: tuple[float, float]
    irf_center_ps: tuple[float, float]
    n_dark: int = 0
    n_afterpulse: int = 0
    n_biexciton: int = 0
    filtered_emitter: str | None = None
    dynamics: Annotated[dict[str, Any] | None, BeforeValidator(to_jsonable)] = None

    def emitter(self, emitter_id: str) -> PhotonEmitterTruth:
        """The emitter with this id (KeyError naming the known ids otherwise)."""
        for e in self.emitters:
            if e.id == emitter_id:
                return e
        raise KeyError(f"no emitter {emitter_id!r}; emitters: {[e.id for e in self.emitters]}")

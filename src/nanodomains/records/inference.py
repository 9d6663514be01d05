"""Inference records: the posterior over the domains that emit an NC's PL lines.

:class:`EmitterInference` (schema ``nanodomains.inference/1``, written as
``inference.json`` by ``nanodomains infer``) holds, for every neutral emitter of an
``emitters.json``, the posterior of the Br fraction and thickness of the domain that
emits it, the shared material parameters (gap bowing, absolute-energy offset, NC
lateral edge, exchange scale), the posterior-predictive check of every measured number
and the sampler's diagnostics. Made by
:func:`nanodomains.spectroscopy.inference.infer_emitters`.

Conventions
-----------
Point values are posterior means with the posterior standard deviation as ``stderr``;
``*_ci90`` are equal-tailed 90 % credible intervals (5 % and 95 % quantiles).
``size_composition_corr`` is the posterior correlation of Br fraction and thickness:
near +1 when the lines alone cannot tell a Br-richer, thinner domain from an I-richer,
thicker one (the degeneracy the inverse must show).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from nanodomains.records.base import Item, Measured, Record

__all__ = ["InferredDomain", "EmitterInference"]

_NO_COMPARE = {"compare": False}
Interval = tuple[float, float]


class InferredDomain(Item):
    """Posterior of the domain behind one neutral emitter (paired by ``emitter_id``)."""

    MATCH_ON: ClassVar[str] = "emitter_id"

    emitter_id: str
    kind: str
    br_fraction: Measured
    br_fraction_ci90: Interval
    thickness_nm: Measured
    thickness_nm_ci90: Interval
    size_composition_corr: float | None = Field(None, json_schema_extra=_NO_COMPARE)
    measured_center_nm: Measured = Field(json_schema_extra=_NO_COMPARE)
    predicted_center_nm: Measured = Field(json_schema_extra=_NO_COMPARE)
    measured_fss_uev: Measured | None = Field(None, json_schema_extra=_NO_COMPARE)
    predicted_fss_uev: Measured | None = Field(None, json_schema_extra=_NO_COMPARE)
    measured_trion_shift_mev: Measured | None = Field(None, json_schema_extra=_NO_COMPARE)
    predicted_trion_shift_mev: Measured | None = Field(None, json_schema_extra=_NO_COMPARE)
    predictive_z: dict[str, float] = Field(default_factory=dict, json_schema_extra=_NO_COMPARE)


class EmitterInference(Record):
    """Posterior over the emitting domains of one NC and the shared material parameters.

    Attributes
    ----------
    domains : tuple of InferredDomain
        One per neutral emitter (trions inform their neutral partner's domain).
    bowing_ev, gap_offset_ev, nc_edge_nm, exchange_scale : Measured
        Shared parameters (posterior mean and sd) with their 90 % intervals.
    sampler : dict
        emcee settings and diagnostics: walkers, steps, burn-in, acceptance fraction,
        integrated autocorrelation time (steps), effective sample size, ``converged``.
    priors : dict
        The priors used, with their sources.
    stem_prior : dict, optional
        The STEM record the composition/size prior came from and how it was built.
    fit_ok : bool
        False when a measured number lies outside its 99.7 % posterior-predictive range
        (the data do not fit the model); the warnings name it.
    """

    SCHEMA: ClassVar[str] = "nanodomains.inference/1"

    domains: tuple[InferredDomain, ...] = ()
    bowing_ev: Measured = Measured(value=None)
    bowing_ev_ci90: Interval | None = None
    gap_offset_ev: Measured = Measured(value=None)
    nc_edge_nm: Measured = Measured(value=None)
    exchange_scale: Measured = Measured(value=None)
    fit_ok: bool = True
    sampler: dict[str, Any] = Field(default_factory=dict, json_schema_extra=_NO_COMPARE)
    priors: dict[str, Any] = Field(default_factory=dict, json_schema_extra=_NO_COMPARE)
    stem_prior: dict[str, Any] | None = Field(None, json_schema_extra=_NO_COMPARE)
    elapsed_s: float | None = Field(None, json_schema_extra=_NO_COMPARE)

    def domain(self, emitter_id: str) -> InferredDomain:
        """The inferred domain of emitter ``emitter_id`` (KeyError when absent)."""
        for d in self.domains:
            if d.emitter_id == emitter_id:
                return d
        raise KeyError(emitter_id)

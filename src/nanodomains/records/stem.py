"""STEM records: lattice, domain, boundary, composition, column-set summary, ``domains.json``.

One type, :class:`StemDomains` (schema ``nanodomains.stem.domains/4``), is both what
:func:`nanodomains.stem.analyze.analyze_image` finds in an ADF-STEM image (written as
``domains.json`` by ``nanodomains stem analyze``, the batch and the demo) and the
projected truth the STEM and EDS simulators put in their truth sidecars
(``origin="truth"``, standard errors 0), so that validation is one
:func:`nanodomains.records.compare` with the domains paired by the overlap of their
label maps (:mod:`nanodomains.stem.validation`).

Conventions (see :mod:`nanodomains.records.base`): every fitted number is a
:class:`~nanodomains.records.base.Measured`; units are in field names; coordinates
``[x, y]`` in nm in the image frame. Fields that are conventions, provenance or counts
that truth and analysis define differently (names, registry sign, formula text, column
counts) carry ``compare=False`` and are not judged by ``compare``.

Schema history: ``/4`` added the joint Z-contrast inversion's fields to
:class:`StemComposition` (90 % credible intervals, thickness, the status of b and s,
the probability of the minority registry at the entrance, the intensity mode).
``/3`` added the boundary evidence (``StemBoundary.phase_jump_rad``
... ``evidence``), ``StemBackground.method``, ``cross_section`` and ``n_columns``,
and ``StemLattice.angle_err_deg``, ``ratio``, ``projection``, ``evidence`` and
``pseudocubic_pm``. Files of schemas ``/2`` and ``/3`` still load (:meth:`StemDomains.from_dict`,
:func:`~nanodomains.records.load_record`): the fields they lack take their defaults.

Examples
--------
>>> from nanodomains.records.base import measured
>>> d = StemDomain(id=1, name="R1", area_nm2=80.0, lattice_pm=measured(612.3, 0.1),
...                br_fraction=measured(0.4, 0.02))
>>> rec = StemDomains(pixel_size_pm=20.0, shape_px=(100, 100), domains=(d,))
>>> StemDomains.from_json(rec.to_json()) == rec
True
>>> rec.domains[0].lattice_pm.value
612.3
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from nanodomains.records.base import Comparison, FloatArray, Item, Measured, Record

__all__: list[str] = ["StemLattice", "StemComposition", "StemDomain", "StemBoundary", "StemColumnSet",
                      "StemBackground", "StemTable", "StemDomains", "StemRegionMatch", "StemValidation"]

_SKIP = {"compare": False}


def _skip(default: Any = None, **kw) -> Any:
    """A field :func:`~nanodomains.records.base.compare` does not judge."""
    return Field(default, json_schema_extra=_SKIP, **kw)


def _array() -> Any:
    """A float array field (empty by default) that compare skips."""
    return Field(default_factory=lambda: np.zeros(0), json_schema_extra=_SKIP)


class StemLattice(Item):
    """Reference lattice of an image: the two cell edges (pm) and the angle between them.

    Analysis: the GPA reference lattice of the whole image
    (:func:`nanodomains.stem.gpa.find_lattice`, refined; :meth:`Lattice.to_record`),
    with the projection it matches and the evidence; truth: the model's reference
    lattice (Vegard value of the nominal formula).
    """

    a1_pm: Measured
    a2_pm: Measured
    angle_deg: float | None = None
    basis_pm: FloatArray = _array()
    note: str | None = _skip()
    #: one-sigma uncertainty of ``angle_deg`` (analysis; None in truth)
    angle_err_deg: float | None = _skip()
    #: ``|a2|`` / ``|a1|`` with its uncertainty
    ratio: Measured | None = _skip()
    #: perovskite projection the primitive cell matches: "[100]" (a x a), "[110]"
    #: (a/sqrt2 x a, rectangular), "[111]" (hexagonal) or "none"
    projection: str | None = _skip()
    #: why that projection and that primitive cell (reflections, column motif, shape)
    evidence: str | None = _skip()
    #: pseudo-cubic perovskite cell edge the projection implies
    pseudocubic_pm: Measured | None = _skip()


class StemComposition(Item):
    """How a domain's composition was obtained (or why it was not).

    ``model`` names the method (Z-contrast inversion of the column-intensity ratios,
    or the simulation truth), ``table`` the column-intensity table's method
    (``power_law``, ``multislice``); ``reason`` says why nothing was computed.
    """

    model: str
    table: str | None = None
    reason: str | None = None
    thickness_cells: float | None = None
    ratio_dim_bright: Measured | None = None
    ratio_x_bright: Measured | None = None
    table_ratios_err: tuple[float | None, float | None] | None = None
    chi2: float | None = None
    n_columns_used: dict[str, int] | None = None
    br_fraction_ci95: tuple[float | None, float | None] | None = None
    mixed_fraction_ci95: tuple[float | None, float | None] | None = None
    shifted_fraction_ci95: tuple[float | None, float | None] | None = None
    vegard_br_fraction: Measured | None = None
    vegard_agrees: bool | None = None
    vegard_convention: str | None = None
    note: str | None = None
    # joint inversion against a registry-depth table (nanodomains.stem.zcontrast), schema /4
    intensity_mode: str | None = None
    br_fraction_ci90: tuple[float | None, float | None] | None = None
    mixed_fraction_ci90: tuple[float | None, float | None] | None = None
    shifted_fraction_ci90: tuple[float | None, float | None] | None = None
    br_fraction_status: str | None = None
    shifted_fraction_status: str | None = None
    shifted_fraction_candidates: tuple[float, float] | None = None
    p_minority_at_entrance: float | None = None
    thickness_nm: Measured | None = None
    thickness_nm_ci90: tuple[float | None, float | None] | None = None
    thickness_source: str | None = None


class StemDomain(Item):
    """One nanodomain (a row of the seed's Table S1).

    ``registry``: +1 the reference registry of its crystal (that of its largest
    domain), -1 half-cell (1/2 a<111>) shifted, 0 undetermined. ``shifted_fraction``
    is the fraction of the column thickness in the non-reference registry (a
    convention); ``mixed_fraction`` = min(s, 1 - s) is convention-free.
    ``br_fraction``: analysis, from the column intensities; truth of a model domain,
    its composition; truth of a projected region, Br / (Br + I) of its X columns.
    ``projected_br_fraction`` (truth only): Br / (Br + I) of the domain's X columns
    in projection.
    """

    id: int
    name: str = _skip("")
    area_nm2: float | None = None
    centroid_nm: FloatArray = _array()
    lattice_pm: Measured = Measured(value=None)
    lattice_a1_pm: Measured | None = None
    lattice_a2_pm: Measured | None = None
    lattice_n_columns: int | None = _skip()
    lattice_residual_pm: float | None = _skip()
    lattice_source: str | None = _skip()
    br_fraction: Measured = Measured(value=None)
    shifted_fraction: Measured = Measured(value=None)
    mixed_fraction: Measured = Measured(value=None)
    projected_br_fraction: Measured | None = _skip()
    formula: str | None = _skip()
    registry: int = _skip(0)
    registry_signal: float | None = _skip()
    contrast: float | None = _skip()
    n_columns: int | None = _skip()
    n_interior_columns: int | None = _skip()
    visible: bool = True
    model_domains: tuple[int, ...] | None = _skip()
    composition: StemComposition | None = _skip()


class StemBoundary(Item):
    """A boundary between two domains.

    ``domains``: the two domain ids (ascending); ``type`` "RP" (the registries
    differ: a Ruddlesden-Popper fault edge-on) or "other"; ``segment_nm`` the end
    points ``[[x0, y0], [x1, y1]]`` of the line (truth: the model plane; analysis: the
    extent of the boundary pixels along their mean direction); ``midpoint_nm`` and
    ``normal`` (unit step from ``domains[0]`` to ``domains[1]``). ``eds_step``: the
    EDS line-scan step fit across it, when EDS maps were given.

    Evidence (analysis; :func:`nanodomains.stem.domains.boundary_evidence`): an "RP"
    boundary is claimed only where the half-cell shift is measured.
    ``phase_jump_rad`` the jumps of the registry phases D10, D01 (pi at a half-cell
    shift, 0 without), ``phase_jump_z`` the smaller of the two in units of the
    within-domain phase scatter, ``column_contrast_z`` the bright-minus-dim
    sublattice contrast of each side (z-scores; opposite signs: the columns swap),
    ``column_swap`` whether that swap is measured, ``lattice_step_rel`` and
    ``lattice_step_z`` the step of the column spacing, ``evidence`` one line saying
    why the type was given. ``length_nm`` is measured along the boundary.
    """

    domains: tuple[int, int] = _skip()
    type: str
    length_nm: float | None = None
    segment_nm: FloatArray = _array()
    midpoint_nm: FloatArray = _array()
    normal: FloatArray = _array()
    n_edges: int | None = _skip()
    model_domains: tuple[int, int] | None = _skip()
    eds_step: dict[str, Any] | None = _skip()
    phase_jump_rad: tuple[float | None, float | None] | None = _skip()
    phase_jump_z: float | None = _skip()
    column_contrast_z: tuple[float | None, float | None] | None = _skip()
    column_swap: bool | None = _skip()
    lattice_step_rel: float | None = _skip()
    lattice_step_z: float | None = _skip()
    evidence: str | None = _skip()


class StemColumnSet(Item):
    """Summary of the atom columns: counts per type, fit failures, fit settings."""

    n_columns: int
    counts: dict[str, int] = Field(default_factory=dict)
    n_fit_failed: int | None = None
    fit_sweeps: int | None = None
    classification: str | None = None
    file: str | None = None


class StemBackground(Item):
    """Background under the columns and the column intensities measured above it.

    ``method``: "vacuum" (mean of the pixels far from every column; cross-sections
    are Voronoi sums minus it), "column_fits" (no vacuum in the field: the fitted
    background of the joint column fits; cross-sections are the Gaussian column
    volumes above it, StatSTEM's scattering cross-sections, De Backer et al.,
    Ultramicroscopy 171, 104 (2016)) or "argument" (a level given by the user,
    ``--background``; Voronoi sums minus it). ``level_per_px`` in image units per
    pixel; ``cross_section`` names the column intensity used.
    """

    level_per_px: Measured
    n_vacuum_px: int | None = None
    n_columns: int | None = None
    source: str
    method: str | None = None
    cross_section: str | None = None


class StemTable(Item):
    """The column-intensity table used for the compositions."""

    method: str | None = None
    note: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class StemDomains(Record):
    """Domains, boundaries, lattice and compositions of one ADF-STEM image (``domains.json``).

    ``settings`` holds every argument of the analysis (``analysis``) and of the
    segmentation (``segmentation``); ``not_computed`` the stages that did not run
    (``composition``, ...) with the reason.
    """

    SCHEMA: ClassVar[str] = "nanodomains.stem.domains/4"
    #: earlier schemas read as this one (every field added since has a default)
    READS_SCHEMAS: ClassVar[tuple[str, ...]] = ("nanodomains.stem.domains/2", "nanodomains.stem.domains/3")

    pixel_size_pm: float
    shape_px: tuple[int, int]
    pixel_size_source: str | None = _skip()
    previous_pixel_size_pm: float | None = _skip()
    previous_pixel_size_source: str | None = _skip()
    column_names: tuple[str, str, str] = _skip(("Cs", "PbX", "X"))
    lattice: StemLattice | None = None
    lattice_check: dict[str, Any] | None = _skip()
    registry_convention: str = _skip("+1: the registry of the crystal's largest domain (reference), "
                                     "-1: half-cell shifted, 0: undetermined")
    shifted_fraction_definition: str | None = _skip()
    columns: StemColumnSet | None = _skip()
    background: StemBackground | None = _skip()
    table: StemTable | None = _skip()
    termination: str | None = _skip()
    thickness: str | None = _skip()
    eds: str | None = _skip()
    domains: tuple[StemDomain, ...] = ()
    boundaries: tuple[StemBoundary, ...] = ()
    elapsed_s: float | None = _skip()

    @classmethod
    def from_dict(cls, data: Mapping, *, source: str = "record") -> StemDomains:
        """Validate a dict written by :meth:`to_dict`, of this schema or one in ``READS_SCHEMAS``."""
        if isinstance(data, Mapping) and data.get("schema") in StemDomains.READS_SCHEMAS:
            data = {**data, "schema": StemDomains.SCHEMA}
        return super(StemDomains, StemDomains).from_dict(data, source=source)


class StemDomainsV2(StemDomains):
    """Reader of ``nanodomains.stem.domains/2`` files (:func:`~nanodomains.records.load_record`
    chooses the type by schema): returns a :class:`StemDomains` (schema ``/4``)."""

    SCHEMA: ClassVar[str] = "nanodomains.stem.domains/2"


class StemDomainsV3(StemDomains):
    """Reader of ``nanodomains.stem.domains/3`` files: returns a :class:`StemDomains` (schema ``/4``)."""

    SCHEMA: ClassVar[str] = "nanodomains.stem.domains/3"


class StemRegionMatch(Item):
    """A projected truth region and the analysed domain paired with it (map overlap)."""

    LABEL: ClassVar[str | None] = "region"

    region: int
    model_domains: tuple[int, ...]
    majority_label: int
    area_nm2: float
    match: int | None = None
    name: str | None = None
    iou: float
    compared: bool
    merged_indistinct: bool = False


class StemValidation(Record):
    """A STEM analysis against the truth of its simulated image (``stem validate``).

    ``comparison``: :func:`~nanodomains.records.compare` of the projected truth and the
    analysis (:class:`StemDomains` each, domains paired by map overlap); ``regions``
    the geometry of that pairing (IoU per projected truth region); ``rp_*`` edge-on RP
    faults between compared regions as pairs of region labels.
    """

    SCHEMA: ClassVar[str] = "nanodomains.stem.validation/1"

    comparison: Comparison
    regions: tuple[StemRegionMatch, ...] = ()
    rp_truth: tuple[tuple[int, int], ...] = ()
    rp_found: tuple[tuple[int, int], ...] = ()
    rp_missed: tuple[tuple[int, int], ...] = ()
    n_domains_found: int
    n_regions_compared: int
    min_area_nm2: float

    @property
    def ok(self) -> bool:
        """Every compared region matched within the tolerances and no RP fault missed."""
        return self.comparison.ok and not self.rp_missed

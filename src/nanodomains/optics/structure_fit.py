r"""The structure of one emitting domain from its lines: a deterministic inverse of the level model.

What a spectroscopist states about one domain (its exciton line centre, and perhaps
its fine-structure splitting or its trion line) is turned into a domain of Br fraction
``f`` and size, by solving the level model (:mod:`nanodomains.optics.levels`, default
parameters, 4 K) exactly, without noise or priors. This is how the seed-study presets
(:mod:`nanodomains.optics.presets`) are built; it is the deterministic analogue of the
mode of the Bayesian posterior of ``nanodomains infer`` (same forward model, no
uncertainties), so infer's tests can compare with it.

Geometry (as the growth model builds domains, :mod:`nanodomains.growth`)
------------------------------------------------------------------------
``"slab"``
    a {100} slab of thickness ``t`` across an NC of lateral edges ``W x W``: the
    domain box is ``(t, W, W)``; its four ``t x W`` faces lie on the NC surface, and
    ``faces_on_surface`` (0-2) of its ``W x W`` faces (an end slab has one), which sets
    the dielectric-confinement share ``s = (4 t W + n W^2) / (4 t W + 2 W^2)``.
``"cube"``
    a single-domain NC of edge ``L`` (``s = 1``).
``"box"`` (:func:`composition_for_box`)
    any given cuboid (only f is solved).

Unknowns and equations
----------------------
With ``W`` fixed, a domain has two unknowns, ``f`` and the size ``x`` (``t`` or ``L``):

1. the centre: for every size the composition ``f(x)`` is the root (Brent) of
   ``E_X(f, x) = hc / lambda_c`` (:func:`composition_for_wavelength`); ``E_X`` rises
   monotonically with ``f`` (the gap does, at fixed size). With a ``kind`` the centre
   is the mean energy of the visible lines (the convention of ``center_nm`` in the
   emitter records), which an asymmetric pattern puts ``F <v_visible>`` off ``E_X``;
   that offset is iterated out (fixed point, three steps);
2. a second observable fixes ``x``: the bright splitting ``F_obs(f(x), x)`` or the trion
   shift ``E_T(f(x), x)``; both fall in magnitude as the domain grows, so the root in
   ``x`` is unique (Brent); the trion is matched on its line, ``E_X + E_T``. ``F_obs`` is the mean gap of the visible bright lines of the
   stated ``kind`` (:func:`model_levels`: doublet -> tetragonal, triplet ->
   orthorhombic crystal-field pattern, unique axis along the shortest edge, NC lying
   flat with identity orientation, objective NA 0.7), which includes the shape
   (depolarisation) term of the model; for a cube it equals the exchange scale ``F =
   eta E_x`` of :func:`nanodomains.optics.levels.domain_observables`. With ``kind=None``
   the target is that scale ``F`` itself.

Without a centre, ``f`` is given (e.g. the NC's nominal composition); without a second
observable, the size is given (``size_nm``) and only ``f`` is solved.

Physical bounds and reachability
--------------------------------
Sizes are searched within ``size_bounds_nm``: by default 10-20 nm for a single-domain
NC (the seed's NC edges) and 2 nm (three unit cells, the growth model's
``min_domain_cells``) to ``W`` for a slab. A target the bounds cannot reach is not
forced: the size goes to the nearer bound, the residual is reported, ``reachable`` is
False, and ``unbounded_size_nm`` gives the size the target would need (searched over
1.5-60 nm) so that the gap is measured, not hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import optimize

from nanodomains import materials
from nanodomains.errors import FitError, InputError, require_in_range, require_positive
from nanodomains.optics import levels as lv

__all__ = ["StructureFit", "structure_for_lines", "composition_for_box", "composition_for_wavelength", "model_levels",
           "slab_surface_fraction", "KIND_SYMMETRY", "SINGLE_NC_BOUNDS_NM", "MIN_SLAB_NM"]

#: Crystal-field pattern giving each number of bright lines (levels._symmetry_pattern).
KIND_SYMMETRY = {"singlet": "cubic", "doublet": "tetragonal", "triplet": "orthorhombic"}

#: Edge range of the seed's NCs (Liu, Zhu, Pols et al., Nano Lett. 23, 10089 (2023): 10-20 nm).
SINGLE_NC_BOUNDS_NM = (10.0, 20.0)

#: Thinnest slab: three pseudo-cubic cells (growth model ``min_domain_cells`` = 3, ~0.62 nm each).
MIN_SLAB_NM = 2.0

#: Range over which the size a target would need is searched when the bounds cannot reach it.
_UNBOUNDED_NM = (1.5, 60.0)


def composition_for_wavelength(wavelength_nm: float, edges_nm, *, surface_fraction: float = 1.0,
                               temperature: str = "4K",
                               params: lv.LevelParameters = lv.DEFAULT_LEVEL_PARAMETERS) -> float:
    """Br fraction f for which the level model puts a domain's exciton at ``wavelength_nm``.

    Parameters
    ----------
    wavelength_nm : float
        Exciton (bright-triplet mean) wavelength.
    edges_nm : float or (3,) array
        Domain box.
    surface_fraction : float
        Share of the domain surface on the NC surface (dielectric confinement).

    Returns
    -------
    float
        f in [0, 1], to 1e-13.

    Raises
    ------
    FitError
        When no f in [0, 1] reaches the wavelength for this box (the range is named).
    """
    target = float(materials.energy_ev(require_positive("wavelength_nm", wavelength_nm)))

    def resid(f):
        return lv.exciton_state(f, edges_nm, temperature, surface_fraction=surface_fraction,
                                params=params).energy_ev - target

    lo, hi = resid(0.0), resid(1.0)
    if lo > 0 or hi < 0:
        e0 = materials.wavelength_nm(target + lo)
        e1 = materials.wavelength_nm(target + hi)
        raise FitError(f"{wavelength_nm} nm is outside what a {list(np.atleast_1d(edges_nm))} nm domain "
                       f"can emit ({e1:.1f}-{e0:.1f} nm for f = 1..0)")
    return float(optimize.brentq(resid, 0.0, 1.0, xtol=1e-13, rtol=1e-13))


def slab_surface_fraction(thickness_nm: float, lateral_nm: float, faces_on_surface: int) -> float:
    """Share of a ``(t, W, W)`` slab's surface on the NC surface: ``(4tW + n W^2)/(4tW + 2W^2)``."""
    t, w = float(thickness_nm), float(lateral_nm)
    return (4 * t * w + faces_on_surface * w * w) / (4 * t * w + 2 * w * w)


def model_levels(br_fraction: float, edges_nm, kind: str | None = None, *, surface_fraction: float = 1.0,
                 params: lv.LevelParameters = lv.DEFAULT_LEVEL_PARAMETERS) -> lv.DomainLevels:
    """Levels of a domain whose bright lines form a set of ``kind``, as the presets use them.

    The crystal-field pattern is the one of ``kind`` (:data:`KIND_SYMMETRY`; None: the
    parameters' default), its unique axis along the domain's shortest edge (x, in the
    image plane, when edges tie); the NC lies flat on a face (identity orientation,
    optical axis along the third NC axis).
    """
    edges = np.asarray(edges_nm, float) * np.ones(3)
    sym = None if kind is None else KIND_SYMMETRY.get(kind)
    if kind is not None and sym is None:
        raise InputError(f"kind must be singlet, doublet or triplet, got {kind!r}")
    # shortest edge last (the pattern's unique axis); among equal edges the unique axis is
    # x, in the image plane, so that its line is collected as well as the others
    perm = np.array(sorted(range(3), key=lambda i: (-edges[i], -i)))
    return lv.domain_levels(br_fraction, edges[perm], surface_fraction=surface_fraction,
                            orientation=np.eye(3)[:, perm], symmetry=sym, params=params)


@dataclass(frozen=True)
class StructureFit:
    """A domain found by :func:`structure_for_lines` and what the model predicts for it.

    ``size_nm`` is the slab thickness ``t`` or the cube edge ``L``; ``edges_nm`` the
    domain box ``(t, W, W)`` or ``(L, L, L)``. ``predicted`` holds the model's centre
    (nm), visible-line FSS and kind, exchange scale F (ueV), trion line (nm) and
    lifetime (ns); ``residuals`` model minus target for every stated number.
    """

    geometry: str
    br_fraction: float
    size_nm: float
    lateral_nm: float
    edges_nm: tuple[float, float, float]
    surface_fraction: float
    kind: str | None
    target: dict
    predicted: dict
    residuals: dict
    reachable: bool
    size_bounds_nm: tuple[float, float]
    unbounded_size_nm: float | None = None
    notes: tuple[str, ...] = field(default=())

    def summary(self) -> dict:
        """JSON-ready description (the presets keep it in their truth record)."""
        return {"geometry": self.geometry, "br_fraction": self.br_fraction, "size_nm": self.size_nm,
                "lateral_nm": self.lateral_nm, "edges_nm": list(self.edges_nm),
                "surface_fraction": self.surface_fraction, "kind": self.kind, "target": dict(self.target),
                "predicted": dict(self.predicted), "residuals": dict(self.residuals),
                "reachable": self.reachable, "size_bounds_nm": list(self.size_bounds_nm),
                "unbounded_size_nm": self.unbounded_size_nm, "notes": list(self.notes)}


def _box(geometry, size: float, lateral: float) -> tuple[float, float, float]:
    if isinstance(geometry, tuple):  # ("box", edges, surface fraction)
        return geometry[1]
    return (size, size, size) if geometry == "cube" else (size, lateral, lateral)


def _surface(geometry, size: float, lateral: float, faces: int) -> float:
    if isinstance(geometry, tuple):
        return geometry[2]
    return 1.0 if geometry == "cube" else slab_surface_fraction(size, lateral, faces)


def composition_for_box(center_nm: float, edges_nm, *, kind: str | None = None, surface_fraction: float = 1.0,
                        params: lv.LevelParameters = lv.DEFAULT_LEVEL_PARAMETERS) -> StructureFit:
    """Br fraction of a domain of a given box (any cuboid) whose visible lines centre on ``center_nm``.

    For domains that are neither slabs nor single-domain cubes (a preset's grid of
    boxes); the size is given, only f is solved (as in :func:`structure_for_lines`).
    """
    lv.effective_size_nm(edges_nm)  # validates the edges (finite, > 0, <= 500 nm)
    edges = tuple(float(x) for x in np.asarray(edges_nm, float) * np.ones(3))
    s = require_in_range("surface_fraction", surface_fraction, 0.0, 1.0)
    if kind is not None and kind not in KIND_SYMMETRY:
        raise InputError(f"kind must be singlet, doublet or triplet, got {kind!r}")
    require_positive("center_nm", center_nm)
    return _solve(("box", edges, float(s)), float(center_nm), None, None, None, kind, max(edges), max(edges),
                  (min(edges), max(edges)), 0, params, (("center_nm", float(center_nm)),))


def _check_inputs(geometry, center_nm, br_fraction, fss_uev, trion_nm, size_nm, kind):
    if geometry not in ("slab", "cube"):
        raise InputError(f"geometry must be 'slab' or 'cube', got {geometry!r}")
    if (center_nm is None) == (br_fraction is None):
        raise InputError("give the line centre (to solve the composition) or br_fraction (to fix it), not both")
    if fss_uev is not None and trion_nm is not None:
        raise InputError("with W fixed a domain has two unknowns (f, size): give fss_uev or trion_nm, not both")
    second = fss_uev is not None or trion_nm is not None
    if second == (size_nm is not None):
        raise InputError("give a second observable (fss_uev or trion_nm) to solve the size, or size_nm to fix it")
    if br_fraction is not None and not second:
        raise InputError("nothing to solve: br_fraction and size_nm both given")
    if kind is not None and kind not in KIND_SYMMETRY:
        raise InputError(f"kind must be singlet, doublet or triplet, got {kind!r}")
    if fss_uev is not None and kind == "singlet":
        raise InputError("a singlet has no fine-structure splitting to match")
    if trion_nm is not None and center_nm is not None and not trion_nm > center_nm:
        raise InputError(f"the trion line ({trion_nm} nm) must lie to the red of the exciton ({center_nm} nm)")


def structure_for_lines(center_nm: float | None = None, fss_uev: float | None = None, *,
                        kind: str | None = None, trion_nm: float | None = None,
                        br_fraction: float | None = None, geometry: str = "slab", lateral_nm: float = 15.0,
                        size_nm: float | None = None, size_bounds_nm: tuple[float, float] | None = None,
                        faces_on_surface: int = 1,
                        params: lv.LevelParameters = lv.DEFAULT_LEVEL_PARAMETERS) -> StructureFit:
    """Domain composition and size whose model lines equal the stated ones (see the module docstring).

    Parameters
    ----------
    center_nm : float, optional
        Stated exciton centre (mean of the bright lines); solves f. Else give ``br_fraction``.
    fss_uev : float, optional
        Stated fine-structure splitting (mean gap of the visible lines of ``kind``; the
        exchange scale F when ``kind`` is None); solves the size.
    kind : {"singlet", "doublet", "triplet"}, optional
        Number of bright lines; sets the crystal-field pattern (:func:`model_levels`).
    trion_nm : float, optional
        Stated trion line of the domain; solves the size instead of ``fss_uev``.
    br_fraction : float, optional
        Fixed composition when no centre is stated.
    geometry : {"slab", "cube"}
        A {100} slab ``(t, W, W)`` of a multi-domain NC or a single-domain cubic NC.
    lateral_nm : float
        ``W`` of a slab (ignored for a cube).
    size_nm : float, optional
        Fixed ``t`` or ``L`` when no second observable is stated.
    size_bounds_nm : (float, float), optional
        Physical range of the size (default :data:`SINGLE_NC_BOUNDS_NM` for a cube,
        (:data:`MIN_SLAB_NM`, W) for a slab).
    faces_on_surface : {0, 1, 2}
        ``W x W`` faces of the slab on the NC surface (1 for an end slab).
    Returns
    -------
    StructureFit

    Raises
    ------
    InputError
        Inconsistent or absurd inputs (which unknowns to solve is ambiguous).
    FitError
        The centre cannot be reached by any composition at the chosen size.

    Examples
    --------
    >>> s = structure_for_lines(620.0, size_nm=10.0, geometry="cube")
    >>> round(s.predicted["center_nm"], 6), 0.0 < s.br_fraction < 1.0
    (620.0, True)
    """
    _check_inputs(geometry, center_nm, br_fraction, fss_uev, trion_nm, size_nm, kind)
    w = require_positive("lateral_nm", lateral_nm) if geometry == "slab" else None
    if faces_on_surface not in (0, 1, 2):
        raise InputError(f"faces_on_surface must be 0, 1 or 2, got {faces_on_surface!r}")
    if br_fraction is not None:
        require_in_range("br_fraction", br_fraction, 0.0, 1.0)
    bounds = size_bounds_nm or (SINGLE_NC_BOUNDS_NM if geometry == "cube" else (MIN_SLAB_NM, w))
    lo, hi = (require_positive("size bound", b) for b in bounds)
    if not lo < hi:
        raise InputError(f"size_bounds_nm must be (lo, hi) with lo < hi, got {bounds}")
    target = {k: v for k, v in (("center_nm", center_nm), ("fss_uev", fss_uev), ("trion_nm", trion_nm))
              if v is not None}
    if fss_uev is not None:
        require_positive("fss_uev", fss_uev)
    return _solve(geometry, center_nm, br_fraction, fss_uev, trion_nm, kind, w or 0.0, size_nm,
                  (float(lo), float(hi)), faces_on_surface, params, tuple(sorted(target.items())))


def _composition(center_nm, br_fraction, geometry, size, lateral, faces, params, kind=None) -> float:
    """f putting the centre of the visible lines of ``kind`` (the exciton when None) at ``center_nm``.

    The visible lines' mean sits ``F <v_visible>`` from the exciton (an unequal pattern
    whose merged lines are not symmetric), a shift linear in F and small: three
    fixed-point steps on the exciton target converge to < 1e-6 nm.
    """
    if br_fraction is not None:
        return float(br_fraction)
    box = _box(geometry, size, lateral)
    sfrac = _surface(geometry, size, lateral, faces)
    target_ev = float(materials.energy_ev(center_nm))
    offset_ev = 0.0
    for _ in range(4 if kind is not None else 1):
        f = composition_for_wavelength(float(materials.wavelength_nm(target_ev - offset_ev)), box,
                                       surface_fraction=sfrac, params=params)
        if kind is None:
            break
        lev = model_levels(f, box, kind, surface_fraction=sfrac, params=params)
        offset_ev = lev.fine.center_ev - lev.exciton.energy_ev
    return f


def _second(which: str, f: float, geometry: str, size: float, lateral: float, faces: int, kind, params) -> float:
    """The size-fixing observable of the model (ueV): visible FSS, scale F, or trion line energy."""
    box = _box(geometry, size, lateral)
    if which == "trion":
        ex = lv.exciton_state(f, box, "4K", surface_fraction=_surface(geometry, size, lateral, faces), params=params)
        return 1e6 * (ex.energy_ev + lv.trion_shift_ev(box, f, params))
    if kind is None:
        return lv.fss_scale_uev(box, f, params)
    return model_levels(f, box, kind, surface_fraction=_surface(geometry, size, lateral, faces),
                        params=params).fine.fss_uev


@lru_cache(maxsize=256)
def _solve(geometry, center_nm, br_fraction, fss_uev, trion_nm, kind, lateral, size_nm, bounds, faces, params,
           target_items) -> StructureFit:
    notes: list[str] = []
    target = dict(target_items)
    unbounded = None
    reachable = True
    if size_nm is not None:
        size = require_positive("size_nm", size_nm)
    else:
        which = "fss" if fss_uev is not None else "trion"
        goal = fss_uev if which == "fss" else 1e6 * float(materials.energy_ev(trion_nm))

        def resid(x):
            f = _composition(center_nm, br_fraction, geometry, x, lateral, faces, params, kind)
            return _second(which, f, geometry, x, lateral, faces, kind, params) - goal

        size, reachable, unbounded = _root_in_bounds(resid, bounds)
        if not reachable:
            stated = f"FSS {fss_uev:g} ueV" if which == "fss" else f"trion line {trion_nm:g} nm"
            notes.append(f"stated {stated} needs a size of "
                         + (f"{unbounded:.2f} nm" if unbounded is not None else "none within 1.5-60 nm")
                         + f", outside the physical {bounds[0]:g}-{bounds[1]:g} nm; nearest bound {size:g} nm taken")
    f = _composition(center_nm, br_fraction, geometry, size, lateral, faces, params, kind)
    box = _box(geometry, size, lateral)
    sfrac = _surface(geometry, size, lateral, faces)
    lev = model_levels(f, box, kind, surface_fraction=sfrac, params=params)
    center = lev.fine.center_nm if kind is not None else lev.exciton.wavelength_nm
    predicted = {"center_nm": center, "exciton_nm": lev.exciton.wavelength_nm, "kind": lev.fine.kind, "fss_uev": lev.fine.fss_uev,
                 "fss_scale_uev": lv.fss_scale_uev(box, f, params), "trion_nm": lev.trion_nm,
                 "lifetime_ns": lev.lifetime_ns, "lines_nm": [float(x) for x in lev.fine.lines_nm]}
    if kind is not None and lev.fine.kind != kind:
        notes.append(f"the model shows a {lev.fine.kind}, not a {kind}, for this box (lines merge or are not visible)")
    residuals = {}
    if center_nm is not None:
        residuals["center_nm"] = predicted["center_nm"] - center_nm
    if fss_uev is not None:
        residuals["fss_uev"] = (predicted["fss_uev"] if kind is not None else predicted["fss_scale_uev"]) - fss_uev
    if trion_nm is not None:
        residuals["trion_nm"] = predicted["trion_nm"] - trion_nm
    return StructureFit(geometry=geometry[0] if isinstance(geometry, tuple) else geometry, br_fraction=f, size_nm=float(size), lateral_nm=float(lateral or size),
                        edges_nm=tuple(float(x) for x in box), surface_fraction=sfrac, kind=kind, target=target,
                        predicted=predicted, residuals=residuals, reachable=reachable, size_bounds_nm=bounds,
                        unbounded_size_nm=unbounded, notes=tuple(notes))


def _safe(resid, x) -> float:
    try:
        return float(resid(x))
    except FitError:  # the centre cannot be reached at this size
        return float("nan")


def _root_in_bounds(resid, bounds):
    """Root of a monotone residual in ``bounds``; else the nearer end and the unbounded root.

    The residual is NaN where the centre cannot be reached (too thin a domain for a red
    line), so the bounds are scanned on a grid and the root bracketed where it is finite.
    """
    lo, hi = bounds
    xs = np.geomspace(lo, hi, 12)
    vals = np.array([_safe(resid, x) for x in xs])
    bracket = _first_sign_change(xs, vals)
    if bracket is not None:
        return float(optimize.brentq(resid, *bracket, xtol=1e-9, rtol=1e-12, maxiter=200)), True, None
    ok = np.isfinite(vals)
    if not ok.any():
        raise FitError(f"the centre cannot be reached by any composition at sizes {lo:g}-{hi:g} nm")
    nearest = float(xs[ok][np.argmin(np.abs(vals[ok]))])
    grid = np.geomspace(*_UNBOUNDED_NM, 60)
    gv = np.array([_safe(resid, x) for x in grid])
    bracket = _first_sign_change(grid, gv)
    unbounded = None if bracket is None else float(optimize.brentq(resid, *bracket, xtol=1e-6))
    return nearest, False, unbounded


def _first_sign_change(xs, vals):
    ok = np.isfinite(vals[:-1]) & np.isfinite(vals[1:])
    idx = np.flatnonzero(ok & (np.sign(vals[:-1]) != np.sign(vals[1:])))
    if idx.size == 0:
        return None
    i = int(idx[0])
    return float(xs[i]), float(xs[i + 1])

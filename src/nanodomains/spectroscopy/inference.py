r"""From measured 4 K PL lines to the domains that emit them: a Bayesian inverse.

``nanodomains infer emitters.json`` samples the posterior over the Br fraction and size
of every emitting domain and the material parameters the NC's domains share, with
emcee (Foreman-Mackey et al., PASP 125, 306 (2013)), through the same level model the
forward simulator uses (:mod:`nanodomains.optics.levels`).

Model of one NC
---------------
Domains are {100} slabs stacked along one axis, as the growth model builds them
(:mod:`nanodomains.growth`, seed Fig. 2): domain ``i`` has edges ``(t_i, W, W)`` with
its own thickness ``t_i`` and the NC's lateral edge ``W`` (shared). Parameters::

    theta = (f_1..f_n, t_1..t_n, W, b, dE, m)

``f_i`` Br fraction, ``b`` gap bowing, ``dE`` an absolute offset of all gaps (the
level model's absolute-energy error, common to the NC), ``m`` the exchange constant
relative to its calibration (``M = 145 +- 12 meV nm^3``, CsPbCl3 NCs, doi
10.1021/acsnano.3c00772).

Observables and likelihood (independent Gaussians):

* neutral-emitter centre ``E_i``:
  ``E0(f_i, t_i, W) + s_i D(f_i, t_i, W) - b f_i (1 - f_i) + dE`` with ``E0`` the
  variational exciton energy without the dielectric step and ``D`` the dielectric
  shift of a domain fully on the NC surface, both tabulated exactly on a grid
  (:class:`SlabTable`: polynomials in f through exact points, splined in size). ``s_i`` is the fraction of the slab's
  surface on the NC surface, the mean of an interior slab ``2t/(2t+W)`` and an end
  slab ``(4t+W)/(4t+2W)``; half their difference times ``D`` enters the variance,
  with the table's interpolation error (measured in the tests) and half the FSS (the
  centre of the visible lines against the triplet's centre);
* the kind (singlet, doublet, triplet) and the FSS: the bright lines sit at
  ``E + F v`` with ``F = m eta M (27/8V) K`` the bright splitting scale (``V = t W^2``,
  ``K`` the oscillator enhancement) and ``v`` the crystal-field pattern plus the shape
  term of :func:`~nanodomains.optics.levels.fine_structure`. Over the patterns and axis
  assignments the forward model draws from (weights of
  :class:`~nanodomains.optics.emitters.DynamicsParameters`) and the crystal axis along
  the optical axis, with lines closer than the emitter's measured line width seen as
  one (at their intensity-weighted mean, as a fit of one line to a blend places it),
  :class:`FinePatterns` gives every combination's number of seen lines and measured
  FSS / F = ``g`` for the slab's aspect ratio and width/F. The kind and FSS enter as the
  mixture ``sum_c w_c [kind_c = kind] N(FSS; g_c F, sigma^2 + (0.05 g_c F)^2)``
  (:data:`FSS_REL_ERR`), plus :data:`KIND_ERROR_FLOOR` times an uninformative
  ``N(FSS; F, F^2)`` for a miscounted emitter; without a measured FSS only the kind's
  probability enters. Without a measured line width the
  model's ``merge_uev`` is the threshold (a warning says so);
* a trion paired with its neutral set (``trion_of``): the shift
  ``E(X*) - E(X)`` against the trion law of :mod:`~nanodomains.optics.levels`,
  with a relative model error ``trion_rel_err`` (assumed 25 %: the CsPbBr3 law is
  carried to other compositions untested).

Priors (defaults, :class:`InferencePriors`): ``f`` uniform on [0, 1]; ``t`` uniform on
[1.8 nm (3 cells, the growth model's smallest domain), 1.15 W]; the emitting slabs fit
in the NC, ``sum t_i <= 1.15 W`` (growth edges: per-axis aspect scatter 5 %, 3 sd);
``W`` uniform on the seed's 10-20 nm; ``b`` uniform on [-0.10, 0.35] eV (from the
negligible or negative bowing computed for CsPb(I,Br)3 by Yin, Yan & Wei, JPCL 5, 3625
(2014) to the 0.33 eV measured on MAPb(I,Br)3 by Noh et al., Nano Lett. 13, 1764
(2013)); ``dE`` normal with sd 20 meV (assumed: the spread of reported 4 K gaps of
the end members, e.g. Yang et al. 2017 against the RT gaps of the literature fit); ``m``
normal 1 +- 0.083 (the calibration's 12/145).

STEM prior (optional, ``--stem domains.json`` of the same kind of NC): each emitting
domain's ``(f, t W)`` follows a mixture with one equal-weight component per STEM
domain: ``N(f; f_j, sf_j) N(t W; A_j, 0.2 A_j)`` with ``f_j`` the Z-contrast Br
fraction (else Vegard from the lattice constant) and ``A_j`` the projected area of a
slab seen side-on (20 % assumed for the boundary positions). The mixture does not
force a one-to-one assignment of emitters to STEM domains.

Outputs: posterior means, sds and 90 % intervals per domain and for the shared
parameters; the size/composition correlation (the degeneracy); a posterior-predictive
z-score for every measured number (``|z|`` > 3 sets ``fit_ok = False`` with a warning);
autocorrelation times and effective sample size (emcee's ``get_autocorr_time``), with a
warning unless the chain holds 20 autocorrelation times and 400 effective samples.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from itertools import permutations
from pathlib import Path

import numba
import numpy as np
from scipy.interpolate import RegularGridInterpolator

from nanodomains import materials
from nanodomains.errors import FitError, InputError, require_positive
from nanodomains.files import atomic_path
from nanodomains.optics import levels as lv
from nanodomains.records import EmitterInference, InferredDomain, Measured, PLEmitters, StemDomains
from nanodomains.seeds import rng as make_rng

__all__ = ["InferencePriors", "InferenceSettings", "Observations", "StemPrior", "PosteriorModel",
           "InferenceRun", "observations_from_emitters", "stem_prior_from_domains", "slab_level_table", "SlabTable",
           "FinePatterns", "fine_patterns", "fss_ratios", "infer_emitters", "plot_corner", "plot_predictive", "write_inference",
           "load_emitters", "load_stem_domains", "SYMMETRY_WEIGHTS", "KIND_ERROR_FLOOR",
           "FSS_REL_ERR"]

#: Crystal-field patterns of the bright triplet and their weights, as the forward model
#: draws them (``optics.emitters.DynamicsParameters.symmetry_weights``: cubic,
#: tetragonal, orthorhombic; illustrative there, so illustrative here).
SYMMETRY_WEIGHTS = {"cubic": 0.2, "tetragonal": 0.4, "orthorhombic": 0.4}


@dataclass(frozen=True)
class InferencePriors:
    """Priors of the inverse (sources in the module docstring)."""

    nc_edge_nm: tuple[float, float] = (10.0, 20.0)
    thickness_min_nm: float = 1.8
    stack_tolerance: float = 1.15
    bowing_ev: tuple[float, float] = (-0.10, 0.35)
    gap_offset_sd_ev: float = 0.020
    exchange_rel_sd: float = 12.0 / 145.3

    def __post_init__(self) -> None:
        lo, hi = self.nc_edge_nm
        if not (2.0 <= lo < hi <= 60.0):
            raise InputError(f"nc_edge_nm prior must be (lo, hi) with 2 <= lo < hi <= 60 nm, got {self.nc_edge_nm}")
        if not (0.5 <= self.thickness_min_nm < lo):
            raise InputError(f"thickness_min_nm must lie in [0.5, {lo}) nm, got {self.thickness_min_nm}")
        blo, bhi = self.bowing_ev
        if not (-1.0 <= blo < bhi <= 1.0):
            raise InputError(f"bowing_ev prior must be (lo, hi) within [-1, 1] eV, got {self.bowing_ev}")
        require_positive("gap_offset_sd_ev", self.gap_offset_sd_ev)
        require_positive("exchange_rel_sd", self.exchange_rel_sd)
        if not (1.0 <= self.stack_tolerance <= 2.0):
            raise InputError(f"stack_tolerance must lie in [1, 2], got {self.stack_tolerance}")


@dataclass(frozen=True)
class InferenceSettings:
    """Sampler and model-error settings."""

    n_walkers: int | None = None  # default: max(32, 4 ndim), even
    n_steps: int = 10000
    burn_fraction: float = 0.4
    seed: int = 0
    temperature: str = "4K"
    trion_rel_err: float = 0.25
    predictive_draws: int = 400

    def __post_init__(self) -> None:
        if int(self.n_steps) != self.n_steps or not (100 <= self.n_steps <= 1_000_000):
            raise InputError(f"n_steps must be an integer in [100, 1e6], got {self.n_steps!r}")
        if self.n_walkers is not None and (int(self.n_walkers) != self.n_walkers or self.n_walkers < 8):
            raise InputError(f"n_walkers must be an integer >= 8, got {self.n_walkers!r}")
        if not (0.0 <= self.burn_fraction < 0.9):
            raise InputError(f"burn_fraction must lie in [0, 0.9), got {self.burn_fraction}")
        if self.temperature not in ("4K", "RT"):
            raise InputError(f"temperature must be '4K' or 'RT', got {self.temperature!r}")
        require_positive("trion_rel_err", self.trion_rel_err)


# ---- tabulated forward model ------------------------------------------------------------

#: Convergence rule: kept steps >= 20 integrated autocorrelation times (emcee's guide asks
#: for ~50 for an accurate tau; 20 keeps its relative error near 20 %, Sokal 1997) and at
#: least 400 effective samples (the 5 % and 95 % quantiles to ~0.1 sd).
MIN_TAU_MULTIPLE = 20
MIN_EFFECTIVE = 400

_F_GRID = np.linspace(0.0, 1.0, 11)
_LOG_T_GRID = np.linspace(math.log(1.2), math.log(40.0), 22)
_W_GRID = np.linspace(6.0, 40.0, 12)


_SLAB_TABLES: dict[str, "SlabTable"] = {}
#: Degree of the polynomial in the Br fraction at every (t, W) node of the slab table.
F_DEGREE = 5


@dataclass(frozen=True)
class SlabTable:
    """Exact variational levels of slabs ``(t, W, W)``: polynomials in f over a (ln t, W) spline.

    At every node of a (ln t, W) grid, the exciton energy without the dielectric step
    (``e0``, eV, zero bowing), the dielectric shift of a domain wholly on the NC surface
    (``diel``, eV) and ``ln K`` (oscillator enhancement) are least-squares polynomials of
    degree :data:`F_DEGREE` in f through 11 exact points (f = 0, 0.1, ..., 1); the
    coefficients are interpolated by a cubic spline in (ln t, W). The polynomial form
    makes ``E(f) = E_obs`` a Newton solve without a grid.
    """

    coefficients: RegularGridInterpolator  # (ln t, W) -> (3, F_DEGREE + 1)

    def __call__(self, t: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Coefficients at slabs ``t`` x ``w`` (broadcast): shape ``t.shape + (3, F_DEGREE + 1)``."""
        t, w = np.broadcast_arrays(np.asarray(t, float), np.asarray(w, float))
        pts = np.stack([np.log(t), w], axis=-1)
        return self.coefficients(pts.reshape(-1, 2)).reshape(t.shape + (3, F_DEGREE + 1))

    def levels(self, f, t, w) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(e0, diel, ln K)`` at Br fractions ``f`` of slabs ``t`` x ``w`` (broadcast)."""
        c = self(t, w)
        powers = np.asarray(f, float)[..., None] ** np.arange(F_DEGREE + 1)
        v = np.einsum("...kd,...d->...k", c, powers)
        return v[..., 0], v[..., 1], v[..., 2]


def slab_level_table(temperature: str = "4K", params: lv.LevelParameters = lv.DEFAULT_LEVEL_PARAMETERS,
                     material_params: materials.MaterialParameters = materials.DEFAULT_PARAMETERS) -> SlabTable:
    """The :class:`SlabTable` of a parameter set (grid: f 0..1 step 0.1, t 1.2-40 nm in 22
    log steps, W 6-40 nm in 12 steps; 2904 calls of
    :func:`nanodomains.optics.levels.exciton_state`, ~3-6 s, cached per process)."""
    key = repr((temperature, params, material_params))
    if key not in _SLAB_TABLES:
        _SLAB_TABLES[key] = _build_slab_table(temperature, params, material_params)
    return _SLAB_TABLES[key]


def _build_slab_table(temperature, params, material_params) -> SlabTable:
    shape = (_F_GRID.size, _LOG_T_GRID.size, _W_GRID.size)
    values = np.empty((3,) + shape)
    for i, f in enumerate(_F_GRID):
        for j, lt in enumerate(_LOG_T_GRID):
            for k, w in enumerate(_W_GRID):
                st = lv.exciton_state(f, (math.exp(lt), w, w), temperature, bowing_ev=0.0, surface_fraction=1.0,
                                      params=params, material_params=material_params)
                values[:, i, j, k] = (st.energy_ev - st.dielectric_ev, st.dielectric_ev,
                                      math.log(st.oscillator_enhancement))
    flat = values.transpose(1, 0, 2, 3).reshape(_F_GRID.size, -1)
    coef = np.polynomial.polynomial.polyfit(_F_GRID, flat, F_DEGREE)  # (deg + 1, 3 * nt * nw)
    coef = coef.reshape(F_DEGREE + 1, 3, _LOG_T_GRID.size, _W_GRID.size).transpose(2, 3, 1, 0)
    return SlabTable(RegularGridInterpolator((_LOG_T_GRID, _W_GRID), coef, method="cubic", bounds_error=True))


#: Floor of the probability of an observed kind (singlet/doublet/triplet): the movie
#: analysis can miscount lines (a weak third line, a blend); without it one wrong count
#: would exclude the true structure. Such a miscounted emitter's FSS is then taken as
#: F +- F (uninformative).
KIND_ERROR_FLOOR = 0.02
#: Relative spread of a measured splitting about its pattern value (assumed 5 %: blends
#: and pixelation bias fitted splittings by up to ~9 % near the resolution limit,
#: docs/optics.md "Movie rendering and close lines").
FSS_REL_ERR = 0.05
_KIND_CODE = {"singlet": 1, "doublet": 2, "triplet": 3}


class FinePatterns:
    """Every crystal-field pattern, axis assignment and optical axis the forward model draws.

    For slabs of aspect ``t/W`` and a resolvable separation ``merge`` (in units of F),
    :meth:`__call__` gives each combination's number of seen lines and measured FSS / F,
    vectorised over walkers and emitters.
    """

    def __init__(self, params: lv.LevelParameters = lv.DEFAULT_LEVEL_PARAMETERS):
        eff_in, eff_z = (float(x) for x in lv.collection_efficiency(np.eye(3)[[0, 2]], params.collection_na))
        vs, ws, intens = [], [], []
        perms = list(permutations(range(3)))
        for sym, w_sym in SYMMETRY_WEIGHTS.items():
            for perm in perms:
                for z_axis in range(3):
                    inten = np.where(np.arange(3) == z_axis, eff_z, eff_in)
                    if np.any(inten < params.visibility * inten.max()):
                        raise InputError("the inverse assumes all three bright lines visible; "
                                         f"visibility {params.visibility} hides one at NA {params.collection_na}")
                    vs.append(lv.symmetry_pattern(sym, params.fss_asymmetry)[list(perm)])
                    ws.append(w_sym / len(perms) / 3)
                    intens.append(inten)
        self.v_sym, self.weight, self.intensity = np.array(vs), np.array(ws), np.array(intens)
        self.kappa = params.fss_shape_coeff
        grid = np.linspace(math.log(0.02), math.log(50.0), 300)
        self._log_aspect = grid
        self._n_thin = np.array([lv.depolarization_factors((math.exp(x), 1.0, 1.0))[0] for x in grid])

    def __call__(self, aspect: np.ndarray, merge: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(n_lines, g)`` of shape ``aspect.shape + (combinations,)``."""
        n_t = np.interp(np.log(aspect), self._log_aspect, self._n_thin)
        s_t = self.kappa * 3 * (n_t - 1 / 3)  # shape term of the thin axis; the others get -s_t/2
        s_t, merge = np.broadcast_arrays(np.asarray(s_t, float), np.asarray(merge, float))
        n_lines = np.empty(s_t.shape + (self.weight.size,), np.int64)
        g = np.empty(s_t.shape + (self.weight.size,))
        _seen_lines(np.ascontiguousarray(s_t).ravel(), np.ascontiguousarray(merge).ravel(), self.v_sym,
                    self.intensity, n_lines.reshape(-1, self.weight.size), g.reshape(-1, self.weight.size))
        return n_lines, g


@numba.njit(cache=True)
def _seen_lines(s_t, merge, v_sym, intensity, n_lines, g):  # pragma: no cover - compiled
    """Sort each combination's three lines, merge neighbours closer than ``merge``."""
    for i in range(s_t.size):
        for c in range(v_sym.shape[0]):
            e0 = v_sym[c, 0] + s_t[i]
            e1 = v_sym[c, 1] - 0.5 * s_t[i]
            e2 = v_sym[c, 2] - 0.5 * s_t[i]
            w0, w1, w2 = intensity[c, 0], intensity[c, 1], intensity[c, 2]
            if e0 > e1:
                e0, e1, w0, w1 = e1, e0, w1, w0
            if e1 > e2:
                e1, e2, w1, w2 = e2, e1, w2, w1
            if e0 > e1:
                e0, e1, w0, w1 = e1, e0, w1, w0
            m1 = (e1 - e0) < merge[i]
            m2 = (e2 - e1) < merge[i]
            if m1 and m2:
                n_lines[i, c] = 1
                g[i, c] = 0.0
            elif m1:
                n_lines[i, c] = 2
                g[i, c] = e2 - (w0 * e0 + w1 * e1) / (w0 + w1)
            elif m2:
                n_lines[i, c] = 2
                g[i, c] = (w1 * e1 + w2 * e2) / (w1 + w2) - e0
            else:
                n_lines[i, c] = 3
                g[i, c] = 0.5 * (e2 - e0)


@lru_cache(maxsize=8)
def fine_patterns(params: lv.LevelParameters = lv.DEFAULT_LEVEL_PARAMETERS) -> FinePatterns:
    """The :class:`FinePatterns` of a parameter set (built once: 300 depolarisation integrals)."""
    return FinePatterns(params)


def fss_ratios(aspect: float, scale_uev: float, params: lv.LevelParameters = lv.DEFAULT_LEVEL_PARAMETERS,
               merge_uev: float | None = None) -> dict[str, tuple[float, float, float]]:
    """Measured FSS / F for a slab of aspect ``t/W`` and splitting scale F, by observed kind.

    Returns ``{kind: (probability, mean, sd)}`` over the crystal-field patterns
    (:data:`SYMMETRY_WEIGHTS`), their axis assignments and the crystal axis along the
    optical axis (NC lying on a face). Lines closer than ``merge_uev`` (default
    ``params.merge_uev``; for a measurement: its line width) are seen as one.
    """
    merge = (params.merge_uev if merge_uev is None else merge_uev) / scale_uev
    patterns = fine_patterns(params)
    n_lines, g = patterns(np.array(float(aspect)), np.array(float(merge)))
    out = {}
    for kind, code in _KIND_CODE.items():
        sel = n_lines == code
        if np.any(sel):
            w = patterns.weight[sel]
            mean = float(np.average(g[sel], weights=w))
            out[kind] = (float(w.sum()), mean, float(np.sqrt(np.average((g[sel] - mean) ** 2, weights=w))))
        else:
            out[kind] = (0.0, float("nan"), float("nan"))
    return out


# ---- observations -----------------------------------------------------------------------

@dataclass(frozen=True)
class Observations:
    """Measured numbers of the neutral emitters of one NC (energies in eV)."""

    ids: tuple[str, ...]
    kinds: tuple[str, ...]
    center_ev: np.ndarray
    center_sd_ev: np.ndarray
    fss_uev: np.ndarray       # NaN for singlets
    fss_sd_uev: np.ndarray
    trion_shift_ev: np.ndarray  # NaN without a paired trion
    trion_sd_ev: np.ndarray
    linewidth_uev: np.ndarray
    source: str | None = None

    @property
    def n(self) -> int:
        return len(self.ids)


def _energy_and_sd(m: Measured) -> tuple[float, float]:
    """Photon energy (eV) and its sd from a centre in nm."""
    nm, sd_nm = float(m.value), float(m.stderr)
    e = float(materials.energy_ev(nm))
    return e, e * sd_nm / nm


def _has_fss(emitter) -> bool:
    """A doublet or triplet whose FSS was measured (``fss_uev.value`` None: not measured)."""
    return emitter.kind in ("doublet", "triplet") and emitter.fss_uev.value is not None


def observations_from_emitters(record: PLEmitters, *, source: str | None = None) -> Observations:
    """The neutral emitters of an emitters record, with paired trion shifts.

    A singlet, or a doublet/triplet whose ``fss_uev.value`` is None (not measured),
    contributes its centre only.

    Raises
    ------
    InputError
        No neutral emitter; a centre or measured FSS without a standard error (names them).
    """
    neutral = [e for e in record.emitters if e.state == "X" and e.kind in ("singlet", "doublet", "triplet")]
    if not neutral:
        raise InputError("the emitters record holds no neutral emitter (singlet, doublet or triplet) to infer from")
    missing = [e.id for e in neutral if e.center_nm.value is None or e.center_nm.stderr is None
               or (_has_fss(e) and e.fss_uev.stderr is None)]
    if missing:
        raise InputError(f"emitters without uncertainties (center_nm or fss_uev stderr missing): {missing}; "
                         "the inverse weighs every number by its standard error")
    bad = [e.id for e in neutral if not (math.isfinite(e.center_nm.value) and e.center_nm.value > 0
                                         and e.center_nm.stderr > 0)]
    if bad:
        raise InputError(f"emitters with a non-positive centre or zero stderr: {bad}")
    by_id = {e.id: i for i, e in enumerate(neutral)}
    n = len(neutral)
    shift, shift_sd = np.full(n, np.nan), np.full(n, np.nan)
    for t in record.emitters:
        if t.state == "X*" and t.trion_of in by_id and t.center_nm.stderr is not None:
            i = by_id[t.trion_of]
            ex, sx = _energy_and_sd(neutral[i].center_nm)
            et, st = _energy_and_sd(t.center_nm)
            shift[i], shift_sd[i] = et - ex, math.hypot(sx, st)
    centers = [_energy_and_sd(e.center_nm) for e in neutral]
    fss = np.array([e.fss_uev.value if _has_fss(e) else np.nan for e in neutral], float)
    fss_sd = np.array([e.fss_uev.stderr if _has_fss(e) else np.nan for e in neutral], float)
    width = np.array([(e.linewidth_uev.value if e.linewidth_uev is not None and e.linewidth_uev.value else np.nan)
                      for e in neutral], float)  # NaN: unknown, the model's merge_uev is used
    return Observations(ids=tuple(e.id for e in neutral), kinds=tuple(e.kind for e in neutral),
                        center_ev=np.array([c[0] for c in centers]), center_sd_ev=np.array([c[1] for c in centers]),
                        fss_uev=fss, fss_sd_uev=fss_sd, trion_shift_ev=shift,
                        trion_sd_ev=shift_sd, linewidth_uev=width, source=source)


# ---- STEM prior -------------------------------------------------------------------------

@dataclass(frozen=True)
class StemPrior:
    """Mixture prior on each emitting domain's (f, t W) from a STEM record."""

    br_fraction: np.ndarray
    br_fraction_sd: np.ndarray
    area_nm2: np.ndarray  # NaN: no size information
    area_rel_sd: float = 0.2
    source: str = ""
    composition_from: tuple[str, ...] = ()

    def log_density(self, f: np.ndarray, area: np.ndarray) -> np.ndarray:
        """Log mixture density per point of the arrays ``f`` and ``area`` (same shape)."""
        zf = (f[..., None] - self.br_fraction) / self.br_fraction_sd
        lp = -0.5 * zf**2 - np.log(self.br_fraction_sd)
        has_area = np.isfinite(self.area_nm2)
        sd_a = self.area_rel_sd * np.where(has_area, self.area_nm2, 1.0)
        za = np.where(has_area, (area[..., None] - np.nan_to_num(self.area_nm2)) / sd_a, 0.0)
        lp = lp + np.where(has_area, -0.5 * za**2 - np.log(sd_a), 0.0)
        top = lp.max(axis=-1, keepdims=True)
        return (top[..., 0] + np.log(np.mean(np.exp(lp - top), axis=-1)))

    def summary(self) -> dict:
        return {"source": self.source, "n_components": int(self.br_fraction.size),
                "br_fraction": self.br_fraction.round(4).tolist(),
                "br_fraction_sd": self.br_fraction_sd.round(4).tolist(),
                "area_nm2": [None if not np.isfinite(a) else round(float(a), 2) for a in self.area_nm2],
                "area_rel_sd": self.area_rel_sd, "composition_from": list(self.composition_from)}


def stem_prior_from_domains(record: StemDomains, *, source: str = "", min_sd: float = 0.02,
                            area_rel_sd: float = 0.2) -> StemPrior:
    """Build the mixture prior from the domains of a STEM ``domains.json``.

    Composition per domain: the Z-contrast Br fraction with its stderr; else the Vegard
    Br fraction of the composition record; else the lattice constant through Vegard's
    law (:func:`nanodomains.materials.br_fraction_from_lattice`). Domains with none of
    them are skipped (listed in ``composition_from`` as ``"none"``). ``min_sd`` floors
    the standard errors (0.02: Vegard's-law deviations of mixed CsPb(Br,I)3).
    """
    f, sd, area, used = [], [], [], []
    for d in record.domains:
        comp = d.composition
        value, err, how = None, None, "none"
        if d.br_fraction.value is not None and d.br_fraction.stderr is not None:
            value, err, how = d.br_fraction.value, d.br_fraction.stderr, "z-contrast"
        elif comp is not None and comp.vegard_br_fraction is not None and comp.vegard_br_fraction.value is not None:
            value, err, how = comp.vegard_br_fraction.value, comp.vegard_br_fraction.stderr or 0.05, "vegard"
        elif d.lattice_pm.value is not None:
            value = float(np.clip(materials.br_fraction_from_lattice(d.lattice_pm.value), 0.0, 1.0))
            slope = abs(materials.DEFAULT_PARAMETERS.lattice_cubic_pm.br - materials.DEFAULT_PARAMETERS.lattice_cubic_pm.i)
            err = (d.lattice_pm.stderr or 2.0) / slope
            how = "lattice (Vegard)"
        used.append(how)
        if value is None:
            continue
        f.append(float(value))
        sd.append(max(float(err), min_sd))
        area.append(float(d.area_nm2) if d.area_nm2 else np.nan)
    if not f:
        raise InputError(f"the STEM record {source or ''} has no domain with a composition or lattice constant")
    return StemPrior(br_fraction=np.array(f), br_fraction_sd=np.array(sd), area_nm2=np.array(area),
                     area_rel_sd=area_rel_sd, source=source, composition_from=tuple(used))


# ---- posterior --------------------------------------------------------------------------

class PosteriorModel:
    """Posterior of the domains and shared parameters, vectorised over walkers.

    The sampler moves ``phi = (t_1..t_n, W, b, dE, m)``; each Br fraction is integrated
    out analytically. The centre likelihood is a Gaussian in energy some meV wide
    while ``E(f)`` spans ~0.6 eV and rises monotonically (``dE/df >= 0.62 - b > 0``
    for the prior's bowing), so for given ``phi`` the ``f`` posterior is a Gaussian of
    width ``sigma / E'(f*)`` around the solution ``E(f*) = E_obs`` and::

        int_0^1 N(E_obs; E(f), s^2) df = [Phi((E(1)-E_obs)/s) - Phi((E(0)-E_obs)/s)] / E'(f*)

    (the uniform prior's 1/E' Jacobian; the other terms are taken at ``f*``, their
    scales in f being >= 0.02 against ~0.003 for this width). Sampling f jointly
    would leave emcee a thin curved ridge (acceptance 1 % measured); the full samples
    are restored by drawing ``f`` from that Gaussian (truncated to [0, 1]) for every
    ``phi`` sample (:meth:`complete`).
    """

    def __init__(self, obs: Observations, priors: InferencePriors = InferencePriors(),
                 settings: InferenceSettings = InferenceSettings(), stem: StemPrior | None = None,
                 params: lv.LevelParameters = lv.DEFAULT_LEVEL_PARAMETERS,
                 material_params: materials.MaterialParameters = materials.DEFAULT_PARAMETERS):
        self.obs, self.priors, self.settings, self.stem = obs, priors, settings, stem
        self.params, self.material_params = params, material_params
        self.table = slab_level_table(settings.temperature, params, material_params)
        self.patterns = fine_patterns(params)
        n = obs.n
        self.names = ([f"f[{i}]" for i in obs.ids] + [f"t[{i}]" for i in obs.ids]
                      + ["W", "bowing", "dE", "m"])
        self.ndim = 2 * n + 4
        self.sampled_names = self.names[n:]
        self.ndim_sampled = n + 4
        self.table_err_ev = 1.0e-3  # slab-table error: max 0.83, rms 0.25 meV over 200 random slabs (t >= 1.8 nm)

    # -- parameter handling
    def split(self, theta: np.ndarray):
        """``(f, t, W, b, dE, m)`` of full parameter rows ``theta`` (walkers x ndim)."""
        n = self.obs.n
        theta = np.atleast_2d(theta)
        return theta[:, :n], theta[:, n:2 * n], theta[:, 2 * n], theta[:, 2 * n + 1], theta[:, 2 * n + 2], theta[:, 2 * n + 3]

    def _split_phi(self, phi: np.ndarray):
        n = self.obs.n
        phi = np.atleast_2d(phi)
        return phi[:, :n], phi[:, n], phi[:, n + 1], phi[:, n + 2], phi[:, n + 3]

    def in_support(self, phi: np.ndarray) -> np.ndarray:
        t, w, b, _, m = self._split_phi(phi)
        p = self.priors
        ok = np.all(t >= p.thickness_min_nm, axis=1) & (t.sum(axis=1) <= p.stack_tolerance * w)
        ok &= (w >= p.nc_edge_nm[0]) & (w <= p.nc_edge_nm[1])
        ok &= (b >= p.bowing_ev[0]) & (b <= p.bowing_ev[1]) & (m > 0)
        return ok

    # -- forward model
    def _geometry(self, t, w):
        wb = np.broadcast_to(w[:, None], t.shape)
        s_int, s_end = 2 * t / (2 * t + wb), (4 * t + wb) / (4 * t + 2 * wb)
        return wb, 0.5 * (s_int + s_end), 0.5 * (s_end - s_int)

    def _energy_polynomial(self, t, w, b, de):
        """Coefficients (walkers, emitters, F_DEGREE + 1) of the centre energy as a polynomial in f."""
        wb, s_mid, _ = self._geometry(t, w)
        c = self.table(t, wb)
        poly = c[..., 0, :] + s_mid[..., None] * c[..., 1, :]
        poly[..., 0] += de[:, None]
        poly[..., 1] -= b[:, None]
        poly[..., 2] += b[:, None]
        return poly

    def solve_composition(self, phi: np.ndarray):
        """``f*`` with ``E(f*) = E_obs`` (clipped to [0, 1]), the slope ``E'(f*)``, ``E(0)`` and ``E(1)``.

        Newton steps from the chord through E(0) and E(1); E(f) is monotonic (see the
        class docstring), 8 steps reach 1e-12 eV.
        """
        t, w, b, de, _ = self._split_phi(phi)
        poly = self._energy_polynomial(t, w, b, de)
        deriv = poly[..., 1:] * np.arange(1, F_DEGREE + 1)
        e0, e1 = poly[..., 0], poly.sum(axis=-1)
        target = self.obs.center_ev[None, :]
        f = np.clip((target - e0) / (e1 - e0), 0.0, 1.0)
        powers = np.arange(F_DEGREE + 1)
        for _ in range(8):
            val = np.sum(poly * f[..., None] ** powers, axis=-1)
            slope = np.sum(deriv * f[..., None] ** powers[:-1], axis=-1)
            f = np.clip(f - (val - target) / slope, 0.0, 1.0)
        slope = np.sum(deriv * f[..., None] ** powers[:-1], axis=-1)
        return f, slope, e0, e1

    def predict(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Model numbers (walkers x emitters) and their model variances at full ``theta``."""
        f, t, w, b, de, m = self.split(theta)
        wb, s_mid, s_half = self._geometry(t, w)
        e0, diel, log_k = self.table.levels(f, t, wb)
        k = np.exp(log_k)
        energy = e0 + s_mid * diel - b[:, None] * f * (1 - f) + de[:, None]
        p = self.params
        f_scale = m[:, None] * p.bright_splitting_ratio * 1e3 * p.exchange_volume_mev_nm3 * 27.0 / (8.0 * t * wb**2) * k
        var_e = (s_half * diel) ** 2 + self.table_err_ev**2 + (0.5e-6 * f_scale) ** 2
        merge = np.fmax(self.params.merge_uev, self.obs.linewidth_uev)  # NaN width: merge_uev
        n_lines, g = self.patterns(t / wb, merge / f_scale)
        leff = 1.0 / np.sqrt((1 / t**2 + 2 / wb**2) / 3)
        eb_ratio = materials.exciton_binding_ev(f, self.material_params) / materials.exciton_binding_ev(1.0, self.material_params)
        mu_ratio = materials.reduced_mass(1.0, self.material_params) / materials.reduced_mass(f, self.material_params)
        trion = (p.trion_a_mev * eb_ratio + p.trion_b_mev_nm2 * mu_ratio / leff**2) * 1e-3
        return {"energy_ev": energy, "var_energy": var_e, "n_lines": n_lines, "g": g, "trion_ev": trion,
                "var_trion": (self.settings.trion_rel_err * trion) ** 2, "fss_scale_uev": f_scale}

    def fine_structure_log_likelihood(self, pred: dict) -> np.ndarray:
        """log P(kind, FSS | model) per walker and emitter: a mixture over the patterns."""
        o = self.obs
        code = np.array([_KIND_CODE[k] for k in o.kinds])
        match = pred["n_lines"] == code[:, None]  # (walkers, emitters, C)
        w = self.patterns.weight * match
        f_scale = pred["fss_scale_uev"]
        has = np.isfinite(o.fss_uev)
        out = np.log(w.sum(axis=-1) + KIND_ERROR_FLOOR)
        if np.any(has):
            mu = pred["g"][:, has] * f_scale[:, has, None]
            # + 1 ueV^2: a zero-width pattern (g = 0) with a zero stderr must not divide by 0
            var = o.fss_sd_uev[has, None] ** 2 + (FSS_REL_ERR * mu) ** 2 + 1.0
            dens = np.exp(-0.5 * (o.fss_uev[has, None] - mu) ** 2 / var) / np.sqrt(2 * np.pi * var)
            var_floor = o.fss_sd_uev[has] ** 2 + f_scale[:, has] ** 2
            floor = np.exp(-0.5 * (o.fss_uev[has] - f_scale[:, has]) ** 2 / var_floor) / np.sqrt(2 * np.pi * var_floor)
            with np.errstate(divide="ignore"):
                out[:, has] = np.log(np.sum(w[:, has] * dens, axis=-1) + KIND_ERROR_FLOOR * floor)
        return out

    # -- posterior
    def log_prob(self, phi: np.ndarray) -> np.ndarray:
        """Log posterior of ``phi`` with every Br fraction integrated out."""
        from scipy.special import log_ndtr

        phi = np.atleast_2d(np.asarray(phi, float))
        out = np.full(phi.shape[0], -np.inf)
        ok = self.in_support(phi)
        if not np.any(ok):
            return out
        ph = phi[ok]
        f_star, slope, e0, e1 = self.solve_composition(ph)
        t, w, b, de, m = self._split_phi(ph)
        theta = np.column_stack([f_star, ph])
        pred = self.predict(theta)
        o = self.obs
        sd = np.sqrt(o.center_sd_ev**2 + pred["var_energy"])
        hi, lo = (e1 - o.center_ev) / sd, (e0 - o.center_ev) / sd
        with np.errstate(divide="ignore"):  # no mass in [0, 1]: log 0 = -inf, outside the posterior
            mass = log_ndtr(hi) + np.log1p(-np.exp(np.minimum(log_ndtr(lo) - log_ndtr(hi), -1e-300)))
        lp = np.sum(mass - np.log(np.abs(slope)) + self.fine_structure_log_likelihood(pred), axis=1)
        has_trion = np.isfinite(o.trion_shift_ev)
        if np.any(has_trion):
            lp += _gauss(o.trion_shift_ev[has_trion], pred["trion_ev"][:, has_trion],
                         o.trion_sd_ev[has_trion] ** 2 + pred["var_trion"][:, has_trion])
        lp += -0.5 * (de / self.priors.gap_offset_sd_ev) ** 2 - 0.5 * ((m - 1) / self.priors.exchange_rel_sd) ** 2
        if self.stem is not None:
            lp += self.stem.log_density(f_star, t * w[:, None]).sum(axis=1)
        out[ok] = np.where(np.isfinite(lp), lp, -np.inf)
        return out

    def complete(self, phi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Full samples ``theta``: each Br fraction drawn from its conditional Gaussian in [0, 1]."""
        from scipy.stats import truncnorm

        f_star, slope, _, _ = self.solve_composition(phi)
        pred = self.predict(np.column_stack([f_star, phi]))
        sd_f = np.sqrt(self.obs.center_sd_ev**2 + pred["var_energy"]) / np.abs(slope)
        a, bb = (0.0 - f_star) / sd_f, (1.0 - f_star) / sd_f
        f = truncnorm.rvs(a, bb, loc=f_star, scale=sd_f, random_state=rng)
        return np.column_stack([f, phi])

    def draw_prior(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Samples of ``phi`` over the prior's support (without the STEM prior)."""
        p, n = self.priors, self.obs.n
        w = rng.uniform(*p.nc_edge_nm, size)
        frac = rng.dirichlet(np.ones(n + 1), size)[:, :n]
        t = p.thickness_min_nm + frac * (p.stack_tolerance * w[:, None] - n * p.thickness_min_nm)
        return np.column_stack([t, w, rng.uniform(*p.bowing_ev, size),
                                rng.normal(0, p.gap_offset_sd_ev, size), rng.normal(1, p.exchange_rel_sd, size)])


def _gauss(x, mu, var) -> np.ndarray:
    return np.sum(-0.5 * (x - mu) ** 2 / var - 0.5 * np.log(2 * np.pi * var), axis=-1)


def _check_range(model: PosteriorModel) -> None:
    """Lines no domain of the prior can emit: an error naming them."""
    rng = make_rng(12345)
    phi = model.draw_prior(rng, 4000)
    phi = phi[model.in_support(phi)]
    t, w, b, de, _ = model._split_phi(phi)
    poly = model._energy_polynomial(t, w, b, de)
    e = np.stack([poly[..., 0], poly.sum(axis=-1)])
    lo = e.min() - 4 * model.priors.gap_offset_sd_ev
    hi = e.max() + 4 * model.priors.gap_offset_sd_ev
    outside = [(i, round(float(materials.wavelength_nm(c)), 2)) for i, c in zip(model.obs.ids, model.obs.center_ev)
               if not lo <= c <= hi]
    if outside:
        raise InputError(f"lines outside the model's range: {outside} (emitter, nm); domains of the prior emit "
                         f"{materials.wavelength_nm(hi):.0f}-{materials.wavelength_nm(lo):.0f} nm at "
                         f"{model.settings.temperature}")


def _start(model: PosteriorModel, rng: np.random.Generator, n_walkers: int) -> np.ndarray:
    """Walkers started from the best of up to 200 000 prior draws with a finite posterior.

    When fewer than ``n_walkers`` draws are finite (several narrow lines), the finite
    ones are repeated with a 1e-3 relative jitter; emcee's burn-in spreads them.
    """
    finite, values = [], []
    for _ in range(50):
        phi = model.draw_prior(rng, 4000)
        lp = model.log_prob(phi)
        keep = np.isfinite(lp)
        finite.append(phi[keep])
        values.append(lp[keep])
        if sum(len(v) for v in values) >= 4 * n_walkers:
            break
    phi, lp = np.concatenate(finite), np.concatenate(values)
    if phi.shape[0] == 0:
        raise FitError("could not start the sampler: none of 200 000 prior draws explains every line "
                       f"({', '.join(model.obs.ids)}) within its uncertainty")
    best = phi[np.argsort(lp)[::-1][:n_walkers]]
    for _ in range(100):
        if best.shape[0] >= n_walkers:
            break
        extra = best[rng.integers(best.shape[0], size=n_walkers - best.shape[0])]
        extra = extra * (1 + 1e-3 * rng.normal(size=extra.shape))
        best = np.concatenate([best, extra[np.isfinite(model.log_prob(extra))]])
    if best.shape[0] < n_walkers:
        raise FitError("could not start the sampler: the jittered starts left the posterior's support")
    return best[:n_walkers]


@dataclass
class InferenceRun:
    """Posterior samples and the record that summarises them."""

    record: EmitterInference
    samples: np.ndarray  # (n_samples, ndim)
    names: list[str]
    model: PosteriorModel
    log_prob: np.ndarray = field(repr=False, default=None)

    def to_netcdf(self, path) -> Path:
        """Posterior samples as a netCDF file (one variable per parameter)."""
        import xarray as xr

        ds = xr.Dataset({name.replace("[", "_").replace("]", ""): ("sample", self.samples[:, i])
                         for i, name in enumerate(self.names)})
        ds.attrs.update({"schema": "nanodomains.posterior/1", "parameters": ",".join(self.names),
                         "emitters": ",".join(self.model.obs.ids)})
        path = Path(path)
        with atomic_path(path) as tmp:
            ds.to_netcdf(tmp, engine="h5netcdf")
        return path


def infer_emitters(emitters: PLEmitters, *, stem: StemDomains | StemPrior | None = None,
                   priors: InferencePriors = InferencePriors(), settings: InferenceSettings = InferenceSettings(),
                   params: lv.LevelParameters = lv.DEFAULT_LEVEL_PARAMETERS,
                   material_params: materials.MaterialParameters = materials.DEFAULT_PARAMETERS,
                   source: str | None = None, progress=None) -> InferenceRun:
    """Posterior over the emitting domains of one NC (see the module docstring).

    Parameters
    ----------
    emitters : PLEmitters
        The analysis of a PL movie (``emitters.json``): centres and FSS with stderr.
    stem : StemDomains or StemPrior, optional
        STEM domains of the same kind of NC: a mixture prior on composition and size.
    progress : callable, optional
        Called as ``progress(step, n_steps)`` every 100 steps.

    Returns
    -------
    InferenceRun
        ``record`` (:class:`~nanodomains.records.EmitterInference`) and the samples.
    """
    import emcee

    t0 = time.perf_counter()
    obs = observations_from_emitters(emitters, source=source)
    stem_prior = stem_prior_from_domains(stem, source=str(stem.source or "")) if isinstance(stem, StemDomains) else stem
    model = PosteriorModel(obs, priors, settings, stem_prior, params, material_params)
    _check_range(model)
    rng = make_rng(settings.seed)
    n_walkers = settings.n_walkers or max(32, 4 * model.ndim_sampled)
    n_walkers += n_walkers % 2
    start = _start(model, rng, n_walkers)
    sampler = emcee.EnsembleSampler(n_walkers, model.ndim_sampled, model.log_prob, vectorize=True,
                                    moves=[(emcee.moves.DEMove(), 0.8), (emcee.moves.DESnookerMove(), 0.2)])
    sampler.random_state = np.random.RandomState(int(rng.integers(2**31))).get_state()  # reproducible
    for i, _ in enumerate(sampler.sample(start, iterations=settings.n_steps)):
        if progress is not None and (i + 1) % 100 == 0:
            progress(i + 1, settings.n_steps)
    burn = int(settings.burn_fraction * settings.n_steps)
    chain = model.complete(sampler.get_chain(discard=burn, flat=True), rng)
    lp = sampler.get_log_prob(discard=burn, flat=True)
    tau = sampler.get_autocorr_time(discard=burn, quiet=True)
    record = _summarise(model, chain, sampler, tau, burn, n_walkers, rng, emitters, source,
                        time.perf_counter() - t0)
    return InferenceRun(record=record, samples=chain, names=model.names, model=model, log_prob=lp)


def _interval(x: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(x, [0.05, 0.95])
    return (float(lo), float(hi))


def _measured(x: np.ndarray) -> Measured:
    return Measured(value=float(np.mean(x)), stderr=float(np.std(x)))


def _predictive(model: PosteriorModel, chain: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Posterior-predictive draws of every measured number (model noise and measurement)."""
    idx = rng.choice(chain.shape[0], min(model.settings.predictive_draws, chain.shape[0]), replace=False)
    pred = model.predict(chain[idx])
    o = model.obs
    draw = {
        "energy_ev": pred["energy_ev"] + rng.normal(size=pred["energy_ev"].shape)
        * np.sqrt(pred["var_energy"] + o.center_sd_ev**2),
        "fss_uev": _predictive_fss(model, pred, rng),
        "trion_ev": pred["trion_ev"] + rng.normal(size=pred["trion_ev"].shape)
        * np.sqrt(pred["var_trion"] + np.nan_to_num(o.trion_sd_ev) ** 2),
    }
    return draw


def _predictive_fss(model: PosteriorModel, pred: dict, rng: np.random.Generator) -> np.ndarray:
    """FSS draws given the observed kind: a pattern drawn among those giving that kind
    (by weight; none: the uninformative F +- F of the miscount floor), then its noise."""
    o = model.obs
    code = np.array([_KIND_CODE[k] for k in o.kinds])
    w = model.patterns.weight * (pred["n_lines"] == code[:, None])  # (draws, emitters, C)
    total = w.sum(axis=-1, keepdims=True)
    cdf = np.cumsum(np.where(total > 0, w / np.where(total > 0, total, 1), 1.0 / w.shape[-1]), axis=-1)
    pick = np.minimum((cdf < rng.uniform(size=total.shape)).sum(axis=-1), w.shape[-1] - 1)
    g = np.take_along_axis(pred["g"], pick[..., None], -1)[..., 0]
    f_scale = pred["fss_scale_uev"]
    mu = np.where(total[..., 0] > 0, g * f_scale, f_scale)
    sd = np.where(total[..., 0] > 0, FSS_REL_ERR * mu, f_scale)
    return mu + rng.normal(size=mu.shape) * np.sqrt(sd**2 + np.nan_to_num(o.fss_sd_uev) ** 2)


def _z(measured: float, draws: np.ndarray) -> float:
    sd = float(np.std(draws))
    return float((measured - np.mean(draws)) / sd) if sd > 0 else float("nan")


def _domain_item(j: int, model: PosteriorModel, chain: np.ndarray, draws: dict) -> tuple[InferredDomain, dict]:
    o, n = model.obs, model.obs.n
    f, t = chain[:, j], chain[:, n + j]
    nm = materials.wavelength_nm(draws["energy_ev"][:, j])
    z = {"center": _z(o.center_ev[j], draws["energy_ev"][:, j])}
    fss_m = fss_p = tr_m = tr_p = None
    if np.isfinite(o.fss_uev[j]):
        fss_m = Measured(value=float(o.fss_uev[j]), stderr=float(o.fss_sd_uev[j]))
        fss_p = _measured(draws["fss_uev"][:, j])
        z["fss"] = _z(o.fss_uev[j], draws["fss_uev"][:, j])
    if np.isfinite(o.trion_shift_ev[j]):
        tr_m = Measured(value=1e3 * float(o.trion_shift_ev[j]), stderr=1e3 * float(o.trion_sd_ev[j]))
        tr_p = _measured(1e3 * draws["trion_ev"][:, j])
        z["trion"] = _z(o.trion_shift_ev[j], draws["trion_ev"][:, j])
    c_nm = float(materials.wavelength_nm(o.center_ev[j]))
    item = InferredDomain(
        emitter_id=o.ids[j], kind=o.kinds[j], br_fraction=_measured(f), br_fraction_ci90=_interval(f),
        thickness_nm=_measured(t), thickness_nm_ci90=_interval(t),
        size_composition_corr=float(np.corrcoef(f, t)[0, 1]) if np.std(f) > 0 and np.std(t) > 0 else None,
        measured_center_nm=Measured(value=c_nm, stderr=c_nm * float(o.center_sd_ev[j] / o.center_ev[j])),
        predicted_center_nm=_measured(nm), measured_fss_uev=fss_m, predicted_fss_uev=fss_p,
        measured_trion_shift_mev=tr_m, predicted_trion_shift_mev=tr_p,
        predictive_z={k: round(v, 3) for k, v in z.items()})
    return item, z


def _summarise(model, chain, sampler, tau, burn, n_walkers, rng, emitters, source, elapsed) -> EmitterInference:
    n = model.obs.n
    draws = _predictive(model, chain, rng)
    items, warnings = [], []
    for j in range(n):
        item, z = _domain_item(j, model, chain, draws)
        items.append(item)
        for k, v in z.items():
            if math.isfinite(v) and abs(v) > 3:
                warnings.append(f"{item.emitter_id}: measured {k} lies {v:+.1f} sd from the posterior prediction "
                                "(the data do not fit the model)")
    no_width = [i for i, w in zip(model.obs.ids, model.obs.linewidth_uev) if not np.isfinite(w)]
    if no_width:
        warnings.append(f"no measured line width for {no_width}: lines closer than the model's merge_uev "
                        f"({model.params.merge_uev:g} ueV) are taken as unresolved")
    kept = settings_steps = model.settings.n_steps - burn
    tau_max = float(np.nanmax(tau)) if np.any(np.isfinite(tau)) else float("nan")
    n_eff = kept * n_walkers / tau_max if math.isfinite(tau_max) else 0.0
    converged = bool(math.isfinite(tau_max) and kept >= MIN_TAU_MULTIPLE * tau_max and n_eff >= MIN_EFFECTIVE)
    if not converged:
        warnings.append(f"chain not converged: {settings_steps} kept steps against an autocorrelation time of "
                        f"{tau_max:.0f} steps (need {MIN_TAU_MULTIPLE}x) and {n_eff:.0f} effective samples "
                        f"(need {MIN_EFFECTIVE}): rerun with more --steps")
    w, b, de, m = (chain[:, 2 * n + k] for k in range(4))
    return EmitterInference(
        origin="analysis", source=source or emitters.source,
        settings={"settings": asdict(model.settings), "level_parameters": asdict(model.params)},
        domains=tuple(items), bowing_ev=_measured(b), bowing_ev_ci90=_interval(b), gap_offset_ev=_measured(de),
        nc_edge_nm=_measured(w), exchange_scale=_measured(m), fit_ok=not any("do not fit" in x for x in warnings),
        sampler={"package": "emcee", "walkers": n_walkers, "steps": model.settings.n_steps, "burn": burn,
                 "moves": "DEMove 0.8 + DESnookerMove 0.2",
                 "sampled": model.sampled_names, "marginalised": "Br fractions (analytic, see PosteriorModel)",
                 "acceptance_fraction": round(float(np.mean(sampler.acceptance_fraction)), 3),
                 "autocorr_steps": [None if not math.isfinite(x) else round(float(x), 1) for x in tau],
                 "n_effective": int(n_eff),
                 "converged": converged},
        priors={**{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(model.priors).items()},
                "sources": "see nanodomains.spectroscopy.inference (module docstring)"},
        stem_prior=None if model.stem is None else model.stem.summary(),
        warnings=tuple(warnings), elapsed_s=round(elapsed, 2))


# ---- figures ----------------------------------------------------------------------------

def plot_corner(run: InferenceRun, path=None, *, max_domains: int = 4):
    """Corner plot of the domains' (f, t) and the shared parameters (``corner`` package)."""
    import corner
    n = run.model.obs.n
    keep = list(range(min(n, max_domains))) + list(range(n, n + min(n, max_domains))) + [2 * n, 2 * n + 1, 2 * n + 2]
    labels = [run.names[i].replace("f[", "f ").replace("t[", "t ").replace("]", "") for i in keep]
    labels[-3:] = ["W (nm)", "bowing (eV)", "dE (eV)"]
    fig = corner.corner(run.samples[:, keep], labels=labels, quantiles=[0.05, 0.5, 0.95], show_titles=True,
                        title_fmt=".3f", plot_datapoints=False, smooth=1.0)
    if path is not None:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=80, format=Path(path).suffix.lstrip(".") or "png")
    return fig


def plot_predictive(run: InferenceRun, path=None, seed: int = 0):
    """Posterior-predictive spectra against the measured lines, and FSS against the model.

    Left: the measured emitter centres (with their linewidths as Lorentzians, black) and
    50 posterior-predictive spectra (each draw: every domain's centre from the posterior,
    same widths); right: measured FSS and trion shifts against their predictive ranges.
    """
    import matplotlib.pyplot as plt

    o = run.model.obs
    rng = make_rng(seed)
    draws = _predictive(run.model, run.samples, rng)
    nm_obs = materials.wavelength_nm(o.center_ev)
    span = max(2.0, float(np.ptp(nm_obs)) + 4.0)
    x = np.linspace(nm_obs.min() - span / 4, nm_obs.max() + span / 4, 2000)
    ex = materials.energy_ev(x)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
    gamma = np.fmax(o.linewidth_uev, run.model.params.merge_uev) * 1e-6 / 2

    def spectrum(centers):
        return np.sum((gamma**2 / ((ex[:, None] - centers) ** 2 + gamma**2)), axis=1)

    for k in range(min(50, draws["energy_ev"].shape[0])):
        ax.plot(x, spectrum(draws["energy_ev"][k]), color="tab:blue", alpha=0.08, lw=1)
    ax.plot(x, spectrum(o.center_ev), color="k", lw=1.5, label="measured lines")
    ax.plot([], [], color="tab:blue", label="posterior predictive")
    ax.set_xlabel("wavelength (nm)")
    ax.set_ylabel("normalised intensity")
    ax.legend(loc="upper right", fontsize=8)
    labels, meas, lo, hi = [], [], [], []
    for j, i in enumerate(o.ids):
        if np.isfinite(o.fss_uev[j]):
            q = np.quantile(draws["fss_uev"][:, j], [0.05, 0.5, 0.95])
            labels.append(f"{i} FSS (ueV)")
            meas.append(o.fss_uev[j])
            lo.append(q[0])
            hi.append(q[2])
    for k, (lab, m, a, b) in enumerate(zip(labels, meas, lo, hi)):
        ax2.plot([a, b], [k, k], color="tab:blue", lw=4, alpha=0.5)
        ax2.plot(m, k, "ko")
    ax2.set_yticks(range(len(labels)), labels)
    ax2.set_xlabel("FSS: measured (dot) and 90 % predictive (bar)")
    fig.tight_layout()
    if path is not None:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=90, format=Path(path).suffix.lstrip(".") or "png")
    return fig


def write_inference(run: InferenceRun, out_dir) -> dict[str, Path]:
    """Write ``inference.json``, ``posterior.nc``, ``corner.png`` and ``predictive.png``.

    The record is written first, so a failing figure never loses the posterior.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"record": out / "inference.json", "posterior": out / "posterior.nc",
             "corner": out / "corner.png", "predictive": out / "predictive.png"}
    run.record.to_json(paths["record"])
    run.to_netcdf(paths["posterior"])
    import matplotlib.pyplot as plt

    for key, plot in (("corner", plot_corner), ("predictive", plot_predictive)):
        fig = plot(run, paths[key])
        plt.close(fig)
    return paths


def load_emitters(path) -> PLEmitters:
    """An ``emitters.json`` (schema ``nanodomains.emitters/*``); other records are an error."""
    from nanodomains.records import load_record

    rec = load_record(path)
    if not isinstance(rec, PLEmitters):
        raise InputError(f"{path}: is a {type(rec).__name__} record, expected an emitters.json (PLEmitters)")
    return rec


def load_stem_domains(path) -> StemDomains:
    """A STEM ``domains.json``; other records are an error."""
    from nanodomains.records import load_record

    rec = load_record(path)
    if not isinstance(rec, StemDomains):
        raise InputError(f"{path}: is a {type(rec).__name__} record, expected a STEM domains.json (StemDomains)")
    return rec

r"""Optical presets from the seed study (Liu, Zhu, Pols et al., Nano Lett. 23, 10089 (2023)).

Each preset is an NC model (domains with a Br fraction and a box) from which lines, FSS,
trion lines and lifetimes come out of the level model
(:func:`nanodomains.optics.structure_fit.model_levels`, default parameters, 4 K);
nothing is prescribed. Where the seed reports lines, the structure is found by
inverting the model (:func:`nanodomains.optics.structure_fit.structure_for_lines`):

* Fig. 4 (FSS stated, no centre): f = 0.4 (nominal CsPbBr1.2I1.8); one-domain NC of
  edges ``(t, W, W)``, both in the seed's 10-20 nm, t solved for the FSS. Not
  reachable: 677 / 878 ueV need cubes of 6.3 / 5.6 nm; the nearest physical NC is
  t = 10, W = 20 nm (doublet 367 ueV, triplet 282 ueV, 626.0 nm).
* Fig. 5a / 5b (centres stated): three {100} slabs of t = W/3 = 5 nm across an NC of
  W = 15 nm (rule: equal thickness, the middle of the seed's range), f solved.
* Fig. 5c (six sets "in 670-690 nm", positions illustrative): a 3 x 2 grid of
  7 x 10 x 14 nm boxes, f solved per illustrative centre.
* Fig. 5d: QD1's line and its trion (652.36 / 655.76 nm) fix f and t of an end slab of
  a W = 20 nm NC (QD1's 9.85 meV trion needs L_eff ~ 16 nm: W >= 16.2 nm); QD2
  (652.71 nm) is the remaining slab (t = 20 - t1), f solved.
* brightness follows from capture ~ volume and Forster transfer; spectral diffusion
  from one field through the QCSE, CCD noise, as in the simulator.

``python -m nanodomains.optics.presets`` prints every found structure with its model
lines and residuals (:func:`structure_table`). Measured 2026-12-03::

    ================  ====  =====  ===========  =======  ======  ======  ==========================
    preset            dom   f      t x W (nm)   kind     centre  FSS     stated (seed) / residual
    ================  ====  =====  ===========  =======  ======  ======  ==========================
    fig4_doublet      D0    0.400  10 x 20      doublet  626.00  367.3   FSS 677: -310 ueV (needs 6.8)
    fig4_triplet      D0    0.400  10 x 20      triplet  626.02  282     FSS 878: -596 ueV (needs 4.7)
    fig4_charging     D0    0.400  10 x 20      doublet  626.00  367.3   (the fig4_doublet NC)
    fig5a             D0-2  0.087 / 0.708 / 0.324, 5 x 15 slabs          657.88 / 557.93 / 615.83: 0
    fig5b             D0-2  0.081 / 0.071 / 0.036, 5 x 15 slabs          659.02 / 662.28 / 667.46: 0
    fig5c             D0-5  0.097 ... 0.020, 7 x 10 x 14 boxes           670.80 ... 686.60: 0
    fig5d             D0    0.281  12.57 x 20   (83 ueV)  652.36  X* 655.76   centre and trion: 0
    fig5d             D1    0.231  7.43 x 20    doublet  652.71  486     centre 0; tau 0.21 vs 0.66 ns
    ================  ====  =====  ===========  =======  ======  ======  ==========================

Lifetimes are the model's: fig5d QD1 / QD2 0.18 / 0.21 ns against the seed's S14 0.54 /
0.66 ns (not reproduced; the lifetime reference is calibrated on an 8 nm cube). Every
preset renders a figure like the seed's (:func:`plot_preset`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from nanodomains.errors import InputError
from nanodomains.files import atomic_path
from nanodomains.optics.emitters import (
    DomainSpec,
    DynamicsParameters,
    NCDynamics,
    SharedEvent,
    simulate_dynamics,
)
from nanodomains.optics.movies import CCD, Spectrometer, simulate_movie
from nanodomains.optics.structure_fit import (
    KIND_SYMMETRY,
    SINGLE_NC_BOUNDS_NM,
    StructureFit,
    composition_for_box,
    composition_for_wavelength,
    model_levels,
    structure_for_lines,
)
from nanodomains.records import PLEmitters
from nanodomains.seeds import seed_record, spawn
from nanodomains.structure import Domain, NanoCrystal, Region

__all__ = ["Preset", "PRESETS", "preset", "preset_names", "simulate_preset_movie", "plot_preset",
           "composition_for_wavelength", "SEED_STREAMS", "structure_table", "fig4_structure",
           "fig5d_structures", "slab_structures"]

NOMINAL = "CsPbBr1.2I1.8"

SEED_STREAMS = ("movie_noise", "photons")
"""Random streams spawned from a source's seed (:func:`nanodomains.seeds.spawn`): the
CCD noise of a movie and the photon stream; the NC dynamics use the seed itself."""


def _streams(seed: int) -> tuple[dict, dict]:
    """The spawned Generators of ``seed`` and the record of how they were made."""
    return spawn(seed, SEED_STREAMS), seed_record(seed, SEED_STREAMS)


@dataclass
class Preset:
    """A seed figure as a simulation: NC, dynamics, spectrometer and what the seed states.

    ``structures`` maps each domain (``"D0"``...) to the
    :class:`~nanodomains.optics.structure_fit.StructureFit` it was built from.
    """

    name: str
    description: str
    nc: NanoCrystal
    dynamics: NCDynamics
    spectrometer: Spectrometer
    spectrum_time_s: float
    stated: dict = field(default_factory=dict)
    n_frames: int = 120
    frame_s: float = 1.0
    ccd: CCD = field(default_factory=CCD)
    structures: dict = field(default_factory=dict)


@dataclass
class _DomainPlan:
    """One domain of a preset: where it sits in the NC, how it was found, its schedule."""

    lo: tuple
    hi: tuple
    fit: StructureFit
    schedule: list | None = None


def _surface_fraction(lo, hi, edges) -> float:
    lo, hi, edges = np.asarray(lo, float), np.asarray(hi, float), np.asarray(edges, float)
    size = hi - lo
    area = total = 0.0
    for ax in range(3):
        face = float(np.prod(np.delete(size, ax)))
        total += 2 * face
        area += face * (lo[ax] < 1e-9) + face * (abs(hi[ax] - edges[ax]) < 1e-9)
    return area / total


def _slabs(fits: list[StructureFit], lateral: float) -> tuple[tuple, list[tuple]]:
    """NC edges and (lo, hi) of {100} slabs stacked along x in the order of ``fits``."""
    x, boxes = 0.0, []
    for ft in fits:
        boxes.append(((x, 0.0, 0.0), (x + ft.size_nm, lateral, lateral)))
        x += ft.size_nm
    return (x, lateral, lateral), boxes


def _build(name: str, description: str, edges, plans: list[_DomainPlan], *, seed: int,
           spectrometer: Spectrometer, spectrum_time_s: float, stated: dict,
           dyn_params: DynamicsParameters, events=(), declared=(), duration_s: float = 120.0,
           excitation: str = "pulsed") -> Preset:
    """Levels of every planned domain from the level model (nothing prescribed), then the dynamics."""
    edges = tuple(float(e) for e in edges)
    specs, domains, schedules = [], [], {}
    for i, pl in enumerate(plans):
        box = tuple(h - l for l, h in zip(pl.lo, pl.hi))
        if not np.allclose(sorted(box), sorted(pl.fit.edges_nm), atol=1e-9):
            raise InputError(f"preset {name}: domain {i} box {box} is not its solved box {pl.fit.edges_nm}")
        sfrac = _surface_fraction(pl.lo, pl.hi, edges)
        if abs(sfrac - pl.fit.surface_fraction) > 1e-9:
            raise InputError(f"preset {name}: domain {i} surface fraction {sfrac:.4f} differs from the solve's "
                             f"{pl.fit.surface_fraction:.4f}")
        levels = model_levels(pl.fit.br_fraction, box, pl.fit.kind, surface_fraction=sfrac)
        specs.append(DomainSpec(id=i, br_fraction=pl.fit.br_fraction, edges_nm=box,
                                center_nm=tuple((l + h) / 2 for l, h in zip(pl.lo, pl.hi)),
                                volume_nm3=float(np.prod(box)), surface_fraction=sfrac, levels=levels,
                                symmetry=KIND_SYMMETRY.get(pl.fit.kind, "orthorhombic")))
        domains.append(Domain(id=i, br_fraction=pl.fit.br_fraction, region=Region(lo_nm=pl.lo, hi_nm=pl.hi)))
        if pl.schedule is not None:
            schedules[i] = pl.schedule
    nc = NanoCrystal(edges_nm=edges, nominal_formula=NOMINAL, seed=seed, domains=domains)
    dyn_params = replace(dyn_params, excitation=excitation)
    dyn = simulate_dynamics(nc, duration_s=duration_s, seed=seed, params=dyn_params, specs=specs,
                            schedules=schedules, events=list(events), declared_couplings=list(declared))
    dyn.notes["preset"] = name
    return Preset(name=name, description=description, nc=nc, dynamics=dyn, spectrometer=spectrometer,
                  spectrum_time_s=spectrum_time_s, stated=stated,
                  structures={f"D{i}": pl.fit for i, pl in enumerate(plans)})


_SCHEDULED = DynamicsParameters(blinking="none", charge_rate_per_s=0.0, bleach_mean_s=1e9)
_FINE = Spectrometer(dispersion_nm_per_px=0.02, resolution_nm=0.04)

#: Br fraction of the seed's nominal CsPbBr1.2I1.8 (used where the seed states no line centre).
NOMINAL_BR_FRACTION = 0.4

#: Lateral edge W of the multi-domain NCs of Fig. 5a/5b (middle of the seed's 10-20 nm).
LATERAL_NM = 15.0


#: Lateral edge of the Fig. 4 single-domain NCs: the top of the seed's 10-20 nm, where a
#: 10 nm thick NC has the largest splitting (the stated FSS is out of reach, see fig4_structure).
FIG4_LATERAL_NM = 20.0


def fig4_structure(kind: str = "doublet") -> StructureFit:
    """Single-domain NC of Fig. 4: nominal composition, thickness solved for the stated FSS.

    The seed states the FSS (677 ueV doublet, 878 ueV triplet) but no line centre, so f
    is the nominal 0.4. The NC is one domain of edges ``(t, W, W)`` (a slab with both
    faces on the surface), both within the seed's 10-20 nm. No such NC reaches the
    stated FSS (a cube needs 6.3 / 5.6 nm); the nearest is t = 10 nm, W = 20 nm
    (doublet 367 ueV against 314 for W = 15 and 279 for a 10 nm cube).
    """
    fss = {"doublet": 677.0, "triplet": 878.0}[kind]
    return structure_for_lines(fss_uev=fss, kind=kind, br_fraction=NOMINAL_BR_FRACTION, geometry="slab",
                               lateral_nm=FIG4_LATERAL_NM, faces_on_surface=2,
                               size_bounds_nm=(SINGLE_NC_BOUNDS_NM[0], FIG4_LATERAL_NM))


def _single(name, description, fit: StructureFit, schedule, stated, *, seed, excitation) -> Preset:
    edges, boxes = _slabs([fit], fit.lateral_nm)
    plan = _DomainPlan(*boxes[0], fit, schedule=schedule)
    return _build(name, description, edges, [plan], seed=seed, spectrometer=_FINE, spectrum_time_s=20.0,
                  stated=stated, dyn_params=_SCHEDULED, excitation=excitation)


def _fig4_doublet(seed: int = 1, excitation: str = "pulsed") -> Preset:
    return _single("fig4_doublet", "single-domain NC with one doublet (seed Fig. 4: FSS 677 ueV)",
                   fig4_structure("doublet"),
                   [[0, 41, "X"], [41, 44, "off"], [44, 88, "X"], [88, 90, "off"], [90, 120, "X"]],
                   {"D0-X": {"kind": "doublet", "fss_uev": 677.0}}, seed=seed, excitation=excitation)


def _fig4_triplet(seed: int = 1, excitation: str = "pulsed") -> Preset:
    return _single("fig4_triplet", "single-domain NC with one triplet (seed Fig. 4: FSS 878 ueV, mean of the "
                   "two gaps)", fig4_structure("triplet"), [[0, 63, "X"], [63, 66, "off"], [66, 120, "X"]],
                   {"D0-X": {"kind": "triplet", "fss_uev": 878.0}}, seed=seed, excitation=excitation)


def _fig4_charging(seed: int = 1, excitation: str = "pulsed") -> Preset:
    # the seed states no size or FSS for this NC: the Fig. 4 doublet NC
    return _single("fig4_charging", "charged exciton X* switching to the neutral doublet at 37 s, seed Fig. 4",
                   fig4_structure("doublet"), [[0, 37, "X*"], [37, 120, "X"]],
                   {"D0-X*": {"kind": "trion", "intervals_s": [[0.0, 37.0]]},
                    "D0-X": {"kind": "doublet", "intervals_s": [[37.0, 120.0]]}}, seed=seed, excitation=excitation)


def slab_structures(centers_nm, kinds, *, lateral_nm: float = LATERAL_NM) -> list[StructureFit]:
    """Slabs of equal thickness W/n stacked across an NC of lateral edge W (an NC of edge W), f solved per centre."""
    n = len(centers_nm)
    t = lateral_nm / n
    return [structure_for_lines(c, kind=k, size_nm=t, lateral_nm=lateral_nm,
                                faces_on_surface=1 if i in (0, n - 1) else 0)
            for i, (c, k) in enumerate(zip(centers_nm, kinds))]


def _slab_plans(fits, schedules):
    edges, boxes = _slabs(fits, fits[0].lateral_nm)
    return edges, [_DomainPlan(lo, hi, ft, schedule=sc) for (lo, hi), ft, sc in zip(boxes, fits, schedules)]


def _fig5a(seed: int = 1, excitation: str = "pulsed") -> Preset:
    on = [[0, 120, "X"]]
    fits = slab_structures((657.88, 557.93, 615.83), ("doublet", "doublet", "triplet"))
    edges, plans = _slab_plans(fits, [on, on, on])
    spec = Spectrometer(dispersion_nm_per_px=0.1, resolution_nm=0.2)
    return _build("fig5a", "three sets of peaks of one NC; the Br-rich set (557.93 nm) is weak "
                  "(Forster transfer to its I-rich neighbours), seed Fig. 5a", edges, plans,
                  seed=seed, spectrometer=spec, spectrum_time_s=60.0,
                  stated={"D0-X": {"center_nm": 657.88}, "D1-X": {"center_nm": 557.93},
                          "D2-X": {"center_nm": 615.83}}, dyn_params=_SCHEDULED, excitation=excitation)


def _fig5b(seed: int = 1, excitation: str = "pulsed") -> Preset:
    fits = slab_structures((659.02, 662.28, 667.46), ("doublet", "triplet", "doublet"))
    edges, plans = _slab_plans(fits, [[[0, 50, "X"], [50, 53, "off"], [53, 120, "X"]], [[0, 120, "X"]],
                                      [[0, 85, "X"], [85, 89, "off"], [89, 120, "X"]]])
    return _build("fig5b", "three sets of peaks at 659.02, 662.28 and 667.46 nm, seed Fig. 5b",
                  edges, plans, seed=seed, spectrometer=_FINE, spectrum_time_s=30.0,
                  stated={"D0-X": {"center_nm": 659.02}, "D1-X": {"center_nm": 662.28},
                          "D2-X": {"center_nm": 667.46}}, dyn_params=_SCHEDULED, excitation=excitation)


FIG5C_CENTERS_NM = (670.80, 673.90, 677.10, 680.30, 683.40, 686.60)
"""Illustrative positions of the six sets of Fig. 5c (the seed states only "six sets in 670-690 nm")."""


def _fig5c(seed: int = 1, excitation: str = "pulsed") -> Preset:
    kinds = ["doublet", "triplet", "singlet", "doublet", "triplet", "doublet"]
    edges = (21.0, 20.0, 14.0)
    plans = []
    k = 0
    for iy in range(2):
        for ix in range(3):
            lo, hi = (7.0 * ix, 10.0 * iy, 0.0), (7.0 * ix + 7, 10.0 * iy + 10, 14.0)
            box = tuple(h - l for l, h in zip(lo, hi))
            fit = composition_for_box(FIG5C_CENTERS_NM[k], box, kind=kinds[k],
                                      surface_fraction=_surface_fraction(lo, hi, edges))
            sched = [[0, 120, "X"]] if k < 4 else None  # domains 4, 5 blink at random
            plans.append(_DomainPlan(lo, hi, fit, schedule=sched))
            k += 1
    event = SharedEvent(domains=(0, 1, 2, 3), interval_s=(67.0, 75.0), factor=0.25,
                        name="shared trap near the NC")
    params = replace(_SCHEDULED, blinking="two-state", on_mean_s=25.0, off_mean_s=4.0)
    stated = {"sets": {"n": 6, "range_nm": [670.0, 690.0]},
              "correlated": {"emitters": ["D0-X", "D1-X", "D2-X", "D3-X"], "interval_s": [67.0, 75.0]}}
    return _build("fig5c", "six sets of peaks in 670-690 nm (illustrative positions); four change "
                  "intensity together at 67-75 s, seed Fig. 5c", edges, plans, seed=seed,
                  spectrometer=Spectrometer(center_nm=680.0, dispersion_nm_per_px=0.02, resolution_nm=0.04),
                  spectrum_time_s=30.0, stated=stated, dyn_params=params, excitation=excitation, events=[event])


#: Lateral edge W of the fig5d NC: QD1's trion line (9.85 meV below it) needs L_eff ~ 16 nm,
#: which a slab reaches only in NCs of W >= 16.2 nm; W = 20 nm (the top of the seed's range)
#: leaves room for QD2.
FIG5D_LATERAL_NM = 20.0


def fig5d_structures(lateral_nm: float = FIG5D_LATERAL_NM) -> list[StructureFit]:
    """QD1 from its line and trion (f and t solved); QD2 fills the rest of a cubic NC of edge W."""
    qd1 = structure_for_lines(652.36, trion_nm=655.76, kind="singlet", lateral_nm=lateral_nm, faces_on_surface=1)
    qd2 = structure_for_lines(652.71, kind="doublet", size_nm=lateral_nm - qd1.size_nm, lateral_nm=lateral_nm,
                              faces_on_surface=1)
    return [qd1, qd2]


def _fig5d(seed: int = 1, excitation: str = "pulsed") -> Preset:
    edges, plans = _slab_plans(fig5d_structures(), [[[0, 18, "X"], [18, 98, "X*"], [98, 120, "X"]],
                                                    [[0, 18, "off"], [18, 98, "X"], [98, 120, "off"]]])
    declared = [
        {"emitters": ["D1-X", "D0-X*"], "verdict": "coupled", "intervals_s": [[18.0, 98.0]],
         "mechanism": "QD2 appears and stops together with QD1* (seed Fig. 5d)"},
        {"emitters": ["D1-X", "D0-X"], "verdict": "anti-correlated", "intervals_s": [[18.0, 98.0]],
         "mechanism": "QD2 is on while QD1 is charged"},
    ]
    return _build("fig5d", "QD1 652.36 nm and its trion QD1* 655.76 nm; QD2 at 652.71 nm "
                  "on from ~18 s to ~98 s together with QD1*; seed Fig. 5d (lifetimes 0.54 / 0.66 ns in S14)",
                  edges, plans, seed=seed, spectrometer=_FINE, spectrum_time_s=50.0,
                  stated={"D0-X": {"center_nm": 652.36, "lifetime_ns": 0.54},
                          "D0-X*": {"center_nm": 655.76, "intervals_s": [[18.0, 98.0]]},
                          "D1-X": {"center_nm": 652.71, "kind": "doublet", "lifetime_ns": 0.66,
                                   "intervals_s": [[18.0, 98.0]]}},
                  dyn_params=_SCHEDULED, excitation=excitation, declared=declared)


PRESETS = {
    "fig4_doublet": _fig4_doublet,
    "fig4_triplet": _fig4_triplet,
    "fig4_charging": _fig4_charging,
    "fig5a": _fig5a,
    "fig5b": _fig5b,
    "fig5c": _fig5c,
    "fig5d": _fig5d,
}


def preset_names() -> list[str]:
    return list(PRESETS)


def preset(name: str, seed: int = 1, excitation: str = "pulsed") -> Preset:
    """Build an optical preset by name (see the module docstring); ``excitation`` pulsed or cw."""
    if name not in PRESETS:
        raise InputError(f"unknown optics preset {name!r}; choose from {preset_names()}")
    if int(seed) != seed or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    if excitation not in ("pulsed", "cw"):
        raise InputError(f"excitation must be 'pulsed' or 'cw', got {excitation!r}")
    return PRESETS[name](seed=int(seed), excitation=excitation)


def _with_preset(truth: PLEmitters, p: Preset, seeds: dict) -> PLEmitters:
    """The truth record with the preset's description and the seeds it was made with."""
    return truth.replace(preset={"name": p.name, "description": p.description, "stated": p.stated,
                                 "spectrum_time_s": p.spectrum_time_s, "nc": p.nc.model_dump(mode="json"),
                                 "structures": {k: v.summary() for k, v in p.structures.items()}},
                         settings={**truth.settings, "seeds": seeds})


def simulate_preset_movie(name: str, seed: int = 1) -> tuple:
    """Movie and truth record of a preset.

    The dynamics use ``seed``; the CCD noise the ``movie_noise`` stream spawned from it
    (:data:`SEED_STREAMS`, recorded in ``truth.settings["seeds"]``).

    Returns
    -------
    movie : xarray.DataArray
    truth : PLEmitters
        ``origin="truth"``, with the preset in ``truth.preset``.
    """
    p = preset(name, seed)
    streams, seeds = _streams(seed)
    movie, truth = simulate_movie(p.dynamics, n_frames=p.n_frames, frame_s=p.frame_s,
                                  spectrometer=p.spectrometer, ccd=p.ccd, seed=streams["movie_noise"], name=name)
    return movie, _with_preset(truth, p, seeds)


def plot_preset(movie, truth: PLEmitters, *, spectrum_time_s: float | None = None, path=None,
                title: str | None = None):
    """Figure like the seed's: time-wavelength colour map and the spectrum at one time.

    Parameters
    ----------
    movie : xarray.DataArray
        dims (time, wavelength).
    truth : PLEmitters
        Truth record; emitter line positions are marked on the spectrum.
    spectrum_time_s : float, optional
        Frame to show (default: the preset's choice, else the middle).
    path : path-like, optional
        Save the figure (PNG) there.
    """
    import matplotlib.pyplot as plt

    t = movie["time"].values
    wl = movie["wavelength"].values
    data = movie.values - float(movie.attrs.get("bias_adu", 0.0))
    if spectrum_time_s is None:
        spectrum_time_s = (truth.preset or {}).get("spectrum_time_s", float(t[len(t) // 2]))
    k = int(np.clip(np.searchsorted(t, spectrum_time_s, side="right") - 1, 0, len(t) - 1))
    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(6.0, 6.4), height_ratios=[2.2, 1.0], sharex=True,
                                   constrained_layout=True)
    vmax = float(np.percentile(data, 99.8))
    dt = float(t[1] - t[0]) if len(t) > 1 else 1.0
    im = ax0.imshow(data, aspect="auto", origin="lower", cmap="inferno", vmin=0, vmax=max(vmax, 1.0),
                    extent=[wl[0], wl[-1], t[0], t[-1] + dt], interpolation="nearest")
    ax0.axhline(t[k] + dt / 2, color="w", lw=0.6, ls="--")
    ax0.set_ylabel("time (s)")
    fig.colorbar(im, ax=ax0, label="counts (ADU - bias)")
    ax1.plot(wl, data[k], color="k", lw=0.8)
    for em in truth.emitters:
        on = any(a <= t[k] < b for a, b in em.intervals_s)
        for lam in em.lines_nm:
            if wl[0] <= lam <= wl[-1]:
                ax1.axvline(lam, color="tab:red" if em.kind == "trion" else "tab:blue",
                            lw=0.6, alpha=0.8 if on else 0.25)
    ax1.set_xlabel("wavelength (nm)")
    ax1.set_ylabel(f"counts at {t[k]:.0f} s")
    ax0.set_title(title or (truth.preset or {}).get("name", movie.attrs.get("name", "")))
    if path is not None:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110)
    return fig


# ---- sources for the command line: an NC model file or a preset ----------------------

def dynamics_from(nc_json=None, preset_name: str | None = None, *, seed: int = 1, excitation: str = "pulsed",
                  duration_s: float = 120.0, params: DynamicsParameters | None = None):
    """NC dynamics of an NC model file or of a preset (exactly one of the two).

    Returns ``(dynamics, preset or None)``; a model file is simulated with random
    blinking, charging and orientation from ``seed``.
    """
    if (nc_json is None) == (preset_name is None):
        raise InputError("give either an NC model JSON file or --preset NAME (not both, not neither)")
    if preset_name is not None:
        p = preset(preset_name, seed, excitation=excitation)
        if duration_s > p.dynamics.duration_s:
            raise InputError(f"preset {preset_name} covers {p.dynamics.duration_s} s; asked for {duration_s} s")
        return p.dynamics, p
    nc = NanoCrystal.from_json(Path(nc_json))
    base = params if params is not None else DynamicsParameters()
    dyn = simulate_dynamics(nc, duration_s=duration_s, seed=seed, params=replace(base, excitation=excitation))
    dyn.notes["source"] = str(nc_json)
    return dyn, None


def movie_from(nc_json=None, preset_name: str | None = None, *, seed: int = 1, n_frames: int = 120,
               frame_s: float = 1.0):
    """Movie and truth of an NC model file or a preset (see :func:`dynamics_from`)."""
    from nanodomains.errors import require_positive

    if (nc_json is None) == (preset_name is None):
        raise InputError("give either an NC model JSON file or --preset NAME (not both, not neither)")
    frame = require_positive("frame time (s)", frame_s)
    if int(n_frames) != n_frames or n_frames < 1:
        raise InputError(f"number of frames must be an integer >= 1, got {n_frames!r}")
    if preset_name is not None and (n_frames * frame > 120.0 + 1e-9):
        raise InputError(f"presets cover 120 s; {n_frames} x {frame} s is longer")
    if preset_name is not None and n_frames == 120 and frame == 1.0:
        return simulate_preset_movie(preset_name, seed)
    dyn, p = dynamics_from(nc_json, preset_name, seed=seed, duration_s=max(n_frames * frame, 1e-9))
    spec = p.spectrometer if p is not None else Spectrometer()
    streams, seeds = _streams(seed)
    movie, truth = simulate_movie(dyn, n_frames=int(n_frames), frame_s=frame, spectrometer=spec,
                                  seed=streams["movie_noise"], name=preset_name or str(nc_json))
    if p is not None:
        return movie, _with_preset(truth, p, seeds)
    return movie, truth.replace(settings={**truth.settings, "seeds": seeds})


def photons_from(nc_json=None, preset_name: str | None = None, *, mode: str = "pulsed", seed: int = 1,
                 duration_s: float = 10.0, efficiency: float = 0.01, emitter: str | None = None,
                 t3: bool | None = None):
    """HBT photon stream of an NC model file or a preset (optionally filtered to one emitter)."""
    from nanodomains.errors import require_positive
    from nanodomains.optics import photons as ph

    dur = require_positive("duration (s)", duration_s)
    if mode not in ("pulsed", "cw"):
        raise InputError(f"mode must be 'pulsed' or 'cw', got {mode!r}")
    dyn, _ = dynamics_from(nc_json, preset_name, seed=seed, excitation=mode, duration_s=max(dur, 120.0))
    band = ph.line_filter(dyn, emitter) if emitter is not None else None
    streams, seeds = _streams(seed)
    sim = ph.simulate_photons(dyn, duration_s=dur, seed=streams["photons"], band_nm=band, t3=t3,
                              params=ph.PhotonParameters(mode=mode), detectors=ph.Detectors(efficiency=efficiency))
    sim.truth = sim.truth.replace(source=preset_name or str(nc_json), filtered_emitter=emitter,
                                  dynamics=dyn.truth().to_dict(),
                                  settings={**sim.truth.settings, "seeds": seeds})
    return sim


def write_photon_file(sim, path, *, ptu_mode: str | None = None):
    """Write ``.ptu`` (T3 when the stream has micro times, else T2) or ``.npz`` plus ``*.truth.json``."""
    from nanodomains.optics import photons as ph
    from nanodomains.optics.movies import truth_path

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".ptu":
        ph.write_ptu(sim, p, mode=ptu_mode)
    elif suffix == ".npz":
        if ptu_mode is not None:
            raise InputError("T2/T3 record modes apply to .ptu files only")
        ph.write_photons_npz(sim, p)
    else:
        raise InputError(f"{p}: photon files are written as .ptu or .npz")
    tp = truth_path(p)
    sim.truth.to_json(tp)
    return p, tp


# ---- the structures behind the presets ----------------------------------------------------

def structure_table() -> list[dict]:
    """One row per preset domain: the found structure (f, t or L, W), its model lines and residuals.

    ``python -m nanodomains.optics.presets`` prints it.
    """
    rows = []
    for name in preset_names():
        p = preset(name)
        emitters = {em.id: em for em in p.dynamics.emitters}
        for dom, fit in p.structures.items():
            em, tr = emitters[f"{dom}-X"], emitters[f"{dom}-X*"]
            rows.append({"preset": name, "domain": dom, "geometry": fit.geometry,
                         "br_fraction": round(fit.br_fraction, 4), "t_nm": round(fit.size_nm, 3),
                         "W_nm": round(fit.lateral_nm, 3), "edges_nm": [round(x, 3) for x in fit.edges_nm],
                         "kind": em.kind, "center_nm": round(em.center_nm, 3), "fss_uev": round(em.fss_uev, 1),
                         "fss_scale_uev": round(fit.predicted["fss_scale_uev"], 1),
                         "trion_nm": round(tr.center_nm, 3), "lifetime_ns": round(em.lifetime_ns, 3),
                         "stated": p.stated.get(f"{dom}-X", {}),
                         "residuals": {k: round(v, 6) for k, v in fit.residuals.items()},
                         "reachable": fit.reachable, "unbounded_size_nm": fit.unbounded_size_nm,
                         "notes": list(fit.notes)})
    return rows


def _print_structures() -> None:
    head = f"{'preset':13s} {'dom':3s} {'geom':5s} {'f':>6s} {'t/L nm':>7s} {'W nm':>5s} {'kind':8s} " \
           f"{'centre nm':>9s} {'FSS ueV':>8s} {'F ueV':>6s} {'X* nm':>8s} {'tau ns':>6s}  stated / residuals"
    print(head)
    for r in structure_table():
        extra = f"{r['stated']} res {r['residuals']}" + ("" if r["reachable"] else
                                                          f" UNREACHABLE (needs {r['unbounded_size_nm']} nm)")
        print(f"{r['preset']:13s} {r['domain']:3s} {r['geometry']:5s} {r['br_fraction']:6.3f} {r['t_nm']:7.2f} "
              f"{r['W_nm']:5.1f} {r['kind']:8s} {r['center_nm']:9.3f} {r['fss_uev']:8.1f} {r['fss_scale_uev']:6.1f} "
              f"{r['trion_nm']:8.3f} {r['lifetime_ns']:6.3f}  {extra}")


if __name__ == "__main__":
    _print_structures()

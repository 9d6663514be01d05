"""Analyse a single-nanocrystal 4 K PL spectral movie end to end.

``analyze_movie(movie)`` runs, in order (each step documented in its module):

1. validation (:mod:`~nanodomains.spectroscopy.io`), cosmic-ray removal and baseline (:mod:`.peaks`);
2. peak detection and batched multi-line fits with shared widths (:mod:`.peaks`);
3. linking lines over time, joining the tracks of one line (a blend fitted as one peak
   in most frames and as two in a few: reported as one line with a warning) and
   grouping them into emitters (:mod:`~nanodomains.spectroscopy.tracking`);
4. per-emitter count traces in a window of +-``window_hwhm`` HWHM around each line,
   less the tails of the other lines in that window (their heights from a joint
   fixed-position fit, :func:`~.peaks.fit_amplitudes`), Poisson change-point
   segmentation into on/off states (:mod:`.states`); in a frame where a line of a
   multiplet is not detected and another emitter's line lies on it (spectral diffusion
   moved it there), that line's counts are predicted from its set's free lines (the
   lines of one exciton switch together, at a fixed ratio); frames where every line of
   a set is so covered and the set is judged on are reported as ambiguous
   (``meta["ambiguous_frames"]``, a warning); the line intensities used for
   grouping and correlations are the integrated counts of that joint fit (free of
   crosstalk and of the pixel phase of undersampled lines);
5. classification singlet / doublet / triplet / trion (:mod:`~nanodomains.spectroscopy.tracking`);
6. fine-structure splitting and linewidth per emitter: inverse-variance weighted mean
   over the frames in which all its lines were fit, error inflated by
   sqrt(reduced chi-square) when the frames scatter more than their errors;
7. pair correlations and verdicts (:mod:`.correlation`); coincident jumps count only
   level changes of at least ``jump_fraction`` of the emitter's brightest level.

The result is a :class:`~nanodomains.records.emitters.PLEmitters` record (schema
``nanodomains.emitters/2``), the same type as the optical forward model's truth
sidecar, so recovery is one :func:`nanodomains.records.compare`.
``MovieAnalysis.write(out_dir)`` writes it as ``emitters.json``, with
``correlations.csv`` (one row per pair) and ``overview.png`` (the movie with the
detected lines, as the seed paper's Fig. 4 and 5).

Conventions: ``center_nm`` is the wavelength of the energy centroid of the lines, each
line's ``center_nm`` the time-median of its fitted centre over the on frames (spectral
diffusion averages out; stderr 1.25 sd / sqrt(n) of that median), ``fss_uev``
``|E1 - E2|`` for a doublet and (E_max - E_min)/2 for a triplet (0 for a singlet or
trion), ``linewidth_uev`` the Lorentzian FWHM in energy, ``intervals_s`` the on
intervals [t_start, t_end] (t_end = start of the last on frame + frame period),
``mean_counts`` the integrated counts per frame of all lines while on.
"""

from __future__ import annotations

import csv
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from nanodomains.errors import InputError
from nanodomains.files import atomic_path, to_jsonable
from nanodomains.materials import HC_EV_NM
from nanodomains.records import Measured, PLCoupling, PLEmitter, PLEmitters, PLLine, measured
from nanodomains.seeds import rng as make_rng
from nanodomains.spectroscopy.correlation import PairCorrelation, adjust_verdicts, correlate_pair
from nanodomains.spectroscopy.io import load_movie, validate_movie
from nanodomains.spectroscopy.peaks import (
    CosmicRays,
    LineFits,
    complete_multiplets,
    detect_peaks,
    estimate_background,
    estimate_noise,
    fit_amplitudes,
    fit_lines,
    fss_uev,
    lorentzian_pixels,
    mean_multiplets,
    remove_cosmic_rays,
)
from nanodomains.spectroscopy.screening import (
    Saturation,
    band_check,
    centre_wander,
    classify_line,
    clipped_near,
    detect_saturation,
    exclusion_ranges,
    in_ranges,
    offset_check,
    raman_shift_cm1,
)
from nanodomains.spectroscopy.states import Segmentation, mask_to_intervals, segment_trace
from nanodomains.spectroscopy.tracking import (
    TrackArrays,
    classify_emitters,
    group_tracks,
    join_same_line,
    link_lines,
    stitch_tracks,
    track_arrays,
    window_sums,
)

__all__ = ["AnalysisParams", "EmitterTrace", "MovieAnalysis", "analyze_movie"]


@dataclass
class AnalysisParams:
    """Every knob of :func:`analyze_movie` (defaults suit 4 K single-NC movies)."""

    remove_cosmics: bool = True
    cosmic_threshold: float = 8.0
    background_window_px: int = 30
    snr_min: float = 5.0
    prominence_snr: float = 3.0
    smooth_px: float = 1.0
    seed_mean_multiplets: bool = True
    profile: str = "lorentzian"
    instrument_sigma_nm: float | None = None
    max_jump_nm: float = 0.08
    max_gap_frames: int = 3
    stitch_nm: float = 0.1
    min_track_frames: int = 3
    fit_snr_min: float = 3.0
    max_set_span_uev: float = 5000.0
    window_hwhm: float = 2.0
    penalty_scale: float = 1.0
    z_on: float = 5.0
    on_fraction: float = 0.1
    trion_window_mev: tuple = (5.0, 25.0)
    jump_fraction: float = 0.3
    window_s: float = 10.0
    n_surrogates: int = 999
    alpha: float = 0.01
    seed: int = 0
    # what the data are (screening): laser, ranges, saturation, line classes, multiplicity
    laser_nm: float | None = None
    use_file_laser: bool = True
    laser_halfwidth_nm: float = 1.0
    range_nm: tuple | None = None
    exclude_nm: tuple = ()
    resolution_nm: float | None = None
    classify_lines: bool = True
    broad_factor: float = 10.0
    static_presence: float = 0.9
    static_chi2: float = 10.0
    static_wander_hwhm: float = 0.1
    raman_tol_cm1: float = 10.0
    saturation_run_px: int = 3
    multiple_testing: str = "bh"


@dataclass
class EmitterTrace:
    """Per-frame traces of one emitter (kept in memory, not written to JSON).

    ``intensity`` is the integrated counts of its lines from the joint fixed-position
    fit, ``counts`` / ``background`` the window sums the on/off segmentation used,
    ``wavelength`` its centre per frame (spectral wander).
    """

    tracks: list[int]
    intensity: np.ndarray
    counts: np.ndarray
    background: np.ndarray
    wavelength: np.ndarray
    segmentation: Segmentation


@dataclass
class MovieAnalysis:
    """Everything :func:`analyze_movie` found: the :class:`PLEmitters` record plus the
    arrays behind it; ``write`` saves the files."""

    record: PLEmitters
    traces: list[EmitterTrace]
    time_s: np.ndarray
    wavelength_nm: np.ndarray
    cleaned: np.ndarray
    background: np.ndarray
    pairs: list[PairCorrelation]
    fits: LineFits
    track_id: np.ndarray
    tracks: TrackArrays
    cosmic_rays: CosmicRays
    params: AnalysisParams

    @property
    def emitters(self) -> tuple[PLEmitter, ...]:
        """The emitters of the record (in the order of :attr:`traces`)."""
        return self.record.emitters

    @property
    def meta(self) -> dict:
        """Run facts of the record (source, format, counts of detections, tracks...)."""
        return self.record.meta

    def to_dict(self) -> dict:
        """The emitters.json content (:meth:`PLEmitters.to_dict`)."""
        return self.record.to_dict()

    def write(self, out_dir, *, overview: bool = True) -> dict:
        """Write emitters.json, correlations.csv and (optionally) overview.png.

        Returns
        -------
        paths : dict
            name -> Path.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"emitters": out / "emitters.json", "correlations": out / "correlations.csv"}
        self.record.to_json(paths["emitters"])
        with atomic_path(paths["correlations"]) as tmp, tmp.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(PairCorrelation.__dataclass_fields__))
            w.writeheader()
            for pair in self.pairs:
                w.writerow(pair.row())
        if overview:
            paths["overview"] = self.plot_overview(out / "overview.png")
        return paths

    def plot_overview(self, path, *, title: str | None = None) -> Path:
        """Colour map of the movie with the detected lines, mean spectrum and emitter traces."""
        import matplotlib.pyplot as plt
        from matplotlib.colors import PowerNorm

        if self.time_s.size == 1:
            return self.plot_spectrum(path, title=title)
        t, wl = self.time_s, self.wavelength_nm
        img = self.cleaned - self.background
        lo, hi = np.percentile(img, [1, 99.7])
        fig = plt.figure(figsize=(11, 7), constrained_layout=True)
        gs = fig.add_gridspec(2, 2, width_ratios=[3, 1.2], height_ratios=[3, 1])
        ax = fig.add_subplot(gs[0, 0])
        ax.pcolormesh(wl, t, np.clip(img, max(lo, 0), hi), shading="nearest", cmap="inferno",
                      norm=PowerNorm(0.5, vmin=max(lo, 0), vmax=max(hi, lo + 1e-9)), rasterized=True)
        cmap = plt.get_cmap("tab10")
        split = ("doublet", "triplet")
        for k, e in enumerate(self.emitters):
            c = cmap(k % 10)
            for tr in e.tracks:
                det = np.isfinite(self.tracks.center_nm[tr])
                ax.plot(self.tracks.center_nm[tr][det], t[det], ".", ms=2.5, color=c)
            fss = float(e.fss_uev)
            label = f"{e.id} {e.kind}" + (f" {fss:.0f} ueV" if e.kind in split and fss else "")
            ax.annotate(label, (float(e.center_nm), t[-1]), xytext=(0, 4), textcoords="offset points", color=c,
                        fontsize=7, ha="center", va="bottom", rotation=60, annotation_clip=False)
        ax.set_ylabel("time (s)" if self.record.meta.get("time_units", "s") == "s" else "frame")
        ax.set_xlim(wl[0], wl[-1])
        ax.set_ylim(t[0], t[-1]) if t.size > 1 else ax.set_ylim(t[0] - 0.5, t[0] + 0.5)
        fig.suptitle(title or self.record.source or "", fontsize=9)
        ax2 = fig.add_subplot(gs[1, 0], sharex=ax)
        ax2.plot(wl, img.mean(axis=0), lw=0.8, color="k")
        for k, e in enumerate(self.emitters):
            for lam in e.lines_nm:
                ax2.axvline(lam, color=cmap(k % 10), lw=0.6, alpha=0.7)
        self._mark_screening(ax2)
        ax2.set_xlabel("wavelength (nm)")
        ax2.set_ylabel("mean counts")
        ax3 = fig.add_subplot(gs[0, 1], sharey=ax)
        for k, tr in enumerate(self.traces):
            scale = max(np.nanmax(np.abs(tr.intensity)), 1e-12)
            ax3.plot(tr.intensity / scale + 1.2 * k, t, lw=0.7, color=cmap(k % 10))
            ax3.step(tr.segmentation.fitted() / scale + 1.2 * k, t, where="mid", lw=1.0, color="k")
        ax3.set_xlabel("emitter intensity (norm., offset)")
        ax3.set_xticks([1.2 * k for k in range(len(self.emitters))], [e.id for e in self.emitters], fontsize=7, rotation=90)
        plt.setp(ax3.get_yticklabels(), visible=False)
        ax4 = fig.add_subplot(gs[1, 1])
        ax4.axis("off")
        lines = [f"{e.id}: {e.kind}, {float(e.center_nm):.2f} nm"
                 + (f", FSS {float(e.fss_uev):.0f}+-{e.fss_uev.stderr or math.nan:.0f} ueV" if e.kind in split else "")
                 for e in self.emitters[:10]]
        lines += [f"{p.a}-{p.b}: {p.verdict}" for p in self.pairs if p.verdict != "independent"][:6]
        others = self.record.meta.get("not_emitters") or []
        if others:
            counts = {}
            for o in others:
                counts[o["class"]] = counts.get(o["class"], 0) + 1
            lines.append("not emitters: " + ", ".join(f"{n} {c}" for c, n in counts.items()))
        if self.record.meta.get("saturation", {}).get("n_frames"):
            lines.append(f"saturated in {self.record.meta['saturation']['n_frames']} frames")
        ax4.text(0, 1, "\n".join(lines) or "no emitters found", va="top", fontsize=7, family="monospace")
        p = Path(path)
        with atomic_path(p) as tmp:
            fig.savefig(tmp, dpi=130)
        plt.close(fig)
        return p


    def _mark_screening(self, ax) -> None:
        """Excluded ranges shaded, lines that are not emitters dashed grey with their class."""
        for r in self.record.meta.get("excluded_nm") or []:
            ax.axvspan(r["lo_nm"], r["hi_nm"], color="0.85", zorder=0)
        for o in self.record.meta.get("not_emitters") or []:
            ax.axvline(o["center_nm"], color="0.5", lw=0.6, ls="--")
            ax.annotate(o["class"], (o["center_nm"], 1.0), xycoords=("data", "axes fraction"), fontsize=6,
                        color="0.4", rotation=90, va="top", ha="right")

    def plot_spectrum(self, path, *, title: str | None = None) -> Path:
        """A single-frame movie as a spectrum: counts and baseline against wavelength, the
        emitters' lines in colour, the lines that are not emitters and excluded ranges in grey."""
        import matplotlib.pyplot as plt

        wl = self.wavelength_nm
        fig, ax = plt.subplots(figsize=(10, 4.5), constrained_layout=True)
        ax.plot(wl, self.cleaned[0], lw=0.8, color="k", label="counts")
        ax.plot(wl, self.background[0], lw=0.8, color="0.6", label="baseline")
        cmap = plt.get_cmap("tab10")
        for k, e in enumerate(self.emitters):
            for lam in e.lines_nm:
                ax.axvline(lam, color=cmap(k % 10), lw=0.8, alpha=0.8)
            ax.annotate(f"{e.id} {e.kind}", (float(e.center_nm), 1.0), xycoords=("data", "axes fraction"),
                        fontsize=7, color=cmap(k % 10), rotation=90, va="top", ha="left")
        self._mark_screening(ax)
        ax.set_xlim(wl[0], wl[-1])
        ax.set_xlabel("wavelength (nm)")
        ax.set_ylabel("counts")
        ax.legend(loc="upper right", fontsize=7)
        exp = self.record.meta.get("exposure_s")
        fig.suptitle((title or self.record.source or "") + (f"  (single spectrum, {exp:g} s)" if exp else
                                                             "  (single spectrum)"), fontsize=9)
        p = Path(path)
        with atomic_path(p) as tmp:
            fig.savefig(tmp, dpi=130)
        plt.close(fig)
        return p


_MECHANISMS = {"charge states": "charge: neutral and charged states of one domain"}


def _jump_steps(seg: Segmentation, fraction: float) -> np.ndarray:
    """Level changes at the change points; those below ``fraction`` of the brightest
    level are set to 0 (not counted as jumps: small fluctuations of an on-state)."""
    steps = np.diff(seg.signal_rate)
    top = float(np.max(np.abs(seg.signal_rate))) if seg.signal_rate.size else 0.0
    return np.where(np.abs(steps) >= fraction * top, steps, 0.0)


def _not_duplicate(fits: LineFits) -> np.ndarray:
    """False for the weaker of two lines of one frame closer than one HWHM: two such lines
    are not resolved (shot noise split one peak, or a fit put two lines on it)."""
    keep = np.ones(len(fits), bool)
    if len(fits) < 2:
        return keep
    o = np.lexsort((fits.center_nm, fits.frame))
    d = np.diff(fits.center_nm[o])
    same = (np.diff(fits.frame[o]) == 0) & (d < np.minimum(fits.hwhm_nm[o][:-1], fits.hwhm_nm[o][1:]))
    for i in np.flatnonzero(same):
        a, b = o[i], o[i + 1]
        keep[a if fits.amplitude[a] < fits.amplitude[b] else b] = False
    return keep


def _weighted_mean(vals, errs) -> tuple[float, float]:
    v, s = np.asarray(vals, float), np.asarray(errs, float)
    ok = np.isfinite(v) & np.isfinite(s) & (s > 0)
    if not ok.any():
        return np.nan, np.nan
    w = 1.0 / s[ok] ** 2
    m = float(np.sum(w * v[ok]) / w.sum())
    err = 1.0 / np.sqrt(w.sum())
    if ok.sum() > 1:
        chi = float(np.sum(w * (v[ok] - m) ** 2) / (ok.sum() - 1))
        err *= math.sqrt(max(chi, 1.0))
    return m, float(err)


def _finite_or_none(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


# ---------------------------------------------------------------------------- the steps


def _resolve_params(params: AnalysisParams | None, overrides: dict) -> AnalysisParams:
    """``params`` (default :class:`AnalysisParams`) with single fields replaced."""
    prm = params or AnalysisParams()
    if overrides:
        unknown = set(overrides) - set(AnalysisParams.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown analysis parameters {sorted(unknown)}")
        prm = AnalysisParams(**{**asdict(prm), **overrides})
    return prm


def _load_validated(movie) -> xr.DataArray:
    """A validated (time, wavelength) movie with at least 8 pixels."""
    if not isinstance(movie, xr.DataArray):
        movie = load_movie(movie)
    movie = validate_movie(movie)
    if movie.sizes["wavelength"] < 8:
        raise InputError(f"{movie.attrs.get('source', 'movie')}: {movie.sizes['wavelength']} pixels "
                         "are too few for line analysis")
    return movie


@dataclass
class _Cleaned:
    """Step 1-2: cosmic-free counts, baseline, per-pixel variance and the kept line fits."""

    clean: np.ndarray
    cosmic_rays: CosmicRays
    background: np.ndarray
    signal: np.ndarray
    variance: np.ndarray
    fits: LineFits


@dataclass
class _Screen:
    """What the data are: crop, exclusions, saturation, resolution, laser line width."""

    ranges: list
    saturation: Saturation
    laser_nm: float | None
    laser_source: str
    resolution_nm: float | None
    resolution_source: str
    dropped: dict
    crop_nm: tuple | None = None


def _screen_setup(movie: xr.DataArray, prm: AnalysisParams, crop: tuple | None) -> _Screen:
    """Laser (given or from the file), exclusion ranges and saturation of the raw counts."""
    laser, lsrc = prm.laser_nm, "given"
    if laser is None and prm.use_file_laser and movie.attrs.get("laser_nm") is not None:
        laser, lsrc = float(movie.attrs["laser_nm"]), str(movie.attrs.get("laser_source", "file header"))
    ranges = exclusion_ranges(laser_nm=laser, laser_source=lsrc, laser_halfwidth_nm=prm.laser_halfwidth_nm,
                              exclude_nm=prm.exclude_nm)
    ceiling = movie.attrs.get("saturation_counts")
    sat = detect_saturation(movie.values, ceiling=None if ceiling is None else float(ceiling),
                            ceiling_source=str(movie.attrs.get("saturation_source", "")),
                            min_run=prm.saturation_run_px)
    res, rsrc = prm.resolution_nm, "given (--resolution-nm)"
    if res is None and prm.instrument_sigma_nm:
        res, rsrc = 2.3548200450309493 * prm.instrument_sigma_nm, "given (instrument sigma)"
    if res is None and movie.attrs.get("resolution_nm") is not None:
        res, rsrc = float(movie.attrs["resolution_nm"]), "file attribute resolution_nm"
    return _Screen(ranges, sat, laser, lsrc, res, rsrc if res is not None else "unknown", {}, crop)


def _screen_fits(fits: LineFits, wl: np.ndarray, scr: _Screen, n_frames: int) -> LineFits:
    """Drop line detections in excluded ranges and on clipped pixels (counted in ``scr.dropped``);
    the laser line's width measures the resolution when nothing else gives it."""
    if not len(fits):
        return fits
    excl = in_ranges(fits.center_nm, scr.ranges)
    if scr.laser_nm is not None:
        at_laser = np.abs(fits.center_nm - scr.laser_nm) <= scr.ranges[0]["hi_nm"] - scr.laser_nm
        if scr.resolution_nm is None and at_laser.sum() >= max(3, n_frames // 2):
            scr.resolution_nm = float(np.median(2.0 * fits.hwhm_nm[at_laser]))
            scr.resolution_source = f"FWHM of the laser line ({int(at_laser.sum())} frames)"
    dwl = float(np.median(np.abs(np.diff(wl))))
    clipped = clipped_near(scr.saturation, fits.frame, fits.center_nm, np.maximum(3.0 * fits.hwhm_nm, 2 * dwl), wl)
    scr.dropped = {"in_excluded_ranges": int(excl.sum()), "on_clipped_pixels": int((clipped & ~excl).sum())}
    return fits.select(~excl & ~clipped)


def _clean_and_fit(raw: np.ndarray, wl: np.ndarray, prm: AnalysisParams) -> _Cleaned:
    """Remove cosmic rays, estimate the baseline and noise, detect and fit the lines."""
    if prm.remove_cosmics and raw.shape[0] >= 2:
        clean, cr = remove_cosmic_rays(raw, wl, threshold=prm.cosmic_threshold)
    else:
        clean, cr = raw.copy(), remove_cosmic_rays(raw[:1], wl)[1]
        cr.tested = False
    bg = estimate_background(clean, window_px=prm.background_window_px)
    sig = clean - bg
    noise = estimate_noise(sig)
    level = np.maximum(np.median(bg, axis=1), 1e-9)
    gain = np.where(level > noise**2 * 0.05, noise**2 / level, 1.0)
    var = noise[:, None] ** 2 + gain[:, None] * np.maximum(sig, 0.0)
    pk = detect_peaks(sig, wl, snr_min=prm.snr_min, prominence_snr=prm.prominence_snr, smooth_px=prm.smooth_px,
                      noise=noise, gain=float(np.median(gain)))
    multiplets = []
    if prm.seed_mean_multiplets and sig.shape[0] >= 2:
        # a multiplet resolved in the time-averaged spectrum is fitted as its lines in
        # every frame, also where the frame's (smoothed) detection saw one blended peak
        multiplets = mean_multiplets(sig, wl, snr_min=prm.snr_min, prominence_snr=prm.prominence_snr,
                                     noise=noise, gain=float(np.median(gain)), variance=var, profile=prm.profile,
                                     instrument_sigma_nm=prm.instrument_sigma_nm)
        pk, _ = complete_multiplets(pk, sig, wl, multiplets, smooth_px=prm.smooth_px)
    fits = fit_lines(sig, wl, pk, variance=var, profile=prm.profile, instrument_sigma_nm=prm.instrument_sigma_nm)
    good = (fits.converged & np.isfinite(fits.center_err_nm) & (fits.snr >= prm.fit_snr_min)
            & (fits.center_nm > wl[0]) & (fits.center_nm < wl[-1]))
    fits = fits.select(good)
    fits = fits.select(_not_duplicate(fits))
    return _Cleaned(clean, cr, bg, sig, var, fits)


def _link_tracks(fits: LineFits, prm: AnalysisParams, n_frames: int) -> tuple[np.ndarray, TrackArrays, dict]:
    """Line detections linked over time into tracks (short tracks stitched or dropped,
    tracks of one line joined); also the joined lines' split statistics."""
    tid = link_lines(fits, max_jump_nm=prm.max_jump_nm, max_gap_frames=prm.max_gap_frames) if len(fits) else np.zeros(0, int)
    # a movie shorter than min_track_frames (e.g. a single spectrum) keeps every line
    min_len = min(prm.min_track_frames, n_frames)
    split: dict = {}
    if len(fits):
        tid = stitch_tracks(fits, tid, stitch_nm=prm.stitch_nm, min_length=min_len)
        tid, split = join_same_line(fits, tid)
    return tid, track_arrays(fits, tid, n_frames), split


@dataclass
class _LineCounts:
    """Step 4: per-track, per-frame window sums (less crosstalk) and fitted line areas."""

    counts: np.ndarray
    background: np.ndarray
    area: np.ndarray
    area_err: np.ndarray
    center_nm: np.ndarray  # median centre of each track


def _line_counts(c: _Cleaned, wl: np.ndarray, ta: TrackArrays, prm: AnalysisParams) -> _LineCounts:
    """Window sums around every track, less the tails of the other lines, and the
    integrated counts of every line in every frame from a joint fixed-position fit."""
    L = ta.n_tracks
    dwl = float(np.median(np.abs(np.diff(wl))))
    half = np.maximum(prm.window_hwhm * ta.hwhm_track_nm, 2.5 * dwl)
    n_tr = window_sums(c.clean, wl, ta.position_nm, half)
    b_tr = window_sums(c.background, wl, ta.position_nm, half)
    # remove the tails of the other lines from each window (crosstalk between close
    # lines of different emitters): their heights from a joint fit at fixed positions
    hw_tr = np.where(np.isfinite(ta.hwhm_track_nm) & (ta.hwhm_track_nm > 0), ta.hwhm_track_nm, dwl)
    amp_f, amp_fe = fit_amplitudes(c.signal, wl, ta.position_nm, hw_tr, variance=c.variance)
    amp_f, amp_fe = np.nan_to_num(amp_f), np.nan_to_num(amp_fe, nan=np.inf)
    cross = np.zeros_like(n_tr)
    for j in range(L):  # loop over lines (tens), each vectorised over frames and pixels
        prof = np.clip(amp_f[j], 0.0, None)[:, None] * lorentzian_pixels(wl, ta.position_nm[j], hw_tr[j])
        ws = window_sums(prof, wl, ta.position_nm, half)
        ws[j] = 0.0
        cross += ws
    # integrated counts of every line in every frame (fixed-position fit): free of
    # crosstalk and of the pixel phase of undersampled lines
    area_k = np.pi * hw_tr / np.interp(np.nanmedian(ta.position_nm, axis=1), wl, np.abs(np.gradient(wl)))
    center_tr = np.array([np.nanmedian(ta.center_nm[k]) for k in range(L)])
    return _LineCounts(n_tr - cross, b_tr, amp_f * area_k[:, None], amp_fe * area_k[:, None], center_tr)


@dataclass
class _Grouping:
    """Step 4-5: emitters as sets of tracks, their on/off segmentation, kind and domain."""

    members: list[list[int]]
    segmentations: list[Segmentation]
    on: np.ndarray  # (n_emitters, n_frames) bool
    kinds: list[str]
    partner: list[int | None]  # neutral emitter of a trion
    domain: list[int]


def _group_and_segment(ta: TrackArrays, lc: _LineCounts, prm: AnalysisParams,
                       keep: np.ndarray) -> tuple[list[list[int]], list[Segmentation], list]:
    """Group the kept tracks into sets of lines and segment each set's trace into on/off
    (:func:`_set_counts`); also (members, ambiguous frames) of the sets whose every line
    was covered by another set's line in some frames."""
    k_idx = np.flatnonzero(keep)
    if k_idx.size == 0:
        return [], [], []
    em_of = group_tracks(lc.center_nm[k_idx], lc.area[k_idx], lc.area_err[k_idx], ta.center_nm[k_idx],
                         ta.center_err_nm[k_idx], max_span_uev=prm.max_set_span_uev,
                         hwhm_nm=ta.hwhm_track_nm[k_idx])
    segs, members, notes = [], [], []
    for e in range(int(em_of.max()) + 1):
        mem = sorted((int(k_idx[k]) for k in np.flatnonzero(em_of == e)), key=lambda k: lc.center_nm[k])
        members.append(mem)
        counts, covered = _set_counts(mem, ta, lc)
        segs.append(segment_trace(counts, lc.background[mem].sum(0), penalty_scale=prm.penalty_scale,
                                  z_on=prm.z_on, on_fraction=prm.on_fraction))
        if covered.any():
            notes.append((mem, covered))
    return members, segs, notes


def _covered_by_other_lines(mem: list[int], ta: TrackArrays, max_overlap_rho: float = 0.3,
                            others=None) -> np.ndarray:
    """Frames in which a line of the set is not detected while a line of another set
    (``others``: default every other track) is detected on top of it (Lorentzian
    profile overlap above ``max_overlap_rho``, :func:`~.tracking.profile_overlap`, the
    limit above which a joint fit can no longer share the counts of two lines): its
    window then holds the other line's counts. Shape (len(mem), n_frames)."""
    others = np.setdiff1d(np.arange(ta.n_tracks) if others is None else np.asarray(others, int), mem)
    out = np.zeros((len(mem), ta.center_nm.shape[1]), bool)
    if others.size == 0:
        return out
    g_o = ta.hwhm_track_nm[others][:, None]
    for i, k in enumerate(mem):  # lines of one set (1-3), vectorised over frames and other lines
        g = ta.hwhm_track_nm[k]
        d = ta.center_nm[others] - ta.position_nm[k][None, :]  # NaN where the other line is absent
        rho = 2.0 * np.sqrt(g * g_o) * (g + g_o) / (d * d + (g + g_o) ** 2)
        out[i] = ~ta.detected[k] & np.any(np.nan_to_num(rho) > max_overlap_rho, axis=0)
    return out


def _set_counts(mem: list[int], ta: TrackArrays, lc: _LineCounts) -> tuple[np.ndarray, np.ndarray]:
    """Counts of a set of lines for its on/off segmentation, and the frames where none
    of its lines can be measured (all covered by other sets' lines: ambiguous).

    The lines of one fine-structure set share one exciton: they switch on and off
    together and keep a fixed intensity ratio. In a frame where one of its lines is
    covered by another set's line (:func:`_covered_by_other_lines`: a line of another
    emitter, moved by spectral diffusion onto it, while this line itself is not
    detected) that line's counts are predicted from the set's uncovered lines
    through the ratio of their net counts over the frames where no line is covered, so
    that the other emitter's counts do not switch this one on. A singlet, or a set with
    every line covered, has no such partner: its counts there are kept as measured and
    the frames are returned as ambiguous."""
    counts = lc.counts[mem].copy()
    covered = _covered_by_other_lines(mem, ta)
    any_cov = covered.any(axis=0)
    if not any_cov.any():
        return counts.sum(0), np.zeros(counts.shape[1], bool)
    net = counts - lc.background[mem]
    clean_frames = ~any_cov
    for f in np.flatnonzero(any_cov & ~covered.all(axis=0)):  # frames with a covered line and a free one
        free = ~covered[:, f]
        ref = net[free][:, clean_frames].sum()
        if ref <= 0:
            continue
        ratio = net[~free][:, clean_frames].sum(axis=1) / ref
        counts[~free, f] = lc.background[mem][~free, f] + ratio * net[free, f].sum()
    return counts.sum(0), covered.all(axis=0)


def _group_emitters(members: list[list[int]], segs: list[Segmentation], lc: _LineCounts, prm: AnalysisParams,
                    n_frames: int) -> _Grouping:
    """Kinds (singlet ... trion) and domains of the sets of lines that are emitters."""
    n_em = len(members)
    on = np.array([s.on for s in segs], dtype=bool).reshape(n_em, n_frames)
    kinds, partner = classify_emitters([lc.center_nm[m] for m in members], on,
                                       trion_window_mev=tuple(prm.trion_window_mev))
    domain = list(range(n_em))
    for s, nn in enumerate(partner):
        if nn is not None:
            domain[s] = domain[nn]
    # renumber domains 0..n-1 in order of first appearance
    dmap = {d: i for i, d in enumerate(dict.fromkeys(domain))}
    return _Grouping(members, segs, on, list(kinds), list(partner), [dmap[d] for d in domain])


def _band(c: _Cleaned, wl: np.ndarray, lc: _LineCounts, scr: _Screen) -> dict:
    """Is the movie a broad band (:func:`~.screening.band_check`) on its usable pixels?"""
    usable = ~in_ranges(wl, scr.ranges) & ~(scr.saturation.mask.mean(axis=0) > 0.5)
    line_area = float(np.sum(np.nanmean(np.clip(lc.area, 0.0, None), axis=1))) if lc.area.size else 0.0
    noise = float(np.median(estimate_noise(c.signal))) / math.sqrt(c.signal.shape[0])
    return band_check(c.clean.mean(axis=0), c.background.mean(axis=0), line_area_counts=line_area,
                      noise_sd=noise, usable=usable)


def _classify_tracks(ta: TrackArrays, lc: _LineCounts, wl: np.ndarray, band: dict, scr: _Screen,
                     prm: AnalysisParams) -> tuple[np.ndarray, list[dict], dict[int, dict]]:
    """Tracks that may be emitters (True), a description of every track that is not
    (Raman, broad, band structure: :func:`~.screening.classify_line`) and the still
    ("static") tracks, judged per set by :func:`_split_static`."""
    n_tr, n_frames = ta.center_nm.shape
    keep = np.ones(n_tr, bool)
    others, static = [], {}
    if not prm.classify_lines:
        return keep, others, static
    band_mask = band.get("band_mask", np.zeros(wl.size, bool)) if band.get("is_band") else np.zeros(wl.size, bool)
    for k in range(n_tr):  # loop over tracks (tens), each a vector over frames
        wander = centre_wander(ta.center_nm[k], ta.center_err_nm[k])
        fwhm = 2.0 * float(ta.hwhm_track_nm[k])
        px = int(np.clip(np.searchsorted(wl, lc.center_nm[k]), 0, wl.size - 1))
        cls, reason = classify_line(
            center_nm=float(lc.center_nm[k]), fwhm_nm=fwhm, wander=wander, n_frames=n_frames,
            laser_nm=scr.laser_nm, resolution_nm=scr.resolution_nm, on_band=bool(band_mask[px]),
            raman_tol_cm1=prm.raman_tol_cm1, static_presence=prm.static_presence, static_chi2=prm.static_chi2,
            static_wander_hwhm=prm.static_wander_hwhm, broad_factor=prm.broad_factor)
        if cls == "emitter":
            continue
        fact = _line_fact(k, cls, reason, lc, fwhm, wander, scr)
        if cls == "static":  # judged per set of lines once grouped (_split_static)
            # its class were it not still (broad, band or emitter), for a still line
            # whose intensity changes (_split_static)
            fact["unless_still"] = classify_line(
                center_nm=float(lc.center_nm[k]), fwhm_nm=fwhm, wander=wander, n_frames=n_frames,
                laser_nm=scr.laser_nm, resolution_nm=scr.resolution_nm, on_band=bool(band_mask[px]),
                raman_tol_cm1=prm.raman_tol_cm1, static_presence=math.inf, broad_factor=prm.broad_factor)
            static[k] = fact
            continue
        keep[k] = False
        others.append(fact)
    return keep, others, static


def _split_static(members: list[list[int]], segs: list[Segmentation], static: dict[int, dict],
                  split: dict | None = None, min_split_frames: int = 3, jump_fraction: float = 0.3):
    """A single still line is static (lamp, Raman, instrument); a still set of 2-3 lines
    within the fine-structure span is kept as an exciton (lamp and Raman lines do not
    come as fine-structure multiplets; a still emitter does), with a note. A single
    still line that was fitted as two peaks in at least ``min_split_frames`` frames
    (:func:`~.tracking.join_same_line`; the same evidence a track needs to count as a
    line) is such an unresolved multiplet and is kept too. So is a single still line
    whose intensity steps by at least ``jump_fraction`` of its brightest level (a
    change point of its Poisson segmentation, :func:`_jump_steps`): lamp, laser and
    Raman lines under steady excitation keep one level (the static lines of the real
    SIF series have no change point), an emitter dims and blinks. It is then judged by
    the other classes (broad, band) as any line that moves."""
    kept_m, kept_s, others, notes = [], [], [], []
    split = split or {}
    for mem, seg in zip(members, segs):
        if all(k in static for k in mem):
            n_split = split.get(mem[0], {}).get("n_split_frames", 0) if len(mem) == 1 else 0
            steps = _jump_steps(seg, jump_fraction)
            fact = {k: v for k, v in static[mem[0]].items() if k != "unless_still"}
            cls, why = static[mem[0]].get("unless_still", ("emitter", ""))
            if len(mem) == 1 and n_split >= min_split_frames:
                notes.append(f"the line at {static[mem[0]]['center_nm']:.2f} nm is present in every frame and "
                             f"barely moves, but splits into two peaks in {n_split} frames; kept as an exciton "
                             "(unresolved fine-structure multiplet)")
            elif len(mem) == 1 and np.any(steps != 0) and cls == "emitter":
                notes.append(f"the line at {fact['center_nm']:.2f} nm is present in every frame and barely moves, "
                             f"but its intensity steps {int(np.count_nonzero(steps))} time(s) by >= "
                             f"{100 * jump_fraction:.0f} % of its brightest level; kept as an emitter (a lamp or "
                             "Raman line keeps one level)")
            elif len(mem) == 1 and np.any(steps != 0):
                others.append({**fact, "class": cls, "reason": why})
                continue
            elif len(mem) == 1:
                others.append(fact)
                continue
            else:
                notes.append("a set of lines at " + ", ".join(f"{static[k]['center_nm']:.2f}" for k in mem)
                             + " nm is present in every frame and does not move; kept as an exciton fine-structure "
                             "set (a lamp or Raman multiplet would look the same)")
        kept_m.append(mem)
        kept_s.append(seg)
    return kept_m, kept_s, others, notes


def _line_fact(k: int, cls: str, reason: str, lc: _LineCounts, fwhm: float, wander: dict, scr: _Screen) -> dict:
    """JSON-ready description of one track that is not (part of) an emitter."""
    fact = {"center_nm": float(lc.center_nm[k]), "class": cls, "reason": reason, "fwhm_nm": fwhm,
            "presence": wander.get("presence"), "wander_nm": wander.get("wander_nm"), "chi2": wander.get("chi2"),
            "mean_counts": float(np.nanmean(np.clip(lc.area[k], 0.0, None))), "tracks": [int(k)]}
    if scr.laser_nm is not None:
        fact["raman_shift_cm1"] = float(raman_shift_cm1(scr.laser_nm, lc.center_nm[k]))
        if cls != "raman" and lc.center_nm[k] > scr.laser_nm:
            fact["reason"] += f" (Raman shift {fact['raman_shift_cm1']:.1f} cm-1 from the {scr.laser_nm:g} nm laser)"
    return fact


def _drop_silent(members: list[list[int]], segs: list[Segmentation], ta: TrackArrays,
                 lc: _LineCounts) -> tuple[list[list[int]], list[Segmentation], list[dict]]:
    """Sets of lines never on, or with no counts measured while on, are not emitters."""
    kept_m, kept_s, dropped = [], [], []
    for mem, seg in zip(members, segs):
        on = np.asarray(seg.on, bool)
        mc, _ = _mean_counts(ta, mem, on) if on.any() else (np.nan, np.nan)
        if on.any() and math.isfinite(mc):
            kept_m.append(mem)
            kept_s.append(seg)
            continue
        why = ("never on: its trace never rises above the background" if not on.any()
               else "no line area measured in its on frames")
        dropped.append({"center_nm": float(np.mean(lc.center_nm[mem])), "lines_nm": [float(lc.center_nm[k]) for k in mem],
                        "class": "never on" if not on.any() else "no counts", "reason": why, "tracks": list(mem)})
    return kept_m, kept_s, dropped


def _median_with_se(values: np.ndarray, errors: np.ndarray) -> tuple[float, float]:
    """Median of the finite values and its standard error (1.2533 sd / sqrt(n); the
    value's own error for a single value)."""
    ok = np.isfinite(values)
    v, s = values[ok], errors[ok]
    if v.size == 0:
        return np.nan, np.nan
    if v.size == 1:
        return float(v[0]), float(s[0])
    return float(np.median(v)), float(1.2533 * np.std(v, ddof=1) / math.sqrt(v.size))


def _emitter_lines(mem: list[int], on: np.ndarray, ta: TrackArrays, fits: LineFits,
                   lc: _LineCounts) -> list[PLLine]:
    """One :class:`PLLine` per track of an emitter: position over its on frames,
    linewidth, mean counts and share of the emitter's counts."""
    rows = []
    for k in mem:
        c, ce = ta.center_nm[k][on], ta.center_err_nm[k][on]
        if not np.isfinite(c).any():  # never detected while on: all its frames
            c, ce = ta.center_nm[k], ta.center_err_nm[k]
        center, center_se = _median_with_se(c, ce)
        if not math.isfinite(center):
            center = lc.center_nm[k]
        rows.append((center, center_se, _emitter_linewidth(ta, [k], fits), _mean_counts(ta, [k], on)))
    total = sum(mc for *_, (mc, _) in rows if math.isfinite(mc))
    lines = []
    for center, center_se, (lw, lw_se), (mc, mc_se) in rows:
        frac = measured(mc / total, mc_se / total) if total > 0 and math.isfinite(mc) else None
        lines.append(PLLine(center_nm=measured(center, center_se), linewidth_uev=measured(lw, lw_se),
                            mean_counts=measured(mc, mc_se), fraction=frac))
    return lines


def _energy_centroid(lines: list[PLLine]) -> Measured:
    """Wavelength of the mean photon energy of the lines, with its propagated stderr."""
    lam = np.array([float(x.center_nm) for x in lines])
    se = np.array([np.nan if x.center_nm.stderr is None else x.center_nm.stderr for x in lines])
    e = HC_EV_NM / lam
    center = HC_EV_NM / np.mean(e)
    se_e = math.sqrt(float(np.sum((HC_EV_NM / lam**2 * se) ** 2))) / lam.size
    return measured(center, center**2 / HC_EV_NM * se_e)


def _describe_emitters(grp: _Grouping, ta: TrackArrays, fits: LineFits, lc: _LineCounts,
                       t: np.ndarray, frame_s: float) -> tuple[list[PLEmitter], list[EmitterTrace]]:
    """Step 6: the :class:`PLEmitter` items (lines, centre, FSS, linewidth, counts,
    intervals, charge partner) and the per-frame traces behind them."""
    n_em = len(grp.members)
    ids = [f"E{k + 1}" for k in range(n_em)]
    charged = {nn: e for e, nn in enumerate(grp.partner) if nn is not None}
    emitters, traces = [], []
    for e, mem in enumerate(grp.members):
        on = grp.on[e]
        lines = _emitter_lines(mem, on, ta, fits, lc)
        center = _energy_centroid(lines)
        fss = (0.0, 0.0) if len(mem) == 1 else _emitter_fss(fits, ta, mem)
        kind = grp.kinds[e]
        emitters.append(PLEmitter(
            id=ids[e], kind=kind, center_nm=center, lines=lines, fss_uev=measured(*fss),
            linewidth_uev=measured(*_emitter_linewidth(ta, mem, fits)),
            mean_counts=measured(*_mean_counts(ta, mem, on)), state="X*" if kind == "trion" else "X",
            intervals_s=mask_to_intervals(on, t, frame_s),
            charged_intervals_s=mask_to_intervals(grp.on[charged[e]], t, frame_s) if e in charged else (),
            trion_of=ids[grp.partner[e]] if grp.partner[e] is not None else None,
            domain=grp.domain[e], tracks=mem))
        dev = ta.center_nm[mem] - np.nanmedian(ta.center_nm[mem], axis=1, keepdims=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # frames with no line of the emitter
            wtrace = float(center) + np.nanmean(dev, axis=0)
        traces.append(EmitterTrace(tracks=mem, intensity=lc.area[mem].sum(0), counts=lc.counts[mem].sum(0),
                                   background=lc.background[mem].sum(0), wavelength=wtrace,
                                   segmentation=grp.segmentations[e]))
    return emitters, traces


def _correlate_emitters(emitters: list[PLEmitter], traces: list[EmitterTrace], partner: list[int | None],
                        t: np.ndarray, frame_s: float, prm: AnalysisParams) -> list[PairCorrelation]:
    """Step 7: every pair of emitters: intensity, jump and wavelength correlations, verdict."""
    rng = make_rng(prm.seed)
    wf = max(3, int(round(prm.window_s / frame_s))) if frame_s > 0 else 10
    pairs = []
    for i in range(len(emitters)):
        for j in range(i + 1, len(emitters)):
            a, b = traces[i], traces[j]
            rel = "charge states" if (partner[i] == j or partner[j] == i) else ""
            pairs.append(correlate_pair(
                emitters[i].id, emitters[j].id, a.intensity, b.intensity,
                a.segmentation.change_points, b.segmentation.change_points,
                _jump_steps(a.segmentation, prm.jump_fraction), _jump_steps(b.segmentation, prm.jump_fraction),
                a.wavelength, b.wavelength, t, relation=rel, window_frames=wf,
                n_surrogates=prm.n_surrogates, alpha=prm.alpha, rng=rng,
            ))
    return pairs


def _coupling(p: PairCorrelation) -> PLCoupling:
    """The record item of one analysed pair."""
    return PLCoupling(
        emitters=(p.a, p.b), verdict=p.verdict,
        mechanisms=[_MECHANISMS.get(p.relation, p.relation)] if p.relation else [],
        intervals_s=[(w["start_s"], w["stop_s"]) for w in p.windows],
        wavelength_r=_finite_or_none(p.wavelength_r), pearson_r=_finite_or_none(p.pearson_r),
        pearson_p=_finite_or_none(p.pearson_p), spearman_rho=_finite_or_none(p.spearman_rho),
        windows=to_jsonable(p.windows))


def _crop(movie: xr.DataArray, range_nm) -> tuple[xr.DataArray, tuple | None]:
    """The movie restricted to ``range_nm`` = (lo, hi) in nm (None: the whole window)."""
    if range_nm is None:
        return movie, None
    lo, hi = (float(v) for v in range_nm)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise InputError(f"range_nm must be 0 < lo < hi in nm, got {range_nm!r}")
    wl = movie["wavelength"].values
    sel = (wl >= lo) & (wl <= hi)
    if sel.sum() < 8:
        raise InputError(f"range {lo:g}-{hi:g} nm holds {int(sel.sum())} pixels of the window "
                         f"{wl[0]:.4g}-{wl[-1]:.4g} nm; at least 8 are needed")
    return movie.isel(wavelength=np.flatnonzero(sel)), (lo, hi)


def _frame_period(movie: xr.DataArray, t: np.ndarray) -> tuple[float, bool]:
    """Frame period (s) and whether the time axis is real time (False: frame indices)."""
    timed = str(movie.attrs.get("time_units", "s")) != "frame"
    if t.size > 1:
        return float(np.median(np.diff(t))), timed
    exp = movie.attrs.get("exposure_s")
    return (float(exp), True) if exp else (1.0, False)


def _screen_warnings(scr: _Screen, band: dict, others: list[dict], silent: list[dict], n_frames: int,
                     timed: bool, time_source: str, low: dict) -> list[str]:
    """What a user must know about the data before reading the emitters."""
    out = []
    if not timed:
        out.append(f"no frame timing in the file ({time_source}): times and intervals are frame indices")
    if scr.saturation.any:
        out.append(scr.saturation.message(n_frames))
    if scr.laser_nm is not None and scr.dropped.get("in_excluded_ranges"):
        out.append(f"{scr.dropped['in_excluded_ranges']} line detections within +-{scr.ranges[0]['hi_nm'] - scr.laser_nm:g} "
                   f"nm of the {scr.laser_nm:g} nm laser ({scr.laser_source}) or in excluded ranges were dropped")
    if band.get("is_band"):
        out.append(f"broad emission band: {band['reason']}; features on it are band structure, not single emitters "
                   "(no fine structure is reported for them)")
    by_class: dict[str, list[str]] = {}
    for o in others + silent:
        by_class.setdefault(o["class"], []).append(f"{o['center_nm']:.2f}")
    for cls, where in by_class.items():
        out.append(f"{len(where)} {cls} line(s) not reported as emitters: " + ", ".join(where) + " nm")
    if low["n_pixels"]:
        out.append(f"{low['n_pixels']} pixels ({100 * low['fraction']:.2g} %) lie more than 6 noise sd below the "
                   "camera offset: background-subtracted or corrupt data")
    return out


def analyze_movie(movie, *, params: AnalysisParams | None = None, **overrides) -> MovieAnalysis:
    """Find, characterise and correlate the emitters of a PL spectral movie.

    Before emitters are formed the data are screened (:mod:`.screening`): the laser line
    (from the file or ``laser_nm``) and ``exclude_nm`` ranges are dropped, the window
    is cropped to ``range_nm``, clipped pixels are detected and the lines on them not
    measured; lines that are Raman, static, much broader than the resolution, or part
    of a broad band are described in ``record.meta["not_emitters"]`` instead of being
    emitters, as are sets of lines never on. Pair verdicts are corrected for multiple
    comparisons (``multiple_testing``, :func:`~.correlation.adjust_verdicts`).

    Parameters
    ----------
    movie : xarray.DataArray or str or Path or hyperspy.signals.Signal1D
        dims (time, wavelength), a file or a HyperSpy signal for
        :func:`~nanodomains.spectroscopy.io.load_movie`.
    params : AnalysisParams, optional
    **overrides
        Replace single fields of ``params`` (e.g. ``snr_min=8``).

    Returns
    -------
    analysis : MovieAnalysis
        ``analysis.record`` is the :class:`~nanodomains.records.emitters.PLEmitters`
        result (written as emitters.json by ``analysis.write``).
    """
    prm = _resolve_params(params, overrides)
    if prm.multiple_testing not in ("bh", "holm", "none"):
        raise InputError(f"multiple_testing must be 'bh', 'holm' or 'none', got {prm.multiple_testing!r}")
    movie, crop = _crop(_load_validated(movie), prm.range_nm)
    t = movie["time"].values.astype(float)
    wl = movie["wavelength"].values.astype(float)
    T, W = movie.shape
    frame_s, timed = _frame_period(movie, t)
    scr = _screen_setup(movie, prm, crop)
    c = _clean_and_fit(movie.values, wl, prm)
    c.fits = _screen_fits(c.fits, wl, scr, T)
    tid, ta, split = _link_tracks(c.fits, prm, T)
    emitters, traces, pairs, not_computed, others, silent, band, notes = [], [], [], {}, [], [], {}, []
    ambiguous: dict = {}
    if ta.n_tracks:
        lc = _line_counts(c, wl, ta, prm)
        band = _band(c, wl, lc, scr)
        keep, others, static = _classify_tracks(ta, lc, wl, band, scr, prm)
        members, segs, covered = _group_and_segment(ta, lc, prm, keep)
        members, segs, still, notes = _split_static(members, segs, static, split, prm.min_track_frames,
                                                    prm.jump_fraction)
        others += still
        members, segs, silent = _drop_silent(members, segs, ta, lc)
        if members:
            grp = _group_emitters(members, segs, lc, prm, T)
            emitters, traces = _describe_emitters(grp, ta, c.fits, lc, t, frame_s)
            notes += _blend_notes(emitters, split, ta)
            ambiguous, amb_notes = _ambiguous_frames(emitters, grp, covered, ta)
            notes += amb_notes
            pairs = _correlate_emitters(emitters, traces, grp.partner, t, frame_s, prm)
            pairs = adjust_verdicts(pairs, alpha=prm.alpha, method=prm.multiple_testing)
    if not emitters:
        not_computed["emitters"] = (f"no line above SNR {prm.snr_min:g} lasting {prm.min_track_frames} frames"
                                    if not ta.n_tracks else
                                    f"{ta.n_tracks} line tracks, none behaves like an emitter (see meta.not_emitters)")
    if len(emitters) < 2:
        not_computed["couplings"] = "fewer than two emitters"
    low = offset_check(movie.values, band["offset_counts"], estimate_noise(c.signal)) if "offset_counts" in band \
        else {"n_pixels": 0, "fraction": 0.0}
    warn = _screen_warnings(scr, band, others, silent, T, timed, str(movie.attrs.get("time_source", "")), low) + notes
    meta = to_jsonable({
        "format": str(movie.attrs.get("format", "")), "time_source": str(movie.attrs.get("time_source", "")),
        "time_units": "s" if timed else "frame", "exposure_s": movie.attrs.get("exposure_s"),
        "n_pixels": W, "wavelength_range_nm": [float(wl[0]), float(wl[-1])], "cropped_to_nm": crop,
        "n_detections": len(c.fits), "n_cosmic_rays": len(c.cosmic_rays),
        "n_tracks": ta.n_tracks, "n_emitters": len(emitters), "cosmic_rays": c.cosmic_rays.to_records(),
        "laser_nm": scr.laser_nm, "laser_source": scr.laser_source if scr.laser_nm is not None else None,
        "excluded_nm": scr.ranges, "dropped_detections": scr.dropped,
        "resolution_nm": scr.resolution_nm, "resolution_source": scr.resolution_source,
        "saturation": scr.saturation.summary(),
        "band": {k: v for k, v in band.items() if k != "band_mask"},
        "not_emitters": others + silent, "multiple_testing": prm.multiple_testing,
        "ambiguous_frames": ambiguous})
    record = PLEmitters(emitters=emitters, couplings=[_coupling(p) for p in pairs], n_frames=T, frame_s=frame_s,
                        meta=meta, source=str(movie.attrs.get("source", "")) or None, settings=asdict(prm),
                        not_computed=not_computed, warnings=warn)
    return MovieAnalysis(record, traces, t, wl, c.clean, c.background, pairs, c.fits, tid, ta,
                         c.cosmic_rays, prm)


def _ambiguous_frames(emitters: list[PLEmitter], grp: _Grouping, covered: list,
                      ta: TrackArrays) -> tuple[dict[str, list[int]], list[str]]:
    """Frames in which an emitter is judged on while every one of its lines was covered
    by a line of another emitter (not of a track that is no emitter, such as a blend of
    its own lines fitted as one peak) and not detected itself (:func:`_set_counts`):
    the counts there may be the other emitter's, and one frame cannot tell (a jump of
    one line onto another's position is the same spectrum). Emitter id -> frame
    indices, and a warning for each."""
    out, notes = {}, []
    emitter_tracks = [k for m in grp.members for k in m]
    for mem, _ in covered:
        e = next((i for i, m in enumerate(grp.members) if list(m) == list(mem)), None)
        if e is None:
            continue
        cov = _covered_by_other_lines(mem, ta, others=emitter_tracks).all(axis=0)
        frames = np.flatnonzero(cov & grp.on[e])
        if frames.size == 0:
            continue
        em = emitters[e]
        out[em.id] = [int(f) for f in frames]
        notes.append(f"{em.id}: in {frames.size} frame(s) ({', '.join(str(int(f)) for f in frames[:10])}"
                     f"{' ...' if frames.size > 10 else ''}) its line(s) at "
                     + ", ".join(f"{float(x):.3f}" for x in em.lines_nm)
                     + " nm were not detected while another emitter's line lay on them: its on state there is "
                     "ambiguous (counted as on from the counts in its window)")
    return out, notes


def _blend_notes(emitters: list[PLEmitter], split: dict, ta: TrackArrays) -> list[str]:
    """A warning for every line that was fitted as two peaks in some frames and as one
    (broader) peak in the others: a possibly unresolved fine-structure multiplet."""
    out = []
    narrowest = float(np.nanmin(ta.hwhm_track_nm)) if ta.n_tracks else np.nan
    for em in emitters:
        for k, line in zip(em.tracks, em.lines):
            s = split.get(int(k))
            if not s or not s["n_split_frames"]:
                continue
            lam = float(line.center_nm)
            fwhm = 2.0 * float(ta.hwhm_track_nm[k])
            out.append(
                f"{em.id}: the line at {lam:.3f} nm was fitted as two peaks {s['split_nm']:.3f} nm "
                f"({s['split_nm'] * HC_EV_NM / lam**2 * 1e6:.0f} ueV) apart in {s['n_split_frames']} of "
                f"{int(ta.detected[k].sum())} frames and as one peak of FWHM {fwhm:.3f} nm "
                f"({fwhm / (2.0 * narrowest):.1f} x the narrowest line) in the others: probably a fine-structure "
                "multiplet not resolved at this linewidth, reported as one line")
    return out


def _emitter_fss(fits: LineFits, ta: TrackArrays, mem: list[int]) -> tuple[float, float]:
    """Weighted mean FSS over frames where all lines of the set were detected."""
    idx = ta.index[mem]  # (n_lines, T)
    both = np.all(idx >= 0, axis=0)
    vals, errs = [], []
    for f in np.flatnonzero(both):  # loop over frames of one emitter
        rows = idx[:, f]
        c = fits.center_nm[rows]
        g = fits.group[rows]
        if np.all(g == g[0]):
            cov = fits.center_cov[g[0]][np.ix_(fits.slot[rows], fits.slot[rows])]
        else:
            cov = np.diag(fits.center_err_nm[rows] ** 2)
        if not np.all(np.isfinite(cov)):
            continue
        try:
            v, s = fss_uev(c, cov)
        except Exception:
            continue
        vals.append(v)
        errs.append(s)
    return _weighted_mean(vals, errs)


def _emitter_linewidth(ta: TrackArrays, mem: list[int], fits: LineFits) -> tuple[float, float]:
    rows = ta.index[mem][ta.index[mem] >= 0]
    if rows.size == 0:
        return np.nan, np.nan
    lam = fits.center_nm[rows]
    k = 2.0 * HC_EV_NM / lam**2 * 1e6  # FWHM in ueV per nm of HWHM
    return _weighted_mean(fits.hwhm_nm[rows] * k, fits.hwhm_err_nm[rows] * k)


def _mean_counts(ta: TrackArrays, mem: list[int], on: np.ndarray) -> tuple[float, float]:
    tot, var = 0.0, 0.0
    for k in mem:
        a = ta.area_counts[k][on]
        a = a[np.isfinite(a)]
        if a.size == 0:
            continue
        tot += float(a.mean())
        var += float(a.var(ddof=1) / a.size) if a.size > 1 else float(a.mean()) ** 2
    if tot == 0.0:
        return np.nan, np.nan
    return tot, math.sqrt(var)

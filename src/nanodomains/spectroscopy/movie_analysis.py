"""Analyse a single-nanocrystal 4 K PL spectral movie end to end.

``analyze_movie(movie)`` runs, in order (each step documented in its module):

1. validation (:mod:`.io`), cosmic-ray removal and baseline (:mod:`.peaks`);
2. peak detection and batched multi-line fits with shared widths (:mod:`.peaks`);
3. linking lines over time and grouping them into emitters (:mod:`.tracking`);
4. per-emitter count traces in a window of +-``window_hwhm`` HWHM around each line,
   less the tails of the other lines in that window (their heights from a joint
   fixed-position fit, :func:`~.peaks.fit_amplitudes`), Poisson change-point
   segmentation into on/off states (:mod:`.states`); the line intensities used for
   grouping and correlations are the integrated counts of that joint fit (free of
   crosstalk and of the pixel phase of undersampled lines);
5. classification singlet / doublet / triplet / trion (:mod:`.tracking`);
6. fine-structure splitting and linewidth per emitter: inverse-variance weighted mean
   over the frames in which all its lines were fit, error inflated by
   sqrt(reduced chi-square) when the frames scatter more than their errors;
7. pair correlations and verdicts (:mod:`.correlation`); coincident jumps count only
   level changes of at least ``jump_fraction`` of the emitter's brightest level.

``MovieAnalysis.write(out_dir)`` writes ``emitters.json`` in the schema of the optical
forward model's truth sidecar (``{"emitters": [{"id", "domain", "kind", "center_nm",
"lines_nm", "fss_uev", "intervals_s", ...}], "couplings": [...]}``) with the extra
fields ``fss_uev_err``, ``linewidth_uev``, ``linewidth_uev_err``, ``mean_counts``,
``mean_counts_err``, ``charged_intervals_s`` and ``trion_of``; ``correlations.csv``
(one row per pair) and ``overview.png`` (the movie with the detected lines, as the seed
paper's Fig. 4 and 5).

Conventions: ``center_nm`` is the wavelength of the energy centroid of the lines,
``lines_nm`` the time-median of each line's fitted centre (spectral diffusion averages
out), ``fss_uev`` |E1 - E2| for a doublet and (E_max - E_min)/2 for a triplet (0 for a
singlet or trion), ``linewidth_uev`` the Lorentzian FWHM in energy, ``intervals_s``
the on intervals [t_start, t_end] (t_end = start of the last on frame + frame
period), ``mean_counts`` the integrated counts per frame of all lines while on.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from nanodomains.errors import InputError
from nanodomains.spectroscopy.correlation import PairCorrelation, correlate_pair
from nanodomains.spectroscopy.io import load_movie, validate_movie
from nanodomains.spectroscopy.peaks import (
    HC_EV_NM,
    CosmicRays,
    LineFits,
    detect_peaks,
    estimate_background,
    estimate_noise,
    fit_amplitudes,
    fit_lines,
    fss_uev,
    lorentzian_pixels,
    remove_cosmic_rays,
)
from nanodomains.spectroscopy.states import Segmentation, mask_to_intervals, segment_trace
from nanodomains.spectroscopy.tracking import (
    TrackArrays,
    classify_emitters,
    group_tracks,
    link_lines,
    stitch_tracks,
    track_arrays,
    window_sums,
)

__all__ = ["AnalysisParams", "Emitter", "MovieAnalysis", "analyze_movie"]


@dataclass
class AnalysisParams:
    """Every knob of :func:`analyze_movie` (defaults suit 4 K single-NC movies)."""

    remove_cosmics: bool = True
    cosmic_threshold: float = 8.0
    background_window_px: int = 30
    snr_min: float = 5.0
    prominence_snr: float = 3.0
    smooth_px: float = 1.0
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


@dataclass
class Emitter:
    """One emitter (fine-structure set or trion line) found in the movie."""

    id: str
    domain: int
    kind: str
    center_nm: float
    lines_nm: list
    fss_uev: float
    fss_uev_err: float
    linewidth_uev: float
    linewidth_uev_err: float
    intervals_s: list
    mean_counts: float
    mean_counts_err: float
    charged_intervals_s: list = field(default_factory=list)
    trion_of: str | None = None
    tracks: list = field(default_factory=list)
    # per-frame arrays (not written to JSON)
    intensity: np.ndarray | None = field(default=None, repr=False)
    counts: np.ndarray | None = field(default=None, repr=False)
    background: np.ndarray | None = field(default=None, repr=False)
    wavelength: np.ndarray | None = field(default=None, repr=False)
    segmentation: Segmentation | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("intensity", "counts", "background", "wavelength", "segmentation", "tracks")}
        return _clean_json(d)


def _clean_json(obj):
    if isinstance(obj, dict):
        return {k: _clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean_json(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.ndarray):
        return _clean_json(obj.tolist())
    return obj


@dataclass
class MovieAnalysis:
    """Everything :func:`analyze_movie` found; ``write`` saves the files."""

    time_s: np.ndarray
    wavelength_nm: np.ndarray
    cleaned: np.ndarray
    background: np.ndarray
    emitters: list[Emitter]
    pairs: list[PairCorrelation]
    fits: LineFits
    track_id: np.ndarray
    tracks: TrackArrays
    cosmic_rays: CosmicRays
    params: AnalysisParams
    meta: dict

    def to_dict(self) -> dict:
        """The emitters.json content."""
        couplings = [
            {"emitters": [p.a, p.b], "verdict": p.verdict,
             "mechanisms": [_MECHANISMS.get(p.relation, p.relation)] if p.relation else [],
             "intervals_s": [[w["start_s"], w["stop_s"]] for w in p.windows],
             "wavelength_r": p.wavelength_r, "pearson_r": p.pearson_r, "pearson_p": p.pearson_p,
             "spearman_rho": p.spearman_rho, "windows": p.windows}
            for p in self.pairs
        ]
        return _clean_json({
            "emitters": [e.to_dict() for e in self.emitters],
            "couplings": couplings,
            "meta": {**self.meta, "params": asdict(self.params), "cosmic_rays": self.cosmic_rays.to_records()},
        })

    def write(self, out_dir, *, overview: bool = True) -> dict:
        """Write emitters.json, correlations.csv and (optionally) overview.png.

        Returns
        -------
        paths : dict
            name -> Path.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        p = out / "emitters.json"
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False))
        tmp.replace(p)
        paths["emitters"] = p
        p = out / "correlations.csv"
        cols = list(PairCorrelation.__dataclass_fields__)
        tmp = p.with_name(p.name + ".tmp")
        with tmp.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols)
            w.writeheader()
            for pair in self.pairs:
                w.writerow(pair.row())
        tmp.replace(p)
        paths["correlations"] = p
        if overview:
            paths["overview"] = self.plot_overview(out / "overview.png")
        return paths

    def plot_overview(self, path, *, title: str | None = None) -> Path:
        """Colour map of the movie with the detected lines, mean spectrum and emitter traces."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import PowerNorm

        t, wl = self.time_s, self.wavelength_nm
        img = self.cleaned - self.background
        lo, hi = np.percentile(img, [1, 99.7])
        fig = plt.figure(figsize=(11, 7), constrained_layout=True)
        gs = fig.add_gridspec(2, 2, width_ratios=[3, 1.2], height_ratios=[3, 1])
        ax = fig.add_subplot(gs[0, 0])
        ax.pcolormesh(wl, t, np.clip(img, max(lo, 0), hi), shading="nearest", cmap="inferno",
                      norm=PowerNorm(0.5, vmin=max(lo, 0), vmax=max(hi, lo + 1e-9)), rasterized=True)
        cmap = plt.get_cmap("tab10")
        for k, e in enumerate(self.emitters):
            c = cmap(k % 10)
            for tr in e.tracks:
                det = np.isfinite(self.tracks.center_nm[tr])
                ax.plot(self.tracks.center_nm[tr][det], t[det], ".", ms=2.5, color=c)
            label = f"{e.id} {e.kind}" + (f" {e.fss_uev:.0f} ueV" if e.kind in ("doublet", "triplet") and e.fss_uev else "")
            ax.annotate(label, (e.center_nm, t[-1]), xytext=(0, 4), textcoords="offset points", color=c,
                        fontsize=7, ha="center", va="bottom", rotation=60, annotation_clip=False)
        ax.set_ylabel("time (s)")
        ax.set_xlim(wl[0], wl[-1])
        ax.set_ylim(t[0], t[-1]) if t.size > 1 else ax.set_ylim(t[0] - 0.5, t[0] + 0.5)
        fig.suptitle(title or self.meta.get("source", ""), fontsize=9)
        ax2 = fig.add_subplot(gs[1, 0], sharex=ax)
        ax2.plot(wl, img.mean(axis=0), lw=0.8, color="k")
        for k, e in enumerate(self.emitters):
            for lam in e.lines_nm:
                ax2.axvline(lam, color=cmap(k % 10), lw=0.6, alpha=0.7)
        ax2.set_xlabel("wavelength (nm)")
        ax2.set_ylabel("mean counts")
        ax3 = fig.add_subplot(gs[0, 1], sharey=ax)
        for k, e in enumerate(self.emitters):
            if e.intensity is None:
                continue
            s = e.intensity / max(np.nanmax(np.abs(e.intensity)), 1e-12)
            ax3.plot(s + 1.2 * k, t, lw=0.7, color=cmap(k % 10))
            if e.segmentation is not None:
                fit = e.segmentation.fitted() / max(np.nanmax(np.abs(e.intensity)), 1e-12)
                ax3.step(fit + 1.2 * k, t, where="mid", lw=1.0, color="k")
        ax3.set_xlabel("emitter intensity (norm., offset)")
        ax3.set_xticks([1.2 * k for k in range(len(self.emitters))], [e.id for e in self.emitters], fontsize=7, rotation=90)
        plt.setp(ax3.get_yticklabels(), visible=False)
        ax4 = fig.add_subplot(gs[1, 1])
        ax4.axis("off")
        lines = [f"{e.id}: {e.kind}, {e.center_nm:.2f} nm" + (f", FSS {e.fss_uev:.0f}+-{e.fss_uev_err:.0f} ueV" if e.kind in ("doublet", "triplet") else "")
                 for e in self.emitters[:10]]
        lines += [f"{p.a}-{p.b}: {p.verdict}" for p in self.pairs if p.verdict != "independent"][:6]
        ax4.text(0, 1, "\n".join(lines) or "no emitters found", va="top", fontsize=7, family="monospace")
        p = Path(path)
        fig.savefig(p, dpi=130)
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


def analyze_movie(movie, *, params: AnalysisParams | None = None, **overrides) -> MovieAnalysis:
    """Find, characterise and correlate the emitters of a PL spectral movie.

    Parameters
    ----------
    movie : xarray.DataArray or str or Path
        dims (time, wavelength) or a file for :func:`~nanodomains.spectroscopy.io.load_movie`.
    params : AnalysisParams, optional
    **overrides
        Replace single fields of ``params`` (e.g. ``snr_min=8``).

    Returns
    -------
    analysis : MovieAnalysis
    """
    prm = params or AnalysisParams()
    if overrides:
        unknown = set(overrides) - set(AnalysisParams.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown analysis parameters {sorted(unknown)}")
        prm = AnalysisParams(**{**asdict(prm), **overrides})
    if not isinstance(movie, xr.DataArray):
        movie = load_movie(movie)
    movie = validate_movie(movie)
    t = movie["time"].values.astype(float)
    wl = movie["wavelength"].values.astype(float)
    raw = movie.values
    T, W = raw.shape
    if W < 8:
        raise InputError(f"{movie.attrs.get('source', 'movie')}: {W} pixels are too few for line analysis")
    frame_s = float(np.median(np.diff(t))) if T > 1 else float(movie.attrs.get("exposure_s", 1.0) or 1.0)
    if prm.remove_cosmics and T >= 2:
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
    fits = fit_lines(sig, wl, pk, variance=var, profile=prm.profile, instrument_sigma_nm=prm.instrument_sigma_nm)
    good = (fits.converged & np.isfinite(fits.center_err_nm) & (fits.snr >= prm.fit_snr_min)
            & (fits.center_nm > wl[0]) & (fits.center_nm < wl[-1]))
    fits = fits.select(good)
    fits = fits.select(_not_duplicate(fits))
    meta = {
        "source": str(movie.attrs.get("source", "")),
        "format": str(movie.attrs.get("format", "")),
        "time_source": str(movie.attrs.get("time_source", "")),
        "n_frames": T,
        "n_pixels": W,
        "frame_s": frame_s,
        "n_detections": len(fits),
        "n_cosmic_rays": len(cr),
        "seed": prm.seed,
    }
    tid = link_lines(fits, max_jump_nm=prm.max_jump_nm, max_gap_frames=prm.max_gap_frames) if len(fits) else np.zeros(0, int)
    # a movie shorter than min_track_frames (e.g. a single spectrum) keeps every line
    min_len = min(prm.min_track_frames, T)
    tid = stitch_tracks(fits, tid, stitch_nm=prm.stitch_nm, min_length=min_len) if len(fits) else tid
    ta = track_arrays(fits, tid, T)
    L = ta.n_tracks
    emitters: list[Emitter] = []
    pairs: list[PairCorrelation] = []
    if L:
        dwl = float(np.median(np.abs(np.diff(wl))))
        half = np.maximum(prm.window_hwhm * ta.hwhm_track_nm, 2.5 * dwl)
        n_tr = window_sums(clean, wl, ta.position_nm, half)
        b_tr = window_sums(bg, wl, ta.position_nm, half)
        # remove the tails of the other lines from each window (crosstalk between close
        # lines of different emitters): their heights from a joint fit at fixed positions
        hw_tr = np.where(np.isfinite(ta.hwhm_track_nm) & (ta.hwhm_track_nm > 0), ta.hwhm_track_nm, dwl)
        amp_f, amp_fe = fit_amplitudes(sig, wl, ta.position_nm, hw_tr, variance=var)
        amp_f, amp_fe = np.nan_to_num(amp_f), np.nan_to_num(amp_fe, nan=np.inf)
        cross = np.zeros_like(n_tr)
        for j in range(L):  # loop over lines (tens), each vectorised over frames and pixels
            prof = np.clip(amp_f[j], 0.0, None)[:, None] * lorentzian_pixels(wl, ta.position_nm[j], hw_tr[j])
            ws = window_sums(prof, wl, ta.position_nm, half)
            ws[j] = 0.0
            cross += ws
        n_tr = n_tr - cross
        # integrated counts of every line in every frame (fixed-position fit): free of
        # crosstalk and of the pixel phase of undersampled lines
        area_k = np.pi * hw_tr / np.interp(np.nanmedian(ta.position_nm, axis=1), wl, np.abs(np.gradient(wl)))
        area_f, area_fe = amp_f * area_k[:, None], amp_fe * area_k[:, None]
        center_tr = np.array([np.nanmedian(ta.center_nm[k]) for k in range(L)])
        em_of = group_tracks(
            center_tr, area_f, area_fe, ta.center_nm, ta.center_err_nm,
            max_span_uev=prm.max_set_span_uev,
        )
        n_em = int(em_of.max()) + 1
        segs, members = [], []
        for e in range(n_em):
            mem = [int(k) for k in np.flatnonzero(em_of == e)]
            mem.sort(key=lambda k: center_tr[k])
            members.append(mem)
            segs.append(segment_trace(n_tr[mem].sum(0), b_tr[mem].sum(0), penalty_scale=prm.penalty_scale,
                                      z_on=prm.z_on, on_fraction=prm.on_fraction))
        on = np.array([s.on for s in segs]).reshape(n_em, T)
        kinds, partner = classify_emitters([center_tr[m] for m in members], on, trion_window_mev=tuple(prm.trion_window_mev))
        ids = [f"E{k + 1}" for k in range(n_em)]
        domain = list(range(n_em))
        for s, nn in enumerate(partner):
            if nn is not None:
                domain[s] = domain[nn]
        # renumber domains 0..n-1 in order of first appearance
        dmap = {d: i for i, d in enumerate(dict.fromkeys(domain))}
        for e in range(n_em):
            mem = members[e]
            lines = np.array([np.nanmedian(ta.center_nm[k][on[e]]) if np.isfinite(ta.center_nm[k][on[e]]).any()
                              else center_tr[k] for k in mem])
            center = HC_EV_NM / np.mean(HC_EV_NM / lines)
            fss, fss_err = (0.0, 0.0) if len(mem) == 1 else _emitter_fss(fits, ta, mem)
            lw, lw_err = _emitter_linewidth(ta, mem, fits)
            mc, mc_err = _mean_counts(ta, mem, on[e])
            dev = ta.center_nm[mem] - np.nanmedian(ta.center_nm[mem], axis=1, keepdims=True)
            with np.errstate(all="ignore"):
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    wtrace = center + np.nanmean(dev, axis=0)
            em = Emitter(
                id=ids[e], domain=dmap[domain[e]], kind=kinds[e], center_nm=float(center), lines_nm=[float(x) for x in lines],
                fss_uev=float(fss), fss_uev_err=float(fss_err), linewidth_uev=lw, linewidth_uev_err=lw_err,
                intervals_s=mask_to_intervals(on[e], t, frame_s), mean_counts=mc, mean_counts_err=mc_err,
                trion_of=ids[partner[e]] if partner[e] is not None else None, tracks=mem,
                intensity=area_f[mem].sum(0), counts=n_tr[mem].sum(0), background=b_tr[mem].sum(0),
                wavelength=wtrace, segmentation=segs[e],
            )
            emitters.append(em)
        for e, nn in enumerate(partner):
            if nn is not None:
                emitters[nn].charged_intervals_s = list(emitters[e].intervals_s)
        rng = np.random.default_rng(prm.seed)
        wf = max(3, int(round(prm.window_s / frame_s))) if frame_s > 0 else 10
        for i in range(n_em):
            for j in range(i + 1, n_em):
                a, b = emitters[i], emitters[j]
                rel = "charge states" if (partner[i] == j or partner[j] == i) else ""
                pairs.append(correlate_pair(
                    a.id, b.id, a.intensity, b.intensity,
                    a.segmentation.change_points, b.segmentation.change_points,
                    _jump_steps(a.segmentation, prm.jump_fraction), _jump_steps(b.segmentation, prm.jump_fraction),
                    a.wavelength, b.wavelength, t, relation=rel, window_frames=wf,
                    n_surrogates=prm.n_surrogates, alpha=prm.alpha, rng=rng,
                ))
    meta["n_tracks"] = L
    meta["n_emitters"] = len(emitters)
    return MovieAnalysis(t, wl, clean, bg, emitters, pairs, fits, tid, ta, cr, prm, meta)


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

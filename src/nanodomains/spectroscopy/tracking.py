"""Link fitted lines over time, group them into emitters and classify the emitters.

Linking
-------
Frame by frame, the open tracks (last seen at most ``max_gap_frames`` frames ago) are
assigned to the new detections by a global nearest-neighbour assignment
(scipy.optimize.linear_sum_assignment, Hungarian algorithm) on the cost ``|d lambda|``;
pairs farther apart than ``max_jump_nm * sqrt(gap)`` (spectral diffusion as a random
walk) plus four standard deviations of the two fitted positions are forbidden, after
removing the median shift of all lines between the two frames (one environmental
field moves all lines of an NC together by the quantum-confined Stark effect: the
shift is measured by a first, loose assignment, when it pairs at least two lines).

The diffusion amplitude is the emitter's own (its Stark polarisability and local field:
Empedocles & Bawendi, Science 278, 2114 (1997); a large NC with a large quadratic
Stark response makes steps of 0.1 nm per second where a small one makes 0.02 nm), so
the gate is not one number for every line: once a track has ``min_steps`` measured
steps, its allowance is ``n_sd`` (4) times the rms of its own steps (relative to the
common shift, per sqrt(frame)), never less than ``max_jump_nm``. This larger gate
applies only to a detection that keeps the track's intensity (integrated area within
``n_sd`` x the rms of the track's own area steps, at least the fit errors, of its last
area): spectral diffusion moves a line without changing its brightness, while a jump
to another emitter's line that switched on as the track's own switched off almost
always changes it. Two emitters of equal brightness, one switching off in the frame
where the other switches on within the gate, remain indistinguishable in one frame.

A track whose position steps by more than ``split_nm`` (median of 4 detections
before vs after) is cut: it jumped to a neighbouring line that switched on as the
first switched off; unless the step is shared by another line, or lies within the
track's own diffusion (robust step scale, see :func:`split_tracks`) and keeps its
intensity. Track pieces separated by longer gaps (blinking off periods) are
then stitched by a second assignment between track ends and later track starts
(``stitch_nm``); pieces that are never detected in the same frame and lie within
``stitch_nm`` or one HWHM of each other are merged; pieces shorter than
``min_length`` detections are dropped.

Same line, two tracks (:func:`join_same_line`)
----------------------------------------------
A line that is a blend of unresolved components (a fine-structure doublet whose
splitting is comparable to the linewidth) is fitted as one peak in most frames and as
two peaks in a few (noise, spectral diffusion); the linker then breaks it into tracks
that restart at the same wavelength and whose detections interleave in time. Two
tracks are one line when (i) their time-median centres differ by less than the Sparrow
limit of the narrower of them, ``2 gamma / sqrt(3)`` for Lorentzians of HWHM gamma (the
separation below which the sum of two equal lines has no central dip, i.e. is one peak
that no fit can split reliably: Sparrow, Astrophys. J. 44, 76 (1916); for a Lorentzian
d^2/dx^2 of the sum at the midpoint vanishes at d = 2 gamma / sqrt(3)), and within
``n_sigma`` combined standard errors plus the rms of their spectral wander (medians over
different time spans differ by the slow wander too); and (ii) most frames of the shorter
track hold it alone: it is co-detected with the other in fewer than half of its frames.
Two distinct lines at one median wavelength would, whenever both are on, form one
unresolved peak, so they cannot be told apart by a spectroscopist either; the joined
line's frames where two peaks were fitted are counted (``n_split_frames``) so that the
report can say that the line may be an unresolved multiplet. In those frames the
weaker detection is dropped from the track.

Grouping
--------
The bright-exciton lines of one quantum dot share one exciton: they switch on and off
together, their intensity ratio stays fixed, their spectral-diffusion shifts are the
same (constant splitting) and they lie within a few meV (FSS 0.2-1.5 meV in
perovskite NCs: Becker et al., Nature 553, 189 (2018); Fu et al., Nano Lett. 17, 2895
(2017); seed paper Fig. 4). Two lines are compatible when their energy difference is
at most ``max_span_uev``, their presence (line above ``presence_snr``) overlaps
(Jaccard index >= ``min_jaccard``), their intensity traces correlate (Pearson >=
``min_intensity_corr``) when both vary beyond their noise (always-on lines need a
Jaccard index >= ``min_jaccard_constant``; so do blended lines, see below), and their position traces are not
uncorrelated when both wander beyond the fit error. Compatible pairs are merged
greedily (best first, complete linkage) into sets of at most three lines.

Blended lines: when the profiles of two lines overlap, the joint fit shares the counts
between them; for Lorentzians of HWHM g1, g2 a distance d apart the normalised overlap
(cosine of the two profiles, = minus the correlation of the two fitted amplitudes for
white noise) is rho = 2 sqrt(g1 g2) (g1 + g2) / (d^2 + (g1 + g2)^2) (the overlap
integral of two Lorentzians is a Lorentzian of HWHM g1 + g2). Above ``max_overlap_rho``
any position error or model mismatch (a blend fitted as one line) moves counts from
one line to the other, so the Pearson correlation of their intensities no longer
tests a common exciton; such pairs are judged like always-on lines (co-presence
Jaccard >= ``min_jaccard_constant`` and correlated positions), which needs the HWHMs
(``hwhm_nm``).

Classification
--------------
One line: singlet; two: doublet; three: triplet. A singlet lying 5-25 meV to the red of
another emitter (trion binding energy of CsPb(Br,I)3 NCs ~10-20 meV: Fu et al. 2017,
PHYSICS.md, "(unchecked)"; the issue's 5-25 meV window) that is on when that emitter
is off (on-frame overlap at most ``max_overlap`` of the shorter on-time) is the charged
exciton X* of that emitter: kind "trion".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from nanodomains.errors import InputError
from nanodomains.spectroscopy.peaks import HC_EV_NM, LineFits

__all__ = [
    "link_lines",
    "split_tracks",
    "stitch_tracks",
    "join_same_line",
    "TrackArrays",
    "track_arrays",
    "window_sums",
    "group_tracks",
    "profile_overlap",
    "classify_emitters",
    "voigt_fwhm_nm",
    "expected_at_resolution",
    "mark_unresolved",
]

_BIG = 1e12


def link_lines(
    fits: LineFits,
    *,
    max_jump_nm: float = 0.08,
    max_gap_frames: int = 3,
    drift_factor: float = 3.0,
    n_sd: float = 4.0,
    min_steps: int = 5,
) -> np.ndarray:
    """Link line detections frame to frame into tracks.

    Parameters
    ----------
    fits : LineFits
        One entry per fitted line per frame.
    max_jump_nm : float
        Largest allowed shift between consecutive frames (scaled by sqrt(gap)) for a
        track whose own diffusion is smaller or not yet measured.
    n_sd, min_steps : float, int
        A track with at least ``min_steps`` measured steps may step by ``n_sd`` times
        the rms of its own steps when that exceeds ``max_jump_nm`` (the module
        docstring: the diffusion amplitude is the emitter's).
    max_gap_frames : int
        Frames a track may miss and still be continued.
    drift_factor : float
        A first assignment within ``drift_factor * max_jump_nm`` gives the median shift
        of all lines between the two frames; the gate then applies to the shift
        relative to it.

    Returns
    -------
    track_id : ndarray of int, shape (len(fits),)
        Track of every detection (0..n_tracks-1).
    """
    if max_jump_nm <= 0 or max_gap_frames < 0:
        raise InputError(f"max_jump_nm must be > 0 and max_gap_frames >= 0, got {max_jump_nm}, {max_gap_frames}")
    n = len(fits)
    track = np.full(n, -1, int)
    if n == 0:
        return track
    order = np.lexsort((fits.center_nm, fits.frame))
    bounds = np.flatnonzero(np.diff(fits.frame[order])) + 1
    st = _LinkState()
    area = np.nan_to_num(fits.area_counts, nan=0.0)
    area_err = np.nan_to_num(fits.area_err, nan=0.0)
    for chunk in np.split(order, bounds):  # loop over frames
        f = int(fits.frame[chunk[0]])
        pos = fits.center_nm[chunk]
        perr = np.nan_to_num(fits.center_err_nm[chunk], nan=0.0)
        lf = np.asarray(st.frame, int)
        open_ = np.flatnonzero((f - lf) <= max_gap_frames + 1) if lf.size else np.zeros(0, int)
        assigned = np.zeros(chunk.size, bool)
        if open_.size:
            gap = (f - lf[open_]).astype(float)
            d = pos[None, :] - np.asarray(st.pos)[open_][:, None]
            cost = np.abs(d - _common_shift(d, gap, drift_factor * max_jump_nm))
            # diffusion allowance (the track's own once measured, for a detection that
            # keeps the track's intensity) plus 4 sd of the two position estimates
            jump = st.gate(open_, area[chunk], area_err[chunk], max_jump_nm=max_jump_nm, n_sd=n_sd,
                           min_steps=min_steps)
            tol = jump * np.sqrt(gap)[:, None] + 4.0 * np.hypot(np.asarray(st.err)[open_][:, None], perr[None, :])
            allowed = cost <= tol
            ri, ci = linear_sum_assignment(np.where(allowed, cost + 1e-6 * (gap[:, None] - 1), _BIG))
            for r_, c_ in zip(ri, ci):
                if allowed[r_, c_]:
                    k = chunk[c_]
                    track[k] = int(open_[r_])
                    st.extend(int(open_[r_]), f, pos[c_], perr[c_], area[k], area_err[k], cost[r_, c_], gap[r_])
                    assigned[c_] = True
        for c_ in np.flatnonzero(~assigned):
            k = chunk[c_]
            track[k] = st.new(f, pos[c_], perr[c_], area[k], area_err[k])
    return track


def _common_shift(d: np.ndarray, gap: np.ndarray, loose_nm: float) -> float:
    """Median shift of the lines paired by a loose first assignment (one field moves all
    lines of an NC together, QCSE); 0 unless at least two lines pair."""
    loose = np.abs(d) <= loose_nm * np.sqrt(gap)[:, None]
    if not loose.any():
        return 0.0
    r0, c0 = linear_sum_assignment(np.where(loose, np.abs(d), _BIG))
    ok0 = loose[r0, c0]
    return float(np.median(d[r0[ok0], c0[ok0]])) if ok0.sum() >= 2 else 0.0


@dataclass
class _LinkState:
    """Per track: last position, frame, position error, area and its error, and the
    sums of its squared position steps (per sqrt(frame)) and area steps."""

    pos: list = None
    frame: list = None
    err: list = None
    area: list = None
    area_err: list = None
    step_sq: list = None
    area_sq: list = None
    n_step: list = None

    def __post_init__(self):
        for name in self.__dataclass_fields__:
            setattr(self, name, [])

    def new(self, f, pos, err, area, area_err) -> int:
        for name, v in (("pos", pos), ("frame", f), ("err", err), ("area", area), ("area_err", area_err),
                        ("step_sq", 0.0), ("area_sq", 0.0), ("n_step", 0)):
            getattr(self, name).append(float(v) if name != "frame" and name != "n_step" else int(v))
        return len(self.pos) - 1

    def extend(self, t, f, pos, err, area, area_err, step, gap) -> None:
        self.step_sq[t] += float(step) ** 2 / float(gap)
        self.area_sq[t] += (float(area) - self.area[t]) ** 2
        self.n_step[t] += 1
        self.pos[t], self.frame[t], self.err[t] = float(pos), int(f), float(err)
        self.area[t], self.area_err[t] = float(area), float(area_err)

    def gate(self, open_, area, area_err, *, max_jump_nm, n_sd, min_steps) -> np.ndarray:
        """Largest step (nm per sqrt(frame)) of every open track to every detection,
        shape (n_open, n_detections): ``n_sd`` x the rms of the track's own steps once
        ``min_steps`` are measured and the detection's area is within ``n_sd`` x the
        rms of the track's own area steps (at least the fit errors) of its last area;
        never less than ``max_jump_nm``."""
        n_step = np.asarray(self.n_step)[open_]
        m = np.maximum(n_step, 1)
        rms_pos = np.sqrt(np.asarray(self.step_sq)[open_] / m)
        rms_area = np.sqrt(np.asarray(self.area_sq)[open_] / m)
        last_area, last_err = np.asarray(self.area)[open_], np.asarray(self.area_err)[open_]
        area_tol = n_sd * np.maximum(rms_area[:, None], np.hypot(last_err[:, None], area_err[None, :]))
        keeps_intensity = np.abs(area[None, :] - last_area[:, None]) <= area_tol
        own = (n_step >= min_steps)[:, None] & keeps_intensity
        return np.where(own, np.maximum(max_jump_nm, n_sd * rms_pos)[:, None], max_jump_nm)


def split_tracks(fits: LineFits, track_id: np.ndarray, *, split_nm: float = 0.1, n_side: int = 4,
                 n_sd: float = 4.0) -> np.ndarray:
    """Cut tracks where their position steps by more than ``split_nm``.

    A track that jumps to another line (one emitter switching off in the frame where a
    nearby one switches on) shows a sustained step in position: the median of the
    ``n_side`` detections after a frame differs from that of the ``n_side`` before by
    more than ``split_nm``; spectral diffusion wanders more smoothly, and a large
    diffusion step is shared by the other lines present on both sides (not cut). A
    step is not cut either when it lies within the track's own diffusion and keeps
    its intensity (:func:`_within_own_diffusion`). Cut at the largest remaining step,
    recursively.

    Returns
    -------
    track_id : ndarray of int
        New ids for the cut-off pieces (appended after the existing ones).
    """
    tid = track_id.copy()
    next_id = int(tid.max()) + 1 if tid.size else 0

    def step_at(rows, f):
        """Median position after minus before frame f (n_side detections each), or None."""
        fr = fits.frame[rows]
        before, after = rows[fr < f][-n_side:], rows[fr >= f][:n_side]
        if before.size < n_side or after.size < n_side:
            return None
        return float(np.median(fits.center_nm[after]) - np.median(fits.center_nm[before]))

    todo = [int(t) for t in np.unique(tid[tid >= 0])]
    while todo:  # loop over tracks (and their pieces)
        t = todo.pop()
        rows = np.flatnonzero(tid == t)
        rows = rows[np.argsort(fits.frame[rows])]
        p = fits.center_nm[rows]
        if p.size < 2 * n_side:
            continue
        w = np.lib.stride_tricks.sliding_window_view(p, n_side)
        med = np.median(w, axis=1)  # med[i] = median of p[i:i+n_side]
        steps = med[n_side:] - med[: med.size - n_side]  # split before index i+n_side
        k = int(np.argmax(np.abs(steps)))
        if abs(steps[k]) <= split_nm:
            continue
        cut = k + n_side
        f_cut = int(fits.frame[rows[cut]])
        # a step shared by another line present on both sides is spectral diffusion
        shared = False
        for u in np.unique(tid[(tid >= 0) & (tid != t)]):
            urows = np.flatnonzero(tid == u)
            su = step_at(urows[np.argsort(fits.frame[urows])], f_cut)
            if su is not None and abs(su - steps[k]) < 0.5 * abs(steps[k]):
                shared = True
                break
        if shared or _within_own_diffusion(fits, rows, cut, steps[k], n_side=n_side, n_sd=n_sd):
            continue
        tid[rows[cut:]] = next_id
        todo += [t, next_id]
        next_id += 1
    return tid


def _within_own_diffusion(fits: LineFits, rows: np.ndarray, cut: int, step: float, *, n_side: int,
                          n_sd: float) -> bool:
    """Is a sustained step of the medians (``n_side`` detections either side of ``cut``)
    the line's own spectral diffusion?

    The track's one-frame step scale s is measured robustly (median ``|dp|`` / sqrt(df) /
    0.6745: one jump to another line does not inflate it); for a random walk of step s
    the difference of the means of n detections before and after a point has the sd
    s sqrt(1 + (n - 1)(2n - 1) / (3n)) (1.66 s for n = 4). The step is diffusion when it
    is within ``n_sd`` such sds and the line keeps its intensity: the median areas either
    side differ by at most ``n_sd`` x 1.2533 sigma_A sqrt(2 / n), sigma_A the robust
    frame-to-frame sd of the track's area (at least its fit error). Another emitter's
    line differs in brightness unless by chance; spectral diffusion does not change it.
    """
    p, fr = fits.center_nm[rows], fits.frame[rows].astype(float)
    if p.size < 2 * n_side + 1:
        return False
    dp = np.abs(np.diff(p)) / np.sqrt(np.maximum(np.diff(fr), 1.0))
    s_pos = float(np.median(dp)) / 0.6745
    n = n_side
    if abs(step) > n_sd * s_pos * np.sqrt(1.0 + (n - 1) * (2 * n - 1) / (3.0 * n)):
        return False
    a = np.nan_to_num(fits.area_counts[rows], nan=0.0)
    sig_a = max(float(np.median(np.abs(np.diff(a)))) / (0.6745 * np.sqrt(2.0)),
                float(np.nanmedian(fits.area_err[rows])))
    d_area = float(np.median(a[cut:cut + n]) - np.median(a[max(cut - n, 0):cut]))
    return abs(d_area) <= n_sd * 1.2533 * sig_a * np.sqrt(2.0 / n)


def stitch_tracks(
    fits: LineFits, track_id: np.ndarray, *, stitch_nm: float = 0.1, n_edge: int = 3, min_length: int = 3,
    split_nm: float | None = 0.1,
) -> np.ndarray:
    """Join track pieces across long gaps and drop short pieces.

    First tracks are cut at sustained position steps > ``split_nm``
    (:func:`split_tracks`). Then a piece ending at frame f1 can continue as a piece
    starting after f1 when the median of the last ``n_edge`` positions of the first and
    of the first ``n_edge`` of the second differ by at most ``stitch_nm``; the ends and
    starts are matched by a global assignment, repeated until nothing changes.

    Parameters
    ----------
    fits : LineFits
    track_id : ndarray of int
        From :func:`link_lines`.
    stitch_nm : float
    n_edge : int
    min_length : int
        Tracks with fewer detections get id -1.
    split_nm : float or None
        See :func:`split_tracks` (None: no cutting).

    Returns
    -------
    track_id : ndarray of int
        Renumbered 0..n-1 by increasing mean wavelength; -1 for dropped detections.
    """
    tid = track_id.copy() if split_nm is None else split_tracks(fits, track_id, split_nm=split_nm)
    tid = _join_across_gaps(fits, tid, stitch_nm=stitch_nm, n_edge=n_edge)
    tid = _join_interleaved(fits, tid, stitch_nm=stitch_nm)
    return _drop_short(fits, tid, min_length)


def _join_across_gaps(fits: LineFits, tid: np.ndarray, *, stitch_nm: float, n_edge: int) -> np.ndarray:
    """Continue pieces that end where a later piece starts (global end -> start
    assignment on the edge medians), repeated until nothing changes."""
    for _ in range(20):
        ids = np.unique(tid[tid >= 0])
        if ids.size < 2:
            break
        first = np.array([fits.frame[tid == i].min() for i in ids])
        last = np.array([fits.frame[tid == i].max() for i in ids])
        end_pos, start_pos = np.empty(ids.size), np.empty(ids.size)
        for k, i in enumerate(ids):
            sel = np.flatnonzero(tid == i)
            o = sel[np.argsort(fits.frame[sel])]
            end_pos[k] = np.median(fits.center_nm[o[-n_edge:]])
            start_pos[k] = np.median(fits.center_nm[o[:n_edge]])
        d = np.abs(end_pos[:, None] - start_pos[None, :])
        allowed = (last[:, None] < first[None, :]) & (d <= stitch_nm)
        if not allowed.any():
            break
        c = np.where(allowed, d + 1e-3 * (first[None, :] - last[:, None]) / max(1, fits.n_frames), _BIG)
        ri, ci = linear_sum_assignment(c)
        good = allowed[ri, ci]
        if not good.any():
            break
        # apply merges as a union-find over the chosen (end -> start) links
        parent = {int(i): int(i) for i in ids}

        def root(a):
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for a, b in zip(ri[good], ci[good]):
            parent[root(int(ids[b]))] = root(int(ids[a]))
        new = np.array([root(int(t)) if t >= 0 else -1 for t in tid])
        if np.array_equal(new, tid):
            break
        tid = new
    return tid


def _join_interleaved(fits: LineFits, tid: np.ndarray, *, stitch_nm: float) -> np.ndarray:
    """Pieces of one line that interleave in time (never detected in the same frame)
    and sit at the same wavelength (within stitch_nm or one HWHM) are one track."""
    ids = np.unique(tid[tid >= 0])
    if ids.size <= 1:
        return tid
    med = np.array([np.median(fits.center_nm[tid == i]) for i in ids])
    hw = np.array([np.median(fits.hwhm_nm[tid == i]) for i in ids])
    frames_of = [set(fits.frame[tid == i].tolist()) for i in ids]
    parent = list(range(ids.size))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a in np.argsort(med):
        for b in range(ids.size):
            if b <= a or abs(med[a] - med[b]) > max(stitch_nm, min(hw[a], hw[b])):
                continue
            ra, rb = find(a), find(b)
            if ra == rb:
                continue
            fa = set().union(*(frames_of[k] for k in range(ids.size) if find(k) == ra))
            fb = set().union(*(frames_of[k] for k in range(ids.size) if find(k) == rb))
            if not (fa & fb):
                parent[rb] = ra
    lut = {int(ids[k]): int(ids[find(k)]) for k in range(ids.size)}
    return np.array([lut.get(int(t), -1) for t in tid])


def join_same_line(
    fits: LineFits, track_id: np.ndarray, *, n_sigma: float = 3.0, max_shared: float = 0.5,
) -> tuple[np.ndarray, dict[int, dict]]:
    """Join tracks that are one line seen as two (see the module docstring).

    Parameters
    ----------
    fits : LineFits
    track_id : ndarray of int
        From :func:`stitch_tracks` (-1: dropped detection).
    n_sigma : float
        Tolerance on the difference of the two time-median centres in combined
        standard errors (1.2533 sd / sqrt(n) each), to which the rms of the two tracks'
        wander (sd of their positions) is added; never more than the Sparrow limit
        ``2 gamma / sqrt(3)`` of the narrower track (median HWHM gamma).
    max_shared : float
        The two tracks must be detected together in fewer than ``max_shared`` of the
        shorter track's frames (default one half: most of its frames hold it alone).

    Returns
    -------
    track_id : ndarray of int
        Renumbered 0..n-1 by median wavelength; the weaker of two detections of a
        joined line in one frame is set to -1.
    split : dict
        For every joined track (new id): ``n_pieces``, ``n_split_frames`` (frames in
        which two peaks were fitted on the line) and ``split_nm`` (their median
        separation, NaN if none).
    """
    tid = np.asarray(track_id, int).copy()
    pieces: dict[int, int] = {}
    split_d: dict[int, list[float]] = {}
    while True:  # one join per pass (tens of tracks)
        pair = _closest_same_line(fits, tid, n_sigma=n_sigma, max_shared=max_shared)
        if pair is None:
            break
        a, b = pair
        ra, rb = np.flatnonzero(tid == a), np.flatnonzero(tid == b)
        shared = np.intersect1d(fits.frame[ra], fits.frame[rb])
        seps = split_d.pop(b, []) + split_d.get(a, [])
        for f in shared:  # frames where the line was fitted as two peaks: keep the stronger
            ia = ra[fits.frame[ra] == f][0]
            ib = rb[fits.frame[rb] == f][0]
            seps.append(abs(float(fits.center_nm[ia] - fits.center_nm[ib])))
            tid[ia if fits.amplitude[ia] < fits.amplitude[ib] else ib] = -1
        tid[tid == b] = a
        split_d[a] = seps
        pieces[a] = pieces.pop(a, 1) + pieces.pop(b, 1)
    renum = _drop_short(fits, tid, 1)
    split = {}
    for old, n in pieces.items():
        new = int(renum[np.flatnonzero(tid == old)[0]])
        d = split_d.get(old, [])
        split[new] = {"n_pieces": n, "n_split_frames": len(d), "split_nm": float(np.median(d)) if d else float("nan")}
    return renum, split


def _closest_same_line(fits: LineFits, tid: np.ndarray, *, n_sigma: float, max_shared: float):
    """The pair of tracks (ids) that are most likely one line, or None."""
    ids = np.unique(tid[tid >= 0])
    if ids.size < 2:
        return None
    rows = [np.flatnonzero(tid == i) for i in ids]
    c = [fits.center_nm[r] for r in rows]
    med = np.array([np.median(x) for x in c])
    sd = np.array([np.std(x, ddof=1) if x.size > 1 else 0.0 for x in c])
    se = 1.2533 * sd / np.sqrt([x.size for x in c])
    hw = np.array([np.median(fits.hwhm_nm[r]) for r in rows])
    frames = [fits.frame[r] for r in rows]
    best, best_d = None, np.inf
    for a in range(ids.size):
        for b in range(a + 1, ids.size):
            d = abs(med[a] - med[b])
            sparrow = 2.0 * min(hw[a], hw[b]) / np.sqrt(3.0)
            tol = min(sparrow, n_sigma * np.hypot(se[a], se[b]) + np.hypot(sd[a], sd[b]))
            if d > tol or d >= best_d:
                continue
            n_shared = np.intersect1d(frames[a], frames[b]).size
            if n_shared >= max_shared * min(frames[a].size, frames[b].size):
                continue
            best, best_d = (int(ids[a]), int(ids[b])), d
    return best


def _drop_short(fits: LineFits, tid: np.ndarray, min_length: int) -> np.ndarray:
    """Tracks with fewer than ``min_length`` detections -> -1; the rest renumbered
    0..n-1 by median wavelength."""
    ids, counts = np.unique(tid[tid >= 0], return_counts=True)
    keep = ids[counts >= min_length]
    means = np.array([np.median(fits.center_nm[tid == i]) for i in keep])
    order = keep[np.argsort(means)]
    remap = {int(o): k for k, o in enumerate(order)}
    return np.array([remap.get(int(t), -1) for t in tid])


@dataclass
class TrackArrays:
    """Per-track, per-frame arrays (n_tracks, n_frames); NaN where not detected.

    Attributes
    ----------
    center_nm, center_err_nm, area_counts, amplitude, hwhm_nm : ndarray
        Fitted values where detected.
    group : ndarray of int
        Fit group of the detection (-1 where not detected).
    position_nm : ndarray
        Centre filled through gaps by linear interpolation (held constant before
        the first and after the last detection).
    hwhm_track_nm : ndarray, shape (n_tracks,)
        Median HWHM of each track.
    index : ndarray of int
        Row of the detection in the LineFits (-1 where not detected).
    """

    center_nm: np.ndarray
    center_err_nm: np.ndarray
    area_counts: np.ndarray
    amplitude: np.ndarray
    hwhm_nm: np.ndarray
    group: np.ndarray
    position_nm: np.ndarray
    hwhm_track_nm: np.ndarray
    index: np.ndarray

    @property
    def n_tracks(self) -> int:
        return int(self.center_nm.shape[0])

    @property
    def detected(self) -> np.ndarray:
        return np.isfinite(self.center_nm)


def track_arrays(fits: LineFits, track_id: np.ndarray, n_frames: int) -> TrackArrays:
    """Scatter the detections of every track into (n_tracks, n_frames) arrays.

    Parameters
    ----------
    fits : LineFits
    track_id : ndarray of int
        From :func:`stitch_tracks` (-1 ignored).
    n_frames : int

    Returns
    -------
    arrays : TrackArrays
    """
    ok = track_id >= 0
    L = int(track_id[ok].max()) + 1 if ok.any() else 0
    shape = (L, n_frames)
    arr = {k: np.full(shape, np.nan) for k in ("c", "ce", "a", "amp", "g")}
    grp = np.full(shape, -1, int)
    index = np.full(shape, -1, int)
    rows = np.flatnonzero(ok)
    t, f = track_id[rows], fits.frame[rows]
    # two detections of one track in one frame cannot happen after linking; keep the last
    arr["c"][t, f] = fits.center_nm[rows]
    arr["ce"][t, f] = fits.center_err_nm[rows]
    arr["a"][t, f] = fits.area_counts[rows]
    arr["amp"][t, f] = fits.amplitude[rows]
    arr["g"][t, f] = fits.hwhm_nm[rows]
    grp[t, f] = fits.group[rows]
    index[t, f] = rows
    pos = np.empty(shape)
    frames = np.arange(n_frames)
    for k in range(L):
        det = np.isfinite(arr["c"][k])
        pos[k] = np.interp(frames, frames[det], arr["c"][k][det])
    hw = np.array([np.nanmedian(arr["g"][k]) for k in range(L)]) if L else np.zeros(0)
    return TrackArrays(arr["c"], arr["ce"], arr["a"], arr["amp"], arr["g"], grp, pos, hw, index)


def window_sums(values, wavelength_nm, position_nm, half_width_nm) -> np.ndarray:
    """Sum ``values`` over a moving wavelength window around each track.

    Parameters
    ----------
    values : ndarray, shape (n_frames, n_pixels)
        E.g. counts or baseline.
    wavelength_nm : ndarray, shape (n_pixels,)
    position_nm : ndarray, shape (n_tracks, n_frames)
        Window centres.
    half_width_nm : ndarray, shape (n_tracks,)
        Window half widths.

    Returns
    -------
    sums : ndarray, shape (n_tracks, n_frames)
        Sum over pixels with ``|lambda - centre|`` <= half width (at least one pixel: the
        nearest one at the axis ends).
    """
    v = np.asarray(values, float)
    wl = np.asarray(wavelength_nm, float)
    cs = np.concatenate([np.zeros((v.shape[0], 1)), np.cumsum(v, axis=1)], axis=1)
    hw = np.asarray(half_width_nm, float)[:, None]
    lo = np.minimum(np.searchsorted(wl, position_nm - hw, side="left"), wl.size - 1)
    hi = np.searchsorted(wl, position_nm + hw, side="right")
    hi = np.maximum(hi, lo + 1)
    fr = np.broadcast_to(np.arange(v.shape[0])[None, :], lo.shape)
    return cs[fr, hi] - cs[fr, lo]


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    m = np.isfinite(a) & np.isfinite(b)
    if m.sum() < 3:
        return np.nan
    x, y = a[m] - a[m].mean(), b[m] - b[m].mean()
    d = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / d) if d > 0 else np.nan


def group_tracks(
    center_nm: np.ndarray,
    intensity: np.ndarray,
    intensity_err: np.ndarray,
    position_nm: np.ndarray,
    position_err_nm: np.ndarray,
    *,
    max_span_uev: float = 3000.0,
    max_lines: int = 3,
    presence_snr: float = 3.0,
    min_jaccard: float = 0.5,
    min_jaccard_constant: float = 0.8,
    min_intensity_corr: float = 0.6,
    informative_ratio: float = 4.0,
    min_position_corr: float = 0.2,
    hwhm_nm: np.ndarray | None = None,
    max_overlap_rho: float = 0.3,
) -> np.ndarray:
    """Group tracks (lines) into emitters (fine-structure sets).

    Parameters
    ----------
    center_nm : ndarray, shape (n_tracks,)
        Typical wavelength of each track.
    intensity, intensity_err : ndarray, shape (n_tracks, n_frames)
        Line intensity in every frame (detected or not) and its sd.
    position_nm, position_err_nm : ndarray, shape (n_tracks, n_frames)
        Fitted centres (NaN where not detected) and their sd.
    max_span_uev : float
        Largest energy distance between lines of one set.
    max_lines : int
    presence_snr : float
        A line is present in a frame when intensity > presence_snr x sd.
    min_jaccard, min_jaccard_constant, min_intensity_corr, informative_ratio, min_position_corr : float
        See module docstring.
    hwhm_nm : ndarray, shape (n_tracks,), optional
        Median HWHM of each line; with it, pairs whose profile overlap exceeds
        ``max_overlap_rho`` are judged without their intensity correlation (blended
        lines, module docstring). None: every pair uses its intensity correlation.
    max_overlap_rho : float

    Returns
    -------
    emitter_of_track : ndarray of int, shape (n_tracks,)
        Emitter index, numbered by increasing wavelength of the bluest line.
    """
    L = len(center_nm)
    if L == 0:
        return np.zeros(0, int)
    e = HC_EV_NM / np.asarray(center_nm, float)
    blended = np.zeros((L, L), bool)
    if hwhm_nm is not None:
        blended = profile_overlap(center_nm, hwhm_nm) > max_overlap_rho
    compat, score = _pair_compatibility(
        e, blended, intensity, intensity_err, position_nm, position_err_nm, max_span_uev=max_span_uev,
        presence_snr=presence_snr, min_jaccard=min_jaccard, min_jaccard_constant=min_jaccard_constant,
        min_intensity_corr=min_intensity_corr, informative_ratio=informative_ratio,
        min_position_corr=min_position_corr)
    members = _merge_compatible(e, compat, score, max_span_uev=max_span_uev, max_lines=max_lines)
    order = sorted(members, key=lambda k: min(center_nm[m] for m in members[k]))
    out = np.empty(L, int)
    for new, k in enumerate(order):
        out[members[k]] = new
    return out


def profile_overlap(center_nm, hwhm_nm) -> np.ndarray:
    """Normalised overlap (cosine) of the Lorentzian profiles of every pair of lines.

    rho = 2 sqrt(g1 g2) (g1 + g2) / (d^2 + (g1 + g2)^2) for HWHMs g1, g2 and distance
    d (1 for identical lines, ~2 sqrt(g1 g2)(g1 + g2) / d^2 far apart).

    >>> float(profile_overlap([650.0, 650.0], [0.05, 0.05])[0, 1])
    1.0
    """
    c = np.asarray(center_nm, float)
    g = np.asarray(hwhm_nm, float)
    s = g[:, None] + g[None, :]
    d = c[:, None] - c[None, :]
    return 2.0 * np.sqrt(g[:, None] * g[None, :]) * s / (d * d + s * s)


def _pair_compatibility(e, blended, intensity, intensity_err, position_nm, position_err_nm, *, max_span_uev,
                        presence_snr, min_jaccard, min_jaccard_constant, min_intensity_corr,
                        informative_ratio, min_position_corr) -> tuple[np.ndarray, np.ndarray]:
    """Which pairs of tracks may share an emitter, and how strongly (intensity
    correlation, else the overlap of their on frames); see :func:`group_tracks`."""
    L = e.size
    err = np.maximum(intensity_err, 1e-12)
    present = intensity > presence_snr * err
    informative = np.nanvar(intensity, axis=1) > informative_ratio * np.nanmean(err**2, axis=1)
    pos_inf = np.array([
        np.nanstd(position_nm[k]) > 3 * np.nanmedian(position_err_nm[k]) if np.isfinite(position_nm[k]).sum() > 3 else False
        for k in range(L)
    ])
    compat = np.zeros((L, L), bool)
    score = np.full((L, L), -np.inf)
    for i in range(L):
        for j in range(i + 1, L):
            if abs(e[i] - e[j]) * 1e6 > max_span_uev:
                continue
            union = (present[i] | present[j]).sum()
            jac = (present[i] & present[j]).sum() / union if union else 0.0
            if informative[i] and informative[j] and not blended[i, j]:
                r = _pearson(intensity[i], intensity[j])
                ok = jac >= min_jaccard and np.isfinite(r) and r >= min_intensity_corr
                s = r
            else:
                ok = jac >= min_jaccard_constant
                s = jac
            if ok and pos_inf[i] and pos_inf[j]:
                rp = _pearson(position_nm[i], position_nm[j])
                ok = not (np.isfinite(rp) and rp < min_position_corr)
            compat[i, j] = compat[j, i] = ok
            score[i, j] = score[j, i] = s
    return compat, score


def _merge_compatible(e, compat, score, *, max_span_uev: float, max_lines: int) -> dict[int, list[int]]:
    """Greedy merging of compatible tracks, best score first, into sets of at most
    ``max_lines`` mutually compatible lines within ``max_span_uev``."""
    L = e.size
    label = np.arange(L)
    members = {i: [i] for i in range(L)}
    pairs = [(score[i, j], i, j) for i in range(L) for j in range(i + 1, L) if compat[i, j]]
    for _, i, j in sorted(pairs, reverse=True):
        a, b = label[i], label[j]
        if a == b:
            continue
        ma, mb = members[a], members[b]
        if len(ma) + len(mb) > max_lines:
            continue
        if not all(compat[x, y] for x in ma for y in mb):
            continue
        es = e[ma + mb]
        if (es.max() - es.min()) * 1e6 > max_span_uev:
            continue
        members[a] = ma + mb
        for x in mb:
            label[x] = a
        del members[b]
    return members


def classify_emitters(
    lines_nm: list[np.ndarray],
    on: np.ndarray,
    *,
    trion_window_mev: tuple[float, float] = (5.0, 25.0),
    max_overlap: float = 0.15,
    min_on_frames: int = 2,
) -> tuple[list[str], list[int | None]]:
    """Kind of every emitter and the neutral partner of every trion.

    Parameters
    ----------
    lines_nm : list of ndarray
        Line wavelengths of each emitter.
    on : ndarray of bool, shape (n_emitters, n_frames)
        On state of each emitter (from :mod:`nanodomains.spectroscopy.states`).
    trion_window_mev : (float, float)
        Red shift of X* relative to the neutral emitter's centre, meV.
    max_overlap : float
        Largest fraction of the shorter on-time during which both may be on.
    min_on_frames : int

    Returns
    -------
    kinds : list of str
        "singlet", "doublet", "triplet" or "trion".
    partner : list of int or None
        For a trion the index of its neutral emitter, else None.
    """
    n = len(lines_nm)
    on = np.asarray(on, bool)
    if on.shape[0] != n:
        raise InputError(f"{n} emitters but {on.shape[0]} on-state rows")
    names = {1: "singlet", 2: "doublet", 3: "triplet"}
    kinds = [names.get(len(lm), "triplet") for lm in lines_nm]
    partner: list[int | None] = [None] * n
    e_c = np.array([np.mean(HC_EV_NM / np.asarray(lm)) for lm in lines_nm]) if n else np.zeros(0)
    n_on = on.sum(axis=1)
    cands = []
    for s in range(n):
        if len(lines_nm[s]) != 1 or n_on[s] < min_on_frames:
            continue
        for nn in range(n):
            if nn == s or n_on[nn] < min_on_frames:
                continue
            shift_mev = (e_c[nn] - e_c[s]) * 1e3
            if not (trion_window_mev[0] <= shift_mev <= trion_window_mev[1]):
                continue
            overlap = (on[s] & on[nn]).sum() / min(n_on[s], n_on[nn])
            if overlap <= max_overlap:
                cands.append((overlap, shift_mev, s, nn))
    used_s, used_n = set(), set()
    for overlap, _, s, nn in sorted(cands):
        if s in used_s or nn in used_n or s in used_n or nn in used_s:
            continue
        kinds[s] = "trion"
        partner[s] = nn
        used_s.add(s)
        used_n.add(nn)
    return kinds, partner


# ---- what a spectrometer can resolve: the truth a movie analysis can be held to -------------

def voigt_fwhm_nm(lorentz_fwhm_nm: float, gauss_fwhm_nm: float) -> float:
    """FWHM of a Voigt profile (Olivero & Longbothum, JQSRT 17, 233 (1977), 0.02 % accurate)."""
    fl, fg = float(lorentz_fwhm_nm), float(gauss_fwhm_nm)
    if not (np.isfinite(fl) and np.isfinite(fg)) or fl < 0 or fg < 0:
        raise InputError(f"line widths must be finite and >= 0, got {lorentz_fwhm_nm}, {gauss_fwhm_nm}")
    return 0.5346 * fl + float(np.sqrt(0.2166 * fl * fl + fg * fg))


def expected_at_resolution(truth, resolution_nm: float, *, min_gap_fwhm: float = 1.0,
                           prominence_snr: float = 3.0):
    """The truth record as a movie of this resolution can show it: unresolved multiplets merged.

    Adjacent lines of one neutral set closer than ``min_gap_fwhm`` times the FWHM of
    the observed line profile (the Lorentzian of the truth's ``linewidth_uev``
    convolved with the instrument Gaussian of FWHM ``resolution_nm``,
    :func:`voigt_fwhm_nm`) are one line at their intensity-weighted mean energy: lines
    one FWHM apart (Rayleigh-like; the two-peak limit of Sparrow is ~0.6 FWHM for a
    Lorentzian, but a per-frame fit of two unequal lines needs about one FWHM).
    Lines that keep no maximum of their own in the noise-free profile of the set (a weak
    line on the flank of a strong one: the generalised Sparrow criterion), or whose
    maximum stands out by less than ``prominence_snr`` noise sds of one frame (noise =
    the set's peak / ``peak_snr`` of the truth, the detection threshold of
    :func:`~nanodomains.spectroscopy.peaks.detect_peaks`), are merged too. The set's ``kind`` and ``fss_uev`` follow from the lines that remain; its
    ``center_nm`` (mean energy of the lines, the records' convention) is recomputed.

    Returns
    -------
    expected : PLEmitters
        A copy of ``truth`` with merged sets; ``meta["unresolved"]`` lists them (id,
        truth kind and FSS, smallest gap, the limit, expected kind). The per-frame
        centres of a merged set (``frames["center_nm"]``) move with its new centre.
    unresolved : list of dict
        The same list.
    """
    from nanodomains.records.base import measured

    res = float(resolution_nm)
    if not np.isfinite(res) or res < 0:
        raise InputError(f"resolution_nm must be finite and >= 0, got {resolution_nm!r}")
    kinds = {1: "singlet", 2: "doublet", 3: "triplet"}
    out, unresolved = [], []
    for em in truth.emitters:
        if em.kind not in ("doublet", "triplet") or len(em.lines) < 2:
            out.append(em)
            continue
        lam = np.array([float(line.center_nm) for line in em.lines])
        order = np.argsort(-lam)  # ascending energy
        e = HC_EV_NM / lam[order]
        w = np.array([float(em.lines[i].fraction) if em.lines[i].fraction is not None else 1.0 for i in order])
        lw_uev = float(em.linewidth_uev) if em.linewidth_uev is not None else 0.0
        fwhm_nm = voigt_fwhm_nm(lw_uev * 1e-6 * lam.mean() ** 2 / HC_EV_NM, res)
        limit_ev = min_gap_fwhm * fwhm_nm * HC_EV_NM / lam.mean() ** 2
        groups = [[0]]
        for i in range(1, len(e)):
            (groups[-1].append(i) if e[i] - e[groups[-1][-1]] < limit_ev else groups.append([i]))
        groups = _merge_without_maximum(groups, e, w, lw_uev * 1e-6, res * HC_EV_NM / lam.mean() ** 2,
                                        peak_snr=em.peak_snr, prominence_snr=prominence_snr)
        if len(groups) == len(e):
            out.append(em)
            continue
        ge = np.array([np.average(e[g], weights=w[g]) for g in groups])
        gw = np.array([w[g].sum() for g in groups])
        lines = []
        for g, eg, wg in zip(groups, ge, gw):
            first = em.lines[order[g[0]]]
            lines.append(first.model_copy(update={"center_nm": measured(float(HC_EV_NM / eg), 0.0),
                                                  "fraction": measured(float(wg / gw.sum()), 0.0)}))
        lines = lines[::-1]  # blue to red, as the records hold them
        kind = kinds[len(groups)]
        fss = float(np.mean(np.diff(ge)) * 1e6) if len(ge) > 1 else 0.0
        info = {"id": em.id, "truth_kind": em.kind, "truth_fss_uev": float(em.fss_uev),
                "smallest_gap_uev": float(np.min(np.diff(e)) * 1e6), "limit_uev": float(limit_ev * 1e6),
                "expected_kind": kind}
        unresolved.append(info)
        out.append(em.model_copy(update={"kind": kind, "lines": tuple(lines), "fss_uev": measured(fss, 0.0),
                                         "center_nm": measured(float(HC_EV_NM / np.mean(ge)), 0.0)}))
    update = {"emitters": out, "meta": {**truth.meta, "unresolved": unresolved, "resolution_nm": res}}
    frames = truth.frames if isinstance(truth.frames, dict) else {}
    if unresolved and isinstance(frames.get("center_nm"), dict):
        # per-frame centres (spectral diffusion) follow the merged set's centre: the
        # motion is the truth's, the centre convention the expected record's
        moved = {u["id"]: float(em_new.center_nm) - float(em_old.center_nm)
                 for u in unresolved for em_old, em_new in zip(truth.emitters, out) if em_old.id == u["id"]}
        centres = {k: (list(np.asarray(v, float) + moved[k]) if k in moved else v)
                   for k, v in frames["center_nm"].items()}
        update["frames"] = {**frames, "center_nm": centres}
    expected = truth.replace(**update)
    return expected, unresolved


def _merge_without_maximum(groups, e, w, lorentz_fwhm_ev, gauss_fwhm_ev, peak_snr=None, prominence_snr=3.0):
    """Merge the closest adjacent groups until the set's noise-free profile has one maximum per group.

    With the set's ``peak_snr`` (peak over the noise sd of one frame) a maximum counts only
    when its prominence exceeds ``prominence_snr`` noise sds (the detection threshold of
    :func:`nanodomains.spectroscopy.peaks.detect_peaks`).
    """
    from scipy.signal import find_peaks
    from scipy.special import voigt_profile

    sigma = gauss_fwhm_ev / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    gamma = lorentz_fwhm_ev / 2.0
    width = max(sigma, gamma, 1e-9)
    x = np.linspace(e.min() - 3 * width, e.max() + 3 * width, 4001)
    prof = sum(wi * voigt_profile(x - ei, sigma, gamma) for ei, wi in zip(e, w))
    min_prom = 0.0 if not peak_snr else prominence_snr * float(prof.max()) / float(peak_snr)
    n_max = len(find_peaks(prof, prominence=max(min_prom, 1e-12 * float(prof.max())))[0])
    groups = [list(g) for g in groups]
    while len(groups) > max(n_max, 1):
        centres = [np.average(e[g], weights=w[g]) for g in groups]
        k = int(np.argmin(np.diff(centres)))
        groups[k] = groups[k] + groups.pop(k + 1)
    return groups


def mark_unresolved(comparison, unresolved: list[dict]):
    """A comparison whose FSS rows of merged multiplets are reported but not judged.

    The splitting of a set with an unresolved component is measured on a blend (the fit
    follows the strong line, not the centroid of the blend), so it is no test of the
    analysis; rows ``emitters[ID].fss_uev`` of the sets in ``unresolved`` (from
    :func:`expected_at_resolution`) get ``status="unresolved"`` and ``ok=None``. Every
    other row, including the FSS of every resolved set, keeps its tolerance.
    """
    ids = {u["id"] for u in unresolved}
    rows = tuple(r.model_copy(update={"ok": None, "status": "unresolved"})
                 if any(r.path == f"emitters[{i}].fss_uev" for i in ids) else r for r in comparison.rows)
    return comparison.model_copy(update={"rows": rows})

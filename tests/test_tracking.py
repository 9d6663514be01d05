"""Linking, grouping and classification against synthetic truth."""

from __future__ import annotations

import numpy as np
import pytest

from nanodomains.errors import InputError
from nanodomains.spectroscopy.movie_analysis import analyze_movie
from nanodomains.spectroscopy.peaks import HC_EV_NM, LineFits, detect_peaks, estimate_background, fit_lines, remove_cosmic_rays
from nanodomains.spectroscopy.tracking import (
    classify_emitters,
    group_tracks,
    join_same_line,
    link_lines,
    profile_overlap,
    stitch_tracks,
    track_arrays,
    window_sums,
)
from nanodomains.testing.pl import fig4_like, make_movie, on_between


def _fits(movie):
    wl = movie["wavelength"].values
    clean, _ = remove_cosmic_rays(movie.values, wl)
    sig = clean - estimate_background(clean)
    return fit_lines(sig, wl, detect_peaks(sig, wl), variance=np.maximum(clean, 1))


@pytest.mark.parametrize("seed", [2, 3])
def test_tracks_are_pure_and_complete(seed):
    movie, truth = fig4_like(seed=seed)
    fits = _fits(movie)
    tid = stitch_tracks(fits, link_lines(fits))
    # label every detection with its true line (nearest true position in that frame)
    truth_lines = [(eid, j) for eid, pos in truth["frames"]["lines_nm"].items() for j in range(pos.shape[1])]
    true_pos = np.stack([truth["frames"]["lines_nm"][e][:, j] for e, j in truth_lines])  # (n_lines, T)
    true_on = np.stack([truth["frames"]["on"][e] for e, j in truth_lines])
    label = np.argmin(np.abs(true_pos[:, fits.frame] - fits.center_nm[None, :]), axis=0)
    err = np.abs(fits.center_nm - true_pos[label, fits.frame])
    real = (err < 0.05) & true_on[label, fits.frame]
    # every real detection is tracked; the few dropped ones are noise
    assert np.all(tid[real] >= 0)
    assert (~real).sum() <= 3 and np.all(tid[~real] < 0)
    # each track holds one true line, and each true line is one track (blinking gaps bridged)
    for t in np.unique(tid[tid >= 0]):
        assert np.unique(label[tid == t]).size == 1
    assert np.unique(tid[tid >= 0]).size == len(truth_lines)
    # per-detection position error
    assert np.median(err[real]) <= 0.02


def test_link_respects_max_jump_and_gap():
    movie, _ = fig4_like(seed=2)
    fits = _fits(movie)
    tid = link_lines(fits, max_jump_nm=0.1, max_gap_frames=0)
    # without gap bridging the blinking lines break into many pieces
    assert np.unique(tid).size > np.unique(link_lines(fits, max_gap_frames=3)).size
    with pytest.raises(InputError):
        link_lines(fits, max_jump_nm=0)


def test_window_sums_analytic():
    wl = 600 + 0.1 * np.arange(100)
    v = np.ones((3, 100))
    pos = np.array([[605.0, 605.0, 605.0], [600.0, 609.9, 650.0]])
    s = window_sums(v, wl, pos, np.array([0.25, 0.05]))
    np.testing.assert_allclose(s[0], 5)  # 604.8 .. 605.2 -> 5 pixels
    np.testing.assert_allclose(s[1], [1, 1, 1])  # at least one pixel, also off the axis end


def _traces(on_masks, amp=400.0, noise=20.0, seed=0):
    rng = np.random.default_rng(seed)
    on = np.asarray(on_masks, float)
    inten = amp * on + rng.normal(0, noise, on.shape)
    return inten, np.full(on.shape, noise)


def test_group_tracks_rules():
    T = 120
    rng = np.random.default_rng(1)
    blink = rng.random(T) < 0.6
    other = rng.random(T) < 0.6
    e0 = HC_EV_NM / 650.0
    lam = lambda de_uev: HC_EV_NM / (e0 + de_uev * 1e-6)
    centers = np.array([lam(0), lam(677), lam(300), lam(-700), lam(9000)])
    masks = [blink, blink, other, ~blink, blink]
    inten, err = _traces(masks)
    pos = np.where(np.array(masks), centers[:, None], np.nan)
    perr = np.full(pos.shape, 1e-3)
    g = group_tracks(centers, inten, err, pos, perr)
    assert g[0] == g[1]  # same blinking, 677 ueV apart: one doublet
    assert g[2] != g[0]  # within the span but blinking independently
    assert g[3] != g[0]  # anti-correlated presence (another QD or a charge state)
    assert g[4] != g[0]  # same blinking but 9 meV away: another domain


def test_group_tracks_constant_lines_and_max_three():
    T = 60
    centers = HC_EV_NM / (HC_EV_NM / 650.0 + np.array([0, 300, 600, 900]) * 1e-6)
    inten, err = _traces(np.ones((4, T)), seed=2)
    pos = np.repeat(centers[:, None], T, 1)
    g = group_tracks(centers, inten, err, pos, np.full(pos.shape, 1e-3))
    # always-on lines within the span form sets, never more than three lines
    assert max(np.bincount(g)) == 3 and g.max() == 1
    g2 = group_tracks(centers, inten, err, pos, np.full(pos.shape, 1e-3), max_span_uev=200)
    assert np.unique(g2).size == 4


def test_classify_trion_rules():
    T = 100
    neutral = on_between(T, 40, T)
    charged = on_between(T, 0, 40)
    e0 = HC_EV_NM / 652.36
    red = lambda mev: np.array([HC_EV_NM / (e0 - mev * 1e-3)])
    lines = [np.array([652.36]), red(9.9)]
    kinds, partner = classify_emitters(lines, np.array([neutral, charged]))
    assert kinds == ["singlet", "trion"] and partner == [None, 0]
    # too close, too far, or on at the same time: not a trion
    for lm, on2 in ((red(3.0), charged), (red(30.0), charged), (red(9.9), np.ones(T, bool))):
        k, p = classify_emitters([lines[0], lm], np.array([neutral, on2]))
        assert k == ["singlet", "singlet"] and p == [None, None]
    # a doublet neutral set with its X*
    d = np.array([652.30, 652.42])
    k, p = classify_emitters([d, red(12.0)], np.array([neutral, charged]))
    assert k == ["doublet", "trion"] and p == [None, 0]
    with pytest.raises(InputError):
        classify_emitters(lines, np.ones((3, T), bool))


def test_fig5d_like_two_qds_with_a_trion():
    """QD1 652.36 nm / QD1* 655.76 nm (one QD, neutral/charged) and a QD2 doublet at
    652.71 nm that is on from 18 s to 98 s together with QD1* (seed Fig. 5d)."""
    T = 120
    ems = [
        dict(id="QD1", kind="singlet", center_nm=652.36, peak_counts=500.0, domain=0, diffusion_group="a",
             on=~on_between(T, 18, 98)),
        dict(id="QD1*", kind="trion", center_nm=655.76, peak_counts=500.0, domain=0, diffusion_group="a",
             on=on_between(T, 18, 98)),
        dict(id="QD2", kind="doublet", center_nm=652.71, fss_uev=500.0, peak_counts=400.0, domain=1,
             on=on_between(T, 18, 98)),
    ]
    movie, truth = make_movie(ems, n_frames=T, seed=21)
    a = analyze_movie(movie, n_surrogates=199)
    got = {e.kind: e for e in a.emitters}
    assert sorted(got) == ["doublet", "singlet", "trion"]
    assert got["trion"].trion_of == got["singlet"].id
    assert got["trion"].domain == got["singlet"].domain != got["doublet"].domain
    assert abs(got["singlet"].center_nm.value - 652.36) < 0.02
    assert abs(got["doublet"].center_nm.value - 652.71) < 0.02
    assert abs(got["doublet"].fss_uev.value - 500.0) < 50
    # charge switches within 2 frames
    (a0, b0), = got["trion"].intervals_s
    assert abs(a0 - 18) <= 2 and abs(b0 - 98) <= 2
    assert got["singlet"].charged_intervals_s == got["trion"].intervals_s


def _line_fits(frame, center, hwhm=0.08, amp=None, err=0.003):
    """Minimal LineFits from frame / centre arrays (one group per detection)."""
    n = len(frame)
    one = np.ones(n)
    amp = one * 100.0 if amp is None else np.asarray(amp, float)
    return LineFits(frame=np.asarray(frame), group=np.arange(n), slot=np.zeros(n, int),
                    center_nm=np.asarray(center, float), center_err_nm=err * one, amplitude=amp,
                    amplitude_err=one, area_counts=amp, area_err=one, hwhm_nm=hwhm * one, hwhm_err_nm=0.001 * one,
                    sigma_nm=0 * one, snr=amp, redchi=one, converged=np.ones(n, bool),
                    center_cov=np.full((n, 1, 1), err**2), n_frames=int(max(frame)) + 1)


def test_join_same_line_blend_vs_two_lines():
    rng = np.random.default_rng(0)
    T = 100
    # a blend at 670.80 fitted as one peak; the linker broke it into pieces 0-39 and 40-99,
    # and in frames 38, 39 (and 70) the blend was fitted as two peaks 0.094 nm apart
    f1, f2 = np.arange(0, 40), np.arange(38, 100)
    c1 = 670.80 + rng.normal(0, 0.01, f1.size)
    c2 = 670.80 + rng.normal(0, 0.01, f2.size)
    c1[-2:] = 670.753
    c2[:2] = 670.847
    # a third line 0.14 nm away (resolved: 2 x 0.08 / sqrt 3 = 0.092 < 0.14), present throughout
    f3 = np.arange(T)
    c3 = 670.94 + rng.normal(0, 0.01, T)
    frame = np.concatenate([f1, f2, f3])
    center = np.concatenate([c1, c2, c3])
    amp = np.concatenate([np.full(f1.size, 90.0), np.full(f2.size, 100.0), np.full(T, 100.0)])
    fits = _line_fits(frame, center, amp=amp)
    tid0 = np.concatenate([np.zeros(f1.size, int), np.ones(f2.size, int), np.full(T, 2)])
    tid, split = join_same_line(fits, tid0)
    assert np.unique(tid[tid >= 0]).size == 2
    blend = tid[0]
    assert np.all(tid[: f1.size - 2] == blend) and np.all(tid[f1.size:f1.size + f2.size] == blend)
    # in the shared frames the weaker detection (piece 1) is dropped: one detection per frame
    assert np.all(tid[f1.size - 2:f1.size] == -1)
    assert split[blend]["n_split_frames"] == 2 and split[blend]["n_pieces"] == 2
    assert abs(split[blend]["split_nm"] - 0.094) < 1e-9
    assert tid[-1] != blend and tid[-1] not in split
    # two lines at one wavelength that are mostly seen together are not joined
    fits2 = _line_fits(np.concatenate([f3, f3[:60]]), np.concatenate([c3, c3[:60] + 0.01]))
    tid2, split2 = join_same_line(fits2, np.concatenate([np.zeros(T, int), np.ones(60, int)]))
    assert np.unique(tid2).size == 2 and split2 == {}


def test_profile_overlap_analytic():
    # identical lines overlap fully; Lorentzians of HWHM g a distance d apart: 4 g^2 . 2g / (d^2 + 4 g^2) / (2 g)
    rho = profile_overlap([650.0, 650.0, 650.2], [0.05, 0.05, 0.05])
    assert rho[0, 1] == pytest.approx(1.0)
    assert rho[0, 2] == pytest.approx(2 * 0.05 * 0.1 / (0.04 + 0.01))
    # numerical overlap integral of the two profiles
    x = np.linspace(640, 660, 400001)
    lor = lambda c, g: g * g / ((x - c) ** 2 + g * g)
    a, b = lor(650.0, 0.05), lor(650.13, 0.09)
    num = np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b))
    assert profile_overlap([650.0, 650.13], [0.05, 0.09])[0, 1] == pytest.approx(num, rel=1e-3)


def test_group_blended_lines_without_intensity_correlation():
    # two lines 0.1 nm apart (HWHM 0.07: overlap 0.6) whose fitted areas trade counts
    # (anticorrelated partition noise) while the set blinks and both wander together
    T = 120
    rng = np.random.default_rng(4)
    on = np.ones(T, bool)
    on[20:35] = on[70:80] = False
    share = rng.choice([0.2, 0.4], T)
    total = 3000.0 * on
    inten = np.stack([share * total, (1 - share) * total]) + rng.normal(0, 30, (2, T))
    err = np.full((2, T), 30.0)
    wander = np.cumsum(rng.normal(0, 0.01, T))
    centers = np.array([683.32, 683.42])
    pos = np.where(on, centers[:, None] + wander, np.nan)
    perr = np.full(pos.shape, 0.003)
    without = group_tracks(centers, inten, err, pos, perr)
    with_hwhm = group_tracks(centers, inten, err, pos, perr, hwhm_nm=np.array([0.07, 0.07]))
    assert without[0] != without[1]  # the intensity rule alone splits the set
    assert with_hwhm[0] == with_hwhm[1]
    # resolved lines (overlap < 0.3) still need correlated intensities
    far = np.array([683.0, 683.42])
    assert profile_overlap(far, [0.07, 0.07])[0, 1] < 0.3
    g = group_tracks(far, inten, err, np.where(on, far[:, None] + wander, np.nan), perr,
                     hwhm_nm=np.array([0.07, 0.07]))
    assert g[0] != g[1]


def test_expected_at_resolution_moves_frame_centres_with_a_merged_set():
    """fig4_triplet at 0.04 nm: the weak red line merges with its neighbour; the record's
    centre and its per-frame centres (spectral diffusion) move together."""
    from nanodomains.optics.presets import simulate_preset_movie
    from nanodomains.spectroscopy.tracking import expected_at_resolution

    movie, truth = simulate_preset_movie("fig4_triplet", seed=1)
    exp, unresolved = expected_at_resolution(truth, float(movie.attrs["resolution_nm"]))
    assert [u["id"] for u in unresolved] == ["D0-X"]
    before, after = truth.emitter("D0-X"), exp.emitter("D0-X")
    moved = float(after.center_nm) - float(before.center_nm)
    assert abs(moved) > 0.01  # the merged doublet's centre is not the triplet's
    c0 = np.asarray(truth.frames["center_nm"]["D0-X"])
    c1 = np.asarray(exp.frames["center_nm"]["D0-X"])
    assert np.allclose(c1 - c0, moved)
    assert np.array_equal(np.asarray(exp.frames["center_nm"]["D0-X*"]), np.asarray(truth.frames["center_nm"]["D0-X*"]))


def _walk(n, step, start=650.0):
    """Deterministic diffusion: steps alternating +-step (rms step = step)."""
    return start + step * (np.arange(n) % 2)


def test_link_gate_follows_own_diffusion_when_intensity_kept():
    """A line that diffuses with rms step 0.03 nm (gate 4 x 0.03 = 0.12 nm) continues
    through a 0.11 nm step (> the 0.08 nm floor; a sustained shift of 0.14 nm > split_nm)
    when its area is kept; the same step to a line of another brightness is a new track
    (the floor applies)."""
    T = 30
    pos = _walk(T, 0.03)
    pos[16:] += 0.14
    same = 1000.0 + 5.0 * np.cos(np.arange(T))
    fits = _line_fits(np.arange(T), pos, amp=same)
    assert np.unique(link_lines(fits)).size == 1
    tid = stitch_tracks(fits, link_lines(fits))  # the sustained step is the line's own diffusion: not cut
    assert np.unique(tid).size == 1 and tid[0] >= 0
    other = np.where(np.arange(T) < 16, same, 300.0)
    fits2 = _line_fits(np.arange(T), pos, amp=other)
    assert np.unique(link_lines(fits2)).size == 2
    # forced into one track, the step with a brightness change is cut
    cut = stitch_tracks(fits2, np.zeros(T, int))
    assert np.unique(cut).size == 2 and np.all(cut[:16] == cut[0]) and np.all(cut[16:] == cut[-1])
    # too few steps measured (a new track): the floor applies
    assert np.unique(link_lines(fits, min_steps=20)).size == 2


def _render(positions, peaks, wl, hwhm=0.03, background=200.0, seed=0):
    """Movie (time, wavelength) of Lorentzian lines at per-frame positions / peak counts."""
    import xarray as xr

    rng = np.random.default_rng(seed)
    T = positions.shape[1]
    lam = background + np.zeros((T, wl.size))
    for p, a in zip(positions, peaks):
        on = np.isfinite(p)
        lam[on] += a[on, None] * hwhm**2 / ((wl[None, :] - p[on, None]) ** 2 + hwhm**2)
    return xr.DataArray(rng.poisson(lam).astype(float), dims=("time", "wavelength"),
                        coords={"time": np.arange(T, dtype=float), "wavelength": wl}, attrs={"exposure_s": 1.0})


@pytest.mark.parametrize("partner", [True, False])
def test_jump_onto_a_dark_doublet_line_is_the_jumping_emitter(partner):
    """QD1 (singlet, bright) diffuses onto the blue line of QD2 (a doublet, dark at the
    time) in frames 10-11, as fig5d seed 10. The detection continues QD1 (its intensity
    is kept, the step is within its own diffusion), and QD2 stays off there: its red line
    is absent and a doublet's lines switch on together. Without the red line (QD2 a
    singlet) one frame cannot tell: the analysis either keeps QD2 off or flags the frames."""
    T = 80
    wl = 651.8 + 0.02 * np.arange(100)
    f = np.arange(T)
    q1 = 652.36 + 0.016 * np.minimum(f, 9) + 0.025 * (f % 2)
    q1[10:12] = 652.634
    q1[12:] = 652.50 - 0.025 * (f[12:] % 2)
    q1[40:70] = np.nan
    q1[70:] = 652.46 + 0.025 * (f[70:] % 2)
    blue = np.where((f >= 40) & (f < 70), 652.634, np.nan)
    lines = [q1, blue] + ([np.where(np.isfinite(blue), 652.80, np.nan)] if partner else [])
    peaks = [np.full(T, 3000.0), np.full(T, 1000.0)] + ([np.full(T, 1200.0)] if partner else [])
    a = analyze_movie(_render(np.array(lines), np.array(peaks), wl), n_surrogates=19)
    assert len(a.emitters) == 2
    q1e = min(a.emitters, key=lambda e: abs(e.center_nm.value - 652.4))
    q2e = next(e for e in a.emitters if e is not q1e)
    assert q2e.kind == ("doublet" if partner else "singlet")
    assert q1e.intervals_s == ((0.0, 40.0), (70.0, 80.0))
    if partner:
        assert q2e.intervals_s == ((40.0, 70.0),)
        assert not a.meta["ambiguous_frames"]
    else:
        judged_on = {int(t) for a0, b0 in q2e.intervals_s for t in range(int(a0), int(b0))} & {10, 11}
        assert judged_on <= set(a.meta["ambiguous_frames"].get(q2e.id, []))

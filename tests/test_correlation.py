"""Emitter-pair correlations: power on coupled pairs, false-positive rate on null pairs,
sliding windows, coincident jumps, spectral-diffusion increments."""

from __future__ import annotations

import numpy as np
import pytest

from nanodomains.errors import InputError
from nanodomains.spectroscopy.correlation import (
    coincident_jumps,
    correlate_pair,
    increment_correlation_test,
    segment_surrogates,
    surrogate_correlation_test,
)
from nanodomains.spectroscopy.movie_analysis import analyze_movie
from nanodomains.spectroscopy.states import segment_trace
from nanodomains.testing.pl import make_movie, telegraph

BG = 1600.0


def _emitter(on, rng, amp=450.0):
    counts = rng.poisson(BG + amp * np.asarray(on, float)).astype(float)
    seg = segment_trace(counts, np.full(counts.size, BG))
    return counts - BG, seg


def _pair(on_a, on_b, rng, **kw):
    a, sa = _emitter(on_a, rng)
    b, sb = _emitter(on_b, rng)
    t = np.arange(a.size, dtype=float)
    return correlate_pair("a", "b", a, b, sa.change_points, sb.change_points, np.diff(sa.signal_rate),
                          np.diff(sb.signal_rate), np.full(a.size, np.nan), np.full(a.size, np.nan), t, rng=rng, **kw)


def test_surrogates_keep_values_and_segments():
    x = np.r_[np.zeros(10), np.ones(5), 2 * np.ones(7)]
    s = segment_surrogates(x, [10, 15], 50, 0, circular=False)
    for row in s:
        np.testing.assert_array_equal(np.sort(row), np.sort(x))
        # without the circular shift every surrogate is the three blocks in some order
        runs = np.diff(np.flatnonzero(np.diff(np.r_[-1, row, -1]) != 0))
        assert sorted(runs.tolist()) == [5, 7, 10]
    assert len({tuple(r) for r in segment_surrogates(x, [10, 15], 200, 1)}) > 20


def test_coupled_pair_detected():
    rng = np.random.default_rng(0)
    n_det = 0
    for _ in range(10):
        on = telegraph(120, 0.1, 0.2, rng)
        p = _pair(on, on, rng, n_surrogates=499)
        n_det += p.verdict == "coupled" and p.pearson_p < 0.01 and p.pearson_r > 0.8
    assert n_det == 10


def test_anticorrelated_competition_detected():
    rng = np.random.default_rng(1)
    on = telegraph(120, 0.1, 0.1, rng)
    p = _pair(on, ~on, rng, n_surrogates=499)
    assert p.verdict == "anti-correlated" and p.relation == "competition"
    assert p.pearson_r < -0.8 and p.pearson_p < 0.01
    assert p.jumps_opposite >= 3 and p.jumps_p_opposite < 0.01


def test_independent_pairs_rarely_called_coupled():
    rng = np.random.default_rng(2)
    n = 100
    pairs = [_pair(telegraph(120, 0.08, 0.15, rng), telegraph(120, 0.08, 0.15, rng), rng, n_surrogates=199)
             for _ in range(n)]
    calls = [p.verdict for p in pairs]
    assert calls.count("coupled") <= 0.05 * n
    assert calls.count("anti-correlated") <= 0.05 * n
    # reported windows (family-wise p < 0.05) are rare too
    assert sum(bool(p.windows) for p in pairs) <= 0.08 * n


def test_correlated_window_like_67_75_s():
    rng = np.random.default_rng(3)
    T = 120
    base_a = telegraph(T, 0.05, 0.3, rng)
    base_b = telegraph(T, 0.05, 0.3, rng)
    base_a[60:85] = base_b[60:85] = True
    dip = np.zeros(T, bool)
    dip[67:75] = True
    ia = 450.0 * base_a * (1 - 0.7 * dip)
    ib = 450.0 * base_b * (1 - 0.7 * dip)
    a = rng.poisson(BG + ia).astype(float)
    b = rng.poisson(BG + ib).astype(float)
    sa, sb = segment_trace(a, np.full(T, BG)), segment_trace(b, np.full(T, BG))
    p = correlate_pair("a", "b", a - BG, b - BG, sa.change_points, sb.change_points, np.diff(sa.signal_rate),
                       np.diff(sb.signal_rate), np.full(T, np.nan), np.full(T, np.nan), np.arange(T, dtype=float),
                       window_frames=10, n_surrogates=999, rng=4)
    assert p.windows, "the correlated 67-75 s window must be reported"
    w = max(p.windows, key=lambda w: abs(w["r"]))
    assert 55 <= w["start_s"] and w["stop_s"] <= 85  # located at the dip
    assert min(w["stop_s"], 75) - max(w["start_s"], 67) >= 5
    assert w["r"] > 0.8 and w["p"] < 0.01 and w["p"] <= w["p_fwe"] < 0.05
    assert p.jumps_same >= 2  # the dip's two edges are coincident jumps


def test_coincident_jumps_counts_and_null():
    r = coincident_jumps([10, 50, 90], [11, 49, 70], [1, -1, 1], [1, 1, 1], 120, tolerance=1)
    assert r["n_same"] == 1 and r["n_opposite"] == 1 and r["frames"] == [10, 50]
    none = coincident_jumps([], [3], [], [1], 120)
    assert none["p_same"] == 1.0
    many = coincident_jumps(list(range(5, 115, 10)), list(range(5, 115, 10)), [1, -1] * 5 + [1], [1, -1] * 5 + [1], 120)
    assert many["n_same"] == 11 and many["p_same"] < 1e-6


def test_wavelength_increments_of_a_shared_random_walk():
    rng = np.random.default_rng(5)
    walk = np.cumsum(rng.normal(0, 0.01, 200))
    x = 650 + walk + rng.normal(0, 0.002, 200)
    y = 660 + walk + rng.normal(0, 0.002, 200)
    x[50:60] = np.nan  # emitter off
    r, p, n = increment_correlation_test(x, y, n_surrogates=499, rng=1)
    assert r > 0.8 and p < 0.01 and n == 200 - 1 - 11
    # two independent random walks: levels can correlate spuriously, increments do not
    zs = [increment_correlation_test(650 + np.cumsum(rng.normal(0, 0.01, 200)),
                                     660 + np.cumsum(rng.normal(0, 0.01, 200)), n_surrogates=199, rng=k)[1]
          for k in range(40)]
    assert np.mean(np.array(zs) < 0.01) <= 0.1


def test_bad_input():
    with pytest.raises(InputError):
        surrogate_correlation_test(np.ones(5), np.ones(6), [])
    with pytest.raises(InputError):
        surrogate_correlation_test(np.arange(5.0), np.arange(5.0), [], method="kendall")
    r, p = surrogate_correlation_test(np.ones(10), np.arange(10.0), [])
    assert np.isnan(r) and np.isnan(p)  # a constant trace has no correlation, not 0


def _two_emitter_movie(coupled: bool, seed: int):
    rng = np.random.default_rng(seed + 500)
    on_a = telegraph(120, 0.08, 0.15, rng)
    on_b = on_a.copy() if coupled else telegraph(120, 0.08, 0.15, rng)
    ems = [
        dict(id="A", kind="doublet", center_nm=645.0, fss_uev=677.0, peak_counts=450.0, on=on_a),
        dict(id="B", kind="singlet", center_nm=655.0, peak_counts=450.0, on=on_b),
    ]
    return make_movie(ems, seed=seed)


def test_coupled_emitters_in_a_movie():
    movie, _ = _two_emitter_movie(True, seed=30)
    a = analyze_movie(movie, n_surrogates=499)
    assert [e.kind for e in a.emitters] == ["doublet", "singlet"]
    (p,) = a.pairs
    assert p.verdict == "coupled" and p.pearson_p < 0.01


@pytest.mark.slow
def test_null_movies_false_coupling_rate():
    calls = []
    for seed in range(40):
        movie, _ = _two_emitter_movie(False, seed=100 + seed)
        a = analyze_movie(movie, n_surrogates=199)
        calls += [p.verdict for p in a.pairs]
    assert calls.count("coupled") <= 0.05 * len(calls)

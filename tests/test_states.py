"""Poisson change-point segmentation: exactness against brute force, recovery, on/off."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nanodomains.errors import InputError
from nanodomains.spectroscopy.states import (
    _poisson_cost,
    fano_factor,
    mask_to_intervals,
    pelt_poisson,
    segment_trace,
)


def _total_cost(y, cps, beta):
    edges = [0, *cps, len(y)]
    return sum(_poisson_cost(np.sum(y[a:b]), float(b - a)) for a, b in zip(edges[:-1], edges[1:])) + beta * (len(edges) - 1)


@pytest.mark.parametrize("seed", range(4))
def test_pelt_is_the_exact_optimum(seed):
    rng = np.random.default_rng(seed)
    y = rng.poisson(np.repeat(rng.uniform(2, 40, 3), 4)).astype(float)  # 12 frames
    beta = 2 * np.log(y.size)
    cps = pelt_poisson(y, penalty=beta)
    best = min(
        (_total_cost(y, c, beta) for k in range(y.size) for c in itertools.combinations(range(1, y.size), k)),
    )
    assert _total_cost(y, cps, beta) == pytest.approx(best, rel=1e-12, abs=1e-9)


def test_pelt_min_size():
    y = np.array([5, 5, 5, 50, 5, 5, 5, 5], float)
    assert pelt_poisson(y, penalty=1.0).tolist() == [3, 4]
    cps = pelt_poisson(y, penalty=1.0, min_size=2)
    assert np.all(np.diff(np.r_[0, cps, y.size]) >= 2)


def test_change_points_recovered_and_no_false_ones():
    rng = np.random.default_rng(3)
    hits, false = 0, 0
    for _ in range(20):
        rate = np.r_[np.full(40, 1600.0), np.full(25, 2000.0), np.full(55, 1600.0)]
        y = rng.poisson(rate).astype(float)
        cps = pelt_poisson(y)
        hits += int(any(abs(c - 40) <= 1 for c in cps) and any(abs(c - 65) <= 1 for c in cps))
        false += int(len(cps) != 2)
        const = rng.poisson(np.full(120, 1600.0)).astype(float)
        false += int(len(pelt_poisson(const)) != 0)
    assert hits >= 19
    assert false <= 2


def test_fano_factor():
    rng = np.random.default_rng(0)
    assert fano_factor(rng.poisson(500, 2000)) == pytest.approx(1.0, abs=0.1)
    # a gain of 3 counts per photon (EMCCD-like) triples the variance-to-mean ratio
    assert fano_factor(3.0 * rng.poisson(500, 2000)) == pytest.approx(3.0, rel=0.15)
    # jumps barely bias the trimmed estimate
    y = rng.poisson(np.repeat([500, 5000, 500, 5000], 300)).astype(float)
    assert fano_factor(y) == pytest.approx(1.0, abs=0.15)
    # short blinking traces with gain 2.5: unbiased to within ~20 % (jumps push it up)
    on = np.zeros(120, bool)
    on[10:30] = on[50:52] = on[70:110] = True
    v = [fano_factor(2.5 * rng.poisson(1600.0 + 450.0 * on)) for _ in range(200)]
    assert 2.3 < np.mean(v) < 3.2


def test_segment_trace_on_off_with_gain():
    rng = np.random.default_rng(9)
    on = np.zeros(120, bool)
    on[10:30] = on[50:52] = on[70:110] = True
    bg = np.full(120, 1600.0)
    y = 2.5 * rng.poisson(bg + 450.0 * on).astype(float)  # gain 2.5: not Poisson counts
    seg = segment_trace(y, 2.5 * bg)
    assert np.sum(seg.on != on) <= 2
    # treating gain-2.5 counts as Poisson (fano=1) over-segments the trace
    raw = segment_trace(y, 2.5 * bg, fano=1.0)
    assert raw.change_points.size >= seg.change_points.size
    ivs = mask_to_intervals(seg.on, np.arange(120.0))
    assert [round(a) for a, _ in ivs][:1] == [10]
    # the fitted levels are the signal rates
    assert np.nanmax(seg.signal_rate) == pytest.approx(2.5 * 450, rel=0.1)


def test_mask_to_intervals():
    t = np.arange(6) * 2.0
    assert mask_to_intervals([1, 1, 0, 0, 1, 0], t) == [[0.0, 4.0], [8.0, 10.0]]
    assert mask_to_intervals([0, 0, 0, 0, 0, 1], t) == [[10.0, 12.0]]
    assert mask_to_intervals([0] * 6, t) == []
    with pytest.raises(InputError):
        mask_to_intervals([1, 0], t)


def test_bad_input():
    with pytest.raises(InputError, match="finite and >= 0"):
        pelt_poisson([1.0, -2.0, 3.0])
    with pytest.raises(InputError, match="non-empty"):
        pelt_poisson([])
    with pytest.raises(InputError, match="NaN"):
        segment_trace([1.0, np.nan, 2.0])
    with pytest.raises(InputError, match="penalty"):
        pelt_poisson([1.0, 2.0], penalty=-1)

"""g2: bin-exact histogram, CW and pulsed normalisation against analytic ground truth."""

from __future__ import annotations

import json
from conftest import REALDATA

import numpy as np
import pandas as pd
import pytest

from nanodomains.errors import FitError, InputError
from nanodomains.records import G2Record
from nanodomains.spectroscopy.g2 import (
    compute_g2,
    compute_g2_file,
    cross_correlation_counts,
    g2_from_peak_areas,
    g2_histogram,
    g2_histogram_chunks,
    read_g2_text,
    write_g2_csv,
)
from nanodomains.timetags import PhotonStream, read_ptu, write_photons_npz

REAL = REALDATA
PH_T2 = REAL / "photons" / "picoharp_v30_t2.ptu"
HH_T2 = REAL / "photons" / "hydraharp_v20_t2.ptu"
AMOLF = REAL / "photons" / "amolf_cspbbr3_dot08_g2.txt"


# ---------------------------------------------------------------------------------
# ground-truth streams


def _stream(times_ps, channels, duration_s, micro=None, period_ps=None) -> PhotonStream:
    order = np.argsort(times_ps, kind="stable")
    return PhotonStream(
        times_ps=np.asarray(times_ps, np.int64)[order],
        channels=np.asarray(channels, np.uint8)[order],
        microtimes_ps=None if micro is None else np.asarray(micro, np.int64)[order],
        resolution_ps=1.0,
        sync_period_ps=period_ps,
        duration_s=duration_s,
        source="synthetic",
    )


def pulsed_stream(rng, *, n_pulses, period_ps, p_n, eta, tau_ps, delay_b_ps=0, t3=False):
    """HBT stream of an emitter giving n photons per pulse with probability p_n[n].

    Every photon is detected with probability eta and sent to channel 0 or 1 by a
    50:50 splitter; emission delays are exponential. Expected g2(0) =
    sum n(n-1) p_n / (sum n p_n)^2 (binomial thinning leaves it unchanged).
    """
    n_per = rng.choice(len(p_n), size=n_pulses, p=p_n)
    pulse = np.repeat(np.arange(n_pulses, dtype=np.int64), n_per)
    keep = rng.random(pulse.size) < eta
    pulse = pulse[keep]
    ch = (rng.random(pulse.size) < 0.5).astype(np.uint8)
    delay = np.rint(rng.exponential(tau_ps, pulse.size)).astype(np.int64)
    delay = np.minimum(delay, int(period_ps) - 1)
    t = pulse * int(period_ps) + delay + np.where(ch == 1, delay_b_ps, 0)
    return _stream(t, ch, n_pulses * period_ps * 1e-12, micro=delay if t3 else None, period_ps=period_ps if t3 else None)


def expected_pulsed_g2(p_n):
    n = np.arange(len(p_n))
    return float(np.sum(n * (n - 1) * p_n) / np.sum(n * p_n) ** 2)


def poisson_stream(rng, *, n_photons, duration_s):
    t = np.sort(rng.integers(0, int(duration_s * 1e12), n_photons))
    return _stream(t, rng.integers(0, 2, n_photons), duration_s)


def antibunched_stream(rng, *, duration_s, k_exc_per_ns, k_rad_per_ns, eta):
    """Single two-level emitter under CW excitation (renewal process).

    Intervals are Exp(k_exc) + Exp(k_rad); the renewal density gives
    g2(tau) = 1 - exp(-(k_exc + k_rad)|tau|) exactly.
    """
    mean_ps = 1e3 / k_exc_per_ns + 1e3 / k_rad_per_ns
    n = int(duration_s * 1e12 / mean_ps * 1.05) + 100
    iv = rng.exponential(1e3 / k_exc_per_ns, n) + rng.exponential(1e3 / k_rad_per_ns, n)
    t = np.cumsum(iv)
    t = t[t < duration_s * 1e12]
    t = t[rng.random(t.size) < eta]
    return _stream(np.rint(t).astype(np.int64), rng.integers(0, 2, t.size), duration_s)


def brute_force_counts(a, b, bin_ps, window_ps):
    k = int(round(window_ps / bin_ps))
    lo = -k * bin_ps - bin_ps // 2
    nb = 2 * k + 1
    d = (np.asarray(b)[None, :] - np.asarray(a)[:, None]).ravel()
    idx = np.floor_divide(d - lo, bin_ps)
    idx = idx[(idx >= 0) & (idx < nb)]
    return np.bincount(idx, minlength=nb)


# ---------------------------------------------------------------------------------
# exactness


def test_histogram_bin_exact_with_ties():
    rng = np.random.default_rng(7)
    for _ in range(200):
        na, nb = rng.integers(0, 50, 2)
        w = int(rng.integers(1, 8))
        window = float(w * rng.integers(1, 6))
        a = np.sort(rng.integers(0, 40, na))  # small range: many ties
        b = np.sort(rng.integers(0, 40, nb))
        edges, c, pairs = cross_correlation_counts(a, b, bin_ps=w, window_ps=window)
        ref = brute_force_counts(a, b, w, window)
        assert np.array_equal(c, ref)
        assert pairs == ref.sum()
        assert edges.size == c.size + 1 and np.all(np.diff(edges) == w)


def test_events_on_bin_edges():
    w, window = 100, 300.0
    edges, _, _ = cross_correlation_counts(np.zeros(1, np.int64), np.zeros(1, np.int64), bin_ps=w, window_ps=window)
    a = np.array([1000], np.int64)
    b = np.sort(np.concatenate([1000 + edges, 1000 + edges - 1]))  # every edge and 1 ps below
    _, c, _ = cross_correlation_counts(a, b, bin_ps=w, window_ps=window)
    assert np.array_equal(c, brute_force_counts(a, b, w, window))
    # each bin gets its own left edge and the point 1 ps below its right edge
    assert np.all(c == 2)
    # zero delay falls in the central bin
    _, c0, _ = cross_correlation_counts(a, a, bin_ps=w, window_ps=window)
    assert c0[c0.size // 2] == 1 and c0.sum() == 1


def test_chunked_histogram_equals_whole():
    rng = np.random.default_rng(3)
    s = poisson_stream(rng, n_photons=20000, duration_s=0.001)
    tau, counts, n_ab, pairs = g2_histogram(s, bin_ns=0.05, window_ns=20)
    cuts = np.sort(rng.integers(0, s.n_photons, 12))
    parts = np.split(np.arange(s.n_photons), cuts)
    chunks = [_stream(s.times_ps[i], s.channels[i], s.duration_s) for i in parts]
    tau2, counts2, n_ab2, pairs2, _ = g2_histogram_chunks(chunks, bin_ns=0.05, window_ns=20)
    assert np.array_equal(counts, counts2) and n_ab == n_ab2 and pairs == pairs2
    assert np.allclose(tau, tau2)


@pytest.mark.realdata
def test_file_g2_in_chunks_matches_in_memory():
    whole = compute_g2(read_ptu(PH_T2), mode="cw", bin_ns=1.0, window_ns=200)
    chunked = compute_g2_file(PH_T2, mode="cw", bin_ns=1.0, window_ns=200, chunk_records=50_000)
    assert np.array_equal(whole.counts, chunked.counts)
    assert chunked.g2_0.value == pytest.approx(whole.g2_0.value)
    assert whole.n_photons == 920177


def test_npz_file_path(tmp_path):
    rng = np.random.default_rng(11)
    s = pulsed_stream(rng, n_pulses=200_000, period_ps=12_500, p_n=[0.05, 0.9, 0.05], eta=0.1, tau_ps=1000, t3=True)
    p = write_photons_npz(s, tmp_path / "s.npz")
    r1 = compute_g2(s, window_ns=60, bin_ns=0.1)
    r2 = compute_g2_file(p, window_ns=60, bin_ns=0.1)
    assert np.array_equal(r1.counts, r2.counts) and r1.g2_0.value == r2.g2_0.value


# ---------------------------------------------------------------------------------
# CW normalisation


def test_cw_poisson_is_flat_one():
    rng = np.random.default_rng(5)
    s = poisson_stream(rng, n_photons=400_000, duration_s=0.5)
    r = compute_g2(s, mode="cw", bin_ns=1.0, window_ns=100)
    n_a, n_b = r.counts_per_channel
    T_ns = 0.5e9
    expected = n_a * n_b * 1.0 * (T_ns - np.abs(r.tau_ns)) / T_ns**2
    chi2 = np.sum((r.counts - expected) ** 2 / expected) / r.counts.size
    assert 0.85 < chi2 < 1.15  # Poisson scatter about the uncorrelated expectation
    assert abs(r.g2.mean() - 1) < 4 / np.sqrt(r.counts.sum())
    assert abs(r.g2_0.value - 1) < 4 * r.g2_0.stderr


def test_cw_antibunching_matches_two_level_theory():
    rng = np.random.default_rng(2)
    k_exc, k_rad = 0.02, 1.0  # per ns
    s = antibunched_stream(rng, duration_s=0.25, k_exc_per_ns=k_exc, k_rad_per_ns=k_rad, eta=0.2)
    r = compute_g2(s, mode="cw", bin_ns=0.5, window_ns=20)
    # theory averaged over each bin
    sub = np.linspace(-0.25, 0.25, 201)
    theory = np.array([np.mean(1 - np.exp(-(k_exc + k_rad) * np.abs(t + sub))) for t in r.tau_ns])
    n_a, n_b = r.counts_per_channel
    T_ns = s.duration_s * 1e9
    expected = theory * n_a * n_b * 0.5 * (T_ns - np.abs(r.tau_ns)) / T_ns**2
    chi2 = np.sum((r.counts - expected) ** 2 / expected) / r.counts.size
    assert 0.6 < chi2 < 1.5
    assert abs(r.g2_0.value - theory[r.tau_ns.size // 2]) < 4 * r.g2_0.stderr
    assert r.g2_0.value < 0.3


# ---------------------------------------------------------------------------------
# pulsed normalisation


@pytest.mark.parametrize("p_n", [[0.05, 0.9, 0.05], [0.3, 0.6, 0.1], [0.5, 0.5, 0.0]])
def test_pulsed_g2_recovers_multiphoton_probability(p_n):
    rng = np.random.default_rng(int(1000 * p_n[2]) + 1)
    truth = expected_pulsed_g2(np.array(p_n))
    s = pulsed_stream(rng, n_pulses=2_000_000, period_ps=12_500, p_n=p_n, eta=0.1, tau_ps=1000, t3=True)
    r = compute_g2(s, mode="pulsed", bin_ns=0.1, window_ns=50)
    assert r.period_source == "sync" and r.period_ns == pytest.approx(12.5)
    assert len(r.side_peak_areas) == 6  # m = -3..3 fit in +-50 ns
    assert abs(r.g2_0.value - truth) < max(4 * r.g2_0.stderr, 1e-9)
    assert abs(r.g2_0.value - truth) < 0.03
    # reported error matches Poisson statistics of the zero peak
    mean_side = np.mean(r.side_peak_areas)
    assert r.g2_0.stderr == pytest.approx(
        np.sqrt(max(r.zero_peak_area, 1) + r.g2_0.value**2 * mean_side / 6) / mean_side
    )
    assert r.offset_ns == pytest.approx(0.0, abs=0.1)


def test_pulsed_t2_estimates_period_and_delay_offset():
    rng = np.random.default_rng(9)
    s = pulsed_stream(
        rng, n_pulses=2_000_000, period_ps=12_500, p_n=[0.3, 0.6, 0.1], eta=0.1, tau_ps=1000, delay_b_ps=2300
    )
    assert s.sync_period_ps is None
    r = compute_g2(s, mode="pulsed", bin_ns=0.1, window_ns=60)
    assert r.period_source == "estimated"
    assert r.period_ns == pytest.approx(12.5, rel=2e-3)
    assert r.offset_ns == pytest.approx(2.3, abs=0.1)
    assert abs(r.g2_0.value - expected_pulsed_g2(np.array([0.3, 0.6, 0.1]))) < 0.03
    given = compute_g2(s, mode="pulsed", bin_ns=0.1, window_ns=60, period_ns=12.5, offset_ns=2.3)
    assert given.period_source == "given" and given.offset_source == "given"
    assert given.g2_0.value == pytest.approx(r.g2_0.value, abs=0.01)


def test_microtime_gating():
    rng = np.random.default_rng(4)
    s = pulsed_stream(rng, n_pulses=300_000, period_ps=12_500, p_n=[0.05, 0.9, 0.05], eta=0.1, tau_ps=1000, t3=True)
    r = compute_g2(s, window_ns=40, microtime_gate_ns=(0.0, 2.0))
    keep = s.microtimes_ps < 2000
    assert r.n_photons == int(keep.sum())
    assert r.microtime_gate_ns == (0.0, 2.0)
    with pytest.raises(InputError, match="no photons"):
        compute_g2(s, window_ns=40, microtime_gate_ns=(20.0, 30.0))
    t2 = poisson_stream(rng, n_photons=1000, duration_s=0.01)
    with pytest.raises(InputError, match="T3"):
        compute_g2(t2, mode="cw", microtime_gate_ns=(0.0, 2.0))


# ---------------------------------------------------------------------------------
# real data and bad input


@pytest.mark.realdata
def test_real_processed_g2_from_peak_areas():
    tau, counts, meta = read_g2_text(AMOLF)
    assert tau[1] - tau[0] == pytest.approx(0.16461, rel=1e-4)
    r = g2_from_peak_areas(tau, counts, source=str(AMOLF))
    assert r.g2_0.value == pytest.approx(0.28, abs=0.02)
    assert 0 < r.g2_0.stderr < 0.02
    assert 99.0 < r.period_ns < 101.5  # 10 MHz excitation
    assert len(r.side_peak_areas) == 2
    back = G2Record.from_json(r.to_json())
    assert back == r
    assert back.duration_s is None and "duration_s" in back.not_computed  # a processed curve has no duration


@pytest.mark.realdata
def test_real_one_channel_data_is_rejected():
    s = read_ptu(HH_T2)
    with pytest.raises(InputError, match="two channels.*only \\[0\\]"):
        compute_g2(s)
    with pytest.raises(InputError, match="two different"):
        compute_g2(read_ptu(PH_T2), channels=(0, 0))
    with pytest.raises(InputError, match="channel 3"):
        compute_g2(read_ptu(PH_T2), channels=(0, 3))


@pytest.mark.realdata
def test_real_picoharp_t2_cw():
    s = read_ptu(PH_T2)
    r = compute_g2(s, mode="cw", bin_ns=10_000.0, window_ns=2_000_000.0)
    assert r.counts_per_channel == (531477, 388700)
    assert r.duration_s == pytest.approx(7.65, abs=0.01)
    # this record shows bunching on ~0.1 ms scales; at |tau| ~ 2 ms the photons are
    # independent and the CW normalisation must give 1
    far = np.abs(r.tau_ns) > 1.8e6
    assert abs(r.g2[far].mean() - 1) < 0.03
    assert r.g2[np.abs(r.tau_ns) < 1e5].mean() > 1.05


def test_bad_parameters():
    rng = np.random.default_rng(0)
    s = poisson_stream(rng, n_photons=1000, duration_s=0.01)
    with pytest.raises(InputError, match="whole number of ps"):
        compute_g2(s, bin_ns=0.0005)
    with pytest.raises(InputError, match="mode"):
        compute_g2(s, mode="pulse")
    with pytest.raises(InputError, match="sorted"):
        cross_correlation_counts(np.array([3, 1]), np.array([1, 2]), bin_ps=1, window_ps=5)
    flat = rng.poisson(100, 2001).astype(float)
    with pytest.raises(FitError):
        g2_from_peak_areas(np.linspace(-100, 100, 2001), flat)


def test_result_json_and_csv_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    s = pulsed_stream(rng, n_pulses=100_000, period_ps=12_500, p_n=[0.05, 0.9, 0.05], eta=0.2, tau_ps=800, t3=True)
    r = compute_g2(s, window_ns=40)
    r.to_json(tmp_path / "g2.json")
    d = json.loads((tmp_path / "g2.json").read_text())
    assert d["schema"] == "nanodomains.g2/2"
    assert d["g2_0"] == {"value": r.g2_0.value, "stderr": r.g2_0.stderr}
    for key in ("mode", "n_photons", "duration_s", "tau_ns", "counts", "g2"):
        assert key in d
    back = G2Record.from_json(tmp_path / "g2.json")
    assert back == r and np.array_equal(back.counts, r.counts)
    write_g2_csv(r, tmp_path / "g2.csv")
    data = pd.read_csv(tmp_path / "g2.csv")
    assert list(data.columns) == ["tau_ns", "counts", "g2"]
    assert np.array_equal(data["counts"].to_numpy(), r.counts)


def test_batch_g2_json_round_trips_with_histogram(tmp_path):
    from nanodomains.pipeline.batch import HANDLERS

    rng = np.random.default_rng(1)
    s = pulsed_stream(rng, n_pulses=100_000, period_ps=12_500, p_n=[0.05, 0.9, 0.05], eta=0.2, tau_ps=800, t3=True)
    p = write_photons_npz(s, tmp_path / "s.npz")
    out = tmp_path / "item"
    out.mkdir()
    values = HANDLERS["photons_g2"](p, out, {"window_ns": 40})
    back = G2Record.from_json(out / "g2.json")
    direct = compute_g2_file(p, window_ns=40)
    assert back == direct.replace(software=back.software)
    assert back.tau_ns.size == direct.tau_ns.size > 0
    assert values["g2_0"] == direct.g2_0.value and values["g2_0_err"] == direct.g2_0.stderr


@pytest.mark.realdata
def test_cli_g2(tmp_path, capsys):
    from nanodomains.cli import main

    out = tmp_path / "ph"
    rc = main(["photons", "g2", str(PH_T2), "--out", str(out), "--mode", "cw", "--bin-ns", "1", "--window-ns", "100"])
    assert rc == 0
    d = json.loads((out / "g2.json").read_text())
    assert d["mode"] == "cw" and d["n_photons"] == 920177
    back = G2Record.from_json(out / "g2.json")
    assert back == compute_g2_file(PH_T2, mode="cw", bin_ns=1.0, window_ns=100).replace(software=back.software)
    head = (out / "g2.csv").read_text().splitlines()[0]
    assert head == "tau_ns,counts,g2"
    rc = main(["photons", "g2", str(AMOLF), "--out", str(tmp_path / "amolf")])
    assert rc == 0
    assert json.loads((tmp_path / "amolf" / "g2.json").read_text())["g2_0"]["value"] == pytest.approx(0.28, abs=0.02)
    capsys.readouterr()
    assert main(["photons", "g2", str(HH_T2), "--out", str(tmp_path / "one")]) == 2
    assert "two channels" in capsys.readouterr().err
    assert not (tmp_path / "one" / "g2.json").exists()

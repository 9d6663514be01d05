"""Lifetimes: exact model pieces, recovery of known decays, the real IRF + decay, bad input."""

from __future__ import annotations

import json
from conftest import REALDATA

import numpy as np
import pytest

from nanodomains.errors import InputError
from nanodomains.records import LifetimeRecord
from nanodomains.spectroscopy.lifetime import (
    exp_convolve,
    fit_lifetime,
    fit_reconvolution,
    fit_tail,
    load_decay,
    poisson_deviance,
    tcspc_histogram,
    tcspc_histogram_file,
)
from nanodomains.spectroscopy.photons_io import DecayHistogram, read_decay
from nanodomains.timetags import PhotonStream, read_ptu

REAL = REALDATA
IRF = REAL / "decay" / "IRF_data.txt"
DECAY = REAL / "decay" / "Decaytrace1"
HH_T3 = REAL / "photons" / "hydraharp_v20_t3.ptu"
PH_T2 = REAL / "photons" / "picoharp_v30_t2.ptu"

DT = 0.016
T = np.arange(625) * DT  # 10 ns


def gaussian_irf(center=1.0, sigma=0.06):
    g = np.exp(-0.5 * ((T - center) / sigma) ** 2)
    return g / g.sum()


def synthetic(rng, taus, photons, bg=0.5, periodic=False, irf_counts=2e5):
    g = gaussian_irf()
    mu = bg + sum(p * exp_convolve(g, tau / DT, periodic=periodic) for tau, p in zip(taus, photons))
    decay = DecayHistogram(T, rng.poisson(mu), DT, source="synthetic")
    irf = DecayHistogram(T, rng.poisson(g * irf_counts), DT, source="synthetic irf")
    return decay, irf


# ---------------------------------------------------------------------------------
# model pieces


def test_exp_convolve_matches_direct_convolution():
    rng = np.random.default_rng(0)
    x = rng.random(200)
    tau_bins = 7.3
    q = np.exp(-1 / tau_bins)
    kernel = (1 - q) * q ** np.arange(200)
    assert np.allclose(exp_convolve(x, tau_bins), np.convolve(x, kernel)[:200])
    # periodic: sum of the responses to the same excitation repeated every 200 bins
    long_x = np.tile(x, 60)
    direct = np.convolve(long_x, (1 - q) * q ** np.arange(long_x.size))[: long_x.size]
    assert np.allclose(exp_convolve(x, tau_bins, periodic=True), direct[-200:])
    assert kernel.sum() == pytest.approx(1, abs=1e-10)


def test_poisson_deviance():
    n = np.array([0, 1, 5, 20])
    assert poisson_deviance(n, n + 0.0) == pytest.approx(0.0, abs=1e-9)
    mu = np.array([0.5, 1.5, 4.0, 22.0])
    ref = 2 * np.sum(mu - n) + 2 * sum(k * np.log(k / m) for k, m in zip(n, mu) if k > 0)
    assert poisson_deviance(n, mu) == pytest.approx(ref)


# ---------------------------------------------------------------------------------
# recovery of known decays


@pytest.mark.parametrize("tau", [0.54, 0.66, 2.0])
def test_reconvolution_recovers_single_lifetime(tau):
    rng = np.random.default_rng(int(tau * 100))
    decay, irf = synthetic(rng, [tau], [5e4])
    r = fit_reconvolution(decay, irf, n_exp=1)
    assert r.converged
    assert abs(r.tau_ns[0].value - tau) / tau < 0.03
    assert abs(r.tau_ns[0].value - tau) < 4 * r.tau_ns[0].stderr
    assert abs(r.shift_ns.value) < 4 * r.shift_ns.stderr + 1e-3
    assert r.background.value == pytest.approx(0.5, abs=4 * r.background.stderr)
    assert 0.8 < r.reduced_deviance < 1.25


def test_reconvolution_two_components():
    rng = np.random.default_rng(12)
    decay, irf = synthetic(rng, [0.5, 2.5], [3e4, 3e4], bg=0.3)
    r = fit_reconvolution(decay, irf, n_exp=2)
    assert r.tau_ns[0].value == pytest.approx(0.5, rel=0.03)
    assert r.tau_ns[1].value == pytest.approx(2.5, rel=0.03)
    assert r.components[0].fraction == pytest.approx(0.5, abs=0.03)
    assert r.tau_mean_ns.value == pytest.approx(1.5, abs=4 * r.tau_mean_ns.stderr)
    one = fit_reconvolution(decay, irf, n_exp=1)
    assert one.deviance - r.deviance > 100  # one exponential is clearly rejected


def test_uncertainties_match_scatter():
    # Cramer-Rao errors from the Fisher information equal the scatter of repeated fits
    rng = np.random.default_rng(1)
    g = gaussian_irf()
    mu = 1.0 + 2e4 * exp_convolve(g, 1.2 / DT)
    irf = DecayHistogram(T, g * 1e6, DT)  # noise-free IRF: only the decay scatters
    est, err = [], []
    for _ in range(40):
        r = fit_reconvolution(DecayHistogram(T, rng.poisson(mu), DT), irf, irf_background=None)
        est.append(r.tau_ns[0].value)
        err.append(r.tau_ns[0].stderr)
    ratio = np.std(est, ddof=1) / np.mean(err)
    assert 0.67 < ratio < 1.33  # 40 samples: the sample std is uncertain by ~11 %
    assert abs(np.mean(est) - 1.2) < 4 * np.mean(err) / np.sqrt(40)


def test_periodic_excitation_pile_up():
    rng = np.random.default_rng(8)
    decay, irf = synthetic(rng, [4.0], [2e4], bg=1.0, periodic=True)  # tau comparable to 10 ns period
    r = fit_reconvolution(decay, irf, n_exp=1, period_ns=10.0)
    assert r.period_ns == 10.0
    assert abs(r.tau_ns[0].value - 4.0) < 4 * r.tau_ns[0].stderr
    assert abs(r.tau_ns[0].value - 4.0) / 4.0 < 0.1
    plain = fit_reconvolution(decay, irf, n_exp=1)
    assert plain.deviance > r.deviance + 20  # ignoring earlier pulses misfits


def test_tail_fit():
    rng = np.random.default_rng(3)
    decay, _ = synthetic(rng, [1.5], [3e4], bg=0.5)
    r = fit_tail(decay)
    assert r.method == "tail" and r.shift_ns is None
    assert abs(r.tau_ns[0].value - 1.5) / 1.5 < 0.03
    assert abs(r.tau_ns[0].value - 1.5) < 4 * r.tau_ns[0].stderr
    assert r.fit_range_ns[0] > 1.0  # starts after the IRF peak


# ---------------------------------------------------------------------------------
# real data


@pytest.mark.realdata
def test_real_irf_and_decay():
    decay, irf = read_decay(DECAY), read_decay(IRF)
    one = fit_reconvolution(decay, irf, n_exp=1)
    two = fit_reconvolution(decay, irf, n_exp=2)
    for r in (one, two):
        assert r.converged
        assert all(0.05 < t.value < 20 for t in r.tau_ns)
        assert all(0 < t.stderr < t.value for t in r.tau_ns)
        assert np.isfinite(r.reduced_deviance) and np.isfinite(r.reduced_chi2)
        assert abs(r.shift_ns.value) < 1.0
        assert r.irf_background > 0  # the measured IRF sits on a flat floor
        assert r.fit_range_ns[1] == pytest.approx(13.148)  # last recorded bin
    # the decay is not single-exponential; two components describe it to Poisson noise
    assert one.reduced_deviance > 1.3
    assert 0.8 < two.reduced_deviance < 1.2
    assert 0.8 < two.tau_mean_ns.value < 3.0


@pytest.mark.realdata
def test_real_t3_tcspc_histogram_and_tail_fit():
    s = read_ptu(HH_T3)
    h = tcspc_histogram(s)
    assert h.counts.sum() == s.n_photons
    assert h.counts.size == 3125 and h.bin_ns == pytest.approx(0.064)
    assert h.period_ns == pytest.approx(200.0, rel=1e-4)
    h0 = tcspc_histogram(s, channel=0)
    assert h0.counts.sum() == s.channel_counts()[0]
    assert np.array_equal(tcspc_histogram_file(HH_T3, chunk_records=7000).counts, h.counts)
    r = fit_tail(h)
    assert r.converged and np.isfinite(r.reduced_deviance)
    assert 1.0 < r.tau_ns[0].value < 200.0


# ---------------------------------------------------------------------------------
# bad input and serialisation


@pytest.mark.realdata
def test_bad_input():
    rng = np.random.default_rng(0)
    decay, irf = synthetic(rng, [1.0], [1e4])
    with pytest.raises(InputError, match="n_exp"):
        fit_reconvolution(decay, irf, n_exp=4)
    coarse = DecayHistogram(np.arange(300) * 0.032, irf.counts[:300], 0.032)
    with pytest.raises(InputError, match="bin width"):
        fit_reconvolution(decay, coarse)
    with pytest.raises(InputError, match="empty"):
        fit_reconvolution(DecayHistogram(T, np.zeros(T.size), DT), irf)
    with pytest.raises(InputError, match="period"):
        fit_reconvolution(decay, irf, period_ns=5.0)
    with pytest.raises(InputError, match="T3"):
        tcspc_histogram(read_ptu(PH_T2))
    with pytest.raises(InputError, match="T3"):
        load_decay(PH_T2)
    s = PhotonStream(np.arange(5, dtype=np.int64), np.zeros(5, np.uint8), np.arange(5, dtype=np.int64) * 10,
                     resolution_ps=10.0, sync_period_ps=1000.0, duration_s=1e-9)
    with pytest.raises(InputError, match="channel 2"):
        tcspc_histogram(s, channel=2)


def test_result_json_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    decay, irf = synthetic(rng, [0.8], [1e4])
    r = fit_reconvolution(decay, irf)
    r.to_json(tmp_path / "lt.json")
    d = json.loads((tmp_path / "lt.json").read_text())
    assert d["schema"] == "nanodomains.lifetime/3" and d["method"] == "reconvolution"
    assert d["components"][0]["tau_ns"] == {"value": r.tau_ns[0].value, "stderr": r.tau_ns[0].stderr}
    back = LifetimeRecord.from_json(tmp_path / "lt.json")
    assert back == r
    assert np.allclose(back.model, r.model, equal_nan=True) and back.counts.size == decay.counts.size


def test_fit_lifetime_chooses_reconvolution_with_irf_else_tail():
    rng = np.random.default_rng(6)
    decay, irf = synthetic(rng, [1.2], [2e4], bg=0.5)
    rec = fit_lifetime(decay, irf, start_ns=0.5, compare=False)
    assert rec.method == "reconvolution"
    assert rec == fit_reconvolution(decay, irf, fit_range_ns=(0.5, float(decay.time_ns[-1]))).replace(
        settings=rec.settings)
    tail = fit_lifetime(decay, start_ns=3.0, compare=False)
    assert tail.method == "tail" and tail == fit_tail(decay, start_ns=3.0)
    # with the comparison (default): the same fit, plus one and two exponentials on the same bins
    full = fit_lifetime(decay, irf, start_ns=0.5)
    assert full.tau_ns == rec.tau_ns and [m.n_exp for m in full.comparison] == [1, 2]
    with pytest.raises(InputError, match="period"):
        fit_lifetime(decay, period_ns=10.0)
    with pytest.raises(InputError, match="reconvolution"):
        fit_lifetime(decay, irf_background=None)
    with pytest.raises(InputError, match="not both"):
        fit_lifetime(decay, irf, start_ns=0.5, fit_range_ns=(0.5, 5.0))


def test_lifetime_truth_compares_with_a_fit():
    from nanodomains.records import LifetimeComponent, Measured, compare

    rng = np.random.default_rng(7)
    decay, irf = synthetic(rng, [1.2], [5e4], bg=0.5)
    tau = Measured(value=1.2, stderr=0.0)
    truth = LifetimeRecord(origin="truth", n_exp=1, components=[LifetimeComponent(tau_ns=tau, fraction=1.0)],
                           tau_mean_ns=tau)
    cmp = compare(truth, fit_lifetime(decay, irf), tolerances={"*tau*": "3%"})
    assert cmp.ok and cmp.row("components[0].tau_ns").ok


def test_batch_lifetime_json_round_trips_with_curves(tmp_path):
    from nanodomains.pipeline.batch import HANDLERS

    out = tmp_path / "item"
    out.mkdir()
    values = HANDLERS["photons_lifetime"](DECAY, out, {"irf": str(IRF), "n_exp": 2})
    back = LifetimeRecord.from_json(out / "lifetime.json")
    direct = fit_lifetime(read_decay(DECAY), IRF, n_exp=2)
    assert back == direct.replace(software=back.software)
    assert back.counts.size == back.model.size == read_decay(DECAY).counts.size
    assert values["tau_ns_1"] == direct.tau_ns[1].value


@pytest.mark.realdata
def test_cli_lifetime(tmp_path, capsys):
    from nanodomains.cli import main

    out = tmp_path / "lt"
    assert main(["photons", "lifetime", str(DECAY), "--irf", str(IRF), "--n-exp", "2", "--out", str(out)]) == 0
    d = json.loads((out / "lifetime.json").read_text())
    assert d["method"] == "reconvolution" and len(d["components"]) == 2
    assert LifetimeRecord.from_json(out / "lifetime.json") == fit_lifetime(read_decay(DECAY), IRF, n_exp=2).replace(
        source=str(DECAY))
    assert (out / "lifetime.png").stat().st_size > 1000
    assert main(["photons", "lifetime", str(HH_T3), "--out", str(tmp_path / "t3")]) == 0
    assert json.loads((tmp_path / "t3" / "lifetime.json").read_text())["method"] == "tail"
    capsys.readouterr()
    assert main(["photons", "lifetime", str(PH_T2), "--out", str(tmp_path / "t2")]) == 2
    assert "T3" in capsys.readouterr().err

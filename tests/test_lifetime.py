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


# ---------------------------------------------------------------------------------
# goodness of fit and the choice between one and two exponentials

SPC = REAL / "photons" / "tttrlib_bh_spc132_smDNA_m000.spc"
PTU_V1_T3 = REAL / "photons" / "pqsample_hydraharp_v10_t3.ptu"
PHD = REAL / "decay" / "pqsample_picoharp_v20.phd"


def test_runs_test_by_hand():
    from nanodomains.spectroscopy.lifetime import information_criteria, runs_test

    # + + - - + - : n+ = 3, n- = 3, N = 6, R = 4; E[R] = 1 + 2*9/6 = 4; Var = 18*(18-6)/(36*5) = 1.2
    z, p = runs_test(np.array([1.0, 2.0, -1.0, -0.5, 3.0, -2.0]))
    assert z == pytest.approx(0.0) and p == pytest.approx(0.5)
    # zeros are dropped; 5 + then 5 - : R = 2, E = 6, Var = 2*25*40/(100*9) = 2.222
    z, p = runs_test(np.array([1, 1, 0, 1, 1, 1, -1, -1, -1, -1, -1.0]))
    assert z == pytest.approx((2 - 6) / np.sqrt(2000 / 900)) and p < 0.01
    assert np.isnan(runs_test(np.array([1.0, 1.0, -1.0]))[1])  # one negative: undefined
    assert information_criteria(100.0, 3, 50) == (106.0, pytest.approx(100 + 3 * np.log(50)))


def test_one_exponential_decay_is_not_flagged():
    t = np.arange(300) * 0.05
    flagged = 0
    for seed in range(3):
        counts = np.random.default_rng(seed).poisson(3000 * np.exp(-t / 2.0) + 3)
        r = fit_lifetime(DecayHistogram(t, counts, 0.05, source="one"), start_ns=0.0)
        models = [m.n_exp for m in r.comparison]
        # two exponentials either fitted or not separable (recorded why): both say "one suffices"
        assert models == [1, 2] or (models == [1] and "singular" in r.not_computed["comparison n_exp=2"])
        flagged += any("inadequate" in w for w in r.warnings)
        assert r.preferred_n_exp == 1
    assert flagged == 0


def test_two_exponential_decay_is_flagged():
    t = np.arange(500) * 0.05
    counts = np.random.default_rng(1).poisson(3000 * np.exp(-t / 0.3) + 600 * np.exp(-t / 4.0) + 2)
    r = fit_lifetime(DecayHistogram(t, counts, 0.05, source="two"), start_ns=0.0)
    assert r.preferred_n_exp == 2 and r.n_exp == 1
    warning = next(w for w in r.warnings if "one exponential is inadequate" in w)
    two = r.comparison[1]
    assert two.tau_ns[0].value == pytest.approx(0.3, abs=4 * two.tau_ns[0].stderr)
    assert two.tau_ns[1].value == pytest.approx(4.0, abs=4 * two.tau_ns[1].stderr)
    assert "two exponentials give" in warning
    # asked for two: no warning about the first model, two preferred
    r2 = fit_lifetime(DecayHistogram(t, counts, 0.05, source="two"), n_exp=2, start_ns=0.0)
    assert r2.preferred_n_exp == 2 and not any("not supported" in w for w in r2.warnings)


def test_tail_start_rule_is_recorded_and_drawn(tmp_path):
    from nanodomains.spectroscopy.lifetime import plot_lifetime, tail_start

    t = np.arange(400) * 0.01
    rise = np.clip((t - 0.5) / 0.2, 0, 1)  # peak at 0.7 ns, half maximum crossed at 0.6 ns
    counts = np.random.default_rng(2).poisson(5000 * rise * np.exp(-np.clip(t - 0.7, 0, None) / 0.8) + 1)
    d = DecayHistogram(t, counts, 0.01)
    i0, rule = tail_start(d)
    r = fit_lifetime(d)
    assert r.fit_range_ns[0] == pytest.approx(t[i0]) and r.start_rule == rule and "2 x rise" in rule
    assert 0.85 <= t[i0] <= 1.0  # peak + 2 x (peak - half-maximum crossing)
    fig = plot_lifetime(r)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert any(label.startswith("fit start") for label in labels)


@pytest.mark.realdata
def test_spc_channel0_one_exponential_inadequate():
    """README: from 2.778 ns one exponential 0.645 ns (1.72), two 0.186 / 1.913 ns (1.02); from 4.0 ns 1.868 ns (1.03)."""
    decay = load_decay(SPC, channel=0)
    r = fit_lifetime(decay)
    assert r.fit_range_ns[0] == pytest.approx(2.778, abs=0.002)  # the default start rule gives the README's start
    assert r.tau_ns[0].value == pytest.approx(0.645, abs=0.002) and r.reduced_deviance == pytest.approx(1.72, abs=0.01)
    two = r.comparison[1]
    assert [x.value for x in two.tau_ns] == [pytest.approx(0.186, abs=0.002), pytest.approx(1.913, abs=0.005)]
    assert two.reduced_deviance == pytest.approx(1.02, abs=0.01)
    assert r.preferred_n_exp == 2 and r.runs_test_p < 1e-10
    assert any("one exponential is inadequate" in w for w in r.warnings)
    late = fit_lifetime(decay, start_ns=4.0)
    assert late.tau_ns[0].value == pytest.approx(1.868, abs=0.005)
    assert late.reduced_deviance == pytest.approx(1.03, abs=0.01) and late.preferred_n_exp == 1
    assert not any("inadequate" in w for w in late.warnings)


@pytest.mark.realdata
def test_v1_t3_ptu_tail_fits():
    """README: summed micro-time tail from 5.376 ns: one exponential 31.17 ns (1.29), two 9.62 / 36.95 ns (1.03)."""
    r = fit_lifetime(load_decay(PTU_V1_T3), start_ns=5.376)
    assert r.fit_range_ns[0] == pytest.approx(5.376, abs=1e-3)
    assert r.tau_ns[0].value == pytest.approx(31.17, abs=0.02) and r.reduced_deviance == pytest.approx(1.29, abs=0.01)
    two = r.comparison[1]
    assert [x.value for x in two.tau_ns] == [pytest.approx(9.62, abs=0.02), pytest.approx(36.95, abs=0.02)]
    assert two.reduced_deviance == pytest.approx(1.03, abs=0.01)


@pytest.mark.realdata
def test_cli_lifetime_spc_and_phd(tmp_path, capsys):
    from nanodomains.cli import main

    assert main(["photons", "lifetime", str(SPC), "--channel", "0", "--out", str(tmp_path / "spc")]) == 0
    captured = capsys.readouterr()
    assert "one exponential is inadequate" in captured.err and "0.186" in captured.err
    assert "2 exp" in captured.out
    rec = LifetimeRecord.from_json(tmp_path / "spc" / "lifetime.json")
    assert rec.preferred_n_exp == 2 and len(rec.comparison) == 2
    assert main(["photons", "lifetime", str(PHD), "--curve", "1", "--out", str(tmp_path / "phd")]) == 0
    rec = LifetimeRecord.from_json(tmp_path / "phd" / "lifetime.json")
    assert rec.source.endswith("(curve 1)") and rec.dof > 100
    assert main(["photons", "lifetime", str(PHD), "--curve", "9", "--out", str(tmp_path / "x")]) == 2
    assert "holds 7 histograms" in capsys.readouterr().err

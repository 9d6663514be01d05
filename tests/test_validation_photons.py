"""Photon analysis against the optical simulator's truth (issue 7 acceptance).

g2(0) within +-0.03 of the model's expected value at ~1e6 coincidence pairs, and
lifetimes within 3 % of the emitters' truth, through the PTU files the simulator writes.
"""

import numpy as np
import pytest

from nanodomains.optics import photons as ph
from nanodomains.optics import presets
from nanodomains.records import G2Record, LifetimeRecord, PhotonTruth, compare, load_record
from nanodomains.spectroscopy.g2 import compute_g2, compute_g2_file
from nanodomains.spectroscopy.lifetime import fit_lifetime, tcspc_histogram
from nanodomains.timetags import read_photons, write_ptu


@pytest.mark.parametrize("name, seed", [("fig4_doublet", 4), ("fig5d", 5)])
def test_pulsed_g2_zero_matches_truth_at_1e6_pairs(name, seed):
    duration = {"fig4_doublet": 120.0, "fig5d": 60.0}[name]
    efficiency = {"fig4_doublet": 0.22, "fig5d": 0.45}[name]
    sim = presets.photons_from(preset_name=name, mode="pulsed", seed=seed, duration_s=duration,
                               efficiency=efficiency, t3=True)
    g2 = compute_g2(sim, mode="pulsed", window_ns=500.0)  # a simulation is a PhotonStream
    pairs = int(np.sum(g2.counts))
    assert pairs >= 1e6, pairs
    cmp = compare(sim.truth.g2, g2, tolerances={"g2_0": 0.03})
    assert cmp.ok, cmp.table()
    assert abs(cmp.row("g2_0").difference) <= 4 * g2.g2_0.stderr + 0.005


def test_ptu_round_trip_g2_and_lifetimes_within_3_percent(tmp_path):
    # A single-exponential fit measures one emitter's lifetime only when the band holds
    # (almost) only that emitter's photons. fig5d's D1 is dark for its first 18 s while
    # D0-X (652.35/652.37 nm, 0.18 ns) stays bright; in 20 s, 18 % of the D1-X line-1 band
    # (652.74-652.84 nm) were D0-X Lorentzian-tail photons and the fit gave the mixture
    # (0.2008 vs 0.2071 ns). 40 s includes 22 s of D1 emission; the band's purity is checked
    # from the simulator's photon bookkeeping before the lifetime is judged.
    dyn, _ = presets.dynamics_from(None, "fig5d", seed=7, excitation="pulsed", duration_s=120.0)
    for emitter, line in (("D0-X", None), ("D1-X", 1)):
        band = ph.line_filter(dyn, emitter, line=line, width_nm=0.1)
        sim = ph.simulate_photons(dyn, duration_s=40.0, seed=8, band_nm=band, t3=True,
                                  params=ph.PhotonParameters(mode="pulsed"),
                                  detectors=ph.Detectors(efficiency=0.05))
        in_band = {e.id: e.n_photons for e in sim.truth.emitters}
        assert in_band[emitter] >= 0.97 * sum(in_band.values()), in_band
        path = tmp_path / f"{emitter}.ptu"
        write_ptu(sim, path)
        stream = read_photons(path)
        assert stream.times_ps.size == sim.n_photons
        g2 = compute_g2_file(path, mode="pulsed")
        assert g2.g2_0.value < 0.5  # a single-photon emitter (S13)
        decay = tcspc_histogram(stream, binning=8)
        peak = float(decay.time_ns[int(decay.counts.argmax())])
        fit = fit_lifetime(decay, n_exp=1, start_ns=peak + 0.2, stop_ns=peak + 6.0)
        cmp = compare(sim.truth.emitter(emitter).lifetime, fit, tolerances={"*tau*": "3%"})
        assert cmp.ok, (emitter, cmp.table())
        assert cmp.row("components[0].tau_ns").ok


def test_demo_photon_stage_writes_records_that_round_trip(tmp_path):
    from nanodomains.pipeline.demo import run_photons_stage

    out = run_photons_stage(tmp_path, 0, [])
    for row in out["emitters"]:
        e = row["emitter"]
        assert row["g2_0_ok"] and row["tau_ns_ok"], row
        g2 = G2Record.from_json(tmp_path / f"photons_{e}.g2.json")
        assert g2.tau_ns.size > 0 and g2.g2_0.value == row["g2_0"]
        assert G2Record.from_json(g2.to_json()) == g2
        tau = LifetimeRecord.from_json(tmp_path / f"photons_{e}.lifetime.json")
        assert tau.model.size == tau.counts.size > 0 and tau.tau_ns[0].value == row["tau_ns"]
        assert LifetimeRecord.from_json(tau.to_json()) == tau
        truth = load_record(tmp_path / f"photons_{e}.truth.json")
        assert isinstance(truth, PhotonTruth) and truth.g2.g2_0.value == row["g2_0_truth"]
        assert compare(truth.g2, g2).row("g2_0").truth == row["g2_0_truth"]
    # the model's lifetime (truth) is recovered; the seed's S14 value is reported beside it,
    # from the preset's stated numbers (the level model does not reproduce it: 0.21 vs 0.66 ns)
    assert row["paper_tau_ns"] == presets.preset("fig5d").stated["D1-X"]["lifetime_ns"]
    assert row["tau_ns"] == pytest.approx(row["tau_ns_truth"], rel=0.03)
    assert row["photons_from_emitter"] >= 0.95

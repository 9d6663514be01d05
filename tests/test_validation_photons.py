"""Photon analysis against the optical simulator's truth (issue 7 acceptance).

g2(0) within +-0.03 of the model's expected value at ~1e6 coincidence pairs, and
lifetimes within 3 % of the emitters' truth, through the PTU files the simulator writes.
"""

import numpy as np
import pytest

from nanodomains.optics import photons as ph
from nanodomains.optics import presets
from nanodomains.spectroscopy.g2 import compute_g2, compute_g2_file
from nanodomains.spectroscopy.lifetime import fit_tail, tcspc_histogram
from nanodomains.spectroscopy.photons_io import read_photons


def _stream(sim):
    from nanodomains.spectroscopy.photons_io import PhotonStream

    return PhotonStream(times_ps=sim.times_ps, channels=sim.channels, microtimes_ps=sim.microtimes_ps,
                        resolution_ps=sim.resolution_ps, sync_period_ps=sim.sync_period_ps,
                        duration_s=sim.duration_s, source="simulated")


@pytest.mark.parametrize("name, seed", [("fig4_doublet", 4), ("fig5d", 5)])
def test_pulsed_g2_zero_matches_truth_at_1e6_pairs(name, seed):
    duration = {"fig4_doublet": 120.0, "fig5d": 60.0}[name]
    efficiency = {"fig4_doublet": 0.22, "fig5d": 0.45}[name]
    sim = presets.photons_from(preset_name=name, mode="pulsed", seed=seed, duration_s=duration,
                               efficiency=efficiency, t3=True)
    g2 = compute_g2(_stream(sim), mode="pulsed", window_ns=500.0)
    pairs = int(np.sum(g2.counts))
    assert pairs >= 1e6, pairs
    assert abs(g2.g2_0 - sim.expected_g2_zero) <= 0.03
    assert abs(g2.g2_0 - sim.expected_g2_zero) <= 4 * g2.g2_0_err + 0.005


def test_ptu_round_trip_g2_and_lifetimes_within_3_percent(tmp_path):
    dyn, _ = presets.dynamics_from(None, "fig5d", seed=7, excitation="pulsed", duration_s=120.0)
    truth_tau = {e.id: e.lifetime_ns for e in dyn.emitters}
    for emitter, line in (("D0-X", None), ("D1-X", 1)):
        band = ph.line_filter(dyn, emitter, line=line, width_nm=0.1)
        sim = ph.simulate_photons(dyn, duration_s=20.0, seed=8, band_nm=band, t3=True,
                                  params=ph.PhotonParameters(mode="pulsed"),
                                  detectors=ph.Detectors(efficiency=0.05))
        path = tmp_path / f"{emitter}.ptu"
        ph.write_ptu(sim, path)
        stream = read_photons(path)
        assert stream.times_ps.size == sim.n_photons
        g2 = compute_g2_file(path, mode="pulsed")
        assert g2.g2_0 < 0.5  # a single-photon emitter (S13)
        decay = tcspc_histogram(stream, binning=8)
        peak = float(decay.time_ns[int(decay.counts.argmax())])
        fit = fit_tail(decay, n_exp=1, start_ns=peak + 0.2, stop_ns=peak + 6.0)
        assert fit.tau_ns[0] == pytest.approx(truth_tau[emitter], rel=0.03), emitter

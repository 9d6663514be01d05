"""`pl analyze` on spectra from other labs (../shared/realdata, reference values in its
README): frame timing from the files, laser and Raman lines, broad bands, static lines,
saturation. Every expectation is the README's, not this project's output."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import REALDATA

from nanodomains.cli import main
from nanodomains.records import PLEmitters
from nanodomains.spectroscopy.io import load_movie

pytestmark = pytest.mark.realdata
SPEC = REALDATA / "spectra"


def _analyze(path, tmp_path, *extra) -> PLEmitters:
    out = tmp_path / "out"
    assert main(["pl", "analyze", str(path), "--out", str(out), "--surrogates", "199", *extra]) == 0
    return PLEmitters.from_json(out / "emitters.json")


def _no_silent_emitters(res: PLEmitters):
    for e in res.emitters:
        assert e.on_time_s > 0 and math.isfinite(float(e.mean_counts)), e.id


def test_spe22_timing_and_laser_from_the_header():
    m = load_movie(SPEC / "spehandler_35frames_spe22.SPE")
    assert m.attrs["readout_s"] == pytest.approx(0.0827, abs=1e-4)  # README: 82.7 ms at offset 672
    assert m.attrs["exposure_s"] == 30.0
    assert np.diff(m["time"].values) == pytest.approx(30.0827, abs=1e-4)
    assert m.attrs["laser_nm"] == pytest.approx(636.3)  # README: laser ~636.38 nm, in the header


def test_spe22_laser_raman_and_band(tmp_path):
    res = _analyze(SPEC / "spehandler_35frames_spe22.SPE", tmp_path)
    _no_silent_emitters(res)
    # the laser line is not an emitter
    assert not any(abs(float(e.center_nm) - 636.38) < 2 for e in res.emitters)
    assert res.meta["dropped_detections"]["in_excluded_ranges"] >= 30
    # the Si Raman line (520.7 cm-1) near 658.1-658.2 nm: a Raman line, not an emitter
    raman = [o for o in res.meta["not_emitters"] if o["class"] == "raman"]
    assert len(raman) == 1 and 657.9 < raman[0]["center_nm"] < 658.3 and "Si" in raman[0]["reason"]
    assert not any(abs(float(e.center_nm) - 658.1) < 1 for e in res.emitters)
    # the broad emission is a band, not split into narrow emitters with fine structure
    assert res.meta["band"]["is_band"]
    assert not any(e.kind in ("doublet", "triplet") for e in res.emitters)
    assert not any(640 < float(e.center_nm) < 759 for e in res.emitters)
    assert all(c.verdict == "independent" for c in res.couplings)


def test_spe30_timing_and_band(tmp_path):
    m = load_movie(SPEC / "spehandler_Test100_spe30.spe")
    assert m.attrs["exposure_s"] == pytest.approx(1.0)  # README: ExposureTime 1000 ms
    assert m.attrs["frame_rate_hz"] == pytest.approx(0.99968, abs=1e-5)  # FrameRate 0.99968 Hz
    assert m["time"].values[-1] == pytest.approx(99 / 0.99968330033045549)
    res = _analyze(SPEC / "spehandler_Test100_spe30.spe", tmp_path)
    assert res.meta["time_units"] == "s" and "FrameRate" in res.meta["time_source"]
    assert res.meta["band"]["is_band"]
    assert not any(e.kind == "singlet" for e in res.emitters)
    _no_silent_emitters(res)


def test_sif_series_lines_are_static(tmp_path):
    res = _analyze(SPEC / "measurement.sif", tmp_path)
    assert res.frame_s == pytest.approx(3.0221)  # kinetic cycle time
    static = sorted(o["center_nm"] for o in res.meta["not_emitters"] if o["class"] == "static")
    # the five bright, evenly spaced narrow lines are present in every frame and do not move
    assert np.round(static, 0).tolist() == [533.0, 543.0, 550.0, 557.0, 564.0]
    for e in res.emitters:  # anything left behaves like an emitter: it wanders
        assert all(abs(float(e.center_nm) - s) > 1 for s in static)
    _no_silent_emitters(res)


def test_fullsms_saturated_spectra(tmp_path):
    path = REALDATA / "photons" / "fullsms_IRF_680nm.h5"
    m = load_movie(path)
    assert m.shape == (10, 512) and m.attrs["wavelength_flipped"] == 1  # descending axis flipped
    assert m["wavelength"].values[0] == pytest.approx(628.36, abs=0.01)
    res = _analyze(path, tmp_path)
    sat = res.meta["saturation"]
    assert sat["n_frames"] == 10 and sat["fraction_of_pixels"] > 0.9
    assert 16150 < min(sat["levels_counts"]) and max(sat["levels_counts"]) < 16250  # README: ~16,200
    assert any("saturated" in w for w in res.warnings)
    assert len(res.emitters) == 0


def test_single_spectrum_plots_as_a_spectrum(tmp_path):
    out = tmp_path / "one"
    assert main(["pl", "analyze", str(SPEC / "sifparser_Fe2O3_raman_785.sif"), "--out", str(out)]) == 0
    res = PLEmitters.from_json(out / "emitters.json")
    assert res.n_frames == 1 and res.meta["laser_nm"] == 785.0
    # the README's sharp hematite lines are found (as lines, with their Raman shifts)
    found = sorted(o["center_nm"] for o in res.meta["not_emitters"]) + [float(e.center_nm) for e in res.emitters]
    for ref in (803.580, 810.472, 816.298, 823.904):
        assert min(abs(np.array(found) - ref)) < 0.1
    import matplotlib.image as mpimg

    img = mpimg.imread(out / "overview.png")
    assert img.shape[1] > 1.8 * img.shape[0]  # one wide spectrum panel, not the time x wavelength grid

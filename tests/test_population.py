"""Populations (Table S2): one set vs several sets of peaks per NC, g2 and lifetimes."""

import json

import numpy as np
import pandas as pd
import pytest

from nanodomains.cli import main
from nanodomains.errors import FileFormatError
from nanodomains.optics import movies, presets
from nanodomains.spectroscopy.population import analyze_population, find_population


@pytest.fixture(scope="module")
def population_dir(tmp_path_factory):
    """Four NCs from the optics presets with their truth: 1, 1, 2 and 6 neutral sets."""
    d = tmp_path_factory.mktemp("pop")
    truth = {}
    for name in ("fig4_doublet", "fig4_triplet", "fig5d", "fig5c"):
        movie, t = presets.simulate_preset_movie(name, seed=2)
        movies.save_movie(movie, t, d / f"{name}.nc")
        (d / f"{name}.truth.json").unlink(missing_ok=True)  # not part of the population input
        truth[name] = sum(e.kind != "trion" and e.in_window is not False for e in t.emitters)
    sim = presets.photons_from(preset_name="fig4_doublet", mode="pulsed", seed=3, duration_s=5.0,
                               efficiency=0.05, t3=True)
    presets.write_photon_file(sim, d / "fig4_doublet.ptu")
    return d, truth, sim.expected_g2_zero


def test_sets_per_nc_match_truth(population_dir, tmp_path):
    d, truth, g2_expected = population_dir
    res = analyze_population(d)
    rows = {r["nc"]: r for r in res.rows}
    assert {k: rows[k]["n_sets"] for k in truth} == truth
    s = res.summary()
    assert s["several_sets"] == 2 and s["one_set"] == 2 and s["n_failed"] == 0
    # photons beside the movie give g2(0) with its uncertainty
    r = rows["fig4_doublet"]
    assert abs(r["g2_0"] - g2_expected) < 3 * r["g2_0_err"] + 0.02
    paths = res.write(tmp_path / "out")
    table = pd.read_csv(paths["emitters"])
    doublet = table[(table.nc == "fig4_doublet") & (table.kind == "doublet")]
    from nanodomains.optics.presets import preset

    truth_fss = preset("fig4_doublet").dynamics.emitters[0].fss_uev  # the model's, not the seed's 677
    assert abs(float(doublet.fss_uev.iloc[0]) - truth_fss) < 50
    assert json.loads(paths["summary"].read_text())["sets_per_nc"] == {"1": 2, "2": 1, "6": 1}


def test_bad_nc_is_reported_and_the_rest_go_on(population_dir, tmp_path):
    d, truth, _ = population_dir
    manifest = tmp_path / "m.csv"
    pd.DataFrame([{"nc": "good", "movie": str(d / "fig4_doublet.nc")},
                  {"nc": "bad", "movie": str(tmp_path / "missing.sif")}]).to_csv(manifest, index=False)
    res = analyze_population(manifest)
    status = {r["nc"]: r["status"] for r in res.rows}
    assert status == {"good": "ok", "bad": "error"}
    assert "missing.sif" in [r for r in res.rows if r["nc"] == "bad"][0]["error"]


def test_cli_population(population_dir, tmp_path, capsys):
    d, _, _ = population_dir
    assert main(["pl", "population", str(d), "--out", str(tmp_path / "o")]) == 0
    assert "2 with several sets" in capsys.readouterr().out
    assert (tmp_path / "o" / "population.png").stat().st_size > 0


def test_bad_sources(tmp_path):
    with pytest.raises(FileFormatError, match="no movie files"):
        find_population(tmp_path)
    with pytest.raises(FileFormatError, match="no such folder"):
        find_population(tmp_path / "nope")
    (tmp_path / "m.csv").write_text("nc,photons\na,x.ptu\n")
    with pytest.raises(FileFormatError, match="no 'movie'"):
        find_population(tmp_path / "m.csv")
    assert main(["pl", "population", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2

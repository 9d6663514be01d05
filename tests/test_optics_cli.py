"""CLI: nanodomains pl simulate and nanodomains photons simulate."""

import json

import numpy as np
import ptufile
import pytest

from nanodomains.cli import main
from nanodomains.records import PLEmitters
from nanodomains.spectroscopy.io import load_movie
from nanodomains.records import PhotonTruth
from nanodomains.timetags import read_photons
from nanodomains.structure import paper_fig1


def test_pl_simulate_preset_writes_movie_truth_and_figure(tmp_path):
    out = tmp_path / "movie.nc"
    rc = main(["pl", "simulate", "--preset", "fig5c", "--out", str(out), "--seed", "1",
               "--figure", str(tmp_path / "fig.png")])
    assert rc == 0
    movie = load_movie(out)
    assert movie.shape == (120, 1340)
    truth = PLEmitters.from_json(tmp_path / "movie.truth.json")
    assert truth.origin == "truth" and truth.preset["name"] == "fig5c"
    assert sorted(round(e.center_nm.value, 2) for e in truth.emitters) == [670.8, 673.9, 677.1, 680.3, 683.4, 686.6]
    assert (tmp_path / "fig.png").stat().st_size > 10_000


def test_pl_simulate_nc_json_is_reproducible(tmp_path):
    nc = tmp_path / "nc.json"
    paper_fig1().to_json(nc)
    for name in ("a.nc", "b.nc"):
        assert main(["pl", "simulate", str(nc), "--out", str(tmp_path / name), "--seed", "3",
                     "--frames", "30", "--frame-s", "0.5"]) == 0
    a, b = load_movie(tmp_path / "a.nc"), load_movie(tmp_path / "b.nc")
    assert a.shape == (30, 1340) and np.array_equal(a.values, b.values)
    assert a["time"].values[1] == pytest.approx(0.5)
    truth = PLEmitters.from_json(tmp_path / "a.truth.json")
    assert len(truth.dynamics["domains"]) == 5
    assert truth.settings["seeds"]["seed"] == 3 and "movie_noise" in truth.settings["seeds"]["streams"]


def test_photons_simulate_ptu_and_npz(tmp_path):
    ptu = tmp_path / "tags.ptu"
    assert main(["photons", "simulate", "--preset", "fig5d", "--mode", "pulsed", "--out", str(ptu),
                 "--duration-s", "2", "--efficiency", "0.05"]) == 0
    with ptufile.PtuFile(ptu) as f:
        assert f.is_t3
    s = read_photons(ptu)
    truth = PhotonTruth.from_json(tmp_path / "tags.truth.json")
    assert s.n_photons > 1000 and 0 < truth.g2.g2_0.value < 1 and truth.g2.origin == "truth"
    assert truth.source == "fig5d" and truth.dynamics is not None
    assert truth.emitter("D0-X").lifetime.tau_ns[0].stderr == 0
    npz = tmp_path / "cw.npz"
    assert main(["photons", "simulate", "--preset", "fig4_doublet", "--mode", "cw", "--out", str(npz),
                 "--duration-s", "1", "--emitter", "D0-X"]) == 0
    s = read_photons(npz)
    assert s.microtimes_ps is None and s.n_photons > 100
    t2 = tmp_path / "t2.ptu"
    assert main(["photons", "simulate", "--preset", "fig4_triplet", "--out", str(t2), "--duration-s", "1", "--t2"]) == 0
    with ptufile.PtuFile(t2) as f:
        assert not f.is_t3


@pytest.mark.parametrize("args", [
    ["pl", "simulate", "--preset", "fig9", "--out", "x.nc"],
    ["pl", "simulate", "--out", "x.nc"],
    ["pl", "simulate", "--preset", "fig5c", "--frame-s", "0", "--out", "x.nc"],
    ["pl", "simulate", "--preset", "fig5c", "--frame-s", "nan", "--out", "x.nc"],
    ["pl", "simulate", "--preset", "fig5c", "--out", "x.txt"],
    ["photons", "simulate", "--preset", "fig5d", "--mode", "ttl", "--out", "x.ptu"],
    ["photons", "simulate", "--preset", "fig5d", "--out", "x.csv"],
    ["photons", "simulate", "--preset", "fig5d", "--out", "x.ptu", "--duration-s", "-1"],
    ["photons", "simulate", "--preset", "fig5d", "--out", "x.ptu", "--emitter", "D9-X"],
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, args, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert list(tmp_path.iterdir()) == []


def test_nc_json_and_preset_together_is_an_error(tmp_path):
    nc = tmp_path / "nc.json"
    paper_fig1().to_json(nc)
    assert main(["pl", "simulate", str(nc), "--preset", "fig5c", "--out", str(tmp_path / "x.nc")]) == 2
    assert not (tmp_path / "x.nc").exists()

"""CLI: `nanodomains grow` and `nanodomains migrate` (files written, summaries, bad input)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nanodomains.cli import main
from nanodomains.migration.analysis import TRAJECTORY_TOLERANCES, summarize_trajectory
from nanodomains.records import GrowthPopulationSummary, MigrationSummary, compare
from nanodomains.structure.population import POPULATION_TOLERANCES, summarize_crystals
from nanodomains.structure import SHIFT_RP, Domain, NanoCrystal, Region, homogeneous, paper_fig1


def test_grow_writes_population_and_summary(tmp_path):
    out = tmp_path / "pop"
    assert main(["grow", "--nominal", "CsPbBr1.2I1.8", "--crystals", "130", "--seed", "1", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    lines = (out / "population.jsonl").read_text().splitlines()
    assert summary["schema"] == "nanodomains.growth.population/1" and summary["settings"]["seed"] == 1
    assert len(lines) == 130 and summary["n_crystals"] == 130
    n_domains = [len(NanoCrystal.from_json(line).domains) for line in lines]
    assert summary["multi_domain_fraction"]["value"] == pytest.approx(np.mean(np.array(n_domains) > 1))
    assert summary["multi_domain_fraction"]["stderr"] > 0
    assert {int(k): v for k, v in summary["domains_per_nc"].items()} == \
        dict(zip(*np.unique(n_domains, return_counts=True)))
    for key in ("nc_br_fraction", "domain_br_fraction", "within_nc_br_spread"):
        assert key in summary["composition"]
    # the record round-trips, and the analysis of the written models agrees with it
    truth = GrowthPopulationSummary.from_json(out / "summary.json")
    assert compare(truth, summarize_crystals(out / "population.jsonl"), tolerances=POPULATION_TOLERANCES).ok


def test_migrate_writes_trajectory_summary_and_figure(tmp_path):
    import xarray as xr

    model = tmp_path / "nc.json"
    paper_fig1().to_json(model)
    out = tmp_path / "run"
    args = ["migrate", str(model), "--temperature-k", "500", "--time-ns", "10", "--vacancies", "2",
            "--seed", "1", "--barriers", "literature", "--rp-barrier", "closed", "--out", str(out)]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schema"] == "nanodomains.migration.summary/1" and summary["settings"]["seed"] == 1
    assert summary["hops"] > 0 and summary["boundary_crossings"]["rp"] == 0
    assert 3.0 < summary["mean_hop_time_ps"]["value"] < 30.0 and summary["mean_hop_time_ps"]["stderr"] > 0
    with xr.open_dataset(out / "trajectory.nc", engine="h5netcdf") as ds:
        assert ds.sizes["hop"] == summary["hops"] and ds.sizes["vacancy"] == 2
    assert (out / "paths.png").stat().st_size > 10_000
    truth = MigrationSummary.from_json(out / "summary.json")
    assert truth.to_dict() == summary
    assert compare(truth, summarize_trajectory(out / "trajectory.nc"), tolerances=TRAJECTORY_TOLERANCES).ok
    # the RP barrier option opens the faults
    small = tmp_path / "small.json"
    NanoCrystal(edges_nm=(5, 5, 5), nominal_formula="CsPbBr1.2I1.8", seed=1, domains=[
        Domain(id=0, br_fraction=0.27, region=Region(lo_nm=(0, 0, 0), hi_nm=(2.5, 5, 5))),
        Domain(id=1, br_fraction=0.52, shift=SHIFT_RP, region=Region(lo_nm=(2.5, 0, 0), hi_nm=(5, 5, 5)))
    ]).to_json(small)
    assert main(["migrate", str(small), "--time-ns", "5", "--vacancy-fraction", "0.01", "--barriers", "literature",
                 "--rp-barrier", "bulk", "--frames", "5", "--out", str(tmp_path / "open")]) == 0
    opened = json.loads((tmp_path / "open" / "summary.json").read_text())
    assert opened["boundary_crossings"]["rp"] > 0


@pytest.mark.parametrize("args, message", [
    (["--temperature-k", "-5"], "temperature_k"),
    (["--vacancies", "0"], "vacancies"),
    (["--vacancies", "100000"], "do not fit"),
    (["--barriers", "literature", "--rp-barrier", "open"], "rp-barrier"),
    (["--time-ns", "0"], "time_ns"),
])
def test_migrate_bad_input(tmp_path, capsys, args, message):
    model = tmp_path / "nc.json"
    homogeneous(3.0, seed=1).to_json(model)
    out = tmp_path / "bad"
    if "--barriers" not in args:
        args = [*args, "--barriers", "literature"]
    assert main(["migrate", str(model), "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_migrate_unknown_model_and_grow_bad_input(tmp_path, capsys):
    assert main(["migrate", str(tmp_path / "missing.json"), "--out", str(tmp_path / "x")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["grow", "--nominal", "CsPbCl3", "--out", str(tmp_path / "y")]) == 2
    assert "Cl" in capsys.readouterr().err
    assert main(["grow", "--crystals", "0", "--out", str(tmp_path / "z")]) == 2
    assert not (tmp_path / "y").exists() and not (tmp_path / "z").exists()


def test_migrate_on_a_barrier_table_file(tmp_path, capsys):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from _barrier_fixture import table

    small = tmp_path / "small.json"
    NanoCrystal(edges_nm=(4, 4, 4), nominal_formula="CsPbBr1.2I1.8", seed=1, domains=[
        Domain(id=0, br_fraction=0.27, region=Region(lo_nm=(0, 0, 0), hi_nm=(2, 4, 4))),
        Domain(id=1, br_fraction=0.52, shift=SHIFT_RP, region=Region(lo_nm=(2, 0, 0), hi_nm=(4, 4, 4)))
    ]).to_json(small)
    sites = [("Br", 0.15, -0.05), ("Br", 1.0, 0.0), ("I", 0.15, -0.05), ("I", 1.0, 0.0)]
    tab = tmp_path / "barriers.json"
    table(site_energies=sites).to_json(tab)
    assert main(["migrate", str(small), "--time-ns", "2", "--vacancy-fraction", "0.01", "--barriers", str(tab),
                 "--frames", "5", "--out", str(tmp_path / "t")]) == 0
    s = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert s["boundary_crossings"]["rp"] > 0 and s["settings"]["landscape"]["attempt_frequency"].startswith("harm")
    bad = tmp_path / "bad.json"
    table(site_energies=sites, skip=[("surface", "Br")]).to_json(bad)
    assert main(["migrate", str(small), "--barriers", str(bad), "--out", str(tmp_path / "b")]) == 2
    assert "surface/Br" in capsys.readouterr().err and not (tmp_path / "b").exists()
    # a table without harmonic-TST frequencies: an error naming the option, which then fills them from bulk
    no_nu = tmp_path / "no_nu.json"
    tab_obj = table(site_energies=sites)
    tab_obj.model_copy(update={"paths": tuple(
        p.model_copy(update={"attempt_frequency_thz": None}) if p.environment != "bulk"
        else p.model_copy(update={"local_br_fraction": 1.0 if p.halide == "Br" else 0.0})  # pure-bulk paths
        for p in tab_obj.paths)}).to_json(no_nu)
    assert main(["migrate", str(small), "--barriers", str(no_nu), "--out", str(tmp_path / "n")]) == 2
    assert "--missing-attempt-frequency" in capsys.readouterr().err and not (tmp_path / "n").exists()
    assert main(["migrate", str(small), "--barriers", str(no_nu), "--missing-attempt-frequency", "bulk", "--time-ns",
                 "0.5", "--frames", "3", "--out", str(tmp_path / "m")]) == 0
    s = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert s["settings"]["landscape"]["attempt_frequency_substituted_thz"]

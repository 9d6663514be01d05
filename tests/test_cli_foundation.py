"""CLI: build, describe, demo; errors print one line, exit non-zero, write nothing."""

import json

import pytest

from nanodomains.cli import main
from nanodomains.structure import NanoCrystal


def test_build_describe_round_trip(tmp_path, capsys):
    out, xyz = tmp_path / "nc.json", tmp_path / "nc.extxyz"
    rc = main(["build", "--composition", "CsPbBr1.2I1.8", "--edge-nm", "10", "--domains", "3",
               "--seed", "1", "--out", str(out), "--xyz", str(xyz)])
    assert rc == 0
    nc = NanoCrystal.from_json(out)
    assert len(nc.domains) == 3 and nc.seed == 1
    from ase.io import read

    atoms = read(xyz)
    assert set(atoms.arrays) >= {"domain", "site"}
    assert main(["describe", str(out)]) == 0
    text = capsys.readouterr().out
    assert "boundaries" in text and "RP" in text


def test_build_preset(tmp_path):
    out = tmp_path / "fig1.json"
    assert main(["build", "--preset", "paper_fig1", "--out", str(out)]) == 0
    raw = json.loads(out.read_text())
    assert [d["formula"] for d in raw["domains"]][:2] == ["CsPbBr0.81I2.19", "CsPbBr1.56I1.44"]


@pytest.mark.parametrize("args, fragment", [
    (["--composition", "CsPbCl3"], "unknown element"),
    (["--edge-nm", "0"], "edge"),
    (["--edge-nm", "-4"], "edge"),
    (["--edge-nm", "5", "--domains", "30"], "do not fit"),
    (["--preset", "nope"], "unknown preset"),
])
def test_build_bad_input_writes_nothing(tmp_path, capsys, args, fragment):
    out = tmp_path / "nc.json"
    rc = main(["build", "--out", str(out), *args])
    err = capsys.readouterr().err
    assert rc != 0
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_describe_missing_file(tmp_path, capsys):
    assert main(["describe", str(tmp_path / "none.json")]) == 2
    assert "not found" in capsys.readouterr().err


def test_demo_writes_fig1_model(tmp_path):
    assert main(["demo", "--out", str(tmp_path), "--crystals", "60"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    rows = {r["quantity"]: r for r in summary["comparisons"]}
    # RP crossings on the computed across-fault barrier: the kMC's result, whatever it is
    assert rows["migration 500 K: boundary_crossings.rp"]["value"] >= 0
    mig = summary["stages"]["migration"]
    assert mig["landscape"]["kind"] == "tabulated" and mig["equalisation_300k_s"] > mig["equalisation_433k_s"] > 0
    assert rows["migration 500 K: boundary_crossings.rp"]["paper"] == 0
    assert rows["migration control (RP open): boundary_crossings.rp"]["value"] > 0
    hop = rows["migration 500 K: mean_hop_time_ps"]
    assert 3 < hop["value"] < 30 and hop["paper"] == 10.0 and hop["error"] > 0  # seed: ~10 ps
    assert hop["truth"] == pytest.approx(hop["value"]) and hop["ok"]
    assert summary["stages"]["growth"]["n_crystals"] == 60
    assert rows["growth population: multi_domain_fraction"]["ok"]
    for stage in ("growth", "migration"):
        assert summary["stages"][stage]["compare_ok"], summary["stages"][stage]["compare_failures"]
    # the demo writes the same record schemas as `grow` and `migrate`, and they round-trip
    from nanodomains.records import GrowthPopulationSummary, MigrationSummary

    for name, kind in (("growth_summary.json", GrowthPopulationSummary), ("migration_summary.json", MigrationSummary),
                       ("migration_control_summary.json", MigrationSummary)):
        raw = json.loads((tmp_path / name).read_text())
        assert raw["schema"] == kind.SCHEMA and raw["origin"] == "truth"
        assert kind.from_json(tmp_path / name).to_dict() == raw
    assert (tmp_path / "report.html").is_file() and (tmp_path / "population.jsonl").is_file()
    fig1 = summary["stages"]["structure"]["paper_fig1"]
    assert [d["name"] for d in fig1["domains"]] == ["R1", "R2", "R3", "R4", "R5"]
    assert NanoCrystal.from_json(tmp_path / "nc_paper_fig1.json").domains[0].formula == "CsPbBr0.81I2.19"


def test_demo_rejects_bad_crystal_count(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--crystals", "0"]) == 2
    assert "--crystals" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()

"""CLI: stem simulate / stem table / eds simulate write their files; bad input exits 2 and writes nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nanodomains.cli import main
from nanodomains.structure import homogeneous, paper_fig1


@pytest.fixture()
def model(tmp_path):
    p = tmp_path / "nc.json"
    paper_fig1(seed=1).to_json(p)
    return p


def test_stem_simulate_writes_calibrated_tif_and_truth(tmp_path, model):
    out = tmp_path / "img.tif"
    rc = main(["stem", "simulate", str(model), "--out", str(out), "--dose", "1e5", "--pixel-pm", "25",
               "--rotation-deg", "5", "--seed", "2"])
    assert rc == 0
    truth = json.loads((tmp_path / "img.truth.json").read_text())
    assert truth["pixel_size_pm"] == 25.0 and truth["method"] == "incoherent"
    from nanodomains.stem.io import load_image

    img = load_image(out)
    assert img.attrs["pixel_size_pm"] == pytest.approx(25.0)
    assert list(img.shape) == truth["shape"]
    # ImageJ calibration is readable by tifffile too
    import tifffile

    with tifffile.TiffFile(out) as tf:
        assert tf.imagej_metadata["unit"] == "nm"


def test_stem_simulate_other_formats_and_options(tmp_path, model):
    out = tmp_path / "img.nc"
    rc = main(["stem", "simulate", str(model), "--out", str(out), "--size-px", "300", "--jitter-pm", "5",
               "--drift-pm-per-line", "0.1", "0.0", "--support-nm", "0"])
    assert rc == 0
    import xarray as xr

    da = xr.load_dataarray(out, engine="h5netcdf")
    assert da.shape == (300, 300) and da.attrs["line_jitter_pm"] == 5.0
    assert (tmp_path / "img.truth.json").is_file()


def test_stem_table_power_law(tmp_path):
    out = tmp_path / "table.nc"
    assert main(["stem", "table", "--out", str(out), "--br", "0,0.27,1", "--shifted", "0,0.88",
                 "--cells", "24"]) == 0
    from nanodomains.stem.tables import column_ratios, load_table

    t = load_table(out)
    assert t.sizes["br_fraction"] == 3 and t.attrs["method"] == "power_law"
    r = float(column_ratios(t)["cs_pbx"].sel(br_fraction=0.27, shifted_fraction=0.88).squeeze())
    assert r > 1  # mostly shifted: the Cs site holds Pb + X


def test_eds_simulate(tmp_path, model):
    out = tmp_path / "eds.nc"
    assert main(["eds", "simulate", str(model), "--out", str(out), "--pixel-pm", "100", "--seed", "3"]) == 0
    from nanodomains.stem.eds import load_eds

    maps = load_eds(out)
    assert set(maps.data_vars) == {"Br_K", "I_L"}
    assert int(maps["I_L"].sum()) > int(maps["Br_K"].sum()) > 0
    assert (tmp_path / "eds.truth.json").is_file()


@pytest.mark.parametrize("args, match", [
    (["stem", "simulate", "{missing}", "--out", "{out}/a.tif"], "not found"),
    (["stem", "simulate", "{bad}", "--out", "{out}/a.tif"], "not valid JSON"),
    (["stem", "simulate", "{invalid}", "--out", "{out}/a.tif"], "invalid NC model"),
    (["stem", "simulate", "{model}", "--out", "{out}/a.tif", "--dose", "0"], "dose"),
    (["stem", "simulate", "{model}", "--out", "{out}/a.tif", "--dose", "-3"], "dose"),
    (["stem", "simulate", "{model}", "--out", "{out}/a.tif", "--pixel-pm", "180"], "quarter"),
    (["stem", "simulate", "{model}", "--out", "{out}/a.png"], ".tif"),
    (["stem", "simulate", "{model}", "--out", "{out}/a.tif", "--method", "magic"], "method"),
    (["stem", "simulate", "{model}", "--out", "{out}/a.tif", "--method", "multislice"], "FFT points"),
    (["stem", "simulate", "{model}", "--out", "{out}/a.tif", "--method", "multislice", "--rotation-deg", "3"],
     "incoherent only"),
    (["stem", "table", "--out", "{out}/t.nc", "--br", "0,x"], "comma-separated"),
    (["stem", "table", "--out", "{out}/t.nc", "--method", "multislice", "--shifted", "0.3", "--cells", "8"],
     "whole cells"),
    (["stem", "table", "--out", "{out}/t.txt"], "netCDF"),
    (["eds", "simulate", "{model}", "--out", "{out}/e.nc", "--dose", "0"], "dose"),
    (["eds", "simulate", "{missing}", "--out", "{out}/e.nc"], "not found"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, model, capsys, args, match):
    out = tmp_path / "out"
    out.mkdir()
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"edges_nm": [15, 15, -1], "nominal_formula": "CsPbI3", "domains": []}))
    fmt = {"model": model, "missing": tmp_path / "nope.json", "bad": bad, "invalid": invalid, "out": out}
    rc = main([a.format(**{k: str(v) for k, v in fmt.items()}) for a in args])
    assert rc == 2
    assert match in capsys.readouterr().err
    assert list(out.iterdir()) == []


@pytest.mark.slow
def test_multislice_cli_on_tiny_region(tmp_path):
    """--method multislice runs abTEM on a small region (frozen phonons) and writes image + truth."""
    nc = homogeneous(1.3, "CsPbI3", seed=1)
    p = tmp_path / "tiny.json"
    nc.to_json(p)
    # the default HAADF settings (0.034 A) on a 0.3 x 0.3 nm region, 8 x 8 positions of 40 pm
    out = tmp_path / "ms.tif"
    rc = main(["stem", "simulate", str(p), "--out", str(out), "--method", "multislice", "--pixel-pm", "40",
               "--region-nm", "0.3,0.3,0.62,0.62", "--dose", "1e6"])
    assert rc == 0
    truth = json.loads((tmp_path / "ms.truth.json").read_text())
    assert truth["method"] == "multislice" and truth["simulation"]["num_configs"] == 8
    from nanodomains.stem.io import load_image

    img = load_image(out)
    assert img.shape == (8, 8) and np.all(np.isfinite(img.values))


def test_demo_stem_stage_writes_the_same_record_and_rows_from_compare(tmp_path):
    """The demo's domains.json is the CLI's record type; its rows come from compare() (no renames)."""
    from nanodomains.pipeline.demo import run_stem_stage
    from nanodomains.records import StemDomains, StemValidation

    sections = []
    out = run_stem_stage(tmp_path, 0, sections)
    for name in ("paper_fig1", "homogeneous"):
        rec = StemDomains.from_json(tmp_path / f"stem_{name}" / "domains.json")
        assert rec.SCHEMA == "nanodomains.stem.domains/4" and rec.domains
        val = StemValidation.from_json(tmp_path / f"stem_{name}" / "validation.json")
        assert val.n_domains_found == len(rec.domains) == out["images"][name]["domains_found"]
        assert out["images"][name]["rp_found"] == out["images"][name]["rp_truth"]
        assert out["images"][name]["fields_ok"], out["images"][name]["fields_failed"]
    assert out["images"]["paper_fig1"]["rp_truth"] == 4 and out["images"]["homogeneous"]["rp_truth"] == 0
    for row in out["domains"]:
        for f in ("lattice_pm", "br_fraction"):
            assert row[f] is not None and row[f + "_truth"] is not None and row[f + "_ok"]
    assert any(c["quantity"].startswith("STEM R1") and c["paper"] == 0.27 for c in out["comparisons"])

"""Batch runner: mixed items, corrupt files reported, atomic results, reruns skip work."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import REALDATA

from nanodomains.cli import main
from nanodomains.errors import FileFormatError, InputError
from nanodomains.pipeline.batch import read_manifest, run_batch
from nanodomains.timetags import PhotonStream, write_photons_npz
from nanodomains.structure import random_domains


def _cw_stream(seed: int, rate_hz: float = 2e4, duration_s: float = 1.0) -> PhotonStream:
    rng = np.random.default_rng(seed)
    n = rng.poisson(rate_hz * duration_s)
    times = np.sort(rng.integers(0, int(duration_s * 1e12), n)).astype(np.int64)
    return PhotonStream(times_ps=times, channels=rng.integers(0, 2, n).astype(np.uint8),
                        resolution_ps=1.0, duration_s=duration_s, source=f"cw{seed}")


@pytest.fixture
def mixed_manifest(tmp_path):
    """20 items: 12 NC models, 6 CW photon streams, 2 corrupt files."""
    rows = []
    for i in range(12):
        random_domains(8.0, n_domains=1 + i % 3, seed=i).to_json(tmp_path / f"nc{i}.json")
        rows.append({"id": f"nc{i}", "path": f"nc{i}.json"})
    for i in range(6):
        write_photons_npz(_cw_stream(i), tmp_path / f"cw{i}.npz")
        rows.append({"id": f"cw{i}", "path": f"cw{i}.npz", "mode": "cw", "window_ns": 50.0})
    (tmp_path / "broken.json").write_text('{"edges_nm": [5, 5')
    rows.append({"id": "broken_nc", "path": "broken.json"})
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    rows.append({"id": "broken_npz", "path": "broken.npz"})
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def test_mixed_batch_reports_errors_and_reruns_only_deleted(tmp_path, mixed_manifest):
    out = tmp_path / "out"
    seen = []
    records = run_batch(mixed_manifest, out, workers=0, progress=seen.append)
    assert len(records) == 20 and len(seen) == 20
    status = {r["id"]: r["status"] for r in records}
    assert [k for k, v in status.items() if v == "error"] == ["broken_nc", "broken_npz"]
    errors = {r["id"]: r for r in records if r["status"] == "error"}
    assert "broken.json" in errors["broken_nc"]["error"]
    # CW Poisson streams: g2 ~ 1 within its stated uncertainty
    for r in records:
        if r["id"].startswith("cw"):
            res = r["results"]
            assert abs(res["g2_0"] - 1) < 4 * res["g2_0_err"] + 0.05
    table = pd.read_parquet(out / "batch.parquet")
    assert len(table) == 20 and set(table.status) == {"ok", "error"}
    html = (out / "report.html").read_text()
    assert "broken_npz" in html and "<table" in html
    # rerun after deleting one result: only that item runs
    stamps = {p: p.stat().st_mtime_ns for p in (out / "items").glob("*/result.json")}
    victim = out / "items" / "cw3" / "result.json"
    victim.unlink()
    seen.clear()
    run_batch(mixed_manifest, out, workers=0, progress=seen.append)
    assert [r["id"] for r in seen] == ["cw3"]
    assert victim.is_file()
    for p, t in stamps.items():
        if p != victim:
            assert p.stat().st_mtime_ns == t
    # failed items are retried only on request
    seen.clear()
    run_batch(mixed_manifest, out, workers=0, progress=seen.append, retry_failed=True)
    assert sorted(r["id"] for r in seen) == ["broken_nc", "broken_npz"]


def test_batch_on_local_dask_cluster(tmp_path, mixed_manifest):
    out = tmp_path / "dask"
    records = run_batch(mixed_manifest, out, workers=2)
    assert sum(r["status"] == "ok" for r in records) == 18
    # no temporary folders left behind
    assert not list((out / "items").glob(".*tmp*"))


def test_yaml_manifest_and_cli(tmp_path, capsys):
    random_domains(8.0, n_domains=2, seed=1).to_json(tmp_path / "a.json")
    (tmp_path / "m.yaml").write_text("items:\n  - path: a.json\n    id: first\n")
    assert main(["batch", str(tmp_path / "m.yaml"), "--out", str(tmp_path / "o"), "--workers", "0"]) == 0
    rec = json.loads((tmp_path / "o" / "items" / "first" / "result.json").read_text())
    assert rec["results"]["n_domains"] == 2
    assert "1 ok, 0 failed" in capsys.readouterr().out


@pytest.mark.realdata
def test_real_files_in_batch(tmp_path):
    manifest = tmp_path / "m.csv"
    pd.DataFrame([
        {"id": "picoharp", "path": str(REALDATA / "photons" / "picoharp_v30_t2.ptu"), "mode": "cw"},
        {"id": "decay", "kind": "photons_lifetime", "path": str(REALDATA / "decay" / "Decaytrace1"),
         "irf": str(REALDATA / "decay" / "IRF_data.txt")},
        # legacy formats get their kind from the extension too (type still decided by the bytes)
        {"id": "ht3", "path": str(REALDATA / "photons" / "pqsample_hydraharp_v20.ht3"), "mode": "cw"},
        {"id": "phd", "path": str(REALDATA / "decay" / "pqsample_picoharp_v20.phd")},
    ]).to_csv(manifest, index=False)
    records = run_batch(manifest, tmp_path / "o", workers=0)
    assert [r["status"] for r in records] == ["ok"] * 4, records
    assert [r["kind"] for r in records] == ["photons_g2", "photons_lifetime", "photons_g2", "photons_lifetime"]


def test_bad_manifests(tmp_path):
    with pytest.raises(FileFormatError, match="not found"):
        read_manifest(tmp_path / "none.csv")
    (tmp_path / "empty.csv").write_text("id,path\n")
    with pytest.raises(FileFormatError, match="no items"):
        read_manifest(tmp_path / "empty.csv")
    (tmp_path / "unknown.csv").write_text("path\nimage.xyz\n")
    with pytest.raises(InputError, match="unknown kind"):
        read_manifest(tmp_path / "unknown.csv")
    (tmp_path / "dup.csv").write_text("id,path\na,x.json\na,y.json\n")
    with pytest.raises(InputError, match="duplicate"):
        read_manifest(tmp_path / "dup.csv")
    assert main(["batch", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o")]) == 2


def test_stem_images_in_batch(tmp_path):
    from nanodomains.stem.simulate import simulate_image, write_simulation
    from nanodomains.structure import homogeneous

    write_simulation(simulate_image(homogeneous(6.0, seed=1), pixel_size_pm=25.0, seed=2), tmp_path / "a.tif")
    (tmp_path / "broken.tif").write_bytes(b"II*\x00 truncated")
    manifest = tmp_path / "m.csv"
    pd.DataFrame([{"id": "ok", "path": "a.tif"}, {"id": "bad", "path": "broken.tif"}]).to_csv(manifest, index=False)
    records = {r["id"]: r for r in run_batch(manifest, tmp_path / "o", workers=0)}
    assert records["ok"]["status"] == "ok", records["ok"]
    assert records["ok"]["results"]["n_domains"] == 1 and records["ok"]["results"]["n_rp_boundaries"] == 0
    assert records["bad"]["status"] == "error" and "broken.tif" in records["bad"]["error"]


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path):
    random_domains(8.0, n_domains=2, seed=1).to_json(tmp_path / "a.json")
    pd.DataFrame([{"id": "a", "path": "a.json"}]).to_csv(tmp_path / "m.csv", index=False)
    out = tmp_path / "o"
    # what a run killed mid-way leaves: a half item folder, a half error file, a half table,
    # an old folder being replaced
    (out / "items" / ".a.tmp-99999").mkdir(parents=True)
    (out / "items" / ".a.tmp-99999" / "partial.json").write_text("{")
    (out / "items" / ".b.error.tmp-99999.json").write_text("{")
    (out / ".batch.tmp-99999.parquet").write_bytes(b"PAR1")
    (out / "items" / ".c.old-99999").mkdir()
    records = run_batch(tmp_path / "m.csv", out, workers=0)
    assert [r["status"] for r in records] == ["ok"]
    # temporaries are gone; the old folder of an interrupted swap (its item 'c' missing)
    # is put back rather than deleted, and the run manifest says it is not in this manifest
    assert sorted(p.name for p in (out / "items").iterdir()) == ["a", "c"]
    assert not [p for p in out.rglob(".*") if p.name != ".nanodomains.lock"]
    assert json.loads((out / "run.json").read_text())["items_not_in_manifest"] == ["c"]
    assert sorted(p.name for p in out.iterdir()) == [".nanodomains.lock", "batch.parquet", "items", "report.html",
                                                     "run.json"]


def test_failed_item_leaves_no_folder(tmp_path):
    (tmp_path / "broken.json").write_text('{"edges_nm": [5, 5')
    pd.DataFrame([{"id": "bad", "path": "broken.json"}]).to_csv(tmp_path / "m.csv", index=False)
    run_batch(tmp_path / "m.csv", tmp_path / "o", workers=0)
    assert sorted(p.name for p in (tmp_path / "o" / "items").iterdir()) == ["bad.error.json"]
    rec = json.loads((tmp_path / "o" / "items" / "bad.error.json").read_text())
    assert rec["status"] == "error" and "broken.json" in rec["error"] and "results" not in rec

"""`nanodomains pl analyze`: synthetic truth recovery through the files it writes, the
real SIF series, and bad input."""

from __future__ import annotations

import csv
import json
from conftest import REALDATA

import numpy as np
import pytest

from nanodomains.cli import main
from nanodomains.records import PLEmitters, compare
from nanodomains.spectroscopy.io import save_movie
from nanodomains.testing.pl import fig4_like

REAL = REALDATA / "spectra"


def _match(found, truth: list[dict]) -> dict:
    """Truth id -> found emitter of the same kind nearest in centre (within 0.1 nm)."""
    out = {}
    for t in truth:
        cands = [f for f in found if f.kind == t["kind"] and abs(f.center_nm.value - t["center_nm"]) < 0.1]
        assert cands, f"truth emitter {t['id']} ({t['kind']} at {t['center_nm']} nm) not found"
        out[t["id"]] = min(cands, key=lambda f: abs(f.center_nm.value - t["center_nm"]))
    return out


def _edges(intervals):
    return sorted(x for iv in intervals for x in iv)


def _check_against_truth(res: PLEmitters, truth: dict, frame_s: float = 1.0):
    found = res.emitters
    assert len(found) == len(truth["emitters"])
    m = _match(found, truth["emitters"])
    pos_err = []
    for t in truth["emitters"]:
        f = m[t["id"]]
        on = truth["frames"]["on"][t["id"]]
        # the truth lines move by spectral diffusion: compare with their median over on-frames
        true_lines = np.median(truth["frames"]["lines_nm"][t["id"]][on], axis=0)
        pos_err += list(np.abs(np.array(f.lines_nm) - true_lines))
        assert all(0 < line.center_nm.stderr < 0.05 for line in f.lines)
        if t["kind"] in ("doublet", "triplet"):
            assert abs(f.fss_uev.value - t["fss_uev"]) <= 50
            assert 0 < f.fss_uev.stderr < 50
        # on/off and charge switches within 2 frames
        te, fe = _edges(t["intervals_s"]), _edges(f.intervals_s)
        assert len(te) == len(fe), (t["id"], t["intervals_s"], f.intervals_s)
        assert np.max(np.abs(np.array(te) - np.array(fe))) <= 2 * frame_s
    assert np.median(pos_err) <= 0.02
    trion = next(f for f in found if f.kind == "trion")
    neutral = res.emitter(trion.trion_of)
    assert trion.state == "X*" and neutral.state == "X"
    assert abs(neutral.center_nm.value - 652.36) < 0.05
    assert neutral.domain == trion.domain
    assert neutral.charged_intervals_s == trion.intervals_s


@pytest.mark.parametrize("seed", [11, 12])
def test_cli_recovers_synthetic_truth(tmp_path, seed):
    movie, truth = fig4_like(seed=seed)
    path = save_movie(movie, tmp_path / "movie.nc")
    out = tmp_path / "out"
    assert main(["pl", "analyze", str(path), "--out", str(out), "--surrogates", "199"]) == 0
    assert json.loads((out / "emitters.json").read_text())["schema"] == "nanodomains.emitters/2"
    res = PLEmitters.from_json(out / "emitters.json")
    assert res.origin == "analysis" and res.settings["n_surrogates"] == 199
    _check_against_truth(res, truth)
    rows = list(csv.DictReader((out / "correlations.csv").open()))
    assert len(rows) == 6  # 4 emitters -> 6 pairs
    assert {"a", "b", "pearson_r", "pearson_p", "spearman_rho", "verdict", "windows"} <= set(rows[0])
    charge = [r for r in rows if r["relation"] == "charge states"]
    assert len(charge) == 1 and float(charge[0]["pearson_r"]) < -0.9
    assert (out / "overview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(20, 30))
def test_acceptance_ten_seeds(tmp_path, seed):
    from nanodomains.spectroscopy.movie_analysis import analyze_movie

    movie, truth = fig4_like(seed=seed)
    res = analyze_movie(movie, n_surrogates=199).record
    _check_against_truth(res, truth)


@pytest.mark.realdata
def test_cli_real_sif(tmp_path):
    out = tmp_path / "sif"
    assert main(["pl", "analyze", str(REAL / "measurement.sif"), "--out", str(out)]) == 0
    res = PLEmitters.from_json(out / "emitters.json")
    assert res.n_frames == 20
    assert "CycleTime" in res.meta["time_source"]
    # the bright line of the file near 550 nm is found, in every frame and not moving:
    # a static line, described as such and not made an emitter
    line = min(res.meta["not_emitters"], key=lambda o: abs(o["center_nm"] - 550.0))
    assert abs(line["center_nm"] - 550.0) < 0.2 and line["class"] == "static" and line["presence"] == 1.0
    assert all(abs(e.center_nm.value - 550.0) > 1 for e in res.emitters)
    assert (out / "overview.png").exists() and (out / "correlations.csv").exists()
    # a single spectrum also runs through
    assert main(["pl", "analyze", str(REAL / "raman1.sif"), "--out", str(tmp_path / "raman")]) == 0


def test_cli_bad_input(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["pl", "analyze", str(tmp_path / "missing.sif"), "--out", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err
    p = tmp_path / "nan.csv"
    p.write_text("t,650.0,650.1,650.2,650.3,650.4,650.5,650.6,650.7,650.8\n" + "\n".join(
        f"{i},{','.join('nan' if (i == 2 and j == 3) else '100' for j in range(9))}" for i in range(5)))
    assert main(["pl", "analyze", str(p), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "2 (t=2 s" in err and "NaN" in err
    assert not out.exists()  # nothing written for bad input
    empty = tmp_path / "e.csv"
    empty.write_text("t,650.0,650.1\n")
    assert main(["pl", "analyze", str(empty), "--out", str(out)]) == 2
    assert "empty movie" in capsys.readouterr().err
    assert main(["pl", "analyze", str(p), "--out", str(out), "--bad-frames", "skip"]) == 2
    assert main(["pl", "analyze", str(p), "--out", str(out), "--resolution-nm", "-1"]) == 2


# ---------------------------------------------------------------------------- optical forward model


def _frame_on(intervals, time_s, frame_s=1.0):
    """Frame-level truth: on when the emitter is on for more than half of the frame."""
    frac = np.zeros(time_s.size)
    for a, b in intervals:
        frac += np.clip(np.minimum(time_s + frame_s, b) - np.maximum(time_s, a), 0, frame_s)
    return frac > 0.5 * frame_s


def _check_simulator_truth(res: PLEmitters, truth: PLEmitters, *, check_blinking: bool,
                           resolution_nm: float | None = None):
    """Analysis against the truth as a spectrometer of ``resolution_nm`` shows it: multiplets
    whose lines are closer than the line profile's FWHM (or keep no maximum of their own)
    are expected as fewer lines (tracking.expected_at_resolution); the FSS is judged
    (50 ueV) on every set that stays resolved."""
    from nanodomains.spectroscopy.tracking import expected_at_resolution

    merged = set()
    if resolution_nm is not None:
        truth, unresolved = expected_at_resolution(truth, resolution_nm)
        merged = {u["id"] for u in unresolved}
    tt = np.asarray(truth.frames["time_s"])
    assert len(res.emitters) == len(truth.emitters)
    idmap, errs = {}, []
    for t in truth.emitters:
        tc = t.center_nm.value
        cands = [f for f in res.emitters if f.kind == t.kind and abs(f.center_nm.value - tc) < 0.1]
        assert cands, f"{t.id} ({t.kind} at {tc:.2f} nm) not found"
        f = min(cands, key=lambda f: abs(f.center_nm.value - tc))
        idmap[t.id] = f.id
        on = _frame_on(t.intervals_s, tt)
        # truth lines move with the simulated Stark shift: median of that shift over on-frames
        shift = np.asarray(truth.frames["center_nm"][t.id]) - tc
        errs += list(np.abs(np.array(f.lines_nm) - np.array(t.lines_nm) - np.median(shift[on])))
        if t.kind in ("doublet", "triplet") and t.id not in merged:
            assert abs(f.fss_uev.value - t.fss_uev.value) <= 50, (t.id, f.fss_uev.value, t.fss_uev.value)
        if check_blinking or t.kind == "trion" or any(u.kind == "trion" for u in truth.emitters):
            fon = _frame_on(f.intervals_s, tt)
            te, fe = np.flatnonzero(np.diff(on.astype(int))), np.flatnonzero(np.diff(fon.astype(int)))
            assert te.size == fe.size and (te.size == 0 or np.max(np.abs(te - fe)) <= 2), (t.id, t.intervals_s, f.intervals_s)
    assert np.median(errs) <= 0.02
    verdicts = {frozenset(c.emitters): c.verdict for c in res.couplings}
    return idmap, verdicts


def test_cli_on_simulated_fig5d(tmp_path):
    """QD1 / QD1* / QD2 of the optics preset: kinds, lines, switches, couplings."""
    from nanodomains.optics.movies import save_movie as save_sim
    from nanodomains.optics.presets import simulate_preset_movie

    movie, truth = simulate_preset_movie("fig5d", seed=1)
    path, _ = save_sim(movie, truth, tmp_path / "fig5d.nc")
    out = tmp_path / "out"
    res_nm = str(movie.attrs["resolution_nm"])  # Voigt with the simulated instrument FWHM
    assert main(["pl", "analyze", str(path), "--out", str(out), "--surrogates", "199", "--resolution-nm", res_nm]) == 0
    res = PLEmitters.from_json(out / "emitters.json")
    idmap, verdicts = _check_simulator_truth(res, truth, check_blinking=True, resolution_nm=float(res_nm))
    trion = next(f for f in res.emitters if f.kind == "trion")
    assert trion.trion_of == idmap["D0-X"]
    from nanodomains.spectroscopy.tracking import expected_at_resolution

    _, unresolved = expected_at_resolution(truth, float(res_nm))
    for t in truth.emitters:  # homogeneous linewidth once the instrument Gaussian is modelled
        if t.id in {u["id"] for u in unresolved}:
            continue  # a blend of lines 83 ueV apart is broader than one line, by construction
        lw = t.linewidth_uev.value
        assert abs(res.emitter(idmap[t.id]).linewidth_uev.value - lw) <= 0.1 * lw
    for c in truth.couplings:
        assert verdicts[frozenset(idmap[x] for x in c.emitters)] == c.verdict
    # the same matches through records.compare: every emitter paired by centre with its own,
    # against the truth at the movie's resolution (QD1's 83 ueV doublet is one line there)
    expected, unresolved = expected_at_resolution(truth, float(res_nm))
    assert [u["id"] for u in unresolved] == ["D0-X"] and unresolved[0]["expected_kind"] == "singlet"
    cmp = compare(expected, res, tolerances={"emitters.match": 0.1, "emitters.center_nm": 0.05,
                                          "emitters.fss_uev": 50.0, "emitters.lines.match": 0.1})
    assert cmp.ok, cmp.failures
    assert {t.id for t in truth.emitters} == {r.path.split("]")[0][len("emitters["):]
                                              for r in cmp.rows if r.path.endswith("].kind")}
    for t in truth.emitters:
        found = res.emitter(idmap[t.id])
        assert cmp.row(f"emitters[{t.id}].center_nm").value == found.center_nm.value


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fig4_doublet", "fig4_triplet", "fig4_charging", "fig5a", "fig5b", "fig5c", "fig5d"])
def test_simulated_presets_ten_seeds(name):
    from nanodomains.optics.presets import simulate_preset_movie
    from nanodomains.spectroscopy.movie_analysis import analyze_movie

    wrong_pairs, n_pairs = 0, 0
    for seed in range(1, 11):
        movie, truth = simulate_preset_movie(name, seed=seed)
        res = analyze_movie(movie, n_surrogates=199).record
        # fig5c's blinking has sub-frame off periods that a frame cannot show: switches
        # are checked where they are charge switches or whole-frame blinks (fig4)
        idmap, verdicts = _check_simulator_truth(res, truth, check_blinking=name.startswith("fig4"),
                                                 resolution_nm=float(movie.attrs["resolution_nm"]))
        for c in truth.couplings:
            n_pairs += 1
            wrong_pairs += verdicts[frozenset(idmap[x] for x in c.emitters)] != c.verdict
    assert wrong_pairs <= 0.05 * n_pairs


# ---------------------------------------------------------------------------- one schema everywhere


def test_emitters_json_is_one_record_from_cli_batch_and_demo(tmp_path):
    """emitters.json of `pl analyze`, the batch and the demo: one schema, one record type,
    round trip; the simulator's truth sidecar is the same type (origin truth)."""
    import pandas as pd

    from nanodomains.optics.movies import save_movie as save_sim
    from nanodomains.optics.presets import simulate_preset_movie
    from nanodomains.pipeline.batch import run_batch
    from nanodomains.pipeline.demo import PL_PRESETS, run_pl_stage
    from nanodomains.records import load_record

    movie, truth = simulate_preset_movie("fig4_doublet", seed=1)
    path, tpath = save_sim(movie, truth, tmp_path / "m.nc")
    assert main(["pl", "analyze", str(path), "--out", str(tmp_path / "cli"), "--surrogates", "99"]) == 0
    pd.DataFrame([{"id": "m", "path": str(path), "kind": "pl_movie", "n_surrogates": 99}]).to_csv(
        tmp_path / "manifest.csv", index=False)
    run_batch(tmp_path / "manifest.csv", tmp_path / "batch", workers=1)
    stage = run_pl_stage(tmp_path / "demo", 0, [])
    # the demo's rows come from records.compare: every visible truth emitter matched, as
    # the demo's nearest-centre matching found before (13 of 13 on these presets)
    assert all(c["found"] == c["truth"] and c["comparison_ok"] for c in stage["presets"].values())
    assert sum(c["truth"] for c in stage["presets"].values()) == 13
    assert {"path", "truth", "value", "stderr", "difference", "tolerance", "ok", "status"} <= set(stage["matches"][0])
    files = [tmp_path / "cli" / "emitters.json", tmp_path / "batch" / "items" / "m" / "emitters.json",
             *(tmp_path / "demo" / f"pl_{name}" / "emitters.json" for name in PL_PRESETS)]
    for f in files:
        assert json.loads(f.read_text())["schema"] == PLEmitters.SCHEMA, f
        rec = PLEmitters.from_json(f)
        assert isinstance(load_record(f), PLEmitters) and rec.origin == "analysis"
        assert PLEmitters.from_json(rec.to_json()) == rec
    assert PLEmitters.from_json(files[0]).emitters == PLEmitters.from_json(files[1]).emitters
    back = load_record(tpath)
    assert isinstance(back, PLEmitters) and back.origin == "truth" and back == truth
    assert load_record(tmp_path / "demo" / "pl_fig4_doublet.truth.json").origin == "truth"

"""Faults: hostile manifests, bad parameters, corrupt files, interrupts and kills (issue 18).

What is asserted everywhere: a clear one-line error (status 2) or a result (status 0),
never a traceback; nothing written by a failed command; no file outside ``--out``;
Ctrl-C / SIGTERM end with one line and 130 / 143; a killed batch or demo leaves
finished work intact, no stale temporaries after the rerun and no folder that mixes
two runs without saying so. See docs/guarantees.md.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanodomains import limits
from nanodomains.cli import main
from nanodomains.errors import InputError
from nanodomains.files import path_inside, remove_stale_temporaries, safe_name
from nanodomains.pipeline.batch import read_manifest, run_batch
from nanodomains.structure import homogeneous, random_domains

SRC = Path(__file__).resolve().parents[1] / "src"


# ---- shared small inputs ------------------------------------------------------------

@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Small simulated files of every kind the commands read (built once per module)."""
    from nanodomains.stem.simulate import simulate_image, write_simulation
    from nanodomains.timetags import PhotonStream, write_photons_npz

    d = tmp_path_factory.mktemp("inputs")
    random_domains(6.0, n_domains=2, seed=1).to_json(d / "nc.json")
    write_simulation(simulate_image(homogeneous(5.0, seed=1), pixel_size_pm=25.0, seed=2), d / "img.tif")
    rng = np.random.default_rng(0)
    n = 20000
    write_photons_npz(PhotonStream(times_ps=np.sort(rng.integers(0, 10**12, n)).astype(np.int64),
                                   channels=rng.integers(0, 2, n).astype(np.uint8), resolution_ps=1.0,
                                   duration_s=1.0, source="cw"), d / "cw.npz")
    t = np.arange(0, 50, 0.05)
    np.savetxt(d / "decay.txt", np.c_[t, rng.poisson(1000 * np.exp(-t / 2) + 5)])
    np.savetxt(d / "irf.txt", np.c_[t, rng.poisson(1e4 * np.exp(-0.5 * ((t - 2) / 0.1) ** 2))])
    np.savetxt(d / "irf3.txt", np.c_[t[38:41], [100, 1000, 100]])
    np.savetxt(d / "zero.txt", np.c_[t, 0 * t])
    np.savetxt(d / "huge.txt", np.c_[t, 1e300 * np.exp(-t)])
    return d


def run_cli(args, capsys) -> tuple[int, str]:
    """``main(args)``: status and stderr; a traceback (an exception out of main) fails the test."""
    rc = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


# ---- finding 1: hostile item ids --------------------------------------------------------

@pytest.mark.parametrize("bad_id", ["..", ".", "a/b", "../escape", "/abs", ".hidden", "a\\b", "x.tmp-1",
                                    "nul", "a.error.json", "", " "])
def test_unsafe_item_ids_refuse_the_manifest_and_touch_nothing(tmp_path, capsys, bad_id):
    """The campaign's id '..' emptied --out; now the manifest is refused before any write."""
    random_domains(6.0, n_domains=1, seed=1).to_json(tmp_path / "nc.json")
    out = tmp_path / "out"
    (out / "items" / "earlier").mkdir(parents=True)
    (out / "items" / "earlier" / "result.json").write_text('{"status": "ok"}')
    (out / "unrelated.txt").write_text("keep me")
    manifest = tmp_path / "m.yaml"  # YAML keeps '' and ' ' as given
    manifest.write_text(f"items:\n  - path: nc.json\n    id: {json.dumps(bad_id)}\n")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    rc, err = run_cli(["batch", manifest, "--out", out, "--workers", "0"], capsys)
    if bad_id == "":  # an empty id is no id: the default id is used, and that is safe
        assert rc == 0
        return
    assert rc == 2 and "item id" in err and len(err.strip().splitlines()) == 1
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # every existing file in place, nothing new


def test_ids_unique_ignoring_case_and_default_ids_safe(tmp_path):
    (tmp_path / "m.csv").write_text("id,path\nA,a.json\na,b.json\n")
    with pytest.raises(InputError, match="ignoring case"):
        read_manifest(tmp_path / "m.csv")
    (tmp_path / "n.csv").write_text("path\n../weird name (1).json\n")
    item = read_manifest(tmp_path / "n.csv")[0]
    assert safe_name(item["id"]) == item["id"] == "0000_weird_name_1_"


def test_item_folder_symlinked_outside_is_refused(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "out" / "items").mkdir(parents=True)
    (tmp_path / "out" / "items" / "a").symlink_to(outside)
    with pytest.raises(InputError, match="outside"):
        path_inside(tmp_path / "out" / "items", "a")
    random_domains(6.0, n_domains=1, seed=1).to_json(tmp_path / "nc.json")
    (tmp_path / "m.csv").write_text("id,path\na,nc.json\n")
    with pytest.raises(InputError, match="outside"):  # the whole batch is refused up front
        run_batch(tmp_path / "m.csv", tmp_path / "out", workers=0)
    assert list(outside.iterdir()) == []


# ---- finding 2: exit status -------------------------------------------------------------

def test_batch_with_failed_items_exits_nonzero_after_the_summary(tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{")
    random_domains(6.0, n_domains=1, seed=1).to_json(tmp_path / "nc.json")
    (tmp_path / "m.csv").write_text("id,path\nbad,bad.json\ngood,nc.json\n")
    rc = main(["batch", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o"), "--workers", "0"])
    captured = capsys.readouterr()
    assert rc == 1 and "1 ok, 1 failed of 2" in captured.out
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run["runs"][-1]["status"] == "complete" and run["runs"][-1]["n_error"] == 1


def test_item_options_out_of_range_fail_that_item_only(tmp_path):
    from nanodomains.timetags import PhotonStream, write_photons_npz

    rng = np.random.default_rng(1)
    write_photons_npz(PhotonStream(times_ps=np.sort(rng.integers(0, 10**12, 5000)).astype(np.int64),
                                   channels=rng.integers(0, 2, 5000).astype(np.uint8), resolution_ps=1.0,
                                   duration_s=1.0, source="cw"), tmp_path / "cw.npz")
    pd.DataFrame([{"id": "huge", "path": "cw.npz", "mode": "cw", "window_ns": 1e9},
                  {"id": "fine", "path": "cw.npz", "mode": "cw", "window_ns": 50}]).to_csv(tmp_path / "m.csv",
                                                                                          index=False)
    status = {r["id"]: r for r in run_batch(tmp_path / "m.csv", tmp_path / "o", workers=0)}
    assert status["fine"]["status"] == "ok"
    assert status["huge"]["status"] == "error" and "--window-ns" in status["huge"]["error"]


# ---- findings 5, 6, 8: parameters and memory, one line each ------------------------------

CASES = [
    # (args with {d} for the inputs folder and {o} for the output, fragment of the message)
    (["migrate", "{d}/nc.json", "--out", "{o}", "--frames", "100000000"], "--frames"),
    (["stem", "simulate", "{d}/nc.json", "--out", "{o}.tif", "--jitter-pm", "1e9"], "--jitter-pm"),
    (["grow", "--out", "{o}", "--crystals", "10000000"], "--crystals"),
    (["stem", "analyze", "{d}/img.tif", "--out", "{o}", "--pixel-size-pm", "0.5"], "--pixel-size-pm"),
    (["photons", "g2", "{d}/cw.npz", "--out", "{o}", "--mode", "cw", "--window-ns", "1e9"], "--window-ns"),
    (["photons", "g2", "{d}/cw.npz", "--out", "{o}", "--mode", "cw", "--window-ns", "1e7", "--bin-ns",
      "0.001"], "would need"),
    (["pl", "analyze", "{d}/none.nc", "--out", "{o}", "--snr", "0"], "--snr"),
    (["pl", "analyze", "{d}/none.nc", "--out", "{o}", "--snr", "-1"], "--snr"),
    (["pl", "analyze", "{d}/none.nc", "--out", "{o}", "--snr", "nan"], "--snr"),
    (["pl", "analyze", "{d}/none.nc", "--out", "{o}", "--surrogates", "0"], "--surrogates"),
    (["photons", "g2", "{d}/cw.npz", "--out", "{o}", "--period-ns", "0.001"], "--period-ns"),
    (["stem", "analyze", "{d}/img.tif", "--out", "{o}", "--probe", "0,0,0"], "beam_energy_kev"),
    (["stem", "analyze", "{d}/img.tif", "--out", "{o}", "--thickness-nm", "1e9"], "--thickness-nm"),
    (["photons", "g2", "{d}/cw.npz", "--out", "{o}", "--channels", "-1", "1"], "--channels"),
    (["photons", "g2", "{d}/cw.npz", "--out", "{o}", "--offset-ns", "nan"], "--offset-ns"),
    *[([*cmd, "--seed", "-1"], "--seed") for cmd in (
        ["build", "--out", "{o}.json"], ["grow", "--out", "{o}"], ["migrate", "{d}/nc.json", "--out", "{o}"],
        ["stem", "simulate", "{d}/nc.json", "--out", "{o}.tif"], ["stem", "analyze", "{d}/img.tif", "--out", "{o}"],
        ["pl", "analyze", "{d}/none.nc", "--out", "{o}"], ["demo", "--out", "{o}"])],
    (["photons", "lifetime", "{d}/zero.txt", "--out", "{o}"], "every count is 0"),
    (["photons", "lifetime", "{d}/huge.txt", "--out", "{o}"], "beyond any detector"),
    (["photons", "lifetime", "{d}/decay.txt", "--irf", "{d}/irf3.txt", "--out", "{o}"], "IRF"),
    (["photons", "g2", "{d}", "--out", "{o}"], "is a folder"),
    (["describe", "{d}"], "is a folder"),
    (["photons", "g2", "{d}/cw.npz", "--out", "{d}/nc.json"], "is a file"),
    (["build", "--out", "{d}/nc.json/x.json"], "is a file"),
    (["build", "--out", "{d}"], "is a folder"),
    (["photons", "g2", "{d}/cw.npz", "--mode", "cw", "--out", "/proc/nanodomains-no/such"], "not writable"),
    (["batch", "{d}/m.csv", "--out", "{o}", "--scheduler", "not-an-address"], "--scheduler"),
    (["demo", "--out", "{d}"], "no demo run"),
]


@pytest.mark.parametrize("args, fragment", CASES, ids=[" ".join(a[:3]) + " " + f for a, f in CASES])
def test_bad_parameters_one_line_and_nothing_written(inputs, tmp_path, capsys, monkeypatch, args, fragment):
    monkeypatch.setenv("NANODOMAINS_MEMORY_LIMIT_GB", "4")
    (inputs / "m.csv").write_text("id,path\na,nc.json\n")
    before = sorted(p.name for p in inputs.iterdir())
    out = tmp_path / "out"
    t0 = time.perf_counter()
    rc, err = run_cli([a.format(d=inputs, o=out) for a in args], capsys)
    assert rc == 2, err
    assert fragment in err and len(err.strip().splitlines()) == 1, err
    assert time.perf_counter() - t0 < 30  # refused up front: no hang, no allocation
    assert not any(tmp_path.iterdir())  # nothing written
    assert sorted(p.name for p in inputs.iterdir()) == before


def test_every_numeric_cli_option_has_a_documented_range():
    """'Every CLI parameter has a documented valid range checked in one place.'"""
    import inspect

    import typer.main

    from nanodomains.cli import app

    missing = []

    def walk(cmd, path):
        for name, sub in getattr(cmd, "commands", {}).items():
            full = f"{path} {name}".strip()
            if getattr(sub, "commands", None):
                walk(sub, full)
                continue
            for pname, p in inspect.signature(sub.callback).parameters.items():
                if any(k in str(p.annotation) for k in ("int", "float")) and \
                        f"{full} {pname}" not in limits.RANGES and pname not in limits.RANGES:
                    missing.append(f"{full} --{pname}")

    walk(typer.main.get_command(app), "")
    assert not missing, f"add these to nanodomains.limits.RANGES: {missing}"


def test_guarantees_page_shows_the_current_range_table():
    page = (Path(__file__).resolve().parents[1] / "docs" / "guarantees.md").read_text()
    assert limits.ranges_markdown() in page, "regenerate the table: python -c 'from nanodomains.limits " \
                                             "import ranges_markdown; print(ranges_markdown())'"


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(limits.RANGES)),
       value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**70, 2**70)))
def test_range_checks_accept_exactly_the_documented_range(name, value):
    r = limits.RANGES[name]
    inside = np.isfinite(float(value)) if not isinstance(value, int) else True
    inside = inside and r.contains(value) and (not r.integer or float(value).is_integer())
    if inside:
        assert limits.check(name, value) == value
    else:
        with pytest.raises(InputError):
            limits.check(name, value)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(window=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**12)),
       bin_ns=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**6)),
       channel=st.integers(-5, 300))
def test_g2_parameters_fuzzed_give_an_error_or_a_result(inputs, tmp_path_factory, capsys, window, bin_ns, channel):
    out = tmp_path_factory.mktemp("g2")
    rc, err = run_cli(["photons", "g2", inputs / "cw.npz", "--out", out, "--mode", "cw", "--window-ns", window,
                       "--bin-ns", bin_ns, "--channels", channel, 1 - channel if 0 <= channel <= 1 else 1], capsys)
    assert rc in (0, 2), err
    if rc == 2:
        assert len(err.strip().splitlines()) == 1 and not list(out.iterdir())


# ---- findings 6, 9: corrupt and impossible files ------------------------------------------

def test_model_json_not_utf8_nested_or_huge(tmp_path, capsys):
    (tmp_path / "bad8.json").write_bytes(b'{"edges_nm": [5, 5, 5], "x": "\xff\xfe"}')
    (tmp_path / "deep.json").write_text("[" * 100000 + "]" * 100000)
    raw = json.loads(random_domains(6.0, n_domains=2, seed=1).to_json())
    raw["edges_nm"] = [1e5, 1e5, 1e5]
    (tmp_path / "big.json").write_text(json.dumps(raw))
    for name, fragment in (("bad8", "UTF-8"), ("deep", "nested"), ("big", "200 nm")):
        rc, err = run_cli(["describe", tmp_path / f"{name}.json"], capsys)
        assert rc == 2 and fragment in err


@pytest.mark.parametrize("value", [0.0, -0.02, float("nan")])
def test_tiff_with_invalid_pixel_size_tags_is_invalid_calibration(tmp_path, capsys, value):
    """Finding 9: read as 1000 pm/px with source 'file' before; now 'invalid calibration'."""
    import tifffile

    img = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    tags = [(65003, "s", 3, "nm", False), (65004, "s", 3, "nm", False),
            (65009, "d", 1, value, False), (65010, "d", 1, value, False)]
    tifffile.imwrite(tmp_path / "cal.tif", img, imagej=True, resolution=(1, 1), metadata={"unit": "nm"},
                     extratags=tags)
    rc, err = run_cli(["stem", "analyze", tmp_path / "cal.tif", "--out", tmp_path / "o"], capsys)
    assert rc == 2 and "invalid calibration" in err and not (tmp_path / "o").exists()


def test_movies_with_no_signal_or_negative_wavelengths(tmp_path, capsys):
    """Finding 7 (in the command): counts all <= 0 gave 4 emitters; negative wavelengths a doublet at -652 nm."""
    from nanodomains.optics.movies import save_movie
    from nanodomains.testing.pl import fig4_like

    movie, truth = fig4_like(seed=0, n_frames=20)
    for name, mv, fragment in (("dark", -abs(movie) - 1, "every count is <= 0"),
                               ("negwl", movie.assign_coords(wavelength=-movie["wavelength"].values), "wavelength")):
        mv.to_netcdf(tmp_path / f"{name}.nc")
        rc, err = run_cli(["pl", "analyze", tmp_path / f"{name}.nc", "--out", tmp_path / name], capsys)
        assert rc == 2 and fragment in err, err
        assert not (tmp_path / name).exists()
    del save_movie, truth


def _mutations(data: bytes, rng) -> list[tuple[str, bytes]]:
    """Byte-level mutations: truncations, flipped bytes, a zeroed block, an empty file."""
    n = len(data)
    out = [("empty", b""), ("half", data[: n // 2]), ("half_plus7", data[: n // 2 + 7]),
           ("header", data[: min(n, 64)]), ("minus1", data[:-1])]
    for k in range(3):
        b = bytearray(data)
        for i in rng.integers(0, n, 8):
            b[i] ^= 0xFF
        out.append((f"flip{k}", bytes(b)))
    b = bytearray(data)
    s = int(rng.integers(0, max(1, n - 256)))
    b[s:s + 256] = bytes(min(256, n - s))
    out.append(("zeros", bytes(b)))
    return out


READERS = {  # input file -> command reading it ({f}: the mutated file, {o}: output)
    "nc.json": ["describe", "{f}"],
    "cw.npz": ["photons", "g2", "{f}", "--out", "{o}", "--mode", "cw", "--window-ns", "50"],
    "decay.txt": ["photons", "lifetime", "{f}", "--out", "{o}"],
    "img.tif": ["stem", "analyze", "{f}", "--out", "{o}", "--pixel-size-pm", "25"],
}


@pytest.mark.parametrize("name", sorted(READERS))
def test_byte_mutations_give_an_error_or_a_warned_result(inputs, tmp_path, capsys, name):
    """Never a traceback; a truncated file never ends with status 0 unless a warning says so."""
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    data = (inputs / name).read_bytes()
    problems = []
    for label, mutated in _mutations(data, rng):
        if label in ("flip0", "flip1", "flip2", "zeros") and name == "img.tif":
            continue  # a flipped pixel is still an image; analysing it costs ~5 s each
        f = tmp_path / f"{label}{Path(name).suffix}"
        f.write_bytes(mutated)
        out = tmp_path / f"out_{label}"
        try:
            rc, err = run_cli([a.format(f=f, o=out) for a in READERS[name]], capsys)
        except Exception as exc:  # noqa: BLE001 - collected: every traceback is a finding
            problems.append(f"{label}: traceback {type(exc).__name__}: {exc}")
            continue
        if rc not in (0, 2):
            problems.append(f"{label}: status {rc}")
        truncated = label in ("half", "half_plus7", "header", "minus1") and len(mutated) < len(data)
        if name.endswith(".txt") and mutated.endswith(b"\n"):
            # a text histogram cut at a line end is a valid shorter histogram: nothing in a
            # two-column text file can tell them apart (docs/guarantees.md says so)
            truncated = False
        if rc == 0 and truncated and "warning" not in (err + capsys.readouterr().out).lower():
            problems.append(f"{label}: status 0 on a truncated file without a warning")
    assert not problems, problems


# ---- stale temporaries and the atomic writers ------------------------------------------------

def test_stale_temporaries_of_dead_writers_only(tmp_path):
    (tmp_path / f".a.tmp-{os.getpid()}").mkdir()  # a live writer (this process): kept
    (tmp_path / ".b.tmp-999999999.json").write_text("{")
    (tmp_path / ".c.old-999999999").mkdir()  # an interrupted swap whose 'c' is missing: put back
    removed = {p.name for p in remove_stale_temporaries(tmp_path)}
    assert removed == {".b.tmp-999999999.json", ".c.old-999999999"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".a.tmp-{os.getpid()}", "c"]


def test_build_xyz_never_leaves_a_truncated_file(tmp_path, monkeypatch):
    """Finding 3: a kill mid-write left a truncated .extxyz; the writer goes through a temporary."""
    import nanodomains.structure.atoms as atoms_mod

    def boom(path, atoms, format):
        Path(path).write_text("half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr("ase.io.write", boom)
    with pytest.raises(KeyboardInterrupt):
        atoms_mod.write_atoms(homogeneous(3.0, seed=1).to_atoms(), tmp_path / "nc.extxyz")
    assert list(tmp_path.iterdir()) == []


# ---- kill tests: subprocesses -----------------------------------------------------------------

def _spawn(args, cwd) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.Popen([sys.executable, "-m", "nanodomains.cli", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (Linux: SigCgt mask in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next((int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:")), 0)
    return bool(mask >> (sig - 1) & 1)


def _wait_for(cond, proc, timeout=120.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def stem_manifest(tmp_path_factory):
    """Five small STEM images (~1-2 s of analysis each): kills land between and inside items."""
    from nanodomains.stem.simulate import simulate_image, write_simulation

    d = tmp_path_factory.mktemp("kill")
    for i in range(5):
        write_simulation(simulate_image(homogeneous(5.0, seed=i), pixel_size_pm=25.0, seed=i), d / f"img{i}.tif")
    pd.DataFrame([{"id": f"img{i}", "path": f"img{i}.tif"} for i in range(5)]).to_csv(d / "m.csv", index=False)
    return d


def _kill_batch_then_rerun(d: Path, out: Path, sig: int, workers: int) -> None:
    proc = _spawn(["batch", d / "m.csv", "--out", out, "--workers", workers], d)
    assert _wait_for(lambda: len(list(out.glob("items/*/result.json"))) >= 1, proc), proc.communicate()
    done_before = {p.parent.name: p.read_bytes() for p in out.glob("items/*/result.json")}
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    if sig in (signal.SIGINT, signal.SIGTERM):
        assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig], err
        assert "interrupted" in err and "Traceback" not in err
        run = json.loads((out / "run.json").read_text())
        assert run["runs"][-1]["status"] == "interrupted" and run["status"] == "incomplete"
    # finished items intact, every item folder complete
    for item, raw in done_before.items():
        assert (out / "items" / item / "result.json").read_bytes() == raw
    for folder in (out / "items").iterdir():
        if not folder.name.startswith(".") and folder.is_dir():
            assert json.loads((folder / "result.json").read_text())["status"] == "ok"
    # the rerun completes the rest, leaves no temporaries, and the run manifest tells the story
    rerun = _spawn(["batch", d / "m.csv", "--out", out, "--workers", 0], d)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert sorted(p.name for p in (out / "items").iterdir()) == [f"img{i}" for i in range(5)]
    assert not [p for p in out.rglob(".*") if p.name != ".nanodomains.lock"]
    run = json.loads((out / "run.json").read_text())
    first = run["runs"][0]["status"]
    assert first == ("killed" if sig == signal.SIGKILL else "interrupted")
    assert run["runs"][-1]["status"] == "complete" and run["status"] == "complete"
    assert run["mixed_runs"] is True  # items from two runs: said so
    ids = {v["run_id"] for v in run["items"].values()}
    assert ids == {r["run_id"] for r in run["runs"] if r.get("n_ok")} or len(ids) == 2
    for item, raw in done_before.items():
        assert (out / "items" / item / "result.json").read_bytes() == raw  # not redone


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL, signal.SIGTERM], ids=["INT", "KILL", "TERM"])
def test_kill_batch_in_process(stem_manifest, tmp_path, sig):
    _kill_batch_then_rerun(stem_manifest, tmp_path / "out", sig, workers=0)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["INT", "KILL"])
def test_kill_batch_on_dask(stem_manifest, tmp_path, sig):
    _kill_batch_then_rerun(stem_manifest, tmp_path / "out", sig, workers=2)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["INT", "KILL"])
def test_kill_demo_over_a_complete_run(tmp_path, sig):
    """Killed while writing seed 1 over a complete seed-0 run: the folder still holds seed 0
    whole (the campaign found 13 new files beside 37 old ones); the rerun swaps in seed 1."""
    out = tmp_path / "demo"
    args = ["demo", "--out", out, "--stages", "structure,growth", "--crystals", "20"]
    first = _spawn([*args, "--seed", 0], tmp_path)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    snapshot = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    run0 = json.loads((out / "run.json").read_text())
    assert run0["status"] == "complete" and run0["seed"] == 0
    assert set(run0["files"]) == {str(p) for p in snapshot if str(p) != "run.json"}

    second = _spawn([*args, "--seed", 1], tmp_path)
    staged = lambda: any((p / "nc_paper_fig1.json").exists() for p in tmp_path.glob(".demo.tmp-*"))  # noqa: E731
    assert _wait_for(staged, second), second.communicate()
    second.send_signal(sig)
    _, err = second.communicate(timeout=120)
    assert second.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), err
    now = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert now == snapshot  # the complete seed-0 run, untouched: no mixing
    if sig == signal.SIGINT:
        assert not list(tmp_path.glob(".demo.*"))  # the interrupt removed its staging folder

    third = _spawn([*args, "--seed", 1], tmp_path)
    _, err = third.communicate(timeout=300)
    assert third.returncode == 0, err
    run1 = json.loads((out / "run.json").read_text())
    assert run1["status"] == "complete" and run1["seed"] == 1
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == {*run1["files"], "run.json"}
    assert not list(tmp_path.glob(".demo.*"))  # the killed run's staging folder is gone


def test_demo_refuses_a_folder_of_other_files(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("precious")
    rc, err = run_cli(["demo", "--out", tmp_path, "--stages", "structure"], capsys)
    assert rc == 2 and "no demo run" in err and (tmp_path / "mine.txt").read_text() == "precious"


def test_sigterm_during_a_command_is_one_line_143(inputs, tmp_path):
    proc = _spawn(["stem", "analyze", inputs / "img.tif", "--out", tmp_path / "o"], tmp_path)
    # signal once the command has installed its handler (imports take seconds on a loaded machine)
    assert _wait_for(lambda: _catches(proc.pid, signal.SIGTERM), proc, timeout=120), "handler never installed"
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the analysis finished before the signal (machine faster than assumed)")
    assert proc.returncode == 143 and err.strip().startswith("interrupted (SIGTERM)"), err
    assert len(err.strip().splitlines()) == 1

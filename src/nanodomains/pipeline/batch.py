"""Batch runs of analyses and simulations on dask.distributed.

Manifest
--------
CSV (header row) or YAML (a list of mappings, or ``{"items": [...]}``). Each item has
``path`` (relative paths resolve against the manifest's folder) and optionally ``id``
(default: row number and file stem) and ``kind`` (default: from the file extension).
Other keys are passed to the item's handler as options.

Kinds (see :data:`HANDLERS`): ``stem_image`` (.dm3 .dm4 .emd .ser .tif .hspy -> domains,
columns, compositions), ``pl_movie`` (.sif .spe .csv .nc -> emitters),
``photons_g2`` (.ptu .npz .ht2 .ht3 .pt2 .pt3 .t3r .spc -> g2; HDF5 files need ``kind``),
``photons_lifetime`` (decay text, .phu, .phd), ``nc_model``
(.json NC model -> description). Other capabilities register their handlers with
:func:`register`.

Guarantees (tested in ``tests/test_faults.py``; see ``docs/guarantees.md``)
---------------------------------------------------------------------------
* Item ids are safe names (:func:`nanodomains.files.safe_name`: no separator, never
  ``.`` or ``..``, unique ignoring case); every output path is resolved and must lie
  inside ``DIR/items`` (:func:`nanodomains.files.path_inside`). A bad id refuses the
  whole manifest before anything is written.
* Each item's outputs are written into a temporary folder renamed to
  ``DIR/items/<id>/`` when complete (:func:`nanodomains.files.atomic_dir`), so a crash
  or interrupt never leaves a half item; temporary folders and files left by a killed
  run are removed when the next run starts. One run per output folder at a time (a
  lock, :func:`nanodomains.files.folder_lock`).
* ``DIR/run.json`` is the run manifest: every run (start, end, status ``running``,
  ``complete``, ``interrupted``; a ``running`` entry whose process is gone is marked
  ``killed``), which run wrote each item, and items in the folder that the current
  manifest does not list. Every ``result.json`` carries its ``run_id``.
* An interrupt (Ctrl-C, SIGTERM) cancels the Dask futures, closes the cluster, writes
  the table, report and run manifest (unfinished items "not run") and re-raises.
* A rerun skips items whose ``result.json`` exists, and failed items unless
  ``retry_failed`` (a deleted result is recomputed, nothing else).
* A failing item writes ``DIR/items/<id>.error.json`` (type, message) and does not stop
  the rest; the summary lists it.
* At the end ``DIR/batch.parquet`` (one row per item: status, elapsed, scalar results)
  and ``DIR/report.html`` summarise the batch.

Runs on a ``LocalCluster`` (``workers`` processes, one thread each) or on an existing
scheduler (``scheduler="tcp://host:8786"``); ``workers=0`` runs in-process (no Dask).
"""

from __future__ import annotations

import csv
import hashlib
import os
import time
import traceback
from pathlib import Path
from typing import Callable

from nanodomains.errors import FileFormatError, InputError, NanodomainsError, acknowledge_interrupt
from nanodomains.pipeline import interactive
from nanodomains.files import (atomic_dir, atomic_path, ensure_dir, folder_lock, path_inside, read_json,
                               remove_stale_temporaries as remove_stale_in, safe_name, slug, write_json_atomic)

HANDLERS: dict[str, Callable[[Path, Path, dict], dict]] = {}
EXTENSION_KINDS: dict[str, str] = {}


def register(kind: str, extensions: tuple[str, ...] = ()):
    """Decorator: register ``handler(path, out_dir, options) -> dict of scalars``."""

    def wrap(fn):
        HANDLERS[kind] = fn
        for ext in extensions:
            EXTENSION_KINDS[ext] = kind
        return fn

    return wrap


# ---- handlers -----------------------------------------------------------------

#: The interactive figure an item writes (Plotly JSON), embedded in the batch report.
INTERACTIVE_FILE = "interactive.json"
#: At most this many bytes of item figures are embedded in ``report.html`` (with
#: plotly.js and the PNGs the page stays below ~30 MB); the others stay in their folders.
REPORT_PLOT_BUDGET_BYTES = 15_000_000


def write_interactive(build: Callable, out: Path) -> dict:
    """Write ``build()`` (a Plotly figure) as ``out/interactive.json``; return the result fields.

    A figure that cannot be made does not fail the item, whose analysis is done: the
    reason goes to the ``interactive`` field instead of the file name.

    Parameters
    ----------
    build : callable
        Returns a ``plotly.graph_objects.Figure``
        (:mod:`nanodomains.pipeline.interactive`).
    out : Path
        The item's folder.

    Returns
    -------
    dict
        ``{"interactive": "interactive.json"}``, or ``{"interactive": "not made: reason"}``.
    """
    try:
        fig = build()
    except (NanodomainsError, OSError) as exc:
        return {"interactive": f"not made: {type(exc).__name__}: {exc}"}
    with atomic_path(out / INTERACTIVE_FILE) as tmp:
        tmp.write_text(fig.to_json(), encoding="utf-8")
    return {"interactive": INTERACTIVE_FILE}


@register("pl_movie", (".sif", ".spe", ".csv"))
def _pl_movie(path: Path, out: Path, options: dict) -> dict:
    from nanodomains.spectroscopy.io import load_movie
    from nanodomains.spectroscopy.movie_analysis import analyze_movie

    movie = load_movie(path)
    res = analyze_movie(movie, **options)
    res.write(out)
    kinds = [e.kind for e in res.emitters]
    return {"n_frames": int(movie.sizes["time"]), "n_emitters": len(kinds),
            "kinds": ",".join(sorted(set(kinds))), "figure": "overview.png",
            **write_interactive(lambda: interactive.movie_analysis_figure(res, title=path.name), out)}


@register("photons_g2", (".ptu", ".npz", ".ht2", ".ht3", ".pt2", ".pt3", ".t3r", ".spc"))
def _photons_g2(path: Path, out: Path, options: dict) -> dict:
    from nanodomains.spectroscopy.g2 import compute_g2_file, plot_g2, write_g2_csv

    res = compute_g2_file(path, **options)
    res.to_json(out / "g2.json")
    write_g2_csv(res, out / "g2.csv")
    plot_g2(res, out / "g2.png")
    return {"g2_0": res.g2_0.value, "g2_0_err": res.g2_0.stderr, "n_photons": res.n_photons,
            "duration_s": res.duration_s, "figure": "g2.png",
            **write_interactive(lambda: interactive.g2_figure(res, title=path.name), out)}


@register("photons_lifetime", (".txt", ".dat", ".phu", ".phd"))
def _photons_lifetime(path: Path, out: Path, options: dict) -> dict:
    from nanodomains.spectroscopy import lifetime as lt

    options = dict(options)
    irf_path = options.pop("irf", None)
    res = lt.fit_lifetime(lt.load_decay(path), irf_path or None, **options)
    res.to_json(out / "lifetime.json")
    lt.plot_lifetime(res, out / "lifetime.png")
    values = {f"tau_ns_{i}": c.tau_ns.value for i, c in enumerate(res.components)}
    values.update({f"tau_ns_{i}_stderr": c.tau_ns.stderr for i, c in enumerate(res.components)})
    values.update({k: v for k, v in res.flat().items()
                   if isinstance(v, (int, float, str)) and not isinstance(v, bool)})
    values.update(write_interactive(lambda: interactive.decay_figure(res, title=path.name), out))
    return values


@register("stem_image", (".dm3", ".dm4", ".emd", ".ser", ".tif", ".tiff", ".hspy"))
def _stem_image(path: Path, out: Path, options: dict) -> dict:
    from nanodomains.stem.analyze import analyze_for_batch

    values, res = analyze_for_batch(path, out, options)
    values.update(write_interactive(lambda: interactive.stem_analysis_figure(res, title=path.name), out))
    return values


@register("nc_model", (".json",))
def _nc_model(path: Path, out: Path, options: dict) -> dict:
    from nanodomains.structure import NanoCrystal

    nc = NanoCrystal.from_json(path)
    desc = nc.describe()
    write_json_atomic(desc, out / "describe.json", indent=2)
    return {"n_domains": len(nc.domains), "n_rp": sum(b.type == "RP" for b in nc.boundaries)}


# ---- manifest -------------------------------------------------------------------

def _coerce(text):
    """CSV cells are text: numbers and booleans become numbers and booleans."""
    if not isinstance(text, str):
        return text
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def read_manifest(path: str | Path) -> list[dict]:
    """Items of a CSV or YAML manifest, with ``id``, ``kind`` and absolute ``path``.

    Parameters
    ----------
    path : str or Path
        A ``.csv`` (header row) or ``.yaml`` manifest (see the module docstring).

    Returns
    -------
    list of dict
        ``id``, ``kind``, ``path`` (absolute) and ``options`` (the other keys; CSV
        numbers and booleans parsed) per item.

    Raises
    ------
    FileFormatError
        Missing, unreadable or empty manifest, or an item without ``path``.
    InputError
        Unknown kind or duplicate id.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = (Path(d) / "m.csv").write_text("id,path,mode,window_ns\\nfirst,a.ptu,cw,50\\n")
    ...     items = read_manifest(Path(d) / "m.csv")
    >>> items[0]["id"], items[0]["kind"], items[0]["options"]
    ('first', 'photons_g2', {'mode': 'cw', 'window_ns': 50})
    """
    p = Path(path)
    if not p.is_file():
        raise FileFormatError(f"{p}: manifest not found")
    suffix = p.suffix.lower()
    try:
        if suffix == ".csv":
            with p.open(newline="") as fh:
                rows = [{k: _coerce(v) for k, v in r.items()} for r in csv.DictReader(fh)]
        elif suffix in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(p.read_text())
            rows = raw.get("items") if isinstance(raw, dict) else raw
        else:
            raise FileFormatError(f"{p}: manifest must be .csv or .yaml, got {suffix!r}")
    except (csv.Error, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{p}: unreadable manifest ({exc})") from exc
    except Exception as exc:  # yaml.YAMLError without importing yaml at module level
        if isinstance(exc, NanodomainsError):
            raise
        raise FileFormatError(f"{p}: unreadable manifest ({exc})") from exc
    if not isinstance(rows, list) or not rows:
        raise FileFormatError(f"{p}: manifest holds no items")
    items, seen = [], set()
    for n, row in enumerate(rows):
        if not isinstance(row, dict) or not row.get("path"):
            raise FileFormatError(f"{p}: item {n} has no 'path'")
        row = {k: v for k, v in row.items() if v not in (None, "")}
        file = Path(str(row.pop("path")))
        file = file if file.is_absolute() else (p.parent / file)
        kind = row.pop("kind", None) or EXTENSION_KINDS.get(file.suffix.lower())
        if kind not in HANDLERS:
            raise InputError(f"{p}: item {n} ({file.name}): unknown kind {kind!r}; "
                             f"known: {sorted(HANDLERS)}")
        item_id = row.pop("id", None)
        item_id = slug(f"{n:04d}_{file.stem}") if item_id is None else _valid_id(item_id, p, n)
        if item_id.lower() in seen:  # case-insensitive: macOS and Windows folders would collide
            raise InputError(f"{p}: duplicate item id {item_id!r} (ids must differ ignoring case)")
        seen.add(item_id.lower())
        items.append({"id": item_id, "kind": kind, "path": str(file.resolve()), "options": row})
    return items


def _valid_id(item_id, manifest: Path, n: int) -> str:
    """An explicit item id: a safe folder name, not ending like an error file."""
    text = str(item_id)
    try:
        safe_name(text, "item id")
    except InputError as exc:
        raise InputError(f"{manifest}: item {n}: {exc}") from None
    if text.lower().endswith(".error.json"):
        raise InputError(f"{manifest}: item {n}: item id {text!r} would collide with an error file (*.error.json)")
    return text


# ---- running ----------------------------------------------------------------------

def _item_dir(out_dir: Path, item_id: str) -> Path:
    """``out_dir/items/<id>``, resolved and checked to lie inside ``out_dir/items``."""
    return path_inside(Path(out_dir) / "items", safe_name(item_id, "item id"))


def is_done(out_dir: Path, item_id: str, retry_failed: bool = False) -> bool:
    """Finished: a result exists, or (unless ``retry_failed``) a recorded error."""
    d = _item_dir(out_dir, item_id)
    if (d / "result.json").is_file():
        return True
    return not retry_failed and d.with_name(f"{item_id}.error.json").is_file()


def run_item(item: dict, out_dir: str, run_id: str | None = None) -> dict:
    """Run one item; write its folder atomically; never raise (errors are results).

    The handler writes into a temporary folder that becomes ``items/<id>/`` (replacing
    an older one) only when the handler and ``result.json`` are done; a failure leaves
    no folder and writes ``items/<id>.error.json`` instead. Options with a documented
    range (:data:`nanodomains.limits.RANGES`) are checked first. An interrupt
    (KeyboardInterrupt, SIGTERM) is not an item failure: it propagates.
    """
    from nanodomains.limits import check_params

    out = Path(out_dir)
    final = _item_dir(out, item["id"])
    error_file = final.with_name(f"{item['id']}.error.json")
    t0 = time.perf_counter()
    record = {"id": item["id"], "kind": item["kind"], "path": item["path"], "run_id": run_id}
    try:
        check_params(item["kind"], item["options"])
        with _local_dask(), atomic_dir(final) as tmp:
            values = HANDLERS[item["kind"]](Path(item["path"]), tmp, dict(item["options"]))
            record.update(status="ok", elapsed_s=round(time.perf_counter() - t0, 3), results=values)
            write_json_atomic(record, tmp / "result.json", indent=2)
        error_file.unlink(missing_ok=True)
    except Exception as exc:  # a failing item is reported, not fatal
        record.update(status="error", elapsed_s=round(time.perf_counter() - t0, 3),
                      error_type=type(exc).__name__, error=str(exc),
                      traceback=None if isinstance(exc, NanodomainsError) else traceback.format_exc())
        record.pop("results", None)
        write_json_atomic(record, error_file, indent=2)
    return record


def _local_dask():
    """Dask collections inside an item (xarray's netCDF writer asks for a scheduler) run
    synchronously, never through the batch's own cluster: an item never depends on the
    cluster staying up, so an interrupt cannot turn into a spurious item error."""
    import contextlib

    try:
        import dask
    except ImportError:  # pragma: no cover - dask is a dependency of batch
        return contextlib.nullcontext()
    return dask.config.set(scheduler="synchronous")


def remove_stale_temporaries(out_dir: str | Path) -> list[Path]:
    """Delete the temporary files and folders a killed run left in ``out_dir``; return them.

    They are the hidden ``.<name>.tmp-<pid>...`` and ``.<name>.old-<pid>`` entries of
    :func:`nanodomains.files.atomic_path` and :func:`~nanodomains.files.atomic_dir` in
    ``out_dir`` and ``out_dir/items`` (an ``.old-`` folder whose item is missing is
    put back). Call it only while holding the folder's lock (:func:`run_batch` does).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     (Path(d) / "items" / ".a.tmp-123").mkdir(parents=True)
    ...     _ = (Path(d) / ".batch.tmp-123.parquet").write_text("half")
    ...     [p.name for p in remove_stale_temporaries(d)]
    ['.batch.tmp-123.parquet', '.a.tmp-123']
    """
    removed = []
    for folder in (Path(out_dir), Path(out_dir) / "items"):
        removed += remove_stale_in(folder, only_dead=False)
    return removed


# ---- the run manifest -------------------------------------------------------------

RUN_SCHEMA = "nanodomains.batch.run/1"


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


def read_run_manifest(out_dir: str | Path) -> dict | None:
    """``DIR/run.json`` (the batch's run manifest), or None before the first run."""
    path = Path(out_dir) / "run.json"
    return read_json(path) if path.is_file() else None


def _start_run(out: Path, manifest: str | Path, items: list[dict], todo: list[dict]) -> dict:
    """Open a run in ``run.json``: earlier ``running`` entries whose process is gone become ``killed``."""
    from nanodomains import __version__

    state = read_run_manifest(out) or {"schema": RUN_SCHEMA, "runs": [], "items": {}}
    for run in state["runs"]:
        if run.get("status") == "running" and not (run.get("pid") == os.getpid() or _pid_alive(run.get("pid"))):
            run.update(status="killed", note="the process ended without closing its run; "
                                              "its finished items are complete, the rest were rerun or not run")
    run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    state["runs"].append({"run_id": run_id, "pid": os.getpid(), "started": _now(), "status": "running",
                          "software": f"nanodomains {__version__}", "manifest": str(Path(manifest).resolve()),
                          "manifest_sha256": _sha256(manifest), "items_to_run": [it["id"] for it in todo]})
    state["status"] = "running"
    write_json_atomic(state, out / "run.json", indent=2)
    return state


def _close_run(out: Path, state: dict, items: list[dict], records: list[dict], status: str) -> dict:
    """Record the run's end, which run wrote each item, and items foreign to the manifest."""
    run = state["runs"][-1]
    listed = {it["id"] for it in items}
    for r in records:
        if r["status"] in ("ok", "error"):
            state["items"][r["id"]] = {"status": r["status"], "run_id": r.get("run_id")}
        else:
            state["items"].pop(r["id"], None)
    present = {p.name.removesuffix(".error.json") for p in (out / "items").iterdir() if not p.name.startswith(".")}
    state["items_not_in_manifest"] = sorted(present - listed)
    n = {k: sum(r["status"] == k for r in records) for k in ("ok", "error", "not run")}
    run.update(ended=_now(), status=status, n_ok=n["ok"], n_error=n["error"], n_not_run=n["not run"])
    state["status"] = "complete" if status == "complete" and not n["not run"] else "incomplete"
    state["mixed_runs"] = len({v["run_id"] for k, v in state["items"].items() if k in listed}) > 1
    write_json_atomic(state, out / "run.json", indent=2)
    return state


# ---- the run ----------------------------------------------------------------------

def run_batch(manifest: str | Path, out_dir: str | Path, workers: int = 2,
              scheduler: str | None = None, progress: Callable[[dict], None] | None = None,
              retry_failed: bool = False) -> list[dict]:
    """Run every unfinished item of ``manifest``; write the table and report; return records.

    Items with a stored result are skipped; items with a stored error too, unless
    ``retry_failed``. Temporary files of a killed earlier run are removed first
    (:func:`remove_stale_temporaries`); ``run.json`` records the run (see the module
    docstring). Nothing is written when the manifest, ``out_dir`` or the scheduler is
    bad.

    Parameters
    ----------
    manifest : str or Path
        CSV or YAML manifest (:func:`read_manifest`).
    out_dir : str or Path
        Output folder: ``items/<id>/``, ``items/<id>.error.json``, ``batch.parquet``,
        ``report.html``, ``run.json``.
    workers : int
        Local Dask worker processes; 0 runs in this process.
    scheduler : str, optional
        Address of an existing Dask scheduler (then ``workers`` is not used).
    progress : callable, optional
        Called with each finished item's record.
    retry_failed : bool
        Rerun items whose error is stored.

    Returns
    -------
    list of dict
        One record per manifest item: ``status`` "ok", "error" or "not run", with
        ``results`` (the handler's scalars) or ``error_type`` and ``error``.

    Examples
    --------
    >>> import tempfile
    >>> from nanodomains.structure import homogeneous
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = homogeneous(4.0, seed=1).to_json(Path(d) / "nc.json")
    ...     _ = (Path(d) / "m.csv").write_text("id,path\\nnc,nc.json\\n")
    ...     records = run_batch(Path(d) / "m.csv", Path(d) / "out", workers=0)
    ...     sorted(p.name for p in (Path(d) / "out").iterdir() if not p.name.startswith("."))
    ['batch.parquet', 'items', 'report.html', 'run.json']
    >>> records[0]["status"], records[0]["results"]["n_domains"]
    ('ok', 1)
    """
    from nanodomains.limits import check

    items = read_manifest(manifest)
    check("workers", workers)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileFormatError(f"--out {out}: is a file, not a folder")
    pending = [it for it in items if not (out / "items").is_dir() or not is_done(out, it["id"], retry_failed)]
    client, cluster = (None, None)
    if pending and (workers > 0 or scheduler):
        client, cluster = connect(workers, scheduler)  # before anything is written
    try:
        ensure_dir(out)
        with folder_lock(out, "batch"):
            remove_stale_temporaries(out)
            ensure_dir(out / "items")
            todo = [it for it in items if not is_done(out, it["id"], retry_failed)]
            state = _start_run(out, manifest, items, todo)
            run_id = state["runs"][-1]["run_id"]
            status = "interrupted"
            try:
                if client is not None and todo:
                    _run_dask(client, cluster, todo, out, run_id, progress)
                else:
                    for it in todo:
                        rec = run_item(it, str(out), run_id)
                        if progress:
                            progress(rec)
                status = "complete"
            except BaseException:
                acknowledge_interrupt()  # the summary below must not be interrupted again
                raise
            finally:  # also on Ctrl-C / SIGTERM: the folder says what is done
                records = [collect_record(out, it) for it in items]
                write_table(records, out / "batch.parquet")
                write_batch_report(records, out)
                _close_run(out, state, items, records, status)
    finally:
        if client is not None:
            close(client, cluster)
    return records


def connect(workers: int, scheduler: str | None, timeout_s: float = 10.0):
    """A Dask client on ``scheduler`` or on a new LocalCluster; a clear error when unreachable."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        if "://" not in scheduler or not scheduler.rsplit(":", 1)[-1].isdigit():
            raise InputError(f"--scheduler {scheduler!r}: expected an address like tcp://host:8786")
        try:
            return Client(scheduler, timeout=timeout_s), None
        except (OSError, TimeoutError) as exc:
            raise InputError(f"--scheduler {scheduler}: cannot connect within {timeout_s:g} s ({exc})") from None
    import logging

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR)  # workers' shutdown chatter is not the user's news
    return Client(cluster), cluster


def close(client, cluster) -> None:
    """Close a client and its LocalCluster (quietly: the workers' shutdown chatter is not news)."""
    import logging

    if getattr(client, "status", None) == "closed":
        return
    quiet = [logging.getLogger(n) for n in ("distributed", "tornado", "asyncio")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.CRITICAL)
    try:
        client.close()
        if cluster is not None:
            cluster.close()
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)


def _run_dask(client, cluster, todo, out: Path, run_id: str, progress) -> None:
    """Submit ``todo``; on an interrupt cancel every unfinished future and stop the
    workers before re-raising, so no item lands after the run manifest is closed."""
    from dask.distributed import as_completed

    futures = client.map(run_item, todo, out_dir=str(out), run_id=run_id, pure=False)
    try:
        for fut in as_completed(futures):
            rec = fut.result()
            if progress:
                progress(rec)
    except BaseException:
        acknowledge_interrupt()
        try:
            client.cancel(futures, force=True)
        finally:
            close(client, cluster)
        raise


def collect_record(out: Path, item: dict) -> dict:
    """The stored record of an item: its result, its error, or 'not run'."""
    result = _item_dir(out, item["id"]) / "result.json"
    error = _item_dir(out, item["id"]).with_name(f"{item['id']}.error.json")
    if result.is_file():
        return read_json(result)
    if error.is_file():
        return read_json(error)
    return {"id": item["id"], "kind": item["kind"], "path": item["path"], "status": "not run"}


def item_plots(records: list[dict], out: Path, budget_bytes: int = REPORT_PLOT_BUDGET_BYTES) -> tuple[list, int]:
    """The items' interactive figures (``items/<id>/interactive.json``) within ``budget_bytes``.

    Returns
    -------
    plots : list of (Figure, caption)
    left : int
        Figures left out because the budget was spent.
    """
    import plotly.io as pio

    plots, used, left = [], 0, 0
    for r in records:
        path = _item_dir(out, r["id"]) / INTERACTIVE_FILE
        if r["status"] != "ok" or (r.get("results") or {}).get("interactive") != INTERACTIVE_FILE or not path.is_file():
            continue
        size = path.stat().st_size
        if used + size > budget_bytes:
            left += 1
            continue
        used += size
        plots.append((pio.read_json(path), f"{r['id']} ({r['kind']}): zoom (drag), hover for values"))
    return plots, left


def _flat(record: dict) -> dict:
    row = {k: record.get(k) for k in ("id", "kind", "path", "status", "elapsed_s", "error_type", "error")}
    for k, v in (record.get("results") or {}).items():
        if isinstance(v, (int, float, str, bool)):
            row[f"result_{k}"] = v
    return row


def write_table(records: list[dict], path: Path) -> Path:
    """One row per item to Parquet (atomic)."""
    import pandas as pd

    df = pd.DataFrame([_flat(r) for r in records])
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return path


def write_batch_report(records: list[dict], out: Path) -> Path:
    """``out/report.html``: the items table, an interactive overview of the items, each
    item's interactive figure (``interactive.json``, up to
    :data:`REPORT_PLOT_BUDGET_BYTES`) and its PNG figure (the first 24)."""
    from nanodomains.pipeline.report import Section, write_report

    rows = [{k: v for k, v in _flat(r).items() if v is not None and k != "path"} for r in records]
    n_ok = sum(r["status"] == "ok" for r in records)
    figures = []
    for r in records:
        fig = (r.get("results") or {}).get("figure")
        if r["status"] == "ok" and fig and (_item_dir(out, r["id"]) / fig).is_file():
            figures.append((_item_dir(out, r["id"]) / fig, f"{r['id']} ({r['kind']})"))
    plots, left = item_plots(records, out)
    note = (f" {left} further interactive figures are not embedded (size budget): open items/<id>/"
            f"{INTERACTIVE_FILE} with plotly.io.read_json." if left else "")
    sections = [Section("Items", f"{n_ok} of {len(records)} items finished without error." + note,
                        plots=[(interactive.batch_items_figure(records), "time per item; hover a bar for its "
                                                                         "results")] + plots,
                        figures=figures[:24], tables=[(rows, "one row per item")])]
    errors = [r for r in records if r["status"] == "error"]
    if errors:
        sections.append(Section("Errors", tables=[([{"id": r["id"], "type": r.get("error_type"),
                                                      "error": r.get("error")} for r in errors], "")]))
    return write_report(out / "report.html", "nanodomains batch", sections)

"""Batch runs of analyses and simulations on dask.distributed.

Manifest
--------
CSV (header row) or YAML (a list of mappings, or ``{"items": [...]}``). Each item has
``path`` (relative paths resolve against the manifest's folder) and optionally ``id``
(default: row number and file stem) and ``kind`` (default: from the file extension).
Other keys are passed to the item's handler as options.

Kinds (see :data:`HANDLERS`): ``stem_image`` (.dm3 .dm4 .emd .ser .tif .hspy -> domains,
columns, compositions), ``pl_movie`` (.sif .spe .csv .nc -> emitters),
``photons_g2`` (.ptu .npz -> g2), ``photons_lifetime`` (decay text), ``nc_model``
(.json NC model -> description). Other capabilities register their handlers with
:func:`register`.

Guarantees
----------
* Each item's outputs are written into a temporary folder renamed to
  ``DIR/items/<id>/`` when complete, so a crash or interrupt never leaves a half item.
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
import json
import os
import shutil
import time
import traceback
from pathlib import Path
from typing import Callable

from nanodomains.errors import FileFormatError, InputError, NanodomainsError

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

@register("pl_movie", (".sif", ".spe", ".csv"))
def _pl_movie(path: Path, out: Path, options: dict) -> dict:
    from nanodomains.spectroscopy.io import load_movie
    from nanodomains.spectroscopy.movie_analysis import analyze_movie

    movie = load_movie(path)
    res = analyze_movie(movie, **options)
    res.write(out)
    kinds = [e.kind for e in res.emitters]
    return {"n_frames": int(movie.sizes["time"]), "n_emitters": len(kinds),
            "kinds": ",".join(sorted(set(kinds)))}


@register("photons_g2", (".ptu", ".npz"))
def _photons_g2(path: Path, out: Path, options: dict) -> dict:
    from nanodomains.spectroscopy.g2 import compute_g2_file, plot_g2, write_g2_csv

    res = compute_g2_file(path, **options)
    res.to_json(out / "g2.json")
    write_g2_csv(res, out / "g2.csv")
    plot_g2(res, out / "g2.png")
    return {"g2_0": res.g2_0.value, "g2_0_err": res.g2_0.stderr, "n_photons": res.n_photons,
            "duration_s": res.duration_s, "figure": "g2.png"}


@register("photons_lifetime", (".txt", ".dat"))
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
    return values


@register("stem_image", (".dm3", ".dm4", ".emd", ".ser", ".tif", ".tiff", ".hspy"))
def _stem_image(path: Path, out: Path, options: dict) -> dict:
    from nanodomains.stem.analyze import analyze_for_batch

    return analyze_for_batch(path, out, options)


@register("nc_model", (".json",))
def _nc_model(path: Path, out: Path, options: dict) -> dict:
    from nanodomains.structure import NanoCrystal

    nc = NanoCrystal.from_json(path)
    desc = nc.describe()
    (out / "describe.json").write_text(json.dumps(desc, indent=2))
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
    """Items of a CSV or YAML manifest, with ``id``, ``kind`` and absolute ``path``."""
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
        item_id = str(row.pop("id", f"{n:04d}_{file.stem}"))
        if item_id in seen:
            raise InputError(f"{p}: duplicate item id {item_id!r}")
        seen.add(item_id)
        items.append({"id": item_id, "kind": kind, "path": str(file.resolve()), "options": row})
    return items


# ---- running ----------------------------------------------------------------------

def _item_dir(out_dir: Path, item_id: str) -> Path:
    return out_dir / "items" / item_id


def is_done(out_dir: Path, item_id: str, retry_failed: bool = False) -> bool:
    """Finished: a result exists, or (unless ``retry_failed``) a recorded error."""
    d = _item_dir(out_dir, item_id)
    if (d / "result.json").is_file():
        return True
    return not retry_failed and d.with_name(f"{item_id}.error.json").is_file()


def run_item(item: dict, out_dir: str) -> dict:
    """Run one item; write its folder atomically; never raise (errors are results)."""
    out = Path(out_dir)
    final = _item_dir(out, item["id"])
    tmp = final.with_name(f".{item['id']}.tmp-{os.getpid()}")
    error_file = final.with_name(f"{item['id']}.error.json")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t0 = time.perf_counter()
    record = {"id": item["id"], "kind": item["kind"], "path": item["path"]}
    try:
        values = HANDLERS[item["kind"]](Path(item["path"]), tmp, dict(item["options"]))
        record.update(status="ok", elapsed_s=round(time.perf_counter() - t0, 3), results=values)
        (tmp / "result.json").write_text(json.dumps(record, indent=2, default=float))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        error_file.unlink(missing_ok=True)
    except Exception as exc:  # a failing item is reported, not fatal
        shutil.rmtree(tmp, ignore_errors=True)
        record.update(status="error", elapsed_s=round(time.perf_counter() - t0, 3),
                      error_type=type(exc).__name__, error=str(exc),
                      traceback=None if isinstance(exc, NanodomainsError) else traceback.format_exc())
        error_file.write_text(json.dumps(record, indent=2, default=float))
    return record


def run_batch(manifest: str | Path, out_dir: str | Path, workers: int = 2,
              scheduler: str | None = None, progress: Callable[[dict], None] | None = None,
              retry_failed: bool = False) -> list[dict]:
    """Run every unfinished item of ``manifest``; write the table and report; return records.

    Items with a stored result are skipped; items with a stored error too, unless
    ``retry_failed``.
    """
    items = read_manifest(manifest)
    out = Path(out_dir)
    (out / "items").mkdir(parents=True, exist_ok=True)
    todo = [it for it in items if not is_done(out, it["id"], retry_failed)]
    if workers < 0:
        raise InputError(f"workers must be >= 0, got {workers}")
    if todo and (workers > 0 or scheduler):
        _run_dask(todo, out, workers, scheduler, progress)
    else:
        for it in todo:
            rec = run_item(it, str(out))
            if progress:
                progress(rec)
    records = [collect_record(out, it) for it in items]
    write_table(records, out / "batch.parquet")
    write_batch_report(records, out)
    return records


def _run_dask(todo, out: Path, workers: int, scheduler: str | None, progress) -> None:
    from dask.distributed import Client, LocalCluster, as_completed

    if scheduler:
        client = Client(scheduler)
        cluster = None
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        futures = client.map(run_item, todo, out_dir=str(out), pure=False)
        for fut in as_completed(futures):
            rec = fut.result()
            if progress:
                progress(rec)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def collect_record(out: Path, item: dict) -> dict:
    """The stored record of an item: its result, its error, or 'not run'."""
    result = _item_dir(out, item["id"]) / "result.json"
    error = _item_dir(out, item["id"]).with_name(f"{item['id']}.error.json")
    if result.is_file():
        return json.loads(result.read_text())
    if error.is_file():
        return json.loads(error.read_text())
    return {"id": item["id"], "kind": item["kind"], "path": item["path"], "status": "not run"}


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
    tmp = path.with_name(path.name + ".tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def write_batch_report(records: list[dict], out: Path) -> Path:
    from nanodomains.pipeline.report import Section, write_report

    rows = [{k: v for k, v in _flat(r).items() if v is not None and k != "path"} for r in records]
    n_ok = sum(r["status"] == "ok" for r in records)
    figures = []
    for r in records:
        fig = (r.get("results") or {}).get("figure")
        if r["status"] == "ok" and fig and (_item_dir(out, r["id"]) / fig).is_file():
            figures.append((_item_dir(out, r["id"]) / fig, f"{r['id']} ({r['kind']})"))
    sections = [Section("Items", f"{n_ok} of {len(records)} items finished without error.",
                        figures=figures[:24], tables=[(rows, "one row per item")])]
    errors = [r for r in records if r["status"] == "error"]
    if errors:
        sections.append(Section("Errors", tables=[([{"id": r["id"], "type": r.get("error_type"),
                                                      "error": r.get("error")} for r in errors], "")]))
    return write_report(out / "report.html", "nanodomains batch", sections)

"""Populations of single NCs: one set or several sets of peaks (the seed's Table S2).

For every NC the PL movie is analysed (:func:`~nanodomains.spectroscopy.movie_analysis.
analyze_movie`); optional photon files give g2(0) (:func:`~nanodomains.spectroscopy.g2.
compute_g2_file`) and optional decay histograms a lifetime (reconvolution with an IRF
when one is given, else a tail fit). An NC with two or more neutral fine-structure sets
is "several sets" (the seed: ~40 of ~130 NCs; trions count with their neutral set).

Inputs
------
* a folder: each movie (.sif, .spe, .csv, .nc) is one NC; ``<stem>.ptu``/``<stem>.npz``
  beside it are its photons and ``<stem>_decay.txt`` its decay histogram;
* or a manifest (CSV/YAML) with columns ``nc``, ``movie`` and optional ``photons``,
  ``decay``, ``irf`` and ``emitters`` (paths relative to the manifest; ``emitters`` is
  the ``emitters.json`` of an earlier ``pl analyze`` of the movie, read through
  :class:`~nanodomains.records.emitters.PLEmitters` instead of analysing again).

A failing NC is recorded with its error and the rest go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nanodomains.errors import FileFormatError, InputError
from nanodomains.files import atomic_path, write_json_atomic
from nanodomains.records import PLEmitters

MOVIE_SUFFIXES = (".sif", ".spe", ".csv", ".nc")
PHOTON_SUFFIXES = (".ptu", ".npz")


@dataclass
class PopulationResult:
    """One row per NC and a per-emitter table."""

    rows: list[dict] = field(default_factory=list)
    emitters: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        ok = [r for r in self.rows if r["status"] == "ok"]
        multi = sum(r["n_sets"] >= 2 for r in ok)
        n = len(ok)
        frac = multi / n if n else float("nan")
        hist: dict[str, int] = {}
        for r in ok:
            hist[str(r["n_sets"])] = hist.get(str(r["n_sets"]), 0) + 1
        return {"n_nc": len(self.rows), "n_analysed": n, "n_failed": len(self.rows) - n,
                "several_sets": multi, "one_set": sum(r["n_sets"] == 1 for r in ok),
                "no_emitter": sum(r["n_sets"] == 0 for r in ok),
                "several_sets_fraction": frac,
                "several_sets_fraction_se": float(np.sqrt(frac * (1 - frac) / n)) if n else float("nan"),
                "sets_per_nc": dict(sorted(hist.items()))}

    def write(self, out_dir) -> dict:
        """population.csv (per NC), population_emitters.csv, population.json, population.png."""
        import pandas as pd

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"nc": out / "population.csv", "emitters": out / "population_emitters.csv",
                 "summary": out / "population.json", "figure": out / "population.png"}
        for key, rows in (("nc", self.rows), ("emitters", self.emitters)):
            with atomic_path(paths[key]) as tmp:
                pd.DataFrame(rows).to_csv(tmp, index=False)
        write_json_atomic(self.summary(), paths["summary"], indent=2)
        self.plot(paths["figure"])
        return paths

    def plot(self, path=None):
        import matplotlib.pyplot as plt

        s = self.summary()
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        k = [int(v) for v in s["sets_per_nc"]]
        axes[0].bar(k, list(s["sets_per_nc"].values()), color="tab:blue")
        axes[0].set(xlabel="sets of peaks per NC", ylabel="NCs",
                    title=f"several sets: {s['several_sets']} of {s['n_analysed']}")
        split = [e for e in self.emitters if e["kind"] in ("doublet", "triplet") and e.get("fss_uev") is not None]
        axes[1].errorbar([e["center_nm"] for e in split], [e["fss_uev"] for e in split],
                         yerr=[np.nan if e["fss_uev_err"] is None else e["fss_uev_err"] for e in split], fmt="o", ms=4)
        axes[1].set(xlabel="set centre (nm)", ylabel="FSS (ueV)", title="fine structure of doublets and triplets")
        fig.tight_layout()
        if path is not None:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, dpi=100)
            plt.close(fig)
        return fig


def find_population(source) -> list[dict]:
    """NC entries (``nc``, ``movie``, optional ``photons``, ``decay``, ``irf``) of a folder or manifest."""
    src = Path(source)
    if src.is_dir():
        entries = []
        for movie in sorted(p for p in src.iterdir() if p.suffix.lower() in MOVIE_SUFFIXES):
            entry = {"nc": movie.stem, "movie": str(movie)}
            for suffix in PHOTON_SUFFIXES:
                if (src / f"{movie.stem}{suffix}").is_file():
                    entry["photons"] = str(src / f"{movie.stem}{suffix}")
            if (src / f"{movie.stem}_decay.txt").is_file():
                entry["decay"] = str(src / f"{movie.stem}_decay.txt")
            entries.append(entry)
        if not entries:
            raise FileFormatError(f"{src}: no movie files ({', '.join(MOVIE_SUFFIXES)}) in the folder")
        return entries
    if not src.is_file():
        raise FileFormatError(f"{src}: no such folder or manifest")
    import pandas as pd

    if src.suffix.lower() == ".csv":
        table = pd.read_csv(src, dtype=str).fillna("")
        rows = table.to_dict("records")
    elif src.suffix.lower() in (".yaml", ".yml"):
        import yaml

        raw = yaml.safe_load(src.read_text())
        rows = raw.get("items") if isinstance(raw, dict) else raw
    else:
        raise FileFormatError(f"{src}: population manifest must be .csv or .yaml")
    if not rows:
        raise FileFormatError(f"{src}: manifest holds no NCs")
    entries = []
    for n, row in enumerate(rows):
        if not row.get("movie"):
            raise FileFormatError(f"{src}: NC {n} has no 'movie'")
        entry = {"nc": str(row.get("nc") or Path(row["movie"]).stem)}
        for key in ("movie", "photons", "decay", "irf", "emitters"):
            if row.get(key):
                p = Path(str(row[key]))
                entry[key] = str(p if p.is_absolute() else src.parent / p)
        entries.append(entry)
    return entries


def emitter_rows(record: PLEmitters, nc: str) -> tuple[dict, list[dict]]:
    """Table S2 row of one NC and its per-emitter rows, from its emitters record.

    Examples
    --------
    >>> from nanodomains.records import PLEmitter, PLEmitters, PLLine, measured
    >>> rec = PLEmitters(emitters=[PLEmitter(id="E1", kind="doublet", center_nm=measured(652.7, 0.002),
    ...     fss_uev=measured(677.0, 4.0), lines=[PLLine(center_nm=measured(652.56, 0.003)),
    ...     PLLine(center_nm=measured(652.84, 0.003))])])
    >>> row, table = emitter_rows(rec, "nc1")
    >>> row["n_sets"], row["centers_nm"], table[0]["fss_uev_err"]
    (1, '652.70', 4.0)
    """
    neutral = [e for e in record.emitters if e.kind != "trion"]
    row = {"nc": nc, "status": "ok", "n_sets": len(neutral),
           "n_trions": len(record.emitters) - len(neutral),
           "centers_nm": " ".join(f"{float(e.center_nm):.2f}" for e in neutral),
           "kinds": " ".join(e.kind for e in neutral)}
    table = [{"nc": nc, "id": e.id, "kind": e.kind, "center_nm": e.center_nm.value,
              "fss_uev": e.fss_uev.value, "fss_uev_err": e.fss_uev.stderr,
              "linewidth_uev": e.linewidth_uev.value if e.linewidth_uev else None,
              "mean_counts": e.mean_counts.value if e.mean_counts else None,
              "lines_nm": " ".join(f"{x:.3f}" for x in e.lines_nm)} for e in record.emitters]
    return row, table


def _emitters_record(entry: dict, movie_options: dict) -> PLEmitters:
    """The NC's emitters: read from its ``emitters`` file (an earlier ``pl analyze``),
    else found by analysing its movie."""
    if entry.get("emitters"):
        return PLEmitters.from_json(entry["emitters"])
    from nanodomains.spectroscopy.io import load_movie
    from nanodomains.spectroscopy.movie_analysis import analyze_movie

    return analyze_movie(load_movie(entry["movie"]), **movie_options).record


def _analyse_nc(entry: dict, movie_options: dict, g2_options: dict) -> tuple[dict, list[dict]]:
    from nanodomains.spectroscopy import lifetime as lt
    from nanodomains.spectroscopy.g2 import compute_g2_file

    row, table = emitter_rows(_emitters_record(entry, movie_options), entry["nc"])
    if entry.get("photons"):
        g2 = compute_g2_file(entry["photons"], **g2_options)
        row.update(g2_0=g2.g2_0.value, g2_0_err=g2.g2_0.stderr)
    if entry.get("decay"):
        tau = lt.fit_lifetime(lt.load_decay(entry["decay"]), entry.get("irf")).components[0].tau_ns
        row.update(lifetime_ns=tau.value, lifetime_ns_err=tau.stderr)
    return row, table


def analyze_population(source, *, movie_options: dict | None = None, g2_options: dict | None = None,
                       progress=None) -> PopulationResult:
    """Analyse every NC of a folder or manifest (see module docstring)."""
    from nanodomains.errors import NanodomainsError

    entries = find_population(source)
    movie_options = dict(movie_options or {})
    g2_options = dict(g2_options or {})
    unknown = set(g2_options) - {"channels", "bin_ns", "window_ns", "mode", "period_ns", "offset_ns"}
    if unknown:
        raise InputError(f"unknown g2 options {sorted(unknown)}")
    result = PopulationResult()
    for entry in entries:
        try:
            row, table = _analyse_nc(entry, movie_options, g2_options)
            result.rows.append(row)
            result.emitters += table
        except (NanodomainsError, OSError, ValueError) as exc:
            result.rows.append({"nc": entry["nc"], "status": "error", "n_sets": -1,
                                "error": f"{type(exc).__name__}: {exc}"})
        if progress is not None:
            progress(entry["nc"])
    return result

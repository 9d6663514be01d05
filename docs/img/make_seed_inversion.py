"""The seed's Fig. 5 line sets inverted with `nanodomains infer` (issue 16 item 5).

Each figure's sets belong to one NC (Liu, Zhu, Pols et al., Nano Lett. 23, 10089
(2023), Fig. 5; numbers in shared/PHYSICS.md). The seed states line centres to 0.01 nm
and no FSS for these sets, so each emitter carries its centre with a 0.01 nm standard
error (the last stated digit) and no FSS; Fig. 5d adds QD1* as QD1's trion. Each NC is
inverted twice: with the default priors, and with the seed's STEM compositions of the
same kind of NC (R1 0.27, R2 0.52, Fig. 1g; sd 0.05, the Z-contrast error of
docs/stem_zcontrast.md; no areas) as the mixture prior.

    PYTHONPATH=src python docs/img/make_seed_inversion.py

writes docs/img/seed_inversion.json and docs/img/seed_inversion.png.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nanodomains.records import Measured, PLEmitter, PLEmitters
from nanodomains.spectroscopy import inference as inf

HERE = Path(__file__).resolve().parent
SEED_SETS = {
    "Fig. 5a": [("557.93", 557.93, "doublet", None), ("615.83", 615.83, "triplet", None),
                ("657.88", 657.88, "doublet", None)],
    "Fig. 5b": [("659.02", 659.02, "doublet", None), ("662.28", 662.28, "triplet", None),
                ("667.46", 667.46, "doublet", None)],
    "Fig. 5d": [("QD1", 652.36, "singlet", None), ("QD2", 652.71, "doublet", None),
                ("QD1*", 655.76, "trion", "QD1")],
}
SEED_STEM = inf.StemPrior(br_fraction=np.array([0.27, 0.52]), br_fraction_sd=np.array([0.05, 0.05]),
                          area_nm2=np.array([np.nan, np.nan]),
                          source="seed Fig. 1g STEM compositions R1 0.27, R2 0.52 (sd 0.05)")


def emitters_of(lines) -> PLEmitters:
    out = []
    for name, nm, kind, parent in lines:
        if kind == "trion":
            out.append(PLEmitter(id=name, kind="trion", state="X*", trion_of=parent,
                                 center_nm=Measured(value=nm, stderr=0.01), fss_uev=Measured(value=0.0, stderr=0.0)))
        else:
            out.append(PLEmitter(id=name, kind=kind, center_nm=Measured(value=nm, stderr=0.01),
                                 fss_uev=Measured(value=0.0, stderr=0.0) if kind == "singlet" else Measured(value=None)))
    return PLEmitters(emitters=out, source="seed (Liu, Zhu, Pols et al. 2023)")


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = {}
    settings = inf.InferenceSettings(seed=5)  # default 10 000 steps
    for fig, lines in SEED_SETS.items():
        rec = emitters_of(lines)
        for label, stem in (("default priors", None), ("with seed STEM prior", SEED_STEM)):
            r = inf.infer_emitters(rec, stem=stem, settings=settings, source=fig).record
            results.setdefault(fig, {})[label] = {
                "domains": [{"emitter": d.emitter_id, "center_nm": d.measured_center_nm.value,
                             "br_fraction": [d.br_fraction.value, d.br_fraction.stderr],
                             "br_fraction_ci90": list(d.br_fraction_ci90),
                             "thickness_nm": [d.thickness_nm.value, d.thickness_nm.stderr],
                             "thickness_nm_ci90": list(d.thickness_nm_ci90),
                             "corr_f_t": d.size_composition_corr, "predictive_z": d.predictive_z,
                             "trion_shift_mev": None if d.measured_trion_shift_mev is None else
                             [d.measured_trion_shift_mev.value, d.predicted_trion_shift_mev.value,
                              d.predicted_trion_shift_mev.stderr]}
                            for d in r.domains],
                "bowing_ev": [r.bowing_ev.value, r.bowing_ev.stderr], "bowing_ev_ci90": list(r.bowing_ev_ci90),
                "nc_edge_nm": [r.nc_edge_nm.value, r.nc_edge_nm.stderr], "converged": r.sampler["converged"],
                "n_effective": r.sampler["n_effective"], "fit_ok": r.fit_ok, "warnings": list(r.warnings),
                "elapsed_s": r.elapsed_s}
            print(fig, label, [(d["emitter"], np.round(d["br_fraction_ci90"], 2).tolist(),
                                np.round(d["thickness_nm_ci90"], 1).tolist()) for d in results[fig][label]["domains"]],
                  "bowing", np.round(r.bowing_ev_ci90, 2).tolist(), flush=True)
    (HERE / "seed_inversion.json").write_text(json.dumps(results, indent=1))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True)
    for ax, (name, res) in zip(axes, results.items()):
        for k, (label, color, dy) in enumerate((("default priors", "tab:blue", -0.12),
                                                ("with seed STEM prior", "tab:red", 0.12))):
            for j, d in enumerate(res[label]["domains"]):
                lo, hi = d["br_fraction_ci90"]
                ax.plot([lo, hi], [j + dy, j + dy], color=color, lw=4, alpha=0.6, label=label if j == 0 else None)
                ax.plot(d["br_fraction"][0], j + dy, "o", color=color, ms=4)
        ax.set_yticks(range(len(res["default priors"]["domains"])),
                      [f"{d['emitter']} ({d['center_nm']:.2f} nm)" for d in res["default priors"]["domains"]])
        for f0 in (0.27, 0.52):
            ax.axvline(f0, color="0.6", ls=":", lw=1)
        ax.set_xlim(0, 1)
        ax.set_xlabel("Br fraction (90 % interval)")
        ax.set_title(name)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(HERE / "seed_inversion.png", dpi=90)


if __name__ == "__main__":
    main()

"""Figures for docs/spectroscopy.md: python docs/img/make_spectroscopy_figure.py

A synthetic 4 K movie (nanodomains.testing.pl: a 677 ueV doublet and an 878 ueV triplet,
both blinking, and a QD whose charged exciton X* switches to the neutral line at
37 s, with shot and read noise and four cosmic rays) analysed by
`analyze_movie`; the seed's Fig. 5c and 5d as rendered by the optical forward model
(`nanodomains.optics.presets`, seed 1); and the real Andor SIF series of the
realdata folder.
Prints the numbers quoted on the page.
"""

from pathlib import Path

from nanodomains.spectroscopy.movie_analysis import analyze_movie
from nanodomains.testing.pl import fig4_like

here = Path(__file__).resolve().parent
repo = here.parents[1]

movie, truth = fig4_like(seed=1)
a = analyze_movie(movie)
a.plot_overview(here / "spectroscopy_overview.png", title="synthetic 4 K movie (nanodomains.testing.pl.fig4_like, seed 1)")
for e in a.emitters:
    print(e.id, e.kind, f"{e.center_nm.value:.3f} nm", [f"{x:.3f}" for x in e.lines_nm],
          f"FSS {e.fss_uev.value:.1f} +- {e.fss_uev.stderr:.1f} ueV" if e.kind in ("doublet", "triplet") else "",
          f"FWHM {e.linewidth_uev.value:.0f} ueV", e.intervals_s[:3], e.trion_of or "")
for t in truth["emitters"]:
    print("truth", t["id"], t["kind"], t["center_nm"], [f"{x:.3f}" for x in t["lines_nm"]], t["fss_uev"], t["intervals_s"][:3])
print("cosmic rays", a.cosmic_rays.to_records())

from nanodomains.optics.presets import simulate_preset_movie  # noqa: E402

for name in ("fig5c", "fig5d"):
    mv, tr = simulate_preset_movie(name, seed=1)
    an = analyze_movie(mv)
    an.plot_overview(here / f"spectroscopy_{name}.png", title=f"optics preset {name} (seed 1) analysed")
    print(name, [(e.id, e.kind, round(e.center_nm.value, 3), round(e.fss_uev.value), e.intervals_s[:2], e.trion_of)
                 for e in an.emitters])
    print(name, "truth", [(t.id, t.kind, round(t.center_nm.value, 3), round(t.fss_uev.value)) for t in tr.emitters])
    print(name, [(p.a, p.b, p.verdict, p.relation, [(w["start_s"], w["stop_s"]) for w in p.windows]) for p in an.pairs
                 if p.verdict != "independent"])

real = repo.parent / "shared" / "realdata" / "spectra" / "measurement.sif"
r = analyze_movie(real)
r.plot_overview(here / "spectroscopy_real_sif.png", title="measurement.sif (Andor, sif_parser test data)")
print("real:", [(e.id, e.kind, round(e.center_nm.value, 3)) for e in r.emitters])

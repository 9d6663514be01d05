"""Figures for docs/spectroscopy.md: python docs/img/make_spectroscopy_figure.py

A synthetic 4 K movie (tests/pl_synth.py: a 677 ueV doublet and an 878 ueV triplet,
both blinking, and a QD whose charged exciton X* switches to the neutral line at
37 s, with shot and read noise and four cosmic rays) analysed by
`analyze_movie`, and the real Andor SIF series of the realdata folder.
Prints the numbers quoted on the page.
"""

import sys
from pathlib import Path

here = Path(__file__).resolve().parent
repo = here.parents[1]
sys.path.insert(0, str(repo / "tests"))  # the synthetic-movie helper of the tests

from pl_synth import fig4_like  # noqa: E402

from nanodomains.spectroscopy.movie_analysis import analyze_movie  # noqa: E402

movie, truth = fig4_like(seed=1)
a = analyze_movie(movie)
a.plot_overview(here / "spectroscopy_overview.png", title="synthetic 4 K movie (tests/pl_synth.fig4_like, seed 1)")
for e in a.emitters:
    print(e.id, e.kind, f"{e.center_nm:.3f} nm", [f"{x:.3f}" for x in e.lines_nm],
          f"FSS {e.fss_uev:.1f} +- {e.fss_uev_err:.1f} ueV" if e.kind in ("doublet", "triplet") else "",
          f"FWHM {e.linewidth_uev:.0f} ueV", e.intervals_s[:3], e.trion_of or "")
for t in truth["emitters"]:
    print("truth", t["id"], t["kind"], t["center_nm"], [f"{x:.3f}" for x in t["lines_nm"]], t["fss_uev"], t["intervals_s"][:3])
print("cosmic rays", a.cosmic_rays.to_records())

real = repo.parent / "shared" / "realdata" / "spectra" / "measurement.sif"
r = analyze_movie(real)
r.plot_overview(here / "spectroscopy_real_sif.png", title="measurement.sif (Andor, sif_parser test data)")
print("real:", [(e.id, e.kind, round(e.center_nm, 3)) for e in r.emitters])

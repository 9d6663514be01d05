"""Figures for docs/structure.md: python docs/img/make_structure_figures.py"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from nanodomains.pipeline.figures import structure_figure  # noqa: E402
from nanodomains.structure import paper_fig1  # noqa: E402
from nanodomains.structure.presets import DOMAIN_NAMES  # noqa: E402

out = Path(__file__).parent / "structure_paper_fig1.png"
structure_figure(paper_fig1(seed=1), DOMAIN_NAMES["paper_fig1"]).savefig(out, dpi=110)
print("wrote", out)

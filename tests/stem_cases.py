"""Forward-model images and their analyses, computed once per test session (test helper).

Acceptance set of the STEM analysis: incoherent images at 1e5 e/A^2 with the default
probe (300 kV, 24 mrad, 40 pm source), 20 pm pixels, 3 nm carbon support, viewed
along [100] (image axes = crystal (y, z)).
"""

from __future__ import annotations

from functools import lru_cache

from nanodomains.stem.analyze import analyze_image
from nanodomains.stem.simulate import simulate_image
from nanodomains.structure import homogeneous, paper_fig1, random_domains

DOSE = 1e5
PIXEL_PM = 20.0


@lru_cache(maxsize=None)
def simulated(kind: str, seed: int, n_domains: int = 3, edge_nm: float = 15.0, rotation_deg: float = 0.0):
    """(SimulatedImage) of ``kind`` in {"fig1", "homogeneous", "random"}."""
    if kind == "fig1":
        nc = paper_fig1(seed=seed)
    elif kind == "homogeneous":
        nc = homogeneous(edge_nm, seed=seed)
    elif kind == "random":
        nc = random_domains(edge_nm, n_domains=n_domains, seed=seed)
    else:
        raise ValueError(kind)
    return simulate_image(nc, pixel_size_pm=PIXEL_PM, dose_e_per_a2=DOSE, seed=seed, rotation_deg=rotation_deg)


@lru_cache(maxsize=None)
def analysed(kind: str, seed: int, n_domains: int = 3, edge_nm: float = 15.0, rotation_deg: float = 0.0):
    """(SimulatedImage, AnalysisResult) with the default analysis (power-law table)."""
    sim = simulated(kind, seed, n_domains, edge_nm, rotation_deg)
    return sim, analyze_image(sim.image, n_boot=200)

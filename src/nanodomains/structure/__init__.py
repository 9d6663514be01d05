"""Nanocrystal models: domains, RP boundaries, atoms (ASE), projected columns, JSON."""

from nanodomains.structure.atoms import SITE_CS, SITE_PB, SITE_X, build_atoms, write_atoms
from nanodomains.structure.columns import parse_direction, project_columns
from nanodomains.structure.model import (
    SHIFT_NONE,
    SHIFT_RP,
    Boundary,
    Domain,
    NanoCrystal,
    Region,
    homogeneous,
    random_domains,
)
from nanodomains.structure.population import read_crystals, summarize_crystals
from nanodomains.structure.presets import PRESETS, paper_fig1, preset

__all__ = [
    "NanoCrystal", "Domain", "Region", "Boundary", "SHIFT_NONE", "SHIFT_RP",
    "homogeneous", "random_domains", "paper_fig1", "preset", "PRESETS",
    "build_atoms", "write_atoms", "project_columns", "parse_direction",
    "SITE_CS", "SITE_PB", "SITE_X", "summarize_crystals", "read_crystals",
]

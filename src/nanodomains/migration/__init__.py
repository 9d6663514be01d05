"""Halide-vacancy migration: X-sublattice hop graph, rejection-free kMC, trackers, fits."""

from nanodomains.migration.analysis import (composition_decay, diffusion_coefficient, fit_arrhenius,
                                            fit_exponential_decay, hop_rate_per_ps, slab_decay_time_ps,
                                            summarize_trajectory)
from nanodomains.migration.kmc import KMCParameters, KMCResult, place_vacancies, run_kmc
from nanodomains.migration.lattice import XLattice, build_x_lattice
from nanodomains.migration.plot import plot_vacancy_paths, vacancy_paths
from nanodomains.migration.tracking import Trackers, bond_types_of, track_events

__all__ = [
    "XLattice", "build_x_lattice", "KMCParameters", "KMCResult", "run_kmc", "place_vacancies",
    "Trackers", "track_events", "bond_types_of", "fit_arrhenius",
    "diffusion_coefficient", "fit_exponential_decay", "composition_decay", "slab_decay_time_ps",
    "hop_rate_per_ps", "plot_vacancy_paths", "vacancy_paths", "summarize_trajectory",
]

"""Hand-built barrier tables (the contract of /work/barrier_schema.md) for analytic tests."""

from __future__ import annotations

import numpy as np

from nanodomains.records.atomistic import BarrierPath, BarrierTable, FaultEnergy, SiteEnergy
from nanodomains.records.base import measured

ENVIRONMENTS = ("bulk", "near_fault", "along_fault", "across_fault", "surface")


def path(name, halide, environment, barrier, reverse=None, local_br=0.5, nu_thz=None, se=0.0, converged=True):
    reverse = barrier if reverse is None else reverse
    return BarrierPath(name=name, halide=halide, environment=environment, local_br_fraction=local_br,
                       barrier_ev=measured(barrier, se), reverse_barrier_ev=measured(reverse, se),
                       attempt_frequency_thz=None if nu_thz is None else measured(nu_thz, 0.0),
                       converged=converged, max_force_ev_per_a=0.03, n_images=7, force_calls=100, wall_s=1.0,
                       reaction_coordinate_a=np.linspace(0, 3, 7), energy_ev=barrier * np.sin(np.linspace(0, np.pi, 7)))


def table(barriers: dict | None = None, *, nu_thz=4.0, site_energies=(), faults=(), se=0.0, skip=()) -> BarrierTable:
    """A table with one path per (environment, halide): ``barriers[(env, halide)]`` in eV
    (default 0.25 everywhere), attempt frequency ``nu_thz``; pairs in ``skip`` left out."""
    barriers = barriers or {}
    paths = []
    for env in ENVIRONMENTS:
        for h in ("Br", "I"):
            if (env, h) in skip:
                continue
            b = barriers.get((env, h), 0.25)
            if isinstance(b, dict):  # {local_br: barrier}
                for f, v in b.items():
                    paths.append(path(f"{env}_{h}_br{f}", h, env, v, local_br=f, nu_thz=nu_thz, se=se))
            else:
                paths.append(path(f"{env}_{h}", h, env, b, nu_thz=nu_thz, se=se))
    return BarrierTable(model="hand-built test table", paths=tuple(paths),
                        site_energies=tuple(SiteEnergy(name=f"V{h}_{d}", halide=h, distance_from_fault_nm=d,
                                                       energy_ev=measured(e, 0.0)) for h, d, e in site_energies),
                        faults=tuple(faults))


def fault(composition, br_fraction, energy_j_m2, lattice_pm, bulk_modulus_gpa, se=0.0):
    return FaultEnergy(composition=composition, br_fraction=br_fraction, energy_j_per_m2=measured(energy_j_m2, se),
                       lattice_pm=measured(lattice_pm, 0.0), bulk_modulus_gpa=measured(bulk_modulus_gpa, 0.0))

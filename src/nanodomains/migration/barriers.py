"""Halide-vacancy barriers, site energies and RP fault energies from an atomistic model.

Everything here is computed with one ASE calculator (CHGNet by default,
:mod:`nanodomains.migration.atomistic`) on periodic cells built by
:func:`nanodomains.structure.atoms.periodic_atoms`, and collected in a
:class:`~nanodomains.records.atomistic.BarrierTable` (``nanodomains.barriers/1``).

Structures
----------
* bulk: 2x2x2 cubic cells (40 atoms) of CsPbBr_{3f}I_{3(1-f)}, halides placed at random
  with exactly round(3 f N) Br; cell relaxed (``FrechetCellFilter``);
* RP: two blocks of L = 3 octahedral layers per period, the second displaced by
  1/2 a<111>, so the period holds two rock-salt CsX double layers (RP faults),
  2x2 cells in plane (136 atoms), cell and positions relaxed;
* surface: one block of L = 3 layers, CsX-terminated on both sides, 15 A vacuum
  (68 atoms), in-plane lattice of the relaxed bulk, positions relaxed.

Layers are indexed by the half-cell z index H_z of the unrelaxed grid: CsX layers at even
H_z, PbX2 layers at odd H_z in block 1 (H_z = 0..2L); the first fault lies between the
CsX layers H_z = 2L and 2L + 1.

Vacancy hops (:data:`PATHS`)
----------------------------
A hop is (vacancy site, moving-ion site, squared half-index distance d2). The initial
state is the host without the vacancy atom; the final state has the moving ion on the
vacancy site. Octahedron-edge hops (d2 = 2, a/sqrt2) are the bulk mechanism (Eames et
al., Nat. Commun. 6, 7497 (2015)). Environments:

* ``bulk``: an edge hop in a bulk cell (several Br fractions: local Br/I environments);
* ``near_fault``: an edge hop within the PbX2 layer next to the fault (``near_fault``)
  and from the fault's CsX layer into that PbX2 layer (``into_fault``);
* ``along_fault``: between neighbouring X of the fault's CsX layer (d2 = 4, distance a);
* ``across_fault``: from the CsX layer of one block to the CsX layer of the other,
  through the rock-salt double layer (d2 = 3);
* ``surface``: from the CsX surface layer into the PbX2 layer below (slab).

Nudged elastic band
-------------------
``ase.mep.NEB`` with the improved tangent (Henkelman & Jonsson, J. Chem. Phys. 113,
9978 (2000)) and climbing image (Henkelman, Uberuaga & Jonsson, J. Chem. Phys. 113,
9901 (2000)); images interpolated by IDPP (Smidstrup et al., J. Chem. Phys. 140, 214106
(2014)); end points relaxed to 0.01 eV/A and checked to have kept every atom on its site
(each atom nearer its own starting site than to any other site or the vacancy: a
relaxation that fills the vacancy or moves a neighbour to another site is an error, not
a hop). FIRE on the band to 0.15 eV/A without the climbing image; the climbing image is
switched on only when that stage converged (a band that does not relax without it has
no saddle to climb to), then FIRE to ``fmax`` (0.05 eV/A) with it, and MDMin (the other
optimiser ``ase.mep`` recommends for bands) for as many steps again if FIRE stalls. Each
image has its own calculator wrapper (:meth:`CountingCalculator.clone`), so an image is
evaluated once per step. Paths longer than an octahedron edge set ``PathSpec.min_images``
(``along_fault`` and ``across_fault``: 9; with 5 images the along-fault climbing image
wandered off and the across-fault ones missed the saddle, see docs/atomistic.md).
Forward barrier = E(climbing image) -
E(initial), reverse = E(climbing image) - E(final). Its stderr is the difference
between the climbing-image energy and the maximum of the force-consistent spline
through the band (``ase.mep.neb.fit_raw``): how well the saddle is located. An
unconverged band raises :class:`NEBNotConverged` (carrying the partial path, flagged
``converged=False``); it is never replaced by a default.

Attempt frequency (harmonic TST, Vineyard, J. Phys. Chem. Solids 3, 121 (1957))
-------------------------------------------------------------------------------
nu* = prod_{i=1}^{3n} nu_i(minimum) / prod_{i=1}^{3n-1} nu_i(saddle), from the
finite-difference Hessian (``ase.vibrations``) of the moving ion and its neighbours
within ``vib_cutoff_a`` (the rest frozen: partial Hessian), at two displacements (0.01
and 0.02 A); value = mean, stderr = half their difference. If the minimum has an
imaginary mode or the saddle not exactly one, nu* is None with the reason recorded.
The 3.6 A partial Hessian is a convention: in these soft lattices nu* is not converged in
its size (factor ~2 for CsPbBr3 up to the full cell; for CsPbI3 the minimum acquires an
imaginary mode from ~21 atoms on; docs/atomistic.md, docs/img/attempt_frequency_scan.py).

Site energies
-------------
In the RP cell, E_v(site) = E(cell without that halide, relaxed) - E(cell without the
same halide species at the site farthest from the faults, relaxed); distance = ``|z of
the site - z of the fault plane|`` (fault plane midway between the two CsX layers).

Fault formation energy
----------------------
gamma = [E_RP - N_Pb e_bulk(f) - (N_Cs - N_Pb) mu_CsX(f)] / (2 A), two faults of area A
per period; e_bulk is the energy per CsPbX3 of the relaxed bulk cell of the same Br
fraction f, mu_CsX = (1 - f) E(CsI) + f E(CsBr) per formula unit of the CsCl-type (B2)
halides relaxed with the same model (their stable phase). Mixed compositions average
``fault_seeds`` random occupancies (stderr = standard error of the mean).

Bulk modulus
------------
Third-order Birch-Murnaghan E(V) (Birch, Phys. Rev. 71, 809 (1947)) fitted by least
squares to 7 isotropically scaled copies of the relaxed bulk cell (volume +-9 %,
positions relaxed at each volume); B0 with its fit standard error.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanodomains.errors import FileFormatError, FitError, InputError, NanodomainsError, require_positive
from nanodomains.files import atomic_path
from nanodomains.migration.atomistic import CountingCalculator, make_calculator, max_force, model_description, relax
from nanodomains.records.atomistic import BarrierPath, BarrierTable, FaultEnergy, SiteEnergy
from nanodomains.records.base import measured
from nanodomains.structure.atoms import SITE_CS, SITE_PB, SITE_X, periodic_atoms

__all__ = ["PathSpec", "PATHS", "NEBNotConverged", "host_structure", "find_hop", "check_on_site", "neb_path", "compute_path",
           "attempt_frequency", "site_energies", "fault_energy", "bulk_modulus", "build_barrier_table",
           "assemble_table", "load_barrier_table", "SHIPPED_TABLE", "RP_LAYERS", "SLAB_LAYERS"]

SHIPPED_TABLE = Path(__file__).parent / "data" / "barriers.json"
RP_LAYERS = 3
SLAB_LAYERS = 3
# along (a) and across (8.5-9.8 A) the fault: with 5 images the along_fault_I climbing image wandered off
# (2.56 eV/A after 800 steps) and the across-fault climbing images had no imaginary mode (not at the saddle)
LONG_PATH_IMAGES = 9
RATTLE_A = 0.03  # random displacement (A, fixed seeds) before relaxing: ideal cubic sites can be saddles
EV_PER_A3_TO_GPA = 160.21766208
J_PER_EV = 1.602176634e-19


class NEBNotConverged(FitError):
    """A CI-NEB band that did not reach ``fmax``; ``path`` holds the flagged result."""

    def __init__(self, message: str, path: BarrierPath | None = None):
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class PathSpec:
    """One vacancy hop to compute.

    ``host`` is "bulk", "rp" or "slab"; ``vacancy_z`` / ``ion_z`` the half-index layer
    of the vacancy and the moving ion (bulk: any layer); ``d2`` the squared half-index
    distance of the hop; ``br_fraction`` the host composition; ``min_images`` the fewest
    intermediate NEB images the path needs (0: the build's setting).
    """

    name: str
    halide: str
    environment: str
    host: str
    br_fraction: float
    vacancy_z: int
    ion_z: int
    d2: int = 2
    min_images: int = 0

    def images(self, n_images: int) -> int:
        """Intermediate images for this path: ``n_images``, at least :attr:`min_images`."""
        return max(int(n_images), int(self.min_images))

    @property
    def host_key(self) -> str:
        return f"{self.host}_br{self.br_fraction:g}"


def _fault_paths(halide: str, f: float) -> list[PathSpec]:
    lz = 2 * RP_LAYERS  # last CsX layer of block 1 (fault side)
    return [PathSpec(f"near_fault_{halide}", halide, "near_fault", "rp", f, lz - 1, lz - 1, 2),
            PathSpec(f"into_fault_{halide}", halide, "near_fault", "rp", f, lz - 1, lz, 2),
            PathSpec(f"along_fault_{halide}", halide, "along_fault", "rp", f, lz, lz, 4, LONG_PATH_IMAGES),
            PathSpec(f"across_fault_{halide}", halide, "across_fault", "rp", f, lz, lz + 1, 3, LONG_PATH_IMAGES),
            PathSpec(f"surface_{halide}", halide, "surface", "slab", f, 2 * SLAB_LAYERS - 1, 2 * SLAB_LAYERS, 2)]


#: The shipped table's paths, in the order they are computed: bulk in pure hosts, the
#: fault crossing and its neighbours, along the fault, surface, then mixed hosts.
_FAULT = {h: {p.environment + p.name.split("_")[0]: p for p in _fault_paths(h, f)} for h, f in (("I", 0.0), ("Br", 1.0))}
PATHS: tuple[PathSpec, ...] = tuple(
    [PathSpec("bulk_I", "I", "bulk", "bulk", 0.0, 1, 1), PathSpec("bulk_Br", "Br", "bulk", "bulk", 1.0, 1, 1)]
    + [p for key in ("across_faultacross", "near_faultinto", "near_faultnear", "along_faultalong", "surfacesurface")
       for h in ("I", "Br") for p in [_FAULT[h][key]]]
    + [PathSpec(f"bulk_{h}_br{f:g}", h, "bulk", "bulk", f, 1, 1) for f in (0.5, 0.25, 0.75) for h in ("I", "Br")])


# --------------------------------------------------------------------------- structures
def host_structure(kind: str, br_fraction: float, calc, *, seed: int = 0, lattice_pm: float | None = None,
                   fmax: float = 0.01):
    """A relaxed host cell: ``"bulk"`` (2x2x2), ``"rp"`` (2x2, L = 3) or ``"slab"``.

    The bulk and RP cells relax cell and positions; the slab relaxes positions in the
    in-plane lattice ``lattice_pm`` (the relaxed bulk's when None).
    """
    if kind == "bulk":
        atoms = periodic_atoms((2, 2, 2), br_fraction, seed=seed)
        atoms.rattle(RATTLE_A, seed=seed)
        relax(atoms, calc, fmax=fmax, cell=True, steps=800, label=f"bulk host (Br fraction {br_fraction:g})")
    elif kind == "rp":
        atoms = periodic_atoms((2, 2, 1), br_fraction, rp_layers=RP_LAYERS, seed=seed, lattice_pm=lattice_pm)
        atoms.rattle(RATTLE_A, seed=seed)
        relax(atoms, calc, fmax=fmax, cell=True, steps=1500, label=f"RP host (Br fraction {br_fraction:g})")
    elif kind == "slab":
        if lattice_pm is None:
            bulk = host_structure("bulk", br_fraction, calc, seed=seed, fmax=fmax)
            lattice_pm = float(np.cbrt(bulk.get_volume() / 8)) * 100.0
        atoms = periodic_atoms((2, 2, 1), br_fraction, slab_layers=SLAB_LAYERS, seed=seed, lattice_pm=lattice_pm)
        atoms.rattle(RATTLE_A, seed=seed)
        relax(atoms, calc, fmax=fmax, steps=1500, label=f"slab host (Br fraction {br_fraction:g})")
    else:
        raise InputError(f"unknown host kind {kind!r}; use 'bulk', 'rp' or 'slab'")
    atoms.calc = None
    return atoms


def _local_br_fraction(host, centre, exclude, radius_a: float = 6.0) -> float:
    """Br fraction of the halide sites within ``radius_a`` of ``centre`` (minimum image)."""
    x = np.flatnonzero(host.get_array("site") == SITE_X)
    x = x[~np.isin(x, exclude)]
    d = _min_image(host, host.positions[x] - centre)
    near = x[np.linalg.norm(d, axis=1) <= radius_a]
    return float(np.mean(host.numbers[near] == 35)) if len(near) else float("nan")


def _min_image(host, vec):
    frac = np.linalg.solve(host.cell.array.T, np.asarray(vec, float).T).T
    frac -= np.round(frac) * host.pbc
    return frac @ host.cell.array


def find_hop(host, spec: PathSpec) -> tuple[int, int, float]:
    """(vacancy atom, moving-ion atom, local Br fraction) of ``spec`` in ``host``.

    The moving ion must be of ``spec.halide``. Among the candidates, the one whose local
    Br fraction is closest to the host's (then nearest the in-plane centre) is used.

    Raises
    ------
    InputError
        The host has no such hop (wrong layer, halide or geometry), naming the path.
    """
    half = host.get_array("half_index")
    site = host.get_array("site")
    z_of = {"I": 53, "Br": 35}[spec.halide]
    size = half.max(axis=0) + 1
    x = np.flatnonzero(site == SITE_X)
    vac = x[half[x, 2] == spec.vacancy_z]
    ion = x[(half[x, 2] == spec.ion_z) & (host.numbers[x] == z_of)]
    best, best_key = None, None
    for v in vac:
        d = half[ion] - half[v]
        d[:, :2] = (d[:, :2] + size[:2] // 2) % size[:2] - size[:2] // 2  # periodic in plane
        if host.info.get("kind") == "bulk":
            d[:, 2] = (d[:, 2] + size[2] // 2) % size[2] - size[2] // 2
        for j in ion[(d ** 2).sum(axis=1) == spec.d2]:
            mid = host.positions[v] + _min_image(host, host.positions[j] - host.positions[v]) / 2
            frac = _local_br_fraction(host, mid, [v, j])
            centre = np.abs(half[v, :2] - size[:2] / 2).sum()
            key = (abs(frac - spec.br_fraction), centre, int(v), int(j))
            if best_key is None or key < best_key:
                best, best_key = (int(v), int(j), frac), key
    if best is None:
        raise InputError(f"path {spec.name!r}: the {host.info.get('kind', '?')} structure has no {spec.halide} "
                         f"ion at layer {spec.ion_z} a squared half-distance {spec.d2} from an X site at layer "
                         f"{spec.vacancy_z}")
    return best


# --------------------------------------------------------------------------- NEB
def check_on_site(state, sites, label: str) -> None:
    """Raise :class:`FitError` unless atom i of ``state`` is nearest to ``sites[i]``.

    ``sites`` holds one reference position per atom followed by the empty site(s) (the
    vacancy); an atom that ends nearer another atom's site or an empty site has hopped
    during the relaxation, so ``state`` is not the intended end state of the path.
    """
    pos = state.positions
    n = len(state)
    d = np.linalg.norm(_min_image(state, (pos[:, None, :] - np.asarray(sites)[None, :, :]).reshape(-1, 3)),
                       axis=1).reshape(n, len(sites))
    moved = np.flatnonzero(np.argmin(d, axis=1) != np.arange(n))
    if len(moved):
        k = int(moved[0])
        to = int(np.argmin(d[k]))
        where = "the vacancy" if to >= n else f"the site of atom {to}"
        raise FitError(f"{label}: relaxation moved {len(moved)} atom(s) off their sites (atom {k} "
                       f"{state.get_chemical_symbols()[k]} ended {d[k, to]:.2f} A from {where}, "
                       f"{d[k, k]:.2f} A from its own): not the intended end state")


def _end_points(host, vac: int, ion: int, calc, fmax: float):
    initial = host.copy()
    target = host.positions[vac].copy()
    del initial[vac]
    j = ion - (ion > vac)
    final = initial.copy()
    final.positions[j] = target
    sites_initial = np.vstack([initial.positions, target])  # the vacancy is the empty site
    sites_final = np.vstack([final.positions, host.positions[ion]])  # the ion's old site is empty
    # break the symmetry of the ideal vacancy site, which can be a saddle of the model
    initial.rattle(RATTLE_A, seed=1)
    final.rattle(RATTLE_A, seed=2)
    e0 = relax(initial, calc, fmax=fmax, steps=1000, label="NEB initial state")
    check_on_site(initial, sites_initial, "NEB initial state")
    e1 = relax(final, calc, fmax=fmax, steps=1000, label="NEB final state")
    check_on_site(final, sites_final, "NEB final state")
    return initial, final, j, e0, e1


def _relax_band(band, fmax: float, steps: int) -> tuple[bool, str]:
    """Plain band to max(0.15, fmax), then the climbing image to ``fmax`` (FIRE, then MDMin).

    Returns (converged, how): ``how`` names the stage and optimiser that ended the run.
    """
    from ase.optimize import FIRE, MDMin

    band.climb = False
    if not FIRE(band, logfile=None).run(fmax=max(0.15, fmax), steps=int(steps)):
        return False, f"band without climbing image did not reach {max(0.15, fmax)} eV/A (FIRE)"
    band.climb = True
    for name, opt_cls in (("FIRE", FIRE), ("MDMin", MDMin)):
        if opt_cls(band, logfile=None).run(fmax=fmax, steps=int(steps)):
            return True, f"climbing image converged ({name})"
    return False, "climbing image did not converge (FIRE, then MDMin)"


def neb_path(host, spec: PathSpec, calc, *, n_images: int = 5, fmax: float = 0.05, steps: int = 800,
             endpoint_fmax: float = 0.01) -> tuple[BarrierPath, dict]:
    """CI-NEB of ``spec`` in the relaxed ``host``.

    Returns the :class:`BarrierPath` (attempt frequency not yet computed) and a dict with
    the ``initial``, ``saddle`` and ``final`` structures and the moving-ion index.

    Raises
    ------
    InputError
        No such hop in ``host``.
    NEBNotConverged
        The band did not reach ``fmax``; ``.path`` carries the flagged result.
    """
    from ase.mep import NEB
    from ase.utils.forcecurve import fit_raw

    require_positive("fmax", fmax)
    if int(n_images) < 1:
        raise InputError(f"n_images must be >= 1, got {n_images}")
    n_images = spec.images(n_images)
    counter = calc if isinstance(calc, CountingCalculator) else CountingCalculator(calc)
    calls0, t0 = counter.calls, time.perf_counter()
    vac, ion, local_f = find_hop(host, spec)
    initial, final, j, e0, e1 = _end_points(host, vac, ion, counter, endpoint_fmax)
    images = [initial] + [initial.copy() for _ in range(int(n_images))] + [final]
    for im in images:
        im.calc = counter.clone()
    band = NEB(images, climb=False, method="improvedtangent")
    band.interpolate("idpp", mic=True)
    converged, how = _relax_band(band, fmax, steps)
    residual = max_force(band.get_forces())
    energies = np.array([im.get_potential_energy() for im in images])
    forces = [im.get_forces() for im in images]
    fit = fit_raw(energies, forces, [im.positions for im in images], images[0].cell, images[0].pbc)
    e_rel = energies - energies[0]
    k_top = int(np.argmax(energies[1:-1])) + 1
    saddle_stderr = abs(float(np.max(fit.fit_energies)) - float(e_rel[k_top]))
    barrier = float(e_rel[k_top])
    path = BarrierPath(
        name=spec.name, halide=spec.halide, environment=spec.environment, local_br_fraction=local_f,
        barrier_ev=measured(barrier, saddle_stderr),
        reverse_barrier_ev=measured(float(energies[k_top] - energies[-1]), saddle_stderr),
        attempt_frequency_thz=None, converged=converged and residual <= fmax * 1.0001,
        max_force_ev_per_a=residual, n_images=int(n_images), force_calls=counter.calls - calls0,
        wall_s=time.perf_counter() - t0, reaction_coordinate_a=np.asarray(fit.path, float), energy_ev=e_rel)
    states = {"initial": initial, "saddle": images[k_top].copy(), "final": final, "ion": j, "how": how,
              "saddle_true_max_force": max_force(images[k_top].get_forces())}
    for im in images:
        im.calc = None
    if not path.converged:
        raise NEBNotConverged(f"path {spec.name!r}: CI-NEB not converged, max force {residual:.3f} eV/A > "
                              f"{fmax} after {steps} steps per stage, {n_images} images ({how})", path)
    return path, states


def attempt_frequency(minimum, saddle, ion: int, calc, *, vib_cutoff_a: float = 3.6,
                      deltas=(0.01, 0.02)) -> tuple[float, float]:
    """Vineyard attempt frequency (THz) and its stderr from two finite-difference steps.

    Raises
    ------
    FitError
        An imaginary mode at the minimum, or not exactly one at the saddle.
    """
    from ase.vibrations import Vibrations

    d = np.linalg.norm(_min_image(minimum, minimum.positions - minimum.positions[ion]), axis=1)
    indices = [int(i) for i in np.flatnonzero(d <= vib_cutoff_a)]
    values = []
    for delta in deltas:
        logs = []
        for label, atoms in (("minimum", minimum), ("saddle", saddle)):
            a = atoms.copy()
            a.calc = calc
            with tempfile.TemporaryDirectory() as tmp:
                vib = Vibrations(a, indices=indices, name=os.path.join(tmp, "vib"), delta=float(delta))
                vib.run()
                energies = np.asarray(vib.get_energies())  # eV, imaginary as complex
            imag = np.abs(energies.imag) > np.abs(energies.real)
            n_imag = int(imag.sum())
            if label == "minimum" and n_imag:
                raise FitError(f"attempt frequency: {n_imag} imaginary mode(s) at the minimum (delta {delta} A)")
            if label == "saddle" and n_imag != 1:
                raise FitError(f"attempt frequency: {n_imag} imaginary modes at the saddle, expected 1 "
                               f"(delta {delta} A)")
            logs.append(np.log(np.abs(energies.real[~imag])))
        h_ev_s = 4.135667696e-15
        values.append(math.exp(logs[0].sum() - logs[1].sum()) / h_ev_s / 1e12)
    return float(np.mean(values)), float(abs(values[0] - values[-1]) / 2)


def compute_path(spec: PathSpec, calc, host=None, *, n_images: int = 5, fmax: float = 0.05, steps: int = 800,
                 frequency: bool = True, notes: list | None = None) -> BarrierPath:
    """Relax the host (unless given), run the CI-NEB of ``spec`` and its attempt frequency.

    An attempt-frequency failure leaves ``attempt_frequency_thz`` None, with the reason
    appended to ``notes`` (and printed); an unconverged band raises
    :class:`NEBNotConverged`.
    """
    counter = calc if isinstance(calc, CountingCalculator) else CountingCalculator(calc)
    if host is None:
        host = host_structure(spec.host, spec.br_fraction, counter)
    path, states = neb_path(host, spec, counter, n_images=n_images, fmax=fmax, steps=steps)
    if frequency:
        calls0, t0 = counter.calls, time.perf_counter()
        try:
            nu, nu_se = attempt_frequency(states["initial"], states["saddle"], states["ion"], counter)
            path = path.replace(attempt_frequency_thz=measured(nu, nu_se))
        except FitError as exc:
            note = f"{spec.name}: attempt frequency not computed: {exc}"
            print(note, flush=True)
            if notes is not None:
                notes.append(note)
        path = path.replace(force_calls=path.force_calls + counter.calls - calls0,
                            wall_s=path.wall_s + time.perf_counter() - t0)
    return path


# --------------------------------------------------------------------------- site and fault energies
def site_energies(host, halide: str, calc, *, fmax: float = 0.01) -> list[SiteEnergy]:
    """Vacancy energies of ``halide`` on the layers of block 1 of an RP ``host``.

    Relative to the layer farthest from the faults (H_z = L); distances in nm from the
    fault plane midway between the CsX layers H_z = 2L and 2L + 1.
    """
    if host.info.get("kind") != "rp":
        raise InputError("site energies need an RP host (periodic_atoms(..., rp_layers=L))")
    half = host.get_array("half_index")
    layers = int(host.info["layers"])
    z_of = {"I": 53, "Br": 35}[halide]
    plane_z = 0.5 * (host.positions[half[:, 2] == 2 * layers, 2].mean()
                     + host.positions[half[:, 2] == 2 * layers + 1, 2].mean())
    x = np.flatnonzero((host.get_array("site") == SITE_X) & (host.numbers == z_of))
    energies = {}
    for z in range(layers, 2 * layers + 1):
        cand = x[half[x, 2] == z]
        if not len(cand):
            raise InputError(f"site energies: no {halide} site on layer {z}")
        v = int(cand[0])
        cell = host.copy()
        dist_nm = abs(cell.positions[v, 2] - plane_z) / 10.0
        del cell[v]
        energies[z] = (relax(cell, calc, fmax=fmax, steps=1500, label=f"{halide} vacancy on layer {z}"), dist_nm)
    e_ref = energies[layers][0]
    return [SiteEnergy(name=f"{halide}_layer{z - 2 * layers}", halide=halide, distance_from_fault_nm=d,
                       energy_ev=measured(e - e_ref, None)) for z, (e, d) in energies.items()]


def _birch_murnaghan(v, e0, v0, b0, bp):
    eta = (v0 / v) ** (2.0 / 3.0)
    return e0 + 9.0 * v0 * b0 / 16.0 * ((eta - 1.0) ** 3 * bp + (eta - 1.0) ** 2 * (6.0 - 4.0 * eta))


def bulk_modulus(bulk, calc, *, strains=np.linspace(-0.03, 0.03, 7), fmax: float = 0.02) -> tuple[float, float]:
    """Birch-Murnaghan bulk modulus (GPa) and its fit stderr from E(V) of the relaxed ``bulk``."""
    from scipy.optimize import curve_fit

    vols, ens = [], []
    for s in strains:
        a = bulk.copy()
        a.set_cell(bulk.cell.array * (1.0 + s), scale_atoms=True)
        ens.append(relax(a, calc, fmax=fmax, steps=800, label=f"E(V) point (linear strain {s:+.3f})"))
        vols.append(a.get_volume())
    vols, ens = np.array(vols), np.array(ens)
    p0 = [ens.min(), vols[np.argmin(ens)], 0.1, 4.0]
    try:
        popt, pcov = curve_fit(_birch_murnaghan, vols, ens, p0=p0, maxfev=20000)
    except RuntimeError as exc:
        raise FitError(f"Birch-Murnaghan fit of E(V) failed: {exc}") from exc
    return float(popt[2] * EV_PER_A3_TO_GPA), float(np.sqrt(pcov[2, 2]) * EV_PER_A3_TO_GPA)


def _csx_energy(halide: str, calc) -> float:
    """Energy per formula unit of relaxed CsCl-type (B2) CsX."""
    from ase import Atoms

    a0 = {"I": 4.57, "Br": 4.29}[halide]  # room-temperature lattice constants, A (starting guess only)
    atoms = Atoms(f"Cs{halide}", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=[a0] * 3, pbc=True)
    return relax(atoms, calc, fmax=0.005, cell=True, label=f"Cs{halide} (B2)")


def composition_name(f: float) -> str:
    """``CsPbI3``, ``CsPbBr3`` or ``CsPbBr{3f}I{3(1-f)}``."""
    if f == 0:
        return "CsPbI3"
    if f == 1:
        return "CsPbBr3"
    return f"CsPbBr{3 * f:g}I{3 * (1 - f):g}"


def fault_energy(br_fraction: float, calc, *, seeds=(0,), modulus: bool = True) -> FaultEnergy:
    """RP fault formation energy, lattice constant and bulk modulus of one composition."""
    mu = (1 - br_fraction) * _csx_energy("I", calc) + br_fraction * _csx_energy("Br", calc)
    gammas, lattices, bulk0 = [], [], None
    for seed in seeds:
        bulk = host_structure("bulk", br_fraction, calc, seed=seed)
        bulk0 = bulk0 if bulk0 is not None else bulk
        bulk.calc = calc
        n_fu = int(np.sum(bulk.get_array("site") == SITE_PB))
        e_fu = bulk.get_potential_energy() / n_fu
        lattices.append(float(np.cbrt(bulk.get_volume() / n_fu)) * 100.0)
        rp = host_structure("rp", br_fraction, calc, seed=seed, lattice_pm=lattices[-1])
        rp.calc = calc
        site = rp.get_array("site")
        n_pb, n_cs = int(np.sum(site == SITE_PB)), int(np.sum(site == SITE_CS))
        area = float(np.linalg.norm(np.cross(rp.cell.array[0], rp.cell.array[1])))
        excess = rp.get_potential_energy() - n_pb * e_fu - (n_cs - n_pb) * mu
        gammas.append(excess / (2 * area) * J_PER_EV * 1e20)
    sem = (lambda v: float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None)
    b = None
    if modulus:
        b = measured(*bulk_modulus(bulk0, calc))
    return FaultEnergy(composition=composition_name(br_fraction), br_fraction=br_fraction,
                       energy_j_per_m2=measured(float(np.mean(gammas)), sem(gammas)),
                       lattice_pm=measured(float(np.mean(lattices)), sem(lattices)), bulk_modulus_gpa=b)


# --------------------------------------------------------------------------- table
def _part_file(parts: Path, kind: str, name: str) -> Path:
    return parts / f"{kind}__{name}.json"


def _write_part(parts: Path, kind: str, name: str, payload: dict) -> None:
    with atomic_path(_part_file(parts, kind, name)) as tmp:
        Path(tmp).write_text(json.dumps(payload))


def _cached_host(parts: Path, kind: str, br_fraction: float, calc):
    """The relaxed host of a build, from ``parts`` when an earlier unit relaxed it."""
    from ase.io import read, write

    host_file = parts / f"host_{kind}_br{br_fraction:g}.extxyz"
    if host_file.exists():
        host = read(host_file)
        host.info.setdefault("kind", kind)
        return host
    host = host_structure(kind, br_fraction, calc)
    with atomic_path(host_file) as tmp:
        write(tmp, host, format="extxyz")
    return host


def _run_task(task: tuple, parts: str, settings: dict) -> str:
    """One unit of the table (a path, a site-energy set or a fault energy), written to ``parts``."""
    kind, arg = task
    parts = Path(parts)
    calc = CountingCalculator(make_calculator(settings["calculator"], threads=1))
    t0 = time.perf_counter()
    name = arg.name if kind == "path" else str(arg)
    try:
        if kind == "path":
            host = _cached_host(parts, arg.host, arg.br_fraction, calc)
            notes = []
            path = compute_path(arg, calc, host, n_images=settings["n_images"], fmax=settings["fmax"],
                                steps=settings["steps"], notes=notes)
            payload = {"ok": True, "item": path.model_dump(mode="json"), "warnings": notes}
            msg = (f"barrier {path.barrier_ev} eV, reverse {path.reverse_barrier_ev} eV, nu "
                   f"{path.attempt_frequency_thz} THz, {path.force_calls} force calls")
        elif kind == "sites":
            host = _cached_host(parts, "rp", 0.0 if arg == "I" else 1.0, calc)
            items = site_energies(host, arg, calc)
            payload = {"ok": True, "items": [s.model_dump(mode="json") for s in items]}
            msg = ", ".join(f"{s.distance_from_fault_nm:.2f} nm: {s.energy_ev.value:+.3f} eV" for s in items)
        else:
            f = float(arg)
            fe = fault_energy(f, calc, seeds=(0,) if f in (0.0, 1.0) else tuple(range(settings["fault_seeds"])))
            payload = {"ok": True, "item": fe.model_dump(mode="json")}
            msg = f"gamma {fe.energy_j_per_m2} J/m2, a {fe.lattice_pm} pm, B {fe.bulk_modulus_gpa} GPa"
    except NEBNotConverged as exc:
        payload = {"ok": False, "reason": str(exc), "item": exc.path.model_dump(mode="json") if exc.path else None}
        msg = f"FAILED: {exc}"
    except NanodomainsError as exc:
        payload = {"ok": False, "reason": f"{type(exc).__name__}: {exc}"}
        msg = f"FAILED: {exc}"
    payload.update({"kind": kind, "name": name, "wall_s": time.perf_counter() - t0, "force_calls": calc.calls})
    _write_part(parts, kind, name, payload)
    line = f"{time.strftime('%H:%M:%S')} {kind} {name}: {msg} ({payload['wall_s']:.0f} s)"
    print(line, flush=True)
    return line


def default_tasks(paths=None, sites: bool = True, faults=(0.0, 0.4, 0.5, 1.0)) -> list[tuple]:
    """The table's units of work, cheapest and most needed first."""
    specs = PATHS if paths is None else tuple(p for p in PATHS if p.name in set(paths))
    if paths is not None:
        unknown = set(paths) - {p.name for p in PATHS}
        if unknown:
            raise InputError(f"unknown path(s) {sorted(unknown)}; known: {[p.name for p in PATHS]}")
    fault_specs = [p for p in specs if p.host != "bulk" or p.br_fraction in (0.0, 1.0)]
    mixed_specs = [p for p in specs if p not in fault_specs]
    tasks = [("path", p) for p in fault_specs[:2]]
    tasks += [("fault", f) for f in faults if f in (0.0, 1.0)]
    tasks += [("path", p) for p in fault_specs[2:8]]  # across, into, near
    if sites:
        tasks += [("sites", "I"), ("sites", "Br")]
    tasks += [("path", p) for p in fault_specs[8:]]
    tasks += [("path", p) for p in mixed_specs]
    tasks += [("fault", f) for f in faults if f not in (0.0, 1.0)]
    return tasks


def build_barrier_table(out, *, calculator: str = "chgnet", paths=None, sites: bool = True,
                        faults=(0.0, 0.4, 0.5, 1.0), n_images: int = 5, fmax: float = 0.05, steps: int = 800,
                        fault_seeds: int = 2, workers: int = 1, command: str | None = None) -> BarrierTable:
    """Compute the barrier table and write it to ``out`` (JSON).

    Every unit (path, site-energy set, fault composition) is written to
    ``<out>.parts/`` as soon as it finishes, and units already there are not redone, so
    an interrupted build resumes. ``workers > 1`` runs units in a Dask process pool
    (one torch thread per worker). The table is assembled from whatever parts exist;
    failed or missing units are listed in ``not_computed`` with the reason.
    """
    if not isinstance(calculator, str):
        raise InputError("build_barrier_table needs a calculator name (workers build their own model); "
                         "use compute_path for a calculator object")
    make_calculator(calculator, threads=None)  # an unknown name fails here, before any work
    out = Path(out)
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    settings = {"calculator": calculator, "n_images": int(n_images), "fmax": float(fmax), "steps": int(steps),
                "fault_seeds": int(fault_seeds)}
    tasks = default_tasks(paths, sites, faults)
    todo = [t for t in tasks if not _part_file(parts, t[0], t[1].name if t[0] == "path" else str(t[1])).exists()]
    print(f"{time.strftime('%H:%M:%S')} barrier table: {len(tasks)} units, {len(todo)} to compute, "
          f"{workers} worker(s)", flush=True)
    t0 = time.perf_counter()
    if int(workers) <= 1:
        for t in todo:
            _run_task(t, str(parts), settings)
    else:
        from dask.distributed import Client, LocalCluster, as_completed

        # distributed honours the priorities, so the table fills in the order of ``tasks``
        with LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            futures = [client.submit(_run_task, t, str(parts), settings, priority=-k, pure=False)
                       for k, t in enumerate(todo)]
            for fut in as_completed(futures):
                fut.result()
    table = assemble_table(parts, tasks, calculator=calculator, settings=settings,
                           command=command or " ".join(["nanodomains"] + sys.argv[1:]),
                           build_wall_s=time.perf_counter() - t0)
    table.to_json(out)
    return table


def assemble_table(parts, tasks, *, calculator: str = "chgnet", settings: dict | None = None,
                   command: str = "", build_wall_s: float | None = None) -> BarrierTable:
    """A :class:`BarrierTable` from the part files of a (possibly partial) build."""
    parts = Path(parts)
    paths, sites, faults, not_computed, warnings = [], [], [], {}, []
    cost = {}
    for kind, arg in tasks:
        name = arg.name if kind == "path" else str(arg)
        f = _part_file(parts, kind, name)
        label = name if kind == "path" else (f"site_energies_{name}" if kind == "sites"
                                            else f"fault_{composition_name(float(arg))}")
        if not f.exists():
            not_computed[label] = "not computed yet (build interrupted or still running)"
            continue
        data = json.loads(f.read_text())
        warnings += data.get("warnings", [])
        cost[label] = {"wall_s": round(data["wall_s"], 1), "force_calls": data["force_calls"]}
        if not data["ok"]:
            not_computed[label] = data["reason"]
            if kind == "path" and data.get("item"):
                paths.append(BarrierPath.model_validate(data["item"]))
                warnings.append(f"{name}: unconverged NEB kept with converged=False ({data['reason']})")
            continue
        if kind == "path":
            paths.append(BarrierPath.model_validate(data["item"]))
        elif kind == "sites":
            sites += [SiteEnergy.model_validate(s) for s in data["items"]]
        else:
            faults.append(FaultEnergy.model_validate(data["item"]))
    calc = make_calculator(calculator, threads=None)
    prov = {**(settings or {}), "command": command, "unit_cost": cost,
            "cells": {"bulk": "2x2x2 cubic (40 atoms)", "rp": f"2x2 in plane, 2 blocks of {RP_LAYERS} layers "
                      "(136 atoms)", "slab": f"2x2, {SLAB_LAYERS} layers, CsX-terminated, 15 A vacuum (68 atoms)"},
            "endpoint_fmax_ev_per_a": 0.01, "neb": "ase.mep.NEB improvedtangent, climbing image, IDPP, FIRE"}
    if build_wall_s is not None:
        prov["build_wall_s"] = round(build_wall_s, 1)
    prov["total_wall_s"] = round(sum(c["wall_s"] for c in cost.values()), 1)
    return BarrierTable(model=model_description(calc), paths=tuple(paths), site_energies=tuple(sites),
                        faults=tuple(faults), settings=prov, not_computed=not_computed,
                        warnings=tuple(warnings), source="nanodomains.migration.barriers.build_barrier_table")


def load_barrier_table(path=None) -> BarrierTable:
    """The shipped barrier table (``path=None``) or one written by :func:`build_barrier_table`."""
    p = SHIPPED_TABLE if path is None else Path(path)
    if not p.is_file():
        raise FileFormatError(f"{p}: barrier table not found"
                              + (" (the shipped table is missing from the package)" if path is None else ""))
    return BarrierTable.from_json(p)

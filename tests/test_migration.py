"""Halide-vacancy kMC: lattice, detailed balance, Arrhenius, RP blocking, trackers, Fig. 3."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest

from nanodomains import materials
from nanodomains.errors import FileFormatError, InputError
from nanodomains.migration import (KMCParameters, build_x_lattice, composition_decay, diffusion_coefficient,
                                   fit_arrhenius, hop_rate_per_ps, run_kmc, slab_decay_time_ps, track_events)
from nanodomains.migration.kmc import KB_EV
from nanodomains.migration.lattice import BOND_RP, BOND_SURFACE
from nanodomains.structure import SHIFT_NONE, SHIFT_RP, Domain, NanoCrystal, Region, homogeneous, paper_fig1


def two_domain_nc(shift2, edge_nm=6.1, fractions=(0.27, 0.52)):
    """Two slabs along x: the seed's R1 / R2 compositions, RP or coherent between them."""
    e = edge_nm
    return NanoCrystal(edges_nm=(e, e, e), nominal_formula="CsPbBr1.2I1.8", seed=1, domains=[
        Domain(id=0, br_fraction=fractions[0], region=Region(lo_nm=(0, 0, 0), hi_nm=(e / 2, e, e))),
        Domain(id=1, br_fraction=fractions[1], shift=shift2, region=Region(lo_nm=(e / 2, 0, 0), hi_nm=(e, e, e)))])


# ---- lattice --------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 3, 5])
def test_lattice_counts_of_cube(n):
    a = materials.lattice_constant_pm(0.4) / 1000
    lat = build_x_lattice(homogeneous(n * a, seed=1))
    assert lat.n_sites == 3 * n * n * (n + 1)  # X on all cell faces
    assert lat.surface.sum() == 6 * n * n  # apical X of the outer faces
    coord = lat.coordination()
    assert np.all(coord[lat.surface] == 4) and np.all(coord[~lat.surface] == 8)
    ok = lat.neighbors >= 0
    rows = np.nonzero(ok)[0]
    dh = lat.half_index[rows] - lat.half_index[lat.neighbors[ok]]
    assert np.all((dh**2).sum(axis=1) == 2)  # a / sqrt(2)
    assert not np.any(lat.bond_type[ok] == BOND_RP)
    # symmetric graph
    pairs = set(zip(rows.tolist(), lat.neighbors[ok].tolist()))
    assert all((j, i) in pairs for i, j in pairs)


def test_rp_fault_breaks_corner_sharing_paths():
    lat = build_x_lattice(two_domain_nc(SHIFT_RP))
    ok = lat.neighbors >= 0
    rows = np.nonzero(ok)[0]
    cols = lat.neighbors[ok]
    cross = lat.domain[rows] != lat.domain[cols]
    types = lat.bond_type[ok]
    # every bond between the two domains is an RP candidate bond, sqrt(3)/2 a long
    assert cross.any() and np.all(types[cross] == BOND_RP)
    dh = lat.half_index[rows[cross]] - lat.half_index[cols[cross]]
    assert np.all(np.abs(dh) == 1)
    coherent = build_x_lattice(two_domain_nc(SHIFT_NONE))
    ok2 = coherent.neighbors >= 0
    assert not np.any(coherent.bond_type[ok2] == BOND_RP)
    r2 = np.nonzero(ok2)[0]
    assert np.any(coherent.domain[r2] != coherent.domain[coherent.neighbors[ok2]])


# ---- detailed balance -----------------------------------------------------------

def _replay_states(res, ion, n_sites):
    """Time-weighted occupancy and transition counts of the states (vacancy site, ion site)."""
    vac = np.r_[res.vacancy_initial_site[0], res.event_to_site].astype(np.int64)
    moved = np.r_[True, res.event_ion == ion]
    ion_at = np.r_[res.trackers.ion_initial_site[ion], res.event_from_site].astype(np.int64)
    where = ion_at[np.maximum.accumulate(np.where(moved, np.arange(len(moved)), 0))]
    state = vac * n_sites + where
    dwell = np.diff(np.r_[0.0, res.event_time_ps])  # time spent in state k before event k
    occupancy = np.bincount(state[:-1], weights=dwell, minlength=n_sites**2)
    pair = state[:-1] * n_sites**2 + state[1:]
    flux = np.bincount(pair, minlength=n_sites**4).reshape(n_sites**2, n_sites**2)
    return occupancy, flux


def _carrier_energy(lat, vac, iodide, n_carriers, kt):
    """Independent evaluation of the LattiKEM-type photocarrier energy U (one I among Br)."""
    occ = np.ones(lat.n_sites, bool)
    occ[vac] = False
    isbr = np.ones(lat.n_sites, bool)
    isbr[iodide] = False
    x = lat.x_of_pb
    n_occ = occ[x].sum(axis=1)
    n_br = (isbr[x] & occ[x]).sum(axis=1)
    eg = materials.bandgap_ev(n_br / n_occ, "RT")
    w = np.exp(-(eg - eg.min()) / kt)
    return n_carriers * float((eg * w).sum() / w.sum())


@pytest.mark.parametrize("photocarriers", [0.0, 6.0])
def test_detailed_balance(photocarriers):
    # a ring of four corner-sharing octahedra (20 X sites, no articulation site), one
    # vacancy and one I among Br: 20 x 19 states, all reachable
    a = materials.lattice_constant_pm(0.4) / 1000
    lat = build_x_lattice(homogeneous((2 * a, 2 * a, a), seed=1))
    n = lat.n_sites
    assert n == 20
    lat.species[:] = 0
    lat.species[3] = 1
    params = KMCParameters(temperature_k=500.0, photocarriers=photocarriers)  # Br and I barriers differ
    res = run_kmc(lat, params, time_ns=None, max_hops=2_000_000, vacancy_sites=[7], seed=2,
                  max_events=2_000_000, n_frames=0)
    i_ion = int(np.flatnonzero(res.trackers.ion_species == 1)[0])
    occupancy, flux = _replay_states(res, i_ion, n)
    states = np.array([v * n + b for v in range(n) for b in range(n) if v != b])
    assert np.all(occupancy[states] > 0)
    assert occupancy.sum() == pytest.approx(occupancy[states].sum())  # nothing else visited
    kt = KB_EV * params.temperature_k
    if photocarriers:
        energies = np.array([_carrier_energy(lat, s // n, s % n, photocarriers, kt) for s in states])
        assert np.ptp(energies) > 3 * kt  # the light term matters here
        expected = np.exp(-(energies - energies.min()) / kt)
    else:
        expected = np.ones(len(states))
    expected /= expected.sum()
    observed = occupancy[states] / occupancy[states].sum()
    assert 0.5 * np.abs(observed - expected).sum() < 0.04  # total variation distance (noise ~0.02)
    # pairwise flux balance: N(a->b) = N(b->a) within Poisson noise
    both = flux + flux.T
    sel = np.triu(both > 50, 1)
    z = np.abs(flux - flux.T)[sel] / np.sqrt(both[sel])
    assert len(z) > 500 and z.max() < 4.5


# ---- rates ----------------------------------------------------------------------

def test_arrhenius_slope_reproduces_barrier():
    lat = build_x_lattice(homogeneous(2.4, "CsPbBr3", seed=1))
    temps = np.array([350.0, 450.0, 550.0, 650.0, 800.0])
    rates, ses = [], []
    for k, t in enumerate(temps):
        res = run_kmc(lat, KMCParameters(temperature_k=t), time_ns=None, max_hops=150_000, vacancies=1,
                      seed=10 + k, max_events=0, n_frames=0)
        r, se = hop_rate_per_ps(res)
        rates.append(r)
        ses.append(se)
    fit = fit_arrhenius(temps, rates, ses)
    assert fit["barrier_ev"] == pytest.approx(0.24, rel=0.02)
    assert abs(fit["barrier_ev"] - 0.24) < 4 * fit["barrier_se_ev"] + 1e-4
    # prefactor: nu times the mean coordination of a uniformly placed vacancy
    z_mean = lat.coordination().mean()
    assert fit["prefactor"] == pytest.approx(4.0 * z_mean, rel=0.05)


def test_mean_hop_time_matches_rate_sum_in_bulk():
    lat = build_x_lattice(homogeneous(0.6123 * 7, "CsPbI3", seed=1))
    params = KMCParameters(temperature_k=500.0, barrier_set="dft")
    res = run_kmc(lat, params, time_ns=None, max_hops=100_000, vacancies=1, seed=3, max_events=0)
    w = params.rate_table_per_ps()[1, 0]
    expected = 1.0 / (w * lat.coordination().mean())
    mean, se = res.mean_hop_time_ps()
    assert mean == pytest.approx(expected, rel=0.03)


def test_surface_barrier_sets_rate_of_surface_bonds():
    # one vacancy, symmetric rates: the vacancy visits every site equally often, so the
    # mean hop time is 1 / <sum of its bond rates> averaged over sites
    lat = build_x_lattice(homogeneous(2.4, "CsPbBr3", seed=1))
    assert np.any(lat.bond_type == BOND_SURFACE)
    for surface in (None, 0.30):
        params = KMCParameters(surface_barrier_ev=surface)
        res = run_kmc(lat, params, time_ns=None, max_hops=200_000, vacancies=1, seed=4, max_events=0)
        w = params.rate_table_per_ps()[0]  # CsPbBr3: every ion is Br
        per_site = np.where(lat.neighbors >= 0, w[lat.bond_type], 0.0).sum(axis=1)
        assert res.mean_hop_time_ps()[0] == pytest.approx(1.0 / per_site.mean(), rel=0.03)


# ---- RP boundaries, crossings, composition exchange ------------------------------

def test_rp_blocking_and_open_crossings():
    nc = two_domain_nc(SHIFT_RP, edge_nm=4.3)
    with pytest.raises(InputError, match="no RP crossing barrier"):  # closed is never a default
        run_kmc(nc, KMCParameters(), time_ns=0.01)
    blocked = run_kmc(nc, KMCParameters(rp_barrier_ev="closed"), time_ns=None, max_hops=200_000,
                      vacancy_fraction=0.01, seed=1, max_events=0)
    assert blocked.boundary_crossings()["total"] == 0
    assert np.array_equal(blocked.trackers.domain_br, Trackers_start_br(blocked))
    opened = run_kmc(nc, KMCParameters(rp_barrier_ev="bulk"), time_ns=None, max_hops=200_000,
                     vacancy_fraction=0.01, seed=1, max_events=0)
    c = opened.boundary_crossings()
    assert c["rp"] > 0 and c["coherent"] == 0
    high = run_kmc(nc, KMCParameters(rp_barrier_ev=0.40), time_ns=None, max_hops=200_000,
                   vacancy_fraction=0.01, seed=1, max_events=0)
    assert 0 < high.boundary_crossings()["rp"] < c["rp"]


def Trackers_start_br(res):
    """Br count per domain at time 0, from the stored initial occupancy."""
    sp = res.trackers.ion_species
    dom = res.lattice.domain[res.trackers.ion_initial_site]
    return np.bincount(dom[sp == 0], minlength=res.lattice.n_domains)


def test_paper_fig3_with_closed_rp_bonds():
    # the pre-issue-15 model: RP bonds closed by the user's explicit choice
    res = run_kmc(paper_fig1(), KMCParameters(temperature_k=500.0, rp_barrier_ev="closed"), time_ns=10.0,
                  vacancies=2, seed=1)
    s = res.summary()
    assert res.time_ps == pytest.approx(10_000.0)
    assert 3.0 < s.mean_hop_time_ps.value < 30.0  # "of order 10 ps"
    assert s.boundary_crossings.rp == 0 and s.rp_crossings == 0
    assert all(b.crossings == 0 for b in s.boundaries if b.type == "RP")
    assert s.hops > 500
    # ions leave their domain only across coherent boundaries, never between RP neighbours
    assert s.ions_changed_domain <= s.boundary_crossings.coherent
    rp_pairs = res.lattice.boundary_type == 2
    assert res.trackers.flux[:, rp_pairs].sum() == 0


def test_control_nc_composition_difference_decays_diffusively():
    # coherent boundary, equal barriers for both species: the colour density relaxes with the
    # tracer diffusion coefficient, slowest mode tau = L^2 / (pi^2 D)
    nc = two_domain_nc(SHIFT_NONE, edge_nm=6.1)
    params = KMCParameters(barrier_br_ev=0.24, barrier_i_ev=0.24)
    res = run_kmc(nc, params, time_ns=500.0, vacancy_fraction=0.02, seed=1, max_events=0, n_frames=401)
    fit = composition_decay(res, 0, 1)
    assert fit["difference"][0] == pytest.approx(0.27 - 0.52, abs=0.03)
    assert abs(fit["difference"][-20:].mean()) < 0.2 * abs(fit["difference"][0])
    d, d_se = diffusion_coefficient(res.frame_time_ps, res.frame_msd_nm2.mean(axis=1), t_max_ps=2500.0)
    length = nc.n_cells[0] * nc.reference_lattice_pm / 1000
    assert 0.6 < fit["tau_ps"] / slab_decay_time_ps(length, d) < 1.4
    # same NC with an RP fault: no exchange at all
    rp = run_kmc(two_domain_nc(SHIFT_RP, edge_nm=6.1), replace(params, rp_barrier_ev="closed"), time_ns=100.0,
                 vacancy_fraction=0.02, seed=1, max_events=0, n_frames=11)
    assert np.ptp(rp.frame_domain_br_fraction, axis=0).max() == 0.0


def test_light_term_gathers_iodide_where_carriers_sit():
    # photocarriers funnel to the lowest local gap; the light term moves I into those
    # octahedra, so the carrier-weighted mean gap of the final configuration drops
    a = materials.lattice_constant_pm(0.5) / 1000
    lat = build_x_lattice(homogeneous(5 * a, "CsPbBr1.5I1.5", seed=2))
    kt = KB_EV * 400.0

    def carrier_gap(res):
        sp = np.where(res.occupancy >= 0, res.trackers.ion_species[np.maximum(res.occupancy, 0)], -1)
        x = sp[lat.x_of_pb]
        eg = materials.bandgap_ev((x == 0).sum(axis=1) / (x >= 0).sum(axis=1), "RT")
        w = np.exp(-(eg - eg.min()) / kt)
        return float((eg * w).sum() / w.sum())

    drops = []
    for seed in (5, 6, 7):
        kw = dict(time_ns=None, max_hops=30_000, vacancy_fraction=0.03, seed=seed, max_events=0, n_frames=0)
        dark = run_kmc(lat, KMCParameters(temperature_k=400.0), **kw)
        light = run_kmc(lat, KMCParameters(temperature_k=400.0, photocarriers=20.0), **kw)
        drops.append(carrier_gap(dark) - carrier_gap(light))
    assert min(drops) > 0 and np.mean(drops) > 0.01


# ---- trackers -------------------------------------------------------------------

def test_replayed_events_reproduce_inline_trackers():
    res = run_kmc(two_domain_nc(SHIFT_NONE, edge_nm=4.3), KMCParameters(), time_ns=20.0, vacancy_fraction=0.01,
                  seed=3)
    assert not res.events_truncated
    tr = track_events(res.lattice, res.initial_occupancy, res.trackers.ion_species, res.event_time_ps,
                      res.event_ion, res.event_to_site, res.event_from_site)
    np.testing.assert_array_equal(tr.ion_hops, res.trackers.ion_hops)
    np.testing.assert_array_equal(tr.flux, res.trackers.flux)
    np.testing.assert_array_equal(tr.crossings, res.trackers.crossings)
    np.testing.assert_allclose(tr.msd_sum_nm2, res.trackers.msd_sum_nm2, rtol=1e-10)
    np.testing.assert_allclose(tr.finish(res.lattice, res.time_ps), res.residence_ps, rtol=1e-10, atol=1e-9)
    # residence over domains adds up to the run time for every ion
    np.testing.assert_allclose(res.residence_ps.sum(axis=1), res.time_ps, rtol=1e-9)
    assert res.boundary_crossings()["coherent"] > 0
    # MSD from the per-ion displacements equals the running sum
    disp = res.trackers.ion_disp_nm
    sp = res.trackers.ion_species
    for s in (0, 1):
        assert res.trackers.msd_nm2()[s] == pytest.approx((disp[sp == s] ** 2).sum(axis=1).mean(), rel=1e-9)


def test_reproducible_and_netcdf(tmp_path):
    import xarray as xr

    a = run_kmc(paper_fig1(), KMCParameters(rp_barrier_ev=0.5), time_ns=1.0, vacancies=3, seed=7)
    b = run_kmc(a.lattice, KMCParameters(rp_barrier_ev=0.5), time_ns=1.0, vacancies=3, seed=7)
    np.testing.assert_array_equal(a.event_to_site, b.event_to_site)
    path = a.to_netcdf(tmp_path / "traj.nc")
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert ds.sizes["hop"] == a.hops
        np.testing.assert_array_equal(ds["hop_to_site"].values, a.event_to_site)
        assert NanoCrystal.from_json(ds.attrs["nc_json"]).domains[0].br_fraction == 0.27


def test_bad_input():
    nc = homogeneous(2.4, seed=1)
    with pytest.raises(InputError, match="temperature_k"):
        run_kmc(nc, KMCParameters(temperature_k=-10.0))
    with pytest.raises(InputError, match="vacancies"):
        run_kmc(nc, KMCParameters(), vacancies=0)
    lat = build_x_lattice(nc)
    with pytest.raises(InputError, match="do not fit"):
        run_kmc(lat, KMCParameters(), vacancies=lat.n_sites)
    with pytest.raises(InputError, match="rp_barrier_ev"):
        run_kmc(lat, KMCParameters(rp_barrier_ev="open"))
    with pytest.raises(InputError, match="vacancy_sites"):
        run_kmc(lat, KMCParameters(), vacancy_sites=[lat.n_sites + 3])
    with pytest.raises(InputError, match="time_ns"):
        run_kmc(lat, KMCParameters(), time_ns=-1.0)
    with pytest.raises(InputError, match="barrier_set"):
        run_kmc(lat, replace(KMCParameters(), barrier_set="md"))
    with pytest.raises(FileFormatError, match="not found"):
        NanoCrystal.from_json("no_such_model.json")


# ---- MD driver (extra md) ---------------------------------------------------------

def _fake_forcefield(path):
    """A file shaped like a ReaxFF parameter file (atom block lines); not a force field."""
    lines = ["Reactive MD-force field: placeholder for input-generation tests", " 39 ! general"]
    lines += [f" {v:.4f} ! p{k}" for k, v in enumerate(np.linspace(1, 2, 8))]
    lines += [f" {e}   1.0 2.0 3.0" for e in ("Cs", "Pb", "Br", "I")]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_md_input_generation(tmp_path):
    from nanodomains.migration import md

    nc = two_domain_nc(SHIFT_RP, edge_nm=3.1)
    system = md.md_system(nc, vacancies=3, seed=2)
    n_all = len(nc.to_atoms(2))
    assert len(system.atoms) == n_all - 3
    assert len(system.ion_site) == system.lattice.n_sites - 3
    assert not np.isin(system.vacancy_sites, system.ion_site).any()
    # every halide atom sits on its X site
    np.testing.assert_allclose(system.atoms.positions[system.halide_atom] / 10.0,
                               system.lattice.positions_nm[system.ion_site], atol=1e-9)
    z = system.atoms.numbers[system.halide_atom]
    np.testing.assert_array_equal(np.where(z == 35, 0, 1), system.ion_species)
    ff = _fake_forcefield(tmp_path / "ffield.user")
    files = md.write_lammps_inputs(system, ff, tmp_path / "run", temperature_k=500.0, time_ps=2.0,
                                   timestep_fs=0.25, dump_every_fs=50.0, seed=3)
    script = files["script"].read_text()
    assert f"pair_coeff * * {ff.resolve()} Cs Pb Br I" in script
    assert "pair_style reaxff" in script and "qeq/reaxff" in script and "run 8000" in script
    assert not (tmp_path / "run" / "ffield.user").exists()  # referenced, never copied
    data = files["data"].read_text().splitlines()
    assert data[2] == f"{len(system.atoms)} atoms"
    atoms_block = data[data.index("Atoms  # charge") + 2:]
    charges = np.array([float(r.split()[2]) for r in atoms_block])
    assert len(charges) == len(system.atoms) and np.all(charges == 0.0)  # QEq keeps the NC neutral
    types = np.array([int(r.split()[1]) for r in atoms_block])
    np.testing.assert_array_equal(np.bincount(types, minlength=5)[1:],
                                  [np.sum(system.atoms.numbers == z) for z in (55, 82, 35, 53)])


def test_md_forcefield_checks(tmp_path):
    from nanodomains.migration import md

    with pytest.raises(FileFormatError, match="not found"):
        md.check_forcefield(tmp_path / "missing")
    bad = tmp_path / "ffield.bad"
    bad.write_text("\n".join(["x"] * 20) + "\nCs 1\nPb 2\n")
    with pytest.raises(FileFormatError, match="Br, I"):
        md.check_forcefield(bad)


def test_md_trajectory_analysis_recovers_kmc_hops():
    # ground truth: a kMC run sampled as MD-like frames (thermal noise and drift added)
    from nanodomains.migration import md

    nc = two_domain_nc(SHIFT_NONE, edge_nm=3.7)
    res = run_kmc(nc, KMCParameters(), time_ns=0.5, vacancy_fraction=0.01, seed=4)
    lat = res.lattice
    frame_t = np.arange(0.0, res.time_ps, 0.25)
    ion_site = res.trackers.ion_initial_site.copy()
    sites = np.empty((len(frame_t), len(ion_site)), np.int64)
    k = 0
    for f, t in enumerate(frame_t):
        while k < len(res.event_time_ps) and res.event_time_ps[k] <= t:
            ion_site[res.event_ion[k]] = res.event_from_site[k]
            k += 1
        sites[f] = ion_site
    rng = np.random.default_rng(0)
    drift = np.outer(frame_t, [2e-4, -1e-4, 5e-5])
    pos = lat.positions_nm[sites] + rng.normal(0, 0.03, sites.shape + (3,)) + drift[:, None, :]
    ev = md.hops_from_positions(lat, frame_t, pos, res.trackers.ion_initial_site, min_frames=1)
    np.testing.assert_array_equal(ev["assigned"], sites)
    true_moves = int((sites[1:] != sites[:-1]).sum())
    assert len(ev["time_ps"]) == true_moves
    assert 0.9 * res.hops <= true_moves <= res.hops  # only sub-frame back-and-forth hops are missed
    system = md.MDSystem(atoms=None, lattice=lat, vacancy_sites=res.vacancy_initial_site, halide_atom=np.zeros(0),
                         ion_site=res.trackers.ion_initial_site, ion_species=res.trackers.ion_species)
    ana = md.analyse_trajectory(system, frame_t, pos, min_frames=1)
    s = ana.summary(lat)
    assert s.hops == true_moves and s.boundary_crossings.unresolved == 0
    assert abs(s.boundary_crossings.coherent - res.boundary_crossings()["coherent"]) <= res.hops - true_moves
    assert s.mean_hop_time_ps.value is None and "mean_hop_time_ps" in s.not_computed
    # persistence filter: vibrations that visit a neighbour site for one frame are not hops
    noisy = pos.copy()
    j = int(np.flatnonzero(lat.neighbors[res.trackers.ion_initial_site[0]] >= 0)[0])
    noisy[5, 0] = lat.positions_nm[lat.neighbors[res.trackers.ion_initial_site[0], j]] + drift[5]
    assert len(md.hops_from_positions(lat, frame_t, noisy, res.trackers.ion_initial_site, min_frames=3)["ion"]) \
        <= len(md.hops_from_positions(lat, frame_t, pos, res.trackers.ion_initial_site, min_frames=3)["ion"])


def test_read_lammps_dump(tmp_path):
    from nanodomains.migration import md

    rng = np.random.default_rng(1)
    pos = rng.normal(size=(3, 4, 3))
    text = []
    for f in range(3):
        text += ["ITEM: TIMESTEP", str(200 * f), "ITEM: NUMBER OF ATOMS", "4", "ITEM: BOX BOUNDS ss ss ss",
                 "0 1", "0 1", "0 1", "ITEM: ATOMS id type x y z"]
        for i in (3, 1, 0, 2):  # unsorted ids
            text.append(f"{i + 10} {3 + i % 2} {pos[f, i, 0]} {pos[f, i, 1]} {pos[f, i, 2]}")
    (tmp_path / "d.dump").write_text("\n".join(text) + "\n")
    steps, ids, types, got = md.read_lammps_dump(tmp_path / "d.dump")
    np.testing.assert_array_equal(steps, [0, 200, 400])
    np.testing.assert_array_equal(ids, [10, 11, 12, 13])
    np.testing.assert_allclose(got, pos)
    (tmp_path / "t.dump").write_text("\n".join(text[:-2]) + "\n")
    with pytest.raises(FileFormatError, match="truncated|malformed"):
        md.read_lammps_dump(tmp_path / "t.dump")


@pytest.mark.skipif(not os.environ.get("NANODOMAINS_REAXFF"),
                    reason="set NANODOMAINS_REAXFF to your Cs/Pb/Br/I ReaxFF force-field file to run "
                           "the LAMMPS MD test (none is shipped: the published ones carry no licence)")
def test_reaxff_md_runs_and_is_analysed(tmp_path):
    from nanodomains.migration import md

    nc = two_domain_nc(SHIFT_RP, edge_nm=3.1)
    system, ana = md.run_reaxff(nc, os.environ["NANODOMAINS_REAXFF"], tmp_path, temperature_k=500.0,
                                time_ps=2.0, vacancies=2, seed=1, dump_every_fs=25.0)
    s = ana.summary(system.lattice, temperature_k=500.0)
    assert (tmp_path / "halides.dump").stat().st_size > 0
    assert s.boundary_crossings.rp == 0 and s.boundary_crossings.unresolved == 0
    assert s.msd_br_nm2 >= 0.0


# ---- records: truth (kMC) against the analysis of its trajectory ------------------------

def test_trajectory_summary_matches_truth_and_round_trips(tmp_path):
    from nanodomains.migration.analysis import TRAJECTORY_TOLERANCES, summarize_trajectory
    from nanodomains.records import MigrationSummary, compare, load_record

    nc = two_domain_nc(SHIFT_NONE, edge_nm=4.3)
    res = run_kmc(nc, KMCParameters(temperature_k=450.0), time_ns=5.0, vacancy_fraction=0.01, seed=3, n_frames=5)
    truth = res.summary()
    assert truth.origin == "truth" and truth.settings["seed"] == 3
    assert truth.settings["seeds"]["streams"] == ["vacancies", "kmc"]
    path = res.to_netcdf(tmp_path / "trajectory.nc")
    found = summarize_trajectory(path)
    assert found.origin == "analysis" and found.source == str(path)
    cmp = compare(truth, found, tolerances=TRAJECTORY_TOLERANCES)
    assert cmp.ok, cmp.table()
    # the hop time is judged against its standard error, and it has one
    row = cmp.row("mean_hop_time_ps")
    assert row.tolerance.endswith("sigma") and row.ok and truth.mean_hop_time_ps.stderr > 0
    assert truth.hops == res.hops and truth.boundary_crossings.coherent > 0
    assert sum(b.crossings for b in truth.boundaries) == truth.boundary_crossings.total
    # JSON round trip through the record type and through load_record
    for rec in (truth, found):
        p = tmp_path / f"{rec.origin}.json"
        rec.to_json(p)
        assert MigrationSummary.from_json(p) == rec
        assert load_record(p) == rec
    # a change in the run shows up in the comparison
    other = run_kmc(nc, KMCParameters(temperature_k=450.0), time_ns=5.0, vacancy_fraction=0.01, seed=4, n_frames=5)
    assert not compare(truth, summarize_trajectory(other.to_dataset()), tolerances=TRAJECTORY_TOLERANCES).ok


def test_trajectory_summary_bad_input(tmp_path):
    from nanodomains.migration.analysis import summarize_trajectory

    with pytest.raises(FileFormatError, match="not found"):
        summarize_trajectory(tmp_path / "none.nc")
    (tmp_path / "junk.nc").write_text("not netcdf")
    with pytest.raises(FileFormatError, match="netCDF"):
        summarize_trajectory(tmp_path / "junk.nc")
    lat = build_x_lattice(homogeneous(2.4, seed=1))
    lat.nc = None  # a hand-made lattice: the file cannot rebuild it
    res = run_kmc(lat, KMCParameters(), time_ns=0.05, vacancies=1, seed=2, n_frames=0)
    with pytest.raises(InputError, match="lattice="):
        summarize_trajectory(res.to_dataset())
    assert summarize_trajectory(res.to_dataset(), lattice=lat).hops == res.hops


def test_seed_streams_are_spawned_and_recorded():
    lat = build_x_lattice(homogeneous(2.4, seed=1))
    a = run_kmc(lat, KMCParameters(), time_ns=0.2, vacancies=2, seed=5, n_frames=0)
    b = run_kmc(lat, KMCParameters(), time_ns=0.2, vacancies=2, seed=5, n_frames=0)
    c = run_kmc(lat, KMCParameters(), time_ns=0.2, vacancies=2, seed=6, n_frames=0)
    np.testing.assert_array_equal(a.event_to_site, b.event_to_site)
    assert not np.array_equal(a.event_time_ps[:5], c.event_time_ps[:5])
    with pytest.raises(InputError, match="seed"):
        run_kmc(lat, KMCParameters(), time_ns=0.2, seed=-1)


# ---- computed landscape (barrier table): analytic cases ------------------------------------

from _barrier_fixture import table as barrier_table  # noqa: E402

from nanodomains.migration.fault import fault_kinetics, rate_model  # noqa: E402
from nanodomains.migration.kmc import single_vacancy_rates  # noqa: E402
from nanodomains.migration.landscape import TabulatedLandscape  # noqa: E402
from nanodomains.migration.lattice import XLattice  # noqa: E402


def chain_lattice(n=8, bond_nm=0.42):
    """A 1-D chain of n Br sites, an RP bond in the middle (two domains), no octahedra."""
    from nanodomains.migration.lattice import BOND_BULK

    idx = np.arange(n)
    nbr = np.stack([idx - 1, idx + 1], axis=1).astype(np.int32)
    nbr[nbr >= n] = -1
    bt = np.full((n, 2), BOND_BULK, np.int8)
    mid = n // 2
    bt[mid - 1, 1] = bt[mid, 0] = BOND_RP
    pos = np.zeros((n, 3))
    pos[:, 0] = idx * bond_nm
    half = np.zeros((n, 3), np.int32)
    half[:, 0] = 2 * idx
    lat = XLattice(positions_nm=pos, half_index=half, domain=(idx >= mid).astype(np.int32),
                   registry=np.zeros(n, np.int8), surface=np.zeros(n, bool), species=np.zeros(n, np.int8),
                   neighbors=nbr, bond_type=bt, pb_of_x=np.full((n, 2), -1, np.int32),
                   x_of_pb=np.zeros((0, 6), np.int32), boundary_type=np.array([[0, 2], [2, 0]], np.int8))
    lat.fault_distance_nm = np.abs(idx - (mid - 0.5)) * bond_nm
    return lat


CHAIN_SITE_ENERGIES = [("Br", 0.21, -0.12), ("Br", 0.63, -0.04), ("Br", 1.05, 0.0)]


def chain_landscape(temperature_k=500.0, across=0.40, bulk=0.25, **kw):
    tab = barrier_table({("bulk", "Br"): bulk, ("across_fault", "Br"): across}, nu_thz=5.0,
                        site_energies=CHAIN_SITE_ENERGIES)
    return TabulatedLandscape(tab, temperature_k=temperature_k, **kw)


def _hand_vacancy_energy(lat):
    d = lat.fault_distance_nm
    dist, ev = zip(*[(x, e) for _, x, e in CHAIN_SITE_ENERGIES])
    return np.interp(d, dist, ev)


def test_chain_rates_by_hand():
    lat = chain_lattice()
    land = chain_landscape()
    rates, _ = single_vacancy_rates(lat, land)
    kt = KB_EV * 500.0
    ev = _hand_vacancy_energy(lat)
    for u in range(lat.n_sites):
        for k in range(2):
            j = lat.neighbors[u, k]
            if j < 0:
                assert rates[u, k] == 0.0
                continue
            e_kra = 0.40 if lat.bond_type[u, k] == BOND_RP else 0.25
            # the vacancy moves u -> j: KRA barrier plus half the vacancy-energy change
            expected = 5.0 * np.exp(-(e_kra + 0.5 * (ev[j] - ev[u])) / kt)
            assert rates[u, k] == pytest.approx(expected, rel=1e-12)


def test_chain_detailed_balance_with_traps():
    lat = chain_lattice()
    land = chain_landscape(temperature_k=500.0, across=0.30)
    res = run_kmc(lat, land, time_ns=None, max_hops=400_000, vacancy_sites=[0], seed=4, n_frames=0,
                  max_events=400_000)
    vac = np.r_[0, res.event_to_site]
    dwell = np.diff(np.r_[0.0, res.event_time_ps])
    occupancy = np.bincount(vac[:-1], weights=dwell, minlength=lat.n_sites)
    kt = KB_EV * 500.0
    expected = np.exp(-_hand_vacancy_energy(lat) / kt)
    expected /= expected.sum()
    observed = occupancy / occupancy.sum()
    assert 0.5 * np.abs(observed - expected).sum() < 0.02
    assert observed[3] > 2 * observed[0]  # the trap next to the fault holds the vacancy
    # flux balance across every bond
    pair = vac[:-1] * lat.n_sites + vac[1:]
    flux = np.bincount(pair, minlength=lat.n_sites**2).reshape(lat.n_sites, lat.n_sites)
    both = flux + flux.T
    z = np.abs(flux - flux.T)[np.triu(both > 0, 1)] / np.sqrt(both[np.triu(both > 0, 1)])
    assert z.max() < 4.0
    # crossings: kMC count against the analytic rate model
    model = rate_model(lat, land, 1)
    expected_crossings = model["crossing_rate_hz"] * res.time_ps * 1e-12
    assert res.boundary_crossings()["rp"] == pytest.approx(expected_crossings, rel=5 / np.sqrt(expected_crossings))


def test_chain_arrhenius_slope_recovers_effective_barrier():
    lat = chain_lattice()
    temps = np.array([450.0, 550.0, 700.0, 900.0])
    rates, ses, model = [], [], []
    for t in temps:
        land = chain_landscape(temperature_k=t, across=0.45)
        res = run_kmc(lat, land, time_ns=None, max_hops=200_000, vacancy_sites=[1], seed=5, n_frames=0,
                      max_events=0)
        n = res.boundary_crossings()["rp"]
        rates.append(n / res.time_ps)
        ses.append(np.sqrt(n) / res.time_ps)
        model.append(rate_model(lat, land, 1)["crossing_rate_hz"])
    fit = fit_arrhenius(temps, rates, ses)
    expected = fit_arrhenius(temps, model)["barrier_ev"]
    # the trap lowers the apparent barrier below the 0.45 eV saddle: E_eff = 0.45 - 0.12 + ...
    assert 0.2 < expected < 0.45
    assert abs(fit["barrier_ev"] - expected) < 3 * fit["barrier_se_ev"] + 0.005


def test_missing_or_failed_paths_are_errors():
    from _barrier_fixture import path

    from nanodomains.records.base import measured

    lat = build_x_lattice(two_domain_nc(SHIFT_RP, edge_nm=3.1))
    no_across = barrier_table(skip=[("across_fault", "Br"), ("across_fault", "I")],
                              site_energies=[("Br", 0.2, -0.05), ("I", 0.2, -0.05)])
    with pytest.raises(InputError, match="across_fault/"):
        run_kmc(lat, TabulatedLandscape(no_across), time_ns=0.01)
    # an explicit override lets the user proceed (closed is a choice, recorded)
    res = run_kmc(lat, TabulatedLandscape(no_across, overrides={"across_fault/Br": "closed",
                                                                 "across_fault/I": "closed"}), time_ns=0.05)
    assert res.boundary_crossings()["rp"] == 0
    assert res.settings()["landscape"]["pairs"]["across_fault/I"] == "closed (user override)"
    good = barrier_table(site_energies=[("Br", 0.2, -0.05), ("I", 0.2, -0.05)])
    failed = good.model_copy(update={"paths": good.paths + (path("bulk_I_bad", "I", "bulk", 0.3, converged=False),)})
    with pytest.raises(InputError, match="bulk_I_bad"):
        run_kmc(lat, TabulatedLandscape(failed), time_ns=0.01)
    no_nu = barrier_table(nu_thz=None, site_energies=[("Br", 0.2, -0.05), ("I", 0.2, -0.05)])
    with pytest.raises(InputError, match="attempt frequency"):
        run_kmc(lat, TabulatedLandscape(no_nu), time_ns=0.01)
    with pytest.raises(InputError, match="source"):
        TabulatedLandscape(no_nu, attempt_frequency_hz=4e12).validate()
    # explicit choice: paths without a harmonic-TST value take the same halide's pure-bulk value
    pure = {("bulk", "Br"): 1.0, ("bulk", "I"): 0.0}
    some_nu = no_nu.model_copy(update={"paths": tuple(
        p.model_copy(update={"attempt_frequency_thz": measured(0.5 if p.halide == "I" else 0.6, 0.0),
                             "local_br_fraction": pure[(p.environment, p.halide)]})
        if p.environment == "bulk" else p for p in no_nu.paths)})
    with pytest.raises(InputError, match="no harmonic-TST attempt frequency"):
        run_kmc(lat, TabulatedLandscape(some_nu), time_ns=0.01)
    filled = TabulatedLandscape(some_nu, missing_attempt_frequency="bulk")
    arr = filled.rate_arrays(lat)
    assert any("pure-bulk value" in w for w in arr.warnings)
    assert set(arr.info["attempt_frequency_substituted_thz"].values()) <= {0.5, 0.6}
    f, kra, se, nu, src = filled.barrier_curve("across_fault", "I")
    assert np.allclose(nu, 0.5e12)
    with pytest.raises(InputError, match="missing_attempt_frequency"):
        TabulatedLandscape(some_nu, missing_attempt_frequency="mean").validate()
    no_sites = barrier_table()
    with pytest.raises(InputError, match="site energies"):
        run_kmc(lat, TabulatedLandscape(no_sites), time_ns=0.01)


def test_local_br_fraction_sets_bulk_barrier():
    # I barrier 0.30 eV among I, 0.20 eV among Br; one vacancy in a homogeneous NC
    lat = build_x_lattice(homogeneous(2.4, "CsPbBr1.5I1.5", seed=2))
    tab = barrier_table({("bulk", "I"): {0.0: 0.30, 1.0: 0.20}})
    land = TabulatedLandscape(tab, temperature_k=500.0)
    rates, arrays = single_vacancy_rates(lat, land)
    kt = KB_EV * 500.0
    checked = 0
    for u in range(lat.n_sites):
        for k in range(lat.neighbors.shape[1]):
            j = lat.neighbors[u, k]
            if j < 0 or lat.species[j] != 1 or lat.surface[u] or lat.surface[j]:
                continue
            p = [q for q in lat.pb_of_x[u] if q >= 0 and q in lat.pb_of_x[j]][0]
            others = [x for x in lat.x_of_pb[p] if x not in (u, j)]
            f = np.mean(lat.species[others] == 0)
            assert rates[u, k] == pytest.approx(4.0 * np.exp(-(0.30 - 0.10 * f) / kt), rel=1e-12)
            checked += 1
    assert checked > 100


def test_bulk_barrier_on_fault_crosses_and_computed_barrier_decides():
    nc = two_domain_nc(SHIFT_RP, edge_nm=4.3)
    sites = [("Br", 0.15, -0.05), ("Br", 1.0, 0.0), ("I", 0.15, -0.05), ("I", 1.0, 0.0)]
    bulk_on_fault = barrier_table({("across_fault", "Br"): 0.25, ("across_fault", "I"): 0.25}, site_energies=sites)
    res = run_kmc(nc, TabulatedLandscape(bulk_on_fault, temperature_k=500.0), time_ns=2.0, vacancy_fraction=0.01,
                  seed=1, max_events=0)
    assert res.boundary_crossings()["rp"] > 50
    # a high computed barrier: no crossing in 10 ns at 500 K is the kMC's result, not a closed bond
    high = barrier_table({("across_fault", "Br"): 1.0, ("across_fault", "I"): 1.0}, site_energies=sites)
    res = run_kmc(nc, TabulatedLandscape(high, temperature_k=500.0), time_ns=10.0, vacancies=2, seed=1,
                  max_events=0)
    s = res.summary()
    assert s.boundary_crossings.rp == 0 and s.rp_barrier_ev == pytest.approx(1.0)
    rates, arrays = single_vacancy_rates(res.lattice, TabulatedLandscape(high, temperature_k=500.0))
    assert rates[arrays.env == 2].min() > 0  # the bond is open, with a finite rate


def test_fault_kinetics_record():
    from nanodomains.records import FaultKinetics

    nc = two_domain_nc(SHIFT_RP, edge_nm=4.3)
    sites = [("Br", 0.15, -0.15), ("Br", 0.45, -0.05), ("Br", 1.0, 0.0), ("I", 0.15, -0.15), ("I", 0.45, -0.05),
             ("I", 1.0, 0.0)]
    tab = barrier_table({("across_fault", "Br"): 0.45, ("across_fault", "I"): 0.45}, site_energies=sites, se=0.02)
    fk = fault_kinetics(nc, TabulatedLandscape(tab), (500.0, 650.0, 800.0), max_hops=300_000,
                        residence_time_ns=1.0)
    assert FaultKinetics.from_json(fk.to_json()) == fk
    assert all(p.crossings > 100 for p in fk.points)
    assert 0.85 < fk.model_to_kmc_ratio.value < 1.15  # the rate model against the kMC where both run
    assert 0.25 < fk.effective_barrier_ev.value < 0.45
    eq = {(e.temperature_k, e.method): e for e in fk.equalisation}
    room = eq[(300.0, "analytic model")]
    assert room.time_s.stderr > 0 and room.time_s.value > eq[(433.0, "analytic model")].time_s.value
    assert eq[(300.0, "Arrhenius extrapolation of kMC crossings")].extrapolated

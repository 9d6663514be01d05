"""Growth model: CNT relations, emergent multi-domain fraction, valid NC models."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from nanodomains import growth, materials
from nanodomains.errors import FormulaError, InputError
from nanodomains.structure import NanoCrystal

SEED_FORMULA = "CsPbBr1.2I1.8"


def test_cnt_barrier_matches_critical_radius_identity():
    # dG* = 16 pi g^3 v^2 / (3 dmu^2) and r* = 2 g v / dmu imply dG* = (4 pi / 3) g r*^2
    p = growth.SEED_PRESET
    f = np.linspace(0.05, 0.95, 7)
    dg = growth.nucleation_barrier_ev(f, 5.0, 0.4, p)
    r = growth.critical_radius_nm(f, 5.0, 0.4, p)
    gamma = p.interfacial_energy_br_j_m2 * growth.J_M2_TO_EV_NM2  # equal end members in the preset
    np.testing.assert_allclose(dg, 4 * np.pi / 3 * gamma * r**2, rtol=1e-12)


def test_cnt_barrier_hand_value():
    # f = f_sol, ideal solution: dmu = kT ln S exactly
    p = growth.SEED_PRESET
    kt = growth.KB_EV * p.temperature_k
    v = (materials.lattice_constant_pm(0.4) / 1000) ** 3
    gamma = 0.05 * 6.241509074460763  # J/m^2 -> eV/nm^2
    expected = 16 * math.pi * gamma**3 * v**2 / (3 * (kt * 5.0) ** 2)
    assert growth.nucleation_barrier_ev(0.4, 5.0, 0.4, p) == pytest.approx(expected, rel=1e-9)


def test_driving_force_maximal_at_supply_composition_and_mixing_makes_it_bimodal():
    p = growth.SEED_PRESET
    f = np.linspace(0.01, 0.99, 981)
    dmu = growth.driving_force_ev(f, 5.0, 0.3, p.temperature_k)
    assert f[np.argmax(dmu)] == pytest.approx(0.3, abs=0.002)
    # a regular-solution enthalpy above 2 kT splits the driving force into a Br-rich and
    # an I-rich maximum: ln(f / (1 - f)) = (Omega / kT)(2 f - 1), f = 0.145 for 2.5 kT
    kt = growth.KB_EV * p.temperature_k
    dmu2 = growth.driving_force_ev(f, 5.0, 0.5, p.temperature_k, mixing_enthalpy_ev=2.5 * kt)
    peaks = np.flatnonzero((dmu2[1:-1] > dmu2[:-2]) & (dmu2[1:-1] > dmu2[2:])) + 1
    np.testing.assert_allclose(f[peaks], [0.145, 0.855], atol=0.002)
    # ... and widens the nucleus composition distribution
    wide = growth.nucleation_summary(SEED_FORMULA, replace(p, mixing_enthalpy_ev=2.5 * kt))
    narrow = growth.nucleation_summary(SEED_FORMULA, p)
    assert wide["bulk"]["nucleus_br_fraction_sd"] > narrow["bulk"]["nucleus_br_fraction_sd"]


def test_higher_supersaturation_widens_composition_spread():
    s = growth.nucleation_summary(SEED_FORMULA)
    assert s["hotspot"]["nucleus_br_fraction_sd"] > s["bulk"]["nucleus_br_fraction_sd"]
    assert s["hotspot"]["barrier_kT"] < s["bulk"]["barrier_kT"]


def test_mass_balance_mean_nucleus_composition_is_nominal():
    pop = growth.simulate_population(SEED_FORMULA, 5000, seed=3)
    f = pop.nucleus_br_fraction
    assert abs(f.mean() - 0.4) < 4 * f.std() / math.sqrt(len(f))


def test_calibrated_preset_gives_seed_fraction_over_ten_seeds():
    fr130 = [growth.simulate_population(SEED_FORMULA, 130, seed=s).multi_domain.mean() for s in range(1, 11)]
    assert abs(np.mean(fr130) - 0.31) <= 0.05
    fr = [growth.simulate_population(SEED_FORMULA, 2000, seed=s).multi_domain.mean() for s in range(1, 11)]
    assert all(abs(x - 0.31) <= 0.05 for x in fr)
    assert abs(np.mean(fr) - 0.31) < 0.02


def test_fraction_emerges_from_mismatch_and_clustering():
    p = growth.SEED_PRESET
    base = growth.simulate_population(SEED_FORMULA, 4000, seed=5, params=p).multi_domain.mean()
    lenient = growth.simulate_population(SEED_FORMULA, 4000, seed=5,
                                         params=replace(p, mismatch_threshold=0.02)).multi_domain.mean()
    merged = growth.simulate_population(SEED_FORMULA, 4000, seed=5,
                                        params=replace(p, mismatch_threshold=0.5)).multi_domain.mean()
    fewer_spots = growth.simulate_population(SEED_FORMULA, 4000, seed=5,
                                             params=replace(p, hotspot_density_nm3=2e-6)).multi_domain.mean()
    assert merged == 0.0  # every nucleus pair is compatible: no RP fault anywhere
    assert lenient < base
    assert fewer_spots < base


@pytest.mark.parametrize("formula", ["CsPbBr2.1I0.9", "CsPbBr1.8I1.2", "CsPbBr1.5I1.5", "CsPbBr0.9I2.1"])
def test_other_compositions_run_and_give_valid_models(formula):
    pop = growth.simulate_population(formula, 150, seed=2)
    s = pop.summary()
    assert 0 < s.multi_domain_fraction.value < 1
    f0 = materials.parse_formula(formula)
    assert abs(s.nucleation.nucleus_br_fraction.mean.value - f0) < 0.05
    for i in range(len(pop)):
        pop.crystal(i)  # validates


def test_every_nc_is_a_valid_model_with_rp_between_domains():
    for seed in range(1, 11):
        pop = growth.simulate_population(SEED_FORMULA, 130, seed=seed)
        for i in range(len(pop)):
            rec = pop.record(i)
            nc = NanoCrystal.model_validate(rec)  # validation re-derives the boundaries
            assert {(tuple(b.domains), b.type) for b in nc.boundaries} == \
                {(tuple(b["domains"]), b["type"]) for b in rec["boundaries"]}
            assert all(b.type == "RP" for b in nc.boundaries)
            assert len(nc.domains) == pop.n_domains[i]
            assert all(10.0 <= e <= 20.0 for e in nc.edges_nm)
        vols = pop.domain_volumes_nm3()
        for i in np.flatnonzero(pop.multi_domain)[:10]:
            nc = pop.crystal(int(i))
            np.testing.assert_allclose(nc.domain_volumes_nm3(), vols[pop.domain_offset[i]:pop.domain_offset[i + 1]],
                                       rtol=1e-9)


def test_jsonl_round_trip(tmp_path):
    pop = growth.simulate_population(SEED_FORMULA, 60, seed=4)
    path = pop.to_jsonl(tmp_path / "pop.jsonl")
    lines = path.read_text().splitlines()
    assert len(lines) == 60
    for i, line in enumerate(lines):
        nc = NanoCrystal.from_json(line)
        assert json.loads(line) == pop.record(i)
        assert nc.nominal_formula == SEED_FORMULA and nc.seed == int(pop.crystal_seed[i])


def test_summary_statistics_consistent():
    pop = growth.simulate_population(SEED_FORMULA, 800, seed=6)
    s = pop.summary()
    hist = s.domains_per_nc
    assert sum(hist.values()) == 800
    assert s.multi_domain_count == 800 - hist.get("1", 0)
    lo, hi = s.multi_domain_fraction_wilson95
    f = s.multi_domain_fraction
    assert lo < f.value < hi
    assert f.stderr == pytest.approx(math.sqrt(f.value * (1 - f.value) / 800))
    # every boundary of a grown NC is an RP fault: one fewer than its domains
    assert s.rp_faults_per_nc == {str(int(k) - 1): v for k, v in hist.items()}
    assert s.settings["seed"] == 6 and s.origin == "truth"
    # coalesced domains straddle the nominal composition: Br-rich and I-rich
    assert s.composition.within_nc_br_spread.mean.value > 0.1
    assert s.rp_lattice_mismatch.mean.value > 0.01
    json.dumps(s.to_dict())  # JSON-ready


def test_summary_record_round_trips_and_matches_analysis_of_models(tmp_path):
    from nanodomains.records import GrowthPopulationSummary, compare, load_record
    from nanodomains.structure.population import POPULATION_TOLERANCES, summarize_crystals

    pop = growth.simulate_population(SEED_FORMULA, 300, seed=8)
    truth = pop.summary()
    path = tmp_path / "summary.json"
    truth.to_json(path)
    assert GrowthPopulationSummary.from_json(path) == truth and load_record(path) == truth
    assert truth.nucleation is not None and truth.nucleation.nuclei_per_nc.n == 300
    # the analysis reads only the written NC models
    found = summarize_crystals(pop.to_jsonl(tmp_path / "population.jsonl"))
    assert found.origin == "analysis" and found.nucleation is None and "nucleation" in found.not_computed
    cmp = compare(truth, found, tolerances=POPULATION_TOLERANCES)
    assert cmp.ok, cmp.table()
    assert cmp.row("multi_domain_fraction").ok and not any(r.path.startswith("nucleation") for r in cmp.rows)
    assert GrowthPopulationSummary.from_json(found.to_json()) == found
    # a different population does not pass
    other = summarize_crystals(growth.simulate_population(SEED_FORMULA, 300, seed=9).crystals())
    assert not compare(truth, other, tolerances=POPULATION_TOLERANCES).ok


def test_reproducible_and_seed_dependent():
    a = growth.simulate_population(SEED_FORMULA, 200, seed=9)
    b = growth.simulate_population(SEED_FORMULA, 200, seed=9)
    c = growth.simulate_population(SEED_FORMULA, 200, seed=10)
    assert [a.record(i) for i in range(200)] == [b.record(i) for i in range(200)]
    assert not np.array_equal(a.domain_br_fraction[:50], c.domain_br_fraction[:50])


def test_calibrate_recovers_preset_value():
    p0 = replace(growth.SEED_PRESET, hotspot_density_nm3=1e-6)
    p, rec = growth.calibrate(0.31, SEED_FORMULA, params=p0, n_crystals=4000, seeds=(11, 12), rtol=0.005)
    assert abs(rec["achieved_fraction"] - 0.31) < 0.02
    assert 0.6 < p.hotspot_density_nm3 / growth.SEED_PRESET.hotspot_density_nm3 < 1.6


def test_bad_input():
    with pytest.raises(InputError, match="n_crystals"):
        growth.simulate_population(SEED_FORMULA, 0)
    with pytest.raises(FormulaError):
        growth.simulate_population("CsPbCl3", 10)
    with pytest.raises(InputError, match="temperature_k"):
        growth.simulate_population(SEED_FORMULA, 10, params=replace(growth.SEED_PRESET, temperature_k=-5))
    with pytest.raises(InputError, match="nominal Br fraction"):
        growth.simulate_population("CsPbBr3", 10)
    with pytest.raises(InputError, match="not within"):
        growth.calibrate(0.99, SEED_FORMULA, n_crystals=300, seeds=(1,), bracket=(1e-6, 2e-6))
    with pytest.raises(InputError, match="edge_range_nm"):
        replace(growth.SEED_PRESET, edge_range_nm=(20.0, 10.0)).validate()
    pop = growth.simulate_population(SEED_FORMULA, 5, seed=1)
    with pytest.raises(InputError, match="outside"):
        pop.record(5)


def test_energy_fault_rule_by_hand():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from _barrier_fixture import fault, table

    from nanodomains.growth import energy_rule_parameters, predict_fractions, simulate_population

    tab = table(faults=(fault("CsPbI3", 0.0, 0.05, 629, 15.0, se=0.01), fault("CsPbBr3", 1.0, 0.05, 587, 15.0)))
    p = energy_rule_parameters(tab)
    # eps_c = sqrt(2 gamma / (M L)), M = 3 K (1 - 2 nu) / (1 - nu), L = capture distance
    m = 3 * 15e9 * (1 - 0.6) / 0.7
    assert p.critical_mismatch(0.4) == pytest.approx(np.sqrt(2 * 0.05 / (m * 6e-9)), rel=1e-12)
    # a larger fault energy makes faults rarer
    hard = energy_rule_parameters(table(faults=(fault("CsPbI3", 0.0, 0.5, 629, 15.0),
                                                fault("CsPbBr3", 1.0, 0.5, 587, 15.0))))
    soft_pop = simulate_population("CsPbBr1.2I1.8", 2000, 3, p)
    hard_pop = simulate_population("CsPbBr1.2I1.8", 2000, 3, hard)
    assert hard_pop.multi_domain.mean() < soft_pop.multi_domain.mean()
    no_k = table(faults=(fault("CsPbI3", 0.0, 0.05, 629, 15.0).model_copy(update={"bulk_modulus_gpa": None}),))
    with pytest.raises(InputError, match="CsPbI3"):
        energy_rule_parameters(no_k)
    rows = predict_fractions(tab, ("CsPbBr1.2I1.8",), n_crystals=500, seeds=(1,))
    assert rows[0]["stderr"] >= rows[0]["binomial_se"] > 0


def test_energy_rule_with_nonpositive_fault_energy():
    """gamma_RP <= 0 (the shipped CHGNet table): a fault costs nothing, eps_c = 0, so every
    coalescence of nuclei with different lattices forms a fault; gamma_j_m2 sets one value."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from _barrier_fixture import fault, table

    from nanodomains.growth import energy_rule_parameters, simulate_population

    tab = table(faults=(fault("CsPbI3", 0.0, -0.04, 638, 10.1), fault("CsPbBr3", 1.0, -0.06, 596, 13.8)))
    p = energy_rule_parameters(tab)
    assert p.critical_mismatch(0.4) == 0.0
    zero = energy_rule_parameters(tab, gamma_j_m2=0.0)
    assert zero.fault_energy_curve[0][1] == 0.0 and zero.critical_mismatch(0.4) == 0.0
    thr = replace(growth.SEED_PRESET, mismatch_threshold=1e-12)  # the same rule written as a threshold
    a = simulate_population(SEED_FORMULA, 1500, 4, p)
    b = simulate_population(SEED_FORMULA, 1500, 4, thr)
    assert np.array_equal(a.n_domains, b.n_domains)
    # any positive fault energy can only merge more nuclei
    c = simulate_population(SEED_FORMULA, 1500, 4, energy_rule_parameters(tab, gamma_j_m2=0.05))
    assert c.multi_domain.mean() < a.multi_domain.mean()
    with pytest.raises(InputError, match="gamma"):
        energy_rule_parameters(tab, gamma_j_m2=float("nan"))

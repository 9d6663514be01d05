"""`nanodomains infer`: the Bayesian inverse from PL lines to domain compositions and sizes.

Checks, in order: the tabulated forward model against the exact level model; the
analytic marginalisation over the Br fraction against a numerical integral; the FSS
ratio of a cube by hand; recovery of domains whose lines come from the exact model
(with the degeneracy visible and the STEM prior narrowing the intervals); bad input;
the CLI and the record.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nanodomains import materials
from nanodomains.errors import InputError
from nanodomains.optics import levels as lv
from nanodomains.records import EmitterInference, Measured, PLEmitter, PLEmitters, load_record
from nanodomains.spectroscopy import inference as inf

W_TRUE = 14.0
DOMAINS = [(0.25, 4.0, "orthorhombic"), (0.55, 6.0, "tetragonal"), (0.8, 3.0, "orthorhombic")]


def _surface(t, w):
    return 0.5 * (2 * t / (2 * t + w) + (4 * t + w) / (4 * t + 2 * w))


def synthetic_emitters(domains=DOMAINS, w=W_TRUE, center_sd_nm=0.01, fss_sd=10.0) -> PLEmitters:
    """Emitters whose lines come from the exact (untabulated) level model of slabs (t, w, w)."""
    out = []
    for k, (f, t, sym) in enumerate(domains):
        st = lv.exciton_state(f, (t, w, w), surface_fraction=_surface(t, w))
        fs = lv.fine_structure(st.energy_ev, (t, w, w), br_fraction=f, symmetry=sym)
        out.append(PLEmitter(id=f"E{k}", kind=fs.kind, center_nm=Measured(value=float(fs.center_nm), stderr=center_sd_nm),
                             fss_uev=Measured(value=fs.fss_uev, stderr=fss_sd)))
    return PLEmitters(emitters=out)


@pytest.fixture(scope="module")
def run():
    """Three domains at the default 10 000 steps (slow tests)."""
    return inf.infer_emitters(synthetic_emitters(), settings=inf.InferenceSettings(seed=3))


@pytest.fixture(scope="module")
def small_run():
    """Two domains, a short chain: the default suite's end-to-end run."""
    return inf.infer_emitters(synthetic_emitters(DOMAINS[:2]), settings=inf.InferenceSettings(n_steps=2500, seed=4))


def test_slab_table_is_the_exact_level_model_within_its_stated_error():
    table = inf.slab_level_table()
    rng = np.random.default_rng(0)
    worst_e = worst_k = 0.0
    for _ in range(8):
        f, t, w = rng.uniform(0, 1), math.exp(rng.uniform(math.log(1.8), math.log(20))), rng.uniform(10, 20)
        st = lv.exciton_state(f, (t, w, w), bowing_ev=0.0, surface_fraction=1.0)
        e0, diel, logk = table.levels(f, t, w)
        worst_e = max(worst_e, abs(e0 + diel - st.energy_ev))
        worst_k = max(worst_k, abs(math.exp(logk) / st.oscillator_enhancement - 1))
    model = inf.PosteriorModel(inf.observations_from_emitters(synthetic_emitters()))
    assert worst_e < model.table_err_ev  # the model's stated interpolation error holds
    assert worst_k < 0.01


def test_fss_ratio_of_a_cube_is_one_by_hand():
    # cube: no shape term; tetragonal (-1/3,-1/3,2/3) -> doublet with gap F; orthorhombic
    # (-(1-r), 0, 1+r) -> gaps (1-r)F, (1+r)F, mean F; all three dipoles visible at NA 0.7
    assert np.allclose(lv.depolarization_factors((1, 1, 1)), 1 / 3)
    r = inf.fss_ratios(1.0, 300.0)
    w = inf.SYMMETRY_WEIGHTS
    assert r["doublet"] == pytest.approx((w["tetragonal"], 1.0, 0.0), abs=1e-3)  # N(aspect) interpolated
    assert r["triplet"] == pytest.approx((w["orthorhombic"], 1.0, 0.0), abs=1e-3)
    # a small F merges the orthorhombic pair 0.9 F apart below 60 ueV: no triplet is seen
    assert inf.fss_ratios(1.0, 50.0)["triplet"][0] == 0.0
    # a thin slab: the shape term splits the tetragonal doublet's degenerate pair (triplets appear)
    assert inf.fss_ratios(0.25, 300.0)["triplet"][0] > w["orthorhombic"]


@pytest.mark.parametrize("aspect, width_uev", [(0.15, 60.0), (0.4, 250.0), (1.0, 60.0), (2.5, 120.0)])
def test_fine_patterns_equal_the_forward_models_fine_structure(aspect, width_uev):
    """Kind probabilities and mean FSS/F of FinePatterns against levels.fine_structure run
    on every pattern, edge permutation and optical axis (the simulator's draws)."""
    from itertools import permutations

    params = lv.LevelParameters(merge_uev=width_uev)
    scale = 300.0
    edges0 = np.array([aspect * 10.0, 10.0, 10.0])
    got = inf.fss_ratios(aspect, scale, params)
    acc = {k: [] for k in ("singlet", "doublet", "triplet")}
    for sym, w_sym in inf.SYMMETRY_WEIGHTS.items():
        for perm in permutations(range(3)):
            for z in range(3):
                rot = np.zeros((3, 3))
                others = [i for i in range(3) if i != z]
                rot[0, others[0]], rot[1, others[1]], rot[2, z] = 1.0, 1.0, 1.0
                fs = lv.fine_structure(2.0, edges0[list(perm)], scale_uev=scale, orientation=rot.T,
                                       symmetry=sym, params=params)
                acc[fs.kind].append((w_sym / 18, fs.fss_uev / scale))
    for kind, rows in acc.items():
        prob = sum(w for w, _ in rows)
        assert got[kind][0] == pytest.approx(prob, abs=1e-9), kind
        if rows and kind != "singlet":
            w, g = np.array(rows).T
            assert got[kind][1] == pytest.approx(np.average(g, weights=w), rel=0.02), kind


def test_analytic_composition_marginal_equals_numerical_integral():
    obs = inf.observations_from_emitters(synthetic_emitters(DOMAINS[:1]))
    model = inf.PosteriorModel(obs)
    phi = np.array([[4.2, 14.5, 0.05, 0.004, 1.02]])
    analytic = model.log_prob(phi)[0]
    f = np.linspace(0, 1, 20001)
    theta = np.column_stack([f, np.repeat(phi, f.size, axis=0)])
    pred = model.predict(theta)
    var_e = obs.center_sd_ev**2 + pred["var_energy"][:, 0]
    like = np.exp(-0.5 * (obs.center_ev[0] - pred["energy_ev"][:, 0]) ** 2 / var_e) / np.sqrt(2 * np.pi * var_e)
    like *= np.exp(model.fine_structure_log_likelihood(pred)[:, 0])  # kind and FSS
    prior = -0.5 * (0.004 / model.priors.gap_offset_sd_ev) ** 2 - 0.5 * (0.02 / model.priors.exchange_rel_sd) ** 2
    numerical = math.log(np.trapezoid(like, f)) + prior
    assert analytic == pytest.approx(numerical, abs=0.05)


def test_two_domains_recovered_by_a_short_chain(small_run):
    rec = small_run.record
    assert rec.sampler["n_effective"] > 100
    for (f, t, _), d in zip(DOMAINS, rec.domains):
        assert d.br_fraction_ci90[0] <= f <= d.br_fraction_ci90[1], (d.emitter_id, f, d.br_fraction_ci90)
        assert d.thickness_nm_ci90[0] <= t <= d.thickness_nm_ci90[1]
        assert d.size_composition_corr > 0.3


@pytest.mark.slow
def test_recovers_domains_of_the_exact_model_and_shows_the_degeneracy(run):
    rec = run.record
    assert rec.sampler["converged"] and rec.fit_ok, rec.warnings
    for (f, t, _), d in zip(DOMAINS, rec.domains):
        lo, hi = d.br_fraction_ci90
        assert lo <= f <= hi, (d.emitter_id, f, d.br_fraction_ci90)
        assert d.thickness_nm_ci90[0] <= t <= d.thickness_nm_ci90[1]
        assert hi - lo > 0.05  # the bowing and gap-offset priors do not allow a sharp answer
        assert d.size_composition_corr > 0.3  # Br-richer and thinner against I-richer and thicker
        assert abs(d.predictive_z["center"]) < 3
    assert rec.nc_edge_nm.value == pytest.approx(W_TRUE, abs=3 * rec.nc_edge_nm.stderr)
    assert run.samples.shape[1] == len(run.names) == 2 * len(DOMAINS) + 4


@pytest.mark.slow
def test_stem_prior_narrows_the_compositions(run):
    stem = inf.StemPrior(br_fraction=np.array([f for f, _, _ in DOMAINS]), br_fraction_sd=np.full(3, 0.05),
                         area_nm2=np.array([t * W_TRUE for _, t, _ in DOMAINS]), source="test")
    with_stem = inf.infer_emitters(synthetic_emitters(), stem=stem, settings=inf.InferenceSettings(seed=3))
    for a, b, (f, _, _) in zip(run.record.domains, with_stem.record.domains, DOMAINS):
        wa = a.br_fraction_ci90[1] - a.br_fraction_ci90[0]
        wb = b.br_fraction_ci90[1] - b.br_fraction_ci90[0]
        assert wb < 0.8 * wa
        assert b.br_fraction_ci90[0] <= f <= b.br_fraction_ci90[1]
    assert with_stem.record.stem_prior["n_components"] == 3


def test_record_round_trip_and_files(small_run, tmp_path):
    run = small_run
    paths = inf.write_inference(run, tmp_path / "out")
    back = load_record(paths["record"])
    assert isinstance(back, EmitterInference) and back == run.record
    import xarray as xr

    with xr.open_dataset(paths["posterior"], engine="h5netcdf") as ds:
        assert ds.sizes["sample"] == run.samples.shape[0]
    assert paths["corner"].stat().st_size > 10_000 and paths["predictive"].stat().st_size > 5_000


def test_emitters_without_uncertainties_are_named():
    rec = synthetic_emitters()
    bad = rec.emitters[0].model_copy(update={"center_nm": Measured(value=600.0)})
    with pytest.raises(InputError, match=r"without uncertainties.*E0"):
        inf.observations_from_emitters(PLEmitters(emitters=[bad, *rec.emitters[1:]]))
    nofss = rec.emitters[1].model_copy(update={"fss_uev": Measured(value=300.0)})
    with pytest.raises(InputError, match="E1"):
        inf.observations_from_emitters(PLEmitters(emitters=[nofss]))


def test_lines_outside_the_model_are_named():
    far = PLEmitter(id="UV", kind="singlet", center_nm=Measured(value=400.0, stderr=0.01),
                    fss_uev=Measured(value=0.0, stderr=0.0))
    with pytest.raises(InputError, match=r"outside the model's range.*UV"):
        inf.infer_emitters(PLEmitters(emitters=[far, *synthetic_emitters().emitters]))


def test_no_neutral_emitter_and_absurd_priors():
    trion = PLEmitter(id="T", kind="trion", state="X*", center_nm=Measured(value=650.0, stderr=0.01),
                      fss_uev=Measured(value=0.0, stderr=0.0))
    with pytest.raises(InputError, match="no neutral emitter"):
        inf.observations_from_emitters(PLEmitters(emitters=[trion]))
    with pytest.raises(InputError, match="nc_edge_nm"):
        inf.InferencePriors(nc_edge_nm=(20.0, 10.0))
    with pytest.raises(InputError, match="n_steps"):
        inf.InferenceSettings(n_steps=5)


def test_trion_shift_is_used_when_paired():
    rec = synthetic_emitters(DOMAINS[:1])
    x = rec.emitters[0]
    shift = lv.domain_observables(0.25, (4.0, W_TRUE, W_TRUE))["trion_shift_ev"]
    e_t = float(materials.energy_ev(x.center_nm.value)) + float(shift)
    trion = PLEmitter(id="T0", kind="trion", state="X*", trion_of="E0",
                      center_nm=Measured(value=float(materials.wavelength_nm(e_t)), stderr=0.01),
                      fss_uev=Measured(value=0.0, stderr=0.0))
    obs = inf.observations_from_emitters(PLEmitters(emitters=[x, trion]))
    assert obs.n == 1 and obs.trion_shift_ev[0] == pytest.approx(shift, abs=1e-4)


def test_cli_infer_writes_the_posterior(tmp_path, capsys):
    from nanodomains.cli import main

    src = tmp_path / "emitters.json"
    synthetic_emitters(DOMAINS[:1]).to_json(src)
    rc = main(["infer", str(src), "--out", str(tmp_path / "inf"), "--steps", "300"])
    assert rc in (0, None), capsys.readouterr().err
    data = json.loads((tmp_path / "inf" / "inference.json").read_text())
    assert data["schema"] == "nanodomains.inference/1" and len(data["domains"]) == 1
    assert "E0" in capsys.readouterr().out
    rc = main(["infer", str(src), "--out", str(tmp_path / "inf2"), "--stem", str(src)])
    err = capsys.readouterr().err
    assert rc != 0 and "expected a STEM domains.json" in err and "Traceback" not in err
    rc = main(["infer", str(src), "--out", str(tmp_path / "inf3"), "--steps", "5"])
    assert rc != 0 and "steps" in capsys.readouterr().err


def test_stem_prior_from_a_domains_record(tmp_path):
    from nanodomains.records import StemComposition, StemDomain, StemDomains

    doms = (StemDomain(id=0, area_nm2=40.0, br_fraction=Measured(value=0.27, stderr=0.03)),
            StemDomain(id=1, area_nm2=80.0, composition=StemComposition(
                model="vegard", vegard_br_fraction=Measured(value=0.52, stderr=0.01))),
            StemDomain(id=2, lattice_pm=Measured(value=612.3, stderr=1.0)),
            StemDomain(id=3))
    rec = StemDomains(pixel_size_pm=20.0, shape_px=(64, 64), domains=doms)
    path = tmp_path / "domains.json"
    rec.to_json(path)
    prior = inf.stem_prior_from_domains(inf.load_stem_domains(path))
    assert prior.composition_from == ("z-contrast", "vegard", "lattice (Vegard)", "none")
    f_lattice = materials.br_fraction_from_lattice(612.3)
    np.testing.assert_allclose(prior.br_fraction, [0.27, 0.52, f_lattice])
    assert prior.br_fraction_sd[1] == 0.02  # floored
    assert np.isnan(prior.area_nm2[2])
    # the mixture density peaks at a component and ignores sizes where none is known
    dens = prior.log_density(np.array([0.27, 0.335]), np.array([40.0, 40.0]))  # at a component, between two
    assert dens[0] > dens[1]
    with pytest.raises(InputError, match="no domain with a composition"):
        inf.stem_prior_from_domains(StemDomains(pixel_size_pm=20.0, shape_px=(64, 64), domains=(StemDomain(id=0),)))

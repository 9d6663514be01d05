"""Levels of one domain: variational exciton, size series against published PL, FSS, trion, lifetime."""

import itertools
import math

import numpy as np
import pytest

from nanodomains import materials
from nanodomains.errors import InputError
from nanodomains.optics import levels as lv


def _nm(f, edge, temperature="RT", **kw):
    return lv.exciton_state(f, edge, temperature, **kw).wavelength_nm


# ---- validation against published size series (room temperature) -------------------

def test_rt_pl_matches_the_fit_rows_of_the_literature_table():
    # the three fit rows (Protesescu 2015) are reproduced by the chosen parameters (0 dof: exact)
    from nanodomains.optics import literature as li
    pts = li.pl_points(use="fit")
    for f, e, target in zip(pts["br_fraction"], pts["edge_nm"], pts["energy_ev"]):
        assert lv.exciton_state(f, e, "RT").energy_ev == pytest.approx(target, abs=0.003)


def test_rt_pl_check_rows_within_35_mev():
    # Energies 2021 (sizes estimated by the authors' EMA, not fitted): measured -32 / +28 meV
    from nanodomains.optics import literature as li
    pts = li.pl_points(use="check")
    res = [lv.exciton_state(f, e, "RT").energy_ev - t for f, e, t in zip(pts["br_fraction"], pts["edge_nm"], pts["energy_ev"])]
    assert len(res) == 2 and max(abs(r) for r in res) < 0.035


def test_confinement_blue_shifts_monotonically():
    lam = [_nm(1.0, e) for e in (4, 5, 6, 8, 10, 12, 20, 40)]
    assert np.all(np.diff(lam) > 0)
    # large NCs approach the bulk exciton (gap - E_b) from above
    bulk = materials.wavelength_nm(materials.bandgap_ev(1.0, "RT") - materials.exciton_binding_ev(1.0))
    assert lam[-1] < bulk + 0.5 and lam[-1] > bulk - 6.0


def test_seed_nc_solution_pl_held_out():
    # held out of every fit: the seed's CsPbBr1.2I1.8 NCs (10-20 nm) near 620 nm. With b = 0
    # (Yin, Yan & Wei 2014) the model gives 603 / 614 / 617 nm: 15 and 20 nm within 10 nm,
    # 10 nm 17 nm to the blue (reported, not tuned)
    f = materials.parse_formula("CsPbBr1.2I1.8")
    lam = [_nm(f, e) for e in (10.0, 15.0, 20.0)]
    assert abs(lam[1] - 620.0) <= 10.0 and abs(lam[2] - 620.0) <= 10.0
    assert 600.0 < lam[0] < 610.0
    lam_b = [_nm(f, 15.0, bowing_ev=b) for b in (0.0, 0.1, 0.2, 0.33)]
    assert np.all(np.diff(lam_b) > 0)


def test_seed_domains_fall_in_the_seed_window():
    # domains between CsPbBr0.81I2.19 and CsPbBr1.56I1.44 of 4-10 nm emit within the seed's
    # 540-690 nm (4 K); only the very smallest Br-rich cubes (L_eff < 4.5 nm) would be bluer
    f_lo = materials.parse_formula("CsPbBr0.81I2.19")
    f_hi = materials.parse_formula("CsPbBr1.56I1.44")
    checked = 0
    for f in np.linspace(f_lo, f_hi, 6):
        for edges in itertools.combinations_with_replacement([4, 5, 6, 7, 8, 9, 10], 3):
            if lv.effective_size_nm(edges) < 4.5:
                continue
            lam = lv.exciton_state(float(f), edges, "4K").wavelength_nm
            assert 530.0 <= lam <= 690.0, (f, edges, lam)
            checked += 1
    assert checked > 400


# ---- the variational solution --------------------------------------------------------

def _first_order_coulomb_mc(l_ab, n=400_000, seed=0):
    """<a_B / r> for independent electron and hole in sin^2 densities, by sampling."""
    rng = np.random.default_rng(seed)

    def sample(length):
        # rejection sampling of the density (2/L) sin^2(pi x/L)
        out = np.empty(0)
        while out.size < n:
            x = rng.random(2 * n)
            out = np.concatenate([out, x[rng.random(2 * n) < np.sin(np.pi * x) ** 2]])
        return out[:n] * length

    d = np.stack([sample(L) - sample(L) for L in l_ab], axis=1)
    inv = 1.0 / np.linalg.norm(d, axis=1)
    return inv.mean(), inv.std() / math.sqrt(n)


def test_strong_confinement_limit_matches_first_order_perturbation():
    # beta -> 0 for L << a_B: E = k^2 - 2 <1/r> (E_b units), checked against Monte Carlo
    l_ab = (0.15, 0.2, 0.25)
    r, wc = lv._pair_quadrature(l_ab)
    coul0 = 2 * np.sum(wc / r) / np.sum(wc)
    mc, err = _first_order_coulomb_mc(l_ab)
    assert coul0 == pytest.approx(2 * mc, abs=8 * 2 * err)
    kin0, kin, coul, beta, k_osc = lv._variational(l_ab, 1.0, None)
    assert kin0 == pytest.approx(np.pi**2 * sum(1 / x**2 for x in l_ab), rel=1e-12)
    # correlation lowers the energy only slightly compared with the first-order result
    e_var, e_first = kin - coul, kin0 - coul0
    assert e_first - 1.0 < e_var <= e_first
    assert k_osc == pytest.approx(1.0, abs=0.2)


def test_weak_confinement_limit_is_the_bulk_exciton():
    # L >> a_B: E -> -E_b + (4/3) hbar^2 k^2 / 2M (M = 4 mu: the centre of mass sees the
    # density phi^4, whose kinetic energy is 4/3 of the exact sine), beta -> 1/a_B
    for side in (30.0, 60.0):
        kin0, kin, coul, beta, _ = lv._variational((side,) * 3, 1.0, None)
        assert kin - coul == pytest.approx(-1.0 + kin0 / 3, abs=2e-4)
        assert beta == pytest.approx(1.0, abs=0.03)


def test_components_add_up_and_cache_is_symmetric():
    st = lv.exciton_state(0.4, (6.0, 8.0, 10.0), "4K")
    assert st.energy_ev == pytest.approx(st.bandgap_ev + st.confinement_ev - st.binding_ev + st.dielectric_ev)
    assert st.energy_ev == pytest.approx(lv.exciton_state(0.4, (10.0, 6.0, 8.0), "4K").energy_ev, abs=1e-12)
    # size-dependent binding: larger than bulk E_b in small domains
    assert st.binding_ev > materials.exciton_binding_ev(0.4)
    inner = lv.exciton_state(0.4, (6.0, 8.0, 10.0), "4K", surface_fraction=0.0)
    assert inner.dielectric_ev == 0.0 and st.dielectric_ev > 0


def test_kane_nonparabolicity_lowers_confinement():
    base = lv.exciton_state(1.0, 4.0, "RT")
    para = lv.exciton_state(1.0, 4.0, "RT", params=lv.LevelParameters(kane=False))
    assert para.confinement_ev > base.confinement_ev > 0


# ---- fine structure ----------------------------------------------------------------------

def test_exchange_scales_as_inverse_volume_in_strong_confinement():
    # E_x = M (27 / 8V) K: by hand for a 4 nm CsPbBr3 cube with its K
    st = lv.exciton_state(1.0, 4.0, "4K")
    hand = 1e3 * lv.DEFAULT_LEVEL_PARAMETERS.exchange_volume_mev_nm3 * 27 / (8 * 64) * st.oscillator_enhancement
    assert lv.exchange_energy_uev(4.0, 1.0) == pytest.approx(hand, rel=1e-9)
    # (a_B / L)^3 law where K ~ 1 (strong confinement): 2 -> 3 nm scales by (2/3)^3 times K ratio
    k2, k3 = (lv.exciton_state(1.0, e, "4K").oscillator_enhancement for e in (2.0, 3.0))
    assert lv.exchange_energy_uev(3.0, 1.0) / lv.exchange_energy_uev(2.0, 1.0) == pytest.approx((2 / 3) ** 3 * k3 / k2)


def test_exchange_calibration_reproduces_cspbcl3_and_predicts_the_seed():
    from nanodomains.optics import literature as li
    m, sd = li.exchange_volume_from_cspbcl3()
    assert m == pytest.approx(lv.DEFAULT_LEVEL_PARAMETERS.exchange_volume_mev_nm3, rel=0.01) and sd > 0
    # held out: the seed's FSS 677 / 878 ueV (10-20 nm NCs, f ~ 0.4). Measured prediction:
    # 0.1-0.4 meV for 10-20 nm, i.e. 2-5x below the seed (reported in docs/optics.md)
    f10, f20 = lv.fss_scale_uev(10.0, 0.4), lv.fss_scale_uev(20.0, 0.4)
    assert 250.0 < f10 < 500.0 and 50.0 < f20 < 150.0
    # exchange is weaker in the iodide-rich (larger a_B) domain of the same size
    assert lv.exchange_energy_uev(8.0, 0.0) < lv.exchange_energy_uev(8.0, 1.0)


def test_dark_singlet_below_bright_triplet():
    d = lv.domain_levels(0.4, 10.0)
    assert d.dark_ev < d.fine.all_ev.min()
    assert d.summary()["dark_bright_uev"] == pytest.approx(lv.exchange_energy_uev(10.0, 0.4), rel=1e-6)


def test_bright_lines_from_symmetry():
    fs = lambda sym: lv.fine_structure(2.0, 14.0, scale_uev=677.0, symmetry=sym)
    assert fs("cubic").kind == "singlet"
    t = fs("tetragonal")
    assert t.kind == "doublet" and t.fss_uev == pytest.approx(677.0, rel=1e-6)
    o = fs("orthorhombic")
    assert o.kind == "triplet" and o.fss_uev == pytest.approx(677.0, rel=1e-6)
    with pytest.raises(InputError):
        lv.fine_structure(2.0, 14.0)


def test_shape_anisotropy_splits_and_orders_lines():
    n = lv.depolarization_factors((10.0, 10.0, 15.0))
    assert n.sum() == pytest.approx(1.0)
    assert n[2] < n[0] == pytest.approx(n[1])
    assert lv.depolarization_factors(7.0) == pytest.approx(np.full(3, 1 / 3), abs=1e-9)
    fs = lv.fine_structure(2.0, (10.0, 10.0, 15.0), scale_uev=500.0, symmetry="cubic")
    # the dipole along the long axis (z) lies lowest
    assert np.argmin(fs.all_ev) == 2 and fs.kind == "doublet"


def test_collection_geometry():
    # a full hemisphere (NA -> 1) collects half of any dipole's emission
    eff = lv.collection_efficiency(np.eye(3), 0.99999)
    assert eff == pytest.approx(np.full(3, 0.5), abs=5e-3)
    # a dipole along the optical axis sends little into a small cone
    eff = lv.collection_efficiency(np.eye(3), 0.1)
    assert eff[2] / eff[0] < 0.01
    fs = lv.fine_structure(2.0, 12.0, scale_uev=800.0, symmetry="orthorhombic", params=lv.LevelParameters(collection_na=0.1))
    assert fs.kind == "doublet"
    fs = lv.fine_structure(2.0, 12.0, scale_uev=800.0, symmetry="orthorhombic")
    assert fs.kind == "triplet" and fs.intensity.sum() == pytest.approx(1.0)
    # polarisations of the in-plane dipoles are orthogonal
    pol = sorted(fs.polarization_deg[np.argsort(fs.intensity)[-2:]])
    assert (pol[1] - pol[0]) % 180 == pytest.approx(90.0)


def test_fine_structure_from_fss_keeps_centre_and_gaps():
    c = materials.energy_ev(650.0)
    for kind, fss in (("doublet", 677.0), ("triplet", 878.0)):
        fs = lv.fine_structure_from_fss(c, fss, kind)
        assert fs.center_ev == pytest.approx(c, abs=1e-12)
        assert fs.fss_uev == pytest.approx(fss, abs=1e-6)
    with pytest.raises(InputError):
        lv.fine_structure_from_fss(c, 0.0, "doublet")
    with pytest.raises(InputError):
        lv.fine_structure_from_fss(c, 100.0, "quartet")


# ---- trion and lifetime -----------------------------------------------------------------------

def test_trion_shift_law_and_composition_scaling():
    # CsPbBr3: A + B/L^2 = -10 - 780/100 meV at 10 nm (the cited law, exactly)
    assert lv.trion_shift_ev(10.0, 1.0) == pytest.approx(-(10 + 7.8) * 1e-3)
    # other compositions scale A with E_b and B with 1/mu (hand computation at f = 0.4, 8 nm)
    eb = materials.exciton_binding_ev(0.4) / materials.exciton_binding_ev(1.0)
    mu = materials.reduced_mass(1.0) / materials.reduced_mass(0.4)
    assert lv.trion_shift_ev(8.0, 0.4) == pytest.approx((-10 * eb - 780 * mu / 64) * 1e-3)
    d = lv.domain_levels(0.4, 12.0)
    assert d.trion_ev < d.exciton_ev and d.trion_nm > d.exciton.wavelength_nm
    # held out: the seed's QD1*/QD1 splitting 9.9 meV lies within the model's 5-20 nm range
    shifts = [-1e3 * lv.trion_shift_ev(e, 0.4) for e in (5.0, 20.0)]
    assert shifts[1] < 9.9 < shifts[0]


def test_stark_polarizability_by_hand_and_published_coefficient():
    # sum over states of the infinite well (hand): alpha = 2 e^2 sum |<1|x|n>|^2 / (E_n - E_1)
    n = np.arange(2, 400, 2)
    s = np.sum(n**2 / (n**2 - 1.0) ** 5) * 256 / np.pi**6
    # published: (15 - pi^2) / (12 pi^4) (Bastard et al. PRB 28, 3241 (1983))
    assert s == pytest.approx((15 - np.pi**2) / (12 * np.pi**4), rel=1e-9)
    assert lv.BOX_POLARIZABILITY_COEFF == pytest.approx(s, rel=1e-9)
    # strong confinement: alpha -> C (m_e + m_h) L^4 / hbar^2 (e nm^2/V); 2 nm cube of CsPbBr3
    m_sum = 4 * materials.reduced_mass(1.0)
    box = s * m_sum * 16.0 / 0.0761996
    alpha = lv.stark_polarizability(1.0, 2.0)
    assert alpha[0] == pytest.approx(box, rel=0.01)
    # weak confinement: the hydrogenic (9/2) 4 pi eps0 eps a_B^3 caps it
    eps, ab = materials.dielectric_constant(0.0), materials.bohr_radius_nm(0.0)
    assert lv.stark_polarizability(0.0, 200.0)[0] == pytest.approx(4.5 * eps * ab**3 / 1.439964, rel=0.01)


def test_forster_r0_by_hand_and_contact_flag():
    # narrow donor line far above the acceptor edge: R0^6 = 9 k2 sigma lambda^4 / (128 pi^5 n^4)
    e_d, vol, n = materials.energy_ev(558.0), 1000.0, 2.3
    sigma = lv.ABSORPTION_PER_CM * vol * 1e-21
    hand = (9 * (2 / 3) * sigma * (558e-7) ** 4 / (128 * np.pi**5 * n**4)) ** (1 / 6) * 1e7
    assert lv.forster_r0_nm(e_d, materials.energy_ev(658.0), vol, refractive_index=n) == pytest.approx(hand, rel=0.01)
    # uphill (donor below the acceptor edge): no overlap
    assert lv.forster_r0_nm(materials.energy_ev(670.0), materials.energy_ev(658.0), vol) < 0.2 * hand
    far, ok = lv.forster_geometry_factor((0, 0, 0), (5, 5, 5), (20, 0, 0), (25, 5, 5))
    assert ok and far == pytest.approx(20.0**-6)
    near, ok = lv.forster_geometry_factor((0, 0, 0), (5, 15, 15), (5, 0, 0), (10, 15, 15))
    assert not ok and near > 5.0**-6


def test_vectorised_forward_model_matches_exact():
    f = np.array([1.0, 0.4, 0.0, 0.7])
    e = np.array([4.0, 8.0, 10.0, 15.0])
    cubes = np.repeat(e[:, None], 3, axis=1)
    fast = lv.exciton_arrays(f, cubes, "4K")
    exact = [lv.exciton_state(a, b, "4K") for a, b in zip(f, e)]
    assert fast.energy_ev == pytest.approx([x.energy_ev for x in exact], abs=1e-3)
    assert fast.oscillator_enhancement == pytest.approx([x.oscillator_enhancement for x in exact], rel=0.01)
    cub = lv.exciton_arrays(0.3, (5.0, 10.0, 15.0), "4K").energy_ev
    assert float(cub) == pytest.approx(lv.exciton_state(0.3, (5.0, 10.0, 15.0), "4K").energy_ev, abs=5e-3)
    obs = lv.domain_observables(f, cubes)
    assert obs["trion_shift_ev"][0] == pytest.approx(lv.trion_shift_ev(4.0, 1.0))
    assert obs["fss_uev"][1] == pytest.approx(lv.fss_scale_uev(8.0, 0.4), rel=0.01)


def test_lifetime_calibration_and_size_dependence():
    ref = lv.exciton_state(0.4, 8.0, "4K")
    assert lv.radiative_lifetime_ns(ref) == pytest.approx(0.60)
    taus = [lv.radiative_lifetime_ns(lv.exciton_state(0.4, e, "4K")) for e in (5, 8, 12, 16)]
    assert np.all(np.diff(taus) < 0)  # giant oscillator strength in larger domains
    assert 0.1 < min(taus) and max(taus) < 1.5


# ---- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"br_fraction": 0.4, "edges_nm": -5.0},
    {"br_fraction": 0.4, "edges_nm": (5.0, 0.0, 5.0)},
    {"br_fraction": float("nan"), "edges_nm": 5.0},
    {"br_fraction": 1.2, "edges_nm": 5.0},
    {"br_fraction": 0.4, "edges_nm": (5.0, 5.0)},
    {"br_fraction": 0.4, "edges_nm": float("inf")},
])
def test_bad_input_is_rejected(kwargs):
    with pytest.raises(InputError):
        lv.exciton_state(**kwargs)


def test_bad_parameters_are_rejected():
    with pytest.raises(InputError):
        lv.LevelParameters(collection_na=1.2)
    with pytest.raises(InputError):
        lv.LevelParameters(eps_out=float("nan"))
    with pytest.raises(InputError):
        lv.LevelParameters(symmetry="hexagonal")
    with pytest.raises(InputError):
        lv.exciton_state(0.4, 5.0, "77K")
    with pytest.raises(InputError):
        lv.fine_structure(2.0, 10.0, orientation=np.ones((3, 3)))
    with pytest.raises(InputError):
        lv.exciton_state(0.4, 5.0, surface_fraction=1.5)

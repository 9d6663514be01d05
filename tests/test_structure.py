"""NC models: geometry, atoms, RP faults, columns, JSON."""

import json

import numpy as np
import pytest
from scipy.spatial import cKDTree

from nanodomains import materials
from nanodomains.errors import FileFormatError, GeometryError
from nanodomains.structure import (
    SITE_CS, SITE_PB, SITE_X, Domain, NanoCrystal, Region, homogeneous, paper_fig1,
    random_domains, write_atoms,
)


def test_homogeneous_atom_counts_match_geometry():
    nc = homogeneous(6.0, seed=1)
    n = np.array(nc.n_cells)
    at = nc.to_atoms()
    site = at.get_array("site")
    # n^3 octahedra; Cs on (n+1)^3 corners; X on face centres of the cell grid
    assert np.sum(site == SITE_PB) == np.prod(n)
    assert np.sum(site == SITE_CS) == np.prod(n + 1)
    n_x = sum(np.prod(n + np.eye(3, dtype=int)[i]) for i in range(3))  # faces normal to i
    assert np.sum(site == SITE_X) == n_x
    assert set(np.unique(at.numbers[site == SITE_X])) <= {35, 53}


def test_vegard_lattice_in_built_atoms():
    nc = homogeneous(6.0, "CsPbBr3", seed=1)
    at = nc.to_atoms()
    pb = at.positions[at.get_array("site") == SITE_PB]
    d, _ = cKDTree(pb).query(pb, k=2)
    assert np.median(d[:, 1]) == pytest.approx(materials.lattice_constant_pm(1.0) / 100, rel=1e-9)


def _br_z_scores(nc, seed):
    at = nc.to_atoms(seed=seed)
    x = at.get_array("site") == SITE_X
    dom = at.get_array("domain")
    z = []
    for d in nc.domains:
        sel = x & (dom == d.id)
        frac = np.mean(at.numbers[sel] == 35)
        z.append((frac - d.br_fraction) / np.sqrt(d.br_fraction * (1 - d.br_fraction) / sel.sum()))
    return np.array(z)


def test_br_fraction_within_three_binomial_sigma():
    nc = paper_fig1(seed=1)
    assert np.all(np.abs(_br_z_scores(nc, 1)) <= 3)
    # and unbiased: pooled over seeds the z-scores average to ~0 (sd of mean 1/sqrt(50))
    pooled = np.concatenate([_br_z_scores(nc, s) for s in range(10)])
    assert abs(pooled.mean()) < 3 / np.sqrt(pooled.size)


def test_seeded_occupancy_is_reproducible():
    nc = paper_fig1()
    a1, a2, a3 = nc.to_atoms(seed=5), nc.to_atoms(seed=5), nc.to_atoms(seed=6)
    assert np.array_equal(a1.numbers, a2.numbers)
    assert not np.array_equal(a1.numbers, a3.numbers)


@pytest.mark.parametrize("builder", [paper_fig1, lambda: random_domains(12, n_domains=5, seed=4)])
def test_rp_boundaries_are_half_111_shifts_with_csx_terminations(builder):
    nc = builder()
    at = nc.to_atoms(seed=1)
    half, dom, site = at.get_array("half_index"), at.get_array("domain"), at.get_array("site")
    a_ref_nm = nc.reference_lattice_pm / 1000
    rp = [b for b in nc.boundaries if b.type == "RP"]
    assert rp, "builder should produce RP faults"
    for b in rp:
        axis = int(np.argmax(b.normal))
        plane = round(2 * b.plane_nm / a_ref_nm)  # half units (plane_nm is rounded to 0.1 pm)
        regions = [nc.domains[k].region for k in b.domains]
        # lateral footprint of the interface, one cell in from its edges (half units)
        lo = np.maximum(*(np.array(r.lo_nm) for r in regions)) * 2 / a_ref_nm + 2
        hi = np.minimum(*(np.array(r.hi_nm) for r in regions)) * 2 / a_ref_nm - 2
        lateral = [k for k in range(3) if k != axis]
        inside = np.all((half[:, lateral] > lo[lateral]) & (half[:, lateral] < hi[lateral]), axis=1)
        layers = []
        for k in b.domains:
            sel = inside & (dom == k)
            side = np.sign(np.median(half[sel, axis]) - plane)
            h = half[sel, axis]
            nearest = h[np.argmin(np.abs(h - plane))]
            layer = sel & (half[:, axis] == nearest)
            # CsX termination: the layer facing the plane holds only Cs and X
            assert set(np.unique(site[layer])) == {SITE_CS, SITE_X}, (b, k)
            assert (nearest - plane) * side >= 0 and abs(nearest - plane) <= 1
            layers.append(layer)
        # the two CsX layers are half a cell apart, and their Cs sit at in-plane
        # positions differing by (1/2, 1/2) a: a rock-salt CsX double layer
        cs = [half[layer & (site == SITE_CS)] for layer in layers]
        assert abs(cs[0][0, axis] - cs[1][0, axis]) == 1
        d, k = cKDTree(cs[1][:, lateral]).query(cs[0][:, lateral], k=1)
        delta = cs[1][k][:, lateral] - cs[0][:, lateral]
        assert np.all(np.abs(delta) % 2 == 1)
        # together: the lattices across the plane differ by 1/2 a<111> (odd in all 3)
        pb = [half[(dom == k) & (site == SITE_PB) & inside] for k in b.domains]
        d, k = cKDTree(pb[1]).query(pb[0], k=1)
        near = d == d.min()
        assert np.all(np.abs(pb[1][k[near]] - pb[0][near]) % 2 == 1)
    pos = at.positions
    dmin = cKDTree(pos).query(pos, k=2)[0][:, 1].min()
    assert dmin > 0.7 * nc.reference_lattice_pm / 200  # no overlaps: > 0.7 of a/2 (Angstrom)


def test_coherent_boundary_keeps_lattice_continuous():
    e = 8.0
    doms = [Domain(id=0, br_fraction=0.27, region=Region(lo_nm=(0, 0, 0), hi_nm=(e, 4, e))),
            Domain(id=1, br_fraction=0.52, region=Region(lo_nm=(0, 4, 0), hi_nm=(e, e, e)))]
    nc = NanoCrystal(edges_nm=(e, e, e), nominal_formula="CsPbBr1.2I1.8", domains=doms, seed=0)
    assert [b.type for b in nc.boundaries] == ["coherent"]
    hom = homogeneous(e, seed=0)
    # same registry on both sides: exactly the atom sites of a homogeneous NC
    assert len(nc.to_atoms()) == len(hom.to_atoms())


def test_project_columns_contents():
    nc = homogeneous(6.0, "CsPbI3", seed=2)
    df = nc.project_columns("100")
    n = nc.n_cells[0]
    cs = df[df.site == "Cs"]
    pbx = df[df.site == "PbX"]
    x = df[df.site == "X"]
    assert np.all(cs.n_pb == 0) and np.all(cs.n_cs == n + 1)
    assert np.all(pbx.n_pb == n) and np.all(pbx.n_i == n + 1)
    assert np.all(x.n_cs + x.n_pb == 0) and np.all(x.n_i == n)
    assert np.all(df.shifted_fraction == 0)
    assert df.attrs["image_axes"] == ["y", "z"]


def test_face_on_rp_gives_partial_shifted_fraction():
    nc = paper_fig1()
    df = nc.project_columns("100")
    r2 = df[(df.domain == 1) & (df.site != "X")]
    # R5 (shifted) lies behind R2 from x = 10.5 nm: about 4.5/15 of the thickness
    assert np.median(r2.shifted_fraction) == pytest.approx(4.5 / 15, abs=0.05)
    r1 = df[(df.domain == 0) & (df.site != "X")]
    # R1 spans the whole thickness in the shifted registry: its Cs sites hold Pb + X
    assert np.median(r1.shifted_fraction) == 1.0
    cs_sites = r1[r1.site == "Cs"]
    assert np.median(cs_sites.n_pb) > 0 and np.median(cs_sites.n_cs) == 0


def test_json_round_trip(tmp_path):
    nc = paper_fig1(seed=7)
    path = tmp_path / "nc.json"
    nc.to_json(path)
    raw = json.loads(path.read_text())
    assert set(raw) >= {"edges_nm", "nominal_formula", "seed", "domains", "boundaries"}
    assert set(raw["domains"][0]) >= {"id", "formula", "br_fraction", "shift", "region"}
    assert set(raw["boundaries"][0]) >= {"domains", "normal", "type"}
    back = NanoCrystal.from_json(path)
    assert back == nc


def test_extxyz_and_cif_export(tmp_path):
    from ase.io import read

    at = homogeneous(4.0, seed=1).to_atoms()
    write_atoms(at, tmp_path / "nc.extxyz")
    back = read(tmp_path / "nc.extxyz")
    assert np.array_equal(back.get_array("domain"), at.get_array("domain"))
    assert np.array_equal(back.get_array("site"), at.get_array("site"))
    write_atoms(at, tmp_path / "nc.cif")
    assert (tmp_path / "nc.cif").stat().st_size > 0


def test_build_speed_is_reasonable():
    # the issue asks for a 15 nm NC (~70k atoms) in under 2 s; not a timed test, but
    # the model must be that size
    at = homogeneous(15.0, seed=1).to_atoms()
    assert 60_000 < len(at) < 80_000


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(edge_nm=0), "edge"), (dict(edge_nm=-3), "edge"),
    (dict(edge_nm=5, n_domains=40), "do not fit"), (dict(n_domains=0), "integer >= 1"),
])
def test_bad_geometry(kwargs, fragment):
    with pytest.raises(GeometryError, match=fragment):
        random_domains(**kwargs)


def test_overlapping_or_gappy_domains_rejected():
    with pytest.raises(Exception, match="overlaps"):
        NanoCrystal(edges_nm=(5, 5, 5), nominal_formula="CsPbI3", domains=[
            Domain(id=0, br_fraction=0, region=Region(lo_nm=(0, 0, 0), hi_nm=(5, 5, 5))),
            Domain(id=1, br_fraction=0, region=Region(lo_nm=(0, 0, 0), hi_nm=(2, 5, 5)))])
    with pytest.raises(Exception, match="uncovered"):
        NanoCrystal(edges_nm=(5, 5, 5), nominal_formula="CsPbI3", domains=[
            Domain(id=0, br_fraction=0, region=Region(lo_nm=(0, 0, 0), hi_nm=(2, 5, 5)))])


def test_bad_json(tmp_path):
    with pytest.raises(FileFormatError, match="not found"):
        NanoCrystal.from_json(tmp_path / "missing.json")
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(FileFormatError, match="not valid JSON"):
        NanoCrystal.from_json(p)
    raw = json.loads(paper_fig1().to_json())
    raw["domains"][0]["br_fraction"] = 1.7
    p.write_text(json.dumps(raw))
    with pytest.raises(FileFormatError, match="br_fraction"):
        NanoCrystal.from_json(p)
    raw = json.loads(paper_fig1().to_json())
    raw["boundaries"][0]["type"] = "coherent"
    p.write_text(json.dumps(raw))
    with pytest.raises(FileFormatError, match="do not match"):
        NanoCrystal.from_json(p)

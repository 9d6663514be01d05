"""Validation of a STEM analysis against the truth sidecar of a simulated image.

The simulator's truth sidecar (:func:`nanodomains.stem.truth.load_truth`) holds
the projected truth as a :class:`~nanodomains.records.StemDomains`, the record type
:func:`nanodomains.stem.analyze.analyze_image` returns, so the comparison itself is
:func:`nanodomains.records.compare`, field by field, with the acceptance tolerances
:data:`STEM_TOLERANCES`. This module holds only the geometry that pairing needs: which
analysed domain is which truth region (overlap of the label maps), which truth
regions an image can resolve, and which RP faults are seen edge-on. The tests, the
demo and ``nanodomains stem validate`` all use :func:`compare_to_truth` /
:func:`compare_files`. No analysis module imports this one.

The simulator's truth label map gives each pixel the *majority* model domain along
the beam. Where domains are stacked along the beam (a face-on boundary) the image
shows one region of mixed registry and composition: its majority label may alternate
from column to column (two stacked domains of similar thickness), or stay the same
across a change of the stack (the thick front domain is the majority on both sides).
Comparisons therefore use *projected regions*:

- a projected region is a connected set of pixels with the same stack of model domains
  along the beam (the footprints of the domain boxes in the image plane);
- touching regions that differ by less than 0.03 in projected Br fraction and 0.1 in
  shifted fraction (same side of 1/2) are merged: no image resolves them;
- per region: the projected shifted fraction (cell-weighted mean over its cation
  columns, model registry), the projected Br fraction (Br / (Br + I) of its X columns),
  and the projected lattice constant: a least-squares lattice through the truth column
  positions of its interior columns (exactly the Vegard value for a single domain).

:func:`projected_truth` turns the regions into the truth record that is compared
(``br_fraction`` the projected one; ``shifted_fraction`` in the model's registry
frame, a convention, so it is reported and not judged: ``mixed_fraction`` is).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from nanodomains import materials
from nanodomains.errors import FileFormatError, InputError
from nanodomains.records import (
    Comparison,
    StemBoundary,
    StemComposition,
    StemDomain,
    StemDomains,
    StemRegionMatch,
    StemValidation,
    compare,
    measured,
)
from nanodomains.stem.domains import fill_distance
from nanodomains.stem.truth import decode_array, truth_record
from nanodomains.structure import parse_direction

__all__ = [
    "STEM_TOLERANCES",
    "MIN_REGION_NM2",
    "compare_files",
    "compare_sidecar",
    "compare_to_truth",
    "found_rp",
    "match_regions",
    "merge_indistinct",
    "overlap_pairs",
    "projected_regions",
    "projected_truth",
    "region_table",
    "rp_boundaries",
]

#: regions compared by default: at least this large (issue 4's acceptance criterion)
MIN_REGION_NM2 = 25.0

#: acceptance of the STEM analysis (issue 4): lattice within 0.2 %, Br and mixed fraction within 0.05
STEM_TOLERANCES: dict[str, float | str] = {"domains.lattice_pm": "0.2%", "domains.br_fraction": 0.05,
                                           "domains.mixed_fraction": 0.05}


def _label_map(truth: dict) -> np.ndarray:
    lab = truth["label_map"]
    return decode_array(lab) if isinstance(lab, dict) else np.asarray(lab)


def _footprints(truth: dict) -> tuple[np.ndarray, np.ndarray]:
    """Image-plane boxes (lo, hi), shape (n_domains, 2) each, in the model's projected frame.

    Each domain's box is expanded about its centre by its Vegard lattice constant over the
    reference one, as the atoms are (see ``nanodomains.structure.atoms``).
    """
    nc = truth["nc"]
    _, axes = parse_direction(truth.get("direction", "100"))
    f0 = materials.parse_formula(nc["nominal_formula"])
    a_ref = materials.lattice_constant_pm(f0, nc.get("lattice_convention", "cubic"))
    edges = np.array(nc["edges_nm"])
    a_nm = a_ref / 1000
    n_cells = np.maximum(1, np.round(edges / a_nm))
    lo, hi = [], []
    for d in nc["domains"]:
        r_lo, r_hi = np.array(d["region"]["lo_nm"]), np.array(d["region"]["hi_nm"])
        c = np.clip((r_lo + r_hi) / 2, 0, edges)
        # a cell belongs to the box holding its centre: the faces are at whole cells
        l_ = np.clip(np.ceil(r_lo / a_nm - 0.5), 0, n_cells) * a_nm
        h_ = np.clip(np.ceil(r_hi / a_nm - 0.5), 0, n_cells) * a_nm
        k = materials.lattice_constant_pm(d["br_fraction"], nc.get("lattice_convention", "cubic")) / a_ref
        lo_k = np.where(l_ <= 0, -np.inf, c + (l_ - c) * k)  # faces on the crystal surface: open
        hi_k = np.where(h_ >= n_cells * a_nm - 1e-9, np.inf, c + (h_ - c) * k)
        lo.append(lo_k[list(axes)])
        hi.append(hi_k[list(axes)])
    return np.array(lo), np.array(hi)


def _to_model(truth: dict, x_img, y_img) -> tuple[np.ndarray, np.ndarray]:
    t = truth["transform"]
    cx, cy = t["centre_nm"]
    fx, fy = t["fov_centre_nm"]
    r = np.radians(t["rotation_deg"])
    c, s = np.cos(r), np.sin(r)
    x, y = np.asarray(x_img, float) - fx, np.asarray(y_img, float) - fy
    return c * x + s * y + cx, -s * x + c * y + cy


def _signatures(truth: dict, x_img, y_img) -> np.ndarray:
    """Bit mask of the model domains whose footprint holds each point (the stack along the beam)."""
    lo, hi = _footprints(truth)
    u, v = _to_model(truth, x_img, y_img)
    sig = np.zeros(np.shape(u), dtype=np.int64)
    for k in range(len(lo)):
        inside = (u >= lo[k, 0]) & (u < hi[k, 0]) & (v >= lo[k, 1]) & (v < hi[k, 1])
        sig |= inside.astype(np.int64) << k
    return sig


def projected_regions(truth: dict, min_interior_cells: float = 1.0, min_area_nm2: float = 1.0
                      ) -> tuple[np.ndarray, list[dict]]:
    """Projected-region map (-1 outside) and one dict per region.

    Each crystal pixel gets the key (truth label, stack signature); within a
    signature whose pixels carry two or more labels substantially (each >= 20 % and
    1 nm^2: the majority alternates between columns) the labels are merged. Regions
    are the connected sets of equal key, so boundaries follow the truth label map
    where the label changes and the footprint edge where only the stack changes.
    Pieces below ``min_area_nm2`` (where the footprint edge and the column-based
    label edge disagree by a column) join their nearest region. Region dict:
    ``label`` (region id, the value in the map), ``majority_label``,
    ``model_domains``, ``area_nm2``, ``shifted_fraction`` (model registry),
    ``mixed_fraction``, ``br_fraction`` (projected), ``lattice_pm`` (projected,
    least squares through the truth column positions of its interior columns; NaN
    below six such columns) and ``lattice_vegard_pm`` (thickness-weighted Vegard).
    """
    lab = _label_map(truth)
    merged = _region_map(truth, lab, min_area_nm2)
    out = _region_values(truth, lab, merged, min_interior_cells)
    return merge_indistinct(merged, out, truth["pixel_size_pm"])


def _region_keys(truth: dict, lab: np.ndarray) -> np.ndarray:
    """Key map (0 outside): one key per (effective truth label, stack signature)."""
    from scipy import ndimage
    from skimage.segmentation import expand_labels

    h_nm = truth["pixel_size_pm"] * 1e-3
    ii, jj = np.nonzero(lab >= 0)
    psig = _signatures(truth, jj * h_nm, ii * h_nm)
    plab = lab[ii, jj].astype(np.int64)
    eff = plab.copy()
    for sg in np.unique(psig):
        vals, counts = np.unique(plab[psig == sg], return_counts=True)
        big = vals[(counts >= 0.2 * counts.sum()) & (counts * h_nm**2 >= 1.0)]
        if len(big) > 1:
            eff[(psig == sg) & np.isin(plab, big)] = int(big[0])
    # thin pieces of a label with another signature (footprint edges a column off the
    # column-based label edge) take the signature of the nearest thick piece of that label
    a_px = min(d.lattice_pm.value for d in truth_record(truth).domains) / truth["pixel_size_pm"]
    eff_map = np.full(lab.shape, -1, dtype=np.int64)
    eff_map[ii, jj] = eff
    sig_map = np.zeros(lab.shape, dtype=np.int64)
    sig_map[ii, jj] = psig
    for lv in np.unique(eff):
        in_lab = eff_map == lv
        keep = np.zeros(lab.shape, dtype=np.int64)  # signature + 1 of the thick pieces
        thin_any = False
        for sg in np.unique(psig[eff == lv]):
            comp, n = ndimage.label(in_lab & (sig_map == sg))
            for c in range(1, n + 1):
                piece = comp == c
                if ndimage.distance_transform_edt(piece).max() >= 0.5 * a_px:
                    keep[piece] = sg + 1
                else:
                    thin_any = True
        if thin_any and keep.any():  # thin pieces take the signature of the nearest thick piece
            grown = expand_labels(keep, distance=fill_distance(lab.shape))
            sig_map[in_lab] = grown[in_lab] - 1
    key_map = np.zeros(lab.shape, dtype=np.int64)
    keys = np.unique(np.stack([eff, sig_map[ii, jj]], axis=1), axis=0, return_inverse=True)[1].ravel()
    key_map[ii, jj] = keys + 1
    return key_map


def _region_map(truth: dict, lab: np.ndarray, min_area_nm2: float) -> np.ndarray:
    """Connected regions of equal key (0..n-1, -1 outside); small pieces join their nearest region."""
    from scipy import ndimage
    from skimage.segmentation import expand_labels

    h_nm = truth["pixel_size_pm"] * 1e-3
    inside = lab >= 0
    key_map = _region_keys(truth, lab)
    regions = np.zeros(lab.shape, dtype=np.int64)
    n_reg = 0
    for k in range(1, int(key_map.max()) + 1):
        comp, n = ndimage.label(key_map == k)
        if n:
            regions[comp > 0] = comp[comp > 0] + n_reg
            n_reg += n
    sizes = np.bincount(regions.ravel(), minlength=n_reg + 1)
    small = np.flatnonzero(sizes * h_nm**2 < min_area_nm2)
    regions[np.isin(regions, small[small > 0])] = 0
    regions = np.where(inside, expand_labels(regions, distance=fill_distance(lab.shape)), 0)
    return np.where(inside, regions - 1, -1)


def _region_values(truth: dict, lab: np.ndarray, merged: np.ndarray, min_interior_cells: float) -> list[dict]:
    """Per region: model domains, area, projected shifted and Br fraction, lattice constants."""
    h_nm = truth["pixel_size_pm"] * 1e-3
    doms = truth["nc"]["domains"]
    cols = truth["columns"]
    x = np.asarray(cols["x_nm"], float)
    y = np.asarray(cols["y_nm"], float)
    site = np.asarray(cols["type"])
    s = np.asarray(cols["shifted_fraction"], float)
    ncell = np.asarray(cols["n_cells"], float)
    nbr = np.asarray(cols["n_br"], float)
    ni = np.asarray(cols["n_i"], float)
    csig = _signatures(truth, x, y)
    rot = np.radians(truth.get("transform", {}).get("rotation_deg", 0.0))
    cy = np.clip(np.round(y / h_nm).astype(int), 0, lab.shape[0] - 1)
    cx = np.clip(np.round(x / h_nm).astype(int), 0, lab.shape[1] - 1)
    creg = merged[cy, cx]
    beam, _ = parse_direction(truth.get("direction", "100"))
    out = []
    for rid in np.unique(merged[merged >= 0]):
        pix = merged == rid
        vals, counts = np.unique(lab[pix], return_counts=True)
        cat = (creg == rid) & (site != "X")
        xs = (creg == rid) & (site == "X")
        if cat.sum() < 4 or xs.sum() < 4:
            continue
        sigs, scount = np.unique(csig[creg == rid], return_counts=True)
        sg = int(sigs[np.argmax(scount)])
        members = [k for k in range(len(doms)) if (sg >> k) & 1]
        s_mean = float(np.average(s[cat], weights=ncell[cat]))
        b = float(nbr[xs].sum() / (nbr[xs] + ni[xs]).sum())
        thick = [(np.array(doms[k]["region"]["hi_nm"]) - np.array(doms[k]["region"]["lo_nm"]))[beam] for k in members]
        a_veg = float(np.average([materials.lattice_constant_pm(doms[k]["br_fraction"]) for k in members],
                                 weights=thick))
        a_ls = _lattice_ls(x, y, creg, int(rid), a_veg, rot, min_interior_cells)
        out.append({"label": int(rid), "majority_label": int(vals[np.argmax(counts)]), "model_domains": members,
                    "area_nm2": float(pix.sum() * h_nm**2), "shifted_fraction": s_mean,
                    "mixed_fraction": min(s_mean, 1 - s_mean), "br_fraction": b, "lattice_pm": a_ls,
                    "lattice_vegard_pm": a_veg})
    return out


def _touching(merged: np.ndarray, min_edges: int) -> set[tuple[int, int]]:
    pairs: dict[tuple[int, int], int] = {}
    for axis in (0, 1):
        a = np.take(merged, np.arange(merged.shape[axis] - 1), axis=axis)
        b = np.take(merged, np.arange(1, merged.shape[axis]), axis=axis)
        sel = (a >= 0) & (b >= 0) & (a != b)
        for i, j in zip(np.minimum(a[sel], b[sel]).tolist(), np.maximum(a[sel], b[sel]).tolist()):
            pairs[(i, j)] = pairs.get((i, j), 0) + 1
    return {k for k, v in pairs.items() if v >= min_edges}


def merge_indistinct(merged: np.ndarray, regions: list[dict], pixel_size_pm: float, max_db: float = 0.03,
                     max_ds: float = 0.1) -> tuple[np.ndarray, list[dict]]:
    """Merge touching regions that no image can tell apart.

    Regions on the same side of s = 1/2 whose projected Br fractions differ by less
    than ``max_db`` (a lattice step below 0.2 %, the resolution the segmentation
    claims is 0.15 % at 4 sigma) and shifted fractions by less than ``max_ds`` are
    one region for the comparison (values: area-weighted means).
    """
    regs = {r["label"]: dict(r) for r in regions}
    min_edges = int(np.ceil(1000.0 / pixel_size_pm))  # 1 nm of contact
    while True:
        best = None
        for i, j in sorted(_touching(merged, min_edges)):
            if i not in regs or j not in regs:
                continue
            a, b = regs[i], regs[j]
            if (a["shifted_fraction"] - 0.5) * (b["shifted_fraction"] - 0.5) < 0:
                continue
            if abs(a["br_fraction"] - b["br_fraction"]) < max_db and \
                    abs(a["shifted_fraction"] - b["shifted_fraction"]) < max_ds:
                best = (i, j)
                break
        if best is None:
            return merged, list(regs.values())
        i, j = best
        a, b = regs[i], regs.pop(j)
        w = np.array([a["area_nm2"], b["area_nm2"]])
        for key in ("shifted_fraction", "br_fraction", "lattice_vegard_pm"):
            a[key] = float(np.average([a[key], b[key]], weights=w))
        la = [(v, ww) for v, ww in ((a["lattice_pm"], w[0]), (b["lattice_pm"], w[1])) if np.isfinite(v)]
        a["lattice_pm"] = float(np.average([v for v, _ in la], weights=[ww for _, ww in la])) if la else float("nan")
        a["mixed_fraction"] = min(a["shifted_fraction"], 1 - a["shifted_fraction"])
        a["model_domains"] = sorted(set(a["model_domains"]) | set(b["model_domains"]))
        a["area_nm2"] = float(w.sum())
        a["merged_indistinct"] = True
        merged = np.where(merged == j, i, merged)


def _lattice_ls(x, y, dom, rep, a_pm, rot, margin_cells) -> float:
    """Least-squares lattice constant (mean of both edges, pm) of a region's interior columns."""
    pos = np.stack([y, x], axis=1) * 1000.0  # pm
    sel = dom == rep
    tree = cKDTree(pos)
    nb = tree.query_ball_point(pos[sel], r=margin_cells * a_pm)
    idx = np.flatnonzero(sel)
    lens = np.array([len(v) for v in nb])
    interior = np.array([np.all(dom[v] == rep) for v in nb]) & (lens >= 0.8 * np.median(lens))
    p = pos[idx[interior]]
    if len(p) < 6:
        return float("nan")
    c, s_ = np.cos(rot), np.sin(rot)
    a1 = np.array([s_, c]) * a_pm  # image x axis rotated ccw by rot; components (y, x)
    a2 = np.array([c, -s_]) * a_pm
    basis = np.stack([a1, a2])
    u = 2.0 * p @ np.linalg.inv(basis)  # half-cell coordinates
    origin = np.angle(np.exp(2j * np.pi * u).sum(axis=0)) / (2 * np.pi)
    n = np.round(u - origin)
    design = np.column_stack([np.ones(len(p)), 0.5 * n])
    coef, *_ = np.linalg.lstsq(design, p, rcond=None)
    return float(np.linalg.norm(coef[1:], axis=1).mean())


def match_regions(labels: np.ndarray, truth_map: np.ndarray, regions: list[dict]) -> list[dict]:
    """IoU of each truth region with its best-matching analysed domain (labels > 0).

    Pixels of unresolvable truth regions (fewer than six interior columns: thinner
    than ~2 cells, such as the one-column perimeter ring that only one registry
    fills) count neither for nor against any domain.
    """
    known = {r["label"] for r in regions if np.isfinite(r["lattice_pm"])}
    ignore = (truth_map >= 0) & ~np.isin(truth_map, list(known))
    out = []
    for r in regions:
        t = (truth_map == r["label"]) & ~ignore
        ids = np.unique(labels[t & (labels > 0)])
        best, iou = None, 0.0
        for d in ids:
            m = (labels == d) & ~ignore
            v = (t & m).sum() / (t | m).sum()
            if v > iou:
                best, iou = int(d), float(v)
        out.append({**r, "match": best, "iou": iou})
    return out


def rp_boundaries(truth: dict, merged: np.ndarray, regions: list[dict]) -> set[tuple[int, int]]:
    """Pairs of projected-region labels that touch along an edge and differ in majority registry.

    An RP fault edge-on in the image separates regions whose columns are mostly in
    different registries (shifted fraction on either side of 1/2).
    """
    by = {r["label"]: r for r in regions}
    out = set()
    for axis in (0, 1):
        a = np.take(merged, np.arange(merged.shape[axis] - 1), axis=axis)
        b = np.take(merged, np.arange(1, merged.shape[axis]), axis=axis)
        sel = (a >= 0) & (b >= 0) & (a != b)
        for i, j in set(zip(a[sel].tolist(), b[sel].tolist())):
            if i in by and j in by and (by[i]["shifted_fraction"] - 0.5) * (by[j]["shifted_fraction"] - 0.5) < 0:
                n_edge = int(((a == i) & (b == j) | (a == j) & (b == i)).sum())
                if n_edge * truth["pixel_size_pm"] > 1000.0:  # longer than 1 nm, not a corner
                    out.add(tuple(sorted((int(i), int(j)))))
    return out


def _best_region(labels: np.ndarray, truth_map: np.ndarray) -> dict[int, int]:
    """Analysed domain id -> the truth region (or label) it overlaps most."""
    best = {}
    for d in np.unique(labels[labels > 0]):
        vals, counts = np.unique(truth_map[(labels == d) & (truth_map >= 0)], return_counts=True)
        if len(vals):
            best[int(d)] = int(vals[np.argmax(counts)])
    return best


def found_rp(labels: np.ndarray, truth_map: np.ndarray, boundaries) -> set[tuple[int, int]]:
    """RP boundaries of an analysis as pairs of truth-region labels (each domain -> most-overlapping region).

    ``boundaries``: :class:`~nanodomains.records.StemBoundary` items (or dicts with
    ``domains`` and ``type``).
    """
    best = _best_region(labels, truth_map)
    out = set()
    for b in boundaries:
        kind, pair = (b["type"], b["domains"]) if isinstance(b, dict) else (b.type, b.domains)
        i, j = (best.get(int(v)) for v in pair)
        if kind == "RP" and i is not None and j is not None and i != j:
            out.add(tuple(sorted((i, j))))
    return out


def overlap_pairs(labels: np.ndarray, truth_map: np.ndarray, truth: StemDomains, result: StemDomains,
                  matches: dict[int, int] | None = None) -> dict[str, list[tuple[int, int]]]:
    """``pairs`` for :func:`~nanodomains.records.compare`: domains and boundaries by map overlap.

    Parameters
    ----------
    labels : ndarray of int
        The analysis' label map (domain ids, 0 none).
    truth_map : ndarray of int
        The truth's label map in the same pixels (truth domain ids, -1 outside).
    truth, result : StemDomains
    matches : dict, optional
        Truth domain id -> analysed domain id decided elsewhere (default: the
        analysed domain of highest IoU with each truth domain).

    Returns
    -------
    dict
        ``{"domains": [(truth index, result index)], "boundaries": [...]}``; a boundary
        pairs with the analysed boundary whose two domains overlap most with its two.
    """
    if matches is None:
        matches = {}
        for d in truth.domains:
            t = truth_map == d.id
            best, iou = None, 0.0
            for f in np.unique(labels[t & (labels > 0)]):
                m = labels == f
                v = (t & m).sum() / (t | m).sum()
                if v > iou:
                    best, iou = int(f), float(v)
            if best is not None:
                matches[d.id] = best
    t_index = {d.id: i for i, d in enumerate(truth.domains)}
    r_index = {d.id: j for j, d in enumerate(result.domains)}
    dom_pairs = sorted((t_index[t], r_index[f]) for t, f in matches.items() if t in t_index and f in r_index)
    best = _best_region(labels, truth_map)
    found = {}
    for j, b in enumerate(result.boundaries):
        key = tuple(sorted(best.get(int(v), -1) for v in b.domains))
        found.setdefault(key, j)
    b_pairs = [(i, found[tuple(sorted(b.domains))]) for i, b in enumerate(truth.boundaries)
               if tuple(sorted(b.domains)) in found]
    return {"domains": dom_pairs, "boundaries": b_pairs}


def projected_truth(truth: dict, regions: list[dict], rp_pairs=()) -> StemDomains:
    """The projected truth regions as the record an analysis is compared with.

    One :class:`~nanodomains.records.StemDomain` per region (``id`` its label,
    ``br_fraction`` and ``projected_br_fraction`` its projected Br fraction,
    ``lattice_pm`` its least-squares lattice, ``shifted_fraction`` model frame,
    standard errors 0) and one RP boundary per pair in ``rp_pairs``; the lattice and
    frame of the sidecar's record.
    """
    rec = truth_record(truth)
    exact = lambda v: measured(v, 0.0)  # noqa: E731
    comp = StemComposition(model="projected truth region: Br / (Br + I) of its X columns")
    doms = tuple(StemDomain(
        id=r["label"], name=f"T{r['label']}", area_nm2=r["area_nm2"], lattice_pm=exact(r["lattice_pm"]),
        br_fraction=exact(r["br_fraction"]), projected_br_fraction=exact(r["br_fraction"]),
        shifted_fraction=exact(r["shifted_fraction"]), mixed_fraction=exact(r["mixed_fraction"]),
        registry=1 if r["shifted_fraction"] < 0.5 else -1, model_domains=tuple(r["model_domains"]),
        composition=comp) for r in regions)
    bounds = tuple(StemBoundary(domains=tuple(p), type="RP") for p in sorted(rp_pairs))
    return rec.replace(domains=doms, boundaries=bounds, source=rec.source,
                       settings={**rec.settings, "projected_regions": "nanodomains.stem.validation"})


def compare_to_truth(labels: np.ndarray, result: StemDomains, truth: dict, min_area_nm2: float = MIN_REGION_NM2,
                     tolerances: dict[str, Any] | None = None) -> StemValidation:
    """An analysis beside the projected truth of its simulated image, region by region.

    Parameters
    ----------
    labels : ndarray of int, shape (ny, nx)
        Domain label map of the analysis (domain ids), on the simulated image's pixel
        grid.
    result : StemDomains
        The analysis (``AnalysisResult.record``, or ``domains.json``).
    truth : dict
        Truth sidecar of the simulated image (``load_truth``, or ``SimulatedImage.truth``).
    min_area_nm2 : float
        Regions at least this large with a resolvable lattice (six interior
        columns) are compared; smaller ones are listed with ``compared`` False.
    tolerances : dict, optional
        Added to / overriding :data:`STEM_TOLERANCES`.

    Returns
    -------
    StemValidation
        ``comparison``: :func:`~nanodomains.records.compare` of
        :func:`projected_truth` (compared regions, the edge-on RP faults between them)
        and ``result``, domains paired by IoU (:func:`match_regions`); ``regions``
        (IoU per region), ``rp_truth``, ``rp_found``, ``rp_missed`` (pairs of region
        labels), ``n_domains_found``, ``n_regions_compared``.
    """
    lab = np.asarray(labels)
    tm, regions = projected_regions(truth)
    if lab.shape != tm.shape:
        raise InputError(f"label map {lab.shape} and truth label map {tm.shape} differ: "
                         "not the analysis of this simulated image")
    matches = match_regions(lab, tm, regions)
    ids = {d.id for d in result.domains}
    rows, compared = [], []
    for m in matches:
        ok = bool(m["area_nm2"] >= min_area_nm2 and np.isfinite(m["lattice_pm"]))
        match = m["match"] if m["match"] in ids else None
        rows.append(StemRegionMatch(region=m["label"], model_domains=tuple(m["model_domains"]),
                                    majority_label=m["majority_label"], area_nm2=m["area_nm2"], match=match,
                                    name=next((d.name for d in result.domains if d.id == match), None),
                                    iou=m["iou"], compared=ok, merged_indistinct=m.get("merged_indistinct", False)))
        if ok:
            compared.append(m)
    labels_c = {m["label"] for m in compared}
    resolved = [r for r in regions if np.isfinite(r["lattice_pm"])]
    rp_truth = {p for p in rp_boundaries(truth, tm, resolved) if set(p) <= labels_c}
    rp_found = found_rp(lab, tm, result.boundaries)
    truth_rec = projected_truth(truth, compared, rp_truth)
    pairs = overlap_pairs(lab, tm, truth_rec, result,
                          matches={m["label"]: m["match"] for m in compared if m["match"] is not None})
    cmp = compare(truth_rec, result, tolerances={**STEM_TOLERANCES, **(tolerances or {})}, pairs=pairs)
    return StemValidation(comparison=cmp, regions=tuple(rows), rp_truth=tuple(sorted(rp_truth)),
                          rp_found=tuple(sorted(p for p in rp_found if set(p) <= labels_c)),
                          rp_missed=tuple(sorted(rp_truth - rp_found)), n_domains_found=len(result.domains),
                          n_regions_compared=len(compared), min_area_nm2=min_area_nm2, source=result.source,
                          settings={"tolerances": {k: str(v) for k, v in {**STEM_TOLERANCES,
                                                                          **(tolerances or {})}.items()}})


def compare_sidecar(labels: np.ndarray, result: StemDomains, truth: dict,
                    tolerances: dict[str, Any] | None = None) -> Comparison:
    """The sidecar's own truth record against an analysis, model domain by model domain.

    :func:`~nanodomains.records.compare` of ``truth["record"]`` (its visible domains)
    and ``result``, paired by the overlap of the label maps (:func:`overlap_pairs`),
    with :data:`STEM_TOLERANCES`. Exact where no domains are stacked along the beam;
    otherwise use :func:`compare_to_truth` (projected regions).

    Examples
    --------
    A record compared with itself (labels equal to the truth map) passes:

    >>> import numpy as np
    >>> from nanodomains.records import StemDomain, StemDomains, measured
    >>> rec = StemDomains(pixel_size_pm=20.0, shape_px=(4, 4), origin="truth", domains=(
    ...     StemDomain(id=0, lattice_pm=measured(612.3, 0), br_fraction=measured(0.4, 0)),))
    >>> lab = np.zeros((4, 4), int)
    >>> found = rec.replace(origin="analysis", domains=(rec.domains[0].model_copy(update={"id": 1}),))
    >>> compare_sidecar(lab + 1, found, {"record": rec, "label_map": lab}).ok
    True
    """
    rec = truth_record(truth)
    rec = rec.replace(domains=tuple(d for d in rec.domains if d.visible))
    pairs = overlap_pairs(np.asarray(labels), _label_map(truth), rec, result)
    return compare(rec, result, tolerances={**STEM_TOLERANCES, **(tolerances or {})}, pairs=pairs)


def region_table(validation: StemValidation, fields=("lattice_pm", "br_fraction", "mixed_fraction",
                                                     "shifted_fraction")) -> list[dict[str, Any]]:
    """One row per compared region from the comparison rows (no renames).

    Each ``field`` gives ``field`` (found value), ``field_stderr``, ``field_truth``
    and ``field_ok`` from the row ``domains[<region>].<field>``; plus the region's
    ``region``, ``model_domains``, ``majority_label``, ``found_as``, ``iou``,
    ``area_nm2``.
    """
    by_path = {r.path: r for r in validation.comparison.rows}
    out = []
    for reg in validation.regions:
        if not reg.compared:
            continue
        row: dict[str, Any] = {"region": reg.region, "model_domains": list(reg.model_domains),
                               "majority_label": reg.majority_label, "found_as": reg.name, "iou": reg.iou,
                               "area_nm2": reg.area_nm2}
        for f in fields:
            r = by_path.get(f"domains[{reg.region}].{f}")
            row.update({f: r.value if r else None, f"{f}_stderr": r.stderr if r else None,
                        f"{f}_truth": r.truth if r else None, f"{f}_ok": r.ok if r else None})
        out.append(row)
    return out


def compare_files(analysis_dir: str | Path, truth_path: str | Path,
                  min_area_nm2: float = MIN_REGION_NM2) -> StemValidation:
    """:func:`compare_to_truth` on a ``stem analyze`` output folder and a truth sidecar."""
    import xarray as xr

    from nanodomains.stem.truth import load_truth

    d = Path(analysis_dir)
    for name in ("domains.json", "gpa.nc"):
        if not (d / name).is_file():
            raise FileFormatError(f"{d / name}: not found (expected a `nanodomains stem analyze` output folder)")
    res = StemDomains.from_json(d / "domains.json")
    try:
        with xr.open_dataset(d / "gpa.nc", engine="h5netcdf") as ds:
            labels = ds["domain"].values.astype(np.int64)
    except (OSError, KeyError, ValueError) as exc:
        raise FileFormatError(f"{d / 'gpa.nc'}: no readable 'domain' label map ({exc})") from exc
    return compare_to_truth(labels, res, load_truth(truth_path), min_area_nm2)


# ------------------------------------------------------------ multislice validation images (issue 14)

def registry_image(ds, thickness_index: int, *, field_cells: tuple[int, int] = (12, 12),
                   dose_e_per_a2: float | None = 1e5, seed: int = 0):
    """A calibrated, noisy image from a multislice validation image
    (:func:`nanodomains.stem.table_build.registry_validation_image`): the frozen-phonon mean of
    one thickness, tiled periodically over ``field_cells`` unit cells (the supercell is
    periodic), with Poisson counting noise at ``dose_e_per_a2`` (None: noiseless), in
    fractions of the incident beam."""
    from nanodomains.errors import InputError
    from nanodomains.seeds import rng as make_rng
    from nanodomains.stem.io import image_from_array

    img = np.asarray(ds["image"].isel(thickness_cells=thickness_index).mean("config").values, float)
    tx, ty = (int(v) for v in ds.attrs["tile"])
    reps = (max(1, field_cells[1] // ty), max(1, field_cells[0] // tx))
    field = np.tile(img, reps)
    px_pm = float(ds.attrs["pixel_size_pm"])
    if dose_e_per_a2 is not None:
        if not dose_e_per_a2 > 0:
            raise InputError(f"dose_e_per_a2 must be > 0, got {dose_e_per_a2!r}")
        per_px = dose_e_per_a2 * (px_pm / 100.0) ** 2
        field = make_rng(seed).poisson(field * per_px) / per_px
    keep = ("beam_energy_kev", "convergence_semiangle_mrad", "defocus_nm", "cs_um", "detector_inner_mrad",
            "detector_outer_mrad")
    attrs = {k: ds.attrs[k] for k in keep if k in ds.attrs}
    return image_from_array(field, px_pm, intensity_unit="fraction of the incident beam", source_fwhm_pm=0.0,
                            method="abTEM multislice validation image", dose_e_per_a2=dose_e_per_a2, **attrs)


def registry_image_phonon_rel_err(ds, thickness_index: int) -> np.ndarray:
    """Relative frozen-phonon standard error of the image's (bright, dim, X) class means: the
    spread over configurations of the supercell's Voronoi site integrals / sqrt(configs).
    A real image is a thermal average; a simulated one carries this error."""
    from nanodomains.stem.tables import voronoi_site_integrals

    img = np.asarray(ds["image"].isel(thickness_cells=thickness_index).values, float)  # (conf, y, x)
    tx, ty = (int(v) for v in ds.attrs["tile"])
    m = img.shape[-1] // tx
    a_a = float(ds.attrs["lattice_pm"]) / 100.0
    cells = [voronoi_site_integrals(img[:, j * m:(j + 1) * m, i * m:(i + 1) * m].swapaxes(-1, -2), a_a)
             for i in range(tx) for j in range(ty)]
    per_conf = np.mean(cells, axis=0)  # (conf, 3): Cs-site, PbX-site, X
    mean = per_conf.mean(axis=0)
    rel = per_conf.std(axis=0, ddof=1) / np.sqrt(per_conf.shape[0]) / mean
    bright_first = [1, 0, 2] if mean[1] >= mean[0] else [0, 1, 2]
    return rel[bright_first]


def registry_class_means(image: np.ndarray, cell_px: int, x_cells=None, period_x: int = 1
                         ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(bright, dim, X) mean Voronoi sums and their standard errors of a periodic image whose
    Cs-site columns sit at the pixel corners (i M, j M) of cells of M = ``cell_px`` pixels (the
    layout of the validation images). ``x_cells``: use only the cells whose x index modulo
    ``period_x`` is listed (one domain of a supercell with a lateral boundary). Returns means,
    standard errors (column scatter / sqrt(n)) and the per-column values of each class."""
    m = int(cell_px)
    h = m // 4
    img = np.roll(np.asarray(image, float), (h, h), axis=(0, 1))  # Cs-site block -> [0, M/2)^2 of each cell
    cy, cx = img.shape[0] // m, img.shape[1] // m
    cells = img[: cy * m, : cx * m].reshape(cy, m, cx, m)
    if x_cells is not None:
        cells = cells[:, :, np.isin(np.arange(cx) % int(period_x), list(x_cells)), :]
    half = m // 2
    cs = cells[:, :half, :, :half].sum(axis=(1, 3)).ravel()
    pbx = cells[:, half:, :, half:].sum(axis=(1, 3)).ravel()
    x = np.concatenate([cells[:, :half, :, half:].sum(axis=(1, 3)).ravel(),
                        cells[:, half:, :, :half].sum(axis=(1, 3)).ravel()])
    groups = [pbx, cs, x] if pbx.mean() >= cs.mean() else [cs, pbx, x]
    means = np.array([g.mean() for g in groups])
    errs = np.array([g.std(ddof=1) / np.sqrt(g.size) for g in groups])
    return means, errs, groups


def registry_case(ds, thickness_index: int, model, *, dose_e_per_a2: float | None = 1e5, seed: int = 0,
                  absolute: bool = True, thickness_known: bool = False, scale_rel_err: float = 0.0,
                  x_cells=None) -> dict:
    """Invert one validation image at one thickness and set the result beside its truth.

    The class means come from the tiled, noisy image (:func:`registry_image`) integrated over
    the a/2 Voronoi squares of the known lattice (``x_cells``: one domain's cells of a
    supercell with a lateral boundary); the image's own frozen-phonon error
    (:func:`registry_image_phonon_rel_err`) enters the inversion (a real image has none).
    """
    from nanodomains.stem.zcontrast import invert_domain

    da = registry_image(ds, thickness_index, dose_e_per_a2=dose_e_per_a2, seed=seed)
    px_a = float(ds.attrs["pixel_size_pm"]) / 100.0
    m = int(round(float(ds.attrs["lattice_pm"]) / float(ds.attrs["pixel_size_pm"])))
    tx = int(ds.attrs["tile"][0])
    means, errs, _ = registry_class_means(da.values, m, x_cells, tx)
    area = px_a**2
    n = int(ds["thickness_cells"].values[thickness_index])
    t_true = float(ds["thickness_nm"].values[thickness_index])
    fit = invert_domain(model, means * area, errs * area, absolute=absolute, scale_rel_err=scale_rel_err,
                        thickness_nm=t_true if thickness_known else None,
                        thickness_err_nm=0.05 * t_true if thickness_known else None,
                        extra_rel_err=registry_image_phonon_rel_err(ds, thickness_index))
    s_grid = np.asarray(ds["shifted_fraction"].values[thickness_index])  # (cell_x, cell_y)
    s_cells = (s_grid if x_cells is None else s_grid[list(x_cells)]).ravel()
    return {"name": ds.attrs.get("name", ""), "b_true": float(ds["br_fraction"].values[thickness_index]),
            "s_true": float(s_cells.mean()), "n_true": n, "t_true_nm": t_true, "fit": fit}

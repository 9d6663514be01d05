"""Nanocrystal models: cuboid NCs made of box-shaped nanodomains.

Geometry
--------
An NC is a cuboid with edges ``edges_nm`` (x, y, z), origin at one corner. Its
*reference lattice* has the pseudo-cubic lattice constant of the nominal composition
(Vegard, :func:`nanodomains.materials.lattice_constant_pm`); the NC holds
``n_i = round(edge_i / a_ref)`` reference cells along each axis. Every domain is an
axis-aligned box (a convex region bounded by {100} planes) given in nm; a cell belongs
to the domain whose box contains the cell centre, and the boxes must tile the NC.

Each domain carries its Br fraction f and a lattice registry (``shift``): either
``[0, 0, 0]`` or ``[1/2, 1/2, 1/2]`` (in units of a), the 1/2 a<111> translation of a
Ruddlesden-Popper (RP) fault. Modulo lattice translations every 1/2 a<111> vector is the
same body-centring, so two registries exist. A boundary between domains of different
registry is an RP fault (rock-salt CsX double layer, CsX-terminated on both sides);
one between domains of the same registry is ``coherent`` (composition change only).

The JSON schema (``nc.json``) is the exchange format for every tool::

    {"edges_nm": [x, y, z], "nominal_formula": "CsPbBr1.2I1.8", "seed": 1,
     "domains": [{"id", "formula", "br_fraction", "shift", "region"}],
     "boundaries": [{"domains": [i, j], "normal", "type", "plane_nm", "area_nm2"}]}

``region`` is ``{"lo_nm": [x, y, z], "hi_nm": [x, y, z]}``. Boundaries are derived from
the geometry; on loading, stored boundaries are checked against it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nanodomains import materials
from nanodomains.errors import FileFormatError, GeometryError, InputError
from nanodomains.files import write_text_atomic
from nanodomains.seeds import rng as make_rng

SHIFT_NONE = (0.0, 0.0, 0.0)
SHIFT_RP = (0.5, 0.5, 0.5)
AXES = "xyz"


class Region(BaseModel):
    """Axis-aligned box in the NC frame, nm (reference lattice coordinates)."""

    model_config = ConfigDict(frozen=True)
    lo_nm: tuple[float, float, float]
    hi_nm: tuple[float, float, float]

    @model_validator(mode="after")
    def _ordered(self) -> "Region":
        lo, hi = np.array(self.lo_nm), np.array(self.hi_nm)
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ValueError("region bounds must be finite")
        if np.any(hi <= lo):
            raise ValueError(f"region hi_nm {self.hi_nm} must exceed lo_nm {self.lo_nm} on every axis")
        return self

    @property
    def size_nm(self) -> np.ndarray:
        return np.array(self.hi_nm) - np.array(self.lo_nm)

    @property
    def center_nm(self) -> np.ndarray:
        return (np.array(self.hi_nm) + np.array(self.lo_nm)) / 2


class Domain(BaseModel):
    """One nanodomain: a box of uniform Br fraction and lattice registry."""

    id: int = Field(ge=0)
    br_fraction: float = Field(ge=0.0, le=1.0)
    shift: tuple[float, float, float] = SHIFT_NONE
    region: Region
    formula: str = ""

    @field_validator("shift")
    @classmethod
    def _registry(cls, v):
        s = np.mod(np.asarray(v, dtype=float), 1.0)
        if np.allclose(s, 0.0):
            return SHIFT_NONE
        if np.allclose(s, 0.5):
            return SHIFT_RP
        raise ValueError(f"shift must be [0,0,0] or a 1/2 a<111> vector, got {list(v)}")

    @model_validator(mode="after")
    def _formula(self) -> "Domain":
        expected = materials.format_formula(self.br_fraction)
        if not self.formula:
            object.__setattr__(self, "formula", expected)
        elif abs(materials.parse_formula(self.formula) - self.br_fraction) > 0.004:
            raise ValueError(f"domain {self.id}: formula {self.formula} disagrees with "
                             f"br_fraction {self.br_fraction}")
        return self

    @property
    def is_shifted(self) -> bool:
        return self.shift == SHIFT_RP


class Boundary(BaseModel):
    """Interface between two domains across one {100} plane."""

    domains: tuple[int, int]
    normal: tuple[int, int, int]
    type: Literal["RP", "coherent"]
    plane_nm: float = 0.0
    area_nm2: float = 0.0

    def edge_on(self, beam_axis: int) -> bool:
        """True if the plane contains the beam direction (seen as a line in projection)."""
        return self.normal[beam_axis] == 0


class NanoCrystal(BaseModel):
    """A cuboid nanocrystal made of box-shaped nanodomains (see module docstring)."""

    edges_nm: tuple[float, float, float]
    nominal_formula: str
    seed: int | None = None
    domains: list[Domain]
    boundaries: list[Boundary] = Field(default_factory=list)
    lattice_convention: Literal["cubic", "pseudocubic"] = "cubic"

    @field_validator("edges_nm")
    @classmethod
    def _positive_edges(cls, v):
        if not all(np.isfinite(e) and e > 0 for e in v):
            raise ValueError(f"edges_nm must be finite and > 0, got {list(v)}")
        if any(e > 200 for e in v):  # as _check_edges: the atoms grow as edge^3
            raise ValueError(f"edges_nm above 200 nm are not nanocrystals, got {list(v)}")
        return v

    @field_validator("nominal_formula")
    @classmethod
    def _valid_formula(cls, v):
        materials.parse_formula(v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "NanoCrystal":
        if not self.domains:
            raise ValueError("an NC needs at least one domain")
        ids = [d.id for d in self.domains]
        if sorted(ids) != list(range(len(ids))):
            raise ValueError(f"domain ids must be 0..{len(ids) - 1}, got {ids}")
        self.domains.sort(key=lambda d: d.id)
        grid = _cell_map(self)
        derived = _derive_boundaries(self, grid)
        if self.boundaries:
            stored = {(tuple(sorted(b.domains)), b.normal, b.type) for b in self.boundaries}
            found = {(tuple(sorted(b.domains)), b.normal, b.type) for b in derived}
            if stored != found:
                raise ValueError(f"stored boundaries {sorted(stored)} do not match the geometry "
                                 f"{sorted(found)}")
        self.boundaries = derived
        return self

    # ---- derived quantities -------------------------------------------------

    @property
    def nominal_br_fraction(self) -> float:
        return materials.parse_formula(self.nominal_formula)

    @property
    def reference_lattice_pm(self) -> float:
        return float(materials.lattice_constant_pm(self.nominal_br_fraction, self.lattice_convention))

    @property
    def n_cells(self) -> tuple[int, int, int]:
        a_nm = self.reference_lattice_pm / 1000
        return tuple(max(1, int(round(e / a_nm))) for e in self.edges_nm)

    def domain_lattice_pm(self, domain_id: int) -> float:
        return float(materials.lattice_constant_pm(self.domains[domain_id].br_fraction,
                                                   self.lattice_convention))

    def cell_map(self) -> np.ndarray:
        """Domain id of every reference cell, int array of shape ``n_cells``."""
        return _cell_map(self)

    def domain_volumes_nm3(self) -> np.ndarray:
        counts = np.bincount(self.cell_map().ravel(), minlength=len(self.domains))
        return counts * (self.reference_lattice_pm / 1000) ** 3

    def describe(self) -> dict:
        """Per-domain and per-boundary table rows (plain dicts) for printing or JSON."""
        vols = self.domain_volumes_nm3()
        rows = []
        for d in self.domains:
            rows.append({
                "id": d.id, "formula": d.formula, "br_fraction": d.br_fraction,
                "shift": "1/2<111>" if d.is_shifted else "0",
                "volume_nm3": float(vols[d.id]),
                "lattice_pm": self.domain_lattice_pm(d.id),
                "bandgap_4k_ev": float(materials.bandgap_ev(d.br_fraction, "4K")),
            })
        bounds = [{"domains": list(b.domains), "normal": AXES[int(np.argmax(np.abs(b.normal)))],
                   "type": b.type, "plane_nm": b.plane_nm, "area_nm2": b.area_nm2}
                  for b in self.boundaries]
        return {"edges_nm": list(self.edges_nm), "nominal_formula": self.nominal_formula,
                "reference_lattice_pm": self.reference_lattice_pm,
                "n_cells": list(self.n_cells), "domains": rows, "boundaries": bounds}

    # ---- bridges to other layers -------------------------------------------

    def to_atoms(self, seed: int | np.random.Generator | None = None):
        """ASE ``Atoms`` of the NC (see :func:`nanodomains.structure.atoms.build_atoms`)."""
        from nanodomains.structure.atoms import build_atoms

        return build_atoms(self, seed=self.seed if seed is None else seed)

    def project_columns(self, direction: str = "100", seed=None, atoms=None):
        """Atom columns along a zone axis (see :func:`nanodomains.structure.columns.project_columns`)."""
        from nanodomains.structure.columns import project_columns

        return project_columns(self, direction=direction, seed=seed, atoms=atoms)

    # ---- serialisation ------------------------------------------------------

    def to_json(self, path: str | Path | None = None) -> str:
        """The ``nc.json`` text; written atomically to ``path`` when given."""
        text = self.model_dump_json(indent=2)
        if path is not None:
            write_text_atomic(path, text)
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> "NanoCrystal":
        """Load from a path or a JSON string; a clear error names the file and field."""
        label = "<string>"
        if isinstance(source, Path) or (isinstance(source, str) and not source.lstrip().startswith("{")):
            path = Path(source)
            label = str(path)
            if not path.is_file():
                raise FileFormatError(f"{path}: NC model file not found")
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise FileFormatError(f"{path}: not UTF-8 text, expected an NC model (JSON)") from exc
        else:
            text = source
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FileFormatError(f"{label}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
        except RecursionError as exc:
            raise FileFormatError(f"{label}: JSON nested too deeply for an NC model") from exc
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise FileFormatError(f"{label}: invalid NC model at '{where}': {first['msg']}") from exc


# ---- geometry helpers -------------------------------------------------------

def _cell_map(nc: NanoCrystal) -> np.ndarray:
    """Assign each reference cell (by its centre) to the domain box containing it."""
    a_nm = nc.reference_lattice_pm / 1000
    n = nc.n_cells
    centres = [(np.arange(k) + 0.5) * a_nm for k in n]
    grid = np.full(n, -1, dtype=np.int32)
    for d in nc.domains:
        lo, hi = np.array(d.region.lo_nm), np.array(d.region.hi_nm)
        masks = [(c >= lo[i]) & (c < hi[i]) for i, c in enumerate(centres)]
        sel = np.ix_(*masks)
        if np.any(grid[sel] >= 0):
            other = int(grid[sel][grid[sel] >= 0][0])
            raise GeometryError(f"domain {d.id} overlaps domain {other}")
        if not all(m.any() for m in masks):
            raise GeometryError(
                f"domain {d.id} ({d.region.lo_nm}..{d.region.hi_nm} nm) holds no reference cell "
                f"(cell {a_nm:.3f} nm): too many or too small domains for this NC")
        grid[sel] = d.id
    if np.any(grid < 0):
        raise GeometryError(f"domains leave {int(np.sum(grid < 0))} of {grid.size} cells of the NC "
                            "uncovered: domain boxes must tile the NC")
    return grid


def _derive_boundaries(nc: NanoCrystal, grid: np.ndarray) -> list[Boundary]:
    """Faces between cells of different domains, grouped by domain pair and plane."""
    a_nm = nc.reference_lattice_pm / 1000
    found: dict[tuple, int] = {}
    for axis in range(3):
        lo = np.take(grid, np.arange(grid.shape[axis] - 1), axis=axis)
        hi = np.take(grid, np.arange(1, grid.shape[axis]), axis=axis)
        diff = lo != hi
        if not diff.any():
            continue
        idx = np.nonzero(diff)
        planes = idx[axis] + 1
        pairs = np.stack([lo[diff], hi[diff]], axis=1)
        keys, counts = np.unique(np.column_stack([np.sort(pairs, axis=1), planes]), axis=0,
                                 return_counts=True)
        for (i, j, plane), c in zip(keys, counts):
            found[(int(i), int(j), axis, int(plane))] = int(c)
    out = []
    for (i, j, axis, plane), count in sorted(found.items()):
        normal = [0, 0, 0]
        normal[axis] = 1
        kind = "RP" if nc.domains[i].shift != nc.domains[j].shift else "coherent"
        out.append(Boundary(domains=(i, j), normal=tuple(normal), type=kind,
                            plane_nm=round(plane * a_nm, 4), area_nm2=round(count * a_nm**2, 4)))
    return out


# ---- constructors -------------------------------------------------------------

def _check_edges(edge_nm) -> tuple[float, float, float]:
    edges = np.broadcast_to(np.asarray(edge_nm, dtype=float), (3,))
    if not np.all(np.isfinite(edges)) or np.any(edges <= 0):
        raise GeometryError(f"edge lengths must be finite and > 0 nm, got {edge_nm!r}")
    if np.any(edges > 200):
        raise GeometryError(f"edge lengths above 200 nm are not nanocrystals, got {edge_nm!r}")
    return tuple(float(e) for e in edges)


def homogeneous(edge_nm=15.0, formula: str = "CsPbBr1.2I1.8", seed: int | None = None) -> NanoCrystal:
    """A single-domain NC of the nominal composition."""
    edges = _check_edges(edge_nm)
    f = materials.parse_formula(formula)
    dom = Domain(id=0, br_fraction=round(f, 6), region=Region(lo_nm=(0, 0, 0), hi_nm=edges))
    return NanoCrystal(edges_nm=edges, nominal_formula=formula, seed=seed, domains=[dom])


def random_domains(edge_nm=15.0, formula: str = "CsPbBr1.2I1.8", n_domains: int = 3,
                   seed: int = 0, composition_sd: float = 0.1, min_cells: int = 4) -> NanoCrystal:
    """An NC cut into ``n_domains`` boxes by random guillotine cuts on {100} planes.

    Compositions are drawn around the nominal Br fraction, alternating Br-rich and
    I-rich (normal with ``composition_sd``, clipped to [0.02, 0.98]); registries are
    assigned by a breadth-first 2-colouring of the domain adjacency so neighbours are
    separated by RP faults wherever the adjacency graph allows. Each domain keeps at
    least ``min_cells`` reference cells along every cut axis.
    """
    edges = _check_edges(edge_nm)
    f0 = materials.parse_formula(formula)
    if int(n_domains) != n_domains or n_domains < 1:
        raise GeometryError(f"number of domains must be an integer >= 1, got {n_domains!r}")
    if not (0 <= composition_sd <= 0.5):
        raise InputError(f"composition_sd must lie in [0, 0.5], got {composition_sd}")
    rng = make_rng(seed)
    a_nm = materials.lattice_constant_pm(f0) / 1000
    n = [max(1, int(round(e / a_nm))) for e in edges]
    boxes = [(np.zeros(3, int), np.array(n))]  # in cells
    while len(boxes) < n_domains:
        candidates = [(b, ax) for b, (lo, hi) in enumerate(boxes) for ax in range(3)
                      if hi[ax] - lo[ax] >= 2 * min_cells]
        if not candidates:
            raise GeometryError(
                f"{n_domains} domains do not fit in a {edges} nm NC with at least {min_cells} "
                f"cells ({min_cells * a_nm:.1f} nm) per domain along each cut")
        weights = np.array([boxes[b][1][ax] - boxes[b][0][ax] for b, ax in candidates], float)
        b, ax = candidates[rng.choice(len(candidates), p=weights / weights.sum())]
        lo, hi = boxes.pop(b)
        cut = int(rng.integers(lo[ax] + min_cells, hi[ax] - min_cells + 1))
        hi1, lo2 = hi.copy(), lo.copy()
        hi1[ax], lo2[ax] = cut, cut
        boxes += [(lo, hi1), (lo2, hi)]
    signs = np.where(np.arange(n_domains) % 2 == 0, 1.0, -1.0)
    fracs = np.clip(f0 + signs * np.abs(rng.normal(0, composition_sd, n_domains)), 0.02, 0.98)
    shifts = _two_colour(boxes)
    domains = []
    for i, ((lo, hi), f, s) in enumerate(zip(boxes, fracs, shifts)):
        lo_nm = tuple(float(v) for v in np.where(lo == 0, 0.0, lo * a_nm))
        hi_nm = tuple(float(v) for v in np.where(hi == np.array(n), np.array(edges), hi * a_nm))
        domains.append(Domain(id=i, br_fraction=round(float(f), 4), shift=SHIFT_RP if s else SHIFT_NONE,
                              region=Region(lo_nm=lo_nm, hi_nm=hi_nm)))
    return NanoCrystal(edges_nm=edges, nominal_formula=formula, seed=seed, domains=domains)


def _two_colour(boxes) -> list[int]:
    """Registries (0/1) that make as much boundary area as possible RP (max-cut).

    Exhaustive over 2^(m-1) colourings for m <= 14 boxes (cell units), else greedy BFS.
    """
    m = len(boxes)
    area = np.zeros((m, m))
    for i in range(m):
        for j in range(i + 1, m):
            (l1, h1), (l2, h2) = boxes[i], boxes[j]
            touch = (h1 == l2) | (h2 == l1)
            overlap = np.minimum(h1, h2) - np.maximum(l1, l2)
            if np.sum(touch) == 1 and np.sum(overlap > 0) == 2:
                area[i, j] = area[j, i] = np.prod(overlap[overlap > 0])
    if m <= 14:
        codes = np.arange(2 ** (m - 1))
        colours = (codes[:, None] >> np.arange(m)) & 1  # box m-1 always colour 0
        cut = np.einsum("ci,ij,cj->c", colours, area, 1 - colours)
        return [int(c) for c in colours[int(np.argmax(cut))]]
    colour = [-1] * m
    for start in range(m):
        if colour[start] >= 0:
            continue
        colour[start] = 0
        queue = [start]
        while queue:
            i = queue.pop(0)
            for j in np.nonzero(area[i])[0]:
                if colour[j] < 0:
                    colour[j] = 1 - colour[i]
                    queue.append(int(j))
    return colour

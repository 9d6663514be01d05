"""Atom columns of an NC model seen along a <100> zone axis.

For [100]-projected CsPbX3 (see shared/PHYSICS.md, Z-contrast section) every unit cell
projects onto four columns: Cs at (0, 0), Pb+X at (1/2, 1/2), and X only at (1/2, 0)
and (0, 1/2). In half-cell units H of the reference lattice a column's site follows
from the parity of its two in-plane coordinates: (even, even) "Cs", (odd, odd) "PbX",
mixed "X". Across an RP fault the 1/2 a<111> translation swaps the contents of Cs and
PbX sites and maps X columns onto X columns.

Shifted fraction s of a column: the fraction of its unit cells (along the beam) that
lie in shifted (1/2 a<111>) domains. Each cell puts exactly one cation into a Cs/PbX
column (Cs in one registry, Pb in the other) and one X into an X column, so cells are
counted by cations or halides respectively.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nanodomains.errors import InputError
from nanodomains.structure.atoms import SITE_CS, SITE_PB, SITE_X

_DIRECTIONS = {"100": (0, (1, 2)), "010": (1, (2, 0)), "001": (2, (0, 1))}


def parse_direction(direction: str) -> tuple[int, tuple[int, int]]:
    """Beam axis and the two image axes for ``"100"``, ``"010"`` or ``"001"``.

    Image axes follow cyclic order: beam along x -> image (x, y) = crystal (y, z);
    beam along y -> (z, x); beam along z -> (x, y).
    """
    key = str(direction).strip("[]<> ").lower()
    key = {"x": "100", "y": "010", "z": "001"}.get(key, key)
    if key not in _DIRECTIONS:
        raise InputError(f"zone axis must be one of 100, 010, 001, got {direction!r}")
    return _DIRECTIONS[key]


def project_columns(nc, direction: str = "100", seed=None, atoms=None) -> pd.DataFrame:
    """Every atom column along a zone axis, with its position and contents.

    Parameters
    ----------
    nc : NanoCrystal
    direction : {"100", "010", "001"}
        Beam direction (crystal axis).
    seed : int, optional
        Seed for building the atoms when ``atoms`` is not given (defaults to ``nc.seed``).
    atoms : ase.Atoms, optional
        A model from :meth:`NanoCrystal.to_atoms` (reused, not rebuilt).

    Returns
    -------
    pandas.DataFrame
        One row per column: ``x_nm``, ``y_nm`` (image coordinates), ``site``
        (Cs | PbX | X, the reference-lattice site), ``n_cs``, ``n_pb``, ``n_br``,
        ``n_i``, ``n_cells``, ``shifted_fraction``, ``domain`` (majority by cells),
        ``thickness_nm``. ``df.attrs`` records the direction and image axes.
    """
    beam, (ax_u, ax_v) = parse_direction(direction)
    if atoms is None:
        atoms = nc.to_atoms(seed=nc.seed if seed is None else seed)
    half = atoms.get_array("half_index")
    site = atoms.get_array("site")
    domain = atoms.get_array("domain")
    z = atoms.numbers
    pos_nm = atoms.positions / 10.0

    keys = half[:, [ax_u, ax_v]]
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = inv.ravel()
    ncol = len(uniq)
    parity = uniq % 2
    col_site = np.where((parity[:, 0] == 0) & (parity[:, 1] == 0), "Cs",
                        np.where((parity[:, 0] == 1) & (parity[:, 1] == 1), "PbX", "X"))

    def count(mask):
        return np.bincount(inv[mask], minlength=ncol)

    n_cs, n_pb = count(site == SITE_CS), count(site == SITE_PB)
    n_br, n_i = count((site == SITE_X) & (z == 35)), count((site == SITE_X) & (z == 53))
    is_x_col = col_site == "X"
    # atoms that count one cell each: cations in cation columns, halides in X columns
    counting = np.where(is_x_col[inv], site == SITE_X, site != SITE_X)
    shifted_domain = np.array([d.is_shifted for d in nc.domains])
    n_cells = count(counting)
    n_shift = count(counting & shifted_domain[domain])
    # majority domain per column, by counted cells
    ndom = len(nc.domains)
    per = np.bincount(inv[counting] * ndom + domain[counting], minlength=ncol * ndom).reshape(ncol, ndom)
    counts_all = np.bincount(inv, minlength=ncol)
    x_nm = np.bincount(inv, weights=pos_nm[:, ax_u], minlength=ncol) / counts_all
    y_nm = np.bincount(inv, weights=pos_nm[:, ax_v], minlength=ncol) / counts_all

    df = pd.DataFrame({
        "x_nm": x_nm, "y_nm": y_nm, "site": col_site,
        "n_cs": n_cs, "n_pb": n_pb, "n_br": n_br, "n_i": n_i, "n_cells": n_cells,
        "shifted_fraction": np.divide(n_shift, n_cells, out=np.zeros(ncol), where=n_cells > 0),
        "domain": per.argmax(axis=1).astype(np.int32),
        "thickness_nm": n_cells * nc.reference_lattice_pm / 1000,
    })
    df.attrs.update({"direction": direction, "beam_axis": "xyz"[beam],
                     "image_axes": ["xyz"[ax_u], "xyz"[ax_v]],
                     "reference_lattice_pm": nc.reference_lattice_pm})
    return df

"""Analytic ADF-STEM test images for the GPA and column tests.

Sums of isotropic Gaussians on a known [100] perovskite lattice (Cs at (0,0), Pb+X at
(1/2,1/2), X at (1/2,0) and (0,1/2)), with column intensities from the Z^n power law
of PHYSICS.md, optional Ruddlesden-Popper shift (1/2,1/2) a beyond a plane x = x_b,
optional strain beyond x = x_s, and Poisson noise.
"""

from __future__ import annotations

import numpy as np

from nanodomains.stem.columns import render_columns

Z_CS, Z_PB, Z_I, Z_BR = 55, 82, 53, 35


def perovskite_columns(
    shape=(400, 400),
    a_px=23.6,
    *,
    exponent=1.7,
    z_x=Z_I,
    fault_x_px=None,
    strain_x=0.0,
    strain_from_x_px=None,
    margin_px=6.0,
):
    """Column positions (y, x) px, relative intensities and true types."""
    ny, nx = shape
    m = int(max(ny, nx) / a_px) + 4
    i, j = np.meshgrid(np.arange(-2, m), np.arange(-2, m), indexing="ij")
    i, j = i.ravel(), j.ravel()
    inten = {"Cs": Z_CS**exponent, "PbX": Z_PB**exponent + z_x**exponent, "X": z_x**exponent}
    pos, typ = [], []
    for (fy, fx), t in (((0.0, 0.0), "Cs"), ((0.5, 0.5), "PbX"), ((0.0, 0.5), "X"), ((0.5, 0.0), "X")):
        y = (i + fy) * a_px
        x = (j + fx) * a_px
        tt = np.full(len(y), t, dtype=object)
        if fault_x_px is not None:
            sh = x > fault_x_px
            y = np.where(sh, y + a_px / 2, y)
            x = np.where(sh, x + a_px / 2, x)
        if strain_from_x_px is not None:
            x = x + strain_x * np.maximum(x - strain_from_x_px, 0.0)
        pos.append(np.stack([y, x], axis=1))
        typ.append(tt)
    pos = np.concatenate(pos)
    typ = np.concatenate(typ)
    amp = np.array([inten[t] for t in typ]) / inten["PbX"]
    keep = (pos[:, 0] > -margin_px) & (pos[:, 0] < ny + margin_px) & (pos[:, 1] > -margin_px) & (pos[:, 1] < nx + margin_px)
    return pos[keep], amp[keep], typ[keep].astype(str)


def perovskite_image(shape=(400, 400), a_px=23.6, sigma_px=2.4, dose=None, seed=0, background=0.05, **kw):
    """Image, true positions, types. ``dose``: Poisson counts per unit intensity."""
    pos, amp, typ = perovskite_columns(shape, a_px, **kw)
    img = render_columns(shape, pos, amp, sigma_px, background=background)
    if dose is not None:
        img = np.random.default_rng(seed).poisson(img * dose) / dose
    return img, pos, typ

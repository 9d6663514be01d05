"""Synthetic ADF-STEM images with known truth.

Two kinds:

* :func:`perovskite_image`: analytic images, sums of isotropic Gaussians on a known
  [100] perovskite lattice (Cs at (0, 0), Pb+X at (1/2, 1/2), X at (1/2, 0) and
  (0, 1/2)), column intensities from the Z^n power law of PHYSICS.md, with an optional
  Ruddlesden-Popper shift (1/2, 1/2) a beyond a plane x = x_b, optional strain beyond
  x = x_s, and Poisson noise. Cheap; every column position is known exactly.
* :func:`simulated` and :func:`analysed`: the acceptance set of the STEM analysis,
  forward-model images of NC models (incoherent model at 1e5 e/A^2 with the default
  probe, 300 kV, 24 mrad, 40 pm source; 20 pm pixels; 3 nm carbon support; viewed
  along [100], image axes = crystal (y, z)) and their default analysis, computed once
  per process (cached).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from nanodomains.seeds import rng

__all__ = ["Z_CS", "Z_PB", "Z_I", "Z_BR", "DOSE", "PIXEL_PM", "perovskite_columns", "perovskite_image",
           "simulated", "analysed"]

#: Atomic numbers of the column species.
Z_CS, Z_PB, Z_I, Z_BR = 55, 82, 53, 35
#: Electron dose (e/A^2) of the forward-model cases.
DOSE = 1e5
#: Pixel size (pm) of the forward-model cases.
PIXEL_PM = 20.0


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
    """Column positions, relative intensities and types of a [100] perovskite lattice.

    Parameters
    ----------
    shape : (ny, nx)
        Image size (px); columns up to ``margin_px`` outside it are kept.
    a_px : float
        Lattice constant (px).
    exponent : float
        Power n of the Z^n column intensity law.
    z_x : int
        Atomic number of the halide (``Z_I`` or ``Z_BR``).
    fault_x_px : float, optional
        Columns with x > ``fault_x_px`` are shifted by (a/2, a/2): an RP fault.
    strain_x : float
        Uniaxial strain along x applied beyond ``strain_from_x_px``.
    strain_from_x_px : float, optional
        Where the strain starts (px); no strain when None.
    margin_px : float
        How far outside the image columns are kept.

    Returns
    -------
    positions_px : ndarray, shape (n, 2)
        Column centres (y, x) in px.
    amplitude : ndarray, shape (n,)
        Intensities relative to a Pb+X column.
    types : ndarray of str, shape (n,)
        ``"Cs"``, ``"PbX"`` or ``"X"``.

    Examples
    --------
    >>> pos, amp, typ = perovskite_columns((40, 40), a_px=10.0)
    >>> pos.shape[1], float(amp[typ == "PbX"][0])
    (2, 1.0)
    """
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
    keep = ((pos[:, 0] > -margin_px) & (pos[:, 0] < ny + margin_px)
            & (pos[:, 1] > -margin_px) & (pos[:, 1] < nx + margin_px))
    return pos[keep], amp[keep], typ[keep].astype(str)


def perovskite_image(shape=(400, 400), a_px=23.6, sigma_px=2.4, dose=None, seed=0, background=0.05, **kw):
    """Analytic ADF-STEM image of a [100] perovskite lattice, with its true columns.

    Parameters
    ----------
    shape : (ny, nx)
        Image size (px).
    a_px : float
        Lattice constant (px).
    sigma_px : float
        Gaussian width of every column (px).
    dose : float, optional
        Poisson counts per unit intensity; noise-free when None.
    seed : int
        Seed of the Poisson noise (:func:`nanodomains.seeds.rng`).
    background : float
        Constant added everywhere (relative to a Pb+X column peak of 1).
    **kw
        Passed to :func:`perovskite_columns` (``fault_x_px``, ``strain_x``, ...).

    Returns
    -------
    image : ndarray, shape ``shape``
    positions_px : ndarray, shape (n, 2)
        True column centres (y, x) in px.
    types : ndarray of str, shape (n,)

    Examples
    --------
    >>> img, pos, typ = perovskite_image((60, 60), a_px=15.0, dose=200, seed=1)
    >>> img.shape, len(pos) == len(typ)
    ((60, 60), True)
    >>> bool(img.max() > 0.9)
    True
    """
    from nanodomains.stem.columns import render_columns

    pos, amp, typ = perovskite_columns(shape, a_px, **kw)
    img = render_columns(shape, pos, amp, sigma_px, background=background)
    if dose is not None:
        img = rng(seed).poisson(img * dose) / dose
    return img, pos, typ


def _nc_model(kind: str, seed: int, n_domains: int, edge_nm: float):
    from nanodomains.structure import homogeneous, paper_fig1, random_domains

    if kind == "fig1":
        return paper_fig1(seed=seed)
    if kind == "homogeneous":
        return homogeneous(edge_nm, seed=seed)
    if kind == "random":
        return random_domains(edge_nm, n_domains=n_domains, seed=seed)
    from nanodomains.errors import InputError

    raise InputError(f"kind must be 'fig1', 'homogeneous' or 'random', got {kind!r}")


@lru_cache(maxsize=None)
def simulated(kind: str, seed: int, n_domains: int = 3, edge_nm: float = 15.0, rotation_deg: float = 0.0):
    """Forward-model ADF-STEM image of an NC model (cached: one per argument set).

    Parameters
    ----------
    kind : {"fig1", "homogeneous", "random"}
        The paper's Fig. 1 NC, a single-domain cube, or ``n_domains`` random domains.
    seed : int
        Seed of the model and of the image noise.
    n_domains : int
        Domains of a ``"random"`` NC.
    edge_nm : float
        Cube edge of ``"homogeneous"`` and ``"random"`` NCs (nm).
    rotation_deg : float
        In-plane rotation of the image.

    Returns
    -------
    SimulatedImage
        From :func:`nanodomains.stem.simulate.simulate_image` at :data:`DOSE` and
        :data:`PIXEL_PM`. Shared between callers: do not modify it.

    Examples
    --------
    >>> sim = simulated("homogeneous", 0, edge_nm=3.0)
    >>> sim.image.dims
    ('y', 'x')
    """
    from nanodomains.stem.simulate import simulate_image

    nc = _nc_model(kind, seed, n_domains, edge_nm)
    return simulate_image(nc, pixel_size_pm=PIXEL_PM, dose_e_per_a2=DOSE, seed=seed, rotation_deg=rotation_deg)


@lru_cache(maxsize=None)
def analysed(kind: str, seed: int, n_domains: int = 3, edge_nm: float = 15.0, rotation_deg: float = 0.0):
    """:func:`simulated` image and its default analysis (cached).

    Parameters are those of :func:`simulated`. The analysis is
    :func:`nanodomains.stem.analyze.analyze_image` with 200 bootstrap resamples and
    the power-law column table.

    Returns
    -------
    (SimulatedImage, AnalysisResult)
        Shared between callers: do not modify them.

    Examples
    --------
    The analysis takes seconds, so the doctests do not run this one::

        sim, result = analysed("homogeneous", 0, edge_nm=3.0)
        len(result.domains)  # 1: a single-domain cube
    """
    from nanodomains.stem.analyze import analyze_image

    sim = simulated(kind, seed, n_domains, edge_nm, rotation_deg)
    return sim, analyze_image(sim.image, n_boot=200)

"""Synthetic 4 K PL spectral movies with known truth, per frame.

A light model, simpler and faster than the optical forward model
(:mod:`nanodomains.optics.movies`), whose truth includes what only a synthetic movie
can give: each line's position and on/off state in every frame and the cosmic rays.

Model: every line is a Lorentzian (HWHM ``hwhm_nm``) of peak height ``peak_counts``
(optionally a Voigt with Gaussian sigma ``instrument_sigma_nm``); a fine-structure set
has lines at E0 +- FSS/2 (doublet) or gaps 0.9 FSS and 1.1 FSS (triplet: the mean of
the two gaps is FSS), E0 being the energy centroid of the lines; all lines of one set
share an Ornstein-Uhlenbeck spectral diffusion walk (stationary sd ``diffusion_nm``,
correlation time ``diffusion_tau`` frames) and one on/off mask; counts =
Poisson(background + lines) + Gaussian read noise, plus a few 1-2 px cosmic rays.

The truth dict uses the optical simulator's sidecar schema (``emitters``: id, domain,
kind, center_nm, lines_nm, fss_uev, intervals_s, lifetime_ns; ``couplings``) plus
per-frame arrays under ``frames`` (``on``, ``lines_nm``, ``time_s``, ``cosmics``).
"""

from __future__ import annotations

import numpy as np

from nanodomains.errors import InputError
from nanodomains.materials import HC_EV_NM
from nanodomains.seeds import rng as make_rng
from nanodomains.seeds import spawn

__all__ = ["lines_nm", "telegraph", "ou_walk", "on_between", "make_movie", "fig4_like"]


def lines_nm(center_nm: float, kind: str, fss_uev: float) -> np.ndarray:
    """Wavelengths (nm, ascending) of the lines of one fine-structure set.

    Parameters
    ----------
    center_nm : float
        Wavelength of the energy centroid E0 of the set.
    kind : {"singlet", "trion", "doublet", "triplet"}
        One line (singlet, trion), two at E0 +- FSS/2, or three with gaps 0.9 and
        1.1 FSS.
    fss_uev : float
        Fine-structure splitting (ueV); ignored for one line.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> lam = lines_nm(645.0, "doublet", 677.0)
    >>> [round(float(x), 3) for x in lam]
    [644.886, 645.114]
    """
    e0 = HC_EV_NM / center_nm
    f = fss_uev * 1e-6
    if kind in ("singlet", "trion"):
        e = [e0]
    elif kind == "doublet":
        e = [e0 - f / 2, e0 + f / 2]
    elif kind == "triplet":
        e = np.array([-0.9 * f, 0.0, 1.1 * f])
        e = e0 + e - e.mean()  # energy centroid at e0
    else:
        raise InputError(f"kind must be singlet, trion, doublet or triplet, got {kind!r}")
    return np.sort(HC_EV_NM / np.asarray(e))


def telegraph(n: int, p_off: float, p_on: float, rng, start_on: bool = True) -> np.ndarray:
    """Two-state blinking mask: P(on -> off) = ``p_off``, P(off -> on) = ``p_on`` per frame.

    Parameters
    ----------
    n : int
        Number of frames.
    p_off, p_on : float
        Switching probabilities per frame.
    rng : int or numpy.random.Generator
        Seed or Generator (:func:`nanodomains.seeds.rng`); a Generator advances.
    start_on : bool
        State of the first frame.

    Returns
    -------
    ndarray of bool, shape (n,)

    Examples
    --------
    >>> on = telegraph(10, 0.0, 1.0, 0)
    >>> bool(on.all())
    True
    """
    g = make_rng(rng)
    on = np.empty(n, bool)
    s = start_on
    for i in range(n):
        on[i] = s
        s = (g.random() >= p_off) if s else (g.random() < p_on)
    return on


def ou_walk(n: int, sd: float, tau: float, rng) -> np.ndarray:
    """Stationary Ornstein-Uhlenbeck walk: spectral diffusion of one set of lines.

    Parameters
    ----------
    n : int
        Number of frames.
    sd : float
        Stationary standard deviation (nm); 0 gives zeros.
    tau : float
        Correlation time (frames).
    rng : int or numpy.random.Generator
        Seed or Generator; a Generator advances.

    Returns
    -------
    ndarray, shape (n,)

    Examples
    --------
    >>> w = ou_walk(2000, 0.02, 5.0, 1)
    >>> bool(0.01 < w.std() < 0.03)
    True
    """
    if sd == 0:
        return np.zeros(n)
    g = make_rng(rng)
    a = np.exp(-1.0 / tau)
    x = np.empty(n)
    x[0] = g.normal(0, sd)
    eps = g.normal(0, sd * np.sqrt(1 - a * a), n)
    for i in range(1, n):
        x[i] = a * x[i - 1] + eps[i]
    return x


def on_between(n_frames: int, start: int, stop: int) -> np.ndarray:
    """Mask that is on in frames ``start`` to ``stop - 1``.

    Examples
    --------
    >>> on_between(5, 1, 3).astype(int).tolist()
    [0, 1, 1, 0, 0]
    """
    on = np.zeros(n_frames, bool)
    on[start:stop] = True
    return on


def make_movie(
    emitters: list[dict],
    *,
    n_frames: int = 120,
    frame_s: float = 1.0,
    wl_start_nm: float = 640.0,
    n_px: int = 1024,
    dispersion_nm: float = 0.02,
    hwhm_nm: float = 0.04,
    instrument_sigma_nm: float = 0.0,
    background: float = 200.0,
    read_noise: float = 6.0,
    n_cosmics: int = 4,
    diffusion_nm: float = 0.02,
    diffusion_tau: float = 8.0,
    shared_diffusion: bool = False,
    seed: int = 0,
):
    """Render a spectral movie of blinking, diffusing emitters and return its truth.

    Parameters
    ----------
    emitters : list of dict
        One per fine-structure set: ``id``, ``kind`` (see :func:`lines_nm`),
        ``center_nm``, ``fss_uev`` (0 for singlet/trion), ``peak_counts``, ``on``
        (bool array, one per frame) and optionally ``domain``, ``rel_amplitudes`` (one
        per line) and ``diffusion_group`` (emitters of one group share a walk).
    n_frames, frame_s : int, float
        Number of frames and frame period (s).
    wl_start_nm, n_px, dispersion_nm : float, int, float
        Wavelength axis: first pixel, number of pixels, nm per pixel.
    hwhm_nm, instrument_sigma_nm : float
        Lorentzian HWHM of every line; Gaussian sigma of the instrument (0: none).
    background, read_noise : float
        Constant background (counts) and Gaussian read noise (sd, counts).
    n_cosmics : int
        Cosmic rays added (1-2 px, 800-4000 counts).
    diffusion_nm, diffusion_tau : float
        Spectral diffusion: stationary sd (nm) and correlation time (frames).
    shared_diffusion : bool
        One walk for every emitter (all lines move together).
    seed : int
        Seed of the walks, the noise and the cosmic rays (recorded in the attrs).

    Returns
    -------
    movie : xarray.DataArray
        Dims (time, wavelength), from :func:`nanodomains.spectroscopy.io.movie_from_arrays`.
    truth : dict
        ``emitters`` (id, domain, kind, center_nm, lines_nm, fss_uev, intervals_s,
        lifetime_ns), ``couplings`` and ``frames`` (``on`` and ``lines_nm`` per id,
        ``time_s``, ``cosmics`` as (frame, pixel, width, amplitude)).

    Examples
    --------
    >>> em = dict(id="X1", kind="doublet", center_nm=645.0, fss_uev=677.0, peak_counts=400.0,
    ...           on=on_between(20, 5, 20))
    >>> movie, truth = make_movie([em], n_frames=20, n_px=256, seed=1)
    >>> dict(movie.sizes)
    {'time': 20, 'wavelength': 256}
    >>> truth["emitters"][0]["intervals_s"]
    [[5.0, 20.0]]
    """
    from scipy.special import voigt_profile

    from nanodomains.spectroscopy.io import movie_from_arrays
    from nanodomains.spectroscopy.states import mask_to_intervals

    rng = make_rng(seed)
    wl = wl_start_nm + dispersion_nm * np.arange(n_px)
    t = np.arange(n_frames) * frame_s
    model = np.full((n_frames, n_px), float(background))
    walks: dict = {}
    nc_walk = ou_walk(n_frames, diffusion_nm, diffusion_tau, rng) if shared_diffusion else None
    truth = {"emitters": [], "couplings": [], "frames": {"on": {}, "lines_nm": {}, "time_s": t}}
    for k, em in enumerate(emitters):
        g = em.get("diffusion_group", em["id"])
        if g not in walks:
            walks[g] = nc_walk if shared_diffusion else ou_walk(n_frames, diffusion_nm, diffusion_tau, rng)
        w = walks[g]
        lam = lines_nm(em["center_nm"], em["kind"], em.get("fss_uev", 0.0))
        rel = np.asarray(em.get("rel_amplitudes", np.ones(lam.size)), float)
        on = np.asarray(em["on"], bool)
        pos = lam[None, :] + w[:, None]  # (T, n_lines)
        for j in range(lam.size):
            x = wl[None, :] - pos[:, j : j + 1]
            if instrument_sigma_nm > 0:
                prof = voigt_profile(x, instrument_sigma_nm, hwhm_nm) / voigt_profile(0.0, instrument_sigma_nm, hwhm_nm)
            else:
                prof = 1.0 / (1.0 + (x / hwhm_nm) ** 2)
            model += em["peak_counts"] * rel[j] * on[:, None] * prof
        truth["emitters"].append(
            {
                "id": em["id"],
                "domain": em.get("domain", k),
                "kind": em["kind"],
                "center_nm": float(em["center_nm"]),
                "lines_nm": lam.tolist(),
                "fss_uev": float(em.get("fss_uev", 0.0)),
                "intervals_s": mask_to_intervals(on, t, frame_s),
                "lifetime_ns": None,
            }
        )
        truth["frames"]["on"][em["id"]] = on
        truth["frames"]["lines_nm"][em["id"]] = pos
    counts = rng.poisson(model).astype(np.float64) + rng.normal(0, read_noise, model.shape)
    cosmics = []
    for _ in range(n_cosmics):
        f, p = rng.integers(n_frames), rng.integers(5, n_px - 6)
        width = rng.integers(1, 3)
        amp = rng.uniform(800, 4000)
        counts[f, p : p + width] += amp
        cosmics.append((int(f), int(p), int(width), float(amp)))
    truth["frames"]["cosmics"] = cosmics
    movie = movie_from_arrays(counts, wl, t, attrs={"format": "synthetic", "seed": seed}, source=f"synthetic seed {seed}")
    return movie, truth


def fig4_like(seed: int = 0, n_frames: int = 120, **kw):
    """The acceptance movie of the PL analysis: the paper's Fig. 4 cases in one movie.

    A doublet (677 ueV) and a triplet (878 ueV) in one NC, both blinking, plus a trion
    of a third QD (singlet neutral at 652.36 nm, trion 9.9 meV red) switching to
    neutral at frame 37.

    Parameters
    ----------
    seed : int
        The blinking masks come from the stream spawned from ``seed``
        (:func:`nanodomains.seeds.spawn`), the movie from ``seed`` itself.
    n_frames : int
        Number of frames (> 37).
    **kw
        Passed to :func:`make_movie`.

    Returns
    -------
    movie, truth
        As :func:`make_movie`; emitter ids ``X1``, ``X2``, ``QD3`` and ``QD3*``.

    Examples
    --------
    >>> movie, truth = fig4_like(seed=1, n_frames=60)
    >>> [e["id"] for e in truth["emitters"]]
    ['X1', 'X2', 'QD3', 'QD3*']
    >>> truth["emitters"][3]["intervals_s"]
    [[0.0, 37.0]]
    """
    blink = spawn(seed, ["blinking"])["blinking"]
    ems = [
        dict(id="X1", kind="doublet", center_nm=645.0, fss_uev=677.0, peak_counts=450.0,
             on=telegraph(n_frames, 0.06, 0.25, blink), domain=0),
        dict(id="X2", kind="triplet", center_nm=649.0, fss_uev=878.0, peak_counts=450.0,
             on=telegraph(n_frames, 0.06, 0.25, blink), domain=1, rel_amplitudes=[1.0, 0.8, 0.9]),
        dict(id="QD3", kind="singlet", center_nm=652.36, fss_uev=0.0, peak_counts=500.0,
             on=on_between(n_frames, 37, n_frames), domain=2, diffusion_group="qd3"),
        dict(id="QD3*", kind="trion", center_nm=655.76, fss_uev=0.0, peak_counts=500.0,
             on=on_between(n_frames, 0, 37), domain=2, diffusion_group="qd3"),
    ]
    return make_movie(ems, n_frames=n_frames, seed=seed, **kw)

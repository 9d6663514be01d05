"""Synthetic 4 K PL spectral movies with known truth, for the spectroscopy tests.

A stand-in for the optical forward model (src/nanodomains/optics) until it lands; the
truth dict uses that simulator's sidecar schema (``emitters``: id, domain, kind,
center_nm, lines_nm, fss_uev, intervals_s, lifetime_ns; ``couplings``) plus per-frame
arrays under ``frames`` that only a synthetic movie can give.

Model: every line is a Lorentzian (HWHM ``hwhm_nm``) of peak height ``peak_counts``
(optionally a Voigt with Gaussian sigma ``instrument_sigma_nm``); a fine-structure set
has lines at E0 +- FSS/2 (doublet) or gaps 0.9 FSS and 1.1 FSS (triplet: the mean of
the two gaps is FSS), E0 being the energy centroid of the lines; all lines of one set share an Ornstein-Uhlenbeck spectral
diffusion walk (stationary sd ``diffusion_nm``, correlation time ``diffusion_tau``
frames) and one on/off mask; counts = Poisson(background + lines) + Gaussian read
noise, plus a few 1-2 px cosmic rays.
"""

from __future__ import annotations

import numpy as np

from nanodomains.spectroscopy.io import movie_from_arrays

HC_EV_NM = 1239.8419843320026


def lines_nm(center_nm: float, kind: str, fss_uev: float) -> np.ndarray:
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
        raise ValueError(kind)
    return np.sort(HC_EV_NM / np.asarray(e))


def telegraph(n: int, p_off: float, p_on: float, rng, start_on: bool = True) -> np.ndarray:
    """Two-state blinking: P(on->off) = p_off, P(off->on) = p_on per frame."""
    on = np.empty(n, bool)
    s = start_on
    for i in range(n):
        on[i] = s
        s = (rng.random() >= p_off) if s else (rng.random() < p_on)
    return on


def mask_to_intervals(on: np.ndarray, time_s: np.ndarray, frame_s: float) -> list[list[float]]:
    on = np.asarray(on, bool)
    d = np.diff(np.concatenate([[0], on.astype(int), [0]]))
    starts, stops = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return [[float(time_s[a]), float(time_s[b - 1] + frame_s)] for a, b in zip(starts, stops)]


def ou_walk(n: int, sd: float, tau: float, rng) -> np.ndarray:
    if sd == 0:
        return np.zeros(n)
    a = np.exp(-1.0 / tau)
    x = np.empty(n)
    x[0] = rng.normal(0, sd)
    eps = rng.normal(0, sd * np.sqrt(1 - a * a), n)
    for i in range(1, n):
        x[i] = a * x[i - 1] + eps[i]
    return x


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
    """Render a movie. Each emitter dict: id, kind, center_nm, fss_uev (0 for singlet/
    trion), peak_counts, on (bool array) and optional domain, rel_amplitudes,
    diffusion_group (emitters with one group share a walk)."""
    from scipy.special import voigt_profile

    rng = np.random.default_rng(seed)
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


def on_between(n_frames: int, start: int, stop: int) -> np.ndarray:
    on = np.zeros(n_frames, bool)
    on[start:stop] = True
    return on


def fig4_like(seed: int = 0, n_frames: int = 120, **kw):
    """A doublet (677 ueV) and a triplet (878 ueV) in one NC, both blinking, plus a
    trion of a third QD (singlet neutral at 652.36 nm, trion 9.9 meV red) switching to
    neutral at frame 37 -- the acceptance cases of issue 7 in one movie."""
    rng = np.random.default_rng(seed + 1000)
    ems = [
        dict(id="X1", kind="doublet", center_nm=645.0, fss_uev=677.0, peak_counts=450.0,
             on=telegraph(n_frames, 0.06, 0.25, rng), domain=0),
        dict(id="X2", kind="triplet", center_nm=649.0, fss_uev=878.0, peak_counts=450.0,
             on=telegraph(n_frames, 0.06, 0.25, rng), domain=1, rel_amplitudes=[1.0, 0.8, 0.9]),
        dict(id="QD3", kind="singlet", center_nm=652.36, fss_uev=0.0, peak_counts=500.0,
             on=on_between(n_frames, 37, n_frames), domain=2, diffusion_group="qd3"),
        dict(id="QD3*", kind="trion", center_nm=655.76, fss_uev=0.0, peak_counts=500.0,
             on=on_between(n_frames, 0, 37), domain=2, diffusion_group="qd3"),
    ]
    return make_movie(ems, n_frames=n_frames, seed=seed, **kw)

r"""Photon time tags of one NC behind a Hanbury Brown-Twiss (HBT) setup; PTU and npz writers.

Emitter model
-------------
The NC dynamics (:mod:`nanodomains.optics.emitters`) give, for every domain, piecewise
constant states (X, X*, off, bleached), the mean excitons per pulse ``lambda_i``, the
exciton quantum yield ``QY_i`` and lifetime ``tau_i`` (including Forster loss). Per
pulse the domain holds ``N ~ Poisson(lambda_i)`` excitons (independent across domains:
Poisson thinning of the absorbed excitons). In state X it emits

* the exciton photon with probability ``QY_i`` if ``N >= 1`` (one of its fine-structure
  lines, chosen with their intensities), delayed ``Exp(tau_i)`` after the pulse, or
  after the biexciton photon when ``N >= 2``;
* the biexciton photon with probability ``QY_XX = r QY_i`` if ``N >= 2`` (Auger-limited
  biexciton, ``r = 0.1`` by default; in the low-power limit g2(0) -> QY_XX/QY_X: Nair,
  Zhao & Bawendi, Nano Lett. 11, 1136 (2011)), delayed ``Exp(tau_XX)``, ``tau_XX =
  0.3 tau_i``, at ``E_X - Delta_XX`` (``Delta_XX = 20 meV`` (unchecked)).

In state X* it emits one trion photon with probability ``QY_i b_T`` if ``N >= 1``
(``b_T`` = trion brightness) after ``Exp(tau_T)``. Each photon passes an optional
band-pass filter (transmission = the fraction of its Lorentzian line inside the band),
is detected with the system efficiency ``eta`` and goes to channel 0 with probability
``s`` (50:50 splitter: s = 1/2), then gets Gaussian detector jitter, a cable delay,
dark counts (Poisson), optional afterpulses (probability ``p_ap`` per detection,
delay ``Exp(t_ap)``, same channel) and an optional dead time.

Only pulses with at least one detected photon are drawn: in a segment with ``K``
pulses they are a Bernoulli process of probability ``p_any`` (gaps ~ Geometric), and
the photon configuration of each such pulse is drawn conditionally on ``>= 1``
detection, so the cost is O(detected photons), not O(pulses).

CW excitation: each domain is a two-level emitter pumped at the arrival rate ``g_i``;
its decays form a renewal process with intervals ``Exp(g) + Exp(1/tau)`` (g2(tau) =
1 - exp(-(g + 1/tau)|tau|)); the intervals between *detected* decays are exactly
``Gamma(K, 1/g) + Gamma(K, tau)`` with ``K ~ Geometric(p_det)``. No biexciton cascade
in CW: multiphoton events come from several domains and from dark counts.

Expected g2(0)
--------------
Pulsed, as the zero-delay peak area over the side-peak area of nearby pulses (same
states), summed over constant-state segments (``K_s`` pulses each), with per-pulse
detected photons ``m_i`` of domain i, two-photon probability ``q_i = P(N>=2) dX dXX``
and dark counts ``d_c = D_c T_rep``::

    A_0 = sum_s K_s [ 2 s(1-s) sum_i q_i + s(1-s) ((sum_i m_i)^2 - sum_i m_i^2)
                      + s M d_1 + (1-s) M d_0 + d_0 d_1 ],   M = sum_i m_i
    A_side = sum_s K_s [ s(1-s) M^2 + s M d_1 + (1-s) M d_0 + d_0 d_1 ]
    g2(0) = A_0 / A_side

CW (normalised by rates x bin x duration), with detected rates ``S_ic`` per domain and
channel and ``R_c = sum_i S_ic + D_c``::

    g2(0) = T sum_s dur_s (R_0 R_1 - sum_i S_i0 S_i1) / (sum_s dur_s R_0)(sum_s dur_s R_1)

Afterpulsing is excluded from these expressions (it only correlates a channel with
itself); the default has none.

T3 records
----------
Pulses at ``k T_sync`` (T_sync an integer number of ps); a photon at ``t`` has
``n_sync = floor(t / T_sync)`` and micro time ``floor((t - n_sync T_sync)/r) r`` with
``r`` the TCSPC resolution; its ``times_ps`` is ``n_sync T_sync + micro`` exactly, as a
PTU reader reconstructs it. The IRF is the Gaussian of the laser pulse and detector
jitter (s.d. ``sqrt(sigma_pulse^2 + sigma_jitter^2)``) centred on the cable delay.

Files and truth
---------------
A :class:`PhotonSimulation` is a :class:`~nanodomains.timetags.PhotonStream`, written
with :func:`nanodomains.timetags.write_ptu` (PicoQuant PTU, HydraHarp v2 T2/T3 records)
or :func:`nanodomains.timetags.write_photons_npz` (both re-exported here). Its
``truth`` is a :class:`~nanodomains.records.PhotonTruth`: the expected g2 as a
:class:`~nanodomains.records.G2Record` and each emitter's lifetime as a
:class:`~nanodomains.records.LifetimeRecord` (``origin="truth"``), the record types the
analyses return, so they compare with :func:`nanodomains.records.compare`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numba
import numpy as np

from nanodomains.records import (
    G2Record,
    LifetimeComponent,
    LifetimeRecord,
    Measured,
    PhotonEmitterTruth,
    PhotonTruth,
)
from nanodomains.seeds import SeedLike, rng
from nanodomains.timetags import PhotonStream, write_photons_npz, write_ptu
from nanodomains import materials
from nanodomains.errors import InputError, require_finite, require_positive
from nanodomains.optics.emitters import STATE_CODES, NCDynamics, merge_piecewise
from nanodomains.errors import require_in_range

__all__ = [
    "PhotonParameters",
    "Detectors",
    "PhotonSimulation",
    "simulate_photons",
    "line_filter",
    "write_ptu",
    "write_photons_npz",
]

ORIGIN_DARK = -1
ORIGIN_AFTERPULSE = -2


@dataclass(frozen=True)
class PhotonParameters:
    """Excitation and multiphoton emission (see the module docstring)."""

    mode: Literal["pulsed", "cw"] = "pulsed"
    rep_rate_hz: float = 10e6
    pulse_sigma_ps: float = 20.0
    biexciton_qy_ratio: float = 0.1
    biexciton_lifetime_ratio: float = 0.3
    biexciton_binding_mev: float = 20.0
    t3_resolution_ps: float | None = None   # default: smallest power of 2 that fits 15 bits

    def __post_init__(self) -> None:
        if self.mode not in ("pulsed", "cw"):
            raise InputError(f"mode must be 'pulsed' or 'cw', got {self.mode!r}")
        require_positive("rep_rate_hz", self.rep_rate_hz)
        period = 1e12 / self.rep_rate_hz
        if abs(period - round(period)) > 1e-6 * period:
            raise InputError(f"rep_rate_hz={self.rep_rate_hz} gives a sync period of {period} ps; "
                             "choose a rate whose period is a whole number of ps")
        require_in_range("pulse_sigma_ps", self.pulse_sigma_ps)
        require_in_range("biexciton_qy_ratio", self.biexciton_qy_ratio, 0.0, 1.0)
        require_positive("biexciton_lifetime_ratio", self.biexciton_lifetime_ratio)
        require_finite("biexciton_binding_mev", self.biexciton_binding_mev)
        if self.t3_resolution_ps is not None:
            require_positive("t3_resolution_ps", self.t3_resolution_ps)
            if self.t3_resolution_ps != int(self.t3_resolution_ps):
                raise InputError("t3_resolution_ps must be a whole number of ps")

    @property
    def sync_period_ps(self) -> int:
        return int(round(1e12 / self.rep_rate_hz))

    def resolution_ps(self) -> int:
        if self.t3_resolution_ps is not None:
            r = int(self.t3_resolution_ps)
        else:
            r = 1
            while self.sync_period_ps / r > (1 << 15) - 1:
                r *= 2
        if self.sync_period_ps / r > (1 << 15) - 1:
            raise InputError(f"T3 resolution {r} ps cannot cover the {self.sync_period_ps} ps period "
                             "in 15 bits of dtime")
        return r


@dataclass(frozen=True)
class Detectors:
    """Two single-photon detectors behind a beam splitter (per-channel tuples: ch0, ch1)."""

    efficiency: float = 0.01
    split_ratio: float = 0.5
    jitter_sigma_ps: tuple[float, float] = (25.0, 25.0)
    delay_ps: tuple[float, float] = (1000.0, 1000.0)
    dark_rate_hz: tuple[float, float] = (50.0, 50.0)
    afterpulse_probability: float = 0.0
    afterpulse_mean_ps: float = 200_000.0
    dead_time_ps: float = 0.0

    def __post_init__(self) -> None:
        require_in_range("detection efficiency", self.efficiency, 0.0, 1.0, lo_open=True)
        require_in_range("split_ratio", self.split_ratio, 0.0, 1.0)
        for name in ("jitter_sigma_ps", "delay_ps", "dark_rate_hz"):
            v = getattr(self, name)
            if len(v) != 2:
                raise InputError(f"{name} needs two values (channel 0, channel 1), got {v!r}")
            for x in v:
                require_in_range(name, x)
        require_in_range("afterpulse_probability", self.afterpulse_probability, 0.0, 1.0, hi_open=True)
        require_positive("afterpulse_mean_ps", self.afterpulse_mean_ps)
        require_in_range("dead_time_ps", self.dead_time_ps)


SIMULATION_SOURCE = "nanodomains.optics.photons simulation"


@dataclass
class PhotonSimulation(PhotonStream):
    """Simulated photon stream (a :class:`~nanodomains.timetags.PhotonStream`) with its truth.

    ``origin`` per photon: ``8 e + l`` for line l of emitter e (``l = 7``: biexciton
    photon of emitter e's domain), -1 dark count, -2 afterpulse. ``truth`` is the
    :class:`~nanodomains.records.PhotonTruth` written beside the stream's file.
    """

    origin: np.ndarray | None = None
    truth: PhotonTruth | None = None

    @property
    def expected_g2_zero(self) -> float:
        """Shorthand for ``truth.g2.g2_0.value``, the model's expected g2(0)."""
        return float(self.truth.g2.g2_0)


# ---- helpers ---------------------------------------------------------------------------

def _lorentz_fraction(lam_nm: np.ndarray, hwhm_nm: np.ndarray, band) -> np.ndarray:
    if band is None:
        return np.ones_like(lam_nm)
    lo, hi = band
    return (np.arctan((hi - lam_nm) / hwhm_nm) - np.arctan((lo - lam_nm) / hwhm_nm)) / np.pi


def line_filter(dyn: NCDynamics, emitter_id: str, line: int | None = None,
                width_nm: float | None = None) -> tuple[float, float]:
    """Band-pass (lo, hi) in nm around one emitter (or one of its lines, by index in
    wavelength order). Default width: the set's span plus 4 line FWHM."""
    ids = [em.id for em in dyn.emitters]
    if emitter_id not in ids:
        raise InputError(f"unknown emitter {emitter_id!r}; emitters: {ids}")
    em = dyn.emitters[ids.index(emitter_id)]
    lam = np.sort(em.lines_nm)
    fwhm = float(np.max(lam) ** 2 * em.linewidth_uev * 1e-6 / materials.HC_EV_NM)
    if line is not None:
        if not 0 <= line < lam.size:
            raise InputError(f"emitter {emitter_id} has {lam.size} lines, got line={line}")
        lam = lam[line:line + 1]
    width = (float(lam.max() - lam.min()) + 4 * fwhm) if width_nm is None else require_positive("width_nm", width_nm)
    c = 0.5 * float(lam.max() + lam.min())
    return (c - width / 2, c + width / 2)


def _segments(dyn: NCDynamics, domain: int):
    """Constant-state segments of a domain: (t0_s, t1_s, state code, event factor)."""
    traj = dyn.trajectories[domain]
    parts = [(traj.times, traj.states.astype(float))]
    d = dyn.duration_s
    for ev in dyn.events:
        if domain in ev.domains:
            t0, t1 = min(ev.interval_s[0], d), min(ev.interval_s[1], d)
            parts.append((np.array([0.0, t0, t1, d]), np.array([1.0, ev.factor, 1.0])))
    breaks, vals = merge_piecewise(*parts)
    factor = np.prod(vals[1:], axis=0) if len(vals) > 1 else np.ones(len(breaks) - 1)
    return breaks[:-1], breaks[1:], np.rint(vals[0]).astype(int), factor


def _domain_emitters(dyn: NCDynamics, domain: int):
    x = [k for k, em in enumerate(dyn.emitters) if em.domain == domain and em.state == "X"]
    t = [k for k, em in enumerate(dyn.emitters) if em.domain == domain and em.state == "X*"]
    return (x[0] if x else None), (t[0] if t else None)


def _line_table(dyn: NCDynamics, k: int, band):
    em = dyn.emitters[k]
    lam = em.lines_nm
    hw = lam**2 * em.linewidth_uev * 1e-6 / (2 * materials.HC_EV_NM)
    trans = _lorentz_fraction(lam, hw, band)
    w = em.intensity * trans
    return float(w.sum()), (w / w.sum() if w.sum() > 0 else np.full(w.size, 1.0 / w.size))


# ---- pulsed ----------------------------------------------------------------------------

def _emission_qy(dyn: NCDynamics, k: int, p_excited: float, rep_rate_hz: float) -> float:
    """Per-excitation emission probability reproducing the emitter's photon rate (pulsed)."""
    em = dyn.emitters[k]
    if p_excited <= 0:
        return 0.0
    q = em.rate_hz / (rep_rate_hz * p_excited)
    if q > 1 + 1e-9:
        raise InputError(f"emitter {em.id}: {em.rate_hz:g} photons/s exceed one per excited pulse "
                         f"at {rep_rate_hz:g} Hz and P(N>=1) = {p_excited:.3g}")
    return min(q, 1.0)


def _pulsed_segments(dyn: NCDynamics, domain: int, pp: PhotonParameters, det: Detectors, band,
                     period_ps: int) -> list[tuple]:
    """Emitting segments of one domain for the pulsed kernel.

    Each row: ``(k0, k1, p_any, c0, c1, c2, tau1_ps, tau2_ps, is_x, origin1, origin2, l0, l1, m, q)``:
    pulse range [k0, k1), probability of >= 1 detection per pulse, cumulative category
    probabilities (X only / X after an undetected XX / XX only / both), X (or trion) and
    XX lifetimes, origins, cumulative line probabilities, detected photons per pulse
    ``m`` and two-photon probability ``q`` (for the expected g2).
    """
    lam = float(dyn.flow["mean_excitons"][domain])
    kx, kt = _domain_emitters(dyn, domain)
    tau_ps = dyn.emitters[kx].lifetime_ns * 1e3 if kx is not None else 0.0
    p0 = math.exp(-lam)
    p1 = lam * p0
    p2 = max(0.0, 1.0 - p0 - p1)
    eta = det.efficiency
    rows = []
    if kx is not None:
        ex = dyn.emitters[kx]
        tx, wx = _line_table(dyn, kx, band)
        lx = np.concatenate([np.cumsum(wx), [1.0, 1.0]])[:2]
        qx = _emission_qy(dyn, kx, 1 - p0, pp.rep_rate_hz)
        lam_xx = np.array([materials.HC_EV_NM / (ex.center_ev - pp.biexciton_binding_mev * 1e-3)])
        hw_xx = lam_xx**2 * ex.linewidth_uev * 1e-6 / (2 * materials.HC_EV_NM)
        txx = float(_lorentz_fraction(lam_xx, hw_xx, band)[0])
    if kt is not None:
        tt, _ = _line_table(dyn, kt, band)
        qt = _emission_qy(dyn, kt, 1 - p0, pp.rep_rate_hz)
        tau_t_ps = dyn.emitters[kt].lifetime_ns * 1e3
    t0, t1, st, factor = _segments(dyn, domain)
    for a, b, code, fac in zip(t0, t1, st, factor):
        k0 = int(math.ceil(a * 1e12 / period_ps))
        k1 = int(math.ceil(b * 1e12 / period_ps))
        if k1 <= k0 or fac <= 0:
            continue
        if code == STATE_CODES["X"] and kx is not None:
            d_x = qx * eta * tx * fac
            d_xx = min(1.0, pp.biexciton_qy_ratio * qx) * eta * txx * fac
            w = np.array([p1 * d_x, p2 * d_x * (1 - d_xx), p2 * (1 - d_x) * d_xx, p2 * d_x * d_xx])
            p_any = float(w.sum())
            if p_any <= 0:
                continue
            c = np.cumsum(w) / p_any
            rows.append((k0, k1, p_any, c[0], c[1], c[2], tau_ps, tau_ps * pp.biexciton_lifetime_ratio,
                         True, 8 * kx, 8 * kx + 7, lx[0], lx[1],
                         p1 * d_x + p2 * (d_x + d_xx), p2 * d_x * d_xx))
        elif code == STATE_CODES["X*"] and kt is not None:
            p_any = (1 - p0) * qt * eta * tt * fac
            if p_any <= 0:
                continue
            rows.append((k0, k1, p_any, 1.0, 1.0, 1.0, tau_t_ps, 0.0, False, 8 * kt, 8 * kt, 1.0, 1.0,
                         p_any, 0.0))
    return rows


@numba.njit(cache=True)
def _pulsed_kernel(seg, pos, k0, k1, p_any, cat, tau1, tau2, is_x, orig1, orig2, line, period,
                   split, exp_pool, uni_pool, out_t, out_c, out_o):  # pragma: no cover - compiled
    """Detected photons of the segments from ``seg`` on, resuming after pulse ``pos``.

    Pulses with >= 1 detection form a Bernoulli process: gaps ``1 + floor(E/-log(1-p))``
    (E ~ Exp(1), i.e. Geometric(p)); the configuration of each such pulse is drawn
    conditional on >= 1 detection. Random numbers come from the pools (drawn by the
    caller's numpy Generator); returns ``(seg, pos, n_out, done)`` when a pool or the
    output buffer runs low, so the caller refills and calls again.
    """
    n = 0
    ie = 0
    iu = 0
    while seg < k0.size:
        if pos < k0[seg] - 1:
            pos = k0[seg] - 1
        scale = -1.0 / math.log1p(-p_any[seg]) if p_any[seg] < 1.0 else 0.0
        while True:
            if ie + 3 > exp_pool.size or iu + 4 > uni_pool.size or n + 2 > out_t.size:
                return seg, pos, n, False
            nxt = pos + 1 + int(math.floor(exp_pool[ie] * scale))
            ie += 1
            if nxt >= k1[seg]:
                break
            pos = nxt
            u = uni_pool[iu]
            iu += 1
            c = 0 if u < cat[seg, 0] else (1 if u < cat[seg, 1] else (2 if u < cat[seg, 2] else 3))
            t_first = pos * period
            if is_x[seg] and c >= 1:
                t_first += exp_pool[ie] * tau2[seg]
                ie += 1
            if is_x[seg] and c >= 2:
                out_t[n] = t_first
                out_o[n] = orig2[seg]
                out_c[n] = 0 if uni_pool[iu] < split else 1
                iu += 1
                n += 1
            if (not is_x[seg]) or c != 2:
                o = orig1[seg]
                if line[seg, 0] < 1.0:
                    v = uni_pool[iu]
                    iu += 1
                    o += 0 if v < line[seg, 0] else (1 if v < line[seg, 1] else 2)
                out_t[n] = t_first + exp_pool[ie] * tau1[seg]
                ie += 1
                out_o[n] = o
                out_c[n] = 0 if uni_pool[iu] < split else 1
                iu += 1
                n += 1
        seg += 1
        pos = -1
    return seg, pos, n, True


def _run_pulsed(rng, args: tuple, split: float, expected: float, chunk: int = 1 << 21):
    """Drive :func:`_pulsed_kernel` with pools from ``rng`` in chunks of bounded memory."""
    ts, cs, os_ = [], [], []
    seg, pos, done = 0, -1, False
    size = int(min(chunk, expected * 1.1 + 1024))
    while not done:
        exp_pool = rng.standard_exponential(3 * size, dtype=np.float32)
        uni_pool = rng.random(4 * size)
        out_t = np.empty(2 * size)
        out_c = np.empty(2 * size, np.uint8)
        out_o = np.empty(2 * size, np.int32)
        seg, pos, n, done = _pulsed_kernel(seg, pos, *args, split, exp_pool, uni_pool, out_t, out_c, out_o)
        ts.append(out_t[:n])
        cs.append(out_c[:n])
        os_.append(out_o[:n])
        size = chunk
    return np.concatenate(ts), np.concatenate(cs), np.concatenate(os_)


# ---- CW ----------------------------------------------------------------------------------

def _cw_segments(dyn: NCDynamics, domain: int, det: Detectors, band) -> list[tuple]:
    """Emitting segments for the CW kernel: ``(a_ps, b_ps, g, gamma, p_det, origin, l0, l1, rate)``
    with pump and decay rates per ps, detection probability per decay and detected rate per ps."""
    qy = float(dyn.flow["quantum_yield"][domain])
    kx, kt = _domain_emitters(dyn, domain)
    tau_ps = dyn.emitters[kx].lifetime_ns * 1e3 if kx is not None else 0.0
    t0, t1, st, factor = _segments(dyn, domain)
    rows = []
    for a, b, code, fac in zip(t0, t1, st, factor):
        if fac <= 0 or b <= a:
            continue
        if code == STATE_CODES["X"] and kx is not None:
            k, tau = kx, tau_ps
        elif code == STATE_CODES["X*"] and kt is not None:
            k, tau = kt, dyn.emitters[kt].lifetime_ns * 1e3
        else:
            continue
        em = dyn.emitters[k]
        gamma = 1.0 / tau
        # pump rate g reproducing the emitter's photon rate: rate = QY g gamma / (g + gamma)
        q = qy * (dyn.params.trion_brightness if em.state == "X*" else 1.0)
        target = em.rate_hz * 1e-12 / q
        if target >= gamma:
            raise InputError(f"emitter {em.id}: CW rate {em.rate_hz:g}/s exceeds the saturation 1/tau")
        if target <= 0:
            continue
        g = target * gamma / (gamma - target)
        trans, w = _line_table(dyn, k, band)
        p_det = min(1.0, q * det.efficiency * trans * fac)
        if p_det <= 0:
            continue
        lw = np.concatenate([np.cumsum(w), [1.0, 1.0]])[:2]
        rows.append((a * 1e12, b * 1e12, g, gamma, p_det, 8 * k, lw[0], lw[1],
                     p_det * g * gamma / (g + gamma)))
    return rows


@numba.njit(cache=True)
def _cw_kernel(seed, a, b, g, gamma, p_det, orig, line, split, cap):  # pragma: no cover
    """Detected decays of Poisson-pumped two-level emitters: the interval between detected
    decays is Gamma(K, 1/g) + Gamma(K, 1/gamma) with K ~ Geometric(p_det)."""
    np.random.seed(seed)
    times = np.empty(cap, np.float64)
    chans = np.empty(cap, np.uint8)
    origin = np.empty(cap, np.int32)
    n = 0
    for s in range(a.size):
        t = a[s]
        while True:
            k = np.random.geometric(p_det[s])
            t += np.random.gamma(k, 1.0 / g[s]) + np.random.gamma(k, 1.0 / gamma[s])
            if t >= b[s]:
                break
            if n + 1 > cap:
                return times, chans, origin, -1
            v = np.random.random()
            origin[n] = orig[s] + (0 if v < line[s, 0] else (1 if v < line[s, 1] else 2))
            chans[n] = 0 if np.random.random() < split else 1
            times[n] = t
            n += 1
    return times, chans, origin, n


def _run_cw(rng, args: tuple, expected: float):
    cap = int(expected * 1.05 + 12 * math.sqrt(expected + 1) + 1024)
    for _ in range(6):
        seed = int(rng.integers(0, 2**31 - 1))
        t, c, o, n = _cw_kernel(seed, *args, cap)
        if n >= 0:
            return t[:n], c[:n], o[:n]
        cap *= 2
    raise InputError("photon buffer overflow: expected photon count far from the simulated one")


# ---- detectors ----------------------------------------------------------------------------

@numba.njit(cache=True)
def _dead_time_mask(times, channels, dead):  # pragma: no cover - compiled
    keep = np.ones(times.size, np.bool_)
    last = np.full(256, -(2**62), np.int64)
    for i in range(times.size):
        c = channels[i]
        if times[i] - last[c] < dead:
            keep[i] = False
        else:
            last[c] = times[i]
    return keep


def _expected_pulsed(summaries: list, det: Detectors, period_ps: float) -> tuple[float, dict]:
    """Zero-delay over side-peak area (module docstring) from per-domain segment tables."""
    s = det.split_ratio
    d0, d1 = (r * period_ps * 1e-12 for r in det.dark_rate_hz)
    events = []
    for dom, rows in summaries:
        for (start, stop, m, q) in rows:
            events.append((start, stop, dom, m, q))
    if not events:
        return float("nan"), {}
    bps = np.unique(np.concatenate([[e[0] for e in events], [e[1] for e in events]]))
    n_dom = max(e[2] for e in events) + 1
    m_tab = np.zeros((n_dom, bps.size - 1))
    q_tab = np.zeros((n_dom, bps.size - 1))
    for start, stop, dom, m, q in events:
        i0, i1 = np.searchsorted(bps, start), np.searchsorted(bps, stop)
        m_tab[dom, i0:i1] = m
        q_tab[dom, i0:i1] = q
    k = np.diff(bps)
    m_sum = m_tab.sum(axis=0)
    cross = s * m_sum * d1 + (1 - s) * m_sum * d0 + d0 * d1
    a0 = k * (2 * s * (1 - s) * q_tab.sum(axis=0) + s * (1 - s) * (m_sum**2 - (m_tab**2).sum(axis=0)) + cross)
    aside = k * (s * (1 - s) * m_sum**2 + cross)
    num, den = float(a0.sum()), float(aside.sum())
    return (num / den if den > 0 else float("nan")), {"zero_peak_area": num, "side_peak_area": den}


def _expected_cw(summaries: list, det: Detectors, duration_ps: float) -> tuple[float, dict]:
    s = det.split_ratio
    events = []
    for dom, rows in summaries:
        for (start, stop, rate) in rows:
            events.append((start, stop, dom, rate))
    d0, d1 = (r * 1e-12 for r in det.dark_rate_hz)
    bps = np.unique(np.concatenate([[0.0, duration_ps], [e[0] for e in events], [e[1] for e in events]]))
    n_dom = max([e[2] for e in events], default=-1) + 1
    tab = np.zeros((max(n_dom, 1), bps.size - 1))
    for start, stop, dom, rate in events:
        i0, i1 = np.searchsorted(bps, start), np.searchsorted(bps, stop)
        tab[dom, i0:i1] = rate
    dur = np.diff(bps)
    r0 = s * tab.sum(axis=0) + d0
    r1 = (1 - s) * tab.sum(axis=0) + d1
    same = s * (1 - s) * (tab**2).sum(axis=0)
    num = duration_ps * float(np.sum(dur * (r0 * r1 - same)))
    den = float(np.sum(dur * r0)) * float(np.sum(dur * r1))
    return (num / den if den > 0 else float("nan")), {"rate_ch0_hz": float(np.sum(dur * r0) / duration_ps * 1e12),
                                                       "rate_ch1_hz": float(np.sum(dur * r1) / duration_ps * 1e12)}


def simulate_photons(dyn: NCDynamics, *, duration_s: float | None = None,
                     params: PhotonParameters = PhotonParameters(), detectors: Detectors = Detectors(),
                     band_nm: tuple[float, float] | None = None, t3: bool | None = None,
                     seed: SeedLike) -> PhotonSimulation:
    """Simulate the HBT photon stream of an NC.

    Parameters
    ----------
    dyn : NCDynamics
        NC dynamics (trajectories, rates, lifetimes).
    duration_s : float, optional
        Acquisition time (default: the dynamics' duration; must not exceed it).
    params : PhotonParameters
        Excitation mode and multiphoton emission.
    detectors : Detectors
        Efficiency, splitter, jitter, delays, dark counts, afterpulsing, dead time.
    band_nm : (lo, hi), optional
        Ideal band-pass filter (see :func:`line_filter` for one emitter or line).
    t3 : bool, optional
        Produce micro times (T3). Default: True for pulsed, False for CW (CW has no sync).
    seed : int, SeedSequence or Generator
        Random stream (:func:`nanodomains.seeds.rng`); an int seed is recorded in the truth.

    Returns
    -------
    PhotonSimulation
        int64 ``times_ps`` (sorted), uint8 ``channels``, int64 ``microtimes_ps`` (T3),
        and the truth record (expected g2, emitter lifetimes, photon bookkeeping).
    """
    dur, t3 = _check_request(dyn, duration_s, params, band_nm, t3)
    gen = rng(seed)
    pulsed = params.mode == "pulsed"
    dur_ps = dur * 1e12
    if pulsed:
        t_all, ch, origin, summaries = _emit_pulsed(dyn, params, detectors, band_nm, dur_ps, gen)
        g2, book = _expected_pulsed(summaries, detectors, params.sync_period_ps)
    else:
        t_all, ch, origin, summaries = _emit_cw(dyn, detectors, band_nm, dur_ps, gen)
        g2, book = _expected_cw(summaries, detectors, dur_ps)
    t_all, ch, origin = _detect(t_all, ch, origin, params, detectors, dur, gen)
    t_int, micro, ch, origin, resolution = _time_tags(t_all, ch, origin, params, detectors, t3, dur_ps)
    truth = _truth(dyn, origin, g2, book, params=params, detectors=detectors, band_nm=band_nm, t3=t3,
                   duration_s=dur, resolution_ps=resolution, seed=seed)
    return PhotonSimulation(times_ps=t_int, channels=ch, microtimes_ps=micro, resolution_ps=resolution,
                            sync_period_ps=float(params.sync_period_ps) if pulsed else None, duration_s=dur,
                            source=SIMULATION_SOURCE, origin=origin, truth=truth)


def _check_request(dyn: NCDynamics, duration_s, params: PhotonParameters, band_nm, t3) -> tuple[float, bool]:
    """Validate a simulation request; return the duration and the T3 flag."""
    dur = dyn.duration_s if duration_s is None else require_positive("duration_s", duration_s)
    if dur > dyn.duration_s * (1 + 1e-12):
        raise InputError(f"duration_s={dur} exceeds the simulated dynamics ({dyn.duration_s} s)")
    if band_nm is not None:
        lo, hi = (require_positive("band_nm", x) for x in band_nm)
        if not hi > lo:
            raise InputError(f"band_nm must satisfy lo < hi, got {band_nm}")
    pulsed = params.mode == "pulsed"
    if t3 is None:
        t3 = pulsed
    if t3 and not pulsed:
        raise InputError("T3 records need pulsed excitation (a sync); use mode='pulsed' or t3=False")
    if pulsed != (dyn.params.excitation == "pulsed"):
        raise InputError(f"photon mode {params.mode!r} differs from the dynamics' excitation "
                         f"{dyn.params.excitation!r}; simulate the dynamics with the same excitation")
    if pulsed and abs(params.rep_rate_hz - dyn.params.rep_rate_hz) > 1e-6 * dyn.params.rep_rate_hz:
        raise InputError(f"rep_rate_hz {params.rep_rate_hz} differs from the dynamics' {dyn.params.rep_rate_hz}")
    return dur, bool(t3)


def _emit_pulsed(dyn: NCDynamics, params: PhotonParameters, detectors: Detectors, band_nm, dur_ps: float, gen):
    """Detected emitter photons of a pulsed acquisition (before jitter and detector effects).

    Returns float times (ps), channels, origins and the per-domain segment summaries
    ``(start pulse, stop pulse, m, q)`` for the expected g2.
    """
    period = params.sync_period_ps
    k_end = int(math.ceil(dur_ps / period))  # pulses beyond the acquisition are not drawn
    rows, summaries = [], []
    for dom in range(len(dyn.specs)):
        r = [(x[0], min(x[1], k_end)) + x[2:]
             for x in _pulsed_segments(dyn, dom, params, detectors, band_nm, period) if x[0] < k_end]
        summaries.append((dom, [(x[0], x[1], x[13], x[14]) for x in r]))
        rows += r
    tab = np.array([x[:13] for x in rows], dtype=np.float64).reshape(-1, 13)
    expected = float(sum((x[1] - x[0]) * x[13] for x in rows))
    args = (tab[:, 0].astype(np.int64), tab[:, 1].astype(np.int64), tab[:, 2].copy(),
            np.ascontiguousarray(tab[:, 3:6]), tab[:, 6].copy(), tab[:, 7].copy(), tab[:, 8] > 0.5,
            tab[:, 9].astype(np.int32), tab[:, 10].astype(np.int32),
            np.ascontiguousarray(np.column_stack([tab[:, 11], tab[:, 12], np.ones(len(tab))])),
            float(period))
    _check_budget(expected)
    return (*_run_pulsed(gen, args, float(detectors.split_ratio), expected), summaries)


def _emit_cw(dyn: NCDynamics, detectors: Detectors, band_nm, dur_ps: float, gen):
    """Detected emitter photons under CW excitation; summaries ``(start ps, stop ps, rate)``."""
    rows, summaries = [], []
    for dom in range(len(dyn.specs)):
        r = [(x[0], min(x[1], dur_ps)) + x[2:] for x in _cw_segments(dyn, dom, detectors, band_nm)
             if x[0] < dur_ps]
        summaries.append((dom, [(x[0], x[1], x[8]) for x in r]))
        rows += r
    tab = np.array(rows, dtype=np.float64).reshape(-1, 9)
    expected = float(np.sum((tab[:, 1] - tab[:, 0]) * tab[:, 8]))
    args = (tab[:, 0].copy(), tab[:, 1].copy(), tab[:, 2].copy(), tab[:, 3].copy(), tab[:, 4].copy(),
            tab[:, 5].astype(np.int32),
            np.ascontiguousarray(np.column_stack([tab[:, 6], tab[:, 7], np.ones(len(tab))])),
            float(detectors.split_ratio))
    _check_budget(expected)
    return (*_run_cw(gen, args, expected), summaries)


def _detect(t_all, ch, origin, params: PhotonParameters, detectors: Detectors, dur: float, gen):
    """Laser pulse width and detector jitter, dark counts and afterpulses."""
    # one Gaussian per photon (the IRF of its channel)
    pulse_sigma = params.pulse_sigma_ps if params.mode == "pulsed" else 0.0
    sig = np.hypot(pulse_sigma, np.asarray(detectors.jitter_sigma_ps, float))
    noise = gen.standard_normal(t_all.size, dtype=np.float32)
    _add_jitter(t_all, ch, noise, np.asarray(detectors.delay_ps, float), sig)
    # dark counts (uniform in time) and afterpulses (same channel, exponential delay)
    extra_t, extra_c, extra_o = [], [], []
    for c in (0, 1):
        k = gen.poisson(detectors.dark_rate_hz[c] * dur)
        extra_t.append(gen.random(k) * dur * 1e12)
        extra_c.append(np.full(k, c, np.uint8))
        extra_o.append(np.full(k, ORIGIN_DARK, np.int32))
    if detectors.afterpulse_probability > 0:
        src_t = np.concatenate([t_all] + extra_t)
        src_c = np.concatenate([ch] + extra_c)
        ap = gen.random(src_t.size) < detectors.afterpulse_probability
        extra_t.append(src_t[ap] + gen.exponential(detectors.afterpulse_mean_ps, int(ap.sum())))
        extra_c.append(src_c[ap])
        extra_o.append(np.full(int(ap.sum()), ORIGIN_AFTERPULSE, np.int32))
    return np.concatenate([t_all] + extra_t), np.concatenate([ch] + extra_c), np.concatenate([origin] + extra_o)


def _time_tags(t_all, ch, origin, params: PhotonParameters, detectors: Detectors, t3: bool, dur_ps: float):
    """Integer time tags (T3 grid or 1 ps), sorted, cut to the acquisition, after dead time.

    Returns ``(times_ps, microtimes_ps or None, channels, origin, resolution_ps)``.
    """
    micro = None
    if t3:
        res = params.resolution_ps()
        t_int, micro = _quantize_t3(t_all, np.int64(params.sync_period_ps), np.int64(res))
        resolution = float(res)
    else:
        t_int = np.rint(t_all).astype(np.int64)
        resolution = 1.0
    order = np.argsort(t_int, kind="stable")
    t_int = t_int[order]
    lo, hi = np.searchsorted(t_int, [0, int(round(dur_ps))])
    order = order[lo:hi]
    t_int = t_int[lo:hi]
    ch, origin = ch[order], origin[order]
    if micro is not None:
        micro = micro[order]
    if detectors.dead_time_ps > 0:
        k = _dead_time_mask(t_int, ch, np.int64(round(detectors.dead_time_ps)))
        t_int, ch, origin = t_int[k], ch[k], origin[k]
        if micro is not None:
            micro = micro[k]
    return t_int, micro, ch, origin, resolution


def _truth(dyn: NCDynamics, origin: np.ndarray, g2: float, book: dict, *, params: PhotonParameters,
           detectors: Detectors, band_nm, t3: bool, duration_s: float, resolution_ps: float, seed) -> PhotonTruth:
    """The truth record: expected g2, emitters' photons and lifetimes, photon bookkeeping."""
    pulsed = params.mode == "pulsed"
    per_emitter, n_xx, n_dark, n_after = _origin_counts(origin, len(dyn.emitters))
    how = ("zero-delay over side-peak area of the model (pulsed)" if pulsed
           else "coincidence rate over the product of the channel rates (CW)")
    g2_truth = G2Record(origin="truth", g2_0=Measured(value=g2, stderr=0.0), mode=params.mode, channels=(0, 1),
                        period_ns=params.sync_period_ps / 1000.0 if pulsed else None, duration_s=duration_s,
                        settings={"expected_g2_zero": how, "bookkeeping": book})
    emitters = tuple(PhotonEmitterTruth(id=em.id, index=k, n_photons=int(n), lifetime=_lifetime_truth(em))
                     for k, (em, n) in enumerate(zip(dyn.emitters, per_emitter)))
    pulse_sigma = params.pulse_sigma_ps if pulsed else 0.0
    return PhotonTruth(
        g2=g2_truth, emitters=emitters, mode=params.mode, t3=t3, duration_s=duration_s,
        sync_period_ps=float(params.sync_period_ps) if pulsed else None, resolution_ps=resolution_ps,
        band_nm=None if band_nm is None else tuple(float(x) for x in band_nm),
        irf_sigma_ps=tuple(math.hypot(pulse_sigma, j) for j in detectors.jitter_sigma_ps),
        irf_center_ps=tuple(float(d) for d in detectors.delay_ps),
        n_dark=n_dark, n_afterpulse=n_after, n_biexciton=n_xx,
        settings={"parameters": asdict(params), "detectors": asdict(detectors),
                  "seed": int(seed) if isinstance(seed, (int, np.integer)) else None})


def _lifetime_truth(em) -> LifetimeRecord:
    """One emitter's lifetime (one exponential, standard error 0) as a lifetime record."""
    tau = Measured(value=em.lifetime_ns, stderr=0.0)
    return LifetimeRecord(origin="truth", n_exp=1, components=(LifetimeComponent(tau_ns=tau, fraction=1.0),),
                          tau_mean_ns=tau, source=f"emitter {em.id}")


MAX_PHOTONS = 300_000_000


def _check_budget(expected: float) -> None:
    if expected > MAX_PHOTONS:
        raise InputError(f"the simulation would detect ~{expected:.3g} photons (> {MAX_PHOTONS:.0e}); "
                         "shorten duration_s or lower the detection efficiency / power")


def _origin_counts(origin: np.ndarray, n_emitters: int):
    """Photons per emitter (fine-structure or trion lines), biexciton photons, darks, afterpulses."""
    codes = np.bincount(origin + 8, minlength=8 * (n_emitters + 1))
    per_line = codes[8:8 + 8 * n_emitters].reshape(n_emitters, 8)
    return per_line[:, :7].sum(axis=1), int(per_line[:, 7].sum()), int(codes[8 + ORIGIN_DARK]), \
        int(codes[8 + ORIGIN_AFTERPULSE])


@numba.njit(cache=True)
def _add_jitter(t, ch, noise, delay, sig):  # pragma: no cover - compiled
    for i in range(t.size):
        c = ch[i]
        t[i] += delay[c] + sig[c] * noise[i]


@numba.njit(cache=True)
def _quantize_t3(t, period, res):  # pragma: no cover - compiled
    """Integer arrival times on the T3 grid: ``n_sync period + floor(micro/res) res``."""
    t_int = np.empty(t.size, np.int64)
    micro = np.empty(t.size, np.int64)
    for i in range(t.size):
        ti = np.int64(math.floor(t[i]))
        ns = ti // period
        m = ((ti - ns * period) // res) * res
        micro[i] = m
        t_int[i] = ns * period + m
    return t_int, micro

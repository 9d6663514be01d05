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

File formats
------------
``write_ptu`` writes PicoQuant unified TTTR files (magic ``PQTTTR``, tag header of
48-byte tag records: 32-byte ident, int32 index, uint32 type code, 8-byte value or
length + payload; PicoQuant, "PTU file format demos",
github.com/PicoQuant/PicoQuant-Time-Tagged-File-Format-Demos) with HydraHarp v2
records (32 bit, little endian)::

    T2: special(1) | channel(6) | time tag(25)            wrap 2^25 units of 1 ps
    T3: special(1) | channel(6) | dtime(15) | nsync(10)   wrap 1024 syncs

Overflow records (special = 1, channel = 63) carry the number of wraps they stand for
(the format allows 1 .. 2^25-1 in T2 and 1 .. 1023 in T3; HydraHarp v2 firmware writes
small counts). T2 records here carry at most 127 wraps, because ptufile 2026.2 decodes
only the low 7 bits of a T2 overflow count (PicoQuant's demo reads all 25); longer gaps
get several overflow records, which every reader sums correctly.
``write_photons_npz`` writes the project npz (int64 ``times_ps``, uint8 ``channels``,
optional int64 ``microtimes_ps``, scalars ``resolution_ps``, ``duration_s``,
``sync_period_ps`` (pulsed only), ``source``) read by
:mod:`nanodomains.spectroscopy.photons_io`.
"""

from __future__ import annotations

import math
import os
import struct
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import numba
import numpy as np

from nanodomains import __version__, materials
from nanodomains.errors import InputError, require_finite, require_positive
from nanodomains.optics.emitters import STATE_CODES, NCDynamics, merge_piecewise as _merge
from nanodomains.errors import require_in_range

__all__ = [
    "PhotonParameters",
    "Detectors",
    "PhotonSimulation",
    "simulate_photons",
    "line_filter",
    "expected_g2_zero",
    "write_ptu",
    "write_photons_npz",
    "encode_hydraharp_t2",
    "encode_hydraharp_t3",
]

RECTYPE_HH2_T2 = 0x01010204
RECTYPE_HH2_T3 = 0x01010304
T2_WRAP = 1 << 25
T3_WRAP = 1 << 10
# Wraps per overflow record. The format allows 2^25 - 1 (T2) and 1023 (T3), but ptufile
# (2026.2) decodes only the low 7 bits of a HydraHarp v2 T2 overflow count, so T2 records
# carry at most 127 wraps; a longer gap gets several records (valid for every reader).
T2_MAX_WRAPS_PER_RECORD = 127
T3_MAX_WRAPS_PER_RECORD = 1023
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


@dataclass
class PhotonSimulation:
    """Simulated photon stream with its truth.

    ``origin`` per photon: ``8 e + l`` for line l of emitter e (``l = 7``: biexciton
    photon of emitter e's domain), -1 dark count, -2 afterpulse.
    """

    times_ps: np.ndarray
    channels: np.ndarray
    microtimes_ps: np.ndarray | None
    origin: np.ndarray
    resolution_ps: float
    sync_period_ps: float | None
    duration_s: float
    expected_g2_zero: float
    truth: dict = field(default_factory=dict)

    @property
    def n_photons(self) -> int:
        return int(self.times_ps.size)


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
    breaks, vals = _merge(*parts)
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


def expected_g2_zero(sim: PhotonSimulation) -> float:
    """The model's expected g2(0) of a simulated stream (see the module docstring)."""
    return sim.expected_g2_zero


def simulate_photons(dyn: NCDynamics, *, duration_s: float | None = None,
                     params: PhotonParameters = PhotonParameters(), detectors: Detectors = Detectors(),
                     band_nm: tuple[float, float] | None = None, t3: bool | None = None,
                     seed=None) -> PhotonSimulation:
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
    seed : int or Generator

    Returns
    -------
    PhotonSimulation
        int64 ``times_ps`` (sorted), uint8 ``channels``, int64 ``microtimes_ps`` (T3),
        the expected g2(0) and a truth dict.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
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
    period = params.sync_period_ps
    dur_ps = dur * 1e12
    summaries = []
    if pulsed:
        # pulses beyond the acquisition are not drawn
        k_end = int(math.ceil(dur_ps / period))
        rows = []
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
        t_all, ch, o_all = _run_pulsed(rng, args, float(detectors.split_ratio), expected)
    else:
        rows = []
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
        t_all, ch, o_all = _run_cw(rng, args, expected)
    # laser pulse width and detector jitter: one Gaussian per photon (the IRF of its channel)
    sig = np.hypot(params.pulse_sigma_ps if pulsed else 0.0, np.asarray(detectors.jitter_sigma_ps, float))
    noise = rng.standard_normal(t_all.size, dtype=np.float32)
    _add_jitter(t_all, ch, noise, np.asarray(detectors.delay_ps, float), sig)
    # dark counts (uniform in time) and afterpulses (same channel, exponential delay)
    extra_t, extra_c, extra_o = [], [], []
    for c in (0, 1):
        k = rng.poisson(detectors.dark_rate_hz[c] * dur)
        extra_t.append(rng.random(k) * dur_ps)
        extra_c.append(np.full(k, c, np.uint8))
        extra_o.append(np.full(k, ORIGIN_DARK, np.int32))
    if detectors.afterpulse_probability > 0:
        src_t = np.concatenate([t_all] + extra_t)
        src_c = np.concatenate([ch] + extra_c)
        ap = rng.random(src_t.size) < detectors.afterpulse_probability
        extra_t.append(src_t[ap] + rng.exponential(detectors.afterpulse_mean_ps, int(ap.sum())))
        extra_c.append(src_c[ap])
        extra_o.append(np.full(int(ap.sum()), ORIGIN_AFTERPULSE, np.int32))
    t_all = np.concatenate([t_all] + extra_t)
    ch = np.concatenate([ch] + extra_c)
    o_all = np.concatenate([o_all] + extra_o)
    micro = None
    if t3:
        res = params.resolution_ps()
        t_int, micro = _quantize_t3(t_all, np.int64(period), np.int64(res))
        resolution = float(res)
    else:
        t_int = np.rint(t_all).astype(np.int64)
        resolution = 1.0
    del t_all
    order = np.argsort(t_int, kind="stable")
    t_int = t_int[order]
    lo, hi = np.searchsorted(t_int, [0, int(round(dur_ps))])
    order = order[lo:hi]
    t_int = t_int[lo:hi]
    ch, o_all = ch[order], o_all[order]
    if micro is not None:
        micro = micro[order]
    if detectors.dead_time_ps > 0:
        k = _dead_time_mask(t_int, ch, np.int64(round(detectors.dead_time_ps)))
        t_int, ch, o_all = t_int[k], ch[k], o_all[k]
        if micro is not None:
            micro = micro[k]
    per_emitter, n_xx, n_dark, n_after = _origin_counts(o_all, len(dyn.emitters))
    if pulsed:
        g2, book = _expected_pulsed(summaries, detectors, period)
    else:
        g2, book = _expected_cw(summaries, detectors, dur_ps)
    truth = {
        "schema": "nanodomains.optics.photons.truth/1",
        "mode": params.mode, "t3": bool(t3), "duration_s": dur,
        "sync_period_ps": float(period) if pulsed else None, "resolution_ps": resolution,
        "expected_g2_zero": g2, "g2_bookkeeping": book,
        "band_nm": list(band_nm) if band_nm is not None else None,
        "irf_sigma_ps": [math.hypot(params.pulse_sigma_ps if pulsed else 0.0, j) for j in detectors.jitter_sigma_ps],
        "irf_center_ps": list(detectors.delay_ps),
        "emitters": [{"id": em.id, "index": k, "lifetime_ns": em.lifetime_ns, "n_photons": int(c)}
                     for k, (em, c) in enumerate(zip(dyn.emitters, per_emitter))],
        "n_dark": n_dark, "n_afterpulse": n_after, "n_biexciton": n_xx,
        "parameters": asdict(params), "detectors": asdict(detectors),
        "seed": seed if isinstance(seed, (int, np.integer)) else None,
    }
    return PhotonSimulation(times_ps=t_int, channels=ch, microtimes_ps=micro, origin=o_all,
                            resolution_ps=resolution, sync_period_ps=float(period) if pulsed else None,
                            duration_s=dur, expected_g2_zero=g2, truth=truth)


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


# ---- writers --------------------------------------------------------------------------------

def _overflow_runs(wraps: np.ndarray, max_per_record: int):
    """Per photon, the overflow records to insert before it: counts and their values."""
    delta = np.diff(np.concatenate([[0], wraps]))
    n_rec = -(-delta // max_per_record)  # ceil
    return delta, n_rec


def _encode(times_units: np.ndarray, channels: np.ndarray, payload_bits: int, make_photon,
            end_wraps: int | None) -> np.ndarray:
    """Interleave photon records with HydraHarp-v2 overflow records (counted wraps)."""
    wraps = times_units >> payload_bits
    max_per = T2_MAX_WRAPS_PER_RECORD if payload_bits == 25 else T3_MAX_WRAPS_PER_RECORD
    delta, n_rec = _overflow_runs(wraps, max_per)
    total_ovf = int(n_rec.sum())
    n = times_units.size
    out = np.empty(n + total_ovf, np.uint32)
    # position of each photon in the output
    pos = np.arange(n) + np.cumsum(n_rec)
    out[pos] = make_photon(times_units, channels)
    if total_ovf:
        ovf_pos = np.ones(out.size, bool)
        ovf_pos[pos] = False
        # values: for each photon with n_rec > 0, (n_rec - 1) x max_per then the remainder
        reps = np.repeat(np.arange(n), n_rec)
        first = np.repeat(np.cumsum(n_rec) - n_rec, n_rec)
        k_in_run = np.arange(total_ovf) - first
        last = k_in_run == n_rec[reps] - 1
        vals = np.where(last, delta[reps] - (n_rec[reps] - 1) * max_per, max_per).astype(np.uint32)
        out[ovf_pos] = np.uint32(0xFE000000) | vals
    tail = []
    if end_wraps is not None:
        extra = int(end_wraps) - int(wraps[-1] if n else 0)
        while extra > 0:
            v = min(extra, max_per)
            tail.append(np.uint32(0xFE000000) | np.uint32(v))
            extra -= v
    if tail:
        out = np.concatenate([out, np.array(tail, np.uint32)])
    return out


def encode_hydraharp_t2(times_ps: np.ndarray, channels: np.ndarray, *, end_ps: int | None = None) -> np.ndarray:
    """HydraHarp v2 T2 records (1 ps units) for sorted times and channels 0..62."""
    t = np.asarray(times_ps, np.int64)
    c = np.asarray(channels, np.int64)
    _check_stream(t, c)

    def photon(tu, ch):
        return ((ch.astype(np.uint32) << np.uint32(25)) | (tu & (T2_WRAP - 1)).astype(np.uint32)).astype(np.uint32)

    return _encode(t, c, 25, photon, None if end_ps is None else int(end_ps) >> 25)


def encode_hydraharp_t3(times_ps: np.ndarray, channels: np.ndarray, microtimes_ps: np.ndarray,
                        sync_period_ps: int, resolution_ps: int, *, end_ps: int | None = None) -> np.ndarray:
    """HydraHarp v2 T3 records; requires ``times = nsync T + micro`` with ``micro = dtime r``."""
    t = np.asarray(times_ps, np.int64)
    c = np.asarray(channels, np.int64)
    m = np.asarray(microtimes_ps, np.int64)
    _check_stream(t, c)
    period, res = int(sync_period_ps), int(resolution_ps)
    nsync = (t - m) // period
    if np.any(m < 0) or np.any(m >= period) or np.any(m % res) or np.any(nsync * period + m != t):
        raise InputError("T3 stream must satisfy times = nsync * sync_period + microtime with "
                         "0 <= microtime < sync_period on the resolution grid")
    dtime = m // res
    if np.any(dtime >= (1 << 15)):
        raise InputError(f"microtimes need more than 15 bits at {res} ps resolution")
    if nsync.size > 1 and np.any(np.diff(nsync) < 0):
        raise InputError("T3 records must be ordered by sync number")

    def photon(ns, ch, dt=dtime):
        return ((ch.astype(np.uint32) << np.uint32(25)) | (dt.astype(np.uint32) << np.uint32(10))
                | (ns & (T3_WRAP - 1)).astype(np.uint32)).astype(np.uint32)

    return _encode(nsync, c, 10, photon, None if end_ps is None else (int(end_ps) // period) >> 10)


def _check_stream(t: np.ndarray, c: np.ndarray) -> None:
    if t.shape != c.shape or t.ndim != 1:
        raise InputError("times and channels must be 1-D arrays of equal length")
    if t.size and (t.min() < 0 or np.any(np.diff(t) < 0)):
        raise InputError("times must be non-negative and sorted")
    if c.size and (c.min() < 0 or c.max() > 62):
        raise InputError("HydraHarp channels must lie in 0..62")


def _tag(ident: str, value, index: int = -1) -> bytes:
    if value is None:
        typ, payload = 0xFFFF0008, b"\0" * 8
    elif isinstance(value, bool):
        typ, payload = 0x00000008, struct.pack("<q", int(value))
    elif isinstance(value, (int, np.integer)):
        typ, payload = 0x10000008, struct.pack("<q", int(value))
    elif isinstance(value, float):
        typ, payload = 0x20000008, struct.pack("<d", value)
    elif isinstance(value, datetime):
        days = (value - datetime(1899, 12, 30)) / timedelta(days=1)
        typ, payload = 0x21000008, struct.pack("<d", days)
    elif isinstance(value, str):
        raw = value.encode("windows-1252", errors="replace") + b"\0"
        raw += b"\0" * (-len(raw) % 8)
        typ, payload = 0x4001FFFF, struct.pack("<q", len(raw)) + raw
    else:
        raise InputError(f"PTU tag {ident}: unsupported value type {type(value).__name__}")
    name = ident.encode("ascii")
    if len(name) > 32:
        raise InputError(f"PTU tag identifier {ident!r} longer than 32 characters")
    return struct.pack("<32siI", name, index, typ) + payload


def write_ptu(sim: PhotonSimulation, path, *, mode: Literal["T2", "T3"] | None = None,
              comment: str = "nanodomains simulated photon stream") -> Path:
    """Write a PicoQuant PTU file (HydraHarp v2 T2 or T3 records) atomically.

    Parameters
    ----------
    sim : PhotonSimulation
        Stream to write; T3 needs micro times (pulsed simulation with ``t3=True``).
    path : path-like
        Output ``.ptu`` file.
    mode : {"T2", "T3"}, optional
        Default: T3 when the stream has micro times, else T2.
    """
    p = Path(path)
    if p.suffix.lower() != ".ptu":
        raise InputError(f"{p}: PTU files must end in .ptu")
    if mode is None:
        mode = "T3" if sim.microtimes_ps is not None else "T2"
    if mode not in ("T2", "T3"):
        raise InputError(f"mode must be 'T2' or 'T3', got {mode!r}")
    end_ps = int(round(sim.duration_s * 1e12))
    if mode == "T3":
        if sim.microtimes_ps is None or sim.sync_period_ps is None:
            raise InputError("T3 PTU needs a pulsed stream with micro times")
        period, res = int(sim.sync_period_ps), int(sim.resolution_ps)
        records = encode_hydraharp_t3(sim.times_ps, sim.channels, sim.microtimes_ps, period, res, end_ps=end_ps)
        rectype, glob_res, meas_res = RECTYPE_HH2_T3, period * 1e-12, res * 1e-12
        sync_rate = int(round(1e12 / period))
    else:
        records = encode_hydraharp_t2(sim.times_ps, sim.channels, end_ps=end_ps)
        rectype, glob_res, meas_res = RECTYPE_HH2_T2, 1e-12, 1e-12
        sync_rate = int(round(1e12 / sim.sync_period_ps)) if sim.sync_period_ps else 0
    tags = [
        ("File_GUID", "{" + str(uuid.uuid4()).upper() + "}"),
        ("File_CreatingTime", datetime.now().replace(microsecond=0)),
        ("File_Comment", comment),
        ("CreatorSW_Name", "nanodomains"),
        ("CreatorSW_Version", __version__),
        ("Measurement_Mode", 3 if mode == "T3" else 2),
        ("Measurement_SubMode", 0),
        ("TTResult_StopReason", 0),
        ("TTResultFormat_TTTRRecType", rectype),
        ("TTResultFormat_BitsPerRecord", 32),
        ("MeasDesc_BinningFactor", int(round(meas_res * 1e12))),
        ("MeasDesc_Offset", 0),
        ("MeasDesc_AcquisitionTime", int(round(sim.duration_s * 1000))),
        ("HW_Type", "HydraHarp"),
        ("HW_Version", "2.0"),
        ("HW_InpChannels", int(sim.channels.max()) + 2 if sim.channels.size else 3),
        ("HW_BaseResolution", 1e-12),
        ("MeasDesc_Resolution", meas_res),
        ("MeasDesc_GlobalResolution", glob_res),
        ("TTResult_SyncRate", sync_rate),
        ("TTResult_NumberOfRecords", int(records.size)),
    ]
    header = b"PQTTTR\0\0" + b"1.0.00\0\0" + b"".join(_tag(k, v) for k, v in tags) + _tag("Header_End", None)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(header)
        fh.write(records.astype("<u4").tobytes())
    os.replace(tmp, p)
    return p


def write_photons_npz(sim: PhotonSimulation, path, *, compressed: bool = True) -> Path:
    """Write the project npz (field names of :mod:`nanodomains.spectroscopy.photons_io`)."""
    p = Path(path)
    if p.suffix.lower() != ".npz":
        raise InputError(f"{p}: photon streams are written as .npz")
    arrays = {
        "times_ps": np.asarray(sim.times_ps, np.int64),
        "channels": np.asarray(sim.channels, np.uint8),
        "resolution_ps": np.float64(sim.resolution_ps),
        "duration_s": np.float64(sim.duration_s),
        "source": np.str_("nanodomains.optics.photons simulation"),
    }
    if sim.microtimes_ps is not None:
        arrays["microtimes_ps"] = np.asarray(sim.microtimes_ps, np.int64)
    if sim.sync_period_ps is not None:
        arrays["sync_period_ps"] = np.float64(sim.sync_period_ps)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp.npz")
    (np.savez_compressed if compressed else np.savez)(tmp, **arrays)
    os.replace(tmp, p)
    return p

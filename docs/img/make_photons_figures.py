"""Figures for docs/photons.md: python docs/img/make_photons_figures.py

Left: the processed g2 of a real CsPbBr3 NC (AMOLF, CC0) analysed by peak areas.
Middle: g2 of a synthetic pulsed HBT stream with a known two-photon probability
(expected g2(0) = 0.10). Right: IRF reconvolution fit of a real decay (Full_SMS data).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nanodomains.spectroscopy.g2 import compute_g2, g2_from_peak_areas, plot_g2, read_g2_text  # noqa: E402
from nanodomains.spectroscopy.lifetime import fit_reconvolution  # noqa: E402
from nanodomains.spectroscopy.photons_io import read_decay  # noqa: E402
from nanodomains.timetags import PhotonStream  # noqa: E402

here = Path(__file__).parent
real = Path(__file__).resolve().parents[3] / "shared" / "realdata"

# real processed g2
tau, counts, _ = read_g2_text(real / "photons" / "amolf_cspbbr3_dot08_g2.txt")
g_real = g2_from_peak_areas(tau, counts)

# synthetic pulsed single emitter: p(0, 1, 2) = (0.05, 0.90, 0.05) per pulse -> g2(0) = 0.10
rng = np.random.default_rng(1)
period_ps, n_pulses = 12_500, 2_000_000
n_per = rng.choice(3, size=n_pulses, p=[0.05, 0.90, 0.05])
pulse = np.repeat(np.arange(n_pulses, dtype=np.int64), n_per)
pulse = pulse[rng.random(pulse.size) < 0.1]  # detection efficiency 10 %
delay = np.minimum(np.rint(rng.exponential(1000.0, pulse.size)).astype(np.int64), period_ps - 1)
t = pulse * period_ps + delay
order = np.argsort(t, kind="stable")
stream = PhotonStream(
    t[order],
    (rng.random(t.size) < 0.5).astype(np.uint8)[order],
    delay[order],
    resolution_ps=1.0,
    sync_period_ps=float(period_ps),
    duration_s=n_pulses * period_ps * 1e-12,
    source="synthetic",
)
g_syn = compute_g2(stream, mode="pulsed", bin_ns=0.1, window_ns=50)

# real decay with its IRF
fit = fit_reconvolution(read_decay(real / "decay" / "Decaytrace1"), read_decay(real / "decay" / "IRF_data.txt"), n_exp=2)

fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
plot_g2(g_real, ax=axes[0])
axes[0].set_title(f"CsPbBr3 NC (AMOLF): g2(0) = {g_real.g2_0.value:.3f} ± {g_real.g2_0.stderr:.3f}", fontsize=9)
axes[0].set_ylabel("g2 (side-peak level = 1)")
plot_g2(g_syn, ax=axes[1])
axes[1].set_title(f"synthetic, truth 0.10: g2(0) = {g_syn.g2_0.value:.3f} ± {g_syn.g2_0.stderr:.3f}", fontsize=9)
ax = axes[2]
k = 10  # display only: sum 10 bins (40 ps); the fit used the 4 ps bins
m = fit.counts.size // k * k
t_disp = fit.time_ns[:m].reshape(-1, k).mean(1)
n_disp = fit.counts[:m].reshape(-1, k).sum(1)
mod = fit.model[:m].reshape(-1, k)
ok = np.all(np.isfinite(mod), axis=1)
ax.semilogy(t_disp, np.maximum(n_disp, 0.5), ".", ms=2.5, color="0.5", label="decay (40 ps bins)")
ax.semilogy(t_disp[ok], mod[ok].sum(1), color="C3", lw=1, label="2-exp reconvolution")
ax.set_ylim(0.5, n_disp.max() * 2)
ax.set(xlabel="time (ns)", ylabel="counts per 40 ps")
taus = ", ".join(f"{t.value:.2f}±{t.stderr:.2f}" for t in fit.tau_ns)
ax.set_title(f"tau = {taus} ns, reduced deviance {fit.reduced_deviance:.2f}", fontsize=9)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(here / "photons_g2_lifetime.png", dpi=110)
print(f"real g2(0) {g_real.g2_0.value:.3f} +- {g_real.g2_0.stderr:.3f}, period {g_real.period_ns:.2f} ns")
print(f"synthetic g2(0) {g_syn.g2_0.value:.3f} +- {g_syn.g2_0.stderr:.3f} (truth 0.100)")
print(f"decay: tau {[str(t) for t in fit.tau_ns]} ns, fractions {[c.fraction for c in fit.components]}, "
      f"red. dev {fit.reduced_deviance:.3f}")

"""Figures for docs/optics.md: python docs/img/make_optics_figures.py

optics_levels.png: room-temperature size series of CsPbBr3 and CsPbI3 cubes against
published PL positions; 4 K emission of seed-like domains (CsPbBr0.81I2.19 ..
CsPbBr1.56I1.44) against the seed's 540-690 nm window; bright-exciton FSS scale
versus size with the seed's two values.
optics_fig5c.png, optics_fig5d.png: preset movies rendered like the seed's Fig. 5.
optics_g2.png: pulsed g2 of a simulated fig5d stream (all sets, unfiltered) computed by
brute-force pair counting, with the model's expected g2(0).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nanodomains import materials  # noqa: E402
from nanodomains.optics import levels as lv  # noqa: E402
from nanodomains.optics import photons as ph  # noqa: E402
from nanodomains.optics import presets as pr  # noqa: E402

here = Path(__file__).parent

# ---- levels ---------------------------------------------------------------------------
fig, ax = plt.subplots(1, 3, figsize=(12, 3.6), constrained_layout=True)
sizes = np.linspace(3.5, 20, 60)
for f, name, color in ((1.0, "CsPbBr3", "tab:green"), (0.0, "CsPbI3", "tab:red")):
    lam = [lv.exciton_state(f, s, "RT").wavelength_nm for s in sizes]
    ax[0].plot(sizes, lam, color=color, label=f"{name} (model, RT)")
ax[0].errorbar([4, 12], [460, 512], yerr=15, fmt="o", color="tab:green", capsize=3,
               label="CsPbBr3, Protesescu 2015 (+-15 nm)")
ax[0].errorbar([10], [687.5], xerr=2, yerr=15, fmt="s", color="tab:red", capsize=3,
               label="CsPbI3 8-12 nm, Protesescu 2015")
ax[0].set_xlabel("cube edge (nm)")
ax[0].set_ylabel("PL wavelength (nm)")
ax[0].legend(fontsize=7)

f_lo, f_hi = materials.parse_formula("CsPbBr0.81I2.19"), materials.parse_formula("CsPbBr1.56I1.44")
fr = np.linspace(0.15, 0.75, 61)
for edges, ls in (((4, 15, 15), "-"), ((6, 6, 10), "--"), ((10, 10, 10), ":"), ((4, 4, 4), "-.")):
    lam = [lv.exciton_state(f, edges, "4K").wavelength_nm for f in fr]
    ax[1].plot(fr, lam, ls, color="k", lw=1, label=f"domain {edges[0]}x{edges[1]}x{edges[2]} nm")
ax[1].axhspan(540, 690, color="tab:blue", alpha=0.12, label="seed's 540-690 nm")
ax[1].axvspan(f_lo, f_hi, color="tab:orange", alpha=0.15, label="seed's R1..R2 compositions")
ax[1].set_xlabel("Br fraction f")
ax[1].set_ylabel("4 K exciton (nm)")
ax[1].legend(fontsize=7)

s2 = np.linspace(6, 25, 60)
ax[2].plot(s2, [lv.fss_scale_uev(s, 0.4) for s in s2], color="k", label="F(L): exchange model, f = 0.4")
ax[2].axhspan(300, 1500, color="tab:blue", alpha=0.12, label="0.3-1.5 meV (single NCs)")
ax[2].axvspan(10, 20, color="tab:orange", alpha=0.15, label="seed NCs 10-20 nm")
ax[2].plot([14.14, 12.42], [677, 878], "o", color="tab:purple", label="seed doublet / triplet")
ax[2].set_xlabel("effective size (nm)")
ax[2].set_ylabel("FSS scale (ueV)")
ax[2].legend(fontsize=7)
fig.savefig(here / "optics_levels.png", dpi=110)
plt.close(fig)

# ---- preset movies -------------------------------------------------------------------------
for name in ("fig5c", "fig5d"):
    movie, truth = pr.simulate_preset_movie(name, seed=1)
    f = pr.plot_preset(movie, truth, path=here / f"optics_{name}.png")
    plt.close(f)

# ---- simulated g2 ------------------------------------------------------------------------
dyn = pr.preset("fig5d").dynamics
sim = ph.simulate_photons(dyn, duration_s=20.0, seed=3, detectors=ph.Detectors(efficiency=0.5))
period = int(sim.sync_period_ps)
a = sim.times_ps[sim.channels == 0]
b = sim.times_ps[sim.channels == 1]
w = 5 * period + period // 2  # whole side peaks up to |m| = 5
lo, hi = np.searchsorted(b, a - w), np.searchsorted(b, a + w)
n = hi - lo
i = np.repeat(np.arange(a.size), n)
j = np.arange(i.size) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)
tau_ns = (b[j] - a[i]) / 1000.0
counts, edges = np.histogram(tau_ns, bins=np.arange(-w / 1000, w / 1000 + 0.5, 0.5))
k = np.rint((b[j] - a[i]) / period).astype(int)
areas = np.bincount(k + 5, minlength=11)
g2 = areas[5] / np.delete(areas, 5).mean()
fig, axg = plt.subplots(figsize=(6, 3), constrained_layout=True)
axg.step(0.5 * (edges[:-1] + edges[1:]), counts, where="mid", color="k", lw=0.8)
axg.set_xlabel("delay (ns)")
axg.set_ylabel("coincidences / 0.5 ns")
axg.set_title(f"fig5d, 20 s, all sets: g2(0) = {g2:.3f} (pairs), model {sim.expected_g2_zero:.3f}", fontsize=9)
fig.savefig(here / "optics_g2.png", dpi=110)
plt.close(fig)
print(f"g2(0) brute force {g2:.4f}, expected {sim.expected_g2_zero:.4f}, photons {sim.n_photons}")

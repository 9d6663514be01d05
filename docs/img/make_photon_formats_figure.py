"""Figure for docs/photon_formats.md: python docs/img/make_photon_formats_figure.py

The channel-0 decay of the Becker & Hickl SPC-132 sample file (tttrlib test data,
BSD-3-Clause) fitted by `photons lifetime` defaults: the tail-fit start from the
documented rule (dashed line), the one-exponential fit with its structured residuals,
and the two-exponential fit on the same bins reported beside it (title).
Writes docs/img/photons_spc_lifetime.png (a few seconds).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from nanodomains.spectroscopy.lifetime import fit_lifetime, load_decay, plot_lifetime  # noqa: E402

here = Path(__file__).parent
real = Path(__file__).resolve().parents[3] / "shared" / "realdata"

decay = load_decay(real / "photons" / "tttrlib_bh_spc132_smDNA_m000.spc", channel=0)
fit = fit_lifetime(decay)
fig = plot_lifetime(fit)
fig.axes[0].set_xlim(0, 13.5)
fig.savefig(here / "photons_spc_lifetime.png", dpi=110)
print("\n".join(fit.warnings))

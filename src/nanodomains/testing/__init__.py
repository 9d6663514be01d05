"""Synthetic data with known truth, for tests, examples and bug reports.

The builders the test suite uses, shipped with the package (as atomap ships
``atomap.dummy_data``) so that a user can reproduce a test case, try an analysis on
data whose answer is known, or attach a minimal example to a bug report.

Submodules
----------
:mod:`nanodomains.testing.stem`
    Analytic ADF-STEM images of a [100] perovskite lattice (Gaussian columns, optional
    RP shift and strain, Poisson noise) and the cached forward-model cases (simulated
    NC images and their analyses) of the STEM acceptance tests.
:mod:`nanodomains.testing.pl`
    4 K PL spectral movies with per-frame truth: fine-structure lines, blinking,
    spectral diffusion, cosmic rays.

This package sits at the top of the layers (beside :mod:`nanodomains.pipeline`): it
may use simulators and analyses alike; nothing in ``nanodomains`` imports it.

Examples
--------
>>> from nanodomains.testing import fig4_like, perovskite_image
>>> image, positions_px, types = perovskite_image((48, 48), a_px=12.0)
>>> image.shape, sorted(set(types.tolist()))
((48, 48), ['Cs', 'PbX', 'X'])
>>> movie, truth = fig4_like(seed=0)
>>> movie.dims, [e["kind"] for e in truth["emitters"]]
(('time', 'wavelength'), ['doublet', 'triplet', 'singlet', 'trion'])
"""

from __future__ import annotations

from nanodomains.testing.pl import fig4_like, lines_nm, make_movie, on_between, ou_walk, telegraph
from nanodomains.testing.stem import perovskite_columns, perovskite_image

__all__ = ["perovskite_columns", "perovskite_image", "fig4_like", "lines_nm", "make_movie", "on_between",
           "ou_walk", "telegraph"]

"""nanodomains: mixed-halide perovskite nanocrystals with Ruddlesden-Popper nanodomains.

Forward models (structure, growth, halide migration, ADF-STEM, 4 K optics, photons)
and analyses (STEM, PL movies, photon statistics) share one physics core so that every
analysis is validated against the ground truth its simulator put in.
"""

from nanodomains.errors import NanodomainsError

__version__ = "0.1.0"
__all__ = ["NanodomainsError", "__version__"]

"""Result records shared by simulators (as truth) and analyses (as results).

The base types and :func:`compare` live in :mod:`nanodomains.records.base`; each
domain of the project has its record types in one submodule here:

- :mod:`~nanodomains.records.stem`: lattice, domain, boundary, composition, column-set
  summary, the STEM analysis (``domains.json``);
- :mod:`~nanodomains.records.emitters`: lines, emitters (FSS, states, intervals), the
  PL movie analysis (``emitters.json``);
- :mod:`~nanodomains.records.inference`: the posterior over the domains behind the
  PL lines (``inference.json``);
- :mod:`~nanodomains.records.photons`: g2 and lifetime;
- :mod:`~nanodomains.records.populations`: growth population and migration summaries.

This package is the ground floor: it imports only :mod:`nanodomains.errors` and
:mod:`nanodomains.files`, so every layer can use it.
"""

from nanodomains.records.base import *  # noqa: F401,F403
from nanodomains.records.base import __all__ as _base_all
from nanodomains.records.emitters import *  # noqa: F401,F403
from nanodomains.records.emitters import __all__ as _emitters_all
from nanodomains.records.inference import *  # noqa: F401,F403
from nanodomains.records.inference import __all__ as _inference_all
from nanodomains.records.photons import *  # noqa: F401,F403
from nanodomains.records.photons import __all__ as _photons_all
from nanodomains.records.populations import *  # noqa: F401,F403
from nanodomains.records.populations import __all__ as _populations_all
from nanodomains.records.stem import *  # noqa: F401,F403
from nanodomains.records.stem import __all__ as _stem_all

__all__ = [*_base_all, *_stem_all, *_emitters_all, *_inference_all, *_photons_all, *_populations_all]

"""Optical forward model: levels of a domain, NC dynamics, PL movies, photon time tags, presets.

Modules: :mod:`~nanodomains.optics.levels`, :mod:`~nanodomains.optics.emitters`,
:mod:`~nanodomains.optics.movies`, :mod:`~nanodomains.optics.photons`,
:mod:`~nanodomains.optics.presets` (see docs/optics.md).
"""

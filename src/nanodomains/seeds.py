"""Seeds and random streams: the one way nanodomains turns a seed into a Generator.

A run takes one integer seed. Each stage that draws random numbers gets its own
independent stream from ``numpy.random.SeedSequence(seed).spawn`` (never ``seed + 1``
style offsets, whose streams are not guaranteed independent), and records the seed and
its spawn key so the stream can be recreated.

Examples
--------
>>> g = rng(3)
>>> streams = spawn(3, ["growth", "migration"])
>>> sorted(streams)
['growth', 'migration']
>>> float(streams["growth"].random()) == float(spawn(3, ["growth", "migration"])["growth"].random())
True
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

__all__ = ["SeedLike", "rng", "spawn", "stream_seeds", "seed_record", "check_seed"]

SeedLike = int | np.random.SeedSequence | np.random.Generator


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as a non-negative int, else :class:`~nanodomains.errors.InputError`."""
    from nanodomains.errors import InputError

    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise InputError(f"{name} must be a non-negative integer, got {seed!r}")
    if seed < 0:
        raise InputError(f"{name} must be a non-negative integer, got {seed}")
    return int(seed)


def rng(seed: SeedLike) -> np.random.Generator:
    """A Generator from an int seed, a SeedSequence or a Generator (returned as is).

    ``None`` is refused: every simulation must be reproducible from what it records.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    return np.random.default_rng(check_seed(seed))


def spawn(seed: int | np.random.SeedSequence, names: Sequence[str]) -> dict[str, np.random.Generator]:
    """Independent Generators, one per name, spawned from ``seed`` in the given order."""
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(check_seed(seed))
    children = root.spawn(len(names))
    return {name: np.random.default_rng(child) for name, child in zip(names, children)}


def stream_seeds(seed: SeedLike, names: Sequence[str]) -> dict[str, int]:
    """One recorded integer seed per named, independent stream.

    ``seed`` is an int or a ``SeedSequence`` (children by :func:`spawn`) or a
    ``Generator`` (children by ``Generator.spawn``). For simulators that take and
    record an integer seed, so each stream can be re-run alone.

    Examples
    --------
    >>> s = stream_seeds(0, ["blocked", "control"])
    >>> sorted(s) == ["blocked", "control"] and s == stream_seeds(0, ["blocked", "control"])
    True
    """
    names = list(names)
    children = seed.spawn(len(names)) if isinstance(seed, np.random.Generator) else spawn(seed, names).values()
    return {name: int(g.integers(0, 2**31 - 1)) for name, g in zip(names, children)}


def seed_record(seed: int, names: Sequence[str]) -> dict:
    """What to write beside outputs so each stage's stream can be recreated."""
    return {"seed": check_seed(seed), "method": "numpy.random.SeedSequence(seed).spawn(len(streams))",
            "streams": list(names)}

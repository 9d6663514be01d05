"""Statistics of a set of NC models: the analysis side of the growth population summary.

:func:`summarize_crystals` reads NC models (for instance the lines of a
``population.jsonl`` written by :meth:`nanodomains.growth.Population.to_jsonl`) and
returns the same :class:`~nanodomains.records.GrowthPopulationSummary` the growth
simulator writes as its truth, so the two compare with
:func:`nanodomains.records.compare`. It reads only the models (domains, boundaries,
volumes, lattice constants), never the simulator.

Examples
--------
>>> from nanodomains.structure import homogeneous, paper_fig1
>>> s = summarize_crystals([homogeneous(12.0, seed=1), paper_fig1(seed=1)])
>>> s.n_crystals, s.multi_domain_count, s.domains_per_nc
(2, 1, {'1': 1, '5': 1})
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from nanodomains.errors import FileFormatError
from nanodomains.records.populations import GrowthPopulationSummary
from nanodomains.structure.model import NanoCrystal

__all__ = ["read_crystals", "summarize_crystals", "POPULATION_TOLERANCES"]

#: :func:`~nanodomains.records.compare` tolerances of the analysis of NC models against
#: the growth truth: both are computed from the same crystals, so every number agrees
#: to rounding (1e-9 in its unit); counts and histograms must match exactly.
POPULATION_TOLERANCES = {"*": 1e-9}


def read_crystals(path: str | os.PathLike) -> list[NanoCrystal]:
    """NC models from a JSON-lines file (one ``nc.json`` record per line).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from nanodomains.structure import homogeneous
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "pop.jsonl"
    >>> _ = path.write_text(homogeneous(6.0, seed=1).to_json().replace("\\n", "") + "\\n")
    >>> [len(nc.domains) for nc in read_crystals(path)]
    [1]
    """
    p = Path(path)
    if not p.is_file():
        raise FileFormatError(f"{p}: population file not found")
    out = []
    for k, line in enumerate(p.read_text().splitlines(), start=1):
        if line.strip():
            try:
                out.append(NanoCrystal.from_json(line))
            except FileFormatError as exc:
                raise FileFormatError(f"{p}, line {k}: {exc}") from exc
    return out


def summarize_crystals(crystals: Iterable[NanoCrystal] | str | os.PathLike,
                       source: str | None = None) -> GrowthPopulationSummary:
    """Population statistics of NC models (multi-domain fraction, domains and RP faults
    per NC, compositions, volumes, edges, lattice mismatch across RP faults).

    Parameters
    ----------
    crystals : iterable of NanoCrystal, or path of a JSON-lines file
    source : str, optional
        Recorded as the record's ``source`` (defaults to the file path when given one).

    Returns
    -------
    GrowthPopulationSummary
        ``origin="analysis"``; ``nucleation`` is not computed (nuclei leave no trace in
        the models).
    """
    if isinstance(crystals, (str, os.PathLike)):
        source = source or os.fspath(crystals)
        crystals = read_crystals(crystals)
    n_domains, rp_faults, edges, fractions, volumes, mismatch, formulas = [], [], [], [], [], [], set()
    for nc in crystals:
        a_pm = np.array([nc.domain_lattice_pm(d.id) for d in nc.domains])
        rp = [b for b in nc.boundaries if b.type == "RP"]
        n_domains.append(len(nc.domains))
        rp_faults.append(len(rp))
        edges.append(nc.edges_nm)
        fractions.extend(d.br_fraction for d in nc.domains)
        volumes.extend(nc.domain_volumes_nm3())
        mismatch.extend(abs(a_pm[i] - a_pm[j]) / a_pm[j] for i, j in (sorted(b.domains) for b in rp))
        formulas.add(nc.nominal_formula)
    return GrowthPopulationSummary.from_arrays(
        n_domains=n_domains, rp_faults=rp_faults, edges_nm=np.reshape(edges, (-1, 3)),
        domain_br_fraction=fractions, domain_volume_nm3=volumes, rp_lattice_mismatch=mismatch,
        nominal_formula=formulas.pop() if len(formulas) == 1 else None, source=source,
        not_computed={"nucleation": "nuclei leave no trace in the NC models (simulator truth only)"})

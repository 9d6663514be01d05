"""Preset nanocrystals from the seed study (Liu, Zhu, Pols et al., Nano Lett. 23, 10089 (2023)).

``paper_fig1``
    A 15 nm CsPbBr1.2I1.8 cube with five domains R1-R5 in the manner of the seed's
    Fig. 1: R1 = CsPbBr0.81I2.19 (I-rich, larger lattice) and R2 = CsPbBr1.56I1.44
    (Br-rich) side by side, R1-R2 lattice difference 1.7 % (seed: ~2 %); R3 and R4
    around the nominal composition above them; R5 a slab behind R2 whose boundary
    with R2 lies face-on to a [100] beam, so R2's columns are partly shifted (mixed
    registry through the thickness), as the seed's "shifted unit-cell ratio" implies.
    The layout is illustrative: the seed gives compositions, not 3-D domain shapes.
    Image axes for the [100] view are (crystal y, crystal z).
``homogeneous``
    A 15 nm single-domain CsPbBr1.2I1.8 cube (~90 of the seed's ~130 NCs).
"""

from __future__ import annotations

from nanodomains.errors import InputError
from nanodomains.structure.model import SHIFT_NONE, SHIFT_RP, Domain, NanoCrystal, Region, homogeneous


def paper_fig1(seed: int = 1) -> NanoCrystal:
    """Five-domain 15 nm NC R1-R5 (see module docstring)."""
    e = 15.0
    spec = [  # (name, Br fraction, registry, lo, hi)
        ("R1", 0.27, SHIFT_RP, (0, 0, 0), (e, 7.0, 8.0)),
        ("R2", 0.52, SHIFT_NONE, (0, 7.0, 0), (10.5, e, 8.0)),
        ("R3", 0.42, SHIFT_NONE, (0, 0, 8.0), (e, 7.0, e)),
        ("R4", 0.36, SHIFT_RP, (0, 7.0, 8.0), (e, e, e)),
        ("R5", 0.40, SHIFT_RP, (10.5, 7.0, 0), (e, e, 8.0)),
    ]
    domains = [Domain(id=i, br_fraction=f, shift=s, region=Region(lo_nm=lo, hi_nm=hi))
               for i, (_, f, s, lo, hi) in enumerate(spec)]
    return NanoCrystal(edges_nm=(e, e, e), nominal_formula="CsPbBr1.2I1.8", seed=seed, domains=domains)


PRESETS = {"paper_fig1": paper_fig1, "homogeneous": lambda seed=1: homogeneous(15.0, seed=seed)}
DOMAIN_NAMES = {"paper_fig1": ["R1", "R2", "R3", "R4", "R5"]}


def preset(name: str, seed: int = 1) -> NanoCrystal:
    """A preset NC by name (``paper_fig1`` or ``homogeneous``)."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name](seed=seed)

"""Atomistic energy model: an ASE calculator (CHGNet by default) and relaxations.

Model
-----
The default energy model is CHGNet (Deng et al., Nat. Mach. Intell. 5, 1031 (2023);
PyPI ``chgnet``, modified BSD), a graph neural-network interatomic potential trained on
the Materials Project trajectory data set (PBE/PBE+U). Its pretrained weights ship in
the wheel (``chgnet.model.CHGNet.load()``, version 0.3.0 in chgnet 0.4.x), so nothing
downloads at run time. It is used through ASE
(``chgnet.model.dynamics.CHGNetCalculator``). CHGNet has no explicit charge state: a
removed halide is a *neutral* vacancy cell (the charged V_X+ of DFT studies is not
accessible), which is one reason barriers can differ from published DFT values.

Any other ASE calculator can be passed instead (an object with ``get_forces``), e.g.
a LAMMPS ReaxFF calculator for users who own that force field.

Relaxation
----------
:func:`relax` minimises the forces with an ASE optimiser (FIRE by default; BFGS, LBFGS)
to ``fmax`` (eV/A), optionally with the cell as a degree of freedom through
``ase.filters.FrechetCellFilter`` (cell and positions together; ``hydrostatic`` keeps
the cell shape). A relaxation that does not reach ``fmax`` raises :class:`FitError`.

Force-call counting
-------------------
:class:`CountingCalculator` wraps any ASE calculator and counts the energy/force
evaluations it delegates (the cost unit in ``docs/benchmarks.md``).
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from nanodomains.errors import FitError, InputError, require_positive

__all__ = ["CALCULATORS", "make_calculator", "model_description", "CountingCalculator", "relax",
           "max_force"]

CALCULATORS = ("chgnet",)


def make_calculator(name="chgnet", *, threads: int | None = 1):
    """An ASE calculator by name, or ``name`` itself when it is already a calculator.

    Parameters
    ----------
    name : str or ase.calculators.calculator.Calculator
        ``"chgnet"`` (pretrained CHGNet on the CPU) or any ASE calculator object.
    threads : int or None
        ``torch.set_num_threads`` for torch-based models (None leaves it alone).

    Raises
    ------
    InputError
        Unknown calculator name, or the model's package is not installed.
    """
    if not isinstance(name, str):
        if not hasattr(name, "get_forces") and not hasattr(name, "calculate"):
            raise InputError(f"calculator must be a name {CALCULATORS} or an ASE calculator, got {name!r}")
        return name
    key = name.strip().lower()
    if key != "chgnet":
        raise InputError(f"unknown calculator {name!r}; known: {', '.join(CALCULATORS)} "
                         "(or pass any ASE calculator object)")
    try:
        import torch
        from chgnet.model.dynamics import CHGNetCalculator
    except ImportError as exc:
        raise InputError("CHGNet is not installed: pip install 'nanodomains[atomistic]' "
                         f"(import failed with: {exc})") from exc
    if threads is not None:
        torch.set_num_threads(int(threads))
    return CHGNetCalculator(use_device="cpu")


def model_description(calc) -> str:
    """``"CHGNet 0.4.2 (pretrained 0.3.0 weights)"`` or the calculator's class name."""
    inner = getattr(calc, "inner", calc)
    model = getattr(inner, "model", None)
    if type(inner).__name__ == "CHGNetCalculator" and model is not None:
        import chgnet

        return f"CHGNet {chgnet.__version__} (pretrained {getattr(model, 'version', '?')} weights)"
    return type(inner).__name__


class CountingCalculator(Calculator):
    """An ASE calculator that delegates to ``inner`` and counts the evaluations (``calls``).

    Every call recomputes for the atoms it is given, so one wrapped model can serve
    all NEB images (``allow_shared_calculator``). :meth:`clone` gives each NEB image its
    own wrapper (its own result cache: a shared wrapper recomputes an image whenever
    another image was evaluated in between) around the same model; a clone's calls are
    counted in the parent too.
    """

    implemented_properties = ("energy", "free_energy", "forces", "stress")

    def __init__(self, inner, parent: "CountingCalculator | None" = None):
        super().__init__()
        self.inner = inner
        self.parent = parent
        self.calls = 0

    def clone(self) -> "CountingCalculator":
        """A new wrapper around the same model whose evaluations also count here."""
        return CountingCalculator(self.inner, parent=self)

    def calculate(self, atoms=None, properties=("energy", "forces"), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        want = ["energy", "forces"] + (["stress"] if "stress" in properties else [])
        self.inner.calculate(self.atoms.copy(), want, all_changes)
        counter = self
        while counter is not None:
            counter.calls += 1
            counter = counter.parent
        res = self.inner.results
        self.results = {"energy": float(res["energy"]),
                        "free_energy": float(res.get("free_energy", res["energy"])),
                        "forces": np.array(res["forces"], dtype=float)}
        if "stress" in res:
            self.results["stress"] = np.array(res["stress"], dtype=float)


def max_force(forces) -> float:
    """Largest per-atom force norm, eV/A."""
    f = np.asarray(forces, dtype=float).reshape(-1, 3)
    return float(np.sqrt((f ** 2).sum(axis=1)).max()) if len(f) else 0.0


def relax(atoms, calc, *, fmax: float = 0.02, steps: int = 500, cell: bool = False, hydrostatic: bool = False,
          optimizer: str = "FIRE", label: str = "structure"):
    """Relax ``atoms`` in place (positions, and the cell when ``cell``); return the energy, eV.

    Parameters
    ----------
    atoms : ase.Atoms
    calc : ASE calculator (attached to ``atoms``)
    fmax : float
        Convergence: largest force (and stress, through the cell filter), eV/A.
    steps : int
        Optimiser step limit.
    cell : bool
        Relax the cell too (``FrechetCellFilter``).
    hydrostatic : bool
        With ``cell``: keep the cell shape, relax the volume only.
    optimizer : {"FIRE", "BFGS", "LBFGS"}
    label : str
        Named in the error when the relaxation does not converge.

    Raises
    ------
    FitError
        ``fmax`` not reached within ``steps``.
    """
    from ase import optimize
    from ase.filters import FrechetCellFilter

    require_positive("fmax", fmax)
    opt_cls = {"FIRE": optimize.FIRE, "BFGS": optimize.BFGS, "LBFGS": optimize.LBFGS}.get(optimizer.upper())
    if opt_cls is None:
        raise InputError(f"unknown optimizer {optimizer!r}; use FIRE, BFGS or LBFGS")
    atoms.calc = calc
    target = FrechetCellFilter(atoms, hydrostatic_strain=hydrostatic) if cell else atoms
    opt = opt_cls(target, logfile=None)
    converged = opt.run(fmax=fmax, steps=int(steps))
    if not converged:
        fnow = max_force(target.get_forces())
        raise FitError(f"relaxation of {label} did not converge: max force {fnow:.3f} eV/A > {fmax} "
                       f"after {steps} steps")
    return float(atoms.get_potential_energy())

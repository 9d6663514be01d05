"""The import contract of nanodomains, checked on the source text (no module is imported).

Three rules, from docs/architecture.md:

(a) layers: a module imports only its own layer or lower ones;
(b) an analysis module (layer 4) never imports a simulator module: building a table is
    simulation, reading it is analysis; tests join the two halves;
(c) no module imports a private name (``_x``) from another module, neither as
    ``from m import _x`` nor as ``m._x`` on an imported module: make it public
    (documented) or move it to where both can use it;
(d) nothing in the package imports its test helpers (:data:`NOT_IMPORTED`).

Every import counts, also those inside functions. Edit the tables below when a module
is added, split or moved: every module under src/nanodomains must match an entry.
A key ending in ``.*`` covers a package and everything below it; any other key covers
that one module (for a package: its ``__init__``).
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "nanodomains"
SRC = Path(__file__).resolve().parents[1] / "src"

#: module -> layer. 0 ground floor, 1 materials, 2 structure, 3 forward models (and what
#: both halves share), 4 analysis, 5 pipeline and testing, 6 cli.
LAYERS: dict[str, int] = {
    # 0: ground floor
    "nanodomains": 0,  # the package __init__ (__version__)
    "nanodomains.errors": 0,
    "nanodomains.files": 0,
    "nanodomains.limits": 0,  # parameter ranges, input sanity, memory estimates
    "nanodomains.seeds": 0,
    "nanodomains.records.*": 0,
    "nanodomains.timetags.*": 0,  # photon time tags: PhotonStream, one reader module per format family
    # 1-2: physics core
    "nanodomains.materials": 1,
    "nanodomains.structure.*": 2,
    # 3: forward models, and the STEM pieces both halves share (probe, file io)
    "nanodomains.growth": 3,
    "nanodomains.migration.*": 3,
    "nanodomains.optics.*": 3,
    "nanodomains.optics.levels": 3,  # the level model: forward physics that the PL inverse shares
    "nanodomains.stem": 3,  # the package __init__
    "nanodomains.stem.simulate": 3,
    "nanodomains.stem.multislice": 3,
    "nanodomains.stem.eds": 3,  # EDS map simulation (loading and line scans go to layer 4)
    "nanodomains.stem.probe": 3,
    "nanodomains.stem.io": 3,
    "nanodomains.stem.tables": 3,  # column-intensity tables: model, reading, checks (shared)
    "nanodomains.stem.table_build": 3,  # building multislice tables (simulation)
    "nanodomains.stem.truth": 3,  # truth sidecar format, read by validation (no simulator)
    "nanodomains.interop": 3,  # HyperSpy signals <-> the data model, exported files (stem.io and spectroscopy.io use it)
    # 4: analysis
    "nanodomains.stem.analyze": 4,
    "nanodomains.stem.columns": 4,
    "nanodomains.stem.composition": 4,
    "nanodomains.stem.zcontrast": 4,  # joint b, s, thickness inversion against the registry table
    "nanodomains.stem.domains": 4,
    "nanodomains.stem.gpa": 4,
    "nanodomains.stem.linescan": 4,
    "nanodomains.stem.validation": 4,
    "nanodomains.spectroscopy.*": 4,
    # 5-6: top
    "nanodomains.pipeline.*": 5,
    "nanodomains.pipeline.interactive": 5,  # Plotly figures of the reports (reads records and analysis results)
    "nanodomains.testing.*": 5,
    "nanodomains.cli": 6,
}

#: The layer whose modules are analyses (rule b).
ANALYSIS_LAYER = 4

#: Simulator modules: no analysis module may import them (rule b).
SIMULATORS: list[str] = [
    "nanodomains.stem.simulate",
    "nanodomains.stem.multislice",
    "nanodomains.stem.eds",
    "nanodomains.stem.table_build",
    "nanodomains.optics.emitters",
    "nanodomains.optics.movies",
    "nanodomains.optics.photons",
    "nanodomains.optics.presets",
    "nanodomains.optics.literature",
    "nanodomains.growth",
    "nanodomains.migration.kmc",
    "nanodomains.migration.md",
    "nanodomains.migration.fault",
]

#: Modules no other part of the package may import (rule d): the test helpers.
NOT_IMPORTED: list[str] = ["nanodomains.testing.*"]


# ---- checker ------------------------------------------------------------------------

@dataclass(frozen=True)
class Violation:
    kind: str  # one of KINDS
    file: str
    line: int
    detail: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.kind}: {self.detail}"


def _matches(module: str, key: str) -> bool:
    if key.endswith(".*"):
        base = key[:-2]
        return module == base or module.startswith(base + ".")
    return module == key


def _lookup(module: str, table) -> str | None:
    """The most specific key of ``table`` that covers ``module``."""
    hits = [k for k in table if _matches(module, k)]
    return max(hits, key=lambda k: (len(k.rstrip(".*")), not k.endswith(".*"))) if hits else None


def layer_of(module: str, layers: dict[str, int]) -> int | None:
    key = _lookup(module, layers)
    return None if key is None else layers[key]


def is_simulator(module: str, simulators) -> bool:
    return _lookup(module, simulators) is not None


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def module_files(src: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under ``src/package``."""
    out = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve_from(module: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(tree: ast.AST, module: str, is_pkg: bool, modules: set[str], package: str):
    """(line, target module, imported name or None) per import; and name -> bound module."""
    found, bound = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == package or a.name.startswith(package + "."):
                    found.append((node.lineno, a.name, None))
                    if a.asname:
                        bound[a.asname] = a.name
                    else:
                        bound[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            src = _resolve_from(module, is_pkg, node)
            if not (src == package or src.startswith(package + ".")):
                continue
            for a in node.names:
                sub = f"{src}.{a.name}"
                if sub in modules:  # a submodule
                    found.append((node.lineno, sub, None))
                    bound[a.asname or a.name] = sub
                else:
                    found.append((node.lineno, src, a.name))
    return found, bound


def _dotted(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return None


def check_imports(src: Path, package: str = PACKAGE, layers: dict[str, int] = LAYERS,
                  simulators=SIMULATORS, analysis_layer: int = ANALYSIS_LAYER,
                  not_imported=NOT_IMPORTED, root: Path | None = None) -> list[Violation]:
    """Every violation of rules (a) to (d), and modules with no layer, under ``src/package``."""
    files = module_files(src, package)
    modules = set(files)
    root = root or src.parent
    out: list[Violation] = []
    for module, path in files.items():
        rel = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        own = layer_of(module, layers)
        if own is None:
            out.append(Violation("no layer", rel, 1, f"{module} is in no entry of LAYERS (tests/test_layers.py)"))
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found, bound = _imports(tree, module, path.name == "__init__.py", modules, package)
        for line, target, name in found:
            if target == module:
                continue
            theirs = layer_of(target, layers)
            if own is not None and theirs is not None and theirs > own:
                out.append(Violation("layer", rel, line, f"{module} (layer {own}) imports {target} (layer {theirs})"))
            if own == analysis_layer and is_simulator(target, simulators):
                out.append(Violation("analysis imports simulator", rel, line, f"{module} imports {target}"))
            if name is not None and _is_private(name):
                out.append(Violation("private name", rel, line, f"{module} imports {name} from {target}"))
            fence = _lookup(target, not_imported)
            if fence is not None and not _matches(module, fence):
                out.append(Violation("imports test helpers", rel, line, f"{module} imports {target}"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _is_private(node.attr):
                chain = _dotted(node)
                if not chain or chain[0] not in bound:
                    continue
                owner = ".".join([bound[chain[0]], *chain[1:-1]])
                if owner in modules and owner != module:
                    out.append(Violation("private name", rel, node.lineno,
                                         f"{module} uses {owner}.{node.attr}"))
    return sorted(set(out), key=lambda v: (v.file, v.line, v.kind, v.detail))


# ---- the real tree ----------------------------------------------------------------------

KINDS = ["no layer", "layer", "analysis imports simulator", "private name", "imports test helpers"]


@pytest.fixture(scope="module")
def violations() -> list[Violation]:
    return check_imports(SRC)


@pytest.mark.parametrize("kind", KINDS)
def test_import_contract(violations, kind):
    found = [v for v in violations if v.kind == kind]
    if found:
        pytest.fail(f"{len(found)} import-contract violation(s) ({kind}):\n" + "\n".join(map(str, found)),
                    pytrace=False)


def test_tables_name_real_modules():
    """Every table entry still names a module (catches stale entries after a move)."""
    modules = set(module_files(SRC, PACKAGE))
    future = {"nanodomains.timetags"}  # planned ground-floor module, allowed before it lands
    stale = [k for k in [*LAYERS, *SIMULATORS, *NOT_IMPORTED]
             if k not in future and not any(_matches(m, k) for m in modules)]
    assert not stale, f"entries naming no module under src/nanodomains: {stale}"


# ---- the checker catches each kind of violation ----------------------------------------

FAKE = {
    "__init__.py": "",
    "errors.py": """
        def late():
            from .cli import main  # (a) relative, inside a function: layer 0 imports layer 6
            return main
    """,
    "materials.py": """
        from nanodomains.structure import NanoCrystal  # (a) layer 1 imports layer 2
    """,
    "structure/__init__.py": """
        from nanodomains import materials
        TABLE = materials._TABLE  # (c) private attribute of an imported module
        NanoCrystal = object
    """,
    "stem/__init__.py": "",
    "stem/io.py": "def _read(): pass\n",
    "stem/simulate.py": """
        import numpy as np
        from nanodomains.stem.io import _read  # (c) private name (simulator, layer 3)
        def simulate_image(): pass
        def _check_pixel(): pass
    """,
    "stem/analyze.py": """
        import nanodomains.stem.io as sio
        from nanodomains.errors import __all__ as _e  # dunder: allowed
        from nanodomains.stem.simulate import simulate_image  # (b)
        from nanodomains.stem.simulate import (
            _check_pixel,  # (b) and (c)
        )
        def run():
            return sio._read()  # (c) private attribute
    """,
    "cli.py": """
        import nanodomains.stem.analyze
        from nanodomains import materials, structure
        from nanodomains.stem import analyze, simulate
        def _own(): pass
        def main():
            _own()
            return nanodomains.stem.analyze.run(), simulate._check_pixel  # (c) dotted chain
    """,
    "mystery.py": "import os\n",  # no layer
    "pipeline/__init__.py": "from nanodomains.testing import make_movie  # (d) same layer, still refused\n",
    "testing/__init__.py": "from nanodomains.testing.pl import make_movie  # within the helpers: allowed\n",
    "testing/pl.py": "from nanodomains.stem.simulate import simulate_image  # the top may use simulators\n",
}


def _plant(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for rel, text in FAKE.items():
        p = src / PACKAGE / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"))
    return src


def test_checker_catches_planted_violations(tmp_path):
    src = _plant(tmp_path)
    got = {(v.kind, v.file, v.line) for v in check_imports(src, root=src)}
    expected = {
        ("layer", "nanodomains/errors.py", 2),
        ("layer", "nanodomains/materials.py", 1),
        ("private name", "nanodomains/structure/__init__.py", 2),
        ("private name", "nanodomains/stem/simulate.py", 2),
        ("analysis imports simulator", "nanodomains/stem/analyze.py", 3),
        ("analysis imports simulator", "nanodomains/stem/analyze.py", 4),
        ("private name", "nanodomains/stem/analyze.py", 4),
        ("private name", "nanodomains/stem/analyze.py", 8),
        ("private name", "nanodomains/cli.py", 7),
        ("no layer", "nanodomains/mystery.py", 1),
        ("imports test helpers", "nanodomains/pipeline/__init__.py", 1),
    }
    assert got == expected, "\n".join(map(str, check_imports(src, root=src)))


def test_clean_package_passes(tmp_path):
    src = tmp_path / "src"
    for rel, text in {"__init__.py": "", "errors.py": "", "materials.py": "from nanodomains.errors import X\n",
                      "cli.py": "from nanodomains import materials\nfrom . import errors\n"}.items():
        (src / PACKAGE / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / PACKAGE / rel).write_text(text)
    assert check_imports(src, root=src) == []


def test_most_specific_entry_wins():
    assert layer_of("nanodomains.stem.gpa", LAYERS) == 4
    assert layer_of("nanodomains.stem", LAYERS) == 3
    assert layer_of("nanodomains.stem.newthing", LAYERS) is None  # stem modules are listed one by one
    assert layer_of("nanodomains.records.stem", LAYERS) == 0
    assert layer_of("nanodomains.nothing", LAYERS) is None
    assert is_simulator("nanodomains.optics.movies", SIMULATORS)
    assert not is_simulator("nanodomains.migration.analysis", SIMULATORS)

"""The tutorials (``docs/tutorials/*.md``, MyST text notebooks) execute and draw their figures.

Each tutorial checks its own numbers with ``assert`` against reference values (the
real-data README, published values, documented runs), so executing it is the test: a
cell error (an assertion that no longer holds, an API that moved) fails it. The site
build executes the same notebooks; this is the per-tutorial check with a readable
failure. Execution follows the site build: jupytext reads the text notebook, nbclient
runs it on the ``python3`` kernel with ``docs/tutorials`` as the working directory; the
kernel imports this checkout's ``src`` (PYTHONPATH) and any file a tutorial writes goes
to the test's temporary folder (TMPDIR).

Each takes 40-70 s on the 2-core development machine (hence ``slow``); the
microscopist and spectroscopist tutorials read ``../shared/realdata`` (``realdata``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import REALDATA, skip_or_fail

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "docs" / "tutorials"
NAMES = ("microscopist", "spectroscopist", "theorist")

CASES = [
    pytest.param("microscopist", marks=[pytest.mark.slow, pytest.mark.realdata(
        "stem/stemfit_oxide_trilayer_on_STO.tif", "stem/stemfit_oxide_trilayer_on_STO.STEMfit_results.csv",
        "stem/pto_sro_haadf.hspy")]),
    pytest.param("spectroscopist", marks=[pytest.mark.slow,
                                          pytest.mark.realdata("photons/pqsample_hydraharp_v10_t3.ptu")]),
    pytest.param("theorist", marks=pytest.mark.slow),
]


def _jupytext():
    try:
        import jupytext
    except ImportError:
        skip_or_fail("jupytext is not installed (needed to read the MyST text notebooks)")
    return jupytext


def _execute(path: Path, out_dir: Path, monkeypatch):
    """Execute a text notebook as the site build does; return the executed notebook."""
    jupytext = _jupytext()
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError:
        skip_or_fail("nbclient is not installed (needed to execute the tutorials)")
    # the kernel is a subprocess: it inherits this environment
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("NANODOMAINS_REALDATA", str(REALDATA))
    monkeypatch.setenv("TMPDIR", str(out_dir))
    nb = jupytext.read(path)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(TUTORIALS)}})
    t0 = time.perf_counter()
    try:
        client.execute()  # raises CellExecutionError (cell source, traceback) on the first failing cell
    finally:
        nbformat.write(nb, out_dir / f"{path.stem}.ipynb")  # kept for reading a failure
    return nb, time.perf_counter() - t0


@pytest.mark.parametrize("name", CASES)
def test_tutorial_executes_and_draws_figures(name, tmp_path, monkeypatch):
    nb, elapsed = _execute(TUTORIALS / f"{name}.md", tmp_path, monkeypatch)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert figures, f"{name}: no figure (image/png output) was produced"
    print(f"{name}: {elapsed:.1f} s, {len(figures)} figures")


def test_tutorials_are_myst_notebooks_listed_in_the_index():
    """Fast structural check: each tutorial parses as a python3 MyST notebook whose code
    checks its numbers, and the index's toctree lists every tutorial."""
    jupytext = _jupytext()
    for name in NAMES:
        text = (TUTORIALS / f"{name}.md").read_text()
        assert "format_name: myst" in text.split("---")[1], name
        nb = jupytext.read(TUTORIALS / f"{name}.md")
        assert nb.metadata["kernelspec"]["name"] == "python3", name
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        assert len(code) >= 5 and sum(s.count("assert ") for s in code) >= 5, name
    toctree = (TUTORIALS / "index.md").read_text().split("```{toctree}")[1].split("```")[0]
    assert [line.strip() for line in toctree.splitlines() if line.strip() and not line.startswith(":")] == list(NAMES)

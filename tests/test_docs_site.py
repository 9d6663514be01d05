"""The documentation site: built with warnings as errors, then every internal link checked.

``python -m sphinx -W --keep-going -b html docs OUT`` (the command of docs/index.md) runs
in a temporary folder; the tutorials in docs/tutorials/ are executed by MyST-NB during
that build (docs/conf.py), so a tutorial that stopped running fails here too. The link
checker then reads every HTML page of the result: each relative ``href``/``src`` must
name a file of the site, and each ``#anchor`` an ``id`` on the page it points to.
External http(s) links are not fetched (the test runs without internet).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from conftest import require_realdata, skip_or_fail

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"

pytestmark = pytest.mark.skipif(
    not (DOCS / "conf.py").exists(), reason="docs/conf.py missing"
)


class _Page(HTMLParser):
    """Ids and outgoing links (tag, attribute, value, line) of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, str, str, int]] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value is None:
                continue
            if name in ("id", "name") and (name == "id" or tag == "a"):
                self.ids.add(value)
            if (tag, name) in (("a", "href"), ("link", "href"), ("img", "src"),
                               ("script", "src"), ("source", "src"), ("iframe", "src")):
                self.links.append((tag, name, value, self.getpos()[0]))


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def broken_internal_links(site: Path) -> list[str]:
    """Every relative link of the HTML pages under ``site`` that does not resolve.

    A link resolves when its path names an existing file inside ``site`` (a folder
    counts when it holds ``index.html``) and its fragment, if any, is an ``id`` (or an
    ``<a name>``) on the page it names. Absolute URLs with a scheme (http, https,
    mailto, data, javascript) and protocol-relative ``//host`` links are not checked.
    """
    site = site.resolve()
    # _static holds the theme's assets (a Jinja template among them), not pages
    pages = {p.resolve(): _parse(p) for p in site.rglob("*.html")
             if "_static" not in p.relative_to(site).parts}
    broken: list[str] = []
    for page_path, page in sorted(pages.items()):
        for tag, attr, value, line in page.links:
            url = urlsplit(value)
            if url.scheme or value.startswith("//"):
                continue
            where = f"{page_path.relative_to(site)}:{line} <{tag} {attr}={value!r}>"
            if url.path:
                target = (page_path.parent / unquote(url.path)).resolve()
                if target.is_dir():
                    target = target / "index.html"
            else:
                target = page_path
            if site not in target.parents and target != site:
                broken.append(f"{where}: leaves the site")
                continue
            if not target.is_file():
                broken.append(f"{where}: no file {target.relative_to(site)}")
                continue
            if url.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(url.fragment) not in ids:
                    broken.append(f"{where}: no id {url.fragment!r} in {target.relative_to(site)}")
    return broken


def test_link_checker_finds_broken_links(tmp_path):
    """The checker itself: a missing page, a missing anchor and a path out of the site."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.html").write_text(
        '<html><body><h1 id="top">A</h1>'
        '<a href="sub/b.html#here">ok</a> <a href="#top">ok</a> <a href="sub/">ok</a>'
        '<a href="https://example.org/x">external</a> <a href="mailto:x@y">mail</a>'
        '<a href="missing.html">bad page</a> <a href="sub/b.html#nowhere">bad anchor</a>'
        '<img src="../outside.png"> <img src="img/none.png">'
        "</body></html>"
    )
    (tmp_path / "sub" / "b.html").write_text('<p id="here">B</p><a href="../a.html#top">ok</a>')
    (tmp_path / "sub" / "index.html").write_text("<p>index</p>")
    broken = broken_internal_links(tmp_path)
    assert len(broken) == 4, broken
    assert any("missing.html" in b for b in broken)
    assert any("'nowhere'" in b for b in broken)
    assert any("leaves the site" in b for b in broken)
    assert any("img/none.png" in b for b in broken)


@pytest.mark.realdata
def test_site_builds_without_warnings_and_links_resolve(tmp_path):
    """The documented build command, warnings as errors; then no broken internal link.

    In the default run (CI): the build executes the three tutorials, which read
    ../shared/realdata (skipped without it on a user's machine, a failure on CI).
    """
    for module in ("sphinx", "numpydoc", "myst_nb", "jupytext", "ipykernel", "pydata_sphinx_theme"):
        if importlib.util.find_spec(module) is None:
            skip_or_fail(f"{module} is not installed: pip install -e '.[docs]' (the test extra includes it)")
    require_realdata("stem/stemfit_oxide_trilayer_on_STO.tif", "stem/stemfit_oxide_trilayer_on_STO.STEMfit_results.csv",
                     "stem/pto_sro_haadf.hspy", "photons/pqsample_hydraharp_v10_t3.ptu")
    out = tmp_path / "html"
    env = dict(os.environ)
    # a fresh matplotlib cache: a stale font list writes findfont messages into the notebooks
    env["MPLCONFIGDIR"] = str(tmp_path / "mplconfig")
    # execute every tutorial now, not from a cache of an earlier build: a notebook whose
    # code still matches the cache would otherwise pass after the library changed
    env["NANODOMAINS_DOCS_EXECUTION"] = "force"
    # the API reference documents this checkout (docs/conf.py also puts src/ first)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "src")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=3600,
    )
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, (
        f"sphinx failed after {elapsed:.0f} s (exit {result.returncode}):\n"
        + result.stderr[-20000:]
    )
    assert (out / "index.html").is_file()
    assert (out / "api" / "index.html").is_file()
    assert (out / "validation.html").is_file()
    broken = broken_internal_links(out)
    assert not broken, f"{len(broken)} broken internal links:\n" + "\n".join(broken[:50])
    print(f"docs site built in {elapsed:.0f} s")

"""The demo report: one self-contained file that opens offline, tested in headless Chromium.

The demo runs once for the module (``demo_report``). Without a browser the report is
checked for self-containment (no http(s) script, link or image reference) and size
(< 30 MB). In Chromium, driven by Python playwright with Debian's chromium (never
``playwright install``), with the network off: the page loads without console or page
errors and makes no request beyond the file itself, every PNG
decodes, every Plotly figure renders, hovering a figure shows its hover label (movie:
time, wavelength, counts; STEM: a column's sublattice and intensity), and a mouse drag
zooms an axis (read back from the figure's ``layout.xaxis.range``), a double-click
resets it. A missing chromium or playwright skips these tests with the reason on a
user's machine and fails them when ``CI`` is set (``.ci/run`` installs chromium).

The batch report (slow: one STEM image, one PL movie, a g2 and a decay item) gets the
same checks: self-contained, every item's figure embedded and drawn, a hover label.
"""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import skip_or_fail

from nanodomains.pipeline.demo import run_demo

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
#: The issue's limit for the demo report.
MAX_REPORT_BYTES = 30_000_000


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "demo"
    run_demo(out, seed=0)
    return out / "report.html"


class _References(HTMLParser):
    """Every URL a tag would fetch (src, href, srcset, data) and every <link> / <iframe>."""

    def __init__(self):
        super().__init__()
        self.urls: list[tuple[str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "poster") and value:
                self.urls.append((tag, value))


def _external(url: str) -> bool:
    return url.strip().lower().startswith(("http:", "https:", "//", "ftp:"))


def test_external_reference_is_detected():
    """The check below can fail: a CDN script is found."""
    refs = _References()
    refs.feed('<script src="https://cdn.plot.ly/plotly-3.0.1.min.js"></script><img src="data:image/png;base64,AA">')
    assert [u for _, u in refs.urls if _external(u)] == ["https://cdn.plot.ly/plotly-3.0.1.min.js"]


def test_demo_report_is_self_contained_and_small(demo_report):
    page = demo_report.read_text(encoding="utf-8")
    size = demo_report.stat().st_size
    assert size < MAX_REPORT_BYTES, f"report.html is {size / 1e6:.1f} MB"
    refs = _References()
    refs.feed(page)
    assert [u for _, u in refs.urls if _external(u)] == []
    assert "link" not in refs.tags and "iframe" not in refs.tags
    assert all(u.startswith("data:image/png;base64,") for tag, u in refs.urls if tag == "img")
    assert page.count("* plotly.js v") == 1  # the library inlined once
    assert page.count('class="plotly-graph-div"') >= 11  # 5 movies, 2 STEM images, 2 g2, 2 decays


def test_untimed_movie_figure_says_frame_not_seconds():
    """A movie without timing (time = frame index) is labelled frame, not s."""
    from nanodomains.pipeline.interactive import movie_analysis_figure, movie_figure
    from nanodomains.spectroscopy.io import movie_from_arrays
    from nanodomains.spectroscopy.movie_analysis import analyze_movie
    from nanodomains.testing.pl import fig4_like

    movie, _ = fig4_like(seed=0, n_frames=40)
    untimed = movie_from_arrays(movie.values, movie["wavelength"].values)
    fig = movie_analysis_figure(analyze_movie(untimed, n_surrogates=19))
    assert fig.layout.yaxis.title.text == "frame"
    assert all(" s<br>" not in (tr.hovertemplate or "") and "frame %{y" in tr.hovertemplate for tr in fig.data)
    timed = movie_figure(movie["time"].values, movie["wavelength"].values, movie.values)
    assert timed.layout.yaxis.title.text == "time (s)" and "t %{y:.3f} s" in timed.data[0].hovertemplate


def test_stem_figure_refuses_an_image_without_finite_pixels():
    import numpy as np

    from nanodomains.errors import InputError
    from nanodomains.pipeline.interactive import stem_figure

    with pytest.raises(InputError, match="no finite pixel"):
        stem_figure(np.full((16, 16), np.nan))


# ---- in the browser -------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("Python playwright not installed: pip install -e '.[test]'")
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        skip_or_fail("headless Chromium not found: apt-get install -y chromium (done by .ci/run)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=ARGS)
        yield b
        b.close()


def _offline_page(browser):
    """A page with the network off (as on a laptop without one); ``page.problems`` collects
    console errors, page errors and every request that is not to the file itself
    (file:, data:, blob:), so a fetch the static check cannot see (CSS url(), script) fails."""
    pg = browser.new_page(viewport={"width": 1280, "height": 1000}, offline=True)
    problems = []
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("request", lambda r: None if r.url.startswith(("file:", "data:", "blob:", "about:"))
          else problems.append(f"network request: {r.url}"))
    pg.problems = problems
    return pg


def test_offline_page_reports_a_network_request(browser, tmp_path):
    """The check can fail: a page that fetches a CDN script is caught."""
    page_file = tmp_path / "cdn.html"
    page_file.write_text('<html><head><script src="https://cdn.plot.ly/plotly-3.0.1.min.js"></script></head>'
                         "<body>x</body></html>")
    pg = _offline_page(browser)
    pg.goto(page_file.as_uri())
    assert any("network request: https://cdn.plot.ly" in p for p in pg.problems), pg.problems
    pg.close()


@pytest.fixture(scope="module")
def page(browser, demo_report):
    """The report opened from file:// with the network off, after plotly drew every figure;
    ``page.problems`` collects console errors, page errors and network requests."""
    pg = _offline_page(browser)
    pg.goto(demo_report.as_uri())
    pg.wait_for_selector("body[data-plots-ready]", timeout=120_000)
    yield pg
    pg.close()


def _plot_id(page, title_part: str) -> str:
    """The id of the first figure whose title contains ``title_part``."""
    found = page.evaluate("""t => { for (const gd of document.querySelectorAll('.plotly-graph-div'))
        if ((gd.layout.title.text || '').includes(t)) return gd.id; return null; }""", title_part)
    assert found, f"no figure titled with {title_part!r}"
    return found


def _plot_area(page, plot_id: str) -> dict:
    """The figure's main plot area (its drag layer) in viewport pixels, scrolled into view."""
    area = page.locator(f"#{plot_id} .nsewdrag").first
    area.scroll_into_view_if_needed()
    return area.bounding_box()


def test_report_renders_without_errors(page):
    body = page.evaluate("Object.assign({}, document.body.dataset)")
    assert body["plotsReady"] == "true"
    assert int(body["plotsTotal"]) >= 11 and body["plotsRendered"] == body["plotsTotal"]
    drawn = page.evaluate("""[...document.querySelectorAll('.plotly-graph-div')].map(
        gd => gd.classList.contains('js-plotly-plot') && gd.querySelectorAll('.main-svg').length > 0)""")
    assert len(drawn) == int(body["plotsTotal"]) and all(drawn)
    assert int(body["imagesTotal"]) >= 1 and body["imagesLoaded"] == body["imagesTotal"]
    assert int(body["tables"]) >= 2
    text = page.inner_text("body")
    assert "R1" in text and "CsPbBr0.81I2.19" in text
    assert page.problems == []
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "demo_report.png"
    page.screenshot(path=str(shot), full_page=False)
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_hover_shows_values(page):
    movie = _plot_id(page, "fig4_doublet: PL movie")
    box = _plot_area(page, movie)
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, steps=4)
    label = page.locator(f"#{movie} .hoverlayer .hovertext").first
    label.wait_for(timeout=10_000)
    text = label.text_content()
    assert "wavelength" in text and "counts" in text and " s" in text
    # a fitted column of the STEM image: its pixel from the figure's own axes
    stem = _plot_id(page, "paper_fig1: ADF-STEM")
    _plot_area(page, stem)
    x, y = page.evaluate("""id => { const gd = document.getElementById(id);
        const tr = gd._fullData.find(t => t.name.startsWith('PbX columns'));
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
        const i = Math.floor(tr.x.length / 2);
        return [r.left + xa._offset + xa.l2p(tr.x[i]), r.top + ya._offset + ya.l2p(tr.y[i])]; }""", stem)
    page.mouse.move(x - 3, y - 3)
    page.mouse.move(x, y, steps=3)
    label = page.locator(f"#{stem} .hoverlayer .hovertext").first
    label.wait_for(timeout=10_000)
    text = label.text_content()
    assert "sublattice" in text and "intensity" in text
    assert page.problems == []


def test_drag_zooms_and_double_click_resets(page):
    g2 = _plot_id(page, "D0-X  pulsed: g2(0)")
    read = "id => document.getElementById(id).layout.xaxis.range.slice()"
    before = page.evaluate(read, g2)
    box = _plot_area(page, g2)
    y = box["y"] + box["height"] * 0.5
    page.mouse.move(box["x"] + box["width"] * 0.45, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.55, y + 5, steps=8)
    page.mouse.up()
    page.wait_for_function("([id, b]) => { const r = document.getElementById(id).layout.xaxis.range; "
                           "return r[0] !== b[0] || r[1] !== b[1]; }", arg=[g2, before], timeout=10_000)
    after = page.evaluate(read, g2)
    assert before[0] < after[0] < after[1] < before[1]
    assert (after[1] - after[0]) < 0.2 * (before[1] - before[0])  # a drag over 10 % of the width
    page.mouse.dblclick(box["x"] + box["width"] * 0.5, y)
    page.wait_for_function("([id, b]) => { const r = document.getElementById(id).layout.xaxis.range; "
                           "return Math.abs((r[1] - r[0]) - (b[1] - b[0])) < 1e-6 * (b[1] - b[0]); }",
                           arg=[g2, before], timeout=10_000)
    assert page.problems == []


# ---- the batch report -------------------------------------------------------------------

def _pulsed_stream(path: Path) -> Path:
    """A pulsed single emitter (p(2 photons) = 0.05 per pulse, lifetime 1 ns) as an npz time-tag file."""
    import numpy as np

    from nanodomains.timetags import PhotonStream
    from nanodomains.timetags.npz import write_photons_npz

    rng = np.random.default_rng(1)
    period_ps, n_pulses = 12_500, 400_000
    pulse = np.repeat(np.arange(n_pulses, dtype=np.int64), rng.choice(3, size=n_pulses, p=[0.05, 0.9, 0.05]))
    pulse = pulse[rng.random(pulse.size) < 0.1]
    delay = np.minimum(np.rint(rng.exponential(1000.0, pulse.size)).astype(np.int64), period_ps - 1)
    t = pulse * period_ps + delay
    order = np.argsort(t, kind="stable")
    return write_photons_npz(PhotonStream(t[order], (rng.random(t.size) < 0.5).astype(np.uint8)[order],
                                          delay[order], resolution_ps=1.0, sync_period_ps=float(period_ps),
                                          duration_s=n_pulses * period_ps * 1e-12, source="synthetic"), path)


@pytest.fixture(scope="module")
def batch_report(tmp_path_factory) -> Path:
    """A batch of one item per kind with a figure: STEM image, PL movie, g2 and decay."""
    import pandas as pd

    from nanodomains.pipeline.batch import run_batch
    from nanodomains.spectroscopy.io import save_movie
    from nanodomains.stem.simulate import simulate_image, write_simulation
    from nanodomains.structure import homogeneous
    from nanodomains.testing.pl import fig4_like

    d = tmp_path_factory.mktemp("batch")
    write_simulation(simulate_image(homogeneous(6.0, seed=1), pixel_size_pm=25.0, seed=2), d / "nc.tif")
    save_movie(fig4_like(seed=0, n_frames=40)[0], d / "movie.nc")
    _pulsed_stream(d / "photons.npz")
    pd.DataFrame([{"id": "stem", "path": "nc.tif"}, {"id": "pl", "path": "movie.nc", "kind": "pl_movie"},
                  {"id": "g2", "path": "photons.npz", "kind": "photons_g2"},
                  {"id": "decay", "path": "photons.npz", "kind": "photons_lifetime"}]).to_csv(d / "m.csv", index=False)
    records = run_batch(d / "m.csv", d / "out", workers=0)
    assert [r["status"] for r in records] == ["ok"] * 4, records
    assert [r["results"]["interactive"] for r in records] == ["interactive.json"] * 4
    return d / "out" / "report.html"


@pytest.mark.slow  # the batch analyses a STEM image and a PL movie (~40 s)
def test_batch_report_holds_every_item_figure(batch_report):
    page = batch_report.read_text(encoding="utf-8")
    refs = _References()
    refs.feed(page)
    assert [u for _, u in refs.urls if _external(u)] == []
    assert page.count('class="plotly-graph-div"') == 5  # the items overview and one figure per item
    assert batch_report.stat().st_size < MAX_REPORT_BYTES


@pytest.mark.slow
def test_batch_report_renders(browser, batch_report):
    pg = _offline_page(browser)
    problems = pg.problems
    pg.goto(batch_report.as_uri())
    pg.wait_for_selector("body[data-plots-ready]", timeout=120_000)
    body = pg.evaluate("Object.assign({}, document.body.dataset)")
    assert body["plotsReady"] == "true" and body["plotsRendered"] == body["plotsTotal"] == "5"
    bars = _plot_id(pg, "items: time per item")
    box = _plot_area(pg, bars)
    x, y = pg.evaluate("""id => { const gd = document.getElementById(id), r = gd.getBoundingClientRect();
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, tr = gd._fullData[0];
        return [r.left + xa._offset + xa.d2p(tr.x[0]), r.top + ya._offset + ya.l2p(tr.y[0] / 2)]; }""", bars)
    assert box["x"] <= x <= box["x"] + box["width"]
    pg.mouse.move(x, y, steps=3)
    label = pg.locator(f"#{bars} .hoverlayer .hovertext").first
    label.wait_for(timeout=10_000)
    assert "stem_image" in label.text_content()
    assert problems == []
    pg.close()

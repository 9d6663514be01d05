"""Screenshots of the interactive demo report for docs/report.md.

    python docs/img/make_report_screenshot.py [--report demo_out/report.html]

Without ``--report`` the demo runs first (seed 0, into a temporary folder; ~1 min).
Opens the report in headless Chromium (Python playwright with the system chromium,
never ``playwright install``) and writes, next to this script:

* ``report_stem_hover.png``: the STEM figure of the Fig. 1 NC with the hover label of
  one fitted column (sublattice, intensity, domain);
* ``report_movie_zoom.png``: the fig4_doublet PL movie zoomed on its doublet (the
  range a drag would select, set through ``Plotly.relayout``), with the hover label of
  one heatmap cell (time, wavelength, counts).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
FIND = """t => { for (const gd of document.querySelectorAll('.plotly-graph-div'))
    if ((gd.layout.title.text || '').includes(t)) return gd.id; return null; }"""
TO_PIXELS = """([id, x, y]) => { const gd = document.getElementById(id), r = gd.getBoundingClientRect();
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
    return [r.left + xa._offset + xa.l2p(x), r.top + ya._offset + ya.l2p(y)]; }"""


def shoot(report: Path) -> list[Path]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found (apt-get install -y chromium)")
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900}, device_scale_factor=1)
        page.goto(report.as_uri())
        page.wait_for_selector("body[data-plots-ready='true']", timeout=120_000)

        stem = page.evaluate(FIND, "paper_fig1: ADF-STEM")
        page.locator(f"#{stem}").scroll_into_view_if_needed()
        col = page.evaluate(f"""() => {{ const gd = document.getElementById('{stem}');
            const tr = gd._fullData.find(t => t.name.startsWith('Cs columns'));
            const i = Math.floor(tr.x.length * 0.3); return [tr.x[i], tr.y[i]]; }}""")
        page.mouse.move(*page.evaluate(TO_PIXELS, [stem, *col]), steps=3)
        page.locator(f"#{stem} .hoverlayer .hovertext").first.wait_for()
        written.append(HERE / "report_stem_hover.png")
        page.locator(f"#{stem}").screenshot(path=str(written[-1]))

        movie = page.evaluate(FIND, "fig4_doublet: PL movie")
        page.locator(f"#{movie}").scroll_into_view_if_needed()
        page.evaluate(f"Plotly.relayout('{movie}', {{'xaxis.range': [625.6, 626.4], 'yaxis.range': [30, 60]}})")
        page.wait_for_timeout(300)
        page.mouse.move(*page.evaluate(TO_PIXELS, [movie, 626.05, 50.0]), steps=3)
        page.locator(f"#{movie} .hoverlayer .hovertext").first.wait_for()
        written.append(HERE / "report_movie_zoom.png")
        page.locator(f"#{movie}").screenshot(path=str(written[-1]))
        browser.close()
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", type=Path, help="an existing demo report.html (default: run the demo)")
    args = ap.parse_args()
    if args.report is not None:
        paths = shoot(args.report.resolve())
    else:
        from nanodomains.pipeline.demo import run_demo

        with tempfile.TemporaryDirectory() as tmp:
            run_demo(Path(tmp) / "demo", seed=0)
            paths = shoot(Path(tmp) / "demo" / "report.html")
    for path in paths:
        print(path, f"{path.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()

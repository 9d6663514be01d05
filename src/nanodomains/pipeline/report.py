"""Self-contained HTML reports: interactive Plotly figures, PNG figures and tables.

A report is a list of :class:`Section`; each holds prose, interactive figures
(``plotly.graph_objects.Figure``, built by :mod:`nanodomains.pipeline.interactive`),
static figures (matplotlib ``Figure`` objects or PNG files, embedded as base64) and
tables (lists of row dicts). The page is one file that opens offline: when it holds
interactive figures, plotly.js is inlined once in its head and each figure is a
``div`` drawn by a short script (no CDN, no server).

The page carries a small script that sets counters on ``<body>`` so a headless browser
test can check what rendered: ``data-images-total`` / ``data-images-loaded`` (PNGs
that decoded), ``data-tables``, ``data-plots-total`` (interactive figure divs),
``data-plots-rendered`` (those plotly drew, with their SVG layer) and
``data-plots-ready`` (``"true"`` when all are drawn, ``"timeout"`` after 60 s).

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> rows = [{"quantity": "FSS (ueV)", "truth": 677.0, "found": 677.04}]
>>> with tempfile.TemporaryDirectory() as d:
...     page = write_report(Path(d) / "report.html", "demo", [Section("Lines", "One doublet.", tables=[(rows, "")])])
...     "<td>677</td>" in page.read_text(encoding="utf-8")
True
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

from nanodomains.files import atomic_path

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444} h2{margin-top:2em;border-bottom:1px solid #bbb}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #ddd}
figure.plot{border:1px solid #ddd;padding:4px}
figcaption{font-size:.9em;color:#555}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right} th{background:#eee}
.ok{color:#080} .fail{color:#b00}
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img');
  var ok = 0;
  imgs.forEach(function (im) { if (im.complete && im.naturalWidth > 0) ok++; });
  document.body.setAttribute('data-images-total', imgs.length);
  document.body.setAttribute('data-images-loaded', ok);
  document.body.setAttribute('data-tables', document.querySelectorAll('table').length);
  // plotly draws asynchronously: count the figures drawn until all are, or 60 s passed
  var plots = document.querySelectorAll('.plotly-graph-div');
  var started = Date.now();
  document.body.setAttribute('data-plots-total', plots.length);
  (function count() {
    var drawn = 0;
    plots.forEach(function (gd) { if (gd._fullLayout && gd.querySelector('.main-svg')) drawn++; });
    document.body.setAttribute('data-plots-rendered', drawn);
    if (drawn === plots.length) document.body.setAttribute('data-plots-ready', 'true');
    else if (Date.now() - started > 60000) document.body.setAttribute('data-plots-ready', 'timeout');
    else setTimeout(count, 100);
  })();
});
"""

#: Plotly options of every interactive figure: no logo, no scroll zoom (the page scrolls),
#: resized with the page.
PLOT_CONFIG = {"displaylogo": False, "responsive": True, "scrollZoom": False}


@dataclass
class Section:
    """One titled part of a report.

    Attributes
    ----------
    title : str
    text : str
        Prose; paragraphs separated by blank lines (escaped, not HTML).
    figures : list of (figure or path, caption)
        matplotlib Figures (or Axes) or PNG files, embedded as base64.
    tables : list of (rows, caption)
        Rows as lists of dicts (:func:`table_html`).
    plots : list of (plotly Figure, caption)
        Interactive figures (:mod:`nanodomains.pipeline.interactive`), shown before
        the static figures.
    """

    title: str
    text: str = ""
    figures: list = field(default_factory=list)  # (figure or png path, caption)
    tables: list = field(default_factory=list)  # (rows as list of dicts, caption)
    plots: list = field(default_factory=list)  # (plotly Figure, caption)


def figure_to_png_bytes(fig, dpi: int = 100) -> bytes:
    """Render a matplotlib figure (or the figure of an Axes) to PNG bytes, and close it.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> fig = Figure(figsize=(2, 1))
    >>> _ = fig.add_subplot().plot([0, 1], [1, 0])
    >>> figure_to_png_bytes(fig, dpi=50)[:4]
    b'\\x89PNG'
    """
    import matplotlib.pyplot as plt

    if not hasattr(fig, "savefig"):
        fig = fig.figure
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _img_tag(source, caption: str) -> str:
    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else figure_to_png_bytes(source)
    b64 = base64.b64encode(data).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def plot_html(fig, caption: str, div_id: str) -> str:
    """An interactive figure as a ``<figure>``: its ``div`` and the script that draws it.

    plotly.js is not included (:func:`write_report` inlines it once per page); the
    data travel as base64 typed arrays (plotly's JSON encoding of numpy arrays).

    Examples
    --------
    >>> import plotly.graph_objects as go
    >>> snippet = plot_html(go.Figure(go.Scatter(x=[0, 1], y=[1, 0])), "a line", "plot-0")
    >>> 'id="plot-0"' in snippet, "<script" in snippet, "cdn" in snippet
    (True, True, False)
    """
    import plotly.io as pio

    div = pio.to_html(fig, full_html=False, include_plotlyjs=False, include_mathjax=False, div_id=div_id,
                      config=PLOT_CONFIG, default_width="100%",
                      default_height=f"{fig.layout.height or 450}px")
    return f'<figure class="plot">{div}<figcaption>{html.escape(caption)}</figcaption></figure>'


def _format_cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_format_cell(v) for v in value)
    return html.escape(str(value))


def table_html(rows: list[dict], caption: str = "") -> str:
    """An HTML table from row dicts (columns: union of keys in first-seen order).

    Floats are shown with 4 significant digits, lists joined by commas, text escaped;
    a missing key gives an empty cell.

    Examples
    --------
    >>> table_html([{"id": "X1", "fss_uev": 677.04}, {"id": "X2", "kind": "triplet"}])
    '<table><thead><tr><th>id</th><th>fss_uev</th><th>kind</th></tr></thead><tbody><tr><td>X1</td><td>677</td><td></td></tr><tr><td>X2</td><td></td><td>triplet</td></tr></tbody></table>'
    """
    cols: list[str] = []
    for row in rows:
        cols += [k for k in row if k not in cols]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_format_cell(r.get(c, ''))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(path: str | Path, title: str, sections: list[Section], intro: str = "") -> Path:
    """Write one self-contained HTML file (atomically) and return its path.

    Parameters
    ----------
    path : str or Path
        The HTML file; its folder is created.
    title : str
        Page title and heading.
    sections : list of Section
    intro : str
        A paragraph under the heading.

    Returns
    -------
    Path

    Notes
    -----
    With interactive figures the page inlines plotly.js (about 4.8 MB) once; a page
    without them carries no JavaScript library.
    """
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if intro:
        parts.append(f"<p>{html.escape(intro)}</p>")
    n_plots = 0
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        if sec.text:
            parts += [f"<p>{html.escape(p)}</p>" for p in sec.text.split("\n\n")]
        for fig, cap in sec.plots:
            parts.append(plot_html(fig, cap, f"plot-{n_plots}"))
            n_plots += 1
        parts += [_img_tag(src, cap) for src, cap in sec.figures]
        parts += [table_html(rows, cap) for rows, cap in sec.tables]
    library = ""
    if n_plots:
        from plotly.offline import get_plotlyjs

        library = f"<script>{get_plotlyjs()}</script>"
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style>{library}<script>{_SCRIPT}</script></head><body>{''.join(parts)}</body></html>")
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return Path(path)

"""Interactive Plotly figures for the HTML reports: zoom, pan and hover, offline.

Each builder takes the project's data (arrays, records, analysis results) and returns a
``plotly.graph_objects.Figure``; :func:`nanodomains.pipeline.report.write_report`
embeds them in one self-contained page (plotly.js inline once, every figure a ``div``).

* :func:`movie_figure` / :func:`movie_analysis_figure`: a 4 K PL spectral movie as a
  time x wavelength heatmap (hover: time, wavelength, counts) with the analysed emitter
  tracks (or, from a record alone, each line over its on intervals) overlaid;
* :func:`stem_figure` / :func:`stem_analysis_figure`: an ADF-STEM image with the
  fitted atom columns (hover: type, sublattice, intensity, domain), the domain outlines
  and the boundaries (RP red, other cyan);
* :func:`g2_figure`: g2(tau) with g2(0) +- its standard error;
* :func:`decay_figure`: a TCSPC decay and its fitted lifetime model on a log axis, with
  the weighted residuals;
* :func:`batch_items_figure`: the items of a batch run (time per item, status, results).

Size: arrays are stored in the page as base64 typed arrays (plotly's JSON encoding of
numpy arrays), rasters as float32 and block-averaged to at most
:data:`MOVIE_MAX_CELLS` cells (movies) or :data:`IMAGE_MAX_PX` pixels per side (STEM
images), so one figure costs at most ~1.3 MB of HTML.

Examples
--------
>>> import numpy as np
>>> fig = movie_figure(np.arange(3.0), np.linspace(600, 601, 5), np.ones((3, 5)))
>>> fig.data[0].type, fig.layout.xaxis.title.text
('heatmap', 'wavelength (nm)')
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from nanodomains.errors import InputError

#: At most this many time x wavelength cells of a movie are embedded (block means beyond).
MOVIE_MAX_CELLS = 250_000
#: At most this many pixels per side of a STEM image are embedded (block means beyond).
IMAGE_MAX_PX = 512
#: Colours of emitters and domains (plotly's D3 palette, as matplotlib's tab10).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
#: Domain outline colours: the palette without red and cyan, which mark the boundaries.
OUTLINE_COLOURS = ("#ff7f0e", "#2ca02c", "#9467bd", "#e377c2", "#bcbd22", "#1f77b4", "#8c564b", "#7f7f7f")
_TEMPLATE = "plotly_white"


def _go():
    import plotly.graph_objects as go

    return go


def block_mean(a: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """Mean over ``fy`` x ``fx`` blocks of a 2-D array (edges that do not fill a block dropped).

    Parameters
    ----------
    a : ndarray, shape (ny, nx)
    fy, fx : int
        Block size along each axis (1 keeps that axis).

    Returns
    -------
    ndarray of float32, shape (ny // fy, nx // fx)

    Examples
    --------
    >>> block_mean(np.arange(12.0).reshape(3, 4), 1, 2).tolist()
    [[0.5, 2.5], [4.5, 6.5], [8.5, 10.5]]
    """
    a = np.asarray(a, dtype=np.float64)
    ny, nx = (a.shape[0] // fy) * fy, (a.shape[1] // fx) * fx
    return a[:ny, :nx].reshape(ny // fy, fy, nx // fx, fx).mean(axis=(1, 3)).astype(np.float32)


def _coord_mean(c: np.ndarray, f: int) -> np.ndarray:
    """Block means of a coordinate axis (the centres of the averaged blocks)."""
    n = (c.size // f) * f
    return np.asarray(c[:n], dtype=np.float64).reshape(-1, f).mean(axis=1)


def movie_factors(n_time: int, n_wavelength: int, max_cells: int = MOVIE_MAX_CELLS) -> tuple[int, int]:
    """Block sizes (time, wavelength) that bring a movie to at most ``max_cells`` cells.

    The axis with more remaining samples is halved first, so a movie of few long
    spectra keeps all its frames and a long movie of short spectra keeps its pixels.

    Examples
    --------
    >>> movie_factors(120, 1340)
    (1, 1)
    >>> movie_factors(2000, 1340)
    (4, 4)
    >>> movie_factors(5000, 100)
    (2, 1)
    """
    ft = fw = 1
    while (n_time // ft) * (n_wavelength // fw) > max_cells:
        if n_time // ft >= n_wavelength // fw:
            ft *= 2
        else:
            fw *= 2
    return ft, fw


def _gamma_colorscale(name: str, gamma: float, n: int = 12) -> list:
    """A colour scale equivalent to matplotlib's ``PowerNorm(gamma)`` on the colour map ``name``.

    Colour ``cmap(v)`` sits at the linear position ``v ** (1 / gamma)``, so hover
    values stay the data while faint features get the colour range.
    """
    from plotly.colors import sample_colorscale

    v = np.linspace(0.0, 1.0, n)
    return [[float(p), c] for p, c in zip(v ** (1.0 / gamma), sample_colorscale(name, list(v)))]


def _layout(fig, title: str, height: int, **kw) -> None:
    kw.setdefault("legend", {"font": {"size": 10}})
    fig.update_layout(template=_TEMPLATE, title={"text": title, "font": {"size": 13}}, height=height,
                      margin={"l": 60, "r": 20, "t": 50, "b": 50}, **kw)


# ---- spectral movies ------------------------------------------------------------------

def movie_figure(time_s, wavelength_nm, counts, *, emitters: Iterable = (), tracks: dict | None = None,
                 title: str = "", max_cells: int = MOVIE_MAX_CELLS, gamma: float = 0.5, time_units: str = "s"):
    """A PL spectral movie as a time x wavelength heatmap with the emitters overlaid.

    Parameters
    ----------
    time_s : array_like, shape (n_time,)
        Frame times (s).
    wavelength_nm : array_like, shape (n_wavelength,)
    counts : array_like, shape (n_time, n_wavelength)
        Counts per pixel (e.g. background-subtracted); block-averaged to at most
        ``max_cells`` cells (:func:`movie_factors`), stored as float32.
    emitters : iterable of PLEmitter
        Emitters of a :class:`~nanodomains.records.emitters.PLEmitters` record. Without
        ``tracks``, each of its lines is drawn at its centre over its on intervals.
    tracks : dict, optional
        Emitter id -> (wavelength_nm, time_s) arrays of its per-frame fitted line
        centres (NaN where not detected), drawn as points instead.
    title : str
    max_cells : int
    gamma : float
        Colour scale exponent (0.5: square-root, as the report's PNG overview).
    time_units : {"s", "frame"}
        ``"frame"`` for an untimed movie (``time_s`` is then the frame index): the axis
        and hover labels say frame, not s.

    Returns
    -------
    plotly.graph_objects.Figure

    Raises
    ------
    InputError
        When the shapes of ``counts`` and the axes disagree.
    """
    go = _go()
    if time_units not in ("s", "frame"):
        raise InputError(f"time_units must be 's' or 'frame', got {time_units!r}")
    t_hover, t_title = ("t %{y:.3f} s", "time (s)") if time_units == "s" else ("frame %{y:.1f}", "frame")
    t = np.asarray(time_s, dtype=np.float64)
    wl = np.asarray(wavelength_nm, dtype=np.float64)
    z = np.asarray(counts)
    if z.shape != (t.size, wl.size):
        raise InputError(f"movie counts of shape {z.shape} do not match {t.size} times x {wl.size} wavelengths")
    ft, fw = movie_factors(t.size, wl.size, max_cells)
    zb, tb, wb = block_mean(z, ft, fw), _coord_mean(t, ft), _coord_mean(wl, fw)
    finite = zb[np.isfinite(zb)]
    # the square-root scale shows faint lines; the top of the scale is the brightest cell
    lo, hi = (float(np.percentile(finite, 1)), float(finite.max())) if finite.size else (0.0, 1.0)
    lo = max(lo, 0.0)
    binned = f" (means of {ft} x {fw} frames x pixels)" if ft * fw > 1 else ""
    fig = go.Figure(go.Heatmap(
        x=wb, y=tb, z=zb, zmin=lo, zmax=max(float(hi), lo + 1e-9), colorscale=_gamma_colorscale("Inferno", gamma),
        colorbar={"title": {"text": "counts"}}, name="movie",
        hovertemplate=t_hover + "<br>wavelength %{x:.3f} nm<br>counts %{z:.4g}" + binned + "<extra></extra>"))
    for k, e in enumerate(emitters):
        colour = PALETTE[k % len(PALETTE)]
        label = f"{e.id} {e.kind}" + (f" FSS {float(e.fss_uev):.0f} ueV"
                                      if e.kind in ("doublet", "triplet") and e.fss_uev.value else "")
        if tracks is not None and e.id in tracks:
            x, y = (np.asarray(a, dtype=np.float64) for a in tracks[e.id])
            keep = np.isfinite(x) & np.isfinite(y)
            fig.add_trace(go.Scatter(x=x[keep].astype(np.float32), y=y[keep].astype(np.float32), mode="markers",
                                     marker={"size": 4, "color": colour, "line": {"width": 0.5, "color": "white"}},
                                     name=label,
                                     hovertemplate=f"{e.id} ({e.kind})<br>{t_hover}<br>"
                                                   "line %{x:.4f} nm<extra></extra>"))
        else:
            x, y = _interval_segments(e, t)
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line={"color": colour, "width": 2}, name=label,
                                     hovertemplate=f"{e.id} ({e.kind})<br>{t_hover}<br>"
                                                   "line %{x:.4f} nm (record)<extra></extra>"))
    _layout(fig, title, 560, xaxis_title="wavelength (nm)", yaxis_title=t_title,
            xaxis={"range": [float(wl[0]), float(wl[-1])]} if wl.size > 1 else {})
    return fig


def _interval_segments(emitter, t: np.ndarray) -> tuple[list, list]:
    """Vertical segments: every line of ``emitter`` at its centre over each on interval."""
    intervals = [tuple(iv) for iv in emitter.intervals_s] or [(float(t[0]), float(t[-1]))]
    xs, ys = [], []
    for lam in emitter.lines_nm or [float(emitter.center_nm)]:
        for t0, t1 in intervals:
            xs += [lam, lam, None]
            ys += [t0, t1, None]
    return xs, ys


def movie_analysis_figure(analysis, title: str = ""):
    """:func:`movie_figure` of a :class:`~nanodomains.spectroscopy.movie_analysis.MovieAnalysis`.

    The heatmap is the cleaned movie less its baseline (what the analysis fitted); the
    overlay is every emitter's tracks, one point per frame in which a line was fitted.

    Parameters
    ----------
    analysis : MovieAnalysis
    title : str

    Returns
    -------
    plotly.graph_objects.Figure
    """
    t = np.asarray(analysis.time_s, dtype=np.float64)
    tracks = {}
    for e in analysis.emitters:
        xs = [np.asarray(analysis.tracks.center_nm[tr], dtype=np.float64) for tr in e.tracks]
        if xs:
            tracks[e.id] = (np.concatenate(xs), np.tile(t, len(xs)))
    untimed = (getattr(analysis.record, "meta", None) or {}).get("time_units") == "frame"
    return movie_figure(t, analysis.wavelength_nm, analysis.cleaned - analysis.background,
                        emitters=analysis.emitters, tracks=tracks, title=title or analysis.record.source or "",
                        time_units="frame" if untimed else "s")


# ---- STEM images --------------------------------------------------------------------------

def stem_figure(image, columns=None, record=None, labels=None, *, title: str = "", max_px: int = IMAGE_MAX_PX,
                gamma: float = 0.6):
    """An ADF-STEM image with its atom columns, domain outlines and boundaries.

    Parameters
    ----------
    image : xarray.DataArray, dims (y, x)
        Coordinates ``x`` and ``y`` in nm (or ``pixel_size_pm`` in its attributes);
        block-averaged to at most ``max_px`` pixels per side, stored as float32.
    columns : pandas.DataFrame, optional
        Fitted columns (``x_nm``, ``y_nm``; used when present: ``type``,
        ``sublattice``, ``integrated_intensity``, ``amplitude``, ``domain``), one
        legend entry per (type, sublattice).
    record : StemDomains, optional
        Its domains give the outlines' names and formulas, its boundaries the segments
        drawn (RP red, other cyan).
    labels : ndarray of int, shape (ny, nx), optional
        Domain id per pixel of ``image`` (0 outside): each domain's outline.
    title : str
    max_px : int
    gamma : float
        Grey-scale exponent (as the PNG overview, 0.6).

    Returns
    -------
    plotly.graph_objects.Figure

    Raises
    ------
    InputError
        A non-2-D image, or labels of another shape.
    """
    go = _go()
    img = np.asarray(image)
    if img.ndim != 2:
        raise InputError(f"stem_figure needs a 2-D image, got shape {img.shape}")
    if not np.isfinite(img).any():
        raise InputError(f"stem_figure: the image of shape {img.shape} has no finite pixel")
    xc, yc = _image_coords(image)
    f = max(1, math.ceil(max(img.shape) / max_px))
    zb = block_mean(img, f, f)
    lo, hi = np.percentile(zb[np.isfinite(zb)], [1, 99.5])
    fig = go.Figure(go.Heatmap(
        x=_coord_mean(xc, f), y=_coord_mean(yc, f), z=zb, zmin=float(lo), zmax=max(float(hi), float(lo) + 1e-9),
        colorscale=_gamma_colorscale("Greys_r", gamma), showscale=False, name="image",
        hovertemplate="x %{x:.3f} nm<br>y %{y:.3f} nm<br>intensity %{z:.4g}" +
                      (f" (means of {f} x {f} px)" if f > 1 else "") + "<extra></extra>"))
    if columns is not None and len(columns):
        _add_columns(fig, columns, record)
    if labels is not None:
        if np.shape(labels) != img.shape:
            raise InputError(f"labels of shape {np.shape(labels)} do not match the image {img.shape}")
        _add_outlines(fig, np.asarray(labels), xc, yc, f, record)
    if record is not None:
        _add_boundaries(fig, record)
    _layout(fig, title, 680, xaxis_title="x (nm)", yaxis_title="y (nm)",
            yaxis={"autorange": "reversed", "scaleanchor": "x", "scaleratio": 1},
            xaxis={"constrain": "domain"}, legend={"itemsizing": "constant", "font": {"size": 10}})
    return fig


def _image_coords(image) -> tuple[np.ndarray, np.ndarray]:
    """x and y pixel centres in nm: the DataArray's coordinates, else its pixel size."""
    shape = np.shape(image)
    coords = getattr(image, "coords", {})
    if "x" in coords and "y" in coords:
        return np.asarray(image["x"], dtype=np.float64), np.asarray(image["y"], dtype=np.float64)
    px = getattr(image, "attrs", {}).get("pixel_size_pm")
    if px is None:
        raise InputError("stem_figure: the image has neither x / y coordinates nor a pixel_size_pm attribute")
    return np.arange(shape[1]) * px * 1e-3, np.arange(shape[0]) * px * 1e-3


def _domain_names(record) -> dict[int, Any]:
    return {d.id: d for d in record.domains} if record is not None else {}


def _add_columns(fig, columns, record) -> None:
    """One scatter trace per (type, sublattice): hover type, sublattice, intensity, domain."""
    go = _go()
    names = {k: d.name or f"D{k}" for k, d in _domain_names(record).items()}
    n = len(columns)
    kind = columns["type"].astype(str).to_numpy() if "type" in columns else np.full(n, "column")
    sub = columns["sublattice"].to_numpy().astype(int) if "sublattice" in columns else np.zeros(n, int)
    inten = columns.get("integrated_intensity", columns.get("amplitude"))
    inten = np.full(n, np.nan) if inten is None else inten.to_numpy(dtype=np.float64)
    dom = columns["domain"].to_numpy().astype(int) if "domain" in columns else np.zeros(n, int)
    markers = {1: "circle", -1: "diamond", 0: "square"}
    for k, (ty, s) in enumerate(sorted(set(zip(kind, sub)), key=lambda p: (p[0], -p[1]))):
        m = (kind == ty) & (sub == s)
        text = [names.get(d, "none") for d in dom[m]]
        fig.add_trace(go.Scatter(
            x=columns["x_nm"].to_numpy()[m].astype(np.float32), y=columns["y_nm"].to_numpy()[m].astype(np.float32),
            mode="markers", name=f"{ty} columns, sublattice {s:+d}" if s else f"{ty} columns",
            marker={"size": 5, "symbol": markers.get(s, "circle"), "color": PALETTE[(k + 1) % len(PALETTE)],
                    "line": {"width": 0}}, opacity=0.8,
            customdata=inten[m].astype(np.float32), text=text,
            hovertemplate=(f"{ty} column, sublattice {s:+d}<br>" if s else f"{ty} column<br>")
            + "x %{x:.3f} nm, y %{y:.3f} nm<br>intensity %{customdata:.4g}<br>domain %{text}<extra></extra>"))


def _add_outlines(fig, labels: np.ndarray, xc: np.ndarray, yc: np.ndarray, f: int, record) -> None:
    """Each domain's outline: contours of its label mask sampled at the block centres."""
    from skimage.measure import approximate_polygon, find_contours

    go = _go()
    domains = _domain_names(record)
    lab = labels[f // 2::f, f // 2::f]
    for k, d in enumerate(int(v) for v in np.unique(lab) if v > 0):
        xs, ys = [], []
        for c in find_contours(np.pad(lab == d, 1).astype(np.float32), 0.5):
            c = approximate_polygon(c - 1.0, tolerance=0.5)  # undo the padding
            xs += list(np.interp(f // 2 + c[:, 1] * f, np.arange(xc.size), xc)) + [None]
            ys += list(np.interp(f // 2 + c[:, 0] * f, np.arange(yc.size), yc)) + [None]
        dom = domains.get(d)
        name = (dom.name if dom is not None and dom.name else f"D{d}")
        info = name + (f": {dom.formula}" if dom is not None and dom.formula else "")
        if dom is not None and dom.br_fraction.value is not None:
            info += f", Br fraction {dom.br_fraction.value:.3f} +- {dom.br_fraction.stderr or math.nan:.3f}"
        if dom is not None and dom.lattice_pm.value is not None:
            info += f", lattice {dom.lattice_pm.value:.1f} pm"
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"outline {name}", legendgroup="outlines",
                                 line={"color": OUTLINE_COLOURS[k % len(OUTLINE_COLOURS)], "width": 2},
                                 hovertemplate=info +
                                 "<extra></extra>"))
        if dom is not None and len(dom.centroid_nm) == 2:
            fig.add_annotation(x=float(dom.centroid_nm[0]), y=float(dom.centroid_nm[1]), text=f"<b>{name}</b>",
                               showarrow=False, font={"color": "white", "size": 14}, bgcolor="rgba(0,0,0,0.4)")


def _add_boundaries(fig, record) -> None:
    """Boundary segments of the record: RP red, other cyan; hover the evidence."""
    go = _go()
    names = {k: d.name or f"D{k}" for k, d in _domain_names(record).items()}
    for kind, colour in (("other", "cyan"), ("RP", "red")):
        xs, ys, text = [], [], []
        for b in record.boundaries:
            if (b.type == "RP") != (kind == "RP") or len(b.segment_nm) != 2:
                continue
            seg = np.asarray(b.segment_nm, dtype=np.float64)
            i, j = b.domains
            label = f"{b.type} boundary {names.get(i, i)} | {names.get(j, j)}" + (
                f"<br>{b.length_nm:.1f} nm" if b.length_nm else "") + (f"<br>{b.evidence}" if getattr(
                    b, "evidence", None) else "")
            xs += [seg[0, 0], seg[1, 0], None]
            ys += [seg[0, 1], seg[1, 1], None]
            text += [label, label, None]
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", text=text, name=f"{kind} boundaries",
                                     line={"color": colour, "width": 4}, marker={"size": 6, "color": colour},
                                     hovertemplate="%{text}<extra></extra>"))


def stem_analysis_figure(result, title: str = ""):
    """:func:`stem_figure` of a :class:`~nanodomains.stem.analyze.AnalysisResult`.

    Parameters
    ----------
    result : AnalysisResult
    title : str

    Returns
    -------
    plotly.graph_objects.Figure
    """
    seg = result.segmentation
    return stem_figure(result.image, result.columns, result.record, None if seg is None else seg.labels,
                       title=title or result.record.source or "")


# ---- photon statistics ------------------------------------------------------------------

def g2_figure(record, title: str = ""):
    """g2(tau) of a :class:`~nanodomains.records.photons.G2Record` with g2(0) +- its error.

    The histogram as steps; g2(0) (the zero-peak area over the mean side-peak area for
    pulsed light, the central bins for CW) as a point with its standard error at the
    zero-delay offset; the zero-peak window shaded (pulsed); g2 = 1 dashed.

    Parameters
    ----------
    record : G2Record
    title : str

    Returns
    -------
    plotly.graph_objects.Figure

    Examples
    --------
    >>> from nanodomains.records import G2Record
    >>> r = G2Record(g2_0=(0.1, 0.02), mode="cw", tau_ns=[-1.0, 0.0, 1.0], counts=[9, 1, 8], g2=[0.9, 0.1, 0.8])
    >>> g2_figure(r).layout.title.text
    'cw: g2(0) = 0.100 ± 0.020'
    """
    go = _go()
    g0, err = record.g2_0.value, record.g2_0.stderr
    off = record.offset_ns or 0.0
    fig = go.Figure(go.Scatter(x=np.asarray(record.tau_ns, np.float32), y=np.asarray(record.g2, np.float32),
                               mode="lines", line={"shape": "hvh", "width": 1, "color": "#333"}, name="g2(tau)",
                               hovertemplate="tau %{x:.3f} ns<br>g2 %{y:.4g}<extra></extra>"))
    if g0 is not None:
        fig.add_trace(go.Scatter(x=[off], y=[g0], mode="markers", name="g2(0) +- stderr",
                                 marker={"size": 9, "color": "#d62728"},
                                 error_y={"type": "data", "array": [err or 0.0], "visible": err is not None},
                                 hovertemplate=f"g2(0) = {g0:.4g} ± {math.nan if err is None else err:.2g}"
                                               "<extra></extra>"))
    if record.mode == "pulsed" and record.period_ns:
        half = (record.peak_window_ns or record.period_ns) / 2
        fig.add_vrect(x0=off - half, x1=off + half, fillcolor="#d62728", opacity=0.08, line_width=0)
    fig.add_hline(y=1.0, line={"dash": "dash", "width": 1, "color": "#1f77b4"})
    head = f"{record.mode}: g2(0) = {math.nan if g0 is None else g0:.3f} ± {math.nan if err is None else err:.3f}"
    _layout(fig, f"{title}  {head}".strip() if title else head, 380, xaxis_title="tau (ns)",
            yaxis_title="g2(tau)", hovermode="closest")
    return fig


def decay_figure(record, title: str = ""):
    """A TCSPC decay with its fitted lifetime model (log counts) and weighted residuals.

    Parameters
    ----------
    record : LifetimeRecord
        With the stored arrays ``time_ns``, ``counts``, ``model`` (NaN outside the
        fit range).
    title : str

    Returns
    -------
    plotly.graph_objects.Figure

    Raises
    ------
    InputError
        When the record holds no decay arrays.
    """
    go = _go()
    from plotly.subplots import make_subplots

    t = np.asarray(record.time_ns, dtype=np.float64)
    if t.size == 0:
        raise InputError("decay_figure: the lifetime record holds no decay (time_ns, counts, model are empty)")
    n, m = np.asarray(record.counts, dtype=np.float64), np.asarray(record.model, dtype=np.float64)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.75, 0.25], vertical_spacing=0.04)
    pos = n > 0  # a log axis cannot show empty bins
    fig.add_trace(go.Scatter(x=t[pos].astype(np.float32), y=n[pos].astype(np.float32), mode="markers",
                             marker={"size": 3, "color": "#555"}, name="counts",
                             hovertemplate="t %{x:.3f} ns<br>counts %{y:.0f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=t.astype(np.float32), y=m.astype(np.float32), mode="lines", name="model",
                             line={"color": "#d62728", "width": 2}, connectgaps=False,
                             hovertemplate="t %{x:.3f} ns<br>model %{y:.4g}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=t.astype(np.float32), y=np.asarray(record.residuals, np.float32), mode="lines",
                             line={"color": "#333", "width": 1}, name="(n - mu) / sqrt(mu)", connectgaps=False,
                             hovertemplate="t %{x:.3f} ns<br>residual %{y:.2f}<extra></extra>"), row=2, col=1)
    if record.fit_range_ns is not None:
        fig.add_vrect(x0=record.fit_range_ns[0], x1=record.fit_range_ns[1], fillcolor="#1f77b4", opacity=0.07,
                      line_width=0, row="all", col=1)
    taus = ", ".join(f"{c.tau_ns.value:.4g} ± {c.tau_ns.stderr or math.nan:.2g}" for c in record.components)
    head = f"{record.method or 'fit'}: tau = {taus} ns" + (
        f", reduced deviance {record.reduced_deviance:.2f}" if record.reduced_deviance is not None else "")
    if record.fit_range_ns is not None:  # open on the fitted part; double-click shows the whole period
        lo, hi = record.fit_range_ns
        fig.update_xaxes(range=[float(t[0]), min(float(t[-1]), hi + (hi - lo))])
    fig.update_yaxes(type="log", title_text="counts", row=1, col=1)
    fig.update_yaxes(title_text="residual", row=2, col=1)
    fig.update_xaxes(title_text="time (ns)", row=2, col=1)
    _layout(fig, f"{title}  {head}".strip() if title else head, 460, hovermode="closest")
    return fig


# ---- batch runs ---------------------------------------------------------------------------

def batch_items_figure(records: list[dict]):
    """The items of a batch run: time per item, coloured by status; hover the results.

    Parameters
    ----------
    records : list of dict
        The batch's item records (``id``, ``kind``, ``status``, ``elapsed_s``,
        ``results`` or ``error``).

    Returns
    -------
    plotly.graph_objects.Figure

    Examples
    --------
    >>> fig = batch_items_figure([{"id": "a", "kind": "nc_model", "status": "ok", "elapsed_s": 0.1,
    ...                            "results": {"n_domains": 1}}])
    >>> [t.name for t in fig.data]
    ['ok']
    """
    go = _go()
    fig = go.Figure()
    colours = {"ok": "#2ca02c", "error": "#d62728", "not run": "#7f7f7f"}
    for status in ("ok", "error", "not run"):
        rows = [r for r in records if r.get("status") == status]
        if not rows:
            continue
        text = [_item_hover(r) for r in rows]
        fig.add_trace(go.Bar(x=[r["id"] for r in rows], y=[r.get("elapsed_s") or 0.0 for r in rows], name=status,
                             marker_color=colours[status], text=text, textposition="none",
                             hovertemplate="%{x}<br>%{y:.2f} s<br>%{text}<extra></extra>"))
    _layout(fig, "items: time per item (hover: results)", 360, xaxis_title="item", yaxis_title="elapsed (s)",
            barmode="overlay", xaxis={"type": "category"})
    return fig


def _item_hover(record: dict) -> str:
    parts = [record.get("kind", "")]
    if record.get("status") == "error":
        parts.append(f"{record.get('error_type', '')}: {record.get('error', '')}"[:200])
    for k, v in list((record.get("results") or {}).items())[:12]:
        if isinstance(v, float):
            parts.append(f"{k} = {v:.4g}")
        elif isinstance(v, (int, str, bool)):
            parts.append(f"{k} = {v}")
    return "<br>".join(p for p in parts if p)

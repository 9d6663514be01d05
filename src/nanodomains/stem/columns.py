r"""Atom columns in ADF-STEM images: detection, joint Gaussian refinement,
Voronoi scattering cross-sections and sublattice classification.

Model. Around each column k the image is modelled as a sum of isotropic 2-D
Gaussians plus a local constant background,

.. math:: I(\mathbf r) \approx b_k + \sum_j A_j
          \exp\!\left(-\frac{|\mathbf r-\mathbf r_j|^2}{2\sigma_j^2}\right),

the usual incoherent-imaging model of StatSTEM (De Backer et al.,
Ultramicroscopy 171, 104 (2016) [1]_) and Atomap (Nord et al., Adv. Struct. Chem.
Imaging 3, 9 (2017) [2]_; Atomap fits an elliptical Gaussian per column, one column
at a time).

Joint fitting. Overlapping neighbours are fitted together by block-Jacobi
iterations: every column's parameters (A, y, x, sigma, b) are fitted by
Levenberg-Marquardt to the pixels within ``fit_radius_px`` of it after subtracting
the current model of all *other* columns (rendered to +-4.5 sigma); all columns are
updated at once (numba, parallel over columns) and the sweep is repeated until no
position moves by more than 1e-3 px (at most ``n_sweeps``). At convergence every
column is at the least-squares optimum given its neighbours, i.e. a fixed point of
the joint fit. One-sigma uncertainties are the square roots of the diagonal of
:math:`(J^TJ)^{-1}\,\mathrm{RSS}/(m-5)` of each column's final fit.

Failed fits are reported, never replaced silently: ``fit_ok`` is False and
``fit_status`` says why (``not_converged``, ``sigma_out_of_bounds`` (outside 0.25x
to 4x the initial sigma), ``moved_too_far`` (more than half the fit radius),
``nonpositive_amplitude``, ``singular``, ``insignificant_amplitude`` (below three
standard errors: no column there)); the table then keeps the *detected*
position and NaN for the fitted amplitude, width and uncertainties.

Scattering cross-sections. The integrated intensity of each column is the sum of
the image over its Voronoi cell (the pixels nearer to it than to any other column,
within ``max_radius_px``) times the pixel area, as in StatSTEM [1]_ (E. Rosenauer et
al., Ultramicroscopy 111, 1316 (2011); Van Aert et al., Ultramicroscopy 109, 1236
(2009)). Units: image units x nm^2. Cells cut by the image border or the radius
limit are flagged (``voronoi_complete`` False) as their sum is incomplete. The
Gaussian volume :math:`2\pi A\sigma^2` is given as well.

Classification for [100]-projected perovskites (CsPbX3: Cs at (0,0), Pb+X at
(1/2,1/2), X only at (1/2,0) and (0,1/2); PHYSICS.md "Z-contrast"). Every column is
placed in the *local* lattice frame of the GPA maps: its fractional coordinates are
:math:`f_i = \mathbf g_i\cdot\mathbf r + P_{g_i}(\mathbf r)/2\pi` (mod 1), so strain,
rotation and the pi phase step of a Ruddlesden-Popper (RP) fault are followed.
After subtracting the image-wide origin the half-cell position :math:`(s_1, s_2)`,
:math:`s_i\in\{0, 1/2\}`, gives the site: ``X`` when :math:`s_1\neq s_2`, otherwise
an A/B site of parity :math:`s_1`. An RP fault (projected shift (1/2,1/2)) maps X
sites onto X sites and swaps the two other sites, so the two non-X sites are told
apart by intensity, locally: each non-X column votes whether it is brighter than
the mean of its four diagonal non-X neighbours (the 2x2 checkerboard around it),
votes are averaged over ~1.6 cells, and the brighter class is named ``names[1]``
(``PbX``), the dimmer ``names[0]`` (``Cs``). With the power law
:math:`I\propto\sum Z^n` (n ~ 1.7) a Pb+I column is ~3x a Cs column and an I column
about equal to Cs; for a partly shifted column (shifted fraction s > 0.5) the
brighter column is the Cs-*site* of the unshifted cell, so ``type`` names the
dominant projected content, not the crystallographic site. Columns farther than
0.25 half-cells from any site get type ``unindexed``. ``method="global"`` uses one
vote over the whole image instead (for images without RP faults, e.g. PbTiO3/SrRuO3
where the A/B contrast inverts between the layers).

References
----------
.. [1] A. De Backer et al., "StatSTEM: An efficient approach for accurate and
   precise model-based quantification of atomic resolution electron microscopy
   images", Ultramicroscopy 171, 104-116 (2016).
.. [2] M. Nord et al., "Atomap: a new software tool for the automated analysis of
   atomic resolution images using two-dimensional Gaussian fitting", Adv. Struct.
   Chem. Imaging 3, 9 (2017).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numba as nb
import numpy as np
import xarray as xr
from scipy import ndimage
from scipy.spatial import cKDTree

from nanodomains.errors import FitError, InputError, require_positive
from nanodomains.stem.gpa import GPAResult, Lattice, gpa
from nanodomains.stem.io import validate_image_array

__all__ = [
    "ColumnFit",
    "classify_columns",
    "detect_columns",
    "find_columns",
    "lattice_from_columns",
    "nearest_column_map",
    "refine_columns",
    "render_columns",
    "voronoi_integrate",
    "write_columns_csv",
]

FIT_STATUS = (
    "ok",
    "not_converged",
    "sigma_out_of_bounds",
    "moved_too_far",
    "nonpositive_amplitude",
    "singular",
    "insignificant_amplitude",
)
_RENDER_SIGMAS = 4.5
BG_SMOOTH_NN = 2.5  # background smoothing, in nearest spacings
#: default fit radius in nearest-neighbour distances (Atomap's ``percent_to_nn``
#: default, Nord et al. 2017). Larger windows take in more of the neighbours, and
#: any column the model lacks (undetected weak or O columns) biases the position:
#: on forward-model images with broad probes (sigma/nn 0.18-0.25) the median
#: position error is smallest at 0.4 nn of 0.4-0.75 nn, by 5-25 %, and equal for
#: sharp probes (benchmarks/fit_window_accuracy.py, docs/stem_analysis.md).
FIT_RADIUS_NN = 0.4
#: the fit radius is at least this many estimated Gaussian widths (a disc of
#: 1.5 sigma holds 68 % of the column, enough to fix A and sigma)
FIT_RADIUS_SIGMA = 1.5


# --------------------------------------------------------------------------- numba kernels


@nb.njit(cache=True)
def _paint_nearest(py: np.ndarray, px: np.ndarray, r: float, index: np.ndarray, d2: np.ndarray) -> None:
    """Each pixel within ``r`` (strictly) of a column gets the index of its nearest column."""
    ny, nx = index.shape
    r2 = r * r
    for k in range(len(py)):
        y0 = max(int(np.ceil(py[k] - r)), 0)
        y1 = min(int(np.floor(py[k] + r)), ny - 1)
        x0 = max(int(np.ceil(px[k] - r)), 0)
        x1 = min(int(np.floor(px[k] + r)), nx - 1)
        for i in range(y0, y1 + 1):
            dy = i - py[k]
            for j in range(x0, x1 + 1):
                dx = j - px[k]
                dd = dy * dy + dx * dx
                if dd < r2 and dd < d2[i, j]:
                    d2[i, j] = dd
                    index[i, j] = k


@nb.njit(cache=True)
def _render_into(out, a, y, x, s, use):
    ny, nx = out.shape
    for k in range(a.shape[0]):
        if not use[k]:
            continue
        hw = _RENDER_SIGMAS * s[k]
        y0 = max(int(np.floor(y[k] - hw)), 0)
        y1 = min(int(np.ceil(y[k] + hw)) + 1, ny)
        x0 = max(int(np.floor(x[k] - hw)), 0)
        x1 = min(int(np.ceil(x[k] + hw)) + 1, nx)
        inv = 0.5 / (s[k] * s[k])
        for iy in range(y0, y1):
            dy2 = (iy - y[k]) ** 2
            for ix in range(x0, x1):
                out[iy, ix] += a[k] * np.exp(-(dy2 + (ix - x[k]) ** 2) * inv)


@nb.njit(cache=True)
def _gauss_own(a, y, x, s, iy, ix):
    """Contribution of one rendered column at a pixel (0 outside its render window)."""
    hw = _RENDER_SIGMAS * s
    if iy < np.floor(y - hw) or iy > np.ceil(y + hw) or ix < np.floor(x - hw) or ix > np.ceil(x + hw):
        return 0.0
    return a * np.exp(-((iy - y) ** 2 + (ix - x) ** 2) * 0.5 / (s * s))


@nb.njit(cache=True)
def _eval_gauss(q, py, px, t, m, jac, res, want_jac, fit_b):
    """Residuals (and Jacobian) of A exp(-r^2 / 2 s^2) + b at m patch pixels."""
    rss = 0.0
    inv = 1.0 / (q[3] * q[3])
    for i in range(m):
        dy = py[i] - q[1]
        dx = px[i] - q[2]
        r2 = dy * dy + dx * dx
        e = np.exp(-0.5 * r2 * inv)
        res[i] = t[i] - (q[0] * e + q[4])
        rss += res[i] * res[i]
        if want_jac:
            jac[i, 0] = e
            jac[i, 1] = q[0] * e * dy * inv
            jac[i, 2] = q[0] * e * dx * inv
            jac[i, 3] = q[0] * e * r2 * inv / q[3]
            jac[i, 4] = 1.0 if fit_b else 0.0
    return rss


@nb.njit(cache=True)
def _solve5(a, b, out):
    """Gaussian elimination with partial pivoting; False if singular."""
    n = b.shape[0]
    m = a.copy()
    v = b.copy()
    for c in range(n):
        piv = c
        for r in range(c + 1, n):
            if abs(m[r, c]) > abs(m[piv, c]):
                piv = r
        if not abs(m[piv, c]) > 1e-300:
            return False
        if piv != c:
            for j in range(n):
                tmp = m[c, j]
                m[c, j] = m[piv, j]
                m[piv, j] = tmp
            tmp = v[c]
            v[c] = v[piv]
            v[piv] = tmp
        for r in range(c + 1, n):
            f = m[r, c] / m[c, c]
            for j in range(c, n):
                m[r, j] -= f * m[c, j]
            v[r] -= f * v[c]
    for c in range(n - 1, -1, -1):
        acc = v[c]
        for j in range(c + 1, n):
            acc -= m[c, j] * out[j]
        out[c] = acc / m[c, c]
    return True


@nb.njit(parallel=True, cache=True)
def _fit_sweep(image, model, p, rendered, cy, cx, radius, max_iter, s_lo, s_hi, fit_b, out_p, out_err, out_conv, out_rss):
    """One block-Jacobi sweep: LM fit of (A, y, x, sigma, b) for every column."""
    ny, nx = image.shape
    n = p.shape[0]
    w = int(np.ceil(radius))
    r2max = radius * radius
    npx = (2 * w + 1) * (2 * w + 1)
    for k in nb.prange(n):
        # patch target = image - (model of all columns - this column's own part)
        py = np.empty(npx)
        px = np.empty(npx)
        t = np.empty(npx)
        m = 0
        for iy in range(cy[k] - w, cy[k] + w + 1):
            if iy < 0 or iy >= ny:
                continue
            for ix in range(cx[k] - w, cx[k] + w + 1):
                if ix < 0 or ix >= nx or (iy - cy[k]) ** 2 + (ix - cx[k]) ** 2 > r2max:
                    continue
                own = _gauss_own(p[k, 0], p[k, 1], p[k, 2], p[k, 3], iy, ix) if rendered[k] else 0.0
                py[m] = iy
                px[m] = ix
                t[m] = image[iy, ix] - (model[iy, ix] - own)
                m += 1
        q = p[k].copy()
        out_p[k] = q
        if m <= 6:
            out_conv[k] = -1
            out_rss[k] = np.nan
            out_err[k, :] = np.nan
            continue
        jac = np.empty((m, 5))
        res = np.empty(m)
        jn = np.empty((m, 5))
        rn = np.empty(m)
        step = np.empty(5)
        rss = _eval_gauss(q, py, px, t, m, jac, res, True, fit_b)
        lam = 1e-3
        conv = 0
        for it in range(max_iter):
            jtj = jac.T @ jac
            jtr = jac.T @ res
            improved = False
            for _ in range(12):
                a_mat = jtj.copy()
                for j in range(5):
                    a_mat[j, j] = a_mat[j, j] * (1.0 + lam) + 1e-12
                if not fit_b:
                    a_mat[4, 4] = 1.0  # background fixed: zero step
                if not _solve5(a_mat, jtr, step):
                    lam *= 10.0
                    continue
                qn = q + step
                if qn[3] < s_lo or qn[3] > s_hi:  # keep sigma inside its bounds
                    lam *= 10.0
                    continue
                rss_n = _eval_gauss(qn, py, px, t, m, jn, rn, True, fit_b)
                if rss_n <= rss:
                    small = (abs(step[1]) < 1e-5 and abs(step[2]) < 1e-5) or (rss - rss_n) <= 1e-10 * rss
                    q = qn
                    jac, jn = jn, jac
                    res, rn = rn, res
                    rss = rss_n
                    lam = max(lam * 0.1, 1e-9)
                    improved = True
                    if small:
                        conv = 1
                    break
                lam *= 10.0
            if not improved:
                conv = 1  # no downhill step left: at the minimum to machine precision
            if conv:
                break
        out_p[k] = q
        out_conv[k] = conv
        out_rss[k] = rss
        jtj = jac.T @ jac
        if not fit_b:
            jtj[4, 4] = 1.0
        dof = max(m - 5 if fit_b else m - 4, 1)
        e = np.zeros(5)
        col = np.empty(5)
        ok = True
        for j in range(5):  # diagonal of the inverse, column by column
            e[:] = 0.0
            e[j] = 1.0
            if not _solve5(jtj, e, col):
                ok = False
                break
            out_err[k, j] = np.sqrt(abs(col[j]) * rss / dof)
        if not ok:
            out_conv[k] = -1
            out_err[k, :] = np.nan


# --------------------------------------------------------------------------- rendering


def render_columns(
    shape: tuple[int, int],
    positions_px: np.ndarray,
    amplitude: float | np.ndarray,
    sigma_px: float | np.ndarray,
    background: float = 0.0,
) -> np.ndarray:
    """Image of isotropic Gaussian columns (the fit model), rendered to +-4.5 sigma.

    Parameters
    ----------
    shape : (ny, nx)
    positions_px : ndarray, shape (n, 2)
        Column centres (y, x) in px (pixel centres at integer coordinates).
    amplitude, sigma_px : float or ndarray, shape (n,)
        Peak heights (image units) and widths (px).
    background : float
        Constant added everywhere.

    Returns
    -------
    ndarray, shape (ny, nx), float64
    """
    pos = np.atleast_2d(np.asarray(positions_px, dtype=np.float64))
    n = len(pos)
    a = np.broadcast_to(np.asarray(amplitude, dtype=np.float64), (n,)).copy()
    s = np.broadcast_to(np.asarray(sigma_px, dtype=np.float64), (n,)).copy()
    if np.any(s <= 0) or not np.all(np.isfinite(pos)):
        raise InputError("render_columns: sigma_px must be > 0 and positions finite")
    out = np.full(tuple(int(v) for v in shape), float(background))
    _render_into(out, a, pos[:, 0].copy(), pos[:, 1].copy(), s, np.ones(n, dtype=np.bool_))
    return out


# --------------------------------------------------------------------------- detection


def _image_px(image: Any) -> tuple[np.ndarray, float | None, tuple[float, float]]:
    if isinstance(image, xr.DataArray):
        arr = validate_image_array(image.values, "image", allow_stack=False)
        px = image.attrs.get("pixel_size_pm")
        origin = (float(image["y"][0]), float(image["x"][0])) if "y" in image.coords else (0.0, 0.0)
        return arr, (float(px) if px is not None else None), origin
    return validate_image_array(image, "image", allow_stack=False), None, (0.0, 0.0)


def _nn_spacing_px(lattice: Lattice | None, min_separation_px: float | None) -> float:
    """Nearest column spacing: a/2 on the perovskite [100] half-cell grid."""
    if lattice is not None:
        return 0.5 * float(lattice.cell_px.min())
    if min_separation_px is None:
        raise InputError("give a lattice (from find_lattice/gpa) or min_separation_px")
    return require_positive("min_separation_px", min_separation_px) / 0.7


def detect_columns(
    image: Any,
    lattice: Lattice | None = None,
    *,
    min_separation_px: float | None = None,
    smoothing_px: float | None = None,
    min_prominence: float = 0.1,
    exclude_border_px: int | None = None,
) -> np.ndarray:
    """Find atom columns as band-pass maxima, spaced by the lattice.

    The image is band-pass filtered (Gaussian of ``smoothing_px`` minus Gaussian of
    half the nearest spacing), local maxima (5 x 5) above ``min_prominence`` x the
    90th percentile of the maxima are kept, and of maxima closer than the minimum
    separation only the brightest survives (non-maximum suppression).

    Parameters
    ----------
    image : DataArray or ndarray, shape (ny, nx)
    lattice : Lattice, optional
        Lattice from :func:`~nanodomains.stem.gpa.find_lattice`; the nearest
        spacing is then ``|a|``/2 (columns of the [100] perovskite projection sit on a
        half-cell grid) and the minimum separation 0.7 of it.
    min_separation_px : float, optional
        Minimum separation when no lattice is given.
    smoothing_px : float, optional
        Gaussian smoothing (default 0.1 x nearest spacing).
    min_prominence : float
        Relative threshold of the band-pass maxima (rejects noise maxima at empty
        or oxygen sites).
    exclude_border_px : int, optional
        Drop maxima closer than this to the border (default 0.25 x spacing).

    Returns
    -------
    ndarray, shape (n, 2)
        Integer-pixel positions (y, x) as float.

    Raises
    ------
    FitError
        No column found.
    """
    arr, _, _ = _image_px(image)
    nn = _nn_spacing_px(lattice, min_separation_px)
    min_sep = 0.7 * nn if min_separation_px is None else float(min_separation_px)
    s_small = smoothing_px if smoothing_px is not None else max(0.1 * nn, 0.5)
    band = ndimage.gaussian_filter(arr, s_small) - ndimage.gaussian_filter(arr, 0.5 * nn)
    from skimage.feature import peak_local_max

    border = int(round(0.25 * nn)) if exclude_border_px is None else int(exclude_border_px)
    pk = peak_local_max(band, min_distance=2, exclude_border=max(border, 0) or False)
    if len(pk) == 0:
        raise FitError("no atom columns found (no local maxima)")
    val = band[pk[:, 0], pk[:, 1]]
    ref = np.percentile(val, 90)
    if not ref > 0:
        raise FitError("no atom columns found (flat image)")
    keep = val >= min_prominence * ref
    pk, val = pk[keep], val[keep]
    # non-maximum suppression within the minimum separation
    pairs = cKDTree(pk.astype(float)).query_pairs(min_sep, output_type="ndarray")
    if len(pairs):
        i, j = pairs[:, 0], pairs[:, 1]
        loser = np.where(val[i] >= val[j], j, i)
        drop = np.zeros(len(pk), bool)
        drop[loser] = True
        pk = pk[~drop]
    return pk.astype(np.float64)


# --------------------------------------------------------------------------- refinement


class ColumnFit:
    """Result of :func:`refine_columns` (arrays of length n, positions in px).

    Attributes
    ----------
    y_px, x_px : ndarray
        Refined positions; the *initial* positions where ``fit_ok`` is False.
    y_err_px, x_err_px : ndarray
        One-sigma uncertainties (NaN where the fit failed).
    amplitude, amplitude_err : ndarray
        Gaussian peak height above the local background (image units).
    sigma_px, sigma_err_px : ndarray
    background, background_err : ndarray
        Local constant background of each column's fit.
    fit_ok : ndarray of bool
    fit_status : ndarray of str
        One of :data:`FIT_STATUS`.
    n_sweeps : int
        Joint-fit sweeps done.
    """

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)

    def __len__(self) -> int:
        return len(self.y_px)

    @property
    def positions_px(self) -> np.ndarray:
        """(n, 2) array of (y, x)."""
        return np.stack([self.y_px, self.x_px], axis=1)

    @property
    def gaussian_volume(self) -> np.ndarray:
        """2 pi A sigma^2 in image units x px^2."""
        return 2 * np.pi * self.amplitude * self.sigma_px**2


def refine_columns(
    image: Any,
    positions_px: np.ndarray,
    *,
    sigma_px: float | None = None,
    fit_radius_px: float | None = None,
    n_sweeps: int = 8,
    max_iter: int = 50,
    tol_px: float = 1e-3,
    damping: float = 1.0,
    background: str = "smooth",
) -> ColumnFit:
    """Refine column positions by joint (block-Jacobi) 2-D Gaussian fitting.

    Parameters
    ----------
    image : DataArray or ndarray, shape (ny, nx)
    positions_px : ndarray, shape (n, 2)
        Initial (y, x) positions in px, e.g. from :func:`detect_columns`.
    sigma_px : float, optional
        Initial Gaussian width; default: the median width of a first free fit
        started at 0.15 x the median nearest-neighbour distance. The width of
        every column is bounded to [0.25, 4] x this value.
    fit_radius_px : float, optional
        Pixels within this distance of the initial position enter a column's
        fit (default the larger of :data:`FIT_RADIUS_NN` = 0.4 x the median
        nearest-neighbour distance, Atomap's default (Nord et al. 2017), and
        :data:`FIT_RADIUS_SIGMA` = 1.5 x the estimated width, so that the patch
        reaches the flanks of the Gaussian; the width floor applies when the width
        is estimated, i.e. ``sigma_px`` is None).
    n_sweeps : int
        Maximum number of joint sweeps (each fits all columns once).
    max_iter : int
        Levenberg-Marquardt iterations per column and sweep.
    tol_px : float
        Stop when no column moves more than this in a sweep.
    damping : float
        Relaxation of the Jacobi update, p <- p + damping (p_fit - p); < 1
        keeps strongly overlapping neighbours from oscillating.
    background : {"smooth", "local"}
        "smooth" (default): a fixed background map (lower envelope of the image
        smoothed by 0.15 nearest spacings, minimum over two spacings, smoothed by
        2.5 spacings so that it is flat under every column) is
        subtracted and (A, y, x, sigma) are fitted; the global model is then one
        least-squares problem that the Jacobi sweeps converge on. "local": a free
        constant per column (Atomap-like); it is not shared between overlapping
        patches, so on broad, dense columns the sweeps may drift.

    Returns
    -------
    ColumnFit
    """
    arr, _, _ = _image_px(image)
    pos0 = np.atleast_2d(np.asarray(positions_px, dtype=np.float64))
    if pos0.ndim != 2 or pos0.shape[1] != 2 or len(pos0) == 0:
        raise InputError(f"positions_px must have shape (n, 2), got {np.shape(positions_px)}")
    if background not in ("smooth", "local"):
        raise InputError(f"background must be 'smooth' or 'local', got {background!r}")
    n = len(pos0)
    nn = _median_spacing(pos0, arr.shape)
    radius = max(float(fit_radius_px) if fit_radius_px is not None else FIT_RADIUS_NN * nn, 1.5)
    s0 = max(float(sigma_px) if sigma_px is not None else 0.15 * nn, 0.5)
    cy = np.clip(np.round(pos0[:, 0]).astype(np.int64), 0, arr.shape[0] - 1)
    cx = np.clip(np.round(pos0[:, 1]).astype(np.int64), 0, arr.shape[1] - 1)
    fit_b = background == "local"
    target, bgmap = _fit_target(arr, nn, fit_b)
    # initial parameters: background = patch minimum, amplitude = peak - background
    w = int(np.ceil(radius))
    b0 = ndimage.minimum_filter(target, size=2 * w + 1)[cy, cx] if fit_b else np.zeros(n)
    a0 = np.maximum(target[cy, cx] - b0, 1e-12 * max(np.abs(arr).max(), 1.0))
    state = _FitState(target, cy, cx, max_iter, fit_b, n)
    if sigma_px is None:
        s0 = state.estimate_width(a0, pos0, b0, radius, s0)
        if fit_radius_px is None:
            # the patch must reach the flanks of the Gaussian (A, sigma and b are
            # degenerate on its top); neighbours inside it are part of the joint model
            radius = max(radius, FIT_RADIUS_SIGMA * s0)
    p_init = np.stack([a0, pos0[:, 0], pos0[:, 1], np.full(n, s0), b0], axis=1)
    p, status, sweeps = state.joint_sweeps(p_init, radius, s0, n_sweeps, tol_px, damping)
    ok = status == 0
    out_p = np.where(ok[:, None], p, p_init)
    fitted = lambda j: np.where(ok, p[:, j], np.nan)  # noqa: E731
    ferr = lambda j: np.where(ok, state.err[:, j], np.nan)  # noqa: E731
    return ColumnFit(
        y_px=out_p[:, 1],
        x_px=out_p[:, 2],
        y_err_px=ferr(1),
        x_err_px=ferr(2),
        amplitude=fitted(0),
        amplitude_err=ferr(0),
        sigma_px=fitted(3),
        sigma_err_px=ferr(3),
        background=fitted(4) if fit_b else bgmap[cy, cx],
        background_err=ferr(4) if fit_b else np.zeros(n),
        fit_ok=ok,
        fit_status=np.array(FIT_STATUS, dtype=object)[status],
        n_sweeps=sweeps,
        fit_radius_px=radius,
    )


def _median_spacing(pos: np.ndarray, shape: tuple[int, int]) -> float:
    """Median nearest-neighbour distance of the positions (half the image for one column)."""
    if len(pos) < 2:
        return float(min(shape)) / 2
    d, _ = cKDTree(pos).query(pos, k=2)
    return float(np.median(d[:, 1]))


def _fit_target(arr: np.ndarray, nn: float, fit_b: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(image the Gaussians are fitted to, fixed background map or None for a local background)."""
    if fit_b:
        return arr, None
    # lower envelope of the image, smoothed over a cell: fixed background map
    size = 2 * int(round(nn)) + 1
    pre = ndimage.gaussian_filter(arr, 0.15 * nn)  # noise would bias the minimum low
    bgmap = ndimage.gaussian_filter(ndimage.minimum_filter(pre, size=size), BG_SMOOTH_NN * nn)
    return arr - bgmap, bgmap


class _FitState:
    """Buffers of the joint fit (errors, convergence flags, residuals) shared by its steps."""

    def __init__(self, target: np.ndarray, cy: np.ndarray, cx: np.ndarray, max_iter: int, fit_b: bool, n: int):
        self.target, self.cy, self.cx, self.max_iter, self.fit_b = target, cy, cx, max_iter, fit_b
        self.err = np.full((n, 5), np.nan)
        self.conv = np.zeros(n, dtype=np.int64)
        self.rss = np.zeros(n)
        self.rendered = np.ones(n, dtype=np.bool_)

    def sweep(self, p: np.ndarray, radius: float, s_lo: float, s_hi: float) -> np.ndarray:
        """One block-Jacobi sweep: each column refitted against the model of all the others."""
        model = np.zeros_like(self.target)
        _render_into(model, p[:, 0].copy(), p[:, 1].copy(), p[:, 2].copy(), p[:, 3].copy(), self.rendered)
        new_p = np.empty_like(p)
        _fit_sweep(self.target, model, p, self.rendered, self.cy, self.cx, radius, self.max_iter, s_lo, s_hi,
                   self.fit_b, new_p, self.err, self.conv, self.rss)
        return new_p

    def estimate_width(self, a0, pos0, b0, radius: float, s0: float) -> float:
        """Common width: one free sweep, median over the converged fits (``s0`` if too few)."""
        p = np.stack([a0, pos0[:, 0], pos0[:, 1], np.full(len(a0), s0), b0], axis=1)
        trial = self.sweep(p, radius, 0.2 * s0, 5.0 * s0)
        st = _sanity(trial, p, self.conv, radius, s0) == 0
        if st.sum() >= max(3, 0.2 * len(a0)):
            return float(np.median(trial[st, 3]))
        return s0

    def joint_sweeps(self, p_init: np.ndarray, radius: float, s0: float, n_sweeps: int, tol_px: float,
                     damping: float) -> tuple[np.ndarray, np.ndarray, int]:
        """Damped Jacobi sweeps until no good column moves by ``tol_px``: (parameters, status, sweeps)."""
        p = p_init.copy()
        sweeps = 0
        for sweeps in range(1, n_sweeps + 1):
            new_p = self.sweep(p, radius, 0.25 * s0, 4.0 * s0)
            status = _sanity(new_p, p_init, self.conv, radius, s0, self.err)
            good = status == 0
            move = np.abs(new_p[good, 1:3] - p[good, 1:3]).max() if good.any() else 0.0
            # the next sweep starts (and renders failed columns) from the initial estimate
            relaxed = p + damping * (new_p - p)
            p = np.where((status != 0)[:, None], p_init, relaxed)
            if move < tol_px:
                break
        return np.where((status != 0)[:, None], new_p, p), status, sweeps


def _sanity(
    p: np.ndarray, p0: np.ndarray, conv: np.ndarray, radius: float, s0: float, err: np.ndarray | None = None
) -> np.ndarray:
    status = np.zeros(len(p), dtype=np.int64)
    finite = np.isfinite(p).all(axis=1)
    if err is not None:
        status[~(p[:, 0] > 3.0 * err[:, 0])] = 6  # amplitude below 3 sigma: no column
    status[conv == 0] = 1
    status[(p[:, 3] <= 0.2501 * s0) | (p[:, 3] >= 3.999 * s0)] = 2
    status[np.hypot(p[:, 1] - p0[:, 1], p[:, 2] - p0[:, 2]) > 0.5 * radius] = 3
    status[p[:, 0] <= 0] = 4
    status[(conv < 0) | ~finite] = 5
    return status


# --------------------------------------------------------------------------- Voronoi


def nearest_column_map(positions_px: np.ndarray, shape: tuple[int, int], radius_px: float
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest column of every pixel and the distance to it, within ``radius_px``.

    What a :class:`scipy.spatial.cKDTree` query of every pixel with
    ``distance_upper_bound=radius_px`` returns (pixels at a distance >= ``radius_px``
    from every column get index -1 and distance inf), computed by painting each
    column's disk (numba): the work is n_columns x (2 r)^2, not a tree search per pixel.

    Parameters
    ----------
    positions_px : ndarray, shape (n, 2)
        Column positions (y, x) in px.
    shape : (ny, nx)
    radius_px : float

    Returns
    -------
    index : ndarray of int64, shape (ny, nx)
    distance : ndarray of float64, shape (ny, nx)

    Examples
    --------
    >>> idx, d = nearest_column_map(np.array([[1.0, 1.0], [1.0, 4.0]]), (2, 6), 1.2)
    >>> idx
    array([[-1,  0, -1, -1,  1, -1],
           [ 0,  0,  0,  1,  1,  1]])
    """
    pos = np.asarray(positions_px, dtype=np.float64).reshape(-1, 2)
    index = np.full(shape, -1, dtype=np.int64)
    d2 = np.full(shape, np.inf)
    if len(pos) and radius_px > 0:
        _paint_nearest(np.ascontiguousarray(pos[:, 0]), np.ascontiguousarray(pos[:, 1]), float(radius_px), index, d2)
    return index, np.sqrt(d2)


def voronoi_integrate(
    image: Any,
    positions_px: np.ndarray,
    *,
    max_radius_px: float | None = None,
    chunk_rows: int = 256,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum of the image over each column's Voronoi cell (StatSTEM cross-section).

    Parameters
    ----------
    image : DataArray or ndarray, shape (ny, nx)
    positions_px : ndarray, shape (n, 2)
        Column positions (y, x) in px.
    max_radius_px : float, optional
        Pixels farther than this from every column belong to no cell (vacuum
        around a nanocrystal). Default: the median nearest-neighbour distance.
    chunk_rows : int
        Rows of pixels summed at once (partial sums per chunk, then added).

    Returns
    -------
    integrated : ndarray, shape (n,)
        Sum of pixel values per cell (image units x px; multiply by the pixel
        area for image units x nm^2).
    n_pixels : ndarray of int, shape (n,)
    complete : ndarray of bool, shape (n,)
        False where the cell touches the image border or the radius limit.
    """
    arr, _, _ = _image_px(image)
    pos = np.atleast_2d(np.asarray(positions_px, dtype=np.float64))
    n = len(pos)
    if n == 0:
        raise InputError("voronoi_integrate: no positions")
    tree = cKDTree(pos)
    if max_radius_px is None:
        max_radius_px = float(np.median(tree.query(pos, k=2)[0][:, 1])) if n > 1 else float(max(arr.shape))
    ny, nx = arr.shape
    total = np.zeros(n)
    npx = np.zeros(n, dtype=np.int64)
    touches = np.zeros(n, dtype=bool)
    lab_map, dist_map = nearest_column_map(pos, (ny, nx), max_radius_px)
    for r0 in range(0, ny, chunk_rows):  # sums by chunks of rows (the summation order of earlier versions)
        r1 = min(ny, r0 + chunk_rows)
        dist, lab = dist_map[r0:r1].ravel(), lab_map[r0:r1].ravel()
        inside = np.isfinite(dist)
        lab_in = lab[inside]
        total += np.bincount(lab_in, weights=arr[r0:r1].ravel()[inside], minlength=n)
        npx += np.bincount(lab_in, minlength=n)
        # cells reaching the radius limit or the border
        near_limit = inside & (dist > max_radius_px - 1.0)
        touches[np.unique(lab[near_limit])] = True
        edge = np.zeros((r1 - r0, nx), dtype=bool)
        edge[:, 0] = edge[:, -1] = True
        if r0 == 0:
            edge[0, :] = True
        if r1 == ny:
            edge[-1, :] = True
        e = edge.ravel() & inside
        touches[np.unique(lab[e])] = True
    return total, npx, ~touches & (npx > 0)


# --------------------------------------------------------------------------- classification


def _local_fractions(positions_px: np.ndarray, ref: GPAResult | Lattice, hk: tuple[int, int]) -> np.ndarray | None:
    """Local fractional coordinate g.r + P_g(r)/2pi of each column for reflection hk.

    None if ``ref`` is a GPAResult without that reflection.
    """
    if isinstance(ref, Lattice):
        g = hk[0] * ref.g_per_px[0] + hk[1] * ref.g_per_px[1]
        return positions_px @ g
    if not isinstance(ref, GPAResult):
        raise InputError(f"classification needs a GPAResult or Lattice, got {type(ref).__name__}")
    if tuple(hk) not in ref.reflections_hk:
        return None
    i = ref.reflections_hk.index(tuple(hk))
    iy = np.clip(np.round(positions_px[:, 0]).astype(int), 0, ref.phase.shape[1] - 1)
    ix = np.clip(np.round(positions_px[:, 1]).astype(int), 0, ref.phase.shape[2] - 1)
    return positions_px @ ref.g_per_px[i] + ref.phase[i][iy, ix].astype(np.float64) / (2 * np.pi)


def _half_grid(f: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest half-integer grid index of f (origin by weighted circular mean) and offset."""
    origin = np.angle((np.exp(4j * np.pi * f) * w[:, None]).sum(axis=0)) / (4 * np.pi)
    rel = 2.0 * (f - origin)
    n = np.round(rel)
    return n.astype(np.int64), np.abs(rel - n)


def classify_columns(
    positions_px: np.ndarray,
    intensity: np.ndarray,
    reference: GPAResult | Lattice,
    *,
    method: str = "local",
    names: tuple[str, str, str] = ("Cs", "PbX", "X"),
    vote_radius_cells: float = 1.6,
    max_offset: float = 0.25,
) -> dict[str, np.ndarray]:
    """Assign [100]-perovskite sublattice types to columns.

    Parameters
    ----------
    positions_px : ndarray, shape (n, 2)
        Column positions (y, x), px.
    intensity : ndarray, shape (n,)
        Column intensity used for the A/B decision (e.g. Voronoi integrated
        intensity or fitted amplitude).
    reference : GPAResult or Lattice
        GPA result (local frame: follows strain and RP faults; it should hold the
        reflections (1,0), (0,1), (1,1), (1,-1), as :func:`find_columns` computes)
        or a global lattice.
    method : {"local", "global"}
        Intensity vote within ~``vote_radius_cells`` cells, or one vote for the
        whole image (module docstring).
    names : (dim, bright, x)
        Type names: dimmer non-X column, brighter non-X column, X-only column.
        CsPbX3 HAADF: ("Cs", "PbX", "X"); PbTiO3: ("B", "A", "O").
    vote_radius_cells : float
        Radius of the local vote in cells.
    max_offset : float
        Columns farther than this (in half-cells) from a site are ``unindexed``.

    Returns
    -------
    dict
        ``type`` (str array), ``site_parity`` (0 or 1: the two A/B sites of the
        local (100) frame, -1 for X, unindexed or undecided), ``offset``
        (distance to the nearest site, half-cells).

    Notes
    -----
    X versus A/B sites are told apart in the (110) frame (phases of (1,1) and
    (1,-1), which a Ruddlesden-Popper shift leaves unchanged): A/B columns sit at
    integer, X columns at half-integer (1,1)/(1,-1) fractional coordinates; which
    of the two is A/B is decided by the larger summed intensity. The parity of
    A/B columns comes from the (100) frame, which flips across an RP fault;
    near the fault, where the GPA phase is in transition (offset > 0.25), a column
    is typed by its own comparison with its diagonal neighbours only.
    """
    pos = np.atleast_2d(np.asarray(positions_px, dtype=np.float64))
    inten = np.asarray(intensity, dtype=np.float64)
    if len(inten) != len(pos):
        raise InputError(f"intensity has {len(inten)} values for {len(pos)} columns")
    if method not in ("local", "global"):
        raise InputError(f"method must be 'local' or 'global', got {method!r}")
    if len(pos) < 4:
        raise FitError(f"only {len(pos)} columns: too few to classify")
    good_i = np.isfinite(inten)
    w = np.where(good_i, np.maximum(inten - np.nanmin(inten), 0) + 1e-12, 0.0)
    f1 = _local_fractions(pos, reference, (1, 0))
    f2 = _local_fractions(pos, reference, (0, 1))
    if f1 is None or f2 is None:
        raise InputError("the GPA result lacks the (1,0) and (0,1) reflections")
    non_x, is_x, indexed, off_pq = _split_x_sites(pos, reference, f1, f2, inten, w, max_offset)
    # (100) frame parity of the A/B columns
    n1, off1 = _half_grid(np.stack([f1, f2], axis=1)[non_x], w[non_x])
    confident = np.zeros(len(pos), bool)
    parity = np.full(len(pos), -1, dtype=np.int64)
    par_nx = n1[:, 0] % 2
    conf_nx = (off1.max(axis=1) <= max_offset) & ((n1[:, 0] - n1[:, 1]) % 2 == 0)
    parity[np.flatnonzero(non_x)] = np.where(conf_nx, par_nx, -1)
    confident[np.flatnonzero(non_x)] = conf_nx
    types = np.full(len(pos), "unindexed", dtype=object)
    types[is_x] = names[2]
    off = np.where(indexed, off_pq.max(axis=1), np.nan)
    idx = np.flatnonzero(non_x & good_i)
    if len(idx) < 2:
        raise FitError("fewer than two A/B-site columns: cannot classify by intensity")
    cell = float(np.median(1.0 / np.linalg.norm(_g_of(reference), axis=1)))
    bright = _bright_sites(pos[idx], inten[idx], confident[idx], parity[idx], cell, method, vote_radius_cells)
    types[idx] = np.where(bright, names[1], names[0])
    return {"type": types.astype(str), "site_parity": parity, "offset": off}


def _split_x_sites(pos, reference, f1, f2, inten, w, max_offset):
    """(A/B-site mask, X-site mask, indexed mask, (110)-frame offsets) from the lattice fractions.

    In the (110) frame A/B sites sit at integer (p, q) and X sites at half-integer
    (p, q); of the two even/odd sublattices the brighter one is A/B.
    """
    fp = _local_fractions(pos, reference, (1, 1))
    fq = _local_fractions(pos, reference, (1, -1))
    if fp is None or fq is None:
        fp, fq = f1 + f2, f1 - f2
    npq, off_pq = _half_grid(np.stack([fp, fq], axis=1), w)
    same = (npq[:, 0] - npq[:, 1]) % 2 == 0
    indexed = same & (off_pq.max(axis=1) <= max_offset)
    even = indexed & (npq[:, 0] % 2 == 0)
    odd = indexed & (npq[:, 0] % 2 != 0)
    base = np.nanmin(inten)
    score_even = np.nansum(inten[even] - base)
    score_odd = np.nansum(inten[odd] - base)
    if score_even >= score_odd:
        return even, odd, indexed, off_pq
    return odd, even, indexed, off_pq


def _neighbour_sum(tree: cKDTree, pos: np.ndarray, radius: float, values: np.ndarray, skip_self: bool
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(sum of ``values`` over the neighbours within ``radius``, their number) per position."""
    lists = tree.query_ball_point(pos, r=radius)
    lens = np.array([len(v) for v in lists])
    flat = np.concatenate([np.asarray(v, dtype=np.int64) for v in lists])
    owner = np.repeat(np.arange(len(pos)), lens)
    keep = flat != owner if skip_self else np.ones(len(flat), bool)
    return (np.bincount(owner[keep], weights=values[flat[keep]], minlength=len(pos)),
            np.bincount(owner[keep], minlength=len(pos)))


def _bright_sites(pos, inten, conf, parity, cell: float, method: str, vote_radius_cells: float) -> np.ndarray:
    """Which A/B columns are the bright site: parity votes, global or within ``vote_radius_cells``."""
    tree = cKDTree(pos)
    # raw vote: brighter than the mean of the A/B neighbours within 0.85 a (the
    # four diagonal ones, of the other site in an undisturbed lattice)
    s_nb, c_nb = _neighbour_sum(tree, pos, 0.85 * cell, inten, skip_self=True)
    mean_nb = np.where(c_nb > 0, s_nb / np.maximum(c_nb, 1), inten)
    raw_bright = inten > mean_nb
    sign = np.where(parity == 1, 1.0, -1.0)
    vote = np.where(conf, np.where(raw_bright, 1.0, -1.0) * sign, 0.0)  # +1: parity 1 is bright
    if method == "global":
        return np.where(conf, (vote.sum() * sign) > 0, raw_bright)
    vsum, _ = _neighbour_sum(tree, pos, vote_radius_cells * cell, vote, skip_self=False)
    return np.where(conf & (vsum != 0), vsum * sign > 0, raw_bright)


def _g_of(ref: GPAResult | Lattice) -> np.ndarray:
    return ref.lattice.g_per_px if isinstance(ref, GPAResult) else ref.g_per_px


def lattice_from_columns(
    positions_px: np.ndarray,
    lattice: Lattice,
    *,
    max_offset: float = 0.25,
) -> dict[str, Any]:
    """Least-squares lattice from column positions of one homogeneous region.

    Columns are indexed on the half-cell grid of ``lattice`` (global frame, so use
    it per domain, not across strained or shifted regions) and
    :math:`\\mathbf r = \\mathbf r_0 + (n_1\\mathbf a_1 + n_2\\mathbf a_2)/2` is fitted.

    Returns
    -------
    dict
        ``basis_px`` (2, 2) rows a1, a2 (y, x); ``basis_err_px``; ``cell_px`` and
        ``cell_err_px`` (``|a1|``, ``|a2|``); ``n_used``; ``residual_rms_px``; and with a
        calibrated lattice ``lattice_pm``, ``lattice_pm_err``.
    """
    pos = np.atleast_2d(np.asarray(positions_px, dtype=np.float64))
    u = 2.0 * pos @ lattice.g_per_px.T
    origin = np.angle(np.exp(2j * np.pi * u).sum(axis=0)) / (2 * np.pi)
    nint = np.round(u - origin)
    ok = np.hypot(*(u - origin - nint).T) <= max_offset
    if ok.sum() < 6:
        raise FitError(f"only {int(ok.sum())} columns on the lattice: cannot fit a lattice")
    design = np.column_stack([np.ones(ok.sum()), 0.5 * nint[ok]])  # r = r0 + n1 a1/2 + n2 a2/2
    coef, *_ = np.linalg.lstsq(design, pos[ok], rcond=None)  # (3, 2): r0, a1, a2
    resid = pos[ok] - design @ coef
    dof = max(ok.sum() - 3, 1)
    s2 = (resid**2).sum(axis=0) / dof  # per coordinate (y, x)
    cov_unit = np.linalg.inv(design.T @ design)
    basis = coef[1:]
    basis_err = np.sqrt(np.outer(np.diag(cov_unit)[1:], s2))
    cell = np.linalg.norm(basis, axis=1)
    cell_err = np.sqrt(((basis / cell[:, None]) ** 2 * basis_err**2).sum(axis=1))
    out: dict[str, Any] = {
        "basis_px": basis,
        "basis_err_px": basis_err,
        "cell_px": cell,
        "cell_err_px": cell_err,
        "n_used": int(ok.sum()),
        "residual_rms_px": float(np.sqrt((resid**2).sum(axis=1).mean())),
    }
    if lattice.pixel_size_pm is not None:
        out["lattice_pm"] = cell * lattice.pixel_size_pm
        out["lattice_pm_err"] = cell_err * lattice.pixel_size_pm
    return out


# --------------------------------------------------------------------------- pipeline


#: reflections whose GPA phases define the local frame for classification
CLASSIFY_REFLECTIONS = ((1, 0), (0, 1), (1, 1), (1, -1))

TABLE_COLUMNS = (
    "x_nm",
    "y_nm",
    "x_err_nm",
    "y_err_nm",
    "type",
    "amplitude",
    "amplitude_err",
    "sigma_nm",
    "sigma_err_nm",
    "background",
    "integrated_intensity",
    "voronoi_complete",
    "gaussian_volume",
    "site_parity",
    "fit_ok",
    "fit_status",
)


def find_columns(
    image: xr.DataArray,
    gpa_result: GPAResult | None = None,
    *,
    names: tuple[str, str, str] = ("Cs", "PbX", "X"),
    method: str = "local",
    intensity: str = "integrated_intensity",
    min_prominence: float = 0.1,
    sigma_px: float | None = None,
    fit_radius_px: float | None = None,
) -> Any:
    """Detect, refine, integrate and classify the atom columns of an image.

    Parameters
    ----------
    image : xarray.DataArray
        Calibrated image (:func:`nanodomains.stem.io.load_image`).
    gpa_result : GPAResult, optional
        GPA of the image (computed with defaults when not given).
    names, method :
        See :func:`classify_columns`.
    intensity : {"integrated_intensity", "amplitude", "gaussian_volume"}
        Column measure used for the A/B classification.
    min_prominence : float
        See :func:`detect_columns`.
    sigma_px, fit_radius_px : float, optional
        See :func:`refine_columns`.

    Returns
    -------
    pandas.DataFrame
        One row per column with :data:`TABLE_COLUMNS` (positions in the image's
        nm coordinates; integrated intensity in image units x nm^2;
        gaussian_volume likewise).
    """
    import pandas as pd

    arr, px_pm, origin = _image_px(image)
    if px_pm is None:
        raise InputError("find_columns needs a calibrated DataArray (load_image / image_from_array)")
    if gpa_result is None:
        gpa_result = gpa(image, reflections=CLASSIFY_REFLECTIONS, unwrap=False)
    lat = gpa_result.lattice
    pos0 = detect_columns(arr, lat, min_prominence=min_prominence)
    fit = refine_columns(arr, pos0, sigma_px=sigma_px, fit_radius_px=fit_radius_px)
    pos = fit.positions_px
    integ, _, complete = voronoi_integrate(arr, pos, max_radius_px=0.75 * float(lat.cell_px.min()))
    px_nm = px_pm * 1e-3
    area = px_nm**2
    measures = {
        "integrated_intensity": integ * area,
        "amplitude": fit.amplitude,
        "gaussian_volume": fit.gaussian_volume * area,
    }
    if intensity not in measures:
        raise InputError(f"intensity must be one of {sorted(measures)}, got {intensity!r}")
    cls = classify_columns(pos, measures[intensity], gpa_result, method=method, names=names)
    table = pd.DataFrame(
        {
            "x_nm": origin[1] + fit.x_px * px_nm,
            "y_nm": origin[0] + fit.y_px * px_nm,
            "x_err_nm": fit.x_err_px * px_nm,
            "y_err_nm": fit.y_err_px * px_nm,
            "type": cls["type"],
            "amplitude": fit.amplitude,
            "amplitude_err": fit.amplitude_err,
            "sigma_nm": fit.sigma_px * px_nm,
            "sigma_err_nm": fit.sigma_err_px * px_nm,
            "background": fit.background,
            "integrated_intensity": measures["integrated_intensity"],
            "voronoi_complete": complete,
            "gaussian_volume": measures["gaussian_volume"],
            "site_parity": cls["site_parity"],
            "fit_ok": fit.fit_ok,
            "fit_status": fit.fit_status.astype(str),
        }
    )
    table.attrs.update({"pixel_size_pm": px_pm, "fit_sweeps": fit.n_sweeps, "classification": method})
    return table


def write_columns_csv(table: Any, path: str | Path) -> Path:
    """Write a column table as plain CSV, its ``attrs`` to a JSON sidecar.

    The CSV opens with a plain ``pandas.read_csv(path)``; the metadata
    (``pixel_size_pm``, ``fit_sweeps``, ``classification``) go to ``<name>.meta.json``
    beside it. Both are written atomically.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`find_columns`.
    path : str or Path

    Returns
    -------
    Path
        The CSV file.
    """
    from nanodomains.files import atomic_path, write_json_atomic

    path = Path(path)
    missing = [c for c in ("x_nm", "y_nm", "type") if c not in table.columns]
    if missing:
        raise InputError(f"column table lacks {missing}")
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    write_json_atomic(dict(table.attrs), path.with_name(path.stem + ".meta.json"))
    return path

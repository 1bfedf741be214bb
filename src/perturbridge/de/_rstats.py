"""Pure NumPy/SciPy ports of the R routines that limma leans on.

Each function reproduces the R algorithm step by step (not merely its intent), so that
results agree with R to rounding error: ``stats::lowess`` (the C ``clowess``),
``stats::uniroot`` (Brent's ``zeroin``), ``stats::quantile`` type 7, ``mean(trim=)``,
``p.adjust(method="BH")``, ``limma::trigammaInverse`` and the natural-spline
regression used by ``limma::fitFDist``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

__all__ = [
    "lowess",
    "natural_spline_fit",
    "p_adjust_bh",
    "quantile7",
    "trigamma_inverse",
    "trimmed_mean",
    "uniroot",
]

FloatArray = NDArray[np.float64]
_DBL_EPSILON = np.finfo(float).eps


def quantile7(x: ArrayLike, probs: ArrayLike) -> FloatArray:
    """R ``quantile(x, probs, type = 7)``."""
    return np.quantile(np.asarray(x, dtype=float), np.asarray(probs, dtype=float), method="linear")


def trimmed_mean(x: ArrayLike, trim: float) -> float:
    """R ``mean(x, trim = trim)``."""
    x = np.asarray(x, dtype=float)
    n = x.size
    if trim >= 0.5:
        return float(np.median(x))
    lo = int(np.floor(n * trim))  # 0-based start of R's lo:hi with lo = floor(n*trim)+1
    hi = n - lo
    return float(np.mean(np.sort(x)[lo:hi]))


def p_adjust_bh(p: ArrayLike) -> FloatArray:
    """R ``p.adjust(p, method = "BH")``; NaNs stay NaN and do not count towards n.

    Works along the last axis, so a matrix is adjusted row by row.
    """
    p = np.asarray(p, dtype=float)
    if p.ndim == 2 and p.shape[0] > 1 and not np.isnan(p).any():
        # rows are independent: two row blocks on two threads (sorting releases the GIL)
        out = np.empty_like(p)
        half = p.shape[0] // 2

        def run(sl: slice) -> None:
            out[sl] = _bh_rows(p[sl])

        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(run, [slice(0, half), slice(half, None)]))
        return out
    if p.ndim > 1 and not np.isnan(p).any():
        return _bh_rows(p)
    if p.ndim > 1:
        return np.apply_along_axis(p_adjust_bh, -1, p)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    n = q.size
    if n == 0:
        return out
    out[ok] = _bh_rows(q)
    return out


def _bh_rows(p: FloatArray) -> FloatArray:
    """BH along the last axis of a NaN-free array."""
    n = p.shape[-1]
    # decreasing, per row; tied p-values get equal adjusted values in any order
    o = np.argsort(-p, axis=-1)
    i = np.arange(n, 0, -1, dtype=float)
    adj = np.minimum.accumulate(n / i * np.take_along_axis(p, o, axis=-1), axis=-1)
    out = np.empty_like(p)
    np.put_along_axis(out, o, np.minimum(1.0, adj), axis=-1)
    return out


def trigamma_inverse(x: ArrayLike) -> FloatArray:
    """``limma::trigammaInverse``: solve ``trigamma(y) = x`` by Newton's method."""
    x = np.atleast_1d(np.asarray(x, dtype=float))
    y = np.full(x.shape, np.nan)
    big = x > 1e7
    small = x < 1e-6
    y[big] = 1.0 / np.sqrt(x[big])
    y[small] = 1.0 / x[small]
    todo = ~(np.isnan(x) | (x < 0) | big | small)
    if todo.any():
        xx = x[todo]
        yy = 0.5 + 1.0 / xx
        for _ in range(51):
            tri = special.polygamma(1, yy)
            dif = tri * (1.0 - tri / xx) / special.polygamma(2, yy)
            yy = yy + dif
            if np.max(-dif / yy) < 1e-8:
                break
        y[todo] = yy
    return y


def uniroot(
    f: Callable[[float], float],
    lower: float,
    upper: float,
    *,
    f_lower: float | None = None,
    f_upper: float | None = None,
    tol: float = _DBL_EPSILON**0.25,
    maxiter: int = 1000,
) -> float:
    """R ``uniroot`` (Brent's ``zeroin`` as in R's ``R_zeroin2``), same steps as R."""
    a, b = float(lower), float(upper)
    fa = f(a) if f_lower is None else float(f_lower)
    fb = f(b) if f_upper is None else float(f_upper)
    if fa * fb > 0:
        raise ValueError("f() values at end points not of opposite sign")
    c, fc = a, fa
    if fa == 0.0:
        return a
    if fb == 0.0:
        return b
    for _ in range(maxiter + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2 * _DBL_EPSILON * abs(b) + tol / 2
        new_step = (c - b) / 2
        if abs(new_step) <= tol_act or fb == 0.0:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:
                q = fa / fc
                t1 = fb / fc
                t2 = fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0:
                q = -q
            else:
                p = -p
            if p < (0.75 * cb * q - abs(tol_act * q) / 2) and p < abs(prev_step * q / 2):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    raise RuntimeError(f"uniroot did not converge in {maxiter} iterations")


def _lowest(
    x: FloatArray,
    y: FloatArray,
    xs: float,
    *,
    window: tuple[int, int],
    w: FloatArray,
    rw: FloatArray | None,
) -> tuple[float, bool]:
    """One local fit of ``clowess`` (0-based indices ``window = (nleft, nright)``);
    ``rw``: the robustness weights, ``None`` on the first iteration (C's ``userw``)."""
    n = x.size
    nleft, nright = window
    rng = x[n - 1] - x[0]
    h = max(xs - x[nleft], x[nright] - xs)
    h9 = 0.999 * h
    h1 = 0.001 * h
    # weights for j >= nleft while |x_j - xs| <= h9, ties on the right included
    j_end = nleft
    seg_r = np.abs(x[nleft:] - xs)
    # the C loop runs j upward while r <= h9 or x[j] <= xs; it stops at the first j
    # with r > h9 and x[j] > xs
    stop = np.flatnonzero((seg_r > h9) & (x[nleft:] > xs))
    j_end = nleft + (int(stop[0]) if stop.size else n - nleft)
    r = seg_r[: j_end - nleft]
    ww = np.where(r <= h1, 1.0, (1.0 - (r / h) ** 3) ** 3) if h > 0 else np.ones_like(r)
    ww = np.where(r <= h9, ww, 0.0)
    if rw is not None:
        ww = ww * rw[nleft:j_end]
    a = float(np.sum(ww))  # sequential sum in C; differences are at rounding level
    if a <= 0.0:
        w[nleft:j_end] = ww
        return 0.0, False
    ww = ww / a
    xx = x[nleft:j_end]
    if h > 0.0:
        a = float(np.sum(ww * xx))
        b = xs - a
        c = float(np.sum(ww * (xx - a) * (xx - a)))
        if np.sqrt(c) > 0.001 * rng:
            b /= c
            ww = ww * (b * (xx - a) + 1.0)
    w[nleft:j_end] = ww
    return float(np.sum(ww * y[nleft:j_end])), True


def lowess(
    x: ArrayLike, y: ArrayLike, *, f: float = 2 / 3, iter: int = 3, delta: float | None = None
) -> tuple[FloatArray, FloatArray]:
    """R ``stats::lowess``: returns ``(sorted x, fitted y)`` exactly as R does.

    A port of R's C routine ``clowess`` (Cleveland 1979), including the ``delta``
    interpolation shortcut, the tie handling and the bisquare robustness iterations.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    o = np.argsort(x, kind="stable")
    x = x[o]
    y = y[o]
    n = x.size
    if delta is None:
        delta = 0.01 * (x[-1] - x[0]) if n else 0.0
    ys = np.empty(n)
    if n < 2:
        ys[:] = y
        return x, ys
    ns = max(2, min(n, int(f * n + 1e-7)))
    rw = np.ones(n)
    res = np.zeros(n)
    it = 1
    while it <= iter + 1:
        nleft, nright, last, i = 0, ns - 1, -1, 0
        while True:
            if nright < n - 1:
                d1 = x[i] - x[nleft]
                d2 = x[nright + 1] - x[i]
                if d1 > d2:
                    nleft += 1
                    nright += 1
                    continue
            val, ok = _lowest(x, y, x[i], window=(nleft, nright), w=res, rw=rw if it > 1 else None)
            ys[i] = val if ok else y[i]
            if last < i - 1:
                denom = x[i] - x[last]
                js = np.arange(last + 1, i)
                alpha = (x[js] - x[last]) / denom
                ys[js] = alpha * ys[i] + (1.0 - alpha) * ys[last]
            last = i
            cut = x[last] + delta
            i = last + 1
            while i < n:
                if x[i] > cut:
                    break
                if x[i] == x[last]:
                    ys[i] = ys[last]
                    last = i
                i += 1
            i = max(last + 1, i - 1)
            if last >= n - 1:
                break
        res = y - ys
        sc = float(np.sum(np.abs(res))) / n
        if it > iter:
            break
        cmad = 6.0 * float(np.median(np.abs(res)))
        if cmad < 1e-7 * sc:
            break
        c9 = 0.999 * cmad
        c1 = 0.001 * cmad
        r = np.abs(res)
        rw = np.where(r <= c1, 1.0, np.where(r <= c9, (1.0 - (r / cmad) ** 2) ** 2, 0.0))
        it += 1
    return x, ys


def natural_spline_fit(x: ArrayLike, y: ArrayLike, *, df: int) -> tuple[FloatArray, float]:
    """Least-squares fit of ``y`` on R's ``splines::ns(x, df = df, intercept = TRUE)``.

    Returns the fitted values and the residual mean square ``RSS / (n - rank)``, as
    ``limma::fitFDist`` uses them. Fitted values depend only on the spline space
    (knots at the type-7 quantiles of ``x``, boundary knots at its range), so the
    basis here is a well-conditioned truncated-power basis of that same space.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n_inner = df - 2
    lo, hi = float(x.min()), float(x.max())
    probs = np.linspace(0.0, 1.0, n_inner + 2)[1:-1]
    inner = quantile7(x, probs) if n_inner > 0 else np.empty(0)
    scale = hi - lo if hi > lo else 1.0
    u = (x - lo) / scale
    knots = np.concatenate([[0.0], (inner - lo) / scale, [1.0]])
    k_last = knots[-1]

    def d(k: float) -> FloatArray:
        return (np.maximum(u - k, 0.0) ** 3 - np.maximum(u - k_last, 0.0) ** 3) / (k_last - k)

    cols = [np.ones_like(u), u]
    d_pen = d(knots[-2])
    for k in knots[: len(knots) - 2]:
        cols.append(d(k) - d_pen)
    basis = np.column_stack(cols)
    coef, _, rank, _ = np.linalg.lstsq(basis, y, rcond=None)
    fitted = basis @ coef
    rss = float(np.sum((y - fitted) ** 2))
    return fitted, rss / (x.size - rank)

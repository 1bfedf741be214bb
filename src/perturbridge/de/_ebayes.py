"""Empirical Bayes moderation of gene-wise variances: a port of limma's eBayes.

``squeeze_var`` with ``fit_f_dist`` / ``fit_f_dist_robustly`` (``robust=TRUE``, with or
without an intensity trend) and ``ebayes`` (moderated t, p-values, B-statistics) follow
limma 3.54 line by line. Pure NumPy/SciPy: no AnnData, no I/O.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import special, stats

from ..errors import PerturbridgeWarning
from ._rstats import lowess, natural_spline_fit, quantile7, trigamma_inverse, trimmed_mean, uniroot

__all__ = [
    "EBayesOptions",
    "EBayesResult",
    "SqueezeResult",
    "ebayes",
    "fit_f_dist",
    "fit_f_dist_robustly",
    "squeeze_var",
]

FloatArray = NDArray[np.float64]

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(128)
# statmod::gauss.quad.prob(128, dist = "uniform"): Gauss-Legendre on [0, 1], weights sum to 1
_GQ_NODES = (_GL_NODES + 1.0) / 2.0
_GQ_WEIGHTS = _GL_WEIGHTS / 2.0


@dataclass(frozen=True)
class FDistFit:
    scale: FloatArray  # s0^2, per gene (or length 1)
    df2: float
    df2_shrunk: FloatArray | None = None


@dataclass(frozen=True)
class SqueezeResult:
    """``df_prior``, ``var_prior``, ``var_post`` per gene; ``df2`` the prior degrees of
    freedom of the (robust) F fit, before any per-gene shrinkage of outliers."""

    df_prior: FloatArray
    var_prior: FloatArray
    var_post: FloatArray
    df2: float = np.nan


@dataclass(frozen=True)
class EBayesOptions:
    """The tuning of ``limma::eBayes`` beyond ``trend`` and ``robust``: ``proportion``
    (of genes expected to be differentially expressed), ``stdev_coef_lim`` (limits of
    the prior standard deviation of the coefficients) and ``winsor_tail_p`` (tail
    proportions of the robust fit), at limma's defaults."""

    proportion: float = 0.01
    stdev_coef_lim: tuple[float, float] = (0.1, 4.0)
    winsor_tail_p: tuple[float, float] = (0.05, 0.1)


@dataclass(frozen=True)
class EBayesResult:
    """Moderated statistics; arrays are genes × coefficients unless noted."""

    t: FloatArray
    p_value: FloatArray
    lods: FloatArray
    s2_post: FloatArray  # genes
    s2_prior: FloatArray  # genes
    df_prior: FloatArray  # genes
    df_total: FloatArray  # genes
    var_prior: FloatArray  # coefficients
    df2: float = np.nan  # prior df of the F fit (robust: before outlier shrinkage)


# ---------------------------------------------------------------- F distribution helpers
def _qf(p: FloatArray, df1: float, df2: float) -> FloatArray:
    if np.isinf(df2):
        return stats.chi2.ppf(p, df1) / df1
    return stats.f.ppf(p, df1, df2)


def _df(x: FloatArray, df1: float, df2: float) -> FloatArray:
    if np.isinf(df2):
        return stats.chi2.pdf(x * df1, df1) * df1
    return stats.f.pdf(x, df1, df2)


def _logsf_f(x: FloatArray, df1: float, df2: float) -> FloatArray:
    return stats.f.logsf(x, df1, df2)


def _loess_fit(y: FloatArray, x: FloatArray, *, span: float, iterations: int = 4) -> FloatArray:
    """``limma::loessFit`` without weights: fitted values of ``lowess``."""
    n = y.size
    if span < 1.0 / n:
        return y.copy()
    o = np.argsort(x, kind="stable")
    _, fit_sorted = lowess(x, y, f=span, iter=iterations - 1)
    fitted = np.empty(n)
    fitted[o] = fit_sorted
    return fitted


# ---------------------------------------------------------------- fitFDist
def fit_f_dist(x: FloatArray, df1: FloatArray, *, covariate: FloatArray | None = None) -> FDistFit:
    """``limma::fitFDist``: moments estimate of a scaled F distribution.

    ``x`` are sample variances on ``df1`` degrees of freedom; with ``covariate`` the
    scale follows a natural-spline trend in it.
    """
    x = np.asarray(x, dtype=float)
    n = x.size
    df1 = np.broadcast_to(np.asarray(df1, dtype=float), (n,)).copy()
    if n == 0:
        return FDistFit(np.array([np.nan]), np.nan)
    if n == 1:
        return FDistFit(x.copy(), 0.0)
    ok = np.isfinite(df1) & (df1 > 1e-15) & np.isfinite(x) & (x > -1e-15)
    nok = int(ok.sum())
    if nok == 1:
        return FDistFit(x[ok], 0.0)
    if nok < n:
        raise NotImplementedError("fit_f_dist with non-finite variances or df is not supported")
    splinedf = 1
    if covariate is not None:
        covariate = np.asarray(covariate, dtype=float)
        if not np.all(np.isfinite(covariate)):
            raise ValueError("covariate contains NA or infinite values")
        splinedf = 1 + (nok >= 3) + (nok >= 6) + (nok >= 30)
        splinedf = min(splinedf, np.unique(covariate).size)
        if splinedf < 2:
            out = fit_f_dist(x, df1)
            return FDistFit(np.full(n, out.scale[0]), out.df2)
    x = np.maximum(x, 0.0)
    m = float(np.median(x))
    if m == 0:
        warnings.warn(
            "More than half of residual variances are exactly zero: eBayes unreliable",
            PerturbridgeWarning,
            stacklevel=2,
        )
        m = 1.0
    elif np.any(x == 0):
        warnings.warn(
            "Zero sample variances detected, have been offset away from zero",
            PerturbridgeWarning,
            stacklevel=2,
        )
    x = np.maximum(x, 1e-5 * m)
    z = np.log(x)
    e = z - special.digamma(df1 / 2) + np.log(df1 / 2)
    if covariate is None:
        emean: FloatArray = np.full(n, np.mean(e))
        evar = float(np.sum((e - emean) ** 2) / (nok - 1))
    else:
        emean, evar = natural_spline_fit(covariate, e, df=splinedf)
    evar = evar - float(np.mean(special.polygamma(1, df1 / 2)))
    if evar > 0:
        df2 = float(2 * trigamma_inverse(evar)[0])
        s20 = np.exp(emean + special.digamma(df2 / 2) - np.log(df2 / 2))
    else:
        df2 = np.inf
        s20 = np.full(n, np.mean(x)) if covariate is None else np.exp(emean)
    if covariate is None:
        s20 = s20[:1]
    return FDistFit(np.asarray(s20, dtype=float), df2)


# ---------------------------------------------------------------- fitFDistRobustly
def _winsorized_moments(
    df1: float, df2: float, winsor_tail_p: tuple[float, float]
) -> tuple[float, float]:
    p = np.array([winsor_tail_p[0], 1 - winsor_tail_p[1]])
    fq = _qf(p, df1, df2)
    zq = np.log(fq)
    q = fq / (1 + fq)
    nodes = q[0] + (q[1] - q[0]) * _GQ_NODES
    fnodes = nodes / (1 - nodes)
    znodes = np.log(fnodes)
    f = _df(fnodes, df1, df2) / (1 - nodes) ** 2
    q21 = q[1] - q[0]
    tail = np.asarray(winsor_tail_p)
    m = q21 * np.sum(_GQ_WEIGHTS * f * znodes) + np.sum(zq * tail)
    v = q21 * np.sum(_GQ_WEIGHTS * f * (znodes - m) ** 2) + np.sum((zq - m) ** 2 * tail)
    return float(m), float(v)


def fit_f_dist_robustly(
    x: FloatArray,
    df1: FloatArray,
    *,
    covariate: FloatArray | None = None,
    winsor_tail_p: tuple[float, float] = (0.05, 0.1),
) -> FDistFit:
    """``limma::fitFDistRobustly`` (limma 3.54), for equal ``df1`` across genes."""
    x = np.asarray(x, dtype=float).copy()
    n = x.size
    if n < 2:
        return FDistFit(np.array([np.nan]), np.nan, np.array([np.nan]))
    df1_arr = np.broadcast_to(np.asarray(df1, dtype=float), (n,))
    if n == 2:
        fit = fit_f_dist(x, df1_arr, covariate=covariate)
        return FDistFit(fit.scale, fit.df2, np.full(n, fit.df2))
    ok = ~np.isnan(x) & np.isfinite(df1_arr) & (df1_arr > 1e-6)
    if not ok.all():
        raise NotImplementedError("robust eBayes with missing variances is not supported yet")
    m = float(np.median(x))
    if m <= 0:
        raise ValueError("Variances are mostly <= 0")
    tiny = x < m * 1e-12
    if tiny.any():
        warnings.warn(
            f"{int(tiny.sum())} very small variances detected, have been offset away from zero",
            PerturbridgeWarning,
            stacklevel=2,
        )
        x[tiny] = m * 1e-12
    non_robust = fit_f_dist(x, df1_arr, covariate=covariate)
    tail_p = (float(winsor_tail_p[0]), float(winsor_tail_p[1]))
    prob = np.array([tail_p[0], 1 - tail_p[1]])
    if all(p < 1 / n for p in tail_p):
        return FDistFit(non_robust.scale, non_robust.df2, np.full(n, non_robust.df2))
    df1max = float(df1_arr.max())
    if np.any(df1_arr < df1max - 1e-14):
        raise NotImplementedError("robust eBayes with unequal residual df is not supported yet")
    d1 = float(df1_arr[0])
    z = np.log(x)
    if covariate is None:
        ztrend: FloatArray = np.full(n, trimmed_mean(z, tail_p[1]))
    else:
        ztrend = _loess_fit(z, np.asarray(covariate, dtype=float), span=0.4)
    zresid = z - ztrend
    zrq = quantile7(zresid, prob)
    zwins = np.minimum(np.maximum(zresid, zrq[0]), zrq[1])
    zwmean = float(np.mean(zwins))
    zwvar = float(np.mean((zwins - zwmean) ** 2) * n / (n - 1))

    mom_m, mom_v = _winsorized_moments(d1, np.inf, tail_p)
    funval_inf = np.log(zwvar / mom_v)
    if funval_inf <= 0:
        df2 = np.inf
        ztc = ztrend + zwmean - mom_m
        s20 = np.exp(ztc)
        fstat = np.exp(z - ztc)
        tail = stats.chi2.sf(fstat * d1, d1)
        r = stats.rankdata(fstat)
        emp = (n - r + 0.5) / n
        prob_not_outlier = np.minimum(tail / emp, 1.0)
        df_pooled = n * d1
        shrunk = np.full(n, df2)
        out = prob_not_outlier < 1
        if out.any():
            shrunk[out] = prob_not_outlier[out] * df_pooled
            o = np.argsort(tail, kind="stable")
            shrunk[o] = np.maximum.accumulate(shrunk[o])
        return FDistFit(s20, df2, shrunk)

    def fun(v: float) -> float:
        d2 = v / (1 - v)
        return float(np.log(zwvar / _winsorized_moments(d1, d2, tail_p)[1]))

    if np.isinf(non_robust.df2):
        return FDistFit(non_robust.scale, non_robust.df2, np.full(n, non_robust.df2))
    rbx = non_robust.df2 / (1 + non_robust.df2)
    funval_low = fun(rbx)
    if funval_low >= 0:
        df2 = non_robust.df2
    else:
        root = uniroot(fun, rbx, 1.0, f_lower=funval_low, f_upper=funval_inf, tol=1e-8)
        df2 = root / (1 - root)
    mom_m, mom_v = _winsorized_moments(d1, df2, tail_p)
    ztc = ztrend + zwmean - mom_m
    s20 = np.exp(ztc)
    fstat = np.exp(z - ztc)
    log_tail = _logsf_f(fstat, d1, df2)
    r = stats.rankdata(fstat)
    log_emp = np.log(n - r + 0.5) - np.log(n)
    log_pno = np.minimum(log_tail - log_emp, 0.0)
    pno = np.exp(log_pno)
    p_out = -np.expm1(log_pno)
    if np.any(log_pno < 0):
        min_log_tail = float(np.min(log_tail))
        if min_log_tail == -np.inf:
            shrunk = pno * df2
        else:
            df2_out = np.log(0.5) / min_log_tail * df2
            new_log_tail = float(_logsf_f(np.array([fstat.max()]), d1, df2_out)[0])
            df2_out = np.log(0.5) / new_log_tail * df2_out
            shrunk = pno * df2 + p_out * df2_out
        o = np.argsort(log_tail, kind="stable")
        ordered = shrunk[o]
        cm = np.cumsum(ordered) / np.arange(1, n + 1)
        imin = int(np.argmin(cm))
        ordered[: imin + 1] = cm[imin]
        shrunk = np.empty(n)
        shrunk[o] = np.maximum.accumulate(ordered)
    else:
        shrunk = np.full(n, df2)
    return FDistFit(s20, float(df2), shrunk)


# ---------------------------------------------------------------- squeezeVar
def squeeze_var(
    var: FloatArray,
    df: FloatArray,
    *,
    covariate: FloatArray | None = None,
    robust: bool = False,
    winsor_tail_p: tuple[float, float] = (0.05, 0.1),
) -> SqueezeResult:
    """``limma::squeezeVar``: posterior variances shrunk towards a (trended) prior."""
    var = np.asarray(var, dtype=float)
    n = var.size
    df_arr = np.broadcast_to(np.asarray(df, dtype=float), (n,)).copy()
    if n == 0:
        raise ValueError("var is empty")
    if n == 1:
        return SqueezeResult(np.zeros(1), var.copy(), var.copy(), 0.0)
    var = np.where(df_arr == 0, 0.0, var)
    if robust:
        fit = fit_f_dist_robustly(var, df_arr, covariate=covariate, winsor_tail_p=winsor_tail_p)
        shrunk = fit.df2 if fit.df2_shrunk is None else fit.df2_shrunk
        df_prior = np.broadcast_to(shrunk, (n,)).astype(float)
    else:
        fit = fit_f_dist(var, df_arr, covariate=covariate)
        df_prior = np.full(n, fit.df2)
    if np.any(np.isnan(df_prior)):
        raise ValueError("Could not estimate prior df")
    var_prior = np.broadcast_to(fit.scale, (n,)).astype(float)
    var_post = var_prior.copy()
    fin = np.isfinite(df_prior)
    var_post[fin] = (df_arr[fin] * var[fin] + df_prior[fin] * var_prior[fin]) / (
        df_arr[fin] + df_prior[fin]
    )
    return SqueezeResult(df_prior, var_prior, var_post, float(fit.df2))


# ---------------------------------------------------------------- tmixture / eBayes
def _top_by_converted_t(
    tabs: FloatArray, tail_p: FloatArray, df: FloatArray, maxdf: float, ntarget: int
) -> tuple[NDArray[np.intp], FloatArray]:
    """Rows of the ``ntarget`` largest converted |t| per column, and those values.

    limma converts every |t| on fewer than ``maxdf`` degrees of freedom to the |t| on
    ``maxdf`` with the same tail probability, then orders. The conversion preserves the
    order of tail probabilities, so candidates are the rows with the smallest
    ``tail_p`` (ties at the threshold included); only they are converted, exactly as
    limma does, and ordered by converted |t| (ties by row, as R's ``order``).
    """
    ncoef = tabs.shape[1]
    tail_c = np.ascontiguousarray(tail_p.T)  # one contiguous row per coefficient
    thr = np.partition(tail_c, ntarget - 1, axis=1)[:, ntarget - 1]
    # every coefficient's candidates at once, coefficient-major
    coef, gene = np.nonzero(tail_c <= thr[:, None] * (1 + 1e-9) + 1e-300)
    del tail_c
    t = tabs[gene, coef]
    low = df[gene] < maxdf
    if low.any():
        # pt(|t|, df, upper) → qt(p, maxdf, upper): same tail probability on maxdf
        tail = special.stdtr(df[gene[low]], -t[low])
        t[low] = -special.stdtrit(maxdf, tail)
    order = np.lexsort((gene, -t, coef))  # per coefficient: by converted |t|, ties by row
    starts = np.searchsorted(coef[order], np.arange(ncoef))
    take = order[starts[None, :] + np.arange(ntarget)[:, None]]
    rows = gene[take]
    vals = t[take]
    return rows, vals


def _tmixture_matrix(
    tstat: FloatArray,
    stdev_unscaled: FloatArray,
    df: FloatArray,
    proportion: float,
    v0_lim: tuple[float, float] | None,
    *,
    p_value: FloatArray | None = None,
) -> FloatArray:
    """``limma::tmixture.matrix`` vectorized over coefficients (columns).

    ``p_value`` (two-sided, on ``df``) is used to find the top genes without converting
    every statistic; without it the tail probabilities are computed here.
    """
    ngenes, ncoef = tstat.shape
    ntarget = int(np.ceil(proportion / 2 * ngenes))
    if ntarget < 1:
        return np.full(ncoef, np.nan)
    p = max(ntarget / ngenes, proportion)
    tabs = np.abs(tstat)
    maxdf = float(np.max(df))
    tail = np.asarray(p_value / 2 if p_value is not None else stats.t.sf(tabs, df[:, None]))
    order, ttop = _top_by_converted_t(tabs, tail, df, maxdf, ntarget)
    v1 = np.take_along_axis(stdev_unscaled, order, axis=0) ** 2
    r = np.arange(1, ntarget + 1, dtype=float)[:, None]
    p0 = 2 * stats.t.sf(ttop, maxdf)
    ptarget = ((r - 0.5) / ngenes - (1 - p) * p0) / p
    v0 = np.zeros_like(ttop)
    pos = ptarget > p0
    if pos.any():
        qtarget = stats.t.isf(ptarget[pos] / 2, maxdf)
        v0[pos] = v1[pos] * ((ttop[pos] / qtarget) ** 2 - 1)
    if v0_lim is not None:
        v0 = np.minimum(np.maximum(v0, v0_lim[0]), v0_lim[1])
    return v0.mean(axis=0)


def _in_row_blocks(fn: Callable[[slice], None], n_rows: int, *, n_jobs: int = 2) -> None:
    """Run ``fn`` on row blocks of ``n_rows`` rows, on ``n_jobs`` threads: the callers'
    element-wise NumPy and special-function loops release the GIL, and each element is
    computed by the same expression whatever the blocks."""
    step = max(1, -(-n_rows // (4 * n_jobs)))
    blocks = [slice(a, min(a + step, n_rows)) for a in range(0, n_rows, step)]
    if len(blocks) <= 1:
        for b in blocks:
            fn(b)
        return
    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        list(pool.map(fn, blocks))


def ebayes(
    coefficients: FloatArray,
    stdev_unscaled: FloatArray,
    sigma: FloatArray,
    *,
    df_residual: FloatArray,
    amean: FloatArray | None = None,
    trend: bool = False,
    robust: bool = False,
    options: EBayesOptions | None = None,
) -> EBayesResult:
    """``limma::eBayes`` on a (contrasts) fit: genes × coefficients arrays.

    Parameters
    ----------
    coefficients, stdev_unscaled
        Genes × coefficients.
    sigma, df_residual
        Per gene residual standard deviation and degrees of freedom.
    amean
        Per gene average log expression, the covariate when ``trend`` is true.
    trend, robust
        limma's ``trend`` and ``robust``.
    options
        The rest of eBayes' tuning (:class:`EBayesOptions`, limma's defaults).
    """
    opts = options or EBayesOptions()
    proportion, stdev_coef_lim, winsor_tail_p = (
        opts.proportion,
        opts.stdev_coef_lim,
        opts.winsor_tail_p,
    )
    coefficients = np.asarray(coefficients, dtype=float)
    stdev_unscaled = np.asarray(stdev_unscaled, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    df_residual = np.broadcast_to(np.asarray(df_residual, dtype=float), sigma.shape)
    if np.max(df_residual) == 0:
        raise ValueError("No residual degrees of freedom in linear model fits")
    if not np.any(np.isfinite(sigma)):
        raise ValueError("No finite residual standard deviations")
    covariate = None
    if trend:
        if amean is None:
            raise ValueError("Need amean (average log expression) to estimate a trend")
        covariate = np.asarray(amean, dtype=float)
    sq = squeeze_var(
        sigma**2, df_residual, covariate=covariate, robust=robust, winsor_tail_p=winsor_tail_p
    )
    s2_post = sq.var_post
    df_total = np.minimum(df_residual + sq.df_prior, float(np.nansum(df_residual)))
    t = np.empty_like(coefficients)
    p_value = np.empty_like(coefficients)
    sd_post = np.sqrt(s2_post)

    def t_and_p(rows: slice) -> None:
        t[rows] = coefficients[rows] / stdev_unscaled[rows] / sd_post[rows, None]
        p_value[rows] = 2.0 * special.stdtr(df_total[rows, None], -np.abs(t[rows]))

    _in_row_blocks(t_and_p, t.shape[0])
    var_prior_lim = (
        stdev_coef_lim[0] ** 2 / float(np.median(sq.var_prior)),
        stdev_coef_lim[1] ** 2 / float(np.median(sq.var_prior)),
    )
    var_prior = _tmixture_matrix(
        t, stdev_unscaled, df_total, proportion, var_prior_lim, p_value=p_value
    )
    if np.any(np.isnan(var_prior)):
        var_prior = np.where(np.isnan(var_prior), 1 / sq.var_prior[0], var_prior)
        warnings.warn(
            "Estimation of var.prior failed - set to default value",
            PerturbridgeWarning,
            stacklevel=2,
        )
    lods = np.empty_like(t)
    infdf = sq.df_prior > 1e6
    log_odds_prior = np.log(proportion / (1 - proportion))

    def b_stat(rows: slice) -> None:
        su2 = stdev_unscaled[rows] ** 2
        r = (su2 + var_prior[None, :]) / su2
        t2 = t[rows] ** 2
        dft = df_total[rows, None]
        kernel = (1 + dft) / 2 * np.log((t2 + dft) / (t2 / r + dft))
        inf = infdf[rows]
        if inf.any():
            kernel[inf, :] = (t2 * (1 - 1 / r) / 2)[inf, :]
        lods[rows] = log_odds_prior - np.log(r) / 2 + kernel

    _in_row_blocks(b_stat, t.shape[0])
    return EBayesResult(
        t=t,
        p_value=p_value,
        lods=lods,
        s2_post=s2_post,
        s2_prior=sq.var_prior,
        df_prior=sq.df_prior,
        df_total=df_total,
        var_prior=var_prior,
        df2=sq.df2,
    )

"""Sample quality weights: ports of limma's ``arrayWeights`` (REML and gene-by-gene).

``limma::arrayWeights`` (limma 3.54) estimates one weight per sample (array) from the
residuals of a linear model: a sample whose residuals are large across genes gets a
weight below 1, and the weights enter the fit as ``lmFit(weights = w)``. With no
``var.design`` the log-weights follow ``contr.sum``: their sum is 0 (the geometric mean
of the weights is 1).

* :func:`array_weights_reml`: limma's ``method = "reml"`` (``.arrayWeightsREML``), the
  method limma's ``method = "auto"`` picks for complete data without prior weights (log
  expression such as L1000 level 3).
* :func:`array_weights_gene_by_gene`: ``method = "genebygene"``
  (``.arrayWeightsGeneByGene``), with prior weights such as voom's; what
  ``voomWithQualityWeights`` uses.

Both work on a dense design and cost ``O(n³)`` per iteration (REML) or per gene
(gene-by-gene) in the number of samples ``n``. Pure NumPy/SciPy: no AnnData, no I/O.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import linalg
from threadpoolctl import ThreadpoolController

from ..errors import PerturbridgeWarning

__all__ = [
    "SampleWeightedFit",
    "array_weights_gene_by_gene",
    "array_weights_reml",
    "contr_sum",
    "fit_sample_weighted",
    "full_rank",
    "reml_weights",
]

FloatArray = NDArray[np.float64]


def contr_sum(n: int) -> FloatArray:
    """R ``contr.sum(n)``: ``n × (n-1)``, the identity over a last row of -1."""
    return np.vstack([np.eye(n - 1), -np.ones((1, n - 1))])


def full_rank(design: FloatArray) -> FloatArray:
    """A full-rank set of the columns of ``design`` (same column space).

    Weights depend on the design only through its column space, so which aliased
    columns are dropped does not matter.
    """
    x = np.asarray(design, dtype=float)
    _, r, piv = linalg.qr(x, mode="economic", pivoting=True)
    d = np.abs(np.diag(r))
    rank = int(np.sum(d > 1e-7 * d[0])) if d.size else 0
    return x[:, np.sort(piv[:rank])]


def _var_design(n: int, var_design: FloatArray | None) -> FloatArray:
    if var_design is None:
        return contr_sum(n)
    z2 = np.asarray(var_design, dtype=float)
    z2 = z2 - z2.mean(axis=0)
    return full_rank(z2)


@dataclass(frozen=True)
class SampleWeightedFit:
    """Least squares with one weight per sample (the same for every gene), as
    ``lmFit(y, design, weights = w)`` with array weights computes it: coefficients
    (genes × p), their unscaled covariance ``(X'WX)⁻¹`` (p × p, common to all genes),
    fitted values (samples × genes), residual SDs and residual df."""

    coefficients: FloatArray
    cov_unscaled: FloatArray
    fitted: FloatArray
    sigma: FloatArray
    df_residual: int


def fit_sample_weighted(
    y: FloatArray, design: FloatArray, weights: FloatArray
) -> SampleWeightedFit:
    """Weighted least squares of ``y`` (samples × genes) on a full-rank ``design``
    with sample ``weights``."""
    y = np.asarray(y, dtype=float)
    x = np.asarray(design, dtype=float)
    w = np.asarray(weights, dtype=float)
    sw = np.sqrt(w)
    q, r = np.linalg.qr(x * sw[:, None])
    coef = linalg.solve_triangular(r, q.T @ (y * sw[:, None]))  # p × genes
    rinv = linalg.solve_triangular(r, np.eye(r.shape[0]))
    fitted = x @ coef
    df = x.shape[0] - x.shape[1]
    rss = np.sum(w[:, None] * (y - fitted) ** 2, axis=0)
    sigma = np.sqrt(rss / df) if df > 0 else np.full(y.shape[1], np.nan)
    return SampleWeightedFit(coef.T, rinv @ rinv.T, fitted, sigma, df)


def _check(y: FloatArray, design: FloatArray) -> tuple[FloatArray, FloatArray]:
    y = np.asarray(y, dtype=float)
    x = np.asarray(design, dtype=float)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"design has shape {x.shape}, expression {y.shape} (samples × genes)")
    if not np.all(np.isfinite(y)):
        raise ValueError("expression has missing or infinite values; arrayWeights needs them all")
    return y, full_rank(x)


def array_weights_reml(
    y: FloatArray,
    design: FloatArray,
    *,
    var_design: FloatArray | None = None,
    prior_n: float = 10.0,
    maxiter: int = 50,
    tol: float = 1e-5,
) -> FloatArray:
    """``limma::arrayWeights(t(y), design, method = "reml")``: one weight per sample.

    Warns (:class:`~perturbridge.errors.PerturbridgeWarning`) as limma does when the
    iterations stop before ``tol`` is reached (:func:`reml_weights` returns why
    instead).

    Parameters
    ----------
    y
        Samples × genes log expression, all finite.
    design
        Samples × p design matrix (aliased columns are dropped).
    var_design
        limma's ``var.design`` (samples × m, the log-weights' design); default
        ``contr.sum``: a weight per sample.
    prior_n, maxiter, tol
        limma's ``prior.n``, ``maxiter`` and ``tol`` (``arrayWeights``' defaults).
    """
    w, status = reml_weights(
        y, design, var_design=var_design, prior_n=prior_n, maxiter=maxiter, tol=tol
    )
    if status != "converged":
        warnings.warn(f"arrayWeights: {status}", PerturbridgeWarning, stacklevel=2)
    return w


def reml_weights(
    y: FloatArray,
    design: FloatArray,
    *,
    var_design: FloatArray | None = None,
    prior_n: float = 10.0,
    maxiter: int = 50,
    tol: float = 1e-5,
) -> tuple[FloatArray, str]:
    """:func:`array_weights_reml` without warnings: the weights and ``"converged"``,
    ``"iteration limit reached"`` or ``"convergence tolerance not achievable, stopping
    prematurely"`` (limma's messages; the weights are those of the last iteration, as
    limma returns them)."""
    y, x = _check(y, design)
    n, g = y.shape
    p = x.shape[1]
    w = np.ones(n)
    if g < 2 or n - p < 2:
        return w, "converged"
    z2 = _var_design(n, var_design)
    z = np.column_stack([np.ones(n), z2])
    ngam = z2.shape[1]
    gam = np.zeros(ngam)
    convcrit_last = np.inf
    prior_info = prior_n * (z2.T @ z2)
    keep: NDArray[np.bool_] | None = None
    for it in range(1, maxiter + 1):
        sw = np.sqrt(w)
        q, r = np.linalg.qr(x * sw[:, None])
        resid = y - x @ linalg.solve_triangular(r, q.T @ (y * sw[:, None]))
        s2 = np.sum(w[:, None] * resid**2, axis=0) / (n - p)
        if keep is None:  # genes without residual variance are left out once
            keep = s2 >= 1e-15
            if not keep.all():
                y, resid, s2 = y[:, keep], resid[:, keep], s2[keep]
                g = y.shape[1]
                if g < 2:
                    return np.ones(n), "converged"
        h = np.sum(q**2, axis=1)
        m = (q @ q.T) ** 2
        m[np.diag_indices(n)] += 1 - 2 * h
        info2 = _schur_of_z(m, z, contr=var_design is None)
        zz = np.mean(w[:, None] * resid**2 / s2[None, :], axis=1) - (1 - h)
        info2 = g * info2 + prior_info
        zz = g * zz + prior_n * (w - 1)
        dl = z2.T @ zz
        gamstep = np.linalg.solve(info2, dl)
        convcrit = float(dl @ gamstep) / ngam / (g + prior_n)
        if np.isnan(convcrit) or convcrit >= convcrit_last:
            return w, "convergence tolerance not achievable, stopping prematurely"
        convcrit_last = convcrit
        gam = gam + gamstep
        w = np.exp(z2 @ -gam)
        if convcrit < tol:
            break
        if it == maxiter:
            return w, "iteration limit reached"
    return w, "converged"


def _schur_of_z(m: FloatArray, z: FloatArray, *, contr: bool) -> FloatArray:
    """``info[-1, -1] - info[-1, 1] info[1, -1] / info[1, 1]`` of ``info = Z' M Z``
    (``M`` symmetric, ``Z = [1, Z2]``); with ``Z2 = contr.sum`` written out in O(n²)."""
    if not contr:
        info = z.T @ m @ z
        return info[1:, 1:] - np.outer(info[1:, 0], info[0, 1:]) / info[0, 0]
    rows = m.sum(axis=1)
    i00 = float(rows.sum())
    i0k = rows[:-1] - rows[-1]
    ikk = m[:-1, :-1] - m[:-1, -1][:, None] - m[-1, :-1][None, :] + m[-1, -1]
    return ikk - np.outer(i0k, i0k) / i00


def array_weights_gene_by_gene(
    y: FloatArray,
    design: FloatArray,
    *,
    weights: FloatArray | None = None,
    var_design: FloatArray | None = None,
    prior_n: float = 10.0,
) -> FloatArray:
    """``limma::arrayWeights(..., method = "genebygene")``: one weight per sample,
    updated gene after gene (in gene order).

    Parameters
    ----------
    y
        Samples × genes log expression, all finite.
    design
        Samples × p design matrix (aliased columns are dropped).
    weights
        Prior weights (samples × genes, positive), e.g. voom's.
    var_design, prior_n
        As for :func:`array_weights_reml`.
    """
    y, x = _check(y, design)
    n, g = y.shape
    p = x.shape[1]
    aw = np.ones(n)
    if g < 2 or n - p < 2:
        return aw
    if weights is not None:
        weights = np.asarray(weights, dtype=float)
        if weights.shape != y.shape:
            raise ValueError(f"weights have shape {weights.shape}, expression {y.shape}")
        if not np.all(np.isfinite(weights) & (weights > 0)):
            raise ValueError("weights must be positive and finite")
    # one small solve per gene: threaded BLAS only adds overhead there (20x measured)
    with _threadpools().limit(limits=1, user_api="blas"):
        return _gene_by_gene(
            y, x, weights, _var_design(n, var_design), prior_n, contr=var_design is None
        )


@functools.cache
def _threadpools() -> ThreadpoolController:
    return ThreadpoolController()


def _gene_by_gene(
    y: FloatArray,
    x: FloatArray,
    weights: FloatArray | None,
    z2: FloatArray,
    prior_n: float,
    *,
    contr: bool,
) -> FloatArray:
    """The gene loop of :func:`array_weights_gene_by_gene`; ``contr``: ``z2`` is
    ``contr.sum``, whose products are written out (``Z2'v = v[:-1] - v[-1]``,
    ``Z2' diag(h) Z2 = diag(h[:-1]) + h[-1]``), O(n²) instead of O(n³) per gene
    besides the solve."""
    n, g = y.shape
    p = x.shape[1]
    aw = np.ones(n)
    gam = np.zeros(z2.shape[1])
    info2 = prior_n * (z2.T @ z2)
    for i in range(g):
        w = aw if weights is None else aw * weights[:, i]
        sw = np.sqrt(w)
        q, r = np.linalg.qr(x * sw[:, None])
        yi = y[:, i]
        resid = yi - x @ linalg.solve_triangular(r, q.T @ (yi * sw))
        d = w * resid**2
        s2 = float(np.sum(d)) / (n - p)
        if s2 < 1e-15:
            continue
        h1 = 1 - np.sum(q**2, axis=1)
        z = d / s2 - h1
        if contr:
            zh = h1[:-1] - h1[-1]
            info2[np.diag_indices(n - 1)] += h1[:-1]
            info2 += h1[-1] - np.outer(zh, zh) / float(np.sum(h1))
            gam = gam + np.linalg.solve(info2, z[:-1] - z[-1])
            aw = np.exp(np.append(-gam, gam.sum()))
        else:
            zh = z2.T @ h1
            info2 = info2 + (z2.T @ (h1[:, None] * z2)) - np.outer(zh, zh) / float(np.sum(h1))
            gam = gam + np.linalg.solve(info2, z2.T @ z)
            aw = np.exp(z2 @ -gam)
    return aw

"""Weighted least squares for ``~0 + condition + plate`` with gene-specific weights.

With voom weights every gene has its own normal equations ``X'W_gX``. For this design
they have a diagonal condition block ``a_g`` (weight sums per condition), a small plate
block and a sparse condition × plate block ``B_g``; the Schur complement
``S_g = D_g − B_g' diag(1/a_g) B_g`` reduces each gene to a (#plates × #plates) solve.
Everything is vectorized over genes and chunked over genes to bound memory.

The contrasts reproduce ``limma::contrasts.fit`` on a weighted fit exactly, including
its approximation: the standard error of a contrast combines the gene's own coefficient
standard errors with the correlation of the *unweighted* design.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import linalg, sparse

from ._ebayes import _in_row_blocks
from ._linear import DesignStructure, _estimable_columns

__all__ = [
    "WeightedConditionPlateFit",
    "WeightedLinearFit",
    "fit_condition_plate_weighted",
    "lm_fit_weighted",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


@dataclass(frozen=True)
class WeightedConditionPlateFit:
    """Per-gene weighted fit; arrays are genes × conditions unless noted."""

    coef_condition: FloatArray
    stdev_condition: FloatArray
    sigma: FloatArray  # genes
    df_residual: int
    amean: FloatArray  # genes
    structure: DesignStructure

    def contrast(self, treated: IntArray, control: IntArray) -> tuple[FloatArray, FloatArray]:
        """Estimates and ``stdev.unscaled`` (both genes × m) of ``β[treated] − β[control]``."""
        treated = np.asarray(treated, dtype=np.intp)
        control = np.asarray(control, dtype=np.intp)
        st = self.structure
        cov_tc = st.condition_cov(treated, control)
        cor = cov_tc / np.sqrt(
            st.condition_cov(treated, treated) * st.condition_cov(control, control)
        )
        n_genes = self.coef_condition.shape[0]
        est = np.empty((n_genes, len(treated)))
        sd = np.empty((n_genes, len(treated)))

        def rows(sl: slice) -> None:
            s_t = self.stdev_condition[sl][:, treated]
            s_c = self.stdev_condition[sl][:, control]
            var = s_t**2 + s_c**2 - 2.0 * cor[None, :] * s_t * s_c
            est[sl] = self.coef_condition[sl][:, treated] - self.coef_condition[sl][:, control]
            sd[sl] = np.sqrt(np.maximum(var, 0.0))

        _in_row_blocks(rows, n_genes)
        return est, sd


def fit_condition_plate_weighted(
    y: FloatArray,
    weights: FloatArray,
    design: DesignStructure,
    *,
    amean: FloatArray | None = None,
    chunk_size: int = 512,
    n_jobs: int = 2,
) -> WeightedConditionPlateFit:
    """Weighted fit of ``y`` (samples × genes) on ``~0 + condition + plate``.

    Parameters
    ----------
    y, weights
        Samples × genes; weights must be positive and finite.
    design
        The design's structure, from the integer codes of condition and plate per
        sample (:func:`~perturbridge.de._linear.design_structure`; plate 0 is the
        reference level).
    amean
        Average expression per gene (``AveExpr``); the row means of ``y`` by default.
    chunk_size
        Genes per block; memory is about ``n_jobs × K × q × chunk_size`` floats.
    n_jobs
        Threads working on gene blocks.
    """
    y = np.asarray(y, dtype=float)
    w = np.asarray(weights, dtype=float)
    if w.shape != y.shape:
        raise ValueError(f"weights have shape {w.shape}, expression {y.shape}")
    if not np.all(np.isfinite(w) & (w > 0)):
        raise ValueError("weights must be positive and finite")
    st = design
    n, g = y.shape
    k, q = st.k, int(st.keep.sum())
    df = n - k - q
    # one row per non-empty condition × plate-column cell, to form B_g
    pcol = st.plate_column
    on_plate = pcol >= 0
    cell_key = st.condition[on_plate] * max(q, 1) + pcol[on_plate]
    cells, cell_of = np.unique(cell_key, return_inverse=True)
    cell_cond, cell_plate = cells // max(q, 1), cells % max(q, 1)
    cell_mat = sparse.csr_matrix(
        (np.ones(cell_of.size), (cell_of, np.flatnonzero(on_plate))), shape=(cells.size, n)
    )
    coef_c = np.empty((g, k))
    sd_c = np.empty((g, k))
    rss = np.empty(g)

    def block(sl: slice) -> None:
        wc, yc = w[:, sl], y[:, sl]
        gc = wc.shape[1]
        wy = wc * yc
        a = np.asarray(st.cmat @ wc)  # K × gc
        r_c = np.asarray(st.cmat @ wy)  # K × gc
        if q:
            d = np.asarray(st.pmat @ wc)  # q × gc
            r_p = np.asarray(st.pmat @ wy)  # q × gc
            b = np.zeros((gc, k, q))
            b[:, cell_cond, cell_plate] = np.asarray(cell_mat @ wc).T
            u = b / a.T[:, :, None]  # gc × K × q
            schur = -np.matmul(b.transpose(0, 2, 1), u)  # gc × q × q
            schur[:, np.arange(q), np.arange(q)] += d.T
            rhs = r_p.T - np.einsum("gkq,kg->gq", u, r_c)
            s_inv = np.linalg.inv(schur)
            beta_p = np.einsum("gij,gj->gi", s_inv, rhs)  # gc × q
            beta_c = (r_c / a).T - np.einsum("gkq,gq->gk", u, beta_p)
            us = np.matmul(u, s_inv)  # gc × K × q
            var_c = 1.0 / a.T + np.einsum("gkq,gkq->gk", us, u)
            fitted = st.fitted(beta_c.T, beta_p.T)
        else:
            beta_c = (r_c / a).T
            var_c = 1.0 / a.T
            fitted = beta_c.T[st.condition]
        coef_c[sl] = beta_c
        sd_c[sl] = np.sqrt(var_c)
        rss[sl] = np.sum(wc * (yc - fitted) ** 2, axis=0)

    chunks = [slice(start, min(g, start + chunk_size)) for start in range(0, g, chunk_size)]
    # gene blocks are independent and write disjoint slices; NumPy releases the GIL
    with ThreadPoolExecutor(max_workers=max(1, min(n_jobs, len(chunks)))) as pool:
        list(pool.map(block, chunks))
    sigma = np.sqrt(rss / df) if df > 0 else np.full(g, np.nan)
    return WeightedConditionPlateFit(
        coef_condition=coef_c,
        stdev_condition=sd_c,
        sigma=sigma,
        df_residual=df,
        amean=y.mean(axis=0) if amean is None else np.asarray(amean, dtype=float),
        structure=st,
    )


@dataclass(frozen=True)
class WeightedLinearFit:
    """Per-gene weighted least squares on any design (genes × p arrays, NaN where not
    estimable), with the unweighted coefficient correlation ``contrasts.fit`` uses."""

    coefficients: FloatArray
    stdev_unscaled: FloatArray
    sigma: FloatArray
    df_residual: int
    estimable: NDArray[np.bool_]
    cor_unweighted: FloatArray  # p × p over the estimable columns (NaN elsewhere)

    def contrasts(self, contrasts: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``limma::contrasts.fit`` on a weighted fit: estimates and ``stdev.unscaled``."""
        c = np.asarray(contrasts, dtype=float)
        if np.any(c[~self.estimable] != 0):
            raise ValueError("trying to take contrast of non-estimable coefficient")
        keep = self.estimable
        ck = c[keep]
        est = self.coefficients[:, keep] @ ck
        cor = self.cor_unweighted[np.ix_(keep, keep)]
        s = self.stdev_unscaled[:, keep]
        # per gene: c' D_g Cor D_g c, for every contrast
        scaled = s[:, :, None] * ck[None, :, :]  # genes × p × m
        var = np.einsum("gim,ij,gjm->gm", scaled, cor, scaled)
        return est, np.sqrt(var)


def lm_fit_weighted(y: FloatArray, weights: FloatArray, design: FloatArray) -> WeightedLinearFit:
    """The general path: one weighted QR per gene, as ``limma::lmFit`` with weights does.

    ``O(n·p²)`` per gene; for ``~0 + condition + plate`` use
    :func:`fit_condition_plate_weighted`, which gives the same numbers.
    """
    y = np.asarray(y, dtype=float)
    w = np.asarray(weights, dtype=float)
    x = np.asarray(design, dtype=float)
    n, p = x.shape
    keep = _estimable_columns(x)
    xk = x[:, keep]
    rank = int(keep.sum())
    g = y.shape[1]
    coef = np.full((g, p), np.nan)
    sd = np.full((g, p), np.nan)
    rss = np.empty(g)
    for j in range(g):
        sw = np.sqrt(w[:, j])
        q, r = np.linalg.qr(xk * sw[:, None])
        b = linalg.solve_triangular(r, q.T @ (y[:, j] * sw))
        rinv = linalg.solve_triangular(r, np.eye(rank))
        coef[j, keep] = b
        sd[j, keep] = np.sqrt(np.sum(rinv**2, axis=1))
        rss[j] = np.sum(w[:, j] * (y[:, j] - xk @ b) ** 2)
    df = n - rank
    ru = np.linalg.qr(xk, mode="r")
    rinv_u = linalg.solve_triangular(ru, np.eye(rank))
    cov = rinv_u @ rinv_u.T
    dsd = np.sqrt(np.diag(cov))
    cor = np.full((p, p), np.nan)
    cor[np.ix_(keep, keep)] = cov / np.outer(dsd, dsd)
    sigma = np.sqrt(rss / df) if df > 0 else np.full(g, np.nan)
    return WeightedLinearFit(coef, sd, sigma, df, keep, cor)

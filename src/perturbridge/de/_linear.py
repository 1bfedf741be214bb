"""Ordinary least-squares kernels for limma-style linear models (pure NumPy/SciPy).

Two paths compute the same fit:

* :func:`lm_fit` — any design matrix. Columns are checked for estimability left to
  right with R's ``dqrdc2`` rule (a column whose norm, after projecting out the
  columns before it, is below ``1e-7`` of its own norm is not estimable), then a QR fit
  of the estimable columns; like ``limma::lmFit`` on a design without weights.
* :func:`fit_condition_plate` — the design ``~0 + condition + plate`` without building
  it. With ``A = diag(n_condition)``, ``B`` the condition × plate counts and ``D`` the
  plate sizes, the normal equations reduce by the Schur complement
  ``S = D - B' A⁻¹ B`` to a (#plates × #plates) system, so the cost is ``O(n·G)``
  (sums by group) plus ``O(q³)`` instead of the ``O(n·p²)`` of a QR with ``p`` ≈ the
  number of conditions.

Arrays are samples × genes (AnnData orientation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import linalg, sparse
from scipy.sparse import csgraph

__all__ = ["ConditionPlateFit", "LinearFit", "contrasts_fit", "fit_condition_plate", "lm_fit"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

#: R's ``lm.fit`` tolerance for rank detection.
RANK_TOL = 1e-7


def _estimable_columns(design: FloatArray, *, tol: float = RANK_TOL) -> NDArray[np.bool_]:
    """Estimable columns of a design, left to right, with R's ``dqrdc2`` rule.

    A column is not estimable when the norm of its residual on the estimable columns
    before it (the diagonal of an unpivoted Householder QR) is below ``tol`` times its
    own norm. Such a column is removed and the QR redone, as ``dqrdc2`` moves it last.
    """
    p = design.shape[1]
    norms = np.linalg.norm(design, axis=0)
    keep = [j for j in range(p) if norms[j] > 0]
    while keep:
        r = linalg.qr(design[:, keep], mode="r")[0]
        diag = np.abs(np.diag(r))
        bad = np.flatnonzero(diag < tol * norms[keep])
        if not bad.size:
            break
        del keep[int(bad[0])]
    mask = np.zeros(p, dtype=bool)
    mask[keep] = True
    return mask


def _estimable_plate_columns(
    condition: IntArray, plate: IntArray, n_conditions: int, n_plates: int
) -> NDArray[np.bool_]:
    """Estimable plate columns (plates ``1..Q-1``) of ``~0 + condition + plate``, exactly.

    The indicator design of two crossed factors has one linear dependency per connected
    component of the bipartite condition–plate graph. With the reference plate (0)
    dropped, the dependency of each component that does not hold plate 0 falls on its
    last plate column in design order, which is the column R's ``lm.fit`` reports as
    ``NA``. Exact, where a numerical rank test on ``X'X`` loses half the digits.
    """
    graph = sparse.coo_matrix(
        (np.ones(condition.size), (condition, n_conditions + plate)),
        shape=(n_conditions + n_plates, n_conditions + n_plates),
    )
    _, labels = csgraph.connected_components(graph, directed=False)
    plate_comp = labels[n_conditions:]
    keep = np.ones(n_plates, dtype=bool)
    for comp in np.unique(plate_comp):
        members = np.flatnonzero(plate_comp == comp)
        if members[0] != 0:  # the component does not hold the reference plate
            keep[members[-1]] = False
    return keep[1:]


@dataclass(frozen=True)
class LinearFit:
    """A least-squares fit shared by all genes (no weights, no missing values).

    ``coefficients`` is genes × p with NaN for non-estimable columns;
    ``cov_unscaled`` is ``(X'X)⁻¹`` over the estimable columns (p × p, NaN elsewhere).
    """

    coefficients: FloatArray
    cov_unscaled: FloatArray
    estimable: NDArray[np.bool_]
    sigma: FloatArray
    df_residual: int
    amean: FloatArray


def lm_fit(y: FloatArray, design: FloatArray) -> LinearFit:
    """Fit ``y`` (samples × genes) on ``design`` (samples × p) by least squares."""
    y = np.asarray(y, dtype=float)
    design = np.asarray(design, dtype=float)
    n, p = design.shape
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} samples, design has {n} rows")
    keep = _estimable_columns(design)
    xk = design[:, keep]
    q, r = np.linalg.qr(xk)
    coef_k = linalg.solve_triangular(r, q.T @ y)
    rank = int(keep.sum())
    resid = y - xk @ coef_k
    df = n - rank
    sigma = np.sqrt(np.sum(resid**2, axis=0) / df) if df > 0 else np.full(y.shape[1], np.nan)
    coef = np.full((y.shape[1], p), np.nan)
    coef[:, keep] = coef_k.T
    rinv = linalg.solve_triangular(r, np.eye(rank))
    cov = np.full((p, p), np.nan)
    cov[np.ix_(keep, keep)] = rinv @ rinv.T
    return LinearFit(coef, cov, keep, sigma, df, y.mean(axis=0))


def contrasts_fit(fit: LinearFit, contrasts: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``limma::contrasts.fit``: contrast estimates (genes × k) and their ``stdev.unscaled`` (k).

    Raises when a contrast involves a non-estimable coefficient, as limma does.
    """
    contrasts = np.asarray(contrasts, dtype=float)
    bad = (~fit.estimable) & np.any(contrasts != 0, axis=1)
    if bad.any():
        raise ValueError(
            f"trying to take contrast of non-estimable coefficient(s) {np.flatnonzero(bad)[:5]}"
        )
    keep = fit.estimable
    ck = contrasts[keep]
    est = fit.coefficients[:, keep] @ ck
    cov = fit.cov_unscaled[np.ix_(keep, keep)]
    su = np.sqrt(np.einsum("ik,ij,jk->k", ck, cov, ck))
    return est, su


@dataclass(frozen=True)
class ConditionPlateFit:
    """The fit of ``~0 + condition + plate`` computed through the Schur complement.

    Attributes
    ----------
    coef_condition
        Genes × conditions.
    coef_plate
        Genes × estimable plate columns (plates after the first, in order).
    plate_estimable
        Which of the ``n_plates - 1`` plate columns are estimable.
    n_per_condition
        Samples per condition.
    u
        ``A⁻¹ B`` over the estimable plate columns (conditions × q).
    s_inv
        Inverse of the Schur complement (q × q).
    """

    coef_condition: FloatArray
    coef_plate: FloatArray
    plate_estimable: NDArray[np.bool_]
    n_per_condition: FloatArray
    u: FloatArray
    s_inv: FloatArray
    sigma: FloatArray
    df_residual: int
    amean: FloatArray

    def contrast(self, treated: IntArray, control: IntArray) -> tuple[FloatArray, FloatArray]:
        """Estimates (genes × m) and ``stdev.unscaled`` (m) of ``β[treated] − β[control]``."""
        treated = np.asarray(treated, dtype=np.intp)
        control = np.asarray(control, dtype=np.intp)
        est = self.coef_condition[:, treated] - self.coef_condition[:, control]
        delta = self.u[treated] - self.u[control]
        quad = np.einsum("mi,ij,mj->m", delta, self.s_inv, delta)
        var = 1.0 / self.n_per_condition[treated] + 1.0 / self.n_per_condition[control] + quad
        return est, np.sqrt(var)


def _indicator(codes: IntArray, n_levels: int) -> sparse.csr_matrix:
    n = codes.size
    return sparse.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(n_levels, n))


def fit_condition_plate(
    y: FloatArray,
    condition: IntArray,
    plate: IntArray,
    *,
    n_conditions: int | None = None,
    n_plates: int | None = None,
    chunk_size: int = 4096,
) -> ConditionPlateFit:
    """Fit ``y`` (samples × genes) on ``~0 + condition + plate`` without forming the design.

    Parameters
    ----------
    y
        Log expression, samples × genes.
    condition, plate
        Integer codes per sample (``0..K-1`` and ``0..Q-1``). Every condition code must
        occur. Plate 0 is the reference level (no column), as in R's ``model.matrix``.
    chunk_size
        Genes per block when computing residuals, to bound memory.
    """
    y = np.asarray(y, dtype=float)
    condition = np.asarray(condition, dtype=np.intp)
    plate = np.asarray(plate, dtype=np.intp)
    n, g = y.shape
    k = int(condition.max()) + 1 if n_conditions is None else n_conditions
    nq = int(plate.max()) + 1 if n_plates is None else n_plates
    cmat = _indicator(condition, k)  # K × n
    n_c = np.asarray(cmat.sum(axis=1)).ravel()
    if np.any(n_c == 0):
        raise ValueError(f"conditions without samples: {np.flatnonzero(n_c == 0)[:5]}")
    sum_c = np.asarray(cmat @ y)  # K × G
    q_all = nq - 1
    if q_all > 0:
        pmat = _indicator(plate, nq)[1:]  # × n
        d = np.asarray(pmat.sum(axis=1)).ravel()
        b = np.asarray((cmat @ pmat.T).todense())  # K ×
        u_all = b / n_c[:, None]
        s = np.diag(d) - b.T @ u_all
        # conditions are always estimable; plate columns confounded with them are not
        keep = _estimable_plate_columns(condition, plate, k, nq)
        s_k = s[np.ix_(keep, keep)]
        u = u_all[:, keep]
        sum_p = np.asarray(pmat[keep] @ y)  # q × G
        s_inv = (
            linalg.cho_solve(linalg.cho_factor(s_k), np.eye(s_k.shape[0]))
            if keep.any()
            else np.zeros((0, 0))
        )
        coef_p = s_inv @ (sum_p - u.T @ sum_c)  # q × G
        coef_c = sum_c / n_c[:, None] - u @ coef_p  # K × G
    else:
        keep = np.zeros(0, dtype=bool)
        u = np.zeros((k, 0))
        s_inv = np.zeros((0, 0))
        coef_p = np.zeros((0, g))
        coef_c = sum_c / n_c[:, None]
    rank = k + int(keep.sum())
    df = n - rank
    # plate effect per sample: column j of coef_p belongs to plate level kept_levels[j]
    plate_effect_index = np.full(nq, -1, dtype=np.intp)
    plate_effect_index[1:][keep] = np.arange(int(keep.sum()))
    pidx = plate_effect_index[plate]
    rss = np.zeros(g)
    for start in range(0, g, chunk_size):
        sl = slice(start, min(g, start + chunk_size))
        fitted = coef_c[condition, sl]
        has_p = pidx >= 0
        if has_p.any():
            fitted[has_p] += coef_p[pidx[has_p], sl]
        rss[sl] = np.sum((y[:, sl] - fitted) ** 2, axis=0)
    sigma = np.sqrt(rss / df) if df > 0 else np.full(g, np.nan)
    return ConditionPlateFit(
        coef_condition=coef_c.T,
        coef_plate=coef_p.T,
        plate_estimable=keep,
        n_per_condition=n_c.astype(float),
        u=u,
        s_inv=s_inv,
        sigma=sigma,
        df_residual=df,
        amean=y.mean(axis=0),
    )

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
        diag = np.zeros(len(keep))  # columns beyond the number of rows are dependent
        d = np.abs(np.diag(r))
        diag[: d.size] = d
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


@dataclass(frozen=True)
class DesignStructure:
    """The unweighted ``~0 + condition + plate`` design in closed form.

    ``cmat`` (K × n) and ``pmat`` (q × n, estimable plate columns) are sparse
    indicators; ``u = A⁻¹B`` and ``s_inv`` the inverse Schur complement, so that
    ``(X'X)⁻¹`` has condition block ``diag(1/n) + u s_inv u'``.
    """

    condition: IntArray
    plate: IntArray
    k: int
    n_plates: int
    n_per_condition: FloatArray
    keep: NDArray[np.bool_]
    cmat: sparse.csr_matrix
    pmat: sparse.csr_matrix
    u: FloatArray
    s_inv: FloatArray

    @property
    def plate_column(self) -> IntArray:
        """Per sample, its estimable plate column (index into ``pmat``), or -1."""
        col = np.full(self.n_plates, -1, dtype=np.intp)
        if self.n_plates > 1:
            col[1:][self.keep] = np.arange(int(self.keep.sum()))
        return col[self.plate]

    def fitted(self, coef_c: FloatArray, coef_p: FloatArray) -> FloatArray:
        """Fitted values (samples × genes) from coefficients (K × G and q × G)."""
        out = coef_c[self.condition]
        pcol = self.plate_column
        has_p = pcol >= 0
        if has_p.any():
            out[has_p] += coef_p[pcol[has_p]]
        return out

    def max_hat(self) -> float:
        """The largest diagonal element of the hat matrix ``X (X'X)⁻¹ X'``.

        For sample ``i`` in condition ``k``: ``1/n_k + (u_k − p_i)' S⁻¹ (u_k − p_i)``, with
        ``p_i`` its row of the estimable plate columns.
        """
        diff = self.u[self.condition].copy()
        pcol = self.plate_column
        on = np.flatnonzero(pcol >= 0)
        diff[on, pcol[on]] -= 1.0
        quad = np.einsum("ij,jk,ik->i", diff, self.s_inv, diff)
        return float(np.max(1.0 / self.n_per_condition[self.condition] + quad))

    def condition_cov(self, a: IntArray, b: IntArray) -> FloatArray:
        """Unscaled covariances ``[(X'X)⁻¹]_{a_i, b_i}`` of condition coefficients."""
        quad = np.einsum("mi,ij,mj->m", self.u[a], self.s_inv, self.u[b])
        return np.where(a == b, 1.0 / self.n_per_condition[a], 0.0) + quad


def design_structure(
    condition: IntArray,
    plate: IntArray,
    *,
    n_conditions: int | None = None,
    n_plates: int | None = None,
) -> DesignStructure:
    """Analyse ``~0 + condition + plate`` from integer codes (see :class:`DesignStructure`)."""
    condition = np.asarray(condition, dtype=np.intp)
    plate = np.asarray(plate, dtype=np.intp)
    k = int(condition.max()) + 1 if n_conditions is None else n_conditions
    nq = int(plate.max()) + 1 if n_plates is None else n_plates
    cmat = _indicator(condition, k)  # K × n
    n_c = np.asarray(cmat.sum(axis=1)).ravel()
    if np.any(n_c == 0):
        raise ValueError(f"conditions without samples: {np.flatnonzero(n_c == 0)[:5]}")
    if nq > 1:
        keep = _estimable_plate_columns(condition, plate, k, nq)
        pmat = _indicator(plate, nq)[1:][keep]  # q × n
        d = np.asarray(pmat.sum(axis=1)).ravel()
        b = np.asarray((cmat @ pmat.T).todense())  # K × q
        u = b / n_c[:, None]
        schur = np.diag(d) - b.T @ u
        s_inv = (
            linalg.cho_solve(linalg.cho_factor(schur), np.eye(schur.shape[0]))
            if keep.any()
            else np.zeros((0, 0))
        )
    else:
        keep = np.zeros(0, dtype=bool)
        pmat = sparse.csr_matrix((0, condition.size))
        u = np.zeros((k, 0))
        s_inv = np.zeros((0, 0))
    return DesignStructure(
        condition=condition,
        plate=plate,
        k=k,
        n_plates=nq,
        n_per_condition=n_c.astype(float),
        keep=keep,
        cmat=cmat,
        pmat=pmat,
        u=u,
        s_inv=s_inv,
    )


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
    n, g = y.shape
    st = design_structure(condition, plate, n_conditions=n_conditions, n_plates=n_plates)
    k, keep, u, s_inv = st.k, st.keep, st.u, st.s_inv
    n_c = st.n_per_condition
    sum_c = np.asarray(st.cmat @ y)  # K × G
    if keep.any():
        sum_p = np.asarray(st.pmat @ y)  # q × G
        coef_p = s_inv @ (sum_p - u.T @ sum_c)  # q × G
        coef_c = sum_c / n_c[:, None] - u @ coef_p  # K × G
    else:
        coef_p = np.zeros((0, g))
        coef_c = sum_c / n_c[:, None]
    rank = k + int(keep.sum())
    df = n - rank
    rss = np.zeros(g)
    for start in range(0, g, chunk_size):
        sl = slice(start, min(g, start + chunk_size))
        rss[sl] = np.sum((y[:, sl] - st.fitted(coef_c[:, sl], coef_p[:, sl])) ** 2, axis=0)
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

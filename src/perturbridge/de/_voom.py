"""limma's voom: log-CPM values and precision weights from the mean–variance trend.

A port of ``limma::voom`` (limma 3.54), pure NumPy: the caller provides the unweighted
fit (fitted values, residual standard deviations, average log-CPM) so that any design,
or the closed-form ``~0 + condition + plate`` fit, can be used.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import NDArray

from ..errors import PerturbridgeWarning
from ._rstats import lowess

__all__ = ["voom_log_cpm", "voom_weights"]

FloatArray = NDArray[np.float64]


def voom_log_cpm(counts: FloatArray, lib_size: FloatArray) -> FloatArray:
    """``log2((counts + 0.5) / (lib.size + 1) * 1e6)`` as voom computes it (samples × genes)."""
    counts = np.asarray(counts, dtype=float)
    lib = np.asarray(lib_size, dtype=float)[:, None]
    return np.log2((counts + 0.5) / (lib + 1) * 1e6)


def _approxfun_mean_ties(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Knots of R's ``approxfun(x, y, rule = 2, ties = list("ordered", mean))``."""
    ux, start = np.unique(x, return_index=True)
    if ux.size == x.size:
        return x, y
    sums = np.add.reduceat(y, start)
    counts = np.diff(np.append(start, x.size))
    return ux, sums / counts


def voom_weights(
    counts: FloatArray,
    lib_size: FloatArray,
    *,
    fitted: FloatArray,
    sigma: FloatArray,
    amean: FloatArray,
    df_residual: int,
    span: float = 0.5,
) -> FloatArray:
    """Precision weights of ``limma::voom`` (samples × genes).

    Parameters
    ----------
    counts
        Samples × genes counts.
    lib_size
        Effective library sizes (library size × normalization factor).
    fitted, sigma, amean, df_residual
        From the unweighted fit of :func:`voom_log_cpm` values on the design: fitted
        values (samples × genes), residual SDs and average log-CPM per gene.
    span
        ``lowess`` span of the trend.
    """
    counts = np.asarray(counts, dtype=float)
    lib = np.asarray(lib_size, dtype=float)
    if counts.shape[1] < 2:
        raise ValueError("Need at least two genes to fit a mean-variance trend")
    if df_residual <= 0:
        warnings.warn(
            "The experimental design has no replication. Setting weights to 1.",
            PerturbridgeWarning,
            stacklevel=2,
        )
        return np.ones_like(counts)
    sx = np.asarray(amean, dtype=float) + np.mean(np.log2(lib + 1)) - np.log2(1e6)
    sy = np.sqrt(np.asarray(sigma, dtype=float))
    allzero = counts.sum(axis=0) == 0
    if allzero.any():
        sx, sy = sx[~allzero], sy[~allzero]
    lx, ly = lowess(sx, sy, f=span)
    kx, ky = _approxfun_mean_ties(lx, ly)
    fitted = np.asarray(fitted, dtype=float)
    out = np.empty_like(fitted)

    def rows(sl: slice) -> None:
        fitted_cpm = 2.0 ** fitted[sl]
        fitted_count = 1e-6 * (fitted_cpm * (lib[sl] + 1)[:, None])
        fitted_logcount = np.log2(fitted_count)
        out[sl] = 1.0 / np.interp(fitted_logcount, kx, ky) ** 4

    half = fitted.shape[0] // 2
    with ThreadPoolExecutor(max_workers=2) as pool:  # row blocks; NumPy releases the GIL
        list(pool.map(rows, [slice(0, half), slice(half, None)]))
    return out

"""Nested means over strata and compound-clustered BCa bootstrap intervals.

A summary is a **nested mean**: the mean over strata of the mean over clusters
(compounds) in the stratum, each cluster first averaged over its pairs in the stratum
(:func:`cluster_stratum_means`). :func:`cluster_bca` resamples clusters with replacement
(a cluster brings all its strata) and returns BCa intervals with the acceleration from
the leave-one-cluster-out jackknife. Pure NumPy/SciPy: no pandas, no I/O.

For a block of draws with cluster counts ``W`` (draws × clusters), the stratum means of
every draw are ``(W @ V0) / (W @ F)`` (``V0``: values with NaN set to 0, ``F``: finite
indicator), so one draw costs a matrix product, never a loop over clusters; the
jackknife is read from column sums in closed form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import sparse
from scipy.special import ndtr, ndtri

__all__ = [
    "BootstrapCI",
    "cluster_bca",
    "cluster_stratum_means",
    "jackknife_acceleration",
    "jackknife_nested_means",
    "nested_mean",
]

FloatArray = NDArray[np.float64]

_JACK_CHUNK_ELEMENTS = 1 << 21  # clusters × strata × metrics per jackknife chunk
_SPARSE_DENSITY = 0.25  # use sparse products below this fraction of finite cells
_TIE_RTOL = 1e-12  # draws within this relative distance of the estimate are ties


def _labels(x: ArrayLike, name: str, n: int) -> tuple[np.ndarray, NDArray[np.intp]]:
    arr = np.asarray(x)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(
            f"{name} must be a 1-D array of {n} labels (one per pair); got {arr.shape}"
        )
    try:
        uniq, inv = np.unique(arr, return_inverse=True)
    except TypeError as err:
        raise TypeError(
            f"{name} labels must be sortable values of one type (no None mixed with "
            f"strings); first labels: {arr[:5].tolist()}"
        ) from err
    if uniq.dtype.kind == "f" and np.isnan(uniq).any():
        raise ValueError(f"{name} labels must not be NaN; fill or drop those pairs first")
    return uniq, inv.reshape(-1)


def cluster_stratum_means(
    values: ArrayLike, clusters: ArrayLike, strata: ArrayLike
) -> tuple[FloatArray, np.ndarray, np.ndarray]:
    """Mean of each cluster in each stratum, per metric.

    Parameters
    ----------
    values
        ``(P, M)`` per-pair values (a 1-D array is one metric); NaN values are ignored
        column by column.
    clusters
        ``(P,)`` cluster labels (the compound).
    strata
        ``(P,)`` stratum labels.

    Returns
    -------
    means
        ``(C, S, M)`` (``(C, S)`` for 1-D ``values``); NaN where the cluster has no finite
        value in the stratum.
    cluster_labels
        ``(C,)`` sorted unique cluster labels.
    stratum_labels
        ``(S,)`` sorted unique stratum labels.

    Examples
    --------
    >>> m, c, s = cluster_stratum_means(np.array([1.0, 3.0, 5.0]), ["x", "x", "y"], [0, 0, 0])
    >>> m[:, 0]
    array([2., 5.])
    """
    v = np.asarray(values, dtype=np.float64)
    one_d = v.ndim == 1
    if one_d:
        v = v[:, None]
    if v.ndim != 2:
        raise ValueError(f"values must be (P, M) or (P,); got shape {v.shape}")
    n_pairs, n_metrics = v.shape
    c_lab, c_idx = _labels(clusters, "clusters", n_pairs)
    s_lab, s_idx = _labels(strata, "strata", n_pairs)
    n_c, n_s = len(c_lab), len(s_lab)
    finite = np.isfinite(v)
    cell = (c_idx * n_s + s_idx)[:, None] * n_metrics + np.arange(n_metrics)[None, :]
    size = n_c * n_s * n_metrics
    sums = np.bincount(cell.ravel(), weights=np.where(finite, v, 0.0).ravel(), minlength=size)
    counts = np.bincount(cell.ravel(), weights=finite.ravel().astype(np.float64), minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / counts, np.nan).reshape(n_c, n_s, n_metrics)
    return (means[:, :, 0] if one_d else means), c_lab, s_lab


def _as_css(values: ArrayLike) -> tuple[FloatArray, bool]:
    """(C, S, M) view of the values and whether the input had no metric axis."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        return v[:, None, None], True
    if v.ndim == 2:
        return v[:, :, None], True
    if v.ndim == 3:
        return v, False
    raise ValueError(f"values must be (C,), (C, S) or (C, S, M); got shape {v.shape}")


def _nested_from_sums(sums: FloatArray, counts: FloatArray) -> FloatArray:
    """Nested mean over the stratum axis (-2) from per-stratum sums and counts."""
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.where(counts > 0, counts, 1.0), 0.0)
        n_strata = (counts > 0).sum(axis=-2)
        return np.where(n_strata > 0, means.sum(axis=-2) / np.maximum(n_strata, 1), np.nan)


def nested_mean(values: ArrayLike) -> FloatArray:
    """Mean over strata of the mean over the finite clusters in each stratum.

    Parameters
    ----------
    values
        ``(C, S)`` or ``(C, S, M)`` cluster × stratum (× metric) means, NaN where absent.
        Strata without a finite value are left out.

    Returns
    -------
    ``(M,)`` float64, or a 0-d array for 2-D input; NaN when nothing is finite.

    Examples
    --------
    >>> nested_mean(np.array([[1.0, np.nan], [3.0, 10.0]]))
    array(6.)
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim not in (2, 3):
        raise ValueError(f"values must be (C, S) or (C, S, M); got shape {v.shape}")
    v3 = v[:, :, None] if v.ndim == 2 else v
    finite = np.isfinite(v3)
    out = _nested_from_sums(
        np.where(finite, v3, 0.0).sum(axis=0), finite.sum(axis=0).astype(np.float64)
    )
    return np.asarray(out[0] if v.ndim == 2 else out, dtype=np.float64)


def jackknife_nested_means(values: ArrayLike) -> FloatArray:
    """Leave-one-cluster-out nested means, ``(C, M)``.

    Row ``i`` is :func:`nested_mean` of the values without cluster ``i`` (closed form from
    column sums, computed in chunks of clusters so memory stays bounded).
    """
    v, _ = _as_css(values)
    n_c, n_s, n_m = v.shape
    finite = np.isfinite(v)
    v0 = np.where(finite, v, 0.0)
    f = finite.astype(np.float64)
    tot, cnt = v0.sum(axis=0), f.sum(axis=0)
    out = np.empty((n_c, n_m))
    step = max(1, _JACK_CHUNK_ELEMENTS // max(1, n_s * n_m))
    for lo in range(0, n_c, step):
        hi = min(lo + step, n_c)
        out[lo:hi] = _nested_from_sums(tot[None] - v0[lo:hi], cnt[None] - f[lo:hi])
    return out


def jackknife_acceleration(values: ArrayLike) -> FloatArray:
    """BCa acceleration ``Σ d³ / (6 (Σ d²)^1.5)`` from the cluster jackknife, ``(M,)``.

    ``d = mean(θ₍·₎) − θ₍ᵢ₎`` over the finite leave-one-cluster-out values ``θ₍ᵢ₎``
    (:func:`jackknife_nested_means`); 0 when they are all equal.
    """
    jack = jackknife_nested_means(values)
    ok = np.isfinite(jack)
    n = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = np.where(ok, jack, 0.0).sum(axis=0) / np.maximum(n, 1)
    d = np.where(ok, centre[None, :] - jack, 0.0)
    num = (d**3).sum(axis=0)
    den = (d**2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(den > 0, num / (6.0 * den**1.5), 0.0)
    return np.where(n > 0, acc, np.nan)


@dataclass(frozen=True)
class BootstrapCI:
    """A nested-mean estimate with its compound-clustered BCa interval (per metric).

    Attributes
    ----------
    estimate, low, high
        ``(M,)`` float64.
    n_clusters, n_strata
        Size of the resampled table.
    n_boot, seed, confidence
        The parameters of the bootstrap.
    """

    estimate: FloatArray
    low: FloatArray
    high: FloatArray
    n_clusters: int
    n_strata: int
    n_boot: int
    seed: int
    confidence: float


def _unique_columns(f: FloatArray) -> tuple[FloatArray, NDArray[np.intp]]:
    """Distinct columns of a 0/1 matrix and the index of each column among them.

    Columns are grouped by a random projection, then checked for exact equality (a
    collision, however unlikely, falls back to keeping every column).
    """
    n_cols = f.shape[1]
    if n_cols == 0:
        return f, np.zeros(0, dtype=np.intp)
    proj = np.random.default_rng(12345).standard_normal(f.shape[0]) @ f
    _, first, inv = np.unique(proj, return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    if not np.array_equal(f, f[:, first[inv]]):
        return f, np.arange(n_cols)
    return f[:, first], inv


def _bootstrap_draws(v: FloatArray, *, n_boot: int, seed: int, block: int) -> FloatArray:
    """Nested means of ``n_boot`` cluster resamples, ``(n_boot, M)``."""
    n_c, n_s, n_m = v.shape
    finite = np.isfinite(v)
    v0 = np.where(finite, v, 0.0).reshape(n_c, n_s * n_m)
    f = finite.reshape(n_c, n_s * n_m).astype(np.float64)
    f_cols, f_inv = _unique_columns(f)  # metrics usually share their finite pattern
    use_sparse = bool(f.size) and f.mean() < _SPARSE_DENSITY
    if use_sparse:
        v0_t = sparse.csr_array(v0.T)
        f_t = sparse.csr_array(f_cols.T)
    rng = np.random.default_rng(seed)
    draws = np.empty((n_boot, n_m))
    for lo in range(0, n_boot, block):
        b = min(block, n_boot - lo)
        # counts of each cluster in each draw, built cluster-major: w_t is (C, b)
        picks = rng.integers(0, n_c, size=(b, n_c))
        picks *= b
        picks += np.arange(b, dtype=picks.dtype)[:, None]
        w_t = np.bincount(picks.ravel(), minlength=b * n_c).reshape(n_c, b).astype(np.float64)
        del picks
        if use_sparse:
            sums = np.asarray(v0_t @ w_t).T
            counts = np.asarray(f_t @ w_t).T[:, f_inv]
        else:
            sums = w_t.T @ v0
            counts = (w_t.T @ f_cols)[:, f_inv]
        draws[lo : lo + b] = _nested_from_sums(
            sums.reshape(b, n_s, n_m), counts.reshape(b, n_s, n_m)
        )
    return draws


def _bca_interval(
    draws: FloatArray, estimate: float, acceleration: float, confidence: float
) -> tuple[float, float]:
    theta = draws[np.isfinite(draws)]
    if not np.isfinite(estimate) or theta.size == 0:
        return np.nan, np.nan
    # draws equal to the estimate up to rounding (the draws are ratios of matrix
    # products, the estimate a plain mean) count as ties
    tol = _TIE_RTOL * max(1.0, abs(estimate), float(np.abs(theta).max()))
    if theta.max() - theta.min() <= tol:
        return estimate, estimate
    n_b = theta.size
    tied = np.abs(theta - estimate) <= tol
    frac = ((~tied & (theta < estimate)).sum() + 0.5 * tied.sum()) / n_b
    # keep z0 finite when the estimate lies outside every draw
    frac = min(max(frac, 0.5 / n_b), 1.0 - 0.5 / n_b)
    z0 = ndtri(frac)
    alpha = (1.0 - confidence) / 2.0
    z = ndtri(np.array([alpha, 1.0 - alpha]))
    acc = acceleration if np.isfinite(acceleration) else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        adj = ndtr(z0 + (z0 + z) / (1.0 - acc * (z0 + z)))
    if not np.all(np.isfinite(adj)):
        return np.nan, np.nan
    low, high = np.quantile(theta, np.clip(adj, 0.0, 1.0))
    return float(low), float(high)


def cluster_bca(
    values: ArrayLike,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    block: int = 256,
) -> BootstrapCI:
    """Compound-clustered BCa bootstrap interval of the nested mean.

    Parameters
    ----------
    values
        ``(C, S, M)`` cluster × stratum × metric means (from
        :func:`cluster_stratum_means`), NaN where a cluster is absent; ``(C, S)`` or
        ``(C,)`` (one stratum) for a single metric.
    n_boot
        Number of draws; each draws ``C`` clusters with replacement (a cluster brings
        all its strata).
    seed
        Seed of ``numpy.random.default_rng``; the draws depend on ``seed`` and ``block``.
    confidence
        Coverage of the two-sided interval.
    block
        Draws computed together (memory ≈ ``block × C`` floats).

    Returns
    -------
    :class:`BootstrapCI` with ``(M,)`` arrays (``M = 1`` for 1-D/2-D input). With fewer
    than 2 clusters ``low``/``high`` are NaN; when all draws are equal they equal the
    estimate; a non-finite estimate gives NaN bounds.

    Notes
    -----
    Bias correction ``z0 = Φ⁻¹(#{θ* < θ̂} + ½ #{θ* = θ̂}) / B)`` (clipped to
    ``[½/B, 1 − ½/B]``); acceleration from :func:`jackknife_acceleration`; bounds are
    linear-interpolated quantiles of the draws, as in ``scipy.stats.bootstrap``.
    """
    for name, val in (("n_boot", n_boot), ("block", block), ("seed", seed)):
        if isinstance(val, bool) or not isinstance(val, int | np.integer):
            raise TypeError(f"{name} must be an int; got {val!r}")
    if n_boot < 1 or block < 1:
        raise ValueError(f"n_boot and block must be >= 1; got n_boot={n_boot}, block={block}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence}")
    v, _ = _as_css(values)
    n_c, n_s, n_m = v.shape
    estimate = np.asarray(nested_mean(v), dtype=np.float64).reshape(n_m)
    low = np.full(n_m, np.nan)
    high = np.full(n_m, np.nan)
    if n_c >= 2:
        draws = _bootstrap_draws(v, n_boot=int(n_boot), seed=int(seed), block=int(block))
        acc = jackknife_acceleration(v)
        for m in range(n_m):
            low[m], high[m] = _bca_interval(draws[:, m], estimate[m], acc[m], confidence)
    return BootstrapCI(
        estimate=estimate,
        low=low,
        high=high,
        n_clusters=n_c,
        n_strata=n_s,
        n_boot=int(n_boot),
        seed=int(seed),
        confidence=float(confidence),
    )

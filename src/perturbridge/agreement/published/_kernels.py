"""Pure NumPy primitives of the published agreement analysis (``docs/agreement.md``).

Each function follows the written definition in the published-profile section of the
docs word for word: ``spearman`` is NaN below two finite genes or for a constant rank
vector, the DEG-restricted Spearman restricts both sides to the reference mask,
direction agreement counts genes that are in both masks, ``sign(0) = 0``. The batch
forms (``*_against``) score one signature against the rows of a matrix and equal the
scalar forms row by row (the tests check this against a naive loop).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr, ndtri
from scipy.stats import rankdata

__all__ = [
    "PEER_SEED",
    "Interval",
    "bca_interval",
    "bootstrap_seed",
    "centroid_excluding",
    "deg_mask",
    "deg_spearman",
    "direction_agreement",
    "direction_agreement_against",
    "mean_available",
    "peer_subsample",
    "peer_summary",
    "spearman",
    "spearman_against",
    "strict_mean",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: The published peer-sampling and bootstrap seed.
PEER_SEED = 20260505


def deg_mask(x: np.ndarray, adj_p: np.ndarray, *, lfc_threshold: float | None = None) -> BoolArray:
    """``finite(x) & finite(a) & (a < 0.05)`` (and ``|x| > lfc_threshold``), strict."""
    with np.errstate(invalid="ignore"):
        m = np.isfinite(x) & np.isfinite(adj_p) & (adj_p < 0.05)
        if lfc_threshold is not None:
            m &= np.abs(x) > lfc_threshold
    return np.asarray(m, dtype=bool)


def _rho_ranks(rx: np.ndarray, ry: np.ndarray) -> float:
    if np.allclose(rx, rx[0]) or np.allclose(ry, ry[0]):
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman ρ on the genes where both are finite; NaN below 2 genes or constant ranks."""
    ok = np.isfinite(x) & np.isfinite(y)
    if int(ok.sum()) < 2:
        return math.nan
    return _rho_ranks(rankdata(x[ok]), rankdata(y[ok]))


def deg_spearman(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> float:
    """``ρ_M(x, y)``: Spearman on ``E = M & finite(x) & finite(y)``; NaN when ``|E| < 2``."""
    e = mask & np.isfinite(x) & np.isfinite(y)
    if int(e.sum()) < 2:
        return math.nan
    return spearman(x[e], y[e])


def direction_agreement(x: np.ndarray, y: np.ndarray, m1: np.ndarray, m2: np.ndarray) -> float:
    """Fraction of genes in ``m1 & m2 & finite(x) & finite(y)`` with equal sign."""
    e = m1 & m2 & np.isfinite(x) & np.isfinite(y)
    n = int(e.sum())
    if n == 0:
        return math.nan
    return float(np.mean(np.sign(x[e]) == np.sign(y[e])))


def spearman_against(
    x: np.ndarray, peers: np.ndarray, mask: np.ndarray | None = None
) -> FloatArray:
    """``ρ_M(x, p)`` for every row ``p`` of ``peers`` (``ρ(x, p)`` without a mask).

    Peers finite on every gene of ``M & finite(x)`` are scored together as the published
    code does, as the dot product of centred ranks over the product of their Euclidean
    norms (clipped to [-1, 1]; NaN for a constant rank row); the others one by one with
    :func:`deg_spearman`. The two arithmetic paths can differ from ``np.corrcoef`` in the
    last bit, which matters where a peer ties the observed value, so the published
    order of operations is kept.
    """
    peers = np.atleast_2d(np.asarray(peers, dtype=np.float64))
    n_peers = peers.shape[0]
    out = np.full(n_peers, np.nan)
    if n_peers == 0:
        return out
    x = np.asarray(x, dtype=np.float64)
    base = np.isfinite(x) if mask is None else (mask & np.isfinite(x))
    cols = np.flatnonzero(base)
    if cols.size < 2:
        return out
    xs = x[cols]
    sub = peers[:, cols]
    full = np.isfinite(sub).all(axis=1)
    if full.any():
        rx = rankdata(xs)
        if not np.allclose(rx, rx[0]):
            ry = np.atleast_2d(rankdata(sub[full], axis=1)).astype(np.float64)
            const = np.isclose(ry, ry[:, :1]).all(axis=1)
            cx = rx - rx.mean()
            nx = float(np.linalg.norm(cx))
            cy = ry - ry.mean(axis=1, keepdims=True)
            ny = np.linalg.norm(cy, axis=1)
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                r = (cy @ cx) / (ny * nx)
            r = np.clip(r, -1.0, 1.0)
            r[const | ~(ny > 0.0)] = np.nan
            out[full] = r
    for i in np.flatnonzero(~full):
        out[i] = spearman(xs, sub[i])
    return out


def direction_agreement_against(x: np.ndarray, peers: np.ndarray, mask: np.ndarray) -> FloatArray:
    """``DA(x, p; M, finite(p))`` for every row ``p`` of ``peers``."""
    peers = np.atleast_2d(peers)
    base = mask & np.isfinite(x)
    sub = peers[:, base]
    fin = np.isfinite(sub)
    n = fin.sum(axis=1)
    agree = (np.sign(sub) == np.sign(x[base])[None, :]) & fin
    with np.errstate(invalid="ignore", divide="ignore"):
        out = agree.sum(axis=1) / n
    return np.where(n > 0, out, np.nan).astype(np.float64)


def _finite_totals(x: np.ndarray) -> tuple[FloatArray, NDArray[np.int64]]:
    fin = np.isfinite(x)
    return np.where(fin, x, 0.0).sum(axis=0), fin.sum(axis=0, dtype=np.int64)


def centroid_excluding(stratum: np.ndarray, excluded: np.ndarray) -> FloatArray:
    """Gene-wise mean of the rows of ``stratum`` not in ``excluded``, as published.

    Computed as (finite sum of every row − finite sum of the excluded rows) / count in
    float64, NaN where any remaining row is not finite, then rounded to ``float32`` (the
    published analysis stores its centroids in single precision; rounding can create
    ties that matter to ranks). All NaN when no row remains.
    """
    x = np.atleast_2d(np.asarray(stratum, dtype=np.float64))
    excluded = np.asarray(excluded, dtype=bool)
    n_left = int(x.shape[0] - excluded.sum())
    if n_left <= 0:
        return np.full(x.shape[1], np.nan)
    total_s, total_c = _finite_totals(x)
    ex_s, ex_c = _finite_totals(x[excluded])
    left_s, left_c = total_s - ex_s, total_c - ex_c
    mean = np.full(x.shape[1], np.nan)
    ok = left_c > 0
    mean[ok] = left_s[ok] / left_c[ok]
    mean[left_c != n_left] = np.nan
    return np.asarray(mean, dtype=np.float32).astype(np.float64)


def mean_available(*values: float) -> float:
    """Mean of the finite values; NaN when there are none."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def strict_mean(a: float, b: float) -> float:
    """``(a + b) / 2``; NaN when either is NaN."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.nan
    return float(np.mean([a, b]))


PEER_FIELDS = (
    "n_peers",
    "mean_score",
    "sd_score",
    "fraction_below_observed",
    "corrected_percentile",
)


def peer_summary(observed: float, scores: np.ndarray) -> dict[str, float]:
    """The published summary of per-peer scores against the observed value ``o``.

    Non-finite scores are dropped (``K`` left); ``sd_score`` has ``ddof = 1`` (NaN when
    ``K < 2``); ``fraction_below_observed = #{s < o}/K``; ``corrected_percentile =
    (#{s < o} + 1)/(K + 1)``. With ``K = 0`` or a NaN ``o`` all but ``n_peers`` are NaN.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    s = s[np.isfinite(s)]
    k = int(s.size)
    out = {name: math.nan for name in PEER_FIELDS}
    out["n_peers"] = float(k)
    if k == 0 or not math.isfinite(observed):
        return out
    below = int(np.sum(s < observed))
    out["mean_score"] = float(np.mean(s))
    out["sd_score"] = float(np.std(s, ddof=1)) if k >= 2 else math.nan
    out["fraction_below_observed"] = below / k
    out["corrected_percentile"] = (below + 1) / (k + 1)
    return out


def peer_subsample(n: int, max_peers: int, key: str) -> NDArray[np.intp]:
    """Positions of the peers scored: all of them, or the seeded subsample of ``max_peers``.

    The seed is ``int.from_bytes(blake2b(key, digest_size=8), "big")`` and the subsample
    ``default_rng(seed).choice(n, max_peers, replace=False)``, sorted.
    """
    if n <= max_peers:
        return np.arange(n, dtype=np.intp)
    seed = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
    pick = np.random.default_rng(seed).choice(n, max_peers, replace=False)
    return np.sort(pick).astype(np.intp)


def bootstrap_seed(
    summary_level: str, group_values: Sequence[str], metric: str, value_col: str
) -> int:
    """The published seed of one summary row's bootstrap:
    ``(PEER_SEED + blake2b(repr((level, group_values, metric, value_col)))) % (2**32 - 1)``."""
    key = repr((summary_level, tuple(group_values), metric, value_col)).encode()
    h = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")
    return (PEER_SEED + h) % (2**32 - 1)


@dataclass(frozen=True)
class Interval:
    """A summary statistic with its interval: ``method`` is ``bca``,
    ``percentile_fallback``, ``degenerate`` or ``not_estimable``; ``status`` says why."""

    mean: float
    low: float
    high: float
    method: str
    status: str
    n_valid: int


def _bca_from_draws(est: float, boot: FloatArray, jack: FloatArray, *, level: float) -> Interval:
    boot = boot[np.isfinite(boot)]
    jack = jack[np.isfinite(jack)]
    nb = int(boot.size)
    nan = math.nan
    if not math.isfinite(est):
        return Interval(nan, nan, nan, "not_estimable", "nonfinite_observed", nb)
    if nb < 20:
        return Interval(est, nan, nan, "not_estimable", "too_few_valid_bootstraps", nb)
    if boot.max() == boot.min():
        return Interval(est, est, est, "degenerate", "zero_bootstrap_variance", nb)
    a_lo = (1.0 - level) / 2.0
    levels = np.array([a_lo, 1.0 - a_lo])
    p_lo, p_hi = np.quantile(boot, levels)

    def fallback(status: str) -> Interval:
        return Interval(est, float(p_lo), float(p_hi), "percentile_fallback", status, nb)

    if jack.size < 3:
        return fallback("too_few_jackknife_values_for_bca")
    prop = float(np.mean(boot < est))
    prop = min(max(prop, 1.0 / (2.0 * nb)), 1.0 - 1.0 / (2.0 * nb))
    z0 = float(ndtri(prop))
    d = float(np.mean(jack)) - jack
    den = 6.0 * float(np.sum(d**2) ** 1.5)
    if den == 0.0 or not math.isfinite(den):
        return fallback("zero_or_nonfinite_bca_acceleration")
    accel = float(np.sum(d**3) / den)
    if not math.isfinite(accel):
        return fallback("nonfinite_bca_acceleration")
    adjusted = []
    for alpha in levels:
        z = float(ndtri(alpha))
        denom = 1.0 - accel * (z0 + z)
        if denom == 0.0 or not math.isfinite(denom):
            return fallback("invalid_bca_adjusted_quantile")
        adjusted.append(min(max(float(ndtr(z0 + (z0 + z) / denom)), 0.0), 1.0))
    lo, hi = np.quantile(boot, adjusted)
    if lo > hi:
        lo, hi = hi, lo
    return Interval(est, float(lo), float(hi), "bca", "ok", nb)


def bca_interval(
    sums: np.ndarray,
    counts: np.ndarray,
    *,
    seed: int,
    n_boot: int = 2000,
    batch: int = 64,
    level: float = 0.95,
) -> Interval:
    """The cluster-resampled mean ``Σ sums / Σ counts`` with its BCa interval.

    ``sums``/``counts`` are per cluster, in cluster order. Draws come in batches of
    ``batch`` rows of ``default_rng(seed).integers(0, n, size=(batch, n))``; the
    jackknife leaves one cluster out; the BCa levels are
    ``Φ(z0 + (z0 + z_α)/(1 − a(z0 + z_α)))`` on ``np.quantile`` of the draws.
    """
    sums = np.asarray(sums, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    n = sums.size
    total_sum = float(sums[:, None].sum(axis=0)[0])
    total_count = float(counts[:, None].sum(axis=0)[0])
    est = total_sum / total_count if total_count > 0 else math.nan
    if n < 2:
        return Interval(
            math.nan, math.nan, math.nan, "not_estimable", "too_few_clusters_or_values", 0
        )
    rng = np.random.default_rng(seed)
    # ``sums[idx].sum(axis=1)`` is the same contiguous (pairwise) reduction as the
    # published code's per-draw ``(clusters × 1)[draw].sum(axis=0)``: bit-equal totals,
    # so bootstrap values that tie the estimate tie in the same last bit
    s2, c2 = sums[:, None], counts[:, None]
    boot = np.empty(n_boot)
    for start in range(0, n_boot, batch):
        stop = min(start + batch, n_boot)
        idx = rng.integers(0, n, size=(stop - start, n))
        bs, bc = sums[idx].sum(axis=1), counts[idx].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            boot[start:stop] = np.where(bc > 0, bs / np.where(bc > 0, bc, 1.0), np.nan)
    total_s2, total_c2 = s2.sum(axis=0)[0], c2.sum(axis=0)[0]
    left = total_c2 - counts
    with np.errstate(invalid="ignore", divide="ignore"):
        jack = np.where(left > 0, (total_s2 - sums) / np.where(left > 0, left, 1.0), np.nan)
    return _bca_from_draws(est, boot, jack, level=level)

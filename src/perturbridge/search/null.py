"""Significance of search scores: random queries, empirical p-values, FDR, CMap's NCS.

The null distribution of a query's scores comes from ``R`` random queries of the same
sizes scored over the same conditions (:func:`random_queries`). A condition's p-value
compares its observed score with the null scores of every condition in its group
(:func:`empirical_p` with ``groups``, e.g. dataset × cell context: ``R × group size``
null scores per group, so a small ``R`` suffices), or with its own ``R`` null scores
(without ``groups``). Benjamini–Hochberg FDR over the conditions (:func:`fdr_bh`);
CMap's normalized connectivity score per group (:func:`ncs`). Definitions and sources:
``docs/search.md`` ("Scores").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .queries import ResolvedQuery

__all__ = ["empirical_p", "fdr_bh", "ncs", "null_rows", "random_queries"]


def random_queries(
    query: ResolvedQuery,
    *,
    n: int,
    n_cols: int,
    seed: int,
    strata: np.ndarray | None = None,
) -> list[ResolvedQuery]:
    """``n`` random queries of the same sizes as ``query`` on a gene axis of ``n_cols``.

    Gene sets: up and down sets of the query's sizes, drawn without replacement and
    disjoint. A signature: the query's values on as many random columns, in random
    order. With ``strata`` (an int label per store column; a negative label = never
    drawn), each random query draws as many columns from each stratum as the query has
    there (e.g. strata of the genes each dataset measures, so that a random query hits
    as many measured genes of each condition as the query does).

    Returns resolved queries that keep ``query.query`` (its name), reproducible from
    ``seed``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, found {n}")
    sizes = (len(query.up_cols), len(query.down_cols), len(query.signature_cols))
    used = np.concatenate([query.up_cols, query.down_cols, query.signature_cols])
    if len(used) and (used.min() < 0 or used.max() >= n_cols):
        raise ValueError(f"query {query.name!r} has columns outside 0..{n_cols - 1}")
    if strata is None:
        labels = np.zeros(n_cols, dtype=np.int64)
    else:
        labels = np.asarray(strata, dtype=np.int64)
        if labels.shape != (n_cols,):
            raise ValueError(
                f"strata must hold one label per column ({n_cols}), found {labels.shape}"
            )
        if len(used) and (labels[used] < 0).any():
            raise ValueError(f"query {query.name!r} has columns in an excluded stratum (< 0)")
    parts = [query.up_cols, query.down_cols, query.signature_cols]
    kinds = np.repeat(np.arange(3), sizes)  # which part each drawn column goes to
    part_labels = labels[np.concatenate(parts)] if len(used) else np.zeros(0, dtype=np.int64)
    pools = {int(lab): np.flatnonzero(labels == lab) for lab in np.unique(part_labels)}
    for lab, pool in pools.items():
        need = int((part_labels == lab).sum())
        if need > len(pool):  # pragma: no cover - the query's own columns are in the pool
            raise ValueError(f"stratum {lab} has {len(pool)} columns, the query needs {need}")
    rng = np.random.default_rng(seed)
    out: list[ResolvedQuery] = []
    for _ in range(n):
        drawn = np.empty(len(part_labels), dtype=np.int64)
        for lab, pool in pools.items():
            where = np.flatnonzero(part_labels == lab)
            drawn[where] = rng.choice(pool, size=len(where), replace=False)
        up = np.sort(drawn[kinds == 0])
        down = np.sort(drawn[kinds == 1])
        sig = drawn[kinds == 2]
        values = rng.permutation(query.signature_values)
        order = np.argsort(sig)
        out.append(
            ResolvedQuery(
                query=query.query,
                up_cols=up,
                down_cols=down,
                signature_cols=sig[order],
                signature_values=np.asarray(values[order], dtype=np.float64),
                unmatched=(),
            )
        )
    return out


def empirical_p(
    observed: np.ndarray,
    null: np.ndarray,
    *,
    groups: np.ndarray | Sequence[object] | None = None,
    null_groups: np.ndarray | Sequence[object] | None = None,
) -> np.ndarray:
    """Two-sided empirical p-values ``(1 + #{|null| >= |score|}) / (N + 1)``.

    Parameters
    ----------
    observed
        ``(n_rows,)`` scores of one query.
    null
        ``(R, n_rows)`` scores of ``R`` random queries on the same rows, or ``(R, m)``
        on ``m`` other rows labelled by ``null_groups`` (e.g. a sample of each group's
        rows, :func:`null_rows`).
    groups
        A label per row: a row's null is the null scores of every (null) row of its
        group (``R × group size`` values). None: a row's null is its own ``R`` scores.
    null_groups
        A label per column of ``null`` where those are not the observed rows (needs
        ``groups``); a group without null columns gets NaN p-values.

    NaN observed scores give NaN; NaN null scores are left out of the null.
    """
    obs = np.asarray(observed, dtype=np.float64)
    nul = np.asarray(null, dtype=np.float64)
    same_rows = null_groups is None
    if obs.ndim != 1 or nul.ndim != 2 or (same_rows and nul.shape[1] != obs.shape[0]):
        raise ValueError(
            f"observed must be (n_rows,) and null (R, n_rows); found {obs.shape} and {nul.shape}"
        )
    a_obs = np.abs(obs)
    a_null = np.abs(nul)
    p = np.full(obs.shape, np.nan)
    if groups is None:
        if not same_rows:
            raise ValueError("null_groups needs groups (the labels of the observed rows)")
        finite = np.isfinite(a_null)
        n_null = finite.sum(axis=0)
        exceed = (np.where(finite, a_null, -np.inf) >= a_obs[None, :]).sum(axis=0)
        ok = np.isfinite(a_obs) & (n_null > 0)
        p[ok] = (1.0 + exceed[ok]) / (n_null[ok] + 1.0)
        return p
    labels = np.asarray(groups, dtype=object)
    if labels.shape != obs.shape:
        raise ValueError(f"groups must hold one label per row ({len(obs)}), found {labels.shape}")
    null_labels = labels if same_rows else np.asarray(null_groups, dtype=object)
    if null_labels.shape != (nul.shape[1],):
        raise ValueError(
            f"null_groups must hold one label per null column ({nul.shape[1]}), "
            f"found {null_labels.shape}"
        )
    codes, _ = pd.factorize(np.concatenate([labels, null_labels]), use_na_sentinel=False)
    obs_codes, null_codes = codes[: len(labels)], codes[len(labels) :]
    null_order = np.argsort(null_codes, kind="stable")
    starts = np.searchsorted(null_codes[null_order], np.arange(codes.max() + 2))
    for g in np.unique(obs_codes):
        rows = np.flatnonzero((obs_codes == g) & np.isfinite(a_obs))
        pool = a_null[:, null_order[starts[g] : starts[g + 1]]].ravel()
        pool = np.sort(pool[np.isfinite(pool)])
        if len(pool) == 0 or len(rows) == 0:
            continue
        exceed = len(pool) - np.searchsorted(pool, a_obs[rows], side="left")
        p[rows] = (1.0 + exceed) / (len(pool) + 1.0)
    return p


def null_rows(groups: np.ndarray | Sequence[object], *, per_group: int, seed: int) -> np.ndarray:
    """Up to ``per_group`` rows of each group, drawn at random: where to score the random
    queries when the null is pooled per group (sorted row indices)."""
    if per_group < 1:
        raise ValueError(f"per_group must be at least 1, found {per_group}")
    codes, _ = pd.factorize(np.asarray(groups, dtype=object), use_na_sentinel=False)
    rng = np.random.default_rng(seed)
    keys = rng.random(len(codes))
    order = np.lexsort((keys, codes))  # by group, random within
    sorted_codes = codes[order]
    first = np.searchsorted(sorted_codes, sorted_codes, side="left")
    rank_in_group = np.arange(len(codes)) - first
    return np.sort(order[rank_in_group < per_group])


def fdr_bh(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (NaN stays NaN and is not counted)."""
    pv = np.asarray(p, dtype=np.float64)
    if pv.ndim != 1:
        raise ValueError(f"p must be 1-D, found shape {pv.shape}")
    out = np.full(pv.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(pv))
    if len(ok) == 0:
        return out
    if (pv[ok] < 0).any() or (pv[ok] > 1).any():
        raise ValueError("p-values must lie in [0, 1]")
    m = len(ok)
    order = np.argsort(pv[ok], kind="stable")
    ranked = pv[ok][order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out[ok[order]] = np.minimum(adjusted, 1.0)
    return out


def ncs(wtcs: np.ndarray, *, groups: np.ndarray | Sequence[object]) -> np.ndarray:
    """CMap's normalized connectivity score per group (e.g. cell context × perturbagen type).

    A positive score is divided by the mean of the group's positive scores, a negative
    one by the absolute mean of its negative scores; 0 stays 0, NaN stays NaN
    (Subramanian et al. 2017).
    """
    s = np.asarray(wtcs, dtype=np.float64)
    codes, _ = pd.factorize(np.asarray(groups, dtype=object), use_na_sentinel=False)
    if s.ndim != 1 or codes.shape != s.shape:
        raise ValueError(
            f"wtcs must be 1-D with one group label per score; found {s.shape} and {codes.shape}"
        )
    k = int(codes.max()) + 1 if len(codes) else 0
    pos, neg = s > 0, s < 0
    pos_mean = np.bincount(codes, np.where(pos, s, 0), k) / np.maximum(
        np.bincount(codes, pos, k), 1
    )
    neg_mean = np.bincount(codes, np.where(neg, s, 0), k) / np.maximum(
        np.bincount(codes, neg, k), 1
    )
    out = np.where(pos, s / np.where(pos, pos_mean[codes], 1.0), 0.0)
    out = np.where(neg, s / np.where(neg, np.abs(neg_mean[codes]), 1.0), out)
    return np.where(np.isnan(s), np.nan, out)

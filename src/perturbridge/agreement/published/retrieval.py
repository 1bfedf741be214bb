"""Cross-dataset retrieval as published (Table 9; ``docs/published_retrieval.md``).

For every dataset pair, every kept matching context ``(cell_type, time_key)`` and both
directions, each condition of the query dataset ranks the whole target pool of that
context (all eligible target units, expanded to one candidate per processed sample
under ``sample_pairs`` weighting) by a similarity of raw logFC on the pairwise shared
genes that are finite in every pool row of both sides. Positives are *strict matched
conditions*: the target units paired with the query by the published mutual-nearest
dose matching. The rank metrics are those of the published scorer: the best positive's
rank with minimum-rank ties, normalised as ``1 − (r − 1)/(K − 1)``; Recall@1 =
``[r == 1]``; AUROC over positives versus negatives with ties (``|Δ| <= 1e-12``) counted
half. Individual-peer baselines (same-dose other compounds of the query side, and
other compounds at the best positive's dose on the target side) and the exact random
null come with each query. :func:`retrieval_summary` gives the dataset-pair means with
the compound-clustered, stratum-nested BCa interval of the published summary.

The kernels at the top are pure NumPy and know nothing about release files.

Long because Table 9 is one definition (query sets, peer panels, scores, ranks, the
summary) that the published code computes in one pass; split, its steps would pass
half-built tables between modules.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.stats import rankdata

from . import _kernels as k, cross
from .inputs import ReleaseData
from .summary import interval_columns

__all__ = [
    "IDENTITY_COLUMNS",
    "RETRIEVAL_CI_METRICS",
    "RetrievalOptions",
    "Similarity",
    "auroc",
    "best_positive_rank",
    "expected_peer_metrics",
    "min_ranks",
    "nested_bca_interval",
    "published_retrieval",
    "random_null",
    "retrieval_metrics",
    "retrieval_summary",
    "similarity_matrix",
]

logger = logging.getLogger(__name__)

Similarity = Literal["negative_l2", "cosine", "spearman"]
FloatArray = NDArray[np.float64]
_TIE_ATOL = 1e-12

# -- kernels ---------------------------------------------------------------------------------


def min_ranks(scores: np.ndarray) -> FloatArray:
    """Rank 1 = most similar; tied scores share the smallest rank (``method="min"``)."""
    return np.asarray(rankdata(-np.asarray(scores, dtype=np.float64), method="min"), float)


def best_positive_rank(scores: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """``(r, 1 − (r − 1)/(K − 1))``: the best (smallest) minimum-rank of a positive among
    the ``K`` candidates and its normalised form; NaN when ``K < 2`` or no positive."""
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    if s.size < 2 or not pos.any():
        return math.nan, math.nan
    best = float(min_ranks(s)[pos].min())
    return best, 1.0 - (best - 1.0) / (s.size - 1.0)


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Mean over (positive, negative) pairs of ``[p > n] + ½[|p − n| <= 1e-12]``.

    As published, a positive that exceeds a negative by at most ``1e-12`` counts 1.5.
    NaN when either class is empty.
    """
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    p, n = s[pos], s[~pos]
    if p.size == 0 or n.size == 0:
        return math.nan
    d = p[:, None] - n[None, :]
    wins = np.count_nonzero(d > 0) + 0.5 * np.count_nonzero(np.abs(d) <= _TIE_ATOL)
    return float(wins / (p.size * n.size))


METRIC_FIELDS = ("best_rank", "normalized_rank", "recall_at_1", "auroc")


def retrieval_metrics(scores: np.ndarray, positive: np.ndarray) -> dict[str, float]:
    """The published per-query summary: ``n_positives``, ``n_negatives``, ``best_rank``,
    ``normalized_rank``, ``recall_at_1`` and ``auroc``; the four metrics are NaN when a
    class is empty or any score is non-finite."""
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    n_pos = int(pos.sum())
    out: dict[str, float] = {"n_positives": n_pos, "n_negatives": int(pos.size - n_pos)}
    out.update({f: math.nan for f in METRIC_FIELDS})
    if n_pos == 0 or n_pos == pos.size or s.size == 0 or not np.isfinite(s).all():
        return out
    best, norm = best_positive_rank(s, pos)
    out.update(
        best_rank=best,
        normalized_rank=norm,
        recall_at_1=float(best == 1.0),
        auroc=auroc(s, pos),
    )
    return out


def random_null(n_candidates: int, n_positives: int) -> dict[str, float]:
    """Expected metrics when the ``k`` positives sit uniformly among ``n`` candidates:
    ``E[r] = (n + 1)/(k + 1)``, its normalised form, Recall@1 ``k/n``, AUROC ½."""
    n, kk = int(n_candidates), int(n_positives)
    if n < 2 or kk < 1 or kk >= n:
        return {
            "best_rank": math.nan,
            "normalized_rank": math.nan,
            "recall_at_1": math.nan,
            "auroc": 0.5 if 0 < kk < n else math.nan,
        }
    r = (n + 1.0) / (kk + 1.0)
    return {
        "best_rank": r,
        "normalized_rank": 1.0 - (r - 1.0) / (n - 1.0),
        "recall_at_1": kk / n,
        "auroc": 0.5,
    }


def expected_peer_metrics(target_scores: np.ndarray, peer_scores: np.ndarray) -> dict[str, float]:
    """Each peer injected alone as the only positive among the ``T`` target scores,
    averaged over peers: rank ``1 + #{targets > peer}``, normalised ``1 − #{>}/T``,
    Recall@1 and AUROC ``(#{targets < peer} + ½ #{|Δ| <= 1e-12})/T``."""
    t = np.asarray(target_scores, dtype=np.float64)
    p = np.asarray(peer_scores, dtype=np.float64)
    t, p = np.sort(t[np.isfinite(t)]), p[np.isfinite(p)]
    out = {"n_peers": float(p.size), **{f: math.nan for f in METRIC_FIELDS}}
    if t.size < 1 or p.size < 1:
        return out
    n_t = float(t.size)
    below = np.searchsorted(t, p, side="left").astype(np.float64)
    better = t.size - np.searchsorted(t, p, side="right").astype(np.float64)
    close = np.searchsorted(t, p + _TIE_ATOL, side="right") - np.searchsorted(
        t, p - _TIE_ATOL, side="left"
    )
    ranks = 1.0 + better
    out.update(
        best_rank=float(ranks.mean()),
        normalized_rank=float(np.mean(1.0 - better / n_t)),
        recall_at_1=float(np.mean(ranks == 1.0)),
        auroc=float(np.mean((below + 0.5 * close) / n_t)),
    )
    return out


def _unit_rows(x: FloatArray, *, ranked: bool) -> tuple[FloatArray, NDArray[np.bool_]]:
    finite = np.isfinite(x).all(axis=1)
    out = np.zeros_like(x)
    valid = np.zeros(x.shape[0], dtype=bool)
    if finite.any():
        v = x[finite]
        if ranked:
            v = np.atleast_2d(rankdata(v, method="average", axis=1)).astype(np.float64)
            v = v - v.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(v, axis=1)
        ok = norms > 0.0
        rows = np.flatnonzero(finite)[ok]
        out[rows] = v[ok] / norms[ok, None]
        valid[rows] = True
    return out, valid


def similarity_matrix(
    queries: np.ndarray, candidates: np.ndarray, metric: Similarity
) -> tuple[FloatArray, NDArray[np.bool_], NDArray[np.bool_]]:
    """Similarities of every query row to every candidate row, and the valid rows.

    ``negative_l2``: ``−‖q − c‖₂`` (valid = all finite; invalid pairs NaN). ``cosine``
    and ``spearman`` (cosine of centred average ranks): valid = finite with a non-zero
    norm; invalid rows score 0; values clipped to [−1, 1].
    """
    q = np.atleast_2d(np.asarray(queries, dtype=np.float64))
    c = np.atleast_2d(np.asarray(candidates, dtype=np.float64))
    if metric == "negative_l2":
        vq, vc = np.isfinite(q).all(axis=1), np.isfinite(c).all(axis=1)
        out = np.full((q.shape[0], c.shape[0]), np.nan)
        if vq.any() and vc.any():
            a, b = q[vq], c[vc]
            d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
            out[np.ix_(vq, vc)] = -np.sqrt(np.maximum(d2, 0.0))
        return out, np.asarray(vq, dtype=bool), np.asarray(vc, dtype=bool)
    if metric not in ("cosine", "spearman"):
        raise ValueError(
            f"similarity must be 'negative_l2', 'cosine' or 'spearman', got {metric!r}"
        )
    nq, vq = _unit_rows(q, ranked=metric == "spearman")
    nc, vc = _unit_rows(c, ranked=metric == "spearman")
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        s = nq @ nc.T
    return np.clip(s, -1.0, 1.0), vq, vc


def _exact_l2(q: np.ndarray, c: np.ndarray) -> FloatArray:
    """``−‖q − c‖₂`` row by row, by direct differences (used for the observed scores so
    that equal vectors tie exactly, as ``cdist`` gives)."""
    return -np.sqrt(((c - q[None, :]) ** 2).sum(axis=1))


def peer_fields(observed: float, scores: np.ndarray, prefix: str) -> dict[str, float]:
    """The published per-peer summary under ``prefix`` (retrieval names
    ``mean_similarity``/``sd_similarity``), with ``n_below_observed``,
    ``n_at_least_observed`` and ``empirical_p_upper = (#{s >= o} + 1)/(K + 1)``."""
    base = k.peer_summary(observed, scores)
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    n = int(s.size)
    usable = n > 0 and math.isfinite(observed)
    below = int(np.sum(s < observed)) if usable else 0
    at_least = int(np.sum(s >= observed)) if usable else 0
    return {
        f"{prefix}_n_peers": n,
        f"{prefix}_mean_similarity": base["mean_score"],
        f"{prefix}_sd_similarity": base["sd_score"],
        f"{prefix}_n_below_observed": below,
        f"{prefix}_fraction_below_observed": base["fraction_below_observed"],
        f"{prefix}_corrected_percentile": base["corrected_percentile"],
        f"{prefix}_n_at_least_observed": at_least,
        f"{prefix}_empirical_p_upper": (at_least + 1.0) / (n + 1.0) if usable else math.nan,
    }


# -- orchestration ---------------------------------------------------------------------------

IDENTITY_COLUMNS = [
    "dataset_a",
    "dataset_b",
    "direction",
    "query_dataset",
    "target_dataset",
    "cell_type",
    "time_key",
    "query_obs_id",
    "query_pubchem_cid",
    "query_dose_key",
    "query_dose_uM",
    "representation",
    "retrieval_variant",
    "similarity_metric",
    "scale_variant",
]


@dataclass(frozen=True)
class RetrievalOptions:
    """Settings of the published retrieval; the defaults are the published analysis.

    ``similarities``: Table 9 has one panel per similarity. ``weighting``:
    ``sample_pairs`` (one candidate per processed sample, as the published overlap
    files hold) or ``condition`` (one per DE condition). ``max_peers``: the
    individual-peer cap (256 for cosine/Spearman in Table 9; its L2 panel used every
    eligible peer, ``None``). ``overlap_pool``: candidates and queries are the units of
    the published overlap files (:func:`overlap_units`), as in Table 9; ``False`` uses
    every eligible unit.
    """

    similarities: tuple[Similarity, ...] = ("negative_l2", "cosine", "spearman")
    weighting: cross.Weighting = "sample_pairs"
    max_fold: float = 10.0
    min_context_compounds: int = 10
    min_target_candidates: int = 5
    min_unique_compounds: int = 2
    max_peers: int | None = 256
    seed: int = k.PEER_SEED
    overlap_pool: bool = True


def overlap_units(units: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The units of each dataset that the published overlap files keep.

    The published retrieval reads its candidates (and matches its queries) from
    sample-level *overlap* files: a sample is kept when it has a mutual-nearest partner
    in ``|Δ log10 dose| ≤ 1`` (ties kept, atol 1e-12) with the same CID, cell type and
    time in at least one other dataset of the analysis. The same pool serves every
    dataset pair. (The original's extra rules for the L1000 phase I/II pair and its
    name-based sci-Plex/Tahoe bridges are specific to those dataset names and not
    reproduced.)
    """
    keep = {name: np.zeros(len(u), dtype=bool) for name, u in units.items()}
    names = list(units)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ua, ub = units[a], units[b]
            if ua.empty or ub.empty:
                continue
            ga = ua.groupby(["pubchem_cid", "cell_type", "time_key"], sort=False).indices
            gb = ub.groupby(["pubchem_cid", "cell_type", "time_key"], sort=False).indices
            for key, ra in ga.items():
                rb = gb.get(key)
                if rb is None:
                    continue
                la = np.log10(ua["pert_dose_uM"].to_numpy(dtype=np.float64)[ra])
                lb = np.log10(ub["pert_dose_uM"].to_numpy(dtype=np.float64)[rb])
                diff = np.abs(la[:, None] - lb[None, :])
                mnn = (
                    (diff <= 1.0 + 1e-12)
                    & np.isclose(diff, diff.min(axis=1, keepdims=True), rtol=0.0, atol=1e-12)
                    & np.isclose(diff, diff.min(axis=0, keepdims=True), rtol=0.0, atol=1e-12)
                )
                keep[a][ra[mnn.any(axis=1)]] = True
                keep[b][rb[mnn.any(axis=0)]] = True
    return {name: u[keep[name]].reset_index(drop=True) for name, u in units.items()}


@dataclass
class _Pool:
    """One side of a context, expanded to one row per candidate."""

    units: pd.DataFrame  # one row per unit
    expand: NDArray[np.intp]  # candidate → unit
    x: FloatArray  # candidate × genes (finite-gene subset applied later)


def _context_genes(data: ReleaseData, a: str, ua: pd.DataFrame, b: str, ub: pd.DataFrame):
    files_a = [data[a].group[f] for f in pd.unique(ua["de_file"])]
    files_b = [data[b].group[f] for f in pd.unique(ub["de_file"])]
    others = [f.gene_index for f in (*files_a[1:], *files_b)]
    keys = [g for g in files_a[0].genes if all(g in o for o in others)]
    return keys, files_a, files_b


def _pool(data: ReleaseData, name: str, units: pd.DataFrame, keys: list[str]) -> _Pool:
    rows = np.empty((len(units), len(keys)), dtype=np.float64)
    for f_name, sub in units.groupby("de_file", sort=False):
        f = data[name].group[str(f_name)]
        pos = np.array([f.gene_index[g] for g in keys], dtype=np.intp)
        where = units.index.get_indexer(sub.index)
        rows[where] = f.logfc[np.ix_(sub["de_row"].to_numpy(dtype=np.intp), pos)]
    expand = np.repeat(np.arange(len(units)), units["n_samples"].to_numpy(dtype=np.intp))
    return _Pool(units=units, expand=expand, x=rows[expand])


def _direction_rows(
    *,
    base: dict[str, str],
    direction: str,
    q: _Pool,
    t: _Pool,
    positives: dict[int, set[int]],
    metric: Similarity,
    opts: RetrievalOptions,
    skipped: list[dict[str, object]],
) -> list[dict[str, object]]:
    qd, td = (base["dataset_a"], base["dataset_b"])[:: 1 if direction == "A_to_B" else -1]
    scores, vq_c, vt = similarity_matrix(q.x, t.x, metric)
    self_scores, vq_self, _ = similarity_matrix(q.x, q.x, metric)
    t_idx = np.flatnonzero(vt)
    context = {**base, "direction": direction, "similarity_metric": metric}
    if t_idx.size < opts.min_target_candidates:
        skipped.append({**context, "reason": "fewer_valid_target_candidates_than_minimum"})
        return []
    t_unit = t.expand[t_idx]
    t_cid = t.units["pubchem_cid"].to_numpy(dtype=str)[t_unit]
    t_dose_key = t.units["dose_key"].to_numpy(dtype=str)[t_unit]
    t_dose = t.units["pert_dose_uM"].to_numpy(dtype=np.float64)[t_unit]
    q_cid_c = q.units["pubchem_cid"].to_numpy(dtype=str)[q.expand]
    q_dose_c = q.units["dose_key"].to_numpy(dtype=str)[q.expand]
    first = np.searchsorted(q.expand, np.arange(len(q.units)))  # first candidate per unit
    out: list[dict[str, object]] = []
    for u, ci in enumerate(first):
        unit = q.units.iloc[u]
        ident = {
            **context,
            "query_dataset": qd,
            "target_dataset": td,
            "query_obs_id": str(unit["obs_id"]),
            "query_pubchem_cid": str(unit["pubchem_cid"]),
            "query_dose_key": str(unit["dose_key"]),
        }
        if not vq_c[ci]:
            skipped.append({**ident, "reason": "invalid_query_signature"})
            continue
        row_scores = scores[ci, t_idx]
        if metric == "negative_l2":
            row_scores = _exact_l2(q.x[ci], t.x[t_idx])
        pos = np.isin(t_unit, list(positives.get(u, ())))
        obs = retrieval_metrics(row_scores, pos)
        if obs["n_positives"] == 0 or obs["n_negatives"] == 0:
            reason = "no_strict_positive" if obs["n_positives"] == 0 else "no_negative"
            skipped.append({**ident, "reason": reason})
            continue
        pidx = np.flatnonzero(pos)
        best = int(pidx[int(np.argmax(row_scores[pidx]))])
        best_score = float(row_scores[best])
        q_cid, q_dose = str(unit["pubchem_cid"]), str(unit["dose_key"])
        key = [qd, td, base["cell_type"], base["time_key"], str(unit["obs_id"])]

        src_all = np.flatnonzero((q_dose_c == q_dose) & (q_cid_c != q_cid) & vq_self)
        src_key = f"{opts.seed}|" + "|".join([*key, q_dose, q_cid, "source"])
        src = src_all[_cap(src_all.size, opts.max_peers, src_key)]
        src_scores = self_scores[ci, src]
        if metric == "negative_l2" and src.size:
            src_scores = _exact_l2(q.x[ci], q.x[src])
        tgt_all = np.flatnonzero((t_dose_key == t_dose_key[best]) & (t_cid != q_cid))
        tgt_key = f"{opts.seed}|" + "|".join([*key, str(t_dose_key[best]), q_cid, "target"])
        tgt = tgt_all[_cap(tgt_all.size, opts.max_peers, tgt_key)]
        tgt_scores = row_scores[tgt]

        null = random_null(row_scores.size, int(obs["n_positives"]))
        rec: dict[str, object] = {
            **ident,
            "query_dose_uM": float(unit["pert_dose_uM"]),
            "representation": "logFC",
            "retrieval_variant": "strict_matched_condition",
            "scale_variant": "raw",
            "n_query_samples": int(unit["n_samples"]),
            "target_pool_size": int(t_idx.size),
            "target_pool_size_before_similarity_filter": int(t.x.shape[0]),
            "n_zero_norm_target_candidates": int(t.x.shape[0] - t_idx.size),
            "n_query_side_conditions": int(q.x.shape[0]),
            "n_target_side_conditions": int(t_idx.size),
            "n_query_side_unique_compounds": len(set(q_cid_c)),
            "n_target_side_unique_compounds": len(set(t_cid)),
            "n_shared_genes": int(q.x.shape[1]),
            "n_positive_candidates": int(obs["n_positives"]),
            "n_negative_candidates": int(obs["n_negatives"]),
            "observed_best_positive_rank": obs["best_rank"],
            "observed_normalized_best_positive_rank": obs["normalized_rank"],
            "observed_recall_at_1": obs["recall_at_1"],
            "observed_auroc": obs["auroc"],
            "observed_best_positive_similarity": best_score,
            "observed_mean_positive_similarity": float(np.mean(row_scores[pidx])),
            "observed_sd_positive_similarity": (
                float(np.std(row_scores[pidx], ddof=1)) if pidx.size >= 2 else math.nan
            ),
            "best_target_obs_id": str(t.units["obs_id"].to_numpy()[t_unit[best]]),
            "best_target_dose_key": str(t_dose_key[best]),
            "best_target_dose_uM": float(t_dose[best]),
            "best_target_dose_fold_difference": float(
                max(unit["pert_dose_uM"] / t_dose[best], t_dose[best] / unit["pert_dose_uM"])
            ),
            # the published strict-variant scorer leaves these NaN (only its legacy
            # variant wrote them); the same floors are the target_decoy_null_* columns
            "random_normalized_best_positive_rank": math.nan,
            "random_recall_at_1": math.nan,
            "random_auroc": math.nan,
            "delta_vs_random_normalized_best_positive_rank": _delta(
                obs["normalized_rank"], null["normalized_rank"]
            ),
            "target_decoy_null_normalized_best_positive_rank": null["normalized_rank"],
            "delta_vs_target_decoy_null_normalized_best_positive_rank": _delta(
                obs["normalized_rank"], null["normalized_rank"]
            ),
            "source_individual_total_count": int(src_all.size),
            "source_individual_scored_count": int(src.size),
            "target_individual_total_count": int(tgt_all.size),
            "target_individual_scored_count": int(tgt.size),
            **peer_fields(best_score, src_scores, "source_individual"),
            **peer_fields(best_score, tgt_scores, "target_individual"),
        }
        for side, peers in (("source", src_scores), ("target", tgt_scores)):
            m = expected_peer_metrics(row_scores, peers)
            for f in METRIC_FIELDS:
                rec[f"{side}_peer_{f}"] = m[f]
            for f in ("normalized_rank", "recall_at_1", "auroc"):
                rec[f"delta_vs_{side}_peer_{f}"] = _delta(obs[f], m[f])
        out.append(rec)
    return out


def _cap(n: int, max_peers: int | None, key: str) -> NDArray[np.intp]:
    if max_peers is None or max_peers <= 0:
        return np.arange(n, dtype=np.intp)
    return k.peer_subsample(n, max_peers, key)


def _delta(a: float, b: float) -> float:
    return a - b if math.isfinite(a) and math.isfinite(b) else math.nan


def published_retrieval(
    data: ReleaseData, *, options: RetrievalOptions = RetrievalOptions()
) -> pd.DataFrame:
    """Table 9 per-query rows of every dataset pair, context, direction and similarity.

    One row per query unit (a DE condition; ``n_query_samples`` processed samples stand
    behind it under ``sample_pairs`` weighting and weight it in the summary), with the
    published column names, sorted by :data:`IDENTITY_COLUMNS` as strings. Contexts and
    queries that are not scored are listed with their reason in
    ``frame.attrs["skipped"]`` (a list of records).

    Examples
    --------
    >>> from perturbridge.agreement.published import read_release
    >>> from perturbridge.simulate.release import write_release_tree
    >>> root = write_release_tree("/tmp/t9", seed=0)  # doctest: +SKIP
    >>> q = published_retrieval(read_release("/tmp/t9"))  # doctest: +SKIP
    """
    bad = [s for s in options.similarities if s not in ("negative_l2", "cosine", "spearman")]
    if bad:
        raise ValueError(
            f"unknown similarities {bad}; expected any of 'negative_l2', 'cosine', 'spearman'"
        )
    if options.weighting not in ("sample_pairs", "condition"):
        raise ValueError(
            f"weighting must be 'sample_pairs' or 'condition', got {options.weighting!r}"
        )
    mopts = cross.MatchOptions(
        max_fold=options.max_fold, min_context_compounds=options.min_context_compounds
    )
    units = {n: cross.units_for(data, n, options.weighting) for n in data.names}
    if options.overlap_pool:
        units = overlap_units(units)
    records: list[dict[str, object]] = []
    skipped: list[dict[str, object]] = []
    for a, b in cross.dataset_pairs(data.names):
        matches, _ = cross.match_units(units[a], units[b], options=mopts)
        if matches.empty:
            continue
        for (ct, tk), m in matches.groupby(["cell_type", "time_key"], sort=True):
            base = {"dataset_a": a, "dataset_b": b, "cell_type": str(ct), "time_key": str(tk)}
            ua, ub = (
                u[(u["cell_type"] == ct) & (u["time_key"] == tk)].reset_index(drop=True)
                for u in (units[a], units[b])
            )
            sizes = [int(ua["n_samples"].sum()), int(ub["n_samples"].sum())]
            n_cids = [ua["pubchem_cid"].nunique(), ub["pubchem_cid"].nunique()]
            if min(sizes) < options.min_target_candidates or (
                min(n_cids) < options.min_unique_compounds
            ):
                skipped.append({**base, "reason": "insufficient_candidates_or_unique_compounds"})
                continue
            keys, _, _ = _context_genes(data, a, ua, b, ub)
            pa, pb = _pool(data, a, ua, keys), _pool(data, b, ub, keys)
            fin = np.isfinite(pa.x).all(axis=0) & np.isfinite(pb.x).all(axis=0)
            if int(fin.sum()) < 2:
                skipped.append({**base, "reason": "fewer_than_two_fully_finite_shared_genes"})
                continue
            pa.x, pb.x = pa.x[:, fin], pb.x[:, fin]
            ia = {(r.de_file, r.de_row): i for i, r in enumerate(ua.itertuples())}
            ib = {(r.de_file, r.de_row): i for i, r in enumerate(ub.itertuples())}
            fwd: dict[int, set[int]] = {}
            rev: dict[int, set[int]] = {}
            for r in m.itertuples():
                i, j = ia[(r.left_de_file, r.left_de_row)], ib[(r.right_de_file, r.right_de_row)]
                fwd.setdefault(i, set()).add(j)
                rev.setdefault(j, set()).add(i)
            for metric in options.similarities:
                for direction, q, t, pos in (("A_to_B", pa, pb, fwd), ("B_to_A", pb, pa, rev)):
                    records += _direction_rows(
                        base=base,
                        direction=direction,
                        q=q,
                        t=t,
                        positives=pos,
                        metric=metric,
                        opts=options,
                        skipped=skipped,
                    )
    out = pd.DataFrame(records)
    if not out.empty:
        order = out[IDENTITY_COLUMNS].astype(str)
        out = out.iloc[np.lexsort([order[c].to_numpy() for c in reversed(IDENTITY_COLUMNS)])]
        out = out.reset_index(drop=True)
    out.attrs["skipped"] = skipped
    logger.info("published retrieval: %d query rows, %d not scored", len(out), len(skipped))
    return out


# -- summary ---------------------------------------------------------------------------------

#: Per-query columns summarised per dataset pair, in the published order.
RETRIEVAL_CI_METRICS = (
    "observed_normalized_best_positive_rank",
    "observed_recall_at_1",
    "observed_auroc",
    "observed_best_positive_similarity",
    "random_normalized_best_positive_rank",
    "random_recall_at_1",
    "random_auroc",
    "delta_vs_random_normalized_best_positive_rank",
    "source_individual_n_peers",
    "source_individual_mean_similarity",
    "source_individual_sd_similarity",
    "source_individual_n_below_observed",
    "source_individual_fraction_below_observed",
    "source_individual_corrected_percentile",
    "target_individual_n_peers",
    "target_individual_mean_similarity",
    "target_individual_sd_similarity",
    "target_individual_n_below_observed",
    "target_individual_fraction_below_observed",
    "target_individual_corrected_percentile",
    "source_peer_normalized_rank",
    "target_peer_normalized_rank",
    "delta_vs_source_peer_normalized_rank",
    "delta_vs_target_peer_normalized_rank",
    "target_decoy_null_normalized_best_positive_rank",
    "delta_vs_target_decoy_null_normalized_best_positive_rank",
)
_GROUP = [
    "dataset_a",
    "dataset_b",
    "representation",
    "retrieval_variant",
    "similarity_metric",
    "scale_variant",
]
_INNER = ["direction", "cell_type", "time_key"]
#: Published summary level per similarity (it seeds the bootstrap).
SUMMARY_LEVELS = {
    "negative_l2": "reviewer_l2_retrieval_dataset_pair",
    "cosine": "reviewer_minimal_retrieval_dataset_pair",
    "spearman": "reviewer_minimal_retrieval_dataset_pair",
}


def _nested_stat(sums: FloatArray, counts: FloatArray, outer: NDArray[np.intp]) -> FloatArray:
    """Rows of per-stratum totals → mean over outer groups of the mean of their
    stratum means (strata with no count skipped at both levels)."""
    valid = counts > 0
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=valid)
    groups = []
    for g in np.unique(outer):
        col = outer == g
        n = valid[:, col].sum(axis=1)
        s = np.where(valid[:, col], means[:, col], 0.0).sum(axis=1)
        groups.append(np.divide(s, n, out=np.full(n.shape, np.nan), where=n > 0))
    g_arr = np.column_stack(groups)
    ok = np.isfinite(g_arr)
    n = ok.sum(axis=1)
    return np.divide(
        np.where(ok, g_arr, 0.0).sum(axis=1), n, out=np.full(n.shape, np.nan), where=n > 0
    )


def nested_bca_interval(
    sums: np.ndarray,
    counts: np.ndarray,
    outer: np.ndarray,
    *,
    seed: int,
    n_boot: int = 2000,
    batch: int = 64,
    level: float = 0.95,
) -> k.Interval:
    """The cluster-resampled nested mean with its BCa interval.

    ``sums``/``counts`` are cluster × stratum totals (clusters in order of first
    appearance); ``outer`` gives each stratum's outer group. The statistic is the mean
    over outer groups of the mean of their stratum means (``Σ sums / Σ counts`` per
    stratum). Draws, jackknife and BCa as :func:`_kernels.bca_interval`.
    """
    sums = np.asarray(sums, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    outer = np.asarray(outer, dtype=np.intp)
    n = sums.shape[0]
    nan = math.nan
    if n < 2:
        return k.Interval(nan, nan, nan, "not_estimable", "too_few_clusters_or_values", 0)
    tot_s, tot_c = sums.sum(axis=0), counts.sum(axis=0)
    est = float(_nested_stat(tot_s[None, :], tot_c[None, :], outer)[0])
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    for start in range(0, n_boot, batch):
        b = min(batch, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        bs = np.stack([sums[i].sum(axis=0) for i in idx])
        bc = np.stack([counts[i].sum(axis=0) for i in idx])
        boot[start : start + b] = _nested_stat(bs, bc, outer)
    jack = _nested_stat(tot_s[None, :] - sums, tot_c[None, :] - counts, outer)
    iv = k._bca_from_draws(est, boot, jack, level=level)
    if iv.method == "not_estimable":  # the published summary gives no interval here
        return k.Interval(iv.mean, nan, nan, iv.method, iv.status, iv.n_valid)
    return iv


def retrieval_summary(
    queries: pd.DataFrame,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    weight_col: str | None = "n_query_samples",
) -> pd.DataFrame:
    """Per dataset pair × similarity, each metric's nested mean with its BCa interval.

    Clusters are query compounds (``query_pubchem_cid``, first appearance in
    ``queries``); strata ``(direction, cell_type, time_key)`` are averaged within each
    direction and the two directions averaged. Each query counts ``weight_col`` times
    (its processed samples; ``None`` counts once). Seeds use the published summary
    levels (:data:`SUMMARY_LEVELS`), group values and metric names.
    """
    if queries.empty:
        return pd.DataFrame()
    missing = [c for c in [*_GROUP, *_INNER, "query_pubchem_cid"] if c not in queries.columns]
    if missing:
        raise KeyError(f"retrieval rows lack {missing}; expected the output of published_retrieval")
    records = []
    for values, sub in queries.groupby(_GROUP, sort=False, dropna=False):
        group_values = tuple(str(v) for v in values)
        level_name = SUMMARY_LEVELS.get(group_values[4], "reviewer_retrieval_dataset_pair")
        cl_all = sub["query_pubchem_cid"].astype("string").fillna("").astype(str).str.strip()
        strata_all = pd.MultiIndex.from_frame(sub[_INNER].astype(str))
        codes_all, uniq = pd.factorize(strata_all, sort=False)
        outer_all = pd.factorize(uniq.get_level_values(0), sort=False)[0]
        w = (
            sub[weight_col].to_numpy(dtype=np.float64)
            if weight_col is not None and weight_col in sub.columns
            else np.ones(len(sub))
        )
        for metric in [c for c in RETRIEVAL_CI_METRICS if c in sub.columns]:
            v = pd.to_numeric(sub[metric], errors="coerce").to_numpy(dtype=np.float64)
            ok = np.isfinite(v) & (cl_all.to_numpy() != "")
            cl_codes, cl_keys = pd.factorize(cl_all.to_numpy()[ok], sort=False)
            # strata keep their order of first appearance among the finite rows
            first = pd.unique(codes_all[ok])
            remap = {int(c): i for i, c in enumerate(first)}
            st_codes = np.array([remap[int(c)] for c in codes_all[ok]], dtype=np.intp)
            n_cl, n_st = len(cl_keys), len(first)
            sums = np.zeros((n_cl, n_st))
            counts = np.zeros((n_cl, n_st))
            # one addition per processed sample, as the published table has one row per
            # sample: a weighted sum differs in the last bit, which decides ties in BCa
            reps = np.rint(w[ok]).astype(np.int64)
            rows = np.repeat(np.arange(int(ok.sum())), reps)
            np.add.at(sums, (cl_codes[rows], st_codes[rows]), v[ok][rows])
            np.add.at(counts, (cl_codes[rows], st_codes[rows]), 1.0)
            seed = k.bootstrap_seed(level_name, group_values, metric, metric)
            iv = nested_bca_interval(
                sums, counts, outer_all[first], seed=seed, n_boot=n_boot, level=level
            )
            records.append(
                {
                    **dict(zip(_GROUP, values, strict=True)),
                    "summary_level": level_name,
                    "metric": metric,
                    "value_col": metric,
                    **interval_columns(iv, level=level, n_boot=n_boot),
                    "n_rows": int(w.sum()),
                    "n_finite_rows": int(w[ok].sum()),
                    "n_compounds": n_cl,
                    "cluster_col": "query_pubchem_cid",
                    "inner_strata": ",".join(_INNER),
                    "outer_strata": "direction",
                }
            )
    return pd.DataFrame(records)

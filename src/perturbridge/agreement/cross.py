"""Cross-dataset agreement: observed metrics, centroid and peer baselines, retrieval.

For each dataset pair and kept (context, time) stratum (see :mod:`.matching`), the
signatures of both datasets in the stratum are read once (one block per side), the
matched pairs are gathered into row-aligned matrices and the metric kernels
(:func:`.metrics.pair_metrics`) run once per block of pairs: no Python loop per pair.

Baselines replace one side of a pair and keep both DE masks (see ``docs/agreement.md``):

* ``cross_centroid_a``: ``m(centroid_A, b)``, the leave-one-compound-out mean of the
  other compounds of A at ``a``'s dose (else of the whole stratum);
* ``cross_centroid_b``: ``m(a, centroid_B)``, the same in B at ``b``'s dose;
* ``peers``: ``m(peer, b)`` for up to ``max_peers`` other compounds of A in the stratum
  (each by its condition nearest in log10 dose to ``a``).

Centroids come from group sums (a sparse indicator matrix times the block) minus the
compound's own sums. Peers are chosen without randomness per call: the compounds are
ordered by a seeded hash and each pair takes a window of that circular order starting at
a seeded hash of its condition ids, so a pair gets the same peers whatever other pairs
are computed (the dose-sensitivity rerun reuses them exactly).

Long because the pair table, its baselines (centroids, peers), the retrieval rows and
their summaries share one stratum walk and its column layout; split, each part would
re-derive the other's columns.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

import numpy as np
import pandas as pd

from ..progress import track
from ._peers import PeerPairs, peer_metrics
from .bootstrap import cluster_bca, cluster_stratum_means, nested_mean
from .matching import _DOSE_SLACK, MatchResult, snap_values
from .metrics import PAIR_METRICS, pair_metrics, retrieval, retrieval_scores
from .options import CompareOptions
from .signatures import DERule, Signatures, ZScoreStats, load_signatures

if TYPE_CHECKING:
    from ..compendium import Compendium

__all__ = [
    "BASELINES",
    "SUMMARY_COLUMNS",
    "Baselines",
    "CentroidSums",
    "SignatureOptions",
    "cross_pairs",
    "peer_rows",
    "peer_stats",
    "summarize",
    "summarize_cross",
]

logger = logging.getLogger(__name__)

#: Baselines of the cross-dataset pair table (column suffixes ``M__<baseline>``).
BASELINES = ("cross_centroid_a", "cross_centroid_b", "peer_mean")

#: Columns of ``cross_summary`` (``replicate_summary`` has ``dataset`` instead of the pair).
SUMMARY_COLUMNS = [
    "dataset_a",
    "dataset_b",
    "level",
    "cell_context",
    "direction",
    "metric",
    "baseline",
    "observed",
    "observed_low",
    "observed_high",
    "baseline_value",
    "delta",
    "delta_low",
    "delta_high",
    "n_pairs",
    "n_compounds",
    "n_contexts",
    "n_strata",
]

RETRIEVAL_METRICS = {
    "retrieval_norm_rank": ("norm_rank", "norm_rank_floor"),
    "retrieval_recall1": ("recall1", "recall1_floor"),
    "retrieval_auroc": ("auroc", None),
}


@dataclass(frozen=True)
class SignatureOptions:
    """How signatures and DE masks are read from a store."""

    mode: Literal["group", "separate"] = "group"
    alpha: float = 0.05
    lfc_min: float | None = None
    de_rule: DERule = "auto"
    z_min: float = 2.0
    zscore: ZScoreStats | None = None

    def load(self, comp: Compendium, ids: Sequence[str]) -> Signatures:
        """The signatures of ``ids`` (condition ids) in this mode."""
        return load_signatures(
            comp,
            list(ids),
            mode=self.mode,
            alpha=self.alpha,
            lfc_min=self.lfc_min,
            de_rule=self.de_rule,
            z_min=self.z_min,
            zscore=self.zscore,
        )


# --------------------------------------------------------------------------- baselines


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, inv = np.unique(np.asarray(values), return_inverse=True)
    return inv.reshape(-1).astype(np.int64), uniq


def _group_sums(x: np.ndarray, codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-group sums of finite values and per-gene counts of finite values."""
    import scipy.sparse as sp

    n = x.shape[0]
    ind = sp.csr_matrix((np.ones(n, dtype=np.float64), (codes, np.arange(n))), shape=(n_groups, n))
    ok = np.isfinite(x)
    sums = np.asarray(ind @ np.where(ok, x, 0.0).astype(np.float64))
    counts = np.asarray(ind @ ok.astype(np.float64))
    return sums, counts


class CentroidSums:
    """Leave-one-compound-out centroids of a block of signatures (one stratum).

    Parameters
    ----------
    x
        ``(n, G)`` signatures of the stratum.
    compounds
        ``(n,)`` compound of each row.
    doses
        ``(n,)`` dose of each row (grouped within a relative tolerance of 1e-6).
    """

    def __init__(self, x: np.ndarray, compounds: np.ndarray, doses: np.ndarray) -> None:
        n = x.shape[0]
        self.comp, _ = _codes(np.asarray(compounds).astype(str))
        self.dose, _ = _codes(snap_values(np.asarray(doses, dtype=float)))
        n_c = int(self.comp.max()) + 1 if n else 0
        n_d = int(self.dose.max()) + 1 if n else 0
        self._n_c = max(n_c, 1)
        gc = self.dose * self._n_c + self.comp
        self.gc, gc_uniq = _codes(gc)
        self._gc_lookup = pd.Series(np.arange(len(gc_uniq)), index=gc_uniq)
        self.s_all, self.n_all = _group_sums(x, np.zeros(n, dtype=np.int64), 1)
        self.s_c, self.n_c = _group_sums(x, self.comp, max(n_c, 0))
        self.s_g, self.n_g = _group_sums(x, self.dose, max(n_d, 0))
        self.s_gc, self.n_gc = _group_sums(x, self.gc, len(gc_uniq))
        self.rows_c = np.bincount(self.comp, minlength=n_c)
        self.rows_g = np.bincount(self.dose, minlength=n_d)
        self.rows_gc = np.bincount(self.gc, minlength=len(gc_uniq))

    def of_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centroids of the other compounds for the signatures at ``rows``: at the
        row's dose when another compound has it (``exact``), else over the stratum.

        Returns ``(centroids (len(rows), G) float32, exact (len(rows),) bool)``; a
        centroid is NaN on genes no other compound measured (or when there is none).
        """
        rows = np.asarray(rows, dtype=np.int64)
        g, c, gc = self.dose[rows], self.comp[rows], self.gc[rows]
        exact = (self.rows_g[g] - self.rows_gc[gc]) > 0
        s = np.where(exact[:, None], self.s_g[g] - self.s_gc[gc], self.s_all[0] - self.s_c[c])
        n = np.where(exact[:, None], self.n_g[g] - self.n_gc[gc], self.n_all[0] - self.n_c[c])
        with np.errstate(invalid="ignore", divide="ignore"):
            cen = np.where(n > 0.5, s / np.maximum(n, 1.0), np.nan)
        return cen.astype(np.float32), exact


def _hash(strings: Sequence[str] | np.ndarray, seed: int) -> np.ndarray:
    keys = np.asarray([f"{seed}\x1f{s}" for s in strings], dtype=object)
    return pd.util.hash_array(keys)


def peer_rows(
    pool_compound: np.ndarray,
    pool_log10_dose: np.ndarray,
    query_compound: np.ndarray,
    query_log10_dose: np.ndarray,
    pair_keys: Sequence[str],
    *,
    max_peers: int = 50,
    seed: int = 0,
) -> np.ndarray:
    """Peer signatures for each query: other compounds of the pool, nearest in dose.

    Parameters
    ----------
    pool_compound, pool_log10_dose
        ``(n,)`` compound and log10 dose of the pool's rows (one stratum).
    query_compound, query_log10_dose
        ``(P,)`` compound and log10 dose of each query (the source side of a pair).
    pair_keys
        ``(P,)`` a stable text key per pair (its condition ids): with ``seed`` it fixes
        the pair's peers.
    max_peers
        At most this many peers per query.

    Returns
    -------
    numpy.ndarray
        ``(P, J)`` int64 positions into the pool (``-1`` where there is no peer); each
        row has at most ``max_peers`` peers, each a distinct compound other than the
        query's, by its row nearest in log10 dose (ties: the lower dose).
    """
    pool_compound = np.asarray(pool_compound).astype(str)
    query_compound = np.asarray(query_compound).astype(str)
    n_q = len(query_compound)
    labels = np.unique(pool_compound)
    n_c = len(labels)
    if n_q == 0 or n_c == 0 or max_peers < 1:
        return np.full((n_q, 0), -1, dtype=np.int64)
    order = np.argsort(_hash(labels, seed), kind="stable")  # a seeded circular order
    width = min(max_peers + 1, n_c)
    offset = (_hash(pair_keys, seed + 1) % np.uint64(n_c)).astype(np.int64)
    cand = order[(offset[:, None] + np.arange(width)[None, :]) % n_c]  # (P, width) codes
    own = pd.Index(labels).get_indexer(pd.Index(query_compound))
    valid = cand != own[:, None]
    valid &= np.cumsum(valid, axis=1) <= max_peers
    # nearest row of compound k to dose d: search a (compound, log10 dose) sorted key
    code = np.searchsorted(labels, pool_compound)
    ld = np.asarray(pool_log10_dose, dtype=float)
    lo_d, hi_d = float(np.nanmin(ld)), float(np.nanmax(ld))
    width_d = (hi_d - lo_d) + 1.0
    key = code * width_d + (ld - lo_d)
    srt = np.lexsort((np.arange(len(ld)), ld, code))
    key_s = key[srt]
    seg_start = np.searchsorted(code[srt], np.arange(n_c), side="left")
    seg_end = np.searchsorted(code[srt], np.arange(n_c), side="right")
    qd = np.clip(np.asarray(query_log10_dose, dtype=float), lo_d, hi_d)
    kk = cand.ravel()
    dd = np.repeat(qd, width)
    pos = np.searchsorted(key_s, kk * width_d + (dd - lo_d), side="left")
    lo = np.clip(pos - 1, 0, len(key_s) - 1)
    hi = np.clip(pos, 0, len(key_s) - 1)
    lo_ok = (pos - 1 >= seg_start[kk]) & (pos - 1 < seg_end[kk])
    hi_ok = (pos >= seg_start[kk]) & (pos < seg_end[kk])
    d_lo = np.where(lo_ok, np.abs(ld[srt][lo] - dd), np.inf)
    d_hi = np.where(hi_ok, np.abs(ld[srt][hi] - dd), np.inf)
    pick = np.where(d_lo <= d_hi, srt[lo], srt[hi])
    out = pick.reshape(n_q, width)
    out[~valid] = -1
    return out


def peer_stats(peers: np.ndarray, observed: np.ndarray) -> dict[str, np.ndarray]:
    """Per-pair peer mean, SD (``ddof=1``), add-one percentile and count.

    ``peers`` is ``(P, J)`` with NaN where there is no peer value. The percentile is
    ``(1 + #{peer < observed}) / (K + 1)`` over the ``K`` finite peer values (NaN when
    the observed value is NaN or ``K = 0``).
    """
    ok = np.isfinite(peers)
    k = ok.sum(axis=1)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.where(k > 0, np.nansum(peers, axis=1) / np.maximum(k, 1), np.nan)
        dev = np.where(ok, peers - mean[:, None], 0.0)
        sd = np.where(k > 1, np.sqrt((dev * dev).sum(axis=1) / np.maximum(k - 1, 1)), np.nan)
        below = (ok & (peers < observed[:, None])).sum(axis=1)
        pct = np.where((k > 0) & np.isfinite(observed), (1.0 + below) / (k + 1.0), np.nan)
    return {"peer_mean": mean, "peer_sd": sd, "peer_pct": pct, "n_peers": k.astype(np.int64)}


def _pair_counts(a: np.ndarray, b: np.ndarray, de_a: np.ndarray, de_b: np.ndarray):
    common = np.isfinite(a) & np.isfinite(b)
    return common.sum(axis=1), (de_a & common).sum(axis=1), (de_b & common).sum(axis=1)


@dataclass(frozen=True)
class Baselines:
    """The baselines of :func:`baseline_metrics` and the names of their columns.

    ``src_centroids`` / ``tgt_centroids`` replace the source / target side by its
    centroid; ``peers`` (``(P, J)`` rows of the source signatures or ``-1``) replace the
    source side by each peer. ``names``: the column suffixes of the source centroid, the
    target centroid and the peers.
    """

    src_centroids: CentroidSums | None = None
    tgt_centroids: CentroidSums | None = None
    peers: np.ndarray | None = None
    names: tuple[str, str, str] = ("cross_centroid_a", "cross_centroid_b", "peer")


def baseline_metrics(
    src: Signatures,
    tgt: Signatures,
    *,
    i_src: np.ndarray,
    i_tgt: np.ndarray,
    metrics: Sequence[str],
    baselines: Baselines | None = None,
    chunk_size: int = 4096,
) -> dict[str, np.ndarray]:
    """Observed metrics of the pairs ``(src[i_src], tgt[i_tgt])`` and their baselines.

    Returns the pair-table columns: ``n_genes``, ``n_de_a``, ``n_de_b``, and per metric ``M``,
    ``M__<names[0]>``, ``M__<names[1]>``, ``M__peer_mean``, ``M__peer_sd``,
    ``M__peer_pct``, ``M__n_peers``, plus ``centroid_dose_exact`` /
    ``cross_centroid_b_dose_exact`` when the centroids are given.
    """
    base = baselines or Baselines()
    src_centroids, tgt_centroids, peers, names = (
        base.src_centroids,
        base.tgt_centroids,
        base.peers,
        base.names,
    )
    i_src = np.asarray(i_src, dtype=np.int64)
    i_tgt = np.asarray(i_tgt, dtype=np.int64)
    n = len(i_src)
    out: dict[str, np.ndarray] = {
        "n_genes": np.zeros(n, dtype=np.int64),
        "n_de_a": np.zeros(n, dtype=np.int64),
        "n_de_b": np.zeros(n, dtype=np.int64),
    }
    if src_centroids is not None:
        out["centroid_dose_exact"] = np.zeros(n, dtype=bool)
    if tgt_centroids is not None:
        out["cross_centroid_b_dose_exact"] = np.zeros(n, dtype=bool)
    cols: dict[str, np.ndarray] = {m: np.full(n, np.nan) for m in metrics}
    for m in metrics:
        if src_centroids is not None:
            cols[f"{m}__{names[0]}"] = np.full(n, np.nan)
        if tgt_centroids is not None:
            cols[f"{m}__{names[1]}"] = np.full(n, np.nan)
    peer_vals: dict[str, np.ndarray] = {}
    if peers is not None:  # every (pair, peer) at once: ranks once per signature
        peer_vals = peer_metrics(
            src.x,
            tgt.x,
            PeerPairs(i_src, i_tgt, np.asarray(peers, dtype=np.int64)),
            src_de=src.de,
            tgt_de=tgt.de,
            metrics=metrics,
            chunk_size=chunk_size,
        )
    for lo in range(0, n, chunk_size):
        sl = slice(lo, min(lo + chunk_size, n))
        a, b = src.x[i_src[sl]], tgt.x[i_tgt[sl]]
        da, db = src.de[i_src[sl]], tgt.de[i_tgt[sl]]
        out["n_genes"][sl], out["n_de_a"][sl], out["n_de_b"][sl] = _pair_counts(a, b, da, db)
        res = pair_metrics(a, b, de_a=da, de_b=db, metrics=metrics, chunk_size=chunk_size)
        for m in metrics:
            cols[m][sl] = res[m]
        if src_centroids is not None:
            cen, exact = src_centroids.of_rows(i_src[sl])
            out["centroid_dose_exact"][sl] = exact
            res = pair_metrics(cen, b, de_a=da, de_b=db, metrics=metrics, chunk_size=chunk_size)
            for m in metrics:
                cols[f"{m}__{names[0]}"][sl] = res[m]
        if tgt_centroids is not None:
            cen, exact = tgt_centroids.of_rows(i_tgt[sl])
            out["cross_centroid_b_dose_exact"][sl] = exact
            res = pair_metrics(a, cen, de_a=da, de_b=db, metrics=metrics, chunk_size=chunk_size)
            for m in metrics:
                cols[f"{m}__{names[1]}"][sl] = res[m]
    for m in metrics:
        out[m] = cols[m]
        for name in names[:2]:
            if f"{m}__{name}" in cols:
                out[f"{m}__{name}"] = cols[f"{m}__{name}"]
        if peers is not None:
            st = peer_stats(peer_vals[m], cols[m])
            for k, v in st.items():
                out[f"{m}__{k}"] = v
    return out


# --------------------------------------------------------------------------- pairs


def _stratum_rows(conds: pd.DataFrame, dataset: str, ctx: str, time: float) -> pd.DataFrame:
    sel = (
        (conds["dataset"] == dataset)
        & (conds["cell_context"] == ctx)
        & (conds["pert_time_h"] == time)
    )
    return conds[sel].sort_values("condition_id", kind="stable").reset_index(drop=True)


def _common_genes(sa: Signatures, sb: Signatures) -> tuple[Signatures, Signatures]:
    keep = np.isfinite(sa.x).any(axis=0) & np.isfinite(sb.x).any(axis=0)
    return sa.columns(keep), sb.columns(keep)


def _retrieval_rows(
    q: Signatures,
    q_rows: pd.DataFrame,
    c: Signatures,
    c_rows: pd.DataFrame,
    *,
    score: str,
    chunk_size: int,
) -> pd.DataFrame:
    """Retrieval of each query row of ``q`` among all candidates of ``c``."""
    cand_comp = c_rows["compound"].to_numpy().astype(str)
    q_comp = q_rows["compound"].to_numpy().astype(str)
    has = np.isin(q_comp, cand_comp)
    idx = np.flatnonzero(has)
    parts = []
    # queries per block: the (block, K) score matrices hold about chunk_size * 512 values,
    # so the candidates' side is prepared a few times per stratum, not once per 16 queries
    step = max(16, chunk_size * 512 // max(len(cand_comp), 1))
    for lo in range(0, len(idx), step):
        rows = idx[lo : lo + step]
        sc = retrieval_scores(q.x[rows], c.x, score=score)  # type: ignore[arg-type]
        pos = q_comp[rows][:, None] == cand_comp[None, :]
        res: dict[str, np.ndarray] = {k: np.asarray(v) for k, v in retrieval(sc, pos).items()}
        res["row"] = rows
        parts.append(pd.DataFrame(res))
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)
    out.insert(0, "condition", q_rows["condition_id"].to_numpy()[out["row"].to_numpy()])
    out.insert(0, "compound", q_comp[out["row"].to_numpy()])
    out["n_candidates"] = out["n_candidates"].astype(np.int64)
    out["n_positives"] = out["n_positives"].astype(np.int64)
    return out.drop(columns=["row"])


def cross_pairs(
    comp: Compendium,
    match: MatchResult,
    *,
    signatures: SignatureOptions | None = None,
    compare: CompareOptions | None = None,
    score: str = "euclidean",
    with_retrieval: bool = True,
    progress: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``pairs`` and ``retrieval`` tables of the matched pairs of ``match``.

    Reads, for each dataset pair and kept stratum, the signatures of the stratum's
    usable conditions of both datasets (``match.conditions``) in one block per side.
    ``compare`` gives the metrics, the peers per pair, the seed and the rows per block
    (its bootstrap options are not used here).
    """
    sig = signatures or SignatureOptions()
    po = compare or CompareOptions()
    max_peers, seed, chunk_size = po.max_peers, po.seed, po.chunk_size
    names = list(PAIR_METRICS) if po.metrics is None else list(po.metrics)
    unknown = [m for m in names if m not in PAIR_METRICS]
    if unknown:
        raise KeyError(f"unknown pair metric(s) {unknown}; known: {list(PAIR_METRICS)}")
    pairs = match.pairs
    conds = match.conditions
    groups = list(
        pairs.groupby(["dataset_a", "dataset_b", "cell_context", "pert_time_h"], sort=True)
    )
    pair_parts: list[pd.DataFrame] = []
    ret_parts: list[pd.DataFrame] = []
    for key, grp in track(groups, description="cross-dataset strata", enabled=progress):
        da, db, ctx, t = cast(tuple[str, str, str, float], key)
        rows_a = _stratum_rows(conds, da, ctx, t)
        rows_b = _stratum_rows(conds, db, ctx, t)
        sa = sig.load(comp, rows_a["condition_id"].tolist())
        sb = sig.load(comp, rows_b["condition_id"].tolist())
        sa, sb = _common_genes(sa, sb)
        pos_a = pd.Series(np.arange(len(rows_a)), index=rows_a["condition_id"].to_numpy())
        pos_b = pd.Series(np.arange(len(rows_b)), index=rows_b["condition_id"].to_numpy())
        ia = pos_a.loc[grp["condition_a"].to_numpy()].to_numpy()
        ib = pos_b.loc[grp["condition_b"].to_numpy()].to_numpy()
        comp_a = rows_a["compound"].to_numpy().astype(str)
        comp_b = rows_b["compound"].to_numpy().astype(str)
        cen_a = CentroidSums(sa.x, comp_a, rows_a["pert_dose_uM"].to_numpy())
        cen_b = CentroidSums(sb.x, comp_b, rows_b["pert_dose_uM"].to_numpy())
        keys = (grp["condition_a"].astype(str) + "\x1f" + grp["condition_b"].astype(str)).tolist()
        peer_idx = peer_rows(
            comp_a,
            rows_a["log10_dose"].to_numpy(),
            comp_a[ia],
            rows_a["log10_dose"].to_numpy()[ia],
            keys,
            max_peers=max_peers,
            seed=seed,
        )
        vals = baseline_metrics(
            sa,
            sb,
            i_src=ia,
            i_tgt=ib,
            metrics=names,
            baselines=Baselines(src_centroids=cen_a, tgt_centroids=cen_b, peers=peer_idx),
            chunk_size=chunk_size,
        )
        part = grp.reset_index(drop=True).copy()
        for k, v in vals.items():
            part[k] = v
        pair_parts.append(part)
        if with_retrieval:
            for (dq, dt), (q, qr), (c, cr) in (
                ((da, db), (sa, rows_a), (sb, rows_b)),
                ((db, da), (sb, rows_b), (sa, rows_a)),
            ):
                r = _retrieval_rows(q, qr, c, cr, score=score, chunk_size=chunk_size)
                if len(r):
                    r.insert(0, "pert_time_h", float(t))
                    r.insert(0, "cell_context", ctx)
                    r.insert(0, "dataset_target", dt)
                    r.insert(0, "dataset_query", dq)
                    r.insert(6, "score", score)
                    ret_parts.append(r)
    pair_table = _pairs_frame(pair_parts, names, pairs)
    ret_cols = [
        "dataset_query",
        "dataset_target",
        "cell_context",
        "pert_time_h",
        "compound",
        "condition",
        "score",
        "n_candidates",
        "n_positives",
        "best_rank",
        "norm_rank",
        "norm_rank_floor",
        "recall1",
        "recall1_floor",
        "auroc",
    ]
    ret = (
        pd.concat(ret_parts, ignore_index=True)[ret_cols]
        if ret_parts
        else pd.DataFrame({c: pd.Series(dtype=object) for c in ret_cols})
    )
    return pair_table, ret


def pair_columns(metrics: Sequence[str], baselines: Sequence[str]) -> list[str]:
    """Metric columns of a pair table: ``M``, ``M__<baseline>``, peer statistics."""
    cols = []
    for m in metrics:
        cols.append(m)
        cols += [f"{m}__{b}" for b in baselines]
        cols += [f"{m}__peer_mean", f"{m}__peer_sd", f"{m}__peer_pct", f"{m}__n_peers"]
    return cols


def _pairs_frame(parts: list[pd.DataFrame], metrics: list[str], pairs: pd.DataFrame):
    extra = ["n_genes", "n_de_a", "n_de_b", "centroid_dose_exact", "cross_centroid_b_dose_exact"]
    lead = [*pairs.columns, *extra]
    cols = lead + pair_columns(metrics, ("cross_centroid_a", "cross_centroid_b"))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    return pd.concat(parts, ignore_index=True)[cols]


# --------------------------------------------------------------------------- summaries


def _ci(
    values: np.ndarray,
    clusters: np.ndarray,
    strata: np.ndarray,
    *,
    n_boot: int,
    seed: int,
    confidence: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nested mean and BCa interval of each column; also the per-column number of
    compounds with a value."""
    v, _, _ = cluster_stratum_means(values, clusters, strata)
    est = np.asarray(nested_mean(v), dtype=float)
    n_comp = np.isfinite(v).any(axis=1).sum(axis=0)
    low = np.full(est.shape, np.nan)
    high = np.full(est.shape, np.nan)
    if n_boot > 0 and v.shape[0] >= 2:
        ci = cluster_bca(v, n_boot=n_boot, seed=seed, confidence=confidence)
        low, high = np.asarray(ci.low, dtype=float), np.asarray(ci.high, dtype=float)
    return est, low, high, n_comp


def summarize(
    frame: pd.DataFrame,
    specs: Sequence[tuple[str, str, str, str | None]],
    *,
    compound: str = "compound",
    strata: Sequence[str] = ("cell_context", "pert_time_h"),
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Nested means and compound-clustered BCa intervals of observed − baseline.

    ``specs``: ``(metric, baseline, observed_column, baseline_column)`` tuples
    (``baseline_column`` ``None``: the constant 0.5, the AUROC floor). One bootstrap runs
    for all columns at once. Returns one row per spec with ``observed``,
    ``observed_low``, ``observed_high``, ``baseline_value``, ``delta``, ``delta_low``,
    ``delta_high``, ``n_pairs``, ``n_compounds``, ``n_contexts``, ``n_strata``.
    """
    n = len(frame)
    if n == 0 or not specs:
        return pd.DataFrame()
    obs_cols = list(dict.fromkeys(s[2] for s in specs))
    mats = [frame[c].to_numpy(dtype=float) for c in obs_cols]
    base_idx, delta_idx = [], []
    for _, _, oc, bc in specs:
        base = np.full(n, 0.5) if bc is None else frame[bc].to_numpy(dtype=float)
        obs = frame[oc].to_numpy(dtype=float)
        base_idx.append(len(mats))
        mats.append(np.where(np.isfinite(obs), base, np.nan))
        delta_idx.append(len(mats))
        mats.append(obs - base)
    values = np.column_stack(mats)
    clusters = pd.factorize(frame[compound].astype(str), sort=True)[0]
    strata_codes = frame.groupby(list(strata), sort=True).ngroup().to_numpy()
    est, low, high, n_comp = _ci(
        values, clusters, strata_codes, n_boot=n_boot, seed=seed, confidence=confidence
    )
    rows = []
    for i, (metric, baseline, oc, _bc) in enumerate(specs):
        j, b, d = obs_cols.index(oc), base_idx[i], delta_idx[i]
        ok = np.isfinite(values[:, d])
        rows.append(
            {
                "metric": metric,
                "baseline": baseline,
                "observed": est[j],
                "observed_low": low[j],
                "observed_high": high[j],
                "baseline_value": est[b],
                "delta": est[d],
                "delta_low": low[d],
                "delta_high": high[d],
                "n_pairs": int(ok.sum()),
                "n_compounds": int(n_comp[d]),
                "n_contexts": int(frame.loc[ok, "cell_context"].nunique())
                if "cell_context" in frame
                else 1,
                "n_strata": int(pd.unique(strata_codes[ok]).size),
            }
        )
    return pd.DataFrame(rows)


def summarize_cross(
    pairs: pd.DataFrame,
    retrieval_table: pd.DataFrame | None = None,
    *,
    metrics: Sequence[str] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    contexts: bool = True,
) -> pd.DataFrame:
    """The ``cross_summary`` table: per dataset pair, ``level="all"`` (nested over
    context × time strata, ``cell_context="*"``) and, with ``contexts``, one level per
    context (strata = times).

    Pair metrics have ``direction="a_to_b"`` (the baselines replace the A side);
    retrieval rows have ``a_to_b`` (queries from A), ``b_to_a`` and ``both`` (all
    queries pooled per compound and stratum), baseline ``random_floor``.
    """
    names = [m for m in (metrics or PAIR_METRICS) if m in pairs.columns]
    specs = [(m, b, m, f"{m}__{b}") for m in names for b in BASELINES]
    out = []
    ret = retrieval_table if retrieval_table is not None else pd.DataFrame()
    if len(ret):
        ret = ret.copy()
        flip = ret["dataset_query"] > ret["dataset_target"]
        ret["dataset_a"] = np.where(flip, ret["dataset_target"], ret["dataset_query"])
        ret["dataset_b"] = np.where(flip, ret["dataset_query"], ret["dataset_target"])
        ret["direction"] = np.where(flip, "b_to_a", "a_to_b")
    ret_specs = [(name, "random_floor", oc, bc) for name, (oc, bc) in RETRIEVAL_METRICS.items()]
    keys = sorted(
        set(map(tuple, pairs[["dataset_a", "dataset_b"]].drop_duplicates().to_numpy()))
        | (
            set(map(tuple, ret[["dataset_a", "dataset_b"]].drop_duplicates().to_numpy()))
            if len(ret)
            else set()
        )
    )
    for da, db in keys:
        p = pairs[(pairs["dataset_a"] == da) & (pairs["dataset_b"] == db)]
        r = ret[(ret["dataset_a"] == da) & (ret["dataset_b"] == db)] if len(ret) else ret
        levels: list[tuple[str, str, pd.Series | None]] = [("all", "*", None)]
        if contexts:
            ctxs = sorted(set(p["cell_context"]) | (set(r["cell_context"]) if len(r) else set()))
            levels += [("context", c, None) for c in ctxs]
        for level, ctx, _ in levels:
            pp = p if ctx == "*" else p[p["cell_context"] == ctx]
            parts = []
            if len(pp) and specs:
                s = summarize(pp, specs, n_boot=n_boot, seed=seed, confidence=confidence)
                s.insert(0, "direction", "a_to_b")
                parts.append(s)
            rr = r if (ctx == "*" or not len(r)) else r[r["cell_context"] == ctx]
            if len(rr):
                for direction in ("a_to_b", "b_to_a", "both"):
                    sub = rr if direction == "both" else rr[rr["direction"] == direction]
                    if not len(sub):
                        continue
                    s = summarize(sub, ret_specs, n_boot=n_boot, seed=seed, confidence=confidence)
                    s.insert(0, "direction", direction)
                    parts.append(s)
            for s in parts:
                s.insert(0, "cell_context", ctx)
                s.insert(0, "level", level)
                s.insert(0, "dataset_b", db)
                s.insert(0, "dataset_a", da)
                out.append(s)
    if not out:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SUMMARY_COLUMNS})
    return pd.concat(out, ignore_index=True)[SUMMARY_COLUMNS]


#: Dose thresholds of the sensitivity analysis (label, ``max |Δ log10 dose|``).
DOSE_THRESHOLDS = (
    ("exact", 1e-6),
    ("2x", float(np.log10(2.0))),
    ("3x", float(np.log10(3.0))),
    ("10x", 1.0),
)


def dose_sensitivity_table(
    pairs: pd.DataFrame,
    *,
    metrics: Sequence[str] | None = None,
    min_compounds: int = 10,
    thresholds: Sequence[tuple[str, float]] = DOSE_THRESHOLDS,
) -> pd.DataFrame:
    """Nested-mean summaries at each dose threshold (no intervals).

    ``pairs`` is a pair table matched at the loosest threshold with ``min_compounds=1``
    (all mutual-nearest pairs); each threshold keeps the pairs within it and the strata
    with at least ``min_compounds`` compounds left.
    """
    cols = [
        "threshold",
        "max_log10_dose",
        "dataset_a",
        "dataset_b",
        "metric",
        "baseline",
        "observed",
        "baseline_value",
        "delta",
        "n_pairs",
        "n_compounds",
        "n_strata",
    ]
    names = [m for m in (metrics or PAIR_METRICS) if m in pairs.columns]
    specs = [(m, b, m, f"{m}__{b}") for m in names for b in BASELINES]
    out = []
    for label, thr in thresholds:
        sel = pairs[pairs["dlog10_dose"].abs() <= thr + _DOSE_SLACK]
        keys = ["dataset_a", "dataset_b", "cell_context", "pert_time_h"]
        n_c = sel.groupby(keys)["compound"].transform("nunique")
        sel = sel[n_c >= min_compounds]
        for key, grp in sel.groupby(["dataset_a", "dataset_b"], sort=True):
            da, db = cast(tuple[str, str], key)
            s = summarize(grp, specs, n_boot=0)
            s.insert(0, "dataset_b", db)
            s.insert(0, "dataset_a", da)
            s.insert(0, "max_log10_dose", thr)
            s.insert(0, "threshold", label)
            out.append(s)
    if not out:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    return pd.concat(out, ignore_index=True)[cols]

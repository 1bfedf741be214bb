"""Replicate agreement within datasets as published (Tables 7, 8 and 10).

For every condition ``cell_type|cid|time|dose`` of a dataset's ``sep_rep`` files with
at least two replicate rows: replicate pairs (one for two replicates, the ``n`` cyclic
pairs ``(i, i+1 mod n)`` for more), metrics on the genes finite in ``logFC``, ``t`` and
the adjusted p-value of every replicate, the nanmean centroid of the other compounds'
retained replicates at the same cell type, time and dose, and up to 256 of those
replicates as individual peers (``docs/agreement.md``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ...progress import track
from . import _kernels as k
from .inputs import DatasetRelease

__all__ = ["replicate_conditions", "replicate_pairs"]


def replicate_pairs(n: int) -> list[tuple[int, int]]:
    """The published replicate pairs: ``(0, 1)`` for two, cyclic for three or more."""
    if n < 2:
        return []
    if n == 2:
        return [(0, 1)]
    return [(i, (i + 1) % n) for i in range(n)]


def _rows(ds: DatasetRelease) -> pd.DataFrame:
    """Eligible replicate rows of the dataset in (file, row) order, with their keys."""
    inventory = None
    if ds.processed is not None:
        inventory = set(ds.processed["cell_type"].astype(str))
    parts = []
    for name in sorted(ds.replicate):
        f = ds.replicate[name]
        o = f.obs
        keep = o["eligible"].to_numpy()
        if inventory is not None:
            keep &= o["cell_type"].isin(inventory).to_numpy()
        sub = o.loc[keep, ["cell_type", "pubchem_cid", "time_key", "dose_key"]].copy()
        sub["file"] = name
        sub["row"] = o.index.to_numpy()[keep]
        parts.append(sub)
    if not parts:
        return pd.DataFrame(
            columns=["cell_type", "pubchem_cid", "time_key", "dose_key", "file", "row"]
        )
    rows = pd.concat(parts, ignore_index=True)
    rows["condition_key"] = (
        rows["cell_type"]
        + "|"
        + rows["pubchem_cid"]
        + "|"
        + rows["time_key"]
        + "|"
        + rows["dose_key"]
    )
    return rows


def replicate_conditions(
    ds: DatasetRelease,
    *,
    global_genes: dict[str, set[str]] | None = None,
    max_peers: int = 256,
    seed: int = k.PEER_SEED,
    progress: bool = False,
) -> pd.DataFrame:
    """The published per-condition replicate table of one dataset."""
    rows = _rows(ds)
    if rows.empty:
        return pd.DataFrame()
    size = rows.groupby("condition_key", sort=False)["row"].transform("size")
    rows = rows[size >= 2].reset_index(drop=True)
    if rows.empty:
        return pd.DataFrame()
    # the peer pool order: sorted by cell type, CID (as a string), time, dose, file, row
    t_num = pd.to_numeric(rows["time_key"])
    d_num = pd.to_numeric(rows["dose_key"])
    pool_order = (
        rows.assign(_t=t_num, _d=d_num)
        .sort_values(["cell_type", "pubchem_cid", "_t", "_d", "file", "row"], kind="mergesort")
        .index.to_numpy()
    )
    stratum = (rows["cell_type"] + "|" + rows["time_key"] + "|" + rows["dose_key"]).to_numpy()
    cids = rows["pubchem_cid"].to_numpy()
    files = rows["file"].to_numpy()
    positions = rows["row"].to_numpy()
    out = []
    groups = list(rows.groupby("condition_key", sort=False).indices.items())
    label = f"replicates {ds.name}"
    for ckey, members in track(groups, description=label, enabled=progress):
        members = np.sort(members)
        m0 = members[0]
        if len(set(files[members])) > 1:
            raise ValueError(
                f"{ds.name}: replicates of condition {ckey!r} are spread over files "
                f"{sorted(set(files[members]))}; one cell type per sep_rep file is expected"
            )
        f = ds.replicate[files[m0]]
        reps = positions[members]
        genes = np.flatnonzero(
            np.isfinite(f.logfc[reps]).all(axis=0)
            & np.isfinite(f.t[reps]).all(axis=0)
            & np.isfinite(f.adj_p[reps]).all(axis=0)
        )
        x = f.logfc[np.ix_(reps, genes)]
        masks = [k.deg_mask(x[i], f.adj_p[reps[i], genes]) for i in range(len(reps))]
        pool = pool_order[((stratum == stratum[m0]) & (cids != cids[m0]))[pool_order]]
        pool_x = _gather(ds, files[pool], positions[pool], genes, f.genes)
        centroid = _nanmean(pool_x) if pool.size else None
        seed_key = "|".join(
            str(v) for v in (seed, ds.name, rows.at[m0, "cell_type"], cids[m0],
                             rows.at[m0, "time_key"], rows.at[m0, "dose_key"])
        )  # fmt: skip
        scored = pool_x[k.peer_subsample(pool.size, max_peers, seed_key)]
        scored = scored[np.isfinite(scored).any(axis=1)]
        rec: dict[str, Any] = {
            "dataset_name": ds.name,
            "cell_type": rows.at[m0, "cell_type"],
            "pubchem_cid": cids[m0],
            "time_key": rows.at[m0, "time_key"],
            "dose_key": rows.at[m0, "dose_key"],
            "condition_key": ckey,
            "n_replicates": len(reps),
            "n_replicate_pairs": len(replicate_pairs(len(reps))),
            "n_total_possible_replicate_pairs": len(reps) * (len(reps) - 1) // 2,
            "n_local_shared_genes": int(genes.size),
            "n_baseline_peer_rows": int(pool.size),
            "n_baseline_peer_compounds": len(set(cids[pool])),
            "n_peer_rows_total": int(pool.size),
            "n_peer_rows_scored": int(min(pool.size, max_peers)),
        }
        rec.update(_condition_metrics(x, masks, centroid, scored))
        if global_genes is not None:
            g = global_genes.get(str(rec["cell_type"]), set())
            gpos = np.array([i for i, n in enumerate(f.genes[genes]) if n in g], dtype=np.intp)
            vals = [_corr_ranks(x[i][gpos], x[j][gpos]) for i, j in replicate_pairs(len(reps))]
            rec["mean_replicate_spearman_logfc_global"] = _mean(vals)
            rec["n_global_shared_genes"] = int(gpos.size)
        out.append(rec)
    return pd.DataFrame(out)


def _gather(
    ds: DatasetRelease, files: np.ndarray, rows: np.ndarray, genes: np.ndarray, keys: np.ndarray
) -> np.ndarray:
    """Peer replicate rows on the condition's genes (aligned by gene key)."""
    out = np.full((rows.size, genes.size), np.nan, dtype=np.float32)
    want = keys[genes]
    for name in pd.unique(files):
        f = ds.replicate[name]
        sel = np.flatnonzero(files == name)
        idx = f.gene_index
        have = np.array([g in idx for g in want])
        cols = np.array([idx[g] for g in want[have]], dtype=np.intp)
        out[np.ix_(sel, np.flatnonzero(have))] = f.logfc[np.ix_(rows[sel], cols)]
    return out


def _nanmean(x: np.ndarray) -> np.ndarray:
    """Gene-wise mean of the finite values (NaN where none)."""
    x = x.astype(np.float64)
    fin = np.isfinite(x)
    n = fin.sum(axis=0)
    s = np.where(fin, x, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.where(n > 0, n, 1), np.nan)


_METRICS = ("deg_lfc_spearman_p05", "direction_agreement_p05", "spearman_logfc")


def _scores(x: np.ndarray, mask: np.ndarray, other: np.ndarray) -> tuple[float, float, float]:
    """(DEG Spearman, direction, all-gene Spearman) of a replicate against a signature."""
    return (
        k.deg_spearman(x, other, mask),
        k.direction_agreement(x, other, mask, np.isfinite(other)),
        k.spearman(x, other),
    )


def _condition_metrics(
    x: np.ndarray, masks: list[np.ndarray], centroid: np.ndarray | None, peers: np.ndarray
) -> dict[str, float]:
    """Observed, centroid and peer values of one condition, averaged over its pairs."""
    n = x.shape[0]
    nan3 = (math.nan, math.nan, math.nan)
    base = [_scores(x[i], masks[i], centroid) if centroid is not None else nan3 for i in range(n)]
    peer = [
        (
            k.spearman_against(x[i], peers, masks[i]),
            k.direction_agreement_against(x[i], peers, masks[i]),
            k.spearman_against(x[i], peers),
        )
        for i in range(n)
    ]
    acc: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        acc.setdefault(name, []).append(value)

    for i, j in replicate_pairs(n):
        observed = (
            k.strict_mean(
                k.deg_spearman(x[i], x[j], masks[i]), k.deg_spearman(x[i], x[j], masks[j])
            ),
            k.direction_agreement(x[i], x[j], masks[i], masks[j]),
            _corr_ranks(x[i], x[j]),
        )
        for m_i, m in enumerate(_METRICS):
            obs = observed[m_i]
            add(f"replicate_{m}", obs)
            b = k.mean_available(base[i][m_i], base[j][m_i])
            add(f"baseline_{m}", b)
            add(
                f"delta_baseline_{m}",
                obs - b if math.isfinite(obs) and math.isfinite(b) else math.nan,
            )
            summ = k.peer_summary(obs, _pair_mean(peer[i][m_i], peer[j][m_i]))
            for field in k.PEER_FIELDS[1:]:
                add(f"peer_{field}_{m}", summ[field])
            pm = summ["mean_score"]
            add(
                f"delta_peer_{m}",
                obs - pm if math.isfinite(obs) and math.isfinite(pm) else math.nan,
            )
    rec: dict[str, float] = {}
    # the published column names: ``_sym`` for the DEG Spearman, the peer field after the
    # metric for the DEG families and before it for the all-gene Spearman
    for metric, stem in (("deg_lfc_spearman_p05", "deg_lfc_spearman_sym"),
                         ("direction_agreement_p05", "direction_agreement")):  # fmt: skip
        rec[f"mean_replicate_{stem}_p05"] = _mean(acc[f"replicate_{metric}"])
        rec[f"median_replicate_{stem}_p05"] = _median(acc[f"replicate_{metric}"])
        rec[f"mean_baseline_pair_{stem}_p05"] = _mean(acc[f"baseline_{metric}"])
        rec[f"mean_delta_vs_baseline_pair_{stem}_p05"] = _mean(acc[f"delta_baseline_{metric}"])
        rec[f"mean_peer_baseline_{stem}_p05"] = _mean(acc[f"peer_mean_score_{metric}"])
        for field, short in _PEER_FIELDS:
            rec[f"mean_peer_baseline_{stem}_{short}_p05"] = _mean(acc[f"peer_{field}_{metric}"])
        rec[f"mean_delta_vs_peer_baseline_{stem}_p05"] = _mean(acc[f"delta_peer_{metric}"])
    m = "spearman_logfc"
    rec["mean_replicate_spearman_logfc"] = _mean(acc[f"replicate_{m}"])
    rec["median_replicate_spearman_logfc"] = _median(acc[f"replicate_{m}"])
    rec["n_valid_logfc_pairs"] = int(np.isfinite(acc[f"replicate_{m}"]).sum())
    rec["mean_replicate_baseline_spearman_logfc"] = _mean(acc[f"baseline_{m}"])
    rec["mean_replicate_minus_baseline_spearman_logfc"] = _mean(acc[f"delta_baseline_{m}"])
    rec["mean_peer_baseline_spearman_logfc"] = _mean(acc[f"peer_mean_score_{m}"])
    for field, short in _PEER_FIELDS:
        rec[f"mean_peer_baseline_{short}_spearman_logfc"] = _mean(acc[f"peer_{field}_{m}"])
    rec["mean_replicate_minus_peer_baseline_spearman_logfc"] = _mean(acc[f"delta_peer_{m}"])
    return rec


_PEER_FIELDS = (
    ("sd_score", "sd"),
    ("fraction_below_observed", "fraction_below_observed"),
    ("corrected_percentile", "corrected_percentile"),
)


def _pair_mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per peer, the mean of its finite scores against the two replicates of a pair."""
    both = np.vstack([a, b])
    fin = np.isfinite(both)
    n = fin.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(fin, both, 0.0).sum(axis=0) / np.where(n > 0, n, 1), np.nan)


def _mean(values: list[float]) -> float:
    return k.mean_available(*values) if values else math.nan


def _median(values: list[float]) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else math.nan


def _corr_ranks(x: np.ndarray, y: np.ndarray) -> float:
    """ρ from average ranks and ``corrcoef`` on the finite genes, without a constant guard
    (a constant vector gives NaN, as ``corrcoef`` does)."""
    from scipy.stats import rankdata

    ok = np.isfinite(x) & np.isfinite(y)
    if int(ok.sum()) < 2:
        return math.nan
    rx, ry = rankdata(x[ok]), rankdata(y[ok])
    if np.all(rx == rx[0]) or np.all(ry == ry[0]):
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])

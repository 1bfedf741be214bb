"""Cross-dataset agreement as published (Tables 4, 5 and 6; ``docs/agreement.md``).

:func:`match_units` pairs conditions of two datasets (same CID, cell type and time;
doses as mutual nearest neighbours within a 10× window, ties kept; contexts with at
least 10 matched CIDs). :func:`score_pairs` computes every per-pair column of the
published scorers: observed DEG-restricted Spearman and direction agreement, the
source-centroid baseline, the four reviewer baselines (source/target centroid,
source/target peers), the ``p05_lfc02`` variants and the all-gene Table 6 columns.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from ...progress import track
from . import _kernels as k
from .inputs import DEFile, ReleaseData

__all__ = ["MatchOptions", "Weighting", "match_units", "score_pairs"]

Weighting = Literal["sample_pairs", "condition"]
MASKS: dict[str, float | None] = {"p05": None, "p05_lfc02": 0.2}
_KEY = ["pubchem_cid", "cell_type", "time_key"]


@dataclass(frozen=True)
class MatchOptions:
    """Matching settings: ``max_fold`` (10), ``min_context_compounds`` (10), peer cap (512)."""

    max_fold: float = 10.0
    min_context_compounds: int = 10
    max_peers: int = 512
    seed: int = k.PEER_SEED


def _group_file(files: dict[str, DEFile], cell_type: str) -> DEFile | None:
    f = files.get(cell_type)
    if f is not None:
        return f
    for g in files.values():
        if (g.obs["cell_type"] == cell_type).any():
            return g
    return None


def _condition_units(data: ReleaseData, dataset: str) -> pd.DataFrame:
    """One unit per distinct eligible DE condition (the first row of a key wins)."""
    parts = []
    for f in data[dataset].group.values():
        o = f.obs[f.obs["eligible"]]
        u = o[[*_KEY, "pert_dose_uM", "dose_key", "obs_id"]].copy()
        u["de_row"] = o.index.to_numpy()
        u["de_file"] = f.cell_type
        parts.append(u.drop_duplicates([*_KEY, "dose_key"], keep="first"))
    units = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if not units.empty:
        units["n_samples"] = 1
    return units


def _sample_units(data: ReleaseData, dataset: str) -> pd.DataFrame:
    """Eligible processed samples resolved to their DE row, counted per condition."""
    ds = data[dataset]
    proc = ds.processed
    if proc is None:
        raise ValueError(f"dataset {dataset!r} has no <dataset>_processed.h5ad")
    s = proc[proc["eligible"]]
    rows = []
    for ct, sub in s.groupby("cell_type", sort=False):
        f = _group_file(ds.group, str(ct))
        if f is None:
            continue
        o = f.obs
        by_id: dict[str, int] = {}
        for col in ("obs_id", "id"):
            for i, v in zip(o.index.to_numpy(), o[col].to_numpy(), strict=True):
                by_id.setdefault(str(v), int(i))
        keys = o["pubchem_cid"] + "|" + o["dose_key"] + "|" + o["time_key"] + "|" + o["cell_type"]
        by_key: dict[str, int] = {}
        for i, v in zip(o.index.to_numpy(), keys.to_numpy(), strict=True):
            by_key.setdefault(str(v), int(i))
        skeys = (
            sub["pubchem_cid"]
            + "|"
            + sub["dose_key"]
            + "|"
            + sub["time_key"]
            + "|"
            + sub["cell_type"]
        )
        for sid, key in zip(sub["obs_id"].to_numpy(), skeys.to_numpy(), strict=True):
            rows.append((by_id.get(str(sid), by_key.get(str(key), -1)), f.cell_type))
    if not rows:
        return pd.DataFrame()
    res = np.array([r[0] for r in rows])
    units = s[[*_KEY, "pert_dose_uM", "dose_key"]].copy()
    units["de_row"] = res
    units["de_file"] = [r[1] for r in rows]
    units = units[units["de_row"] >= 0]
    units = (
        units.groupby([*_KEY, "dose_key", "de_file", "de_row"], sort=False)
        .agg(pert_dose_uM=("pert_dose_uM", "first"), n_samples=("pert_dose_uM", "size"))
        .reset_index()
    )
    obs_ids = {
        (ct, int(r)): oid
        for ct, f in ds.group.items()
        for r, oid in zip(f.obs.index, f.obs["obs_id"], strict=True)
    }
    units["obs_id"] = [
        obs_ids[(c, int(r))] for c, r in zip(units["de_file"], units["de_row"], strict=True)
    ]
    return units


def units_for(data: ReleaseData, dataset: str, weighting: Weighting) -> pd.DataFrame:
    """The matching units of one dataset under a weighting."""
    return (
        _sample_units(data, dataset)
        if weighting == "sample_pairs"
        else _condition_units(data, dataset)
    )


def mutual_nearest(left: np.ndarray, right: np.ndarray, max_fold: float) -> np.ndarray:
    """``(i, j)`` pairs that are mutual nearest in fold difference within ``max_fold``."""
    if left.size == 0 or right.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    f = np.maximum(left[:, None] / right[None, :], right[None, :] / left[:, None])
    keep = (
        (f <= max_fold + 1e-12)
        & np.isclose(f, f.min(axis=1, keepdims=True), rtol=0.0, atol=1e-12)
        & np.isclose(f, f.min(axis=0, keepdims=True), rtol=0.0, atol=1e-12)
    )
    return np.argwhere(keep)


def _groups(units: pd.DataFrame) -> dict[tuple[str, str, str], np.ndarray]:
    """Row positions of the units per (CID, cell type, time key)."""
    out: dict[tuple[str, str, str], np.ndarray] = {}
    for key, rows in units.groupby(_KEY, sort=False).indices.items():
        parts: tuple[Any, ...] = key if isinstance(key, tuple) else (key,)
        out[(str(parts[0]), str(parts[1]), str(parts[2]))] = np.asarray(rows)
    return out


def match_units(
    left: pd.DataFrame, right: pd.DataFrame, *, options: MatchOptions = MatchOptions()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Matched unit pairs of two datasets and the contexts considered.

    Returns ``(matches, contexts)``: one row per matched unit pair in kept contexts
    (``left_*``/``right_*`` unit columns, ``dose_fold_difference``), and one row per
    ``(cell_type, time_key)`` with its number of matched CIDs and whether it was kept.
    """
    empty = pd.DataFrame()
    if left.empty or right.empty:
        return empty, pd.DataFrame(
            columns=["cell_type", "time_key", "n_context_matching_drugs", "kept"]
        )
    lg, rg = _groups(left), _groups(right)
    pairs = []
    for key in sorted(set(lg) & set(rg)):
        li, ri = lg[key], rg[key]
        ld = left["pert_dose_uM"].to_numpy()[li]
        rd = right["pert_dose_uM"].to_numpy()[ri]
        for a, b in mutual_nearest(ld, rd, options.max_fold):
            pairs.append((li[a], ri[b]))
    if not pairs:
        return empty, pd.DataFrame(
            columns=["cell_type", "time_key", "n_context_matching_drugs", "kept"]
        )
    p = np.array(pairs)
    lu = left.iloc[p[:, 0]].reset_index(drop=True)
    ru = right.iloc[p[:, 1]].reset_index(drop=True)
    m = pd.DataFrame({c: lu[c].to_numpy() for c in _KEY})
    for side, u in (("left", lu), ("right", ru)):
        for c in ("pert_dose_uM", "dose_key", "de_file", "de_row", "n_samples", "obs_id"):
            m[f"{side}_{c}"] = u[c].to_numpy()
    ctx = (
        m.groupby(["cell_type", "time_key"], sort=True)["pubchem_cid"]
        .nunique()
        .rename("n_context_matching_drugs")
        .reset_index()
    )
    ctx["kept"] = ctx["n_context_matching_drugs"] >= options.min_context_compounds
    m = m.merge(ctx, on=["cell_type", "time_key"], how="left")
    m = m[m["kept"]].drop(columns="kept").reset_index(drop=True)
    return m, ctx


# -- scoring ---------------------------------------------------------------------------------


@dataclass
class _Side:
    """One side of a pair on the pairwise shared genes."""

    x: np.ndarray  # logFC
    t: np.ndarray
    masks: dict[str, np.ndarray]
    centroid: np.ndarray | None
    peers: np.ndarray  # scored peers (after the cap)
    n_peers_total: int


class _Pool:
    """Peer rows and centroids of one group file, cached per (dose, time, cid)."""

    def __init__(self, f: DEFile, options: MatchOptions) -> None:
        self.f = f
        self.options = options
        o = f.obs
        self.groups = o[o["eligible"]].groupby(["dose_key", "time_key"], sort=False).indices
        self.cids = o["pubchem_cid"].to_numpy()
        self.index = o.index.to_numpy()
        self._cache: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def of(
        self, dose_key: str, time_key: str, cid: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(peer rows in file order, scored rows, centroid over all genes of the file)."""
        key = (dose_key, time_key, cid)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        pos = self.groups.get((dose_key, time_key), np.empty(0, dtype=np.intp))
        stratum = self.index[np.sort(pos)]
        own = self.cids[stratum] == cid
        rows = stratum[~own]
        centroid = k.centroid_excluding(self.f.logfc[stratum], own)
        seed_key = (
            f"{self.options.seed}|{self.f.dataset}|{self.f.cell_type}|{dose_key}|{time_key}|{cid}"
        )
        scored = rows[k.peer_subsample(rows.size, self.options.max_peers, seed_key)]
        self._cache[key] = (rows, scored, centroid)
        return rows, scored, centroid


def _side(
    f: DEFile, row: int, cols: np.ndarray, pool: _Pool, cid: str, dose_key: str, time_key: str
) -> _Side:
    x = f.logfc[row, cols]
    a = f.adj_p[row, cols]
    rows, scored, centroid = pool.of(dose_key, time_key, cid)
    return _Side(
        x=x,
        t=f.t[row, cols],
        masks={name: k.deg_mask(x, a, lfc_threshold=thr) for name, thr in MASKS.items()},
        centroid=centroid[cols] if rows.size else None,
        peers=f.logfc[np.ix_(scored, cols)],
        n_peers_total=int(rows.size),
    )


def _signed_overlap(x: np.ndarray, y: np.ndarray, top: int = 50) -> float:
    """½(|top-k ∩| + |bottom-k ∩|)/k on the genes finite on both sides, ``k = min(top,
    n // 2)``, the sets taken with ``argpartition`` as published (ties are broken by
    the partition, so the value is informational)."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    kk = min(top, x.size // 2)
    if kk < 1:
        return math.nan
    up = np.intersect1d(np.argpartition(x, -kk)[-kk:], np.argpartition(y, -kk)[-kk:]).size
    down = np.intersect1d(np.argpartition(x, kk - 1)[:kk], np.argpartition(y, kk - 1)[:kk]).size
    return float(0.5 * (up / kk + down / kk))


def _centroid_scores(
    x: np.ndarray, mask: np.ndarray | None, c: np.ndarray | None
) -> tuple[float, float]:
    """(Spearman, direction) of a sample against a centroid, sample-referenced."""
    if c is None:
        return math.nan, math.nan
    if mask is None:
        return k.spearman(x, c), math.nan
    return k.deg_spearman(x, c, mask), k.direction_agreement(x, c, mask, np.isfinite(c))


def _peer_scores(
    x: np.ndarray, mask: np.ndarray | None, peers: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    if peers.shape[0] == 0:
        return np.empty(0), np.empty(0)
    rho = k.spearman_against(x, peers, mask)
    da = k.direction_agreement_against(x, peers, mask) if mask is not None else np.empty(0)
    return rho, da


def _add_peer(
    row: dict[str, Any],
    prefix: str,
    suffix: str,
    obs: tuple[float, float],
    scores: tuple[np.ndarray, np.ndarray],
) -> None:
    """Per-side peer summaries against each side's observed value, and their pair means."""
    left = k.peer_summary(obs[0], scores[0])
    right = k.peer_summary(obs[1], scores[1])
    for field in k.PEER_FIELDS:
        row[f"{prefix}_left{suffix}_{field}"] = left[field]
        row[f"{prefix}_right{suffix}_{field}"] = right[field]
    pair = k.mean_available(left["mean_score"], right["mean_score"])
    row[f"{prefix}_pair{suffix}"] = pair
    for field in ("sd_score", "fraction_below_observed", "corrected_percentile"):
        row[f"{prefix}_pair{suffix}_{field}"] = k.mean_available(left[field], right[field])
    return None


def _score(L: _Side, R: _Side, Lt: _Side, Rt: _Side) -> dict[str, Any]:
    """Every metric of one pair. ``Lt``/``Rt`` carry the other dataset's centroid/peers
    for the target variants (the left sample scored against the right pool)."""
    row: dict[str, Any] = {}
    row["n_common_genes"] = int(L.x.size)
    for name in MASKS:
        mL, mR = L.masks[name], R.masks[name]
        left_ref = k.deg_spearman(L.x, R.x, mL)
        right_ref = k.deg_spearman(L.x, R.x, mR)
        sym = k.strict_mean(left_ref, right_ref)
        da = k.direction_agreement(L.x, R.x, mL, mR)
        row[f"observed_deg_lfc_spearman_left_ref_{name}"] = left_ref
        row[f"observed_deg_lfc_spearman_right_ref_{name}"] = right_ref
        row[f"observed_deg_lfc_spearman_sym_{name}"] = sym
        row[f"observed_direction_agreement_{name}"] = da
        row[f"n_deg_left_{name}"] = int(mL.sum())
        row[f"n_deg_right_{name}"] = int(mR.sum())
        row[f"n_deg_overlap_{name}"] = int((mL & mR & np.isfinite(L.x) & np.isfinite(R.x)).sum())
        ls, ld = _centroid_scores(L.x, mL, L.centroid)
        rs, rd = _centroid_scores(R.x, mR, R.centroid)
        row[f"left_baseline_deg_lfc_spearman_{name}"] = ls
        row[f"right_baseline_deg_lfc_spearman_{name}"] = rs
        row[f"left_baseline_direction_agreement_{name}"] = ld
        row[f"right_baseline_direction_agreement_{name}"] = rd
        for metric, obs, lv, rv in (
            ("deg_lfc_spearman", sym, ls, rs),
            ("direction_agreement", da, ld, rd),
        ):
            base = k.mean_available(lv, rv)
            row[f"baseline_pair_{metric}_{name}"] = base
            row[f"delta_vs_baseline_pair_{metric}_{name}"] = obs - base
        if name != "p05":
            continue  # the reviewer baselines are published for the p05 mask only
        side_obs = {"deg_lfc_spearman": (left_ref, right_ref), "direction_agreement": (da, da)}
        pair_obs = {"deg_lfc_spearman": sym, "direction_agreement": da}
        for metric in ("deg_lfc_spearman", "direction_agreement"):
            row[f"pb_observed_{metric}_{name}"] = pair_obs[metric]
        tl = _centroid_scores(L.x, mL, Lt.centroid)
        tr = _centroid_scores(R.x, mR, Rt.centroid)
        for variant, lv2, rv2 in (
            ("source_centroid", (ls, ld), (rs, rd)),
            ("target_centroid", tl, tr),
        ):
            for j, metric in enumerate(("deg_lfc_spearman", "direction_agreement")):
                row[f"pb_{variant}_{metric}_left_{name}"] = lv2[j]
                row[f"pb_{variant}_{metric}_right_{name}"] = rv2[j]
                pair = k.mean_available(lv2[j], rv2[j])
                row[f"pb_{variant}_{metric}_pair_{name}"] = pair
                row[f"pb_delta_vs_{variant}_{metric}_{name}"] = pair_obs[metric] - pair
        for variant, pl, pr in (
            ("source_peer", L.peers, R.peers),
            ("target_peer", Lt.peers, Rt.peers),
        ):
            sl = _peer_scores(L.x, mL, pl)
            sr = _peer_scores(R.x, mR, pr)
            for j, metric in enumerate(("deg_lfc_spearman", "direction_agreement")):
                prefix = f"pb_{variant}_{metric}"
                _add_peer(row, prefix, f"_{name}", side_obs[metric], (sl[j], sr[j]))
                row[f"pb_delta_vs_{variant}_{metric}_{name}"] = (
                    pair_obs[metric] - row[f"{prefix}_pair_{name}"]
                )
    # all-gene (Table 6)
    obs_all = k.spearman(L.x, R.x)
    row["observed_spearman_logfc"] = obs_all
    lb = k.spearman(L.x, L.centroid) if L.centroid is not None else math.nan
    rb = k.spearman(R.x, R.centroid) if R.centroid is not None else math.nan
    row["left_baseline_spearman_logfc"] = lb
    row["right_baseline_spearman_logfc"] = rb
    row["baseline_pair_mean_spearman_logfc"] = k.mean_available(lb, rb)
    row["delta_vs_baseline_pair_mean_spearman_logfc"] = (
        obs_all - row["baseline_pair_mean_spearman_logfc"]
    )
    tlb = k.spearman(L.x, Lt.centroid) if Lt.centroid is not None else math.nan
    trb = k.spearman(R.x, Rt.centroid) if Rt.centroid is not None else math.nan
    for variant, lv3, rv3 in (("source_centroid", lb, rb), ("target_centroid", tlb, trb)):
        row[f"pb_{variant}_spearman_logfc_left"] = lv3
        row[f"pb_{variant}_spearman_logfc_right"] = rv3
        pair = k.mean_available(lv3, rv3)
        row[f"pb_{variant}_spearman_logfc_pair"] = pair
        row[f"pb_delta_vs_{variant}_spearman_logfc"] = obs_all - pair
    for variant, pl, pr in (("source_peer", L.peers, R.peers), ("target_peer", Lt.peers, Rt.peers)):
        s_left = k.spearman_against(L.x, pl) if pl.shape[0] else np.empty(0)
        s_right = k.spearman_against(R.x, pr) if pr.shape[0] else np.empty(0)
        prefix = f"pb_{variant}_spearman_logfc"
        _add_peer(row, prefix, "", (obs_all, obs_all), (s_left, s_right))
        row[f"pb_delta_vs_{variant}_spearman_logfc"] = obs_all - row[f"{prefix}_pair"]
    row["observed_spearman_t"] = k.spearman(L.t, R.t)
    row["observed_signed_overlap_t_top50"] = _signed_overlap(L.t, R.t)
    row["left_peer_total_count"] = L.n_peers_total
    row["right_peer_total_count"] = R.n_peers_total
    row["left_peer_scored_count"] = int(L.peers.shape[0])
    row["right_peer_scored_count"] = int(R.peers.shape[0])
    return row


def _shared(fl: DEFile, fr: DEFile) -> tuple[np.ndarray, np.ndarray]:
    idx = fr.gene_index
    lc = np.array([i for i, g in enumerate(fl.genes) if g in idx], dtype=np.intp)
    rc = np.array([idx[g] for g in fl.genes[lc]], dtype=np.intp)
    return lc, rc


def _global_columns(
    fl: DEFile, fr: DEFile, lc: np.ndarray, genes: set[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Columns of the line-global genes among the pairwise shared ones, left order."""
    gl = np.array([i for i in lc if fl.genes[i] in genes], dtype=np.intp)
    idx = fr.gene_index
    return gl, np.array([idx[fl.genes[i]] for i in gl], dtype=np.intp)


def global_genes(data: ReleaseData, units: dict[str, pd.DataFrame]) -> dict[str, set[str]]:
    """Per cell type, the gene keys shared by every dataset that has it among its units."""
    out: dict[str, set[str]] = {}
    for name, u in units.items():
        if u.empty:
            continue
        for ct in pd.unique(u["cell_type"]):
            f = _group_file(data[name].group, str(ct))
            if f is None:
                continue
            genes = set(f.genes.tolist())
            out[str(ct)] = out[str(ct)] & genes if str(ct) in out else genes
    return out


def dataset_pairs(names: list[str]) -> Iterator[tuple[str, str]]:
    """Dataset pairs as ``itertools.combinations`` of the analysis order."""
    return itertools.combinations(names, 2)


def score_pairs(
    data: ReleaseData,
    matches: pd.DataFrame,
    *,
    dataset_a: str,
    dataset_b: str,
    global_sets: dict[str, set[str]],
    options: MatchOptions = MatchOptions(),
    cache: dict[Any, dict[str, Any]] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """The published per-pair table of one dataset pair (one row per condition pair).

    Rows of ``matches`` that resolve to the same two DE rows (the samples of one
    condition pair) are one row with ``n_left_samples``, ``n_right_samples`` and
    ``n_sample_pairs``. ``cache`` (keyed by the two DE rows) lets the two weightings
    share their metric computations.
    """
    if matches.empty:
        return pd.DataFrame()
    cache = {} if cache is None else cache
    da, db = data[dataset_a], data[dataset_b]
    grouped = (
        matches.groupby(
            [*_KEY, "left_de_file", "left_de_row", "right_de_file", "right_de_row"], sort=False
        )
        .agg(
            left_dose_key=("left_dose_key", "first"),
            right_dose_key=("right_dose_key", "first"),
            left_dose_uM=("left_pert_dose_uM", "first"),
            right_dose_uM=("right_pert_dose_uM", "first"),
            left_obs_id=("left_obs_id", "first"),
            right_obs_id=("right_obs_id", "first"),
            n_context_matching_drugs=("n_context_matching_drugs", "first"),
            n_left_samples=("left_n_samples", "sum"),
            n_right_samples=("right_n_samples", "sum"),
        )
        .reset_index()
    )
    prod = (
        (matches["left_n_samples"] * matches["right_n_samples"])
        .groupby(
            [matches[c] for c in ("left_de_file", "left_de_row", "right_de_file", "right_de_row")],
            sort=False,
        )
        .sum()
    )
    pools: dict[tuple[str, str], _Pool] = {}

    def pool(f: DEFile) -> _Pool:
        key = (f.dataset, f.cell_type)
        if key not in pools:
            pools[key] = _Pool(f, options)
        return pools[key]

    shared: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    rows = []
    records = grouped.to_dict("records")
    label = f"published {dataset_a} / {dataset_b}"
    for rec in track(records, description=label, enabled=progress):
        lf, rf = str(rec["left_de_file"]), str(rec["right_de_file"])
        lrow, rrow = int(rec["left_de_row"]), int(rec["right_de_row"])
        cid, ct, tk = str(rec["pubchem_cid"]), str(rec["cell_type"]), str(rec["time_key"])
        ldk, rdk = str(rec["left_dose_key"]), str(rec["right_dose_key"])
        ld, rd = float(rec["left_dose_uM"]), float(rec["right_dose_uM"])
        fl, fr = da.group[lf], db.group[rf]
        ck = (dataset_a, dataset_b, lf, lrow, rf, rrow)
        metrics = cache.get(ck)
        if metrics is None:
            if (lf, rf) not in shared:
                shared[(lf, rf)] = _shared(fl, fr)
            lc, rc = shared[(lf, rf)]
            L = _side(fl, lrow, lc, pool(fl), cid, ldk, tk)
            R = _side(fr, rrow, rc, pool(fr), cid, rdk, tk)
            Lt = _side(fr, rrow, rc, pool(fr), cid, rdk, tk)
            Rt = _side(fl, lrow, lc, pool(fl), cid, ldk, tk)
            metrics = _score(L, R, Lt, Rt)
            gl, gr = _global_columns(fl, fr, lc, global_sets.get(ct, set()))
            metrics["observed_spearman_logfc_global"] = k.spearman(
                fl.logfc[lrow, gl], fr.logfc[rrow, gr]
            )
            metrics["n_global_common_genes"] = int(gl.size)
            metrics["left_adj_pvalue_layer"] = fl.adj_p_layer
            metrics["right_adj_pvalue_layer"] = fr.adj_p_layer
            cache[ck] = metrics
        ident = {
            "dataset_a": dataset_a,
            "dataset_b": dataset_b,
            "cell_type": ct,
            "time_key": tk,
            "pubchem_cid": cid,
            "left_dose_key": ldk,
            "right_dose_key": rdk,
            "left_dose_uM": ld,
            "right_dose_uM": rd,
            "dose_fold_difference": max(ld / rd, rd / ld),
            "abs_delta_log10_dose": abs(math.log10(ld) - math.log10(rd)),
            "matched_condition_key": "|".join([cid, ct, tk, ldk, rdk]),
            "left_obs_id": str(rec["left_obs_id"]),
            "right_obs_id": str(rec["right_obs_id"]),
            "n_context_matching_drugs": int(rec["n_context_matching_drugs"]),
            "n_left_samples": int(rec["n_left_samples"]),
            "n_right_samples": int(rec["n_right_samples"]),
            "n_sample_pairs": int(prod[(lf, lrow, rf, rrow)]),
        }
        rows.append({**ident, **metrics})
    return pd.DataFrame(rows)

"""Agreement within a dataset: replicates, and the same compound across strata.

* :func:`replicate_agreement`: separate-mode effects give one signature per replicate
  contrast of a condition; the observed value of a condition is the mean of
  ``m(r_i, r_j)`` over its replicate pairs (at most ``max_pairs``, a seeded choice).
  Baselines replace ``r_i``: the centroid of the other compounds' replicate signatures
  at the same context, dose and time (``centroid``), and peers (replicate signatures of
  other compounds of the stratum, nearest in dose).
* :func:`signature_agreement`: a generic entry for signatures outside a store (a matrix
  or an AnnData plus ``obs``): pairs of signatures of the same compound in *different*
  strata (cell line, time, dose, ...), against peers, i.e. the source signature
  replaced by other compounds' signatures of the source stratum (same DE masks).
* :func:`dose_series_agreement`: :func:`signature_agreement` over a store, for adjacent
  doses of the same compound within each dataset × context × time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from ..progress import track
from .cross import (
    SUMMARY_COLUMNS,
    Baselines,
    CentroidSums,
    SignatureOptions,
    baseline_metrics,
    pair_columns,
    peer_rows,
    summarize as _summarize,
)
from .matching import snap_values, usable_conditions
from .metrics import PAIR_METRICS
from .options import CompareOptions, PairingOptions
from .signatures import Signatures, signatures_from_matrix

if TYPE_CHECKING:
    import anndata as ad

    from ..compendium import Compendium

__all__ = [
    "REPLICATE_BASELINES",
    "SignatureAgreement",
    "dose_series_agreement",
    "replicate_agreement",
    "signature_agreement",
]

logger = logging.getLogger(__name__)

REPLICATE_BASELINES = ("centroid", "peer_mean")


def _metric_names(metrics: Sequence[str] | None) -> list[str]:
    names = list(PAIR_METRICS) if metrics is None else list(metrics)
    unknown = [m for m in names if m not in PAIR_METRICS]
    if unknown:
        raise KeyError(f"unknown pair metric(s) {unknown}; known: {list(PAIR_METRICS)}")
    return names


def _hash(strings: Any, seed: int) -> np.ndarray:
    keys = np.asarray([f"{seed}\x1f{s}" for s in strings], dtype=object)
    return pd.util.hash_array(keys)


def _within_pairs(groups: np.ndarray, ids: np.ndarray, *, max_pairs: int | None, seed: int):
    """All pairs ``(i, j)``, ``i < j``, of rows with the same group, at most ``max_pairs``
    per group (the smallest seeded hashes of the pair's ids). Vectorised per group size."""
    codes, _ = pd.factorize(pd.Series(groups), sort=True)
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes) if len(codes) else np.zeros(0, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]) if len(sizes) else sizes
    ii, jj = [], []
    for size in np.unique(sizes):
        if size < 2:
            continue
        gi = np.flatnonzero(sizes == size)
        a, b = np.triu_indices(int(size), k=1)
        base = starts[gi][:, None]
        ii.append(order[(base + a[None, :]).ravel()])
        jj.append(order[(base + b[None, :]).ravel()])
    if not ii:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    i = np.concatenate(ii)
    j = np.concatenate(jj)
    if max_pairs is not None:
        keys = pd.Series(ids[i]).astype(str) + "\x1f" + pd.Series(ids[j]).astype(str)
        h = _hash(keys, seed).astype(np.float64)
        rank = pd.Series(h).groupby(codes[i]).rank(method="first").to_numpy()
        keep = rank <= max_pairs
        i, j = i[keep], j[keep]
    srt = np.lexsort((j, i))
    return i[srt], j[srt]


# --------------------------------------------------------------------------- replicates


def replicate_agreement(
    comp: Compendium,
    conditions: pd.DataFrame | None = None,
    *,
    signatures: SignatureOptions | None = None,
    compare: CompareOptions | None = None,
    max_pairs: int = 10,
    progress: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Within-dataset replicate agreement from separate-mode effects.

    Parameters
    ----------
    comp
        An open store.
    conditions
        Conditions to use (default: all of the store).
    signatures
        How signatures are read (the mode is forced to ``separate``).
    compare
        Metrics, peers, seed, bootstrap and rows per block (:class:`.CompareOptions`).
    max_pairs
        Replicate pairs per condition (a seeded choice when there are more).

    Returns
    -------
    (replicate_pairs, replicate_summary)
        ``replicate_pairs``: one row per condition with two or more replicate
        contrasts: ``dataset``, ``cell_context``, ``pert_time_h``, ``compound``,
        ``condition``, ``dose_uM``, ``n_replicates``, ``n_pairs``, ``n_genes``,
        ``n_de`` (means over its pairs), and per metric ``M``, ``M__centroid``,
        ``M__peer_mean``, ``M__peer_sd``, ``M__peer_pct``, ``M__n_peers`` (means over
        its pairs). ``replicate_summary``: the summary columns with ``dataset``
        instead of the pair, plus ``n_conditions`` and ``reason`` (a dataset without
        usable replicates has one row with ``metric="*"`` and the reason).
    """
    co = compare or CompareOptions()
    names = _metric_names(co.metrics)
    max_peers, seed, chunk_size = co.max_peers, co.seed, co.chunk_size
    base = signatures or SignatureOptions()
    sig = SignatureOptions(
        mode="separate",
        alpha=base.alpha,
        lfc_min=base.lfc_min,
        de_rule=base.de_rule,
        z_min=base.z_min,
        zscore=base.zscore,
    )
    conds = comp.conditions() if conditions is None else conditions
    all_datasets = sorted(conds["dataset"].astype(str).unique())
    has_sep = "separate" in comp.modes
    n_sep = (
        pd.to_numeric(conds["n_separate"], errors="coerce").fillna(0).to_numpy()
        if "n_separate" in conds
        else np.zeros(len(conds))
    )
    usable, _ = usable_conditions(conds[n_sep >= 2], compound_column="compound_id")
    strata = list(usable.groupby(["dataset", "cell_context", "pert_time_h"], sort=True))
    parts = []
    for key, rows in track(strata, description="replicate strata", enabled=progress):
        ds, ctx, t = cast(tuple[str, str, float], key)
        if not has_sep:
            break
        rows = rows.sort_values("condition_id", kind="stable").reset_index(drop=True)
        s = sig.load(comp, rows["condition_id"].tolist())
        keep = np.isfinite(s.x).any(axis=0)
        s = s.columns(keep)
        obs = s.obs
        info = rows.set_index("condition_id")
        cond = obs["condition_id"].astype(str).to_numpy()
        compound = info["compound"].reindex(cond).to_numpy().astype(str)
        dose = info["pert_dose_uM"].reindex(cond).to_numpy(dtype=float)
        ld = np.log10(dose)
        contrast = obs["contrast_id"].astype(str).to_numpy()
        i, j = _within_pairs(cond, contrast, max_pairs=max_pairs, seed=seed)
        if not len(i):
            continue
        cen = CentroidSums(s.x, compound, dose)
        keys = [f"{a}\x1f{b}" for a, b in zip(contrast[i], contrast[j], strict=True)]
        peers = peer_rows(compound, ld, compound[i], ld[i], keys, max_peers=max_peers, seed=seed)
        vals = baseline_metrics(
            s,
            s,
            i_src=i,
            i_tgt=j,
            metrics=names,
            baselines=Baselines(src_centroids=cen, peers=peers, names=("centroid", "", "peer")),
            chunk_size=chunk_size,
        )
        frame = pd.DataFrame(vals)
        frame["condition"] = cond[i]
        frame["n_de"] = (frame["n_de_a"] + frame["n_de_b"]) / 2.0
        frame = frame.drop(columns=["n_de_a", "n_de_b", "centroid_dose_exact"])
        per = frame.groupby("condition", sort=True)
        agg = per.mean(numeric_only=True)
        agg["n_pairs"] = per.size()
        n_rep = pd.Series(cond).value_counts()
        agg["n_replicates"] = n_rep.reindex(agg.index).to_numpy()
        agg = agg.reset_index()
        agg.insert(0, "dataset", ds)
        agg.insert(1, "cell_context", ctx)
        agg.insert(2, "pert_time_h", float(t))
        agg.insert(3, "compound", info["compound"].reindex(agg["condition"]).to_numpy())
        agg.insert(5, "dose_uM", info["pert_dose_uM"].reindex(agg["condition"]).to_numpy())
        parts.append(agg)
    lead = [
        "dataset",
        "cell_context",
        "pert_time_h",
        "compound",
        "condition",
        "dose_uM",
        "n_replicates",
        "n_pairs",
        "n_genes",
        "n_de",
    ]
    cols = lead + pair_columns(names, ("centroid",))
    if parts:
        table = pd.concat(parts, ignore_index=True)[cols]
        table["n_replicates"] = table["n_replicates"].astype(np.int64)
        table["n_pairs"] = table["n_pairs"].astype(np.int64)
    else:
        table = pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    summary = _replicate_summary(
        table,
        all_datasets,
        names,
        has_sep=has_sep,
        compare=co,
        n_sep=pd.Series(n_sep, index=conds.index),
        conds=conds,
    )
    return table, summary


def _replicate_summary(
    table: pd.DataFrame,
    datasets: list[str],
    names: list[str],
    *,
    has_sep: bool,
    compare: CompareOptions,
    n_sep: pd.Series,
    conds: pd.DataFrame,
) -> pd.DataFrame:
    n_boot, seed, confidence = compare.n_boot, compare.seed, compare.confidence
    specs = [(m, b, m, f"{m}__{b}") for m in names for b in REPLICATE_BASELINES]
    out = []
    for ds in datasets:
        t = table[table["dataset"] == ds]
        if not len(t):
            in_ds = (conds["dataset"].astype(str) == ds).to_numpy()
            if not has_sep or not (n_sep.to_numpy()[in_ds] > 0).any():
                reason = "no separate-mode effects"
            else:
                reason = "no condition has two or more replicate contrasts"
            out.append(
                pd.DataFrame(
                    [
                        {
                            "dataset": ds,
                            "level": "all",
                            "cell_context": "*",
                            "metric": "*",
                            "baseline": "*",
                            "n_conditions": 0,
                            "reason": reason,
                        }
                    ]
                )
            )
            continue
        levels = [("all", "*", t)] + [
            ("context", c, g) for c, g in t.groupby("cell_context", sort=True)
        ]
        for level, ctx, sub in levels:
            s = _summarize(sub, specs, n_boot=n_boot, seed=seed, confidence=confidence)
            s.insert(0, "cell_context", ctx)
            s.insert(0, "level", level)
            s.insert(0, "dataset", ds)
            s["n_conditions"] = len(sub)
            s["reason"] = ""
            out.append(s)
    cols = [
        "dataset",
        *(c for c in SUMMARY_COLUMNS if c not in ("dataset_a", "dataset_b", "direction")),
        "n_conditions",
        "reason",
    ]
    if not out:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    return pd.concat(out, ignore_index=True).reindex(columns=cols)


# --------------------------------------------------------------------------- generic entry


@dataclass
class SignatureAgreement:
    """Agreement of same-compound signatures across strata, against peers.

    Attributes
    ----------
    pairs
        One row per pair: ``compound``, ``signature_a``, ``signature_b``, the strata
        columns with suffixes ``_a`` / ``_b``, ``n_genes``, ``n_de_a``, ``n_de_b`` and
        per metric ``M``, ``M__peer_mean``, ``M__peer_sd``, ``M__peer_pct``,
        ``M__n_peers``.
    summary
        Nested means over source strata and BCa intervals (compound clusters), one row
        per metric (baseline ``peer_mean``), columns as in ``cross_summary``.
    options
        The parameters.
    """

    pairs: pd.DataFrame
    summary: pd.DataFrame
    options: dict[str, Any] = field(default_factory=dict)


def _pairs_across_strata(
    obs: pd.DataFrame,
    compound: str,
    strata: list[str],
    adjacent: str | None,
    *,
    max_pairs_per_compound: int | None,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    n = len(obs)
    key = obs[strata].astype(str).agg("\x1f".join, axis=1).to_numpy() if strata else np.zeros(n)
    if adjacent is None:
        i, j = _within_pairs(
            obs[compound].astype(str).to_numpy(),
            np.arange(n).astype(str),
            max_pairs=None,
            seed=seed,
        )
        keep = key[i] != key[j]
        i, j = i[keep], j[keep]
    else:
        others = [c for c in strata if c != adjacent]
        level = snap_values(pd.to_numeric(obs[adjacent], errors="coerce").to_numpy(dtype=float))
        frame = pd.DataFrame({"c": obs[compound].astype(str).to_numpy(), "v": level})
        for k, col in enumerate(others):
            frame[f"s{k}"] = obs[col].astype(str).to_numpy()
        frame["row"] = np.arange(n)
        frame = frame[np.isfinite(level)]
        gcols = ["c"] + [f"s{k}" for k in range(len(others))]
        frame = frame.sort_values([*gcols, "v", "row"], kind="stable")
        frame["rank"] = frame.groupby(gcols, sort=False)["v"].rank(method="dense")
        nxt = frame.assign(rank=frame["rank"] - 1)
        m = frame.merge(nxt, on=[*gcols, "rank"], suffixes=("", "_n"))
        i, j = m["row"].to_numpy(), m["row_n"].to_numpy()
        srt = np.lexsort((j, i))
        i, j = i[srt], j[srt]
    if max_pairs_per_compound is not None and len(i):
        c = obs[compound].astype(str).to_numpy()[i]
        h = _hash([f"{a}:{b}" for a, b in zip(i, j, strict=True)], seed).astype(np.float64)
        rank = pd.Series(h).groupby(c).rank(method="first").to_numpy()
        keep = rank <= max_pairs_per_compound
        i, j = i[keep], j[keep]
    return i.astype(np.int64), j.astype(np.int64)


def _agreement_pairs(
    sig: Signatures, pairing: PairingOptions, names: list[str], *, compare: CompareOptions
) -> pd.DataFrame:
    compound, strata, adjacent = pairing.compound, list(pairing.strata), pairing.adjacent
    dose, id_column = pairing.dose, pairing.id_column
    max_pairs_per_compound = pairing.max_pairs_per_compound
    max_peers, seed, chunk_size = compare.max_peers, compare.seed, compare.chunk_size
    obs = sig.obs
    i, j = _pairs_across_strata(
        obs, compound, strata, adjacent, max_pairs_per_compound=max_pairs_per_compound, seed=seed
    )
    comp = obs[compound].astype(str).to_numpy()
    ids = obs[id_column].astype(str).to_numpy() if id_column else np.arange(len(obs)).astype(str)
    if dose is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            ld = np.log10(pd.to_numeric(obs[dose], errors="coerce").to_numpy(dtype=float))
        ld = np.where(np.isfinite(ld), ld, 0.0)
    else:
        ld = np.zeros(len(obs))
    skey = obs[strata].astype(str).agg("\x1f".join, axis=1).to_numpy() if strata else None
    width = 0
    peers_parts: list[tuple[np.ndarray, np.ndarray]] = []
    if skey is not None and len(i):
        for s in np.unique(skey[i]):
            sel = np.flatnonzero(skey[i] == s)
            pool = np.flatnonzero(skey == s)
            keys = [f"{ids[a]}\x1f{ids[b]}" for a, b in zip(i[sel], j[sel], strict=True)]
            pr = peer_rows(
                comp[pool], ld[pool], comp[i[sel]], ld[i[sel]], keys, max_peers=max_peers, seed=seed
            )
            pr = np.where(pr >= 0, pool[np.maximum(pr, 0)], -1)
            width = max(width, pr.shape[1])
            peers_parts.append((sel, pr))
    peers = np.full((len(i), width), -1, dtype=np.int64)
    for sel, pr in peers_parts:
        peers[sel, : pr.shape[1]] = pr
    vals = baseline_metrics(
        sig,
        sig,
        i_src=i,
        i_tgt=j,
        metrics=names,
        baselines=Baselines(peers=peers, names=("", "", "peer")),
        chunk_size=chunk_size,
    )
    out = pd.DataFrame({"compound": comp[i], "signature_a": ids[i], "signature_b": ids[j]})
    for col in strata:
        out[f"{col}_a"] = obs[col].to_numpy()[i]
        out[f"{col}_b"] = obs[col].to_numpy()[j]
    for k, v in vals.items():
        out[k] = v
    return out


def signature_agreement(
    x: np.ndarray | ad.AnnData,
    obs: pd.DataFrame | None = None,
    *,
    pairing: PairingOptions | None = None,
    compare: CompareOptions | None = None,
    de: np.ndarray | None = None,
    z_min: float = 2.0,
    layer: str | None = None,
) -> SignatureAgreement:
    """Agreement of signatures of the same compound in different strata, against peers.

    Signatures outside a store (e.g. L1000 level 5 MODZ signatures): a ``(n, G)``
    matrix with one ``obs`` row per signature, or an AnnData (signatures × genes).

    Pairs: every two signatures ``(a, b)`` of the same compound whose ``strata``
    values differ (e.g. two cell lines, or a cell line at two times); with
    ``adjacent="<column>"``, only pairs with the same values of the other strata
    columns and consecutive values of that numeric column (e.g. adjacent doses of a
    dose series). Baseline (``peers``): ``a`` is replaced by each of up to
    ``max_peers`` signatures of *other* compounds in ``a``'s stratum (one per compound,
    nearest in ``dose`` when given), keeping both DE masks; the pair gets the peer mean,
    SD and add-one percentile.

    Parameters
    ----------
    x, obs
        The signatures and their metadata (``obs`` defaults to the AnnData's).
    pairing
        Which signatures are paired (:class:`.PairingOptions`: the compound column, the
        strata, ``adjacent``, the dose column, pairs per compound, the id column).
    compare
        Metrics, peers, seed, bootstrap and rows per block (:class:`.CompareOptions`).
    de
        Boolean ``(n, G)`` DE masks; ``None``: ``|value| >= z_min``.
    layer
        The AnnData layer to read (default ``X``).

    Returns
    -------
    SignatureAgreement

    Examples
    --------
    >>> pairing = PairingOptions(compound="pert_iname", strata=("cell_id", "pert_itime"))
    >>> res = signature_agreement(z, col_meta, pairing=pairing)  # doctest: +SKIP
    >>> res.summary[["metric", "observed", "baseline_value", "delta"]]  # doctest: +SKIP
    """
    po = pairing or PairingOptions()
    co = compare or CompareOptions()
    names = _metric_names(co.metrics)
    compound, adjacent, dose = po.compound, po.adjacent, po.dose
    strata = list(po.strata)
    if adjacent is not None and adjacent not in strata:
        strata.append(adjacent)
    sig = signatures_from_matrix(x, obs, de=de, z_min=z_min, layer=layer)
    frame = sig.obs
    id_column = po.id_column
    if id_column is None:
        id_column = str(frame.columns[0])  # the former index (reset_index)
    needed = [compound, *strata] + ([dose] if dose else [])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise KeyError(f"obs lacks the columns {missing}; columns: {list(frame.columns)[:20]}")
    pairs = _agreement_pairs(
        sig, replace(po, strata=strata, id_column=id_column), names, compare=co
    )
    options = {
        "compound": compound,
        "strata": strata,
        "adjacent": adjacent,
        "dose": dose,
        "z_min": None if de is not None else z_min,
        "metrics": names,
        "max_peers": co.max_peers,
        "max_pairs_per_compound": po.max_pairs_per_compound,
        "n_boot": co.n_boot,
        "seed": co.seed,
        "confidence": co.confidence,
    }
    summary = _agreement_summary(pairs, strata, names, compare=co)
    return SignatureAgreement(pairs=pairs, summary=summary, options=options)


def _agreement_summary(
    pairs: pd.DataFrame,
    strata: list[str],
    names: list[str],
    *,
    compare: CompareOptions,
) -> pd.DataFrame:
    if not len(pairs):
        return pd.DataFrame()
    specs = [(m, "peer_mean", m, f"{m}__peer_mean") for m in names]
    return _summarize(
        pairs,
        specs,
        strata=[f"{c}_a" for c in strata] or ["compound"],
        n_boot=compare.n_boot,
        seed=compare.seed,
        confidence=compare.confidence,
    )


#: How :func:`dose_series_agreement` pairs the signatures of one dataset × context × time.
_DOSE_SERIES = PairingOptions(
    compound="compound",
    strata=("pert_dose_uM",),
    adjacent="pert_dose_uM",
    dose="pert_dose_uM",
    max_pairs_per_compound=None,
    id_column="signature",
)


def dose_series_agreement(
    comp: Compendium,
    conditions: pd.DataFrame | None = None,
    *,
    signatures: SignatureOptions | None = None,
    compare: CompareOptions | None = None,
    progress: bool = False,
) -> SignatureAgreement:
    """Agreement of adjacent doses of the same compound within each dataset × context ×
    time of a store, against peers (other compounds at the source dose).

    ``compare`` gives the metrics, peers, seed, bootstrap and rows per block
    (:class:`.CompareOptions`). The summary has one row per dataset × metric
    (``dataset`` column), nested over context × time × source dose strata.
    """
    co = compare or CompareOptions()
    names = _metric_names(co.metrics)
    max_peers, n_boot, seed, confidence = co.max_peers, co.n_boot, co.seed, co.confidence
    sig = signatures or SignatureOptions()
    conds = comp.conditions() if conditions is None else conditions
    if sig.mode == "group" and "zarr_row_group" in conds:
        conds = conds[conds["zarr_row_group"].notna()]
    usable, _ = usable_conditions(conds, compound_column="compound_id")
    parts = []
    blocks = list(usable.groupby(["dataset", "cell_context", "pert_time_h"], sort=True))
    for key, rows in track(blocks, description="dose series", enabled=progress):
        ds, ctx, t = cast(tuple[str, str, float], key)
        rows = rows.sort_values("condition_id", kind="stable").reset_index(drop=True)
        s = sig.load(comp, rows["condition_id"].tolist())
        info = rows.set_index("condition_id")
        cond = s.obs["condition_id"].astype(str).to_numpy()
        s.obs = pd.DataFrame(
            {
                "signature": s.obs["contrast_id"].astype(str).to_numpy(),
                "compound": info["compound"].reindex(cond).to_numpy(),
                "pert_dose_uM": info["pert_dose_uM"].reindex(cond).to_numpy(),
            }
        )
        p = _agreement_pairs(s, _DOSE_SERIES, names, compare=co)
        p.insert(0, "pert_time_h", float(t))
        p.insert(0, "cell_context", ctx)
        p.insert(0, "dataset", ds)
        parts.append(p)
    pairs = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    out = []
    specs = [(m, "peer_mean", m, f"{m}__peer_mean") for m in names]
    for name, grp in pairs.groupby("dataset", sort=True) if len(pairs) else []:
        summ = _summarize(
            grp,
            specs,
            strata=["cell_context", "pert_time_h", "pert_dose_uM_a"],
            n_boot=n_boot,
            seed=seed,
            confidence=confidence,
        )
        summ.insert(0, "dataset", name)
        out.append(summ)
    summary = pd.concat(out, ignore_index=True) if out else pd.DataFrame()
    options = {
        "metrics": names,
        "max_peers": max_peers,
        "n_boot": n_boot,
        "seed": seed,
        "mode": sig.mode,
    }
    return SignatureAgreement(pairs=pairs, summary=summary, options=options)

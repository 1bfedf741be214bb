"""Dataset-pair and dataset summaries of the published tables, with their BCa intervals.

Cross-dataset tables (4, 5, 6): per-pair rows are averaged per drug
``(dataset_a, dataset_b, cell_type, time_key, pubchem_cid)`` first (NaN skipped; with
``sample_pairs`` weighting each condition pair counts ``n_sample_pairs`` times), then a
dataset pair's statistic is the mean of its finite drug-level values, with a
compound-clustered BCa interval seeded per (table, dataset pair, metric). Replicate
tables (7, 8, 10): the unit is the condition row. Metric labels are the published
ones, since they seed the bootstrap (``docs/agreement.md``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from . import _kernels as k

__all__ = [
    "CROSS_TABLES",
    "REPLICATE_TABLES",
    "cluster_ci_table",
    "cross_summary",
    "drug_level",
    "replicate_summary",
]

_VARIANTS = ("source_centroid", "target_centroid", "source_peer", "target_peer")


def _reviewer(prefix: str, metric: str, suffix: str, observed: tuple[str, str]) -> dict[str, str]:
    """Published labels (``prefix`` = ``w4``/``raw``, the original's historical names) of
    the reviewer baselines → per-pair columns (``pb_…``); ``observed`` is the label and
    column of the observed value."""
    out = {observed[0]: observed[1]}
    for v in _VARIANTS:
        out[f"{prefix}_{v}_{metric}_pair{suffix}"] = f"pb_{v}_{metric}_pair{suffix}"
        if v.endswith("_peer"):
            for field in ("sd_score", "fraction_below_observed", "corrected_percentile"):
                name = f"{v}_{metric}_pair{suffix}_{field}"
                out[f"{prefix}_{name}"] = f"pb_{name}"
        out[f"{prefix}_delta_vs_{v}_{metric}{suffix}"] = f"pb_delta_vs_{v}_{metric}{suffix}"
    return out


#: Published summary tables over dataset pairs: summary level → {metric label: pair column}.
CROSS_TABLES: dict[str, dict[str, str]] = {
    "table_4_raw_dataset_pair": _reviewer(
        "w4",
        "deg_lfc_spearman",
        "_p05",
        ("w4_observed_deg_lfc_spearman_sym_p05", "observed_deg_lfc_spearman_sym_p05"),
    ),
    "table_5_dataset_pair": {
        "observed_direction_agreement_p05": "observed_direction_agreement_p05",
        "baseline_pair_direction_agreement_p05": "baseline_pair_direction_agreement_p05",
        "delta_vs_baseline_pair_direction_agreement_p05": (
            "delta_vs_baseline_pair_direction_agreement_p05"
        ),
        **_reviewer(
            "raw",
            "direction_agreement",
            "_p05",
            ("raw_observed_direction_agreement_p05", "pb_observed_direction_agreement_p05"),
        ),
    },
    "table_6_raw_dataset_pair": _reviewer(
        "w4", "spearman_logfc", "", ("w4_observed_spearman_logfc", "observed_spearman_logfc")
    ),
}
# Table 5 of the original has no separate raw observed row: it is the published one.
del CROSS_TABLES["table_5_dataset_pair"]["raw_observed_direction_agreement_p05"]

_DRUG_KEYS = ["dataset_a", "dataset_b", "cell_type", "time_key", "pubchem_cid"]


def _tsv_round_trip(frame: pd.DataFrame, *, keys: Sequence[str] = ()) -> pd.DataFrame:
    """The frame written as TSV and read back by pandas, identity columns as strings.

    The published pipeline summarises its per-pair TSV files; pandas' default float
    parser can differ from the written value in the last bit, and bootstrap draws that
    tie the estimate are decided by that bit, so the round trip is part of the
    definition.
    """
    import io

    text = frame.to_csv(sep="\t", index=False)
    strings: dict[Hashable, str] = {c: "string" for c in (*_DRUG_KEYS, *keys) if c in frame.columns}
    return pd.read_csv(io.StringIO(text), sep="\t", dtype=strings, low_memory=False)


def drug_level(pairs: pd.DataFrame, columns: Sequence[str], *, weighting: str) -> pd.DataFrame:
    """Drug-level rows: per ``(dataset pair, cell type, time, CID)`` the NaN-skipping mean
    of each column (weighted by ``n_sample_pairs`` with ``weighting="sample_pairs"``),
    sorted by the keys as strings, prefixed ``mean_``."""
    if weighting not in ("sample_pairs", "condition"):
        raise ValueError(f"weighting must be 'sample_pairs' or 'condition', got {weighting!r}")
    frame = _tsv_round_trip(pairs[[*_DRUG_KEYS, *columns]])
    if weighting == "sample_pairs":
        # one row per matched sample pair, as the published pipeline has them: pandas'
        # compensated mean over repeated rows is not bit-equal to a weighted mean
        reps = pairs["n_sample_pairs"].to_numpy(dtype=np.int64)
        frame = frame.iloc[np.repeat(np.arange(len(frame)), reps)]
    out = frame.groupby(_DRUG_KEYS, sort=False).mean().reset_index()
    out.columns = [*_DRUG_KEYS, *("mean_" + c for c in columns)]
    out.insert(0, "scale_variant", "raw")
    return out.sort_values(["scale_variant", *_DRUG_KEYS], kind="mergesort").reset_index(drop=True)


def interval_columns(iv: k.Interval, *, level: float, n_boot: int) -> dict[str, Any]:
    """The published columns of one summary statistic and its interval."""
    finite = np.isfinite(iv.low) and np.isfinite(iv.high)
    return {
        "mean": iv.mean,
        "ci_low": iv.low,
        "ci_high": iv.high,
        "ci_half_width": (iv.high - iv.low) / 2 if finite else np.nan,
        "ci_method": iv.method,
        "ci_status": iv.status,
        "ci_level": level,
        "n_bootstrap_iterations": n_boot,
        "n_bootstrap_valid": iv.n_valid,
    }


def cluster_ci_table(
    frame: pd.DataFrame,
    *,
    group_cols: Sequence[str],
    metrics: Mapping[str, str],
    summary_level: str,
    cluster_col: str = "pubchem_cid",
    n_boot: int = 2000,
    level: float = 0.95,
) -> pd.DataFrame:
    """Mean of the finite values of each metric per group, with its compound-clustered
    BCa interval (clusters in order of first appearance in ``frame``)."""
    records = []
    grouped = frame.groupby(list(group_cols), sort=False, dropna=False)
    for values, sub in grouped:
        values = values if isinstance(values, tuple) else (values,)
        group_values = tuple(str(v) for v in values)
        for label, col in metrics.items():
            v = pd.to_numeric(sub[col], errors="coerce").to_numpy(dtype=np.float64)
            cl = sub[cluster_col].astype("string").fillna("").astype(str).str.strip().to_numpy()
            ok = np.isfinite(v) & (cl != "")
            keys = pd.Index(pd.unique(cl[ok]))
            codes = keys.get_indexer(cl[ok])
            sums = np.bincount(codes, weights=v[ok], minlength=len(keys))
            counts = np.bincount(codes, minlength=len(keys)).astype(np.float64)
            seed = k.bootstrap_seed(summary_level, group_values, label, col)
            iv = k.bca_interval(sums, counts, seed=seed, n_boot=n_boot, level=level)
            records.append(
                {
                    **dict(zip(group_cols, values, strict=True)),
                    "summary_level": summary_level,
                    "metric": label,
                    "value_col": col,
                    **interval_columns(iv, level=level, n_boot=n_boot),
                    "n_rows": len(sub),
                    "n_finite_rows": int(ok.sum()),
                    "n_compounds": len(keys),
                    "cluster_col": cluster_col,
                }
            )
    return pd.DataFrame(records)


def cross_summary(pairs: pd.DataFrame, *, weighting: str, n_boot: int = 2000) -> pd.DataFrame:
    """Tables 4, 5 and 6 over dataset pairs for one weighting (one row per table ×
    dataset pair × metric)."""
    if pairs.empty:
        return pd.DataFrame()
    parts = []
    for level, metrics in CROSS_TABLES.items():
        present = {lab: col for lab, col in metrics.items() if col in pairs.columns}
        labelled = pairs[[*_DRUG_KEYS, "n_sample_pairs"]].copy()
        for lab, col in present.items():
            labelled[lab] = pairs[col].to_numpy()
        drugs = drug_level(labelled, list(present), weighting=weighting)
        t = cluster_ci_table(
            drugs,
            group_cols=["dataset_a", "dataset_b", "scale_variant"],
            metrics={lab: "mean_" + lab for lab in present},
            summary_level=level,
            n_boot=n_boot,
        )
        t.insert(0, "weighting", weighting)
        parts.append(t)
    return pd.concat(parts, ignore_index=True)


def _replicate_metrics(label: str, column: str, field_first: bool) -> dict[str, str]:
    """The eight published Table 7/8/10 metrics: label → condition column."""

    def peer(field: str) -> str:
        if field_first:
            return f"mean_peer_baseline_{field}_{column}"
        return f"mean_peer_baseline_{column.removesuffix('_p05')}_{field}_p05"

    return {
        f"observed_{label}": f"mean_replicate_{column}",
        f"centroid_baseline_{label}": f"mean_baseline_pair_{column}",
        f"delta_vs_centroid_{label}": f"mean_delta_vs_baseline_pair_{column}",
        f"individual_peer_mean_{label}": f"mean_peer_baseline_{column}",
        f"individual_peer_sd_{label}": peer("sd"),
        f"individual_peer_fraction_below_observed_{label}": peer("fraction_below_observed"),
        f"individual_peer_corrected_percentile_{label}": peer("corrected_percentile"),
        f"delta_vs_individual_peer_{label}": f"mean_delta_vs_peer_baseline_{column}",
    }


#: Published replicate tables: summary level → {metric label: condition column}. The
#: labels seed the bootstrap, so they are the published ones.
REPLICATE_TABLES: dict[str, dict[str, str]] = {
    "table_7_dataset": _replicate_metrics(
        "deg_lfc_spearman_sym_p05", "deg_lfc_spearman_sym_p05", False
    ),
    "table_8_dataset": _replicate_metrics(
        "direction_agreement_p05", "direction_agreement_p05", False
    ),
    "table_10_dataset": {
        "observed_replicate_spearman_logfc": "mean_replicate_spearman_logfc",
        "centroid_baseline_spearman_logfc": "mean_replicate_baseline_spearman_logfc",
        "delta_vs_centroid_spearman_logfc": "mean_replicate_minus_baseline_spearman_logfc",
        "individual_peer_mean_spearman_logfc": "mean_peer_baseline_spearman_logfc",
        "individual_peer_sd_spearman_logfc": "mean_peer_baseline_sd_spearman_logfc",
        "individual_peer_fraction_below_observed_spearman_logfc": (
            "mean_peer_baseline_fraction_below_observed_spearman_logfc"
        ),
        "individual_peer_corrected_percentile_spearman_logfc": (
            "mean_peer_baseline_corrected_percentile_spearman_logfc"
        ),
        "delta_vs_individual_peer_spearman_logfc": (
            "mean_replicate_minus_peer_baseline_spearman_logfc"
        ),
    },
}


def replicate_summary(conditions: pd.DataFrame, *, n_boot: int = 2000) -> pd.DataFrame:
    """Tables 7, 8 and 10 per dataset: the condition rows sorted by (dataset, cell type,
    numeric CID, time, dose), clustered by CID."""
    if conditions.empty:
        return pd.DataFrame()
    c = conditions.copy()
    c["_cid"] = pd.to_numeric(c["pubchem_cid"], errors="coerce")
    c["_time"] = pd.to_numeric(c["time_key"], errors="coerce")
    c["_dose"] = pd.to_numeric(c["dose_key"], errors="coerce")
    c = c.sort_values(["dataset_name", "cell_type", "_cid", "_time", "_dose"], kind="mergesort")
    columns = sorted({col for t in REPLICATE_TABLES.values() for col in t.values()} & set(c))
    # the published table builder reads the condition table back from TSV
    c = _tsv_round_trip(c[["dataset_name", "pubchem_cid", *columns]], keys=("dataset_name",))
    parts = []
    for level, metrics in REPLICATE_TABLES.items():
        present = {lab: col for lab, col in metrics.items() if col in c.columns}
        parts.append(
            cluster_ci_table(
                c, group_cols=["dataset_name"], metrics=present, summary_level=level, n_boot=n_boot
            )
        )
    return pd.concat(parts, ignore_index=True)

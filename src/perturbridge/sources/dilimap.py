"""DILImap (Cellarity; bulk SMART-seq in primary human hepatocytes) counts → Samples.

Reads a DILImap counts AnnData as the project distributes it
(``training_data_counts.h5ad``, ``validation_data_counts.h5ad``): raw counts in ``X``
(dense or sparse), ``var`` indexed by gene symbol with the Ensembl id in ``gene_id``,
and one ``obs`` row per well with ``COMPOUND``, ``CONCENTRATION_UM``,
``TIMEPOINT_HOURS``, ``PLATE_NAME``, ``WELL_ID``, ``DOSE_LEVEL`` (``Low``, ``Middle``,
``Mid-High``, ``High``, ``Control``), ``LDH_QC`` (empty when the well passed the LDH
cytotoxicity screen), ``LIBRARY_ID``, ``BATCH_ID``, ``SPLIT``, ``CMPD_DOSE``. QC columns
that DILImap's own QC adds (``log_totalRNA``, ``pct_mtRNA``, ``cross_rep_correlation``,
``rep_corr_qc_pass``) are used when present and computed otherwise.

Rules
-----
* **Controls.** ``DMSO`` is the vehicle (dose 0). ``DMSO_replaced`` wells (a
  compound well refilled with DMSO, not a planned vehicle) → ``replaced_control``.
* **Doses** are merged per compound in log10 space (:func:`merge_doses`): the distinct
  positive concentrations of a compound are sorted and chained into one cluster while
  consecutive values differ by at most ``dose_merge_log10`` (default 0.05, i.e. 12%;
  single linkage); every well of a cluster gets the cluster's most frequent original
  concentration (ties: the smallest). ``pert_dose_uM`` is the merged dose,
  ``dose_source_uM`` the original; a merge is noted in the ledger detail.
* **QC** (sample ledger, stage ``ingest``; first failing rule wins, after
  ``replaced_control`` and ``missing_dose``/``missing_time``):
  ``qc_ldh`` (``LDH_QC`` not empty), ``qc_total_rna`` (log10 total reads below the
  median − ``total_rna_sd`` × SD over all wells, as DILImap's tutorial),
  ``qc_mito`` (mitochondrial percent, ``MT-`` genes, ≥ ``max_mito_percent``, default
  9), ``qc_rep_corr`` (cross-replicate correlation, :func:`cross_replicate_correlation`).
  Each detail names the metric, the value and the threshold.
* **Identities.** ``perturbagen`` = ``compound_id_source`` = ``COMPOUND``;
  ``cell_context`` = ``CL:0000182`` (hepatocyte), ``cell_name`` = ``primary human
  hepatocyte`` (DILImap carries no cell column);
  :mod:`perturbridge.ids.annotate` resolves identities afterwards, as for every source.
  Replicate = the well's rank within its condition.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ..ledger import Ledger
from ._base import (
    IngestResult,
    SourceAdapter,
    register_source,
)
from ._common import (
    STAGE,
    Accounts,
    Origin,
    Triage,
    assemble,
    categorical,
    is_missing,
    parse_bools,
    parse_numbers,
    record_genes,
    replicate_rank,
    resolve_columns,
)
from ._singlecell import as_text, gene_table
from ._tables import check_unique, h5ad_rows, open_h5ad, require_file

__all__ = [
    "DILImapSource",
    "DilimapQC",
    "cross_replicate_correlation",
    "merge_doses",
    "read_dilimap",
]

logger = logging.getLogger(__name__)

FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "compound": ("COMPOUND", "compound"),
    "dose": ("CONCENTRATION_UM", "concentration_uM", "dose_uM"),
    "time": ("TIMEPOINT_HOURS", "timepoint_hours", "time_h"),
    "plate": ("PLATE_NAME", "plate"),
    "well": ("WELL_ID", "well"),
    "dose_level": ("DOSE_LEVEL",),
    "ldh": ("LDH_QC",),
    "log_total": ("log_totalRNA",),
    "pct_mt": ("pct_mtRNA",),
    "rep_corr": ("cross_rep_correlation",),
    "rep_pass": ("rep_corr_qc_pass",),
    "library": ("LIBRARY_ID",),
    "batch": ("BATCH_ID",),
    "split": ("SPLIT",),
    "cmpd_dose": ("CMPD_DOSE",),
}
REQUIRED = ("compound", "dose", "time", "plate", "well")
VEHICLE = "DMSO"
REPLACED = ("DMSO_replaced",)
CELL_CONTEXT = "CL:0000182"
CELL_NAME = "primary human hepatocyte"


def merge_doses(
    compound: NDArray[Any], dose: NDArray[np.float64], *, max_log10_gap: float = 0.05
) -> NDArray[np.float64]:
    """Merge near-identical concentrations per compound (single linkage in log10).

    Per compound, the distinct positive doses are sorted; consecutive doses whose
    log10 values differ by at most ``max_log10_gap`` share a cluster. Each dose is
    replaced by its cluster's most frequent dose (counted over the wells; ties: the
    smallest). Zero, negative and missing doses are returned as they are.

    Examples
    --------
    >>> merge_doses(
    ...     np.array(["a"] * 5), np.array([3.3333, 3.33, 3.33, 10.0, 12.0])
    ... ).tolist()
    [3.33, 3.33, 3.33, 10.0, 12.0]
    """
    if max_log10_gap < 0:
        raise ValueError(f"max_log10_gap must be >= 0; found {max_log10_gap!r}")
    out = np.asarray(dose, dtype=float).copy()
    comp = np.asarray(compound, dtype=object)
    ok = np.isfinite(out) & (out > 0)
    for c in pd.unique(comp[ok]):
        rows = np.flatnonzero(ok & (comp == c))
        values, counts = np.unique(out[rows], return_counts=True)
        breaks = np.flatnonzero(np.diff(np.log10(values)) > max_log10_gap + 1e-12) + 1
        merged = np.empty_like(values)
        for members in np.split(np.arange(len(values)), breaks):
            best = members[np.argmax(counts[members])]  # first (smallest) of the ties
            merged[members] = values[best]
        out[rows] = merged[np.searchsorted(values, out[rows])]
    return out


def cross_replicate_correlation(
    x: Any,
    plate: NDArray[Any],
    condition: NDArray[Any],
    *,
    min_corr: float = 0.99,
    n_sd: float = 3.0,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """DILImap's cross-replicate correlation QC: each well's correlation and threshold.

    Per plate, the Pearson correlation of the wells' raw counts. A well's value is its
    highest correlation with another well of the same condition on the plate; for a
    condition with more than four wells (the vehicle) it is the mean of its
    ⌊n/2⌋ highest. The threshold of a condition is ``max(median of its wells' values −
    n_sd × SD of all values on the plate, min_corr)``; a well fails when its value is
    at or below it. A well alone in its condition on its plate gets NaN (not tested).

    Returns
    -------
    corr, threshold
        One value per well (NaN where not tested).
    """
    n = x.shape[0]
    corr = np.full(n, np.nan)
    thr = np.full(n, np.nan)
    plate = np.asarray(plate, dtype=object)
    condition = np.asarray(condition, dtype=object)
    for p in pd.unique(plate):
        rows = np.flatnonzero(plate == p)
        block: Any = x[rows]
        block = block.toarray() if hasattr(block, "toarray") else block
        dense = np.asarray(block, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            c = np.corrcoef(dense) if len(rows) > 1 else np.full((1, 1), np.nan)
        c = np.atleast_2d(c)
        np.fill_diagonal(c, np.nan)
        groups: dict[Any, Any] = pd.Series(np.arange(len(rows))).groupby(condition[rows]).indices
        for members in groups.values():
            if len(members) < 2:
                continue
            sub = c[np.ix_(members, members)]
            if len(members) > 4:
                top = len(members) // 2
                ordered = -np.sort(-np.nan_to_num(sub, nan=-np.inf), axis=1)[:, :top]
                corr[rows[members]] = ordered.mean(axis=1)
            else:
                with np.errstate(invalid="ignore"):
                    corr[rows[members]] = np.nanmax(np.where(np.isnan(sub), -np.inf, sub), axis=1)
        values = corr[rows]
        finite = np.isfinite(values)
        sd = float(np.std(values[finite])) if finite.any() else 0.0
        for members in groups.values():
            v = corr[rows[members]]
            if np.isfinite(v).any():
                thr[rows[members]] = max(float(np.nanmedian(v)) - n_sd * sd, min_corr)
    thr[~np.isfinite(corr)] = np.nan
    return corr, thr


@dataclass(frozen=True)
class DilimapQC:
    """Well QC thresholds of :func:`read_dilimap` (the fields are also its plan keys and
    ``--set`` names; defaults as DILImap's tutorial)."""

    #: total-RNA rule: log10 reads below median − ``total_rna_sd`` × SD fail
    total_rna_sd: float = 2.5
    #: wells with at least this percent of reads in ``MT-`` genes fail
    max_mito_percent: float = 9.0
    #: cross-replicate correlation rule (see :func:`cross_replicate_correlation`)
    min_rep_corr: float = 0.99
    rep_corr_sd: float = 3.0


def read_dilimap(
    h5ad: str | os.PathLike[str],
    *,
    layer: str | None = None,
    dataset: str = "dilimap",
    vehicle: str = VEHICLE,
    dose_merge_log10: float = 0.05,
    qc: DilimapQC | None = None,
) -> IngestResult:
    """Read a DILImap counts ``.h5ad`` into Samples, accounting for every well and gene.

    Parameters
    ----------
    h5ad
        ``training_data_counts.h5ad`` / ``validation_data_counts.h5ad``.
    layer
        Read counts from this layer instead of ``X``.
    dataset
        Dataset name written to ``obs["dataset"]``.
    vehicle
        The vehicle's ``COMPOUND`` value.
    dose_merge_log10
        Largest log10 gap chained into one dose cluster (see :func:`merge_doses`).
    qc
        The well QC thresholds (:class:`DilimapQC`; plans and ``--set`` give its fields
        as flat keys, e.g. ``max_mito_percent = 10``).

    Examples
    --------
    >>> res = read_dilimap("validation_data_counts.h5ad")  # doctest: +SKIP
    """
    qc = qc or DilimapQC()
    path = require_file(h5ad, what="DILImap counts AnnData (.h5ad)")
    where = str(path)
    obs_in, var_in, fh = open_h5ad(path, layer=layer)
    try:
        f = resolve_columns(
            obs_in.columns, FIELD_ALIASES, required=REQUIRED, where=f"{where} obs",
            what="DILImap obs",
        )  # fmt: skip
        ids = pd.Index(obs_in.index.astype(str))
        check_unique(ids, column="obs index", where=f"{where} obs", what="sample ids")
        key = "X" if layer is None else f"layers/{layer}"
        x = h5ad_rows(fh, key, np.arange(len(ids)))
    finally:
        fh.close()
    genes = gene_table(var_in, where=f"{where} var")
    col = {k: pd.Series(as_text(obs_in[v]), index=ids) for k, v in f.items()}
    compound = col["compound"].to_numpy()
    dose_raw = parse_numbers(col["dose"], column=f["dose"], where=f"{where} obs")
    time = parse_numbers(col["time"], column=f["time"], where=f"{where} obs")
    is_vehicle = compound == vehicle
    replaced = np.isin(compound, REPLACED)
    treated = ~is_vehicle & ~replaced & (compound != "")
    dose = merge_doses(np.where(treated, compound, ""), dose_raw, max_log10_gap=dose_merge_log10)
    dose = np.where(is_vehicle, 0.0, dose)

    totals = np.asarray(x.sum(axis=1), dtype=float).ravel()
    metrics = _qc_metrics(
        x, totals, genes, col, f, total_rna_sd=qc.total_rna_sd, where=f"{where} obs"
    )
    condition = np.array(
        [f"{c}|{d:.6g}" for c, d in zip(compound, np.where(treated, dose, 0.0), strict=True)],
        dtype=object,
    )
    if "rep_pass" in f:
        rep_fail = ~parse_bools(col["rep_pass"], column=f["rep_pass"], where=f"{where} obs")
        rep_corr = (
            parse_numbers(col["rep_corr"], column=f["rep_corr"], where=f"{where} obs")
            if "rep_corr" in f
            else np.full(len(ids), np.nan)
        )
        rep_detail = np.array(
            [f"cross_rep_correlation {v:.4f}; rep_corr_qc_pass False (upstream)" for v in rep_corr],
            dtype=object,
        )
    else:
        rep_corr, rep_thr = cross_replicate_correlation(
            x, col["plate"].to_numpy(), condition, min_corr=qc.min_rep_corr, n_sd=qc.rep_corr_sd
        )
        rep_fail = np.isfinite(rep_corr) & (rep_corr <= rep_thr)
        rep_detail = np.array(
            [
                f"cross_rep_correlation {v:.4f} <= threshold {t:.4f}"
                for v, t in zip(rep_corr, rep_thr, strict=True)
            ],
            dtype=object,
        )

    triage = Triage(ids)
    triage.drop(replaced, "replaced_control", (f"{f['compound']}=" + col["compound"]).to_numpy())
    triage.drop(compound == "", "missing_metadata", f"no {f['compound']}")
    triage.drop(
        treated & ~(np.isfinite(dose) & (dose > 0)),
        "missing_dose",
        (f"{f['dose']}=" + col["dose"]).to_numpy(),
    )
    triage.drop(~(np.isfinite(time) & (time >= 0)), "missing_time", f"{f['time']} missing")
    if "ldh" in f:
        ldh = col["ldh"]
        triage.drop(~is_missing(ldh), "qc_ldh", (f"{f['ldh']}=" + ldh).to_numpy())
    log_total, total_thr = metrics["log_total"], metrics["total_thr"]
    triage.drop(
        np.isfinite(total_thr) & ~(log_total >= total_thr),
        "qc_total_rna",
        np.array(
            [
                f"log10 total reads {v:.3f} < {total_thr:.3f} (median - {qc.total_rna_sd:g} SD)"
                for v in log_total
            ],
            dtype=object,
        ),
    )
    pct = metrics["pct_mt"]
    triage.drop(
        pct >= qc.max_mito_percent,
        "qc_mito",
        np.array([f"pct_mtRNA {v:.2f} >= {qc.max_mito_percent:g}" for v in pct], dtype=object),
    )
    triage.drop(rep_fail, "qc_rep_corr", rep_detail)
    merged = treated & np.isfinite(dose_raw) & (dose != dose_raw)
    kept_detail = np.where(is_vehicle, "vehicle", "compound").astype(object)
    kept_detail[merged] = [
        f"compound; dose {a:g} merged to {b:g} µM"
        for a, b in zip(dose_raw[merged], dose[merged], strict=True)
    ]
    ledger = Ledger()
    triage.record(ledger, stage=STAGE, kept_detail=kept_detail)
    keep_gene = record_genes(ledger, genes.index)
    kept = np.flatnonzero(triage.kept)
    obs = pd.DataFrame(
        {
            "dataset": dataset,
            "assay": "SMART-seq bulk RNA-seq",
            "plate": col["plate"].to_numpy(),
            "well": col["well"].to_numpy(),
            "replicate": "",
            "cell_context": CELL_CONTEXT,
            "cell_name": CELL_NAME,
            "perturbagen": compound,
            "compound_id_source": compound,
            "pert_type": np.where(is_vehicle, "vehicle", "compound"),
            "is_control": is_vehicle,
            "pert_dose_uM": dose,
            "pert_time_h": time,
            "dose_source_uM": np.where(is_vehicle, 0.0, dose_raw),
            "dose_level": col["dose_level"].to_numpy() if "dose_level" in col else "",
            "library_id": col["library"].to_numpy() if "library" in col else "",
            "batch_id": col["batch"].to_numpy() if "batch" in col else "",
            "split": col["split"].to_numpy() if "split" in col else "",
            "log_totalRNA": log_total,
            "pct_mtRNA": pct,
            "cross_rep_correlation": rep_corr,
        },
        index=ids,
    ).iloc[kept]
    obs = obs.copy()  # a frame of its own: columns are set on it below
    obs["replicate"] = replicate_rank(obs, by=("compound_id_source", "pert_dose_uM", "pert_time_h"))
    for c in ("dose_level", "library_id", "batch_id", "split"):
        obs[c] = categorical(obs[c])
    var = pd.DataFrame(
        {"symbol": genes["symbol"].to_numpy(), "var_name": genes["var_name"].to_numpy()},
        index=genes.index,
    ).iloc[np.flatnonzero(keep_gene)]
    logger.info("%s: %d of %d wells kept", where, len(obs), len(ids))
    return assemble(
        x[kept][:, np.flatnonzero(keep_gene)],
        obs,
        var,
        accounts=Accounts(ledger, samples=ids, genes=genes.index),
        origin=Origin(
            inputs=[path],
            params={
                "source": "dilimap",
                "dataset": dataset,
                "layer": layer,
                "vehicle": vehicle,
                "dose_merge_log10": dose_merge_log10,
                "total_rna_sd": qc.total_rna_sd,
                "max_mito_percent": qc.max_mito_percent,
                "min_rep_corr": qc.min_rep_corr,
                "rep_corr_sd": qc.rep_corr_sd,
            },
            where=where,
        ),
    )


def _qc_metrics(
    x: Any,
    totals: NDArray[np.float64],
    genes: pd.DataFrame,
    col: dict[str, pd.Series],
    f: dict[str, str],
    *,
    total_rna_sd: float,
    where: str,
) -> dict[str, Any]:
    """log10 total reads with the total-RNA threshold, and mitochondrial percent."""
    if "log_total" in f:
        log_total = parse_numbers(col["log_total"], column=f["log_total"], where=where)
    else:
        with np.errstate(divide="ignore"):
            log_total = np.log10(totals)
    finite = np.isfinite(log_total)
    total_thr = (
        float(np.median(log_total[finite]) - total_rna_sd * np.std(log_total[finite], ddof=1))
        if finite.sum() > 1
        else float("nan")
    )
    if "pct_mt" in f:
        pct = parse_numbers(col["pct_mt"], column=f["pct_mt"], where=where)
    else:
        mito = np.flatnonzero(genes["symbol"].astype(str).str.upper().str.startswith("MT-"))
        part = np.asarray(x[:, mito].sum(axis=1), dtype=float).ravel() if mito.size else 0 * totals
        pct = 100 * np.divide(part, totals, out=np.zeros_like(totals), where=totals > 0)
    return {"log_total": log_total, "total_thr": total_thr, "pct_mt": pct}


@register_source(name="dilimap")
class DILImapSource(SourceAdapter):
    """DILImap bulk SMART-seq counts in primary human hepatocytes (.h5ad)."""

    option_groups: ClassVar[Mapping[str, type[Any]]] = {"qc": DilimapQC}

"""Ginkgo GDPx2 (DRUG-seq in four primary human cell types) → Samples.

Reads either upstream form:

* the Ginkgo Datapoints package: ``Metadata.csv`` (one row per sequenced well, with
  exact repeated rows that are removed; ``sample_id, cell_line, compound,
  compound_concentration, compound_concentration_unit, timepoint,
  percent_volume_dmso, container_id, row_id, column_id, sample_type, is_pos_control``,
  QC metrics) and ``GDPx2-GeneCounts.h5`` (``gene_counts`` samples × genes with
  ``.gene_counts_dimnames/1`` genes and ``/2`` sample ids, and a CSC
  ``sparse_matrix`` genes × samples, which is read when present);
* the curated AnnData (``.h5ad``; obs ``pert_name``, ``pert_dose`` such as
  ``1000.0nM`` or ``0.0625%``, ``pert_time`` such as ``24.0h``, ``cell_type``,
  ``sample_type``, ``percent_volume_dmso``, ``container_id``, ``row_id``,
  ``column_id``; var with ``symbol``, ERCC spike-ins included).

Rules: ``sample_type`` ``Ginkgo Neg Control - DMSO`` wells are the vehicle (dose 0; all
three DMSO volumes, not only those flagged ``is_neg_control``); ``Ginkgo Pos Control
…`` wells (or ``is_pos_control``) go to the ledger as ``positive_control``; every other
well is a compound at its concentration converted to µM. ``percent_volume_dmso`` (the
DMSO volume of every well, treated ones included) is kept as a float column: contrasts
should match treated wells to the DMSO wells of the same volume, so the Samples declare
it in ``uns["perturbridge"]["control_match_keys"]``. Treated wells without
a usable dose go to the ledger as ``missing_dose``; wells without counts as
``missing_counts``, count columns without metadata as ``missing_metadata``; ERCC rows
as ``spike_in`` in the gene ledger. The cell context is the Cell Ontology id of the
cell type (the upstream name stays in ``cell_name``); plate = ``container_id``, well
from ``row_id``/``column_id``, replicate = the well's rank within its condition.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from ..errors import FormatError, SchemaError
from ..ids.cell_ontology import dataset_cell_contexts
from . import _common as common
from ._base import IngestResult, SourceAdapter, register_source
from ._tables import check_unique, h5ad_rows, open_h5ad, read_table, require_file

__all__ = ["GDPx2Source", "read_gdpx2"]

logger = logging.getLogger(__name__)

#: Columns a treated well must share with its vehicle wells: the DMSO volume.
CONTROL_MATCH_KEYS: tuple[str, ...] = ("percent_volume_dmso",)
VEHICLE_SAMPLE_TYPE = "ginkgo neg control"
POSITIVE_SAMPLE_TYPE = "ginkgo pos control"

FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "sample": ("sample_id", "sequenced_id"),
    "compound": ("compound", "pert_name"),
    "dose": ("compound_concentration", "pert_dose"),
    "dose_unit": ("compound_concentration_unit",),
    "time": ("timepoint", "pert_time"),
    "cell": ("cell_line", "cell_type"),
    "sample_type": ("sample_type",),
    "percent_dmso": ("percent_volume_dmso",),
    "plate": ("container_id",),
    "row": ("row_id",),
    "col": ("column_id",),
    "well": ("well",),
    "is_pos_control": ("is_pos_control",),
}
REQUIRED = ("compound", "dose", "time", "cell", "sample_type", "percent_dmso", "plate")
QC_COLUMNS = ("total_umi_count", "n_mapped", "ngenes3", "percent_mapped", "percent_mitochondrial")


@dataclass(frozen=True)
class _Counts:
    """The counts behind a metadata table: their sample ids, gene ids and gene symbols,
    and ``read_rows(positions)``, the rows of those samples (positions in
    ``sample_ids``) as a samples × genes matrix."""

    sample_ids: pd.Index
    genes: pd.Index
    symbols: np.ndarray
    read_rows: Callable[[np.ndarray], Any]


class _H5Counts:
    """``GDPx2-GeneCounts.h5``: gene and sample ids, and rows of samples read in chunks."""

    def __init__(self, path: Path) -> None:
        import h5py

        self.path = path
        try:
            self.fh = h5py.File(path, "r")
        except OSError as err:
            raise FormatError(f"{path}: not a readable HDF5 counts file: {err}") from err
        try:
            dn = self.fh[".gene_counts_dimnames"]
            self.genes = pd.Index(dn["1"].asstr()[:], dtype=str)
            self.samples = pd.Index(dn["2"].asstr()[:], dtype=str)
        except KeyError as err:
            self.close()
            raise FormatError(
                f"{path}: expected '.gene_counts_dimnames/1' (genes) and '/2' (sample ids)"
            ) from err

    def rows(self, idx: np.ndarray, *, chunk_size: int) -> sparse.csr_matrix:
        """Samples ``idx`` (any order) × genes, read ``chunk_size`` samples at a time."""
        order = np.argsort(idx, kind="stable")
        sorted_idx = idx[order]
        blocks = [sparse.csr_matrix((0, len(self.genes)))]
        if "sparse_matrix" in self.fh:
            sm = self.fh["sparse_matrix"]
            ptr = sm["j_ptr"][:]
            for start in range(0, len(sorted_idx), chunk_size):
                part = sorted_idx[start : start + chunk_size]
                lo, hi = int(ptr[part[0]]), int(ptr[part[-1] + 1])
                vals = sm["values"][lo:hi]
                rows = sm["i_indices"][lo:hi]
                sub = sparse.csc_matrix(
                    (vals, rows, ptr[part[0] : part[-1] + 2] - lo),
                    shape=(len(self.genes), int(part[-1] - part[0] + 1)),
                )
                blocks.append(sub[:, part - part[0]].T.tocsr())
        elif "gene_counts" in self.fh:
            ds = self.fh["gene_counts"]
            if ds.shape != (len(self.samples), len(self.genes)):
                raise FormatError(
                    f"{self.path}: gene_counts has shape {ds.shape}, expected samples × genes "
                    f"({len(self.samples)}, {len(self.genes)})"
                )
            for start in range(0, len(sorted_idx), chunk_size):
                part = sorted_idx[start : start + chunk_size]
                blocks.append(sparse.csr_matrix(ds[part, :]))
        else:
            raise FormatError(f"{self.path}: neither 'sparse_matrix' nor 'gene_counts' is present")
        x = sparse.vstack(blocks).tocsr()
        inv = np.empty_like(order)
        inv[order] = np.arange(len(order))
        return x[inv]

    def close(self) -> None:
        self.fh.close()


def _dedupe(table: pd.DataFrame, key: str, *, where: str) -> tuple[pd.DataFrame, int]:
    """Drop exact repeated rows; repeated ids with different content are an error."""
    exact = table.duplicated(keep="first")
    out = table.loc[~exact]
    clash = out[key].duplicated(keep=False)
    if clash.any():
        raise SchemaError(
            key,
            "sample ids repeat with different metadata",
            list(pd.unique(out.loc[clash, key]))[:5],
            where=where,
        )
    return out, int(exact.sum())


def read_gdpx2(
    metadata: str | os.PathLike[str] | None = None,
    counts: str | os.PathLike[str] | None = None,
    *,
    h5ad: str | os.PathLike[str] | None = None,
    dataset: str = "ginkgo_gdpx2",
    chunk_size: int = 256,
) -> IngestResult:
    """Read GDPx2 into Samples, accounting for every well and gene.

    Give either ``metadata`` and ``counts`` (``Metadata.csv``, ``GDPx2-GeneCounts.h5``)
    or ``h5ad`` (the curated AnnData).

    Parameters
    ----------
    metadata
        ``Metadata.csv`` of the Ginkgo Datapoints package.
    counts
        ``GDPx2-GeneCounts.h5``.
    h5ad
        Curated AnnData instead of the two files.
    dataset
        Dataset name written to ``obs["dataset"]``.
    chunk_size
        Samples read at a time from the counts.

    Examples
    --------
    >>> res = read_gdpx2("Metadata.csv", "GDPx2-GeneCounts.h5")  # doctest: +SKIP
    """
    if (h5ad is None) == (metadata is None and counts is None):
        raise ValueError(
            "give either metadata= and counts= (Metadata.csv, GDPx2-GeneCounts.h5) or h5ad="
        )
    if h5ad is not None:
        path = require_file(h5ad, what="GDPx2 curated AnnData (.h5ad)")
        obs_in, var_in, fh = open_h5ad(path, layer=None)
        try:
            table = obs_in.astype(object).where(obs_in.notna(), "").astype(str)
            table.insert(0, "sequenced_id", obs_in.index.astype(str))
            genes = pd.Index(var_in.index.astype(str))
            symbols = (
                var_in["symbol"].astype(str).to_numpy() if "symbol" in var_in else genes.to_numpy()
            )
            return _read(
                table,
                _Counts(
                    pd.Index(obs_in.index.astype(str)),
                    genes,
                    symbols,
                    lambda idx: h5ad_rows(fh, "X", idx),
                ),
                inputs=[path],
                where=str(path),
                dataset=dataset,
                n_repeated=0,
            )
        finally:
            fh.close()
    if metadata is None or counts is None:
        raise ValueError("give both metadata= (Metadata.csv) and counts= (GDPx2-GeneCounts.h5)")
    meta_path = require_file(metadata, what="GDPx2 metadata table (Metadata.csv)")
    count_path = require_file(counts, what="GDPx2 counts file (GDPx2-GeneCounts.h5)")
    table = read_table(meta_path, what="GDPx2 metadata table")
    f = common.resolve_columns(
        table.columns,
        FIELD_ALIASES,
        required=("sample",),
        where=str(meta_path),
        what="GDPx2 metadata",
    )
    table, n_repeated = _dedupe(table, f["sample"], where=str(meta_path))
    if n_repeated:
        logger.info("%s: removed %d exact repeated rows", meta_path, n_repeated)
    h5 = _H5Counts(count_path)
    try:
        return _read(
            table,
            _Counts(
                h5.samples,
                h5.genes,
                h5.genes.to_numpy(),
                lambda idx: h5.rows(idx, chunk_size=chunk_size),
            ),
            inputs=[meta_path, count_path],
            where=str(meta_path),
            dataset=dataset,
            n_repeated=n_repeated,
        )
    finally:
        h5.close()


def _read(
    table: pd.DataFrame,
    counts: _Counts,
    *,
    inputs: list[Path],
    where: str,
    dataset: str,
    n_repeated: int,
) -> IngestResult:
    """Standardize a GDPx2 metadata table against the samples and genes of its counts."""
    sample_ids, genes, symbols = counts.sample_ids, counts.genes, counts.symbols
    f = common.resolve_columns(
        table.columns,
        FIELD_ALIASES,
        required=("sample", *REQUIRED),
        where=where,
        what="GDPx2 metadata",
    )
    if "well" not in f and not ("row" in f and "col" in f):
        raise SchemaError(
            "row_id",
            "the GDPx2 metadata needs 'row_id' and 'column_id' (or 'well'); "
            f"columns present: {list(table.columns)[:20]}",
            where=where,
        )
    col = {k: table[v].astype(str).str.strip() for k, v in f.items()}
    ids = pd.Index(col["sample"].to_numpy(), dtype=str)
    check_unique(ids, column=f["sample"], where=where, what="sample ids")
    check_unique(sample_ids, column="sample ids", where=str(inputs[-1]), what="count samples")
    extra_ids = pd.Index(sorted(set(sample_ids) - set(ids)), dtype=str)
    stype = col["sample_type"].str.lower()
    is_vehicle = stype.str.startswith(VEHICLE_SAMPLE_TYPE).to_numpy()
    is_pos = stype.str.startswith(POSITIVE_SAMPLE_TYPE).to_numpy()
    if "is_pos_control" in col:
        is_pos |= common.parse_bools(col["is_pos_control"], column=f["is_pos_control"], where=where)
    treated = ~is_vehicle & ~is_pos
    if "dose_unit" in col:
        dose_num = common.parse_numbers(col["dose"], column=f["dose"], where=where)
        dose_unit = col["dose_unit"].to_numpy(dtype=object)
    else:
        dose_num, dose_unit = common.split_quantity(col["dose"], column=f["dose"], where=where)
    dose = common.doses_uM(
        dose_num,
        dose_unit,
        treated=treated,
        vehicle=is_vehicle,
        where=f"{where} column {f.get('dose_unit', f['dose'])!r}",
    )
    time = common.parse_hours(col["time"], column=f["time"], where=where)
    pct, pct_unit = common.split_quantity(
        col["percent_dmso"], column=f["percent_dmso"], where=where, default_unit="%"
    )
    bad_pct = np.isfinite(pct) & (pct_unit != "%")
    if bad_pct.any():
        raise FormatError(
            f"{where}: column {f['percent_dmso']!r} must be a percentage, found units "
            f"{sorted(set(pct_unit[bad_pct]))[:5]}"
        )

    triage = common.Triage(ids, unmatched=extra_ids, unmatched_detail="not in the metadata")
    triage.drop(~ids.isin(sample_ids), "missing_counts", "no sample in the counts")
    triage.drop(is_pos, "positive_control", col["sample_type"].to_numpy())
    triage.drop_unusable_dose_time(
        treated, dose, time, raw={f["dose"]: col["dose"], f["time"]: col["time"]}
    )
    pert_type = np.where(is_vehicle, "vehicle", "compound")
    ledger = triage.ledger(kept_detail=pert_type)
    kept = np.flatnonzero(triage.kept)

    keep_gene = common.record_genes(ledger, genes, drops=common.spike_in_drops(genes, symbols))
    well = (
        common.well_from_row_col(col["row"], col["col"], where=where, columns=(f["row"], f["col"]))
        if "row" in col and "col" in col
        else col["well"].to_numpy()
    )
    obs = pd.DataFrame(
        {
            "dataset": dataset,
            "assay": "DRUG-seq",
            "plate": col["plate"].to_numpy(),
            "well": well,
            "replicate": "",
            "cell_context": None,
            "cell_name": col["cell"].to_numpy(),
            "perturbagen": col["compound"].to_numpy(),
            "compound_id_source": col["compound"].to_numpy(),
            "pert_type": pert_type,
            "is_control": is_vehicle,
            "pert_dose_uM": dose,
            "pert_time_h": time,
            "percent_volume_dmso": pct,
            "sample_type": col["sample_type"].to_numpy(),
        },
        index=ids,
    ).iloc[kept]
    obs = obs.copy()  # a frame of its own: columns are set on it below
    for qc in QC_COLUMNS:
        if qc in table.columns:
            obs[qc] = common.parse_numbers(table[qc].iloc[kept], column=qc, where=where)
    obs["replicate"] = common.replicate_rank(obs)
    contexts, unknown = dataset_cell_contexts(obs["cell_name"].astype(str), dataset="gdpx2")
    obs["cell_context"] = contexts  # cell types named by their Cell Ontology term
    if unknown:
        logger.warning("GDPx2 cell types without a known CL id, kept by name: %s", unknown)
    obs["sample_type"] = common.categorical(obs["sample_type"])
    x = counts.read_rows(sample_ids.get_indexer(ids[kept]))
    var = pd.DataFrame(
        {"symbol": np.asarray(symbols, dtype=object)[keep_gene]},
        index=pd.Index(genes[keep_gene], name="gene_id"),
    )
    return common.assemble(
        x[:, np.flatnonzero(keep_gene)],
        obs,
        var,
        accounts=common.Accounts(ledger, samples=triage.ids, genes=genes),
        origin=common.Origin(
            inputs=inputs,
            params={"source": "gdpx2", "dataset": dataset, "n_repeated_metadata_rows": n_repeated},
            where=where,
        ),
        control_match_keys=CONTROL_MATCH_KEYS,
    )


@register_source(name="gdpx2")
class GDPx2Source(SourceAdapter):
    """Ginkgo GDPx2 DRUG-seq in four primary cell types (Datapoints package or .h5ad)."""

"""VCPI-0001/0002 (Virtual Cell Pharmacology Initiative, DRUG-seq in THP-1) → Samples.

Reads one release as the ``vcpi`` client downloads it:

* ``metadata-<job>.csv``: one row per sequenced well, ``sequenced_id, job_id,
  container_id, row_id, column_id, compound, user_compound_id,
  compound_concentration, compound_concentration_unit, cell_line, timepoint,
  is_control`` and QC metrics (``total_umi_count, ngenes3, percent_mapped,
  percent_mitochondrial, percent_duplicated``, …);
* ``vcpi_<job>_counts.parquet`` (or CSV/TSV): genes × samples, a ``gene_id`` column of
  Ensembl ids (ERCC spike-ins included) and one column per ``sequenced_id``;
* ``chemistry-<job>.csv`` (optional): ``compound, user_compound_id, smiles,
  inchi_key``, ….

Rules: ``DMSO`` wells are the vehicle (dose 0; their concentration is a volume in
``%``); the other ``is_control`` wells (Staurosporin, Brefeldin-A, Rigosertib,
Trichostatin-A) go to the ledger as ``positive_control``; everything else is a
compound, its ``compound_concentration`` in ``compound_concentration_unit`` (nM when
the column is absent) converted to µM; ``timepoint`` such as ``24h`` in hours. Treated
wells without a usable dose go to the ledger as ``missing_dose``; wells without counts
as ``missing_counts``, count columns without metadata as ``missing_metadata``. ERCC
spike-in rows go to the gene ledger (stage ``ingest_genes``, reason ``spike_in``).
Plate = ``container_id``, well from ``row_id``/``column_id`` (``A01``), replicate =
the well's rank among the wells of its condition (``1``, ``2``, …).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from . import _common as common
from ._base import IngestResult, SourceAdapter, register_source
from ._tables import check_unique, read_table, read_wide_counts, require_file, wide_table_columns

__all__ = ["VCPISource", "read_vcpi"]

logger = logging.getLogger(__name__)

VEHICLE_NAMES = ("DMSO",)
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "sample": ("sequenced_id",),
    "compound_id": ("user_compound_id",),
    "compound_uuid": ("compound",),
    "cell": ("cell_line",),
    "time": ("timepoint",),
    "dose": ("compound_concentration",),
    "dose_unit": ("compound_concentration_unit",),
    "is_control": ("is_control",),
    "plate": ("container_id",),
    "row": ("row_id",),
    "col": ("column_id",),
    "job": ("job_id",),
}
REQUIRED = ("sample", "compound_id", "cell", "time", "dose", "is_control", "plate", "row", "col")
QC_COLUMNS = (
    "total_umi_count",
    "ngenes3",
    "percent_mapped",
    "percent_mitochondrial",
    "percent_duplicated",
    "is_edge",
)


def _attach_chemistry(obs: pd.DataFrame, chemistry: pd.DataFrame | None) -> pd.DataFrame:
    """Attach the chemistry table's SMILES and InChIKey as columns (standardization; the
    identities are resolved by :mod:`perturbridge.ids.annotate`). Joined on the compound
    UUID when both tables have it, else on ``user_compound_id``; the cell context stays
    the upstream name."""
    out = obs.copy()
    if chemistry is None:
        return out
    if "compound" in chemistry.columns and "compound_uuid" in out.columns:
        key, by = out["compound_uuid"].astype(str), "compound"
    else:
        key, by = out["compound_id_source"].astype(str), "user_compound_id"
    chem = chemistry.drop_duplicates(by).set_index(by)
    if "inchi_key" in chem.columns:
        out["compound_inchikey"] = common.categorical(chem["inchi_key"].reindex(key).to_numpy())
    if "smiles" in chem.columns:
        out["compound_smiles"] = common.categorical(chem["smiles"].reindex(key).to_numpy())
    return out


def read_vcpi(
    metadata: str | os.PathLike[str],
    counts: str | os.PathLike[str],
    *,
    chemistry: str | os.PathLike[str] | None = None,
    dataset: str = "vcpi",
    default_dose_unit: str = "nM",
    chunk_size: int = 256,
) -> IngestResult:
    """Read a VCPI DRUG-seq release into Samples, accounting for every well and gene.

    Parameters
    ----------
    metadata
        ``metadata-<job>.csv``.
    counts
        ``vcpi_<job>_counts.parquet`` (or a CSV/TSV of the same layout).
    chemistry
        ``chemistry-<job>.csv`` with ``smiles`` and ``inchi_key`` (optional).
    dataset
        Dataset name written to ``obs["dataset"]``.
    default_dose_unit
        Unit of ``compound_concentration`` when the unit column is absent.
    chunk_size
        Samples read at a time from the counts table.

    Examples
    --------
    >>> res = read_vcpi("metadata-vcpi-0001.csv", "vcpi_vcpi-0001_counts.parquet",
    ...                 chemistry="chemistry-vcpi-0001.csv")  # doctest: +SKIP
    """
    meta_path = require_file(metadata, what="VCPI metadata table (metadata-<job>.csv)")
    count_path = require_file(counts, what="VCPI counts table (vcpi_<job>_counts.parquet)")
    chem_path = (
        require_file(chemistry, what="VCPI chemistry table (chemistry-<job>.csv)")
        if chemistry is not None
        else None
    )
    where = str(meta_path)
    table = read_table(meta_path, what="VCPI metadata table")
    f = common.resolve_columns(
        table.columns, FIELD_ALIASES, required=REQUIRED, where=where, what="VCPI metadata"
    )
    col = {k: table[v].astype(str).str.strip() for k, v in f.items()}
    ids = pd.Index(col["sample"].to_numpy(), dtype=str)
    check_unique(ids, column=f["sample"], where=where, what="sequenced ids")
    _, count_cols, _ = wide_table_columns(count_path, where=str(count_path))
    extra_ids = pd.Index(sorted(set(count_cols) - set(ids)), dtype=str)
    name = col["compound_id"]
    is_vehicle = name.str.upper().isin([v.upper() for v in VEHICLE_NAMES]).to_numpy()
    control = common.parse_bools(col["is_control"], column=f["is_control"], where=where)
    dose_raw = common.parse_numbers(col["dose"], column=f["dose"], where=where)
    unit = (
        col["dose_unit"].replace("", default_dose_unit).to_numpy()
        if "dose_unit" in col
        else np.full(len(ids), default_dose_unit, dtype=object)
    )
    treated = ~is_vehicle & ~control
    dose = common.doses_uM(
        dose_raw,
        unit,
        treated=treated,
        vehicle=is_vehicle,
        where=f"{where} column {f.get('dose_unit', 'unit')!r}",
    )
    time = common.parse_hours(col["time"], column=f["time"], where=where)

    triage = common.Triage(ids, unmatched=extra_ids, unmatched_detail=f"not in {meta_path.name}")
    triage.drop(~ids.isin(count_cols), "missing_counts", f"no column in {count_path.name}")
    triage.drop(control & ~is_vehicle, "positive_control", name.to_numpy())
    triage.drop_unusable_dose_time(
        treated, dose, time, raw={f["dose"]: col["dose"], f["time"]: col["time"]}
    )
    pert_type = np.where(is_vehicle, "vehicle", "compound")
    ledger = triage.ledger(kept_detail=pert_type)
    kept = np.flatnonzero(triage.kept)

    chem = None
    if chem_path is not None:
        chem = read_table(chem_path, what="VCPI chemistry table")
        common.resolve_columns(
            chem.columns,
            {"user_compound_id": ("user_compound_id",), "smiles": ("smiles",)},
            required=("user_compound_id", "smiles"),
            where=str(chem_path),
            what="VCPI chemistry table",
        )

    wc = read_wide_counts(
        count_path, what="VCPI counts table", samples=list(ids[kept]), chunk_size=chunk_size
    )
    keep_gene = common.record_genes(ledger, wc.genes, drops=common.spike_in_drops(wc.genes))
    well = common.well_from_row_col(
        col["row"], col["col"], where=where, columns=(f["row"], f["col"])
    )
    obs = pd.DataFrame(
        {
            "dataset": dataset,
            "assay": "DRUG-seq",
            "plate": col["plate"].to_numpy(),
            "well": well,
            "replicate": "",
            "cell_context": col["cell"].to_numpy(),
            "cell_name": col["cell"].to_numpy(),
            "perturbagen": name.to_numpy(),
            "compound_id_source": name.to_numpy(),
            "pert_type": pert_type,
            "is_control": is_vehicle,
            "pert_dose_uM": dose,
            "pert_time_h": time,
            "compound_uuid": col["compound_uuid"].to_numpy() if "compound_uuid" in col else "",
            "compound_smiles": None,
            "job_id": col["job"].to_numpy() if "job" in col else "",
            "dose_source": (
                col["dose"] + " " + pd.Series(unit, index=col["dose"].index)
            ).to_numpy(),
        },
        index=ids,
    ).iloc[kept]
    obs = obs.copy()  # a frame of its own: columns are set on it below
    for qc in QC_COLUMNS:
        if qc in table.columns:
            vals = table[qc].iloc[kept]
            obs[qc] = (
                common.parse_bools(vals, column=qc, where=where)
                if qc == "is_edge"
                else common.parse_numbers(vals, column=qc, where=where)
            )
    obs["replicate"] = common.replicate_rank(obs)
    obs = _attach_chemistry(obs, chem)
    for c in ("compound_uuid", "compound_smiles", "job_id", "dose_source"):
        obs[c] = common.categorical(obs[c])
    genes = wc.genes[keep_gene]
    var = pd.DataFrame({"symbol": genes.to_numpy()}, index=pd.Index(genes, name="gene_id"))
    return common.assemble(
        wc.x[:, np.flatnonzero(keep_gene)],
        obs,
        var,
        accounts=common.Accounts(ledger, samples=triage.ids, genes=wc.genes),
        origin=common.Origin(
            inputs=[meta_path, count_path, *([chem_path] if chem_path else [])],
            params={"source": "vcpi", "dataset": dataset, "default_dose_unit": default_dose_unit},
            where=where,
        ),
    )


@register_source(name="vcpi")
class VCPISource(SourceAdapter):
    """VCPI DRUG-seq (THP-1): metadata CSV, wide counts parquet, chemistry CSV."""

"""Novartis DRUG-seq U2OS MoA Box (and the original DRUG-seq layout) → Samples.

Reads the plate-well metadata table, the UMI count tables and, optionally, the compound
table, the list of robust reference-control wells and the gene annotation:

* ``DRUGseq_U2OS_MoABox_plate_wells_metadata_public.txt`` (tab-separated; one row per
  well: ``batch_id, plate_replicate, plate_barcode, well_id, well_index, well_type,
  cell_line_name, concentration, unit, hours_post_treatment, cmpd_sample_id,
  plate_well``, …). The layout of the original DRUG-seq paper (``meta.csv``:
  ``plate_barcode, plate_replicate, plate_well, readout.comment, well_index,
  cell.line.name, batch, treatment, treatment_dose, treatment_dose_unit, timepoint,
  compound``, …) is read through the same column aliases;
* UMI counts: one or more genes × wells tables (TSV/CSV/parquet; e.g. one per plate,
  as ``Exp[[batch]][[plate]]$UMI.counts`` exported by R ``write.table``), genes
  ``SYMBOL,grch38_<chr>``, wells named ``<plate_barcode>_<well_index>``;
* ``MoABox_compounds_metadata.txt``: ``cmpd_sample_id, inchi_key, smiles, …``;
* ``robust_RC_ReferenceControl_DMSO_wells.txt``: the RC wells used as controls
  (a ``plate_well`` column of ``<plate_barcode>_<well_index>``, or ``plate_barcode``
  with ``well_id``);
* a gene annotation table with ``gene.ID`` and an Ensembl (v98) id column.

Rules: ``well_type`` ``RC`` wells are the DMSO vehicle (only those in the robust list
when one is given; the others go to the ledger as ``control_not_robust``); ``SA``
wells are compounds at ``concentration`` (µM) and ``hours_post_treatment``, except the
listed positive controls (``positive_control``); ``EMPTY`` wells go to the ledger as
``empty_well``, other well types as ``unsupported_well_type``; treated wells without a
usable dose as ``missing_dose``; wells without counts as ``missing_counts`` and count
columns without metadata as ``missing_metadata``. The sample id is
``<plate_barcode>_<well_index>``; plate = ``plate_barcode``, replicate =
``plate_replicate``, the batch is kept in ``batch``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from ..errors import FormatError, SchemaError
from ._base import IngestResult, SourceAdapter, register_source
from ._common import (
    Accounts,
    Origin,
    Triage,
    assemble,
    categorical,
    doses_uM,
    is_missing,
    parse_hours,
    parse_numbers,
    record_genes,
    resolve_columns,
    spike_in_drops,
    well_from_row_col,
)
from ._tables import check_unique, read_table, read_wide_counts, require_file, wide_table_columns

__all__ = ["POSITIVE_CONTROLS", "DrugseqMoABoxSource", "read_drugseq_moabox"]

logger = logging.getLogger(__name__)

#: The positive controls of every MoA Box plate (Homoharringtonine, BTdCPU, BD-11-DV28).
POSITIVE_CONTROLS: tuple[str, ...] = ("EA-18-FP00", "SE-15-AV21", "BD-11-DV28")
#: Known names of the control compound ids.
KNOWN_NAMES: dict[str, str] = {"CB-43-EP73": "DMSO", "EC-27-RY89": "water"}

FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "plate": ("plate_barcode",),
    "well_index": ("well_index",),
    "well": ("well_id", "plate_well"),
    "row": ("row",),
    "col": ("col",),
    "replicate": ("plate_replicate",),
    "batch": ("batch_id", "batch"),
    "well_type": ("well_type", "readout.comment"),
    "compound_id": ("cmpd_sample_id", "treatment", "NSN"),
    "compound_name": ("compound",),
    "dose": ("concentration", "treatment_dose"),
    "dose_unit": ("unit", "treatment_dose_unit"),
    "time": ("hours_post_treatment", "timepoint"),
    "cell": ("cell_line_name", "cell.line.name"),
    "plate_name": ("plate_name",),
}
REQUIRED = ("plate", "well_index", "replicate", "well_type", "compound_id", "dose", "time", "cell")
_WELL = re.compile(r"^[A-Za-z]{1,2}\d{1,2}$")
_ENSEMBL_COLUMNS = ("ensembl_gene_id", "ENSEMBL", "ensembl_id", "ENSG", "gene_id")


def _counts_files(counts: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    paths = [counts] if isinstance(counts, (str, os.PathLike)) else list(counts)
    if not paths:
        raise ValueError("no UMI count table given")
    out = []
    for p in paths:
        q = Path(p)
        if q.is_dir():
            found = sorted(f for f in q.iterdir() if f.is_file() and "umi" in f.name.lower())
            if not found:
                raise FileNotFoundError(f"no UMI count table (name containing 'UMI') in {q}")
            out.extend(found)
        else:
            out.append(require_file(q, what="DRUG-seq UMI count table"))
    return out


def _robust_ids(path: Path, plate: pd.Series, well: np.ndarray, ids: pd.Index) -> set[str]:
    """Sample ids of the robust RC wells listed in ``path``."""
    table = read_table(path, what="robust RC (reference control) well list")
    if "plate_well" in table.columns and table["plate_well"].str.contains("_").all():
        return set(table["plate_well"].astype(str).str.strip())
    if {"plate_barcode", "well_id"} <= set(table.columns):
        listed = set(
            zip(table["plate_barcode"].astype(str), table["well_id"].astype(str), strict=True)
        )
        keys = zip(plate.astype(str), well, strict=True)
        return {i for i, k in zip(ids, keys, strict=True) if k in listed}
    raise SchemaError(
        "plate_well",
        "the robust RC well list needs a 'plate_well' column (<plate_barcode>_<well_index>) "
        f"or 'plate_barcode' and 'well_id'; columns present: {list(table.columns)}",
        where=str(path),
    )


def _gene_table(genes: pd.Index, mapping: Path | None) -> pd.DataFrame:
    """``var`` keyed by the upstream ``SYMBOL,grch38_<chr>`` id: where gene ids plug in."""
    parts = genes.str.rsplit(",", n=1)
    symbol = [p[0] for p in parts]
    chrom = [p[1].removeprefix("grch38_") if len(p) > 1 else "" for p in parts]
    var = pd.DataFrame(
        {"symbol": symbol, "chromosome": chrom}, index=pd.Index(genes, name="gene_id")
    )
    if mapping is not None:
        table = read_table(mapping, what="DRUG-seq gene annotation (gene.ID → Ensembl)")
        f = resolve_columns(
            table.columns,
            {"gene": ("gene.ID", "gene_id_drugseq", "gene"), "ensembl": _ENSEMBL_COLUMNS},
            required=("gene", "ensembl"),
            where=str(mapping),
            what="DRUG-seq gene annotation",
        )
        ens = table.drop_duplicates(f["gene"]).set_index(f["gene"])[f["ensembl"]]
        var["ensembl_gene_id"] = categorical(ens.reindex(genes).to_numpy())
    return var


def _attach_structures(obs: pd.DataFrame, compounds: pd.DataFrame | None) -> pd.DataFrame:
    """Attach the compound table's InChIKey and SMILES as columns by ``cmpd_sample_id``
    (standardization; :mod:`perturbridge.ids.annotate` resolves identities). The cell
    context stays the upstream name."""
    out = obs.copy()
    if compounds is not None:
        key = out["compound_id_source"].astype(str)
        ik = compounds["inchi_key"].reindex(key).to_numpy()
        smi = compounds["smiles"].reindex(key).to_numpy()
        out["compound_inchikey"] = categorical(ik)
        out["compound_smiles"] = categorical(smi)
    return out


def read_drugseq_moabox(
    metadata: str | os.PathLike[str],
    counts: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    compounds: str | os.PathLike[str] | None = None,
    robust_controls: str | os.PathLike[str] | None = None,
    gene_mapping: str | os.PathLike[str] | None = None,
    positive_controls: Sequence[str] = POSITIVE_CONTROLS,
    dataset: str = "novartis_drugseq_u2os_moabox",
    chunk_size: int = 256,
) -> IngestResult:
    """Read DRUG-seq MoA Box plates into Samples, accounting for every well and gene.

    Parameters
    ----------
    metadata
        Plate-well metadata table (MoA Box or original DRUG-seq ``meta.csv`` columns).
    counts
        UMI count table(s): a file, a list of files, or a folder of files whose names
        contain ``UMI``; genes × ``<plate_barcode>_<well_index>`` columns.
    compounds
        ``MoABox_compounds_metadata.txt`` (``cmpd_sample_id``, ``inchi_key``, ``smiles``).
    robust_controls
        List of the robust RC wells; when given, only those RC wells are controls.
    gene_mapping
        Table of ``gene.ID`` → Ensembl id (kept in ``var["ensembl_gene_id"]``).
    positive_controls
        Compound ids whose ``SA`` wells are positive controls; pass ``()`` to keep them
        as compounds (in the original DRUG-seq layout they have a dose response).
    dataset
        Dataset name written to ``obs["dataset"]``.
    chunk_size
        Wells read at a time from a parquet count table.

    Examples
    --------
    >>> res = read_drugseq_moabox(  # doctest: +SKIP
    ...     "DRUGseq_U2OS_MoABox_plate_wells_metadata_public.txt", "umi_counts/",
    ...     compounds="MoABox_compounds_metadata.txt",
    ...     robust_controls="robust_RC_ReferenceControl_DMSO_wells.txt")
    """
    meta_path = require_file(metadata, what="DRUG-seq plate-well metadata table")
    count_paths = _counts_files(counts)
    cmp_path = (
        require_file(compounds, what="MoA Box compound table (MoABox_compounds_metadata.txt)")
        if compounds is not None
        else None
    )
    robust_path = (
        require_file(robust_controls, what="robust RC well list") if robust_controls else None
    )
    map_path = require_file(gene_mapping, what="DRUG-seq gene annotation") if gene_mapping else None
    where = str(meta_path)
    table = read_table(meta_path, what="DRUG-seq plate-well metadata table")
    f = resolve_columns(
        table.columns, FIELD_ALIASES, required=REQUIRED, where=where, what="DRUG-seq metadata"
    )
    col = {k: table[v].astype(str).str.strip() for k, v in f.items()}
    ids = pd.Index((col["plate"] + "_" + col["well_index"]).to_numpy(), dtype=str)
    check_unique(ids, column=f"{f['plate']}_{f['well_index']}", where=where, what="wells")
    # well: well_id, else plate_well when it holds wells (original layout), else row+col
    well = col.get("well")
    if well is not None and well.str.match(_WELL).all():
        well_arr = well.to_numpy(dtype=object)
    elif "row" in col and "col" in col:
        well_arr = well_from_row_col(
            col["row"], col["col"], where=where, columns=(f["row"], f["col"])
        )
    else:
        raise SchemaError(
            "well_id",
            "the DRUG-seq metadata needs 'well_id' with wells such as A01 (or 'row' and 'col'); "
            f"columns present: {list(table.columns)[:20]}",
            where=where,
        )

    # counts: which wells each table holds (header only)
    in_file: dict[str, Path] = {}
    for p in count_paths:
        _, cols, _ = wide_table_columns(p, where=str(p))
        for c in cols:
            if c in in_file:
                raise FormatError(f"well {c!r} appears in two count tables: {in_file[c]} and {p}")
            in_file[c] = p
    extra_ids = pd.Index(sorted(set(in_file) - set(ids)), dtype=str)

    wtype = col["well_type"].str.upper()
    cmpd = col["compound_id"]
    dose_raw = parse_numbers(col["dose"], column=f["dose"], where=where)
    unit = col["dose_unit"].to_numpy() if "dose_unit" in col else "uM"
    time = parse_hours(col["time"], column=f["time"], where=where)
    is_rc = wtype.eq("RC").to_numpy()
    is_sa = wtype.eq("SA").to_numpy()
    treated = is_sa & ~cmpd.isin(list(positive_controls)).to_numpy()
    dose = doses_uM(
        dose_raw,
        unit,
        treated=treated,
        vehicle=is_rc,
        where=f"{where} column {f.get('dose_unit', 'unit')!r}",
    )

    triage = Triage(ids, unmatched=extra_ids, unmatched_detail=f"not in {meta_path.name}")
    triage.drop(~ids.isin(list(in_file)), "missing_counts", "no column in the count tables")
    triage.drop(wtype.eq("EMPTY").to_numpy(), "empty_well", "well_type=EMPTY")
    triage.drop(~(is_rc | is_sa), "unsupported_well_type", ("well_type=" + wtype).to_numpy())
    triage.drop(is_sa & ~treated, "positive_control", cmpd.to_numpy())
    if robust_path is not None:
        robust = _robust_ids(robust_path, col["plate"], well_arr, ids)
        triage.drop(
            is_rc & ~ids.isin(list(robust)), "control_not_robust", "RC well not in the robust list"
        )
    triage.drop_unusable_dose_time(
        treated, dose, time, raw={f["dose"]: col["dose"], f["time"]: col["time"]}
    )
    pert_type = np.where(is_rc, "vehicle", "compound")
    ledger = triage.ledger(kept_detail=pert_type)
    kept = np.flatnonzero(triage.kept)

    cmp_table = None
    if cmp_path is not None:
        ct = read_table(cmp_path, what="MoA Box compound table")
        cf = resolve_columns(
            ct.columns,
            {"id": ("cmpd_sample_id",), "inchi_key": ("inchi_key",), "smiles": ("smiles",)},
            required=("id", "inchi_key", "smiles"),
            where=str(cmp_path),
            what="MoA Box compound table",
        )
        cmp_table = (
            ct.rename(
                columns={cf["id"]: "id", cf["inchi_key"]: "inchi_key", cf["smiles"]: "smiles"}
            )
            .drop_duplicates("id")
            .set_index("id")
        )

    # counts of the kept wells, table by table, genes aligned to the first table
    kept_ids = ids[kept]
    genes: pd.Index | None = None
    blocks: list[sparse.csr_matrix] = []
    order: list[str] = []
    for p in count_paths:
        want = [i for i in kept_ids if in_file.get(i) == p]
        wc = read_wide_counts(
            p, what="DRUG-seq UMI count table", samples=want, chunk_size=chunk_size
        )
        if genes is None:
            genes = wc.genes
        elif not wc.genes.equals(genes):
            if set(wc.genes) != set(genes):
                diff = sorted(set(wc.genes) ^ set(genes))[:5]
                raise FormatError(
                    f"{p}: gene rows differ from those of {count_paths[0]} "
                    f"(first differences {diff})"
                )
            wc.x = wc.x[:, wc.genes.get_indexer(genes)]
        blocks.append(wc.x)
        order.extend(wc.samples)
    if genes is None:  # pragma: no cover - _counts_files never returns an empty list
        raise ValueError("no UMI count table given")
    x = sparse.vstack(blocks).tocsr()[pd.Index(order).get_indexer(kept_ids)]
    keep_gene = record_genes(ledger, genes, drops=spike_in_drops(genes))
    names = (
        col["compound_name"]
        if "compound_name" in col
        else cmpd.map(lambda c: KNOWN_NAMES.get(c, c))
    )
    obs = pd.DataFrame(
        {
            "dataset": dataset,
            "assay": "DRUG-seq",
            "plate": col["plate"].to_numpy(),
            "well": well_arr,
            "replicate": col["replicate"].to_numpy(),
            "cell_context": col["cell"].to_numpy(),
            "cell_name": col["cell"].to_numpy(),
            "perturbagen": names.to_numpy(),
            "compound_id_source": cmpd.to_numpy(),
            "pert_type": pert_type,
            "is_control": is_rc,
            "pert_dose_uM": dose,
            "pert_time_h": time,
            "batch": col["batch"].to_numpy() if "batch" in col else "",
            "well_type_source": wtype.to_numpy(),
            "compound_smiles": None,
        },
        index=ids,
    ).iloc[kept]
    obs = obs.copy()  # a frame of its own: columns are set on it below
    obs = _attach_structures(obs, cmp_table)
    for c in ("batch", "well_type_source", "compound_smiles"):
        obs[c] = categorical(obs[c])
    var = _gene_table(genes[keep_gene], map_path)
    # the InChIKeys come from the compound table (when given); identities are resolved later
    known = obs["compound_inchikey"] if "compound_inchikey" in obs else pd.Series(index=obs.index)
    n_missing_ik = int(is_missing(known).sum())
    logger.info("%s: %d wells kept, %d without an InChIKey", where, len(obs), n_missing_ik)
    return assemble(
        x[:, np.flatnonzero(keep_gene)],
        obs,
        var,
        accounts=Accounts(ledger, samples=triage.ids, genes=genes),
        origin=Origin(
            inputs=[meta_path, *count_paths, *(p for p in (cmp_path, robust_path, map_path) if p)],
            params={
                "source": "drugseq_moabox",
                "dataset": dataset,
                "positive_controls": list(positive_controls),
                "robust_controls": robust_path is not None,
            },
            where=where,
        ),
    )


@register_source(name="drugseq_moabox")
class DrugseqMoABoxSource(SourceAdapter):
    """Novartis DRUG-seq U2OS MoA Box: plate-well metadata + per-plate UMI counts."""

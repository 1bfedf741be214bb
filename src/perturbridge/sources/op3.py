"""OP3 (Open Problems single-cell perturbation, NeurIPS 2023) pseudobulk → Samples.

Reads the upstream pseudobulk AnnData (``.h5ad``): one row per well × cell type, raw
counts in ``X`` (or a named layer), gene symbols as ``var`` index, and the Kaggle
``obs`` columns ``cell_type, sm_name, sm_lincs_id, SMILES, control, dose_uM,
timepoint_hr, plate_name, row, col, well, donor_id, library_id,
cell_count_by_well_celltype, split``.

Rules:

* ``Dimethyl Sulfoxide`` (``LSM-36361``) is the vehicle, dose 0; the other rows with
  ``control`` true (``Belinostat``, ``Dabrafenib``) go to the ledger as
  ``positive_control``; everything else is a compound at ``dose_uM`` µM and
  ``timepoint_hr`` hours; treated rows without a usable dose go to the ledger as
  ``missing_dose``, rows without a time as ``missing_time``;
* the cell context is the Cell Ontology id of the cell type (T cells CL:0000084,
  NK cells CL:0000623, B cells CL:0000236, Myeloid cells CL:0000763, …; other names
  are kept as given), the upstream name stays in ``cell_name``;
* plate from ``plate_name``, well from ``well`` (else ``row`` + ``col``), replicate
  from ``donor_id``, ``n_cells`` from ``cell_count_by_well_celltype``;
* compound identity: ``perturbagen`` = ``sm_name``, ``compound_id_source`` =
  ``sm_lincs_id``, the SMILES in the extra column ``compound_smiles``; ``split``,
  ``library_id`` and ``donor_id`` are kept as extra columns.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import SchemaError
from ..ids.cell_ontology import dataset_cell_contexts
from ._base import (
    IngestResult,
    SourceAdapter,
    register_source,
)
from ._common import (
    Accounts,
    Origin,
    Triage,
    assemble,
    categorical,
    is_missing,
    parse_bools,
    parse_numbers,
    record_genes,
    resolve_columns,
    spike_in_drops,
    to_int64,
)
from ._tables import check_unique, h5ad_rows, open_h5ad, require_file

__all__ = ["OP3Source", "read_op3"]

logger = logging.getLogger(__name__)

VEHICLE_NAMES = ("Dimethyl Sulfoxide", "DMSO")
VEHICLE_IDS = ("LSM-36361",)

FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "cell_type": ("cell_type",),
    "sm_name": ("sm_name",),
    "sm_lincs_id": ("sm_lincs_id",),
    "smiles": ("SMILES", "smiles"),
    "control": ("control",),
    "dose": ("dose_uM",),
    "time": ("timepoint_hr",),
    "plate": ("plate_name",),
    "well": ("well",),
    "row": ("row",),
    "col": ("col",),
    "donor": ("donor_id",),
    "library": ("library_id",),
    "n_cells": ("cell_count_by_well_celltype", "cell_count"),
    "split": ("split",),
}
REQUIRED = ("cell_type", "sm_name", "control", "dose", "time", "plate", "donor")


def read_op3(
    h5ad: str | os.PathLike[str],
    *,
    layer: str | None = None,
    dataset: str = "op3_neurips2023",
) -> IngestResult:
    """Read an OP3 pseudobulk ``.h5ad`` into Samples, accounting for every row.

    Parameters
    ----------
    h5ad
        Pseudobulk AnnData: rows are well × cell type, counts in ``X`` or ``layer``,
        ``var`` indexed by gene symbol.
    layer
        Read counts from this layer instead of ``X``.
    dataset
        Dataset name written to ``obs["dataset"]``.

    Returns
    -------
    IngestResult
        Samples of the vehicle and compound rows, and the ledger of all rows and genes.

    Examples
    --------
    >>> res = read_op3("op3_pseudobulk.h5ad")  # doctest: +SKIP
    >>> res.ledger.summary()  # doctest: +SKIP
    """
    path = require_file(h5ad, what="OP3 pseudobulk AnnData (.h5ad)")
    where = str(path)
    obs_in, var_in, fh = open_h5ad(path, layer=layer)
    try:
        return _read_op3(fh, obs_in, var_in, path=path, layer=layer, dataset=dataset, where=where)
    finally:
        fh.close()


def _read_op3(
    fh: Any,
    obs_in: pd.DataFrame,
    var_in: pd.DataFrame,
    *,
    path: Path,
    layer: str | None,
    dataset: str,
    where: str,
) -> IngestResult:
    f = resolve_columns(
        obs_in.columns, FIELD_ALIASES, required=REQUIRED, where=f"{where} obs", what="OP3 obs"
    )
    if "well" not in f and not ("row" in f and "col" in f):
        raise SchemaError(
            "well",
            "OP3 obs needs a 'well' column (or 'row' and 'col'); "
            f"columns present: {list(obs_in.columns)[:20]}",
            where=f"{where} obs",
        )
    ids = pd.Index(obs_in.index.astype(str))
    check_unique(ids, column="obs index", where=f"{where} obs", what="sample ids")
    col = {k: obs_in[v].astype(object) for k, v in f.items()}
    name = col["sm_name"].astype(str).str.strip()
    lincs = col["sm_lincs_id"].astype(str).str.strip() if "sm_lincs_id" in col else None
    is_vehicle = name.isin(VEHICLE_NAMES).to_numpy()
    if lincs is not None:
        is_vehicle |= lincs.isin(VEHICLE_IDS).to_numpy()
    control = parse_bools(col["control"], column=f["control"], where=f"{where} obs")
    dose = parse_numbers(col["dose"], column=f["dose"], where=f"{where} obs")
    time = parse_numbers(col["time"], column=f["time"], where=f"{where} obs")

    triage = Triage(ids)
    triage.drop(control & ~is_vehicle, "positive_control", name.to_numpy())
    treated = ~is_vehicle & triage.open
    triage.drop_unusable_dose_time(
        treated, dose, time, raw={"dose_uM": col["dose"], "timepoint_hr": col["time"]}
    )
    pert_type = np.where(is_vehicle, "vehicle", "compound")
    ledger = triage.ledger(kept_detail=pert_type)

    genes = pd.Index(var_in.index.astype(str))
    check_unique(genes, column="var index", where=f"{where} var", what="gene symbols")
    keep_gene = record_genes(ledger, genes, drops=spike_in_drops(genes))

    kept = np.flatnonzero(triage.kept)
    well = (
        col["well"].astype(str).to_numpy()
        if "well" in col
        else (col["row"].astype(str) + col["col"].astype(str)).to_numpy()
    )
    obs = pd.DataFrame(
        {
            "dataset": dataset,
            "assay": "scRNA-seq pseudobulk",
            "plate": col["plate"].astype(str).to_numpy(),
            "well": well,
            "replicate": col["donor"].astype(str).to_numpy(),
            "cell_context": None,
            "cell_name": col["cell_type"].astype(str).to_numpy(),
            "perturbagen": name.to_numpy(),
            "compound_id_source": categorical(lincs if lincs is not None else name),
            "pert_type": pert_type,
            "is_control": is_vehicle,
            "pert_dose_uM": np.where(is_vehicle, 0.0, dose),
            "pert_time_h": time,
            "n_cells": (
                to_int64(parse_numbers(col["n_cells"], column=f["n_cells"], where=f"{where} obs"))
                if "n_cells" in col
                else pd.NA
            ),
            "compound_smiles": categorical(col["smiles"]) if "smiles" in col else None,
            "donor_id": col["donor"].astype(str).to_numpy(),
            "library_id": categorical(col["library"]) if "library" in col else None,
            "split": categorical(col["split"]) if "split" in col else None,
            "control_source": control,
        },
        index=ids,
    ).iloc[kept]
    obs = obs.copy()  # a frame of its own: columns are set on it below
    contexts, unknown = dataset_cell_contexts(obs["cell_name"].astype(str), dataset="op3")
    obs["cell_context"] = contexts  # cell types named by their Cell Ontology term
    if unknown:
        logger.warning("OP3 cell types without a known CL id, kept by name: %s", unknown)
    for c in ("compound_smiles", "library_id", "split", "donor_id"):
        obs[c] = categorical(obs[c])
    key = "X" if layer is None else f"layers/{layer}"
    x = h5ad_rows(fh, key, kept)[:, np.flatnonzero(keep_gene)]
    symbols = genes[keep_gene]
    var = pd.DataFrame({"symbol": symbols.to_numpy()}, index=pd.Index(symbols, name="gene_id"))
    n_missing_smiles = int(is_missing(obs["compound_smiles"]).sum()) if "smiles" in col else 0
    logger.info("%s: %d rows kept, %d without SMILES", where, len(obs), n_missing_smiles)
    return assemble(
        x,
        obs,
        var,
        accounts=Accounts(ledger, samples=ids, genes=genes),
        origin=Origin(
            inputs=[path],
            params={"source": "op3", "dataset": dataset, "layer": layer},
            where=where,
        ),
    )


@register_source(name="op3")
class OP3Source(SourceAdapter):
    """OP3 / Open Problems NeurIPS 2023 PBMC pseudobulk (.h5ad, counts, gene symbols)."""

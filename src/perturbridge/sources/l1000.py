"""L1000 (LINCS Connectivity Map) level 3 → Samples.

Reads a level 3 GCTX or GCT (log2 QNORM expression of the landmark genes) and its
sample metadata, taken from the file's column metadata or from a separate
``inst_info`` table (CMap 2017 ``inst_info`` or CLUE 2020 ``instinfo_beta`` spellings).

Rules:

* plate from ``rna_plate`` (else ``det_plate``), well from ``rna_well`` (else
  ``det_well``), replicate from the ``_X<n>`` suffix of the plate name;
* dose in µM and time in hours from ``pert_dose``/``pert_dose_unit`` and
  ``pert_time``/``pert_time_unit``; the CMap missing value ``-666`` is missing;
* ``ctl_vehicle`` (DMSO and other vehicles) are the controls, dose 0;
  ``trt_cp`` are compounds; ``trt_poscon`` go to the ledger as ``positive_control``,
  ``ctl_untrt`` as ``untreated_control``, genetic and other perturbation types as
  ``unsupported_pert_type``; treated samples without a usable dose as
  ``missing_dose``; ``qc_pass == 0`` (when present) as ``qc_fail``;
* genes keyed by Entrez id (``pr_gene_id``) with ``pr_gene_symbol`` as symbol; the
  probe id is kept in ``var["probe_id"]``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..errors import FormatError, SchemaError
from ..io import provenance
from ..io.gct import GCTXFile, read_gct
from ..ledger import Ledger
from ..samples import build_samples
from ..units import dose_to_uM, time_to_h
from ._base import IngestResult, SourceAdapter, register_source

__all__ = ["L1000Source", "read_l1000"]

logger = logging.getLogger(__name__)

STAGE = "ingest"
CMAP_MISSING = {"-666", "-666.0", "na", "nan", "", "none"}

#: accepted spellings of each metadata field, first match wins
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "sample_id": ("inst_id", "sample_id", "distil_id", "id"),
    "pert_id": ("pert_id",),
    "pert_iname": ("pert_iname", "cmap_name", "pert_name"),
    "pert_type": ("pert_type",),
    "pert_dose": ("pert_dose",),
    "pert_dose_unit": ("pert_dose_unit",),
    "pert_time": ("pert_time",),
    "pert_time_unit": ("pert_time_unit",),
    "cell_id": ("cell_id", "cell_iname", "cell_mfc_name"),
    "plate": ("rna_plate", "det_plate"),
    "well": ("rna_well", "det_well"),
}
REQUIRED = (
    "pert_iname",
    "pert_type",
    "pert_dose",
    "pert_dose_unit",
    "pert_time",
    "pert_time_unit",
    "cell_id",
    "plate",
    "well",
)

PERT_TYPE_MAP: dict[str, str] = {
    "ctl_vehicle": "vehicle",
    "ctl_vehicle.cns": "vehicle",
    "trt_cp": "compound",
    "trt_poscon": "positive_control",
    "ctl_untrt": "untreated",
    "ctl_untrt.cns": "untreated",
}
DROP_REASON: dict[str, str] = {
    "positive_control": "positive_control",
    "untreated": "untreated_control",
    "other": "unsupported_pert_type",
}
_REPLICATE = re.compile(r"_(X\d+)(?:_|$)")


def _resolve_fields(columns: Sequence[str], *, where: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for field, aliases in FIELD_ALIASES.items():
        for a in aliases:
            if a in columns:
                found[field] = a
                break
    missing = [f for f in REQUIRED if f not in found]
    if missing:
        raise SchemaError(
            missing[0],
            f"L1000 metadata lacks required field(s) {missing} (accepted spellings: "
            f"{ {m: FIELD_ALIASES[m] for m in missing} }); columns present: {list(columns)[:15]}",
            where=where,
        )
    return found


def _is_missing(s: pd.Series) -> np.ndarray:
    return s.isna().to_numpy() | s.astype(str).str.strip().str.lower().isin(CMAP_MISSING).to_numpy()


def _read_table(path: Path) -> pd.DataFrame:
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise FormatError(f"{path}: cannot parse the metadata table: {err}") from err


class _Level3:
    """A level 3 file opened for metadata; the matrix is read later, by sample index."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise FileNotFoundError(f"L1000 level 3 file not found: {path}")
        self.path = path
        suffix = path.suffix.lower()
        self._gctx: GCTXFile | None = None
        if suffix == ".gctx":
            self._gctx = GCTXFile(path)
            self.row_meta = self._gctx.row_meta()
            self.col_meta = self._gctx.col_meta()
        elif suffix == ".gct":
            g = read_gct(path)
            self._data = g.data
            self.row_meta, self.col_meta = g.row_meta, g.col_meta
        else:
            raise FormatError(f"{path}: expected a .gct or .gctx file")

    def samples_by_genes(self, idx: np.ndarray) -> np.ndarray:
        """The matrix of the samples at ``idx``, samples × genes (GCTX: only those read)."""
        if self._gctx is not None:
            return np.asarray(self._gctx.read(col_idx=idx)).T
        return np.asarray(self._data[:, idx]).T

    def close(self) -> None:
        if self._gctx is not None:
            self._gctx.close()


def _gene_table(row_meta: pd.DataFrame, *, where: str) -> pd.DataFrame:
    probe = row_meta.index.astype(str)
    if "pr_gene_id" in row_meta.columns:
        entrez = row_meta["pr_gene_id"].astype(str).str.replace(r"\.0$", "", regex=True)
    else:
        entrez = pd.Series(probe, index=row_meta.index)
    symbol = (
        row_meta["pr_gene_symbol"].astype(str)
        if "pr_gene_symbol" in row_meta.columns
        else pd.Series(probe, index=row_meta.index)
    )
    var = pd.DataFrame(
        {"symbol": symbol.to_numpy(), "entrez_id": entrez.to_numpy(), "probe_id": probe},
    )
    if entrez.duplicated().any() or _is_missing(entrez).any():
        logger.warning("%s: Entrez ids are missing or repeated; genes keyed by probe id", where)
        var.index = pd.Index(probe, name="gene_id")
    else:
        var.index = pd.Index(entrez.to_numpy(), name="gene_id")
    return var


def read_l1000(
    level3: str | os.PathLike[str],
    *,
    inst_info: str | os.PathLike[str] | None = None,
    dataset: str = "lincs_l1000",
) -> IngestResult:
    """Read L1000 level 3 into Samples, accounting for every sample in the ledger.

    Parameters
    ----------
    level3
        ``.gctx`` or ``.gct`` file, genes × samples.
    inst_info
        Optional sample metadata table (TSV, or CSV by extension) keyed by
        ``inst_id``/``sample_id``; without it the file's column metadata is used.
    dataset
        Dataset name written to ``obs["dataset"]``.

    Returns
    -------
    IngestResult
        Samples of the kept vehicle and compound wells, and the ledger of all wells.

    Examples
    --------
    >>> res = read_l1000("test_l1000.gct")  # doctest: +SKIP
    >>> res.ledger.summary()  # doctest: +SKIP
    """
    path = Path(level3)
    level = _Level3(path)
    try:
        return _read_l1000(level, inst_info=inst_info, dataset=dataset)
    finally:
        level.close()


def _read_l1000(
    level: _Level3, *, inst_info: str | os.PathLike[str] | None, dataset: str
) -> IngestResult:
    path, row_meta, col_meta = level.path, level.row_meta, level.col_meta
    sample_ids = col_meta.index.astype(str)
    where = str(path)
    if inst_info is not None:
        meta_path = Path(inst_info)
        table = _read_table(meta_path)
        fields = _resolve_fields(table.columns, where=str(meta_path))
        if "sample_id" not in fields:
            raise SchemaError(
                "inst_id",
                f"metadata table needs a sample id column (one of {FIELD_ALIASES['sample_id']})",
                where=str(meta_path),
            )
        ids = table[fields["sample_id"]].astype(str)
        dup = ids[ids.duplicated(keep=False)]
        if len(dup):
            raise SchemaError(
                fields["sample_id"],
                "sample ids must be unique",
                list(pd.unique(dup))[:5],
                where=str(meta_path),
            )
        table.index = pd.Index(ids)
        meta = table.reindex(sample_ids)
        no_meta = ~sample_ids.isin(table.index)
        where = str(meta_path)
    else:
        meta = col_meta.astype(str).copy()
        fields = _resolve_fields(meta.columns, where=where)
        no_meta = np.zeros(len(sample_ids), dtype=bool)
    meta.index = sample_ids
    ledger = Ledger()
    f = {k: meta[v] for k, v in fields.items()}
    raw_type = f["pert_type"].astype(str)
    pert_type = raw_type.map(PERT_TYPE_MAP).fillna("other").to_numpy(dtype=object)
    pert_type[no_meta] = "other"
    is_vehicle = pert_type == "vehicle"
    dose_missing = _is_missing(f["pert_dose"])
    dose = np.where(is_vehicle, 0.0, np.nan)
    treated = pert_type == "compound"
    check = treated & ~dose_missing
    dose[check] = dose_to_uM(
        f["pert_dose"][check],
        f["pert_dose_unit"][check].to_numpy(),
        where=f"{where} column {fields['pert_dose_unit']!r}",
    )
    time_missing = _is_missing(f["pert_time"])
    modelled = is_vehicle | treated
    tcheck = modelled & ~time_missing
    time = np.full(len(sample_ids), np.nan)
    time[tcheck] = time_to_h(
        f["pert_time"][tcheck],
        f["pert_time_unit"][tcheck].to_numpy(),
        where=f"{where} column {fields['pert_time_unit']!r}",
    )
    reason = pd.Series("", index=sample_ids, dtype=object)
    detail = pd.Series("", index=sample_ids, dtype=object)
    reason[no_meta] = "missing_metadata"
    detail[no_meta] = f"not in {inst_info}"
    for kind, why in DROP_REASON.items():
        m = (pert_type == kind) & (reason == "").to_numpy()
        reason[m] = why
        detail[m] = raw_type[m].to_numpy()
    open_ = (reason == "").to_numpy()
    bad_dose = open_ & treated & ~(np.isfinite(dose) & (dose > 0))
    reason[bad_dose] = "missing_dose"
    detail[bad_dose] = ("pert_dose=" + f["pert_dose"].astype(str)[bad_dose]).to_numpy()
    open_ = (reason == "").to_numpy()
    bad_time = open_ & ~np.isfinite(time)
    reason[bad_time] = "missing_time"
    detail[bad_time] = ("pert_time=" + f["pert_time"].astype(str)[bad_time]).to_numpy()
    if "qc_pass" in meta.columns:
        open_ = (reason == "").to_numpy()
        qc_bad = open_ & (meta["qc_pass"].astype(str).str.strip().isin(["0", "0.0", "False"]))
        reason[qc_bad] = "qc_fail"
        detail[qc_bad] = "qc_pass=0"
    kept = (reason == "").to_numpy()
    for why in pd.unique(reason[~kept]):
        m = (reason == why).to_numpy()
        ledger.drop(sample_ids[m], stage=STAGE, reason=str(why), detail=detail[m].to_numpy())
    ledger.keep(sample_ids[kept], stage=STAGE, detail=pert_type[kept])

    plate = f["plate"].astype(str)
    replicate = plate.str.extract(_REPLICATE, expand=False).fillna("X1")
    obs = pd.DataFrame(
        {
            "dataset": dataset,
            "assay": "L1000",
            "plate": plate.to_numpy(),
            "well": f["well"].astype(str).to_numpy(),
            "replicate": replicate.to_numpy(),
            "cell_context": f["cell_id"].astype(str).to_numpy(),
            "cell_name": f["cell_id"].astype(str).to_numpy(),
            "perturbagen": f["pert_iname"].astype(str).to_numpy(),
            "compound_id_source": (
                f["pert_id"].astype(str).to_numpy()
                if "pert_id" in f
                else f["pert_iname"].astype(str).to_numpy()
            ),
            "compound_inchikey": None,
            "pubchem_cid": pd.NA,
            "pert_type": pert_type,
            "is_control": is_vehicle,
            "pert_dose_uM": dose,
            "pert_time_h": time,
            "n_cells": pd.NA,
            "total_counts": np.nan,
            "pert_type_source": raw_type.to_numpy(),
        },
        index=sample_ids,
    ).iloc[np.flatnonzero(kept)]
    obs.loc[obs["is_control"], "compound_id_source"] = obs.loc[obs["is_control"], "perturbagen"]
    var = _gene_table(row_meta, where=str(path))
    inputs: list[Any] = [path] + ([Path(inst_info)] if inst_info is not None else [])
    prov = provenance(step="ingest", inputs=inputs, params={"source": "l1000", "dataset": dataset})
    samples = build_samples(
        level.samples_by_genes(np.flatnonzero(kept)),
        obs,
        var,
        value_kind="log_expression",
        provenance=prov,
        where=str(path),
    )
    ledger.check_accounts_for(sample_ids, stage=STAGE)
    return IngestResult(samples, ledger)


@register_source
class L1000Source(SourceAdapter):
    """LINCS L1000 level 3 (GCTX/GCT) with column metadata or an inst_info table."""

    name: ClassVar[str] = "l1000"
    assay: ClassVar[str] = "L1000"
    description: ClassVar[str] = "LINCS L1000 level 3 GCTX/GCT + inst_info"
    expected_files: ClassVar[tuple[str, ...]] = (
        "level 3 *.gctx or *.gct",
        "inst_info (optional when the GCT(X) has column metadata)",
    )
    value_kind: ClassVar[str] = "log_expression"

    def ingest(self, **kwargs: Any) -> IngestResult:
        return read_l1000(**kwargs)

"""L1000 (LINCS Connectivity Map) level 3 → Samples.

Reads level 3 (log2 QNORM expression) in two layouts:

* **one file**: a level 3 GCTX or GCT with its sample metadata in the column metadata,
  or in a separate ``inst_info`` table (CMap 2017 ``inst_info`` or CLUE 2020
  ``instinfo_beta`` spellings), e.g. the cmapPy plate ``test_l1000.gct``;
* **the GEO series layout**: GSE92742 (phase I) and GSE70138 (phase II) ship level 3 as
  one GCTX with ids only (``*_Level3_INF_mlr12k_n<samples>x12328*.gctx``, rows keyed by
  Entrez id) plus tables ``*_inst_info*.txt`` (one row per instance), ``*_gene_info*.txt``
  (``pr_gene_id, pr_gene_symbol, pr_is_lm, pr_is_bing``), ``*_cell_info*.txt`` and
  ``*_pert_info*.txt`` (``pert_id, pert_iname, pert_type, inchi_key, canonical_smiles,
  pubchem_cid``). Pass the paths, or ``folder=`` and ``phase=`` to find them by their GEO
  names. Phase II spells plate and well ``det_plate``/``det_well``.

Rules:

* the GCTX is read lazily: only the instances kept and the genes selected are read,
  ``chunk_size`` instances at a time. ``genes="landmark"`` (default) keeps the 978
  landmark genes (``pr_is_lm``; ``pr_is_lmark``/``is_lm`` accepted), ``"bing"`` the
  best-inferred genes (landmarks included), ``"all"`` every row (12,328 in GEO);
* level 4/5 files (z-scores, signatures) are refused: by the GEO file name
  (``_Level4_``/``_Level5_``), by the metadata (``provenance_code`` with ``ZS``/``MOZ``
  steps, ``zmad_ref``, ``distil_*``/``brew_prefix`` fields, signature column ids
  ``<plate>:<perturbagen>:<dose>``), or by the values (many negative values, or values
  beyond log2 range, i.e. level 2 intensities);
* plate from ``rna_plate`` (else ``det_plate``), well from ``rna_well`` (else
  ``det_well``), replicate from the ``_X<n>`` suffix of the plate name;
* dose in µM and time in hours from ``pert_dose``/``pert_dose_unit`` and
  ``pert_time``/``pert_time_unit``; the CMap missing value ``-666`` is missing;
* ``ctl_vehicle`` (DMSO and other vehicles) are the controls, dose 0;
  ``trt_cp`` are compounds; ``trt_poscon`` go to the ledger as ``positive_control``,
  ``ctl_untrt`` as ``untreated_control``, genetic and other perturbation types as
  ``unsupported_pert_type``; treated samples without a usable dose as
  ``missing_dose``; ``qc_pass == 0`` (when present) as ``qc_fail``; instances of the
  GCTX without metadata as ``missing_metadata`` and metadata rows without a GCTX column
  as ``missing_expression``;
* ``pert_info`` fills ``compound_inchikey`` (``InChIKey=`` prefixes stripped),
  ``pubchem_cid`` and ``compound_smiles`` by ``pert_id`` (a long BRD id such as
  ``BRD-K76908866-001-01-1`` also matches its short form); ``cell_info`` adds
  ``cell_primary_site``, ``cell_sample_type``, ``cell_subtype`` and ``cell_base_id``;
* genes keyed by Entrez id (``pr_gene_id``) with ``pr_gene_symbol`` as symbol; a probe
  id is kept in ``var["probe_id"]``. Every GCTX row is in the ledger (stage
  ``ingest_genes``): kept, or ``not_landmark``/``not_bing``/``missing_gene_info``;
* ``dataset`` is ``lincs_l1000_phase1``/``lincs_l1000_phase2`` for the GEO series (phase
  given, or read from a ``GSE92742``/``GSE70138`` file name), else ``lincs_l1000``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from ...errors import FormatError, SchemaError
from ...io import provenance
from ...io.gct import GCTXFile, read_gct
from ...ledger import Ledger
from ...progress import track
from ...samples import build_samples
from ...units import dose_to_uM, time_to_h
from .._base import IngestResult, SourceAdapter, register_source
from .._common import (
    DATASET_FACTS,
    GENE_STAGE,
    Triage,
    categorical,
    parse_numbers,
    resolve_columns,
    to_int64,
)
from .._tables import check_unique, read_table
from .files import L1000Files, L1000Tables, locate_files
from .genes import gene_annotation, gene_var, select_genes

__all__ = ["Genes", "L1000Source", "read_l1000"]

logger = logging.getLogger(__name__)

STAGE = "ingest"
CMAP_MISSING = {"-666", "-666.0", "na", "nan", "", "none"}

Genes = Literal["landmark", "bing", "all"]
Phase = Literal[1, 2]


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
PERT_ALIASES: dict[str, tuple[str, ...]] = {
    "pert_id": ("pert_id",),
    "inchi_key": ("inchi_key", "InChIKey", "inchikey"),
    "smiles": ("canonical_smiles", "smiles"),
    "pubchem_cid": ("pubchem_cid",),
}
#: cell_info column → obs column
CELL_COLUMNS: dict[str, str] = {
    "primary_site": "cell_primary_site",
    "sample_type": "cell_sample_type",
    "subtype": "cell_subtype",
    "base_cell_id": "cell_base_id",
}

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
#: ``qc_pass`` spellings (compared lower-case, stripped)
_QC_PASS = frozenset({"1", "1.0", "true"})
_QC_FAIL = frozenset({"0", "0.0", "false"})
_REPLICATE = re.compile(r"_(X\d+)(?:_|$)")
_LEVEL_IN_NAME = re.compile(r"_Level(\d)_", re.IGNORECASE)
_INCHIKEY = re.compile(r"^[A-Z]{14}-[A-Z]{10}-[A-Z]$")
_SHORT_BRD = re.compile(r"^(BRD-[A-Z]\d{8})-")
#: a level 5 signature id: brew prefix (plate without replicate), perturbagen, dose
_SIGNATURE_ID = re.compile(r"^[^:]+_\d+H:[^:]+:[^:]+$")
#: metadata fields that only level 5 signatures carry
_LEVEL5_FIELDS = ("distil_id", "distil_nsample", "distil_ss", "distil_cc_q75", "brew_prefix")
#: share of negative values above which a matrix is taken for z-scores, not log2 expression
_MAX_NEGATIVE = 0.01
#: log2 expression of L1000 never comes near this; larger values are linear intensities
_MAX_LOG2 = 32.0


# ------------------------------------------------------------------------------------
# The level 3 matrix
# ------------------------------------------------------------------------------------


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
            try:
                self.row_meta = self._gctx.row_meta()
                self.col_meta = self._gctx.col_meta()
            except BaseException:
                self._gctx.close()
                raise
        elif suffix == ".gct":
            g = read_gct(path)
            self._data = g.data
            self.row_meta, self.col_meta = g.row_meta, g.col_meta
        else:
            raise FormatError(f"{path}: expected a .gct or .gctx file")

    def read(
        self, idx: np.ndarray, genes: np.ndarray, *, chunk_size: int, progress: bool
    ) -> np.ndarray:
        """Samples ``idx`` × genes ``genes``; from a GCTX only that block, in chunks."""
        n, g = len(idx), len(genes)
        if self._gctx is None:
            out = np.asarray(self._data[np.ix_(genes, idx)]).T
            _check_log2(out, where=str(self.path))
            return out
        out = np.empty((n, g), dtype=self._gctx.dtype)
        starts = range(0, n, max(1, chunk_size))
        for s in track(starts, description="reading level 3", enabled=progress):
            block = np.asarray(self._gctx.read(col_idx=idx[s : s + chunk_size], row_idx=genes)).T
            _check_log2(block, where=str(self.path))
            out[s : s + chunk_size] = block
        return out

    def close(self) -> None:
        if self._gctx is not None:
            self._gctx.close()


def _not_level3(where: str, what: str) -> FormatError:
    return FormatError(
        f"{where}: not L1000 level 3 (log2 QNORM expression of instances): {what}. "
        "Ingest the level 3 file (GEO: *_Level3_INF_mlr12k_*.gctx); levels 4 and 5 hold "
        "z-scores and signatures, computed against plate populations, not vehicle wells"
    )


def _check_level_name(path: Path) -> None:
    m = _LEVEL_IN_NAME.search(path.name)
    if m and m.group(1) != "3":
        raise _not_level3(str(path), f"the file name says level {m.group(1)}")


def _check_level_meta(row_meta: pd.DataFrame, col_meta: pd.DataFrame, *, where: str) -> None:
    """Refuse level 4/5 files the metadata identifies."""
    for axis, meta in (("column", col_meta), ("row", row_meta)):
        if "provenance_code" in meta.columns:
            codes = pd.unique(meta["provenance_code"].astype(str))
            steps = {s.split(",")[0] for c in codes for s in str(c).split("+")}
            if any(s.startswith(("MOZ", "MODZ")) for s in steps):
                raise _not_level3(
                    where, f"{axis} provenance_code {list(codes[:3])} has a MODZ step (level 5)"
                )
            if any(s.startswith("ZS") for s in steps):
                raise _not_level3(
                    where,
                    f"{axis} provenance_code {list(codes[:3])} has a z-score step (level 4)",
                )
        if "zmad_ref" in meta.columns:
            raise _not_level3(where, f"{axis} metadata has 'zmad_ref' (level 4 robust z-scores)")
        sig = [f for f in _LEVEL5_FIELDS if f in meta.columns]
        if sig:
            raise _not_level3(where, f"{axis} metadata has signature fields {sig} (level 5)")
    ids = col_meta.index.astype(str)
    if len(ids) and np.mean([bool(_SIGNATURE_ID.match(i)) for i in ids[:1000]]) > 0.9:
        raise _not_level3(
            where,
            f"the column ids are signature ids <plate>:<perturbagen>:<dose> (level 5), e.g. "
            f"{list(ids[:2])}; level 3 columns are instances <plate>:<well>",
        )


def _check_log2(x: np.ndarray, *, where: str) -> None:
    """Refuse values that are not log2 expression (z-scores, linear intensities)."""
    if x.size == 0:
        return
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return
    neg = float(np.mean(finite < 0))
    if neg > _MAX_NEGATIVE:
        raise _not_level3(
            where,
            f"{neg:.0%} of the values are negative (min {float(finite.min()):.3g}); level 3 "
            "log2 expression is about 0-16, so these look like level 4/5 z-scores",
        )
    top = float(finite.max())
    if top > _MAX_LOG2:
        raise _not_level3(
            where,
            f"values reach {top:.4g}, beyond log2 range; these look like linear-scale "
            "intensities (level 2 GEX)",
        )


# ------------------------------------------------------------------------------------
# Compounds and cells
# ------------------------------------------------------------------------------------


def _na(values: pd.Series) -> pd.Series:
    s = values.astype(str).str.strip()
    return s.mask(s.str.lower().isin(CMAP_MISSING), None)


def _pert_table(path: Path) -> pd.DataFrame:
    table = read_table(path, what="L1000 pert_info table")
    where = str(path)
    cols = resolve_columns(
        table.columns, PERT_ALIASES, required=("pert_id",), where=where, what="pert_info"
    )
    ids = table[cols["pert_id"]].astype(str).str.strip()
    check_unique(ids, column=cols["pert_id"], where=where, what="pert ids")
    out = pd.DataFrame(index=pd.Index(ids.to_numpy()))
    if "inchi_key" in cols:
        key = _na(table[cols["inchi_key"]]).str.replace(r"(?i)^inchikey=", "", regex=True)
        bad = key.notna() & ~key.fillna("").str.fullmatch(_INCHIKEY.pattern)
        if bad.any():
            logger.warning(
                "%s: %d values of %r are not standard InChIKeys and are left empty, e.g. %s",
                where,
                int(bad.sum()),
                cols["inchi_key"],
                list(pd.unique(key[bad]))[:3],
            )
        out["inchi_key"] = key.mask(bad, None).to_numpy()
    if "smiles" in cols:
        out["smiles"] = _na(table[cols["smiles"]]).to_numpy()
    if "pubchem_cid" in cols:
        raw = _na(table[cols["pubchem_cid"]])
        cid = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        bad = raw.notna().to_numpy() & ~(np.isfinite(cid) & (cid > 0) & (cid == np.round(cid)))
        if bad.any():  # e.g. an MLSMR id such as 'MLS003116075' in the CID column
            logger.warning(
                "%s: %d values of %r are not PubChem CIDs and are left empty, e.g. %s",
                where,
                int(bad.sum()),
                cols["pubchem_cid"],
                list(pd.unique(raw[bad]))[:3],
            )
            cid[bad] = np.nan
        out["pubchem_cid"] = cid
    return out


def _join_perts(obs: pd.DataFrame, pert: pd.DataFrame) -> pd.DataFrame:
    ids = obs["compound_id_source"].astype(str)
    short = ids.str.extract(_SHORT_BRD, expand=False)
    key = ids.where(ids.isin(pert.index), short.where(short.isin(pert.index), ids))
    out = obs.copy()
    n_found = int(key.isin(pert.index).sum())
    logger.info("pert_info: %d of %d kept samples matched by pert_id", n_found, len(obs))
    if "inchi_key" in pert.columns:
        out["compound_inchikey"] = categorical(pert["inchi_key"].reindex(key).to_numpy())
    if "smiles" in pert.columns:
        out["compound_smiles"] = categorical(pert["smiles"].reindex(key).to_numpy())
    if "pubchem_cid" in pert.columns:
        out["pubchem_cid"] = to_int64(pert["pubchem_cid"].reindex(key).to_numpy(dtype=float))
    return out


def _join_cells(obs: pd.DataFrame, path: Path) -> pd.DataFrame:
    table = read_table(path, what="L1000 cell_info table")
    where = str(path)
    cols = resolve_columns(
        table.columns,
        {"cell_id": ("cell_id", "cell_iname")},
        required=("cell_id",),
        where=where,
        what="cell_info",
    )
    ids = table[cols["cell_id"]].astype(str).str.strip()
    check_unique(ids, column=cols["cell_id"], where=where, what="cell ids")
    table.index = pd.Index(ids.to_numpy())
    out = obs.copy()
    key = obs["cell_name"].astype(str)
    for src, dst in CELL_COLUMNS.items():
        if src in table.columns:
            out[dst] = categorical(_na(table[src]).reindex(key).to_numpy())
    return out


# ------------------------------------------------------------------------------------
# Instances
# ------------------------------------------------------------------------------------


def _resolve_fields(columns: Iterable[str], *, where: str) -> dict[str, str]:
    return resolve_columns(
        columns, FIELD_ALIASES, required=REQUIRED, where=where, what="L1000 metadata"
    )


def _is_missing(s: pd.Series) -> np.ndarray:
    return s.isna().to_numpy() | s.astype(str).str.strip().str.lower().isin(CMAP_MISSING).to_numpy()


def _metadata(
    level: _Level3, files: L1000Files
) -> tuple[pd.DataFrame, dict[str, str], pd.Index, np.ndarray, str]:
    """Metadata per input instance (GCTX columns, then inst_info rows absent from it).

    Returns the metadata (indexed by instance id), the resolved fields, the instance ids,
    the GCTX column of each instance (-1: not in the GCTX) and the metadata's file.
    """
    col_ids = level.col_meta.index.astype(str)
    if files.inst_info is None:
        meta = level.col_meta.astype(str).copy()
        meta.index = col_ids
        fields = _resolve_fields(meta.columns, where=str(level.path))
        return meta, fields, pd.Index(col_ids), np.arange(len(col_ids)), str(level.path)
    meta_path = files.inst_info
    table = read_table(meta_path, what="L1000 inst_info table")
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
    extra = table.index[~table.index.isin(col_ids)]
    all_ids = pd.Index(col_ids).append(extra)
    meta = table.reindex(all_ids)
    column = np.concatenate([np.arange(len(col_ids)), np.full(len(extra), -1)])
    return meta, fields, all_ids, column, str(meta_path)


def _qc_fail(values: pd.Series, *, where: str) -> np.ndarray:
    """True where ``qc_pass`` says the instance failed (``0``/``false``, any case).

    ``1``/``true`` pass; a missing value (empty, NA, ``-666``) is no verdict and passes;
    anything else is an error naming the file and the first values.
    """
    low = values.astype(object).where(values.notna(), "").astype(str).str.strip().str.lower()
    fail = low.isin(_QC_FAIL).to_numpy()
    bad = ~fail & ~low.isin(_QC_PASS).to_numpy() & ~_is_missing(values)
    if bad.any():
        shown = values[bad].astype(str)
        raise FormatError(
            f"{where}: column 'qc_pass' has {int(bad.sum())} value(s) that are not 0/1 or "
            f"true/false: {list(dict.fromkeys(shown))[:5]} (first instances "
            f"{list(shown.index[:5])}); a missing verdict is empty, NA or -666"
        )
    return fail


def _check_positive_doses(
    dose: np.ndarray,
    check: np.ndarray,
    f: dict[str, pd.Series],
    fields: dict[str, str],
    *,
    where: str,
) -> None:
    """A compound's dose must be > 0: zero or negative is an error, not a missing dose."""
    bad = check & ~(dose > 0)
    if bad.any():
        shown = (f["pert_dose"] + " " + f["pert_dose_unit"])[bad]
        raise FormatError(
            f"{where}: column {fields['pert_dose']!r} has {int(bad.sum())} compound dose(s) "
            f"that are zero or negative: {list(dict.fromkeys(shown))[:5]} (first samples "
            f"{list(shown.index[:5])}); a trt_cp dose must be > 0. A vehicle is "
            "ctl_vehicle; a missing dose is -666 or empty"
        )


def read_l1000(
    level3: str | os.PathLike[str] | None = None,
    *,
    tables: L1000Tables | None = None,
    folder: str | os.PathLike[str] | None = None,
    phase: Phase | None = None,
    genes: Genes = "landmark",
    dataset: str | None = None,
    chunk_size: int = 4096,
    progress: bool = False,
) -> IngestResult:
    """Read L1000 level 3 into Samples, accounting for every instance and gene in the ledger.

    Parameters
    ----------
    level3
        ``.gctx`` or ``.gct`` file, genes × instances (found in ``folder`` when omitted).
    tables
        The metadata tables (:class:`L1000Tables`; plans and ``--set`` give them as flat
        keys): ``inst_info``, the instance metadata keyed by ``inst_id`` (without it the
        file's column metadata is used); ``gene_info``, the GEO gene table (without it the
        file's row metadata is used); ``cell_info`` and ``pert_info`` (optional).
    folder
        A folder holding a GEO series by its file names (see :func:`find_geo_files`);
        paths given explicitly take precedence.
    phase
        1 (GSE92742) or 2 (GSE70138); read from the file names when omitted.
    genes
        ``"landmark"`` (the 978 measured genes), ``"bing"`` (best inferred, landmarks
        included) or ``"all"``.
    dataset
        ``obs["dataset"]``; default ``lincs_l1000_phase<n>`` for a GEO series, else
        ``lincs_l1000``.
    chunk_size
        Instances read from a GCTX at a time.
    progress
        Show a progress bar while reading the matrix.

    Returns
    -------
    IngestResult
        Samples of the kept vehicle and compound instances, and the ledger of all
        instances (stage ``ingest``) and GCTX rows (stage ``ingest_genes``).

    Raises
    ------
    FormatError
        For a level 4/5 file, or a malformed GCT(X) or table.
    SchemaError
        For a table without a required column (named with its accepted spellings).
    UnitError
        For an unknown dose or time unit.

    Examples
    --------
    >>> res = read_l1000("test_l1000.gct")  # doctest: +SKIP
    >>> res = read_l1000(folder="GSE92742", phase=1, genes="landmark")  # doctest: +SKIP
    >>> res = read_l1000(
    ...     "level3.gctx", tables=L1000Tables(inst_info="inst_info.tsv")
    ... )  # doctest: +SKIP
    >>> res.ledger.summary()  # doctest: +SKIP
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, found {chunk_size}")
    if genes not in ("landmark", "bing", "all"):
        raise ValueError(f"genes must be 'landmark', 'bing' or 'all', found {genes!r}")
    files = locate_files(
        level3,
        folder=folder,
        phase=phase,
        tables=asdict(tables or L1000Tables()),
    )
    if dataset is None:
        dataset = f"lincs_l1000_phase{files.phase}" if files.phase else "lincs_l1000"
    _check_level_name(files.level3)
    level = _Level3(files.level3)
    try:
        return _read_l1000(
            level,
            files,
            genes=genes,
            dataset=dataset,
            chunk_size=chunk_size,
            progress=progress,
        )
    finally:
        level.close()


def _read_l1000(
    level: _Level3,
    files: L1000Files,
    *,
    genes: str,
    dataset: str,
    chunk_size: int,
    progress: bool,
) -> IngestResult:
    path = level.path
    _check_level_meta(level.row_meta, level.col_meta, where=str(path))
    meta, fields, sample_ids, gctx_col, where = _metadata(level, files)
    no_meta = meta[fields["pert_type"]].isna().to_numpy() & (gctx_col >= 0)
    no_data = gctx_col < 0
    f = {
        k: meta[v].astype(object).where(meta[v].notna(), "").astype(str) for k, v in fields.items()
    }
    raw_type = f["pert_type"].str.strip()
    pert_type = raw_type.map(PERT_TYPE_MAP).fillna("other").to_numpy(dtype=object)
    pert_type[no_meta] = "other"
    is_vehicle = pert_type == "vehicle"
    treated = pert_type == "compound"
    modelled = (is_vehicle | treated) & ~no_data

    # values present but unparseable are errors; missing ones (-666, NA, empty) drops
    dcheck = treated & ~no_data
    dose_num = np.full(len(sample_ids), np.nan)
    dose_num[dcheck] = parse_numbers(
        f["pert_dose"][dcheck], column=fields["pert_dose"], where=where
    )
    dose = np.where(is_vehicle, 0.0, np.nan)
    check = dcheck & np.isfinite(dose_num) & ~_is_missing(f["pert_dose_unit"])
    dose[check] = dose_to_uM(
        dose_num[check],
        f["pert_dose_unit"][check].to_numpy(),
        where=f"{where} column {fields['pert_dose_unit']!r}",
    )
    _check_positive_doses(dose, check, f, fields, where=where)
    tcheck = modelled & ~_is_missing(f["pert_time"]) & ~_is_missing(f["pert_time_unit"])
    time_num = np.full(len(sample_ids), np.nan)
    time_num[modelled] = parse_numbers(
        f["pert_time"][modelled], column=fields["pert_time"], where=where
    )
    time = np.full(len(sample_ids), np.nan)
    time[tcheck] = time_to_h(
        time_num[tcheck],
        f["pert_time_unit"][tcheck].to_numpy(),
        where=f"{where} column {fields['pert_time_unit']!r}",
    )

    triage = Triage(sample_ids)
    triage.drop(no_meta, "missing_metadata", f"not in {files.inst_info}")
    triage.drop(no_data, "missing_expression", f"not in {path.name}")
    for kind, why in DROP_REASON.items():
        triage.drop(pert_type == kind, why, raw_type.to_numpy())
    bad_dose = treated & ~(np.isfinite(dose) & (dose > 0))
    triage.drop(
        bad_dose,
        "missing_dose",
        ("pert_dose=" + f["pert_dose"] + " " + f["pert_dose_unit"]).to_numpy(),
    )
    triage.drop(~np.isfinite(time), "missing_time", ("pert_time=" + f["pert_time"]).to_numpy())
    if "qc_pass" in meta.columns:
        triage.drop(_qc_fail(meta["qc_pass"], where=where), "qc_fail", "qc_pass=0")
    ledger = Ledger()
    triage.record(ledger, stage=STAGE, kept_detail=pert_type)
    kept = np.flatnonzero(triage.kept)

    row_ids = level.row_meta.index.astype(str)
    ann, found, id_kind = gene_annotation(row_ids, level.row_meta, files.gene_info, where=str(path))
    gene_pos = select_genes(ann, found, genes, where=str(path), ledger=ledger)
    var = gene_var(ann.iloc[gene_pos], id_kind, where=str(path))

    plate = f["plate"].str.strip()
    replicate = plate.str.extract(_REPLICATE, expand=False).fillna("X1")
    obs = pd.DataFrame(
        {
            "dataset": dataset,
            "assay": "L1000",
            "plate": plate.to_numpy(),
            "well": f["well"].str.strip().to_numpy(),
            "replicate": replicate.to_numpy(),
            "cell_context": f["cell_id"].str.strip().to_numpy(),
            "cell_name": f["cell_id"].str.strip().to_numpy(),
            "perturbagen": f["pert_iname"].to_numpy(),
            "compound_id_source": (
                f["pert_id"].str.strip().to_numpy()
                if "pert_id" in f
                else f["pert_iname"].to_numpy()
            ),
            "pert_type": pert_type,
            "is_control": is_vehicle,
            "pert_dose_uM": dose,
            "pert_time_h": time,
            "total_counts": np.nan,
            "pert_type_source": raw_type.to_numpy(),
        },
        index=sample_ids,
    ).iloc[kept]
    obs = obs.copy()  # a frame of its own: columns are set on it below
    obs.loc[obs["is_control"], "compound_id_source"] = obs.loc[obs["is_control"], "perturbagen"]
    if files.pert_info is not None:
        obs = _join_perts(obs, _pert_table(files.pert_info))
    if files.cell_info is not None:
        obs = _join_cells(obs, files.cell_info)
    obs["pert_type_source"] = categorical(obs["pert_type_source"])

    ledger.check_accounts_for(sample_ids, stage=STAGE)
    ledger.check_accounts_for(row_ids, stage=GENE_STAGE)
    x = level.read(gctx_col[kept], gene_pos, chunk_size=chunk_size, progress=progress)
    params = {"source": "l1000", "dataset": dataset, "genes": genes, "phase": files.phase or 0}
    prov = provenance(step="ingest", inputs=files.inputs(), params=params)
    obs = DATASET_FACTS["l1000"].apply(obs)
    samples = build_samples(
        x, obs, var, value_kind="log_expression", provenance=prov, where=str(path)
    )
    return IngestResult(samples, ledger)


@register_source(name="l1000")
class L1000Source(SourceAdapter):
    """LINCS L1000 level 3: one GCTX/GCT (+ inst_info), or a GEO series (GSE92742/GSE70138)."""

    option_groups: ClassVar[Mapping[str, type[Any]]] = {"tables": L1000Tables}

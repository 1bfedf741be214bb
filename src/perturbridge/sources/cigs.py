"""CIGS (Chemical-Induced Gene Signatures; HTS2 and HiMAP-seq) targeted counts → Samples.

Reads the release as the authors distribute it: a folder with, for each of the six
subsets, a counts workbook and a metadata workbook (:data:`SUBSETS`), e.g.
``MCE_Bioactive_Compounds_HEK293T_10μM_Counts.xlsx`` and
``MCE_Bioactive_Compounds_HEK293T_10μM_MetaData.xlsx``, and optionally the compound
table of the paper (``41592_2025_2781_MOESM3_ESM.xlsx``, sheets ``Supplementary Table
3`` (MCE) and ``Supplementary Table 4`` (TCM)). Reading ``.xlsx`` needs ``openpyxl``.

* Counts workbook: a licence note in the first row, then the header ``Sample_id``
  (MCE) / ``Sample_unique_id`` (TCM) followed by the 3,407 gene symbols, then one row
  of integer counts per sample.
* Metadata workbook: (MCE: a note row first) then ``Sample_id, treatment, cell_id,
  pert_idose, pert_itime, sample_plate, sample_row, sample_column`` (MCE) or
  ``Sample_unique_id, Treat, Cell, Plate, Dose, Time`` (TCM).

Rules
-----
* Dose and time are fixed per subset (:data:`SUBSETS`: MCE 10 µM, TCM 10 or 20 µM,
  24 h); a per-sample dose or time that disagrees is an error. ``-666`` means "not
  applicable" (controls).
* Sample ledger (stage ``ingest``), first rule wins: ``missing_metadata`` /
  ``missing_counts`` (a sample in one workbook only); ``empty_well`` (treatment
  ``BLANK``/``Blank``); ``rna_control`` (``RNA`` wells: purified RNA, no cells);
  ``excluded_plate`` (plates the authors excluded: :data:`EXCLUDED_PLATES`);
  ``low_quality`` (per subset, among the samples still kept: log2 total reads below
  Q1 − 1.5 × (Q3 − Q1), quantiles as R's type 7; the detail gives both numbers);
  ``positive_control`` (``JQ1`` wells, as in the authors' analysis). ``DMSO`` is the
  vehicle; every other treatment is a compound.
* Gene symbols damaged by spreadsheets are repaired explicitly
  (:func:`repair_gene_symbols`, :data:`DATE_SYMBOLS`): Excel dates (a date cell, or
  text ``2024-09-07 00:00:00``, ``7-Sep``, ``Sep-07``) and R's ``make.names`` of them
  (``X7.Sep``) → ``SEPT7``/``MARCH1``/``DEC1``/``SEP15``; R's dots for hyphens
  (``HLA.A`` → ``HLA-A``, ``NKX2.1`` → ``NKX2-1``). Each repair is recorded in the gene
  ledger (stage ``ingest_genes``, detail ``repaired from '…' in <file>``) and in
  ``var["symbol_source"]``. Genes absent from some subset → ``not_in_all_subsets``.
* Identities: ``compound_id_source`` = the treatment as written (MCE catalog number
  ``HY-…``, TCM ``Compd…``), ``perturbagen`` = the compound name from the paper's
  table when given (TCM ``Compd`` ids are looked up as ``Cpd``), CAS in
  ``compound_cas``; ``cell_context`` = the cell line (``HEK293T``, ``MDA-MB-231``;
  CIGS carries no Cellosaurus accession), ``cell_name`` = the metadata's value.
  :mod:`perturbridge.ids.annotate` resolves identities afterwards, as for every source.
* Datasets: ``<dataset>_mce`` (assay HTS2) and ``<dataset>_tcm`` (HiMAP-seq). Plate:
  MCE ``sample_plate`` (its ``_X<n>`` suffix is the replicate); TCM
  ``<subset>:<Plate>`` (the TCM subsets reuse plate names). Well: MCE from
  ``sample_row``/``sample_column``; TCM (well-less HiMAP-seq) the sample id.

Long because the rules above are written out in full beside the code that applies them,
and the two spreadsheet layouts (MCE, TCM) with their damaged gene symbols are one
reader; splitting it would scatter one format over several files.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from ..errors import FormatError
from ..ledger import Ledger
from ..units import dose_to_uM
from ._base import IngestResult, SourceAdapter, register_source
from ._common import (
    GENE_STAGE,
    STAGE,
    Accounts,
    Origin,
    Triage,
    assemble,
    categorical,
    replicate_rank,
    resolve_columns,
    split_quantity,
    time_to_hours,
    well_from_row_col,
)

__all__ = [
    "DATE_SYMBOLS",
    "EXCLUDED_PLATES",
    "SUBSETS",
    "CIGSSource",
    "CigsSubset",
    "read_cigs",
    "repair_gene_symbols",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CigsSubset:
    """One CIGS subset: library × cell line × dose, with its workbooks."""

    key: str
    library: str  # "MCE" or "TCM"
    cell_line: str
    dose_uM: float
    time_h: float
    counts_file: str
    metadata_file: str

    @property
    def assay(self) -> str:
        return "HTS2" if self.library == "MCE" else "HiMAP-seq"


def _subset(key: str, library: str, cell: str, file_cell: str, dose: float, tag: str) -> CigsSubset:
    stem = (
        f"MCE_Bioactive_Compounds_{file_cell}_{tag}"
        if library == "MCE"
        else f"TCM_Compounds_{file_cell}_{tag}"
    )
    return CigsSubset(
        key, library, cell, dose, 24.0, f"{stem}_Counts.xlsx", f"{stem}_MetaData.xlsx"
    )


#: The six subsets (dose and time are design constants of each).
SUBSETS: tuple[CigsSubset, ...] = (
    _subset("mce_hek293t_10uM", "MCE", "HEK293T", "HEK293T", 10.0, "10μM"),
    _subset("mce_mda_mb_231_10uM", "MCE", "MDA-MB-231", "MDA_MB_231", 10.0, "10μM"),
    _subset("tcm_hek293t_10", "TCM", "HEK293T", "HEK293T", 10.0, "10"),
    _subset("tcm_hek293t_20", "TCM", "HEK293T", "HEK293T", 20.0, "20"),
    _subset("tcm_mda_mb_231_10", "TCM", "MDA-MB-231", "MDA_MB_231", 10.0, "10"),
    _subset("tcm_mda_mb_231_20", "TCM", "MDA-MB-231", "MDA_MB_231", 20.0, "20"),
)
COMPOUND_TABLE = "41592_2025_2781_MOESM3_ESM.xlsx"
COMPOUND_SHEETS = {"MCE": "Supplementary Table 3", "TCM": "Supplementary Table 4"}
#: Plates the authors excluded by name (MCE HEK293T, batch MCE4; 00._DataPre.Rmd).
EXCLUDED_PLATES: tuple[str, ...] = ("MCE4_293T_24H_X1", "MCE4_293T_24H_X2", "MCE4_293T_24H_X3")
VEHICLE = "DMSO"
POSITIVE_CONTROLS = ("JQ1",)
BLANK = ("BLANK",)
RNA = ("RNA",)

FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "sample": ("Sample_id", "Sample_unique_id", "sample_id"),
    "treatment": ("treatment", "Treat"),
    "cell": ("cell_id", "Cell"),
    "plate": ("sample_plate", "Plate"),
    "row": ("sample_row",),
    "col": ("sample_column",),
    "dose": ("pert_idose", "Dose"),
    "time": ("pert_itime", "Time"),
}
REQUIRED = ("sample", "treatment", "plate")

_MONTHS = {"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8,
           "sep": 9, "oct": 10, "nov": 11, "dec": 12}  # fmt: skip
#: Gene symbols that spreadsheets turn into dates: (month, day) → symbol. SEPT1-14
#: (now SEPTIN1-14), SEP15 (now SELENOF), MARCH1-11 (now MARCHF1-11), DEC1 (now DELEC1).
DATE_SYMBOLS: dict[tuple[int, int], str] = {
    **{(9, d): f"SEPT{d}" for d in range(1, 15)},
    (9, 15): "SEP15",
    **{(3, d): f"MARCH{d}" for d in range(1, 12)},
    (12, 1): "DEC1",
}
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T]00:00(?::00)?)?$")
_DAY_MON = re.compile(r"^(?:X)?(\d{1,2})[-.]([A-Za-z]{3})$")  # 7-Sep, X7.Sep
_MON_DAY = re.compile(r"^([A-Za-z]{3})-(\d{1,2})$")  # Sep-07
_SHOW = 5


def _date_symbol(label: Any) -> tuple[str | None, bool]:
    """(symbol, is a date) for one header label."""
    if isinstance(label, (_dt.datetime, _dt.date)):
        return DATE_SYMBOLS.get((label.month, label.day)), True
    s = str(label).strip()
    m = _ISO_DATE.match(s)
    if m:
        return DATE_SYMBOLS.get((int(m.group(2)), int(m.group(3)))), True
    m = _DAY_MON.match(s)
    if m and m.group(2).lower() in _MONTHS:
        return DATE_SYMBOLS.get((_MONTHS[m.group(2).lower()], int(m.group(1)))), True
    m = _MON_DAY.match(s)
    if m and m.group(1).lower() in _MONTHS:
        return DATE_SYMBOLS.get((_MONTHS[m.group(1).lower()], int(m.group(2)))), True
    return None, False


def repair_gene_symbols(labels: Sequence[Any]) -> tuple[list[str], list[str]]:
    """Repair gene symbols damaged by spreadsheets; returns (symbols, notes).

    ``notes[i]`` is ``""`` when ``labels[i]`` was kept as written, else what was done.
    Rules, in order: a date (cell or text, or R's ``X7.Sep``) → :data:`DATE_SYMBOLS`
    (an unknown date is kept as text and noted); a symbol with dots → dots become
    hyphens (HGNC symbols never contain dots).

    Examples
    --------
    >>> repair_gene_symbols([_dt.datetime(2024, 9, 7), "HLA.A", "X1.Mar", "TP53"])[0]
    ['SEPT7', 'HLA-A', 'MARCH1', 'TP53']
    """
    symbols, notes = [], []
    for label in labels:
        raw = str(label).strip()
        sym, is_date = _date_symbol(label)
        if is_date:
            if sym is None:
                symbols.append(raw)
                notes.append(f"date-like symbol {raw!r} not in the repair table; kept as written")
            else:
                symbols.append(sym)
                notes.append(f"repaired from {raw!r}")
        elif "." in raw:
            symbols.append(raw.replace(".", "-"))
            notes.append(f"repaired from {raw!r}")
        else:
            symbols.append(raw)
            notes.append("")
    return symbols, notes


# ------------------------------------------------------------------------------ reading


def _openpyxl() -> Any:
    try:
        import openpyxl
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reading CIGS workbooks (.xlsx) needs openpyxl: pip install 'perturbridge[xlsx]' "
            "(or pip install openpyxl)"
        ) from err
    return openpyxl


def _xlsx_rows(path: Path, *, sheet: str | None = None) -> Iterator[tuple[Any, ...]]:
    """Rows of a worksheet (values only), streamed in read-only mode."""
    import zipfile

    openpyxl = _openpyxl()
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError) as err:
        raise FormatError(f"{path}: not a readable .xlsx workbook: {err}") from err
    try:
        if sheet is not None and sheet not in wb.sheetnames:
            raise FormatError(f"{path}: no sheet {sheet!r}; sheets: {wb.sheetnames}")
        ws = wb[sheet] if sheet is not None else wb.worksheets[0]
        yield from ws.iter_rows(values_only=True)
    finally:
        wb.close()


def _trim(row: tuple[Any, ...]) -> list[Any]:
    cells = list(row)
    while cells and (cells[-1] is None or (isinstance(cells[-1], str) and not cells[-1].strip())):
        cells.pop()
    return cells


def _is_note(row: Sequence[Any]) -> bool:
    return bool(row) and isinstance(row[0], str) and row[0].strip().lower().startswith("note")


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


@dataclass
class _Counts:
    samples: pd.Index
    labels: list[Any]
    x: np.ndarray  # samples × genes


def _read_counts(path: Path) -> _Counts:
    rows = _xlsx_rows(path)
    header: list[Any] | None = None
    ids: list[str] = []
    values: list[list[Any]] = []
    for raw in rows:
        row = _trim(raw)
        if not row:
            continue
        if header is None:
            if _is_note(row):
                continue
            header = row
            continue
        ids.append(_text(row[0]))
        values.append(row[1:])
    if header is None or len(header) < 2:
        raise FormatError(
            f"{path}: no header row (sample id column followed by gene symbols) in the counts"
        )
    labels = header[1:]
    n = len(labels)
    x = np.zeros((len(ids), n))
    for i, vals in enumerate(values):
        if len(vals) > n:
            raise FormatError(f"{path}: sample {ids[i]!r} has {len(vals)} values for {n} genes")
        arr = pd.to_numeric(
            pd.Series(vals + [None] * (n - len(vals)), dtype=object), errors="coerce"
        )
        bad = ~np.isfinite(arr.to_numpy(dtype=float))
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            got = vals[j] if j < len(vals) else None
            raise FormatError(
                f"{path}: {int(bad.sum())} count value(s) of sample {ids[i]!r} are missing or not "
                f"numbers, first {got!r} at gene {labels[j]!r}"
            )
        x[i] = arr.to_numpy(dtype=float)
    if (x < 0).any():
        i, j = np.argwhere(x < 0)[0]
        raise FormatError(
            f"{path}: negative count {x[i, j]} (sample {ids[i]!r}, gene {labels[j]!r})"
        )
    samples = pd.Index(ids, dtype=str)
    dup = samples[samples.duplicated()]
    if len(dup):
        raise FormatError(f"{path}: sample ids repeated in the counts: {list(dup[:_SHOW])}")
    return _Counts(samples, labels, x)


def _read_metadata(path: Path) -> pd.DataFrame:
    header: list[str] | None = None
    records: list[list[str]] = []
    for raw in _xlsx_rows(path):
        row = _trim(raw)
        if not row:
            continue
        if header is None:
            if _is_note(row):
                continue
            header = [_text(c) for c in row]
            continue
        cells = [_text(c) for c in row[: len(header)]]
        records.append(cells + [""] * (len(header) - len(cells)))
    if header is None:
        raise FormatError(f"{path}: no header row in the metadata")
    return pd.DataFrame(records, columns=header, dtype=str)


def _read_compounds(path: Path) -> dict[str, pd.DataFrame]:
    """Per library: catalog number → compound name and CAS (positional columns)."""
    out = {}
    for library, sheet in COMPOUND_SHEETS.items():
        rows = [_trim(r) for r in _xlsx_rows(path, sheet=sheet)]
        rows = [r for r in rows if r]
        # row 0: the "Supplementary Table N. ..." title; row 1: the header
        body = [r for r in rows[2:] if len(r) >= 2 and _text(r[1])]
        table = pd.DataFrame(
            {
                "compound_name": [" ".join(_text(r[0]).split()) for r in body],
                "catalog_number": [_text(r[1]) for r in body],
                "cas_number": [_text(r[2]) if len(r) > 2 else "" for r in body],
            }
        ).drop_duplicates("catalog_number")
        out[library] = table.set_index("catalog_number")
    return out


def _norm_name(name: str) -> str:
    return unicodedata.normalize("NFKC", name).replace("μ", "u").replace("µ", "u").lower()


def _find(folder: Path, name: str) -> Path | None:
    """``folder/name``, also when the micro sign is spelled µ, μ or u."""
    direct = folder / name
    if direct.is_file():
        return direct
    want = _norm_name(name)
    for p in folder.iterdir():
        if p.is_file() and _norm_name(p.name) == want:
            return p
    return None


# ------------------------------------------------------------------------------ ingest


def _files(root: Path, subsets: Sequence[str] | None) -> list[tuple[CigsSubset, Path, Path]]:
    by_key = {s.key: s for s in SUBSETS}
    if subsets is not None:
        unknown = [k for k in subsets if k not in by_key]
        if unknown:
            raise ValueError(f"unknown CIGS subset(s) {unknown}; known: {list(by_key)}")
    chosen = [by_key[k] for k in subsets] if subsets is not None else list(SUBSETS)
    out = []
    for sub in chosen:
        counts, meta = _find(root, sub.counts_file), _find(root, sub.metadata_file)
        if counts is None and meta is None and subsets is None:
            continue
        for got, name in ((counts, sub.counts_file), (meta, sub.metadata_file)):
            if got is None:
                raise FileNotFoundError(
                    f"CIGS subset {sub.key!r}: workbook {name} not found in {root}"
                )
        assert counts is not None and meta is not None
        out.append((sub, counts, meta))
    if not out:
        expected = [s.counts_file for s in SUBSETS] + [s.metadata_file for s in SUBSETS]
        raise FileNotFoundError(
            f"no CIGS workbooks in {root}; expected pairs such as {expected[0]} and "
            f"{expected[len(SUBSETS)]} (all: {expected})"
        )
    return out


@dataclass
class _Subset:
    sub: CigsSubset
    ids: pd.Index  # prefixed ids of every input sample
    triage: Triage
    obs: pd.DataFrame  # one row per input sample (meta fields; "" where absent)
    counts_rows: np.ndarray  # row of each input sample in x, -1 without counts
    x: np.ndarray
    symbols: list[str]
    notes: list[str]
    files: tuple[Path, Path]


def _ingest_subset(
    sub: CigsSubset,
    counts_path: Path,
    meta_path: Path,
    *,
    exclude_plates: Sequence[str],
    iqr_factor: float,
    positive_controls: Sequence[str],
) -> _Subset:
    where = str(meta_path)
    counts = _read_counts(counts_path)
    meta = _read_metadata(meta_path)
    f = resolve_columns(
        meta.columns, FIELD_ALIASES, required=REQUIRED, where=where, what="CIGS metadata"
    )
    meta_ids = pd.Index(meta[f["sample"]].to_numpy(), dtype=str)
    dup = meta_ids[meta_ids.duplicated()]
    if len(dup):
        raise FormatError(f"{where}: sample ids repeated in the metadata: {list(dup[:_SHOW])}")
    extra = counts.samples.difference(meta_ids, sort=False)
    raw_ids = meta_ids.append(extra)
    ids = pd.Index([f"{sub.key}.{i}" for i in raw_ids], dtype=str)
    obs = meta.set_index(meta_ids).reindex(raw_ids).fillna("")
    col = {k: obs[v].astype(str).str.strip() for k, v in f.items()}
    in_meta = np.arange(len(raw_ids)) < len(meta_ids)
    counts_rows = counts.samples.get_indexer(raw_ids)
    treat = col["treatment"]
    up = treat.str.upper().to_numpy()
    plate = col["plate"].to_numpy()

    triage = Triage(ids)
    triage.drop(~in_meta, "missing_metadata", f"not in {meta_path.name}")
    triage.drop(counts_rows < 0, "missing_counts", f"no row in {counts_path.name}")
    triage.drop(in_meta & (treat == "").to_numpy(), "missing_metadata", "no treatment")
    triage.drop(np.isin(up, BLANK), "empty_well", ("treatment=" + treat).to_numpy())
    triage.drop(np.isin(up, RNA), "rna_control", ("treatment=" + treat).to_numpy())
    triage.drop(
        np.isin(plate, list(exclude_plates)),
        "excluded_plate",
        np.array([f"plate {p} excluded by the CIGS authors" for p in plate], dtype=object),
    )
    totals = np.full(len(ids), np.nan)
    has = counts_rows >= 0
    totals[has] = counts.x[counts_rows[has]].sum(axis=1)
    pool = triage.open
    if pool.sum() >= 4:
        with np.errstate(divide="ignore"):
            log2 = np.log2(totals)
        q1, q3 = np.percentile(log2[pool], [25, 75])
        threshold = q1 - iqr_factor * (q3 - q1)
        low = pool & (log2 < threshold)
        detail = np.array(
            [
                f"log2 reads {v:.3f} < {threshold:.3f} (Q1 - {iqr_factor:g} x IQR in {sub.key})"
                for v in log2
            ],
            dtype=object,
        )
        triage.drop(low, "low_quality", detail)
    positive = np.isin(up, [p.upper() for p in positive_controls])
    triage.drop(positive, "positive_control", treat.to_numpy())
    compound = triage.kept & (up != VEHICLE)
    _check_dose_time(sub, col, compound, f=f, where=where)
    symbols, notes = repair_gene_symbols(counts.labels)
    seen: dict[str, Any] = {}
    for label, sym in zip(counts.labels, symbols, strict=True):
        if sym in seen:
            raise FormatError(
                f"{counts_path}: gene symbols {seen[sym]!r} and {label!r} are the same gene "
                f"{sym!r} after repair; the counts table must list each gene once"
            )
        seen[sym] = label
    n_rep = sum(1 for n in notes if n.startswith("repaired"))
    if n_rep:
        logger.info("%s: repaired %d spreadsheet-damaged gene symbols", counts_path.name, n_rep)
    fields = obs.assign(**{k: v.to_numpy() for k, v in col.items()})
    files = (counts_path, meta_path)
    return _Subset(sub, ids, triage, fields, counts_rows, counts.x, symbols, notes, files)


def _check_dose_time(
    sub: CigsSubset, col: dict[str, pd.Series], rows: np.ndarray, *, f: dict[str, str], where: str
) -> None:
    """Per-sample doses and times of compound wells must match the subset's design."""
    for field, expected, unit in (("dose", sub.dose_uM, "uM"), ("time", sub.time_h, "h")):
        if field not in col:
            continue
        num, u = split_quantity(col[field], column=f[field], where=where, default_unit=unit)
        ok = rows & np.isfinite(num)
        if not ok.any():
            continue
        if field == "dose":
            value = dose_to_uM(num[ok], u[ok], where=f"{where} column {f[field]!r}")
        else:
            value = time_to_hours(num[ok], u[ok], column=f[field], where=where)
        bad = ~np.isclose(value, expected, rtol=1e-6)
        if bad.any():
            shown = list(dict.fromkeys(col[field].to_numpy()[ok][bad]))[:_SHOW]
            unit_text = "µM" if field == "dose" else "h"
            raise FormatError(
                f"{where}: column {f[field]!r} has {int(bad.sum())} value(s) {shown} that differ "
                f"from subset {sub.key!r}'s design ({expected:g} {unit_text})"
            )


def read_cigs(
    folder: str | os.PathLike[str],
    *,
    subsets: Sequence[str] | None = None,
    compounds: str | os.PathLike[str] | None = None,
    dataset: str = "cigs",
    exclude_plates: Sequence[str] = EXCLUDED_PLATES,
    iqr_factor: float = 1.5,
    positive_controls: Sequence[str] = POSITIVE_CONTROLS,
) -> IngestResult:
    """Read the CIGS workbooks in ``folder`` into Samples, accounting for every sample.

    Parameters
    ----------
    folder
        Folder with the subsets' ``*_Counts.xlsx`` / ``*_MetaData.xlsx`` workbooks.
    subsets
        Keys of :data:`SUBSETS` to read (each must be present); default: every subset
        whose workbooks are in ``folder``.
    compounds
        The paper's compound table (``41592_2025_2781_MOESM3_ESM.xlsx``); default: that
        file in ``folder`` when present.
    dataset
        Prefix of the dataset names (``<dataset>_mce``, ``<dataset>_tcm``).
    exclude_plates
        Plates to drop (``excluded_plate``); default: those the authors excluded.
    iqr_factor
        The low-quality rule's factor (log2 reads < Q1 − factor × IQR, per subset).
    positive_controls
        Treatments dropped as ``positive_control`` (default ``JQ1``).

    Examples
    --------
    >>> res = read_cigs("cigs/")  # doctest: +SKIP
    >>> res.ledger.summary()  # doctest: +SKIP
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(
            f"CIGS folder not found: {root} (expected a folder of .xlsx workbooks)"
        )
    found = _files(root, subsets)
    comp_path = None
    if compounds is not None:
        comp_path = Path(compounds)
        if not comp_path.is_file():
            raise FileNotFoundError(
                f"CIGS compound table ({COMPOUND_TABLE}) not found: {comp_path}"
            )
    elif (root / COMPOUND_TABLE).is_file():
        comp_path = root / COMPOUND_TABLE
    table = _read_compounds(comp_path) if comp_path is not None else None
    parts = [
        _ingest_subset(
            sub, c, m, exclude_plates=exclude_plates, iqr_factor=iqr_factor,
            positive_controls=positive_controls,
        )
        for sub, c, m in found
    ]  # fmt: skip
    ledger = Ledger()
    for part in parts:
        up = part.obs["treatment"].str.upper().to_numpy()
        part.triage.record(
            ledger, stage=STAGE, kept_detail=np.where(up == VEHICLE, "vehicle", "compound")
        )
    shared, gene_ids = _record_genes(ledger, parts)
    obs_parts, x_parts = [], []
    for part in parts:
        kept = np.flatnonzero(part.triage.kept)
        obs_parts.append(_sample_obs(part, kept, table, dataset=dataset))
        cols = pd.Index(part.symbols).get_indexer(pd.Index(shared))
        x_parts.append(sparse.csr_matrix(part.x[part.counts_rows[kept]][:, cols]))
    obs = pd.concat(obs_parts)
    needs_rank = obs["replicate"] == ""
    if needs_rank.any():
        rank = replicate_rank(
            obs, by=("dataset", "cell_context", "compound_id_source", "pert_dose_uM")
        )
        obs["replicate"] = np.where(needs_rank, rank, obs["replicate"])
    for c in ("compound_cas", "cigs_subset", "symbol_fix"):
        if c in obs.columns:
            obs[c] = categorical(obs[c])
    source_labels: dict[str, str] = {}
    for part in parts:
        for sym, note in zip(part.symbols, part.notes, strict=True):
            if note.startswith("repaired from "):
                source_labels.setdefault(sym, note.removeprefix("repaired from ").strip("'"))
    var = pd.DataFrame(
        {"symbol": shared, "symbol_source": [source_labels.get(s, s) for s in shared]},
        index=pd.Index(shared, name="gene_id"),
    )
    return assemble(
        sparse.vstack(x_parts, format="csr") if x_parts else sparse.csr_matrix((0, len(shared))),
        obs,
        var,
        accounts=Accounts(
            ledger,
            samples=pd.Index(np.concatenate([p.ids.to_numpy() for p in parts])),
            genes=gene_ids,
        ),
        origin=Origin(
            inputs=[p for part in parts for p in part.files] + ([comp_path] if comp_path else []),
            params={
                "source": "cigs",
                "dataset": dataset,
                "subsets": [p.sub.key for p in parts],
                "exclude_plates": list(exclude_plates),
                "iqr_factor": iqr_factor,
                "positive_controls": list(positive_controls),
            },
            where=str(root),
        ),
    )


def _record_genes(ledger: Ledger, parts: list[_Subset]) -> tuple[list[str], pd.Index]:
    """Gene ledger: the union of repaired symbols; those not in every subset dropped."""
    union: dict[str, list[str]] = {}
    for part in parts:
        name = part.files[0].name
        for sym, note in zip(part.symbols, part.notes, strict=True):
            notes = union.setdefault(sym, [])
            if note:
                notes.append(f"{note} in {name}")
    sets = [set(p.symbols) for p in parts]
    shared = [s for s in parts[0].symbols if all(s in st for st in sets)]
    shared_set = set(shared)
    ids = pd.Index(list(union), dtype=str)
    t = Triage(ids)
    absent = np.array([s not in shared_set for s in ids], dtype=bool)
    missing_in = np.array(
        [
            "absent from " + ", ".join(p.files[0].name for p in parts if s not in set(p.symbols))
            for s in ids
        ],
        dtype=object,
    )
    t.drop(absent, "not_in_all_subsets", missing_in)
    t.record(
        ledger,
        stage=GENE_STAGE,
        kept_detail=np.array(["; ".join(union[s]) for s in ids], dtype=object),
    )
    return shared, ids


def _sample_obs(
    part: _Subset, kept: np.ndarray, table: dict[str, pd.DataFrame] | None, *, dataset: str
) -> pd.DataFrame:
    sub = part.sub
    o = part.obs.iloc[kept]
    treat = o["treatment"].astype(str).to_numpy()
    is_veh = np.char.upper(treat.astype(str)) == VEHICLE
    names = treat.copy().astype(object)
    cas = np.full(len(o), "", dtype=object)
    if table is not None:
        lib = table[sub.library]
        for i, t in enumerate(treat):
            for cand in (t, re.sub(r"^Compd", "Cpd", t)):
                if cand in lib.index:
                    names[i] = lib.at[cand, "compound_name"] or t
                    cas[i] = lib.at[cand, "cas_number"]
                    break
    names[is_veh] = "DMSO"
    plate = o["plate"].astype(str).to_numpy()
    if "row" in o.columns and "col" in o.columns:
        well = well_from_row_col(
            o["row"], o["col"], where=str(part.files[1]), columns=("sample_row", "sample_column")
        )
    else:
        well = np.array([i.split(".", 1)[1] for i in part.ids[kept]], dtype=object)
    if sub.library == "TCM":
        plate = np.array([f"{sub.key}:{p}" for p in plate], dtype=object)
        replicate = np.full(len(o), "", dtype=object)
    else:
        replicate = np.array(
            [m.group(1) if (m := re.search(r"_(X\d+)$", p)) else "" for p in plate], dtype=object
        )
    cell_raw = o["cell"].astype(str).to_numpy() if "cell" in o.columns else np.full(len(o), "")
    return pd.DataFrame(
        {
            "dataset": f"{dataset}_{sub.library.lower()}",
            "assay": sub.assay,
            "plate": plate,
            "well": well,
            "replicate": replicate,
            "cell_context": sub.cell_line,
            "cell_name": np.where(cell_raw == "", sub.cell_line, cell_raw),
            "perturbagen": names,
            "compound_id_source": treat,
            "pert_type": np.where(is_veh, "vehicle", "compound"),
            "is_control": is_veh,
            "pert_dose_uM": np.where(is_veh, 0.0, sub.dose_uM),
            "pert_time_h": sub.time_h,
            "compound_cas": cas,
            "cigs_subset": sub.key,
        },
        index=part.ids[kept],
    )


@register_source(name="cigs")
class CIGSSource(SourceAdapter):
    """CIGS MCE / TCM targeted counts (HTS2, HiMAP-seq) in HEK293T and MDA-MB-231."""

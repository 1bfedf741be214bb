"""Parsers of upstream gene and cell reference files (registered on import).

========================  ==========================================  =====================
parser                    files (``.gz`` allowed)                     tables
========================  ==========================================  =====================
``hgnc``                  ``hgnc_complete_set*.txt``/``.tsv``         genes, gene_synonyms
``ensembl_genes``         ``*.gtf`` (GENCODE/Ensembl), BioMart         genes, gene_synonyms
                          ``mart_export*.txt``, ``ensembl_genes*.tsv``
``cellosaurus``           ``cellosaurus*.txt``                        cells, cell_synonyms
``depmap_sample_info``    ``*sample_info*.csv``, ``Model*.csv``       cells, cell_synonyms
``lincs_cellinfo``        ``cellinfo*.tsv``/``.txt``,                 cells, cell_synonyms
                          ``cell_info*.tsv``/``.txt``
``cell_ontology_csv``     ``cell_ontology*.csv``/``.tsv``             cells, cell_synonyms
``cell_synonyms_csv``     ``cell_synonyms*.csv``/``.tsv``             cell_synonyms
========================  ==========================================  =====================

Placeholder accessions
----------------------
A cell line without a Cellosaurus accession in its source keeps a source-local
placeholder so that it can still be resolved and reported: ``DepMap:ACH-000123`` for a
DepMap line without ``RRID``, ``LINCS:<cell_id>`` for a LINCS cell id. At build time the
store links each ``LINCS:`` placeholder to the accession that its cell id resolves to
through the other tables (:func:`perturbridge.ids.cells.link_lincs_cells`); only the
ones that cannot be linked stay placeholders. ``DepMap:`` placeholders are kept as is
(linking them by name to Cellosaurus would be a guess).

A parser may put a version string in ``DataFrame.attrs["ref_version"]`` of any table it
returns (e.g. the Cellosaurus release, HGNC's latest modification date); the store
records it in its manifest.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pandas as pd

from ..errors import FormatError, SchemaError
from ._frames import missing_as_none, none_where_not
from .cell_ontology import SOURCE_CSV as CL_CSV_SOURCE, read_cell_ontology_csv
from .tables import TABLE_COLUMNS, RefParser, list_parsers, open_text, register_parser

__all__ = [
    "parse_cell_synonyms_csv",
    "parse_cellosaurus",
    "parse_depmap_sample_info",
    "parse_ensembl_genes",
    "parse_hgnc",
    "parse_lincs_cellinfo",
]

logger = logging.getLogger(__name__)

_CVCL = re.compile(r"^CVCL_[A-Z0-9]{4}$")
HUMAN = "Homo sapiens"


def _require(df: pd.DataFrame, cols: list[str], path: Path, what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise SchemaError(
            missing[0],
            f"missing from the {what} file; expected columns {cols}",
            list(df.columns)[:10],
            where=str(path),
        )


def _blank_to_none(s: pd.Series) -> pd.Series:
    out = missing_as_none(s)
    return out.map(lambda x: None if x is None or str(x).strip() == "" else str(x).strip())


def _split_explode(df: pd.DataFrame, key: str, col: str, sep: str, kind: str) -> pd.DataFrame:
    """Rows ``(key, synonym, kind)`` from a column of ``sep``-joined lists."""
    part = df[[key, col]].dropna()
    part = part.assign(synonym=part[col].astype(str).str.split(sep, regex=False))
    part = part.explode("synonym")
    part["synonym"] = part["synonym"].str.strip()
    part = part[part["synonym"].ne("") & part["synonym"].notna()]
    return pd.DataFrame(
        {key: part[key].to_numpy(), "synonym": part["synonym"].to_numpy(), "kind": kind}
    )


# --------------------------------------------------------------------------------------
# HGNC
# --------------------------------------------------------------------------------------


def parse_hgnc(path: Path) -> dict[str, pd.DataFrame]:
    """HGNC complete set → ``genes`` and ``gene_synonyms``.

    Tab-separated, one approved gene per line; ``alias_symbol`` and ``prev_symbol`` are
    ``|``-joined lists (quoted in the file). Synonym kinds: ``symbol`` (the approved
    symbol), ``prev`` (previous symbols), ``alias``, ``entrez`` (``entrez_id``) and
    ``ensembl`` (``ensembl_gene_id``, stored without a version suffix). The version is
    the latest ``date_modified`` in the file.
    """
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=[""])
    except (OSError, pd.errors.ParserError, UnicodeDecodeError, EOFError) as err:
        raise FormatError(f"{path}: cannot read the HGNC file ({err})") from err
    need = ["hgnc_id", "symbol", "name", "locus_group", "status", "entrez_id", "ensembl_gene_id"]
    _require(df, [*need, "alias_symbol", "prev_symbol"], path, "HGNC complete set")
    dup = df["hgnc_id"][df["hgnc_id"].duplicated()]
    if len(dup):
        raise SchemaError("hgnc_id", "must be unique", dup.head(5).tolist(), where=str(path))
    genes = df[need].copy()
    genes["ensembl_gene_id"] = genes["ensembl_gene_id"].str.replace(r"\.\d+$", "", regex=True)
    genes["entrez_id"] = genes["entrez_id"].str.replace(r"\.0$", "", regex=True)
    for col in need:
        genes[col] = _blank_to_none(genes[col])
    syn = pd.concat(
        [
            pd.DataFrame(
                {"hgnc_id": genes["hgnc_id"], "synonym": genes["symbol"], "kind": "symbol"}
            ),
            _split_explode(df, "hgnc_id", "prev_symbol", "|", "prev"),
            _split_explode(df, "hgnc_id", "alias_symbol", "|", "alias"),
            pd.DataFrame(
                {"hgnc_id": genes["hgnc_id"], "synonym": genes["entrez_id"], "kind": "entrez"}
            ),
            pd.DataFrame(
                {
                    "hgnc_id": genes["hgnc_id"],
                    "synonym": genes["ensembl_gene_id"],
                    "kind": "ensembl",
                }
            ),
        ],
        ignore_index=True,
    )
    syn = syn[syn["synonym"].notna()].drop_duplicates().reset_index(drop=True)
    version = None
    if "date_modified" in df.columns:
        dates = df["date_modified"].dropna()
        version = f"date_modified<={dates.max()}" if len(dates) else None
    genes.attrs["ref_version"] = version
    return {"genes": genes.reset_index(drop=True), "gene_synonyms": syn}


# --------------------------------------------------------------------------------------
# Ensembl / GENCODE genes
# --------------------------------------------------------------------------------------

#: ``hgnc_id`` prefix of genes known only from Ensembl (no HGNC symbol).
ENSEMBL_ONLY_PREFIX = "ENSEMBL:"
_GTF_ATTR = re.compile(r'(\w+) "([^"]*)"')
_ENSG = re.compile(r"^(ENSG\d{11})(?:\.\d+)?$")


def _ensembl_tables(ids: list[str], names: list[str | None], types: list[str | None], path: Path):
    ens = [m.group(1) if (m := _ENSG.match(i)) else None for i in ids]
    df = pd.DataFrame({"ensembl_gene_id": ens, "symbol": names, "locus_group": types})
    df = df[df["ensembl_gene_id"].notna()].drop_duplicates("ensembl_gene_id")
    if df.empty:
        raise FormatError(f"{path}: no human Ensembl gene ids (ENSG…) found")
    genes = pd.DataFrame(
        {
            "hgnc_id": ENSEMBL_ONLY_PREFIX + df["ensembl_gene_id"],
            "symbol": _blank_to_none(df["symbol"]),
            "name": None,
            "locus_group": _blank_to_none(df["locus_group"]),
            "status": "Ensembl",
            "entrez_id": None,
            "ensembl_gene_id": df["ensembl_gene_id"],
        }
    ).reset_index(drop=True)
    syn = pd.concat(
        [
            pd.DataFrame(
                {"hgnc_id": genes["hgnc_id"], "synonym": genes["symbol"], "kind": "ensembl_name"}
            ),
            pd.DataFrame(
                {
                    "hgnc_id": genes["hgnc_id"],
                    "synonym": genes["ensembl_gene_id"],
                    "kind": "ensembl",
                }
            ),
        ],
        ignore_index=True,
    )
    return genes, syn[syn["synonym"].notna()].reset_index(drop=True)


def parse_ensembl_genes(path: Path) -> dict[str, pd.DataFrame]:
    """Ensembl/GENCODE genes → ``genes`` and ``gene_synonyms`` (kinds ``ensembl_name``,
    ``ensembl``), keyed ``ENSEMBL:<ENSG id>``.

    Reads a GTF (the ``gene`` lines: ``gene_id``, ``gene_name``, ``gene_type`` or
    ``gene_biotype``) or a BioMart export (``Gene stable ID``, ``Gene name``, optional
    ``Gene type``). These tables give names to the genes HGNC has no symbol for, such as
    the clone-based names of unnamed lncRNAs (``AC000068.1``) that single-cell
    references use; :class:`~perturbridge.ids.genes.GeneResolver` merges them with
    HGNC: a gene HGNC knows keeps its HGNC record, and its Ensembl name becomes a synonym
    of lowest priority.
    """
    ids: list[str] = []
    names: list[str | None] = []
    types: list[str | None] = []
    with open_text(path) as fh:
        first = fh.readline()
        if "Gene stable ID" in first:  # BioMart export
            header = [h.strip() for h in first.rstrip("\n").split("\t")]
            df = pd.read_csv(fh, sep="\t", header=None, names=header, dtype=str)
            _require(df, ["Gene stable ID", "Gene name"], path, "BioMart gene export")
            kind = df["Gene type"] if "Gene type" in df.columns else pd.Series(None, index=df.index)
            genes, syn = _ensembl_tables(
                df["Gene stable ID"].astype(str).tolist(),
                none_where_not(df["Gene name"], df["Gene name"].notna()).tolist(),
                none_where_not(kind, kind.notna()).tolist(),
                path,
            )
        else:
            n_lines = 0
            for line in [first, *fh] if first else fh:
                n_lines += 1
                if line.startswith("#"):
                    continue
                fields = line.rstrip("\n").split("\t")
                if len(fields) != 9:
                    raise FormatError(
                        f"{path}: line {n_lines} has {len(fields)} tab-separated fields; "
                        f"a GTF line has 9: {line[:80]!r}"
                    )
                if fields[2] != "gene":
                    continue
                attrs = dict(_GTF_ATTR.findall(fields[8]))
                if "gene_id" not in attrs:
                    raise FormatError(f"{path}: line {n_lines}: gene line without gene_id")
                ids.append(attrs["gene_id"])
                names.append(attrs.get("gene_name"))
                types.append(attrs.get("gene_type", attrs.get("gene_biotype")))
            genes, syn = _ensembl_tables(ids, names, types, path)
    genes.attrs["ref_version"] = path.name
    return {"genes": genes, "gene_synonyms": syn}


# --------------------------------------------------------------------------------------
# Cellosaurus
# --------------------------------------------------------------------------------------

_RELEASE = re.compile(r"\b(?:Version|Release)\s*:\s*([0-9][0-9.]*)", re.IGNORECASE)


def _records(
    fh: TextIO, path: Path, header: list[str]
) -> Iterator[tuple[int, dict[str, list[str]]]]:
    """Cellosaurus records (``XX   value`` lines up to ``//``) with their first line.

    Lines before the first ``ID`` line (the release notes) are appended to ``header``.
    """
    rec: dict[str, list[str]] = {}
    start = 0
    seen_record = False
    for lineno, raw in enumerate(fh, 1):
        line = raw.rstrip("\n\r")
        if line.startswith("//"):
            if rec:
                yield start, rec
            rec = {}
            continue
        is_field = len(line) >= 5 and line[2:5] == "   " and line[:2].isalpha()
        if not is_field or (not rec and not line.startswith("ID   ")):
            if rec:
                raise FormatError(
                    f"{path}:{lineno}: expected a 'XX   value' line or '//' inside the record "
                    f"that starts on line {start}, found {line[:40]!r}"
                )
            if not seen_record:
                header.append(line)
            continue
        code, value = line[:2], line[5:].strip()
        if code == "ID":
            if rec:
                raise FormatError(
                    f"{path}:{lineno}: new ID line before the '//' that ends the record "
                    f"starting on line {start}; the file is truncated or malformed"
                )
            start = lineno
            seen_record = True
        rec.setdefault(code, []).append(value)
    if rec:
        raise FormatError(
            f"{path}: the last record (line {start}) has no terminating '//'; the file is truncated"
        )


def _species(ox: list[str]) -> str | None:
    names = []
    for v in ox:
        name = v.split("!", 1)[1].strip() if "!" in v else v.strip()
        names.append(re.sub(r"\s*\([^)]*\)\s*$", "", name))
    return "; ".join(dict.fromkeys(names)) or None


def _disease(di: list[str]) -> str | None:
    names = [v.split(";", 2)[2].strip() for v in di if v.count(";") >= 2]
    return "; ".join(dict.fromkeys(names)) or None


def _site(cc: list[str]) -> tuple[str | None, str | None]:
    """``CC   Derived from site: In situ; Skin; UBERON=UBERON_0002097.`` → the site and
    its UBERON id."""
    for v in cc:
        if v.startswith("Derived from site:"):
            parts = [p.strip().rstrip(".") for p in v.split(":", 1)[1].split(";")]
            uberon = next((p.split("=", 1)[1] for p in parts if p.startswith("UBERON=")), None)
            names = [p for p in parts[1:] if p and "=" not in p]
            return (names[0] if names else None), uberon
    return None, None


def _ncit(di: list[str]) -> str | None:
    for v in di:
        db, _, rest = v.partition(";")
        if db.strip() == "NCIt" and rest.strip():
            return "NCIT:" + rest.split(";", 1)[0].strip()
    return None


def parse_cellosaurus(path: Path) -> dict[str, pd.DataFrame]:
    """Cellosaurus flat file (``cellosaurus.txt``) → ``cells`` and ``cell_synonyms``.

    Reads the ExPASy line format: ``ID`` (recommended name), ``AC`` (accession), ``SY``
    (``;``-separated synonyms), ``OX`` (species after ``!``), ``SX`` (sex), ``DI``
    (``NCIt; C3512; Lung adenocarcinoma`` → the disease name), ``CA`` (category), ``DR``
    (cross references; ``DepMap; ACH-…`` becomes a ``depmap_id`` synonym), ``AG`` (age
    at sampling), ``CC   Derived from site:`` (site and UBERON id), each record ended by
    ``//``. Extra columns (:data:`perturbridge.ids.biology.BIOLOGY_FIELDS`): ``age``,
    ``tissue``, ``tissue_ontology_term_id``, ``disease_ontology_term_id`` (the first
    NCIt disease, ``NCIT:C3510``). Records of every species are kept (the resolver
    prefers human ones). The release is read from the header (``Version: 48.0``).
    """
    cells: list[tuple[str | None, ...]] = []
    syns: list[tuple[str, str, str]] = []
    header: list[str] = []
    with open_text(path) as fh:
        for start, rec in _records(fh, path, header):
            acc = rec.get("AC", [None])[0]
            name = rec.get("ID", [None])[0]
            if not acc or not name:
                raise FormatError(f"{path}:{start}: record without an ID or AC line")
            site, uberon = _site(rec.get("CC", []))
            cells.append(
                (
                    acc,
                    name,
                    _species(rec.get("OX", [])),
                    rec.get("SX", [None])[0],
                    _disease(rec.get("DI", [])),
                    rec.get("CA", [None])[0],
                    rec.get("AG", [None])[0],
                    site,
                    uberon.replace("_", ":", 1) if uberon else None,
                    _ncit(rec.get("DI", [])),
                )
            )
            syns.append((acc, name, "name"))
            for sy in rec.get("SY", []):
                syns.extend((acc, s.strip(), "synonym") for s in sy.split(";") if s.strip())
            for dr in rec.get("DR", []):
                db, _, ident = dr.partition(";")
                if db.strip() == "DepMap" and ident.strip():
                    syns.append((acc, ident.strip(), "depmap_id"))
    if not cells:
        raise FormatError(f"{path}: no Cellosaurus records (ID … // blocks) found")
    m = _RELEASE.search("\n".join(header))
    version = m.group(1) if m else None
    extra = ["age", "tissue", "tissue_ontology_term_id", "disease_ontology_term_id"]
    out_cells = pd.DataFrame(cells, columns=list(TABLE_COLUMNS["cells"])[:-1] + extra)
    out_cells.insert(len(TABLE_COLUMNS["cells"]) - 1, "ref_source", "cellosaurus")
    out_syn = pd.DataFrame(syns, columns=["accession", "synonym", "kind"]).drop_duplicates()
    out_syn["ref_source"] = "cellosaurus"
    out_cells.attrs["ref_version"] = version
    return {"cells": out_cells, "cell_synonyms": out_syn.reset_index(drop=True)}


# --------------------------------------------------------------------------------------
# DepMap
# --------------------------------------------------------------------------------------

# column in DepMap 'sample_info.csv' (≤ 22Q1) → its name in 'Model.csv' (≥ 22Q2)
_DEPMAP_COLUMNS = {
    "DepMap_ID": "ModelID",
    "stripped_cell_line_name": "StrippedCellLineName",
    "CCLE_Name": "CCLEName",
    "cell_line_name": "CellLineName",
    "RRID": "RRID",
    "sex": "Sex",
    "primary_disease": "OncotreePrimaryDisease",
    "age": "Age",
    "lineage": "OncotreeLineage",
    "lineage_subtype": "OncotreeSubtype",
    "ethnicity": "PatientRace",
}


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    for c in (name, _DEPMAP_COLUMNS.get(name, name)):
        if c in df.columns:
            return _blank_to_none(df[c])
    return pd.Series([None] * len(df), index=df.index, dtype=object)


def _joined(*columns: pd.Series) -> pd.Series:
    """Row-wise ``|``-join of the present, distinct values of ``columns`` (``None`` when
    none)."""

    def row(values: tuple[object, ...]) -> str | None:
        kept = dict.fromkeys(str(v).strip() for v in values if isinstance(v, str) and v.strip())
        return "|".join(kept) or None

    return pd.Series([row(v) for v in zip(*columns, strict=True)], index=columns[0].index)


def parse_depmap_sample_info(path: Path) -> dict[str, pd.DataFrame]:
    """DepMap ``sample_info.csv`` (or ``Model.csv``) → ``cells`` and ``cell_synonyms``.

    Lines are keyed by ``RRID`` (the Cellosaurus accession) when present, otherwise by
    the placeholder ``DepMap:<DepMap_ID>``. Synonyms: ``depmap_id``, ``ccle_name``
    (``A549_LUNG``), ``stripped_name`` (``A549``), ``name`` (``cell_line_name`` where the
    release has it) and ``synonym`` (each entry of the comma-separated ``alias``).
    Disease: ``primary_disease``, else ``disease`` (21Q1 files), else the Oncotree
    disease (``Model.csv``). Extra columns
    (:data:`perturbridge.ids.biology.BIOLOGY_FIELDS`): ``age``, ``tissue`` (``lineage``),
    ``disease_terms`` (``disease_subtype``, ``lineage_subtype`` and the disease, most
    specific first), ``ethnicity`` (``PatientRace`` of ``Model.csv``).
    """
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (OSError, pd.errors.ParserError, UnicodeDecodeError, EOFError) as err:
        raise FormatError(f"{path}: cannot read the DepMap sample info ({err})") from err
    ids = _col(df, "DepMap_ID")
    if ids.isna().all():
        raise SchemaError(
            "DepMap_ID",
            "missing; a DepMap sample info needs DepMap_ID (or ModelID) and RRID",
            list(df.columns)[:10],
            where=str(path),
        )
    rrid = _col(df, "RRID")
    bad = rrid.dropna()[~rrid.dropna().str.match(_CVCL)]
    if len(bad):
        raise SchemaError(
            "RRID",
            "must be a Cellosaurus accession CVCL_xxxx",
            bad.head(5).tolist(),
            where=str(path),
        )
    acc = rrid.where(rrid.notna(), "DepMap:" + ids.astype(str))
    acc = none_where_not(acc, ids.notna() | rrid.notna())
    stripped = _col(df, "stripped_cell_line_name")
    display = _col(df, "cell_line_name")
    disease = _col(df, "primary_disease")
    if disease.isna().all() and "disease" in df.columns:
        disease = _blank_to_none(df["disease"])
    keep = acc.notna()
    cells = pd.DataFrame(
        {
            "accession": acc,
            "name": display.where(display.notna(), stripped),
            "species": HUMAN,
            "sex": _col(df, "sex"),
            "disease": disease,
            "category": None,
            "ref_source": "depmap",
            "age": _col(df, "age"),
            "tissue": _col(df, "lineage"),
            "tissue_ontology_term_id": None,
            "disease_terms": _joined(
                _col(df, "disease_subtype"),
                _col(df, "lineage_subtype").str.replace("_", " "),
                disease,
            ),
            "disease_ontology_term_id": None,
            "ethnicity": _col(df, "ethnicity"),
        }
    )[keep]
    base = pd.DataFrame({"accession": acc, "alias": _col(df, "alias")})[keep]
    parts = [
        pd.DataFrame({"accession": acc, "synonym": ids, "kind": "depmap_id"}),
        pd.DataFrame({"accession": acc, "synonym": _col(df, "CCLE_Name"), "kind": "ccle_name"}),
        pd.DataFrame({"accession": acc, "synonym": stripped, "kind": "stripped_name"}),
        pd.DataFrame({"accession": acc, "synonym": display, "kind": "name"}),
        _split_explode(base, "accession", "alias", ",", "synonym"),
    ]
    syn = pd.concat(parts, ignore_index=True)
    syn = syn[syn["accession"].notna() & syn["synonym"].notna()].drop_duplicates()
    syn["ref_source"] = "depmap"
    return {"cells": cells.reset_index(drop=True), "cell_synonyms": syn.reset_index(drop=True)}


# --------------------------------------------------------------------------------------
# LINCS cell info
# --------------------------------------------------------------------------------------


def _first_col(df: pd.DataFrame, *names: str) -> pd.Series:
    for n in names:
        if n in df.columns:
            return _blank_to_none(df[n])
    return pd.Series([None] * len(df), index=df.index, dtype=object)


def parse_lincs_cellinfo(path: Path) -> dict[str, pd.DataFrame]:
    """LINCS cell info (``cellinfo.tsv``, ``cell_info.tsv``, ``cellinfo_beta.txt``).

    The cell id (``cell_id``, or ``cell_iname`` in LINCS 2020) becomes a synonym of kind
    ``lincs_id``. Where the file gives a ``cellosaurus_id`` (LINCS 2020) it is the
    accession; otherwise the placeholder ``LINCS:<cell_id>``, linked at build time by
    name through the other tables. Sex comes from ``gender``/``donor_sex``, disease from
    ``primary_disease``/``cell_histology``/``subtype``, category from ``cell_type``.
    ``ccle_name`` and ``cell_alias`` columns, where present, add synonyms. Extra columns
    (:data:`perturbridge.ids.biology.BIOLOGY_FIELDS`): ``age`` (``donor_age``),
    ``tissue`` (``primary_site``, else ``cell_lineage``), ``disease_terms`` (``subtype``,
    ``cell_histology``, ``primary_disease``), ``ethnicity`` (``donor_ethnicity``).
    """
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=[""])
    except (OSError, pd.errors.ParserError, UnicodeDecodeError, EOFError) as err:
        raise FormatError(f"{path}: cannot read the LINCS cell info ({err})") from err
    cid = _first_col(df, "cell_id", "cell_iname")
    if cid.isna().all():
        raise SchemaError(
            "cell_id",
            "missing; LINCS cell info needs cell_id or cell_iname",
            list(df.columns)[:10],
            where=str(path),
        )
    cvcl = _first_col(df, "cellosaurus_id")
    cvcl = none_where_not(cvcl, cvcl.fillna("").str.match(_CVCL))
    if cid.isna().any():
        logger.warning(
            "%s: %d rows without a cell id skipped (lines %s)",
            path,
            int(cid.isna().sum()),
            (cid.index[cid.isna()][:5] + 2).tolist(),
        )
    acc = cvcl.where(cvcl.notna(), "LINCS:" + cid.astype(str))[cid.notna()]
    cid = cid[cid.notna()]
    sex = _first_col(df, "gender", "donor_sex").loc[cid.index]
    sex = sex.map(lambda s: {"M": "Male", "F": "Female"}.get(s, s) if s else s)
    cells = pd.DataFrame(
        {
            "accession": acc,
            "name": cid,
            "species": HUMAN,
            "sex": sex,
            "disease": _first_col(df, "primary_disease", "cell_histology", "subtype")[cid.index],
            "category": _first_col(df, "cell_type")[cid.index],
            "ref_source": "lincs_cellinfo",
            "age": _first_col(df, "donor_age")[cid.index],
            "tissue": _first_col(df, "primary_site", "cell_lineage")[cid.index],
            "tissue_ontology_term_id": None,
            "disease_terms": _joined(
                _first_col(df, "subtype"),
                _first_col(df, "cell_histology"),
                _first_col(df, "primary_disease"),
            )[cid.index],
            "disease_ontology_term_id": None,
            "ethnicity": _first_col(df, "donor_ethnicity")[cid.index],
        }
    )
    syn = [pd.DataFrame({"accession": acc, "synonym": cid, "kind": "lincs_id"})]
    for col, kind in (("ccle_name", "ccle_name"), ("cell_alias", "synonym")):
        if col in df.columns:
            base = pd.DataFrame({"accession": acc, col: _blank_to_none(df[col])[cid.index]})
            syn.append(_split_explode(base, "accession", col, "|", kind))
    out = pd.concat(syn, ignore_index=True).dropna().drop_duplicates()
    out["ref_source"] = "lincs_cellinfo"
    return {"cells": cells.reset_index(drop=True), "cell_synonyms": out.reset_index(drop=True)}


# --------------------------------------------------------------------------------------
# User files
# --------------------------------------------------------------------------------------


def parse_cell_synonyms_csv(path: Path) -> dict[str, pd.DataFrame]:
    """A user's cell synonyms (``synonym``, ``accession`` columns) → kind ``user``.

    User synonyms take precedence over every other source at resolve time.
    """
    sep = "\t" if ".tsv" in path.name.lower() else ","
    try:
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise FormatError(f"{path}: cannot read the cell synonyms file ({err})") from err
    _require(df, ["synonym", "accession"], path, "cell synonyms")
    out = pd.DataFrame(
        {
            "accession": df["accession"].str.strip(),
            "synonym": df["synonym"].str.strip(),
            "kind": "user",
            "ref_source": "user",
        }
    )
    empty = out[(out["accession"] == "") | (out["synonym"] == "")]
    if len(empty):
        raise SchemaError(
            "accession",
            "synonym and accession must not be empty",
            empty.index[:5].tolist(),
            where=str(path),
        )
    return {"cell_synonyms": out}


# --------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------


def _header_fields(line: str, sep: str) -> list[str]:
    return [f.strip().strip('"') for f in line.split(sep)]


_PARSERS = [
    RefParser(
        name="hgnc",
        description="HGNC complete set: approved genes, previous symbols, aliases, Entrez, Ensembl",
        patterns=("hgnc_complete_set*.txt", "hgnc_complete_set*.tsv"),
        tables=("genes", "gene_synonyms"),
        parse=parse_hgnc,
        sniff=lambda line: _header_fields(line, "\t")[:2] == ["hgnc_id", "symbol"],
    ),
    RefParser(
        name="ensembl_genes",
        description="Ensembl/GENCODE genes (GTF or BioMart export): names HGNC lacks",
        patterns=("*.gtf", "mart_export*.txt", "ensembl_genes*.tsv", "ensembl_genes*.txt"),
        tables=("genes", "gene_synonyms"),
        parse=parse_ensembl_genes,
    ),
    RefParser(
        name="cellosaurus",
        description="Cellosaurus flat file: cell line accessions CVCL_…, names, synonyms",
        patterns=("cellosaurus*.txt",),
        tables=("cells", "cell_synonyms"),
        parse=parse_cellosaurus,
    ),
    RefParser(
        name="depmap_sample_info",
        description="DepMap sample info / Model table: DepMap ids, CCLE names, RRIDs",
        patterns=("*sample_info*.csv", "Model*.csv"),
        tables=("cells", "cell_synonyms"),
        parse=parse_depmap_sample_info,
        sniff=lambda line: bool({"DepMap_ID", "ModelID"} & set(_header_fields(line, ","))),
    ),
    RefParser(
        name="lincs_cellinfo",
        description="LINCS cell info: L1000 cell ids (linked to accessions by name)",
        patterns=("cellinfo*.tsv", "cellinfo*.txt", "cell_info*.tsv", "cell_info*.txt"),
        tables=("cells", "cell_synonyms"),
        parse=parse_lincs_cellinfo,
        sniff=lambda line: bool({"cell_id", "cell_iname"} & set(_header_fields(line, "\t"))),
    ),
    RefParser(
        name=CL_CSV_SOURCE,
        description="User Cell Ontology terms (accession, name, synonyms)",
        patterns=("cell_ontology*.csv", "cell_ontology*.tsv"),
        tables=("cells", "cell_synonyms"),
        parse=read_cell_ontology_csv,
    ),
    RefParser(
        name="cell_synonyms_csv",
        description="User cell synonyms (synonym, accession); they win over other sources",
        patterns=("cell_synonyms*.csv", "cell_synonyms*.tsv"),
        tables=("cell_synonyms",),
        parse=parse_cell_synonyms_csv,
    ),
]

_known = {p.name for p in list_parsers()}
for _p in _PARSERS:
    if _p.name not in _known:
        register_parser(_p)

"""Genes from Bioconductor's ``org.Hs.eg.db``: Entrez ↔ Ensembl ↔ symbol, offline.

The annotation package ``org.Hs.eg.db`` (Debian ``r-bioc-org.hs.eg.db``) ships its data
as one SQLite file, ``org.Hs.eg.sqlite``, built from NCBI Entrez Gene: every human
Entrez gene (``genes``), its symbol and name (``gene_info``), its aliases (``alias``),
its Ensembl gene ids (``ensembl``) and its NCBI gene type (``genetype``). The parser
reads those tables (read only, no R needed) into the ``genes`` and ``gene_synonyms``
tables of :mod:`perturbridge.ids.tables`, keyed ``ENTREZ:<gene id>``:

- ``genes``: ``symbol`` and ``name`` as NCBI gives them, ``locus_group`` the NCBI gene
  type, ``status`` ``Entrez``, ``entrez_id``, ``ensembl_gene_id`` (the first of the
  gene's Ensembl ids in sorted order; all of them are synonyms);
- ``gene_synonyms``: kinds ``ncbi_symbol`` and ``ncbi_alias`` (weaker than every HGNC
  kind and than Ensembl names), ``entrez`` and ``ensembl``.

:class:`~perturbridge.ids.genes.GeneResolver` folds these genes into HGNC's: an Entrez
gene that HGNC lists is the HGNC gene (its names become weak synonyms of it, and its
Ensembl ids add the ones HGNC lacks); only the genes HGNC does not know stay under
their ``ENTREZ:`` key. The file is read from the installed Debian package when ``refs
build`` finds it (package source ``org_hs_eg_db``), or from a ``--from`` folder.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

import pandas as pd

from ..errors import FormatError
from .genes import ENTREZ_ONLY_PREFIX
from .tables import RefParser, list_parsers, register_parser

__all__ = ["SOURCE_ORGDB", "parse_orgdb_sqlite"]

SOURCE_ORGDB: Final = "org_hs_eg_db"
_TABLES: Final = ("genes", "gene_info", "alias", "ensembl", "genetype", "metadata")


def _read(con: sqlite3.Connection, sql: str) -> pd.DataFrame:
    return pd.read_sql_query(sql, con, dtype=str)


def parse_orgdb_sqlite(path: Path) -> dict[str, pd.DataFrame]:
    """``org.Hs.eg.sqlite`` → ``genes`` and ``gene_synonyms`` (see the module docs).

    Raises
    ------
    FormatError
        If the file is not an SQLite database with the OrgDb tables, or not a human one.
    """
    try:
        con = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
    except sqlite3.Error as err:
        raise FormatError(f"{path}: cannot open as SQLite ({err})") from err
    try:
        names = set(_read(con, "SELECT name FROM sqlite_master WHERE type='table'")["name"])
        missing = [t for t in _TABLES if t not in names]
        if missing:
            raise FormatError(
                f"{path}: not an org.*.eg.db SQLite file: tables {missing} are missing "
                f"(found {sorted(names)[:8]})"
            )
        meta = dict(_read(con, "SELECT name, value FROM metadata").to_numpy().tolist())
        if meta.get("TAXID") not in (None, "9606"):
            raise FormatError(
                f"{path}: an OrgDb of taxon {meta.get('TAXID')} ({meta.get('ORGANISM')}); "
                "only the human one (org.Hs.eg.db, taxon 9606) is read"
            )
        info = _read(
            con,
            "SELECT g._id AS id, g.gene_id AS entrez_id, i.symbol, i.gene_name AS name, "
            "t.gene_type AS locus_group FROM genes g "
            "LEFT JOIN gene_info i ON i._id = g._id LEFT JOIN genetype t ON t._id = g._id",
        )
        alias = _read(con, "SELECT _id AS id, alias_symbol AS synonym FROM alias")
        ensembl = _read(con, "SELECT _id AS id, ensembl_id AS synonym FROM ensembl")
    except (sqlite3.Error, pd.errors.DatabaseError) as err:
        raise FormatError(f"{path}: cannot read the OrgDb tables ({err})") from err
    finally:
        con.close()
    info = info.drop_duplicates("id")
    key = pd.Series(ENTREZ_ONLY_PREFIX + info["entrez_id"].to_numpy(), index=info["id"].to_numpy())
    ensembl = ensembl.sort_values(["id", "synonym"])
    first_ens = ensembl.drop_duplicates("id").set_index("id")["synonym"]
    genes = pd.DataFrame(
        {
            "hgnc_id": key.to_numpy(),
            "symbol": info["symbol"].to_numpy(),
            "name": info["name"].to_numpy(),
            "locus_group": info["locus_group"].to_numpy(),
            "status": "Entrez",
            "entrez_id": info["entrez_id"].to_numpy(),
            "ensembl_gene_id": first_ens.reindex(info["id"]).to_numpy(),
        }
    )
    symbol = dict(zip(info["id"], info["symbol"], strict=True))
    alias = alias[alias["synonym"].to_numpy() != alias["id"].map(symbol).to_numpy()]
    syn = pd.concat(
        [
            pd.DataFrame({"id": info["id"], "synonym": info["symbol"], "kind": "ncbi_symbol"}),
            alias.assign(kind="ncbi_alias"),
            pd.DataFrame({"id": info["id"], "synonym": info["entrez_id"], "kind": "entrez"}),
            ensembl.assign(kind="ensembl"),
        ],
        ignore_index=True,
    )
    syn = syn[syn["synonym"].notna() & syn["id"].isin(key.index)]
    syn = pd.DataFrame(
        {
            "hgnc_id": key.reindex(syn["id"]).to_numpy(),
            "synonym": syn["synonym"].to_numpy(),
            "kind": syn["kind"].to_numpy(),
        }
    ).drop_duplicates()
    version = meta.get("EGSOURCEDATE")
    genes.attrs["ref_version"] = f"Entrez Gene {version}" if version else None
    return {"genes": genes, "gene_synonyms": syn.reset_index(drop=True)}


_PARSER = RefParser(
    name=SOURCE_ORGDB,
    description="NCBI Entrez genes with Ensembl ids and aliases (org.Hs.eg.db's SQLite file)",
    patterns=("org.Hs.eg.sqlite",),
    tables=("genes", "gene_synonyms"),
    parse=parse_orgdb_sqlite,
)
if SOURCE_ORGDB not in {p.name for p in list_parsers()}:
    register_parser(_PARSER)

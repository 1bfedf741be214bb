"""The tables of a reference store and the registry of upstream-file parsers.

A parser reads one upstream public file in its native format and returns some of the
tables below (pandas DataFrames with exactly these columns, extra columns allowed
after them). ``refs build`` finds the files of every registered parser in the input
folder, concatenates the tables of the same name and writes them to the store.

Table contracts (column order is the contract; all ids are strings unless noted):

``compounds``
    one row per reference record: ``ref_source`` (parser name), ``ref_id`` (the
    record's id in that source: BRD id, broad_id, CID, ...), ``name`` (preferred name),
    ``smiles`` (as given, may be missing), ``inchikey`` (as given, ``InChIKey=`` prefix
    removed, may be missing), ``pubchem_cid`` (``Int64``), ``cas`` (may be missing).
``compound_synonyms``
    ``ref_source``, ``ref_id``, ``synonym`` (as given), ``kind`` (``name``, ``alias``,
    ``vendor_name``, ``cas``, ``brd``, ``cid``, ``user``).
``genes``
    ``hgnc_id``, ``symbol``, ``name``, ``locus_group``, ``status``, ``entrez_id``,
    ``ensembl_gene_id`` (current, without version).
``gene_synonyms``
    ``hgnc_id``, ``synonym``, ``kind`` (``symbol``, ``alias``, ``prev``, ``entrez``,
    ``ensembl``).
``cells``
    ``accession`` (``CVCL_…`` or ``CL:…``; a line that its source gives no Cellosaurus
    accession keeps a placeholder ``DepMap:ACH-…`` or ``LINCS:<cell_id>``), ``name``,
    ``species``, ``sex``, ``disease``, ``category``, ``ref_source``.
``cell_synonyms``
    ``accession``, ``synonym``, ``kind`` (``name``, ``synonym``, ``depmap_id``,
    ``ccle_name``, ``stripped_name``, ``lincs_id``, ``secondary_name``,
    ``secondary_synonym``, ``derived``, ``user``), ``ref_source``.

Derived (written by the store builder, not by a parser):

``compound_structures``
    one row per distinct structure string of ``compounds`` (its ``smiles``, or an extra
    ``inchi`` column where ``smiles`` is missing), computed once by
    :func:`perturbridge.ids.compound_index.compound_structures`: ``smiles`` (the input
    string, the join key), ``inchikey``, ``canonical_smiles``, ``parent_smiles``,
    ``parent_inchikey``, ``connectivity`` (first 14 characters of the parent key),
    ``tautomer_connectivity`` (same block of the parent's ``/KET /15T`` InChIKey),
    ``error`` (why RDKit could not standardize it, else missing).

``compound_name_keys``
    the keys of every reference name at every tier of :mod:`perturbridge.ids.names`
    (columns ``synonym``, ``rank`` (the tier), ``nkey``, ``alt``), computed once so
    that resolvers load them instead of recomputing them; used only when the
    manifest's ``compound_name_keys`` step has the current ``rules_version``.

A parser may put a version string (a release number, a date) in
``DataFrame.attrs["ref_version"]`` of any table it returns; the store records it in its
manifest, falling back to a date (``20200324``) or quarter (``21Q1``) in the file name.
The store adds a last column ``ref_file`` (the input file of each row) to every table.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import pandas as pd

__all__ = [
    "TABLE_COLUMNS",
    "RefParser",
    "get_parser",
    "list_parsers",
    "open_text",
    "register_parser",
]

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "compounds": ("ref_source", "ref_id", "name", "smiles", "inchikey", "pubchem_cid", "cas"),
    "compound_synonyms": ("ref_source", "ref_id", "synonym", "kind"),
    "genes": (
        "hgnc_id",
        "symbol",
        "name",
        "locus_group",
        "status",
        "entrez_id",
        "ensembl_gene_id",
    ),
    "gene_synonyms": ("hgnc_id", "synonym", "kind"),
    "cells": ("accession", "name", "species", "sex", "disease", "category", "ref_source"),
    "cell_synonyms": ("accession", "synonym", "kind", "ref_source"),
}


@dataclass(frozen=True)
class RefParser:
    """A parser of one kind of upstream reference file.

    ``patterns`` are file-name globs (matched against the base name, ``.gz`` allowed)
    that identify the file in a ``--from`` folder; ``sniff`` optionally confirms from the
    header line that a matching file really is of this kind.
    """

    name: str
    description: str
    patterns: tuple[str, ...]
    tables: tuple[str, ...]
    parse: Callable[[Path], dict[str, pd.DataFrame]]
    sniff: Callable[[str], bool] | None = None


_PARSERS: dict[str, RefParser] = {}


def register_parser(parser: RefParser) -> RefParser:
    """Add a parser to the registry (names are unique)."""
    if parser.name in _PARSERS:
        raise ValueError(f"reference parser {parser.name!r} is already registered")
    unknown = set(parser.tables) - set(TABLE_COLUMNS)
    if unknown:
        raise ValueError(f"parser {parser.name!r} declares unknown tables {sorted(unknown)}")
    _PARSERS[parser.name] = parser
    return parser


def get_parser(name: str) -> RefParser:
    try:
        return _PARSERS[name]
    except KeyError:
        raise KeyError(f"unknown reference parser {name!r}; known: {sorted(_PARSERS)}") from None


def list_parsers() -> list[RefParser]:
    return list(_PARSERS.values())


def open_text(path: Path) -> TextIO:
    """An upstream text file (gzipped when its name ends in ``.gz``), UTF-8, undecodable
    bytes replaced: how every parser opens its file."""
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")

"""The local reference store: upstream reference files → versioned Parquet tables.

Layout of a store folder::

    refs/
      manifest.json              format version, package version, inputs, tables, notes
      genes.parquet              one file per table of perturbridge.ids.tables
      gene_synonyms.parquet
      cells.parquet
      cell_synonyms.parquet
      compounds.parquet          (when compound files were given)
      compound_synonyms.parquet
      compound_structures.parquet  (derived by perturbridge.ids.compound_index)
      compound_name_keys.parquet   (derived: the name keys of every reference name)
      compound_records.parquet     (derived: the compound resolver's lookup, see
      compound_lookup.parquet       perturbridge.ids.compound_lookup)
      compound_parents.parquet
      cell_records.parquet       (derived: the cell resolver's lookup, see
      cell_lookup.parquet         perturbridge.ids.cells)
      gene_records.parquet       (derived: the gene resolver's lookup, see
      gene_symbols.parquet        perturbridge.ids.genes)
      gene_ids.parquet
      ontology_labels.parquet    (derived: MONDO and UBERON for the biology columns,
      ontology_texts.parquet      see perturbridge.ids.biology)

Every table keeps the contract columns of :data:`~perturbridge.ids.tables.TABLE_COLUMNS`
first (strings; ``pubchem_cid`` as nullable ``Int64``), then any extra columns of its
parsers, then ``ref_file``: the input file (relative to the ``--from`` folder) each row
came from. Each Parquet file carries the store format version in its schema metadata.

A build reads local files only and never opens a network connection: the compound
structures step standardizes the structures the files give, and a build with compounds
and ``online_pubchem=True`` is refused.

The store is read through :class:`~perturbridge.ids.reader.RefStoreReader` (the base of
:class:`RefStore`); building sits above the resolvers because it links LINCS cell ids
with :func:`~perturbridge.ids.cells.link_lincs_cells`. The parser modules
(:mod:`~perturbridge.ids.parsers_genes_cells`, :mod:`~perturbridge.ids.parsers_compounds`)
are imported here, which registers their parsers.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from .._version import __version__
from ..errors import FormatError, PerturbridgeError, SchemaError
from ..io._atomic import atomic_dir, file_sha256
from ..progress import track

# the parser modules register their parsers (tables.list_parsers) when imported
from . import parsers_compounds, parsers_genes_cells, parsers_orgdb  # noqa: F401
from ._frames import missing_as_none
from .biology import ONTOLOGY_TABLES, load_ontologies, ontology_step
from .cell_ontology import CELL_ONTOLOGY_VERSION, SOURCE_BUILTIN, cell_ontology_tables
from .cells import CELL_LOOKUP_TABLES, CellResolver, cell_lookup_step, link_lincs_cells
from .compound_index import compound_structures, name_key_rows, reference_names
from .compound_lookup import LOOKUP_TABLES, lookup_step
from .compounds import CompoundResolver
from .genes import GENE_LOOKUP_TABLES, GeneResolver, gene_lookup_step
from .names import NAME_RULES_VERSION
from .parsers_packages import PACKAGE_SOURCES, SOURCE_FDA, installed_package_sources
from .reader import MANIFEST, STORE_FORMAT, RefStoreReader, StoreError
from .tables import TABLE_COLUMNS, RefParser, list_parsers, open_text

__all__ = ["RefStore", "link_fda_names", "match_parser"]

logger = logging.getLogger(__name__)

#: Tables a store may hold besides the contract ones (derived steps).
DERIVED_TABLES = (
    "compound_structures",
    "compound_name_keys",
    *LOOKUP_TABLES,
    *CELL_LOOKUP_TABLES,
    *GENE_LOOKUP_TABLES,
    *ONTOLOGY_TABLES,
)
_META_KEY = b"perturbridge.refstore"
_SKIP_NAMES = frozenset({MANIFEST, "fetch_manifest.json"})
_DATE_IN_NAME = re.compile(r"(?<!\d)(20\d{2})[-_]?([01]\d)[-_]?([0-3]\d)(?!\d)")
_QUARTER_IN_NAME = re.compile(r"(?<![0-9A-Za-z])(\d{2}Q[1-4])(?![0-9A-Za-z])", re.IGNORECASE)


def _first_line(path: Path) -> str:
    try:
        with open_text(path) as fh:
            return fh.readline().rstrip("\r\n").lstrip("\ufeff")
    except (OSError, EOFError) as err:
        raise FormatError(f"{path}: cannot read the first line ({err})") from err


def match_parser(
    path: str | os.PathLike[str], *, parsers: Sequence[RefParser] | None = None
) -> tuple[RefParser | None, str]:
    """The parser of one file: by name pattern, then header sniff.

    Returns
    -------
    ``(parser, "")`` on a match, ``(None, why)`` otherwise (``why`` is ``""`` when no
    pattern matches, or says which parsers' sniffs rejected the header).

    Raises
    ------
    FormatError
        If several parsers claim the file.
    """
    path = Path(path)
    parsers = list_parsers() if parsers is None else list(parsers)
    name = path.name.lower()
    names = {name, name[:-3]} if name.endswith(".gz") else {name}
    by_name = [
        p
        for p in parsers
        if any(fnmatch.fnmatch(n, pat.lower()) for n in names for pat in p.patterns)
    ]
    if not by_name:
        return None, ""
    sniffed = [p for p in by_name if p.sniff is not None]
    header = _first_line(path) if sniffed else ""
    ok = [p for p in by_name if p.sniff is None or p.sniff(header)]
    if not ok:
        return None, (f"header rejected by {[p.name for p in by_name]}: {header[:80]!r}")
    if len(ok) > 1:
        raise FormatError(
            f"{path}: several reference parsers claim this file: {[p.name for p in ok]}; "
            "rename it so that only one pattern matches"
        )
    return ok[0], ""


def _version_from_name(name: str) -> str | None:
    m = _DATE_IN_NAME.search(name)
    if m:
        return f"{m.group(1)}-{m.group(2)}-{m.group(3)}"
    q = _QUARTER_IN_NAME.search(name)
    return q.group(1).upper() if q else None


def _check_table(df: pd.DataFrame, table: str, where: str) -> None:
    want = TABLE_COLUMNS[table]
    got = tuple(df.columns[: len(want)])
    if got != want:
        missing = [c for c in want if c not in df.columns]
        rule = f"table {table!r} must start with columns {list(want)}; " + (
            f"missing {missing}" if missing else f"found them in the order {list(got)}"
        )
        raise SchemaError(
            missing[0] if missing else got[0], rule, list(df.columns)[:10], where=where
        )


def _normalize(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """Contract columns as strings (``pubchem_cid`` as ``Int64``), missing as ``None``."""
    out = df.copy()
    for col in TABLE_COLUMNS.get(table, ()):
        if col == "pubchem_cid":
            out[col] = pd.to_numeric(out[col], errors="raise").astype("Int64")
            continue
        s = out[col]
        out[col] = missing_as_none(s).map(
            lambda v: v if v is None or isinstance(v, str) else str(v)
        )
    return out.reset_index(drop=True)


def _write_parquet(df: pd.DataFrame, path: Path, table: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        tbl = pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # mixed-type extra columns from several parsers: store them as text
        extra = [c for c in df.columns if c not in TABLE_COLUMNS.get(table, ())]
        df = df.astype({c: "string" for c in extra if df[c].dtype == object})
        tbl = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(tbl.schema.metadata or {})
    meta[_META_KEY] = json.dumps({"store_format": STORE_FORMAT, "table": table}).encode()
    pq.write_table(tbl.replace_schema_metadata(meta), path)


@dataclass
class _Build:
    source_dir: Path
    inputs: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    frames: dict[str, list[pd.DataFrame]] = field(default_factory=dict)

    def has_parser(self, name: str) -> bool:
        return any(inp["parser"] == name for inp in self.inputs)

    def add(self, tables: dict[str, pd.DataFrame], ref_file: str) -> dict[str, int]:
        counts = {}
        for name, df in tables.items():
            self.frames.setdefault(name, []).append(df.assign(ref_file=ref_file))
            counts[name] = len(df)
        return counts


def _is_store(path: Path) -> bool:
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "store_format" in manifest


class RefStore(RefStoreReader):
    """A reference store on disk: Parquet tables plus ``manifest.json``.

    Open one with :meth:`open`, build one with :meth:`build`. Tables are read on demand
    (:class:`~perturbridge.ids.reader.RefStoreReader`).

    Examples
    --------
    >>> store = RefStore.build(source_dir="upstream/", out="refs")  # doctest: +SKIP
    >>> store.tables  # doctest: +SKIP
    ['cell_synonyms', 'cells', 'gene_synonyms', 'genes']
    >>> store.duckdb().execute("select count(*) from genes").fetchone()  # doctest: +SKIP
    (43882,)
    """

    # ----------------------------------------------------------------------------------
    # building

    @classmethod
    def build(
        cls,
        *,
        source_dir: str | os.PathLike[str],
        out: str | os.PathLike[str],
        online_pubchem: bool = False,
        package_sources: Sequence[str] | Literal["auto"] = (),
        progress: bool = False,
        overwrite: bool = False,
    ) -> RefStore:
        """Build a store from the upstream files in ``source_dir``.

        Walks ``source_dir`` recursively (hidden files and ``*.part`` downloads skipped),
        gives each file to the registered parser whose name pattern (and header sniff)
        matches, concatenates the tables of the same name, checks their columns, runs the
        derived steps (LINCS cell linking, compound structures) and writes everything
        into a temporary folder beside ``out`` that is renamed onto ``out`` at the end.

        Parameters
        ----------
        source_dir
            Folder of upstream files (as fetched by ``perturbridge refs fetch``).
        out
            The store folder. It may not exist yet or be empty; an earlier store is
            replaced only with ``overwrite=True`` (``--force``); anything else is refused.
        online_pubchem
            Ask the derived compound step to query PubChem online; the step has no
            online mode, so a build with compound files refuses it (a
            :class:`~perturbridge.ids.reader.StoreError`).
        package_sources
            Reference files shipped inside installed packages to read as well (see
            :mod:`perturbridge.ids.parsers_packages`): their names, or ``"auto"`` for
            every one that is installed (``refs build`` does that by default). A
            source whose package is missing is skipped with a note in the manifest;
            one whose parser already read a file of the ``source_dir`` is not read
            twice. Their provenance (package, version, file, SHA-256) is in the
            manifest's ``inputs``.
        progress
            Show a progress bar over the input files.

        Returns
        -------
        The opened store.

        Raises
        ------
        StoreError
            If ``out`` is a non-empty folder that is not a store, or a file.
        FormatError, SchemaError
            If an input file is malformed or a parser returns a table that breaks its
            contract; the message names the file.
        """
        src = Path(source_dir)
        dest = Path(out)
        if not src.is_dir():
            raise StoreError(f"source folder not found: {src}")
        _check_destination(dest, overwrite=overwrite)
        _check_package_sources(package_sources)
        state = _Build(source_dir=src)
        files = _input_files(src, dest)
        for path in track(files, description="reading reference files", enabled=progress):
            _read_one(state, path)
        _add_package_sources(state, package_sources)
        _add_builtin_cell_ontology(state)
        tables = _concat(state)
        derived = _derive(tables, state, online_pubchem=online_pubchem, progress=progress)
        manifest = {
            "store_format": STORE_FORMAT,
            "package": "perturbridge",
            "package_version": __version__,
            "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "source_dir": str(src.resolve()),
            "params": {
                "online_pubchem": online_pubchem,
                "package_sources": (
                    package_sources if isinstance(package_sources, str) else list(package_sources)
                ),
            },
            "inputs": state.inputs,
            "unmatched_files": state.unmatched,
            "tables": {
                name: {"rows": len(df), "columns": list(df.columns)} for name, df in tables.items()
            },
            "derived": derived,
            "notes": state.notes,
        }
        _write_store(dest, tables, manifest)
        return cls.open(dest)


# --------------------------------------------------------------------------------------
# build steps


def _check_destination(dest: Path, *, overwrite: bool = True) -> None:
    if not dest.exists():
        return
    if not dest.is_dir():
        raise StoreError(f"refusing to write a reference store over the file {dest}")
    if not any(dest.iterdir()):
        return
    if _is_store(dest):
        if overwrite:
            return
        tables = sorted(p.stem for p in dest.glob("*.parquet"))
        raise StoreError(
            f"{dest} is a reference store ({len(tables)} tables: {', '.join(tables[:8])}); "
            "building into it would replace it: pass --force (overwrite=True) to replace it, "
            "or choose another --out"
        )
    raise StoreError(
        f"refusing to overwrite {dest}: it is a non-empty folder that is not a reference "
        f"store (no {MANIFEST}); choose another --out or empty it"
    )


def _input_files(src: Path, dest: Path) -> list[Path]:
    dest_r = dest.resolve()
    out: list[Path] = []
    for path in sorted(src.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(src)
        if any(part.startswith(".") for part in rel.parts) or path.name in _SKIP_NAMES:
            continue
        if path.name.endswith(".part"):
            continue
        if dest_r in path.resolve().parents:
            continue  # the store itself lives inside the source folder
        out.append(path)
    return out


def _read_one(state: _Build, path: Path) -> None:
    rel = path.relative_to(state.source_dir).as_posix()
    parser, why = match_parser(path)
    if parser is None:
        state.unmatched.append({"path": rel, "reason": why or "no parser pattern matches"})
        logger.info("%s: not a reference file (%s)", rel, why or "no parser pattern matches")
        return
    logger.info("%s: parser %s", rel, parser.name)
    _parse_into(state, parser, path, rel, extra={})


def _parse_into(
    state: _Build, parser: RefParser, path: Path, rel: str, *, extra: dict[str, Any]
) -> None:
    try:
        tables = parser.parse(path)
    except (PerturbridgeError, FileNotFoundError):
        raise
    except (ValueError, KeyError, OSError, EOFError, UnicodeDecodeError) as err:
        raise FormatError(f"{rel}: the {parser.name} parser failed: {err}") from err
    unknown = set(tables) - set(parser.tables)
    if unknown:
        raise SchemaError(
            "table",
            f"parser {parser.name!r} returned tables {sorted(unknown)} it does not declare "
            f"({list(parser.tables)})",
            sorted(unknown),
            where=rel,
        )
    version = next(
        (str(df.attrs["ref_version"]) for df in tables.values() if df.attrs.get("ref_version")),
        None,
    ) or _version_from_name(path.name)
    for name, df in tables.items():
        _check_table(df, name, rel)
        tables[name] = _normalize(df, name)
    counts = state.add(tables, rel)
    state.inputs.append(
        {
            "parser": parser.name,
            "path": rel,
            "size": path.stat().st_size,
            "sha256": file_sha256(path),
            "version": version,
            "rows": counts,
            **extra,
        }
    )


def _check_package_sources(wanted: Sequence[str] | Literal["auto"]) -> None:
    if isinstance(wanted, str):
        if wanted != "auto":
            raise ValueError(
                f"expected package_sources 'auto' or a list of names, found {wanted!r}"
            )
        return
    unknown = [n for n in wanted if n not in PACKAGE_SOURCES]
    if unknown:
        raise KeyError(f"unknown package sources {unknown}; known: {sorted(PACKAGE_SOURCES)}")


def _add_package_sources(state: _Build, wanted: Sequence[str] | Literal["auto"]) -> None:
    """Read the reference files of installed packages (``"auto"``: every one found)."""
    if not isinstance(wanted, str) and not wanted:
        return
    found, skipped = installed_package_sources(None if wanted == "auto" else list(wanted))
    if skipped and wanted != "auto":
        raise StoreError(
            "package sources not available: "
            + "; ".join(f"{n}: {why}" for n, why in skipped.items())
        )
    for n, why in skipped.items():
        state.notes.append(f"package source {n} skipped: {why}")
    for f in found:
        if state.has_parser(f.source.parser):
            state.notes.append(
                f"package source {f.source.name} not read: the --from folder has a file of "
                f"the {f.source.parser} parser"
            )
            continue
        parser = next(p for p in list_parsers() if p.name == f.source.parser)
        extra = {"package": f.source.distribution, "package_version": f.version, "file": f.relpath}
        _parse_into(state, parser, f.path, f"package:{f.relpath}", extra=extra)


def _add_builtin_cell_ontology(state: _Build) -> None:
    tables = {k: _normalize(v, k) for k, v in cell_ontology_tables().items()}
    counts = state.add(tables, f"builtin:{SOURCE_BUILTIN}")
    state.inputs.append(
        {
            "parser": SOURCE_BUILTIN,
            "path": None,
            "size": None,
            "sha256": None,
            "version": CELL_ONTOLOGY_VERSION,
            "rows": counts,
        }
    )


def _concat(state: _Build) -> dict[str, pd.DataFrame]:
    out: dict[str, pd.DataFrame] = {}
    for name, frames in state.frames.items():
        df = pd.concat(frames, ignore_index=True)
        cols = list(TABLE_COLUMNS[name])
        extra = [c for c in df.columns if c not in cols and c != "ref_file"]
        out[name] = df[[*cols, *extra, "ref_file"]]
    return out


def _derive(
    tables: dict[str, pd.DataFrame], state: _Build, *, online_pubchem: bool, progress: bool
) -> list[dict[str, Any]]:
    derived: list[dict[str, Any]] = []
    # LINCS cell ids → accessions
    if "cells" in tables and "cell_synonyms" in tables:
        cells, syn, report = link_lincs_cells(tables["cells"], tables["cell_synonyms"])
        tables["cells"], tables["cell_synonyms"] = cells, syn
        derived.append({"step": "link_lincs_cells", "status": "done", **report})
        # the cell resolver's lookup, keyed once (perturbridge.ids.cells: saved lookup)
        lookup, step = cell_lookup_step(CellResolver(cells, syn))
        tables.update(lookup)
        derived.append(step)
        onto = load_ontologies()
        if onto is not None:  # MONDO/UBERON for the biology columns, read once
            lookup, step = ontology_step(onto)
            tables.update(lookup)
            derived.append(step)
    if "genes" in tables and "gene_synonyms" in tables:
        # the gene resolver's lookup, keyed once (perturbridge.ids.genes: saved lookup)
        lookup, step = gene_lookup_step(GeneResolver(tables["genes"], tables["gene_synonyms"]))
        tables.update(lookup)
        derived.append(step)
    # compound structures, standardized once with RDKit
    if "compounds" in tables:
        if online_pubchem:
            raise StoreError(
                "online_pubchem=True, but the compound structures step "
                "(perturbridge.ids.compound_index.compound_structures) has no online_pubchem "
                "parameter: it standardizes the structures the files give; build without it"
            )
        structures = compound_structures(tables["compounds"], progress=progress)
        # the keys of every reference name, computed once (the FDA linking and the
        # resolvers that load the store use them); the names of FDA substances are keyed
        # once they are linked (most are not, and are dropped)
        empty = pd.DataFrame(columns=list(TABLE_COLUMNS["compound_synonyms"]))
        keys = _name_keys(tables["compounds"], tables.get("compound_synonyms", empty))
        if (tables["compounds"]["ref_source"] == SOURCE_FDA).any():
            report = link_fda_names(tables, structures, name_keys=keys, progress=progress)
            derived.append({"step": "link_fda_names", "status": "done", **report})
            structures = _add_structures(structures, tables["compounds"], progress=progress)
            keys = _name_keys(tables["compounds"], tables["compound_synonyms"], known=keys)
        tables["compound_structures"] = structures.reset_index(drop=True)
        derived.append({"step": "compound_structures", "status": "done", "rows": len(structures)})
        tables["compound_name_keys"] = keys.reset_index(drop=True)
        derived.append(
            {
                "step": "compound_name_keys",
                "status": "done",
                "rows": len(keys),
                "rules_version": NAME_RULES_VERSION,
            }
        )
        # the resolver's lookup, built once (resolvers load it: perturbridge.ids.compound_lookup)
        resolver = CompoundResolver.from_tables(
            compounds=tables["compounds"],
            compound_synonyms=tables.get("compound_synonyms", empty),
            structures=tables["compound_structures"],
            name_keys=tables["compound_name_keys"],
        )
        lookup = resolver.lookup_tables()
        tables.update(lookup)
        rows = {name: len(df) for name, df in lookup.items()}
        derived.append(lookup_step(majority=resolver.majority, rows=rows))
    elif online_pubchem:
        state.notes.append("online_pubchem ignored: the build has no compounds table")
    return derived


def _name_keys(
    compounds: pd.DataFrame, synonyms: pd.DataFrame, *, known: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The name keys of the reference names.

    Without ``known`` (before linking): those of the other sources, and of the FDA
    names that linking resolves (not the other names of FDA substances, most of which
    are dropped with their substance); with ``known``: of every name, taken from
    ``known`` where it has them.
    """
    if known is None:
        fda = (synonyms["ref_source"] == SOURCE_FDA).to_numpy()
        link = _fda_link_names(synonyms[fda])["synonym"].to_numpy()
        compounds = compounds[(compounds["ref_source"] != SOURCE_FDA).to_numpy()]
        names = reference_names(compounds, synonyms[~fda])["synonym"].to_numpy()
        return name_key_rows(pd.unique(np.concatenate([names, link])))
    names = reference_names(compounds, synonyms)["synonym"].to_numpy()
    return name_key_rows(pd.unique(names), known)


def _fda_link_names(fda_synonyms: pd.DataFrame) -> pd.DataFrame:
    """The synonyms of FDA substances that :func:`link_fda_names` resolves."""
    syn = fda_synonyms
    kind = syn["name_type"] if "name_type" in syn else syn["kind"]
    return syn[kind.isin(["display", "of", "name"]).to_numpy()]


#: Match types accepted when a structureless record is linked by its name at build time
#: (the name as given, or without its salt words: the same parent).
_LINK_MATCHES = frozenset({"synonym", "normalized_name", "desalted"})


def link_fda_names(
    tables: dict[str, pd.DataFrame],
    structures: pd.DataFrame,
    *,
    name_keys: pd.DataFrame | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Give the FDA substances (names, no structures) the structure their names resolve to.

    Each substance's display and official names are resolved against the structural
    records of the other sources (exact, normalized or desalted name; the majority rule
    of :class:`~perturbridge.ids.compounds.CompoundResolver` applies). A substance whose
    names agree on one parent connectivity block takes the structure (``smiles``,
    ``inchikey``) of the representative record, with ``linked_by`` saying which
    record and name; the others (no structure among the names, or names that disagree)
    are dropped with their synonyms, counted in the report. Done once here so that
    resolvers never link at load time.

    ``tables`` (``compounds`` and ``compound_synonyms``) is updated in place;
    ``structures`` is the ``compound_structures`` table of the other sources;
    ``name_keys``, precomputed keys of the reference names and of the FDA names to
    link (:func:`~perturbridge.ids.compound_index.name_key_rows`), saves keying them
    here.
    """
    comp, syn = tables["compounds"], tables["compound_synonyms"]
    is_named = (comp["ref_source"] == SOURCE_FDA).to_numpy()
    other_syn = syn[(syn["ref_source"] != SOURCE_FDA).to_numpy()]
    named_syn = syn[(syn["ref_source"] == SOURCE_FDA).to_numpy()]
    report: dict[str, Any] = {"substances": int(is_named.sum()), "linked": 0, "conflicting": 0}
    linked = pd.DataFrame(columns=["ref_id", "conn", "smiles", "inchikey", "linked_by"])
    if (~is_named).any():
        resolver = CompoundResolver.from_tables(
            compounds=comp[~is_named],
            compound_synonyms=other_syn,
            structures=structures,
            name_keys=name_keys,
        )
        names = _fda_link_names(named_syn)
        out = resolver.resolve(names["synonym"], kind="name", name_keys=name_keys)
        base = out["match_type"].fillna("").str.replace("+majority", "", regex=False)
        ok = (out["status"] == "resolved").to_numpy() & base.isin(_LINK_MATCHES).to_numpy()
        hits = pd.DataFrame(
            {
                "ref_id": names["ref_id"].to_numpy()[ok],
                "conn": out["connectivity"].to_numpy()[ok],
                "smiles": out["smiles"].to_numpy()[ok],
                "inchikey": out["inchikey"].to_numpy()[ok],
                "linked_by": [
                    f"name {q!r} → {s}:{i}"
                    for q, s, i in zip(
                        out["query"].to_numpy()[ok],
                        out["ref_source"].to_numpy()[ok],
                        out["ref_id"].to_numpy()[ok],
                        strict=True,
                    )
                ],
            }
        )
        n_blocks = hits.groupby("ref_id")["conn"].nunique()
        report["conflicting"] = int((n_blocks > 1).sum())
        linked = hits[hits["ref_id"].map(n_blocks).to_numpy() == 1].drop_duplicates("ref_id")
    keep_ids = set(linked["ref_id"])
    named = comp[is_named]
    named = named[named["ref_id"].isin(keep_ids).to_numpy()].drop(columns=["smiles", "inchikey"])
    named = named.merge(linked.drop(columns="conn"), on="ref_id", how="left")
    cols = list(comp.columns) + (["linked_by"] if "linked_by" not in comp else [])
    tables["compounds"] = pd.concat([comp[~is_named], named], ignore_index=True)[cols]
    drop = (syn["ref_source"] == SOURCE_FDA).to_numpy() & ~syn["ref_id"].isin(keep_ids).to_numpy()
    tables["compound_synonyms"] = syn[~drop].reset_index(drop=True)
    report["linked"] = len(keep_ids)
    report["dropped"] = report["substances"] - len(keep_ids)
    report["synonyms_dropped"] = int(drop.sum())
    logger.info(
        "FDA substances: %d linked to a structure by name, %d dropped",
        report["linked"],
        report["dropped"],
    )
    return report


def _add_structures(
    structures: pd.DataFrame, compounds: pd.DataFrame, *, progress: bool
) -> pd.DataFrame:
    """``structures`` plus the structure strings of ``compounds`` it lacks.

    The FDA substances took the canonical SMILES of the records they were linked to:
    the standardized row of that canonical SMILES is the row it came from (same
    structure), copied under the new string instead of standardized a second time.
    Only strings no row has as its canonical SMILES are standardized.
    """
    have = pd.Index(structures["smiles"].dropna())
    smiles = compounds["smiles"]
    missing = pd.unique(smiles[~smiles.isin(have) & smiles.notna()].to_numpy())
    if missing.size == 0:
        return structures
    ok = structures[structures["error"].isna() & structures["canonical_smiles"].notna()]
    donors = ok.drop_duplicates("canonical_smiles").set_index("canonical_smiles", drop=False)
    known = pd.Index(missing).isin(donors.index)
    copied = donors.loc[missing[known]].reset_index(drop=True)
    copied["smiles"] = copied["canonical_smiles"].to_numpy()
    parts = [structures, copied[structures.columns]]
    if (~known).any():
        parts.append(
            compound_structures(pd.DataFrame({"smiles": missing[~known]}), progress=progress)
        )
    return pd.concat(parts, ignore_index=True)


def _write_store(dest: Path, tables: dict[str, pd.DataFrame], manifest: dict[str, Any]) -> None:
    with atomic_dir(dest, replace=True) as tmp:
        for name, df in tables.items():
            _write_parquet(df, tmp / f"{name}.parquet", name)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        if dest.exists():
            _check_destination(dest)  # still a store or empty?

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
from typing import Any

import pandas as pd

from .._version import __version__
from ..errors import FormatError, PerturbridgeError, SchemaError
from ..io._atomic import atomic_dir, file_sha256
from ..progress import track

# the parser modules register their parsers (tables.list_parsers) when imported
from . import parsers_compounds, parsers_genes_cells  # noqa: F401
from ._frames import missing_as_none
from .cell_ontology import CELL_ONTOLOGY_VERSION, SOURCE_BUILTIN, cell_ontology_tables
from .cells import link_lincs_cells
from .compound_index import compound_structures
from .reader import MANIFEST, STORE_FORMAT, RefStoreReader, StoreError
from .tables import TABLE_COLUMNS, RefParser, list_parsers, open_text

__all__ = ["RefStore", "match_parser"]

logger = logging.getLogger(__name__)

#: Tables a store may hold besides the contract ones (derived steps).
DERIVED_TABLES = ("compound_structures",)
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
        state = _Build(source_dir=src)
        files = _input_files(src, dest)
        for path in track(files, description="reading reference files", enabled=progress):
            _read_one(state, path)
        _add_builtin_cell_ontology(state)
        tables = _concat(state)
        derived = _derive(tables, state, online_pubchem=online_pubchem, progress=progress)
        manifest = {
            "store_format": STORE_FORMAT,
            "package": "perturbridge",
            "package_version": __version__,
            "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "source_dir": str(src.resolve()),
            "params": {"online_pubchem": online_pubchem},
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
        }
    )


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
    # compound structures, standardized once with RDKit
    if "compounds" in tables:
        if online_pubchem:
            raise StoreError(
                "online_pubchem=True, but the compound structures step "
                "(perturbridge.ids.compound_index.compound_structures) has no online_pubchem "
                "parameter: it standardizes the structures the files give; build without it"
            )
        structures = compound_structures(tables["compounds"], progress=progress)
        tables["compound_structures"] = structures.reset_index(drop=True)
        derived.append({"step": "compound_structures", "status": "done", "rows": len(structures)})
    elif online_pubchem:
        state.notes.append("online_pubchem ignored: the build has no compounds table")
    return derived


def _write_store(dest: Path, tables: dict[str, pd.DataFrame], manifest: dict[str, Any]) -> None:
    with atomic_dir(dest, replace=True) as tmp:
        for name, df in tables.items():
            _write_parquet(df, tmp / f"{name}.parquet", name)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        if dest.exists():
            _check_destination(dest)  # still a store or empty?

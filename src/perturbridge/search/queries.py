"""Search queries: up/down gene sets or a signature, read from files, resolved to a store.

A :class:`Query` holds gene identifiers as the user gave them; :func:`resolve_query`
maps them onto a store's gene axis (:meth:`perturbridge.compendium.Compendium.genes`)
and returns a :class:`ResolvedQuery` of store gene columns, with every identifier that
did not match recorded in ``unmatched``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ..ids.genes import GeneResolver

__all__ = [
    "Query",
    "ResolvedQuery",
    "queries_from_files",
    "read_gene_set",
    "read_gmt",
    "read_signature",
    "resolve_query",
]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Query:
    """A search query: up and/or down gene sets, or a signature (gene → value).

    Exactly one of the two kinds: gene sets (``up``, ``down``, at least one non-empty)
    or ``signature`` (a Series of gene identifier → logFC or t).
    """

    name: str
    up: tuple[str, ...] = ()
    down: tuple[str, ...] = ()
    signature: pd.Series | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a query needs a non-empty name, found {self.name!r}")
        object.__setattr__(self, "up", tuple(str(g) for g in self.up))
        object.__setattr__(self, "down", tuple(str(g) for g in self.down))
        has_sets = bool(self.up or self.down)
        if self.signature is not None and has_sets:
            raise ValueError(
                f"query {self.name!r}: give either up/down gene sets or a signature, not both"
            )
        if self.signature is None and not has_sets:
            raise ValueError(f"query {self.name!r} is empty: no up, down or signature genes")
        if self.signature is not None:
            _check_signature(self.name, self.signature)

    @property
    def kind(self) -> str:
        """``"sets"`` or ``"signature"``."""
        return "signature" if self.signature is not None else "sets"


def _check_signature(name: str, sig: object) -> None:
    if not isinstance(sig, pd.Series):
        raise TypeError(
            f"query {name!r}: a signature is a pandas Series of gene → value, "
            f"found {type(sig).__name__}"
        )
    if sig.empty:
        raise ValueError(f"query {name!r}: the signature is empty")
    try:
        values = sig.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"query {name!r}: signature values must be numbers ({err})") from err
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"query {name!r}: {int(bad.sum())} signature values are not finite numbers "
            f"(first: {list(sig.index[bad][:5])}); leave unmeasured genes out"
        )
    dup = sig.index[sig.index.duplicated()]
    if len(dup):
        raise ValueError(f"query {name!r}: genes listed twice in the signature: {list(dup[:5])}")


@dataclass(frozen=True)
class ResolvedQuery:
    """A query mapped onto a store's gene axis (int64 store gene columns)."""

    query: Query
    up_cols: np.ndarray
    down_cols: np.ndarray
    signature_cols: np.ndarray
    signature_values: np.ndarray
    unmatched: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.query.name

    @property
    def cols(self) -> np.ndarray:
        """Every store gene column the query reads (sorted, unique)."""
        return np.unique(np.concatenate([self.up_cols, self.down_cols, self.signature_cols]))


# ------------------------------------------------------------------------------ files


def _lines(path: PathLike, what: str) -> list[tuple[int, str]]:
    """(line number, text) of the non-empty, non-comment lines of a text file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{what} file {p} is not UTF-8 text: {err}") from err
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            out.append((number, line.rstrip("\r\n")))
    return out


def read_gene_set(path: PathLike) -> tuple[str, ...]:
    """A gene set from a text or CMap GRP file: one gene per line.

    Blank lines and lines starting with ``#`` (GRP comments) are skipped; a gene listed
    twice is kept once. ValueError when the file is empty or a line holds several
    fields (a GMT or table file given as a gene set).
    """
    genes: list[str] = []
    for number, line in _lines(path, "gene set"):
        fields = [f for f in re.split(r"[\t,;]", line.strip()) if f.strip()]
        if len(fields) != 1 or " " in line.strip():
            raise ValueError(
                f"gene set file {path}: line {number} holds several fields "
                f"({line.strip()[:60]!r}); a gene set file lists one gene per line "
                "(GMT files go through read_gmt)"
            )
        genes.append(fields[0].strip())
    if not genes:
        raise ValueError(f"gene set file {path} lists no gene")
    return tuple(dict.fromkeys(genes))


def read_gmt(path: PathLike) -> list[tuple[str, tuple[str, ...]]]:
    """Gene sets from a GMT file: per tab-separated line a name, a description, genes.

    A ``.gmx`` file (CMap's column-wise layout: a row of names, a row of descriptions,
    then the genes of each set down its column) is read as well. Returns ``(name,
    genes)`` per set in file order (a gene listed twice in a set is kept once).
    ValueError naming the line or column when a set has no gene, a set name repeats, or
    the file holds no set.
    """
    if Path(path).suffix.lower() == ".gmx":
        return _read_gmx(path)
    sets: list[tuple[str, tuple[str, ...]]] = []
    seen: dict[str, int] = {}
    for number, line in _lines(path, "GMT"):
        fields = line.split("\t")
        name = fields[0].strip()
        genes = [g.strip() for g in fields[2:] if g.strip()]
        if len(fields) < 3 or not name or not genes:
            raise ValueError(
                f"GMT file {path}: line {number} is not 'name<TAB>description<TAB>gene...' "
                f"with at least one gene (found {len(fields)} tab-separated fields)"
            )
        if name in seen:
            raise ValueError(
                f"GMT file {path}: set {name!r} on line {number} repeats line {seen[name]}"
            )
        seen[name] = number
        sets.append((name, tuple(dict.fromkeys(genes))))
    if not sets:
        raise ValueError(f"GMT file {path} holds no gene set")
    return sets


def _read_gmx(path: PathLike) -> list[tuple[str, tuple[str, ...]]]:
    rows = [line.split("\t") for _, line in _lines(path, "GMX")]
    if len(rows) < 2:
        raise ValueError(f"GMX file {path} needs a row of set names and one of descriptions")
    names = [n.strip() for n in rows[0]]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise ValueError(f"GMX file {path} holds no gene set")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup or "" in names:
        raise ValueError(
            f"GMX file {path}: set names must be non-empty and unique; found {names[:8]}"
        )
    sets = []
    for i, name in enumerate(names):
        genes = [r[i].strip() for r in rows[2:] if i < len(r) and r[i].strip()]
        if not genes:
            raise ValueError(f"GMX file {path}: set {name!r} (column {i + 1}) has no gene")
        sets.append((name, tuple(dict.fromkeys(genes))))
    return sets


_GENE_COLUMNS = ("gene", "gene_id", "gene_symbol", "symbol", "id", "entrez", "entrez_id", "name")
_VALUE_COLUMNS = ("logfc", "log2foldchange", "t", "score", "value", "z", "zscore")


def read_signature(
    path: PathLike, *, gene_column: str | None = None, value_column: str | None = None
) -> pd.Series:
    """A signature (gene → value) from a CSV or TSV table.

    The gene column is ``gene_column`` or the first of gene, gene_id, gene_symbol,
    symbol, id, entrez, entrez_id, name (any case), else the first column; the value
    column is ``value_column`` or the first of logFC, log2FoldChange, t, score, value,
    z, zscore, else the only numeric column. ValueError naming the file, the column and
    the first offending entries for a missing column, non-numeric or missing values,
    or a gene listed twice.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"signature file not found: {p}")
    sep = "," if p.suffix.lower() == ".csv" else None
    try:
        table = pd.read_csv(p, sep=sep, engine="python", dtype=str, comment="#")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"signature file {p} is not a CSV/TSV table: {err}") from err
    if table.shape[1] < 2 or table.empty:
        raise ValueError(
            f"signature file {p} needs a gene column and a value column and at least one "
            f"row; found columns {list(table.columns)} and {len(table)} rows"
        )
    lower = {str(c).lower(): str(c) for c in table.columns}

    def pick(given: str | None, names: tuple[str, ...], what: str) -> str | None:
        if given is not None:
            if given not in table.columns:
                raise ValueError(
                    f"signature file {p} has no {what} column {given!r}; "
                    f"columns: {list(table.columns)}"
                )
            return given
        return next((lower[n] for n in names if n in lower), None)

    gene = pick(gene_column, _GENE_COLUMNS, "gene") or str(table.columns[0])
    value = pick(value_column, _VALUE_COLUMNS, "value")
    if value is None:
        numeric = [
            c
            for c in table.columns
            if c != gene and pd.to_numeric(table[c], errors="coerce").notna().all()
        ]
        if len(numeric) != 1:
            raise ValueError(
                f"signature file {p}: cannot tell the value column (name it logFC, t, score "
                f"or value, or pass value_column); numeric columns: {numeric}"
            )
        value = str(numeric[0])
    if value == gene:
        raise ValueError(f"signature file {p}: the gene and value columns are both {gene!r}")
    genes = table[gene].astype(str).str.strip()
    raw = table[value]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() | ~np.isfinite(values.fillna(0).to_numpy(dtype=np.float64))
    if bad.any():
        at = np.flatnonzero(bad.to_numpy())[:5]
        rows = [f"{genes.iloc[i]}={raw.iloc[i]!r}" for i in at]
        raise ValueError(
            f"signature file {p}: {int(bad.sum())} values of column {value!r} are missing or "
            f"not finite numbers: {rows} (remove those genes)"
        )
    missing_gene = genes.isin(["", "nan", "None"]) | table[gene].isna()
    if missing_gene.any():
        raise ValueError(
            f"signature file {p}: {int(missing_gene.sum())} rows have no gene in column "
            f"{gene!r} (first at data row {int(np.flatnonzero(missing_gene)[0]) + 1})"
        )
    dup = genes[genes.duplicated()].unique().tolist()
    if dup:
        raise ValueError(
            f"signature file {p}: genes listed more than once in column {gene!r}: {dup[:5]}"
        )
    return pd.Series(
        values.to_numpy(dtype=np.float64), index=pd.Index(genes, name="gene"), name=value
    )


_SUFFIX = re.compile(r"[_.-]?(up|dn|down)$", re.IGNORECASE)


def _pair_key(name: str) -> str:
    return _SUFFIX.sub("", name)


def queries_from_files(
    *,
    up: PathLike | None = None,
    down: PathLike | None = None,
    gmt: PathLike | None = None,
    gmt_down: PathLike | None = None,
    signature: PathLike | None = None,
) -> list[Query]:
    """Queries from files: up/down gene sets, GMT files, or a signature table.

    Give one kind: ``up`` and/or ``down`` (text/GRP files; one query named after the up
    file, else the down file), ``gmt`` (one up-set query per set) with optionally
    ``gmt_down`` (down sets paired by name: the same name, or names that differ by an
    ``_up``/``_dn``/``_down`` suffix; the query takes the common name), or
    ``signature`` (a CSV/TSV table, one query named after the file).
    """
    kinds = [
        k
        for k, given in (
            ("up/down", up is not None or down is not None),
            ("gmt", gmt is not None or gmt_down is not None),
            ("signature", signature is not None),
        )
        if given
    ]
    if len(kinds) != 1:
        raise ValueError(
            "give exactly one kind of query file: up/down gene sets, GMT, or a signature; "
            f"found {kinds or 'none'}"
        )
    if signature is not None:
        return [Query(Path(signature).stem, signature=read_signature(signature))]
    if up is not None or down is not None:
        up_genes = read_gene_set(up) if up is not None else ()
        down_genes = read_gene_set(down) if down is not None else ()
        name = _pair_key(Path(up if up is not None else down).stem)  # type: ignore[arg-type]
        return [Query(name or "query", up=up_genes, down=down_genes)]
    if gmt is None:
        raise ValueError("gmt_down needs gmt, the file of the up sets")
    ups = read_gmt(gmt)
    if gmt_down is None:
        return [Query(name, up=genes) for name, genes in ups]
    downs = read_gmt(gmt_down)
    up_by = _by_key(ups, gmt)
    down_by = _by_key(downs, gmt_down)
    lonely = sorted(set(up_by) ^ set(down_by))
    if lonely:
        raise ValueError(
            f"GMT sets without a partner: {lonely[:5]}; up sets in {gmt} and down sets in "
            f"{gmt_down} pair by name (the same name, or names that differ by _up/_dn/_down)"
        )
    return [Query(key, up=up_by[key], down=down_by[key]) for key in up_by]


def _by_key(sets: list[tuple[str, tuple[str, ...]]], path: PathLike) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for name, genes in sets:
        key = _pair_key(name) or name
        if key in out:
            raise ValueError(f"GMT file {path}: two sets pair as {key!r}; rename one")
        out[key] = genes
    return out


# ------------------------------------------------------------------------------ resolution


def resolve_query(
    query: Query,
    genes: pd.DataFrame,
    *,
    resolver: GeneResolver | None = None,
    synonyms: Mapping[str, str] | None = None,
) -> ResolvedQuery:
    """Map a query's gene identifiers onto a store's gene axis.

    Parameters
    ----------
    query
        The query.
    genes
        The store's gene axis, :meth:`~perturbridge.compendium.Compendium.genes`
        (columns ``gene_id``, ``symbol``, ``zarr_col``).
    resolver
        A :class:`~perturbridge.ids.genes.GeneResolver` (from a reference store): an
        identifier that matches no gene id or symbol of the store directly is resolved
        through it (aliases, previous symbols, Entrez, versioned Ensembl) and matched by
        its current Ensembl id, symbol or Entrez id.
    synonyms
        Extra identifier → store gene id or symbol (e.g. microarray probes → genes).

    Returns
    -------
    The query's store columns; every identifier that matched no gene is in
    ``unmatched`` (in input order). A symbol shared by several store genes maps to all
    of them. A signature gene mapped onto a column an earlier gene took is unmatched.

    Raises
    ------
    KeyError
        No gene of the query matches the store.
    ValueError
        A gene is in both the up and the down set.
    """
    missing = [c for c in ("gene_id", "symbol", "zarr_col") if c not in genes.columns]
    if missing:
        raise KeyError(f"the gene table lacks columns {missing}; found {list(genes.columns)}")
    col = genes["zarr_col"].to_numpy(dtype=np.int64)
    lookup: dict[str, list[int]] = {}
    upper: dict[str, list[int]] = {}
    for key_col in ("symbol", "gene_id"):  # a gene id wins over a symbol
        for key, c in zip(genes[key_col].astype(str), col, strict=True):
            if key in ("", "nan", "None"):
                continue
            lookup[key] = [int(c)] if key_col == "gene_id" else [*lookup.get(key, []), int(c)]
            upper.setdefault(key.upper(), []).append(int(c))
    ids = [*query.up, *query.down]
    if query.signature is not None:
        ids = [str(g) for g in query.signature.index]
    found: dict[str, list[int]] = {}
    for g in dict.fromkeys(ids):
        target = synonyms.get(g, g) if synonyms else g
        hit = lookup.get(target) or upper.get(target.upper())
        if hit:
            found[g] = sorted(set(hit))
    todo = [g for g in dict.fromkeys(ids) if g not in found]
    if todo and resolver is not None:
        res = resolver.resolve(todo)
        for g, rec in zip(todo, res.to_dict("records"), strict=True):
            if rec["status"] != "resolved":
                continue
            for key in (rec["ensembl_gene_id"], rec["symbol"], rec["entrez_id"]):
                hit = lookup.get(str(key)) if key is not None else None
                if hit:
                    found[g] = sorted(set(hit))
                    break
    overlap = sorted(set(query.up) & set(query.down))
    if overlap:
        raise ValueError(f"query {query.name!r}: genes in both the up and down sets: {overlap[:5]}")
    if not found:
        raise KeyError(
            f"query {query.name!r}: none of its {len(set(ids))} genes is in the store "
            f"(first: {ids[:5]}; the store's genes look like "
            f"{genes['gene_id'].astype(str).head(3).tolist()} / "
            f"{genes['symbol'].astype(str).head(3).tolist()})"
        )
    unmatched = [g for g in dict.fromkeys(ids) if g not in found]

    def cols_of(names: tuple[str, ...]) -> np.ndarray:
        out = [c for g in names for c in found.get(g, [])]
        return np.unique(np.asarray(out, dtype=np.int64))

    up_cols, down_cols = cols_of(query.up), cols_of(query.down)
    both = np.intersect1d(up_cols, down_cols)
    if len(both):
        raise ValueError(
            f"query {query.name!r}: up and down genes map onto the same store genes "
            f"(columns {both[:5].tolist()}); remove the aliases from one set"
        )
    sig_cols = np.zeros(0, dtype=np.int64)
    sig_values = np.zeros(0, dtype=np.float64)
    if query.signature is not None:
        taken: dict[int, float] = {}
        for g, v in zip(ids, query.signature.to_numpy(dtype=np.float64), strict=True):
            cols = found.get(g, [])
            if cols and any(c in taken for c in cols):
                unmatched.append(g)
                continue
            for c in cols:
                taken[c] = float(v)
        order = sorted(taken)
        sig_cols = np.asarray(order, dtype=np.int64)
        sig_values = np.asarray([taken[c] for c in order], dtype=np.float64)
    return ResolvedQuery(
        query=query,
        up_cols=up_cols,
        down_cols=down_cols,
        signature_cols=sig_cols,
        signature_values=sig_values,
        unmatched=tuple(unmatched),
    )

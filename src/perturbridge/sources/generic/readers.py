"""The generic adapter's readers: the metadata table and the expression data.

The metadata (a table, or an ``.h5ad``'s ``obs``) is read as strings indexed by sample
id. The expression is opened lazily: an :class:`Expression` knows its samples (and,
where the file says so before reading, its genes) and reads only the kept samples, a
chunk at a time, from a genes × samples or samples × genes table (CSV/TSV, plain or
``.gz``, checked row by row as it is parsed; parquet) or an ``.h5ad`` (``X`` or a layer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import sparse

from ...errors import FormatError, SchemaError
from .._common import is_missing
from .._tables import (
    check_unique,
    checked_text,
    h5ad_rows,
    read_table,
    read_wide_counts,
    require_file,
    wide_table_columns,
)
from .mapping import GenericMapping, missing_key

__all__ = [
    "Expression",
    "Meta",
    "annotation_symbols",
    "as_text",
    "first_values",
    "h5ad_expression",
    "read_metadata",
    "table_expression",
]

_N_SHOW = 5


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column as stripped strings, missing values as ``""``."""
    out = pd.DataFrame(index=frame.index.astype(str))
    for c in frame.columns:
        s = frame[c].astype(object)
        out[str(c)] = s.where(s.notna(), "").astype(str).str.strip().to_numpy()
    return out


def first_values(values: Any, n: int = _N_SHOW) -> list[Any]:
    return list(dict.fromkeys(str(v) for v in values))[:n]


@dataclass
class Meta:
    table: pd.DataFrame  # strings, indexed by sample id
    where: str  # the file the metadata came from


def read_metadata(m: GenericMapping, h5ad_obs: pd.DataFrame | None) -> Meta:
    if m.metadata is not None:
        where = str(m.metadata)
        table = read_table(m.metadata, what=f"metadata table named in {m.path.name} input.metadata")
    elif h5ad_obs is not None:  # an .h5ad's obs
        where = f"{m.expression} obs"
        table = as_text(h5ad_obs)
        if m.id_column is None:
            table.insert(0, "__obs_names__", table.index.to_numpy())
    else:
        raise missing_key(m, "input.metadata")
    table = table.reset_index(drop=True) if m.metadata is not None else table
    missing = [(k, c) for k, c in m.columns().items() if c not in table.columns]
    if missing:
        key, col = missing[0]
        raise SchemaError(
            col,
            f"column named by {m.path.name} key {key!r} is not in the metadata"
            + (f" (also missing: {[c for _, c in missing[1:6]]})" if len(missing) > 1 else "")
            + f"; columns present: {list(table.columns)[:20]}",
            where=where,
        )
    id_col = m.id_column or "__obs_names__"
    ids = table[id_col].astype(str).str.strip()
    empty = is_missing(ids)
    if empty.any():
        raise SchemaError(
            id_col,
            "sample ids must not be missing",
            first_values(np.flatnonzero(empty)),
            where=where,
        )
    check_unique(ids, column=id_col, where=where, what="sample ids")
    table.index = pd.Index(ids.to_numpy(), dtype=str)
    return Meta(table, where)


@dataclass
class Expression:
    samples: pd.Index  # every sample of the expression file
    genes: pd.Index | None  # known before reading (None: read with the data)
    symbols: NDArray[np.object_] | None
    read: Any  # callable(kept sample ids) -> samples × genes matrix


def table_expression(m: GenericMapping, chunk_size: int) -> Expression:
    path = require_file(
        m.expression, what=f"expression table named in {m.path.name} input.expression"
    )
    where = str(path)
    if m.orientation == "genes_x_samples":
        gene_col, columns, _ = wide_table_columns(path, where=where)
        if m.annotation is None and m.gene_id_column is not None and m.gene_id_column != gene_col:
            raise SchemaError(
                m.gene_id_column,
                f"{m.path.name} genes.id_column must name the first column of a genes × samples "
                f"table (the gene ids); the first column is {gene_col!r}",
                where=where,
            )
        symbols = None
        sym_col = m.symbol_column if m.annotation is None else None
        if sym_col is not None:
            if sym_col not in columns:
                raise SchemaError(
                    sym_col,
                    f"column named by {m.path.name} key 'genes.symbol_column' is not in the "
                    f"expression table; columns: {[gene_col, *columns][:12]}",
                    where=where,
                )
            columns = [c for c in columns if c != sym_col]
            symbols = _read_columns(path, [gene_col, sym_col])[sym_col].to_numpy(dtype=object)

        def read(ids: Sequence[str]) -> tuple[pd.Index, Any]:
            wc = read_wide_counts(
                path, what="expression table", samples=list(ids), chunk_size=chunk_size
            )
            return wc.genes, wc.x

        return Expression(pd.Index(columns, dtype=str), None, symbols, read)
    # samples × genes
    header = _header(path)
    sample_col, gene_names = header[0], header[1:]
    check_unique(pd.Index(gene_names), column="header", where=where, what="gene columns")
    samples = pd.Index(_read_columns(path, [sample_col])[sample_col].astype(str), dtype=str)
    check_unique(samples, column=sample_col, where=where, what="sample ids")

    def read_rows(ids: Sequence[str]) -> tuple[pd.Index, Any]:
        return pd.Index(gene_names, dtype=str), _read_sample_rows(
            path,
            sample_col,
            gene_names,
            ids,
            counts=m.value_kind == "counts",
            chunk_size=chunk_size,
        )

    return Expression(samples, pd.Index(gene_names, dtype=str), None, read_rows)


def _header(path: Path) -> list[str]:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            names = list(pq.ParquetFile(path).schema_arrow.names)
        except (OSError, ValueError) as err:
            raise FormatError(f"{path}: cannot read the parquet expression table: {err}") from err
        return [n for n in names if not n.startswith("__index")]
    with checked_text(path, what="expression table") as fh:
        head = pd.read_csv(fh, sep=_sep(path), nrows=0)
    return [str(c) for c in head.columns]


def _sep(path: Path) -> str:
    return "," if path.name.lower().removesuffix(".gz").endswith(".csv") else "\t"


def _read_columns(path: Path, cols: list[str]) -> pd.DataFrame:
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path, columns=cols).astype(str)
    with checked_text(path, what="expression table") as fh:
        return pd.read_csv(fh, sep=_sep(path), usecols=cols, dtype=str, keep_default_na=False)


def _check_values(
    block: NDArray[np.float64],
    *,
    where: str,
    rows: Sequence[str],
    cols: Sequence[str],
    counts: bool,
) -> None:
    bad = ~np.isfinite(block)
    what = "missing or not numbers"
    if counts and not bad.any():
        bad = block < 0
        what = "negative counts"
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise FormatError(
            f"{where}: {int(bad.sum())} value(s) are {what}, first {block[i, j]!r} at sample "
            f"{rows[i]!r}, gene {cols[j]!r}"
        )


def _read_sample_rows(
    path: Path,
    sample_col: str,
    genes: list[str],
    ids: Sequence[str],
    *,
    counts: bool,
    chunk_size: int,
) -> Any:
    """Rows ``ids`` of a samples × genes table, in that order (CSR for counts)."""
    wanted = pd.Index([str(i) for i in ids])
    blocks: list[Any] = []
    names: list[pd.Index] = []
    where = str(path)

    def take(frame: pd.DataFrame) -> None:
        frame.index = frame.index.astype(str)
        frame = frame[frame.index.isin(wanted)]
        if not len(frame):
            return
        num = frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        _check_values(num, where=where, rows=list(frame.index), cols=genes, counts=counts)
        blocks.append(sparse.csr_matrix(num) if counts else num)
        names.append(frame.index)

    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=chunk_size, columns=[sample_col, *genes]):
            take(batch.to_pandas().set_index(sample_col))
    else:
        with (
            checked_text(path, what="expression table") as fh,
            pd.read_csv(fh, sep=_sep(path), index_col=0, chunksize=chunk_size, dtype=str) as reader,
        ):
            for chunk in reader:
                take(chunk.loc[:, genes])
    order = (names[0].append(names[1:]) if names else pd.Index([], dtype=str)).get_indexer(wanted)
    if not blocks:
        return sparse.csr_matrix((0, len(genes))) if counts else np.zeros((0, len(genes)))
    x = sparse.vstack(blocks).tocsr() if counts else np.vstack(blocks)
    return x[order]


def h5ad_expression(m: GenericMapping, fh: Any, obs: pd.DataFrame, var: pd.DataFrame) -> Expression:
    where = str(m.expression)
    if m.metadata is None and m.id_column is not None:
        samples = pd.Index(as_text(obs)[m.id_column].to_numpy(), dtype=str)
    else:
        samples = pd.Index(obs.index.astype(str), dtype=str)
    check_unique(samples, column="obs_names", where=where, what="sample ids")
    text_var = as_text(var)
    for key, col in (
        ("genes.id_column", m.gene_id_column),
        ("genes.symbol_column", m.symbol_column),
    ):
        if m.annotation is None and col is not None and col not in text_var.columns:
            raise SchemaError(
                col,
                f"column named by {m.path.name} key {key!r} is not in var; var columns: "
                f"{list(var.columns)[:12]}",
                where=where,
            )
    if m.annotation is None and m.gene_id_column is not None:
        genes = pd.Index(text_var[m.gene_id_column].to_numpy(), dtype=str)
    else:
        genes = pd.Index(var.index.astype(str), dtype=str)
    symbols = None
    if m.annotation is None and m.symbol_column is not None:
        symbols = text_var[m.symbol_column].to_numpy(dtype=object)
    key = "X" if m.layer is None else f"layers/{m.layer}"
    counts = m.value_kind == "counts"

    def read(ids: Sequence[str]) -> tuple[pd.Index, Any]:
        pos = samples.get_indexer(pd.Index(ids, dtype=str))
        order = np.argsort(pos, kind="stable")
        x = h5ad_rows(fh, key, pos[order])
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        x = x[back]
        vals = x.data
        bad = ~np.isfinite(vals) | ((vals < 0) if counts else np.zeros(vals.shape, dtype=bool))
        if bad.any():
            what = "missing, infinite or negative" if counts else "missing or infinite"
            raise FormatError(
                f"{where}: {int(bad.sum())} values of {key} are {what}, e.g. "
                f"{first_values(vals[bad])}"
            )
        return genes, (x if counts else x.toarray())

    return Expression(samples, genes, symbols, read)


def annotation_symbols(m: GenericMapping, genes: pd.Index) -> NDArray[np.object_] | None:
    if m.annotation is None:
        return None
    where = str(m.annotation)
    table = read_table(
        m.annotation, what=f"gene annotation named in {m.path.name} genes.annotation"
    )
    if m.gene_id_column is None:
        raise missing_key(m, "genes.id_column")
    need = [c for c in (m.gene_id_column, m.symbol_column) if c is not None]
    for c in need:
        if c not in table.columns:
            key = "genes.id_column" if c == m.gene_id_column else "genes.symbol_column"
            raise SchemaError(
                c,
                f"column named by {m.path.name} key {key!r} is not in the gene annotation; "
                f"columns present: {list(table.columns)[:12]}",
                where=where,
            )
    if m.symbol_column is None:
        return None
    ids = table[m.gene_id_column].astype(str).str.strip()
    check_unique(ids, column=m.gene_id_column, where=where, what="gene ids")
    sym = pd.Series(table[m.symbol_column].to_numpy(), index=ids.to_numpy())
    return sym.reindex(genes).to_numpy(dtype=object)

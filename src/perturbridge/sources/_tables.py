"""Reading the upstream files of the source adapters: tables, count matrices, ``.h5ad``.

Every reader names the file (``what``/``where``) in its errors:

* :func:`require_file` / :func:`read_table` open an upstream file or say which one is
  missing and what it should contain; text tables (CSV/TSV, plain or gzipped) are
  checked row by row as they are parsed (:func:`checked_text`): a short or long row, an
  unclosed quote or a stream cut short is an error naming the line;
* :func:`read_wide_counts` reads a genes × samples count table (CSV/TSV/parquet) in
  chunks of samples into a sparse samples × genes matrix;
* :func:`open_h5ad` / :func:`h5ad_rows` read an ``.h5ad`` file's obs, var and rows.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import os
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import sparse

from ..errors import FormatError, SchemaError
from ..io import read_element

__all__ = [
    "WideCounts",
    "check_unique",
    "checked_text",
    "h5ad_rows",
    "open_h5ad",
    "read_table",
    "read_wide_counts",
    "require_file",
    "wide_table_columns",
]

logger = logging.getLogger(__name__)

_N_SHOW = 5


def _first(values: Iterable[Any], n: int = _N_SHOW) -> list[Any]:
    """The first ``n`` values, NumPy scalars as Python values (for error messages)."""
    out: list[Any] = []
    for v in values:
        out.append(v.item() if isinstance(v, np.generic) else v)
        if len(out) >= n:
            break
    return out


def check_unique(ids: pd.Index | pd.Series, *, column: str, where: str, what: str) -> None:
    """Raise :class:`SchemaError` naming the first repeated ids."""
    s = pd.Series(np.asarray(ids, dtype=object)).astype(str)
    dup = s[s.duplicated(keep=False)]
    if len(dup):
        raise SchemaError(column, f"{what} must be unique", _first(pd.unique(dup)), where=where)


def require_file(path: str | os.PathLike[str], *, what: str) -> Path:
    """``path`` as a :class:`~pathlib.Path`, or ``FileNotFoundError`` naming ``what``.

    ``what`` says which upstream file was expected, e.g. ``"VCPI metadata table
    (metadata-<job>.csv)"``.
    """
    p = Path(path)
    if not p.is_file():
        found = "a folder" if p.is_dir() else "nothing"
        raise FileNotFoundError(f"{what} not found: {p} (found {found} there)")
    return p


def _sep(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    return "," if name.endswith(".csv") else "\t"


def read_table(path: str | os.PathLike[str], *, what: str) -> pd.DataFrame:
    """Read a metadata table as strings (CSV by extension, else TSV; parquet too).

    Missing cells are empty strings; nothing is converted, so every value can be
    checked and reported as written. The text is read strictly (see
    :func:`checked_text`): a row with fewer fields than the header (e.g. a file cut
    mid-row), more fields, a quote that is never closed or a gzip stream cut short is a
    :class:`~perturbridge.errors.FormatError` naming the file and the line, never a row
    padded with missing values.
    """
    p = require_file(path, what=what)
    if p.suffix.lower() == ".parquet":
        try:
            df = pd.read_parquet(p)
        except (OSError, ValueError) as err:  # pyarrow errors are ValueError/OSError subclasses
            raise FormatError(f"{p}: cannot read the {what}: {err}") from err
        return df.astype(object).where(df.notna(), "").astype(str)
    with checked_text(p, what=what) as fh:
        return pd.read_csv(fh, sep=_sep(p), dtype=str, keep_default_na=False)


class _CheckedStream:
    """A binary text stream for :func:`pandas.read_csv` that counts the fields of every
    record as pandas reads it, so a table is checked in the pass that parses it.

    The header sets the expected field count (one more when the first data row has one
    more: R's ``write.table`` leaves the row-name column unnamed). Blank lines are
    skipped, as pandas skips them; quoted fields may hold separators and newlines.
    Problems are collected and raised together at the end of the file (or when pandas
    gives up first) as one :class:`FormatError` naming the file and the lines.
    """

    def __init__(self, raw: Any, *, path: Path, what: str) -> None:
        self._raw = raw
        self._path = path
        self._what = what
        self._sep = _sep(path)
        self._tail = b""
        self._line = 0
        self._pending: list[bytes] = []
        self._pending_line = 0
        self._header: int | None = None
        self._expected: int | None = None
        self._bad: dict[str, list[tuple[int, int]]] = {"fewer": [], "more": []}
        self._n_bad = {"fewer": 0, "more": 0}
        self._last: tuple[int, int] | None = None  # (line, fields) of the last record
        self._done = False

    def read(self, size: int = -1) -> bytes:
        if self._done:
            return b""
        pieces = []
        want = size if size >= 0 else 1 << 62
        while want > 0:  # in pieces, so a damaged gzip stream is named after its last line
            try:
                piece: bytes = self._raw.read(min(want, 1 << 16))
            except (EOFError, OSError, zlib.error) as err:  # gzip cut short, CRC, bad block
                self._done = True
                after = f" after line {self._line}" if self._line else ""
                raise FormatError(
                    f"{self._path}: the {self._what} is cut short or corrupt{after} "
                    f"({type(err).__name__}: {err}); copy or download it again"
                ) from err
            if not piece:
                break
            lines = (self._tail + piece).split(b"\n")
            self._tail = lines.pop()
            for line in lines:
                self._record(line)
            pieces.append(piece)
            want -= len(piece)
        if not pieces:
            self._done = True
            if self._tail:
                self._record(self._tail)
                self._tail = b""
            self._raise_problems()
        return b"".join(pieces)

    def __iter__(self) -> Iterator[bytes]:  # pragma: no cover - pandas reads with read()
        raise TypeError("read the stream with read()")

    def _record(self, line: bytes) -> None:
        self._line += 1
        line = line.removesuffix(b"\r")
        if self._pending:
            self._pending.append(line)
            self._quoted(self._pending_line)
        elif b'"' in line:
            self._pending = [line]
            self._pending_line = self._line
            self._quoted(self._line)
        elif line.strip():
            self._count(line.count(self._sep.encode()) + 1, self._line)

    def _quoted(self, start: int) -> None:
        """Count the fields of the pending record if its quotes are closed."""
        text = b"\n".join(self._pending).decode("utf-8", errors="replace")
        try:
            rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=self._sep, strict=True))
        except csv.Error as err:
            if "unexpected end of data" in str(err):
                return  # the quote is still open: the record goes on on the next line
            rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=self._sep))
        self._pending = []
        for row in rows:
            if row:
                self._count(len(row), start)

    def _count(self, n: int, line: int) -> None:
        if self._header is None:
            self._header = n
            return
        if self._expected is None:
            self._expected = n if n == self._header + 1 else self._header
        self._last = (line, n)
        if n != self._expected:
            kind = "fewer" if n < self._expected else "more"
            self._n_bad[kind] += 1
            if len(self._bad[kind]) < _N_SHOW:
                self._bad[kind].append((line, n))

    def drain(self) -> None:
        """Count the rest of the file (after pandas stopped on an error): raises the
        problems of every row, or returns when there are none."""
        while self.read(1 << 20):
            pass

    def _raise_problems(self) -> None:
        """At the end of the file: raise every problem found, if any."""
        parts = []
        n = self._expected
        for kind in ("fewer", "more"):
            if self._n_bad[kind]:
                lines = ", ".join(f"line {ln} has {k}" for ln, k in self._bad[kind])
                parts.append(
                    f"{self._n_bad[kind]} row(s) of the {self._what} have {kind} fields than "
                    f"the header's {n}: {lines}"
                )
        last = self._last
        if last is not None and n is not None and last[1] < n and not self._pending:
            parts.append(
                f"the last line has {last[1]} fields, the header {n}: the file is cut short "
                "(copy or download it again)"
            )
        if self._pending:
            parts.append(
                f"cannot parse the {self._what}: the quote opened on line {self._pending_line} "
                "is never closed; the file may "
                "be cut short (copy or download it again) or the field needs its closing quote"
            )
        if parts:
            raise FormatError(f"{self._path}: " + "; ".join(parts))


@contextmanager
def checked_text(path: Path, *, what: str) -> Iterator[Any]:
    """Open a CSV/TSV table (plain or ``.gz``) for :func:`pandas.read_csv`, checked as read.

    Every record's fields are counted in the pass that parses it (no second pass); a
    short or long row, an unclosed quote, a gzip stream cut short or corrupt, a parse
    error or undecodable text is a :class:`FormatError` naming the file and the line.
    """
    gz = path.name.lower().endswith(".gz")
    try:
        raw = gzip.open(path, "rb") if gz else open(path, "rb")  # noqa: SIM115
    except OSError as err:
        raise FormatError(f"{path}: cannot open the {what}: {err}") from err
    stream = _CheckedStream(raw, path=path, what=what)
    try:
        yield stream
    except FormatError:
        stream.drain()  # a bad value of a short or cut row: the row is the problem
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        stream.drain()  # the rows' field counts name the line pandas stopped at
        raise FormatError(f"{path}: cannot parse the {what}: {err}") from err
    finally:
        raw.close()


@dataclass
class WideCounts:
    """Counts read from a genes × samples table: ``x`` is samples × genes (CSR)."""

    genes: pd.Index
    samples: pd.Index
    x: sparse.csr_matrix


def wide_table_columns(path: Path, *, where: str) -> tuple[str, list[str], bool]:
    """The gene column and the sample columns of a wide table, from its header only,
    and whether the header lacks the gene column's name (R ``write.table`` style)."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            schema = pq.ParquetFile(path).schema_arrow
        except (OSError, ValueError) as err:
            raise FormatError(f"{where}: cannot read the parquet counts table: {err}") from err
        names = list(schema.names)
        strings = [n for n in names if str(schema.field(n).type) in ("string", "large_string")]
        gene_col = strings[0] if strings else names[0]
        return gene_col, [n for n in names if n != gene_col and not n.startswith("__index")], False
    sep = _sep(path)
    gz = path.name.lower().endswith(".gz")
    try:
        with gzip.open(path, "rt", newline="") if gz else open(path, newline="") as fh:
            rows = list(zip(range(2), csv.reader(fh, delimiter=sep), strict=False))
    except (UnicodeDecodeError, EOFError, OSError, zlib.error) as err:
        raise FormatError(f"{where}: cannot parse the counts table: {err}") from err
    if not rows:
        raise FormatError(f"{where}: the counts table is empty")
    header = rows[0][1]
    short = len(rows) > 1 and len(rows[1][1]) == len(header) + 1
    if short:
        return "", [str(c) for c in header], True
    return str(header[0]), [str(c) for c in header[1:]], False


def _to_sparse_block(
    block: NDArray[Any], *, where: str, samples: Sequence[str]
) -> sparse.csr_matrix:
    """A genes × k dense block to a k × genes CSR, rejecting non-numbers."""
    arr = np.asarray(block, dtype=float)
    bad = ~np.isfinite(arr)
    if bad.any():
        g, j = np.argwhere(bad)[0]
        raise FormatError(
            f"{where}: {int(bad.sum())} count value(s) are missing or not numbers, first in "
            f"sample column {samples[j]!r} (gene row {int(g)})"
        )
    return sparse.csr_matrix(arr.T)


def read_wide_counts(
    path: str | os.PathLike[str],
    *,
    what: str,
    samples: Sequence[str] | None = None,
    chunk_size: int = 256,
) -> WideCounts:
    """Read a genes × samples counts table into a sparse samples × genes matrix.

    The first column (parquet: the first string column) holds the gene ids, every
    other column one sample. Only ``samples`` are read when given (they must be
    columns of the table), ``chunk_size`` sample columns at a time, so memory is
    bounded by the sparse result plus one dense ``genes × chunk_size`` block.
    """
    p = require_file(path, what=what)
    where = str(p)
    gene_col, columns, short_header = wide_table_columns(p, where=where)
    check_unique(pd.Index(columns), column="header", where=where, what="sample columns")
    wanted = list(columns) if samples is None else [str(s) for s in samples]
    absent = [s for s in wanted if s not in set(columns)]
    if absent:
        raise SchemaError(
            absent[0], f"{len(absent)} sample column(s) are missing", _first(absent), where=where
        )
    if p.suffix.lower() == ".parquet":
        genes, x = _read_parquet_counts(p, gene_col, wanted, chunk_size=chunk_size, where=where)
    else:
        genes, x = _read_text_counts(p, columns, wanted, short_header=short_header, where=where)
    check_unique(genes, column=gene_col or "gene id", where=where, what="gene ids")
    return WideCounts(genes=pd.Index(genes), samples=pd.Index(wanted, dtype=str), x=x)


def _read_parquet_counts(
    path: Path, gene_col: str, wanted: list[str], *, chunk_size: int, where: str
) -> tuple[pd.Index, sparse.csr_matrix]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    genes = pd.Index([str(g) for g in pf.read(columns=[gene_col]).column(0).to_pylist()])
    blocks = [sparse.csr_matrix((0, len(genes)))]
    for start in range(0, len(wanted), chunk_size):
        part = wanted[start : start + chunk_size]
        tbl = pf.read(columns=part)
        block = np.column_stack([tbl.column(c).to_numpy(zero_copy_only=False) for c in part])
        blocks.append(_to_sparse_block(block, where=where, samples=part))
    return genes, sparse.vstack(blocks).tocsr()


def _read_text_counts(
    path: Path, columns: list[str], wanted: list[str], *, short_header: bool, where: str
) -> tuple[pd.Index, sparse.csr_matrix]:
    pos = {c: i for i, c in enumerate(columns)}
    usecols = None if short_header else [0, *sorted(pos[s] + 1 for s in wanted)]
    width = len(columns) if usecols is None else len(usecols)
    rows_per_chunk = int(max(1, min(4096, 2**22 // max(1, width))))
    gene_parts: list[pd.Index] = []
    row_blocks: list[sparse.csr_matrix] = []
    with (
        checked_text(path, what="counts table") as fh,
        pd.read_csv(
            fh, sep=_sep(path), index_col=0, usecols=usecols, chunksize=rows_per_chunk, dtype=str
        ) as reader,
    ):
        for chunk in reader:
            chunk = chunk.loc[:, wanted]
            num = chunk.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
            bad = ~np.isfinite(num)
            if bad.any():
                g, j = np.argwhere(bad)[0]
                raise FormatError(
                    f"{where}: {int(bad.sum())} count value(s) are missing or not numbers, "
                    f"first {chunk.iloc[g, j]!r} at gene {chunk.index[g]!r}, "
                    f"sample {wanted[j]!r}"
                )
            gene_parts.append(chunk.index.astype(str))
            row_blocks.append(sparse.csr_matrix(num))
    genes = gene_parts[0].append(gene_parts[1:]) if gene_parts else pd.Index([], dtype=str)
    if not row_blocks:
        return genes, sparse.csr_matrix((len(wanted), 0))
    return genes, sparse.vstack(row_blocks).T.tocsr()


def open_h5ad(path: Path, *, layer: str | None) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    """``obs``, ``var`` and the open file of an ``.h5ad``; the matrix stays unread.

    The caller closes the returned :class:`h5py.File`.
    """
    import h5py

    try:
        fh = h5py.File(path, "r")
    except OSError as err:
        raise FormatError(f"{path}: not a readable .h5ad (HDF5) file: {err}") from err
    try:
        obs = read_element(fh["obs"])
        var = read_element(fh["var"])
    except KeyError as err:
        fh.close()
        raise FormatError(f"{path}: the .h5ad has no obs/var groups ({err})") from err
    key = "X" if layer is None else f"layers/{layer}"
    if key not in fh:
        layers = list(fh["layers"].keys()) if "layers" in fh else []
        fh.close()
        raise KeyError(f"{path}: no matrix {key!r} in the .h5ad; layers present: {layers}")
    return obs, var, fh


def h5ad_rows(fh: Any, key: str, rows: np.ndarray) -> sparse.csr_matrix:
    """Rows ``rows`` (sorted) of the matrix ``key`` as CSR, without reading the others."""
    from anndata.io import sparse_dataset

    elem = fh[key]
    if hasattr(elem, "attrs") and elem.attrs.get("encoding-type") in ("csr_matrix", "csc_matrix"):
        return sparse.csr_matrix(sparse_dataset(elem)[rows])
    return sparse.csr_matrix(np.asarray(elem[rows, :] if len(rows) else elem[:0, :]))

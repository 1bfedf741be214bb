"""Helpers shared by the source adapters: files, columns, values, ledger triage, counts.

Every helper raises with a message that names the file (``where``), the column and the
first offending values, so an adapter never has to build those messages itself:

* :func:`require_file` / :func:`read_table` open an upstream file or say which one is
  missing and what it should contain;
* :func:`resolve_columns` finds each field under one of its accepted spellings;
* :func:`parse_numbers`, :func:`split_quantity`, :func:`parse_bools` read values and
  reject the unparseable ones by name (missing values stay missing: they go to the
  ledger, not to an error);
* :class:`Triage` assigns each input sample the first drop reason that applies and
  writes kept and dropped samples to the ledger;
* :func:`read_wide_counts` reads a genes × samples count table (CSV/TSV/parquet) in
  chunks of samples into a sparse samples × genes matrix.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import os
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import sparse

from ..errors import FormatError, SchemaError, UnitError
from ..io import provenance
from ..ledger import Ledger
from ..samples import build_samples, empty_samples
from ..units import parse_quantity, time_to_h
from ._base import IngestResult

__all__ = [
    "GENE_STAGE",
    "MISSING_TOKENS",
    "STAGE",
    "Accounts",
    "Origin",
    "Triage",
    "WideCounts",
    "categorical",
    "check_unique",
    "checked_text",
    "h5ad_rows",
    "is_missing",
    "open_h5ad",
    "parse_bools",
    "parse_numbers",
    "read_table",
    "read_wide_counts",
    "record_genes",
    "replicate_rank",
    "require_file",
    "resolve_columns",
    "spike_in_mask",
    "split_quantity",
    "time_to_hours",
    "to_int64",
    "well_from_row_col",
    "wide_table_columns",
]

logger = logging.getLogger(__name__)

#: Ledger stage of input samples and of input genes.
STAGE = "ingest"
GENE_STAGE = "ingest_genes"

#: Spellings of a missing value in upstream tables (compared lower-case, stripped).
MISSING_TOKENS = frozenset({"", "na", "nan", "none", "null", "<na>", "-666", "-666.0"})

#: ERCC spike-in ids (``ERCC-00002``), not human genes such as ``ERCC1``.
_SPIKE_IN = re.compile(r"^ERCC-\d+(\.\d+)?$")
_TRUE = frozenset({"true", "t", "1", "1.0", "yes", "y"})
_FALSE = frozenset({"false", "f", "0", "0.0", "no", "n"})
_N_SHOW = 5
#: A ledger detail: one string for all rows, or one per row.
Detail = str | Sequence[str] | NDArray[Any]
_ROWS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _first(values: Iterable[Any], n: int = _N_SHOW) -> list[Any]:
    out: list[Any] = []
    for v in values:
        out.append(v.item() if isinstance(v, np.generic) else v)
        if len(out) >= n:
            break
    return out


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


def resolve_columns(
    columns: Iterable[str],
    aliases: Mapping[str, Sequence[str]],
    *,
    required: Sequence[str],
    where: str,
    what: str,
) -> dict[str, str]:
    """Map each field to the first of its accepted spellings present in ``columns``.

    Raises
    ------
    SchemaError
        Naming the file, the first missing field and the accepted spellings of all
        missing fields.
    """
    cols = list(columns)
    present = set(cols)
    found: dict[str, str] = {}
    for field, spellings in aliases.items():
        for s in spellings:
            if s in present:
                found[field] = s
                break
    missing = [f for f in required if f not in found]
    if missing:
        accepted = {m: tuple(aliases.get(m, (m,))) for m in missing}
        raise SchemaError(
            aliases.get(missing[0], (missing[0],))[0],
            f"the {what} lacks required column(s) {missing} (accepted spellings: {accepted}); "
            f"columns present: {cols[:20]}",
            where=where,
        )
    return found


def is_missing(values: pd.Series | Sequence[Any] | NDArray[Any]) -> NDArray[np.bool_]:
    """True where a value is missing (NaN/None or a :data:`MISSING_TOKENS` spelling)."""
    s = pd.Series(np.asarray(values, dtype=object))
    return (
        s.isna().to_numpy() | s.astype(str).str.strip().str.lower().isin(MISSING_TOKENS).to_numpy()
    )


def _bad_values(
    s: pd.Series, bad: NDArray[np.bool_], *, column: str, where: str, expected: str
) -> FormatError:
    vals = list(dict.fromkeys(str(v) for v in s[bad]))
    rows = _first(s.index[bad])
    return FormatError(
        f"{where}: column {column!r} has {int(bad.sum())} value(s) that cannot be parsed: "
        f"{_first(vals)} (first rows {rows}); expected {expected}"
    )


def parse_numbers(values: pd.Series, *, column: str, where: str) -> NDArray[np.float64]:
    """Numbers from a column; missing values become NaN, anything else unparseable raises.

    Raises
    ------
    FormatError
        Naming the file, the column and the first unparseable values.
    """
    s = pd.Series(values)
    missing = is_missing(s)
    num = pd.to_numeric(s.mask(missing, None), errors="coerce").to_numpy(dtype=float)
    bad = ~missing & ~np.isfinite(num)
    if bad.any():
        raise _bad_values(
            s,
            bad,
            column=column,
            where=where,
            expected="a number such as 10 or 0.5, with a decimal point (not a comma); "
            "a missing value is empty, NA or -666",
        )
    num[missing] = np.nan
    return num


def split_quantity(
    values: pd.Series, *, column: str, where: str, default_unit: str = ""
) -> tuple[NDArray[np.float64], NDArray[np.object_]]:
    """Split strings such as ``1000.0nM``, ``24h``, ``0.0625%`` or ``10`` into number and unit.

    :func:`perturbridge.units.parse_quantity` on the values as text (as a table read from
    a file has them), with the missing-value spellings of upstream tables
    (:data:`MISSING_TOKENS`): missing values give NaN and ``""``; a bare number gets
    ``default_unit``.

    Raises
    ------
    FormatError
        Naming the file, the column, the first values that are not a number with an
        optional unit, and their rows.
    """
    text = pd.Series(values).astype(str)
    try:
        return parse_quantity(
            text, where=where, column=column, default_unit=default_unit, missing=MISSING_TOKENS
        )
    except UnitError as err:  # a table cell that is not a quantity: a format error
        raise FormatError(str(err)) from err


def parse_bools(values: pd.Series, *, column: str, where: str) -> NDArray[np.bool_]:
    """Booleans from ``True/False``, ``1/0``, ``yes/no`` (any case); missing is False."""
    s = pd.Series(values)
    low = s.astype(str).str.strip().str.lower()
    missing = is_missing(s)
    t = low.isin(_TRUE).to_numpy()
    bad = ~missing & ~t & ~low.isin(_FALSE).to_numpy()
    if bad.any():
        raise _bad_values(s, bad, column=column, where=where, expected="True/False or 1/0")
    return t


def well_from_row_col(
    row: pd.Series, col: pd.Series, *, where: str, columns: tuple[str, str]
) -> NDArray[np.object_]:
    """Well names such as ``A01`` from 1-based row numbers (or row letters) and columns."""
    r = pd.Series(row).astype(str).str.strip()
    letters = r.str.fullmatch(r"[A-Za-z]{1,2}").to_numpy()
    rnum = pd.to_numeric(r.mask(letters, None), errors="coerce").to_numpy(dtype=float)
    cnum = parse_numbers(pd.Series(col), column=columns[1], where=where)
    bad_r = ~letters & ~((rnum >= 1) & (rnum <= len(_ROWS)) & (rnum == np.round(rnum)))
    if bad_r.any():
        raise _bad_values(r, bad_r, column=columns[0], where=where, expected="a row 1-26 or A-Z")
    bad_c = ~(np.isfinite(cnum) & (cnum >= 1) & (cnum == np.round(cnum)))
    if bad_c.any():
        raise _bad_values(
            pd.Series(col).astype(str), bad_c, column=columns[1], where=where, expected="1, 2, ..."
        )
    rows = np.where(
        letters, r.str.upper().to_numpy(), [_ROWS[int(x) - 1] if x == x else "" for x in rnum]
    )
    return np.array([f"{a}{int(c):02d}" for a, c in zip(rows, cnum, strict=True)], dtype=object)


def time_to_hours(
    values: NDArray[np.float64], units: NDArray[np.object_], *, column: str, where: str
) -> NDArray[np.float64]:
    """Times in hours from numbers and units (``""`` means hours); missing stays NaN.

    Raises
    ------
    UnitError
        Naming the file, the column and the unknown units.
    """
    vals = np.asarray(values, dtype=float)
    u = np.array([x if x else "h" for x in np.asarray(units, dtype=object)], dtype=object)
    return time_to_h(vals, u, where=f"{where} column {column!r}", ignore=~np.isfinite(vals))


def to_int64(values: NDArray[np.float64]) -> Any:
    """Whole numbers as a nullable ``Int64`` array (NaN becomes ``<NA>``)."""
    arr = np.round(np.asarray(values, dtype=float))
    return pd.array(np.where(np.isfinite(arr), arr, np.nan), dtype="Float64").astype("Int64")


def check_unique(ids: pd.Index | pd.Series, *, column: str, where: str, what: str) -> None:
    """Raise :class:`SchemaError` naming the first repeated ids."""
    s = pd.Series(np.asarray(ids, dtype=object)).astype(str)
    dup = s[s.duplicated(keep=False)]
    if len(dup):
        raise SchemaError(column, f"{what} must be unique", _first(pd.unique(dup)), where=where)


def spike_in_mask(gene_ids: Iterable[str]) -> NDArray[np.bool_]:
    """True for ERCC spike-in ids (``ERCC-00002``), false for genes such as ``ERCC1``."""
    return np.array([bool(_SPIKE_IN.match(str(g))) for g in gene_ids], dtype=bool)


def categorical(values: Any) -> pd.Categorical:
    """Strings as a categorical, with missing values (see :func:`is_missing`) as NaN."""
    arr = np.asarray(values, dtype=object)
    miss = is_missing(arr)
    return pd.Categorical([None if m else str(v) for v, m in zip(arr, miss, strict=True)])


class Triage:
    """Assigns each input sample the first drop reason that applies, then writes the ledger.

    ``ids`` are the samples of the metadata table; ``unmatched`` are further samples
    found only in the counts, dropped at once as ``missing_metadata``. Masks and details
    passed to :meth:`drop` and :meth:`record` are per metadata row (``len(ids)``). Rules
    are applied in the order they are called; a sample already given a reason keeps it.

    Examples
    --------
    >>> t = Triage(pd.Index(["a", "b", "c"]), unmatched=pd.Index(["z"]))
    >>> t.drop(np.array([True, False, True]), "positive_control", "Belinostat")
    >>> t.drop(np.array([True, True, False]), "empty_well", "EMPTY")
    >>> t.reason.tolist()
    ['positive_control', 'empty_well', 'positive_control', 'missing_metadata']
    """

    def __init__(
        self,
        ids: pd.Index,
        *,
        unmatched: pd.Index | None = None,
        unmatched_detail: str = "not in the metadata",
    ) -> None:
        self.n_rows = len(ids)
        extra = pd.Index([] if unmatched is None else unmatched, dtype=object)
        self.ids = pd.Index(ids).astype(str).append(extra.astype(str))
        self.reason = np.full(len(self.ids), "", dtype=object)
        self.detail = np.full(len(self.ids), "", dtype=object)
        self.reason[self.n_rows :] = "missing_metadata"
        self.detail[self.n_rows :] = unmatched_detail

    @property
    def open(self) -> NDArray[np.bool_]:
        """Samples not yet given a reason."""
        return self.reason == ""

    @property
    def kept(self) -> NDArray[np.bool_]:
        """Kept samples, per metadata row."""
        return self.open[: self.n_rows]

    def _pad(self, values: NDArray[Any], fill: Any) -> NDArray[Any]:
        extra = len(self.ids) - len(values)
        return np.concatenate([values, np.full(extra, fill, dtype=values.dtype)])

    def drop(self, mask: NDArray[np.bool_], reason: str, detail: Detail) -> None:
        """Give ``reason`` to the still-open samples in ``mask`` (one entry per row)."""
        m = self._pad(np.asarray(mask, dtype=bool), False) & self.open
        self.reason[m] = reason
        det = np.asarray(detail, dtype=object)
        self.detail[m] = det if det.ndim == 0 else self._pad(det, "")[m]

    def record(self, ledger: Ledger, *, stage: str = STAGE, kept_detail: Detail = "") -> None:
        """Write every sample to ``ledger``: dropped ones by reason, then the kept ones."""
        for why in pd.unique(self.reason[~self.open]):
            m = self.reason == why
            ledger.drop(
                self.ids[m], stage=stage, reason=str(why), detail=[str(d) for d in self.detail[m]]
            )
        det = np.asarray(kept_detail, dtype=object)
        ledger.keep(
            self.ids[: self.n_rows][self.kept],
            stage=stage,
            detail=str(kept_detail) if det.ndim == 0 else [str(d) for d in det[self.kept]],
        )


def record_genes(
    ledger: Ledger,
    gene_ids: pd.Index,
    *,
    drops: Mapping[str, tuple[NDArray[np.bool_], str]] | None = None,
    stage: str = GENE_STAGE,
) -> NDArray[np.bool_]:
    """Write every input gene to ``ledger`` (kept, or dropped for a reason); returns kept.

    ``drops`` maps a reason to ``(mask, detail)``; the first reason that applies wins.
    """
    t = Triage(pd.Index(gene_ids))
    for reason, (mask, detail) in (drops or {}).items():
        t.drop(mask, reason, detail)
    t.record(ledger, stage=stage)
    return t.kept


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


@dataclass(frozen=True)
class Accounts:
    """The ledger of an ingest and the ids it must account for once each: every input
    sample (stage :data:`STAGE`), every input gene when ``genes`` is given
    (:data:`GENE_STAGE`) and every input cell when ``cells`` is given (single-cell
    sources, their cell stage)."""

    ledger: Ledger
    samples: pd.Index
    genes: pd.Index | None = None
    cells: pd.Index | None = None


@dataclass(frozen=True)
class Origin:
    """What Samples are made from, for their provenance: the files read (``inputs``),
    the reader's parameters (``params``) and the label messages name (``where``: a
    file or a folder)."""

    inputs: Sequence[str | os.PathLike[str]]
    params: Mapping[str, Any]
    where: str


def assemble(
    x: Any,
    obs: pd.DataFrame,
    var: pd.DataFrame,
    *,
    accounts: Accounts,
    origin: Origin,
    control_match_keys: Sequence[str] = (),
    allow_non_integer: bool = False,
) -> Any:
    """Validated counts Samples from the kept rows, after checking the ledger's accounts.

    Counts must be finite, non-negative, below 2**53 and whole numbers (unless
    ``allow_non_integer``): anything else is an error naming the samples by id. A kept
    sample whose counts are all zero is dropped, its ledger entry turned into
    ``empty_sample`` (stage :data:`STAGE`).

    ``obs`` and ``x`` hold the kept samples in the same order; ``total_counts`` is
    filled from ``x``. ``control_match_keys`` (``obs`` columns a treated sample must
    share with its vehicle) are declared in ``uns["perturbridge"]["control_match_keys"]``
    for the DE step. The ledger must account once for every input sample (stage
    :data:`STAGE`) and, when ``accounts.genes`` is given, every input gene
    (:data:`GENE_STAGE`).
    """
    ledger, where = accounts.ledger, origin.where
    ledger.check_accounts_for(accounts.samples, stage=STAGE)
    if accounts.genes is not None:
        ledger.check_accounts_for(accounts.genes, stage=GENE_STAGE)
    x = sparse.csr_matrix(x)
    ids = pd.Index(obs.index.astype(str))
    # a sample without any count is a drop; values that are not counts are errors
    # (build_samples, naming the samples)
    empty = empty_samples(x)
    if empty.any():
        ledger = _drop_kept(ledger, ids[empty], reason="empty_sample", detail="all counts 0")
        logger.warning("%s: %d samples without counts dropped (empty_sample)", where, empty.sum())
        x, obs = x[~empty], obs.loc[~empty]
    obs = obs.copy()
    obs["total_counts"] = np.asarray(x.sum(axis=1), dtype=float).ravel()
    prov = provenance(step="ingest", inputs=list(origin.inputs), params=dict(origin.params))
    samples = build_samples(
        x,
        obs,
        var,
        value_kind="counts",
        provenance=prov,
        where=where,
        allow_non_integer=allow_non_integer,
    )
    if control_match_keys:
        samples.uns["perturbridge"]["control_match_keys"] = list(control_match_keys)
    return IngestResult(samples, ledger)


def _drop_kept(ledger: Ledger, ids: pd.Index, *, reason: str, detail: str) -> Ledger:
    """A copy of ``ledger`` whose kept entries of ``ids`` at :data:`STAGE` are drops."""
    frame = ledger.to_frame()
    hit = (
        (frame["stage"] == STAGE) & (frame["status"] == "kept") & frame["id"].isin(ids)
    ).to_numpy()
    frame.loc[hit, "status"] = "dropped"
    frame.loc[hit, "reason"] = reason
    frame.loc[hit, "detail"] = detail
    return Ledger(frame)


def replicate_rank(keys: pd.DataFrame, order: pd.DataFrame) -> np.ndarray:
    """``"1"``, ``"2"``, … : each row's rank among the rows with the same ``keys``,
    in the order of ``order`` (e.g. plate, well)."""
    sort = np.lexsort([order[c].astype(str).to_numpy() for c in reversed(order.columns)])
    ranked = keys.iloc[sort].astype(str).groupby(list(keys.columns), sort=False).cumcount() + 1
    out = np.empty(len(keys), dtype=object)
    out[sort] = ranked.astype(str).to_numpy()
    return out


def open_h5ad(path: Path, *, layer: str | None) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    """``obs``, ``var`` and the open file of an ``.h5ad``; the matrix stays unread.

    The caller closes the returned :class:`h5py.File`.
    """
    import h5py
    from anndata.io import read_elem

    try:
        fh = h5py.File(path, "r")
    except OSError as err:
        raise FormatError(f"{path}: not a readable .h5ad (HDF5) file: {err}") from err
    try:
        obs = read_elem(fh["obs"])
        var = read_elem(fh["var"])
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

"""Connectivity Map GCT (text, versions 1.2 and 1.3) and GCTX (HDF5) files.

Our own reader and writer, built on :mod:`h5py` and :mod:`pandas` only (no cmapPy).

Long because the two formats are one concern: a dataset read from GCT or from GCTX must
give equal frames, so both readers share one metadata type inference, one id and
selection check, and both writers one validation of what they are given; split apart,
those shared rules would have to be imported back by each half.

Conventions shared by both formats
----------------------------------
- Data are ``(n_rows, n_cols)`` = features (probes, genes) × samples (wells, signatures).
- Row and column ids are strings, unique along their axis (integer ids, e.g. Entrez ids in
  some GCTX files, are converted to ``str``).
- Metadata frames are indexed by those ids (index name ``"id"``), one column per field.
- Metadata types are inferred the same way for GCT and GCTX, so one dataset read from
  either format gives equal frames: a field whose values are all integer literals becomes
  ``int64``; one whose values all parse as numbers, allowing missing values, becomes
  ``float64``; anything else stays ``str`` (``object`` dtype). Numeric GCTX datasets keep
  their kind (integers as ``int64``, floats as ``float64``).
- Missing values are ``NaN``, ``nan``, ``NA`` and the empty string; they read as ``NaN``
  both in the data and in the metadata.
- ``-666`` is the CMap sentinel for "missing" in metadata. It is **kept as read** (the number
  ``-666`` in a numeric field, the string ``"-666"`` in a text field); converting it is left
  to the caller, who knows which fields use it.

GCTX layout
-----------
``/0/DATA/0/matrix`` holds the data **transposed**, ``(n_cols, n_rows)``: each HDF5 row is
one sample. ``/0/META/ROW/id`` and ``/0/META/COL/id`` hold the ids; every other dataset in
``/0/META/ROW`` and ``/0/META/COL`` is one metadata field. Strings are stored as bytes
(decoded as UTF-8). :class:`GCTXFile` opens a file lazily and reads only the requested
block of the matrix.

Examples
--------
>>> with GCTXFile("signatures.gctx") as f:  # doctest: +SKIP
...     x = f.read(cols=["CPC006_A549_6H:BRD-U88459701-000-01-8:10"])
>>> gct = read_gct("level3.gct")  # doctest: +SKIP
>>> write_gctx("level3.gctx", gct.data, row_meta=gct.row_meta, col_meta=gct.col_meta)
... # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import h5py
import numpy as np
import pandas as pd

from .._version import __version__
from ..errors import FormatError
from ._atomic import atomic_file
from ._resource import Resource

__all__ = ["GCT", "GCTXFile", "read_gct", "read_gctx", "write_gct", "write_gctx"]

logger = logging.getLogger(__name__)

#: Text tokens read as missing values, in the data and in the metadata.
MISSING_TOKENS: frozenset[str] = frozenset({"", "NA", "NaN", "nan"})

_MATRIX = "0/DATA/0/matrix"
_META = {"row": "0/META/ROW", "col": "0/META/COL"}
_GCTX_VERSION = "GCTX1.0"
# What a write puts in the text of a missing value (GCT cells, GCTX string fields).
_MISSING_OUT = "NaN"
# Filler written in the row-metadata columns of the column-metadata lines of a GCT 1.3 file.
_GCT_FILLER = "na"
# Elements of the matrix read per h5py call, which bounds the memory of one read step.
_READ_BUDGET = 1 << 22
# Per-dataset HDF5 chunk cache of an open GCTXFile, so that chunks are decompressed once.
_CHUNK_CACHE_BYTES = 32 << 20
# Target size of one chunk of a written GCTX matrix (the HDF5 chunk-cache default).
_CHUNK_TARGET_BYTES = 1 << 20
_MAX_CHUNK_COLS = 1000
_SHOW = 5  # how many offending values an error message names

_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)",
    re.IGNORECASE,
)

Ids = Sequence[str] | None
Idx = Sequence[int] | np.ndarray | None
Axis = Literal["row", "col"]


@dataclass
class GCT:
    """A GCT/GCTX dataset in memory.

    Attributes
    ----------
    data
        ``(n_rows, n_cols)`` floating-point matrix, features × samples, with the dtype as
        stored (GCT text reads as ``float64``). A ``(0, 0)`` array means "metadata only"
        (``read_gctx(..., meta_only=True)``).
    row_meta
        Row metadata, indexed by the row ids (``str``); may have no columns.
    col_meta
        Column metadata, indexed by the column ids (``str``); may have no columns.
    source
        The path the dataset was read from (``""`` when built in memory).
    """

    data: np.ndarray
    row_meta: pd.DataFrame
    col_meta: pd.DataFrame
    source: str = ""

    def __post_init__(self) -> None:
        if self.data.ndim != 2:
            raise ValueError(f"GCT data must be 2-D, found {self.data.ndim}-D")
        expected = (len(self.row_meta), len(self.col_meta))
        if self.data.shape != expected and self.data.shape != (0, 0):
            raise ValueError(
                f"GCT data shape {self.data.shape} disagrees with the metadata: "
                f"{expected[0]} row ids × {expected[1]} column ids"
            )

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_rows, n_cols)`` from the metadata (also valid when ``meta_only``)."""
        return len(self.row_meta), len(self.col_meta)


# --------------------------------------------------------------------------------------
# Shared helpers: metadata type inference, id checks, selections
# --------------------------------------------------------------------------------------


def _infer_column(values: Sequence[str]) -> np.ndarray:
    """Type a metadata field given as text: ``int64``, ``float64`` or ``str`` (object).

    All integer literals and no missing value -> ``int64``; all numbers, missing values
    allowed -> ``float64``; else ``object`` with the ``str`` values as read and ``NaN``
    where missing. Leading zeros are not kept in numbers (``"007"`` reads as ``7``).
    """
    stripped = [v.strip() for v in values]
    missing = np.fromiter((s in MISSING_TOKENS for s in stripped), dtype=bool, count=len(values))
    if not _all_numbers(stripped, missing):
        text = np.array(list(values), dtype=object)
        text[missing] = np.nan
        return text
    present = [s for s, m in zip(stripped, missing, strict=True) if not m]
    if present and not missing.any() and all(_INT_RE.fullmatch(s) for s in present):
        try:
            return np.array([int(s) for s in present], dtype=np.int64)
        except OverflowError:
            pass  # beyond int64: read as float64
    out = np.full(len(values), np.nan)
    out[~missing] = np.array(present, dtype=np.float64)
    return out


def _all_numbers(stripped: list[str], missing: np.ndarray) -> bool:
    # Text fields usually fail on their first value, so that value is tested first.
    first = int(np.argmin(missing)) if len(missing) else 0
    if len(missing) and not missing[first] and not _FLOAT_RE.fullmatch(stripped[first]):
        return False
    return all(m or _FLOAT_RE.fullmatch(s) for s, m in zip(stripped, missing, strict=True))


def _meta_frame(ids: pd.Index, fields: list[tuple[str, np.ndarray]]) -> pd.DataFrame:
    frame = pd.DataFrame(dict(fields), index=ids) if fields else pd.DataFrame(index=ids)
    frame.index.name = "id"
    return frame


def _duplicates(values: Sequence[Any] | pd.Index | np.ndarray) -> list[str]:
    index = pd.Index(values)
    return [str(v) for v in index[index.duplicated()].unique()[:_SHOW]]


def _check_unique(source: str, what: str, values: Sequence[Any] | pd.Index) -> None:
    dups = _duplicates(values)
    if dups:
        raise FormatError(f"{source}: duplicate {what}; first duplicated: {dups}")


def _resolve(
    index: pd.Index,
    ids: Ids,
    idx: Idx,
    *,
    axis: Axis,
    source: str,
) -> np.ndarray | None:
    """Positions selected by ids or by integer indices; ``None`` selects everything."""
    id_arg, idx_arg = f"{axis}s", f"{axis}_idx"
    if ids is not None and idx is not None:
        raise ValueError(f"pass {id_arg}= or {idx_arg}=, not both")
    if ids is None and idx is None:
        return None
    n = len(index)
    if ids is not None:
        if isinstance(ids, str):
            raise TypeError(f"{id_arg}= must be a sequence of ids, not the single string {ids!r}")
        wanted = [str(v) for v in ids]
        pos = index.get_indexer(pd.Index(wanted))
        if (pos < 0).any():
            absent = [w for w, p in zip(wanted, pos, strict=True) if p < 0]
            raise KeyError(
                f"{len(absent)} of {len(wanted)} requested {axis} ids are not in {source}; "
                f"first missing: {absent[:_SHOW]}"
            )
        what = f"{axis} ids"
        pos = pos.astype(np.intp)
    else:
        arr = np.asarray(idx)
        if arr.size == 0:
            arr = arr.astype(np.intp)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(
                f"{idx_arg}= must be a 1-D sequence of integers, found dtype {arr.dtype} "
                f"with shape {arr.shape}"
            )
        bad = arr[(arr < 0) | (arr >= n)]
        if bad.size:
            raise IndexError(
                f"{idx_arg}= out of range for {n} {axis}s of {source}; "
                f"first offending: {bad[:_SHOW].tolist()}"
            )
        what = f"{axis} indices"
        pos = arr.astype(np.intp)
    dups = _duplicates(pos if ids is None else [str(v) for v in ids])
    if dups:
        raise ValueError(f"requested {what} must be unique; first repeated: {dups}")
    return pos


def _take(frame: pd.DataFrame, pos: np.ndarray | None) -> pd.DataFrame:
    return frame if pos is None else frame.iloc[pos]


# --------------------------------------------------------------------------------------
# GCTX reading
# --------------------------------------------------------------------------------------


def _decode(source: str, name: str, raw: np.ndarray) -> list[str]:
    """Bytes (fixed or variable length) or str values of one dataset as Python ``str``."""
    items = raw.tolist()
    if not items or isinstance(items[0], str):
        return [str(v) for v in items]
    try:
        return [v.decode("utf-8") for v in items]
    except UnicodeDecodeError:
        logger.warning("%s: %s is not valid UTF-8; decoded as Latin-1", source, name)
        return [v.decode("latin-1") for v in items]


def _ids_from(source: str, ds: Any) -> pd.Index:
    raw = ds[()]
    if raw.ndim != 1:
        raise FormatError(f"{source}: {ds.name} must be 1-D, found shape {raw.shape}")
    kind = raw.dtype.kind
    if kind in "SOU":
        ids = _decode(source, ds.name, raw)
    elif kind in "iu":
        ids = [str(v) for v in raw.tolist()]
    elif kind == "f" and np.all(np.isfinite(raw)) and np.all(raw == np.round(raw)):
        ids = [str(int(v)) for v in raw.tolist()]
    else:
        raise FormatError(
            f"{source}: {ds.name} must hold strings or integers, found dtype {raw.dtype}"
        )
    if any(v == "" for v in ids):
        raise FormatError(f"{source}: {ds.name} contains empty ids")
    return pd.Index(ids, dtype=object, name="id")


class GCTXFile(Resource):
    """A lazily opened GCTX file: ids and shape on open, data only on request.

    Opening validates the layout (matrix, ids, shapes, unique ids) but reads no data.
    :meth:`read` reads only the requested block, so slicing a file with a million columns
    never loads the full matrix.

    Parameters
    ----------
    path
        The ``.gctx`` file.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    FormatError
        If the file is truncated, not HDF5, or does not follow the GCTX layout.

    Examples
    --------
    >>> with GCTXFile("level5.gctx") as f:  # doctest: +SKIP
    ...     dmso = f.col_meta(fields=["pert_iname"]).query("pert_iname == 'DMSO'").index
    ...     x = f.read(cols=dmso)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.source = str(self.path)
        if not self.path.is_file():
            raise FileNotFoundError(f"GCTX file not found: {self.source}")
        try:
            self._h5 = h5py.File(self.path, "r", rdcc_nbytes=_CHUNK_CACHE_BYTES)
        except OSError as err:
            raise FormatError(
                f"{self.source}: cannot open as GCTX: file is truncated or not an HDF5 file ({err})"
            ) from err
        try:
            self._validate()
        except BaseException:
            self._h5.close()
            raise

    def _validate(self) -> None:
        src, h5 = self.source, self._h5
        try:
            for need in (_MATRIX, f"{_META['row']}/id", f"{_META['col']}/id"):
                if not isinstance(h5.get(need), h5py.Dataset):
                    raise FormatError(
                        f"{src}: not a GCTX file: dataset /{need} is missing "
                        f"(expected /{_MATRIX} and /0/META/ROW/id, /0/META/COL/id)"
                    )
            version = h5.attrs.get("version")
            if version is None:
                logger.debug("%s: no 'version' attribute; reading as %s", src, _GCTX_VERSION)
            self._matrix: Any = h5[_MATRIX]
            self._row_ids = _ids_from(src, h5[f"{_META['row']}/id"])
            self._col_ids = _ids_from(src, h5[f"{_META['col']}/id"])
        except OSError as err:
            raise FormatError(f"{src}: corrupt GCTX file, cannot read its ids ({err})") from err
        n_rows, n_cols = len(self._row_ids), len(self._col_ids)
        shape = self._matrix.shape
        if shape != (n_cols, n_rows):
            raise FormatError(
                f"{src}: /{_MATRIX} has shape {shape}, but the ids give {n_rows} rows and "
                f"{n_cols} columns; GCTX stores the matrix transposed, expected "
                f"({n_cols}, {n_rows})"
            )
        if self._matrix.dtype.kind not in "fiu":
            raise FormatError(
                f"{src}: /{_MATRIX} must be numeric, found dtype {self._matrix.dtype}"
            )
        _check_unique(src, "row ids in /0/META/ROW/id", self._row_ids)
        _check_unique(src, "column ids in /0/META/COL/id", self._col_ids)

    # ---- context manager -------------------------------------------------------------

    def close(self) -> None:
        """Close the underlying HDF5 file (idempotent)."""
        self._h5.close()

    def __repr__(self) -> str:
        state = "open" if self._h5 else "closed"
        return f"GCTXFile({self.source!r}, shape={self.shape}, {state})"

    def _check_open(self) -> None:
        if not self._h5:
            raise ValueError(f"GCTXFile {self.source} is closed")

    # ---- ids and metadata ------------------------------------------------------------

    @property
    def row_ids(self) -> pd.Index:
        """Row (feature) ids, as ``str``."""
        return self._row_ids

    @property
    def col_ids(self) -> pd.Index:
        """Column (sample) ids, as ``str``."""
        return self._col_ids

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_rows, n_cols)``, features × samples (the matrix is stored transposed)."""
        return len(self._row_ids), len(self._col_ids)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The stored dtype of the matrix."""
        return np.dtype(self._matrix.dtype)

    def row_meta(self, *, fields: Sequence[str] | None = None) -> pd.DataFrame:
        """Row metadata indexed by the row ids.

        Parameters
        ----------
        fields
            The fields to read, in this order; all fields (file order) when ``None``.
        """
        return self._meta("row", fields)

    def col_meta(self, *, fields: Sequence[str] | None = None) -> pd.DataFrame:
        """Column metadata indexed by the column ids.

        Parameters
        ----------
        fields
            The fields to read, in this order; all fields (file order) when ``None``.
        """
        return self._meta("col", fields)

    def _meta(self, axis: Axis, fields: Sequence[str] | None) -> pd.DataFrame:
        self._check_open()
        src, where = self.source, _META[axis]
        ids = self._row_ids if axis == "row" else self._col_ids
        group = self._h5[where]
        available = [k for k in group if k != "id"]
        for k in available:
            if not isinstance(group[k], h5py.Dataset):
                logger.warning(
                    "%s: /%s/%s is a group, not a metadata field; skipped", src, where, k
                )
        available = [k for k in available if isinstance(group[k], h5py.Dataset)]
        if fields is None:
            names = available
        else:
            if isinstance(fields, str):
                raise TypeError(f"fields= must be a sequence of names, not {fields!r}")
            names = list(fields)
            absent = [f for f in names if f not in available]
            if absent:
                raise KeyError(
                    f"{axis} metadata fields {absent[:_SHOW]} are not in {src}; "
                    f"available: {available}"
                )
        columns = []
        for name in names:
            try:
                raw = group[name][()]
            except OSError as err:
                raise FormatError(f"{src}: corrupt GCTX file, cannot read /{where}/{name}") from err
            columns.append((name, self._field(f"/{where}/{name}", raw, len(ids))))
        return _meta_frame(ids, columns)

    def _field(self, name: str, raw: np.ndarray, n: int) -> np.ndarray:
        if raw.shape != (n,):
            raise FormatError(
                f"{self.source}: metadata field {name} has shape {raw.shape}, expected ({n},) "
                "to match the ids"
            )
        kind = raw.dtype.kind
        if kind in "SOU":
            return _infer_column(_decode(self.source, name, raw))
        if kind == "b":
            return raw.astype(bool)
        if kind in "iu":
            return raw.astype(np.int64)
        if kind == "f":
            return raw.astype(np.float64)
        raise FormatError(
            f"{self.source}: metadata field {name} has unsupported dtype {raw.dtype}; "
            "expected strings or numbers"
        )

    # ---- data ------------------------------------------------------------------------

    def read(
        self,
        *,
        rows: Ids = None,
        cols: Ids = None,
        row_idx: Idx = None,
        col_idx: Idx = None,
    ) -> np.ndarray:
        """Read a block of the matrix, ``(n_selected_rows, n_selected_cols)``.

        Only the requested block is read: requested positions are sorted, read from
        disk in bounded batches (contiguous slices where the selection is dense, one
        h5py fancy selection per batch where it is sparse) and put back in the
        requested order.

        Parameters
        ----------
        rows, row_idx
            Row ids, or row positions; at most one of the two. All rows when both ``None``.
        cols, col_idx
            Column ids, or column positions; at most one of the two.

        Returns
        -------
        The block, in the requested order, with the stored dtype.

        Raises
        ------
        KeyError
            If requested ids are not in the file (the message names the first missing).
        IndexError
            If requested positions are out of range.
        ValueError
            If a selection repeats an id or a position.
        """
        self._check_open()
        rpos = _resolve(self._row_ids, rows, row_idx, axis="row", source=self.source)
        cpos = _resolve(self._col_ids, cols, col_idx, axis="col", source=self.source)
        try:
            return self._read_positions(rpos, cpos)
        except OSError as err:
            raise FormatError(
                f"{self.source}: corrupt GCTX file, cannot read /{_MATRIX} ({err})"
            ) from err

    def _read_positions(self, rpos: np.ndarray | None, cpos: np.ndarray | None) -> np.ndarray:
        n_rows, n_cols = self.shape
        ds = self._matrix
        # Rows are the second storage axis: read their bounding range, subset in memory.
        if rpos is None:
            r_sorted, r_back = np.arange(n_rows), None
        else:
            r_order = np.argsort(rpos, kind="stable")
            r_sorted = rpos[r_order]
            r_back = None if _is_identity(r_order) else np.argsort(r_order)
        if cpos is None:
            c_sorted, c_back = np.arange(n_cols), None
        else:
            c_order = np.argsort(cpos, kind="stable")
            c_sorted = cpos[c_order]
            c_back = None if _is_identity(c_order) else np.argsort(c_order)
        out = np.empty((len(r_sorted), len(c_sorted)), dtype=ds.dtype)
        if out.size:
            r0, r1 = int(r_sorted[0]), int(r_sorted[-1]) + 1
            r_sub = None if r1 - r0 == len(r_sorted) else r_sorted - r0
            per_batch = max(1, _READ_BUDGET // (r1 - r0))
            for start in range(0, len(c_sorted), per_batch):
                batch = c_sorted[start : start + per_batch]
                block = _read_cols(ds, batch, slice(r0, r1))
                if r_sub is not None:
                    block = block[:, r_sub]
                out[:, start : start + len(batch)] = block.T
        if r_back is not None:
            out = out[r_back]
        if c_back is not None:
            out = out[:, c_back]
        logger.debug("%s: read block %s", self.source, out.shape)
        return out


def _is_identity(order: np.ndarray) -> bool:
    return bool(np.array_equal(order, np.arange(len(order))))


def _read_cols(ds: Any, batch: np.ndarray, rsl: slice) -> np.ndarray:
    """Storage rows ``batch`` (sorted, unique) × ``rsl``: one slice if dense, else fancy."""
    first, last = int(batch[0]), int(batch[-1])
    extent = last - first + 1
    if extent <= 2 * len(batch):
        block = ds[first : last + 1, rsl]
        return block if extent == len(batch) else block[batch - first]
    return ds[batch.tolist(), rsl]


def read_gctx(
    path: str | os.PathLike[str],
    *,
    rows: Ids = None,
    cols: Ids = None,
    row_idx: Idx = None,
    col_idx: Idx = None,
    meta_only: bool = False,
) -> GCT:
    """Read a GCTX file, or a block of it.

    Parameters
    ----------
    path
        The ``.gctx`` file.
    rows, row_idx
        Row ids or row positions to read (at most one); all rows when both ``None``.
    cols, col_idx
        Column ids or column positions to read (at most one).
    meta_only
        Read the metadata only; ``data`` is then an empty ``(0, 0)`` array.

    Returns
    -------
    The dataset, rows and columns in the requested order, data in the stored dtype.

    Raises
    ------
    FormatError
        If the file is truncated, not HDF5, or not a valid GCTX file.
    KeyError
        If requested ids are not in the file.

    Examples
    --------
    >>> gct = read_gctx("level5.gctx", col_idx=[10, 3, 7])  # doctest: +SKIP
    >>> gct.data.shape  # doctest: +SKIP
    (978, 3)
    """
    with GCTXFile(path) as f:
        rpos = _resolve(f.row_ids, rows, row_idx, axis="row", source=f.source)
        cpos = _resolve(f.col_ids, cols, col_idx, axis="col", source=f.source)
        row_meta = _take(f.row_meta(), rpos)
        col_meta = _take(f.col_meta(), cpos)
        if meta_only:
            data = np.empty((0, 0), dtype=f.dtype)
        else:
            try:
                data = f._read_positions(rpos, cpos)
            except OSError as err:
                raise FormatError(
                    f"{f.source}: corrupt GCTX file, cannot read /{_MATRIX} ({err})"
                ) from err
        return GCT(data=data, row_meta=row_meta, col_meta=col_meta, source=f.source)


# --------------------------------------------------------------------------------------
# GCT text reading
# --------------------------------------------------------------------------------------


def read_gct(
    path: str | os.PathLike[str],
    *,
    rows: Ids = None,
    cols: Ids = None,
) -> GCT:
    """Read a GCT text file (version 1.2 or 1.3).

    The whole file is parsed and validated (counts in the header against the body, field
    counts of every line, numeric data), but only the requested rows and columns are
    kept in memory. ``\\n``, ``\\r\\n`` and ``\\r`` line endings are all accepted. In a
    version 1.2 file the ``Description`` column becomes a row-metadata field of that name.

    Parameters
    ----------
    path
        The ``.gct`` file.
    rows
        Row ids to keep, in this order; all rows when ``None``.
    cols
        Column ids to keep, in this order; all columns when ``None``.

    Returns
    -------
    The dataset with ``float64`` data; metadata types are inferred (see the module notes).

    Raises
    ------
    FormatError
        If the version line is missing or unknown, the header counts disagree with the
        body, a line has the wrong number of fields, a data value is not a number, or ids
        are duplicated. The message names the file and the line.
    KeyError
        If requested ids are not in the file.

    Examples
    --------
    >>> gct = read_gct("test_l1000.gct", cols=["LJP005_A375_24H_X1_B19:A03"])  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GCT file not found: {path}")
    try:
        with path.open(encoding="utf-8-sig", newline=None) as fh:
            return _parse_gct(fh, str(path), rows, cols)
    except UnicodeDecodeError:
        logger.warning("%s is not valid UTF-8; reading it as Latin-1", path)
        with path.open(encoding="latin-1", newline=None) as fh:
            return _parse_gct(fh, str(path), rows, cols)


def _lines(fh: IO[str]) -> Iterator[tuple[int, str]]:
    """Numbered lines without their line ending (the file is opened in universal mode)."""
    for lineno, line in enumerate(fh, start=1):
        yield lineno, line[:-1] if line.endswith("\n") else line


def _parse_gct(fh: IO[str], src: str, rows: Ids, cols: Ids) -> GCT:
    lines = _lines(fh)
    first = next(lines, None)
    if first is None:
        raise FormatError(f"{src}: empty file; expected a GCT version line '#1.2' or '#1.3'")
    version = first[1].split("\t")[0].strip()
    if version not in ("#1.2", "#1.3"):
        raise FormatError(
            f"{src}: line 1: expected a GCT version line '#1.2' or '#1.3', found {first[1][:40]!r}"
        )
    n_dims = 4 if version == "#1.3" else 2
    dims_line = next(lines, None)
    what_dims = "n_rows n_cols n_rowmeta n_colmeta" if n_dims == 4 else "n_rows n_cols"
    if dims_line is None:
        raise FormatError(f"{src}: line 2 is missing; expected the dimensions '{what_dims}'")
    tokens = dims_line[1].split()
    if len(tokens) != n_dims or not all(t.isdigit() for t in tokens):
        raise FormatError(
            f"{src}: line 2: expected {n_dims} non-negative integers '{what_dims}' for "
            f"GCT {version[1:]}, found {dims_line[1][:80]!r}"
        )
    dims = [int(t) for t in tokens]
    n_rows, n_cols = dims[0], dims[1]
    n_rm, n_cm = (dims[2], dims[3]) if n_dims == 4 else (1, 0)
    width = 1 + n_rm + n_cols
    layout = f"1 id + {n_rm} row-metadata + {n_cols} values"

    header = next(lines, None)
    if header is None:
        raise FormatError(f"{src}: line 3 is missing; expected the header line")
    cells = header[1].split("\t")
    if len(cells) != width:
        raise FormatError(
            f"{src}: line 3 (header) has {len(cells)} tab-separated fields, expected "
            f"{width} ({layout}) from the dimensions in line 2"
        )
    row_fields = cells[1 : 1 + n_rm] if n_dims == 4 else ["Description"]
    col_ids = pd.Index(cells[1 + n_rm :], dtype=object, name="id")
    if any(c == "" for c in col_ids):
        raise FormatError(f"{src}: line 3 (header) has empty column ids")
    _check_unique(src, "row-metadata field names in line 3", row_fields)
    _check_unique(src, "column ids in line 3", col_ids)
    cpos = _resolve(col_ids, cols, None, axis="col", source=src)

    col_fields: list[tuple[str, np.ndarray]] = []
    for k in range(n_cm):
        item = next(lines, None)
        if item is None:
            raise FormatError(
                f"{src}: declared {n_cm} column-metadata lines in line 2, but the file ends "
                f"after {k}"
            )
        lineno, line = item
        fields = line.split("\t")
        if len(fields) != width:
            raise FormatError(
                f"{src}: line {lineno} (column metadata {fields[0]!r}) has {len(fields)} "
                f"tab-separated fields, expected {width} ({layout})"
            )
        col_fields.append((fields[0], _infer_column(fields[1 + n_rm :])))
    _check_unique(src, "column-metadata field names", [name for name, _ in col_fields])

    # Rows to keep: output position of each wanted id.
    if rows is not None and isinstance(rows, str):
        raise TypeError(f"rows= must be a sequence of ids, not the single string {rows!r}")
    wanted = None if rows is None else {str(r): i for i, r in enumerate(rows)}
    if wanted is not None and len(wanted) != len(rows or ()):
        raise ValueError(
            f"requested row ids must be unique; first repeated: "
            f"{_duplicates([str(r) for r in rows or ()])}"
        )
    n_keep = n_rows if wanted is None else len(wanted)
    n_out_cols = n_cols if cpos is None else len(cpos)
    data = np.empty((n_keep, n_out_cols), dtype=np.float64)
    row_ids: list[str] = []
    row_tokens: list[list[str]] = []
    blank_at = 0
    for lineno, line in lines:
        if line == "":
            blank_at = blank_at or lineno
            continue
        if blank_at:
            raise FormatError(f"{src}: line {blank_at} is blank, but data lines follow it")
        if len(row_ids) == n_rows:
            raise FormatError(
                f"{src}: declared {n_rows} rows in line 2, but line {lineno} is data row "
                f"{n_rows + 1}; the header counts disagree with the body"
            )
        fields = line.split("\t")
        if len(fields) != width:
            raise FormatError(
                f"{src}: line {lineno} (row {fields[0]!r}) has {len(fields)} tab-separated "
                f"fields, expected {width} ({layout})"
            )
        rid = fields[0]
        if rid == "":
            raise FormatError(f"{src}: line {lineno} has an empty row id")
        target = len(row_ids) if wanted is None else wanted.get(rid)
        row_ids.append(rid)
        row_tokens.append(fields[1 : 1 + n_rm])
        if target is not None:
            values = _parse_values(fields[1 + n_rm :], src, lineno, col_ids, 2 + n_rm)
            data[target] = values if cpos is None else values[cpos]
    if len(row_ids) != n_rows:
        msg = (
            f"{src}: declared {n_rows} rows in line 2, but found {len(row_ids)} data lines "
            f"after the {n_cm} declared column-metadata lines; the header counts disagree "
            "with the body"
        )
        body = n_cm + len(row_ids)
        if n_cm and n_rows <= body:
            msg += (
                f" (if {n_rows} rows is right, the file has {body - n_rows} "
                f"column-metadata lines, not {n_cm})"
            )
        else:
            msg += " (truncated file?)"
        raise FormatError(msg)
    all_rows = pd.Index(row_ids, dtype=object, name="id")
    _check_unique(src, "row ids", all_rows)
    rpos = _resolve(all_rows, rows, None, axis="row", source=src)
    row_fields_typed = [
        (name, _infer_column([t[k] for t in row_tokens])) for k, name in enumerate(row_fields)
    ]
    row_meta = _take(_meta_frame(all_rows, row_fields_typed), rpos)
    col_meta = _take(_meta_frame(col_ids, col_fields), cpos)
    logger.debug("%s: read GCT %s, %d x %d", src, version, *data.shape)
    return GCT(data=data, row_meta=row_meta, col_meta=col_meta, source=src)


def _parse_values(
    tokens: list[str], src: str, lineno: int, col_ids: pd.Index, first_field: int
) -> np.ndarray:
    """Data values of one line; missing tokens -> NaN, anything else must be a number."""
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        pass
    out = np.empty(len(tokens), dtype=np.float64)
    for j, tok in enumerate(tokens):
        s = tok.strip()
        if s in MISSING_TOKENS:
            out[j] = np.nan
            continue
        try:
            out[j] = float(s)
        except ValueError as err:
            raise FormatError(
                f"{src}: line {lineno}, field {first_field + j} (column {col_ids[j]!r}): "
                f"non-numeric data value {tok!r}; expected a number or a missing value "
                "(NaN, NA or empty)"
            ) from err
    return out


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def _check_inputs(
    data: np.ndarray, row_meta: pd.DataFrame, col_meta: pd.DataFrame
) -> tuple[np.ndarray, list[str], list[str]]:
    """Validate a dataset to write; return the float matrix and the ids as ``str``."""
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise ValueError(f"data must be 2-D (n_rows, n_cols), found {arr.ndim}-D")
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"data must be numeric, found dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    for frame, name in ((row_meta, "row_meta"), (col_meta, "col_meta")):
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"{name} must be a pandas DataFrame, found {type(frame).__name__}")
    expected = (len(row_meta), len(col_meta))
    if arr.shape != expected:
        raise ValueError(
            f"data shape {arr.shape} disagrees with the metadata: row_meta has "
            f"{expected[0]} rows and col_meta {expected[1]} rows"
        )
    out_ids = []
    for frame, name in ((row_meta, "row_meta"), (col_meta, "col_meta")):
        ids = [str(v) for v in frame.index]
        dups = _duplicates(ids)
        if dups:
            raise ValueError(f"{name}.index must hold unique ids; first duplicated: {dups}")
        if any(v == "" for v in ids):
            raise ValueError(f"{name}.index contains empty ids")
        for field in frame.columns:
            if not isinstance(field, str) or field in ("", "id") or "/" in field:
                raise ValueError(
                    f"{name} field names must be non-empty strings other than 'id' without "
                    f"'/', found {field!r}"
                )
        out_ids.append(ids)
    return arr, out_ids[0], out_ids[1]


def _is_missing(v: object) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _typed_field(series: pd.Series) -> np.ndarray:
    """A metadata column as ``int64``, ``float64`` or an object array of ``str``/missing."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        series = series.astype(dtype.categories.dtype if len(dtype.categories) else object)
        dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) and not series.isna().any():
        return series.to_numpy(dtype=np.int64)
    if pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        if series.isna().any():
            return series.to_numpy(dtype=np.float64, na_value=np.nan)
        return series.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.array([np.nan if _is_missing(v) else str(v) for v in series], dtype=object)


def _text_cells(values: np.ndarray) -> list[str]:
    """Metadata values as GCT cells; floats in their shortest round-trip form."""
    if values.dtype.kind == "i":
        return [str(v) for v in values.tolist()]
    if values.dtype.kind == "f":
        return [_MISSING_OUT if math.isnan(v) else repr(v) for v in values.tolist()]
    return [_MISSING_OUT if _is_missing(v) else str(v) for v in values]


def _float_cells(row: np.ndarray) -> list[str]:
    """Data values as text that reads back exactly in the row's own precision."""
    cells = [str(v) for v in row] if row.dtype == np.float32 else [repr(v) for v in row.tolist()]
    return [_MISSING_OUT if c == "nan" else c for c in cells]


def _default_chunk_cols(n_rows: int, n_cols: int, itemsize: int) -> int:
    by_size = _CHUNK_TARGET_BYTES // max(1, n_rows * itemsize)
    return max(1, min(n_cols, _MAX_CHUNK_COLS, by_size))


def write_gctx(
    path: str | os.PathLike[str],
    data: np.ndarray,
    *,
    row_meta: pd.DataFrame,
    col_meta: pd.DataFrame,
    chunk_cols: int | None = None,
    compression: str | None = "gzip",
) -> Path:
    """Write a GCTX file atomically.

    The matrix is stored transposed, ``(n_cols, n_rows)``, chunked by whole samples;
    ids and text fields as fixed-length UTF-8 bytes (as CMap does), numeric fields as
    numbers (booleans as ``int64``), missing text as ``"NaN"``. The metadata groups track
    creation order, so fields read back in the order of the frames. The file is written
    to a temporary path beside ``path`` and renamed on success; a failed write leaves
    nothing behind.

    Parameters
    ----------
    path
        The output ``.gctx`` file.
    data
        ``(n_rows, n_cols)`` numeric matrix; ``float32`` and ``float64`` are kept, other
        numeric dtypes are written as ``float64``.
    row_meta, col_meta
        Metadata frames indexed by the unique row and column ids; field names must not be
        ``"id"`` nor contain ``/``.
    chunk_cols
        Samples per HDF5 chunk; by default as many as fit in about 1 MiB (at most 1000).
    compression
        ``"gzip"``, ``"lzf"`` or ``None``.

    Returns
    -------
    ``path``.

    Raises
    ------
    ValueError, TypeError
        If the data and metadata disagree, ids repeat, or a field name is not allowed.
    """
    arr, row_ids, col_ids = _check_inputs(data, row_meta, col_meta)
    if compression not in ("gzip", "lzf", None):
        raise ValueError(f"compression must be 'gzip', 'lzf' or None, found {compression!r}")
    integral = isinstance(chunk_cols, int | np.integer) and not isinstance(chunk_cols, bool)
    if chunk_cols is not None and (not integral or chunk_cols < 1):
        raise ValueError(f"chunk_cols must be a positive integer or None, found {chunk_cols!r}")
    n_rows, n_cols = arr.shape
    row_fields = [(str(c), _typed_field(row_meta[c])) for c in row_meta.columns]
    col_fields = [(str(c), _typed_field(col_meta[c])) for c in col_meta.columns]
    path = Path(path)
    with atomic_file(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["version"] = np.bytes_(_GCTX_VERSION)
        h5.attrs["creator"] = np.bytes_(f"perturbridge {__version__}")
        _write_matrix(h5, arr, chunk_cols, compression)
        _write_meta(h5, "row", row_ids, row_fields, compression)
        _write_meta(h5, "col", col_ids, col_fields, compression)
    logger.debug("wrote GCTX %s, %d x %d", path, n_rows, n_cols)
    return path


def _write_matrix(
    h5: h5py.File, arr: np.ndarray, chunk_cols: int | None, compression: str | None
) -> None:
    n_rows, n_cols = arr.shape
    opts: dict[str, Any] = {}
    if arr.size:
        step = min(n_cols, int(chunk_cols or _default_chunk_cols(n_rows, n_cols, arr.itemsize)))
        opts = {"chunks": (step, n_rows), "compression": compression}
    ds = h5.create_dataset(_MATRIX, shape=(n_cols, n_rows), dtype=arr.dtype, **opts)
    # Transpose in blocks of samples so that no full transposed copy is made.
    block = max(1, _READ_BUDGET // max(1, n_rows))
    for start in range(0, n_cols, block):
        ds[start : start + block] = arr[:, start : start + block].T


def _h5_values(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "if":
        return values
    encoded = [(_MISSING_OUT if _is_missing(v) else str(v)).encode("utf-8") for v in values]
    width = max((len(b) for b in encoded), default=1) or 1
    return np.array(encoded, dtype=f"S{width}")


def _write_meta(
    h5: h5py.File,
    axis: Axis,
    ids: list[str],
    fields: list[tuple[str, np.ndarray]],
    compression: str | None,
) -> None:
    group = h5.require_group("0/META").create_group(axis.upper(), track_order=True)
    for name, values in [("id", np.array(ids, dtype=object)), *fields]:
        out = _h5_values(values)
        opts = {"compression": compression} if len(out) and compression else {}
        group.create_dataset(name, data=out, **opts)


def write_gct(
    path: str | os.PathLike[str],
    data: np.ndarray,
    *,
    row_meta: pd.DataFrame,
    col_meta: pd.DataFrame,
) -> Path:
    """Write a GCT 1.3 text file atomically.

    Data values are written in their shortest form that reads back exactly in their own
    precision (``float32`` data read back as ``float64`` equal the original after casting
    to ``float32``); missing values as ``NaN``; the row-metadata cells of the
    column-metadata lines as ``na``.

    Parameters
    ----------
    path
        The output ``.gct`` file.
    data
        ``(n_rows, n_cols)`` numeric matrix.
    row_meta, col_meta
        Metadata frames indexed by the unique row and column ids. Ids and text values must
        not contain tabs or line breaks.

    Returns
    -------
    ``path``.

    Raises
    ------
    ValueError, TypeError
        If the data and metadata disagree, ids repeat, or a text cell holds a tab or a
        line break.
    """
    arr, row_ids, col_ids = _check_inputs(data, row_meta, col_meta)
    row_cells = [(str(c), _text_cells(_typed_field(row_meta[c]))) for c in row_meta.columns]
    col_cells = [(str(c), _text_cells(_typed_field(col_meta[c]))) for c in col_meta.columns]
    _check_cells("row_meta.index", row_ids)
    _check_cells("col_meta.index", col_ids)
    for name, cells in [*row_cells, *col_cells]:
        _check_cells(f"field {name!r}", [name, *cells])
    n_rows, n_cols = arr.shape
    path = Path(path)
    with atomic_file(path) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write("#1.3\n")
        fh.write(f"{n_rows}\t{n_cols}\t{len(row_cells)}\t{len(col_cells)}\n")
        fh.write("\t".join(["id", *(name for name, _ in row_cells), *col_ids]) + "\n")
        filler = [_GCT_FILLER] * len(row_cells)
        for name, cells in col_cells:
            fh.write("\t".join([name, *filler, *cells]) + "\n")
        for i, rid in enumerate(row_ids):
            meta = [cells[i] for _, cells in row_cells]
            fh.write("\t".join([rid, *meta, *_float_cells(arr[i])]) + "\n")
    logger.debug("wrote GCT %s, %d x %d", path, n_rows, n_cols)
    return path


def _check_cells(what: str, cells: list[str]) -> None:
    bad = [c for c in cells if "\t" in c or "\n" in c or "\r" in c]
    if bad:
        raise ValueError(
            f"{what}: GCT text cells must not contain tabs or line breaks; "
            f"first offending: {bad[:_SHOW]}"
        )

"""Pseudobulk: sum single-cell counts per sample, streaming, with every cell accounted for.

:func:`pseudobulk` turns a cells × genes count matrix (an in-memory AnnData or an
``.h5ad`` on disk) into one summed profile per group of cells, for instance per
``plate × well × cell_line × condition``. Every input cell ends up in the ledger:
kept (with the group it was summed into) or dropped with a reason.

Design
------
- **Streaming.** ``obs`` and ``var`` are read whole (they fit); the matrix is read in
  row chunks of ``chunk_size`` cells and never loaded whole. For a path, the file is
  opened with :mod:`h5py` and the matrix (``X`` or ``layers/<layer>``) is read slice by
  slice; ``anndata.read_h5ad(path, backed="r")`` is not used because it loads every
  layer, ``obsm`` and ``raw`` into memory. A sparse matrix must be stored as CSR (a
  CSC matrix on disk cannot be read by rows without reading all of it).
- **One pass.** Each chunk gives the per-cell totals, detected genes and the fraction
  of the quality gene (the cell filters), is checked for negative or non-finite
  values, and its kept cells are added into the group sums. ``min_cells`` needs the
  group sizes after filtering; it is applied after the pass by removing the rows of the
  small groups (their sums never touch other groups), so no second pass is needed.
- **The kernel** is a scatter-add of the chunk's stored entries into a float64
  accumulator, ``sums[group(cell), gene] += value``. While the accumulator fits
  ``_DENSE_LIMIT_BYTES`` (about 6,700 groups × 20,000 genes) it is a dense array. The
  pass is bound by memory latency (each entry lands anywhere in hundreds of MB), so
  the chunk's cells are first put in group order (a stable sort of their codes; the
  rows are gathered by SciPy's compiled CSR row gather): consecutive entries then hit
  one accumulator row, which stays in cache. The sorted cells are cut at group
  boundaries into one part per thread; each thread gathers, converts to float64 and
  adds its part in sub-blocks of at most ``_BLOCK_NNZ`` entries (SciPy's compiled
  COO-to-dense loop, checked once, with :func:`numpy.add.at` as the fallback) into rows
  that no other thread touches. Each group's cells are added in input order whatever
  the number of threads, so the sums do not depend on it. The next chunk is read (and
  checked) in another thread meanwhile. Measured on 1M cells × 20,000 genes, 1,920
  groups: 8.8 s before sorting and threads, about 4 s after. With more groups, each
  block's sums are formed as ``indicator @ block`` (sparse) and merged in a
  logarithmic cascade, so memory follows the nonzero sums rather than groups × genes.
- **Memory** is the accumulator, two chunks of the matrix (reused buffers), the
  threads' sub-block buffers and, per
  cell, ``obs`` plus 9 bytes of bookkeeping; the ledger (one row per cell) is built
  after the pass.
- **Output.** ``X`` is a CSR matrix of float64 sums, whatever the input dtype: float64
  holds every integer sum exactly up to 2**53 and also non-integer inputs (for example
  ambient-corrected counts), where int64 would need an integer check of all the data.
  A pseudobulk of many cells is nearly dense; CSR keeps many small groups cheap.

Examples
--------
>>> import anndata as ad, numpy as np, pandas as pd
>>> from scipy import sparse
>>> obs = pd.DataFrame(
...     {"plate": ["p1"] * 4, "well": ["A01", "A01", "B01", "B01"]},
...     index=[f"c{i}" for i in range(4)],
... )
>>> cells = ad.AnnData(sparse.csr_matrix(np.arange(8.0).reshape(4, 2)), obs=obs)
>>> res = pseudobulk(cells, groupby=["plate", "well"])
>>> res.counts.X.toarray().tolist()
[[2.0, 4.0], [10.0, 12.0]]
>>> res.counts.obs_names.tolist()
['p1_A01', 'p1_B01']
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple

import anndata as ad
import h5py
import numpy as np
import pandas as pd
from scipy import sparse

try:
    from anndata.io import read_elem
except ImportError:  # anndata < 0.11
    from anndata.experimental import read_elem

from .io._atomic import provenance
from .ledger import Ledger
from .progress import track
from .schema import check_unique_index

__all__ = ["PSEUDOBULK_REASONS", "STAGE", "PseudobulkResult", "pseudobulk"]

logger = logging.getLogger(__name__)

#: The ledger stage of :func:`pseudobulk`.
STAGE: Final = "pseudobulk"

#: Why :func:`pseudobulk` drops a cell, in the order the rules are applied (a cell
#: is recorded once, with the first rule it breaks).
PSEUDOBULK_REASONS: Final[dict[str, str]] = {
    "missing_metadata": "a grouping column is missing (NA or empty) for the cell",
    "min_counts": "the cell's total count is below min_counts",
    "min_genes": "the cell detects fewer than min_genes genes",
    "nucleus_quality": "the quality gene's fraction of the cell's counts is below "
    "quality_min_fraction (and the cell is not exempt)",
    "small_group": "the cell's group keeps fewer than min_cells cells; the whole group is dropped",
}
_REASONS: Final = ("", *PSEUDOBULK_REASONS)  # code 0 is "kept"
_KEPT, _MISSING, _MIN_COUNTS, _MIN_GENES, _QUALITY, _SMALL = range(6)

#: Dense accumulators up to this size; beyond it, sums are accumulated sparse.
_DENSE_LIMIT_BYTES = 1 << 30
#: Entries per sub-block of the scatter-add kernel (bounds its temporaries).
_BLOCK_NNZ = 1 << 22
#: Values per block when a dense input matrix is read (64 MiB of float32).
_DENSE_READ_VALUES = 1 << 24
#: Cells per slice when the ledger is built (bounds its temporary copies).
_LEDGER_ROWS = 1 << 20
#: The sparse cascade adds two partial sums when the lower one is at most this many
#: times larger than the upper one.
_CASCADE = 2

Reader = Callable[[int, int], "_Csr"]


@dataclass
class PseudobulkResult:
    """What :func:`pseudobulk` returns.

    Attributes
    ----------
    counts
        One row per kept group. ``X``: CSR float64 sums of the cells' counts.
        ``obs``: the grouping columns (categorical, typed as in the input),
        ``n_cells`` (int64) and ``total_counts`` (float64), indexed by a group id
        joined from the keys with ``"_"`` (for display; use the columns).
        ``var``: the input's ``var``. ``layers["frac_expressing"]`` (when asked): the
        fraction of the group's cells with a nonzero count, CSR float64 with the
        sparsity of ``X``. ``uns["perturbridge"]``: ``kind="pseudobulk"``,
        ``value_kind="counts"``, ``params`` and ``provenance`` (and ``cells`` when
        ``cell_ids=True``).
    ledger
        One entry per input cell at stage ``"pseudobulk"``: kept (detail: the group
        id) or dropped with a reason of :data:`PSEUDOBULK_REASONS`.
    """

    counts: ad.AnnData
    ledger: Ledger


def pseudobulk(
    adata_or_path: ad.AnnData | str | os.PathLike[str],
    *,
    groupby: Sequence[str] = ("plate", "well", "cell_line", "condition"),
    layer: str | None = None,
    min_counts: float = 0,
    min_genes: int = 0,
    quality_gene: str | None = None,
    quality_min_fraction: float = 0.0,
    quality_exempt: Mapping[str, Sequence[str]] | None = None,
    min_cells: int = 1,
    fraction_expressing: bool = False,
    chunk_size: int = 100_000,
    progress: bool = False,
    cell_ids: bool = False,
    n_threads: int | None = None,
) -> PseudobulkResult:
    """Sum the counts of cells per group, streaming over the matrix in row chunks.

    Parameters
    ----------
    adata_or_path
        Cells × genes raw counts: an AnnData (in memory or opened backed), or the
        path of an ``.h5ad`` file, which is read chunk by chunk (never whole).
    groupby
        ``obs`` columns whose combination defines a group (a pseudobulk sample).
    layer
        Sum this layer instead of ``X``.
    min_counts
        Drop cells whose total count is below this (reason ``min_counts``).
    min_genes
        Drop cells with fewer genes detected (nonzero) than this (``min_genes``).
    quality_gene
        A gene id (``var_names``) or symbol (``var["symbol"]``), e.g. ``"MALAT1"``,
        whose fraction of a cell's counts marks an intact nucleus.
    quality_min_fraction
        Drop cells where ``quality_gene`` makes up less than this fraction of the
        total count (reason ``nucleus_quality``); a cell with no counts has fraction 0.
    quality_exempt
        ``{obs column: values}``: cells whose value in any of these columns is listed
        are exempt from the quality-gene rule, e.g. ``{"cell_line": ["HEK293"]}``.
    min_cells
        Drop whole groups that keep fewer cells than this after the cell filters
        (reason ``small_group`` for each of their cells).
    fraction_expressing
        Add ``layers["frac_expressing"]``: per group and gene, the fraction of the
        group's cells with a nonzero count.
    chunk_size
        Cells read per chunk; memory grows with it, not with the number of cells.
    progress
        Show a progress bar over the chunks.
    cell_ids
        Also store the kept cells and their group in the result, as a table
        ``uns["perturbridge"]["cells"]`` (index: cell id; column ``group``). The ledger
        holds the same mapping; this copy travels with the AnnData when it is written.
        It grows with the number of cells, hence off by default.
    n_threads
        Threads that add chunks into the sums (default: the CPUs available, at most
        4). The result does not depend on it: each group's sums are formed by one
        thread, in input order.

    Returns
    -------
    PseudobulkResult
        The summed counts (an AnnData, one row per group) and the ledger.

    Raises
    ------
    KeyError
        A ``groupby``, ``quality_exempt`` column, the layer or the quality gene is
        missing (the message lists what is available).
    ValueError
        Cell ids are repeated, a count is negative or not finite (the message names
        the chunk, cell and gene), the matrix is stored CSC on disk, or a parameter is
        out of range.
    TypeError
        The input or its matrix is of a type that cannot be read by rows.
    """
    groupby = _check_params(
        groupby=groupby,
        min_counts=min_counts,
        min_genes=min_genes,
        quality_gene=quality_gene,
        quality_min_fraction=quality_min_fraction,
        quality_exempt=quality_exempt,
        min_cells=min_cells,
        chunk_size=chunk_size,
    )
    params: dict[str, Any] = {
        "groupby": list(groupby),
        "layer": layer,
        "min_counts": min_counts,
        "min_genes": min_genes,
        "quality_gene": quality_gene,
        "quality_min_fraction": quality_min_fraction,
        "quality_exempt": {k: list(v) for k, v in (quality_exempt or {}).items()},
        "min_cells": min_cells,
        "fraction_expressing": fraction_expressing,
        "chunk_size": chunk_size,
        "cell_ids": cell_ids,
    }
    with _open_source(adata_or_path, layer=layer) as src:
        params["input"] = src.label
        obs, var = src.obs, src.var.copy()
        check_unique_index(pd.Index(obs.index), what="cell", where="pseudobulk input obs")
        groups = _factorize_groups(obs, groupby)
        quality_col = None if quality_gene is None else _find_gene(var, quality_gene, src.label)
        filters = _Filters(
            min_counts=min_counts,
            min_genes=min_genes,
            quality_min_fraction=quality_min_fraction,
            exempt=_exempt_mask(obs, quality_exempt),
            quality_col=quality_col,
        )
        state = _CellState(groups.codes)
        sums, nonzero, n_cells, rows = _stream(
            src,
            state,
            filters,
            n_groups=groups.n_groups,
            min_cells=min_cells,
            fraction_expressing=fraction_expressing,
            chunk_size=chunk_size,
            progress=progress,
            n_threads=_resolve_threads(n_threads),
        )

    counts = _build_counts(groups, rows, n_cells[rows], sums, nonzero, var, params)
    ledger = state.ledger(
        obs.index,
        groups,
        n_cells=n_cells,
        min_counts=min_counts,
        min_genes=min_genes,
        quality_gene=quality_gene,
        quality_min_fraction=quality_min_fraction,
        min_cells=min_cells,
    )
    if cell_ids:
        kept = state.reason == _KEPT
        new_code = np.full(groups.n_groups, -1, dtype=np.int64)
        new_code[rows] = np.arange(len(rows))
        counts.uns["perturbridge"]["cells"] = pd.DataFrame(
            {
                "group": pd.Categorical.from_codes(
                    new_code[state.codes[kept]], categories=counts.obs_names
                )
            },
            index=pd.Index(obs.index[kept].astype(str), name="cell_id"),
        )
    _log_summary(state.reason, counts)
    return PseudobulkResult(counts=counts, ledger=ledger)


def _stream(
    src: _Source,
    state: _CellState,
    filters: _Filters,
    *,
    n_groups: int,
    min_cells: int,
    fraction_expressing: bool,
    chunk_size: int,
    progress: bool,
    n_threads: int,
) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """The one pass: filter the cells of each chunk and add the kept ones to their group.

    Then drop the groups smaller than ``min_cells`` (their sums touch no other group).
    Returns the sums and nonzero counts (or ``None``) of the groups kept, as CSR, the
    cells per group (all groups) and the groups kept. The read buffers and the
    accumulator are released when it returns.
    """
    acc: _Accumulator = (
        _DenseSums(n_groups, src.n_vars, fraction_expressing, n_threads)
        if n_groups * src.n_vars * 8 <= _DENSE_LIMIT_BYTES
        else _SparseSums(n_groups, src.n_vars, fraction_expressing)
    )
    _sum_chunks(src, state, filters, acc, chunk_size, progress)
    src.read = _closed_reader  # release the reader's buffers before the result is built
    n_cells = np.bincount(state.kept_codes(), minlength=n_groups)
    small = n_cells < min_cells
    state.drop_small_groups(small)
    rows = np.flatnonzero(~small)
    sums, nonzero = acc.result(rows)
    return sums, nonzero, n_cells, rows


def _sum_chunks(
    src: _Source,
    state: _CellState,
    filters: _Filters,
    acc: _Accumulator,
    chunk_size: int,
    progress: bool,
) -> None:
    """Read chunk ``i + 1`` (and check its values) in a thread while chunk ``i`` is
    summed; the readers keep two sets of buffers, so that is all that is in memory."""
    work = _Buffer()
    bounds = [(a, min(a + chunk_size, src.n_obs)) for a in range(0, src.n_obs, chunk_size)]
    if not bounds:
        return

    def read(i: int) -> _Csr:
        start, stop = bounds[i]
        chunk = src.read(start, stop)
        _check_values(chunk, start=start, chunk_index=i, obs=src.obs, var=src.var)
        return chunk

    with ThreadPoolExecutor(max_workers=1) as reader:
        ahead = reader.submit(read, 0)
        for i, (start, _stop) in enumerate(
            track(bounds, description="pseudobulk", enabled=progress, total=len(bounds))
        ):
            chunk = ahead.result()
            if i + 1 < len(bounds):
                ahead = reader.submit(read, i + 1)
            # A call per chunk: no view of the reader's buffers outlives it.
            _sum_chunk(chunk, start, state, filters, acc, work)
            del chunk


def _sum_chunk(
    chunk: _Csr,
    start: int,
    state: _CellState,
    filters: _Filters,
    acc: _Accumulator,
    work: _Buffer,
) -> None:
    if filters.active:
        # Sub-blocks keep the float64 copy and the statistics' temporaries small.
        for r0, r1 in _block_bounds(chunk.indptr, _BLOCK_NNZ):
            a, b = int(chunk.indptr[r0]), int(chunk.indptr[r1])
            block = _Csr(
                work.float64(chunk.data[a:b]), chunk.indices[a:b], chunk.indptr[r0 : r1 + 1] - a
            )
            state.apply_filters(
                slice(start + r0, start + r1), _cell_stats(block, filters.quality_col), filters
            )
    acc.add(state.summed_group(slice(start, start + len(chunk.indptr) - 1)), chunk)


def _resolve_threads(n_threads: int | None) -> int:
    if n_threads is None:
        return max(
            1,
            min(
                4,
                len(os.sched_getaffinity(0))
                if hasattr(os, "sched_getaffinity")
                else (os.cpu_count() or 1),
            ),
        )
    if n_threads < 1:
        raise ValueError(f"n_threads must be at least 1; got {n_threads}")
    return int(n_threads)


def _closed_reader(start: int, stop: int) -> _Csr:
    raise RuntimeError("the count matrix was already read")


# --------------------------------------------------------------------------- params


def _check_params(
    *,
    groupby: Sequence[str],
    min_counts: float,
    min_genes: int,
    quality_gene: str | None,
    quality_min_fraction: float,
    quality_exempt: Mapping[str, Sequence[str]] | None,
    min_cells: int,
    chunk_size: int,
) -> tuple[str, ...]:
    keys = (groupby,) if isinstance(groupby, str) else tuple(groupby)
    if not keys:
        raise ValueError("groupby must name at least one obs column; found none")
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ValueError(f"groupby names a column more than once: {dup}")
    if not np.isfinite(min_counts) or min_counts < 0:
        raise ValueError(f"min_counts must be a finite number >= 0; found {min_counts!r}")
    if int(min_genes) != min_genes or min_genes < 0:
        raise ValueError(f"min_genes must be an integer >= 0; found {min_genes!r}")
    if not 0.0 <= quality_min_fraction <= 1.0:
        raise ValueError(f"quality_min_fraction must lie in [0, 1]; found {quality_min_fraction!r}")
    if quality_gene is None and (quality_min_fraction > 0 or quality_exempt):
        raise ValueError(
            "quality_min_fraction and quality_exempt need quality_gene "
            "(the gene whose fraction marks an intact nucleus, e.g. 'MALAT1')"
        )
    if int(min_cells) != min_cells or min_cells < 1:
        raise ValueError(f"min_cells must be an integer >= 1; found {min_cells!r}")
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1; found {chunk_size!r}")
    for col, values in (quality_exempt or {}).items():
        if isinstance(values, str):
            raise TypeError(
                f"quality_exempt[{col!r}] must be a list of values, found the string "
                f"{values!r}; write [{values!r}]"
            )
    return keys


# --------------------------------------------------------------------------- input


class _Csr(NamedTuple):
    """Rows of a CSR matrix: ``indptr`` starts at 0 and has one entry per row + 1."""

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray


@dataclass
class _Source:
    obs: pd.DataFrame
    var: pd.DataFrame
    n_obs: int
    n_vars: int
    read: Reader
    label: str


@contextlib.contextmanager
def _open_source(
    adata_or_path: ad.AnnData | str | os.PathLike[str], *, layer: str | None
) -> Iterator[_Source]:
    if isinstance(adata_or_path, ad.AnnData):
        adata = adata_or_path
        if layer is None:
            if adata.X is None:
                raise ValueError("the AnnData has no X; pass layer= the counts layer")
            matrix: Any = adata.X
        else:
            if layer not in adata.layers:
                raise KeyError(f"layer {layer!r} not found; available layers: {list(adata.layers)}")
            matrix = adata.layers[layer]
        label = f"AnnData {adata.n_obs} × {adata.n_vars}" + (
            f" ({adata.filename})" if adata.isbacked else ""
        )
        yield _Source(
            obs=adata.obs,
            var=adata.var,
            n_obs=adata.n_obs,
            n_vars=adata.n_vars,
            read=_row_reader(matrix),
            label=label,
        )
        return
    if not isinstance(adata_or_path, (str, os.PathLike)):
        raise TypeError(
            "pseudobulk reads an AnnData or the path of an .h5ad file; "
            f"found {type(adata_or_path).__name__}"
        )
    path = Path(adata_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"no such .h5ad file: {path}")
    with h5py.File(path, "r") as fh:
        for key in ("obs", "var"):
            if key not in fh:
                raise ValueError(f"{path} is not an .h5ad file: it has no {key!r} group")
        obs = read_elem(fh["obs"])
        var = read_elem(fh["var"])
        if layer is None:
            if "X" not in fh:
                raise ValueError(f"{path} has no X; pass layer= the counts layer")
            elem = fh["X"]
        else:
            layers = list(fh["layers"]) if "layers" in fh else []
            if layer not in layers:
                raise KeyError(f"layer {layer!r} not found in {path}; available layers: {layers}")
            elem = fh["layers"][layer]
        yield _Source(
            obs=obs,
            var=var,
            n_obs=len(obs),
            n_vars=len(var),
            read=_row_reader(elem),
            label=str(path),
        )


@functools.singledispatch
def _row_reader(matrix: Any) -> Reader:
    raise TypeError(
        "cannot read the count matrix by rows: expected a scipy sparse matrix, a NumPy "
        f"array or an .h5ad dataset; found {type(matrix).__name__}"
    )


@_row_reader.register(sparse.spmatrix)
@_row_reader.register(sparse.sparray)
def _(matrix: Any) -> Reader:
    if matrix.format != "csr":
        # Row slices of CSC/COO are converted chunk by chunk (slower, still bounded).
        def read_other(start: int, stop: int) -> _Csr:
            part = sparse.csr_matrix(matrix[start:stop])
            return _Csr(part.data, part.indices, part.indptr)

        return read_other

    def read_csr(start: int, stop: int) -> _Csr:  # zero-copy views of the rows
        a, b = int(matrix.indptr[start]), int(matrix.indptr[stop])
        return _Csr(
            matrix.data[a:b], matrix.indices[a:b], np.asarray(matrix.indptr[start : stop + 1]) - a
        )

    return read_csr


@_row_reader.register(np.ndarray)
@_row_reader.register(h5py.Dataset)
def _(matrix: Any) -> Reader:
    if len(matrix.shape) != 2:
        raise ValueError(f"the count matrix must be 2-D; found shape {matrix.shape}")
    rows_per_read = max(1, _DENSE_READ_VALUES // max(1, matrix.shape[1]))

    def read_dense(start: int, stop: int) -> _Csr:
        parts = [
            sparse.csr_matrix(np.asarray(matrix[s : min(s + rows_per_read, stop)]))
            for s in range(start, stop, rows_per_read)
        ]
        part = sparse.vstack(parts, format="csr") if len(parts) > 1 else parts[0]
        return _Csr(part.data, part.indices, part.indptr)

    return read_dense


@_row_reader.register(h5py.Group)
def _(group: h5py.Group) -> Reader:
    encoding = group.attrs.get("encoding-type", "")
    if encoding == "csc_matrix":
        raise ValueError(
            f"{group.file.filename}:{group.name} is stored as CSC; pseudobulk reads cells "
            "(rows) in chunks, which needs CSR. Convert it once, e.g. "
            "adata.X = adata.X.tocsr(), and write the file again"
        )
    if encoding != "csr_matrix":
        raise ValueError(
            f"{group.file.filename}:{group.name} is not a sparse matrix "
            f"(encoding-type {encoding!r}); expected 'csr_matrix'"
        )
    data, indices, indptr = group["data"], group["indices"], group["indptr"]
    # Reused buffers (a fresh large array per chunk costs page faults), two sets used in
    # turn; the returned arrays are views, valid until the next-but-one read.
    sets = [
        {"data": np.empty(0, data.dtype), "indices": np.empty(0, indices.dtype)} for _ in range(2)
    ]
    calls = itertools.count()

    def read_h5_csr(start: int, stop: int) -> _Csr:
        bufs = sets[next(calls) % 2]
        ptr = np.asarray(indptr[start : stop + 1], dtype=np.int64)
        a, b = int(ptr[0]), int(ptr[-1])
        out = []
        for name, dset in (("data", data), ("indices", indices)):
            if bufs[name].size < b - a:
                bufs[name] = np.empty(0, dtype=dset.dtype)  # free the old one first
                bufs[name] = np.empty(int((b - a) * 1.1), dtype=dset.dtype)
            view = bufs[name][: b - a]
            if b > a:
                dset.read_direct(view, np.s_[a:b], np.s_[0 : b - a])
            out.append(view)
        return _Csr(out[0], out[1], ptr - a)

    return read_h5_csr


def _register_backed() -> None:
    """Readers for matrices of an AnnData opened with ``backed="r"``."""
    abc = getattr(ad, "abc", None)
    if abc is None:  # anndata < 0.11: no public classes to dispatch on
        return

    @_row_reader.register(abc.CSRDataset)
    def _(matrix: Any) -> Reader:
        def read_backed(start: int, stop: int) -> _Csr:
            part = matrix[start:stop]
            return _Csr(part.data, part.indices, part.indptr)

        return read_backed

    @_row_reader.register(abc.CSCDataset)
    def _(matrix: Any) -> Reader:
        raise ValueError(
            "the backed matrix is stored as CSC; pseudobulk reads cells (rows) in chunks, "
            "which needs CSR. Convert it once (adata.X = adata.X.tocsr()) and write the file"
        )


_register_backed()


def _check_values(
    chunk: _Csr, *, start: int, chunk_index: int, obs: pd.DataFrame, var: pd.DataFrame
) -> None:
    """Raise if the chunk has a negative or non-finite count, naming the first one."""
    data = chunk.data
    if data.size == 0 or (
        data.min() >= 0  # NaN fails ``>= 0``
        and (data.dtype.kind != "f" or np.isfinite(data.max()))
    ):
        return
    bad = ~np.isfinite(data) | (data < 0) if data.dtype.kind == "f" else data < 0
    pos = int(np.flatnonzero(bad)[0])
    row = int(np.searchsorted(chunk.indptr, pos, side="right")) - 1
    cell = start + row
    raise ValueError(
        "counts must be finite and non-negative; found "
        f"{data[pos].item()!r} at cell {obs.index[cell]!r} (row {cell}), gene "
        f"{var.index[int(chunk.indices[pos])]!r}, in chunk {chunk_index} (rows "
        f"{start}-{start + len(chunk.indptr) - 2}). pseudobulk sums raw counts: pass "
        "layer= the layer that holds them"
    )


# --------------------------------------------------------------------------- groups


@dataclass
class _Groups:
    codes: np.ndarray  # group of each cell (int32), -1 where a key is missing
    keys: pd.DataFrame  # one row per group: the typed key values, indexed by ids
    ids: np.ndarray  # display ids (object array of str)
    missing_cells: np.ndarray  # positions of the cells with a key missing
    missing_detail: np.ndarray  # for each: "missing plate, well" (object array)

    @property
    def n_groups(self) -> int:
        return len(self.ids)


def _key_codes(values: pd.Series) -> tuple[np.ndarray, int]:
    """Codes of one key column in key order (−1 for NA or empty) and their number."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy().astype(np.int64)
        uniques = pd.Index(values.cat.categories)
    else:
        raw, uniq = pd.factorize(values, sort=True, use_na_sentinel=True)
        codes, uniques = raw.astype(np.int64), pd.Index(uniq)
    if uniques.dtype == object or pd.api.types.is_string_dtype(uniques.dtype):
        empty = np.array([isinstance(u, str) and not u.strip() for u in uniques], dtype=bool)
        if empty.any():
            codes = np.where((codes >= 0) & empty[np.maximum(codes, 0)], -1, codes)
    return codes, len(uniques)


def _factorize_groups(obs: pd.DataFrame, groupby: tuple[str, ...]) -> _Groups:
    """Number the groups (in key order) and type their keys, once for all chunks."""
    absent = [c for c in groupby if c not in obs.columns]
    if absent:
        raise KeyError(
            f"groupby columns {absent} are not in obs; available columns: {list(obs.columns)}"
        )
    n = len(obs)
    combined = np.zeros(n, dtype=np.int64)
    bad_by_key = []
    for col in groupby:
        codes, k = _key_codes(obs[col])
        bad_by_key.append(codes < 0)
        if (int(combined.max(initial=0)) + 1) * (k + 1) >= 2**62:
            # Renumber densely, order kept, before the mixed-radix code could overflow.
            combined = np.unique(combined, return_inverse=True)[1].reshape(-1).astype(np.int64)
        combined = combined * max(k, 1) + np.maximum(codes, 0)
    bad = np.logical_or.reduce(bad_by_key)
    valid_pos = np.flatnonzero(~bad)
    # pandas' hash factorize numbers in order of first appearance; sort its uniques.
    first_codes, uniq = pd.factorize(combined[valid_pos], sort=False)
    running_max = np.maximum.accumulate(first_codes)
    first = valid_pos[np.flatnonzero(np.diff(running_max, prepend=-1) > 0)]
    order = np.argsort(uniq, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    codes_all = np.full(n, -1, dtype=np.int32)
    codes_all[valid_pos] = rank[first_codes]
    first = first[order]
    keys = {}
    for col in groupby:
        s = obs[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            keys[col] = pd.Categorical(
                s.array[first], categories=s.cat.categories, ordered=s.cat.ordered
            ).remove_unused_categories()
        else:
            keys[col] = pd.Categorical(s.to_numpy()[first])
    key_frame = pd.DataFrame(keys)
    ids = pd.Index(
        ["_".join(map(str, row)) for row in zip(*(key_frame[c] for c in groupby), strict=True)],
        dtype=object,
    )
    if not ids.is_unique:  # e.g. ("a_b", "c") and ("a", "b_c"): display only, keep distinct
        ids = pd.Index(ad.utils.make_index_unique(ids.astype(str)), dtype=object)
    key_frame.index = ids
    bad_pos = np.flatnonzero(bad)
    missing_detail = np.empty(len(bad_pos), dtype=object)
    if len(bad_pos):
        which = np.stack([b[bad_pos] for b in bad_by_key], axis=1)
        patterns, inv = np.unique(which, axis=0, return_inverse=True)
        text = np.array(
            [
                "missing " + ", ".join(c for c, hit in zip(groupby, pat, strict=True) if hit)
                for pat in patterns
            ],
            dtype=object,
        )
        missing_detail[:] = text[inv.reshape(-1)]
    return _Groups(
        codes=codes_all,
        keys=key_frame,
        ids=ids.to_numpy(dtype=object),
        missing_cells=bad_pos,
        missing_detail=missing_detail,
    )


def _find_gene(var: pd.DataFrame, gene: str, where: str) -> int:
    pos = np.flatnonzero(var.index.astype(str) == gene)
    if len(pos) == 0 and "symbol" in var.columns:
        pos = np.flatnonzero(var["symbol"].astype(str).to_numpy() == gene)
    if len(pos) == 0:
        raise KeyError(
            f"quality_gene {gene!r} is neither a gene id (var_names) nor a var['symbol'] "
            f"of {where}; first genes: {list(var.index[:5])}"
        )
    if len(pos) > 1:
        raise ValueError(
            f"quality_gene {gene!r} matches {len(pos)} genes of {where}: "
            f"{list(var.index[pos[:5]])}; pass one gene id"
        )
    return int(pos[0])


def _exempt_mask(
    obs: pd.DataFrame, quality_exempt: Mapping[str, Sequence[str]] | None
) -> np.ndarray | None:
    """Cells whose value in any ``quality_exempt`` column is listed (compared as text)."""
    if not quality_exempt:
        return None
    absent = [c for c in quality_exempt if c not in obs.columns]
    if absent:
        raise KeyError(
            f"quality_exempt columns {absent} are not in obs; available columns: "
            f"{list(obs.columns)}"
        )
    mask = np.zeros(len(obs), dtype=bool)
    for col, values in quality_exempt.items():
        wanted = {str(v) for v in values}
        s = obs[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            codes, uniques = s.cat.codes.to_numpy(), s.cat.categories
        else:
            codes, uniques = pd.factorize(s, use_na_sentinel=True)
        hit = np.array([str(u) in wanted for u in uniques], dtype=bool)
        if len(hit):
            mask |= (codes >= 0) & hit[np.maximum(codes, 0)]
    return mask


# --------------------------------------------------------------------------- kernels
# Pure NumPy/SciPy on CSR parts (data, indices, indptr); they know nothing of AnnData.


class _Stats(NamedTuple):
    totals: np.ndarray  # float64 per cell
    n_genes: np.ndarray  # int64 per cell: stored nonzero entries
    quality: np.ndarray | None  # float64 per cell: the quality gene's count


def _cell_stats(block: _Csr, quality_col: int | None) -> _Stats:
    """Per-row totals, nonzero entries and the value of one column, from float64 CSR."""
    data, indices, indptr = block
    lens = np.diff(indptr)
    filled = lens > 0
    starts = indptr[:-1][filled]
    totals = np.zeros(len(lens), dtype=np.float64)
    n_genes = lens.astype(np.int64)
    if len(starts):
        # Segments between the starts of nonempty rows are exactly those rows.
        totals[filled] = np.add.reduceat(data, starts)
        if np.count_nonzero(data) != data.size:  # explicit zeros are stored
            n_genes[filled] = np.add.reduceat((data != 0).astype(np.int64), starts)
    quality = None
    if quality_col is not None:
        quality = np.zeros(len(lens), dtype=np.float64)
        pos = np.flatnonzero(indices == quality_col)
        np.add.at(quality, np.searchsorted(indptr, pos, side="right") - 1, data[pos])
    return _Stats(totals, n_genes, quality)


def _block_bounds(indptr: np.ndarray, max_nnz: int) -> Iterator[tuple[int, int]]:
    """Row ranges ``[r0, r1)`` of at most ``max_nnz`` entries (or one row when larger)."""
    m = len(indptr) - 1
    r0 = 0
    while r0 < m:
        r1 = int(np.searchsorted(indptr, indptr[r0] + max_nnz, side="right")) - 1
        r1 = min(max(r1, r0 + 1), m)
        yield r0, r1
        r0 = r1


class _Buffer:
    """A reused float64 buffer: fresh large arrays cost page faults on every chunk."""

    def __init__(self) -> None:
        self._buf = np.empty(0, dtype=np.float64)

    def float64(self, values: np.ndarray) -> np.ndarray:
        if values.dtype == np.float64:
            return values
        if self._buf.size < values.size:
            self._buf = np.empty(0, dtype=np.float64)  # free the old one first
            self._buf = np.empty(values.size, dtype=np.float64)
        out = self._buf[: values.size]
        np.copyto(out, values, casting="unsafe")
        return out


@functools.cache
def _compiled_scatter() -> Callable[..., None] | None:
    """SciPy's compiled COO-to-dense loop, which adds into the array it is given.

    It is not public SciPy API, so it is used only if it exists and adds in place on a
    tiny case; otherwise :func:`_scatter_add` falls back to :func:`numpy.add.at`.
    """
    try:
        from scipy.sparse._sparsetools import coo_todense
    except ImportError:
        return None
    out = np.ones((1, 2))
    idx = np.zeros(2, dtype=np.int32)
    try:
        coo_todense(1, 2, 2, idx, idx + 1, np.array([2.0, 3.0]), out.reshape(-1), 0)
    except (TypeError, ValueError):
        return None
    return coo_todense if out.tolist() == [[1.0, 6.0]] else None


def _scatter_add(
    out: np.ndarray, entry_rows: np.ndarray, indices: np.ndarray, data: np.ndarray
) -> None:
    """``out[entry_rows[k], indices[k]] += data[k]`` for every entry ``k``.

    ``out`` is a C-contiguous float64 array and ``data`` float64; every row and column
    is valid for ``out``.
    """
    n_rows, n_genes = out.shape
    compiled = _compiled_scatter()
    if compiled is None:
        np.add.at(out, (entry_rows, indices), data)
        return
    idx_dtype = np.int32 if indices.dtype == np.int32 and n_rows < 2**31 else np.int64
    flat = out.reshape(-1)  # a view: the loop adds into ``out``
    compiled(
        n_rows,
        n_genes,
        len(data),
        entry_rows.astype(idx_dtype, copy=False),
        indices.astype(idx_dtype, copy=False),
        data,
        flat,
        0,
    )


def _group_product(row_of_cell: np.ndarray, n_rows: int, block: _Csr, n_genes: int) -> Any:
    """Sparse ``indicator @ block``: the block's sums as an ``n_rows × n_genes`` CSR.

    Cells with ``row_of_cell < 0`` are left out.
    """
    data, indices, indptr = block
    m = len(indptr) - 1
    take = np.flatnonzero(row_of_cell >= 0)
    order = take[np.argsort(row_of_cell[take], kind="stable")]
    per_row = np.bincount(row_of_cell[take], minlength=n_rows)
    indicator = sparse.csr_matrix(
        (np.ones(len(order)), order, np.concatenate([[0], np.cumsum(per_row)])),
        shape=(n_rows, m),
    )
    return sparse.csr_matrix(indicator @ sparse.csr_matrix((data, indices, indptr), (m, n_genes)))


class _Accumulator:
    """Group sums of chunks of cells (and, optionally, counts of nonzero cells)."""

    def add(self, row_of_cell: np.ndarray, block: _Csr) -> None:
        """Add the cells of ``block`` into their group (``row_of_cell < 0``: skip)."""
        raise NotImplementedError

    def result(self, rows: np.ndarray) -> tuple[Any, Any]:
        """The sums (and nonzero counts, or ``None``) of groups ``rows`` as CSR float64."""
        raise NotImplementedError


class _DenseSums(_Accumulator):
    """Dense float64 ``groups × genes`` sums, filled by an in-place scatter-add.

    Each chunk's summed cells are put in group order first (a stable sort of a few
    hundred thousand codes): consecutive entries then land in one row of the
    accumulator, which stays in cache, instead of anywhere in it. The sorted cells are
    split at group boundaries into ``n_threads`` parts of about equal entries; each
    part is gathered, converted and scattered by its own thread (the compiled loops
    release the GIL) into rows no other thread touches, so one accumulator serves all.
    """

    def __init__(self, n_groups: int, n_genes: int, with_nonzero: bool, n_threads: int) -> None:
        self.sums = np.zeros((n_groups, n_genes), dtype=np.float64)
        self.nonzero = np.zeros_like(self.sums) if with_nonzero else None
        self.n_threads = max(1, n_threads)
        self._spaces = [_Workspace() for _ in range(self.n_threads)]

    def add(self, row_of_cell: np.ndarray, block: _Csr) -> None:
        take = np.flatnonzero(row_of_cell >= 0)
        order = take[np.argsort(row_of_cell[take], kind="stable")]
        rows = row_of_cell[order]
        lens = np.diff(block.indptr)[order]
        bounds = _split_sorted(rows, lens, self.n_threads)
        jobs = [
            (space, order[c0:c1], rows[c0:c1], lens[c0:c1])
            for space, (c0, c1) in zip(self._spaces, bounds, strict=False)
        ]
        if len(jobs) == 1:
            self._add_part(block, *jobs[0])
            return
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            for future in [pool.submit(self._add_part, block, *job) for job in jobs]:
                future.result()

    def _add_part(
        self,
        block: _Csr,
        space: _Workspace,
        cells: np.ndarray,
        rows: np.ndarray,
        lens: np.ndarray,
    ) -> None:
        """Scatter the entries of ``cells`` (sorted by group) in sub-blocks."""
        ends = np.cumsum(lens)
        c0 = 0
        while c0 < len(cells):
            done = int(ends[c0 - 1]) if c0 else 0
            c1 = int(np.searchsorted(ends, done + _BLOCK_NNZ, side="right"))
            c1 = min(max(c1, c0 + 1), len(cells))
            data, indices = space.gather(block, cells[c0:c1], lens[c0:c1])
            entry_rows = np.repeat(rows[c0:c1], lens[c0:c1])
            _scatter_add(self.sums, entry_rows, indices, data)
            if self.nonzero is not None:
                _scatter_add(self.nonzero, entry_rows, indices, space.ones(data))
            c0 = c1

    def result(self, rows: np.ndarray) -> tuple[Any, Any]:
        sums = _dense_rows_to_csr(self.sums, rows)
        nonzero = None
        if self.nonzero is not None:  # nonzero exactly where the sums are (counts >= 0)
            nonzero = _dense_rows_to_csr(self.nonzero, rows, pattern=sums)
        return sums, nonzero


def _split_sorted(rows: np.ndarray, lens: np.ndarray, n_parts: int) -> list[tuple[int, int]]:
    """Cut ``rows`` (sorted) into at most ``n_parts`` ranges of about equal total
    ``lens``, only where the row changes, so that no row is in two ranges."""
    if n_parts <= 1 or len(rows) < 2:
        return [(0, len(rows))]
    ends = np.cumsum(lens)
    cuts = [0]
    for k in range(1, n_parts):
        c = int(np.searchsorted(ends, ends[-1] * k / n_parts, side="right"))
        # move the cut forward to the next change of row
        c = (
            int(np.searchsorted(rows, rows[min(c, len(rows) - 1)], side="left"))
            if c < len(rows)
            else c
        )
        if cuts[-1] < c < len(rows):
            cuts.append(c)
    cuts.append(len(rows))
    return list(itertools.pairwise(cuts))


class _Workspace:
    """One thread's reused buffers for gathering rows of a chunk in another order."""

    def __init__(self) -> None:
        self._indices = np.empty(0, dtype=np.int32)
        self._data = np.empty(0, dtype=np.float32)
        self._f64 = _Buffer()
        self._ones = _Buffer()

    def gather(
        self, block: _Csr, cells: np.ndarray, lens: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The entries of rows ``cells`` of ``block``, in that order: float64 values
        and column indices (views of reused buffers, valid until the next call)."""
        nnz = int(lens.sum())
        data, indices, indptr = block
        compiled = _compiled_row_gather()
        if compiled is not None and indices.dtype == np.int32 and len(data) < 2**31:
            if self._indices.size < nnz or self._data.dtype != data.dtype:
                self._indices = np.empty(0, dtype=np.int32)
                self._data = np.empty(0, dtype=data.dtype)
                self._indices = np.empty(int(nnz * 1.1) + 1, dtype=np.int32)
                self._data = np.empty(int(nnz * 1.1) + 1, dtype=data.dtype)
            elif self._data.size < nnz:
                self._data = np.empty(0, dtype=data.dtype)
                self._data = np.empty(int(nnz * 1.1) + 1, dtype=data.dtype)
            out_i, out_d = self._indices[:nnz], self._data[:nnz]
            compiled(
                len(cells),
                cells.astype(np.int32, copy=False),
                indptr.astype(np.int32, copy=False),
                indices,
                data,
                out_i,
                out_d,
            )
            return self._f64.float64(out_d), out_i
        starts = indptr[cells]
        offsets = np.concatenate([[0], np.cumsum(lens)[:-1]])
        take = np.repeat(starts - offsets, lens) + np.arange(nnz)
        return self._f64.float64(data[take]), indices[take]

    def ones(self, data: np.ndarray) -> np.ndarray:
        """1.0 where ``data`` is nonzero, else 0.0 (a reused buffer)."""
        return self._ones.float64(data != 0)


@functools.cache
def _compiled_row_gather() -> Callable[..., None] | None:
    """SciPy's compiled CSR row gather (``csr_row_index``), checked on a tiny case.

    Not public SciPy API: used only if it exists and behaves; otherwise
    :meth:`_Workspace.gather` gathers with NumPy.
    """
    try:
        from scipy.sparse._sparsetools import csr_row_index
    except ImportError:
        return None
    indptr = np.array([0, 1, 3], dtype=np.int32)
    indices = np.array([0, 1, 2], dtype=np.int32)
    data = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    out_i, out_d = np.empty(3, dtype=np.int32), np.empty(3, dtype=np.float32)
    try:
        csr_row_index(2, np.array([1, 0], dtype=np.int32), indptr, indices, data, out_i, out_d)
    except (TypeError, ValueError):
        return None
    ok = out_i.tolist() == [1, 2, 0] and out_d.tolist() == [2.0, 3.0, 1.0]
    return csr_row_index if ok else None


def _take_rows(dense: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``dense[rows]``, as a view when the rows are consecutive."""
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
        return dense[rows[0] : rows[-1] + 1]
    return dense[rows]


def _dense_rows_to_csr(dense: np.ndarray, rows: np.ndarray, *, pattern: Any = None) -> Any:
    """CSR of ``dense[rows]``, built in blocks of rows (no full-size temporaries).

    With ``pattern`` (a CSR of the same rows), take the entries at its positions.
    """
    n_genes = dense.shape[1]
    step = max(1, _BLOCK_NNZ // max(n_genes, 1))
    if pattern is not None:
        data = np.empty(pattern.nnz, dtype=np.float64)
        for i0 in range(0, len(rows), step):
            i1 = min(i0 + step, len(rows))
            a, b = pattern.indptr[i0], pattern.indptr[i1]
            local = np.repeat(np.arange(i1 - i0), np.diff(pattern.indptr[i0 : i1 + 1]))
            data[a:b] = dense[rows[i0:i1]][local, pattern.indices[a:b]]
        return sparse.csr_matrix(
            (data, pattern.indices.copy(), pattern.indptr.copy()), shape=pattern.shape
        )
    per_row = np.zeros(len(rows), dtype=np.int64)
    for i0 in range(0, len(rows), step):
        per_row[i0 : i0 + step] = np.count_nonzero(_take_rows(dense, rows[i0 : i0 + step]), axis=1)
    indptr = np.concatenate([[0], np.cumsum(per_row)])
    idx_dtype = np.int32 if max(n_genes, int(indptr[-1])) < 2**31 else np.int64
    indices = np.empty(int(indptr[-1]), dtype=idx_dtype)
    data = np.empty(int(indptr[-1]), dtype=np.float64)
    columns = np.tile(np.arange(n_genes, dtype=idx_dtype), min(step, len(rows)))
    for i0 in range(0, len(rows), step):
        part = _take_rows(dense, rows[i0 : i0 + step]).reshape(-1)
        nonzero = part != 0
        a, b = indptr[i0], indptr[min(i0 + step, len(rows))]
        indices[a:b] = columns[: part.size][nonzero]
        data[a:b] = part[nonzero]
    shape = (len(rows), n_genes)
    return sparse.csr_matrix((data, indices, indptr.astype(idx_dtype)), shape)  # type: ignore[arg-type]


class _SparseSums(_Accumulator):
    """Sparse partial sums merged in a logarithmic cascade, for very many groups.

    Each block's sums (``indicator @ block``) go on a stack; while the one below is
    not much larger, the two are added. Each entry is merged O(log blocks) times and
    memory stays near the size of the final (nonzero) sums, not groups × genes.
    """

    def __init__(self, n_groups: int, n_genes: int, with_nonzero: bool) -> None:
        self.n_groups, self.n_genes = n_groups, n_genes
        self.stacks: list[list[Any]] = [[], []] if with_nonzero else [[]]

    def add(self, row_of_cell: np.ndarray, block: _Csr) -> None:
        work = _Buffer()
        for r0, r1 in _block_bounds(block.indptr, _BLOCK_NNZ):
            a, b = int(block.indptr[r0]), int(block.indptr[r1])
            part = _Csr(
                work.float64(block.data[a:b]), block.indices[a:b], block.indptr[r0 : r1 + 1] - a
            )
            self._add_block(row_of_cell[r0:r1], part)

    def _add_block(self, row_of_cell: np.ndarray, block: _Csr) -> None:
        blocks = [block]
        if len(self.stacks) > 1:
            blocks.append(_Csr((block.data != 0).astype(np.float64), block.indices, block.indptr))
        for stack, part in zip(self.stacks, blocks, strict=True):
            stack.append(_group_product(row_of_cell, self.n_groups, part, self.n_genes))
            while len(stack) > 1 and stack[-2].nnz <= _CASCADE * stack[-1].nnz:
                top = stack.pop()
                stack[-1] = sparse.csr_matrix(stack[-1] + top)

    def result(self, rows: np.ndarray) -> tuple[Any, Any]:
        out = []
        for stack in self.stacks:
            total = sparse.csr_matrix((self.n_groups, self.n_genes), dtype=np.float64)
            while stack:
                total = sparse.csr_matrix(total + stack.pop())
            total = sparse.csr_matrix(total[rows])
            total.sum_duplicates()
            total.eliminate_zeros()
            out.append(total)
        return out[0], (out[1] if len(out) > 1 else None)


# --------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class _Filters:
    min_counts: float
    min_genes: int
    quality_min_fraction: float
    exempt: np.ndarray | None
    quality_col: int | None = None

    @property
    def active(self) -> bool:
        """Whether any per-cell rule can drop a cell (else no statistics are needed)."""
        return self.min_counts > 0 or self.min_genes > 0 or self.quality_min_fraction > 0


class _CellState:
    """Per cell: group, drop reason and the value that broke the rule (9 bytes a cell)."""

    def __init__(self, codes: np.ndarray) -> None:
        self.codes = codes  # int32
        self.reason = np.where(codes < 0, _MISSING, _KEPT).astype(np.int8)
        self.value = np.zeros(len(codes), dtype=np.float32)  # for the ledger's text only

    def apply_filters(self, cells: slice, stats: _Stats, filters: _Filters) -> None:
        reason = self.reason[cells]  # views: updated in place
        value = self.value[cells]
        open_ = reason == _KEPT
        rules: list[tuple[int, np.ndarray, np.ndarray]] = [
            (_MIN_COUNTS, stats.totals < filters.min_counts, stats.totals),
            (_MIN_GENES, stats.n_genes < filters.min_genes, stats.n_genes),
        ]
        if stats.quality is not None and filters.quality_min_fraction > 0:
            fraction = np.divide(
                stats.quality,
                stats.totals,
                out=np.zeros_like(stats.totals),
                where=stats.totals > 0,
            )
            low = fraction < filters.quality_min_fraction
            if filters.exempt is not None:
                low &= ~filters.exempt[cells]
            rules.append((_QUALITY, low, fraction))
        for code, fails, metric in rules:
            hit = open_ & fails
            reason[hit] = code
            value[hit] = metric[hit]
            open_ &= ~hit

    def summed_group(self, cells: slice) -> np.ndarray:
        """Group of each cell in ``cells``, −1 for cells not summed."""
        return np.where(self.reason[cells] == _KEPT, self.codes[cells], -1)

    def kept_codes(self) -> np.ndarray:
        return self.codes[self.reason == _KEPT]

    def drop_small_groups(self, small: np.ndarray) -> None:
        hit = (self.reason == _KEPT) & small[np.maximum(self.codes, 0)]
        self.reason[hit] = _SMALL

    def ledger(
        self,
        cell_index: pd.Index,
        groups: _Groups,
        *,
        n_cells: np.ndarray,
        min_counts: float,
        min_genes: int,
        quality_gene: str | None,
        quality_min_fraction: float,
        min_cells: int,
    ) -> Ledger:
        """One ledger entry per cell, in input order.

        Built in slices of ``_LEDGER_ROWS`` cells: ``Ledger(frame)`` copies its frame
        twice, so one frame of all cells would briefly need several times the memory
        the ledger keeps.
        """
        ids = pd.Index(cell_index)
        id_values = ids.to_numpy(dtype=object) if ids.dtype == object else ids.astype(str)
        templates = {
            _MIN_COUNTS: f"total_counts {{:g}} < min_counts {min_counts:g}",
            _MIN_GENES: f"n_genes {{:.0f}} < min_genes {min_genes}",
            _QUALITY: f"{quality_gene} fraction {{:.4g}} < {quality_min_fraction:g}",
        }
        small_text = {
            g: f"group {groups.ids[g]} has {n_cells[g]} cells < min_cells {min_cells}"
            for g in np.unique(self.codes[self.reason == _SMALL]).tolist()
        }
        # One string object each, shared by all rows (np.full(n, "x", dtype=object)
        # would make a string per row).
        stage = np.array([STAGE], dtype=object)
        status = np.array(["kept", "dropped"], dtype=object)
        reasons = np.array(_REASONS, dtype=object)
        ledger = Ledger()
        for start in range(0, len(self.codes), _LEDGER_ROWS):
            cells = slice(start, min(start + _LEDGER_ROWS, len(self.codes)))
            reason, codes = self.reason[cells], self.codes[cells]
            detail = np.empty(len(reason), dtype=object)
            kept = reason == _KEPT
            detail[kept] = groups.ids[codes[kept]]
            lo, hi = np.searchsorted(groups.missing_cells, [cells.start, cells.stop])
            detail[groups.missing_cells[lo:hi] - start] = groups.missing_detail[lo:hi]
            for code, template in templates.items():
                where = np.flatnonzero(reason == code)
                values = self.value[cells][where].tolist()
                detail[where] = [template.format(v) for v in values]
            where = np.flatnonzero(reason == _SMALL)
            detail[where] = [small_text[g] for g in codes[where].tolist()]
            # Object columns that share a few strings (Ledger casts to str; categoricals
            # would become a new string per cell); copy=False: no consolidated copy.
            frame = pd.DataFrame(
                {
                    "id": id_values[cells],
                    "stage": np.repeat(stage, len(reason)),
                    "status": status[(reason != _KEPT).view(np.int8)],
                    "reason": reasons[reason],
                    "detail": detail,
                },
                copy=False,
            )
            ledger.extend(Ledger(frame))
        return ledger


# --------------------------------------------------------------------------- output


def _build_counts(
    groups: _Groups,
    rows: np.ndarray,
    n_cells: np.ndarray,
    sums: Any,
    nonzero: Any,
    var: pd.DataFrame,
    params: dict[str, Any],
) -> ad.AnnData:
    obs = groups.keys.iloc[rows].copy()
    for col in obs.columns:
        obs[col] = obs[col].cat.remove_unused_categories()
    obs["n_cells"] = n_cells.astype(np.int64)
    obs["total_counts"] = np.asarray(sums.sum(axis=1), dtype=np.float64).reshape(-1)
    obs.index = pd.Index(obs.index.astype(str))
    layers = {}
    if nonzero is not None:
        frac = nonzero
        frac.data /= np.repeat(n_cells.astype(np.float64), np.diff(frac.indptr))
        layers["frac_expressing"] = frac
    out = ad.AnnData(X=sums, obs=obs, var=var, layers=layers)
    # The input is not hashed: hashing a large .h5ad would read it a second time.
    prov = provenance(step="pseudobulk", params=params)
    out.uns["perturbridge"] = {
        "kind": "pseudobulk",
        "value_kind": "counts",
        "params": prov["params"],  # as plain values that an .h5ad can hold
        "provenance": prov,
    }
    return out


def _log_summary(reason: np.ndarray, counts: ad.AnnData) -> None:
    n = np.bincount(reason, minlength=len(_REASONS))
    dropped = ", ".join(f"{r}: {k}" for r, k in zip(_REASONS[1:], n[1:], strict=True) if k)
    logger.info(
        "pseudobulk: %d groups from %d of %d cells; dropped %s",
        counts.n_obs,
        n[_KEPT],
        len(reason),
        dropped or "none",
    )

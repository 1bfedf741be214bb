"""Pseudobulk kernels: pure NumPy/SciPy on CSR parts (data, indices, indptr).

They know nothing of AnnData, files or the ledger: per-cell statistics of a block of
rows, and the accumulators that add cells into their group's sums, dense (an in-place
scatter-add, cells put in group order and split between threads at group boundaries)
or sparse (``indicator @ block`` merged in a logarithmic cascade) for very many groups.
See :mod:`perturbridge.pseudobulk` for the design and the measurements.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
from scipy import sparse

__all__ = [
    "Accumulator",
    "Buffer",
    "Csr",
    "Stats",
    "block_bounds",
    "cell_stats",
    "float64_blocks",
    "make_accumulator",
]

#: Dense accumulators up to this size; beyond it, sums are accumulated sparse.
_DENSE_LIMIT_BYTES = 1 << 30
#: Entries per sub-block of the scatter-add kernel (bounds its temporaries).
_BLOCK_NNZ = 1 << 22
#: The sparse cascade adds two partial sums when the lower one is at most this many
#: times larger than the upper one.
_CASCADE = 2


class Csr(NamedTuple):
    """Rows of a CSR matrix: ``indptr`` starts at 0 and has one entry per row + 1."""

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray


class Stats(NamedTuple):
    totals: np.ndarray  # float64 per cell
    n_genes: np.ndarray  # int64 per cell: stored nonzero entries
    quality: np.ndarray | None  # float64 per cell: the quality gene's count


def cell_stats(block: Csr, quality_col: int | None) -> Stats:
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
    return Stats(totals, n_genes, quality)


def block_bounds(indptr: np.ndarray, max_nnz: int) -> Iterator[tuple[int, int]]:
    """Row ranges ``[r0, r1)`` of at most ``max_nnz`` entries (or one row when larger)."""
    m = len(indptr) - 1
    r0 = 0
    while r0 < m:
        r1 = int(np.searchsorted(indptr, indptr[r0] + max_nnz, side="right")) - 1
        r1 = min(max(r1, r0 + 1), m)
        yield r0, r1
        r0 = r1


class Buffer:
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


def _group_product(row_of_cell: np.ndarray, n_rows: int, block: Csr, n_genes: int) -> Any:
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


class Accumulator:
    """Group sums of chunks of cells (and, optionally, counts of nonzero cells)."""

    def add(self, row_of_cell: np.ndarray, block: Csr) -> None:
        """Add the cells of ``block`` into their group (``row_of_cell < 0``: skip)."""
        raise NotImplementedError

    def result(self, rows: np.ndarray) -> tuple[Any, Any]:
        """The sums (and nonzero counts, or ``None``) of groups ``rows`` as CSR float64."""
        raise NotImplementedError


class _DenseSums(Accumulator):
    """Dense float64 ``groups × genes`` sums, filled by an in-place scatter-add.

    Each chunk's summed cells are put in group order first (a stable sort of a few
    hundred thousand codes): consecutive entries then land in one row of the
    accumulator, which stays in cache, instead of anywhere in it. The sorted cells are
    split at group boundaries into ``n_jobs`` parts of about equal entries; each
    part is gathered, converted and scattered by its own thread (the compiled loops
    release the GIL) into rows no other thread touches, so one accumulator serves all.
    """

    def __init__(self, n_groups: int, n_genes: int, with_nonzero: bool, n_jobs: int) -> None:
        self.sums = np.zeros((n_groups, n_genes), dtype=np.float64)
        self.nonzero = np.zeros_like(self.sums) if with_nonzero else None
        self.n_jobs = max(1, n_jobs)
        self._spaces = [_Workspace() for _ in range(self.n_jobs)]

    def add(self, row_of_cell: np.ndarray, block: Csr) -> None:
        take = np.flatnonzero(row_of_cell >= 0)
        order = take[np.argsort(row_of_cell[take], kind="stable")]
        rows = row_of_cell[order]
        lens = np.diff(block.indptr)[order]
        bounds = _split_sorted(rows, lens, self.n_jobs)
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
        block: Csr,
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
        self._f64 = Buffer()
        self._ones = Buffer()

    def gather(
        self, block: Csr, cells: np.ndarray, lens: np.ndarray
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


class _SparseSums(Accumulator):
    """Sparse partial sums merged in a logarithmic cascade, for very many groups.

    Each block's sums (``indicator @ block``) go on a stack; while the one below is
    not much larger, the two are added. Each entry is merged O(log blocks) times and
    memory stays near the size of the final (nonzero) sums, not groups × genes.
    """

    def __init__(self, n_groups: int, n_genes: int, with_nonzero: bool) -> None:
        self.n_groups, self.n_genes = n_groups, n_genes
        self.stacks: list[list[Any]] = [[], []] if with_nonzero else [[]]

    def add(self, row_of_cell: np.ndarray, block: Csr) -> None:
        work = Buffer()
        for r0, r1 in block_bounds(block.indptr, _BLOCK_NNZ):
            a, b = int(block.indptr[r0]), int(block.indptr[r1])
            part = Csr(
                work.float64(block.data[a:b]), block.indices[a:b], block.indptr[r0 : r1 + 1] - a
            )
            self._add_block(row_of_cell[r0:r1], part)

    def _add_block(self, row_of_cell: np.ndarray, block: Csr) -> None:
        blocks = [block]
        if len(self.stacks) > 1:
            blocks.append(Csr((block.data != 0).astype(np.float64), block.indices, block.indptr))
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


def make_accumulator(
    n_groups: int, n_genes: int, *, with_nonzero: bool, n_jobs: int
) -> Accumulator:
    """Dense sums while ``groups × genes`` float64 fit ``_DENSE_LIMIT_BYTES``, else sparse."""
    if n_groups * n_genes * 8 <= _DENSE_LIMIT_BYTES:
        return _DenseSums(n_groups, n_genes, with_nonzero, n_jobs)
    return _SparseSums(n_groups, n_genes, with_nonzero)


def float64_blocks(chunk: Csr, work: Buffer) -> Iterator[tuple[int, int, Csr]]:
    """Row ranges ``[r0, r1)`` of ``chunk`` of at most ``_BLOCK_NNZ`` entries, each with
    its rows as float64 CSR (``work`` holds the copy; valid until the next block)."""
    for r0, r1 in block_bounds(chunk.indptr, _BLOCK_NNZ):
        a, b = int(chunk.indptr[r0]), int(chunk.indptr[r1])
        yield (
            r0,
            r1,
            Csr(work.float64(chunk.data[a:b]), chunk.indices[a:b], chunk.indptr[r0 : r1 + 1] - a),
        )

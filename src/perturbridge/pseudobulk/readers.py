"""Pseudobulk readers: the cells × genes matrix, read by rows in chunks.

An in-memory or backed AnnData, or an ``.h5ad`` opened with :mod:`h5py` (its ``X`` or a
layer, read slice by slice: ``anndata.read_h5ad(path, backed="r")`` would load every
layer, ``obsm`` and ``raw``). A reader returns the rows ``[start, stop)`` as
:class:`~perturbridge.pseudobulk.kernels.Csr` parts; a sparse matrix on disk must be
CSR. Dispatch is on the matrix type (:func:`functools.singledispatch`).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import numpy as np
import pandas as pd
from scipy import sparse

from ..io import read_element
from .kernels import Csr

__all__ = ["Reader", "Source", "check_values", "closed_reader", "open_source"]

#: Values per block when a dense input matrix is read (64 MiB of float32).
_DENSE_READ_VALUES = 1 << 24

Reader = Callable[[int, int], Csr]


@dataclass
class Source:
    obs: pd.DataFrame
    var: pd.DataFrame
    n_obs: int
    n_vars: int
    read: Reader
    label: str


@contextlib.contextmanager
def open_source(
    adata_or_path: ad.AnnData | str | os.PathLike[str], *, layer: str | None
) -> Iterator[Source]:
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
        yield Source(
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
        obs = read_element(fh["obs"])
        var = read_element(fh["var"])
        if layer is None:
            if "X" not in fh:
                raise ValueError(f"{path} has no X; pass layer= the counts layer")
            elem = fh["X"]
        else:
            layers = list(fh["layers"]) if "layers" in fh else []
            if layer not in layers:
                raise KeyError(f"layer {layer!r} not found in {path}; available layers: {layers}")
            elem = fh["layers"][layer]
        yield Source(
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
        def read_other(start: int, stop: int) -> Csr:
            part = sparse.csr_matrix(matrix[start:stop])
            return Csr(part.data, part.indices, part.indptr)

        return read_other

    def read_csr(start: int, stop: int) -> Csr:  # zero-copy views of the rows
        a, b = int(matrix.indptr[start]), int(matrix.indptr[stop])
        return Csr(
            matrix.data[a:b], matrix.indices[a:b], np.asarray(matrix.indptr[start : stop + 1]) - a
        )

    return read_csr


@_row_reader.register(np.ndarray)
@_row_reader.register(h5py.Dataset)
def _(matrix: Any) -> Reader:
    if len(matrix.shape) != 2:
        raise ValueError(f"the count matrix must be 2-D; found shape {matrix.shape}")
    rows_per_read = max(1, _DENSE_READ_VALUES // max(1, matrix.shape[1]))

    def read_dense(start: int, stop: int) -> Csr:
        parts = [
            sparse.csr_matrix(np.asarray(matrix[s : min(s + rows_per_read, stop)]))
            for s in range(start, stop, rows_per_read)
        ]
        part = sparse.vstack(parts, format="csr") if len(parts) > 1 else parts[0]
        return Csr(part.data, part.indices, part.indptr)

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

    def read_h5_csr(start: int, stop: int) -> Csr:
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
        return Csr(out[0], out[1], ptr - a)

    return read_h5_csr


def _register_backed() -> None:
    """Readers for matrices of an AnnData opened with ``backed="r"``."""
    abc = getattr(ad, "abc", None)
    if abc is None:  # anndata < 0.11: no public classes to dispatch on
        return

    @_row_reader.register(abc.CSRDataset)
    def _(matrix: Any) -> Reader:
        def read_backed(start: int, stop: int) -> Csr:
            part = matrix[start:stop]
            return Csr(part.data, part.indices, part.indptr)

        return read_backed

    @_row_reader.register(abc.CSCDataset)
    def _(matrix: Any) -> Reader:
        raise ValueError(
            "the backed matrix is stored as CSC; pseudobulk reads cells (rows) in chunks, "
            "which needs CSR. Convert it once (adata.X = adata.X.tocsr()) and write the file"
        )


_register_backed()


def check_values(
    chunk: Csr, *, start: int, chunk_index: int, obs: pd.DataFrame, var: pd.DataFrame
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


def closed_reader(start: int, stop: int) -> Csr:
    raise RuntimeError("the count matrix was already read")

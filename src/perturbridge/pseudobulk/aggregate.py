"""Pseudobulk orchestration: :func:`pseudobulk` opens the input (:mod:`.readers`),
numbers the groups (:mod:`.groups`), streams the chunks through the filters and the
accumulator (:mod:`.kernels`), and builds the summed AnnData and the ledger
(:mod:`.ledger`). The design is described in :mod:`perturbridge.pseudobulk`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from ..io._atomic import provenance
from ..ledger import Ledger
from ..progress import track
from ..schema import check_unique_index
from .groups import Groups, exempt_mask, factorize_groups, find_gene
from .kernels import Accumulator, Buffer, Csr, cell_stats, float64_blocks, make_accumulator
from .ledger import KEPT, CellState, Filters, log_summary
from .options import PseudobulkOptions
from .readers import Source, check_values, closed_reader, open_source

__all__ = ["PseudobulkResult", "pseudobulk"]


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
    options: PseudobulkOptions | None = None,
    chunk_size: int = 100_000,
    progress: bool = False,
    n_jobs: int | None = None,
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
    options
        The cell and group filters and what the result carries
        (:class:`PseudobulkOptions`: ``min_counts``, ``min_genes``, ``quality_gene``,
        ``quality_min_fraction``, ``quality_exempt``, ``min_cells``,
        ``fraction_expressing``, ``cell_ids``); default none of them.
    chunk_size
        Cells read per chunk; memory grows with it, not with the number of cells.
    progress
        Show a progress bar over the chunks.
    n_jobs
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
    opts = options if options is not None else PseudobulkOptions()
    groupby = _check_params(groupby, chunk_size=chunk_size)
    params: dict[str, Any] = {
        "groupby": list(groupby),
        "layer": layer,
        "min_counts": opts.min_counts,
        "min_genes": opts.min_genes,
        "quality_gene": opts.quality_gene,
        "quality_min_fraction": opts.quality_min_fraction,
        "quality_exempt": {k: list(v) for k, v in (opts.quality_exempt or {}).items()},
        "min_cells": opts.min_cells,
        "fraction_expressing": opts.fraction_expressing,
        "chunk_size": chunk_size,
        "cell_ids": opts.cell_ids,
    }
    with open_source(adata_or_path, layer=layer) as src:
        params["input"] = src.label
        obs, var = src.obs, src.var.copy()
        check_unique_index(pd.Index(obs.index), what="cell", where="pseudobulk input obs")
        groups = factorize_groups(obs, groupby)
        quality_col = (
            None if opts.quality_gene is None else find_gene(var, opts.quality_gene, src.label)
        )
        filters = Filters(
            min_counts=opts.min_counts,
            min_genes=opts.min_genes,
            quality_min_fraction=opts.quality_min_fraction,
            exempt=exempt_mask(obs, opts.quality_exempt),
            quality_col=quality_col,
        )
        state = CellState(groups.codes)
        sums, nonzero, n_cells, rows = _stream(
            src,
            state,
            filters,
            n_groups=groups.n_groups,
            options=opts,
            chunk_size=chunk_size,
            progress=progress,
            n_jobs=_resolve_jobs(n_jobs),
        )

    counts = _build_counts(groups, rows, n_cells[rows], sums, nonzero, var, params)
    ledger = state.ledger(obs.index, groups, n_cells=n_cells, options=opts)
    if opts.cell_ids:
        kept = state.reason == KEPT
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
    log_summary(state.reason, counts)
    return PseudobulkResult(counts=counts, ledger=ledger)


def _stream(
    src: Source,
    state: CellState,
    filters: Filters,
    *,
    n_groups: int,
    options: PseudobulkOptions,
    chunk_size: int,
    progress: bool,
    n_jobs: int,
) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """The one pass: filter the cells of each chunk and add the kept ones to their group.

    Then drop the groups smaller than ``options.min_cells`` (their sums touch no other group).
    Returns the sums and nonzero counts (or ``None``) of the groups kept, as CSR, the
    cells per group (all groups) and the groups kept. The read buffers and the
    accumulator are released when it returns.
    """
    acc = make_accumulator(
        n_groups, src.n_vars, with_nonzero=options.fraction_expressing, n_jobs=n_jobs
    )
    _sum_chunks(src, state, filters, acc, chunk_size, progress)
    src.read = closed_reader  # release the reader's buffers before the result is built
    n_cells = np.bincount(state.kept_codes(), minlength=n_groups)
    small = n_cells < options.min_cells
    state.drop_small_groups(small)
    rows = np.flatnonzero(~small)
    sums, nonzero = acc.result(rows)
    return sums, nonzero, n_cells, rows


def _sum_chunks(
    src: Source,
    state: CellState,
    filters: Filters,
    acc: Accumulator,
    chunk_size: int,
    progress: bool,
) -> None:
    """Read chunk ``i + 1`` (and check its values) in a thread while chunk ``i`` is
    summed; the readers keep two sets of buffers, so that is all that is in memory."""
    work = Buffer()
    bounds = [(a, min(a + chunk_size, src.n_obs)) for a in range(0, src.n_obs, chunk_size)]
    if not bounds:
        return

    def read(i: int) -> Csr:
        start, stop = bounds[i]
        chunk = src.read(start, stop)
        check_values(chunk, start=start, chunk_index=i, obs=src.obs, var=src.var)
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
    chunk: Csr,
    start: int,
    state: CellState,
    filters: Filters,
    acc: Accumulator,
    work: Buffer,
) -> None:
    if filters.active:
        # Sub-blocks keep the float64 copy and the statistics' temporaries small.
        for r0, r1, block in float64_blocks(chunk, work):
            state.apply_filters(
                slice(start + r0, start + r1), cell_stats(block, filters.quality_col), filters
            )
    acc.add(state.summed_group(slice(start, start + len(chunk.indptr) - 1)), chunk)


def _resolve_jobs(n_jobs: int | None) -> int:
    if n_jobs is None:
        return max(
            1,
            min(
                4,
                len(os.sched_getaffinity(0))
                if hasattr(os, "sched_getaffinity")
                else (os.cpu_count() or 1),
            ),
        )
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be at least 1; got {n_jobs}")
    return int(n_jobs)


def _check_params(groupby: Sequence[str], *, chunk_size: int) -> tuple[str, ...]:
    keys = (groupby,) if isinstance(groupby, str) else tuple(groupby)
    if not keys:
        raise ValueError("groupby must name at least one obs column; found none")
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ValueError(f"groupby names a column more than once: {dup}")
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1; found {chunk_size!r}")
    return keys


def _build_counts(
    groups: Groups,
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

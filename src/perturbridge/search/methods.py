"""Search methods: a registry of scores of queries against a block of conditions.

A :class:`Block` is a slab of conditions × the store gene columns a query needs, as a
search index hands it out (values, and per-condition ranks for the rank-based scores).
A :class:`SearchMethod` scores resolved queries against a block: one row of scores per
query, one column per condition, all conditions of a block at once (no loop over
conditions). :data:`METHODS` lists the registered methods, :func:`list_methods` shows
them as a table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from .queries import ResolvedQuery

__all__ = ["Block", "SearchMethod"]


@dataclass(frozen=True)
class Block:
    """Conditions × the store gene columns a query needs.

    Attributes
    ----------
    rows
        int64 row numbers on the store's condition axis (``zarr_row``).
    cols
        int64 store gene columns of ``values`` / ``ranks``, sorted ascending.
    values
        float32 ``(len(rows), len(cols))``; NaN = the gene is not measured in that
        condition.
    ranks
        int32 ``(len(rows), len(cols))`` or None: the 1-based rank of the gene in the
        condition's signature sorted by value descending among **all** its measured
        genes (not only ``cols``); 0 = not measured.
    n_measured
        int32 ``(len(rows),)``: measured genes per condition (over all genes).
    norms
        float64 ``(len(rows),)`` or None: the L2 norm of each condition's measured
        values over all genes, where an index offers it.
    """

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    ranks: np.ndarray | None
    n_measured: np.ndarray
    norms: np.ndarray | None = None

    def __post_init__(self) -> None:
        n, k = len(self.rows), len(self.cols)
        if self.values.shape != (n, k):
            raise ValueError(
                f"Block values have shape {self.values.shape}, expected {(n, k)} (rows × cols)"
            )
        if self.ranks is not None and self.ranks.shape != (n, k):
            raise ValueError(f"Block ranks have shape {self.ranks.shape}, expected {(n, k)}")
        if self.n_measured.shape != (n,):
            raise ValueError(f"Block n_measured has shape {self.n_measured.shape}, expected {(n,)}")
        if self.norms is not None and self.norms.shape != (n,):
            raise ValueError(f"Block norms have shape {self.norms.shape}, expected {(n,)}")
        if k > 1 and np.any(np.diff(self.cols) <= 0):
            raise ValueError("Block cols must be sorted ascending without repeats")

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    def positions(self, cols: np.ndarray) -> np.ndarray:
        """Positions in this block of store gene columns ``cols`` (KeyError if absent)."""
        cols = np.asarray(cols, dtype=np.int64)
        pos = np.searchsorted(self.cols, cols)
        pos = np.minimum(pos, max(len(self.cols) - 1, 0))
        bad = cols[(len(self.cols) == 0) | (self.cols[pos] != cols)] if len(cols) else cols
        if len(bad):
            raise KeyError(
                f"{len(bad)} gene columns of the query are not in the block: "
                f"{bad[:5].tolist()} (the block must hold the query's columns)"
            )
        return pos


@runtime_checkable
class SearchMethod(Protocol):
    """A score of resolved queries against every condition of a block."""

    #: the registry key, e.g. ``"wtcs"``
    name: str
    #: one line for ``list_methods``
    description: str
    #: which queries it scores: gene sets, a signature, or both
    query_kind: Literal["sets", "signature", "both"]
    #: True: the block must hold every gene column; False: the union of the queries'
    #: columns (up, down and signature columns) suffices
    needs_all_genes: bool
    #: True: a higher score means a more similar condition
    higher_is_similar: bool
    #: True: :meth:`score` reads ``Block.ranks`` (the block must carry them)
    needs_ranks: bool

    def score(self, queries: Sequence[ResolvedQuery], block: Block) -> np.ndarray:
        """Scores, float64 ``(len(queries), block.n_rows)``; NaN where undefined."""
        ...

"""Search methods: a registry of scores of queries against a block of conditions.

A :class:`Block` is a slab of conditions × the store gene columns a query needs, as a
search index hands it out (values, and per-condition ranks for the rank-based scores).
A :class:`SearchMethod` scores resolved queries against a block: one row of scores per
query, one column per condition, all conditions of a block at once (no loop over
conditions). :data:`METHODS` lists the registered methods, :func:`list_methods` shows
them as a table.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from .kernels import cosine, cosine_measured, ks_enrichment_of_values, spearman, wtcs, xsum
from .queries import ResolvedQuery

__all__ = [
    "KS",
    "METHODS",
    "WTCS",
    "Block",
    "Cosine",
    "SearchMethod",
    "Spearman",
    "XSum",
    "get_method",
    "list_methods",
    "score_block",
    "score_blocks",
]


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
        condition. Any memory order: a search index hands out gene-major arrays (a
        gene's values over the rows side by side; often a view of the index's pages).
    ranks
        int16 or int32 ``(len(rows), len(cols))`` or None: the 1-based rank of the gene
        in the condition's signature sorted by value descending among **all** its
        measured genes (not only ``cols``); 0 = not measured. The ranks of the values
        they come with (the set methods rely on it).
    n_measured
        int32 ``(len(rows),)``: measured genes per condition (over all genes).
    norms
        float64 ``(len(rows),)`` or None: the L2 norm of each condition's measured
        values over all genes, where an index offers it.
    complete
        True when ``cols`` hold every gene that any condition of the block measures: a
        condition with ``n_measured == len(cols)`` then has no NaN in ``values`` and
        ``norms`` is its norm over ``cols``.
    """

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    ranks: np.ndarray | None
    n_measured: np.ndarray
    norms: np.ndarray | None = None
    complete: bool = False

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

    def lookup(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions in this block of store gene columns ``cols``, and whether each is
        there. A column the block lacks is a gene its conditions did not measure (an
        index hands out only the measured columns of a dataset); its position is 0."""
        cols = np.asarray(cols, dtype=np.int64)
        if len(self.cols) == 0:
            return np.zeros(len(cols), dtype=np.int64), np.zeros(len(cols), dtype=bool)
        pos = np.minimum(np.searchsorted(self.cols, cols), len(self.cols) - 1)
        there = self.cols[pos] == cols
        return np.where(there, pos, 0), there


@runtime_checkable
class SearchMethod(Protocol):
    """A score of resolved queries against every condition of a block."""

    @property
    def name(self) -> str:
        """The registry key, e.g. ``"wtcs"``."""
        ...

    @property
    def description(self) -> str:
        """One line for :func:`list_methods`."""
        ...

    @property
    def query_kind(self) -> Literal["sets", "signature", "both"]:
        """Which queries it scores: gene sets, a signature, or both."""
        ...

    @property
    def needs_all_genes(self) -> bool:
        """True: the block must hold every gene column; False: the union of the queries'
        columns (up, down and signature columns) suffices."""
        ...

    @property
    def higher_is_similar(self) -> bool:
        """True: a higher score means a more similar condition."""
        ...

    @property
    def needs_ranks(self) -> bool:
        """True: :meth:`score` reads ``Block.ranks`` (the block must carry them)."""
        ...

    def score(self, queries: Sequence[ResolvedQuery], block: Block) -> np.ndarray:
        """Scores, float64 ``(len(queries), block.n_rows)``; NaN where undefined."""
        ...


# ------------------------------------------------------------------------------ helpers


def _check_kind(method: SearchMethod, queries: Sequence[ResolvedQuery]) -> None:
    if method.query_kind == "both":
        return
    wrong = [q.name for q in queries if q.query.kind != method.query_kind]
    if wrong:
        hint = (
            " (turn a signature into up/down gene sets of its extreme genes first)"
            if method.query_kind == "sets"
            else ""
        )
        raise ValueError(
            f"method {method.name!r} scores {method.query_kind} queries; these queries are "
            f"not: {wrong[:5]}{hint}"
        )


def _signature_matrix(queries: Sequence[ResolvedQuery], block: Block) -> np.ndarray:
    """The queries' signatures on the block's columns, float32, NaN off the query."""
    out = np.full((len(queries), len(block.cols)), np.nan, dtype=np.float32)
    for i, q in enumerate(queries):
        pos, there = block.lookup(q.signature_cols)
        out[i, pos[there]] = q.signature_values[there]
    return out


def _ranks_of(block: Block, method: str) -> np.ndarray:
    if block.ranks is None:
        raise ValueError(
            f"method {method!r} needs the conditions' ranks; the block carries none "
            "(ask the index for blocks with ranks=True)"
        )
    return block.ranks


#: set genes × rows scored in one kernel call (bounds the kernel's temporaries)
_KS_CHUNK = 1 << 21


def _sets_es(block: Block, sets: Sequence[np.ndarray], weight: float, method: str) -> np.ndarray:
    """The KS enrichment score of each gene set (store columns) in every row of a block.

    Sets of one size go through the kernel together (as extra rows), so that many small
    sets (random queries) cost few kernel calls. The set genes' values and ranks are
    gathered gene-major (whole gene rows of an index's gene-major block) and handed to
    :func:`~perturbridge.search.kernels.ks_enrichment_of_values` without a transpose.
    """
    n = block.n_rows
    out = np.full((len(sets), n), np.nan)
    if not any(len(c) for c in sets):
        return out
    by_gene = block.values.T  # (cols, rows): gene rows side by side for an index block
    ranks_by_gene = _ranks_of(block, method).T
    by_size: dict[int, list[int]] = {}
    for i, cols in enumerate(sets):
        if len(cols):
            by_size.setdefault(len(cols), []).append(i)
    for k, members in by_size.items():
        step = max(1, _KS_CHUNK // max(1, n * k))
        for start in range(0, len(members), step):
            part = members[start : start + step]
            found = [block.lookup(sets[i]) for i in part]
            c = len(part)
            pos = np.stack([f[0] for f in found], axis=1)  # (k, c): set gene j of set i
            # (k, c, n): set gene × set × condition, so each set's rows follow in turn
            # (indexing, not np.take: np.take first copies a strided view whole)
            values = by_gene[pos]
            hit_ranks = ranks_by_gene[pos]
            absent = ~np.stack([f[1] for f in found], axis=1)
            if absent.any():  # genes the block's conditions did not measure
                hit_ranks[absent] = 0
                values[absent] = np.nan
            # unmeasured genes (rank 0, NaN value) are left out of the set by the kernel
            es = ks_enrichment_of_values(
                values.reshape(k, c * n).T,
                hit_ranks.reshape(k, c * n).T,
                np.tile(block.n_measured, c),
                weight=weight,
            )
            out[part] = es.reshape(c, n)
    return out


def _up_down_es(
    queries: Sequence[ResolvedQuery], block: Block, weight: float, method: str
) -> tuple[np.ndarray, np.ndarray]:
    up = _sets_es(block, [q.up_cols for q in queries], weight, method)
    down = _sets_es(block, [q.down_cols for q in queries], weight, method)
    return up, down


# ------------------------------------------------------------------------------ methods


@dataclass(frozen=True)
class _SignatureCorrelation:
    """A correlation of each signature query with each condition on shared genes: the
    query's values against the block's, one score per (query, condition)."""

    name: str
    description: str
    query_kind: Literal["sets", "signature", "both"] = "signature"
    needs_all_genes: bool = False
    higher_is_similar: bool = True
    needs_ranks: bool = False

    def score(self, queries: Sequence[ResolvedQuery], block: Block) -> np.ndarray:
        _check_kind(self, queries)
        return self._correlate(_signature_matrix(queries, block), block)

    def _correlate(self, q: np.ndarray, block: Block) -> np.ndarray:
        """Scores ``(n_queries, block.n_rows)`` of the query matrix ``q`` (NaN: gene not in
        the query)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Cosine(_SignatureCorrelation):
    """Cosine similarity of the query signature and each condition on shared genes."""

    name: str = "cosine"
    description: str = "cosine similarity of a signature query and each condition (shared genes)"

    def _correlate(self, q: np.ndarray, block: Block) -> np.ndarray:
        n_queries = q.shape[0]
        norms = block.norms
        full_q = ~np.isnan(q).any(axis=1)
        if not (block.complete and norms is not None and full_q.any()):
            return cosine(q, block.values).reshape(n_queries, block.n_rows)
        # a query with every column of the block and a condition measuring every column
        # (no NaN on either side): one matrix product and the stored norms
        fast = np.asarray(block.n_measured) == len(block.cols)
        if fast.all():
            out = np.empty((n_queries, block.n_rows))
            out[full_q] = cosine_measured(q[full_q], block.values, norms)
            if not full_q.all():
                out[~full_q] = cosine(q[~full_q], block.values)
            return out
        out = cosine(q, block.values).reshape(n_queries, block.n_rows)
        if fast.any():
            rows = np.flatnonzero(fast)
            values = block.values[rows]
            out[np.ix_(full_q, rows)] = cosine_measured(q[full_q], values, norms[rows])
        return out


@dataclass(frozen=True)
class Spearman(_SignatureCorrelation):
    """Spearman correlation of the query signature and each condition on shared genes."""

    name: str = "spearman"
    description: str = "Spearman correlation of a signature query and each condition (shared genes)"

    def _correlate(self, q: np.ndarray, block: Block) -> np.ndarray:
        if block.ranks is not None:
            out = spearman(q, block.values, ranks=block.ranks, n_measured=block.n_measured)
        else:
            out = spearman(q, block.values)
        return out.reshape(q.shape[0], block.n_rows)


@dataclass(frozen=True)
class Enrichment:
    """Weighted KS enrichment scores of a query's up and down sets in each condition's
    ranking, combined as ``(ES_up − ES_down) / 2`` (one set alone: ``ES_up`` or
    ``−ES_down``). With ``sign_rule`` (CMap's weighted connectivity score, WTCS;
    Subramanian et al. 2017) the combined score is 0 where the two ES share a sign.
    ``weight`` is the exponent of the values that weight the set genes (1: CMap, GSEA)."""

    name: str
    description: str
    sign_rule: bool
    query_kind: Literal["sets", "signature", "both"] = "sets"
    needs_all_genes: bool = False
    higher_is_similar: bool = True
    needs_ranks: bool = True
    weight: float = 1.0

    def score(self, queries: Sequence[ResolvedQuery], block: Block) -> np.ndarray:
        _check_kind(self, queries)
        up, down = _up_down_es(queries, block, self.weight, self.name)
        return _combine(queries, up, down, sign_rule=self.sign_rule)


#: the weighted KS enrichment score, without the sign rule
KS = Enrichment(
    name="ks",
    description=(
        "weighted Kolmogorov-Smirnov enrichment score of the up set, minus that of the "
        "down set, halved when both are given (no sign rule)"
    ),
    sign_rule=False,
)

#: CMap's weighted connectivity score
WTCS = Enrichment(
    name="wtcs",
    description=(
        "CMap weighted connectivity score: (ES_up - ES_down)/2 where the signs differ, else 0"
    ),
    sign_rule=True,
)


def _combine(
    queries: Sequence[ResolvedQuery], up: np.ndarray, down: np.ndarray, *, sign_rule: bool
) -> np.ndarray:
    """Per query: both sets → (ES_up − ES_down)/2 (0 where the signs agree under the
    sign rule); only an up set → ES_up; only a down set → −ES_down."""
    has_up = np.array([len(q.up_cols) > 0 for q in queries])[:, None]
    has_down = np.array([len(q.down_cols) > 0 for q in queries])[:, None]
    both = wtcs(up, down) if sign_rule else (up - down) / 2.0
    return np.where(has_up & has_down, both, np.where(has_up, up, -down))


@dataclass(frozen=True)
class XSum:
    """XSum, eXtreme Sum (Cheng et al. 2014)."""

    name: str = "xsum"
    description: str = (
        "XSum: the condition's values summed over the query's up genes among the "
        "condition's top and bottom n_extreme genes, minus over its down genes"
    )
    query_kind: Literal["sets", "signature", "both"] = "sets"
    needs_all_genes: bool = False
    higher_is_similar: bool = True
    needs_ranks: bool = True
    n_extreme: int = 100

    def score(self, queries: Sequence[ResolvedQuery], block: Block) -> np.ndarray:
        _check_kind(self, queries)
        ranks = _ranks_of(block, self.name)
        out = np.empty((len(queries), block.n_rows))
        for i, q in enumerate(queries):
            cols = q.cols
            pos, there = block.lookup(cols)
            values = block.values[:, pos]
            hit_ranks = ranks[:, pos]
            values[:, ~there] = np.nan  # genes the block's conditions did not measure
            hit_ranks[:, ~there] = 0
            out[i] = xsum(
                values,
                hit_ranks,
                block.n_measured,
                up=np.searchsorted(cols, q.up_cols),
                down=np.searchsorted(cols, q.down_cols),
                n_extreme=self.n_extreme,
            )
        return out


# ------------------------------------------------------------------------------ registry

#: the registered methods by name
METHODS: dict[str, SearchMethod] = {m.name: m for m in (Cosine(), Spearman(), KS, WTCS, XSum())}


def get_method(name: str) -> SearchMethod:
    """The registered method ``name`` (KeyError listing the known ones)."""
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(
            f"unknown search method {name!r}; known methods: {sorted(METHODS)}"
        ) from None


#: the fewest rows worth a thread of their own in :func:`score_block`
_MIN_PART_ROWS = 1024


def score_block(
    method: SearchMethod,
    queries: Sequence[ResolvedQuery],
    block: Block,
    *,
    n_jobs: int = 1,
) -> np.ndarray:
    """``method.score(queries, block)``, the block's rows split over ``n_jobs`` threads.

    Every score of a condition depends on that condition alone, so the parts are scored
    apart and put side by side: the result equals ``method.score``. NumPy releases the
    GIL in its sorts, reductions and arithmetic, so the threads run in parallel (about
    1.8× faster on 2 cores for the set methods). ``n_jobs=-1`` uses every core. While
    the parts are scored, BLAS (the correlation methods' matrix products) runs one thread
    per part (the limit is process-wide, as BLAS's own setting).
    """
    n_jobs = _n_jobs(n_jobs)
    parts = _parts(block, n_jobs)
    if len(parts) == 1:
        return method.score(queries, block)
    # one BLAS thread per part: the parts are the threads (BLAS threads on top of them
    # would wait on each other for the same cores)
    with _blas_limit(1), ThreadPoolExecutor(max_workers=len(parts)) as pool:
        scores = list(pool.map(lambda part: method.score(queries, part), parts))
    return np.concatenate(scores, axis=1)


def score_blocks(
    method: SearchMethod,
    queries: Sequence[ResolvedQuery],
    blocks: Iterable[Block],
    *,
    n_jobs: int = 1,
) -> Iterator[tuple[Block, np.ndarray]]:
    """``(block, method.score(queries, block))`` for each of ``blocks``, in order.

    As :func:`score_block`, each block's rows are split over ``n_jobs`` threads; the
    next block is read (``blocks`` is iterated) while the previous one is scored, so
    reading a search index overlaps scoring. At most two blocks are held at a time. With
    ``n_jobs > 1``, BLAS runs one thread per part until the iteration ends.
    """
    n_jobs = _n_jobs(n_jobs)
    if n_jobs == 1:
        for block in blocks:
            yield block, method.score(queries, block)
        return
    with _blas_limit(1), ThreadPoolExecutor(max_workers=n_jobs) as pool:
        pending: deque[tuple[Block, list[Future[np.ndarray]]]] = deque()
        for block in blocks:
            futures = [pool.submit(method.score, queries, p) for p in _parts(block, n_jobs)]
            pending.append((block, futures))
            if len(pending) > 1:
                done, parts = pending.popleft()
                yield done, _joined(parts)
        while pending:
            done, parts = pending.popleft()
            yield done, _joined(parts)


def _joined(parts: list[Future[np.ndarray]]) -> np.ndarray:
    scores = [f.result() for f in parts]
    return scores[0] if len(scores) == 1 else np.concatenate(scores, axis=1)


def _n_jobs(n_jobs: int) -> int:
    if n_jobs == -1:
        return os.cpu_count() or 1
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1 or -1 (every core), found {n_jobs}")
    return n_jobs


def _parts(block: Block, n_jobs: int) -> list[Block]:
    """The block in up to ``n_jobs`` row parts of at least ``_MIN_PART_ROWS`` rows."""
    n_parts = min(n_jobs, block.n_rows // _MIN_PART_ROWS)
    if n_parts <= 1:
        return [block]
    bounds = np.linspace(0, block.n_rows, n_parts + 1).astype(int)
    return [_row_slice(block, slice(a, b)) for a, b in pairwise(bounds.tolist())]


@functools.cache
def _threadpools() -> ThreadpoolController:
    return ThreadpoolController()


def _blas_limit(n: int) -> contextlib.AbstractContextManager[Any]:
    """At most ``n`` BLAS threads inside the ``with`` (process-wide, as BLAS's own)."""
    return _threadpools().limit(limits=n, user_api="blas")


def _row_slice(block: Block, rows: slice) -> Block:
    """Rows of a block (views, no copy)."""
    return Block(
        rows=block.rows[rows],
        cols=block.cols,
        values=block.values[rows],
        ranks=None if block.ranks is None else block.ranks[rows],
        n_measured=block.n_measured[rows],
        norms=None if block.norms is None else block.norms[rows],
        complete=block.complete,
    )


def list_methods() -> pd.DataFrame:
    """The registered methods: name, query kind, needs ranks, higher is similar, description."""
    return pd.DataFrame(
        [
            {
                "name": m.name,
                "query_kind": m.query_kind,
                "needs_ranks": m.needs_ranks,
                "needs_all_genes": m.needs_all_genes,
                "higher_is_similar": m.higher_is_similar,
                "description": m.description,
            }
            for m in METHODS.values()
        ]
    )

"""Pure NumPy kernels of the agreement diagnostics and the pair-metric registry.

Every pair kernel takes row-aligned ``(P, G)`` matrices (P pairs, G genes; NaN where a
gene was not measured) and returns a ``(P,)`` float64 array. Metrics of two signatures
use only the genes finite on both sides. Definitions: ``docs/agreement.md``.

Implementation note: each signature row is sorted once (``_RowOrder``); ranks within any
subset of genes (all common genes, the DE genes of either side) and the top-k sets are
then read from that one sort with cumulative counts, so the DEG-restricted Spearman, the
all-gene Spearman and the top-k overlaps of a block of pairs cost two row sorts in all.
No pandas, no AnnData, no I/O.

Long because every registered pair metric keeps its kernel, its naive reference and its
registry entry together, so that a metric reads as one unit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "PAIR_METRICS",
    "SCORES",
    "PairMetric",
    "all_gene_spearman",
    "deg_spearman",
    "direction_agreement",
    "list_metrics",
    "pair_metrics",
    "random_floor",
    "rank_rows",
    "register_metric",
    "retrieval",
    "retrieval_scores",
    "spearman_rows",
    "topk_overlap",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Scores of :func:`retrieval_scores` (higher = more similar for all of them).
SCORES: tuple[str, ...] = ("euclidean", "cosine", "spearman")
Score = Literal["euclidean", "cosine", "spearman"]

_MIN_SPEARMAN_GENES = 3


# --------------------------------------------------------------------------- validation


def _as_matrix(x: ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a (P, G) matrix (pairs × genes); got shape {arr.shape}")
    return arr


def _as_mask(x: ArrayLike | None, name: str, shape: tuple[int, ...]) -> BoolArray:
    if x is None:
        return np.ones(shape, dtype=bool)
    arr = np.asarray(x)
    if arr.ndim == 1 and len(shape) == 2:
        arr = arr[None, :]
    if arr.shape != shape:
        raise ValueError(
            f"{name} must have the shape of the values {shape}; got {arr.shape}. "
            "Pass one boolean per pair and gene."
        )
    if arr.dtype == np.bool_:
        return arr
    if not (np.issubdtype(arr.dtype, np.number)):
        raise TypeError(f"{name} must be boolean (or 0/1 numbers); got dtype {arr.dtype}")
    # numeric masks: NaN or 0 -> False
    return np.isfinite(arr) & (arr != 0)


def _check_pair(a: ArrayLike, b: ArrayLike) -> tuple[FloatArray, FloatArray]:
    a2 = _as_matrix(a, "a")
    b2 = _as_matrix(b, "b")
    if a2.shape != b2.shape:
        raise ValueError(
            f"a and b must be row-aligned matrices of the same shape; got a {a2.shape} "
            f"and b {b2.shape}"
        )
    return a2, b2


# --------------------------------------------------------------------------- row sorting


class _RowOrder:
    """One sort of each row, from which ranks within any gene subset are read.

    ``x`` is ``(P, G)``; ``valid`` marks the entries that take part (finite and wanted).
    Invalid entries sort last. Within a run of tied valid values the sorted order is the
    gene order (stable), which the top-k tie rule needs. Tie groups are tracked only for
    the rows that have ties (rare for real-valued signatures).
    """

    def __init__(self, x: FloatArray, valid: BoolArray) -> None:
        n_genes = x.shape[1]
        key = np.where(valid, x, np.inf)
        order = np.argsort(key, axis=1)  # introsort: fast; rows with ties re-sorted below
        # flat indices: np.take / flat assignment beat take_along_axis / put_along_axis
        offsets = (np.arange(x.shape[0]) * n_genes)[:, None]
        self.flat = (order + offsets).ravel()
        skey = self.gather(key)
        svalid = self.gather(valid)
        same = (skey[:, 1:] == skey[:, :-1]) & svalid[:, 1:]
        tied = np.flatnonzero(same.any(axis=1))
        self.order = order
        self.tied = tied
        if tied.size:  # stable sort so that ties keep the gene order
            order[tied] = np.argsort(key[tied], axis=1, kind="stable")
            self.flat = (order + offsets).ravel()
            same_t = same[tied]
            pos = np.arange(n_genes, dtype=np.int32)
            new_group = np.ones((tied.size, n_genes), dtype=bool)
            new_group[:, 1:] = ~same_t
            ends_group = np.ones((tied.size, n_genes), dtype=bool)
            ends_group[:, :-1] = ~same_t
            # first and last sorted position of each entry's tie group (tied rows only)
            self.start = np.maximum.accumulate(np.where(new_group, pos, 0), axis=1)
            end_rev = np.where(ends_group, pos, n_genes - 1)[:, ::-1]
            self.end = np.minimum.accumulate(end_rev, axis=1)[:, ::-1]

    def _tied_counts(
        self, ss: NDArray[np.bool_]
    ) -> tuple[NDArray[np.int32], NDArray[np.int32], NDArray[np.int32]]:
        """For the tied rows: (c_self, c_before, c_end) from sorted subset flags ``ss``.

        ``c_self`` counts subset members up to and including each sorted position;
        ``c_before`` those before the entry's tie group, ``c_end`` those up to its end.
        """
        c_self = np.cumsum(ss, axis=1, dtype=np.int32)
        c_before = np.take_along_axis(c_self - ss, self.start, axis=1)
        c_end = np.take_along_axis(c_self, self.end, axis=1)
        return c_self, c_before, c_end

    def centred_ranks(self, subset: BoolArray) -> tuple[FloatArray, NDArray[np.int64]]:
        """Average ranks within ``subset`` minus their mean ``(n + 1) / 2``; 0 outside.

        Returns the centred ranks (gene order) and ``n``, the subset size of each row.
        """
        ss = self.gather(subset)
        c_self = np.cumsum(ss, axis=1, dtype=np.int32)
        n = c_self[:, -1].astype(np.int64) if ss.shape[1] else np.zeros(ss.shape[0], np.int64)
        mu = ((n + 1) * 0.5)[:, None]
        if self.tied.size:  # average ranks over tie groups
            rows = self.tied
            _, c_before, c_end = self._tied_counts(ss[rows])
            sorted_r = c_self.astype(np.float64)
            sorted_r[rows] = (c_before + c_end + 1) * 0.5
            centred = np.where(ss, sorted_r - mu, 0.0)
        else:  # no ties: the rank is the running count
            centred = np.where(ss, c_self - mu, 0.0)
        return self.scatter(centred), n

    def subset_ranks(self, subset: BoolArray) -> FloatArray:
        """Average ranks (1-based) within ``subset`` of each row; NaN outside it."""
        centred, n = self.centred_ranks(subset)
        return np.where(subset, centred + ((n + 1) * 0.5)[:, None], np.nan)

    def sum_sq(self, centred: FloatArray, n: NDArray[np.int64]) -> FloatArray:
        """Row sums of squared centred ranks: ``n (n² − 1) / 12`` unless the row has ties."""
        nf = n.astype(np.float64)
        out = nf * (nf * nf - 1.0) / 12.0
        if self.tied.size:
            rows = self.tied
            out[rows] = np.einsum("ij,ij->i", centred[rows], centred[rows])
        return out

    def gather(self, arr: np.ndarray) -> np.ndarray:
        """``arr`` (gene order) in sorted order, row by row."""
        return np.take(arr.ravel(), self.flat).reshape(arr.shape)

    def scatter(self, arr: np.ndarray) -> np.ndarray:
        """``arr`` (sorted order) back in gene order, row by row."""
        out = np.empty(arr.size, dtype=arr.dtype)
        out[self.flat] = arr.ravel()
        return out.reshape(arr.shape)

    def positions(
        self, subset: BoolArray, centred: FloatArray, n: NDArray[np.int64]
    ) -> tuple[FloatArray, FloatArray]:
        """0-based ascending and descending positions within ``subset``.

        Ties are broken by gene order (lower gene index first) in both directions.
        ``centred, n`` are :meth:`centred_ranks` of the same subset: for the rows without
        ties the positions follow from them. Values outside ``subset`` are meaningless:
        mask them.
        """
        rank = centred + ((n + 1) * 0.5)[:, None]
        asc = rank - 1.0
        desc = n.astype(np.float64)[:, None] - rank
        if self.tied.size:
            rows = self.tied
            order = self.order[rows]
            ss = np.take_along_axis(subset[rows], order, axis=1)
            c_self, c_before, c_end = self._tied_counts(ss)
            asc_s = c_self - 1.0
            desc_s = (n[rows, None] - c_end) + (c_self - c_before - 1.0)
            asc_t = np.empty(asc_s.shape)
            desc_t = np.empty(desc_s.shape)
            np.put_along_axis(asc_t, order, asc_s, axis=1)
            np.put_along_axis(desc_t, order, desc_s, axis=1)
            asc[rows] = asc_t
            desc[rows] = desc_t
        return asc, desc


def _rho(
    order_a: _RowOrder, order_b: _RowOrder, subset: BoolArray
) -> tuple[FloatArray, tuple[FloatArray, FloatArray, NDArray[np.int64]]]:
    """Spearman of each row within ``subset`` (and the centred ranks, for reuse)."""
    ca, n = order_a.centred_ranks(subset)
    cb, _ = order_b.centred_ranks(subset)
    return _spearman_centred(order_a, order_b, ca, cb, n), (ca, cb, n)


def _spearman_centred(
    order_a: _RowOrder,
    order_b: _RowOrder,
    ca: FloatArray,
    cb: FloatArray,
    n: NDArray[np.int64],
) -> FloatArray:
    """Pearson correlation of centred within-subset ranks (0 outside), row by row."""
    cov = np.einsum("ij,ij->i", ca, cb)
    va = order_a.sum_sq(ca, n)
    vb = order_b.sum_sq(cb, n)
    return _rho_from_sums(cov, va, vb, n >= _MIN_SPEARMAN_GENES)


def _rho_from_sums(cov: FloatArray, va: FloatArray, vb: FloatArray, ok: BoolArray) -> FloatArray:
    """Spearman from centred-rank sums; NaN where not ``ok`` or a side is constant."""
    ok = ok & (va > 0) & (vb > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = cov / np.sqrt(va * vb)
    return np.where(ok, np.clip(rho, -1.0, 1.0), np.nan)


def _symmetric(x: FloatArray, y: FloatArray) -> FloatArray:
    """½ (x + y); the defined one alone when the other is NaN; NaN when both are."""
    fx, fy = np.isfinite(x), np.isfinite(y)
    out = np.where(fx & fy, 0.5 * (x + y), np.where(fx, x, y))
    return np.where(fx | fy, out, np.nan)


class _PairBlock:
    """A block of pairs with the sorts, ranks and masks shared by the built-in metrics."""

    def __init__(
        self,
        a: FloatArray,
        b: FloatArray,
        de_a: BoolArray | None = None,
        de_b: BoolArray | None = None,
    ) -> None:
        self.a, self.b, self.de_a, self.de_b = a, b, de_a, de_b

    @cached_property
    def common(self) -> BoolArray:
        return np.isfinite(self.a) & np.isfinite(self.b)

    @cached_property
    def order_a(self) -> _RowOrder:
        return _RowOrder(self.a, self.common)

    @cached_property
    def order_b(self) -> _RowOrder:
        return _RowOrder(self.b, self.common)

    def _de_subset(self, key: str) -> BoolArray:
        de = self.de_a if key == "de_a" else self.de_b
        if de is None:
            raise ValueError(f"this metric needs the DE mask {key}; got None")
        return self.common & de

    @cached_property
    def _common_rho(self) -> tuple[FloatArray, tuple[FloatArray, FloatArray, NDArray[np.int64]]]:
        return _rho(self.order_a, self.order_b, self.common)

    def spearman(self) -> FloatArray:
        return self._common_rho[0]

    def deg_spearman(self) -> FloatArray:
        rho_a, _ = _rho(self.order_a, self.order_b, self._de_subset("de_a"))
        rho_b, _ = _rho(self.order_a, self.order_b, self._de_subset("de_b"))
        return _symmetric(rho_a, rho_b)

    def direction(self) -> FloatArray:
        same_sign = np.sign(self.a) == np.sign(self.b)

        def frac(key: str) -> FloatArray:
            s = self._de_subset(key)
            n = s.sum(axis=1)
            hits = (s & same_sign).sum(axis=1)
            return np.where(n > 0, hits / np.maximum(n, 1), np.nan)

        return _symmetric(frac("de_a"), frac("de_b"))

    @cached_property
    def _positions(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        ca, cb, n = self._common_rho[1]
        asc_a, desc_a = self.order_a.positions(self.common, ca, n)
        asc_b, desc_b = self.order_b.positions(self.common, cb, n)
        return asc_a, desc_a, asc_b, desc_b

    def topk(self, k: int) -> FloatArray:
        asc_a, desc_a, asc_b, desc_b = self._positions
        s = self.common
        up = (desc_a < k) & (desc_b < k) & s
        down = (asc_a < k) & (asc_b < k) & s
        hits = up.sum(axis=1) + down.sum(axis=1)
        n = s.sum(axis=1)
        return np.where(n >= 2 * k, hits / (2.0 * k), np.nan)


# --------------------------------------------------------------------------- public kernels


def rank_rows(x: ArrayLike, *, mask: ArrayLike | None = None) -> FloatArray:
    """Average ranks of each row over its finite (and masked-in) entries.

    Parameters
    ----------
    x
        ``(P, G)`` values (a 1-D array is one row).
    mask
        Optional ``(P, G)`` boolean; only entries that are finite and ``True`` here are
        ranked.

    Returns
    -------
    ``(P, G)`` float64: 1-based ranks, ties averaged, NaN for the entries not ranked.

    Examples
    --------
    >>> rank_rows(np.array([[3.0, 1.0, np.nan, 3.0]]))
    array([[2.5, 1. , nan, 2.5]])
    """
    arr = _as_matrix(x, "x")
    valid = np.isfinite(arr) & _as_mask(mask, "mask", arr.shape)
    return _RowOrder(arr, valid).subset_ranks(valid)


def spearman_rows(a: ArrayLike, b: ArrayLike, *, mask: ArrayLike | None = None) -> FloatArray:
    """Spearman correlation of each row pair over the genes finite in both (and ``mask``).

    Ranks are computed within that gene subset (ties averaged). NaN with fewer than 3
    genes or a constant side.
    """
    a2, b2 = _check_pair(a, b)
    subset = np.isfinite(a2) & np.isfinite(b2) & _as_mask(mask, "mask", a2.shape)
    return _rho(_RowOrder(a2, subset), _RowOrder(b2, subset), subset)[0]


def _pair_block(a: ArrayLike, b: ArrayLike, de_a: ArrayLike | None, de_b: ArrayLike | None):
    a2, b2 = _check_pair(a, b)
    da = None if de_a is None else _as_mask(de_a, "de_a", a2.shape)
    db = None if de_b is None else _as_mask(de_b, "de_b", a2.shape)
    return _PairBlock(a2, b2, da, db)


def deg_spearman(a: ArrayLike, b: ArrayLike, *, de_a: ArrayLike, de_b: ArrayLike) -> FloatArray:
    """Symmetric DEG-restricted Spearman ``½ [ρ(a, b | A) + ρ(a, b | B)]``.

    ``ρ(a, b | A)`` is the Spearman correlation over the common genes in ``de_a`` (ranks
    within that subset). When one direction is undefined (fewer than 3 genes or a
    constant side) the other is used alone; NaN when both are undefined.
    """
    return _pair_block(a, b, de_a, de_b).deg_spearman()


def direction_agreement(
    a: ArrayLike, b: ArrayLike, *, de_a: ArrayLike, de_b: ArrayLike
) -> FloatArray:
    """Symmetric direction agreement ``½ [f(A) + f(B)]``.

    ``f(A)`` is the fraction of the common genes in ``de_a`` with ``sign(a) == sign(b)``
    (zero is its own sign). An empty DE set is undefined (not 0); when one side is
    undefined the other is used alone; NaN when both are.
    """
    return _pair_block(a, b, de_a, de_b).direction()


def all_gene_spearman(
    a: ArrayLike,
    b: ArrayLike,
    *,
    de_a: ArrayLike | None = None,
    de_b: ArrayLike | None = None,
) -> FloatArray:
    """Spearman over all common genes (the DE masks are accepted and ignored)."""
    return _pair_block(a, b, None, None).spearman()


def topk_overlap(a: ArrayLike, b: ArrayLike, *, k: int) -> FloatArray:
    """Signed top-k overlap ``(|up_k(a) ∩ up_k(b)| + |down_k(a) ∩ down_k(b)|) / (2k)``.

    Over the common genes; ``up_k`` are the k largest values and ``down_k`` the k
    smallest, ties broken by gene order (the lower gene index is taken first, for both
    sets). NaN when fewer than ``2k`` genes are common.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    return _pair_block(a, b, None, None).topk(int(k))


# --------------------------------------------------------------------------- registry


PairFunc = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PairMetric:
    """A pair metric of the registry: ``func(a, b, de_a, de_b) -> (P,)``.

    Attributes
    ----------
    name
        Registry key and output column name.
    func
        The kernel, taking row-aligned ``(P, G)`` matrices.
    description
        One line, for ``list_metrics`` and the report.
    uses_de
        Whether the metric reads the DE masks.
    """

    name: str
    func: PairFunc
    description: str
    uses_de: bool


def _spearman_metric(a: np.ndarray, b: np.ndarray, de_a: np.ndarray, de_b: np.ndarray):
    return all_gene_spearman(a, b)


def _deg_spearman_metric(
    a: np.ndarray, b: np.ndarray, de_a: np.ndarray, de_b: np.ndarray
) -> FloatArray:
    return deg_spearman(a, b, de_a=de_a, de_b=de_b)


def _direction_metric(
    a: np.ndarray, b: np.ndarray, de_a: np.ndarray, de_b: np.ndarray
) -> FloatArray:
    return direction_agreement(a, b, de_a=de_a, de_b=de_b)


def _topk_metric(k: int) -> PairFunc:
    def metric(a: np.ndarray, b: np.ndarray, de_a: np.ndarray, de_b: np.ndarray) -> FloatArray:
        return topk_overlap(a, b, k=k)

    metric.__name__ = metric.__qualname__ = f"top{k}_overlap"
    metric.__doc__ = f"Signed top-{k} overlap (see :func:`topk_overlap`)."
    return metric


_TOPK = {k: _topk_metric(k) for k in (50, 100, 200)}

PAIR_METRICS: dict[str, PairMetric] = {
    m.name: m
    for m in (
        PairMetric(
            "deg_spearman",
            _deg_spearman_metric,
            "symmetric DEG-restricted Spearman: ½[ρ(a,b|DE_a) + ρ(a,b|DE_b)]",
            True,
        ),
        PairMetric(
            "direction",
            _direction_metric,
            "symmetric direction agreement: ½[sign match on DE_a + sign match on DE_b]",
            True,
        ),
        PairMetric("spearman", _spearman_metric, "Spearman over all common genes", False),
        *(
            PairMetric(f"top{k}", f, f"signed top-{k} overlap (up and down sets)", False)
            for k, f in _TOPK.items()
        ),
    )
}

# Fast paths of the built-in kernels on a shared _PairBlock (used only while the
# registered func is still the built-in one).
_BLOCK_KERNELS: dict[str, tuple[PairFunc, Callable[[_PairBlock], FloatArray]]] = {
    "deg_spearman": (_deg_spearman_metric, _PairBlock.deg_spearman),
    "direction": (_direction_metric, _PairBlock.direction),
    "spearman": (_spearman_metric, _PairBlock.spearman),
    **{
        f"top{k}": (f, (lambda blk, k=k: blk.topk(k)))  # type: ignore[misc]
        for k, f in _TOPK.items()
    },
}


def register_metric(metric: PairMetric, *, overwrite: bool = False) -> None:
    """Add a pair metric to ``PAIR_METRICS``.

    Raises
    ------
    TypeError
        ``metric`` is not a :class:`PairMetric`.
    ValueError
        The name is taken and ``overwrite`` is false.
    """
    if not isinstance(metric, PairMetric):
        raise TypeError(f"metric must be a PairMetric; got {type(metric).__name__}")
    if not callable(metric.func):
        raise TypeError(f"metric {metric.name!r}: func must be callable")
    if metric.name in PAIR_METRICS and not overwrite:
        raise ValueError(
            f"a pair metric named {metric.name!r} is already registered; "
            "pass overwrite=True to replace it"
        )
    PAIR_METRICS[metric.name] = metric


def list_metrics() -> list[tuple[str, str]]:
    """``(name, description)`` of the registered pair metrics, in registry order."""
    return [(m.name, m.description) for m in PAIR_METRICS.values()]


def _resolve_metrics(metrics: Sequence[str] | None) -> list[str]:
    if metrics is None:
        return list(PAIR_METRICS)
    if isinstance(metrics, str):
        metrics = [metrics]
    unknown = [m for m in metrics if m not in PAIR_METRICS]
    if unknown:
        raise KeyError(f"unknown pair metric(s) {unknown}; known metrics: {list(PAIR_METRICS)}")
    return list(dict.fromkeys(metrics))


def pair_metrics(
    a: ArrayLike,
    b: ArrayLike,
    *,
    de_a: ArrayLike | None,
    de_b: ArrayLike | None,
    metrics: Sequence[str] | None = None,
    chunk_size: int = 4096,
) -> dict[str, FloatArray]:
    """Compute several pair metrics, ``chunk_size`` pairs at a time.

    Parameters
    ----------
    a, b
        Row-aligned ``(P, G)`` signatures (NaN = gene not measured).
    de_a, de_b
        ``(P, G)`` boolean DE masks of ``a`` and ``b`` (``None`` allowed when no requested
        metric uses DE genes).
    metrics
        Names in ``PAIR_METRICS`` (default: all, in registry order).
    chunk_size
        Rows per block; memory is bounded by a few ``(chunk_size, G)`` arrays.

    Returns
    -------
    ``{name: (P,) float64}`` in the requested order.
    """
    names = _resolve_metrics(metrics)
    a2, b2 = _check_pair(a, b)
    da = None if de_a is None else _as_mask(de_a, "de_a", a2.shape)
    db = None if de_b is None else _as_mask(de_b, "de_b", a2.shape)
    needs_de = [n for n in names if PAIR_METRICS[n].uses_de]
    if needs_de and (da is None or db is None):
        raise ValueError(f"metrics {needs_de} use DE genes; pass de_a and de_b (got None)")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer):
        raise TypeError(f"chunk_size must be an int; got {chunk_size!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
    n_rows = a2.shape[0]
    out = {n: np.full(n_rows, np.nan) for n in names}
    for lo in range(0, n_rows, int(chunk_size)):
        sl = slice(lo, min(lo + int(chunk_size), n_rows))
        blk_a, blk_b = a2[sl], b2[sl]
        blk_da = None if da is None else da[sl]
        blk_db = None if db is None else db[sl]
        blk = _PairBlock(blk_a, blk_b, blk_da, blk_db)
        for name in names:
            metric = PAIR_METRICS[name]
            fast = _BLOCK_KERNELS.get(name)
            if fast is not None and metric.func is fast[0]:
                res = fast[1](blk)
            else:
                dea = blk_da if blk_da is not None else np.zeros(blk_a.shape, dtype=bool)
                deb = blk_db if blk_db is not None else np.zeros(blk_a.shape, dtype=bool)
                res = np.asarray(metric.func(blk_a, blk_b, dea, deb), dtype=np.float64)
                if res.shape != (blk_a.shape[0],):
                    raise ValueError(
                        f"pair metric {name!r} returned shape {res.shape}; expected "
                        f"({blk_a.shape[0]},) for a block of {blk_a.shape[0]} pairs"
                    )
            out[name][sl] = res
    return out


# --------------------------------------------------------------------------- retrieval


def retrieval_scores(
    queries: ArrayLike, candidates: ArrayLike, *, score: Score = "euclidean"
) -> FloatArray:
    """Similarity of each query signature to each candidate; higher = more similar.

    Genes used for a query: those finite in the query and in every candidate.

    Parameters
    ----------
    queries
        ``(Q, G)`` signatures.
    candidates
        ``(K, G)`` signatures.
    score
        ``"euclidean"`` (negative Euclidean distance), ``"cosine"`` or ``"spearman"``.

    Returns
    -------
    ``(Q, K)`` float64; NaN for a query with no usable gene (fewer than 3 for Spearman)
    and for cosine / Spearman against a zero / constant vector.
    """
    q = _as_matrix(queries, "queries")
    c = _as_matrix(candidates, "candidates")
    if q.shape[1] != c.shape[1]:
        raise ValueError(
            f"queries and candidates must share the gene axis; got queries {q.shape} "
            f"and candidates {c.shape}"
        )
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; expected one of {SCORES}")
    n_q, n_k = q.shape[0], c.shape[0]
    cand_ok: BoolArray = np.asarray(
        np.isfinite(c).all(axis=0) if n_k else np.ones(c.shape[1], dtype=bool)
    )
    used = np.isfinite(q) & cand_ok[None, :]
    n_used = used.sum(axis=1)
    qm = np.where(used, q, 0.0)
    c0 = np.where(cand_ok[None, :], c, 0.0)
    if score == "euclidean":
        q2 = np.einsum("ij,ij->i", qm, qm)[:, None]
        c2 = used.astype(np.float64) @ (c0 * c0).T
        d2 = np.maximum(q2 + c2 - 2.0 * (qm @ c0.T), 0.0)
        out = -np.sqrt(d2)
        out[n_used == 0] = np.nan
        return out
    if score == "cosine":
        dot = qm @ c0.T
        qn = np.sqrt(np.einsum("ij,ij->i", qm, qm))[:, None]
        cn = np.sqrt(used.astype(np.float64) @ (c0 * c0).T)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = dot / (qn * cn)
        out[~((qn > 0) & (cn > 0))] = np.nan
        return np.clip(out, -1.0, 1.0)
    # spearman: ranks within the used genes, grouped by query gene mask
    out = np.full((n_q, n_k), np.nan)
    if n_q == 0 or n_k == 0:
        return out
    masks, inverse = np.unique(used, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    for u in range(masks.shape[0]):
        genes = masks[u]
        n = int(genes.sum())
        if n < _MIN_SPEARMAN_GENES:
            continue
        rows = np.flatnonzero(inverse == u)
        mu = (n + 1) * 0.5
        rq = rank_rows(q[np.ix_(rows, genes)]) - mu
        rc = rank_rows(c[:, genes]) - mu
        num = rq @ rc.T
        qn = np.sqrt(np.einsum("ij,ij->i", rq, rq))[:, None]
        cn = np.sqrt(np.einsum("ij,ij->i", rc, rc))[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = num / (qn * cn)
        rho[~((qn > 0) & (cn > 0))] = np.nan
        out[rows] = np.clip(rho, -1.0, 1.0)
    return out


def retrieval(scores: ArrayLike, positives: ArrayLike) -> dict[str, FloatArray]:
    """Rank-based retrieval metrics of each query row.

    Parameters
    ----------
    scores
        ``(Q, K)`` similarities (higher = better); NaN counts as the worst score.
    positives
        ``(Q, K)`` boolean: the candidates with the query's compound identity.

    Returns
    -------
    Dict of ``(Q,)`` float64 arrays: ``best_rank`` (1 + negatives strictly above the best
    positive + ½ per negative tied with it), ``norm_rank`` (``best_rank / (K + 1)``),
    ``norm_rank_floor`` (``1 / (N + 1)``), ``recall1`` (1 when a positive is on top;
    ``1 / (1 + tied negatives)`` on a tie), ``recall1_floor`` (``N / K``), ``auroc``
    (positives vs negatives, ties ½; NaN when N = 0 or N = K), ``n_positives``,
    ``n_candidates``. Rows with no positive get NaN metrics and floors.
    """
    s = _as_matrix(scores, "scores")
    pos = np.asarray(positives)
    if pos.ndim == 1:
        pos = pos[None, :]
    if pos.shape != s.shape:
        raise ValueError(f"positives must have the shape of scores {s.shape}; got {pos.shape}")
    if pos.dtype != np.bool_:
        raise TypeError(f"positives must be boolean; got dtype {pos.dtype}")
    n_q, n_k = s.shape
    s = np.where(np.isnan(s), -np.inf, s)
    n_pos = pos.sum(axis=1)
    n_neg = n_k - n_pos
    best_pos = np.where(pos, s, -np.inf).max(axis=1, initial=-np.inf)[:, None]
    neg = ~pos
    higher = (neg & (s > best_pos)).sum(axis=1)
    tied = (neg & (s == best_pos)).sum(axis=1)
    has_pos = n_pos > 0
    best_rank = np.where(has_pos, 1.0 + higher + 0.5 * tied, np.nan)
    recall1 = np.where(has_pos, np.where(higher > 0, 0.0, 1.0 / (1.0 + tied)), np.nan)
    # AUROC = Mann-Whitney U / (N (K - N)), ranks over all K candidates (ties averaged)
    everything = np.ones(s.shape, dtype=bool)
    ranks = _RowOrder(s, everything).subset_ranks(everything)
    rank_sum = np.where(pos, ranks, 0.0).sum(axis=1)
    u_stat = rank_sum - n_pos * (n_pos + 1) * 0.5
    ok_auc = has_pos & (n_neg > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auroc = np.where(ok_auc, u_stat / (n_pos * n_neg), np.nan)
    floors = random_floor(n_pos, np.full(n_q, n_k))
    return {
        "best_rank": best_rank,
        "norm_rank": best_rank / (n_k + 1.0),
        "norm_rank_floor": floors["norm_rank"],
        "recall1": recall1,
        "recall1_floor": floors["recall1"],
        "auroc": auroc,
        "n_positives": n_pos.astype(np.float64),
        "n_candidates": np.full(n_q, float(n_k)),
    }


def random_floor(n_positives: ArrayLike, n_candidates: ArrayLike) -> dict[str, FloatArray]:
    """Expected retrieval metrics under a uniformly random ordering.

    With N positives among K candidates: ``best_rank = (K + 1) / (N + 1)``,
    ``norm_rank = 1 / (N + 1)``, ``recall1 = N / K``, ``auroc = 0.5`` (NaN when N = 0,
    and ``auroc`` also when N = K).
    """
    n = np.asarray(n_positives, dtype=np.float64)
    k = np.asarray(n_candidates, dtype=np.float64)
    n, k = np.broadcast_arrays(n, k)
    if np.any(n > k) or np.any(n < 0):
        raise ValueError("n_positives must lie in [0, n_candidates]")
    ok = n > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        best = np.where(ok, (k + 1.0) / (n + 1.0), np.nan)
        norm = np.where(ok, 1.0 / (n + 1.0), np.nan)
        rec = np.where(ok, n / k, np.nan)
    auc = np.where(ok & (n < k), 0.5, np.nan)
    return {"best_rank": best, "norm_rank": norm, "recall1": rec, "auroc": auc}

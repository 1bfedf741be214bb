"""Search kernels: pure NumPy scores of queries against many conditions at once.

Every kernel takes whole blocks of conditions (rows) and works on all of them in
vectorized NumPy: no Python loop over conditions. NaN marks a gene not measured in a
condition; each score uses only the genes measured in both the query and the condition.
The definitions and their sources are written down in ``docs/search.md`` ("Scores").
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "cosine",
    "cosine_measured",
    "ks_enrichment",
    "ks_enrichment_of_values",
    "rank_rows",
    "spearman",
    "wtcs",
    "xsum",
]

#: elements of a block processed at a time by the correlation kernels (bounds temporaries)
_CHUNK = 1 << 18
#: (rows × set genes) elements the KS kernel works on at a time (its arrays stay in cache)
_KS_CACHE = 1 << 18
#: the same for ks_enrichment_of_values (fewer, larger parts: 5-10 % less CPU on 2 threads)
_KS_VALUES_CACHE = 1 << 19


def ks_enrichment(
    hit_ranks: np.ndarray, hit_weights: np.ndarray, n_genes: np.ndarray
) -> np.ndarray:
    """Weighted Kolmogorov–Smirnov enrichment score of a gene set in each row's ranking.

    Per row (condition), the set's genes sit at 1-based positions ``hit_ranks`` of the
    condition's signature sorted by value descending among its ``n_genes`` measured
    genes (0 = the gene is not measured there; it is left out of that row's set). The
    running sum steps up by ``w / sum(w)`` at a set gene of weight ``w`` and down by
    ``1 / (n_genes - n_hits)`` at every other gene; the score is its maximum deviation
    from zero, signed (Subramanian et al. 2005; the weights ``|value|**p``: ``p = 1`` in
    GSEA's and CMap's weighted score, ``p = 0`` for the classic KS statistic).

    Parameters
    ----------
    hit_ranks
        int ``(n_rows, k)``: 1-based positions of the set's genes (0 = not measured).
    hit_weights
        float ``(n_rows, k)``: the weight of each set gene (its absolute value is used).
    n_genes
        int ``(n_rows,)``: measured genes of each row.

    Returns
    -------
    float64 ``(n_rows,)``; NaN where a row has no measured set gene, only set genes, or
    set genes of total weight 0.

    Notes
    -----
    The extremes of the running sum lie at a set gene (the maximum: just after it; the
    minimum: just before it) or at the ends, where it is 0; so only the ``k`` set genes
    of a row are visited, ``O(k log k)`` per row, never the whole ranking.
    """
    ranks = np.asarray(hit_ranks)
    if not np.issubdtype(ranks.dtype, np.integer):
        raise TypeError(f"hit_ranks must be integers, found {ranks.dtype}")
    if ranks.ndim != 2:
        raise ValueError(f"hit_ranks must be 2-D (rows × set genes), found shape {ranks.shape}")
    weights = np.asarray(hit_weights)
    if weights.shape != ranks.shape:
        raise ValueError(
            f"hit_weights has shape {weights.shape}, hit_ranks {ranks.shape}: they must match"
        )
    n = np.asarray(n_genes, dtype=np.int64)
    if n.shape != (ranks.shape[0],):
        raise ValueError(f"n_genes has shape {n.shape}, expected {(ranks.shape[0],)}")
    if ranks.size and (ranks.min() < 0 or (ranks.max() > n.min() and np.any(ranks > n[:, None]))):
        raise ValueError("hit_ranks must lie in 0..n_genes of their row (0 = not measured)")
    n_rows, k = ranks.shape
    if k == 0 or n_rows == 0:
        return np.full(n_rows, np.nan)
    # rows a few thousand at a time: the ten passes below then run in the CPU's cache
    # (30 % less time than whole blocks of 65,536 rows, measured on 200,000 × 100)
    step = max(1, _KS_CACHE // k)
    if n_rows > step:
        out = np.empty(n_rows)
        for start in range(0, n_rows, step):
            part = slice(start, start + step)
            out[part] = _ks_rows(ranks[part], weights[part], n[part])
        return out
    return _ks_rows(ranks, weights, n)


def _ks_rows(ranks: np.ndarray, weights: np.ndarray, n: np.ndarray) -> np.ndarray:
    """:func:`ks_enrichment` of checked inputs."""
    n_rows, k = ranks.shape
    # float32 weights (a store's values) are summed in float32, others in float64
    dtype = np.float32 if weights.dtype == np.float32 else np.float64
    n_hits = np.count_nonzero(ranks, axis=1)
    # each row's set genes by rank (unmeasured last): rank - 1 and |weight|, in that order
    r0, w = _sort_by_rank(ranks, weights)
    hit = np.arange(k) < n_hits[:, None]  # the measured set genes, first in each row
    not_hit = ~hit
    w[not_hit] = 0
    cw = np.cumsum(w, axis=1)
    total = cw[:, -1].astype(np.float64)
    n_miss = n - n_hits
    ok = (n_hits > 0) & (n_miss > 0) & (total > 0)
    inv_total = (1.0 / np.where(ok, total, 1.0)).astype(dtype)[:, None]
    inv_miss = (1.0 / np.where(ok, n_miss, 1)).astype(dtype)[:, None]
    # running sum just after the j-th set gene (rank r_j): W_j / N_R − (r_j − j) / n_miss
    misses_above = np.empty((n_rows, k), dtype=dtype)
    np.subtract(r0, np.arange(k, dtype=r0.dtype), out=misses_above, casting="unsafe")
    np.multiply(misses_above, inv_miss, out=misses_above)
    after = cw
    np.multiply(after, inv_total, out=after)
    np.subtract(after, misses_above, out=after)
    after[not_hit] = 0  # the ends of the running sum, where it is 0
    top = after.max(axis=1)
    np.multiply(w, inv_total, out=w)
    np.subtract(after, w, out=after)  # just before each set gene
    bottom = after.min(axis=1)
    es = np.where(np.abs(top) > np.abs(bottom), top, bottom).astype(np.float64)
    return np.where(ok, es, np.nan)


def _sort_by_rank(ranks: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``rank − 1`` sorted ascending (unmeasured, rank 0, last) and the absolute
    weights in the same order (float32 weights stay float32, others become float64).

    float32 weights travel in the low half of a 64-bit key whose high half is
    ``rank − 1`` (one sort, no gather: 0 − 1 wraps to the largest key); others by a sort
    of ``rank << bits | column`` and a gather.
    """
    k = ranks.shape[1]
    if weights.dtype == np.float32 and np.little_endian:
        key = np.empty(ranks.shape, dtype=np.int64)
        np.subtract(ranks, 1, out=key)
        ukey = key.view(np.uint64)  # rank 0 → 2**64 − 1: last
        np.left_shift(ukey, np.uint64(32), out=ukey)
        np.bitwise_or(ukey, np.ascontiguousarray(weights).view(np.uint32), out=ukey)
        ukey.sort(axis=1)
        halves = ukey.view(np.uint32)  # per value: the low half, then the high half
        w = np.bitwise_and(halves[:, 0::2], np.uint32(0x7FFFFFFF)).view(np.float32)  # |w|
        return halves[:, 1::2].view(np.int32), w
    beyond = int(ranks.max()) + 1
    bits = max(1, (k - 1).bit_length())
    big = (beyond << bits) >= 2**31
    key_type: type[np.signedinteger[Any]] = np.int64 if big else np.int32
    key = np.where(ranks > 0, ranks, beyond).astype(key_type)
    np.left_shift(key, bits, out=key)
    np.bitwise_or(key, np.arange(k, dtype=key_type), out=key)
    key.sort(axis=1)
    col = key & ((1 << bits) - 1)
    w64 = np.abs(np.take_along_axis(weights, col, axis=1).astype(np.float64))
    return (key >> bits) - 1, w64


def ks_enrichment_of_values(
    hit_values: np.ndarray,
    hit_ranks: np.ndarray,
    n_genes: np.ndarray,
    *,
    weight: float = 1.0,
) -> np.ndarray:
    """:func:`ks_enrichment` of a gene set whose weights are the rows' own values.

    The same score as ``ks_enrichment(hit_ranks, abs(hit_values) ** weight, n_genes)``
    (equal within float32 rounding), for ranks that are the descending ranks of the
    values they come with, as a search index or :class:`~perturbridge.search.methods.Block`
    holds them: then a row's set genes ordered by rank are its set genes ordered by value,
    descending, and the values and the ranks can be sorted apart (two narrow sorts, no
    packed keys and no gather).

    Parameters
    ----------
    hit_values
        float ``(n_rows, k)``: the values of the set's genes in each row (NaN = not
        measured). Any memory order: a gene-major array (``values_by_gene.T``) is read
        without a copy.
    hit_ranks
        int ``(n_rows, k)``: their 1-based descending ranks among the row's ``n_genes``
        measured genes (0 = not measured; ties ranked in any order).
    n_genes
        int ``(n_rows,)``: measured genes of each row.
    weight
        The exponent ``p`` of the weights ``|value|**p``.

    Returns
    -------
    float64 ``(n_rows,)``, NaN where :func:`ks_enrichment` gives NaN.

    Notes
    -----
    Per part of ``_KS_VALUES_CACHE`` elements, set-gene-major: the values (negated, so NaN
    sorts last) and ``rank - 1`` (as unsigned, so an unmeasured gene sorts last) are
    each sorted per condition, then the running sum at each set gene is computed with
    rows of the part's conditions (the cumulative sum, the maximum and the minimum over
    the set genes are element-wise operations). Rows with an unmeasured set gene go
    through :func:`ks_enrichment`.
    """
    values = np.asarray(hit_values)
    ranks = np.asarray(hit_ranks)
    if not np.issubdtype(ranks.dtype, np.integer):
        raise TypeError(f"hit_ranks must be integers, found {ranks.dtype}")
    if ranks.ndim != 2 or values.shape != ranks.shape:
        raise ValueError(
            f"hit_values {values.shape} and hit_ranks {ranks.shape} must be equal 2-D shapes "
            "(rows × set genes)"
        )
    n = np.asarray(n_genes, dtype=np.int64)
    if n.shape != (ranks.shape[0],):
        raise ValueError(f"n_genes has shape {n.shape}, expected {(ranks.shape[0],)}")
    n_rows, k = ranks.shape
    if k == 0 or n_rows == 0:
        return np.full(n_rows, np.nan)
    if ranks.min() < 0 or (ranks.max() > n.min() and np.any(ranks > n[:, None])):
        raise ValueError("hit_ranks must lie in 0..n_genes of their row (0 = not measured)")
    if not np.issubdtype(values.dtype, np.floating) or values.dtype == np.float16:
        values = values.astype(np.float64)
    out = np.empty(n_rows)
    step = max(1, _KS_VALUES_CACHE // k)
    for start in range(0, n_rows, step):
        part = slice(start, start + step)
        out[part] = _ks_values_rows(values[part], ranks[part], n[part], weight)
    return out


def _ks_values_rows(
    values: np.ndarray, ranks: np.ndarray, n: np.ndarray, weight: float
) -> np.ndarray:
    """:func:`ks_enrichment_of_values` of checked inputs (one cache-sized part)."""
    k = ranks.shape[1]
    dtype = values.dtype
    # set-gene-major (k, c): each row holds one position of the conditions' sets, so
    # the sorts run down the columns and the cumulative sum, maximum and minimum over
    # the set genes are element-wise operations on rows of c conditions
    w = np.negative(values.T, order="C")  # descending values, ascending: NaN last
    w.sort(axis=0)
    # rank − 1, ascending; an unmeasured gene (rank 0) wraps to the largest key: last
    unsigned = np.dtype(f"u{ranks.dtype.itemsize}")
    r = np.subtract(ranks.T, 1, dtype=ranks.dtype, order="C")
    ru = r.view(unsigned)
    ru.sort(axis=0)
    partial = np.isnan(w[-1]) | (ru[-1] == (1 << 8 * unsigned.itemsize) - 1)
    if weight == 0:
        w.fill(1)
    else:
        np.abs(w, out=w)
        if weight != 1:
            np.power(w, dtype.type(weight), out=w)
    cw = np.empty_like(w)  # cumulative weight of the set genes up to each
    cw[0] = w[0]
    for j in range(1, k):
        np.add(cw[j - 1], w[j], out=cw[j])
    total = cw[-1].astype(np.float64)
    n_miss = n - k
    ok = (n_miss > 0) & (total > 0) & ~partial
    inv_total = (1.0 / np.where(ok, total, 1.0)).astype(dtype)
    inv_miss = (1.0 / np.where(ok, n_miss, 1)).astype(dtype)
    # the running sum just after the j-th set gene: cw_j / total − (r_j − j) / n_miss (the
    # operations of ks_enrichment, in its order: the same float32 roundings)
    misses = r
    np.subtract(r, np.arange(k, dtype=r.dtype)[:, None], out=misses)
    after = cw
    np.multiply(after, inv_total, out=after)
    np.subtract(after, np.multiply(misses, inv_miss, dtype=dtype), out=after)
    top = after.max(axis=0)
    np.multiply(w, inv_total, out=w)
    np.subtract(after, w, out=after)  # just before each set gene
    bottom = after.min(axis=0)
    es = np.where(np.abs(top) > np.abs(bottom), top, bottom).astype(np.float64)
    es = np.where(ok, es, np.nan)
    if partial.any():  # an unmeasured set gene: that row's set is its measured genes
        rows = np.flatnonzero(partial)
        sub = np.asarray(values[rows])
        weights = np.ones(sub.shape, dtype) if weight == 0 else np.abs(sub) ** dtype.type(weight)
        es[rows] = ks_enrichment(np.asarray(ranks[rows]), weights, n[rows])
    return es


def wtcs(es_up: np.ndarray, es_down: np.ndarray) -> np.ndarray:
    """CMap's weighted connectivity score from the up and down enrichment scores.

    ``(es_up - es_down) / 2`` where the two differ in sign, else 0 (Subramanian et al.
    2017); NaN where either is NaN.
    """
    up = np.asarray(es_up, dtype=np.float64)
    down = np.asarray(es_down, dtype=np.float64)
    out = np.where(np.sign(up) != np.sign(down), (up - down) / 2.0, 0.0)
    return np.where(np.isnan(up) | np.isnan(down), np.nan, out)


def _as_queries(query: np.ndarray, n_cols: int) -> tuple[np.ndarray, bool]:
    q = np.asarray(query)
    single = q.ndim == 1
    q2 = q[None, :] if single else q
    if q2.ndim != 2 or q2.shape[1] != n_cols:
        raise ValueError(
            f"the query has shape {q.shape}; expected ({n_cols},) or (n_queries, {n_cols}) "
            "to match the block's gene columns"
        )
    return q2, single


def cosine(query: np.ndarray, block: np.ndarray) -> np.ndarray:
    """Cosine similarity of each query with each row, on the genes measured in both.

    Parameters
    ----------
    query
        float ``(n_cols,)`` or ``(n_queries, n_cols)``; NaN = not in the query.
    block
        float ``(n_rows, n_cols)``; NaN = not measured.

    Returns
    -------
    float64 ``(n_rows,)`` (one query) or ``(n_queries, n_rows)``; NaN where a row shares
    no gene with a nonzero norm.
    """
    x = np.asarray(block)
    if x.ndim != 2:
        raise ValueError(f"block must be 2-D (rows × genes), found shape {x.shape}")
    q2, single = _as_queries(query, x.shape[1])
    q_nan = np.isnan(q2)
    dtype = np.result_type(x.dtype, np.float32)
    qz = np.where(q_nan, 0, q2).astype(dtype)
    out = np.empty((q2.shape[0], x.shape[0]))
    step = max(1, _CHUNK // max(1, x.shape[1]))  # rows at a time: bounded temporaries
    for start in range(0, x.shape[0], step):
        part = x[start : start + step]
        out[:, start : start + step] = _cosine_rows(part, qz, q_nan, dtype)
    return out[0] if single else out


def cosine_measured(query: np.ndarray, block: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """:func:`cosine` where neither side has a NaN, given the rows' L2 norms.

    One matrix product (float32 where the block is float32, as :func:`cosine`), divided
    by the rows' ``norms`` (as a search index stores them) and the queries' norms: no
    pass over the block besides the product, which reads a gene-major block (a search
    index's, ``values_by_gene.T``) in place.

    Parameters
    ----------
    query
        float ``(n_cols,)`` or ``(n_queries, n_cols)``, no NaN.
    block
        float ``(n_rows, n_cols)``, no NaN (every gene measured in every row).
    norms
        ``(n_rows,)``: the L2 norm of each row.

    Returns
    -------
    float64 ``(n_rows,)`` (one query) or ``(n_queries, n_rows)``; NaN where a side has
    norm 0.
    """
    x = np.asarray(block)
    if x.ndim != 2:
        raise ValueError(f"block must be 2-D (rows × genes), found shape {x.shape}")
    q2, single = _as_queries(query, x.shape[1])
    r_norm = np.asarray(norms, dtype=np.float64)
    if r_norm.shape != (x.shape[0],):
        raise ValueError(f"norms has shape {r_norm.shape}, expected {(x.shape[0],)}")
    dtype = np.result_type(x.dtype, np.float32)
    q = q2.astype(dtype)
    q_norm = np.sqrt(np.einsum("ij,ij->i", q2, q2, dtype=np.float64))
    xd = x if x.dtype == dtype else x.astype(dtype)
    # a few queries: one matrix-vector product each (BLAS's gemm is slow for so few)
    dot = xd @ q.T if len(q) > 4 else np.stack([xd @ qi for qi in q], axis=1)
    dot = dot.T
    denom = q_norm[:, None] * r_norm[None, :]
    ok = denom > 0
    out = np.where(ok, dot / np.where(ok, denom, 1.0), np.nan)
    return out[0] if single else out


def _cosine_rows(x: np.ndarray, qz: np.ndarray, q_nan: np.ndarray, dtype: np.dtype) -> np.ndarray:
    x_nan = np.isnan(x)
    any_nan = bool(x_nan.any())
    xz = np.where(x_nan, 0, x).astype(dtype, copy=False) if any_nan else x.astype(dtype, copy=False)
    dot = xz @ qz.T  # (n_rows, n_queries)
    if q_nan.any():  # the row's squared norm over each query's genes
        x_sq = (xz * xz) @ (~q_nan).astype(dtype).T
    else:
        x_sq = np.einsum("ij,ij->i", xz, xz)[:, None]
    # the query's squared norm over each row's genes
    q_sq = (~x_nan).astype(dtype) @ (qz * qz).T if any_nan else (qz * qz).sum(axis=1)[None, :]
    denom = np.sqrt(x_sq.astype(np.float64) * q_sq.astype(np.float64))
    ok = denom > 0
    return (np.where(ok, dot / np.where(ok, denom, 1.0), np.nan)).T


def rank_rows(values: np.ndarray) -> np.ndarray:
    """Ascending 1-based ranks along each row, ties given their average rank (float64).

    The rows must hold no NaN.
    """
    x = np.asarray(values)
    n, m = x.shape
    ranks = np.empty((n, m), dtype=np.float64)
    if m == 0:
        return ranks
    order = np.argsort(x, axis=1)
    s = np.take_along_axis(x, order, axis=1)
    idx = np.broadcast_to(np.arange(m), (n, m))
    starts = np.ones((n, m), dtype=bool)
    starts[:, 1:] = s[:, 1:] != s[:, :-1]
    ends = np.ones((n, m), dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, idx, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, idx, m)[:, ::-1], axis=1)[:, ::-1]
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=1)
    return ranks


def _rank_correlation(ranks: np.ndarray, y: np.ndarray, *, distinct: bool) -> np.ndarray:
    """Pearson correlation of each row of ``ranks`` (ranks 1..m of m genes) with ``y``.

    Ranks of m genes have mean (m + 1) / 2 whatever the ties; ``distinct`` ranks (a
    permutation of 1..m) have the sum of squared deviations m (m² - 1) / 12.
    """
    m = ranks.shape[1]
    yc = y - y.mean()
    num = ranks @ yc.astype(ranks.dtype)  # yc sums to 0: the rows need no centering
    if distinct:
        ss = np.full(ranks.shape[0], m * (m * m - 1) / 12.0)
    else:
        centered = ranks - (m + 1) / 2.0
        ss = np.einsum("ij,ij->i", centered, centered)
    den = np.sqrt(ss * float(yc @ yc))
    ok = den > 0
    return np.where(ok, num / np.where(ok, den, 1.0), np.nan)


def _chunks(rows: np.ndarray, width: int) -> list[np.ndarray]:
    """``rows`` in pieces of at most ``_CHUNK`` elements of ``width`` columns each."""
    if len(rows) == 0:
        return []
    return np.array_split(rows, -(-len(rows) * width // _CHUNK))


def _take(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``x[rows][:, cols]`` (``cols`` a boolean mask), without copies where they are all."""
    # (indexing, not np.take: np.take first copies a strided view, e.g. a gene-major block)
    part = x if len(rows) == x.shape[0] else x[rows]
    return part if bool(cols.all()) else part[:, np.flatnonzero(cols)]


def _mask_groups(missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows grouped by their pattern of missing genes: (patterns, inverse)."""
    n, m = missing.shape
    if n == 0 or not missing.any():
        return np.zeros((min(n, 1), m), dtype=bool), np.zeros(n, dtype=np.int64)
    packed = np.packbits(missing, axis=1)
    pad = (-packed.shape[1]) % 8
    words = np.ascontiguousarray(np.pad(packed, ((0, 0), (0, pad)))).view(np.uint64)
    # a 64-bit hash of each pattern, checked below (a collision would merge two patterns)
    mult = np.random.default_rng(0).integers(1, 2**63, size=words.shape[1], dtype=np.uint64) | 1
    with np.errstate(over="ignore"):
        hashes = (words * mult).sum(axis=1, dtype=np.uint64)
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    if not np.array_equal(words, words[first][inverse]):  # pragma: no cover - a collision
        _, first, inverse = np.unique(packed, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
    return missing[first], inverse


def spearman(
    query: np.ndarray,
    block: np.ndarray,
    *,
    ranks: np.ndarray | None = None,
    n_measured: np.ndarray | None = None,
) -> np.ndarray:
    """Spearman correlation of each query with each row, on the genes measured in both.

    The Pearson correlation of the average ranks of the query's and the row's values
    over their shared genes (ranked afresh within the shared genes, as
    ``scipy.stats.spearmanr`` on the shared genes would).

    Parameters
    ----------
    query
        float ``(n_cols,)`` or ``(n_queries, n_cols)``; NaN = not in the query.
    block
        float ``(n_rows, n_cols)``; NaN = not measured.
    ranks, n_measured
        Optional precomputed 1-based descending ranks of each row's values among all its
        ``n_measured`` genes (as a search index stores them, 0 = not measured). Used for
        the rows whose measured genes all lie in the block and in the query (their ranks
        within the shared genes are then these ranks), which saves sorting them; ties
        are then ordered as the index ordered them.

    Returns
    -------
    float64 ``(n_rows,)`` (one query) or ``(n_queries, n_rows)``; NaN where fewer than
    3 genes are shared or a side is constant.
    """
    x = np.asarray(block)
    if x.ndim != 2:
        raise ValueError(f"block must be 2-D (rows × genes), found shape {x.shape}")
    q2, single = _as_queries(query, x.shape[1])
    if (ranks is None) != (n_measured is None):
        raise ValueError("give ranks and n_measured together, or neither")
    n_rows = x.shape[0]
    out = np.full((q2.shape[0], n_rows), np.nan)
    patterns, inverse = _mask_groups(np.isnan(x))
    members = [np.flatnonzero(inverse == g) for g in range(len(patterns))]
    for qi, q in enumerate(q2):
        q_in = ~np.isnan(q)
        for pattern, rows in zip(patterns, members, strict=True):
            shared = ~pattern & q_in
            m = int(shared.sum())
            if m < 3:
                continue
            q_rank = rank_rows(q[shared][None, :])[0]
            slow = rows
            if ranks is not None and n_measured is not None and not np.any(pattern & ~q_in):
                # every gene the row has in the block is in the query; if they are all its
                # measured genes, its stored descending ranks are the ranks to use
                fast_mask = np.asarray(n_measured)[rows] == m
                fast, slow = rows[fast_mask], rows[~fast_mask]
                for part in _chunks(fast, m):
                    r = _take(ranks, part, shared).astype(np.float32)
                    # descending ranks: the correlation with ascending ones, negated
                    out[qi, part] = -_rank_correlation(r, q_rank, distinct=True)
            for part in _chunks(slow, m):
                sub = _take(x, part, shared)
                out[qi, part] = _rank_correlation(rank_rows(sub), q_rank, distinct=False)
    return out[0] if single else out


def xsum(
    values: np.ndarray,
    ranks: np.ndarray,
    n_measured: np.ndarray,
    *,
    up: np.ndarray,
    down: np.ndarray,
    n_extreme: int = 100,
) -> np.ndarray:
    """XSum (eXtreme Sum, Cheng et al. 2014) of an up/down gene set query in each row.

    A row's "changed genes" are its ``n_extreme`` top-ranked and ``n_extreme``
    bottom-ranked measured genes; XSum is the sum of the row's values over the query's
    up genes among them minus the sum over its down genes among them (0 where none).

    Parameters
    ----------
    values
        float ``(n_rows, n_cols)``; NaN = not measured.
    ranks
        int ``(n_rows, n_cols)``: 1-based descending ranks among each row's measured
        genes (0 = not measured).
    n_measured
        int ``(n_rows,)``: measured genes of each row.
    up, down
        Column positions (into ``values``) of the query's up and down genes.
    n_extreme
        Top and bottom genes of each row that count.
    """
    x = np.asarray(values)
    r = np.asarray(ranks)
    if x.ndim != 2 or r.shape != x.shape:
        raise ValueError(f"values {x.shape} and ranks {r.shape} must be equal 2-D shapes")
    if n_extreme < 1:
        raise ValueError(f"n_extreme must be at least 1, found {n_extreme}")
    n = np.asarray(n_measured, dtype=np.int64)[:, None]
    total = np.zeros(x.shape[0], dtype=np.float64)
    for cols, sign in (
        (np.asarray(up, dtype=np.int64), 1.0),
        (np.asarray(down, dtype=np.int64), -1.0),
    ):
        if len(cols) == 0:
            continue
        rc = r[:, cols].astype(np.int64)
        extreme = (rc > 0) & ((rc <= n_extreme) | (rc > n - n_extreme))
        vals = np.where(extreme, x[:, cols], 0).astype(np.float64)
        total += sign * vals.sum(axis=1)
    return total

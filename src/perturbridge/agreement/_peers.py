"""Exact peer-baseline kernel: each signature ranked once, every (pair, peer) read from it.

The peer baseline of a pair ``(a, b)`` replaces the source signature ``a`` by each of its
``J`` peers and keeps both DE masks (``docs/agreement.md``). Gathering the ``P × J`` peer
rows and running :func:`.metrics.pair_metrics` sorts every gene of every row again;
:func:`peer_metrics` gives the same values (exact: the same integer rank sums, the same
divisions) much faster when the pairs of a group share one set of common genes ``C``:

* the gene set ``C`` (finite on the peer and on the target) is the same for every
  (peer, target) entry whose peer and target rows have the same finiteness patterns. The
  entries are grouped by (target pattern, peer pattern); the usual case, a dataset that
  measured the same genes in all its conditions, is a single group;
* ``spearman``: every signature is ranked once within ``C`` (average ranks); an entry is
  a dot product of centred ranks;
* ``topK``: ascending and descending positions within ``C`` (ties by gene order) of every
  peer, read at the target's top-k genes;
* ``direction`` and ``deg_spearman``: the pair's DE genes (``A ∩ C`` and ``B ∩ C``) are
  gathered for the ``J`` peers at once and ranked within that small subset.

Entries of small pattern groups (scattered NaNs) and metrics that are not the built-in
kernels (user metrics, or a built-in re-registered with ``overwrite=True``) take the
general path: the gathered rows through :func:`.metrics.pair_metrics`.
Pure NumPy, no pandas.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import metrics as _metrics
from .metrics import _MIN_SPEARMAN_GENES, PAIR_METRICS, _rho_from_sums, _symmetric, pair_metrics

__all__ = ["PeerPairs", "peer_metrics"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

_TOPK_NAME = re.compile(r"top([1-9][0-9]*)")
#: Entries of a (target pattern, peer pattern) group below which the general path is used.
_MIN_GROUP = 16
#: Elements of one gathered block (about 4 MB as float64).
_BLOCK_ELEMS = 1 << 19
#: Elements (signatures × genes) of the per-signature ranks prepared at once.
_PREP_ELEMS = 1 << 23


@dataclass(frozen=True)
class PeerPairs:
    """The pairs of :func:`peer_metrics` and their peers.

    ``i_src`` / ``i_tgt``: ``(P,)`` rows of the pairs' source and target signatures;
    ``peers``: ``(P, J)`` rows of the source signatures (``-1``: no peer).
    """

    i_src: ArrayLike
    i_tgt: ArrayLike
    peers: ArrayLike


@dataclass(frozen=True)
class _Sides:
    """The checked source and target signatures (NaN = not measured) and DE masks."""

    src_x: np.ndarray
    src_de: BoolArray
    tgt_x: np.ndarray
    tgt_de: BoolArray


@dataclass(frozen=True)
class _Pairs:
    """Checked :class:`PeerPairs`: rows of the pairs' source / target and their peers."""

    i_src: IntArray
    i_tgt: IntArray
    peers: IntArray

    def take(self, rows: IntArray) -> _Pairs:
        return _Pairs(self.i_src[rows], self.i_tgt[rows], self.peers[rows])


@dataclass(frozen=True)
class _Entries:
    """Where each (pair, peer) entry of a chunk reads: ``lp`` rows of the chunk's peers,
    ``lt`` rows of its targets, ``ok`` the entries that have a peer."""

    lp: IntArray
    lt: IntArray
    ok: BoolArray


# --------------------------------------------------------------------------- helpers


def _is_builtin(name: str) -> bool:
    """Whether ``name`` is still computed by the built-in kernel of :mod:`.metrics`.

    Same test as :func:`.metrics.pair_metrics`: the registered func is the built-in one.
    """
    metric = PAIR_METRICS.get(name)
    kernels = getattr(_metrics, "_BLOCK_KERNELS", None)
    if metric is None or not isinstance(kernels, dict):
        return False
    fast = kernels.get(name)
    if fast is None or metric.func is not fast[0]:
        return False
    return name in ("deg_spearman", "direction", "spearman") or bool(_TOPK_NAME.fullmatch(name))


def _resolve(metrics: Sequence[str] | str | None) -> list[str]:
    if metrics is None:
        return list(PAIR_METRICS)
    if isinstance(metrics, str):
        metrics = [metrics]
    unknown = [m for m in metrics if m not in PAIR_METRICS]
    if unknown:
        raise KeyError(f"unknown pair metric(s) {unknown}; known metrics: {list(PAIR_METRICS)}")
    return list(dict.fromkeys(metrics))


def _as_de(de: ArrayLike, name: str, shape: tuple[int, int]) -> BoolArray:
    arr = np.asarray(de)
    if arr.shape != shape:
        raise ValueError(f"{name} must have the shape of its values {shape}; got {arr.shape}")
    if arr.dtype == np.bool_:
        return arr
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be boolean (or 0/1 numbers); got dtype {arr.dtype}")
    return np.isfinite(arr) & (arr != 0)  # as metrics.pair_metrics reads numeric masks


def _as_values(x: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a (n, G) matrix; got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr


def _as_index(x: ArrayLike, name: str, ndim: int) -> IntArray:
    arr = np.asarray(x)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional; got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integer row indices; got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _tie_centred(same: BoolArray, n: IntArray) -> FloatArray:
    """Centred average ranks in sorted order from the tie flags of sorted rows.

    ``same[r, s]`` is true when sorted entries ``s + 1`` and ``s`` of row ``r`` are equal
    (both among the row's first ``n[r]``, the ranked ones); entries beyond ``n[r]`` get 0.
    """
    rows, m = same.shape[0], same.shape[1] + 1
    pos = np.arange(m)
    new_group = np.ones((rows, m), dtype=bool)
    new_group[:, 1:] = ~same
    ends_group = np.ones((rows, m), dtype=bool)
    ends_group[:, :-1] = ~same
    start = np.maximum.accumulate(np.where(new_group, pos, 0), axis=1)
    end = np.minimum.accumulate(np.where(ends_group, pos, m - 1)[:, ::-1], axis=1)[:, ::-1]
    centred = (start + end) * 0.5 + 1.0 - ((n + 1) * 0.5)[:, None]
    return np.where(pos[None, :] < n[:, None], centred, 0.0)


def _centred_ranks(x: FloatArray, n: IntArray) -> tuple[FloatArray, FloatArray]:
    """Average ranks minus ``(n + 1) / 2`` of the first ``n[r]`` entries of each row ``r``.

    The rest of a row is padding (0 in the output). Ranked values must be finite. Returns
    the centred ranks (input order) and their row sums of squares; centred ranks are
    multiples of ½, so every sum is exact in float64.
    """
    m = x.shape[1]
    live = np.arange(m)[None, :] < n[:, None]
    key = np.where(live, x, np.inf)
    order = np.argsort(key, axis=1)
    skey = np.take_along_axis(key, order, axis=1)
    same = (skey[:, 1:] == skey[:, :-1]) & live[:, 1:]
    centred_s = _tie_centred(same, n)
    centred = np.empty_like(centred_s)
    np.put_along_axis(centred, order, centred_s, axis=1)
    return centred, np.einsum("ij,ij->i", centred_s, centred_s)


def _inverse(order: np.ndarray, dtype: type) -> NDArray[np.integer[Any]]:
    """Row-wise inverse permutations of ``order``."""
    rows, m = order.shape
    inv = np.empty(rows * m, dtype=dtype)
    inv[(order + (np.arange(rows) * m)[:, None]).ravel()] = np.tile(np.arange(m, dtype=dtype), rows)
    return inv.reshape(rows, m)


class _Ranked:
    """One sort of each row of ``x`` (``(R, n)``, all finite), as the row-order kernel.

    ``asc`` / ``desc``: 0-based positions in ascending / descending order, ties by gene
    order in both directions (``desc`` when asked); ``order_up`` / ``order_down``: the
    first ``top`` columns by descending / ascending value (same tie rule); ``rank2``:
    twice the average ranks (integers); ``ss``: row sums of squares of the centred ranks;
    ``tied``: rows with tied values.
    """

    def __init__(
        self, x: FloatArray, *, centred: bool = True, desc: bool = False, top: int = 0
    ) -> None:
        rows, n = x.shape
        pdt = np.int16 if n <= np.iinfo(np.int16).max else np.int64
        order = np.argsort(x, axis=1)  # introsort; rows with ties re-sorted stably below
        sx = np.take_along_axis(x, order, axis=1)
        same = sx[:, 1:] == sx[:, :-1]
        tied_rows = np.flatnonzero(same.any(axis=1))
        if tied_rows.size:
            order[tied_rows] = np.argsort(x[tied_rows], axis=1, kind="stable")
        self.tied = np.zeros(rows, dtype=bool)
        self.tied[tied_rows] = True
        self.order_down = order[:, :top].copy()
        self.asc = _inverse(order, pdt)
        nn = np.full(rows, n, dtype=np.int64)
        if centred:
            # twice the average rank: an integer (exact in int16 for |C| < 16,384)
            rdt = np.int16 if 2 * n < np.iinfo(np.int16).max else np.int64
            self.rank2: NDArray[np.integer[Any]] = self.asc.astype(rdt)
            self.rank2 *= 2
            self.rank2 += 2
            self.ss = np.full(rows, n * (n * n - 1.0) / 12.0)
            if tied_rows.size:
                c_s = _tie_centred(same[tied_rows], nn[tied_rows])
                c_t = np.empty_like(c_s)
                np.put_along_axis(c_t, order[tied_rows], c_s, axis=1)
                self.rank2[tied_rows] = np.rint(2.0 * c_t + (n + 1.0)).astype(rdt)
                self.ss[tied_rows] = np.einsum("ij,ij->i", c_s, c_s)
        up_tied = np.argsort(-x[tied_rows], axis=1, kind="stable") if tied_rows.size else None
        if top:
            self.order_up = order[:, ::-1][:, :top].copy()
            if up_tied is not None:
                self.order_up[tied_rows] = up_tied[:, :top]
        if desc:
            self.desc = (n - 1) - self.asc
            if up_tied is not None:
                self.desc[tied_rows] = _inverse(up_tied, pdt)


def _blocks(n: int, size: int) -> Iterator[slice]:
    size = max(1, int(size))
    for lo in range(0, n, size):
        yield slice(lo, min(lo + size, n))


# --------------------------------------------------------------------------- fast path


def _de_half(
    xs: FloatArray,
    asc_ext: np.ndarray | None,
    tied_s: BoolArray,
    sign_ext: NDArray[np.int8] | None,
    xt: FloatArray,
    sub: BoolArray,
    at: _Entries,
) -> tuple[FloatArray | None, FloatArray | None]:
    """ρ(peer, b | D ∩ C) and f(D ∩ C) of every (pair, peer) for one DE half.

    ``xs`` / ``xt``: the chunk's peer / target signatures on ``C`` (``|C|`` genes);
    ``asc_ext``: the peers' ascending positions within ``C`` plus a last column ``|C|``
    (for ``deg_spearman``); ``tied_s``: peers with tied values; ``sign_ext``: their signs
    plus a last column 2 (for ``direction``); ``sub``: ``(P, |C|)`` the DE genes of each
    pair within ``C``; ``at``: rows of ``xs`` / ``xt`` of each entry / pair.
    """
    lp, lt, ok = at.lp, at.lt, at.ok
    n_p, n_j = lp.shape
    n_c = xs.shape[1]
    cnt = sub.sum(axis=1).astype(np.int64)
    deg = np.full((n_p, n_j), np.nan) if asc_ext is not None else None
    frac = np.full((n_p, n_j), np.nan) if sign_ext is not None else None
    width = int(cnt.max(initial=0))
    if width == 0:
        return deg, frac
    for sl in _blocks(n_p, _BLOCK_ELEMS // max(1, n_j * width)):
        c = cnt[sl]
        m = int(c.max(initial=0))
        if m == 0:
            continue
        b = len(c)
        # the DE genes of each pair (in gene order), then padding: column |C|, a sentinel
        live = np.arange(m)[None, :] < c[:, None]
        idx = np.where(live, np.argsort(~sub[sl], axis=1, kind="stable")[:, :m], n_c)
        tv = np.take_along_axis(xt[lt[sl]], np.minimum(idx, n_c - 1), axis=1)
        flat = (lp[sl] * (n_c + 1))[:, :, None] + idx[:, None, :]  # (B, J, m) entries
        if frac is not None and sign_ext is not None:
            sign_t = np.sign(tv).astype(np.int8)[:, None, :]
            hits = np.count_nonzero(np.take(sign_ext.ravel(), flat) == sign_t, axis=2)
            f = np.where(c[:, None] > 0, hits / np.maximum(c, 1)[:, None], np.nan)
            frac[sl] = np.where(ok[sl], f, np.nan)
        if deg is not None and asc_ext is not None:
            ct, vt = _centred_ranks(tv, c)  # the target within the subset
            # twice the target's average rank, carried in the low bits of a sort key whose
            # high bits are the peer's position within C (distinct; padding last): sorted,
            # the low bits list the target's ranks in the peer's ascending order
            code = np.rint(2.0 * ct + (c + 1.0)[:, None]).astype(np.int64)
            shift = int(2 * m + 1).bit_length()
            kdt = np.int32 if ((n_c + 1) << shift) < np.iinfo(np.int32).max else np.int64
            key = (np.take(asc_ext.ravel(), flat).astype(kdt) << shift) | code.astype(kdt)[
                :, None, :
            ]
            key.sort(axis=2)
            t_sorted = (key & ((1 << shift) - 1)).astype(np.float64)
            mu = ((c + 1) * 0.5)[:, None]
            w = np.where(live, np.arange(1.0, m + 1.0) - mu, 0.0)  # peer's centred ranks
            # Σ w = 0, so Σ w (t/2 - mu) = ½ Σ w t: exact (half-integers)
            cov = 0.5 * np.einsum("pjm,pm->pj", t_sorted, w)
            nf = c.astype(np.float64)
            vp = np.broadcast_to((nf * (nf * nf - 1.0) / 12.0)[:, None], (b, n_j)).copy()
            tied = ok[sl] & tied_s[lp[sl]]
            if tied.any():  # peers with tied values: average ranks over tie groups
                tp, tj = np.nonzero(tied)
                order = np.argsort(np.take(asc_ext.ravel(), flat[tp, tj]), axis=1)
                vals = np.take(
                    xs.ravel(),
                    lp[sl][tp, tj][:, None] * n_c + np.minimum(idx[tp[:, None], order], n_c - 1),
                )
                same = (vals[:, 1:] == vals[:, :-1]) & live[tp, 1:]
                c_s = _tie_centred(same, c[tp])
                cov[tp, tj] = np.einsum("em,em->e", np.take_along_axis(ct[tp], order, axis=1), c_s)
                vp[tp, tj] = np.einsum("em,em->e", c_s, c_s)
            r = _rho_from_sums(cov, vp, vt[:, None], (c >= _MIN_SPEARMAN_GENES)[:, None])
            deg[sl] = np.where(ok[sl], r, np.nan)
    return deg, frac


def _fast_chunk(
    sides: _Sides, pairs: _Pairs, cols: IntArray, names: list[str]
) -> dict[str, FloatArray]:
    """The built-in metrics of pairs whose (peer, target) entries all share genes ``cols``."""
    src_x, src_de, tgt_x, tgt_de = sides.src_x, sides.src_de, sides.tgt_x, sides.tgt_de
    i_src, i_tgt, peers = pairs.i_src, pairs.i_tgt, pairs.peers
    n_p, n_j = peers.shape
    n_c = len(cols)
    out = {m: np.full((n_p, n_j), np.nan) for m in names}
    ok = peers >= 0
    if not ok.any():
        return out
    uniq_s, loc = np.unique(peers[ok], return_inverse=True)
    lp = np.zeros((n_p, n_j), dtype=np.int64)
    lp[ok] = loc.reshape(-1)
    uniq_t, lt = np.unique(i_tgt, return_inverse=True)
    lt = lt.reshape(-1)
    topk: dict[str, int] = {}
    for m in names:
        hit = _TOPK_NAME.fullmatch(m)
        if hit and n_c >= 2 * int(hit.group(1)):  # else NaN: fewer than 2k common genes
            topk[m] = int(hit.group(1))
    want_sp = "spearman" in names and n_c >= _MIN_SPEARMAN_GENES
    want_deg = "deg_spearman" in names
    want_dir = "direction" in names
    xs = src_x[np.ix_(uniq_s, cols)].astype(np.float64, copy=False)
    xt = tgt_x[np.ix_(uniq_t, cols)].astype(np.float64, copy=False)
    rs = rt = None
    if want_sp or topk or want_deg:
        rs = _Ranked(xs, centred=want_sp, desc=bool(topk))
    if want_sp or topk:
        rt = _Ranked(xt, centred=want_sp, top=max(topk.values(), default=0))
    if want_sp and rs is not None and rt is not None:
        res = np.full((n_p, n_j), np.nan)
        ct = rt.rank2 * 0.5 - (n_c + 1) * 0.5  # the targets' centred ranks
        for sl in _blocks(n_p, _BLOCK_ELEMS // max(1, n_j * n_c)):
            # Σ_g (r_q/2 - mu) c_t = ½ Σ_g r_q c_t since Σ c_t = 0; integer products: exact
            cov = 0.5 * np.einsum(
                "pjg,pg->pj", rs.rank2[lp[sl]], ct[lt[sl]], dtype=np.float64, casting="unsafe"
            )
            res[sl] = _rho_from_sums(cov, rs.ss[lp[sl]], rt.ss[lt[sl]][:, None], ok[sl])
        out["spearman"] = res
    if topk and rs is not None and rt is not None:
        kmax = max(topk.values())
        hits = {m: np.zeros((n_p, n_j), dtype=np.int64) for m in topk}
        for pos_s, order_t in ((rs.desc, rt.order_up), (rs.asc, rt.order_down)):
            top_t = order_t[:, :kmax]  # each target's top genes, best first
            for sl in _blocks(n_p, _BLOCK_ELEMS // max(1, n_j * kmax)):
                flat = (lp[sl] * n_c)[:, :, None] + top_t[lt[sl]][:, None, :]
                pos = np.take(pos_s.ravel(), flat)  # (B, J, kmax) peer positions
                for m, k in topk.items():
                    hits[m][sl] += (pos[:, :, :k] < k).sum(axis=2)
        for m, k in topk.items():
            out[m] = np.where(ok, hits[m] / (2.0 * k), np.nan)
    if want_deg or want_dir:
        n_s = xs.shape[0]
        asc_ext = sign_ext = None
        if want_deg and rs is not None:
            asc_ext = np.empty((n_s, n_c + 1), dtype=rs.asc.dtype)
            asc_ext[:, :n_c] = rs.asc
            asc_ext[:, n_c] = n_c
        if want_dir:
            sign_ext = np.full((n_s, n_c + 1), 2, dtype=np.int8)
            sign_ext[:, :n_c] = np.sign(xs)
        tied_s = rs.tied if rs is not None else np.zeros(n_s, dtype=bool)
        halves = [
            _de_half(xs, asc_ext, tied_s, sign_ext, xt, de[:, cols], _Entries(lp, lt, ok))
            for de in (src_de[i_src], tgt_de[i_tgt])
        ]
        if want_deg:
            out["deg_spearman"] = _symmetric(halves[0][0], halves[1][0])  # type: ignore[arg-type]
        if want_dir:
            out["direction"] = _symmetric(halves[0][1], halves[1][1])  # type: ignore[arg-type]
    return out


def _fast(sides: _Sides, pairs: _Pairs, cols: IntArray, names: list[str]) -> dict[str, FloatArray]:
    """:func:`_fast_chunk` over chunks of pairs that bound the signatures ranked at once."""
    peers = pairs.peers
    n_p, n_j = peers.shape
    ok = peers >= 0
    cap = max(1, _PREP_ELEMS // max(1, len(cols)))
    if len(np.unique(peers[ok])) + len(np.unique(pairs.i_tgt)) <= cap:
        return _fast_chunk(sides, pairs, cols, names)
    # pairs with similar peers together (peers of a stratum share its pool)
    order = np.argsort(np.where(ok, peers, np.iinfo(np.int64).max).min(axis=1), kind="stable")
    out = {m: np.full((n_p, n_j), np.nan) for m in names}
    for sl in _blocks(n_p, cap // (n_j + 1)):
        rows = order[sl]
        res = _fast_chunk(sides, pairs.take(rows), cols, names)
        for m in names:
            out[m][rows] = res[m]
    return out


# --------------------------------------------------------------------------- grouping


def _pattern_ids(x: np.ndarray, rows: IntArray) -> tuple[IntArray, BoolArray]:
    """Finiteness pattern of each of ``rows``: ``(id per row of x (-1 elsewhere), patterns)``."""
    ids = np.full(x.shape[0], -1, dtype=np.int64)
    fin = np.isfinite(x[rows])
    if not len(rows) or (fin == fin[0]).all():
        ids[rows] = 0
        return ids, fin[:1] if len(rows) else np.ones((1, x.shape[1]), dtype=bool)
    _, first, inv = np.unique(
        np.packbits(fin, axis=1), axis=0, return_index=True, return_inverse=True
    )
    ids[rows] = inv.reshape(-1)
    return ids, fin[first]


def _general(
    sides: _Sides,
    pairs: _Pairs,
    entries: tuple[IntArray, IntArray],
    names: list[str],
    *,
    chunk_size: int,
    out: dict[str, FloatArray],
) -> None:
    """The gathered rows of the entries ``(p_idx, j_idx)`` through ``pair_metrics``."""
    p_idx, j_idx = entries
    for sl in _blocks(len(p_idx), chunk_size):
        p, j = p_idx[sl], j_idx[sl]
        rows_t = pairs.i_tgt[p]
        res = pair_metrics(
            sides.src_x[pairs.peers[p, j]],
            sides.tgt_x[rows_t],
            de_a=sides.src_de[pairs.i_src[p]],
            de_b=sides.tgt_de[rows_t],
            metrics=names,
            chunk_size=chunk_size,
        )
        for m in names:
            out[m][p, j] = res[m]


# --------------------------------------------------------------------------- public


def peer_metrics(
    src_x: ArrayLike,
    tgt_x: ArrayLike,
    pairs: PeerPairs,
    *,
    src_de: ArrayLike,
    tgt_de: ArrayLike,
    metrics: Sequence[str] | None = None,
    chunk_size: int = 4096,
) -> dict[str, FloatArray]:
    """Pair metrics of every (pair, peer): the peer replaces the pair's source signature.

    Parameters
    ----------
    src_x, tgt_x
        ``(n_s, G)`` source and ``(n_t, G)`` target signatures (NaN = gene not measured).
    pairs
        ``i_src``, ``i_tgt``: ``(P,)`` rows of the pairs' source and target signatures;
        ``peers``: ``(P, J)`` rows of ``src_x`` (``-1``: no peer).
    src_de, tgt_de
        The DE masks of the source and target signatures.
    metrics
        Names in ``PAIR_METRICS`` (default: all).
    chunk_size
        Rows per :func:`.metrics.pair_metrics` block on the general path.

    Returns
    -------
    ``{name: (P, J) float64}``: entry ``[p, j]`` equals
    ``pair_metrics(src_x[peers[p, j]], tgt_x[i_tgt[p]], src_de[i_src[p]],
    tgt_de[i_tgt[p]])[name]`` (the source's DE mask is kept); NaN where ``peers == -1``.
    """
    names = _resolve(metrics)
    sx = _as_values(src_x, "src_x")
    tx = _as_values(tgt_x, "tgt_x")
    if sx.shape[1] != tx.shape[1]:
        raise ValueError(f"src_x and tgt_x must share the gene axis; got {sx.shape} and {tx.shape}")
    sd = _as_de(src_de, "src_de", sx.shape)
    td = _as_de(tgt_de, "tgt_de", tx.shape)
    i_s = _as_index(pairs.i_src, "i_src", 1)
    i_t = _as_index(pairs.i_tgt, "i_tgt", 1)
    pr = _as_index(pairs.peers, "peers", 2)
    n_p = len(i_s)
    if len(i_t) != n_p or pr.shape[0] != n_p:
        raise ValueError(
            f"i_src, i_tgt and peers must have one row per pair; got {len(i_s)}, {len(i_t)} "
            f"and {pr.shape[0]}"
        )
    for arr, n, what in ((i_s, sx.shape[0], "i_src"), (i_t, tx.shape[0], "i_tgt")):
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            raise IndexError(f"{what} must index rows 0..{n - 1}")
    if pr.size and (pr.min() < -1 or pr.max() >= sx.shape[0]):
        raise IndexError(f"peers must be rows 0..{sx.shape[0] - 1} of src_x or -1")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer):
        raise TypeError(f"chunk_size must be an int; got {chunk_size!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")

    n_j = pr.shape[1]
    out = {m: np.full((n_p, n_j), np.nan) for m in names}
    ok = pr >= 0
    p_idx, j_idx = np.nonzero(ok)
    if not len(p_idx):
        return out
    fast = [m for m in names if _is_builtin(m)]
    slow = [m for m in names if m not in fast]
    sides, checked = _Sides(sx, sd, tx, td), _Pairs(i_s, i_t, pr)
    if slow:
        _general(sides, checked, (p_idx, j_idx), slow, chunk_size=chunk_size, out=out)
    if not fast:
        return out
    # group the entries by (target pattern, peer pattern): one common gene set per group
    ids_s, pat_s = _pattern_ids(sx, np.unique(pr[ok]))
    ids_t, pat_t = _pattern_ids(tx, np.unique(i_t))
    key = ids_t[i_t[p_idx]] * len(pat_s) + ids_s[pr[p_idx, j_idx]]
    groups, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    small = np.zeros(len(p_idx), dtype=bool)
    by_group = np.argsort(inv, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    for g, (k, count) in enumerate(zip(groups, counts, strict=True)):
        ent = by_group[bounds[g] : bounds[g + 1]]
        if count < _MIN_GROUP and len(groups) > 1:
            small[ent] = True
            continue
        cols = np.flatnonzero(pat_t[k // len(pat_s)] & pat_s[k % len(pat_s)])
        if len(groups) == 1:
            rows, sub = np.arange(n_p), pr
        else:
            rows, pos = np.unique(p_idx[ent], return_inverse=True)
            sub = np.full((len(rows), n_j), -1, dtype=np.int64)
            sub[pos.reshape(-1), j_idx[ent]] = pr[p_idx[ent], j_idx[ent]]
        res = _fast(sides, _Pairs(i_s[rows], i_t[rows], sub), cols, fast)
        live = sub >= 0
        for m in fast:
            out[m][rows] = np.where(live, res[m], out[m][rows])
    if small.any():
        entries = (p_idx[small], j_idx[small])
        _general(sides, checked, entries, fast, chunk_size=chunk_size, out=out)
    return out

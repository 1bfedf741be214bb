"""The peer kernel equals the gathered pair_metrics path (docs/agreement.md, Baselines)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perturbridge.agreement import _peers
from perturbridge.agreement._peers import PeerPairs, peer_metrics
from perturbridge.agreement.cross import Baselines, baseline_metrics, peer_stats
from perturbridge.agreement.metrics import PAIR_METRICS, PairMetric, pair_metrics, register_metric
from perturbridge.agreement.signatures import Signatures

BUILTIN = ["deg_spearman", "direction", "spearman", "top50", "top100", "top200"]


def gathered(src_x, src_de, tgt_x, tgt_de, i_src, i_tgt, peers, metrics):
    """The reference: every (pair, peer) row gathered and run through pair_metrics."""
    out = {m: np.full(peers.shape, np.nan) for m in metrics}
    p, j = np.nonzero(peers >= 0)
    if len(p):
        res = pair_metrics(
            src_x[peers[p, j]],
            tgt_x[i_tgt[p]],
            de_a=src_de[i_src[p]],
            de_b=tgt_de[i_tgt[p]],
            metrics=metrics,
        )
        for m in metrics:
            out[m][p, j] = res[m]
    return out


def assert_same(got, want, metrics):
    assert list(got) == list(metrics)
    for m in metrics:
        assert got[m].shape == want[m].shape, m
        np.testing.assert_array_equal(np.isnan(got[m]), np.isnan(want[m]), err_msg=m)
        np.testing.assert_allclose(got[m], want[m], rtol=0, atol=1e-12, equal_nan=True, err_msg=m)


def make(
    rng,
    *,
    n_s=40,
    n_t=30,
    n_genes=450,
    n_pairs=60,
    n_peers=12,
    de_frac=0.1,
    decimals=None,
    src_missing=None,
    tgt_missing=None,
    dtype=np.float64,
):
    src = rng.standard_normal((n_s, n_genes))
    tgt = 0.5 * rng.standard_normal((n_t, n_genes))
    if decimals is not None:
        src, tgt = np.round(src, decimals), np.round(tgt, decimals)
    src_de = rng.random(src.shape) < de_frac
    tgt_de = rng.random(tgt.shape) < de_frac
    if src_missing is not None:
        src[:, src_missing] = np.nan
    if tgt_missing is not None:
        tgt[:, tgt_missing] = np.nan
    i_src = rng.integers(0, n_s, n_pairs)
    i_tgt = rng.integers(0, n_t, n_pairs)
    peers = rng.integers(0, n_s, (n_pairs, n_peers))
    peers[rng.random(peers.shape) < 0.2] = -1
    return src.astype(dtype), src_de, tgt.astype(dtype), tgt_de, i_src, i_tgt, peers


def kernel(src_x, src_de, tgt_x, tgt_de, i_src, i_tgt, peers, **kw):
    """:func:`peer_metrics` on the arrays in the order of :func:`make`."""
    pairs = PeerPairs(i_src, i_tgt, peers)
    return peer_metrics(src_x, tgt_x, pairs, src_de=src_de, tgt_de=tgt_de, **kw)


def check(args, metrics=BUILTIN):
    got = kernel(*args, metrics=metrics)
    want = gathered(*args, metrics)
    assert_same(got, want, metrics)
    return got


def test_uniform_coverage_fast_path():
    rng = np.random.default_rng(0)
    got = check(make(rng))
    for m in BUILTIN:
        assert np.isfinite(got[m]).sum() > 0, m


def test_float32_signatures_like_signatures_x():
    check(make(np.random.default_rng(1), dtype=np.float32, decimals=2))


def test_different_gene_coverage_per_dataset():
    rng = np.random.default_rng(2)
    # src measures a subset of tgt's genes; tgt misses a few others
    args = make(rng, src_missing=np.arange(0, 450, 3), tgt_missing=np.arange(1, 40))
    check(args)


def test_few_common_genes_topk_nan():
    rng = np.random.default_rng(3)
    args = make(rng, n_genes=250, src_missing=np.arange(0, 120))  # 130 common < 2 * 100
    got = check(args)
    assert np.isnan(got["top100"]).all() and np.isnan(got["top200"]).all()
    assert np.isfinite(got["top50"]).any()


def test_ties_and_zeros():
    rng = np.random.default_rng(4)
    src, src_de, tgt, tgt_de, i_src, i_tgt, peers = make(rng, decimals=0, n_genes=300)
    src[:5, :100] = 0.0  # many zeros: sign class 0, large tie groups
    tgt[:5, 50:150] = 0.0
    src[6, :] = 0.0
    src[7, :] = -0.0
    check((src, src_de, tgt, tgt_de, i_src, i_tgt, peers))


def test_constant_rows_small_and_empty_de_sets():
    rng = np.random.default_rng(5)
    src, src_de, tgt, tgt_de, i_src, i_tgt, peers = make(rng, n_genes=420)
    src[3] = 1.5  # constant peer
    tgt[4] = -2.0  # constant target
    src_de[:10] = False  # empty source DE sets
    tgt_de[:8] = False
    src_de[10:15] = False
    src_de[10:15, :2] = True  # fewer than 3 DE genes
    tgt_de[8:12] = False
    tgt_de[8:12, 5:7] = True
    src_de[15:20] = False
    src_de[15:20, :3] = True  # exactly 3
    i_src[:20] = np.arange(20)
    i_tgt[:12] = np.arange(12)
    i_tgt[12:14] = 4
    peers[:5, 0] = 3
    got = check((src, src_de, tgt, tgt_de, i_src, i_tgt, peers))
    # empty source DE and empty target DE: NaN; one side empty: the other alone
    both_empty = np.flatnonzero((src_de[i_src].sum(1) == 0) & (tgt_de[i_tgt].sum(1) == 0))
    assert len(both_empty)
    assert np.isnan(got["direction"][both_empty]).all()


def test_non_uniform_nan_patterns_general_path():
    rng = np.random.default_rng(6)
    src, src_de, tgt, tgt_de, i_src, i_tgt, peers = make(rng)
    src[rng.random(src.shape) < 0.05] = np.nan
    tgt[rng.random(tgt.shape) < 0.05] = np.nan
    check((src, src_de, tgt, tgt_de, i_src, i_tgt, peers))


def test_few_nan_patterns_grouped():
    rng = np.random.default_rng(7)
    src, src_de, tgt, tgt_de, i_src, i_tgt, peers = make(rng, n_pairs=120)
    src[::2, :30] = np.nan  # two source patterns
    tgt[::3, 200:240] = np.nan  # two target patterns
    src[5, 400:] = np.nan  # one rare pattern (small group: general path)
    check((src, src_de, tgt, tgt_de, i_src, i_tgt, peers))


def test_no_common_genes():
    rng = np.random.default_rng(8)
    src, src_de, tgt, tgt_de, i_src, i_tgt, peers = make(rng, n_genes=20)
    src[:, :10] = np.nan
    tgt[:, 10:] = np.nan
    got = check((src, src_de, tgt, tgt_de, i_src, i_tgt, peers))
    assert all(np.isnan(v).all() for v in got.values())


def test_padding_and_empty_shapes():
    rng = np.random.default_rng(9)
    src, src_de, tgt, tgt_de, i_src, i_tgt, peers = make(rng)
    peers[:, :] = -1
    got = check((src, src_de, tgt, tgt_de, i_src, i_tgt, peers))
    assert all(np.isnan(v).all() for v in got.values())
    got = kernel(src, src_de, tgt, tgt_de, i_src, i_tgt, peers[:, :0], metrics=BUILTIN)
    assert all(v.shape == (len(i_src), 0) for v in got.values())
    empty = np.zeros(0, dtype=np.int64)
    got = kernel(
        src, src_de, tgt, tgt_de, empty, empty, np.zeros((0, 5), np.int64), metrics=BUILTIN
    )
    assert all(v.shape == (0, 5) for v in got.values())


def test_metric_subset_and_order():
    rng = np.random.default_rng(10)
    check(make(rng), metrics=["top100", "direction"])
    check(make(rng), metrics=["deg_spearman"])


def test_small_blocks_and_chunks(monkeypatch):
    rng = np.random.default_rng(11)
    monkeypatch.setattr(_peers, "_BLOCK_ELEMS", 997)
    monkeypatch.setattr(_peers, "_PREP_ELEMS", 450 * 25)
    check(make(rng, decimals=1))


def test_custom_and_overwritten_metrics():
    rng = np.random.default_rng(12)
    args = make(rng)

    def mean_diff(a, b, de_a, de_b):
        return np.nanmean(a - b, axis=1)

    def spear_copy(a, b, de_a, de_b):
        return PAIR_METRICS["spearman"].func(a, b, de_a, de_b) * 0.5

    saved = dict(PAIR_METRICS)
    try:
        register_metric(PairMetric("mean_diff", mean_diff, "test", False))
        register_metric(PairMetric("top50", spear_copy, "test", False), overwrite=True)
        assert not _peers._is_builtin("top50") and not _peers._is_builtin("mean_diff")
        assert _peers._is_builtin("spearman")
        check(args, metrics=["mean_diff", "top50", "spearman", "direction"])
    finally:
        PAIR_METRICS.clear()
        PAIR_METRICS.update(saved)


def test_validation():
    rng = np.random.default_rng(13)
    src, src_de, tgt, tgt_de, i_src, i_tgt, peers = make(rng)
    with pytest.raises(KeyError):
        kernel(src, src_de, tgt, tgt_de, i_src, i_tgt, peers, metrics=["nope"])
    bad = peers.copy()
    bad[0, 0] = len(src)
    with pytest.raises(IndexError):
        kernel(src, src_de, tgt, tgt_de, i_src, i_tgt, bad)
    with pytest.raises(ValueError, match="gene axis"):
        kernel(src, src_de, tgt[:, :-1], tgt_de[:, :-1], i_src, i_tgt, peers)


def test_a_benchmark_sized_stratum():
    """The stratum of ``benchmarks/peers.py``: the kernel equals the gathered path on its
    first 250 pairs."""
    rng = np.random.default_rng(14)
    n, genes, n_pairs, n_peers = 2500, 978, 2500, 50
    src = rng.standard_normal((n, genes)).astype(np.float32)
    tgt = (0.3 * src[rng.permutation(n)] + rng.standard_normal((n, genes))).astype(np.float32)
    src_de = rng.random(src.shape) < 0.1
    tgt_de = rng.random(tgt.shape) < 0.1
    i_src = rng.permutation(n)[:n_pairs]
    i_tgt = rng.permutation(n)[:n_pairs]
    peers = np.stack([rng.choice(n, n_peers, replace=False) for _ in range(n_pairs)])
    got = kernel(src, src_de, tgt, tgt_de, i_src, i_tgt, peers, metrics=BUILTIN)
    sub = 250
    want = gathered(src, src_de, tgt, tgt_de, i_src[:sub], i_tgt[:sub], peers[:sub], BUILTIN)
    assert_same({m: v[:sub] for m, v in got.items()}, want, BUILTIN)


def test_baseline_metrics_peer_columns_match_gathered():
    rng = np.random.default_rng(15)
    src, src_de, tgt, tgt_de, i_src, i_tgt, peers = make(rng, dtype=np.float32, decimals=2)
    genes = pd.Index([f"g{i}" for i in range(src.shape[1])])
    s = Signatures(src, src_de, pd.DataFrame(index=range(len(src))), genes)
    t = Signatures(tgt, tgt_de, pd.DataFrame(index=range(len(tgt))), genes)
    got = baseline_metrics(
        s,
        t,
        i_src=i_src,
        i_tgt=i_tgt,
        metrics=BUILTIN,
        baselines=Baselines(peers=peers),
        chunk_size=37,
    )
    want = gathered(src, src_de, tgt, tgt_de, i_src, i_tgt, peers, BUILTIN)
    for m in BUILTIN:
        ref = peer_stats(want[m], got[m])
        for k, v in ref.items():
            np.testing.assert_allclose(got[f"{m}__{k}"], v, rtol=0, atol=1e-12, err_msg=m)
    none = baseline_metrics(
        s, t, i_src=i_src, i_tgt=i_tgt, metrics=BUILTIN, baselines=Baselines(peers=peers[:, :0])
    )
    assert (none["spearman__n_peers"] == 0).all()

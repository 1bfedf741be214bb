"""Tests of perturbridge.agreement.metrics: hand-computed cases and naive references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from perturbridge.agreement import metrics
from perturbridge.agreement.metrics import (
    PAIR_METRICS,
    SCORES,
    PairMetric,
    all_gene_spearman,
    deg_spearman,
    direction_agreement,
    list_metrics,
    pair_metrics,
    random_floor,
    rank_rows,
    register_metric,
    retrieval,
    retrieval_scores,
    spearman_rows,
    topk_overlap,
)

NAN = np.nan


def _row(*values: float) -> np.ndarray:
    return np.array([values], dtype=np.float64)


def _mask(*flags: int) -> np.ndarray:
    return np.array([flags], dtype=bool)


# --------------------------------------------------------------------------- naive references


def _naive_spearman(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return NAN
    return float(stats.spearmanr(x, y).statistic)


def _naive_deg(a, b, de_a, de_b) -> np.ndarray:
    out = []
    for x, y, ma, mb in zip(a, b, de_a, de_b, strict=True):
        common = np.isfinite(x) & np.isfinite(y)
        ra = _naive_spearman(x[common & ma], y[common & ma])
        rb = _naive_spearman(x[common & mb], y[common & mb])
        vals = [r for r in (ra, rb) if np.isfinite(r)]
        out.append(np.mean(vals) if vals else NAN)
    return np.array(out)


def _naive_topk(x: np.ndarray, y: np.ndarray, k: int) -> float:
    idx = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    if idx.size < 2 * k:
        return NAN

    def sets(v):
        down = set(idx[np.lexsort((idx, v[idx]))][:k].tolist())
        up = set(idx[np.lexsort((idx, -v[idx]))][:k].tolist())
        return up, down

    up_x, down_x = sets(x)
    up_y, down_y = sets(y)
    return (len(up_x & up_y) + len(down_x & down_y)) / (2 * k)


@pytest.fixture
def random_pairs():
    rng = np.random.default_rng(7)
    n_pairs, n_genes = 60, 40
    a = rng.normal(size=(n_pairs, n_genes))
    b = 0.6 * a + rng.normal(size=(n_pairs, n_genes))
    a[rng.random(a.shape) < 0.15] = NAN
    b[rng.random(b.shape) < 0.15] = NAN
    a[::3] = np.round(a[::3])  # ties in some rows
    b[::4] = np.round(2 * b[::4])
    de_a = rng.random(a.shape) < 0.3
    de_b = rng.random(a.shape) < 0.3
    de_a[5] = False  # one pair with an empty DE set on one side
    de_a[6] = de_b[6] = False  # and one with both empty
    return a, b, de_a, de_b


# --------------------------------------------------------------------------- rank_rows


def test_rank_rows_averages_ties():
    np.testing.assert_array_equal(rank_rows(_row(3, 1, 3, 2, 3)), _row(4, 1, 4, 2, 4))


def test_rank_rows_nan_and_inf_are_not_ranked():
    np.testing.assert_array_equal(rank_rows(_row(3, NAN, 1, np.inf)), _row(2, NAN, 1, NAN))


def test_rank_rows_mask_ranks_within_subset():
    out = rank_rows(_row(4, 1, 3, 2), mask=_mask(1, 0, 1, 1))
    np.testing.assert_array_equal(out, _row(3, NAN, 2, 1))


def test_rank_rows_all_nan_row():
    assert np.isnan(rank_rows(np.full((2, 3), NAN))).all()


def test_rank_rows_matches_scipy_rankdata():
    rng = np.random.default_rng(0)
    x = np.round(rng.normal(size=(30, 25)), 1)
    x[rng.random(x.shape) < 0.2] = NAN
    ref = np.array(
        [
            np.where(np.isfinite(r), stats.rankdata(np.where(np.isfinite(r), r, np.inf)), NAN)
            for r in x
        ]
    )
    np.testing.assert_array_equal(rank_rows(x), ref)


def test_rank_rows_mask_shape_error():
    with pytest.raises(ValueError, match=r"mask must have the shape of the values \(1, 3\)"):
        rank_rows(_row(1, 2, 3), mask=np.ones((1, 4), dtype=bool))


# --------------------------------------------------------------------------- spearman


def test_spearman_rows_ties_by_hand():
    # ranks a = [1, 2.5, 2.5, 4], b = [1, 2, 3, 4]: cov 4.5, var_a 4.5, var_b 5
    out = spearman_rows(_row(1, 2, 2, 3), _row(1, 2, 3, 4))
    np.testing.assert_allclose(out, [4.5 / np.sqrt(4.5 * 5)], rtol=1e-14)


def test_spearman_rows_uses_genes_finite_on_both_sides():
    a = _row(NAN, 5, 1, 2, 3)
    b = _row(1, NAN, 3, 2, 1)
    np.testing.assert_allclose(spearman_rows(a, b), [-1.0])


def test_spearman_rows_mask_reranks_within_subset():
    a = _row(1, 2, 3, 100)
    b = _row(3, 2, 1, 0)
    out = spearman_rows(a, b, mask=_mask(1, 1, 1, 0))
    np.testing.assert_allclose(out, [-1.0])


def test_spearman_rows_constant_side_is_nan():
    assert np.isnan(spearman_rows(_row(2, 2, 2, 2), _row(1, 2, 3, 4))).all()
    assert np.isnan(spearman_rows(_row(1, 2, 3, 4), _row(0, 0, 0, 0))).all()


def test_spearman_rows_fewer_than_three_genes_is_nan():
    assert np.isnan(spearman_rows(_row(1, 2, NAN, 4), _row(1, 2, 3, NAN))).all()


def test_spearman_rows_against_scipy(random_pairs):
    a, b, _, _ = random_pairs
    ref = []
    for x, y in zip(a, b, strict=True):
        common = np.isfinite(x) & np.isfinite(y)
        ref.append(_naive_spearman(x[common], y[common]))
    np.testing.assert_allclose(spearman_rows(a, b), ref, rtol=1e-12, atol=1e-14)


def test_spearman_rows_shape_mismatch():
    with pytest.raises(ValueError, match=r"got a \(1, 3\) and b \(1, 4\)"):
        spearman_rows(_row(1, 2, 3), _row(1, 2, 3, 4))


def test_all_gene_spearman_ignores_de(random_pairs):
    a, b, de_a, de_b = random_pairs
    np.testing.assert_array_equal(
        all_gene_spearman(a, b, de_a=de_a, de_b=de_b), spearman_rows(a, b)
    )


# --------------------------------------------------------------------------- deg_spearman


def test_deg_spearman_symmetric_by_hand():
    a = _row(1, 2, 3, 4, 5, 6)
    b = _row(1, 2, 3, 6, 5, 4)
    # rho over DE_a = genes 0-2 is 1; over DE_b = genes 3-5 is -1
    out = deg_spearman(a, b, de_a=_mask(1, 1, 1, 0, 0, 0), de_b=_mask(0, 0, 0, 1, 1, 1))
    np.testing.assert_allclose(out, [0.0], atol=1e-15)


def test_deg_spearman_one_sided_fallback():
    a = _row(1, 2, 3, 4, 5, 6)
    b = _row(1, 2, 3, 6, 5, 4)
    # DE_b has 2 genes: undefined, DE_a alone is used
    out = deg_spearman(a, b, de_a=_mask(1, 1, 1, 0, 0, 0), de_b=_mask(0, 0, 0, 1, 1, 0))
    np.testing.assert_allclose(out, [1.0])


def test_deg_spearman_constant_side_falls_back():
    a = _row(1, 2, 3, 4, 5, 6)
    b = _row(1, 2, 3, 7, 7, 7)  # b constant on DE_b
    out = deg_spearman(a, b, de_a=_mask(1, 1, 1, 0, 0, 0), de_b=_mask(0, 0, 0, 1, 1, 1))
    np.testing.assert_allclose(out, [1.0])


def test_deg_spearman_both_undefined_is_nan():
    a = _row(1, 2, 3, 4)
    b = _row(4, 3, 2, 1)
    out = deg_spearman(a, b, de_a=_mask(0, 0, 0, 0), de_b=_mask(1, 1, 0, 0))
    assert np.isnan(out).all()


def test_deg_spearman_drops_genes_unmeasured_on_one_side():
    a = _row(1, 2, 3, 4, 9)
    b = _row(1, 2, 3, NAN, 0)
    # DE_a = genes 0-3 but gene 3 is not measured in b: rho over genes 0-2 = 1
    out = deg_spearman(a, b, de_a=_mask(1, 1, 1, 1, 0), de_b=_mask(0, 0, 0, 0, 0))
    np.testing.assert_allclose(out, [1.0])


def test_deg_spearman_ranks_within_de_subset():
    # over DE genes 0, 2, 4 the orders agree although the other genes disagree
    a = _row(1, 50, 2, -50, 3)
    b = _row(10, -9, 20, 9, 30)
    out = deg_spearman(a, b, de_a=_mask(1, 0, 1, 0, 1), de_b=_mask(1, 0, 1, 0, 1))
    np.testing.assert_allclose(out, [1.0])


def test_deg_spearman_against_naive_loop(random_pairs):
    a, b, de_a, de_b = random_pairs
    np.testing.assert_allclose(
        deg_spearman(a, b, de_a=de_a, de_b=de_b),
        _naive_deg(a, b, de_a, de_b),
        rtol=1e-12,
        atol=1e-14,
    )


def test_deg_spearman_mask_shape_error():
    with pytest.raises(ValueError, match=r"de_b must have the shape of the values \(1, 3\)"):
        deg_spearman(
            _row(1, 2, 3), _row(1, 2, 3), de_a=_mask(1, 1, 1), de_b=np.ones((2, 3), dtype=bool)
        )


# --------------------------------------------------------------------------- direction


def test_direction_by_hand():
    a = _row(1, -1, 2, 0, 3)
    b = _row(2, 1, 2, 0, -1)
    # sign match: T F T T F; f(A = 0,1,2) = 2/3, f(B = 3,4) = 1/2
    out = direction_agreement(a, b, de_a=_mask(1, 1, 1, 0, 0), de_b=_mask(0, 0, 0, 1, 1))
    np.testing.assert_allclose(out, [(2 / 3 + 1 / 2) / 2])


def test_direction_zero_is_its_own_sign():
    out = direction_agreement(
        _row(0, 0, 1), _row(0, 1, 0), de_a=_mask(1, 1, 1), de_b=_mask(1, 1, 1)
    )
    np.testing.assert_allclose(out, [1 / 3])


def test_direction_one_empty_de_set_falls_back():
    a = _row(1, -1, 2, 0, 3)
    b = _row(2, 1, 2, 0, -1)
    out = direction_agreement(a, b, de_a=_mask(1, 1, 1, 0, 0), de_b=_mask(0, 0, 0, 0, 0))
    np.testing.assert_allclose(out, [2 / 3])


def test_direction_empty_de_sets_are_nan_not_zero():
    out = direction_agreement(_row(1, 2), _row(1, 2), de_a=_mask(0, 0), de_b=_mask(0, 0))
    assert np.isnan(out).all()


def test_direction_de_gene_unmeasured_on_other_side_is_not_counted():
    # the only DE gene of A is NaN in b: f(A) undefined, f(B) used alone
    out = direction_agreement(
        _row(1, 2, -1), _row(NAN, 2, 1), de_a=_mask(1, 0, 0), de_b=_mask(0, 1, 1)
    )
    np.testing.assert_allclose(out, [0.5])


# --------------------------------------------------------------------------- top-k


def test_topk_by_hand():
    a = _row(5, 4, 3, 2, 1, 0)
    b = _row(5, 0, 3, 2, 1, 4)
    # k=1: up {0} vs {0}, down {5} vs {1} -> 1/2
    np.testing.assert_allclose(topk_overlap(a, b, k=1), [0.5])
    # k=2: up {0,1} vs {0,5}, down {4,5} vs {1,4} -> 2/4
    np.testing.assert_allclose(topk_overlap(a, b, k=2), [0.5])
    np.testing.assert_allclose(topk_overlap(a, a, k=3), [1.0])


def test_topk_ties_broken_by_gene_order():
    # a: up_1 among tied genes 0,1,2 is gene 0; b: down_1 among tied genes 1,2,3 is gene 1
    a = _row(1, 1, 1, 0)
    b = _row(1, 0, 0, 0)
    np.testing.assert_allclose(topk_overlap(a, b, k=1), [0.5])  # up {0}={0}; down {3}≠{1}
    c = _row(0, 0, 1, 2)  # down_1 = gene 0
    d = _row(0, 5, 5, 5)  # up_1 = gene 1, down_1 = gene 0
    np.testing.assert_allclose(topk_overlap(c, d, k=1), [0.5])


def test_topk_too_few_common_genes_is_nan():
    assert np.isnan(topk_overlap(_row(1, 2, 3), _row(1, 2, 3), k=2)).all()
    # 4 genes but only 3 measured on both sides
    assert np.isnan(topk_overlap(_row(1, 2, 3, 4), _row(1, NAN, 3, 4), k=2)).all()


def test_topk_against_naive(random_pairs):
    a, b, _, _ = random_pairs
    for k in (1, 3, 10, 20):
        ref = [_naive_topk(x, y, k) for x, y in zip(a, b, strict=True)]
        np.testing.assert_allclose(topk_overlap(a, b, k=k), ref)


def test_topk_rejects_bad_k():
    with pytest.raises(ValueError, match="k must be a positive integer"):
        topk_overlap(_row(1, 2), _row(1, 2), k=0)


# --------------------------------------------------------------------------- registry


def test_registry_order_and_listing():
    assert list(PAIR_METRICS)[:6] == [
        "deg_spearman",
        "direction",
        "spearman",
        "top50",
        "top100",
        "top200",
    ]
    listed = list_metrics()
    assert [name for name, _ in listed] == list(PAIR_METRICS)
    assert all(desc for _, desc in listed)
    assert PAIR_METRICS["deg_spearman"].uses_de
    assert not PAIR_METRICS["top50"].uses_de


def test_pair_metrics_matches_kernels_and_blocks(random_pairs):
    a, b, de_a, de_b = random_pairs
    full = pair_metrics(a, b, de_a=de_a, de_b=de_b)
    blocked = pair_metrics(a, b, de_a=de_a, de_b=de_b, chunk_size=7)
    for name in full:
        np.testing.assert_array_equal(full[name], blocked[name])
    np.testing.assert_array_equal(full["deg_spearman"], deg_spearman(a, b, de_a=de_a, de_b=de_b))
    np.testing.assert_array_equal(
        full["direction"], direction_agreement(a, b, de_a=de_a, de_b=de_b)
    )
    np.testing.assert_array_equal(full["spearman"], spearman_rows(a, b))
    np.testing.assert_array_equal(full["top50"], topk_overlap(a, b, k=50))
    # through each registered func too
    for name, metric in PAIR_METRICS.items():
        np.testing.assert_array_equal(full[name], metric.func(a, b, de_a, de_b))


def test_pair_metrics_subset_keeps_requested_order(random_pairs):
    a, b, _, _ = random_pairs
    out = pair_metrics(a, b, de_a=None, de_b=None, metrics=["top100", "spearman"])
    assert list(out) == ["top100", "spearman"]


def test_pair_metrics_unknown_metric():
    with pytest.raises(KeyError, match=r"known metrics: .*deg_spearman"):
        pair_metrics(_row(1, 2, 3), _row(1, 2, 3), de_a=None, de_b=None, metrics=["nope"])


def test_pair_metrics_shape_mismatch():
    with pytest.raises(ValueError, match=r"a \(2, 3\) and b \(2, 4\)"):
        pair_metrics(np.zeros((2, 3)), np.zeros((2, 4)), de_a=None, de_b=None, metrics=["spearman"])


def test_pair_metrics_needs_de_for_de_metrics():
    with pytest.raises(ValueError, match="use DE genes; pass de_a and de_b"):
        pair_metrics(_row(1, 2, 3), _row(1, 2, 3), de_a=None, de_b=None, metrics=["direction"])


def test_pair_metrics_bad_chunk_size():
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        pair_metrics(
            _row(1, 2, 3), _row(1, 2, 3), de_a=None, de_b=None, metrics=["spearman"], chunk_size=0
        )


def test_register_metric_custom_and_duplicate(monkeypatch, random_pairs):
    monkeypatch.setattr(metrics, "PAIR_METRICS", dict(PAIR_METRICS))

    def n_common(a, b, de_a, de_b):
        return (np.isfinite(a) & np.isfinite(b)).sum(axis=1).astype(float)

    metric = PairMetric("n_common", n_common, "number of common genes", False)
    register_metric(metric)
    with pytest.raises(ValueError, match="already registered; pass overwrite=True"):
        register_metric(metric)
    register_metric(metric, overwrite=True)
    a, b, de_a, de_b = random_pairs
    out = metrics.pair_metrics(a, b, de_a=de_a, de_b=de_b, metrics=["n_common"], chunk_size=9)
    np.testing.assert_array_equal(out["n_common"], n_common(a, b, de_a, de_b))
    assert ("n_common", "number of common genes") in metrics.list_metrics()


def test_register_metric_overwrite_builtin_uses_new_func(monkeypatch):
    monkeypatch.setattr(metrics, "PAIR_METRICS", dict(PAIR_METRICS))

    def zeros(a, b, de_a, de_b):
        return np.zeros(a.shape[0])

    metrics.register_metric(PairMetric("spearman", zeros, "zero", False), overwrite=True)
    out = metrics.pair_metrics(
        _row(1, 2, 3), _row(1, 2, 3), de_a=None, de_b=None, metrics=["spearman"]
    )
    np.testing.assert_array_equal(out["spearman"], [0.0])


def test_register_metric_type_error():
    with pytest.raises(TypeError, match="metric must be a PairMetric"):
        register_metric("spearman")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- retrieval scores


@pytest.fixture
def query_candidates():
    rng = np.random.default_rng(3)
    q = rng.normal(size=(6, 12))
    c = rng.normal(size=(5, 12))
    q[0, 1] = q[2, 4] = q[2, 5] = NAN
    c[3, 7] = NAN  # gene 7 unusable for every query
    return q, c


def test_retrieval_scores_euclidean_by_hand():
    out = retrieval_scores(_row(0, 0), np.array([[3.0, 4.0], [1.0, 0.0]]))
    np.testing.assert_allclose(out, [[-5.0, -1.0]])


def _naive_scores(q, c, score):
    cand_ok = np.isfinite(c).all(axis=0)
    out = np.empty((q.shape[0], c.shape[0]))
    for i, x in enumerate(q):
        genes = np.isfinite(x) & cand_ok
        for j, y in enumerate(c):
            u, v = x[genes], y[genes]
            if score == "euclidean":
                out[i, j] = -np.sqrt(((u - v) ** 2).sum())
            elif score == "cosine":
                out[i, j] = u @ v / np.sqrt((u @ u) * (v @ v))
            else:
                out[i, j] = stats.spearmanr(u, v).statistic
    return out


@pytest.mark.parametrize("score", SCORES)
def test_retrieval_scores_against_naive(query_candidates, score):
    q, c = query_candidates
    np.testing.assert_allclose(
        retrieval_scores(q, c, score=score), _naive_scores(q, c, score), rtol=1e-10, atol=1e-12
    )


def test_retrieval_scores_no_usable_gene_is_nan():
    out = retrieval_scores(_row(NAN, 1.0), np.array([[1.0, NAN], [2.0, 3.0]]))
    assert np.isnan(out).all()


def test_retrieval_scores_unknown_score():
    with pytest.raises(ValueError, match="unknown score 'manhattan'"):
        retrieval_scores(_row(1, 2), _row(1, 2), score="manhattan")  # type: ignore[arg-type]


def test_retrieval_scores_gene_axis_mismatch():
    with pytest.raises(ValueError, match="share the gene axis"):
        retrieval_scores(_row(1, 2), _row(1, 2, 3))


# --------------------------------------------------------------------------- retrieval metrics


def _one(scores, positives):
    out = retrieval(np.array([scores], dtype=float), np.array([positives], dtype=bool))
    return {key: float(val[0]) for key, val in out.items()}


def test_retrieval_single_positive_by_hand():
    r = _one([0.9, 0.5, 0.7, 0.1], [0, 0, 1, 0])
    assert r["best_rank"] == 2.0
    assert r["norm_rank"] == pytest.approx(2 / 5)
    assert r["recall1"] == 0.0
    assert r["auroc"] == pytest.approx(2 / 3)
    assert r["norm_rank_floor"] == pytest.approx(1 / 2)
    assert r["recall1_floor"] == pytest.approx(1 / 4)
    assert (r["n_positives"], r["n_candidates"]) == (1.0, 4.0)


def test_retrieval_top_positive():
    r = _one([0.2, 0.9, 0.1], [0, 1, 0])
    assert (r["best_rank"], r["recall1"], r["auroc"]) == (1.0, 1.0, 1.0)


def test_retrieval_multiple_positives_by_hand():
    r = _one([0.9, 0.8, 0.7, 0.6, 0.5], [0, 1, 0, 1, 0])
    assert r["best_rank"] == 2.0
    assert r["norm_rank"] == pytest.approx(2 / 6)
    assert r["recall1"] == 0.0
    assert r["auroc"] == pytest.approx(3 / 6)  # 0.8 beats 2 of 3, 0.6 beats 1 of 3
    assert r["norm_rank_floor"] == pytest.approx(1 / 3)
    assert r["recall1_floor"] == pytest.approx(2 / 5)


def test_retrieval_tied_scores_share():
    r = _one([0.5, 0.5, 0.5, 0.1], [1, 0, 0, 0])
    assert r["best_rank"] == 2.0  # 1 + ½ per tied negative
    assert r["recall1"] == pytest.approx(1 / 3)
    assert r["auroc"] == pytest.approx((0.5 + 0.5 + 1) / 3)


def test_retrieval_strictly_better_negative_beats_tie():
    r = _one([0.9, 0.5, 0.5], [0, 1, 0])
    assert r["best_rank"] == 2.5
    assert r["recall1"] == 0.0


def test_retrieval_nan_scores_count_as_worst():
    r = _one([NAN, 0.2, 0.3], [1, 0, 0])
    assert (r["best_rank"], r["recall1"], r["auroc"]) == (3.0, 0.0, 0.0)
    r = _one([0.5, NAN, 0.1], [1, 0, 0])
    assert (r["best_rank"], r["recall1"], r["auroc"]) == (1.0, 1.0, 1.0)


def test_retrieval_no_positive_is_nan():
    r = _one([0.5, 0.2], [0, 0])
    for key in ("best_rank", "norm_rank", "recall1", "auroc", "norm_rank_floor", "recall1_floor"):
        assert np.isnan(r[key]), key
    assert r["n_positives"] == 0.0


def test_retrieval_all_positive_auroc_nan():
    r = _one([0.5, 0.2], [1, 1])
    assert (r["best_rank"], r["recall1"]) == (1.0, 1.0)
    assert np.isnan(r["auroc"])


def test_retrieval_positives_shape_and_dtype():
    with pytest.raises(ValueError, match=r"positives must have the shape of scores \(1, 2\)"):
        retrieval(_row(1, 2), np.ones((1, 3), dtype=bool))
    with pytest.raises(TypeError, match="positives must be boolean"):
        retrieval(_row(1, 2), np.ones((1, 2)))


def test_random_floor_values():
    f = random_floor(np.array([1, 3, 0, 4]), np.array([4, 10, 5, 4]))
    np.testing.assert_allclose(f["best_rank"], [2.5, 11 / 4, NAN, 1.0])
    np.testing.assert_allclose(f["norm_rank"], [0.5, 1 / 4, NAN, 1 / 5])
    np.testing.assert_allclose(f["recall1"], [0.25, 0.3, NAN, 1.0])
    np.testing.assert_allclose(f["auroc"], [0.5, 0.5, NAN, NAN])


def test_random_floor_rejects_more_positives_than_candidates():
    with pytest.raises(ValueError, match=r"n_positives must lie in \[0, n_candidates\]"):
        random_floor(5, 4)


@pytest.mark.parametrize(("n_cand", "n_pos"), [(10, 1), (10, 3), (25, 6)])
def test_random_floors_are_exact_monte_carlo(n_cand, n_pos):
    rng = np.random.default_rng(11)
    n_q = 20000
    scores = rng.random((n_q, n_cand))
    positives = np.zeros((n_q, n_cand), dtype=bool)
    positives[:, :n_pos] = True
    r = retrieval(scores, positives)
    floor = random_floor(n_pos, n_cand)
    se_rank = r["best_rank"].std() / np.sqrt(n_q)
    assert abs(r["best_rank"].mean() - floor["best_rank"]) < 4 * se_rank
    assert abs(r["norm_rank"].mean() - floor["norm_rank"]) < 4 * se_rank / (n_cand + 1)
    se_rec = np.sqrt(n_pos / n_cand * (1 - n_pos / n_cand) / n_q)
    assert abs(r["recall1"].mean() - floor["recall1"]) < 4 * se_rec
    assert abs(r["auroc"].mean() - 0.5) < 0.01
    np.testing.assert_allclose(r["norm_rank_floor"], floor["norm_rank"])
    np.testing.assert_allclose(r["recall1_floor"], floor["recall1"])

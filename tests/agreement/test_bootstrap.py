"""Tests of perturbridge.agreement.bootstrap: nested means and clustered BCa intervals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from perturbridge.agreement import bootstrap
from perturbridge.agreement.bootstrap import (
    BootstrapCI,
    cluster_bca,
    cluster_stratum_means,
    jackknife_acceleration,
    jackknife_nested_means,
    nested_mean,
)

NAN = np.nan


def _table(seed: int = 0, n_clusters: int = 40, n_strata: int = 3, n_metrics: int = 2):
    """A (C, S, M) cluster × stratum table with clusters absent from some strata."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n_clusters, n_strata, n_metrics)) + np.arange(n_strata)[None, :, None]
    v[rng.random((n_clusters, n_strata)) < 0.4] = NAN
    v[rng.random(v.shape) < 0.05] = NAN  # a metric missing on its own
    return v


# --------------------------------------------------------------------------- cluster_stratum_means


def test_cluster_stratum_means_by_hand():
    values = np.array([[1.0, 10.0], [3.0, NAN], [5.0, 20.0], [7.0, 30.0]])
    clusters = np.array(["x", "x", "y", "x"])
    strata = np.array(["s1", "s1", "s1", "s2"])
    means, c_lab, s_lab = cluster_stratum_means(values, clusters, strata)
    assert c_lab.tolist() == ["x", "y"]
    assert s_lab.tolist() == ["s1", "s2"]
    expected = np.array(
        [
            [[2.0, 10.0], [7.0, 30.0]],  # x: s1 mean of (1, 3) and of (10); s2: (7, 30)
            [[5.0, 20.0], [NAN, NAN]],  # y absent from s2
        ]
    )
    np.testing.assert_array_equal(means, expected)


def test_cluster_stratum_means_one_metric_returns_2d():
    means, _, _ = cluster_stratum_means(np.array([1.0, 3.0, 5.0]), ["x", "x", "y"], [0, 0, 0])
    np.testing.assert_array_equal(means, [[2.0], [5.0]])


def test_cluster_stratum_means_all_nan_cell_is_nan():
    means, _, _ = cluster_stratum_means(np.array([[NAN], [2.0]]), ["x", "y"], [0, 0])
    np.testing.assert_array_equal(means[:, 0, 0], [NAN, 2.0])


def test_cluster_stratum_means_label_length_error():
    with pytest.raises(ValueError, match="strata must be a 1-D array of 3 labels"):
        cluster_stratum_means(np.zeros(3), ["a", "b", "c"], [0, 1])


# --------------------------------------------------------------------------- nested_mean


def test_nested_mean_by_hand_2d():
    # stratum 0: mean(1, 3) = 2; stratum 1: only 10 -> 10; nested = 6
    out = nested_mean(np.array([[1.0, NAN], [3.0, 10.0]]))
    assert out.shape == ()
    assert float(out) == 6.0


def test_nested_mean_by_hand_3d_and_empty_stratum():
    v = np.array(
        [
            [[1.0, 2.0], [NAN, NAN], [4.0, NAN]],
            [[3.0, 6.0], [NAN, NAN], [8.0, 1.0]],
        ]
    )
    # metric 0: strata means 2, (none), 6 -> 4; metric 1: 4, (none), 1 -> 2.5
    np.testing.assert_array_equal(nested_mean(v), [4.0, 2.5])


def test_nested_mean_all_nan():
    assert np.isnan(nested_mean(np.full((2, 2), NAN)))


def test_nested_mean_shape_error():
    with pytest.raises(ValueError, match=r"values must be \(C, S\) or \(C, S, M\)"):
        nested_mean(np.zeros(3))


# --------------------------------------------------------------------------- jackknife


def test_jackknife_matches_leave_one_out_loop():
    v = _table(1)
    jack = jackknife_nested_means(v)
    ref = np.array([nested_mean(np.delete(v, i, axis=0)) for i in range(v.shape[0])])
    np.testing.assert_allclose(jack, ref, rtol=1e-12, atol=1e-12)


def test_jackknife_acceleration_matches_naive_formula():
    v = _table(2)
    ref_jack = np.array([nested_mean(np.delete(v, i, axis=0)) for i in range(v.shape[0])])
    n = ref_jack.shape[0]
    # scipy.stats.bootstrap's form: U = (n - 1)(mean - θ_i)
    u = (n - 1) * (ref_jack.mean(axis=0) - ref_jack)
    ref = (u**3).sum(axis=0) / n**3 / (6 * ((u**2).sum(axis=0) / n**2) ** 1.5)
    np.testing.assert_allclose(jackknife_acceleration(v), ref, rtol=1e-10)


def test_jackknife_acceleration_constant_is_zero():
    np.testing.assert_array_equal(jackknife_acceleration(np.ones(5)), [0.0])


# --------------------------------------------------------------------------- cluster_bca


def test_cluster_bca_matches_scipy_bca_one_stratum():
    x = np.random.default_rng(42).normal(size=200)
    ci = cluster_bca(x, n_boot=4000, seed=1)
    ref = stats.bootstrap(
        (x,), np.mean, method="BCa", n_resamples=4000, rng=np.random.default_rng(2)
    ).confidence_interval
    assert ci.estimate[0] == pytest.approx(x.mean(), rel=1e-12)
    assert abs(ci.low[0] - ref.low) < 0.05
    assert abs(ci.high[0] - ref.high) < 0.05


def test_cluster_bca_skewed_data_matches_scipy_bca():
    x = np.random.default_rng(5).exponential(size=150)
    ci = cluster_bca(x[:, None], n_boot=4000, seed=3)
    ref = stats.bootstrap(
        (x,), np.mean, method="BCa", n_resamples=4000, rng=np.random.default_rng(4)
    ).confidence_interval
    assert abs(ci.low[0] - ref.low) < 0.05
    assert abs(ci.high[0] - ref.high) < 0.05


def test_cluster_bca_result_fields():
    v = _table(3)
    ci = cluster_bca(v, n_boot=300, seed=9, confidence=0.9)
    assert isinstance(ci, BootstrapCI)
    assert ci.estimate.shape == ci.low.shape == ci.high.shape == (2,)
    assert (ci.n_clusters, ci.n_strata, ci.n_boot, ci.seed, ci.confidence) == (40, 3, 300, 9, 0.9)
    np.testing.assert_array_equal(ci.estimate, nested_mean(v))
    assert np.all(ci.low < ci.estimate) and np.all(ci.estimate < ci.high)


def test_cluster_bca_seeded_reproducible():
    v = _table(4)
    first = cluster_bca(v, n_boot=500, seed=123)
    second = cluster_bca(v, n_boot=500, seed=123)
    other = cluster_bca(v, n_boot=500, seed=124)
    np.testing.assert_array_equal(first.low, second.low)
    np.testing.assert_array_equal(first.high, second.high)
    assert not np.array_equal(first.low, other.low)


def test_cluster_bca_metrics_share_draws():
    v = _table(5)
    joint = cluster_bca(v, n_boot=400, seed=7)
    for m in range(v.shape[2]):
        alone = cluster_bca(v[:, :, m], n_boot=400, seed=7)
        np.testing.assert_allclose(joint.low[m], alone.low[0], rtol=1e-12)
        np.testing.assert_allclose(joint.high[m], alone.high[0], rtol=1e-12)


def test_cluster_bca_sparse_and_dense_paths_agree(monkeypatch):
    v = _table(6)
    monkeypatch.setattr(bootstrap, "_SPARSE_DENSITY", 0.0)
    dense = cluster_bca(v, n_boot=300, seed=1)
    monkeypatch.setattr(bootstrap, "_SPARSE_DENSITY", 1.1)
    sparse = cluster_bca(v, n_boot=300, seed=1)
    np.testing.assert_allclose(dense.low, sparse.low, rtol=1e-12)
    np.testing.assert_allclose(dense.high, sparse.high, rtol=1e-12)


def test_cluster_bca_draws_match_explicit_resampling():
    # the matrix-product draws equal the nested mean of the resampled table
    v = _table(7, n_clusters=15)
    draws = bootstrap._bootstrap_draws(v, n_boot=5, seed=0, block=2)
    rng = np.random.default_rng(0)
    for lo in range(0, 5, 2):
        b = min(2, 5 - lo)
        picks = rng.integers(0, 15, size=(b, 15))
        for j in range(b):
            np.testing.assert_allclose(draws[lo + j], nested_mean(v[picks[j]]), rtol=1e-12)


def test_cluster_bca_coverage_sanity():
    true_mean = 0.5 * (0.0 + 1.0)  # mean of the stratum means
    covered = 0
    for seed in range(100):
        rng = np.random.default_rng(1000 + seed)
        v = rng.normal(size=(60, 2)) + np.array([0.0, 1.0])
        v[rng.random((60, 2)) < 0.3] = NAN
        ci = cluster_bca(v, n_boot=500, seed=seed)
        covered += int(ci.low[0] <= true_mean <= ci.high[0])
    assert covered >= 85


def test_cluster_bca_single_cluster_has_no_interval():
    ci = cluster_bca(np.array([[1.0, 2.0]]), n_boot=100)
    np.testing.assert_array_equal(ci.estimate, [1.5])
    assert np.isnan(ci.low).all() and np.isnan(ci.high).all()


def test_cluster_bca_all_draws_equal():
    ci = cluster_bca(np.full(10, 0.3), n_boot=100)
    np.testing.assert_array_equal(ci.low, ci.estimate)
    np.testing.assert_array_equal(ci.high, ci.estimate)


def test_cluster_bca_non_finite_estimate():
    v = np.stack([np.full((10, 2), NAN), np.ones((10, 2)) * np.arange(10)[:, None]], axis=2)
    ci = cluster_bca(v, n_boot=200)
    assert np.isnan(ci.estimate[0]) and np.isnan(ci.low[0]) and np.isnan(ci.high[0])
    assert np.isfinite(ci.low[1]) and np.isfinite(ci.high[1])


def test_cluster_bca_rejects_bad_confidence():
    with pytest.raises(ValueError, match=r"confidence must lie in \(0, 1\)"):
        cluster_bca(np.zeros(5), confidence=1.5)


def test_cluster_bca_rejects_bad_n_boot():
    with pytest.raises(ValueError, match="n_boot and block must be >= 1"):
        cluster_bca(np.zeros(5), n_boot=0)
    with pytest.raises(TypeError, match="n_boot must be an int"):
        cluster_bca(np.zeros(5), n_boot=10.0)  # type: ignore[arg-type]


def test_cluster_bca_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"values must be \(C,\), \(C, S\) or \(C, S, M\)"):
        cluster_bca(np.zeros((2, 2, 2, 2)))

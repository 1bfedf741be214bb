"""Significance of search scores: random queries, uniform p-values under the null, FDR, NCS."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from perturbridge.search.methods import Block, get_method
from perturbridge.search.null import empirical_p, fdr_bh, ncs, null_rows, random_queries
from perturbridge.search.queries import Query, ResolvedQuery


def _sets(up: np.ndarray, down: np.ndarray, name: str = "q") -> ResolvedQuery:
    return ResolvedQuery(
        query=Query(name, up=tuple(f"g{c}" for c in up), down=tuple(f"g{c}" for c in down)),
        up_cols=np.sort(up).astype(np.int64),
        down_cols=np.sort(down).astype(np.int64),
        signature_cols=np.zeros(0, dtype=np.int64),
        signature_values=np.zeros(0),
    )


def _block(values: np.ndarray) -> Block:
    ranks = np.zeros(values.shape, dtype=np.int32)
    for i, row in enumerate(values):
        m = np.flatnonzero(~np.isnan(row))
        ranks[i, m[np.argsort(-row[m])]] = np.arange(1, len(m) + 1)
    return Block(
        rows=np.arange(values.shape[0], dtype=np.int64),
        cols=np.arange(values.shape[1], dtype=np.int64),
        values=values.astype(np.float32),
        ranks=ranks,
        n_measured=(~np.isnan(values)).sum(axis=1).astype(np.int32),
    )


def test_random_queries_have_the_query_sizes() -> None:
    q = _sets(np.array([1, 2, 3, 4]), np.array([10, 11]))
    nulls = random_queries(q, n=25, n_cols=40, seed=3)
    assert len(nulls) == 25
    for r in nulls:
        assert (len(r.up_cols), len(r.down_cols)) == (4, 2)
        assert len(np.intersect1d(r.up_cols, r.down_cols)) == 0
        assert r.cols.max() < 40 and r.name == "q"
    again = random_queries(q, n=25, n_cols=40, seed=3)
    assert all(np.array_equal(a.up_cols, b.up_cols) for a, b in zip(nulls, again, strict=True))
    assert len({tuple(r.up_cols) for r in nulls}) > 20  # they differ from each other


def test_random_signature_queries_permute_the_values() -> None:
    sig = pd.Series([3.0, -1.0, 0.5], index=["a", "b", "c"])
    q = ResolvedQuery(
        query=Query("s", signature=sig),
        up_cols=np.zeros(0, dtype=np.int64),
        down_cols=np.zeros(0, dtype=np.int64),
        signature_cols=np.array([0, 1, 2]),
        signature_values=sig.to_numpy(),
    )
    for r in random_queries(q, n=10, n_cols=30, seed=1):
        assert sorted(r.signature_values) == [-1.0, 0.5, 3.0]
        assert np.all(np.diff(r.signature_cols) > 0)


def test_random_queries_keep_the_query_counts_per_stratum() -> None:
    strata = np.repeat([0, 1, -1], [20, 30, 10])  # the last 10 columns never drawn
    q = _sets(np.array([1, 2, 25]), np.array([30, 31, 32, 33]))
    for r in random_queries(q, n=30, n_cols=60, seed=2, strata=strata):
        assert (strata[r.up_cols] == [0, 0, 1]).all()  # sorted: stratum 0 columns first
        assert (strata[r.down_cols] == 1).all()
    with pytest.raises(ValueError, match="excluded stratum"):
        random_queries(_sets(np.array([55]), np.array([1])), n=1, n_cols=60, seed=0, strata=strata)
    with pytest.raises(ValueError, match="one label per column"):
        random_queries(q, n=1, n_cols=60, seed=0, strata=strata[:5])


def test_empirical_p_hand_made() -> None:
    null = np.array([[1.0, 0.1], [-2.0, 0.2], [3.0, np.nan]])
    p = empirical_p(np.array([2.5, -0.15]), null)
    # row 0: |null| >= 2.5 once of 3 → 2/4; row 1: |null| >= 0.15 once of 2 (NaN left out) → 2/3
    np.testing.assert_allclose(p, [0.5, 2 / 3])
    pooled = empirical_p(np.array([2.5, -0.15]), null, groups=["g", "g"])
    # pool of 5 values {1, 2, 3, 0.1, 0.2}: 1 of them >= 2.5, 4 >= 0.15
    np.testing.assert_allclose(pooled, [2 / 6, 5 / 6])
    assert np.isnan(empirical_p(np.array([np.nan]), np.ones((3, 1))))[0]
    with pytest.raises(ValueError, match="null"):
        empirical_p(np.zeros(3), np.zeros((4, 2)))


def _null_p_values(
    method: str, *, design: str, n_trials: int, n_null: int
) -> tuple[np.ndarray, np.ndarray]:
    """One p-value per trial, of a random query (no signal) in one of 24 random conditions,
    and the fraction of the null scores that are not 0 (where that p-value came from).

    Designs: ``pooled`` (null scores of every row of the group), ``sampled`` (of 4 rows
    per group), ``per_condition`` (the row's own null scores).
    """
    rng = np.random.default_rng(42)
    n_rows, n_cols = 24, 120
    values = rng.normal(size=(n_rows, n_cols)) * rng.gamma(2.0, size=(n_rows, 1))
    values[:8, 80:] = np.nan  # one dataset measuring fewer genes
    block = _block(values)
    groups = np.repeat(["a", "b", "c"], 8)
    strata = np.repeat([0, 1], [80, 40])  # random queries hit as many measured genes
    score = get_method(method).score
    p_out, nonzero = np.empty(n_trials), np.empty(n_trials)
    for t in range(n_trials):
        cols = rng.choice(n_cols, size=16, replace=False)
        q = _sets(cols[:8], cols[8:])
        nulls = random_queries(q, n=n_null, n_cols=n_cols, seed=t, strata=strata)
        row = t % n_rows
        if design == "sampled":
            at = null_rows(groups, per_group=4, seed=t)
            sub = _block(values[at])
            observed, null = score([q], block)[0], score(nulls, sub)
            p = empirical_p(observed, null, groups=groups, null_groups=groups[at])
            pool = null[:, groups[at] == groups[row]]
        else:
            scores = score([q, *nulls], block)
            observed, null = scores[0], scores[1:]
            pooled = design == "pooled"
            p = empirical_p(observed, null, groups=groups if pooled else None)
            pool = null[:, groups == groups[row]] if pooled else null[:, row]
        p_out[t], nonzero[t] = p[row], np.mean(pool != 0)
    return p_out, nonzero


@pytest.mark.parametrize(
    ("design", "n_null"), [("pooled", 10), ("sampled", 10), ("per_condition", 39)]
)
def test_random_queries_give_uniform_p_values(design: str, n_null: int) -> None:
    p, _ = _null_p_values("ks", design=design, n_trials=200, n_null=n_null)
    assert np.isfinite(p).all()
    if design == "per_condition":  # uniform on {1, ..., R + 1} / (R + 1): spread each level
        p = p - np.random.default_rng(0).random(len(p)) / (n_null + 1)
    ks = stats.kstest(p, "uniform")
    print(f"ks, {design}: KS D={ks.statistic:.3f} p={ks.pvalue:.3f}")
    assert ks.pvalue > 0.01


def test_wtcs_p_values_are_uniform_where_the_score_is_not_zero() -> None:
    """WTCS is 0 wherever ES_up and ES_down share a sign: those ties get p near 1
    (conservative); the other p-values are uniform on (0, fraction of nonzero nulls]."""
    p, nonzero = _null_p_values("wtcs", design="pooled", n_trials=250, n_null=10)
    tied = p > nonzero
    assert 0.2 < tied.mean() < 0.8  # a WTCS of 0 is common under the null
    ks = stats.kstest(p[~tied] / nonzero[~tied], "uniform")
    print(f"wtcs: {int((~tied).sum())} nonzero, KS D={ks.statistic:.3f} p={ks.pvalue:.3f}")
    assert ks.pvalue > 0.01


def test_null_rows_sample_each_group() -> None:
    groups = np.array(["x"] * 5 + ["y"] * 30 + ["z"] * 12)
    at = null_rows(groups, per_group=10, seed=1)
    assert np.all(np.diff(at) > 0)
    counts = pd.Series(groups[at]).value_counts().to_dict()
    assert counts == {"x": 5, "y": 10, "z": 10}
    np.testing.assert_array_equal(at, null_rows(groups, per_group=10, seed=1))
    assert not np.array_equal(at, null_rows(groups, per_group=10, seed=2))
    with pytest.raises(ValueError, match="per_group"):
        null_rows(groups, per_group=0, seed=0)


def test_empirical_p_with_null_on_other_rows() -> None:
    observed = np.array([0.5, 2.0, -1.0])
    null = np.array([[0.1, 3.0], [0.6, -0.2]])  # two null rows, of groups g and h
    p = empirical_p(observed, null, groups=["g", "g", "k"], null_groups=["g", "h"])
    # group g's pool {0.1, 0.6}: 1 >= 0.5, 0 >= 2; group k has no null → NaN
    np.testing.assert_allclose(p, [2 / 3, 1 / 3, np.nan])
    with pytest.raises(ValueError, match="null_groups needs groups"):
        empirical_p(observed, null, null_groups=["g", "h"])
    with pytest.raises(ValueError, match="one label per null column"):
        empirical_p(observed, null, groups=["g", "g", "k"], null_groups=["g"])


def test_a_planted_query_is_significant() -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(size=(40, 100))
    order = np.argsort(-values[7])
    q = _sets(order[:10], order[-10:])
    nulls = random_queries(q, n=50, n_cols=100, seed=0)
    scores = get_method("wtcs").score([q, *nulls], _block(values))
    p = empirical_p(scores[0], scores[1:], groups=np.zeros(40))
    assert p[7] == pytest.approx(1 / (50 * 40 + 1))
    assert fdr_bh(p)[7] < 0.05


def test_fdr_bh_equals_scipy() -> None:
    rng = np.random.default_rng(9)
    p = rng.random(200) ** 3
    np.testing.assert_allclose(fdr_bh(p), stats.false_discovery_control(p))
    with_nan = p.copy()
    with_nan[[3, 50]] = np.nan
    got = fdr_bh(with_nan)
    assert np.isnan(got[[3, 50]]).all()
    keep = np.isfinite(with_nan)
    np.testing.assert_allclose(got[keep], stats.false_discovery_control(with_nan[keep]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fdr_bh(np.array([0.5, 1.5]))


def test_ncs_hand_made() -> None:
    scores = np.array([0.4, 0.2, -0.3, 0.5, 0.0, np.nan, -0.1])
    groups = ["a", "a", "a", "b", "b", "b", "a"]
    # group a: positive mean 0.3, negative mean -0.2; group b: positive mean 0.5
    expected = [0.4 / 0.3, 0.2 / 0.3, -1.5, 1.0, 0.0, np.nan, -0.5]
    np.testing.assert_allclose(ncs(scores, groups=groups), expected)
    with pytest.raises(ValueError, match="one group label per score"):
        ncs(scores, groups=["a"])

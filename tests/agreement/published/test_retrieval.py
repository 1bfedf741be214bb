"""Retrieval as published (Table 9): rank kernels by hand, summary, a release-tree run."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from perturbridge.agreement.published import _kernels as k, read_release
from perturbridge.agreement.published.retrieval import (
    IDENTITY_COLUMNS,
    RetrievalOptions,
    auroc,
    best_positive_rank,
    expected_peer_metrics,
    min_ranks,
    nested_bca_interval,
    published_retrieval,
    random_null,
    retrieval_metrics,
    retrieval_summary,
    similarity_matrix,
)

# -- kernels, by hand ------------------------------------------------------------------------


def test_min_ranks_ties_share_the_smallest_rank():
    np.testing.assert_array_equal(min_ranks(np.array([0.9, 0.5, 0.9, 0.1])), [1, 3, 1, 4])


def test_single_positive_normalized_rank():
    # K = 4, the positive is third: 1 - (3 - 1)/(4 - 1) = 1/3
    best, norm = best_positive_rank(np.array([3.0, 2.0, 1.0, 0.0]), np.array([0, 0, 1, 0], bool))
    assert best == 3.0
    assert norm == pytest.approx(1 / 3)


def test_positive_tied_with_a_negative_takes_the_minimum_rank():
    m = retrieval_metrics(np.array([1.0, 1.0, 0.0]), np.array([False, True, False]))
    assert m["best_rank"] == 1.0
    assert m["normalized_rank"] == 1.0
    assert m["recall_at_1"] == 1.0
    assert m["auroc"] == pytest.approx(0.75)  # (½ for the tie + 1)/2


def test_multiple_positives_use_the_best_one():
    s = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    pos = np.array([False, False, True, False, True])
    m = retrieval_metrics(s, pos)
    assert (m["n_positives"], m["n_negatives"]) == (2, 3)
    assert m["best_rank"] == 3.0
    assert m["normalized_rank"] == pytest.approx(0.5)  # 1 - 2/4
    assert m["recall_at_1"] == 0.0
    assert m["auroc"] == pytest.approx(1 / 6)  # 3 beats 2 only; 1 beats nothing


def test_auroc_counts_near_ties_as_the_published_code_does():
    # a positive above a negative by <= 1e-12 scores 1 + 1/2
    assert auroc(np.array([1.0 + 5e-13, 1.0]), np.array([True, False])) == pytest.approx(1.5)
    assert math.isnan(auroc(np.array([1.0, 2.0]), np.array([True, True])))


@pytest.mark.parametrize(
    ("scores", "positive"),
    [
        ([1.0, 0.5, 0.2], [False, False, False]),  # no positive
        ([1.0, 0.5], [True, True]),  # no negative
        ([1.0, np.nan, 0.2], [True, False, False]),  # a non-finite score
    ],
)
def test_ineligible_queries_have_no_metrics(scores, positive):
    m = retrieval_metrics(np.array(scores), np.array(positive))
    for f in ("best_rank", "normalized_rank", "recall_at_1", "auroc"):
        assert math.isnan(m[f])


def test_fewer_than_two_candidates_have_no_rank():
    assert all(math.isnan(v) for v in best_positive_rank(np.array([1.0]), np.array([True])))


def test_random_null_expected_best_rank():
    null = random_null(5, 1)
    assert null["best_rank"] == 3.0
    assert null["normalized_rank"] == pytest.approx(0.5)
    assert null["recall_at_1"] == pytest.approx(0.2)
    assert null["auroc"] == 0.5
    assert math.isnan(random_null(3, 3)["normalized_rank"])


def test_expected_peer_metrics_inject_each_peer_alone():
    m = expected_peer_metrics(np.array([3.0, 2.0, 1.0]), np.array([2.5, 4.0]))
    # 2.5: one target above (rank 2, 1 - 1/3), two below; 4.0: rank 1, three below
    assert m["best_rank"] == pytest.approx(1.5)
    assert m["normalized_rank"] == pytest.approx(((1 - 1 / 3) + 1.0) / 2)
    assert m["recall_at_1"] == pytest.approx(0.5)
    assert m["auroc"] == pytest.approx((2 / 3 + 1.0) / 2)
    # and equal to the injected-candidate ranking done naively
    for p in (2.5, 4.0):
        naive = retrieval_metrics(np.array([3.0, 2.0, 1.0, p]), np.array([0, 0, 0, 1], bool))
        assert naive["normalized_rank"] == pytest.approx(
            expected_peer_metrics(np.array([3.0, 2.0, 1.0]), np.array([p]))["normalized_rank"]
        )


def test_similarity_matrix_against_naive_definitions():
    rng = np.random.default_rng(0)
    q, c = rng.normal(size=(3, 20)), rng.normal(size=(4, 20))
    c[1] = 0.0  # zero norm: invalid for cosine and Spearman, fine for L2
    c[2, 5] = np.nan  # non-finite: invalid everywhere
    l2, _, vc = similarity_matrix(q, c, "negative_l2")
    np.testing.assert_array_equal(vc, [True, True, False, True])
    np.testing.assert_allclose(l2[0, 3], -np.linalg.norm(q[0] - c[3]))
    assert np.isnan(l2[0, 2])
    cos, _, vc = similarity_matrix(q, c, "cosine")
    np.testing.assert_array_equal(vc, [True, False, False, True])
    np.testing.assert_allclose(
        cos[1, 0], q[1] @ c[0] / (np.linalg.norm(q[1]) * np.linalg.norm(c[0]))
    )
    sp, _, _ = similarity_matrix(q, c, "spearman")
    np.testing.assert_allclose(sp[2, 3], spearmanr(q[2], c[3]).statistic)
    with pytest.raises(ValueError, match="similarity must be"):
        similarity_matrix(q, c, "pearson")  # type: ignore[arg-type]


# -- nested summary --------------------------------------------------------------------------


def test_nested_mean_by_hand():
    # clusters × strata (A:ct1, A:ct2, B:ct1); outer = direction A, A, B
    sums = np.array([[1.0, 0.0, 3.0], [2.0, 4.0, 0.0]])
    counts = np.array([[1.0, 0.0, 1.0], [1.0, 2.0, 0.0]])
    iv = nested_bca_interval(sums, counts, np.array([0, 0, 1]), seed=1, n_boot=200)
    # direction A: mean(3/2, 4/2) = 1.75; direction B: 3; overall (1.75 + 3)/2
    assert iv.mean == pytest.approx((1.75 + 3.0) / 2)


def test_nested_interval_with_one_stratum_is_the_flat_interval():
    rng = np.random.default_rng(3)
    counts = rng.integers(1, 4, size=12).astype(float)
    sums = rng.normal(size=12) * counts
    flat = k.bca_interval(sums, counts, seed=99, n_boot=500)
    nested = nested_bca_interval(sums[:, None], counts[:, None], np.array([0]), seed=99, n_boot=500)
    assert nested.mean == pytest.approx(flat.mean)
    assert (nested.low, nested.high, nested.method) == pytest.approx(
        (flat.low, flat.high, flat.method)
    )


def test_nested_interval_needs_two_clusters():
    iv = nested_bca_interval(np.ones((1, 1)), np.ones((1, 1)), np.array([0]), seed=0)
    assert iv.method == "not_estimable"
    assert math.isnan(iv.mean)


# -- a release tree --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    from perturbridge.simulate.release import write_release_tree

    root = tmp_path_factory.mktemp("release")
    write_release_tree(root, seed=0)
    return read_release(root)


@pytest.fixture(scope="module")
def queries(release):
    return published_retrieval(release)


def test_release_tree_rows(queries):
    assert len(queries) > 0
    assert set(queries["similarity_metric"]) == {"negative_l2", "cosine", "spearman"}
    assert set(queries["direction"]) == {"A_to_B", "B_to_A"}
    assert (queries["retrieval_variant"] == "strict_matched_condition").all()
    assert (queries["n_positive_candidates"] >= 1).all()
    assert (queries["n_negative_candidates"] >= 1).all()
    k_ = queries["target_pool_size"].to_numpy(float)
    r = queries["observed_best_positive_rank"].to_numpy(float)
    np.testing.assert_allclose(
        queries["observed_normalized_best_positive_rank"], 1 - (r - 1) / (k_ - 1)
    )
    np.testing.assert_array_equal(queries["observed_recall_at_1"], (r == 1).astype(float))
    assert queries["observed_auroc"].between(0, 1.5).all()
    ordered = queries[IDENTITY_COLUMNS].astype(str)
    assert ordered.equals(ordered.sort_values(IDENTITY_COLUMNS).reset_index(drop=True))


def test_release_tree_records_queries_not_scored(queries):
    skipped = pd.DataFrame(queries.attrs["skipped"])
    assert not skipped.empty
    assert set(skipped["reason"]) <= {
        "no_strict_positive",
        "no_negative",
        "invalid_query_signature",
        "fewer_valid_target_candidates_than_minimum",
        "insufficient_candidates_or_unique_compounds",
        "fewer_than_two_fully_finite_shared_genes",
    }


def test_condition_weighting_counts_one_candidate_per_condition(release, queries):
    cond = published_retrieval(
        release, options=RetrievalOptions(weighting="condition", similarities=("cosine",))
    )
    assert (cond["n_query_samples"] == 1).all()
    sample = queries[queries["similarity_metric"] == "cosine"]
    assert cond["target_pool_size"].max() <= sample["target_pool_size"].max()


def test_summary_seeds_are_the_published_ones(queries):
    s = retrieval_summary(queries, n_boot=100)
    row = s[
        (s["metric"] == "observed_normalized_best_positive_rank")
        & (s["similarity_metric"] == "negative_l2")
    ].iloc[0]
    assert row["summary_level"] == "reviewer_l2_retrieval_dataset_pair"
    again = retrieval_summary(queries, n_boot=100)
    pd.testing.assert_frame_equal(s, again)
    # as published, the strict variant's random_* columns are empty (its floors are the
    # target_decoy_null_* columns), so only those rows are not estimable
    empty = s["metric"].isin(
        ["random_normalized_best_positive_rank", "random_recall_at_1", "random_auroc"]
    )
    assert (s.loc[empty, "ci_method"] == "not_estimable").all()
    assert s.loc[~empty, "ci_method"].isin(["bca", "percentile_fallback", "degenerate"]).all()
    decoy = s[s["metric"] == "target_decoy_null_normalized_best_positive_rank"]
    assert decoy["mean"].notna().all()


def test_unknown_options_are_rejected(release):
    with pytest.raises(ValueError, match="unknown similarities"):
        published_retrieval(release, options=RetrievalOptions(similarities=("pearson",)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weighting must be"):
        published_retrieval(release, options=RetrievalOptions(weighting="x"))  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="lack"):
        retrieval_summary(pd.DataFrame({"a": [1]}))

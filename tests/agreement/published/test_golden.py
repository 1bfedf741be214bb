"""The published profile against golden values produced by the published analysis code
itself on a seeded release tree (``golden/README.md`` says how): every per-pair and
per-condition value, every dataset-pair summary (Tables 4-6, both weightings) and every
dataset summary (Tables 7, 8, 10), means and BCa bounds, within 1e-9."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perturbridge.agreement.published import PublishedOptions, run_published
from perturbridge.simulate.release import write_release_tree

GOLDEN = Path(__file__).parent / "golden"
KEY = ["dataset_a", "dataset_b", "matched_condition_key"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_release_tree(tmp_path_factory.mktemp("golden") / "tree", seed=0)


@pytest.fixture(scope="module")
def result(tree):
    """One run of every part (cross-dataset pairs, replicates, retrieval): each part's
    tables do not depend on whether the others ran."""
    return run_published(tree, options=PublishedOptions(retrieval=True))


def test_per_pair_values_equal_the_published_code(result):
    want = pd.read_csv(
        GOLDEN / "pairs_condition.tsv.gz", sep="\t", dtype={"matched_condition_key": str}
    )
    got = result.pairs_condition
    merged = want.merge(got, on=KEY, how="outer", suffixes=("__want", ""), indicator=True)
    assert (merged["_merge"] == "both").all(), merged.loc[merged["_merge"] != "both", KEY]
    columns = [c for c in want.columns if c not in KEY]
    assert len(columns) > 150
    for col in columns:
        a = merged[col].to_numpy(dtype=float)
        b = merged[col + "__want"].to_numpy(dtype=float)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=col)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9, err_msg=col)


def test_dataset_pair_summaries_equal_the_published_code(result):
    want = pd.read_csv(GOLDEN / "summary.tsv.gz", sep="\t")
    keys = ["weighting", "summary_level", "dataset_a", "dataset_b", "metric"]
    merged = want.merge(result.summary, on=keys, how="left", suffixes=("__want", ""))
    missing = merged.loc[merged["mean"].isna() & merged["mean__want"].notna(), keys]
    assert missing.empty, missing
    assert len(merged) == len(want) == 282
    for col in ("mean", "ci_low", "ci_high"):
        np.testing.assert_allclose(
            merged[col].to_numpy(float), merged[col + "__want"].to_numpy(float), rtol=0, atol=1e-9
        )
    assert (merged["ci_method"] == merged["ci_method__want"]).all()
    assert (merged["n_compounds"] == merged["n_compounds__want"]).all()


REP_KEY = ["dataset_name", "condition_key"]


def _compare(want: pd.DataFrame, got: pd.DataFrame, key: list[str]) -> int:
    merged = want.merge(got, on=key, how="outer", suffixes=("__want", ""), indicator=True)
    assert (merged["_merge"] == "both").all(), merged.loc[merged["_merge"] != "both", key]
    columns = [c for c in want.columns if c not in key]
    for col in columns:
        a = merged[col].to_numpy(dtype=float)
        b = merged[col + "__want"].to_numpy(dtype=float)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=col)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9, err_msg=col)
    return len(columns)


@pytest.fixture(scope="module")
def replicates(tree, result):
    cap8 = run_published(tree, options=PublishedOptions(max_peers_replicate=8, n_boot=20))
    return result, cap8


def test_replicate_conditions_equal_the_published_code(replicates):
    res, cap8 = replicates
    want = pd.read_csv(
        GOLDEN / "replicate_conditions.tsv.gz", sep="\t", dtype={"condition_key": str}
    )
    assert _compare(want, res.replicate_conditions, REP_KEY) >= 40
    want8 = pd.read_csv(
        GOLDEN / "replicate_conditions_cap8.tsv.gz", sep="\t", dtype={"condition_key": str}
    )
    assert (cap8.replicate_conditions["n_peer_rows_total"] > 8).any()  # the cap binds
    assert _compare(want8, cap8.replicate_conditions, REP_KEY) >= 10


def test_replicate_tables_equal_the_published_code(replicates):
    res, _ = replicates
    want = pd.read_csv(GOLDEN / "replicate_summary.tsv.gz", sep="\t")
    keys = ["summary_level", "dataset_name", "metric"]
    merged = want.merge(res.replicate_summary, on=keys, how="left", suffixes=("__want", ""))
    assert len(merged) == len(want) == 72
    assert (merged["value_col"] == merged["value_col__want"]).all()
    for col in ("mean", "ci_low", "ci_high"):
        np.testing.assert_allclose(
            merged[col].to_numpy(float), merged[col + "__want"].to_numpy(float), rtol=0, atol=1e-9
        )
    assert (merged["ci_method"] == merged["ci_method__want"]).all()


QUERY_KEY = [
    "dataset_a", "dataset_b", "direction", "similarity_metric", "cell_type", "time_key",
    "query_pubchem_cid", "query_dose_key",
]  # fmt: skip


@pytest.fixture(scope="module")
def retrieval(result):
    return result


def test_retrieval_queries_equal_the_published_code(retrieval):
    want = pd.read_csv(
        GOLDEN / "retrieval_queries.tsv.gz", sep="\t", dtype={c: str for c in QUERY_KEY}
    )
    got = retrieval.retrieval.rename(columns={"n_query_samples": "n_samples"})
    assert _compare(want, got, QUERY_KEY) >= 60


def test_table9_equals_the_published_code(retrieval):
    want = pd.read_csv(GOLDEN / "retrieval_summary.tsv.gz", sep="\t")
    keys = ["summary_level", "dataset_a", "dataset_b", "similarity_metric", "metric"]
    merged = want.merge(retrieval.retrieval_summary, on=keys, how="left", suffixes=("__want", ""))
    assert len(merged) == len(want) == 234
    for col in ("mean", "ci_low", "ci_high"):
        np.testing.assert_allclose(
            merged[col].to_numpy(float), merged[col + "__want"].to_numpy(float), rtol=0, atol=1e-9
        )
    assert (merged["ci_method"] == merged["ci_method__want"]).all()

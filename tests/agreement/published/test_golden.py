"""The published profile against golden values produced by the published analysis code
itself on a seeded release tree (``golden/README.md`` says how): every per-pair value
and every dataset-pair summary (mean and BCa bounds, both weightings) within 1e-9."""

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
def result(tmp_path_factory):
    tree = write_release_tree(tmp_path_factory.mktemp("golden") / "tree", seed=0)
    return run_published(tree, options=PublishedOptions(replicates=False))


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

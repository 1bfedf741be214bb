"""Signatures and DE masks from a store; streaming z-score statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perturbridge.agreement.signatures import (
    de_mask,
    load_signatures,
    signatures_from_matrix,
    zscore_stats,
)
from perturbridge.compendium import Compendium

from ._stores import cross_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return cross_store(tmp_path_factory.mktemp("sig"))


def test_de_mask_rules():
    v = np.array([[0.5, -2.0, 3.0, np.nan], [1.0, 2.5, -0.1, 4.0]])
    p = np.array([[0.01, 0.01, 0.5, 0.01], [np.nan] * 4])
    got = de_mask(v, p, alpha=0.05)
    assert got[0].tolist() == [True, True, False, False]  # NaN value is never DE
    assert got[1].tolist() == [False, True, False, True]  # no p-values: |v| >= 2
    assert de_mask(v, p, lfc_min=1.0)[0].tolist() == [False, True, False, False]
    assert not de_mask(v, p, de_rule="pvalue")[1].any()
    with pytest.raises(ValueError, match="needs adjusted p-values"):
        de_mask(v, None, de_rule="pvalue")
    with pytest.raises(ValueError, match="de_rule must be one of"):
        de_mask(v, p, de_rule="x")  # type: ignore[arg-type]


def test_load_signatures_matches_effects(store):
    with Compendium.open(store) as comp:
        ids = comp.conditions(dataset="dsA", context="C1")["condition_id"].tolist()[:4]
        s = load_signatures(comp, ids)
        ref = comp.effects(ids, layer="logFC")
        p = comp.effects(ids, layer="adj.P.Value.within_one_contrast")
        sep = load_signatures(comp, ids, mode="separate")
    assert np.array_equal(s.x, np.asarray(ref.X), equal_nan=True)
    assert np.array_equal(s.de, np.asarray(p.X) < 0.05)
    assert s.obs["condition_id"].tolist() == ids
    assert len(sep) == 12 and set(sep.obs["condition_id"]) == set(ids)


def test_zscore_stats_streaming_equals_direct(store):
    with Compendium.open(store) as comp:
        conds = comp.conditions()
        conds = conds[conds["zarr_row_group"].notna()]
        st = zscore_stats(comp, conds, by="dataset_context", chunk_size=5)
        st1 = zscore_stats(comp, conds, by="dataset")
        assert zscore_stats(comp, conds, by="none") is None
        ids = conds[(conds["dataset"] == "dsB") & (conds["cell_context"] == "C2")]
        x = np.asarray(comp.effects(ids, layer="logFC").X, dtype=np.float64)
        s = load_signatures(comp, ids, zscore=st)
    mean, sd = x.mean(axis=0), x.std(axis=0, ddof=1)
    assert st.mean[("dsB", "C2")] == pytest.approx(mean, rel=1e-5)
    assert st.sd[("dsB", "C2")] == pytest.approx(sd, rel=1e-4)
    assert s.x == pytest.approx((x - mean) / sd, abs=1e-4)
    assert ("dsA",) in st1.mean
    with pytest.raises(ValueError, match="zscore must be one of"):
        zscore_stats(None, conds, by="gene")  # type: ignore[arg-type]


def test_signatures_from_matrix():
    x = np.array([[2.5, 0.0], [-1.0, -3.0]])
    obs = pd.DataFrame({"compound": ["a", "b"]}, index=["s1", "s2"])
    s = signatures_from_matrix(x, obs, z_min=2.0)
    assert s.de.tolist() == [[True, False], [False, True]]
    assert s.obs["index"].tolist() == ["s1", "s2"]
    with pytest.raises(ValueError, match="obs has 1 rows"):
        signatures_from_matrix(x, obs.iloc[:1])
    with pytest.raises(ValueError, match="de has shape"):
        signatures_from_matrix(x, obs, de=np.ones((2, 3), dtype=bool))


def test_rows_with_only_the_across_contrasts_p_value_use_it(tmp_path):
    """A release dataset with only adj.P.Value.across_all_contrasts gets its DE masks from
    that layer, not from the |value| fallback."""
    from perturbridge.agreement.signatures import load_signatures
    from perturbridge.compendium import import_release
    from perturbridge.simulate.release import write_release_tree

    tree = write_release_tree(tmp_path / "tree", seed=0)
    store = tmp_path / "store"
    import_release(tree, store)
    with Compendium.open(store) as comp:
        conds = comp.conditions(dataset="gamma")
        ids = conds["condition_id"].astype(str).tolist()[:20]
        sig = load_signatures(comp, ids, z_min=1e9)  # the value rule would call nothing DE
        across = comp.effects(ids, layer="adj.P.Value.across_all_contrasts").X
        within = comp.effects(ids, layer="adj.P.Value.within_one_contrast").X
    assert np.isnan(within).all()
    want = np.isfinite(sig.x) & np.isfinite(across) & (across < 0.05)
    assert want.any()
    np.testing.assert_array_equal(sig.de, want)

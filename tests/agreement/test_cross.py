"""Cross-dataset pairs, baselines (against naive loops), retrieval and summaries."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from perturbridge.agreement import CompareOptions
from perturbridge.agreement.cross import (
    CentroidSums,
    SignatureOptions,
    cross_pairs,
    peer_rows,
    peer_stats,
    summarize_cross,
)
from perturbridge.agreement.matching import match_conditions
from perturbridge.agreement.metrics import pair_metrics
from perturbridge.compendium import Compendium

from ._stores import cross_store

METRICS = ["deg_spearman", "direction", "spearman"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return cross_store(tmp_path_factory.mktemp("cross"))


@pytest.fixture(scope="module")
def computed(store):
    with Compendium.open(store) as comp:
        match = match_conditions(comp.conditions(), min_compounds=3)
        compare = CompareOptions(metrics=METRICS, max_peers=50, seed=3)
        pairs, ret = cross_pairs(comp, match, compare=compare)
        full = comp.effects(None, layer="logFC")
        adj = comp.effects(None, layer="adj.P.Value.within_one_contrast")
    return match, pairs, ret, full, adj


def _one(a, b, da, db):
    return {
        k: float(v[0])
        for k, v in pair_metrics(
            a[None], b[None], de_a=da[None], de_b=db[None], metrics=METRICS
        ).items()
    }


def test_baselines_match_naive_loops(computed):
    match, pairs, _, full, adj = computed
    x = pd.DataFrame(np.asarray(full.X, dtype=np.float64), index=full.obs["condition_id"])
    de = pd.DataFrame(np.asarray(adj.X) < 0.05, index=adj.obs["condition_id"])
    conds = match.conditions.set_index("condition_id")
    assert len(pairs) == 12
    for r in pairs.itertuples(index=False):
        a, b = x.loc[r.condition_a].to_numpy(), x.loc[r.condition_b].to_numpy()
        da, db = de.loc[r.condition_a].to_numpy(), de.loc[r.condition_b].to_numpy()
        obs = _one(a, b, da, db)
        # centroids: mean of the other compounds at the same dose and stratum
        for side, cid, dose in (
            ("a", r.condition_a, r.dose_a_uM),
            ("b", r.condition_b, r.dose_b_uM),
        ):
            ds = conds.loc[cid, "dataset"]
            same = conds[
                (conds["dataset"] == ds)
                & (conds["cell_context"] == r.cell_context)
                & (conds["pert_time_h"] == r.pert_time_h)
                & (conds["compound"] != r.compound)
            ]
            at = same[np.isclose(same["pert_dose_uM"], dose)]
            assert len(at)  # every dose has other compounds in this store
            cen = x.loc[at.index].to_numpy().mean(axis=0)
            ref = _one(cen, b, da, db) if side == "a" else _one(a, cen, da, db)
            col = "cross_centroid_a" if side == "a" else "cross_centroid_b"
            for m in METRICS:
                assert getattr(r, f"{m}__{col}") == pytest.approx(ref[m], abs=1e-5)
        assert r.centroid_dose_exact and r.cross_centroid_b_dose_exact
        # peers: all 5 other compounds of A in the stratum, nearest dose to a
        a_side = conds[
            (conds["dataset"] == "dsA")
            & (conds["cell_context"] == r.cell_context)
            & (conds["compound"] != r.compound)
        ]
        vals = {m: [] for m in METRICS}
        for _, g in a_side.groupby("compound"):
            d = np.abs(np.log10(g["pert_dose_uM"]) - np.log10(r.dose_a_uM))
            best = g.index[np.lexsort((g["pert_dose_uM"].to_numpy(), d.to_numpy()))[0]]
            v = _one(x.loc[best].to_numpy(), b, da, db)
            for m in METRICS:
                vals[m].append(v[m])
        for m in METRICS:
            pv = np.array(vals[m])
            assert getattr(r, m) == pytest.approx(obs[m], abs=1e-6)
            assert getattr(r, f"{m}__n_peers") == 5
            assert getattr(r, f"{m}__peer_mean") == pytest.approx(pv.mean(), abs=1e-5)
            assert getattr(r, f"{m}__peer_sd") == pytest.approx(pv.std(ddof=1), abs=1e-5)
            pct = (1 + (pv < obs[m]).sum()) / (len(pv) + 1)
            assert getattr(r, f"{m}__peer_pct") == pytest.approx(pct)


def test_pair_columns_and_counts(computed):
    _, pairs, _, _, _ = computed
    for col in [
        "dataset_a",
        "dataset_b",
        "cell_context",
        "pert_time_h",
        "compound",
        "condition_a",
        "condition_b",
        "dose_a_uM",
        "dose_b_uM",
        "dlog10_dose",
        "n_genes",
        "n_de_a",
        "n_de_b",
        "deg_spearman__peer_pct",
    ]:
        assert col in pairs.columns
    assert (pairs["n_genes"] == 30).all()
    # the shared effect makes matched pairs agree far above their peers
    assert (pairs["spearman"] > pairs["spearman__peer_mean"]).all()


def test_retrieval_rows(computed):
    _, _, ret, _, _ = computed
    # C1: 12 conditions (6 compounds x 2 doses) per side, C2: 6 per side; both directions
    assert len(ret) == 2 * (12 + 6)
    c1 = ret[(ret["cell_context"] == "C1") & (ret["dataset_query"] == "dsA")]
    assert (c1["n_candidates"] == 12).all() and (c1["n_positives"] == 2).all()
    assert np.allclose(c1["norm_rank_floor"], 1 / 3) and np.allclose(c1["recall1_floor"], 2 / 12)
    assert (ret["norm_rank"] == ret["best_rank"] / (ret["n_candidates"] + 1)).all()


def test_centroid_sums_fallback():
    x = np.array([[1.0, np.nan], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    comp = np.array(["a", "b", "b", "c"])
    dose = np.array([1.0, 1.0, 2.0, 3.0])
    cs = CentroidSums(x, comp, dose)
    cen, exact = cs.of_rows(np.array([0, 3, 2]))
    # row 0 (a @1): other compounds at dose 1 -> b's row 1
    assert exact[0] and cen[0].tolist() == [3.0, 4.0]
    # row 3 (c @3): no other compound at dose 3 -> all other compounds of the stratum
    assert not exact[1] and cen[1].tolist() == pytest.approx([3.0, 5.0])
    # row 2 (b @2): none at dose 2 -> a and c rows: gene 1 has only c's value
    assert not exact[2] and cen[2].tolist() == pytest.approx([4.0, 8.0])


def test_peer_rows_cap_and_determinism():
    comp = np.repeat([f"k{i}" for i in range(8)], 3)
    ld = np.tile([-1.0, 0.0, 1.0], 8)
    q_comp = np.array(["k0", "k1", "k1"])
    q_ld = np.array([0.1, -2.0, 0.6])
    keys = ["p0", "p1", "p2"]
    p = peer_rows(comp, ld, q_comp, q_ld, keys, max_peers=3, seed=1)
    assert p.shape == (3, 4)
    for row, qc, qd in zip(p, q_comp, q_ld, strict=True):
        got = row[row >= 0]
        assert len(got) == 3 and qc not in comp[got]
        assert len(set(comp[got])) == 3
        assert np.allclose(ld[got], {0.1: 0.0, -2.0: -1.0, 0.6: 1.0}[qd])
    again = peer_rows(comp, ld, q_comp[::-1], q_ld[::-1], keys[::-1], max_peers=3, seed=1)
    assert (again[::-1] == p).all()  # a pair's peers do not depend on the other pairs
    assert not (peer_rows(comp, ld, q_comp, q_ld, keys, max_peers=3, seed=2) == p).all()


def test_peer_stats():
    peers = np.array([[0.1, 0.2, np.nan], [np.nan, np.nan, np.nan]])
    st = peer_stats(peers, np.array([0.15, 0.3]))
    assert st["peer_mean"][0] == pytest.approx(0.15)
    assert st["peer_pct"][0] == pytest.approx(2 / 3)
    assert np.isnan(st["peer_mean"][1]) and st["n_peers"].tolist() == [2, 0]


def test_summary_columns(computed):
    _, pairs, ret, _, _ = computed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = summarize_cross(pairs, ret, metrics=METRICS, n_boot=100, seed=0)
    assert list(s.columns[:5]) == ["dataset_a", "dataset_b", "level", "cell_context", "direction"]
    alls = s[(s["level"] == "all") & (s["metric"] == "spearman")]
    assert set(alls["baseline"]) == {"cross_centroid_a", "cross_centroid_b", "peer_mean"}
    row = alls[alls["baseline"] == "peer_mean"].iloc[0]
    # nested mean by hand: mean over the 2 strata of the mean over compounds
    per = pairs.groupby(["cell_context", "compound"])["spearman"].mean()
    assert row["observed"] == pytest.approx(per.groupby(level=0).mean().mean())
    assert row["observed_low"] <= row["observed"] <= row["observed_high"]
    assert row["n_pairs"] == 12 and row["n_compounds"] == 6 and row["n_strata"] == 2
    assert set(s["cell_context"]) == {"*", "C1", "C2"}
    r = s[(s["metric"] == "retrieval_recall1") & (s["level"] == "all")]
    assert set(r["direction"]) == {"a_to_b", "b_to_a", "both"}
    assert (r["baseline"] == "random_floor").all()


def test_zscored_signatures_change_values(store):
    from perturbridge.agreement.signatures import zscore_stats

    with Compendium.open(store) as comp:
        conds = comp.conditions()
        match = match_conditions(conds, min_compounds=3)
        stats = zscore_stats(comp, conds[conds["zarr_row_group"].notna()], by="dataset")
        z, _ = cross_pairs(
            comp,
            match,
            compare=CompareOptions(metrics=["spearman"]),
            with_retrieval=False,
            signatures=SignatureOptions(zscore=stats),
        )
        raw, _ = cross_pairs(
            comp, match, compare=CompareOptions(metrics=["spearman"]), with_retrieval=False
        )
    assert len(z) == len(raw) and not np.allclose(z["spearman"], raw["spearman"])
    assert (z["n_de_a"] == raw["n_de_a"]).all()  # DE masks are not changed

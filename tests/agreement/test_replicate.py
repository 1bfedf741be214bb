"""Replicate agreement within a dataset; the generic signature entry; dose series."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from perturbridge.agreement import CompareOptions, PairingOptions
from perturbridge.agreement.metrics import pair_metrics
from perturbridge.agreement.replicate import (
    _within_pairs,
    dose_series_agreement,
    replicate_agreement,
    signature_agreement,
)
from perturbridge.compendium import Compendium

from ._stores import cross_store

METRICS = ["deg_spearman", "spearman"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return cross_store(tmp_path_factory.mktemp("rep"))


def test_within_pairs_cap_is_seeded():
    groups = np.array(["a"] * 6 + ["b"] * 2 + ["c"])
    ids = np.array([f"r{i}" for i in range(9)])
    i, j = _within_pairs(groups, ids, max_pairs=None, seed=0)
    assert len(i) == 15 + 1 and (groups[i] == groups[j]).all() and (i < j).all()
    i2, _j2 = _within_pairs(groups, ids, max_pairs=4, seed=0)
    assert (groups[i2] == "a").sum() == 4 and (groups[i2] == "b").sum() == 1
    i3, _ = _within_pairs(groups, ids, max_pairs=4, seed=0)
    assert (i3 == i2).all()


def test_replicate_agreement_against_naive(store):
    with Compendium.open(store) as comp:
        compare = CompareOptions(metrics=METRICS, n_boot=100, seed=0)
        rep, summary = replicate_agreement(comp, compare=compare)
        sep = comp.effects(None, layer="logFC", mode="separate")
        adj = comp.effects(None, layer="adj.P.Value.within_one_contrast", mode="separate")
    # dsA has 3 replicates for each of its 13 + 7 conditions with a usable dose/identity
    assert set(rep["dataset"]) == {"dsA"}
    assert (rep["n_replicates"] == 3).all() and (rep["n_pairs"] == 3).all()
    row = rep[rep["condition"] == "dsA:C1_K2_10"].iloc[0]
    obs = sep.obs.reset_index()
    rows = np.flatnonzero(obs["condition_id"] == "dsA:C1_K2_10")
    x, de = np.asarray(sep.X, dtype=np.float64), np.asarray(adj.X) < 0.05
    vals = []
    for a, b in itertools.combinations(rows, 2):
        vals.append(
            pair_metrics(
                x[a][None], x[b][None], de_a=de[a][None], de_b=de[b][None], metrics=["spearman"]
            )["spearman"][0]
        )
    assert row["spearman"] == pytest.approx(np.mean(vals), abs=1e-6)
    # centroid: other compounds' replicate signatures at C1, dose 10
    other = np.flatnonzero(
        obs["condition_id"].str.startswith("dsA:C1_K").to_numpy()
        & obs["condition_id"].str.endswith("_10").to_numpy()
        & ~obs["condition_id"].str.startswith("dsA:C1_K2_").to_numpy()
    )
    cen = x[other].mean(axis=0)
    ref = []
    for a, b in itertools.combinations(rows, 2):
        ref.append(
            pair_metrics(
                cen[None], x[b][None], de_a=de[a][None], de_b=de[b][None], metrics=["spearman"]
            )["spearman"][0]
        )
    assert row["spearman__centroid"] == pytest.approx(np.mean(ref), abs=1e-5)
    assert row["spearman__n_peers"] == 6  # K0..K5 but K2, plus the unresolved compound
    # summaries: dsA has rows; dsB has no separate-mode effects
    a = summary[(summary["dataset"] == "dsA") & (summary["level"] == "all")]
    assert set(a["baseline"]) == {"centroid", "peer_mean"}
    assert (a["observed"] > a["baseline_value"] + 0.5).all()
    b = summary[summary["dataset"] == "dsB"]
    assert b["n_conditions"].tolist() == [0]
    assert b["reason"].tolist() == ["no separate-mode effects"]


def test_signature_agreement_generic():
    rng = np.random.default_rng(0)
    effect = {c: rng.normal(0, 2, 50) for c in "abcdef"}
    rows, mats = [], []
    for cell in ("X", "Y", "Z"):
        for c in "abcdef":
            rows.append({"compound": c, "cell": cell, "time": 6.0})
            mats.append(effect[c] + rng.normal(0, 1, 50))
    obs = pd.DataFrame(rows, index=[f"s{i}" for i in range(len(rows))])
    res = signature_agreement(
        np.array(mats),
        obs,
        pairing=PairingOptions(strata=["cell", "time"]),
        compare=CompareOptions(metrics=METRICS, n_boot=200, seed=0),
    )
    # pairs: same compound, different cell: 6 compounds x 3 cell pairs
    assert len(res.pairs) == 18
    assert (res.pairs["cell_a"] != res.pairs["cell_b"]).all()
    assert (res.pairs["spearman__n_peers"] == 5).all()
    s = res.summary.set_index("metric")
    assert s.loc["spearman", "delta_low"] > 0.3
    assert s.loc["spearman", "n_compounds"] == 6
    adj = signature_agreement(
        np.array(mats),
        obs,
        pairing=PairingOptions(strata=["time"], adjacent="cell"),
        compare=CompareOptions(metrics=METRICS, n_boot=0),
    )
    assert len(adj.pairs) == 0  # "cell" is not numeric: no levels
    with pytest.raises(KeyError, match="obs lacks the columns"):
        signature_agreement(np.array(mats), obs, pairing=PairingOptions(strata=["dose"]))


def test_dose_series(store):
    with Compendium.open(store) as comp:
        res = dose_series_agreement(comp, compare=CompareOptions(metrics=["spearman"], n_boot=50))
    # adjacent doses exist only in C1 (1 -> 10 in dsA, 1.2 -> 100 in dsB): 6 each
    assert len(res.pairs) == 12
    assert (res.pairs["pert_dose_uM_a"] < res.pairs["pert_dose_uM_b"]).all()
    assert set(res.summary["dataset"]) == {"dsA", "dsB"}

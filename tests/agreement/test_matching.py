"""Cross-dataset matching: mutual nearest doses, thresholds, strata, exclusions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perturbridge.agreement.matching import (
    compound_identity,
    match_conditions,
    snap_values,
    usable_conditions,
)


def _conds(rows: list[tuple]) -> pd.DataFrame:
    """Conditions from ``(dataset, context, inchikey, dose, time)`` rows."""
    df = pd.DataFrame(
        rows,
        columns=["dataset", "cell_context", "compound_inchikey", "pert_dose_uM", "pert_time_h"],
    )
    df["compound_parent_inchikey"] = None
    df["pubchem_cid"] = pd.array([None] * len(df), dtype="Int64")
    df["condition_id"] = [
        f"{r.dataset}:{r.cell_context}_{r.compound_inchikey}_{r.pert_dose_uM}_{i}"
        for i, r in enumerate(df.itertuples())
    ]
    return df


def test_mutual_nearest_with_ties_and_threshold():
    # A doses 1, 10; B doses 1.2, 100 -> A1~B1.2 mutual; A10's nearest is B1.2: none
    # A 3.162 (10^0.5) is equidistant from B 1 and B 10: the tie goes to the lower dose
    rows = [
        ("A", "c", "K1", 1.0, 24),
        ("A", "c", "K1", 10.0, 24),
        ("B", "c", "K1", 1.2, 24),
        ("B", "c", "K1", 100.0, 24),
        ("A", "c", "K2", 10**0.5, 24),
        ("B", "c", "K2", 1.0, 24),
        ("B", "c", "K2", 10.0, 24),
        ("A", "c", "K3", 1.0, 24),
        ("B", "c", "K3", 20.0, 24),  # mutual but 20x apart
    ]
    res = match_conditions(_conds(rows), min_compounds=1)
    got = res.pairs[["compound", "dose_a_uM", "dose_b_uM"]].to_numpy().tolist()
    assert got == [["K1", 1.0, 1.2], ["K2", 10**0.5, 1.0]]
    assert res.pairs["dlog10_dose"].tolist() == pytest.approx([np.log10(1.2), -0.5])
    ex = res.excluded.set_index(["dataset", "reason"])["n_conditions"]
    assert ex[("A", "matched")] == 2
    assert ex[("A", "not_mutual_nearest")] == 1  # A K1 10
    assert ex[("A", "dose_too_far")] == 1  # A K3 1 vs B 20
    assert ex[("B", "not_mutual_nearest")] == 2  # B K1 100, B K2 10
    # every usable condition of each side is accounted for once per pair
    assert ex.loc["A"].sum() == 4 and ex.loc["B"].sum() == 5
    # a looser threshold keeps K3
    res2 = match_conditions(_conds(rows), min_compounds=1, max_log10_dose=1.5)
    assert sorted(res2.pairs["compound"]) == ["K1", "K2", "K3"]


def test_min_compounds_and_strata():
    rows = [("A", "c1", f"K{k}", 1.0, 24) for k in range(3)]
    rows += [("B", "c1", f"K{k}", 1.0, 24) for k in range(3)]
    rows += [("A", "c2", "K0", 1.0, 24), ("B", "c2", "K0", 1.0, 24)]
    rows += [("A", "c1", "K0", 1.0, 6), ("B", "c1", "K0", 1.0, 6.000001)]  # same time (tol)
    res = match_conditions(_conds(rows), min_compounds=2)
    st = res.strata.set_index(["cell_context", "pert_time_h"])
    assert st.loc[("c1", 24.0), "kept"] and st.loc[("c1", 24.0), "n_compounds"] == 3
    assert not st.loc[("c2", 24.0), "kept"]
    assert st.loc[("c2", 24.0), "reason"] == "fewer than 2 matched compounds"
    assert not st.loc[("c1", 6.0), "kept"]
    assert set(res.pairs["cell_context"]) == {"c1"} and len(res.pairs) == 3
    ex = res.excluded.set_index(["dataset", "reason"])["n_conditions"]
    assert ex[("A", "stratum_too_few_compounds")] == 2


def test_exclusions_with_reasons():
    rows = [
        ("A", "c", "K1", 1.0, 24),
        ("B", "c", "K1", 1.0, 24),
        ("A", "c", "K1", 0.0, 24),  # vehicle
        ("A", "c", "K1", np.nan, 24),
        ("A", "c", None, 1.0, 24),
        ("B", "c", "K1", -1.0, 24),
        ("B", "c", "K9", 1.0, 24),  # no counterpart
    ]
    res = match_conditions(_conds(rows), min_compounds=1)
    ex = res.excluded
    un = ex[ex["status"] == "unusable"].set_index(["dataset", "reason"])["n_conditions"]
    assert un.to_dict() == {
        ("A", "missing_dose"): 1,
        ("A", "missing_identity"): 1,
        ("A", "non_positive_dose"): 1,
        ("B", "non_positive_dose"): 1,
    }
    nm = ex[(ex["dataset"] == "B") & (ex["reason"] == "no_counterpart")]
    assert nm["n_conditions"].tolist() == [1]
    assert len(res.pairs) == 1


def test_identity_options():
    df = _conds([("A", "c", "IK-A", 1.0, 24), ("B", "c", "IK-B", 1.0, 24)])
    df["compound_parent_inchikey"] = ["P", "P"]
    df["pubchem_cid"] = pd.array([5, 5], dtype="Int64")
    assert len(match_conditions(df, identity="parent", min_compounds=1).pairs) == 1
    assert len(match_conditions(df, identity="inchikey", min_compounds=1).pairs) == 0
    assert len(match_conditions(df, identity="cid", min_compounds=1).pairs) == 1
    assert compound_identity(df, "cid").tolist() == ["CID:5", "CID:5"]
    with pytest.raises(ValueError, match="identity must be one of"):
        match_conditions(df, identity="smiles")  # type: ignore[arg-type]


def test_errors_and_datasets_filter():
    df = _conds([("A", "c", "K", 1.0, 24), ("B", "c", "K", 1.0, 24), ("C", "c", "K", 1.0, 24)])
    res = match_conditions(df, min_compounds=1, datasets=["A", "C"])
    assert res.pairs[["dataset_a", "dataset_b"]].drop_duplicates().values.tolist() == [["A", "C"]]
    with pytest.raises(KeyError, match="have no conditions"):
        match_conditions(df, datasets=["Z"])
    with pytest.raises(ValueError, match="max_log10_dose"):
        match_conditions(df, max_log10_dose=-1)
    with pytest.raises(ValueError, match="min_compounds"):
        match_conditions(df, min_compounds=0)
    with pytest.raises(KeyError, match="lack the columns"):
        usable_conditions(df.drop(columns=["pert_time_h"]))


def test_snap_values():
    out = snap_values(np.array([24.0, 24.0001, 6.0, np.nan, 24.00002]))
    assert out[0] == out[4] == 24.0 and out[1] == 24.0001 and np.isnan(out[3])


def test_large_match_is_vectorised():
    rng = np.random.default_rng(0)
    n = 20_000
    df = pd.DataFrame(
        {
            "dataset": rng.choice(["A", "B", "C"], n),
            "cell_context": rng.choice(["c1", "c2", "c3"], n),
            "compound_inchikey": [f"K{k}" for k in rng.integers(0, 800, n)],
            "pert_dose_uM": 10.0 ** rng.integers(-2, 2, n),
            "pert_time_h": rng.choice([6.0, 24.0], n),
        }
    )
    df["compound_parent_inchikey"] = None
    df["pubchem_cid"] = pd.array([None] * n, dtype="Int64")
    df["condition_id"] = [f"x{i}" for i in range(n)]
    res = match_conditions(df)
    assert len(res.pairs) > 1000
    # each condition is in at most one pair per dataset pair
    for side in ("condition_a", "condition_b"):
        assert not res.pairs.duplicated(["dataset_a", "dataset_b", side]).any()
    total = res.excluded.groupby(["dataset", "other_dataset"])["n_conditions"].sum()
    per_ds = df["dataset"].value_counts()
    for (ds, other), v in total.items():
        if other != "*":
            assert v == per_ds[ds]


def test_identity_falls_back_to_the_pubchem_cid():
    conds = pd.DataFrame(
        {
            "compound_parent_inchikey": [None, None, "PARENT-K", None, None],
            "compound_inchikey": ["IK-A", " ", "IK-C", None, None],
            "pubchem_cid": pd.array([11, 2244, 33, None, 5090], dtype="Int64"),
        }
    )
    assert compound_identity(conds, "parent").tolist() == [
        "IK-A",
        "cid:2244",
        "PARENT-K",
        None,
        "cid:5090",
    ]
    assert compound_identity(conds, "inchikey").tolist() == [
        "IK-A",
        "cid:2244",
        "IK-C",
        None,
        "cid:5090",
    ]
    assert compound_identity(conds, "cid").tolist() == [
        "CID:11",
        "CID:2244",
        "CID:33",
        None,
        "CID:5090",
    ]
    # without a pubchem_cid column there is nothing to fall back to
    no_cid = conds.drop(columns="pubchem_cid")
    assert compound_identity(no_cid, "parent").tolist() == ["IK-A", None, "PARENT-K", None, None]


def test_conditions_keyed_by_cid_alone_match():
    rows = [("A", "c", None, 1.0, 24), ("B", "c", None, 1.2, 24), ("B", "c", None, 3.0, 24)]
    conds = _conds(rows)
    conds["pubchem_cid"] = pd.array([2244, 2244, None], dtype="Int64")
    usable, unusable = usable_conditions(conds)
    assert usable["compound"].tolist() == ["cid:2244", "cid:2244"]
    assert unusable["reason"].tolist() == ["missing_identity"]
    res = match_conditions(conds, min_compounds=1)
    assert res.pairs[["compound", "dose_a_uM", "dose_b_uM"]].to_numpy().tolist() == [
        ["cid:2244", 1.0, 1.2]
    ]

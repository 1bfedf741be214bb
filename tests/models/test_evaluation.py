"""evaluate on planted arrays: tables by hand, summaries and tests against numpy/scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from perturbridge.models.evaluation import (
    EvaluationOptions,
    combine_seeds,
    evaluate,
    read_evaluation,
)

from ._arrays import ArrayData, ArraySplit, conditions

SMILES = {"benzene": "c1ccccc1", "toluene": "Cc1ccccc1", "hexane": "CCCCCC", "heptane": "CCCCCCC"}


def _setup(n_genes: int = 6):
    rng = np.random.default_rng(0)
    recs = []
    for ds in ("A", "B"):
        for ctx in ("x", "y"):
            for cpd in SMILES:
                recs.append((ds, ctx, cpd, 1.0, 24.0))
    conds = conditions(recs)
    vals = rng.normal(size=(len(conds), n_genes))
    vals[conds["dataset"] == "B", 0] = np.nan  # dataset B does not measure gene 0
    test = np.flatnonzero((conds["dataset"] == "A") & conds["compound"].isin(["heptane"]))
    train = np.setdiff1d(np.arange(len(conds)), test)
    return ArrayData(conds, vals), ArraySplit({"train": train, "test": test}, target="A")


def test_tables_with_baselines_always_present():
    data, split = _setup()
    obs = data.values(split.rows(data, "test"))
    res = evaluate({"perfect": obs.copy()}, data, split, options=EvaluationOptions(k=3))
    pooled = res.pooled.set_index("model")
    assert list(pooled.index) == ["zero", "train_mean", "nearest_tanimoto", "perfect"]
    assert pooled.loc["perfect", "mrrmse"] == 0.0
    assert pooled.loc["perfect", "pearson"] == pytest.approx(1.0)
    # zero: the mean over conditions of the root mean square of the observed signature
    want = np.mean(np.sqrt(np.nanmean(obs.astype(float) ** 2, axis=1)))
    assert pooled.loc["zero", "mrrmse"] == pytest.approx(want, rel=1e-6)
    # train_mean: mean of A × context over the training compounds, by hand
    train = data.conditions.iloc[split.rows(data, "train")]
    for i, r in enumerate(split.rows(data, "test")):
        ctx = data.conditions.loc[r, "context"]
        rows = train.index[(train["dataset"] == "A") & (train["context"] == ctx)]
        mean = data._values[rows].mean(axis=0)
        pc = res.per_condition.query("model == 'train_mean'").iloc[i]
        assert pc["rmse"] == pytest.approx(np.sqrt(np.mean((mean - obs[i]) ** 2)), rel=1e-5)
    # without structures the Tanimoto baseline is there, with a note and no numbers
    assert pooled.loc["nearest_tanimoto", "note"] == "needs compound structures"
    assert pooled.loc["train_mean", "note"] == "dataset × context: 2"
    assert pooled.loc["zero", "note"] == "zero: 2"
    assert np.isnan(pooled.loc["nearest_tanimoto", "mrrmse"])
    # every baseline is in every table; one that could not run has no numbers
    assert set(res.per_dataset_context["model"]) == set(pooled.index)
    assert set(res.per_condition["model"]) == set(pooled.index)
    nt = res.per_dataset_context.query("model == 'nearest_tanimoto'")
    assert nt["mrrmse"].isna().all() and nt["n_conditions"].sum() == len(obs)
    assert res.ceiling["reason"].tolist() == ["no store given"]


def test_tanimoto_baseline_with_structures():
    data, split = _setup()
    structures = pd.DataFrame({"compound": list(SMILES), "smiles": list(SMILES.values())})
    res = evaluate({}, data, split, structures=structures)
    # heptane's nearest training compound in A × ctx is hexane: its values exactly
    rows = split.rows(data, "test")
    obs = data.values(rows).astype(float)
    hexane = [
        data.conditions.index[
            (data.conditions[["dataset", "context", "compound"]] == ["A", c, "hexane"]).all(axis=1)
        ][0]
        for c in data.conditions.loc[rows, "context"]
    ]
    want = np.mean(np.sqrt(np.mean((data._values[hexane] - obs) ** 2, axis=1)))
    got = res.pooled.set_index("model").loc["nearest_tanimoto"]
    assert got["mrrmse"] == pytest.approx(want, rel=1e-6)
    assert "same dataset × context × time × dose: 2" in got["note"]


def test_seeds_summary_and_paired_tests_match_scipy():
    data, split = _setup()
    obs = data.values(split.rows(data, "test"))
    rng = np.random.default_rng(1)
    good = [obs + rng.normal(scale=0.1, size=obs.shape) for _ in range(4)]
    bad = [obs + rng.normal(scale=1.0, size=obs.shape) for _ in range(4)]
    res = evaluate(
        {"good": good, "bad": bad},
        data,
        split,
        options=EvaluationOptions(baselines=("zero",), reference="good"),
    )
    per_seed = res.pooled.set_index(["model", "seed"])["mrrmse"]
    g = per_seed.loc["good"].to_numpy()
    b = per_seed.loc["bad"].to_numpy()
    summ = res.summary.set_index("model")
    assert summ.loc["good", "n_seeds"] == 4
    assert summ.loc["good", "mrrmse_mean"] == pytest.approx(g.mean())
    assert summ.loc["good", "mrrmse_sd"] == pytest.approx(g.std(ddof=1))
    assert np.isnan(summ.loc["zero", "mrrmse_sd"])
    t = res.tests.set_index("model_b").loc["bad"]
    ref = stats.ttest_rel(g, b)
    assert t["t"] == pytest.approx(ref.statistic)
    assert t["p_seeds"] == pytest.approx(ref.pvalue)
    assert t["mean_diff"] < 0
    # across conditions: the seed-mean row-wise RMSE of each model, Wilcoxon
    pc = res.per_condition.groupby(["model", "condition_id"])["rmse"].mean()
    want = stats.wilcoxon(pc.loc["good"].to_numpy() - pc.loc["bad"].to_numpy()).pvalue
    assert t["p_conditions"] == pytest.approx(want)
    # a deterministic baseline is the same value for every seed
    z = res.tests.set_index("model_b").loc["zero"]
    zero = per_seed.loc["zero"].iloc[0]
    assert z["p_seeds"] == pytest.approx(stats.ttest_1samp(g - zero, 0.0).pvalue)


def test_combine_seeds_over_splits():
    data, split = _setup()
    obs = data.values(split.rows(data, "test"))
    rs = [
        evaluate({"m": obs * s}, data, split, options=EvaluationOptions(baselines=("zero",)))
        for s in (0.5, 0.8, 0.9)
    ]
    res = combine_seeds(rs)
    m = res.summary.set_index("model")
    vals = [r.pooled.set_index("model").loc["m", "mrrmse"] for r in rs]
    assert m.loc["m", "n_seeds"] == 3 and m.loc["zero", "n_seeds"] == 3
    assert m.loc["m", "mrrmse_mean"] == pytest.approx(np.mean(vals))
    assert len(res.tests) == 1


def test_save_and_read(tmp_path):
    data, split = _setup()
    obs = data.values(split.rows(data, "test"))
    res = evaluate({"m": obs}, data, split)
    res.save(tmp_path / "ev")
    back = read_evaluation(tmp_path / "ev")
    pd.testing.assert_frame_equal(back.summary, res.summary, check_dtype=False)
    assert back.meta["n_rows"] == len(obs)
    with pytest.raises(FileNotFoundError, match="not an evaluation folder"):
        read_evaluation(tmp_path)


def test_errors():
    data, split = _setup()
    with pytest.raises(ValueError, match="are baseline names"):
        evaluate({"zero": np.zeros((2, 6))}, data, split)
    with pytest.raises(ValueError, match=r"model 'm': predictions have shape \(2, 5\)"):
        evaluate({"m": np.zeros((2, 5))}, data, split)
    with pytest.raises(TypeError, match="non-empty list"):
        evaluate({"m": []}, data, split)
    with pytest.raises(KeyError, match="unknown baseline"):
        EvaluationOptions(baselines=("mean",))
    with pytest.raises(ValueError, match="no 'val' rows"):
        evaluate({}, data, split, options=EvaluationOptions(part="val"))
    with pytest.raises(KeyError, match="reference model 'x'"):
        evaluate({}, data, split, options=EvaluationOptions(reference="x"))


@pytest.mark.slow
def test_ceiling_is_the_replicate_agreement_of_the_evaluated_target_conditions(tmp_path):
    from agreement._stores import cross_store
    from perturbridge.agreement import replicate_agreement
    from perturbridge.compendium import Compendium
    from perturbridge.models.data import load_training_data
    from perturbridge.models.splits import SplitOptions, make_split

    store = cross_store(tmp_path)
    data = load_training_data(store)
    split = make_split(
        data, kind="compound", options=SplitOptions(seed=0, target_dataset="dsA",
                                                    test_fraction=0.4)
    )  # fmt: skip
    rows = split.rows(data, "test")
    with Compendium.open(store) as comp:
        res = evaluate({"m": data.values(rows)}, data, split, store=comp)
        # independently: the replicate agreement of exactly the test conditions of dsA
        cat = comp.conditions()
        ids = set(data.conditions.loc[rows, "condition_id"])
        _, want = replicate_agreement(comp, cat[cat["condition_id"].isin(ids)])
    assert set(res.ceiling["dataset"]) == {"dsA"}
    assert (res.ceiling["n_conditions"] > 0).all()
    assert res.ceiling["n_conditions"].max() == len(rows)
    pd.testing.assert_frame_equal(
        res.ceiling.reset_index(drop=True),
        want[want["dataset"] == "dsA"].reset_index(drop=True),
    )

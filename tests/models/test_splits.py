"""Splits (perturbridge.models.splits): the four kinds checked against their definitions
on hand-made condition tables, saving and loading, and the errors."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from perturbridge.models.data import TrainingData
from perturbridge.models.splits import (
    SPLIT_KINDS,
    Split,
    SplitOptions,
    describe_split_kinds,
    load_split,
    make_split,
    save_split,
)


class Zeros:
    def __init__(self):
        self.description = {"kind": "memory", "path": "memory"}

    def read(self, rows):
        return np.zeros((len(rows), 2), dtype=np.float32)

    def close(self):
        pass


def make_data(keys, *, doses=(1.0, 10.0), replicates: int = 1) -> TrainingData:
    """Training data with one condition per (dataset, context, compound) key and dose."""
    rows = []
    for (d, k, c), x in itertools.product(keys, doses):
        for _ in range(replicates):
            rows.append(
                {"condition_id": f"{d}:{k}:{c}:{x}", "dataset": d, "context": k, "compound": c,
                 "log10_dose_uM": np.log10(x), "time_h": 24.0}
            )  # fmt: skip
    genes = pd.DataFrame({"symbol": ["A", "B"]}, index=pd.Index(["g1", "g2"], name="gene_id"))
    return TrainingData(pd.DataFrame(rows), genes, source=Zeros())


def grid(datasets, contexts, compounds):
    return list(itertools.product(datasets, contexts, compounds))


def parts_frame(split: Split, data: TrainingData) -> pd.DataFrame:
    frame = data.conditions[["condition_id", "dataset", "context", "compound"]].copy()
    frame["part"] = ""
    for p in ("train", "val", "test"):
        frame.loc[split.rows(data, p), "part"] = p
    assert (frame["part"] != "").all()  # every row in exactly one part
    return frame


# ------------------------------------------------------------------ pair


def test_pair_holdout_definition():
    comps = [f"c{i:02d}" for i in range(40)]
    data = make_data(grid(["d1", "d2"], ["k1", "k2"], comps))
    split = make_split(data, kind="pair", options=SplitOptions(seed=3))
    f = parts_frame(split, data)
    pairs = f.drop_duplicates(["dataset", "context", "compound"])
    # every condition of a pair is in the pair's part
    assert f.groupby(["dataset", "context", "compound"])["part"].nunique().max() == 1
    held = pairs[pairs["part"] != "train"]
    assert len(held) == round(0.3 * len(pairs))  # 30 % of the pairs, swaps keep the count
    train_comps = set(pairs.loc[pairs["part"] == "train", "compound"])
    assert set(held["compound"]) <= train_comps  # no held-out compound unseen in training
    val_c = set(held.loc[held["part"] == "val", "compound"])
    test_c = set(held.loc[held["part"] == "test", "compound"])
    assert val_c and test_c and not val_c & test_c
    assert split.manifest["details"]["n_pairs_held_out"] == len(held)
    assert sorted(split.compounds("test")) == sorted(test_c)


def test_pair_swaps_compounds_that_would_be_unseen():
    # half the compounds have a single pair: drawing it would leave the compound unseen
    keys = grid(["d1"], ["k1", "k2", "k3"], [f"m{i}" for i in range(20)])
    keys += [("d1", "k1", f"s{i}") for i in range(20)]
    data = make_data(keys, doses=(1.0,))
    for seed in range(5):
        split = make_split(data, kind="pair", options=SplitOptions(seed=seed))
        f = parts_frame(split, data)
        assert not f.loc[f["part"] != "train", "compound"].str.startswith("s").any()
        assert (f["part"] != "train").sum() == round(0.3 * len(keys))
    assert split.manifest["details"]["swaps"] > 0


def test_pair_holdout_of_few_compounds_still_has_val_and_test():
    data = make_data(grid(["d1"], ["k1", "k2"], ["a", "b", "c", "d"]), doses=(1.0,))
    for seed in range(20):  # 2 or 3 held-out pairs: both parts get a compound every time
        f = parts_frame(make_split(data, kind="pair", options=SplitOptions(seed=seed)), data)
        assert {"val", "test"} <= set(f["part"])


# ------------------------------------------------------------------ compound


def test_compound_holdout_within_the_target_dataset():
    comps = [f"c{i:02d}" for i in range(30)]
    data = make_data(grid(["target", "other"], ["k1"], comps))
    split = make_split(data, kind="compound", options=SplitOptions(target_dataset="target", seed=1))
    f = parts_frame(split, data)
    assert (f.loc[f["dataset"] == "other", "part"] == "train").all()
    t = f[f["dataset"] == "target"]
    assert t.groupby("compound")["part"].nunique().max() == 1
    per = t.drop_duplicates("compound")["part"].value_counts()
    assert per["test"] == 3 and per["val"] == 3  # 10 % of 30 compounds each
    held = set(t.loc[t["part"] != "train", "compound"])
    # the held-out compounds stay in training in the other dataset
    assert held <= set(f.loc[f["part"] == "train", "compound"])
    assert split.manifest["counts"]["per_dataset"]["other"] == {"train": 60, "val": 0, "test": 0}
    small = make_data(grid(["target"], ["k1"], ["a", "b", "c"]))
    s = make_split(small, kind="compound", options=SplitOptions(target_dataset="target"))
    assert sorted(parts_frame(s, small).drop_duplicates("compound")["part"]) == [
        "test", "train", "val"
    ]  # fmt: skip


def test_compound_holdout_errors():
    data = make_data(grid(["a", "b"], ["k"], ["x", "y", "z"]))
    with pytest.raises(ValueError, match=r"needs target_dataset \(one of \['a', 'b'\]\)"):
        make_split(data, kind="compound")
    with pytest.raises(KeyError, match="target dataset 'c' is not in the data"):
        make_split(data, kind="compound", options=SplitOptions(target_dataset="c"))
    tiny = make_data(grid(["a"], ["k"], ["x", "y"]))
    with pytest.raises(ValueError, match="has 2 compounds"):
        make_split(tiny, kind="compound", options=SplitOptions(target_dataset="a"))


# ------------------------------------------------------------------ molecule


def test_molecule_holdout_definition():
    shared = [f"s{i:02d}" for i in range(30)]
    keys = grid(["big1", "big2"], ["k"], shared)  # 30 shared molecules: the fraction rule
    keys += grid(["big1"], ["k"], [f"own{i}" for i in range(10)])  # never eligible
    keys += grid(["small"], ["k"], shared[:6] + [f"sm{i}" for i in range(14)])  # 6 eligible
    data = make_data(keys)
    split = make_split(data, kind="molecule", options=SplitOptions(seed=4))
    f = parts_frame(split, data)
    held = f[f["part"] != "train"]
    assert not held["compound"].str.startswith(("own", "sm")).any()  # only shared molecules
    by_ds = split.manifest["details"]["per_dataset"]
    assert by_ds["big1"]["rule"] == "fraction" and by_ds["small"]["rule"] == "sample_balanced"
    assert by_ds["big1"]["eligible"] == 30 and by_ds["small"]["eligible"] == 6
    # a molecule is never held out in every dataset it occurs in
    occurs = f.groupby("compound")["dataset"].nunique()
    held_in = held.drop_duplicates(["dataset", "compound"]).groupby("compound").size()
    assert (held_in < occurs.reindex(held_in.index)).all()
    # sample-balanced: the small dataset holds out about 10 % of its conditions per part
    small = f[f["dataset"] == "small"]["part"].value_counts()
    assert small["test"] >= 0.1 * 40 and small["val"] >= 0.1 * 40
    assert small["test"] <= 0.1 * 40 + 2 and small["val"] <= 0.1 * 40 + 2
    # the fraction rule: 3 + 3 of 30 eligible, less any released to training
    released = split.manifest["details"]["released_to_train"]
    n_big1 = held[held["dataset"] == "big1"]["compound"].nunique()
    assert n_big1 == 6 - sum(1 for d, _ in released if d == "big1")


# ------------------------------------------------------------------ context


def test_context_holdout():
    keys = grid(["d1", "d2"], ["k1", "k2", "k3", "k4"], ["a", "b", "c"])
    data = make_data(keys)
    split = make_split(data, kind="context", options=SplitOptions(contexts=("k2",), seed=2))
    f = parts_frame(split, data)
    assert set(f.loc[f["part"] == "test", "context"]) == {"k2"}
    assert (f.loc[f["context"] == "k2", "part"] == "test").all()
    val_k = set(f.loc[f["part"] == "val", "context"])
    assert len(val_k) == 1 and "k2" not in val_k
    assert f.groupby("context")["part"].nunique().max() == 1
    drawn = make_split(data, kind="context", options=SplitOptions(seed=2))
    assert len(set(parts_frame(drawn, data).query("part == 'test'")["context"])) == 1
    two = make_data(grid(["d1"], ["k1", "k2"], [f"c{i}" for i in range(20)]))
    s2 = make_split(two, kind="context", options=SplitOptions(contexts=("k1",)))
    f2 = parts_frame(s2, two)
    assert set(f2.loc[f2["part"] == "val", "context"]) == {"k2"}  # in-distribution val
    assert "in-distribution" in s2.manifest["details"]["validation"]
    with pytest.raises(KeyError, match=r"contexts \['nope'\] are not in the data"):
        make_split(data, kind="context", options=SplitOptions(contexts=("nope",)))
    with pytest.raises(ValueError, match="at least 2 contexts"):
        make_split(make_data(grid(["d"], ["k"], ["a", "b"])), kind="context")


# ------------------------------------------------------------------ all kinds


@pytest.mark.parametrize("kind", SPLIT_KINDS)
def test_seeded_and_replicates_stay_together(kind):
    keys = grid(["d1", "d2"], ["k1", "k2", "k3"], [f"c{i:02d}" for i in range(25)])
    data = make_data(keys, replicates=2)
    opts = SplitOptions(target_dataset="d1", seed=7)
    a = make_split(data, kind=kind, options=opts)
    b = make_split(data, kind=kind, options=opts)
    c = make_split(data, kind=kind, options=SplitOptions(target_dataset="d1", seed=8))
    pd.testing.assert_series_equal(a.assignment, b.assignment)
    assert not a.assignment.equals(c.assignment)
    f = parts_frame(a, data)
    assert f.groupby("condition_id")["part"].nunique().max() == 1
    assert a.manifest["counts"]["total"] == a.assignment.value_counts().to_dict() | {
        p: 0 for p in ("train", "val", "test") if p not in a.assignment.values
    }
    assert kind in describe_split_kinds()


def test_save_and_load(tmp_path):
    data = make_data(grid(["d1"], ["k1"], [f"c{i}" for i in range(20)]))
    split = make_split(data, kind="compound", options=SplitOptions(target_dataset="d1"))
    path = save_split(split, tmp_path / "split")
    back = load_split(path)
    pd.testing.assert_series_equal(back.assignment, split.assignment)
    assert back.manifest == json.loads(json.dumps(split.manifest))
    assert back.manifest["source"] == {"kind": "memory", "path": "memory"}
    assert back.manifest["created_by"].startswith("perturbridge ")
    np.testing.assert_array_equal(back.rows(data, "test"), split.rows(data, "test"))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_split(split, path)
    save_split(split, path, overwrite=True)
    # a changed assignment no longer matches the manifest's counts
    frame = pd.read_parquet(path / "assignment.parquet")
    frame.loc[frame["part"] == "train", "part"] = "test"
    frame.to_parquet(path / "assignment.parquet", index=False)
    with pytest.raises(ValueError, match="does not match the manifest's counts"):
        load_split(path)
    frame["part"] = "holdout"
    frame.to_parquet(path / "assignment.parquet", index=False)
    with pytest.raises(ValueError, match=r"parts other than .*'holdout'"):
        load_split(path)
    (path / "manifest.json").write_text("{}")
    with pytest.raises(ValueError, match="not a split manifest"):
        load_split(path)
    (path / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"\['manifest.json'\] missing"):
        load_split(path)
    with pytest.raises(FileNotFoundError, match="no split folder"):
        load_split(tmp_path / "nothing")


def test_errors(caplog):
    data = make_data(grid(["d1"], ["k1"], ["a", "b", "c"]))
    with pytest.raises(KeyError, match="unknown split kind 'random'"):
        make_split(data, kind="random")
    split = make_split(data, kind="compound", options=SplitOptions(target_dataset="d1"))
    with pytest.raises(KeyError, match="unknown part 'holdout'"):
        split.rows(data, "holdout")
    other = make_data(grid(["x"], ["k1"], ["a"]))
    with pytest.raises(ValueError, match="none of the 2 conditions"):
        split.rows(other, "train")
    more = make_data(grid(["d1", "x"], ["k1"], ["a", "b", "c"]))
    with caplog.at_level("WARNING", logger="perturbridge.models.splits"):
        rows = split.rows(more, "train")
    assert "6 of 12 conditions of the data are not in this compound split" in caplog.text
    assert set(more.conditions["dataset"].to_numpy()[rows]) == {"d1"}
    with pytest.raises(ValueError, match="leaves 'val' empty"):
        make_split(make_data(grid(["d1"], ["k1"], ["a", "b"])), kind="pair")
    for kwargs, message in (
        ({"test_fraction": 0.0}, "test_fraction must be between 0 and 1"),
        ({"test_fraction": 0.6, "val_fraction": 0.5}, "must be < 1"),
        ({"min_shared": 0}, "min_shared must be >= 1"),
        ({"contexts": "k1"}, "tuple of names"),
    ):
        with pytest.raises(ValueError, match=message):
            SplitOptions(**kwargs)

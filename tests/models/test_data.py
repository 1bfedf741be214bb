"""Training data (perturbridge.models.data): vocabularies, standardizers, rows and values
from a store, bounded streaming batches, structures tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem

from perturbridge.compendium import Compendium
from perturbridge.models.data import (
    DataOptions,
    Standardizer,
    TrainingData,
    Vocabulary,
    compound_keys,
    load_training_data,
    read_structures,
)
from perturbridge.simulate import PretrainingDesign, simulate_pretraining_store

DESIGN = PretrainingDesign(
    n_datasets=3, n_compounds=25, n_contexts=2, n_genes=40, doses_uM=(1.0, 10.0), seed=2
)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulate_pretraining_store(tmp_path_factory.mktemp("data") / "store", design=DESIGN)


@pytest.fixture(scope="module")
def data(sim):
    return load_training_data(sim.store, options=DataOptions(block_conditions=32))


# ------------------------------------------------------------------ encoders


def test_vocabulary_encodes_unknown_as_zero_and_round_trips():
    v = Vocabulary.build("compound", ["b", "a", "b", "c"])
    assert v.tokens == ("<unk>", "a", "b", "c")
    assert len(v) == 4
    np.testing.assert_array_equal(v.encode(["c", "a", "zzz"]), [3, 1, 0])
    assert v.encode(np.array(["b"], dtype=object)).dtype == np.int64
    assert list(v.decode(np.array([2, 0]))) == ["b", "<unk>"]
    assert Vocabulary.from_dict(json.loads(json.dumps(v.to_dict()))) == v
    ordered = Vocabulary.build("gene", ["g2", "g1"], sort=False)
    assert ordered.tokens == ("<unk>", "g2", "g1")


@pytest.mark.parametrize(
    ("tokens", "message"),
    [(("a", "b"), "first token must be '<unk>'"), (("<unk>", "a", "a"), "repeats tokens")],
)
def test_vocabulary_errors(tokens, message):
    with pytest.raises(ValueError, match=message):
        Vocabulary("x", tokens)
    with pytest.raises(ValueError, match="needs keys"):
        Vocabulary.from_dict({"name": "x"})


def test_standardizer():
    x = np.array([1.0, 2.0, 3.0, np.nan])
    s = Standardizer.fit(x)
    assert (s.mean, s.sd) == pytest.approx((2.0, np.sqrt(2 / 3)))
    np.testing.assert_allclose(s.apply(np.array([2.0, 3.0])), [0.0, 1 / np.sqrt(2 / 3)], rtol=1e-6)
    np.testing.assert_allclose(s.invert(s.apply(x[:3])), x[:3], rtol=1e-6)
    const = Standardizer.fit(np.array([24.0, 24.0]))
    assert const.sd == 0
    np.testing.assert_array_equal(const.apply(np.array([24.0, 25.0])), [0.0, 1.0])  # sd 0 -> 1
    assert Standardizer.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="no finite values"):
        Standardizer.fit(np.array([np.nan]))
    with pytest.raises(ValueError, match="finite sd >= 0"):
        Standardizer(0.0, -1.0)


# ------------------------------------------------------------------ rows


def test_rows_follow_the_store_catalog(sim, data):
    with Compendium.open(sim.store) as comp:
        cond = comp.conditions()
    assert len(data) == len(cond)
    assert set(data.conditions["condition_id"]) == set(cond["condition_id"])
    c = data.conditions
    # the compound key is the parent InChIKey, also for the salt rows of the third dataset
    assert set(c["compound"]) == set(sim.truth["compounds"])
    salt = c[c["compound_inchikey"] != c["compound"]]
    assert len(salt) > 0 and set(salt["dataset"]) == {"sim_c"}
    np.testing.assert_allclose(c["log10_dose_uM"], np.log10(c["dose_uM"]))
    assert list(data.genes.index) == list(sim.truth["genes"])
    assert data.vocab["gene"].tokens[1:] == tuple(sim.truth["genes"])
    assert data.vocab["dataset"].tokens == ("<unk>", "sim_a", "sim_b", "sim_c")
    # dose standardized over the rows: doses 1 and 10 µM in equal numbers -> +-1
    assert data.scalers["log10_dose"].mean == pytest.approx(0.5)
    assert data.scalers["time"].sd == 0
    assert data.source["kind"] == "store"
    assert data.source["build_key"] == Compendium.open(sim.store).manifest["build_key"]


def test_values_equal_the_store(sim, data):
    rows = np.array([5, 0, 77, 5, len(data) - 1])
    ids = data.conditions["condition_id"].to_numpy()[rows]
    with Compendium.open(sim.store) as comp:
        expected = np.asarray(comp.effects([*ids[:3], ids[4]]).X)[[0, 1, 2, 0, 3]]
    got = data.values(rows)
    assert got.dtype == np.float32 and got.shape == (5, DESIGN.n_genes)
    np.testing.assert_array_equal(got, expected)
    b = data.vocab["dataset"].encode(["sim_b"])[0]
    assert np.isnan(data.values(np.flatnonzero(data.codes("dataset") == b)[:3])).any()


class CountingSource:
    def __init__(self, values):
        self.values = values
        self.description = {"kind": "memory"}
        self.reads: list[int] = []

    def read(self, rows):
        self.reads.append(len(rows))
        return self.values[rows]

    def close(self):
        pass


def _small(n: int = 50, n_genes: int = 3, block: int = 8):
    cond = pd.DataFrame(
        {
            "condition_id": [f"c{i}" for i in range(n)],
            "dataset": ["d1", "d2"] * (n // 2),
            "context": "k",
            "compound": [f"m{i % 7}" for i in range(n)],
            "log10_dose_uM": np.log10(np.tile([0.1, 1.0], n // 2)),
            "time_h": 24.0,
        }
    )
    values = np.arange(n * n_genes, dtype=np.float32).reshape(n, n_genes)
    genes = pd.DataFrame(
        {"symbol": [f"S{g}" for g in range(n_genes)]},
        index=pd.Index([f"G{g}" for g in range(n_genes)], name="gene_id"),
    )
    src = CountingSource(values)
    return TrainingData(cond, genes, source=src, block_conditions=block), src, values


def test_batches_cover_rows_once_in_bounded_blocks():
    data, src, values = _small(block=8)
    rows = np.arange(3, 50)
    batches = list(data.batches(rows, batch_size=4, shuffle=True, seed=1))
    seen = np.concatenate([b.rows for b in batches])
    assert sorted(seen) == list(rows)
    assert not np.array_equal(seen, rows)  # shuffled
    assert max(src.reads) <= 8  # never more than one block read at a time
    for b in batches:
        np.testing.assert_array_equal(b.values, values[b.rows])
        np.testing.assert_array_equal(b.dataset, data.vocab["dataset"].encode(
            data.conditions["dataset"].to_numpy()[b.rows]))  # fmt: skip
        np.testing.assert_allclose(b.log10_dose, np.where(b.rows % 2, 1.0, -1.0))
        assert b.time.dtype == np.float32 and (b.time == 0).all()
    again = [b.rows for b in data.batches(rows, batch_size=4, shuffle=True, seed=1)]
    other = [b.rows for b in data.batches(rows, batch_size=4, shuffle=True, seed=2)]
    assert all(np.array_equal(a, b.rows) for a, b in zip(again, batches, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(other, again, strict=True))
    plain = list(data.batches(rows, batch_size=5, shuffle=False))
    assert [len(b) for b in plain] == [5] * 9 + [2]
    np.testing.assert_array_equal(np.concatenate([b.rows for b in plain]), rows)


def test_bad_rows_and_tables():
    data, _, _ = _small()
    with pytest.raises(IndexError, match="out of range"):
        data.values(np.array([0, 50]))
    with pytest.raises(TypeError, match="integers"):
        data.values(np.array([0.5]))
    with pytest.raises(ValueError, match="batch_size"):
        next(data.batches(np.arange(3), batch_size=0, shuffle=False))
    with pytest.raises(ValueError, match=r"lacks columns \['compound'\]"):
        TrainingData(data.conditions.drop(columns="compound"), data.genes, source=data._source)


def test_options(sim, data):
    only = load_training_data(sim.store, options=DataOptions(datasets=("sim_b",)))
    assert set(only.conditions["dataset"]) == {"sim_b"}
    few = load_training_data(sim.store, options=DataOptions(genes=("PTG3", "PTG00001")))
    assert list(few.genes.index) == ["PTG00001", "PTG00003"]  # by id and by symbol
    np.testing.assert_array_equal(few.values(np.arange(4)), data.values(np.arange(4))[:, [0, 2]])
    mem = load_training_data(sim.store, options=DataOptions(in_memory=True, block_conditions=7))
    np.testing.assert_array_equal(
        mem.values(np.arange(len(mem))), data.values(np.arange(len(data)))
    )
    assert mem.source["in_memory"] is True
    with pytest.raises(KeyError, match=r"datasets \['nope'\] have no group-mode"):
        load_training_data(sim.store, options=DataOptions(datasets=("nope",)))
    with pytest.raises(KeyError, match=r"not readout genes.*'BOGUS'"):
        load_training_data(sim.store, options=DataOptions(genes=("BOGUS",)))
    with pytest.raises(KeyError, match="no separate-mode effects"):
        load_training_data(sim.store, options=DataOptions(mode="separate"))
    with pytest.raises(TypeError, match="tuple of names"):
        DataOptions(datasets="sim_a")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="block_conditions"):
        DataOptions(block_conditions=0)


def test_not_a_store(tmp_path):
    with pytest.raises(FileNotFoundError, match="no store or shards folder"):
        load_training_data(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="neither a compendium store"):
        load_training_data(tmp_path)


def test_with_vocab_aligns_genes_and_codes(data, tmp_path):
    genes = ["PTG00003", "NOTHERE", "PTG00001"]
    vocab = dict(data.vocab)
    vocab["gene"] = Vocabulary("gene", ("<unk>", *genes))
    vocab["compound"] = Vocabulary.build("compound", list(data.vocab["compound"].tokens[1:6]))
    scalers = {"log10_dose": Standardizer(0.0, 1.0), "time": Standardizer(12.0, 6.0)}
    other = data.with_vocab(vocab, scalers)
    rows = np.arange(6)
    v = other.values(rows)
    full = data.values(rows)
    np.testing.assert_array_equal(v[:, 0], full[:, 2])
    assert np.isnan(v[:, 1]).all()
    np.testing.assert_array_equal(v[:, 2], full[:, 0])
    b = next(other.batches(rows, batch_size=6, shuffle=False))
    assert (b.time == 2.0).all()  # (24 - 12) / 6
    known = data.conditions["compound"].isin(vocab["compound"].tokens).to_numpy()[rows]
    assert ((b.compound > 0) == known).all()
    # save and load: the same encoders
    path = data.save_vocab(tmp_path / "vocab.json")
    v2, s2 = TrainingData.load_vocab(path)
    assert v2 == data.vocab and s2 == data.scalers
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a vocabulary file"):
        TrainingData.load_vocab(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="none of the 1 genes"):
        data.with_vocab({**vocab, "gene": Vocabulary("gene", ("<unk>", "X"))}, scalers)


def test_compound_key_fallbacks():
    frame = pd.DataFrame(
        {
            "dataset": ["d"] * 4,
            "compound_parent_inchikey": ["PARENT", None, None, ""],
            "compound_inchikey": ["KEY", "KEY2", None, None],
            "pubchem_cid": pd.array([1, 2, 3, pd.NA], dtype="Int64"),
            "compound_id_source": [None, None, None, "BRD-1"],
            "perturbagen": ["a", "b", "c", "d"],
        }
    )
    assert list(compound_keys(frame)) == ["PARENT", "KEY2", "CID:3", "d:BRD-1"]


def test_vehicle_and_unusable_rows_are_dropped_with_reasons():
    from perturbridge.models.data import _finish_conditions

    cond = pd.DataFrame(
        {
            "condition_id": list("abcde"),
            "dataset": "d",
            "perturbagen": ["x", "DMSO", "y", "z", "w"],
            "dose_uM": [1.0, 0.1, 0.0, np.nan, 1.0],
            "time_h": [24.0, 24.0, 24.0, 24.0, np.nan],
        }
    )
    kept, dropped = _finish_conditions(cond.copy(), include_controls=False)
    assert list(kept["condition_id"]) == ["a"]
    assert dict(zip(dropped["condition_id"], dropped["reason"], strict=True)) == {
        "b": "vehicle_condition", "c": "vehicle_condition", "d": "no_positive_dose",
        "e": "no_time",
    }  # fmt: skip
    kept, _ = _finish_conditions(cond.copy(), include_controls=True)
    assert list(kept["condition_id"]) == ["a", "b", "c"]
    assert np.isnan(kept["log10_dose_uM"].iloc[2]) and kept["is_control"].tolist() == [0, 1, 1]


# ------------------------------------------------------------------ structures


def test_read_structures_formats_and_matching(tmp_path, data):
    first = data.vocab["compound"].tokens[1]
    row = data.conditions[data.conditions["compound"] == first].iloc[0]
    table = pd.DataFrame(
        {
            "compound": [first, None, None],
            "pubchem_cid": ["", str(int(data.conditions["pubchem_cid"].iloc[-1])), ""],
            "Name": ["", "", "aspirin"],
            "SMILES": ["CCO", "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O"],
        }
    )
    table.to_csv(tmp_path / "s.csv", index=False)
    table.to_csv(tmp_path / "s.tsv", index=False, sep="\t")
    a = read_structures(tmp_path / "s.csv")
    b = read_structures(tmp_path / "s.tsv")
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["compound", "inchikey", "pubchem_cid", "name", "smiles"]
    assert a["inchikey"].iloc[1] == Chem.MolToInchiKey(Chem.MolFromSmiles("c1ccccc1"))
    assert a["compound"].iloc[1] == a["inchikey"].iloc[1]  # no compound: the InChIKey
    a.to_parquet(tmp_path / "s.parquet")
    pd.testing.assert_frame_equal(read_structures(tmp_path / "s.parquet"), a)
    smiles = data.smiles(a)
    assert smiles[first] == "CCO"  # by compound key
    last = data.conditions["compound"].iloc[-1]
    assert smiles[last] == "c1ccccc1" or last == first  # by PubChem CID
    assert smiles.notna().sum() == len({first, last})
    assert row["compound"] == first


def test_read_structures_errors(tmp_path):
    (tmp_path / "none.csv").write_text("smiles\nCCO\n")
    with pytest.raises(ValueError, match="needs a 'smiles' column and one of"):
        read_structures(tmp_path / "none.csv")
    (tmp_path / "bad.csv").write_text("name,smiles\na,CCO\nb,C1CC\nc,xyz\n")
    with pytest.raises(ValueError, match=r"2 SMILES do not parse.*row 3: 'C1CC'; row 4: 'xyz'"):
        read_structures(tmp_path / "bad.csv")
    (tmp_path / "cid.csv").write_text("pubchem_cid,smiles\n1.5,CCO\n")
    with pytest.raises(ValueError, match=r"not integers: \['1\.5'\]"):
        read_structures(tmp_path / "cid.csv")
    with pytest.raises(FileNotFoundError, match="no structures file"):
        read_structures(tmp_path / "missing.csv")


# ------------------------------------------------------------------ shards


@pytest.fixture(scope="module")
def shards(sim, tmp_path_factory):
    from perturbridge.compendium import export_shards

    out = tmp_path_factory.mktemp("shards") / "shards"
    export_shards(sim.store, out, rows_per_shard=777)  # conditions straddle shard ends
    return out


def _by_key(d: TrainingData) -> pd.Series:
    c = d.conditions
    key = (
        c["dataset"]
        + "|"
        + c["context"]
        + "|"
        + c["compound"]
        + "|"
        + c["dose_uM"].map("{:g}".format)
    )
    return pd.Series(np.arange(len(c)), index=key.to_numpy())


def test_shards_read_the_same_values_as_the_store(data, shards):
    sd = load_training_data(shards)
    assert sd.source["kind"] == "shards" and sd.source["build_key"] == data.source["build_key"]
    assert len(sd) == len(data)
    assert sorted(sd.genes.index) == sorted(data.genes.index)
    store_pos, shard_pos = _by_key(data), _by_key(sd)
    assert set(store_pos.index) == set(shard_pos.index)
    rows = shard_pos[store_pos.index].to_numpy()
    cols = [list(sd.genes.index).index(g) for g in data.genes.index]
    got = sd.values(rows)[:, cols]
    np.testing.assert_array_equal(got, data.values(np.arange(len(data))))
    # the values live in a memory-mapped file unless asked to stay in memory
    assert isinstance(sd._source.values, np.memmap)
    mem = load_training_data(shards, options=DataOptions(in_memory=True))
    assert not isinstance(mem._source.values, np.memmap)
    np.testing.assert_array_equal(mem.values(np.arange(len(mem))), sd.values(np.arange(len(sd))))
    b = next(sd.batches(np.arange(len(sd)), batch_size=50, shuffle=True, seed=0))
    np.testing.assert_array_equal(b.values, sd.values(b.rows))


def test_shards_options_and_errors(shards, tmp_path):
    import shutil

    only = load_training_data(shards, options=DataOptions(datasets=("sim_b",), genes=("PTG00002",)))
    assert set(only.conditions["dataset"]) == {"sim_b"} and list(only.genes.index) == ["PTG00002"]
    with pytest.raises(KeyError, match=r"datasets \['zz'\] are not in the shards"):
        load_training_data(shards, options=DataOptions(datasets=("zz",)))
    with pytest.raises(KeyError, match="shards hold gene ids only"):
        load_training_data(shards, options=DataOptions(genes=("PTG2",)))
    with pytest.raises(ValueError, match="holds the layer 'logFC', the options ask for 't'"):
        load_training_data(shards, options=DataOptions(layer="t"))
    copy = tmp_path / "copy"
    shutil.copytree(shards, copy)
    manifest = json.loads((copy / "_manifest.json").read_text())
    manifest["mode"] = "separate"
    (copy / "_manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="separate-mode shards"):
        load_training_data(copy, options=DataOptions(mode="separate"))
    # the same condition and gene twice (as in a separate-mode export) is an error
    manifest["mode"] = "group"
    manifest["shards"] = [*manifest["shards"], manifest["shards"][0]]
    (copy / "_manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="more than one value for condition"):
        load_training_data(copy)
    manifest["shards"] = [*manifest["shards"], "part-99999.parquet"]
    (copy / "_manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FileNotFoundError, match=r"missing: \['part-99999.parquet'\]"):
        load_training_data(copy)
    (copy / "_manifest.json").write_text(json.dumps({"kind": "other"}))
    with pytest.raises(ValueError, match="not a training-shards manifest"):
        load_training_data(copy)


# ------------------------------------------------------------------ the package


def test_data_and_splits_load_without_torch():
    import subprocess
    import sys

    code = (
        "import sys, perturbridge.models as m, perturbridge.models.data, "
        "perturbridge.models.splits\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert m.make_split is perturbridge.models.splits.make_split\n"
        "assert 'train' in dir(m)\n"
        "try:\n    m.no_such_name\nexcept AttributeError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "has no attribute 'no_such_name'" in out.stdout


@pytest.mark.slow  # a separate-mode release import (about 5 s on a busy machine)
def test_separate_mode_rows_are_replicate_contrasts(tmp_path):
    from perturbridge.models.splits import SplitOptions, make_split
    from perturbridge.simulate import AgreementDesign, simulate_agreement_store

    design = AgreementDesign(
        n_datasets=2, n_contexts=1, n_compounds=6, doses=(1.0,), n_genes=12, n_replicates=2
    )
    store = simulate_agreement_store(tmp_path / "store", design)
    group = load_training_data(store)
    sep = load_training_data(store, options=DataOptions(mode="separate"))
    assert len(sep) == 2 * len(group)
    assert sep.conditions["contrast_id"].is_unique
    assert set(sep.conditions["condition_id"]) == set(group.conditions["condition_id"])
    with Compendium.open(store) as comp:
        ids = sep.conditions["contrast_id"].iloc[:3].tolist()
        expected = np.asarray(comp.effects(ids, mode="separate").X)
    np.testing.assert_array_equal(sep.values(np.arange(3)), expected)
    split = make_split(sep, kind="compound", options=SplitOptions(target_dataset="sim_a"))
    parts = pd.Series("", index=sep.conditions.index)
    for p in ("train", "val", "test"):
        parts[split.rows(sep, p)] = p
    assert parts.groupby(sep.conditions["condition_id"]).nunique().max() == 1
    # the split of the separate rows applies to the group rows of the same store
    assert len(split.rows(group, "test")) * 2 == len(split.rows(sep, "test"))


def test_prefetched_batches_are_the_same(data):
    import threading

    rows = np.arange(len(data))
    plain = list(data.batches(rows, batch_size=16, shuffle=True, seed=3, prefetch=False))
    ahead = list(data.batches(rows, batch_size=16, shuffle=True, seed=3))
    assert len(plain) == len(ahead) > 2
    for a, b in zip(plain, ahead, strict=True):
        np.testing.assert_array_equal(a.rows, b.rows)
        np.testing.assert_array_equal(a.values, b.values)
    # a generator left early waits for its read ahead: no thread is left behind
    it = data.batches(rows, batch_size=16, shuffle=True, seed=3)
    next(it)
    it.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("pb-prefetch")]
    # an error in the read ahead reaches the caller
    broken = TrainingData(data.conditions, data.genes, source=Broken(), block_conditions=32)
    with pytest.raises(OSError, match="disk gone"):
        list(broken.batches(rows, batch_size=16, shuffle=False))


class Broken:
    def __init__(self):
        self.description = {"kind": "store"}
        self.calls = 0

    def read(self, rows):
        self.calls += 1
        if self.calls > 1:
            raise OSError("disk gone")
        return np.zeros((len(rows), DESIGN.n_genes), dtype=np.float32)

    def close(self):
        pass

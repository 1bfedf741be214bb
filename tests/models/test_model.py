"""The model configuration, the model families, the compound encoders and the LPM network."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from rdkit import Chem  # noqa: E402
from rdkit.Chem import rdFingerprintGenerator  # noqa: E402

from perturbridge.models.data import TrainingData  # noqa: E402
from perturbridge.models.encoders import (  # noqa: E402
    MorganEncoder,
    build_encoder,
    match_compounds,
    read_embeddings,
)
from perturbridge.models.model import (  # noqa: E402
    SCALAR_BATCH_VALUES,
    LPMNet,
    TrainedModel,
    batch_size_for,
    build_net,
    masked_mse,
)
from perturbridge.models.options import (  # noqa: E402
    FAMILIES,
    ModelConfig,
    ModelConfigError,
    list_families,
)
from perturbridge.models.splits import Split  # noqa: E402

from ._planted import MemoryValues, planted, structures  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One torch thread: these networks are tiny, and threads only contend."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TINY = ModelConfig(
    dim_dataset=2, dim_context=2, dim_compound=4, dim_gene=3, hidden=(8, 6), dropout=0.0
)


# ------------------------------------------------------------------ configuration


def test_config_toml_round_trip(tmp_path: Path) -> None:
    cfg = ModelConfig(form="scalar", hidden=(32, 16), lr=0.01, morgan_bits=256, seed=3)
    path = tmp_path / "model.toml"
    path.write_text(cfg.to_toml(), encoding="utf-8")
    assert ModelConfig.from_toml(path) == cfg
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_config_toml_model_table_and_relative_pretrained(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "model.toml"
    path.parent.mkdir()
    path.write_text(
        '[model]\ncompound_encoder = "pretrained"\npretrained = "emb.parquet"\nlr = 1\n',
        encoding="utf-8",
    )
    cfg = ModelConfig.from_toml(path)
    assert cfg.pretrained == str((path.parent / "emb.parquet").absolute())
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)


def test_config_toml_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "model.toml"
    path.write_text(
        'form = "wide"\nhiden = [8]\nlr = "fast"\nbatch_size = 0\ndropout = 1.5\n'
        "morgan_trainable = 1\n",
        encoding="utf-8",
    )
    with pytest.raises(ModelConfigError, match="6 problems") as err:
        ModelConfig.from_toml(path)
    text = str(err.value)
    assert "unknown key(s) ['hiden']; did you mean 'hidden'" in text
    assert "lr: expected int or float, found 'fast'" in text
    assert "morgan_trainable: expected bool, found 1" in text
    assert "form: expected one of ['scalar', 'multi'], found 'wide'" in text
    assert "batch_size: expected an integer >= 1, found 0" in text
    assert "dropout: expected a number in [0, 1), found 1.5" in text
    path.write_text("form = [", encoding="utf-8")
    with pytest.raises(ModelConfigError, match="not valid TOML"):
        ModelConfig.from_toml(path)


def test_config_errors() -> None:
    with pytest.raises(ModelConfigError, match="needs the path of an embeddings table"):
        ModelConfig(compound_encoder="pretrained")
    with pytest.raises(ModelConfigError, match="hidden: expected a non-empty list"):
        ModelConfig(hidden=())
    with pytest.raises(ModelConfigError, match="device"):
        ModelConfig(device="tpu")
    with pytest.raises(FileNotFoundError, match="no such file"):
        ModelConfig.from_toml("/nonexistent/model.toml")


def test_families() -> None:
    assert list(FAMILIES) == [
        "all",
        "target_only",
        "finetune_frozen",
        "morgan_fixed",
        "morgan_learned",
    ]
    listed = list_families()
    assert list(listed["name"]) == list(FAMILIES)
    assert list(listed["target_only"]) == [False, True, True, True, True]
    overrides = dict(zip(listed["name"], listed["overrides"], strict=True))
    assert "compound_encoder='morgan'" in str(overrides["morgan_fixed"])
    base = ModelConfig()
    assert FAMILIES["all"].configure(base) == base
    fixed = FAMILIES["morgan_fixed"].configure(base)
    assert (fixed.compound_encoder, fixed.morgan_trainable) == ("morgan", False)
    learned = FAMILIES["morgan_learned"].configure(base)
    assert (learned.compound_encoder, learned.morgan_trainable) == ("morgan", True)
    with pytest.raises(ValueError, match="needs the compound embeddings of an 'all' model"):
        FAMILIES["finetune_frozen"].configure(base)
    frozen = FAMILIES["finetune_frozen"].configure(base, pretrained="x.parquet")
    assert (frozen.compound_encoder, frozen.freeze_compound) == ("pretrained", True)
    # a target-only family keeps the rows of the target dataset only
    data, split = planted()
    rows = split.rows(data, "train")
    kept = FAMILIES["target_only"].restrict(data, rows, target_dataset="dsA")
    assert set(data.conditions["dataset"].to_numpy()[kept]) == {"dsA"}
    n_a = int((data.conditions["dataset"].to_numpy()[rows] == "dsA").sum())
    assert len(kept) == n_a
    assert len(FAMILIES["all"].restrict(data, rows, target_dataset=None)) == len(rows)
    with pytest.raises(ValueError, match="names no target dataset"):
        FAMILIES["target_only"].restrict(data, rows, target_dataset=None)
    with pytest.raises(KeyError, match="not in the training data"):
        FAMILIES["target_only"].restrict(data, rows, target_dataset="dsZ")


# ------------------------------------------------------------------ loss


def test_masked_mse_only_counts_measured_values() -> None:
    pred = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]])
    obs = torch.tensor([[1.5, float("nan"), 1.0], [float("nan"), float("nan"), 2.0]])
    sse, n = masked_mse(pred, obs)
    assert n == 3
    assert float(sse) == pytest.approx(0.25 + 4.0 + 9.0)
    sse, n = masked_mse(pred, torch.full_like(pred, float("nan")))
    assert (float(sse), n) == (0.0, 0)


# ------------------------------------------------------------------ encoders


def test_morgan_encoder_is_the_rdkit_fingerprint() -> None:
    data, _ = planted()
    cfg = ModelConfig(compound_encoder="morgan", morgan_radius=1, morgan_bits=64)
    smiles = data.smiles(structures(data))
    tokens = data.vocab["compound"].tokens
    smiles.iloc[5] = np.nan  # a compound without a structure
    enc, info = build_encoder(cfg, tokens=tokens, compounds=pd.DataFrame(), smiles=smiles)
    assert isinstance(enc, MorganEncoder) and enc.dim == 64
    assert (info["matched"], info["missing"]) == (len(tokens) - 2, 1)
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=1, fpSize=64)
    for code in (1, 2, 9):
        expected = gen.GetFingerprintAsNumPy(Chem.MolFromSmiles(smiles.iloc[code - 1]))
        got = enc(torch.tensor([code]))[0].numpy()
        np.testing.assert_array_equal(got, expected.astype(np.float32))
    assert not enc(torch.tensor([0, 6])).any()  # <unk> and the compound without structure
    # trainable: a learned linear map of the same bits
    cfg_t = ModelConfig(
        compound_encoder="morgan", morgan_radius=1, morgan_bits=64, morgan_trainable=True
    )
    enc_t, _ = build_encoder(cfg_t, tokens=tokens, compounds=pd.DataFrame(), smiles=smiles)
    assert enc_t.dim == cfg_t.dim_compound
    assert enc_t.projection is not None
    w = enc_t.state_dict()["projection.weight"].numpy()
    with torch.no_grad():
        got = enc_t(torch.tensor([3])).numpy()[0]
    np.testing.assert_allclose(got, w @ enc(torch.tensor([3]))[0].numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="needs the compounds' structures"):
        build_encoder(cfg, tokens=tokens, compounds=pd.DataFrame(), smiles=None)
    none = pd.Series(np.nan, index=list(tokens[1:]), dtype=object)
    with pytest.raises(ValueError, match="none of the 24 compounds has a structure"):
        build_encoder(cfg, tokens=tokens, compounds=pd.DataFrame(), smiles=none)


def test_pretrained_table_matches_key_then_inchikey_then_cid(tmp_path: Path) -> None:
    tokens = ("<unk>", "AAAA-B-N", "CID:42", "cmpdC", "nothing")
    compounds = pd.DataFrame(
        {"inchikey": [None, None, "IKC"], "pubchem_cid": [None, 42, 7], "name": [None] * 3},
        index=pd.Index(["AAAA-B-N", "CID:42", "cmpdC"], name="compound"),
    )
    table = pd.DataFrame(
        {
            "compound": ["other1", "AAAA-B-N", "other2"],
            "inchikey": ["IKX", "IKA", "IKC"],
            "pubchem_cid": [42, 1, 3],
            "e0": [1.0, 2.0, 3.0],
            "e1": [-1.0, -2.0, -3.0],
        }
    )
    where = match_compounds(tokens[1:], table, compounds=compounds)
    # by key; by CID (the "CID:" key); by InChIKey; no match
    np.testing.assert_array_equal(where, [1, 0, 2, -1])
    path = tmp_path / "emb.parquet"
    table.to_parquet(path)
    cfg = ModelConfig(compound_encoder="pretrained", pretrained=str(path))
    enc, info = build_encoder(cfg, tokens=tokens, compounds=compounds)
    assert (enc.dim, info["matched"], info["missing"]) == (2, 3, 1)
    got = enc(torch.arange(5)).detach().numpy()
    np.testing.assert_array_equal(got, [[0, 0], [2, -2], [1, -1], [3, -3], [0, 0]])


def test_read_embeddings_errors(tmp_path: Path) -> None:
    path = tmp_path / "emb.parquet"
    pd.DataFrame({"key": ["a"], "e0": [1.0]}).to_parquet(path)
    with pytest.raises(ValueError, match="no 'compound' column"):
        read_embeddings(path)
    pd.DataFrame({"compound": ["a"], "e0": [1.0], "e2": [1.0]}).to_parquet(path)
    with pytest.raises(ValueError, match="without gaps"):
        read_embeddings(path)
    pd.DataFrame({"compound": ["a", "b"], "e0": [1.0, np.nan]}).to_parquet(path)
    with pytest.raises(ValueError, match=r"non-finite values; first compounds: \['b'\]"):
        read_embeddings(path)
    pd.DataFrame({"compound": ["a", "a"], "e0": [1.0, 2.0]}).to_parquet(path)
    with pytest.raises(ValueError, match="duplicate compound keys"):
        read_embeddings(path)
    with pytest.raises(FileNotFoundError):
        read_embeddings(tmp_path / "none.parquet")


# ------------------------------------------------------------------ network


def test_scalar_form_equals_one_row_per_condition_and_gene() -> None:
    """The scalar network, computed for all genes at once, gives what an explicit MLP
    over the concatenated (condition, gene embedding) rows gives."""
    data, split = planted()
    torch.manual_seed(0)
    cfg = ModelConfig(**{**TINY.to_dict(), "form": "scalar", "hidden": (8, 6)})
    net, _ = build_net(cfg, data, train_rows=split.rows(data, "train"))
    net.eval()
    batch = next(data.batches(np.arange(5), batch_size=5, shuffle=False))
    with torch.no_grad():
        got = net.predict_batch(batch, torch.device("cpu")).numpy()
        assert got.shape == (5, data.n_genes)
        x = torch.cat(
            [
                net.dataset(torch.as_tensor(batch.dataset)),
                net.context(torch.as_tensor(batch.context)),
                net.compound(torch.as_tensor(batch.compound)),
                torch.as_tensor(batch.log10_dose)[:, None],
                torch.as_tensor(batch.time)[:, None],
            ],
            dim=1,
        )
        w1 = torch.cat([net.first.weight, net.gene_first.weight], dim=1)
        lin2, head = net.body[2], net.head
        for i in range(5):
            for g in range(data.n_genes):
                row = torch.cat([x[i], net.gene.weight[g]])
                h = torch.relu(w1 @ row + net.first.bias)
                h = torch.relu(lin2.weight @ h + lin2.bias)
                expected = float(head.weight @ h + head.bias)
                assert got[i, g] == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_multi_form_shapes_and_unseen_codes_are_zero() -> None:
    data, split = planted()
    torch.manual_seed(0)
    train_rows = split.rows(data, "train")
    net, info = build_net(TINY, data, train_rows=train_rows)
    assert isinstance(net, LPMNet)
    # the held-out compounds (val/test of dsA only; they still have dsB rows) are trained;
    # a compound with no training rows at all starts at the zero vector
    only_a = np.flatnonzero(data.conditions["dataset"].to_numpy() == "dsA")
    net2, info2 = build_net(TINY, data, train_rows=only_a[:40])
    seen = set(info2["in_training"])
    unseen = [c for c in range(1, len(data.vocab["compound"])) if c not in seen]
    assert unseen
    w = net2.state_dict()["compound.embedding.weight"].numpy()
    assert not w[unseen].any() and not w[0].any()
    assert w[sorted(seen)].any(axis=1).all()
    out = net(
        torch.tensor([1, 2]),
        torch.tensor([1, 1]),
        torch.tensor([3, 4]),
        torch.zeros(2),
        torch.zeros(2),
    )
    assert tuple(out.shape) == (2, data.n_genes)
    assert len(info["in_training"]) == len(data.vocab["compound"]) - 1


def test_frozen_compound_encoder_has_no_trainable_parameters() -> None:
    data, split = planted()
    cfg = ModelConfig(**{**TINY.to_dict(), "freeze_compound": True})
    net, _ = build_net(cfg, data, train_rows=split.rows(data, "train"))
    assert not any(p.requires_grad for p in net.compound.parameters())
    assert any(p.requires_grad for p in net.first.parameters())


# ------------------------------------------------------------------ trained model


def _model(form: str = "multi", **changes: object) -> tuple[TrainedModel, TrainingData, Split]:
    data, split = planted()
    torch.manual_seed(1)
    cfg = ModelConfig.from_dict({**TINY.to_dict(), "form": form, **changes})
    structs = structures(data) if cfg.compound_encoder == "morgan" else None
    net, info = build_net(cfg, data, train_rows=split.rows(data, "train"), structures=structs)
    return TrainedModel.from_training(config=cfg, data=data, net=net, info=info), data, split


@pytest.mark.parametrize(
    ("form", "encoder"),
    [("multi", "embedding"), ("scalar", "embedding"), ("multi", "morgan"), ("scalar", "morgan")],
)
def test_save_load_round_trip(tmp_path: Path, form: str, encoder: str) -> None:
    trainable = form == "scalar"
    model, data, _ = _model(
        form, compound_encoder=encoder, morgan_bits=32, morgan_trainable=trainable
    )
    rows = np.arange(0, 192, 7)
    before = model.predict(data, rows, batch_size=5)
    path = model.save(tmp_path / "m.pt")
    loaded = TrainedModel.load(path)
    np.testing.assert_array_equal(loaded.predict(data, rows, batch_size=5), before)
    assert loaded.config == model.config
    pd.testing.assert_frame_equal(loaded.compound_embeddings(), model.compound_embeddings())
    assert list(loaded.genes.index) == list(data.genes.index)
    # a training folder loads its best.pt
    (tmp_path / "run").mkdir()
    model.save(tmp_path / "run" / "best.pt")
    again = TrainedModel.load(tmp_path / "run").predict(data, rows, batch_size=5)
    np.testing.assert_array_equal(again, before)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"best\.pt"):
        TrainedModel.load(tmp_path)
    bad = tmp_path / "bad.pt"
    torch.save({"format": "something else"}, bad)
    with pytest.raises(ValueError, match="not a perturbridge model file"):
        TrainedModel.load(bad)
    bad.write_text("not a torch file", encoding="utf-8")
    with pytest.raises(ValueError, match="not a perturbridge model file"):
        TrainedModel.load(bad)


def test_predict_in_row_order_and_on_data_with_another_vocabulary() -> None:
    model, data, _ = _model()
    rows = np.array([50, 3, 120, 7])
    pred = model.predict(data, rows, batch_size=3)
    assert pred.dtype == np.float32 and pred.shape == (4, data.n_genes)
    for i, r in enumerate(rows):
        one = model.predict(data, np.array([r]))[0]
        np.testing.assert_allclose(pred[i], one, rtol=1e-5, atol=1e-7)
    # the same conditions in data whose vocabularies were built from dsB rows only:
    # predict re-encodes them with the model's vocabulary, so the result is the same
    sub = data.conditions.iloc[100:].reset_index(drop=True)
    other = TrainingData(
        sub, data.genes, source=MemoryValues(data.values(np.arange(100, len(data))))
    )
    assert other.vocab["dataset"].tokens == ("<unk>", "dsB") != data.vocab["dataset"].tokens
    np.testing.assert_allclose(
        model.predict(other, np.array([20, 0])),
        model.predict(data, np.array([120, 100])),
        rtol=1e-5,
        atol=1e-7,
    )


def test_compound_embeddings_table() -> None:
    model, data, _ = _model()
    table = model.compound_embeddings()
    assert list(table.index) == list(data.vocab["compound"].tokens[1:])
    assert table.index.name == "compound"
    assert [c for c in table.columns if c.startswith("e")] == [f"e{j}" for j in range(4)]
    assert table["pubchem_cid"].dtype == "Int64"
    first = data.conditions.drop_duplicates("compound").set_index("compound")
    assert table.loc[table.index[3], "pubchem_cid"] == first.loc[table.index[3], "pubchem_cid"]
    assert table["in_training"].all()
    w = model.net.state_dict()["compound.embedding.weight"].numpy()[1:]
    np.testing.assert_array_equal(table[[f"e{j}" for j in range(4)]].to_numpy(), w)


def test_scalar_batches_are_capped() -> None:
    multi = ModelConfig(hidden=(256, 128))
    scalar = ModelConfig(form="scalar", hidden=(256, 128))
    assert batch_size_for(multi, 978, 1024) == 1024
    capped = batch_size_for(scalar, 978, 1024)
    assert capped * 978 * 256 <= SCALAR_BATCH_VALUES < (capped + 1) * 978 * 256
    assert batch_size_for(scalar, 10, 16) == 16
    assert batch_size_for(scalar, 10**9, 16) == 1

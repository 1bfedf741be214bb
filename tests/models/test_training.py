"""Training: learning the planted signal, determinism, resume, early stopping, masked
loss, checkpoints and the model families."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from perturbridge.models.data import load_training_data  # noqa: E402
from perturbridge.models.embedding import embed  # noqa: E402
from perturbridge.models.model import TrainedModel  # noqa: E402
from perturbridge.models.options import ModelConfig  # noqa: E402
from perturbridge.models.splits import SplitOptions, make_split  # noqa: E402
from perturbridge.models.training import train  # noqa: E402
from perturbridge.simulate.pretraining import (  # noqa: E402
    PretrainingDesign,
    simulate_pretraining_store,
)

from ._planted import memory, planted, row_split, structures  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One torch thread: these networks are tiny, and threads only contend."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


CFG = ModelConfig(
    dim_dataset=2,
    dim_context=2,
    dim_compound=4,
    dim_gene=3,
    hidden=(32,),
    dropout=0.1,
    lr=0.03,
    batch_size=16,
    max_epochs=6,
    patience=10,
    seed=0,
)


def _cfg(**changes: object) -> ModelConfig:
    return ModelConfig.from_dict({**CFG.to_dict(), **changes})


def _masked_mse(pred: np.ndarray, obs: np.ndarray) -> float:
    """Mean squared error over the observed values (an independent NumPy version)."""
    keep = ~np.isnan(obs)
    return float(np.mean((pred[keep].astype(np.float64) - obs[keep]) ** 2))


def _weights(model: TrainedModel) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in model.net.state_dict().items()}


@pytest.mark.parametrize("form", ["multi", "scalar"])
def test_training_learns_the_planted_signal(form: str) -> None:
    data, split = planted()
    cfg = _cfg(form=form, max_epochs=30, dropout=0.0, patience=0)
    model = train(data, split, config=cfg, progress=False)
    history = pd.DataFrame(model.info["history"])
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    # the held-out compounds of dsA have dsB rows in training: the model beats the zero
    # prediction on them by far, and its best epoch's loss is what it reports
    rows = split.rows(data, "val")
    obs = data.values(rows)
    pred = model.predict(data, rows)
    assert _masked_mse(pred, obs) < 0.7 * _masked_mse(np.zeros_like(pred), obs)
    best = int(history["val_loss"].idxmin())
    assert model.info["best_epoch"] == history["epoch"][best]
    assert _masked_mse(pred, obs) == pytest.approx(history["val_loss"][best], rel=1e-4)


def test_same_seed_same_model_other_seed_other_model() -> None:
    data, split = planted()
    a = train(data, split, config=_cfg(max_epochs=3), progress=False)
    b = train(data, split, config=_cfg(max_epochs=3), progress=False)
    c = train(data, split, config=_cfg(max_epochs=3, seed=1), progress=False)
    wa, wb, wc = _weights(a), _weights(b), _weights(c)
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    assert not np.array_equal(wa["first.weight"], wc["first.weight"])
    losses = [[h["val_loss"] for h in m.info["history"]] for m in (a, b)]
    assert losses[0] == losses[1]
    # the global random state is left as it was
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(data, split, config=_cfg(max_epochs=1), progress=False)
    assert torch.equal(torch.rand(3), expected)


def test_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    data, split = planted()
    whole = train(data, split, config=_cfg(max_epochs=4), out=tmp_path / "a", progress=False)
    train(data, split, config=_cfg(max_epochs=2), out=tmp_path / "b", progress=False)
    assert len(pd.read_csv(tmp_path / "b" / "history.csv")) == 2
    resumed = train(
        data, split, config=_cfg(max_epochs=4), out=tmp_path / "b", resume=True, progress=False
    )
    wa, wb = _weights(whole), _weights(resumed)
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    ha = pd.read_csv(tmp_path / "a" / "history.csv")
    hb = pd.read_csv(tmp_path / "b" / "history.csv")
    assert list(ha.columns) == ["epoch", "train_loss", "val_loss", "seconds"]
    pd.testing.assert_frame_equal(ha.drop(columns="seconds"), hb.drop(columns="seconds"))
    # the last checkpoints hold the same weights too
    la = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["state_dict"]
    lb = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(la[k], lb[k]) for k in la)
    # resuming a finished run trains no further and returns the best model
    again = train(
        data, split, config=_cfg(max_epochs=4), out=tmp_path / "b", resume=True, progress=False
    )
    assert all(np.array_equal(wb[k], v) for k, v in _weights(again).items())
    assert len(pd.read_csv(tmp_path / "b" / "history.csv")) == 4
    # a larger max_epochs continues it
    train(data, split, config=_cfg(max_epochs=5), out=tmp_path / "b", resume=True, progress=False)
    assert list(pd.read_csv(tmp_path / "b" / "history.csv")["epoch"]) == [1, 2, 3, 4, 5]


def test_early_stopping_keeps_the_best_checkpoint(tmp_path: Path) -> None:
    """Validation rows whose values are pure noise, unrelated to training: the model
    overfits, the validation loss stops improving and training stops ``patience``
    epochs after the best epoch; best.pt is that epoch's model."""
    data, split = planted(noise=0.1)
    rng = np.random.default_rng(5)
    source = memory(data)
    val = split.rows(data, "val")
    source.values[val] = rng.normal(size=source.values[val].shape) * 3
    cfg = _cfg(max_epochs=40, patience=2, lr=0.05, dropout=0.0)
    out = tmp_path / "run"
    model = train(data, split, config=cfg, out=out, progress=False)
    history = pd.read_csv(out / "history.csv")
    best = int(history["val_loss"].idxmin())
    best_epoch = int(history["epoch"][best])
    assert model.info["stopped_early"] is True
    assert len(history) == best_epoch + 2 < 40
    # the returned model and best.pt are the best epoch's
    from_file = TrainedModel.load(out)
    pred = from_file.predict(data, val)
    np.testing.assert_array_equal(pred, model.predict(data, val))
    assert _masked_mse(pred, data.values(val)) == pytest.approx(history["val_loss"][best], rel=1e-4)
    summary = (out / "train.json").read_text(encoding="utf-8")
    assert '"stopped_early": true' in summary and f'"best_epoch": {best_epoch}' in summary


def test_loss_only_on_measured_genes() -> None:
    """dsB does not measure three genes (NaN): the losses stay finite, the reported
    validation loss is the mean squared error over the measured values only, and a
    measured training value does change the model."""
    data, split = planted()
    assert np.isnan(data.values(np.arange(len(data)))).any()
    model = train(data, split, config=_cfg(max_epochs=2, dropout=0.0), progress=False)
    h = pd.DataFrame(model.info["history"])
    assert np.isfinite(h[["train_loss", "val_loss"]].to_numpy()).all()
    assert all(np.isfinite(w).all() for w in _weights(model).values())
    val = split.rows(data, "val")
    best = int(h["val_loss"].idxmin())
    got = _masked_mse(model.predict(data, val), data.values(val))
    assert got == pytest.approx(h["val_loss"][best], rel=1e-4)
    data2, _ = planted()
    row = split.rows(data, "train")[-1]  # a dsB row: genes 0-2 NaN, gene 5 measured
    assert np.isnan(memory(data2).values[row, 0]) and not np.isnan(memory(data2).values[row, 5])
    memory(data2).values[row, 5] += 5.0
    other = train(data2, split, config=_cfg(max_epochs=2, dropout=0.0), progress=False)
    assert not np.array_equal(_weights(other)["first.weight"], _weights(model)["first.weight"])


def test_out_folder_rules(tmp_path: Path) -> None:
    data, split = planted()
    out = tmp_path / "run"
    train(data, split, config=_cfg(max_epochs=1), out=out, progress=False)
    assert {p.name for p in out.iterdir()} >= {
        "best.pt",
        "last.pt",
        "history.csv",
        "config.toml",
        "train.json",
    }
    assert ModelConfig.from_toml(out / "config.toml") == _cfg(max_epochs=1)
    with pytest.raises(FileExistsError, match="already holds a training run"):
        train(data, split, config=_cfg(max_epochs=1), out=out, progress=False)
    with pytest.raises(ValueError, match=r"settings lr \(0\.03 → 0\.02\)"):
        train(data, split, config=_cfg(max_epochs=2, lr=0.02), out=out, resume=True)
    with pytest.raises(ValueError, match="resume=True needs out="):
        train(data, split, config=CFG, resume=True)
    empty = row_split(data, {"test": split.rows(data, "val")})
    with pytest.raises(ValueError, match="no 'val' rows"):
        train(data, empty, config=CFG)
    with pytest.raises(KeyError, match="unknown model family 'every'"):
        train(data, split, config=CFG, family="every")


def test_progress_bar_runs(capsys: pytest.CaptureFixture[str]) -> None:
    data, split = planted()
    model = train(data, split, config=_cfg(max_epochs=2), progress=True)
    assert len(model.info["history"]) == 2
    out = capsys.readouterr().out
    h = model.info["history"]
    assert f"epoch 2: train loss {h[1]['train_loss']:.5f}, validation loss" in out
    quiet = train(data, split, config=_cfg(max_epochs=1), progress=False)
    assert quiet is not None and "epoch" not in capsys.readouterr().out


def test_families_target_only_morgan_and_finetune_frozen(tmp_path: Path) -> None:
    data, split = planted()
    cfg = _cfg(max_epochs=2, morgan_bits=64)
    target = train(data, split, config=cfg, family="target_only", out=tmp_path / "t")
    summary = (tmp_path / "t" / "train.json").read_text(encoding="utf-8")
    datasets = data.conditions["dataset"].to_numpy()
    n_a_train = int((datasets[split.rows(data, "train")] == "dsA").sum())
    assert f'"train": {n_a_train}' in summary
    # the compounds held out of dsA have only dsB rows: a target-only model never saw them
    held_rows = np.concatenate([split.rows(data, "val"), split.rows(data, "test")])
    held = set(data.conditions["compound"].to_numpy()[held_rows])
    table = target.compound_embeddings()
    assert not table.loc[sorted(held), "in_training"].any()
    assert table.drop(index=sorted(held))["in_training"].all()

    morgan = train(data, split, config=cfg, family="morgan_fixed", structures=structures(data))
    assert morgan.config.compound_encoder == "morgan" and morgan.net.compound.dim == 64
    with pytest.raises(ValueError, match="needs the compounds' structures"):
        train(data, split, config=cfg, family="morgan_learned")

    everything = train(data, split, config=cfg, family="all", progress=False)
    table_path = embed(everything, out=tmp_path / "emb.parquet")
    frozen_cfg = _cfg(max_epochs=2, compound_encoder="pretrained", pretrained=str(table_path))
    frozen = train(data, split, config=frozen_cfg, family="finetune_frozen", progress=False)
    assert frozen.config.freeze_compound
    # the compound vectors are the all-data model's, unchanged by training
    got = frozen.compound_embeddings()
    want = everything.compound_embeddings()
    cols = [f"e{j}" for j in range(cfg.dim_compound)]
    np.testing.assert_array_equal(got[cols].to_numpy(), want[cols].to_numpy())


@pytest.mark.slow
def test_end_to_end_on_a_simulated_store(tmp_path: Path) -> None:
    """A simulated store → training data → compound split → an all-data model → its
    embeddings → a frozen fine-tune on the target dataset, every piece through files."""
    design = PretrainingDesign(n_datasets=2, n_compounds=24, n_contexts=1, n_genes=20)
    sim = simulate_pretraining_store(tmp_path / "store", design=design)
    data = load_training_data(sim.store)
    target = sorted(data.conditions["dataset"].unique())[0]
    split = make_split(data, kind="compound", options=SplitOptions(target_dataset=target))
    cfg = _cfg(max_epochs=3, morgan_bits=128)
    train(data, split, config=cfg, out=tmp_path / "all", structures=sim.structures)
    model = TrainedModel.load(tmp_path / "all")
    test = split.rows(data, "test")
    pred = model.predict(data, test)
    assert pred.shape == (len(test), data.n_genes) and np.isfinite(pred).all()
    table = embed(tmp_path / "all", out=tmp_path / "compounds.parquet")
    frozen = _cfg(max_epochs=2, compound_encoder="pretrained", pretrained=str(table))
    tuned = train(data, split, config=frozen, family="finetune_frozen", progress=False)
    # the held-out target compounds were measured in the other dataset: the table knows them
    held = split.compounds("test")
    assert held and tuned.compound_embeddings().loc[held, "e0"].abs().sum() > 0

"""The compound embeddings table: what embed writes and what training reads back."""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")

from perturbridge.models.embedding import embed, read_embeddings  # noqa: E402
from perturbridge.models.encoders import TableEncoder  # noqa: E402
from perturbridge.models.model import TrainedModel, build_net  # noqa: E402
from perturbridge.models.options import ModelConfig  # noqa: E402

from ._planted import planted  # noqa: E402

CFG = ModelConfig(dim_dataset=2, dim_context=2, dim_compound=3, hidden=(8,), dropout=0.0)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _model(train_rows: np.ndarray | None = None) -> TrainedModel:
    data, split = planted()
    rows = split.rows(data, "train") if train_rows is None else train_rows
    torch.manual_seed(0)
    net, info = build_net(CFG, data, train_rows=rows)
    return TrainedModel.from_training(config=CFG, data=data, net=net, info=info)


def test_embed_writes_one_vector_per_learned_compound(tmp_path: Path) -> None:
    data, _ = planted()
    dsa = np.flatnonzero(data.conditions["dataset"].to_numpy() == "dsA")
    model = _model(train_rows=dsa[:40])  # the first compounds only
    path = embed(model, out=tmp_path / "out" / "compounds.parquet")
    table = pd.read_parquet(path)
    assert list(table.columns[:5]) == ["compound", "inchikey", "pubchem_cid", "name", "in_training"]
    assert list(table.columns[5:]) == ["e0", "e1", "e2"]
    learned = model.compounds.index[model.compounds["in_training"]]
    assert 0 < len(learned) < len(model.compounds)
    assert list(table["compound"]) == list(learned)
    # vectors are the model's embedding rows; identifiers are those of the data
    weight = model.net.state_dict()["compound.embedding.weight"].numpy()
    codes = model.vocab["compound"].encode(table["compound"].to_numpy())
    np.testing.assert_array_equal(table[["e0", "e1", "e2"]].to_numpy(), weight[codes])
    first = data.conditions.drop_duplicates("compound").set_index("compound")
    assert (table["pubchem_cid"].to_numpy() == first.loc[table["compound"], "pubchem_cid"]).all()
    assert (table["inchikey"] == table["compound"]).all()
    record = json.loads(pq.read_schema(path).metadata[b"perturbridge"])
    assert record["step"] == "embed" and record["model_config"]["dim_compound"] == 3
    # every compound, the unlearned ones with the zero vector
    everything = pd.read_parquet(embed(model, out=tmp_path / "all.parquet", all_compounds=True))
    assert len(everything) == len(model.compounds)
    unlearned = everything.loc[~everything["in_training"], ["e0", "e1", "e2"]]
    assert not unlearned.to_numpy().any()


def test_embed_from_a_model_file_and_back_into_training(tmp_path: Path) -> None:
    model = _model()
    model.save(tmp_path / "run" / "best.pt")
    path = embed(tmp_path / "run", out=tmp_path / "compounds.parquet")
    table = read_embeddings(path)
    assert len(table) == len(model.compounds)
    # a model that starts from the table has the table's vectors for the same compounds
    data, split = planted()
    cfg = ModelConfig.from_dict(
        {**CFG.to_dict(), "compound_encoder": "pretrained", "pretrained": str(path)}
    )
    net, info = build_net(cfg, data, train_rows=split.rows(data, "train"))
    assert isinstance(net.compound, TableEncoder) and info["matched"] == len(table)
    started = TrainedModel.from_training(config=cfg, data=data, net=net, info=info)
    cols = ["e0", "e1", "e2"]
    np.testing.assert_array_equal(
        started.compound_embeddings()[cols].to_numpy(),
        model.compound_embeddings()[cols].to_numpy(),
    )
    # and keeps them through a save and load (the table itself is no longer needed)
    saved = started.save(tmp_path / "started.pt")
    path.unlink()
    pd.testing.assert_frame_equal(
        TrainedModel.load(saved).compound_embeddings(), started.compound_embeddings()
    )


def test_embed_refuses_a_model_that_learned_nothing(tmp_path: Path) -> None:
    model = _model(train_rows=np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError, match="nothing was written"):
        embed(model, out=tmp_path / "c.parquet")
    assert not (tmp_path / "c.parquet").exists()


def test_package_names_stay_the_functions_after_the_modules_are_imported() -> None:
    """The modules are named apart from the functions they define (``training`` /
    ``train``, ``embedding`` / ``embed``, ``evaluation`` / ``evaluate``), so importing a
    module never rebinds the package's function name to it."""
    import perturbridge.models as models

    for module in ("training", "embedding", "evaluation"):
        importlib.import_module(f"perturbridge.models.{module}")
    assert inspect.isfunction(models.train) and models.train.__name__ == "train"
    assert inspect.isfunction(models.embed) and models.embed.__name__ == "embed"
    assert inspect.isfunction(models.evaluate) and models.evaluate.__name__ == "evaluate"

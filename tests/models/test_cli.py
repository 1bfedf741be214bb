"""perturbridge split, train, evaluate and embed on a small simulated store."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest
from typer.testing import CliRunner

from perturbridge.cli import models as cli_models
from perturbridge.cli._main import app
from perturbridge.simulate.pretraining import PretrainingDesign, simulate_pretraining_store

pytest.importorskip("torch")

runner = CliRunner()

CONFIG = """\
form = "multi"
hidden = [16]
dim_compound = 4
dim_context = 2
dim_dataset = 2
max_epochs = 2
batch_size = 32
"""


def _ok(args: list[str]):
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res


def _error(args: list[str]) -> str:
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    return " ".join(res.output.split())


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    design = PretrainingDesign(
        n_datasets=2, n_compounds=24, n_genes=12, n_contexts=1, doses_uM=(1.0, 10.0)
    )
    s = simulate_pretraining_store(root / "store", design=design)
    s.write_structures(root / "structures.csv")
    (root / "model.toml").write_text(CONFIG)
    return root


@pytest.mark.slow
def test_split_train_evaluate_embed(sim, tmp_path):
    store = sim / "store"
    res = _ok(["split", store, "--kind", "compound", "--target", "sim_a", "--out",
               tmp_path / "split", "--test-fraction", "0.25"])  # fmt: skip
    assert "compound split" in res.output
    assert (tmp_path / "split" / "manifest.json").is_file()
    _ok(["train", store, "--config", sim / "model.toml", "--split", tmp_path / "split",
         "--out", tmp_path / "m"])  # fmt: skip
    assert (tmp_path / "m" / "best.pt").is_file()
    assert len(pd.read_csv(tmp_path / "m" / "history.csv")) == 2
    _ok(["train", store, "--config", sim / "model.toml", "--split", tmp_path / "split",
         "--out", tmp_path / "morgan", "--family", "morgan_fixed",
         "--structures", sim / "structures.csv"])  # fmt: skip
    res = _ok(["evaluate", store, "--model", f"id={tmp_path / 'm'}",
               "--model", f"morgan={tmp_path / 'morgan'}", "--split", tmp_path / "split",
               "--structures", sim / "structures.csv", "--k", "5",
               "--out", tmp_path / "ev", "--report", tmp_path / "ev.html"])  # fmt: skip
    html = (tmp_path / "ev.html").read_text()
    assert "Models against the trivial baselines" in html and "nearest_tanimoto" in html
    for name in ("zero", "train_mean", "nearest_tanimoto", "id", "morgan", "ceiling"):
        assert name in res.output
    pooled = pd.read_csv(tmp_path / "ev" / "pooled.tsv", sep="\t")
    assert list(pooled["model"]) == ["zero", "train_mean", "nearest_tanimoto", "id", "morgan"]
    assert list((tmp_path / "ev" / "histories").glob("*.tsv"))
    _ok(["embed", store, "--model", tmp_path / "m", "--out", tmp_path / "c.parquet"])
    emb = pd.read_parquet(tmp_path / "c.parquet")
    assert emb["compound"].str.len().eq(27).all()  # parent InChIKeys
    # the evaluation folder exists: an error unless --force
    out = _error(["evaluate", store, "--model", tmp_path / "m", "--split", tmp_path / "split",
                  "--out", tmp_path / "ev"])  # fmt: skip
    assert "error:" in out


def test_user_errors(sim, tmp_path):
    store = sim / "store"
    assert "no store or shards folder" in _error(
        ["split", tmp_path / "nope", "--kind", "compound", "--out", tmp_path / "s"]
    )
    assert "needs target_dataset" in _error(
        ["split", store, "--kind", "compound", "--out", tmp_path / "s"]
    )
    bad = tmp_path / "bad.toml"
    bad.write_text('form = "wide"\nhidden = "x"\n')
    _ok(["split", store, "--kind", "compound", "--target", "sim_a", "--out", tmp_path / "s"])
    out = _error(["train", store, "--config", bad, "--split", tmp_path / "s", "--out",
                  tmp_path / "m"])  # fmt: skip
    assert "hidden: expected an array of integers" in out
    out = _error(["train", store, "--config", sim / "model.toml", "--split", tmp_path / "s",
                  "--out", tmp_path / "m", "--family", "nope"])  # fmt: skip
    assert "unknown model family 'nope'" in out
    out = _error(["evaluate", store, "--model", tmp_path / "none", "--split", tmp_path / "s",
                  "--out", tmp_path / "ev"])  # fmt: skip
    assert "no such file" in out


def test_torch_missing_is_one_line(sim, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        cli_models.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "torch" else real(name, *a),
    )
    for cmd in (["train", sim / "store", "--config", sim / "model.toml", "--split", "s",
                 "--out", tmp_path / "m"],
                ["evaluate", sim / "store", "--model", "m", "--split", "s", "--out", "e"],
                ["embed", sim / "store", "--model", "m", "--out", tmp_path / "c.pq"]):  # fmt: skip
        assert "pip install 'perturbridge[models]'" in _error(cmd)


@pytest.mark.parametrize("cmd", ["split", "train", "evaluate", "embed"])
def test_help_has_an_example_and_loads_no_model_code(cmd):
    import subprocess
    import sys

    r = runner.invoke(app, [cmd, "--help"])
    assert r.exit_code == 0 and "Example" in r.output and f"perturbridge {cmd}" in r.output
    code = (
        "import sys\n"
        "from perturbridge.cli import app\n"
        "try:\n"
        f"    app([{cmd!r}, '--help'], prog_name='perturbridge')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('LOADED', [m for m in ('torch', 'perturbridge.models', 'rdkit')"
        " if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert "LOADED []" in out, out[-300:]

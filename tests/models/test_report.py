"""The models section: tables with baselines, figures, learning curves."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from perturbridge.models.evaluation import evaluate
from perturbridge.report.models import models_figures, summary_table, write_models_report

from ._arrays import ArrayData, ArraySplit, conditions


def _result():
    rng = np.random.default_rng(0)
    recs = [(ds, "x", f"c{i}", 1.0, 24.0) for ds in ("A", "B") for i in range(6)]
    data = ArrayData(conditions(recs), rng.normal(size=(12, 5)))
    split = ArraySplit({"train": np.arange(2, 12), "test": np.array([0, 1])}, target="A")
    obs = data.values(np.array([0, 1]))
    res = evaluate({"m": [obs * 0.5, obs * 0.6]}, data, split)
    res.histories = {
        "m__0": pd.DataFrame(
            {"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "seconds": 1}
        )
    }
    return res


def test_summary_table_mean_sd_and_baseline_notes():
    res = _result()
    t = summary_table(res).set_index("model")
    g = res.pooled[res.pooled["model"] == "m"]["mrrmse"]
    assert t.loc["m", "mrrmse"] == f"{g.mean():.4f} ± {g.std(ddof=1):.4f}"
    assert t.loc["nearest_tanimoto", "mrrmse"] == "-"
    assert t.loc["nearest_tanimoto", "note"] == "needs compound structures"
    assert set(models_figures(res)) == {"model_metrics", "model_datasets", "model_learning"}


def test_report_is_self_contained_with_baselines(tmp_path):
    res = _result()
    res.save(tmp_path / "ev")
    out = write_models_report(tmp_path / "ev", tmp_path / "r.html")
    html = out.read_text()
    for name in ("zero", "train_mean", "nearest_tanimoto", "Learning curves", "ceiling"):
        assert name in html
    assert len(re.findall(r'<img src="data:image/png;base64,', html)) == 3
    assert "http://" not in html and "https://" not in html and "<script" not in html


@pytest.mark.slow
def test_agreement_report_gets_the_models_section(tmp_path):
    from typer.testing import CliRunner

    from agreement._stores import cross_store
    from perturbridge.cli import app

    store = cross_store(tmp_path)
    res = _result()
    res.save(tmp_path / "ev")
    out = tmp_path / "r.html"
    args = ["report", str(store), "--out", str(out), "--evaluation", str(tmp_path / "ev")]
    run = CliRunner().invoke(app, [*args, "--n-boot", "50"])
    assert run.exit_code == 0, run.output
    html = out.read_text()
    assert html.count('<section id="models">') == 1
    assert '<li><a href="#models">Models against the trivial baselines</a></li>' in html
    assert "Cross-dataset agreement" in html  # the agreement sections are still there
    assert (tmp_path / "r_figures" / "model_metrics.png").is_file()

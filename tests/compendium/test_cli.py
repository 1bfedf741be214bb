"""The compendium commands of the CLI (perturbridge.cli.compendium)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from perturbridge.cli.compendium import register

from ._fixtures import write_plan


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _main() -> None:
        """perturbridge (test app)"""

    register(app)
    return app


runner = CliRunner(env={"COLUMNS": "200"})


def test_build_dry_run_then_build_and_rebuild(tmp_path, inputs, app):
    plan = write_plan(tmp_path, l1000=inputs["l1000"], extra="[executor]\nn_jobs = 1\n")
    res = runner.invoke(app, ["build", str(plan), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "ingest:sim_l1000" in res.output and "to run" in res.output
    res = runner.invoke(app, ["build", str(plan)])
    assert res.exit_code == 0, res.output
    assert "7 tasks computed, 0 reused" in res.output and "store written" in res.output
    res = runner.invoke(app, ["build", str(plan)])
    assert "0 tasks computed, 7 reused" in res.output and "already up to date" in res.output
    res = runner.invoke(app, ["build", str(plan), "--store", str(tmp_path / "s2"), "-j", "1"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "s2" / "manifest.json").is_file()


def test_build_reports_a_bad_plan(tmp_path, app):
    plan = tmp_path / "plan.toml"
    plan.write_text('[store]\npath = "s"\n')
    res = runner.invoke(app, ["build", str(plan)])
    assert res.exit_code == 2
    assert "the plan lists no datasets" in res.output


def test_info(built, app):
    res = runner.invoke(app, ["info", str(built["store"])])
    assert res.exit_code == 0, res.output
    for word in ("datasets", "samples", "compounds", "contexts", "conditions", "genes"):
        assert word in res.output
    assert "sim_l1000" in res.output and "L1000" in res.output and "ledger" in res.output
    res = runner.invoke(app, ["info", str(built["store"]), "--json"])
    data = json.loads(res.output)
    assert data["counts"]["datasets"] == 2
    assert {d["dataset"] for d in data["datasets"]} == {"sim_l1000", "sim_counts"}


def test_info_on_a_folder_that_is_not_a_store(tmp_path, app):
    res = runner.invoke(app, ["info", str(tmp_path)])
    assert res.exit_code == 2
    assert "not a perturbridge compendium store" in res.output


def test_query(built, app):
    sql = "SELECT dataset, count(*) AS n FROM conditions GROUP BY dataset ORDER BY dataset"
    res = runner.invoke(app, ["query", str(built["store"]), sql, "--format", "tsv"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0] == "dataset\tn"
    assert res.output.splitlines()[1].startswith("sim_counts\t")
    res = runner.invoke(app, ["query", str(built["store"]), "SELECT * FROM genes", "--limit", "3"])
    assert res.exit_code == 0 and "3 shown" in res.output
    res = runner.invoke(app, ["query", str(built["store"]), "SELECT * FROM nope"])
    assert res.exit_code == 2 and "error" in res.output


def test_export(tmp_path, built, app):
    out = tmp_path / "shards"
    res = runner.invoke(
        app, ["export", str(built["store"]), "--out", str(out), "--rows-per-shard", "5000"]
    )
    assert res.exit_code == 0, res.output
    assert len(list(out.glob("part-*.parquet"))) >= 1
    h5ad = tmp_path / "eval.h5ad"
    res = runner.invoke(
        app,
        ["export", str(built["store"]), "--to", "anndata", "--out", str(h5ad),
         "--dataset", "sim_counts"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    import anndata as ad

    obs = ad.read_h5ad(h5ad).obs
    assert set(obs["dataset"]) == {"sim_counts"}
    res = runner.invoke(app, ["export", str(built["store"]), "--out", str(out)])
    assert res.exit_code == 2 and "is not empty" in res.output


def test_import_release(tmp_path, built, app):
    import shutil

    root = tmp_path / "release" / "sim_counts" / "group_rep"
    root.mkdir(parents=True)
    from perturbridge.compendium.store import read_effects_file

    eff = read_effects_file(built["store"], "effects/sim_counts/group/CVCL_0023_de.h5ad")
    eff.obs["cell_type"] = eff.obs["cell_context"]
    eff.write_h5ad(root / "CVCL_0023_de.h5ad")
    res = runner.invoke(
        app, ["import-release", str(tmp_path / "release"), "--store", str(tmp_path / "st")]
    )
    assert res.exit_code == 0, res.output
    assert "1 datasets" in res.output
    got = pd.read_parquet(tmp_path / "st" / "catalog" / "conditions.parquet")
    assert len(got) == eff.n_obs
    shutil.rmtree(tmp_path / "st")

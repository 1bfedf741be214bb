"""The demos end to end: simulate → ingest → DE → recovery of the truth, every source
family, and the compendium of every family built from a plan.

The slow runs share one ``perturbridge demo`` (a session fixture): its L1000 demo, its
families and its compendium are the ones checked below.
"""

from __future__ import annotations

import anndata as ad
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from perturbridge._demo import FAMILIES, write_demo_plan
from perturbridge.cli.compendium import register
from perturbridge.compendium import Compendium


@pytest.mark.slow
def test_demo_recovers_planted_effects(demo_run):
    res = demo_run.l1000
    assert res is not None, demo_run.output
    m = res.metrics
    assert m["contrasts"] == m["contrasts_matched_to_truth"] > 0
    assert m["pearson_logFC_vs_truth"] > 0.5
    assert m["direction_agreement_on_true_effects"] > 0.7
    assert m["false_discovery_proportion"] < 0.2
    led = pd.read_csv(res.files["ledger"], sep="\t", keep_default_na=False)
    ingest = led[led["stage"] == "ingest"]
    assert len(ingest) == m["samples_in"]
    assert (ingest["status"] == "kept").sum() == m["samples_kept"]
    # PC3 at 6 h has no vehicle in the demo: those conditions are in the ledger
    lost = led[led["reason"] == "no_matched_control"]
    assert len(lost) > 0 and lost["id"].str.startswith("PC3|").all()
    eff = ad.read_h5ad(res.files["effects"])
    assert eff.n_obs == m["contrasts"]
    assert "ledger" in eff.uns


@pytest.mark.slow
def test_demo_cli(demo_run):
    assert demo_run.exit_code == 0, demo_run.output
    assert "pearson_logFC_vs_truth" in demo_run.output
    assert (demo_run.out / "effects_group.h5ad").exists()
    families = pd.read_csv(demo_run.out / "families" / "families.tsv", sep="\t")
    assert set(families["source"]) == set(FAMILIES)
    print(families.drop(columns=["dropped_reasons"]).to_string())
    ran = families[families["skipped"].isna()]
    assert len(ran) >= len(FAMILIES) - 1  # CIGS may skip without openpyxl
    assert (ran["contrasts"] > 0).all()
    assert (ran["recovery_r"] > 0.2).all()
    assert (ran["ledger_dropped"] > 0).all()  # every fixture plants something to drop
    # the compendium of every family, built through a plan file and summarized
    assert (demo_run.out / "compendium_demo" / "plan.toml").exists()
    assert "totals" in demo_run.output and "ledger totals" in demo_run.output


@pytest.mark.slow
def test_the_demo_builds_every_assay_family(demo_run):
    report = demo_run.compendium
    assert report is not None, demo_run.output
    assert report.store_written
    store = demo_run.out / "compendium_demo" / "compendium"
    with Compendium.open(store) as comp:
        datasets = comp.sql("SELECT * FROM datasets ORDER BY dataset")
    assert sorted(datasets["source"]) == sorted(FAMILIES)
    assert (datasets["n_conditions"] > 0).all()
    assert set(datasets["de_method"]) == {"limma-trend", "limma-voom"}
    app = typer.Typer()

    @app.callback()
    def _main() -> None:
        """test app"""

    register(app)
    res = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["info", str(store)])
    assert res.exit_code == 0, res.output
    assert "demo_tahoe" in res.output and "L1000" in res.output


def test_demo_plan_for_some_sources(tmp_path):
    plan = write_demo_plan(tmp_path, sources=("l1000", "generic"), n_jobs=1)
    text = plan.read_text()
    assert 'source = "l1000"' in text and 'source = "generic"' in text
    with pytest.raises(ValueError, match=r"no demo dataset for sources \['nope'\]"):
        write_demo_plan(tmp_path / "x", sources=("nope",))

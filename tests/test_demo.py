"""The embedded demo end to end: simulate → ingest → limma-trend → recovery of the truth."""

from __future__ import annotations

import anndata as ad
import pandas as pd
from typer.testing import CliRunner

from perturbridge.cli import app
from perturbridge.demo import run_demo
from perturbridge.demo_all import FAMILIES


def test_demo_recovers_planted_effects(tmp_path):
    res = run_demo(tmp_path, seed=1, n_genes=120, n_compounds=4)
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


def test_demo_cli(tmp_path):
    r = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    assert "pearson_logFC_vs_truth" in r.output
    assert (tmp_path / "d" / "effects_group.h5ad").exists()
    families = pd.read_csv(tmp_path / "d" / "families" / "families.tsv", sep="\t")
    assert set(families["source"]) == set(FAMILIES)
    print(families.drop(columns=["dropped_reasons"]).to_string())
    ran = families[families["skipped"].isna()]
    assert len(ran) >= len(FAMILIES) - 1  # CIGS may skip without openpyxl
    assert (ran["contrasts"] > 0).all()
    assert (ran["recovery_r"] > 0.2).all()
    assert (ran["ledger_dropped"] > 0).all()  # every fixture plants something to drop
    # the compendium of every family, built through a plan file and summarized
    assert (tmp_path / "d" / "compendium_demo" / "plan.toml").exists()
    assert "totals" in r.output and "ledger totals" in r.output

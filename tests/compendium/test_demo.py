"""The demo compendium: one simulated dataset of every assay family, built from a plan."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from perturbridge.cli.compendium import register
from perturbridge.compendium import Compendium
from perturbridge.compendium.demo import DEMO_SOURCES, run_demo_compendium, write_demo_plan


@pytest.mark.slow
def test_the_demo_builds_every_assay_family(tmp_path):
    report = run_demo_compendium(tmp_path, n_workers=1)
    assert report.store_written
    with Compendium.open(tmp_path / "compendium") as comp:
        datasets = comp.sql("SELECT * FROM datasets ORDER BY dataset")
    assert sorted(datasets["source"]) == sorted(DEMO_SOURCES)
    assert (datasets["n_conditions"] > 0).all()
    assert set(datasets["de_method"]) == {"limma-trend", "limma-voom"}
    app = typer.Typer()

    @app.callback()
    def _main() -> None:
        """test app"""

    register(app)
    res = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["info", str(tmp_path / "compendium")])
    assert res.exit_code == 0, res.output
    assert "demo_tahoe" in res.output and "L1000" in res.output


def test_demo_plan_for_some_sources(tmp_path):
    plan = write_demo_plan(tmp_path, sources=("l1000", "generic"), n_workers=1)
    text = plan.read_text()
    assert 'source = "l1000"' in text and 'source = "generic"' in text
    with pytest.raises(ValueError, match=r"no demo dataset for sources \['nope'\]"):
        write_demo_plan(tmp_path / "x", sources=("nope",))

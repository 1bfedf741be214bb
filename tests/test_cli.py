"""The command line: help texts with examples, de on ingested samples, errors."""

from __future__ import annotations

import anndata as ad
import pytest
from typer.testing import CliRunner

from conftest import shared_path
from perturbridge.cli import app

runner = CliRunner()


@pytest.mark.parametrize("cmd", [["ingest", "l1000"], ["de"], ["demo"], ["sources"]])
def test_every_command_has_help_with_an_example(cmd):
    r = runner.invoke(app, [*cmd, "--help"])
    assert r.exit_code == 0
    assert "Example" in r.output and "perturbridge" in r.output


def test_ingest_then_de_both_modes(tmp_path):
    samples = tmp_path / "s.h5ad"
    r = runner.invoke(
        app,
        [
            "ingest",
            "l1000",
            "--level3",
            str(shared_path("l1000_cmapPy", "test_l1000.gct")),
            "--out",
            str(samples),
        ],
    )
    assert r.exit_code == 0, r.output
    for mode, n in (("group", 328), ("separate", 328)):
        out = tmp_path / f"e_{mode}.h5ad"
        r = runner.invoke(app, ["de", str(samples), "--mode", mode, "--out", str(out)])
        assert r.exit_code == 0, r.output
        eff = ad.read_h5ad(out)
        assert eff.n_obs == n
        assert eff.uns["perturbridge"]["replicate_mode"] == mode


def test_de_rejects_bad_mode_and_missing_file(tmp_path):
    r = runner.invoke(
        app,
        ["de", str(tmp_path / "none.h5ad"), "--mode", "pooled", "--out", str(tmp_path / "e.h5ad")],
    )
    assert r.exit_code == 2
    assert "pooled" in r.output
    r = runner.invoke(app, ["de", str(tmp_path / "none.h5ad"), "--out", str(tmp_path / "e.h5ad")])
    assert r.exit_code == 2
    assert not (tmp_path / "e.h5ad").exists()


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and "perturbridge" in r.output

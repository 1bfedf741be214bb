"""The `agreement` and `report` commands."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from perturbridge.cli import app

from ._stores import cross_store

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return cross_store(tmp_path_factory.mktemp("cli"))


def test_agreement_command(store, tmp_path):
    out = tmp_path / "agr"
    res = runner.invoke(
        app,
        [
            "agreement",
            str(store),
            "--out",
            str(out),
            "--min-compounds",
            "3",
            "--n-boot",
            "20",
            "--metrics",
            "deg_spearman,direction",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (out / "cross_summary.parquet").is_file()
    assert "12 matched pairs" in res.output
    assert "deg_spearman" in res.output


def test_agreement_command_errors(store, tmp_path):
    res = runner.invoke(
        app,
        [
            "agreement",
            str(store),
            "--out",
            str(tmp_path / "a"),
            "--metrics",
            "nope",
            "--no-progress",
        ],
    )
    assert res.exit_code == 2
    assert "unknown metrics" in res.output
    res = runner.invoke(
        app, ["agreement", str(tmp_path / "missing"), "--out", str(tmp_path / "a"), "--no-progress"]
    )
    assert res.exit_code == 2


def test_report_command_calls_write_report(store, tmp_path, monkeypatch):
    import types

    calls = {}

    def fake(
        store_arg, out, *, agreement_dir=None, options=None, figures_dir=None, evaluation_dir=None
    ):
        calls.update(store=store_arg, out=out, agreement_dir=agreement_dir, options=options)
        calls.update(evaluation_dir=evaluation_dir)
        out.write_text("<html></html>")
        return out

    import sys

    monkeypatch.setitem(
        sys.modules, "perturbridge.report", types.SimpleNamespace(write_report=fake)
    )
    out = tmp_path / "r.html"
    res = runner.invoke(
        app,
        [
            "report",
            str(store),
            "--out",
            str(out),
            "--agreement",
            str(tmp_path / "agr"),
            "--min-compounds",
            "4",
        ],
    )
    assert res.exit_code == 0, res.output
    assert calls["options"]["min_compounds"] == 4 and calls["agreement_dir"] == tmp_path / "agr"
    assert calls["evaluation_dir"] is None  # no models section unless --evaluation
    assert out.is_file()


def test_cli_choices_are_the_library_vocabularies():
    """The choices of the agreement options are the library's (``Literal``) vocabularies;
    the CLI keeps its own enums so that its help loads no library."""
    from typing import get_args

    from perturbridge.agreement.matching import Identity
    from perturbridge.agreement.metrics import Score
    from perturbridge.agreement.published.cross import Weighting
    from perturbridge.agreement.signatures import ZScore
    from perturbridge.cli.agreement import (
        IdentityOption,
        ScoreOption,
        WeightingOption,
        ZScoreOption,
    )

    assert tuple(o.value for o in IdentityOption) == get_args(Identity)
    assert tuple(o.value for o in ZScoreOption) == get_args(ZScore)
    assert tuple(o.value for o in ScoreOption) == get_args(Score)
    assert tuple(o.value for o in WeightingOption) == ("auto", *get_args(Weighting))

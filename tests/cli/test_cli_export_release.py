"""``perturbridge export --to release``: the release tree of a store, read back by
``import-release``; wrong options are one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from perturbridge.cli import app
from perturbridge.compendium import Compendium

runner = CliRunner(env={"COLUMNS": "200"})  # no wrapping inside long temporary paths


def _run(*args: str | Path) -> tuple[int, str]:
    """The exit code and the output, its lines joined (the console wraps them)."""
    r = runner.invoke(app, list(map(str, args)))
    return r.exit_code, " ".join(r.output.split())


@pytest.fixture(scope="module")
def store(demo_run) -> Path:
    assert demo_run.exit_code == 0, demo_run.output[-2000:]
    return demo_run.out / "compendium_demo" / "compendium"


@pytest.mark.slow  # the demo store (one session fixture shared with the demo tests)
def test_release_tree_and_round_trip(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "release"
    code, text = _run("export", store, "--to", "release", "--out", out,
                      "--dataset", "demo_l1000", "--dataset", "demo_op3")  # fmt: skip
    assert code == 0, text
    with Compendium.open(store) as comp:
        n_contexts = comp.sql(
            "SELECT dataset, mode, count(DISTINCT cell_context) AS n FROM contrasts "
            "WHERE dataset IN ('demo_l1000', 'demo_op3') GROUP BY ALL"
        )
        before = comp.sql(
            "SELECT dataset, count(*) AS n FROM conditions "
            "WHERE dataset IN ('demo_l1000', 'demo_op3') GROUP BY 1 ORDER BY 1"
        )
    folder = {"group": "group_rep", "separate": "sep_rep"}
    for dataset, mode, n in n_contexts[["dataset", "mode", "n"]].to_numpy().tolist():
        files = list((out / str(dataset) / folder[str(mode)]).glob("*_de.h5ad"))
        assert len(files) == n, (dataset, mode, files)
    assert not (out / "demo_op3" / "sep_rep").exists()  # op3: group mode only
    n_files = sum(n_contexts["n"]) + 2  # and one <dataset>_processed.h5ad each
    assert f"wrote {out}: {n_files} .h5ad files of 2 datasets" in text

    code, text = _run("import-release", out, "--store", tmp_path / "back")
    assert code == 0, text
    with Compendium.open(tmp_path / "back") as comp:
        after = comp.sql("SELECT dataset, count(*) AS n FROM conditions GROUP BY 1 ORDER BY 1")
    assert after.to_dict("records") == before.to_dict("records")

    code, text = _run("export", store, "--to", "release", "--out", out)
    assert code == 2 and "is not empty; export into a new or empty folder" in text


def test_release_takes_no_layer_or_mode(tmp_path: Path) -> None:
    code, text = _run("export", tmp_path, "--to", "release", "--out", tmp_path / "r",
                      "--layer", "t")  # fmt: skip
    assert code == 2
    assert "--to release writes every layer of both modes: leave out --layer and --mode" in text

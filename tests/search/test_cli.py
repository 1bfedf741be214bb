"""The ``perturbridge search`` command (perturbridge.cli.search)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from perturbridge.cli import app
from perturbridge.compendium import Compendium

runner = CliRunner(env={"COLUMNS": "200"})
QUERY = "sim_a:SIMCL01:D0-0003:10uM:24h"


def test_condition_query_writes_tables_and_figure(sim_store: Path, tmp_path: Path) -> None:
    out, fig = tmp_path / "hits", tmp_path / "top.png"
    args = ["search", str(sim_store), "--condition", QUERY, "--method", "cosine",
            "--n-null", "0", "--top", "5", "--out", str(out), "--figure", str(fig),
            "--no-progress"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert f"query {QUERY}: top 5 of 144 conditions (cosine)" in res.output
    assert "1 queries × 144 conditions" in res.output
    hits = pd.read_csv(out / "hits.tsv", sep="\t")
    assert len(hits) == 5 and QUERY not in set(hits["condition_id"])
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a second run replaces the folder it wrote
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output


def test_up_down_and_gmt_queries(sim_store: Path, tmp_path: Path) -> None:
    up, down, gmt = tmp_path / "up.txt", tmp_path / "down.grp", tmp_path / "q.gmt"
    up.write_text("\n".join(f"SIMG{g:05d}" for g in range(1, 21)) + "\nNOT_A_GENE\n")
    down.write_text("# down\n" + "\n".join(f"SIMG{g:05d}" for g in range(50, 70)) + "\n")
    res = runner.invoke(app, ["search", str(sim_store), "--up", str(up), "--down", str(down),
                              "--top", "3", "--n-null", "10", "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "top 3 of 144 conditions (wtcs)" in res.output
    assert "1 identifiers match no gene of the store: NOT_A_GENE" in res.output
    gmt.write_text(
        "first\tdesc\t" + "\t".join(f"SIMG{g:05d}" for g in range(1, 21)) + "\n"
        "second\tdesc\t" + "\t".join(f"SIMG{g:05d}" for g in range(100, 130)) + "\n"
    )
    res = runner.invoke(app, ["search", str(sim_store), "--gmt", str(gmt), "--top", "2",
                              "--n-null", "0", "--dataset", "sim_c", "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "query first: top 2 of 48 conditions" in res.output
    assert "query second: top 2 of 48 conditions" in res.output


def test_list_methods_needs_no_store() -> None:
    res = runner.invoke(app, ["search", "--list-methods"])
    assert res.exit_code == 0, res.output
    for name in ("wtcs", "ks", "xsum", "cosine", "spearman"):
        assert name in res.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give one kind of query"),
        (["--condition", QUERY, "--up", "up.txt"], "found --up/--down, --condition"),
        (["--condition", "sim_a:none"], "query condition 'sim_a:none' is not a condition"),
        (["--condition", QUERY, "--dataset", "nope"], "datasets ['nope'] not in the store"),
        (["--condition", QUERY, "--method", "nope"], "nope"),
        (["--up", "missing.txt"], "missing.txt"),
        (["--condition", QUERY, "--gmt-down", "d.gmt"], "--gmt-down pairs down sets"),
        (["--condition", QUERY, "--top", "0"], "top=0"),
    ],
)
def test_user_errors_are_one_line(
    sim_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str],
    message: str,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "up.txt").write_text("SIMG00001\n")
    res = runner.invoke(app, ["search", str(sim_store), *extra, "--no-progress"])
    assert res.exit_code == 2, res.output
    assert "error:" in res.output and message in res.output
    assert "Traceback" not in res.output


def test_out_that_is_a_file_is_refused(sim_store: Path, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    res = runner.invoke(app, ["search", str(sim_store), "--condition", QUERY,
                              "--out", str(tmp_path / "other")])  # fmt: skip
    assert res.exit_code == 2 and "holds no search result" in res.output
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"
    (tmp_path / "f").write_text("x")
    res = runner.invoke(app, ["search", str(sim_store), "--condition", QUERY,
                              "--out", str(tmp_path / "f")])  # fmt: skip
    assert res.exit_code == 2 and "is a file" in res.output
    assert (tmp_path / "f").read_text() == "x"


def test_search_index_then_search(sim_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(sim_store, store)
    res = runner.invoke(app, ["search-index", str(store), "--no-progress"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "search index of" in text and "144 conditions × 300 genes" in text
    assert (store / "search" / "group-logFC" / "index.json").is_file()
    res = runner.invoke(app, ["search", str(store), "--condition", QUERY, "--top", "3",
                              "--n-null", "0", "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["search-index", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "error:" in res.output and "Traceback" not in res.output


def test_signature_file_query(sim_store: Path, tmp_path: Path) -> None:
    with Compendium.open(sim_store) as comp:
        eff = comp.effects([QUERY])
    sig = pd.DataFrame({"gene": eff.var_names, "logFC": eff.X[0]}).dropna()
    sig.to_csv(tmp_path / "sig.csv", index=False)
    res = runner.invoke(app, ["search", str(sim_store), "--signature", str(tmp_path / "sig.csv"),
                              "--method", "cosine", "--n-null", "0", "--top", "1",
                              "--out", str(tmp_path / "o"), "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    hits = pd.read_csv(tmp_path / "o" / "hits.tsv", sep="\t")
    assert hits["condition_id"].tolist() == [QUERY]  # a signature is not its condition
    assert hits["score"].iloc[0] == pytest.approx(1.0, abs=1e-5)

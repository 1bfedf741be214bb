"""`perturbridge agreement --profile published`, `perturbridge report` in the layout of
Tables 4-8, and the report in headless Chromium."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from perturbridge.agreement.published import PublishedOptions, read_published, run_published
from perturbridge.cli import app
from perturbridge.compendium import import_release
from perturbridge.report import write_published_report
from perturbridge.simulate.release import write_release_tree

from .test_html import _chromium, _console_errors, _run_chromium

runner = CliRunner()
PNG_TAG = re.compile(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+"')


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_release_tree(tmp_path_factory.mktemp("cli") / "tree", seed=2)


@pytest.fixture(scope="module")
def folder(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_out") / "published"
    res = runner.invoke(
        app,
        ["agreement", str(tree), "--profile", "published", "--out", str(out), "--n-boot", "200"],
    )
    assert res.exit_code == 0, res.output
    return out


def test_agreement_command_writes_a_published_folder(folder):
    info = json.loads((folder / "agreement.json").read_text())
    assert info["profile"] == "published" and info["weighting"] == "sample_pairs"
    assert "sample_pairs" in info["weighting_note"]
    res = read_published(folder)
    assert set(res.summary["weighting"]) == {"sample_pairs", "condition"}
    assert {"table_4_raw_dataset_pair", "table_5_dataset_pair", "table_6_raw_dataset_pair"} <= set(
        res.summary["summary_level"]
    )
    assert {"table_7_dataset", "table_8_dataset", "table_10_dataset"} <= set(
        res.replicate_summary["summary_level"]
    )
    assert (folder / "published_pairs.csv").is_file()


def test_the_same_numbers_through_a_store(tree, folder, tmp_path):
    """A store with the imported release gives the numbers of the tree itself."""
    store = tmp_path / "store"
    import_release(tree, store)
    via_store = run_published(store, options=PublishedOptions(n_boot=200))
    direct = read_published(folder)
    cols = ["dataset_a", "dataset_b", "matched_condition_key", "observed_direction_agreement_p05"]
    a = via_store.pairs[cols].sort_values(cols[:3]).reset_index(drop=True)
    b = direct.pairs[cols].sort_values(cols[:3]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    np.testing.assert_allclose(
        via_store.summary["ci_low"].to_numpy(float), direct.summary["ci_low"].to_numpy(float)
    )


def test_published_options_are_fixed(tree, tmp_path):
    res = runner.invoke(
        app,
        ["agreement", str(tree), "--profile", "published", "--out", str(tmp_path / "x"),
         "--max-peers", "10", "--alpha", "0.1"],
    )  # fmt: skip
    assert res.exit_code == 2
    assert "--alpha, --max-peers: not options of --profile published" in " ".join(
        res.output.split()
    )
    assert not (tmp_path / "x").exists()
    res = runner.invoke(
        app, ["agreement", str(tree), "--out", str(tmp_path / "y"), "--weighting", "condition"]
    )
    assert res.exit_code == 2 and "belong to --profile published" in res.output


def test_errors_are_said_without_a_traceback(tmp_path):
    res = runner.invoke(
        app, ["agreement", str(tmp_path), "--profile", "published", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2
    assert "neither a compendium store" in " ".join(res.output.split())
    assert "Traceback" not in res.output


@pytest.fixture(scope="module")
def report(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "published.html"
    res = runner.invoke(app, ["report", str(folder), "--agreement", str(folder), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_report_has_the_tables_4_to_8_layout(report, folder):
    doc = report.read_text(encoding="utf-8")
    for section in ("table4", "table5", "table6", "table7", "table8", "table10"):
        assert f'id="{section}"' in doc
    assert "Profile <b>published</b>" in doc
    assert "source centroid (published)" in doc
    res = read_published(folder)
    s = res.summary
    row = s[
        (s.weighting == "sample_pairs") & (s.metric == "observed_direction_agreement_p05")
    ].iloc[0]
    assert f"{row['mean']:.3f}" in doc  # the number of the table, as computed
    rep = res.replicate_summary
    for label in ("observed_deg_lfc_spearman_sym_p05", "observed_direction_agreement_p05"):
        value = rep.loc[rep.metric == label, "mean"].iloc[0]
        assert f"{value:.3f}" in doc, label
    assert len(PNG_TAG.findall(doc)) == 2
    assert "<script" not in doc


def test_report_from_the_profile_option(tree, tmp_path):
    out = tmp_path / "r.html"
    res = runner.invoke(
        app, ["report", str(tree), "--profile", "published", "--out", str(out), "--n-boot", "50"]
    )
    assert res.exit_code == 0, res.output
    assert 'id="table5"' in out.read_text(encoding="utf-8")


def test_empty_replicates_are_said(tree, tmp_path):
    res = run_published(tree, options=PublishedOptions(n_boot=50, replicates=False))
    out = write_published_report(res, tmp_path / "r.html")
    assert "No condition has two or more replicates" in out.read_text(encoding="utf-8")


def test_headless_chromium_renders_the_published_report(tmp_path, report):
    image = pytest.importorskip("PIL.Image")
    exe = _chromium()
    url = report.absolute().as_uri()
    shot = tmp_path / "shot.png"
    proc = _run_chromium(
        exe, tmp_path / "p1", f"--screenshot={shot}", "--window-size=1400,3000", url
    )
    assert shot.is_file(), proc.stderr[-2000:]
    assert not _console_errors(proc.stderr), _console_errors(proc.stderr)
    with image.open(shot) as im:
        pixels = np.asarray(im.convert("L"), dtype=float)
    assert (pixels < 245).mean() > 0.03 and pixels.std() > 10
    dom = _run_chromium(exe, tmp_path / "p2", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for section in ("table4", "table5", "table6", "table7", "table8"):
        assert f'id="{section}"' in dom.stdout
    assert dom.stdout.count("<table>") >= 10
    assert len(PNG_TAG.findall(dom.stdout)) == 2


def test_a_release_file_changed_after_its_import_is_refused(tmp_path):
    """The profile reads the release files a store was imported from: one changed since
    (same name, other values) is an error, never numbers from the wrong file."""
    import anndata as ad

    tree = write_release_tree(tmp_path / "tree", seed=5)
    store = tmp_path / "store"
    import_release(tree, store)
    path = tree / "beta" / "group_rep" / "CVCL_0023_de.h5ad"
    a = ad.read_h5ad(path)
    a.layers["logFC"] = a.layers["logFC"] * 2
    a.write_h5ad(path)
    res = runner.invoke(
        app, ["agreement", str(store), "--profile", "published", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2
    assert "changed since it was imported" in " ".join(res.output.split())
    assert not (tmp_path / "o").exists()

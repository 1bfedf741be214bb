"""The command line: help texts with examples, de on ingested samples, errors."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import shared_path
from perturbridge.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    "cmd",
    [
        ["ingest", "l1000"],
        ["ingest", "op3"],
        ["de"],
        ["pseudobulk"],
        ["demo"],
        ["agreement"],
        ["report"],
        ["sources"],
        ["sources", "list"],
    ],
)
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


@pytest.mark.r_oracle
def test_de_engine_r_agrees_with_ours_on_counts(tmp_path, r_oracle):
    """Counts dispatch to limma-voom; --engine r runs the same analysis in R."""
    from perturbridge.simulate import simulate_counts

    sim = simulate_counts(n_genes=300, n_plates=3, conditions_per_plate=6, seed=3)
    path = tmp_path / "counts.h5ad"
    sim.samples.write_h5ad(path)
    outs = {}
    for engine in ("ours", "r"):
        outs[engine] = tmp_path / f"e_{engine}.h5ad"
        r = runner.invoke(app, ["de", str(path), "--engine", engine, "--out", str(outs[engine])])
        assert r.exit_code == 0, r.output
        assert "limma-voom" in r.output
    ours, theirs = ad.read_h5ad(outs["ours"]), ad.read_h5ad(outs["r"])
    assert list(ours.obs_names) == list(theirs.obs_names)
    for layer in ("logFC", "t", "P.Value", "adj.P.Value.across_all_contrasts", "B"):
        a, b = np.asarray(ours.layers[layer]), np.asarray(theirs.layers[layer])
        assert (np.isnan(a) == np.isnan(b)).all()
        np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=1e-6, atol=1e-8)
    assert ours.uns["perturbridge"]["provenance"]["input_paths"] == [str(path)]


def test_every_source_has_a_reader_and_an_ingest_command():
    from perturbridge._demo import FAMILIES
    from perturbridge.sources import get_source, source_names

    names = source_names()
    assert set(FAMILIES) <= set(names)  # tests may register their own sources too
    for name in FAMILIES:
        reader = get_source(name).reader()
        assert reader.__name__ == f"read_{name}"
        r = runner.invoke(app, ["ingest", name, "--help"])
        assert r.exit_code == 0, (name, r.output)


def test_ingest_generic_command_end_to_end(tmp_path):
    from perturbridge.simulate.upstream import write_op3

    fx = write_op3(tmp_path / "op3", n_genes=40, n_compounds=4, seed=1)
    (h5ad,) = fx.files.values()
    out, ledger = tmp_path / "s.h5ad", tmp_path / "ledger.tsv"
    r = runner.invoke(
        app,
        [
            "ingest", "op3", "--input", f"h5ad={h5ad}", "--set", "dataset=my_op3",
            "--out", str(out), "--ledger", str(ledger),
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    samples = ad.read_h5ad(out)
    assert set(samples.obs["dataset"]) == {"my_op3"}
    assert "wrote" in r.output and ledger.exists()
    bad = runner.invoke(app, ["ingest", "op3", "--input", f"nope={h5ad}", "--out", str(out)])
    assert bad.exit_code == 2 and "unknown parameter" in bad.output
    missing = tmp_path / "none.h5ad"
    r = runner.invoke(app, ["ingest", "op3", "-i", f"h5ad={missing}", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and not (tmp_path / "x").exists()


@pytest.mark.slow  # the demo (one session fixture shared with the demo tests)
def test_the_demo_ends_with_agreement_tables_and_the_report(demo_run):
    from perturbridge.agreement import read_agreement

    assert demo_run.exit_code == 0, demo_run.output[-2000:]
    assert "deg_spearman" in demo_run.output and "direction" in demo_run.output
    html = (demo_run.out / "report.html").read_text()
    assert html.count("<img") >= 3 and "<table" in html
    res = read_agreement(demo_run.out / "agreement_demo" / "agreement")
    cs = res.cross_summary
    sel = cs[(cs["level"] == "all") & (cs["baseline"] == "cross_centroid_a")]
    delta = sel.groupby("metric")["delta"].mean()
    # the simulator's planted pattern, as published
    assert delta["direction"] > 0 > delta["deg_spearman"]


def test_de_options_of_the_original_pipeline(tmp_path):
    """`de` drops vehicles at times without treated wells (the original's choice) unless
    told to keep them, and writes stdev.scaled when asked."""
    import importlib.util

    # the seeded design with orphan vehicles of the DE tests (tests/de is not a package)
    spec = importlib.util.spec_from_file_location(
        "_de_test_limma", Path(__file__).parent / "de" / "test_limma.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    samples = tmp_path / "s.h5ad"
    module._orphan_samples().write_h5ad(samples)
    outs = {}
    for flag in ([], ["--keep-orphan-vehicles"]):
        out = tmp_path / f"e{len(flag)}.h5ad"
        r = runner.invoke(app, ["de", str(samples), "--out", str(out), "--stdev-scaled", *flag])
        assert r.exit_code == 0, r.output
        outs[bool(flag)] = ad.read_h5ad(out)
    dropped, kept = outs[False], outs[True]
    reasons = set(dropped.uns["ledger"]["reason"].astype(str))
    assert "vehicle_without_treated" in reasons
    assert "vehicle_without_treated" not in set(kept.uns["ledger"]["reason"].astype(str))
    assert "stdev.scaled" in dropped.layers
    # same contrasts, different residual information in the A375 fit
    assert list(dropped.obs_names) == list(kept.obs_names)
    a375 = (dropped.obs["cell_context"] == "A375").to_numpy()
    assert not np.allclose(dropped.layers["t"][a375], kept.layers["t"][a375])


def test_ingest_set_with_a_bad_number_is_a_usage_error(tmp_path):
    r = runner.invoke(
        app, ["ingest", "vcpi", "--out", str(tmp_path / "s.h5ad"), "--set", "chunk_size=many"]
    )
    assert r.exit_code == 2
    assert "chunk_size must be a whole number" in r.output


def test_cli_choices_are_the_library_vocabularies():
    from perturbridge.cli._common import Mode
    from perturbridge.schema import REPLICATE_MODES

    assert tuple(m.value for m in Mode) == REPLICATE_MODES


def test_help_loads_no_library():
    """`perturbridge --help` (and a command's help) imports no adapter (only their
    declarations), no AnnData and none of the compute parts: those load in the command
    that runs them (tests/cli/test_cli_help.py checks the help of every command)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from perturbridge.cli import app\n"
        "for args in (['--help'], ['build', '--help'], ['ingest', 'l1000', '--help']):\n"
        "    try:\n"
        "        app(args, prog_name='perturbridge')\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('anndata', 'perturbridge.sources._base', 'perturbridge.de', 'duckdb',\n"
        "         'perturbridge.compendium', 'perturbridge.agreement', 'matplotlib')\n"
        "print('LOADED', [m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "LOADED []" in out, out[-500:]

"""``perturbridge effects`` on the demo store: values, order, files, top table, errors.

The expected values come from the store through the library (``Compendium.effects``)
and, for the top table, from the layers the DE engine wrote at build time
(``adj.P.Value.within_one_contrast``), not from the command under test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from perturbridge.cli import app
from perturbridge.compendium import Compendium

pytestmark = pytest.mark.slow  # the demo store (one session fixture shared with the demo tests)

runner = CliRunner()
COMPOUND, CONTEXT = "simcpd-0004", "A375"


@pytest.fixture(scope="module")
def store(demo_run) -> Path:
    assert demo_run.exit_code == 0, demo_run.output[-2000:]
    return demo_run.out / "compendium_demo" / "compendium"


def _run(*args: str | Path) -> tuple[int, str]:
    """The exit code and the output, its lines joined (the console wraps them)."""
    r = runner.invoke(app, ["effects", *map(str, args)])
    return r.exit_code, " ".join(r.output.split())


def test_values_are_the_stores_in_numeric_dose_order(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "e.tsv"
    code, text = _run(store, "--compound", COMPOUND, "--context", CONTEXT, "-g", "GENE1,GENE2",
                      "--out", out)  # fmt: skip
    assert code == 0, text
    got = pd.read_csv(out, sep="\t")
    with Compendium.open(store) as comp:
        conds = comp.conditions(compound=COMPOUND, context=CONTEXT)
        ids = comp.genes()
        # GENE1/GENE2 are gene ids and symbols of several datasets: every id with the symbol
        names = ["GENE1", "GENE2"]
        wanted = ids[ids["symbol"].isin(names) | ids["gene_id"].isin(names)]
        full = comp.effects(conds, genes=wanted["gene_id"].tolist())
    x = np.asarray(full.X)
    measured = ~np.isnan(x)
    assert len(got) == measured.sum() > 0
    lookup = pd.DataFrame(x, index=full.obs_names, columns=full.var_names)
    for row in got.itertuples(index=False):
        assert row.logFC == pytest.approx(
            lookup.at[str(row.contrast_id), str(row.gene_id)], rel=1e-6
        )
    assert set(got["symbol"]) == {"GENE1", "GENE2"}
    # doses go 0.04 … 3.33, 10 (numerically; as text 10 would come before 3.33)
    for _, part in got.groupby(["pert_time_h", "gene_id"]):
        doses = part["pert_dose_uM"].tolist()
        assert doses == sorted(doses) and len(set(doses)) == 6, doses
    assert "pairs not measured by their dataset left out" in text


def test_prints_a_limited_table_with_a_note(store: Path) -> None:
    code, text = _run(store, "--compound", COMPOUND, "--context", CONTEXT, "--genes", "GENE1",
                      "--limit", "3")  # fmt: skip
    assert code == 0, text
    assert "logFC (group mode)" in text and "simcpd-0" in text
    assert "12 conditions" in text and "3 shown (--limit); --out FILE writes them all" in text


def test_parquet_and_separate_mode(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "e.parquet"
    code, text = _run(store, "--genes", "GENE3", "--mode", "separate", "--out", out)
    assert code == 0, text
    got = pd.read_parquet(out)
    assert set(got["dataset"]) == {"demo_l1000"}  # the only dataset with separate-mode DE
    assert got["replicate"].notna().all()
    assert "matching conditions without separate-mode contrasts" in text


def test_unknown_genes_are_listed(store: Path) -> None:
    code, text = _run(store, "--compound", COMPOUND, "--genes", "GENE1,NOPE1", "-g", "NOPE2")
    assert code == 2
    assert "2 of 3 genes are not in the store" in text and "NOPE1, NOPE2" in text


def test_no_matching_condition_is_an_error(store: Path) -> None:
    code, text = _run(store, "--compound", "no-such-compound", "--genes", "GENE1")
    assert code == 2
    assert "no condition of" in text and "--compound no-such-compound" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "e.txt"], "write a .csv, .tsv, .parquet file, found '.txt'"),
        ([], "give --compound, --context, --dataset, --dose, --time or --genes"),
        (["--compound", COMPOUND, "--top", "5"], "--top needs one condition, 36 match"),
    ],
)
def test_bad_requests(store: Path, args: list[str], message: str) -> None:
    code, text = _run(store, *args)
    assert code == 2 and message in text, text


def test_top_table_of_one_condition(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "top.csv"
    code, text = _run(store, "--compound", COMPOUND, "--context", CONTEXT, "--dose", "0.04",
                      "--time", "6", "--top", "7", "--out", out)  # fmt: skip
    assert code == 0, text
    top = pd.read_csv(out, dtype={"gene_id": str})
    assert list(top.columns) == [
        "gene_id", "symbol", "logFC", "AveExpr", "t", "P.Value", "adj.P.Val", "B"
    ]  # fmt: skip
    assert len(top) == 7 and top["P.Value"].is_monotonic_increasing
    with Compendium.open(store) as comp:
        cond = comp.conditions(compound=COMPOUND, context=CONTEXT, dose=0.04, time=6)
        genes = top["gene_id"].tolist()
        adj = comp.effects(cond, genes=genes, layer="adj.P.Value.within_one_contrast").X[0]
        lfc = comp.effects(cond, genes=genes, layer="logFC").X[0]
        p_all = comp.effects(cond, layer="P.Value").X[0]
    np.testing.assert_allclose(top["adj.P.Val"], adj, rtol=1e-5)
    np.testing.assert_allclose(top["logFC"], lfc, rtol=1e-6)
    # the 7 smallest p-values of the condition's measured genes
    np.testing.assert_allclose(top["P.Value"], np.sort(p_all[~np.isnan(p_all)])[:7], rtol=1e-6)


@pytest.mark.shared_data
def test_the_real_ljp005_plate_answers(tmp_path: Path) -> None:
    """The real LJP005 A375 plate, built into a store: a compound's doses in numeric
    order, and the top table of one condition against the store's own adjusted p."""
    from conftest import shared_path
    from perturbridge.compendium import build

    plate = shared_path("l1000_cmapPy", "test_l1000.gct")
    (tmp_path / "plan.toml").write_text(
        '[store]\npath = "store"\n[executor]\nn_jobs = 1\n[[datasets]]\nname = "ljp005"\n'
        f'source = "l1000"\ninputs = {{ level3 = "{plate}" }}\nde = {{ modes = ["group"] }}\n'
    )
    build(tmp_path / "plan.toml")
    store = tmp_path / "store"
    with Compendium.open(store) as comp:
        conds = comp.conditions()
        doses = conds.groupby("perturbagen")["pert_dose_uM"].nunique()
        compound = str(doses.idxmax())  # the compound with the most doses
        genes = comp.genes()["symbol"].dropna().astype(str).head(3).tolist()
        one = conds[conds["perturbagen"] == compound].iloc[-1]
        adj = comp.effects(one["condition_id"], layer="adj.P.Value.within_one_contrast").X[0]
    out = tmp_path / "e.csv"
    code, text = _run(store, "--compound", compound, "--genes", ",".join(genes), "--out", out)
    assert code == 0, text
    got = pd.read_csv(out)
    assert set(got["symbol"]) == set(genes)
    for _, part in got.groupby("symbol"):
        assert part["pert_dose_uM"].is_monotonic_increasing and part["pert_dose_uM"].nunique() > 2
    top = tmp_path / "top.csv"
    code, text = _run(store, "--compound", compound, "--dose", one["pert_dose_uM"], "--time",
                      one["pert_time_h"], "--top", "10", "--out", top)  # fmt: skip
    assert code == 0, text
    table = pd.read_csv(top)
    np.testing.assert_allclose(table["adj.P.Val"], np.sort(adj[~np.isnan(adj)])[:10], rtol=1e-5)

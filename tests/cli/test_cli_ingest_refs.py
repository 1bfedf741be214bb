"""``perturbridge ingest … --refs``: the coverage of compounds, cells and genes, and the
reference store in the Samples' provenance."""

from __future__ import annotations

import hashlib
from pathlib import Path

import anndata as ad
import pytest
from typer.testing import CliRunner

from perturbridge.cli import app
from perturbridge.cli.ingest import identity_coverage
from perturbridge.io import write_gct
from perturbridge.simulate import L1000Plates, simulate_l1000

runner = CliRunner()

HGNC = (
    "hgnc_id\tsymbol\tname\tlocus_group\tlocus_type\tstatus\talias_symbol\tprev_symbol"
    "\tdate_modified\tentrez_id\tensembl_gene_id\n"
    "HGNC:11998\tTP53\ttumor protein p53\tprotein-coding gene\tgene with protein product"
    "\tApproved\tP53\t\t2024-10-01\t7157\tENSG00000141510\n"
    "HGNC:1717\tSEPTIN7\tseptin 7\tprotein-coding gene\tgene with protein product"
    "\tApproved\tCDC3\tSEPT7\t2024-05-12\t989\tENSG00000122545\n"
)
DEPMAP = (
    "DepMap_ID,stripped_cell_line_name,CCLE_Name,alias,COSMIC_ID,lineage,sex,source,RRID,"
    "disease\nACH-000019,MCF7,MCF7_BREAST,,905946,breast,Female,ATCC,CVCL_0031,Breast Cancer\n"
)


def _run(*args: str | Path) -> tuple[int, str]:
    """The exit code and the output, its lines joined (the console wraps them)."""
    r = runner.invoke(app, list(map(str, args)))
    return r.exit_code, " ".join(r.output.split())


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A reference store that knows TP53, SEPTIN7 (as SEPT7, by Entrez id) and MCF7, and
    a simulated L1000 plate of 4 genes (two of them those) in A375, MCF7 and PC3."""
    root = tmp_path_factory.mktemp("ingest_refs")
    (root / "src" / "hgnc").mkdir(parents=True)
    (root / "src" / "cells").mkdir()
    (root / "src" / "hgnc" / "hgnc_complete_set.txt").write_text(HGNC)
    (root / "src" / "cells" / "sample_info_21Q1.csv").write_text(DEPMAP)
    refs = root / "refs"
    code, text = _run("refs", "build", "--from", root / "src", "--out", refs, "--packages", "none")
    assert code == 0, text
    sim = simulate_l1000(
        n_genes=4,
        n_compounds=2,
        n_replicates=2,
        plates=L1000Plates(n_vehicle_per_plate=4, n_poscon_per_plate=1, wells_per_plate=96),
        seed=0,
    )
    rows = sim.row_meta.copy()
    rows.index = rows["pr_gene_id"] = ["7157", "989", "10003", "10004"]
    rows["pr_gene_symbol"] = ["TP53", "SEPT7", "GENE3", "GENE4"]
    gct = root / "l3.gct"
    write_gct(gct, sim.data, row_meta=rows, col_meta=sim.col_meta)
    out = root / "samples.h5ad"
    code, text = _run("ingest", "l1000", "--level3", gct, "--out", out, "--refs", refs)
    assert code == 0, text
    return {"refs": refs, "out": out, "text": text}


def test_coverage_is_printed(ingested: dict) -> None:
    text = ingested["text"]
    assert f"identities resolved through {ingested['refs']}" in text
    # cells: MCF7 of A375, MCF7, PC3; genes: TP53 and SEPT7 of four
    assert "cells │ 1 (33.3 %) │ 0 (0.0 %) │ 2 (66.7 %) │ 3" in text
    assert "genes │ 2 (50.0 %) │ 0 (0.0 %) │ 2 (50.0 %) │ 4" in text
    assert "not resolved (no tables for them in" in text and "): compounds" in text


def test_the_reference_store_is_in_the_provenance(ingested: dict) -> None:
    refs = ingested["refs"]
    samples = ad.read_h5ad(ingested["out"])
    recorded = samples.uns["perturbridge"]["provenance"]["references"]
    digest = hashlib.sha256((refs / "manifest.json").read_bytes()).hexdigest()
    assert recorded == {"path": str(refs.resolve()), "manifest_sha256": digest}
    table = identity_coverage(samples)
    cells = table[["resolved", "unresolved", "total"]].to_numpy()[table.index == "cells"]
    assert cells.tolist() == [[1, 2, 3]]
    assert "compounds" not in table.index


def test_coverage_counts_a_name_once_under_its_best_status() -> None:
    import pandas as pd

    obs = pd.DataFrame(
        {
            "is_control": [False, False, False, True],
            "perturbagen": ["a", "a", "b", "DMSO"],
            "compound_status": ["unresolved", "resolved", "ambiguous", None],
            "cell_name": ["X", "X", "Y", "Y"],
            "cell_status": ["resolved", "resolved", None, None],
        },
        index=["s1", "s2", "s3", "s4"],
    )
    var = pd.DataFrame({"gene_status": ["resolved", "no_ensembl", None]}, index=["g1", "g2", "g3"])
    table = identity_coverage(ad.AnnData(obs=obs, var=var))
    assert table.to_numpy().tolist() == [[1, 1, 0, 0, 2], [1, 0, 0, 1, 2], [1, 0, 0, 2, 3]]
    assert table.index.tolist() == ["compounds", "cells", "genes"]

"""CIGS adapter: the authors' workbooks, exclusions with reasons, the low-quality rule,
gene-symbol repairs, identities, DE recovery and bad input."""

from __future__ import annotations

import datetime as dt
import shutil

import anndata as ad
import pytest

pytest.importorskip("openpyxl", reason="CIGS workbooks (.xlsx) need openpyxl")

import openpyxl

from perturbridge.de.voom import limma_voom
from perturbridge.errors import FormatError, SchemaError
from perturbridge.io import write_h5ad
from perturbridge.schema import validate_samples
from perturbridge.simulate.upstream_sc import write_cigs
from perturbridge.sources import get_source
from perturbridge.sources.cigs import (
    SUBSETS,
    CIGSSource,
    read_cigs,
    repair_gene_symbols,
)

MCE_META = "MCE_Bioactive_Compounds_HEK293T_10μM_MetaData.xlsx"
MCE_COUNTS = "MCE_Bioactive_Compounds_HEK293T_10μM_Counts.xlsx"


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    return write_cigs(tmp_path_factory.mktemp("cigs"), seed=3)


@pytest.fixture(scope="module")
def ingested(fixture):
    return read_cigs(fixture.files["compounds"].parent)


def _copy(fixture, tmp_path):
    folder = tmp_path / "cigs"
    shutil.copytree(fixture.files["compounds"].parent, folder)
    return folder


def _edit_sheet(path, edit):
    wb = openpyxl.load_workbook(path)
    edit(wb.worksheets[0])
    wb.save(path)


def test_registered():
    assert isinstance(get_source("cigs"), CIGSSource)
    assert len(SUBSETS) == 6


def test_every_sample_has_its_planted_fate(fixture, ingested):
    led = ingested.ledger
    led.check_accounts_for(fixture.layout.index, stage="ingest")
    rows = led.to_frame().query("stage == 'ingest'").set_index("id")
    assert len(rows) == len(fixture.layout)
    got = rows.loc[fixture.layout.index, "reason"]
    assert (got.to_numpy() == fixture.layout["expected"].to_numpy()).all()
    reasons = set(rows["reason"])
    assert reasons == {
        "", "empty_well", "rna_control", "excluded_plate", "low_quality", "positive_control",
        "missing_metadata", "missing_counts",
    }  # fmt: skip
    low = rows.loc[rows["reason"] == "low_quality", "detail"]
    assert low.str.match(r"log2 reads [\d.]+ < [\d.]+ \(Q1 - 1\.5 x IQR in \w+\)$").all()
    assert len(low) == 6  # one per subset
    excluded = rows.loc[rows["reason"] == "excluded_plate", "detail"]
    assert excluded.str.contains("MCE4_293T_24H_X1 excluded by the CIGS authors").all()
    assert set(rows.loc[rows["reason"] == "positive_control", "detail"]) == {"JQ1"}


def test_gene_symbols_are_repaired_and_recorded(ingested):
    var = ingested.samples.var
    assert {"SEPT7", "MARCH1", "HLA-A", "NKX2-1"} <= set(var.index)
    assert var.loc["SEPT7", "symbol_source"] == "2024-09-07 00:00:00"
    assert var.loc["HLA-A", "symbol_source"] == "HLA.A"
    genes = ingested.ledger.to_frame().query("stage == 'ingest_genes'").set_index("id")
    assert "repaired from '2024-09-07 00:00:00' in MCE_Bioactive" in genes.loc["SEPT7", "detail"]
    assert "repaired from 'X7.Sep' in TCM_Compounds" in genes.loc["SEPT7", "detail"]
    assert "repaired from 'HLA.A'" in genes.loc["HLA-A", "detail"]
    assert genes.loc["TCMONLY1", "reason"] == "not_in_all_subsets"
    assert genes.loc["TCMONLY1", "detail"].startswith("absent from MCE_")
    assert var.shape[0] == 300


def test_repair_table():
    symbols, notes = repair_gene_symbols(
        [dt.datetime(2024, 9, 7), "2023-03-01 00:00:00", "7-Sep", "Sep-15", "X1.Dec", "HLA.DRB1",
         "NKX2.1", "TP53", dt.datetime(2024, 7, 4)]
    )  # fmt: skip
    assert symbols[:8] == [
        "SEPT7",
        "MARCH1",
        "SEPT7",
        "SEP15",
        "DEC1",
        "HLA-DRB1",
        "NKX2-1",
        "TP53",
    ]
    assert notes[7] == "" and notes[0] == "repaired from '2024-09-07 00:00:00'"
    assert "not in the repair table" in notes[8]


def test_identities_doses_and_schema(ingested):
    s = ingested.samples
    validate_samples(s)
    obs = s.obs
    assert set(obs["dataset"]) == {"cigs_mce", "cigs_tcm"}
    assert set(obs.loc[obs["dataset"] == "cigs_mce", "assay"]) == {"HTS2"}
    assert set(obs.loc[obs["dataset"] == "cigs_tcm", "assay"]) == {"HiMAP-seq"}
    assert set(obs["cell_context"]) == {"HEK293T", "MDA-MB-231"}
    treated = obs[~obs["is_control"]]
    assert set(treated.loc[treated["dataset"] == "cigs_mce", "pert_dose_uM"]) == {10.0}
    assert set(treated.loc[treated["dataset"] == "cigs_tcm", "pert_dose_uM"]) == {10.0, 20.0}
    assert (obs["pert_time_h"] == 24.0).all()
    assert set(obs.loc[obs["is_control"], "perturbagen"]) == {"DMSO"}
    mce = treated[treated["dataset"] == "cigs_mce"]
    assert mce["compound_id_source"].astype(str).str.match(r"^HY-\d+$").all()
    assert set(mce["replicate"]) == {"X1", "X2"}
    assert mce["well"].astype(str).str.match(r"^[A-P]\d{2}$").all()
    tcm = treated[treated["dataset"] == "cigs_tcm"]
    row = tcm[tcm["compound_id_source"] == "Compd001"].iloc[0]
    assert row["perturbagen"] == "TCM natural product 1"  # Cpd001 in the table, wraps removed
    assert row["compound_cas"] == "3000-22-0"
    assert tcm["plate"].astype(str).str.match(r"^tcm_\w+:P[12]$").all()
    assert set(obs.loc[obs["dataset"] == "cigs_tcm", "cell_name"]) == {"293T", "231"}


def test_limma_voom_recovers_planted_effects(fixture, ingested):
    de = limma_voom(ingested.samples, mode="group")
    rec = fixture.recovery(de.effects)
    print(f"CIGS recovery: r={rec['r']:.3f} (median per contrast {rec['r_median']:.3f}) "
          f"over {rec['n_contrasts']} contrasts, {rec['n_values']} values")  # fmt: skip
    assert rec["n_contrasts"] == len(fixture.truth) == 36
    assert rec["r"] > 0.6


def test_subset_selection_and_no_compound_table(fixture, tmp_path):
    folder = _copy(fixture, tmp_path)
    (folder / "41592_2025_2781_MOESM3_ESM.xlsx").unlink()
    res = read_cigs(folder, subsets=["tcm_hek293t_10", "tcm_hek293t_20"])
    obs = res.samples.obs
    assert set(obs["cigs_subset"]) == {"tcm_hek293t_10", "tcm_hek293t_20"}
    treated = obs[~obs["is_control"]]
    assert (treated["perturbagen"] == treated["compound_id_source"]).all()
    genes = res.ledger.to_frame().query("stage == 'ingest_genes'")
    assert (genes["status"] == "kept").all()  # TCMONLY1 is in both TCM subsets


def test_samples_round_trip_through_h5ad(ingested, tmp_path):
    path = write_h5ad(ingested.samples, tmp_path / "samples.h5ad")
    back = ad.read_h5ad(path)
    validate_samples(back)
    assert back.obs_names.equals(ingested.samples.obs_names)
    assert (back.X != ingested.samples.X).nnz == 0


# ------------------------------------------------------------------------- bad input


def test_missing_folder_and_no_workbooks(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"CIGS folder not found"):
        read_cigs(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no CIGS workbooks in .*empty.*_Counts\.xlsx"):
        read_cigs(tmp_path / "empty")


def test_missing_workbook_of_a_pair(fixture, tmp_path):
    folder = _copy(fixture, tmp_path)
    (folder / MCE_META).unlink()
    with pytest.raises(FileNotFoundError, match=r"mce_hek293t_10uM.*_MetaData\.xlsx not found"):
        read_cigs(folder)


def test_unknown_subset(fixture):
    with pytest.raises(ValueError, match=r"unknown CIGS subset.*'mce_k562'"):
        read_cigs(fixture.files["compounds"].parent, subsets=["mce_k562"])


def test_missing_column_names_file_and_column(fixture, tmp_path):
    folder = _copy(fixture, tmp_path)

    def edit(ws):
        ws.cell(row=2, column=2).value = "compound"  # the "treatment" header

    _edit_sheet(folder / MCE_META, edit)
    with pytest.raises(
        SchemaError, match=r"treatment.*HEK293T_10μM_MetaData\.xlsx.*\['treatment'\]"
    ):
        read_cigs(folder)


def test_dose_that_disagrees_with_the_subset(fixture, tmp_path):
    folder = _copy(fixture, tmp_path)

    def edit(ws):
        ws.cell(row=3, column=4).value = "5 μM"

    _edit_sheet(folder / MCE_META, edit)
    with pytest.raises(FormatError, match=r"'pert_idose'.*\['5 μM'\].*mce_hek293t_10uM.*10 µM"):
        read_cigs(folder)


def test_unparseable_count_names_sample_and_gene(fixture, tmp_path):
    folder = _copy(fixture, tmp_path)

    def edit(ws):
        ws.cell(row=3, column=7).value = "n/a"

    _edit_sheet(folder / MCE_COUNTS, edit)
    with pytest.raises(
        FormatError, match=r"_Counts\.xlsx: 1 count value.*sample 'MCE1_293T_24H_X1_A01'.*'n/a'"
    ):
        read_cigs(folder)


def test_not_a_workbook(fixture, tmp_path):
    folder = _copy(fixture, tmp_path)
    (folder / MCE_COUNTS).write_text("not a zip")
    with pytest.raises(FormatError, match=r"_Counts\.xlsx: not a readable \.xlsx"):
        read_cigs(folder)


def test_failed_ingest_leaves_no_output_file(fixture, tmp_path):
    folder = _copy(fixture, tmp_path)
    (folder / MCE_COUNTS).write_text("not a zip")
    out = tmp_path / "out" / "samples.h5ad"
    with pytest.raises(FormatError):
        write_h5ad(read_cigs(folder).samples, out)
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())

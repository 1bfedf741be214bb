"""The single-cell and bulk upstream fixture writers write the upstream layouts exactly."""

from __future__ import annotations

import datetime as dt

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest

from perturbridge.simulate.upstream_sc import (
    CIGS_SUBSETS,
    SciplexDesign,
    TahoeDesign,
    write_cigs,
    write_dilimap,
    write_sciplex,
    write_tahoe,
)


@pytest.mark.parametrize("flavor", ["scperturb", "trapnell"])
def test_sciplex_layout(tmp_path, flavor):
    design = SciplexDesign(cell_lines=("A549",))
    fx = write_sciplex(tmp_path, design, flavor=flavor, n_genes=60, n_compounds=2)
    with h5py.File(fx.files["h5ad"]) as fh:
        assert fh["X"].attrs["encoding-type"] == "csr_matrix"
    a = ad.read_h5ad(fx.files["h5ad"])
    cols = set(a.obs.columns)
    if flavor == "scperturb":
        assert {"perturbation", "dose_value", "dose_unit", "time", "plate", "well"} <= cols
        assert set(a.obs["perturbation"].dropna()) >= {"control"}
        assert "ensembl_id" in a.var.columns and "MALAT1" in a.var_names
    else:
        assert {"product_name", "catalog_number", "dose", "time_point", "top_oligo_P",
                "top_oligo_W", "vehicle"} <= cols  # fmt: skip
        assert a.var_names.str.startswith("ENSG").all() and "gene_short_name" in a.var.columns
    assert a.obs_names.equals(fx.layout.index)
    assert np.allclose(a.X.data, np.round(a.X.data))
    assert fx.truth.shape == (2 * 2, 60)
    assert fx.truth.index.names == ["cell_context", "compound_id", "dose_uM", "time_h"]


def test_tahoe_layout(tmp_path):
    fx = write_tahoe(tmp_path, TahoeDesign(n_plates=2), n_genes=40, n_drugs=2)
    assert fx.files["plate1"].name == "plate1_filt_Vevo_Tahoe100M_WServicesFrom_ParseGigalab.h5ad"
    a = ad.read_h5ad(fx.files["plate2"])
    assert a.obs.index.name == "BARCODE_SUB_LIB_ID"
    assert a.obs_names.str.match(r"^\d{2}_\d{3}_\d{3}-lib_\d+$").all()
    conc = a.obs["drugname_drugconc"].astype(str)
    assert conc.str.match(r"^\[\('.+', \d+\.\d+, 'uM'\)\]$").all()
    assert "[('DMSO_TF', 0.0, 'uM')]" in set(conc)
    meta = pd.read_parquet(fx.files["obs_parquet"])
    assert {"BARCODE_SUB_LIB_ID", "plate", "sample", "drugname_drugconc", "cell_line"} <= set(meta)
    assert len(meta) == len(fx.layout)


def test_cigs_layout(tmp_path):
    pytest.importorskip("openpyxl")
    import openpyxl

    fx = write_cigs(tmp_path, subsets=["mce_hek293t_10uM", "tcm_mda_mb_231_20"], n_genes=20)
    wb = openpyxl.load_workbook(fx.files["mce_hek293t_10uM_counts"], read_only=True)
    rows = list(wb.worksheets[0].iter_rows(values_only=True, max_row=3))
    assert rows[0][0].startswith("Note:")
    assert rows[1][0] == "Sample_id" and rows[1][1] == dt.datetime(2024, 9, 7)
    assert (
        fx.files["mce_hek293t_10uM_counts"].name
        == "MCE_Bioactive_Compounds_HEK293T_10μM_Counts.xlsx"
    )
    wb = openpyxl.load_workbook(fx.files["tcm_mda_mb_231_20_metadata"], read_only=True)
    header = next(wb.worksheets[0].iter_rows(values_only=True))
    assert list(header) == ["Sample_unique_id", "Treat", "Cell", "Plate", "Dose", "Time"]
    wb = openpyxl.load_workbook(fx.files["compounds"], read_only=True)
    assert wb.sheetnames == ["Supplementary Table 3", "Supplementary Table 4"]
    assert len(CIGS_SUBSETS) == 6


def test_dilimap_layout(tmp_path):
    fx = write_dilimap(tmp_path, n_genes=30)
    a = ad.read_h5ad(fx.files["h5ad"])
    assert {"COMPOUND", "CONCENTRATION_UM", "TIMEPOINT_HOURS", "PLATE_NAME", "WELL_ID",
            "DOSE_LEVEL", "LDH_QC", "CMPD_DOSE"} <= set(a.obs.columns)  # fmt: skip
    assert "gene_id" in a.var.columns and "MT-CO1" in a.var_names
    assert set(fx.layout["expected"]) == {
        "",
        "qc_ldh",
        "qc_total_rna",
        "qc_mito",
        "qc_rep_corr",
        "replaced_control",
    }

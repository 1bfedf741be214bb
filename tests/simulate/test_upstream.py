"""The upstream-layout writers (perturbridge.simulate.upstream): files, columns, truth."""

from __future__ import annotations

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from perturbridge.simulate.upstream import (
    ERCC_IDS,
    MOABOX_METADATA_COLUMNS,
    Gdpx2Design,
    UpstreamFixture,
    simulate_layout_counts,
    write_gdpx2,
    write_moabox,
    write_op3,
    write_vcpi,
)

OP3_OBS = [
    "cell_type",
    "sm_name",
    "sm_lincs_id",
    "SMILES",
    "control",
    "dose_uM",
    "timepoint_hr",
    "plate_name",
    "row",
    "col",
    "well",
    "donor_id",
    "library_id",
    "cell_count_by_well_celltype",
    "split",
]


def _layout(n_per: int = 6) -> pd.DataFrame:
    rows = []
    for plate in ("p1", "p2"):
        rows += [(plate, "ctx", None, 0.0, 24.0, 1.0)] * n_per
        rows += [(plate, "ctx", "cmpA", d, 24.0, 1.0) for d in (0.1, 1.0, 10.0)]
        rows += [(plate, "ctx", None, 0.0, 24.0, 0.01)]  # an empty well
    return pd.DataFrame(
        rows, columns=["plate", "context", "compound", "dose_uM", "time_h", "library_scale"]
    )


def test_layout_counts_shapes_truth_and_seed():
    layout = _layout()
    genes = [f"g{i}" for i in range(200)] + ["ERCC-00002"]
    counts, truth = simulate_layout_counts(layout, genes, seed=4, no_effect_genes=["ERCC-00002"])
    assert counts.shape == (len(layout), len(genes))
    assert (counts >= 0).all() and (counts == np.round(counts)).all()
    assert list(truth.index) == [("ctx", "cmpA", d, 24.0) for d in (0.1, 1.0, 10.0)]
    assert list(truth.index.names) == ["cell_name", "compound_id", "dose_uM", "time_h"]
    assert (truth["ERCC-00002"] == 0).all()
    # the signature grows with dose (a Hill curve) and has the same genes at every dose
    assert (np.abs(truth.iloc[2]) >= np.abs(truth.iloc[0])).all()
    assert ((truth.iloc[0] != 0) == (truth.iloc[2] != 0)).all()
    assert 0.05 < (truth.iloc[0] != 0).mean() < 0.3
    again, _ = simulate_layout_counts(layout, genes, seed=4, no_effect_genes=["ERCC-00002"])
    np.testing.assert_array_equal(counts, again)
    empty = layout["library_scale"].to_numpy() < 1
    assert counts[empty].sum(axis=1).max() < counts[~empty].sum(axis=1).min()


def test_recovery_of_the_truth_itself_is_one():
    layout = _layout()
    genes = [f"g{i}" for i in range(50)]
    _, truth = simulate_layout_counts(layout, genes, seed=1)
    obs = pd.DataFrame(
        {
            "cell_name": [k[0] for k in truth.index],
            "compound_id_source": [k[1] for k in truth.index],
            "pert_dose_uM": [k[2] for k in truth.index],
            "pert_time_h": [k[3] for k in truth.index],
        },
        index=[f"c{i}" for i in range(len(truth))],
    )
    x = truth.to_numpy().copy()
    x[:, :5] = np.nan  # filtered genes are skipped
    eff = ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=genes), layers={"logFC": x})
    fx = UpstreamFixture("x", {}, truth, pd.DataFrame())
    rec = fx.recovery(eff)
    assert rec["r"] == pytest.approx(1.0)
    assert rec["n_contrasts"] == 3 and rec["n_values"] == 3 * 45


def test_op3_writes_the_kaggle_obs(tmp_path):
    fx = write_op3(tmp_path, n_genes=40, n_compounds=3, seed=2)
    a = ad.read_h5ad(fx.files["h5ad"])
    assert list(a.obs.columns) == OP3_OBS
    assert a.n_obs == 3 * (6 + 2 + 3) * 4
    assert set(a.obs["sm_name"]) >= {"Dimethyl Sulfoxide", "Belinostat", "Dabrafenib"}
    assert set(a.obs.loc[a.obs["sm_name"] == "Dimethyl Sulfoxide", "sm_lincs_id"]) == {"LSM-36361"}
    assert a.obs.loc[a.obs["sm_name"] == "Belinostat", "control"].all()
    assert fx.layout["role"].value_counts().to_dict() == {
        "vehicle": 72,
        "compound": 36,
        "positive_control": 24,
    }
    assert len(fx.truth) == 3 * 4  # compounds × cell types, one dose and time
    with pytest.raises(ValueError, match="need 300 gene ids"):
        write_op3(tmp_path / "x", genes=["A", "B"])


def test_moabox_writes_the_upstream_tables(tmp_path):
    fx = write_moabox(tmp_path, n_genes=30, n_batches=1, n_compounds_per_batch=2, seed=3)
    meta = pd.read_csv(fx.files["metadata"], sep="\t", dtype=str)
    assert tuple(meta.columns) == MOABOX_METADATA_COLUMNS
    assert (meta["plate_well"] == meta["plate_barcode"] + "_" + meta["well_index"]).all()
    assert meta.groupby("plate_barcode").size().tolist() == [2 * 4 + 16 + 9 + 7] * 3
    assert set(meta.loc[meta["well_type"] == "RC", "well_id"].str[1:]) == {"23"}
    assert (meta.loc[meta["well_type"] == "RC", "cmpd_sample_id"] == "CB-43-EP73").all()
    assert (meta.loc[meta["well_type"] == "EMPTY", "cmpd_sample_id"] == "EC-27-RY89").all()
    robust = pd.read_csv(fx.files["robust_controls"], sep="\t", dtype=str)
    assert len(robust) == 2 * 3 and robust["plate_well"].isin(meta["plate_well"]).all()
    counts = [v for k, v in fx.files.items() if k.startswith("counts_")]
    assert len(counts) == 3
    lines = counts[0].read_text().splitlines()
    header, first = lines[0].split("\t"), lines[1].split("\t")
    assert len(first) == len(header) + 1  # R write.table: no name for the row names
    assert first[0].split(",")[1].startswith("grch38_")
    assert set(header) <= set(meta["plate_well"])
    cmp_table = pd.read_csv(fx.files["compounds"], sep="\t", dtype=str, keep_default_na=False)
    assert list(cmp_table.columns) == ["cmpd_sample_id", "inchi_key", "smiles", "cas_number", "moa"]


def test_vcpi_writes_the_client_tables(tmp_path):
    fx = write_vcpi(tmp_path, n_genes=25, n_compounds=2, n_plates=2, seed=5)
    meta = pd.read_csv(fx.files["metadata"], dtype=str)
    for c in ("sequenced_id", "container_id", "row_id", "column_id", "compound",
              "user_compound_id", "compound_concentration", "compound_concentration_unit",
              "cell_line", "timepoint", "is_control"):  # fmt: skip
        assert c in meta.columns
    dmso = meta[meta["user_compound_id"] == "DMSO"]
    assert set(dmso["compound_concentration_unit"]) == {"%"}
    assert set(meta.loc[meta["user_compound_id"] != "DMSO", "compound_concentration_unit"]) == {
        "nM"
    }
    assert set(meta["timepoint"]) == {"24h"}
    counts = pd.read_parquet(fx.files["counts"])
    assert counts.columns[0] == "gene_id"
    assert list(counts.columns[1:]) == meta["sequenced_id"].tolist()
    assert counts["gene_id"].tolist()[-6:] == list(ERCC_IDS[:6])
    chem = pd.read_csv(fx.files["chemistry"], dtype=str)
    assert set(meta["compound"]) <= set(chem["compound"])


def test_gdpx2_writes_the_datapoints_package(tmp_path):
    fx = write_gdpx2(tmp_path, Gdpx2Design(n_compounds=1, n_plates=1), n_genes=20, seed=6)
    meta = pd.read_csv(fx.files["metadata"])
    assert len(meta) == 2 * len(fx.layout)  # every row twice, as in the release
    assert meta.drop_duplicates().shape[0] == len(fx.layout)
    dmso = meta[meta["compound"] == "DMSO"]
    assert (dmso["compound_concentration"] == dmso["percent_volume_dmso"]).all()
    assert set(dmso["compound_concentration_unit"]) == {"nM"}  # the upstream's quirk
    assert dmso.loc[dmso["is_neg_control"], "percent_volume_dmso"].eq(0.0625).all()
    with h5py.File(fx.files["counts"], "r") as h:
        n = len(fx.layout)
        assert h["gene_counts"].shape == (n, 20)
        assert list(h["sparse_matrix/dimensions"][:]) == [20, n]
        ids = h[".gene_counts_dimnames/2"].asstr()[:]
        dense = h["gene_counts"][:]
        sm = h["sparse_matrix"]
        csc = sparse.csc_matrix(
            (sm["values"][:], sm["i_indices"][:], sm["j_ptr"][:]), shape=(20, n)
        )
    assert set(ids) == set(fx.layout.index)
    np.testing.assert_array_equal(csc.toarray().T, dense)


def test_gdpx2_writes_the_curated_h5ad(tmp_path):
    design = Gdpx2Design(n_compounds=1, n_plates=1)
    fx = write_gdpx2(tmp_path, design, layout="lamin", n_genes=20, seed=7)
    a = ad.read_h5ad(fx.files["h5ad"])
    doses = set(a.obs["pert_dose"].astype(str))
    assert {"0.0625%", "9.5nM", "3000.0nM"} <= doses
    assert set(a.obs["pert_time"].astype(str)) == {"24.0h"}
    assert set(a.obs["cell_type"].astype(str)) == {
        "aortic smooth muscle cell",
        "fibroblast of dermis",
        "epithelial melanocyte",
        "skeletal muscle myoblast",
    }
    assert a.var["symbol"].str.startswith("ERCC-").sum() == 4

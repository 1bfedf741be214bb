"""OP3 adapter: upstream-layout pseudobulk fixture, ledger, identities, DE recovery, bad input."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATA
from perturbridge.de.voom import limma_voom
from perturbridge.errors import FormatError, SchemaError
from perturbridge.io import write_h5ad
from perturbridge.schema import PERT_TYPES, validate_samples
from perturbridge.simulate.upstream import write_op3
from perturbridge.sources import get_source, list_sources
from perturbridge.sources.op3 import OP3Source, read_op3

OP3_DIR = SHARED_DATA / "op3_neurips2023_kaggle"


def _real_genes_and_compounds() -> tuple[list[str] | None, list[str] | None]:
    """The real OP3 gene columns and compound names when the shared data is present."""
    genes_file, ids_file = OP3_DIR / "de_train_gene_columns.txt", OP3_DIR / "id_map.csv"
    genes = genes_file.read_text().split() if genes_file.exists() else None
    names = (
        [n for n in pd.read_csv(ids_file)["sm_name"].unique() if n != "Dimethyl Sulfoxide"]
        if ids_file.exists()
        else None
    )
    return genes, names


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    genes, names = _real_genes_and_compounds()
    return write_op3(tmp_path_factory.mktemp("op3"), genes=genes, compounds=names, seed=11)


@pytest.fixture(scope="module")
def ingested(fixture):
    return read_op3(fixture.files["h5ad"])


def test_ledger_accounts_for_every_row_and_gene(fixture, ingested):
    led = ingested.ledger
    led.check_accounts_for(fixture.layout.index, stage="ingest")
    frame = led.to_frame()
    rows = frame[frame["stage"] == "ingest"]
    assert len(rows) == len(fixture.layout)
    counts = rows.groupby(["status", "reason"]).size().to_dict()
    roles = fixture.layout["role"].value_counts()
    assert counts == {
        ("dropped", "positive_control"): roles["positive_control"],
        ("kept", ""): roles["vehicle"] + roles["compound"],
    }
    dropped = set(rows.loc[rows["status"] == "dropped", "detail"])
    assert dropped == {"Belinostat", "Dabrafenib"}
    genes = frame[frame["stage"] == "ingest_genes"]
    assert (genes["status"] == "kept").all()
    assert len(genes) == ingested.samples.n_vars == 300


def test_identities_doses_and_schema(fixture, ingested):
    s = ingested.samples
    validate_samples(s)
    obs = s.obs
    assert set(obs["pert_type"]) <= set(PERT_TYPES)
    assert set(obs["cell_context"]) == {"CL:0000084", "CL:0000623", "CL:0000236", "CL:0000763"}
    t_cells = obs[obs["cell_name"] == "T cells"]
    assert (t_cells["cell_context"] == "CL:0000084").all()
    vehicle = obs[obs["is_control"]]
    assert set(vehicle["perturbagen"]) == {"Dimethyl Sulfoxide"}
    assert set(vehicle["compound_id_source"]) == {"LSM-36361"}
    assert (vehicle["pert_dose_uM"] == 0).all()
    treated = obs[~obs["is_control"]]
    assert (treated["pert_dose_uM"] == 1.0).all()
    assert (obs["pert_time_h"] == 24.0).all()
    assert set(obs["replicate"]) == {"donor_0", "donor_1", "donor_2"}
    assert obs["n_cells"].notna().all() and (obs["n_cells"] >= 20).all()
    assert obs["compound_smiles"].notna().all()
    np.testing.assert_allclose(obs["total_counts"], np.asarray(s.X.sum(axis=1)).ravel(), rtol=1e-12)
    # var: the gene symbols as given (the real OP3 columns when the shared data is present)
    genes, _ = _real_genes_and_compounds()
    if genes is not None:
        assert list(s.var_names) == genes[:300]
        assert s.var.loc["A1BG", "symbol"] == "A1BG"


def test_limma_voom_recovers_planted_effects(fixture, ingested):
    de = limma_voom(ingested.samples, mode="group")
    rec = fixture.recovery(de.effects)
    print(f"OP3 recovery: r={rec['r']:.3f} (median per contrast {rec['r_median']:.3f}) "
          f"over {rec['n_contrasts']} contrasts, {rec['n_values']} values")  # fmt: skip
    assert rec["n_contrasts"] == len(fixture.truth) == 48
    assert rec["r"] > 0.5
    rng = np.random.default_rng(0)
    shuffled = fixture.truth.copy()
    shuffled.columns = rng.permutation(shuffled.columns)
    base = type(fixture)(fixture.source, fixture.files, shuffled, fixture.layout)
    assert abs(base.recovery(de.effects)["r"]) < 0.1


def _rewrite(src, dst, edit):
    adata = ad.read_h5ad(src)
    edit(adata)
    adata.write_h5ad(dst)
    return dst


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"OP3 pseudobulk AnnData.*nope\.h5ad"):
        read_op3(tmp_path / "nope.h5ad")


def test_not_an_h5ad_is_a_format_error(tmp_path):
    bad = tmp_path / "bad.h5ad"
    bad.write_text("not hdf5")
    with pytest.raises(FormatError, match=r"bad\.h5ad"):
        read_op3(bad)


@pytest.mark.parametrize("column", ["dose_uM", "sm_name", "plate_name", "timepoint_hr"])
def test_missing_column_names_file_and_column(fixture, tmp_path, column):
    def edit(a):
        del a.obs[column]

    bad = _rewrite(fixture.files["h5ad"], tmp_path / "bad.h5ad", edit)
    with pytest.raises(SchemaError, match=rf"'{column}'.*bad\.h5ad"):
        read_op3(bad)


def test_unparseable_dose_names_the_values(fixture, tmp_path):
    def edit(a):
        dose = a.obs["dose_uM"].astype(object)
        dose.iloc[[5, 9]] = ["1 µM?", "ten"]
        a.obs["dose_uM"] = dose.astype(str)

    bad = _rewrite(fixture.files["h5ad"], tmp_path / "bad.h5ad", edit)
    with pytest.raises(FormatError, match=r"'dose_uM'.*'1 µM\?'.*'ten'"):
        read_op3(bad)


def test_missing_dose_goes_to_the_ledger(fixture, tmp_path):
    ids = []

    def edit(a):
        treated = np.flatnonzero(~a.obs["control"].to_numpy())[:3]
        ids.extend(a.obs_names[treated])
        dose = a.obs["dose_uM"].to_numpy(copy=True)
        dose[treated] = np.nan
        a.obs["dose_uM"] = dose

    bad = _rewrite(fixture.files["h5ad"], tmp_path / "nan.h5ad", edit)
    res = read_op3(bad)
    led = res.ledger.to_frame().set_index("id")
    assert (led.loc[ids, "reason"] == "missing_dose").all()
    res.ledger.check_accounts_for(fixture.layout.index, stage="ingest")


def test_layer_and_unknown_layer(fixture, tmp_path):
    def edit(a):
        a.layers["counts"] = a.X.copy()
        a.X = np.log1p(a.X)

    path = _rewrite(fixture.files["h5ad"], tmp_path / "layer.h5ad", edit)
    res = read_op3(path, layer="counts")
    np.testing.assert_array_equal(
        res.samples.X.toarray(), read_op3(fixture.files["h5ad"]).samples.X.toarray()
    )
    with pytest.raises(KeyError, match=r"layers/raw.*counts"):
        read_op3(path, layer="raw")


def test_bad_input_leaves_no_output(fixture, tmp_path):
    def edit(a):
        a.obs["control"] = a.obs["control"].astype(str).replace({"False": "maybe"})

    bad = _rewrite(fixture.files["h5ad"], tmp_path / "bad.h5ad", edit)
    out = tmp_path / "out" / "samples.h5ad"
    with pytest.raises(FormatError, match=r"'control'.*'maybe'"):
        write_h5ad(read_op3(bad).samples, out)
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_registry():
    row = list_sources().set_index("name").loc["op3"]
    assert row["assay"] == "scRNA-seq pseudobulk"
    assert OP3Source.value_kind == "counts"
    assert OP3Source.expected_files and all(isinstance(f, str) for f in OP3Source.expected_files)
    assert isinstance(get_source("op3"), OP3Source)


def test_unknown_cell_type_is_kept_by_name(fixture, tmp_path, caplog):
    def edit(a):
        ct = a.obs["cell_type"].astype(str).replace({"NK cells": "Dendritic cells"})
        a.obs["cell_type"] = ct.astype("category")

    path = _rewrite(fixture.files["h5ad"], tmp_path / "dc.h5ad", edit)
    res = read_op3(path)
    assert "Dendritic cells" in set(res.samples.obs["cell_context"])
    assert "Dendritic cells" in caplog.text


def test_samples_are_primary_blood_cells_of_healthy_donors(ingested):
    obs = ingested.samples.obs.drop_duplicates("dataset").iloc[0]
    assert (obs["tissue_type"], obs["suspension_type"]) == ("primary cell", "cell")
    assert (obs["tissue"], obs["tissue_ontology_term_id"]) == ("blood", "UBERON:0000178")
    assert (obs["disease"], obs["disease_ontology_term_id"]) == ("normal", "PATO:0000461")

"""sci-Plex3 adapter: upstream-layout single cells, cell and sample ledgers, pseudobulk
sums, identities, DE recovery and bad input."""

from __future__ import annotations

from dataclasses import replace

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from conftest import SHARED_DATA
from perturbridge.de.voom import limma_voom
from perturbridge.errors import FormatError, SchemaError
from perturbridge.io import write_h5ad
from perturbridge.schema import PERT_TYPES, validate_samples
from perturbridge.simulate.upstream_sc import write_sciplex
from perturbridge.sources import get_source, list_sources
from perturbridge.sources.sciplex import SciplexFilters, SciPlexSource, read_sciplex

TABLE = SHARED_DATA / "sciplex_trapnell" / "Supplementary_Table_3.txt"
FILTERS = SciplexFilters(quality_gene="MALAT1", quality_min_fraction=0.005, min_cells=5)


def _real_compounds() -> pd.DataFrame | None:
    """The authors' hash table (real names, catalog numbers, CAS, SMILES) when present."""
    return pd.read_csv(TABLE, sep="\t") if TABLE.exists() else None


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    return write_sciplex(tmp_path_factory.mktemp("sciplex"), compounds=_real_compounds(), seed=1)


@pytest.fixture(scope="module")
def ingested(fixture):
    return read_sciplex(fixture.files["h5ad"], chunk_size=400, filters=FILTERS)


@pytest.fixture(scope="module")
def authors(tmp_path_factory):
    fx = write_sciplex(
        tmp_path_factory.mktemp("sciplex_authors"),
        compounds=_real_compounds(),
        flavor="trapnell",
        seed=2,
    )
    return fx, read_sciplex(fx.files["h5ad"], filters=FILTERS)


def test_registered():
    assert isinstance(get_source("sciplex"), SciPlexSource)
    row = list_sources().set_index("name").loc["sciplex"]
    assert row["value_kind"] == "counts" and "top_oligo_P" in row["expected_files"]


def test_every_cell_has_its_planted_fate(fixture, ingested):
    led = ingested.ledger
    led.check_accounts_for(fixture.layout.index, stage="pseudobulk")
    cells = led.to_frame().query("stage == 'pseudobulk'").set_index("id")
    got = cells.loc[fixture.layout.index, "reason"]
    pd.testing.assert_series_equal(
        got.rename(None), fixture.layout["expected"].rename(None), check_names=False
    )
    counts = fixture.layout["expected"].value_counts()
    for reason in ("mito_fraction", "min_counts", "nucleus_quality", "missing_metadata"):
        assert counts[reason] > 0, reason
    assert counts["small_group"] == 3
    mito = cells.loc[cells["reason"] == "mito_fraction", "detail"]
    assert mito.str.match(r"mito fraction 0\.\d+ > max_mito_fraction 0\.1$").all()
    assert (
        cells.loc[cells["reason"] == "missing_metadata", "detail"] == "missing plate, well"
    ).all()


def test_sample_ledger_and_sums(fixture, ingested):
    s, led = ingested.samples, ingested.ledger
    frame = led.to_frame()
    samples = frame[frame["stage"] == "ingest"]
    assert set(samples["reason"]) == {"", "missing_dose"}
    assert (samples["reason"] == "missing_dose").sum() == 1
    assert samples.loc[samples["reason"] == "missing_dose", "detail"].str.startswith("dose=").all()
    assert (frame[frame["stage"] == "ingest_genes"]["status"] == "kept").sum() == s.n_vars
    # every kept sample is the sum of the cells the ledger assigns to it
    cells = frame[(frame["stage"] == "pseudobulk") & (frame["status"] == "kept")]
    raw = ad.read_h5ad(fixture.files["h5ad"])
    groups = cells.groupby("detail")["id"].apply(list)
    for sid in s.obs_names[:5]:
        expected = np.asarray(raw[groups[sid]].X.sum(axis=0)).ravel()
        np.testing.assert_array_equal(s[sid].X.toarray().ravel(), expected)
        assert s.obs.loc[sid, "n_cells"] == len(groups[sid])
    assert (s.obs["n_cells"] >= 5).all()


def test_identities_doses_and_schema(ingested):
    s = ingested.samples
    validate_samples(s)
    obs = s.obs
    assert set(obs["pert_type"]) <= set(PERT_TYPES)
    assert set(obs["cell_context"]) == {"A549", "K562", "MCF7"}
    assert (obs["cell_context"] == obs["cell_name"]).all()
    veh = obs[obs["is_control"]]
    assert set(veh["perturbagen"]) == {"DMSO"} and (veh["pert_dose_uM"] == 0).all()
    assert set(veh["compound_name_source"]) == {"control"}
    assert set(obs.loc[~obs["is_control"], "pert_dose_uM"]) == {1.0, 10.0}  # 1,000 and 10,000 nM
    assert (obs["pert_time_h"] == 24.0).all()
    assert set(obs["replicate"]) == {"rep1", "rep2"}
    assert s.var_names.str.startswith("ENSG").all()
    assert s.var.loc["ENSG00000251562", "symbol"] == "MALAT1"
    if TABLE.exists():
        assert "Navitoclax (ABT-263)" in set(obs["perturbagen"])


def test_authors_spelling_keeps_catalog_cas_and_smiles(authors):
    fx, res = authors
    validate_samples(res.samples)
    res.ledger.check_accounts_for(fx.layout.index, stage="pseudobulk")
    obs = res.samples.obs
    treated = obs[~obs["is_control"]]
    assert treated["compound_id_source"].astype(str).str.match(r"^S\d{4}$").all()
    assert treated["compound_smiles"].notna().all() and treated["compound_cas"].notna().all()
    assert set(obs.loc[obs["is_control"], "compound_id_source"]) == {"S0000"}
    assert set(obs.loc[obs["is_control"], "perturbagen"]) == {"DMSO"}
    if TABLE.exists():
        nav = treated[treated["compound_id_source"] == "S1001"]
        assert set(nav["compound_cas"]) == {"923564-51-6"}


def test_limma_voom_recovers_planted_effects(fixture, ingested):
    de = limma_voom(ingested.samples, mode="group")
    rec = fixture.recovery(de.effects)
    print(f"sci-Plex recovery: r={rec['r']:.3f} (median per contrast {rec['r_median']:.3f}) "
          f"over {rec['n_contrasts']} contrasts, {rec['n_values']} values")  # fmt: skip
    assert rec["n_contrasts"] == len(fixture.truth) == 24
    assert rec["r"] > 0.6


def test_chunk_size_does_not_change_the_result(fixture, ingested):
    other = read_sciplex(fixture.files["h5ad"], chunk_size=10_000, filters=FILTERS)
    assert (other.samples.obs_names == ingested.samples.obs_names).all()
    assert (other.samples.X != ingested.samples.X).nnz == 0


def test_mito_rule_can_be_turned_off(fixture):
    res = read_sciplex(fixture.files["h5ad"], filters=replace(FILTERS, max_mito_fraction=None))
    assert "mito_fraction" not in set(res.ledger.to_frame()["reason"])


def test_samples_round_trip_through_h5ad(ingested, tmp_path):
    path = write_h5ad(ingested.samples, tmp_path / "samples.h5ad")
    back = ad.read_h5ad(path)
    validate_samples(back)
    assert back.obs_names.equals(ingested.samples.obs_names)
    assert (back.X != ingested.samples.X).nnz == 0


# ------------------------------------------------------------------------- bad input


def _rewrite(src, dst, edit):
    a = ad.read_h5ad(src)
    edit(a)
    a.write_h5ad(dst)
    return dst


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"sci-Plex single-cell AnnData.*nope\.h5ad"):
        read_sciplex(tmp_path / "nope.h5ad")


def test_not_an_h5ad_is_a_format_error(tmp_path):
    bad = tmp_path / "bad.h5ad"
    bad.write_text("not hdf5")
    with pytest.raises(FormatError, match=r"bad\.h5ad"):
        read_sciplex(bad)


@pytest.mark.parametrize("column", ["perturbation", "dose_value", "plate", "well", "time"])
def test_missing_column_names_file_and_column(fixture, tmp_path, column):
    bad = _rewrite(fixture.files["h5ad"], tmp_path / "bad.h5ad", lambda a: a.obs.pop(column))
    with pytest.raises(SchemaError, match=rf"bad\.h5ad obs.*{column}"):
        read_sciplex(bad)


def test_unparseable_dose_names_the_values(fixture, tmp_path):
    def edit(a):
        dose = a.obs["dose_value"].astype(object)
        dose.iloc[[3, 7]] = ["ten", "1e4 nM?"]
        a.obs["dose_value"] = dose.astype(str)

    bad = _rewrite(fixture.files["h5ad"], tmp_path / "bad.h5ad", edit)
    with pytest.raises(FormatError, match=r"bad\.h5ad obs: column 'dose_value'.*'ten'"):
        read_sciplex(bad)


def test_unknown_dose_unit_is_an_error(fixture, tmp_path):
    def edit(a):
        a.obs["dose_unit"] = "furlongs"

    bad = _rewrite(fixture.files["h5ad"], tmp_path / "bad.h5ad", edit)
    with pytest.raises(ValueError, match=r"furlongs"):
        read_sciplex(bad)


def test_mito_rule_needs_mitochondrial_genes(fixture, tmp_path):
    def edit(a):
        a.var_names = [f"G{i}" if n.startswith("MT-") else n for i, n in enumerate(a.var_names)]

    bad = _rewrite(fixture.files["h5ad"], tmp_path / "bad.h5ad", edit)
    with pytest.raises(FormatError, match=r"no mitochondrial genes.*max_mito_fraction=None"):
        read_sciplex(bad)


def test_csc_matrix_is_refused_with_advice(fixture, tmp_path):
    bad = _rewrite(
        fixture.files["h5ad"],
        tmp_path / "csc.h5ad",
        lambda a: setattr(a, "X", sparse.csc_matrix(a.X)),
    )
    with pytest.raises(FormatError, match=r"csc_matrix.*CSR"):
        read_sciplex(bad, filters=SciplexFilters(max_mito_fraction=None))


def test_failed_ingest_leaves_no_output_file(fixture, tmp_path):
    bad = _rewrite(fixture.files["h5ad"], tmp_path / "bad.h5ad", lambda a: a.obs.pop("plate"))
    out = tmp_path / "out" / "samples.h5ad"
    with pytest.raises(SchemaError):
        write_h5ad(read_sciplex(bad).samples, out)
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_flat_plan_keys_are_grouped_into_the_filters(fixture, ingested):
    """A plan and ``--set`` give the filters as flat keys; the adapter groups them."""
    adapter = get_source("sciplex")
    flat = {"quality_gene": "MALAT1", "quality_min_fraction": 0.005, "min_cells": 5}
    assert adapter.reader_kwargs({"h5ad": "x", **flat}) == {"h5ad": "x", "filters": FILTERS}
    names, required, var_kw = type(adapter).parameter_names()
    assert {"min_counts", "max_mito_fraction", "min_cells", "h5ad"} <= names
    assert "filters" not in names and required == {"h5ad"} and not var_kw
    res = adapter.ingest(h5ad=fixture.files["h5ad"], chunk_size=400, **flat)
    assert (res.samples.obs_names == ingested.samples.obs_names).all()
    assert (res.samples.X != ingested.samples.X).nnz == 0
    with pytest.raises(TypeError, match="give filters= or its fields"):
        adapter.reader_kwargs({"filters": FILTERS, "min_cells": 2})


def test_samples_state_that_sciplex_profiles_nuclei(ingested):
    obs = ingested.samples.obs
    assert set(obs["suspension_type"]) == {"nucleus"}
    assert set(obs["tissue_type"]) == {"cell line"} and set(obs["organism"]) == {"Homo sapiens"}
    assert set(obs["sex"]) == {"unknown"}  # a cell-line fact: from the references
    assert all("suspension_type=dataset:sciplex" in s for s in obs["biology_source"])

"""VCPI adapter: upstream-layout release (metadata, counts parquet, chemistry), bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATA
from perturbridge.de.voom import limma_voom
from perturbridge.errors import FormatError, SchemaError, UnitError
from perturbridge.io import write_h5ad
from perturbridge.schema import validate_samples
from perturbridge.simulate.upstream import write_vcpi
from perturbridge.sources import get_source, list_sources
from perturbridge.sources.vcpi import VCPISource, read_vcpi

GENE_FILTER = SHARED_DATA / "vcpi_ginkgo" / "gene_filter.csv"


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    genes = pd.read_csv(GENE_FILTER)["gene_id"].tolist() if GENE_FILTER.exists() else None
    return write_vcpi(tmp_path_factory.mktemp("vcpi"), genes=genes, seed=31)


def _read(fx, **kw):
    kw.setdefault("chemistry", fx.files["chemistry"])
    return read_vcpi(fx.files["metadata"], fx.files["counts"], **kw)


@pytest.fixture(scope="module")
def ingested(fixture):
    return _read(fixture)


def _meta(fx) -> pd.DataFrame:
    return pd.read_csv(fx.files["metadata"], dtype=str, keep_default_na=False)


def test_ledger_accounts_for_every_well_and_gene(fixture, ingested):
    led = ingested.ledger
    led.check_accounts_for(fixture.layout.index, stage="ingest")
    frame = led.to_frame()
    wells = frame[frame["stage"] == "ingest"]
    roles = fixture.layout["role"].value_counts()
    assert wells.groupby(["status", "reason"]).size().to_dict() == {
        ("kept", ""): roles["vehicle"] + roles["compound"],
        ("dropped", "positive_control"): roles["positive_control"],
    }
    assert set(wells.loc[wells["status"] == "dropped", "detail"]) == {
        "Staurosporin",
        "Brefeldin-A",
        "Rigosertib",
        "Trichostatin-A",
    }
    genes = frame[frame["stage"] == "ingest_genes"]
    counts = pd.read_parquet(fixture.files["counts"], columns=["gene_id"])["gene_id"]
    led.check_accounts_for(counts, stage="ingest_genes")
    spikes = genes[genes["reason"] == "spike_in"]
    assert set(spikes["id"]) == {g for g in counts if g.startswith("ERCC-")}
    assert len(spikes) == 6
    assert not ingested.samples.var_names.str.startswith("ERCC-").any()
    assert ingested.samples.n_vars == 300


def test_identities_doses_wells(fixture, ingested):
    s = ingested.samples
    validate_samples(s)
    obs = s.obs
    meta = _meta(fixture).set_index("sequenced_id")
    chem = pd.read_csv(fixture.files["chemistry"], dtype=str, keep_default_na=False)
    treated = obs[~obs["is_control"]]
    sid = treated.index[0]
    nm = float(meta.loc[sid, "compound_concentration"])
    assert treated.loc[sid, "pert_dose_uM"] == pytest.approx(nm / 1000)
    assert set(np.round(treated["pert_dose_uM"], 6)) == {0.03, 0.1, 0.3, 1.0, 3.0, 10.0}
    row, col = int(meta.loc[sid, "row_id"]), int(meta.loc[sid, "column_id"])
    assert obs.loc[sid, "well"] == f"{'ABCDEFGHIJKLMNOP'[row - 1]}{col:02d}"
    assert obs.loc[sid, "plate"] == meta.loc[sid, "container_id"]
    ik = chem.set_index("compound").loc[meta.loc[sid, "compound"], "inchi_key"]
    assert obs.loc[sid, "compound_inchikey"] == ik
    assert obs.loc[sid, "compound_id_source"] == meta.loc[sid, "user_compound_id"]
    vehicle = obs[obs["is_control"]]
    assert set(vehicle["perturbagen"]) == {"DMSO"}
    assert (vehicle["pert_dose_uM"] == 0).all()
    assert (obs["pert_time_h"] == 24.0).all()
    assert set(obs["cell_context"]) == {"THP-1"}
    # technical duplicates on the two plates: replicate 1 and 2 of each condition
    assert (
        treated.groupby(["compound_id_source", "pert_dose_uM"], observed=True)["replicate"]
        .apply(lambda r: sorted(r) == ["1", "2"])
        .all()
    )
    assert obs["percent_mitochondrial"].between(0, 100).all()
    if GENE_FILTER.exists():
        assert s.var_names[0] == "ENSG00000000003"


def test_limma_voom_recovers_planted_effects(fixture, ingested):
    de = limma_voom(ingested.samples, mode="group")
    rec = fixture.recovery(de.effects)
    print(f"VCPI recovery: r={rec['r']:.3f} (median per contrast {rec['r_median']:.3f}) "
          f"over {rec['n_contrasts']} contrasts")  # fmt: skip
    assert rec["n_contrasts"] == len(fixture.truth) == 8 * 6
    assert rec["r"] > 0.45


def test_no_unit_column_means_nanomolar(fixture, tmp_path):
    meta = _meta(fixture).drop(columns=["compound_concentration_unit"])
    meta.to_csv(tmp_path / "metadata-x.csv", index=False)
    res = read_vcpi(tmp_path / "metadata-x.csv", fixture.files["counts"])
    a = res.samples.obs["pert_dose_uM"]
    b = _read(fixture).samples.obs["pert_dose_uM"]
    np.testing.assert_allclose(a.to_numpy(), b.reindex(a.index).to_numpy())


def test_missing_and_extra_samples(fixture, tmp_path):
    meta = _meta(fixture)
    meta.iloc[2:].to_csv(tmp_path / "metadata-x.csv", index=False)
    counts = pd.read_parquet(fixture.files["counts"])
    counts.drop(columns=[meta["sequenced_id"].iloc[-1]]).to_parquet(tmp_path / "c.parquet")
    res = read_vcpi(tmp_path / "metadata-x.csv", tmp_path / "c.parquet")
    led = res.ledger.to_frame().set_index("id")
    assert (led.loc[meta["sequenced_id"].iloc[:2], "reason"] == "missing_metadata").all()
    assert led.loc[meta["sequenced_id"].iloc[-1], "reason"] == "missing_counts"
    res.ledger.check_accounts_for(meta["sequenced_id"], stage="ingest")


def test_missing_files_are_errors(fixture, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"VCPI metadata table.*metadata-x\.csv"):
        read_vcpi(tmp_path / "metadata-x.csv", fixture.files["counts"])
    with pytest.raises(FileNotFoundError, match=r"VCPI counts table.*x\.parquet"):
        read_vcpi(fixture.files["metadata"], tmp_path / "x.parquet")
    with pytest.raises(FileNotFoundError, match=r"chemistry table.*chem\.csv"):
        _read(fixture, chemistry=tmp_path / "chem.csv")


@pytest.mark.parametrize(
    "column", ["compound_concentration", "user_compound_id", "container_id", "timepoint"]
)
def test_missing_column_names_file_and_column(fixture, tmp_path, column):
    _meta(fixture).drop(columns=[column]).to_csv(tmp_path / "metadata-bad.csv", index=False)
    with pytest.raises(SchemaError, match=rf"'{column}'.*metadata-bad\.csv"):
        read_vcpi(tmp_path / "metadata-bad.csv", fixture.files["counts"])


def test_chemistry_without_smiles_is_an_error(fixture, tmp_path):
    chem = pd.read_csv(fixture.files["chemistry"], dtype=str)
    chem.drop(columns=["smiles"]).to_csv(tmp_path / "chem.csv", index=False)
    with pytest.raises(SchemaError, match=r"'smiles'.*chem\.csv"):
        _read(fixture, chemistry=tmp_path / "chem.csv")


def test_unparseable_dose_and_time_name_the_values(fixture, tmp_path):
    meta = _meta(fixture)
    treated = np.flatnonzero(meta["is_control"].eq("False"))
    meta.loc[treated[0], "compound_concentration"] = "100 nM"
    meta.to_csv(tmp_path / "metadata-bad.csv", index=False)
    with pytest.raises(FormatError, match=r"'compound_concentration'.*'100 nM'"):
        read_vcpi(tmp_path / "metadata-bad.csv", fixture.files["counts"])
    meta = _meta(fixture)
    meta.loc[4, "timepoint"] = "one day"
    meta.to_csv(tmp_path / "metadata-bad.csv", index=False)
    with pytest.raises(FormatError, match=r"'timepoint'.*'one day'"):
        read_vcpi(tmp_path / "metadata-bad.csv", fixture.files["counts"])


def test_unknown_units_name_the_values(fixture, tmp_path):
    meta = _meta(fixture)
    treated = np.flatnonzero(meta["is_control"].eq("False"))
    meta.loc[treated[0], "compound_concentration_unit"] = "mg/mL"
    meta.to_csv(tmp_path / "metadata-bad.csv", index=False)
    with pytest.raises(UnitError, match=r"compound_concentration_unit.*mg/mL"):
        read_vcpi(tmp_path / "metadata-bad.csv", fixture.files["counts"])
    meta = _meta(fixture)
    meta["timepoint"] = "24 fortnights"
    meta.to_csv(tmp_path / "metadata-bad.csv", index=False)
    with pytest.raises(UnitError, match=r"timepoint.*fortnights"):
        read_vcpi(tmp_path / "metadata-bad.csv", fixture.files["counts"])


def test_corrupt_counts_leave_no_output(fixture, tmp_path):
    counts = pd.read_parquet(fixture.files["counts"])
    sid = fixture.layout.index[fixture.layout["role"] == "compound"][0]
    counts.loc[7, sid] = np.nan
    counts.to_parquet(tmp_path / "c.parquet")
    out = tmp_path / "out" / "samples.h5ad"
    with pytest.raises(FormatError, match=rf"c\.parquet.*'{sid}'"):
        write_h5ad(read_vcpi(fixture.files["metadata"], tmp_path / "c.parquet").samples, out)
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_csv_counts_table(fixture, tmp_path):
    counts = pd.read_parquet(fixture.files["counts"])
    counts.to_csv(tmp_path / "counts.csv", index=False)
    a = read_vcpi(fixture.files["metadata"], tmp_path / "counts.csv").samples
    b = read_vcpi(fixture.files["metadata"], fixture.files["counts"]).samples
    np.testing.assert_array_equal(a.X.toarray(), b.X.toarray())


def test_registry():
    row = list_sources().set_index("name").loc["vcpi"]
    assert row["assay"] == "DRUG-seq"
    assert VCPISource.value_kind == "counts"
    assert "metadata-<job>.csv" in VCPISource.expected_files
    assert isinstance(get_source("vcpi"), VCPISource)

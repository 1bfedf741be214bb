"""GDPx2 adapter: Datapoints package and curated .h5ad layouts, DMSO volumes, bad input."""

from __future__ import annotations

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest

from perturbridge.de.voom import limma_voom
from perturbridge.errors import FormatError, SchemaError
from perturbridge.io import write_h5ad
from perturbridge.schema import validate_samples
from perturbridge.simulate.upstream import write_gdpx2
from perturbridge.sources import get_source, list_sources
from perturbridge.sources.gdpx2 import GDPx2Source, read_gdpx2

CL = {"CL:0002539", "CL:0002551", "CL:0002484", "CL:0000515"}


@pytest.fixture(scope="module", params=["datapoints", "lamin"])
def fixture(request, tmp_path_factory):
    return write_gdpx2(tmp_path_factory.mktemp(request.param), layout=request.param, seed=41)


def _read(fx, **kw):
    if "h5ad" in fx.files:
        return read_gdpx2(h5ad=fx.files["h5ad"], **kw)
    return read_gdpx2(fx.files["metadata"], fx.files["counts"], **kw)


@pytest.fixture(scope="module")
def ingested(fixture):
    return _read(fixture)


@pytest.fixture(scope="module")
def datapoints(tmp_path_factory):
    return write_gdpx2(tmp_path_factory.mktemp("dp"), layout="datapoints", seed=42)


@pytest.fixture(scope="module")
def lamin(tmp_path_factory):
    return write_gdpx2(tmp_path_factory.mktemp("lamin"), layout="lamin", seed=43)


def test_ledger_accounts_for_every_well_and_gene(fixture, ingested):
    led = ingested.ledger
    led.check_accounts_for(fixture.layout.index, stage="ingest")
    wells = led.to_frame().query("stage == 'ingest'")
    assert len(wells) == len(fixture.layout) == 4 * 2 * 39  # repeated metadata rows removed
    roles = fixture.layout["role"].value_counts()
    assert wells.groupby(["status", "reason"]).size().to_dict() == {
        ("kept", ""): roles["vehicle"] + roles["compound"],
        ("dropped", "positive_control"): roles["positive_control"],
    }
    details = set(wells.loc[wells["status"] == "dropped", "detail"])
    assert all(d.startswith("Ginkgo Pos Control") for d in details) and len(details) == 3
    genes = led.to_frame().query("stage == 'ingest_genes'")
    n_spikes = 4 if "h5ad" in fixture.files else 0
    assert int((genes["reason"] == "spike_in").sum()) == n_spikes
    assert ingested.samples.n_vars == 300


def test_identities_doses_and_dmso_volume(fixture, ingested):
    s = ingested.samples
    validate_samples(s)
    obs = s.obs
    assert set(obs["cell_context"]) == CL
    vehicle = obs[obs["is_control"]]
    assert (vehicle["pert_dose_uM"] == 0).all()
    assert set(vehicle["percent_volume_dmso"]) == {0.0625, 0.1875, 0.625}
    assert set(vehicle["sample_type"]) == {"Ginkgo Neg Control - DMSO"}
    treated = obs[~obs["is_control"]]
    assert set(np.round(treated["pert_dose_uM"], 6)) == {0.0095, 0.0285, 0.095, 0.3, 0.9, 3.0}
    pct_of = treated.groupby("pert_dose_uM")["percent_volume_dmso"].unique()
    assert pct_of.loc[0.0095].tolist() == [0.0625] and pct_of.loc[3.0].tolist() == [0.625]
    assert (obs["pert_time_h"] == 24.0).all()
    assert (
        treated.groupby(["cell_context", "compound_id_source", "pert_dose_uM"], observed=True)[
            "replicate"
        ]
        .apply(lambda r: sorted(r) == ["1", "2"])
        .all()
    )
    assert obs["well"].str.fullmatch(r"[A-P]\d\d").all()


def test_limma_voom_recovers_planted_effects(fixture, ingested):
    de = limma_voom(ingested.samples, mode="group")
    rec = fixture.recovery(de.effects)
    print(f"GDPx2 ({'h5ad' if 'h5ad' in fixture.files else 'datapoints'}) recovery: "
          f"r={rec['r']:.3f} (median per contrast {rec['r_median']:.3f}) "
          f"over {rec['n_contrasts']} contrasts")  # fmt: skip
    assert rec["n_contrasts"] == len(fixture.truth) == 4 * 4 * 6
    assert rec["r"] > 0.45


def test_dense_and_sparse_counts_agree(datapoints, tmp_path):
    dense = tmp_path / "dense.h5"
    with h5py.File(datapoints.files["counts"], "r") as src, h5py.File(dense, "w") as dst:
        src.copy("gene_counts", dst)
        src.copy(".gene_counts_dimnames", dst)
    a = read_gdpx2(datapoints.files["metadata"], dense, chunk_size=7).samples
    b = read_gdpx2(datapoints.files["metadata"], datapoints.files["counts"], chunk_size=5).samples
    np.testing.assert_array_equal(a.X.toarray(), b.X.toarray())
    meta = pd.read_csv(datapoints.files["metadata"]).drop_duplicates().set_index("sample_id")
    np.testing.assert_allclose(
        b.obs["total_counts"], meta.loc[b.obs_names.astype(int), "total_umi_count"]
    )


def test_conflicting_repeated_rows_are_an_error(datapoints, tmp_path):
    meta = pd.read_csv(datapoints.files["metadata"], dtype=str, keep_default_na=False)
    meta.loc[len(meta) - 1, "compound_concentration"] = "1.0"
    meta.to_csv(tmp_path / "Metadata.csv", index=False)
    with pytest.raises(SchemaError, match=r"'sample_id'.*Metadata\.csv.*different metadata"):
        read_gdpx2(tmp_path / "Metadata.csv", datapoints.files["counts"])


def test_missing_files_and_wrong_arguments(datapoints, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"GDPx2 metadata table.*Metadata\.csv"):
        read_gdpx2(tmp_path / "Metadata.csv", datapoints.files["counts"])
    with pytest.raises(FileNotFoundError, match=r"GDPx2 counts file.*GeneCounts\.h5"):
        read_gdpx2(datapoints.files["metadata"], tmp_path / "GDPx2-GeneCounts.h5")
    with pytest.raises(FileNotFoundError, match=r"curated AnnData.*x\.h5ad"):
        read_gdpx2(h5ad=tmp_path / "x.h5ad")
    with pytest.raises(ValueError, match="either"):
        read_gdpx2()
    with pytest.raises(ValueError, match="both"):
        read_gdpx2(datapoints.files["metadata"])


@pytest.mark.parametrize("column", ["percent_volume_dmso", "sample_type", "container_id"])
def test_missing_column_names_file_and_column(datapoints, tmp_path, column):
    meta = pd.read_csv(datapoints.files["metadata"], dtype=str, keep_default_na=False)
    meta.drop(columns=[column]).to_csv(tmp_path / "Metadata.csv", index=False)
    with pytest.raises(SchemaError, match=rf"'{column}'.*Metadata\.csv"):
        read_gdpx2(tmp_path / "Metadata.csv", datapoints.files["counts"])


def test_missing_obs_column_in_h5ad(lamin, tmp_path):
    a = ad.read_h5ad(lamin.files["h5ad"])
    del a.obs["pert_dose"]
    a.write_h5ad(tmp_path / "bad.h5ad")
    with pytest.raises(SchemaError, match=r"'compound_concentration'.*bad\.h5ad.*'pert_dose'"):
        read_gdpx2(h5ad=tmp_path / "bad.h5ad")


def test_unparseable_dose_string_names_the_values(lamin, tmp_path):
    a = ad.read_h5ad(lamin.files["h5ad"])
    dose = a.obs["pert_dose"].astype(str).to_numpy(copy=True)
    treated = np.flatnonzero(a.obs["sample_type"].astype(str) == "library")
    dose[treated[0]] = "1000.0 nano"
    dose[treated[1]] = "nM1000"
    a.obs["pert_dose"] = pd.Categorical(dose)
    a.write_h5ad(tmp_path / "bad.h5ad")
    with pytest.raises(FormatError, match=r"'pert_dose'.*'nM1000'"):
        read_gdpx2(h5ad=tmp_path / "bad.h5ad")


def test_unparseable_concentration_names_the_values(datapoints, tmp_path):
    meta = pd.read_csv(datapoints.files["metadata"], dtype=str, keep_default_na=False)
    meta = meta.drop_duplicates()
    meta.loc[meta.index[3], "compound_concentration"] = "9.5nM"
    meta.to_csv(tmp_path / "Metadata.csv", index=False)
    with pytest.raises(FormatError, match=r"Metadata\.csv.*'compound_concentration'.*'9\.5nM'"):
        read_gdpx2(tmp_path / "Metadata.csv", datapoints.files["counts"])


def test_missing_dose_goes_to_the_ledger(lamin, tmp_path):
    a = ad.read_h5ad(lamin.files["h5ad"])
    dose = a.obs["pert_dose"].astype(str).to_numpy(copy=True)
    treated = np.flatnonzero(a.obs["sample_type"].astype(str) == "library")[:2]
    dose[treated] = "nan"
    a.obs["pert_dose"] = pd.Categorical(dose)
    a.write_h5ad(tmp_path / "nan.h5ad")
    led = read_gdpx2(h5ad=tmp_path / "nan.h5ad").ledger.to_frame().set_index("id")
    assert (led.loc[a.obs_names[treated], "reason"] == "missing_dose").all()


def test_broken_counts_file_leaves_no_output(datapoints, tmp_path):
    broken = tmp_path / "GDPx2-GeneCounts.h5"
    with h5py.File(datapoints.files["counts"], "r") as src, h5py.File(broken, "w") as dst:
        src.copy("sparse_matrix", dst)
    out = tmp_path / "out" / "samples.h5ad"
    with pytest.raises(FormatError, match=r"GeneCounts\.h5.*gene_counts_dimnames"):
        write_h5ad(read_gdpx2(datapoints.files["metadata"], broken).samples, out)
    not_h5 = tmp_path / "not.h5"
    not_h5.write_text("text")
    with pytest.raises(FormatError, match=r"not\.h5"):
        write_h5ad(read_gdpx2(datapoints.files["metadata"], not_h5).samples, out)
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_registry():
    row = list_sources().set_index("name").loc["gdpx2"]
    assert row["assay"] == "DRUG-seq"
    assert GDPx2Source.value_kind == "counts"
    assert "GDPx2-GeneCounts.h5" in GDPx2Source.expected_files
    assert isinstance(get_source("gdpx2"), GDPx2Source)


def test_dmso_volume_is_declared_for_control_matching(tmp_path):
    """With a planted DMSO-volume effect, volume-matched vehicles recover the truth."""
    fx = write_gdpx2(tmp_path, dmso_volume_effect=1.0, seed=44)
    s = read_gdpx2(fx.files["metadata"], fx.files["counts"]).samples
    assert s.uns["perturbridge"]["control_match_keys"] == ["percent_volume_dmso"]
    matched = fx.recovery(limma_voom(s).effects)
    pooled = fx.recovery(limma_voom(s, control_keys=()).effects)
    print(f"GDPx2 with a DMSO-volume effect: r={matched['r']:.3f} volume-matched, "
          f"r={pooled['r']:.3f} pooled vehicles")  # fmt: skip
    assert matched["r"] > 0.45
    assert matched["r"] > pooled["r"] + 0.1

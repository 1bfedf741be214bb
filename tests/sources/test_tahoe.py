"""Tahoe-100M adapter: per-plate streaming pseudobulk, drugname_drugconc parsing, wells,
the obs_metadata.parquet manifest, DE recovery and bad input."""

from __future__ import annotations

import shutil

import anndata as ad
import pandas as pd
import pytest

from conftest import SHARED_DATA
from perturbridge.de.voom import limma_voom
from perturbridge.errors import FormatError, SchemaError
from perturbridge.io import write_h5ad
from perturbridge.schema import validate_samples
from perturbridge.simulate.upstream_sc import tahoe_plate_file, write_tahoe
from perturbridge.sources import get_source
from perturbridge.sources.tahoe import (
    TahoeFilters,
    TahoePlates,
    TahoeSource,
    parse_drugname_drugconc,
    read_tahoe,
    well_from_bc1,
)

NAMES = SHARED_DATA / "tahoe100m" / "tahoe_drug_names_sigspace.txt"


def _real_drugs() -> list[str] | None:
    """Tahoe's own drug spellings, salt forms first, when the shared data is present."""
    if not NAMES.exists():
        return None
    names = [n for n in NAMES.read_text().splitlines() if n and n != "DMSO_TF"]
    return sorted(names, key=lambda n: "(" not in n)


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    return write_tahoe(tmp_path_factory.mktemp("tahoe"), drugs=_real_drugs(), seed=2)


@pytest.fixture(scope="module")
def ingested(fixture):
    folder = fixture.files["plate1"].parent
    return read_tahoe(folder, obs_parquet=fixture.files["obs_parquet"], chunk_size=200)


def _copy(fixture, tmp_path):
    folder = tmp_path / "tahoe"
    shutil.copytree(fixture.files["plate1"].parent, folder)
    return folder


def test_registered():
    assert isinstance(get_source("tahoe"), TahoeSource)


def test_every_cell_is_accounted_for(fixture, ingested):
    cells = ingested.ledger.to_frame().query("stage == 'pseudobulk'").set_index("id")
    assert not cells.index.duplicated().any()
    got = cells.loc[fixture.layout.index, "reason"]
    assert (got.to_numpy() == fixture.layout["expected"].to_numpy()).all()
    assert len(cells) == len(fixture.layout)
    gone = cells[cells["reason"] == "missing_counts"]
    assert len(gone) > 0 and gone["detail"].str.contains("obs_metadata.parquet").all()
    assert (cells.loc[cells["reason"] == "missing_metadata", "detail"] == "missing cell_line").all()


def test_samples_wells_and_identities(fixture, ingested):
    s = ingested.samples
    validate_samples(s)
    obs = s.obs
    samples = ingested.ledger.to_frame().query("stage == 'ingest'")
    assert (samples["status"] == "kept").all() and len(samples) == s.n_obs
    assert set(obs["cell_context"]) == {"CVCL_0023", "CVCL_0027", "CVCL_0031"}
    assert obs.loc[obs["cell_context"] == "CVCL_0027", "cell_name"].eq("Hep G2").all()
    veh = obs[obs["is_control"]]
    assert set(veh["perturbagen"]) == {"DMSO_TF"} and (veh["pert_dose_uM"] == 0).all()
    treated = obs[~obs["is_control"]]
    assert set(treated["pert_dose_uM"]) == {0.5, 5.0}
    assert (obs["pert_time_h"] == 24.0).all()
    assert set(treated["replicate"]) == {"1", "2"}  # each condition once per plate
    if NAMES.exists():
        assert treated["perturbagen"].astype(str).str.contains(r"\(").any()  # salt forms kept
    # the well of each sample is the round-1 well of its cells
    cells = ingested.ledger.to_frame().query("stage == 'pseudobulk' and status == 'kept'")
    lay = fixture.layout.loc[cells["id"]]
    expected = pd.Series(lay["well"].to_numpy(), index=cells["detail"].to_numpy())
    expected = expected[~expected.index.duplicated()]
    assert (obs["well"] == expected.reindex(obs.index)).all()


def test_limma_voom_recovers_planted_effects(fixture, ingested):
    de = limma_voom(ingested.samples, mode="group")
    rec = fixture.recovery(de.effects)
    print(f"Tahoe recovery: r={rec['r']:.3f} (median per contrast {rec['r_median']:.3f}) "
          f"over {rec['n_contrasts']} contrasts, {rec['n_values']} values")  # fmt: skip
    assert rec["n_contrasts"] == len(fixture.truth) == 24
    assert rec["r"] > 0.6


def test_without_manifest_and_other_chunks(fixture, ingested):
    res = read_tahoe(fixture.files["plate1"].parent, chunk_size=100_000)
    assert "missing_counts" not in set(res.ledger.to_frame()["reason"])
    assert (res.samples.obs_names == ingested.samples.obs_names).all()
    assert (res.samples.X != ingested.samples.X).nnz == 0


def test_cellosaurus_column_spelling(fixture, tmp_path):
    folder = _copy(fixture, tmp_path)
    for p in (1, 2):
        path = folder / tahoe_plate_file(p)
        a = ad.read_h5ad(path)
        a.obs = a.obs.rename(columns={"cell_line": "Cell_ID_Cellosaur"})
        a.write_h5ad(path)
    res = read_tahoe(folder)
    assert set(res.samples.obs["cell_context"]) == {"CVCL_0023", "CVCL_0027", "CVCL_0031"}


def test_combination_goes_to_the_ledger(fixture, tmp_path):
    folder = _copy(fixture, tmp_path)
    path = folder / tahoe_plate_file(1)
    a = ad.read_h5ad(path)
    conc = a.obs["drugname_drugconc"].astype(str)
    first = conc[~conc.str.contains("DMSO_TF")].iloc[0]
    combo = "[('Drug A', 1.0, 'uM'), ('Drug B', 2.0, 'uM')]"
    a.obs["drugname_drugconc"] = conc.replace(first, combo).astype("category")
    drug = a.obs["drug"].astype(str)
    a.obs["drug"] = drug.where(conc != first, "Drug A + Drug B").astype("category")
    a.write_h5ad(path)
    led = read_tahoe(folder).ledger.to_frame()
    combos = led[led["reason"] == "unsupported_pert_type"]
    assert len(combos) == 3 and combos["detail"].str.startswith("combination: ").all()


# --------------------------------------------------------------------------- parsing


def test_parse_drugname_drugconc():
    got = parse_drugname_drugconc(
        ["[('Trametinib (DMSO_TF solvate)', 0.5, 'uM')]", "[('DMSO_TF', 0.0, 'uM')]", ""],
        where="f",
    )
    assert got["[('Trametinib (DMSO_TF solvate)', 0.5, 'uM')]"] == [
        ("Trametinib (DMSO_TF solvate)", 0.5, "uM")
    ]
    assert "" not in got


@pytest.mark.parametrize(
    "value",
    [
        "Trametinib 0.5uM",
        "[('Trametinib', 'high', 'uM')]",
        "[('Trametinib', -1.0, 'uM')]",
        "[]",
        "__import__('os').system('true')",
        "[('x', 1.0)]",
    ],
)
def test_unparseable_drugname_drugconc_is_named(value):
    with pytest.raises(FormatError, match=r"plate7\.h5ad: column 'drugname_drugconc'.*expected"):
        parse_drugname_drugconc([value], where="plate7.h5ad")


def test_well_from_bc1():
    got = well_from_bc1(["A1", "a12", "13", 96, "H01", None], where="f", column="bc1")
    assert got.tolist() == ["A01", "A12", "B01", "H12", "H01", ""]
    with pytest.raises(FormatError, match=r"'bc1'.*\['97'\]"):
        well_from_bc1(["97"], where="f", column="bc1")


def test_samples_round_trip_through_h5ad(ingested, tmp_path):
    path = write_h5ad(ingested.samples, tmp_path / "samples.h5ad")
    back = ad.read_h5ad(path)
    validate_samples(back)
    assert back.obs_names.equals(ingested.samples.obs_names)
    assert (back.X != ingested.samples.X).nnz == 0


# ------------------------------------------------------------------------- bad input


def test_missing_folder_and_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"plate folder not found.*nowhere"):
        read_tahoe(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no Tahoe-100M plate files.*empty"):
        read_tahoe(tmp_path / "empty")


def test_plate_in_manifest_without_file(fixture, tmp_path):
    folder = _copy(fixture, tmp_path)
    (folder / tahoe_plate_file(2)).unlink()
    with pytest.raises(
        FileNotFoundError, match=r"obs_metadata\.parquet lists plate\(s\) \['plate2'\]"
    ):
        read_tahoe(folder, obs_parquet=folder / "obs_metadata.parquet")


def test_missing_manifest_file(fixture, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"obs_metadata\.parquet\) not found"):
        read_tahoe(fixture.files["plate1"].parent, obs_parquet=tmp_path / "obs_metadata.parquet")


@pytest.mark.parametrize("column", ["drug", "drugname_drugconc", "sample", "plate"])
def test_missing_column_names_file_and_column(fixture, tmp_path, column):
    folder = _copy(fixture, tmp_path)
    path = folder / tahoe_plate_file(2)
    a = ad.read_h5ad(path)
    del a.obs[column]
    a.write_h5ad(path)
    with pytest.raises(SchemaError, match=rf"plate2_filt.*\.h5ad obs.*{column}"):
        read_tahoe(folder)


def test_unparseable_drugname_drugconc_in_a_plate(fixture, tmp_path):
    folder = _copy(fixture, tmp_path)
    path = folder / tahoe_plate_file(1)
    a = ad.read_h5ad(path)
    conc = a.obs["drugname_drugconc"].astype(str).to_numpy(copy=True)
    conc[:2] = ["Trametinib 0.5 uM", "[('Trametinib', 'x', 'uM')]"]
    a.obs["drugname_drugconc"] = pd.Categorical(conc)
    a.write_h5ad(path)
    with pytest.raises(
        FormatError, match=r"plate1_filt.*'drugname_drugconc'.*'Trametinib 0\.5 uM'"
    ):
        read_tahoe(folder)


def test_failed_ingest_leaves_no_output_file(fixture, tmp_path):
    folder = _copy(fixture, tmp_path)
    (folder / tahoe_plate_file(1)).write_text("broken")
    out = tmp_path / "out" / "samples.h5ad"
    with pytest.raises(FormatError, match=r"plate1_filt.*not a readable"):
        write_h5ad(read_tahoe(folder).samples, out)
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_flat_plan_keys_are_grouped(fixture):
    """Plans and ``--set`` give the plate and filter options as flat keys."""
    adapter = get_source("tahoe")
    folder = fixture.files["plate1"].parent
    grouped = adapter.reader_kwargs({"folder": folder, "time_h": 48.0, "min_cells": 3})
    assert grouped == {
        "folder": folder,
        "plates": TahoePlates(time_h=48.0),
        "filters": TahoeFilters(min_cells=3),
    }
    res = adapter.ingest(folder=folder, time_h=48.0, min_cells=3, chunk_size=100_000)
    direct = read_tahoe(folder, plates=TahoePlates(time_h=48.0), filters=TahoeFilters(min_cells=3))
    assert (res.samples.obs_names == direct.samples.obs_names).all()
    assert set(res.samples.obs["pert_time_h"]) == {48.0}
    assert res.samples.uns["perturbridge"]["provenance"]["params"]["time_h"] == 48.0

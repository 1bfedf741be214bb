"""export_release: a store in the layout of the public release, read back by
import-release (round trip) and by the published agreement profile (no column mapping)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Literal

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from conftest import shared_path
from perturbridge.agreement.published import PublishedOptions, read_release, run_published
from perturbridge.compendium import (
    Compendium,
    StoreError,
    build,
    export_release,
    import_release,
    release_export as rx,
)
from perturbridge.compendium.store import read_effects_file
from perturbridge.io import file_sha256, write_h5ad
from perturbridge.schema import BIOLOGY_COLUMNS
from perturbridge.simulate import AgreementDesign, simulate_agreement_store, simulate_counts

from ._fixtures import COUNTS_MODULE

#: the published 24-column obs schema, written out here (not taken from the module)
RELEASE_24 = [
    "plate", "well", "cell_type", "perturbagen", "pert_type", "is_control", "pert_dose_uM",
    "pert_time_h", "suspension_type", "tissue", "tissue_type", "disease", "library",
    "stimulation", "guide", "dataset", "assay", "development_stage", "organism", "sex",
    "self_reported_ethnicity", "pubchem_cid", "psbulk_cells", "psbulk_counts",
]  # fmt: skip
#: layers compared by the round trip (the acceptance: logFC, t and adjusted p-values)
COMPARED = ("logFC", "t", "adj.P.Value.within_one_contrast", "adj.P.Value.across_all_contrasts")


@pytest.fixture(scope="module")
def exported(built: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference build (L1000: group + separate, counts: group) exported."""
    return export_release(built["store"], tmp_path_factory.mktemp("rel") / "release")


@pytest.fixture(scope="module")
def reimported(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("back") / "store"
    import_release(exported, store)
    return store


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _stored(store: Path, rel: str) -> ad.AnnData:
    """A store's Effects file ``effects/<rel>``, complete (the store's reader)."""
    return read_effects_file(store, f"effects/{rel}")


def _same_layer(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """Float32 values of a store against another store's: exactly, except p-values, to
    a few float32 ulps of ``-log10(p)`` (each store keeps them as float32 ``-log10(p)``
    of a p-value that went through float32 between them)."""
    got, want = np.asarray(got), np.asarray(want)
    if "P.Val" not in what:
        assert got.dtype == want.dtype == np.float32, what
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    # p-values below float32's smallest normal number are float64 in a store, float32
    # (so 0 or subnormal) in the release between the two
    got, want = got.astype(np.float64), want.astype(np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(want)), what
    tiny = want < np.finfo(np.float32).tiny
    assert (got[tiny] < np.finfo(np.float32).tiny).all(), what
    with np.errstate(divide="ignore"):
        lg, lw = -np.log10(got[~tiny]), -np.log10(want[~tiny])
    np.testing.assert_allclose(lg, lw, rtol=4 * 2.0**-23, atol=1e-6, err_msg=what)


# ------------------------------------------------------------------------ layout


def test_tree_layout_and_provenance(exported: Path, built: dict[str, Path]) -> None:
    assert _files(exported) == [
        "provenance.json",
        "sim_counts/group_rep/CVCL_0023_de.h5ad",
        "sim_counts/group_rep/CVCL_0031_de.h5ad",
        "sim_counts/sim_counts_processed.h5ad",
        "sim_l1000/group_rep/A375_de.h5ad",
        "sim_l1000/group_rep/MCF7_de.h5ad",
        "sim_l1000/group_rep/PC3_de.h5ad",
        "sim_l1000/sep_rep/A375_de.h5ad",
        "sim_l1000/sep_rep/MCF7_de.h5ad",
        "sim_l1000/sep_rep/PC3_de.h5ad",
        "sim_l1000/sim_l1000_processed.h5ad",
    ]
    prov = json.loads((exported / "provenance.json").read_text())
    assert prov["store"] == str(built["store"].absolute())
    counts = prov["datasets"]["sim_counts"]
    assert any("sep_rep/" in why for why in counts["left_out"])  # group mode only
    assert prov["datasets"]["sim_l1000"]["left_out"] == []
    for info in prov["datasets"].values():
        for f in info["files"]:
            assert file_sha256(exported / f["path"]) == f["sha256"]
            assert file_sha256(built["store"] / f["source"]) == f["source_sha256"]
    assert counts["var_index"] == "ensembl"
    assert prov["datasets"]["sim_l1000"]["var_index"] == "store gene ids (not Ensembl)"


def test_de_files_have_release_obs_layers_and_var(exported: Path, built: dict[str, Path]) -> None:
    for mode, folder in (("group", "group_rep"), ("separate", "sep_rep")):
        out = ad.read_h5ad(exported / "sim_l1000" / folder / "A375_de.h5ad")
        src = _stored(built["store"], f"sim_l1000/{mode}/A375_de.h5ad")
        assert out.X is None  # release DE files have no X
        assert list(out.obs.columns[:24]) == RELEASE_24
        assert set(out.layers) == set(src.layers)
        assert all(v.dtype == np.float32 for v in out.layers.values())
        assert out.var_names.tolist() == src.var_names.tolist()
        assert out.var["symbol"].tolist() == src.var["symbol"].astype(str).tolist()
        # index "<contrast> - <control>" (the release's), rows in file order
        want = [f"{c} - {k}" for c, k in zip(src.obs_names, src.obs["control_label"], strict=True)]
        assert out.obs_names.tolist() == want
        assert not out.obs["is_control"].any()
        assert (out.obs["cell_type"].astype(str) == "A375").all()
        assert (out.obs["guide"] == "none").all()
        for col in ("tissue", "disease", "sex", "library", "stimulation"):
            if col not in src.obs:
                assert (out.obs[col] == "unknown").all(), col
        assert out.obs["pert_dose_uM"].tolist() == src.obs["pert_dose_uM"].tolist()
    sep = _stored(built["store"], "sim_l1000/separate/A375_de.h5ad")
    group = ad.read_h5ad(exported / "sim_l1000" / "group_rep" / "A375_de.h5ad")
    # a group row's id is the first replicate's sample (separate rows in file order)
    first = sep.obs.groupby("condition", observed=True, sort=False)["sample_id"].first()
    assert group.obs["id"].astype(str).tolist() == [
        str(first[c]) for c in group.obs["condition"].astype(str)
    ]
    # without separate-mode rows (the counts dataset): the first treated sample of the
    # same context, compound, dose and time, and that sample's plate, well and cells
    src = _stored(built["store"], "sim_counts/group/CVCL_0023_de.h5ad")
    got = ad.read_h5ad(exported / "sim_counts" / "group_rep" / "CVCL_0023_de.h5ad").obs
    wells = ad.read_h5ad(built["store"] / "samples" / "sim_counts.h5ad").obs
    for (_, row), (_, out_row) in zip(src.obs.iterrows(), got.iterrows(), strict=True):
        same = wells[
            (wells["cell_context"] == row["cell_context"])
            & (wells["perturbagen"] == row["perturbagen"])
            & (wells["pert_dose_uM"] == row["pert_dose_uM"])
            & (wells["pert_time_h"] == row["pert_time_h"])
            & ~wells["is_control"]
        ]
        assert out_row["id"] == same.index[0]
        assert out_row["plate"] == same["plate"].iloc[0]
        assert out_row["psbulk_cells"] == same["n_cells"].iloc[0]
    # ... and its plate and well are that sample's
    samples = ad.read_h5ad(built["store"] / "samples" / "sim_l1000.h5ad").obs
    ids = group.obs["id"].astype(str)
    assert group.obs["plate"].astype(str).tolist() == samples.loc[ids, "plate"].astype(str).tolist()
    assert group.obs["well"].astype(str).tolist() == samples.loc[ids, "well"].astype(str).tolist()


def test_processed_files(exported: Path, built: dict[str, Path]) -> None:
    for name in ("sim_l1000", "sim_counts"):
        out = ad.read_h5ad(exported / name / f"{name}_processed.h5ad")
        src = ad.read_h5ad(built["store"] / "samples" / f"{name}.h5ad")
        assert list(out.obs.columns[:24]) == RELEASE_24
        assert out.obs_names.tolist() == src.obs_names.tolist()
        assert out.X.dtype == src.X.dtype  # the Samples' own values, not rounded
        assert out.uns["value_kind"] == src.uns["perturbridge"]["value_kind"]
        np.testing.assert_array_equal(out.X, np.asarray(src.X))
        assert out.obs["is_control"].tolist() == src.obs["is_control"].tolist()
        assert (
            out.obs["pert_type"].astype(str).tolist() == src.obs["pert_type"].astype(str).tolist()
        )
        assert (out.obs["dataset"] == name).all()
        assert out.obs["plate"].astype(str).tolist() == src.obs["plate"].astype(str).tolist()
        for col in BIOLOGY_COLUMNS:
            if col in out.obs and col not in src.obs:
                assert (out.obs[col] == "unknown").all(), col
        assert out.obs["pubchem_cid"].isna().all()  # the simulated compounds have no CID
    counts = ad.read_h5ad(exported / "sim_counts" / "sim_counts_processed.h5ad").obs
    src = ad.read_h5ad(built["store"] / "samples" / "sim_counts.h5ad").obs
    assert counts["psbulk_cells"].tolist() == src["n_cells"].astype(float).tolist()
    assert counts["psbulk_counts"].tolist() == src["total_counts"].tolist()
    wells = ad.read_h5ad(exported / "sim_l1000" / "sim_l1000_processed.h5ad").obs
    assert wells["psbulk_cells"].isna().all()  # L1000 wells are not pseudobulks


def test_release_obs_sentinels_by_hand() -> None:
    obs = pd.DataFrame(
        {
            "cell_context": ["A375", "A375", "MCF7"],
            "perturbagen": ["DMSO", "vemurafenib", "x"],
            "is_control": [True, False, False],
            "pert_dose_uM": [0.0, 10.0, np.nan],
            "pert_time_h": [24.0, 24.0, 6.0],
            "pubchem_cid": pd.array([pd.NA, 42611257, 7], dtype="Int64"),
            "sex": ["female", None, ""],
            "plate": ["P1", "P1", None],
        },
        index=["a", "b", "c"],
    )
    out = rx.release_obs(obs, dataset="d", assay="L1000")
    assert list(out.columns[:24]) == RELEASE_24
    assert out.index.tolist() == ["a", "b", "c"]
    assert out["pert_type"].tolist() == ["vehicle", "compound", "compound"]
    assert out["sex"].tolist() == ["female", "unknown", "unknown"]
    assert out["plate"].tolist() == ["P1", "P1", "unknown"]
    assert out["tissue"].tolist() == ["unknown"] * 3
    assert out["guide"].tolist() == ["none"] * 3
    assert out["assay"].tolist() == ["L1000"] * 3
    assert out["pubchem_cid"].tolist()[1:] == ["42611257", "7"]
    assert pd.isna(out["pubchem_cid"].tolist()[0])
    assert np.isnan(out["pert_dose_uM"].iloc[2]) and out["pert_dose_uM"].iloc[0] == 0.0
    assert out["psbulk_cells"].isna().all() and out["psbulk_counts"].isna().all()


def test_release_obs_errors() -> None:
    with pytest.raises(ValueError, match="dataset 'd': obs has no cell_context"):
        rx.release_obs(pd.DataFrame({"perturbagen": ["x"]}), dataset="d", assay="a")
    bad = pd.DataFrame({"cell_context": ["A"], "pubchem_cid": ["CID x"]})
    with pytest.raises(
        ValueError, match=r"pubchem_cid has values that are not numbers: \['CID x'\]"
    ):
        rx.release_obs(bad, dataset="d", assay="a")


def test_release_var_ensembl_from_column() -> None:
    var = pd.DataFrame(
        {"symbol": ["A", None], "ensembl_gene_id": ["ENSG000001", "ENSG000002"]},
        index=["10", "20"],
    )
    out, kind = rx._release_var(var)
    assert kind == "ensembl"
    assert out.index.tolist() == ["ENSG000001", "ENSG000002"]
    assert out["gene_id"].tolist() == ["10", "20"]
    assert out["symbol"].tolist() == ["A", ""]


# ------------------------------------------------------------------------ round trip


def test_round_trip_conditions(built: dict[str, Path], reimported: Path) -> None:
    with Compendium.open(built["store"]) as a, Compendium.open(reimported) as b:
        ca = a.conditions().drop(columns=["zarr_row_group"]).reset_index(drop=True)
        cb = b.conditions().drop(columns=["zarr_row_group"]).reset_index(drop=True)
        assert len(ca) == 86
        pd.testing.assert_frame_equal(ca, cb, check_dtype=False, check_categorical=False)


@pytest.mark.parametrize("mode", ["group", "separate"])
def test_round_trip_values_max_diff_is_float32_rounding(
    built: dict[str, Path], reimported: Path, mode: str
) -> None:
    """The release stores float32: every value comes back as the original store gives
    it (logFC and t exactly; p-values to a few float32 ulps of ``-log10(p)``: a store
    keeps them as float32 ``-log10(p)``, see :func:`_same_layer`)."""
    key = ["condition"] if mode == "group" else ["condition", "sample_id"]
    folder = built["store"] / "effects"
    pairs = sorted(folder.glob(f"*/{mode}/*_de.h5ad"))
    assert pairs
    for path in pairs:
        rel = path.relative_to(folder)
        src = _stored(built["store"], rel.as_posix())
        back = _stored(reimported, rel.as_posix())
        a = src.obs.reset_index()[key].astype(str).agg("|".join, axis=1)
        b = back.obs.reset_index()[key].astype(str).agg("|".join, axis=1)
        assert a.tolist() == b.tolist(), rel
        assert back.var_names.tolist() == src.var_names.tolist()
        for layer in COMPARED:
            _same_layer(back.layers[layer], src.layers[layer], f"{rel} {layer}")


def _same_effects(a: Compendium, b: Compendium) -> None:
    """The two stores give the same values through ``Compendium.effects``: logFC and t
    exactly; p-values to a few float32 ulps of ``-log10(p)`` (the arrays may store them
    as float32 ``-log10(p)``, computed from the float64 original in one store and from
    its float32 rounding in the other). Genes only the first has (measured in Samples,
    never in an Effects file) are NaN there."""
    modes: tuple[Literal["group", "separate"], ...] = ("group", "separate")
    for mode in [m for m in modes if m in a.modes]:
        ta = a.contrasts(mode=mode).sort_values(["condition_id", "sample_id"], kind="stable")
        tb = b.contrasts(mode=mode).sort_values(["condition_id", "sample_id"], kind="stable")
        assert ta["condition_id"].tolist() == tb["condition_id"].tolist()
        for layer in COMPARED:
            if layer not in a.layers:
                continue
            ea = a.effects(ta, layer=layer, mode=mode)
            eb = b.effects(tb, layer=layer, mode=mode)
            assert set(eb.var_names) <= set(ea.var_names)
            extra = ea.var_names.difference(eb.var_names)
            assert np.isnan(ea[:, extra].X).all(), (mode, layer)
            xa, xb = ea[:, eb.var_names].X, eb.X
            if layer.startswith("adj.P"):  # compared as the arrays may store them
                assert np.array_equal(np.isnan(xa), np.isnan(xb)), (mode, layer)
                with np.errstate(divide="ignore"):
                    la, lb = -np.log10(xa.astype(np.float64)), -np.log10(xb.astype(np.float64))
                np.testing.assert_allclose(
                    lb, la, rtol=4 * 2.0**-23, atol=1e-6, err_msg=f"{mode} {layer}"
                )
            else:
                assert np.array_equal(xa, xb, equal_nan=True), (mode, layer)


def test_round_trip_through_the_api(built: dict[str, Path], reimported: Path) -> None:
    with Compendium.open(built["store"]) as a, Compendium.open(reimported) as b:
        assert a.modes == b.modes == ["group", "separate"]
        _same_effects(a, b)


@pytest.mark.slow
def test_round_trip_of_the_demo_store(demo_run, tmp_path: Path) -> None:
    """The demo store (ten datasets, every source adapter): export, import, compare."""
    store = demo_run.out / "compendium_demo" / "compendium"
    assert (store / "manifest.json").is_file(), demo_run.output
    back = tmp_path / "back"
    import_release(export_release(store, tmp_path / "release"), back)
    with Compendium.open(store) as a, Compendium.open(back) as b:
        ca = a.conditions().drop(columns=["zarr_row_group"]).reset_index(drop=True)
        cb = b.conditions().drop(columns=["zarr_row_group"]).reset_index(drop=True)
        assert len(ca) > 100
        pd.testing.assert_frame_equal(ca, cb, check_dtype=False, check_categorical=False)
        _same_effects(a, b)
    for path in sorted((store / "effects").glob("*/*/*_de.h5ad")):
        rel = path.relative_to(store / "effects")
        src, got = _stored(store, rel.as_posix()), _stored(back, rel.as_posix())
        assert got.var_names.tolist() == src.var_names.tolist(), rel  # the store's gene ids
        for layer in COMPARED:
            if layer in src.layers:
                _same_layer(got.layers[layer], src.layers[layer], f"{rel} {layer}")


# ------------------------------------------------------------------------ published


def test_published_profile_reads_the_export(exported: Path) -> None:
    """The reader of the published profile takes the tree as it is."""
    data = read_release(exported)
    assert data.names == ["sim_counts", "sim_l1000"]
    l1000 = data["sim_l1000"]
    assert sorted(l1000.group) == ["A375", "MCF7", "PC3"]
    assert sorted(l1000.replicate) == ["A375", "MCF7", "PC3"]
    assert l1000.processed is not None and len(l1000.processed) == 216
    assert l1000.group["A375"].adj_p_layer == "adj.P.Value.within_one_contrast"
    assert l1000.processed["is_control"].sum() == 72  # DMSO wells of the simulation


@pytest.fixture(scope="module")
def agreement_trees(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A simulated two-dataset release (with CIDs), imported and exported again."""
    base = tmp_path_factory.mktemp("agree")
    design = AgreementDesign(
        n_datasets=2, n_contexts=1, n_compounds=12, doses=(1.0, 10.0), n_genes=40,
        n_replicates=2, n_controls=3,
    )  # fmt: skip
    simulate_agreement_store(base / "store", design, seed=1, release_dir=base / "orig")
    return base / "orig", export_release(base / "store", base / "exported")


def test_published_tables_of_the_export_equal_the_original(
    agreement_trees: tuple[Path, Path],
) -> None:
    orig, exported = agreement_trees
    assert not (exported / "sim_a" / "sim_a_processed.h5ad").exists()  # imported: no Samples
    prov = json.loads((exported / "provenance.json").read_text())
    assert "no Samples" in prov["datasets"]["sim_a"]["left_out"][0]
    opts = PublishedOptions(n_boot=50)
    want = run_published(orig, options=opts)
    got = run_published(exported, options=opts)
    assert len(got.pairs) > 0 and len(got.summary) > 0 and len(got.replicate_conditions) > 0
    for name, frame in want.tables.items():
        pd.testing.assert_frame_equal(got.tables[name], frame, obj=name)


def _counts_with_cids(path: Path, seed: int) -> Path:
    """Count Samples of one cell line whose compounds have CIDs (drugNNNN → 5000 + N)."""
    samples = simulate_counts(
        n_genes=150, n_plates=2, conditions_per_plate=18, vehicles_per_plate=4, seed=seed
    ).samples
    names = samples.obs["perturbagen"].astype(str)
    samples.obs["pubchem_cid"] = pd.array(
        [pd.NA if n == "DMSO" else 5000 + int(n[4:]) for n in names], dtype="Int64"
    )
    samples.uns["perturbridge"] = {"kind": "samples", "value_kind": "counts", "provenance": {}}
    for col in ("dataset", "assay", "plate", "well", "cell_context", "cell_name"):
        samples.obs[col] = pd.Categorical(samples.obs[col].astype(str))
    return write_h5ad(samples, path)


def test_published_sample_pairs_weighting_reads_the_processed_files(tmp_path: Path) -> None:
    """Two built count datasets with CIDs: the profile weighs matched conditions by the
    processed samples of the export (sample_pairs), and its sample counts are those of
    the store's Samples."""
    parts = [f'[store]\npath = "store"\n[build]\nimports = ["{COUNTS_MODULE}"]\n']
    for i in range(2):
        h5ad = _counts_with_cids(tmp_path / f"counts{i}.h5ad", seed=i)
        parts.append(
            f'[[datasets]]\nname = "d{i}"\nsource = "test_counts_h5ad"\n'
            f'inputs = {{ h5ad = "{h5ad}" }}\nde = {{ modes = ["group"] }}\n'
        )
    (tmp_path / "plan.toml").write_text("[executor]\nn_jobs = 1\n" + "\n".join(parts))
    build(tmp_path / "plan.toml")
    out = export_release(tmp_path / "store", tmp_path / "release")
    res = run_published(out, options=PublishedOptions(n_boot=50, replicates=False))
    assert res.weighting == "sample_pairs"
    pairs = res.pairs
    assert len(pairs) >= 10 and (pairs["n_sample_pairs"] > 1).any()

    samples = {
        d: ad.read_h5ad(tmp_path / "store" / "samples" / f"{d}.h5ad").obs for d in ("d0", "d1")
    }

    def n_samples(dataset: str, cid: Any, dose: Any, time: Any) -> int:
        obs = samples[dataset]
        hit = (
            (obs["pubchem_cid"].astype("Int64").astype(str) == cid)
            & (obs["pert_dose_uM"] == dose)
            & (obs["pert_time_h"].map(lambda v: f"{v:.12g}") == time)
            & ~obs["is_control"]
        )
        return int(hit.sum())

    for row in pairs.itertuples(index=False):
        left = n_samples("d0", row.pubchem_cid, row.left_dose_uM, row.time_key)
        right = n_samples("d1", row.pubchem_cid, row.right_dose_uM, row.time_key)
        assert (row.n_left_samples, row.n_right_samples) == (left, right)
        assert row.n_sample_pairs == left * right


# ------------------------------------------------------------------------ errors


def test_export_errors(built: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError, match="is not empty"):
        export_release(built["store"], tmp_path / "full")
    with pytest.raises(KeyError, match=r"datasets \['nope'\] have no Effects in the store"):
        export_release(built["store"], tmp_path / "a", datasets=["nope"])
    with pytest.raises(TypeError, match="datasets must be a list of dataset names, not the"):
        export_release(built["store"], tmp_path / "a", datasets="sim_counts")
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        export_release(built["store"], tmp_path / "b", chunk_size=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_export_one_dataset_small_blocks(built: dict[str, Path], tmp_path: Path) -> None:
    out = export_release(built["store"], tmp_path / "r", datasets=["sim_counts"], chunk_size=3)
    assert sorted(p.name for p in out.iterdir()) == ["provenance.json", "sim_counts"]
    src = _stored(built["store"], "sim_counts/group/CVCL_0031_de.h5ad")
    got = ad.read_h5ad(out / "sim_counts" / "group_rep" / "CVCL_0031_de.h5ad")
    np.testing.assert_array_equal(got.layers["t"], src.layers["t"].astype(np.float32))


def test_no_half_written_tree(
    built: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real = rx._write_de_file

    def failing(*args: Any, **kwargs: Any) -> list[str]:
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(rx, "_write_de_file", failing)
    with pytest.raises(OSError, match="disk full"):
        export_release(built["store"], tmp_path / "r")
    assert list(tmp_path.iterdir()) == []


def test_damaged_store_file_is_an_error(built: dict[str, Path], tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(built["store"], store, ignore=shutil.ignore_patterns(".cache"))
    path = store / "effects" / "sim_counts" / "group" / "CVCL_0023_de.h5ad"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"CVCL_0023_de.h5ad does not match the store's manifest"):
        export_release(store, tmp_path / "r")
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------ real data


@pytest.mark.shared_data
@pytest.mark.slow  # a build of the real plate (two modes), an export and an import
def test_round_trip_of_the_real_ljp005_plate(tmp_path: Path) -> None:
    """The LJP005 A375 plate (354 wells: 328 treated, 26 DMSO) built, exported, read by
    the published reader and imported again."""
    plate = shared_path("l1000_cmapPy", "test_l1000.gct")
    (tmp_path / "plan.toml").write_text(
        '[store]\npath = "store"\n[executor]\nn_jobs = 1\n[[datasets]]\nname = "ljp005"\n'
        f'source = "l1000"\ninputs = {{ level3 = "{plate}" }}\n'
        'de = { modes = ["group", "separate"] }\n'
    )
    build(tmp_path / "plan.toml")
    store = tmp_path / "store"
    out = export_release(store, tmp_path / "release")
    processed = ad.read_h5ad(out / "ljp005" / "ljp005_processed.h5ad").obs
    assert list(processed.columns[:24]) == RELEASE_24
    assert len(processed) == 354 and int(processed["is_control"].sum()) == 26
    assert set(processed["cell_type"].astype(str)) == {"A375"}
    assert (processed.loc[processed["is_control"], "perturbagen"] == "DMSO").all()
    assert (processed.loc[processed["is_control"], "pert_type"] == "vehicle").all()
    assert (processed["pert_time_h"] == 24.0).all()
    data = read_release(out)
    ds = data["ljp005"]
    assert ds.processed is not None and int(ds.processed["is_control"].sum()) == 26
    assert sorted(ds.group) == sorted(ds.replicate) == ["A375"]
    import_release(out, tmp_path / "back")
    with Compendium.open(store) as a, Compendium.open(tmp_path / "back") as b:
        ca = a.conditions().drop(columns=["zarr_row_group"]).reset_index(drop=True)
        cb = b.conditions().drop(columns=["zarr_row_group"]).reset_index(drop=True)
        assert len(ca) == 328
        pd.testing.assert_frame_equal(ca, cb, check_dtype=False, check_categorical=False)
        _same_effects(a, b)

"""The store layout: Effects files, consolidated arrays, catalog and manifest."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import zarr

from perturbridge.compendium import StoreError, store_digest
from perturbridge.compendium.store import (
    CATALOG_TABLES,
    read_effects_file,
    read_manifest,
    store_is_current,
)
from perturbridge.io import file_sha256
from perturbridge.schema import EFFECT_LAYERS, validate_effects, validate_samples

from ._fixtures import cache_effects


def test_layout(built):
    store = built["store"]
    assert (store / ".perturbridge-store").is_file()
    assert (store / "manifest.json").is_file()
    assert (store / "timings.json").is_file()
    assert sorted(p.name for p in (store / "samples").iterdir()) == [
        "sim_counts.h5ad",
        "sim_l1000.h5ad",
    ]
    effects = sorted(
        p.relative_to(store / "effects").as_posix() for p in (store / "effects").rglob("*.h5ad")
    )
    assert effects == [
        "sim_counts/group/CVCL_0023_de.h5ad",
        "sim_counts/group/CVCL_0031_de.h5ad",
        "sim_l1000/group/A375_de.h5ad",
        "sim_l1000/group/MCF7_de.h5ad",
        "sim_l1000/group/PC3_de.h5ad",
        "sim_l1000/separate/A375_de.h5ad",
        "sim_l1000/separate/MCF7_de.h5ad",
        "sim_l1000/separate/PC3_de.h5ad",
    ]
    assert sorted(p.stem for p in (store / "catalog").iterdir()) == sorted(CATALOG_TABLES)
    assert sorted(p.name for p in (store / "zarr").iterdir()) == ["group.zarr", "separate.zarr"]


def test_effects_files_follow_the_effects_layout(built):
    rel = "effects/sim_l1000/separate/A375_de.h5ad"
    # the file itself keeps only what is stored nowhere else
    stored = ad.read_h5ad(built["store"] / rel)
    assert set(stored.layers) == {"AveExpr", "B", "stdev.unscaled"}
    assert set(stored.uns["store_layers"]["derived"]) == {
        "CI.L",
        "CI.R",
        "adj.P.Value.across_all_contrasts",
    }
    # the store's reader gives it back complete
    eff = read_effects_file(built["store"], rel)
    validate_effects(eff)
    assert list(eff.layers) == list(EFFECT_LAYERS)
    assert set(eff.obs["cell_context"]) == {"A375"}
    # separate mode: each contrast points at its group-mode condition
    group = ad.read_h5ad(built["store"] / "effects" / "sim_l1000" / "group" / "A375_de.h5ad")
    assert set(eff.obs["condition"]) <= set(group.obs_names)
    assert eff.uns["perturbridge"]["replicate_mode"] == "separate"


def test_samples_are_sorted_by_context_and_valid(built):
    samples = ad.read_h5ad(built["store"] / "samples" / "sim_l1000.h5ad")
    validate_samples(samples)
    ctx = samples.obs["cell_context"].astype(str).to_numpy()
    assert (ctx[:-1] <= ctx[1:]).all()


def _no_times(obj, where=""):
    if isinstance(obj, dict):
        assert "created_utc" not in obj, where
        for k, v in obj.items():
            _no_times(v, f"{where}/{k}")


def test_data_files_hold_no_timestamps(built):
    for path in (built["store"] / "effects").rglob("*.h5ad"):
        _no_times(ad.read_h5ad(path).uns, str(path))
    for path in (built["store"] / "samples").rglob("*.h5ad"):
        _no_times(ad.read_h5ad(path).uns, str(path))
    manifest = (built["store"] / "manifest.json").read_text()
    assert "created_utc" not in manifest and "wall_s" not in manifest


def test_consolidated_arrays_match_the_effects_files(built):
    store = built["store"]
    contrasts = pd.read_parquet(store / "catalog" / "contrasts.parquet")
    genes = pd.read_parquet(store / "catalog" / "genes.parquet")
    assert genes["gene_id"].tolist() == sorted(genes["gene_id"])
    assert genes["zarr_col"].tolist() == list(range(len(genes)))
    for mode in ("group", "separate"):
        group = zarr.open_group(
            str(store / "zarr" / f"{mode}.zarr"), mode="r", zarr_format=3, use_consolidated=True
        )
        rows = contrasts[contrasts["mode"] == mode]
        assert rows["zarr_row"].tolist() == list(range(len(rows)))
        assert set(group.array_keys()) == {
            "logFC",
            "t",
            "P.Value",
            "adj.P.Value.within_one_contrast",
        }
        arr = group["logFC"]
        assert arr.shape == (len(rows), len(genes)) and arr.dtype == np.float32
        x = arr[:]
        for rel, grp in rows.groupby("effects_file"):
            eff = cache_effects(store, str(rel))  # the complete file the store came from
            cols = genes.set_index("gene_id").loc[eff.var_names, "zarr_col"].to_numpy()
            block = x[grp["zarr_row"].to_numpy()]
            np.testing.assert_array_equal(
                block[:, cols], eff.layers["logFC"][grp["file_row"].to_numpy()].astype(np.float32)
            )
            other = np.setdiff1d(np.arange(len(genes)), cols)
            assert np.isnan(block[:, other]).all()  # not measured by this dataset


def test_catalog_tables(built):
    store = built["store"]
    t = {name: pd.read_parquet(store / "catalog" / f"{name}.parquet") for name in CATALOG_TABLES}
    ds = t["datasets"].set_index("dataset")
    assert ds.loc["sim_l1000", "de_method"] == "limma-trend"
    assert ds.loc["sim_counts", "de_method"] == "limma-voom"
    assert ds.loc["sim_l1000", "n_contrasts_separate"] > ds.loc["sim_l1000", "n_contrasts_group"]
    assert len(t["conditions"]) == (t["contrasts"]["mode"] == "group").sum()
    assert t["conditions"]["condition_id"].is_unique
    assert t["contrasts"].groupby("mode")["contrast_id"].apply(lambda s: s.is_unique).all()
    assert set(t["samples"]["dataset"]) == {"sim_l1000", "sim_counts"}
    assert t["samples"]["sample_id"].is_unique
    assert set(t["contexts"]["cell_context"]) == {"A375", "MCF7", "PC3", "CVCL_0023", "CVCL_0031"}
    assert t["compounds"]["n_conditions"].sum() == len(t["conditions"])
    ledger = t["ledger"]
    assert {"dataset", "mode", "context", "id", "stage", "status", "reason"} <= set(ledger)
    assert (ledger["reason"] == "too_few_cells").sum() > 0  # min_cells = 30 on the counts
    assert (ledger["reason"] == "positive_control").sum() > 0


def test_manifest_records_inputs_checksums_and_files(built):
    store = built["store"]
    manifest = read_manifest(store)
    assert manifest["format"] == "perturbridge-compendium"
    names = [d["name"] for d in manifest["datasets"]]
    assert names == ["sim_counts", "sim_l1000"]
    l1000 = manifest["datasets"][1]
    assert l1000["source"] == "l1000"
    assert l1000["inputs"][0]["sha256"] == file_sha256(l1000["inputs"][0]["path"])
    assert set(l1000["tasks"]["de"]) == {
        f"{m}/{c}" for m in ("group", "separate") for c in ("A375", "MCF7", "PC3")
    }
    for rel, rec in manifest["files"].items():
        assert file_sha256(store / rel) == rec["sha256"], rel
    assert manifest["versions"]["perturbridge"]
    assert manifest["zarr"]["paths"] == ["zarr/group.zarr", "zarr/separate.zarr"]
    assert store_is_current(store, manifest["build_key"])
    assert not store_is_current(store, "other")
    timings = json.loads((store / "timings.json").read_text())
    assert "wall_s" in timings and timings["executor"]["executor"] == "inline"
    assert len(store_digest(store)) == 64


def test_read_manifest_errors(tmp_path):
    with pytest.raises(StoreError, match="not a perturbridge compendium store"):
        read_manifest(tmp_path)
    (tmp_path / ".perturbridge-store").write_text("{}")
    with pytest.raises(StoreError, match=r"unfinished perturbridge store.*run the build again"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "other"}')
    with pytest.raises(StoreError, match="format is 'other'"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "perturbridge-compendium", '
                                            '"format_version": 99}')  # fmt: skip
    with pytest.raises(StoreError, match="newer than this perturbridge"):
        read_manifest(tmp_path)


def test_catalog_keeps_each_effects_files_fits_and_quality_weights(tmp_path):
    from perturbridge.compendium.store._catalog import EffectsFile, _fit_tables
    from perturbridge.compendium.store._layout import EffectsPart, StoreLayout

    def effects_file(name: str, weights: bool) -> EffectsFile:
        eff = ad.AnnData(np.zeros((2, 3), dtype=np.float32))
        tail = np.array([0.05, 0.1])
        eff.uns["ebayes"] = {"method": "limma", "trend": True, "robust": True,
                             "proportion": 0.01, "winsor_tail_p": tail}  # fmt: skip
        eff.uns["ebayes_fits"] = pd.DataFrame(
            {"df_prior": [3.5, 4.0], "s2_prior_mean": [0.2, 0.3]},
            index=pd.Index(["0", "1"], name="fit"),
        )
        if weights:
            eff.uns["quality_weights"] = pd.DataFrame(
                {"sample_id": ["a", "b"], "weight": [1.2, 0.1], "flagged": [False, True]},
                index=pd.Index(["0", "1"]),
            )
        eff.write_h5ad(tmp_path / f"{name}.h5ad")
        part = EffectsPart(
            mode="group", context=name, file_stem=name, path=tmp_path / f"{name}.h5ad",
            sha256="", n_contrasts=2,
        )  # fmt: skip
        return EffectsFile("ds", part, f"{name}.h5ad", eff.obs, eff.var)

    tables = _fit_tables([effects_file("x", True), effects_file("y", False)], StoreLayout(tmp_path))
    fits, qc = tables["fits"], tables["quality_weights"]
    assert fits["effects_file"].tolist() == ["x.h5ad", "x.h5ad", "y.h5ad", "y.h5ad"]
    assert fits["df_prior"].tolist() == [3.5, 4.0, 3.5, 4.0]
    assert fits["fit"].tolist() == ["0", "1", "0", "1"]
    assert set(fits["winsor_tail_p"]) == {"0.05,0.1"} and fits["trend"].all()
    assert qc["effects_file"].tolist() == ["x.h5ad", "x.h5ad"]  # y used no weights
    assert qc["weight"].tolist() == [1.2, 0.1] and qc["flagged"].tolist() == [False, True]

"""Exports: LPM-style training shards and AnnData for evaluation tools."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from perturbridge.compendium import Compendium, export_anndata, export_shards
from perturbridge.compendium.export import SHARD_COLUMNS


def test_training_shards(tmp_path, built):
    out = tmp_path / "shards"
    shards = export_shards(built["store"], out, rows_per_shard=1000)
    with Compendium.open(built["store"]) as comp:
        x = comp.effects().X
    n_values = int((~np.isnan(x)).sum())
    sizes = [pq.read_metadata(p).num_rows for p in shards]
    assert sum(sizes) == n_values
    assert all(s == 1000 for s in sizes[:-1]) and 0 < sizes[-1] <= 1000
    assert [p.name for p in shards][:2] == ["part-00000.parquet", "part-00001.parquet"]
    first = pd.read_parquet(shards[0])
    assert tuple(first.columns) == SHARD_COLUMNS
    assert first["value"].dtype == np.float32
    assert not first["value"].isna().any()
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["rows"] == n_values and manifest["shards"] == [p.name for p in shards]
    # the values are the consolidated logFC, in store order (contrast, then gene)
    allrows = pd.concat([pd.read_parquet(p) for p in shards], ignore_index=True)
    np.testing.assert_array_equal(allrows["value"].to_numpy(), x[~np.isnan(x)])
    with Compendium.open(built["store"]) as comp:
        c = comp.contrasts()
    dose = np.repeat(c["pert_dose_uM"].to_numpy(), (~np.isnan(x)).sum(axis=1))
    np.testing.assert_allclose(allrows["log10_dose_uM"], np.log10(dose), rtol=1e-6)
    # the same store gives the same shards
    again = export_shards(built["store"], tmp_path / "again", rows_per_shard=1000)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in shards]
    with pytest.raises(FileExistsError, match="is not empty"):
        export_shards(built["store"], out)


def test_shards_of_one_dataset_and_bad_arguments(tmp_path, built):
    shards = export_shards(built["store"], tmp_path / "c", datasets=["sim_counts"], layer="t")
    assert len(shards) == 1
    df = pd.read_parquet(shards[0])
    assert set(df["dataset"]) == {"sim_counts"}
    assert set(df["context"]) == {"CVCL_0023", "CVCL_0031"}
    with pytest.raises(KeyError, match=r"datasets \['nope'\] have no group-mode"):
        export_shards(built["store"], tmp_path / "d", datasets=["nope"])
    with pytest.raises(ValueError, match="rows_per_shard must be >= 1"):
        export_shards(built["store"], tmp_path / "e", rows_per_shard=0)


def test_anndata_for_evaluation_tools(tmp_path, built):
    with Compendium.open(built["store"]) as comp:
        cond = comp.conditions(dataset="sim_l1000", time=24)
        path = export_anndata(comp, tmp_path / "eval.h5ad", conditions=cond, measured_in_all=True)
    adata = ad.read_h5ad(path)
    assert adata.n_obs == len(cond)
    assert adata.n_vars == 40  # the L1000 genes: measured in every selected condition
    assert not np.isnan(adata.X).any()
    assert {"perturbation", "condition", "cell_type", "dose_uM", "time_h", "dataset"} <= set(
        adata.obs.columns
    )
    assert not adata.obs["control"].any()
    assert set(adata.obs["time_h"]) == {24.0}

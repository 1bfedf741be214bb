"""Compendium.open: SQL over the catalog, condition filters, effect slices."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from perturbridge.compendium import Compendium, StoreError

from ._fixtures import cache_effects


@pytest.fixture
def comp(built):
    with Compendium.open(built["store"]) as c:
        yield c


def test_open_rejects_what_is_not_a_store(tmp_path):
    with pytest.raises(StoreError, match="not a perturbridge compendium store"):
        Compendium.open(tmp_path)


def test_context_manager_closes_the_connection(built):
    with Compendium.open(built["store"]) as c:
        assert c.sql("SELECT 1 AS x")["x"].tolist() == [1]
    assert c._con is None
    assert "Compendium(" in repr(c)


def test_sql_over_every_catalog_table(comp):
    for table in comp.tables:
        assert isinstance(comp.sql(f"SELECT * FROM {table} LIMIT 1"), pd.DataFrame)
    n = comp.sql("SELECT dataset, count(*) AS n FROM conditions GROUP BY 1 ORDER BY 1")
    assert n["dataset"].tolist() == ["sim_counts", "sim_l1000"]
    got = comp.sql("SELECT count(*) AS n FROM conditions WHERE pert_time_h = ?", [24])
    assert got["n"].iloc[0] > 0
    with pytest.raises(KeyError, match="no catalog table 'x'"):
        comp.table("x")


def test_condition_filters(comp):
    every = comp.conditions()
    assert len(every) == comp.manifest["counts"]["conditions"]
    l1000 = comp.conditions(dataset="sim_l1000")
    assert set(l1000["dataset"]) == {"sim_l1000"}
    name = l1000["perturbagen"].iloc[0]
    by_name = comp.conditions(compound=name.upper())  # names are case-insensitive
    assert set(by_name["perturbagen"]) == {name} and len(by_name) > 1
    upstream = l1000["compound_id_source"].iloc[0]
    assert len(comp.conditions(compound=upstream)) == len(by_name)
    assert len(comp.conditions(compound=l1000["compound_id"].iloc[0])) == len(by_name)
    ctx = comp.conditions(context=["A375", "MCF7"], time=24)
    assert set(ctx["cell_context"]) == {"A375", "MCF7"} and set(ctx["pert_time_h"]) == {24.0}
    dose = float(l1000["pert_dose_uM"].iloc[0])
    exact = comp.conditions(dataset="sim_l1000", dose=dose)
    assert np.allclose(exact["pert_dose_uM"], dose)
    in_range = comp.conditions(dose=(0.5, 5.0))
    assert in_range["pert_dose_uM"].between(0.5, 5.0).all() and len(in_range)
    several = comp.conditions(time=[6, 24], dataset="sim_l1000")
    assert len(several) == len(l1000)
    assert comp.conditions(compound="no such compound").empty
    with pytest.raises(ValueError, match=r"a \(low, high\) tuple"):
        comp.conditions(dose=(1.0, 2.0, 3.0))


def test_effects_match_the_effects_files(comp, built):
    cond = comp.conditions(dataset="sim_l1000", context="MCF7").head(7)
    eff = comp.effects(cond)
    assert eff.shape == (7, len(comp.genes()))
    assert eff.X.dtype == np.float32
    assert eff.obs_names.tolist() == cond["condition_id"].tolist()
    # the complete file of the task cache the store's file came from
    source = cache_effects(built["store"], "effects/sim_l1000/group/MCF7_de.h5ad")
    rows = source.obs_names.get_indexer([c.split(":", 1)[1] for c in cond["condition_id"]])
    expected = source.layers["logFC"][rows].astype(np.float32)
    np.testing.assert_array_equal(eff[:, source.var_names].X, expected)
    assert np.isnan(eff[:, ~eff.var_names.isin(source.var_names)].X).all()


def test_effects_gene_selection_and_layers(comp, built):
    cond = comp.conditions(dataset="sim_counts").head(3)
    genes = comp.genes()
    counts_genes = genes[genes["datasets"].map(lambda d: "sim_counts" in list(d))]
    ids = counts_genes["gene_id"].tolist()[:4]
    eff = comp.effects(cond, genes=ids, layer="t")
    assert eff.var_names.tolist() == ids
    full = comp.effects(cond, layer="t")
    np.testing.assert_array_equal(eff.X, full[:, ids].X)
    # a symbol selects every gene id that carries it (here an Entrez and an Ensembl id)
    symbol = counts_genes["symbol"].iloc[5]
    both = comp.effects(cond, genes=[symbol])
    assert set(both.var["symbol"]) == {symbol}
    assert both.n_vars == int((genes["symbol"] == symbol).sum()) == 2
    # a layer that is not consolidated is read from the Effects files
    assert "B" not in comp.layers
    b = comp.effects(cond, genes=ids, layer="B")
    source = ad.read_h5ad(built["store"] / _effects_file(comp, cond))
    rows = source.obs_names.get_indexer([c.split(":", 1)[1] for c in cond["condition_id"]])
    np.testing.assert_array_equal(b.X, source[rows, ids].layers["B"].astype(np.float32))
    with pytest.raises(KeyError, match="not in the compendium"):
        comp.effects(cond, genes=["NOT_A_GENE"])
    with pytest.raises(KeyError, match="unknown layer 'lfc'"):
        comp.effects(cond, layer="lfc")


def _effects_file(comp, cond):
    files = comp.contrasts(cond)["effects_file"].unique()
    assert len(files) == 1
    return files[0]


def test_separate_mode_returns_each_replicate_contrast(comp):
    cond = comp.conditions(dataset="sim_l1000").head(4)
    sep = comp.effects(cond, mode="separate")
    assert sep.n_obs == int(cond["n_separate"].sum())
    assert set(sep.obs["condition_id"]) == set(cond["condition_id"])
    # ordered by the conditions asked for
    order = sep.obs["condition_id"].map({c: i for i, c in enumerate(cond["condition_id"])})
    assert order.is_monotonic_increasing
    with pytest.raises(KeyError, match="no separate-mode contrast"):
        comp.effects(comp.conditions(dataset="sim_counts").head(1), mode="separate")


def test_effects_by_ids_and_everything(comp):
    ids = comp.conditions(dataset="sim_l1000")["condition_id"].tolist()[:3]
    assert comp.effects(ids).obs_names.tolist() == ids
    assert comp.effects(ids[0]).n_obs == 1
    everything = comp.effects()
    assert everything.n_obs == comp.manifest["counts"]["contrasts"]["group"]
    with pytest.raises(KeyError, match="first: \\['nope'\\]"):
        comp.effects(["nope"])
    with pytest.raises(KeyError, match="'condition_id' or 'contrast_id' column"):
        comp.effects(pd.DataFrame({"x": [1]}))
    with pytest.raises(ValueError, match="mode must be 'group' or 'separate'"):
        comp.contrasts(mode="pooled")


def test_summary(comp):
    s = comp.summary()
    assert s["counts"]["datasets"] == 2
    assert s["counts"]["samples"] == comp.sql("SELECT count(*) n FROM samples")["n"].iloc[0]
    assert s["assays"] == ["L1000", "scRNA-seq pseudobulk"]
    assert s["modes"] == ["group", "separate"]
    assert set(s["contrasts"]) == {"group", "separate"}
    assert {"stage", "status", "reason", "n"} <= set(s["ledger"].columns)


def test_fits_table_holds_the_ebayes_priors_of_every_effects_file(comp, built):
    fits = comp.table("fits")
    contrasts = comp.table("contrasts")
    assert set(fits["effects_file"]) == set(contrasts["effects_file"])
    for rel, rows in fits.groupby("effects_file"):
        uns = ad.read_h5ad(Path(built["store"]) / rel, backed="r").uns
        want = uns["ebayes_fits"]
        assert len(rows) == len(want)
        assert np.allclose(rows["df_prior"].to_numpy(float), want["df_prior"].to_numpy(float))
        assert rows["trend"].astype(bool).tolist() == [bool(uns["ebayes"]["trend"])] * len(rows)
    assert (fits["df_prior"].to_numpy(float) > 0).all()
    assert comp.table("quality_weights").empty  # no plan of this store asks for weights

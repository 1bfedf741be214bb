"""The store's Effects files (store format 3) and their one reader: each value stored once,
layers derived back within the documented bounds of the engine's float64 statistics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
from anndata.io import read_elem

from conftest import assert_same_element
from perturbridge.compendium import Compendium
from perturbridge.compendium._footprint import CI_ULPS, STDEV_SCALED, storage_effects
from perturbridge.compendium.store import (
    DatasetPart,
    EffectsPart,
    read_dataset_parts,
    read_effects_file,
    read_manifest,
    verify_store,
    write_store,
)
from perturbridge.de import DEOptions, limma_trend
from perturbridge.de._effects import STDEV_SCALED as DE_STDEV_SCALED
from perturbridge.io import file_sha256, write_h5ad
from perturbridge.io._h5read import read_element
from perturbridge.schema import EFFECT_LAYERS

from ._fixtures import cache_effects

ULP = 2.0**-24
ZARR = ("logFC", "t", "P.Value", "adj.P.Value.within_one_contrast")
DERIVED = {"CI.L", "CI.R", "adj.P.Value.across_all_contrasts"}


def _decoded_p_bound(p: np.ndarray) -> np.ndarray:
    """The documented relative bound of a p-value kept as float32 -log10(p)."""
    with np.errstate(divide="ignore"):
        x = np.maximum(-np.log10(p), 0.0)
    return (2 * np.log(10.0) * x + 6) * ULP


def _assert_within(got: np.ndarray, want: np.ndarray, bound: np.ndarray, what: str) -> None:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(want)), what
    ok = ~np.isnan(want)
    err = np.abs(got[ok] - want[ok])
    assert (err <= bound[ok]).all(), f"{what}: worst {np.max(err / bound[ok]):.2f}× the bound"


def _check_against_engine(got: ad.AnnData, ref: ad.AnnData) -> None:
    """Every layer of ``got`` (read from a store) against the engine's float64 ``ref``."""
    lfc = np.asarray(ref.layers["logFC"], dtype=np.float64)
    margin = np.abs(np.asarray(ref.layers["CI.R"], dtype=np.float64) - lfc)
    for side in ("CI.L", "CI.R"):
        bound = CI_ULPS * ULP * np.maximum(np.abs(lfc), margin)
        _assert_within(got.layers[side], ref.layers[side], bound, side)
    p = np.asarray(ref.layers["P.Value"], dtype=np.float64)
    for name in ("P.Value", "adj.P.Value.within_one_contrast", "adj.P.Value.across_all_contrasts"):
        want = np.asarray(ref.layers[name], dtype=np.float64)
        _assert_within(got.layers[name], want, (_decoded_p_bound(p) + 2 * ULP) * want, name)
    for name in ("logFC", "t", "AveExpr", "B", "stdev.unscaled", STDEV_SCALED):
        if name in ref.layers:
            want = np.asarray(ref.layers[name], dtype=np.float64)
            bound = (CI_ULPS if name == STDEV_SCALED else 1) * ULP * np.abs(want)
            _assert_within(got.layers[name], want, bound, name)


@pytest.mark.parametrize("mode", ["group", "separate"])
def test_a_built_store_gives_back_the_engine_effects_within_their_bounds(built, mode):
    store = built["store"]
    samples = ad.read_h5ad(store / "samples" / "sim_l1000.h5ad")
    engine = limma_trend(samples, mode=mode).effects  # float64, computed here
    for ctx in ("A375", "MCF7", "PC3"):
        rel = f"effects/sim_l1000/{mode}/{ctx}_de.h5ad"
        with h5py.File(store / rel, "r") as f:
            assert set(f["layers"]) == {"AveExpr", "B", "stdev.unscaled"}  # stored once
        got = read_effects_file(store, rel)
        assert list(got.layers) == list(EFFECT_LAYERS)
        _check_against_engine(got, engine[got.obs_names, got.var_names])
        # rows and layers on request: the same values
        part = read_effects_file(store, rel, rows=np.array([3, 1]), layers=["CI.L", "B"])
        assert list(part.layers) == ["CI.L", "B"]
        np.testing.assert_array_equal(part.layers["CI.L"], got.layers["CI.L"][[3, 1]])
        assert part.obs_names.tolist() == got.obs_names[[3, 1]].tolist()


def _layer_bytes(path: Path) -> int:
    with h5py.File(path, "r") as f:
        return sum(f["layers"][k].id.get_storage_size() for k in f["layers"])


def test_store_files_hold_a_third_of_the_layer_bytes(built):
    """3 of the 10 layers stay in the files (at this unit size, metadata dominate the
    file sizes: the layers' own bytes are compared)."""
    store = built["store"]
    manifest = read_manifest(store)
    files = {r: v for r, v in manifest["files"].items() if r.startswith("effects/")}
    by_sha = {file_sha256(p): p for p in (store / ".cache").rglob("*.h5ad")}
    complete = sum(_layer_bytes(by_sha[v["source_sha256"]]) for v in files.values())
    assert sum(_layer_bytes(store / r) for r in files) < 0.4 * complete


def _mini_store(tmp: Path, effects: ad.AnnData, *, zarr_layers=ZARR, root=None) -> Path:
    """A store of one dataset whose single Effects file is ``effects`` (as the task cache
    writes it)."""
    src = tmp / "cache_de.h5ad"
    write_h5ad(storage_effects(effects), src, compress=True)
    part = DatasetPart(
        name="ds",
        source="test",
        assay="L1000",
        value_kind="log_expression",
        samples=None,
        samples_sha256=None,
        ledger=None,
        effects=(EffectsPart("group", "A375", "A375", src, file_sha256(src), effects.n_obs),),
    )
    root = root or tmp / "store"
    write_store(root, [part], zarr_layers=zarr_layers, rows_per_shard=8, build_key="k")
    return root


@pytest.fixture(scope="module")
def per_plate(built) -> ad.AnnData:
    """Float64 Effects of four fits in one file (one per plate), with stdev.scaled."""
    samples = ad.read_h5ad(built["store"] / "samples" / "sim_l1000.h5ad")
    samples = samples[(samples.obs["cell_context"] == "A375").to_numpy()].copy()
    options = DEOptions(fit_per_control_group=True, stdev_scaled=True)
    eff = limma_trend(samples, mode="group", control_keys=["plate"], options=options).effects
    assert len(eff.uns["ebayes_fits"]) == 4 and "s2_post" in eff.varm
    return eff


def test_several_fits_in_one_file_and_stdev_scaled(tmp_path, per_plate):
    root = _mini_store(tmp_path, per_plate)
    rel = "effects/ds/group/A375_de.h5ad"
    stored = ad.read_h5ad(root / rel)
    assert set(stored.layers) == {"AveExpr", "B", "stdev.unscaled"}
    assert set(stored.uns["store_layers"]["derived"]) == DERIVED | {STDEV_SCALED}
    got = read_effects_file(root, rel)
    assert list(got.layers) == [*EFFECT_LAYERS, STDEV_SCALED]
    _check_against_engine(got, per_plate)
    # adj across contrasts is BH within each fit (not over the file): check by hand
    fit = per_plate.uns["ebayes_fits"].iloc[1]
    a, b = int(fit["contrast_start"]), int(fit["contrast_stop"])
    p = np.asarray(per_plate.layers["P.Value"][a:b], dtype=np.float64).ravel()
    order = np.argsort(p)
    adj = np.minimum.accumulate((p[order] * len(p) / np.arange(1, len(p) + 1))[::-1])[::-1]
    want = np.empty_like(p)
    want[order] = np.minimum(adj, 1)
    _assert_within(
        got.layers["adj.P.Value.across_all_contrasts"][a:b].ravel(),
        want,
        (_decoded_p_bound(p) + 2 * ULP) * want,
        "BH by hand",
    )
    with Compendium.open(root) as comp:
        sl = comp.effects(layer="stdev.scaled")
        np.testing.assert_array_equal(sl.X, got.layers[STDEV_SCALED])
        ci = comp.effects(comp.conditions().head(5), layer="CI.L")
        assert ci.X.dtype == np.float32 and np.isfinite(ci.X).all()
    assert STDEV_SCALED == DE_STDEV_SCALED


def test_stdev_scaled_of_a_store_without_it_is_refused(built):
    with Compendium.open(built["store"]) as comp:
        with pytest.raises(KeyError, match=r"no layer 'stdev.scaled'.*stdev_scaled = true"):
            comp.effects(comp.conditions().head(2), layer="stdev.scaled")
        with pytest.raises(KeyError, match="unknown layer 'stdev'"):
            comp.effects(layer="stdev")


def test_a_layer_derivation_does_not_reproduce_is_kept(tmp_path, per_plate):
    """A file whose CI.L is not what its metadata give (another confint) keeps it."""
    eff = per_plate.copy()
    eff.uns["perturbridge"] = {
        **eff.uns["perturbridge"],
        "params": {**eff.uns["perturbridge"]["params"], "confint": 0.9},
    }
    root = _mini_store(tmp_path, eff)
    stored = ad.read_h5ad(root / "effects/ds/group/A375_de.h5ad")
    assert {"CI.L", "CI.R"} <= set(stored.layers)
    assert set(stored.uns["store_layers"]["derived"]) == {
        "adj.P.Value.across_all_contrasts",
        STDEV_SCALED,
    }
    got = read_effects_file(root, "effects/ds/group/A375_de.h5ad")
    np.testing.assert_array_equal(
        got.layers["CI.L"], np.asarray(per_plate.layers["CI.L"], dtype=np.float32)
    )


def test_a_file_of_an_earlier_format_is_read_from_its_own_layers(built, tmp_path):
    """Store format 2: every layer in the file. A layer the file holds is read from it."""
    store = tmp_path / "store"
    shutil.copytree(built["store"], store, symlinks=True)
    rel = "effects/sim_l1000/group/MCF7_de.h5ad"
    full = cache_effects(store, rel)
    marked = full.copy()
    marked.layers["CI.L"] = np.full(marked.shape, 7.0, dtype=np.float32)  # a planted value
    (store / rel).unlink()
    write_h5ad(marked, store / rel, compress=True)
    manifest = read_manifest(store)
    manifest["files"][rel] = {
        "sha256": file_sha256(store / rel),
        "bytes": (store / rel).stat().st_size,
    }
    (store / "manifest.json").write_text(json.dumps(manifest))
    got = read_effects_file(store, rel)
    assert (got.layers["CI.L"] == 7.0).all()
    np.testing.assert_array_equal(got.layers["logFC"], full.layers["logFC"])
    assert not verify_store(store)


def test_kept_datasets_keep_their_values_when_the_store_is_rewritten(built, tmp_path):
    """A store update that keeps a dataset (import, signatures: the store's own files)
    reads its rows from the current arrays: every layer is the same afterwards, and
    the same as a store written from the complete files."""
    store = tmp_path / "store"
    shutil.copytree(built["store"], store, symlinks=True)
    before = _all_effects(store)
    manifest = read_manifest(store)
    work = tmp_path / "work"
    work.mkdir()
    parts = read_dataset_parts(store, ["sim_counts", "sim_l1000"], work=work)
    write_store(store, parts, zarr_layers=ZARR, rows_per_shard=16, build_key="rewritten")
    after = _all_effects(store)
    assert sorted(before) == sorted(after)
    for rel, eff in before.items():
        for name in eff.layers:
            np.testing.assert_array_equal(after[rel].layers[name], eff.layers[name], err_msg=rel)
    new = read_manifest(store)
    assert {r: v["sha256"] for r, v in new["files"].items() if r.startswith("effects/")} == {
        r: v["sha256"] for r, v in manifest["files"].items() if r.startswith("effects/")
    }  # the store files themselves are kept (linked), not rewritten
    assert not verify_store(store)
    # a rewrite with fewer arrays: their layers go back into the files
    parts = read_dataset_parts(store, ["sim_counts", "sim_l1000"], work=work)
    write_store(store, parts, zarr_layers=("logFC",), rows_per_shard=16, build_key="fewer")
    with h5py.File(store / "effects/sim_l1000/group/A375_de.h5ad", "r") as f:
        assert {"t", "P.Value"} <= set(f["layers"]) and "logFC" not in f["layers"]
    fewer = _all_effects(store)
    for rel, eff in before.items():
        for name in eff.layers:
            if name == "adj.P.Value.across_all_contrasts":
                # now derived from the file's float32 P.Value, not the arrays' -log10(p)
                np.testing.assert_allclose(
                    fewer[rel].layers[name], eff.layers[name], rtol=4 * ULP, err_msg=rel
                )
            else:
                np.testing.assert_array_equal(
                    fewer[rel].layers[name], eff.layers[name], err_msg=rel
                )
    assert not verify_store(store)


def _all_effects(store: Path) -> dict[str, ad.AnnData]:
    rels = pd.read_parquet(store / "catalog" / "contrasts.parquet")["effects_file"].unique()
    return {str(r): read_effects_file(store, str(r)) for r in rels}


def test_genes_by_a_name_that_is_both_an_id_and_a_symbol(built, monkeypatch):
    with Compendium.open(built["store"]) as comp:
        table = comp.genes()
        a, b = table["gene_id"].iloc[0], table["gene_id"].iloc[1]
        # b's symbol is a's gene id (a dataset that kept symbols as ids)
        table.loc[1, "symbol"] = a
        monkeypatch.setattr(comp, "genes", lambda: table.copy())
        picked = comp._gene_columns([a])["gene_id"].tolist()
        assert picked == [a, b]
        assert comp._gene_columns([a, b])["gene_id"].tolist() == [a, b]  # each once
        assert comp._gene_columns([b, a])["gene_id"].tolist() == [b, a]


def test_the_store_reads_its_files_as_anndata_reads_them(built):
    """The store's own reader of ``obs``, ``var`` and ``uns`` (``io.read_element``) gives
    AnnData's answer on every Samples and Effects file of a built store."""
    files = sorted(built["store"].rglob("*.h5ad"))
    assert len(files) > 2
    for path in files:
        with h5py.File(path, "r") as f:
            for key in ("obs", "var", "uns"):
                assert_same_element(read_element(f[key]), read_elem(f[key]), f"{path}:{key}")

"""How effect values are stored: float32 layers, p-values, compression, the R parity case."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest

from perturbridge.compendium._footprint import (
    P_FLOAT32_MIN,
    decode_p,
    encode_p,
    is_p_layer,
    storage_effects,
)
from perturbridge.io import file_sha256, write_h5ad

from ._fixtures import cache_effects

EPS32 = 2.0**-24  # float32 rounding: half a unit in the last place, relative


def _effects(p: np.ndarray) -> ad.AnnData:
    rng = np.random.default_rng(0)
    n, m = p.shape
    lfc = rng.normal(size=(n, m))
    eff = ad.AnnData(
        X=lfc.copy(),
        obs=pd.DataFrame({"dose": np.arange(n, dtype=float)}, index=[f"c{i}" for i in range(n)]),
        var=pd.DataFrame(index=[f"g{j}" for j in range(m)]),
        uns={"ebayes": {"df_prior": 4.5}},
    )
    eff.layers["logFC"] = lfc
    eff.layers["t"] = rng.normal(size=(n, m)) * 10
    eff.layers["P.Value"] = p
    eff.layers["adj.P.Value.within_one_contrast"] = np.minimum(p * 3, 1.0)
    return eff


def test_p_layers_are_named_by_limma_and_release_names() -> None:
    assert [is_p_layer(x) for x in ("P.Value", "adj.P.Val", "adj.P.Value.across_all_contrasts")]
    assert not any(is_p_layer(x) for x in ("logFC", "t", "B", "AveExpr", "stdev.unscaled"))


def test_storage_form_is_float32_without_x_and_keeps_tiny_p_values(tmp_path: Path) -> None:
    p = np.full((3, 4), 0.02)
    p[1, 2] = 1e-300  # below float32's range: this file keeps its p-values in float64
    eff = _effects(p)
    out = storage_effects(eff)
    assert out.X is None  # X was the logFC layer again
    assert eff.X is not None and eff.layers["t"].dtype == np.float64  # input unchanged
    assert out.layers["logFC"].dtype == np.float32 and out.layers["t"].dtype == np.float32
    assert out.layers["P.Value"].dtype == np.float64
    assert out.layers["adj.P.Value.within_one_contrast"].dtype == np.float64
    assert out.uns["ebayes"] == {"df_prior": 4.5}
    path = write_h5ad(out, tmp_path / "e.h5ad", compress=True)
    back = ad.read_h5ad(path)
    assert back.layers["P.Value"][1, 2] == 1e-300
    with h5py.File(path) as f:
        ds = f["layers"]["t"]
        assert ds.compression == "gzip" and ds.shuffle and ds.dtype == np.float32

    normal = storage_effects(_effects(np.full((3, 4), P_FLOAT32_MIN * 2)))
    assert normal.layers["P.Value"].dtype == np.float32  # nothing float32 cannot hold


def test_x_that_is_not_logfc_is_kept() -> None:
    eff = _effects(np.full((2, 3), 0.5))
    eff.X = eff.layers["t"].copy()
    out = storage_effects(eff)
    assert out.X is not None and out.X.dtype == np.float32
    np.testing.assert_array_equal(out.X, eff.layers["t"].astype(np.float32))


def test_compressed_writes_are_reproducible_and_smaller(tmp_path: Path) -> None:
    eff = storage_effects(_effects(np.full((200, 500), 0.5)))
    eff.layers["AveExpr"] = np.tile(np.linspace(2, 9, 500, dtype=np.float32), (200, 1))
    a = write_h5ad(eff, tmp_path / "a.h5ad", compress=True)
    b = write_h5ad(eff, tmp_path / "b.h5ad", compress=True)
    plain = write_h5ad(eff, tmp_path / "plain.h5ad")
    assert a.read_bytes() == b.read_bytes()
    assert a.stat().st_size < 0.8 * plain.stat().st_size


def test_neg_log10_keeps_tiny_p_values_to_float32_precision() -> None:
    p = np.array([1.0, 0.5, 1e-5, 1e-30, 1e-45, 1e-300, 5e-324, 0.0, np.nan])
    x = encode_p(p)
    assert x.dtype == np.float32
    with np.errstate(divide="ignore"):
        exact = -np.log10(p)  # float64, computed here independently
    finite = np.isfinite(exact)
    assert np.all(np.abs(x[finite] - exact[finite]) <= EPS32 * np.abs(exact[finite]))
    assert x[5] == np.float32(300.0) and np.isposinf(x[7]) and np.isnan(x[8])
    back = decode_p(x)
    ok = p >= P_FLOAT32_MIN
    rel = np.abs(back[ok].astype(np.float64) - p[ok]) / p[ok]
    # -log10(p) to 2^-24, then exp(-ln(10) x) in float32 (product and exp rounded)
    assert np.all(rel <= (2 * np.log(10) * exact[ok] + 6) * EPS32)
    rng = np.random.default_rng(1)  # and over the whole float32 range, densely
    p = 10.0 ** -rng.uniform(0, 37.9, 200_000)
    rel = np.abs(decode_p(encode_p(p)).astype(np.float64) - p) / p
    assert np.all(rel <= (2 * np.log(10) * -np.log10(p) + 6) * EPS32)


@pytest.mark.slow
@pytest.mark.r_oracle
def test_stored_effects_of_an_r_parity_case_round_like_float32(tmp_path: Path, r_oracle) -> None:
    """limma-voom on simulated counts, ours and R's: the stored float32 values are the
    float64 statistics rounded (2^-24 relative), so they stay within the parity
    tolerance of R's float64 values."""
    from perturbridge.de import limma_voom
    from perturbridge.de.r_limma import limma_r
    from perturbridge.simulate import simulate_counts

    samples = simulate_counts(n_genes=300, n_plates=2, conditions_per_plate=4, seed=3).samples
    ours = limma_voom(samples).effects
    r = limma_r(samples, method="voom", workdir=tmp_path).effects
    stored = ad.read_h5ad(write_h5ad(storage_effects(ours), tmp_path / "e.h5ad", compress=True))
    assert sorted(stored.layers) == sorted(ours.layers)
    for name in ours.layers:
        exact = np.asarray(ours.layers[name], dtype=np.float64)
        got = np.asarray(stored.layers[name], dtype=np.float64)
        if not is_p_layer(name) or stored.layers[name].dtype == np.float32:
            assert stored.layers[name].dtype == np.float32, name
            assert np.all(np.abs(got - exact) <= EPS32 * np.abs(exact)), name
        ref = np.asarray(r.layers[name], dtype=np.float64)
        np.testing.assert_allclose(got, ref, rtol=2 * EPS32, atol=1e-6, err_msg=name)
        if is_p_layer(name):  # -log10 p as stored in the arrays, against R's
            with np.errstate(divide="ignore"):
                ref_l = -np.log10(ref)
            np.testing.assert_allclose(
                encode_p(exact), ref_l, rtol=2 * EPS32, atol=1e-6, err_msg=name
            )


def test_store_serves_p_values_from_neg_log10_arrays(built: dict[str, Path]) -> None:
    """The arrays hold -log10(p); ``Compendium.effects`` gives p, equal to the Effects
    file's p-values within the float32 bound of the encoding."""
    import json

    from perturbridge.compendium import Compendium

    store = built["store"]
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["format_version"] == 3
    source = cache_effects(store, "effects/sim_l1000/group/MCF7_de.h5ad")  # the complete file
    assert source.X is None and source.layers["logFC"].dtype == np.float32
    with Compendium.open(store) as comp:
        rows = comp.contrasts(mode="group")
        rows = rows[rows["effects_file"] == "effects/sim_l1000/group/MCF7_de.h5ad"]
        for layer in ("P.Value", "adj.P.Value.within_one_contrast"):
            got = comp.effects(rows, layer=layer)[:, source.var_names].X.astype(np.float64)
            exact = np.asarray(source.layers[layer], dtype=np.float64)[rows["file_row"]]
            x = -np.log10(exact)
            bound = (2 * np.log(10) * x + 6) * EPS32 * exact
            assert np.all(np.abs(got - exact) <= bound), layer


def test_a_format_1_store_of_plain_p_values_is_read_as_it_is(
    built: dict[str, Path], tmp_path: Path
) -> None:
    """Stores of format 1 hold plain p-values (no encoding attribute): read unchanged."""
    import json
    import shutil

    import zarr

    from perturbridge.compendium import Compendium
    from perturbridge.compendium._shards import (
        ShardWriter,
        create_row_sharded,
        read_rows,
        row_sharded_layout,
    )

    store = tmp_path / "store"
    shutil.copytree(built["store"], store, ignore=shutil.ignore_patterns(".cache", ".lock"))
    path = store / "zarr" / "group.zarr"
    layout = row_sharded_layout(zarr.open_group(str(path), mode="r")["P.Value"])
    assert layout is not None
    p = read_rows(layout, np.arange(layout.n_rows))  # decoded: what a format 1 array held
    shutil.rmtree(path / "P.Value")
    group = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    lay = create_row_sharded(group, "P.Value", n_rows=layout.n_rows, n_cols=layout.n_cols,
                             rows_per_shard=layout.rows_per_shard)  # fmt: skip
    with ShardWriter(lay) as w:
        for s, a in enumerate(range(0, lay.n_rows, lay.rows_per_shard)):
            w.write(s, p[a : a + lay.rows_per_shard])
    with pytest.warns(UserWarning, match="Consolidated metadata"):
        zarr.consolidate_metadata(str(path))
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["format_version"] = 1
    files = manifest["zarr"]["files"]
    for s, rec in w.records.items():
        files[f"zarr/group.zarr/P.Value/c/{s}/0"] = rec.record()
    for meta in path.rglob("zarr.json"):  # the array's and the group's (consolidated)
        rel = meta.relative_to(store).as_posix()
        files[rel] = {"bytes": meta.stat().st_size, "sha256": file_sha256(meta)}
    (store / "manifest.json").write_text(json.dumps(manifest))
    with Compendium.open(store) as comp:
        rows = comp.contrasts(mode="group")
        got = comp.effects(rows, layer="P.Value").X
    np.testing.assert_array_equal(got, p[rows["zarr_row"].to_numpy()])

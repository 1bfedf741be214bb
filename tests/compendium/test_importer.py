"""Importing DE files of the original public release layout."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from perturbridge.compendium import Compendium, PlanError, StoreError, import_release
from perturbridge.compendium.importer import find_release_files

RES_COLS = [
    "logFC",
    "stdev.unscaled",
    "stdev.scaled",
    "CI.L",
    "CI.R",
    "AveExpr",
    "t",
    "P.Value",
    "adj.P.Value.within_one_contrast",
    "adj.P.Value.across_all_contrasts",
    "B",
]


def _release_file(effects: Path, out: Path, *, mode: str) -> None:
    """An Effects file of ours rewritten the way the original R pipeline wrote it."""
    eff = ad.read_h5ad(effects)
    o = eff.obs
    obs = pd.DataFrame(
        {
            "id": o.get("sample_id", o.index).astype(str),
            "cell_type": o["cell_context"].astype(str),
            "perturbagen": o["compound_id_source"].astype(str),
            "perturbagen_name": o["perturbagen"].astype(str),
            "pert_dose_uM": o["pert_dose_uM"].astype(str),  # R wrote factors as strings
            "pert_time_h": o["pert_time_h"],
            "pubchem_cid": np.nan,
            "is_control": False,
        }
    )
    obs.index = pd.Index(o.index.astype(str) + " - " + o["control_label"].astype(str))
    if mode == "separate":
        obs["condition"] = o["condition"].astype(str).to_numpy()
    layers = {k: eff.layers[k] for k in RES_COLS if k in eff.layers}
    layers["stdev.scaled"] = eff.layers["stdev.unscaled"] * 2
    release = ad.AnnData(obs=obs, var=eff.var[["symbol"]].copy(), layers=layers)
    release.uns["pipeline"] = "limma-voom"
    out.parent.mkdir(parents=True, exist_ok=True)
    release.write_h5ad(out)


@pytest.fixture(scope="module")
def release(tmp_path_factory, built) -> Path:
    root = tmp_path_factory.mktemp("release")
    store = built["store"]
    for ds in ("sim_l1000", "sim_counts"):
        base = root / ds / "deg_data"
        for mode in ("group", "separate"):
            for f in (
                sorted((store / "effects" / ds / mode).glob("*_de.h5ad"))
                if (store / "effects" / ds / mode).is_dir()
                else []
            ):
                tail = Path(f"{mode}_rep/full/qc_false/filter_min_cells_0/results") / f.name
                _release_file(f, base / tail, mode=mode)
    # a test run of the original pipeline: skipped
    sub = root / "sim_l1000" / "deg_data" / "group_rep" / "subsampling" / "A375_de.h5ad"
    _release_file(store / "effects" / "sim_l1000" / "group" / "A375_de.h5ad", sub, mode="group")
    return root


def test_find_release_files(release):
    files = find_release_files(release)
    assert [(f.dataset, f.mode, f.context) for f in files] == [
        ("sim_counts", "group", "CVCL_0023"),
        ("sim_counts", "group", "CVCL_0031"),
        ("sim_l1000", "group", "A375"),
        ("sim_l1000", "group", "MCF7"),
        ("sim_l1000", "group", "PC3"),
        ("sim_l1000", "separate", "A375"),
        ("sim_l1000", "separate", "MCF7"),
        ("sim_l1000", "separate", "PC3"),
    ]
    assert len(find_release_files(release, datasets=["sim_counts"])) == 2


def test_import_release_gives_a_queryable_store(tmp_path, release, built):
    store = tmp_path / "imported"
    manifest = import_release(release, store, rows_per_shard=16)
    assert manifest["counts"]["datasets"] == 2
    with Compendium.open(store) as imp, Compendium.open(built["store"]) as ref:
        assert len(imp.conditions()) == len(ref.conditions())
        cond = ref.conditions(dataset="sim_l1000").head(5)
        a = imp.effects(cond["condition_id"].tolist())
        b = ref.effects(cond)
        np.testing.assert_array_equal(a[:, b.var_names].X, b.X)
        got = imp.conditions(dataset="sim_l1000").set_index("condition_id")
        want = cond.set_index("condition_id")
        assert (got.loc[want.index, "pert_dose_uM"] == want["pert_dose_uM"]).all()
        assert got["control_label"].str.startswith("vehicle|").all()
        sep = imp.effects(cond["condition_id"].tolist()[:2], mode="separate")
        assert sep.n_obs == int(cond["n_separate"].head(2).sum())
        assert imp.sql("SELECT count(*) n FROM samples")["n"].iloc[0] == 0
    eff = ad.read_h5ad(store / "effects" / "sim_l1000" / "group" / "A375_de.h5ad")
    assert "stdev.scaled" in eff.layers
    assert eff.obs["n_treated"].isna().all()
    assert eff.uns["perturbridge"]["original_uns"] == {"pipeline": "limma-voom"}
    # importing again changes nothing
    before = (store / "manifest.json").stat().st_mtime_ns
    import_release(release, store, rows_per_shard=16)
    assert (store / "manifest.json").stat().st_mtime_ns == before


def test_import_errors(tmp_path, release):
    with pytest.raises(FileNotFoundError, match="release folder not found"):
        import_release(tmp_path / "none", tmp_path / "s")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="no release DE files"):
        import_release(tmp_path / "empty", tmp_path / "s")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("x")
    with pytest.raises(PlanError, match="holds something else"):
        import_release(release, tmp_path / "busy")
    twice = tmp_path / "twice"
    for sub in ("a", "b"):
        f = twice / "ds" / "group_rep" / sub / "X_de.h5ad"
        f.parent.mkdir(parents=True)
        f.write_bytes(b"")
    with pytest.raises(ValueError, match="two release files for dataset 'ds'"):
        find_release_files(twice)
    bad = tmp_path / "bad" / "ds" / "group_rep" / "X_de.h5ad"
    bad.parent.mkdir(parents=True)
    ad.AnnData(
        obs=pd.DataFrame({"cell_type": ["X"], "perturbagen": ["p"]}, index=["a - b"]),
        var=pd.DataFrame(index=["g1"]),
        layers={"logFC": np.zeros((1, 1))},
    ).write_h5ad(bad)
    with pytest.raises(ValueError, match="obs lacks 'pert_dose_uM'"):
        import_release(tmp_path / "bad", tmp_path / "s3")

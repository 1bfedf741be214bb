"""Importing DE files of the original public release layout."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from perturbridge.compendium import Compendium, PlanError, StoreError, import_release
from perturbridge.compendium.release import (
    control_mask,
    convert_release_effects,
    find_processed_files,
    find_release_files,
    normalise_cids,
)
from perturbridge.compendium.store import read_effects_file, read_manifest
from perturbridge.io import file_sha256

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
    """An Effects file of ours (a store file, STORE/effects/…, read complete through the
    store's reader) rewritten the way the original R pipeline wrote it."""
    store = effects.parents[3]
    eff = read_effects_file(store, effects.relative_to(store).as_posix())
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


# ------------------------------------------------------------ the public release layout

WITHIN = "adj.P.Value.within_one_contrast"
ACROSS = "adj.P.Value.across_all_contrasts"
CT = "CVCL_0023"
GENES = [f"ENSG{i:011d}" for i in range(12)]
CIDS = [2244, 3672, 5090, 60823]
#: name -> (how CIDs are stored, doses, adjusted p-value layers, group file name)
TREE = {
    "dsS": ("str", (1.0, 10.0), (WITHIN, ACROSS), f"{CT}_de.h5ad"),
    "dsF": ("float", (1.0,), (WITHIN, ACROSS), f"{CT}.h5ad"),
    "dsI": ("int", (1.2, 10.0), (ACROSS,), f"{CT}_de.h5ad"),
}


def _cids(values: list[int | None], style: str):
    if style == "str":
        return pd.array(["" if c is None else f" {c} " for c in values], dtype=object)
    if style == "float":
        return np.array([np.nan if c is None else float(c) for c in values])
    return pd.array(values, dtype="Int64")


def _write_de(path: Path, obs: pd.DataFrame, lfc: np.ndarray, adj: tuple[str, ...], seed: int):
    """A release DE file: no X, the limma layers, var by Ensembl id in a shuffled order."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(GENES))
    p = np.exp(-np.abs(lfc) * 2)  # the same for the same values (padding repeats rows)
    layers = {"logFC": lfc, "t": lfc * 3, "P.Value": p, "stdev.unscaled": np.ones_like(lfc)}
    if WITHIN in adj:
        layers[WITHIN] = np.minimum(p * 2, 1)
    if ACROSS in adj:
        layers[ACROSS] = np.minimum(p * 3, 1)
    var = pd.DataFrame(
        {"symbol": [f"SYM{i}" for i in order]}, index=pd.Index([GENES[i] for i in order])
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    layers = {k: np.asarray(v, dtype=np.float32)[:, order] for k, v in layers.items()}
    ad.AnnData(obs=obs, var=var, layers=layers).write_h5ad(path)


def write_tree(root: Path, *, seed: int = 0) -> Path:
    """Three datasets in the public release layout with the awkward cases.

    ``dsS`` stores CIDs as strings (one missing), has two control rows (``"True"``,
    ``"DMSO"``) and an identical duplicate of its first row; ``dsF`` stores floats, its
    group file is ``<cell_type>.h5ad`` and its separate file has a control (``"1"``);
    ``dsI`` stores ints, has only the across-contrasts adjusted p-value and a bool
    ``is_control`` with one control. Conditions have 1 to 4 replicates.
    """
    rng = np.random.default_rng(seed)
    effect = {cid: rng.normal(0, 1.5, len(GENES)) for cid in CIDS}
    for d_i, (ds, (style, doses, adj, group_name)) in enumerate(TREE.items()):
        group, g_vals, sep, s_vals, samples = [], [], [], [], []
        conds = [(k, cid, dose) for k, cid in enumerate(CIDS) for dose in doses]
        if ds == "dsS":
            conds.append((9, None, 1.0))  # no CID
        for j, (k, cid, dose) in enumerate(conds):
            name = f"drug{k}"
            truth = effect.get(cid, np.zeros(len(GENES))) * dose / (dose + 1)
            reps = []
            for r in range(1 + (j + d_i) % 4):
                sid = f"{ds}_{k}_{dose:g}_r{r}"
                reps.append(truth + rng.normal(0, 0.3, len(GENES)))
                base = {"id": sid, "cell_type": CT, "pubchem_cid": cid, "pert_dose_uM": dose,
                        "pert_time_h": 24.0, "perturbagen_name": name}  # fmt: skip
                sep.append(dict(base, is_control="no", replicate=r, c=f"{sid} - DMSO"))
                s_vals.append(reps[-1])
                samples.append(dict(base, is_control="false", plate="P1", well=f"A{j}{r}"))
            group.append(
                {"id": f"{ds}_{k}_{dose:g}_r0", "cell_type": CT, "pubchem_cid": cid,
                 "pert_dose_uM": dose, "pert_time_h": 24.0, "perturbagen_name": name,
                 "is_control": "False", "c": f"{CT}|{cid}|{dose:g}uM|24h - DMSO_24"}
            )  # fmt: skip
            g_vals.append(np.mean(reps, axis=0))
        for w in range(3):
            samples.append(
                {"id": f"{ds}_DMSO_{w}", "cell_type": CT, "pubchem_cid": None,
                 "pert_dose_uM": 0.0, "pert_time_h": 24.0, "is_control": "dmso",
                 "perturbagen_name": "DMSO", "plate": "P1", "well": f"H{w}"}
            )  # fmt: skip
        ctrl = {"id": f"{ds}_DMSO_0", "cell_type": CT, "pubchem_cid": None, "pert_dose_uM": 0.0,
                "pert_time_h": 24.0, "perturbagen_name": "DMSO"}  # fmt: skip
        if ds == "dsS":
            group.insert(1, dict(ctrl, is_control="True", c="DMSO_a - DMSO"))
            g_vals.insert(1, np.zeros(len(GENES)))
            group.append(dict(group[0], c=group[0]["c"] + "-1"))  # batch padding
            g_vals.append(g_vals[0])
            group.append(dict(ctrl, is_control=" DMSO ", c="DMSO_b - DMSO"))
            g_vals.append(np.zeros(len(GENES)))
        if ds == "dsF":
            sep.insert(2, dict(ctrl, is_control="1", replicate=0, c="DMSO_r0 - DMSO"))
            s_vals.insert(2, np.zeros(len(GENES)))
        if ds == "dsI":
            group.append(dict(ctrl, is_control=True, c="DMSO - DMSO"))
            g_vals.append(np.zeros(len(GENES)))
        for folder, rows, vals, fname in (
            ("group_rep", group, g_vals, group_name),
            ("sep_rep", sep, s_vals, f"{CT}_de.h5ad"),
        ):
            obs = pd.DataFrame(rows)
            obs.index = pd.Index(obs.pop("c").astype(str).to_numpy())
            obs["pubchem_cid"] = _cids(list(obs["pubchem_cid"]), style)
            if ds == "dsI":
                obs["is_control"] = obs["is_control"].map(lambda v: v is True)
            _write_de(root / ds / folder / fname, obs, np.vstack(vals), adj, seed + d_i)
        proc = pd.DataFrame(samples)
        proc.index = pd.Index(proc["id"].astype(str).to_numpy())
        proc["pubchem_cid"] = _cids(list(proc["pubchem_cid"]), style)
        x = np.zeros((len(proc), len(GENES)), dtype=np.float32)
        var = pd.DataFrame(index=pd.Index(GENES))
        ad.AnnData(X=x, obs=proc, var=var).write_h5ad(root / ds / f"{ds}_processed.h5ad")
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("tree") / "release")


@pytest.fixture(scope="module")
def tree_store(tmp_path_factory, tree) -> Path:
    store = tmp_path_factory.mktemp("tree_store") / "store"
    import_release(tree, store, rows_per_shard=8)
    return store


def test_find_public_layout(tree, tmp_path):
    files = find_release_files(tree)
    got = [(f.dataset, f.mode, f.context, f.path.name) for f in files]
    assert got == [
        ("dsF", "group", CT, f"{CT}.h5ad"),  # the fallback name
        ("dsF", "separate", CT, f"{CT}_de.h5ad"),
        ("dsI", "group", CT, f"{CT}_de.h5ad"),
        ("dsI", "separate", CT, f"{CT}_de.h5ad"),
        ("dsS", "group", CT, f"{CT}_de.h5ad"),
        ("dsS", "separate", CT, f"{CT}_de.h5ad"),
    ]
    processed = find_processed_files(tree)
    assert {k: p.name for k, p in processed.items()} == {
        d: f"{d}_processed.h5ad" for d in ("dsF", "dsI", "dsS")
    }
    assert list(find_processed_files(tree, datasets=["dsI"])) == ["dsI"]
    # <cell_type>_de.h5ad wins over <cell_type>.h5ad; pseudobulk inputs are not DE files
    both = tmp_path / "both" / "ds" / "group_rep"
    both.mkdir(parents=True)
    for name in ("A.h5ad", "A_de.h5ad", "B.h5ad"):
        (both / name).write_bytes(b"")
    pb = tmp_path / "both" / "ds" / "pseudobulk_processed" / "group_rep" / "A.h5ad"
    pb.parent.mkdir(parents=True)
    pb.write_bytes(b"")
    got = [(f.context, f.path.name) for f in find_release_files(tmp_path / "both")]
    assert got == [("A", "A_de.h5ad"), ("B", "B.h5ad")]


def test_normalise_cids_and_control_mask():
    got = normalise_cids(pd.Series([" 2244 ", "2244.0", "", "NaN", "None", "<NA>", None, 3.5]))
    assert got.tolist() == ["2244", "2244", None, None, None, None, None, "3.5"]
    assert normalise_cids(np.array([1.0, np.nan, 1e12])).tolist() == ["1", None, "1000000000000"]
    assert normalise_cids(pd.array([7, None], dtype="Int64")).tolist() == ["7", None]
    with pytest.raises(ValueError, match=r"f\.h5ad: column 'pubchem_cid' has 3 .*\['CID12', 'x'\]"):
        normalise_cids(pd.Series(["1", "CID12", "x", "CID12"]), where="f.h5ad")
    spellings = ["1", "true", "T", "Yes", "y", " DMSO ", "Control", "0", "no", "False", None, ""]
    assert control_mask(pd.Series(spellings, dtype=object)).tolist() == [True] * 7 + [False] * 5
    assert control_mask(pd.Series([True, False])).tolist() == [True, False]
    assert control_mask(pd.Series([1.0, 0.0, np.nan])).tolist() == [True, False, False]
    assert control_mask(pd.Series(pd.array([True, None], dtype="boolean"))).tolist() == [
        True,
        False,
    ]


def test_convert_drops_controls_and_padding(tree):
    path = tree / "dsS" / "group_rep" / f"{CT}_de.h5ad"
    src = ad.read_h5ad(path)
    conv = convert_release_effects(path, dataset="dsS", mode="group", context=CT)
    eff, led = conv.effects, conv.ledger
    # 9 conditions + 2 controls + 1 identical repeat in the file; 9 kept, in file order
    assert src.n_obs == 12 and eff.n_obs == 9
    assert eff.obs["release_row"].tolist() == [0, *range(2, 10)]
    assert led["reason"].tolist() == ["control_row", "control_row", "duplicate_contrast"]
    assert led["id"].tolist() == ["DMSO_a - DMSO", "DMSO_b - DMSO", src.obs_names[10]]
    assert "repeats row 0" in led["detail"].iloc[2]
    np.testing.assert_array_equal(
        eff.layers["logFC"], src[eff.obs["release_row"].to_numpy()].layers["logFC"]
    )
    assert eff.obs["pubchem_cid_key"].astype(object).iloc[:2].tolist() == ["2244", "2244"]
    assert eff.obs["pubchem_cid"].dtype == "Int64"
    assert eff.obs["pubchem_cid"].isna().tolist() == [False] * 8 + [True]
    assert eff.obs["perturbagen"].iloc[-1] == "drug9"
    assert eff.uns["perturbridge"]["adj_p_layer"] == WITHIN
    assert eff.obs["condition"].iloc[0] == f"{CT}|2244|1uM|24h"
    # processed counts give n_treated
    conv = convert_release_effects(
        path, dataset="dsS", mode="group", context=CT, processed_counts={}
    )
    assert conv.effects.obs["n_treated"].isna().all()


def test_convert_only_across_adjusted_p(tree):
    path = tree / "dsI" / "group_rep" / f"{CT}_de.h5ad"
    eff = convert_release_effects(path, dataset="dsI", mode="group", context=CT).effects
    meta = eff.uns["perturbridge"]
    assert meta["adj_p_layer"] == ACROSS and list(meta["adj_p_layers_present"]) == [ACROSS]
    assert WITHIN in meta["layers_filled"]
    assert np.isnan(eff.layers[WITHIN]).all()  # not made up from the other layer
    assert np.isfinite(eff.layers[ACROSS]).all()


def _bad_file(tmp_path: Path, obs: dict, lfc: np.ndarray, index: list[str]) -> Path:
    path = tmp_path / "bad" / "ds" / "group_rep" / "X_de.h5ad"
    frame = pd.DataFrame(obs, index=pd.Index(index))
    _write_de(path, frame, lfc, (WITHIN,), 0)
    return path


def test_convert_errors(tmp_path):
    base = {"cell_type": ["X", "X"], "pert_dose_uM": [1.0, 1.0], "pert_time_h": [24.0, 24.0]}
    lfc = np.zeros((2, len(GENES)))
    kw = {"dataset": "ds", "mode": "group", "context": "X"}
    path = _bad_file(tmp_path, dict(base, pubchem_cid=["12", "CID 7"]), lfc, ["a", "b"])
    with pytest.raises(ValueError, match=r"X_de\.h5ad: column 'pubchem_cid' .*\['CID 7'\]"):
        convert_release_effects(path, **kw)
    lfc2 = lfc.copy()
    lfc2[1, 3] = 1.0
    path = _bad_file(tmp_path, dict(base, pubchem_cid=["12", "12.0"]), lfc2, ["a", "b"])
    with pytest.raises(ValueError, match=r"repeat a condition key .*rows 0 \('a'\) and 1 "):
        convert_release_effects(path, **kw)
    path = _bad_file(tmp_path, base, lfc, ["a", "b"])
    with pytest.raises(ValueError, match="names no compound"):
        convert_release_effects(path, **kw)
    path = _bad_file(
        tmp_path, dict(base, pert_dose_uM=["1", "one"], pubchem_cid=[1, 2]), lfc, ["a", "b"]
    )
    with pytest.raises(ValueError, match=r"column 'pert_dose_uM' has values that are not num"):
        convert_release_effects(path, **kw)
    junk = tmp_path / "junk_de.h5ad"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match=r"not a readable \.h5ad file"):
        convert_release_effects(junk, **kw)


def test_import_public_layout(tree, tree_store):
    manifest = read_manifest(tree_store)
    info = {d["name"]: d for d in manifest["datasets"]}
    assert sorted(info) == ["dsF", "dsI", "dsS"]
    proc = info["dsS"]["processed"]
    assert proc["path"] == str(tree / "dsS" / "dsS_processed.h5ad")
    assert proc["sha256"] == file_sha256(tree / "dsS" / "dsS_processed.h5ad")
    assert proc["n_control_samples"] == 3 and info["dsS"]["n_samples"] == proc["n_samples"]
    # the across-only dataset makes the store consolidate that layer too
    assert ACROSS in manifest["parameters"]["zarr_layers"]
    with Compendium.open(tree_store) as comp:
        conds = comp.conditions()
        # replicates of one condition share it, and it is the group-mode condition
        assert conds["zarr_row_group"].notna().all()
        assert sorted(set(conds["n_separate"])) == [1, 2, 3, 4]
        assert (conds["n_treated"] == conds["n_separate"]).all()
        sep = comp.contrasts(mode="separate")
        assert len(sep) == int(conds["n_separate"].sum())
        assert len(sep) == sep["contrast_id"].nunique()
        assert (conds.groupby("dataset").size() == pd.Series({"dsF": 4, "dsI": 8, "dsS": 9})).all()
        assert sorted(conds["pubchem_cid"].dropna().unique()) == CIDS
        across = comp.effects(conds[conds["dataset"] == "dsI"], layer=ACROSS)
        assert np.isfinite(across.X).all()
        ledger = comp.sql("SELECT dataset, mode, reason, count(*) n FROM ledger GROUP BY ALL")
    got = {(r.dataset, r.mode, r.reason): r.n for r in ledger.itertuples()}
    assert got == {
        ("dsS", "group", "control_row"): 2,
        ("dsS", "group", "duplicate_contrast"): 1,
        ("dsF", "separate", "control_row"): 1,
        ("dsI", "group", "control_row"): 1,
    }


def test_import_joins_a_built_store(tmp_path, tree, built):
    import shutil

    store = tmp_path / "joined"
    shutil.copytree(built["store"], store)
    import_release(tree, store)
    with Compendium.open(store) as comp, Compendium.open(built["store"]) as ref:
        assert sorted(comp.table("datasets")["dataset"]) == [
            "dsF",
            "dsI",
            "dsS",
            "sim_counts",
            "sim_l1000",
        ]
        a = ref.conditions()
        b = comp.conditions(dataset=["sim_counts", "sim_l1000"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(
            a.drop(columns="zarr_row_group"), b.drop(columns="zarr_row_group")
        )
        for mode in ("group", "separate"):
            ids = a.loc[a["dataset"] == "sim_l1000", "condition_id"].head(6).tolist()
            x, y = ref.effects(ids, mode=mode), comp.effects(ids, mode=mode)
            np.testing.assert_array_equal(x.X, y[:, x.var_names].X)
        n_ref = ref.sql("SELECT count(*) n FROM ledger")["n"].iloc[0]
        n_built = comp.sql("SELECT count(*) n FROM ledger WHERE dataset LIKE 'sim_%'")["n"].iloc[0]
        assert n_built == n_ref > 0
        assert len(comp.table("samples")) == len(ref.table("samples")) > 0
    # an unchanged import writes nothing
    before = (store / "manifest.json").stat().st_mtime_ns
    import_release(tree, store)
    assert (store / "manifest.json").stat().st_mtime_ns == before
    # a dataset of another origin is never replaced
    other = tmp_path / "other"
    shutil.copytree(tree / "dsS", other / "sim_l1000")
    (other / "sim_l1000" / "dsS_processed.h5ad").unlink()
    with pytest.raises(StoreError, match=r"'sim_l1000' of the release .*\(built from a plan"):
        import_release(other, store)
    shutil.copytree(tree / "dsI", other / "dsI")
    with pytest.raises(StoreError, match=r"'dsI' .*imported from .*release\)"):
        import_release(other, store, datasets=["dsI"])
    assert (store / "manifest.json").stat().st_mtime_ns == before


def test_agreement_on_imported_tree_needs_no_inchikey(tree_store):
    from perturbridge.agreement import AgreementOptions, run_agreement

    res = run_agreement(tree_store, AgreementOptions(min_compounds=2, n_boot=0), progress=False)
    # only the one condition of the tree without a CID lacks an identity
    missing = res.excluded[res.excluded["reason"] == "missing_identity"]
    assert missing[["dataset", "n_conditions"]].to_numpy().tolist() == [["dsS", 1]]
    assert len(res.pairs) > 0
    assert set(res.pairs["compound"]) <= {f"cid:{c}" for c in CIDS}
    assert len(res.replicate_pairs) > 0


def test_import_cli(tmp_path, tree, built):
    import shutil

    import typer
    from typer.testing import CliRunner

    from perturbridge.cli.compendium import register

    app = typer.Typer()

    @app.callback()
    def _main() -> None:
        """perturbridge (test app)"""

    register(app)
    runner = CliRunner(env={"COLUMNS": "200"})
    store = tmp_path / "st"
    res = runner.invoke(app, ["import-release", str(tree), "--store", str(store)])
    assert res.exit_code == 0, res.output
    assert "3 datasets" in res.output
    shutil.copytree(built["store"], tmp_path / "b")
    other = tmp_path / "other"
    shutil.copytree(tree / "dsS", other / "sim_counts")
    res = runner.invoke(app, ["import-release", str(other), "--store", str(tmp_path / "b")])
    assert res.exit_code == 2
    assert "error:" in res.output and "built from a plan" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(app, ["import-release", str(tmp_path / "none"), "--store", str(store)])
    assert res.exit_code == 2 and "release folder not found" in res.output


def test_a_build_keeps_imported_datasets(tmp_path, tree, built):
    """Rebuilding a plan into a store that also holds imported release datasets keeps
    them; a plan dataset with an imported dataset's name is an error before any work."""
    import shutil

    from perturbridge.compendium import build

    folder = tmp_path / "f"
    shutil.copytree(built["folder"], folder)
    store = folder / "store"
    import_release(tree, store)
    report = build(folder / built["plan"].name)
    assert not report.computed  # every task cached; only the store is rewritten
    with Compendium.open(store) as comp:
        names = sorted(comp.table("datasets")["dataset"])
        assert names == ["dsF", "dsI", "dsS", "sim_counts", "sim_l1000"]
        n = comp.sql("SELECT count(*) n FROM conditions WHERE dataset = 'dsS'")["n"].iloc[0]
        assert n > 0
    # unchanged: a second build writes nothing
    before = (store / "manifest.json").stat().st_mtime_ns
    build(folder / built["plan"].name)
    assert (store / "manifest.json").stat().st_mtime_ns == before
    # a plan dataset named like an imported one
    clash = tmp_path / "clash"
    shutil.copytree(tree / "dsS", clash / "sim_l1000")
    (clash / "sim_l1000" / "dsS_processed.h5ad").unlink()
    other = tmp_path / "g"
    shutil.copytree(built["folder"], other, ignore=shutil.ignore_patterns("store"))
    import_release(clash, other / "store")
    with pytest.raises(
        PlanError, match="'sim_l1000' of the plan has the name of a dataset imported"
    ):
        build(other / built["plan"].name)

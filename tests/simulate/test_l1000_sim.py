"""Tests of the L1000 level 3 simulator (perturbridge.simulate.l1000)."""

from __future__ import annotations

import re
from dataclasses import fields

import numpy as np
import pandas as pd
import pytest

from perturbridge.errors import UnitError
from perturbridge.io import gct
from perturbridge.simulate import L1000Plates, SimulatedL1000, simulate_l1000, sizes_for

COL_FIELDS = [
    "rna_plate",
    "det_plate",
    "det_well",
    "cell_id",
    "pert_id",
    "pert_iname",
    "pert_type",
    "pert_dose",
    "pert_dose_unit",
    "pert_time",
    "pert_time_unit",
    "pert_vehicle",
]
SMALL = {"n_genes": 60, "n_compounds": 6, "seed": 3}


@pytest.fixture(scope="module")
def small() -> SimulatedL1000:
    return simulate_l1000(**SMALL)


@pytest.fixture(scope="module")
def full() -> SimulatedL1000:
    return simulate_l1000(seed=0)


def _condition_key(meta: pd.DataFrame) -> pd.Series:
    return (
        meta["cell_id"].astype(str)
        + "|"
        + meta["pert_id"].astype(str)
        + "|"
        + meta["pert_dose"].astype(str)
        + "|"
        + meta["pert_time"].astype(str)
    )


# ------------------------------------------------------------------ determinism, shapes


def test_same_seed_same_dataset(small: SimulatedL1000) -> None:
    again = simulate_l1000(**SMALL)
    np.testing.assert_array_equal(small.data, again.data)
    pd.testing.assert_frame_equal(small.col_meta, again.col_meta)
    pd.testing.assert_frame_equal(small.row_meta, again.row_meta)
    pd.testing.assert_frame_equal(small.truth_conditions, again.truth_conditions)
    np.testing.assert_array_equal(small.truth_logfc, again.truth_logfc)


def test_other_seed_other_dataset(small: SimulatedL1000) -> None:
    other = simulate_l1000(**{**SMALL, "seed": 4})
    assert other.data.shape == small.data.shape
    assert not np.allclose(other.data, small.data)
    assert not np.allclose(other.truth_logfc, small.truth_logfc)


def test_shapes(small: SimulatedL1000) -> None:
    n_genes, n_samples = small.data.shape
    assert n_genes == SMALL["n_genes"]
    assert small.row_meta.shape[0] == n_genes
    assert small.col_meta.shape[0] == n_samples
    assert small.truth_logfc.shape == (small.truth_conditions.shape[0], n_genes)
    assert small.sample_condition.shape == (n_samples,)
    # 3 cells x 2 times x (6 compounds x 6 doses + 1 poscon)
    assert small.truth_conditions.shape[0] == 3 * 2 * (6 * 6 + 1)
    # 6 plates (3 cells x 2 times) x 3 replicates, each 36 + 24 + 4 wells
    assert n_samples == 3 * 2 * 3 * (36 + 24 + 4)
    assert small.data.dtype == np.float32
    assert np.isfinite(small.data).all()
    assert small.col_meta.index.is_unique
    assert small.row_meta.index.is_unique
    assert small.truth_conditions.index.is_unique


def test_float64_option() -> None:
    sim = simulate_l1000(n_genes=10, n_compounds=1, n_replicates=1, dtype="float64")
    assert sim.data.dtype == np.float64


# ------------------------------------------------------------------ metadata


def test_row_meta(small: SimulatedL1000) -> None:
    rm = small.row_meta
    assert list(rm.columns) == ["pr_gene_id", "pr_gene_symbol", "pr_is_lmark"]
    assert rm.index[0] == "10001"
    assert (rm.index == rm["pr_gene_id"].astype(str)).all()
    assert rm["pr_gene_id"].dtype == np.int64
    assert rm["pr_gene_symbol"].iloc[:2].tolist() == ["GENE1", "GENE2"]
    assert set(rm["pr_is_lmark"]) == {"Y"}


def test_col_meta_fields_and_values(small: SimulatedL1000) -> None:
    cm = small.col_meta
    assert list(cm.columns) == COL_FIELDS
    assert set(cm["cell_id"]) == {"A375", "MCF7", "PC3"}
    assert set(cm["pert_time"]) == {6, 24}
    assert cm["pert_time"].dtype == np.int64
    assert cm["pert_dose"].dtype == np.float64
    assert set(cm["pert_time_unit"]) == {"h"}
    assert set(cm["pert_type"]) == {"trt_cp", "ctl_vehicle", "trt_poscon"}
    assert set(cm["pert_dose_unit"]) == {"um", "-666"}
    assert set(cm.loc[cm["pert_type"] != "ctl_vehicle", "pert_vehicle"]) == {"DMSO"}
    assert cm["pert_id"].str.fullmatch(r"BRD-K\d{8}|DMSO").all()
    # ids are det_plate:det_well, plates named like real CMap plates
    assert (cm.index == cm["det_plate"] + ":" + cm["det_well"]).all()
    assert all(
        d.startswith(r + "_B") for d, r in zip(cm["det_plate"], cm["rna_plate"], strict=True)
    )
    pattern = re.compile(r"SIM\d{3}_(A375|MCF7|PC3)_(6|24)H_X[123]")
    assert all(pattern.fullmatch(p) for p in cm["rna_plate"])
    for plate, sub in cm.groupby("rna_plate"):
        cell, time_lbl = plate.split("_")[1:3]
        assert set(sub["cell_id"]) == {cell}
        assert set(sub["pert_time"].astype(str) + "H") == {time_lbl}
        assert sub["det_well"].is_unique
        assert sub["det_well"].str.fullmatch(r"[A-P](0[1-9]|1\d|2[0-4])").all()
    trt = cm[cm["pert_type"] == "trt_cp"]
    assert set(trt["pert_dose"]) == {0.04, 0.12, 0.37, 1.11, 3.33, 10.0}


def test_vehicle_wells(small: SimulatedL1000) -> None:
    cm = small.col_meta
    veh = cm[cm["pert_type"] == "ctl_vehicle"]
    assert (veh["pert_dose"] == -666).all()
    assert set(veh["pert_id"]) == {"DMSO"}
    assert set(veh["pert_iname"]) == {"DMSO"}
    assert set(veh["pert_dose_unit"]) == {"-666"}
    assert set(veh["pert_vehicle"]) == {"-666"}
    assert (veh.groupby("det_plate").size() == 24).all()
    assert (small.sample_condition[(cm["pert_type"] == "ctl_vehicle").to_numpy()] == -1).all()
    # vehicles carry no effect: they are not conditions of the truth
    assert "DMSO" not in set(small.truth_conditions["pert_id"])


def test_poscon_wells(small: SimulatedL1000) -> None:
    cm = small.col_meta
    pos = cm[cm["pert_type"] == "trt_poscon"]
    assert (pos.groupby("det_plate").size() == 4).all()
    assert pos["pert_id"].nunique() == 1
    assert set(pos["pert_dose"]) == {10.0}
    tc = small.truth_conditions
    assert (tc.loc[tc["pert_type"] == "trt_poscon", "n_wells"] == 4 * 3).all()


def test_each_condition_one_well_per_replicate(small: SimulatedL1000) -> None:
    cm = small.col_meta
    trt = cm[cm["pert_type"] == "trt_cp"]
    replicate = trt["rna_plate"].str.extract(r"_(X\d)$")[0]
    per_condition = replicate.groupby(_condition_key(trt)).agg(["size", "nunique"])
    assert (per_condition["size"] == 3).all()
    assert (per_condition["nunique"] == 3).all()
    # one row of the truth per condition, and the wells agree with it
    tc = small.truth_conditions
    assert len(per_condition) == (tc["pert_type"] == "trt_cp").sum()
    assert (tc.loc[tc["pert_type"] == "trt_cp", "n_wells"] == 3).all()
    treated = small.sample_condition >= 0
    rows = tc.iloc[small.sample_condition[treated]]
    wells = cm[treated]
    np.testing.assert_array_equal(wells["cell_id"], rows["cell_id"])
    np.testing.assert_array_equal(wells["pert_id"], rows["pert_id"])
    np.testing.assert_array_equal(wells["pert_time"], rows["time_h"])
    np.testing.assert_array_equal(wells["pert_dose"], rows["dose_uM"])


def test_several_plates_when_compounds_do_not_fit() -> None:
    # 70 compounds x 6 doses = 420 wells > 384 - 24 - 4 = 356: two plate groups
    sim = simulate_l1000(n_genes=20, n_compounds=70, cell_lines=("A375",), times_h=(24,))
    cm = sim.col_meta
    assert cm["rna_plate"].str[:6].unique().tolist() == ["SIM001", "SIM002"]
    sizes = cm.groupby("det_plate").size()
    assert len(sizes) == 2 * 3
    assert (sizes <= 384).all()
    assert (cm[cm["pert_type"] == "ctl_vehicle"].groupby("det_plate").size() == 24).all()
    trt = cm[cm["pert_type"] == "trt_cp"]
    assert (trt.groupby(_condition_key(trt)).size() == 3).all()
    assert len(trt) == 70 * 6 * 3


# ------------------------------------------------------------------ planted truth


def test_truth_grows_with_dose(small: SimulatedL1000) -> None:
    tc = small.truth_conditions
    trt = tc[tc["pert_type"] == "trt_cp"].sort_values("dose_uM", kind="stable")
    for _, sub in trt.groupby(["cell_id", "pert_id", "time_h"]):
        mag = np.abs(small.truth_logfc[tc.index.get_indexer(sub.index)])
        assert (np.diff(mag, axis=0) >= -1e-12).all()
        support = mag[-1] > 0
        if support.any():  # some compounds are inert in some cell lines
            assert 0.04 <= support.mean() <= 0.2  # sparse: about 5-15 % of genes


def test_some_compounds_inert_in_some_cell_lines(full: SimulatedL1000) -> None:
    tc = full.truth_conditions
    trt = tc["pert_type"] == "trt_cp"
    inert = (tc["n_affected"] == 0) & trt
    assert 0 < inert.sum() < 0.5 * trt.sum()


def test_truth_summary_columns(small: SimulatedL1000) -> None:
    tc = small.truth_conditions
    np.testing.assert_array_equal(tc["n_affected"], np.count_nonzero(small.truth_logfc, axis=1))
    np.testing.assert_allclose(tc["effect_rms"], np.sqrt(np.mean(small.truth_logfc**2, axis=1)))


def test_mean_variance_trend(full: SimulatedL1000) -> None:
    cm = full.col_meta
    plate = cm["det_plate"].iloc[0]
    veh = ((cm["pert_type"] == "ctl_vehicle") & (cm["det_plate"] == plate)).to_numpy()
    x = full.data[:, veh].astype(np.float64)
    mean, sd = x.mean(axis=1), x.std(axis=1, ddof=1)
    low, high = mean < np.quantile(mean, 0.2), mean > np.quantile(mean, 0.8)
    assert np.median(sd[low]) > 2 * np.median(sd[high])
    assert 3.0 < np.median(mean) < 11.0


def test_planted_effects_recoverable(full: SimulatedL1000) -> None:
    cm = full.col_meta
    x = full.data.astype(np.float64)
    context = (cm["cell_id"] + "|" + cm["pert_time"].astype(str)).to_numpy()
    veh = (cm["pert_type"] == "ctl_vehicle").to_numpy()
    tc = full.truth_conditions
    strong = np.flatnonzero(tc["effect_rms"].to_numpy() >= 0.5)
    assert strong.size >= 20
    corr = []
    for i in strong:
        wells = full.sample_condition == i
        plates = cm["det_plate"][wells].unique()
        controls = veh & cm["det_plate"].isin(plates).to_numpy()
        assert set(context[controls]) == set(context[wells])
        estimate = x[:, wells].mean(axis=1) - x[:, controls].mean(axis=1)
        corr.append(np.corrcoef(estimate, full.truth_logfc[i])[0, 1])
    assert min(corr) > 0.8


# ------------------------------------------------------------------ options


def test_missing_vehicle_removes_exactly_those_wells(small: SimulatedL1000) -> None:
    gone = [("MCF7", 24), ("A375", 6.0)]
    sim = simulate_l1000(L1000Plates(missing_vehicle=gone), **SMALL)
    cm = small.col_meta
    in_gone = pd.Series(list(zip(cm["cell_id"], cm["pert_time"], strict=True)), index=cm.index)
    expected_drop = (cm["pert_type"] == "ctl_vehicle") & in_gone.isin([("MCF7", 24), ("A375", 6)])
    assert expected_drop.sum() == 2 * 3 * 24
    assert sim.col_meta.index.tolist() == cm.index[~expected_drop].tolist()
    pd.testing.assert_frame_equal(sim.col_meta, cm[~expected_drop])
    np.testing.assert_array_equal(sim.data, small.data[:, ~expected_drop.to_numpy()])
    pd.testing.assert_frame_equal(sim.truth_conditions, small.truth_conditions)
    np.testing.assert_array_equal(sim.truth_logfc, small.truth_logfc)
    vcm = sim.col_meta[sim.col_meta["pert_type"] == "ctl_vehicle"]
    assert set(zip(vcm["cell_id"], vcm["pert_time"], strict=True)) == {
        ("A375", 24),
        ("MCF7", 6),
        ("PC3", 6),
        ("PC3", 24),
    }


def test_dose_units_converted(small: SimulatedL1000) -> None:
    sim = simulate_l1000(L1000Plates(dose_units=("um", "nm")), **SMALL)
    cm = sim.col_meta
    assert set(cm["pert_dose_unit"]) == {"um", "nm", "-666"}
    # the same experiment, only reported differently
    np.testing.assert_array_equal(sim.data, small.data)
    np.testing.assert_array_equal(sim.truth_logfc, small.truth_logfc)
    pd.testing.assert_series_equal(
        sim.truth_conditions["dose_uM"], small.truth_conditions["dose_uM"]
    )
    factor = cm["pert_dose_unit"].map({"um": 1.0, "nm": 1e3})
    treated = cm["pert_type"] != "ctl_vehicle"
    np.testing.assert_allclose(
        (cm["pert_dose"] / factor)[treated], small.col_meta["pert_dose"][treated], rtol=1e-9
    )
    nm = cm[cm["pert_dose_unit"] == "nm"]
    assert set(nm["pert_dose"]) == {40.0, 120.0, 370.0, 1110.0, 3330.0, 10000.0}
    # a compound keeps one unit
    assert (cm[treated].groupby("pert_id")["pert_dose_unit"].nunique() == 1).all()
    # the truth table reports the dose as written in the metadata too
    tc = sim.truth_conditions
    np.testing.assert_allclose(
        tc["pert_dose"] / tc["pert_dose_unit"].map({"um": 1.0, "nm": 1e3}), tc["dose_uM"]
    )


def test_sizes_for_default_benchmark_size() -> None:
    kw = sizes_for(20_000, 2_000)
    assert (kw["n_compounds"], kw["n_replicates"]) == (55, 9)


def test_benchmark_size_configuration() -> None:
    kw = sizes_for(20_000, 2_000)
    sim = simulate_l1000(**kw, n_genes=50)
    n_samples = sim.data.shape[1]
    assert abs(n_samples - 20_000) <= 2_000
    assert abs(sim.truth_logfc.shape[0] - 2_000) <= 200
    assert sim.col_meta.shape[0] == n_samples


def test_sizes_for_with_several_plate_groups() -> None:
    kw = sizes_for(20_000, 2_000, cell_lines=("A375",), times_h=(24,))
    sim = simulate_l1000(**kw, n_genes=5)
    assert abs(sim.data.shape[1] - 20_000) <= 2_000
    assert abs(sim.truth_logfc.shape[0] - 2_000) <= 200
    assert sim.col_meta["rna_plate"].str[:6].nunique() > 1


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"dose_units": ("ug",)}, UnitError, r"expected dose_units from .*found \['ug'\]"),
        ({"missing_vehicle": [("HELA", 24)]}, ValueError, r"found unknown \[\('HELA', 24\)\]"),
        ({"missing_vehicle": [("A375", 48)]}, ValueError, r"\(cell_id, time_h\) pairs"),
        ({"n_vehicle_per_plate": 300, "n_poscon_per_plate": 84}, ValueError, "no room"),
        ({"wells_per_plate": 100}, ValueError, r"wells_per_plate in \[96, 384, 1536\]"),
        ({"cell_lines": ("A_375",)}, ValueError, "without '_'"),
        ({"cell_lines": ("A375", "A375")}, ValueError, "distinct, non-empty cell_lines"),
        ({"times_h": (6, 0)}, ValueError, "positive integer times_h"),
        ({"doses_uM": (1.0, -1.0)}, ValueError, "positive finite doses_uM"),
        ({"doses_uM": (1.0, 1.0)}, ValueError, "distinct doses_uM"),
        ({"n_replicates": 0}, ValueError, "n_replicates >= 1"),
        ({"n_compounds": 0}, ValueError, "n_compounds >= 1"),
        ({"n_genes": 0}, ValueError, "n_genes >= 1"),
        ({"dtype": "int8"}, ValueError, "dtype 'float32' or 'float64'"),
    ],
)
def test_invalid_arguments(kwargs: dict, error: type[Exception], match: str) -> None:
    on_plates = {f.name for f in fields(L1000Plates)}
    plates = L1000Plates(**{k: v for k, v in kwargs.items() if k in on_plates})
    rest = {k: v for k, v in kwargs.items() if k not in on_plates}
    with pytest.raises(error, match=match):
        simulate_l1000(plates, **{"n_genes": 10, "n_compounds": 1, **rest})


def test_sizes_for_invalid() -> None:
    with pytest.raises(ValueError, match="n_samples >= 1 and n_conditions >= 1"):
        sizes_for(0, 10)


# ------------------------------------------------------------------ writing


def test_write(small: SimulatedL1000, tmp_path) -> None:
    paths = small.write(tmp_path / "out", name="sim")
    assert paths["gctx"].name == "sim.gctx"
    for p in paths.values():
        assert p.is_file()
    info = pd.read_csv(paths["inst_info"], sep="\t")
    assert info["inst_id"].tolist() == small.col_meta.index.tolist()
    assert list(info.columns[1:]) == COL_FIELDS
    np.testing.assert_array_equal(np.load(paths["truth_logfc"]), small.truth_logfc)
    tc = pd.read_csv(paths["truth_conditions"], sep="\t", index_col="condition_id")
    assert tc.index.tolist() == small.truth_conditions.index.tolist()
    samples = pd.read_csv(paths["truth_samples"], sep="\t", keep_default_na=False)
    veh = (small.col_meta["pert_type"] == "ctl_vehicle").to_numpy()
    assert (samples["condition_id"][veh] == "").all()
    assert not list(tmp_path.glob("out/*.part"))
    back = gct.read_gctx(paths["gctx"])
    np.testing.assert_array_equal(back.data, small.data)
    assert back.row_meta.index.tolist() == small.row_meta.index.tolist()
    assert back.col_meta.index.tolist() == small.col_meta.index.tolist()
    assert (back.col_meta["pert_dose"] == small.col_meta["pert_dose"]).all()

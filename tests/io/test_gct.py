"""GCT / GCTX reader and writer: real CMap files, lazy slicing, round trips, error paths."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest

from perturbridge.errors import FormatError
from perturbridge.io import gct as gct_mod
from perturbridge.io.gct import GCT, GCTXFile, read_gct, read_gctx, write_gct, write_gctx

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
CMAPPY = "l1000_cmapPy"
CMAPR = "l1000_cmapR"

# Every GCT/GCTX file in the two CMap folders: (n_rows, n_cols, n_row_fields, n_col_fields).
REAL_FILES: dict[str, tuple[int, int, int, int]] = {
    f"{CMAPPY}/test_l1000.gct": (978, 377, 11, 35),
    f"{CMAPPY}/test_l1000_highprecision.gctx": (978, 377, 11, 37),
    f"{CMAPPY}/col_meta_only_example_n355x355.gct": (355, 355, 0, 50),
    f"{CMAPPY}/row_meta_only_example_n2x1203.gct": (1203, 2, 50, 0),
    f"{CMAPPY}/test_parse_gctx_rid_entrez_id.gctx": (5, 5, 0, 0),
    f"{CMAPPY}/mini_gctx_with_metadata_n2x3.gctx": (3, 2, 4, 2),
    f"{CMAPPY}/test_p100.gct": (96, 96, 11, 19),
    f"{CMAPR}/cmapR_ds_level5_modz_n272x978.gct": (978, 272, 5, 15),
    f"{CMAPR}/cmapR_ds_level5_modz_n272x978.gctx": (978, 272, 5, 15),
    f"{CMAPR}/cmapR_kd_gct_level5_shRNA_n374x976.gctx": (976, 374, 3, 14),
    f"{CMAPR}/modzs_n25x50.gctx": (50, 25, 5, 15),
    # modzs_n25x50.gct is malformed upstream (see test_modzs_gct_header_disagrees_upstream).
}
MALFORMED_UPSTREAM = f"{CMAPR}/modzs_n25x50.gct"

L1000_GCT = f"{CMAPPY}/test_l1000.gct"
DS_GCT = f"{CMAPR}/cmapR_ds_level5_modz_n272x978.gct"
DS_GCTX = f"{CMAPR}/cmapR_ds_level5_modz_n272x978.gctx"


def real(rel: str) -> Path:
    """A file under ../shared/data, or skip with the reason."""
    path = SHARED / rel
    if not path.is_file():
        pytest.skip(f"real CMap data not available: {path} (the shared data folder is absent)")
    return path


def read_any(path: Path, **kwargs: Any) -> GCT:
    return read_gctx(path, **kwargs) if path.suffix == ".gctx" else read_gct(path, **kwargs)


def synthetic(
    n_rows: int = 7, n_cols: int = 5, *, seed: int = 0, dtype: type = np.float64
) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """Seeded data with numeric, integral-float, text, missing and -666 metadata."""
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(n_rows, n_cols)).astype(dtype)
    data[0, 1] = np.nan
    row_meta = pd.DataFrame(
        {
            "pr_gene_symbol": [f"G{i}" for i in range(n_rows)],
            "pr_gene_id": np.arange(1000, 1000 + n_rows, dtype=np.int64),
            "score": rng.uniform(size=n_rows),
        },
        index=pd.Index([f"{i}_at" for i in range(n_rows)], name="id"),
    )
    col_meta = pd.DataFrame(
        {
            "pert_iname": ["DMSO"] + [f"cmp µ{j}" for j in range(1, n_cols)],
            "pert_dose": np.r_[-666.0, np.linspace(0.04, 10.0, n_cols - 1)],
            "pert_time": np.full(n_cols, 24, dtype=np.int64),
            "whole_dose": np.arange(n_cols, dtype=np.float64),  # integral floats stay float
            "note": [np.nan] + ["ok"] * (n_cols - 1),  # text with a missing value
        },
        index=pd.Index([f"PLATE:{j:03d}" for j in range(n_cols)], name="id"),
    )
    return data, row_meta, col_meta


def assert_same(a: GCT, b: GCT, *, atol: float = 0.0) -> None:
    np.testing.assert_allclose(a.data, b.data, rtol=0, atol=atol, equal_nan=True)
    pd.testing.assert_frame_equal(a.row_meta, b.row_meta)
    pd.testing.assert_frame_equal(a.col_meta, b.col_meta)


# --------------------------------------------------------------------------------------
# Real files
# --------------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_real_file_list_is_complete() -> None:
    folders = [SHARED / CMAPPY, SHARED / CMAPR]
    if not all(f.is_dir() for f in folders):
        pytest.skip(f"real CMap data not available under {SHARED}")
    found = {
        f"{p.parent.name}/{p.name}"
        for f in folders
        for p in f.iterdir()
        if p.suffix in {".gct", ".gctx"}
    }
    assert found == {*REAL_FILES, MALFORMED_UPSTREAM}


@pytest.mark.shared_data
@pytest.mark.parametrize("rel", sorted(REAL_FILES))
def test_real_file_shapes_and_ids(rel: str) -> None:
    path = real(rel)
    n_rows, n_cols, n_rf, n_cf = REAL_FILES[rel]
    g = read_any(path)
    assert g.data.shape == (n_rows, n_cols)
    assert g.data.dtype.kind == "f"
    assert g.row_meta.shape == (n_rows, n_rf)
    assert g.col_meta.shape == (n_cols, n_cf)
    assert g.source == str(path)
    for ids in (g.row_meta.index, g.col_meta.index):
        assert ids.is_unique
        assert all(isinstance(v, str) and v for v in ids)
    if path.suffix == ".gctx":
        with GCTXFile(path) as f:
            assert f.shape == (n_rows, n_cols)
            assert f.row_ids.equals(g.row_meta.index)
            assert f.col_ids.equals(g.col_meta.index)


@pytest.mark.shared_data
def test_l1000_level3_gct_known_values() -> None:
    g = read_gct(real(L1000_GCT))
    assert g.data.dtype == np.float64
    assert np.nanmin(g.data) > 3.0  # log2 QNORM expression
    assert np.nanmax(g.data) < 15.1
    assert g.col_meta["pert_type"].value_counts().to_dict() == {
        "trt_cp": 328,
        "ctl_vehicle": 26,
        "trt_poscon": 23,
    }
    assert g.row_meta.index[0] == "200814_at"
    assert g.col_meta.index[0] == "LJP005_A375_24H_X1_B19:A03"
    assert list(g.row_meta.columns[:3]) == ["pr_analyte_id", "pr_analyte_num", "pr_bset_id"]
    assert g.row_meta.loc["200814_at", "pr_gene_symbol"] == "PSME1"
    assert g.row_meta["pr_gene_id"].dtype == np.int64
    assert g.row_meta.loc["200814_at", "pr_gene_id"] == 5720
    assert int(g.row_meta["pr_is_lmark"].sum()) == 978
    # -666 is the CMap missing sentinel: kept as read, never converted.
    dmso = g.col_meta[g.col_meta["pert_type"] == "ctl_vehicle"]
    assert (dmso["pert_dose"] == -666).all()
    assert g.col_meta["qc_iqr"].dtype == np.float64
    assert g.col_meta["cell_id"].eq("A375").all()


@pytest.mark.shared_data
def test_level4_gctx_matches_level3_wells() -> None:
    level3 = read_gct(real(L1000_GCT))
    level4 = read_gctx(real(f"{CMAPPY}/test_l1000_highprecision.gctx"))
    assert level4.data.dtype == np.float32
    assert level4.row_meta.index.equals(level3.row_meta.index)
    assert level4.col_meta.index.equals(level3.col_meta.index)
    pd.testing.assert_series_equal(level4.col_meta["pert_type"], level3.col_meta["pert_type"])
    pd.testing.assert_frame_equal(level4.row_meta[level3.row_meta.columns], level3.row_meta)
    # Text "-666" in the GCTX is inferred to the same number as in the GCT.
    pd.testing.assert_series_equal(level4.col_meta["pert_dose"], level3.col_meta["pert_dose"])


@pytest.mark.shared_data
def test_entrez_integer_row_ids_become_str() -> None:
    path = real(f"{CMAPPY}/test_parse_gctx_rid_entrez_id.gctx")
    with h5py.File(path) as h5:
        assert h5["0/META/ROW/id"].dtype.kind == "i"  # stored as integers
    g = read_gctx(path)
    assert g.row_meta.index.tolist() == ["5720", "55847", "7416", "10174", "25803"]
    assert g.col_meta.index[0] == "REP.A001_A375_24H_X1_B22:A03"
    assert g.data[0, 0] == 1431.0
    sub = read_gctx(path, rows=["7416", "5720"])  # selection by the str ids
    np.testing.assert_array_equal(sub.data, g.data[[2, 0]])


@pytest.mark.shared_data
def test_mini_gctx_metadata() -> None:
    g = read_gctx(real(f"{CMAPPY}/mini_gctx_with_metadata_n2x3.gctx"))
    assert g.data.dtype == np.float64
    assert g.row_meta.loc["200814_at", "pr_analyte_id"] == "Analyte 11"
    assert g.row_meta["pr_gene_id"].dtype == np.float64  # stored as float: kept float
    assert g.row_meta["pr_gene_id"].tolist() == [5720.0, 55847.0, 7416.0]
    assert (g.row_meta["pr_model_id"] == -666).all()
    assert g.col_meta.index.tolist() == [
        "LJP005_A375_24H:DMSO:-666",
        "LJP005_A375_24H:BRD-K76908866:10",
    ]


@pytest.mark.shared_data
def test_p100_gct() -> None:
    g = read_gct(real(f"{CMAPPY}/test_p100.gct"))
    # The one "NA" data cell reads as NaN; the empty filler cells are ignored.
    assert np.argwhere(np.isnan(g.data)).tolist() == [[62, 62]]
    assert g.row_meta.index[0] == "10011_DYRK_Y321_IYQY[+80]IQSR"
    first = g.col_meta.iloc[0]
    assert first["pert_iname"] == "DMSO"
    assert first["pert_dose"] == 0.0
    assert first["pubchem_cid"] == 679
    assert g.row_meta["pr_probe_suitability_manual"].iloc[0] == "TRUE"


@pytest.mark.shared_data
def test_meta_only_example_gcts() -> None:
    sim = read_gct(real(f"{CMAPPY}/col_meta_only_example_n355x355.gct"))
    assert sim.row_meta.columns.empty
    assert sim.row_meta.index.equals(sim.col_meta.index)  # signature × signature
    assert sim.row_meta.index[0] == "LJP006_PC3_24H:DMSO:-666"
    assert np.nanmin(sim.data) >= -100
    assert np.nanmax(sim.data) <= 100
    emb = read_gct(real(f"{CMAPPY}/row_meta_only_example_n2x1203.gct"))
    assert emb.col_meta.columns.empty
    assert emb.row_meta["is_gold"].dtype == np.int64
    assert set(emb.row_meta["is_gold"].unique()) <= {0, 1}
    assert emb.row_meta["distil_id"].iloc[0].count("|") == 19  # pipe-joined replicate ids


@pytest.mark.shared_data
def test_shrna_gctx() -> None:
    g = read_gctx(real(f"{CMAPR}/cmapR_kd_gct_level5_shRNA_n374x976.gctx"))
    assert g.row_meta.index[:2].tolist() == ["55847", "7416"]
    assert g.col_meta["pert_type"].value_counts().to_dict() == {
        "trt_sh": 334,
        "ctl_vector": 32,
        "ctl_untrt": 8,
    }
    assert g.col_meta.index[0] == "A03"  # well ids only, unique within this one plate
    assert g.col_meta["pert_dose"].dtype == np.int64
    assert (g.col_meta["pert_dose"] == -666).all()
    # Mostly Entrez ids, but also "GFP" and "NUL002.1_TRC001.1": the field stays text.
    assert g.col_meta["pert_univ_id"].dtype == object
    assert g.col_meta.loc["A03", "pert_univ_id"] == "9868"
    assert (g.col_meta["pert_univ_id"] == "GFP").sum() == 16


@pytest.mark.shared_data
def test_ds_level5_gct_and_gctx_agree() -> None:
    text = read_gct(real(DS_GCT))
    hdf = read_gctx(real(DS_GCTX))
    assert text.data.dtype == np.float64
    assert hdf.data.dtype == np.float32
    # The text keeps 6 significant digits of the float32 values.
    np.testing.assert_allclose(text.data, hdf.data, rtol=1e-5, atol=1e-5)
    pd.testing.assert_frame_equal(text.row_meta, hdf.row_meta)
    pd.testing.assert_frame_equal(text.col_meta, hdf.col_meta, check_exact=False, rtol=1e-12)
    assert hdf.col_meta["pert_iname"].value_counts().to_dict() == {
        "vemurafenib": 140,
        "atorvastatin": 94,
        "venlafaxine": 38,
    }
    assert hdf.col_meta["pert_type"].eq("trt_cp").all()
    assert hdf.col_meta["cell_id"].nunique() == 65
    # µ was mangled upstream into the literal text "<b5>" (in both files); kept as read.
    assert hdf.col_meta["pert_idose"].iloc[0] == "10 <b5>M"


@pytest.mark.shared_data
def test_modzs_gct_header_disagrees_upstream() -> None:
    """cmapR's modzs_n25x50.gct declares 15 column-metadata lines but has 1."""
    path = real(MALFORMED_UPSTREAM)
    with pytest.raises(FormatError, match=r"declared 50 rows .* 1 column-metadata lines, not 15"):
        read_gct(path)


@pytest.mark.shared_data
def test_modzs_gct_with_fixed_header_matches_gctx(tmp_path: Path) -> None:
    text = real(MALFORMED_UPSTREAM).read_text()
    fixed = tmp_path / "modzs_fixed.gct"
    fixed.write_text(text.replace("50\t25\t5\t15\n", "50\t25\t5\t1\n", 1))
    g_text = read_gct(fixed)
    g_hdf = read_gctx(real(f"{CMAPR}/modzs_n25x50.gctx"))
    # The text rounds the z-scores to 2 decimals.
    np.testing.assert_allclose(g_text.data, g_hdf.data, rtol=0, atol=0.005 + 1e-9)
    pd.testing.assert_frame_equal(g_text.row_meta, g_hdf.row_meta)
    pd.testing.assert_frame_equal(g_text.col_meta, g_hdf.col_meta[["brew_prefix"]])


@pytest.mark.shared_data
def test_gctx_with_chunked_gene_axis() -> None:
    path = real("l1000_signatureSearch/test_sample_n2x12328.gctx")
    with GCTXFile(path) as f:
        assert f.shape == (12328, 2)
        full = f.read()
        rows = [f.row_ids[12000], f.row_ids[3], f.row_ids[7000]]
        np.testing.assert_array_equal(f.read(rows=rows), full[[12000, 3, 7000]])


# --------------------------------------------------------------------------------------
# Lazy slicing
# --------------------------------------------------------------------------------------


@pytest.mark.shared_data
@pytest.mark.parametrize("rel", [DS_GCT, DS_GCTX])
def test_slicing_by_id_in_requested_order(rel: str) -> None:
    path = real(rel)
    full = read_any(path)
    r_pos, c_pos = [900, 1, 450, 2], [200, 3, 50, 271, 0]
    rows = full.row_meta.index[r_pos].tolist()
    cols = full.col_meta.index[c_pos].tolist()
    sub = read_any(path, rows=rows, cols=cols)
    np.testing.assert_array_equal(sub.data, full.data[np.ix_(r_pos, c_pos)])
    assert sub.row_meta.index.tolist() == rows
    assert sub.col_meta.index.tolist() == cols
    pd.testing.assert_frame_equal(sub.col_meta, full.col_meta.iloc[c_pos])
    pd.testing.assert_frame_equal(sub.row_meta, full.row_meta.iloc[r_pos])


@pytest.mark.shared_data
def test_gctx_slicing_by_index_and_dense_runs() -> None:
    path = real(DS_GCTX)
    full = read_gctx(path)
    c_pos = np.array([150, 7, 8, 9, 10, 100, 6])  # unsorted, partly contiguous
    r_pos = np.array([977, 0, 500])
    sub = read_gctx(path, row_idx=r_pos, col_idx=c_pos)
    np.testing.assert_array_equal(sub.data, full.data[np.ix_(r_pos, c_pos)])
    with GCTXFile(path) as f:
        np.testing.assert_array_equal(f.read(col_idx=c_pos), full.data[:, c_pos])
        reverse = np.arange(271, -1, -1)
        np.testing.assert_array_equal(f.read(col_idx=reverse), full.data[:, reverse])
        assert f.read(col_idx=[]).shape == (978, 0)


class RecordingDataset:
    """Wraps an h5py dataset and records the number of elements of every read."""

    def __init__(self, ds: Any) -> None:
        self._ds = ds
        self.reads: list[tuple[Any, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ds, name)

    def __getitem__(self, key: Any) -> np.ndarray:
        block = self._ds[key]
        self.reads.append((key, block.size))
        return block


def test_gctx_read_touches_only_requested_block(tmp_path: Path) -> None:
    n_rows, n_cols = 30, 20_000
    data = np.random.default_rng(1).normal(size=(n_rows, n_cols)).astype(np.float32)
    path = write_gctx(
        tmp_path / "wide.gctx",
        data,
        row_meta=pd.DataFrame(index=[f"g{i}" for i in range(n_rows)]),
        col_meta=pd.DataFrame(index=[f"s{j}" for j in range(n_cols)]),
    )
    with GCTXFile(path) as f:
        rec = RecordingDataset(f._matrix)
        f._matrix = rec
        cols = [19_999, 5, 12_000, 6]
        block = f.read(col_idx=cols, rows=["g29", "g3"])
        np.testing.assert_array_equal(block, data[np.ix_([29, 3], cols)])
        # One fancy read of the 4 samples over the bounding row range g3..g29.
        assert len(rec.reads) == 1
        assert rec.reads[0][1] == 4 * (29 - 3 + 1)
        rec.reads.clear()
        dense = list(range(1_199, 999, -1))  # 200 contiguous samples, reversed
        np.testing.assert_array_equal(f.read(col_idx=dense), data[:, dense])
        assert sum(n for _, n in rec.reads) == 200 * n_rows
        assert all(isinstance(k[0], slice) for k, _ in rec.reads)


def test_gctx_unrequested_chunks_are_never_read(tmp_path: Path) -> None:
    """Corrupt every chunk but two on disk: reading inside those two still works."""
    n_rows, n_cols, step = 20, 20_000, 100
    data = np.random.default_rng(2).normal(size=(n_rows, n_cols)).astype(np.float32)
    path = write_gctx(
        tmp_path / "wide.gctx",
        data,
        row_meta=pd.DataFrame(index=[f"g{i}" for i in range(n_rows)]),
        col_meta=pd.DataFrame(index=[f"s{j}" for j in range(n_cols)]),
        chunk_cols=step,
    )
    keep = {3, 150}  # chunk numbers left intact
    with h5py.File(path) as h5:
        ds = h5["0/DATA/0/matrix"]
        assert ds.chunks == (step, n_rows)
        spans = [ds.id.get_chunk_info(i) for i in range(ds.id.get_num_chunks())]
    with path.open("r+b") as fh:
        for info in spans:
            if info.chunk_offset[0] // step not in keep:
                fh.seek(info.byte_offset)
                fh.write(b"\xff" * info.size)
    cols = [150 * step + 7, 3 * step, 150 * step + 99, 3 * step + 1]
    with GCTXFile(path) as f:
        np.testing.assert_array_equal(f.read(col_idx=cols), data[:, cols])
        with pytest.raises(FormatError, match="corrupt GCTX file"):
            f.read(col_idx=[0])  # the corruption is real


# --------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gctx_round_trip(tmp_path: Path, dtype: type) -> None:
    data, row_meta, col_meta = synthetic(dtype=dtype)
    path = write_gctx(tmp_path / "x.gctx", data, row_meta=row_meta, col_meta=col_meta)
    g = read_gctx(path)
    assert g.data.dtype == dtype
    np.testing.assert_array_equal(g.data, data)
    pd.testing.assert_frame_equal(g.row_meta, row_meta)
    pd.testing.assert_frame_equal(g.col_meta, col_meta)
    with h5py.File(path) as h5:
        assert h5.attrs["version"] == b"GCTX1.0"
        assert h5["0/DATA/0/matrix"].shape == (5, 7)  # transposed
        assert h5["0/META/COL/id"].dtype.kind == "S"
        assert h5["0/META/COL/pert_time"].dtype == np.int64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gct_round_trip(tmp_path: Path, dtype: type) -> None:
    data, row_meta, col_meta = synthetic(dtype=dtype)
    path = write_gct(tmp_path / "x.gct", data, row_meta=row_meta, col_meta=col_meta)
    g = read_gct(path)
    assert g.data.dtype == np.float64
    # Shortest round-trip text: exact in the data's own precision.
    np.testing.assert_array_equal(g.data.astype(dtype), data)
    pd.testing.assert_frame_equal(g.row_meta, row_meta)
    pd.testing.assert_frame_equal(g.col_meta, col_meta)
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[:2] == ["#1.3", "7\t5\t3\t5"]
    assert lines[3].startswith("pert_iname\tna\tna\tna\tDMSO\t")


def test_gct_and_gctx_of_one_dataset_read_equal(tmp_path: Path) -> None:
    data, row_meta, col_meta = synthetic(n_rows=40, n_cols=9, seed=3)
    a = read_gct(write_gct(tmp_path / "x.gct", data, row_meta=row_meta, col_meta=col_meta))
    b = read_gctx(write_gctx(tmp_path / "x.gctx", data, row_meta=row_meta, col_meta=col_meta))
    assert_same(a, b)


@pytest.mark.shared_data
def test_real_file_round_trips(tmp_path: Path) -> None:
    src = read_gctx(real(DS_GCTX))
    kw = {"row_meta": src.row_meta, "col_meta": src.col_meta}
    via_gctx = read_gctx(write_gctx(tmp_path / "ds.gctx", src.data, **kw))
    assert_same(via_gctx, src)
    via_gct = read_gct(write_gct(tmp_path / "ds.gct", src.data, **kw))
    np.testing.assert_array_equal(via_gct.data.astype(np.float32), src.data)
    pd.testing.assert_frame_equal(via_gct.row_meta, src.row_meta)
    pd.testing.assert_frame_equal(via_gct.col_meta, src.col_meta)


def test_write_gctx_chunking(tmp_path: Path) -> None:
    data, row_meta, col_meta = synthetic(n_rows=7, n_cols=5)
    for chunk_cols, expected in [(2, (2, 7)), (50, (5, 7)), (None, (5, 7))]:
        path = write_gctx(
            tmp_path / f"c{chunk_cols}.gctx",
            data,
            row_meta=row_meta,
            col_meta=col_meta,
            chunk_cols=chunk_cols,
        )
        with h5py.File(path) as h5:
            assert h5["0/DATA/0/matrix"].chunks == expected
    with pytest.raises(ValueError, match="chunk_cols must be a positive integer"):
        write_gctx(tmp_path / "bad.gctx", data, row_meta=row_meta, col_meta=col_meta, chunk_cols=0)
    with pytest.raises(ValueError, match="compression must be"):
        write_gctx(
            tmp_path / "bad.gctx", data, row_meta=row_meta, col_meta=col_meta, compression="zstd"
        )


def test_gctx_empty_metadata_round_trip(tmp_path: Path) -> None:
    data = np.arange(6, dtype=np.float64).reshape(2, 3)
    rm, cm = pd.DataFrame(index=["a", "b"]), pd.DataFrame(index=["x", "y", "z"])
    g = read_gctx(write_gctx(tmp_path / "e.gctx", data, row_meta=rm, col_meta=cm))
    np.testing.assert_array_equal(g.data, data)
    assert g.row_meta.columns.empty
    assert g.col_meta.index.tolist() == ["x", "y", "z"]


# --------------------------------------------------------------------------------------
# GCT text variants
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_gct_line_endings(tmp_path: Path, newline: str) -> None:
    data, row_meta, col_meta = synthetic()
    unix = write_gct(tmp_path / "unix.gct", data, row_meta=row_meta, col_meta=col_meta)
    other = tmp_path / "other.gct"
    other.write_bytes(unix.read_bytes().replace(b"\n", newline.encode()))
    assert_same(read_gct(other), read_gct(unix))


def test_gct_version_1_2(tmp_path: Path) -> None:
    path = tmp_path / "v12.gct"
    path.write_text(
        "#1.2\n2\t3\nName\tDescription\tA\tB\tC\ng1\tgene one\t1\t2\t3\ng2\tna\tNA\t\t-1.5e3\n"
    )
    g = read_gct(path)
    assert g.row_meta.columns.tolist() == ["Description"]
    assert g.row_meta["Description"].tolist() == ["gene one", "na"]
    assert g.col_meta.index.tolist() == ["A", "B", "C"]
    assert g.col_meta.columns.empty
    np.testing.assert_array_equal(g.data, [[1, 2, 3], [np.nan, np.nan, -1500]])
    sub = read_gct(path, cols=["C", "A"], rows=["g2"])
    np.testing.assert_array_equal(sub.data, [[-1500, np.nan]])
    assert sub.row_meta["Description"].tolist() == ["na"]


def test_gct_missing_values_in_metadata(tmp_path: Path) -> None:
    path = tmp_path / "m.gct"
    path.write_text(
        "#1.3\n2\t2\t2\t1\nid\tnum\ttext\tA\tB\n"
        "dose\tna\tna\t10\tNaN\n"
        "g1\t1\tx\t1\t2\n"
        "g2\t\tNA\t3\t4\n"
    )
    g = read_gct(path)
    assert g.row_meta["num"].dtype == np.float64  # integers with a missing value -> float
    assert np.isnan(g.row_meta.loc["g2", "num"])
    assert g.row_meta.loc["g1", "text"] == "x"
    assert pd.isna(g.row_meta.loc["g2", "text"])
    assert g.col_meta.loc["A", "dose"] == 10.0
    assert np.isnan(g.col_meta.loc["B", "dose"])


# --------------------------------------------------------------------------------------
# Error paths
# --------------------------------------------------------------------------------------


def gct_lines(tmp_path: Path) -> tuple[Path, list[str]]:
    data, row_meta, col_meta = synthetic()
    path = write_gct(tmp_path / "ok.gct", data, row_meta=row_meta, col_meta=col_meta)
    return path, path.read_text().split("\n")


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines))
    return path


@pytest.mark.shared_data
def test_truncated_gctx(tmp_path: Path) -> None:
    src = real(DS_GCTX)
    bad = tmp_path / "truncated.gctx"
    shutil.copy(src, bad)
    with bad.open("r+b") as fh:
        fh.truncate(os.path.getsize(src) // 2)
    with pytest.raises(FormatError, match=r"truncated\.gctx.*truncated or not an HDF5 file") as e:
        read_gctx(bad)
    assert isinstance(e.value.__cause__, OSError)


def test_not_hdf5(tmp_path: Path) -> None:
    bad = tmp_path / "text.gctx"
    bad.write_text("#1.3\nnot hdf5\n")
    with pytest.raises(FormatError, match="truncated or not an HDF5 file"):
        GCTXFile(bad)
    with pytest.raises(FileNotFoundError, match="GCTX file not found"):
        GCTXFile(tmp_path / "absent.gctx")


def make_h5(
    path: Path, *, matrix: tuple[int, int] | None, rids: list[Any], cids: list[Any]
) -> Path:
    with h5py.File(path, "w") as h5:
        if matrix is not None:
            h5["0/DATA/0/matrix"] = np.zeros(matrix, dtype=np.float32)
        if rids:
            h5["0/META/ROW/id"] = np.array(rids)
        if cids:
            h5["0/META/COL/id"] = np.array(cids)
    return path


def test_gctx_layout_errors(tmp_path: Path) -> None:
    ok_r, ok_c = [b"r1", b"r2", b"r3"], [b"c1", b"c2"]
    with pytest.raises(FormatError, match=r"dataset /0/DATA/0/matrix is missing"):
        GCTXFile(make_h5(tmp_path / "a.gctx", matrix=None, rids=ok_r, cids=ok_c))
    with pytest.raises(FormatError, match=r"dataset /0/META/COL/id is missing"):
        GCTXFile(make_h5(tmp_path / "b.gctx", matrix=(2, 3), rids=ok_r, cids=[]))
    with pytest.raises(FormatError, match=r"shape \(3, 2\).*expected \(2, 3\)"):
        GCTXFile(make_h5(tmp_path / "c.gctx", matrix=(3, 2), rids=ok_r, cids=ok_c))
    with pytest.raises(FormatError, match=r"duplicate row ids .*\['r1'\]"):
        GCTXFile(make_h5(tmp_path / "d.gctx", matrix=(2, 3), rids=[b"r1", b"r2", b"r1"], cids=ok_c))
    with pytest.raises(FormatError, match=r"duplicate column ids .*\['7'\]"):
        GCTXFile(make_h5(tmp_path / "e.gctx", matrix=(2, 3), rids=ok_r, cids=[7, 7]))


def test_gctx_metadata_field_shape_error(tmp_path: Path) -> None:
    path = make_h5(tmp_path / "f.gctx", matrix=(2, 3), rids=[b"a", b"b", b"c"], cids=[b"x", b"y"])
    with h5py.File(path, "a") as h5:
        h5["0/META/COL/dose"] = np.arange(3)
    with (
        GCTXFile(path) as f,
        pytest.raises(FormatError, match=r"/0/META/COL/dose has shape \(3,\)"),
    ):
        f.col_meta()


def test_gct_declared_rows_disagree_with_body(tmp_path: Path) -> None:
    _, lines = gct_lines(tmp_path)
    short = write_lines(tmp_path / "short.gct", lines[:-2])  # drop the last data line
    with pytest.raises(FormatError, match=r"short\.gct: declared 7 rows in line 2, but found 6"):
        read_gct(short)
    long_ = write_lines(tmp_path / "long.gct", [*lines[:-1], lines[-2].replace("6_at", "7_at")])
    with pytest.raises(FormatError, match=r"declared 7 rows in line 2, but line 16 is data row 8"):
        read_gct(long_)


@pytest.mark.shared_data
def test_real_gct_with_a_missing_data_line(tmp_path: Path) -> None:
    lines = real(L1000_GCT).read_text().split("\n")
    bad = write_lines(tmp_path / "l1000_977.gct", [*lines[:100], *lines[101:]])
    with pytest.raises(FormatError, match="declared 978 rows in line 2, but found 977 data lines"):
        read_gct(bad)


def test_gct_wrong_field_counts(tmp_path: Path) -> None:
    _, lines = gct_lines(tmp_path)
    extra = list(lines)
    extra[10] += "\t1.0"
    with pytest.raises(FormatError, match=r"line 11 \(row '2_at'\) has 10 .*fields, expected 9"):
        read_gct(write_lines(tmp_path / "extra.gct", extra))
    header = list(lines)
    header[2] += "\tEXTRA"
    with pytest.raises(FormatError, match=r"line 3 \(header\) has 10 .*expected 9"):
        read_gct(write_lines(tmp_path / "header.gct", header))
    meta = list(lines)
    meta[4] = meta[4].rsplit("\t", 1)[0]
    with pytest.raises(FormatError, match=r"line 5 \(column metadata 'pert_dose'\) has 8"):
        read_gct(write_lines(tmp_path / "meta.gct", meta))


def test_gct_non_numeric_value(tmp_path: Path) -> None:
    _, lines = gct_lines(tmp_path)
    cells = lines[12].split("\t")
    cells[6] = "1.2.3"
    lines[12] = "\t".join(cells)
    with pytest.raises(
        FormatError,
        match=r"line 13, field 7 \(column 'PLATE:002'\): non-numeric data value '1\.2\.3'",
    ):
        read_gct(write_lines(tmp_path / "nonnum.gct", lines))


def test_gct_version_and_dimension_errors(tmp_path: Path) -> None:
    _, lines = gct_lines(tmp_path)
    with pytest.raises(FormatError, match=r"line 1: expected a GCT version line .* found '#1\.4'"):
        read_gct(write_lines(tmp_path / "v.gct", ["#1.4", *lines[1:]]))
    with pytest.raises(FormatError, match=r"line 1: expected a GCT version line"):
        read_gct(write_lines(tmp_path / "noversion.gct", lines[1:]))
    with pytest.raises(FormatError, match=r"line 2: expected 4 non-negative integers"):
        read_gct(write_lines(tmp_path / "dims.gct", [lines[0], "7\t5", *lines[2:]]))
    with pytest.raises(FormatError, match="empty file"):
        read_gct(write_lines(tmp_path / "empty.gct", []))
    blank = [*lines[:8], "", *lines[8:]]
    with pytest.raises(FormatError, match="line 9 is blank, but data lines follow it"):
        read_gct(write_lines(tmp_path / "blank.gct", blank))


def test_gct_duplicate_ids(tmp_path: Path) -> None:
    _, lines = gct_lines(tmp_path)
    rows = list(lines)
    rows[9] = rows[9].replace("1_at", "0_at", 1)
    with pytest.raises(FormatError, match=r"duplicate row ids; first duplicated: \['0_at'\]"):
        read_gct(write_lines(tmp_path / "duprow.gct", rows))
    cols = list(lines)
    cols[2] = cols[2].replace("PLATE:001", "PLATE:000")
    with pytest.raises(FormatError, match=r"duplicate column ids in line 3.*\['PLATE:000'\]"):
        read_gct(write_lines(tmp_path / "dupcol.gct", cols))


def test_missing_ids_when_slicing(tmp_path: Path) -> None:
    data, row_meta, col_meta = synthetic()
    kw = {"row_meta": row_meta, "col_meta": col_meta}
    gct_path = write_gct(tmp_path / "x.gct", data, **kw)
    gctx_path = write_gctx(tmp_path / "x.gctx", data, **kw)
    for path in (gct_path, gctx_path):
        with pytest.raises(
            KeyError, match=r"2 of 3 requested col ids are not in .*\['nope', 'nix'\]"
        ):
            read_any(path, cols=["nope", "PLATE:000", "nix"])
        with pytest.raises(KeyError, match=r"row ids are not in .*x\.gct.*\['zz'\]"):
            read_any(path, rows=["zz"])
        with pytest.raises(ValueError, match=r"must be unique; first repeated: \['0_at'\]"):
            read_any(path, rows=["0_at", "0_at"])
        with pytest.raises(TypeError, match="not the single string"):
            read_any(path, cols="PLATE:000")


def test_gctx_selection_argument_errors(tmp_path: Path) -> None:
    data, row_meta, col_meta = synthetic()
    path = write_gctx(tmp_path / "x.gctx", data, row_meta=row_meta, col_meta=col_meta)
    with GCTXFile(path) as f:
        with pytest.raises(ValueError, match="pass rows= or row_idx=, not both"):
            f.read(rows=["0_at"], row_idx=[0])
        with pytest.raises(IndexError, match=r"col_idx= out of range for 5 cols.*\[5, -1\]"):
            f.read(col_idx=[0, 5, -1])
        with pytest.raises(TypeError, match="1-D sequence of integers"):
            f.read(col_idx=[0.5])
        with pytest.raises(KeyError, match=r"fields \['nope'\] are not in"):
            f.col_meta(fields=["nope"])
        assert f.col_meta(fields=["pert_time", "pert_iname"]).columns.tolist() == [
            "pert_time",
            "pert_iname",
        ]
    with pytest.raises(ValueError, match="is closed"):
        f.read()


def test_meta_only(tmp_path: Path) -> None:
    data, row_meta, col_meta = synthetic()
    path = write_gctx(tmp_path / "x.gctx", data, row_meta=row_meta, col_meta=col_meta)
    g = read_gctx(path, meta_only=True, col_idx=[4, 0])
    assert g.data.shape == (0, 0)
    assert g.shape == (7, 2)
    assert g.col_meta.index.tolist() == ["PLATE:004", "PLATE:000"]


def test_write_validation_errors(tmp_path: Path) -> None:
    data, row_meta, col_meta = synthetic()
    out = tmp_path / "x.gctx"
    with pytest.raises(ValueError, match=r"data shape \(7, 4\) disagrees"):
        write_gctx(out, data[:, :4], row_meta=row_meta, col_meta=col_meta)
    dup = row_meta.set_axis(["a"] * 7)
    with pytest.raises(ValueError, match=r"row_meta.index must hold unique ids.*\['a'\]"):
        write_gctx(out, data, row_meta=dup, col_meta=col_meta)
    with pytest.raises(ValueError, match="other than 'id'"):
        write_gctx(out, data, row_meta=row_meta.rename(columns={"score": "id"}), col_meta=col_meta)
    with pytest.raises(TypeError, match="data must be numeric"):
        write_gctx(out, data.astype(str), row_meta=row_meta, col_meta=col_meta)
    tabbed = col_meta.assign(pert_iname=["a\tb"] * 5)
    with pytest.raises(ValueError, match=r"field 'pert_iname'.*tabs or line breaks.*\['a\\tb'"):
        write_gct(tmp_path / "x.gct", data, row_meta=row_meta, col_meta=tabbed)
    assert list(tmp_path.iterdir()) == []


def test_failed_gctx_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, row_meta, col_meta = synthetic()
    out = tmp_path / "x.gctx"

    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(gct_mod, "_write_meta", boom)  # fails after the matrix is written
    with pytest.raises(RuntimeError, match="simulated"):
        write_gctx(out, data, row_meta=row_meta, col_meta=col_meta)
    assert list(tmp_path.iterdir()) == []


def test_failed_gct_write_keeps_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, row_meta, col_meta = synthetic()
    out = write_gct(tmp_path / "x.gct", data, row_meta=row_meta, col_meta=col_meta)
    before = out.read_bytes()
    calls = {"n": 0}
    real_cells = gct_mod._float_cells

    def fail_on_third_row(row: np.ndarray) -> list[str]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("interrupted (simulated)")
        return real_cells(row)

    monkeypatch.setattr(gct_mod, "_float_cells", fail_on_third_row)
    with pytest.raises(RuntimeError, match="simulated"):
        write_gct(out, data * 2, row_meta=row_meta, col_meta=col_meta)
    assert out.read_bytes() == before
    assert list(tmp_path.iterdir()) == [out]


def test_gct_dataclass_checks_shape() -> None:
    data, row_meta, col_meta = synthetic()
    with pytest.raises(ValueError, match=r"shape \(7, 4\) disagrees"):
        GCT(data=data[:, :4], row_meta=row_meta, col_meta=col_meta)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["1", "-666", " 3 "], np.array([1, -666, 3], dtype=np.int64)),
        (["1", "NA", "2"], np.array([1.0, np.nan, 2.0])),
        (["10", "3.33", "1e-2", "inf"], np.array([10.0, 3.33, 0.01, np.inf])),
        (["007", "8"], np.array([7, 8], dtype=np.int64)),
        (["", "nan"], np.array([np.nan, np.nan])),
        (["99999999999999999999", "1"], np.array([1e20, 1.0])),
        (["1_000", "2"], np.array(["1_000", "2"], dtype=object)),  # not a number literal
        (["9868", "GFP", "NaN"], np.array(["9868", "GFP", np.nan], dtype=object)),
        ([], np.array([])),
    ],
)
def test_metadata_type_inference(values: list[str], expected: np.ndarray) -> None:
    out = gct_mod._infer_column(values)
    assert out.dtype == expected.dtype
    pd.testing.assert_series_equal(pd.Series(out), pd.Series(expected))


def test_gct_latin1_file_is_read_with_a_logged_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "latin1.gct"
    path.write_bytes(b"#1.3\n1\t1\t0\t1\nid\tA\npert_idose\t10 \xb5M\ng1\t1.5\n")
    with caplog.at_level("WARNING", logger="perturbridge.io.gct"):
        g = read_gct(path)
    assert g.col_meta.loc["A", "pert_idose"] == "10 µM"
    assert "not valid UTF-8" in caplog.text

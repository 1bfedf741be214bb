"""Row-sharded Zarr v3 arrays: our writer and reader against zarr's own codecs."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from perturbridge.compendium._common import StoreError
from perturbridge.compendium._shards import (
    ShardWriter,
    create_row_sharded,
    read_rows,
    row_sharded_layout,
)


def _write(path, data, *, rows_per_shard, threads=2):
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    lay = create_row_sharded(
        group, "x", n_rows=data.shape[0], n_cols=data.shape[1], rows_per_shard=rows_per_shard
    )
    with ShardWriter(lay, threads=threads) as w:
        for s, a in enumerate(range(0, data.shape[0], lay.rows_per_shard)):
            w.write(s, data[a : a + lay.rows_per_shard])
    return lay


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(103, 37)).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = np.nan  # genes a dataset did not measure
    x[5] = np.nan  # a row with nothing measured
    return x


def test_zarr_reads_what_the_writer_wrote(tmp_path, data):
    _write(tmp_path / "a.zarr", data, rows_per_shard=16)  # last shard is short (103 = 6*16+7)
    arr = zarr.open_group(str(tmp_path / "a.zarr"), mode="r")["x"]
    assert arr.metadata.zarr_format == 3
    np.testing.assert_array_equal(arr[:], data)
    rows = np.array([0, 5, 17, 18, 63, 100, 102])
    np.testing.assert_array_equal(arr.oindex[rows, :], data[rows])


def test_reader_matches_zarr_on_scattered_rows(tmp_path, data):
    _write(tmp_path / "a.zarr", data, rows_per_shard=16)
    arr = zarr.open_group(str(tmp_path / "a.zarr"), mode="r")["x"]
    layout = row_sharded_layout(arr)
    assert layout is not None and layout.rows_per_shard == 16 and layout.n_cols == 37
    rng = np.random.default_rng(0)
    for threads in (1, 4):
        rows = np.sort(rng.choice(103, 40, replace=False))
        np.testing.assert_array_equal(read_rows(layout, rows, threads=threads), data[rows])
    assert read_rows(layout, np.array([], dtype=np.int64)).shape == (0, 37)


def test_bytes_do_not_depend_on_threads(tmp_path, data):
    _write(tmp_path / "one.zarr", data, rows_per_shard=16, threads=1)
    _write(tmp_path / "four.zarr", data, rows_per_shard=16, threads=4)
    for s in range(7):
        a = (tmp_path / "one.zarr" / "x" / "c" / str(s) / "0").read_bytes()
        b = (tmp_path / "four.zarr" / "x" / "c" / str(s) / "0").read_bytes()
        assert a == b


def test_a_missing_shard_reads_as_fill_and_a_damaged_index_fails(tmp_path, data):
    lay = _write(tmp_path / "a.zarr", data, rows_per_shard=16)
    lay.shard_path(1).unlink()
    got = read_rows(lay, np.array([3, 20, 40]))
    np.testing.assert_array_equal(got[[0, 2]], data[[3, 40]])
    assert np.isnan(got[1]).all()
    p = lay.shard_path(2)
    raw = bytearray(p.read_bytes())
    raw[-10] ^= 0xFF  # inside the index
    p.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match="shard index is damaged"):
        read_rows(lay, np.array([33]))


def test_bad_rows_and_blocks_are_refused(tmp_path, data):
    lay = _write(tmp_path / "a.zarr", data, rows_per_shard=16)
    with pytest.raises(ValueError, match="sorted, unique"):
        read_rows(lay, np.array([4, 2]))
    with pytest.raises(ValueError, match="sorted, unique"):
        read_rows(lay, np.array([103]))
    with ShardWriter(lay) as w, pytest.raises(ValueError, match="expected a block"):
        w.write(0, data[:15])


def test_other_layouts_are_not_taken_for_row_sharded(tmp_path, data):
    v2 = zarr.create_array(
        str(tmp_path / "v2.zarr"), shape=data.shape, chunks=(16, 37), dtype="float32",
        zarr_format=2,
    )  # fmt: skip
    assert row_sharded_layout(v2) is None
    plain3 = zarr.create_array(
        str(tmp_path / "v3.zarr"), shape=data.shape, chunks=(16, 37), dtype="float32"
    )
    assert row_sharded_layout(plain3) is None


def test_p_value_arrays_store_neg_log10_and_read_back_p(tmp_path):
    from perturbridge.compendium._footprint import NEG_LOG10, encode_p

    rng = np.random.default_rng(5)
    p = 10.0 ** -rng.uniform(0, 300, size=(20, 9))
    p[3, 4] = np.nan
    group = zarr.open_group(str(tmp_path / "p.zarr"), mode="w", zarr_format=3)
    lay = create_row_sharded(group, "P.Value", n_rows=20, n_cols=9, rows_per_shard=8,
                             encoding=NEG_LOG10)  # fmt: skip
    with ShardWriter(lay) as w:
        for s, a in enumerate(range(0, 20, 8)):
            w.write(s, encode_p(p[a : a + 8]))
    arr = zarr.open_group(str(tmp_path / "p.zarr"), mode="r")["P.Value"]
    assert arr.attrs["perturbridge"] == {"encoding": "-log10"}
    layout = row_sharded_layout(arr)
    assert layout is not None and layout.encoding == NEG_LOG10
    rows = np.array([0, 3, 9, 19])
    stored = read_rows(layout, rows, decode=False)
    with np.errstate(invalid="ignore"):
        exact = -np.log10(p[rows])  # what the array holds, to float32 precision
    np.testing.assert_allclose(stored, exact, rtol=2.0**-24)
    got = read_rows(layout, rows).astype(np.float64)  # p, as float32
    ok = p[rows] > 1.2e-38
    np.testing.assert_allclose(got[ok], p[rows][ok], rtol=1e-4)
    assert (got[~ok & np.isfinite(p[rows])] < 1.2e-38).all()  # underflow: the float32 range
    assert np.isnan(got[1, 4])


def test_an_unknown_value_encoding_is_refused(tmp_path, data):
    _write(tmp_path / "a.zarr", data, rows_per_shard=16)
    arr = zarr.open_group(str(tmp_path / "a.zarr"), mode="r+")["x"]
    arr.attrs["perturbridge"] = {"encoding": "sqrt"}
    with pytest.raises(StoreError, match="unknown value encoding 'sqrt'"):
        row_sharded_layout(arr)
    with pytest.raises(ValueError, match="encoding must be"):
        create_row_sharded(zarr.open_group(str(tmp_path / "b.zarr"), mode="w", zarr_format=3),
                           "x", n_rows=2, n_cols=2, rows_per_shard=2, encoding="sqrt")  # fmt: skip

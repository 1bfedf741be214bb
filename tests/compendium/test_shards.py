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

"""One rollback rule for every atomic write: ``atomic_file`` and ``atomic_dir``."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from perturbridge.io import atomic_dir, atomic_file, write_h5ad
from perturbridge.io._atomic import STALE_PART_S, dir_mode, file_mode


def _mode(path: os.PathLike[str] | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _write_file_then_fail(out: Path) -> None:
    with atomic_file(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")


def _write_dir(out: Path, name: str, *, fail: bool = False) -> None:
    with atomic_dir(out) as tmp:
        (tmp / name).write_text("half")
        if fail:
            raise RuntimeError("boom")


def test_atomic_file_renames_into_place_with_the_umask_mode(tmp_path):
    out = tmp_path / "sub" / "a.txt"
    with atomic_file(out) as tmp:
        assert tmp.parent == out.parent and tmp.name.endswith(".part")
        tmp.write_text("x")
        assert not out.exists()
    assert out.read_text() == "x"
    assert _mode(out) == file_mode()
    assert [p.name for p in out.parent.iterdir()] == ["a.txt"]


def test_atomic_file_leaves_the_old_file_on_error(tmp_path):
    out = tmp_path / "a.txt"
    out.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        _write_file_then_fail(out)
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_dir_renames_into_place_with_the_umask_mode(tmp_path):
    out = tmp_path / "folder"
    with atomic_dir(out) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".part")
        (tmp / "f.txt").write_text("x")
        assert not out.exists()
    assert (out / "f.txt").read_text() == "x"
    assert _mode(out) == dir_mode()
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]


def test_atomic_dir_removes_its_temporary_on_error(tmp_path):
    out = tmp_path / "folder"
    with pytest.raises(RuntimeError, match="boom"):
        _write_dir(out, "f.txt", fail=True)
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_an_empty_folder_and_refuses_a_full_one(tmp_path):
    out = tmp_path / "folder"
    out.mkdir()
    with atomic_dir(out) as tmp:
        (tmp / "a").write_text("1")
    assert (out / "a").read_text() == "1"
    with pytest.raises(FileExistsError, match=r"folder exists and is not an empty folder"):
        _write_dir(out, "b")
    assert sorted(p.name for p in out.iterdir()) == ["a"]
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]


def test_atomic_dir_replace_swaps_a_full_folder(tmp_path):
    out = tmp_path / "folder"
    out.mkdir()
    (out / "old").write_text("1")
    with atomic_dir(out, replace=True) as tmp:
        (tmp / "new").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]


def test_stale_temporaries_of_killed_writes_are_removed(tmp_path):
    out = tmp_path / "folder"
    stale_dir = tmp_path / ".folder.dead.part"
    stale_dir.mkdir()
    (stale_dir / "x").write_text("half")
    fresh = tmp_path / ".folder.alive.part"
    fresh.mkdir()
    old = time.time() - STALE_PART_S - 5
    os.utime(stale_dir, (old, old))
    with atomic_dir(out) as tmp:
        (tmp / "f").write_text("x")
    assert not stale_dir.exists()
    assert fresh.exists()  # another writer may still be using it


def test_write_h5ad_compressed_round_trips_every_kind_of_element(tmp_path):
    rng = np.random.default_rng(0)
    counts = sparse.csr_matrix(sparse.random(40, 30, density=0.3, random_state=1) * 100)
    a = ad.AnnData(
        X=counts.astype(np.float32),
        obs=pd.DataFrame({"plate": ["p1", "p2"] * 20}, index=[f"s{i}" for i in range(40)]),
        var=pd.DataFrame(index=[f"g{i}" for i in range(30)]),
        uns={"n": 3, "name": "x", "nested": {"v": 1.5}},  # scalars take no filters
    )
    a.layers["dense"] = rng.normal(size=(40, 30)).astype(np.float32)
    path = write_h5ad(a, tmp_path / "a.h5ad", compress=True)
    b = ad.read_h5ad(path)
    assert (b.X != a.X).nnz == 0
    np.testing.assert_array_equal(b.layers["dense"], a.layers["dense"])
    assert b.uns["n"] == 3 and b.uns["nested"]["v"] == 1.5
    assert b.obs["plate"].tolist() == a.obs["plate"].tolist()
    with h5py.File(path) as f:
        assert f["layers"]["dense"].compression == "gzip" and f["layers"]["dense"].shuffle
        assert f["X"]["data"].compression == "gzip"


def _same_content_written_in_another_order(path: Path, *, reverse: bool) -> None:
    """A file with one group of two attributes and two chunked datasets, the attributes
    and members created in name order or in reverse: the same content, another layout
    (the group's header messages and its name heap in another order)."""
    rng = np.random.default_rng(0)
    data = {"codes": rng.integers(0, 4, 500), "values": rng.normal(size=500)}
    attrs = {"encoding-type": "categorical", "ordered": False}
    order = sorted(data, reverse=reverse)
    with h5py.File(path, "w") as f:
        group = f.create_group("obs")
        for name in sorted(attrs, reverse=reverse):
            group.attrs[name] = attrs[name]
        for name in order:
            group.create_dataset(name, data=data[name], chunks=(100,), compression="gzip")
            group[name].attrs["encoding-type"] = "array"


def test_repack_gives_the_same_bytes_for_the_same_content(tmp_path):
    """Two drafts of the same content in different layouts become the same file (the
    store compares its files by checksum: a Dask worker once wrote another layout)."""
    from perturbridge.io._atomic import _repack

    drafts = [tmp_path / "a.h5", tmp_path / "b.h5"]
    for draft, reverse in zip(drafts, (False, True), strict=True):
        _same_content_written_in_another_order(draft, reverse=reverse)
    assert drafts[0].read_bytes() != drafts[1].read_bytes()  # the layouts differ
    for draft in drafts:
        _repack(draft, draft.with_suffix(".out"))
    a, b = (d.with_suffix(".out") for d in drafts)
    assert a.read_bytes() == b.read_bytes()
    with h5py.File(a, "r") as f, h5py.File(drafts[1], "r") as draft:
        assert dict(f["obs"].attrs) == {"encoding-type": "categorical", "ordered": False}
        for name in ("codes", "values"):
            got, want = f["obs"][name], draft["obs"][name]
            assert dict(got.attrs) == {"encoding-type": "array"}
            assert (got.compression, got.chunks, got.dtype) == ("gzip", (100,), want.dtype)
            np.testing.assert_array_equal(got[()], want[()])

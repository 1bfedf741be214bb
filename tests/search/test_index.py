"""The search index of a store: values and ranks per condition, blocks, staleness."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from perturbridge.compendium import Compendium
from perturbridge.compendium.signatures import import_signatures
from perturbridge.io import write_gctx
from perturbridge.search.index import (
    IndexWriter,
    SearchIndex,
    StaleIndexError,
    rank_descending,
)
from perturbridge.simulate import AgreementDesign, simulate_agreement_store


def _ranks_reference(row: np.ndarray) -> np.ndarray:
    """Descending ordinal ranks among the non-NaN values (scipy), 0 where NaN."""
    out = np.zeros(len(row), dtype=np.int64)
    ok = ~np.isnan(row)
    out[ok] = rankdata(-row[ok], method="ordinal")
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # two datasets; the second measures 70% of the genes (NaN elsewhere)
    design = AgreementDesign(n_datasets=2, n_contexts=2, n_compounds=5, doses=(1.0,), n_genes=60)
    path = simulate_agreement_store(tmp_path_factory.mktemp("idx") / "store", design, seed=0)
    SearchIndex.build(path, progress=False)
    return Path(path)


def test_rank_descending_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 30))
    x[rng.random(x.shape) < 0.2] = np.nan
    x[3, :] = np.nan
    got = rank_descending(x)
    want = np.array([_ranks_reference(r) for r in x])
    np.testing.assert_array_equal(got, want)
    # ties keep column order, by hand
    assert rank_descending(np.array([[1.0, 2.0, 1.0, np.nan]])).tolist() == [[2, 1, 3, 0]]
    with pytest.raises(ValueError, match="must be 2-D"):
        rank_descending(np.zeros(3))


def test_blocks_hold_the_store_values_ranks_and_norms(store):
    index = SearchIndex.open(store)
    with Compendium.open(store) as comp:
        eff = comp.effects(None)
        x = np.asarray(eff.X)
        zrows = eff.obs["zarr_row"].to_numpy()
        assert index.n_genes == x.shape[1] == len(comp.genes())
    full = x[np.argsort(zrows)]
    seen = []
    for block in index.blocks(cols=None, ranks=True, block_rows=3):
        assert block.n_rows <= 3
        ref = full[block.rows]
        np.testing.assert_array_equal(np.isnan(block.values), np.isnan(ref))
        np.testing.assert_array_equal(np.nan_to_num(block.values), np.nan_to_num(ref))
        want = np.array([_ranks_reference(r) for r in ref])
        np.testing.assert_array_equal(block.ranks, want)  # over all measured genes
        np.testing.assert_array_equal(block.n_measured, (~np.isnan(ref)).sum(axis=1))
        assert block.norms is not None
        np.testing.assert_allclose(block.norms, np.sqrt(np.nansum(ref.astype(float) ** 2, 1)))
        seen.extend(block.rows.tolist())
    assert sorted(seen) == sorted(index.conditions["zarr_row"])
    # the two contexts of a dataset measure the same genes: they share blocks
    assert [b.n_rows for b in index.blocks(cols=None, ranks=False)] == [10, 10]
    assert len(index.conditions) == len(x)
    assert {"condition_id", "dataset", "assay", "cell_context", "zarr_row"} <= set(
        index.conditions.columns
    )


def test_blocks_of_some_rows_and_columns(store):
    index = SearchIndex.open(store)
    rows_all = index.conditions["zarr_row"].to_numpy()
    with Compendium.open(store) as comp:
        eff = comp.effects(None)
    x = np.asarray(eff.X)[np.argsort(eff.obs["zarr_row"].to_numpy())]
    missing_b = np.flatnonzero(np.isnan(x[-1]))  # a gene the second dataset lacks
    cols = np.unique(np.array([0, 5, int(missing_b[0]), 59]))
    rows = rows_all[[1, 4, 12, 19]]
    blocks = list(index.blocks(cols=cols, rows=rows, ranks=True))
    got = np.concatenate([b.rows for b in blocks])
    assert sorted(got.tolist()) == sorted(rows.tolist())
    full_ranks = np.array([_ranks_reference(r) for r in x])
    for b in blocks:
        np.testing.assert_array_equal(b.cols, cols)
        np.testing.assert_array_equal(np.nan_to_num(b.values), np.nan_to_num(x[b.rows][:, cols]))
        np.testing.assert_array_equal(b.ranks, full_ranks[b.rows][:, cols])
    # measured_only: each block's columns are those its dataset measures
    for b in index.blocks(cols=cols, rows=rows, ranks=False, measured_only=True):
        assert b.ranks is None
        assert set(b.cols) <= set(cols)
        assert not np.isnan(b.values).all(axis=0).any()
        np.testing.assert_array_equal(b.values, x[b.rows][:, b.cols])
    with pytest.raises(KeyError, match="not in the search index"):
        next(index.blocks(cols=cols, rows=np.array([10_000]), ranks=False))
    with pytest.raises(ValueError, match="sorted ascending"):
        next(index.blocks(cols=np.array([5, 1]), ranks=False))
    with pytest.raises(KeyError, match="cols must lie in"):
        next(index.blocks(cols=np.array([0, 60]), ranks=False))


def _level5(path: Path) -> None:
    rng = np.random.default_rng(3)
    row_meta = pd.DataFrame(
        {"pr_gene_id": ["1", "2", "3"], "pr_gene_symbol": ["A", "B", "C"]},
        index=pd.Index(["p1", "p2", "p3"], name="id"),
    )
    col_meta = pd.DataFrame(
        {"cell_id": ["A375", "A375"], "pert_iname": ["x", "y"], "pert_idose": ["1 uM"] * 2,
         "pert_itime": ["6 h"] * 2},
        index=pd.Index(["s1", "s2"], name="id"),
    )  # fmt: skip
    write_gctx(path, rng.normal(size=(3, 2)).astype(np.float32), row_meta=row_meta,
               col_meta=col_meta)  # fmt: skip


def test_stale_index_is_refused_and_rebuilt_incrementally(store, tmp_path, caplog):
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    old = SearchIndex.open(copy)
    segments = sorted(p.name for p in (copy / "search" / "segments").iterdir())
    inodes = {
        p.name: (p / "values.npy").stat().st_ino for p in (copy / "search/segments").iterdir()
    }
    gctx = tmp_path / "l5.gctx"
    _level5(gctx)
    import_signatures(copy, gctx, dataset="cmap")  # the store changes: a new build
    stale = r"is stale.*rebuild it with `perturbridge search-index .*store` \(SearchIndex"
    with pytest.raises(StaleIndexError, match=stale):
        SearchIndex.open(copy)
    with caplog.at_level(logging.INFO, logger="perturbridge.search.index"):
        new = SearchIndex.build(copy, progress=False)
    assert "1 segments computed, 4 reused" in caplog.text  # only the new dataset
    now = {p.name: (p / "values.npy").stat().st_ino for p in (copy / "search/segments").iterdir()}
    assert all(now[k] == inodes[k] for k in segments)  # the old segments, untouched
    assert len(new.conditions) == len(old.conditions) + 2
    # the old rows moved on the store's axes (cmap sorts first): the blocks follow
    with Compendium.open(copy) as comp:
        eff = comp.effects(None)
    x = np.asarray(eff.X)[np.argsort(eff.obs["zarr_row"].to_numpy())]
    for b in new.blocks(cols=None, ranks=False):
        np.testing.assert_array_equal(np.nan_to_num(b.values), np.nan_to_num(x[b.rows]))


def test_no_index_and_an_interrupted_build(store, tmp_path, monkeypatch):
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    shutil.rmtree(copy / "search")
    with pytest.raises(StaleIndexError, match="no search index"):
        SearchIndex.open(copy)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(IndexWriter, "commit", boom)
    with pytest.raises(OSError, match="disk full"):
        SearchIndex.build(copy, progress=False)
    assert not (copy / "search" / "group-logFC").exists()  # no half index
    done = sorted(p.name for p in (copy / "search" / "segments").iterdir())
    assert len(done) == 4
    monkeypatch.undo()
    calls: list[str] = []
    original = IndexWriter.write_segment

    def counted(self, key, *args, **kwargs):
        calls.append(key)
        return original(self, key, *args, **kwargs)

    monkeypatch.setattr(IndexWriter, "write_segment", counted)
    SearchIndex.build(copy, progress=False)
    assert calls == []  # the segments of the interrupted build are reused
    assert len(SearchIndex.open(copy).conditions) == 20


def test_writer_chunks_equal_one_array(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(7, 4)).astype(np.float32)
    x[2, 1] = np.nan
    w = IndexWriter(tmp_path / "search")
    w.write_segment("a", x, genes=["g1", "g2", "g3", "g4"])
    w.write_segment("b", [x[:3], x[3:]], genes=["g1", "g2", "g3", "g4"])
    for name in ("values.npy", "ranks.npy"):
        a = np.load(tmp_path / "search/segments/a" / name)
        b = np.load(tmp_path / "search/segments/b" / name)
        np.testing.assert_array_equal(a, b)
    assert np.load(tmp_path / "search/segments/a/ranks.npy").dtype == np.int16
    with pytest.raises(ValueError, match=r"expected \(rows, 4\)"):
        w.write_segment("c", x[:, :3], genes=["g1", "g2", "g3", "g4"])


def _writer_index(tmp_path: Path) -> tuple[SearchIndex, dict[str, np.ndarray]]:
    """An index written directly: segment ``big`` of 1,500 rows × 12 genes (large enough
    for blocks of its own) and ``small`` of 30 rows × 8 of the genes (some NaN)."""
    rng = np.random.default_rng(8)
    genes = [f"g{i:02d}" for i in range(12)]
    cols = {"big": np.arange(12), "small": np.array([0, 2, 3, 5, 6, 8, 9, 11])}
    data = {"big": rng.normal(size=(1500, 12)).astype(np.float32),
            "small": rng.normal(size=(30, 8)).astype(np.float32)}  # fmt: skip
    data["small"][4, 2] = np.nan
    w = IndexWriter(tmp_path / "search")
    rows = []
    start = 0
    for key in ("big", "small"):
        x = data[key]
        w.write_segment(key, x, genes=[genes[c] for c in cols[key]])
        rows.append(pd.DataFrame({"zarr_row": np.arange(start, start + len(x)), "segment": key,
                                  "position": np.arange(len(x))}))  # fmt: skip
        start += len(x)
    folder = w.commit(build_key="k", mode="group", layer="logFC", n_genes=12,
                      rows=pd.concat(rows, ignore_index=True), cols=cols)  # fmt: skip
    return SearchIndex.load(folder), data


def test_blocks_are_gene_major_views_of_the_index_where_they_can_be(tmp_path):
    index, data = _writer_index(tmp_path)
    big, small = data["big"], data["small"]
    assert index.n_conditions == len(index.conditions) == 1530
    blocks = list(index.blocks(cols=None, ranks=True, block_rows=1000, measured_only=True))
    assert [b.n_rows for b in blocks] == [1000, 500, 30]
    seg = {s.key: s for s in index._segments}
    for b in blocks:
        # gene-major: a gene's values over the block's rows lie side by side
        assert b.values.strides[0] == b.values.itemsize and b.ranks is not None
        assert b.ranks.dtype == np.int16 and b.ranks.strides[0] == b.ranks.itemsize
        x = big[b.rows] if b.n_rows > 30 else small
        np.testing.assert_array_equal(b.values, x)
        want = np.array([_ranks_reference(r) for r in x])
        np.testing.assert_array_equal(b.ranks, want)
        assert b.complete  # every gene of its segment
    # a segment's consecutive rows × all its genes: no copy
    assert np.shares_memory(blocks[0].values, seg["big"].values)
    assert np.shares_memory(blocks[1].ranks, seg["big"].ranks)
    # some of the genes: copies, not complete; padded columns of another dataset: NaN, 0
    cols = np.array([1, 2, 11])
    for b in index.blocks(cols=cols, ranks=True, block_rows=1000):
        assert not b.complete
        x = big[b.rows][:, cols] if b.n_rows > 30 else np.c_[np.full(30, np.nan), small[:, [1, 7]]]
        np.testing.assert_array_equal(b.values, x)
        assert b.ranks is not None and (b.ranks[:, 0] == 0).all() == (b.n_rows == 30)
    # rows that are not consecutive: a copy with the same content
    picked = np.array([3, 7, 1200, 1499])
    (b,) = index.blocks(cols=None, rows=picked, ranks=False, measured_only=True)
    np.testing.assert_array_equal(b.values, big[picked])

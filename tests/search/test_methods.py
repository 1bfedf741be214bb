"""The search methods registry: blocks, scores per method, kinds and errors."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from perturbridge.search.methods import (
    KS,
    METHODS,
    WTCS,
    Block,
    SearchMethod,
    get_method,
    list_methods,
    score_block,
    score_blocks,
)
from perturbridge.search.queries import Query, ResolvedQuery


def _naive_es(row: np.ndarray, members: np.ndarray, weight: float) -> float:
    """The running-sum walk over the whole ranking of a row's measured genes."""
    measured = np.flatnonzero(~np.isnan(row))
    order = measured[np.argsort(-row[measured], kind="stable")]
    hits = np.isin(order, members)
    w = np.abs(row[order]) ** weight * hits
    step = np.where(hits, w / w.sum(), -1.0 / (len(order) - hits.sum()))
    run = np.cumsum(step)
    return float(run.max() if abs(run.max()) > abs(run.min()) else run.min())


def _block(values: np.ndarray, *, with_ranks: bool = True) -> Block:
    ranks = np.zeros(values.shape, dtype=np.int32)
    for i, row in enumerate(values):
        m = np.flatnonzero(~np.isnan(row))
        ranks[i, m[np.argsort(-row[m], kind="stable")]] = np.arange(1, len(m) + 1)
    return Block(
        rows=np.arange(values.shape[0], dtype=np.int64) + 100,
        cols=np.arange(values.shape[1], dtype=np.int64),
        values=values.astype(np.float32),
        ranks=ranks if with_ranks else None,
        n_measured=(~np.isnan(values)).sum(axis=1).astype(np.int32),
    )


def _sets(name: str, up: list[int], down: list[int]) -> ResolvedQuery:
    return ResolvedQuery(
        query=Query(name, up=tuple(f"u{c}" for c in up) or (), down=tuple(f"d{c}" for c in down)),
        up_cols=np.array(up, dtype=np.int64),
        down_cols=np.array(down, dtype=np.int64),
        signature_cols=np.zeros(0, dtype=np.int64),
        signature_values=np.zeros(0),
    )


def _signature(name: str, cols: np.ndarray, values: np.ndarray) -> ResolvedQuery:
    sig = pd.Series(values, index=[f"g{c}" for c in cols])
    return ResolvedQuery(
        query=Query(name, signature=sig),
        up_cols=np.zeros(0, dtype=np.int64),
        down_cols=np.zeros(0, dtype=np.int64),
        signature_cols=np.asarray(cols, dtype=np.int64),
        signature_values=np.asarray(values, dtype=np.float64),
    )


@pytest.fixture
def values() -> np.ndarray:
    rng = np.random.default_rng(21)
    v = rng.normal(size=(15, 60)).astype(np.float32).astype(np.float64)
    v[:4, 45:] = np.nan  # conditions of a dataset measuring fewer genes
    return v


def test_registry_lists_the_methods() -> None:
    table = list_methods()
    assert list(table["name"]) == ["cosine", "spearman", "ks", "wtcs", "xsum"]
    assert set(table.columns) >= {"query_kind", "needs_ranks", "description"}
    for method in METHODS.values():
        assert isinstance(method, SearchMethod)
    assert get_method("wtcs") is METHODS["wtcs"]
    with pytest.raises(KeyError, match=r"unknown search method 'nope'.*cosine"):
        get_method("nope")


def test_ks_and_wtcs_equal_the_running_sum_walk(values: np.ndarray) -> None:
    block = _block(values)
    queries = [
        _sets("both", [1, 4, 7, 50, 52], [10, 11, 12, 55]),
        _sets("up", [2, 3, 5], []),
        _sets("down", [], [20, 21, 22, 23]),
    ]
    ks = get_method("ks").score(queries, block)
    wt = get_method("wtcs").score(queries, block)
    assert ks.shape == wt.shape == (3, 15)
    for i, row in enumerate(values):
        up = _naive_es(row, np.array([1, 4, 7, 50, 52]), 1.0)
        down = _naive_es(row, np.array([10, 11, 12, 55]), 1.0)
        assert ks[0, i] == pytest.approx((up - down) / 2, abs=1e-5)
        assert wt[0, i] == pytest.approx(
            (up - down) / 2 if np.sign(up) != np.sign(down) else 0.0, abs=1e-5
        )
        assert (
            ks[1, i]
            == wt[1, i]
            == pytest.approx(_naive_es(row, np.array([2, 3, 5]), 1.0), abs=1e-5)
        )
        minus_down = -_naive_es(row, np.array([20, 21, 22, 23]), 1.0)
        assert ks[2, i] == wt[2, i] == pytest.approx(minus_down, abs=1e-5)


def test_classic_ks_weight(values: np.ndarray) -> None:
    got = replace(KS, weight=0.0).score([_sets("q", [1, 2, 3, 30], [])], _block(values))[0]
    for i, row in enumerate(values):
        assert got[i] == pytest.approx(_naive_es(row, np.array([1, 2, 3, 30]), 0.0), abs=1e-5)
    assert replace(WTCS, weight=0.0).name == "wtcs"


def test_a_block_of_a_subset_of_columns_gives_the_same_scores(values: np.ndarray) -> None:
    full = _block(values)
    cols = np.array([1, 4, 7, 10, 11, 50])
    sub = Block(
        rows=full.rows,
        cols=cols,
        values=full.values[:, cols],
        ranks=full.ranks[:, cols] if full.ranks is not None else None,
        n_measured=full.n_measured,
    )
    q = [_sets("q", [1, 4, 7, 50], [10, 11])]
    for name in ("ks", "wtcs", "xsum"):
        np.testing.assert_array_equal(
            get_method(name).score(q, sub), get_method(name).score(q, full)
        )


def test_signature_methods_score_planted_similarity(values: np.ndarray) -> None:
    cols = np.arange(60)
    target = np.nan_to_num(values[7])
    queries = [_signature("same", cols, target), _signature("opposite", cols, -target)]
    for name in ("cosine", "spearman"):
        got = get_method(name).score(queries, _block(values))
        assert got.shape == (2, 15)
        assert got[0, 7] == pytest.approx(1.0, abs=1e-6)
        assert got[1, 7] == pytest.approx(-1.0, abs=1e-6)
        assert np.argmax(got[0]) == 7
    no_ranks = get_method("spearman").score(queries, _block(values, with_ranks=False))
    np.testing.assert_allclose(
        no_ranks, get_method("spearman").score(queries, _block(values)), atol=1e-6
    )


def test_kinds_and_missing_ranks_are_clear_errors(values: np.ndarray) -> None:
    block = _block(values)
    sig = _signature("s", np.arange(5), np.arange(5.0))
    sets = _sets("q", [1, 2], [3])
    with pytest.raises(ValueError, match=r"'wtcs' scores sets queries.*'s'"):
        get_method("wtcs").score([sig], block)
    with pytest.raises(ValueError, match="'cosine' scores signature queries"):
        get_method("cosine").score([sets], block)
    with pytest.raises(ValueError, match="needs the conditions' ranks"):
        get_method("ks").score([sets], _block(values, with_ranks=False))


@pytest.mark.parametrize("name", ["cosine", "spearman", "ks", "wtcs", "xsum"])
def test_a_column_missing_from_a_block_is_a_gene_not_measured(
    values: np.ndarray, name: str
) -> None:
    """An index block holds only the columns its dataset measures: a query gene outside
    it scores as the same gene present with NaN (and rank 0) would."""
    block = _block(values)
    assert block.ranks is not None
    keep = np.array([1, 2, 5, 6, 7])
    narrow = Block(
        rows=block.rows,
        cols=block.cols[keep],
        values=block.values[:, keep],
        ranks=block.ranks[:, keep],
        n_measured=block.n_measured,
    )
    gone = np.setdiff1d(np.arange(len(block.cols)), keep)
    padded_values = block.values.copy()
    padded_values[:, gone] = np.nan
    padded_ranks = block.ranks.copy()
    padded_ranks[:, gone] = 0
    padded = Block(
        rows=block.rows,
        cols=block.cols,
        values=padded_values,
        ranks=padded_ranks,
        n_measured=block.n_measured,
    )
    if name in ("cosine", "spearman"):
        queries = [_signature("s", np.arange(8), np.linspace(-2.0, 3.0, 8))]
    else:
        queries = [_sets("q", [1, 3, 5], [2, 4, 7])]
    method = get_method(name)
    # float32 sums over fewer columns: equal to float32 precision
    np.testing.assert_allclose(
        method.score(queries, narrow), method.score(queries, padded), rtol=1e-5, atol=1e-7
    )


def test_block_checks_its_shapes() -> None:
    ok: dict[str, Any] = dict(
        rows=np.arange(2),
        cols=np.array([0, 3]),
        values=np.zeros((2, 2), np.float32),
        ranks=None,
        n_measured=np.array([2, 2], np.int32),
    )
    Block(**ok)
    with pytest.raises(ValueError, match="values have shape"):
        Block(**{**ok, "values": np.zeros((2, 3), np.float32)})
    with pytest.raises(ValueError, match="sorted ascending"):
        Block(**{**ok, "cols": np.array([3, 0])})
    with pytest.raises(ValueError, match="n_measured"):
        Block(**{**ok, "n_measured": np.array([2])})


@pytest.mark.parametrize("name", sorted(METHODS))
def test_score_block_in_threads_equals_one_call(name: str) -> None:
    rng = np.random.default_rng(31)
    values = rng.normal(size=(3000, 30))
    values[:700, 20:] = np.nan
    block = _block(values)
    if METHODS[name].query_kind == "sets":
        queries = [_sets("a", [1, 2, 3, 25], [7, 8]), _sets("b", [4, 5], [])]
    else:
        queries = [_signature("s", np.arange(30), rng.normal(size=30))]
    one = get_method(name).score(queries, block)
    np.testing.assert_array_equal(score_block(get_method(name), queries, block, n_jobs=3), one)
    np.testing.assert_array_equal(score_block(get_method(name), queries, block, n_jobs=-1), one)
    with pytest.raises(ValueError, match="n_jobs"):
        score_block(get_method(name), queries, block, n_jobs=0)
    # several blocks: each one's scores, in order, the next read while one is scored
    parts = [replace(block, rows=block.rows[a:b], values=block.values[a:b],
                     ranks=None if block.ranks is None else block.ranks[a:b],
                     n_measured=block.n_measured[a:b])
             for a, b in ((0, 2500), (2500, 2600), (2600, 3000))]  # fmt: skip
    for n_jobs in (1, 2):
        got = list(score_blocks(get_method(name), queries, iter(parts), n_jobs=n_jobs))
        assert [b.n_rows for b, _ in got] == [2500, 100, 400]
        # (float32 matrix products of other sizes may round differently)
        np.testing.assert_allclose(np.concatenate([s for _, s in got], axis=1), one, atol=1e-6)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_gene_major_block_and_its_stored_norms_give_the_same_scores(
    values: np.ndarray, name: str
) -> None:
    """An index block is gene-major with int16 ranks, and says whether it holds every
    measured gene (``complete``: cosine then uses the stored norms): the scores are
    those of a row-major block without these."""
    block = _block(values)
    assert block.ranks is not None
    norms = np.sqrt(np.nansum(values.astype(np.float32).astype(np.float64) ** 2, axis=1))
    gene_major = replace(
        block,
        values=np.ascontiguousarray(block.values.T).T,
        ranks=np.ascontiguousarray(block.ranks.T.astype(np.int16)).T,
        norms=norms,
        complete=True,
    )
    if METHODS[name].query_kind == "sets":
        queries = [_sets("a", [1, 4, 7, 50], [10, 11, 55]), _sets("b", [2, 3], [])]
    else:  # all the columns (the stored norms), and some (NaN off the query)
        rng = np.random.default_rng(4)
        queries = [
            _signature("all", np.arange(60), rng.normal(size=60)),
            _signature("some", np.arange(0, 60, 2), rng.normal(size=30)),
        ]
    want = get_method(name).score(queries, block)
    np.testing.assert_allclose(get_method(name).score(queries, gene_major), want, atol=1e-6)
    # rows 4.. measure every column, rows 0-3 not: both paths in one block
    assert (block.n_measured[:4] < 60).all() and (block.n_measured[4:] == 60).all()
    one_query = get_method(name).score(queries[:1], gene_major)
    np.testing.assert_allclose(one_query, want[:1], atol=1e-6)

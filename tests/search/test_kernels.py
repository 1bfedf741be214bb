"""Search kernels against independent implementations (gseapy, scipy) and hand-made cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from perturbridge.search import kernels
from perturbridge.search.index import rank_descending
from perturbridge.search.kernels import (
    cosine,
    cosine_measured,
    ks_enrichment,
    ks_enrichment_of_values,
    rank_rows,
    spearman,
    wtcs,
    xsum,
)

gseapy = pytest.importorskip("gseapy", reason="gseapy (the dev extra) is the KS oracle")


def _gseapy_es(values: np.ndarray, members: np.ndarray, weight: float) -> float:
    """gseapy 1.3.1 prerank's ES of the set ``members`` (indices) in ``values``."""
    names = np.array([f"G{i}" for i in range(len(values))])
    rnk = pd.Series(values, index=names).sort_values(ascending=False)
    res = gseapy.prerank(
        rnk=rnk,
        gene_sets={"s": list(names[members])},
        permutation_num=0,
        min_size=1,
        max_size=100_000,
        outdir=None,
        weight=weight,
        threads=1,
        seed=0,
        verbose=False,
    )
    return float(res.res2d["ES"].iloc[0])


def _positions(values: np.ndarray) -> np.ndarray:
    """1-based position of each gene in the ranking by value, descending."""
    pos = np.empty(len(values), dtype=np.int64)
    pos[np.argsort(-values, kind="stable")] = np.arange(1, len(values) + 1)
    return pos


@pytest.mark.parametrize("weight", [0.0, 1.0, 1.5])
def test_ks_equals_gseapy_prerank_on_random_cases(weight: float) -> None:
    rng = np.random.default_rng(7)
    for _ in range(12):
        n = int(rng.integers(15, 400))
        values = rng.normal(size=n) * rng.gamma(1.0, size=n)
        k = int(rng.integers(1, min(60, n - 1)))
        members = rng.choice(n, size=k, replace=False)
        ours = ks_enrichment(
            _positions(values)[members][None, :],
            (np.abs(values[members]) ** weight)[None, :],
            np.array([n]),
        )[0]
        expected = _gseapy_es(values, members, weight)
        assert ours == pytest.approx(expected, abs=1e-6)
        # the kernel that sorts the values themselves (weights = |value| ** weight)
        of_values = ks_enrichment_of_values(
            values[members][None, :], _positions(values)[members][None, :], np.array([n]),
            weight=weight,
        )[0]  # fmt: skip
        assert of_values == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("values", "members", "expected"),
    [
        # classic KS (weight 0), 5 genes, set on top: steps +1/2, +1/2 → 1
        ([5.0, 4.0, 3.0, 2.0, 1.0], [0, 1], 1.0),
        # set at the bottom: misses −1/3 three times before the hits → −1
        ([5.0, 4.0, 3.0, 2.0, 1.0], [3, 4], -1.0),
    ],
)
def test_ks_hand_made_classic(values: list[float], members: list[int], expected: float) -> None:
    v, m = np.array(values), np.array(members)
    ranks = _positions(v)[m][None, :]
    assert ks_enrichment(ranks, np.ones((1, len(m))), np.array([len(v)]))[0] == expected
    assert _gseapy_es(v, m, 0.0) == pytest.approx(expected)


def test_ks_hand_made_weighted() -> None:
    # ranking 3, 2, 1, -1; set = genes at positions 1 (|3|) and 3 (|1|); NR = 4, 2 misses:
    # running sum 0.75, 0.25, 0.5, 0 → ES 0.75
    v = np.array([3.0, 2.0, 1.0, -1.0])
    es = ks_enrichment(np.array([[1, 3]]), np.array([[3.0, 1.0]]), np.array([4]))[0]
    assert es == pytest.approx(0.75)
    assert _gseapy_es(v, np.array([0, 2]), 1.0) == pytest.approx(0.75)


def test_ks_many_rows_at_once_equal_one_by_one_and_ignore_unmeasured() -> None:
    rng = np.random.default_rng(3)
    n_rows, k = 40, 25
    n_genes = rng.integers(30, 120, size=n_rows)
    ranks = np.zeros((n_rows, k), dtype=np.int32)
    for i in range(n_rows):
        ranks[i] = rng.choice(np.arange(1, n_genes[i] + 1), size=k, replace=False)
    ranks[rng.random((n_rows, k)) < 0.3] = 0  # not measured
    weights = rng.random((n_rows, k))
    together = ks_enrichment(ranks, weights, n_genes)
    for i in range(n_rows):
        keep = ranks[i] > 0
        alone = ks_enrichment(ranks[i, keep][None, :], weights[i, keep][None, :], n_genes[[i]])
        assert together[i] == pytest.approx(alone[0], abs=1e-12)
    # float32 weights (a store's values) agree within float32 precision
    f32 = ks_enrichment(ranks, weights.astype(np.float32), n_genes)
    np.testing.assert_allclose(f32, together, atol=1e-5)


@pytest.mark.parametrize("weight", [0.0, 1.0, 1.5])
def test_ks_of_values_equals_ks_enrichment(weight: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sorting values and ranks apart gives ks_enrichment's scores: bit for bit on
    float32 values (the same operations), ties, unmeasured genes, any rank dtype and
    memory order (a gene-major block is read as it is), in parts of a few rows."""
    monkeypatch.setattr(kernels, "_KS_VALUES_CACHE", 2000)
    rng = np.random.default_rng(17)
    for trial in range(12):
        n_rows, n_genes = int(rng.integers(1, 200)), int(rng.integers(3, 150))
        x = rng.normal(size=(n_rows, n_genes)).astype(np.float32)
        if trial % 3 == 0:
            x = (np.round(x * 2) / 2).astype(np.float32)  # ties (and zeros of both signs)
        if trial % 4 == 1:
            x[rng.random(x.shape) < 0.2] = np.nan  # unmeasured
        ranks, n = rank_descending(x), (~np.isnan(x)).sum(axis=1)
        cols = np.sort(rng.choice(n_genes, int(rng.integers(1, n_genes + 1)), replace=False))
        hv, hr = x[:, cols], ranks[:, cols]
        weights = np.ones(hv.shape, np.float32) if weight == 0 else np.abs(hv) ** np.float32(weight)
        want = ks_enrichment(hr, weights, n)
        for dtype in (np.int16, np.int32, np.int64):
            gene_major = ks_enrichment_of_values(
                np.ascontiguousarray(hv.T).T, np.ascontiguousarray(hr.T.astype(dtype)).T, n,
                weight=weight,
            )  # fmt: skip
            np.testing.assert_array_equal(gene_major, want)
        w64 = np.ones(hv.shape) if weight == 0 else np.abs(hv.astype(np.float64)) ** weight
        np.testing.assert_allclose(
            ks_enrichment_of_values(hv.astype(np.float64), hr, n, weight=weight),
            ks_enrichment(hr, w64, n),
            atol=1e-12,
        )


def test_ks_of_values_checks_its_input() -> None:
    with pytest.raises(ValueError, match="equal 2-D shapes"):
        ks_enrichment_of_values(np.ones((1, 2)), np.array([[1, 2, 3]]), np.array([5]))
    with pytest.raises(TypeError, match="integers"):
        ks_enrichment_of_values(np.ones((1, 1)), np.array([[1.0]]), np.array([5]))
    with pytest.raises(ValueError, match=r"0\.\.n_genes"):
        ks_enrichment_of_values(np.ones((1, 1)), np.array([[6]]), np.array([5]))
    with pytest.raises(ValueError, match="n_genes has shape"):
        ks_enrichment_of_values(np.ones((1, 1)), np.array([[1]]), np.array([5, 5]))
    assert ks_enrichment_of_values(
        np.ones((2, 0)), np.ones((2, 0), int), np.array([3, 3])
    ).shape == (2,)


def test_ks_undefined_rows_are_nan() -> None:
    ranks = np.array([[0, 0], [1, 2], [1, 2]])
    weights = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    es = ks_enrichment(ranks, weights, np.array([5, 2, 5]))
    assert np.isnan(es).all()  # no measured set gene; every gene a set gene; zero weight


def test_ks_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"0\.\.n_genes"):
        ks_enrichment(np.array([[6]]), np.ones((1, 1)), np.array([5]))
    with pytest.raises(ValueError, match="must match"):
        ks_enrichment(np.array([[1, 2]]), np.ones((1, 3)), np.array([5]))
    with pytest.raises(TypeError, match="integers"):
        ks_enrichment(np.array([[1.0]]), np.ones((1, 1)), np.array([5]))


def test_wtcs_sign_rule() -> None:
    up = np.array([0.6, 0.6, -0.4, -0.4, 0.5, np.nan, 0.3])
    down = np.array([-0.2, 0.2, 0.4, -0.1, 0.0, 0.1, np.nan])
    expected = np.array([0.4, 0.0, -0.4, 0.0, 0.25, np.nan, np.nan])
    np.testing.assert_allclose(wtcs(up, down), expected)


def _masked(rng: np.random.Generator, shape: tuple[int, int], frac: float) -> np.ndarray:
    x = rng.normal(size=shape)
    x[rng.random(shape) < frac] = np.nan
    return x


def test_cosine_equals_the_definition_on_shared_genes() -> None:
    rng = np.random.default_rng(11)
    block = _masked(rng, (30, 40), 0.25).astype(np.float32)
    block[:8, 10:30] = np.nan  # a second pattern of measured genes
    queries = _masked(rng, (3, 40), 0.1)
    got = cosine(queries, block)
    assert got.shape == (3, 30)
    for qi, q in enumerate(queries):
        for i, row in enumerate(block.astype(np.float64)):
            m = ~np.isnan(row) & ~np.isnan(q)
            expected = 1 - distance.cosine(row[m], q[m])
            assert got[qi, i] == pytest.approx(expected, abs=1e-5)
    assert cosine(queries[0], block).shape == (30,)


@pytest.mark.parametrize("n_queries", [1, 3, 7])
def test_cosine_measured_equals_the_definition(n_queries: int) -> None:
    rng = np.random.default_rng(19)
    block = rng.normal(size=(40, 25)).astype(np.float32)
    block[5] = 0  # norm 0: NaN
    queries = rng.normal(size=(n_queries, 25))
    norms = np.sqrt((block.astype(np.float64) ** 2).sum(axis=1))
    for layout in (block, np.asfortranarray(block)):
        got = cosine_measured(queries, layout, norms)
        assert got.shape == (n_queries, 40)
        assert np.isnan(got[:, 5]).all()
        for qi, q in enumerate(queries):
            for i in (0, 1, 17, 39):
                expected = 1 - distance.cosine(block[i].astype(np.float64), q)
                assert got[qi, i] == pytest.approx(expected, abs=1e-6)
        np.testing.assert_allclose(got, cosine(queries, block), atol=1e-6)
    assert cosine_measured(queries[0], block, norms).shape == (40,)
    with pytest.raises(ValueError, match="norms has shape"):
        cosine_measured(queries, block, norms[:3])


def test_cosine_without_shared_genes_is_nan() -> None:
    block = np.array([[1.0, np.nan], [0.0, 0.0]])
    assert np.isnan(cosine(np.array([np.nan, 1.0]), block)).all()


def test_spearman_equals_scipy_on_shared_genes() -> None:
    rng = np.random.default_rng(12)
    block = _masked(rng, (25, 30), 0.2)
    block[:6, :12] = np.nan
    block[6, :] = np.round(block[6, :])  # ties: average ranks, as scipy
    queries = _masked(rng, (2, 30), 0.1)
    queries[1] = np.round(queries[1] * 2) / 2
    got = spearman(queries, block)
    for qi, q in enumerate(queries):
        for i, row in enumerate(block):
            m = ~np.isnan(row) & ~np.isnan(q)
            expected = stats.spearmanr(row[m], q[m]).statistic
            assert got[qi, i] == pytest.approx(expected, abs=1e-9)


def test_spearman_with_stored_ranks_equals_ranking_afresh() -> None:
    rng = np.random.default_rng(13)
    block = rng.normal(size=(20, 25)).astype(np.float32)
    block[:5, 20:] = np.nan
    n_measured = (~np.isnan(block)).sum(axis=1)
    ranks = np.zeros(block.shape, dtype=np.int32)
    for i, row in enumerate(block):
        m = ~np.isnan(row)
        ranks[i, m] = _positions(row[m].astype(np.float64))
    query = rng.normal(size=25)
    fast = spearman(query, block, ranks=ranks, n_measured=n_measured)
    np.testing.assert_allclose(fast, spearman(query, block), atol=1e-6)
    query[3] = np.nan  # rows then have measured genes outside the query: ranked afresh
    np.testing.assert_allclose(
        spearman(query, block, ranks=ranks, n_measured=n_measured),
        spearman(query, block),
        atol=1e-6,
    )


def test_spearman_needs_three_shared_genes() -> None:
    block = np.array([[1.0, 2.0, np.nan, np.nan], [1.0, 2.0, 3.0, 4.0]])
    got = spearman(np.array([1.0, 2.0, 3.0, 4.0]), block)
    assert np.isnan(got[0])
    assert got[1] == pytest.approx(1.0)


def test_rank_rows_equals_scipy_rankdata() -> None:
    rng = np.random.default_rng(14)
    x = rng.integers(0, 5, size=(10, 12)).astype(np.float64)
    np.testing.assert_array_equal(rank_rows(x), stats.rankdata(x, axis=1))


def test_xsum_equals_a_loop_over_conditions() -> None:
    rng = np.random.default_rng(15)
    n_rows, n_cols, n_ext = 12, 40, 5
    values = rng.normal(size=(n_rows, n_cols)).astype(np.float32)
    values[:3, 30:] = np.nan
    ranks = np.zeros(values.shape, dtype=np.int32)
    n_measured = (~np.isnan(values)).sum(axis=1)
    for i, row in enumerate(values):
        m = ~np.isnan(row)
        ranks[i, m] = _positions(row[m].astype(np.float64))
    up, down = np.array([0, 5, 9, 33]), np.array([1, 2, 31])
    got = xsum(values, ranks, n_measured, up=up, down=down, n_extreme=n_ext)
    for i in range(n_rows):
        row = values[i].astype(np.float64)
        m = np.flatnonzero(~np.isnan(row))
        order = m[np.argsort(-row[m])]
        changed = set(order[:n_ext]) | set(order[-n_ext:])
        expected = sum(row[g] for g in up if g in changed) - sum(
            row[g] for g in down if g in changed
        )
        assert got[i] == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError, match="n_extreme"):
        xsum(values, ranks, n_measured, up=up, down=down, n_extreme=0)


def test_correlations_in_pieces_equal_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(16)
    block = _masked(rng, (50, 20), 0.1)
    query = rng.normal(size=20)
    ranks = np.zeros(block.shape, dtype=np.int32)
    for i, row in enumerate(block):
        m = ~np.isnan(row)
        ranks[i, m] = _positions(row[m])
    n_measured = (~np.isnan(block)).sum(axis=1)
    whole_cos = cosine(query, block)
    whole_sp = spearman(query, block, ranks=ranks, n_measured=n_measured)
    monkeypatch.setattr(kernels, "_CHUNK", 45)  # a few rows at a time
    np.testing.assert_allclose(cosine(query, block), whole_cos)
    np.testing.assert_allclose(spearman(query, block, ranks=ranks, n_measured=n_measured), whole_sp)


def test_ks_rows_in_cache_sized_parts_equal_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """The KS kernel works on a few thousand rows at a time: the parts (here 7 rows, the
    last one shorter) give exactly the scores of one pass over every row."""
    import perturbridge.search.kernels as kernels

    rng = np.random.default_rng(11)
    n_rows, k, n_genes = 100, 16, 300
    ranks = np.stack([rng.permutation(n_genes)[:k] + 1 for _ in range(n_rows)]).astype(np.int32)
    ranks[rng.random(ranks.shape) < 0.1] = 0  # some set genes not measured
    weights = rng.normal(size=(n_rows, k)).astype(np.float32)
    n = np.full(n_rows, n_genes)
    one_pass = ks_enrichment(ranks, weights, n)
    monkeypatch.setattr(kernels, "_KS_CACHE", 7 * k)
    np.testing.assert_array_equal(ks_enrichment(ranks, weights, n), one_pass)

"""Tests of perturbridge.pseudobulk against a naive dense groupby-sum reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import perturbridge.pseudobulk as pb
import perturbridge.pseudobulk.kernels as kernels
import perturbridge.pseudobulk.ledger as pb_ledger
import perturbridge.pseudobulk.readers as readers
from perturbridge.pseudobulk import PSEUDOBULK_REASONS, STAGE, PseudobulkOptions, pseudobulk

KEYS = ["plate", "well", "cell_line", "condition"]


def make_cells(
    seed: int = 0,
    *,
    n_cells: int = 400,
    n_genes: int = 30,
    density: float = 0.25,
    dtype: type = np.float32,
) -> ad.AnnData:
    """Seeded random sparse counts with screen metadata; gene 0 is MALAT1.

    Cells are in random order, so every group is split across chunks.
    """
    rng = np.random.default_rng(seed)
    x = sparse.random(
        n_cells,
        n_genes,
        density=density,
        format="csr",
        random_state=rng,
        data_rvs=lambda k: rng.integers(1, 20, k),
    ).astype(dtype)
    wells = np.array(["A01", "A02", "B01"])
    obs = pd.DataFrame(
        {
            "plate": pd.Categorical(rng.choice(["P2", "P1"], n_cells), categories=["P2", "P1"]),
            "well": rng.choice(wells, n_cells),  # plain strings, not categorical
            "cell_line": pd.Categorical(rng.choice(["HEK293", "A549", "MCF7"], n_cells)),
            "condition": rng.choice(["DMSO", "drugA"], n_cells),
            "other": rng.normal(size=n_cells),
        },
        index=[f"cell{i}" for i in range(n_cells)],
    )
    var = pd.DataFrame(
        {"symbol": ["MALAT1"] + [f"G{i}" for i in range(1, n_genes)]},
        index=[f"ENSG{i:05d}" for i in range(n_genes)],
    )
    return ad.AnnData(X=x, obs=obs, var=var)


def naive_sums(
    adata: ad.AnnData, keep: np.ndarray | None = None, *, groupby: list[str] = KEYS
) -> pd.DataFrame:
    """Dense groupby-sum reference, indexed by the key tuple."""
    x = adata.X.toarray() if sparse.issparse(adata.X) else np.asarray(adata.X)
    df = pd.DataFrame(x.astype(np.float64), index=adata.obs_names)
    keys = adata.obs[groupby].astype(str)
    if keep is not None:
        df, keys = df[keep], keys[keep]
    return df.groupby([keys[c] for c in groupby]).sum()


def result_frame(res: pb.PseudobulkResult, *, groupby: list[str] = KEYS) -> pd.DataFrame:
    counts = res.counts
    x = counts.X.toarray()
    index = pd.MultiIndex.from_frame(counts.obs[groupby].astype(str))
    return pd.DataFrame(x, index=index)


def assert_same_sums(res: pb.PseudobulkResult, ref: pd.DataFrame) -> None:
    got = result_frame(res)
    assert sorted(got.index) == sorted(ref.index)
    np.testing.assert_array_equal(got.loc[ref.index].to_numpy(), ref.to_numpy())


def write_h5ad(adata: ad.AnnData, path: Path) -> Path:
    adata.write_h5ad(path)
    return path


# --------------------------------------------------------------------------- sums


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1000])
def test_sums_equal_naive_reference_in_memory(chunk_size: int) -> None:
    cells = make_cells(1)
    res = pseudobulk(cells, groupby=KEYS, chunk_size=chunk_size)
    assert_same_sums(res, naive_sums(cells))
    x = res.counts.X
    assert sparse.issparse(x) and x.format == "csr" and x.dtype == np.float64
    obs = res.counts.obs
    sizes = cells.obs.groupby([cells.obs[c].astype(str) for c in KEYS]).size()
    got_sizes = obs.set_index([obs[c].astype(str) for c in KEYS])["n_cells"]
    assert got_sizes.sort_index().tolist() == sizes.sort_index().tolist()
    np.testing.assert_allclose(obs["total_counts"], np.asarray(x.sum(axis=1)).ravel())
    assert obs["n_cells"].dtype == np.int64
    assert obs["total_counts"].dtype == np.float64


@pytest.mark.parametrize("chunk_size", [1, 13, 100, 5000])
def test_sums_equal_naive_reference_from_path(tmp_path: Path, chunk_size: int) -> None:
    cells = make_cells(2)
    path = write_h5ad(cells, tmp_path / "cells.h5ad")
    res = pseudobulk(path, groupby=KEYS, chunk_size=chunk_size)
    assert_same_sums(res, naive_sums(cells))
    res_str = pseudobulk(str(path), groupby=KEYS, chunk_size=chunk_size)
    assert (res_str.counts.X != res.counts.X).nnz == 0
    assert res.counts.uns["perturbridge"]["params"]["input"] == str(path)


def test_backed_anndata_object(tmp_path: Path) -> None:
    cells = make_cells(3)
    path = write_h5ad(cells, tmp_path / "cells.h5ad")
    backed = ad.read_h5ad(path, backed="r")
    try:
        res = pseudobulk(backed, groupby=KEYS, chunk_size=50)
    finally:
        backed.file.close()
    assert_same_sums(res, naive_sums(cells))


@pytest.mark.parametrize("kind", ["dense", "csc", "int64", "float64", "csr_array"])
def test_matrix_types_in_memory(kind: str) -> None:
    cells = make_cells(4)
    ref = naive_sums(cells)
    if kind == "dense":
        cells.X = cells.X.toarray()
    elif kind == "csc":
        cells.X = cells.X.tocsc()
    elif kind == "int64":
        cells.X = cells.X.astype(np.int64)
    elif kind == "float64":
        cells.X = cells.X.astype(np.float64)
    else:
        cells.X = sparse.csr_array(cells.X)
    res = pseudobulk(cells, groupby=KEYS, chunk_size=33)
    assert_same_sums(res, ref)
    assert res.counts.X.dtype == np.float64


def test_dense_matrix_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cells = make_cells(5)
    ref = naive_sums(cells)
    cells.X = cells.X.toarray()
    path = write_h5ad(cells, tmp_path / "dense.h5ad")
    monkeypatch.setattr(readers, "_DENSE_READ_VALUES", 100)  # several reads per chunk
    res = pseudobulk(path, groupby=KEYS, chunk_size=64)
    assert_same_sums(res, ref)


def test_layer_is_summed_instead_of_x(tmp_path: Path) -> None:
    cells = make_cells(6)
    ref = naive_sums(cells)
    cells.layers["counts"] = cells.X.copy()
    cells.X = cells.X * 0.5  # e.g. normalized values
    assert_same_sums(pseudobulk(cells, groupby=KEYS, layer="counts"), ref)
    path = write_h5ad(cells, tmp_path / "layer.h5ad")
    assert_same_sums(pseudobulk(path, groupby=KEYS, layer="counts", chunk_size=50), ref)


def test_sparse_accumulator_matches_dense(monkeypatch: pytest.MonkeyPatch) -> None:
    cells = make_cells(7)
    cells.obs.loc[cells.obs_names[:3], "condition"] = None
    kwargs: dict[str, Any] = {
        "options": PseudobulkOptions(min_counts=30, min_cells=12, fraction_expressing=True),
        "chunk_size": 40,
    }
    dense = pseudobulk(cells, groupby=KEYS, **kwargs)
    monkeypatch.setattr(kernels, "_DENSE_LIMIT_BYTES", 0)
    monkeypatch.setattr(kernels, "_BLOCK_NNZ", 50)  # many partial sums to merge
    sparse_ = pseudobulk(cells, groupby=KEYS, **kwargs)
    kept = ledger_of(sparse_)["status"].to_numpy() == "kept"
    assert 0 < kept.sum() < cells.n_obs
    assert_same_sums(sparse_, naive_sums(cells, kept))
    assert (sparse_.counts.X != dense.counts.X).nnz == 0
    pd.testing.assert_frame_equal(sparse_.counts.obs, dense.counts.obs)
    pd.testing.assert_frame_equal(sparse_.ledger.to_frame(), dense.ledger.to_frame())
    diff = sparse_.counts.layers["frac_expressing"] - dense.counts.layers["frac_expressing"]
    assert abs(diff).max() == 0


def test_public_scipy_fallback_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    cells = make_cells(8)
    monkeypatch.setattr(kernels, "_compiled_scatter", lambda: None)
    res = pseudobulk(
        cells, groupby=KEYS, chunk_size=25, options=PseudobulkOptions(fraction_expressing=True)
    )
    assert_same_sums(res, naive_sums(cells))


def test_compiled_scatter_adds_in_place() -> None:
    kernel = kernels._compiled_scatter()
    if kernel is None:
        pytest.skip("this SciPy has no compiled coo_todense; the fallback is tested")
    out = np.ones((2, 3))
    rows = np.array([1, 1, 0], np.int32)
    kernels._scatter_add(out, rows, np.array([2, 2, 0], np.int32), np.array([1.0, 2.0, 4.0]))
    assert out.tolist() == [[5.0, 1.0, 1.0], [1.0, 1.0, 4.0]]


def test_numpy_row_gather_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    cells = make_cells(11)
    monkeypatch.setattr(kernels, "_compiled_row_gather", lambda: None)
    res = pseudobulk(
        cells, groupby=KEYS, chunk_size=25, options=PseudobulkOptions(fraction_expressing=True)
    )
    assert_same_sums(res, naive_sums(cells))


@pytest.mark.parametrize("n_jobs", [1, 2, 3])
def test_threads_give_identical_sums(n_jobs: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Non-integer values: the order of additions shows in the last bits.
    cells = make_cells(12)
    cells.X = cells.X * np.float32(1.1)
    monkeypatch.setattr(kernels, "_BLOCK_NNZ", 7)  # many sub-blocks per thread
    one = pseudobulk(
        cells,
        groupby=KEYS,
        chunk_size=40,
        n_jobs=1,
        options=PseudobulkOptions(fraction_expressing=True),
    )
    res = pseudobulk(
        cells,
        groupby=KEYS,
        chunk_size=40,
        n_jobs=n_jobs,
        options=PseudobulkOptions(fraction_expressing=True),
    )
    assert (res.counts.X != one.counts.X).nnz == 0
    ref = naive_sums(cells)
    np.testing.assert_allclose(result_frame(res).loc[ref.index].to_numpy(), ref, rtol=1e-12)


def test_split_sorted_cuts_only_between_groups() -> None:
    rows = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    lens = np.ones(10, dtype=np.int64)
    for n in (1, 2, 3, 4, 8):
        bounds = kernels._split_sorted(rows, lens, n)
        assert bounds[0][0] == 0
        assert bounds[-1][1] == len(rows)
        assert all(a < b for a, b in bounds)
        assert all(bounds[i][1] == bounds[i + 1][0] for i in range(len(bounds) - 1))
        assert all(rows[b - 1] != rows[b] for _, b in bounds[:-1])
        assert len(bounds) <= n
    assert len(kernels._split_sorted(rows, lens, 2)) == 2


def test_small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    cells = make_cells(9)
    monkeypatch.setattr(kernels, "_BLOCK_NNZ", 3)
    assert_same_sums(pseudobulk(cells, groupby=KEYS, chunk_size=17), naive_sums(cells))


def test_groups_typed_and_ordered() -> None:
    cells = make_cells(10)
    cells.obs["plate_no"] = np.where(cells.obs["plate"] == "P1", 1, 2)
    res = pseudobulk(cells, groupby=["plate", "plate_no", "cell_line"])
    obs = res.counts.obs
    assert list(obs.columns[:3]) == ["plate", "plate_no", "cell_line"]
    for col in ("plate", "plate_no", "cell_line"):
        assert isinstance(obs[col].dtype, pd.CategoricalDtype)
    assert obs["plate_no"].cat.categories.dtype.kind == "i"  # numbers stay numbers
    # The input's category order (P2 before P1) orders the groups.
    assert list(obs["plate"].cat.categories) == ["P2", "P1"]
    assert obs["plate"].iloc[0] == "P2"
    assert obs.index[0] == f"P2_2_{obs['cell_line'].iloc[0]}"
    assert obs.index.is_unique


def test_display_ids_stay_unique_when_joined_keys_collide() -> None:
    x = sparse.csr_matrix(np.ones((2, 2), dtype=np.float32))
    obs = pd.DataFrame({"a": ["x_y", "x"], "b": ["z", "y_z"]}, index=["c0", "c1"])
    res = pseudobulk(ad.AnnData(x, obs=obs), groupby=["a", "b"])
    assert res.counts.n_obs == 2
    assert res.counts.obs_names.is_unique
    assert set(res.ledger.to_frame()["detail"]) == set(res.counts.obs_names)


def test_single_groupby_string() -> None:
    cells = make_cells(11)
    res = pseudobulk(cells, groupby="cell_line")
    assert_same_sums_one = naive_sums(cells, groupby=["cell_line"])
    got = result_frame(res, groupby=["cell_line"])
    np.testing.assert_array_equal(
        got.loc[assert_same_sums_one.index].to_numpy(), assert_same_sums_one.to_numpy()
    )


def test_input_is_not_modified() -> None:
    cells = make_cells(12)
    before_x, before_obs = cells.X.copy(), cells.obs.copy()
    pseudobulk(
        cells, groupby=KEYS, options=PseudobulkOptions(min_counts=30, fraction_expressing=True)
    )
    assert (before_x != cells.X).nnz == 0
    pd.testing.assert_frame_equal(cells.obs, before_obs)


# --------------------------------------------------------------------------- ledger


def ledger_of(res: pb.PseudobulkResult) -> pd.DataFrame:
    return res.ledger.to_frame().set_index("id")


def test_every_cell_in_ledger_exactly_once() -> None:
    cells = make_cells(13)
    cells.obs.loc[cells.obs_names[:5], "well"] = None
    res = pseudobulk(
        cells,
        groupby=KEYS,
        chunk_size=37,
        options=PseudobulkOptions(
            min_counts=40,
            min_genes=5,
            quality_gene="MALAT1",
            quality_min_fraction=0.05,
            min_cells=8,
        ),
    )
    led = res.ledger
    assert len(led) == cells.n_obs
    led.check_accounts_for(cells.obs_names, stage=STAGE)
    frame = led.to_frame()
    assert frame["id"].tolist() == cells.obs_names.tolist()  # input order
    assert set(frame["reason"]) - {""} <= set(PSEUDOBULK_REASONS)
    kept = frame[frame["status"] == "kept"]
    assert (kept["reason"] == "").all()
    # Kept cells name their group; groups hold exactly the kept cells.
    assert set(kept["detail"]) == set(res.counts.obs_names)
    per_group = kept["detail"].value_counts()
    assert per_group.loc[res.counts.obs_names].tolist() == res.counts.obs["n_cells"].tolist()


def test_ledger_built_in_slices_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    cells = make_cells(41)
    cells.obs.loc[cells.obs_names[[3, 50, 51, 399]], "well"] = None
    kwargs: dict[str, Any] = {
        "groupby": KEYS,
        "options": PseudobulkOptions(
            min_counts=25,
            min_genes=5,
            quality_gene="MALAT1",
            quality_min_fraction=0.03,
            min_cells=4,
        ),
    }
    whole = pseudobulk(cells, **kwargs).ledger.to_frame()
    monkeypatch.setattr(pb_ledger, "_LEDGER_ROWS", 7)
    sliced = pseudobulk(cells, **kwargs).ledger.to_frame()
    pd.testing.assert_frame_equal(sliced, whole)
    assert whole["id"].tolist() == cells.obs_names.tolist()
    assert set(whole["reason"]) == {"", *PSEUDOBULK_REASONS}  # every rule is exercised


def test_kept_cells_are_what_is_summed() -> None:
    cells = make_cells(14)
    res = pseudobulk(cells, groupby=KEYS, options=PseudobulkOptions(min_counts=40, min_genes=6))
    kept = ledger_of(res)["status"].to_numpy() == "kept"
    assert_same_sums(res, naive_sums(cells, kept))


def test_min_counts_reason() -> None:
    cells = make_cells(15)
    totals = np.asarray(cells.X.sum(axis=1)).ravel()
    res = pseudobulk(cells, groupby=KEYS, options=PseudobulkOptions(min_counts=50))
    led = ledger_of(res)
    low = cells.obs_names[totals < 50]
    assert len(low) > 0
    assert (led.loc[low, "reason"] == "min_counts").all()
    first = low[0]
    assert led.loc[first, "detail"] == f"total_counts {totals[totals < 50][0]:g} < min_counts 50"
    assert (led.loc[cells.obs_names[totals >= 50], "status"] == "kept").all()
    assert_same_sums(res, naive_sums(cells, totals >= 50))


def test_min_genes_reason() -> None:
    cells = make_cells(16)
    n_genes = np.diff(cells.X.indptr)
    res = pseudobulk(cells, groupby=KEYS, options=PseudobulkOptions(min_genes=8))
    led = ledger_of(res)
    low = n_genes < 8
    assert low.any()
    assert (led.loc[cells.obs_names[low], "reason"] == "min_genes").all()
    assert led.loc[cells.obs_names[low][0], "detail"] == f"n_genes {n_genes[low][0]} < min_genes 8"
    assert_same_sums(res, naive_sums(cells, ~low))


def test_min_genes_ignores_explicit_zeros() -> None:
    x = sparse.csr_matrix(
        (np.array([1.0, 0.0, 0.0, 2.0, 3.0]), np.array([0, 1, 2, 0, 1]), np.array([0, 3, 5])),
        shape=(2, 3),
    )
    obs = pd.DataFrame({"g": ["a", "a"]}, index=["c0", "c1"])
    res = pseudobulk(ad.AnnData(x, obs=obs), groupby=["g"], options=PseudobulkOptions(min_genes=2))
    led = ledger_of(res)
    assert led.loc["c0", "reason"] == "min_genes"  # one gene detected, two zeros stored
    assert led.loc["c1", "status"] == "kept"


def quality_fraction(cells: ad.AnnData) -> np.ndarray:
    x = cells.X.toarray()
    return np.divide(x[:, 0], x.sum(axis=1), out=np.zeros(len(x)), where=x.sum(axis=1) > 0)


def test_nucleus_quality_reason_by_symbol_or_id() -> None:
    cells = make_cells(17)
    frac = quality_fraction(cells)
    low = frac < 0.05
    assert low.any() and (~low).any()
    for gene in ("MALAT1", "ENSG00000"):
        res = pseudobulk(
            cells,
            groupby=KEYS,
            options=PseudobulkOptions(quality_gene=gene, quality_min_fraction=0.05),
        )
        led = ledger_of(res)
        assert (led.loc[cells.obs_names[low], "reason"] == "nucleus_quality").all()
        assert led.loc[cells.obs_names[low][0], "detail"] == (
            f"{gene} fraction {frac[low][0]:.4g} < 0.05"
        )
        assert_same_sums(res, naive_sums(cells, ~low))


def test_quality_exemptions() -> None:
    cells = make_cells(18)
    frac = quality_fraction(cells)
    exempt = (cells.obs["cell_line"] == "HEK293").to_numpy() | (
        cells.obs["condition"] == "drugA"
    ).to_numpy()
    res = pseudobulk(
        cells,
        groupby=KEYS,
        options=PseudobulkOptions(
            quality_gene="MALAT1",
            quality_min_fraction=0.05,
            quality_exempt={"cell_line": ["HEK293"], "condition": ["drugA"]},
        ),
    )
    led = ledger_of(res)
    dropped = (frac < 0.05) & ~exempt
    assert ((frac < 0.05) & exempt).any()
    assert (led.loc[cells.obs_names[(frac < 0.05) & exempt], "status"] == "kept").all()
    assert (led.loc[cells.obs_names[dropped], "reason"] == "nucleus_quality").all()
    assert_same_sums(res, naive_sums(cells, ~dropped))


def test_reasons_follow_rule_order() -> None:
    x = sparse.csr_matrix(np.array([[0, 1, 0], [5, 0, 0], [1, 9, 9], [9, 1, 0]], np.float32))
    obs = pd.DataFrame({"g": [None, "a", "a", "a"]}, index=["c0", "c1", "c2", "c3"])
    var = pd.DataFrame(index=["MALAT1", "B", "C"])
    res = pseudobulk(
        ad.AnnData(x, obs=obs, var=var),
        groupby=["g"],
        options=PseudobulkOptions(
            min_counts=6, min_genes=2, quality_gene="MALAT1", quality_min_fraction=0.5
        ),
    )
    led = ledger_of(res)
    # c0 fails everything: missing metadata comes first; c1 fails counts and genes.
    assert led["reason"].tolist() == ["missing_metadata", "min_counts", "nucleus_quality", ""]
    assert led.loc["c0", "detail"] == "missing g"


def test_min_cells_drops_whole_groups() -> None:
    cells = make_cells(19, n_cells=200)
    sizes = cells.obs.groupby([cells.obs[c].astype(str) for c in KEYS]).size()
    threshold = int(np.median(sizes))
    res = pseudobulk(
        cells, groupby=KEYS, chunk_size=30, options=PseudobulkOptions(min_cells=threshold)
    )
    assert (res.counts.obs["n_cells"] >= threshold).all()
    small = sizes[sizes < threshold]
    assert len(small) > 0
    assert len(res.counts) == len(sizes) - len(small)
    led = ledger_of(res)
    key = pd.MultiIndex.from_frame(cells.obs[KEYS].astype(str))
    in_small = key.isin(small.index)
    assert (led.loc[cells.obs_names[in_small], "reason"] == "small_group").all()
    one = cells.obs_names[in_small][0]
    size = small.loc[tuple(cells.obs.loc[one, KEYS].astype(str))]
    assert led.loc[one, "detail"].endswith(f" has {size} cells < min_cells {threshold}")
    assert led.loc[one, "detail"].startswith("group P")
    # The other groups' sums are untouched.
    assert_same_sums(res, naive_sums(cells, ~in_small))


def test_min_cells_counts_cells_after_filters() -> None:
    x = sparse.csr_matrix(np.array([[1, 0], [0, 1], [5, 5], [5, 5]], np.float32))
    obs = pd.DataFrame({"g": ["a", "a", "b", "b"]}, index=["c0", "c1", "c2", "c3"])
    res = pseudobulk(
        ad.AnnData(x, obs=obs), groupby=["g"], options=PseudobulkOptions(min_counts=2, min_cells=2)
    )
    led = ledger_of(res)
    assert led["reason"].tolist() == ["min_counts", "min_counts", "", ""]
    assert res.counts.obs_names.tolist() == ["b"]
    res = pseudobulk(
        ad.AnnData(x, obs=obs), groupby=["g"], options=PseudobulkOptions(min_counts=2, min_cells=3)
    )
    led = ledger_of(res)
    assert led["reason"].tolist() == ["min_counts", "min_counts", "small_group", "small_group"]
    assert led.loc["c2", "detail"] == "group b has 2 cells < min_cells 3"
    assert res.counts.n_obs == 0


def test_missing_metadata() -> None:
    cells = make_cells(20)
    names = cells.obs_names
    cells.obs["well"] = cells.obs["well"].astype(object)
    cells.obs.loc[names[0], "well"] = np.nan
    cells.obs.loc[names[1], "well"] = "  "
    cells.obs["cell_line"] = cells.obs["cell_line"].cat.add_categories([""])
    cells.obs.loc[names[2], "cell_line"] = ""
    cells.obs.loc[names[3], "cell_line"] = np.nan
    cells.obs.loc[names[3], "well"] = None
    res = pseudobulk(cells, groupby=KEYS)
    led = ledger_of(res)
    assert (led.loc[names[:4], "reason"] == "missing_metadata").all()
    assert led.loc[names[:4], "detail"].tolist() == [
        "missing well",
        "missing well",
        "missing cell_line",
        "missing well, cell_line",
    ]
    keep = np.ones(cells.n_obs, dtype=bool)
    keep[:4] = False
    assert_same_sums(res, naive_sums(cells, keep))
    assert "" not in res.counts.obs["cell_line"].cat.categories


def test_all_cells_dropped_gives_empty_result() -> None:
    cells = make_cells(21, n_cells=20)
    res = pseudobulk(cells, groupby=KEYS, options=PseudobulkOptions(min_counts=1e9))
    assert res.counts.n_obs == 0
    assert res.counts.n_vars == cells.n_vars
    assert len(res.ledger) == 20
    assert set(ledger_of(res)["reason"]) == {"min_counts"}


# --------------------------------------------------------------------------- outputs


def test_fraction_expressing() -> None:
    cells = make_cells(22)
    res = pseudobulk(
        cells, groupby=KEYS, chunk_size=29, options=PseudobulkOptions(fraction_expressing=True)
    )
    frac = res.counts.layers["frac_expressing"]
    assert sparse.issparse(frac) and frac.format == "csr"
    x = cells.X.toarray() > 0
    keys = [cells.obs[c].astype(str) for c in KEYS]
    ref = pd.DataFrame(x.astype(float), index=cells.obs_names).groupby(keys).mean()
    got = pd.DataFrame(
        frac.toarray(), index=pd.MultiIndex.from_frame(res.counts.obs[KEYS].astype(str))
    )
    np.testing.assert_allclose(got.loc[ref.index].to_numpy(), ref.to_numpy(), rtol=1e-12)
    assert "frac_expressing" not in pseudobulk(cells, groupby=KEYS).counts.layers


def test_params_provenance_and_write(tmp_path: Path) -> None:
    cells = make_cells(23)
    res = pseudobulk(
        cells,
        groupby=KEYS,
        options=PseudobulkOptions(
            min_counts=10,
            quality_gene="MALAT1",
            quality_min_fraction=0.01,
            quality_exempt={"cell_line": ["HEK293"]},
            fraction_expressing=True,
            cell_ids=True,
        ),
    )
    meta = res.counts.uns["perturbridge"]
    assert meta["value_kind"] == "counts"
    assert meta["kind"] == "pseudobulk"
    params = meta["params"]
    assert params["groupby"] == KEYS
    assert params["min_counts"] == 10
    assert params["quality_exempt"] == {"cell_line": ["HEK293"]}
    assert params["layer"] == "None"
    assert meta["provenance"]["step"] == "pseudobulk"
    cells_table = meta["cells"]
    kept = res.ledger.ids(stage=STAGE, status="kept")
    assert cells_table.index.tolist() == kept.tolist()
    assert set(cells_table["group"]) == set(res.counts.obs_names)
    out = tmp_path / "pseudobulk.h5ad"
    res.counts.write_h5ad(out)
    back = ad.read_h5ad(out)
    assert (back.X != res.counts.X).nnz == 0
    assert back.uns["perturbridge"]["params"]["groupby"].tolist() == KEYS
    pd.testing.assert_frame_equal(back.obs, res.counts.obs)


def test_logs_a_summary(caplog: pytest.LogCaptureFixture) -> None:
    cells = make_cells(39, n_cells=50)
    with caplog.at_level("INFO", logger="perturbridge.pseudobulk"):
        res = pseudobulk(cells, groupby=KEYS, options=PseudobulkOptions(min_counts=40))
    n_low = int((ledger_of(res)["reason"] == "min_counts").sum())
    assert f"from {50 - n_low} of 50 cells; dropped min_counts: {n_low}" in caplog.text


def test_cells_table_only_when_asked() -> None:
    assert "cells" not in pseudobulk(make_cells(40, n_cells=20)).counts.uns["perturbridge"]


def test_var_is_kept(tmp_path: Path) -> None:
    cells = make_cells(24)
    res = pseudobulk(write_h5ad(cells, tmp_path / "c.h5ad"), groupby=KEYS)
    pd.testing.assert_frame_equal(res.counts.var, cells.var)


def test_progress_bar_runs() -> None:
    cells = make_cells(25, n_cells=50)
    assert_same_sums(
        pseudobulk(cells, groupby=KEYS, progress=True, chunk_size=10), naive_sums(cells)
    )


# --------------------------------------------------------------------------- memory


def test_backed_file_is_read_in_chunk_sized_slices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cells = make_cells(26, n_cells=500)
    path = write_h5ad(cells, tmp_path / "cells.h5ad")
    chunk_size = 64
    reads: list[tuple[str, int]] = []

    def size_of(selection: object, length: int) -> int:
        if isinstance(selection, tuple):
            selection = selection[0]
        if isinstance(selection, slice):
            return len(range(*selection.indices(length)))
        return length  # anything else: count it as the whole dataset

    original_getitem = h5py.Dataset.__getitem__
    original_read_direct = h5py.Dataset.read_direct

    def getitem(self: h5py.Dataset, args: object, *rest: object) -> object:
        if self.name.startswith("/X/"):
            reads.append((self.name, size_of(args, self.shape[0])))
        return original_getitem(self, args, *rest)

    def read_direct(self: h5py.Dataset, dest: np.ndarray, source_sel: object = None, *a: object):
        if self.name.startswith("/X/"):
            reads.append((self.name, size_of(source_sel, self.shape[0])))
        return original_read_direct(self, dest, source_sel, *a)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", getitem)
    monkeypatch.setattr(h5py.Dataset, "read_direct", read_direct)
    res = pseudobulk(path, groupby=KEYS, chunk_size=chunk_size)
    monkeypatch.undo()
    assert_same_sums(res, naive_sums(cells))

    indptr = cells.X.indptr
    max_chunk_nnz = max(
        indptr[min(s + chunk_size, cells.n_obs)] - indptr[s]
        for s in range(0, cells.n_obs, chunk_size)
    )
    by_name: dict[str, list[int]] = {}
    for name, size in reads:
        by_name.setdefault(name, []).append(size)
    assert set(by_name) == {"/X/indptr", "/X/data", "/X/indices"}
    assert max(by_name["/X/indptr"]) <= chunk_size + 1
    for name in ("/X/data", "/X/indices"):
        assert max(by_name[name]) <= max_chunk_nnz < cells.X.nnz
        assert sum(by_name[name]) == cells.X.nnz  # each entry read once


# --------------------------------------------------------------------------- errors


def test_negative_count_names_chunk_cell_and_gene() -> None:
    cells = make_cells(27)
    x = cells.X.toarray()
    x[150, 3] = -2
    cells.X = sparse.csr_matrix(x)
    with pytest.raises(
        ValueError,
        match=r"non-negative; found -2\.0 at cell 'cell150' \(row 150\), gene 'ENSG00003', "
        r"in chunk 1 \(rows 100-199\)",
    ):
        pseudobulk(cells, groupby=KEYS, chunk_size=100)


def test_nan_count_is_an_error() -> None:
    cells = make_cells(28)
    cells.X.data[0] = np.nan
    with pytest.raises(ValueError, match=r"finite and non-negative; found nan at cell 'cell0'"):
        pseudobulk(cells, groupby=KEYS)


def test_missing_groupby_column_lists_available() -> None:
    with pytest.raises(KeyError, match=r"\['dose'\] are not in obs; available columns: \['plate'"):
        pseudobulk(make_cells(29), groupby=["plate", "dose"])


def test_duplicate_cell_ids() -> None:
    cells = make_cells(30, n_cells=10)
    cells.obs_names = ["a", "b"] + [f"c{i}" for i in range(7)] + ["a"]
    with pytest.raises(ValueError, match=r"cell ids must be unique; first offending: \['a'\]"):
        pseudobulk(cells, groupby=KEYS)


def test_quality_gene_not_found() -> None:
    with pytest.raises(KeyError, match=r"quality_gene 'MT-CO1' is neither a gene id"):
        pseudobulk(make_cells(31), groupby=KEYS, options=PseudobulkOptions(quality_gene="MT-CO1"))


def test_quality_gene_ambiguous() -> None:
    cells = make_cells(32)
    cells.var["symbol"] = "MALAT1"
    with pytest.raises(ValueError, match=r"matches 30 genes"):
        pseudobulk(cells, groupby=KEYS, options=PseudobulkOptions(quality_gene="MALAT1"))


def test_quality_exempt_column_missing() -> None:
    with pytest.raises(KeyError, match=r"quality_exempt columns \['line'\] are not in obs"):
        pseudobulk(
            make_cells(33),
            groupby=KEYS,
            options=PseudobulkOptions(
                quality_gene="MALAT1", quality_min_fraction=0.1, quality_exempt={"line": ["HEK293"]}
            ),
        )


def test_missing_layer(tmp_path: Path) -> None:
    cells = make_cells(34)
    with pytest.raises(KeyError, match=r"layer 'counts' not found; available layers: \[\]"):
        pseudobulk(cells, groupby=KEYS, layer="counts")
    path = write_h5ad(cells, tmp_path / "c.h5ad")
    with pytest.raises(KeyError, match=r"layer 'counts' not found in .*c\.h5ad"):
        pseudobulk(path, groupby=KEYS, layer="counts")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_cells": 0}, r"min_cells must be an integer >= 1; found 0"),
        ({"chunk_size": 0}, r"chunk_size must be an integer >= 1; found 0"),
        ({"min_counts": -1}, r"min_counts must be a finite number >= 0; found -1"),
        ({"min_genes": 1.5}, r"min_genes must be an integer >= 0; found 1\.5"),
        ({"quality_min_fraction": 1.5}, r"quality_min_fraction must lie in \[0, 1\]"),
        ({"quality_min_fraction": 0.1}, r"quality_min_fraction and quality_exempt need"),
        ({"groupby": []}, r"groupby must name at least one obs column"),
        ({"groupby": ["well", "well"]}, r"groupby names a column more than once: \['well'\]"),
    ],
)
def test_parameter_errors(kwargs: dict, message: str) -> None:
    top = {k: v for k, v in kwargs.items() if k in ("groupby", "chunk_size")}
    opts = {k: v for k, v in kwargs.items() if k not in top}
    params = {"groupby": KEYS, **top}
    with pytest.raises(ValueError, match=message):
        pseudobulk(make_cells(35, n_cells=10), **params, options=PseudobulkOptions(**opts))


def test_quality_exempt_values_must_be_a_list() -> None:
    with pytest.raises(TypeError, match=r"quality_exempt\['cell_line'\] must be a list"):
        pseudobulk(
            make_cells(36, n_cells=10),
            groupby=KEYS,
            options=PseudobulkOptions(
                quality_gene="MALAT1", quality_exempt={"cell_line": "HEK293"}
            ),
        )


def test_csc_on_disk_is_refused(tmp_path: Path) -> None:
    cells = make_cells(37)
    cells.X = cells.X.tocsc()
    path = write_h5ad(cells, tmp_path / "csc.h5ad")
    with pytest.raises(ValueError, match=r"stored as CSC; .* needs CSR"):
        pseudobulk(path, groupby=KEYS)
    backed = ad.read_h5ad(path, backed="r")
    try:
        with pytest.raises(ValueError, match=r"stored as CSC"):
            pseudobulk(backed, groupby=KEYS)
    finally:
        backed.file.close()


def test_unsupported_inputs(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"reads an AnnData or the path of an \.h5ad file"):
        pseudobulk(np.zeros((2, 2)), groupby=KEYS)
    with pytest.raises(FileNotFoundError, match=r"no such \.h5ad file"):
        pseudobulk(tmp_path / "absent.h5ad", groupby=KEYS)
    with pytest.raises(TypeError, match=r"cannot read the count matrix by rows.*found list"):
        readers._row_reader([[1]])  # e.g. a matrix type without row slicing
    no_x = ad.AnnData(obs=make_cells(38, n_cells=10).obs)
    with pytest.raises(ValueError, match=r"the AnnData has no X; pass layer="):
        pseudobulk(no_x, groupby=KEYS)


# --------------------------------------------------------------------------- command line


def test_cli_pseudobulk_writes_and_accounts_for_every_cell(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from perturbridge.cli import app

    cells = make_cells(3)
    path = write_h5ad(cells, tmp_path / "cells.h5ad")
    out = tmp_path / "pb.h5ad"
    r = CliRunner().invoke(
        app,
        [
            "pseudobulk",
            str(path),
            "--out",
            str(out),
            "--min-counts",
            "20",
            "--chunk-size",
            "50",
            "--ledger",
            str(tmp_path / "ledger.tsv"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "min_counts" in r.output
    pbk = ad.read_h5ad(out)
    expected = pb.pseudobulk(cells, options=PseudobulkOptions(min_counts=20))
    np.testing.assert_array_equal(pbk.X.toarray(), expected.counts.X.toarray())
    assert len(pd.read_csv(tmp_path / "ledger.tsv", sep="\t")) == cells.n_obs


def test_cli_pseudobulk_bad_groupby_leaves_no_output(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from perturbridge.cli import app

    path = write_h5ad(make_cells(4), tmp_path / "cells.h5ad")
    out = tmp_path / "pb.h5ad"
    r = CliRunner().invoke(
        app, ["pseudobulk", str(path), "--out", str(out), "--groupby", "plate,nope"]
    )
    assert r.exit_code == 2
    assert "nope" in r.output
    assert not out.exists()

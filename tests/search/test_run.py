"""search(): queries of every kind over a store, restriction, blocks, p-values, results."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from perturbridge.compendium import Compendium
from perturbridge.search import Query, SearchIndex, SearchOptions, search
from perturbridge.search.run import _rank_rows

QUERY = "sim_a:SIMCL01:D0-0003:10uM:24h"


def _effects(store: Path) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    with Compendium.open(store) as comp:
        eff = comp.effects(None, layer="logFC")
        return eff.obs.reset_index(), np.asarray(eff.X, dtype=np.float64), comp.genes()


def _cosine(q: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Cosine of ``q`` with each row of ``x`` over the genes measured in both (naive)."""
    out = np.empty(len(x))
    for i, row in enumerate(x):
        m = np.isfinite(row) & np.isfinite(q)
        out[i] = row[m] @ q[m] / np.sqrt((row[m] ** 2).sum() * (q[m] ** 2).sum())
    return out


def test_rank_rows_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 40)).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = np.nan
    ranks = _rank_rows(x)
    for row, r in zip(x, ranks, strict=True):
        m = ~np.isnan(row)
        expected = stats.rankdata(-row[m], method="ordinal")
        assert np.array_equal(r[m], expected)
        assert (r[~m] == 0).all()


def test_condition_query_cosine_equals_naive(sim_store: Path) -> None:
    obs, x, _ = _effects(sim_store)
    res = search(sim_store, QUERY, options=SearchOptions(method="cosine", n_null=0, top=500))
    qrow = int(np.flatnonzero(obs["condition_id"] == QUERY)[0])
    expected = pd.Series(_cosine(x[qrow], x), index=obs["condition_id"])
    hits = res.hits.set_index("condition_id")
    assert QUERY not in hits.index  # the query's own condition is left out
    assert len(hits) == len(obs) - 1
    np.testing.assert_allclose(hits["score"], expected.loc[hits.index], rtol=1e-5, atol=1e-6)
    assert (np.diff(res.hits["score"].to_numpy()) <= 1e-12).all()  # best first
    assert res.hits["rank"].tolist() == list(range(1, len(hits) + 1))
    assert res.hits["p"].isna().all()  # n_null=0: no p-values
    assert "ncs" not in res.hits.columns
    # with the query kept, it is its own best hit (cosine 1)
    own = search(sim_store, QUERY, options=SearchOptions(method="cosine", n_null=0,
                                                         exclude_self=False, top=1))  # fmt: skip
    assert own.hits["condition_id"].iloc[0] == QUERY
    assert own.hits["score"].iloc[0] == pytest.approx(1.0, abs=1e-6)


def test_hit_columns_come_from_the_catalog(sim_store: Path) -> None:
    res = search(sim_store, QUERY, options=SearchOptions(n_null=20, top=5))
    with Compendium.open(sim_store) as comp:
        cat = comp.conditions().set_index("condition_id")
    for row in res.hits.itertuples(index=False):
        c = cat.loc[row.condition_id]
        assert (row.dataset, row.cell_context) == (c["dataset"], c["cell_context"])
        assert (row.compound, row.compound_id) == (c["perturbagen"], c["compound_id"])
        assert row.compound_inchikey == c["compound_inchikey"]
        assert row.pubchem_cid == c["pubchem_cid"]
        assert (row.dose_uM, row.time_h) == (c["pert_dose_uM"], c["pert_time_h"])
    assert {"score", "ncs", "p", "fdr"} <= set(res.hits.columns)
    assert ((res.hits["p"] > 0) & (res.hits["p"] <= 1)).all()
    assert (res.hits["fdr"] >= res.hits["p"] - 1e-12).all()
    assert res.info["n_conditions"] == len(cat)
    assert (np.diff(res.hits["score"].to_numpy()) <= 1e-12).all()  # by score
    by_ncs = search(sim_store, QUERY, options=SearchOptions(n_null=0, top=5, rank_by="ncs"))
    assert (np.diff(by_ncs.hits["ncs"].to_numpy()) <= 1e-12).all()  # CMap's order
    with pytest.raises(ValueError, match="rank_by='ncs' needs a method with NCS"):
        search(sim_store, QUERY, options=SearchOptions(method="cosine", rank_by="ncs"))


def test_restriction(sim_store: Path) -> None:
    opts = SearchOptions(method="cosine", n_null=0, top=500, datasets=("sim_b",),
                         contexts=("SIMCL02",), times=(24.0,))  # fmt: skip
    res = search(sim_store, QUERY, options=opts)
    assert set(res.hits["dataset"]) == {"sim_b"} and set(res.hits["cell_context"]) == {"SIMCL02"}
    assert len(res.hits) == res.info["n_conditions"] == 12 * 2
    with pytest.raises(KeyError, match=r"datasets \['nope'\] not in the store.*sim_a"):
        search(sim_store, QUERY, options=SearchOptions(datasets=("nope",)))
    with pytest.raises(KeyError, match=r"contexts \['CL99'\]"):
        search(sim_store, QUERY, options=SearchOptions(contexts=("CL99",)))
    with pytest.raises(ValueError, match=r"no group-mode condition .* matches the restriction"):
        search(sim_store, QUERY, options=SearchOptions(times=(6.0,)))


def test_many_queries_at_once_equal_one_at_a_time(sim_store: Path) -> None:
    up = tuple(f"SIMG{g:05d}" for g in range(1, 31))
    down = tuple(f"SIM{g}" for g in range(40, 70))  # symbols work as well as ids
    queries: list[Query | str] = [Query("sets", up=up, down=down), QUERY]
    opts = SearchOptions(n_null=30, top=10, seed=3)
    both = search(sim_store, queries, options=opts)
    assert list(both.queries["query"]) == ["sets", QUERY]
    assert list(both.queries["kind"]) == ["sets", "condition"]
    for q, name in zip(queries, ["sets", QUERY], strict=True):
        one = search(sim_store, q, options=opts)
        pd.testing.assert_frame_equal(
            both.hits[both.hits["query"] == name].reset_index(drop=True), one.hits
        )


def test_block_size_and_threads_change_nothing(sim_store: Path) -> None:
    big = search(sim_store, QUERY, options=SearchOptions(n_null=10, top=30, use_index="never"))
    one_thread = SearchOptions(n_null=10, top=30, block_rows=7, use_index="never", n_jobs=1)
    small = search(sim_store, QUERY, options=one_thread)
    pd.testing.assert_frame_equal(big.hits, small.hits)
    pd.testing.assert_frame_equal(big.compounds, small.compounds)


def test_signature_query_and_unmatched_genes(sim_store: Path) -> None:
    obs, x, genes = _effects(sim_store)
    row = x[int(np.flatnonzero(obs["condition_id"] == QUERY)[0])]
    sig = pd.Series(row, index=genes["gene_id"]).dropna()
    sig = pd.concat([sig, pd.Series({"NOT_A_GENE": 1.0})])
    res = search(sim_store, Query("sig", signature=sig),
                 options=SearchOptions(method="cosine", n_null=0, top=3))  # fmt: skip
    assert res.hits["condition_id"].iloc[0] == QUERY  # a signature query is not a condition
    assert res.queries["n_unmatched"].iloc[0] == 1
    assert "NOT_A_GENE" in res.queries["unmatched"].iloc[0]


def test_queries_without_genes_in_the_store(sim_store: Path) -> None:
    queries = [Query("none", up=("X1", "X2")), Query("some", up=("SIMG00001", "SIMG00002"))]
    with pytest.raises(KeyError, match=r"none of its 2 genes.*skip_unmatched"):
        search(sim_store, queries)
    res = search(sim_store, queries, options=SearchOptions(n_null=0, top=3, skip_unmatched=True))
    table = res.queries.set_index("query")
    assert "none" in str(table.loc["none", "skipped"]) and table.loc["none", "n_unmatched"] == 2
    assert table.loc["some", "skipped"] == ""
    assert set(res.hits["query"]) == {"some"}
    with pytest.raises(ValueError, match="none of the 1 queries has a gene"):
        search(sim_store, queries[:1], options=SearchOptions(skip_unmatched=True))


def test_direction_opposite(sim_store: Path) -> None:
    res = search(sim_store, QUERY, options=SearchOptions(method="cosine", n_null=0, top=5,
                                                         direction="opposite"))  # fmt: skip
    every = search(sim_store, QUERY, options=SearchOptions(method="cosine", n_null=0, top=500))
    assert res.hits["score"].iloc[0] == pytest.approx(every.hits["score"].min())
    assert (np.diff(res.hits["score"].to_numpy()) >= -1e-12).all()


def test_by_compound_covers_every_condition(sim_store: Path) -> None:
    res = search(sim_store, QUERY, options=SearchOptions(n_null=0, top=5))
    by = res.by_compound()
    assert by["n_conditions"].sum() == res.info["n_conditions"] - 1  # less the query itself
    assert (by["n_contexts_agree"] + by["n_contexts_oppose"] <= by["n_contexts"]).all()
    assert set(res.hits["compound_id"]) <= set(by["compound_id"])
    assert len(by) == 12 and by["compound_id"].is_unique
    assert by["n_contexts"].max() == 6  # 3 datasets × 2 contexts


def test_errors(sim_store: Path) -> None:
    with pytest.raises(KeyError, match="nope"):
        search(sim_store, QUERY, options=SearchOptions(method="nope"))
    with pytest.raises(KeyError, match="query condition 'sim_a:none' is not a condition"):
        search(sim_store, "sim_a:none")
    with pytest.raises(ValueError, match="scores signatures"):
        search(sim_store, Query("s", up=("SIMG00001",)), options=SearchOptions(method="cosine"))
    with pytest.raises(ValueError, match="unique"):
        search(sim_store, [QUERY, QUERY])
    with pytest.raises(ValueError, match="no query"):
        search(sim_store, [])
    with pytest.raises(ValueError, match="top=0"):
        SearchOptions(top=0)
    with pytest.raises(ValueError, match="direction must be"):
        SearchOptions(direction="up")  # type: ignore[arg-type]


@pytest.mark.slow
def test_index_and_effects_give_the_same_result(sim_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(sim_store, store)
    queries: list[Query | str] = [QUERY, Query("sets", up=("SIMG00001", "SIMG00005"),
                                               down=("SIMG00010",))]  # fmt: skip
    for method in ("wtcs", "cosine"):
        qs = queries[:1] if method == "cosine" else queries
        opts = SearchOptions(method=method, n_null=10, top=40, use_index="never")
        via_effects = search(store, qs, options=opts)
        if method == "wtcs":
            with pytest.raises(ValueError, match="no search index"):
                search(store, qs, options=replace(opts, use_index="always"))
            SearchIndex.build(store, progress=False)
        via_index = search(store, qs, options=replace(opts, use_index="always"))
        assert via_index.info["blocks_from"] == "index"
        assert via_effects.info["blocks_from"] == "effects"
        pd.testing.assert_frame_equal(via_index.hits, via_effects.hits, rtol=1e-6)
        pd.testing.assert_frame_equal(via_index.compounds, via_effects.compounds, rtol=1e-6)
        auto = search(store, qs, options=replace(opts, use_index="auto"))
        assert auto.info["blocks_from"] == "index"


def test_refs_resolve_symbols_against_a_store_keyed_by_entrez(tmp_path: Path) -> None:
    """A store of precomputed signatures keyed by Entrez ids (no symbols) answers a
    query in symbols, aliases and previous symbols through a reference store, exactly as
    the same query in Entrez ids."""
    import h5py

    from ids._fixtures import source_dir
    from perturbridge.compendium.signatures import import_signatures
    from perturbridge.ids.store import RefStore

    entrez = ["7157", "989", "55016", "64757", "3105", "7849"]  # TP53, SEPTIN7, …, PAX8
    cols = [f"drug{i}__SKB__trt_cp" for i in range(5)]
    rng = np.random.default_rng(5)
    with h5py.File(tmp_path / "db.h5", "w") as f:
        f["assay"] = rng.normal(size=(len(cols), len(entrez)))
        f["colnames"] = np.array([c.encode() for c in cols])[None, :]
        f["rownames"] = np.array([g.encode() for g in entrez])[None, :]
    store = tmp_path / "store"
    import_signatures(store, tmp_path / "db.h5", kind="signaturesearch", dataset="skb")
    refs = tmp_path / "refs"
    RefStore.build(source_dir=source_dir(tmp_path), out=refs)
    # P53: an alias of TP53; SEPT7: the previous symbol of SEPTIN7
    by_symbol = Query("q", up=("P53", "SEPT7"), down=("PAX8",))
    by_entrez = Query("q", up=("7157", "989"), down=("7849",))
    opts = SearchOptions(n_null=0, top=5)
    with pytest.raises(KeyError, match="none of its 3 genes"):
        search(store, by_symbol, options=opts)
    via_refs = search(store, by_symbol, options=replace(opts, refs=str(refs)))
    direct = search(store, by_entrez, options=opts)
    pd.testing.assert_frame_equal(via_refs.hits, direct.hits)
    assert via_refs.queries["n_unmatched"].iloc[0] == 0

"""The per-compound summary, writing and drawing of search results (hand-made tables)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from perturbridge.search.results import COMPOUND_COLUMNS, SearchResult, aggregate_compounds


def _scored() -> pd.DataFrame:
    """Compound A: 2 contexts of d1 (medians +0.5 and -0.1) and 1 of d2 (+0.3);
    compound B: one context, one NaN score (not counted) and -0.4."""
    rows = [
        # compound, dataset, context, condition, score, fdr
        ("A", "d1", "c1", "d1:c1:A:1", 0.4, 0.01),
        ("A", "d1", "c1", "d1:c1:A:10", 0.6, 0.2),
        ("A", "d1", "c2", "d1:c2:A:1", -0.1, 0.5),
        ("A", "d2", "c1", "d2:c1:A:1", 0.3, 0.04),
        ("B", "d1", "c1", "d1:c1:B:1", np.nan, np.nan),
        ("B", "d1", "c1", "d1:c1:B:10", -0.4, 0.03),
    ]
    df = pd.DataFrame(
        rows, columns=["compound_id", "dataset", "cell_context", "condition_id", "score", "fdr"]
    )
    df.insert(0, "query", "q")
    df["compound"] = df["compound_id"].str.lower()
    df["compound_inchikey"] = df["compound_id"] + "-KEY"
    df["pubchem_cid"] = df["compound_id"].map({"A": 1, "B": 2})
    df["assay"] = df["dataset"].map({"d1": "L1000", "d2": "RNA-seq"})
    return df


def test_aggregate_compounds_by_hand() -> None:
    out = aggregate_compounds(_scored(), sign=1)
    assert list(out.columns) == list(COMPOUND_COLUMNS)
    a = out.set_index("compound_id").loc["A"]
    assert a["n_conditions"] == 4
    assert a["n_contexts"] == 3  # d1/c1, d1/c2, d2/c1
    assert a["n_contexts_agree"] == 2 and a["n_contexts_oppose"] == 1
    assert a["median_score"] == pytest.approx(0.3)  # median of 0.5, -0.1, 0.3
    assert a["best_score"] == pytest.approx(0.6) and a["best_condition"] == "d1:c1:A:10"
    assert a["n_significant"] == 2  # fdr 0.01 and 0.04
    assert a["datasets"] == "d1, d2" and a["assays"] == "L1000, RNA-seq"
    b = out.set_index("compound_id").loc["B"]
    assert b["n_conditions"] == 1 and b["n_contexts_oppose"] == 1
    assert list(out["compound_id"]) == ["A", "B"]  # best median first


def test_aggregate_compounds_opposite_direction() -> None:
    out = aggregate_compounds(_scored(), sign=-1)
    assert list(out["compound_id"]) == ["B", "A"]
    b = out.set_index("compound_id").loc["B"]
    assert b["n_contexts_agree"] == 1 and b["best_score"] == pytest.approx(-0.4)
    a = out.set_index("compound_id").loc["A"]
    assert a["best_score"] == pytest.approx(-0.1)


def test_aggregate_compounds_errors() -> None:
    with pytest.raises(ValueError, match="sign must be"):
        aggregate_compounds(_scored(), sign=0)
    with pytest.raises(KeyError, match="missing columns"):
        aggregate_compounds(_scored().drop(columns=["score"]))
    empty = aggregate_compounds(_scored().assign(score=np.nan))
    assert empty.empty and list(empty.columns) == list(COMPOUND_COLUMNS)


def _result() -> SearchResult:
    scored = _scored()
    hits = scored[np.isfinite(scored["score"])].sort_values("score", ascending=False).copy()
    hits.insert(1, "rank", np.arange(1, len(hits) + 1))
    for col in ("contrast_id", "cell_name"):
        hits[col] = hits["condition_id"] if col == "contrast_id" else hits["cell_context"]
    hits["dose_uM"], hits["time_h"], hits["p"] = 1.0, 24.0, 0.01
    queries = pd.DataFrame({"query": ["q"], "kind": ["sets"], "n_unmatched": [0]})
    info = {"method": "wtcs", "n_conditions": 6, "options": {"method": "wtcs", "top": 5}}
    return SearchResult(hits, aggregate_compounds(scored), queries, info)


def test_write_is_atomic_and_complete(tmp_path) -> None:
    res = _result()
    out = res.write(tmp_path / "search")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["compounds.tsv", "hits.parquet", "hits.tsv", "queries.tsv", "search.json"]
    back = pd.read_csv(out / "hits.tsv", sep="\t")
    assert back["condition_id"].tolist() == res.hits["condition_id"].tolist()
    record = json.loads((out / "search.json").read_text())
    assert record["info"]["method"] == "wtcs"
    assert record["provenance"]["step"] == "search"
    with pytest.raises(FileExistsError):
        res.write(out)  # not replaced without replace=True
    res.write(out, replace=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        res.write(tmp_path / "file")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries


def test_figure_draws_one_panel_per_query() -> None:
    fig = _result().figure()
    axes = fig.get_axes()
    assert len(axes) == 1
    assert len(axes[0].patches) == 5  # one bar per finite hit
    assert "q" in axes[0].get_title(loc="left")
    assert "by_compound" not in repr(_result())
    assert _result().by_compound().equals(aggregate_compounds(_scored()))

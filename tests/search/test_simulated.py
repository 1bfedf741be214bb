"""On the simulator's multi-dataset compendium, a query built from one dataset's signature
of compound X finds X in the other datasets above chance, per assay family.

The simulator (perturbridge.simulate.agreement) plants the same compound-specific effect
in every dataset, under dataset-specific distortions, on top of a generic context response
that every compound of a context shares. So a compound is told apart from the others only
within a cell context: for each query (the 10 µM signature of X in dataset ``sim_a`` and
context k) and each other dataset, the rank of X's best condition among the compounds of
that dataset in context k (1 = best, chance = (n + 1) / 2) is computed from the search's
own hits, and compared with the uniform ranks of chance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from perturbridge.compendium import Compendium
from perturbridge.search import SearchOptions, search

from .conftest import DESIGN


def _ranks(store: Path, method: str) -> pd.DataFrame:
    """Per query × other dataset: rank of the query's compound in the query's context."""
    with Compendium.open(store) as comp:
        queries = comp.conditions(dataset="sim_a", dose=10.0)
        assays = comp.table("datasets").set_index("dataset")["assay"]
    res = search(store, queries["condition_id"].tolist(),
                 options=SearchOptions(method=method, n_null=0, top=10_000,
                                       datasets=("sim_b", "sim_c")))  # fmt: skip
    q = queries.set_index("condition_id")
    rows = []
    for qid, hits in res.hits.groupby("query", sort=False):
        x = q.loc[qid]
        same = hits[hits["cell_context"] == x["cell_context"]]
        for dataset, h in same.groupby("dataset", sort=True):
            # best condition of each compound, in the order of the hits
            order = h.drop_duplicates("compound_id")["compound_id"].tolist()
            family = assays.get(dataset) or dataset  # release imports carry no assay
            rank = order.index(x["compound_id"]) + 1
            rows.append((str(family), qid, rank, len(order)))
    return pd.DataFrame(rows, columns=["assay_family", "query", "rank", "n_compounds"])


def _summary(ranks: pd.DataFrame) -> pd.DataFrame:
    n = DESIGN.n_compounds
    out = ranks.groupby("assay_family").agg(
        queries=("rank", "size"),
        mean_rank=("rank", "mean"),
        median_rank=("rank", "median"),
        top1=("rank", lambda r: float((r == 1).mean())),
        top3=("rank", lambda r: float((r <= 3).mean())),
    )
    out["p_vs_chance"] = [
        stats.mannwhitneyu(r["rank"], np.arange(1, n + 1).repeat(len(r)), alternative="less").pvalue
        for _, r in ranks.groupby("assay_family")
    ]
    return out


@pytest.mark.slow
def test_compound_found_in_other_datasets_above_chance(sim_store: Path) -> None:
    """Asserted for the default method (WTCS); the other methods are printed beside it."""
    method = "wtcs"
    ranks = _ranks(sim_store, method)
    n = DESIGN.n_compounds
    assert len(ranks) == DESIGN.n_compounds * DESIGN.n_contexts * 2  # 2 other datasets
    assert (ranks["n_compounds"] == n).all()
    print(
        f"\nrank of the query's compound among {n} (chance: mean {(n + 1) / 2:.1f}, "
        f"top-1 {1 / n:.2f}, top-3 {3 / n:.2f}); p: one-sided Mann-Whitney against uniform"
    )
    for other in ("wtcs", "ks", "xsum", "cosine", "spearman"):
        table = _summary(ranks if other == method else _ranks(sim_store, other))
        print(f"{other}:\n{table.to_string()}")  # fmt: skip
    p_values = _summary(ranks)["p_vs_chance"].to_dict()
    for family, r in ranks.groupby("assay_family"):
        assert p_values[family] < 1e-3, family
        assert r["rank"].mean() < (n + 1) / 2, family  # chance: (n + 1) / 2
        assert (r["rank"] <= 3).mean() > 3 / n, family  # chance: 3 / n

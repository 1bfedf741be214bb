"""The signature-search section of the HTML report: a few example queries, table and plot.

:func:`search_section` renders a :class:`~perturbridge.search.SearchResult` (or runs
example queries on the store: :func:`example_queries` picks conditions of the compounds
measured in the most datasets and contexts) as one ``<section id="search">``: per query
its top hits as a table, the per-compound summary, and the figure of
:meth:`SearchResult.figure <perturbridge.search.SearchResult.figure>`.

:func:`indexed_search_section` is what the report (:func:`~perturbridge.report.write_report`)
adds: the section when the store has a current search index (``perturbridge search-index``
/ :meth:`SearchIndex.build <perturbridge.search.SearchIndex.build>`: building it is how a
user asks for search), nothing otherwise, so that a report never scans a large store
without an index.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd
from matplotlib.figure import Figure

from ..compendium import Compendium
from ..search import SearchIndex, SearchOptions, SearchResult, search
from .figures import figure_png
from .tables import _e, _empty, _Fig, _figure_html, _frame_table, _p

__all__ = ["SECTION", "example_queries", "indexed_search_section", "search_section"]

#: The section's anchor and title (for the report's navigation).
SECTION = ("search", "Signature search: example queries")
_FIGURE = "search_top_hits"

_HIT_COLUMNS = ("rank", "compound", "cell_context", "dataset", "assay", "dose_uM", "time_h",
                "score", "ncs", "p", "fdr")  # fmt: skip
_COMPOUND_COLUMNS = ("compound", "n_contexts", "n_contexts_agree", "median_score",
                     "best_score", "n_significant", "datasets")  # fmt: skip


def example_queries(comp: Compendium, *, n: int = 3) -> list[str]:
    """Condition ids to use as example queries: for the ``n`` compounds with conditions
    in the most datasets (then contexts), the condition at the highest dose and latest
    time (ties: the first id)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, found {n}")
    conds = comp.sql(
        "SELECT condition_id, compound_id, dataset, cell_context, pert_dose_uM, pert_time_h "
        "FROM conditions WHERE compound_id IS NOT NULL"
    )
    if conds.empty:
        return []
    spread = conds.groupby("compound_id").agg(
        n_datasets=("dataset", "nunique"), n_contexts=("cell_context", "nunique")
    )
    chosen = (
        spread.sort_index(kind="stable")
        .sort_values(["n_datasets", "n_contexts"], ascending=False, kind="stable")
        .index[:n]
    )
    out = []
    for compound in chosen:
        rows = conds[conds["compound_id"] == compound].sort_values(
            ["pert_dose_uM", "pert_time_h", "condition_id"],
            ascending=[False, False, True],
            na_position="last",
            kind="stable",
        )
        out.append(str(rows["condition_id"].iloc[0]))
    return out


def indexed_search_section(
    store: str | os.PathLike[str] | Compendium,
) -> tuple[str, dict[str, Figure]]:
    """The search section of ``store`` with its example queries when it has a current
    search index (group mode, logFC); ``("", {})`` otherwise."""
    if isinstance(store, Compendium):
        return _indexed(store)
    with Compendium.open(store) as comp:
        return _indexed(comp)


def _indexed(comp: Compendium) -> tuple[str, dict[str, Figure]]:
    try:
        SearchIndex.open(comp)
    except ValueError:  # none, or stale (StaleIndexError)
        return "", {}
    return search_section(comp, options=SearchOptions(top=10, use_index="always"))


def search_section(
    store: str | os.PathLike[str] | Compendium,
    result: SearchResult | None = None,
    *,
    queries: Sequence[str] | None = None,
    options: SearchOptions | None = None,
) -> tuple[str, dict[str, Figure]]:
    """The search section as HTML, and its figure (``{"search_top_hits": figure}``).

    Parameters
    ----------
    store
        The store (used when ``result`` is None: the queries run on it).
    queries
        Condition ids of the store to use as queries (default :func:`example_queries`).
    result
        A search result to show; default: run ``queries`` (default
        :func:`example_queries`) with ``options`` (default: WTCS, 100 random queries,
        top 10).
    """
    if result is None:
        opts = options or SearchOptions(top=10)
        if isinstance(store, Compendium):
            result = _run(store, queries, opts)
        else:
            with Compendium.open(store) as comp:
                result = _run(comp, queries, opts)
    anchor, title = SECTION
    parts = [f'<section id="{anchor}"><h2>{_e(title)}</h2>']
    if result is None or result.hits.empty:
        parts.append(_empty("No example query: the store has no condition with a compound."))
        parts.append("</section>")
        return "".join(parts), {}
    parts.append(
        _p(
            "Which conditions of the store produce the same change as a query signature? "
            "Each example query is the signature of one condition of the store (left out of "
            f"its own results), scored against every condition with {result.info.get('method')}"
            " (docs/search.md). p: empirical, from random gene sets of the same sizes; FDR: "
            "Benjamini-Hochberg over every condition searched."
        )
    )
    for name in pd.unique(result.hits["query"]):
        hits = result.hits[result.hits["query"] == name]
        cols = [c for c in _HIT_COLUMNS if c in hits.columns]
        parts.append(f"<h3>Query {_e(name)}</h3>")
        parts.append(_frame_table(hits[cols], caption=f"top {len(hits)} conditions"))
        comp_rows = result.compounds[result.compounds["query"] == name].head(10)
        ccols = [c for c in _COMPOUND_COLUMNS if c in comp_rows.columns]
        parts.append(
            _frame_table(comp_rows[ccols], caption="per compound over every condition searched")
        )
    fig = result.figure()
    parts.append(
        _figure_html(
            _Fig(_FIGURE, figure_png(fig)),
            "one panel per query; each bar is one of its top conditions (compound @ cell "
            "context, dose, time; dataset in brackets), its length the score.",
        )
    )
    parts.append("</section>")
    return "".join(parts), {_FIGURE: fig}


def _run(
    comp: Compendium, queries: Sequence[str] | None, options: SearchOptions
) -> SearchResult | None:
    chosen = list(queries) if queries is not None else example_queries(comp)
    if not chosen:
        return None
    return search(comp, chosen, options=options)

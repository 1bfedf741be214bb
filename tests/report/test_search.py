"""The search section of the report (perturbridge.report.search): example queries, their
table and plot, present when the store has a current search index."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from perturbridge.compendium import Compendium
from perturbridge.report import write_report
from perturbridge.report.search import example_queries, indexed_search_section, search_section
from perturbridge.search import SearchIndex, SearchOptions, search

from .test_figures import synthetic_tables
from .test_html import _result, make_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("search_report"))


def test_example_queries_pick_the_most_widely_measured_compounds(store: Path) -> None:
    with Compendium.open(store) as comp:
        picked = example_queries(comp, n=2)
        cond = comp.conditions().set_index("condition_id")
        with pytest.raises(ValueError, match="n must be >= 1"):
            example_queries(comp, n=0)
    # K0..K5 are in both datasets, ODD has no InChIKey but is in both too; the first two
    # by compound id, each at its highest dose (10 µM exists only in dsA)
    assert len(picked) == 2
    assert (cond.loc[picked, "pert_dose_uM"] == 10.0).all()
    assert cond.loc[picked, "compound_id"].is_unique


def test_section_shows_table_and_plot(store: Path) -> None:
    with Compendium.open(store) as comp:
        query = example_queries(comp, n=1)[0]
        compound = comp.conditions().set_index("condition_id").loc[query, "perturbagen"]
    res = search(store, query, options=SearchOptions(top=5, n_null=20))
    html, figures = search_section(store, res)
    assert html.startswith('<section id="search">') and html.endswith("</section>")
    assert f"Query {query}" in html
    assert html.count("<table>") == 2  # top hits and the per-compound summary
    assert "data:image/png;base64," in html and set(figures) == {"search_top_hits"}
    # the planted effect is shared by the compound's conditions: its other dose (dsA) and
    # its dsB signature lead the table
    first_row = re.search(r"<tbody><tr>(.*?)</tr>", html)
    assert first_row is not None and f"<td>{compound}</td>" in first_row.group(1)
    top = res.hits.head(2)
    assert (top["compound"] == compound).all() and set(top["dataset"]) == {"dsA", "dsB"}


@pytest.mark.slow
def test_report_has_the_section_only_with_a_search_index(store: Path, tmp_path: Path) -> None:
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    result: Any = _result(synthetic_tables(("dsA", "dsB")))
    doc = write_report(copy, tmp_path / "plain.html", result=result).read_text("utf-8")
    assert 'id="search"' not in doc
    assert indexed_search_section(copy) == ("", {})
    SearchIndex.build(copy, progress=False)
    out = write_report(copy, tmp_path / "r.html", result=result, figures_dir=tmp_path / "figs")
    doc = out.read_text("utf-8")
    assert doc.count('<section id="search">') == 1
    assert (tmp_path / "figs" / "search_top_hits.png").is_file()
    with Compendium.open(copy) as comp:
        for query in example_queries(comp):
            assert f"Query {query}" in doc

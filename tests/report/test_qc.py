"""The sample quality weights section: per-fit summary, flagged wells, empty cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perturbridge.de.quality import FLAG_BELOW, QC_COLUMNS
from perturbridge.report.qc import SECTION, fit_summary, qc_section


def _table() -> pd.DataFrame:
    """Two fits by hand: fit a has one flagged well (0.05), fit b none."""
    rows = [
        ("ds/a", "w1", "P1", "a|cmp1|1uM|24h", 0.05, "reml", "iteration limit reached"),
        ("ds/a", "w2", "P1", "vehicle|a|24h", 1.6, "reml", "iteration limit reached"),
        ("ds/a", "w3", "P1", "vehicle|a|24h", 1.0, "reml", "iteration limit reached"),
        ("ds/b", "w4", "P2", "b|cmp1|1uM|24h", 0.9, "genebygene", "converged"),
        ("ds/b", "w5", "P2", "vehicle|b|24h", 1.1, "genebygene", "converged"),
    ]
    t = pd.DataFrame(
        rows, columns=["fit_id", "sample_id", "plate", "condition", "weight", "method", "status"]
    )
    t["flagged"] = t["weight"] < FLAG_BELOW
    return t[list(QC_COLUMNS)]


def test_fit_summary_counts_by_fit():
    s = fit_summary(_table())
    assert s["fit_id"].tolist() == ["ds/a", "ds/b"]  # the fit with flagged wells first
    assert s["n_samples"].tolist() == [3, 2]
    assert s["n_flagged"].tolist() == [1, 0]
    np.testing.assert_allclose(s["min_weight"], [0.05, 0.9])
    np.testing.assert_allclose(s["median_weight"], [1.0, 1.0])
    assert s["status"].tolist() == ["iteration limit reached", "converged"]


def test_section_lists_flagged_wells():
    html = qc_section(_table())
    anchor, title = SECTION
    assert html.startswith(f'<section id="{anchor}"><h2>{title}</h2>')
    assert "w1" in html and "a|cmp1|1uM|24h" in html
    assert "w4" not in html.split("flagged samples, lowest weight first")[-1]
    assert "2 fits, 1 flagged samples" in html


@pytest.mark.parametrize("table", [None, pd.DataFrame(columns=list(QC_COLUMNS))])
def test_section_without_quality_weights_says_so(table):
    assert "No DE run of this store estimated sample quality weights" in qc_section(table)


def test_no_flagged_well_is_said():
    t = _table()
    t = t[~t["flagged"]]
    assert "No sample is flagged." in qc_section(t)


def test_a_table_without_the_columns_is_an_error():
    with pytest.raises(KeyError, match=r"missing \['flagged'"):
        fit_summary(_table().drop(columns=["flagged"]))

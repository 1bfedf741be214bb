"""The sample quality weights section of the HTML report: one row per fit, the flagged wells.

A DE run with quality weights (``DEOptions(quality_weights=True)``, plans'
``quality_weights = true``) keeps one QC table per run in the Effects'
``uns["quality_weights"]`` (:mod:`perturbridge.de.quality`: a row per sample with its
fit, plate, condition, weight, whether it is flagged, the estimation method and its
status). :func:`qc_section` renders such a table; :func:`store_qc_section` is what the
report (:func:`~perturbridge.report.write_report`) adds: the section for the rows of
the store's ``quality_weights`` catalog table, nothing when it has none.
"""

from __future__ import annotations

import os

import pandas as pd

from ..compendium import Compendium
from ..de.quality import FLAG_BELOW, QC_COLUMNS
from .tables import _e, _empty, _frame_table, _p

__all__ = ["SECTION", "TABLE", "fit_summary", "qc_section", "store_qc_section"]

#: The section's anchor and title (for the report's navigation).
SECTION = ("quality-weights", "Sample quality weights")

#: The catalog table the report reads (the QC tables of the store's DE runs).
TABLE = "quality_weights"

#: Flagged wells shown at most.
MAX_FLAGGED = 50


def fit_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per fit of a QC table: samples, flagged samples, the smallest and the
    median weight, the estimation method and status (sorted by flagged, then fit)."""
    missing = [c for c in QC_COLUMNS if c not in table.columns]
    if missing:
        raise KeyError(
            f"a QC table needs the columns {list(QC_COLUMNS)}; missing {missing} "
            f"(found {list(table.columns)})"
        )
    groups = table.groupby("fit_id", sort=True, observed=True)
    out = groups.agg(
        n_samples=("sample_id", "size"),
        n_flagged=("flagged", "sum"),
        min_weight=("weight", "min"),
        median_weight=("weight", "median"),
        method=("method", "first"),
        status=("status", lambda s: ", ".join(sorted(set(map(str, s))))),
    ).reset_index()
    out["n_flagged"] = out["n_flagged"].astype(int)
    return out.sort_values(["n_flagged", "fit_id"], ascending=[False, True], kind="stable")


def qc_section(table: pd.DataFrame | None) -> str:
    """The section for one QC table (``None`` or empty: a note that no run used
    quality weights)."""
    anchor, title = SECTION
    parts = [f'<section id="{anchor}"><h2>{_e(title)}</h2>']
    if table is None or table.empty:
        parts.append(_empty("No DE run of this store estimated sample quality weights."))
        parts.append("</section>")
        return "".join(parts)
    summary = fit_summary(table)
    flagged = table[table["flagged"].astype(bool)].sort_values("weight", kind="stable")
    parts.append(
        _p(
            "Each fit estimated one weight per sample (well) from its residuals, as limma's "
            "arrayWeights (log expression) or voomWithQualityWeights (counts) do, and used "
            "it in the fit: a well far from the others counts less. Weights have a "
            f"geometric mean of 1; a well is flagged when its weight is below {FLAG_BELOW} "
            "(residual variance more than 4 times a typical well's). Status: 'converged', "
            "or limma's reason for stopping (the weights of the last iteration are used)."
        )
    )
    parts.append(
        _frame_table(
            summary,
            caption=f"{len(summary)} fits, {int(summary['n_flagged'].sum())} flagged samples",
        )
    )
    if flagged.empty:
        parts.append(_empty("No sample is flagged."))
    else:
        cols = ["fit_id", "sample_id", "plate", "condition", "weight"]
        parts.append(
            _frame_table(
                flagged[cols],
                caption="flagged samples, lowest weight first",
                max_rows=MAX_FLAGGED,
            )
        )
    parts.append("</section>")
    return "".join(parts)


def store_qc_section(store: str | os.PathLike[str] | Compendium) -> str:
    """The section when the store's ``quality_weights`` table has rows, else ``""``."""
    if isinstance(store, Compendium):
        return _from(store)
    with Compendium.open(store) as comp:
        return _from(comp)


def _from(comp: Compendium) -> str:
    if TABLE not in comp.tables:
        return ""
    table = comp.table(TABLE)
    return qc_section(table) if len(table) else ""

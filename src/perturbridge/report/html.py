"""The agreement report: one self-contained HTML file a person opens in a browser.

:func:`write_report` reads a compendium store (summary and identifier coverage, through
:class:`~perturbridge.compendium.Compendium`) and the agreement tables (an
:class:`~perturbridge.agreement.run.AgreementResult`, an agreement folder, or a fresh
:func:`~perturbridge.agreement.run.run_agreement`), and writes

- ``out``: HTML with inline CSS and the figures embedded as base64 PNG; no external
  resource, no JavaScript;
- ``<out stem>_figures/`` (or ``figures_dir``): every figure as PNG and SVG.

Every text that comes from data is escaped. Empty results (no matched pairs, no
separate-mode effects) are stated in a sentence, not left out.

>>> write_report("compendium", "report.html", agreement_dir="agreement")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._version import __version__
from ..io import atomic_path
from . import figures as F

if TYPE_CHECKING:
    from ..compendium import Compendium
    from .run import AgreementResult

__all__ = ["PUBLISHED_CONTEXT", "read_agreement_tables", "write_report"]

logger = logging.getLogger(__name__)

#: Tables of an agreement folder that the report reads (``<name>.parquet``).
REPORT_TABLES = (
    "cross_summary",
    "replicate_summary",
    "pairs",
    "retrieval",
    "excluded",
    "strata",
    "dose_sensitivity",
)
_MAX_ROWS = 200

#: What the published analysis of the original release found, as context for readers.
PUBLISHED_CONTEXT = (
    "The analysis published with the original release of these harmonised effects found "
    "that matched conditions of the same compound (same cell context and time) from "
    "different datasets agree weakly on fine-grained logFC rankings and magnitudes, often "
    "below a same-context, different-compound baseline, while the direction of the logFC "
    "is stable and usually agrees better than the baseline; within a dataset, replicates "
    "agree well on direction. This report uses the perturbridge profile: its baselines are "
    "cross-dataset (another compound's signature of one dataset compared with the matched "
    "signature of the other), not the published one (each sample against the mean of the "
    "other compounds of its own dataset), so its numbers do not reproduce the published "
    "tables; `perturbridge agreement … --profile published` does. A Δ whose 95 % interval "
    "lies above 0 means that the same compound agrees better than the baseline; an interval "
    "that covers 0 means the data cannot tell the compound's own signal from the shared "
    "response."
)

METRIC_HELP: dict[str, str] = {
    "deg_spearman": (
        "Spearman correlation of the two logFC profiles over the genes called DE on one "
        "side (ranks within those genes), averaged over the two sides. Do the responding "
        "genes respond in the same order of strength on the other side? 1: same order, "
        "0: unrelated, −1: reversed."
    ),
    "direction": (
        "Of the genes called DE on one side, the fraction that move the same way (same "
        "sign of logFC) on the other side, averaged over the two sides. Unrelated "
        "signatures give about 0.5; 1 means every DE gene moves the same way."
    ),
    "spearman": (
        "Spearman correlation of the two logFC profiles over all genes measured on both "
        "sides. Most genes barely move, so values are usually small even for good matches."
    ),
    "top50": (
        "Of the 50 most up- and 50 most down-regulated genes of each side, the fraction "
        "found in the same list (up with up, down with down) on the other side. Unrelated "
        "signatures over G genes share about 50/G."
    ),
    "top100": "As top-50, with the 100 most up- and down-regulated genes.",
    "top200": "As top-50, with the 200 most up- and down-regulated genes.",
    "retrieval_norm_rank": (
        "Each signature of the query dataset is scored against every signature of the "
        "target dataset in its context and time; the normalised rank of the best hit of "
        "the same compound (best rank / (K + 1)). Lower is better; the random floor is "
        "1 / (N + 1) for N positives among K candidates."
    ),
    "retrieval_recall1": (
        "Fraction of queries whose top-scoring candidate is the same compound. Random floor: N / K."
    ),
    "retrieval_auroc": (
        "Area under the ROC curve of the same compound against the other candidates. "
        "Random floor: 0.5."
    ),
}
BASELINE_HELP: dict[str, str] = {
    "cross_centroid_a": (
        "cross-dataset centroid: the mean signature of the other compounds of dataset A at "
        "the same context, dose and time, compared with B's matched signature (with both "
        "DE masks). A compound that beats it carries signal of its own, beyond the response "
        "dataset A shows to any treatment. (Not the published baseline, which compares each "
        "sample with the centroid of its own dataset: see the published profile.)"
    ),
    "centroid": (
        "the mean signature of the other compounds of the dataset at the same context, "
        "dose and time."
    ),
    "cross_centroid_b": (
        "cross-dataset centroid the other way round: the mean signature of the other "
        "compounds of dataset B, compared with A's signature: how well B's generic response "
        "alone would match."
    ),
    "peer_mean": (
        "cross-dataset peers: each other compound of dataset A in the stratum compared on "
        "its own with B's matched signature; the table shows the mean over at most 50 peers. "
        "Above the peers: the match is specific to this compound."
    ),
    "random_floor": "the exact expectation for a random ordering of the candidates.",
}
BASELINE_HELP["peers"] = BASELINE_HELP["peer_mean"]

FIGURE_HELP: dict[str, str] = {
    "cross_agreement": (
        "One panel per metric, one row per dataset pair. The black dot is the observed "
        "agreement of matched conditions (nested mean over strata and compounds) with its "
        "95 % compound-clustered bootstrap interval; the coloured markers are the "
        "baselines. A dot clearly to the right of the baselines (to the left for the "
        "normalised rank) means the same compound agrees better than other compounds do."
    ),
    "cross_heatmap": (
        "Left: observed agreement between each pair of datasets (symmetric); the outlined "
        "diagonal is replicate agreement within the dataset, the ceiling that cross-dataset "
        "agreement can hope to reach. Right: Δ = observed − baseline, rows the source "
        "dataset whose signature the baseline replaces; red means better than the "
        "baseline, blue worse, grey cells have no data."
    ),
    "retrieval": (
        "One row per query → target dataset (↔: queries of both directions pooled). The "
        "black dot is the observed mean with its 95 % interval, the grey cross the exact "
        "random floor. For the normalised rank lower is better; for recall@1 and AUROC "
        "higher is better."
    ),
    "replicate_agreement": (
        "Agreement of replicate signatures of the same condition within each dataset, "
        "with its 95 % interval, against the centroid and peer baselines built from the "
        "other compounds' replicates."
    ),
    "dose_sensitivity": (
        "Observed agreement (solid) and the source-centroid baseline (dashed) per dataset "
        "pair as the largest dose ratio allowed between matched conditions widens from "
        "exact to 10×. More pairs enter at looser tolerances; a falling line means dose "
        "mismatch costs agreement."
    ),
}

_CSS = """
:root { --fg: #111827; --muted: #4b5563; --line: #e5e7eb; --accent: #1d4ed8;
        --pos: #047857; --neg: #b91c1c; --bg-alt: #f9fafb; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; line-height: 1.5;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue",
       Arial, sans-serif; }
main { max-width: 1320px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 1.7em; margin: 0.2em 0 0.1em; }
h2 { font-size: 1.3em; margin: 2.2em 0 0.5em; padding-bottom: 0.2em;
     border-bottom: 2px solid var(--line); }
h3 { font-size: 1.08em; margin: 1.6em 0 0.4em; }
p, li { max-width: 62em; }
.meta { color: var(--muted); font-size: 0.92em; margin: 0.2em 0; }
.meta code { font-size: 0.95em; }
nav ol { columns: 2; max-width: 44em; padding-left: 1.4em; }
nav a { color: var(--accent); text-decoration: none; }
.note { background: #eff6ff; border-left: 4px solid #93c5fd; padding: 8px 14px;
        margin: 12px 0; max-width: 62em; }
.warn { background: #fef3c7; border-left: 4px solid #f59e0b; padding: 8px 14px;
        margin: 12px 0; max-width: 62em; }
.empty { color: var(--muted); font-style: italic; }
.table-wrap { overflow-x: auto; margin: 8px 0 16px; }
table { border-collapse: collapse; font-size: 0.85em; }
caption { caption-side: top; text-align: left; color: var(--muted); padding: 2px 0 6px;
          font-size: 0.95em; }
th, td { padding: 3px 7px; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: top; white-space: nowrap; }
thead th { background: #f3f4f6; border-bottom: 2px solid #d1d5db; font-weight: 600; }
thead tr.group th { text-align: center; border-bottom: 1px solid #d1d5db; }
tbody tr:nth-child(even) { background: var(--bg-alt); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.pos { color: var(--pos); font-weight: 600; }
td.neg { color: var(--neg); font-weight: 600; }
figure { margin: 16px 0 28px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 0.9em; max-width: 62em; margin-top: 6px; }
dl.help dt { font-weight: 600; margin-top: 6px; }
dl.help dd { margin: 0 0 4px 1.2em; max-width: 60em; }
details { margin: 10px 0 18px; }
details > summary { cursor: pointer; color: var(--accent); }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr));
        gap: 8px 20px; }
.grid figure { margin: 8px 0; }
footer { margin-top: 48px; color: var(--muted); font-size: 0.85em; }
"""


# --------------------------------------------------------------------------- inputs


@dataclass
class _Agreement:
    """The agreement tables the report shows (empty frames where absent)."""

    cross_summary: pd.DataFrame
    replicate_summary: pd.DataFrame
    pairs: pd.DataFrame
    retrieval: pd.DataFrame
    excluded: pd.DataFrame
    strata: pd.DataFrame
    dose_sensitivity: pd.DataFrame | None
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _frame(value: Any) -> pd.DataFrame:
    return value if isinstance(value, pd.DataFrame) else pd.DataFrame()


def read_agreement_tables(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The tables of an agreement folder (``<name>.parquet``, else ``<name>.csv``) and
    its ``agreement.json`` (key ``info``); absent tables are ``None``.

    Raises ``FileNotFoundError`` when the folder has neither ``agreement.json`` nor
    ``cross_summary``.
    """
    folder = Path(folder)
    out: dict[str, Any] = {}
    for name in REPORT_TABLES:
        parquet, csv = folder / f"{name}.parquet", folder / f"{name}.csv"
        if parquet.is_file():
            out[name] = pd.read_parquet(parquet)
        elif csv.is_file():
            out[name] = pd.read_csv(csv)
        else:
            out[name] = None
    info_path = folder / "agreement.json"
    out["info"] = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    if not out["info"] and out["cross_summary"] is None:
        found = sorted(p.name for p in folder.iterdir())[:10] if folder.is_dir() else []
        raise FileNotFoundError(
            f"{folder} is not an agreement folder: expected agreement.json and "
            f"cross_summary.parquet (from `perturbridge agreement STORE --out DIR`), "
            f"found {found or 'nothing'}"
        )
    return out


def _from_mapping(tables: Mapping[str, Any], *, where: str) -> _Agreement:
    notes = [
        f"{name} was not found in {where}; its section is empty."
        for name in ("cross_summary", "replicate_summary", "pairs", "retrieval", "excluded")
        if tables.get(name) is None
    ]
    dose = tables.get("dose_sensitivity")
    return _Agreement(
        cross_summary=_frame(tables.get("cross_summary")),
        replicate_summary=_frame(tables.get("replicate_summary")),
        pairs=_frame(tables.get("pairs")),
        retrieval=_frame(tables.get("retrieval")),
        excluded=_frame(tables.get("excluded")),
        strata=_frame(tables.get("strata")),
        dose_sensitivity=dose if isinstance(dose, pd.DataFrame) else None,
        info=dict(tables.get("info") or {}),
        notes=notes,
    )


def _from_result(result: Any) -> _Agreement:
    tables = {name: getattr(result, name, None) for name in REPORT_TABLES}
    info = dict(getattr(result, "info", None) or {})
    options = getattr(result, "options", None)
    if options and "options" not in info:
        info["options"] = dict(options)
    tables["info"] = info
    return _from_mapping(tables, where="the result")


# --------------------------------------------------------------------------- compendium


def _columns(comp: Compendium, table: str) -> set[str]:
    return set(comp.sql(f"SELECT * FROM {table} LIMIT 0").columns)


def _coverage_conditions(comp: Compendium) -> pd.DataFrame:
    """Per dataset: conditions and how many carry each compound identifier."""
    cols = _columns(comp, "conditions")
    parts = ["count(*) AS n_conditions"]
    if "pert_dose_uM" in cols:
        parts.append("count(*) FILTER (WHERE pert_dose_uM > 0) AS n_dosed")
    for col, name in (
        ("compound_inchikey", "n_inchikey"),
        ("compound_parent_inchikey", "n_parent_inchikey"),
        ("pubchem_cid", "n_pubchem_cid"),
    ):
        if col in cols:
            parts.append(f"count({col}) AS {name}")
    if "compound_id" in cols:
        parts.append("count(DISTINCT compound_id) AS n_compounds")
    return comp.sql(
        f"SELECT dataset, {', '.join(parts)} FROM conditions GROUP BY dataset ORDER BY dataset"
    )


def _shared(comp: Compendium) -> pd.DataFrame:
    """Per dataset pair: compounds, and (compound, context, time) keys, in both."""
    cols = _columns(comp, "conditions")
    if not {"compound_id", "cell_context", "pert_time_h"} <= cols:
        return pd.DataFrame()
    return comp.sql(
        """
        WITH c AS (SELECT DISTINCT dataset, compound_id FROM conditions
                   WHERE compound_id IS NOT NULL),
             k AS (SELECT DISTINCT dataset, compound_id, cell_context,
                          round(pert_time_h, 6) AS t FROM conditions
                   WHERE compound_id IS NOT NULL),
             sc AS (SELECT a.dataset AS dataset_a, b.dataset AS dataset_b,
                           count(*) AS n_shared_compounds
                    FROM c a JOIN c b ON a.compound_id = b.compound_id
                    AND a.dataset < b.dataset GROUP BY ALL),
             sk AS (SELECT a.dataset AS dataset_a, b.dataset AS dataset_b,
                           count(*) AS n_shared_keys
                    FROM k a JOIN k b ON a.compound_id = b.compound_id
                    AND a.cell_context = b.cell_context AND a.t = b.t
                    AND a.dataset < b.dataset GROUP BY ALL)
        SELECT sc.dataset_a, sc.dataset_b, sc.n_shared_compounds,
               coalesce(sk.n_shared_keys, 0) AS n_shared_keys
        FROM sc LEFT JOIN sk USING (dataset_a, dataset_b)
        ORDER BY sc.dataset_a, sc.dataset_b
        """
    )


def _status_counts(comp: Compendium, column: str, *, treated_only: bool) -> pd.DataFrame:
    """Per dataset: samples by ``column`` (``compound_status`` / ``cell_status``)."""
    cols = _columns(comp, "samples")
    if column not in cols:
        return pd.DataFrame()
    where = "WHERE NOT coalesce(is_control, false)" if treated_only and "is_control" in cols else ""
    counts = comp.sql(
        f"SELECT dataset, coalesce(CAST({column} AS VARCHAR), 'missing') AS status, "
        f"count(*) AS n FROM samples {where} GROUP BY ALL ORDER BY dataset"
    )
    if counts.empty:
        return counts
    wide = counts.pivot_table(index="dataset", columns="status", values="n", aggfunc="sum")
    order = [s for s in ("resolved", "ambiguous", "unresolved", "missing") if s in wide.columns]
    wide = wide[order + sorted(set(wide.columns) - set(order))].fillna(0).astype(np.int64)
    wide.insert(0, "n_samples", wide.sum(axis=1))
    return wide.reset_index()


def _compendium(store: str | os.PathLike[str]) -> dict[str, Any]:
    from ..compendium import Compendium

    with Compendium.open(store) as comp:
        summary = comp.summary()
        return {
            "summary": summary,
            "coverage": _coverage_conditions(comp),
            "shared": _shared(comp),
            "compound_status": _status_counts(comp, "compound_status", treated_only=True),
            "cell_status": _status_counts(comp, "cell_status", treated_only=False),
        }


# --------------------------------------------------------------------------- formatting


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _isnan(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _num(value: Any, *, signed: bool = False, digits: int = 3) -> str:
    """A number for a table: integers with thousands separators, floats to ``digits``."""
    if value is None or _isnan(value):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):+,}" if signed else f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        if v != 0 and abs(v) < 10 ** (-digits) and not signed:
            text = f"{v:.1e}"  # a tiny level; a tiny difference (signed) reads as ±0.000
        elif abs(v) >= 1000:
            text = f"{v:+,.0f}" if signed else f"{v:,.0f}"
        else:
            text = f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"
        return text.replace("-", "−")
    return str(value)


def _ci(value: Any, low: Any, high: Any, *, signed: bool = False) -> str:
    text = _num(value, signed=signed)
    if low is None or high is None or _isnan(low) or _isnan(high):
        return text
    return f"{text} [{_num(low, signed=signed)}, {_num(high, signed=signed)}]"


def _pct(part: Any, whole: Any) -> str:
    if whole is None or _isnan(whole) or int(whole) == 0:
        return "–"
    return f"{int(part):,} ({100.0 * int(part) / int(whole):.1f} %)"


@dataclass
class _Cell:
    text: str
    cls: str = ""  # "num", "num pos", ...


def _cell(value: Any) -> _Cell:
    if isinstance(value, _Cell):
        return value
    is_num = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )
    return _Cell(_num(value), "num" if is_num or value is None or _isnan(value) else "")


def _delta_cell(value: Any, low: Any, high: Any) -> _Cell:
    cls = "num"
    if not any(v is None or _isnan(v) for v in (low, high)):
        if float(low) > 0:
            cls = "num pos"
        elif float(high) < 0:
            cls = "num neg"
    return _Cell(_ci(value, low, high, signed=True), cls)


def _table(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    groups: Sequence[tuple[str, int]] | None = None,
    caption: str | None = None,
    total: int | None = None,
) -> str:
    """An HTML table; every header and cell text is escaped."""
    rows = list(rows)
    out = ['<div class="table-wrap"><table>']
    if caption:
        out.append(f"<caption>{_e(caption)}</caption>")
    out.append("<thead>")
    if groups:
        out.append('<tr class="group">')
        out.extend(
            f'<th colspan="{span}">{_e(name)}</th>' if span > 1 else f"<th>{_e(name)}</th>"
            for name, span in groups
        )
        out.append("</tr>")
    out.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead><tbody>")
    for row in rows:
        cells = [_cell(v) for v in row]
        out.append(
            "<tr>"
            + "".join(
                f'<td class="{c.cls}">{_e(c.text)}</td>' if c.cls else f"<td>{_e(c.text)}</td>"
                for c in cells
            )
            + "</tr>"
        )
    out.append("</tbody></table></div>")
    if total is not None and total > len(rows):
        out.append(
            f'<p class="meta">Showing the first {len(rows):,} of {total:,} rows; the full '
            "table is in the agreement folder.</p>"
        )
    return "".join(out)


def _frame_table(
    df: pd.DataFrame,
    *,
    labels: Mapping[str, str] | None = None,
    caption: str | None = None,
    max_rows: int = _MAX_ROWS,
) -> str:
    """A DataFrame as an HTML table (first ``max_rows`` rows, with a note)."""
    labels = labels or {}
    header = [labels.get(str(c), str(c).replace("_", " ")) for c in df.columns]
    rows = [
        [_plain(v) for v in row] for row in df.head(max_rows).itertuples(index=False, name=None)
    ]
    return _table(header, rows, caption=caption, total=len(df))


def _plain(value: Any) -> Any:
    """List-like cells (e.g. ``datasets`` of the catalog) as comma-separated text."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(str(v) for v in value)
    return value


def _empty(text: str) -> str:
    return f'<p class="empty">{_e(text)}</p>'


def _p(text: str, cls: str | None = None) -> str:
    return f'<p class="{cls}">{_e(text)}</p>' if cls else f"<p>{_e(text)}</p>"


# --------------------------------------------------------------------------- sections


def _overall(summary: pd.DataFrame) -> pd.DataFrame:
    if summary.empty:
        return summary
    rows = summary
    if "cell_context" in rows.columns:
        rows = rows[rows["cell_context"].astype(str) == "*"]
    return rows


def _metrics(rows: pd.DataFrame) -> list[str]:
    if rows.empty:
        return []
    return F._ordered(rows["metric"][rows["metric"] != "*"], tuple(F.METRIC_LABELS))


def _baselines(rows: pd.DataFrame) -> list[str]:
    if rows.empty:
        return []
    return F._ordered(rows["baseline"][rows["baseline"] != "*"], tuple(F.BASELINE_LABELS))


def _labelled(rows: pd.DataFrame, *, directed: bool = False) -> pd.DataFrame:
    return F.label_rows(rows, directed=directed)


def _metric_table(rows: pd.DataFrame, metric: str, *, label: str, extra: Sequence[str] = ()) -> str:
    """Observed [CI], and per baseline its value and Δ [CI], then counts; one row per label."""
    rows = rows[rows["metric"] == metric]
    baselines = _baselines(rows)
    header = [label, *extra, "observed [95% CI]"]
    groups: list[tuple[str, int]] = [("", 1 + len(extra)), ("", 1)]
    for base in baselines:
        header += ["value", "Δ [95% CI]"]
        groups.append((F.baseline_label(base), 2))
    counts = {"n_pairs": "pairs", "n_compounds": "compounds", "n_strata": "strata"}
    header += list(counts.values())
    groups.append(("counts", len(counts)))
    body = []
    keys = ["_label", *extra]
    for _, grp in rows.groupby(keys, sort=False):
        first = grp.iloc[0]
        line: list[Any] = [first["_label"], *(first[c] for c in extra)]
        line.append(
            _Cell(
                _ci(first["observed"], first.get("observed_low"), first.get("observed_high")), "num"
            )
        )
        for base in baselines:
            b = grp[grp["baseline"] == base]
            if b.empty:
                line += [None, None]
                continue
            r = b.iloc[0]
            line.append(r["baseline_value"])
            line.append(_delta_cell(r["delta"], r.get("delta_low"), r.get("delta_high")))
        for col in counts:
            v = first.get(col)
            line.append(None if v is None or _isnan(v) else int(v))
        body.append(line)
    return _table(header, body, groups=groups, caption=F.metric_label(metric))


def _undefined_note(rows: pd.DataFrame) -> str:
    """A sentence naming the metrics of ``rows`` without any defined value."""
    missing = [m for m in _metrics(rows) if m not in F.defined_metrics(rows)]
    if not missing:
        return ""
    names = ", ".join(F.metric_label(m) for m in missing)
    return _empty(
        f"No defined values of {names}: a top-k overlap needs at least 2k genes measured "
        "on both sides, a correlation at least 3 genes (3 DE genes for the DEG-restricted "
        "one) and a direction agreement at least one DE gene."
    )


def _help_list(items: Iterable[tuple[str, str]]) -> str:
    return (
        '<dl class="help">'
        + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items)
        + "</dl>"
    )


@dataclass
class _Fig:
    name: str
    png: bytes


def _figure_html(fig: _Fig | None, caption: str, *, how: bool = True) -> str:
    if fig is None:
        return ""
    data = base64.b64encode(fig.png).decode("ascii")
    alt = fig.name.replace("_", " ")
    return (
        f'<figure id="fig-{_e(fig.name)}"><img src="data:image/png;base64,{data}" '
        f'alt="{_e(alt)}"><figcaption>{"<b>How to read:</b> " if how else ""}'
        f"{_e(caption)}</figcaption></figure>"
    )


def _section_summary(comp: Mapping[str, Any]) -> str:
    s = comp["summary"]
    counts = dict(s["counts"])
    for mode, n in sorted(s.get("contrasts", {}).items()):
        counts[f"contrasts ({mode} mode)"] = n
    out = ['<section id="compendium"><h2>1. Compendium summary</h2>']
    assays = ", ".join(str(a) for a in s.get("assays", []) if str(a)) or "–"
    out.append(
        f'<p class="meta">Store <code>{_e(s.get("path", ""))}</code>, build key '
        f"<code>{_e(str(s.get('build_key') or '–')[:16])}</code>, built with perturbridge "
        f"{_e(s.get('version') or '–')}. Assays: {_e(assays)}.</p>"
    )
    out.append(
        _table(
            ["quantity", "count"],
            [[k.replace("_", " "), int(v)] for k, v in counts.items()],
            caption="Counts",
        )
    )
    datasets = s.get("datasets")
    if isinstance(datasets, pd.DataFrame) and not datasets.empty:
        out.append(_frame_table(datasets, caption="Datasets"))
    else:
        out.append(_empty("The store has no datasets."))
    ledger = s.get("ledger")
    out.append("<h3>Ledger totals</h3>")
    out.append(
        _p(
            "Every input row, cell and gene is kept or dropped with a reason; these "
            "are the totals by stage, status and reason."
        )
    )
    if isinstance(ledger, pd.DataFrame) and not ledger.empty:
        out.append(_frame_table(ledger, max_rows=60))
    else:
        out.append(_empty("The ledger of this store is empty (nothing was dropped or noted)."))
    out.append("</section>")
    return "".join(out)


def _section_coverage(comp: Mapping[str, Any]) -> str:
    out = ['<section id="coverage"><h2>2. Identifier coverage</h2>']
    out.append(
        _p(
            "Cross-dataset matching needs the same compound identity on both sides: the parent "
            "InChIKey (salts and charges stripped) when resolved, else the InChIKey. A condition "
            "without either keeps an opaque dataset-local id and cannot match another dataset."
        )
    )
    cov = comp["coverage"]
    if cov.empty:
        out.append(_empty("The store has no conditions."))
    else:
        rows = []
        for r in cov.to_dict("records"):
            n = r["n_conditions"]
            rows.append(
                [
                    r["dataset"],
                    int(n),
                    *(
                        _Cell(_pct(r[c], n), "num")
                        for c in ("n_dosed", "n_inchikey", "n_parent_inchikey", "n_pubchem_cid")
                        if c in r
                    ),
                    *([int(r["n_compounds"])] if "n_compounds" in r else []),
                ]
            )
        header = ["dataset", "conditions"]
        labels = {
            "n_dosed": "dose > 0",
            "n_inchikey": "with InChIKey",
            "n_parent_inchikey": "with parent InChIKey",
            "n_pubchem_cid": "with PubChem CID",
        }
        header += [labels[c] for c in labels if c in cov.columns]
        if "n_compounds" in cov.columns:
            header.append("distinct compounds")
        out.append(_table(header, rows, caption="Conditions by dataset"))
    shared = comp["shared"]
    if isinstance(shared, pd.DataFrame) and not shared.empty:
        out.append(
            _table(
                ["dataset A", "dataset B", "shared compounds", "shared compound × context × time"],
                shared.itertuples(index=False, name=None),
                caption="Compounds two datasets have in common (the candidates for matching)",
            )
        )
    else:
        out.append(_empty("No two datasets share a compound identity."))
    for key, what in (
        ("compound_status", "Compound identifier status of treated samples"),
        ("cell_status", "Cell identifier status of all samples"),
    ):
        table = comp[key]
        if isinstance(table, pd.DataFrame) and not table.empty:
            out.append(_frame_table(table, caption=what))
    if all(
        not isinstance(comp[k], pd.DataFrame) or comp[k].empty
        for k in ("compound_status", "cell_status")
    ):
        out.append(
            _empty(
                "The store has no sample-level identifier status (for example, a "
                "store imported from release DE files has no samples)."
            )
        )
    out.append("</section>")
    return "".join(out)


def _pairs_overview(pairs: pd.DataFrame, strata: pd.DataFrame) -> str:
    if pairs.empty:
        return ""
    rows = []
    for (a, b), grp in pairs.groupby(["dataset_a", "dataset_b"], sort=True):
        dl = grp["dlog10_dose"].abs() if "dlog10_dose" in grp else pd.Series(dtype=float)
        line: list[Any] = [
            a,
            b,
            len(grp),
            grp["compound"].nunique(),
            grp["cell_context"].nunique() if "cell_context" in grp else None,
            _Cell(_pct(int((dl <= 1e-6).sum()), len(grp)), "num"),
            float(dl.median()) if len(dl) else None,
        ]
        if not strata.empty and {"dataset_a", "dataset_b", "kept"} <= set(strata.columns):
            st = strata[(strata["dataset_a"] == a) & (strata["dataset_b"] == b)]
            line.append(f"{int(st['kept'].astype(bool).sum()):,} of {len(st):,}")
        else:
            line.append(None)
        rows.append(line)
    return _table(
        [
            "dataset A",
            "dataset B",
            "matched pairs",
            "compounds",
            "contexts",
            "exact dose",
            "median |Δ log10 dose|",
            "strata kept",
        ],
        rows,
        caption="Matched condition pairs (same compound, context and time; mutual-nearest dose)",
    )


def _by_context(rows: pd.DataFrame, metrics: Sequence[str], *, label: str) -> str:
    ctx = rows[rows["cell_context"].astype(str) != "*"] if "cell_context" in rows else rows[:0]
    if ctx.empty:
        return ""
    ctx = _labelled(ctx)
    parts = ["<details><summary>By cell context (one table per metric)</summary>"]
    for metric in metrics:
        sub = ctx[ctx["metric"] == metric]
        if F.defined_metrics(sub):
            parts.append(_metric_table(sub, metric, label=label, extra=("cell_context",)))
    parts.append("</details>")
    return "".join(parts)


def _section_cross(ag: _Agreement, figs: Mapping[str, _Fig], options: Mapping[str, Any]) -> str:
    out = ['<section id="cross"><h2>3. Cross-dataset agreement</h2>']
    out.append(
        _p(
            "Conditions of two datasets are matched when they share the compound identity, the "
            "cell context and the time; doses are paired as mutual nearest neighbours in log10 "
            "dose. For each matched pair the observed value of a metric is compared with "
            "baselines that replace the source signature by something that is not the compound "
            "(keeping its DE genes, so only the logFC values differ). Summaries are nested means "
            "(over strata, of the mean over compounds) with 95 % compound-clustered BCa "
            "bootstrap intervals; Δ = observed − baseline, in bold green when its interval lies "
            "above 0 and red when below."
        )
    )
    out.append(f'<div class="note"><b>Context.</b> {_e(PUBLISHED_CONTEXT)}</div>')
    rows = _overall(ag.cross_summary)
    pair_rows = rows[~rows["metric"].isin(F.RETRIEVAL_METRICS)] if not rows.empty else rows
    metrics = _metrics(pair_rows)
    out.append("<h3>Metrics</h3>")
    out.append(
        _help_list(
            (F.metric_label(m), METRIC_HELP.get(m, ""))
            for m in (metrics or [m for m in F.METRIC_LABELS if not m.startswith("retr")])
        )
    )
    out.append("<h3>Baselines</h3>")
    bases = _baselines(pair_rows) or ["cross_centroid_a", "cross_centroid_b", "peer_mean"]
    out.append(_help_list((F.baseline_label(b), BASELINE_HELP.get(b, "")) for b in bases))
    out.append("<h3>Matched pairs</h3>")
    if ag.pairs.empty and pair_rows.empty:
        mc = options.get("min_compounds", 10)
        out.append(
            _empty(
                "No dataset pairs had matched conditions: no two datasets share a compound, "
                f"context and time with at least {mc} matched compounds in a stratum "
                "(option min_compounds). There is nothing to compare across datasets."
            )
        )
        out.append("</section>")
        return "".join(out)
    out.append(_pairs_overview(ag.pairs, ag.strata) or _empty("The pairs table is empty."))
    out.append("<h3>Agreement by dataset pair (all contexts)</h3>")
    if pair_rows.empty:
        out.append(_empty("No summaries: the cross_summary table has no pair-metric rows."))
    else:
        labelled = _labelled(pair_rows)
        for metric in F.defined_metrics(pair_rows):
            out.append(_metric_table(labelled, metric, label="dataset pair (A vs B)"))
        out.append(_undefined_note(pair_rows))
        out.append(_figure_html(figs.get("cross_agreement"), FIGURE_HELP["cross_agreement"]))
        heat = [figs[k] for k in figs if k.startswith("cross_heatmap_")]
        if heat:
            out.append("<h3>Dataset × dataset</h3>")
            out.append(
                f'<p class="meta"><b>How to read:</b> {_e(FIGURE_HELP["cross_heatmap"])}</p>'
            )
            out.append('<div class="grid">')
            for fig in heat:
                metric = fig.name.removeprefix("cross_heatmap_")
                out.append(_figure_html(fig, F.metric_label(metric), how=False))
            out.append("</div>")
        out.append(
            _by_context(
                ag.cross_summary[~ag.cross_summary["metric"].isin(F.RETRIEVAL_METRICS)],
                metrics,
                label="dataset pair (A vs B)",
            )
        )
    out.append("</section>")
    return "".join(out)


def _section_retrieval(ag: _Agreement, figs: Mapping[str, _Fig]) -> str:
    out = ['<section id="retrieval"><h2>4. Retrieval against the random floor</h2>']
    out.append(
        _p(
            "Can the same compound be found in the other dataset? Each signature of the query "
            "dataset is scored against every signature of the target dataset in its context and "
            "time (K candidates, N of them the same compound). Every query has its own exact "
            "random floor; the table puts observed and floor side by side."
        )
    )
    out.append(_help_list((F.metric_label(m), METRIC_HELP[m]) for m in F.RETRIEVAL_METRICS))
    summary = F.retrieval_summary(ag.cross_summary, ag.retrieval)
    if summary.empty:
        out.append(_empty("No retrieval queries: no dataset pair had matched conditions."))
        out.append("</section>")
        return "".join(out)
    labelled = _labelled(summary, directed=True)
    measures = _metrics(labelled)
    header = ["query → target"]
    groups: list[tuple[str, int]] = [("", 1)]
    for m in measures:
        header += ["observed [95% CI]", "floor"]
        groups.append((F.metric_label(m), 2))
    header += ["queries", "compounds"]
    groups.append(("counts", 2))
    body = []
    for lab, grp in labelled.groupby("_label", sort=False):
        line: list[Any] = [lab]
        for m in measures:
            r = grp[grp["metric"] == m]
            if r.empty:
                line += [None, None]
                continue
            x = r.iloc[0]
            line += [
                _Cell(_ci(x["observed"], x.get("observed_low"), x.get("observed_high")), "num"),
                x["baseline_value"],
            ]
        first = grp.iloc[0]
        line += [
            None if _isnan(first.get("n_pairs")) else int(first["n_pairs"]),
            None if _isnan(first.get("n_compounds")) else int(first["n_compounds"]),
        ]
        body.append(line)
    out.append(
        _table(
            header,
            body,
            groups=groups,
            caption="Retrieval of the same compound (↔: both directions pooled)",
        )
    )
    out.append(_figure_html(figs.get("retrieval"), FIGURE_HELP["retrieval"]))
    out.append("</section>")
    return "".join(out)


def _section_replicate(ag: _Agreement, figs: Mapping[str, _Fig]) -> str:
    out = ['<section id="replicate"><h2>5. Replicate agreement within datasets</h2>']
    out.append(
        _p(
            "Separate-mode effects give one signature per replicate contrast of a condition. "
            "The observed value of a condition is the mean of the metric over its replicate "
            "pairs; baselines are built from the other compounds' replicate signatures at the "
            "same context, dose and time. Replicate agreement is the ceiling for cross-dataset "
            "agreement: two datasets cannot agree better than each agrees with itself."
        )
    )
    rows = _overall(ag.replicate_summary)
    if rows.empty:
        out.append(_empty("Replicate agreement was not computed (no replicate_summary)."))
        out.append("</section>")
        return "".join(out)
    has = rows
    if "n_conditions" in rows.columns:
        has = rows[rows["n_conditions"].fillna(0) > 0]
    has = has[has["metric"] != "*"] if "metric" in has.columns else has
    without = rows[~rows["dataset"].isin(set(has["dataset"]))].drop_duplicates("dataset")
    if has.empty:
        out.append(
            _empty(
                "No dataset has separate-mode (per-replicate) effects with two or "
                "more replicates, so replicate agreement could not be computed."
            )
        )
    else:
        labelled = _labelled(has)
        for metric in F.defined_metrics(labelled):
            out.append(_metric_table(labelled, metric, label="dataset"))
        out.append(_undefined_note(labelled))
        out.append(
            _figure_html(figs.get("replicate_agreement"), FIGURE_HELP["replicate_agreement"])
        )
    if not without.empty:
        reason = (
            without["reason"] if "reason" in without.columns else pd.Series("", index=without.index)
        )
        out.append(
            _table(
                ["dataset", "reason"],
                zip(without["dataset"], reason.fillna(""), strict=True),
                caption="Datasets without replicate agreement",
            )
        )
    out.append(
        _by_context(
            ag.replicate_summary[ag.replicate_summary["metric"] != "*"]
            if "metric" in ag.replicate_summary
            else ag.replicate_summary,
            _metrics(has),
            label="dataset",
        )
    )
    out.append("</section>")
    return "".join(out)


def _section_dose(ag: _Agreement, figs: Mapping[str, _Fig]) -> str:
    out = ['<section id="dose"><h2>6. Dose sensitivity</h2>']
    dose = ag.dose_sensitivity
    if dose is None or dose.empty:
        out.append(
            _empty(
                "Dose sensitivity was not computed (run the agreement with "
                "--dose-sensitivity), or no pair had matches at any tolerance."
            )
        )
        out.append("</section>")
        return "".join(out)
    out.append(
        _p(
            "The matching and the summaries recomputed with the largest allowed dose ratio "
            "between matched conditions exact, 2×, 3× and 10× (no intervals)."
        )
    )
    out.append(_dose_table(dose))
    out.append(_figure_html(figs.get("dose_sensitivity"), FIGURE_HELP["dose_sensitivity"]))
    out.append("</section>")
    return "".join(out)


def _dose_table(dose: pd.DataFrame) -> str:
    """One row per dataset pair × metric; per threshold: observed, Δ and pairs."""
    tcol = F.threshold_column(dose)
    if tcol is None:
        return _frame_table(dose)
    table = dose
    note = ""
    if "baseline" in table.columns and "baseline_value" in table.columns:
        bases = _baselines(table)
        if bases:
            table = table[table["baseline"] == bases[0]]
            note = f" Δ against the {F.baseline_label(bases[0]).lower()}."
    table = table[table["metric"].isin(F.defined_metrics(table))]
    thresholds = sorted(pd.unique(table[tcol].astype(float)))
    header = ["dataset pair", "metric"]
    groups: list[tuple[str, int]] = [("", 2)]
    for t in thresholds:
        header += ["observed", "Δ", "pairs"]
        groups.append((F.threshold_label(t), 3))
    body = []
    labelled = _labelled(table)
    for (lab, metric), grp in labelled.groupby(["_label", "metric"], sort=False):
        line: list[Any] = [lab, F.metric_label(str(metric))]
        for t in thresholds:
            r = grp[np.isclose(grp[tcol].astype(float), t)]
            if r.empty:
                line += [None, None, None]
                continue
            x = r.iloc[0]
            line += [
                x["observed"],
                _Cell(_num(x.get("delta"), signed=True), "num"),
                None if _isnan(x.get("n_pairs")) else int(x["n_pairs"]),
            ]
        body.append(line)
    caption = "Observed agreement and Δ by the largest dose ratio allowed." + note
    return _table(header, body, groups=groups, caption=caption)


def _section_excluded(ag: _Agreement) -> str:
    out = ['<section id="excluded"><h2>7. Excluded conditions</h2>']
    out.append(
        _p(
            "What was not used and why: conditions without a compound identity, vehicles and "
            "other conditions without a positive dose, conditions without a partner in the "
            "other dataset, and strata with too few compounds. Counts by dataset and reason."
        )
    )
    ex = ag.excluded
    if ex.empty:
        out.append(_empty("No conditions were excluded."))
    else:
        sort = [c for c in ("dataset", "other_dataset", "status", "reason") if c in ex.columns]
        out.append(_frame_table(ex.sort_values(sort, kind="stable") if sort else ex))
    out.append("</section>")
    return "".join(out)


def _flatten(prefix: str, value: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _flatten(f"{prefix}.{k}" if prefix else str(k), v)
    elif isinstance(value, (list, tuple)):
        yield prefix, ", ".join(map(str, value)) if value else "–"
    else:
        yield prefix, value


def _text(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _section_run(ag: _Agreement, options: Mapping[str, Any]) -> str:
    out = ['<section id="run"><h2>8. Run parameters</h2>']
    if options:
        rows = [[k, _text(v)] for k, v in _flatten("", dict(options))]
        out.append(_table(["option", "value"], rows, caption="Options of the agreement run"))
    else:
        out.append(_empty("The agreement options were not recorded."))
    info = {k: v for k, v in ag.info.items() if k != "options"}
    if info:
        rows = [[k, _text(v)] for k, v in _flatten("", info)]
        out.append(_table(["field", "value"], rows, caption="agreement.json"))
    out.append("</section>")
    return "".join(out)


def _build_key_warning(ag: _Agreement, summary: Mapping[str, Any]) -> str:
    theirs, ours = ag.info.get("build_key"), summary.get("build_key")
    if theirs and ours and str(theirs) != str(ours):
        return (
            '<div class="warn">The agreement tables were computed on store build '
            f"<code>{_e(str(theirs)[:16])}</code>, but this store is build "
            f"<code>{_e(str(ours)[:16])}</code>: the store changed since the agreement run; "
            "rerun <code>perturbridge agreement</code>.</div>"
        )
    return ""


_SECTIONS = (
    ("compendium", "Compendium summary"),
    ("coverage", "Identifier coverage"),
    ("cross", "Cross-dataset agreement"),
    ("retrieval", "Retrieval against the random floor"),
    ("replicate", "Replicate agreement"),
    ("dose", "Dose sensitivity"),
    ("excluded", "Excluded conditions"),
    ("run", "Run parameters"),
)


def _render(
    *,
    title: str,
    comp: Mapping[str, Any],
    ag: _Agreement,
    figs: Mapping[str, _Fig],
    options: Mapping[str, Any],
) -> str:
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(f'<li><a href="#{k}">{_e(v)}</a></li>' for k, v in _SECTIONS)
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
        f"<header><h1>{_e(title)}</h1>"
        '<p class="meta">Profile <b>perturbridge</b> (our definitions; every table below) · '
        f"Store <code>{_e(comp['summary'].get('path', ''))}</code> · "
        f"generated {_e(now)} by perturbridge {_e(__version__)}</p></header>"
    )
    intro = (
        '<section id="reading"><h2>How to read this report</h2>'
        + _p(
            "How well do two signatures (logFC profiles over genes) of the same compound "
            "agree: within a dataset (replicates) and across datasets (same compound, cell "
            "context and time)? Every number is compared with a baseline that is not the "
            "compound, because datasets share responses that any treatment causes; the "
            "question is whether the compound's own signal carries over. Definitions are in "
            "docs/agreement.md of the package."
        )
        + "".join(f'<div class="warn">{_e(n)}</div>' for n in ag.notes)
        + _build_key_warning(ag, comp["summary"])
        + f"<nav><ol>{nav}</ol></nav></section>"
    )
    body = [
        _section_summary(comp),
        _section_coverage(comp),
        _section_cross(ag, figs, options),
        _section_retrieval(ag, figs),
        _section_replicate(ag, figs),
        _section_dose(ag, figs),
        _section_excluded(ag),
        _section_run(ag, options),
    ]
    foot = (
        f"<footer>perturbridge {_e(__version__)} · self-contained report: no external "
        "resources, no scripts.</footer></main></body></html>\n"
    )
    return head + intro + "".join(body) + foot


# --------------------------------------------------------------------------- entry point


def _resolve(
    store: str | os.PathLike[str],
    agreement_dir: str | os.PathLike[str] | None,
    result: Any,
    options: Mapping[str, Any] | None,
) -> _Agreement:
    if result is not None and agreement_dir is not None:
        raise ValueError("give either result or agreement_dir, not both")
    if result is not None:
        return _from_result(result)
    if agreement_dir is not None:
        return _from_mapping(read_agreement_tables(agreement_dir), where=str(agreement_dir))
    from .run import run_agreement

    run_opts = dict(options or {})
    run_opts.setdefault("progress", False)
    return _from_result(run_agreement(store, **run_opts))


def _profile_of(folder: str | os.PathLike[str]) -> str:
    """The profile an agreement folder was written with (``perturbridge`` for folders of
    earlier versions, which had only that one)."""
    path = Path(folder) / "agreement.json"
    if not path.is_file():
        return "perturbridge"
    return str(json.loads(path.read_text(encoding="utf-8")).get("profile", "perturbridge"))


def write_report(
    store: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    agreement_dir: str | os.PathLike[str] | None = None,
    result: AgreementResult | None = None,
    options: Mapping[str, Any] | None = None,
    figures_dir: str | os.PathLike[str] | None = None,
    title: str | None = None,
) -> Path:
    """Write the agreement report of ``store`` to the HTML file ``out``.

    Parameters
    ----------
    store
        The compendium store (its summary and identifier coverage are read through
        :class:`~perturbridge.compendium.Compendium`).
    out
        The HTML file to write (atomically).
    agreement_dir
        An agreement folder (``perturbridge agreement STORE --out DIR``) to read the
        tables from.
    result
        An :class:`~perturbridge.agreement.run.AgreementResult` (or any object with the
        table attributes) to report. With neither ``result`` nor ``agreement_dir``,
        :func:`~perturbridge.agreement.run.run_agreement` runs on ``store`` with
        ``options``.
    options
        Keyword arguments of ``run_agreement`` (when it runs); otherwise shown in the
        report when the result carries no options.
    figures_dir
        Where to write each figure as PNG and SVG (default ``<out stem>_figures/`` next
        to ``out``).
    title
        The report's title (default from the store's folder name).

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    out = Path(out)
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder; give the path of an .html file")
    if agreement_dir is not None and _profile_of(agreement_dir) == "published":
        from .published import read_published
        from .published.report import write_published_report

        return write_published_report(
            read_published(agreement_dir), out, figures_dir=figures_dir, title=title
        )
    ag = _resolve(store, agreement_dir, result, options)
    comp = _compendium(store)
    shown_options = dict(ag.info.get("options") or options or {})
    title = title or f"Agreement report: {Path(comp['summary'].get('path') or store).name}"

    figures = F.agreement_figures(
        cross_summary=ag.cross_summary,
        replicate_summary=ag.replicate_summary,
        retrieval=ag.retrieval,
        dose_sensitivity=ag.dose_sensitivity,
    )
    png = {name: F.figure_png(fig) for name, fig in figures.items()}
    folder = Path(figures_dir) if figures_dir is not None else out.with_name(f"{out.stem}_figures")
    if figures:
        F.save_figures(figures, folder, png=png)
    figs = {name: _Fig(name, data) for name, data in png.items()}
    document = _render(title=title, comp=comp, ag=ag, figs=figs, options=shown_options)
    with atomic_path(out) as tmp:
        tmp.write_text(document, encoding="utf-8")
    logger.info("report written to %s (%d figures in %s)", out, len(figures), folder)
    return out

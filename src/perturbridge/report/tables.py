"""HTML building blocks of the reports: the style sheet, escaped numbers and cells,
tables, help lists and embedded figures (shared by :mod:`.html` and :mod:`.published`)."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from . import figures as F

__all__: list[str] = []

_MAX_ROWS = 200

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


def _close(out: list[str], empty: str | None = None) -> str:
    """Close a section being built in ``out`` (after an ``_empty`` note when given)."""
    if empty is not None:
        out.append(empty)
    out.append("</section>")
    return "".join(out)


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

"""The HTML report of the ``published`` profile, laid out as Tables 4-8 of the paper.

One self-contained page (inline CSS, figures as base64 PNG, no scripts): for every dataset
pair the observed value, the published baseline (each sample against the mean of the other
compounds of its own dataset at the same dose and time) and Δ with the compound-clustered
BCa intervals (Table 4: DEG-restricted Spearman, Table 5: direction agreement, Table 6:
all-gene Spearman), the reviewer baselines, and per dataset the replicate agreement
(Table 7: DEG-restricted Spearman, Table 8: direction, Table 10: all-gene Spearman), with
Table 9 (retrieval) when it was computed. Every number states the profile that produced
it.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._version import __version__
from ..io import atomic_file
from . import figures as F
from .tables import _CSS, _ci, _delta_cell, _e, _empty, _Fig, _figure_html, _num, _p, _table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..agreement.published import PublishedResult

__all__ = ["CROSS_LAYOUT", "REPLICATE_LAYOUT", "published_figures", "write_published_report"]

logger = logging.getLogger(__name__)

#: Tables 4-6: (section id, title, summary level, observed, baseline, Δ, what it measures).
CROSS_LAYOUT = (
    (
        "table4",
        "Table 4. DEG-restricted Spearman of logFC across datasets",
        "table_4_raw_dataset_pair",
        "w4_observed_deg_lfc_spearman_sym_p05",
        "w4_source_centroid_deg_lfc_spearman_pair_p05",
        "w4_delta_vs_source_centroid_deg_lfc_spearman_p05",
        "Spearman correlation of the two logFC profiles on each side's DE genes (adj. p < "
        "0.05), averaged over the two sides (undefined unless both sides are).",
    ),
    (
        "table5",
        "Table 5. Direction agreement across datasets",
        "table_5_dataset_pair",
        "observed_direction_agreement_p05",
        "baseline_pair_direction_agreement_p05",
        "delta_vs_baseline_pair_direction_agreement_p05",
        "Of the genes that are DE on both sides, the fraction with the same sign of logFC.",
    ),
    (
        "table6",
        "Table 6. All-gene Spearman of logFC across datasets",
        "table_6_raw_dataset_pair",
        "w4_observed_spearman_logfc",
        "w4_source_centroid_spearman_logfc_pair",
        "w4_delta_vs_source_centroid_spearman_logfc",
        "Spearman correlation over every gene both datasets measure.",
    ),
)

#: Tables 7, 8, 10: (section id, title, summary level, metric stem, what it measures).
REPLICATE_LAYOUT = (
    (
        "table7",
        "Table 7. Replicate agreement: DEG-restricted Spearman",
        "table_7_dataset",
        "deg_lfc_spearman_sym_p05",
        "Replicates of the same condition, Spearman on each replicate's DE genes.",
    ),
    (
        "table8",
        "Table 8. Replicate agreement: direction",
        "table_8_dataset",
        "direction_agreement_p05",
        "Replicates of the same condition, sign agreement on genes DE in both.",
    ),
    (
        "table10",
        "Table 10. Replicate agreement: all-gene Spearman",
        "table_10_dataset",
        "spearman_logfc",
        "Replicates of the same condition, Spearman over all of the condition's genes.",
    ),
)

_REVIEWER = ("source_centroid", "target_centroid", "source_peer", "target_peer")
_REVIEWER_LABEL = {
    "source_centroid": "source centroid (published)",
    "target_centroid": "target centroid",
    "source_peer": "source peers",
    "target_peer": "target peers",
}
_REVIEWER_STEM = {
    "table_4_raw_dataset_pair": ("w4", "deg_lfc_spearman", "_p05"),
    "table_5_dataset_pair": ("raw", "direction_agreement", "_p05"),
    "table_6_raw_dataset_pair": ("w4", "spearman_logfc", ""),
}


def _rows(summary: pd.DataFrame, weighting: str, level: str) -> pd.DataFrame:
    if summary.empty:
        return summary
    s = summary[(summary["summary_level"] == level) & (summary["weighting"] == weighting)]
    return s.set_index(["dataset_a", "dataset_b", "metric"])


def _get(rows: pd.DataFrame, a: str, b: str, metric: str) -> Mapping[str, Any] | None:
    key = (a, b, metric)
    if key not in rows.index:
        return None
    return dict(rows.loc[[key]].iloc[0])


def _cross_table(summary: pd.DataFrame, weighting: str, layout: Sequence[Any]) -> str:
    _, _, level, obs, base, delta, _ = layout
    rows = _rows(summary, weighting, level)
    if rows.empty:
        return _empty("No dataset pair has matched conditions in a kept context.")
    body = []
    pairs = list(dict.fromkeys((a, b) for a, b, _ in rows.index))
    for a, b in pairs:
        o, c, d = (_get(rows, a, b, m) for m in (obs, base, delta))
        if o is None:
            continue
        body.append(
            [
                f"{a} / {b}",
                _ci(o["mean"], o["ci_low"], o["ci_high"]),
                _ci(c["mean"], c["ci_low"], c["ci_high"]) if c is not None else "–",
                _delta_cell(d["mean"], d["ci_low"], d["ci_high"]) if d is not None else "–",
                int(o["n_compounds"]),
            ]
        )
    return _table(
        ["datasets (A / B)", "observed [95% CI]", "baseline [95% CI]", "Δ [95% CI]", "compounds"],
        body,
    )


def _reviewer_table(summary: pd.DataFrame, weighting: str, level: str) -> str:
    rows = _rows(summary, weighting, level)
    if rows.empty:
        return ""
    prefix, metric, suffix = _REVIEWER_STEM[level]
    body = []
    for a, b in dict.fromkeys((a, b) for a, b, _ in rows.index):
        line: list[Any] = [f"{a} / {b}"]
        for v in _REVIEWER:
            base = _get(rows, a, b, f"{prefix}_{v}_{metric}_pair{suffix}")
            d = _get(rows, a, b, f"{prefix}_delta_vs_{v}_{metric}{suffix}")
            line.append(_num(base["mean"]) if base is not None else "–")
            line.append(_delta_cell(d["mean"], d["ci_low"], d["ci_high"]) if d is not None else "–")
        body.append(line)
    header = ["datasets"]
    for v in _REVIEWER:
        header += [_REVIEWER_LABEL[v], "Δ [95% CI]"]
    return _table(header, body, caption="Reviewer baselines (raw logFC)")


def _replicate_names(stem: str) -> tuple[str, str, str, str, str]:
    """Published labels of Tables 7, 8, 10: observed, centroid, Δ centroid, peers, Δ peers."""
    observed = (
        "observed_replicate_spearman_logfc" if stem == "spearman_logfc" else f"observed_{stem}"
    )
    return (
        observed,
        f"centroid_baseline_{stem}",
        f"delta_vs_centroid_{stem}",
        f"individual_peer_mean_{stem}",
        f"delta_vs_individual_peer_{stem}",
    )


def _replicate_table(summary: pd.DataFrame, layout: Sequence[Any]) -> str:
    _, _, level, stem, _ = layout
    if summary.empty:
        return _empty("No condition has two or more replicates (sep_rep files).")
    s = summary[summary["summary_level"] == level].set_index(["dataset_name", "metric"])
    names = _replicate_names(stem)
    body = []
    for ds in dict.fromkeys(i[0] for i in s.index):
        got = [s.loc[(ds, n)] if (ds, n) in s.index else None for n in names]
        if got[0] is None:
            continue
        cells: list[Any] = [ds]
        for j, g in enumerate(got):
            if g is None:
                cells.append("–")
            elif j in (2, 4):
                cells.append(_delta_cell(g["mean"], g["ci_low"], g["ci_high"]))
            else:
                cells.append(_ci(g["mean"], g["ci_low"], g["ci_high"]))
        cells += [int(got[0]["n_finite_rows"]), int(got[0]["n_compounds"])]
        body.append(cells)
    return _table(
        ["dataset", "replicates [95% CI]", "centroid", "Δ centroid", "peers", "Δ peers",
         "conditions", "compounds"],
        body,
    )  # fmt: skip


def _figure(summary: pd.DataFrame, weighting: str) -> Figure:
    """Observed and published baseline with intervals, one panel per table (4, 5, 6)."""
    fig = F._new_figure(11.0, 3.2)
    axes = fig.subplots(1, len(CROSS_LAYOUT), squeeze=False)[0]
    for ax, (_, title, level, obs, base, _, _) in zip(axes, CROSS_LAYOUT, strict=True):
        rows = _rows(summary, weighting, level)
        pairs = list(dict.fromkeys((a, b) for a, b, _ in rows.index)) if not rows.empty else []
        for y, (a, b) in enumerate(pairs):
            for metric, color, marker, off in (
                (obs, "black", "o", 0.12),
                (base, "#d97706", "s", -0.12),
            ):
                r = _get(rows, a, b, metric)
                if r is None or not np.isfinite(r["mean"]):
                    continue
                lo, hi = r["ci_low"], r["ci_high"]
                if np.isfinite(lo) and np.isfinite(hi):
                    ax.plot([lo, hi], [y + off, y + off], color=color, lw=1.5)
                ax.plot(r["mean"], y + off, marker=marker, color=color, ms=5, ls="none")
        ax.set_yticks(range(len(pairs)), [f"{a} / {b}" for a, b in pairs], fontsize=8)
        ax.set_title(title.split(". ")[1], fontsize=9)
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    axes[0].plot([], [], "o", color="black", label="observed")
    axes[0].plot([], [], "s", color="#d97706", label="source centroid (published baseline)")
    fig.legend(loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    return fig


def _replicate_figure(summary: pd.DataFrame) -> Figure:
    fig = F._new_figure(11.0, 3.0)
    axes = fig.subplots(1, len(REPLICATE_LAYOUT), squeeze=False)[0]
    for ax, (_, title, level, stem, _) in zip(axes, REPLICATE_LAYOUT, strict=True):
        s = summary[summary["summary_level"] == level] if not summary.empty else summary
        names = _replicate_names(stem)[:2]
        datasets = list(dict.fromkeys(s["dataset_name"])) if not s.empty else []
        for y, ds in enumerate(datasets):
            for name, color, marker, off in (
                (names[0], "black", "o", 0.12),
                (names[1], "#d97706", "s", -0.12),
            ):
                r = s[(s["dataset_name"] == ds) & (s["metric"] == name)]
                if r.empty or not np.isfinite(r["mean"].iloc[0]):
                    continue
                lo, hi = r["ci_low"].iloc[0], r["ci_high"].iloc[0]
                if np.isfinite(lo) and np.isfinite(hi):
                    ax.plot([lo, hi], [y + off, y + off], color=color, lw=1.5)
                ax.plot(r["mean"].iloc[0], y + off, marker=marker, color=color, ms=5, ls="none")
        ax.set_yticks(range(len(datasets)), datasets, fontsize=8)
        ax.set_title(title.split(": ")[-1], fontsize=9)
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    axes[0].plot([], [], "o", color="black", label="replicates")
    axes[0].plot([], [], "s", color="#d97706", label="centroid of the other compounds")
    fig.legend(loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    return fig


def published_figures(result: PublishedResult) -> dict[str, Figure]:
    """The figures of the published report, by name."""
    out: dict[str, Figure] = {}
    if not result.summary.empty:
        out["published_cross"] = _figure(result.summary, result.weighting)
    if not result.replicate_summary.empty:
        out["published_replicate"] = _replicate_figure(result.replicate_summary)
    return out


_FIG_HELP = {
    "published_cross": (
        "One row per dataset pair, one panel per table. Black: observed agreement of matched "
        "conditions (mean over drug-level rows) with its 95 % compound-clustered BCa "
        "interval; orange: the published baseline (each sample against the mean of the "
        "other compounds of its own dataset at the same dose and time). The published "
        "finding is black left of orange for the Spearman panels and right of it for "
        "direction."
    ),
    "published_replicate": (
        "Replicate agreement within each dataset (black) against the centroid of the "
        "other compounds' replicates (orange), with 95 % intervals."
    ),
}


def _contexts(result: PublishedResult) -> str:
    c = result.contexts
    if c.empty:
        return _empty("No (cell type, time) context had a matched compound.")
    c = c[c["weighting"] == result.weighting]
    body = [
        [r["dataset_a"], r["dataset_b"], r["cell_type"], r["time_key"],
         int(r["n_context_matching_drugs"]), "kept" if r["kept"] else "dropped (< 10 compounds)"]
        for r in c.to_dict("records")
    ]  # fmt: skip
    return _table(["dataset A", "dataset B", "cell type", "time (h)", "matched CIDs", ""], body)


def _retrieval(result: PublishedResult) -> str:
    s = result.retrieval_summary
    if s.empty:
        return _p(
            "Not computed in this run (perturbridge agreement … --profile published --retrieval).",
            "meta",
        )
    keep = s[s["metric"].isin(["observed_normalized_best_positive_rank", "observed_recall_at_1"])]
    body = [
        [f"{r['dataset_a']} / {r['dataset_b']}", r["similarity_metric"],
         str(r["metric"]).replace("observed_", ""), _ci(r["mean"], r["ci_low"], r["ci_high"]),
         int(r["n_compounds"])]
        for r in keep.to_dict("records")
    ]  # fmt: skip
    return _table(["datasets", "similarity", "metric", "mean [95% CI]", "compounds"], body)


def render_published(result: PublishedResult, figs: Mapping[str, _Fig], *, title: str) -> str:
    """The HTML page of a published-profile result."""
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    info = result.info
    sections = [(lay[0], lay[1]) for lay in CROSS_LAYOUT] + [
        (lay[0], lay[1]) for lay in REPLICATE_LAYOUT[:2]
    ]
    sections += [("table10", REPLICATE_LAYOUT[2][1]), ("table9", "Table 9. Retrieval"),
                 ("contexts", "Contexts"), ("run", "Run")]  # fmt: skip
    nav = "".join(f'<li><a href="#{k}">{_e(v)}</a></li>' for k, v in sections)
    out = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
        f"<header><h1>{_e(title)}</h1>"
        f'<p class="meta">Profile <b>published</b> · source <code>{_e(info.get("root", ""))}'
        f"</code> · generated {_e(now)} by perturbridge {_e(__version__)}</p></header>",
        '<section id="reading"><h2>How to read this report</h2>',
        _p(
            "Every number on this page comes from the published profile: the definitions of "
            "the analysis published with the harmonised release, computed exactly (docs/"
            "agreement.md, 'The published profile'). Matched conditions share compound (PubChem "
            "CID), cell type and time, with doses paired as mutual nearest neighbours within "
            "10×; contexts need 10 matched compounds. The baseline is the published one: each "
            "sample is compared with the mean of the other compounds of its own dataset at "
            "the same dose and time, with the sample's own DE genes. Δ = observed − baseline; "
            "an interval above 0 means the same compound agrees better than that baseline."
        ),
        _p(
            "The published finding: matched compounds agree weakly on fine logFC rankings "
            "(Tables 4 and 6; often below the baseline) but well on direction (Table 5)."
        ),
        _p(f"Weighting: {info.get('weighting_note', result.weighting)}.", "meta"),
    ]
    for name, why in (info.get("skipped_datasets") or {}).items():
        out.append(f'<div class="warn">{_e(name)} not included: {_e(why)}</div>')
    out.append(f"<nav><ol>{nav}</ol></nav></section>")
    out.append(_figure_html(figs.get("published_cross"), _FIG_HELP["published_cross"]))
    for lay in CROSS_LAYOUT:
        out.append(f'<section id="{lay[0]}"><h2>{_e(lay[1])}</h2>{_p(lay[6])}')
        out.append(_cross_table(result.summary, result.weighting, lay))
        out.append(_reviewer_table(result.summary, result.weighting, lay[2]))
        out.append("</section>")
    out.append(_figure_html(figs.get("published_replicate"), _FIG_HELP["published_replicate"]))
    for rlay in REPLICATE_LAYOUT:
        out.append(f'<section id="{rlay[0]}"><h2>{_e(rlay[1])}</h2>{_p(rlay[4])}')
        out.append(_replicate_table(result.replicate_summary, rlay))
        out.append("</section>")
    out.append('<section id="table9"><h2>Table 9. Retrieval</h2>')
    out.append(_retrieval(result) + "</section>")
    out.append('<section id="contexts"><h2>Contexts</h2>' + _contexts(result) + "</section>")
    opts = info.get("options", {})
    run_rows = [[k, str(v)] for k, v in sorted(opts.items())]
    run_rows.append(["datasets (analysis order)", ", ".join(info.get("datasets", []))])
    out.append('<section id="run"><h2>Run</h2>' + _table(["option", "value"], run_rows))
    out.append(
        "</section><footer>perturbridge "
        f"{_e(__version__)} · profile published · self-contained report: no external "
        "resources, no scripts.</footer></main></body></html>\n"
    )
    return "".join(out)


def write_published_report(
    result: PublishedResult,
    out: str | os.PathLike[str],
    *,
    figures_dir: str | os.PathLike[str] | None = None,
    title: str | None = None,
) -> Path:
    """Write the published-profile report to the HTML file ``out`` (atomically) and its
    figures as PNG and SVG into ``figures_dir`` (default ``<out stem>_figures/``)."""
    out = Path(out)
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder; give the path of an .html file")
    figures = published_figures(result)
    png = {name: F.figure_png(fig) for name, fig in figures.items()}
    folder = Path(figures_dir) if figures_dir is not None else out.with_name(f"{out.stem}_figures")
    if figures:
        F.save_figures(figures, folder, png=png)
    figs = {name: _Fig(name, data) for name, data in png.items()}
    title = title or "Agreement report (published profile)"
    document = render_published(result, figs, title=title)
    with atomic_file(out) as tmp:
        tmp.write_text(document, encoding="utf-8")
    logger.info("published report written to %s", out)
    return out

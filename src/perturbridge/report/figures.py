"""Figures of the agreement report, drawn with Matplotlib's Agg canvas.

Each figure function takes the tables of ``perturbridge agreement`` (see
``docs/agreement.md``) and returns a :class:`matplotlib.figure.Figure`; nothing here
touches ``pyplot`` or Matplotlib's global configuration, so importing this module (and
drawing) changes no state of the caller's session.

- :func:`cross_agreement_figure`: observed agreement per dataset pair with its bootstrap
  interval, next to the baselines, one panel per metric.
- :func:`cross_heatmap_figure`: a dataset × dataset heatmap of one metric, observed and
  Δ against the source centroid; the diagonal holds replicate agreement.
- :func:`replicate_figure`: replicate agreement per dataset against its baselines.
- :func:`retrieval_figure`: retrieval per query → target dataset against the random floor.
- :func:`dose_sensitivity_figure`: observed agreement as the dose tolerance widens.

:func:`agreement_figures` draws every figure that has data; :func:`save_figures` writes
them as PNG and SVG, atomically.

>>> figs = agreement_figures(cross_summary=cross, replicate_summary=rep)  # doctest: +SKIP
>>> save_figures(figs, "report_figures")  # doctest: +SKIP
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from ..io import atomic_file

__all__ = [
    "BASELINE_LABELS",
    "METRIC_LABELS",
    "RETRIEVAL_METRICS",
    "agreement_figures",
    "baseline_label",
    "cross_agreement_figure",
    "cross_heatmap_figure",
    "defined_metrics",
    "dose_sensitivity_figure",
    "figure_png",
    "label_rows",
    "metric_label",
    "pair_label",
    "replicate_figure",
    "retrieval_figure",
    "retrieval_summary",
    "save_figures",
    "threshold_label",
]

#: Display names of the pair metrics (``docs/agreement.md``) and retrieval summaries.
METRIC_LABELS: dict[str, str] = {
    "deg_spearman": "DEG-restricted Spearman",
    "direction": "Direction agreement",
    "spearman": "Spearman, all genes",
    "top50": "Top-50 signed overlap",
    "top100": "Top-100 signed overlap",
    "top200": "Top-200 signed overlap",
    "retrieval_norm_rank": "Normalised best rank (lower is better)",
    "retrieval_recall1": "Recall@1",
    "retrieval_auroc": "AUROC",
}
#: Display names of the baselines.
BASELINE_LABELS: dict[str, str] = {
    "cross_centroid_a": "Cross-dataset centroid (A's others vs b)",
    "cross_centroid_b": "Cross-dataset centroid (a vs B's others)",
    "centroid": "Centroid",
    "peers": "Cross-dataset peers (mean)",
    "peer_mean": "Cross-dataset peers (mean)",
    "random_floor": "Random floor",
}
#: The retrieval summaries of ``cross_summary`` (``baseline = random_floor``).
RETRIEVAL_METRICS: tuple[str, ...] = (
    "retrieval_norm_rank",
    "retrieval_recall1",
    "retrieval_auroc",
)

_OBSERVED_COLOR = "#111827"
_BASELINE_STYLE: dict[str, tuple[str, str]] = {  # colour, marker
    "cross_centroid_a": ("#d97706", "s"),
    "centroid": ("#d97706", "s"),
    "cross_centroid_b": ("#2563eb", "D"),
    "peers": ("#059669", "^"),
    "peer_mean": ("#059669", "^"),
    "random_floor": ("#6b7280", "X"),
}
_EXTRA_COLORS = ("#7c3aed", "#db2777", "#0891b2", "#65a30d")
_METRIC_ORDER = tuple(METRIC_LABELS)
_BASELINE_ORDER = tuple(BASELINE_LABELS)
_PAIR_SEP = " vs "
_ARROW = " → "


def metric_label(metric: str) -> str:
    """The display name of ``metric`` (the name itself when unknown)."""
    return METRIC_LABELS.get(metric, metric)


def baseline_label(baseline: str) -> str:
    """The display name of ``baseline`` (the name itself when unknown)."""
    return BASELINE_LABELS.get(baseline, baseline.replace("_", " "))


def _ordered(values: Any, order: Sequence[str]) -> list[str]:
    """Unique values of ``values``: those in ``order`` first (in that order), then the rest."""
    seen = [str(v) for v in pd.unique(pd.Series(values, dtype=object).dropna())]
    rank = {name: i for i, name in enumerate(order)}
    return sorted(seen, key=lambda v: (rank.get(v, len(rank)), v))


def _style(baseline: str, i: int) -> tuple[str, str]:
    return _BASELINE_STYLE.get(baseline, (_EXTRA_COLORS[i % len(_EXTRA_COLORS)], "v"))


def defined_metrics(summary: pd.DataFrame) -> list[str]:
    """The metrics of ``summary`` with at least one finite observed value, in display
    order (a top-k overlap is undefined with fewer than 2k common genes)."""
    if summary.empty or "metric" not in summary.columns:
        return []
    finite = summary[np.isfinite(pd.to_numeric(summary["observed"], errors="coerce"))]
    return _ordered(finite["metric"][finite["metric"] != "*"], _METRIC_ORDER)


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained", dpi=100)
    FigureCanvasAgg(fig)  # draw with Agg without selecting a pyplot backend
    return fig


def _empty_figure(message: str) -> Figure:
    fig = _new_figure(6.0, 1.6)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, color="#4b5563")
    return fig


def _overall(summary: pd.DataFrame | None) -> pd.DataFrame:
    """Rows of a summary at the ``all`` level (``cell_context == "*"`` when the column exists)."""
    if summary is None or summary.empty:
        return pd.DataFrame()
    if "cell_context" in summary.columns:
        summary = summary[summary["cell_context"].astype(str) == "*"]
    return summary


def pair_label(a: Any, b: Any, *, directed: bool = False) -> str:
    """``"A vs B"`` (or ``"A → B"`` when ``directed``)."""
    return f"{a}{_ARROW if directed else _PAIR_SEP}{b}"


def label_rows(summary: pd.DataFrame, *, directed: bool = False) -> pd.DataFrame:
    """A copy of ``summary`` with a display label ``_label`` per row: the dataset, or
    ``"A vs B"``; with ``directed``, ``"A → B"``, ``"B → A"`` or ``"A ↔ B"`` from the
    ``direction`` column (``a_to_b``, ``b_to_a``, ``both``) when there is one."""
    out = summary.copy()
    if "dataset" in out.columns:
        out["_label"] = out["dataset"].astype(str)
        return out
    a, b = out["dataset_a"].astype(str), out["dataset_b"].astype(str)
    if not directed:
        out["_label"] = [pair_label(x, y) for x, y in zip(a, b, strict=True)]
        return out
    direction = (
        out["direction"].astype(str)
        if "direction" in out.columns
        else pd.Series("a_to_b", index=out.index)
    )
    out["_label"] = [
        f"{y}{_ARROW}{x}" if d == "b_to_a" else (f"{x} ↔ {y}" if d == "both" else f"{x}{_ARROW}{y}")
        for x, y, d in zip(a, b, direction, strict=True)
    ]
    return out


def _dot_panels(
    summary: pd.DataFrame,
    *,
    metrics: Sequence[str],
    title: str,
    xlabel: str = "",
) -> Figure:
    """One panel per metric: labels on y, observed ± CI and the baselines on x."""
    labels = list(pd.unique(summary["_label"]))
    baselines = _ordered(summary.get("baseline", pd.Series(dtype=object)), _BASELINE_ORDER)
    n = len(metrics)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    longest = max(len(s) for s in labels)
    width = min(17.0, 1.2 + 0.075 * longest + 4.4 * ncols)
    height = 1.2 + nrows * (0.7 + 0.42 * len(labels))
    fig = _new_figure(width, height)
    axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False).ravel()
    for ax in axes[n:]:
        fig.delaxes(ax)
    slots = 1 + len(baselines)
    spread = min(0.28, 0.12 * (slots - 1))
    offsets = np.linspace(-spread, spread, slots) if slots > 1 else np.zeros(1)
    ypos = {lab: float(i) for i, lab in enumerate(labels)}
    for ax, metric in zip(axes, metrics, strict=False):
        rows = summary[summary["metric"] == metric]
        first = rows.drop_duplicates("_label")
        y = np.array([ypos[v] for v in first["_label"]]) + offsets[0]
        obs = first["observed"].to_numpy(dtype=float)
        low = first.get("observed_low", pd.Series(np.nan, index=first.index)).to_numpy(float)
        high = first.get("observed_high", pd.Series(np.nan, index=first.index)).to_numpy(float)
        err = np.vstack(
            [
                np.where(np.isfinite(low), obs - low, 0.0),
                np.where(np.isfinite(high), high - obs, 0.0),
            ]
        )
        ax.errorbar(
            obs,
            y,
            xerr=np.clip(err, 0, None),
            fmt="o",
            color=_OBSERVED_COLOR,
            ecolor=_OBSERVED_COLOR,
            elinewidth=1.6,
            capsize=3,
            markersize=6,
            zorder=3,
        )
        for i, base in enumerate(baselines, start=1):
            brows = rows[rows["baseline"] == base].drop_duplicates("_label")
            vals = brows["baseline_value"].to_numpy(dtype=float)
            if not np.isfinite(vals).any():
                continue
            color, marker = _style(base, i)
            by = np.array([ypos[v] for v in brows["_label"]]) + offsets[i]
            ax.scatter(vals, by, color=color, marker=marker, s=34, zorder=2, linewidths=0.8)
        ax.set_title(metric_label(metric), fontsize=10.5, loc="left")
        ax.grid(axis="x", color="#e5e7eb", linewidth=0.8)
        ax.set_axisbelow(True)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.tick_params(labelsize=9)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        finite = np.concatenate([obs, low, high, rows["baseline_value"].to_numpy(dtype=float)])
        finite = finite[np.isfinite(finite)]
        if finite.size and finite.min() < 0 < finite.max():
            ax.axvline(0.0, color="#9ca3af", linewidth=0.8, zorder=1)
    ax0 = axes[0]
    ax0.set_yticks(range(len(labels)), labels)
    ax0.set_ylim(len(labels) - 0.5, -0.5)
    handles = [
        Line2D([], [], color=_OBSERVED_COLOR, marker="o", linestyle="-", label="Observed (95% CI)")
    ]
    for i, base in enumerate(baselines, start=1):
        color, marker = _style(base, i)
        handles.append(
            Line2D([], [], color=color, marker=marker, linestyle="none", label=baseline_label(base))
        )
    fig.legend(
        handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9, frameon=False
    )
    fig.suptitle(title, fontsize=12, x=0.01, ha="left")
    return fig


def cross_agreement_figure(
    cross_summary: pd.DataFrame | None, *, metrics: Sequence[str] | None = None
) -> Figure:
    """Observed cross-dataset agreement per dataset pair with its 95 % interval, next to
    each baseline; one panel per metric (the ``all`` level of ``cross_summary``).

    Retrieval rows are left out (see :func:`retrieval_figure`). With no rows the figure
    holds one blank panel that says so.
    """
    rows = _overall(cross_summary)
    if not rows.empty:
        rows = rows[~rows["metric"].isin(RETRIEVAL_METRICS)]
    if rows.empty or not defined_metrics(rows):
        return _empty_figure("No matched dataset pairs: no cross-dataset agreement to show.")
    wanted = list(metrics) if metrics is not None else defined_metrics(rows)
    return _dot_panels(
        label_rows(rows),
        metrics=wanted,
        title="Cross-dataset agreement: same compound, context and time",
    )


def replicate_figure(
    replicate_summary: pd.DataFrame | None, *, metrics: Sequence[str] | None = None
) -> Figure:
    """Replicate agreement within each dataset with its 95 % interval, next to the
    baselines; one panel per metric. Datasets without replicates are left out."""
    rows = _overall(replicate_summary)
    if not rows.empty and "n_conditions" in rows.columns:
        rows = rows[rows["n_conditions"].fillna(0) > 0]
    if not rows.empty:
        rows = rows[rows["observed"].notna()]
    if rows.empty or not defined_metrics(rows):
        return _empty_figure("No dataset has separate-mode (per-replicate) effects.")
    wanted = list(metrics) if metrics is not None else defined_metrics(rows)
    return _dot_panels(
        label_rows(rows), metrics=wanted, title="Replicate agreement within each dataset"
    )


def retrieval_summary(
    cross_summary: pd.DataFrame | None, retrieval: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Retrieval per (query, target) dataset in the columns of ``cross_summary``.

    The rows ``metric = retrieval_*`` of ``cross_summary`` (with bootstrap intervals)
    when there are any; otherwise plain means of the per-query ``retrieval`` table
    (no intervals).
    """
    rows = _overall(cross_summary)
    if not rows.empty:
        rows = rows[rows["metric"].isin(RETRIEVAL_METRICS)]
    if not rows.empty:
        return rows.reset_index(drop=True)
    if retrieval is None or retrieval.empty:
        return pd.DataFrame()
    out = []
    for (q, t), grp in retrieval.groupby(["dataset_query", "dataset_target"], sort=True):
        for metric, col, floor in (
            ("retrieval_norm_rank", "norm_rank", "norm_rank_floor"),
            ("retrieval_recall1", "recall1", "recall1_floor"),
            ("retrieval_auroc", "auroc", None),
        ):
            if col not in grp.columns:
                continue
            base = grp[floor].mean() if floor in grp.columns else 0.5
            obs = grp[col].mean()
            out.append(
                {
                    "dataset_a": q,
                    "dataset_b": t,
                    "cell_context": "*",
                    "metric": metric,
                    "baseline": "random_floor",
                    "observed": obs,
                    "observed_low": np.nan,
                    "observed_high": np.nan,
                    "baseline_value": base,
                    "delta": obs - base,
                    "delta_low": np.nan,
                    "delta_high": np.nan,
                    "n_pairs": int(grp[col].notna().sum()),
                    "n_compounds": int(grp["compound"].nunique()) if "compound" in grp else np.nan,
                }
            )
    return pd.DataFrame(out)


def retrieval_figure(
    cross_summary: pd.DataFrame | None, retrieval: pd.DataFrame | None = None
) -> Figure:
    """Retrieval of the same compound per query → target dataset against its exact
    random floor; one panel per retrieval measure."""
    rows = retrieval_summary(cross_summary, retrieval)
    if rows.empty:
        return _empty_figure("No retrieval queries.")
    return _dot_panels(
        label_rows(rows, directed=True),
        metrics=_ordered(rows["metric"], _METRIC_ORDER),
        title="Retrieval of the same compound in the other dataset, against the random floor",
    )


def _heatmap_matrices(
    cross: pd.DataFrame,
    replicate: pd.DataFrame,
    *,
    metric: str,
    baseline: str,
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Datasets, observed and Δ matrices, and which cells come from the data (not mirrored)."""
    cross = cross[cross["metric"] == metric] if not cross.empty else cross
    replicate = replicate[replicate["metric"] == metric] if not replicate.empty else replicate
    names: set[str] = set()
    if not cross.empty:
        names |= set(cross["dataset_a"].astype(str)) | set(cross["dataset_b"].astype(str))
    if not replicate.empty:
        names |= set(replicate["dataset"].astype(str))
    datasets = sorted(names)
    index = {d: i for i, d in enumerate(datasets)}
    k = len(datasets)
    obs = np.full((k, k), np.nan)
    delta = np.full((k, k), np.nan)
    if not cross.empty:
        for row in cross.drop_duplicates(["dataset_a", "dataset_b"]).itertuples():
            obs[index[str(row.dataset_a)], index[str(row.dataset_b)]] = row.observed
        for row in cross[cross["baseline"] == baseline].itertuples():
            delta[index[str(row.dataset_a)], index[str(row.dataset_b)]] = row.delta
        # the observed metrics are symmetric in the two signatures: mirror missing cells
        obs = np.where(np.isnan(obs), obs.T, obs)
    if not replicate.empty:
        rep_base = baseline
        if rep_base not in set(replicate["baseline"]):
            centroids = [
                b for b in _ordered(replicate["baseline"], _BASELINE_ORDER) if "centroid" in b
            ]
            rep_base = centroids[0] if centroids else rep_base
        for row in replicate.drop_duplicates("dataset").itertuples():
            obs[index[str(row.dataset)], index[str(row.dataset)]] = row.observed
        for row in replicate[replicate["baseline"] == rep_base].itertuples():
            delta[index[str(row.dataset)], index[str(row.dataset)]] = row.delta
    return datasets, obs, delta, ~np.isnan(obs)


def _annotate(ax: Any, values: np.ndarray, cmap: Any, norm: Any, *, fontsize: float) -> None:
    k = values.shape[0]
    for i in range(k):
        for j in range(k):
            v = values[i, j]
            if not np.isfinite(v):
                ax.text(j, i, "–", ha="center", va="center", fontsize=fontsize, color="#6b7280")
                continue
            r, g, b, _ = cmap(norm(v))
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
            ax.text(
                j,
                i,
                f"{v:+.2f}" if norm.vmin < 0 else f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=fontsize,
                color="white" if dark else "#111827",
            )


def cross_heatmap_figure(
    cross_summary: pd.DataFrame | None,
    replicate_summary: pd.DataFrame | None = None,
    *,
    metric: str,
    baseline: str = "cross_centroid_a",
) -> Figure:
    """Dataset × dataset heatmaps of ``metric``: observed, and Δ = observed − ``baseline``.

    Rows are the source dataset (A), columns the target (B). Observed values are
    symmetric and mirrored into the empty triangle; Δ is shown where the table has that
    direction. The diagonal (outlined) holds replicate agreement within the dataset
    from ``replicate_summary``, when given.
    """
    cross = _overall(cross_summary)
    replicate = _overall(replicate_summary)
    if not replicate.empty and "n_conditions" in replicate.columns:
        replicate = replicate[replicate["n_conditions"].fillna(0) > 0]
    datasets, obs, delta, _ = _heatmap_matrices(cross, replicate, metric=metric, baseline=baseline)
    if not datasets or not np.isfinite(obs).any():
        return _empty_figure(f"No values of {metric_label(metric)} to show.")
    k = len(datasets)
    cell = 0.62 if k > 6 else 0.8
    side = max(2.8, 1.2 + cell * k)
    longest = max(len(d) for d in datasets)
    fig = _new_figure(2 * side + 0.16 * longest + 1.6, 0.85 * side + 0.08 * longest + 0.7)
    ax_obs, ax_delta = fig.subplots(1, 2)
    fontsize = 9.0 if k <= 6 else 7.0
    panels = (
        (ax_obs, obs, "viridis", "Observed"),
        (ax_delta, delta, "RdBu_r", f"Δ vs {baseline_label(baseline).lower()}"),
    )
    for ax, values, cmap_name, title in panels:
        cmap = colormaps[cmap_name].with_extremes(bad="#f3f4f6")
        finite = values[np.isfinite(values)]
        norm: Normalize
        if cmap_name == "RdBu_r":
            span = float(np.abs(finite).max()) if finite.size else 1.0
            span = span if span > 0 else 1.0
            norm = TwoSlopeNorm(vcenter=0.0, vmin=-span, vmax=span)
        else:
            lo = float(finite.min()) if finite.size else 0.0
            hi = float(finite.max()) if finite.size else 1.0
            if hi - lo < 1e-9:
                lo, hi = lo - 0.05, hi + 0.05
            norm = Normalize(vmin=lo, vmax=hi)
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="equal")
        _annotate(ax, values, cmap, norm, fontsize=fontsize)
        for i in range(k):
            ax.add_patch(
                Rectangle(
                    (i - 0.5, i - 0.5),
                    1,
                    1,
                    fill=False,
                    edgecolor="#111827",
                    linewidth=1.4,
                    linestyle=(0, (2, 1.5)),
                )
            )
        ax.set_xticks(range(k), datasets, rotation=40, ha="right", fontsize=9)
        ax.set_yticks(range(k), datasets, fontsize=9)
        ax.set_xlabel("target dataset (B)", fontsize=9)
        ax.set_ylabel("source dataset (A)", fontsize=9)
        ax.set_title(title, fontsize=10.5, loc="left")
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        fig.colorbar(image, ax=ax, shrink=0.8, pad=0.02)
    fig.suptitle(
        f"{metric_label(metric)} between datasets (diagonal, outlined: replicates)",
        fontsize=12,
        x=0.01,
        ha="left",
    )
    return fig


_THRESHOLD_COLUMNS = ("max_log10_dose", "threshold", "dose_threshold", "max_dlog10_dose")


def threshold_column(table: pd.DataFrame) -> str | None:
    """The numeric column of a ``dose_sensitivity`` table that holds the largest allowed
    ``|Δ log10 dose|`` (``max_log10_dose``; ``threshold`` when that is numeric)."""
    for col in _THRESHOLD_COLUMNS:
        if col in table.columns and pd.api.types.is_numeric_dtype(table[col]):
            return col
    return None


def threshold_label(value: float) -> str:
    """``"exact"`` or the dose ratio (``"2×"``, ``"10×"``) of a ``|Δ log10 dose|`` bound."""
    if value <= 1e-5:
        return "exact"
    return f"{10.0**value:.3g}×"


def dose_sensitivity_figure(
    dose_sensitivity: pd.DataFrame | None, *, metrics: Sequence[str] | None = None
) -> Figure:
    """Observed agreement per dataset pair as the dose tolerance widens (exact, 2×, 3×,
    10×), with the baseline dashed when the table has one; one panel per metric."""
    if dose_sensitivity is None or dose_sensitivity.empty:
        return _empty_figure("Dose sensitivity was not computed.")
    table = dose_sensitivity
    if "cell_context" in table.columns:
        table = table[table["cell_context"].astype(str) == "*"]
    tcol = threshold_column(table)
    if tcol is None or table.empty:
        return _empty_figure("Dose sensitivity table has no threshold column.")
    table = label_rows(table)
    base_col = "baseline_value" if "baseline_value" in table.columns else "baseline"
    has_base = base_col in table.columns and pd.api.types.is_numeric_dtype(table[base_col])
    if "baseline" in table.columns and base_col == "baseline_value":
        first = _ordered(table["baseline"], _BASELINE_ORDER)
        table = table[table["baseline"] == first[0]] if first else table
    thresholds = sorted(pd.unique(table[tcol].astype(float)))
    xpos = {t: i for i, t in enumerate(thresholds)}
    wanted = list(metrics) if metrics is not None else defined_metrics(table)
    labels = list(pd.unique(table["_label"]))
    n = len(wanted)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = _new_figure(min(17.0, 1.0 + 4.6 * ncols), 1.4 + 3.0 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        fig.delaxes(ax)
    colors = [_EXTRA_COLORS[i % len(_EXTRA_COLORS)] for i in range(len(labels))]
    palette = ["#1d4ed8", "#b45309", "#047857", "#be123c", *colors]
    for ax, metric in zip(axes, wanted, strict=False):
        rows = table[table["metric"] == metric]
        for i, lab in enumerate(labels):
            sub = rows[rows["_label"] == lab].drop_duplicates(tcol).sort_values(tcol)
            if sub.empty:
                continue
            x = [xpos[float(t)] for t in sub[tcol]]
            color = palette[i % len(palette)]
            ax.plot(x, sub["observed"].to_numpy(float), marker="o", color=color, label=lab)
            if has_base:
                ax.plot(
                    x,
                    sub[base_col].to_numpy(float),
                    linestyle="--",
                    color=color,
                    alpha=0.7,
                    linewidth=1.2,
                )
        ax.set_xticks(range(len(thresholds)), [threshold_label(t) for t in thresholds])
        ax.set_xlabel("largest dose ratio allowed between matched conditions", fontsize=9)
        ax.set_title(metric_label(metric), fontsize=10.5, loc="left")
        ax.grid(axis="y", color="#e5e7eb", linewidth=0.8)
        ax.tick_params(labelsize=9)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    handles = [
        Line2D([], [], color=palette[i % len(palette)], marker="o", label=lab)
        for i, lab in enumerate(labels)
    ]
    if has_base:
        handles.append(Line2D([], [], color="#6b7280", linestyle="--", label="baseline"))
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(len(handles), 4),
        fontsize=9,
        frameon=False,
    )
    fig.suptitle("Sensitivity to the dose-matching tolerance", fontsize=12, x=0.01, ha="left")
    return fig


def _has_rows(frame: pd.DataFrame | None) -> bool:
    return frame is not None and not frame.empty


def agreement_figures(
    *,
    cross_summary: pd.DataFrame | None = None,
    replicate_summary: pd.DataFrame | None = None,
    retrieval: pd.DataFrame | None = None,
    dose_sensitivity: pd.DataFrame | None = None,
    heatmap_baseline: str = "cross_centroid_a",
) -> dict[str, Figure]:
    """Every figure that has data, by name (insertion order is the report's order).

    Names: ``cross_agreement``, ``cross_heatmap_<metric>`` (one per pair metric),
    ``retrieval``, ``replicate_agreement``, ``dose_sensitivity``.
    """
    figures: dict[str, Figure] = {}
    cross = _overall(cross_summary)
    pair_rows = cross[~cross["metric"].isin(RETRIEVAL_METRICS)] if not cross.empty else cross
    replicate = _overall(replicate_summary)
    if not replicate.empty and "n_conditions" in replicate.columns:
        replicate = replicate[replicate["n_conditions"].fillna(0) > 0]
    if defined_metrics(pair_rows):
        figures["cross_agreement"] = cross_agreement_figure(pair_rows)
        for metric in defined_metrics(pair_rows):
            figures[f"cross_heatmap_{metric}"] = cross_heatmap_figure(
                pair_rows, replicate, metric=metric, baseline=heatmap_baseline
            )
    if not retrieval_summary(cross_summary, retrieval).empty:
        figures["retrieval"] = retrieval_figure(cross_summary, retrieval)
    if not replicate.empty and replicate["observed"].notna().any():
        figures["replicate_agreement"] = replicate_figure(replicate)
    if _has_rows(dose_sensitivity):
        figures["dose_sensitivity"] = dose_sensitivity_figure(dose_sensitivity)
    return figures


def figure_png(fig: Figure, *, dpi: int = 120) -> bytes:
    """``fig`` as PNG bytes (no timestamp in the metadata)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white", metadata={"Software": None})
    return buf.getvalue()


def _figure_svg(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", facecolor="white", metadata={"Date": None})
    return buf.getvalue()


def save_figures(
    figures: Mapping[str, Figure],
    folder: str | os.PathLike[str],
    *,
    dpi: int = 120,
    png: Mapping[str, bytes] | None = None,
) -> dict[str, dict[str, Path]]:
    """Write each figure as ``<folder>/<name>.png`` and ``.svg``, atomically.

    ``png`` may hold PNG bytes already rendered (by :func:`figure_png`), which are
    written as they are. Returns ``{name: {"png": path, "svg": path}}``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, dict[str, Path]] = {}
    for name, fig in figures.items():
        paths = {"png": folder / f"{name}.png", "svg": folder / f"{name}.svg"}
        payloads = {
            "png": png[name] if png is not None and name in png else figure_png(fig, dpi=dpi),
            "svg": _figure_svg(fig),
        }
        for kind, path in paths.items():
            with atomic_file(path) as tmp:
                tmp.write_bytes(payloads[kind])
        written[name] = paths
    return written

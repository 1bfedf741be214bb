"""The models section of the HTML report: an evaluation's metrics beside its baselines.

An evaluation folder (``perturbridge evaluate … --out DIR``, read by
:func:`~perturbridge.models.evaluation.read_evaluation`) becomes

* a table of every model and baseline (mean ± SD over seeds of MRRMSE, Pearson,
  Pearson-Δ, DEG direction accuracy, top-k recall and the pooled RMSE), with the paired
  tests and the replicate-agreement ceiling of the target dataset beside;
* bars of MRRMSE per model and per dataset (baselines in grey);
* learning curves (training and validation loss per epoch) from each model's
  ``history.csv``.

:func:`models_section` returns the section for the agreement report
(:func:`~perturbridge.report.write_report` with ``evaluation_dir``);
:func:`write_models_report` writes it as a report of its own.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._version import __version__
from ..io import atomic_file
from ..models.evaluation import EvaluationResult, read_evaluation
from . import figures as F
from .tables import _CSS, _e, _empty, _Fig, _figure_html, _frame_table, _p

__all__ = ["models_figures", "models_section", "write_models_report"]

_BASELINE_COLOR = "#9ca3af"
_MODEL_COLOR = "#2563eb"
_SHOWN = ("mrrmse", "pearson", "pearson_delta", "direction_accuracy", "topk_recall", "pooled_rmse")


def _mean_sd(m: float, s: float) -> str:
    if not np.isfinite(m):
        return "-"
    return f"{m:.4f}" + (f" ± {s:.4f}" if np.isfinite(s) else "")


def summary_table(result: EvaluationResult) -> pd.DataFrame:
    """Models and baselines with ``mean ± SD`` over seeds of the main metrics."""
    s = result.summary
    out = pd.DataFrame({"model": s["model"], "kind": s["kind"], "seeds": s["n_seeds"]})
    for m in _SHOWN:
        out[m] = [_mean_sd(a, b) for a, b in zip(s[f"{m}_mean"], s[f"{m}_sd"], strict=True)]
    notes = result.pooled.groupby("model", sort=False)["note"].first()
    out["note"] = notes.reindex(out["model"]).fillna("").to_numpy()
    return out


def _bars(ax: Axes, labels: list[str], values: np.ndarray, errors: np.ndarray, kinds: list[str]):
    y = np.arange(len(labels))
    colors = [_BASELINE_COLOR if k == "baseline" else _MODEL_COLOR for k in kinds]
    err = np.where(np.isfinite(errors), errors, 0.0)
    ax.barh(y, values, xerr=err, color=colors)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()


def models_figures(result: EvaluationResult) -> dict[str, Figure]:
    """``model_metrics`` (MRRMSE per model), ``model_datasets`` (MRRMSE per dataset and
    model, seed means) and ``model_learning`` (loss per epoch) when there are histories."""
    figs: dict[str, Figure] = {}
    s = result.summary[np.isfinite(result.summary["mrrmse_mean"].to_numpy(float))]
    if len(s):
        fig = F._new_figure(6.5, 0.5 + 0.35 * len(s))
        ax = fig.add_subplot()
        _bars(
            ax,
            s["model"].astype(str).tolist(),
            s["mrrmse_mean"].to_numpy(float),
            s["mrrmse_sd"].to_numpy(float),
            s["kind"].astype(str).tolist(),
        )
        ax.set_xlabel("MRRMSE (mean row-wise RMSE; lower is better), mean ± SD over seeds")
        figs["model_metrics"] = fig
    dc = result.per_dataset_context
    if len(dc):
        ok = dc[np.isfinite(dc["mrrmse"].to_numpy(float))]
        per = (
            ok.assign(w=ok["mrrmse"] * ok["n_conditions"])
            .groupby(["dataset", "model", "kind"], sort=False)[["w", "n_conditions"]]
            .sum()
            .reset_index()
        )
        per["mrrmse"] = per["w"] / per["n_conditions"]
        datasets = sorted(per["dataset"].astype(str).unique())
        models = list(dict.fromkeys(per["model"].astype(str)))
        kinds = dict(zip(per["model"].astype(str), per["kind"].astype(str), strict=False))
        fig = F._new_figure(7.0, 0.8 + 0.3 * len(datasets) * len(models))
        ax = fig.add_subplot()
        width = 0.8 / max(len(models), 1)
        cmap = colormaps["tab10"]
        for j, m in enumerate(models):
            v = per[per["model"] == m].set_index("dataset")["mrrmse"].reindex(datasets)
            color = _BASELINE_COLOR if kinds[m] == "baseline" else cmap(j % 10)
            hatch = "//" if kinds[m] == "baseline" and j % 2 else None
            ax.barh(np.arange(len(datasets)) + j * width, v.to_numpy(float), height=width,
                    color=color, hatch=hatch, label=m)  # fmt: skip
        ax.set_yticks(np.arange(len(datasets)) + 0.4 - width / 2, datasets)
        ax.invert_yaxis()
        ax.set_xlabel("MRRMSE per dataset (seed means)")
        ax.legend(fontsize=8, loc="lower right")
        figs["model_datasets"] = fig
    if result.histories:
        fig = F._new_figure(6.5, 3.2)
        ax = fig.add_subplot()
        for i, (run, h) in enumerate(result.histories.items()):
            color = colormaps["tab10"](i % 10)
            ax.plot(h["epoch"], h["train_loss"], color=color, ls="--", lw=1)
            ax.plot(h["epoch"], h["val_loss"], color=color, lw=1.5, label=run)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (masked MSE): -- training, — validation")
        ax.legend(fontsize=8)
        figs["model_learning"] = fig
    return figs


def models_section(result: EvaluationResult, figs: Mapping[str, _Fig]) -> str:
    """The HTML section of an evaluation (figures already rendered as PNG)."""
    meta = result.meta.get("split") or {}
    split_text = (
        f"Split: {meta.get('kind', '?')} hold-out"
        + (
            f" of target dataset {meta['options']['target_dataset']}"
            if (meta.get("options") or {}).get("target_dataset")
            else ""
        )
        + f"; evaluated part: {(result.meta.get('options') or {}).get('part', 'test')}"
        + f" ({result.meta.get('n_rows', '?')} conditions)."
    )
    parts = [
        '<section id="models"><h2>Models against the trivial baselines</h2>',
        _p(split_text),
        _p(
            "Every model is shown beside three baselines that need no model: no effect "
            "(zero), the training mean of the same dataset × context × gene (train_mean) and "
            "the nearest training compound by Morgan Tanimoto (nearest_tanimoto). MRRMSE is "
            "the mean over conditions of the row-wise RMSE (lower is better); Pearson-Δ "
            "correlates both signatures minus the training mean, so it credits only what a "
            "model adds to the dataset's average response."
        ),
        _frame_table(summary_table(result), caption="mean ± SD over seeds"),
        _figure_html(
            figs.get("model_metrics"),
            "bars are MRRMSE (lower is better); grey bars are baselines; whiskers are the "
            "SD over seeds.",
        ),
        _figure_html(figs.get("model_datasets"), "MRRMSE per dataset, seed means."),
        "<h3>Paired tests</h3>",
        (
            _frame_table(result.tests, caption="MRRMSE of model a minus model b")
            if len(result.tests)
            else _empty("No pair of models to compare.")
        ),
        "<h3>Replicate-agreement ceiling of the target dataset</h3>",
        _p(
            "How well replicates of the same condition agree with each other: a model "
            "cannot be expected to agree with a measurement better than the measurement "
            "agrees with itself."
        ),
        (
            _frame_table(result.ceiling)
            if len(result.ceiling)
            else _empty("The ceiling was not computed.")
        ),
        "<h3>Learning curves</h3>",
        (
            _figure_html(
                figs.get("model_learning"),
                "dashed: training loss, solid: validation loss, per epoch.",
            )
            if "model_learning" in figs
            else _empty("No training history was given with the models.")
        ),
        "<h3>Per dataset and context</h3>",
        _frame_table(
            result.per_dataset_context.groupby(["model", "dataset", "context"], sort=False)
            .mean(numeric_only=True)
            .drop(columns=["seed"], errors="ignore")
            .reset_index(),
            caption="seed means",
        ),
        "</section>",
    ]
    return "".join(parts)


def render_section(result: EvaluationResult) -> tuple[str, dict[str, Figure]]:
    """The section's HTML and its figures (for writing them beside the report)."""
    figures = models_figures(result)
    figs = {name: _Fig(name, F.figure_png(fig)) for name, fig in figures.items()}
    return models_section(result, figs), figures


def write_models_report(
    evaluation: EvaluationResult | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> Path:
    """Write an evaluation (a result or its folder) as a self-contained HTML report."""
    result = evaluation if isinstance(evaluation, EvaluationResult) else read_evaluation(evaluation)
    out = Path(out)
    if out.is_dir():
        raise IsADirectoryError(f"{out} is a folder; give the path of an .html file")
    section, _ = render_section(result)
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = title or "Model evaluation"
    document = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
        f'<header><h1>{_e(title)}</h1><p class="meta">generated {_e(now)} by '
        f"perturbridge {_e(__version__)}</p></header>{section}"
        "<footer>self-contained report: no external resources, no scripts.</footer>"
        "</main></body></html>\n"
    )
    with atomic_file(out) as tmp:
        tmp.write_text(document, encoding="utf-8")
    return out

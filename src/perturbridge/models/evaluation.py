"""Evaluation of trained models on a split, with the trivial baselines always beside.

:func:`evaluate` predicts the rows of one part of a split (``test`` by default) with every
model (a :class:`~perturbridge.models.model.TrainedModel`, or a matrix of predictions
for those rows; a list of either is one entry per seed) and with every baseline of
:data:`~perturbridge.models.baselines.BASELINES`, and returns an
:class:`EvaluationResult` of tables:

* ``pooled``: one row per model × seed: the published pooled metrics
  (:func:`~perturbridge.models.metrics.pooled_metrics`) and the means of the
  per-condition metrics (``mrrmse`` first);
* ``per_condition``: one row per model × seed × condition;
* ``per_dataset_context``: per-condition means per model × seed × dataset × context;
* ``summary``: mean ± SD over seeds per model (a baseline is one deterministic "seed");
* ``tests``: paired comparisons of each pair of models on MRRMSE: a paired t-test
  across seeds (the seeds of both models matched by position; a deterministic baseline
  is the same value for every seed) and a Wilcoxon signed-rank test across conditions
  of the seed-mean row-wise RMSE;
* ``ceiling``: the replicate agreement of the target dataset
  (:func:`perturbridge.agreement.replicate_agreement` on the evaluated conditions), or
  one row saying why it is missing, so a score limited by the data's own
  reproducibility is not read as a model failure.

The ``reference`` of Pearson-Δ is the ``train_mean`` baseline. The evaluated part is
held in memory (its observed values and one prediction matrix at a time per model).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from ..agreement import replicate_agreement
from ..io import atomic_dir, provenance
from .baselines import BASELINES, predict_baseline
from .metrics import (
    CONDITION_METRICS,
    POOLED_METRICS,
    condition_metrics,
    pooled_metrics,
    summarize_conditions,
)

if TYPE_CHECKING:
    from ..compendium import Compendium
    from .data import TrainingData
    from .splits import Split

__all__ = [
    "EvaluationOptions",
    "EvaluationResult",
    "combine_seeds",
    "evaluate",
    "paired_tests",
    "read_evaluation",
]

logger = logging.getLogger(__name__)

#: the metric columns of the ``pooled`` and ``summary`` tables, in order
METRICS = (
    "mrrmse",
    "pearson",
    "pearson_delta",
    "direction_accuracy",
    "topk_recall",
    *(f"pooled_{m}" for m in POOLED_METRICS),
)
_KEYS = ["dataset", "context", "compound", "dose_uM", "time_h"]
_TABLES = ("pooled", "per_condition", "per_dataset_context", "summary", "tests", "ceiling")


@dataclass(frozen=True)
class EvaluationOptions:
    """How a split is evaluated.

    Attributes
    ----------
    part
        The part of the split to evaluate (``test`` or ``val``).
    k
        Size of the top-k DEG sets (observed DEGs: the ``k`` largest ``|logFC|``).
    baselines
        Baselines to add (all by default; ``nearest_tanimoto`` needs structures and is
        shown with a note and no numbers without them).
    reference
        Paired tests of every model against this one only (default: all pairs).
    batch_size
        Rows per prediction batch of a trained model.
    ceiling
        Add the replicate-agreement ceiling of the target dataset (needs the store).
    """

    part: str = "test"
    k: int = 50
    baselines: tuple[str, ...] = tuple(BASELINES)
    reference: str | None = None
    batch_size: int = 1024
    ceiling: bool = True

    def __post_init__(self) -> None:
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise KeyError(f"unknown baseline(s) {unknown}; known: {sorted(BASELINES)}")
        if self.part not in ("train", "val", "test"):
            raise ValueError(f"part must be train, val or test, got {self.part!r}")
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")


@dataclass
class EvaluationResult:
    """The tables of an evaluation (see the module docstring) and its metadata."""

    pooled: pd.DataFrame
    per_condition: pd.DataFrame
    per_dataset_context: pd.DataFrame
    summary: pd.DataFrame
    tests: pd.DataFrame
    ceiling: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    #: learning curves (``history.csv`` of a training folder) by ``<model>__<seed>``
    histories: dict[str, pd.DataFrame] = field(default_factory=dict)

    def table(self, name: str) -> pd.DataFrame:
        """One table by name."""
        if name not in _TABLES:
            raise KeyError(f"unknown table {name!r}; tables: {list(_TABLES)}")
        return getattr(self, name)

    def save(self, path: str | os.PathLike[str], *, replace: bool = False) -> Path:
        """Write every table as TSV and ``meta.json`` into the folder ``path`` (atomic)."""
        path = Path(path)
        with atomic_dir(path, replace=replace) as tmp:
            for name in _TABLES:
                self.table(name).to_csv(tmp / f"{name}.tsv", sep="\t", index=False)
            (tmp / "meta.json").write_text(json.dumps(self.meta, indent=2, default=str) + "\n")
            if self.histories:
                (tmp / "histories").mkdir()
                for i, (key, hist) in enumerate(self.histories.items()):
                    hist.assign(run=key).to_csv(
                        tmp / "histories" / f"{i:03d}.tsv", sep="\t", index=False
                    )
        return path


def read_evaluation(path: str | os.PathLike[str]) -> EvaluationResult:
    """Read an evaluation folder written by :meth:`EvaluationResult.save`."""
    path = Path(path)
    missing = [f"{n}.tsv" for n in _TABLES if not (path / f"{n}.tsv").is_file()]
    if not (path / "meta.json").is_file():
        missing.append("meta.json")
    if missing:
        raise FileNotFoundError(f"{path} is not an evaluation folder: missing {missing}")
    tables = {}
    for n in _TABLES:
        try:
            tables[n] = pd.read_csv(path / f"{n}.tsv", sep="\t", keep_default_na=True)
        except pd.errors.EmptyDataError:
            tables[n] = pd.DataFrame()
    histories = {}
    for f in sorted((path / "histories").glob("*.tsv")):
        h = pd.read_csv(f, sep="\t")
        histories[str(h["run"].iloc[0]) if len(h) else f.stem] = h.drop(columns="run")
    meta = json.loads((path / "meta.json").read_text())
    return EvaluationResult(**tables, meta=meta, histories=histories)


# --------------------------------------------------------------------------- evaluate


def _as_seeds(value: Any) -> list[Any]:
    if isinstance(value, np.ndarray) or hasattr(value, "predict"):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value):
        return list(value)
    raise TypeError(
        "each model must be a TrainedModel, a prediction matrix, or a non-empty list of "
        f"them (one per seed); got {type(value).__name__}"
    )


def _predict(model: Any, data: TrainingData, rows: np.ndarray, *, name: str, batch: int):
    if isinstance(model, np.ndarray):
        pred = np.asarray(model, dtype=np.float32)
    else:
        pred = np.asarray(model.predict(data, rows, batch_size=batch), dtype=np.float32)
    want = (len(rows), len(data.genes))
    if pred.shape != want:
        raise ValueError(
            f"model {name!r}: predictions have shape {pred.shape}; the evaluated rows × genes "
            f"are {want} (a model trained on other genes must be evaluated on its own data)"
        )
    return pred


def _ceiling(
    store: Compendium | None, data: TrainingData, rows: np.ndarray, split: Split
) -> pd.DataFrame:
    target = (split.manifest.get("options") or {}).get("target_dataset")
    conds = data.conditions.iloc[rows]
    datasets = [target] if target else sorted(conds["dataset"].astype(str).unique())
    if store is None:
        return pd.DataFrame({"dataset": datasets, "reason": "no store given"})
    ids = conds.loc[conds["dataset"].astype(str).isin(datasets), "condition_id"]
    catalog = store.conditions()
    catalog = catalog[catalog["condition_id"].isin(set(ids.astype(str)))]
    _, summary = replicate_agreement(store, catalog)
    summary = summary[summary["dataset"].isin(datasets)]
    if not len(summary):
        return pd.DataFrame({"dataset": datasets, "reason": "no replicate contrasts"})
    return summary.reset_index(drop=True)


def evaluate(
    models: Mapping[str, Any],
    data: TrainingData,
    split: Split,
    *,
    options: EvaluationOptions | None = None,
    structures: pd.DataFrame | None = None,
    store: Compendium | None = None,
) -> EvaluationResult:
    """Evaluate ``models`` on one part of ``split``, beside the trivial baselines.

    Parameters
    ----------
    models
        Name → a trained model, a prediction matrix for the part's rows (in the order of
        ``split.rows(data, part)``), or a list of either (one per seed).
    data
        The training data the split was made on.
    split
        The split (its ``train`` rows feed the baselines).
    options
        See :class:`EvaluationOptions`.
    structures
        Compound structures (``read_structures``) for the ``nearest_tanimoto`` baseline.
    store
        The store, for the replicate-agreement ceiling.
    """
    opts = options or EvaluationOptions()
    clash = [m for m in models if m in BASELINES]
    if clash:
        raise ValueError(f"model names {clash} are baseline names; rename the models")
    seeds = {name: _as_seeds(v) for name, v in models.items()}
    rows = np.asarray(split.rows(data, opts.part), dtype=np.int64)
    train_rows = np.asarray(split.rows(data, "train"), dtype=np.int64)
    if not len(rows):
        raise ValueError(f"the split has no {opts.part!r} rows in this data")
    if not len(train_rows):
        raise ValueError("the split has no 'train' rows in this data")
    obs = data.values(rows)
    keys = data.conditions.iloc[rows][["condition_id", *_KEYS]].reset_index(drop=True)
    mean = predict_baseline("train_mean", data, train_rows, rows)
    ref = mean.values
    entries: list[tuple[str, str, int, np.ndarray | None, str]] = []
    for b in opts.baselines:
        if BASELINES[b].needs_structures and structures is None:
            entries.append((b, "baseline", 0, None, "needs compound structures"))
            continue
        p = (
            mean
            if b == "train_mean"
            else predict_baseline(b, data, train_rows, rows, structures=structures)
        )
        how = "; ".join(f"{k}: {v}" for k, v in p.counts().items())
        entries.append((b, "baseline", 0, p.values, how))
    ctx = _Scoring(obs=obs, reference=ref, keys=keys, k=opts.k)
    pooled_rows = [ctx.score(*entry) for entry in entries]
    for name, items in seeds.items():
        for seed, model in enumerate(items):
            pred = _predict(model, data, rows, name=name, batch=opts.batch_size)
            pooled_rows.append(ctx.score(name, "model", seed, pred, ""))
    meta = {
        "split": split.manifest,
        "options": asdict(opts),
        "n_rows": len(rows),
        "n_genes": len(data.genes),
        "models": {n: len(v) for n, v in seeds.items()},
        "provenance": provenance(step="evaluate", params=asdict(opts)),
    }
    per_cond = pd.concat(ctx.tables, ignore_index=True)
    result = _assemble(pd.DataFrame(pooled_rows), per_cond, opts, meta)
    result.ceiling = (
        _ceiling(store, data, rows, split)
        if opts.ceiling
        else pd.DataFrame({"dataset": [], "reason": []})
    )
    return result


@dataclass
class _Scoring:
    """The observed values of the evaluated rows, and the per-condition tables so far."""

    obs: np.ndarray
    reference: np.ndarray
    keys: pd.DataFrame
    k: int
    tables: list[pd.DataFrame] = field(default_factory=list)

    def score(
        self, name: str, kind: str, seed: int, pred: np.ndarray | None, note: str
    ) -> dict[str, Any]:
        rec: dict[str, Any] = {"model": name, "kind": kind, "seed": seed, "note": note}
        if pred is None:  # a baseline that could not run: in every table, without numbers
            table = condition_metrics(self.obs, self.obs, k=self.k)
            table.loc[:, list(CONDITION_METRICS)] = np.nan
            rec |= dict.fromkeys(METRICS, np.nan) | {"n_conditions": 0, "n_values": 0}
        else:
            table = condition_metrics(pred, self.obs, reference=self.reference, k=self.k)
            for m, v in pooled_metrics(pred, self.obs).items():
                rec[f"pooled_{m}" if m != "n_values" else m] = v
            rec |= summarize_conditions(table)
        table.insert(0, "seed", seed)
        table.insert(0, "kind", kind)
        table.insert(0, "model", name)
        self.tables.append(pd.concat([table, self.keys], axis=1))
        return rec


def _assemble(
    pooled: pd.DataFrame, per_cond: pd.DataFrame, opts: EvaluationOptions, meta: dict[str, Any]
) -> EvaluationResult:
    pooled = pooled.reindex(
        columns=["model", "kind", "seed", *METRICS, "n_conditions", "n_values", "note"]
    )
    cond_metrics = ["rmse", "pearson", "pearson_delta", "direction_accuracy", "topk_recall"]
    per_dc = (
        per_cond.groupby(["model", "kind", "seed", "dataset", "context"], sort=False)
        .agg(n_conditions=("rmse", "size"), **{m: (m, "mean") for m in cond_metrics})
        .reset_index()
        .rename(columns={"rmse": "mrrmse"})
    )
    return EvaluationResult(
        pooled=pooled,
        per_condition=per_cond,
        per_dataset_context=per_dc,
        summary=_summary(pooled),
        tests=paired_tests(pooled, per_cond, reference=opts.reference),
        ceiling=pd.DataFrame(),
        meta=meta,
    )


def _summary(pooled: pd.DataFrame) -> pd.DataFrame:
    out = []
    for (name, kind), g in pooled.groupby(["model", "kind"], sort=False):
        rec: dict[str, Any] = {"model": name, "kind": kind, "n_seeds": len(g)}
        for m in METRICS:
            v = g[m].to_numpy(dtype=float)
            rec[f"{m}_mean"] = float(np.mean(v))
            rec[f"{m}_sd"] = float(np.std(v, ddof=1)) if len(v) > 1 else np.nan
        out.append(rec)
    return pd.DataFrame(out)


def _paired_t(d: np.ndarray) -> tuple[float, float]:
    """Paired t statistic and two-sided p of differences ``d`` (NaN when undefined)."""
    n = len(d)
    if n < 2:
        return np.nan, np.nan
    sd = float(np.std(d, ddof=1))
    if sd == 0:
        return np.nan, np.nan
    t = float(np.mean(d) / (sd / np.sqrt(n)))
    return t, float(2 * stats.t.sf(abs(t), n - 1))


def _wilcoxon(d: np.ndarray) -> float:
    d = d[np.isfinite(d) & (d != 0)]
    if len(d) < 2:
        return np.nan
    return float(stats.wilcoxon(d).pvalue)


def paired_tests(
    pooled: pd.DataFrame, per_condition: pd.DataFrame, *, reference: str | None = None
) -> pd.DataFrame:
    """Paired comparisons on MRRMSE of each pair of models (``a`` minus ``b``).

    ``p_seeds``: paired t-test across seeds (seed ``i`` of ``a`` with seed ``i`` of
    ``b``; a one-seed entry, such as a baseline, is repeated); ``p_conditions``:
    Wilcoxon signed-rank test across conditions of the seed-mean row-wise RMSE.
    """
    names = list(dict.fromkeys(pooled["model"]))
    if reference is not None and reference not in names:
        raise KeyError(f"reference model {reference!r} is not evaluated; models: {names}")
    pairs = (
        [(reference, b) for b in names if b != reference]
        if reference is not None
        else list(combinations(names, 2))
    )
    cond_rmse = per_condition.groupby(["model", "condition_id"], sort=False)["rmse"].mean()
    out = []
    for a, b in pairs:
        va = pooled.loc[pooled["model"] == a].sort_values("seed")["mrrmse"].to_numpy(float)
        vb = pooled.loc[pooled["model"] == b].sort_values("seed")["mrrmse"].to_numpy(float)
        if np.isnan(va).all() or np.isnan(vb).all():
            continue
        n = max(len(va), len(vb))
        if len(va) == 1:
            va = np.repeat(va, n)
        if len(vb) == 1:
            vb = np.repeat(vb, n)
        if len(va) != len(vb):
            raise ValueError(f"models {a!r} and {b!r} have {len(va)} and {len(vb)} seeds")
        t, p = _paired_t(va - vb)
        ca = cond_rmse.loc[a]
        cb = cond_rmse.loc[b].reindex(ca.index)
        out.append(
            {
                "model_a": a,
                "model_b": b,
                "metric": "mrrmse",
                "n_seeds": n,
                "mean_a": float(np.mean(va)),
                "mean_b": float(np.mean(vb)),
                "mean_diff": float(np.mean(va - vb)),
                "t": t,
                "p_seeds": p,
                "n_conditions": len(ca),
                "p_conditions": _wilcoxon((ca - cb).to_numpy(float)),
            }
        )
    cols = ["model_a", "model_b", "metric", "n_seeds", "mean_a", "mean_b", "mean_diff", "t"]
    return pd.DataFrame(out, columns=[*cols, "p_seeds", "n_conditions", "p_conditions"])


def combine_seeds(
    results: Sequence[EvaluationResult], *, reference: str | None = None
) -> EvaluationResult:
    """One result from evaluations of the same models on several splits (one seed each,
    e.g. one split seed and one model seed per result): the tables stacked with the
    result's position as ``seed`` (baselines included: they change with the split), and
    the summary and paired tests recomputed across them. ``condition_id`` of the
    per-condition table becomes ``<seed>:<condition_id>`` (a condition of two splits is
    two pairs of the Wilcoxon test). The ceiling is the first result's."""
    if not results:
        raise ValueError("no results to combine")
    pooled, per_cond = [], []
    for i, r in enumerate(results):
        if (r.pooled["kind"] == "model").any() and (r.pooled["seed"] != 0).any():
            raise ValueError(f"result {i} has several seeds; combine one-seed results only")
        pooled.append(r.pooled.assign(seed=i))
        per_cond.append(r.per_condition.assign(seed=i))
    opts = EvaluationOptions(reference=reference)
    out = _assemble(
        pd.concat(pooled, ignore_index=True),
        pd.concat(per_cond, ignore_index=True),
        opts,
        {"combined": [r.meta for r in results]},
    )
    # condition ids differ between splits: the per-condition test pairs (split, condition)
    out.per_condition["condition_id"] = (
        out.per_condition["seed"].astype(str) + ":" + out.per_condition["condition_id"].astype(str)
    )
    out.tests = paired_tests(out.pooled, out.per_condition, reference=reference)
    out.ceiling = results[0].ceiling
    return out

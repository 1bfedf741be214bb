"""Metrics of predicted against observed effects, NaN-aware (pure NumPy kernels).

Values are matrices of conditions × genes; ``NaN`` in ``obs`` marks a gene that the
condition's dataset did not measure and is left out of every metric. A prediction must
be finite wherever the observation is measured (a ``NaN`` prediction there is an error,
never silently dropped).

* :func:`pooled_metrics`: the published pooled metrics (RMSE, MAE, R², Pearson over all
  measured values at once). They are dominated by the many near-zero genes.
* :func:`condition_metrics`: one row per condition: ``rmse`` (its mean over conditions
  is MRRMSE, the mean row-wise RMSE of the OP3 benchmark), ``pearson`` (predicted vs
  observed signature), ``pearson_delta`` (both signatures minus a reference, the
  training mean of the same dataset × context × gene), ``direction_accuracy`` (share of
  the observed DEGs whose sign is predicted) and ``topk_recall`` (share of the observed
  top DEGs found among the ``k`` genes with the largest predicted magnitude).
* :func:`summarize_conditions`: the means of a per-condition table (MRRMSE first).

Observed DEGs: the genes of ``deg_mask`` when given, else the ``k`` measured genes with
the largest ``|obs|`` of each condition; for ``topk_recall`` the DEGs are ranked by
``|obs|`` and at most ``k`` of them are kept.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "CONDITION_METRICS",
    "POOLED_METRICS",
    "condition_metrics",
    "pooled_metrics",
    "summarize_conditions",
]

#: the keys of :func:`pooled_metrics` (besides ``n_values``)
POOLED_METRICS = ("rmse", "mae", "r2", "pearson")
#: the metric columns of :func:`condition_metrics`
CONDITION_METRICS = ("rmse", "pearson", "pearson_delta", "direction_accuracy", "topk_recall")


def _check(pred: np.ndarray, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    o = np.asarray(obs, dtype=np.float64)
    if p.ndim == 1:
        p = p[None, :]
    if o.ndim == 1:
        o = o[None, :]
    if p.shape != o.shape or p.ndim != 2:
        raise ValueError(
            f"predictions and observations must be matrices of the same shape "
            f"(conditions × genes); got {np.shape(pred)} and {np.shape(obs)}"
        )
    measured = np.isfinite(o)
    bad = measured & ~np.isfinite(p)
    if bad.any():
        rows, cols = np.nonzero(bad)
        first = ", ".join(f"({r}, {c})" for r, c in zip(rows[:5], cols[:5], strict=True))
        raise ValueError(
            f"{int(bad.sum())} prediction(s) are not finite where the gene is measured "
            f"(row, column): {first}"
        )
    return p, o, measured


def pooled_metrics(pred: np.ndarray, obs: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, R² and Pearson's r over all measured values at once (the published
    metrics), and ``n_values``, the number of measured values.

    R² is ``1 - SS_res / SS_tot`` around the mean of the measured observations.
    Metrics are ``NaN`` when there are no measured values (Pearson and R² also when the
    observations are constant).
    """
    p, o, m = _check(pred, obs)
    pv, ov = p[m], o[m]
    n = int(ov.size)
    out: dict[str, float] = {"n_values": float(n)}
    if n == 0:
        return {**dict.fromkeys(POOLED_METRICS, float("nan")), **out}
    err = pv - ov
    out["rmse"] = float(np.sqrt(np.mean(err**2)))
    out["mae"] = float(np.mean(np.abs(err)))
    ss_tot = float(np.sum((ov - ov.mean()) ** 2))
    out["r2"] = float(1.0 - np.sum(err**2) / ss_tot) if ss_tot > 0 else float("nan")
    out["pearson"] = _pearson_flat(pv, ov)
    return {k: out[k] for k in (*POOLED_METRICS, "n_values")}


def _pearson_flat(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2:
        return float("nan")
    da, db = a - a.mean(), b - b.mean()
    den = np.sqrt(np.sum(da**2) * np.sum(db**2))
    return float(np.sum(da * db) / den) if den > 0 else float("nan")


def _row_pearson(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pearson's r of each row of ``a`` and ``b`` over the columns of ``mask``."""
    n = mask.sum(axis=1)
    az = np.where(mask, a, 0.0)
    bz = np.where(mask, b, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ma = az.sum(axis=1) / n
        mb = bz.sum(axis=1) / n
        da = np.where(mask, a - ma[:, None], 0.0)
        db = np.where(mask, b - mb[:, None], 0.0)
        num = (da * db).sum(axis=1)
        den = np.sqrt((da**2).sum(axis=1) * (db**2).sum(axis=1))
        r = num / den
    r[(n < 2) | ~(den > 0)] = np.nan
    return r


def _top_mask(score: np.ndarray, eligible: np.ndarray, k: int) -> np.ndarray:
    """Per row, the ``k`` eligible columns with the largest ``score`` (all eligible when
    fewer; ties broken by column order)."""
    s = np.where(eligible, score, -np.inf)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    top = np.zeros_like(eligible)
    np.put_along_axis(top, order, True, axis=1)
    return top & eligible


def condition_metrics(
    pred: np.ndarray,
    obs: np.ndarray,
    *,
    reference: np.ndarray | None = None,
    deg_mask: np.ndarray | None = None,
    k: int = 50,
) -> pd.DataFrame:
    """Per-condition metrics of ``pred`` against ``obs`` (rows = conditions).

    Parameters
    ----------
    pred, obs
        Conditions × genes; ``NaN`` in ``obs`` = not measured (left out).
    reference
        The signature that ``pearson_delta`` subtracts from both (the training mean of
        the same dataset × context × gene); genes where it is ``NaN`` are left out of
        ``pearson_delta``. Without it, ``pearson_delta`` is ``NaN``.
    deg_mask
        Observed differentially expressed genes (boolean, same shape). Default: the
        ``k`` measured genes with the largest ``|obs|`` of each condition.
    k
        Genes in the top-k sets.

    Returns
    -------
    One row per condition: ``n_genes`` (measured), ``n_deg``, then
    :data:`CONDITION_METRICS`. A condition without a measured gene has ``NaN`` metrics.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    p, o, m = _check(pred, obs)
    n_genes = m.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sq = np.where(m, (p - o) ** 2, 0.0).sum(axis=1)
        rmse = np.sqrt(sq / n_genes)
    rmse[n_genes == 0] = np.nan
    pearson = _row_pearson(p, o, m)
    if reference is None:
        pearson_delta = np.full(len(o), np.nan)
    else:
        ref = np.asarray(reference, dtype=np.float64)
        if ref.ndim == 1:
            ref = np.broadcast_to(ref, o.shape)
        if ref.shape != o.shape:
            raise ValueError(f"reference has shape {ref.shape}; expected {o.shape}")
        md = m & np.isfinite(ref)
        pearson_delta = _row_pearson(p - np.where(md, ref, 0.0), o - np.where(md, ref, 0.0), md)
    absobs = np.abs(np.where(m, o, 0.0))
    if deg_mask is None:
        deg = _top_mask(absobs, m, k)
    else:
        dm = np.asarray(deg_mask, dtype=bool)
        if dm.ndim == 1:
            dm = dm[None, :]
        if dm.shape != o.shape:
            raise ValueError(f"deg_mask has shape {dm.shape}; expected {o.shape}")
        deg = dm & m
    n_deg = deg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        agree = (np.sign(p) == np.sign(o)) & deg
        direction = agree.sum(axis=1) / n_deg
        obs_top = _top_mask(absobs, deg, k)
        pred_top = _top_mask(np.abs(np.where(m, p, 0.0)), m, k)
        recall = (obs_top & pred_top).sum(axis=1) / obs_top.sum(axis=1)
    direction[n_deg == 0] = np.nan
    recall[n_deg == 0] = np.nan
    return pd.DataFrame(
        {
            "n_genes": n_genes.astype(np.int64),
            "n_deg": n_deg.astype(np.int64),
            "rmse": rmse,
            "pearson": pearson,
            "pearson_delta": pearson_delta,
            "direction_accuracy": direction,
            "topk_recall": recall,
        }
    )


def summarize_conditions(table: pd.DataFrame) -> dict[str, float]:
    """Means over conditions of a :func:`condition_metrics` table (``NaN`` rows left out
    per metric): ``mrrmse`` (mean row-wise RMSE) and the mean of each other metric, with
    ``n_conditions``."""
    out: dict[str, float] = {"mrrmse": float(table["rmse"].mean())}
    for col in CONDITION_METRICS[1:]:
        out[col] = float(table[col].mean())
    out["n_conditions"] = float(len(table))
    return out

"""Metrics against hand computations and scipy, gene by gene in plain loops."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from perturbridge.models.metrics import (
    condition_metrics,
    pooled_metrics,
    summarize_conditions,
)

NAN = np.nan


def test_pooled_by_hand():
    obs = np.array([[1.0, NAN, -1.0], [0.0, 2.0, NAN]])
    pred = np.array([[0.0, 5.0, -1.0], [1.0, 2.0, 7.0]])
    # measured values: obs 1, -1, 0, 2 ; pred 0, -1, 1, 2 ; errors -1, 0, 1, 0
    got = pooled_metrics(pred, obs)
    assert got["n_values"] == 4
    assert got["rmse"] == pytest.approx(np.sqrt(2 / 4))
    assert got["mae"] == pytest.approx(2 / 4)
    # mean of obs = 0.5; ss_tot = 0.25 + 2.25 + 0.25 + 2.25 = 5; ss_res = 2
    assert got["r2"] == pytest.approx(1 - 2 / 5)
    assert got["pearson"] == pytest.approx(stats.pearsonr([0, -1, 1, 2], [1, -1, 0, 2])[0])


def test_pooled_nothing_measured_is_nan():
    got = pooled_metrics(np.zeros((2, 2)), np.full((2, 2), NAN))
    assert got["n_values"] == 0
    assert np.isnan(got["rmse"]) and np.isnan(got["pearson"])


def test_nan_prediction_where_measured_is_an_error():
    with pytest.raises(ValueError, match=r"not finite where the gene is measured.*\(0, 1\)"):
        pooled_metrics(np.array([[0.0, NAN]]), np.array([[1.0, 2.0]]))
    # a NaN prediction where the gene is not measured is fine
    assert pooled_metrics(np.array([[0.0, NAN]]), np.array([[1.0, NAN]]))["n_values"] == 1


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        condition_metrics(np.zeros((2, 3)), np.zeros((3, 2)))


def _reference_rows(pred, obs, ref, k):
    """Plain-loop reference: one condition at a time, on its measured genes."""
    rows = []
    for p, o, r in zip(pred, obs, ref, strict=True):
        m = np.isfinite(o)
        pm, om = p[m], o[m]
        rec = {"n_genes": int(m.sum())}
        rec["rmse"] = float(np.sqrt(np.mean((pm - om) ** 2)))
        rec["pearson"] = float(stats.pearsonr(pm, om)[0])
        md = m & np.isfinite(r)
        rec["pearson_delta"] = float(stats.pearsonr(p[md] - r[md], o[md] - r[md])[0])
        genes = np.flatnonzero(m)
        by_obs = sorted(genes, key=lambda g: (-abs(o[g]), g))[:k]
        by_pred = sorted(genes, key=lambda g: (-abs(p[g]), g))[:k]
        rec["n_deg"] = len(by_obs)
        rec["direction_accuracy"] = float(np.mean([np.sign(p[g]) == np.sign(o[g]) for g in by_obs]))
        rec["topk_recall"] = len(set(by_obs) & set(by_pred)) / len(by_obs)
        rows.append(rec)
    return pd.DataFrame(rows)


def test_condition_metrics_match_a_plain_loop():
    rng = np.random.default_rng(3)
    obs = rng.normal(size=(12, 30))
    obs[rng.random(obs.shape) < 0.2] = NAN
    obs[:, 0] = NAN  # a gene nobody measured
    pred = obs + rng.normal(scale=0.8, size=obs.shape)
    pred[np.isnan(pred)] = rng.normal(size=int(np.isnan(pred).sum()))
    ref = rng.normal(scale=0.3, size=obs.shape)
    ref[:, 5] = NAN
    got = condition_metrics(pred, obs, reference=ref, k=7)
    want = _reference_rows(pred, obs, ref, 7)
    pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=False, atol=1e-12)


def test_direction_and_recall_by_hand_with_a_deg_mask():
    obs = np.array([[3.0, -2.0, 1.0, 0.1, NAN]])
    pred = np.array([[1.0, 0.5, 0.9, -4.0, 9.0]])
    deg = np.array([[True, True, True, False, True]])  # gene 4 is not measured: not a DEG
    got = condition_metrics(pred, obs, deg_mask=deg, k=2).iloc[0]
    assert got["n_deg"] == 3
    # signs: gene 0 right, gene 1 wrong, gene 2 right
    assert got["direction_accuracy"] == pytest.approx(2 / 3)
    # observed top-2 DEGs: genes 0, 1; predicted top-2 by |pred| over measured: 3, 0
    assert got["topk_recall"] == pytest.approx(1 / 2)


def test_without_reference_pearson_delta_is_nan_and_empty_rows_are_nan():
    obs = np.array([[1.0, 2.0, 3.0], [NAN, NAN, NAN]])
    pred = np.array([[1.0, 2.0, 2.0], [0.0, 0.0, 0.0]])
    got = condition_metrics(pred, obs, k=2)
    assert got["pearson_delta"].isna().all()
    assert got.loc[1, "n_genes"] == 0 and got.loc[1].drop(["n_genes", "n_deg"]).isna().all()
    # constant prediction: Pearson undefined
    assert np.isnan(condition_metrics(np.zeros((1, 3)), obs[:1])["pearson"][0])
    s = summarize_conditions(got)
    assert s["mrrmse"] == pytest.approx(np.sqrt(1 / 3))
    assert s["n_conditions"] == 2


def test_bad_k():
    with pytest.raises(ValueError, match="k must be >= 1"):
        condition_metrics(np.zeros((1, 2)), np.zeros((1, 2)), k=0)

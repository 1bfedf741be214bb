"""Figures of the agreement report on small synthetic tables (docs/agreement.md columns)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from perturbridge.report import figures as F

PAIR_METRICS = ("deg_spearman", "direction", "spearman", "top100")
CROSS_BASELINES = ("cross_centroid_a", "cross_centroid_b", "peer_mean")
REP_BASELINES = ("centroid", "peer_mean")
LEVELS = {"deg_spearman": 0.25, "direction": 0.65, "spearman": 0.12, "top100": 0.08}
FLOORS = {"retrieval_norm_rank": 0.45, "retrieval_recall1": 0.05, "retrieval_auroc": 0.5}


def _summary_rows(keys: dict, metric: str, baselines, rng, *, level: float) -> list[dict]:
    """Rows of a summary table (docs/agreement.md) for one metric and its baselines."""
    obs = level + rng.uniform(-0.05, 0.05)
    half = rng.uniform(0.02, 0.08)
    n_pairs, n_compounds = int(rng.integers(20, 400)), int(rng.integers(10, 80))
    rows = []
    for base in baselines:
        value = FLOORS.get(metric, obs - rng.uniform(-0.02, 0.15))
        delta = obs - value
        rows.append(
            {
                **keys,
                "level": "all" if keys["cell_context"] == "*" else "context",
                "metric": metric,
                "baseline": base,
                "observed": obs,
                "observed_low": obs - half,
                "observed_high": obs + half,
                "baseline_value": value,
                "delta": delta,
                "delta_low": delta - half,
                "delta_high": delta + half,
                "n_pairs": n_pairs,
                "n_compounds": n_compounds,
                "n_contexts": 2 if keys["cell_context"] == "*" else 1,
                "n_strata": 3 if keys["cell_context"] == "*" else 1,
            }
        )
    return rows


def synthetic_tables(
    datasets=("L1000", "sciplex", "tahoe"), *, seed: int = 0, contexts=("A549", "MCF7")
) -> dict[str, pd.DataFrame]:
    """Agreement tables with the columns of docs/agreement.md and ``run_agreement``:
    cross_summary (pair metrics, direction ``a_to_b``; retrieval in the directions
    ``a_to_b``, ``b_to_a``, ``both``), replicate_summary (the last dataset without
    replicates: one ``metric="*"`` row with the reason), pairs, retrieval, excluded,
    strata and dose_sensitivity."""
    rng = np.random.default_rng(seed)
    cross, rep, pairs, retr, dose, strata = [], [], [], [], [], []
    for a, b in itertools.combinations(sorted(datasets), 2):
        for ctx in ("*", *contexts):
            keys = {"dataset_a": a, "dataset_b": b, "cell_context": ctx, "direction": "a_to_b"}
            for m in PAIR_METRICS:
                cross += _summary_rows(keys, m, CROSS_BASELINES, rng, level=LEVELS[m])
        for direction in ("a_to_b", "b_to_a", "both"):
            keys = {"dataset_a": a, "dataset_b": b, "cell_context": "*", "direction": direction}
            for m, level in (
                ("retrieval_norm_rank", 0.3),
                ("retrieval_recall1", 0.2),
                ("retrieval_auroc", 0.7),
            ):
                cross += _summary_rows(keys, m, ("random_floor",), rng, level=level)
        for q, t in ((a, b), (b, a)):
            for i in range(6):
                k, n = int(rng.integers(10, 40)), int(rng.integers(1, 3))
                retr.append(
                    {
                        "dataset_query": q,
                        "dataset_target": t,
                        "cell_context": contexts[i % 2],
                        "pert_time_h": 24.0,
                        "compound": f"CMP{i}",
                        "condition": f"{q}:c{i}",
                        "score": "euclidean",
                        "n_candidates": k,
                        "n_positives": n,
                        "best_rank": 3.0,
                        "norm_rank": 3.0 / (k + 1),
                        "norm_rank_floor": 1 / (n + 1),
                        "recall1": float(i % 2),
                        "recall1_floor": n / k,
                        "auroc": 0.8,
                    }
                )
        for i in range(8):
            pairs.append(
                {
                    "dataset_a": a,
                    "dataset_b": b,
                    "cell_context": contexts[i % 2],
                    "pert_time_h": 24.0,
                    "compound": f"CMP{i}",
                    "condition_a": f"{a}:c{i}",
                    "condition_b": f"{b}:c{i}",
                    "dose_a_uM": 1.0,
                    "dose_b_uM": 1.0 * (1 + i % 3),
                    "dlog10_dose": math.log10(1 + i % 3),
                    "n_genes": 900,
                    "n_de_a": 50,
                    "n_de_b": 70,
                    "deg_spearman": 0.3,
                    "deg_spearman__cross_centroid_a": 0.1,
                }
            )
        for j, ctx in enumerate(contexts):
            strata.append(
                {
                    "dataset_a": a,
                    "dataset_b": b,
                    "cell_context": ctx,
                    "pert_time_h": 24.0,
                    "n_compounds": 12 - 5 * j,
                    "n_pairs": 14 - 5 * j,
                    "kept": j == 0,
                    "reason": "kept" if j == 0 else "too_few_compounds",
                }
            )
        for (label, thr), m, base in itertools.product(
            (("exact", 1e-6), ("2x", math.log10(2)), ("3x", math.log10(3)), ("10x", 1.0)),
            PAIR_METRICS,
            CROSS_BASELINES,
        ):
            obs = LEVELS[m] + 0.02 * thr + 0.01 * len(b)
            dose.append(
                {
                    "threshold": label,
                    "max_log10_dose": thr,
                    "dataset_a": a,
                    "dataset_b": b,
                    "metric": m,
                    "baseline": base,
                    "observed": obs,
                    "baseline_value": LEVELS[m] - 0.05,
                    "delta": obs - LEVELS[m] + 0.05,
                    "n_pairs": int(100 + 100 * thr),
                    "n_compounds": 10,
                    "n_strata": 2,
                }
            )
    for i, d in enumerate(datasets):
        if i == len(datasets) - 1:  # the last dataset has no separate mode
            rep.append(
                {
                    "dataset": d,
                    "level": "all",
                    "cell_context": "*",
                    "metric": "*",
                    "baseline": "*",
                    "n_conditions": 0,
                    "reason": "no separate-mode effects",
                }
            )
            continue
        for m in PAIR_METRICS:
            keys = {"dataset": d, "cell_context": "*"}
            for r in _summary_rows(keys, m, REP_BASELINES, rng, level=LEVELS[m] + 0.2):
                rep.append({**r, "n_conditions": 40, "reason": ""})
    excluded = pd.DataFrame(
        {
            "dataset": [datasets[0], datasets[1], datasets[0]],
            "other_dataset": ["*", "*", datasets[1]],
            "status": ["unusable", "unusable", "not_matched"],
            "reason": ["no_positive_dose", "no_identity", "no_partner"],
            "n_conditions": [12, 3, 5],
            "n_compounds": [1, 3, 5],
        }
    )
    return {
        "cross_summary": pd.DataFrame(cross),
        "replicate_summary": pd.DataFrame(rep),
        "pairs": pd.DataFrame(pairs),
        "retrieval": pd.DataFrame(retr),
        "excluded": excluded,
        "strata": pd.DataFrame(strata),
        "dose_sensitivity": pd.DataFrame(dose),
    }


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return synthetic_tables()


def _n_points(ax) -> int:
    """Markers drawn on an axes: scatter offsets plus error-bar points."""
    from matplotlib.collections import PathCollection

    n = sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))
    return n + sum(len(line.get_xdata()) for line in ax.lines if line.get_marker() == "o")


def test_cross_agreement_figure_has_one_panel_per_metric(tables):
    fig = F.cross_agreement_figure(tables["cross_summary"])
    assert isinstance(fig, Figure)
    assert len(fig.axes) == len(PAIR_METRICS)
    assert [ax.get_title(loc="left") for ax in fig.axes] == [
        F.metric_label(m) for m in ("deg_spearman", "direction", "spearman", "top100")
    ]
    # 3 dataset pairs: 3 observed points and 3 × 3 baseline markers per panel
    for ax in fig.axes:
        assert _n_points(ax) == 3 + 3 * len(CROSS_BASELINES)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["L1000 vs sciplex", "L1000 vs tahoe", "sciplex vs tahoe"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [
        "Observed (95% CI)",
        "Cross-dataset centroid (A's others vs b)",
        "Cross-dataset centroid (a vs B's others)",
        "Cross-dataset peers (mean)",
    ]


def test_labels_follow_the_direction():
    frame = pd.DataFrame(
        {"dataset_a": ["A", "A", "A"], "dataset_b": ["B", "B", "B"],
         "direction": ["a_to_b", "b_to_a", "both"]}
    )  # fmt: skip
    assert F.label_rows(frame, directed=True)["_label"].tolist() == ["A → B", "B → A", "A ↔ B"]
    assert F.label_rows(frame)["_label"].tolist() == ["A vs B"] * 3
    assert F.threshold_label(1e-6) == "exact" and F.threshold_label(1.0) == "10×"


def test_cross_heatmap_figure_observed_and_delta(tables):
    fig = F.cross_heatmap_figure(
        tables["cross_summary"], tables["replicate_summary"], metric="direction"
    )
    heat = [ax for ax in fig.axes if ax.images]
    assert len(heat) == 2  # observed and Δ (plus their two colour bars)
    assert len(fig.axes) == 4
    obs = np.ma.filled(heat[0].images[0].get_array(), np.nan)
    delta = np.ma.filled(heat[1].images[0].get_array(), np.nan)
    assert obs.shape == (3, 3)
    # observed is mirrored; the diagonal holds replicate agreement (none for "tahoe")
    np.testing.assert_allclose(obs, obs.T)
    assert np.isfinite(np.diag(obs)[:2]).all() and np.isnan(obs[2, 2])
    # Δ only in the direction of the table (A → B, A < B here)
    assert np.isfinite(delta[0, 1]) and np.isnan(delta[1, 0])
    # every cell is annotated (a value or a dash)
    assert len(heat[0].texts) == 9


def test_replicate_figure_skips_datasets_without_replicates(tables):
    fig = F.replicate_figure(tables["replicate_summary"])
    assert len(fig.axes) == len(PAIR_METRICS)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["L1000", "sciplex"]
    for ax in fig.axes:
        assert _n_points(ax) == 2 + 2 * len(REP_BASELINES)


def test_retrieval_figure_against_the_floor(tables):
    fig = F.retrieval_figure(tables["cross_summary"], tables["retrieval"])
    assert len(fig.axes) == 3
    assert fig.axes[0].get_title(loc="left").endswith("(lower is better)")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 9  # three pairs, each A → B, B → A and pooled A ↔ B
    assert {"sciplex → L1000", "L1000 → sciplex", "L1000 ↔ sciplex"} <= set(labels)
    for ax in fig.axes:
        assert _n_points(ax) == 9 + 9


def test_retrieval_summary_falls_back_to_the_query_table(tables):
    no_retrieval = tables["cross_summary"][
        ~tables["cross_summary"]["metric"].str.startswith("retrieval_")
    ]
    summary = F.retrieval_summary(no_retrieval, tables["retrieval"])
    assert set(summary["metric"]) == set(F.RETRIEVAL_METRICS)
    assert len(summary) == 6 * 3
    assert (summary["baseline"] == "random_floor").all()
    assert F.retrieval_summary(no_retrieval, None).empty


def test_dose_sensitivity_figure(tables):
    fig = F.dose_sensitivity_figure(tables["dose_sensitivity"])
    assert len(fig.axes) == len(PAIR_METRICS)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["exact", "2×", "3×", "10×"]
    assert len(ax.lines) == 3 * 2  # three pairs, observed and baseline


def test_empty_tables_give_a_figure_that_says_so():
    empty = pd.DataFrame()
    for fig in (
        F.cross_agreement_figure(empty),
        F.replicate_figure(None),
        F.retrieval_figure(empty, None),
        F.dose_sensitivity_figure(None),
        F.cross_heatmap_figure(empty, metric="spearman"),
    ):
        assert len(fig.axes) == 1
        assert fig.axes[0].texts and not fig.axes[0].axison
    assert F.agreement_figures(cross_summary=empty, replicate_summary=empty) == {}


def test_agreement_figures_and_save_figures(tables, tmp_path: Path):
    figs = F.agreement_figures(
        **{
            k: tables[k]
            for k in ("cross_summary", "replicate_summary", "retrieval", "dose_sensitivity")
        }
    )
    assert list(figs) == [
        "cross_agreement",
        *(f"cross_heatmap_{m}" for m in PAIR_METRICS),
        "retrieval",
        "replicate_agreement",
        "dose_sensitivity",
    ]
    written = F.save_figures(figs, tmp_path / "figs")
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(
        f"{name}.{ext}" for name in figs for ext in ("png", "svg")
    )
    for paths in written.values():
        assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        svg = paths["svg"].read_text()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert not list((tmp_path / "figs").glob(".*part"))  # no temporary files left


def test_figures_do_not_touch_pyplot():
    """Drawing uses the Agg canvas directly: pyplot is never imported, rcParams unchanged."""
    import subprocess
    import sys

    code = (
        "import sys, matplotlib; raw = lambda: dict(dict.items(matplotlib.rcParams)); "
        "before = raw(); "
        "from perturbridge.report import figures as F; import pandas as pd; "
        "F.figure_png(F.cross_agreement_figure(pd.DataFrame())); "
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'; "
        "assert raw() == before, 'rcParams changed'"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr

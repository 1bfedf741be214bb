"""The embedded demo: simulate an L1000-like dataset, ingest it, compute effects, score them."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .. import de
from ..de import DEResult
from ..io import write_h5ad
from ..ledger import Ledger
from ..simulate import L1000Plates, SimulatedL1000, simulate_l1000
from ..sources import L1000Tables, read_l1000

__all__ = ["DemoResult", "recovery_metrics", "run_demo"]

logger = logging.getLogger(__name__)


@dataclass
class DemoResult:
    out_dir: Path
    files: dict[str, Path]
    ledger: Ledger
    de: DEResult
    metrics: dict[str, Any]


def recovery_metrics(
    result: DEResult, sim: SimulatedL1000, *, alpha: float = 0.05
) -> dict[str, Any]:
    """How well the planted effects were recovered by the group-mode contrasts.

    Matches contrasts to the simulator's true conditions on (cell, compound, dose µM,
    time h) and reports the correlation of estimated and true logFC, the sensitivity and
    false discovery proportion at ``adj.P < alpha``, and direction agreement on the truly
    affected genes.
    """
    eff = result.effects
    truth = sim.truth_conditions.reset_index(drop=True)
    key_cols = ["cell_id", "pert_id", "dose_uM", "time_h"]
    tkey = pd.Series(
        [
            f"{c}|{p}|{float(d):.6g}|{float(t):.6g}"
            for c, p, d, t in truth[key_cols].itertuples(index=False)
        ]
    )
    ekey = pd.Series(
        [
            f"{c}|{p}|{d:.6g}|{t:.6g}"
            for c, p, d, t in zip(
                eff.obs["cell_context"].astype(str),
                eff.obs["compound_id_source"].astype(str),
                eff.obs["pert_dose_uM"],
                eff.obs["pert_time_h"],
                strict=True,
            )
        ]
    )
    pos = pd.Series(np.arange(len(tkey)), index=tkey.to_numpy())
    matched = ekey.isin(pos.index).to_numpy()
    tidx = pos.reindex(ekey[matched]).to_numpy()
    gene_pos = pd.Series(np.arange(sim.row_meta.shape[0]), index=sim.row_meta.index.astype(str))
    gidx = gene_pos.reindex(eff.var_names.astype(str)).to_numpy()
    true = sim.truth_logfc[np.ix_(tidx, gidx)]
    est = eff.layers["logFC"][matched]
    adj = eff.layers["adj.P.Value.within_one_contrast"][matched]
    affected = np.abs(true) > 1e-12
    called = adj < alpha
    n_called = int(called.sum())
    return {
        "contrasts": int(eff.n_obs),
        "contrasts_matched_to_truth": int(matched.sum()),
        "pearson_logFC_vs_truth": float(stats.pearsonr(est.ravel(), true.ravel())[0]),
        "sensitivity_at_adjP_0.05": float((called & affected).sum() / max(affected.sum(), 1)),
        "false_discovery_proportion": float((called & ~affected).sum() / max(n_called, 1)),
        "direction_agreement_on_true_effects": float(
            np.mean(np.sign(est[affected]) == np.sign(true[affected]))
        ),
    }


def run_demo(
    out_dir: str | os.PathLike[str] = "demo_out",
    *,
    seed: int = 0,
    n_genes: int = 978,
    n_compounds: int = 12,
    progress: bool = False,
) -> DemoResult:
    """Simulate L1000-like level 3 data, ingest it, compute effects, score recovery.

    Writes into ``out_dir``: the simulated ``level3.gctx`` and ``level3_inst_info.tsv``,
    the truth tables, ``samples.h5ad``, ``effects_group.h5ad`` and ``ledger.tsv``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sim = simulate_l1000(
        L1000Plates(missing_vehicle=[("PC3", 6)]),
        n_genes=n_genes,
        n_compounds=n_compounds,
        seed=seed,
    )
    files = sim.write(out)
    ing = read_l1000(
        files["gctx"], tables=L1000Tables(inst_info=files["inst_info"]), dataset="simulated_l1000"
    )
    result = de.run(ing.samples, method="trend", progress=progress)
    ledger = Ledger()
    ledger.extend(ing.ledger)
    ledger.extend(result.ledger)
    ing.samples.uns["ledger"] = ing.ledger.to_frame()
    result.effects.uns["ledger"] = result.ledger.to_frame()
    files["samples"] = write_h5ad(ing.samples, out / "samples.h5ad")
    files["effects"] = write_h5ad(result.effects, out / "effects_group.h5ad")
    files["ledger"] = out / "ledger.tsv"
    ledger.to_frame().to_csv(files["ledger"], sep="\t", index=False)
    metrics = recovery_metrics(result, sim)
    metrics["samples_in"] = int(sim.data.shape[1])
    metrics["samples_kept"] = int(ing.samples.n_obs)
    return DemoResult(out, files, ledger, result, metrics)

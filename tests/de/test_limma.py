"""limma-trend engine: R parity (the oracle), modes, ledger and error paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perturbridge.de import condition_table, limma_trend
from perturbridge.samples import build_samples


def synthetic_samples(
    *,
    seed: int = 0,
    n_genes: int = 300,
    n_plates: int = 3,
    n_compounds: int = 6,
    doses: tuple[float, ...] = (0.1, 1.0),
    times: tuple[float, ...] = (6.0, 24.0),
    contexts: tuple[str, ...] = ("A375",),
    vehicles_per_plate: int = 4,
    drop_vehicle_at: tuple[tuple[str, float], ...] = (),
):
    """Seeded log-expression Samples: plates with batch effects, unbalanced replicates,
    a mean–variance trend and a few high-variance outlier genes."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(4, 14, n_genes)
    sd = 0.15 + 0.6 * np.exp(-(base - 4) / 3)
    sd[rng.choice(n_genes, max(1, n_genes // 50), replace=False)] *= 4
    rows = []
    for ctx in contexts:
        for p in range(n_plates):
            plate = f"P{p + 1}_{ctx}"
            for t in times:
                if (ctx, t) not in drop_vehicle_at:
                    rows += [(ctx, plate, "DMSO", 0.0, t, "vehicle")] * vehicles_per_plate
                for c in range(n_compounds):
                    for d in doses:
                        # unbalanced replicates: some conditions skip some plates / repeat
                        reps = int(rng.integers(0, 3))
                        rows += [(ctx, plate, f"cmp{c}", d, t, "compound")] * reps
    obs = pd.DataFrame(rows, columns=["cell_context", "plate", "perturbagen", "pert_dose_uM",
                                      "pert_time_h", "pert_type"])
    n = len(obs)
    obs.index = [f"s{i:05d}" for i in range(n)]
    obs["dataset"] = "synthetic"
    obs["assay"] = "L1000"
    obs["well"] = [f"W{i}" for i in range(n)]
    obs["replicate"] = obs["plate"].str.slice(0, 2)
    obs["cell_name"] = obs["cell_context"]
    obs["compound_id_source"] = obs["perturbagen"]
    obs["is_control"] = obs["pert_type"] == "vehicle"
    effects = {
        (f"cmp{c}", d): rng.normal(0, 1, n_genes) * (rng.random(n_genes) < 0.1) * np.log10(d * 100)
        for c in range(n_compounds) for d in doses
    }
    plate_eff = {p: rng.normal(0, 0.3, n_genes) for p in obs["plate"].unique()}
    x = base + rng.normal(size=(n, n_genes)) * sd
    for i, (pl, pert, dose) in enumerate(
        zip(obs["plate"], obs["perturbagen"], obs["pert_dose_uM"], strict=True)
    ):
        x[i] += plate_eff[pl]
        if pert != "DMSO":
            x[i] += effects[(pert, dose)]
    var = pd.DataFrame({"symbol": [f"G{j}" for j in range(n_genes)]},
                       index=[str(10000 + j) for j in range(n_genes)])
    return build_samples(x, obs, var, value_kind="log_expression")


def r_inputs(samples, effects, mode):
    """The design of our fit, spelled for the R oracle."""
    lab = condition_table(samples.obs, mode=mode)
    keep = lab.index.isin(samples.obs_names)  # all samples are modelled here
    lab = lab[keep]
    veh = sorted(set(lab.loc[lab.is_control, "condition"]))
    trt = sorted(set(lab.loc[~lab.is_control, "condition"]))
    plates = samples.obs["plate"].astype(str).to_numpy()
    contrasts = list(zip(effects.obs_names, effects.obs["control_label"].astype(str), strict=True))
    return (samples.X, lab["condition"].tolist(), plates.tolist(), veh + trt,
            sorted(set(plates)), contrasts)


def assert_parity(effects, r):
    ours = {k: effects.layers[k].T for k in effects.layers}
    np.testing.assert_allclose(ours["logFC"], r["logFC"], rtol=0, atol=1e-8)
    rel_t = np.abs(ours["t"] - r["t"]) / np.maximum(np.abs(r["t"]), 1e-300)
    assert rel_t.max() <= 1e-6, rel_t.max()
    np.testing.assert_allclose(ours["P.Value"], r["P.Value"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours["adj.P.Value.within_one_contrast"], r["adj.P.Val"],
                               rtol=0, atol=1e-8)
    for j in range(r["adj.P.Val"].shape[1]):
        ours_rank = pd.Series(ours["adj.P.Value.within_one_contrast"][:, j]).rank(method="min")
        r_rank = pd.Series(r["adj.P.Val"][:, j]).rank(method="min")
        assert (ours_rank.to_numpy() == r_rank.to_numpy()).all()
    for layer in ("CI.L", "CI.R", "B"):
        np.testing.assert_allclose(ours[layer], r[layer], rtol=0, atol=1e-6, err_msg=layer)
    np.testing.assert_allclose(ours["AveExpr"], r["AveExpr"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours["stdev.unscaled"], r["stdev.unscaled"], rtol=1e-10)


@pytest.mark.r_oracle
@pytest.mark.parametrize("mode", ["group", "separate"])
def test_synthetic_matches_r(tmp_path: Path, r_limma, mode):
    samples = synthetic_samples(seed=1)
    res = limma_trend(samples, mode=mode)
    r = r_limma(tmp_path, *r_inputs(samples, res.effects, mode))
    assert_parity(res.effects, r)

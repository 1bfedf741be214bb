"""limma-voom engine: R parity (edgeR filterByExpr + TMM + voom + limma), modes, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_limma import engine_kw

from conftest import sample_obs
from perturbridge.de import DEOptions, plan_contexts
from perturbridge.de.r_limma import run_r_limma
from perturbridge.de.voom import limma_voom
from perturbridge.samples import build_samples


def count_samples(
    *,
    seed: int = 0,
    n_genes: int = 400,
    n_plates: int = 3,
    n_compounds: int = 5,
    doses: tuple[float, ...] = (0.1, 1.0),
    times: tuple[float, ...] = (24.0,),
    contexts: tuple[str, ...] = ("U2OS",),
    vehicles_per_plate: tuple[int, ...] = (6, 6, 2),
    no_treated_at: tuple[tuple[str, float], ...] = (),
):
    """Seeded negative-binomial counts: plates with size and batch effects, unbalanced
    replicates (some conditions on one plate only), a plate with few controls, library
    sizes varying ~10×, all-zero and very low genes. ``no_treated_at``: (context, time)
    with vehicle wells only."""
    rng = np.random.default_rng(seed)
    base = np.exp(rng.normal(3.0, 1.8, n_genes))
    base[:15] = 0.0  # all-zero genes
    base[15:40] = 0.05  # nearly silent genes
    disp = 0.05 + 0.3 * rng.random(n_genes)
    rows = []
    for ctx in contexts:
        for p in range(n_plates):
            plate = f"P{p + 1}_{ctx}"
            for t in times:
                rows += [(ctx, plate, "DMSO", 0.0, t, "vehicle")] * vehicles_per_plate[p]
                for c in range(n_compounds):
                    for d in doses:
                        reps = int(rng.integers(0, 3)) if c else 1
                        if (ctx, t) in no_treated_at:
                            continue
                        rows += [(ctx, plate, f"cmp{c}", d, t, "compound")] * reps
    obs = sample_obs(rows, dataset="sim_counts", assay="DRUG-seq", prefix="w")
    n = len(obs)
    lfc = {
        (f"cmp{c}", d): rng.normal(0, 1.2, n_genes) * (rng.random(n_genes) < 0.15)
        for c in range(n_compounds)
        for d in doses
    }
    batch = {pl: rng.normal(0, 0.2, n_genes) for pl in obs["plate"].unique()}
    libf = np.exp(rng.uniform(np.log(0.3), np.log(3.0), n))
    mu = np.empty((n, n_genes))
    for i, (pl, pert, dose) in enumerate(
        zip(obs["plate"], obs["perturbagen"], obs["pert_dose_uM"], strict=True)
    ):
        eff = lfc[(pert, dose)] if pert != "DMSO" else 0.0
        mu[i] = base * libf[i] * np.exp(batch[pl] + eff * np.log(2))
    size = 1.0 / disp
    counts = rng.negative_binomial(size[None, :], size[None, :] / (size[None, :] + mu))
    var = pd.DataFrame(
        {"symbol": [f"G{j}" for j in range(n_genes)]},
        index=[f"ENSG{j:011d}" for j in range(n_genes)],
    )
    return build_samples(counts.astype(float), obs, var, value_kind="counts")


def voom_parity(samples, mode, tmp_path, *, stdev_scaled=False, **design_kw):
    """Our voom and R's on the same designs, fit by fit; ``design_kw`` go to both."""
    res = limma_voom(
        samples, mode=mode, **engine_kw(keep_weights=True, stdev_scaled=stdev_scaled, **design_kw)
    )
    designs, _ = plan_contexts(samples, mode=mode, **design_kw)
    assert designs
    x = np.asarray(samples.X)
    for i, d in enumerate(designs):
        r = run_r_limma(x[d.rows], d, workdir=tmp_path / f"v{i}", method="voom", weights=True)
        diag = res.diagnostics[d.fit_id]
        assert diag["keep"].tolist() == r.extra["keep"].tolist()
        np.testing.assert_allclose(diag["norm_factors"], r.extra["norm_factors"], rtol=1e-10)
        np.testing.assert_allclose(diag["weights"], r.extra["weights"], rtol=1e-8)
        block = res.effects[
            (res.effects.obs["cell_context"] == d.context).to_numpy()
            & res.effects.obs_names.isin(d.treated)
        ]
        assert list(block.obs_names) == list(d.treated)
        keep = diag["keep"]
        cols = res.effects.var_names.get_indexer(samples.var_names[keep])
        ours = {k: np.asarray(block.layers[k])[:, cols] for k in block.layers}
        rl = {k: v[:, keep] for k, v in r.layers.items()}
        np.testing.assert_allclose(ours["logFC"], rl["logFC"], rtol=0, atol=1e-6)
        rel_t = np.abs(ours["t"] - rl["t"]) / np.abs(rl["t"])
        assert rel_t.max() <= 1e-5, rel_t.max()
        np.testing.assert_allclose(ours["P.Value"], rl["P.Value"], rtol=0, atol=1e-6)
        sig_ours = ours["adj.P.Value.within_one_contrast"] < 0.05
        assert (sig_ours == (rl["adj.P.Val"] < 0.05)).all()
        if stdev_scaled:
            np.testing.assert_allclose(ours["stdev.scaled"], rl["stdev.scaled"], rtol=1e-5)
        untested_here = ~res.effects.var_names.isin(samples.var_names[keep])
        assert np.isnan(np.asarray(block.layers["logFC"])[:, untested_here]).all()
    return res


@pytest.mark.r_oracle
@pytest.mark.parametrize("mode", ["group", "separate"])
def test_voom_matches_r(tmp_path: Path, r_oracle, mode):
    samples = count_samples(seed=1, times=(6.0, 24.0), contexts=("U2OS", "THP1"))
    res = voom_parity(samples, mode, tmp_path)
    led = res.ledger.to_frame()
    low = led[led["reason"] == "low_expression"]
    assert set(samples.var_names[:15]) <= set(low["id"])  # all-zero genes recorded
    assert (res.effects.obs["n_genes_tested"] < samples.n_vars).all()


@pytest.mark.r_oracle
def test_voom_one_plate_matches_r(tmp_path: Path, r_oracle):
    samples = count_samples(seed=2, n_plates=1, vehicles_per_plate=(8,))
    voom_parity(samples, "group", tmp_path)


@pytest.mark.parametrize(
    ("value", "match"),
    [(-1.0, "negative"), (np.nan, "missing or infinite"), (2.5, "non-integer")],
)
def test_bad_counts_are_errors(value, match):
    samples = count_samples(seed=0, n_genes=60)
    samples.X[2, 7] = value
    with pytest.raises(ValueError, match=match + r".*w00002"):
        limma_voom(samples)


def test_non_integer_counts_allowed_when_asked():
    samples = count_samples(seed=0, n_genes=60)
    samples.X = samples.X + 0.25
    res = limma_voom(samples, options=DEOptions(allow_non_integer=True))
    assert res.effects.n_obs > 0


def test_log_expression_is_refused():
    samples = count_samples(seed=0, n_genes=60)
    samples.uns["perturbridge"]["value_kind"] = "log_expression"
    with pytest.raises(ValueError, match="needs counts"):
        limma_voom(samples)


def test_no_controls_go_to_ledger():
    samples = count_samples(seed=0, n_genes=60)
    treated = samples[~samples.obs["is_control"].to_numpy()].copy()
    res = limma_voom(treated)
    assert res.effects.n_obs == 0
    assert (res.ledger.to_frame()["reason"] == "no_matched_control").all()


def test_single_sample_and_duplicate_genes():
    samples = count_samples(seed=0, n_genes=60)
    one = samples[[0]].copy()  # one vehicle well: nothing to contrast
    res = limma_voom(one)
    assert res.effects.n_obs == 0
    treated_one = samples[[int(np.flatnonzero(~samples.obs["is_control"].to_numpy())[0])]].copy()
    res = limma_voom(treated_one)
    assert (res.ledger.to_frame()["reason"] == "no_matched_control").all()
    from perturbridge.errors import SchemaError

    var = samples.var.copy()
    var.index = [var.index[0]] * 2 + list(var.index[2:])
    with pytest.raises(SchemaError, match="gene ids must be unique"):
        build_samples(np.asarray(samples.X), samples.obs, var, value_kind="counts")


def test_all_zero_genes_are_ledgered_not_fitted():
    samples = count_samples(seed=0, n_genes=80)
    res = limma_voom(samples)
    led = res.ledger.to_frame()
    zero = samples.var_names[np.asarray(samples.X).sum(axis=0) == 0]
    assert len(zero) > 0
    assert set(zero) <= set(led.loc[led["reason"] == "low_expression", "id"])
    assert not res.effects.var_names.isin(zero).any()  # never tested: not in the Effects


# --------------------------------------------------------------- the original's choices


@pytest.mark.r_oracle
@pytest.mark.parametrize("orphan_vehicles", ["drop", "keep"])
def test_voom_orphan_vehicles_match_r(tmp_path: Path, r_oracle, orphan_vehicles):
    """THP1 has vehicle wells but no treated wells at 6 h: R gets the same samples
    (and so the same filterByExpr, TMM factors and voom weights) with either setting."""
    samples = count_samples(
        seed=3, times=(6.0, 24.0), contexts=("U2OS", "THP1"), no_treated_at=(("THP1", 6.0),)
    )
    res = voom_parity(
        samples, "group", tmp_path, orphan_vehicles=orphan_vehicles, stdev_scaled=True
    )
    obs = samples.obs
    orphans = obs.index[
        (obs["cell_context"] == "THP1").to_numpy()
        & (obs["pert_time_h"] == 6).to_numpy()
        & obs["is_control"].to_numpy()
    ]
    assert len(orphans) == 6 + 6 + 2
    led = res.ledger.to_frame()
    lost = led[led["reason"] == "vehicle_without_treated"]
    expected = sorted(orphans) if orphan_vehicles == "drop" else []
    assert sorted(lost["id"]) == expected
    n_thp1 = int((obs["cell_context"] == "THP1").sum())
    n_fit = res.diagnostics["sim_counts/THP1"]["lib_size"].size
    assert n_fit == n_thp1 - len(expected)


@pytest.mark.r_oracle
def test_voom_fit_per_control_group_matches_r(tmp_path: Path, r_oracle):
    samples = count_samples(seed=4, times=(6.0, 24.0), contexts=("U2OS", "THP1"))
    obs = samples.obs.copy()
    ctl = obs["is_control"].to_numpy()
    low = np.isin(obs["perturbagen"].astype(str), ["cmp0", "cmp1"])
    obs["percent_volume_dmso"] = np.where(
        ctl, np.where(np.arange(len(obs)) % 2 == 0, 0.1, 0.5), np.where(low, 0.1, 0.5)
    )
    samples = build_samples(np.asarray(samples.X), obs, samples.var, value_kind="counts")
    kw = {"control_keys": ["percent_volume_dmso"], "fit_per_control_group": True}
    res = voom_parity(samples, "group", tmp_path, stdev_scaled=True, **kw)
    assert sorted(res.diagnostics) == [
        f"sim_counts/{c}[percent_volume_dmso={v}]" for c in ("THP1", "U2OS") for v in ("0.1", "0.5")
    ]
    pooled = limma_voom(samples, control_keys=kw["control_keys"]).effects
    assert sorted(pooled.obs_names) == sorted(res.effects.obs_names)

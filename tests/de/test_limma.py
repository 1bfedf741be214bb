"""limma-trend engine: R parity (the oracle), modes, ledger and error paths."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from conftest import sample_obs
from perturbridge.de import DEOptions, limma_trend, plan_contexts
from perturbridge.de.r_limma import run_r_limma
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
    no_treated_at: tuple[tuple[str, float], ...] = (),
    plate_per_time: bool = False,
):
    """Seeded log-expression Samples: plates with batch effects, unbalanced replicates,
    a mean–variance trend and a few high-variance outlier genes. ``drop_vehicle_at`` /
    ``no_treated_at``: (context, time) without vehicle / treated wells."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(4, 14, n_genes)
    sd = 0.15 + 0.6 * np.exp(-(base - 4) / 3)
    sd[rng.choice(n_genes, max(1, n_genes // 50), replace=False)] *= 4
    rows = []
    for ctx in contexts:
        for p in range(n_plates):
            for t in times:
                plate = f"P{p + 1}_{ctx}" + (f"_{t:g}h" if plate_per_time else "")
                if (ctx, t) not in drop_vehicle_at:
                    rows += [(ctx, plate, "DMSO", 0.0, t, "vehicle")] * vehicles_per_plate
                for c in range(n_compounds):
                    for d in doses:
                        # unbalanced replicates: some conditions skip some plates / repeat
                        reps = int(rng.integers(0, 3))
                        if (ctx, t) in no_treated_at:
                            continue
                        rows += [(ctx, plate, f"cmp{c}", d, t, "compound")] * reps
    obs = sample_obs(rows, dataset="synthetic", assay="L1000", prefix="s")
    n = len(obs)
    obs["replicate"] = obs["plate"].str.slice(0, 2)
    effects = {
        (f"cmp{c}", d): rng.normal(0, 1, n_genes) * (rng.random(n_genes) < 0.1) * np.log10(d * 100)
        for c in range(n_compounds)
        for d in doses
    }
    plate_eff = {p: rng.normal(0, 0.3, n_genes) for p in obs["plate"].unique()}
    x = base + rng.normal(size=(n, n_genes)) * sd
    for i, (pl, pert, dose) in enumerate(
        zip(obs["plate"], obs["perturbagen"], obs["pert_dose_uM"], strict=True)
    ):
        x[i] += plate_eff[pl]
        if pert != "DMSO":
            x[i] += effects[(pert, dose)]
    var = pd.DataFrame(
        {"symbol": [f"G{j}" for j in range(n_genes)]},
        index=[str(10000 + j) for j in range(n_genes)],
    )
    return build_samples(x, obs, var, value_kind="log_expression")


def engine_kw(**kw):
    """Keyword arguments of a DE engine: ``control_keys`` as is, the rest as DEOptions."""
    control = {"control_keys": kw.pop("control_keys")} if "control_keys" in kw else {}
    return {**control, "options": DEOptions(**kw)}


def r_parity(samples, mode, tmp_path, *, how="all", stdev_scaled=False, **design_kw):
    """Run our engine and R on the same designs; compare every fit. ``design_kw``
    (``control_keys``, ``orphan_vehicles``, ``fit_per_control_group``) go to both."""
    res = limma_trend(samples, mode=mode, **engine_kw(stdev_scaled=stdev_scaled, **design_kw))
    designs, _ = plan_contexts(samples, mode=mode, **design_kw)
    assert designs, "nothing to compare"
    for i, design in enumerate(designs):
        r = run_r_limma(
            np.asarray(samples.X)[design.rows], design, workdir=tmp_path / f"ctx{i}", how=how
        )
        block = res.effects[
            (res.effects.obs["dataset"] == design.dataset).to_numpy()
            & (res.effects.obs["cell_context"] == design.context).to_numpy()
            & res.effects.obs_names.isin(design.treated)
        ]
        assert list(block.obs_names) == list(design.treated)
        assert_parity(block, r.layers)
    return res


def assert_parity(effects, r):
    ours = {k: np.asarray(effects.layers[k]) for k in effects.layers}
    np.testing.assert_allclose(ours["logFC"], r["logFC"], rtol=0, atol=1e-8)
    rel_t = np.abs(ours["t"] - r["t"]) / np.maximum(np.abs(r["t"]), 1e-300)
    assert rel_t.max() <= 1e-6, rel_t.max()
    np.testing.assert_allclose(ours["P.Value"], r["P.Value"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(
        ours["adj.P.Value.within_one_contrast"], r["adj.P.Val"], rtol=0, atol=1e-8
    )
    for j in range(r["adj.P.Val"].shape[0]):
        ours_rank = pd.Series(ours["adj.P.Value.within_one_contrast"][j]).rank(method="min")
        r_rank = pd.Series(r["adj.P.Val"][j]).rank(method="min")
        assert (ours_rank.to_numpy() == r_rank.to_numpy()).all()
    for layer in ("CI.L", "CI.R", "B"):
        np.testing.assert_allclose(ours[layer], r[layer], rtol=0, atol=1e-6, err_msg=layer)
    np.testing.assert_allclose(ours["AveExpr"], r["AveExpr"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours["stdev.unscaled"], r["stdev.unscaled"], rtol=1e-10)
    if "stdev.scaled" in ours:
        np.testing.assert_allclose(ours["stdev.scaled"], r["stdev.scaled"], rtol=1e-8)


@pytest.mark.r_oracle
@pytest.mark.parametrize("mode", ["group", "separate"])
def test_synthetic_matches_r(tmp_path: Path, r_oracle, mode):
    """Several plates, two times, unbalanced replicates, outlier genes, two contexts."""
    samples = synthetic_samples(seed=1, contexts=("A375", "MCF7"))
    res = r_parity(samples, mode, tmp_path)
    assert res.effects.n_obs > 20


@pytest.mark.r_oracle
@pytest.mark.shared_data
@pytest.mark.parametrize("mode", ["group", "separate"])
def test_real_ljp005_plate_matches_r(tmp_path: Path, r_oracle, mode):
    """The real L1000 level 3 plate LJP005 (A375, 24 h), one plate: the plate term drops."""
    from conftest import shared_path
    from perturbridge.sources import read_l1000

    samples = read_l1000(shared_path("l1000_cmapPy", "test_l1000.gct")).samples
    res = r_parity(samples, mode, tmp_path)
    n_treated_wells = int((~samples.obs["is_control"]).sum())
    treated = samples.obs[~samples.obs["is_control"]]
    n_conditions = len(treated[["compound_id_source", "pert_dose_uM"]].drop_duplicates())
    expected = n_treated_wells if mode == "separate" else n_conditions
    assert res.effects.n_obs == expected
    assert n_treated_wells == 328
    assert (res.effects.obs["n_control"] == 26).all()


@pytest.mark.r_oracle
def test_single_plate_and_no_matched_control(tmp_path: Path, r_oracle):
    samples = synthetic_samples(
        seed=2,
        n_plates=1,
        vehicles_per_plate=6,
        contexts=("A375", "PC3"),
        drop_vehicle_at=(("PC3", 6.0),),
    )
    res = r_parity(samples, "group", tmp_path)
    led = res.ledger.to_frame()
    lost = led[led["reason"] == "no_matched_control"]
    assert len(lost) > 0
    assert lost["id"].str.startswith("PC3|").all() and lost["id"].str.endswith("|6h").all()
    assert "no vehicle|PC3|6h wells" in lost["detail"].iloc[0]
    eff = res.effects.obs
    assert not ((eff["cell_context"] == "PC3") & (eff["pert_time_h"] == 6)).any()
    assert ((eff["cell_context"] == "PC3") & (eff["pert_time_h"] == 24)).any()
    # every treated condition is either a contrast or in the ledger
    kept = set(led.loc[led["status"] == "kept", "id"])
    assert kept == set(res.effects.obs_names)


@pytest.mark.r_oracle
@pytest.mark.parametrize("mode", ["group", "separate"])
def test_plates_per_time_point_match_r(tmp_path: Path, r_oracle, mode):
    """The L1000 layout: each plate holds one time point, so the plates of a time are
    confounded with that time's conditions and one plate column per extra time is not
    estimable (R reports it NA). Both times are in one fit."""
    samples = synthetic_samples(seed=5, n_plates=4, plate_per_time=True)
    res = r_parity(samples, mode, tmp_path)
    assert (res.effects.obs["n_plate_columns_not_estimable"] == 1).all()


@pytest.mark.r_oracle
def test_rank_deficient_plate_column_matches_r(tmp_path: Path, r_oracle):
    """A plate whose conditions occur nowhere else (and no vehicle) is confounded: R
    reports its coefficient as NA; we drop the same column and agree with R."""
    samples = synthetic_samples(seed=3, n_plates=2)
    obs = samples.obs
    extra = obs[(obs["perturbagen"] == "cmp0") & (obs["plate"] == "P1_A375")].iloc[:3].copy()
    extra.index = [f"x{i}" for i in range(len(extra))]
    extra["plate"] = "P9_A375"
    extra["perturbagen"] = "only_on_p9"
    extra["compound_id_source"] = "only_on_p9"

    rng = np.random.default_rng(0)
    x_extra = np.asarray(samples.X[: len(extra)]) + rng.normal(0, 0.1, (3, samples.n_vars))
    merged = build_samples(
        np.vstack([np.asarray(samples.X), x_extra]),
        pd.concat([obs.astype(object), extra.astype(object)]),
        samples.var,
        value_kind="log_expression",
    )
    assert isinstance(merged, ad.AnnData)
    res = r_parity(merged, "group", tmp_path)
    assert (res.effects.obs["n_plate_columns_not_estimable"] == 1).all()


def test_counts_are_refused():
    samples = synthetic_samples(seed=0, n_genes=20)
    samples.uns["perturbridge"]["value_kind"] = "counts"
    with pytest.raises(ValueError, match=r"needs log expression.*voom"):
        limma_trend(samples)


def test_non_finite_values_are_refused():
    samples = synthetic_samples(seed=0, n_genes=20)
    samples.X[3, 5] = np.nan
    with pytest.raises(ValueError, match=r"missing or infinite.*s00003"):
        limma_trend(samples)


def test_no_residual_df_goes_to_ledger():
    samples = synthetic_samples(
        seed=0, n_genes=20, n_plates=1, vehicles_per_plate=1, times=(24.0,), n_compounds=4
    )
    obs = samples.obs
    one_each = ~obs.duplicated(["perturbagen", "pert_dose_uM"]).to_numpy()
    res = limma_trend(samples[one_each].copy())  # every condition has one sample
    led = res.ledger.to_frame()
    assert res.effects.n_obs == 0
    n_treated = int((~obs["is_control"].to_numpy() & one_each).sum())
    assert n_treated > 0
    assert (led["reason"] == "not_estimable").all() and len(led) == n_treated
    assert "no residual degrees of freedom" in led["detail"].iloc[0]


def test_effects_follow_schema_and_recover_signal():
    samples = synthetic_samples(seed=4, n_genes=200)
    eff = limma_trend(samples).effects
    from perturbridge.schema import EFFECT_LAYERS, validate_effects

    validate_effects(eff)
    assert tuple(eff.layers.keys()) == EFFECT_LAYERS
    adj = eff.layers["adj.P.Value.within_one_contrast"]
    assert (adj >= eff.layers["P.Value"] - 1e-15).all()
    ci_l, ci_r, lfc = eff.layers["CI.L"], eff.layers["CI.R"], eff.layers["logFC"]
    assert (ci_l < lfc).all() and (lfc < ci_r).all()
    assert (adj < 0.05).sum() > 0


def test_two_datasets_are_fitted_apart_with_unique_contrast_ids():
    a = synthetic_samples(seed=6, n_genes=50)
    b = synthetic_samples(seed=6, n_genes=50)
    a.obs["dataset"] = pd.Categorical(["dsA"] * a.n_obs)
    b.obs["dataset"] = pd.Categorical(["dsB"] * b.n_obs)
    b.obs_names = [f"b{i}" for i in range(b.n_obs)]
    both = ad.concat([a, b], merge="same", uns_merge="first")
    for col in ("dataset", "plate", "well", "cell_context", "perturbagen", "pert_type"):
        both.obs[col] = both.obs[col].astype("category")
    eff = limma_trend(both).effects
    single = limma_trend(a).effects
    assert eff.obs_names.is_unique
    assert eff.n_obs == 2 * single.n_obs
    block = eff[(eff.obs["dataset"] == "dsA").to_numpy()]
    np.testing.assert_allclose(block.layers["t"], single.layers["t"], rtol=1e-12)


def _dmso_volume_samples() -> ad.AnnData:
    """One plate; vehicles at two solvent volumes; a compound at each volume, and one
    at a volume with no vehicle."""
    rows = (
        [("HEP", "P1", "DMSO", 0.0, 24.0, "vehicle")] * 3
        + [("HEP", "P1", "DMSO", 0.0, 24.0, "vehicle")] * 3
        + [("HEP", "P1", "cmpA", 1.0, 24.0, "compound")] * 2
        + [("HEP", "P1", "cmpA", 1.0, 24.0, "compound")] * 2
        + [("HEP", "P1", "cmpB", 1.0, 24.0, "compound")] * 2
    )
    obs = sample_obs(rows, dataset="gdp", assay="DRUG-seq", prefix="g")
    obs["percent_volume_dmso"] = [0.1] * 3 + [0.5] * 3 + [0.1] * 2 + [0.5] * 2 + [1.0] * 2
    rng = np.random.default_rng(3)
    x = rng.normal(8, 0.2, (len(obs), 12))
    x[obs["percent_volume_dmso"].to_numpy() == 0.5] += 1.0  # the solvent itself acts
    var = pd.DataFrame({"symbol": [f"G{i}" for i in range(12)]}, index=[f"g{i}" for i in range(12)])
    return build_samples(x, obs, var, value_kind="log_expression")


def test_control_keys_match_vehicles_on_extra_columns():
    samples = _dmso_volume_samples()
    x, obs = samples.X, samples.obs
    res = limma_trend(samples, control_keys=["percent_volume_dmso"])
    eff = res.effects
    assert eff.n_obs == 2  # cmpA at 0.1 % and at 0.5 %
    vol = obs["percent_volume_dmso"].to_numpy()
    ctl = obs["is_control"].to_numpy()
    for v in (0.1, 0.5):
        row = [i for i, lab in enumerate(eff.obs["control_label"]) if f"={v}" in lab]
        (i,) = row
        treated = ~ctl & (vol == v) & (obs["perturbagen"] == "cmpA").to_numpy()
        expected = x[treated].mean(axis=0) - x[ctl & (vol == v)].mean(axis=0)
        np.testing.assert_allclose(eff.layers["logFC"][i], expected, atol=1e-10)
    led = res.ledger.to_frame()
    dropped = led[led["status"] == "dropped"]
    assert list(dropped["reason"]) == ["no_matched_control"]
    assert "percent_volume_dmso=1.0" in dropped["id"].iloc[0]
    assert sorted(led.loc[led["status"] == "kept", "id"]) == sorted(eff.obs_names)


def test_control_keys_come_from_the_adapter_and_are_checked():
    samples = _dmso_volume_samples()
    samples.uns["perturbridge"]["control_match_keys"] = ["percent_volume_dmso"]
    assert limma_trend(samples).effects.n_obs == 2
    # Without the key: cmpA's wells pooled into one condition, cmpB matched too.
    plain = limma_trend(samples, control_keys=[]).effects
    assert sorted(plain.obs["perturbagen"]) == ["cmpA", "cmpB"]
    with pytest.raises(KeyError, match="control-matching column 'no_such'"):
        limma_trend(samples, control_keys=["no_such"])
    samples.obs["percent_volume_dmso"] = samples.obs["percent_volume_dmso"].where(
        samples.obs.index != "g00004"
    )
    with pytest.raises(ValueError, match=r"missing for samples \['g00004'\]"):
        limma_trend(samples)


# --------------------------------------------------------------- the original's choices


def _orphan_samples() -> ad.AnnData:
    """Two contexts, three times; A375 has vehicles but no treated wells at 48 h."""
    return synthetic_samples(
        seed=7, contexts=("A375", "MCF7"), times=(6.0, 24.0, 48.0), no_treated_at=(("A375", 48.0),)
    )


@pytest.mark.r_oracle
@pytest.mark.parametrize("orphan_vehicles", ["drop", "keep"])
def test_orphan_vehicles_match_r(tmp_path: Path, r_oracle, orphan_vehicles):
    """R fits the very samples we fit with either setting (and stdev.scaled agrees)."""
    samples = _orphan_samples()
    res = r_parity(samples, "group", tmp_path, orphan_vehicles=orphan_vehicles, stdev_scaled=True)
    obs = samples.obs
    at48 = obs.index[
        (obs["cell_context"] == "A375").to_numpy()
        & (obs["pert_time_h"] == 48).to_numpy()
        & obs["is_control"].to_numpy()
    ]
    assert len(at48) == 3 * 4  # three plates of four vehicle wells
    led = res.ledger.to_frame()
    orphans = led[led["reason"] == "vehicle_without_treated"]
    if orphan_vehicles == "drop":
        assert sorted(orphans["id"]) == sorted(at48)
        assert (orphans["stage"] == "de_samples").all()
        assert "synthetic/A375: vehicle|A375|48h: no treated" in orphans["detail"].iloc[0]
    else:
        assert orphans.empty
    assert res.effects.uns["perturbridge"]["params"]["orphan_vehicles"] == orphan_vehicles


def test_orphan_vehicles_change_only_their_context():
    samples = _orphan_samples()
    drop = limma_trend(samples).effects  # the default is the original's "drop"
    keep = limma_trend(samples, options=DEOptions(orphan_vehicles="keep")).effects
    assert list(drop.obs_names) == list(keep.obs_names)
    df_drop = drop.obs.groupby("cell_context", observed=True)["df_residual"].first()
    df_keep = keep.obs.groupby("cell_context", observed=True)["df_residual"].first()
    # 12 samples and their condition column leave the A375 fit; MCF7 has no orphans
    assert df_keep["A375"] - df_drop["A375"] == 12 - 1
    assert df_keep["MCF7"] == df_drop["MCF7"]
    mcf7 = (drop.obs["cell_context"] == "MCF7").to_numpy()
    np.testing.assert_array_equal(drop.layers["t"][mcf7], keep.layers["t"][mcf7])
    assert not np.allclose(drop.layers["t"][~mcf7], keep.layers["t"][~mcf7])


def test_vehicles_of_a_context_without_treated_wells_are_ledgered():
    samples = synthetic_samples(seed=0, n_genes=20, contexts=("A375", "PC3"))
    obs = samples.obs
    keep_rows = ~((obs["cell_context"] == "PC3").to_numpy() & ~obs["is_control"].to_numpy())
    only_vehicles = samples[keep_rows].copy()
    pc3 = only_vehicles.obs_names[(only_vehicles.obs["cell_context"] == "PC3").to_numpy()]
    for setting in ("drop", "keep"):
        res = limma_trend(only_vehicles, options=DEOptions(orphan_vehicles=setting))
        led = res.ledger.to_frame()
        lost = led[led["reason"] == "vehicle_without_treated"]
        assert sorted(lost["id"]) == sorted(pc3)
        assert "no treated sample in the fit" in lost["detail"].iloc[0]
        assert set(res.effects.obs["cell_context"]) == {"A375"}


def test_orphan_vehicles_is_checked():
    samples = synthetic_samples(seed=0, n_genes=20)
    with pytest.raises(ValueError, match=r"orphan_vehicles must be one of \['drop', 'keep'\]"):
        limma_trend(samples, options=DEOptions(orphan_vehicles="discard"))  # type: ignore[arg-type]


def _volume_samples(seed: int = 8) -> ad.AnnData:
    """Synthetic Samples with vehicles at two DMSO volumes (alternating wells) that
    shift expression; cmp0–cmp2 were given at 0.1 %, cmp3–cmp5 at 0.5 %."""
    samples = synthetic_samples(seed=seed, contexts=("A375", "MCF7"), vehicles_per_plate=6)
    obs = samples.obs.copy()
    ctl = obs["is_control"].to_numpy()
    low = np.isin(obs["perturbagen"].astype(str), ["cmp0", "cmp1", "cmp2"])
    vol = np.where(ctl, np.where(np.arange(len(obs)) % 2 == 0, 0.1, 0.5), np.where(low, 0.1, 0.5))
    obs["percent_volume_dmso"] = vol
    rng = np.random.default_rng(seed)
    x = np.asarray(samples.X).copy()
    x[vol == 0.5] += rng.normal(0, 0.5, samples.n_vars)  # the solvent acts
    x[vol == 0.5] *= 1.02  # and its wells are noisier
    return build_samples(x, obs, samples.var, value_kind="log_expression")


VOLUME = {"control_keys": ["percent_volume_dmso"]}


@pytest.mark.r_oracle
@pytest.mark.parametrize("mode", ["group", "separate"])
def test_fit_per_control_group_matches_r(tmp_path: Path, r_oracle, mode):
    samples = _volume_samples()
    kw = {**VOLUME, "fit_per_control_group": True}
    designs, _ = plan_contexts(samples, mode=mode, **kw)
    assert [(d.context, d.group) for d in designs] == [
        (c, (("percent_volume_dmso", v),)) for c in ("A375", "MCF7") for v in ("0.1", "0.5")
    ]
    assert designs[0].fit_id == "synthetic/A375[percent_volume_dmso=0.1]"
    res = r_parity(samples, mode, tmp_path, stdev_scaled=True, **kw)
    # each fit is that of the group's samples alone
    for v in (0.1, 0.5):
        alone = samples[(samples.obs["percent_volume_dmso"] == v).to_numpy()].copy()
        eff = limma_trend(alone, mode=mode, **VOLUME).effects
        np.testing.assert_allclose(
            np.asarray(res.effects[eff.obs_names].layers["t"]), eff.layers["t"], rtol=1e-10
        )


def test_one_fit_per_context_is_the_default():
    samples = _volume_samples()
    pooled = limma_trend(samples, **VOLUME).effects
    split = limma_trend(samples, options=DEOptions(fit_per_control_group=True), **VOLUME).effects
    assert sorted(pooled.obs_names) == sorted(split.obs_names)
    # one residual df per context when pooled; per control group when split
    assert (pooled.obs.groupby("cell_context", observed=True)["df_residual"].nunique() == 1).all()
    assert (split.obs.groupby("cell_context", observed=True)["df_residual"].nunique() == 2).all()
    split = split[pooled.obs_names]
    assert (split.obs["df_residual"] < pooled.obs["df_residual"]).all()
    # the plate effects, and so logFC, are estimated from each group's wells alone
    assert not np.allclose(split.layers["logFC"], pooled.layers["logFC"])
    assert not np.allclose(split.layers["t"], pooled.layers["t"])
    assert split.uns["perturbridge"]["params"]["fit_per_control_group"] is True


def test_fit_per_control_group_without_control_keys_is_one_fit_per_context():
    samples = synthetic_samples(seed=4, n_genes=50)
    a = limma_trend(samples).effects
    b = limma_trend(samples, options=DEOptions(fit_per_control_group=True)).effects
    np.testing.assert_array_equal(a.layers["t"], b.layers["t"])


def test_stdev_scaled_is_the_standard_error_of_logfc():
    samples = synthetic_samples(seed=4, n_genes=60)
    plain = limma_trend(samples).effects
    assert "stdev.scaled" not in plain.layers  # only when asked for
    eff = limma_trend(samples, options=DEOptions(stdev_scaled=True)).effects
    assert list(eff.layers) == [*plain.layers, "stdev.scaled"]
    se = np.asarray(eff.layers["stdev.scaled"])
    np.testing.assert_allclose(se, eff.layers["logFC"] / eff.layers["t"], rtol=1e-10)
    for name in plain.layers:
        np.testing.assert_array_equal(eff.layers[name], plain.layers[name])

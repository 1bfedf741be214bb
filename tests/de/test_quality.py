"""Sample quality weights: the arrayWeights ports against R limma, limma-trend with
arrayWeights and limma-voom with voomWithQualityWeights against R, the QC table, and a
planted failed well."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_limma import assert_parity, engine_kw, synthetic_samples
from test_voom import count_samples

from conftest import run_r
from perturbridge.de import limma_trend, limma_voom, plan_contexts
from perturbridge.de._quality import (
    array_weights_gene_by_gene,
    array_weights_reml,
    contr_sum,
    full_rank,
)
from perturbridge.de.quality import FLAG_BELOW, MAX_SAMPLES, QC_COLUMNS, check_size
from perturbridge.de.r_limma import run_r_limma


@pytest.fixture(scope="module")
def noisy():
    """24 samples × 300 genes, 6 conditions on 2 plates; samples 3 and 10 noisy, and a
    rank-deficient design (a plate column aliased with a condition)."""
    rng = np.random.default_rng(0)
    n, g = 24, 300
    cond = np.repeat(np.arange(6), 4)
    plate = np.tile(np.arange(2), 12)
    x = np.column_stack([np.eye(6)[cond], plate, np.eye(6)[cond][:, 0]])  # last: aliased
    y = rng.normal(size=(n, g)) * 0.3 + rng.uniform(4, 12, g)
    y[3] += rng.normal(size=g) * 1.5
    y[10] += rng.normal(size=g) * 0.8
    y[:, 7] = 5.0  # a gene without residual variance
    prior = rng.uniform(0.5, 2, (n, g))
    return y, x, prior


def test_contr_sum_and_full_rank():
    np.testing.assert_array_equal(contr_sum(3), [[1, 0], [0, 1], [-1, -1]])
    x = np.array([[1.0, 0, 1], [1, 0, 1], [0, 1, 0], [0, 1, 0]])
    assert full_rank(x).shape == (4, 2)


@pytest.mark.r_oracle
def test_array_weights_match_r(tmp_path: Path, r_oracle, noisy):
    y, x, prior = noisy
    n = y.shape[0]
    vd = np.column_stack([np.repeat([0.0, 1.0, 2.0], 8), np.tile([0.0, 1.0], 12)])
    r = run_r(
        f"Y <- matrix(y, nrow = {n}); X <- matrix(x, nrow = {n}); W <- matrix(w, nrow = {n})\n"
        f"VD <- matrix(vd, nrow = {n})\n"
        "out <- list(auto = arrayWeights(t(Y), X), "
        "reml = arrayWeights(t(Y), X, method = 'reml'), "
        "gbg = arrayWeights(t(Y), X, method = 'genebygene'), "
        "gbgw = arrayWeights(t(Y), X, weights = t(W)), "
        "vd = arrayWeights(t(Y), X, var.design = VD, method = 'reml'), "
        "p5 = arrayWeights(t(Y), X, prior.n = 5, method = 'genebygene'))",
        tmp_path,
        y=y.ravel(order="F"),
        x=x.ravel(order="F"),
        w=prior.ravel(order="F"),
        vd=vd.ravel(order="F"),
    )
    ours = {
        "auto": array_weights_reml(y, x),  # limma's "auto" is REML for complete data
        "reml": array_weights_reml(y, x),
        "gbg": array_weights_gene_by_gene(y, x),
        "gbgw": array_weights_gene_by_gene(y, x, weights=prior),  # "auto" with weights
        "vd": array_weights_reml(y, x, var_design=vd),
        "p5": array_weights_gene_by_gene(y, x, prior_n=5),
    }
    for name, w in ours.items():
        np.testing.assert_allclose(w, r[name], rtol=1e-6, atol=0, err_msg=name)
    assert ours["reml"][3] < FLAG_BELOW < ours["reml"][0]  # the noisy sample
    np.testing.assert_allclose(np.exp(np.mean(np.log(ours["reml"]))), 1.0)


def test_array_weights_refuse_bad_input(noisy):
    y, x, prior = noisy
    bad = y.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="missing or infinite"):
        array_weights_reml(bad, x)
    with pytest.raises(ValueError, match="design has shape"):
        array_weights_reml(y, x[:5])
    with pytest.raises(ValueError, match="weights must be positive"):
        array_weights_gene_by_gene(y, x, weights=-prior)
    # too few residual df: all weights 1, as limma
    np.testing.assert_array_equal(array_weights_reml(y[:7], np.eye(7)[:, :6]), np.ones(7))


def _failed_well_samples():
    """Log-expression Samples with one failed well: a treated replicate whose values
    are noise around the gene means."""
    samples = synthetic_samples(seed=6, n_genes=150, n_plates=2, n_compounds=3, times=(24.0,))
    x = np.asarray(samples.X).copy()
    treated = np.flatnonzero(~samples.obs["is_control"].to_numpy())
    cond = samples.obs["perturbagen"].astype(str) + samples.obs["pert_dose_uM"].astype(str)
    counts = cond.iloc[treated].value_counts()
    bad = next(i for i in treated if counts[cond.iloc[i]] >= 2)
    rng = np.random.default_rng(1)
    x[bad] = x.mean(axis=0) + rng.normal(0, 3.0, x.shape[1])
    samples.X = x
    return samples, samples.obs_names[bad]


@pytest.mark.r_oracle
@pytest.mark.parametrize("quality_design", ["fit", "plate"])
def test_trend_with_quality_weights_matches_r(tmp_path: Path, r_oracle, quality_design):
    samples, bad = _failed_well_samples()
    res = limma_trend(
        samples,
        **engine_kw(quality_weights=True, quality_design=quality_design, stdev_scaled=True),
    )
    (design,), _ = plan_contexts(samples, mode="group")
    r = run_r_limma(
        np.asarray(samples.X)[design.rows],
        design,
        workdir=tmp_path,
        quality_weights="plate" if quality_design == "plate" else True,
    )
    qc = res.effects.uns["quality_weights"]
    assert list(qc.columns) == list(QC_COLUMNS)
    np.testing.assert_allclose(qc["weight"], r.extra["sample_weights"], rtol=1e-6, atol=0)
    assert_parity(res.effects, r.layers)  # the weighted fit: limma's tolerances
    assert qc.loc[qc["flagged"], "sample_id"].tolist() == [bad]
    params = res.effects.uns["perturbridge"]["params"]
    assert params["quality_weights"] is True and params["quality_design"] == quality_design


@pytest.mark.r_oracle
@pytest.mark.parametrize("n_plates", [3, 1])
def test_voom_with_quality_weights_matches_r(tmp_path: Path, r_oracle, n_plates):
    samples = count_samples(seed=2, n_genes=250, n_plates=n_plates, vehicles_per_plate=(6, 5, 4))
    res = limma_voom(samples, **engine_kw(quality_weights=True, keep_weights=True))
    (design,), _ = plan_contexts(samples, mode="group")
    r = run_r_limma(
        np.asarray(samples.X)[design.rows],
        design,
        workdir=tmp_path,
        method="voom",
        weights=True,
        quality_weights=True,
    )
    diag = res.diagnostics[design.fit_id]
    np.testing.assert_allclose(diag["sample_weights"], r.extra["sample_weights"], rtol=1e-6)
    np.testing.assert_allclose(diag["weights"], r.extra["weights"], rtol=1e-6)
    keep = diag["keep"]
    ours = {k: np.asarray(res.effects.layers[k]) for k in ("logFC", "t", "P.Value")}
    cols = res.effects.var_names.get_indexer(samples.var_names[keep])
    rl = {k: r.layers[k][:, keep] for k in ours}
    np.testing.assert_allclose(ours["logFC"][:, cols], rl["logFC"], rtol=0, atol=1e-6)
    rel_t = np.abs(ours["t"][:, cols] - rl["t"]) / np.abs(rl["t"])
    assert rel_t.max() <= 1e-5, rel_t.max()
    np.testing.assert_allclose(ours["P.Value"][:, cols], rl["P.Value"], rtol=0, atol=1e-6)
    qc = res.effects.uns["quality_weights"]
    np.testing.assert_allclose(qc["weight"], diag["sample_weights"])


def test_failed_well_is_downweighted_and_its_false_calls_go():
    """Planted truth: the failed well's condition has few true effects; without weights
    its noise makes large calls, with weights it is flagged and they shrink."""
    samples, bad = _failed_well_samples()
    cond = samples.obs.loc[bad, "perturbagen"]
    plain = limma_trend(samples).effects
    weighted = limma_trend(samples, **engine_kw(quality_weights=True)).effects
    qc = weighted.uns["quality_weights"]
    assert qc.loc[qc["sample_id"] == bad, "weight"].item() < 0.1
    assert qc["flagged"].sum() == 1
    row = (plain.obs["perturbagen"] == cond).to_numpy() & (
        plain.obs["pert_dose_uM"] == samples.obs.loc[bad, "pert_dose_uM"]
    ).to_numpy()
    err_plain = np.abs(np.asarray(plain.layers["logFC"])[row]).mean()
    err_weighted = np.abs(np.asarray(weighted.layers["logFC"])[row]).mean()
    assert err_weighted < 0.7 * err_plain, (err_weighted, err_plain)


def test_too_large_fits_are_refused_before_the_work(monkeypatch):
    import perturbridge.de.quality as quality

    samples = synthetic_samples(seed=1, n_genes=20, n_compounds=1, times=(24.0,))
    (design,), _ = plan_contexts(samples, mode="group")
    check_size(design)  # small: fine
    monkeypatch.setattr(quality, "MAX_SAMPLES", len(design.rows) - 1)
    called = []
    monkeypatch.setattr("perturbridge.de.limma.reml_weights", lambda *a, **k: called.append(1))
    with pytest.raises(ValueError, match=r"synthetic/A375: \d+ samples in one fit; .* limited"):
        limma_trend(samples, **engine_kw(quality_weights=True))
    assert not called  # refused before any weights were estimated
    assert MAX_SAMPLES == 4000


def test_quality_design_is_checked():
    with pytest.raises(ValueError, match="quality_design must be 'fit' or 'plate'"):
        engine_kw(quality_design="genes")
    samples = count_samples(seed=2, n_genes=60)
    with pytest.raises(ValueError, match="quality_design='plate' is for limma-trend"):
        limma_voom(samples, **engine_kw(quality_weights=True, quality_design="plate"))


def _extreme_calls(effects) -> int:
    """Gene × contrast cells with |log2FC| > 5 and BH-adjusted p (within the contrast)
    below 0.05."""
    lfc = np.asarray(effects.layers["logFC"])
    adj = np.asarray(effects.layers["adj.P.Value.within_one_contrast"])
    return int(((np.abs(lfc) > 5) & (adj < 0.05)).sum())


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_ljp005_plate_extreme_calls_with_weights_on_and_off(capsys):
    """The real L1000 level 3 plate LJP005 (A375, 24 h): one well per treated condition,
    26 vehicle wells. Weights estimated with the plate design flag the wells far from
    their plate and remove part of the extreme calls they drive (docs/de.md)."""
    from conftest import shared_path
    from perturbridge.sources import read_l1000

    samples = read_l1000(shared_path("l1000_cmapPy", "test_l1000.gct")).samples
    off = limma_trend(samples).effects
    on = limma_trend(samples, **engine_kw(quality_weights=True, quality_design="plate")).effects
    n_off, n_on = _extreme_calls(off), _extreme_calls(on)
    qc = on.uns["quality_weights"]
    with capsys.disabled():
        print(
            f"\nLJP005 |log2FC| > 5 and adj.P < 0.05: weights off {n_off}, "
            f"on (plate design) {n_on}; {int(qc['flagged'].sum())} of {len(qc)} wells flagged"
        )
    assert n_on < n_off
    assert qc["flagged"].sum() >= 5
    assert (qc["status"] == "converged").all()

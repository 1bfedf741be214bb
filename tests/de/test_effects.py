"""What every engine shares after its fit: the eBayes hyper-parameters saved with the
Effects (``uns["ebayes"]``, ``uns["ebayes_fits"]``, per-gene priors in ``var``/``varm``)."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pytest
from test_limma import engine_kw, synthetic_samples

from perturbridge.de import limma_trend, plan_contexts
from perturbridge.de.r_limma import run_r_limma


@pytest.mark.r_oracle
def test_priors_of_one_fit_match_r(tmp_path: Path, r_oracle):
    """limma-trend's eBayes(trend = TRUE, robust = TRUE): fit$df.prior and fit$s2.prior."""
    samples = synthetic_samples(seed=4, n_genes=200, n_compounds=3, times=(24.0,))
    eff = limma_trend(samples).effects
    (design,), _ = plan_contexts(samples, mode="group")
    r = run_r_limma(np.asarray(samples.X)[design.rows], design, workdir=tmp_path)
    eb = eff.uns["ebayes"]
    assert eb["trend"] is True and eb["robust"] is True
    np.testing.assert_allclose(eff.var["s2_prior"], r.extra["s2_prior"], rtol=1e-8)
    assert eb["s2_prior_mean"] == pytest.approx(float(np.mean(r.extra["s2_prior"])), rel=1e-8)
    assert "s2_prior" not in eb  # with a trend the prior is per gene
    np.testing.assert_allclose(eff.var["df_prior"], r.extra["df_prior"], rtol=1e-8)
    # the scalar is the F fit's df: the largest per-gene value (genes not outlying)
    assert eb["df_prior"] == pytest.approx(float(r.extra["df_prior"].max()), rel=1e-8)
    assert eb["winsor_tail_p"] == [0.05, 0.1]
    assert eff.var["df_prior"].min() < eb["df_prior"]  # the outlier genes shrink
    fits = eff.uns["ebayes_fits"]
    assert fits[["contrast_start", "contrast_stop"]].to_numpy().tolist() == [[0, eff.n_obs]]


def test_priors_without_robust_or_trend_are_scalars():
    samples = synthetic_samples(seed=4, n_genes=120, n_compounds=2, times=(24.0,))
    eff = limma_trend(samples, **engine_kw(robust=False, trend=False)).effects
    eb = eff.uns["ebayes"]
    assert eb["trend"] is False and eb["robust"] is False
    assert "df_prior" not in eff.var and "s2_prior" not in eff.var
    assert "winsor_tail_p" not in eb and "s2_prior_mean" not in eb
    # moderated t = logFC / (stdev.unscaled * sqrt(s2.post)), s2.post from the priors
    d0, s0 = eb["df_prior"], eb["s2_prior"]
    df = float(eff.obs["df_residual"].iloc[0])
    logfc, su, t = (np.asarray(eff.layers[k][0]) for k in ("logFC", "stdev.unscaled", "t"))
    s2 = (logfc / su / t) ** 2  # s2.post per gene
    sigma2 = samples_sigma2(samples, eff)
    np.testing.assert_allclose(s2, (df * sigma2 + d0 * s0) / (df + d0), rtol=1e-8)


def samples_sigma2(samples, eff) -> np.ndarray:
    """Residual variances of the fit, from an unweighted least-squares fit (numpy)."""
    (design,), _ = plan_contexts(samples, mode="group")
    x = np.asarray(samples.X)[design.rows]
    cond = np.eye(len(design.levels))[design.condition_codes]
    plates = np.eye(len(design.plate_levels))[design.plate_codes][:, 1:]
    xmat = np.hstack([cond, plates])
    beta, *_ = np.linalg.lstsq(xmat, x, rcond=None)
    resid = x - xmat @ beta
    return (resid**2).sum(axis=0) / float(eff.obs["df_residual"].iloc[0])


def test_several_fits_keep_one_row_and_one_column_each(tmp_path: Path):
    samples = synthetic_samples(seed=1, n_genes=80, contexts=("A375", "MCF7"), times=(24.0,))
    eff = limma_trend(samples).effects
    fits = eff.uns["ebayes_fits"]
    assert fits["fit_id"].tolist() == ["synthetic/A375", "synthetic/MCF7"]
    assert eff.uns["ebayes"]["n_fits"] == 2 and "df_prior" not in eff.uns["ebayes"]
    assert eff.varm["df_prior"].shape == eff.varm["s2_prior"].shape == (80, 2)
    for i, row in enumerate(fits.itertuples()):
        rows = eff.obs.iloc[row.contrast_start : row.contrast_stop]
        assert (rows["cell_context"] == row.fit_id.split("/")[1]).all()
        # the same priors as a run on that context alone
        alone = limma_trend(samples[samples.obs["cell_context"] == rows["cell_context"].iloc[0]])
        np.testing.assert_allclose(eff.varm["s2_prior"][:, i], alone.effects.var["s2_prior"])
        assert row.df_prior == pytest.approx(alone.effects.uns["ebayes"]["df_prior"])
    assert (fits["contrast_stop"].iloc[-1]) == eff.n_obs
    eff.write_h5ad(tmp_path / "e.h5ad")  # the records are writable
    back = ad.read_h5ad(tmp_path / "e.h5ad")
    assert back.uns["ebayes_fits"]["fit_id"].tolist() == fits["fit_id"].tolist()
    assert bool(back.uns["ebayes"]["robust"]) is True


@pytest.mark.slow
@pytest.mark.r_oracle
def test_r_engine_reports_the_same_priors(tmp_path: Path, r_oracle):
    from test_voom import count_samples

    from perturbridge.de import limma_voom
    from perturbridge.de.r_limma import limma_r

    trend = synthetic_samples(seed=4, n_genes=120, n_compounds=2, times=(24.0,))
    counts = count_samples(seed=3, n_genes=200, contexts=("U2OS", "HEK293"))
    for samples, method, ours in (
        (trend, "trend", limma_trend(trend).effects),
        (counts, "voom", limma_voom(counts).effects),
    ):
        r = limma_r(samples, method=method, workdir=tmp_path).effects
        assert r.uns["ebayes"]["trend"] is (method == "trend")
        fits_ours, fits_r = ours.uns["ebayes_fits"], r.uns["ebayes_fits"]
        assert fits_ours["fit_id"].tolist() == fits_r["fit_id"].tolist()
        np.testing.assert_allclose(fits_r["df_prior"], fits_ours["df_prior"], rtol=1e-6)
        for name in ("df_prior", "s2_prior"):
            mine = ours.var[name] if name in ours.var else ours.varm.get(name)
            theirs = r.var[name] if name in r.var else r.varm.get(name)
            if mine is None:
                assert theirs is None, name
                continue
            mine, theirs = np.asarray(mine, dtype=float), np.asarray(theirs, dtype=float)
            assert (np.isnan(mine) == np.isnan(theirs)).all(), name  # untested genes
            np.testing.assert_allclose(theirs, mine, rtol=1e-6, err_msg=name)


def test_posterior_per_gene_gives_the_confidence_limits_back():
    """``s2_post`` and ``df_total`` per gene and fit (var for one fit, varm for several):
    with stdev.unscaled and confint they give CI.L/CI.R and stdev.scaled (what a store
    derives instead of storing them)."""
    from scipy import stats

    from perturbridge.de import DEOptions

    samples = synthetic_samples(seed=5, n_genes=80, n_compounds=2, times=(24.0,))
    one = limma_trend(samples, options=DEOptions(stdev_scaled=True)).effects
    assert {"s2_post", "df_total"} <= set(one.var.columns)
    split = limma_trend(
        samples, control_keys=["plate"],
        options=DEOptions(fit_per_control_group=True, stdev_scaled=True),
    ).effects  # fmt: skip
    assert split.varm["s2_post"].shape == (split.n_vars, len(split.uns["ebayes_fits"]))
    for eff in (one, split):
        fits = eff.uns["ebayes_fits"]
        for k, (a, b) in enumerate(zip(fits["contrast_start"], fits["contrast_stop"], strict=True)):
            if "s2_post" in eff.varm:
                s2, df = eff.varm["s2_post"][:, k], eff.varm["df_total"][:, k]
            else:
                s2, df = eff.var["s2_post"].to_numpy(), eff.var["df_total"].to_numpy()
            su = np.asarray(eff.layers["stdev.unscaled"][a:b])
            lfc = np.asarray(eff.layers["logFC"][a:b])
            margin = stats.t.ppf(0.975, df) * su * np.sqrt(s2)
            np.testing.assert_allclose(eff.layers["CI.L"][a:b], lfc - margin, rtol=1e-12)
            np.testing.assert_allclose(eff.layers["CI.R"][a:b], lfc + margin, rtol=1e-12)
            np.testing.assert_allclose(
                eff.layers["stdev.scaled"][a:b], su * np.sqrt(s2), rtol=1e-12
            )

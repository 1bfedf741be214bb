"""squeezeVar / eBayes ports against R limma on the same variances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import run_r
from perturbridge.de._ebayes import squeeze_var

pytestmark = pytest.mark.r_oracle


@pytest.fixture(scope="module")
def variances():
    rng = np.random.default_rng(11)
    n, df = 800, 7.0
    amean = rng.uniform(3, 14, n)
    s0 = 0.05 + 0.5 * np.exp(-(amean - 3) / 3)
    var = s0 * rng.chisquare(df, n) / df
    var[rng.choice(n, 12, replace=False)] *= 30  # outliers
    return var, amean, df


@pytest.mark.parametrize(
    ("robust", "trend"), [(False, False), (False, True), (True, False), (True, True)]
)
def test_squeeze_var_matches_r(tmp_path: Path, r_oracle, variances, robust, trend):
    var, amean, df = variances
    cov = "amean" if trend else "NULL"
    r = run_r(
        f"s <- squeezeVar(var, df = rep({df}, length(var)), covariate = {cov}, "
        f"robust = {'TRUE' if robust else 'FALSE'})\n"
        "out <- list(post = s$var.post, prior = rep_len(s$var.prior, length(var)), "
        "dfp = rep_len(s$df.prior, length(var)))",
        tmp_path,
        var=var,
        amean=amean,
    )
    ours = squeeze_var(
        var, np.full(var.size, df), covariate=amean if trend else None, robust=robust
    )
    np.testing.assert_allclose(ours.var_post, r["post"], rtol=1e-9)
    np.testing.assert_allclose(ours.var_prior, r["prior"], rtol=1e-9)
    np.testing.assert_allclose(ours.df_prior, r["dfp"], rtol=1e-8)
    if robust:
        assert ours.df_prior.min() < ours.df_prior.max()  # outliers got smaller df

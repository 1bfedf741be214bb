"""Ports of R routines, each checked against R on the same data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import run_r
from perturbridge.de._rstats import (
    lowess,
    natural_spline_fit,
    p_adjust_bh,
    quantile7,
    trigamma_inverse,
    trimmed_mean,
    uniroot,
)

pytestmark = pytest.mark.r_oracle


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    x = np.sort(rng.uniform(2, 14, 400))
    x[50:53] = x[50]  # ties
    y = np.sin(x) + rng.normal(0, 0.3, x.size)
    y[::37] += 4  # outliers for the robustness iterations
    p = rng.uniform(0, 1, 300) ** 3
    return x, y, p


def test_lowess_matches_r(tmp_path: Path, r_oracle, data):
    x, y, _ = data
    perm = np.random.default_rng(1).permutation(x.size)
    r = run_r(
        "a <- lowess(x, y, f = 0.4, iter = 3); b <- lowess(x, y); "
        "c <- lowess(x, y, f = 0.1, iter = 0, delta = 0)\n"
        "out <- list(a = a$y, b = b$y, c = c$y, xs = a$x)",
        tmp_path,
        x=x[perm],
        y=y[perm],
    )
    xs, a = lowess(x[perm], y[perm], f=0.4, iter=3)
    np.testing.assert_allclose(xs, r["xs"], rtol=0, atol=1e-14)
    np.testing.assert_allclose(a, r["a"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(lowess(x[perm], y[perm])[1], r["b"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        lowess(x[perm], y[perm], f=0.1, iter=0, delta=0.0)[1], r["c"], rtol=0, atol=1e-12
    )


def test_small_helpers_match_r(tmp_path: Path, r_oracle, data):
    x, y, p = data
    r = run_r(
        "out <- list(q = quantile(y, c(0.05, 0.5, 0.9), type = 7), tm = mean(y, trim = 0.1),"
        " bh = p.adjust(p, 'BH'), tg = trigammaInverse(c(0.01, 0.5, 3, 50, 1e-7, 2e7)),"
        " ur = uniroot(function(v) v^3 - 2*v - 5, c(2, 3), tol = 1e-8)$root,"
        " ns = lm.fit(splines::ns(x, df = 4, intercept = TRUE), y)$fitted.values)",
        tmp_path,
        x=x,
        y=y,
        p=p,
    )
    np.testing.assert_allclose(quantile7(y, [0.05, 0.5, 0.9]), r["q"], rtol=1e-14)
    assert trimmed_mean(y, 0.1) == pytest.approx(float(r["tm"][0]), rel=1e-14)
    np.testing.assert_allclose(p_adjust_bh(p), r["bh"], rtol=1e-13)
    np.testing.assert_allclose(p_adjust_bh(np.vstack([p, p[::-1]]))[1], r["bh"][::-1], rtol=1e-13)
    np.testing.assert_allclose(trigamma_inverse([0.01, 0.5, 3, 50, 1e-7, 2e7]), r["tg"], rtol=1e-12)
    root = uniroot(lambda v: v**3 - 2 * v - 5, 2.0, 3.0, tol=1e-8)
    assert root == float(r["ur"][0])  # same algorithm, same steps, same float
    fitted, _ = natural_spline_fit(x, y, df=4)
    np.testing.assert_allclose(fitted, r["ns"], rtol=0, atol=1e-10)


def test_p_adjust_keeps_nan_out_of_n():
    out = p_adjust_bh([0.01, np.nan, 0.04])
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], [0.02, 0.04])


def test_uniroot_needs_a_sign_change():
    with pytest.raises(ValueError, match="opposite sign"):
        uniroot(lambda v: v * v + 1, 0.0, 1.0)

"""The closed-form weighted fit of ~0 + condition + plate equals one weighted QR per gene."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import indicator_design
from perturbridge.de._linear import design_structure
from perturbridge.de._weighted import fit_condition_plate_weighted, lm_fit_weighted


@pytest.mark.parametrize(("seed", "q"), [(0, 1), (1, 4), (2, 6)])
def test_closed_form_equals_per_gene_qr(seed, q):
    rng = np.random.default_rng(seed)
    n, k, g = 90, 12, 25
    cond = rng.integers(0, k, n)
    cond[:k] = np.arange(k)
    plate = rng.integers(0, q, n)
    y = rng.normal(size=(n, g))
    w = rng.uniform(0.2, 3.0, size=(n, g))
    gen = lm_fit_weighted(y, w, indicator_design(cond, plate, k, q))
    fast = fit_condition_plate_weighted(
        y, w, design_structure(cond, plate, n_plates=q), chunk_size=7
    )
    assert gen.df_residual == fast.df_residual
    np.testing.assert_allclose(gen.coefficients[:, :k], fast.coef_condition, atol=1e-12)
    np.testing.assert_allclose(gen.stdev_unscaled[:, :k], fast.stdev_condition, rtol=1e-12)
    np.testing.assert_allclose(gen.sigma, fast.sigma, rtol=1e-12)
    treated, control = np.arange(2, k), np.zeros(k - 2, dtype=int)
    cmat = np.zeros((k + q - 1, treated.size))
    cmat[treated, np.arange(treated.size)] = 1
    cmat[control, np.arange(treated.size)] -= 1
    e1, s1 = gen.contrasts(cmat)
    e2, s2 = fast.contrast(treated, control)
    np.testing.assert_allclose(e1, e2, atol=1e-12)
    np.testing.assert_allclose(s1, s2, rtol=1e-10)


def test_confounded_plate_with_weights():
    rng = np.random.default_rng(4)
    cond = np.array([0, 0, 1, 1, 2, 2, 0, 1, 2, 3, 3, 3])
    plate = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    y = rng.normal(size=(cond.size, 5))
    w = rng.uniform(0.5, 2, size=y.shape)
    gen = lm_fit_weighted(y, w, indicator_design(cond, plate, 4, 3))
    fast = fit_condition_plate_weighted(y, w, design_structure(cond, plate))
    assert gen.estimable.tolist() == [True] * 5 + [False]
    np.testing.assert_allclose(gen.coefficients[:, :4], fast.coef_condition, atol=1e-12)
    np.testing.assert_allclose(gen.sigma, fast.sigma, rtol=1e-12)


def test_weights_must_be_positive():
    with pytest.raises(ValueError, match="positive and finite"):
        fit_condition_plate_weighted(
            np.zeros((3, 2)), np.zeros((3, 2)), design_structure(np.arange(3), np.zeros(3, int))
        )

"""The structured ~0 + condition + plate fit equals the general least-squares fit."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import indicator_design
from perturbridge.de._linear import contrasts_fit, fit_condition_plate, lm_fit


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_structured_equals_general(seed):
    rng = np.random.default_rng(seed)
    n, k, q, g = 120, 15, 5, 40
    cond = rng.integers(0, k, n)
    cond[:k] = np.arange(k)
    plate = rng.integers(0, q, n)
    y = rng.normal(size=(n, g)) + rng.normal(size=g)
    gen = lm_fit(y, indicator_design(cond, plate, k, q))
    fast = fit_condition_plate(y, cond, plate, chunk_size=7)
    assert gen.df_residual == fast.df_residual
    np.testing.assert_allclose(gen.coefficients[:, :k], fast.coef_condition, atol=1e-12)
    np.testing.assert_allclose(gen.sigma, fast.sigma, rtol=1e-12)
    np.testing.assert_allclose(gen.amean, fast.amean, rtol=1e-14)
    treated, control = np.arange(3, k), np.zeros(k - 3, dtype=int)
    cmat = np.zeros((k + q - 1, treated.size))
    cmat[treated, np.arange(treated.size)] = 1
    cmat[control, np.arange(treated.size)] -= 1
    e1, s1 = contrasts_fit(gen, cmat)
    e2, s2 = fast.contrast(treated, control)
    np.testing.assert_allclose(e1, e2, atol=1e-12)
    np.testing.assert_allclose(s1, s2, rtol=1e-12)


def test_confounded_plate_is_dropped_like_r():
    """Plate 2 holds only condition 4, which occurs nowhere else: its column is not
    estimable, and both paths drop it (R's lm.fit reports NA for it)."""
    rng = np.random.default_rng(3)
    cond = np.array([0, 0, 1, 1, 2, 2, 3, 3, 0, 1, 2, 3, 4, 4])
    plate = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    y = rng.normal(size=(cond.size, 6))
    gen = lm_fit(y, indicator_design(cond, plate, 5, 3))
    fast = fit_condition_plate(y, cond, plate)
    assert gen.estimable.tolist() == [True] * 6 + [False]
    assert fast.plate_estimable.tolist() == [True, False]
    assert np.isnan(gen.coefficients[:, -1]).all()
    np.testing.assert_allclose(gen.coefficients[:, :5], fast.coef_condition, atol=1e-12)
    with pytest.raises(ValueError, match="non-estimable"):
        contrasts_fit(gen, np.eye(7)[:, [6]])


def test_conditions_without_samples_are_rejected():
    with pytest.raises(ValueError, match="conditions without samples"):
        fit_condition_plate(np.zeros((3, 2)), np.array([0, 0, 2]), np.zeros(3, int))


def test_plates_nested_in_time_are_detected_exactly():
    """Many plates per time, each time's conditions only on its plates: the last plate of
    every time without the reference plate is dropped, by both paths."""
    rng = np.random.default_rng(5)
    n_per_time, k_per_time, q_per_time, times = 300, 40, 12, 3
    conds, plates = [], []
    for t in range(times):
        c = t * k_per_time + rng.integers(0, k_per_time, n_per_time)
        p = t * q_per_time + rng.integers(0, q_per_time, n_per_time)
        c[:k_per_time] = t * k_per_time + np.arange(k_per_time)  # every condition occurs
        p[-q_per_time:] = t * q_per_time + np.arange(q_per_time)  # every plate occurs
        conds.append(c)
        plates.append(p)
    cond, plate = np.concatenate(conds), np.concatenate(plates)
    y = rng.normal(size=(cond.size, 5))
    k, q = k_per_time * times, q_per_time * times
    gen = lm_fit(y, indicator_design(cond, plate, k, q))
    fast = fit_condition_plate(y, cond, plate)
    expected = np.ones(q - 1, dtype=bool)
    expected[[2 * q_per_time - 2, 3 * q_per_time - 2]] = False  # last plate of times 2, 3
    assert fast.plate_estimable.tolist() == expected.tolist()
    assert gen.estimable[k:].tolist() == expected.tolist()
    assert gen.df_residual == fast.df_residual
    np.testing.assert_allclose(gen.coefficients[:, :k], fast.coef_condition, atol=1e-10)
    np.testing.assert_allclose(gen.sigma, fast.sigma, rtol=1e-10)


@pytest.mark.parametrize("q", [1, 3, 5])
def test_max_hat_closed_form(q):
    from perturbridge.de._linear import design_structure

    rng = np.random.default_rng(q)
    n, k = 60, 9
    cond = rng.integers(0, k, n)
    cond[:k] = np.arange(k)
    plate = rng.integers(0, q, n)
    x = indicator_design(cond, plate, k, q)
    qmat, _ = np.linalg.qr(x)
    hat = np.sum(qmat**2, axis=1)
    assert design_structure(cond, plate, n_plates=q).max_hat() == pytest.approx(
        hat.max(), rel=1e-12
    )


def test_more_columns_than_samples():
    """A design wider than it is tall: the columns beyond its rank are not estimable."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6))
    fit = lm_fit(rng.normal(size=(4, 3)), x)
    assert fit.estimable.tolist() == [True] * 4 + [False] * 2
    assert fit.df_residual == 0

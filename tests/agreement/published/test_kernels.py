"""Primitives of the published profile on hand-computed examples
(perturbridge.agreement.published._kernels)."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from scipy import stats

from perturbridge.agreement.published import _kernels as k

nan = math.nan


def test_deg_mask_is_strict_and_needs_finite_values():
    x = np.array([1.0, -0.3, 0.1, nan, 2.0, 0.2])
    a = np.array([0.01, 0.049, 0.05, 0.01, nan, 0.001])
    assert k.deg_mask(x, a).tolist() == [True, True, False, False, False, True]
    # |logFC| > 0.2 is strict too: 0.2 itself is out
    assert k.deg_mask(x, a, lfc_threshold=0.2).tolist() == [True, True, False, False, False, False]


def test_spearman_ties_nan_and_constant():
    x = np.array([1.0, 2.0, 2.0, 4.0, nan])
    y = np.array([3.0, 1.0, 2.0, 5.0, 1.0])
    # ranks on the 4 finite genes: x -> 1, 2.5, 2.5, 4; y -> 3, 1, 2, 4
    rx, ry = np.array([1, 2.5, 2.5, 4]), np.array([3, 1, 2, 4.0])
    want = np.corrcoef(rx, ry)[0, 1]
    assert k.spearman(x, y) == pytest.approx(want, abs=1e-15)
    assert math.isnan(k.spearman(np.array([1.0, nan]), np.array([2.0, 3.0])))  # one gene
    assert math.isnan(k.spearman(np.array([0.0, 0.0, 0.0]), np.array([1.0, 2.0, 3.0])))  # constant
    assert k.spearman(np.array([1.0, 2.0]), np.array([5.0, 9.0])) == pytest.approx(1.0)  # 2 genes


def test_deg_spearman_restricts_both_sides_to_the_mask():
    x = np.array([0.5, -1.0, 2.0, 0.1, 3.0])
    y = np.array([0.4, 1.0, 1.5, 9.0, 2.5])
    m = np.array([True, True, True, False, False])
    assert k.deg_spearman(x, y, m) == pytest.approx(stats.spearmanr(x[:3], y[:3])[0])
    assert math.isnan(k.deg_spearman(x, y, np.array([True, False, False, False, False])))
    y2 = y.copy()
    y2[1] = nan  # a NaN in the mask leaves 2 genes: still defined
    assert k.deg_spearman(x, y2, m) == pytest.approx(1.0)


def test_direction_agreement_counts_genes_in_both_masks_and_zero_is_a_sign():
    x = np.array([1.0, -1.0, 0.0, 2.0, -3.0, 1.0])
    y = np.array([2.0, 1.0, 0.0, 1.0, -1.0, nan])
    m1 = np.array([True, True, True, True, False, True])
    m2 = np.array([True, True, True, False, True, True])
    # genes in both masks and finite: 0, 1, 2 -> agree, disagree, 0 == 0 agrees
    assert k.direction_agreement(x, y, m1, m2) == pytest.approx(2 / 3)
    none = np.zeros(6, dtype=bool)
    assert math.isnan(k.direction_agreement(x, y, m1, none))
    assert k.direction_agreement(np.array([0.0]), np.array([0.1]), *[np.ones(1, bool)] * 2) == 0


def test_means():
    assert k.mean_available(nan, 0.2, 0.4) == pytest.approx(0.3)
    assert math.isnan(k.mean_available(nan, nan))
    assert math.isnan(k.strict_mean(0.5, nan))
    assert k.strict_mean(0.5, 0.3) == pytest.approx(0.4)


def test_batch_forms_equal_the_scalar_forms_row_by_row():
    rng = np.random.default_rng(0)
    x = np.round(rng.normal(size=40), 1)
    x[[3, 7]] = nan
    peers = np.round(rng.normal(size=(25, 40)), 1)
    peers[2, 5] = nan
    peers[4, :] = nan
    peers[6, :] = 1.0  # constant
    mask = rng.random(40) < 0.5
    got = k.spearman_against(x, peers, mask)
    want = [k.deg_spearman(x, p, mask) for p in peers]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    got = k.spearman_against(x, peers)
    np.testing.assert_allclose(got, [k.spearman(x, p) for p in peers], rtol=0, atol=1e-12)
    got = k.direction_agreement_against(x, peers, mask)
    want = [k.direction_agreement(x, p, mask, np.isfinite(p)) for p in peers]
    np.testing.assert_allclose(got, want, rtol=0, atol=0)


def test_peer_summary():
    s = k.peer_summary(0.5, np.array([0.1, 0.7, nan, 0.3, 0.5]))
    assert s["n_peers"] == 4
    assert s["mean_score"] == pytest.approx(0.4)
    assert s["sd_score"] == pytest.approx(np.std([0.1, 0.7, 0.3, 0.5], ddof=1))
    assert s["fraction_below_observed"] == pytest.approx(2 / 4)  # 0.5 is not below 0.5
    assert s["corrected_percentile"] == pytest.approx(3 / 5)
    one = k.peer_summary(0.5, np.array([0.1]))
    assert math.isnan(one["sd_score"]) and one["corrected_percentile"] == pytest.approx(1.0)
    undefined = k.peer_summary(nan, np.array([0.1, 0.2]))
    assert undefined["n_peers"] == 2 and math.isnan(undefined["mean_score"])


def test_peer_subsample_follows_the_seed_rule():
    assert k.peer_subsample(5, 512, "x").tolist() == [0, 1, 2, 3, 4]
    key = "20260505|ds|CVCL_1|1|24|2244"
    seed = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
    want = np.sort(np.random.default_rng(seed).choice(600, 512, replace=False))
    assert k.peer_subsample(600, 512, key).tolist() == want.tolist()


def test_bootstrap_seed_rule():
    parts = ("table_5_dataset_pair", ("a", "b", "raw"), "m", "mean_m")
    h = int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")
    assert k.bootstrap_seed("table_5_dataset_pair", ["a", "b", "raw"], "m", "mean_m") == (
        20260505 + h
    ) % (2**32 - 1)


def _naive_bca(sums, counts, seed, n_boot=2000):
    """The BCa of the written definition, one draw batch at a time, without shortcuts."""
    rng = np.random.default_rng(seed)
    n = len(sums)
    boot = []
    while len(boot) < n_boot:
        b = min(64, n_boot - len(boot))
        for row in rng.integers(0, n, size=(b, n)):
            boot.append(sum(sums[i] for i in row) / sum(counts[i] for i in row))
    boot = np.array(boot)
    est = sum(sums) / sum(counts)
    jack = np.array([(sum(sums) - sums[i]) / (sum(counts) - counts[i]) for i in range(n)])
    prop = np.clip(np.mean(boot < est), 1 / (2 * n_boot), 1 - 1 / (2 * n_boot))
    z0 = stats.norm.ppf(prop)
    d = jack.mean() - jack
    a = np.sum(d**3) / (6 * np.sum(d**2) ** 1.5)
    lv = [
        stats.norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z))) for z in stats.norm.ppf([0.025, 0.975])
    ]
    lo, hi = np.quantile(boot, lv)
    return est, lo, hi


def test_bca_interval_equals_the_written_procedure():
    rng = np.random.default_rng(1)
    counts = rng.integers(1, 4, size=17).astype(float)
    sums = rng.normal(0.3, 0.2, size=17) * counts
    iv = k.bca_interval(sums, counts, seed=123)
    est, lo, hi = _naive_bca(sums, counts, 123)
    assert iv.method == "bca"
    assert iv.mean == pytest.approx(est, abs=1e-12)
    assert iv.low == pytest.approx(lo, abs=1e-12) and iv.high == pytest.approx(hi, abs=1e-12)


def test_bca_fallbacks():
    one = k.bca_interval(np.array([1.0]), np.array([1.0]), seed=0)
    assert one.method == "not_estimable"
    same = k.bca_interval(np.array([0.5, 1.0, 1.5]), np.array([1.0, 2.0, 3.0]), seed=0)
    assert same.method == "degenerate" and same.low == same.high == pytest.approx(0.5)
    two = k.bca_interval(np.array([0.1, 0.9]), np.array([1.0, 1.0]), seed=0)
    assert two.method == "percentile_fallback" and two.status == "too_few_jackknife_values_for_bca"


@pytest.mark.parametrize("n", [2, 7, 9, 64, 129, 700])
def test_draw_totals_are_bit_equal_to_the_published_per_draw_sums(n):
    """The kernel sums a draw as a contiguous row; the published code sums a (clusters × 1)
    matrix per draw. Bit-equal totals keep ties with the estimate the same."""
    rng = np.random.default_rng(n)
    sums = rng.normal(size=n) * rng.integers(1, 5, size=n)
    idx = rng.integers(0, n, size=(64, n))
    per_draw = np.array([sums[:, None][row].sum(axis=0)[0] for row in idx])
    np.testing.assert_array_equal(sums[idx].sum(axis=1), per_draw)

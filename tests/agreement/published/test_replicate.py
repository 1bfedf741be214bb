"""The published replicate scorer (perturbridge.agreement.published.replicate), checked
against an independent recomputation from the sep_rep files."""

from __future__ import annotations

import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from perturbridge.agreement.published import read_release
from perturbridge.agreement.published.replicate import replicate_conditions, replicate_pairs
from perturbridge.simulate.release import write_release_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_release_tree(tmp_path_factory.mktemp("release") / "tree", seed=1)


@pytest.fixture(scope="module")
def table(tree):
    return replicate_conditions(read_release(tree)["beta"])


def test_pairs():
    assert replicate_pairs(1) == []
    assert replicate_pairs(2) == [(0, 1)]
    assert replicate_pairs(3) == [(0, 1), (1, 2), (2, 0)]
    assert replicate_pairs(4) == [(0, 1), (1, 2), (2, 3), (3, 0)]


def test_conditions_and_pair_counts(table):
    assert (table.n_replicates >= 2).all()
    assert set(table.n_replicates) == {2, 3, 4}
    want = table.n_replicates.map({2: 1, 3: 3, 4: 4})
    assert (table.n_replicate_pairs == want).all()
    assert (
        table.n_total_possible_replicate_pairs == table.n_replicates * (table.n_replicates - 1) // 2
    ).all()
    assert (table.pubchem_cid != "").all()  # the condition without a CID is not eligible


def _rho(x, y):
    return stats.spearmanr(x, y)[0] if len(x) >= 2 and np.ptp(x) and np.ptp(y) else math.nan


def test_a_condition_by_hand(tree, table):
    row = table[(table.n_replicates == 3) & (table.cell_type == "CVCL_0031")].iloc[0]
    a = ad.read_h5ad(tree / "beta" / "sep_rep" / "CVCL_0031_de.h5ad")
    o = a.obs
    cid = pd.to_numeric(o["pubchem_cid"], errors="coerce").to_numpy()
    same = (cid == float(row.pubchem_cid)) & (o["pert_dose_uM"].to_numpy() == float(row.dose_key))
    reps = np.flatnonzero(same)
    assert len(reps) == 3
    sym = a.var["symbol"].astype(object)
    first = {}
    for i, s in enumerate(sym):
        if isinstance(s, str) and s.strip() and s.strip() not in first:
            first[s.strip()] = i
    cols = np.array(sorted(first.values()))
    lfc = a.layers["logFC"][np.ix_(reps, cols)].astype(float)
    adj = a.layers["adj.P.Value.within_one_contrast"][np.ix_(reps, cols)].astype(float)
    t = a.layers["t"][np.ix_(reps, cols)].astype(float)
    keep = np.isfinite(lfc).all(0) & np.isfinite(adj).all(0) & np.isfinite(t).all(0)
    assert row.n_local_shared_genes == keep.sum()
    x, p = lfc[:, keep], adj[:, keep]
    m = p < 0.05
    obs_s, obs_d, obs_a = [], [], []
    for i, j in [(0, 1), (1, 2), (2, 0)]:
        s_i = _rho(x[i][m[i]], x[j][m[i]]) if m[i].sum() >= 2 else math.nan
        s_j = _rho(x[i][m[j]], x[j][m[j]]) if m[j].sum() >= 2 else math.nan
        obs_s.append((s_i + s_j) / 2)
        both = m[i] & m[j]
        obs_d.append(
            np.mean(np.sign(x[i][both]) == np.sign(x[j][both])) if both.any() else math.nan
        )
        obs_a.append(_rho(x[i], x[j]))
    np.testing.assert_allclose(
        row.mean_replicate_deg_lfc_spearman_sym_p05, np.nanmean(obs_s), atol=1e-12
    )
    np.testing.assert_allclose(
        row.mean_replicate_direction_agreement_p05, np.nanmean(obs_d), atol=1e-12
    )
    np.testing.assert_allclose(row.mean_replicate_spearman_logfc, np.nanmean(obs_a), atol=1e-12)
    # the centroid: nanmean of the other compounds' retained replicates at this dose
    n_rep = (
        pd.Series(1, index=range(len(o)))
        .groupby([cid, o["pert_dose_uM"].to_numpy()])
        .transform("size")
    )
    pool = (
        (o["pert_dose_uM"].to_numpy() == float(row.dose_key))
        & np.isfinite(cid)
        & (cid != float(row.pubchem_cid))
        & (n_rep.to_numpy() >= 2)
    )
    C = np.nanmean(a.layers["logFC"][np.ix_(pool, cols)].astype(float)[:, keep], axis=0)
    base = []
    for i, j in [(0, 1), (1, 2), (2, 0)]:
        vals = []
        for r in (i, j):
            e = m[r] & np.isfinite(C)
            vals.append(_rho(x[r][e], C[e]) if e.sum() >= 2 else math.nan)
        base.append(np.nanmean(vals))
    np.testing.assert_allclose(
        row.mean_baseline_pair_deg_lfc_spearman_sym_p05, np.nanmean(base), atol=1e-12
    )
    assert row.n_baseline_peer_rows == pool.sum()

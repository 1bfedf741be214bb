"""The published cross-dataset scorer and summaries on a release-layout tree with the
edge cases of real release files, checked against an independent recomputation
from the h5ad files (perturbridge.agreement.published.cross / summary)."""

from __future__ import annotations

import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from perturbridge.agreement.published import PublishedOptions, read_release, run_published
from perturbridge.agreement.published.cross import mutual_nearest
from perturbridge.simulate.release import write_release_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_release_tree(tmp_path_factory.mktemp("release") / "tree", seed=0)


@pytest.fixture(scope="module")
def result(tree):
    return run_published(tree, options=PublishedOptions(n_boot=300))


def test_mutual_nearest_ties_window_edge_and_outside():
    left, right = np.array([1.0, 10.0]), np.array([0.5, 2.0, 100.0])
    got = {tuple(p) for p in mutual_nearest(left, right, 10.0)}
    # 1 µM is 2x from both 0.5 and 2 (a tie: both kept); 10 µM is nearest to 2 (5x) but
    # 2's nearest is 1 µM, so 10 µM matches nothing; 100 µM's nearest is 10 µM at 10x,
    # but 10 µM prefers 2 µM
    assert got == {(0, 0), (0, 1)}
    assert {tuple(p) for p in mutual_nearest(np.array([1000.0]), np.array([100.0]), 10.0)} == {
        (0, 0)
    }  # exactly 10x: kept
    assert mutual_nearest(np.array([10.0]), np.array([200.0]), 10.0).size == 0  # 20x


def test_matching_edge_cases_of_the_tree(result):
    p = result.pairs_condition
    ab = p[(p.dataset_a == "alpha") & (p.dataset_b == "beta")]
    ag = p[(p.dataset_a == "alpha") & (p.dataset_b == "gamma")]
    bg = p[(p.dataset_a == "beta") & (p.dataset_b == "gamma")]
    # the tie: alpha 1 µM pairs with gamma 0.5 and 2 µM
    one = ag[(ag.pubchem_cid == "2200") & (ag.cell_type == "CVCL_0023") & (ag.left_dose_key == "1")]
    assert sorted(one.right_dose_key) == ["0.5", "2"]
    # exactly 10x apart (beta 1000 µM, gamma 100 µM) is kept
    assert ((bg.left_dose_key == "1000") & (bg.right_dose_key == "100")).any()
    # compound 2207 has only 200 µM in beta: its nearest alpha dose is 20x away
    assert not (ab.pubchem_cid == "2207").any()
    # the small context never passes the filter; a missing CID never matches
    assert "CVCL_0035" not in set(p.cell_type)
    assert (p.pubchem_cid != "").all()
    ctx = result.contexts
    small = ctx[ctx.cell_type == "CVCL_0035"]
    assert (~small.kept).all() and (small.n_context_matching_drugs < 10).all()
    assert result.weighting == "sample_pairs"


def _keys(var: pd.DataFrame) -> dict[str, int]:
    """Gene key → var position, written out independently of the package."""
    out: dict[str, int] = {}
    for i, s in enumerate(var["symbol"].tolist()):
        if s is None or (isinstance(s, float) and math.isnan(s)):
            continue
        s = str(s).strip()
        if s and s not in out:
            out[s] = i
    return out


def _file(tree, ds, ct):
    a = ad.read_h5ad(tree / ds / "group_rep" / f"{ct}_de.h5ad")
    cid = pd.to_numeric(a.obs["pubchem_cid"].astype(str).replace({"": "nan"}), errors="coerce")
    adj = "adj.P.Value.within_one_contrast"
    adj = adj if adj in a.layers else "adj.P.Value.across_all_contrasts"
    return a, cid.to_numpy(), adj


def _rho(x, y):
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        return math.nan
    if np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return math.nan
    return stats.spearmanr(x[ok], y[ok])[0]


@pytest.mark.parametrize("which", [0, 7, 40, 120])
def test_pair_rows_equal_an_independent_recomputation(tree, result, which):
    p = result.pairs_condition
    row = p.iloc[which % len(p)]
    la, lcid, ladj = _file(tree, row.dataset_a, row.cell_type)
    ra, _rcid, radj = _file(tree, row.dataset_b, row.cell_type)
    lk, rk = _keys(la.var), _keys(ra.var)
    shared = [g for g in sorted(lk, key=lk.get) if g in rk]
    li, ri = [lk[g] for g in shared], [rk[g] for g in shared]
    lrow = list(la.obs_names).index(row.left_obs_id)
    rrow = list(ra.obs_names).index(row.right_obs_id)
    L = la.layers["logFC"][lrow, li].astype(np.float64)
    R = ra.layers["logFC"][rrow, ri].astype(np.float64)
    mL = np.isfinite(L) & (la.layers[ladj][lrow, li] < 0.05)
    mR = np.isfinite(R) & (ra.layers[radj][rrow, ri] < 0.05)
    fin = np.isfinite(L) & np.isfinite(R)
    left_ref = _rho(L[mL & fin], R[mL & fin]) if (mL & fin).sum() >= 2 else math.nan
    right_ref = _rho(L[mR & fin], R[mR & fin]) if (mR & fin).sum() >= 2 else math.nan
    both = mL & mR & fin
    da = np.mean(np.sign(L[both]) == np.sign(R[both])) if both.any() else math.nan
    assert row.n_common_genes == len(shared)
    np.testing.assert_allclose(row.observed_deg_lfc_spearman_left_ref_p05, left_ref, atol=1e-12)
    np.testing.assert_allclose(row.observed_deg_lfc_spearman_right_ref_p05, right_ref, atol=1e-12)
    np.testing.assert_allclose(
        row.observed_deg_lfc_spearman_sym_p05, (left_ref + right_ref) / 2, atol=1e-12
    )
    np.testing.assert_allclose(row.observed_direction_agreement_p05, da, atol=1e-12)
    np.testing.assert_allclose(row.observed_spearman_logfc, _rho(L, R), atol=1e-12)
    # the source centroid: other CIDs of the same file at the same dose and time
    o = la.obs
    peers = (
        (o["pert_dose_uM"].to_numpy() == row.left_dose_uM)
        & (o["pert_time_h"].to_numpy() == float(row.time_key))
        & np.isfinite(lcid)
        & (lcid != float(row.pubchem_cid))
        & (o["is_control"].astype(str).str.lower() != "true").to_numpy()
    )
    # the published code keeps its centroids in single precision
    C = la.layers["logFC"][np.ix_(peers, li)].astype(np.float64).mean(axis=0)
    C = C.astype(np.float32).astype(np.float64)
    e = mL & np.isfinite(L) & np.isfinite(C)
    want = _rho(L[e], C[e]) if e.sum() >= 2 else math.nan
    np.testing.assert_allclose(row.left_baseline_deg_lfc_spearman_p05, want, atol=1e-12)
    e = mL & np.isfinite(L) & np.isfinite(C)
    want_da = np.mean(np.sign(L[e]) == np.sign(C[e])) if e.any() else math.nan
    np.testing.assert_allclose(row.left_baseline_direction_agreement_p05, want_da, atol=1e-12)
    assert row.left_peer_total_count == int(peers.sum())
    # sample pairs: replicates of the left condition times those of the right one
    assert row.n_sample_pairs == row.n_left_samples * row.n_right_samples


def test_drug_level_summary_by_hand(result):
    p = result.pairs
    col = "observed_direction_agreement_p05"
    s = result.summary
    got = s[(s.weighting == "sample_pairs") & (s.metric == col)].set_index(
        ["dataset_a", "dataset_b"]
    )["mean"]
    for (a, b), sub in p.groupby(["dataset_a", "dataset_b"]):
        ok = np.isfinite(sub[col])
        w = sub["n_sample_pairs"][ok]
        drug = (sub[col][ok] * w).groupby(
            [sub.cell_type[ok], sub.pubchem_cid[ok]]
        ).sum() / w.groupby([sub.cell_type[ok], sub.pubchem_cid[ok]]).sum()
        assert got[(a, b)] == pytest.approx(drug.mean(), abs=1e-12)
    c = s[(s.weighting == "condition") & (s.metric == col)]
    assert len(c) == 3 and (c.n_compounds >= 10).all()


def test_published_column_names_are_present(result):
    cols = set(result.pairs.columns)
    for name in [
        "observed_deg_lfc_spearman_sym_p05",
        "observed_direction_agreement_p05",
        "baseline_pair_deg_lfc_spearman_p05",
        "delta_vs_baseline_pair_direction_agreement_p05",
        "pb_source_centroid_deg_lfc_spearman_left_p05",
        "pb_target_centroid_direction_agreement_right_p05",
        "pb_source_peer_deg_lfc_spearman_left_p05_corrected_percentile",
        "pb_target_peer_direction_agreement_pair_p05",
        "pb_delta_vs_source_peer_deg_lfc_spearman_p05",
        "observed_deg_lfc_spearman_sym_p05_lfc02",
        "observed_spearman_logfc",
        "observed_spearman_logfc_global",
        "pb_source_peer_spearman_logfc_left_mean_score",
        "observed_spearman_t",
        "observed_signed_overlap_t_top50",
        "n_sample_pairs",
        "matched_condition_key",
        "left_adj_pvalue_layer",
    ]:
        assert name in cols, name
    # the last dataset has only the across-contrasts adjusted p-value
    g = result.pairs[result.pairs.dataset_b == "gamma"]
    assert set(g.right_adj_pvalue_layer) == {"adj.P.Value.across_all_contrasts"}


def test_read_release_rules(tree):
    data = read_release(tree)
    assert data.names == ["alpha", "beta", "gamma"]
    f = data["alpha"].group["CVCL_0023"]
    genes = f.genes.tolist()
    assert "" not in genes and "GENE12" in genes and len(genes) == len(set(genes))
    assert genes.count("GENE7") == 1
    assert f.logfc.dtype == np.float32
    # the control row is not eligible; CIDs are normalised strings in every dataset
    assert not f.obs.loc[f.obs.obs_id.str.startswith("DMSO"), "eligible"].any()
    for name in data.names:
        cids = set(data[name].group["CVCL_0023"].obs["pubchem_cid"]) - {""}
        assert "2200" in cids and all(c.isdigit() for c in cids)


def test_errors(tmp_path, tree):
    with pytest.raises(FileNotFoundError, match="give a release tree or a compendium store"):
        run_published(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="release folder not found"):
        read_release(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither a compendium store"):
        run_published(tmp_path / "empty")
    with pytest.raises(ValueError, match="have no group_rep folder"):
        read_release(tree, datasets=["alpha", "delta"])
    with pytest.raises(ValueError, match="at least two datasets"):
        run_published(tree, options=PublishedOptions(datasets=("alpha",)))
    with pytest.raises(ValueError, match="weighting must be"):
        run_published(tree, options=PublishedOptions(weighting="drugs"))


def test_weighting_follows_the_processed_files(tmp_path):
    import shutil

    tree = write_release_tree(tmp_path / "t", seed=3)
    (tree / "beta" / "beta_processed.h5ad").unlink()
    res = run_published(tree, options=PublishedOptions(n_boot=50, replicates=False))
    assert res.weighting == "condition"
    assert set(res.summary["weighting"]) == {"condition"}
    assert "no sample-level processed files" in res.info["weighting_note"]
    with pytest.raises(ValueError, match=r"missing for \['beta'\]"):
        run_published(tree, options=PublishedOptions(weighting="sample_pairs"))
    # a second h5ad beside the processed file is ambiguous
    shutil.copy(tree / "alpha" / "alpha_processed.h5ad", tree / "alpha" / "other.h5ad")
    with pytest.raises(ValueError, match="more than one"):
        read_release(tree)


def test_unparseable_doses_are_an_error_naming_the_file(tmp_path):
    tree = write_release_tree(tmp_path / "t", seed=4)
    path = tree / "gamma" / "group_rep" / "CVCL_0031_de.h5ad"
    a = ad.read_h5ad(path)
    a.obs["pert_dose_uM"] = a.obs["pert_dose_uM"].astype(str)
    a.obs.iloc[3, a.obs.columns.get_loc("pert_dose_uM")] = "ten"
    a.write_h5ad(path)
    with pytest.raises(ValueError, match=r"CVCL_0031_de.h5ad: column 'pert_dose_uM' .*\['ten'\]"):
        read_release(tree)

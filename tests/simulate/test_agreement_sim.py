"""The multi-assay agreement simulator (perturbridge.simulate.agreement): store layout,
shared compound identity, statistics, and the acceptance pattern of the agreement
diagnostics (direction above the source centroid, DEG Spearman below it, only with
assay distortions)."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import special

from perturbridge.agreement import AgreementOptions, run_agreement
from perturbridge.compendium import Compendium
from perturbridge.schema import EFFECT_LAYERS
from perturbridge.simulate.agreement import (
    AgreementDesign,
    AgreementTruth,
    _bh_rows,
    sim_inchikey,
    simulate_agreement_store,
    two_sided_p,
    write_agreement_release,
)

SMALL = AgreementDesign(
    n_datasets=3, n_contexts=2, n_compounds=12, doses=(1.0, 10.0), n_genes=200, n_replicates=3
)


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("agreement_sim")
    store = simulate_agreement_store(
        tmp / "store", SMALL, seed=3, release_dir=tmp / "release", truth=tmp / "truth.npz"
    )
    return {"store": store, "release": tmp / "release", "truth": tmp / "truth.npz"}


# ------------------------------------------------------------------ layout


def test_release_layout(sim):
    files = sorted(p.relative_to(sim["release"]).as_posix() for p in sim["release"].rglob("*"))
    files = [f for f in files if f.endswith(".h5ad")]
    assert files == [
        f"{ds}/{mode}_rep/{ctx}_de.h5ad"
        for ds in ("sim_a", "sim_b", "sim_c")
        for mode in ("group", "separate")
        for ctx in ("SIMCL01", "SIMCL02")
    ]
    src = ad.read_h5ad(sim["release"] / "sim_a" / "group_rep" / "SIMCL01_de.h5ad")
    assert set(EFFECT_LAYERS) <= set(src.layers)
    obs_columns = {"cell_type", "perturbagen", "perturbagen_name", "compound_inchikey",
                   "compound_parent_inchikey", "pert_dose_uM", "pert_time_h"}  # fmt: skip
    assert obs_columns <= set(src.obs.columns)
    assert src.n_obs == 12 * 2
    assert all(" - " in name for name in src.obs_names)


def test_store_opens_with_the_design(sim):
    with Compendium.open(sim["store"]) as comp:
        cond = comp.conditions()
        assert sorted(cond["dataset"].unique()) == ["sim_a", "sim_b", "sim_c"]
        assert sorted(cond["cell_context"].unique()) == ["SIMCL01", "SIMCL02"]
        assert len(cond) == 3 * 2 * 12 * 2
        per = cond.groupby(["dataset", "cell_context"]).size()
        assert (per == 12 * 2).all()
        assert sorted(cond["pert_dose_uM"].unique()) == [1.0, 10.0]
        assert set(cond["pert_time_h"]) == {24.0}
        assert comp.modes == ["group", "separate"]
        sep = comp.contrasts(mode="separate")
        assert len(sep) == 3 * len(cond)
        assert (cond["n_separate"] == 3).all()


def test_same_compound_same_id_across_datasets(sim):
    with Compendium.open(sim["store"]) as comp:
        cond = comp.conditions()
        compounds = comp.table("compounds")
    keys = {sim_inchikey(i) for i in range(12)}
    assert set(cond["compound_id"]) == keys
    assert set(compounds["compound_id"]) == keys
    # every compound in every dataset, under a different name in each
    assert (compounds["datasets"].map(len) == 3).all()
    assert (compounds["names"].map(len) == 3).all()
    names = cond.groupby("compound_id")["perturbagen"].nunique()
    assert (names == 3).all()
    # one compound, dose and context: one condition per dataset
    g = cond.groupby(["compound_id", "cell_context", "pert_dose_uM"])["dataset"].nunique()
    assert (g == 3).all()


def test_inchikey_shape():
    key = sim_inchikey(7)
    assert key == sim_inchikey(7) != sim_inchikey(8)
    a, b, c = key.split("-")
    assert (len(a), len(b), len(c)) == (14, 10, 1)
    assert (a + b + c).isalpha() and key.isupper()


def test_gene_coverage_and_nan(sim):
    truth = AgreementTruth.load(sim["truth"])
    with Compendium.open(sim["store"]) as comp:
        genes = comp.genes()
        assert len(genes) == 200
        cond = comp.conditions(dataset="sim_b", context="SIMCL01", dose=10.0)
        eff = comp.effects(cond, layer="logFC")
    measured_b = truth.measured[1]
    assert 0.6 < measured_b.mean() < 0.8
    assert truth.measured[[0, 2]].all()
    x = np.asarray(eff.X)
    order = pd.Index(truth.genes).get_indexer(eff.var_names)
    assert np.isnan(x[:, ~measured_b[order]]).all()
    assert np.isfinite(x[:, measured_b[order]]).all()


def test_statistics_are_consistent(sim):
    src = ad.read_h5ad(sim["release"] / "sim_c" / "group_rep" / "SIMCL02_de.h5ad")
    lay = {k: np.asarray(v, dtype=np.float64) for k, v in src.layers.items()}
    se = lay["stdev.scaled"]
    np.testing.assert_allclose(lay["t"], lay["logFC"] / se, rtol=1e-5)
    df = 3 + 6 - 2 + 4.0
    np.testing.assert_allclose(
        lay["P.Value"], 2 * special.stdtr(df, -np.abs(lay["t"])), rtol=1e-4, atol=1e-30
    )
    np.testing.assert_allclose(lay["CI.R"] - lay["CI.L"], 2 * special.stdtrit(df, 0.975) * se,
                               rtol=1e-5)  # fmt: skip
    adj = lay["adj.P.Value.within_one_contrast"]
    np.testing.assert_allclose(adj, _naive_bh(lay["P.Value"]), rtol=1e-5)
    # realistic DE sets at the top dose: some genes, not all
    top = src.obs["pert_dose_uM"].to_numpy() == 10.0
    frac = (adj[top] < 0.05).mean()
    assert 0.05 < frac < 0.5


def test_truth_round_trip(sim):
    truth = AgreementTruth.load(sim["truth"])
    assert truth.datasets == ("sim_a", "sim_b", "sim_c")
    assert truth.contexts == ("SIMCL01", "SIMCL02")
    assert truth.doses == (1.0, 10.0)
    assert truth.specific.shape == (12, 2, 200)
    assert truth.generic.shape == (2, 200)
    eff = truth.shared_effect(0, 1, 10.0, 24.0)
    assert eff.shape == (200,)
    assert np.count_nonzero(eff) > 0
    # distortions on: datasets differ in gain and noise
    assert not np.allclose(truth.gain[0], truth.gain[2])
    assert not np.allclose(truth.noise[0], truth.noise[1])


def test_no_distortion_means_identical_assays(tmp_path):
    design = AgreementDesign(
        distortion=False, separate=False, n_contexts=1, n_compounds=3, n_genes=50
    )
    truth = write_agreement_release(tmp_path, design)
    assert (truth.gain == 1).all() and (truth.gamma == 1).all() and truth.measured.all()
    assert np.allclose(truth.noise, truth.noise[0, 0])


def test_seeded(tmp_path):
    design = AgreementDesign(n_datasets=2, n_contexts=1, n_compounds=4, n_genes=60, separate=False)
    write_agreement_release(tmp_path / "a", design, seed=5)
    write_agreement_release(tmp_path / "b", design, seed=5)
    write_agreement_release(tmp_path / "c", design, seed=6)
    rel = Path("sim_b") / "group_rep" / "SIMCL01_de.h5ad"
    a, b, c = (ad.read_h5ad(tmp_path / x / rel).layers["logFC"] for x in "abc")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# ------------------------------------------------------------------ kernels


def test_two_sided_p_matches_scipy():
    t = np.concatenate([np.linspace(-50, 50, 20001), [0.0, 1e-8, 3e3, -2e4, 1e5]])
    for df in (3.0, 11.0, 40.0):
        got = two_sided_p(t.astype(np.float32), df).astype(np.float64)
        want = 2 * special.stdtr(df, -np.abs(t.astype(np.float32).astype(np.float64)))
        ok = want > 1e-37  # float32 range
        np.testing.assert_allclose(got[ok], want[ok], rtol=2e-5)
        assert (got[~ok] < 1e-36).all()


def _naive_bh(p: np.ndarray) -> np.ndarray:
    out = np.empty_like(p)
    for r, row in enumerate(p):
        n = len(row)
        order = np.argsort(row)
        q = np.empty(n)
        running = 1.0
        for i in range(n - 1, -1, -1):
            running = min(running, row[order[i]] * n / (i + 1))
            q[order[i]] = running
        out[r] = q
    return out


def test_bh_rows_matches_naive():
    rng = np.random.default_rng(0)
    p = rng.random((5, 40)) ** 3
    p[0, :5] = p[0, 5]  # ties
    np.testing.assert_allclose(_bh_rows(p), _naive_bh(p), rtol=1e-12)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"n_compounds": 0}, "n_compounds must be >= 1, found 0"),
        ({"doses": (0.0, 1.0)}, "doses must be positive"),
        ({"times": ()}, "times must be positive"),
        ({"n_replicates": 1}, "separate mode needs n_replicates >= 2, found 1"),
        ({"n_datasets": 27}, "n_datasets must be <= 26, found 27"),
    ],
)
def test_errors(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        simulate_agreement_store(tmp_path / "store", AgreementDesign(**kw))


def test_refuses_a_non_empty_release_folder(tmp_path):
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(ValueError, match="is not empty"):
        write_agreement_release(tmp_path, AgreementDesign(n_compounds=2, n_genes=20))


# ------------------------------------------------------------------ acceptance


def _centroid_rows(store: Path) -> pd.DataFrame:
    options = AgreementOptions(metrics=["direction", "deg_spearman"], n_boot=200, replicates=False)
    res = run_agreement(store, options, progress=False)
    cs = res.cross_summary
    rows = cs[(cs["cell_context"] == "*") & (cs["baseline"] == "cross_centroid_a")]
    return rows.set_index(["dataset_a", "dataset_b", "metric"])


def _published_rows(tmp: Path, *, distortion: bool, seed: int) -> pd.DataFrame:
    """Tables 4-5 summary rows of the published profile on a simulated release."""
    from perturbridge.agreement.published import PublishedOptions, run_published

    design = AgreementDesign(
        n_datasets=2, n_contexts=2, n_compounds=20, doses=(1.0, 10.0), separate=False,
        distortion=distortion,
    )  # fmt: skip
    simulate_agreement_store(tmp / "store", design, seed=seed, release_dir=tmp / "rel")
    res = run_published(tmp / "rel", options=PublishedOptions(replicates=False, n_boot=500))
    return res.summary[res.summary["weighting"] == res.weighting].set_index("metric")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_acceptance_published_pattern(tmp_path, seed):
    """Published profile, published baseline (source centroid, sample-referenced):
    with distortions, direction agreement above it and DEG-restricted Spearman below;
    without distortions, both above. Intervals exclude 0."""
    on = _published_rows(tmp_path / "on", distortion=True, seed=seed)
    off = _published_rows(tmp_path / "off", distortion=False, seed=seed)
    for rows in (on, off):
        assert (rows["dataset_a"] == "sim_a").all() and (rows["dataset_b"] == "sim_b").all()
        assert (rows["n_compounds"] == 20).all()
    spear = "w4_delta_vs_source_centroid_deg_lfc_spearman_p05"  # Table 4: Δ vs the baseline
    direc = "delta_vs_baseline_pair_direction_agreement_p05"
    assert on.loc[direc, "ci_low"] > 0 and on.loc[spear, "ci_high"] < 0
    assert off.loc[direc, "ci_low"] > 0 and off.loc[spear, "ci_low"] > 0
    obs = "w4_observed_deg_lfc_spearman_sym_p05"
    base = "w4_source_centroid_deg_lfc_spearman_pair_p05"
    assert on.loc[obs, "mean"] < on.loc[base, "mean"]
    assert off.loc[obs, "mean"] > off.loc[base, "mean"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_perturbridge_profile_pattern(tmp_path, seed):
    """Our own profile (the centroid of A scored against B): distortions on: direction
    observed above that centroid, DEG Spearman below;
    distortions off: both above."""
    on_off = [
        AgreementDesign(
            n_datasets=2,
            n_contexts=2,
            n_compounds=20,
            doses=(1.0, 10.0),
            separate=False,
            distortion=distortion,
        )
        for distortion in (True, False)
    ]
    on = _centroid_rows(simulate_agreement_store(tmp_path / "on", on_off[0], seed=seed))
    off = _centroid_rows(simulate_agreement_store(tmp_path / "off", on_off[1], seed=seed))
    for rows in (on, off):
        assert list(rows.index.get_level_values("dataset_a").unique()) == ["sim_a"]
        assert (rows["n_pairs"] >= 60).all() and (rows["n_compounds"] == 20).all()
    d_on = on.xs("direction", level="metric").iloc[0]
    s_on = on.xs("deg_spearman", level="metric").iloc[0]
    d_off = off.xs("direction", level="metric").iloc[0]
    s_off = off.xs("deg_spearman", level="metric").iloc[0]
    assert d_on["observed"] > d_on["baseline_value"]
    assert s_on["observed"] < s_on["baseline_value"]
    assert d_off["observed"] > d_off["baseline_value"]
    assert s_off["observed"] > s_off["baseline_value"]
    # the gaps are clear, not noise: the bootstrap Δ intervals exclude 0
    assert d_on["delta_low"] > 0 and s_on["delta_high"] < 0
    assert d_off["delta_low"] > 0 and s_off["delta_low"] > 0

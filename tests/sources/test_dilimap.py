"""DILImap adapter: QC failures with their metric, dose merging in log10 space,
identities, DE recovery and bad input."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

from perturbridge.de.voom import limma_voom
from perturbridge.errors import FormatError, SchemaError
from perturbridge.io import write_h5ad
from perturbridge.schema import validate_samples
from perturbridge.simulate.upstream_sc import write_dilimap
from perturbridge.sources import get_source
from perturbridge.sources.dilimap import (
    DILImapSource,
    cross_replicate_correlation,
    merge_doses,
    read_dilimap,
)


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    return write_dilimap(tmp_path_factory.mktemp("dilimap"), seed=4)


@pytest.fixture(scope="module")
def ingested(fixture):
    return read_dilimap(fixture.files["h5ad"])


def _rewrite(src, dst, edit):
    a = ad.read_h5ad(src)
    edit(a)
    a.write_h5ad(dst)
    return dst


def test_registered():
    assert isinstance(get_source("dilimap"), DILImapSource)


def test_every_well_has_its_planted_fate(fixture, ingested):
    led = ingested.ledger
    led.check_accounts_for(fixture.layout.index, stage="ingest")
    rows = led.to_frame().query("stage == 'ingest'").set_index("id")
    got = rows.loc[fixture.layout.index, "reason"]
    assert (got.to_numpy() == fixture.layout["expected"].to_numpy()).all()
    detail = rows.groupby("reason")["detail"].first()
    assert detail["qc_ldh"] == "LDH_QC=LDH > IC10"
    assert detail["qc_total_rna"].startswith("log10 total reads ")
    assert "(median - 2.5 SD)" in detail["qc_total_rna"]
    assert detail["qc_mito"].startswith("pct_mtRNA ") and detail["qc_mito"].endswith(">= 9")
    assert detail["qc_rep_corr"].startswith("cross_rep_correlation ")
    assert detail["qc_rep_corr"].endswith("<= threshold 0.9900")
    assert detail["replaced_control"] == "COMPOUND=DMSO_replaced"


def test_doses_are_merged_in_log10_space(ingested):
    obs = ingested.samples.obs
    lef = obs[obs["perturbagen"] == "Leflunomide"]
    assert sorted(set(lef["pert_dose_uM"])) == [0.37, 1.1, 3.33, 10.0]
    merged = lef[lef["pert_dose_uM"] == 3.33]
    assert set(merged["dose_source_uM"]) == {3.3333, 3.33}
    last = obs[obs["perturbagen"] == "Mifepristone"]
    assert {10.0, 12.0} <= set(last["pert_dose_uM"])  # log10 gap 0.079 > 0.05: kept apart
    kept = ingested.ledger.to_frame().query("stage == 'ingest' and status == 'kept'")
    assert kept["detail"].str.contains("dose 3.3333 merged to 3.33 µM").any()


def test_merge_doses_rule():
    comp = np.array(["a", "a", "a", "a", "b", "b", "a"], dtype=object)
    dose = np.array([1.0, 1.1, 1.21, 2.0, 1.0, np.nan, 0.0])
    # 1.0-1.1 and 1.1-1.21 are within 0.05 (single linkage chains them), 2.0 is apart
    got = merge_doses(comp, dose, max_log10_gap=0.05)
    np.testing.assert_array_equal(got[:5], [1.0, 1.0, 1.0, 2.0, 1.0])
    assert np.isnan(got[5]) and got[6] == 0.0
    with pytest.raises(ValueError, match="max_log10_gap"):
        merge_doses(comp, dose, max_log10_gap=-1)


def test_cross_replicate_correlation_rule():
    rng = np.random.default_rng(0)
    base = rng.gamma(2.0, 50.0, 200)
    x = np.vstack([base * rng.normal(1, 0.02, 200) for _ in range(6)])
    x[2] = rng.permutation(x[2])  # a scrambled replicate
    plate = np.array(["p"] * 6, dtype=object)
    cond = np.array(["a", "a", "a", "b", "b", "c"], dtype=object)
    corr, thr = cross_replicate_correlation(x, plate, cond, min_corr=0.99, n_sd=3.0)
    assert np.isnan(corr[5]) and np.isnan(thr[5])  # alone in its condition
    fails = np.isfinite(corr) & (corr <= thr)
    assert fails.tolist() == [False, False, True, False, False, False]


def test_upstream_qc_columns_are_used(fixture, tmp_path):
    def edit(a):
        a.obs["rep_corr_qc_pass"] = True
        a.obs["cross_rep_correlation"] = 0.999
        a.obs.iloc[0, a.obs.columns.get_loc("rep_corr_qc_pass")] = False

    bad = _rewrite(fixture.files["h5ad"], tmp_path / "qc.h5ad", edit)
    rows = read_dilimap(bad).ledger.to_frame().query("reason == 'qc_rep_corr'")
    assert len(rows) == 1 and rows["detail"].iloc[0].endswith("rep_corr_qc_pass False (upstream)")


def test_identities_and_schema(ingested):
    s = ingested.samples
    validate_samples(s)
    obs = s.obs
    assert set(obs["cell_context"]) == {"CL:0000182"}
    assert set(obs.loc[obs["is_control"], "perturbagen"]) == {"DMSO"}
    assert (obs.loc[obs["is_control"], "pert_dose_uM"] == 0).all()
    assert (obs["pert_time_h"] == 24.0).all()
    assert s.var_names.str.startswith("ENSG").all() and "MT-CO1" in set(s.var["symbol"])
    assert set(obs["dose_level"]) == {"Low", "Middle", "Mid-High", "High", "Control"}


def test_limma_voom_recovers_planted_effects(fixture, ingested):
    de = limma_voom(ingested.samples, mode="group")
    rec = fixture.recovery(de.effects)
    print(f"DILImap recovery: r={rec['r']:.3f} (median per contrast {rec['r_median']:.3f}) "
          f"over {rec['n_contrasts']} contrasts, {rec['n_values']} values")  # fmt: skip
    assert rec["n_contrasts"] == len(fixture.truth) == 21
    assert rec["r"] > 0.6


def test_samples_round_trip_through_h5ad(ingested, tmp_path):
    path = write_h5ad(ingested.samples, tmp_path / "samples.h5ad")
    back = ad.read_h5ad(path)
    validate_samples(back)
    assert back.obs_names.equals(ingested.samples.obs_names)
    assert (back.X != ingested.samples.X).nnz == 0


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"DILImap counts AnnData.*nope\.h5ad"):
        read_dilimap(tmp_path / "nope.h5ad")


@pytest.mark.parametrize("column", ["COMPOUND", "CONCENTRATION_UM", "PLATE_NAME", "WELL_ID"])
def test_missing_column_names_file_and_column(fixture, tmp_path, column):
    bad = _rewrite(fixture.files["h5ad"], tmp_path / "bad.h5ad", lambda a: a.obs.pop(column))
    with pytest.raises(SchemaError, match=rf"{column}.*bad\.h5ad obs"):
        read_dilimap(bad)


def test_unparseable_dose_names_the_values(fixture, tmp_path):
    def edit(a):
        dose = a.obs["CONCENTRATION_UM"].astype(object)
        dose.iloc[[1, 4]] = ["3.3 uM?", "high"]
        a.obs["CONCENTRATION_UM"] = dose.astype(str)

    bad = _rewrite(fixture.files["h5ad"], tmp_path / "bad.h5ad", edit)
    with pytest.raises(FormatError, match=r"'CONCENTRATION_UM'.*'3\.3 uM\?'.*'high'"):
        read_dilimap(bad)


def test_failed_ingest_leaves_no_output_file(fixture, tmp_path):
    bad = _rewrite(fixture.files["h5ad"], tmp_path / "bad.h5ad", lambda a: a.obs.pop("COMPOUND"))
    out = tmp_path / "out" / "samples.h5ad"
    with pytest.raises(SchemaError):
        write_h5ad(read_dilimap(bad).samples, out)
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_qc_thresholds_are_flat_plan_keys():
    from perturbridge.sources import get_source
    from perturbridge.sources.dilimap import DilimapQC

    adapter = get_source("dilimap")
    assert adapter.reader_kwargs({"h5ad": "x", "max_mito_percent": 10.0}) == {
        "h5ad": "x",
        "qc": DilimapQC(max_mito_percent=10.0),
    }
    names, required, _ = type(adapter).parameter_names()
    assert {"total_rna_sd", "max_mito_percent", "min_rep_corr", "rep_corr_sd"} <= names
    assert "qc" not in names and required == {"h5ad"}

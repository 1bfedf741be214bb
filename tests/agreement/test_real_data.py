"""Agreement on real L1000 data, perturbridge profile (skipped when ../shared/data is
absent). The published profile needs the release layout (tests/agreement/published/).

(a) cmapR level 5 MODZ signatures (272 signatures: 3 compounds over cell lines and
times): the same compound in different cell line × time strata against different-compound
peers, DE = |z| >= 2. (b) The cmapPy LJP005 A375 24 h plate, built into a one-dataset
compendium: replicate agreement (the plate has one well per dose: none) and the
agreement of adjacent doses of the same compound. The numbers are in docs/agreement.md.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from conftest import shared_path
from perturbridge.agreement import (
    AgreementOptions,
    CompareOptions,
    PairingOptions,
    dose_series_agreement,
    run_agreement,
    signature_agreement,
)
from perturbridge.compendium import Compendium, build
from perturbridge.io import read_gctx

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

METRICS = ["deg_spearman", "direction", "spearman", "top50"]


def _show(title, summary):
    cols = [
        "metric",
        "observed",
        "baseline_value",
        "delta",
        "delta_low",
        "delta_high",
        "n_pairs",
        "n_compounds",
        "n_strata",
    ]
    print(f"\n{title}\n{summary[cols].to_string(index=False, float_format='%.3f')}")


def test_perturbridge_profile_cmapr_level5_same_compound_across_cell_lines():
    path = shared_path("l1000_cmapR", "cmapR_ds_level5_modz_n272x978.gctx")
    g = read_gctx(path)
    meta = g.col_meta
    res = signature_agreement(
        g.data.T,
        meta,
        pairing=PairingOptions(
            compound="pert_iname", strata=["cell_id", "pert_itime"], max_pairs_per_compound=None
        ),
        compare=CompareOptions(metrics=METRICS, n_boot=2000, seed=0),
    )
    _show("cmapR level 5 MODZ: same compound, different cell line x time", res.summary)
    # pair count from the metadata alone: same compound, different stratum
    expected = 0
    for _, grp in meta.groupby("pert_iname"):
        n = len(grp)
        same = grp.groupby(["cell_id", "pert_itime"]).size()
        expected += n * (n - 1) // 2 - int((same * (same - 1) // 2).sum())
    assert len(res.pairs) == expected == 14613
    assert (res.pairs["n_genes"] == 978).all()
    s = res.summary.set_index("metric")
    assert s["n_compounds"].eq(3).all()
    for m in METRICS:
        assert -1 <= s.loc[m, "observed"] <= 1
    d = res.pairs["direction"].dropna()
    assert ((d >= 0) & (d <= 1)).all()
    # the same compound agrees better than other compounds of the source stratum
    assert s.loc["direction", "delta"] > 0 and s.loc["deg_spearman", "delta"] > 0


@pytest.fixture(scope="module")
def plate_store(tmp_path_factory):
    gct = shared_path("l1000_cmapPy", "test_l1000.gct")
    folder = tmp_path_factory.mktemp("ljp005")
    plan = folder / "plan.toml"
    plan.write_text(
        textwrap.dedent(f"""
        [store]
        path = "{folder / "store"}"
        [executor]
        n_jobs = 1
        [[datasets]]
        name = "ljp005"
        source = "l1000"
        inputs = {{ level3 = "{gct}" }}
        de = {{ modes = ["group", "separate"] }}
        """)
    )
    build(plan)
    return folder / "store"


def test_perturbridge_profile_l1000_plate_replicates_and_dose_series(plate_store):
    res = run_agreement(plate_store, AgreementOptions(n_boot=2000, metrics=METRICS), progress=False)
    rep = res.replicate_summary
    print("\nLJP005 replicate agreement:\n", rep[["dataset", "n_conditions", "reason"]])
    assert rep["n_conditions"].tolist() == [0]
    assert rep["reason"].tolist() == ["no condition has two or more replicate contrasts"]
    assert len(res.pairs) == 0  # one dataset: nothing to match across datasets
    with Compendium.open(plate_store) as comp:
        n_cond = len(comp.conditions())
        ds = dose_series_agreement(
            comp, compare=CompareOptions(metrics=METRICS, n_boot=2000, seed=0)
        )
    _show("LJP005 A375 24 h: adjacent doses of the same compound vs peers", ds.summary)
    assert n_cond == 328
    assert len(ds.pairs) == 273 and ds.pairs["compound"].nunique() == 55
    ratio = ds.pairs["pert_dose_uM_b"] / ds.pairs["pert_dose_uM_a"]
    assert np.all(ratio > 1)
    s = ds.summary.set_index("metric")
    assert (s["delta_low"] > 0).all()

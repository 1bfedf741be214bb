"""run_agreement: every table on disk, atomic writes, read back."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from perturbridge.agreement import AgreementOptions, read_agreement, run_agreement
from perturbridge.agreement.run import TABLES

from ._stores import cross_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return cross_store(tmp_path_factory.mktemp("run"))


def test_run_writes_every_table(store, tmp_path):
    out = tmp_path / "agr"
    res = run_agreement(
        store,
        AgreementOptions(
            min_compounds=3, n_boot=50, metrics=["deg_spearman", "top50"], dose_sensitivity=True
        ),
        out=out,
        progress=False,
    )
    for name in TABLES:
        assert (out / f"{name}.parquet").is_file() and (out / f"{name}.csv").is_file()
    info = json.loads((out / "agreement.json").read_text())
    assert info["options"]["min_compounds"] == 3 and info["build_key"]
    assert info["counts"]["pairs"] == len(res.pairs) == 12
    assert set(info["timings_s"]) >= {"match", "cross", "replicate", "dose_sensitivity"}
    back = read_agreement(out)
    pd.testing.assert_frame_equal(back.cross_summary, res.cross_summary, check_dtype=False)
    assert back.info["options"] == info["options"]
    ds = res.dose_sensitivity
    assert set(ds["threshold"]) == {"exact", "2x", "3x", "10x"}
    # exact: only C2 (same dose 3) has pairs; 10x: C1 too (1 vs 1.2)
    n = ds[ds["metric"] == "deg_spearman"].groupby("threshold")["n_pairs"].first()
    assert n["exact"] == 6 and n["10x"] == 12
    # the top-50 overlap needs 100 common genes; this store has 30: all NaN, kept as NaN
    assert res.pairs["top50"].isna().all()
    # a second run replaces the folder
    options = AgreementOptions(min_compounds=3, n_boot=0, replicates=False)
    run_agreement(store, options, out=out, progress=False)
    assert not (out / "dose_sensitivity.parquet").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["agr"]  # no temporary leftovers


def test_failure_leaves_no_output(store, tmp_path, monkeypatch):
    from perturbridge.agreement import run as run_mod

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    out = tmp_path / "agr"
    with pytest.raises(RuntimeError, match="disk full"):
        run_agreement(store, AgreementOptions(min_compounds=3, n_boot=0), out=out, progress=False)
    assert list(tmp_path.iterdir()) == []
    assert run_mod.INFO_FILE == "agreement.json"


def test_refuses_foreign_folder_and_bad_options(store, tmp_path):
    (tmp_path / "x.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an agreement output"):
        run_agreement(store, AgreementOptions(n_boot=0), out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="zscore must be one of"):
        run_agreement(store, AgreementOptions(zscore="gene"), progress=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown metrics"):
        run_agreement(store, AgreementOptions(metrics=["nope"]), progress=False)
    with pytest.raises(FileNotFoundError, match="not an agreement folder"):
        read_agreement(tmp_path)


def test_zscore_option_runs(store):
    options = AgreementOptions(min_compounds=3, n_boot=0, zscore="dataset", metrics=["spearman"])
    res = run_agreement(store, options, progress=False)
    assert len(res.pairs) == 12 and res.pairs["spearman"].notna().all()

"""L1000 level 3 adapter: the real LJP005 plate, inst_info tables, units and bad input."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import shared_path
from perturbridge.cli import app
from perturbridge.errors import FormatError, SchemaError, UnitError
from perturbridge.io import write_gctx
from perturbridge.schema import validate_samples
from perturbridge.simulate import simulate_l1000
from perturbridge.sources import get_source, list_sources, read_l1000

PLATE = ("l1000_cmapPy", "test_l1000.gct")


@pytest.fixture(scope="module")
def ljp005():
    return read_l1000(shared_path(*PLATE))


def test_real_plate_ledger_accounts_for_every_well(ljp005):
    led = ljp005.ledger.to_frame()
    assert len(led) == 377
    assert led["id"].is_unique
    counts = led.groupby(["status", "reason"]).size().to_dict()
    assert counts == {("dropped", "positive_control"): 23, ("kept", ""): 354}
    obs = ljp005.samples.obs
    assert int(obs["is_control"].sum()) == 26
    assert set(obs.loc[obs["is_control"], "perturbagen"]) == {"DMSO"}
    assert (obs.loc[~obs["is_control"], "pert_type"] == "compound").all()
    dropped = led.loc[led["status"] == "dropped", "detail"]
    assert set(dropped) == {"trt_poscon"}


def test_real_plate_doses_times_and_identity(ljp005):
    obs = ljp005.samples.obs
    validate_samples(ljp005.samples)
    assert (obs["pert_time_h"] == 24.0).all()
    assert (obs.loc[obs["is_control"], "pert_dose_uM"] == 0).all()
    a07 = obs.loc["LJP005_A375_24H_X1_B19:A07"]
    assert a07["perturbagen"] == "CP-724714"
    assert a07["compound_id_source"] == "BRD-K76908866"
    assert a07["pert_dose_uM"] == pytest.approx(10.0)
    assert obs.loc["LJP005_A375_24H_X1_B19:A10", "pert_dose_uM"] == pytest.approx(0.37)
    treated = obs.loc[~obs["is_control"], "pert_dose_uM"]
    assert set(np.round(treated.unique(), 2)) == {0.04, 0.12, 0.37, 1.11, 3.33, 10.0}
    assert (obs["plate"] == "LJP005_A375_24H_X1").all()
    assert (obs["replicate"] == "X1").all()
    assert (obs["cell_context"] == "A375").all()
    var = ljp005.samples.var
    assert var.loc["5720", "symbol"] == "PSME1"
    assert var.loc["5720", "probe_id"] == "200814_at"
    assert ljp005.samples.n_vars == 978
    x = np.asarray(ljp005.samples.X)
    assert x.min() > 3
    assert x.max() < 16  # level 3 log2 QNORM


def _sim_files(tmp_path: Path, **kw):
    sim = simulate_l1000(
        n_genes=30, n_compounds=3, n_replicates=2, cell_lines=("A375",), times_h=(24,), seed=3, **kw
    )
    return sim, sim.write(tmp_path)


def test_inst_info_table_and_nm_units(tmp_path):
    sim, files = _sim_files(tmp_path, dose_units=("um", "nm"))
    res = read_l1000(files["gctx"], inst_info=files["inst_info"], dataset="sim")
    obs = res.samples.obs
    info = sim.inst_info().set_index("inst_id")
    nm = info.index[info["pert_dose_unit"] == "nm"]
    assert len(nm) > 0
    kept_nm = nm.intersection(obs.index)
    np.testing.assert_allclose(
        obs.loc[kept_nm, "pert_dose_uM"], info.loc[kept_nm, "pert_dose"].astype(float) / 1000
    )
    assert len(res.ledger) == sim.data.shape[1]
    assert (obs["dataset"] == "sim").all()


def test_missing_metadata_rows_go_to_ledger(tmp_path):
    sim, files = _sim_files(tmp_path)
    info = pd.read_csv(files["inst_info"], sep="\t", dtype=str)
    info.iloc[2:].to_csv(tmp_path / "partial.tsv", sep="\t", index=False)
    res = read_l1000(files["gctx"], inst_info=tmp_path / "partial.tsv")
    led = res.ledger.to_frame().set_index("id")
    assert (led.loc[info["inst_id"].iloc[:2], "reason"] == "missing_metadata").all()
    assert len(led) == sim.data.shape[1]


def test_metadata_missing_pert_dose_is_an_error(tmp_path):
    _, files = _sim_files(tmp_path)
    info = pd.read_csv(files["inst_info"], sep="\t", dtype=str).drop(columns=["pert_dose"])
    info.to_csv(tmp_path / "bad.tsv", sep="\t", index=False)
    with pytest.raises(SchemaError, match=r"'pert_dose'.*bad\.tsv"):
        read_l1000(files["gctx"], inst_info=tmp_path / "bad.tsv")


def test_unknown_dose_unit_is_an_error(tmp_path):
    _, files = _sim_files(tmp_path)
    info = pd.read_csv(files["inst_info"], sep="\t", dtype=str)
    info.loc[info["pert_type"] == "trt_cp", "pert_dose_unit"] = "mg/kg"
    info.to_csv(tmp_path / "bad.tsv", sep="\t", index=False)
    with pytest.raises(UnitError, match=r"unknown dose unit.*mg/kg"):
        read_l1000(files["gctx"], inst_info=tmp_path / "bad.tsv")


def test_duplicate_sample_ids_are_an_error(tmp_path):
    _, files = _sim_files(tmp_path)
    info = pd.read_csv(files["inst_info"], sep="\t", dtype=str)
    info = pd.concat([info, info.iloc[[0]]])
    info.to_csv(tmp_path / "dup.tsv", sep="\t", index=False)
    with pytest.raises(SchemaError, match="unique.*" + re.escape(info["inst_id"].iloc[0])):
        read_l1000(files["gctx"], inst_info=tmp_path / "dup.tsv")


def test_truncated_gctx_is_a_format_error(tmp_path):
    _, files = _sim_files(tmp_path)
    data = files["gctx"].read_bytes()
    bad = tmp_path / "truncated.gctx"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="truncated"):
        read_l1000(bad)


def test_gct_header_body_mismatch_is_a_format_error(tmp_path):
    src = shared_path(*PLATE)
    lines = src.read_text().splitlines(keepends=True)
    bad = tmp_path / "short.gct"
    bad.write_text("".join(lines[:-1]))  # one data row fewer than the header says
    with pytest.raises(FormatError, match=r"short\.gct"):
        read_l1000(bad)


def test_registry_lists_l1000():
    assert "l1000" in list_sources()["name"].tolist()
    res = get_source("l1000").ingest(level3=shared_path(*PLATE))
    assert res.samples.n_obs == 354
    with pytest.raises(KeyError, match="unknown source"):
        get_source("nope")


runner = CliRunner()


def test_cli_ingest_prints_ledger_and_writes(tmp_path):
    out = tmp_path / "samples.h5ad"
    r = runner.invoke(
        app,
        [
            "ingest",
            "l1000",
            "--level3",
            str(shared_path(*PLATE)),
            "--out",
            str(out),
            "--ledger",
            str(tmp_path / "ledger.tsv"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "positive_control" in r.output and "23" in r.output
    assert out.exists()
    assert len(pd.read_csv(tmp_path / "ledger.tsv", sep="\t")) == 377


def _bad_inputs(tmp_path: Path, case: str) -> tuple[list[str], str]:
    """CLI arguments for one kind of bad input, and a snippet the error must contain."""
    _, files = _sim_files(tmp_path)
    info = pd.read_csv(files["inst_info"], sep="\t", dtype=str)
    bad_info = tmp_path / "bad.tsv"
    if case == "truncated_gctx":
        data = files["gctx"].read_bytes()
        bad = tmp_path / "truncated.gctx"
        bad.write_bytes(data[: len(data) // 2])
        return ["--level3", str(bad)], "truncated"
    if case == "gct_counts":
        lines = shared_path(*PLATE).read_text().splitlines(keepends=True)
        bad = tmp_path / "short.gct"
        bad.write_text("".join(lines[:-1]))
        return ["--level3", str(bad)], "short.gct"
    if case == "missing_pert_dose":
        info = info.drop(columns=["pert_dose"])
        snippet = "pert_dose"
    elif case == "unknown_unit":
        info.loc[info["pert_type"] == "trt_cp", "pert_dose_unit"] = "mg/kg"
        snippet = "mg/kg"
    else:  # duplicate ids
        info = pd.concat([info, info.iloc[[0]]])
        snippet = "unique"
    info.to_csv(bad_info, sep="\t", index=False)
    return ["--level3", str(files["gctx"]), "--inst-info", str(bad_info)], snippet


@pytest.mark.parametrize(
    "case",
    ["truncated_gctx", "gct_counts", "missing_pert_dose", "unknown_unit", "duplicate_ids"],
)
def test_cli_bad_input_errors_and_leaves_no_output(tmp_path, case):
    args, snippet = _bad_inputs(tmp_path, case)
    out = tmp_path / "out" / "samples.h5ad"
    r = runner.invoke(app, ["ingest", "l1000", *args, "--out", str(out)])
    assert r.exit_code == 2
    assert "error" in r.output
    assert snippet in r.output.replace("\n", "")
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no temp file left


def test_gctx_roundtrip_through_adapter(tmp_path):
    """The adapter reads the same plate identically from GCT and from GCTX."""
    src = shared_path(*PLATE)
    gct = read_l1000(src)
    from perturbridge.io import read_gct

    g = read_gct(src)
    write_gctx(tmp_path / "plate.gctx", g.data, row_meta=g.row_meta, col_meta=g.col_meta)
    gctx = read_l1000(tmp_path / "plate.gctx")
    np.testing.assert_allclose(np.asarray(gctx.samples.X), np.asarray(gct.samples.X))
    pd.testing.assert_frame_equal(gctx.ledger.to_frame(), gct.ledger.to_frame())
    shutil.rmtree(tmp_path)

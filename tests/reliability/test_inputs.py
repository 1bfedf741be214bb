"""Reliability of the inputs: strict parsing (issue 13, items 8 and 9).

Each test writes a bad input from a good fixture, reproduces the fault and records what
was expected and what happened with the ``fault`` fixture. The rule under test: a value
that is present but cannot be parsed is an error naming the file, the column and the
first offending values; a missing value (empty, NA, ``-666`` in L1000) is a drop with a
ledger reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perturbridge.errors import FormatError, UnitError
from perturbridge.simulate import simulate_l1000
from perturbridge.sources import L1000Tables, read_l1000
from perturbridge.units import dose_to_uM, parse_dose, parse_time, time_to_h


def _l1000(tmp_path: Path) -> tuple[dict[str, Path], pd.DataFrame]:
    sim = simulate_l1000(
        n_genes=30, n_compounds=3, n_replicates=2, cell_lines=("A375",), times_h=(24,), seed=3
    )
    files = sim.write(tmp_path)
    info = pd.read_csv(files["inst_info"], sep="\t", dtype=str, keep_default_na=False)
    return files, info


def _first_compound(info: pd.DataFrame) -> int:
    return int(np.flatnonzero(info["pert_type"] == "trt_cp")[0])


def _outcome(call) -> str:  # type: ignore[no-untyped-def]
    """What a call did, in words: the error it raised or what it kept and dropped."""
    try:
        res = call()
    except Exception as err:  # the table records whatever happened
        text = re.sub(r"/\S*/", "", str(err))  # file names without their folders
        return f"{type(err).__name__}: {text[:160]}"
    if not hasattr(res, "ledger"):
        return f"ok: {res!r}"[:160]
    led = res.ledger.to_frame().query("stage == 'ingest' and status == 'dropped'")
    return f"ok, {res.samples.n_obs} samples, drops {led['reason'].value_counts().to_dict()}"


@pytest.mark.parametrize(
    ("column", "value"),
    [("pert_time", "twenty-four"), ("pert_time", "24,0"), ("pert_dose", "0,37")],
)
def test_l1000_unparseable_time_or_dose_is_an_error(tmp_path, fault, column, value):
    files, info = _l1000(tmp_path)
    row = _first_compound(info)
    info.loc[row, column] = value
    bad = tmp_path / "inst_info_bad.tsv"
    info.to_csv(bad, sep="\t", index=False)
    call = lambda: read_l1000(files["gctx"], tables=L1000Tables(inst_info=bad))  # noqa: E731
    fault(
        f"L1000 {column}={value!r}",
        "error naming file, column and value",
        _outcome(call),
    )
    with pytest.raises(FormatError, match=rf"inst_info_bad\.tsv.*'{column}'.*{value}"):
        call()


def test_l1000_missing_time_is_still_a_ledger_drop(tmp_path):
    files, info = _l1000(tmp_path)
    row = _first_compound(info)
    info.loc[row, "pert_time"] = "-666"
    bad = tmp_path / "inst_info_missing.tsv"
    info.to_csv(bad, sep="\t", index=False)
    res = read_l1000(files["gctx"], tables=L1000Tables(inst_info=bad))
    led = res.ledger.to_frame().query("stage == 'ingest'").set_index("id")
    assert led.loc[info.loc[row, "inst_id"], "reason"] == "missing_time"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: dose_to_uM(["0,5"], "uM", where="t.csv"), r"t\.csv.*'0,5'"),
        (lambda: time_to_h(["twenty-four"], "h", where="t.csv"), r"t\.csv.*'twenty-four'"),
        (lambda: parse_dose(["0,5 uM"], where="t.csv"), r"t\.csv.*'0,5 uM'"),
        (lambda: parse_time(["24,0h"], where="t.csv"), r"t\.csv.*'24,0h'"),
    ],
    ids=["dose_to_uM", "time_to_h", "parse_dose", "parse_time"],
)
def test_unit_parsers_refuse_words_and_decimal_commas(fault, call, match):
    fault("unit parser, text or decimal comma", "UnitError naming the value", _outcome(call))
    with pytest.raises(UnitError, match=match):
        call()


@pytest.mark.parametrize("value", ["-1.0", "0", "0.0"])
def test_l1000_zero_or_negative_compound_dose_is_an_error(tmp_path, fault, value):
    files, info = _l1000(tmp_path)
    row = _first_compound(info)
    info.loc[row, "pert_dose"] = value
    bad = tmp_path / "inst_info_bad.tsv"
    info.to_csv(bad, sep="\t", index=False)
    call = lambda: read_l1000(files["gctx"], tables=L1000Tables(inst_info=bad))  # noqa: E731
    fault(f"L1000 trt_cp pert_dose={value}", "error naming file, column, sample", _outcome(call))
    with pytest.raises(
        FormatError,
        match=rf"inst_info_bad\.tsv.*'pert_dose'.*zero or negative.*{info.loc[row, 'inst_id']}",
    ):
        call()


def test_l1000_vehicle_dose_zero_is_fine(tmp_path):
    files, info = _l1000(tmp_path)
    vehicles = info["pert_type"] == "ctl_vehicle"
    info.loc[vehicles, "pert_dose"] = "0"
    info.loc[vehicles, "pert_dose_unit"] = "um"
    good = tmp_path / "inst_info_zero_vehicle.tsv"
    info.to_csv(good, sep="\t", index=False)
    res = read_l1000(files["gctx"], tables=L1000Tables(inst_info=good))
    obs = res.samples.obs
    assert (obs.loc[obs["is_control"], "pert_dose_uM"] == 0).all()
    assert obs["is_control"].sum() == vehicles.sum()


def test_l1000_qc_pass_other_than_0_1_true_false_is_an_error(tmp_path, fault):
    files, info = _l1000(tmp_path)
    info["qc_pass"] = "1"
    row = _first_compound(info)
    info.loc[row, "qc_pass"] = "maybe"
    bad = tmp_path / "inst_info_bad.tsv"
    info.to_csv(bad, sep="\t", index=False)
    call = lambda: read_l1000(files["gctx"], tables=L1000Tables(inst_info=bad))  # noqa: E731
    fault("L1000 qc_pass='maybe'", "error naming file, column and value", _outcome(call))
    with pytest.raises(FormatError, match=r"inst_info_bad\.tsv.*'qc_pass'.*'maybe'"):
        call()


@pytest.mark.parametrize("fail", ["0", "False", "FALSE", "false", "0.0"])
def test_l1000_qc_pass_spellings(tmp_path, fail):
    files, info = _l1000(tmp_path)
    info["qc_pass"] = np.where(np.arange(len(info)) % 2, "TRUE", "1")
    row = _first_compound(info)
    info.loc[row, "qc_pass"] = fail
    info.loc[row + 1, "qc_pass"] = "-666"  # missing: no QC verdict, kept
    good = tmp_path / "inst_info_qc.tsv"
    info.to_csv(good, sep="\t", index=False)
    res = read_l1000(files["gctx"], tables=L1000Tables(inst_info=good))
    led = res.ledger.to_frame().query("stage == 'ingest'").set_index("id")
    assert led.loc[info.loc[row, "inst_id"], "reason"] == "qc_fail"
    assert (led["reason"] == "qc_fail").sum() == 1


def test_truncated_metadata_table_is_an_error(tmp_path, fault):
    files, _ = _l1000(tmp_path)
    text = files["inst_info"].read_text()
    last = text.rstrip("\n").split("\n")[-1]
    cut = text.rstrip("\n")[: -len(last)] + last[: last.index("\t24\t") + 2]  # "24" → "2"
    bad = tmp_path / "inst_info_cut.tsv"
    bad.write_text(cut)
    n_lines = cut.count("\n") + 1
    call = lambda: read_l1000(files["gctx"], tables=L1000Tables(inst_info=bad))  # noqa: E731
    fault("metadata table cut mid-row", "error naming file and line", _outcome(call))
    with pytest.raises(
        FormatError, match=rf"inst_info_cut\.tsv.*fewer fields.*line {n_lines} has 11.*cut"
    ):
        call()


def test_unterminated_quote_in_metadata_table_is_an_error(tmp_path, fault):
    files, _ = _l1000(tmp_path)
    text = files["inst_info"].read_text().rstrip("\n")
    bad = tmp_path / "inst_info_quote.tsv"
    head, _, last = text.rpartition("\n")
    bad.write_text(head + "\n" + last.replace("\tDMSO", '\t"DMSO', 1) + "\n")
    call = lambda: read_l1000(files["gctx"], tables=L1000Tables(inst_info=bad))  # noqa: E731
    fault("metadata table, unterminated quote", "error naming file and line", _outcome(call))
    with pytest.raises(FormatError, match=r"inst_info_quote\.tsv.*quote.*line"):
        call()


@pytest.fixture(scope="module")
def moabox(tmp_path_factory):
    from perturbridge.simulate.upstream import write_moabox

    return write_moabox(
        tmp_path_factory.mktemp("moabox"), n_genes=40, n_batches=1, n_compounds_per_batch=2, seed=1
    )


def test_cli_repeated_input_accumulates_files(tmp_path, fault, moabox):
    from typer.testing import CliRunner

    from perturbridge.cli import app

    counts = [p for k, p in moabox.files.items() if k.startswith("counts_")]
    assert len(counts) == 3
    args = ["ingest", "drugseq_moabox", "--out", str(tmp_path / "s.h5ad")]
    args += ["--input", f"metadata={moabox.files['metadata']}"]
    for c in counts:
        args += ["--input", f"counts={c}"]
    res = CliRunner().invoke(app, [*args, "--ledger", str(tmp_path / "ledger.tsv")])
    led = pd.read_csv(tmp_path / "ledger.tsv", sep="\t") if res.exit_code == 0 else None
    n_missing = 0 if led is None else int((led["reason"] == "missing_counts").sum())
    fault(
        "ingest --input counts=… three times",
        "the three files read",
        f"exit {res.exit_code}, {n_missing} missing_counts",
    )
    assert res.exit_code == 0, res.output
    assert n_missing == 0


def test_cli_repeated_single_file_input_is_refused(tmp_path, fault, moabox):
    from typer.testing import CliRunner

    from perturbridge.cli import app

    counts = [p for k, p in moabox.files.items() if k.startswith("counts_")]
    args = ["ingest", "drugseq_moabox", "--out", str(tmp_path / "s.h5ad")]
    args += ["--input", f"metadata={moabox.files['metadata']}"]
    args += ["--input", f"metadata={moabox.files['metadata']}"]
    args += ["--input", f"counts={counts[0]}"]
    res = CliRunner().invoke(app, args)
    fault(
        "ingest --input metadata=… twice",
        "refused, naming the input",
        f"exit {res.exit_code}: {' '.join(res.output.split())[:120]}",
    )
    assert res.exit_code != 0
    assert "metadata" in res.output and "one file" in res.output
    assert not (tmp_path / "s.h5ad").exists()


def _bad_counts(tmp_path: Path, moabox, change) -> tuple[list[str], str]:  # type: ignore[no-untyped-def]
    """Args of ``ingest drugseq_moabox`` with the first count table changed by ``change``
    (a function of the genes × wells table), and the well it changed."""
    counts = sorted(p for k, p in moabox.files.items() if k.startswith("counts_"))
    table = pd.read_csv(counts[0], sep="\t", index_col=0)
    well = str(table.columns[3])
    change(table, well)
    bad = tmp_path / counts[0].name
    table.to_csv(bad, sep="\t")
    return [str(moabox.files["metadata"]), str(bad), *map(str, counts[1:])], well


def _ingest(files: list[str]):  # type: ignore[no-untyped-def]
    from perturbridge.sources.drugseq_moabox import read_drugseq_moabox

    return read_drugseq_moabox(files[0], files[1:])


def _set(value: float):  # type: ignore[no-untyped-def]
    def change(table: pd.DataFrame, well: str) -> None:
        table[well] = table[well].astype(float)
        table.iloc[2, table.columns.get_loc(well)] = value

    return change


@pytest.mark.parametrize(
    ("value", "what"),
    [(-3.0, "negative"), (2.5, "not whole"), (np.nan, "missing"), (1e300, "2\\*\\*53")],
    ids=["negative", "non_integer", "nan", "huge"],
)
def test_counts_that_are_not_counts_are_refused_at_ingest(tmp_path, fault, moabox, value, what):
    files, well = _bad_counts(tmp_path, moabox, _set(value))
    fault(
        f"count {value} in a well",
        "ingest error naming the well id",
        _outcome(lambda: _ingest(files)),
    )
    with pytest.raises(ValueError, match=rf"{well}.*{what}|{what}.*{well}"):
        _ingest(files)


def test_all_zero_well_is_an_empty_sample_drop(tmp_path, fault, moabox):
    def zero(table: pd.DataFrame, well: str) -> None:
        table[well] = 0

    files, well = _bad_counts(tmp_path, moabox, zero)
    fault("a well with every count 0", "ledger drop empty_sample", _outcome(lambda: _ingest(files)))
    res = _ingest(files)
    led = res.ledger.to_frame().query("stage == 'ingest'").set_index("id")
    assert led.loc[well, "reason"] == "empty_sample"
    assert well not in res.samples.obs_names
    res.ledger.check_accounts_for(led.index, stage="ingest")


def test_build_samples_names_sample_ids_of_bad_counts():
    from perturbridge.samples import build_samples

    obs = pd.DataFrame(index=["w1", "w2"])
    var = pd.DataFrame({"symbol": ["A", "B"]}, index=["g1", "g2"])
    with pytest.raises(ValueError, match=r"no counts at all.*'w2'"):
        build_samples(np.array([[1.0, 2.0], [0.0, 0.0]]), obs, var, value_kind="counts")
    with pytest.raises(ValueError, match=r"'w1'.*not whole numbers.*allow_non_integer"):
        build_samples(np.array([[1.5, 2.0], [1.0, 0.0]]), obs, var, value_kind="counts")


def test_de_names_sample_ids_when_it_refuses_an_empty_sample(fault, moabox):
    from scipy import sparse

    from perturbridge.de import limma_voom

    files = [str(moabox.files["metadata"])]
    files += sorted(str(p) for k, p in moabox.files.items() if k.startswith("counts_"))
    samples = _ingest(files).samples
    x = sparse.csr_matrix(samples.X).toarray()
    x[8] = 0  # emptied after ingest, which would have dropped it
    samples.X = sparse.csr_matrix(x)
    well = samples.obs_names[8]
    call = lambda: limma_voom(samples)  # noqa: E731
    fault("de on a sample with no counts", "error naming the sample id", _outcome(call))
    with pytest.raises(ValueError, match=well):
        call()

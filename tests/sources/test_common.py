"""Shared adapter helpers (perturbridge.sources._common): values, columns, triage, counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perturbridge.errors import FormatError, SchemaError, UnitError
from perturbridge.ledger import Ledger
from perturbridge.sources._common import (
    DATASET_FACTS,
    DatasetFacts,
    Triage,
    doses_uM,
    is_missing,
    parse_bools,
    parse_hours,
    parse_numbers,
    record_genes,
    replicate_rank,
    resolve_columns,
    spike_in_drops,
    spike_in_mask,
    split_quantity,
    time_to_hours,
    well_from_row_col,
)
from perturbridge.sources._tables import read_table, read_wide_counts, require_file


def test_parse_numbers_keeps_missing_and_names_bad_values():
    s = pd.Series(["1", "", "NA", "2.5e-1", "-666"], index=list("abcde"))
    np.testing.assert_array_equal(
        parse_numbers(s, column="c", where="f"), [1, np.nan, np.nan, 0.25, np.nan]
    )
    with pytest.raises(
        FormatError, match=r"f: column 'dose'.*2 value.*'1,5'.*'x'.*rows \['b', 'c'\]"
    ):
        parse_numbers(pd.Series(["1", "1,5", "x"], index=list("abc")), column="dose", where="f")


@pytest.mark.parametrize(
    ("text", "value", "unit"),
    [("1000.0nM", 1000.0, "nM"), ("24h", 24.0, "h"), ("0.0625%", 0.0625, "%"),
     (" 10 uM ", 10.0, "uM"), ("3", 3.0, "d"), ("1e-2µM", 0.01, "µM")],
)  # fmt: skip
def test_split_quantity(text, value, unit):
    v, u = split_quantity(pd.Series([text]), column="c", where="f", default_unit="d")
    assert v[0] == pytest.approx(value) and u[0] == unit


def test_split_quantity_names_bad_values():
    with pytest.raises(FormatError, match=r"'pert_dose'.*'nM1000'.*'ten nM'"):
        split_quantity(pd.Series(["1nM", "nM1000", "ten nM"]), column="pert_dose", where="f")


def test_time_to_hours_and_unknown_unit():
    v, u = split_quantity(pd.Series(["24h", "30 min", "2d", "6", ""]), column="t", where="f")
    np.testing.assert_allclose(time_to_hours(v, u, column="t", where="f"), [24, 0.5, 48, 6, np.nan])
    v, u = split_quantity(pd.Series(["3 weeks"]), column="t", where="f")
    with pytest.raises(UnitError, match=r"f column 't'.*weeks"):
        time_to_hours(v, u, column="t", where="f")


def test_parse_hours_is_split_quantity_then_hours():
    times = pd.Series(["24h", "30 min", "6", "NA"])
    np.testing.assert_allclose(parse_hours(times, column="t", where="f"), [24, 0.5, 6, np.nan])
    with pytest.raises(UnitError, match=r"f column 't'.*weeks"):
        parse_hours(pd.Series(["3 weeks"]), column="t", where="f")


def test_doses_uM_of_treated_vehicle_and_others():
    values = np.array([1000.0, 5.0, np.nan, 2.0, 0.1])
    treated = np.array([True, True, True, False, False])
    vehicle = np.array([False, False, False, True, False])
    got = doses_uM(values, "nM", treated=treated, vehicle=vehicle, where="f column 'unit'")
    np.testing.assert_allclose(got, [1.0, 0.005, np.nan, 0.0, np.nan])
    units = np.array(["uM", "mM", "nM", "%", "nM"], dtype=object)  # the vehicle's % is not read
    got = doses_uM(values, units, treated=treated, vehicle=vehicle, where="f column 'unit'")
    np.testing.assert_allclose(got, [1000.0, 5000.0, np.nan, 0.0, np.nan])
    with pytest.raises(UnitError, match=r"f column 'unit'.*furlong"):
        doses_uM(
            values[:1], "furlong", treated=treated[:1], vehicle=vehicle[:1], where="f column 'unit'"
        )


def test_spike_in_drops_by_id_or_symbol():
    ((reason, (mask, detail)),) = spike_in_drops(["ENSG1", "ERCC-00002", "G3"]).items()
    assert (reason, detail, mask.tolist()) == ("spike_in", "ERCC spike-in", [False, True, False])
    drops = spike_in_drops(["G1", "G2", "G3"], ["ERCC-00002", "ERCC1", "MT-ND1"])
    assert drops["spike_in"][0].tolist() == [True, False, False]


def test_bools_wells_spikes_missing():
    assert parse_bools(
        pd.Series(["True", "false", "1", "0", ""]), column="c", where="f"
    ).tolist() == [True, False, True, False, False]
    with pytest.raises(FormatError, match="'maybe'"):
        parse_bools(pd.Series(["maybe"]), column="c", where="f")
    wells = well_from_row_col(
        pd.Series(["1", "16", "C"]), pd.Series(["1", "24", "7"]), where="f", columns=("r", "c")
    )
    assert wells.tolist() == ["A01", "P24", "C07"]
    with pytest.raises(FormatError, match=r"column 'r'.*'0'"):
        well_from_row_col(pd.Series(["0"]), pd.Series(["1"]), where="f", columns=("r", "c"))
    assert spike_in_mask(["ERCC-00002", "ERCC1", "ERCC-00171.1", "ENSG1"]).tolist() == [
        True,
        False,
        True,
        False,
    ]
    assert is_missing(["", "nan", "None", "x", None, np.nan]).tolist() == [
        True,
        True,
        True,
        False,
        True,
        True,
    ]


def test_resolve_columns_names_file_and_spellings():
    aliases = {"dose": ("concentration", "treatment_dose"), "time": ("timepoint",)}
    found = resolve_columns(
        ["treatment_dose", "timepoint"], aliases, required=("dose",), where="f", what="w"
    )
    assert found == {"dose": "treatment_dose", "time": "timepoint"}
    with pytest.raises(
        SchemaError, match=r"'concentration' in meta\.txt.*\['dose'\].*treatment_dose"
    ):
        resolve_columns(["x"], aliases, required=("dose",), where="meta.txt", what="w")


def test_triage_first_reason_wins_and_ledger_accounts():
    t = Triage(pd.Index(["a", "b", "c", "d"]))
    t.drop(np.array([True, False, False, False]), "empty_well", "EMPTY")
    t.drop(np.array([True, True, False, False]), "positive_control", np.array(["x", "y", "z", "w"]))
    led = Ledger()
    t.record(led, kept_detail=np.array(["", "", "vehicle", "compound"]))
    led.check_accounts_for(["a", "b", "c", "d"], stage="ingest")
    frame = led.to_frame().set_index("id")
    assert frame.loc["a", "reason"] == "empty_well"
    assert (frame.loc["b", "reason"], frame.loc["b", "detail"]) == ("positive_control", "y")
    assert frame.loc["d", "detail"] == "compound"
    kept = record_genes(
        led, pd.Index(["g1", "ERCC-00002"]), drops={"spike_in": (np.array([False, True]), "ERCC")}
    )
    assert kept.tolist() == [True, False]
    led.check_accounts_for(["g1", "ERCC-00002"], stage="ingest_genes")


def test_replicate_rank():
    obs = pd.DataFrame({"k": ["a", "a", "b", "a"], "plate": ["2", "1", "1", "3"]})
    assert replicate_rank(obs, by=["k"], order=["plate"]).tolist() == ["2", "1", "1", "3"]
    # by default: the wells of a condition numbered by plate, then well
    obs = pd.DataFrame(
        {
            "cell_name": ["A", "A", "A", "B"],
            "compound_id_source": "c",
            "pert_dose_uM": 1.0,
            "pert_time_h": 24.0,
            "plate": ["P1", "P1", "P0", "P0"],
            "well": ["B01", "A02", "C03", "A01"],
        }
    )
    assert replicate_rank(obs).tolist() == ["3", "2", "1", "1"]


def test_files_and_tables(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"the thing not found: .*x\.csv \(found nothing"):
        require_file(tmp_path / "x.csv", what="the thing")
    with pytest.raises(FileNotFoundError, match="found a folder"):
        require_file(tmp_path, what="the thing")
    (tmp_path / "t.csv").write_text("a,b\n1,\n")
    assert read_table(tmp_path / "t.csv", what="t").to_dict("list") == {"a": ["1"], "b": [""]}
    (tmp_path / "bad.csv").write_text('a,b\n"1,2\n')
    with pytest.raises(FormatError, match=r"bad\.csv: cannot parse the t"):
        read_table(tmp_path / "bad.csv", what="t")


@pytest.mark.parametrize("style", ["r", "full", "parquet"])
def test_read_wide_counts_layouts(tmp_path, style):
    df = pd.DataFrame({"s1": [1, 0, 3], "s2": [0, 5, 0], "s3": [7, 0, 1]}, index=["g1", "g2", "g3"])
    if style == "r":
        path = tmp_path / "c.tsv"
        with open(path, "w") as fh:
            fh.write("\t".join(df.columns) + "\n")
            df.to_csv(fh, sep="\t", header=False)
    elif style == "full":
        path = tmp_path / "c.csv"
        df.rename_axis("gene_id").to_csv(path)
    else:
        path = tmp_path / "c.parquet"
        df.rename_axis("gene_id").reset_index().to_parquet(path, index=False)
    wc = read_wide_counts(path, what="counts", samples=["s3", "s1"], chunk_size=1)
    assert wc.genes.tolist() == ["g1", "g2", "g3"]
    np.testing.assert_array_equal(wc.x.toarray(), df[["s3", "s1"]].to_numpy().T)
    with pytest.raises(SchemaError, match=r"'s9'.*missing"):
        read_wide_counts(path, what="counts", samples=["s9"])


def test_dataset_facts_are_set_where_unknown_with_their_source():
    facts = DatasetFacts.human("x", "nucleus", "primary cell", tissue=("blood", "UBERON:0000178"))
    assert facts.values["disease"] == "normal"  # primary cells: of donors of no disease
    obs = pd.DataFrame({"sex": ["male", None], "suspension_type": ["cell", ""]}, index=["a", "b"])
    out = facts.apply(obs)
    assert out["suspension_type"].tolist() == ["cell", "nucleus"]  # a given value stays
    assert out["tissue"].tolist() == ["blood", "blood"]
    assert out["sex"].tolist() == ["male", None]  # not a fact: left to the schema
    source = out["biology_source"].astype(str).tolist()
    assert source[0].count("dataset:x") == 6  # every fact but suspension_type
    assert "suspension_type=dataset:x" in source[1]
    assert DATASET_FACTS["sciplex"].values["suspension_type"] == "nucleus"
    assert set(DATASET_FACTS) >= {"cigs", "dilimap", "gdpx2", "op3", "sciplex", "tahoe", "vcpi"}

"""The ledger: every id once per stage, drops need reasons, summaries count right."""

from __future__ import annotations

import pytest

from perturbridge.ledger import LEDGER_COLUMNS, Ledger


def test_keep_drop_summary_and_frame():
    led = Ledger()
    led.keep(["a", "b", "c"], stage="ingest")
    led.drop(["d"], stage="ingest", reason="positive_control", detail="trt_poscon")
    led.drop(["e", "f"], stage="ingest", reason="missing_dose", detail=["x", "y"])
    df = led.to_frame()
    assert tuple(df.columns) == LEDGER_COLUMNS
    assert len(led) == 6
    s = led.summary().set_index(["status", "reason"])["n"].to_dict()
    assert s == {
        ("kept", ""): 3,
        ("dropped", "missing_dose"): 2,
        ("dropped", "positive_control"): 1,
    }
    assert list(led.ids(status="dropped")) == ["d", "e", "f"]
    assert df.set_index("id").loc["f", "detail"] == "y"


def test_drop_needs_reason_and_matching_details():
    led = Ledger()
    with pytest.raises(ValueError, match="needs a reason"):
        led.drop(["a"], stage="ingest", reason="")
    with pytest.raises(ValueError, match="detail has 1 entries for 2 ids"):
        led.drop(["a", "b"], stage="ingest", reason="qc_fail", detail=["only one"])


def test_accounting_check_names_missing_and_duplicates():
    led = Ledger()
    led.keep(["a", "b"], stage="ingest")
    led.check_accounts_for(["a", "b"], stage="ingest")
    with pytest.raises(ValueError, match=r"does not account for 1 ids: \['c'\]"):
        led.check_accounts_for(["a", "b", "c"], stage="ingest")
    led.drop(["a"], stage="ingest", reason="qc_fail")
    with pytest.raises(ValueError, match=r"records ids twice: \['a'\]"):
        led.check_accounts_for(["a", "b"], stage="ingest")


def test_extend_and_roundtrip_through_frame():
    a, b = Ledger(), Ledger()
    a.keep(["x"], stage="ingest")
    b.drop(["y"], stage="de", reason="no_matched_control")
    a.extend(b)
    again = Ledger(a.to_frame())
    assert again.to_frame().equals(a.to_frame())
    with pytest.raises(ValueError, match="lacks columns"):
        Ledger(a.to_frame().drop(columns=["reason"]))

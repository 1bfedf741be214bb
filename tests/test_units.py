"""Dose and time unit conversion."""

from __future__ import annotations

import numpy as np
import pytest

from perturbridge.errors import UnitError
from perturbridge.units import (
    dose_to_uM,
    normalize_unit,
    parse_dose,
    parse_quantity,
    parse_time,
    time_to_h,
)


def test_dose_units_to_uM():
    out = dose_to_uM([10, 500, 1, 2, 3], ["um", "nM", "µM", "mM", "μm"])
    np.testing.assert_allclose(out, [10, 0.5, 1, 2000, 3])
    assert np.isnan(dose_to_uM(["NA"], "um")[0])
    with pytest.raises(UnitError, match=r"plate\.csv: 1 values are not numbers.*'-x'"):
        dose_to_uM(["-x"], "um", where="plate.csv")


def test_time_units_to_hours():
    np.testing.assert_allclose(
        time_to_h([24, 30, 2, 90], ["h", "min", "d", "m"]), [24, 0.5, 48, 1.5]
    )


def test_unknown_units_name_the_values_and_where():
    with pytest.raises(UnitError, match=r"plate\.csv: unknown dose unit.*'mg/kg'.*1 rows"):
        dose_to_uM([1, 2], ["um", "mg/kg"], where="plate.csv")
    with pytest.raises(UnitError, match="unknown time unit"):
        time_to_h([1], ["fortnight"])


def test_ignored_rows_skip_the_unit_check():
    out = dose_to_uM([-666, 1], ["-666", "um"], ignore=[True, False])
    assert out[1] == 1.0


def test_normalize_unit():
    assert normalize_unit(" µ M ") == "um"


@pytest.mark.parametrize(
    ("text", "value", "unit"),
    [
        ("1000.0nM", 1000.0, "nM"),
        ("24h", 24.0, "h"),
        ("24 h", 24.0, "h"),
        ("10 uM", 10.0, "uM"),
        ("0.5%", 0.5, "%"),
        (" 1e-3 mM ", 1e-3, "mM"),
        (".5 µg/ml", 0.5, "µg/ml"),
        ("-666", -666.0, ""),
    ],
)
def test_parse_quantity_splits_number_and_unit(text, value, unit):
    nums, units = parse_quantity([text])
    assert nums[0] == pytest.approx(value)
    assert units[0] == unit


def test_parse_quantity_missing_values_and_numbers():
    nums, units = parse_quantity([None, float("nan"), "", "NA", 3, 2.5])
    assert np.isnan(nums[:4]).all()
    assert nums[4:].tolist() == [3.0, 2.5]
    assert units.tolist() == [""] * 6


def test_parse_quantity_names_text_that_is_not_a_quantity():
    with pytest.raises(UnitError, match=r"meta\.csv: 3 values are not a number.*'ten uM'"):
        parse_quantity(["ten uM", "1 uM", "high", "ten uM"], where="meta.csv")


def test_parse_dose_molar_micro_spellings_and_percent():
    out = parse_dose(["1000.0nM", "10 uM", "10 µM", "10 μM", "2 mM", "1 M", "500 pM", "0.5%"])
    np.testing.assert_allclose(
        out["pert_dose_uM"].to_numpy()[:7], [1.0, 10, 10, 10, 2000, 1e6, 5e-4]
    )
    assert np.isnan(out["pert_dose_uM"].iloc[7])
    assert out["pert_dose_percent"].iloc[7] == 0.5
    assert out["pert_dose_percent"].iloc[:7].isna().all()
    assert out["unit"].tolist()[0] == "nM"


def test_parse_dose_mass_concentrations_need_a_molecular_weight():
    # 500 g/mol: 1 ug/mL = 1 mg/L = 2 µM; 1 mg/mL = 2000 µM; 100 ng/mL = 0.2 µM
    vals = ["1 ug/mL", "1 µg/ml", "1 mg/L", "1 mg/mL", "100 ng/mL", "1 uM"]
    out = parse_dose(vals, molecular_weight=[500.0] * 5 + [np.nan])
    np.testing.assert_allclose(out["pert_dose_uM"], [2, 2, 2, 2000, 0.2, 1])
    with pytest.raises(UnitError, match=r"mass concentration.*'ng/mL'.*molecular weight.*\[1\]"):
        parse_dose(["1 uM", "100 ng/mL"], molecular_weight=[300.0, np.nan])
    with pytest.raises(UnitError, match="molecular weight"):
        dose_to_uM([1], "mg/ml")
    np.testing.assert_allclose(dose_to_uM([1], "mg/ml", molecular_weight=250.0), [4000.0])
    with pytest.raises(UnitError, match=r"must be > 0"):
        parse_dose(["1 ug/mL"], molecular_weight=0.0)


def test_dose_to_uM_refuses_percent():
    with pytest.raises(UnitError, match=r"volume fraction.*parse_dose"):
        dose_to_uM([0.1], "%")


def test_parse_dose_unknown_and_missing_units():
    with pytest.raises(UnitError, match=r"d\.csv: unknown dose unit.*'mg/kg'.*1 rows"):
        parse_dose(["1 mg/kg", "1 uM"], where="d.csv")
    with pytest.raises(UnitError, match=r"no unit.*default_unit"):
        parse_dose(["10", "1 uM"])
    out = parse_dose(["10", "1 uM", None], default_unit="nM")
    np.testing.assert_allclose(out["pert_dose_uM"].to_numpy()[:2], [0.01, 1.0])
    assert np.isnan(out["pert_dose_uM"].iloc[2])


def test_parse_dose_with_separate_units_and_ignore():
    out = parse_dose([10, -666], ["nM", "-666"], ignore=[False, True])
    assert out["pert_dose_uM"].iloc[0] == pytest.approx(0.01)
    assert np.isnan(out["pert_dose_uM"].iloc[1])


def test_parse_time_spellings():
    out = parse_time(["24h", "24 h", "6 hr", "48 hours", "30 min", "2 d", "90 s"])
    np.testing.assert_allclose(out, [24, 24, 6, 48, 0.5, 48, 0.025])
    np.testing.assert_allclose(parse_time([6, 24], "h"), [6, 24])
    with pytest.raises(UnitError, match=r"unknown time unit.*'weeks'"):
        parse_time(["2 weeks"])

"""Dose and time unit conversion."""

from __future__ import annotations

import numpy as np
import pytest

from perturbridge.errors import UnitError
from perturbridge.units import dose_to_uM, normalize_unit, time_to_h


def test_dose_units_to_uM():
    out = dose_to_uM([10, 500, 1, 2, 3], ["um", "nM", "µM", "mM", "μm"])
    np.testing.assert_allclose(out, [10, 0.5, 1, 2000, 3])
    assert np.isnan(dose_to_uM(["-x"], "um")[0])


def test_time_units_to_hours():
    np.testing.assert_allclose(
        time_to_h([24, 30, 2, 90], ["h", "min", "d", "m"]), [24, 0.5, 48, 1.5]
    )


def test_unknown_units_name_the_values_and_where():
    with pytest.raises(UnitError, match=r"plate\.csv: unknown dose unit.*'mg/ml'.*1 rows"):
        dose_to_uM([1, 2], ["um", "mg/ml"], where="plate.csv")
    with pytest.raises(UnitError, match="unknown time unit"):
        time_to_h([1], ["fortnight"])


def test_ignored_rows_skip_the_unit_check():
    out = dose_to_uM([-666, 1], ["-666", "um"], ignore=[True, False])
    assert out[1] == 1.0


def test_normalize_unit():
    assert normalize_unit(" µ M ") == "um"

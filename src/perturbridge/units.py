"""Dose and time units: everything in µM and hours.

Unit spellings are matched case-insensitively after removing spaces; ``µ``, ``μ`` and
``u`` are the same prefix. An unknown unit raises :class:`UnitError` naming the values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from .errors import UnitError

__all__ = ["DOSE_UNITS", "TIME_UNITS", "dose_to_uM", "normalize_unit", "time_to_h"]

#: Factor that converts a dose in the unit to µM (molar concentrations only).
DOSE_UNITS: dict[str, float] = {
    "pm": 1e-6, "picomolar": 1e-6,
    "nm": 1e-3, "nanomolar": 1e-3,
    "um": 1.0, "micromolar": 1.0, "umol/l": 1.0, "umol": 1.0,
    "mm": 1e3, "millimolar": 1e3,
    "m": 1e6, "molar": 1e6,
}  # fmt: skip

#: Factor that converts a time in the unit to hours.
TIME_UNITS: dict[str, float] = {
    "s": 1 / 3600, "sec": 1 / 3600, "second": 1 / 3600, "seconds": 1 / 3600,
    "m": 1 / 60, "min": 1 / 60, "minute": 1 / 60, "minutes": 1 / 60,
    "h": 1.0, "hr": 1.0, "hrs": 1.0, "hour": 1.0, "hours": 1.0,
    "d": 24.0, "day": 24.0, "days": 24.0,
}  # fmt: skip


def normalize_unit(unit: object) -> str:
    """Lower-case, drop spaces, and spell the micro prefix ``u``."""
    s = str(unit).strip().lower().replace(" ", "")
    return s.replace("µ", "u").replace("μ", "u")


def _convert(
    values: ArrayLike,
    units: ArrayLike | str,
    *,
    table: dict[str, float],
    what: str,
    where: str,
    ignore: NDArray[np.bool_] | None,
) -> NDArray[np.float64]:
    vals = pd.to_numeric(pd.Series(np.asarray(values, dtype=object)), errors="coerce").to_numpy(
        dtype=float
    )
    u = np.asarray(units, dtype=object)
    if u.ndim == 0:
        u = np.full(vals.shape, u.item(), dtype=object)
    norm = np.array([normalize_unit(x) for x in u], dtype=object)
    factor = np.array([table.get(x, np.nan) for x in norm], dtype=float)
    unknown = np.isnan(factor)
    if ignore is not None:
        unknown &= ~ignore
    if unknown.any():
        bad = list(dict.fromkeys(str(x) for x in u[unknown]))[:5]
        raise UnitError(
            f"{where}: unknown {what} unit(s) {bad} in {int(unknown.sum())} rows; "
            f"known units: {sorted(table)}"
        )
    return vals * factor


def dose_to_uM(
    values: ArrayLike,
    units: ArrayLike | str,
    *,
    where: str = "dose",
    ignore: Sequence[bool] | NDArray[np.bool_] | None = None,
) -> NDArray[np.float64]:
    """Convert doses to µM. Non-numeric values become NaN; rows in ``ignore`` skip the
    unit check (e.g. vehicles whose unit is a missing-value sentinel)."""
    return _convert(
        values,
        units,
        table=DOSE_UNITS,
        what="dose",
        where=where,
        ignore=None if ignore is None else np.asarray(ignore, dtype=bool),
    )


def time_to_h(
    values: ArrayLike,
    units: ArrayLike | str,
    *,
    where: str = "time",
    ignore: Sequence[bool] | NDArray[np.bool_] | None = None,
) -> NDArray[np.float64]:
    """Convert times to hours (see :func:`dose_to_uM`)."""
    return _convert(
        values,
        units,
        table=TIME_UNITS,
        what="time",
        where=where,
        ignore=None if ignore is None else np.asarray(ignore, dtype=bool),
    )

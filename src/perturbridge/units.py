"""Dose and time units: everything in µM and hours.

Rules
-----
- Unit spellings are matched case-insensitively after removing spaces; ``µ`` (micro
  sign), ``μ`` (Greek mu) and ``u`` are the same prefix. An unknown unit raises
  :class:`~perturbridge.errors.UnitError` naming the values and how many rows carry them.
- Molar doses (``pM``, ``nM``, ``uM``, ``mM``, ``M``) convert to µM by a fixed factor.
- Mass concentrations (``pg/mL`` … ``mg/mL``, ``ng/L`` … ``g/L``, ``ng/uL``) convert to
  µM only with the compound's molecular weight in g/mol, given per row:
  ``µM = (concentration in g/L) / MW × 10⁶``. A row with a mass unit and no molecular
  weight raises :class:`UnitError`; nothing is guessed.
- Percent (``%``, ``% v/v``, ``percent``) is a volume fraction (typically of a solvent or
  a serum), not an amount of compound: it has no µM equivalent. :func:`parse_dose` keeps
  it in its own column ``pert_dose_percent`` and leaves ``pert_dose_uM`` missing;
  :func:`dose_to_uM` refuses it.
- Times: ``s``, ``min`` (and ``m``), ``h``/``hr``/``hours``, ``d``/``days`` → hours.
- Values present but not numbers (``twenty-four``, decimal commas such as ``0,5``) raise
  :class:`UnitError` naming them; only missing values (``None``, NaN, ``""``, ``NA``)
  become NaN.
- Combined strings (``"1000.0nM"``, ``"24h"``, ``"24 h"``, ``"10 uM"``, ``"0.5%"``) are
  split by :func:`parse_quantity` into a number and a unit before conversion.

Examples
--------
>>> dose_to_uM([500, 2], ["nM", "uM"]).tolist()
[0.5, 2.0]
>>> parse_dose(["1000.0nM", "0.5%"])[["pert_dose_uM", "pert_dose_percent"]].to_numpy().tolist()
[[1.0, nan], [nan, 0.5]]
>>> parse_time(["24h", "30 min"]).tolist()
[24.0, 0.5]
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from .errors import UnitError

__all__ = [
    "DOSE_UNITS",
    "MASS_CONCENTRATION_UNITS",
    "MISSING_VALUES",
    "PERCENT_UNITS",
    "TIME_UNITS",
    "dose_to_uM",
    "normalize_unit",
    "parse_dose",
    "parse_quantity",
    "parse_time",
    "time_to_h",
]

#: Factor that converts a dose in the unit to µM (molar concentrations only).
DOSE_UNITS: dict[str, float] = {
    "pm": 1e-6, "picomolar": 1e-6,
    "nm": 1e-3, "nanomolar": 1e-3,
    "um": 1.0, "micromolar": 1.0, "umol/l": 1.0, "umol": 1.0,
    "mm": 1e3, "millimolar": 1e3,
    "m": 1e6, "molar": 1e6,
}  # fmt: skip

#: Factor that converts a mass concentration in the unit to g/L (then µM needs the MW).
MASS_CONCENTRATION_UNITS: dict[str, float] = {
    "pg/ml": 1e-9, "ng/ml": 1e-6, "ug/ml": 1e-3, "mg/ml": 1.0, "g/ml": 1e3,
    "ng/l": 1e-9, "ug/l": 1e-6, "mg/l": 1e-3, "g/l": 1.0,
    "ng/ul": 1e-3, "ug/ul": 1.0,
}  # fmt: skip

#: Spellings of percent (a volume fraction, kept apart from µM).
PERCENT_UNITS: frozenset[str] = frozenset({"%", "percent", "%v/v", "%(v/v)", "v/v%", "pct"})

#: Factor that converts a time in the unit to hours.
TIME_UNITS: dict[str, float] = {
    "s": 1 / 3600, "sec": 1 / 3600, "second": 1 / 3600, "seconds": 1 / 3600,
    "m": 1 / 60, "min": 1 / 60, "mins": 1 / 60, "minute": 1 / 60, "minutes": 1 / 60,
    "h": 1.0, "hr": 1.0, "hrs": 1.0, "hour": 1.0, "hours": 1.0,
    "d": 24.0, "day": 24.0, "days": 24.0,
}  # fmt: skip

# A number (sign, decimals, exponent) followed by an optional unit that starts with
# neither a digit nor a space.
_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\d\s].*?)?\s*$")
#: Spellings of a missing value (compared stripped and lower-case).
MISSING_VALUES: frozenset[str] = frozenset({"", "nan", "na", "n/a", "none", "null"})
_SHOW = 5  # offending values named in a message


def normalize_unit(unit: object) -> str:
    """Lower-case, drop spaces, and spell the micro prefix ``u``."""
    s = str(unit).strip().lower().replace(" ", "")
    return s.replace("µ", "u").replace("μ", "u")


def _first(values: NDArray[np.object_]) -> list[str]:
    return list(dict.fromkeys(str(x) for x in values))[:_SHOW]


def _as_bool(ignore: Sequence[bool] | NDArray[np.bool_] | None, n: int) -> NDArray[np.bool_]:
    if ignore is None:
        return np.zeros(n, dtype=bool)
    out = np.asarray(ignore, dtype=bool)
    if out.shape != (n,):
        raise ValueError(f"ignore must have one entry per value ({n}), found shape {out.shape}")
    return out


def _broadcast_units(units: ArrayLike | str, n: int, where: str) -> NDArray[np.object_]:
    u = np.asarray(units, dtype=object)
    if u.ndim == 0:
        return np.full(n, u.item(), dtype=object)
    if u.shape != (n,):
        raise ValueError(f"{where}: expected one unit per value ({n}), found shape {u.shape}")
    return u


def _is_blank(v: object) -> bool:
    """A missing value: ``None``, NaN or a spelling of :data:`MISSING_VALUES`."""
    if v is None or v is pd.NA:
        return True
    if isinstance(v, (float, np.floating)):
        return bool(np.isnan(v))
    return isinstance(v, str) and v.strip().lower() in MISSING_VALUES


def _numbers(values: ArrayLike, where: str = "values") -> NDArray[np.float64]:
    """Numbers from ``values``; missing values become NaN, any other text raises.

    Raises
    ------
    UnitError
        Naming the first values that are present but not numbers (words such as
        ``twenty-four``, or decimal commas such as ``0,5``).
    """
    arr = np.asarray(values, dtype=object).ravel()
    out = pd.to_numeric(pd.Series(arr), errors="coerce").to_numpy(dtype=float)
    unparsed = np.isnan(out)
    if unparsed.any():
        bad = np.array([u and not _is_blank(v) for u, v in zip(unparsed, arr, strict=True)])
        if bad.any():
            raise UnitError(
                f"{where}: {int(bad.sum())} values are not numbers, e.g. {_first(arr[bad])}; "
                "expected numbers with a decimal point (not a comma); a missing value is "
                "empty or NA"
            )
    return out


def _convert(
    values: ArrayLike,
    units: ArrayLike | str,
    *,
    table: dict[str, float],
    what: str,
    where: str,
    ignore: NDArray[np.bool_] | None,
) -> NDArray[np.float64]:
    vals = _numbers(values, where)
    u = _broadcast_units(units, vals.size, where)
    norm = np.array([normalize_unit(x) for x in u], dtype=object)
    factor = np.array([table.get(x, np.nan) for x in norm], dtype=float)
    unknown = np.isnan(factor)
    if ignore is not None:
        unknown &= ~ignore
    if unknown.any():
        raise UnitError(
            f"{where}: unknown {what} unit(s) {_first(u[unknown])} in {int(unknown.sum())} "
            f"rows; known units: {sorted(table)}"
        )
    return vals * factor


def _molecular_weights(
    molecular_weight: ArrayLike | float | None, n: int, where: str
) -> NDArray[np.float64]:
    if molecular_weight is None:
        return np.full(n, np.nan)
    mw = np.asarray(molecular_weight, dtype=float)
    if mw.ndim == 0:
        mw = np.full(n, float(mw))
    if mw.shape != (n,):
        raise ValueError(
            f"{where}: molecular_weight must be one number or one per value ({n}), "
            f"found shape {mw.shape}"
        )
    bad = np.isfinite(mw) & (mw <= 0)
    if bad.any():
        raise UnitError(
            f"{where}: molecular weights must be > 0 g/mol; found {mw[bad][:_SHOW].tolist()}"
        )
    return mw


def _dose_parts(
    vals: NDArray[np.float64],
    u: NDArray[np.object_],
    *,
    molecular_weight: ArrayLike | float | None,
    where: str,
    ignore: NDArray[np.bool_],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(µM, percent) for every row; raises on unknown units and missing weights."""
    n = vals.size
    norm = np.array([normalize_unit(x) for x in u], dtype=object)
    molar = np.array([DOSE_UNITS.get(x, np.nan) for x in norm], dtype=float)
    mass = np.array([MASS_CONCENTRATION_UNITS.get(x, np.nan) for x in norm], dtype=float)
    percent = np.array([x in PERCENT_UNITS for x in norm], dtype=bool)
    is_mass = np.isfinite(mass)
    unknown = np.isnan(molar) & ~is_mass & ~percent & ~ignore
    if unknown.any():
        known = sorted(DOSE_UNITS) + sorted(MASS_CONCENTRATION_UNITS) + ["%"]
        raise UnitError(
            f"{where}: unknown dose unit(s) {_first(u[unknown])} in {int(unknown.sum())} "
            f"rows; known units: {known}"
        )
    mw = _molecular_weights(molecular_weight, n, where)
    need = is_mass & ~ignore & ~np.isfinite(mw)
    if need.any():
        rows = np.flatnonzero(need)[:_SHOW].tolist()
        raise UnitError(
            f"{where}: mass concentration unit(s) {_first(u[need])} in {int(need.sum())} rows "
            f"need the compound's molecular weight (g/mol) to convert to µM; it is missing for "
            f"rows {rows}. Pass molecular_weight= (one number per row)"
        )
    uM = np.full(n, np.nan)
    ok = np.isfinite(molar)
    uM[ok] = vals[ok] * molar[ok]
    with np.errstate(invalid="ignore", divide="ignore"):
        uM[is_mass] = vals[is_mass] * mass[is_mass] / mw[is_mass] * 1e6
    pct = np.where(percent, vals, np.nan)
    return uM, pct


def dose_to_uM(
    values: ArrayLike,
    units: ArrayLike | str,
    *,
    where: str = "dose",
    ignore: Sequence[bool] | NDArray[np.bool_] | None = None,
    molecular_weight: ArrayLike | float | None = None,
) -> NDArray[np.float64]:
    """Convert doses to µM.

    Parameters
    ----------
    values
        Numbers, or strings of numbers; missing values (``None``, NaN, ``""``, ``"NA"``)
        become NaN, any other text raises.
    units
        One unit for all values or one per value: molar units, or mass concentrations
        together with ``molecular_weight``.
    where
        What the values are (a file or column name), for error messages.
    ignore
        Rows that skip the unit check (e.g. vehicles whose unit is a missing-value
        sentinel); their result is the value times the factor of their unit, or NaN.
    molecular_weight
        Molecular weight in g/mol, one number or one per value; needed only by rows with
        a mass concentration unit.

    Raises
    ------
    UnitError
        For an unknown unit, a percent (a volume fraction has no µM value; use
        :func:`parse_dose`), or a mass concentration without a molecular weight.
    """
    vals = _numbers(values, where)
    u = _broadcast_units(units, vals.size, where)
    ign = _as_bool(ignore, vals.size)
    norm = np.array([normalize_unit(x) for x in u], dtype=object)
    percent = np.array([x in PERCENT_UNITS for x in norm], dtype=bool) & ~ign
    if percent.any():
        raise UnitError(
            f"{where}: {int(percent.sum())} rows have percent doses {_first(u[percent])}; a "
            "percent is a volume fraction and has no µM value. Use parse_dose, which keeps "
            "it in pert_dose_percent"
        )
    uM, _ = _dose_parts(vals, u, molecular_weight=molecular_weight, where=where, ignore=ign)
    return uM


def time_to_h(
    values: ArrayLike,
    units: ArrayLike | str,
    *,
    where: str = "time",
    ignore: Sequence[bool] | NDArray[np.bool_] | None = None,
) -> NDArray[np.float64]:
    """Convert times to hours (see :func:`dose_to_uM` for the arguments)."""
    vals = _numbers(values, where)
    return _convert(
        vals,
        units,
        table=TIME_UNITS,
        what="time",
        where=where,
        ignore=None if ignore is None else _as_bool(ignore, vals.size),
    )


def parse_quantity(
    values: ArrayLike | pd.Series,
    *,
    where: str = "values",
    column: str | None = None,
    default_unit: str = "",
    missing: Collection[str] = MISSING_VALUES,
) -> tuple[NDArray[np.float64], NDArray[np.object_]]:
    """Split combined value-and-unit strings into numbers and units.

    The one parser of doses and times written as text: ``"1000.0nM"`` → ``(1000.0,
    "nM")``, ``"24 h"`` → ``(24.0, "h")``, ``"0.5%"`` → ``(0.5, "%")``. Plain numbers get
    ``default_unit``; missing values (``None``, NaN, and the spellings in ``missing``,
    compared stripped and lower-case) become NaN with unit ``""``. Units are returned as
    written (stripped); :func:`normalize_unit` is applied by the converters.

    Parameters
    ----------
    values
        Strings or numbers; a :class:`pandas.Series` names its rows by its index in errors.
    where
        What the values are (a file name), for error messages.
    column
        The column the values come from, for error messages.
    default_unit
        The unit of a plain number.
    missing
        Lower-case spellings of a missing value (upstream tables use e.g. ``-666``).

    Raises
    ------
    UnitError
        If a value is text that is not a number followed by a unit; the message names
        the file and column, the first such values and their rows.

    Examples
    --------
    >>> parse_quantity(["1000.0nM", "24 h", 3])
    (array([1000.,   24.,    3.]), array(['nM', 'h', ''], dtype=object))
    """
    labels = values.index if isinstance(values, pd.Series) else None
    arr = np.asarray(values, dtype=object).ravel()
    nums = np.full(arr.size, np.nan)
    units = np.full(arr.size, "", dtype=object)
    bad = np.zeros(arr.size, dtype=bool)
    for i, v in enumerate(arr):
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            continue
        is_number = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        s = str(v).strip()
        if s.lower() in missing:
            continue
        if is_number:
            nums[i] = float(v)
            units[i] = default_unit
            continue
        m = _QUANTITY.match(s)
        if m is None or (m.group(2) or "").startswith(","):  # 0,5uM: a decimal comma
            bad[i] = True
            continue
        nums[i] = float(m.group(1))
        units[i] = (m.group(2) or default_unit).strip()
    if bad.any():
        rows = np.flatnonzero(bad) if labels is None else labels[bad]
        shown = list(dict.fromkeys(str(x).strip() for x in arr[bad]))[:_SHOW]
        first_rows = [r.item() if isinstance(r, np.generic) else r for r in rows[:_SHOW]]
        raise UnitError(
            f"{_place(where, column)}: {int(bad.sum())} values are not a number followed by a "
            f"unit, e.g. {shown} (first rows {first_rows}); expected forms like '10 uM', "
            "'1000.0nM', '24h', '0.5%' (a decimal point, not a comma)"
        )
    return nums, units


def _place(where: str, column: str | None) -> str:
    """Where values come from, in error messages: ``"meta.csv: column 'dose'"``."""
    return where if column is None else f"{where}: column {column!r}"


def _values_and_units(
    values: ArrayLike, units: ArrayLike | str | None, where: str
) -> tuple[NDArray[np.float64], NDArray[np.object_]]:
    if units is None:
        return parse_quantity(values, where=where)
    vals = _numbers(values, where)
    return vals, _broadcast_units(units, vals.size, where)


def parse_dose(
    values: ArrayLike,
    units: ArrayLike | str | None = None,
    *,
    molecular_weight: ArrayLike | float | None = None,
    default_unit: str | None = None,
    where: str = "dose",
    ignore: Sequence[bool] | NDArray[np.bool_] | None = None,
) -> pd.DataFrame:
    """Parse doses into µM, keeping percents apart.

    Parameters
    ----------
    values
        Combined strings (``"10 uM"``, ``"1000.0nM"``, ``"0.5%"``) when ``units`` is
        ``None``; otherwise numbers.
    units
        One unit or one per value; ``None`` to split them from ``values``.
    molecular_weight
        g/mol, one number or one per value; needed by mass concentrations only.
    default_unit
        Unit of values that carry none (plain numbers); without it such values raise.
    where
        What the values are, for error messages.
    ignore
        Rows that skip the unit checks (e.g. vehicles).

    Returns
    -------
    One row per value: ``value``, ``unit`` (as written), ``pert_dose_uM`` (NaN for
    percents) and ``pert_dose_percent`` (NaN unless the unit is a percent).

    Raises
    ------
    UnitError
        For text that is not a quantity, an unknown unit, a missing unit without
        ``default_unit``, or a mass concentration without a molecular weight.
    """
    vals, u = _values_and_units(values, units, where)
    ign = _as_bool(ignore, vals.size) | _blank(vals, u)
    u = _fill_default(vals, u, default_unit, where, ign)
    uM, pct = _dose_parts(vals, u, molecular_weight=molecular_weight, where=where, ignore=ign)
    return pd.DataFrame({"value": vals, "unit": u, "pert_dose_uM": uM, "pert_dose_percent": pct})


def parse_time(
    values: ArrayLike,
    units: ArrayLike | str | None = None,
    *,
    default_unit: str | None = None,
    where: str = "time",
    ignore: Sequence[bool] | NDArray[np.bool_] | None = None,
) -> NDArray[np.float64]:
    """Parse times (``"24h"``, ``"24 h"``, ``"30 min"``, ``"2 d"``) into hours.

    Arguments as in :func:`parse_dose`.

    Raises
    ------
    UnitError
        For text that is not a quantity, an unknown unit, or a missing unit without
        ``default_unit``.
    """
    vals, u = _values_and_units(values, units, where)
    ign = _as_bool(ignore, vals.size) | _blank(vals, u)
    u = _fill_default(vals, u, default_unit, where, ign)
    return _convert(vals, u, table=TIME_UNITS, what="time", where=where, ignore=ign)


def _blank(vals: NDArray[np.float64], u: NDArray[np.object_]) -> NDArray[np.bool_]:
    """Missing values without a unit: nothing to check, they stay NaN."""
    return np.isnan(vals) & np.array([str(x).strip() == "" for x in u], dtype=bool)


def _fill_default(
    vals: NDArray[np.float64],
    u: NDArray[np.object_],
    default_unit: str | None,
    where: str,
    ignore: NDArray[np.bool_],
) -> NDArray[np.object_]:
    empty = np.array([str(x).strip() == "" for x in u], dtype=bool) & np.isfinite(vals)
    if not empty.any():
        return u
    if default_unit is None:
        missing = empty & ~ignore
        if missing.any():
            raise UnitError(
                f"{where}: {int(missing.sum())} values have no unit, e.g. "
                f"{vals[missing][:_SHOW].tolist()}; write the unit with the value or pass "
                "default_unit="
            )
        return u
    out = u.copy()
    out[empty] = default_unit
    return out

"""Small pandas helpers shared by the resolvers and parsers of :mod:`perturbridge.ids`.

Reference tables and resolver results hold text with gaps as objects with ``None`` for
missing (never ``NaN``), so that they round-trip through Parquet and compare cleanly.
"""

from __future__ import annotations

from typing import Any, TypeVar

import pandas as pd

__all__ = ["missing_as_none", "none_where_not"]

PandasT = TypeVar("PandasT", pd.Series, pd.DataFrame)

#: ``None`` as the replacement value of ``where`` (the pandas stubs do not list it).
_NONE: Any = None


def none_where_not(values: PandasT, keep: Any) -> PandasT:
    """``values`` where ``keep`` holds, ``None`` elsewhere."""
    return values.where(keep, _NONE)


def missing_as_none(values: PandasT) -> PandasT:
    """``values`` as objects, with ``None`` for every missing value (NaN, NA, None)."""
    return none_where_not(values.astype(object), values.notna())

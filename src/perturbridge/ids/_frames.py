"""Small pandas helpers shared by the resolvers and parsers of :mod:`perturbridge.ids`.

Reference tables and resolver results hold text with gaps as objects with ``None`` for
missing (never ``NaN``), so that they round-trip through Parquet and compare cleanly.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import pandas as pd

__all__ = ["RESOLUTION_COLUMNS", "int_objects", "missing_as_none", "none_where_not"]

PandasT = TypeVar("PandasT", pd.Series, pd.DataFrame)

#: The result columns that say how a name resolver (genes, cells) matched an input, in
#: the order both report them: the kind of name that matched, the normalization that
#: made it match (``""`` for none) and the status (``resolved``, ``ambiguous``,
#: ``unresolved``).
RESOLUTION_COLUMNS: tuple[str, ...] = ("match_type", "normalization", "status")

#: ``None`` as the replacement value of ``where`` (the pandas stubs do not list it).
_NONE: Any = None


def none_where_not(values: PandasT, keep: Any) -> PandasT:
    """``values`` where ``keep`` holds, ``None`` elsewhere."""
    return values.where(keep, _NONE)


def missing_as_none(values: PandasT) -> PandasT:
    """``values`` as objects, with ``None`` for every missing value (NaN, NA, None)."""
    return none_where_not(values.astype(object), values.notna())


def int_objects(values: pd.Series) -> np.ndarray:
    """Whole numbers as an object array of Python ``int``, ``None`` where missing."""
    return values.astype("Int64").to_numpy(dtype=object, na_value=_NONE)

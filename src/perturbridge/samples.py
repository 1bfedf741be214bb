"""Building Samples AnnData objects that follow :mod:`perturbridge.schema`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from .schema import (
    BIOLOGY_COLUMNS,
    BIOLOGY_SOURCE,
    SAMPLE_COLUMNS,
    UNKNOWN,
    ValueKind,
    check_unique_index,
    validate_samples,
)

__all__ = [
    "MAX_COUNT",
    "biology_values",
    "build_samples",
    "check_count_matrix",
    "coerce_obs",
    "empty_samples",
    "with_biology",
]

#: Counts from here on are not all exact in float64 (2**53): refused as not counts.
MAX_COUNT = float(2**53)
_SHOW = 5


def coerce_obs(obs: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``obs`` with the schema columns in their schema dtypes.

    Missing schema columns are added (empty); the biology columns
    (:data:`~perturbridge.schema.BIOLOGY_COLUMNS` and ``biology_source``) follow them,
    categorical, ``unknown`` where missing; extra columns are kept as they are.
    """
    out = obs.copy()
    out.index = out.index.astype(str)
    for col in SAMPLE_COLUMNS:
        if col.name not in out.columns:
            out[col.name] = np.nan if col.kind == "float" else pd.NA
        s = out[col.name]
        if col.kind == "category":
            vals = s.astype(object).where(s.notna(), cast(Any, None))  # stubs lack None
            out[col.name] = pd.Categorical([None if v is None else str(v) for v in vals.to_numpy()])
        elif col.kind == "float":
            out[col.name] = pd.to_numeric(s, errors="raise").astype(float)
        elif col.kind == "bool":
            out[col.name] = s.astype(bool)
        else:
            numbers: Any = pd.to_numeric(s, errors="raise")
            out[col.name] = pd.array(numbers, dtype="Int64")
    for name in (*BIOLOGY_COLUMNS, BIOLOGY_SOURCE):
        out[name] = biology_values(out[name] if name in out.columns else None, len(out))
    front = [c.name for c in SAMPLE_COLUMNS] + [*BIOLOGY_COLUMNS, BIOLOGY_SOURCE]
    return out[front + [c for c in out.columns if c not in front]]


def with_biology(obs: pd.DataFrame, facts: Mapping[str, str], *, source: str) -> pd.DataFrame:
    """A copy of ``obs`` with the biology ``facts`` of a dataset (e.g. sci-Plex:
    ``{"suspension_type": "nucleus"}``) set where the column is still ``unknown``, and
    ``biology_source`` noting ``column=source`` for each value set.

    Raises ``KeyError`` for a fact that is not a biology column.
    """
    bad = [k for k in facts if k not in BIOLOGY_COLUMNS]
    if bad:
        raise KeyError(f"not biology columns: {bad}; biology columns: {list(BIOLOGY_COLUMNS)}")
    out = obs.copy()
    n = len(out)
    src = np.asarray(biology_values(out.get(BIOLOGY_SOURCE), n), dtype=object)
    for name, value in facts.items():
        cur = np.asarray(biology_values(out.get(name), n), dtype=object)
        todo = cur == UNKNOWN
        cur[todo] = str(value)
        out[name] = pd.Categorical(cur)
        note = f"{name}={source}"
        src[todo] = [note if s == UNKNOWN else f"{s}; {note}" for s in src[todo]]
    out[BIOLOGY_SOURCE] = pd.Categorical(src)
    return out


def biology_values(values: pd.Series | None, n: int) -> pd.Categorical:
    """A biology column as stored: categorical strings, ``unknown`` where missing or
    blank (``values`` ``None``: all ``unknown``)."""
    if values is None:
        return pd.Categorical([UNKNOWN] * n)
    s = values.astype(object)
    text = [
        UNKNOWN if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA else str(v)
        for v in s.to_numpy()
    ]
    return pd.Categorical([t if t.strip() else UNKNOWN for t in text])


def _values(x: Any) -> tuple[np.ndarray, np.ndarray]:
    """The stored values of ``x`` and the row of each (sparse: only the non-zeros)."""
    if sparse.issparse(x):
        coo = cast(Any, x).tocoo()
        return np.asarray(coo.data, dtype=float), np.asarray(coo.row)
    arr = np.asarray(x, dtype=float)
    return arr.ravel(), np.repeat(np.arange(arr.shape[0]), arr.shape[1] if arr.ndim == 2 else 1)


def empty_samples(x: Any) -> np.ndarray:
    """True for the rows (samples) of ``x`` whose counts are all zero."""
    if sparse.issparse(x):
        m = cast(Any, x).tocsr(copy=True)
        m.eliminate_zeros()
        return np.asarray(np.diff(m.indptr) == 0)
    arr = np.asarray(x, dtype=float)
    return ~(arr != 0).any(axis=1)


def check_count_matrix(
    x: Any, ids: pd.Index, *, allow_non_integer: bool = False, where: str = "Samples"
) -> None:
    """Raise ``ValueError`` naming the samples (by id) whose counts are not counts.

    Counts are finite, non-negative, below 2**53 (:data:`MAX_COUNT`, where float64 stops
    holding every integer) and whole numbers unless ``allow_non_integer``; a sample
    whose counts are all zero is refused too (an ingest drops it to the ledger first as
    ``empty_sample``).
    """
    vals, rows = _values(x)
    checks = [
        (~np.isfinite(vals), "missing or infinite (NaN/inf)"),
        (vals < 0, "negative"),
        (np.isfinite(vals) & (vals >= MAX_COUNT), "2**53 or larger (not exact counts)"),
    ]
    if not allow_non_integer:
        checks.append((np.isfinite(vals) & (vals != np.round(vals)), "not whole numbers"))
    for bad, what in checks:
        if bad.any():
            names = list(dict.fromkeys(ids[rows[bad]].astype(str)))
            hint = "; pass allow_non_integer=True for estimated counts" if "whole" in what else ""
            raise ValueError(
                f"{where}: {len(names)} sample(s) {names[:_SHOW]} have counts that are "
                f"{what} ({int(bad.sum())} values, e.g. {vals[bad][:_SHOW].tolist()}); counts "
                f"must be finite non-negative whole numbers below 2**53{hint}"
            )
    empty = empty_samples(x)
    if empty.any():
        names = ids[empty].astype(str).tolist()
        raise ValueError(
            f"{where}: {len(names)} sample(s) have no counts at all (every gene 0): "
            f"{names[:_SHOW]}; drop them (an ingest ledgers them as empty_sample)"
        )


def build_samples(
    x: Any,
    obs: pd.DataFrame,
    var: pd.DataFrame,
    *,
    value_kind: ValueKind,
    provenance: Mapping[str, Any] | None = None,
    where: str = "Samples",
    allow_non_integer: bool = False,
) -> ad.AnnData:
    """Assemble and validate a Samples AnnData.

    Parameters
    ----------
    x
        Samples × genes matrix (dense or sparse).
    obs
        Sample metadata; the schema columns are coerced to their dtypes.
    var
        Gene metadata indexed by gene id, with a ``symbol`` column.
    value_kind
        ``"counts"`` or ``"log_expression"``.
    provenance
        Stored in ``uns["perturbridge"]["provenance"]``.
    allow_non_integer
        Accept counts that are not whole numbers (e.g. estimated counts).

    Raises
    ------
    ValueError
        For counts that are not counts (see :func:`check_count_matrix`), naming the
        samples by id.
    """
    check_unique_index(pd.Index(obs.index.astype(str)), what="sample", where=f"{where} obs")
    check_unique_index(pd.Index(var.index.astype(str)), what="gene", where=f"{where} var")
    if value_kind == "counts":
        check_count_matrix(
            x, pd.Index(obs.index.astype(str)), allow_non_integer=allow_non_integer, where=where
        )
    adata = ad.AnnData(X=x, obs=coerce_obs(obs), var=var.copy())
    adata.var.index = adata.var.index.astype(str)
    adata.uns["perturbridge"] = {
        "kind": "samples",
        "value_kind": value_kind,
        "provenance": dict(provenance or {}),
    }
    validate_samples(adata, where=where)
    return adata

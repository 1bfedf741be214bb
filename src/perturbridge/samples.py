"""Building Samples AnnData objects that follow :mod:`perturbridge.schema`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .schema import SAMPLE_COLUMNS, ValueKind, check_unique_index, validate_samples

__all__ = ["build_samples", "coerce_obs"]


def coerce_obs(obs: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``obs`` with the schema columns in their schema dtypes.

    Missing schema columns are added (empty); extra columns are kept as they are.
    """
    out = obs.copy()
    out.index = out.index.astype(str)
    for col in SAMPLE_COLUMNS:
        if col.name not in out.columns:
            out[col.name] = np.nan if col.kind == "float" else pd.NA
        s = out[col.name]
        if col.kind == "category":
            vals = s.astype(object).where(s.notna(), None)
            out[col.name] = pd.Categorical([None if v is None else str(v) for v in vals.to_numpy()])
        elif col.kind == "float":
            out[col.name] = pd.to_numeric(s, errors="raise").astype(float)
        elif col.kind == "bool":
            out[col.name] = s.astype(bool)
        else:
            out[col.name] = pd.array(pd.to_numeric(s, errors="raise"), dtype="Int64")
    front = [c.name for c in SAMPLE_COLUMNS]
    return out[front + [c for c in out.columns if c not in front]]


def build_samples(
    x: Any,
    obs: pd.DataFrame,
    var: pd.DataFrame,
    *,
    value_kind: ValueKind,
    provenance: Mapping[str, Any] | None = None,
    where: str = "Samples",
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
    """
    check_unique_index(pd.Index(obs.index.astype(str)), what="sample", where=f"{where} obs")
    check_unique_index(pd.Index(var.index.astype(str)), what="gene", where=f"{where} var")
    adata = ad.AnnData(X=x, obs=coerce_obs(obs), var=var.copy())
    adata.var.index = adata.var.index.astype(str)
    adata.uns["perturbridge"] = {
        "kind": "samples",
        "value_kind": value_kind,
        "provenance": dict(provenance or {}),
    }
    validate_samples(adata, where=where)
    return adata

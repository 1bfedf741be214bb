"""What the agreement report shows: the agreement tables (from a result or an agreement
folder) and the store's summary and identifier coverage (through the compendium API)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..compendium import Compendium

__all__ = ["REPORT_TABLES", "read_agreement_tables"]

#: Tables of an agreement folder that the report reads (``<name>.parquet``).
REPORT_TABLES = (
    "cross_summary",
    "replicate_summary",
    "pairs",
    "retrieval",
    "excluded",
    "strata",
    "dose_sensitivity",
)

# --------------------------------------------------------------------------- inputs


@dataclass
class _Agreement:
    """The agreement tables the report shows (empty frames where absent)."""

    cross_summary: pd.DataFrame
    replicate_summary: pd.DataFrame
    pairs: pd.DataFrame
    retrieval: pd.DataFrame
    excluded: pd.DataFrame
    strata: pd.DataFrame
    dose_sensitivity: pd.DataFrame | None
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _frame(value: Any) -> pd.DataFrame:
    return value if isinstance(value, pd.DataFrame) else pd.DataFrame()


def read_agreement_tables(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The tables of an agreement folder (``<name>.parquet``, else ``<name>.csv``) and
    its ``agreement.json`` (key ``info``); absent tables are ``None``.

    Raises ``FileNotFoundError`` when the folder has neither ``agreement.json`` nor
    ``cross_summary``.
    """
    folder = Path(folder)
    out: dict[str, Any] = {}
    for name in REPORT_TABLES:
        parquet, csv = folder / f"{name}.parquet", folder / f"{name}.csv"
        if parquet.is_file():
            out[name] = pd.read_parquet(parquet)
        elif csv.is_file():
            out[name] = pd.read_csv(csv)
        else:
            out[name] = None
    info_path = folder / "agreement.json"
    out["info"] = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    if not out["info"] and out["cross_summary"] is None:
        found = sorted(p.name for p in folder.iterdir())[:10] if folder.is_dir() else []
        raise FileNotFoundError(
            f"{folder} is not an agreement folder: expected agreement.json and "
            f"cross_summary.parquet (from `perturbridge agreement STORE --out DIR`), "
            f"found {found or 'nothing'}"
        )
    return out


def _from_mapping(tables: Mapping[str, Any], *, where: str) -> _Agreement:
    notes = [
        f"{name} was not found in {where}; its section is empty."
        for name in ("cross_summary", "replicate_summary", "pairs", "retrieval", "excluded")
        if tables.get(name) is None
    ]
    dose = tables.get("dose_sensitivity")
    return _Agreement(
        cross_summary=_frame(tables.get("cross_summary")),
        replicate_summary=_frame(tables.get("replicate_summary")),
        pairs=_frame(tables.get("pairs")),
        retrieval=_frame(tables.get("retrieval")),
        excluded=_frame(tables.get("excluded")),
        strata=_frame(tables.get("strata")),
        dose_sensitivity=dose if isinstance(dose, pd.DataFrame) else None,
        info=dict(tables.get("info") or {}),
        notes=notes,
    )


def _from_result(result: Any) -> _Agreement:
    tables = {name: getattr(result, name, None) for name in REPORT_TABLES}
    info = dict(getattr(result, "info", None) or {})
    options = getattr(result, "options", None)
    if options and "options" not in info:
        info["options"] = dict(options)
    tables["info"] = info
    return _from_mapping(tables, where="the result")


# --------------------------------------------------------------------------- compendium


def _columns(comp: Compendium, table: str) -> set[str]:
    return set(comp.sql(f"SELECT * FROM {table} LIMIT 0").columns)


def _coverage_conditions(comp: Compendium) -> pd.DataFrame:
    """Per dataset: conditions and how many carry each compound identifier."""
    cols = _columns(comp, "conditions")
    parts = ["count(*) AS n_conditions"]
    if "pert_dose_uM" in cols:
        parts.append("count(*) FILTER (WHERE pert_dose_uM > 0) AS n_dosed")
    for col, name in (
        ("compound_inchikey", "n_inchikey"),
        ("compound_parent_inchikey", "n_parent_inchikey"),
        ("pubchem_cid", "n_pubchem_cid"),
    ):
        if col in cols:
            parts.append(f"count({col}) AS {name}")
    if "compound_id" in cols:
        parts.append("count(DISTINCT compound_id) AS n_compounds")
    return comp.sql(
        f"SELECT dataset, {', '.join(parts)} FROM conditions GROUP BY dataset ORDER BY dataset"
    )


def _shared(comp: Compendium) -> pd.DataFrame:
    """Per dataset pair: compounds, and (compound, context, time) keys, in both."""
    cols = _columns(comp, "conditions")
    if not {"compound_id", "cell_context", "pert_time_h"} <= cols:
        return pd.DataFrame()
    return comp.sql(
        """
        WITH c AS (SELECT DISTINCT dataset, compound_id FROM conditions
                   WHERE compound_id IS NOT NULL),
             k AS (SELECT DISTINCT dataset, compound_id, cell_context,
                          round(pert_time_h, 6) AS t FROM conditions
                   WHERE compound_id IS NOT NULL),
             sc AS (SELECT a.dataset AS dataset_a, b.dataset AS dataset_b,
                           count(*) AS n_shared_compounds
                    FROM c a JOIN c b ON a.compound_id = b.compound_id
                    AND a.dataset < b.dataset GROUP BY ALL),
             sk AS (SELECT a.dataset AS dataset_a, b.dataset AS dataset_b,
                           count(*) AS n_shared_keys
                    FROM k a JOIN k b ON a.compound_id = b.compound_id
                    AND a.cell_context = b.cell_context AND a.t = b.t
                    AND a.dataset < b.dataset GROUP BY ALL)
        SELECT sc.dataset_a, sc.dataset_b, sc.n_shared_compounds,
               coalesce(sk.n_shared_keys, 0) AS n_shared_keys
        FROM sc LEFT JOIN sk USING (dataset_a, dataset_b)
        ORDER BY sc.dataset_a, sc.dataset_b
        """
    )


def _status_counts(comp: Compendium, column: str, *, treated_only: bool) -> pd.DataFrame:
    """Per dataset: samples by ``column`` (``compound_status`` / ``cell_status``)."""
    cols = _columns(comp, "samples")
    if column not in cols:
        return pd.DataFrame()
    where = "WHERE NOT coalesce(is_control, false)" if treated_only and "is_control" in cols else ""
    counts = comp.sql(
        f"SELECT dataset, coalesce(CAST({column} AS VARCHAR), 'missing') AS status, "
        f"count(*) AS n FROM samples {where} GROUP BY ALL ORDER BY dataset"
    )
    if counts.empty:
        return counts
    wide = counts.pivot_table(index="dataset", columns="status", values="n", aggfunc="sum")
    order = [s for s in ("resolved", "ambiguous", "unresolved", "missing") if s in wide.columns]
    wide = wide[order + sorted(set(wide.columns) - set(order))].fillna(0).astype(np.int64)
    wide.insert(0, "n_samples", wide.sum(axis=1))
    return wide.reset_index()


def _compendium(store: str | os.PathLike[str]) -> dict[str, Any]:
    with Compendium.open(store) as comp:
        summary = comp.summary()
        return {
            "summary": summary,
            "coverage": _coverage_conditions(comp),
            "shared": _shared(comp),
            "compound_status": _status_counts(comp, "compound_status", treated_only=True),
            "cell_status": _status_counts(comp, "cell_status", treated_only=False),
        }

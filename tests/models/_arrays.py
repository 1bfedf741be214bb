"""A minimal in-memory stand-in for ``TrainingData`` (conditions, genes, values) for the
evaluation unit tests, with planted values."""

from __future__ import annotations

import numpy as np
import pandas as pd


class ArrayData:
    """``conditions``, ``genes`` and ``values(rows)`` over an in-memory matrix."""

    def __init__(self, conditions: pd.DataFrame, values: np.ndarray):
        self.conditions = conditions.reset_index(drop=True)
        self._values = np.asarray(values, dtype=np.float32)
        self.genes = pd.DataFrame(
            {"symbol": [f"G{i}" for i in range(values.shape[1])]},
            index=pd.Index([f"ENSG{i:011d}" for i in range(values.shape[1])], name="gene_id"),
        )
        self.reads = 0

    def smiles(self, structures: pd.DataFrame) -> pd.Series:
        """SMILES per compound key, matched on the ``compound`` column only."""
        keys = pd.Index(sorted(self.conditions["compound"].astype(str).unique()))
        by = structures.drop_duplicates("compound").set_index("compound")["smiles"]
        return by.reindex(keys)

    def values(self, rows: np.ndarray) -> np.ndarray:
        self.reads += 1
        return self._values[np.asarray(rows, dtype=np.int64)]


def conditions(records: list[tuple[str, str, str, float, float]]) -> pd.DataFrame:
    """(dataset, context, compound, dose_uM, time_h) records as a conditions table."""
    df = pd.DataFrame(records, columns=["dataset", "context", "compound", "dose_uM", "time_h"])
    df.insert(0, "condition_id", [f"c{i}" for i in range(len(df))])
    df["log10_dose_uM"] = np.log10(df["dose_uM"])
    df["compound_inchikey"] = df["compound"]
    df["pubchem_cid"] = pd.array([pd.NA] * len(df), dtype="Int64")
    return df


class ArraySplit:
    """A split by fixed row numbers per part (``rows(data, part)`` and ``manifest``)."""

    def __init__(self, parts: dict[str, np.ndarray], target: str | None = None):
        self.parts = {k: np.asarray(v, dtype=np.int64) for k, v in parts.items()}
        self.manifest = {"kind": "compound", "options": {"target_dataset": target}}

    def rows(self, data: object, part: str) -> np.ndarray:
        return self.parts.get(part, np.zeros(0, dtype=np.int64))

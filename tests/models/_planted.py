"""A tiny planted compendium for the model and training tests, built in memory.

Real :class:`~perturbridge.models.data.TrainingData` over an in-memory value source;
values = dataset × context gene loadings · a hidden compound latent × a dose factor, plus
noise; the second dataset does not measure the first three genes (NaN), like an assay with
another readout panel. The split holds compounds out of the target dataset ``dsA`` only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from perturbridge.models.data import TrainingData
from perturbridge.models.splits import Split

#: Real molecules (SMILES), one per compound of the planted data (cycled).
SMILES = (
    "CCO", "CC(=O)O", "c1ccccc1", "Cc1ccccc1", "Oc1ccccc1", "Nc1ccccc1", "CCN(CC)CC",
    "CC(C)O", "OC(=O)c1ccccc1", "CCOC(=O)C", "c1ccncc1", "C1CCCCC1", "CC(=O)Nc1ccc(O)cc1",
    "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "O=C(O)CCC(=O)O",
    "ClC(Cl)Cl", "CCCCCC", "c1ccc2ccccc2c1", "CC#N", "C=CC=C", "OCCO", "NCCN", "CS(=O)C",
)  # fmt: skip


class MemoryValues:
    """A value source held in memory (the protocol TrainingData reads values through)."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = np.asarray(values, dtype=np.float32)
        self.description: dict[str, Any] = {"kind": "memory"}

    def read(self, rows: np.ndarray) -> np.ndarray:
        return self.values[np.asarray(rows, dtype=np.int64)]

    def close(self) -> None:
        pass


def row_split(
    data: TrainingData, parts: dict[str, np.ndarray], *, target: str | None = "dsA"
) -> Split:
    """A compound split of ``data`` by row numbers per part (rows in no part: train)."""
    part = np.full(len(data), "train", dtype=object)
    for name, rows in parts.items():
        part[np.asarray(rows, dtype=np.int64)] = name
    assignment = pd.Series(
        part, index=pd.Index(data.conditions["condition_id"], name="condition_id"), name="part"
    )
    manifest = {"kind": "compound", "options": {"target_dataset": target}}
    return Split(kind="compound", assignment=assignment, manifest=manifest)


def memory(data: TrainingData) -> MemoryValues:
    """The in-memory values behind planted data (to plant changes in them)."""
    source = data._source
    assert isinstance(source, MemoryValues)
    return source


def planted(
    *, n_compounds: int = 24, n_genes: int = 12, noise: float = 0.1, seed: int = 0
) -> tuple[TrainingData, Split]:
    """The planted data and a compound hold-out split of ``dsA`` (4 val, 4 test compounds)."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n_compounds, 3))
    records = []
    values = []
    for d, dataset in enumerate(("dsA", "dsB")):
        for c, context in enumerate(("ctx1", "ctx2")):
            loadings = rng.normal(size=(n_genes, 3))
            for k in range(n_compounds):
                for dose in (1.0, 10.0):
                    effect = loadings @ latent[k] * (0.5 if dose == 1.0 else 1.0) + d * 0.2
                    row = effect + noise * rng.normal(size=n_genes)
                    if dataset == "dsB":
                        row[:3] = np.nan
                    values.append(row)
                    ik = f"INCHIKEY{k:06d}XXXXXXXX-UHFFFAOYSA-N"
                    records.append(
                        {
                            "condition_id": f"{dataset}:{context}:{k}:{dose}",
                            "dataset": dataset,
                            "assay": "L1000" if dataset == "dsA" else "RNA-seq",
                            "context": context,
                            "compound": ik,
                            "compound_inchikey": ik,
                            "pubchem_cid": 1000 + k,
                            "perturbagen": f"cmpd{k}",
                            "dose_uM": dose,
                            "log10_dose_uM": np.log10(dose),
                            "time_h": 24.0 + 24.0 * c,
                            "is_control": False,
                        }
                    )
    conditions = pd.DataFrame(records)
    conditions["pubchem_cid"] = conditions["pubchem_cid"].astype("Int64")
    genes = pd.DataFrame(
        {"symbol": [f"G{i}" for i in range(n_genes)]},
        index=pd.Index([f"ENSG{i:011d}" for i in range(n_genes)], name="gene_id"),
    )
    data = TrainingData(conditions, genes, source=MemoryValues(np.asarray(values)))
    keys = sorted(conditions["compound"].unique())
    val_c, test_c = set(keys[:4]), set(keys[4:8])
    in_a = (conditions["dataset"] == "dsA").to_numpy()
    comp = conditions["compound"].to_numpy()
    is_val = in_a & np.isin(comp, list(val_c))
    is_test = in_a & np.isin(comp, list(test_c))
    split = row_split(data, {"val": np.flatnonzero(is_val), "test": np.flatnonzero(is_test)})
    return data, split


def structures(data: TrainingData) -> pd.DataFrame:
    """A structures table (the columns of ``read_structures``) for the planted compounds."""
    keys = list(data.vocab["compound"].tokens[1:])
    return pd.DataFrame(
        {
            "compound": keys,
            "inchikey": keys,
            "pubchem_cid": pd.array([pd.NA] * len(keys), dtype="Int64"),
            "name": [None] * len(keys),
            "smiles": [SMILES[i % len(SMILES)] for i in range(len(keys))],
        }
    )

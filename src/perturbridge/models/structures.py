"""Compound structures for the structure-aware encoders and baselines.

:func:`read_structures` reads a table of SMILES keyed by compound key, InChIKey, PubChem
CID or name (CSV, TSV or Parquet), checks every SMILES with RDKit and fills in missing
InChIKeys; :func:`match_structures` finds the SMILES of each compound of training data
(:meth:`perturbridge.models.data.TrainingData.smiles`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..ids.chem import quiet_rdkit
from .vocab import Vocabulary

__all__ = ["STRUCTURE_KEYS", "match_structures", "read_structures"]

#: Columns of :func:`read_structures`.
STRUCTURE_KEYS: tuple[str, ...] = ("compound", "inchikey", "pubchem_cid", "name")


def read_structures(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A table of compound structures: ``compound``, ``inchikey``, ``pubchem_cid``,
    ``name``, ``smiles`` (one row per input row).

    The file is CSV, TSV (``.tsv``/``.txt``) or Parquet with a ``smiles`` column and at
    least one of ``compound`` (a compound key as in :class:`TrainingData`),
    ``inchikey``, ``pubchem_cid``, ``name``. Every SMILES must parse with RDKit (the
    first bad rows are named); a missing ``inchikey`` is computed from the SMILES, and a
    missing ``compound`` is the InChIKey.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no structures file {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            raw = pd.read_parquet(path)
        else:
            sep = "\t" if suffix in (".tsv", ".txt", ".tab") else ","
            raw = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""])
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the structures file {path}: {err}") from err
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    if "smiles" not in raw.columns or not any(k in raw.columns for k in STRUCTURE_KEYS):
        raise ValueError(
            f"{path}: a structures table needs a 'smiles' column and one of "
            f"{list(STRUCTURE_KEYS)}; found columns {list(raw.columns)[:12]}"
        )
    if raw.empty:
        raise ValueError(f"{path}: the structures table has no rows")
    from rdkit import Chem

    smiles = raw["smiles"].astype(object)
    keys: list[Any] = []
    bad: list[str] = []
    with quiet_rdkit():
        for i, s in enumerate(smiles):
            mol = Chem.MolFromSmiles(str(s)) if isinstance(s, str) and s.strip() else None
            if mol is None:
                bad.append(f"row {i + 2}: {s!r}")
                keys.append(pd.NA)
            else:
                keys.append(Chem.MolToInchiKey(mol) or pd.NA)
    if bad:
        raise ValueError(
            f"{path}: {len(bad)} SMILES do not parse (RDKit); first: {'; '.join(bad[:5])}"
        )

    def col(name: str) -> pd.Series:
        if name not in raw.columns:
            return pd.Series(pd.NA, index=raw.index, dtype=object)
        s = raw[name].astype(object)
        return s.where(s.notna() & (s.astype(str).str.strip() != ""), np.nan).map(
            lambda v: v.strip() if isinstance(v, str) else v
        )

    inchikey = col("inchikey")
    inchikey = inchikey.where(inchikey.notna(), pd.Series(keys, index=raw.index, dtype=object))
    compound = col("compound")
    compound = compound.where(compound.notna(), inchikey)
    cid = pd.to_numeric(col("pubchem_cid"), errors="coerce")
    bad_cid = col("pubchem_cid").notna() & (cid.isna() | (cid % 1 != 0))
    if bad_cid.any():
        first = raw.loc[bad_cid, "pubchem_cid"].head(5).tolist()
        raise ValueError(f"{path}: pubchem_cid values that are not integers: {first}")
    return pd.DataFrame(
        {
            "compound": compound.astype(object),
            "inchikey": inchikey.astype(object),
            "pubchem_cid": cid.astype("Int64"),
            "name": col("name").astype(object),
            "smiles": smiles.astype(str).str.strip(),
        }
    )


def match_structures(
    conditions: pd.DataFrame, structures: pd.DataFrame, vocab: Vocabulary
) -> pd.Series:
    """The SMILES of each compound of ``vocab`` (index: compound key; NaN when unknown),
    from a :func:`read_structures` table matched by compound key, then InChIKey (the
    ``compound_inchikey`` of ``conditions``), then PubChem CID, then name (the
    ``perturbagen``, case-insensitive); the first match wins."""
    missing = [c for c in ("smiles", *STRUCTURE_KEYS) if c not in structures.columns]
    if missing:
        raise ValueError(
            f"a structures table (read_structures) has columns {['smiles', *STRUCTURE_KEYS]}; "
            f"missing {missing}"
        )
    first = conditions.drop_duplicates("compound").set_index("compound")
    compounds = pd.Index(vocab.tokens[1:], name="compound")
    out = pd.Series(np.nan, index=compounds, dtype=object, name="smiles")
    lookups: list[tuple[str, pd.Series]] = [
        ("compound", pd.Series(compounds.to_numpy(), index=compounds))
    ]
    for col, ours_col in (("inchikey", "compound_inchikey"), ("pubchem_cid", "pubchem_cid"),
                          ("name", "perturbagen")):  # fmt: skip
        if ours_col in first.columns:
            lookups.append((col, first[ours_col].reindex(compounds)))
    for col, ours in lookups:
        table = structures[[col, "smiles"]].dropna()
        if table.empty:
            continue
        if col == "pubchem_cid":
            keys = table[col].astype("int64").astype(str)
            ours_k = pd.to_numeric(ours, errors="coerce").astype("Int64").astype(str)
        elif col == "name":
            keys = table[col].astype(str).str.lower()
            ours_k = ours.astype(str).str.lower()
        else:
            keys = table[col].astype(str)
            ours_k = ours.astype(str)
        lookup = pd.Series(table["smiles"].to_numpy(), index=keys.to_numpy())
        lookup = lookup[~lookup.index.duplicated()]
        found = ours_k.map(lookup)
        out = out.where(out.notna(), found)
    return out

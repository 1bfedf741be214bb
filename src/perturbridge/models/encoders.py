"""Compound encoders: how a compound code becomes a vector the network reads.

Three kinds, one per ``ModelConfig.compound_encoder``:

* :class:`EmbeddingEncoder` (``"embedding"``): a learned vector per compound.
* :class:`MorganEncoder` (``"morgan"``): the RDKit Morgan fingerprint of the compound's
  structure (matched by :meth:`TrainingData.smiles`), either as it is (fixed) or
  through a learned linear projection (trainable).
* :class:`TableEncoder` (``"pretrained"``): vectors read from an embeddings table (the
  output of ``perturbridge embed``), matched by compound key, then InChIKey, then CID.

Code 0 is the vocabulary's ``<unk>``: every encoder maps it, and any compound it has no
information on (no structure, no row in the table), to the zero vector, so an unseen
compound is never given a random vector. The compound-level inputs (fingerprints, table
rows) are buffers of the module, saved with the model.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import torch
from torch import nn

from .baselines import morgan_bits
from .options import ModelConfig

__all__ = [
    "ENCODERS",
    "EmbeddingEncoder",
    "MorganEncoder",
    "TableEncoder",
    "build_encoder",
    "match_compounds",
    "read_embeddings",
]

#: Embedding columns of an embeddings table are e0, e1, ...
EMBEDDING_PREFIX: Final = "e"

logger = logging.getLogger(__name__)


def match_compounds(
    tokens: Sequence[str],
    table: pd.DataFrame,
    *,
    compounds: pd.DataFrame | None = None,
) -> np.ndarray:
    """For each compound key in ``tokens``, the row of ``table`` that describes it, or -1.

    A row matches on its ``compound`` column (the compound key), else on ``inchikey``
    (the key's InChIKey, or the key itself), else on ``pubchem_cid`` (``"CID:<cid>"``
    keys, or the CID ``compounds`` gives for the key). ``compounds`` (index compound key;
    columns ``inchikey``, ``pubchem_cid``, optional) adds what is known about each key.
    Names are never matched: one name can mean different compounds in two datasets.
    """
    lookups: list[tuple[str, dict[str, int]]] = []
    for col in ("compound", "inchikey", "pubchem_cid"):
        if col in table.columns:
            keys = table[col].map(_key)
            first: dict[str, int] = {}
            for i, k in enumerate(keys.tolist()):
                if k is not None and k not in first:
                    first[k] = i
            lookups.append((col, first))
    if not lookups:
        raise ValueError(
            "the compound table has none of the columns compound, inchikey, pubchem_cid "
            f"to match compounds on; columns: {list(table.columns)}"
        )
    known = compounds if compounds is not None else pd.DataFrame()
    out = np.full(len(tokens), -1, dtype=np.int64)
    for j, token in enumerate(tokens):
        info = known.loc[token] if token in known.index else None
        candidates: dict[str, list[str | None]] = {
            "compound": [token],
            "inchikey": [token],
            "pubchem_cid": [token[4:] if token.startswith("CID:") else None],
        }
        if info is not None:
            for col in ("inchikey", "pubchem_cid"):
                if col in info.index:
                    candidates[col].insert(0, _key(info[col]))
        for col, first in lookups:
            hit = next((first[c] for c in candidates[col] if c is not None and c in first), None)
            if hit is not None:
                out[j] = hit
                break
    return out


def _key(value: object) -> str | None:
    """A table cell as a matching key: text, integers without ``.0``, missing -> None."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


class EmbeddingEncoder(nn.Module):
    """A learned vector per compound code; code 0 (``<unk>``) is the zero vector."""

    def __init__(self, n_compounds: int, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.embedding = nn.Embedding(n_compounds, dim, padding_idx=0)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.embedding(codes)
        return out


class MorganEncoder(nn.Module):
    """The Morgan fingerprint of each compound code, fixed or through a learned projection.

    ``fingerprints`` is (n_compounds, bits) with a zero row for ``<unk>`` and for
    compounds without a structure. Fixed: the vector is the bits themselves
    (``dim = bits``); trainable: a learned linear map of the bits to ``dim`` values.
    """

    def __init__(self, fingerprints: np.ndarray, *, dim: int, trainable: bool) -> None:
        super().__init__()
        self.register_buffer("fingerprints", torch.as_tensor(fingerprints, dtype=torch.float32))
        self.trainable = trainable
        bits = int(fingerprints.shape[1])
        self.projection: nn.Linear | None = nn.Linear(bits, dim, bias=False) if trainable else None
        self.dim = dim if trainable else bits

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        fp: torch.Tensor = self.fingerprints[codes]  # type: ignore[index]
        return fp if self.projection is None else self.projection(fp)


class TableEncoder(nn.Module):
    """Vectors of a pretrained embeddings table, one row per compound code (zero when
    the table has no row for it), trainable unless frozen by the caller."""

    def __init__(self, vectors: np.ndarray) -> None:
        super().__init__()
        self.dim = int(vectors.shape[1])
        self.embedding = nn.Embedding(vectors.shape[0], self.dim, padding_idx=0)
        with torch.no_grad():
            self.embedding.weight.copy_(torch.as_tensor(vectors, dtype=torch.float32))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.embedding(codes)
        return out


#: The compound encoders, by ``ModelConfig.compound_encoder``.
ENCODERS: Final = {
    "embedding": EmbeddingEncoder,
    "morgan": MorganEncoder,
    "pretrained": TableEncoder,
}


def embedding_columns(table: pd.DataFrame) -> list[str]:
    """The vector columns ``e0 … e{k-1}`` of an embeddings table, in order."""
    cols = [c for c in table.columns if isinstance(c, str) and c[:1] == EMBEDDING_PREFIX]
    cols = [c for c in cols if c[1:].isdigit()]
    return sorted(cols, key=lambda c: int(c[1:]))


def read_embeddings(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read an embeddings table (``perturbridge embed`` output, Parquet; CSV/TSV also read):
    columns ``compound`` (key), optional ``inchikey``/``pubchem_cid``/``name``, and the
    vector ``e0 … e{k-1}``. Clear errors for a missing file, missing columns, missing or
    non-finite values, and duplicate keys."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"embeddings table {p}: no such file")
    suffix = p.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        table = pd.read_csv(p, sep="\t" if suffix != ".csv" else ",")
    else:
        table = pd.read_parquet(p)
    if "compound" not in table.columns and table.index.name == "compound":
        table = table.reset_index()
    cols = embedding_columns(table)
    problems = []
    if "compound" not in table.columns:
        problems.append("no 'compound' column (the compound key, parent InChIKey)")
    if not cols:
        problems.append("no vector columns e0, e1, ...")
    elif cols != [f"{EMBEDDING_PREFIX}{i}" for i in range(len(cols))]:
        problems.append(f"the vector columns are not e0 … e{len(cols) - 1} without gaps")
    if problems:
        raise ValueError(
            f"embeddings table {p}: " + "; ".join(problems) + f"; columns: {list(table.columns)}"
        )
    values = table[cols].to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        first = table.loc[bad, "compound"].astype(str).tolist()[:5]
        raise ValueError(
            f"embeddings table {p}: {int(bad.sum())} row(s) with missing or non-finite "
            f"values; first compounds: {first}"
        )
    dup = table["compound"].astype(str).duplicated()
    if dup.any():
        first = table.loc[dup, "compound"].astype(str).tolist()[:5]
        raise ValueError(f"embeddings table {p}: duplicate compound keys; first: {first}")
    return table


def build_encoder(
    config: ModelConfig,
    *,
    tokens: Sequence[str],
    compounds: pd.DataFrame,
    smiles: pd.Series | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """The compound encoder ``config`` asks for, over the compound vocabulary ``tokens``
    (index 0 ``<unk>``), and a record of how many compounds it has information on.

    ``compounds`` (index compound key; ``inchikey``, ``pubchem_cid``, ``name``) helps
    match the rows of a pretrained table; ``smiles`` (index compound key, NaN where
    unknown; :meth:`TrainingData.smiles`) is needed by ``"morgan"``.
    """
    kind = config.compound_encoder
    info: dict[str, Any] = {"kind": kind, "n_compounds": len(tokens) - 1}
    if kind == "embedding":
        return EmbeddingEncoder(len(tokens), config.dim_compound), info
    if kind == "morgan":
        if smiles is None:
            raise ValueError(
                "compound_encoder = 'morgan' needs the compounds' structures: pass "
                "structures= (a table with a smiles column, see read_structures)"
            )
        known = smiles.reindex(list(tokens[1:]))
        where = np.where(known.notna().to_numpy(), np.arange(len(known)), -1)
        _record(info, tokens, where, what="structure")
        fps = np.zeros((len(tokens), config.morgan_bits), dtype=np.uint8)
        hit = np.flatnonzero(where >= 0)
        fps[hit + 1] = morgan_bits(
            [str(s) for s in known.to_numpy()[hit]],
            radius=config.morgan_radius,
            n_bits=config.morgan_bits,
        )
        encoder = MorganEncoder(fps, dim=config.dim_compound, trainable=config.morgan_trainable)
        return encoder, info
    if kind == "pretrained":
        if not config.pretrained:
            raise ValueError("compound_encoder = 'pretrained' needs pretrained = <table path>")
        table = read_embeddings(config.pretrained)
        where = match_compounds(tokens[1:], table, compounds=compounds)
        _record(info, tokens, where, what="row in the embeddings table")
        info["table"] = str(config.pretrained)
        cols = embedding_columns(table)
        vectors = np.zeros((len(tokens), len(cols)), dtype=np.float32)
        hit = np.flatnonzero(where >= 0)
        vectors[hit + 1] = table[cols].to_numpy(dtype=np.float32)[where[hit]]
        return TableEncoder(vectors), info
    raise ValueError(f"unknown compound encoder {kind!r}; known: {list(ENCODERS)}")


def _record(info: dict[str, Any], tokens: Sequence[str], where: np.ndarray, *, what: str) -> None:
    """Count the compounds matched; none matched is an error, some missing is logged."""
    missing = [tokens[int(i) + 1] for i in np.flatnonzero(where < 0)]
    info["matched"] = int((where >= 0).sum())
    info["missing"] = len(missing)
    info["first_missing"] = missing[:10]
    if len(missing) == len(where) and len(where) > 0:
        raise ValueError(
            f"none of the {len(where)} compounds has a {what}; first compounds: {missing[:5]} "
            "(are the keys parent InChIKeys, as in the training data?)"
        )
    if missing:
        logger.warning(
            "%d of %d compounds have no %s and get the zero vector; first: %s",
            len(missing), len(where), what, missing[:5],
        )  # fmt: skip

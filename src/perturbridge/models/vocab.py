"""Encoders of the model inputs: vocabularies of categorical inputs and standardizers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["UNKNOWN", "Standardizer", "Vocabulary"]

#: The token of index 0 of every vocabulary: values not seen when it was built.
UNKNOWN = "<unk>"


@dataclass(frozen=True)
class Vocabulary:
    """Tokens of one categorical input; index 0 is always ``"<unk>"``.

    ``encode`` maps values to int64 codes (unknown values to 0). The ``gene``
    vocabulary lists the readout genes in the order of the value columns (code
    ``i + 1`` is column ``i``); the others are sorted.
    """

    name: str
    tokens: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        tokens = tuple(str(t) for t in self.tokens)
        if not tokens or tokens[0] != UNKNOWN:
            raise ValueError(
                f"vocabulary {self.name!r}: the first token must be {UNKNOWN!r}, found {tokens[:1]}"
            )
        index = {t: i for i, t in enumerate(tokens)}
        if len(index) != len(tokens):
            dup = pd.Series(tokens)[pd.Series(tokens).duplicated()].unique()[:5]
            raise ValueError(f"vocabulary {self.name!r} repeats tokens: {list(dup)}")
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "_index", index)

    @classmethod
    def build(cls, name: str, values: Iterable[Any], *, sort: bool = True) -> Vocabulary:
        """A vocabulary of the distinct ``values`` (sorted, or in first-seen order)."""
        seen = pd.unique(pd.Series(np.asarray(values, dtype=object)).astype(str))
        tokens = sorted(seen) if sort else list(seen)
        return cls(name, (UNKNOWN, *(t for t in tokens if t != UNKNOWN)))

    def encode(self, values: Sequence[str] | np.ndarray) -> np.ndarray:
        """int64 codes of ``values``; values not in the vocabulary get 0 (``<unk>``)."""
        arr = np.asarray(values, dtype=object)
        get = self._index.get
        return np.fromiter((get(str(v), 0) for v in arr.ravel()), np.int64, arr.size).reshape(
            arr.shape
        )

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Tokens of int codes (an object array)."""
        return np.asarray(self.tokens, dtype=object)[np.asarray(codes, dtype=np.int64)]

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, value: object) -> bool:
        return str(value) in self._index

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Vocabulary:
        missing = [k for k in ("name", "tokens") if k not in d]
        if missing:
            raise ValueError(f"a vocabulary record needs keys {missing}; found {sorted(d)}")
        return cls(str(d["name"]), tuple(str(t) for t in d["tokens"]))


@dataclass(frozen=True)
class Standardizer:
    """``z = (x - mean) / sd``; an ``sd`` of 0 (a constant input) counts as 1."""

    mean: float
    sd: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.mean) and np.isfinite(self.sd) and self.sd >= 0):
            raise ValueError(
                f"a standardizer needs a finite mean and a finite sd >= 0, found "
                f"mean={self.mean!r}, sd={self.sd!r}"
            )

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardizer:
        """Mean and (population) SD of the finite values of ``x``."""
        v = np.asarray(x, dtype=np.float64)
        v = v[np.isfinite(v)]
        if v.size == 0:
            raise ValueError("cannot fit a standardizer: no finite values")
        return cls(float(v.mean()), float(v.std()))

    def apply(self, x: np.ndarray) -> np.ndarray:
        sd = self.sd if self.sd > 0 else 1.0
        return ((np.asarray(x, dtype=np.float64) - self.mean) / sd).astype(np.float32)

    def invert(self, z: np.ndarray) -> np.ndarray:
        sd = self.sd if self.sd > 0 else 1.0
        return np.asarray(z, dtype=np.float64) * sd + self.mean

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "sd": self.sd}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Standardizer:
        missing = [k for k in ("mean", "sd") if k not in d]
        if missing:
            raise ValueError(f"a standardizer record needs keys {missing}; found {sorted(d)}")
        return cls(float(d["mean"]), float(d["sd"]))

"""The source-adapter registry and the result every adapter returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import anndata as ad
import pandas as pd

from ..ledger import Ledger

__all__ = ["IngestResult", "SourceAdapter", "get_source", "list_sources", "register_source"]


@dataclass
class IngestResult:
    """Validated Samples and the ledger that accounts for every input sample."""

    samples: ad.AnnData
    ledger: Ledger


class SourceAdapter(ABC):
    """An upstream dataset family: reads its native files into Samples + ledger."""

    name: ClassVar[str]
    assay: ClassVar[str]
    description: ClassVar[str]

    @abstractmethod
    def ingest(self, **kwargs: Any) -> IngestResult:
        """Read the upstream files and return Samples and the ledger."""


_REGISTRY: dict[str, type[SourceAdapter]] = {}
A = TypeVar("A", bound=type[SourceAdapter])


def register_source(cls: A) -> A:
    """Class decorator that adds an adapter to the registry under ``cls.name``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"source {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def get_source(name: str) -> SourceAdapter:
    """An adapter instance by name."""
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known: {sorted(_REGISTRY)}") from None


def list_sources() -> pd.DataFrame:
    """The registered adapters: name, assay, description."""
    return pd.DataFrame(
        [
            {"name": c.name, "assay": c.assay, "description": c.description}
            for c in _REGISTRY.values()
        ]
    )

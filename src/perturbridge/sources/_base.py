"""The source-adapter registry and the result every adapter returns."""

from __future__ import annotations

import sys
from abc import ABC
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import anndata as ad
import pandas as pd

from ..ledger import Ledger

__all__ = [
    "IngestResult",
    "SourceAdapter",
    "get_source",
    "list_sources",
    "register_source",
    "source_names",
]


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
    #: The upstream files the adapter reads (names or patterns, for ``sources list``).
    expected_files: ClassVar[tuple[str, ...]] = ()
    #: ``"counts"`` or ``"log_expression"``: what the Samples ``X`` holds.
    value_kind: ClassVar[str] = ""

    def ingest(self, **kwargs: Any) -> IngestResult:
        """Read the upstream files and return Samples and the ledger (calls
        :meth:`reader` with ``kwargs``; override for anything else)."""
        return self.reader()(**kwargs)

    def declared_files(self, params: Mapping[str, Any]) -> list[tuple[str, Path]]:
        """Files the adapter will read that are named *inside* its inputs, as
        ``(label, path)``.

        ``params`` are the keyword arguments :meth:`ingest` will get. Files passed as
        arguments are not repeated: only those an input names (the generic adapter's
        mapping file names its tables) are listed, so that a build's task key covers
        their content too. An input that does not exist gives nothing here (the caller
        reports it); one that cannot be parsed raises as :meth:`ingest` would. The
        default lists none.
        """
        return []

    @classmethod
    def reader(cls) -> Callable[..., IngestResult]:
        """The public function behind :meth:`ingest`: by convention ``read_<name>`` in
        the adapter's module (its signature and docstring document the inputs; the CLI
        builds ``perturbridge ingest <name>`` from them)."""
        fn = getattr(sys.modules[cls.__module__], f"read_{cls.name}", None)
        if not callable(fn):
            raise NotImplementedError(
                f"source {cls.name!r} has no function read_{cls.name} in {cls.__module__}"
            )
        return fn


_REGISTRY: dict[str, type[SourceAdapter]] = {}
A = TypeVar("A", bound=type[SourceAdapter])


def register_source(cls: A) -> A:
    """Class decorator that adds an adapter to the registry under ``cls.name``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"source {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def source_names() -> list[str]:
    """Names of the registered adapters, in registration order."""
    return list(_REGISTRY)


def get_source(name: str) -> SourceAdapter:
    """An adapter instance by name."""
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known: {sorted(_REGISTRY)}") from None


def list_sources() -> pd.DataFrame:
    """The registered adapters: name, assay, value kind, expected files, description."""
    return pd.DataFrame(
        [
            {
                "name": c.name,
                "assay": c.assay,
                "value_kind": c.value_kind,
                "expected_files": ", ".join(c.expected_files),
                "description": c.description,
            }
            for c in _REGISTRY.values()
        ],
        columns=["name", "assay", "value_kind", "expected_files", "description"],
    )

"""Search queries: up/down gene sets or a signature, read from files, resolved to a store.

A :class:`Query` holds gene identifiers as the user gave them; :func:`resolve_query`
maps them onto a store's gene axis (:meth:`perturbridge.compendium.Compendium.genes`)
and returns a :class:`ResolvedQuery` of store gene columns, with every identifier that
did not match recorded in ``unmatched``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Query", "ResolvedQuery"]


@dataclass(frozen=True)
class Query:
    """A search query: up and/or down gene sets, or a signature (gene → value).

    Exactly one of the two kinds: gene sets (``up``, ``down``, at least one non-empty)
    or ``signature`` (a Series of gene identifier → logFC or t).
    """

    name: str
    up: tuple[str, ...] = ()
    down: tuple[str, ...] = ()
    signature: pd.Series | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a query needs a non-empty name, found {self.name!r}")
        object.__setattr__(self, "up", tuple(str(g) for g in self.up))
        object.__setattr__(self, "down", tuple(str(g) for g in self.down))
        has_sets = bool(self.up or self.down)
        if self.signature is not None and has_sets:
            raise ValueError(
                f"query {self.name!r}: give either up/down gene sets or a signature, not both"
            )
        if self.signature is None and not has_sets:
            raise ValueError(f"query {self.name!r} is empty: no up, down or signature genes")

    @property
    def kind(self) -> str:
        """``"sets"`` or ``"signature"``."""
        return "signature" if self.signature is not None else "sets"


@dataclass(frozen=True)
class ResolvedQuery:
    """A query mapped onto a store's gene axis (int64 store gene columns)."""

    query: Query
    up_cols: np.ndarray
    down_cols: np.ndarray
    signature_cols: np.ndarray
    signature_values: np.ndarray
    unmatched: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.query.name

    @property
    def cols(self) -> np.ndarray:
        """Every store gene column the query reads (sorted, unique)."""
        return np.unique(np.concatenate([self.up_cols, self.down_cols, self.signature_cols]))

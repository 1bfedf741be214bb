"""Chem-PerturBridge: harmonized small-molecule perturbation transcriptomics.

Ingest upstream datasets into one validated Samples schema (:mod:`perturbridge.sources`),
compute condition-level effects numerically equal to R limma (:mod:`perturbridge.de`),
and account for every input row in a :class:`~perturbridge.ledger.Ledger`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import FormatError, PerturbridgeError, PerturbridgeWarning, SchemaError, UnitError

if TYPE_CHECKING:
    from .ledger import Ledger

__all__ = [
    "FormatError",
    "Ledger",
    "PerturbridgeError",
    "PerturbridgeWarning",
    "SchemaError",
    "UnitError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # the ledger needs pandas: loaded on first use (PEP 562), so `perturbridge --help` is fast
    if name == "Ledger":
        return import_module(".ledger", __name__).Ledger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

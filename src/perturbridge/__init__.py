"""Chem-PerturBridge: harmonized small-molecule perturbation transcriptomics.

Ingest upstream datasets into one validated Samples schema (:mod:`perturbridge.sources`),
compute condition-level effects numerically equal to R limma (:mod:`perturbridge.de`),
and account for every input row in a :class:`~perturbridge.ledger.Ledger`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
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


#: loaded on first use: the ledger needs pandas, and `perturbridge --help` stays fast
__getattr__, __dir__ = lazy_exports(__name__, {".ledger": ("Ledger",)}, globals())

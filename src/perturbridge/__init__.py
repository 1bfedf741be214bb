"""Chem-PerturBridge: harmonized small-molecule perturbation transcriptomics.

Ingest upstream datasets into one validated Samples schema (:mod:`perturbridge.sources`),
compute condition-level effects numerically equal to R limma (:mod:`perturbridge.de`),
and account for every input row in a :class:`~perturbridge.ledger.Ledger`.
"""

from ._version import __version__
from .errors import FormatError, PerturbridgeError, PerturbridgeWarning, SchemaError, UnitError
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

"""Source adapters: one per upstream dataset family, listed in a registry."""

from . import (  # noqa: F401  (registers the adapters)
    cigs,
    dilimap,
    drugseq_moabox,
    gdpx2,
    generic,
    op3,
    sciplex,
    tahoe,
    vcpi,
)
from ._base import (
    IngestResult,
    SourceAdapter,
    get_source,
    list_sources,
    register_source,
    source_names,
)
from .l1000 import L1000Source, L1000Tables, read_l1000

__all__ = [
    "IngestResult",
    "L1000Source",
    "L1000Tables",
    "SourceAdapter",
    "get_source",
    "list_sources",
    "read_l1000",
    "register_source",
    "source_names",
]

"""Source adapters: one per upstream dataset family, listed in a registry.

:data:`ADAPTERS` names each adapter and the module that defines (and registers) it. The
registry (:func:`source_names`, :func:`get_source`, :func:`list_sources`) imports an
adapter's module when that adapter is first used, and the names below load their module
on first use (PEP 562): importing the package, listing the adapters' names or reading
one adapter do not import the others (nor pandas, AnnData and SciPy, which they use),
so that ``perturbridge ingest --help`` starts fast.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

from .._lazy import lazy_exports, public_names

if TYPE_CHECKING:  # the names for type checkers (re-exported)
    from ._base import (
        IngestResult as IngestResult,
        SourceAdapter as SourceAdapter,
        get_source as get_source,
        list_sources as list_sources,
        register_source as register_source,
        source_names as source_names,
    )
    from .l1000 import (
        L1000Source as L1000Source,
        L1000Tables as L1000Tables,
        read_l1000 as read_l1000,
    )

#: Each adapter's name → the module (relative to this package) that registers it, in the
#: order the registry lists them; an adapter registered elsewhere (a plug-in, a test)
#: follows these.
ADAPTERS = MappingProxyType(
    {
        "cigs": ".cigs",
        "dilimap": ".dilimap",
        "drugseq_moabox": ".drugseq_moabox",
        "gdpx2": ".gdpx2",
        "generic": ".generic",
        "op3": ".op3",
        "sciplex": ".sciplex",
        "tahoe": ".tahoe",
        "vcpi": ".vcpi",
        "l1000": ".l1000",
    }
)

#: each module → the public names it defines
_EXPORTS = {
    "._base": (
        "IngestResult",
        "SourceAdapter",
        "get_source",
        "list_sources",
        "register_source",
        "source_names",
    ),
    ".l1000": ("L1000Source", "L1000Tables", "read_l1000"),
}

__all__ = ["ADAPTERS", *public_names(_EXPORTS)]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

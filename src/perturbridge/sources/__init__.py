"""Source adapters: one per upstream dataset family, listed in a registry.

:data:`ADAPTERS` declares each adapter as data (name, assay, description, expected
files, the parameters of ``perturbridge ingest <name>``) and names the module that
defines and registers it. The registry (:func:`source_names`, :func:`get_source`,
:func:`list_sources`) imports an adapter's module when that adapter is first used, and
the names below load their module on first use (PEP 562): importing the package,
listing the adapters or writing the help of an adapter's command import no adapter
(nor pandas, AnnData and SciPy, which they use), so that ``perturbridge ingest <name>
--help`` starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports, public_names
from ._declarations import ADAPTERS, CliParameter, SourceDeclaration

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

__all__ = ["ADAPTERS", "CliParameter", "SourceDeclaration", *public_names(_EXPORTS)]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

"""L1000 (LINCS Connectivity Map) level 3 → Samples.

:mod:`.reader` reads level 3 (one GCT/GCTX file with its metadata, or the GEO series
layout) and documents the rules; :mod:`.files` finds the files of a GEO series folder;
:mod:`.genes` annotates and selects the genes (landmark, best inferred, all).
"""

from .files import GEO_SERIES, L1000Files, L1000Tables, find_geo_files
from .reader import Genes, L1000Source, read_l1000

__all__ = [
    "GEO_SERIES",
    "Genes",
    "L1000Files",
    "L1000Source",
    "L1000Tables",
    "find_geo_files",
    "read_l1000",
]

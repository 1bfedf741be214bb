"""Signature search: which conditions of a store produce (or reverse) a query?

A query (:class:`Query`: a signature gene → value, or up/down gene sets read from text,
GRP or GMT files) is resolved against the store's gene axis (:func:`resolve_query`) and
scored against every condition by a registered method (:data:`METHODS`: cosine,
Spearman, weighted KS enrichment, CMap's WTCS, XSum); :mod:`.null` turns scores into
empirical p-values, FDR and CMap's normalized scores. :class:`SearchIndex` holds the
per-condition ranks and values a search reads; :func:`search` runs queries over a store
and returns a :class:`SearchResult`.

The names below load their module on first use (PEP 562).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .index import SearchIndex
    from .kernels import cosine, ks_enrichment, spearman, wtcs, xsum
    from .methods import METHODS, Block, SearchMethod, get_method, list_methods, score_block
    from .null import empirical_p, fdr_bh, ncs, null_rows, random_queries
    from .queries import (
        Query,
        ResolvedQuery,
        queries_from_files,
        read_gene_set,
        read_gmt,
        read_signature,
        resolve_query,
    )
    from .results import SearchResult
    from .run import SearchOptions, search

#: public name → the module that defines it
_EXPORTS = {
    "METHODS": ".methods",
    "Block": ".methods",
    "Query": ".queries",
    "ResolvedQuery": ".queries",
    "SearchIndex": ".index",
    "SearchMethod": ".methods",
    "SearchOptions": ".run",
    "SearchResult": ".results",
    "cosine": ".kernels",
    "empirical_p": ".null",
    "fdr_bh": ".null",
    "get_method": ".methods",
    "ks_enrichment": ".kernels",
    "list_methods": ".methods",
    "ncs": ".null",
    "null_rows": ".null",
    "queries_from_files": ".queries",
    "random_queries": ".null",
    "read_gene_set": ".queries",
    "read_gmt": ".queries",
    "read_signature": ".queries",
    "resolve_query": ".queries",
    "score_block": ".methods",
    "search": ".run",
    "spearman": ".kernels",
    "wtcs": ".kernels",
    "xsum": ".kernels",
}

__all__ = [
    "METHODS",
    "Block",
    "Query",
    "ResolvedQuery",
    "SearchIndex",
    "SearchMethod",
    "SearchOptions",
    "SearchResult",
    "cosine",
    "empirical_p",
    "fdr_bh",
    "get_method",
    "ks_enrichment",
    "list_methods",
    "ncs",
    "null_rows",
    "queries_from_files",
    "random_queries",
    "read_gene_set",
    "read_gmt",
    "read_signature",
    "resolve_query",
    "score_block",
    "search",
    "spearman",
    "wtcs",
    "xsum",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name = __name__ + _EXPORTS[name]
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        # a part of the search package not installed in this tree: the name is absent
        raise AttributeError(f"module {__name__!r} has no attribute {name!r} ({err})") from err
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

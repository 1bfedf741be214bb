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

from typing import TYPE_CHECKING

from .._lazy import lazy_exports, public_names

if TYPE_CHECKING:
    from .index import SearchIndex as SearchIndex
    from .kernels import (
        cosine as cosine,
        cosine_measured as cosine_measured,
        ks_enrichment as ks_enrichment,
        ks_enrichment_of_values as ks_enrichment_of_values,
        spearman as spearman,
        wtcs as wtcs,
        xsum as xsum,
    )
    from .methods import (
        METHODS as METHODS,
        Block as Block,
        SearchMethod as SearchMethod,
        get_method as get_method,
        list_methods as list_methods,
        score_block as score_block,
        score_blocks as score_blocks,
    )
    from .null import (
        empirical_p as empirical_p,
        fdr_bh as fdr_bh,
        ncs as ncs,
        null_rows as null_rows,
        random_queries as random_queries,
    )
    from .queries import (
        Query as Query,
        ResolvedQuery as ResolvedQuery,
        queries_from_files as queries_from_files,
        read_gene_set as read_gene_set,
        read_gmt as read_gmt,
        read_signature as read_signature,
        resolve_query as resolve_query,
    )
    from .results import SearchResult as SearchResult
    from .run import SearchOptions as SearchOptions, search as search

#: each module → the public names it defines
_EXPORTS = {
    ".index": ("SearchIndex",),
    ".kernels": (
        "cosine",
        "cosine_measured",
        "ks_enrichment",
        "ks_enrichment_of_values",
        "spearman",
        "wtcs",
        "xsum",
    ),
    ".methods": (
        "Block",
        "METHODS",
        "SearchMethod",
        "get_method",
        "list_methods",
        "score_block",
        "score_blocks",
    ),
    ".null": ("empirical_p", "fdr_bh", "ncs", "null_rows", "random_queries"),
    ".queries": (
        "Query",
        "ResolvedQuery",
        "queries_from_files",
        "read_gene_set",
        "read_gmt",
        "read_signature",
        "resolve_query",
    ),
    ".results": ("SearchResult",),
    ".run": ("SearchOptions", "search"),
}

__all__ = public_names(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

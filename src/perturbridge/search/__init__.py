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

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .index import SearchIndex as SearchIndex
    from .kernels import cosine as cosine
    from .kernels import ks_enrichment as ks_enrichment
    from .kernels import spearman as spearman
    from .kernels import wtcs as wtcs
    from .kernels import xsum as xsum
    from .methods import METHODS as METHODS
    from .methods import Block as Block
    from .methods import SearchMethod as SearchMethod
    from .methods import get_method as get_method
    from .methods import list_methods as list_methods
    from .methods import score_block as score_block
    from .null import empirical_p as empirical_p
    from .null import fdr_bh as fdr_bh
    from .null import ncs as ncs
    from .null import null_rows as null_rows
    from .null import random_queries as random_queries
    from .queries import Query as Query
    from .queries import ResolvedQuery as ResolvedQuery
    from .queries import queries_from_files as queries_from_files
    from .queries import read_gene_set as read_gene_set
    from .queries import read_gmt as read_gmt
    from .queries import read_signature as read_signature
    from .queries import resolve_query as resolve_query
    from .results import SearchResult as SearchResult
    from .run import SearchOptions as SearchOptions
    from .run import search as search

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

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

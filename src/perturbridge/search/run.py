"""Run queries over a store: :func:`search` and its options, :class:`SearchOptions`.

One search is one pass over the selected conditions of a store, block by block (memory
bounded by ``block_rows`` rows and a fixed budget, never the whole store):

1. the queries (gene sets, signatures, or condition ids of the store, whose signature
   becomes the query) are resolved onto the store's gene axis; identifiers that match no
   gene are recorded in :attr:`SearchResult.queries`;
2. the conditions are selected in the catalog (dataset, assay, cell context, time);
3. each block of conditions is scored by the method for every query and for
   ``n_null`` random queries of the same sizes (:func:`~perturbridge.search.null.random_queries`);
4. per query: empirical p-values against the null scores pooled within each dataset ×
   cell context (:func:`~perturbridge.search.null.empirical_p`), Benjamini-Hochberg FDR
   over every condition searched, CMap's NCS for WTCS and KS, the top conditions and the
   per-compound summary (:func:`~perturbridge.search.results.aggregate_compounds`).

Blocks come from the store's search index (:class:`~perturbridge.search.index.SearchIndex`)
when it has a current one, else from :meth:`Compendium.effects` (ranks computed per block).

>>> from perturbridge.search import Query, SearchOptions, search
>>> res = search("compendium", Query("hdac", up=("CDKN1A", "HIST1H2BK")),
...              options=SearchOptions(top=20))  # doctest: +SKIP
>>> res.hits.head()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import os
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..compendium import Compendium
from ..ids.genes import GeneResolver
from ..progress import track
from .index import SearchIndex
from .methods import Block, SearchMethod, get_method, score_blocks
from .null import empirical_p, fdr_bh, ncs, null_rows, random_queries
from .queries import Query, ResolvedQuery, resolve_query
from .results import HIT_COLUMNS, SearchResult, aggregate_compounds

__all__ = ["SearchOptions", "search"]

logger = logging.getLogger(__name__)

#: Bytes of block values (and ranks) read at once when blocks come from the effects.
_READ_BUDGET = 256 * 2**20
#: Bytes of null scores held at once (queries are scored in batches that fit).
_NULL_BUDGET = 512 * 2**20
#: Methods whose scores CMap normalizes (NCS).
_NCS_METHODS = ("wtcs", "ks")
_TIME_TOL = 1e-6


@dataclass(frozen=True)
class SearchOptions:
    """How :func:`search` runs.

    Parameters
    ----------
    method
        A registered method (:func:`~perturbridge.search.list_methods`): ``wtcs``,
        ``ks``, ``xsum``, ``cosine``, ``spearman``.
    n_null
        Random queries of the same sizes per query for the empirical p-values
        (0: no p-values or FDR).
    null_per_group
        The random queries are scored on up to this many conditions of each dataset ×
        cell context (drawn with ``seed``), and a condition's null is the pooled scores
        of its group (docs/search.md, "Significance"); ``None``: on every condition.
    seed
        Seed of the random queries.
    top
        Conditions reported per query in :attr:`SearchResult.hits`.
    datasets, assays, contexts, times
        Restriction: only conditions of these datasets, assays, cell contexts (id or
        name) and times (hours); ``None``: all.
    direction
        ``similar``: the conditions that produce the query's change first; ``opposite``:
        those that reverse it first.
    set_size
        For a set-based method and a signature or condition query: the up and down sets
        are its ``set_size`` largest positive and negative values.
    exclude_self
        Leave a condition query's own condition out of its results.
    rank_by
        Order of the hits: ``score`` (the method's score), or ``ncs`` (CMap's normalized
        score; WTCS and KS only). NCS divides by the mean score of each dataset × cell
        context, which is unstable where a context has few conditions or is dominated by
        one compound (see docs/search.md).
    skip_unmatched
        A query none of whose genes is in the store is left out (listed in
        :attr:`SearchResult.queries` with the reason) instead of being an error.
    mode, layer
        Which effects are searched: replicate mode (``group``: one row per condition)
        and layer (``logFC`` or ``t``).
    block_rows
        Conditions scored at once (memory bound).
    use_index
        ``auto``: read the store's search index when it has a current one, else the
        effects; ``never``: always the effects; ``always``: the index or an error.
    refs
        A reference store (``perturbridge refs build``): query identifiers that match no
        gene id or symbol of the store are resolved through its gene tables (aliases,
        previous symbols, Entrez, Ensembl), e.g. symbols against a store keyed by Entrez
        ids. ``None``: identifiers must match the store's gene ids or symbols.
    n_jobs
        Threads scoring a block's rows (``-1``: every core, the default: a query is
        answered while someone waits).
    progress
        Show a progress bar over the blocks.
    """

    method: str = "wtcs"
    n_null: int = 100
    null_per_group: int | None = 250
    seed: int = 0
    top: int = 50
    datasets: tuple[str, ...] | None = None
    assays: tuple[str, ...] | None = None
    contexts: tuple[str, ...] | None = None
    times: tuple[float, ...] | None = None
    direction: Literal["similar", "opposite"] = "similar"
    set_size: int = 100
    exclude_self: bool = True
    rank_by: Literal["score", "ncs"] = "score"
    skip_unmatched: bool = False
    mode: Literal["group", "separate"] = "group"
    layer: str = "logFC"
    block_rows: int = 65_536
    use_index: Literal["auto", "never", "always"] = "auto"
    refs: str | None = None
    n_jobs: int = -1
    progress: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("datasets", "assays", "contexts"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, (value,))
            elif value is not None:
                object.__setattr__(self, name, tuple(str(v) for v in value))
        if self.times is not None:
            times = (self.times,) if isinstance(self.times, (int, float)) else self.times
            object.__setattr__(self, "times", tuple(float(t) for t in times))
        checks = {
            "n_null": self.n_null >= 0,
            "top": self.top >= 1,
            "set_size": self.set_size >= 1,
            "block_rows": self.block_rows >= 1,
            "null_per_group": self.null_per_group is None or self.null_per_group >= 1,
            "n_jobs": self.n_jobs >= 1 or self.n_jobs == -1,
        }
        bad = [f"{k}={getattr(self, k)!r}" for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"SearchOptions: {', '.join(bad)} (n_null >= 0, n_jobs >= 1 or -1, the others >= 1)"
            )
        for name, allowed in (("direction", ("similar", "opposite")),
                              ("mode", ("group", "separate")),
                              ("use_index", ("auto", "never", "always")),
                              ("rank_by", ("score", "ncs"))):  # fmt: skip
            if getattr(self, name) not in allowed:
                raise ValueError(f"SearchOptions: {name} must be one of {allowed}, "
                                 f"found {getattr(self, name)!r}")  # fmt: skip

    def record(self) -> dict[str, Any]:
        """The options as plain values (for ``search.json``)."""
        out = asdict(self)
        out.pop("progress")
        return out


# --------------------------------------------------------------------------- queries


def _condition_query(comp: Compendium, condition_id: str, *, options: SearchOptions) -> Query:
    """The signature of a condition of the store as a query named by its id."""
    mode: Literal["group", "separate"] = "group" if "group" in comp.modes else options.mode
    try:
        eff = comp.effects([condition_id], layer=options.layer, mode=mode)
    except KeyError as err:
        raise KeyError(
            f"query condition {condition_id!r} is not a condition of {comp.path} "
            f"(condition ids as in `perturbridge query` / Compendium.conditions())"
        ) from err
    values = np.nanmean(np.asarray(eff.X, dtype=np.float64), axis=0) if eff.n_obs > 1 else (
        np.asarray(eff.X[0], dtype=np.float64)
    )  # fmt: skip
    sig = pd.Series(values, index=eff.var_names.astype(str))
    sig = sig[np.isfinite(sig.to_numpy())]
    if sig.empty:
        raise ValueError(f"query condition {condition_id!r} has no measured gene")
    return Query(condition_id, signature=sig)


def _as_sets(query: Query, set_size: int) -> Query:
    """A signature query as up/down sets: its ``set_size`` largest positive and negative
    values."""
    if query.signature is None:  # pragma: no cover - only signature queries come here
        raise TypeError(f"query {query.name!r} has no signature")
    sig = query.signature[np.isfinite(query.signature.to_numpy(dtype=np.float64))]
    sig = sig.astype(np.float64)
    up = sig[sig > 0].sort_values(ascending=False, kind="stable").index[:set_size]
    down = sig[sig < 0].sort_values(ascending=True, kind="stable").index[:set_size]
    if not len(up) and not len(down):
        raise ValueError(f"query {query.name!r}: the signature has no non-zero value")
    return Query(query.name, up=tuple(map(str, up)), down=tuple(map(str, down)))


def _queries(
    comp: Compendium,
    queries: Query | str | Sequence[Query | str],
    method: SearchMethod,
    options: SearchOptions,
) -> tuple[list[ResolvedQuery], pd.DataFrame]:
    """Resolve the queries onto the store's gene axis; returns them and the query table."""
    items: list[Query | str] = (
        [queries] if isinstance(queries, (Query, str)) else list(queries)
    )  # fmt: skip
    if not items:
        raise ValueError("no query given")
    genes = comp.genes()
    resolver = GeneResolver.from_store(options.refs) if options.refs is not None else None
    resolved: list[ResolvedQuery] = []
    rows: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, str):
            query, kind, cond = _condition_query(comp, item, options=options), "condition", item
        elif isinstance(item, Query):
            query, kind, cond = item, item.kind, None
        else:
            raise TypeError(f"a query is a Query or a condition id, found {type(item).__name__}")
        if query.kind == "signature" and method.query_kind == "sets":
            query = _as_sets(query, options.set_size)
        if query.kind == "sets" and method.query_kind == "signature":
            raise ValueError(
                f"method {method.name!r} scores signatures; query {query.name!r} is up/down "
                "gene sets: give a signature or a condition, or use a set method "
                "(wtcs, ks, xsum)"
            )
        row: dict[str, Any] = {"query": query.name, "kind": kind, "condition_id": cond}
        try:
            rq = resolve_query(query, genes, resolver=resolver)
        except KeyError as err:  # no gene of the query in the store
            why = str(err.args[0]) if err.args else str(err)
            if not options.skip_unmatched:
                raise KeyError(
                    f"{why} (skip_unmatched / --skip-unmatched leaves such queries out)"
                ) from err
            n_ids = len(query.up) + len(query.down) + (
                0 if query.signature is None else len(query.signature)
            )  # fmt: skip
            rows.append(row | {"n_up": 0, "n_down": 0, "n_signature": 0, "n_unmatched": n_ids,
                               "unmatched": "", "skipped": why})  # fmt: skip
            continue
        resolved.append(rq)
        rows.append(
            row
            | {
                "n_up": len(rq.up_cols),
                "n_down": len(rq.down_cols),
                "n_signature": len(rq.signature_cols),
                "n_unmatched": len(rq.unmatched),
                "unmatched": ", ".join(rq.unmatched),
                "skipped": "",
            }
        )
    table = pd.DataFrame(rows)
    dup = table["query"][table["query"].duplicated()].tolist()
    if dup:
        raise ValueError(f"query names must be unique; repeated: {sorted(set(dup))[:5]}")
    if not resolved:
        raise ValueError(
            f"none of the {len(table)} queries has a gene in the store "
            f"(first: {table['skipped'].iloc[0]})"
        )
    return resolved, table


# --------------------------------------------------------------------------- conditions


_SELECT = """
SELECT c.contrast_id, c.condition_id, c.dataset, coalesce(d.assay, '') AS assay,
       c.perturbagen AS compound, k.compound_id, c.compound_inchikey, c.pubchem_cid,
       c.cell_context, c.cell_name, c.pert_dose_uM AS dose_uM, c.pert_time_h AS time_h,
       c.zarr_row
FROM contrasts c
JOIN conditions k ON k.condition_id = c.condition_id
LEFT JOIN datasets d ON d.dataset = c.dataset
WHERE c.mode = ?
"""


def _check_known(comp: Compendium, what: str, wanted: Sequence[str], sql: str) -> None:
    have = comp.sql(sql)
    known = {str(v) for col in have.columns for v in have[col].dropna()}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        shown = sorted(v for v in known if v)[:10]
        raise KeyError(f"{what} {unknown[:5]} not in the store; {what} there: {shown}")


def _select(comp: Compendium, options: SearchOptions) -> pd.DataFrame:
    """The conditions to search (one row per contrast of ``options.mode``), by zarr row."""
    where: list[str] = []
    params: list[Any] = [options.mode]
    if options.datasets is not None:
        _check_known(comp, "datasets", options.datasets, "SELECT dataset FROM datasets")
        where.append("c.dataset IN (SELECT unnest(?::VARCHAR[]))")
        params.append(list(options.datasets))
    if options.assays is not None:
        _check_known(comp, "assays", options.assays, "SELECT DISTINCT assay FROM datasets")
        where.append("d.assay IN (SELECT unnest(?::VARCHAR[]))")
        params.append(list(options.assays))
    if options.contexts is not None:
        _check_known(comp, "contexts", options.contexts,
                     "SELECT DISTINCT cell_context, cell_name FROM conditions")  # fmt: skip
        where.append("(c.cell_context IN (SELECT unnest(?::VARCHAR[])) OR "
                     "c.cell_name IN (SELECT unnest(?::VARCHAR[])))")  # fmt: skip
        params += [list(options.contexts), list(options.contexts)]
    if options.times is not None:
        where.append("(" + " OR ".join("abs(c.pert_time_h - ?) <= ?" for _ in options.times) + ")")
        for t in options.times:
            params += [t, _TIME_TOL * max(abs(t), 1e-12)]
    sql = _SELECT + "".join(f" AND {w}" for w in where) + " ORDER BY c.zarr_row"
    sel = comp.sql(sql, params)
    if sel.empty:
        raise ValueError(
            f"no {options.mode}-mode condition of {comp.path} matches the restriction "
            f"(datasets={options.datasets}, assays={options.assays}, "
            f"contexts={options.contexts}, times={options.times})"
        )
    return sel.reset_index(drop=True)


# --------------------------------------------------------------------------- blocks


def _rank_rows(values: np.ndarray) -> np.ndarray:
    """1-based rank of each value in its row sorted descending among the row's measured
    (non-NaN) values; 0 where NaN."""
    order = np.argsort(np.where(np.isnan(values), np.inf, -values), axis=1, kind="stable")
    ranks = np.empty(values.shape, dtype=np.int32)
    rows = np.arange(values.shape[0])[:, None]
    ranks[rows, order] = np.arange(1, values.shape[1] + 1, dtype=np.int32)[None, :]
    ranks[np.isnan(values)] = 0
    return ranks


def _effect_blocks(
    comp: Compendium,
    sel: pd.DataFrame,
    *,
    cols: np.ndarray | None,
    ranks: bool,
    options: SearchOptions,
) -> Iterator[Block]:
    """Blocks read through :meth:`Compendium.effects` (every gene column of a block of
    rows, so that ranks are over all measured genes), ``_READ_BUDGET`` bytes at a time."""
    n_genes = len(comp.genes())
    per_row = 4 * n_genes * (2 if ranks else 1) + 1
    step = max(1, min(options.block_rows, _READ_BUDGET // per_row))
    all_cols = np.arange(n_genes, dtype=np.int64)
    take = all_cols if cols is None else cols
    for start in range(0, len(sel), step):
        part = sel.iloc[start : start + step]
        eff = comp.effects(part["contrast_id"].tolist(), layer=options.layer, mode=options.mode)
        x = np.asarray(eff.X, dtype=np.float32)
        measured = ~np.isnan(x)
        r = _rank_rows(x)[:, take] if ranks else None
        norms = np.sqrt(np.nansum(x.astype(np.float64) ** 2, axis=1))
        yield Block(
            rows=part["zarr_row"].to_numpy(dtype=np.int64),
            cols=take,
            values=np.ascontiguousarray(x[:, take]),
            ranks=r,
            n_measured=measured.sum(axis=1).astype(np.int32),
            norms=norms,
            complete=len(take) == n_genes,
        )


def _block_source(comp: Compendium, options: SearchOptions) -> Any:
    """The store's current search index for the mode and layer searched, or None (blocks
    from the effects)."""
    if options.use_index == "never":
        return None
    try:
        return SearchIndex.open(comp, mode=options.mode, layer=options.layer)
    except (FileNotFoundError, KeyError, ValueError) as err:
        if options.use_index == "always":
            raise
        exists = (comp.path / "search" / f"{options.mode}-{options.layer}").exists()
        (logger.warning if exists else logger.info)(
            "search index of %s not used (%s): reading the effects", comp.path, err
        )
        return None


def _blocks(
    comp: Compendium,
    index: Any,
    sel: pd.DataFrame,
    *,
    cols: np.ndarray | None,
    method: SearchMethod,
    options: SearchOptions,
) -> Iterator[Block]:
    """The blocks of the selected conditions with ``cols`` (None: all genes)."""
    ranks = bool(method.needs_ranks)
    if index is None:
        yield from _effect_blocks(comp, sel, cols=cols, ranks=ranks, options=options)
        return
    rows = sel["zarr_row"].to_numpy(dtype=np.int64)
    # only the columns each dataset measures: the methods take a missing column as a gene
    # not measured, and nothing is padded to the union gene axis
    yield from index.blocks(
        cols=cols, rows=rows, ranks=ranks, block_rows=options.block_rows, measured_only=True
    )


# --------------------------------------------------------------------------- scoring


def _score(
    comp: Compendium,
    index: Any,
    rows: pd.DataFrame,
    queries: Sequence[ResolvedQuery],
    *,
    method: SearchMethod,
    options: SearchOptions,
    dtype: type = np.float64,
) -> np.ndarray:
    """Scores ``(len(queries), len(rows))`` of ``queries`` on the conditions ``rows`` (a
    part of the selection, by zarr row), block by block."""
    if method.needs_all_genes:
        cols = None
    else:
        cols = np.unique(np.concatenate([q.cols for q in queries])).astype(np.int64)
    n = len(rows)
    out: np.ndarray = np.full((len(queries), n), np.nan, dtype=dtype)
    zrows = rows["zarr_row"].to_numpy(dtype=np.int64)
    blocks = _blocks(comp, index, rows, cols=cols, method=method, options=options)
    total = math.ceil(n / options.block_rows) if index is not None else None
    tracked = track(blocks, description="search", enabled=options.progress, total=total)
    for block, scores in score_blocks(method, queries, tracked, n_jobs=options.n_jobs):
        pos = np.searchsorted(zrows, block.rows)
        if (pos >= n).any() or (zrows[np.minimum(pos, n - 1)] != block.rows).any():
            raise RuntimeError("a block holds rows that were not selected")  # a bug
        out[:, pos] = np.asarray(scores, dtype=np.float64)
    return out


def _strata(genes: pd.DataFrame) -> np.ndarray:
    """A label per store gene column: the set of datasets that measure it (random queries
    draw as many genes of each as the query has, so they hit as many measured genes of
    each condition)."""
    keys = [",".join(sorted(map(str, d))) if d is not None else "" for d in genes["datasets"]]
    codes, _ = pd.factorize(pd.Series(keys, dtype=object))
    return np.asarray(codes, dtype=np.int64)


def _query_seed(seed: int, name: str) -> int:
    return int(np.random.SeedSequence([seed, zlib.crc32(name.encode())]).generate_state(1)[0])


def _batches(n_queries: int, n_rows: int, n_null_scores: int) -> Iterator[range]:
    """Query batches whose scores (observed over every row, null over the null rows) fit
    ``_NULL_BUDGET``."""
    per_query = max(1, n_rows * 8 + n_null_scores * 4)
    size = max(1, _NULL_BUDGET // per_query)
    for start in range(0, n_queries, size):
        yield range(start, min(n_queries, start + size))


def _groups(sel: pd.DataFrame) -> np.ndarray:
    """The null and NCS group of each condition: dataset × cell context."""
    return (sel["dataset"].astype(str) + "\x1f" + sel["cell_context"].astype(str)).to_numpy()


def _per_query(
    name: str,
    observed: np.ndarray,
    null: np.ndarray,
    sel: pd.DataFrame,
    *,
    method: SearchMethod,
    options: SearchOptions,
    self_condition: str | None,
    null_idx: np.ndarray,
) -> pd.DataFrame:
    """Every selected condition of one query with score, NCS, p and FDR; ``null`` holds
    the random queries' scores on the conditions ``null_idx`` of ``sel``."""
    score = observed.copy()
    if isinstance(self_condition, str) and options.exclude_self:
        score[(sel["condition_id"] == self_condition).to_numpy()] = np.nan
    groups = _groups(sel)
    ok = np.isfinite(score)
    p = np.full(len(score), np.nan)
    fdr = np.full(len(score), np.nan)
    if options.n_null and ok.any():
        p[ok] = empirical_p(score[ok], null.astype(np.float64), groups=groups[ok],
                            null_groups=groups[null_idx])  # fmt: skip
        fdr[ok] = fdr_bh(p[ok])
    frame = sel.drop(columns=["zarr_row"]).copy()
    frame.insert(0, "query", name)
    frame["score"] = score
    if method.name in _NCS_METHODS:
        norm = np.full(len(score), np.nan)
        if ok.any():
            norm[ok] = ncs(score[ok], groups=groups[ok])
        frame["ncs"] = norm
    frame["p"] = p
    frame["fdr"] = fdr
    return frame


def _top(frame: pd.DataFrame, *, sign: int, top: int, key: str) -> pd.DataFrame:
    ok = frame[np.isfinite(frame[key].to_numpy(dtype=np.float64))]
    order = np.lexsort((ok["contrast_id"].to_numpy(), -sign * ok[key].to_numpy()))
    hits = ok.iloc[order[:top]].copy()
    hits.insert(1, "rank", np.arange(1, len(hits) + 1, dtype=np.int64))
    return hits


def search(
    store: str | os.PathLike[str] | Compendium,
    queries: Query | str | Sequence[Query | str],
    *,
    options: SearchOptions | None = None,
) -> SearchResult:
    """Score queries against the conditions of a store.

    Parameters
    ----------
    store
        A store path or an open :class:`~perturbridge.compendium.Compendium`.
    queries
        A :class:`~perturbridge.search.Query` (up/down gene sets or a signature), a
        condition id of the store (its signature is the query), or a list of them.
    options
        :class:`SearchOptions` (method, null size, restriction, top, ...).

    Returns
    -------
    SearchResult
        Top conditions per query, the per-compound summary, the query table.

    Raises
    ------
    KeyError
        An unknown method, condition, dataset, assay or context.
    ValueError
        A query that matches no gene of the store, a gene-set query for a signature
        method, or a restriction that selects nothing.
    """
    options = options or SearchOptions()
    if isinstance(store, Compendium):
        return _search(store, queries, options)
    with Compendium.open(store) as comp:
        return _search(comp, queries, options)


def _search(
    comp: Compendium, queries: Query | str | Sequence[Query | str], options: SearchOptions
) -> SearchResult:
    start = time.perf_counter()
    method = get_method(options.method)
    if options.rank_by == "ncs" and method.name not in _NCS_METHODS:
        raise ValueError(
            f"rank_by='ncs' needs a method with NCS ({', '.join(_NCS_METHODS)}), "
            f"found {method.name!r}"
        )
    resolved, qtable = _queries(comp, queries, method, options)
    sel = _select(comp, options)
    genes = comp.genes()
    n_genes, strata = len(genes), _strata(genes)
    index = _block_source(comp, options)
    if options.null_per_group is None:
        null_idx = np.arange(len(sel))
    else:
        null_idx = null_rows(_groups(sel), per_group=options.null_per_group, seed=options.seed)
    null_sel = sel.iloc[null_idx]
    higher = bool(method.higher_is_similar)
    sign = 1 if (options.direction == "similar") == higher else -1
    hits: list[pd.DataFrame] = []
    compounds: list[pd.DataFrame] = []
    names = [rq.name for rq in resolved]
    conds = dict(zip(qtable["query"], qtable["condition_id"], strict=True))
    r = options.n_null
    for batch in _batches(len(resolved), len(sel), r * len(null_idx)):
        part = [resolved[i] for i in batch]
        observed = _score(comp, index, sel, part, method=method, options=options)
        null = np.zeros((len(part), r, len(null_idx)), dtype=np.float32)
        if r:
            # one seed per query, from its name: batching and the other queries change nothing
            randoms = []
            for rq in part:
                seed = _query_seed(options.seed, rq.name)
                randoms += random_queries(rq, n=r, n_cols=n_genes, strata=strata, seed=seed)
            null = _score(comp, index, null_sel, randoms, method=method, options=options,
                          dtype=np.float32).reshape(len(part), r, len(null_idx))  # fmt: skip
        for j, i in enumerate(batch):
            frame = _per_query(
                names[i], observed[j], null[j], sel, method=method, options=options,
                self_condition=conds[names[i]], null_idx=null_idx,
            )  # fmt: skip
            hits.append(_top(frame, sign=sign, top=options.top, key=options.rank_by))
            compounds.append(aggregate_compounds(frame, sign=sign))
    columns = [c for c in HIT_COLUMNS if c in hits[0].columns]
    info = {
        "method": method.name,
        "options": options.record(),
        "store": str(comp.path),
        "build_key": comp.manifest.get("build_key", ""),
        "n_conditions": len(sel),
        "n_genes": n_genes,
        "blocks_from": "index" if index is not None else "effects",
        "seconds": round(time.perf_counter() - start, 3),
    }
    logger.info("search: %d queries × %d conditions in %.2f s", len(resolved), len(sel),
                info["seconds"])  # fmt: skip
    return SearchResult(
        hits=pd.concat(hits, ignore_index=True)[columns],
        compounds=pd.concat(compounds, ignore_index=True),
        queries=qtable,
        info=info,
    )

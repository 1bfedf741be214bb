"""The ``published`` agreement profile from end to end (``docs/agreement.md``).

:func:`run_published` reads a release tree (or the release files a store was imported
from), matches conditions across every dataset pair, scores them, summarises Tables
4-6 with both weightings and Tables 7, 8 and 10 per dataset, and returns the tables;
:func:`write_published` writes them as TSV and Parquet into one folder, atomically.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..._version import __version__
from ..run import INFO_FILE, write_agreement_folder
from . import cross, replicate, summary
from .inputs import ReleaseData, open_source
from .retrieval import (
    RetrievalOptions,
    published_retrieval,
    retrieval_summary as summarize_retrieval,
)

__all__ = [
    "TABLES",
    "PublishedOptions",
    "PublishedResult",
    "read_published",
    "run_published",
    "write_published",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishedOptions:
    """Options of the published profile; the defaults are the published analysis.

    ``weighting``: ``"auto"`` uses ``sample_pairs`` when every dataset has its
    sample-level processed file and ``condition`` otherwise; both summaries are always
    written when possible. ``n_boot`` bootstrap draws (2,000). ``progress`` shows a
    progress bar per dataset pair and dataset.
    """

    datasets: tuple[str, ...] | None = None
    weighting: str = "auto"
    max_fold: float = 10.0
    min_context_compounds: int = 10
    max_peers_cross: int = 512
    max_peers_replicate: int = 256
    n_boot: int = 2000
    replicates: bool = True
    retrieval: bool = False
    progress: bool = False


@dataclass
class PublishedResult:
    """Tables of a published-profile run (``pairs`` is the primary weighting's)."""

    weighting: str
    pairs: pd.DataFrame
    pairs_condition: pd.DataFrame
    contexts: pd.DataFrame
    summary: pd.DataFrame
    replicate_conditions: pd.DataFrame
    replicate_summary: pd.DataFrame
    retrieval: pd.DataFrame = field(default_factory=pd.DataFrame)
    retrieval_summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables by their file names in an agreement folder."""
        return {name: getattr(self, attr) for name, attr in TABLES.items()}


#: Table file names of a published agreement folder → attributes of the result.
TABLES = {
    "published_pairs": "pairs",
    "published_pairs_condition": "pairs_condition",
    "published_contexts": "contexts",
    "published_summary": "summary",
    "published_replicate_conditions": "replicate_conditions",
    "published_replicate_summary": "replicate_summary",
    "published_retrieval": "retrieval",
    "published_retrieval_summary": "retrieval_summary",
}


def _pairs_for(
    data: ReleaseData,
    weighting: cross.Weighting,
    opts: cross.MatchOptions,
    cache: dict[Any, Any],
    progress: bool,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    units = {name: cross.units_for(data, name, weighting) for name in data.names}
    global_sets = cross.global_genes(data, units)
    parts, ctxs = [], []
    for a, b in cross.dataset_pairs(data.names):
        matches, ctx = cross.match_units(units[a], units[b], options=opts)
        if not ctx.empty:
            ctx.insert(0, "dataset_b", b)
            ctx.insert(0, "dataset_a", a)
            ctx.insert(0, "weighting", weighting)
            ctxs.append(ctx)
        if matches.empty:
            continue
        parts.append(
            cross.score_pairs(
                data, matches, dataset_a=a, dataset_b=b, global_sets=global_sets,
                options=opts, cache=cache, progress=progress,
            )
        )  # fmt: skip
    pairs = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    contexts = pd.concat(ctxs, ignore_index=True) if ctxs else pd.DataFrame()
    return pairs, contexts


def run_published(
    source: str | os.PathLike[str] | ReleaseData,
    *,
    options: PublishedOptions | None = None,
) -> PublishedResult:
    """Run the published agreement analysis on a release tree.

    Examples
    --------
    >>> res = run_published("release/")  # doctest: +SKIP
    >>> res.summary.query("metric == 'observed_direction_agreement_p05'")  # doctest: +SKIP
    """
    opts = options or PublishedOptions()
    if opts.weighting not in ("auto", "sample_pairs", "condition"):
        raise ValueError(
            f"weighting must be 'auto', 'sample_pairs' or 'condition', got {opts.weighting!r}"
        )
    skipped: dict[str, str] = {}
    if isinstance(source, ReleaseData):
        data = source
    else:
        data, skipped = open_source(source, datasets=opts.datasets, replicates=opts.replicates)
    if len(data.names) < 2:
        why = "".join(f"; {k}: {v}" for k, v in skipped.items())
        raise ValueError(
            f"cross-dataset agreement needs at least two datasets; got {data.names}{why}"
        )
    has_samples = all(d.processed is not None for d in data.datasets)
    if opts.weighting == "sample_pairs" and not has_samples:
        lacking = [d.name for d in data.datasets if d.processed is None]
        raise ValueError(
            f"weighting 'sample_pairs' needs <dataset>_processed.h5ad for every dataset; "
            f"missing for {lacking} (use weighting 'condition')"
        )
    primary = (
        opts.weighting
        if opts.weighting != "auto"
        else ("sample_pairs" if has_samples else "condition")
    )
    mopts = cross.MatchOptions(
        max_fold=opts.max_fold,
        min_context_compounds=opts.min_context_compounds,
        max_peers=opts.max_peers_cross,
    )
    cache: dict[Any, Any] = {}
    pairs_c, ctx_c = _pairs_for(data, "condition", mopts, cache, opts.progress)
    summaries = [summary.cross_summary(pairs_c, weighting="condition", n_boot=opts.n_boot)]
    contexts = [ctx_c]
    pairs = pairs_c
    if has_samples:
        pairs_s, ctx_s = _pairs_for(data, "sample_pairs", mopts, cache, False)
        summaries.insert(
            0, summary.cross_summary(pairs_s, weighting="sample_pairs", n_boot=opts.n_boot)
        )
        contexts.insert(0, ctx_s)
        if primary == "sample_pairs":
            pairs = pairs_s
    rep_conditions = pd.DataFrame()
    rep_summary = pd.DataFrame()
    if opts.replicates:
        units = {name: cross.units_for(data, name, "condition") for name in data.names}
        rep_global = cross.global_genes(data, units)
        parts = [
            replicate.replicate_conditions(
                d,
                global_genes=rep_global,
                max_peers=opts.max_peers_replicate,
                progress=opts.progress,
            )
            for d in data.datasets
        ]
        parts = [p for p in parts if not p.empty]
        if parts:
            rep_conditions = pd.concat(parts, ignore_index=True)
            rep_summary = summary.replicate_summary(rep_conditions, n_boot=opts.n_boot)
    retrieval = pd.DataFrame()
    retrieval_summary = pd.DataFrame()
    if opts.retrieval:
        # Table 9's panels: cosine and Spearman with 256 peers, negative L2 with every
        # eligible peer (the published runs)
        panels = (("cosine", "spearman"), 256), (("negative_l2",), None)
        parts = [
            published_retrieval(
                data,
                options=RetrievalOptions(
                    similarities=sims,  # type: ignore[arg-type]
                    weighting=primary,  # type: ignore[arg-type]
                    max_fold=opts.max_fold,
                    min_context_compounds=opts.min_context_compounds,
                    max_peers=cap,
                ),
            )
            for sims, cap in panels
        ]
        parts = [p for p in parts if not p.empty]
        if parts:
            retrieval = pd.concat(parts, ignore_index=True)
            retrieval_summary = pd.concat(
                [summarize_retrieval(p, n_boot=opts.n_boot) for p in parts], ignore_index=True
            )
    info = {
        "format": "perturbridge-agreement",
        "profile": "published",
        "weighting": primary,
        "weighting_note": (
            "sample_pairs: every matched processed sample pair weighs one (the published "
            "pipeline)" if primary == "sample_pairs" else
            "condition: one row per matched condition pair (no sample-level processed files)"
        ),
        "datasets": data.names,
        "skipped_datasets": skipped,
        "root": str(data.root),
        "options": asdict(opts),
        "version": __version__,
    }  # fmt: skip
    return PublishedResult(
        weighting=primary,
        pairs=pairs,
        pairs_condition=pairs_c,
        contexts=pd.concat([c for c in contexts if not c.empty], ignore_index=True)
        if any(not c.empty for c in contexts)
        else pd.DataFrame(),
        summary=pd.concat([s for s in summaries if not s.empty], ignore_index=True)
        if any(not s.empty for s in summaries)
        else pd.DataFrame(),
        replicate_conditions=rep_conditions,
        replicate_summary=rep_summary,
        retrieval=retrieval,
        retrieval_summary=retrieval_summary,
        info=info,
    )


def write_published(result: PublishedResult, out: str | os.PathLike[str]) -> Path:
    """Write every table (Parquet and CSV) and ``agreement.json`` (``profile:
    published``) into the folder ``out``, atomically (see
    :func:`~perturbridge.agreement.run.write_agreement_folder`)."""
    return write_agreement_folder(out, result.tables, result.info)


def read_published(folder: str | os.PathLike[str]) -> PublishedResult:
    """Read a folder written by :func:`write_published`."""
    folder = Path(folder)
    info_path = folder / INFO_FILE
    if not info_path.is_file():
        raise FileNotFoundError(f"{folder} is not an agreement folder (no {INFO_FILE})")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if info.get("profile") != "published":
        raise ValueError(
            f"{folder} holds the {info.get('profile', 'perturbridge')!r} profile, not 'published'"
        )
    frames = {}
    for name, attr in TABLES.items():
        path = folder / f"{name}.parquet"
        frames[attr] = pd.read_parquet(path) if path.is_file() else pd.DataFrame()
    return PublishedResult(weighting=str(info.get("weighting", "")), info=info, **frames)

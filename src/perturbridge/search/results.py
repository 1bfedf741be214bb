"""What a search returns: the top conditions of each query, the per-compound summary over
every condition searched, and how both are written and drawn.

:class:`SearchResult` holds

- ``hits``: the ``top`` conditions of each query, best first (columns in :data:`HIT_COLUMNS`);
- ``compounds``: one row per query × compound over *every* condition searched (not only
  the top ones): in how many contexts it was measured and how many of them agree with
  the query (see :func:`aggregate_compounds`);
- ``queries``: one row per query: its kind, gene counts on the store's gene axis and the
  identifiers that matched no gene of the store (never dropped silently);
- ``info``: the options, the store and how the search ran.

:meth:`SearchResult.write` writes the tables atomically into one folder with a
provenance record; :meth:`SearchResult.figure` draws the top hits.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..io import atomic_dir, provenance

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["COMPOUND_COLUMNS", "HIT_COLUMNS", "SearchResult", "aggregate_compounds"]

#: Columns of :attr:`SearchResult.hits`, in order (``ncs`` only for WTCS and KS).
HIT_COLUMNS = (
    "query",
    "rank",
    "condition_id",
    "contrast_id",
    "dataset",
    "assay",
    "compound",
    "compound_id",
    "compound_inchikey",
    "pubchem_cid",
    "cell_context",
    "cell_name",
    "dose_uM",
    "time_h",
    "score",
    "ncs",
    "p",
    "fdr",
)

#: Columns of :attr:`SearchResult.compounds`, in order.
COMPOUND_COLUMNS = (
    "query",
    "compound_id",
    "compound",
    "compound_inchikey",
    "pubchem_cid",
    "n_conditions",
    "n_contexts",
    "n_contexts_agree",
    "n_contexts_oppose",
    "median_score",
    "best_score",
    "best_condition",
    "n_significant",
    "datasets",
    "assays",
)


def _joined(df: pd.DataFrame, keys: list[str], column: str) -> pd.Series:
    """Per group of ``keys``: the distinct non-empty texts of ``column``, sorted and
    comma-joined (one Python join per group, not a pandas call per group)."""
    pairs = df[[*keys, column]].drop_duplicates()
    vals = pairs[column]
    pairs = pairs[vals.notna().to_numpy() & (vals.astype(str) != "").to_numpy()]
    if pairs.empty:
        return pd.Series(dtype=object, name=column)
    pairs = pairs.sort_values([*keys, column], kind="stable")
    k = pairs[keys]
    starts = np.flatnonzero(k.ne(k.shift()).any(axis=1).to_numpy())
    ends = np.append(starts[1:], len(pairs))
    values = pairs[column].astype(str).to_numpy()
    texts = [", ".join(values[a:b]) for a, b in zip(starts, ends, strict=True)]
    return pd.Series(texts, index=pd.MultiIndex.from_frame(k.iloc[starts]), name=column)


def aggregate_compounds(frame: pd.DataFrame, *, sign: int = 1, alpha: float = 0.05) -> pd.DataFrame:
    """Summarise the scored conditions of one or more queries per query × compound.

    A compound's **context** is one dataset × cell context; its score there is the median
    score of its conditions in that context (doses, times, replicates). The context
    **agrees** with the query when that median has the sign ``sign`` (``+1``: the query
    asks for similar conditions, ``-1``: for reversing ones) and **opposes** it when it has
    the other sign.

    Parameters
    ----------
    frame
        One row per scored condition with the columns ``query``, ``compound_id``,
        ``compound``, ``compound_inchikey``, ``pubchem_cid``, ``dataset``, ``assay``,
        ``cell_context``, ``condition_id``, ``score`` and ``fdr``. Rows whose score is
        NaN (nothing to compare) are not counted.
    sign
        ``+1`` or ``-1``: the direction that agrees.
    alpha
        ``n_significant`` counts conditions with ``fdr < alpha``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COMPOUND_COLUMNS`; per query, compounds by ``median_score``
        (the median of the context scores) in the direction of ``sign``, best first.
        ``best_score`` is the most extreme score in that direction.
    """
    if sign not in (1, -1):
        raise ValueError(f"sign must be +1 or -1, found {sign!r}")
    missing = [
        c
        for c in ("query", "compound_id", "dataset", "cell_context", "condition_id", "score")
        if c not in frame.columns
    ]
    if missing:
        raise KeyError(f"aggregate_compounds: missing columns {missing}")
    df = frame[np.isfinite(frame["score"].to_numpy(dtype=np.float64))]
    df = df[df["compound_id"].notna()]
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COMPOUND_COLUMNS})
    keys = ["query", "compound_id"]
    ctx = (
        df.groupby([*keys, "dataset", "cell_context"], sort=False, dropna=False)["score"]
        .median()
        .rename("ctx_score")
        .reset_index()
    )
    ctx_sign = np.sign(ctx["ctx_score"].to_numpy()) * sign
    ctx["agree"] = ctx_sign > 0
    ctx["oppose"] = ctx_sign < 0
    per_ctx = ctx.groupby(keys, sort=False).agg(
        n_contexts=("ctx_score", "size"),
        n_contexts_agree=("agree", "sum"),
        n_contexts_oppose=("oppose", "sum"),
        median_score=("ctx_score", "median"),
    )
    signed = df["score"] * sign
    best_idx = signed.groupby([df["query"], df["compound_id"]], sort=False).idxmax()
    best = df.loc[best_idx.to_numpy(), [*keys, "score", "condition_id"]].rename(
        columns={"score": "best_score", "condition_id": "best_condition"}
    )
    fdr = df["fdr"] if "fdr" in df.columns else pd.Series(np.nan, index=df.index)
    extra = {c: df[c] if c in df.columns else "" for c in ("compound", "compound_inchikey",
                                                          "assay")}  # fmt: skip
    per_cond = (
        pd.DataFrame(
            {
                "query": df["query"],
                "compound_id": df["compound_id"],
                "compound": extra["compound"],
                "compound_inchikey": extra["compound_inchikey"],
                "pubchem_cid": df["pubchem_cid"] if "pubchem_cid" in df.columns else pd.NA,
                "dataset": df["dataset"],
                "assay": extra["assay"],
                "significant": (fdr < alpha).to_numpy(),
            }
        )
        .groupby(keys, sort=False)
        .agg(
            compound_inchikey=("compound_inchikey", "first"),
            pubchem_cid=("pubchem_cid", "first"),
            n_conditions=("dataset", "size"),
            n_significant=("significant", "sum"),
        )
    )
    texts = pd.DataFrame({"query": df["query"], "compound_id": df["compound_id"],
                          "compound": extra["compound"], "dataset": df["dataset"],
                          "assay": extra["assay"]})  # fmt: skip
    for col, name in (("compound", "compound"), ("dataset", "datasets"), ("assay", "assays")):
        per_cond[name] = _joined(texts, keys, col).reindex(per_cond.index).fillna("")
    out = per_cond.join(per_ctx).reset_index().merge(best, on=keys, how="left")
    out["_order"] = -out["median_score"] * sign
    first_seen = {q: i for i, q in enumerate(pd.unique(df["query"]))}
    out["_q"] = out["query"].map(first_seen)
    out = out.sort_values(["_q", "_order", "compound_id"], kind="stable")
    for col in ("n_contexts", "n_contexts_agree", "n_contexts_oppose", "n_significant"):
        out[col] = out[col].astype(np.int64)
    return out[list(COMPOUND_COLUMNS)].reset_index(drop=True)


@dataclass(frozen=True)
class SearchResult:
    """The result of :func:`~perturbridge.search.search`.

    Attributes
    ----------
    hits
        The top conditions of each query, best first (:data:`HIT_COLUMNS`): ``rank`` is
        1-based within the query, ``score`` the method's score, ``ncs`` CMap's normalized
        score (WTCS and KS only), ``p`` the empirical two-sided p-value and ``fdr`` its
        Benjamini-Hochberg adjustment over every condition searched for the query.
    compounds
        Per query × compound over every condition searched
        (:func:`aggregate_compounds`).
    queries
        One row per query: ``query``, ``kind`` (``sets``, ``signature`` or
        ``condition``), ``condition_id`` (for a condition query), ``n_up``, ``n_down``,
        ``n_signature`` (genes matched on the store's axis), ``n_unmatched`` and
        ``unmatched`` (the identifiers that matched no gene), ``skipped`` (why a query
        with no gene in the store was left out, with ``skip_unmatched``; else empty).
    info
        The options, the store (path, build key), the number of conditions searched and
        how the search ran.
    """

    hits: pd.DataFrame
    compounds: pd.DataFrame
    queries: pd.DataFrame
    info: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"SearchResult({len(self.queries)} queries, method {self.info.get('method')!r}, "
            f"{int(self.info.get('n_conditions', 0)):,} conditions searched, "
            f"{len(self.hits):,} hits)"
        )

    def by_compound(self) -> pd.DataFrame:
        """Per query × compound: contexts measured, contexts that agree and oppose,
        median and best score, conditions with FDR below 0.05, datasets and assays."""
        return self.compounds.copy()

    def figure(self, *, n_top: int = 15, queries: int = 4) -> Figure:
        """The top hits of the first ``queries`` queries: one panel each, a bar per hit
        (score; compound @ context, dose, time), coloured by dataset.

        Needs Matplotlib (drawn on the Agg canvas; no pyplot state is touched).
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
            from matplotlib.patches import Patch
        except ImportError as err:  # pragma: no cover - matplotlib is a dependency
            raise ImportError(
                "SearchResult.figure needs matplotlib (pip install matplotlib)"
            ) from err

        names = list(pd.unique(self.hits["query"]))[:queries] if len(self.hits) else []
        n = max(1, len(names))
        rows = [self.hits[self.hits["query"] == q].head(n_top) for q in names]
        height = max(2.5, 0.28 * max((len(r) for r in rows), default=1) + 1.2)
        fig = Figure(figsize=(8.0, height * n), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(n, 1, squeeze=False)[:, 0]
        datasets = sorted({str(d) for r in rows for d in r["dataset"]})
        palette = [f"C{i % 10}" for i in range(len(datasets))]
        colour = dict(zip(datasets, palette, strict=True))
        method = str(self.info.get("method", "score"))
        for ax, name, sel in zip(axes, names, rows, strict=False):
            labels = [_hit_label(r) for r in sel.itertuples(index=False)]
            y = np.arange(len(sel))[::-1]
            ax.barh(y, sel["score"].to_numpy(dtype=float),
                    color=[colour[str(d)] for d in sel["dataset"]])  # fmt: skip
            ax.set_yticks(y, labels, fontsize=7)
            ax.axvline(0.0, color="0.3", lw=0.8)
            ax.set_title(f"query {name}: top {len(sel)} of {method}", fontsize=9, loc="left")
            ax.set_xlabel(f"{method} score")
        if not names:
            axes[0].text(0.5, 0.5, "no hits", ha="center", va="center")
            axes[0].set_axis_off()
        if datasets:
            handles = [Patch(color=colour[d], label=d) for d in datasets]
            axes[0].legend(handles=handles, fontsize=7, loc="lower right", title="dataset")
        return fig

    def write(self, out: str | os.PathLike[str], *, replace: bool = False) -> Path:
        """Write the result into the folder ``out``, atomically.

        Files: ``hits.tsv``, ``compounds.tsv``, ``queries.tsv`` (tab-separated, with a
        header) and ``hits.parquet``, plus ``search.json`` (options, store, counts and a
        provenance record). An existing non-empty folder is replaced only with
        ``replace=True`` (else :class:`FileExistsError`); on any error nothing is left
        half-written.
        """
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise FileExistsError(f"{out} is a file; give a folder to write the search into")
        with atomic_dir(out, replace=replace) as tmp:
            self.hits.to_csv(tmp / "hits.tsv", sep="\t", index=False)
            self.hits.to_parquet(tmp / "hits.parquet", index=False)
            self.compounds.to_csv(tmp / "compounds.tsv", sep="\t", index=False)
            self.queries.to_csv(tmp / "queries.tsv", sep="\t", index=False)
            record = {
                "info": dict(self.info),
                "provenance": provenance(step="search", params=dict(self.info.get("options", {}))),
            }
            (tmp / "search.json").write_text(
                json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8"
            )
        return out


def _hit_label(row: Any) -> str:
    name = row.compound if isinstance(row.compound, str) and row.compound else row.compound_id
    parts = [f"{name} @ {row.cell_name or row.cell_context}"]
    if row.dose_uM == row.dose_uM and row.dose_uM is not None:  # not NaN
        parts.append(f"{row.dose_uM:g} µM")
    if row.time_h == row.time_h and row.time_h is not None:
        parts.append(f"{row.time_h:g} h")
    return f"{', '.join(parts)} [{row.dataset}]"

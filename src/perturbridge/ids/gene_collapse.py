"""Collapsing gene columns: a samples × genes matrix re-keyed by Ensembl gene id.

:func:`collapse_genes` takes the mapping of :meth:`perturbridge.ids.genes.GeneResolver.resolve`
for the columns. Counts of columns that map to one gene are **summed**. Log-scale values
are never averaged: when columns collapse, the caller must choose ``rule="first"`` (keep
the first column in input order) or ``rule="max_mean"`` (keep the column with the
highest mean), otherwise a ``ValueError`` lists the collisions. Every input column is
accounted for in the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._frames import missing_as_none

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["COLLAPSE_COLUMNS", "GeneCollapse", "collapse_genes", "upstream_var_columns"]


@dataclass(frozen=True)
class GeneCollapse:
    """Result of :func:`collapse_genes`.

    Attributes
    ----------
    matrix
        Samples × genes, columns in the order of ``var``.
    var
        One row per output gene, indexed by ``ensembl_gene_id``: ``symbol``,
        ``hgnc_id``, ``n_inputs`` (input columns combined into it), then the other
        columns of the input ``var`` (:func:`upstream_var_columns`).
    report
        One row per input column: ``input``, ``position``, ``ensembl_gene_id``,
        ``action`` (``kept``, ``summed``, ``dropped_rule``, ``dropped_unresolved``,
        ``dropped_ambiguous``, ``dropped_no_ensembl``) and ``rule``.
    """

    matrix: NDArray[np.floating[Any]] | sp.csr_matrix
    var: pd.DataFrame
    report: pd.DataFrame


#: ``var`` columns that :func:`collapse_genes` makes (never taken from the input ``var``).
COLLAPSE_COLUMNS = ("symbol", "hgnc_id", "n_inputs", "gene_status", "ensembl_gene_id")


def upstream_var_columns(
    var: pd.DataFrame, positions: np.ndarray, *, index: pd.Index
) -> pd.DataFrame:
    """The input ``var`` columns at ``positions`` (one per output gene), under ``index``.

    Every column but :data:`COLLAPSE_COLUMNS` is kept (L1000: ``entrez_id``,
    ``probe_id``, ``is_landmark``, ``is_bing``), with the value of the output gene's
    representative input column (the first, or the one its ``rule`` chose). Booleans
    become the nullable ``boolean`` dtype and text stays text with ``None`` for missing,
    so that genes added later without them (unresolved genes kept under their id) get
    missing values, not a column of mixed types.
    """
    cols = [c for c in var.columns if c not in COLLAPSE_COLUMNS]
    out = pd.DataFrame(index=index)
    for c in cols:
        values = var[c].iloc[positions]
        if pd.api.types.is_bool_dtype(values.dtype):
            out[c] = pd.array(values.to_numpy(), dtype="boolean")
        elif isinstance(values.dtype, pd.CategoricalDtype) or values.dtype == object:
            out[c] = missing_as_none(values.astype(object)).to_numpy()
        else:
            out[c] = values.to_numpy()
    return out


def collapse_genes(
    matrix: NDArray[np.floating[Any]] | sp.spmatrix,
    var: pd.DataFrame,
    mapping: pd.DataFrame,
    *,
    value_kind: Literal["counts", "log"],
    rule: Literal["sum", "first", "max_mean"] | None = None,
) -> GeneCollapse:
    """Re-key the columns of a samples × genes matrix by current Ensembl gene id.

    Parameters
    ----------
    matrix
        Samples × input genes (dense or SciPy sparse); not modified.
    var
        One row per matrix column, indexed by the input gene identifiers.
    mapping
        A :meth:`GeneResolver.resolve` result covering every ``var`` index value.
    value_kind
        ``counts`` (columns of one gene are summed) or ``log`` (never averaged).
    rule
        How to combine columns of one gene: ``sum`` (the default and only choice for
        counts), ``first`` (keep the first column) or ``max_mean`` (keep the column with
        the highest mean). For ``log`` values a rule is required as soon as two columns
        map to one gene.

    Returns
    -------
    The new matrix, its ``var`` and a report with one row per input column.

    Raises
    ------
    ValueError
        If ``value_kind`` is ``log``, columns collide and no ``rule`` is given (the
        message lists the first collisions), if ``rule`` is ``sum`` for log values, or
        if shapes disagree.
    KeyError
        If ``mapping`` lacks identifiers of ``var``.
    """
    if value_kind not in ("counts", "log"):
        raise ValueError(f"value_kind must be 'counts' or 'log', found {value_kind!r}")
    if rule not in (None, "sum", "first", "max_mean"):
        raise ValueError(f"rule must be None, 'sum', 'first' or 'max_mean', found {rule!r}")
    if value_kind == "log" and rule == "sum":
        raise ValueError("log values cannot be summed; choose rule='first' or 'max_mean'")
    mat: Any = matrix  # dense or any SciPy sparse format; both support @ and [:, idx]
    n_cols = mat.shape[1]
    if len(var) != n_cols:
        raise ValueError(f"var has {len(var)} rows but the matrix has {n_cols} columns")
    m = mapping.drop_duplicates("input").set_index("input")
    ids = pd.Index(var.index.astype(object))
    missing = ids.difference(m.index)
    if len(missing):
        raise KeyError(
            f"mapping lacks {len(missing)} identifiers of var, e.g. {list(missing[:5])}; "
            "resolve var.index with GeneResolver.resolve first"
        )
    row = m.reindex(ids)
    ens = row["ensembl_gene_id"].to_numpy(dtype=object)
    status = row["status"].to_numpy(dtype=object)
    action = np.where(
        status == "unresolved",
        "dropped_unresolved",
        np.where(
            status == "ambiguous",
            "dropped_ambiguous",
            np.where(pd.isna(ens), "dropped_no_ensembl", "kept"),
        ),
    ).astype(object)
    keep = action == "kept"
    pos = np.arange(n_cols)
    kept = pd.DataFrame({"pos": pos[keep], "ens": ens[keep]})
    sizes = kept.groupby("ens", sort=False)["pos"].transform("size").to_numpy()
    collide = sizes > 1
    if collide.any():
        if value_kind == "counts":
            rule = "sum" if rule is None else rule
        elif rule is None:
            groups = kept[collide].groupby("ens", sort=False)["pos"].agg(list).head(5)
            ex = {g: [str(ids[p]) for p in ps] for g, ps in groups.items()}
            raise ValueError(
                f"{int(collide.sum())} log-scale columns map to "
                f"{kept.loc[collide, 'ens'].nunique()} genes, e.g. {ex}; log values are "
                "never averaged: pass rule='first' or rule='max_mean'"
            )
    order = pd.unique(kept["ens"])  # output genes in first-appearance order
    col_of = pd.Series(np.arange(len(order)), index=order)
    out_col = col_of.reindex(kept["ens"]).to_numpy()
    if rule in (None, "sum"):
        ind = sp.csr_matrix(
            (np.ones(len(kept)), (kept["pos"].to_numpy(), out_col)), shape=(n_cols, len(order))
        )
        new = mat @ ind
        if collide.any():
            action[kept["pos"].to_numpy()[collide]] = "summed"
    else:
        if rule == "first":
            chosen = kept.drop_duplicates("ens", keep="first")
        else:
            means = np.asarray(mat[:, kept["pos"].to_numpy()].mean(axis=0)).ravel()
            chosen = (
                kept.assign(mean=means)
                .sort_values(["ens", "mean", "pos"], ascending=[True, False, True], kind="stable")
                .drop_duplicates("ens", keep="first")
            )
        chosen = chosen.set_index("ens").reindex(order).reset_index()
        dropped = np.setdiff1d(kept["pos"].to_numpy(), chosen["pos"].to_numpy())
        action[dropped] = "dropped_rule"
        new = mat[:, chosen["pos"].to_numpy()]
    out_matrix: Any = new
    out_matrix = out_matrix.tocsr() if hasattr(out_matrix, "tocsr") else np.asarray(out_matrix)
    n_in = kept.groupby("ens", sort=False)["pos"].size().reindex(order).to_numpy()
    first_pos = kept.drop_duplicates("ens").set_index("ens")["pos"].reindex(order).to_numpy()
    rep_pos = first_pos if rule in (None, "sum") else chosen["pos"].to_numpy()
    new_var = pd.DataFrame(
        {
            "symbol": row["symbol"].to_numpy()[first_pos],
            "hgnc_id": row["hgnc_id"].to_numpy()[first_pos],
            "n_inputs": n_in,
        },
        index=pd.Index(order, name="ensembl_gene_id"),
    )
    new_var = pd.concat([new_var, upstream_var_columns(var, rep_pos, index=new_var.index)], axis=1)
    report = pd.DataFrame(
        {
            "input": ids.to_numpy(),
            "position": pos,
            "ensembl_gene_id": ens,
            "action": action,
            "rule": rule or "",
        }
    )
    return GeneCollapse(matrix=out_matrix, var=new_var, report=report)

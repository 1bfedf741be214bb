"""limma's ``topTable`` and ``decideTests`` on perturbridge Effects.

Effects hold one row per contrast and one column per gene, with the layers of the fit
(``logFC``, ``AveExpr``, ``t``, ``P.Value``, ``B``, ...). :func:`top_table` gives one
contrast's table with limma's column names and semantics (``sort.by``, ``number``,
``adjust.method``, ``p.value``, ``lfc``); :func:`decide_tests` gives limma's
``decideTests`` matrix (genes × contrasts, as limma's ``TestResults``). Genes a fit did
not test (NaN in the Effects, e.g. removed by ``filterByExpr`` in that context) are left
out of the table and do not count in the multiple-testing adjustment, as in limma where
they are not part of the fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import anndata as ad
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ._rstats import p_adjust_bh

__all__ = ["ADJUST_METHODS", "SORT_BY", "decide_tests", "p_adjust", "top_table"]

FloatArray = NDArray[np.float64]

#: ``p.adjust`` methods :func:`p_adjust` implements (``"fdr"`` is ``"BH"``).
ADJUST_METHODS: tuple[str, ...] = ("BH", "fdr", "BY", "holm", "bonferroni", "none")

#: ``sort_by`` values of :func:`top_table` (limma's, with its aliases) → the key used.
SORT_BY: dict[str, str] = {
    "logFC": "logFC",
    "M": "logFC",
    "AveExpr": "AveExpr",
    "A": "AveExpr",
    "Amean": "AveExpr",
    "P": "P",
    "p": "P",
    "t": "t",
    "T": "t",
    "B": "B",
    "none": "none",
}

#: Layers :func:`top_table` reads, by limma's column name.
_LAYERS = {"logFC": "logFC", "AveExpr": "AveExpr", "t": "t", "P.Value": "P.Value", "B": "B"}


def p_adjust(p: FloatArray, method: str = "BH") -> FloatArray:
    """R ``p.adjust(p, method)`` on a vector; NaNs stay NaN and do not count in ``n``."""
    if method not in ADJUST_METHODS:
        raise ValueError(f"adjust must be one of {list(ADJUST_METHODS)}, got {method!r}")
    p = np.asarray(p, dtype=float)
    if method in ("BH", "fdr"):
        return p_adjust_bh(p)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    n = q.size
    if method == "none":
        out[ok] = q
    elif method == "bonferroni":
        out[ok] = np.minimum(1.0, n * q)
    elif method == "holm":
        o = np.argsort(q, kind="stable")
        adj = np.minimum(1.0, np.maximum.accumulate((n - np.arange(n)) * q[o]))
        res = np.empty(n)
        res[o] = adj
        out[ok] = res
    else:  # BY
        i = np.arange(n, 0, -1)
        o = np.argsort(-q, kind="stable")
        c = float(np.sum(1.0 / np.arange(1, n + 1)))
        adj = np.minimum(1.0, np.minimum.accumulate(c * n / i * q[o]))
        res = np.empty(n)
        res[o] = adj
        out[ok] = res
    return out


def _contrast_row(effects: ad.AnnData, contrast: str | int) -> int:
    if isinstance(contrast, int | np.integer) and not isinstance(contrast, bool):
        if not -effects.n_obs <= int(contrast) < effects.n_obs:
            raise KeyError(f"contrast {int(contrast)} out of range: {effects.n_obs} contrasts")
        return int(contrast) % effects.n_obs
    pos = effects.obs_names.get_indexer([str(contrast)])
    if pos[0] < 0:
        raise KeyError(
            f"contrast {contrast!r} not in these Effects (first of {effects.n_obs}: "
            f"{effects.obs_names[:5].tolist()})"
        )
    return int(pos[0])


def _row(effects: ad.AnnData, layer: str, i: int) -> FloatArray:
    if layer not in effects.layers:
        raise KeyError(
            f"Effects have no layer {layer!r} (layers: {list(effects.layers)}); "
            "top_table needs logFC, AveExpr, t, P.Value and B"
        )
    v = effects.layers[layer][i]
    v = v.toarray() if hasattr(v, "toarray") else v
    return np.asarray(v, dtype=float).ravel()


def top_table(
    effects: ad.AnnData,
    contrast: str | int,
    *,
    sort_by: str = "p",
    n: int | None = 10,
    adjust: str = "BH",
    p_value: float = 1.0,
    lfc: float = 0.0,
    confint: bool = False,
) -> pd.DataFrame:
    """limma's ``topTable(fit, coef=contrast, ...)`` for one contrast of ``effects``.

    Parameters
    ----------
    effects
        Effects AnnData (contrasts × genes) with the layers ``logFC``, ``AveExpr``,
        ``t``, ``P.Value`` and ``B`` (and ``CI.L``/``CI.R`` for ``confint``).
    contrast
        A contrast id (``effects.obs_names``) or its position.
    sort_by
        limma's ``sort.by``: ``"p"``/``"P"`` (p-value, the default here; limma's
        default ``"B"`` gives the same order unless degrees of freedom differ between
        genes), ``"B"``, ``"logFC"``/``"M"`` (absolute value), ``"t"`` (absolute
        value), ``"AveExpr"``/``"A"``, ``"none"`` (gene order). Ties keep gene order.
    n
        limma's ``number``: rows to return; ``None`` for all.
    adjust
        limma's ``adjust.method`` (:data:`ADJUST_METHODS`), over the genes tested in
        this contrast.
    p_value, lfc
        Keep only genes with adjusted p-value ``<= p_value`` and ``|logFC| >= lfc``
        (limma's ``p.value`` and ``lfc``).
    confint
        Add ``CI.L`` and ``CI.R`` after ``logFC`` (at the level the fit used).

    Returns
    -------
    pandas.DataFrame
        Indexed by gene (``effects.var_names``), columns ``logFC``, [``CI.L``,
        ``CI.R``,] ``AveExpr``, ``t``, ``P.Value``, ``adj.P.Val``, ``B``; empty (with
        these columns) when no gene passes the filters.

    Examples
    --------
    >>> from perturbridge.de import top_table  # doctest: +SKIP
    >>> top_table(effects, effects.obs_names[0], sort_by="B", n=20)  # doctest: +SKIP
    """
    if sort_by not in SORT_BY:
        raise ValueError(f"sort_by must be one of {list(SORT_BY)}, got {sort_by!r}")
    if adjust not in ADJUST_METHODS:
        raise ValueError(f"adjust must be one of {list(ADJUST_METHODS)}, got {adjust!r}")
    if n is not None and n < 0:
        raise ValueError(f"n must be >= 0 or None, got {n}")
    if not 0 <= p_value <= 1:
        raise ValueError(f"p_value must be in [0, 1], got {p_value}")
    if lfc < 0:
        raise ValueError(f"lfc must be >= 0, got {lfc}")
    i = _contrast_row(effects, contrast)
    cols = {name: _row(effects, layer, i) for name, layer in _LAYERS.items()}
    if confint:
        cols["CI.L"], cols["CI.R"] = _row(effects, "CI.L", i), _row(effects, "CI.R", i)
    tested = ~np.isnan(cols["P.Value"])
    genes = effects.var_names[tested]
    cols = {k: v[tested] for k, v in cols.items()}
    cols["adj.P.Val"] = p_adjust(cols["P.Value"], adjust)
    order = ["logFC", *(["CI.L", "CI.R"] if confint else []), "AveExpr", "t", "P.Value"]
    table = pd.DataFrame({k: cols[k] for k in [*order, "adj.P.Val", "B"]}, index=genes)
    table.index.name = effects.var_names.name or "gene"
    if p_value < 1 or lfc > 0:
        sig = (table["adj.P.Val"] <= p_value) & (table["logFC"].abs() >= lfc)
        table = table[sig.to_numpy()]
    number = len(table) if n is None else min(n, len(table))
    key = SORT_BY[sort_by]
    if key == "none":
        return table.iloc[:number]
    values = {
        "logFC": -table["logFC"].abs(),
        "AveExpr": -table["AveExpr"],
        "P": table["P.Value"],
        "t": -table["t"].abs(),
        "B": -table["B"],
    }[key].to_numpy()
    ordered = np.argsort(values, kind="stable")  # R's order(): stable, NaN last
    return table.iloc[ordered[:number]]


def decide_tests(
    effects: ad.AnnData,
    *,
    method: Literal["separate", "global"] = "separate",
    adjust: str = "BH",
    p_value: float = 0.05,
    lfc: float = 0.0,
    contrasts: Sequence[str] | None = None,
) -> pd.DataFrame:
    """limma's ``decideTests(fit, method, adjust.method, p.value, lfc)``.

    Parameters
    ----------
    effects
        Effects AnnData (contrasts × genes) with the layers ``logFC``, ``t`` and
        ``P.Value``.
    method
        ``"separate"``: p-values adjusted per contrast; ``"global"``: all contrasts'
        p-values adjusted together.
    adjust
        limma's ``adjust.method`` (:data:`ADJUST_METHODS`).
    p_value
        A gene is called when its adjusted p-value is ``< p_value`` (strictly, as
        limma's ``decideTests``).
    lfc
        Calls with ``|logFC| < lfc`` are set to 0.
    contrasts
        Only these contrasts (ids); default: all.

    Returns
    -------
    pandas.DataFrame
        Genes × contrasts (the orientation of limma's ``TestResults``), nullable
        ``Int8``: ``1`` up, ``-1`` down, ``0`` not significant, ``<NA>`` for genes the
        contrast's fit did not test.
    """
    if method not in ("separate", "global"):
        raise ValueError(f"method must be 'separate' or 'global', got {method!r}")
    if adjust not in ADJUST_METHODS:
        raise ValueError(f"adjust must be one of {list(ADJUST_METHODS)}, got {adjust!r}")
    if not 0 <= p_value <= 1:
        raise ValueError(f"p_value must be in [0, 1], got {p_value}")
    if lfc < 0:
        raise ValueError(f"lfc must be >= 0, got {lfc}")
    rows = (
        np.arange(effects.n_obs)
        if contrasts is None
        else np.array([_contrast_row(effects, c) for c in contrasts], dtype=int)
    )

    def layer(name: str) -> FloatArray:
        if name not in effects.layers:
            raise KeyError(f"Effects have no layer {name!r} (layers: {list(effects.layers)})")
        m: Any = effects.layers[name][rows]
        return np.asarray(m.toarray() if hasattr(m, "toarray") else m, dtype=float)

    p, t, logfc = layer("P.Value"), layer("t"), layer("logFC")
    if method == "separate":
        adj = np.vstack([p_adjust(row, adjust) for row in p]) if len(p) else p
    else:
        adj = p_adjust(p.ravel(), adjust).reshape(p.shape)
    calls = np.sign(t) * (adj < p_value)
    if lfc > 0:
        calls[np.abs(logfc) < lfc] = 0
    out = pd.DataFrame(
        calls.T,
        index=effects.var_names,
        columns=effects.obs_names[rows],
    ).astype("Int8")
    out[pd.DataFrame(np.isnan(adj).T, index=out.index, columns=out.columns)] = pd.NA
    return out

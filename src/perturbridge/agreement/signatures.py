"""Signatures and DE masks read from a compendium store, in bounded blocks.

A signature is one row of the ``logFC`` Effects layer (one condition in group mode, one
replicate contrast in separate mode); its DE genes are those with
``adj.P.Value.within_one_contrast < alpha`` (``adj.P.Value.across_all_contrasts`` for a row
that has only that layer; and ``|logFC| > lfc_min`` when given). A row
without any adjusted p-value (e.g. L1000 level 5 z-scores) uses ``|value| >= z_min``
instead when ``de_rule="auto"``.

Everything is read through :meth:`perturbridge.compendium.Compendium.effects`, a block of
rows at a time: the callers ask for one (dataset, context, time) stratum, or iterate a
dataset in blocks of ``chunk_size`` rows (:func:`zscore_stats`), so a dataset with
20,000 genes and 50,000 conditions is never densified at once.

Per-gene z-scoring (``zscore="dataset"`` or ``"dataset_context"``) centres and scales
each gene by its mean and SD over all conditions of the dataset (or dataset × context);
the statistics are accumulated in one streaming pass (float64 sums). DE masks are
computed from the raw values and are not changed by z-scoring.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import anndata as ad

    from ..compendium import Compendium

__all__ = [
    "DE_RULES",
    "ZSCORES",
    "Signatures",
    "ZScoreStats",
    "de_mask",
    "iter_signature_blocks",
    "load_signatures",
    "signatures_from_matrix",
    "zscore_stats",
]

logger = logging.getLogger(__name__)

#: Per-gene standardisation before any metric (option ``--zscore``).
ZSCORES = ("none", "dataset", "dataset_context")
ZScore = Literal["none", "dataset", "dataset_context"]
#: How DE genes are called: ``pvalue`` (adjusted p-value), ``value`` (``|value| >=
#: z_min``), ``auto`` (p-values where a row has them, else the value rule).
DE_RULES = ("auto", "pvalue", "value")
DERule = Literal["auto", "pvalue", "value"]

PVALUE_LAYER = "adj.P.Value.within_one_contrast"
#: The fallback adjusted p-value layer, for rows without the within-contrast one (some
#: release datasets carry only this layer).
ACROSS_PVALUE_LAYER = "adj.P.Value.across_all_contrasts"


@dataclass
class Signatures:
    """Rows of signatures with their DE masks.

    Attributes
    ----------
    x
        ``(n, G)`` float32 values (z-scored when asked); NaN where a gene was not measured.
    de
        ``(n, G)`` bool DE masks (from the raw values).
    obs
        One row per signature (the contrasts: ``contrast_id`` column, ``condition_id``,
        ``dataset``, ``cell_context``, ...), in the order of ``x``.
    genes
        The gene ids of the columns.
    """

    x: np.ndarray
    de: np.ndarray
    obs: pd.DataFrame
    genes: pd.Index

    def __len__(self) -> int:
        return self.x.shape[0]

    def take(self, rows: np.ndarray) -> Signatures:
        """The signatures at positions ``rows`` (a copy)."""
        rows = np.asarray(rows, dtype=np.int64)
        return Signatures(
            self.x[rows], self.de[rows], self.obs.iloc[rows].reset_index(drop=True), self.genes
        )

    def columns(self, keep: np.ndarray) -> Signatures:
        """The signatures restricted to the genes where ``keep`` is true."""
        return Signatures(
            np.ascontiguousarray(self.x[:, keep]),
            np.ascontiguousarray(self.de[:, keep]),
            self.obs,
            self.genes[keep],
        )


@dataclass
class ZScoreStats:
    """Per-gene mean and SD per group (dataset, or dataset × context)."""

    by: tuple[str, ...]
    mean: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict)
    sd: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict)
    genes: pd.Index | None = None

    def apply(self, x: np.ndarray, obs: pd.DataFrame) -> np.ndarray:
        """``(x − mean) / sd`` per row's group (a new float32 array)."""
        out = np.array(x, dtype=np.float32, copy=True)
        keys = pd.Series(_group_keys(obs, self.by), dtype=object)
        codes, uniq = pd.factorize(keys)
        for ci, k in enumerate(uniq):
            if k not in self.mean:
                raise KeyError(f"no z-score statistics for {dict(zip(self.by, k, strict=True))}")
            idx = np.flatnonzero(codes == ci)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[idx] = (out[idx] - self.mean[k]) / self.sd[k]
        return out


def _group_keys(obs: pd.DataFrame, by: Sequence[str]) -> list[tuple[str, ...]]:
    cols = [obs[c].astype(str).to_numpy() for c in by]
    return list(zip(*cols, strict=True))


def de_mask(
    values: np.ndarray,
    adj_p: np.ndarray | None = None,
    *,
    alpha: float = 0.05,
    lfc_min: float | None = None,
    de_rule: DERule = "auto",
    z_min: float = 2.0,
) -> np.ndarray:
    """DE masks of signatures (pure NumPy).

    ``pvalue``: ``adj_p < alpha`` (and ``|values| > lfc_min`` when given). ``value``:
    ``|values| >= z_min``. ``auto``: ``pvalue`` for rows with at least one finite
    adjusted p-value, ``value`` for the others. NaN values are never DE.

    >>> de_mask(np.array([[1.0, -3.0]]), None, de_rule="value").tolist()
    [[False, True]]
    """
    if de_rule not in DE_RULES:
        raise ValueError(f"de_rule must be one of {DE_RULES}, found {de_rule!r}")
    values = np.asarray(values)
    finite = np.isfinite(values)
    with np.errstate(invalid="ignore"):
        by_value = finite & (np.abs(values) >= z_min)
        if adj_p is None:
            if de_rule == "pvalue":
                raise ValueError("de_rule='pvalue' needs adjusted p-values; none were given")
            return by_value
        adj_p = np.asarray(adj_p)
        if adj_p.shape != values.shape:
            raise ValueError(f"adj_p has shape {adj_p.shape}, values {values.shape}")
        by_p = finite & (adj_p < alpha)
        if lfc_min is not None:
            by_p &= np.abs(values) > lfc_min
    if de_rule == "pvalue":
        return by_p
    if de_rule == "value":
        return by_value
    has_p = np.isfinite(adj_p).any(axis=1)
    return np.where(has_p[:, None], by_p, by_value)


def _effects(comp: Compendium, ids: Sequence[str], layer: str, mode: str) -> ad.AnnData:
    return comp.effects(list(ids), layer=layer, mode=mode)  # type: ignore[arg-type]


def load_signatures(
    comp: Compendium,
    ids: Sequence[str] | pd.DataFrame,
    *,
    mode: Literal["group", "separate"] = "group",
    alpha: float = 0.05,
    lfc_min: float | None = None,
    de_rule: DERule = "auto",
    z_min: float = 2.0,
    zscore: ZScoreStats | None = None,
) -> Signatures:
    """``logFC`` and DE masks of ``ids`` (condition or contrast ids) from a store.

    In ``separate`` mode a condition id brings all its replicate contrasts. Reads only
    these rows (two layers); z-scores with ``zscore`` when given.
    """
    if isinstance(ids, pd.DataFrame):
        col = "contrast_id" if "contrast_id" in ids.columns else "condition_id"
        ids = ids[col].astype(str).tolist()
    ids = [str(i) for i in ids]
    lfc = _effects(comp, ids, "logFC", mode)
    x = np.asarray(lfc.X, dtype=np.float32)
    adj = None
    if de_rule != "value":
        adj = _adjusted_p(comp, ids, mode)
    de = de_mask(x, adj, alpha=alpha, lfc_min=lfc_min, de_rule=de_rule, z_min=z_min)
    obs = lfc.obs.reset_index()
    if zscore is not None:
        x = zscore.apply(x, obs)
    return Signatures(x=x, de=de, obs=obs, genes=pd.Index(lfc.var_names.astype(str)))


def _adjusted_p(comp: Compendium, ids: Sequence[str], mode: str) -> np.ndarray:
    """Per row, the first adjusted p-value layer it has: within the contrast, else
    across all contrasts (the rule of the published analysis)."""
    eff = _effects(comp, ids, PVALUE_LAYER, mode)
    adj = np.asarray(eff.X, dtype=np.float32)
    empty = ~np.isfinite(adj).any(axis=1)
    if empty.any():
        # by the returned rows' own ids: in separate mode a condition id brings several rows
        rows = eff.obs_names[empty].astype(str).tolist()
        across = _effects(comp, rows, ACROSS_PVALUE_LAYER, mode).X
        adj[empty] = np.asarray(across, dtype=np.float32)
    return adj


def iter_signature_blocks(
    comp: Compendium,
    conditions: pd.DataFrame,
    *,
    by: Sequence[str] = ("dataset", "cell_context"),
    chunk_size: int = 2048,
    mode: Literal["group", "separate"] = "group",
    layer: str = "logFC",
) -> Iterator[tuple[tuple[str, ...], ad.AnnData]]:
    """``(key, effects)`` for each group of ``conditions`` by ``by``, at most
    ``chunk_size`` conditions at a time."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, found {chunk_size}")
    keys = conditions[list(by)].astype(str)
    for key, grp in conditions.groupby([keys[c] for c in by], sort=True):
        k = cast(tuple[str, ...], key if isinstance(key, tuple) else (key,))
        ids = grp["condition_id"].astype(str).tolist()
        for start in range(0, len(ids), chunk_size):
            yield k, comp.effects(ids[start : start + chunk_size], layer=layer, mode=mode)


def zscore_stats(
    comp: Compendium,
    conditions: pd.DataFrame,
    *,
    by: ZScore = "dataset",
    mode: Literal["group", "separate"] = "group",
    chunk_size: int = 2048,
) -> ZScoreStats | None:
    """Per-gene mean and SD (``ddof=1``) of ``logFC`` over ``conditions`` per dataset
    (``by="dataset"``) or dataset × context, in one streaming pass; ``None`` for
    ``by="none"``. A gene with fewer than 2 finite values or SD 0 gets SD NaN (its
    z-scores are NaN, i.e. unmeasured)."""
    if by not in ZSCORES:
        raise ValueError(f"zscore must be one of {ZSCORES}, found {by!r}")
    if by == "none":
        return None
    cols = ("dataset",) if by == "dataset" else ("dataset", "cell_context")
    sums: dict[tuple[str, ...], list[np.ndarray]] = {}
    genes = None
    for key, eff in iter_signature_blocks(
        comp, conditions, by=("dataset", "cell_context"), chunk_size=chunk_size, mode=mode
    ):
        k = key[: len(cols)]
        x = np.asarray(eff.X, dtype=np.float64)
        ok = np.isfinite(x)
        x0 = np.where(ok, x, 0.0)
        acc = sums.setdefault(k, [np.zeros(x.shape[1]), np.zeros(x.shape[1]), np.zeros(x.shape[1])])
        acc[0] += ok.sum(axis=0)
        acc[1] += x0.sum(axis=0)
        acc[2] += (x0 * x0).sum(axis=0)
        genes = pd.Index(eff.var_names.astype(str))
    out = ZScoreStats(by=cols, genes=genes)
    for k, (n, s, ss) in sums.items():
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s / n
            var = (ss - n * mean * mean) / (n - 1)
            sd = np.sqrt(np.maximum(var, 0.0))
        sd[(n < 2) | ~(sd > 1e-12 * np.maximum(np.abs(mean), 1.0))] = np.nan
        out.mean[k] = mean.astype(np.float32)
        out.sd[k] = sd.astype(np.float32)
    return out


def signatures_from_matrix(
    x: np.ndarray | ad.AnnData,
    obs: pd.DataFrame | None = None,
    *,
    de: np.ndarray | None = None,
    z_min: float = 2.0,
    layer: str | None = None,
) -> Signatures:
    """Signatures from a matrix (signatures × genes) or an AnnData, for data outside
    a store.

    ``de``: a boolean ``(n, G)`` mask; ``None``: ``|value| >= z_min`` (e.g. L1000 level 5
    MODZ z-scores). ``obs`` defaults to the AnnData's ``obs``.
    """
    genes: pd.Index
    if hasattr(x, "obs") and hasattr(x, "X"):
        adata: Any = x
        mat = adata.layers[layer] if layer is not None else adata.X
        if obs is None:
            obs = adata.obs
        genes = pd.Index(adata.var_names.astype(str))
    else:
        if layer is not None:
            raise TypeError("layer= applies to an AnnData input, not an array")
        mat = x
        genes = pd.RangeIndex(np.asarray(x).shape[1]).astype(str)
    if hasattr(mat, "toarray"):
        mat = mat.toarray()
    values = np.asarray(mat, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"expected a 2-D matrix (signatures × genes), found {values.ndim}-D")
    if obs is None:
        raise TypeError("obs is required with an array input (one row per signature)")
    if len(obs) != values.shape[0]:
        raise ValueError(f"obs has {len(obs)} rows, the matrix {values.shape[0]} signatures")
    if de is None:
        mask = de_mask(values, None, de_rule="value", z_min=z_min)
    else:
        mask = np.asarray(de, dtype=bool)
        if mask.shape != values.shape:
            raise ValueError(f"de has shape {mask.shape}, the matrix {values.shape}")
        mask = mask & np.isfinite(values)
    return Signatures(x=values, de=mask, obs=obs.reset_index(), genes=genes)

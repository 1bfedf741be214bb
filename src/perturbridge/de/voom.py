"""limma-voom differential expression of count Samples against matched vehicle controls.

Per dataset × cell context, as the published pipeline ran it in R: edgeR
``filterByExpr(design)`` → library sizes of the kept genes → TMM normalization factors
→ ``voom`` → weighted ``lmFit`` on ``~0 + condition + plate`` → ``contrasts.fit`` →
``eBayes(robust=TRUE)`` once per fit. The weighted fit uses the closed form of
:mod:`perturbridge.de._weighted` instead of a QR per gene. Genes removed by the filter
in a context are NaN in that context's rows and are recorded in the ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from ..ledger import Ledger
from ..progress import track
from ..schema import validate_effects, validate_samples
from ._edger import calc_norm_factors, filter_by_expr
from ._linear import DesignStructure, design_structure, fit_condition_plate
from ._voom import voom_log_cpm, voom_weights
from ._weighted import fit_condition_plate_weighted
from .limma import (
    STAGE,
    ContextDesign,
    DEResult,
    OrphanVehicles,
    ReplicateMode,
    _assemble,
    _drop_no_df,
    design_params,
    effect_layer_names,
    moderate_context,
    plan_contexts,
)

__all__ = ["check_counts", "limma_voom"]

logger = logging.getLogger(__name__)


def check_counts(x: np.ndarray, samples: ad.AnnData, *, allow_non_integer: bool = False) -> None:
    """Raise ``ValueError`` naming the first offending samples and genes of bad counts."""
    checks = [
        (~np.isfinite(x), "missing or infinite"),
        (x < 0, "negative"),
    ]
    if not allow_non_integer:
        checks.append((np.isfinite(x) & (x != np.round(x)), "non-integer"))
    for bad, what in checks:
        if bad.any():
            idx = np.argwhere(bad)[:5]
            shown = [
                f"({samples.obs_names[i]}, {samples.var_names[j]})={x[i, j]!r}" for i, j in idx
            ]
            raise ValueError(
                f"counts must be finite non-negative integers; {int(bad.sum())} {what} "
                f"values, first at (sample, gene): {shown}"
                + (
                    ""
                    if what != "non-integer"
                    else "; pass allow_non_integer=True for estimated counts"
                )
            )


def _check_library_sizes(x: np.ndarray, ids: pd.Index, fit_id: str) -> None:
    """Raise ``ValueError`` naming the samples (by id) without counts in ``x``; the
    kernels would refuse them by position."""
    lib = x.sum(axis=1)
    bad = ~(np.isfinite(lib) & (lib > 0))
    if bad.any():
        raise ValueError(
            f"{fit_id}: {int(bad.sum())} sample(s) have no counts (library size 0): "
            f"{ids[bad][:5].astype(str).tolist()}; drop them before DE (an ingest drops "
            "them to the ledger as empty_sample)"
        )


def limma_voom(
    samples: ad.AnnData,
    *,
    mode: ReplicateMode = "group",
    layer: str | None = None,
    filter_genes: bool = True,
    normalization: str = "TMM",
    robust: bool = True,
    trend: bool = False,
    confint: float = 0.95,
    span: float = 0.5,
    allow_non_integer: bool = False,
    keep_weights: bool = False,
    chunk_size: int = 512,
    progress: bool = False,
    control_keys: Sequence[str] | None = None,
    orphan_vehicles: OrphanVehicles = "drop",
    fit_per_control_group: bool = False,
    stdev_scaled: bool = False,
) -> DEResult:
    """limma-voom effects of every treated condition against its matched vehicle.

    Parameters
    ----------
    samples
        Samples AnnData with counts (``uns["perturbridge"]["value_kind"] == "counts"``).
    mode
        ``"group"`` (replicates pooled) or ``"separate"`` (one contrast per treated well).
    filter_genes
        Apply edgeR ``filterByExpr`` with the design, per context.
    normalization
        ``"TMM"``, ``"upperquartile"`` or ``"none"`` (edgeR ``calcNormFactors``).
    robust, trend
        eBayes options (limma's defaults for voom: ``trend=False``).
    span
        ``lowess`` span of the voom trend.
    allow_non_integer
        Accept non-integer counts (e.g. estimated counts); by default they are an error.
    keep_weights
        Keep the voom weights of each fit in ``DEResult.diagnostics`` (keyed by
        :attr:`~perturbridge.de.limma.ContextDesign.fit_id`).
    chunk_size
        Genes per block in the weighted fit.
    progress
        Show a progress bar over contexts.
    control_keys
        Further ``obs`` columns a treated condition must share with its vehicle (e.g.
        ``percent_volume_dmso``); default: those the source adapter declared in
        ``uns["perturbridge"]["control_match_keys"]``, if any.
    orphan_vehicles, fit_per_control_group, stdev_scaled
        As for :func:`~perturbridge.de.limma_trend`: vehicles at a label no treated
        condition uses are dropped (default) or kept; one fit per control group instead
        of one per context; the extra layer ``stdev.scaled``.
    """
    validate_samples(samples)
    kind = samples.uns["perturbridge"]["value_kind"]
    if kind != "counts":
        raise ValueError(f"limma-voom needs counts, these Samples hold {kind!r}; use limma_trend")
    x = samples.layers[layer] if layer is not None else samples.X
    x = np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=float)
    check_counts(x, samples, allow_non_integer=allow_non_integer)
    obs = samples.obs
    designs, ledger = plan_contexts(
        samples,
        mode=mode,
        control_keys=control_keys,
        orphan_vehicles=orphan_vehicles,
        fit_per_control_group=fit_per_control_group,
    )
    # genes: filterByExpr per fit; Effects keep the genes tested in at least one fit
    keeps = []
    for design in designs:
        structure = design_structure(
            design.condition_codes,
            design.plate_codes,
            n_conditions=len(design.levels),
            n_plates=len(design.plate_levels),
        )
        _check_library_sizes(x[design.rows], samples.obs_names[design.rows], design.fit_id)
        if filter_genes:
            keep = filter_by_expr(x[design.rows], max_hat=structure.max_hat())
            if (~keep).any():
                ledger.drop(
                    samples.var_names[~keep],
                    stage="de_genes",
                    reason="low_expression",
                    detail=f"{design.fit_id}: filterByExpr",
                )
        else:
            keep = np.ones(samples.n_vars, dtype=bool)
        keeps.append((structure, keep))
    tested = np.logical_or.reduce([k for _, k in keeps]) if keeps else np.ones(0, dtype=bool)
    blocks = []
    diagnostics: dict[str, dict[str, np.ndarray]] = {}
    for design, (structure, keep) in track(
        list(zip(designs, keeps, strict=True)), description="limma-voom", enabled=progress
    ):
        diag = diagnostics.setdefault(design.fit_id, {})
        out = _voom_context(
            x[design.rows][:, keep],
            obs.iloc[design.rows],
            design,
            structure,
            diag,
            keep=keep,
            tested=tested,
            mode=mode,
            normalization=normalization,
            robust=robust,
            trend=trend,
            confint=confint,
            span=span,
            chunk_size=chunk_size,
            ledger=ledger,
            keep_weights=keep_weights,
            stdev_scaled=stdev_scaled,
        )
        if out is not None:
            blocks.append(out)
    params = {
        "mode": mode,
        "robust": robust,
        "trend": trend,
        "confint": confint,
        "span": span,
        "filter_genes": filter_genes,
        "normalization": normalization,
        "method": "limma-voom",
        **design_params(orphan_vehicles, fit_per_control_group),
    }
    var = samples.var.iloc[np.flatnonzero(tested)] if designs else samples.var
    effects = _assemble(
        blocks,
        samples,
        mode=mode,
        params=params,
        var=var,
        layer_names=effect_layer_names(stdev_scaled=stdev_scaled),
    )
    validate_effects(effects)
    return DEResult(effects, ledger, diagnostics)


def _voom_context(
    kept: np.ndarray,
    obs: pd.DataFrame,
    design: ContextDesign,
    structure: DesignStructure,
    diag: dict[str, np.ndarray],
    *,
    keep: np.ndarray,
    tested: np.ndarray,
    mode: ReplicateMode,
    normalization: str,
    robust: bool,
    trend: bool,
    confint: float,
    span: float,
    chunk_size: int,
    ledger: Ledger,
    keep_weights: bool,
    stdev_scaled: bool = False,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]] | None:
    """One fit on its kept genes; layers span the ``tested`` genes (NaN for the rest)."""
    n_cond, n_plates = len(design.levels), len(design.plate_levels)
    if keep.sum() < 2:
        ledger.drop(
            design.treated,
            stage=STAGE,
            reason="not_estimable",
            detail=f"{design.fit_id}: fewer than 2 genes pass filterByExpr",
        )
        return None
    lib = kept.sum(axis=1)
    _check_library_sizes(kept, obs.index, f"{design.fit_id} (genes kept by filterByExpr)")
    nf = calc_norm_factors(kept, lib_size=lib, method=normalization)  # type: ignore[arg-type]
    eff_lib = lib * nf
    diag.update(keep=keep, lib_size=lib, norm_factors=nf)
    y = voom_log_cpm(kept, eff_lib)
    fit0 = fit_condition_plate(
        y, design.condition_codes, design.plate_codes, n_conditions=n_cond, n_plates=n_plates
    )
    if fit0.df_residual <= 0:
        _drop_no_df(design, ledger)
        return None
    st = structure
    fitted = st.fitted(fit0.coef_condition.T, fit0.coef_plate.T)
    w = voom_weights(
        kept,
        eff_lib,
        fitted=fitted,
        sigma=fit0.sigma,
        amean=fit0.amean,
        df_residual=fit0.df_residual,
        span=span,
    )
    if keep_weights:
        diag["weights"] = w
    fit = fit_condition_plate_weighted(
        y,
        w,
        design.condition_codes,
        design.plate_codes,
        n_conditions=n_cond,
        n_plates=n_plates,
        chunk_size=chunk_size,
    )
    t_idx = design.levels.get_indexer(design.treated)
    c_idx = design.levels.get_indexer(design.control)
    logfc, su = fit.contrast(t_idx, c_idx)
    meta, layers = moderate_context(
        logfc,
        su,
        fit.sigma,
        fit.df_residual,
        fit.amean,
        obs,
        design,
        n_per_condition=st.n_per_condition,
        n_plate_columns_not_estimable=int((~st.keep).sum()),
        mode=mode,
        robust=robust,
        trend=trend,
        confint=confint,
        ledger=ledger,
        gene_cols=None if keep[tested].all() else np.flatnonzero(keep[tested]),
        n_genes_total=int(tested.sum()),
        stdev_scaled=stdev_scaled,
    )
    meta["n_genes_tested"] = int(keep.sum())
    return meta, layers

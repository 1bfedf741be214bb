"""limma-trend differential expression of Samples against matched vehicle controls.

One linear model per dataset × cell context: all plates, times and conditions of the
context in one fit (residual variance pooled), design ``~0 + condition + plate``
(plate dropped when there is one plate), one contrast per treated condition against the
vehicle label of the same time, then ``eBayes(trend=TRUE, robust=TRUE)`` once per fit.
The statistics are those of R limma (``lmFit`` → ``contrasts.fit`` → ``eBayes`` →
``topTable``), checked against R in the tests.

Two choices of the original pipeline are options (see
:func:`~perturbridge.de.plan_contexts` and :class:`~perturbridge.de.DEOptions`): vehicle
wells at a time with no treated well are dropped (``orphan_vehicles="drop"``, the
default, as the original did) or kept in the fit for the residual variance
(``"keep"``); and ``fit_per_control_group=True`` fits each value of the
control-matching columns apart (the original fitted GDPx2 per cell type × DMSO %),
where by default one fit per dataset × context holds them all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from ..ledger import Ledger
from ..progress import track
from ..schema import ReplicateMode, validate_samples
from ._effects import (
    ContextFit,
    DEResult,
    dense_rows,
    drop_no_df,
    effects_of,
    moderate_context,
    plan_fits,
    run_params,
)
from ._linear import design_structure, fit_condition_plate
from ._quality import reml_weights
from .design import ContextDesign
from .options import DEOptions
from .quality import (
    dense_design,
    plate_design,
    quality_table,
    sample_weighted_contrasts,
)

__all__ = ["limma_trend"]

logger = logging.getLogger(__name__)

#: Samples per block when log expression is checked for missing values.
_CHECK_ROWS = 1024


def limma_trend(
    samples: ad.AnnData,
    *,
    mode: ReplicateMode = "group",
    control_keys: Sequence[str] | None = None,
    options: DEOptions | None = None,
    progress: bool = False,
) -> DEResult:
    """limma-trend effects of every treated condition against its matched vehicle.

    Parameters
    ----------
    samples
        Samples AnnData with log expression (``uns["perturbridge"]["value_kind"] ==
        "log_expression"``).
    mode
        ``"group"``: one contrast per condition (compound × dose × time × context),
        replicate wells pooled. ``"separate"``: one contrast per treated well.
    control_keys
        Further ``obs`` columns a treated condition must share with its vehicle (e.g.
        ``percent_volume_dmso``); default: those the source adapter declared in
        ``uns["perturbridge"]["control_match_keys"]``, if any.
    options
        Design and eBayes options (:class:`~perturbridge.de.DEOptions`); limma-trend's
        defaults are ``trend=True`` and ``chunk_size=4096``.
    progress
        Show a progress bar over contexts.

    Returns
    -------
    DEResult
        ``effects``: one row per contrast, layers :data:`~perturbridge.schema.EFFECT_LAYERS`
        (and ``stdev.scaled`` when asked for); ``ledger``: the conditions that were not
        estimated and the samples left out, with the reason.

    Examples
    --------
    >>> from perturbridge.simulate import simulate_l1000  # doctest: +SKIP
    >>> res = limma_trend(samples, mode="group")  # doctest: +SKIP
    >>> res.effects.layers["logFC"].shape  # doctest: +SKIP
    """
    opts = (options or DEOptions()).with_defaults(trend=True, chunk_size=4096)
    validate_samples(samples)
    kind = samples.uns["perturbridge"]["value_kind"]
    if kind != "log_expression":
        raise ValueError(
            f"limma-trend needs log expression, these Samples hold {kind!r}; "
            "use the voom engine for counts"
        )
    x = samples.layers[opts.layer] if opts.layer is not None else samples.X
    _check_finite(x, samples)
    obs = samples.obs
    designs, ledger = plan_fits(samples, mode=mode, control_keys=control_keys, options=opts)
    blocks: list[tuple[pd.DataFrame, dict[str, np.ndarray]]] = []
    for design in track(designs, description="limma-trend", enabled=progress):
        out = _fit_context(
            dense_rows(x, design.rows),
            obs.iloc[design.rows],
            design,
            mode=mode,
            options=opts,
            ledger=ledger,
        )
        if out is not None:
            blocks.append(out)
    params = run_params("limma-trend", mode=mode, options=opts)
    effects = effects_of(blocks, samples, mode=mode, params=params, options=opts)
    return DEResult(effects, ledger)


def _check_finite(x: object, samples: ad.AnnData) -> None:
    """Raise ``ValueError`` naming the first (sample, gene) that is not finite; reads
    ``x`` a block of samples at a time."""
    bad: list[tuple[int, int]] = []
    for start in range(0, samples.n_obs, _CHECK_ROWS):
        block = dense_rows(x, slice(start, start + _CHECK_ROWS))
        bad.extend((start + int(i), int(j)) for i, j in np.argwhere(~np.isfinite(block)))
        if len(bad) >= 5:
            break
    if bad:
        raise ValueError(
            "log expression has missing or infinite values (first at sample, gene: "
            f"{[(samples.obs_names[i], samples.var_names[j]) for i, j in bad[:5]]})"
        )


def _fit_context(
    x: np.ndarray,
    obs: pd.DataFrame,
    design: ContextDesign,
    *,
    mode: ReplicateMode,
    options: DEOptions,
    ledger: Ledger,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]] | None:
    """Fit one context; returns contrast metadata and layers (contrasts × genes)."""
    assert options.chunk_size is not None  # set by DEOptions.with_defaults
    if options.quality_weights:
        return _fit_context_weighted(x, obs, design, mode=mode, options=options, ledger=ledger)
    fit = fit_condition_plate(
        x,
        design.condition_codes,
        design.plate_codes,
        n_conditions=len(design.levels),
        n_plates=len(design.plate_levels),
        chunk_size=options.chunk_size,
    )
    if fit.df_residual <= 0:
        drop_no_df(design, ledger)
        return None
    t_idx = design.levels.get_indexer(design.treated)
    c_idx = design.levels.get_indexer(pd.Index(design.control))
    logfc, su = fit.contrast(t_idx, c_idx)
    estimates = ContextFit(
        logfc=logfc,
        stdev_unscaled=np.broadcast_to(su, logfc.shape),
        sigma=fit.sigma,
        df_residual=fit.df_residual,
        amean=fit.amean,
        n_per_condition=fit.n_per_condition,
        n_plate_columns_not_estimable=int((~fit.plate_estimable).sum()),
    )
    return moderate_context(estimates, obs, design, mode=mode, options=options, ledger=ledger)


def _fit_context_weighted(
    x: np.ndarray,
    obs: pd.DataFrame,
    design: ContextDesign,
    *,
    mode: ReplicateMode,
    options: DEOptions,
    ledger: Ledger,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]] | None:
    """One context with sample quality weights: ``arrayWeights`` (REML) → ``lmFit``
    with the weights → ``contrasts.fit``; the block's metadata carries the QC table."""
    structure = design_structure(
        design.condition_codes,
        design.plate_codes,
        n_conditions=len(design.levels),
        n_plates=len(design.plate_levels),
    )
    n_coef = structure.k + int(structure.keep.sum())
    if len(design.rows) - n_coef <= 0:
        drop_no_df(design, ledger)
        return None
    full = options.quality_design == "fit"
    aw, status = reml_weights(x, dense_design(structure) if full else plate_design(structure))
    if status != "converged":
        logger.info("%s: arrayWeights: %s", design.fit_id, status)
    t_idx = design.levels.get_indexer(design.treated)
    c_idx = design.levels.get_indexer(pd.Index(design.control))
    logfc, su, sigma, df = sample_weighted_contrasts(x, structure, aw, treated=t_idx, control=c_idx)
    estimates = ContextFit(
        logfc=logfc,
        stdev_unscaled=np.broadcast_to(su, logfc.shape),
        sigma=sigma,
        df_residual=df,
        amean=x.mean(axis=0),
        n_per_condition=structure.n_per_condition,
        n_plate_columns_not_estimable=int((~structure.keep).sum()),
    )
    meta, layers = moderate_context(
        estimates, obs, design, mode=mode, options=options, ledger=ledger
    )
    meta.attrs["quality_weights"] = quality_table(design, obs, aw, method="reml", status=status)
    return meta, layers

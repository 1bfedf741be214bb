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
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from ..ledger import Ledger
from ..progress import track
from ..schema import ReplicateMode, validate_samples
from ._edger import calc_norm_factors, filter_by_expr
from ._effects import (
    ContextFit,
    DEResult,
    dense_rows,
    drop_low_expression,
    drop_no_df,
    effects_of,
    moderate_context,
    plan_fits,
    run_params,
)
from ._linear import DesignStructure, design_structure, fit_condition_plate
from ._quality import array_weights_gene_by_gene, fit_sample_weighted
from ._voom import voom_log_cpm, voom_weights
from ._weighted import fit_condition_plate_weighted
from .design import STAGE, ContextDesign
from .options import DEOptions
from .quality import dense_design, quality_table

__all__ = ["check_counts", "limma_voom"]

logger = logging.getLogger(__name__)

#: Samples per block when counts are checked.
_CHECK_ROWS = 1024


def check_counts(x: Any, samples: ad.AnnData, *, allow_non_integer: bool = False) -> None:
    """Raise ``ValueError`` naming the first offending samples and genes of bad counts.

    ``x`` (dense, sparse or backed, samples × genes) is read a block of samples at a
    time.
    """
    whats = ["missing or infinite", "negative"] + ([] if allow_non_integer else ["non-integer"])
    n_bad = dict.fromkeys(whats, 0)
    first: dict[str, list[str]] = {what: [] for what in whats}
    for start in range(0, samples.n_obs, _CHECK_ROWS):
        block = dense_rows(x, slice(start, start + _CHECK_ROWS))
        masks = {
            "missing or infinite": ~np.isfinite(block),
            "negative": block < 0,
            "non-integer": np.isfinite(block) & (block != np.round(block)),
        }
        for what in whats:
            bad = masks[what]
            n_bad[what] += int(bad.sum())
            first[what].extend(
                f"({samples.obs_names[start + i]}, {samples.var_names[j]})={block[i, j]!r}"
                for i, j in np.argwhere(bad)[: 5 - len(first[what])]
            )
    for what in whats:
        if n_bad[what]:
            raise ValueError(
                f"counts must be finite non-negative integers; {n_bad[what]} {what} "
                f"values, first at (sample, gene): {first[what]}"
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
    control_keys: Sequence[str] | None = None,
    options: DEOptions | None = None,
    progress: bool = False,
) -> DEResult:
    """limma-voom effects of every treated condition against its matched vehicle.

    Per fit (a context, or a context's control group): genes kept by edgeR's
    ``filterByExpr``, normalization factors (TMM by default), log-CPM with voom's precision weights
    from the fit's mean–variance trend (or ``voomWithQualityWeights``' sample weights
    as well), the weighted linear model, the contrasts against the vehicle and eBayes
    without a trend, as R's ``voom`` → ``lmFit`` → ``contrasts.fit`` → ``eBayes``.

    Parameters
    ----------
    samples
        Samples AnnData with counts (``uns["perturbridge"]["value_kind"] == "counts"``).
    mode, control_keys
        As for :func:`~perturbridge.de.limma_trend`: replicates pooled (``"group"``) or
        one contrast per treated well (``"separate"``); the control-matching columns.
    options
        Design, voom and eBayes options (:class:`~perturbridge.de.DEOptions`):
        ``filter_genes`` (edgeR ``filterByExpr`` with the design, per fit),
        ``normalization`` (edgeR ``calcNormFactors``), ``span`` (voom trend),
        ``allow_non_integer``, ``keep_weights`` (voom weights of each fit in
        ``DEResult.diagnostics``, keyed by
        :attr:`~perturbridge.de.ContextDesign.fit_id`); limma-voom's defaults are
        ``trend=False`` and ``chunk_size=512``.
    progress
        Show a progress bar over contexts.

    Returns
    -------
    DEResult
        As for :func:`~perturbridge.de.limma_trend`; genes no fit tested are left out
        of the Effects with the reason in the ledger (``low_expression``).
    """
    opts = (options or DEOptions()).with_defaults(trend=False, chunk_size=512)
    validate_samples(samples)
    kind = samples.uns["perturbridge"]["value_kind"]
    if kind != "counts":
        raise ValueError(f"limma-voom needs counts, these Samples hold {kind!r}; use limma_trend")
    x = samples.layers[opts.layer] if opts.layer is not None else samples.X
    if opts.quality_weights and opts.quality_design != "fit":
        raise ValueError(
            "limma-voom estimates quality weights with the fit's design "
            f"(voomWithQualityWeights); quality_design={opts.quality_design!r} is for "
            "limma-trend"
        )
    check_counts(x, samples, allow_non_integer=opts.allow_non_integer)
    obs = samples.obs
    designs, ledger = plan_fits(samples, mode=mode, control_keys=control_keys, options=opts)
    # genes: filterByExpr per fit; Effects keep the genes tested in at least one fit
    keeps = []
    for design in designs:
        structure = design_structure(
            design.condition_codes,
            design.plate_codes,
            n_conditions=len(design.levels),
            n_plates=len(design.plate_levels),
        )
        xd = dense_rows(x, design.rows)
        _check_library_sizes(xd, samples.obs_names[design.rows], design.fit_id)
        if opts.filter_genes:
            keep = filter_by_expr(xd, max_hat=structure.max_hat())
            drop_low_expression(ledger, samples.var_names, keep, design)
        else:
            keep = np.ones(samples.n_vars, dtype=bool)
        del xd
        keeps.append((structure, keep))
    tested = np.logical_or.reduce([k for _, k in keeps]) if keeps else np.ones(0, dtype=bool)
    blocks = []
    diagnostics: dict[str, dict[str, np.ndarray]] = {}
    for design, (structure, keep) in track(
        list(zip(designs, keeps, strict=True)), description="limma-voom", enabled=progress
    ):
        out, diagnostics[design.fit_id] = _voom_context(
            dense_rows(x, design.rows)[:, keep],
            design,
            structure,
            obs=obs.iloc[design.rows],
            genes=(keep, tested),
            mode=mode,
            options=opts,
            ledger=ledger,
        )
        if out is not None:
            blocks.append(out)
    params = run_params(
        "limma-voom",
        mode=mode,
        options=opts,
        span=opts.span,
        filter_genes=opts.filter_genes,
        normalization=opts.normalization,
    )
    var = samples.var.iloc[np.flatnonzero(tested)] if designs else samples.var
    effects = effects_of(blocks, samples, mode=mode, params=params, options=opts, var=var)
    return DEResult(effects, ledger, diagnostics)


def _voom_context(
    kept: np.ndarray,
    design: ContextDesign,
    structure: DesignStructure,
    *,
    obs: pd.DataFrame,
    genes: tuple[np.ndarray, np.ndarray],
    mode: ReplicateMode,
    options: DEOptions,
    ledger: Ledger,
) -> tuple[tuple[pd.DataFrame, dict[str, np.ndarray]] | None, dict[str, np.ndarray]]:
    """One fit on its kept genes (``genes``: the fit's ``keep`` mask and the ``tested``
    mask of the run); layers span the tested genes (NaN for the rest). Returns the
    block (``None`` when nothing is estimable) and the fit's diagnostics."""
    keep, tested = genes
    diag: dict[str, np.ndarray] = {}
    n_cond, n_plates = len(design.levels), len(design.plate_levels)
    if keep.sum() < 2:
        ledger.drop(
            design.treated,
            stage=STAGE,
            reason="not_estimable",
            detail=f"{design.fit_id}: fewer than 2 genes pass filterByExpr",
        )
        return None, diag
    lib = kept.sum(axis=1)
    _check_library_sizes(kept, obs.index, f"{design.fit_id} (genes kept by filterByExpr)")
    nf = calc_norm_factors(kept, lib_size=lib, method=options.normalization)
    eff_lib = lib * nf
    diag.update(keep=keep, lib_size=lib, norm_factors=nf)
    y = voom_log_cpm(kept, eff_lib)
    fit0 = fit_condition_plate(
        y, design.condition_codes, design.plate_codes, n_conditions=n_cond, n_plates=n_plates
    )
    if fit0.df_residual <= 0:
        drop_no_df(design, ledger)
        return None, diag
    fitted = structure.fitted(fit0.coef_condition.T, fit0.coef_plate.T)
    w = voom_weights(
        kept,
        eff_lib,
        fitted=fitted,
        sigma=fit0.sigma,
        amean=fit0.amean,
        df_residual=fit0.df_residual,
        span=options.span,
    )
    aw = None
    if options.quality_weights:
        w, aw = _quality_weights(
            kept, y, w, structure, eff_lib=eff_lib, amean=fit0.amean, span=options.span
        )
        diag["sample_weights"] = aw
    if options.keep_weights:
        diag["weights"] = w
    assert options.chunk_size is not None  # set by DEOptions.with_defaults
    fit = fit_condition_plate_weighted(y, w, structure, chunk_size=options.chunk_size)
    t_idx = design.levels.get_indexer(design.treated)
    c_idx = design.levels.get_indexer(pd.Index(design.control))
    logfc, su = fit.contrast(t_idx, c_idx)
    estimates = ContextFit(
        logfc=logfc,
        stdev_unscaled=su,
        sigma=fit.sigma,
        df_residual=fit.df_residual,
        amean=fit.amean,
        n_per_condition=structure.n_per_condition,
        n_plate_columns_not_estimable=int((~structure.keep).sum()),
    )
    meta, layers = moderate_context(
        estimates,
        obs,
        design,
        mode=mode,
        options=options,
        ledger=ledger,
        genes=None if keep[tested].all() else (np.flatnonzero(keep[tested]), int(tested.sum())),
    )
    meta["n_genes_tested"] = int(keep.sum())
    if aw is not None:
        meta.attrs["quality_weights"] = quality_table(design, obs, aw, method="genebygene")
    return (meta, layers), diag


def _quality_weights(
    counts: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    structure: DesignStructure,
    *,
    eff_lib: np.ndarray,
    amean: np.ndarray,
    span: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``voomWithQualityWeights`` after the first voom (``w``): gene-by-gene
    ``arrayWeights`` with the voom weights, voom again with ``lmFit(weights = aw)``,
    ``arrayWeights`` again. Returns the final weights (voom's × the sample weights,
    samples × genes) and the sample weights."""
    xd = dense_design(structure)
    aw = array_weights_gene_by_gene(y, xd, weights=w)
    fit = fit_sample_weighted(y, xd, aw)
    w2 = voom_weights(
        counts,
        eff_lib,
        fitted=fit.fitted,
        sigma=fit.sigma,
        amean=amean,
        df_residual=fit.df_residual,
        span=span,
    )
    aw = array_weights_gene_by_gene(y, xd, weights=w2)
    return w2 * aw[:, None], aw

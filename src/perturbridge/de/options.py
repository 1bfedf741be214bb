"""The options of a DE run, written once for every method and engine."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from ..schema import OrphanVehicles

__all__ = ["DEOptions", "Normalization", "QualityDesign"]

#: The designs sample quality weights can be estimated with (``DEOptions.quality_design``).
QualityDesign = Literal["fit", "plate"]

#: edgeR ``calcNormFactors`` methods of limma-voom.
Normalization = Literal["TMM", "upperquartile", "none"]


@dataclass(frozen=True)
class DEOptions:
    """How a DE run fits and reports, beyond the method and the replicate mode.

    Parameters
    ----------
    orphan_vehicles
        ``"drop"`` (the original pipeline's choice): vehicle samples of a label (time,
        control-key values) that no treated condition is contrasted with are left out of
        the fit and ledgered as ``vehicle_without_treated``; ``"keep"``: they stay in the
        fit and inform the residual variance. See :func:`~perturbridge.de.plan_contexts`.
    fit_per_control_group
        Fit each value of the control-matching columns of a context apart (its own
        eBayes), as the original pipeline did per DMSO %; default: one fit per context.
    stdev_scaled
        Add the layer ``stdev.scaled`` (``stdev.unscaled * sqrt(s2.post)``, the standard
        error of ``logFC``; the original release has it).
    robust, trend
        eBayes options (limma's ``robust`` and ``trend``); ``trend=None`` is the method's
        default (limma-trend: ``True``, limma-voom: ``False``).
    confint
        Level of the confidence limits ``CI.L`` / ``CI.R``.
    layer
        Use this layer instead of ``X``.
    chunk_size
        Genes per block in the residual computation; ``None`` is the method's default
        (limma-trend: 4096, limma-voom: 512).
    quality_weights
        Estimate one quality weight per sample in each fit and use it in the fit:
        limma's ``arrayWeights`` (REML) for limma-trend, ``voomWithQualityWeights`` for
        limma-voom (see :mod:`perturbridge.de.quality`); the weights and the flagged
        samples go to the Effects' ``uns["quality_weights"]`` table.
    quality_design
        limma-trend: the design the weights are estimated with. ``"fit"`` (limma's
        ``arrayWeights(y, design)``): the fit's own design; a sample alone in its
        condition has no residual there and keeps a weight of about 1. ``"plate"``:
        ``~0 + plate`` (the plate means), so that every sample, replicated or not,
        is weighed by its distance from its plate; the fit then uses the full design
        with these weights. See :mod:`perturbridge.de.quality` for the trade-off.
    filter_genes, normalization, span, allow_non_integer, keep_weights
        limma-voom only: edgeR ``filterByExpr`` with the design, per fit; the
        ``calcNormFactors`` method; the ``lowess`` span of the voom trend; accept
        non-integer (estimated) counts; keep the voom weights of each fit in
        ``DEResult.diagnostics``.

    The R engine uses the design options (``orphan_vehicles``,
    ``fit_per_control_group``, ``stdev_scaled``), ``quality_weights`` and limma's
    defaults for the rest.
    """

    orphan_vehicles: OrphanVehicles = "drop"
    fit_per_control_group: bool = False
    stdev_scaled: bool = False
    robust: bool = True
    trend: bool | None = None
    confint: float = 0.95
    layer: str | None = None
    chunk_size: int | None = None
    filter_genes: bool = True
    normalization: Normalization = "TMM"
    span: float = 0.5
    allow_non_integer: bool = False
    keep_weights: bool = False
    quality_weights: bool = False
    quality_design: QualityDesign = "fit"

    def __post_init__(self) -> None:
        if self.quality_design not in ("fit", "plate"):
            raise ValueError(
                f"quality_design must be 'fit' or 'plate', got {self.quality_design!r}"
            )

    def with_defaults(self, *, trend: bool, chunk_size: int) -> DEOptions:
        """These options with a method's defaults for the unset ``trend`` and
        ``chunk_size``."""
        return replace(
            self,
            trend=trend if self.trend is None else self.trend,
            chunk_size=chunk_size if self.chunk_size is None else self.chunk_size,
        )

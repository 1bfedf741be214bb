"""Differential expression: limma-trend (and, later, limma-voom) against matched vehicles."""

from ._ebayes import ebayes, squeeze_var
from ._linear import contrasts_fit, fit_condition_plate, lm_fit
from .limma import (
    ContextDesign,
    DEResult,
    ReplicateMode,
    condition_table,
    limma_trend,
    plan_contexts,
)

__all__ = [
    "ContextDesign",
    "DEResult",
    "ReplicateMode",
    "condition_table",
    "contrasts_fit",
    "ebayes",
    "fit_condition_plate",
    "limma_trend",
    "lm_fit",
    "plan_contexts",
    "squeeze_var",
]

"""Differential expression against matched vehicles: limma-trend and limma-voom.

``limma_trend`` (log expression) and ``limma_voom`` (counts) are numerically equal to R
limma/edgeR; ``perturbridge.de.r_limma.limma_r`` runs the same analyses through R.
"""

from ._ebayes import ebayes, squeeze_var
from ._edger import calc_norm_factors, cpm, filter_by_expr
from ._linear import contrasts_fit, fit_condition_plate, lm_fit
from ._voom import voom_log_cpm, voom_weights
from ._weighted import fit_condition_plate_weighted, lm_fit_weighted
from .limma import (
    ContextDesign,
    DEResult,
    OrphanVehicles,
    ReplicateMode,
    condition_table,
    limma_trend,
    plan_contexts,
)
from .voom import limma_voom

__all__ = [
    "ContextDesign",
    "DEResult",
    "OrphanVehicles",
    "ReplicateMode",
    "calc_norm_factors",
    "condition_table",
    "contrasts_fit",
    "cpm",
    "ebayes",
    "filter_by_expr",
    "fit_condition_plate",
    "fit_condition_plate_weighted",
    "limma_trend",
    "limma_voom",
    "lm_fit",
    "lm_fit_weighted",
    "plan_contexts",
    "squeeze_var",
    "voom_log_cpm",
    "voom_weights",
]

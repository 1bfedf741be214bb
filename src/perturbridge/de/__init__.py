"""Differential expression against matched vehicles: limma-trend and limma-voom.

:func:`run` is the entry point: it picks the method (:func:`list_methods`) from the
Samples' value kind and runs it with perturbridge's engine (numerically equal to R
limma/edgeR) or through R (:func:`perturbridge.de.r_limma.limma_r`). :class:`DEOptions`
holds the options every method shares. :func:`top_table` and :func:`decide_tests` are
limma's ``topTable`` and ``decideTests`` on the Effects; sample quality weights
(``arrayWeights``, ``voomWithQualityWeights``) are in :mod:`perturbridge.de.quality`.
"""

from ..schema import OrphanVehicles, ReplicateMode
from ._ebayes import ebayes, squeeze_var
from ._edger import calc_norm_factors, cpm, filter_by_expr
from ._effects import DEResult
from ._linear import contrasts_fit, fit_condition_plate, lm_fit
from ._voom import voom_log_cpm, voom_weights
from ._weighted import fit_condition_plate_weighted, lm_fit_weighted
from .design import ContextDesign, condition_table, control_keys_of, plan_contexts
from .limma import limma_trend
from .methods import METHODS, MethodMeta, list_methods, method_for, run
from .options import DEOptions
from .toptable import decide_tests, p_adjust, top_table
from .voom import limma_voom

__all__ = [
    "METHODS",
    "ContextDesign",
    "DEOptions",
    "DEResult",
    "MethodMeta",
    "OrphanVehicles",
    "ReplicateMode",
    "calc_norm_factors",
    "condition_table",
    "contrasts_fit",
    "control_keys_of",
    "cpm",
    "decide_tests",
    "ebayes",
    "filter_by_expr",
    "fit_condition_plate",
    "fit_condition_plate_weighted",
    "limma_trend",
    "limma_voom",
    "list_methods",
    "lm_fit",
    "lm_fit_weighted",
    "method_for",
    "p_adjust",
    "plan_contexts",
    "run",
    "squeeze_var",
    "top_table",
    "voom_log_cpm",
    "voom_weights",
]

"""Sample quality weights in a DE fit, and the QC table of each fit.

With ``DEOptions(quality_weights=True)`` each fit estimates one weight per sample
(well) before its linear model, as limma users do for noisy arrays or wells:

* limma-trend (log expression, e.g. L1000 level 3): ``aw <- arrayWeights(y, design)``
  (limma's default ``method = "auto"``, which for complete data without prior weights
  is ``"reml"``), then ``lmFit(y, design, weights = aw)``;
* limma-voom (counts): ``voomWithQualityWeights(dge, design)`` (voom, gene-by-gene
  ``arrayWeights`` with the voom weights, voom again with the sample weights, and
  ``arrayWeights`` again; the final weights are voom's times the sample weights).

A failed well gets a weight far below 1 and no longer drives the contrasts it is in.
Every fit's weights go to a QC table (:func:`quality_table`): one row per sample with
its weight and ``flagged`` = weight below :data:`FLAG_BELOW` (the sample's residual
variance is more than 4 times that of a typical sample of the fit). The Effects keep
the tables of all fits in ``uns["quality_weights"]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ._linear import DesignStructure
from ._quality import fit_sample_weighted
from .design import ContextDesign

__all__ = [
    "FLAG_BELOW",
    "MAX_SAMPLES",
    "QC_COLUMNS",
    "check_size",
    "dense_design",
    "plate_design",
    "quality_table",
    "sample_weighted_contrasts",
]

FloatArray = NDArray[np.float64]

#: A sample is flagged in the QC table when its weight is below this: its residual
#: variance is estimated at more than 4 times that of a typical sample of the fit
#: (the weights' geometric mean is 1).
FLAG_BELOW = 0.25

#: The largest fit (samples) quality weights are estimated for: the estimation works
#: on samples × samples matrices (``O(n³)`` per iteration, per gene for voom).
MAX_SAMPLES = 4000

#: Columns of a QC table.
QC_COLUMNS = (
    "fit_id",
    "sample_id",
    "plate",
    "condition",
    "weight",
    "flagged",
    "method",
    "status",
)


def check_size(design: ContextDesign) -> None:
    """Raise ``ValueError`` before the work when a fit is too large for sample weights."""
    n = len(design.rows)
    if n > MAX_SAMPLES:
        raise ValueError(
            f"{design.fit_id}: {n} samples in one fit; quality weights are estimated on "
            f"samples × samples matrices and are limited to {MAX_SAMPLES} samples per "
            "fit (split the fit with fit_per_control_group=True, or run without "
            "quality_weights)"
        )


def dense_design(structure: DesignStructure) -> FloatArray:
    """The ``~0 + condition + plate`` design (samples × (K + estimable plates))."""
    return np.hstack([structure.cmat.T.toarray(), structure.pmat.T.toarray()])


def plate_design(structure: DesignStructure) -> FloatArray:
    """``~0 + plate``: one indicator column per plate (one column of ones for a plate)."""
    return np.eye(structure.n_plates)[structure.plate]


def sample_weighted_contrasts(
    y: FloatArray,
    structure: DesignStructure,
    weights: FloatArray,
    *,
    treated: NDArray[np.intp],
    control: NDArray[np.intp],
) -> tuple[FloatArray, FloatArray, FloatArray, int]:
    """``lmFit(y, design, weights = aw)`` → ``contrasts.fit``: estimates (genes × m),
    ``stdev.unscaled`` (m; array weights are the same for every gene, so the contrasts
    use the weighted coefficient covariance exactly), residual SDs and df."""
    fit = fit_sample_weighted(y, dense_design(structure), weights)
    cov = fit.cov_unscaled
    logfc = fit.coefficients[:, treated] - fit.coefficients[:, control]
    var = cov[treated, treated] + cov[control, control] - 2 * cov[treated, control]
    return logfc, np.sqrt(np.maximum(var, 0.0)), fit.sigma, fit.df_residual


def quality_table(
    design: ContextDesign,
    obs: pd.DataFrame,
    weights: FloatArray,
    *,
    method: str,
    status: str = "converged",
) -> pd.DataFrame:
    """The QC table of one fit: its samples (``obs``, in fit order), their plate and
    condition, weight, whether it is flagged (weight < :data:`FLAG_BELOW`), the
    estimation ``method`` (``"reml"``, ``"genebygene"``) and its ``status``
    (``"converged"``, or limma's reason for stopping early: the weights are then those
    of the last iteration, as limma returns them; a failed well whose weight keeps
    falling towards 0 typically stops at the iteration limit)."""
    w = np.asarray(weights, dtype=float)
    return pd.DataFrame(
        {
            "fit_id": design.fit_id,
            "sample_id": obs.index.to_numpy(dtype=str),
            "plate": np.asarray(design.plates, dtype=str),
            "condition": np.asarray(design.condition, dtype=str),
            "weight": w,
            "flagged": w < FLAG_BELOW,
            "method": method,
            "status": status,
        }
    )

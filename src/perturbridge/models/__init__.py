"""Compound representations pretrained on the compendium (optional extra ``[models]``).

Training data streamed from a store or from exported Parquet shards (:mod:`.data`), the
saved splits that evaluate it (:mod:`.splits`), the LPM-style model and its training, the
compound embeddings it learns, and an evaluation that always shows the trivial baselines.

The names below load their module on first use (PEP 562): ``perturbridge.models.data``
and ``perturbridge.models.splits`` work without torch, and only the names that need the
model import it. A name whose module is missing fails when it is accessed, not on import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports, public_names

if TYPE_CHECKING:  # the names for type checkers (re-exported)
    from .baselines import BASELINES as BASELINES
    from .data import (
        Batch as Batch,
        DataOptions as DataOptions,
        Standardizer as Standardizer,
        TrainingData as TrainingData,
        Vocabulary as Vocabulary,
        load_training_data as load_training_data,
        read_structures as read_structures,
    )
    from .embedding import embed as embed
    from .evaluation import (
        EvaluationOptions as EvaluationOptions,
        EvaluationResult as EvaluationResult,
        combine_seeds as combine_seeds,
        evaluate as evaluate,
        read_evaluation as read_evaluation,
    )
    from .model import TrainedModel as TrainedModel
    from .options import FAMILIES as FAMILIES, ModelConfig as ModelConfig
    from .splits import (
        SPLIT_KINDS as SPLIT_KINDS,
        Split as Split,
        SplitOptions as SplitOptions,
        load_split as load_split,
        make_split as make_split,
        save_split as save_split,
    )
    from .training import train as train

#: each module → the public names it defines
_EXPORTS = {
    ".baselines": ("BASELINES",),
    ".data": (
        "Batch",
        "DataOptions",
        "Standardizer",
        "TrainingData",
        "Vocabulary",
        "load_training_data",
        "read_structures",
    ),
    ".embedding": ("embed",),
    ".evaluation": (
        "EvaluationOptions",
        "EvaluationResult",
        "combine_seeds",
        "evaluate",
        "read_evaluation",
    ),
    ".model": ("TrainedModel",),
    ".options": ("FAMILIES", "ModelConfig"),
    ".splits": ("SPLIT_KINDS", "Split", "SplitOptions", "load_split", "make_split", "save_split"),
    ".training": ("train",),
}

__all__ = public_names(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

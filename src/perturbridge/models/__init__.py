"""Compound representations pretrained on the compendium (optional extra ``[models]``).

Training data streamed from a store or from exported Parquet shards (:mod:`.data`), the
saved splits that evaluate it (:mod:`.splits`), the LPM-style model and its training, the
compound embeddings it learns, and an evaluation that always shows the trivial baselines.

The names below load their module on first use (PEP 562): ``perturbridge.models.data``
and ``perturbridge.models.splits`` work without torch, and only the names that need the
model import it. A name whose module is missing fails when it is accessed, not on import.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# the type checker sees the real objects (``__getattr__`` gives ``Any``)
if TYPE_CHECKING:
    from .baselines import BASELINES
    from .data import (
        Batch,
        DataOptions,
        Standardizer,
        TrainingData,
        Vocabulary,
        load_training_data,
        read_structures,
    )
    from .embed import embed
    from .evaluate import (
        EvaluationOptions,
        EvaluationResult,
        combine_seeds,
        evaluate,
        read_evaluation,
    )
    from .model import TrainedModel
    from .options import FAMILIES, ModelConfig
    from .splits import SPLIT_KINDS, Split, SplitOptions, load_split, make_split, save_split
    from .train import train

#: public name → the module that defines it
_EXPORTS = {
    "BASELINES": ".baselines",
    "Batch": ".data",
    "DataOptions": ".data",
    "EvaluationOptions": ".evaluate",
    "EvaluationResult": ".evaluate",
    "FAMILIES": ".options",
    "ModelConfig": ".options",
    "SPLIT_KINDS": ".splits",
    "Split": ".splits",
    "SplitOptions": ".splits",
    "Standardizer": ".data",
    "TrainedModel": ".model",
    "TrainingData": ".data",
    "Vocabulary": ".data",
    "combine_seeds": ".evaluate",
    "embed": ".embed",
    "evaluate": ".evaluate",
    "load_split": ".splits",
    "load_training_data": ".data",
    "make_split": ".splits",
    "read_evaluation": ".evaluate",
    "read_structures": ".data",
    "save_split": ".splits",
    "train": ".train",
}

__all__ = [
    "BASELINES",
    "FAMILIES",
    "SPLIT_KINDS",
    "Batch",
    "DataOptions",
    "EvaluationOptions",
    "EvaluationResult",
    "ModelConfig",
    "Split",
    "SplitOptions",
    "Standardizer",
    "TrainedModel",
    "TrainingData",
    "Vocabulary",
    "combine_seeds",
    "embed",
    "evaluate",
    "load_split",
    "load_training_data",
    "make_split",
    "read_evaluation",
    "read_structures",
    "save_split",
    "train",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

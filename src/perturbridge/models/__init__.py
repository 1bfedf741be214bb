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

from .._lazy import lazy_exports

if TYPE_CHECKING:  # the names for type checkers (re-exported)
    from .baselines import BASELINES as BASELINES
    from .data import Batch as Batch
    from .data import DataOptions as DataOptions
    from .data import Standardizer as Standardizer
    from .data import TrainingData as TrainingData
    from .data import Vocabulary as Vocabulary
    from .data import load_training_data as load_training_data
    from .data import read_structures as read_structures
    from .embedding import embed as embed
    from .evaluation import EvaluationOptions as EvaluationOptions
    from .evaluation import EvaluationResult as EvaluationResult
    from .evaluation import combine_seeds as combine_seeds
    from .evaluation import evaluate as evaluate
    from .evaluation import read_evaluation as read_evaluation
    from .model import TrainedModel as TrainedModel
    from .options import FAMILIES as FAMILIES
    from .options import ModelConfig as ModelConfig
    from .splits import SPLIT_KINDS as SPLIT_KINDS
    from .splits import Split as Split
    from .splits import SplitOptions as SplitOptions
    from .splits import load_split as load_split
    from .splits import make_split as make_split
    from .splits import save_split as save_split
    from .training import train as train

#: public name → the module that defines it
_EXPORTS = {
    "BASELINES": ".baselines",
    "Batch": ".data",
    "DataOptions": ".data",
    "EvaluationOptions": ".evaluation",
    "EvaluationResult": ".evaluation",
    "FAMILIES": ".options",
    "ModelConfig": ".options",
    "SPLIT_KINDS": ".splits",
    "Split": ".splits",
    "SplitOptions": ".splits",
    "Standardizer": ".data",
    "TrainedModel": ".model",
    "TrainingData": ".data",
    "Vocabulary": ".data",
    "combine_seeds": ".evaluation",
    "embed": ".embedding",
    "evaluate": ".evaluation",
    "load_split": ".splits",
    "load_training_data": ".data",
    "make_split": ".splits",
    "read_evaluation": ".evaluation",
    "read_structures": ".data",
    "save_split": ".splits",
    "train": ".training",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

"""What a model is: :class:`ModelConfig` (read from TOML) and the named model families.

A :class:`ModelConfig` describes one LPM-style network and how it is trained. It is read
from a TOML file whose top-level keys are the field names (``[model]`` may hold them
instead), with every problem reported at once::

    form = "multi"               # or "scalar"
    compound_encoder = "morgan"  # "embedding" | "morgan" | "pretrained"
    morgan_radius = 2
    morgan_bits = 1024
    hidden = [256, 256]
    max_epochs = 50
    seed = 0

:data:`FAMILIES` names the model families of the published study: which rows a family
trains on (every dataset, or the target dataset only) and which settings it overrides.

This module does not import torch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import pandas as pd

from ..io._toml import TomlReader, load_toml

if TYPE_CHECKING:
    from .data import TrainingData
    from .splits import Split

__all__ = ["FAMILIES", "Family", "ModelConfig", "ModelConfigError", "list_families"]

FORMS: Final = ("scalar", "multi")
COMPOUND_ENCODERS: Final = ("embedding", "morgan", "pretrained")


class ModelConfigError(ValueError):
    """A model configuration is invalid; the message lists every problem found."""

    def __init__(self, problems: list[str], *, where: str = "model configuration") -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        n = len(self.problems)
        super().__init__(f"{where} has {n} problem{'s' if n != 1 else ''}:\n{lines}")


@dataclass(frozen=True)
class ModelConfig:
    """One LPM-style model and its training.

    Parameters
    ----------
    form
        ``"multi"``: one row per condition, all readout genes predicted at once;
        ``"scalar"``: one row per condition × gene, with a learned gene embedding.
    compound_encoder
        ``"embedding"`` (a learned vector per compound), ``"morgan"`` (an RDKit Morgan
        fingerprint of the compound's structure) or ``"pretrained"`` (vectors read from
        an embeddings table, the output of ``perturbridge embed``).
    morgan_radius, morgan_bits
        The fingerprint's radius and length.
    morgan_trainable
        ``False``: the fingerprint bits enter the network unchanged (a fixed
        representation); ``True``: a learned linear projection of the bits to
        ``dim_compound`` values.
    pretrained
        Path of the embeddings table for ``compound_encoder = "pretrained"``.
    freeze_compound
        Do not train the compound representation (any encoder).
    dim_dataset, dim_context, dim_compound, dim_gene
        Embedding sizes (``dim_gene`` only in the scalar form).
    hidden, dropout
        Hidden layer sizes of the MLP and the dropout after each.
    lr, weight_decay, batch_size
        AdamW settings and conditions per batch.
    max_epochs, patience
        Training stops after ``max_epochs``, or earlier when the validation loss has not
        improved for ``patience`` epochs (``0``: no early stopping).
    seed
        Seed of initialisation, batch order and dropout: the same seed gives the same model.
    device
        ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    """

    form: Literal["scalar", "multi"] = "multi"
    compound_encoder: Literal["embedding", "morgan", "pretrained"] = "embedding"
    morgan_radius: int = 2
    morgan_bits: int = 1024
    morgan_trainable: bool = False
    pretrained: str | None = None
    freeze_compound: bool = False
    dim_dataset: int = 8
    dim_context: int = 16
    dim_compound: int = 32
    dim_gene: int = 32
    hidden: tuple[int, ...] = (256, 256)
    dropout: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 64
    max_epochs: int = 50
    patience: int = 5
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.hidden, list):  # from JSON or to_dict
            object.__setattr__(self, "hidden", tuple(self.hidden))
        problems = self.problems()
        if problems:
            raise ModelConfigError(problems)

    def problems(self) -> list[str]:
        """Every value out of range, in words (empty when the configuration is valid)."""
        out: list[str] = []
        if self.form not in FORMS:
            out.append(f"form: expected one of {list(FORMS)}, found {self.form!r}")
        if self.compound_encoder not in COMPOUND_ENCODERS:
            out.append(
                f"compound_encoder: expected one of {list(COMPOUND_ENCODERS)}, "
                f"found {self.compound_encoder!r}"
            )
        for name in (
            "morgan_radius", "morgan_bits", "dim_dataset", "dim_context", "dim_compound",
            "dim_gene", "batch_size", "max_epochs", "patience",
        ):  # fmt: skip
            value = getattr(self, name)
            low = 0 if name in ("morgan_radius", "patience") else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                out.append(f"{name}: expected an integer >= {low}, found {value!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            out.append(f"seed: expected an integer >= 0, found {self.seed!r}")
        if not self.hidden or not all(
            isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in self.hidden
        ):
            out.append(
                f"hidden: expected a non-empty list of integers >= 1, found {list(self.hidden)}"
            )
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            out.append(f"dropout: expected a number in [0, 1), found {self.dropout!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            out.append(f"lr: expected a number > 0, found {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            out.append(f"weight_decay: expected a number >= 0, found {self.weight_decay!r}")
        dev = self.device
        named = isinstance(dev, str) and (
            dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())
        )
        if not named:
            out.append(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', found {dev!r}")
        if self.compound_encoder == "pretrained" and not self.pretrained:
            out.append(
                "pretrained: compound_encoder = 'pretrained' needs the path of an embeddings "
                "table (the output of `perturbridge embed`)"
            )
        if self.pretrained and self.compound_encoder != "pretrained":
            out.append(
                f"pretrained: given ({self.pretrained!r}) but compound_encoder is "
                f"{self.compound_encoder!r}; set compound_encoder = 'pretrained' or remove it"
            )
        return out

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> ModelConfig:
        """Read a configuration file; :class:`ModelConfigError` lists every problem
        (unknown keys, wrong types, values out of range) at once. A relative
        ``pretrained`` path is relative to the file's folder."""
        p = Path(path)
        where = f"model configuration {p}"
        if not p.is_file():
            raise FileNotFoundError(f"{where}: no such file")
        try:
            data = load_toml(p)
        except ValueError as err:
            raise ModelConfigError([str(err)], where=where) from err
        return cls.from_mapping(data, base_dir=p.parent, where=where)

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any],
        *,
        base_dir: str | os.PathLike[str] | None = None,
        where: str = "model configuration",
    ) -> ModelConfig:
        """A configuration from parsed TOML (see :meth:`from_toml`)."""
        r = TomlReader(Path(base_dir).absolute() if base_dir is not None else None)
        if "model" in data:
            r.known(data, ("model",), "")
            data = r.table(data, "model", "")
            top = "model"
        else:
            top = ""
        names = [f.name for f in fields(cls)]
        r.known(data, names, top)
        defaults = cls()
        values: dict[str, Any] = {}
        for name in names:
            q = f"{top}.{name}" if top else name
            if name not in data:
                continue
            v = data[name]
            default = getattr(defaults, name)
            if name == "hidden":
                ok = isinstance(v, list) and all(
                    isinstance(x, int) and not isinstance(x, bool) for x in v
                )
                if not ok:
                    r.problem(f"{q}: expected an array of integers, found {v!r}")
                    continue
                v = tuple(v)
            elif name == "pretrained":
                if not isinstance(v, str) or not v.strip():
                    r.problem(f"{q}: expected a non-empty string (a path), found {v!r}")
                    continue
                v = str(r.path(v))
            elif isinstance(default, bool):
                v = r.get(data, name, bool, default, top)
            elif isinstance(default, int):
                v = r.get(data, name, int, default, top)
            elif isinstance(default, float):
                v = float(r.get(data, name, (int, float), default, top))
            else:
                v = r.get(data, name, str, default, top)
            values[name] = v
        # values of the wrong type were left out above: check the ranges of the others
        r.problems.extend(_unchecked(cls, values).problems())
        if r.problems:
            raise ModelConfigError(r.problems, where=where)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain values (``hidden`` as a list), for JSON and TOML."""
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        """The inverse of :meth:`to_dict` (unknown keys are an error)."""
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ModelConfigError([f"unknown key(s) {unknown}"])
        values = dict(d)
        if "hidden" in values:
            values["hidden"] = tuple(values["hidden"])
        return cls(**values)

    def to_toml(self) -> str:
        """The configuration as TOML text that :meth:`from_toml` reads back."""
        lines = []
        for key, value in self.to_dict().items():
            if value is None:
                continue
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, str):
                text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
            elif isinstance(value, list):
                text = "[" + ", ".join(str(x) for x in value) + "]"
            else:
                text = repr(value)
            lines.append(f"{key} = {text}")
        return "\n".join(lines) + "\n"


def _unchecked(cls: type[ModelConfig], values: Mapping[str, Any]) -> ModelConfig:
    """A configuration built without :meth:`ModelConfig.__post_init__` (to list its
    problems together with the TOML reader's)."""
    obj = object.__new__(cls)
    for f in fields(cls):
        object.__setattr__(obj, f.name, values.get(f.name, f.default))
    return obj


@dataclass(frozen=True)
class Family:
    """A named model family: which rows it trains on and which settings it overrides.

    Attributes
    ----------
    name, description
        How the family is called and what it is, in words.
    target_only
        Train and validate on the split's target dataset only (else on every dataset).
    overrides
        :class:`ModelConfig` fields this family sets.
    needs_pretrained
        The family starts from the compound embeddings of an ``"all"`` model (an
        embeddings table from ``perturbridge embed``, given as ``pretrained``).
    """

    name: str
    description: str
    target_only: bool
    overrides: Mapping[str, Any] = field(default_factory=dict)
    needs_pretrained: bool = False

    def configure(self, config: ModelConfig, *, pretrained: str | None = None) -> ModelConfig:
        """``config`` with this family's overrides (and ``pretrained`` when it needs one)."""
        values: dict[str, Any] = dict(self.overrides)
        if self.needs_pretrained:
            path = pretrained or config.pretrained
            if not path:
                raise ValueError(
                    f"model family {self.name!r} needs the compound embeddings of an 'all' "
                    "model: pass pretrained=<embeddings table> (the output of "
                    "`perturbridge embed`)"
                )
            values["pretrained"] = str(path)
        elif config.compound_encoder == "pretrained" and "compound_encoder" in values:
            values["pretrained"] = None
        return replace(config, **values)

    def restrict(
        self,
        data: TrainingData,
        rows: np.ndarray,
        *,
        target_dataset: str | None,
    ) -> np.ndarray:
        """The rows of ``rows`` this family trains (or validates) on."""
        rows = np.asarray(rows, dtype=np.int64)
        if not self.target_only:
            return rows
        if target_dataset is None:
            raise ValueError(
                f"model family {self.name!r} trains on the target dataset only: the split "
                "names no target dataset (make a 'compound' split with --target, or pass "
                "target_dataset=)"
            )
        datasets = data.conditions["dataset"].to_numpy()
        if target_dataset not in set(datasets.tolist()):
            raise KeyError(
                f"target dataset {target_dataset!r} is not in the training data; datasets: "
                f"{sorted(set(datasets.tolist()))[:10]}"
            )
        return rows[datasets[rows] == target_dataset]


def _families() -> Mapping[str, Family]:
    items = [
        Family(
            "all",
            "every dataset of the compendium, a learned embedding per compound",
            target_only=False,
        ),
        Family(
            "target_only",
            "the target dataset only, a learned embedding per compound",
            target_only=True,
            overrides={"compound_encoder": "embedding", "freeze_compound": False},
        ),
        Family(
            "finetune_frozen",
            "the target dataset only, starting from the compound embeddings of an 'all' "
            "model, kept frozen",
            target_only=True,
            overrides={"compound_encoder": "pretrained", "freeze_compound": True},
            needs_pretrained=True,
        ),
        Family(
            "morgan_fixed",
            "the target dataset only, the Morgan fingerprint bits as the compound input",
            target_only=True,
            overrides={
                "compound_encoder": "morgan",
                "morgan_trainable": False,
                "freeze_compound": False,
            },
        ),
        Family(
            "morgan_learned",
            "the target dataset only, a learned projection of the Morgan fingerprint",
            target_only=True,
            overrides={
                "compound_encoder": "morgan",
                "morgan_trainable": True,
                "freeze_compound": False,
            },
        ),
    ]
    return MappingProxyType({f.name: f for f in items})


#: The model families of the published study, by name.
FAMILIES: Final[Mapping[str, Family]] = _families()


def list_families() -> pd.DataFrame:
    """The model families: name, description, target_only, overrides, needs_pretrained."""
    return pd.DataFrame(
        [
            {
                "name": f.name,
                "description": f.description,
                "target_only": f.target_only,
                "overrides": ", ".join(f"{k}={v!r}" for k, v in f.overrides.items()),
                "needs_pretrained": f.needs_pretrained,
            }
            for f in FAMILIES.values()
        ]
    )


def target_of(split: Split) -> str | None:
    """The target dataset a split names in its manifest (``None`` when it names none)."""
    options = split.manifest.get("options", {})
    target = options.get("target_dataset") if isinstance(options, Mapping) else None
    if target is None:
        target = split.manifest.get("target_dataset")
    return str(target) if target else None

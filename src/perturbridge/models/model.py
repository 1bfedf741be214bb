"""The LPM family of perturbation-response models, and a trained model saved with its
vocabularies.

:class:`LPMNet` embeds a condition's dataset, cell context and compound (through one of
the :mod:`.encoders`), adds the standardized log10 dose and time, and passes them through
an MLP:

* **multi** form: one row per condition; the last layer predicts every readout gene at
  once.
* **scalar** form: one row per condition × gene; a learned gene embedding joins the
  input and the last layer predicts one value. The first layer is linear in the
  concatenated input, so it is computed as (condition part) + (gene part) and the rows
  of a batch of conditions are formed for all genes at once, which gives the same
  values as building the condition × gene rows one by one.

In both forms the loss is taken only on the measured values (:func:`masked_mse`).
Unknown codes (``<unk>``, index 0) and codes never seen in training map to the zero
vector, so an unseen dataset, context or compound is never given a random vector.

:class:`TrainedModel` holds the network with the configuration, vocabularies,
standardizers, readout genes and what is known about each compound; it predicts, gives
the compound embeddings, and saves to one file (``torch.save`` of plain values, read
back with ``weights_only=True``).
"""

from __future__ import annotations

import copy
import itertools
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..io import atomic_file, provenance
from .encoders import EmbeddingEncoder, MorganEncoder, TableEncoder, build_encoder
from .options import ModelConfig
from .vocab import Standardizer, Vocabulary

if TYPE_CHECKING:
    from .data import Batch, TrainingData

__all__ = ["LPMNet", "TrainedModel", "batch_size_for", "masked_mse", "resolve_device"]

logger = logging.getLogger(__name__)

#: The ``format`` of a saved model file, and its version.
MODEL_FORMAT: Final = "perturbridge.lpm"
MODEL_VERSION: Final = 1
VOCABS: Final = ("dataset", "context", "compound", "gene")


def resolve_device(device: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; ``"cuda…"`` without CUDA is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {device!r} asked for, but torch sees no CUDA device (torch "
            f"{torch.__version__}); use device = 'auto' or 'cpu'"
        )
    return torch.device(device)


#: Values (condition × gene × hidden unit) one scalar-form batch may hold per layer.
SCALAR_BATCH_VALUES: Final = 1 << 25


def batch_size_for(config: ModelConfig, n_genes: int, requested: int) -> int:
    """``requested``, capped in the scalar form so that one layer's activations (rows ×
    genes × hidden units) stay under :data:`SCALAR_BATCH_VALUES` (128 MB of float32)."""
    if config.form != "scalar":
        return requested
    per_condition = max(1, n_genes * max(config.hidden))
    return max(1, min(requested, SCALAR_BATCH_VALUES // per_condition))


def masked_mse(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Sum of squared errors over the measured (non-NaN) values of ``target``, and
    their number. The mean is ``sum / n`` (callers average over an epoch by totals)."""
    measured = ~torch.isnan(target)
    diff = torch.where(measured, pred - torch.nan_to_num(target), torch.zeros_like(pred))
    return (diff * diff).sum(), int(measured.sum().item())


class LPMNet(nn.Module):
    """The network of the LPM family (see the module docstring)."""

    def __init__(
        self,
        config: ModelConfig,
        *,
        sizes: Mapping[str, int],
        encoder: nn.Module,
    ) -> None:
        super().__init__()
        self.form = config.form
        self.dataset = nn.Embedding(sizes["dataset"], config.dim_dataset, padding_idx=0)
        self.context = nn.Embedding(sizes["context"], config.dim_context, padding_idx=0)
        self.compound = encoder
        n_in = config.dim_dataset + config.dim_context + _dim(encoder) + 2
        h = list(config.hidden)
        self.first = nn.Linear(n_in, h[0])
        if self.form == "scalar":
            self.gene = nn.Embedding(sizes["gene"], config.dim_gene)
            self.gene_first = nn.Linear(config.dim_gene, h[0], bias=False)
        layers: list[nn.Module] = [nn.ReLU(), nn.Dropout(config.dropout)]
        for a, b in itertools.pairwise(h):
            layers += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(config.dropout)]
        self.body = nn.Sequential(*layers)
        n_out = 1 if self.form == "scalar" else sizes["gene"]
        self.head = nn.Linear(h[-1], n_out)

    def forward(
        self,
        dataset: torch.Tensor,
        context: torch.Tensor,
        compound: torch.Tensor,
        dose: torch.Tensor,
        time: torch.Tensor,
    ) -> torch.Tensor:
        """Predicted values (batch, n_genes) for a batch of conditions."""
        x = torch.cat(
            [
                self.dataset(dataset),
                self.context(context),
                self.compound(compound),
                dose[:, None],
                time[:, None],
            ],
            dim=1,
        )
        a = self.first(x)
        if self.form == "multi":
            out: torch.Tensor = self.head(self.body(a))
            return out
        g = self.gene_first(self.gene.weight)  # (n_genes, h0)
        rows = a[:, None, :] + g[None, :, :]  # one row per condition × gene
        return self.head(self.body(rows)).squeeze(-1)

    def predict_batch(self, batch: Batch, device: torch.device) -> torch.Tensor:
        """Predictions for a :class:`~perturbridge.models.data.Batch`."""
        return self(
            torch.as_tensor(batch.dataset, dtype=torch.long, device=device),
            torch.as_tensor(batch.context, dtype=torch.long, device=device),
            torch.as_tensor(batch.compound, dtype=torch.long, device=device),
            torch.as_tensor(batch.log10_dose, dtype=torch.float32, device=device),
            torch.as_tensor(batch.time, dtype=torch.float32, device=device),
        )


def compound_info(data: TrainingData) -> pd.DataFrame:
    """What the training data knows about each compound key: index compound key,
    columns ``inchikey``, ``pubchem_cid`` (nullable integer) and ``name``."""
    c = data.conditions
    cols = {"compound_inchikey": "inchikey", "pubchem_cid": "pubchem_cid", "perturbagen": "name"}
    present = {k: v for k, v in cols.items() if k in c.columns}
    frame = c[["compound", *present]].rename(columns=present)
    info = frame.groupby("compound", sort=False).first()
    for col in ("inchikey", "pubchem_cid", "name"):
        if col not in info.columns:
            info[col] = None
    info["pubchem_cid"] = pd.to_numeric(info["pubchem_cid"], errors="coerce").astype("Int64")
    info.index.name = "compound"
    return info[["inchikey", "pubchem_cid", "name"]]


def build_net(
    config: ModelConfig,
    data: TrainingData,
    *,
    train_rows: np.ndarray,
    structures: pd.DataFrame | None = None,
) -> tuple[LPMNet, dict[str, Any]]:
    """A freshly initialised network for ``data`` (seeded by the caller): the codes never
    seen in ``train_rows`` start at the zero vector (learned embeddings only)."""
    tokens = data.vocab["compound"].tokens
    morgan = config.compound_encoder == "morgan"
    smiles = data.smiles(structures) if morgan and structures is not None else None
    encoder, info = build_encoder(
        config, tokens=tokens, compounds=compound_info(data), smiles=smiles
    )
    sizes = _sizes(data.vocab, n_genes=len(data.genes))
    net = LPMNet(config, sizes=sizes, encoder=encoder)
    c = data.conditions
    seen = {
        "dataset": data.vocab["dataset"].encode(c["dataset"].to_numpy()[train_rows]),
        "context": data.vocab["context"].encode(c["context"].to_numpy()[train_rows]),
        "compound": data.vocab["compound"].encode(c["compound"].to_numpy()[train_rows]),
    }
    weights = {"dataset": net.dataset.weight, "context": net.context.weight}
    if isinstance(encoder, EmbeddingEncoder):
        weights["compound"] = encoder.embedding.weight
    with torch.no_grad():
        for name, weight in weights.items():
            unseen = np.setdiff1d(np.arange(weight.shape[0]), seen[name])
            weight[torch.as_tensor(unseen, dtype=torch.long)] = 0.0
    info["in_training"] = np.unique(seen["compound"]).astype(int).tolist()
    if config.freeze_compound:
        for p in encoder.parameters():
            p.requires_grad_(False)
    return net, info


class TrainedModel:
    """A trained LPM network with everything needed to use it on new data.

    Attributes
    ----------
    config
        The :class:`~perturbridge.models.options.ModelConfig` it was trained with.
    vocab, scalers
        The vocabularies (dataset, context, compound, gene) and the dose/time
        standardizers of its training data.
    genes
        The readout genes (index ``gene_id``, column ``symbol``): the prediction columns.
    compounds
        What is known about each compound key (``inchikey``, ``pubchem_cid``, ``name``)
        and ``in_training``: whether its rows were in the training part.
    info
        The encoder record, the epoch of these weights and how training went.
    """

    def __init__(
        self,
        *,
        config: ModelConfig,
        vocab: Mapping[str, Vocabulary],
        scalers: Mapping[str, Standardizer],
        genes: pd.DataFrame,
        compounds: pd.DataFrame,
        net: LPMNet,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.vocab = dict(vocab)
        self.scalers = dict(scalers)
        self.genes = genes
        self.compounds = compounds
        self.net = net
        self.info = dict(info or {})

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.net.parameters())
        return (
            f"TrainedModel(form={self.config.form!r}, encoder={self.config.compound_encoder!r}, "
            f"genes={len(self.genes)}, compounds={len(self.compounds)}, parameters={n})"
        )

    @classmethod
    def from_training(
        cls,
        *,
        config: ModelConfig,
        data: TrainingData,
        net: LPMNet,
        info: Mapping[str, Any],
    ) -> TrainedModel:
        """A model of ``net`` trained on ``data`` (vocabularies and compounds from it)."""
        tokens = list(data.vocab["compound"].tokens[1:])
        compounds = compound_info(data).reindex(tokens)
        compounds.index.name = "compound"
        trained = set(info.get("in_training", []))
        compounds["in_training"] = [i + 1 in trained for i in range(len(tokens))]
        genes = data.genes.copy()
        return cls(
            config=config,
            vocab=data.vocab,
            scalers=data.scalers,
            genes=genes,
            compounds=compounds,
            net=net,
            info=info,
        )

    # -- use ---------------------------------------------------------------------------

    def _aligned(self, data: TrainingData) -> TrainingData:
        """``data`` encoded with this model's vocabularies and standardizers."""
        same = all(
            name in data.vocab and data.vocab[name].tokens == self.vocab[name].tokens
            for name in VOCABS
        ) and all(data.scalers.get(k) == v for k, v in self.scalers.items())
        if not same:
            data = data.with_vocab(self.vocab, self.scalers)
        ids = list(data.genes.index)
        if ids != list(self.genes.index):
            raise ValueError(
                f"the data's readout genes ({len(ids)}) are not the model's "
                f"({len(self.genes)}) in the same order; first model genes: "
                f"{list(self.genes.index[:5])}"
            )
        return data

    def predict(
        self, data: TrainingData, rows: np.ndarray, *, batch_size: int = 1024
    ) -> np.ndarray:
        """Predicted values, float32 (len(rows), n_genes), columns in :attr:`genes` order."""
        rows = np.asarray(rows, dtype=np.int64)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, found {batch_size}")
        out = np.empty((len(rows), len(self.genes)), dtype=np.float32)
        if len(rows) == 0:
            return out
        data = self._aligned(data)
        batch_size = batch_size_for(self.config, len(self.genes), batch_size)
        device = resolve_device(self.config.device)
        self.net.to(device).eval()
        seen: list[np.ndarray] = []
        parts: list[np.ndarray] = []
        with torch.no_grad():
            for batch in data.batches(rows, batch_size=batch_size, shuffle=False, seed=0):
                parts.append(self.net.predict_batch(batch, device).cpu().numpy())
                seen.append(np.asarray(batch.rows, dtype=np.int64))
        order = np.concatenate(seen)
        pred = np.concatenate(parts).astype(np.float32, copy=False)
        if np.array_equal(order, rows):
            return pred
        if len(order) != len(rows) or len(np.unique(rows)) != len(rows):
            raise RuntimeError(
                f"the data's batches returned {len(order)} rows for {len(rows)} asked for"
            )
        position = {int(r): i for i, r in enumerate(order)}
        out[:] = pred[[position[int(r)] for r in rows]]
        return out

    def compound_embeddings(self) -> pd.DataFrame:
        """One vector per compound of the vocabulary: index compound key; columns
        ``inchikey``, ``pubchem_cid``, ``name``, ``in_training`` and ``e0 … e{k-1}``.

        With a learned embedding, compounds without training rows have the zero vector
        (``in_training`` False): the model knows nothing about them.
        """
        n = len(self.vocab["compound"])
        self.net.eval()
        device = next(iter(self.net.compound.buffers()), None)
        dev = device.device if device is not None else self._param_device()
        with torch.no_grad():
            codes = torch.arange(1, n, dtype=torch.long, device=dev)
            vectors = self.net.compound(codes).cpu().numpy().astype(np.float32)
        table = self.compounds.copy()
        for j in range(vectors.shape[1]):
            table[f"e{j}"] = vectors[:, j]
        return table

    def _param_device(self) -> torch.device:
        p = next(iter(self.net.parameters()), None)
        return p.device if p is not None else torch.device("cpu")

    # -- files -------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The model as plain values and tensors (what :meth:`save` writes)."""
        comp = self.compounds
        return {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "config": self.config.to_dict(),
            "vocab": {k: v.to_dict() for k, v in self.vocab.items()},
            "scalers": {k: v.to_dict() for k, v in self.scalers.items()},
            "genes": {
                "gene_id": [str(g) for g in self.genes.index],
                "symbol": [
                    None if pd.isna(s) else str(s)
                    for s in self.genes.get("symbol", pd.Series([None] * len(self.genes)))
                ],
            },
            "compounds": {
                "compound": [str(c) for c in comp.index],
                "inchikey": [None if pd.isna(x) else str(x) for x in comp["inchikey"]],
                "pubchem_cid": [None if pd.isna(x) else int(x) for x in comp["pubchem_cid"]],
                "name": [None if pd.isna(x) else str(x) for x in comp["name"]],
                "in_training": [bool(x) for x in comp["in_training"]],
            },
            "info": _plain(self.info),
            "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            "provenance": provenance(step="train", params=self.config.to_dict()),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model to one file (atomically); returns its path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(p) as tmp:
            torch.save(self.state(), tmp)
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str | None = None) -> TrainedModel:
        """Read a model file (or a training folder: its ``best.pt``).

        ``device`` overrides the saved configuration's device (e.g. ``"cpu"`` to use a
        model trained on a GPU on a machine without one).
        """
        p = Path(path)
        if p.is_dir():
            p = p / "best.pt"
        if not p.is_file():
            raise FileNotFoundError(
                f"model {p}: no such file (give a model file or a training folder with best.pt)"
            )
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as err:  # any unpickling failure is the same problem
            raise ValueError(f"model {p}: not a perturbridge model file ({err})") from err
        if not isinstance(state, dict) or state.get("format") != MODEL_FORMAT:
            raise ValueError(f"model {p}: not a perturbridge model file (no {MODEL_FORMAT!r})")
        if state.get("version") != MODEL_VERSION:
            raise ValueError(
                f"model {p}: format version {state.get('version')}, this perturbridge reads "
                f"version {MODEL_VERSION}"
            )
        return cls.from_state(state, device=device)

    @classmethod
    def from_state(cls, state: Mapping[str, Any], *, device: str | None = None) -> TrainedModel:
        """The inverse of :meth:`state`."""
        cfg = dict(state["config"])
        if device is not None:
            cfg["device"] = device
        config = ModelConfig.from_dict(cfg)
        vocab = {k: Vocabulary.from_dict(v) for k, v in state["vocab"].items()}
        scalers = {k: Standardizer.from_dict(v) for k, v in state["scalers"].items()}
        genes = pd.DataFrame(
            {"symbol": state["genes"]["symbol"]},
            index=pd.Index(state["genes"]["gene_id"], name="gene_id"),
        )
        c = state["compounds"]
        compounds = pd.DataFrame(
            {
                "inchikey": c["inchikey"],
                "pubchem_cid": pd.array(c["pubchem_cid"], dtype="Int64"),
                "name": c["name"],
                "in_training": c["in_training"],
            },
            index=pd.Index(c["compound"], name="compound"),
        )
        sd = state["state_dict"]
        sizes = _sizes(vocab, n_genes=len(genes))
        net = LPMNet(config, sizes=sizes, encoder=_empty_encoder(config, sd))
        net.load_state_dict(sd)
        return cls(
            config=config,
            vocab=vocab,
            scalers=scalers,
            genes=genes,
            compounds=compounds,
            net=net,
            info=state.get("info", {}),
        )

    def copy(self) -> TrainedModel:
        """An independent copy (weights included)."""
        return TrainedModel(
            config=self.config,
            vocab=self.vocab,
            scalers=self.scalers,
            genes=self.genes.copy(),
            compounds=self.compounds.copy(),
            net=copy.deepcopy(self.net),
            info=copy.deepcopy(self.info),
        )


def _dim(encoder: nn.Module) -> int:
    """The output size of a compound encoder (its ``dim``)."""
    dim = getattr(encoder, "dim", None)
    if not isinstance(dim, int):
        raise TypeError(
            f"a compound encoder needs an integer dim, {type(encoder).__name__} has none"
        )
    return dim


def _sizes(vocab: Mapping[str, Vocabulary], *, n_genes: int) -> dict[str, int]:
    """Embedding table sizes: dataset, context, compound (``<unk>`` included) and genes."""
    return {
        "dataset": len(vocab["dataset"]),
        "context": len(vocab["context"]),
        "compound": len(vocab["compound"]),
        "gene": n_genes,
    }


def _empty_encoder(config: ModelConfig, sd: Mapping[str, torch.Tensor]) -> nn.Module:
    """An encoder of the right shapes for the saved weights ``sd`` (filled by loading)."""
    if config.compound_encoder == "morgan":
        fp = sd["compound.fingerprints"]
        return MorganEncoder(
            np.zeros(tuple(fp.shape), dtype=np.uint8),
            dim=config.dim_compound,
            trainable=config.morgan_trainable,
        )
    weight = sd["compound.embedding.weight"]
    if config.compound_encoder == "pretrained":
        return TableEncoder(np.zeros(tuple(weight.shape), dtype=np.float32))
    return EmbeddingEncoder(int(weight.shape[0]), int(weight.shape[1]))


def _plain(value: Any) -> Any:
    """``value`` as plain Python values (what ``torch.load(weights_only=True)`` reads)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)

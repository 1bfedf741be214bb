"""Training an LPM model: masked loss, early stopping, checkpoints and resume.

:func:`train` fits a :class:`~perturbridge.models.model.LPMNet` on the training part of a
split and stops early on the validation part. With ``out`` it keeps, in that folder:

* ``best.pt``: the model of the epoch with the lowest validation loss (a model file,
  :meth:`TrainedModel.load`);
* ``last.pt``: the state after the last finished epoch (weights, optimizer, early-stopping
  counters, history), which ``resume=True`` continues from;
* ``history.csv``: ``epoch, train_loss, val_loss, seconds`` (one row per epoch);
* ``config.toml`` (the configuration used, family overrides applied) and, at the end,
  ``train.json`` (what was trained on, the best epoch, why training stopped).

Each file is written atomically after every epoch, so a killed run leaves the last
finished epoch behind. Training is deterministic for a seed: the weights are
initialised from ``seed``, the batch order and dropout of epoch ``e`` are seeded from
``(seed, e)`` alone (so a resumed run equals an uninterrupted one), torch's
deterministic algorithms are on for CUDA, and the global random state is restored
afterwards. Results are bit-identical on the same machine with the same number of torch
threads (a different thread count can change float rounding).
The loss is the mean squared error over the measured values only.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..io import atomic_file, provenance
from .model import (
    LPMNet,
    TrainedModel,
    batch_size_for,
    build_net,
    masked_mse,
    resolve_device,
)
from .options import FAMILIES, ModelConfig, target_of

if TYPE_CHECKING:
    from .data import TrainingData
    from .splits import Split

__all__ = ["train"]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT: Final = "perturbridge.lpm.checkpoint"
HISTORY_COLUMNS: Final = ("epoch", "train_loss", "val_loss", "seconds")
#: Settings a resumed run may change (everything else must equal the checkpoint's).
RESUMABLE_CHANGES: Final = ("max_epochs", "patience", "device")


@dataclass
class _Progress:
    """Where training stands (saved in ``last.pt``)."""

    epoch: int = 0
    best_val: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)


def train(
    data: TrainingData,
    split: Split,
    *,
    config: ModelConfig,
    out: str | os.PathLike[str] | None = None,
    structures: pd.DataFrame | None = None,
    resume: bool = False,
    progress: bool = True,
    family: str | None = None,
) -> TrainedModel:
    """Train a model on ``split``'s training rows, stopping early on its validation rows.

    Parameters
    ----------
    data
        The training data (:func:`~perturbridge.models.data.load_training_data`).
    split
        Which rows are ``"train"`` and ``"val"`` (test rows are never read).
    config
        The model and its training settings.
    out
        Folder for checkpoints and history (see the module docstring); ``None`` keeps
        everything in memory.
    structures
        Compound structures (``read_structures``), needed by the Morgan encoder.
    resume
        Continue from ``out/last.pt`` (when it exists; else start). Without it an
        ``out`` that already holds a training run is an error.
    progress
        Show a progress bar with the running loss.
    family
        A name of :data:`~perturbridge.models.options.FAMILIES`: its settings override
        ``config``, and a target-only family trains and validates on the split's target
        dataset only (the ``target_dataset`` of its manifest).

    Returns
    -------
    The model of the best validation epoch.
    """
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig, found {type(config).__name__}")
    train_rows = np.asarray(split.rows(data, "train"), dtype=np.int64)
    val_rows = np.asarray(split.rows(data, "val"), dtype=np.int64)
    if family is not None:
        if family not in FAMILIES:
            raise KeyError(f"unknown model family {family!r}; known: {list(FAMILIES)}")
        fam = FAMILIES[family]
        config = fam.configure(config)
        target = target_of(split)
        train_rows = fam.restrict(data, train_rows, target_dataset=target)
        val_rows = fam.restrict(data, val_rows, target_dataset=target)
    for part, rows in (("train", train_rows), ("val", val_rows)):
        if len(rows) == 0:
            raise ValueError(
                f"the split has no {part!r} rows"
                + (f" in the target dataset (family {family!r})" if family else "")
                + "; early stopping needs both a training and a validation part"
            )
    out_dir = Path(out) if out is not None else None
    if resume and out_dir is None:
        raise ValueError("resume=True needs out= (the folder of the run to continue)")
    if out_dir is not None and not resume:
        taken = [n for n in ("last.pt", "best.pt", "history.csv") if (out_dir / n).exists()]
        if taken:
            raise FileExistsError(
                f"{out_dir} already holds a training run ({', '.join(taken)}); continue it "
                "with resume=True (--resume) or choose another folder"
            )
    device = resolve_device(config.device)
    run = _Run(
        data=data,
        config=config,
        out=out_dir,
        device=device,
        train_rows=train_rows,
        val_rows=val_rows,
        family=family,
    )
    with _deterministic(device):
        torch.manual_seed(config.seed)
        net, info = build_net(config, data, train_rows=train_rows, structures=structures)
        info["family"] = family
        run.start(net, info, resume=resume)
        run.fit(progress=progress)
        return run.finish()


class _Run:
    """One training run: the network, its optimizer, the progress and the files."""

    def __init__(
        self,
        *,
        data: TrainingData,
        config: ModelConfig,
        out: Path | None,
        device: torch.device,
        train_rows: np.ndarray,
        val_rows: np.ndarray,
        family: str | None,
    ) -> None:
        self.data = data
        self.config = config
        self.out = out
        self.device = device
        self.train_rows = train_rows
        self.val_rows = val_rows
        self.family = family
        self.rows_digest = {"train": _digest(train_rows), "val": _digest(val_rows)}
        self.state = _Progress()
        self.best_weights: dict[str, torch.Tensor] | None = None

    def start(self, net: LPMNet, info: dict[str, Any], *, resume: bool) -> None:
        self.net = net.to(self.device)
        self.info = info
        params = [p for p in self.net.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            params, lr=self.config.lr, weight_decay=self.config.weight_decay
        )
        last = self.out / "last.pt" if self.out is not None else None
        if resume and last is not None and last.is_file():
            self._load_checkpoint(last)
        elif resume:
            logger.info("no checkpoint in %s: training starts from the beginning", self.out)
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            with atomic_file(self.out / "config.toml") as tmp:
                tmp.write_text(self.config.to_toml(), encoding="utf-8")

    # -- the loop ----------------------------------------------------------------------

    def fit(self, *, progress: bool) -> None:
        cfg = self.config
        st = self.state
        n_batches = math.ceil(len(self.train_rows) / cfg.batch_size)
        with _bar(progress) as bar:
            while not st.stopped_early and st.epoch < cfg.max_epochs:
                epoch = st.epoch + 1
                t0 = time.perf_counter()
                torch.manual_seed(_epoch_seed(cfg.seed, epoch))  # dropout of this epoch
                task = None
                if bar is not None:
                    name = f"epoch {epoch}/{cfg.max_epochs}"
                    task = bar.add_task(name, total=n_batches, loss="")
                train_loss = self._train_epoch(epoch, bar, task)
                val_loss = self._loss(self.val_rows)
                if bar is not None and task is not None:
                    bar.remove_task(task)
                improved = val_loss < st.best_val
                if improved:
                    st.best_val, st.best_epoch, st.bad_epochs = val_loss, epoch, 0
                    self._keep_best()
                else:
                    st.bad_epochs += 1
                st.epoch = epoch
                st.history.append(
                    {
                        "epoch": epoch,
                        "train_loss": train_loss,
                        "val_loss": val_loss,
                        "seconds": time.perf_counter() - t0,
                    }
                )
                st.stopped_early = (
                    cfg.patience > 0 and st.bad_epochs >= cfg.patience and epoch < cfg.max_epochs
                )
                line = (
                    f"epoch {epoch}: train loss {train_loss:.5f}, validation loss "
                    f"{val_loss:.5f}{' (best)' if improved else ''}"
                )
                logger.info(line)
                if bar is not None:  # a line per epoch stays above the transient bar
                    bar.console.print(line, highlight=False)
                self._save_progress()

    def _train_epoch(self, epoch: int, bar: Progress | None, task: Any) -> float:
        self.net.train()
        sse_total, n_total = 0.0, 0
        batches = self.data.batches(
            self.train_rows,
            batch_size=self.config.batch_size,
            shuffle=True,
            seed=_epoch_seed(self.config.seed, epoch),
        )
        for batch in batches:
            target = torch.as_tensor(batch.values, dtype=torch.float32, device=self.device)
            pred = self.net.predict_batch(batch, self.device)
            sse, n = masked_mse(pred, target)
            if n > 0:
                self.optimizer.zero_grad(set_to_none=True)
                (sse / n).backward()
                self.optimizer.step()
                sse_total += float(sse.detach())
                n_total += n
            if bar is not None:
                running = sse_total / n_total if n_total else float("nan")
                bar.update(task, advance=1, loss=f"loss {running:.4f}")
        if n_total == 0:
            raise ValueError("the training rows have no measured values (all NaN)")
        return sse_total / n_total

    def _loss(self, rows: np.ndarray) -> float:
        """Mean squared error over the measured values of ``rows`` (evaluation mode)."""
        self.net.eval()
        sse_total, n_total = 0.0, 0
        with torch.no_grad():
            batch_size = batch_size_for(
                self.config, self.data.n_genes, max(self.config.batch_size, 1024)
            )
            for batch in self.data.batches(rows, batch_size=batch_size, shuffle=False, seed=0):
                target = torch.as_tensor(batch.values, dtype=torch.float32, device=self.device)
                sse, n = masked_mse(self.net.predict_batch(batch, self.device), target)
                sse_total += float(sse)
                n_total += n
        if n_total == 0:
            raise ValueError("the validation rows have no measured values (all NaN)")
        return sse_total / n_total

    # -- best model, checkpoints -------------------------------------------------------

    def _model(self) -> TrainedModel:
        info = dict(self.info)
        info.update(
            epoch=self.state.epoch,
            best_epoch=self.state.best_epoch,
            best_val_loss=self.state.best_val,
        )
        return TrainedModel.from_training(
            config=self.config, data=self.data, net=self.net, info=info
        )

    def _keep_best(self) -> None:
        if self.out is not None:
            self._model().save(self.out / "best.pt")
        self.best_weights = {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    def _save_progress(self) -> None:
        if self.out is None:
            return
        st = self.state
        checkpoint = {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "family": self.family,
            "rows": self.rows_digest,
            "vocab": {k: list(v.tokens) for k, v in self.data.vocab.items()},
            "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "progress": {
                "epoch": st.epoch,
                "best_val": st.best_val,
                "best_epoch": st.best_epoch,
                "bad_epochs": st.bad_epochs,
                "stopped_early": st.stopped_early,
                "history": st.history,
            },
        }
        with atomic_file(self.out / "last.pt") as tmp:
            torch.save(checkpoint, tmp)
        with atomic_file(self.out / "history.csv") as tmp:
            _write_history(tmp, st.history)

    def _load_checkpoint(self, path: Path) -> None:
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # any unpickling failure is the same problem
            raise ValueError(f"checkpoint {path}: not readable ({err})") from err
        if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint {path}: not a perturbridge training checkpoint")
        problems = _resume_problems(ck, self)
        if problems:
            raise ValueError(
                f"cannot resume from {path}: the run differs from the checkpoint's: "
                + "; ".join(problems)
                + " (start a new run in another folder, or resume with the same settings)"
            )
        self.net.load_state_dict(ck["state_dict"])
        self.optimizer.load_state_dict(ck["optimizer"])
        p = ck["progress"]
        self.state = _Progress(
            epoch=int(p["epoch"]),
            best_val=float(p["best_val"]),
            best_epoch=int(p["best_epoch"]),
            bad_epochs=int(p["bad_epochs"]),
            stopped_early=bool(p["stopped_early"]),
            history=[dict(h) for h in p["history"]],
        )
        best = self.out / "best.pt" if self.out is not None else None
        if best is not None and best.is_file():
            weights = TrainedModel.load(best, device="cpu").net.state_dict()
            self.best_weights = {k: v.to(self.device) for k, v in weights.items()}
        logger.info("resuming %s after epoch %d", self.out, self.state.epoch)

    def finish(self) -> TrainedModel:
        if self.best_weights is not None:
            self.net.load_state_dict(self.best_weights)
        st = self.state
        self.info["history"] = st.history
        self.info["stopped_early"] = st.stopped_early
        model = self._model()
        model.info["epoch"] = st.best_epoch
        if self.out is not None:
            summary = {
                "family": self.family,
                "config": self.config.to_dict(),
                "rows": {"train": len(self.train_rows), "val": len(self.val_rows)},
                "epochs": st.epoch,
                "best_epoch": st.best_epoch,
                "best_val_loss": st.best_val,
                "stopped_early": st.stopped_early,
                "encoder": {
                    k: v for k, v in self.info.items() if k not in ("history", "in_training")
                },
                "device": str(self.device),
                "provenance": provenance(step="train", params=self.config.to_dict()),
            }
            with atomic_file(self.out / "train.json") as tmp:
                tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
        return model


def _resume_problems(ck: Mapping[str, Any], run: _Run) -> list[str]:
    problems = []
    saved = {k: v for k, v in ck["config"].items() if k not in RESUMABLE_CHANGES}
    now = {k: v for k, v in run.config.to_dict().items() if k not in RESUMABLE_CHANGES}
    diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if diff:
        problems.append(
            "settings " + ", ".join(f"{k} ({saved.get(k)!r} → {now.get(k)!r})" for k in diff)
        )
    if ck.get("family") != run.family:
        problems.append(f"family ({ck.get('family')!r} → {run.family!r})")
    for part in ("train", "val"):
        if ck["rows"].get(part) != run.rows_digest[part]:
            problems.append(f"the {part} rows")
    vocab = {k: list(v.tokens) for k, v in run.data.vocab.items()}
    if ck.get("vocab") != vocab:
        problems.append("the vocabularies (another store or data selection?)")
    return problems


def _write_history(path: Path, history: list[dict[str, float]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(HISTORY_COLUMNS)
        for h in history:
            w.writerow([int(h["epoch"]), *(repr(float(h[c])) for c in HISTORY_COLUMNS[1:])])


def _digest(rows: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(rows, dtype=np.int64).tobytes()).hexdigest()[:16]


def _epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch``'s batch order and dropout (independent of history)."""
    return (seed * 1_000_003 + epoch) % (2**63 - 1)


@contextlib.contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    """The global random state forked (restored afterwards) and, on CUDA, torch's
    deterministic algorithms on (restored too). The CPU kernels these networks use
    (linear, embedding, ReLU, dropout, AdamW) are deterministic for a given number of
    threads; switching the flag on there costs seconds of imports and changes nothing."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        if device.type != "cuda":
            yield
            return
        # cuBLAS needs a fixed workspace for reproducible results
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        was = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was)


@contextlib.contextmanager
def _bar(enabled: bool) -> Iterator[Progress | None]:
    """A rich progress bar (batches of the epoch, running loss), or ``None``."""
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        yield bar

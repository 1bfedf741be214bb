"""Training rows for the perturbation-response models, read from a store or from shards.

:func:`load_training_data` reads the condition table of a compendium store (through the
public :class:`~perturbridge.compendium.Compendium` API) or of a folder of LPM-style
Parquet shards (``perturbridge export --to shards``), and returns a
:class:`TrainingData`: one row per condition (per replicate contrast in ``separate``
mode) with its dataset, cell context, compound, dose and time, the readout genes, the
vocabularies that encode them and the standardizers of log10 dose and time. Values are
not held in memory: :meth:`TrainingData.batches` reads ``block_conditions`` rows at a
time from the source and cuts them into batches, so memory is bounded by one block.

Compound key
------------
The compound of a row is its parent InChIKey; else its InChIKey; else ``CID:<cid>``
(PubChem CID); else ``<dataset>:<upstream id or name>`` (an opaque id, never matched
across datasets). Shards carry the exporter's ``perturbation`` column, used as is.

Rows left out
-------------
Vehicle conditions (dose 0, or a vehicle name such as DMSO) are left out unless
``include_controls``; treated rows without a positive dose or a time are left out. Both
are listed in :attr:`TrainingData.dropped` with their reason, and logged.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..compendium import Compendium
from ..io import atomic_file
from ..progress import track
from ._sources import ArraySource, StoreSource, ValueSource, read_shards
from .structures import match_structures, read_structures
from .vocab import UNKNOWN, Standardizer, Vocabulary

__all__ = [
    "REQUIRED_COLUMNS",
    "UNKNOWN",
    "VOCAB_NAMES",
    "Batch",
    "DataOptions",
    "Standardizer",
    "TrainingData",
    "ValueSource",
    "Vocabulary",
    "load_training_data",
    "read_structures",
]

logger = logging.getLogger(__name__)

#: The vocabularies of a :class:`TrainingData`.
VOCAB_NAMES: tuple[str, ...] = ("dataset", "context", "compound", "gene")
#: Columns a :class:`TrainingData` conditions table must have.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "condition_id", "dataset", "context", "compound", "log10_dose_uM", "time_h",
)  # fmt: skip
#: The standardizers of a :class:`TrainingData`.
SCALER_NAMES: tuple[str, ...] = ("log10_dose", "time")
#: Perturbagen names of vehicle conditions (lower case).
VEHICLE_NAMES = frozenset({"dmso", "vehicle", "control", "ctrl", "pbs", "water", "h2o",
                           "untreated", "none", "mock", "ctl_vehicle"})  # fmt: skip
_VOCAB_FORMAT = "perturbridge-vocabulary/1"


@dataclass(frozen=True)
class Batch:
    """One batch of training rows: codes, standardized dose and time, and values."""

    rows: np.ndarray
    dataset: np.ndarray
    context: np.ndarray
    compound: np.ndarray
    log10_dose: np.ndarray
    time: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class DataOptions:
    """What :func:`load_training_data` reads.

    Parameters
    ----------
    layer
        The Effects layer of the values (store source; shards hold the layer they were
        exported with, checked against this).
    mode
        ``group``: one row per condition; ``separate``: one row per replicate contrast.
    datasets
        Only these datasets (default: all).
    genes
        Only these readout genes (gene ids or symbols; default: all of the source).
    block_conditions
        Rows read from the source at a time (bounds memory).
    include_controls
        Keep vehicle conditions (their log10 dose is NaN and standardized to 0).
    in_memory
        Read every value once at load and keep them (fast epochs for small data).
    """

    layer: str = "logFC"
    mode: Literal["group", "separate"] = "group"
    datasets: tuple[str, ...] | None = None
    genes: tuple[str, ...] | None = None
    block_conditions: int = 1024
    include_controls: bool = False
    in_memory: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("group", "separate"):
            raise ValueError(f"mode must be 'group' or 'separate', found {self.mode!r}")
        if int(self.block_conditions) < 1:
            raise ValueError(f"block_conditions must be >= 1, found {self.block_conditions}")
        for name in ("datasets", "genes"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise TypeError(f"{name} is a tuple of names, found the string {value!r}")
            if value is not None:
                object.__setattr__(self, name, tuple(str(v) for v in value))


# ---------------------------------------------------------------- the data


class TrainingData:
    """Conditions, readout genes, vocabularies and standardizers over one value source.

    Made by :func:`load_training_data`, or directly from a conditions table (at least
    :data:`REQUIRED_COLUMNS`), a genes frame (index gene id, in value-column order) and a
    :class:`ValueSource`; vocabularies and standardizers are built from the rows unless
    given (a saved model's).

    Attributes
    ----------
    conditions
        One row per training row (RangeIndex): ``condition_id``, ``contrast_id``,
        ``dataset``, ``assay``, ``context``, ``compound``, ``compound_inchikey``,
        ``pubchem_cid``, ``perturbagen``, ``dose_uM``, ``log10_dose_uM``, ``time_h``,
        ``is_control``.
    genes
        The readout genes (index ``gene_id``, column ``symbol``), in value-column order.
    vocab
        :class:`Vocabulary` by name (``dataset``, ``context``, ``compound``, ``gene``).
    scalers
        :class:`Standardizer` of ``log10_dose`` and ``time``.
    dropped
        Rows of the source left out, with ``condition_id``, ``dataset`` and ``reason``.
    source
        What the values are read from (kind, path, build key, layer, mode).
    """

    def __init__(
        self,
        conditions: pd.DataFrame,
        genes: pd.DataFrame,
        *,
        source: ValueSource,
        vocab: Mapping[str, Vocabulary] | None = None,
        scalers: Mapping[str, Standardizer] | None = None,
        dropped: pd.DataFrame | None = None,
        block_conditions: int = 1024,
        columns: np.ndarray | None = None,
    ) -> None:
        missing = [c for c in REQUIRED_COLUMNS if c not in conditions.columns]
        if missing:
            raise ValueError(
                f"the conditions table lacks columns {missing}; found {list(conditions.columns)}"
            )
        if len(conditions) == 0:
            raise ValueError("the conditions table has no rows")
        if len(genes) == 0:
            raise ValueError("there are no readout genes")
        self.conditions = conditions.reset_index(drop=True)
        self.genes = genes
        self._source = source
        self.dropped = (
            dropped if dropped is not None else pd.DataFrame(columns=["condition_id", "dataset",
                                                                       "reason"])
        )  # fmt: skip
        self.block_conditions = int(block_conditions)
        #: source column of each value column (-1: a gene the source lacks, all NaN)
        self._columns = (
            np.arange(len(genes), dtype=np.int64) if columns is None else np.asarray(columns)
        )
        c = self.conditions
        self.vocab: dict[str, Vocabulary] = dict(vocab) if vocab else {
            "dataset": Vocabulary.build("dataset", c["dataset"]),
            "context": Vocabulary.build("context", c["context"]),
            "compound": Vocabulary.build("compound", c["compound"]),
            "gene": Vocabulary.build("gene", genes.index.astype(str), sort=False),
        }  # fmt: skip
        missing = [n for n in VOCAB_NAMES if n not in self.vocab]
        if missing:
            raise ValueError(f"vocabularies {missing} are missing; found {sorted(self.vocab)}")
        if list(self.vocab["gene"].tokens[1:]) != [str(g) for g in genes.index]:
            raise ValueError("the gene vocabulary must list the readout genes in column order")
        if scalers:
            self.scalers = dict(scalers)
        else:
            dose = c["log10_dose_uM"].to_numpy(dtype=float)
            self.scalers = {
                "log10_dose": Standardizer.fit(dose) if np.isfinite(dose).any()
                else Standardizer(0.0, 1.0),
                "time": Standardizer.fit(c["time_h"].to_numpy(dtype=float)),
            }  # fmt: skip
        missing = [n for n in SCALER_NAMES if n not in self.scalers]
        if missing:
            raise ValueError(f"standardizers {missing} are missing; found {sorted(self.scalers)}")
        self._codes = {n: self.vocab[n].encode(c[n].to_numpy()) for n in VOCAB_NAMES[:3]}
        dose_z = self.scalers["log10_dose"].apply(c["log10_dose_uM"].to_numpy(dtype=float))
        self._dose = np.nan_to_num(dose_z, nan=0.0)  # controls: the mean dose
        self._time = self.scalers["time"].apply(c["time_h"].to_numpy(dtype=float))

    # ------------------------------------------------------------ basics

    def __len__(self) -> int:
        return len(self.conditions)

    def __repr__(self) -> str:
        c = self.conditions
        return (
            f"TrainingData({len(c):,} rows, {c['dataset'].nunique()} datasets, "
            f"{c['context'].nunique()} contexts, {c['compound'].nunique()} compounds, "
            f"{len(self.genes):,} genes; source {self.source.get('kind')})"
        )

    @property
    def source(self) -> dict[str, Any]:
        """What the values are read from (kind, path, build key, layer, mode)."""
        return dict(self._source.description)

    @property
    def n_genes(self) -> int:
        return len(self.genes)

    def codes(self, name: str) -> np.ndarray:
        """int64 codes of every row for ``dataset``, ``context`` or ``compound``."""
        if name not in self._codes:
            raise KeyError(f"no codes {name!r}; codes: {sorted(self._codes)}")
        return self._codes[name].copy()

    def close(self) -> None:
        """Close the source (a store opened by :func:`load_training_data`)."""
        self._source.close()

    def __enter__(self) -> TrainingData:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_rows(self, rows: np.ndarray) -> np.ndarray:
        arr = np.asarray(rows)
        if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(f"rows must be a 1-d array of integers, found {arr.dtype} {arr.shape}")
        arr = arr.astype(np.int64, copy=False)
        bad = arr[(arr < 0) | (arr >= len(self))]
        if bad.size:
            raise IndexError(
                f"rows out of range 0..{len(self) - 1}: first {bad[:5].tolist()} "
                "(row numbers index TrainingData.conditions)"
            )
        return arr

    # ------------------------------------------------------------ values

    def values(self, rows: np.ndarray) -> np.ndarray:
        """float32 values of ``rows`` (``len(rows)`` × genes), NaN = not measured.

        Reads the rows in one go: use :meth:`batches` for many rows."""
        rows = self._check_rows(rows)
        uniq, inverse = np.unique(rows, return_inverse=True)
        block = self._source.read(uniq)
        if len(inverse) != len(uniq) or (np.diff(inverse) != 1).any():
            block = block[inverse]
        cols = self._columns
        if (cols >= 0).all():
            if len(cols) == block.shape[1] and (cols == np.arange(len(cols))).all():
                return np.ascontiguousarray(block, dtype=np.float32)
            return np.ascontiguousarray(block[:, cols], dtype=np.float32)
        out = np.full((len(rows), len(cols)), np.nan, dtype=np.float32)
        have = cols >= 0
        out[:, have] = block[:, cols[have]]
        return out

    def batches(
        self,
        rows: np.ndarray,
        *,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        prefetch: bool = True,
    ) -> Iterator[Batch]:
        """Batches of ``rows`` (the last may be smaller), reading ``block_conditions``
        rows from the source at a time.

        With ``shuffle`` the rows are permuted (by ``seed``) before they are cut into
        blocks, so every batch is a random sample of all rows; the same seed gives the
        same batches. With ``prefetch`` (a store source) the next block is read in a
        background thread while the batches of the current one are used, so memory is
        bounded by two blocks; a generator left early waits for that read to finish.
        """
        rows = self._check_rows(rows)
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, found {batch_size}")
        order = np.random.default_rng(seed).permutation(rows) if shuffle else rows
        block = max(int(batch_size), self.block_conditions // batch_size * batch_size)
        chunks = [order[b0 : b0 + block] for b0 in range(0, len(order), block)]
        if not prefetch or len(chunks) < 2 or isinstance(self._source, ArraySource):
            for chunk in chunks:
                yield from self._cut(chunk, self.values(chunk), batch_size)
            return
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pb-prefetch")
        try:
            pending = pool.submit(self.values, chunks[0])
            for i, chunk in enumerate(chunks):
                vals = pending.result()
                if i + 1 < len(chunks):
                    pending = pool.submit(self.values, chunks[i + 1])
                yield from self._cut(chunk, vals, batch_size)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _cut(self, chunk: np.ndarray, vals: np.ndarray, batch_size: int) -> Iterator[Batch]:
        for s in range(0, len(chunk), batch_size):
            r = chunk[s : s + batch_size]
            yield Batch(
                rows=r,
                dataset=self._codes["dataset"][r],
                context=self._codes["context"][r],
                compound=self._codes["compound"][r],
                log10_dose=self._dose[r],
                time=self._time[r],
                values=vals[s : s + batch_size],
            )

    # ------------------------------------------------------------ vocabularies

    def with_vocab(
        self, vocab: Mapping[str, Vocabulary], scalers: Mapping[str, Standardizer]
    ) -> TrainingData:
        """The same rows encoded with another vocabulary and standardizers (a saved
        model's): unknown datasets, contexts and compounds get code 0, and the value
        columns follow the ``gene`` vocabulary (genes this source lacks are NaN)."""
        missing = [n for n in VOCAB_NAMES if n not in vocab]
        missing += [n for n in SCALER_NAMES if n not in scalers]
        if missing:
            raise ValueError(f"with_vocab needs {missing}; found {sorted([*vocab, *scalers])}")
        wanted = list(vocab["gene"].tokens[1:])
        here = pd.Series(self._columns, index=self.genes.index.astype(str))
        columns = here.reindex(wanted).fillna(-1).to_numpy(dtype=np.int64)
        if not (columns >= 0).any():
            raise ValueError(
                f"none of the {len(wanted)} genes of the vocabulary is a readout gene of "
                f"this data (first wanted: {wanted[:3]}, first here: {here.index[:3].tolist()})"
            )
        symbols = self.genes["symbol"].reindex(wanted) if "symbol" in self.genes else None
        genes = pd.DataFrame(
            {"symbol": symbols.to_numpy() if symbols is not None else pd.NA},
            index=pd.Index(wanted, name="gene_id"),
        )
        return TrainingData(
            self.conditions, genes, source=self._source, vocab=vocab, scalers=scalers,
            dropped=self.dropped, block_conditions=self.block_conditions, columns=columns,
        )  # fmt: skip

    def save_vocab(self, path: str | os.PathLike[str]) -> Path:
        """Write the vocabularies and standardizers to a JSON file (atomically)."""
        record = {
            "format": _VOCAB_FORMAT,
            "vocab": {n: v.to_dict() for n, v in self.vocab.items()},
            "scalers": {n: s.to_dict() for n, s in self.scalers.items()},
        }
        path = Path(path)
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
        return path

    @staticmethod
    def load_vocab(
        path: str | os.PathLike[str],
    ) -> tuple[dict[str, Vocabulary], dict[str, Standardizer]]:
        """Vocabularies and standardizers written by :meth:`save_vocab`."""
        path = Path(path)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"no vocabulary file {path}") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not a vocabulary file (bad JSON: {err})") from err
        if not isinstance(record, dict) or record.get("format") != _VOCAB_FORMAT:
            raise ValueError(f"{path} is not a vocabulary file (format {_VOCAB_FORMAT!r})")
        vocab = {n: Vocabulary.from_dict(d) for n, d in record.get("vocab", {}).items()}
        scalers = {n: Standardizer.from_dict(d) for n, d in record.get("scalers", {}).items()}
        missing = [n for n in VOCAB_NAMES if n not in vocab]
        missing += [n for n in SCALER_NAMES if n not in scalers]
        if missing:
            raise ValueError(f"{path}: the vocabulary file lacks {missing}")
        return vocab, scalers

    def rows_of(self, condition_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Row numbers whose ``condition_id`` is in ``condition_ids`` (every replicate
        contrast of a condition in ``separate`` mode), in row order."""
        wanted = pd.Index(np.asarray(condition_ids, dtype=object).astype(str))
        return np.flatnonzero(self.conditions["condition_id"].isin(wanted).to_numpy())

    def smiles(self, structures: pd.DataFrame) -> pd.Series:
        """The SMILES of each compound of the vocabulary (index: compound key; NaN when
        unknown), from a :func:`read_structures` table matched by compound key, then
        InChIKey, then PubChem CID, then name (case-insensitive)."""
        return match_structures(self.conditions, structures, self.vocab["compound"])


# ---------------------------------------------------------------- compound keys


def compound_keys(frame: pd.DataFrame) -> np.ndarray:
    """The compound key of each row of a catalog frame (see the module docstring)."""

    def text(col: str) -> pd.Series:
        if col not in frame.columns:
            return pd.Series(pd.NA, index=frame.index, dtype=object)
        s = frame[col].astype(object)
        return s.where(s.notna() & (s.astype(str).str.strip() != ""), np.nan)

    key = text("compound_parent_inchikey")
    key = key.where(key.notna(), text("compound_inchikey"))
    if "pubchem_cid" in frame.columns:
        cid = pd.to_numeric(frame["pubchem_cid"], errors="coerce")
        cid_key = pd.Series(
            ["CID:" + str(int(v)) if pd.notna(v) else pd.NA for v in cid], index=frame.index,
            dtype=object,
        )  # fmt: skip
        key = key.where(key.notna(), cid_key)
    local = text("compound_id_source")
    local = local.where(local.notna(), text("perturbagen"))
    fallback = frame["dataset"].astype(str) + ":" + local.astype(str)
    return key.where(key.notna(), fallback).astype(str).to_numpy()


def _is_vehicle(frame: pd.DataFrame) -> np.ndarray:
    dose = pd.to_numeric(frame["dose_uM"], errors="coerce").to_numpy(dtype=float)
    name = frame["perturbagen"].astype(str).str.strip().str.lower()
    return (dose == 0) | name.isin(VEHICLE_NAMES).to_numpy()


def _finish_conditions(
    cond: pd.DataFrame, *, include_controls: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Derived columns; rows left out (with their reason) apart."""
    dose = pd.to_numeric(cond["dose_uM"], errors="coerce").to_numpy(dtype=float)
    time = pd.to_numeric(cond["time_h"], errors="coerce").to_numpy(dtype=float)
    control = _is_vehicle(cond)
    reason = np.full(len(cond), "", dtype=object)
    if not include_controls:
        reason[control] = "vehicle_condition"
    reason[(reason == "") & ~control & ~(dose > 0)] = "no_positive_dose"
    reason[(reason == "") & ~np.isfinite(time)] = "no_time"
    with np.errstate(divide="ignore", invalid="ignore"):
        cond["log10_dose_uM"] = np.where(dose > 0, np.log10(dose), np.nan)
    cond["is_control"] = control
    keep = reason == ""
    dropped = pd.DataFrame(
        {"condition_id": cond["condition_id"].to_numpy()[~keep],
         "dataset": cond["dataset"].to_numpy()[~keep], "reason": reason[~keep]}
    )  # fmt: skip
    if len(dropped):
        logger.info(
            "training data: %d rows left out (%s)",
            len(dropped), dropped["reason"].value_counts().to_dict(),
        )  # fmt: skip
    return cond[keep].reset_index(drop=True), dropped


_CONDITION_COLUMNS = (
    "condition_id", "contrast_id", "dataset", "assay", "context", "compound",
    "compound_inchikey", "pubchem_cid", "perturbagen", "dose_uM", "log10_dose_uM", "time_h",
    "is_control",
)  # fmt: skip


# ---------------------------------------------------------------- loading


def load_training_data(
    source: str | os.PathLike[str] | Compendium,
    *,
    options: DataOptions | None = None,
    progress: bool = False,
) -> TrainingData:
    """Training rows of a compendium store or of a folder of training shards.

    Parameters
    ----------
    source
        A store path, an open :class:`~perturbridge.compendium.Compendium` (left open),
        or a folder written by ``perturbridge export --to shards``.
    options
        What is read (:class:`DataOptions`).
    progress
        Show a progress bar while values are read at load (shards, ``in_memory``).

    Examples
    --------
    >>> data = load_training_data("store", options=DataOptions(datasets=("a",)))  # doctest: +SKIP
    >>> rows = np.arange(len(data))  # doctest: +SKIP
    >>> for batch in data.batches(rows, batch_size=64, shuffle=True):  # doctest: +SKIP
    ...     ...
    """
    opts = options or DataOptions()
    if not isinstance(source, Compendium):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"no store or shards folder at {path}")
        if (path / "_manifest.json").is_file():
            return _load_shards(path, opts, progress=progress)
        if not (path / "manifest.json").is_file():
            raise FileNotFoundError(
                f"{path} is neither a compendium store (no manifest.json) nor a folder of "
                "training shards (no _manifest.json from `perturbridge export --to shards`)"
            )
    return _load_store(source, opts, progress=progress)


def _load_store(
    source: str | os.PathLike[str] | Compendium, opts: DataOptions, *, progress: bool
) -> TrainingData:
    own = not isinstance(source, Compendium)
    comp = Compendium.open(source) if not isinstance(source, Compendium) else source
    try:
        if opts.mode not in comp.modes:
            raise KeyError(f"{comp.path} has no {opts.mode}-mode effects; modes: {comp.modes}")
        if opts.layer not in comp.layers:
            logger.info("layer %s is not consolidated: values are read from Effects files",
                        opts.layer)  # fmt: skip
        contrasts = comp.contrasts(mode=opts.mode)
        names = sorted(contrasts["dataset"].astype(str).unique())
        if opts.datasets is not None:
            unknown = [d for d in opts.datasets if d not in names]
            if unknown:
                raise KeyError(
                    f"datasets {unknown} have no {opts.mode}-mode contrasts in {comp.path}; "
                    f"datasets: {names}"
                )
            contrasts = contrasts[contrasts["dataset"].isin(opts.datasets)]
        assays = comp.sql("SELECT dataset, assay FROM datasets")
        assay = dict(zip(assays["dataset"].astype(str), assays["assay"].fillna("").astype(str),
                         strict=True))  # fmt: skip
        cond = pd.DataFrame(
            {
                "condition_id": contrasts["condition_id"].astype(str).to_numpy(),
                "contrast_id": contrasts["contrast_id"].astype(str).to_numpy(),
                "dataset": contrasts["dataset"].astype(str).to_numpy(),
                "assay": contrasts["dataset"].astype(str).map(assay).fillna("").to_numpy(),
                "context": contrasts["cell_context"].astype(str).to_numpy(),
                "compound": compound_keys(contrasts),
                "compound_inchikey": contrasts["compound_inchikey"].to_numpy(dtype=object),
                "pubchem_cid": pd.to_numeric(contrasts["pubchem_cid"], errors="coerce")
                .astype("Int64")
                .to_numpy(),
                "perturbagen": contrasts["perturbagen"].astype(str).to_numpy(),
                "dose_uM": contrasts["pert_dose_uM"].to_numpy(dtype=float),
                "time_h": contrasts["pert_time_h"].to_numpy(dtype=float),
            }
        )
        cond, dropped = _finish_conditions(cond, include_controls=opts.include_controls)
        cond = cond[list(_CONDITION_COLUMNS)]
        if cond.empty:
            raise ValueError(
                f"no training rows in {comp.path} (datasets {opts.datasets or names}); rows "
                f"left out: {dropped['reason'].value_counts().to_dict()}"
            )
        table = comp.genes()
        genes, gene_ids = _select_genes(table, opts.genes, where=str(comp.path))
        store_source = StoreSource(
            comp, cond["contrast_id"].to_numpy(dtype=object), gene_ids,
            layer=opts.layer, mode=opts.mode, own=own,
        )  # fmt: skip
        src: ValueSource = store_source
        if opts.in_memory:
            src = ArraySource(
                _read_all(store_source, len(cond), opts.block_conditions, progress=progress),
                dict(store_source.description, in_memory=True),
            )
            store_source.close()
        return TrainingData(
            cond, genes, source=src, dropped=dropped, block_conditions=opts.block_conditions
        )
    except BaseException:
        if own:
            comp.close()
        raise


def _load_shards(path: Path, opts: DataOptions, *, progress: bool) -> TrainingData:
    manifest = json.loads((path / "_manifest.json").read_text(encoding="utf-8"))
    layer, mode = manifest.get("layer"), manifest.get("mode")
    if mode == "separate":
        raise ValueError(
            f"{path} holds separate-mode shards (one row per replicate contrast, with no "
            "replicate column): they cannot be read per condition; export the group mode, "
            "or read the store with mode='separate'"
        )
    if mode is not None and mode != opts.mode:
        raise ValueError(f"{path} holds {mode}-mode shards, the options ask for {opts.mode!r}")
    if layer is not None and layer != opts.layer:
        raise ValueError(
            f"{path} holds the layer {layer!r}, the options ask for {opts.layer!r}; export "
            "the shards again with that layer, or read the store"
        )
    read = read_shards(
        path,
        datasets=opts.datasets,
        genes=opts.genes,
        finish=lambda raw: _finish_conditions(raw, include_controls=opts.include_controls),
        in_memory=opts.in_memory,
        progress=progress,
    )
    if read.conditions.empty:
        raise ValueError(
            f"no training rows in the shards at {path}; rows left out: "
            f"{read.dropped['reason'].value_counts().to_dict()}"
        )
    source = ArraySource(read.values, read.description)
    return TrainingData(
        read.conditions[list(_CONDITION_COLUMNS)],
        read.genes,
        source=source,
        dropped=read.dropped,
        block_conditions=opts.block_conditions,
    )


def _select_genes(
    table: pd.DataFrame, wanted: tuple[str, ...] | None, *, where: str
) -> tuple[pd.DataFrame, list[str] | None]:
    """The readout genes (frame indexed by gene id) and the ids to read (``None``: all)."""
    ids = table["gene_id"].astype(str)
    symbols = table["symbol"].astype(object) if "symbol" in table else pd.Series(pd.NA, index=ids)
    if wanted is None:
        keep = np.ones(len(table), dtype=bool)
    else:
        wanted_set = set(wanted)
        keep = (ids.isin(wanted_set) | symbols.astype(str).isin(wanted_set)).to_numpy()
        found = set(ids[keep]) | set(symbols[keep].astype(str))
        missing = [g for g in wanted if g not in found]
        if missing:
            raise KeyError(
                f"{len(missing)} of {len(wanted)} genes are not readout genes of {where} "
                f"(neither gene id nor symbol): {missing[:5]}"
            )
    genes = pd.DataFrame(
        {"symbol": symbols[keep].to_numpy()},
        index=pd.Index(ids[keep].to_numpy(), name="gene_id"),
    )
    return genes, None if wanted is None else genes.index.tolist()


def _read_all(src: ValueSource, n: int, block: int, *, progress: bool) -> np.ndarray:
    parts = [
        src.read(np.arange(b0, min(b0 + block, n), dtype=np.int64))
        for b0 in track(range(0, n, block), description="read values", enabled=progress)
    ]
    return np.concatenate(parts, axis=0)

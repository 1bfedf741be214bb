"""Where training values come from: a store, an array, or training shards.

:class:`ValueSource` is what :class:`~perturbridge.models.data.TrainingData` reads values
through; :class:`StoreSource` reads contrasts from a store (``Compendium.effects``),
:class:`ArraySource` from an array or a memory map.

Training rows from the LPM-style Parquet shards of ``perturbridge export --to shards``.

Shards are long (one row per condition × readout gene, unmeasured genes left out, rows
in store order). :func:`read_shards` pivots them back to one row per condition in two
streaming passes over the shards (one record batch in memory at a time): the first finds
the conditions and genes, the second writes the values into a float32 matrix that is
memory-mapped from a temporary file (removed when the data is released), or held in
memory when asked. A condition is the tuple (dataset, context, perturbation, log10
dose, time); its ``condition_id`` is ``<dataset>:<context>:<perturbation>:<dose>uM:
<time>h`` (not the store's condition id: a split made on the store does not apply to
data read from its shards). Shards hold no gene symbols and no PubChem CIDs; a dose
exported as NaN (dose 0: a vehicle) reads as 0 µM.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from ..compendium import Compendium
from ..progress import track

__all__ = ["ArraySource", "ShardRead", "StoreSource", "ValueSource", "read_shards"]

_KIND = "perturbridge-training-shards"
_KEYS = ("dataset", "context", "perturbation", "log10_dose_uM", "time_h")
_BATCH_ROWS = 1 << 16


class ValueSource(Protocol):
    """Where the values of the rows come from: ``read`` takes sorted unique row numbers
    and returns their float32 values (``len(rows)`` × source genes, NaN = not
    measured); ``description`` says what the source is (``kind`` at least, and a
    ``build_key`` when it is a store) and goes into split manifests."""

    description: dict[str, Any]

    def read(self, rows: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


class StoreSource:
    """Contrasts of a store, read through ``Compendium.effects`` (one read at a time: the
    store's DuckDB connection is not shared by threads at once)."""

    def __init__(
        self,
        comp: Compendium,
        ids: np.ndarray,
        genes: list[str] | None,
        *,
        layer: str,
        mode: Literal["group", "separate"],
        own: bool,
    ) -> None:
        self.comp = comp
        self.ids = ids
        self.genes = genes
        self.layer = layer
        self.mode = mode
        self.own = own
        self._lock = threading.Lock()
        self.description = {
            "kind": "store",
            "path": str(comp.path),
            "build_key": comp.manifest.get("build_key", ""),
            "layer": layer,
            "mode": mode,
        }

    def read(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            n = len(self.genes) if self.genes is not None else len(self.comp.genes())
            return np.zeros((0, n), dtype=np.float32)
        ids = self.ids[rows].tolist()
        with self._lock:
            adata = self.comp.effects(ids, genes=self.genes, layer=self.layer, mode=self.mode)
        if adata.n_obs != len(ids) or list(adata.obs_names) != ids:
            raise RuntimeError(
                f"{self.comp.path}: asked for {len(ids)} contrasts, the store returned "
                f"{adata.n_obs} in another order (first asked: {ids[:2]})"
            )
        return np.asarray(adata.X, dtype=np.float32)

    def close(self) -> None:
        if self.own:
            with self._lock:
                self.comp.close()


class ArraySource:
    """Values held in an array (``in_memory``) or a memory-mapped file (shards)."""

    def __init__(self, values: np.ndarray, description: dict[str, Any]) -> None:
        self.values = values
        self.description = description

    def read(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.values[rows], dtype=np.float32)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class ShardRead:
    """What :func:`read_shards` found: kept conditions, dropped rows, genes, values."""

    conditions: pd.DataFrame
    dropped: pd.DataFrame
    genes: pd.DataFrame
    values: np.ndarray
    description: dict[str, Any]


def _manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((path / "_manifest.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path / '_manifest.json'}: not JSON ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("kind") != _KIND:
        raise ValueError(
            f"{path / '_manifest.json'} is not a training-shards manifest (kind {_KIND!r})"
        )
    missing = [s for s in manifest.get("shards", []) if not (path / s).is_file()]
    if missing or not manifest.get("shards"):
        raise FileNotFoundError(
            f"{path}: shards listed in _manifest.json are missing: {missing[:5]}"
            if missing
            else f"{path}: _manifest.json lists no shards"
        )
    return manifest


def _batches(path: Path, manifest: dict[str, Any], columns: list[str]) -> Iterator[Any]:
    import pyarrow.parquet as pq

    for name in manifest["shards"]:
        pf = pq.ParquetFile(path / name)
        absent = [c for c in columns if c not in pf.schema_arrow.names]
        if absent:
            raise ValueError(f"{path / name} lacks the shard columns {absent}")
        yield from pf.iter_batches(batch_size=_BATCH_ROWS, columns=columns)


def _codes(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of a (dictionary or plain) string column and the strings they stand
    for: the dictionary's indices as they are (no string per row is made)."""
    import pyarrow as pa

    if pa.types.is_dictionary(column.type):
        codes = column.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        return codes, np.asarray(column.dictionary.to_pylist(), dtype=object)
    codes, uniques = pd.factorize(np.asarray(column.to_pylist(), dtype=object))
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _keys(batch: Any) -> tuple[np.ndarray, list[tuple[Any, ...]]]:
    """Segment number of each row and the key of each segment (rows of one condition are
    contiguous in a shard, so only the rows where a key column changes are looked at)."""
    cols = [_codes(batch.column(c)) for c in _KEYS[:3]]
    nums = [np.nan_to_num(batch.column(c).to_numpy(zero_copy_only=False).astype(np.float64),
                          nan=-np.inf) for c in _KEYS[3:]]  # fmt: skip
    n = batch.num_rows
    change = np.zeros(n, dtype=bool)
    if n:
        change[0] = True
        for c in (*(codes for codes, _ in cols), *nums):
            change[1:] |= c[1:] != c[:-1]
    starts = np.flatnonzero(change)
    seg = np.cumsum(change) - 1
    keys = [
        tuple(str(words[codes[i]]) for codes, words in cols) + tuple(float(v[i]) for v in nums)
        for i in starts
    ]
    return seg, keys


def _gene_codes(batch: Any, gene_index: dict[str, int]) -> np.ndarray:
    """The gene number (``gene_index``) of each row of a batch."""
    codes, words = _codes(batch.column("readout_gene"))
    lut = np.array([gene_index.get(str(w), -1) for w in words], dtype=np.int64)
    return lut[codes] if len(codes) else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class _Layout:
    """Where a shard value goes: condition key → key number → row; gene → column."""

    index: dict[tuple[Any, ...], int]
    row_of: np.ndarray
    gene_index: dict[str, int]
    col_of: np.ndarray
    condition_ids: np.ndarray
    gene_ids: list[str]


def _fill(
    path: Path, manifest: dict[str, Any], values: np.ndarray, layout: _Layout, *, progress: bool
) -> None:
    """The second pass: each value of the shards into its row and column of ``values``."""
    index, row_of, col_of = layout.index, layout.row_of, layout.col_of
    gene_index, gene_ids = layout.gene_index, layout.gene_ids
    for batch in track(_batches(path, manifest, [*_KEYS, "readout_gene", "value"]),
                       description="read shards", enabled=progress):  # fmt: skip
        seg, seg_keys = _keys(batch)
        seg_rows = np.array([row_of[index[k]] for k in seg_keys], dtype=np.int64)
        r = seg_rows[seg]
        gene_codes = _gene_codes(batch, gene_index)
        c = np.where(gene_codes >= 0, col_of[gene_codes], -1)
        ok = (r >= 0) & (c >= 0)
        r, c = r[ok], c[ok]
        v = batch.column("value").to_numpy(zero_copy_only=False).astype(np.float32)[ok]
        flat = r * max(len(gene_ids), 1) + c
        twice = pd.Series(flat).duplicated().to_numpy() | ~np.isnan(values[r, c])
        if twice.any():
            i = int(np.flatnonzero(twice)[0])
            raise ValueError(
                f"{path}: the shards hold more than one value for condition "
                f"{layout.condition_ids[r[i]]!r} and gene {gene_ids[c[i]]!r}; shards "
                "of a separate-mode export (one row per replicate) cannot be read per "
                "condition: export the group mode"
            )
        values[r, c] = v


def read_shards(
    path: Path,
    *,
    datasets: tuple[str, ...] | None,
    genes: tuple[str, ...] | None,
    finish: Callable[[pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame]],
    in_memory: bool = False,
    progress: bool = False,
) -> ShardRead:
    """Read a shards folder; ``finish`` derives columns and drops unusable rows (it gets
    the raw conditions and returns the kept ones and the dropped ones)."""
    manifest = _manifest(path)
    index: dict[tuple[Any, ...], int] = {}
    gene_index: dict[str, int] = {}
    for batch in track(_batches(path, manifest, [*_KEYS, "readout_gene"]),
                       description="scan shards", enabled=progress):  # fmt: skip
        _, keys = _keys(batch)
        for k in keys:
            index.setdefault(k, len(index))
        codes, words = _codes(batch.column("readout_gene"))
        for g in words[np.unique(codes)]:
            gene_index.setdefault(str(g), len(gene_index))
    if not index:
        raise ValueError(f"{path}: the shards hold no rows")
    names = sorted({k[0] for k in index})
    if datasets is not None:
        unknown = [d for d in datasets if d not in names]
        if unknown:
            raise KeyError(f"datasets {unknown} are not in the shards at {path}; datasets: {names}")
    gene_ids = list(gene_index)
    if genes is not None:
        missing = [g for g in genes if g not in gene_index]
        if missing:
            raise KeyError(
                f"{len(missing)} of {len(genes)} genes are not readout genes of the shards at "
                f"{path} (shards hold gene ids only): {missing[:5]}"
            )
        gene_ids = [g for g in gene_ids if g in set(genes)]
    col_of = np.full(len(gene_index), -1, dtype=np.int64)
    for j, g in enumerate(gene_ids):
        col_of[gene_index[g]] = j
    keys = list(index)
    log_dose = np.array([k[3] for k in keys], dtype=float)
    log_dose[np.isinf(log_dose)] = np.nan
    time = np.array([k[4] for k in keys], dtype=float)
    time[np.isinf(time)] = np.nan
    with np.errstate(invalid="ignore"):
        dose = np.where(np.isnan(log_dose), 0.0, 10.0**log_dose)
    raw = pd.DataFrame(
        {
            "condition_id": [
                f"{k[0]}:{k[1]}:{k[2]}:{x:.6g}uM:{t:g}h"
                for k, x, t in zip(keys, dose, time, strict=True)
            ],
            "contrast_id": pd.NA,
            "dataset": [k[0] for k in keys],
            "assay": "",
            "context": [k[1] for k in keys],
            "compound": [k[2] for k in keys],
            "compound_inchikey": [k[2] for k in keys],
            "pubchem_cid": pd.array([pd.NA] * len(keys), dtype="Int64"),
            "perturbagen": [k[2] for k in keys],
            "dose_uM": dose,
            "time_h": time,
            "_key": np.arange(len(keys)),
        }
    )
    if datasets is not None:
        raw = raw[raw["dataset"].isin(datasets)].reset_index(drop=True)
    kept, dropped = finish(raw)
    row_of = np.full(len(keys), -1, dtype=np.int64)
    row_of[kept["_key"].to_numpy(dtype=np.int64)] = np.arange(len(kept))
    kept = kept.drop(columns="_key")
    shape = (len(kept), len(gene_ids))
    layout = _Layout(index, row_of, gene_index, col_of,
                     kept["condition_id"].to_numpy(dtype=object), gene_ids)  # fmt: skip
    if in_memory:
        values = np.full(shape, np.nan, dtype=np.float32)
        _fill(path, manifest, values, layout, progress=progress)
    else:
        # a memory map in a temporary folder, removed with the array (or on an error)
        folder = tempfile.mkdtemp(prefix="pb-shards-")
        try:
            values = np.lib.format.open_memmap(
                Path(folder) / "values.npy", mode="w+", dtype=np.float32, shape=shape
            )
            weakref.finalize(values, shutil.rmtree, folder, True)
            values[:] = np.nan
            _fill(path, manifest, values, layout, progress=progress)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    gene_frame = pd.DataFrame(
        {"symbol": pd.array([pd.NA] * len(gene_ids), dtype=object)},
        index=pd.Index(gene_ids, name="gene_id"),
    )
    description = {
        "kind": "shards",
        "path": str(path),
        "build_key": manifest.get("build_key", ""),
        "store": manifest.get("store", ""),
        "layer": manifest.get("layer", ""),
        "mode": manifest.get("mode", ""),
    }
    return ShardRead(kept, dropped, gene_frame, values, description)

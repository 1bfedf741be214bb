"""The consolidated arrays of a store: ``zarr/<mode>.zarr``, written from the Effects files."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..._version import __version__
from ...io import file_sha256
from ...progress import track
from .._common import StoreError
from .._footprint import NEG_LOG10, is_p_layer
from .._shards import ShardWriter, create_row_sharded
from ._catalog import EffectsFile
from ._effects import StoreEffects

__all__ = ["write_zarr"]


def write_zarr(
    dest: Path,
    files: Sequence[tuple[EffectsFile, StoreEffects]],
    gene_pos: pd.Series,
    *,
    mode: str,
    layers: Sequence[str],
    rows_per_shard: int,
    progress: bool,
    checkpoint: Callable[[str], None],
) -> dict[str, Any]:
    """Write the arrays of one mode into ``dest``; returns their summary for the manifest
    (``file_records``: size and SHA-256 of every file, shards with their index CRC32C).
    ``checkpoint`` is called with ``"zarr_shard"`` once the first shard is written.
    ``files``: the mode's store files in array row order, each with its complete Effects,
    which give its rows (:meth:`StoreEffects.stored_rows`)."""
    import zarr

    n_rows = sum(len(ef.obs) for ef, _ in files)
    n_genes = len(gene_pos)
    cr = max(1, rows_per_shard)
    dest.parent.mkdir(parents=True, exist_ok=True)
    root = zarr.open_group(str(dest), mode="w", zarr_format=3)
    root.attrs.update(
        {
            "perturbridge": {
                "kind": "compendium_effects",
                "mode": mode,
                "rows": "catalog/contrasts.parquet: zarr_row of the contrasts of this mode",
                "columns": "catalog/genes.parquet: zarr_col",
                "layers": list(layers),
                "layout": "row-sharded: one row per inner chunk, rows_per_shard rows a file",
                "p_values": "layers of p-values store -log10(p) (array attribute "
                "perturbridge.encoding = '-log10')",
                "version": __version__,
            }
        }
    )
    cols = [gene_pos.reindex(ef.var.index.astype(str)).to_numpy(dtype=np.int64) for ef, _ in files]
    shard_records: dict[str, dict[str, Any]] = {}
    for layer in track(layers, description=f"zarr {mode}", enabled=progress):
        p_values = is_p_layer(layer)
        lay = create_row_sharded(
            root,
            layer,
            n_rows=n_rows,
            n_cols=n_genes,
            rows_per_shard=cr,
            encoding=NEG_LOG10 if p_values else None,
        )
        cr = lay.rows_per_shard
        buf = np.full((cr, n_genes), np.nan, dtype=np.float32)
        filled = 0
        shard = 0
        with ShardWriter(lay) as writer:
            for (ef, src), col in zip(files, cols, strict=True):
                n = len(ef.obs)
                if layer not in src.layers:
                    raise StoreError(f"{ef.rel}: layer {layer!r} is missing")
                pos = 0
                while pos < n:
                    take = min(cr - filled, n - pos)
                    buf[filled : filled + take][:, col] = src.stored_rows(layer, pos, pos + take)
                    filled += take
                    pos += take
                    if filled == cr:
                        writer.write(shard, buf)
                        shard += 1
                        buf.fill(np.nan)
                        filled = 0
                        if shard == 1:
                            checkpoint("zarr_shard")
            if filled:
                writer.write(shard, buf[:filled])
            for i, digest_ in writer.records.items():
                shard_records[f"{layer}/c/{i}/0"] = digest_.record()
    with warnings.catch_warnings():
        # consolidated metadata is a zarr-python extension of format 3 (readers that do
        # not know it read the per-array zarr.json files instead)
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        zarr.consolidate_metadata(str(dest))
    records: dict[str, dict[str, Any]] = {}
    for p in (q for q in dest.rglob("*") if q.is_file()):
        rel = p.relative_to(dest).as_posix()
        rec = shard_records.get(rel)
        records[rel] = rec if rec is not None else {"bytes": p.stat().st_size,
                                                    "sha256": file_sha256(p)}  # fmt: skip
    # one SHA-256 over the sorted (relative path, file SHA-256), in path order
    h = hashlib.sha256()
    for rel in sorted(records, key=lambda r: Path(r).parts):
        h.update(f"{rel}\0{records[rel]['sha256']}\n".encode())
    summary: dict[str, Any] = {
        "files": len(records),
        "bytes": sum(int(r["bytes"]) for r in records.values()),
        "sha256": h.hexdigest(),
        "rows": n_rows,
        "genes": n_genes,
        "layers": list(layers),
        "file_records": records,
    }
    return summary

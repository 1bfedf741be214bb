"""Exports of a compendium: long-format training shards and AnnData for evaluation tools.

:func:`export_shards` writes LPM-style training data (one row per condition × readout
gene) as Parquet shards of ``rows_per_shard`` rows (200,000 by default), streaming over
the consolidated array so that memory is bounded by one block of conditions:

============== ========== ===================================================
column         type       meaning
============== ========== ===================================================
dataset        string     dataset name
context        string     cell context id
perturbation   string     compound id (parent InChIKey, InChIKey, or
                          ``<dataset>:<upstream id>`` when not resolved)
readout_gene   string     gene id of the readout
log10_dose_uM  float32    log10 of the dose in µM
time_h         float32    time after treatment in hours
value          float32    the effect (``layer``, logFC by default)
organism, …    string     the biology columns of the condition
                          (:data:`~perturbridge.schema.BIOLOGY_COLUMNS`:
                          ``organism``, ``tissue``, ``tissue_ontology_term_id``,
                          ``disease``, ``disease_ontology_term_id``, ``sex``,
                          ``development_stage``, ``self_reported_ethnicity``,
                          ``suspension_type``, ``tissue_type``; ``unknown``
                          where no source says)
============== ========== ===================================================

Unmeasured genes (NaN) are left out. Rows follow the store order (contrast, then gene),
so the same store gives the same shards.

:func:`export_anndata` writes one AnnData (conditions × genes) for evaluation tools in
the cell-eval / PerturBench style: ``obs`` has ``perturbation``, ``condition``,
``cell_type``, ``dose_uM``, ``time_h``, ``dataset``, ``control`` and the biology
columns.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..io import atomic_dir, atomic_file, write_h5ad
from ..progress import track
from ..schema import BIOLOGY_COLUMNS
from ._common import canonical_json
from .api import Compendium
from .store import compound_ids

__all__ = ["SHARD_COLUMNS", "export_anndata", "export_shards"]

logger = logging.getLogger(__name__)

#: Columns of a training shard, in order.
SHARD_COLUMNS: tuple[str, ...] = (
    "dataset",
    "context",
    "perturbation",
    "readout_gene",
    "log10_dose_uM",
    "time_h",
    "value",
    *BIOLOGY_COLUMNS,
)


def _schema() -> Any:
    import pyarrow as pa

    text = pa.dictionary(pa.int32(), pa.string())
    return pa.schema(
        [
            ("dataset", text),
            ("context", text),
            ("perturbation", text),
            ("readout_gene", text),
            ("log10_dose_uM", pa.float32()),
            ("time_h", pa.float32()),
            ("value", pa.float32()),
            *((name, text) for name in BIOLOGY_COLUMNS),
        ]
    )


def _codes(values: pd.Series) -> tuple[np.ndarray, Any]:
    import pyarrow as pa

    cat = pd.Categorical(values.astype(str))
    return cat.codes.astype(np.int32), pa.array(cat.categories.to_numpy(dtype=str))


def export_shards(
    store: str | os.PathLike[str] | Compendium,
    out_dir: str | os.PathLike[str],
    *,
    mode: Literal["group", "separate"] = "group",
    layer: str = "logFC",
    rows_per_shard: int = 200_000,
    datasets: Sequence[str] | None = None,
    block_conditions: int = 256,
    progress: bool = False,
) -> list[Path]:
    """Write LPM-style long-format training shards (Parquet) of one layer.

    Parameters
    ----------
    store
        A store path or an open :class:`Compendium`.
    out_dir
        A new or empty folder; receives ``part-00000.parquet``, … and ``_manifest.json``.
    mode
        Replicate mode of the contrasts (``group``: one row set per condition).
    layer
        The Effects layer exported as ``value``.
    rows_per_shard
        Rows per shard (the last one holds the rest).
    datasets
        Only these datasets (default: all).
    block_conditions
        Conditions read at a time (bounds memory).

    Returns
    -------
    list of Path
        The shard files, in order.
    """
    if rows_per_shard < 1:
        raise ValueError(f"rows_per_shard must be >= 1, found {rows_per_shard}")
    target = Path(out_dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"{target} is not empty; export into a new or empty folder")
    # shards go to a sibling folder renamed onto ``target`` at the end: a killed export
    # leaves no half-written export behind (its folder is removed by the next export)
    comp = store if isinstance(store, Compendium) else Compendium.open(store)
    try:
        with atomic_dir(target) as out:
            shards = _write_shards(
                comp, out, mode=mode, layer=layer, rows_per_shard=rows_per_shard,
                datasets=datasets, block_conditions=block_conditions, progress=progress,
            )  # fmt: skip
    finally:
        if not isinstance(store, Compendium):
            comp.close()
    return [target / p.name for p in shards]


def _write_shards(
    comp: Compendium,
    out: Path,
    *,
    mode: Literal["group", "separate"],
    layer: str,
    rows_per_shard: int,
    datasets: Sequence[str] | None,
    block_conditions: int,
    progress: bool,
) -> list[Path]:
    """Write the shards and ``_manifest.json`` of :func:`export_shards` into ``out``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    contrasts = comp.contrasts(mode=mode)
    if datasets is not None:
        unknown = sorted(set(datasets) - set(contrasts["dataset"]))
        if unknown:
            raise KeyError(f"datasets {unknown} have no {mode}-mode contrasts in the store")
        contrasts = contrasts[contrasts["dataset"].isin(list(datasets))]
    contrasts = contrasts.reset_index(drop=True)
    genes = comp.genes()
    schema = _schema()
    ds_codes, ds_dict = _codes(contrasts["dataset"])
    ctx_codes, ctx_dict = _codes(contrasts["cell_context"])
    pert_codes, pert_dict = _codes(pd.Series(compound_ids(contrasts)))
    gene_dict = pa.array(genes["gene_id"].to_numpy(dtype=str))
    dose = contrasts["pert_dose_uM"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_dose = np.where(dose > 0, np.log10(dose), np.nan).astype(np.float32)
    time = contrasts["pert_time_h"].to_numpy(dtype=np.float32)
    biology = [_codes(contrasts[name]) for name in BIOLOGY_COLUMNS]

    shards: list[Path] = []
    pending: list[pa.Table] = []
    n_pending = 0
    total = 0

    def flush(final: bool) -> None:
        nonlocal pending, n_pending
        if not pending:
            return
        table = pa.concat_tables(pending)
        start = 0
        while table.num_rows - start >= rows_per_shard or (final and start < table.num_rows):
            piece = table.slice(start, rows_per_shard)
            path = out / f"part-{len(shards):05d}.parquet"
            with atomic_file(path) as tmp:
                pq.write_table(piece, tmp, compression="zstd")
            shards.append(path)
            start += piece.num_rows
        rest = table.slice(start)
        pending = [rest] if rest.num_rows else []
        n_pending = rest.num_rows

    blocks = range(0, len(contrasts), block_conditions)
    for b0 in track(blocks, description="export shards", enabled=progress):
        sel = contrasts.iloc[b0 : b0 + block_conditions]
        values = np.asarray(comp.effects(sel, layer=layer, mode=mode).X, dtype=np.float32)
        r, g = np.nonzero(~np.isnan(values))
        rows = r + b0
        table = pa.Table.from_arrays(
            [
                pa.DictionaryArray.from_arrays(pa.array(ds_codes[rows]), ds_dict),
                pa.DictionaryArray.from_arrays(pa.array(ctx_codes[rows]), ctx_dict),
                pa.DictionaryArray.from_arrays(pa.array(pert_codes[rows]), pert_dict),
                pa.DictionaryArray.from_arrays(pa.array(g.astype(np.int32)), gene_dict),
                pa.array(log_dose[rows]),
                pa.array(time[rows]),
                pa.array(values[r, g]),
                *(
                    pa.DictionaryArray.from_arrays(pa.array(codes[rows]), dictionary)
                    for codes, dictionary in biology
                ),
            ],
            schema=schema,
        )
        pending.append(table)
        n_pending += table.num_rows
        total += table.num_rows
        if n_pending >= rows_per_shard:
            flush(final=False)
    flush(final=True)
    manifest = {
        "kind": "perturbridge-training-shards",
        "store": str(comp.path),
        "build_key": comp.manifest.get("build_key"),
        "mode": mode,
        "layer": layer,
        "datasets": sorted(contrasts["dataset"].unique().tolist()),
        "rows": total,
        "rows_per_shard": rows_per_shard,
        "shards": [p.name for p in shards],
        "columns": list(SHARD_COLUMNS),
    }
    with atomic_file(out / "_manifest.json") as tmp:
        tmp.write_text(canonical_json(manifest, indent=2), encoding="utf-8")
    logger.info("wrote %d rows in %d shards", total, len(shards))
    return shards


def export_anndata(
    store: str | os.PathLike[str] | Compendium,
    out: str | os.PathLike[str],
    *,
    conditions: pd.DataFrame | Sequence[str] | None = None,
    genes: Sequence[str] | None = None,
    layer: str = "logFC",
    mode: Literal["group", "separate"] = "group",
    measured_in_all: bool = False,
) -> Path:
    """Write conditions × genes of one layer as an ``.h5ad`` for evaluation tools.

    ``obs`` carries ``perturbation`` (compound id), ``perturbation_name``,
    ``condition`` (condition id), ``cell_type`` (cell context), ``dose_uM``,
    ``time_h``, ``dataset``, ``control`` (False: every row is a treated condition
    against its vehicle) and the biology columns
    (:data:`~perturbridge.schema.BIOLOGY_COLUMNS`). With ``measured_in_all``, only genes
    without NaN in any selected row are kept.
    """
    comp = store if isinstance(store, Compendium) else Compendium.open(store)
    try:
        adata = comp.effects(conditions, genes=genes, layer=layer, mode=mode)
    finally:
        if not isinstance(store, Compendium):
            comp.close()
    if measured_in_all:
        keep = ~np.isnan(np.asarray(adata.X)).any(axis=0)
        adata = adata[:, keep].copy()
    obs = adata.obs
    eval_obs = pd.DataFrame(
        {
            "perturbation": pd.Categorical(compound_ids(obs)),
            "perturbation_name": pd.Categorical(obs["perturbagen"].astype(str)),
            "condition": pd.Categorical(obs["condition_id"].astype(str)),
            "cell_type": pd.Categorical(obs["cell_context"].astype(str)),
            "dose_uM": obs["pert_dose_uM"].to_numpy(dtype=float),
            "time_h": obs["pert_time_h"].to_numpy(dtype=float),
            "dataset": pd.Categorical(obs["dataset"].astype(str)),
            "control": np.zeros(len(obs), dtype=bool),
            **{name: pd.Categorical(obs[name].astype(str)) for name in BIOLOGY_COLUMNS},
        },
        index=obs.index,
    )
    adata.obs = eval_obs
    return write_h5ad(adata, out)

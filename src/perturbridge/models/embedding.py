"""Compound embeddings of a trained model as a table, and reading such a table back.

:func:`embed` writes one vector per compound: a Parquet table with columns ``compound``
(the compound key: the parent InChIKey where known), ``inchikey``, ``pubchem_cid``,
``name``, ``in_training`` and ``e0 … e{k-1}``, with the model's configuration and the
package version in the file's metadata. Training starts from such a table with
``compound_encoder = "pretrained"`` and ``pretrained = "<table>"``
(:func:`~perturbridge.models.encoders.read_embeddings` reads it).

By default only the compounds the model learned something about are written: with a
learned embedding, those with training rows (the others would be the zero vector);
with a Morgan or pretrained encoder, every compound with a structure or a table row.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..io import atomic_file, provenance
from .encoders import embedding_columns, read_embeddings
from .model import TrainedModel

__all__ = ["embed", "read_embeddings"]


def embed(
    model: TrainedModel | str | os.PathLike[str],
    *,
    out: str | os.PathLike[str],
    all_compounds: bool = False,
) -> Path:
    """Write the compound embeddings of ``model`` (a model, a model file or a training
    folder) to the Parquet file ``out``; returns its path.

    ``all_compounds`` also writes the compounds the model has no information on (their
    vector is zero), flagged by ``in_training`` / a zero vector.
    """
    source = None if isinstance(model, TrainedModel) else Path(model)
    m = model if isinstance(model, TrainedModel) else TrainedModel.load(model, device="cpu")
    table = m.compound_embeddings()
    cols = embedding_columns(table)
    if not all_compounds:
        informative = (table[cols].abs().sum(axis=1) > 0).to_numpy()
        if m.config.compound_encoder == "embedding":
            informative &= table["in_training"].to_numpy(dtype=bool)
        table = table.loc[informative]
    if table.empty:
        raise ValueError(
            "the model has no compound it learned anything about (no compound with training "
            "rows, structure or table row); nothing was written"
        )
    frame = table.reset_index()
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    record = provenance(
        step="embed",
        inputs=[source / "best.pt" if source.is_dir() else source] if source else [],
        params={"all_compounds": all_compounds},
    )
    record["model_config"] = m.config.to_dict()
    meta = dict(arrow.schema.metadata or {})
    meta[b"perturbridge"] = json.dumps(record).encode("utf-8")
    arrow = arrow.replace_schema_metadata(meta)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        pq.write_table(arrow, tmp)
    return path

"""Precomputed signatures as datasets of a store: CMap level 5 GCTX, signatureSearch HDF5.

Some public resources publish signatures, not the samples they came from: CMap's level 5
MODZ signatures (GCTX) and the signatureSearch databases (HDF5). :func:`import_signatures`
adds such a file to a store as a dataset of **precomputed effects** (no DE step), beside
datasets built from upstream files or imported from the release, so that one search or
one export covers both. The store is written the way
:func:`~perturbridge.compendium.importer.import_release` writes it: under the store lock,
conversions cached by the SHA-256 of their input in ``<store>/.cache``, the store's other
datasets joined unchanged (:func:`~perturbridge.compendium.store.read_dataset_parts`), one
:func:`~perturbridge.compendium.store.write_store` transaction.

The two layouts read:

- ``kind="gctx"``: genes × signatures, column metadata with CMap's fields (``cell_id``,
  ``pert_id``, ``pert_iname``, ``pert_idose`` or ``pert_dose`` + ``pert_dose_unit``,
  ``pert_itime`` or ``pert_time`` + ``pert_time_unit``, ``pert_type``,
  ``distil_nsample``); the genes are keyed by Entrez id (``pr_gene_id``, or the row ids
  when they are numbers), as the L1000 source keys them, with the probe id kept in
  ``var``.
- ``kind="signaturesearch"``: ``assay`` (signatures × genes as h5py reads R's
  column-major layout), ``colnames`` ``"<drug>__<cell>__<pert_type>"``, ``rownames``
  Entrez ids. The name has no dose or time: both are missing (NaN).

Each signature becomes one condition (``condition`` = its id), one group-mode contrast,
one row per cell context file. The values go to the Effects layer ``layer`` (``logFC``
by default, the layer a search reads); the other Effects layers are NaN and named in
``uns["perturbridge"]["layers_filled"]``; the dataset's ``value_kind`` says what the
values are (``zscore``). Every input signature is in the ledger: ``kept`` (stage
``signatures``, with a note where a dose or time could not be read) or ``dropped``
(``no_values``: no finite value); every input gene row likewise (stage ``genes``).
Metadata fields that are not mapped to the standard columns stay in the Effects ``obs``
under their own names (``upstream_<name>`` where a name is a standard column).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from .._version import __version__
from ..io import atomic_dir, file_sha256, write_h5ad
from ..ledger import Ledger
from ..progress import track
from ..schema import EFFECT_LAYERS
from ._common import PlanError, StoreError, digest, safe_name, write_json_atomic
from ._footprint import storage_effects
from ._lock import store_lock
from ._signature_files import READERS, STAGE, RawSignatures
from .importer import join_and_write, kept_digests, kept_parts
from .plan import DEFAULT_ZARR_LAYERS, check_store_path
from .release import write_ledger
from .store import (
    DatasetPart,
    EffectsPart,
    mark_store,
    read_manifest,
    store_is_current,
)
from .tasks import TaskCache

__all__ = [
    "SIGNATURE_KINDS",
    "SOURCE",
    "SignatureConversion",
    "SignatureKind",
    "import_signatures",
    "read_signatures",
]

logger = logging.getLogger(__name__)

SignatureKind = Literal["gctx", "signaturesearch"]
#: The file layouts :func:`import_signatures` reads.
SIGNATURE_KINDS: tuple[str, ...] = get_args(SignatureKind)
#: The ``source`` of signature datasets in the manifest and the datasets table.
SOURCE = "signature_import"
#: Bumped when the conversion changes, so that cached conversions are redone.
CONVERSION_FORMAT = 2
_CONTROL_LABEL = "none (precomputed signature)"


@dataclass(frozen=True)
class SignatureConversion:
    """A signature file as Effects, one AnnData per cell context, and its ledgers."""

    #: cell context → Effects (rows: the context's signatures in file order)
    effects: Mapping[str, Any]
    #: every input signature (stage ``signatures``), by context
    ledgers: Mapping[str, pd.DataFrame]
    #: every input gene row (stage ``genes``)
    gene_ledger: pd.DataFrame
    #: what the import read: counts, fields, the file's SHA-256
    info: Mapping[str, Any] = field(default_factory=dict)


def _check_kind(kind: str) -> None:
    if kind not in SIGNATURE_KINDS:
        raise ValueError(f"kind must be one of {list(SIGNATURE_KINDS)}, found {kind!r}")


def _check_layer(layer: str) -> None:
    if layer not in EFFECT_LAYERS:
        raise ValueError(f"layer must be an Effects layer {list(EFFECT_LAYERS)}, found {layer!r}")


def _categorical(values: Any) -> pd.Categorical:
    s = pd.Series(values, dtype=object)
    return pd.Categorical([None if pd.isna(v) else str(v) for v in s])


def read_signatures(
    path: str | os.PathLike[str],
    *,
    kind: SignatureKind = "gctx",
    dataset: str,
    layer: str = "logFC",
) -> SignatureConversion:
    """A signature file as Effects (one AnnData per cell context) and its ledgers.

    Parameters
    ----------
    path
        A level 5 GCTX file (``kind="gctx"``) or a signatureSearch HDF5 file
        (``kind="signaturesearch"``).
    kind
        The layout of ``path``.
    dataset
        The dataset name the Effects carry.
    layer
        The Effects layer that receives the signature values.

    Raises
    ------
    ValueError
        A file that does not follow the layout (the message names the file and what is
        missing); ``FileNotFoundError`` for a missing file.
    """
    path = Path(path)
    raw, contexts = _open(path, kind=kind, dataset=dataset, layer=layer)
    effects: dict[str, Any] = {}
    ledgers: dict[str, pd.DataFrame] = {}
    n_dropped = 0
    for ctx, eff, ledger, dropped in contexts:
        effects[ctx], ledgers[ctx] = eff, ledger
        n_dropped += dropped
    return SignatureConversion(effects, ledgers, raw.genes.to_frame(), _info(raw, n_dropped))


def _info(raw: RawSignatures, n_dropped: int) -> dict[str, Any]:
    return {
        "n_signatures": len(raw.meta),
        "n_dropped": n_dropped,
        "n_genes": len(raw.var),
        "n_gene_rows": len(raw.genes.to_frame()),
        "fields": dict(raw.fields),
    }


_Context = tuple[str, Any, pd.DataFrame, int]


def _open(
    path: Path, *, kind: SignatureKind, dataset: str, layer: str
) -> tuple[RawSignatures, Iterator[_Context]]:
    """The file's metadata (checked: fails before any value is read) and an iterator
    over its cell contexts: ``(context, Effects, ledger, signatures dropped)``, one
    context in memory at a time."""
    _check_kind(kind)
    _check_layer(layer)
    if not path.is_file():
        raise FileNotFoundError(f"signature file not found: {path}")
    reader, values_of = READERS[kind]
    raw = reader(path)
    ids = raw.meta.index.astype(str)
    cell = raw.meta["cell_name"].astype(object).to_numpy()
    no_cell = pd.isna(cell)
    if no_cell.any():
        raise ValueError(
            f"{path}: {int(no_cell.sum())} signatures have no cell line, e.g. "
            f"{list(ids[no_cell][:3])}"
        )
    source = {"file": path.name, "sha256": file_sha256(path), "kind": kind}

    def contexts() -> Iterator[_Context]:
        notes = raw.notes.to_frame()
        for ctx in pd.unique(cell):
            pos = np.flatnonzero(cell == ctx)
            x = values_of(path, pos, raw.gene_rows)
            yield _context(raw, str(ctx), pos, x, notes=notes, dataset=dataset, layer=layer,
                           source=source)  # fmt: skip

    return raw, contexts()


def _context(
    raw: RawSignatures,
    ctx: str,
    pos: np.ndarray,
    x: np.ndarray,
    *,
    notes: pd.DataFrame,
    dataset: str,
    layer: str,
    source: dict[str, str],
) -> _Context:
    """The Effects and ledger of the signatures ``pos`` (values ``x``) of one context."""
    import anndata as ad

    meta = raw.meta
    ids = meta.index.astype(str)
    kind = source["kind"]
    led = Ledger()
    finite = np.isfinite(x).any(axis=1)
    led.drop(ids[pos[~finite]], stage=STAGE, reason="no_values",
             detail="no finite value in the signature")  # fmt: skip
    pos, x = pos[finite], np.asarray(x[finite], dtype=np.float32)
    sub = meta.iloc[pos]
    sig = ids[pos]
    noted = notes[notes["id"].isin(sig)]
    led.keep(sig[~sig.isin(noted["id"])], stage=STAGE, detail=f"precomputed signature ({kind})")
    led.extend(Ledger(noted))
    n = len(pos)
    obs = pd.DataFrame(
        {
            "dataset": pd.Categorical([dataset] * n),
            "cell_context": _categorical([ctx] * n),
            "cell_name": _categorical([ctx] * n),
            "perturbagen": _categorical(sub["perturbagen"]),
            "compound_id_source": _categorical(sub["compound_id_source"]),
            "compound_inchikey": _categorical([None] * n),
            "compound_parent_inchikey": _categorical([None] * n),
            "pubchem_cid": pd.array([pd.NA] * n, dtype="Int64"),
            "pert_dose_uM": sub["pert_dose_uM"].to_numpy(dtype=float),
            "pert_time_h": sub["pert_time_h"].to_numpy(dtype=float),
            "replicate": _categorical([None] * n),
            "control_label": pd.Categorical([_CONTROL_LABEL] * n),
            "n_treated": pd.array(sub["n_treated"].to_numpy(), dtype="Int64"),
            "n_control": pd.array([pd.NA] * n, dtype="Int64"),
            "condition": pd.Categorical(sig),
            "pert_type": _categorical(sub["pert_type"]),
            "signature_id": pd.Categorical(sig),
        },
        index=pd.Index(sig, name="contrast"),
    )
    for c in meta.columns:
        if c not in obs.columns:
            vals = sub[c]
            obs[c] = _categorical(vals) if vals.dtype == object else vals.to_numpy()
    # float32 like the values; the layers without values are NaN (compressed on disk)
    empty = np.full(x.shape, np.nan, dtype=np.float32)
    layers = {name: (x if name == layer else empty) for name in EFFECT_LAYERS}
    eff = ad.AnnData(X=x.copy(), obs=obs, var=raw.var.copy(), layers=layers)
    eff.uns["perturbridge"] = {
        "kind": "effects",
        "value_kind": "zscore",
        "replicate_mode": "group",
        "params": {"method": f"precomputed signatures ({kind}); no DE", "layer": layer},
        "imported_from": dict(source),
        "layers_filled": [name for name in EFFECT_LAYERS if name != layer],
        "fields": dict(raw.fields),
    }
    return ctx, eff, led.to_frame(), int((~finite).sum())


# ------------------------------------------------------------------------- the store


def _convert(
    cache: TaskCache,
    path: Path,
    sha: str,
    *,
    kind: str,
    dataset: str,
    layer: str,
    progress: bool = False,
) -> tuple[str, Path, dict[str, Any]]:
    """The conversion of one file in the cache (done once per input SHA-256 and options):
    its key, folder and ``result.json``."""
    key = digest(
        {"kind": "signatures", "format": CONVERSION_FORMAT, "version": __version__,
         "sha256": sha, "file_kind": kind, "dataset": dataset, "layer": layer}
    )  # fmt: skip
    out = cache.root / "tasks" / "signatures" / key
    result = out / "result.json"
    if not result.is_file():
        raw, contexts = _open(path, kind=kind, dataset=dataset, layer=layer)  # type: ignore[arg-type]
        done = []
        taken: set[str] = set()
        dropped = 0
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_dir(out, replace=True) as tmp:
            n_contexts = raw.meta["cell_name"].nunique()
            for ctx, eff, ledger, n_dropped in track(  # one context in memory at a time
                contexts, description="signatures", enabled=progress, total=n_contexts
            ):
                stem = safe_name(ctx, taken=taken)
                write_h5ad(storage_effects(eff), tmp / f"{stem}_effects.h5ad", compress=True)
                write_ledger(ledger, tmp / f"{stem}_ledger.parquet")
                done.append({"context": ctx, "file_stem": stem, "n_contrasts": eff.n_obs})
                dropped += n_dropped
            write_ledger(raw.genes.to_frame(), tmp / "genes_ledger.parquet")
            info = {"kind": kind, "layer": layer, **_info(raw, dropped), "contexts": done}
            write_json_atomic(tmp / "result.json", info)
    return key, out, dict(json.loads(result.read_text(encoding="utf-8")))


def import_signatures(
    store: str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    kind: SignatureKind = "gctx",
    dataset: str,
    layer: str = "logFC",
    progress: bool = False,
) -> dict[str, Any]:
    """Add the signatures of ``path`` to the store at ``store`` as dataset ``dataset``.

    The store may be new or hold other datasets (built from a plan, imported from the
    release, or other signature files): those are kept unchanged. A dataset of the same
    name is replaced only when it was imported from a signature file too (an update);
    otherwise it is an error, before any work. The conversion is cached in
    ``<store>/.cache`` by the SHA-256 of the file, so importing an unchanged file again
    writes nothing. Returns the store manifest.

    Parameters
    ----------
    store
        The store folder.
    path
        The signature file.
    kind
        ``"gctx"`` (CMap level 5) or ``"signaturesearch"`` (signatureSearch HDF5).
    dataset
        The name of the new dataset.
    layer
        The Effects layer that receives the values (``logFC``, which a search reads by
        default; the others are NaN).
    progress
        Show progress bars.

    Examples
    --------
    >>> import_signatures("compendium", "level5.gctx", dataset="cmap_l5")  # doctest: +SKIP
    """
    _check_kind(kind)
    _check_layer(layer)
    if not dataset or safe_name(dataset) != dataset:
        raise ValueError(
            f"dataset must be a plain name (letters, digits, '_', '-', '.'), found {dataset!r}"
        )
    file = Path(path).absolute()
    if not file.is_file():
        raise FileNotFoundError(f"signature file not found: {file}")
    store_path = Path(store).absolute()
    why = check_store_path(store_path)
    if why is not None:
        raise PlanError([why], where="import-signatures")
    mark_store(store_path)
    cache = TaskCache(store_path / ".cache")
    with store_lock(store_path, purpose="import-signatures"), cache.lock():
        existing = read_manifest(store_path) if (store_path / "manifest.json").is_file() else None
        entries = {str(d["name"]): d for d in (existing or {}).get("datasets", [])}
        if dataset in entries and entries[dataset].get("source") != SOURCE:
            raise StoreError(
                f"the store {store_path} already has a dataset {dataset!r} (source "
                f"{entries[dataset].get('source')!r}); a dataset is never replaced by one of "
                "another origin: choose another name (--dataset)"
            )
        kept = sorted(n for n in entries if n != dataset)
        params = (existing or {}).get("parameters", {})
        layers = list(params.get("zarr_layers") or DEFAULT_ZARR_LAYERS)
        if layer not in layers:
            layers.append(layer)
        rows_per_shard = int(params.get("rows_per_shard") or 256)
        sha = cache.checksums([file])[file]
        key, out, result = _convert(
            cache, file, sha, kind=kind, dataset=dataset, layer=layer, progress=progress
        )
        effects = []
        for c in result["contexts"]:
            eff = out / f"{c['file_stem']}_effects.h5ad"
            effects.append(
                EffectsPart(
                    mode="group",
                    context=str(c["context"]),
                    file_stem=str(c["file_stem"]),
                    path=eff,
                    sha256=file_sha256(eff),
                    n_contrasts=int(c["n_contrasts"]),
                    ledger=out / f"{c['file_stem']}_ledger.parquet",
                )
            )
        others = kept_parts(store_path, cache, kept)
        build_key = digest(
            {"signatures": key, "dataset": dataset, "layers": layers,
             "rows_per_shard": rows_per_shard, "version": __version__,
             "kept": kept_digests(others)}
        )  # fmt: skip
        if store_is_current(store_path, build_key):
            return read_manifest(store_path)
        info: dict[str, Any] = {
            "source": SOURCE,
            "kind": kind,
            "layer": layer,
            "inputs": [
                {
                    "path": str(file),
                    "sha256": sha,
                    "bytes": file.stat().st_size,
                    "mode": "group",
                    "context": c["context"],
                    "file_stem": c["file_stem"],
                }
                for c in result["contexts"]
            ],
            "n_signatures": result["n_signatures"],
            "n_dropped": result["n_dropped"],
            "n_genes": result["n_genes"],
            "fields": result["fields"],
            "de_method": "none (precomputed signatures)",
        }
        part = DatasetPart(
            name=dataset,
            source=SOURCE,
            assay="L1000",
            value_kind="zscore",
            samples=None,
            samples_sha256=None,
            ledger=out / "genes_ledger.parquet",
            effects=tuple(effects),
            info=info,
        )
        return join_and_write(
            store_path, [part], others, build_key=build_key, zarr_layers=layers,
            rows_per_shard=rows_per_shard, timings={"import_signatures": str(file)},
            progress=progress,
        )  # fmt: skip

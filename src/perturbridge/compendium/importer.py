"""Import DE files of the original public release into a compendium store.

:func:`import_release` finds and converts the release files (:mod:`.release`; each
conversion cached by the SHA-256 of its inputs) and writes a store with the same layout,
catalog and arrays as a build. Datasets already in the store that this import does not
bring are kept as they are (see ``docs/compendium.md``, "Importing the original release").
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..io import file_sha256, write_h5ad
from ..progress import track
from ._common import PlanError, StoreError, digest, safe_name, write_json_atomic
from ._footprint import storage_effects
from ._lock import store_lock
from .plan import DEFAULT_ZARR_LAYERS, check_store_path
from .release import (
    ADJ_P_LAYERS,
    CONVERSION_FORMAT,
    DE_SUFFIX,
    SOURCE,
    adj_p_present,
    convert_release_effects,
    group_conditions,
    processed_counts,
    read_obs,
    scan_release,
    write_ledger,
)
from .store import (
    DatasetPart,
    EffectsPart,
    mark_store,
    read_dataset_parts,
    read_manifest,
    store_is_current,
    write_store,
)
from .tasks import TaskCache

__all__ = ["import_release", "join_and_write", "kept_digests", "kept_parts"]

logger = logging.getLogger(__name__)


def _same_import(entry: Mapping[str, Any], root: Path) -> bool:
    """Whether a manifest entry is a dataset imported from the release at ``root``."""
    if entry.get("source") != SOURCE:
        return False
    if "root" in entry:
        return bool(entry["root"] == str(root))
    paths = [Path(str(i.get("path", ""))) for i in entry.get("inputs", [])]
    return bool(paths) and all(root in p.parents for p in paths)


def _origin(entry: Mapping[str, Any]) -> str:
    if entry.get("source") == SOURCE:
        return f"imported from {entry.get('root', 'another release folder')}"
    return f"built from a plan (source {entry.get('source')!r})"


def kept_parts(store_path: Path, cache: TaskCache, kept: Sequence[str]) -> list[DatasetPart]:
    """The store's datasets ``kept`` by an import, as parts written beside its own."""
    if not kept:
        return []
    work = cache.root / "tasks" / "join"
    work.mkdir(parents=True, exist_ok=True)
    return read_dataset_parts(store_path, kept, work=work)


def kept_digests(others: Sequence[DatasetPart]) -> dict[str, list[str]]:
    """The content of the kept datasets, for an import's build key."""
    return {p.name: sorted([p.samples_sha256 or ""] + [e.sha256 for e in p.effects])
            for p in others}  # fmt: skip


def join_and_write(
    store_path: Path,
    new_parts: Sequence[DatasetPart],
    others: Sequence[DatasetPart],
    *,
    build_key: str,
    zarr_layers: Sequence[str],
    rows_per_shard: int,
    timings: Mapping[str, Any],
    progress: bool,
) -> dict[str, Any]:
    """Write an import's datasets and the kept ones as the store (under the caller's
    lock), and its ``timings.json``; returns the manifest."""
    kept = [p.name for p in others]
    if kept:
        logger.info("import into %s keeps its datasets %s", store_path, kept)
    manifest = write_store(
        store_path,
        [*new_parts, *others],
        zarr_layers=list(zarr_layers),
        rows_per_shard=rows_per_shard,
        build_key=build_key,
        progress=progress,
    )
    write_json_atomic(store_path / "timings.json", {**timings, "kept": kept})
    return manifest


def import_release(
    root: str | os.PathLike[str],
    store: str | os.PathLike[str],
    *,
    datasets: Sequence[str] | None = None,
    zarr_layers: Sequence[str] | None = None,
    rows_per_shard: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Import the release files under ``root`` into the store at ``store``.

    The store may be new, or an existing store: its datasets that this import does not
    bring are kept unchanged (a built dataset next to imported ones). A dataset of the
    import whose name is already in the store replaces it only when the store's one was
    imported from the same release folder (an update); otherwise it is an error.

    Conversions are cached in ``<store>/.cache`` by the SHA-256 of their input files,
    so importing again after adding a dataset converts only the new files; an unchanged
    import writes nothing. ``zarr_layers`` and ``rows_per_shard`` default to the
    existing store's (else the build defaults); ``adj.P.Value.across_all_contrasts``
    is consolidated too when some file has only that adjusted p-value. Returns the
    store manifest.

    Examples
    --------
    >>> import_release("release/", "compendium")  # doctest: +SKIP
    """
    root_path = Path(root).absolute()
    store_path = Path(store).absolute()
    why = check_store_path(store_path)
    if why is not None:
        raise PlanError([why], where="import")
    files, processed = scan_release(root_path, datasets)
    if not files:
        raise StoreError(
            f"no release DE files (<dataset>/group_rep|sep_rep/<cell_type>_de.h5ad, or "
            f"<dataset>/.../group_rep|separate_rep/.../*{DE_SUFFIX}) under {root}"
        )
    imported = sorted({f.dataset for f in files})
    mark_store(store_path)
    cache = TaskCache(store_path / ".cache")
    parts: dict[str, list[EffectsPart]] = {}
    inputs: dict[str, list[dict[str, Any]]] = {}
    keys: list[str] = []
    across_only = False
    # one writer per store: a build or import writing it now makes this one fail at once
    with store_lock(store_path, purpose="import-release"), cache.lock():
        # the store's datasets are read under the lock, so none written meanwhile is lost
        existing = read_manifest(store_path) if (store_path / "manifest.json").is_file() else None
        entries = {str(d["name"]): d for d in (existing or {}).get("datasets", [])}
        clash = [n for n in imported if n in entries and not _same_import(entries[n], root_path)]
        if clash:
            raise StoreError(
                "the import would replace datasets of the store: "
                + "; ".join(
                    f"{n!r} of the release {root_path} and {n!r} in {store_path} "
                    f"({_origin(entries[n])})"
                    for n in clash
                )
                + ". A dataset is never replaced by one of another origin: import into "
                "another store, or leave these datasets out (datasets= / --dataset)"
            )
        kept = sorted(n for n in entries if n not in imported)
        params = (existing or {}).get("parameters", {})
        layers = list(zarr_layers or params.get("zarr_layers") or DEFAULT_ZARR_LAYERS)
        rows_per_shard = int(rows_per_shard or params.get("rows_per_shard") or 256)
        sums = cache.checksums(
            [f.path for f in files] + [processed[d] for d in imported if d in processed]
        )
        counts = {
            d: processed_counts(processed[d]) for d in imported if d in processed
        }  # fmt: skip
        group_out: dict[tuple[str, str], Path] = {}
        group_sha = {(f.dataset, f.context): sums[f.path] for f in files if f.mode == "group"}
        ordered = sorted(files, key=lambda f: (f.dataset, f.mode != "group", f.context))
        taken: dict[str, set[str]] = {}
        for f in track(ordered, description="import", enabled=progress):
            sha = sums[f.path]
            proc = processed.get(f.dataset)
            key = digest(
                {"kind": "import", "format": CONVERSION_FORMAT, "version": __version__,
                 "sha256": sha, "dataset": f.dataset, "mode": f.mode, "context": f.context,
                 "processed": sums[proc] if proc is not None and f.mode == "group" else None,
                 "group": group_sha.get((f.dataset, f.context)) if f.mode == "separate"
                 else None}
            )  # fmt: skip
            keys.append(key)
            out_dir = cache.root / "tasks" / "import" / key
            out = out_dir / "effects.h5ad"
            ledger = out_dir / "ledger.parquet"
            if not (out.is_file() and ledger.is_file()):
                group_file = group_out.get((f.dataset, f.context))
                conv = convert_release_effects(
                    f.path,
                    dataset=f.dataset,
                    mode=f.mode,
                    context=f.context,
                    group_conditions=group_conditions(group_file) if group_file else None,
                    processed_counts=counts[f.dataset][0] if f.dataset in counts else None,
                )
                out_dir.mkdir(parents=True, exist_ok=True)
                write_ledger(conv.ledger, ledger)
                write_h5ad(storage_effects(conv.effects), out, compress=True)
            if f.mode == "group":
                group_out[(f.dataset, f.context)] = out
            obs = read_obs(out)
            uns_present = adj_p_present(out)
            across_only |= ADJ_P_LAYERS[0] not in uns_present and ADJ_P_LAYERS[1] in uns_present
            stem = safe_name(f.context, taken=taken.setdefault(f"{f.dataset}/{f.mode}", set()))
            parts.setdefault(f.dataset, []).append(
                EffectsPart(
                    mode=f.mode,
                    context=f.context,
                    file_stem=stem,
                    path=out,
                    sha256=file_sha256(out),
                    n_contrasts=len(obs),
                    ledger=ledger,
                )
            )
            inputs.setdefault(f.dataset, []).append(
                {"path": str(f.path), "sha256": sha, "mode": f.mode, "context": f.context,
                 "file_stem": stem, "adj_p_layers": uns_present}
            )  # fmt: skip
        if across_only and ADJ_P_LAYERS[1] not in layers:
            layers.append(ADJ_P_LAYERS[1])
        others = kept_parts(store_path, cache, kept)
        build_key = digest(
            {"import": sorted(keys), "layers": layers, "rows_per_shard": rows_per_shard,
             "version": __version__, "format": CONVERSION_FORMAT,
             "kept": kept_digests(others)}
        )  # fmt: skip
        if store_is_current(store_path, build_key):
            return read_manifest(store_path)
        new_parts = []
        for name in imported:
            info: dict[str, Any] = {
                "source": SOURCE,
                "root": str(root_path),
                "inputs": inputs[name],
            }
            if name in processed:
                n_treated, n_samples, n_controls = counts[name]
                info["processed"] = {
                    "path": str(processed[name]),
                    "sha256": sums[processed[name]],
                    "n_samples": n_samples,
                    "n_control_samples": n_controls,
                    "n_conditions": len(n_treated),
                }
                info["n_samples"] = n_samples
            new_parts.append(
                DatasetPart(
                    name=name,
                    source=SOURCE,
                    assay="",
                    value_kind="logFC",
                    samples=None,
                    samples_sha256=None,
                    ledger=None,
                    effects=tuple(parts[name]),
                    info=info,
                )
            )
        return join_and_write(
            store_path, new_parts, others, build_key=build_key, zarr_layers=layers,
            rows_per_shard=rows_per_shard, timings={"import": str(root_path)},
            progress=progress,
        )  # fmt: skip

"""``prune``: remove the task cache entries that the store's current build no longer uses.

Every build writes its task outputs to the cache (``CACHE/tasks/<kind>/<key>/``) and
never removes any, so a plan changed and built again leaves the outputs of the old
plan behind. The store holds its own copy of every file it serves (it never shares a
file with the cache), so a cache entry is needed only to skip work in a later build:
an entry is **kept** when the store's manifest names its task key (ingest and DE tasks
of the plan that wrote the store), or, for imports (``import``, ``signatures``), when
the store holds a file with the SHA-256 of one of its files. Everything else is
**removed**: entries of earlier plans, temporary folders of interrupted tasks, and the
work files of finished store updates (``tasks/join``).

Dry-run by default: :func:`prune` reports what it would remove. With
``dry_run=False`` it takes the store's and the cache's locks (a build or import running
meanwhile makes it fail at once, before removing anything) and removes each entry by
renaming it out of the cache's sight first (``.tmp-prune-…``), then deleting it: killed
at any point, every entry is either whole in the cache or gone from it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import LockError
from ..io import file_sha256
from ._common import BuildError, StoreError
from ._lock import store_lock
from .store import read_manifest
from .tasks import TaskCache

__all__ = ["PruneReport", "prune"]

#: Task kinds whose keys a store's manifest records (``datasets[].tasks``).
_KEYED_KINDS = ("ingest", "de")
#: Task kinds of imports: kept when the store holds one of their files (by SHA-256).
_CONTENT_KINDS = ("import", "signatures")
#: Work folder of store updates that join kept datasets (ledger files read once).
_WORK_KINDS = ("join",)


@dataclass(frozen=True)
class PruneReport:
    """What :func:`prune` removed (or, in a dry run, would remove).

    ``entries``: one row per removed path (``path``, ``bytes``, ``reason``), in path
    order; ``bytes_freed``: their total size; ``dry_run``: nothing was removed.
    """

    entries: pd.DataFrame
    bytes_freed: int
    dry_run: bool

    def __str__(self) -> str:
        verb = "would free" if self.dry_run else "freed"
        return f"{len(self.entries)} cache entries, {verb} {self.bytes_freed:,} bytes"


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _manifest_keys(manifest: Mapping[str, Any]) -> set[tuple[str, str]]:
    """``(kind, key)`` of every task the manifest names."""
    out: set[tuple[str, str]] = set()
    for ds in manifest.get("datasets", []):
        tasks = ds.get("tasks") if isinstance(ds, Mapping) else None
        if not isinstance(tasks, Mapping):
            continue
        for kind, value in tasks.items():
            if isinstance(value, str):
                out.add((str(kind), value))
            elif isinstance(value, Mapping):
                out.update((str(kind), str(v)) for v in value.values())
            elif isinstance(value, list):
                out.update((str(kind), str(v)) for v in value)
    return out


def _store_shas(manifest: Mapping[str, Any]) -> set[str]:
    """SHA-256 of the store's files and of the complete files they were written from
    (a store file keeps only part of an Effects file: ``source_sha256``)."""
    out: set[str] = set()
    for rec in manifest.get("files", {}).values():
        out.update(str(rec[k]) for k in ("sha256", "source_sha256") if k in rec)
    return out


def _candidates(cache: TaskCache, manifest: Mapping[str, Any]) -> Iterator[tuple[Path, str]]:
    """``(path, reason)`` of every cache entry the store does not use."""
    tasks = cache.root / "tasks"
    if not tasks.is_dir():
        return
    keys = _manifest_keys(manifest)
    shas: set[str] | None = None
    for kind_dir in sorted(p for p in tasks.iterdir() if p.is_dir()):
        kind = kind_dir.name
        for entry in sorted(kind_dir.iterdir()):
            if entry.name.startswith(".") and ".tmp-" in entry.name:
                yield entry, "interrupted task (temporary folder)"
            elif kind in _WORK_KINDS:
                yield entry, "work file of a finished store update"
            elif not entry.is_dir():
                continue  # not a task folder: left alone
            elif kind in _KEYED_KINDS:
                if (kind, entry.name) not in keys:
                    yield entry, f"{kind} task not used by the store's build"
            elif kind in _CONTENT_KINDS:
                if shas is None:
                    shas = _store_shas(manifest)
                files = sorted(entry.rglob("*.h5ad"))
                if not any(file_sha256(f) in shas for f in files):
                    yield entry, f"{kind} conversion not used by the store"
            # other kinds (a newer perturbridge's): left alone


@contextlib.contextmanager
def _locked(store: Path, cache: TaskCache) -> Iterator[None]:
    try:
        with store_lock(store, purpose="prune"), cache.lock():
            yield
    except (LockError, BuildError) as err:  # the cache's lock says BuildError
        raise StoreError(f"cannot prune {store} now: {err}") from err


def _remove(path: Path) -> None:
    """Rename ``path`` out of the cache's sight, then delete it."""
    hidden = path.with_name(f".tmp-prune-{uuid.uuid4().hex}")
    os.rename(path, hidden)
    if hidden.is_dir():
        shutil.rmtree(hidden)
    else:
        hidden.unlink()


def prune(
    store: str | os.PathLike[str],
    *,
    dry_run: bool = True,
    cache: str | os.PathLike[str] | None = None,
) -> PruneReport:
    """Remove the task cache entries the store's current build does not use.

    Parameters
    ----------
    store
        A compendium store (its manifest says which task outputs its build used).
    dry_run
        Only report what would be removed (the default).
    cache
        The task cache (default ``STORE/.cache``, where a plan puts it unless its
        ``[store] cache`` says otherwise). A cache shared by several stores is pruned
        against this store alone: do not prune a shared cache.

    Returns
    -------
    PruneReport
        The removed entries (paths relative to the cache) and the bytes freed.

    Raises
    ------
    StoreError
        ``store`` is not a complete store (no manifest: an interrupted build or
        update, finish or repair it first), or a build, import or repair holds the
        store or the cache (with ``dry_run=False``).
    """
    root = Path(store).absolute()
    manifest = read_manifest(root)  # a complete store, or StoreError saying what is wrong
    task_cache = TaskCache(Path(cache) if cache is not None else root / ".cache")
    rows: list[dict[str, Any]] = []
    held = contextlib.nullcontext() if dry_run else _locked(root, task_cache)
    with held:
        if not dry_run:
            manifest = read_manifest(root)  # again, under the locks
        for path, reason in list(_candidates(task_cache, manifest)):
            nbytes = _size(path)
            if not dry_run:
                _remove(path)
            rows.append(
                {
                    "path": path.relative_to(task_cache.root).as_posix(),
                    "bytes": nbytes,
                    "reason": reason,
                }
            )
    entries = pd.DataFrame(rows, columns=["path", "bytes", "reason"]).astype({"bytes": "int64"})
    return PruneReport(entries=entries, bytes_freed=int(entries["bytes"].sum()), dry_run=dry_run)

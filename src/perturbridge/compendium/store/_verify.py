"""Checking a store against its manifest, and repairing what can be repaired without a build."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...io import file_sha256
from ...progress import track
from .._common import StoreError, write_json_atomic
from ._effects import StoreEffects, store_file_layers, write_store_file
from ._layout import (
    CATALOG_TABLES,
    MANAGED_DIRS,
    NEEDS_REBUILD,
    REPAIR_HINT,
    StoreLayout,
    complete_updates,
    prepared_updates,
    read_manifest,
    temporaries,
)
from ._transaction import commit, copy_verified

__all__ = [
    "RepairReport",
    "StoreProblem",
    "changed_files",
    "check_file",
    "check_store",
    "repair_store",
    "store_digest",
    "verify_store",
]


@dataclass(frozen=True)
class StoreProblem:
    """One file of a store that is not what its manifest says."""

    path: str  # relative to the store
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def _records(manifest: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every file the manifest covers: relative path → ``{bytes, sha256, ...}``."""
    out = {str(k): dict(v) for k, v in manifest.get("files", {}).items()}
    out.update({str(k): dict(v) for k, v in manifest.get("zarr", {}).get("files", {}).items()})
    return out


def check_file(root: Path, rel: str, rec: Mapping[str, Any]) -> tuple[str | None, Any]:
    """``(problem or None, identity)`` of one file against its manifest record."""
    path = root / rel
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return "missing", None
    try:
        st = os.fstat(fd)
        ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if st.st_size != int(rec["bytes"]):
            return f"{st.st_size} bytes, the manifest says {rec['bytes']}", ident
        if "sha256" in rec:
            h = hashlib.sha256()
            while block := os.read(fd, 1 << 20):
                h.update(block)
            if h.hexdigest() != rec["sha256"]:
                return (
                    f"SHA-256 {h.hexdigest()[:16]}…, the manifest says {str(rec['sha256'])[:16]}…"
                ), ident
        return None, ident
    finally:
        os.close(fd)


def check_store(root: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Check the files a reader relies on first; returns their identities.

    The catalog tables and the Zarr metadata (``zarr.json``) must match the manifest
    (size and SHA-256), else :class:`StoreError` names the file, what differs and what
    to run. Shards and Effects files are checked when they are read. The identities
    (device, inode, size, modification time) let a reader notice later that the store
    was updated while it was open.
    """
    records = _records(manifest)
    wanted = [r for r in records if r.startswith("catalog/") or r.endswith("zarr.json")]
    if not any(r.startswith("catalog/") for r in records):  # stores of early versions
        wanted = [f"catalog/{t}.parquet" for t in CATALOG_TABLES]
        missing = [r for r in wanted if not (root / r).is_file()]
        if missing:
            raise StoreError(f"{root}: catalog tables missing: {missing}; rebuild the store")
        return {r: _identity(root / r) for r in wanted}
    identities: dict[str, Any] = {}
    for rel in sorted(wanted):
        problem, ident = check_file(root, rel, records[rel])
        if problem is not None:
            raise StoreError(
                f"{root}: {rel} does not match the store's manifest ({problem}): the store "
                f"is damaged or caught in an interrupted update; {REPAIR_HINT}"
            )
        identities[rel] = ident
    return identities


def _identity(path: Path) -> Any:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def changed_files(root: Path, identities: Mapping[str, Any]) -> list[str]:
    """Files of ``identities`` (from :func:`check_store`) that are no longer the same."""
    return [rel for rel, ident in identities.items() if _identity(root / rel) != ident]


def verify_store(path: str | os.PathLike[str], *, progress: bool = False) -> list[StoreProblem]:
    """Check every file of a store against its manifest; returns the problems found.

    Every file the manifest covers is read and its SHA-256 compared (this reads the
    whole store); files in the managed folders that the manifest does not name, and
    prepared updates left by an interrupted update, are problems too.
    """
    root = Path(path).absolute()
    problems = [
        StoreProblem(p.name, "an interrupted update (prepared beside the store)")
        for p in prepared_updates(root)
    ]
    try:
        manifest = read_manifest(root)
    except StoreError as err:
        return [*problems, StoreProblem("manifest.json", str(err))]
    records = _records(manifest)
    if not manifest.get("zarr", {}).get("files") and manifest.get("zarr", {}).get("paths"):
        problems.append(
            StoreProblem(
                "zarr",
                "the manifest has no checksums of the Zarr files (a store of an earlier "
                "version); run the build again to add them",
            )
        )
    for rel in track(sorted(records), description="verify", enabled=progress):
        problem, _ = check_file(root, rel, records[rel])
        if problem is not None:
            problems.append(StoreProblem(rel, problem))
    for d in MANAGED_DIRS:
        base = root / d
        if not base.is_dir():
            continue
        for p in sorted(q for q in base.rglob("*") if q.is_file()):
            rel = p.relative_to(root).as_posix()
            if rel not in records and (d != "zarr" or manifest.get("zarr", {}).get("files")):
                problems.append(StoreProblem(rel, "not named by the manifest"))
    return problems


@dataclass
class RepairReport:
    """What :func:`repair_store` did and what is left."""

    actions: list[str] = field(default_factory=list)
    needs_rebuild: list[StoreProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.needs_rebuild


def repair_store(
    path: str | os.PathLike[str],
    *,
    cache: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> RepairReport:
    """Bring a store back to a consistent state where that is possible without a build.

    - An update interrupted while it was committed is finished (its prepared files are
      complete); any other prepared update and temporary files are removed.
    - Damaged or missing Samples and Effects files are restored from the task cache
      (``cache``, default ``STORE/.cache``) when a cached file has the SHA-256 the
      manifest records.
    - Everything else that does not match the manifest (catalog, Zarr shards, files
      with no good copy) needs a rebuild: it is listed, and ``STORE/.needs-rebuild``
      makes the next build rewrite the store even if its plan did not change.
    """
    root = Path(path).absolute()
    report = RepairReport()
    if not root.is_dir():
        raise StoreError(f"{root}: no such folder")
    complete = complete_updates(root)
    if not (root / "manifest.json").is_file() and len(complete) == 1:
        commit(StoreLayout(root), StoreLayout(complete[0]))
        report.actions.append(f"finished the interrupted update {complete[0].name}")
    for p in prepared_updates(root):
        shutil.rmtree(p)
        report.actions.append(f"removed the unfinished update {p.name}")
    for p in temporaries(root):
        p.unlink()
        report.actions.append(f"removed the temporary file {p.relative_to(root).as_posix()}")
    problems = verify_store(root, progress=progress)
    if any(p.path == "manifest.json" for p in problems):
        report.needs_rebuild = problems
        return report
    manifest = read_manifest(root)
    records = _records(manifest)
    cache_dir = Path(cache) if cache is not None else root / ".cache"
    left: list[StoreProblem] = []
    for prob in problems:
        rec = records.get(prob.path)
        if rec is not None and prob.path.startswith(("effects/", "samples/")):
            good = _cached_copy(cache_dir, rec)
            if good is not None and _restore(good, root / prob.path, rec, manifest):
                report.actions.append(f"restored {prob.path} from {good}")
                continue
        if rec is None and prob.problem == "not named by the manifest":
            (root / prob.path).unlink()
            report.actions.append(f"removed {prob.path} (not named by the manifest)")
            continue
        left.append(prob)
    report.needs_rebuild = left
    marker = root / NEEDS_REBUILD
    if left:
        write_json_atomic(marker, {"files": [str(p) for p in left]})
    elif marker.exists():
        marker.unlink()
    return report


def _cached_copy(cache: Path, rec: Mapping[str, Any]) -> Path | None:
    """A file of the task cache that a store file (manifest record ``rec``) is restored
    from, if there is one: the same file (size and SHA-256 of ``rec``), or the complete
    Effects file it was written from (``rec["source_sha256"]``)."""
    tasks = cache / "tasks"
    if not tasks.is_dir():
        return None
    source = rec.get("source_sha256")
    for p in sorted(tasks.rglob("*.h5ad")):
        try:
            size = p.stat().st_size
            if size == int(rec["bytes"]) and file_sha256(p) == rec["sha256"]:
                return p
            if source is not None and file_sha256(p) == source:
                return p
        except OSError:
            continue
    return None


def _restore(good: Path, dst: Path, rec: Mapping[str, Any], manifest: Mapping[str, Any]) -> bool:
    """Restore the store file ``dst`` from the cache file ``good`` (a copy of it, or the
    complete file it was written from: its store form is written again, which gives the
    same bytes); ``False`` when the result does not have the manifest's SHA-256."""
    sha = str(rec["sha256"])
    if file_sha256(good) == sha:
        copy_verified(good, dst, sha)
        return True
    zarr_layers = manifest.get("parameters", {}).get("zarr_layers", [])
    src = StoreEffects(good)
    keep, in_arrays, derived = store_file_layers(src, zarr_layers)
    tmp = dst.with_name(f".{dst.name}.tmp-restore")
    write_store_file(
        src,
        tmp,
        keep=keep,
        in_arrays=in_arrays,
        derived=derived,
        source_sha256=str(rec.get("source_sha256", "")),
    )
    if file_sha256(tmp) != sha:
        tmp.unlink()
        return False
    os.replace(tmp, dst)
    return True


def store_digest(root: str | os.PathLike[str], *, exclude: Sequence[str] = ()) -> str:
    """One SHA-256 over every file of a store except the task cache and ``timings.json``.

    Two builds of the same plan give the same digest, whatever the executor and however
    often they were interrupted.
    """
    root = Path(root)
    skip = {".cache", "timings.json", *exclude}
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        rel = p.relative_to(root).as_posix()
        if rel.split("/")[0] in skip:
            continue
        h.update(f"{rel}\0{file_sha256(p)}\n".encode())
    return h.hexdigest()

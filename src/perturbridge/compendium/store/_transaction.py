"""Writing a store: an update prepared beside it, committed by renames, manifest last.

The new state is prepared in ``STORE/.update-<id>/`` (same file system); its manifest is
written when everything else in it is complete. The commit removes the old manifest,
swaps the managed folders for the prepared ones (catalog first) and moves the new
manifest into place last. The whole update is done under the store lock
(:mod:`perturbridge.compendium._lock`), taken by the caller.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import uuid
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from ..._version import __version__
from ...io import atomic_file, file_sha256, read_element
from ...io._atomic import file_mode
from .._common import (
    STORE_FORMAT,
    STORE_FORMAT_VERSION,
    STORE_MARKER,
    StoreError,
    write_json_atomic,
)
from ._arrays import write_zarr
from ._catalog import EffectsFile, catalog_tables, read_frame, write_parquet
from ._effects import STORE_LAYERS, StoreEffects, StoreFiles, store_file_layers, write_store_file
from ._layout import (
    CATALOG_TABLES,
    MANAGED_DIRS,
    NEEDS_REBUILD,
    UPDATE_PREFIX,
    DatasetPart,
    EffectsPart,
    StoreLayout,
    complete_updates,
    prepared_updates,
    temporaries,
)

__all__ = ["commit", "copy_verified", "mark_store", "write_store"]

logger = logging.getLogger(__name__)


def _checkpoint(step: str) -> None:
    """A named point of a store update (tests stop the process here to simulate a kill)."""


def mark_store(path: Path) -> None:
    """Create the store folder and its marker file (before anything else is written).

    An update whose commit was interrupted (no ``manifest.json``, a complete prepared
    update beside it) is finished first, so that whatever reads the store next sees
    one consistent state.
    """
    path.mkdir(parents=True, exist_ok=True)
    marker = path / STORE_MARKER
    if not marker.is_file():
        write_json_atomic(marker, {"format": STORE_FORMAT, "format_version": STORE_FORMAT_VERSION})
    if not (path / "manifest.json").is_file():
        prepared = complete_updates(path)
        if len(prepared) == 1:
            logger.warning("%s: finishing an interrupted store update", path)
            commit(StoreLayout(path.absolute()), StoreLayout(prepared[0]))


def copy_verified(src: Path, dst: Path, sha256: str) -> None:
    """Copy ``src`` to ``dst`` atomically, checking the SHA-256 of the bytes copied."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    with atomic_file(dst) as tmp, open(src, "rb") as fin, open(tmp, "wb") as fout:
        while block := fin.read(4 << 20):
            h.update(block)
            fout.write(block)
        if h.hexdigest() != sha256:
            raise StoreError(
                f"{src}: SHA-256 {h.hexdigest()[:16]}…, expected {sha256[:16]}… (the file "
                "changed after it was written: a damaged task cache entry; delete its task "
                "folder and run the build again)"
            )


def _place(src: Path, dst: Path, *, sha256: str, current: Path) -> None:
    """Put the file ``src`` (SHA-256 ``sha256``) at ``dst`` in a prepared update.

    The store holds its own copy of every file, never a hard link to the task cache
    (a damaged byte would damage both). ``current`` is the same file in the store as it
    is now: when it is the store's alone (one link) and has the right SHA-256, it is
    linked into the update (no copy; the old name goes away at the commit); otherwise
    ``src`` is copied, its SHA-256 checked on the way.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        st = current.stat()
    except FileNotFoundError:
        st = None
    if st is not None and st.st_nlink == 1 and file_sha256(current) == sha256:
        os.link(current, dst)
        os.chmod(dst, file_mode())
        return
    copy_verified(src, dst, sha256)


class _Current:
    """The store as it is before an update (its files, read when first needed)."""

    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout
        self._files: StoreFiles | None = None
        self._tried = False

    def get(self) -> StoreFiles | None:
        if not self._tried:
            self._tried = True
            if self.layout.manifest.is_file():
                self._files = StoreFiles(self.layout.root)
        return self._files


def _source(layout: StoreLayout, path: Path, current: StoreFiles | None) -> StoreEffects:
    """The complete Effects of a part's file: a file of the store as it is now (a kept
    dataset: joined with its rows of the current arrays) or a complete file."""
    p = Path(path).absolute()
    if p.is_relative_to(layout.root / "effects"):
        if current is None:
            raise StoreError(f"{p}: a file of the store, but the store has no manifest")
        return current.open(layout.rel(p))
    return StoreEffects(p)


def _place_effects(
    src: StoreEffects,
    ep: EffectsPart,
    dst: Path,
    zarr_layers: Sequence[str],
    *,
    layout: StoreLayout,
    current: _Current,
) -> str:
    """Put the store's form of an Effects file at ``dst``; returns its SHA-256.

    The store's form keeps the layers that are neither in the arrays (``zarr_layers``)
    nor derived (:func:`store_file_layers`). A file of the store that already has that
    form, or one written from the same source file (``uns["store_layers"]`` names its
    SHA-256), is linked when the store holds it alone and it matches the manifest;
    otherwise the form is written anew (the same source gives the same bytes).
    """
    keep, in_arrays, derived = store_file_layers(src, zarr_layers)
    cur = layout.root / Path(*dst.parts[-4:])  # effects/<dataset>/<mode>/<file>
    files = current.get()
    source_sha = src.source_sha256 or ep.sha256
    if files is not None:
        rec = files.manifest.get("files", {}).get(layout.rel(cur))
        if rec is not None and cur.is_file() and _same_form(cur, source_sha, keep, derived):
            try:
                st = cur.stat()
                if st.st_nlink == 1 and file_sha256(cur) == rec["sha256"]:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.link(cur, dst)
                    os.chmod(dst, file_mode())
                    return str(rec["sha256"])
            except FileNotFoundError:
                pass
    dst.parent.mkdir(parents=True, exist_ok=True)
    write_store_file(
        src, dst, keep=keep, in_arrays=in_arrays, derived=derived, source_sha256=source_sha
    )
    return file_sha256(dst)


def _same_form(path: Path, source_sha: str, keep: Sequence[str], derived: Sequence[str]) -> bool:
    """Whether the store file ``path`` is the store's form of the source ``source_sha``
    with these layers."""
    import h5py

    with h5py.File(path, "r") as f:
        layers = sorted(f["layers"]) if "layers" in f else []
        uns = f.get("uns")
        listed = read_element(uns[STORE_LAYERS]) if uns is not None and STORE_LAYERS in uns else {}
    return (
        str(listed.get("source_sha256", "")) == source_sha
        and layers == sorted(keep)
        and sorted(str(v) for v in listed.get("derived", [])) == sorted(derived)
    )


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. a platform without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def commit(layout: StoreLayout, prepared: StoreLayout) -> None:
    """Replace the store's managed folders and manifest by a complete prepared update.

    The old manifest goes first (a reader now gets "unfinished store"), then each
    managed folder is swapped for the prepared one (the catalog first), then the new
    manifest is moved into place: the one step that makes the new state the store's.
    Run again after an interruption, it finishes the swap (each step is a rename that
    is done or not).
    """
    root = layout.root
    old = prepared.root / ".old"
    old.mkdir(exist_ok=True)
    layout.manifest.unlink(missing_ok=True)
    _fsync_dir(root)
    _checkpoint("commit_manifest_removed")
    for d in MANAGED_DIRS:
        new = prepared.root / d
        if not new.is_dir():
            continue  # already moved in (a resumed commit)
        cur = root / d
        if cur.exists():
            if (old / d).exists():
                shutil.rmtree(old / d)
            os.rename(cur, old / d)
        os.rename(new, cur)
        _checkpoint(f"commit_{d}")
    (root / NEEDS_REBUILD).unlink(missing_ok=True)
    os.replace(prepared.manifest, layout.manifest)
    _fsync_dir(root)
    _checkpoint("committed")
    shutil.rmtree(prepared.root)
    for p in temporaries(root):
        p.unlink()


def write_store(
    root: str | os.PathLike[str],
    parts: Sequence[DatasetPart],
    *,
    zarr_layers: Sequence[str],
    rows_per_shard: int,
    build_key: str,
    manifest_extra: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Write (or rewrite) a store from finished datasets; returns the manifest.

    The new state is prepared beside the store (``STORE/.update-<id>/``): copies of
    the Samples and Effects files (the store never shares a file with the task cache),
    the catalog and the consolidated arrays derived from them, and last the manifest,
    which names the size and SHA-256 of every file. It is then committed by renames
    (see :func:`commit`), the manifest last. Killed at any point, the store is either
    the old one, the new one, or has no manifest (an interrupted commit, which the
    next build or ``perturbridge repair`` finishes); a failure while preparing (a full
    disk) leaves the old store as it was.
    """
    layout = StoreLayout(Path(root).absolute())
    mark_store(layout.root)
    for p in prepared_updates(layout.root):  # an update that never reached its commit
        shutil.rmtree(p)
    prepared = StoreLayout(layout.root / f"{UPDATE_PREFIX}{uuid.uuid4().hex}")
    prepared.root.mkdir()
    try:
        manifest = _prepare(
            layout,
            prepared,
            parts,
            zarr_layers=zarr_layers,
            rows_per_shard=rows_per_shard,
            build_key=build_key,
            manifest_extra=manifest_extra,
            progress=progress,
        )
    except BaseException:
        shutil.rmtree(prepared.root, ignore_errors=True)
        raise
    commit(layout, prepared)
    return manifest


def _prepare(
    layout: StoreLayout,
    prepared: StoreLayout,
    parts: Sequence[DatasetPart],
    *,
    zarr_layers: Sequence[str],
    rows_per_shard: int,
    build_key: str,
    manifest_extra: Mapping[str, Any] | None,
    progress: bool,
) -> dict[str, Any]:
    """Write the whole new state of the store into ``prepared``; returns its manifest."""
    for d in MANAGED_DIRS:
        (prepared.root / d).mkdir()
    parts = sorted(parts, key=lambda p: p.name)
    files_meta: dict[str, dict[str, Any]] = {}
    effects_files: list[EffectsFile] = []
    sources: dict[str, StoreEffects] = {}
    current = _Current(layout)
    samples_var: dict[str, pd.DataFrame] = {}
    for part in parts:
        if part.samples is not None:
            dst = prepared.samples(part.name)
            rel = prepared.rel(dst)
            sha = part.samples_sha256 or file_sha256(part.samples)
            _place(part.samples, dst, sha256=sha, current=layout.root / rel)
            files_meta[rel] = {"sha256": sha, "bytes": dst.stat().st_size}
            samples_var[part.name] = read_frame(dst, "var")
        for ep in sorted(part.effects, key=lambda e: (e.mode, e.file_stem)):
            if ep.n_contrasts == 0:
                continue
            dst = prepared.effects(part.name, ep.mode, ep.file_stem)
            rel = prepared.rel(dst)
            src = _source(layout, ep.path, current.get())
            sha = _place_effects(src, ep, dst, zarr_layers, layout=layout, current=current)
            files_meta[rel] = {
                "sha256": sha,
                "bytes": dst.stat().st_size,
                # the complete file it was written from (the task cache's; see prune)
                "source_sha256": src.source_sha256 or ep.sha256,
            }
            sources[rel] = src
            effects_files.append(EffectsFile(part.name, ep, rel, src.obs, src.var))
    _checkpoint("files_placed")
    # zarr rows: per mode, dataset then context order
    effects_files.sort(key=lambda ef: (ef.part.mode, ef.dataset, ef.part.file_stem))
    tables = catalog_tables(parts, effects_files, samples_var=samples_var, layout=prepared)
    contrasts, conditions = tables["contrasts"], tables["conditions"]
    genes, samples = tables["genes"], tables["samples"]
    for name in CATALOG_TABLES:
        path = prepared.catalog(name)
        write_parquet(tables[name], path)
        files_meta[prepared.rel(path)] = {
            "sha256": file_sha256(path),
            "bytes": path.stat().st_size,
        }
    _checkpoint("catalog_written")
    gene_pos = pd.Series(genes["zarr_col"].to_numpy(), index=genes["gene_id"].to_numpy())
    zarr_meta: dict[str, Any] = {"paths": [], "arrays": {}, "files": {}}
    zarr_files: dict[str, dict[str, Any]] = {}
    for mode in sorted({ef.part.mode for ef in effects_files}):
        dest = prepared.zarr(mode)
        summary = write_zarr(
            dest,
            [(ef, sources[ef.rel]) for ef in effects_files if ef.part.mode == mode],
            gene_pos,
            mode=mode,
            layers=zarr_layers,
            rows_per_shard=rows_per_shard,
            progress=progress,
            checkpoint=_checkpoint,
        )
        rel = prepared.rel(dest)
        for sub, rec in summary.pop("file_records").items():
            zarr_files[f"{rel}/{sub}"] = rec
        zarr_meta["paths"].append(rel)
        zarr_meta["arrays"][rel] = summary
    zarr_meta["files"] = dict(sorted(zarr_files.items()))
    _checkpoint("zarr_written")
    manifest: dict[str, Any] = {
        "format": STORE_FORMAT,
        "format_version": STORE_FORMAT_VERSION,
        "build_key": build_key,
        "versions": _versions(),
        "parameters": {"zarr_layers": list(zarr_layers), "rows_per_shard": rows_per_shard},
        "datasets": [dict(part.info, name=part.name) for part in parts],
        "counts": {
            "datasets": len(parts),
            "samples": len(samples),
            "conditions": len(conditions),
            "contrasts": {
                m: int((contrasts["mode"] == m).sum()) for m in sorted(set(contrasts["mode"]))
            },
            "genes": len(genes),
            "compounds": len(tables["compounds"]),
            "contexts": len(tables["contexts"]),
        },
        "files": dict(sorted(files_meta.items())),
        "zarr": zarr_meta,
        "timings": "timings.json (wall times; not part of the reproducible store)",
    }
    manifest.update(manifest_extra or {})
    # the prepared update is complete once its manifest exists
    write_json_atomic(prepared.manifest, manifest)
    _checkpoint("prepared")
    return manifest


def _versions() -> dict[str, str]:
    out = {"perturbridge": __version__, "python": platform.python_version()}
    for pkg in ("numpy", "scipy", "pandas", "anndata", "h5py", "zarr", "numcodecs", "pyarrow"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:  # pragma: no cover
            out[pkg] = "not installed"
    return out

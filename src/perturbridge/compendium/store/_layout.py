"""Paths, parts and manifest of a store: what every other store module builds on."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..._version import __version__
from .._common import STORE_FORMAT, STORE_FORMAT_VERSION, STORE_MARKER, StoreError

__all__ = [
    "CATALOG_TABLES",
    "MANAGED_DIRS",
    "NEEDS_REBUILD",
    "REPAIR_HINT",
    "UPDATE_PREFIX",
    "DatasetPart",
    "EffectsPart",
    "StoreLayout",
    "complete_updates",
    "prepared_updates",
    "read_manifest",
    "store_is_current",
    "temporaries",
]

#: The catalog tables (``STORE/catalog/<name>.parquet``).
CATALOG_TABLES: tuple[str, ...] = (
    "datasets",
    "samples",
    "conditions",
    "contrasts",
    "genes",
    "compounds",
    "contexts",
    "ledger",
    "fits",
    "quality_weights",
)
#: Folders replaced as a whole by an update, in the order of the commit: the catalog
#: first, so that a reader who checks the catalog after reading (``Compendium.effects``)
#: sees any commit that began before its read ended.
MANAGED_DIRS = ("catalog", "samples", "effects", "zarr")
#: A prepared update beside the store: ``STORE/.update-<id>/`` (its ``manifest.json``
#: is written when everything else in it is complete).
UPDATE_PREFIX = ".update-"
#: Written by :func:`repair_store` when files need a rebuild; removed by the next commit.
NEEDS_REBUILD = ".needs-rebuild"
REPAIR_HINT = "run `perturbridge repair STORE`, then the build (or import) that wrote it"


@dataclass(frozen=True)
class StoreLayout:
    """Paths inside a store."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def timings(self) -> Path:
        return self.root / "timings.json"

    def samples(self, dataset: str) -> Path:
        return self.root / "samples" / f"{dataset}.h5ad"

    def effects(self, dataset: str, mode: str, file_stem: str) -> Path:
        return self.root / "effects" / dataset / mode / f"{file_stem}_de.h5ad"

    def zarr(self, mode: str) -> Path:
        return self.root / "zarr" / f"{mode}.zarr"

    def catalog(self, table: str) -> Path:
        return self.root / "catalog" / f"{table}.parquet"

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


@dataclass(frozen=True)
class EffectsPart:
    """One Effects file (dataset × mode × context) ready to go into the store."""

    mode: str
    context: str
    file_stem: str
    path: Path
    sha256: str
    n_contrasts: int
    ledger: Path | None = None


@dataclass(frozen=True)
class DatasetPart:
    """One dataset ready to go into the store: its Samples, Effects and ledgers.

    ``info`` is the dataset's provenance entry of the manifest (source, inputs and
    checksums, options, DE settings, task keys).
    """

    name: str
    source: str
    assay: str
    value_kind: str
    samples: Path | None
    samples_sha256: str | None
    ledger: Path | None
    effects: tuple[EffectsPart, ...]
    info: Mapping[str, Any] = field(default_factory=dict)


def prepared_updates(root: Path) -> list[Path]:
    """Prepared updates beside the store (complete or not)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith(UPDATE_PREFIX) and p.is_dir())


def complete_updates(root: Path) -> list[Path]:
    return [p for p in prepared_updates(root) if (p / "manifest.json").is_file()]


def temporaries(root: Path) -> list[Path]:
    """Temporary files of interrupted atomic writes in the store (not in its cache)."""
    out = [p for p in root.iterdir() if p.is_file() and p.name.startswith(".")
           and (p.name.endswith(".part") or ".tmp-" in p.name)]  # fmt: skip
    for d in MANAGED_DIRS:
        if (root / d).is_dir():
            out += [p for p in (root / d).rglob(".*") if p.is_file()
                    and (p.name.endswith(".part") or ".tmp-" in p.name)]  # fmt: skip
    return sorted(out)


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``manifest.json`` of a store, or :class:`StoreError` saying what is wrong."""
    root = Path(path)
    manifest = root / "manifest.json"
    if not manifest.is_file():
        if (root / STORE_MARKER).is_file():
            raise StoreError(
                f"{root} is an unfinished perturbridge store (no manifest.json): a build "
                "or an update was interrupted; run the build again to finish it (or "
                f"`perturbridge repair {root}`)"
            )
        raise StoreError(f"{root} is not a perturbridge compendium store (no manifest.json)")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except ValueError as err:
        raise StoreError(f"{manifest}: not valid JSON: {err}") from err
    if data.get("format") != STORE_FORMAT:
        raise StoreError(f"{manifest}: format is {data.get('format')!r}, expected {STORE_FORMAT!r}")
    if int(data.get("format_version", 0)) > STORE_FORMAT_VERSION:
        raise StoreError(
            f"{manifest}: store format version {data['format_version']} is newer than this "
            f"perturbridge ({__version__}) reads ({STORE_FORMAT_VERSION}); upgrade perturbridge"
        )
    return dict(data)


def store_is_current(path: Path, build_key: str) -> bool:
    """True when the store was written by a build with ``build_key`` and is complete."""
    try:
        manifest = read_manifest(path)
    except StoreError:
        return False
    if manifest.get("build_key") != build_key:
        return False
    if prepared_updates(path) or (path / NEEDS_REBUILD).exists():
        return False  # an interrupted update to clean up, or files that need a rebuild
    records = dict(manifest.get("files", {}))
    records.update(manifest.get("zarr", {}).get("files", {}))
    for rel, rec in records.items():
        p = path / rel
        if not p.is_file() or p.stat().st_size != rec["bytes"]:
            return False
    return all((path / rel).is_dir() for rel in manifest.get("zarr", {}).get("paths", []))

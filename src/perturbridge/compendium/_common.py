"""Helpers shared by the compendium modules: errors, canonical hashing, file names."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import PerturbridgeError
from ..io import atomic_file

__all__ = [
    "IMPORTED_SOURCES",
    "STORE_FORMAT",
    "STORE_FORMAT_VERSION",
    "STORE_MARKER",
    "BuildError",
    "PlanError",
    "StoreError",
    "canonical_json",
    "digest",
    "safe_name",
    "strip_times",
    "write_json_atomic",
]

#: The ``format`` of a store's ``manifest.json`` and marker file.
STORE_FORMAT = "perturbridge-compendium"
#: 2: float32 compressed Effects files without ``X``, Blosc-zstd arrays, p-value arrays as
#: ``-log10(p)`` (see ``_footprint``); version 1 stores are read as they are.
#: 3: each effect value stored once: the store's Effects files leave out the layers of
#: the arrays and those derived exactly from what is stored (``CI.L``, ``CI.R``,
#: ``adj.P.Value.across_all_contrasts``, ``stdev.scaled``); one reader
#: (:class:`~perturbridge.compendium.store.StoreEffects`) joins them back. Version 1
#: and 2 stores (every layer in the files) are read as they are.
STORE_FORMAT_VERSION = 3
#: A file that marks a folder as a perturbridge store (written before any other file).
STORE_MARKER = ".perturbridge-store"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class PlanError(PerturbridgeError, ValueError):
    """A build plan is invalid; the message lists every problem found."""

    def __init__(self, problems: list[str], *, where: str = "build plan") -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        n = len(self.problems)
        super().__init__(
            f"{where} has {n} problem{'s' if n != 1 else ''}; nothing was built:\n{lines}"
        )


class BuildError(PerturbridgeError, RuntimeError):
    """A task of a build failed; ``task`` names it, the cause is chained."""

    def __init__(self, task: str, message: str) -> None:
        self.task = task
        super().__init__(f"task {task} failed: {message}")


#: ``source`` of the datasets imported into a store rather than built from a plan
#: (``import-release``, ``import-signatures``): a build keeps them beside its own.
IMPORTED_SOURCES: tuple[str, ...] = ("release_import", "signature_import")


class StoreError(PerturbridgeError, ValueError):
    """A path is not a perturbridge compendium store, or the store is incomplete."""


def _plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    if hasattr(v, "item") and callable(v.item):  # numpy scalars
        return _plain(v.item())
    return v


def canonical_json(obj: Any, *, indent: int | None = None) -> str:
    """JSON with sorted keys and fixed separators: the same object gives the same text."""
    if indent is None:
        return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return json.dumps(_plain(obj), sort_keys=True, indent=indent, ensure_ascii=False) + "\n"


def digest(obj: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def safe_name(name: str, *, taken: set[str] | None = None) -> str:
    """A file-name-safe form of ``name`` (``[A-Za-z0-9._-]``), unique within ``taken``.

    When the safe form is already in ``taken`` (two names that differ only in unsafe
    characters), a short hash of ``name`` is appended, so distinct names never share a
    file. Call it in a fixed (sorted) order for fixed results.
    """
    out = _UNSAFE.sub("_", name).strip("_") or "x"
    if out.startswith("."):
        out = "_" + out
    if taken is not None:
        if out in taken:
            out = f"{out}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
        taken.add(out)
    return out


def strip_times(obj: Any) -> Any:
    """A copy of nested dicts/lists without ``created_utc`` keys (wall-clock times).

    Data files in a store hold no timestamps, so that the same build gives the same
    bytes; times are kept in the store's ``timings.json``.
    """
    if isinstance(obj, Mapping):
        return {k: strip_times(v) for k, v in obj.items() if k != "created_utc"}
    if isinstance(obj, list):
        return [strip_times(v) for v in obj]
    return obj


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented canonical JSON, atomically."""
    path = Path(path)
    with atomic_file(path) as tmp:
        tmp.write_text(canonical_json(obj, indent=2), encoding="utf-8")
    return path

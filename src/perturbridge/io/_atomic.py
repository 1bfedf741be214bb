"""Atomic writes and provenance records."""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import os
import platform
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__

if TYPE_CHECKING:
    import anndata as ad

__all__ = ["atomic_path", "file_sha256", "provenance", "write_h5ad"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On any error the temporary file is removed and ``path`` is left untouched, so a
    failed write never leaves a half-written output behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def file_sha256(path: str | os.PathLike[str], *, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            h.update(block)
    return h.hexdigest()


def provenance(
    *,
    step: str,
    inputs: Sequence[str | os.PathLike[str]] = (),
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A provenance record: step, inputs with checksums, parameters, versions, time."""
    return {
        "step": step,
        "package": "perturbridge",
        "version": __version__,
        "python": platform.python_version(),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "input_paths": [str(p) for p in inputs],
        "input_sha256": [file_sha256(p) for p in inputs],
        "params": {k: _plain(v) for k, v in (params or {}).items()},
    }


def _plain(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return "None" if v is None else v
    if isinstance(v, os.PathLike):
        return str(v)
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return str(v)


def write_h5ad(adata: ad.AnnData, path: str | os.PathLike[str]) -> Path:
    """Write ``adata`` to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)
    return path

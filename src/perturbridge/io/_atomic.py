"""Atomic writes and provenance records.

Every output file or folder is written through :func:`atomic_file` or
:func:`atomic_dir`, which share one rule: write into a sibling temporary
(``.<name>.<random>.part``), rename it into place on success, remove it on any
exception; temporaries left by a killed writer are removed by the next write of the
same path once they are :data:`STALE_PART_S` old. Modes honour the umask.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import glob
import hashlib
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._version import __version__

if TYPE_CHECKING:
    import anndata as ad

__all__ = [
    "atomic_dir",
    "atomic_file",
    "dir_mode",
    "file_mode",
    "file_sha256",
    "provenance",
    "umask",
    "write_h5ad",
]

_UMASK: int | None = None


def umask() -> int:
    """The process umask, read once.

    ``os.umask`` can only be read by setting it, which is not thread-safe (another
    thread creating a file in between would get the temporary mask), so Linux's
    ``/proc/self/status`` is read instead; other systems fall back to setting and
    restoring it (once per process).
    """
    global _UMASK
    if _UMASK is None:
        value: int | None = None
        try:
            with open("/proc/self/status", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("Umask:"):
                        value = int(line.split()[1], 8)
                        break
        except (OSError, ValueError):
            value = None
        if value is None:  # pragma: no cover - not Linux
            value = os.umask(0o022)
            os.umask(value)
        _UMASK = value
    return _UMASK


def file_mode() -> int:
    """The mode a new file gets from ``open()``: ``0o666`` less the umask (0644 under 022)."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """The mode a new folder gets from ``mkdir()``: ``0o777`` less the umask (0755 under 022)."""
    return 0o777 & ~umask()


#: A temporary ``.part`` file or folder untouched this long belongs to a dead writer.
STALE_PART_S = 60.0


def _remove_stale_parts(path: Path) -> None:
    """Remove the temporaries of earlier writes of ``path`` that were killed (a
    ``kill -9`` leaves them behind; they can be hundreds of MB). A write in progress
    keeps touching its temporary, so only those unmodified for :data:`STALE_PART_S` go."""
    now = time.time()
    for part in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
        try:
            if now - part.stat().st_mtime <= STALE_PART_S:
                continue
            if part.is_dir():
                shutil.rmtree(part)
            else:
                part.unlink()
        except OSError:
            continue  # gone meanwhile, or not ours to remove


def _remove(tmp: Path) -> None:
    """Remove a temporary file or folder (the one rollback rule of every atomic write)."""
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)


def _sibling(path: Path, *, folder: bool) -> Path:
    """A new temporary ``.<name>.<random>.part`` beside ``path``, with the umask's mode
    (not the 0600/0700 of ``mkstemp``/``mkdtemp``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(path)
    prefix, suffix = f".{path.name}.", ".part"
    if folder:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=path.parent))
        os.chmod(tmp, dir_mode())
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        os.chmod(tmp, file_mode())
    return tmp


def _rename_into_place(tmp: Path, path: Path, *, replace: bool) -> None:
    """Rename the folder ``tmp`` onto ``path``: an empty folder there is replaced; a
    non-empty one only with ``replace`` (it is moved aside first and put back if the
    rename fails), else :class:`FileExistsError`."""
    if not path.exists():
        os.replace(tmp, path)
        return
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()
        os.replace(tmp, path)
        return
    if not replace:
        raise FileExistsError(f"{path} exists and is not an empty folder; nothing was written")
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
    os.replace(path, old / "x")
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(old / "x", path)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary file path beside ``path``; rename it onto ``path`` on success.

    On any error the temporary is removed and ``path`` is left untouched, so a failed
    write never leaves a half-written output behind. The file gets the mode a plain
    ``open()`` would give it (``0o666`` less the umask), not ``mkstemp``'s 0600.
    """
    path = Path(path)
    tmp = _sibling(path, folder=False)
    try:
        yield tmp
        os.chmod(tmp, dir_mode() if tmp.is_dir() else file_mode())
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; rename it onto ``path`` on success.

    The same rule as :func:`atomic_file`: on any error the temporary folder is removed
    and ``path`` is left untouched. The folder gets the mode ``mkdir()`` would give it
    (``0o777`` less the umask). An empty folder at ``path`` is replaced; a non-empty
    one only with ``replace=True`` (else :class:`FileExistsError`), in which case the
    old folder is put back if the final rename fails.
    """
    path = Path(path)
    tmp = _sibling(path, folder=True)
    try:
        yield tmp
        _rename_into_place(tmp, path, replace=replace)
    except BaseException:
        _remove(tmp)
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


#: gzip level of compressed writes: level 1 with HDF5's byte shuffle compresses float
#: arrays nearly as well as level 9 (the mantissa bytes are noise) at several times
#: the speed.
GZIP_LEVEL = 1
#: Elements per chunk of a compressed dense array (whole rows, about 1 MB of float32).
_CHUNK_ELEMENTS = 1 << 18


def _write_dense(group: Any, name: str, values: np.ndarray) -> None:
    """A dense array as AnnData writes it, in chunks of whole rows, shuffled and gzipped."""
    n_rows = values.shape[0] if values.ndim else 0
    width = int(np.prod(values.shape[1:])) if values.ndim > 1 else 1
    rows = max(1, min(n_rows, _CHUNK_ELEMENTS // max(width, 1)))
    kwargs: dict[str, Any] = {"track_times": False}
    if values.size:
        kwargs.update(
            chunks=(rows, *values.shape[1:]),
            compression="gzip",
            compression_opts=GZIP_LEVEL,
            shuffle=True,
        )
    ds = group.create_dataset(name, data=values, **kwargs)
    ds.attrs["encoding-type"] = "array"
    ds.attrs["encoding-version"] = "0.2.0"


def write_h5ad(adata: ad.AnnData, path: str | os.PathLike[str], *, compress: bool = False) -> Path:
    """Write ``adata`` to ``path`` atomically (temporary file, then rename).

    ``compress``: arrays are gzip-compressed (level :data:`GZIP_LEVEL`), dense numeric
    ``X`` and layers in chunks of whole rows with HDF5's byte shuffle first (HDF5's
    own filters, which every HDF5 reader has), so any AnnData or h5py reader opens the
    file unchanged. The same object gives the same bytes.
    """
    path = Path(path)
    if not compress:
        with atomic_file(path) as tmp:
            adata.write_h5ad(tmp)
        return path
    import anndata
    import h5py

    def dense(v: Any) -> bool:
        return isinstance(v, np.ndarray) and v.dtype.kind in "fiub"

    layers = {k: v for k, v in adata.layers.items() if dense(v)}
    x_dense = dense(adata.X)
    skeleton = anndata.AnnData(
        X=None if x_dense else adata.X,
        obs=adata.obs,
        var=adata.var,
        uns=dict(adata.uns),
        obsm=dict(adata.obsm),
        varm=dict(adata.varm),
        obsp=dict(adata.obsp),
        varp=dict(adata.varp),
        layers={k: v for k, v in adata.layers.items() if k not in layers},
    )
    with atomic_file(path) as tmp:
        draft = _sibling(path, folder=False)  # a second temporary: killed, it is swept too
        try:
            skeleton.write_h5ad(draft, compression="gzip", compression_opts=GZIP_LEVEL)
            with h5py.File(draft, "a") as f:
                if x_dense:
                    _write_dense(f, "X", np.asarray(adata.X))
                for name in layers:  # in the order of the layers mapping
                    _write_dense(f["layers"], name, layers[name])
            _repack(draft, tmp)
        finally:
            draft.unlink(missing_ok=True)
    return path


def _repack(src: Path, dst: Path) -> None:
    """Rebuild the HDF5 file ``src`` as a new file ``dst`` by one fixed sequence of steps.

    The same data written twice by AnnData and h5py came out in different bytes, with
    the same objects, values and attributes: once two chunks of ``obs`` in swapped
    order, once a group's header with its messages in another order (seen in Dask
    workers under load; the cause inside HDF5 is not known). Here every group is made
    anew, its attributes set in name order, then its members, in name order; every
    dataset is copied whole by HDF5 (its header and attributes as they are, its
    compressed chunks in the order of its chunk index). Two files of the same content
    give the same bytes, so the store's checksums of identical results agree whichever
    worker wrote them.
    """
    import h5py

    def attrs(obj: Any, out: Any) -> None:
        for name in sorted(obj.attrs):  # each with its stored type
            out.attrs.create(name, obj.attrs[name], dtype=obj.attrs.get_id(name).dtype)

    def members(group: Any, out: Any) -> None:
        for name in sorted(group):
            obj = group[name]
            if isinstance(obj, h5py.Group):
                sub = out.create_group(name)
                attrs(obj, sub)
                members(obj, sub)
            else:
                group.copy(obj, out, name=name)

    with h5py.File(src, "r") as f, h5py.File(dst, "w") as out:
        attrs(f, out)
        members(f, out)

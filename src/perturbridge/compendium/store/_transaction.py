"""The compendium store on disk: effects files, consolidated arrays, catalog, manifest.

Layout::

    STORE/
      .perturbridge-store                      marks the folder as a store
      manifest.json                            provenance: inputs, checksums, versions,
                                               parameters, task keys, every file's SHA-256
      timings.json                             wall times of the last build that wrote
                                               the store (the only file that differs
                                               between two builds of the same plan)
      samples/<dataset>.h5ad                   Samples (rows sorted by cell context)
      effects/<dataset>/<mode>/<context>_de.h5ad   Effects, one file per context
      zarr/<mode>.zarr/<layer>                 contrasts × union genes, float32, NaN
                                               where a gene was not measured
                                               (Zarr format 3, one row per inner chunk,
                                               ``chunk_conditions`` rows per shard file;
                                               consolidated metadata)
      catalog/{datasets,samples,conditions,contrasts,genes,compounds,contexts,ledger}.parquet
      .cache/                                  the task cache (default place; see tasks)

An update is prepared beside the store (``STORE/.update-<id>/``, same file system) and
committed by renames: the old manifest is removed, the managed folders (catalog first)
are swapped for the prepared ones, and the new manifest is moved into place last. The
manifest names the SHA-256 and size of every file it covers (the shards also with
their index CRC32C), so a reader can tell a consistent store from one caught between
two states (see :func:`check_store`, :func:`verify_store`, :func:`repair_store`).

Rows of ``zarr/<mode>.zarr`` are the contrasts of that mode ordered by dataset, context
(file) and row in the file; ``catalog/contrasts.parquet`` gives each contrast's
``zarr_row``. Columns are the union of all gene ids, sorted; ``catalog/genes.parquet``
gives each gene's ``zarr_col``. Everything is written in a fixed order with no
timestamps, so the same inputs give byte-identical files whichever executor ran the
tasks and however often the build was interrupted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._version import __version__
from ..io import atomic_file, file_sha256
from ..io._atomic import file_mode
from ..progress import track
from ._common import (
    STORE_FORMAT,
    STORE_FORMAT_VERSION,
    STORE_MARKER,
    StoreError,
    safe_name,
    write_json_atomic,
)

__all__ = [
    "CATALOG_TABLES",
    "DatasetPart",
    "EffectsPart",
    "StoreLayout",
    "StoreProblem",
    "check_store",
    "mark_store",
    "read_dataset_parts",
    "read_manifest",
    "repair_store",
    "store_is_current",
    "verify_store",
    "write_store",
]

logger = logging.getLogger(__name__)

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
)
#: Folders replaced as a whole by an update, in the order of the commit: the catalog
#: first, so that a reader who checks the catalog after reading (``Compendium.effects``)
#: sees any commit that began before its read ended.
_MANAGED_DIRS = ("catalog", "samples", "effects", "zarr")
#: A prepared update beside the store: ``STORE/.update-<id>/`` (its ``manifest.json``
#: is written when everything else in it is complete).
_UPDATE_PREFIX = ".update-"
#: Written by :func:`repair_store` when files need a rebuild; removed by the next commit.
NEEDS_REBUILD = ".needs-rebuild"
_REPAIR_HINT = "run `perturbridge repair STORE`, then the build (or import) that wrote it"


def _checkpoint(step: str) -> None:
    """A named point of a store update (tests stop the process here to simulate a kill)."""


#: Effects ``obs`` columns copied into ``catalog/contrasts.parquet`` (when present).
_CONTRAST_COLUMNS: tuple[tuple[str, str], ...] = (
    ("cell_context", "str"),
    ("cell_name", "str"),
    ("perturbagen", "str"),
    ("compound_id_source", "str"),
    ("compound_inchikey", "str"),
    ("compound_parent_inchikey", "str"),
    ("pubchem_cid", "Int64"),
    ("pert_dose_uM", "float"),
    ("pert_time_h", "float"),
    ("replicate", "str"),
    ("sample_id", "str"),
    ("control_label", "str"),
    ("n_treated", "Int64"),
    ("n_control", "Int64"),
    ("df_residual", "Int64"),
    ("n_genes_tested", "Int64"),
)


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
        prepared = _complete_updates(path)
        if len(prepared) == 1:
            logger.warning("%s: finishing an interrupted store update", path)
            _commit(StoreLayout(path.absolute()), StoreLayout(prepared[0]))


def _updates(root: Path) -> list[Path]:
    """Prepared updates beside the store (complete or not)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith(_UPDATE_PREFIX) and p.is_dir())


def _complete_updates(root: Path) -> list[Path]:
    return [p for p in _updates(root) if (p / "manifest.json").is_file()]


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``manifest.json`` of a store, or :class:`StoreError` saying what is wrong."""
    import json

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
    if _updates(path) or (path / NEEDS_REBUILD).exists():
        return False  # an interrupted update to clean up, or files that need a rebuild
    records = dict(manifest.get("files", {}))
    records.update(manifest.get("zarr", {}).get("files", {}))
    for rel, rec in records.items():
        p = path / rel
        if not p.is_file() or p.stat().st_size != rec["bytes"]:
            return False
    return all((path / rel).is_dir() for rel in manifest.get("zarr", {}).get("paths", []))


# --------------------------------------------------------------------------- checking


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


def _check_file(root: Path, rel: str, rec: Mapping[str, Any]) -> tuple[str | None, Any]:
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
        problem, ident = _check_file(root, rel, records[rel])
        if problem is not None:
            raise StoreError(
                f"{root}: {rel} does not match the store's manifest ({problem}): the store "
                f"is damaged or caught in an interrupted update; {_REPAIR_HINT}"
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
        for p in _updates(root)
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
        problem, _ = _check_file(root, rel, records[rel])
        if problem is not None:
            problems.append(StoreProblem(rel, problem))
    for d in _MANAGED_DIRS:
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
    complete = _complete_updates(root)
    if not (root / "manifest.json").is_file() and len(complete) == 1:
        _commit(StoreLayout(root), StoreLayout(complete[0]))
        report.actions.append(f"finished the interrupted update {complete[0].name}")
    for p in _updates(root):
        shutil.rmtree(p)
        report.actions.append(f"removed the unfinished update {p.name}")
    for p in _temporaries(root):
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
            if good is not None:
                _copy_verified(good, root / prob.path, str(rec["sha256"]))
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
    """A file of the task cache with the size and SHA-256 of ``rec``, if there is one."""
    tasks = cache / "tasks"
    if not tasks.is_dir():
        return None
    for p in sorted(tasks.rglob("*.h5ad")):
        try:
            if p.stat().st_size == int(rec["bytes"]) and file_sha256(p) == rec["sha256"]:
                return p
        except OSError:
            continue
    return None


def _temporaries(root: Path) -> list[Path]:
    """Temporary files of interrupted atomic writes in the store (not in its cache)."""
    out = [p for p in root.iterdir() if p.is_file() and p.name.startswith(".")
           and (p.name.endswith(".part") or ".tmp-" in p.name)]  # fmt: skip
    for d in _MANAGED_DIRS:
        if (root / d).is_dir():
            out += [p for p in (root / d).rglob(".*") if p.is_file()
                    and (p.name.endswith(".part") or ".tmp-" in p.name)]  # fmt: skip
    return sorted(out)


def read_dataset_parts(
    root: str | os.PathLike[str], names: Sequence[str], *, work: Path
) -> list[DatasetPart]:
    """The datasets ``names`` of an existing store as parts for :func:`write_store`.

    This is how a store is rewritten with other datasets joined to it (e.g. an import
    of release files into a built store) without touching these datasets: their
    Samples and Effects files are the store's own (placing a file on itself is a no-op),
    their manifest entry is kept as it is, and their ledger rows are taken from
    ``catalog/ledger.parquet`` (written to small Parquet files under ``work``). The
    context of each Effects file is the one its manifest entry records
    (``inputs[].file_stem``), else the single ``cell_context`` of its contrasts, else
    its file name.
    """
    layout = StoreLayout(Path(root).absolute())
    manifest = read_manifest(layout.root)
    entries = {str(d["name"]): d for d in manifest.get("datasets", [])}
    missing = [n for n in names if n not in entries]
    if missing:
        raise StoreError(f"{layout.root}: no dataset {missing} (found {sorted(entries)})")
    files: dict[str, Any] = manifest.get("files", {})
    table = pd.read_parquet(layout.catalog("datasets")).set_index("dataset")
    contrasts = pd.read_parquet(
        layout.catalog("contrasts"), columns=["effects_file", "cell_context"]
    )
    n_contexts = contrasts.groupby("effects_file")["cell_context"].nunique(dropna=False)
    first = contrasts.drop_duplicates("effects_file").set_index("effects_file")["cell_context"]
    one_context = first[n_contexts.reindex(first.index) == 1]
    ledger = pd.read_parquet(layout.catalog("ledger"))
    from ..ledger import LEDGER_COLUMNS

    def ledger_file(rows: pd.DataFrame, tag: str) -> Path | None:
        if rows.empty:
            return None
        frame = rows.loc[:, list(LEDGER_COLUMNS)].astype(str).reset_index(drop=True)
        path = work / f"{hashlib.sha256(tag.encode()).hexdigest()[:16]}.parquet"
        _write_parquet(frame, path)
        return path

    parts = []
    for name in names:
        info = {k: v for k, v in entries[name].items() if k != "name"}
        stems = {
            (str(i["mode"]), str(i["file_stem"])): str(i["context"])
            for i in info.get("inputs", [])
            if isinstance(i, Mapping) and {"mode", "context", "file_stem"} <= set(i)
        }
        led = ledger[ledger["dataset"].astype(str) == name]
        dataset_rows = led[led["mode"].isna()]
        effects: list[EffectsPart] = []
        seen: set[tuple[str, str]] = set()
        prefix = f"effects/{name}/"
        for rel in sorted(r for r in files if r.startswith(prefix) and r.endswith("_de.h5ad")):
            mode, fname = rel[len(prefix) :].split("/", 1)
            stem = fname[: -len("_de.h5ad")]
            ctx = stems.get((mode, stem))
            if ctx is None:
                found = one_context.get(rel)
                ctx = str(found) if found is not None and not pd.isna(found) else stem
            seen.add((mode, ctx))
            rows = led[(led["mode"].astype(str) == mode) & (led["context"].astype(str) == ctx)]
            obs, _ = _read_obs_var(layout.root / rel)
            effects.append(
                EffectsPart(
                    mode=mode,
                    context=ctx,
                    file_stem=stem,
                    path=layout.root / rel,
                    sha256=str(files[rel]["sha256"]),
                    n_contrasts=len(obs),
                    ledger=ledger_file(rows, f"{name}/{mode}/{ctx}"),
                )
            )
        # contexts with ledger rows but no contrasts (every condition dropped)
        rest = led[led["mode"].notna()]
        for key, rows in rest.groupby(["mode", "context"], sort=True, dropna=False):
            m, c = (str(k) for k in key)
            if (m, c) in seen:
                continue
            path = ledger_file(rows, f"{name}/{m}/{c}")
            if path is None:
                continue
            effects.append(EffectsPart(m, c, safe_name(c), path, "", 0, ledger=path))
        samples_rel = layout.rel(layout.samples(name))
        has_samples = samples_rel in files
        row = table.loc[name] if name in table.index else None
        parts.append(
            DatasetPart(
                name=name,
                source=str(info.get("source", row["source"] if row is not None else "")),
                assay=str(row["assay"]) if row is not None else str(info.get("assay", "")),
                value_kind=str(row["value_kind"])
                if row is not None
                else str(info.get("value_kind", "")),
                samples=layout.samples(name) if has_samples else None,
                samples_sha256=str(files[samples_rel]["sha256"]) if has_samples else None,
                ledger=ledger_file(dataset_rows, f"{name}//"),
                effects=tuple(effects),
                info=info,
            )
        )
    return parts


# --------------------------------------------------------------------------- writing


def _copy_verified(src: Path, dst: Path, sha256: str) -> None:
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
    _copy_verified(src, dst, sha256)


def _to_arrow_frame(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            out[col] = s.astype(object).where(s.notna(), None)
    return out


def _write_parquet(df: pd.DataFrame, path: Path) -> None:  # atomic_file: umask mode
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(_to_arrow_frame(df), preserve_index=False)
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def _read_obs_var(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    import h5py
    from anndata.io import read_elem

    with h5py.File(path, "r") as f:
        return read_elem(f["obs"]), read_elem(f["var"])


def _column(obs: pd.DataFrame, name: str, kind: str) -> Any:
    n = len(obs)
    if name not in obs.columns:
        if kind == "float":
            return np.full(n, np.nan)
        if kind == "Int64":
            return pd.array([pd.NA] * n, dtype="Int64")
        return np.full(n, None, dtype=object)
    s = obs[name]
    if kind == "float":
        return s.to_numpy(dtype=float)
    if kind == "Int64":
        return s.astype("Int64").array
    vals = s.astype(object)
    return vals.where(s.notna(), None).map(lambda v: v if v is None else str(v)).to_numpy()


@dataclass
class _EffectsFile:
    dataset: str
    part: EffectsPart
    rel: str
    obs: pd.DataFrame
    var: pd.DataFrame


def _contrast_table(files: list[_EffectsFile]) -> pd.DataFrame:
    frames = []
    next_row: dict[str, int] = {}
    for ef in files:
        obs = ef.obs
        n = len(obs)
        mode = ef.part.mode
        start = next_row.get(mode, 0)
        next_row[mode] = start + n
        contrast = obs.index.astype(str)
        condition = (
            obs["condition"].astype(str).to_numpy()
            if "condition" in obs.columns
            else contrast.to_numpy()
        )
        data: dict[str, Any] = {
            "contrast_id": (ef.dataset + ":" + contrast).to_numpy(),
            "dataset": ef.dataset,
            "mode": mode,
            "contrast": contrast.to_numpy(),
            "condition_id": np.char.add(f"{ef.dataset}:", condition.astype(str)),
        }
        for name, kind in _CONTRAST_COLUMNS:
            data[name] = _column(obs, name, kind)
        data["effects_file"] = ef.rel
        data["file_row"] = np.arange(n, dtype=np.int64)
        data["zarr_row"] = np.arange(start, start + n, dtype=np.int64)
        frames.append(pd.DataFrame(data))
    if not frames:
        return pd.DataFrame(
            columns=["contrast_id", "dataset", "mode", "contrast", "condition_id"]
            + [c for c, _ in _CONTRAST_COLUMNS]
            + ["effects_file", "file_row", "zarr_row"]
        )
    return pd.concat(frames, ignore_index=True)


def compound_ids(frame: pd.DataFrame) -> np.ndarray:
    """The compound identity of each row: the parent InChIKey when known, else the
    InChIKey, else ``<dataset>:<upstream compound id or name>`` (an opaque id)."""
    parent = frame["compound_parent_inchikey"].astype(object)
    key = parent.where(parent.notna(), frame["compound_inchikey"].astype(object))
    local = frame["compound_id_source"].astype(object)
    local = local.where(local.notna(), frame["perturbagen"].astype(object))
    fallback = frame["dataset"].astype(str) + ":" + local.astype(str)
    return key.where(key.notna(), fallback).astype(str).to_numpy()


def _condition_table(contrasts: pd.DataFrame) -> pd.DataFrame:
    cols = [
        "condition_id",
        "dataset",
        "cell_context",
        "cell_name",
        "perturbagen",
        "compound_id_source",
        "compound_inchikey",
        "compound_parent_inchikey",
        "pubchem_cid",
        "pert_dose_uM",
        "pert_time_h",
        "control_label",
    ]
    group = contrasts[contrasts["mode"] == "group"]
    sep = contrasts[contrasts["mode"] == "separate"]
    first = pd.concat([group, sep], ignore_index=True).drop_duplicates("condition_id", keep="first")
    out = first[cols].copy()
    out.insert(3, "compound_id", compound_ids(out))
    g = group.set_index("condition_id")
    out["n_treated"] = pd.array(
        g["n_treated"].reindex(out["condition_id"]).to_numpy(), dtype="Int64"
    )
    out["zarr_row_group"] = pd.array(
        g["zarr_row"].reindex(out["condition_id"]).to_numpy(), dtype="Int64"
    )
    n_sep = sep.groupby("condition_id", sort=False).size()
    out["n_separate"] = n_sep.reindex(out["condition_id"]).fillna(0).astype(np.int64).to_numpy()
    return out.sort_values(["dataset", "condition_id"], kind="stable").reset_index(drop=True)


def _gene_table(files: list[_EffectsFile], samples_var: dict[str, pd.DataFrame]) -> pd.DataFrame:
    symbol: dict[str, str] = {}
    measured: dict[str, set[str]] = {}
    sources: list[tuple[str, pd.DataFrame]] = [(ef.dataset, ef.var) for ef in files]
    sources += sorted(samples_var.items())
    for dataset, var in sources:
        ids = var.index.astype(str)
        syms = var["symbol"].astype(str).to_numpy() if "symbol" in var else ids.to_numpy()
        for g, s in zip(ids, syms, strict=True):
            symbol.setdefault(g, s)
            measured.setdefault(g, set()).add(dataset)
    genes = sorted(symbol)
    return pd.DataFrame(
        {
            "gene_id": genes,
            "symbol": [symbol[g] for g in genes],
            "zarr_col": np.arange(len(genes), dtype=np.int64),
            "n_datasets": np.array([len(measured[g]) for g in genes], dtype=np.int64),
            "datasets": [sorted(measured[g]) for g in genes],
        }
    )


def _compound_table(conditions: pd.DataFrame) -> pd.DataFrame:
    cols = [
        "compound_id",
        "compound_inchikey",
        "compound_parent_inchikey",
        "pubchem_cid",
        "names",
        "upstream_ids",
        "datasets",
        "n_conditions",
    ]
    if conditions.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for cid, grp in conditions.groupby("compound_id", sort=True):

        def first(col: str, grp: pd.DataFrame = grp) -> Any:
            s = grp[col].dropna()
            return s.iloc[0] if len(s) else None

        rows.append(
            {
                "compound_id": cid,
                "compound_inchikey": first("compound_inchikey"),
                "compound_parent_inchikey": first("compound_parent_inchikey"),
                "pubchem_cid": first("pubchem_cid"),
                "names": sorted(grp["perturbagen"].dropna().astype(str).unique()),
                "upstream_ids": sorted(grp["compound_id_source"].dropna().astype(str).unique()),
                "datasets": sorted(grp["dataset"].astype(str).unique()),
                "n_conditions": len(grp),
            }
        )
    out = pd.DataFrame(rows, columns=cols)
    out["pubchem_cid"] = out["pubchem_cid"].astype("Int64")
    return out


def _context_table(conditions: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    keys = sorted(
        set(conditions["cell_context"].dropna().astype(str))
        | set(samples["cell_context"].dropna().astype(str) if len(samples) else [])
    )
    n_samples = (
        samples.groupby("cell_context", observed=True).size()
        if len(samples)
        else pd.Series(dtype=int)
    )
    rows = []
    for c in keys:
        cond = conditions[conditions["cell_context"] == c]
        smp = samples[samples["cell_context"] == c] if len(samples) else samples
        names = set(cond["cell_name"].dropna().astype(str))
        if len(smp):
            names |= set(smp["cell_name"].dropna().astype(str))
        rows.append(
            {
                "cell_context": c,
                "cell_names": sorted(names),
                "datasets": sorted(
                    set(cond["dataset"].astype(str))
                    | (set(smp["dataset"].astype(str)) if len(smp) else set())
                ),
                "n_samples": int(n_samples.get(c, 0)),
                "n_conditions": len(cond),
            }
        )
    return pd.DataFrame(
        rows, columns=["cell_context", "cell_names", "datasets", "n_samples", "n_conditions"]
    )


def _samples_table(parts: Sequence[DatasetPart], layout: StoreLayout) -> pd.DataFrame:
    from ..schema import SAMPLE_COLUMNS

    frames = []
    for part in parts:
        if part.samples is None:
            continue
        obs, _ = _read_obs_var(layout.samples(part.name))
        df = pd.DataFrame({"sample_id": obs.index.astype(str).to_numpy()})
        for col in SAMPLE_COLUMNS:
            kind = {"category": "str", "bool": "bool"}.get(col.kind, col.kind)
            if kind == "bool":
                df[col.name] = obs[col.name].to_numpy(dtype=bool)
            else:
                df[col.name] = _column(obs, col.name, kind)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["sample_id"] + [c.name for c in SAMPLE_COLUMNS])
    return pd.concat(frames, ignore_index=True)


def _ledger_table(parts: Sequence[DatasetPart]) -> pd.DataFrame:
    frames = []

    def add(path: Path | None, dataset: str, mode: str | None, context: str | None) -> None:
        if path is None:
            return
        df = pd.read_parquet(path)
        df.insert(0, "context", context)
        df.insert(0, "mode", mode)
        df.insert(0, "dataset", dataset)
        frames.append(df)

    for part in parts:
        add(part.ledger, part.name, None, None)
        for ep in part.effects:
            add(ep.ledger, part.name, ep.mode, ep.context)
    cols = ["dataset", "mode", "context", "id", "stage", "status", "reason", "detail"]
    if not frames:
        return pd.DataFrame(columns=cols)
    out = pd.concat(frames, ignore_index=True)
    return out[cols]


def _dataset_table(
    parts: Sequence[DatasetPart], contrasts: pd.DataFrame, conditions: pd.DataFrame
) -> pd.DataFrame:
    rows = []
    for part in parts:
        c = contrasts[contrasts["dataset"] == part.name]
        info = part.info
        rows.append(
            {
                "dataset": part.name,
                "source": part.source,
                "assay": part.assay,
                "value_kind": part.value_kind,
                "n_samples": info.get("n_samples"),
                "n_genes": info.get("n_genes"),
                "n_contexts": len({ep.context for ep in part.effects}),
                "n_conditions": int((conditions["dataset"] == part.name).sum()),
                "n_contrasts_group": int((c["mode"] == "group").sum()),
                "n_contrasts_separate": int((c["mode"] == "separate").sum()),
                "modes": sorted({ep.mode for ep in part.effects}),
                "de_method": info.get("de_method"),
            }
        )
    out = pd.DataFrame(rows)
    for col in ("n_samples", "n_genes"):
        out[col] = out[col].astype("Int64")
    return out


def _read_rows(ds: Any, a: int, b: int) -> np.ndarray:
    import h5py

    if isinstance(ds, h5py.Dataset):
        return np.asarray(ds[a:b], dtype=np.float32)
    from anndata.io import sparse_dataset

    return np.asarray(sparse_dataset(ds)[a:b].toarray(), dtype=np.float32)


def _write_zarr(
    dest: Path,
    files: list[_EffectsFile],
    gene_pos: pd.Series,
    *,
    mode: str,
    layers: Sequence[str],
    rows_per_shard: int,
    progress: bool,
) -> dict[str, Any]:
    import warnings

    import h5py
    import zarr

    from ._shards import ShardWriter, create_row_sharded

    n_rows = sum(len(ef.obs) for ef in files)
    n_genes = len(gene_pos)
    cr = max(1, rows_per_shard)
    dest.parent.mkdir(parents=True, exist_ok=True)
    root = zarr.open_group(str(dest), mode="w", zarr_format=3)
    root.attrs.update(
        {
            "perturbridge": {
                "kind": "compendium_effects",
                "mode": mode,
                "rows": "catalog/contrasts.parquet: zarr_row of the contrasts of this mode",
                "columns": "catalog/genes.parquet: zarr_col",
                "layers": list(layers),
                "layout": "row-sharded: one row per inner chunk, rows_per_shard rows a file",
                "version": __version__,
            }
        }
    )
    cols = [gene_pos.reindex(ef.var.index.astype(str)).to_numpy(dtype=np.int64) for ef in files]
    shard_records: dict[str, dict[str, Any]] = {}
    for layer in track(layers, description=f"zarr {mode}", enabled=progress):
        lay = create_row_sharded(root, layer, n_rows=n_rows, n_cols=n_genes, rows_per_shard=cr)
        cr = lay.rows_per_shard
        buf = np.full((cr, n_genes), np.nan, dtype=np.float32)
        filled = 0
        shard = 0
        with ShardWriter(lay) as writer:
            for ef, col in zip(files, cols, strict=True):
                n = len(ef.obs)
                with h5py.File(ef.part.path, "r") as f:
                    if layer not in f["layers"]:
                        raise StoreError(f"{ef.rel}: layer {layer!r} is missing")
                    ds = f["layers"][layer]
                    pos = 0
                    while pos < n:
                        take = min(cr - filled, n - pos)
                        buf[filled : filled + take][:, col] = _read_rows(ds, pos, pos + take)
                        filled += take
                        pos += take
                        if filled == cr:
                            writer.write(shard, buf)
                            shard += 1
                            buf.fill(np.nan)
                            filled = 0
                            if shard == 1:
                                _checkpoint("zarr_shard")
            if filled:
                writer.write(shard, buf[:filled])
            for i, digest_ in writer.records.items():
                shard_records[f"{layer}/c/{i}/0"] = digest_.record()
    with warnings.catch_warnings():
        # consolidated metadata is a zarr-python extension of format 3 (readers that do
        # not know it read the per-array zarr.json files instead)
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        zarr.consolidate_metadata(str(dest))
    records: dict[str, dict[str, Any]] = {}
    for p in (q for q in dest.rglob("*") if q.is_file()):
        rel = p.relative_to(dest).as_posix()
        rec = shard_records.get(rel)
        records[rel] = rec if rec is not None else {"bytes": p.stat().st_size,
                                                    "sha256": file_sha256(p)}  # fmt: skip
    # one SHA-256 over the sorted (relative path, file SHA-256), in path order
    h = hashlib.sha256()
    for rel in sorted(records, key=lambda r: Path(r).parts):
        h.update(f"{rel}\0{records[rel]['sha256']}\n".encode())
    summary: dict[str, Any] = {
        "files": len(records),
        "bytes": sum(int(r["bytes"]) for r in records.values()),
        "sha256": h.hexdigest(),
        "rows": n_rows,
        "genes": n_genes,
        "layers": list(layers),
        "file_records": records,
    }
    return summary


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


def _commit(layout: StoreLayout, prepared: StoreLayout) -> None:
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
    for d in _MANAGED_DIRS:
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
    for p in _temporaries(root):
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
    (see :func:`_commit`), the manifest last. Killed at any point, the store is either
    the old one, the new one, or has no manifest (an interrupted commit, which the
    next build or ``perturbridge repair`` finishes); a failure while preparing (a full
    disk) leaves the old store as it was.
    """
    layout = StoreLayout(Path(root).absolute())
    mark_store(layout.root)
    for p in _updates(layout.root):  # an update that never reached its commit
        shutil.rmtree(p)
    prepared = StoreLayout(layout.root / f"{_UPDATE_PREFIX}{uuid.uuid4().hex}")
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
    _commit(layout, prepared)
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
    for d in _MANAGED_DIRS:
        (prepared.root / d).mkdir()
    parts = sorted(parts, key=lambda p: p.name)
    files_meta: dict[str, dict[str, Any]] = {}
    effects_files: list[_EffectsFile] = []
    samples_var: dict[str, pd.DataFrame] = {}
    for part in parts:
        if part.samples is not None:
            dst = prepared.samples(part.name)
            rel = prepared.rel(dst)
            sha = part.samples_sha256 or file_sha256(part.samples)
            _place(part.samples, dst, sha256=sha, current=layout.root / rel)
            files_meta[rel] = {"sha256": sha, "bytes": dst.stat().st_size}
            samples_var[part.name] = _read_obs_var(dst)[1]
        for ep in sorted(part.effects, key=lambda e: (e.mode, e.file_stem)):
            if ep.n_contrasts == 0:
                continue
            dst = prepared.effects(part.name, ep.mode, ep.file_stem)
            rel = prepared.rel(dst)
            _place(ep.path, dst, sha256=ep.sha256, current=layout.root / rel)
            files_meta[rel] = {"sha256": ep.sha256, "bytes": dst.stat().st_size}
            obs, var = _read_obs_var(dst)
            effects_files.append(_EffectsFile(part.name, ep, rel, obs, var))
    _checkpoint("files_placed")
    # zarr rows: per mode, dataset then context order
    effects_files.sort(key=lambda ef: (ef.part.mode, ef.dataset, ef.part.file_stem))
    contrasts = _contrast_table(effects_files)
    contrasts = contrasts.sort_values(["mode", "zarr_row"], kind="stable").reset_index(drop=True)
    conditions = _condition_table(contrasts)
    genes = _gene_table(effects_files, samples_var)
    samples = _samples_table(parts, prepared)
    tables = {
        "datasets": _dataset_table(parts, contrasts, conditions),
        "samples": samples,
        "conditions": conditions,
        "contrasts": contrasts,
        "genes": genes,
        "compounds": _compound_table(conditions),
        "contexts": _context_table(conditions, samples),
        "ledger": _ledger_table(parts),
    }
    for name in CATALOG_TABLES:
        path = prepared.catalog(name)
        _write_parquet(tables[name], path)
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
        summary = _write_zarr(
            dest,
            [ef for ef in effects_files if ef.part.mode == mode],
            gene_pos,
            mode=mode,
            layers=zarr_layers,
            rows_per_shard=rows_per_shard,
            progress=progress,
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
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"perturbridge": __version__, "python": platform.python_version()}
    for pkg in ("numpy", "scipy", "pandas", "anndata", "h5py", "zarr", "numcodecs", "pyarrow"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:  # pragma: no cover
            out[pkg] = "not installed"
    return out


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

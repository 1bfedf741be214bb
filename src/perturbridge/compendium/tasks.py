"""The tasks of a build, their keys, and the content-addressed cache they write to.

A build is a small dynamic task graph: one **ingest** task per dataset (source adapter
→ Samples, sorted by cell context), then, once its contexts are known, one **de** task
per dataset × cell context × replicate mode (limma-trend or limma-voom on that
context's rows). Each task is keyed by a hash of everything its output depends on: the
SHA-256 of the content of every file it reads (its inputs, the files an input names,
such as the tables of a generic mapping, and path-valued options; the ingest key, for
DE tasks), its parameters and the package version. Its output is written to
``CACHE/tasks/<kind>/<key>/`` through a temporary folder renamed into place, so a task
either finished or left nothing, even after ``kill -9``; a task whose folder exists is
never run again.

Task functions take and return plain data (paths, numbers, strings): workers read large
inputs from the shared file system by path and write their outputs there, so nothing
large travels through a scheduler. Nothing here imports Dask.

The driver appends one JSON line per event to ``CACHE/task_log.jsonl``: ``cached``
(output found), ``submitted``, ``done`` (computed), ``failed``, and the store events
``store_written`` / ``store_current``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .. import de
from .._version import __version__
from ..errors import LockError
from ..ids.annotate import IdentityResolvers, annotate_samples
from ..io import file_sha256, write_h5ad
from ..ledger import Ledger
from ..sources import get_source
from ._common import BuildError, canonical_json, digest, safe_name, strip_times, write_json_atomic
from ._footprint import storage_effects
from ._lock import exclusive_lock

__all__ = [
    "Task",
    "TaskCache",
    "TaskKind",
    "de_task",
    "ingest_task",
    "read_task_log",
    "run_task",
]

logger = logging.getLogger(__name__)

TaskKind = Literal["ingest", "de"]
RESULT_FILE = "result.json"
SAMPLES_FILE = "samples.h5ad"
EFFECTS_FILE = "effects.h5ad"
LEDGER_FILE = "ledger.parquet"


@dataclass(frozen=True)
class Task:
    """One unit of work: ``id`` names it for people, ``key`` addresses its output.

    ``payload`` holds the task's arguments as plain data (paths, not arrays).
    """

    id: str
    kind: TaskKind
    key: str
    payload: Mapping[str, Any] = field(default_factory=dict)


def ingest_task(
    *,
    dataset: str,
    source: str,
    kwargs: Mapping[str, Any],
    input_checksums: Sequence[tuple[str, str, str]],
    options: Mapping[str, Any],
    imports: Sequence[str],
    references: str | None,
    references_checksum: str | None,
) -> Task:
    """The ingest task of a dataset.

    ``input_checksums`` are ``(parameter, path, sha256)`` of every input file; the key
    covers them, the options, the references, the plan's imports and the version.
    """
    key = digest(
        {
            "kind": "ingest",
            "version": __version__,
            "dataset": dataset,
            "source": source,
            "inputs": [list(x) for x in input_checksums],
            "options": dict(options),
            "imports": list(imports),
            "references": references_checksum,
        }
    )
    payload = {
        "dataset": dataset,
        "source": source,
        "kwargs": dict(kwargs),
        "imports": list(imports),
        "references": references,
    }
    return Task(id=f"ingest:{dataset}", kind="ingest", key=key, payload=payload)


def de_task(
    *,
    dataset: str,
    ingest_key: str,
    samples: str,
    context: Mapping[str, Any],
    mode: str,
    value_kind: str,
    de_params: Mapping[str, Any],
    imports: Sequence[str],
) -> Task:
    """The DE task of one dataset × cell context × replicate mode."""
    key = digest(
        {
            "kind": "de",
            "version": __version__,
            "ingest": ingest_key,
            "context": context["context"],
            "mode": mode,
            "de": dict(de_params),
        }
    )
    payload = {
        "dataset": dataset,
        "samples": samples,
        "context": context["context"],
        "start": int(context["start"]),
        "stop": int(context["stop"]),
        "mode": mode,
        "value_kind": value_kind,
        "de": dict(de_params),
        "imports": list(imports),
    }
    return Task(id=f"de:{dataset}/{mode}/{context['context']}", kind="de", key=key, payload=payload)


# --------------------------------------------------------------------------- cache


class TaskCache:
    """The content-addressed task cache of a build (``CACHE/``).

    Layout: ``tasks/<kind>/<key>/`` (a finished task's files and ``result.json``),
    ``checksums.json`` (SHA-256 of input files, by path and stat fields, see
    :meth:`checksums`),
    ``task_log.jsonl`` and ``build.lock``.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()

    def task_dir(self, task: Task) -> Path:
        return self.root / "tasks" / task.kind / task.key

    def is_done(self, task: Task) -> bool:
        return (self.task_dir(task) / RESULT_FILE).is_file()

    def result(self, task: Task) -> dict[str, Any]:
        path = self.task_dir(task) / RESULT_FILE
        return dict(json.loads(path.read_text(encoding="utf-8")))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold ``build.lock`` for the build: two builds never share a cache at once.

        The operating system releases the lock when the process dies, ``kill -9``
        included; a second build fails at once with a message naming the holder.
        """
        held = contextlib.ExitStack()
        try:
            held.enter_context(
                exclusive_lock(
                    self.root / "build.lock",
                    purpose="build",
                    busy=f"another build is using the cache {self.root}",
                    advice="wait for it to finish or give this build another cache",
                )
            )
        except LockError as err:
            raise BuildError("lock", str(err)) from err
        with held:
            yield

    def clean_partial(self) -> int:
        """Remove the temporary folders of tasks that were interrupted."""
        n = 0
        tasks = self.root / "tasks"
        if not tasks.is_dir():
            return 0
        for kind_dir in tasks.iterdir():
            if not kind_dir.is_dir():
                continue
            for p in kind_dir.iterdir():
                if p.name.startswith(".") and ".tmp-" in p.name:
                    shutil.rmtree(p, ignore_errors=True)
                    n += 1
        return n

    def log(self, run: str, event: str, task: Task | None = None, **extra: Any) -> None:
        """Append one event to ``task_log.jsonl``."""
        record: dict[str, Any] = {
            "run": run,
            "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds"),
            "event": event,
        }
        if task is not None:
            record.update(task=task.id, kind=task.kind, key=task.key)
        record.update(extra)
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "task_log.jsonl", "a", encoding="utf-8") as fh:
            fh.write(canonical_json(record) + "\n")
            fh.flush()

    # ----------------------------------------------------------- input checksums

    def checksums(self, paths: Sequence[Path], *, remember: bool = True) -> dict[Path, str]:
        """SHA-256 of files (a folder: of the sorted relative paths and checksums of
        the files under it).

        A checksum is remembered in ``checksums.json`` (unless ``remember`` is false)
        with the file's size, modification and status-change times (ns), inode and
        device, and reused only while all five are unchanged, so an unchanged multi-GB
        input is not read again. The status-change time (``ctime``) is set by the
        kernel on every write, rename or ``os.utime``, and no call can set it back: a
        file rewritten with the same size and ``mtime`` is hashed again. A checksum
        taken within :data:`RACY_NS` of the file's last change is not trusted (the file
        is hashed again), since on a file system with coarse time stamps a later write
        could leave every one of them as it was; one taken while the file changed is not
        kept.
        """
        memo_path = self.root / "checksums.json"
        try:
            memo: dict[str, Any] = json.loads(memo_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            memo = {}
        changed = False

        def one(p: Path) -> str:
            nonlocal changed
            key = str(p)
            before = _stat_identity(p)
            rec = memo.get(key)
            if (
                isinstance(rec, dict)
                and rec.get("stat") == before
                and isinstance(rec.get("hashed_ns"), int)
                and max(before["mtime_ns"], before["ctime_ns"]) < rec["hashed_ns"] - RACY_NS
            ):
                return str(rec["sha256"])
            started = time.time_ns()
            sha = file_sha256(p)
            if _stat_identity(p) == before:  # else it changed while read: keep nothing
                memo[key] = {"stat": before, "hashed_ns": started, "sha256": sha}
                changed = True
            elif memo.pop(key, None) is not None:
                changed = True
            return sha

        out: dict[Path, str] = {}
        for p in paths:
            if p.is_dir():
                files = sorted(q for q in p.rglob("*") if q.is_file())
                out[p] = digest([[q.relative_to(p).as_posix(), one(q)] for q in files])
            else:
                out[p] = one(p)
        if changed and remember:
            write_json_atomic(memo_path, memo)
        return out


#: A checksum taken less than this long (ns) after the file last changed is not trusted:
#: on file systems with 1-2 s time stamps (FAT, some network mounts) a later same-size
#: write could leave size and times unchanged.
RACY_NS = 2_000_000_000


def _stat_identity(p: Path) -> dict[str, int]:
    st = p.stat()
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
        "inode": st.st_ino,
        "device": st.st_dev,
    }


def read_task_log(cache: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The events of ``CACHE/task_log.jsonl`` (oldest first)."""
    path = Path(cache) / "task_log.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:  # a line cut by kill -9
                continue
    return out


# --------------------------------------------------------------------------- running


def run_task(task: Task, cache_root: str, *, threads: int = 1) -> dict[str, Any]:
    """Run ``task`` (on whichever worker) and move its output into the cache.

    Returns ``{"result": <result.json>, "seconds": float, "peak_rss_mb": float}``.
    BLAS is limited to ``threads`` threads, so that results do not depend on the
    executor. If the output already exists (another worker finished it), it is reused.
    """
    cache = TaskCache(cache_root)
    final = cache.task_dir(task)
    if (final / RESULT_FILE).is_file():
        return {"result": cache.result(task), "seconds": 0.0, "peak_rss_mb": _peak_rss_mb()}
    for module in task.payload.get("imports", ()):
        importlib.import_module(module)
    tmp = final.parent / f".{task.key}.tmp-{uuid.uuid4().hex}"
    tmp.mkdir(parents=True)
    t0 = time.perf_counter()
    try:
        with _blas_threads(threads):
            result = _RUNNERS[task.kind](task.payload, tmp)
        result = {"task": task.id, "kind": task.kind, "key": task.key, **result}
        (tmp / RESULT_FILE).write_text(canonical_json(result, indent=2), encoding="utf-8")
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / RESULT_FILE).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # a concurrent run finished first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {
        "result": cache.result(task),
        "seconds": time.perf_counter() - t0,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextlib.contextmanager
def _blas_threads(n: int) -> Iterator[None]:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield


def _file_record(path: Path) -> dict[str, Any]:
    return {"name": path.name, "sha256": file_sha256(path), "bytes": path.stat().st_size}


def _write_ledger(frame: Any, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame.astype(str), preserve_index=False)
    pq.write_table(table, path, compression="zstd")


def _run_ingest(p: Mapping[str, Any], out: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    adapter = get_source(p["source"])
    kwargs = dict(p["kwargs"])
    if not accepts_parameter(type(adapter), "dataset"):
        kwargs.pop("dataset", None)  # e.g. generic: the mapping file names the dataset
    res = adapter.ingest(**kwargs)
    if p.get("references") is not None:
        samples, notes = annotate_samples(
            res.samples, IdentityResolvers.from_store(str(p["references"]))
        )
        res.ledger.extend(notes)
        res = type(res)(samples, res.ledger)
    samples = res.samples
    name = p["dataset"]
    obs_dataset = samples.obs["dataset"].astype(str)
    if (obs_dataset != name).any():
        logger.info("%s: obs['dataset'] set to the plan's dataset name", name)
        samples.obs["dataset"] = pd.Categorical([name] * samples.n_obs)
    ctx = samples.obs["cell_context"].astype(str).to_numpy()
    order = np.argsort(ctx, kind="stable")
    if (np.diff(order) != 1).any():
        samples = samples[order].copy()
        ctx = ctx[order]
    samples.uns = strip_times(dict(samples.uns))
    _strings_with_gaps_as_categories(samples.obs)
    _strings_with_gaps_as_categories(samples.var)
    write_h5ad(samples, out / SAMPLES_FILE, compress=True)
    _write_ledger(res.ledger.to_frame(), out / LEDGER_FILE)
    contexts = []
    taken: set[str] = set()
    names, starts = np.unique(ctx, return_index=True)
    stops = np.append(starts[1:], len(ctx))
    for c, a, b in zip(names.tolist(), starts.tolist(), stops.tolist(), strict=True):
        contexts.append(
            {
                "context": c,
                "file_stem": safe_name(c, taken=taken),
                "start": a,
                "stop": b,
                "n_samples": b - a,
            }
        )
    meta = samples.uns.get("perturbridge", {})
    return {
        "dataset": name,
        "source": p["source"],
        "assay": ",".join(sorted(samples.obs["assay"].astype(str).unique())),
        "value_kind": str(meta.get("value_kind")),
        "n_samples": int(samples.n_obs),
        "n_genes": int(samples.n_vars),
        "contexts": contexts,
        "ledger": _ledger_counts(res.ledger.to_frame()),
        "files": {
            "samples": _file_record(out / SAMPLES_FILE),
            "ledger": _file_record(out / LEDGER_FILE),
        },
    }


def _strings_with_gaps_as_categories(frame: Any) -> None:
    """Text columns with missing values as categoricals (``.h5ad`` cannot store an
    object column that mixes strings and missing values)."""
    import pandas as pd

    for col in frame.columns:
        s = frame[col]
        if s.dtype == object and s.isna().any():
            values = s.dropna()
            if values.map(lambda v: isinstance(v, str)).all():
                frame[col] = pd.Categorical(s)


def accepts_parameter(adapter: type[Any], name: str) -> bool:
    """Whether the adapter's reader (``read_<source>``) takes keyword ``name``.

    Adapters without a discoverable reader are assumed to take it.
    """
    params = adapter.parameter_names()
    return params is None or name in params[0] or params[2]


def _ledger_counts(frame: Any) -> dict[str, int]:
    if not len(frame):
        return {}
    counts = frame.groupby(["stage", "status"], sort=True).size()
    return {f"{s}/{st}": int(n) for (s, st), n in counts.items()}


def _run_de(p: Mapping[str, Any], out: Path) -> dict[str, Any]:
    import anndata as ad
    import numpy as np
    import pandas as pd

    backed = ad.read_h5ad(p["samples"], backed="r")
    try:
        samples = backed[p["start"] : p["stop"]].to_memory()
    finally:
        backed.file.close()
    spec = p["de"]
    ledger = Ledger()
    if spec["min_cells"] > 0 and samples.obs["n_cells"].notna().any():
        n_cells = samples.obs["n_cells"].to_numpy(dtype=float, na_value=np.inf)
        few = n_cells < spec["min_cells"]
        if few.any():
            ledger.drop(
                samples.obs_names[few],
                stage="de_samples",
                reason="too_few_cells",
                detail=[f"n_cells={int(n)} < min_cells={spec['min_cells']}" for n in n_cells[few]],
            )
            samples = samples[~few].copy()
    mode = p["mode"]
    control_keys = spec.get("control_keys")
    options = de.DEOptions(
        orphan_vehicles=spec.get("orphan_vehicles", "drop"),
        fit_per_control_group=spec.get("fit_per_control_group", False),
        stdev_scaled=spec.get("stdev_scaled", False),
        robust=spec["robust"],
        trend=spec.get("trend"),
        confint=spec["confint"],
        quality_weights=spec.get("quality_weights", False),
        quality_design=spec.get("quality_design", "fit"),
    )
    method = de.method_for(samples)  # the one run picks: voom for counts, else trend
    res = de.run(
        samples,
        engine="r" if spec["engine"] == "r" else "python",  # the plan's "ours" is python
        mode=mode,
        control_keys=control_keys,
        options=options,
    )
    ledger.extend(res.ledger)
    effects = res.effects
    # the condition of each contrast: itself in group mode, its sample's group label in
    # separate mode (computed from the typed columns, never parsed from the label)
    if mode == "separate" and effects.n_obs:
        keys = de.control_keys_of(samples, control_keys)
        labels = de.condition_table(samples.obs, mode="group", control_keys=keys)["condition"]
        condition = labels.reindex(effects.obs["sample_id"].astype(str)).to_numpy()
    else:
        condition = effects.obs_names.to_numpy(dtype=str)
    effects.obs["condition"] = pd.Categorical(condition)
    effects.uns = strip_times(dict(effects.uns))
    write_h5ad(storage_effects(effects), out / EFFECTS_FILE, compress=True)
    frame = ledger.to_frame()
    _write_ledger(frame, out / LEDGER_FILE)
    return {
        "dataset": p["dataset"],
        "context": p["context"],
        "mode": mode,
        "method": method.label,
        "engine": spec["engine"],
        "n_samples": int(samples.n_obs),
        "n_contrasts": int(effects.n_obs),
        "n_genes": int(effects.n_vars),
        "ledger": _ledger_counts(frame),
        "files": {
            "effects": _file_record(out / EFFECTS_FILE),
            "ledger": _file_record(out / LEDGER_FILE),
        },
    }


_RUNNERS = {"ingest": _run_ingest, "de": _run_de}

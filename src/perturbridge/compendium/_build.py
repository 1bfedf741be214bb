"""Build a compendium from a plan: run the task graph, then write the store.

:func:`build` checks the plan, takes the store and cache locks, hashes the input
files, runs the ingest tasks and, as each finishes, the DE tasks of its contexts
(skipping every task whose output is already in the cache), then writes the store
unless it is already current. Re-running an unchanged plan computes nothing and
writes nothing; changing one dataset's inputs recomputes that dataset's tasks only; a
build killed at any point (``kill -9`` included) finishes on the next run with the same
bytes as an uninterrupted build.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ._common import IMPORTED_SOURCES, BuildError, PlanError, digest, write_json_atomic
from ._lock import store_lock
from .executors import Executor, make_executor
from .plan import BuildPlan, load_plan, slurm_profile_of
from .store import (
    DatasetPart,
    EffectsPart,
    mark_store,
    read_dataset_parts,
    read_manifest,
    store_is_current,
    write_store,
)
from .tasks import SAMPLES_FILE, Task, TaskCache, de_task, ingest_task, run_task

__all__ = ["BuildReport", "build", "plan_tasks"]

logger = logging.getLogger(__name__)


@dataclass
class BuildReport:
    """What a build did: tasks computed and found in the cache, and the store."""

    store: Path
    cache: Path
    run: str
    computed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    store_written: bool = False
    wall_s: float = 0.0
    manifest: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def n_tasks(self) -> int:
        return len(self.computed) + len(self.cached)


def _ingest_tasks(
    plan: BuildPlan, cache: TaskCache, *, remember: bool = True
) -> tuple[list[Task], dict[str, Any]]:
    """The ingest tasks and each dataset's provenance entry (inputs with checksums)."""
    paths = sorted({p for d in plan.datasets for _, p in d.input_paths()})
    refs_manifest = None
    if plan.references is not None:
        manifest = plan.references / "manifest.json"
        refs_manifest = manifest if manifest.is_file() else plan.references
        paths.append(refs_manifest)
    sums = cache.checksums(paths, remember=remember)
    refs_sum = sums[refs_manifest] if refs_manifest is not None else None
    tasks = []
    info: dict[str, Any] = {}
    for d in sorted(plan.datasets, key=lambda d: d.name):
        checks = [(k, str(p), sums[p]) for k, p in d.input_paths()]
        task = ingest_task(
            dataset=d.name,
            source=d.source,
            kwargs=d.ingest_kwargs(),
            input_checksums=checks,
            options=d.options,
            imports=plan.imports,
            references=None if plan.references is None else str(plan.references),
            references_checksum=refs_sum,
        )
        tasks.append(task)
        info[d.name] = {
            "source": d.source,
            "inputs": [
                {"parameter": k, "path": p, "sha256": s, "bytes": Path(p).stat().st_size}
                for k, p, s in checks
            ],
            "options": dict(d.options),
            "references": None
            if plan.references is None
            else {"path": str(plan.references), "sha256": refs_sum},
            "de": {"modes": list(d.de.modes), **d.de.params()},
        }
    return tasks, info


def _de_tasks(
    plan: BuildPlan, cache: TaskCache, ingest: Task, result: dict[str, Any]
) -> list[Task]:
    d = plan.dataset(ingest.payload["dataset"])
    samples = str(cache.task_dir(ingest) / SAMPLES_FILE)
    return [
        de_task(
            dataset=d.name,
            ingest_key=ingest.key,
            samples=samples,
            context=ctx,
            mode=mode,
            value_kind=result["value_kind"],
            de_params=d.de.params(),
            imports=plan.imports,
        )
        for mode in d.de.modes
        for ctx in result["contexts"]
    ]


def plan_tasks(plan: BuildPlan | str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The tasks a build of ``plan`` would run now, and whether each is cached.

    DE tasks of a dataset whose ingest is not cached are not known yet (they depend on
    its cell contexts) and are listed as ``de:<dataset>/*`` with status ``pending``.
    """
    plan = plan if isinstance(plan, BuildPlan) else load_plan(plan)
    cache = TaskCache(plan.store.cache)
    ingests, _ = _ingest_tasks(plan, cache, remember=False)  # writes nothing
    rows = []
    for t in ingests:
        if cache.is_done(t):
            rows.append({"task": t.id, "key": t.key, "status": "cached"})
            for de in _de_tasks(plan, cache, t, cache.result(t)):
                status = "cached" if cache.is_done(de) else "to run"
                rows.append({"task": de.id, "key": de.key, "status": status})
        else:
            rows.append({"task": t.id, "key": t.key, "status": "to run"})
            rows.append({"task": f"de:{t.payload['dataset']}/*", "key": "", "status": "pending"})
    return rows


class _Progress:
    def __init__(self, enabled: bool) -> None:
        self._bar: Any = None
        if enabled:
            from rich.progress import Progress

            self._bar = Progress(transient=True)
            self._bar.start()
            self._task = self._bar.add_task("tasks", total=0)

    def add(self, n: int = 1) -> None:
        if self._bar is not None:
            total = self._bar.tasks[0].total or 0
            self._bar.update(self._task, total=total + n)

    def advance(self, description: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=description)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def build(
    plan: BuildPlan | str | os.PathLike[str],
    *,
    executor: Executor | Callable[[], Executor] | None = None,
    progress: bool = False,
    force: bool = False,
) -> BuildReport:
    """Build (or bring up to date) the compendium store of a plan.

    Parameters
    ----------
    plan
        A :class:`~perturbridge.compendium.plan.BuildPlan` or the path of a TOML plan.
    executor
        Where tasks run: an :class:`~perturbridge.compendium.executors.Executor`, a
        function that makes one (called only if some task must run), or ``None`` for
        the plan's executor.
    progress
        Show a progress bar over tasks.
    force
        Let the build remove datasets of the store that the plan no longer lists (built
        from a plan; imported datasets are always kept). Without it such a build stops
        before any work and names them.

    Returns
    -------
    BuildReport
        Tasks computed and cached, whether the store was written, the manifest.

    Raises
    ------
    PlanError
        The plan is invalid (nothing is done).
    BuildError
        A task failed (finished tasks stay cached; re-run after fixing the cause), or
        another build is using the cache.
    LockError
        Another process is writing the store (the message names it); nothing is done.

    Examples
    --------
    >>> report = build("plan.toml")  # doctest: +SKIP
    >>> report.computed, report.cached  # doctest: +SKIP
    """
    plan = plan if isinstance(plan, BuildPlan) else load_plan(plan)
    t_start = time.perf_counter()
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    run = uuid.uuid4().hex[:12]
    cache = TaskCache(plan.store.cache)
    report = BuildReport(store=plan.store.path, cache=cache.root, run=run)
    mark_store(plan.store.path)  # first, so that a resumed build recognizes its store
    # one writer per store, whatever its cache: a second build fails here, before any work
    with store_lock(plan.store.path, purpose="build"), cache.lock():
        # read under the lock: an import finishing meanwhile must not be missed
        imported = _imported_datasets(plan)  # checked before any work: a clash is an error
        _check_removals(plan, force=force)
        removed = cache.clean_partial()
        if removed:
            logger.info("removed %d unfinished task folders of an interrupted build", removed)
        cache.log(run, "build_started", plan=str(plan.source_file or ""))
        ingests, info = _ingest_tasks(plan, cache)
        results: dict[str, dict[str, Any]] = {}
        de_by_dataset: dict[str, list[Task]] = {}
        bar = _Progress(progress)
        ex_holder: list[Executor] = []

        def get_executor() -> Executor:
            if not ex_holder:
                if isinstance(executor, Executor):
                    ex_holder.append(executor)
                elif executor is not None:
                    ex_holder.append(executor())
                else:
                    slurm = slurm_profile_of(plan) if plan.executor.kind == "slurm" else None
                    ex_holder.append(make_executor(plan.executor, slurm=slurm))
            return ex_holder[0]

        pending: dict[Any, Task] = {}

        def finished(task: Task, result: dict[str, Any]) -> None:
            results[task.id] = result
            bar.advance(task.id)
            if task.kind == "ingest":
                des = _de_tasks(plan, cache, task, result)
                de_by_dataset[task.payload["dataset"]] = des
                bar.add(len(des))
                for de in des:
                    schedule(de)

        def schedule(task: Task) -> None:
            if cache.is_done(task):
                cache.log(run, "cached", task)
                report.cached.append(task.id)
                finished(task, cache.result(task))
                return
            ex = get_executor()
            fut = ex.submit(
                run_task,
                task,
                str(cache.root),
                threads=plan.executor.threads_per_task,
                key=f"{task.id}-{task.key[:16]}-{run}",
            )
            pending[fut] = task
            cache.log(run, "submitted", task)

        try:
            bar.add(len(ingests))
            for t in ingests:
                schedule(t)
            while pending:
                done = get_executor().wait_any(list(pending))
                for fut in sorted(done, key=lambda f: pending[f].id):
                    task = pending.pop(fut)
                    try:
                        outcome = fut.result()
                    except Exception as err:
                        msg = f"{type(err).__name__}: {err}"
                        if isinstance(err, BrokenProcessPool):
                            msg += (
                                " (a worker process died: killed, out of memory, or a script "
                                "that calls build() without `if __name__ == '__main__':`)"
                            )
                        cache.log(run, "failed", task, error=msg)
                        raise BuildError(task.id, msg) from err
                    cache.log(
                        run,
                        "done",
                        task,
                        seconds=round(outcome["seconds"], 3),
                        peak_rss_mb=round(outcome["peak_rss_mb"], 1),
                    )
                    report.computed.append(task.id)
                    report.timings[task.id] = outcome["seconds"]
                    finished(task, outcome["result"])
        finally:
            bar.close()
            executor_info = ex_holder[0].describe() if ex_holder else {"executor": "none"}
            if ex_holder and not isinstance(executor, Executor):
                ex_holder[0].close()
        parts = _parts(plan, cache, ingests, de_by_dataset, results, info)
        joined: list[DatasetPart] = []
        if imported:
            work = cache.root / "tasks" / "join"
            work.mkdir(parents=True, exist_ok=True)
            joined = read_dataset_parts(plan.store.path, imported, work=work)
            parts = sorted([*parts, *joined], key=lambda p: p.name)
        build_key = digest(
            {
                "version": __version__,
                "store": plan.store.params(),
                "datasets": [
                    [t.key, sorted(d.key for d in de_by_dataset[t.payload["dataset"]])]
                    for t in ingests
                ],
                # datasets imported from release files, kept as they are
                "joined": {
                    p.name: sorted([p.samples_sha256 or ""] + [e.sha256 for e in p.effects])
                    for p in joined
                },
            }
        )
        if store_is_current(plan.store.path, build_key):
            cache.log(run, "store_current", build_key=build_key)
            report.manifest = read_manifest(plan.store.path)
        else:
            t_store = time.perf_counter()
            report.manifest = write_store(
                plan.store.path,
                parts,
                zarr_layers=plan.store.zarr_layers,
                rows_per_shard=plan.store.chunk_conditions,
                build_key=build_key,
                progress=progress,
            )
            report.timings["store"] = time.perf_counter() - t_store
            report.store_written = True
            report.wall_s = time.perf_counter() - t_start
            write_json_atomic(
                plan.store.path / "timings.json",
                {
                    "run": run,
                    "started_utc": started,
                    "wall_s": round(report.wall_s, 3),
                    "executor": executor_info,
                    "computed": report.computed,
                    "cached": report.cached,
                    "seconds": {k: round(v, 3) for k, v in sorted(report.timings.items())},
                },
            )
            cache.log(run, "store_written", build_key=build_key)
        report.wall_s = time.perf_counter() - t_start
        cache.log(run, "build_finished", computed=len(report.computed), cached=len(report.cached))
    return report


def _imported_datasets(plan: BuildPlan) -> list[str]:
    """Datasets of the plan's existing store that were imported (release files or
    precomputed signatures, :data:`IMPORTED_SOURCES`): a build keeps them beside the
    plan's datasets. A plan dataset of the same name would replace one silently, so it is
    an error."""
    if not (plan.store.path / "manifest.json").is_file():
        return []
    manifest = read_manifest(plan.store.path)
    imported = [
        str(d["name"]) for d in manifest.get("datasets", []) if d.get("source") in IMPORTED_SOURCES
    ]
    clash = sorted(set(imported) & {d.name for d in plan.datasets})
    if clash:
        raise PlanError(
            [
                f"dataset {name!r} of the plan has the name of a dataset imported into "
                f"{plan.store.path} (import-release or import-signatures); rename one of them "
                "(a build never replaces an imported dataset)"
                for name in clash
            ]
        )
    return [n for n in imported if n not in {d.name for d in plan.datasets}]


def _check_removals(plan: BuildPlan, *, force: bool) -> None:
    """Refuse (before any work) a build that would remove plan-built datasets of the
    store that this plan does not list, unless ``force``."""
    if force or not (plan.store.path / "manifest.json").is_file():
        return
    manifest = read_manifest(plan.store.path)
    listed = {d.name for d in plan.datasets}
    gone = sorted(
        str(d["name"])
        for d in manifest.get("datasets", [])
        if d.get("source") not in IMPORTED_SOURCES and str(d["name"]) not in listed
    )
    if gone:
        raise PlanError(
            [
                f"the store {plan.store.path} holds dataset(s) {gone} that this plan does not "
                "list; building would remove them: add them to the plan, choose another store, "
                "or pass --force (force=True) to remove them"
            ]
        )


def _parts(
    plan: BuildPlan,
    cache: TaskCache,
    ingests: list[Task],
    de_by_dataset: dict[str, list[Task]],
    results: dict[str, dict[str, Any]],
    info: dict[str, Any],
) -> list[DatasetPart]:
    parts = []
    for t in ingests:
        name = t.payload["dataset"]
        res = results[t.id]
        stems = {c["context"]: c["file_stem"] for c in res["contexts"]}
        effects = []
        methods = set()
        de_keys = {}
        for de in de_by_dataset[name]:
            r = results[de.id]
            d = cache.task_dir(de)
            methods.add(r["method"])
            de_keys[f"{r['mode']}/{r['context']}"] = de.key
            effects.append(
                EffectsPart(
                    mode=r["mode"],
                    context=r["context"],
                    file_stem=stems[r["context"]],
                    path=d / r["files"]["effects"]["name"],
                    sha256=r["files"]["effects"]["sha256"],
                    n_contrasts=int(r["n_contrasts"]),
                    ledger=d / r["files"]["ledger"]["name"],
                )
            )
        entry = dict(info[name])
        entry.update(
            {
                "assay": res["assay"],
                "value_kind": res["value_kind"],
                "n_samples": res["n_samples"],
                "n_genes": res["n_genes"],
                "de_method": ",".join(sorted(methods)),
                "tasks": {"ingest": t.key, "de": dict(sorted(de_keys.items()))},
            }
        )
        ingest_dir = cache.task_dir(t)
        parts.append(
            DatasetPart(
                name=name,
                source=res["source"],
                assay=res["assay"],
                value_kind=res["value_kind"],
                samples=ingest_dir / res["files"]["samples"]["name"],
                samples_sha256=res["files"]["samples"]["sha256"],
                ledger=ingest_dir / res["files"]["ledger"]["name"],
                effects=tuple(effects),
                info=entry,
            )
        )
    return parts

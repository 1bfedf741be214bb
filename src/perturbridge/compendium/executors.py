"""Executors: where the tasks of a build run.

The build driver only submits :func:`~perturbridge.compendium.tasks.run_task` calls and
waits for any of them to finish, through the small :class:`Executor` interface. The
statistics code never sees the executor, and never imports Dask.

- ``local`` (default): processes on this machine (:class:`concurrent.futures.
  ProcessPoolExecutor`, spawned, so no state leaks from the driver); with one worker
  the tasks run in the driver's process. The workers end with the driver, even when it
  is killed with ``kill -9`` (see :func:`_end_with_driver`).
- ``dask``: a :class:`distributed.LocalCluster` of ``n_jobs`` single-threaded worker
  processes, or an existing cluster at ``scheduler_address``.
- ``slurm``: a :class:`dask_jobqueue.SLURMCluster` started from a profile of the plan
  (cores, memory, walltime, queue, job count).

Task arguments are small (paths and parameters): workers read their inputs from the
shared file system and write their outputs to the task cache there.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, ClassVar

from ..io._resource import Resource
from .plan import ExecutorSettings, SlurmProfile

__all__ = [
    "DaskExecutor",
    "Executor",
    "InlineExecutor",
    "LocalExecutor",
    "SlurmExecutor",
    "list_executors",
    "make_executor",
]

logger = logging.getLogger(__name__)

_DASK_HINT = (
    "the {kind} executor needs Dask: pip install 'perturbridge[dask]' (dask[distributed]{extra})"
)


def _import_distributed(kind: str) -> Any:
    try:
        import distributed
    except ImportError as err:
        raise ImportError(_DASK_HINT.format(kind=kind, extra="")) from err
    return distributed


class Executor(Resource):
    """Runs task functions somewhere and reports when they finish."""

    name: ClassVar[str]
    description: ClassVar[str]

    @abstractmethod
    def submit(self, fn: Callable[..., Any], /, *args: Any, key: str, **kwargs: Any) -> Any:
        """Start ``fn(*args, **kwargs)``; returns a future (``.result()`` re-raises)."""

    @abstractmethod
    def wait_any(self, futures: Sequence[Any]) -> set[Any]:
        """Block until at least one of ``futures`` is finished; return the finished ones."""

    def close(self) -> None:
        """Release workers and clusters this executor started (nothing by default)."""

    def describe(self) -> dict[str, Any]:
        """What ran the build (for ``timings.json``, not for the store's data)."""
        return {"executor": self.name}


class InlineExecutor(Executor):
    """Runs tasks one at a time in this process (``local`` with one worker).

    A task runs when the driver waits for it, so the driver logs each task as it
    finishes, exactly as with worker processes.
    """

    name = "inline"
    description = "in the build's own process, one task at a time"

    def __init__(self) -> None:
        self._calls: dict[Future[Any], tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]
        self._calls = {}

    def submit(self, fn: Callable[..., Any], /, *args: Any, key: str, **kwargs: Any) -> Any:
        fut: Future[Any] = Future()
        self._calls[fut] = (fn, args, kwargs)
        return fut

    def wait_any(self, futures: Sequence[Any]) -> set[Any]:
        done = {f for f in futures if f.done()}
        if done:
            return done
        fut = futures[0]
        fn, args, kwargs = self._calls.pop(fut)
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as err:  # handed to the caller through the future
            fut.set_exception(err)
        return {fut}


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_WATCH_INTERVAL_S = 0.5


def _end_with_driver(driver: int) -> None:
    """Worker initializer: end this worker when the driver process ``driver`` ends.

    A worker blocked waiting for work would otherwise outlive a driver killed with
    ``kill -9`` forever. On Linux the kernel sends the worker ``SIGKILL`` when its
    parent ends (``prctl(PR_SET_PDEATHSIG)``); elsewhere a daemon thread polls the
    parent's PID and exits the worker when it changes. (The kernel signal follows the
    driver *thread* that started the worker: an executor is used from the thread of the
    build, which outlives its workers.)
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            ok = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            ok = False
        if ok:
            if os.getppid() != driver:  # the driver ended before prctl took effect
                os._exit(1)
            return
    threading.Thread(
        target=_watch_driver, args=(driver,), name="perturbridge-watch-driver", daemon=True
    ).start()


def _watch_driver(driver: int) -> None:
    while os.getppid() == driver:
        time.sleep(_WATCH_INTERVAL_S)
    os._exit(1)


class LocalExecutor(Executor):
    """Worker processes on this machine (``spawn``ed, so each starts clean).

    The workers end with the driver, even when it is killed (:func:`_end_with_driver`).
    """

    name = "local"
    description = "processes on this machine (concurrent.futures)"

    def __init__(self, n_jobs: int) -> None:
        self.n_jobs = n_jobs
        self._pool = ProcessPoolExecutor(
            max_workers=n_jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_end_with_driver,
            initargs=(os.getpid(),),
        )

    def submit(self, fn: Callable[..., Any], /, *args: Any, key: str, **kwargs: Any) -> Any:
        return self._pool.submit(fn, *args, **kwargs)

    def wait_any(self, futures: Sequence[Any]) -> set[Any]:
        done, _ = wait(futures, return_when=FIRST_COMPLETED)
        return set(done)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "n_jobs": self.n_jobs}


class DaskExecutor(Executor):
    """A Dask cluster: a new ``LocalCluster``, or the scheduler at ``scheduler_address``."""

    name = "dask"
    description = "a Dask cluster (distributed.LocalCluster or --scheduler-address)"

    def __init__(
        self,
        *,
        n_jobs: int | None = None,
        scheduler_address: str | None = None,
        cluster: Any = None,
    ) -> None:
        distributed = _import_distributed(self.name)
        self._distributed = distributed
        self._own_cluster = None
        if scheduler_address is not None:
            self._client = distributed.Client(scheduler_address)
            self._where = scheduler_address
        else:
            if cluster is None:
                cluster = distributed.LocalCluster(
                    n_workers=n_jobs or os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    # the scheduler's HTTP server on a free port (None still takes 8787,
                    # and warns when another cluster holds it)
                    dashboard_address=":0",
                    silence_logs=logging.WARNING,
                )
            self._own_cluster = cluster
            self._client = distributed.Client(cluster)
            self._where = type(cluster).__name__
        self.n_jobs = n_jobs

    @property
    def client(self) -> Any:
        """The ``distributed.Client``."""
        return self._client

    def submit(self, fn: Callable[..., Any], /, *args: Any, key: str, **kwargs: Any) -> Any:
        return self._client.submit(fn, *args, key=key, pure=False, **kwargs)

    def wait_any(self, futures: Sequence[Any]) -> set[Any]:
        done, _ = self._distributed.wait(list(futures), return_when="FIRST_COMPLETED")
        return set(done)

    def close(self) -> None:
        self._client.close()
        if self._own_cluster is not None:
            self._own_cluster.close()

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "cluster": self._where, "n_jobs": self.n_jobs}


class SlurmExecutor(DaskExecutor):
    """Dask workers in SLURM jobs (``dask_jobqueue.SLURMCluster``) from a plan profile."""

    name = "slurm"
    description = "Dask workers in SLURM jobs (dask_jobqueue.SLURMCluster)"

    def __init__(self, profile: SlurmProfile) -> None:
        _import_distributed(self.name)
        try:
            from dask_jobqueue import SLURMCluster
        except ImportError as err:
            raise ImportError(_DASK_HINT.format(kind=self.name, extra=", dask-jobqueue")) from err
        cluster = SLURMCluster(**profile.cluster_kwargs())
        cluster.scale(jobs=profile.jobs)
        self.profile = profile
        super().__init__(cluster=cluster, n_jobs=profile.jobs * profile.processes)

    def describe(self) -> dict[str, Any]:
        return {
            "executor": self.name,
            "profile": self.profile.cluster_kwargs(),
            "jobs": self.profile.jobs,
        }


_EXECUTORS: dict[str, type[Executor]] = {
    "local": LocalExecutor,
    "dask": DaskExecutor,
    "slurm": SlurmExecutor,
}


def list_executors() -> dict[str, str]:
    """The executor kinds and what each runs on."""
    return {k: v.description for k, v in _EXECUTORS.items()}


def make_executor(settings: ExecutorSettings, *, slurm: SlurmProfile | None = None) -> Executor:
    """The executor the settings name (``local`` default workers: the CPU count)."""
    if settings.kind == "local":
        n = settings.n_jobs or os.cpu_count() or 1
        return InlineExecutor() if n == 1 else LocalExecutor(n)
    if settings.kind == "dask":
        return DaskExecutor(n_jobs=settings.n_jobs, scheduler_address=settings.scheduler_address)
    if settings.kind == "slurm":
        if slurm is None:
            raise ValueError("the slurm executor needs a SLURM profile from the plan")
        return SlurmExecutor(slurm)
    raise ValueError(f"unknown executor {settings.kind!r}; known: {sorted(_EXECUTORS)}")

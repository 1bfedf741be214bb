"""Executors: the same plan gives the same bytes in-process, in local processes and on
a Dask cluster; SLURM profiles reach dask-jobqueue."""

from __future__ import annotations

import sys

import pytest

from perturbridge.compendium import build, list_executors, load_plan
from perturbridge.compendium.executors import (
    DaskExecutor,
    InlineExecutor,
    LocalExecutor,
    SlurmExecutor,
    make_executor,
)
from perturbridge.compendium.plan import ExecutorSettings, SlurmProfile

from ._fixtures import assert_same_store


def _square(x: int) -> int:
    return x * x


def _boom() -> None:
    raise RuntimeError("boom")


@pytest.mark.slow
def test_local_processes_and_a_dask_cluster_give_identical_stores(tmp_path, built):
    """The acceptance test: local (2 processes) and a real LocalCluster of 2 workers."""
    pytest.importorskip("distributed")
    plan = load_plan(built["plan"])
    local = plan.with_overrides(store=tmp_path / "local", executor="local", n_jobs=2)
    report = build(local)
    assert len(report.computed) == 10
    assert_same_store(tmp_path / "local", built["store"])
    dask = plan.with_overrides(store=tmp_path / "dask", executor="dask", n_jobs=2)
    report = build(dask)
    assert len(report.computed) == 10
    assert_same_store(tmp_path / "dask", built["store"])
    timings = (tmp_path / "dask" / "timings.json").read_text()
    assert '"executor": "dask"' in timings


def test_inline_executor_runs_when_waited_for():
    ex = InlineExecutor()
    a = ex.submit(_square, 3, key="a")
    b = ex.submit(_boom, key="b")
    assert not a.done()
    assert ex.wait_any([a, b]) == {a}
    assert a.result() == 9
    assert ex.wait_any([b]) == {b}
    with pytest.raises(RuntimeError, match="boom"):
        b.result()


def test_make_executor_picks_the_kind():
    assert isinstance(make_executor(ExecutorSettings(n_jobs=1)), InlineExecutor)
    with make_executor(ExecutorSettings(n_jobs=2)) as ex:
        assert isinstance(ex, LocalExecutor)
        fut = ex.submit(_square, 4, key="x")
        assert ex.wait_any([fut]) == {fut}
        assert fut.result() == 16
        assert ex.describe() == {"executor": "local", "n_jobs": 2}
    with pytest.raises(ValueError, match="needs a SLURM profile"):
        make_executor(ExecutorSettings(kind="slurm"))
    assert set(list_executors()) == {"local", "dask", "slurm"}


def test_dask_executor_without_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install 'perturbridge\[dask\]'"):
        DaskExecutor(n_jobs=1)


# distributed probes a public address to pick its interface and warns (then uses the host
# name) on a machine without a network route: harmless, and the test must pass offline
@pytest.mark.filterwarnings("ignore:Couldn't detect a suitable IP address:RuntimeWarning")
def test_slurm_executor_builds_the_cluster_from_the_profile(monkeypatch):
    """dask-jobqueue receives the profile; the 'jobs' run here as an in-process cluster."""
    distributed = pytest.importorskip("distributed")
    jobqueue = pytest.importorskip("dask_jobqueue")
    seen: dict = {}

    class FakeSLURMCluster(distributed.LocalCluster):
        def __init__(self, **kwargs):
            seen["kwargs"] = kwargs
            super().__init__(
                n_workers=0, processes=False, dashboard_address=":0", threads_per_worker=1
            )

        def scale(self, n=None, jobs=0, **kw):
            seen.setdefault("jobs", []).append(jobs)
            return super().scale(jobs)

    monkeypatch.setattr(jobqueue, "SLURMCluster", FakeSLURMCluster)
    profile = SlurmProfile(
        cores=4, memory="16GB", walltime="02:00:00", queue="short", jobs=2, account="lab"
    )
    with SlurmExecutor(profile) as ex:
        fut = ex.submit(_square, 5, key="square-5")
        assert ex.wait_any([fut]) == {fut}
        assert fut.result() == 25
        assert ex.describe()["jobs"] == 2
    assert seen["kwargs"] == {
        "cores": 4,
        "memory": "16GB",
        "walltime": "02:00:00",
        "processes": 1,
        "queue": "short",
        "account": "lab",
    }
    assert 2 in seen["jobs"]  # cluster.scale(jobs=profile.jobs)

"""Builds: unchanged plans do nothing, changed inputs recompute only their tasks, a
killed build resumes to the same bytes, failures keep finished work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from perturbridge.compendium import (
    BuildError,
    Compendium,
    PlanError,
    build,
    load_plan,
    plan_tasks,
    read_task_log,
)
from perturbridge.compendium.tasks import TaskCache

from ._fixtures import assert_same_store, write_counts, write_l1000, write_plan

ROOT = Path(__file__).resolve().parents[2]


def _events(cache: Path, run: str | None = None) -> list[dict]:
    log = read_task_log(cache)
    if run is None:
        run = log[-1]["run"]
    return [e for e in log if e["run"] == run]


def test_rebuilding_an_unchanged_plan_does_nothing(built):
    store = built["store"]
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*") if ".cache" not in p.parts}
    report = build(built["plan"])
    assert report.computed == []
    assert len(report.cached) == 10
    assert not report.store_written
    events = _events(store / ".cache", report.run)
    kinds = [e["event"] for e in events]
    assert "submitted" not in kinds and "done" not in kinds
    assert kinds.count("cached") == 10
    assert "store_current" in kinds and "store_written" not in kinds
    after = {p: p.stat().st_mtime_ns for p in store.rglob("*") if ".cache" not in p.parts}
    assert after == before
    assert all(r["status"] == "cached" for r in plan_tasks(built["plan"]))


@pytest.mark.slow
def test_changing_one_dataset_recomputes_only_its_tasks(tmp_path):
    inputs = tmp_path / "in"
    l1000 = write_l1000(inputs)
    counts = write_counts(inputs)
    plan = write_plan(tmp_path, l1000=l1000, counts=counts, extra="[executor]\nn_jobs = 1\n")
    first = build(plan)
    assert len(first.computed) == 10
    write_counts(inputs, seed=7)  # new counts, same path
    second = build(plan)
    events = _events(tmp_path / "store" / ".cache", second.run)
    done = sorted(e["task"] for e in events if e["event"] == "done")
    cached = sorted(e["task"] for e in events if e["event"] == "cached")
    assert done == [
        "de:sim_counts/group/CVCL_0023",
        "de:sim_counts/group/CVCL_0031",
        "ingest:sim_counts",
    ]
    assert all(t.split(":")[1].startswith("sim_l1000") for t in cached)
    assert len(cached) == 7
    assert second.store_written
    # the incremental store equals a fresh build of the changed inputs
    fresh = load_plan(plan).with_overrides(store=tmp_path / "fresh")
    build(fresh)
    assert_same_store(tmp_path / "store", tmp_path / "fresh")


@pytest.mark.slow
def test_removing_a_dataset_removes_its_files(tmp_path, inputs):
    plan = write_plan(tmp_path, l1000=inputs["l1000"], counts=inputs["counts"])
    build(plan)
    assert (tmp_path / "store" / "samples" / "sim_counts.h5ad").is_file()
    plan = write_plan(tmp_path, l1000=inputs["l1000"])
    # never without asking: the build stops before any work and names the dataset
    with pytest.raises(PlanError, match=r"\['sim_counts'\] that this plan does not list"):
        build(plan)
    assert (tmp_path / "store" / "samples" / "sim_counts.h5ad").is_file()
    report = build(plan, force=True)
    assert report.computed == [] and report.store_written
    store = tmp_path / "store"
    assert not (store / "samples" / "sim_counts.h5ad").exists()
    assert not (store / "effects" / "sim_counts").exists()
    fresh = load_plan(plan).with_overrides(store=tmp_path / "fresh")
    build(fresh)
    assert_same_store(store, tmp_path / "fresh")


BUILD_SCRIPT = """
import sys
from perturbridge.compendium import build

if __name__ == "__main__":
    build(sys.argv[1])
"""


@pytest.mark.slow
def test_killed_build_resumes_to_the_same_bytes(tmp_path, inputs, built):
    """SIGKILL the build right after its first DE task, then build again."""
    plan = write_plan(
        tmp_path,
        l1000=inputs["l1000"],
        counts=inputs["counts"],
        extra="[executor]\nn_jobs = 1\n",
    )
    script = tmp_path / "run_build.py"
    script.write_text(textwrap.dedent(BUILD_SCRIPT))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), str(ROOT / "tests"), env.get("PYTHONPATH", "")]
    )
    cache = tmp_path / "store" / ".cache"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(plan)],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    first_de = None
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            done = [e for e in read_task_log(cache) if e["event"] == "done" and e["kind"] == "de"]
            if done:
                first_de = done[0]["task"]
                break
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        _, err = proc.communicate(timeout=60)
    assert first_de is not None, f"no DE task finished: {err.decode()[-2000:]}"
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "store" / "manifest.json").exists()  # killed midway
    report = build(plan)
    events = _events(cache, report.run)
    assert {"task": first_de, "event": "cached"} in [
        {"task": e.get("task"), "event": e["event"]} for e in events
    ]
    assert report.computed  # the rest was computed
    assert_same_store(tmp_path / "store", built["store"])


def test_a_failing_task_stops_the_build_and_keeps_finished_work(tmp_path, inputs):
    plan = write_plan(
        tmp_path,
        l1000=inputs["l1000"],
        counts=inputs["counts"],
        extra="[executor]\nn_jobs = 1\n",
    )
    text = plan.read_text().replace(
        'inputs = { h5ad = "', 'options = { fail = true }\ninputs = { h5ad = "'
    )
    plan.write_text(text)
    with pytest.raises(BuildError, match="task ingest:sim_counts failed: ValueError: planted"):
        build(plan)
    events = read_task_log(tmp_path / "store" / ".cache")
    assert [e["task"] for e in events if e["event"] == "failed"] == ["ingest:sim_counts"]
    assert not (tmp_path / "store" / "manifest.json").exists()
    tasks = TaskCache(tmp_path / "store" / ".cache")
    assert not list((tasks.root / "tasks").glob("*/.*tmp-*"))


def test_two_builds_cannot_share_a_cache(tmp_path, inputs):
    plan = load_plan(write_plan(tmp_path, l1000=inputs["l1000"]))
    with (
        TaskCache(plan.store.cache).lock(),
        pytest.raises(BuildError, match="another build is using the cache"),
    ):
        build(plan)


@pytest.mark.slow
def test_references_resolve_identities_and_key_the_ingest(tmp_path):
    from ids._fixtures import source_dir
    from perturbridge.ids.store import RefStore

    RefStore.build(source_dir=source_dir(tmp_path), out=tmp_path / "refs")
    l1000 = write_l1000(tmp_path / "in")
    extra = '[references]\npath = "refs"\n[executor]\nn_jobs = 1\n'
    plan = write_plan(tmp_path, l1000=l1000, extra=extra)
    build(plan)
    with Compendium.open(tmp_path / "store") as comp:
        samples = comp.sql("SELECT cell_context, cell_status FROM samples")
        manifest = comp.manifest
    assert set(samples["cell_status"]) == {"resolved"}
    assert samples["cell_context"].str.startswith("CVCL_").all()
    assert manifest["datasets"][0]["references"]["sha256"]
    # without the references the ingest task is a different one
    plain = load_plan(write_plan(tmp_path, l1000=l1000, name="plain.toml"))
    with_refs = load_plan(plan)
    keys = {r["task"]: r["key"] for r in plan_tasks(with_refs)}
    other = {r["task"]: r["key"] for r in plan_tasks(plain)}
    assert keys["ingest:sim_l1000"] != other["ingest:sim_l1000"]

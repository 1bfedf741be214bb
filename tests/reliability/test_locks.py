"""Locks: one writer per store, stale locks taken over, workers that end with their driver.

Faults: two builds into one store with different task caches at the same moment (before
the store lock, in 3 of 10 trials both finished and the store's arrays were gone); a
writer killed while it held the lock; a driver killed while its worker processes ran.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from compendium._fixtures import tree_bytes, write_l1000, write_plan
from perturbridge.compendium import BuildError, build
from perturbridge.compendium._lock import STORE_LOCK, read_holder, store_lock
from perturbridge.compendium.store import mark_store
from perturbridge.compendium.tasks import TaskCache
from perturbridge.errors import LockError

ROOT = Path(__file__).resolve().parents[2]
N_TRIALS = 20

# One of the two racing processes: for each trial, it says it is ready, waits until the
# other is ready too, then runs `perturbridge build PLAN --cache CACHE` (the CLI, in
# this process, so that imports are paid once) and records the exit code and message.
# Each process keeps its own cache across the trials: after a trial it has won, its tasks
# are cached and its next win writes only the store, where the two builds meet.
RACER = """
    import json, os, sys, time
    from pathlib import Path

    from typer.testing import CliRunner

    from perturbridge.cli import app

    folder, me, other, n = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    runner = CliRunner()
    with open(folder / f"{me}.jsonl", "a") as out:
        for i in range(n):
            (folder / f"ready-{me}-{i}").touch()
            while not (folder / f"ready-{other}-{i}").exists():
                time.sleep(0.001)
            plan, cache = folder / f"plan{i}.toml", folder / f"cache-{me}"
            res = runner.invoke(app, ["build", str(plan), "--cache", str(cache)])
            out.write(json.dumps({"trial": i, "pid": os.getpid(), "exit": res.exit_code,
                                  "output": res.output}) + "\\n")
            out.flush()
"""

HOLDER = """
    import sys, time
    from perturbridge.compendium._lock import store_lock

    with store_lock(sys.argv[1], purpose="test-holder"):
        print("held", flush=True)
        time.sleep(600)
"""

DRIVER = """
    import os, time
    from perturbridge.compendium.executors import LocalExecutor

    if __name__ == "__main__":
        ex = LocalExecutor(2)
        quick = ex.submit(os.getpid, key="quick")
        slow = ex.submit(time.sleep, 600, key="slow")
        quick.result()  # one worker idle, one busy
        print("running", flush=True)
        time.sleep(600)
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), str(ROOT / "tests"), env.get("PYTHONPATH", "")]
    )
    return env


def _script(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def _small_plan(folder: Path, l1000: Path, *, name: str, store: str = "store") -> Path:
    """One dataset, one mode (three DE tasks): what the lock tests race over."""
    extra = "[executor]\nn_jobs = 1\n"
    return write_plan(
        folder, l1000=l1000, store=store, name=name, extra=extra, l1000_modes=("group",)
    )


@pytest.fixture(scope="module")
def l1000(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_l1000(tmp_path_factory.mktemp("inputs"), n_compounds=1)


@pytest.mark.slow
def test_two_builds_into_one_store_with_different_caches(tmp_path, l1000, fault):
    """20 trials: two processes build one store, each with its own cache, at once."""
    reference = tmp_path / "reference"
    reference.mkdir()
    build(_small_plan(reference, l1000, name="plan.toml"))
    expected = tree_bytes(reference / "store")
    for i in range(N_TRIALS):
        _small_plan(tmp_path, l1000, name=f"plan{i}.toml", store=f"store{i}")
        # an existing (empty) store: two builds into a folder that does not exist yet
        # can also meet in the plan check, which sees the other's marker half-written
        mark_store(tmp_path / f"store{i}")
    racer = _script(tmp_path, "racer.py", RACER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(racer), str(tmp_path), me, other, str(N_TRIALS)],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for me, other in (("a", "b"), ("b", "a"))
    ]
    errors = [p.communicate(timeout=600)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    rows: dict[int, list[dict]] = {}
    for me in ("a", "b"):
        for line in (tmp_path / f"{me}.jsonl").read_text().splitlines():
            row = json.loads(line)
            rows.setdefault(row["trial"], []).append(row)
    one_proceeded = 0
    for i in range(N_TRIALS):
        store = tmp_path / f"store{i}"
        ok = [r for r in rows[i] if r["exit"] == 0]
        failed = [r for r in rows[i] if r["exit"] != 0]
        assert len(ok) == 1 and len(failed) == 1, (i, rows[i])
        message = " ".join(failed[0]["output"].split())  # rich wraps long lines
        assert "another process is writing the store" in message, message
        assert f"PID {ok[0]['pid']} on host" in message, message
        assert "wait for that process to finish" in message, message
        assert tree_bytes(store) == expected, f"trial {i}: the store differs from one build's"
        assert not (store / STORE_LOCK).exists()  # released
        one_proceeded += 1
    fault(
        "two builds, one store, two caches (20 trials)",
        "exactly one builds; the other exits non-zero naming the holder; the store intact",
        f"{one_proceeded}/{N_TRIALS} trials: one built, the other exited 2 naming the "
        "winner's PID; every store byte-identical to a single build's",
    )


def test_a_stale_store_lock_is_taken_over(tmp_path, l1000, fault, caplog):
    plan = _small_plan(tmp_path, l1000, name="plan.toml")
    store = tmp_path / "store"
    mark_store(store)
    holder = subprocess.Popen(
        [sys.executable, str(_script(tmp_path, "holder.py", HOLDER)), str(store)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().decode().strip() == "held"
        # alive: a build fails at once, in the library and through the CLI
        with pytest.raises(LockError, match=rf"writing the store .*PID {holder.pid} on host"):
            build(plan)
        cli = subprocess.run(
            [sys.executable, "-m", "perturbridge.cli", "build", str(plan)],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert cli.returncode != 0
        assert f"PID {holder.pid} on host" in " ".join(cli.stderr.split()), cli.stderr
        assert not (store / "manifest.json").exists()
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    assert read_holder(store / STORE_LOCK)["pid"] == holder.pid  # left behind
    with caplog.at_level("WARNING", logger="perturbridge.compendium._lock"):
        report = build(plan)
    assert report.store_written
    took_over = [r.getMessage() for r in caplog.records if "took over the lock" in r.getMessage()]
    assert len(took_over) == 1 and f"PID {holder.pid}" in took_over[0], caplog.text
    assert not (store / STORE_LOCK).exists()
    fault(
        "store lock of a killed writer",
        "the next build takes it over and says so",
        f"built; log: took over the lock of PID {holder.pid} (killed); CLI exit "
        f"{cli.returncode} while it lived",
    )


def test_the_store_lock_is_exclusive_in_one_process_too(tmp_path):
    with (
        store_lock(tmp_path, purpose="first"),
        pytest.raises(LockError, match=rf"PID {os.getpid()} on host .*\(first: "),
        store_lock(tmp_path, purpose="second"),
    ):
        pass
    with store_lock(tmp_path, purpose="again"):  # released
        assert read_holder(tmp_path / STORE_LOCK)["purpose"] == "again"


def test_the_cache_lock_names_its_holder(tmp_path):
    cache = TaskCache(tmp_path)
    with (
        cache.lock(),
        pytest.raises(
            BuildError, match=rf"another build is using the cache .*PID {os.getpid()} on host"
        ),
        cache.lock(),
    ):
        pass


def test_import_release_takes_the_store_lock(tmp_path):
    """import-release takes the store lock too: it fails at once while a build writes."""
    from compendium.test_importer import write_tree
    from perturbridge.compendium import import_release

    tree = write_tree(tmp_path / "release")
    store = tmp_path / "store"
    mark_store(store)
    with (
        store_lock(store, purpose="build"),
        pytest.raises(LockError, match=rf"writing the store .*PID {os.getpid()}.*\(build: "),
    ):
        import_release(tree, store)
    assert not (store / "manifest.json").exists()


def _alive(pid: int) -> bool:
    psutil = pytest.importorskip("psutil")
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_workers_end_with_a_killed_driver(tmp_path, fault):
    psutil = pytest.importorskip("psutil")
    workers: list[int] = []
    with subprocess.Popen(
        [sys.executable, str(_script(tmp_path, "driver.py", DRIVER))],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as driver:
        try:
            assert driver.stdout is not None
            assert driver.stdout.readline().decode().strip() == "running"
            children = psutil.Process(driver.pid).children(recursive=True)
            n_jobs = sum("resource_tracker" not in " ".join(c.cmdline()) for c in children)
            assert n_jobs == 2, [c.cmdline() for c in children]
            workers = [c.pid for c in children]  # and multiprocessing's resource tracker
            t0 = time.monotonic()
            os.kill(driver.pid, signal.SIGKILL)
            driver.wait(timeout=30)
            while time.monotonic() < t0 + 10 and any(_alive(p) for p in workers):
                time.sleep(0.05)
            waited = time.monotonic() - t0
            left = [p for p in workers if _alive(p)]
        finally:
            driver.kill()
            for pid in workers:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
    assert not left, f"workers {left} outlived their killed driver by {waited:.1f} s"
    fault(
        "driver killed with kill -9, one worker busy and one idle",
        "no worker outlives it (without the fix both lived on)",
        f"both workers and the resource tracker gone {waited:.2f} s after the kill",
    )

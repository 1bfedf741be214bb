"""A store update killed at arbitrary moments, without any hook in the code.

``test_store_faults.py`` kills an update at named steps through a test hook. Here the
update runs untouched in a subprocess; the test watches the store folder, and once the
update's folder (``STORE/.update-<id>``) appears it waits a fraction of the update's
measured duration and sends SIGKILL — so the kill lands wherever the writer happens to
be (inside the shard writes, the catalog, the manifest, the commit). After each kill
every read gives the old values, the new values or a ``StoreError``, never a mixture;
``repair`` and the next build give the bytes of an uninterrupted build.
"""

from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path

import pytest

from compendium._fixtures import assert_same_store, write_plan
from perturbridge.compendium import build
from perturbridge.compendium._common import StoreError
from perturbridge.compendium.store import repair_store, verify_store

from ._forker import Forker
from ._states import (
    EXTRA,
    copy_tree as _copy,
    read_values as _read,
    same_values as _same,
)

#: where in the update (as a fraction of its uninterrupted duration) the kill lands
FRACTIONS = (0.02, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 0.99)

BUILD_SCRIPT = """
import sys
from perturbridge.compendium import build
build(sys.argv[1])
"""


def _update_started(store: Path) -> bool:
    try:
        with os.scandir(store) as entries:
            return any(e.name.startswith(".update-") for e in entries)
    except FileNotFoundError:
        return False


def _run(
    plan: Path, script: Path, *, kill_after: float | None, forker: Forker
) -> tuple[int, float]:
    """Run a build in a process of its own (a fork: ``_forker.py``); SIGKILL it
    ``kill_after`` seconds after its update folder appears.

    Returns the exit status and the seconds from the update folder's appearance to the
    process's end (or to the kill).
    """
    store = plan.parent / "store"
    proc = forker.start(script, str(plan))
    start = None
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if start is None and _update_started(store):
            start = time.monotonic()
        if start is not None and kill_after is not None and time.monotonic() - start >= kill_after:
            proc.kill(signal.SIGKILL)
            break
        time.sleep(0.0005)
    code = proc.wait()
    assert start is not None, "the update folder never appeared: " + proc.stderr()[-2000:]
    return code, time.monotonic() - start


@pytest.mark.slow
def test_an_update_killed_at_any_moment_never_reads_mixed(tmp_path, two_states, fault, forker):
    l1000_b, counts = two_states["plan_b"]
    script = tmp_path / "build.py"
    script.write_text(textwrap.dedent(BUILD_SCRIPT))
    values = two_states["values"]

    probe = _copy(two_states["base"], tmp_path / "probe")
    code, duration = _run(
        write_plan(probe, l1000=l1000_b, counts=counts, extra=EXTRA),
        script,
        kill_after=None,
        forker=forker,
    )
    assert code == 0

    outcomes = []
    for i, fraction in enumerate(FRACTIONS):
        work = _copy(two_states["base"], tmp_path / f"work{i}")
        plan = write_plan(work, l1000=l1000_b, counts=counts, extra=EXTRA)
        code, _ = _run(plan, script, kill_after=fraction * duration, forker=forker)
        store = work / "store"
        try:
            got = _read(store)
        except StoreError:
            observed = "StoreError"
        else:
            observed = (
                "old values"
                if _same(got, values["a"])
                else "new values"
                if _same(got, values["b"])
                else "MIXED values"
            )
        killed = "killed" if code == -signal.SIGKILL else f"finished ({code})"
        outcomes.append(f"{fraction:.2f}: {killed}, {observed}")
        assert observed != "MIXED values", outcomes
        if code == -signal.SIGKILL:
            report = repair_store(store)
            assert report.ok, report
            assert _same(_read(store), values["a"]) or _same(_read(store), values["b"])
        build(plan)
        assert_same_store(store, two_states["refs"]["b"])
        assert not verify_store(store)
    fault(
        f"update SIGKILLed at {len(FRACTIONS)} moments (no hook; update took {duration:.2f} s)",
        "old/new values or StoreError; repair + rebuild = uninterrupted bytes",
        "; ".join(outcomes),
    )
    # the kills must really have landed inside updates, not after them
    assert sum("killed" in o for o in outcomes) >= 5, outcomes

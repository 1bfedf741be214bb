"""Exclusive locks held by one process at a time: a store's writer and a cache's build.

A lock is a file locked with ``flock``: the operating system releases it when its
process ends, ``kill -9`` included, so a lock is never left behind by a dead process.
The file's body is JSON naming the holder (PID, host, start time, command line), so a
second process that finds the lock taken can say who holds it. A holder that ends
normally removes the file; a file that is still there but unlocked was left by a
holder that died, and the next process takes it over (saying so in the log).

Two locks use this module:

- the **store lock** ``STORE/.lock``, taken by every process that writes a store
  (:func:`~perturbridge.compendium.build`, :func:`~perturbridge.compendium.
  importer.import_release`), so that two writers never interleave in one store even
  with different task caches;
- the **cache lock** ``CACHE/build.lock`` (:meth:`~perturbridge.compendium.tasks.
  TaskCache.lock`), so that two builds never share a task cache.

``flock`` locks are local to a machine unless the file system supports them across
machines (NFSv4 and Lustre with ``flock`` mounts do); the holder's host name is in the
message for that reason.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import logging
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import LockError

__all__ = ["STORE_LOCK", "describe_holder", "exclusive_lock", "read_holder", "store_lock"]

logger = logging.getLogger(__name__)

#: The lock file of a store (``STORE/.lock``); absent when no process writes the store.
STORE_LOCK = ".lock"

# a holder writes its body right after taking the lock: a process that finds the lock
# taken waits this long for the body before it says the holder is unknown
_BODY_WAIT_S = 1.0


def _holder_record(purpose: str) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "purpose": purpose,
    }


def read_holder(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The holder recorded in the lock file ``path`` (``None``: no file or no body).

    The record is what the last holder wrote; whether it still holds the lock is known
    only by trying to take it.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def describe_holder(holder: dict[str, Any] | None) -> str:
    """The holder of a lock in words, for messages."""
    if holder is None:
        return "a process that took the lock a moment ago (it has not written its name yet)"
    return (
        f"PID {holder.get('pid', '?')} on host {holder.get('host', '?')}, started "
        f"{holder.get('started_utc', '?')} ({holder.get('purpose', '?')}: "
        f"{holder.get('command', '?')})"
    )


def _wait_for_holder(path: Path) -> dict[str, Any] | None:
    deadline = time.monotonic() + _BODY_WAIT_S
    while True:
        holder = read_holder(path)
        if holder is not None or time.monotonic() >= deadline:
            return holder
        time.sleep(0.02)


@contextlib.contextmanager
def exclusive_lock(
    path: str | os.PathLike[str], *, purpose: str, busy: str, advice: str
) -> Iterator[dict[str, Any]]:
    """Hold the lock file ``path`` for the block, or raise :class:`LockError` at once.

    Parameters
    ----------
    path
        The lock file (created, with its folder, when absent; removed on release).
    purpose
        What this process does, recorded for others (``"build"``, ``"import-release"``).
    busy
        The start of the message when the lock is taken, e.g. ``"another build is using
        the cache /x"``; the holder and ``advice`` follow.
    advice
        What to do about it, the end of the message.

    Yields
    ------
    dict
        This holder's record (the lock file's body).
    """
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            os.close(fd)
            holder = _wait_for_holder(path)
            raise LockError(
                f"{busy}: held by {describe_holder(holder)}; {advice}. The lock file is "
                f"{path}; it is released when its holder exits, even if killed",
                path=str(path),
                holder=holder,
            ) from err
        except BaseException:
            os.close(fd)
            raise
        # the holder before us may have removed the file between our open and our lock:
        # then we locked a file no one else can see; start again with the current one
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        previous = read_holder(path)
        if previous is not None:
            logger.warning(
                "took over the lock %s: its holder, %s, ended without releasing it "
                "(killed or crashed); its unfinished work is resumed or replaced",
                path,
                describe_holder(previous),
            )
        record = _holder_record(purpose)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record, indent=2) + "\n").encode(), 0)
        os.fsync(fd)
        yield record
    finally:
        # remove the file while still holding it, so that a file left behind always
        # means a holder that died; leave it if someone replaced it meanwhile
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                os.unlink(path)
        os.close(fd)


def store_lock(
    store: str | os.PathLike[str], *, purpose: str
) -> contextlib.AbstractContextManager[dict[str, Any]]:
    """Hold the lock of the store folder ``store`` (``STORE/.lock``) for the block.

    Every process that writes a store takes it first, so a second writer fails at once
    with a :class:`~perturbridge.errors.LockError` naming the first, whatever task
    cache each uses.
    """
    root = Path(store).absolute()
    return exclusive_lock(
        root / STORE_LOCK,
        purpose=purpose,
        busy=f"another process is writing the store {root}",
        advice=(
            "a store has one writer at a time: wait for that process to finish (or stop "
            "it), then run this again, or write another store"
        ),
    )

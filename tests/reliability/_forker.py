"""Scripts run in forks of one process that has imported the store code already.

The fault tests kill real store updates in other processes. A new Python process pays
about 2 s of imports (NumPy, SciPy, pandas, AnnData, Zarr) before its update begins; a
fork of a process that imported them once starts at once. Each script still runs in a
process of its own, which the test kills with SIGKILL (or the script kills itself), and
nothing of one script's run reaches the next: every one is a fresh fork of the same
parent, which never runs a store update itself.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import textwrap
from pathlib import Path

from ._states import env

#: What the parent imports before it forks: the code a build and its store update run.
PRELOAD = (
    "perturbridge.compendium",
    "perturbridge.compendium._build",
    "perturbridge.compendium.tasks",
    "perturbridge.compendium.store",
    "perturbridge.sources.l1000",
    "compendium._fixtures",
    "anndata",
    "h5py",
    "zarr",
)

# The parent: one request per line, {"script", "args", "stderr"}; it forks, answers
# {"pid"}, waits for the child and answers {"status"} (as subprocess's returncode:
# -N for a signal). The child runs the script as __main__ and leaves with os._exit.
PARENT = """
    import importlib, json, os, runpy, sys, traceback

    for name in {preload!r}:
        importlib.import_module(name)
    print(json.dumps({{"ready": os.getpid()}}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                fd = os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 2)
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 1)
                sys.argv = [req["script"], *req["args"]]
                runpy.run_path(req["script"], run_name="__main__")
                code = 0
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        print(json.dumps({{"pid": pid}}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({{"status": os.waitstatus_to_exitcode(status)}}), flush=True)
"""


class Forker:
    """The parent process; :meth:`start` runs a script in a fork of it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._n = 0
        self._proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(PARENT).format(preload=PRELOAD)],
            env=env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        self._fd = self._proc.stdout.fileno()  # read unbuffered: poll() selects on it
        self._buffer = b""
        assert "ready" in self._answer(), "the forking parent did not start"

    def _answer(self, *, block: bool = True) -> dict[str, int] | None:
        """The parent's next answer (None: none yet, when not ``block``)."""
        while b"\n" not in self._buffer:
            if not block and not select.select([self._fd], [], [], 0)[0]:
                return None
            chunk = os.read(self._fd, 4096)
            if not chunk:
                raise RuntimeError(f"the forking parent ended (exit {self._proc.wait()})")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def start(self, script: Path, *args: str) -> Run:
        """Fork, and run ``script`` with ``args`` in the child; returns at once."""
        assert self._proc.stdin is not None
        self._n += 1
        stderr = self.folder / f"stderr-{self._n}.txt"
        request = {"script": str(script), "args": list(args), "stderr": str(stderr)}
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        answer = self._answer()
        assert answer is not None
        return Run(self, answer["pid"], stderr)

    def run(self, script: Path, *args: str) -> tuple[int, str]:
        """Run ``script`` to its end: its exit status (-N: signal N) and its stderr."""
        r = self.start(script, *args)
        return r.wait(), r.stderr()

    def close(self) -> None:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=60)
        self._proc.stdout.close()


class Run:
    """One script running in a fork: its ``pid``, whether it ended, its status."""

    def __init__(self, forker: Forker, pid: int, stderr: Path) -> None:
        self.forker, self.pid, self._stderr = forker, pid, stderr
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit status once the child has ended (the parent has reaped it), else None."""
        if self.returncode is None:
            answer = self.forker._answer(block=False)
            if answer is not None:
                self.returncode = int(answer["status"])
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            answer = self.forker._answer()
            assert answer is not None
            self.returncode = int(answer["status"])
        return self.returncode

    def kill(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def stderr(self) -> str:
        return self._stderr.read_text() if self._stderr.exists() else ""

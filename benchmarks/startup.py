"""How fast the ``perturbridge`` command starts, and how light a query stays.

Runs the installed ``perturbridge`` command (the one next to this Python) in child
processes and reports, as JSON:

- ``help``: for ``perturbridge --help`` and the help of every command, subcommand and
  ``ingest <adapter>``, the best (least) wall time and CPU time (user + system,
  ``getrusage(RUSAGE_CHILDREN)``) of 3 runs, each a fresh process; ``help_max`` names
  the slowest of the commands and the slowest of the ``ingest <adapter>`` helps (made
  from the adapters' declarations), ``help_over_0_6_s`` those whose best wall time is
  0.6 s or more;
- ``load_average``: ``/proc/loadavg`` before and after (timings on a busy machine are
  longer: compare CPU times, or runs side by side);
- ``query``: the peak RSS (MB, ``getrusage(RUSAGE_CHILDREN)``) and wall time of
  ``perturbridge query STORE "SELECT … FROM range(80000000)" --limit 5`` on a small
  simulated store, and of ``SELECT 1`` for comparison;
- ``import_s``: the best time of ``python -c "import perturbridge.cli"``.

Usage::

    python benchmarks/startup.py [--repeats 3] [--only help|query] [--baseline DIR]

``--baseline DIR`` times the helps of another source tree too (``DIR/src`` first on
``PYTHONPATH``), interleaved with this one's, for before/after figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

COMMAND = str(Path(sys.executable).with_name("perturbridge"))
BIG_QUERY = "SELECT range AS a, range * 2 AS b FROM range(80000000)"


def _wall(cmd: list[str]) -> float:
    return _run(cmd)[0]


def _run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall and CPU time (user + system) of ``cmd`` in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def _best(cmd: list[str], repeats: int) -> float:
    _wall(cmd)  # warm the file cache
    return round(min(_wall(cmd) for _ in range(repeats)), 3)


def _help_times(argv: list[str], repeats: int, *, baseline: Path | None = None) -> dict[str, float]:
    """Best wall and CPU time of ``perturbridge <argv> --help`` (a fresh process each);
    with ``baseline`` (a source tree), also those of that tree's package, run
    interleaved with this one's (``baseline_wall_s``, ``baseline_cpu_s``)."""
    cmd = [COMMAND, *argv, "--help"]
    envs: dict[str, dict[str, str] | None] = {"": None}
    if baseline is not None:
        envs["baseline_"] = {**os.environ, "PYTHONPATH": str(baseline / "src")}
    for env in envs.values():
        _run(cmd, env)  # warm the file cache
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in envs}
    for _ in range(repeats):
        for key, env in envs.items():
            runs[key].append(_run(cmd, env))
    out = {}
    for key, got in runs.items():
        out[f"{key}wall_s"] = round(min(w for w, _ in got), 3)
        out[f"{key}cpu_s"] = round(min(c for _, c in got), 3)
    return out


def _commands() -> tuple[list[list[str]], set[str]]:
    """Every command path of the CLI (``[]`` for the app itself), and the names of the
    ``ingest`` commands made from an adapter."""
    import typer

    from perturbridge.cli import app
    from perturbridge.sources import ADAPTERS

    def walk(group: Any, ctx: Any, path: list[str]) -> list[list[str]]:
        out = []
        for name in group.list_commands(ctx):
            out.append([*path, name])
            if name not in group.commands:  # made when looked up (an adapter's): not yet
                continue
            cmd = group.get_command(ctx, name)
            if hasattr(cmd, "list_commands"):
                out += walk(cmd, typer.Context(cmd, info_name=name, parent=ctx), [*path, name])
        return out

    root = typer.main.get_command(app)
    adapters = {f"ingest {n}" for n in ADAPTERS if n != "l1000"}
    return [[], *walk(root, typer.Context(root), [])], adapters


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _peak_mb(cmd: list[str]) -> tuple[float, float]:
    """Peak RSS (MB) and wall time of ``cmd`` run from a fresh, small Python process, so
    that ``RUSAGE_CHILDREN`` holds that one command."""
    probe = textwrap.dedent(
        """
        import resource, subprocess, sys, time
        t0 = time.perf_counter()
        subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, wall)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *cmd], check=True, capture_output=True, text=True
    ).stdout.split()
    kb = int(out[0]) if sys.platform != "darwin" else int(out[0]) // 1024
    return round(kb / 1024, 1), round(float(out[1]), 3)


def _store(folder: Path) -> Path:
    """A small store: a simulated L1000 level 3 GCT built from a plan."""
    from perturbridge.compendium import build
    from perturbridge.io import write_gct
    from perturbridge.simulate import L1000Plates, simulate_l1000

    sim = simulate_l1000(
        n_genes=40,
        n_compounds=2,
        n_replicates=2,
        plates=L1000Plates(n_vehicle_per_plate=6, n_poscon_per_plate=1, wells_per_plate=96),
        seed=0,
    )
    gct = folder / "level3.gct"
    write_gct(gct, sim.data, row_meta=sim.row_meta, col_meta=sim.col_meta)
    plan = folder / "plan.toml"
    plan.write_text(
        '[store]\npath = "store"\n\n[executor]\nn_jobs = 1\n\n'
        f'[[datasets]]\nname = "sim_l1000"\nsource = "l1000"\ninputs = {{ level3 = "{gct}" }}\n'
    )
    build(plan)
    return folder / "store"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="Runs per help command.")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="A source tree (e.g. `git archive REV src | tar -x -C DIR`) whose help timings "
        "are taken too, interleaved with this one's.",
    )
    parser.add_argument(
        "--only", choices=["help", "query"], help="Only the help timings, or only the query."
    )
    args = parser.parse_args()
    load_before = _loadavg()
    paths, adapters = _commands()
    if args.only == "query":
        paths = []
    helps = {
        " ".join(["perturbridge", *p]): _help_times(p, args.repeats, baseline=args.baseline)
        for p in paths
    }

    def slowest(names: list[str]) -> dict[str, Any]:
        if not names:
            return {}
        name = max(names, key=lambda n: helps[n]["wall_s"])
        return {"command": name, **helps[name]}

    own = [n for n in helps if n.removeprefix("perturbridge ") not in adapters]
    from_adapters = [n for n in helps if n.removeprefix("perturbridge ") in adapters]
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "help_max": {"commands": slowest(own), "ingest_adapters": slowest(from_adapters)},
        "help_over_0_6_s": sorted(n for n, t in helps.items() if t["wall_s"] >= 0.6),
        "help": helps,
        "import_s": _best([sys.executable, "-c", "import perturbridge.cli"], args.repeats),
    }
    if args.only != "help":
        with tempfile.TemporaryDirectory() as tmp:
            store = str(_store(Path(tmp)))
            big_mb, big_s = _peak_mb([COMMAND, "query", store, BIG_QUERY, "--limit", "5"])
            base_mb, base_s = _peak_mb([COMMAND, "query", store, "SELECT 1 AS x"])
        report["query"] = {
            "limit5_over_80M_rows": {"peak_rss_mb": big_mb, "wall_s": big_s},
            "select_1": {"peak_rss_mb": base_mb, "wall_s": base_s},
        }
    report["load_average"] = {"before": load_before, "after": _loadavg()}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

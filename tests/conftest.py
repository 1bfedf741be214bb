"""Shared fixtures: real public data in ../shared/data, the R limma oracle, one demo run.

Also the plumbing of parallel runs (``make test`` runs ``pytest -n auto --dist loadgroup``
with pytest-xdist): tests that use an expensive session fixture run on one worker, so the
fixture is built once, and the reliability tests' fault table reaches the main process.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

if TYPE_CHECKING:
    from perturbridge import _demo
    from perturbridge.compendium import BuildReport

# pytest-xdist workers are started with LINES and COLUMNS set (80 x 24 without a terminal);
# a rich console created with both set keeps that size for good, so a test's
# CliRunner(env={"COLUMNS": "200"}) would not widen the CLI's output. A worker drops them, as
# a run without xdist never has them. This must run before perturbridge.cli is first
# imported (its consoles are made then): this file imports it only inside fixtures.
if "PYTEST_XDIST_WORKER" in os.environ:
    for _name in ("LINES", "COLUMNS"):
        os.environ.pop(_name, None)

ROOT = Path(__file__).resolve().parents[1]

SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} (the shared data folder is absent)")
    return path


@pytest.fixture(scope="session")
def r_oracle() -> None:
    """Skip unless R with limma and statmod is available (the oracle of the DE tests)."""
    from perturbridge.de.r_limma import r_limma_status

    why = r_limma_status()
    if why is not None:
        pytest.skip(why)


def run_r(code: str, workdir: Path, **vectors) -> dict[str, np.ndarray]:
    """Run R ``code`` with numeric ``vectors`` bound by name; returns the R list ``out``.

    ``code`` must assign a named list of numeric vectors to ``out``.
    """
    import subprocess

    workdir.mkdir(parents=True, exist_ok=True)
    loads = []
    for name, v in vectors.items():
        np.savetxt(
            workdir / f"in_{name}.txt", np.atleast_1d(np.asarray(v, dtype=float)), fmt="%.17g"
        )
        loads.append(f'{name} <- scan("{workdir / f"in_{name}.txt"}", quiet = TRUE)')
    script = "\n".join(
        [
            "suppressMessages({library(limma); library(statmod)})",
            *loads,
            code,
            f"for (k in names(out)) write(format(out[[k]], digits = 17), "
            f'file.path("{workdir}", paste0("out_", k, ".txt")), ncolumns = 1)',
        ]
    )
    (workdir / "run.R").write_text(script)
    proc = subprocess.run(
        ["Rscript", str(workdir / "run.R")], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return {p.stem[4:]: np.loadtxt(p, ndmin=1) for p in workdir.glob("out_*.txt")}


def sample_obs(rows: list[tuple], *, dataset: str, assay: str, prefix: str):
    """Samples ``obs`` from ``(cell_context, plate, perturbagen, dose_uM, time_h,
    pert_type)`` rows, with the remaining schema columns filled in."""
    import pandas as pd

    obs = pd.DataFrame(
        rows,
        columns=[
            "cell_context",
            "plate",
            "perturbagen",
            "pert_dose_uM",
            "pert_time_h",
            "pert_type",
        ],
    )
    n = len(obs)
    obs.index = [f"{prefix}{i:05d}" for i in range(n)]
    obs["dataset"] = dataset
    obs["assay"] = assay
    obs["well"] = [f"W{i}" for i in range(n)]
    obs["replicate"] = "1"
    obs["cell_name"] = obs["cell_context"]
    obs["compound_id_source"] = obs["perturbagen"]
    obs["is_control"] = obs["pert_type"] == "vehicle"
    return obs


def indicator_design(cond: np.ndarray, plate: np.ndarray, k: int, q: int) -> np.ndarray:
    """The dense ``~0 + condition + plate`` design (plate 0 is the reference level)."""
    x = np.zeros((cond.size, k + q - 1))
    x[np.arange(cond.size), cond] = 1
    for j in range(1, q):
        x[plate == j, k + j - 1] = 1
    return x


def assert_same_element(ours: Any, theirs: Any, where: str = "") -> None:
    """Equal elements of AnnData files, of the same types and dtypes (data frames column by
    column): what ``perturbridge.io`` reads and what ``anndata.io.read_elem`` reads."""
    import pandas as pd
    from scipy import sparse

    assert type(ours) is type(theirs), (where, type(ours), type(theirs))
    if isinstance(theirs, pd.DataFrame):
        pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
        assert list(ours.columns) == list(theirs.columns), where
        assert ours.index.name == theirs.index.name, where
        for col in theirs.columns:
            assert type(ours[col].array) is type(theirs[col].array), (where, col)
    elif isinstance(theirs, dict):
        assert list(ours) == list(theirs), where
        for key in theirs:
            assert_same_element(ours[key], theirs[key], f"{where}/{key}")
    elif isinstance(theirs, np.ndarray):
        assert ours.dtype == theirs.dtype, where
        np.testing.assert_array_equal(ours, theirs, err_msg=where)
    elif isinstance(theirs, pd.Categorical):
        assert ours.ordered == theirs.ordered, where
        pd.testing.assert_extension_array_equal(ours, theirs)
    elif sparse.issparse(theirs):
        assert (ours != theirs).nnz == 0, where
    else:
        assert ours == theirs or (ours != ours and theirs != theirs), (where, ours, theirs)


def pytest_configure(config: pytest.Config) -> None:
    """typer's CliRunner builds the click command of an app on every invoke: about 40 ms
    for the perturbridge app, some 450 times a run. No test changes an app's commands
    (tests that need another app pass another Typer object), so each app's command is
    built once. (Imported here, after the terminal size above is settled.)"""
    import typer.testing

    typer.testing._get_command = functools.cache(typer.testing._get_command)


# ---- one `perturbridge demo` for the whole session (tests/test_demo.py, the docs' demo)


@dataclass
class DemoRun:
    """One ``perturbridge demo --out out``, with what its steps returned."""

    out: Path
    output: str
    exit_code: int
    l1000: _demo.DemoResult | None = None
    compendium: BuildReport | None = None


def _recording(module: Any, name: str, into: dict[str, Any], monkeypatch: pytest.MonkeyPatch):
    from perturbridge import _demo

    real = getattr(module, name)

    def call(*args: Any, **kwargs: Any) -> Any:
        into[name] = real(*args, **kwargs)
        return into[name]

    monkeypatch.setattr(module, name, call)
    monkeypatch.setattr(_demo, name, call)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    from typer.testing import CliRunner

    from perturbridge._demo import compendium as demo_compendium, l1000 as demo_l1000
    from perturbridge.cli import app

    out = tmp_path_factory.mktemp("demo") / "d"
    seen: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as mp:
        _recording(demo_l1000, "run_demo", seen, mp)
        _recording(demo_compendium, "run_demo_compendium", seen, mp)
        r = CliRunner().invoke(app, ["demo", "--out", str(out)])
    return DemoRun(
        out, r.output, r.exit_code, seen.get("run_demo"), seen.get("run_demo_compendium")
    )


# ---- parallel runs: pytest-xdist with `--dist loadgroup` (see `make test`)
#
# pytest 9.2 node ids are structured, so xdist 3.8's own loadgroup (which appends
# "@group" to the node id) groups nothing (pytest-xdist issue 1386). Here the workers
# write each test's group to a file and the main process schedules whole groups:
# a test's ``xdist_group`` mark, else the first of SHARED_FIXTURES it uses, else its file
# (so module fixtures are built once too).

#: Session fixtures that take seconds to build, and their group: every test that uses one
#: of them (directly or through another fixture) runs on the same worker, so each is built
#: once per run rather than once per worker. The first fixture here a test uses names it.
SHARED_FIXTURES = {
    "demo_run": "demo",  # `perturbridge demo`: the docs, the CLI and the metadata tests
    "built": "compendium-store",  # tests/compendium/conftest.py: the small built store
    "inputs": "compendium-store",  # ... and its inputs
    "sim_store": "search-store",  # tests/search/conftest.py
    "two_states": "store-faults",  # tests/reliability/conftest.py
    "shared_compound_store": "compound-store",  # tests/ids/conftest.py: ~95 s of RDKit
}
#: The groups that take longest (over 15 s, measured on 2 workers), longest first: they
#: are scheduled before every other group, so that no worker starts one of them while
#: the other worker is about to run out of work (a 22 s test started last once kept one
#: worker busy 24 s after the other had finished). Only the order of the work queue
#: depends on this list.
LONG_GROUPS = (
    "compound-store",
    "demo",
    "store-faults",
    "compendium-store",
    "tests/compendium/test_release_export.py",
    "tests/report/test_published.py",
    "tests/de/test_limma.py",
    "tests/ids/test_package_coverage.py",
    "tests/models/test_acceptance.py",
    "tests/reliability/test_locks.py",
    "tests/simulate/test_agreement_sim.py",
    "tests/report/test_html.py",
    "tests/agreement/published/test_golden.py",
    "tests/compendium/test_signatures.py",
    "tests/search/test_real_data.py",
    "tests/reliability/test_store_kill_anytime.py",
    "tests/de/test_voom.py",
    "search-store",
)
_GROUPS_DIR = "perturbridge_xdist_groups"


def _test_group(item: pytest.Item) -> str:
    marks = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                    for m in item.iter_markers("xdist_group")})  # fmt: skip
    if marks:
        return "_".join(marks)
    used = set(getattr(item, "fixturenames", ()))
    return next((g for f, g in SHARED_FIXTURES.items() if f in used), item.nodeid.split("::")[0])


@pytest.hookimpl(trylast=True)  # after xdist's own hook: the node ids the main process sees
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    folder = getattr(config, "workerinput", {}).get(_GROUPS_DIR)
    if folder is None:  # not an xdist worker under --dist loadgroup
        return
    groups = {item.nodeid: _test_group(item) for item in items}
    # the main process makes its work queue in collection order: the long groups first
    rank = {g: i for i, g in enumerate(LONG_GROUPS)}
    items.sort(key=lambda item: rank.get(groups[item.nodeid], len(rank)))  # stable
    out = Path(folder) / f"{config.workerinput['workerid']}.json"  # type: ignore[attr-defined]
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(groups))
    tmp.replace(out)  # written before the worker reports its collection


@pytest.hookimpl(optionalhook=True)  # xdist: the main process configures a worker
def pytest_configure_node(node: Any) -> None:
    config = node.config
    if config.getoption("dist", "no") != "loadgroup":
        return
    if not hasattr(config, "_perturbridge_groups"):
        config._perturbridge_groups = Path(tempfile.mkdtemp(prefix="xdist-groups-"))
    node.workerinput[_GROUPS_DIR] = str(config._perturbridge_groups)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getoption("dist", "no") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FixtureGroupScheduling(LoadScopeScheduling):
        """xdist's load-by-scope scheduling, one scope per group the workers wrote."""

        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if not self.groups:  # first called once every worker has collected
                folder = getattr(config, "_perturbridge_groups", None)
                files = sorted(Path(folder).glob("*.json")) if folder else []
                self.groups = json.loads(files[0].read_text()) if files else {}
            return self.groups.get(nodeid) or nodeid.split("::")[0]

    return FixtureGroupScheduling(config, log)


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = getattr(config, "_perturbridge_groups", None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


# ---- the reliability tests' fault table (tests/reliability, docs/reliability.md)

_FAULTS: list[tuple[str, str, str, str]] = []


@pytest.fixture
def fault(request: pytest.FixtureRequest) -> Callable[[str, str, str], None]:
    """``fault(name, expected, observed)``: record one fault of this test for the table."""
    test = request.node.nodeid.split("::")[-1]

    def record(name: str, expected: str, observed: str) -> None:
        _FAULTS.append((test, name, expected, observed))

    return record


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the rows to the main process
        workeroutput["reliability_faults"] = json.dumps(_FAULTS)


@pytest.hookimpl(optionalhook=True)  # an xdist hook: the main process hears of a worker's end
def pytest_testnodedown(node: Any, error: Any) -> None:
    rows = getattr(node, "workeroutput", {}).get("reliability_faults")
    if rows:
        _FAULTS.extend(tuple(r) for r in json.loads(rows))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The session ends with a table of every fault tried: expected, observed."""
    if not _FAULTS:
        return
    tr = terminalreporter
    tr.section("reliability: fault, expected, observed")
    width = max(len(r[1]) for r in _FAULTS)
    for _test, name, expected, observed in sorted(_FAULTS):
        tr.write_line(f"{name:<{width}}  expected: {expected}  |  observed: {observed}")

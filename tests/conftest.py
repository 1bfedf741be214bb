"""Shared fixtures: real public data in ../shared/data and the R limma oracle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from perturbridge import _demo
from perturbridge._demo import compendium as demo_compendium, l1000 as demo_l1000
from perturbridge.cli import app
from perturbridge.compendium import BuildReport

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
    real = getattr(module, name)

    def call(*args: Any, **kwargs: Any) -> Any:
        into[name] = real(*args, **kwargs)
        return into[name]

    monkeypatch.setattr(module, name, call)
    monkeypatch.setattr(_demo, name, call)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    out = tmp_path_factory.mktemp("demo") / "d"
    seen: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as mp:
        _recording(demo_l1000, "run_demo", seen, mp)
        _recording(demo_compendium, "run_demo_compendium", seen, mp)
        r = CliRunner().invoke(app, ["demo", "--out", str(out)])
    return DemoRun(
        out, r.output, r.exit_code, seen.get("run_demo"), seen.get("run_demo_compendium")
    )

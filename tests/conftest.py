"""Shared fixtures: real public data in ../shared/data and the R limma oracle."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
ORACLE_DIR = Path(__file__).resolve().parent / "oracle"
R_LAYERS = ("logFC", "t", "P.Value", "adj.P.Val", "CI.L", "CI.R", "AveExpr", "B",
            "stdev.unscaled")


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} (the shared data folder is absent)")
    return path


def _r_status() -> str | None:
    """None when Rscript with limma and statmod works, else why not."""
    if shutil.which("Rscript") is None:
        return "Rscript not found (install r-base-core r-bioc-limma r-cran-statmod, or run make test as root)"
    proc = subprocess.run(
        ["Rscript", "-e", "suppressMessages({library(limma); library(statmod)})"],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        return f"R packages limma/statmod missing: {proc.stderr.strip()[:200]}"
    return None


@pytest.fixture(scope="session")
def r_limma() -> Callable[..., dict[str, np.ndarray]]:
    """Run R limma (lmFit → contrasts.fit → eBayes(trend, robust) → topTable) on given data."""
    why = _r_status()
    if why is not None:
        pytest.skip(why)

    def run(
        workdir: Path,
        x: np.ndarray,
        conditions: Sequence[str],
        plates: Sequence[str],
        levels: Sequence[str],
        plate_levels: Sequence[str],
        contrasts: Sequence[tuple[str, str]],
        *,
        how: str = "all",
    ) -> dict[str, np.ndarray]:
        """``x`` is samples × genes; returns genes × contrasts matrices per layer."""
        workdir.mkdir(parents=True, exist_ok=True)
        np.savetxt(workdir / "expr.txt", np.asarray(x, dtype=float).T, fmt="%.17g")
        with open(workdir / "samples.tsv", "w") as fh:
            fh.write("condition\tplate\n")
            fh.writelines(f"{c}\t{p}\n" for c, p in zip(conditions, plates, strict=True))
        (workdir / "levels.txt").write_text("\n".join(levels) + "\n")
        (workdir / "plates.txt").write_text("\n".join(plate_levels) + "\n")
        with open(workdir / "contrasts.tsv", "w") as fh:
            fh.write("treated\tcontrol\n")
            fh.writelines(f"{t}\t{c}\n" for t, c in contrasts)
        proc = subprocess.run(
            ["Rscript", str(ORACLE_DIR / "limma_trend.R"), str(workdir), how],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"R limma failed:\n{proc.stderr}")
        out = {}
        for layer in R_LAYERS:
            m = np.loadtxt(workdir / f"R_{layer}.txt", ndmin=2)
            out[layer] = m
        return out

    return run

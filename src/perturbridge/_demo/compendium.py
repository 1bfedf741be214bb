"""A demo compendium: one small simulated dataset of every assay family, one plan.

:func:`write_demo_plan` writes, under ``out_dir/inputs/``, a small dataset in the
upstream layout of every source family (L1000 level 3 GCTX, OP3, DRUG-seq MoA Box,
VCPI, GDPx2, sci-Plex, Tahoe-100M, CIGS, DILImap and a generic mapping), and a plan
``out_dir/plan.toml`` that builds them into ``out_dir/compendium``.
:func:`run_demo_compendium` writes and builds it::

    from perturbridge._demo import run_demo_compendium
    report = run_demo_compendium("demo_compendium")

Then ``perturbridge info demo_compendium/compendium`` summarizes it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..compendium import BuildReport, build
from ..io.gct import write_gctx
from ..simulate import simulate_l1000
from ..simulate.upstream_generic import write_generic
from .fixtures import FAMILIES, FIXTURES, check_families

__all__ = ["run_demo_compendium", "write_demo_plan"]


def _l1000(folder: Path, seed: int) -> dict[str, Any]:
    sim = simulate_l1000(n_genes=200, n_compounds=4, n_replicates=3, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    path = write_gctx(
        folder / "level3.gctx", sim.data, row_meta=sim.row_meta, col_meta=sim.col_meta
    )
    return {"inputs": {"level3": path}, "modes": ["group", "separate"]}


def _generic(folder: Path, seed: int) -> dict[str, Any]:
    return {"inputs": {"mapping": write_generic(folder, seed=seed)["mapping"]}}


def _fixture(name: str) -> Callable[[Path, int], dict[str, Any]]:
    """A family of :data:`~perturbridge._demo.fixtures.FIXTURES`, its files as plan inputs."""
    fixture = FIXTURES[name]

    def make(folder: Path, seed: int) -> dict[str, Any]:
        return {"inputs": fixture.inputs(fixture.write(folder, seed=seed), folder)}

    return make


#: How each family's dataset and plan inputs are made.
WRITERS: dict[str, Callable[[Path, int], dict[str, Any]]] = {
    "l1000": _l1000,
    **{name: _fixture(name) for name in FIXTURES},
    "generic": _generic,
}


def _toml_value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_demo_plan(
    out_dir: str | os.PathLike[str],
    *,
    sources: tuple[str, ...] = FAMILIES,
    seed: int = 0,
    n_jobs: int | None = None,
) -> Path:
    """Simulate one small dataset per source family and write a plan that builds them.

    Returns the plan path (``out_dir/plan.toml``; the store is ``out_dir/compendium``).
    ``n_jobs``: the executor's workers (the plan's ``executor.n_jobs``).
    """
    out = Path(out_dir).absolute()
    check_families(sources, WRITERS, what="no demo dataset for sources")
    lines = ['[store]\npath = "compendium"\n']
    if n_jobs is not None:
        lines.append(f"[executor]\nn_jobs = {n_jobs}\n")
    for i, source in enumerate(sources):
        spec = WRITERS[source](out / "inputs" / source, seed + i)
        inputs = ", ".join(f"{k} = {_toml_value(v)}" for k, v in spec["inputs"].items())
        modes = _toml_value(spec.get("modes", ["group"]))
        lines.append(
            f'[[datasets]]\nname = "demo_{source}"\nsource = "{source}"\n'
            f"inputs = {{ {inputs} }}\nde = {{ modes = {modes} }}\n"
        )
    plan = out / "plan.toml"
    plan.write_text("\n".join(lines), encoding="utf-8")
    return plan


def run_demo_compendium(
    out_dir: str | os.PathLike[str] = "demo_compendium",
    *,
    seed: int = 0,
    n_jobs: int | None = None,
    progress: bool = False,
) -> BuildReport:
    """Write the demo datasets and plan (:func:`write_demo_plan`) and build the store."""
    plan = write_demo_plan(out_dir, seed=seed, n_jobs=n_jobs)
    return build(plan, progress=progress)

"""A demo compendium: one small simulated dataset of every assay family, one plan.

:func:`write_demo_plan` writes, under ``out_dir/inputs/``, a small dataset in the
upstream layout of every source family (L1000 level 3 GCTX, OP3, DRUG-seq MoA Box,
VCPI, GDPx2, sci-Plex, Tahoe-100M, CIGS, DILImap and a generic mapping), and a plan
``out_dir/plan.toml`` that builds them into ``out_dir/compendium``.
:func:`run_demo_compendium` writes and builds it::

    from perturbridge.compendium.demo import run_demo_compendium
    report = run_demo_compendium("demo_compendium")

Then ``perturbridge info demo_compendium/compendium`` summarizes it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .build import BuildReport, build

__all__ = ["DEMO_SOURCES", "run_demo_compendium", "write_demo_plan"]


def _l1000(folder: Path, seed: int) -> dict[str, Any]:
    from ..io.gct import write_gctx
    from ..simulate import simulate_l1000

    sim = simulate_l1000(n_genes=200, n_compounds=4, n_replicates=3, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    path = write_gctx(
        folder / "level3.gctx", sim.data, row_meta=sim.row_meta, col_meta=sim.col_meta
    )
    return {"inputs": {"level3": path}, "modes": ["group", "separate"]}


def _simple(
    writer: Callable[..., Any], keys: Mapping[str, str]
) -> Callable[[Path, int], dict[str, Any]]:
    """A family whose fixture files map one to one onto reader parameters."""

    def make(folder: Path, seed: int) -> dict[str, Any]:
        fx = writer(folder, seed=seed)
        files = fx.files if hasattr(fx, "files") else fx
        return {"inputs": {param: files[key] for param, key in keys.items()}}

    return make


def _moabox(folder: Path, seed: int) -> dict[str, Any]:
    from ..simulate.upstream import write_moabox

    files = write_moabox(folder, seed=seed).files
    counts = [files[k] for k in sorted(files) if k.startswith("counts_")]
    inputs = {k: files[k] for k in ("metadata", "compounds", "robust_controls", "gene_mapping")}
    return {"inputs": {**inputs, "counts": counts}}


def _folder(
    writer_name: str, extra: Mapping[str, str] | None = None
) -> Callable[[Path, int], dict[str, Any]]:
    """A family read from a folder of upstream files (plus named extra files)."""

    def make(folder: Path, seed: int) -> dict[str, Any]:
        from ..simulate import upstream_sc

        fx = getattr(upstream_sc, writer_name)(folder, seed=seed)
        inputs: dict[str, Any] = {"folder": folder}
        inputs.update({param: fx.files[key] for param, key in (extra or {}).items()})
        return {"inputs": inputs}

    return make


def _writers() -> dict[str, Callable[[Path, int], dict[str, Any]]]:
    from ..simulate import upstream, upstream_generic, upstream_sc

    return {
        "l1000": _l1000,
        "op3": _simple(upstream.write_op3, {"h5ad": "h5ad"}),
        "drugseq_moabox": _moabox,
        "vcpi": _simple(upstream.write_vcpi, {"metadata": "metadata", "counts": "counts"}),
        "gdpx2": _simple(upstream.write_gdpx2, {"metadata": "metadata", "counts": "counts"}),
        "sciplex": _simple(upstream_sc.write_sciplex, {"h5ad": "h5ad"}),
        "tahoe": _folder("write_tahoe", {"obs_parquet": "obs_parquet"}),
        "cigs": _folder("write_cigs"),
        "dilimap": _simple(upstream_sc.write_dilimap, {"h5ad": "h5ad"}),
        "generic": _simple(upstream_generic.write_generic, {"mapping": "mapping"}),
    }


#: The source families of the demo, one dataset each.
DEMO_SOURCES: tuple[str, ...] = (
    "l1000",
    "op3",
    "drugseq_moabox",
    "vcpi",
    "gdpx2",
    "sciplex",
    "tahoe",
    "cigs",
    "dilimap",
    "generic",
)


def _toml_value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_demo_plan(
    out_dir: str | os.PathLike[str],
    *,
    sources: tuple[str, ...] = DEMO_SOURCES,
    seed: int = 0,
    n_workers: int | None = None,
) -> Path:
    """Simulate one small dataset per source family and write a plan that builds them.

    Returns the plan path (``out_dir/plan.toml``; the store is ``out_dir/compendium``).
    """
    out = Path(out_dir).absolute()
    writers = _writers()
    unknown = [s for s in sources if s not in writers]
    if unknown:
        raise ValueError(f"no demo dataset for sources {unknown}; available: {list(writers)}")
    lines = ['[store]\npath = "compendium"\n']
    if n_workers is not None:
        lines.append(f"[executor]\nn_workers = {n_workers}\n")
    for i, source in enumerate(sources):
        spec = writers[source](out / "inputs" / source, seed + i)
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
    n_workers: int | None = None,
    progress: bool = False,
) -> BuildReport:
    """Write the demo datasets and plan (:func:`write_demo_plan`) and build the store."""
    plan = write_demo_plan(out_dir, seed=seed, n_workers=n_workers)
    return build(plan, progress=progress)

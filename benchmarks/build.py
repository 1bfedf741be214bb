"""Build a simulated compendium from a plan and time it; slice the consolidated array.

Simulates an L1000-like level 3 dataset (978 genes; GCTX with column metadata, read by
the ``l1000`` adapter) and a count dataset of Tahoe-like cell lines (20,000 genes; an
``.h5ad`` read by the ``generic`` adapter through a mapping file), writes a build plan,
and runs ``perturbridge.compendium.build`` on it (group mode; ``--separate`` adds
separate mode for the L1000 dataset). Reports, as JSON:

- ``build``: wall time, conditions (group-mode contrasts) per second, the peak RSS of
  the build process and of the largest task, and the time of each task kind;
- ``rebuild_unchanged_s``: the same plan again (every task cached: nothing to do);
- ``slice``: reading 1,000 conditions × all genes of ``logFC`` from the consolidated
  Zarr array, contiguous and random rows: ``reader_s`` (the store's row-shard reader
  alone), ``zarr_python_s`` (zarr's generic indexing of the same array, for comparison)
  and ``api_s`` (``Compendium.effects`` including the catalog lookup and AnnData);
- ``store``: bytes on disk by part.

Simulation and file writing are not part of the build time.

Usage (full size, the numbers of the issue; about 15 min and 10 GB RAM on 2 cores)::

    python benchmarks/build.py --l1000-samples 200000 --count-samples 20000

Smaller::

    python benchmarks/build.py --l1000-samples 50000 --count-samples 5000 --n-jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import textwrap
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from perturbridge.compendium import Compendium, build, read_task_log
from perturbridge.io.gct import write_gctx
from perturbridge.simulate import CountsDesign, simulate_counts, simulate_l1000, sizes_for

CELL_LINES = ("A375", "A549", "HA1E", "HCC515", "HEPG2", "HT29", "MCF7", "NPC", "PC3", "VCAP")


def _rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def write_l1000(folder: Path, n_samples: int, *, seed: int) -> tuple[Path, int]:
    """GCTX of about ``n_samples`` wells (3.2 wells per condition, as in L1000)."""
    kw = sizes_for(n_samples, max(1, round(n_samples / 3.2)), cell_lines=CELL_LINES)
    kw["n_replicates"] = max(kw["n_replicates"], 2)
    sim = simulate_l1000(n_genes=978, seed=seed, **kw)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "level3.gctx"
    write_gctx(path, sim.data, row_meta=sim.row_meta, col_meta=sim.col_meta, compression=None)
    return path, int(sim.data.shape[1])


def write_counts(folder: Path, n_samples: int, *, n_genes: int, seed: int) -> tuple[Path, int]:
    """Tahoe-like pseudobulk counts: cell lines of ~1,330 wells, 14 plates each."""
    per_line = 1330
    n_lines = max(1, round(n_samples / per_line))
    xs, obs = [], []
    for i in range(n_lines):
        sim = simulate_counts(
            CountsDesign(replicate_fraction=0.035, mean_library_size=3e5),
            n_genes=n_genes,
            n_plates=14,
            conditions_per_plate=max(2, round(82 * n_samples / (n_lines * per_line))),
            vehicles_per_plate=10,
            cell_line=f"CVCL_{9000 + i:04d}",
            seed=seed + i,
        )
        s = sim.samples
        xs.append(sparse.csr_matrix(s.X.astype(np.float32)))
        o = pd.DataFrame(
            {
                "plate": (f"L{i:02d}_" + s.obs["plate"].astype(str)).to_numpy(),
                "well": s.obs["well"].astype(str).to_numpy(),
                "cell_line": s.obs["cell_context"].astype(str).to_numpy(),
                "compound": s.obs["perturbagen"].astype(str).to_numpy(),
                "dose_uM": s.obs["pert_dose_uM"].to_numpy(),
                "time_h": s.obs["pert_time_h"].to_numpy(),
                "n_cells": s.obs["n_cells"].astype(int).to_numpy(),
            },
            index=[f"L{i:02d}_{x}" for x in s.obs_names],
        )
        obs.append(o)
        var = s.var[["symbol"]].copy()
        del sim, s
    adata = ad.AnnData(X=sparse.vstack(xs).tocsr(), obs=pd.concat(obs), var=var)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "counts.h5ad"
    adata.write_h5ad(path)
    (folder / "mapping.toml").write_text(
        textwrap.dedent(
            """
            version = 1
            [input]
            expression = "counts.h5ad"
            value_kind = "counts"
            [fields]
            dataset = { value = "sim_tahoe" }
            assay = { value = "scRNA-seq pseudobulk" }
            plate = "plate"
            well = "well"
            cell_context = "cell_line"
            perturbagen = "compound"
            n_cells = "n_cells"
            [dose]
            column = "dose_uM"
            unit = "uM"
            [time]
            column = "time_h"
            unit = "h"
            [controls]
            control_values = ["DMSO"]
            [genes]
            id_type = "ensembl"
            symbol_column = "symbol"
            """
        )
    )
    return folder / "mapping.toml", adata.n_obs


def write_plan(folder: Path, gctx: Path, mapping: Path, *, workers: int, separate: bool) -> Path:
    modes = '["group", "separate"]' if separate else '["group"]'
    plan = folder / "plan.toml"
    plan.write_text(
        textwrap.dedent(
            f"""
            [store]
            path = "store"

            [executor]
            kind = "local"
            n_jobs = {workers}

            [[datasets]]
            name = "sim_l1000"
            source = "l1000"
            inputs = {{ level3 = "{gctx}" }}
            de = {{ modes = {modes} }}

            [[datasets]]
            name = "sim_tahoe"
            source = "generic"
            inputs = {{ mapping = "{mapping}" }}
            de = {{ modes = ["group"], min_cells = 10 }}
            """
        )
    )
    return plan


def time_slices(store: Path, *, n: int = 1000, repeats: int = 3, seed: int = 0) -> dict:
    """Median seconds to read ``n`` conditions × all genes of ``logFC``.

    ``zarr_python_s``: zarr's own indexing of the array (the generic path);
    ``reader_s``: the store's row-shard reader alone; ``api_s``: ``Compendium.effects``
    including the catalog lookup and the AnnData. Each repeat draws new rows.
    """
    from perturbridge.compendium._shards import read_rows, row_sharded_layout

    rng = np.random.default_rng(seed)
    with Compendium.open(store) as comp:
        cond = comp.conditions()
        n = min(n, len(cond))
        arr = comp._array("group", "logFC")
        layout = row_sharded_layout(arr)
        rows = comp.contrasts(cond)["zarr_row"].to_numpy()
        by_row = np.argsort(rows, kind="stable")  # conditions() orders by dose, not row
        out: dict = {"conditions": n, "genes": int(arr.shape[1]), "row_sharded": bool(layout)}
        for kind in ("contiguous", "random"):
            generic, reader, api = [], [], []
            for _ in range(repeats):
                if kind == "contiguous":
                    start = int(rng.integers(0, len(rows) - n + 1))
                    sel = np.sort(by_row[start : start + n])  # rows next to each other
                else:
                    sel = np.sort(rng.choice(len(rows), n, replace=False))
                t0 = time.perf_counter()
                eff = comp.effects(cond.iloc[sel])
                api.append(time.perf_counter() - t0)
                zrows = np.sort(rows[sel])
                if layout is not None:
                    t0 = time.perf_counter()
                    x = read_rows(layout, zrows, threads=comp.read_threads)
                    reader.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                y = arr.oindex[zrows, :] if kind == "random" else arr[zrows[0] : zrows[-1] + 1]
                generic.append(time.perf_counter() - t0)
                if layout is not None:
                    assert np.array_equal(x, y, equal_nan=True)
            assert eff.shape == (n, arr.shape[1])
            out[kind] = {
                "zarr_python_s": round(float(np.median(generic)), 4),
                "reader_s": round(float(np.median(reader)), 4) if reader else None,
                "api_s": round(float(np.median(api)), 4),
            }
    return out


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--l1000-samples", type=int, default=200_000)
    ap.add_argument("--count-samples", type=int, default=20_000)
    ap.add_argument("--count-genes", type=int, default=20_000)
    ap.add_argument("--n-jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--separate", action="store_true", help="Also separate mode for L1000.")
    ap.add_argument("--out", type=Path, default=None, help="Work folder (default: a temp dir).")
    ap.add_argument("--keep", action="store_true", help="Keep the work folder.")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="pb-build-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        gctx, n_l1000 = write_l1000(work / "l1000", args.l1000_samples, seed=args.seed)
        mapping, n_counts = write_counts(
            work / "counts", args.count_samples, n_genes=args.count_genes, seed=args.seed
        )
        simulate_s = time.perf_counter() - t0
        plan = write_plan(work, gctx, mapping, workers=args.n_jobs, separate=args.separate)
        rss_before = _rss_mb(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        report = build(plan)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = build(plan)
        rebuild_s = time.perf_counter() - t0
        assert again.computed == [] and not again.store_written
        store = work / "store"
        log = [e for e in read_task_log(store / ".cache") if e["run"] == report.run]
        done = [e for e in log if e["event"] == "done"]
        by_kind: dict[str, float] = {}
        for e in done:
            by_kind[e["kind"]] = by_kind.get(e["kind"], 0.0) + e["seconds"]
        counts = report.manifest["counts"]
        n_cond = counts["contrasts"]["group"]
        result = {
            "benchmark": "build",
            "input": {
                "l1000_samples": n_l1000,
                "l1000_genes": 978,
                "count_samples": n_counts,
                "count_genes": args.count_genes,
                "modes": ["group", "separate"] if args.separate else ["group"],
            },
            "machine": {
                "python": platform.python_version(),
                "cpu_count": os.cpu_count(),
                "executor": f"local, {args.n_jobs} worker processes",
            },
            "simulate_and_write_s": round(simulate_s, 1),
            "build": {
                "wall_s": round(build_s, 1),
                "tasks": len(report.computed),
                "conditions": n_cond,
                "contrasts": counts["contrasts"],
                "conditions_per_s": round(n_cond / build_s, 1),
                "task_seconds_by_kind": {k: round(v, 1) for k, v in sorted(by_kind.items())},
                "store_s": round(report.timings.get("store", 0.0), 1),
                "peak_rss_mb_build_process": round(_rss_mb(resource.RUSAGE_SELF), 0),
                "peak_rss_mb_before_build": round(rss_before, 0),
                "peak_rss_mb_largest_task": round(max(e["peak_rss_mb"] for e in done), 0),
                "samples_kept": counts["samples"],
                "genes_union": counts["genes"],
            },
            "rebuild_unchanged_s": round(rebuild_s, 2),
            "slice_1000_conditions_all_genes": time_slices(store),
            "store": {
                "bytes_total": _du(store) - _du(store / ".cache"),
                "bytes_zarr": _du(store / "zarr"),
                "bytes_effects": _du(store / "effects"),
                "bytes_samples": _du(store / "samples"),
                "bytes_catalog": _du(store / "catalog"),
                "bytes_task_cache_not_counted": _du(store / ".cache"),
                "format_version": report.manifest["format_version"],
            },
        }
        print(json.dumps(result, indent=2))
    finally:
        if not args.keep and args.out is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Pseudobulk of a simulated single-cell screen: perturbridge against scanpy and decoupler.

Simulates a sparse cells × genes count matrix (CSR float32, like most ``.h5ad`` files)
with the obs columns ``plate, well, cell_line, condition`` (4 plates × 96 wells × 5
pooled cell lines = 1,920 groups), written to an ``.h5ad`` chunk by chunk so that
generation itself is memory-bounded. Cells come plate by plate, in random order within
a plate (``--order plate``, as when plates are sequenced and written one by one), or in
random order overall (``--order random``).

Then, each in its own subprocess, one after the other, on the same file:

* ``perturbridge``: ``pseudobulk(path)``, streaming over the backed file in chunks;
* ``scanpy``: ``anndata.read_h5ad(path)`` (whole matrix in memory, which it needs) +
  ``scanpy.get.aggregate(adata, by=KEYS, func="sum")``;
* ``decoupler``: ``anndata.read_h5ad(path)`` + ``decoupler.pp.pseudobulk(adata,
  sample_col="plate", groups_col=["well", "cell_line", "condition"], mode="sum")``.

Wall time is the call from file to pseudobulk (for the in-memory tools: loading plus
aggregation, each also reported alone), without Python start-up and imports. Peak RSS
is per tool: ``peak_rss_mb`` is the child's ``ru_maxrss`` taken right after the call,
``peak_rss_mb_whole_process`` the child's ``ru_maxrss`` from ``os.wait4`` (it also
covers the dense copy of the sums the child writes for the comparison). The group sums of
every tool are compared with perturbridge's (same groups, same sums). perturbridge is
also run on a second file with twice the cells, to show whether its peak RSS stays
flat. Prints JSON.

Usage: python benchmarks/pseudobulk.py [--n-cells 2000000] [--n-genes 20000]
       [--nnz-per-cell 400] [--tools perturbridge,scanpy,decoupler] [--no-doubling]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

KEYS = ["plate", "well", "cell_line", "condition"]
N_PLATES, WELLS_PER_PLATE, CELL_LINES = 4, 96, 5


# --------------------------------------------------------------------------- data


def simulate_h5ad(
    path: Path,
    *,
    n_cells: int,
    n_genes: int,
    nnz_per_cell: int,
    order: str,
    seed: int,
    chunk: int = 50_000,
) -> dict[str, Any]:
    """Write a simulated screen to ``path`` in anndata's on-disk format, in chunks.

    Each cell detects about ``nnz_per_cell`` × U(0.5, 1.5) genes spread over all genes
    (gaps drawn from a geometric law), with counts 1, 2, 3, ... (geometric, mean 2);
    gene 0 (``MALAT1``) is detected in every cell.
    """
    import anndata as ad
    import h5py
    import pandas as pd

    rng = np.random.default_rng(seed)
    wells = [f"{r}{c:02d}" for r in "ABCDEFGH" for c in range(1, 13)]
    lines = [f"LINE{i}" for i in range(CELL_LINES)]
    conditions = np.array(
        [f"cmpd{w % 24:02d}_{(0.1, 1.0, 10.0, 0.0)[w // 24]}uM" for w in range(WELLS_PER_PLATE)]
    )
    plate = rng.integers(0, N_PLATES, n_cells)
    if order == "plate":
        plate.sort()
    well = rng.integers(0, WELLS_PER_PLATE, n_cells)
    obs = pd.DataFrame(
        {
            "plate": pd.Categorical.from_codes(plate, [f"P{i}" for i in range(N_PLATES)]),
            "well": pd.Categorical.from_codes(well, wells),
            "cell_line": pd.Categorical.from_codes(rng.integers(0, CELL_LINES, n_cells), lines),
            "condition": pd.Categorical(conditions[well]),
        },
        index=pd.Index([f"cell{i:09d}" for i in range(n_cells)]),
    )
    var = pd.DataFrame(
        {"symbol": ["MALAT1"] + [f"GENE{i}" for i in range(1, n_genes)]},
        index=[f"ENSG{i:011d}" for i in range(n_genes)],
    )
    ad.AnnData(obs=obs, var=var).write_h5ad(path)
    del obs
    nnz = 0
    with h5py.File(path, "a") as fh:
        group = fh.create_group("X")
        group.attrs["encoding-type"] = "csr_matrix"
        group.attrs["encoding-version"] = "0.1.0"
        group.attrs["shape"] = np.array([n_cells, n_genes])
        kw: dict[str, Any] = {"shape": (0,), "maxshape": (None,), "chunks": (1 << 18,)}
        data = group.create_dataset("data", dtype=np.float32, **kw)
        indices = group.create_dataset("indices", dtype=np.int32, **kw)
        indptr = group.create_dataset("indptr", shape=(n_cells + 1,), dtype=np.int64)
        indptr[0] = 0
        k = int(1.5 * nnz_per_cell * 1.25) + 10
        for start in range(0, n_cells, chunk):
            m = min(chunk, n_cells - start)
            target = nnz_per_cell * rng.uniform(0.5, 1.5, m)
            gaps = rng.geometric(np.minimum(target / n_genes, 1.0)[:, None], size=(m, k))
            cols = np.cumsum(gaps, axis=1)  # >= 1; column 0 is set below
            cols[:, 0] = 0
            ok = cols < n_genes
            per_cell = ok.sum(axis=1)
            col = cols[ok].astype(np.int32)
            val = rng.geometric(0.5, col.size).astype(np.float32)
            row_start = np.concatenate([[0], np.cumsum(per_cell)[:-1]])
            val[row_start] += rng.integers(0, 30, m)  # MALAT1
            data.resize((nnz + col.size,))
            indices.resize((nnz + col.size,))
            data[nnz:] = val
            indices[nnz:] = col
            indptr[start + 1 : start + m + 1] = nnz + np.cumsum(per_cell)
            nnz += col.size
    return {"n_cells": n_cells, "n_genes": n_genes, "nnz": nnz, "file_bytes": path.stat().st_size}


# --------------------------------------------------------------------------- tools (child)


def _save(out: Path, keys: list[str], sums: Any) -> None:
    order = np.argsort(np.asarray(keys, dtype=object).astype(str))
    np.save(out.with_suffix(".keys.npy"), np.asarray(keys, dtype=str)[order])
    np.save(out.with_suffix(".sums.npy"), np.asarray(sums, dtype=np.float64)[order])


def _key_strings(obs: Any) -> list[str]:
    return ["|".join(map(str, row)) for row in obs[KEYS].astype(str).itertuples(index=False)]


def _peak_rss_mb() -> float:
    """Peak RSS of this process so far (taken right after a tool's call)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def run_tool(tool: str, path: Path, out: Path, chunk_size: int) -> None:
    """Run one tool on ``path``; write its timings (JSON) and group sums beside ``out``."""
    info: dict[str, Any] = {"tool": tool}
    t0 = time.perf_counter()
    if tool == "perturbridge":
        from perturbridge.pseudobulk import pseudobulk

        t1 = time.perf_counter()
        res = pseudobulk(path, groupby=KEYS, chunk_size=chunk_size)
        t2 = time.perf_counter()
        info["peak_rss_mb"] = _peak_rss_mb()
        info.update(reads="backed .h5ad, streamed in chunks", chunk_size=chunk_size)
        info.update(load_s=None, compute_s=None, wall_s=t2 - t1)
        counts = res.counts
        keys, sums = _key_strings(counts.obs), counts.X.toarray()
        info["n_ledger"] = len(res.ledger)  # every cell accounted for
    elif tool == "scanpy":
        import anndata as ad
        import scanpy as sc

        t1 = time.perf_counter()
        adata = ad.read_h5ad(path)
        t2 = time.perf_counter()
        agg = sc.get.aggregate(adata, by=KEYS, func="sum")
        t3 = time.perf_counter()
        info["peak_rss_mb"] = _peak_rss_mb()
        info.update(reads="whole matrix loaded into memory (read_h5ad)", version=sc.__version__)
        info.update(load_s=t2 - t1, compute_s=t3 - t2, wall_s=t3 - t1)
        keys, sums = _key_strings(agg.obs), agg.layers["sum"]
    elif tool == "decoupler":
        import anndata as ad
        import decoupler as dc

        t1 = time.perf_counter()
        adata = ad.read_h5ad(path)
        t2 = time.perf_counter()
        pdata = dc.pp.pseudobulk(
            adata, sample_col="plate", groups_col=["well", "cell_line", "condition"], mode="sum"
        )
        t3 = time.perf_counter()
        info["peak_rss_mb"] = _peak_rss_mb()
        info.update(reads="whole matrix loaded into memory (read_h5ad)", version=dc.__version__)
        info.update(load_s=t2 - t1, compute_s=t3 - t2, wall_s=t3 - t1)
        present = pdata.obs["psbulk_cells"].to_numpy() > 0  # it lists empty combinations too
        pdata = pdata[present]
        if list(pdata.var_names) != list(adata.var_names):  # it drops genes without counts
            full = np.zeros((pdata.n_obs, adata.n_vars))
            full[:, adata.var_names.get_indexer(pdata.var_names)] = np.asarray(pdata.X)
        else:
            full = np.asarray(pdata.X)
        keys, sums = _key_strings(pdata.obs), full
    else:
        raise ValueError(f"unknown tool {tool!r}")
    info["import_s"] = t1 - t0
    _save(out, keys, sums)
    out.write_text(json.dumps(info))


# --------------------------------------------------------------------------- parent


def _child(tool: str, path: Path, workdir: Path, chunk_size: int, label: str) -> dict[str, Any]:
    out = workdir / f"{label}.json"
    cmd = [sys.executable, __file__, "--_child", tool, str(path), str(out), str(chunk_size)]
    log = (workdir / f"{label}.log").open("w")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    log.close()
    if proc.returncode != 0:
        tail = (workdir / f"{label}.log").read_text()[-3000:]
        return {"tool": tool, "error": f"exit {proc.returncode}", "log_tail": tail}
    info = json.loads(out.read_text())
    # From os.wait4: this child's own peak (Linux: KiB), including the dense copy of the
    # sums it makes for the comparison after the call; peak_rss_mb stops at the call.
    info["peak_rss_mb_whole_process"] = round(usage.ru_maxrss / 1024, 1)
    info["process_s"] = round(elapsed, 2)
    return info


def _compare(ref: Path, other: Path) -> dict[str, Any]:
    k_ref, k_other = np.load(ref.with_suffix(".keys.npy")), np.load(other.with_suffix(".keys.npy"))
    same_groups = k_ref.shape == k_other.shape and bool((k_ref == k_other).all())
    out: dict[str, Any] = {"same_groups": same_groups, "n_groups": len(k_other)}
    if same_groups:
        a = np.load(ref.with_suffix(".sums.npy"), mmap_mode="r")
        b = np.load(other.with_suffix(".sums.npy"), mmap_mode="r")
        out["max_abs_diff"] = float(np.max(np.abs(a - b))) if a.size else 0.0
        out["equal"] = bool(a.shape == b.shape and out["max_abs_diff"] == 0.0)
    else:
        out["equal"] = False
    return out


def _round(info: dict[str, Any], n_cells: int) -> dict[str, Any]:
    for key in ("load_s", "compute_s", "wall_s", "import_s"):
        if info.get(key) is not None:
            info[key] = round(info[key], 2)
    if "wall_s" in info:
        info["cells_per_s"] = round(n_cells / info["wall_s"])
        if info.get("compute_s"):
            info["cells_per_s_compute_only"] = round(n_cells / info["compute_s"])
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-cells", type=int, default=2_000_000)
    ap.add_argument("--n-genes", type=int, default=20_000)
    ap.add_argument("--nnz-per-cell", type=int, default=400)
    ap.add_argument("--chunk-size", type=int, default=100_000)
    ap.add_argument("--order", choices=["plate", "random"], default="plate")
    ap.add_argument("--tools", default="perturbridge,scanpy,decoupler")
    ap.add_argument("--no-doubling", action="store_true", help="skip the 2n-cell run")
    ap.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    tools = [t for t in args.tools.split(",") if t]
    workdir = Path(tempfile.mkdtemp(prefix="pb_bench_", dir=args.workdir))
    report: dict[str, Any] = {
        "benchmark": "pseudobulk",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg_at_start": os.getloadavg(),
        },
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "groups": {"keys": KEYS, "n_expected": N_PLATES * WELLS_PER_PLATE * CELL_LINES},
    }
    try:
        sizes = [args.n_cells] + ([] if args.no_doubling else [2 * args.n_cells])
        files = {}
        for n in sizes:
            path = workdir / f"cells_{n}.h5ad"
            t = time.perf_counter()
            meta = simulate_h5ad(
                path,
                n_cells=n,
                n_genes=args.n_genes,
                nnz_per_cell=args.nnz_per_cell,
                order=args.order,
                seed=args.seed,
            )
            meta["simulate_s"] = round(time.perf_counter() - t, 1)
            report.setdefault("data", {})[str(n)] = meta
            files[n] = path
            if n != sizes[0]:
                continue
            results: dict[str, Any] = {}
            for tool in tools:
                results[tool] = _round(_child(tool, path, workdir, args.chunk_size, tool), n)
            ref = workdir / "perturbridge.json"
            for tool in tools:
                if tool != "perturbridge" and "error" not in results[tool] and ref.exists():
                    results[tool]["vs_perturbridge"] = _compare(ref, workdir / f"{tool}.json")
            report["results"] = results
        if len(sizes) > 1 and "perturbridge" in tools:
            big = _round(
                _child("perturbridge", files[sizes[1]], workdir, args.chunk_size, "pb_2n"),
                sizes[1],
            )
            small = report["results"]["perturbridge"]
            report["scaling"] = {
                "n_cells": sizes,
                "perturbridge_peak_rss_mb": [small.get("peak_rss_mb"), big.get("peak_rss_mb")],
                "perturbridge_wall_s": [small.get("wall_s"), big.get("wall_s")],
                "rss_ratio_2n_over_n": round(big["peak_rss_mb"] / small["peak_rss_mb"], 3)
                if "peak_rss_mb" in big and "peak_rss_mb" in small
                else None,
            }
        report["targets"] = _targets(report)
        report["machine"]["load_avg_at_end"] = os.getloadavg()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(report, indent=2))


def _targets(report: dict[str, Any]) -> dict[str, Any]:
    res = report.get("results", {})
    ours = res.get("perturbridge", {})
    others = {t: r for t, r in res.items() if t != "perturbridge" and "cells_per_s" in r}
    out: dict[str, Any] = {}
    if ours.get("cells_per_s") and others:
        fastest = max(others, key=lambda t: others[t]["cells_per_s"])
        ratio = ours["cells_per_s"] / others[fastest]["cells_per_s"]
        out["throughput_vs_fastest_other"] = {
            "fastest_other": fastest,
            "ratio_end_to_end": round(ratio, 2),
            "ratio_vs_its_compute_only": round(
                ours["cells_per_s"] / others[fastest]["cells_per_s_compute_only"], 2
            ),
            "target": 3.0,
            "met": ratio >= 3.0,
        }
    scaling = report.get("scaling", {})
    if scaling.get("rss_ratio_2n_over_n") is not None:
        out["peak_rss_when_cells_double"] = {
            "ratio": scaling["rss_ratio_2n_over_n"],
            "target": "<= 1.20",
            "met": scaling["rss_ratio_2n_over_n"] <= 1.2,
        }
    out["sums_equal"] = {
        t: r.get("vs_perturbridge", {}).get("equal") for t, r in res.items() if t != "perturbridge"
    }
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--_child":
        _, _, tool_name, file_path, out_path, chunk = sys.argv
        run_tool(tool_name, Path(file_path), Path(out_path), int(chunk))
    else:
        main()

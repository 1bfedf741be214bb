"""Time signature search over a store-scale search index.

The index of a store of 500,000 L1000-like conditions × 978 genes plus 50,000 RNA-seq-like
conditions × 10,000 genes is written directly through
:class:`perturbridge.search.index.IndexWriter` from generated values (a real store of that
size takes hours to build here; the index holds the same arrays a
:meth:`SearchIndex.build` of such a store would write: gene-major values and ranks per
segment of 10,000 rows, one segment per dataset × context). The gene axis has 10,000
genes; the L1000-like rows measure 978 of them. Queries run through
:meth:`SearchIndex.blocks` and the registered methods of :mod:`perturbridge.search.methods`
(the path :func:`perturbridge.search.search` takes, without the p-value nulls).

Reports, as JSON: the build (seconds, bytes on disk, peak RSS), then, in a fresh process
(so its peak RSS is the queries' own), wall and CPU seconds (the CPU time shows the
work when other processes share the cores):

- ``wtcs_single``: one WTCS query (up and down sets of 50–150 landmark genes each) over
  all 550,000 conditions: the first (cold) run and the median of the next runs;
- ``cosine_978`` / ``cosine_10000``: one cosine query of a full signature on the 978
  landmark genes / on all 10,000 genes;
- ``wtcs_batch``: 100 WTCS queries in one pass over an even sample of ``--batch-rows``
  conditions (condition × query pairs per second, and the time extrapolated to all);
- ``blocks_only_wtcs_cols``: reading the blocks of the single WTCS query without scoring
  (the index's share of the time);
- ``peak_rss_mb`` of the query process (memory-mapped pages it touched included).

Usage (full size; the target is one query over all conditions under 1 s on 2 cores)::

    python benchmarks/search.py --out /tmp/search_bench

Smaller: ``--scale 0.1``. ``--keep`` keeps the index for another run (``--out`` reused).
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
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from perturbridge.search.index import IndexWriter, SearchIndex
from perturbridge.search.methods import get_method, score_blocks
from perturbridge.search.queries import Query, ResolvedQuery

N_GENES = 10_000
N_LANDMARK = 978
SEGMENT_ROWS = 10_000
CHUNK_ROWS = 2_000


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _landmarks() -> np.ndarray:
    return np.sort(np.random.default_rng(7).choice(N_GENES, N_LANDMARK, replace=False))


def _chunks(rng: np.random.Generator, n_rows: int, n_cols: int) -> Any:
    """Signatures: a few shared programs plus noise (so ranks are not uniform noise)."""
    programs = rng.standard_normal((8, n_cols), dtype=np.float32)
    for start in range(0, n_rows, CHUNK_ROWS):
        n = min(CHUNK_ROWS, n_rows - start)
        w = rng.standard_normal((n, 8), dtype=np.float32)
        yield w @ programs + rng.standard_normal((n, n_cols), dtype=np.float32)


def build(out: Path, *, scale: float) -> dict[str, Any]:
    """Write the index (segments, then the index of one build) under ``out``."""
    t0 = time.perf_counter()
    writer = IndexWriter(out / "search")
    rng = np.random.default_rng(0)
    landmarks = _landmarks()
    genes = np.array([f"G{i:05d}" for i in range(N_GENES)])
    plan = [("l1000", int(500_000 * scale), landmarks), ("rnaseq", int(50_000 * scale), None)]
    rows, cols = [], {}
    zarr_row = 0
    for dataset, n_rows, measured in plan:
        gcols = np.arange(N_GENES) if measured is None else measured
        for s, start in enumerate(range(0, n_rows, SEGMENT_ROWS)):
            n = min(SEGMENT_ROWS, n_rows - start)
            key = f"{dataset}-{s:03d}"
            writer.write_segment(key, _chunks(rng, n, len(gcols)), genes=list(genes[gcols]))
            cols[key] = gcols
            rows.append(
                pd.DataFrame(
                    {
                        "contrast_id": [f"{dataset}:c{start + i}" for i in range(n)],
                        "condition_id": [f"{dataset}:c{start + i}" for i in range(n)],
                        "dataset": dataset,
                        "cell_context": f"ctx{s}",
                        "zarr_row": np.arange(zarr_row, zarr_row + n),
                        "segment": key,
                        "position": np.arange(n),
                    }
                )
            )
            zarr_row += n
    writer.commit(
        build_key="benchmark", mode="group", layer="logFC", n_genes=N_GENES,
        rows=pd.concat(rows, ignore_index=True), cols=cols,
    )  # fmt: skip
    size = sum(p.stat().st_size for p in (out / "search").rglob("*") if p.is_file())
    return {
        "build_s": round(time.perf_counter() - t0, 1),
        "n_conditions": zarr_row,
        "bytes_on_disk": size,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def _set_query(rng: np.random.Generator, landmarks: np.ndarray, i: int) -> ResolvedQuery:
    n_up, n_down = rng.integers(50, 151, size=2)
    pick = rng.choice(landmarks, n_up + n_down, replace=False)
    up, down = np.sort(pick[:n_up]), np.sort(pick[n_up:])
    q = Query(name=f"q{i}", up=tuple(f"G{c:05d}" for c in up),
              down=tuple(f"G{c:05d}" for c in down))  # fmt: skip
    empty = np.zeros(0, dtype=np.int64)
    return ResolvedQuery(q, up, down, empty, np.zeros(0))


def _signature_query(rng: np.random.Generator, cols: np.ndarray) -> ResolvedQuery:
    values = rng.standard_normal(len(cols))
    sig = pd.Series(values, index=[f"G{c:05d}" for c in cols])
    q = Query(name="sig", signature=sig)
    empty = np.zeros(0, dtype=np.int64)
    return ResolvedQuery(q, empty, empty, cols.astype(np.int64), values)


def _run(
    index: SearchIndex,
    method: str | None,
    queries: list[ResolvedQuery],
    rows: np.ndarray | None = None,
) -> dict[str, float]:
    """One pass of ``queries`` over ``rows`` (all when None): wall and CPU seconds.
    ``method=None`` reads the blocks only (the index's share of the time)."""
    m = get_method(method) if method else None
    needs_ranks = m.needs_ranks if m else True
    cols = np.unique(np.concatenate([q.cols for q in queries])).astype(np.int64)
    t0, c0 = time.perf_counter(), time.process_time()
    # as search() reads and scores: each dataset's measured columns, every core, the next
    # block read while one is scored
    blocks = index.blocks(cols=cols, rows=rows, ranks=needs_ranks, measured_only=True)
    if m is None:
        n = sum(block.n_rows for block in blocks)
    else:
        n = sum(block.n_rows for block, _ in score_blocks(m, queries, blocks, n_jobs=-1))
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "rows": n}


def _timed(
    index: SearchIndex,
    method: str | None,
    queries: list[ResolvedQuery],
    *,
    repeats: int,
    rows: np.ndarray | None = None,
) -> dict[str, Any]:
    first = _run(index, method, queries, rows)
    rest = [_run(index, method, queries, rows) for _ in range(repeats)] or [first]
    wall = float(np.median([r["wall_s"] for r in rest]))
    cpu = float(np.median([r["cpu_s"] for r in rest]))
    return {
        "n_conditions": first["rows"],
        "n_queries": len(queries),
        "cold_wall_s": round(first["wall_s"], 3),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "queries_per_s": round(len(queries) / wall, 2),
    }


def query(out: Path, *, repeats: int, batch_rows: int) -> dict[str, Any]:
    index = SearchIndex.load(out / "search" / "group-logFC")
    rng = np.random.default_rng(1)
    landmarks = _landmarks()
    one = [_set_query(rng, landmarks, 0)]
    sig978 = [_signature_query(rng, landmarks)]
    sig_all = [_signature_query(rng, np.arange(N_GENES))]
    result: dict[str, Any] = {"index": repr(index)}
    result["blocks_only_wtcs_cols"] = _timed(index, None, one, repeats=repeats)
    result["wtcs_single"] = _timed(index, "wtcs", one, repeats=repeats)
    result["cosine_978"] = _timed(index, "cosine", sig978, repeats=repeats)
    result["cosine_10000"] = _timed(index, "cosine", sig_all, repeats=0)
    # the batch over an even sample of the rows (all rows × 100 queries takes long here)
    all_rows = index.conditions["zarr_row"].to_numpy()
    sample = all_rows[np.linspace(0, len(all_rows) - 1, batch_rows).astype(np.int64)]
    batch = [_set_query(rng, landmarks, i) for i in range(100)]
    res = _timed(index, "wtcs", batch, repeats=0, rows=np.unique(sample))
    res["condition_queries_per_s"] = round(res["n_conditions"] * 100 / res["wall_s"])
    res["extrapolated_all_conditions_s"] = round(res["wall_s"] * len(all_rows) / batch_rows, 1)
    result["wtcs_batch"] = res
    result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/perturbridge_search_bench"))
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the full size")
    ap.add_argument("--repeats", type=int, default=3, help="warm runs of the single queries")
    ap.add_argument("--batch-rows", type=int, default=20_000, help="rows of the 100-query batch")
    ap.add_argument("--keep", action="store_true", help="keep (and reuse) the index")
    ap.add_argument("--query-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.query_only:
        print(json.dumps(query(args.out, repeats=args.repeats, batch_rows=args.batch_rows)))
        return
    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "numpy": np.__version__},
        "scale": args.scale,
    }  # fmt: skip
    if not (args.keep and (args.out / "search" / "group-logFC" / "index.json").is_file()):
        shutil.rmtree(args.out, ignore_errors=True)
        report["build"] = build(args.out, scale=args.scale)
    cmd = [sys.executable, __file__, "--query-only", "--out", str(args.out),
           "--repeats", str(args.repeats), "--batch-rows", str(args.batch_rows)]  # fmt: skip
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    report["query"] = json.loads(done.stdout)
    if not args.keep:
        shutil.rmtree(args.out, ignore_errors=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

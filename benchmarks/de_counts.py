"""limma-voom on Tahoe-like counts: perturbridge against R (edgeR + limma), end to end.

Preset ``tahoe-cell-line``: one Tahoe-100M-like cell line after pseudobulking, ~1,330
samples × 20,000 genes × 1,149 conditions × 14 plates (``perturbridge.simulate.
tahoe_cell_line``). Each engine runs in its own process on the same counts:

* perturbridge: ``limma_voom(samples, mode="group")`` (filterByExpr + TMM + voom +
  weighted fit + contrasts + eBayes(robust) + all Effects layers);
* R: ``filterByExpr`` + ``calcNormFactors`` + ``voom`` on all genes, then ``lmFit`` +
  ``contrasts.fit`` + ``eBayes(robust=TRUE)`` + ``topTable`` on a random subset of
  ``--r-genes`` kept genes (R's weighted fit is one QR per gene, linear in the number of
  genes); those steps are scaled to all kept genes, and the JSON says so.

Reported: wall seconds per step, peak RSS of each process (``/usr/bin/time`` for R when
present), and the largest logFC difference on the genes R fitted.

Usage: python benchmarks/de_counts.py --preset tahoe-cell-line [--r-genes 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

PRESETS = {"tahoe-cell-line": {"n_genes": 20_000}, "small": {"n_genes": 3_000}}


def _child_ours(samples_path: str, out_path: str) -> None:
    import anndata as ad

    from perturbridge.de.voom import limma_voom

    samples = ad.read_h5ad(samples_path)
    t0 = time.perf_counter()
    res = limma_voom(samples, mode="group")
    wall = time.perf_counter() - t0
    (diag,) = res.diagnostics.values()
    np.savez(
        out_path,
        logFC=np.asarray(res.effects.layers["logFC"]),
        keep=diag["keep"],
        genes=np.asarray(res.effects.var_names, dtype=str),
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": wall, "peak_rss_mb": peak}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tahoe-cell-line")
    ap.add_argument("--r-genes", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-r", action="store_true")
    ap.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="our engine runs this many times, each in a fresh process; the median is used",
    )
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child_ours(*args.child)
        return

    from perturbridge.de import plan_contexts
    from perturbridge.de.r_limma import r_limma_status, write_r_inputs
    from perturbridge.simulate import tahoe_cell_line

    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        sim = tahoe_cell_line(seed=args.seed, **PRESETS[args.preset])
        samples = sim.samples
        samples.write_h5ad(tmpdir / "samples.h5ad")
        (design,) = plan_contexts(samples, mode="group")[0]
        out: dict = {
            "benchmark": "de_counts",
            "preset": args.preset,
            "input": {
                "samples": int(samples.n_obs),
                "genes": int(samples.n_vars),
                "conditions": len(design.levels),
                "contrasts": len(design.treated),
                "plates": len(design.plate_levels),
            },
            "machine": {"cpu_count": os.cpu_count()},
        }
        runs = []
        for _ in range(max(1, args.repeats)):
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    str(tmpdir / "samples.h5ad"),
                    str(tmpdir / "ours.npz"),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        walls = [r["wall_s"] for r in runs]
        ours = {
            "wall_s": float(np.median(walls)),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        }
        out["perturbridge"] = {
            "wall_s_median": round(ours["wall_s"], 2),
            "wall_s_runs": [round(w, 2) for w in walls],
            "peak_rss_mb": round(ours["peak_rss_mb"], 1),
            "note": "each run a fresh process; timed from the call, after reading the file",
        }
        res = np.load(tmpdir / "ours.npz", allow_pickle=True)
        keep = res["keep"]
        why = r_limma_status()
        if args.skip_r or why is not None:
            out["r"] = f"skipped: {why or '--skip-r'}"
            print(json.dumps(out, indent=2))
            return
        rng = np.random.default_rng(args.seed)
        n_kept = int(keep.sum())
        n_fit = min(args.r_genes, n_kept)
        fit_rows = np.sort(rng.choice(n_kept, n_fit, replace=False))
        rdir = tmpdir / "r"
        write_r_inputs(np.asarray(samples.X), design, rdir)
        np.savetxt(rdir / "fit_rows.txt", fit_rows + 1, fmt="%d")
        script = resources.files("perturbridge.de").joinpath("r/limma.R")
        cmd = ["Rscript", str(script), str(rdir), "all", "voom"]
        timer = shutil.which("time") and Path("/usr/bin/time").exists()
        if timer:
            cmd = ["/usr/bin/time", "-f", "PEAK_RSS_KB %M", *cmd]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        r_wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        steps = dict(
            (line.split("\t")[0], float(line.split("\t")[1]))
            for line in (rdir / "timings.tsv").read_text().splitlines()[1:]
        )
        scale = n_kept / n_fit
        per_gene_steps = ("lmFit", "contrasts_fit_ebayes", "toptable")
        r_total = (
            steps["filter_tmm"] + steps["voom"] + scale * sum(steps[k] for k in per_gene_steps)
        )
        peak = None
        for line in proc.stderr.splitlines():
            if line.startswith("PEAK_RSS_KB"):
                peak = int(line.split()[1]) / 1024
        r_keep = np.loadtxt(rdir / "R_keep.txt").astype(bool)
        r_lfc = np.loadtxt(rdir / "R_logFC.txt", ndmin=2).T  # contrasts × fitted genes
        fitted_genes = np.asarray(samples.var_names)[np.flatnonzero(keep)[fit_rows]]
        cols = pd.Index(res["genes"]).get_indexer(fitted_genes)
        out["r"] = {
            "steps_s": {k: round(v, 2) for k, v in steps.items()},
            "genes_fitted": n_fit,
            "genes_kept": n_kept,
            "per_gene_steps_scaled_by": round(scale, 3),
            "end_to_end_s_scaled": round(r_total, 1),
            "process_wall_s": round(r_wall, 1),
            "peak_rss_mb": None if peak is None else round(peak, 1),
        }
        out["same_genes_kept"] = bool((r_keep == keep).all())
        out["max_abs_logFC_difference_on_fitted_genes"] = float(
            np.max(np.abs(res["logFC"][:, cols] - r_lfc))
        )
        out["speedup_end_to_end"] = round(r_total / ours["wall_s"], 1)
        out["speedup_range_over_runs"] = [
            round(r_total / max(walls), 1),
            round(r_total / min(walls), 1),
        ]
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

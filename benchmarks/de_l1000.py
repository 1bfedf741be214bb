"""limma-trend on a simulated L1000-like dataset: perturbridge against R limma.

Simulates ~20,000 samples × 978 genes × ~2,000 conditions (3 cell lines × 2 times × 55
compounds × 6 doses + positive controls, 9 replicate plates), ingests it, and times:

* ``perturbridge``: ``limma_trend(samples, mode="group")`` (all contexts, all outputs);
* ``r_all``: R ``lmFit`` + one ``contrasts.fit`` + ``eBayes(trend, robust)`` with all
  contrasts + ``topTable`` per contrast (R at its best);
* ``r_per_contrast``: R ``lmFit`` + one ``contrasts.fit`` + ``eBayes`` + ``topTable`` per
  contrast, the way the published pipeline ran it. At full size this takes hours, so it
  runs on the first ``--per-contrast-sample`` contrasts of each context and the time per
  contrast is extrapolated to all contrasts (reported as such).

Each engine runs in its own process (R through ``Rscript``), one after the other. R's
file reading is excluded from its times. Prints JSON. Also reports the largest
differences between the two engines' outputs.

Usage: python benchmarks/de_l1000.py [--n-samples 20000] [--n-conditions 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from perturbridge.de import ContextDesign, limma_trend, plan_contexts
from perturbridge.de.r_limma import r_limma_status, run_r_limma
from perturbridge.simulate import simulate_l1000, sizes_for
from perturbridge.sources import L1000Tables, read_l1000


def _r_blas() -> str:
    proc = subprocess.run(
        ["Rscript", "-e", "cat(extSoftVersion()[['BLAS']])"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() or "unknown"


def _subset(design: ContextDesign, k: int) -> ContextDesign:
    """The same fit with only the first ``k`` contrasts."""
    return ContextDesign(
        dataset=design.dataset,
        context=design.context,
        rows=design.rows,
        condition=design.condition,
        levels=design.levels,
        plates=design.plates,
        plate_levels=design.plate_levels,
        treated=design.treated[:k],
        control=design.control[:k],
        first_row=design.first_row[:k],
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-samples", type=int, default=20_000)
    ap.add_argument("--n-conditions", type=int, default=2_000)
    ap.add_argument("--n-genes", type=int, default=978)
    ap.add_argument("--per-contrast-sample", type=int, default=25)
    ap.add_argument("--skip-r-all", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        sim = simulate_l1000(
            n_genes=args.n_genes, seed=args.seed, **sizes_for(args.n_samples, args.n_conditions)
        )
        files = sim.write(tmpdir / "sim")
        samples = read_l1000(
            files["gctx"], tables=L1000Tables(inst_info=files["inst_info"])
        ).samples
        x = np.asarray(samples.X, dtype=float)

        t0 = time.perf_counter()
        res = limma_trend(samples, mode="group")
        t_ours = time.perf_counter() - t0
        designs, _ = plan_contexts(samples, mode="group")

        out: dict = {
            "benchmark": "de_l1000",
            "input": {
                "samples": int(samples.n_obs),
                "genes": int(samples.n_vars),
                "contrasts": int(res.effects.n_obs),
                "contexts": len(designs),
                "coefficients_per_fit": [len(d.levels) + len(d.plate_levels) - 1 for d in designs],
            },
            "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count()},
            "perturbridge_s": round(t_ours, 3),
        }
        why = r_limma_status()
        if why is not None:
            out["r"] = f"skipped: {why}"
            print(json.dumps(out, indent=2))
            return
        out["machine"]["r_blas"] = _r_blas()
        eff = res.effects
        if not args.skip_r_all:
            r_total, r_parts = 0.0, {"lmFit": 0.0, "contrasts_fit_ebayes": 0.0, "toptable": 0.0}
            worst = {"logFC_abs": 0.0, "t_rel": 0.0, "P.Value_abs": 0.0, "B_abs": 0.0}
            for i, d in enumerate(designs):
                r = run_r_limma(x[d.rows], d, workdir=tmpdir / f"all{i}", how="all")
                for k in r_parts:
                    r_parts[k] += r.timings[k]
                r_total += sum(r.timings[k] for k in r_parts)
                block = eff[(eff.obs["cell_context"] == d.context).to_numpy()]
                worst["logFC_abs"] = max(
                    worst["logFC_abs"],
                    float(np.max(np.abs(block.layers["logFC"] - r.layers["logFC"]))),
                )
                worst["t_rel"] = max(
                    worst["t_rel"],
                    float(
                        np.max(np.abs(block.layers["t"] - r.layers["t"]) / np.abs(r.layers["t"]))
                    ),
                )
                worst["P.Value_abs"] = max(
                    worst["P.Value_abs"],
                    float(np.max(np.abs(block.layers["P.Value"] - r.layers["P.Value"]))),
                )
                worst["B_abs"] = max(
                    worst["B_abs"], float(np.max(np.abs(block.layers["B"] - r.layers["B"])))
                )
            out["r_all_s"] = round(r_total, 3)
            out["r_all_parts_s"] = {k: round(v, 3) for k, v in r_parts.items()}
            out["speedup_vs_r_all"] = round(r_total / t_ours, 1)
            out["max_difference_vs_r"] = worst
        # the published pipeline's way, sampled and extrapolated
        fit_s, per_contrast_s, n_sampled, n_total = 0.0, 0.0, 0, 0
        for i, d in enumerate(designs):
            k = min(args.per_contrast_sample, len(d.treated))
            r = run_r_limma(x[d.rows], _subset(d, k), workdir=tmpdir / f"pc{i}", how="per_contrast")
            fit_s += r.timings["lmFit"]
            per_contrast_s += r.timings["contrasts_fit_ebayes"] + r.timings["toptable"]
            n_sampled += k
            n_total += len(d.treated)
        est = fit_s + per_contrast_s / n_sampled * n_total
        out["r_per_contrast"] = {
            "contrasts_timed": n_sampled,
            "lmFit_s": round(fit_s, 3),
            "seconds_per_contrast": round(per_contrast_s / n_sampled, 4),
            "extrapolated_total_s": round(est, 1),
        }
        out["speedup_vs_r_per_contrast"] = round(est / t_ours, 1)
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

"""Time the agreement diagnostics on a simulated multi-assay compendium.

Simulates a compendium with :func:`perturbridge.simulate.agreement.write_agreement_release`
(datasets × cell contexts × compounds × doses, 978 genes, assay distortions on, one time
point), imports it with :func:`perturbridge.compendium.import_release`, and runs
:func:`perturbridge.agreement.run_agreement` on it with every pair metric, the centroid
and peer baselines, retrieval and the compound-clustered BCa bootstrap. Reports, as JSON:

- ``simulate_s`` (writing the release files) and ``import_s`` (building the store):
  not part of the agreement time;
- ``agreement``: wall time of ``run_agreement`` (tables written to disk included), the
  time of each of its phases (``timings_s`` of ``agreement.json``), counts (conditions,
  matched pairs, retrieval queries, strata, compounds), and peak RSS;
- ``pattern``: observed and source-centroid baseline of ``direction`` and
  ``deg_spearman`` for each dataset pair over all contexts (the simulator's planted
  pattern: direction above, DEG Spearman below).

Usage (full size: 100,000 conditions = 2 datasets × 20 contexts × 500 compounds × 5
doses; the target is under 5 min of agreement time on 2 cores)::

    python benchmarks/agreement.py

Smaller::

    python benchmarks/agreement.py --n-conditions 10000 --n-boot 500

``--profile FILE`` also writes a cProfile of ``run_agreement`` (``python -m pstats FILE``).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from perturbridge.agreement import AgreementOptions, run_agreement
from perturbridge.compendium import import_release
from perturbridge.simulate.agreement import AgreementDesign, write_agreement_release


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pattern(cross_summary) -> list[dict]:
    cs = cross_summary
    rows = cs[
        (cs["cell_context"] == "*")
        & (cs["baseline"] == "source_centroid")
        & cs["metric"].isin(["direction", "deg_spearman"])
    ]
    return [
        {
            "pair": f"{r.dataset_a}|{r.dataset_b}",
            "metric": r.metric,
            "observed": round(float(r.observed), 4),
            "baseline": round(float(r.baseline_value), 4),
            "delta": round(float(r.delta), 4),
            "delta_ci": [round(float(r.delta_low), 4), round(float(r.delta_high), 4)],
        }
        for r in rows.itertuples()
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-conditions", type=int, default=100_000, help="In all datasets.")
    ap.add_argument("--n-datasets", type=int, default=2)
    ap.add_argument("--n-contexts", type=int, default=20)
    ap.add_argument("--n-doses", type=int, default=5, help="Doses from 0.1 to 10 µM.")
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--max-peers", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--separate", action="store_true", help="Also separate mode (replicates).")
    ap.add_argument("--no-distortion", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="Work folder (default: a temp dir).")
    ap.add_argument("--keep", action="store_true", help="Keep the work folder.")
    ap.add_argument("--profile", type=Path, default=None, help="cProfile of run_agreement.")
    args = ap.parse_args()

    n_compounds = max(
        1, round(args.n_conditions / (args.n_datasets * args.n_contexts * args.n_doses))
    )
    doses = tuple(float(x) for x in np.geomspace(0.1, 10.0, args.n_doses))
    work = args.out or Path(tempfile.mkdtemp(prefix="pb-agreement-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        release, store, out = work / "release", work / "store", work / "agreement"
        shutil.rmtree(release, ignore_errors=True)
        t0 = time.perf_counter()
        design = AgreementDesign(
            n_datasets=args.n_datasets,
            n_contexts=args.n_contexts,
            n_compounds=n_compounds,
            doses=doses,
            distortion=not args.no_distortion,
            separate=args.separate,
        )
        write_agreement_release(release, design, seed=args.seed)
        simulate_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        import_release(release, store)
        import_s = time.perf_counter() - t0
        shutil.rmtree(release, ignore_errors=True)
        rss_before = _rss_mb()

        prof = cProfile.Profile() if args.profile else None
        t0 = time.perf_counter()
        if prof is not None:
            prof.enable()
        options = AgreementOptions(
            metrics=None,  # every registered metric
            n_boot=args.n_boot,
            max_peers=args.max_peers,
            seed=args.seed,
            replicates=args.separate,
        )
        res = run_agreement(store, options, out=out, progress=False)
        if prof is not None:
            prof.disable()
        agreement_s = time.perf_counter() - t0
        if prof is not None:
            prof.dump_stats(args.profile)

        cs = res.cross_summary
        overall = cs[cs["cell_context"] == "*"]
        n_conditions = args.n_datasets * args.n_contexts * n_compounds * args.n_doses
        result = {
            "benchmark": "agreement",
            "input": {
                "conditions": n_conditions,
                "datasets": args.n_datasets,
                "contexts": args.n_contexts,
                "compounds": n_compounds,
                "doses_uM": [round(d, 4) for d in doses],
                "genes": 978,
                "distortion": not args.no_distortion,
                "separate": args.separate,
            },
            "options": {
                "n_boot": args.n_boot,
                "max_peers": args.max_peers,
                "seed": args.seed,
                "metrics": res.info["options"]["metrics"],
                "score": res.info["options"]["score"],
            },
            "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count()},
            "simulate_s": round(simulate_s, 1),
            "import_s": round(import_s, 1),
            "agreement": {
                "wall_s": round(agreement_s, 1),
                "timings_s": res.info.get("timings_s", {}),
                "counts": res.info.get("counts", {}),
                "n_strata": int(overall["n_strata"].max()) if len(overall) else 0,
                "n_compounds": int(overall["n_compounds"].max()) if len(overall) else 0,
                "cross_summary_rows": len(cs),
                "peak_rss_mb": round(_rss_mb(), 0),
                "peak_rss_mb_before": round(rss_before, 0),
            },
            "pattern": _pattern(cs),
        }
        print(json.dumps(result, indent=2, default=str))
    finally:
        if not args.keep and args.out is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

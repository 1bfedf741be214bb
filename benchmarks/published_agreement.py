"""Time the published agreement profile on a simulated multi-assay release.

Writes release-layout DE files with
:func:`perturbridge.simulate.agreement.write_agreement_release` (datasets × cell contexts ×
compounds × doses, 978 genes, replicates in ``separate_rep``) and runs
:func:`perturbridge.agreement.published.run_published` on them: matching, every per-pair
column of Tables 4-6 (with the 512-peer reviewer baselines), the replicate scorer of
Tables 7, 8, 10 (256 peers) and all BCa summaries (2,000 draws). Prints JSON: the
simulation time (not part of the profile), the wall time of each phase, counts and peak
RSS.

Usage::

    python benchmarks/published_agreement.py                       # 2 × 4 × 100 × 3
    python benchmarks/published_agreement.py --n-compounds 40 --n-boot 500
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-datasets", type=int, default=2)
    ap.add_argument("--n-contexts", type=int, default=4)
    ap.add_argument("--n-compounds", type=int, default=100)
    ap.add_argument("--n-doses", type=int, default=3)
    ap.add_argument("--n-replicates", type=int, default=3)
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from perturbridge.agreement.published import (
        PublishedOptions,
        cross,
        read_release,
        replicate,
        run_published,
        summary,
    )
    from perturbridge.simulate.agreement import AgreementDesign, write_agreement_release

    doses = tuple(10.0 ** (i - 1) for i in range(args.n_doses))
    with tempfile.TemporaryDirectory(prefix="pb_published_") as tmp:
        root = Path(tmp) / "release"
        t0 = time.perf_counter()
        design = AgreementDesign(
            n_datasets=args.n_datasets,
            n_contexts=args.n_contexts,
            n_compounds=args.n_compounds,
            doses=doses,
            n_replicates=args.n_replicates,
        )
        write_agreement_release(root, design, seed=args.seed)
        simulate_s = time.perf_counter() - t0

        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        data = read_release(root)
        timings["read"] = time.perf_counter() - t0
        t_all = time.perf_counter()
        res = run_published(data, options=PublishedOptions(n_boot=args.n_boot))
        timings["run_published"] = time.perf_counter() - t_all
        # the phases, timed again one by one on the same data
        t0 = time.perf_counter()
        units = {n: cross.units_for(data, n, "condition") for n in data.names}
        glob = cross.global_genes(data, units)
        m, _ = cross.match_units(units[data.names[0]], units[data.names[1]])
        timings["match_first_pair"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        pairs = cross.score_pairs(
            data, m, dataset_a=data.names[0], dataset_b=data.names[1], global_sets=glob
        )
        timings["score_first_pair"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        summary.cross_summary(pairs, weighting="condition", n_boot=args.n_boot)
        timings["summary_first_pair"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        replicate.replicate_conditions(data.datasets[0], global_genes=glob)
        timings["replicate_first_dataset"] = time.perf_counter() - t0

    n_conditions = args.n_datasets * args.n_contexts * args.n_compounds * args.n_doses
    out = {
        "benchmark": "published_agreement",
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "design": {**vars(args), "conditions": n_conditions, "genes": 978},
        "simulate_s": round(simulate_s, 2),
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "counts": {
            "condition_pairs": len(res.pairs),
            "replicate_conditions": len(res.replicate_conditions),
            "summary_rows": len(res.summary) + len(res.replicate_summary),
        },
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

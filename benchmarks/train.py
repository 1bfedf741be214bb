"""CPU training throughput of the LPM model, both forms at two sizes, from a store.

Builds a simulated store once (``simulate_pretraining_store``: 978 genes, 4 datasets ×
3 contexts × 120 compounds × 3 doses at 80 % coverage, about 3,500 conditions), then,
each in its own subprocess (so that peak RSS is per run), trains one epoch of

* ``multi`` form (one row per condition, all 978 genes at once) and
* ``scalar`` form (one row per condition × gene, a learned gene embedding),

each at two sizes: ``small`` (the default ``ModelConfig``: hidden 256 × 256, embeddings
8/16/32/32) and ``large`` (hidden 1024 × 1024 × 1024, compound 128, gene 64). Values
stream from the store's consolidated arrays in blocks (``DataOptions.in_memory=False``,
the path a 200,000-condition store takes). The validation part is 32 conditions, so the
epoch time (``history.csv``, training plus that validation) is the training time.

Reported per run: condition rows/s, readout values/s (measured values of the training
rows / s), parameters, peak RSS (``ru_maxrss`` of the child), and one epoch over a
200,000-condition × 978-gene store projected from the rate (``200000 / rows_per_s``).
The scalar form trains on the first ``--scalar-conditions`` conditions only (its epoch
over all of them would take long on a CPU; the rate is per condition all the same).

Usage: python benchmarks/train.py [--scalar-conditions 400] [--threads N] [--out store]
Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SIZES: dict[str, dict[str, Any]] = {
    "small": {},
    "large": {"hidden": (1024, 1024, 1024), "dim_compound": 128, "dim_gene": 64},
}
PROJECTED_CONDITIONS = 200_000
N_VAL = 32


def _one(store: str, form: str, size: str, n_train: int | None) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    import torch

    from perturbridge.models.data import DataOptions, load_training_data
    from perturbridge.models.options import ModelConfig
    from perturbridge.models.splits import Split
    from perturbridge.models.training import train

    data = load_training_data(store, options=DataOptions(in_memory=False))
    n = len(data)
    rows = np.arange(n)
    rng = np.random.default_rng(0)
    val = rng.choice(rows, size=N_VAL, replace=False)
    rest = np.setdiff1d(rows, val)
    train_rows = rest if n_train is None else rest[:n_train]
    part = np.full(n, "test", dtype=object)
    part[train_rows] = "train"
    part[val] = "val"
    split = Split(
        kind="pair",
        assignment=pd.Series(part, index=pd.Index(data.conditions["condition_id"])),
        manifest={"kind": "benchmark"},
    )
    cfg = ModelConfig(form=form, max_epochs=1, patience=0, device="cpu", **SIZES[size])
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        model = train(data, split, config=cfg, out=tmp, progress=False)
        history = pd.read_csv(Path(tmp) / "history.csv")
    wall = time.perf_counter() - t0
    seconds = float(history["seconds"].iloc[0])
    measured = 0
    for start in range(0, len(train_rows), 1024):
        measured += int(np.isfinite(data.values(train_rows[start : start + 1024])).sum())
    rate = len(train_rows) / seconds
    return {
        "form": form,
        "size": size,
        "parameters": int(sum(p.numel() for p in model.net.parameters())),
        "train_conditions": len(train_rows),
        "genes": data.n_genes,
        "epoch_seconds": round(seconds, 3),
        "train_call_seconds": round(wall, 3),
        "condition_rows_per_s": round(rate, 1),
        "readout_values_per_s": round(measured / seconds, 1),
        "projected_epoch_200k_conditions_s": round(PROJECTED_CONDITIONS / rate, 1),
        "projected_epoch_200k_conditions_h": round(PROJECTED_CONDITIONS / rate / 3600, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scalar-conditions", type=int, default=400)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", default=None, help="store folder to build (default: temporary)")
    ap.add_argument(
        "--one", nargs=4, metavar=("STORE", "FORM", "SIZE", "N"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.one:
        store, form, size, n = args.one
        print(json.dumps(_one(store, form, size, None if n == "all" else int(n))))
        return

    from perturbridge.simulate.pretraining import PretrainingDesign, simulate_pretraining_store

    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="pb-bench-train-"))
    store = root / "store" if args.out is None else root
    t0 = time.perf_counter()
    simulate_pretraining_store(store, design=PretrainingDesign(n_genes=978))
    build = time.perf_counter() - t0
    runs = []
    for form in ("multi", "scalar"):
        for size in SIZES:
            n = "all" if form == "multi" else str(args.scalar_conditions)
            cmd = [sys.executable, __file__, "--one", str(store), form, size, n]
            if args.threads:
                cmd[2:2] = ["--threads", str(args.threads)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(
        json.dumps(
            {
                "benchmark": "train",
                "machine": {
                    "python": platform.python_version(),
                    "cpu_count": os.cpu_count(),
                    "load_average_1min": round(os.getloadavg()[0], 2),
                    "platform": platform.platform(),
                },
                "store": {"path": str(store), "build_seconds": round(build, 1)},
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""Time the peer-baseline kernel against the gathered ``pair_metrics`` path on one stratum.

A benchmark-sized stratum (default 2,500 pairs × 50 peers × 978 genes, float32, 10 % DE
genes, the six built-in metrics): :func:`perturbridge.agreement._peers.peer_metrics`
ranks each signature once; the gathered path runs every (pair, peer) row through
:func:`perturbridge.agreement.metrics.pair_metrics` and is timed on the first
``--gathered-pairs`` pairs, scaled to the whole stratum. The two agree exactly on those
pairs (``tests/agreement/test_peers.py`` checks the same stratum). Reports, as JSON:
sizes, ``peer_metrics_s``, ``gathered_s`` (scaled), ``speedup`` and ``max_abs_diff``.

Usage::

    python benchmarks/peers.py
    python benchmarks/peers.py --pairs 5000 --peers 100
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from perturbridge.agreement._peers import PeerPairs, peer_metrics
from perturbridge.agreement.metrics import pair_metrics

BUILTIN = ["deg_spearman", "direction", "spearman", "top50", "top100", "top200"]


def _gathered(
    arrays: dict[str, np.ndarray], rows: slice, metrics: list[str]
) -> dict[str, np.ndarray]:
    """Every (pair, peer) row of the pairs ``rows`` gathered through ``pair_metrics``."""
    peers = arrays["peers"][rows]
    i_src, i_tgt = arrays["i_src"][rows], arrays["i_tgt"][rows]
    out = {m: np.full(peers.shape, np.nan) for m in metrics}
    p, j = np.nonzero(peers >= 0)
    res = pair_metrics(
        arrays["src"][peers[p, j]],
        arrays["tgt"][i_tgt[p]],
        de_a=arrays["src_de"][i_src[p]],
        de_b=arrays["tgt_de"][i_tgt[p]],
        metrics=metrics,
    )
    for m in metrics:
        out[m][p, j] = res[m]
    return out


def _stratum(n: int, genes: int, n_pairs: int, n_peers: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    src = rng.standard_normal((n, genes)).astype(np.float32)
    tgt = (0.3 * src[rng.permutation(n)] + rng.standard_normal((n, genes))).astype(np.float32)
    return {
        "src": src,
        "tgt": tgt,
        "src_de": rng.random(src.shape) < 0.1,
        "tgt_de": rng.random(tgt.shape) < 0.1,
        "i_src": rng.permutation(n)[:n_pairs],
        "i_tgt": rng.permutation(n)[:n_pairs],
        "peers": np.stack([rng.choice(n, n_peers, replace=False) for _ in range(n_pairs)]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signatures", type=int, default=2500, help="signatures per side")
    parser.add_argument("--genes", type=int, default=978)
    parser.add_argument("--pairs", type=int, default=2500)
    parser.add_argument("--peers", type=int, default=50)
    parser.add_argument("--gathered-pairs", type=int, default=250)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    if args.pairs > args.signatures:
        parser.error("--pairs must not exceed --signatures")

    arrays = _stratum(args.signatures, args.genes, args.pairs, args.peers, args.seed)
    pairs = PeerPairs(arrays["i_src"], arrays["i_tgt"], arrays["peers"])
    t0 = time.perf_counter()
    got = peer_metrics(
        arrays["src"],
        arrays["tgt"],
        pairs,
        src_de=arrays["src_de"],
        tgt_de=arrays["tgt_de"],
        metrics=BUILTIN,
    )
    kernel_s = time.perf_counter() - t0
    sub = min(args.gathered_pairs, args.pairs)
    t0 = time.perf_counter()
    want = _gathered(arrays, slice(0, sub), BUILTIN)
    gathered_s = (time.perf_counter() - t0) * args.pairs / max(sub, 1)
    diff = max(float(np.nanmax(np.abs(got[m][:sub] - want[m]), initial=0.0)) for m in BUILTIN)
    result = {
        "benchmark": "peer_metrics",
        "sizes": {
            "signatures": args.signatures,
            "genes": args.genes,
            "pairs": args.pairs,
            "peers": args.peers,
            "metrics": BUILTIN,
            "gathered_pairs": sub,
        },
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count()},
        "peer_metrics_s": round(kernel_s, 3),
        "gathered_s": round(gathered_s, 1),
        "speedup": round(gathered_s / kernel_s, 1) if kernel_s > 0 else None,
        "max_abs_diff": diff,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

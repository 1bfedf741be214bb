"""How fast the store's AnnData elements are read: ``io.read_element`` against AnnData.

Builds the demo compendium (one small dataset of every source family, tasks in this
process) in a temporary folder, then reads the ``obs``, ``var`` and ``uns`` of every
``.h5ad`` file of its store and task cache with :func:`anndata.io.read_elem` and with
:func:`perturbridge.io.read_element`, alternately, ``--repeats`` times, and reports as
JSON the number of files and elements, the best total time of each reader and their
ratio.

Usage::

    python benchmarks/read_elements.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
from anndata.io import read_elem

from perturbridge._demo.compendium import run_demo_compendium
from perturbridge.io import read_element


def _read_all(files: list[Path], reader: Callable[[Any], Any]) -> tuple[float, int]:
    n = 0
    start = time.perf_counter()
    for path in files:
        with h5py.File(path, "r") as f:
            for key in ("obs", "var", "uns"):
                if key in f:
                    reader(f[key])
                    n += 1
    return time.perf_counter() - start, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_demo_compendium(Path(tmp) / "demo", n_jobs=1)
        files = sorted(Path(tmp).rglob("*.h5ad"))
        best = {"anndata_read_elem_s": float("inf"), "read_element_s": float("inf")}
        n = 0
        for _ in range(args.repeats):
            t, n = _read_all(files, read_elem)
            best["anndata_read_elem_s"] = min(best["anndata_read_elem_s"], t)
            t, n = _read_all(files, read_element)
            best["read_element_s"] = min(best["read_element_s"], t)
    print(
        json.dumps(
            {
                "files": len(files),
                "elements": n,
                **{k: round(v, 3) for k, v in best.items()},
                "speedup": round(best["anndata_read_elem_s"] / best["read_element_s"], 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

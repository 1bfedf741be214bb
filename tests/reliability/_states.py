"""Two states of one small store (plans A and B) and how to read and compare them.

Shared by the store-fault tests (``test_store_faults.py``, ``test_store_kill_anytime.py``)
through the session fixture ``two_states`` in this folder's conftest, built once per run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from compendium._fixtures import write_counts, write_l1000, write_plan
from perturbridge.compendium import Compendium, build

ROOT = Path(__file__).resolve().parents[2]
EXTRA = "[executor]\nn_jobs = 1\n"
READS = (("group", "logFC"), ("separate", "logFC"), ("group", "CI.L"))  # CI.L: Effects files


def env() -> dict[str, str]:
    """The environment of a subprocess that imports this checkout and the test helpers."""
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), str(ROOT / "tests"), out.get("PYTHONPATH", "")]
    )
    return out


def read_values(store: Path) -> dict[str, pd.DataFrame]:
    """The :data:`READS` of a store, as labelled frames."""
    with Compendium.open(store) as comp:
        out = {}
        for mode, layer in READS:
            a = comp.effects(mode=mode, layer=layer)  # type: ignore[arg-type]
            out[f"{mode}/{layer}"] = pd.DataFrame(a.X, index=a.obs_names, columns=a.var_names)
        return out


def same_values(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> bool:
    """Whether two :func:`read_values` are equal: labels, shapes and values (NaN = NaN)."""
    return a.keys() == b.keys() and all(
        a[k].shape == b[k].shape
        and a[k].index.equals(b[k].index)
        and a[k].columns.equals(b[k].columns)
        and np.array_equal(a[k].to_numpy(), b[k].to_numpy(), equal_nan=True)
        for k in a
    )


def copy_tree(src: Path, dst: Path) -> Path:
    """A copy of ``src`` at ``dst`` (links kept as links); the tests work on copies."""
    shutil.copytree(src, dst, symlinks=True)
    return dst


def build_two_states(folder: Path) -> dict[str, object]:
    """A store of plan A whose cache also holds plan B's tasks, and reference stores of
    A and B built without interruption (with what they read)."""
    inputs = folder / "inputs"
    l1000_a = write_l1000(inputs / "a")
    l1000_b = write_l1000(inputs / "b", seed=1)
    counts = write_counts(inputs)
    refs = {}
    for name, l1000 in (("a", l1000_a), ("b", l1000_b)):
        d = folder / f"ref_{name}"
        d.mkdir()
        build(write_plan(d, l1000=l1000, counts=counts, extra=EXTRA))
        refs[name] = d / "store"
    base = folder / "base"
    base.mkdir()
    build(write_plan(base, l1000=l1000_b, counts=counts, extra=EXTRA))  # warm B's tasks
    build(write_plan(base, l1000=l1000_a, counts=counts, extra=EXTRA))  # the store: A
    return {
        "base": base,
        "refs": refs,
        "values": {k: read_values(v) for k, v in refs.items()},
        "plan_b": (l1000_b, counts),
    }

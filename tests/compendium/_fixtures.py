"""Small simulated inputs and plans for the compendium tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from perturbridge.io import write_h5ad
from perturbridge.io.gct import write_gct
from perturbridge.simulate import L1000Plates, simulate_counts, simulate_l1000

COUNTS_MODULE = "compendium._counts_source"


def write_l1000(folder: Path, *, seed: int = 0, n_compounds: int = 2) -> Path:
    """A small L1000-like level 3 GCT (3 cell lines × 2 times, 2 replicates)."""
    sim = simulate_l1000(
        n_genes=40,
        n_compounds=n_compounds,
        n_replicates=2,
        plates=L1000Plates(n_vehicle_per_plate=6, n_poscon_per_plate=1, wells_per_plate=96),
        seed=seed,
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "level3.gct"
    write_gct(path, sim.data, row_meta=sim.row_meta, col_meta=sim.col_meta)
    return path


def write_counts(folder: Path, *, seed: int = 0) -> Path:
    """Count Samples of two cell lines (simulate_counts) as an .h5ad."""
    parts = []
    for i, cell in enumerate(("CVCL_0023", "CVCL_0031")):
        sim = simulate_counts(
            n_genes=120,
            n_plates=2,
            conditions_per_plate=4,
            vehicles_per_plate=4,
            cell_line=cell,
            seed=seed + i,
        )
        s = sim.samples
        s.obs_names = [f"{cell}_{x}" for x in s.obs_names]
        parts.append(s)
    samples = ad.concat(parts, merge="same")
    samples.uns["perturbridge"] = {"kind": "samples", "value_kind": "counts", "provenance": {}}
    for col in ("dataset", "assay", "plate", "well", "cell_context", "cell_name"):
        samples.obs[col] = pd.Categorical(samples.obs[col].astype(str))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "counts.h5ad"
    write_h5ad(samples, path)
    return path


def write_plan(
    folder: Path,
    *,
    store: str = "store",
    l1000: Path | None = None,
    counts: Path | None = None,
    extra: str = "",
    name: str = "plan.toml",
    l1000_modes: tuple[str, ...] = ("group", "separate"),
) -> Path:
    """A plan with an L1000 dataset (both modes unless ``l1000_modes`` says) and a
    counts dataset (group mode).

    Its tasks run in the build's process (``[executor] n_jobs = 1``) unless ``extra``
    has an ``[executor]`` table: a pool of spawned workers imports the package in each
    worker first, seconds for a few small tasks (``test_executors.py`` tests the pools).
    """
    parts = [
        f'[store]\npath = "{store}"\nchunk_conditions = 16\n',
        f'[build]\nimports = ["{COUNTS_MODULE}"]\n',
    ]
    if l1000 is not None:
        parts.append(
            textwrap.dedent(
                f"""
                [[datasets]]
                name = "sim_l1000"
                source = "l1000"
                inputs = {{ level3 = "{l1000}" }}
                de = {{ modes = {list(l1000_modes)!r} }}
                """
            )
        )
    if counts is not None:
        parts.append(
            textwrap.dedent(
                f"""
                [[datasets]]
                name = "sim_counts"
                source = "test_counts_h5ad"
                inputs = {{ h5ad = "{counts}" }}
                de = {{ modes = ["group"], min_cells = 30 }}
                """
            )
        )
    parts.append(extra)
    if "[executor]" not in extra:
        parts.append("[executor]\nn_jobs = 1\n")
    path = folder / name
    path.write_text("\n".join(parts))
    return path


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file of a store except the task cache and timings.json, by relative path."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel.split("/")[0] not in (".cache", "timings.json"):
            out[rel] = p.read_bytes()
    return out


def assert_same_store(a: Path, b: Path) -> None:
    """Byte-identical stores (except the cache and timings.json), with a useful diff."""
    ta, tb = tree_bytes(a), tree_bytes(b)
    assert sorted(ta) == sorted(tb), (sorted(set(ta) ^ set(tb)))[:10]
    differ = [k for k in ta if ta[k] != tb[k]]
    assert not differ, f"files differ: {differ[:10]}"
    assert np.all([len(v) > 0 for v in ta.values()])


def cache_effects(store: Path, rel: str) -> ad.AnnData:
    """The complete Effects file of the task cache that the store file ``rel`` was
    written from (``uns["store_layers"]["source_sha256"]``): the engine's own output."""
    from perturbridge.io import file_sha256

    sha = ad.read_h5ad(store / rel).uns["store_layers"]["source_sha256"]
    for p in sorted((store / ".cache").rglob("*.h5ad")):
        if file_sha256(p) == sha:
            return ad.read_h5ad(p)
    raise FileNotFoundError(f"no cache file with SHA-256 {sha} for {rel}")

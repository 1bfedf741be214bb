"""The demo across every assay family: one simulated dataset per source, in its upstream
format, ingested by its adapter and analysed by the DE engine.

Each source's fixture writer (:mod:`perturbridge.simulate.upstream`,
:mod:`~perturbridge.simulate.upstream_sc`, :mod:`~perturbridge.simulate.upstream_generic`,
:func:`~perturbridge.simulate.simulate_l1000`) writes small files in exactly the
upstream layout with planted effects; the adapter reads them into Samples with a
ledger; limma-voom (counts) or limma-trend (log expression) estimates the effects; the
recovery of the planted effects is reported as the Pearson correlation of estimated and
planted logFC over the matched contrasts.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import de
from ..io import write_h5ad
from ..ledger import Ledger
from ..simulate import simulate_l1000
from ..simulate.upstream_generic import write_generic
from ..sources import IngestResult, get_source
from .fixtures import FAMILIES, FIXTURES, check_families
from .l1000 import recovery_metrics

__all__ = ["FAMILIES", "FamilyResult", "run_demo_all", "summary_table"]

logger = logging.getLogger(__name__)

#: A family's demo: ``(folder, seed) -> (ingest result, recovery of the planted effects)``.
Runner = Callable[[Path, int], tuple[IngestResult, Callable[[de.DEResult], float]]]


@dataclass
class FamilyResult:
    """One source's demo: its ledger, effects and recovery of the planted effects."""

    source: str
    assay: str
    samples: int
    genes: int
    contrasts: int
    recovery_r: float
    ledger: Ledger
    files: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0
    skipped: str = ""


def _l1000(folder: Path, seed: int) -> tuple[IngestResult, Callable[[de.DEResult], float]]:
    sim = simulate_l1000(n_genes=978, n_compounds=6, seed=seed)
    files = sim.write(folder)
    res = get_source("l1000").ingest(
        level3=files["gctx"], inst_info=files["inst_info"], dataset="simulated_l1000"
    )

    def recovery(result: de.DEResult) -> float:
        return float(recovery_metrics(result, sim)["pearson_logFC_vs_truth"])

    return res, recovery


def _fixture(name: str, *, seed: int, **options: Any) -> Runner:
    """A family of :data:`~perturbridge._demo.fixtures.FIXTURES`, written with its own
    ``seed`` and read by the registered reader (with further reader ``options``)."""
    fixture = FIXTURES[name]

    def run(folder: Path, _seed: int) -> tuple[IngestResult, Callable[[de.DEResult], float]]:
        fx = fixture.write(folder, seed=seed)
        res = get_source(name).ingest(**fixture.inputs(fx, folder), **options)

        def recovery(result: de.DEResult) -> float:
            return float(fx.recovery(result.effects)["r"])

        return res, recovery

    return run


def _generic(folder: Path, seed: int) -> tuple[IngestResult, Callable[[de.DEResult], float]]:
    paths = write_generic(folder, n_genes=500, seed=seed)
    res = get_source("generic").ingest(mapping=paths["mapping"])
    truth = pd.read_csv(paths["truth"], sep="\t", index_col=0)

    def recovery(result: de.DEResult) -> float:
        eff = result.effects
        keys = [
            f"{p}|{d:g}"
            for p, d in zip(eff.obs["perturbagen"], eff.obs["pert_dose_uM"], strict=True)
        ]
        t = truth.reindex(index=keys, columns=eff.var_names).to_numpy(dtype=float)
        est = np.asarray(eff.layers["logFC"], dtype=float)
        ok = np.isfinite(t) & np.isfinite(est)
        return float(np.corrcoef(est[ok], t[ok])[0, 1])

    return res, recovery


#: How each family's demo dataset is made (the upstream fixtures keep their own seeds).
RUNNERS: dict[str, Runner] = {
    "l1000": _l1000,
    "op3": _fixture("op3", seed=11),
    "drugseq_moabox": _fixture("drugseq_moabox", seed=21),
    "vcpi": _fixture("vcpi", seed=31),
    "gdpx2": _fixture("gdpx2", seed=41),
    "sciplex": _fixture(
        "sciplex", seed=1, quality_gene="MALAT1", quality_min_fraction=0.005, min_cells=5
    ),
    "tahoe": _fixture("tahoe", seed=2),
    "cigs": _fixture("cigs", seed=3),
    "dilimap": _fixture("dilimap", seed=4),
    "generic": _generic,
}


def run_demo_all(
    out_dir: str | os.PathLike[str] = "demo_out",
    *,
    seed: int = 0,
    families: tuple[str, ...] = FAMILIES,
) -> list[FamilyResult]:
    """Simulate, ingest and analyse one dataset per source family.

    Writes ``out_dir/<source>/upstream/`` (the simulated upstream files),
    ``samples.h5ad``, ``effects_group.h5ad`` and ``ledger.tsv`` per source, and
    ``out_dir/families.tsv`` (one row per source: samples, genes, contrasts, recovery,
    ledger counts). A source whose optional dependency is missing (CIGS needs openpyxl
    for its .xlsx files) is reported as skipped, with the reason.
    """
    out = Path(out_dir)
    check_families(families, RUNNERS, what="unknown demo families")
    results = []
    for name in families:
        t0 = time.perf_counter()
        folder = out / name
        adapter = get_source(name)
        try:
            ing, recovery = RUNNERS[name](folder / "upstream", seed)
        except ImportError as err:
            results.append(
                FamilyResult(name, adapter.assay, 0, 0, 0, float("nan"), Ledger(), skipped=str(err))
            )
            logger.warning("demo: %s skipped: %s", name, err)
            continue
        result = de.run(ing.samples)  # limma-voom for counts, limma-trend for log expression
        ledger = Ledger()
        ledger.extend(ing.ledger)
        ledger.extend(result.ledger)
        files = {
            "samples": write_h5ad(ing.samples, folder / "samples.h5ad"),
            "effects": write_h5ad(result.effects, folder / "effects_group.h5ad"),
            "ledger": folder / "ledger.tsv",
        }
        ledger.to_frame().to_csv(files["ledger"], sep="\t", index=False)
        results.append(
            FamilyResult(
                source=name,
                assay=adapter.assay,
                samples=int(ing.samples.n_obs),
                genes=int(ing.samples.n_vars),
                contrasts=int(result.effects.n_obs),
                recovery_r=recovery(result),
                ledger=ledger,
                files=files,
                seconds=time.perf_counter() - t0,
            )
        )
    summary_table(results).to_csv(out / "families.tsv", sep="\t", index=False)
    return results


def summary_table(results: list[FamilyResult]) -> pd.DataFrame:
    """One row per source: sizes, recovery and the ledger's kept/dropped counts."""
    rows = []
    for r in results:
        led = r.ledger.to_frame()
        dropped = led[led["status"] == "dropped"]
        reasons = dropped.groupby(["stage", "reason"]).size().reset_index(name="n")
        rows.append(
            {
                "source": r.source,
                "assay": r.assay,
                "samples": r.samples,
                "genes": r.genes,
                "contrasts": r.contrasts,
                "recovery_r": round(r.recovery_r, 3),
                "ledger_kept": int((led["status"] == "kept").sum()),
                "ledger_dropped": len(dropped),
                "dropped_reasons": "; ".join(
                    f"{s}/{k}: {n}" for s, k, n in reasons.itertuples(index=False)
                ),
                "seconds": round(r.seconds, 1),
                "skipped": r.skipped,
            }
        )
    return pd.DataFrame(rows)

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

from .de import limma_trend
from .de.voom import limma_voom
from .io import write_h5ad
from .ledger import Ledger
from .sources import IngestResult

__all__ = ["FAMILIES", "FamilyResult", "run_demo_all"]

logger = logging.getLogger(__name__)


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


def _l1000(folder: Path, seed: int) -> tuple[IngestResult, Callable[[Any], float]]:
    from .demo import recovery_metrics
    from .simulate import simulate_l1000
    from .sources import read_l1000

    sim = simulate_l1000(n_genes=978, n_compounds=6, seed=seed)
    files = sim.write(folder)
    res = read_l1000(files["gctx"], inst_info=files["inst_info"], dataset="simulated_l1000")

    def recovery(de: Any) -> float:
        return float(recovery_metrics(de, sim)["pearson_logFC_vs_truth"])

    return res, recovery


def _fixture(
    write: Callable[[Path], Any], read: Callable[[Any], IngestResult]
) -> Callable[[Path, int], tuple[IngestResult, Callable[[Any], float]]]:
    def run(folder: Path, seed: int) -> tuple[IngestResult, Callable[[Any], float]]:
        fx = write(folder)
        res = read(fx)

        def recovery(de: Any) -> float:
            return float(fx.recovery(de.effects)["r"])

        return res, recovery

    return run


def _generic(folder: Path, seed: int) -> tuple[IngestResult, Callable[[Any], float]]:
    from .simulate.upstream_generic import write_generic
    from .sources.generic import read_generic

    paths = write_generic(folder, n_genes=500, seed=seed)
    res = read_generic(paths["mapping"])
    truth = pd.read_csv(paths["truth"], sep="\t", index_col=0)

    def recovery(de: Any) -> float:
        eff = de.effects
        keys = [
            f"{p}|{d:g}"
            for p, d in zip(eff.obs["perturbagen"], eff.obs["pert_dose_uM"], strict=True)
        ]
        t = truth.reindex(index=keys, columns=eff.var_names).to_numpy(dtype=float)
        est = np.asarray(eff.layers["logFC"], dtype=float)
        ok = np.isfinite(t) & np.isfinite(est)
        return float(np.corrcoef(est[ok], t[ok])[0, 1])

    return res, recovery


def _families() -> dict[str, Callable[[Path, int], tuple[IngestResult, Callable[[Any], float]]]]:
    from .simulate import upstream as up
    from .simulate import upstream_sc as sc
    from .sources.cigs import read_cigs
    from .sources.dilimap import read_dilimap
    from .sources.drugseq_moabox import read_drugseq_moabox
    from .sources.gdpx2 import read_gdpx2
    from .sources.op3 import read_op3
    from .sources.sciplex import read_sciplex
    from .sources.tahoe import read_tahoe
    from .sources.vcpi import read_vcpi

    def moabox(fx: Any) -> IngestResult:
        counts = [v for k, v in fx.files.items() if k.startswith("counts_")]
        return read_drugseq_moabox(
            fx.files["metadata"],
            counts,
            compounds=fx.files["compounds"],
            robust_controls=fx.files["robust_controls"],
            gene_mapping=fx.files["gene_mapping"],
        )

    return {
        "l1000": _l1000,
        "op3": _fixture(lambda f: up.write_op3(f, seed=11), lambda fx: read_op3(fx.files["h5ad"])),
        "drugseq_moabox": _fixture(lambda f: up.write_moabox(f, seed=21), moabox),
        "vcpi": _fixture(
            lambda f: up.write_vcpi(f, seed=31),
            lambda fx: read_vcpi(fx.files["metadata"], fx.files["counts"]),
        ),
        "gdpx2": _fixture(
            lambda f: up.write_gdpx2(f, seed=41),
            lambda fx: read_gdpx2(fx.files["metadata"], fx.files["counts"]),
        ),
        "sciplex": _fixture(
            lambda f: sc.write_sciplex(f, seed=1),
            lambda fx: read_sciplex(
                fx.files["h5ad"], quality_gene="MALAT1", quality_min_fraction=0.005, min_cells=5
            ),
        ),
        "tahoe": _fixture(
            lambda f: sc.write_tahoe(f, seed=2),
            lambda fx: read_tahoe(fx.files["plate1"].parent, obs_parquet=fx.files["obs_parquet"]),
        ),
        "cigs": _fixture(
            lambda f: sc.write_cigs(f, seed=3),
            lambda fx: read_cigs(fx.files["compounds"].parent),
        ),
        "dilimap": _fixture(
            lambda f: sc.write_dilimap(f, seed=4), lambda fx: read_dilimap(fx.files["h5ad"])
        ),
        "generic": _generic,
    }


#: The sources the demo simulates, in order.
FAMILIES: tuple[str, ...] = (
    "l1000",
    "op3",
    "drugseq_moabox",
    "vcpi",
    "gdpx2",
    "sciplex",
    "tahoe",
    "cigs",
    "dilimap",
    "generic",
)


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
    from .sources import get_source

    out = Path(out_dir)
    runners = _families()
    unknown = [f for f in families if f not in runners]
    if unknown:
        raise ValueError(f"unknown demo families {unknown}; known: {list(runners)}")
    results = []
    for name in families:
        t0 = time.perf_counter()
        folder = out / name
        adapter = get_source(name)
        try:
            ing, recovery = runners[name](folder / "upstream", seed)
        except ImportError as err:
            results.append(
                FamilyResult(name, adapter.assay, 0, 0, 0, float("nan"), Ledger(), skipped=str(err))
            )
            logger.warning("demo: %s skipped: %s", name, err)
            continue
        kind = ing.samples.uns["perturbridge"]["value_kind"]
        de = limma_voom(ing.samples) if kind == "counts" else limma_trend(ing.samples)
        ledger = Ledger()
        ledger.extend(ing.ledger)
        ledger.extend(de.ledger)
        files = {
            "samples": write_h5ad(ing.samples, folder / "samples.h5ad"),
            "effects": write_h5ad(de.effects, folder / "effects_group.h5ad"),
            "ledger": folder / "ledger.tsv",
        }
        ledger.to_frame().to_csv(files["ledger"], sep="\t", index=False)
        results.append(
            FamilyResult(
                source=name,
                assay=adapter.assay,
                samples=int(ing.samples.n_obs),
                genes=int(ing.samples.n_vars),
                contrasts=int(de.effects.n_obs),
                recovery_r=recovery(de),
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
        reasons = dropped.groupby(["stage", "reason"]).size()
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
                "dropped_reasons": "; ".join(f"{s}/{k}: {n}" for (s, k), n in reasons.items()),
                "seconds": round(r.seconds, 1),
                "skipped": r.skipped,
            }
        )
    return pd.DataFrame(rows)

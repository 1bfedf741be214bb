"""Small compendium stores with exact known effects, for the agreement tests.

Stores are imported with :func:`perturbridge.compendium.import_release` from DE files
written in the original release layout, so every logFC and p-value is known.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from perturbridge.schema import EFFECT_LAYERS


def write_release_file(
    root: Path,
    dataset: str,
    context: str,
    rows: pd.DataFrame,
    logfc: np.ndarray,
    adjp: np.ndarray,
    genes: list[str],
    *,
    mode: str = "group",
) -> Path:
    """One ``<root>/<dataset>/<mode>_rep/<context>_de.h5ad``.

    ``rows``: ``condition``, ``perturbagen``, ``compound_inchikey``, ``pert_dose_uM``,
    ``pert_time_h`` and, in separate mode, ``contrast`` (one row per replicate).
    """
    n = len(rows)
    name = rows["contrast"] if mode == "separate" else rows["condition"]
    obs = pd.DataFrame(
        {
            "cell_type": context,
            "perturbagen": rows["perturbagen"].astype(str).to_numpy(),
            "compound_inchikey": rows["compound_inchikey"].astype(object).to_numpy(),
            "pert_dose_uM": rows["pert_dose_uM"].astype(float).to_numpy(),
            "pert_time_h": rows["pert_time_h"].astype(float).to_numpy(),
        },
        index=pd.Index([f"{c} - DMSO" for c in name]),
    )
    if mode == "separate":
        obs["condition"] = rows["condition"].astype(str).to_numpy()
    layers = {k: np.zeros((n, len(genes))) for k in EFFECT_LAYERS}
    layers["logFC"] = np.asarray(logfc, dtype=float)
    layers["adj.P.Value.within_one_contrast"] = np.asarray(adjp, dtype=float)
    layers["P.Value"] = np.asarray(adjp, dtype=float)
    var = pd.DataFrame({"symbol": genes}, index=pd.Index(genes))
    path = root / dataset / f"{mode}_rep" / f"{context}_de.h5ad"
    path.parent.mkdir(parents=True, exist_ok=True)
    ad.AnnData(obs=obs, var=var, layers=layers).write_h5ad(path)
    return path


def build_store(root: Path, files: list[dict], store: Path) -> Path:
    """Write release files (``write_release_file`` keyword dicts) and import them."""
    from perturbridge.compendium import import_release

    for f in files:
        write_release_file(root, **f)
    import_release(root, store)
    return store


def cross_store(tmp: Path, *, seed: int = 0, n_genes: int = 30) -> Path:
    """Two datasets (``dsA``, ``dsB``), one context ``C1`` at 24 h plus ``C2`` at 6 h;
    compounds ``K0..K5`` with a shared effect, several doses, separate-mode replicates
    in ``dsA``; an unresolved compound and a vehicle-like zero dose."""
    rng = np.random.default_rng(seed)
    genes = [f"G{i:03d}" for i in range(n_genes)]
    effect = {f"K{k}": rng.normal(0, 1, n_genes) for k in range(6)}
    files = []
    plan = {
        "dsA": {"C1": [1.0, 10.0], "C2": [3.0]},
        "dsB": {"C1": [1.2, 100.0], "C2": [3.0]},
    }
    for ds, ctxs in plan.items():
        for ctx, doses in ctxs.items():
            recs = []
            for k in range(6):
                for d in doses:
                    recs.append((f"K{k}", f"IK{k}-XXXXXXXXXX-N", d))
            recs.append(("UNRESOLVED", None, 1.0))
            recs.append(("K0", "IK0-XXXXXXXXXX-N", 0.0))
            rows = pd.DataFrame(recs, columns=["perturbagen", "compound_inchikey", "pert_dose_uM"])
            rows["pert_time_h"] = 24.0 if ctx == "C1" else 6.0
            rows["condition"] = [
                f"{ctx}_{p}_{d:g}"
                for p, d in zip(rows["perturbagen"], rows["pert_dose_uM"], strict=True)
            ]
            base = np.stack([effect.get(p, np.zeros(n_genes)) for p in rows["perturbagen"]])
            scale = np.log10(rows["pert_dose_uM"].clip(lower=0.1).to_numpy())[:, None] + 1.5
            lfc = base * scale + rng.normal(0, 0.5, base.shape)
            adjp = np.where(np.abs(lfc) > 1.0, 0.01, 0.5)
            files.append(
                dict(dataset=ds, context=ctx, rows=rows, logfc=lfc, adjp=adjp, genes=genes)
            )
            if ds == "dsA":
                rep = rows.loc[rows.index.repeat(3)].reset_index(drop=True)
                rep["contrast"] = [f"{c}_r{i % 3}" for i, c in enumerate(rep["condition"])]
                rl = np.repeat(lfc, 3, axis=0) + rng.normal(0, 0.3, (len(rep), n_genes))
                files.append(
                    dict(
                        dataset=ds,
                        context=ctx,
                        rows=rep,
                        logfc=rl,
                        adjp=np.where(np.abs(rl) > 1.0, 0.01, 0.5),
                        genes=genes,
                        mode="separate",
                    )
                )
    return build_store(tmp / "release", files, tmp / "store")

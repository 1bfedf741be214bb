"""Seeded trees in the layout of the public release, with the edge cases that matter.

:func:`write_release_tree` writes, for each dataset::

    <root>/<dataset>/<dataset>_processed.h5ad        sample-level obs (+ DMSO controls)
    <root>/<dataset>/group_rep/<cell_type>_de.h5ad   one row per condition
    <root>/<dataset>/sep_rep/<cell_type>_de.h5ad     one row per replicate sample

with the obs columns and layers of the release (``docs/agreement.md``,
"The published profile"). The tree exists to test the ``published`` agreement profile
and the release import against the written definitions, so it deliberately holds the
awkward cases of real release files:

- ``pubchem_cid`` stored as strings in the first dataset, floats in the second and ints
  in the third, with one condition whose CID is missing;
- ``var`` indexed by Ensembl ids in a shuffled order per dataset, with a ``symbol``
  column that has empty, missing and duplicated values, and genes that only some
  datasets measure;
- doses that tie for the nearest match (alpha 1 µM is 2× from gamma 0.5 and 2 µM),
  one exactly 10× apart (beta 1000 µM, gamma 100 µM), one mutual nearest pair outside
  the 10× window (the second compound has only 200 µM in beta), and a context (the
  last cell type) with fewer than 10 shared compounds;
- NaN blocks, ties and exact zeros in ``logFC``;
- one to four replicates per condition (a condition with one replicate is in the
  group file but has no replicate pair);
- the last dataset has only ``adj.P.Value.across_all_contrasts``;
- a control row (``is_control`` spelled ``"True"``) in one group file.

Values follow a shared compound effect (the same for a compound in every dataset) plus a
dataset-specific gene gain and noise, so matched conditions agree more than unmatched
ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ReleaseTreeOptions", "write_release_tree"]

_CELL_TYPES = ("CVCL_0023", "CVCL_0031", "CVCL_0035")
_CID_BASE = 2200


@dataclass(frozen=True)
class ReleaseTreeOptions:
    """Sizes of a simulated release tree.

    ``datasets`` are the dataset names (at least two; the first stores CIDs as strings,
    the second as floats, the rest as ints; the last has only the across-contrasts
    adjusted p-value). ``n_compounds`` compounds are shared by every dataset in the
    first two cell types; the third cell type has ``n_small_context`` compounds (fewer
    than the published 10) so it is dropped by the context filter.
    """

    datasets: tuple[str, ...] = ("alpha", "beta", "gamma")
    n_genes: int = 80
    n_compounds: int = 14
    n_small_context: int = 6
    times_h: tuple[float, ...] = (24.0,)
    noise: float = 0.35
    doses_uM: dict[str, tuple[float, ...]] = field(
        default_factory=lambda: {
            "alpha": (0.1, 1.0, 10.0),
            "beta": (0.3, 3.0, 1000.0),
            "gamma": (0.05, 0.5, 2.0, 100.0),
        }
    )
    dose_overrides: dict[tuple[str, int], tuple[float, ...]] = field(
        default_factory=lambda: {("beta", 1): (200.0,)}
    )


def _symbols(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Ensembl ids and symbols of a gene universe with awkward symbol values."""
    ensembl = np.array([f"ENSG{100000 + i:011d}" for i in range(n)], dtype=object)
    symbol = np.array([f"GENE{i}" for i in range(n)], dtype=object)
    symbol[3] = ""  # empty: dropped as a key
    symbol[5] = None  # missing: dropped as a key
    symbol[8] = symbol[7]  # duplicated: the first in var order is the key
    symbol[12] = " GENE12 "  # stripped
    return ensembl, symbol


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg over the finite values of a vector."""
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    v = p[ok]
    if v.size == 0:
        return out
    order = np.argsort(v)
    ranked = v[order] * v.size / np.arange(1, v.size + 1)
    adj = np.minimum.accumulate(ranked[::-1])[::-1]
    res = np.empty_like(v)
    res[order] = np.minimum(adj, 1.0)
    out[ok] = res
    return out


def _layers(
    lfc: np.ndarray, se: np.ndarray, *, across: bool, within: bool
) -> dict[str, np.ndarray]:
    from scipy.stats import norm

    t = lfc / se
    p = 2 * norm.sf(np.abs(t))
    layers: dict[str, np.ndarray] = {"logFC": lfc, "t": t, "P.Value": p}
    if within:
        layers["adj.P.Value.within_one_contrast"] = np.vstack([_bh(row) for row in p])
    if across:
        layers["adj.P.Value.across_all_contrasts"] = _bh(p.ravel()).reshape(p.shape)
    return {k: np.asarray(v, dtype=np.float32) for k, v in layers.items()}


def _cid_column(cids: list[int | None], style: int) -> Any:
    if style == 0:
        return pd.array([str(c) if c is not None else "" for c in cids], dtype=object)
    if style == 1:
        return np.array([float(c) if c is not None else np.nan for c in cids])
    return pd.array(cids, dtype="Int64")


def write_release_tree(
    root: str | os.PathLike[str],
    *,
    seed: int = 0,
    options: ReleaseTreeOptions | None = None,
) -> Path:
    """Write a seeded release-layout tree under ``root`` and return its path.

    Examples
    --------
    >>> write_release_tree("release")  # doctest: +SKIP
    """
    import anndata as ad

    opts = options or ReleaseTreeOptions()
    if len(opts.datasets) < 2:
        raise ValueError(f"a release tree needs at least two datasets, got {opts.datasets}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    ensembl, symbol = _symbols(rng, opts.n_genes)
    n_genes = opts.n_genes
    cids = [_CID_BASE + 7 * i for i in range(opts.n_compounds)]
    effect = {
        (cid, ct): rng.normal(0, 1, n_genes) * (rng.random(n_genes) < 0.35)
        for cid in cids
        for ct in _CELL_TYPES
    }
    generic = {ct: rng.normal(0, 0.4, n_genes) for ct in _CELL_TYPES}
    for d_i, dataset in enumerate(opts.datasets):
        d_rng = np.random.default_rng([seed, d_i])
        doses = opts.doses_uM.get(dataset, (1.0, 10.0))
        gain = np.exp(d_rng.normal(0, 0.3, n_genes))
        measured = np.sort(d_rng.permutation(n_genes)[: int(n_genes * (0.9 if d_i else 1.0))])
        var_order = d_rng.permutation(measured)
        var = pd.DataFrame(
            {"symbol": pd.array(symbol[var_order], dtype=object)},
            index=pd.Index(ensembl[var_order], name=None),
        )
        group_obs: dict[str, list[dict[str, Any]]] = {}
        group_vals: dict[str, list[np.ndarray]] = {}
        sep_obs: dict[str, list[dict[str, Any]]] = {}
        sep_vals: dict[str, list[np.ndarray]] = {}
        samples: list[dict[str, Any]] = []
        for ct_i, ct in enumerate(_CELL_TYPES):
            ct_cids: list[int | None] = list(cids if ct_i < 2 else cids[: opts.n_small_context])
            if ct_i == 0 and d_i == 1:
                ct_cids.append(None)  # a condition without a CID
            for time in opts.times_h:
                for plate in range(2):
                    for w in range(2):
                        samples.append(
                            {"id": f"{dataset}_{ct}_{time:g}_DMSO_p{plate}_{w}",
                             "cell_type": ct, "pubchem_cid": None, "pert_dose_uM": 0.0,
                             "pert_time_h": time, "is_control": "dmso" if d_i else True,
                             "plate": f"P{plate}", "well": f"A{w}"}
                        )  # fmt: skip
                for c_i, cid in enumerate(ct_cids):
                    c_doses = opts.dose_overrides.get((dataset, c_i), doses)
                    for x_i, dose in enumerate(c_doses):
                        hill = dose / (dose + 1.0)
                        base = effect.get((cid, ct), np.zeros(n_genes)) if cid else 0.0
                        truth = hill * (base + generic[ct])
                        n_rep = 1 + (c_i + x_i + d_i) % 4
                        reps = []
                        for r in range(n_rep):
                            sid = f"{dataset}_{ct}_{cid}_{dose:g}_{time:g}_r{r}"
                            noise = d_rng.normal(0, opts.noise, n_genes)
                            reps.append(gain * truth + noise)
                            samples.append(
                                {"id": sid, "cell_type": ct, "pubchem_cid": cid,
                                 "pert_dose_uM": dose, "pert_time_h": time,
                                 "is_control": False, "plate": f"P{r % 2}",
                                 "well": f"B{c_i}{x_i}{r}"}
                            )  # fmt: skip
                            sep_obs.setdefault(ct, []).append(
                                {"id": sid, "cell_type": ct, "pubchem_cid": cid,
                                 "pert_dose_uM": dose, "pert_time_h": time,
                                 "is_control": False, "replicate": r,
                                 "contrast": f"{sid} - DMSO_{time:g}"}
                            )  # fmt: skip
                            sep_vals.setdefault(ct, []).append(reps[-1])
                        mean = np.mean(reps, axis=0)
                        group_obs.setdefault(ct, []).append(
                            {"id": f"{dataset}_{ct}_{cid}_{dose:g}_{time:g}_r0",
                             "cell_type": ct, "pubchem_cid": cid, "pert_dose_uM": dose,
                             "pert_time_h": time, "is_control": False,
                             "n_replicates": n_rep,
                             "contrast": f"{ct}|{cid}|{dose:g}uM|{time:g}h - DMSO_{time:g}"}
                        )  # fmt: skip
                        group_vals.setdefault(ct, []).append(mean)
        across = True
        within = d_i != len(opts.datasets) - 1
        style = min(d_i, 2)
        out = root / dataset
        for mode, obs_rows, vals in (
            ("group_rep", group_obs, group_vals),
            ("sep_rep", sep_obs, sep_vals),
        ):
            for ct_i, ct in enumerate(_CELL_TYPES):
                rows = list(obs_rows[ct])
                mat = np.vstack(vals[ct])
                if mode == "group_rep" and ct_i == 0 and d_i == 0:
                    rows.append(dict(rows[0], is_control="True", pubchem_cid=None,
                                     contrast=f"DMSO_{ct} - DMSO"))  # fmt: skip
                    mat = np.vstack([mat, np.zeros(n_genes)])
                lfc = mat[:, var_order].astype(np.float64)
                if d_i == 0:
                    lfc = np.round(lfc, 1)  # ties and exact zeros
                lfc[: max(1, len(rows) // 5), : max(1, lfc.shape[1] // 8)] = np.nan  # NaN block
                mid = len(rows) // 2
                lfc[mid] = np.where(np.arange(lfc.shape[1]) % 3 == 0, np.nan, lfc[mid])
                se = np.full(lfc.shape, opts.noise / (1.5 if mode == "group_rep" else 1.0))
                layers = _layers(lfc, se, across=across, within=within)
                frame = pd.DataFrame(rows)
                index = pd.Index(frame.pop("contrast").astype(str).to_numpy())
                frame["pubchem_cid"] = _cid_column(list(frame["pubchem_cid"]), style)
                frame["is_control"] = frame["is_control"].astype(str)
                frame.index = index
                adata = ad.AnnData(obs=frame, var=var.copy(), layers=layers)
                adata.obs_names_make_unique()
                path = out / mode / f"{ct}_de.h5ad"
                path.parent.mkdir(parents=True, exist_ok=True)
                adata.write_h5ad(path)
        proc = pd.DataFrame(samples)
        proc["pubchem_cid"] = _cid_column(list(proc["pubchem_cid"]), style)
        proc["is_control"] = proc["is_control"].astype(str)
        proc.index = pd.Index(proc.pop("id").astype(str).to_numpy())
        proc["id"] = proc.index.to_numpy()
        x = np.zeros((len(proc), len(var)), dtype=np.float32)
        ad.AnnData(X=x, obs=proc, var=var.copy()).write_h5ad(out / f"{dataset}_processed.h5ad")
    return root

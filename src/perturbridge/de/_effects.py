"""What every DE engine shares after its fit: eBayes, the Effects layers and metadata,
their assembly into one Effects AnnData, and reading a fit's rows of a Samples matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
from scipy import stats

from ..io import provenance
from ..ledger import Ledger
from ..schema import (
    BIOLOGY_COLUMNS,
    BIOLOGY_SOURCE,
    EFFECT_LAYERS,
    EFFECT_OBS_COLUMNS,
    ReplicateMode,
    validate_effects,
)
from ._ebayes import EBayesOptions, EBayesResult, ebayes
from ._rstats import p_adjust_bh
from .design import STAGE, ContextDesign, plan_contexts
from .options import DEOptions
from .quality import check_size

__all__ = [
    "STDEV_SCALED",
    "ContextFit",
    "DEResult",
    "assemble",
    "contrast_meta",
    "dense_rows",
    "design_params",
    "drop_low_expression",
    "drop_no_df",
    "ebayes_record",
    "effect_layer_names",
    "effects_of",
    "moderate_context",
    "plan_fits",
    "run_params",
]

#: The optional Effects layer ``stdev.unscaled * sqrt(s2.post)`` (the original release
#: has it; ask for it with ``DEOptions(stdev_scaled=True)``).
STDEV_SCALED = "stdev.scaled"


@dataclass
class DEResult:
    """Effects (one row per contrast), the ledger of what was not estimated, and per-fit
    diagnostics keyed by :attr:`ContextDesign.fit_id` (``"dataset/context"``; voom:
    ``keep``, ``lib_size``, ``norm_factors`` and, when asked for, ``weights``)."""

    effects: ad.AnnData
    ledger: Ledger = field(default_factory=Ledger)
    diagnostics: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


@dataclass(frozen=True)
class ContextFit:
    """The estimates of one fit before eBayes: ``logfc`` and ``stdev_unscaled`` are
    genes × contrasts (in ``design.treated`` order), ``sigma`` and ``amean`` per gene;
    ``n_per_condition`` counts the samples of each design level."""

    logfc: np.ndarray
    stdev_unscaled: np.ndarray
    sigma: np.ndarray
    df_residual: int
    amean: np.ndarray
    n_per_condition: np.ndarray
    n_plate_columns_not_estimable: int


def dense_rows(x: Any, rows: np.ndarray | slice) -> np.ndarray:
    """Rows of a (dense, sparse or backed) matrix as a dense float array."""
    block = x[rows]
    return np.asarray(block.toarray() if hasattr(block, "toarray") else block, dtype=float)


def run_params(
    method: str, *, mode: ReplicateMode, options: DEOptions, **extra: Any
) -> dict[str, Any]:
    """A run's parameters as recorded in the Effects ``uns`` (before the design
    options): mode, eBayes options, the method's own ``extra`` options, the method and,
    only when on, the quality weights (so that the parameters, and the digests of
    results, of runs without them stay as they were)."""
    return {
        "mode": mode,
        "robust": options.robust,
        "trend": options.trend,
        "confint": options.confint,
        **extra,
        "method": method,
        **(
            {"quality_weights": True, "quality_design": options.quality_design}
            if options.quality_weights
            else {}
        ),
    }


def design_params(options: DEOptions) -> dict[str, Any]:
    """The design options as recorded in the Effects ``uns`` parameters."""
    return {
        "orphan_vehicles": options.orphan_vehicles,
        "fit_per_control_group": options.fit_per_control_group,
    }


def effect_layer_names(*, stdev_scaled: bool) -> tuple[str, ...]:
    """The layers an engine writes: :data:`EFFECT_LAYERS`, then ``stdev.scaled`` if asked."""
    return EFFECT_LAYERS + ((STDEV_SCALED,) if stdev_scaled else ())


def drop_no_df(design: ContextDesign, ledger: Ledger) -> None:
    ledger.drop(
        design.treated,
        stage=STAGE,
        reason="not_estimable",
        detail=f"{design.fit_id}: no residual degrees of freedom "
        f"({len(design.rows)} samples, {len(design.levels)} conditions, "
        f"{len(design.plate_levels)} plates)",
    )


def drop_low_expression(
    ledger: Ledger, genes: pd.Index, keep: np.ndarray, design: ContextDesign
) -> None:
    """Ledger the genes a fit's ``filterByExpr`` removed (``keep`` false)."""
    if (~keep).any():
        ledger.drop(
            genes[~keep],
            stage="de_genes",
            reason="low_expression",
            detail=f"{design.fit_id}: filterByExpr",
        )


def contrast_meta(
    obs: pd.DataFrame,
    design: ContextDesign,
    *,
    n_per_condition: np.ndarray,
    df_residual: int,
    n_plate_columns_not_estimable: int,
    mode: ReplicateMode,
) -> pd.DataFrame:
    """The Effects ``obs`` of one fit: one row per contrast, in ``design.treated`` order."""
    dataset, context = design.dataset, design.context
    t_idx = design.levels.get_indexer(design.treated)
    c_idx = design.levels.get_indexer(pd.Index(design.control))
    rep = obs.iloc[design.first_row]
    n_per = n_per_condition
    meta = pd.DataFrame(
        {
            "dataset": dataset,
            "cell_context": context,
            "cell_name": rep["cell_name"].astype(str).to_numpy(),
            "perturbagen": rep["perturbagen"].astype(str).to_numpy(),
            "compound_id_source": rep["compound_id_source"].astype(object).to_numpy(),
            "compound_inchikey": rep["compound_inchikey"].astype(object).to_numpy(),
            "compound_parent_inchikey": rep["compound_parent_inchikey"].astype(object).to_numpy(),
            "pubchem_cid": rep["pubchem_cid"].to_numpy(),
            "pert_dose_uM": rep["pert_dose_uM"].to_numpy(dtype=float),
            "pert_time_h": rep["pert_time_h"].to_numpy(dtype=float),
            "replicate": (
                rep["replicate"].astype(object).to_numpy() if mode == "separate" else None
            ),
            "control_label": design.control,
            "n_treated": n_per[t_idx].astype(int),
            "n_control": n_per[c_idx].astype(int),
            "df_residual": df_residual,
            "n_plates": len(design.plate_levels),
            "n_plate_columns_not_estimable": n_plate_columns_not_estimable,
        },
        index=pd.Index(design.treated.to_numpy(dtype=str), name="contrast"),
    )
    if mode == "separate":
        meta["sample_id"] = rep.index.to_numpy(dtype=str)
    for name in (*BIOLOGY_COLUMNS, BIOLOGY_SOURCE):  # one context: its samples' biology
        if name in rep.columns:
            meta[name] = rep[name].astype(str).to_numpy()
    return meta


def _bh_all(p: np.ndarray) -> np.ndarray:
    """BH over every entry of ``p`` at once (``adj.P.Value.across_all_contrasts``)."""
    return p_adjust_bh(p.ravel()).reshape(p.shape)


def ebayes_record(eb: EBayesResult, *, options: DEOptions, fit_id: str) -> dict[str, Any]:
    """The eBayes hyper-parameters of one fit as plain scalars (``uns["ebayes"]``).

    ``df_prior``: the prior degrees of freedom (``inf`` allowed; with ``robust`` the
    value of the F fit before outlier genes are shrunk, the per-gene values go to
    ``var["df_prior"]``); ``s2_prior``: the prior variance, or with ``trend`` its mean
    over genes as ``s2_prior_mean`` (the per-gene trend goes to ``var["s2_prior"]``).
    """
    ebo = EBayesOptions()
    rec: dict[str, Any] = {
        "fit_id": fit_id,
        "method": "eBayes",
        "trend": bool(options.trend),
        "robust": bool(options.robust),
        "proportion": float(ebo.proportion),
        "stdev_coef_lim": [float(v) for v in ebo.stdev_coef_lim],
        "df_prior": float(eb.df2) if options.robust else float(eb.df_prior[0]),
        "n_genes": int(eb.s2_prior.size),
    }
    if options.robust:
        rec["winsor_tail_p"] = [float(v) for v in ebo.winsor_tail_p]
        rec["df_prior_min"] = float(np.min(eb.df_prior))
    if options.trend:
        rec["s2_prior_mean"] = float(np.mean(eb.s2_prior))
    else:
        rec["s2_prior"] = float(eb.s2_prior[0])
    return rec


def moderate_context(
    fit: ContextFit,
    obs: pd.DataFrame,
    design: ContextDesign,
    *,
    mode: ReplicateMode,
    options: DEOptions,
    ledger: Ledger,
    genes: tuple[np.ndarray, int] | None = None,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """eBayes once for the fit, then the Effects layers (contrasts × genes) and metadata.

    ``options`` gives ``robust``, ``trend`` (set), ``confint`` and ``stdev_scaled``
    (the layer ``stdev.scaled``, ``stdev_unscaled * sqrt(s2.post)``). When the fit
    used a subset of genes, ``genes`` is ``(positions, n_genes_total)``: their
    positions among ``n_genes_total`` genes; the layers are NaN elsewhere.
    """
    logfc, su_mat, amean = fit.logfc, fit.stdev_unscaled, fit.amean
    gene_cols, n_genes_total = genes if genes is not None else (None, None)
    confint = options.confint
    ngenes = logfc.shape[0]
    eb = ebayes(
        logfc,
        su_mat,
        fit.sigma,
        df_residual=np.full(ngenes, float(fit.df_residual)),
        amean=amean,
        trend=bool(options.trend),
        robust=options.robust,
    )
    n_contrasts = logfc.shape[1]

    def place(v: np.ndarray, *, genes_first: bool = True) -> np.ndarray:
        """A layer as contrasts × all genes (NaN for genes not in this fit)."""
        v = v.T if genes_first else v
        if gene_cols is None or n_genes_total is None:
            return np.ascontiguousarray(v)
        out = np.full((n_contrasts, n_genes_total), np.nan)
        out[:, gene_cols] = v
        return out

    # BH over all p-values of the fit is one large sort (it releases the GIL): run it
    # beside the other layers.
    with ThreadPoolExecutor(max_workers=1) as pool:
        across = pool.submit(_bh_all, eb.p_value)
        scaled = su_mat * np.sqrt(eb.s2_post)[:, None]
        margin = np.asarray(stats.t.ppf((1 + confint) / 2, eb.df_total))[:, None] * scaled
        within = place(p_adjust_bh(eb.p_value.T), genes_first=False)
        across_all = place(across.result())
    layers = {
        "logFC": place(logfc),
        "t": place(eb.t),
        "P.Value": place(eb.p_value),
        "adj.P.Value.within_one_contrast": within,
        "adj.P.Value.across_all_contrasts": across_all,
        "CI.L": place(logfc - margin),
        "CI.R": place(logfc + margin),
        "AveExpr": place(np.broadcast_to(amean[:, None], logfc.shape)),
        "B": place(eb.lods),
        "stdev.unscaled": place(su_mat),
    }
    if options.stdev_scaled:
        layers[STDEV_SCALED] = place(scaled)
    del margin, scaled
    meta = contrast_meta(
        obs,
        design,
        n_per_condition=fit.n_per_condition,
        df_residual=fit.df_residual,
        n_plate_columns_not_estimable=fit.n_plate_columns_not_estimable,
        mode=mode,
    )
    meta.attrs["ebayes"] = ebayes_record(eb, options=options, fit_id=design.fit_id)
    meta.attrs["ebayes_genes"] = {
        name: place(np.asarray(v, dtype=float)[None, :], genes_first=False)[0]
        for name, v in (
            ("df_prior", eb.df_prior),
            ("s2_prior", eb.s2_prior),
            ("s2_post", eb.s2_post),
            ("df_total", eb.df_total),
        )
    }
    del eb
    ledger.keep(design.treated, stage=STAGE, detail=design.fit_id)
    return meta, layers


def assemble(
    blocks: list[tuple[pd.DataFrame, dict[str, np.ndarray]]],
    samples: ad.AnnData,
    *,
    mode: ReplicateMode,
    params: dict[str, Any],
    var: pd.DataFrame | None = None,
    layer_names: Sequence[str] = EFFECT_LAYERS,
) -> ad.AnnData:
    """One Effects AnnData from the blocks (metadata, layers) of every fit, with the
    run's parameters and provenance in ``uns["perturbridge"]``."""
    var = samples.var.copy() if var is None else var.copy()
    # what fits report beside their layers (eBayes priors, QC tables) rides in the
    # metadata's attrs; taken out before the metadata are concatenated
    extras: list[dict[str, Any]] = [{str(k): v for k, v in b[0].attrs.items()} for b in blocks]
    sizes = [len(b[0]) for b in blocks]
    for b in blocks:
        b[0].attrs.clear()
    if not blocks:
        obs = pd.DataFrame(
            {
                c.name: pd.Series(dtype=float if c.kind == "float" else object)
                for c in EFFECT_OBS_COLUMNS
            },
            index=pd.Index([], name="contrast", dtype=str),
        )
        layers = {k: np.zeros((0, len(var))) for k in layer_names}
    else:
        obs = pd.concat([b[0] for b in blocks])
        if obs["dataset"].nunique() > 1:  # contrast ids are unique within a dataset
            obs.index = pd.Index(obs["dataset"] + ":" + obs.index, name="contrast")
        layers = (
            blocks[0][1]
            if len(blocks) == 1
            else {k: np.concatenate([b[1][k] for b in blocks]) for k in layer_names}
        )
    for col in (
        "dataset",
        "cell_context",
        "cell_name",
        "perturbagen",
        "compound_id_source",
        "compound_inchikey",
        "compound_parent_inchikey",
        "replicate",
        "control_label",
    ):
        if col in obs:
            obs[col] = pd.Categorical(obs[col])
    for col in ("n_treated", "n_control", "pubchem_cid"):
        if col in obs:
            obs[col] = obs[col].astype("Int64")
    eff = ad.AnnData(
        X=layers["logFC"],
        obs=obs,
        var=var,
        layers={k: np.asarray(v) for k, v in layers.items()},
    )
    _attach_ebayes(eff, extras, sizes)
    qc = [e["quality_weights"] for e in extras if "quality_weights" in e]
    if qc:
        table = pd.concat(qc, ignore_index=True)
        table.index = table.index.astype(str)
        eff.uns["quality_weights"] = table
    upstream = dict(samples.uns.get("perturbridge", {}))
    eff.uns["perturbridge"] = {
        "kind": "effects",
        "value_kind": "logFC",
        "replicate_mode": mode,
        "params": params,
        "samples_provenance": upstream.get("provenance", {}),
        "provenance": provenance(step="de", params=params),
    }
    return eff


#: Keys of a fit's eBayes record that are settings of the run (the same for every fit).
_SHARED = ("method", "trend", "robust", "proportion", "stdev_coef_lim", "winsor_tail_p")


def _attach_ebayes(eff: ad.AnnData, extras: list[dict[str, Any]], sizes: list[int]) -> None:
    """The eBayes hyper-parameters of the fits in ``eff``: ``uns["ebayes"]`` (the run's
    settings and, for one fit, its ``df_prior`` and ``s2_prior``/``s2_prior_mean``),
    ``uns["ebayes_fits"]`` (one row per fit, with the contrast rows
    ``contrast_start:contrast_stop`` it estimated) and the per-gene priors: with one
    fit ``var["df_prior"]`` (robust) and ``var["s2_prior"]`` (trend), with several fits
    ``varm["df_prior"]`` / ``varm["s2_prior"]`` (genes × fits, in the table's order).
    The posterior variance ``s2_post`` and total degrees of freedom ``df_total`` of
    every gene are saved the same way, always (``var`` for one fit, ``varm`` genes ×
    fits for several): with ``stdev.unscaled``, ``logFC`` and the run's ``confint``
    they give ``CI.L``/``CI.R`` back exactly (a store keeps only what it cannot
    derive; see :mod:`perturbridge.compendium._footprint`). Blocks without priors
    leave all of them out; engines that report no posterior (R's) leave it out."""
    records: list[dict[str, Any]] = [e["ebayes"] for e in extras if "ebayes" in e]
    if not extras or len(records) < len(extras):
        return
    genes = [e["ebayes_genes"] for e in extras]
    stops = np.cumsum(sizes)
    table = pd.DataFrame(
        [{k: v for k, v in r.items() if k not in _SHARED} for r in records],
        index=pd.Index([str(i) for i in range(len(records))], name="fit"),
    )
    table["contrast_start"] = stops - np.array(sizes)
    table["contrast_stop"] = stops
    first = records[0]
    shared = {k: first[k] for k in _SHARED if k in first}
    wanted = [k for k, on in (("df_prior", first["robust"]), ("s2_prior", first["trend"])) if on]
    # the posterior of every gene (engines that do not report it, e.g. R's, leave it out)
    wanted += [k for k in ("s2_post", "df_total") if all(k in g for g in genes)]
    if len(records) == 1:
        eff.uns["ebayes"] = {**shared, **{k: v for k, v in first.items() if k not in _SHARED}}
        for k in wanted:
            eff.var[k] = genes[0][k]
    else:
        eff.uns["ebayes"] = {**shared, "n_fits": len(records)}
        for k in wanted:
            eff.varm[k] = np.column_stack([g[k] for g in genes])
    eff.uns["ebayes_fits"] = table


def plan_fits(
    samples: ad.AnnData,
    *,
    mode: ReplicateMode,
    control_keys: Sequence[str] | None,
    options: DEOptions,
) -> tuple[list[ContextDesign], Ledger]:
    """The fits of a run: :func:`~perturbridge.de.plan_contexts` with the design
    options of ``options``; with quality weights, every fit's size is checked before
    any work (:func:`~perturbridge.de.quality.check_size`)."""
    designs, ledger = plan_contexts(
        samples,
        mode=mode,
        control_keys=control_keys,
        orphan_vehicles=options.orphan_vehicles,
        fit_per_control_group=options.fit_per_control_group,
    )
    if options.quality_weights:
        for design in designs:
            check_size(design)
    return designs, ledger


def effects_of(
    blocks: list[tuple[pd.DataFrame, dict[str, np.ndarray]]],
    samples: ad.AnnData,
    *,
    mode: ReplicateMode,
    params: dict[str, Any],
    options: DEOptions,
    var: pd.DataFrame | None = None,
) -> ad.AnnData:
    """The validated Effects of a run: :func:`assemble` with the layers ``options`` ask
    for, ``params`` followed by the design options."""
    effects = assemble(
        blocks,
        samples,
        mode=mode,
        params={**params, **design_params(options)},
        var=var,
        layer_names=effect_layer_names(stdev_scaled=options.stdev_scaled),
    )
    validate_effects(effects)
    return effects

"""limma-trend differential expression of Samples against matched vehicle controls.

One linear model per dataset × cell context: all plates, times and conditions of the
context in one fit (residual variance pooled), design ``~0 + condition + plate``
(plate dropped when there is one plate), one contrast per treated condition against the
vehicle label of the same time, then ``eBayes(trend=TRUE, robust=TRUE)`` once per fit.
The statistics are those of R limma (``lmFit`` → ``contrasts.fit`` → ``eBayes`` →
``topTable``), checked against R in the tests.

Two choices of the original pipeline are options (see :func:`plan_contexts`): vehicle
wells at a time with no treated well are dropped (``orphan_vehicles="drop"``, the
default, as the original did) or kept in the fit for the residual variance
(``"keep"``); and ``fit_per_control_group=True`` fits each value of the
control-matching columns apart (the original fitted GDPx2 per cell type × DMSO %),
where by default one fit per dataset × context holds them all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import anndata as ad
import numpy as np
import pandas as pd
from scipy import stats

from ..io import provenance
from ..ledger import Ledger
from ..progress import track
from ..schema import EFFECT_LAYERS, EFFECT_OBS_COLUMNS, validate_effects, validate_samples
from ._ebayes import ebayes
from ._linear import fit_condition_plate
from ._rstats import p_adjust_bh

__all__ = [
    "STDEV_SCALED",
    "ContextDesign",
    "DEResult",
    "OrphanVehicles",
    "ReplicateMode",
    "condition_table",
    "control_keys_of",
    "limma_trend",
    "plan_contexts",
]

logger = logging.getLogger(__name__)

ReplicateMode = Literal["group", "separate"]
OrphanVehicles = Literal["drop", "keep"]
ORPHAN_VEHICLES: tuple[str, ...] = ("drop", "keep")
STAGE = "de"
#: Ledger stage of the samples a fit leaves out (ids are sample ids, not conditions).
SAMPLE_STAGE = "de_samples"
#: The optional Effects layer ``stdev.unscaled * sqrt(s2.post)`` (the original release
#: has it; ask for it with ``stdev_scaled=True``).
STDEV_SCALED = "stdev.scaled"


@dataclass
class DEResult:
    """Effects (one row per contrast), the ledger of what was not estimated, and per-fit
    diagnostics keyed by :attr:`ContextDesign.fit_id` (``"dataset/context"``; voom:
    ``keep``, ``lib_size``, ``norm_factors`` and, when asked for, ``weights``)."""

    effects: ad.AnnData
    ledger: Ledger = field(default_factory=Ledger)
    diagnostics: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def _fmt_num(x: float) -> str:
    return f"{x:.6g}"


def condition_table(
    obs: pd.DataFrame, *, mode: ReplicateMode, control_keys: Sequence[str] = ()
) -> pd.DataFrame:
    """Label every sample with its condition and the vehicle label of its time.

    Returns a frame indexed like ``obs`` with columns ``condition`` (the column of the
    design the sample belongs to), ``control_label`` (vehicle label of the same
    context and time) and ``is_control``. Vehicles are labelled per time point; in
    ``group`` mode a treated condition is compound × dose × time (replicate wells
    pooled), in ``separate`` mode each treated sample is its own condition.

    ``control_keys`` are further ``obs`` columns a treated sample must share with its
    vehicle, e.g. ``percent_volume_dmso`` when vehicle wells carry different solvent
    volumes: they become part of both labels.
    """
    key = obs["compound_inchikey"].astype(object)
    key = key.where(key.notna(), obs["compound_id_source"].astype(object))
    key = key.where(key.notna(), obs["perturbagen"].astype(object)).astype(str)
    time = obs["pert_time_h"].map(_fmt_num)
    dose = obs["pert_dose_uM"].map(_fmt_num)
    ctx = obs["cell_context"].astype(str)
    is_ctl = obs["is_control"].to_numpy(dtype=bool)
    control_label = "vehicle|" + ctx + "|" + time + "h"
    treated = ctx + "|" + key + "|" + dose + "uM|" + time + "h"
    for col in control_keys:
        if col not in obs.columns:
            raise KeyError(
                f"control-matching column {col!r} is not in the Samples obs; "
                f"columns: {list(obs.columns)}"
            )
        values = obs[col].astype(object)
        if values.isna().any():
            bad = obs.index[values.isna().to_numpy()][:5].tolist()
            raise ValueError(
                f"control-matching column {col!r} is missing for samples {bad}: every "
                "sample needs a value to be matched with its vehicle"
            )
        part = "|" + col + "=" + values.map(str)
        control_label = control_label + part
        treated = treated + part
    if mode == "separate":
        treated = treated + "|" + obs.index.astype(str)
    elif mode != "group":
        raise ValueError(f"mode must be 'group' or 'separate', got {mode!r}")
    condition = np.where(is_ctl, control_label, treated)
    return pd.DataFrame(
        {"condition": condition, "control_label": control_label, "is_control": is_ctl},
        index=obs.index,
    )


@dataclass(frozen=True)
class ContextDesign:
    """The design of one fit (dataset × cell context), before any numbers are touched.

    ``rows`` index the Samples in the fit; ``condition`` is their design label;
    ``levels`` are the condition levels in design order (vehicle labels first, then
    treated conditions, each sorted); ``plate_levels`` the plates (the first is the
    reference); ``treated``/``control`` the contrasts; ``first_row`` the position (in
    ``rows``) of a representative sample of each treated condition. ``group`` holds
    ``(column, value)`` of the control-matching columns when the context is fitted per
    control group (``fit_per_control_group=True``), else it is empty.
    """

    dataset: str
    context: str
    rows: np.ndarray
    condition: np.ndarray
    levels: pd.Index
    plates: np.ndarray
    plate_levels: np.ndarray
    treated: pd.Index
    control: np.ndarray
    first_row: np.ndarray
    group: tuple[tuple[str, str], ...] = ()

    @property
    def fit_id(self) -> str:
        """``dataset/context``, with ``[column=value,...]`` for a control-group fit."""
        return _fit_id(self.dataset, self.context, self.group)

    @property
    def condition_codes(self) -> np.ndarray:
        return self.levels.get_indexer(self.condition)

    @property
    def plate_codes(self) -> np.ndarray:
        return np.searchsorted(self.plate_levels, self.plates)


def _fit_id(dataset: str, context: str, group: tuple[tuple[str, str], ...]) -> str:
    base = f"{dataset}/{context}"
    if not group:
        return base
    return base + "[" + ",".join(f"{k}={v}" for k, v in group) + "]"


def control_keys_of(samples: ad.AnnData, control_keys: Sequence[str] | None) -> tuple[str, ...]:
    """The control-matching columns: as given, else those the source adapter declared in
    ``uns["perturbridge"]["control_match_keys"]``, else none."""
    if control_keys is not None:
        return tuple(control_keys)
    declared = samples.uns.get("perturbridge", {}).get("control_match_keys", ())
    return tuple(str(c) for c in np.atleast_1d(np.asarray(declared, dtype=object)) if c)


def plan_contexts(
    samples: ad.AnnData,
    *,
    mode: ReplicateMode,
    control_keys: Sequence[str] | None = None,
    orphan_vehicles: OrphanVehicles = "drop",
    fit_per_control_group: bool = False,
) -> tuple[list[ContextDesign], Ledger]:
    """Split Samples into one design per dataset × cell context (× control group).

    Samples that are neither vehicle nor compound, and treated conditions without a
    vehicle at their time in their context (and, with ``control_keys``, the same values
    of those columns; see :func:`condition_table` and :func:`control_keys_of`), go to
    the returned ledger.

    ``orphan_vehicles``: vehicle samples whose label (context × time × control-key
    values) no treated condition of the fit is contrasted with are left out of the fit
    (``"drop"``, the original pipeline's choice; ledger stage ``de_samples``, reason
    ``vehicle_without_treated``) or kept in it, where they inform the residual
    variance and the plate effects (``"keep"``). A fit with no treated condition at
    all is not run; its vehicles are ledgered the same way with either setting.

    ``fit_per_control_group``: one fit per distinct value of the control-matching
    columns within each context (each with its own eBayes), instead of one fit per
    context in which those columns only decide which vehicle a condition is contrasted
    with. Without control-matching columns both are the same.
    """
    if orphan_vehicles not in ORPHAN_VEHICLES:
        raise ValueError(
            f"orphan_vehicles must be one of {list(ORPHAN_VEHICLES)}, got {orphan_vehicles!r}"
        )
    obs = samples.obs
    ledger = Ledger()
    pt = obs["pert_type"].astype(str)
    modelled = pt.isin(["compound", "vehicle"]).to_numpy()
    if (~modelled).any():
        ledger.drop(
            obs.index[~modelled],
            stage=STAGE,
            reason="unsupported_pert_type",
            detail=pt[~modelled].to_numpy(),
        )
    keys = control_keys_of(samples, control_keys)
    labels = condition_table(obs, mode=mode, control_keys=keys)
    cond_all = labels["condition"].to_numpy()
    ctl_all = labels["control_label"].to_numpy()
    ctl_flag = labels["is_control"].to_numpy()
    plates_all = obs["plate"].astype(str).to_numpy()
    model_rows = np.flatnonzero(modelled)
    split_keys = list(keys) if fit_per_control_group else []
    by = ["dataset", "cell_context", *split_keys]
    groups = obs.iloc[model_rows].groupby(by, observed=True, sort=True).indices
    designs = []
    for gkey, local in groups.items():
        dataset, context, *values = (str(v) for v in gkey)
        group = tuple(zip(split_keys, values, strict=True))
        fit_id = _fit_id(dataset, context, group)
        rows = model_rows[np.sort(local)]
        cond, ctl_label, is_ctl = cond_all[rows], ctl_all[rows], ctl_flag[rows]
        unmatched = ~is_ctl & ~np.isin(ctl_label, cond[is_ctl])
        if unmatched.any():
            lost = (
                pd.DataFrame(
                    {
                        "condition": cond[unmatched],
                        "control": ctl_label[unmatched],
                        "sample": obs.index[rows[unmatched]].astype(str),
                    }
                )
                .groupby("condition", sort=True)
                .agg(control=("control", "first"), samples=("sample", ",".join))
            )
            ledger.drop(
                lost.index,
                stage=STAGE,
                reason="no_matched_control",
                detail=[
                    f"{dataset}: no {c} wells; samples {smp}"
                    for c, smp in zip(lost["control"], lost["samples"], strict=True)
                ],
            )
            logger.warning("%s: %d conditions without a matched vehicle", fit_id, len(lost))
            rows, cond, ctl_label, is_ctl = (
                rows[~unmatched],
                cond[~unmatched],
                ctl_label[~unmatched],
                is_ctl[~unmatched],
            )
        orphan = is_ctl & ~np.isin(cond, ctl_label[~is_ctl])
        no_treated = not (~is_ctl).any()
        if orphan.any() and (orphan_vehicles == "drop" or no_treated):
            why = (
                "no treated sample in the fit"
                if no_treated
                else "no treated condition is contrasted with it (orphan_vehicles='drop')"
            )
            ledger.drop(
                obs.index[rows[orphan]],
                stage=SAMPLE_STAGE,
                reason="vehicle_without_treated",
                detail=[f"{fit_id}: {c}: {why}" for c in cond[orphan]],
            )
            logger.info("%s: %d vehicle samples left out: %s", fit_id, int(orphan.sum()), why)
            rows, cond, ctl_label, is_ctl = (
                rows[~orphan],
                cond[~orphan],
                ctl_label[~orphan],
                is_ctl[~orphan],
            )
        if no_treated:
            continue
        treated = pd.Index(np.unique(cond[~is_ctl]))
        levels = pd.Index(np.unique(cond[is_ctl])).append(treated)
        first_row = (
            pd.Series(np.arange(len(cond))).groupby(cond).first().reindex(treated).to_numpy()
        )
        plates = plates_all[rows]
        designs.append(
            ContextDesign(
                dataset=str(dataset),
                context=str(context),
                rows=rows,
                condition=cond,
                levels=levels,
                plates=plates,
                plate_levels=np.unique(plates),
                treated=treated,
                control=ctl_label[first_row],
                first_row=first_row,
                group=group,
            )
        )
    return designs, ledger


def limma_trend(
    samples: ad.AnnData,
    *,
    mode: ReplicateMode = "group",
    layer: str | None = None,
    robust: bool = True,
    trend: bool = True,
    confint: float = 0.95,
    chunk_size: int = 4096,
    progress: bool = False,
    control_keys: Sequence[str] | None = None,
    orphan_vehicles: OrphanVehicles = "drop",
    fit_per_control_group: bool = False,
    stdev_scaled: bool = False,
) -> DEResult:
    """limma-trend effects of every treated condition against its matched vehicle.

    Parameters
    ----------
    samples
        Samples AnnData with log expression (``uns["perturbridge"]["value_kind"] ==
        "log_expression"``).
    mode
        ``"group"``: one contrast per condition (compound × dose × time × context),
        replicate wells pooled. ``"separate"``: one contrast per treated well.
    layer
        Use this layer instead of ``X``.
    robust, trend
        Passed to eBayes (limma's ``robust`` and ``trend``).
    confint
        Level of the confidence limits ``CI.L`` / ``CI.R``.
    chunk_size
        Genes per block in the residual computation.
    progress
        Show a progress bar over contexts.
    control_keys
        Further ``obs`` columns a treated condition must share with its vehicle (e.g.
        ``percent_volume_dmso``); default: those the source adapter declared in
        ``uns["perturbridge"]["control_match_keys"]``, if any.
    orphan_vehicles
        ``"drop"`` (the original pipeline's choice): vehicle samples of a label (time,
        control-key values) that no treated condition is contrasted with are left out
        of the fit and ledgered as ``vehicle_without_treated``; ``"keep"``: they stay
        in the fit and inform the residual variance. See :func:`plan_contexts`.
    fit_per_control_group
        Fit each value of the control-matching columns of a context apart (its own
        eBayes), as the original pipeline did per DMSO %; default: one fit per context.
    stdev_scaled
        Add the layer ``stdev.scaled`` (``stdev.unscaled * sqrt(s2.post)``, the
        standard error of ``logFC``; the original release has it).

    Returns
    -------
    DEResult
        ``effects``: one row per contrast, layers :data:`~perturbridge.schema.EFFECT_LAYERS`
        (and ``stdev.scaled`` when asked for); ``ledger``: the conditions that were not
        estimated and the samples left out, with the reason.

    Examples
    --------
    >>> from perturbridge.simulate import simulate_l1000  # doctest: +SKIP
    >>> res = limma_trend(samples, mode="group")  # doctest: +SKIP
    >>> res.effects.layers["logFC"].shape  # doctest: +SKIP
    """
    validate_samples(samples)
    kind = samples.uns["perturbridge"]["value_kind"]
    if kind != "log_expression":
        raise ValueError(
            f"limma-trend needs log expression, these Samples hold {kind!r}; "
            "use the voom engine for counts"
        )
    x = samples.layers[layer] if layer is not None else samples.X
    x = np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=float)
    if not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[:5]
        raise ValueError(
            "log expression has missing or infinite values (first at sample, gene: "
            f"{[(samples.obs_names[i], samples.var_names[j]) for i, j in bad]})"
        )
    obs = samples.obs
    designs, ledger = plan_contexts(
        samples,
        mode=mode,
        control_keys=control_keys,
        orphan_vehicles=orphan_vehicles,
        fit_per_control_group=fit_per_control_group,
    )
    blocks: list[tuple[pd.DataFrame, dict[str, np.ndarray]]] = []
    for design in track(designs, description="limma-trend", enabled=progress):
        out = _fit_context(
            x[design.rows],
            obs.iloc[design.rows],
            design,
            mode=mode,
            robust=robust,
            trend=trend,
            confint=confint,
            chunk_size=chunk_size,
            ledger=ledger,
            stdev_scaled=stdev_scaled,
        )
        if out is not None:
            blocks.append(out)
    effects = _assemble(
        blocks,
        samples,
        mode=mode,
        params={
            "mode": mode,
            "robust": robust,
            "trend": trend,
            "confint": confint,
            "method": "limma-trend",
            **design_params(orphan_vehicles, fit_per_control_group),
        },
        layer_names=effect_layer_names(stdev_scaled=stdev_scaled),
    )
    validate_effects(effects)
    return DEResult(effects, ledger)


def _fit_context(
    x: np.ndarray,
    obs: pd.DataFrame,
    design: ContextDesign,
    *,
    mode: ReplicateMode,
    robust: bool,
    trend: bool,
    confint: float,
    chunk_size: int,
    ledger: Ledger,
    stdev_scaled: bool = False,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]] | None:
    """Fit one context; returns contrast metadata and layers (contrasts × genes)."""
    fit = fit_condition_plate(
        x,
        design.condition_codes,
        design.plate_codes,
        n_conditions=len(design.levels),
        n_plates=len(design.plate_levels),
        chunk_size=chunk_size,
    )
    if fit.df_residual <= 0:
        _drop_no_df(design, ledger)
        return None
    t_idx = design.levels.get_indexer(design.treated)
    c_idx = design.levels.get_indexer(design.control)
    logfc, su = fit.contrast(t_idx, c_idx)
    su_mat = np.broadcast_to(su, logfc.shape)
    return moderate_context(
        logfc,
        su_mat,
        fit.sigma,
        fit.df_residual,
        fit.amean,
        obs,
        design,
        n_per_condition=fit.n_per_condition,
        n_plate_columns_not_estimable=int((~fit.plate_estimable).sum()),
        mode=mode,
        robust=robust,
        trend=trend,
        confint=confint,
        ledger=ledger,
        stdev_scaled=stdev_scaled,
    )


def design_params(orphan_vehicles: str, fit_per_control_group: bool) -> dict[str, Any]:
    """The design options as recorded in the Effects ``uns`` parameters."""
    return {"orphan_vehicles": orphan_vehicles, "fit_per_control_group": fit_per_control_group}


def effect_layer_names(*, stdev_scaled: bool) -> tuple[str, ...]:
    """The layers an engine writes: :data:`EFFECT_LAYERS`, then ``stdev.scaled`` if asked."""
    return EFFECT_LAYERS + ((STDEV_SCALED,) if stdev_scaled else ())


def _drop_no_df(design: ContextDesign, ledger: Ledger) -> None:
    ledger.drop(
        design.treated,
        stage=STAGE,
        reason="not_estimable",
        detail=f"{design.fit_id}: no residual degrees of freedom "
        f"({len(design.rows)} samples, {len(design.levels)} conditions, "
        f"{len(design.plate_levels)} plates)",
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
    c_idx = design.levels.get_indexer(design.control)
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
    return meta


def _bh_all(p: np.ndarray) -> np.ndarray:
    """BH over every entry of ``p`` at once (``adj.P.Value.across_all_contrasts``)."""
    return p_adjust_bh(p.ravel()).reshape(p.shape)


def moderate_context(
    logfc: np.ndarray,
    su_mat: np.ndarray,
    sigma: np.ndarray,
    df_residual: int,
    amean: np.ndarray,
    obs: pd.DataFrame,
    design: ContextDesign,
    *,
    n_per_condition: np.ndarray,
    n_plate_columns_not_estimable: int,
    mode: ReplicateMode,
    robust: bool,
    trend: bool,
    confint: float,
    ledger: Ledger,
    gene_cols: np.ndarray | None = None,
    n_genes_total: int | None = None,
    stdev_scaled: bool = False,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """eBayes once for the fit, then the Effects layers (contrasts × genes) and metadata.

    ``logfc`` and ``su_mat`` are genes × contrasts (in ``design.treated`` order). When
    the fit used a subset of genes, ``gene_cols`` are their positions among
    ``n_genes_total`` genes and the layers are NaN elsewhere. ``stdev_scaled`` adds
    the layer ``stdev.scaled`` (``su_mat * sqrt(s2.post)``).
    """
    ngenes = logfc.shape[0]
    eb = ebayes(
        logfc,
        su_mat,
        sigma,
        np.full(ngenes, float(df_residual)),
        amean=amean,
        trend=trend,
        robust=robust,
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
        margin = stats.t.ppf((1 + confint) / 2, eb.df_total)[:, None] * scaled
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
    if stdev_scaled:
        layers[STDEV_SCALED] = place(scaled)
    del margin, scaled, eb
    meta = contrast_meta(
        obs,
        design,
        n_per_condition=n_per_condition,
        df_residual=df_residual,
        n_plate_columns_not_estimable=n_plate_columns_not_estimable,
        mode=mode,
    )
    ledger.keep(design.treated, stage=STAGE, detail=design.fit_id)
    return meta, layers


def _assemble(
    blocks: list[tuple[pd.DataFrame, dict[str, np.ndarray]]],
    samples: ad.AnnData,
    *,
    mode: ReplicateMode,
    params: dict[str, Any],
    var: pd.DataFrame | None = None,
    layer_names: Sequence[str] = EFFECT_LAYERS,
) -> ad.AnnData:
    var = samples.var.copy() if var is None else var.copy()
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
            obs[col] = pd.array(obs[col], dtype="Int64")
    eff = ad.AnnData(
        X=layers["logFC"],
        obs=obs,
        var=var,
        layers={k: np.asarray(v) for k, v in layers.items()},
    )
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

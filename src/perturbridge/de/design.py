"""The design of DE fits: conditions, matched vehicle labels, one design per fit.

Samples are split into one fit per dataset × cell context (× control group), with
design ``~0 + condition + plate``; each treated condition is contrasted with the
vehicle label of its context and time (and, with control-matching columns, the same
values of those columns). Nothing here touches expression values.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd

from ..ledger import Ledger
from ..schema import ORPHAN_VEHICLES, OrphanVehicles, ReplicateMode

__all__ = [
    "SAMPLE_STAGE",
    "STAGE",
    "ContextDesign",
    "condition_table",
    "control_keys_of",
    "plan_contexts",
]

logger = logging.getLogger(__name__)

STAGE = "de"
#: Ledger stage of the samples a fit leaves out (ids are sample ids, not conditions).
SAMPLE_STAGE = "de_samples"


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
        return self.levels.get_indexer(pd.Index(self.condition))

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

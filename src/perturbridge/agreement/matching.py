"""Cross-dataset matching of conditions: identity, context, time and mutual-nearest dose.

Two conditions of two datasets match when they share the compound identity, the cell
context and the time (relative tolerance 1e-6); within each (compound, context, time)
the doses of the two sides are paired as mutual nearest neighbours in log10 dose (ties
to the lower dose, then to the smaller condition id), kept when ``|Δ log10 dose|`` is at
most ``max_log10_dose``. A (context, time) stratum of a dataset pair is kept when it has
at least ``min_compounds`` matched compounds.

Everything is done with vectorised pandas merges and sorts (no Python loop over
conditions or compounds), so 100,000 conditions match in seconds. Every condition is
accounted for in :attr:`MatchResult.excluded`: unusable (missing identity, vehicle or
non-positive dose, ...), or, for each dataset pair, matched or not matched and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

__all__ = [
    "IDENTITIES",
    "MatchResult",
    "compound_identity",
    "match_conditions",
    "snap_values",
    "usable_conditions",
]

#: Compound identities a match can use (option ``--identity``).
IDENTITIES = ("parent", "inchikey", "cid")
Identity = Literal["parent", "inchikey", "cid"]

#: Relative tolerance of "the same time" and "the same dose".
REL_TOL = 1e-6
#: Slack on the ``|Δ log10 dose|`` threshold (float round-off of log10).
_DOSE_SLACK = 1e-9

_REQUIRED = ("condition_id", "dataset", "cell_context", "pert_dose_uM", "pert_time_h")
_IDENTITY_COLUMNS: dict[str, tuple[str, ...]] = {
    "parent": ("compound_parent_inchikey", "compound_inchikey"),
    "inchikey": ("compound_inchikey",),
    "cid": ("pubchem_cid",),
}

#: Reasons a condition is not used at all (first that applies), in order.
UNUSABLE_REASONS = (
    "missing_context",
    "missing_time",
    "missing_dose",
    "non_positive_dose",
    "missing_identity",
)
#: Per dataset pair, what became of a usable condition.
PAIR_STATUSES = (
    "matched",
    "stratum_too_few_compounds",
    "dose_too_far",
    "not_mutual_nearest",
    "no_counterpart",
)


@dataclass(frozen=True)
class MatchResult:
    """Matched pairs of conditions across datasets, with what was left out and why.

    Attributes
    ----------
    pairs
        One row per matched pair in a kept stratum: ``dataset_a``, ``dataset_b``
        (``dataset_a < dataset_b``), ``cell_context``, ``pert_time_h``, ``compound``,
        ``condition_a``, ``condition_b``, ``dose_a_uM``, ``dose_b_uM``, ``dlog10_dose``
        (``log10 dose_b − log10 dose_a``, signed).
    excluded
        Counts of conditions by ``dataset``, ``other_dataset`` (``"*"`` for reasons that
        do not depend on the pair), ``status`` (``unusable`` / ``matched`` /
        ``not_matched``), ``reason``, ``n_conditions``, ``n_compounds``. For every
        dataset pair the rows of each side add up to its usable conditions.
    strata
        One row per dataset pair × (context, time) with at least one mutual-nearest
        pair: ``n_compounds``, ``n_pairs`` (within the dose threshold), ``kept``, ``reason``.
    conditions
        The usable conditions with the columns the analyses need: ``condition_id``,
        ``dataset``, ``cell_context``, ``pert_time_h`` (snapped to a shared value within
        the tolerance), ``pert_dose_uM``, ``log10_dose``, ``compound``.
    options
        The matching options.
    """

    pairs: pd.DataFrame
    excluded: pd.DataFrame
    strata: pd.DataFrame
    conditions: pd.DataFrame
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def n_pairs(self) -> int:
        """Number of matched pairs in kept strata."""
        return len(self.pairs)


def snap_values(values: np.ndarray | pd.Series, *, rtol: float = REL_TOL) -> np.ndarray:
    """Each value replaced by the smallest value of its run of values within ``rtol``.

    Sorted distinct values are chained: a value within ``rtol`` (relative) of the
    previous distinct value joins its group. NaN stays NaN.

    >>> snap_values(np.array([24.0, 24.000001, 6.0, np.nan])).tolist()
    [24.0, 24.0, 6.0, nan]
    """
    v = np.asarray(values, dtype=np.float64)
    out = np.full(v.shape, np.nan)
    ok = np.isfinite(v)
    if not ok.any():
        return out
    uniq, inverse = np.unique(v[ok], return_inverse=True)
    new_group = np.ones(len(uniq), dtype=bool)
    gap = np.diff(uniq)
    new_group[1:] = gap > rtol * np.maximum(np.abs(uniq[1:]), 1e-12)
    start = np.flatnonzero(new_group)
    rep = uniq[start][np.cumsum(new_group) - 1]
    out[ok] = rep[inverse]
    return out


def compound_identity(conditions: pd.DataFrame, identity: Identity = "parent") -> pd.Series:
    """The compound identity of each condition under ``identity`` (missing as ``None``).

    ``parent``: the parent InChIKey, else the InChIKey (the ``compound_id`` of the
    catalog when it was resolved; a dataset-local id cannot match across datasets and
    counts as missing). ``inchikey``: the InChIKey as given. ``cid``: the PubChem CID.

    Under ``parent`` and ``inchikey``, a condition without any InChIKey falls back to
    its PubChem CID as ``cid:<CID>`` (when there is a ``pubchem_cid`` column), so that
    datasets keyed by CID alone (the original release) match each other. A compound
    known by its InChIKey in one dataset and only by its CID in another does not match.

    >>> conds = pd.DataFrame({"compound_parent_inchikey": [None, None],
    ...                       "compound_inchikey": ["AAA-B-N", ""],
    ...                       "pubchem_cid": pd.array([5, 2244], dtype="Int64")})
    >>> compound_identity(conds).tolist()
    ['AAA-B-N', 'cid:2244']
    """
    if identity not in IDENTITIES:
        raise ValueError(f"identity must be one of {IDENTITIES}, found {identity!r}")
    cols = _IDENTITY_COLUMNS[identity]
    missing = [c for c in cols if c not in conditions.columns]
    if missing:
        raise KeyError(
            f"identity {identity!r} needs the condition columns {list(cols)}; missing "
            f"{missing} (columns: {list(conditions.columns)[:15]})"
        )
    if identity == "cid":
        cid = pd.to_numeric(conditions["pubchem_cid"], errors="coerce")
        text = cid.map(lambda v: None if pd.isna(v) else f"CID:{int(v)}")
        return text.astype(object)
    out = pd.Series([None] * len(conditions), index=conditions.index, dtype=object)
    for col in reversed(cols):  # the first column wins
        s = conditions[col].astype(object)
        s = s.where(s.notna() & (s.astype(str).str.strip() != ""), cast(Any, None))
        out = s.where(s.notna(), out)
    if "pubchem_cid" in conditions.columns:
        cid = pd.to_numeric(conditions["pubchem_cid"], errors="coerce")
        by_cid = cid.map(lambda v: None if pd.isna(v) else f"cid:{int(v)}").astype(object)
        out = out.where(out.notna(), by_cid)
    return out


def usable_conditions(
    conditions: pd.DataFrame,
    *,
    identity: Identity | None = "parent",
    compound_column: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``conditions`` into the usable ones and the rest with a reason.

    Returns ``(usable, unusable)``: ``usable`` has ``condition_id``, ``dataset``,
    ``cell_context``, ``pert_time_h`` (snapped), ``pert_dose_uM``, ``log10_dose`` and
    ``compound``; ``unusable`` has ``condition_id``, ``dataset``, ``compound``,
    ``reason`` (one of :data:`UNUSABLE_REASONS`). The compound is
    :func:`compound_identity` under ``identity``, or the column ``compound_column``
    (e.g. the catalog's ``compound_id`` for analyses within one dataset).
    """
    missing = [c for c in _REQUIRED if c not in conditions.columns]
    if missing:
        raise KeyError(
            f"conditions lack the columns {missing} (expected a frame from "
            f"Compendium.conditions(); found {list(conditions.columns)[:15]})"
        )
    if compound_column is not None:
        comp = conditions[compound_column].astype(object)
        comp = comp.where(comp.notna(), cast(Any, None))
    else:
        comp = compound_identity(conditions, identity or "parent")
    dose = pd.to_numeric(conditions["pert_dose_uM"], errors="coerce").to_numpy(dtype=float)
    time = pd.to_numeric(conditions["pert_time_h"], errors="coerce").to_numpy(dtype=float)
    ctx = conditions["cell_context"].astype(object)
    reason = np.full(len(conditions), None, dtype=object)
    checks = [
        ("missing_context", ctx.isna().to_numpy()),
        ("missing_time", ~np.isfinite(time)),
        ("missing_dose", ~np.isfinite(dose)),
        ("non_positive_dose", np.isfinite(dose) & (dose <= 0)),
        ("missing_identity", comp.isna().to_numpy()),
    ]
    for name, bad in checks:
        reason[(reason == None) & bad] = name  # noqa: E711 (elementwise)
    ok = reason == None  # noqa: E711
    frame = pd.DataFrame(
        {
            "condition_id": conditions["condition_id"].astype(str).to_numpy(),
            "dataset": conditions["dataset"].astype(str).to_numpy(),
            "cell_context": ctx.astype(str).to_numpy(),
            "pert_time_h": snap_values(time),
            "pert_dose_uM": dose,
            "compound": comp.to_numpy(),
        }
    )
    usable = frame[ok].reset_index(drop=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        usable["log10_dose"] = np.log10(usable["pert_dose_uM"].to_numpy(dtype=float))
    usable["compound"] = usable["compound"].astype(str)
    unusable = frame.loc[~ok, ["condition_id", "dataset", "compound"]].copy()
    unusable["reason"] = reason[~ok]
    return usable, unusable.reset_index(drop=True)


def _nearest(cand: pd.DataFrame, key: str, other_log: str, other_id: str) -> pd.Series:
    """For each value of ``key``: the ``other_id`` nearest in log10 dose (ties: lower
    dose, then smaller id)."""
    order = cand.sort_values([key, "_d", other_log, other_id], kind="stable")
    first = order.drop_duplicates(key, keep="first")
    return pd.Series(first[other_id].to_numpy(), index=first[key].to_numpy())


def _mutual_nearest(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """All candidate pairs of ``a`` × ``b`` on (compound, context, time), flagged mutual."""
    keys = ["compound", "cell_context", "pert_time_h"]
    cand = a.merge(b, on=keys, suffixes=("_a", "_b"))
    if cand.empty:
        cand["_d"] = pd.Series(dtype=float)
        cand["mutual"] = pd.Series(dtype=bool)
        return cand
    cand["_d"] = (cand["log10_dose_b"] - cand["log10_dose_a"]).abs()
    nn_a = _nearest(cand, "condition_id_a", "log10_dose_b", "condition_id_b")
    nn_b = _nearest(cand, "condition_id_b", "log10_dose_a", "condition_id_a")
    best_b = nn_a.reindex(cand["condition_id_a"].to_numpy()).to_numpy()
    best_a = nn_b.reindex(cand["condition_id_b"].to_numpy()).to_numpy()
    cand["mutual"] = (best_b == cand["condition_id_b"].to_numpy()) & (
        best_a == cand["condition_id_a"].to_numpy()
    )
    return cand


def match_conditions(
    conditions: pd.DataFrame,
    *,
    identity: Identity = "parent",
    max_log10_dose: float = 1.0,
    min_compounds: int = 10,
    datasets: Sequence[str] | None = None,
) -> MatchResult:
    """Match conditions across every pair of datasets (see the module docstring).

    Parameters
    ----------
    conditions
        Conditions as from :meth:`perturbridge.compendium.Compendium.conditions`.
    identity
        ``parent`` (parent InChIKey, else InChIKey), ``inchikey`` or ``cid``.
    max_log10_dose
        Largest ``|Δ log10 dose|`` of a kept pair (1 = tenfold).
    min_compounds
        A (context, time) stratum of a dataset pair is kept with at least this many
        matched compounds.
    datasets
        Only these datasets (default: all).

    Returns
    -------
    MatchResult

    Examples
    --------
    >>> res = match_conditions(comp.conditions(), min_compounds=5)  # doctest: +SKIP
    >>> res.pairs.groupby(["dataset_a", "dataset_b"]).size()  # doctest: +SKIP
    """
    if identity not in IDENTITIES:
        raise ValueError(f"identity must be one of {IDENTITIES}, found {identity!r}")
    if not np.isfinite(max_log10_dose) or max_log10_dose < 0:
        raise ValueError(f"max_log10_dose must be a number >= 0, found {max_log10_dose!r}")
    if int(min_compounds) != min_compounds or min_compounds < 1:
        raise ValueError(f"min_compounds must be an integer >= 1, found {min_compounds!r}")
    options = {
        "identity": identity,
        "max_log10_dose": float(max_log10_dose),
        "min_compounds": int(min_compounds),
        "datasets": None if datasets is None else sorted(map(str, datasets)),
    }
    conds = conditions
    if datasets is not None:
        wanted = {str(d) for d in datasets}
        unknown = sorted(wanted - set(conditions["dataset"].astype(str)))
        if unknown:
            raise KeyError(
                f"datasets {unknown} have no conditions; datasets: "
                f"{sorted(conditions['dataset'].astype(str).unique())}"
            )
        conds = conditions[conditions["dataset"].astype(str).isin(wanted)]
    usable, unusable = usable_conditions(conds, identity=identity)
    names = sorted(conds["dataset"].astype(str).unique())

    excluded_parts = []
    if len(unusable):
        g = unusable.groupby(["dataset", "reason"], sort=True)
        keys = [cast(tuple[str, str], k) for k in g.groups]
        excluded_parts.append(
            pd.DataFrame(
                {
                    "dataset": [k[0] for k in keys],
                    "other_dataset": "*",
                    "status": "unusable",
                    "reason": [k[1] for k in keys],
                    "n_conditions": g.size().to_numpy(),
                    "n_compounds": g["compound"].nunique().to_numpy(),
                }
            )
        )
    pair_frames = []
    strata_frames = []
    by_dataset = {name: grp for name, grp in usable.groupby("dataset", sort=True)}
    empty = usable.iloc[:0]
    for i, da in enumerate(names):
        for db in names[i + 1 :]:
            a = by_dataset.get(da, empty).drop(columns=["dataset"])
            b = by_dataset.get(db, empty).drop(columns=["dataset"])
            pairs, strata, status = _match_pair(
                a, b, max_log10_dose=float(max_log10_dose), min_compounds=int(min_compounds)
            )
            pairs.insert(0, "dataset_b", db)
            pairs.insert(0, "dataset_a", da)
            strata.insert(0, "dataset_b", db)
            strata.insert(0, "dataset_a", da)
            pair_frames.append(pairs)
            strata_frames.append(strata)
            for side, other, frame in (("a", db, a), ("b", da, b)):
                st = status[side].reindex(frame["condition_id"].to_numpy()).fillna("no_counterpart")
                tab = pd.DataFrame({"reason": st.to_numpy(), "compound": frame["compound"].values})
                by_reason = tab.groupby("reason", sort=True)
                counts = pd.DataFrame(
                    {
                        "dataset": da if side == "a" else db,
                        "other_dataset": other,
                        "reason": list(by_reason.groups),
                        "n_conditions": by_reason.size().to_numpy(),
                        "n_compounds": by_reason["compound"].nunique().to_numpy(),
                    }
                )
                counts.insert(
                    2,
                    "status",
                    np.where(counts["reason"] == "matched", "matched", "not_matched"),
                )
                excluded_parts.append(counts)
    pairs = _stack(pair_frames, _PAIR_COLUMNS)
    strata = _stack(strata_frames, _STRATA_COLUMNS)
    excluded = _stack(excluded_parts, _EXCLUDED_COLUMNS)
    return MatchResult(
        pairs=pairs,
        excluded=excluded,
        strata=strata,
        conditions=usable,
        options=options,
    )


def _match_pair(
    a: pd.DataFrame, b: pd.DataFrame, *, max_log10_dose: float, min_compounds: int
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pd.Series]]:
    """Pairs, strata and per-condition status of one dataset pair."""
    cand = _mutual_nearest(a, b)
    keys = ["cell_context", "pert_time_h"]
    mutual = cand[cand["mutual"]]
    close = mutual[mutual["_d"] <= max_log10_dose + _DOSE_SLACK]
    per = close.groupby(keys, sort=True)
    strata = pd.DataFrame(
        {
            "n_compounds": per["compound"].nunique(),
            "n_pairs": per.size(),
        }
    )
    all_keys = mutual[keys].drop_duplicates().set_index(keys).index
    strata = strata.reindex(all_keys.sort_values()).fillna(0).astype(np.int64)
    strata["kept"] = strata["n_compounds"] >= min_compounds
    strata["reason"] = np.where(
        strata["kept"],
        "",
        np.where(
            strata["n_compounds"] == 0,
            "no pair within the dose threshold",
            f"fewer than {min_compounds} matched compounds",
        ),
    )
    strata = strata.reset_index()
    kept_keys = strata.loc[strata["kept"], keys]
    final = close.merge(kept_keys, on=keys)
    final = final.sort_values(
        ["cell_context", "pert_time_h", "compound", "log10_dose_a", "condition_id_a"],
        kind="stable",
    )
    pairs = pd.DataFrame(
        {
            "cell_context": final["cell_context"].to_numpy(),
            "pert_time_h": final["pert_time_h"].to_numpy(dtype=float),
            "compound": final["compound"].to_numpy(),
            "condition_a": final["condition_id_a"].to_numpy(),
            "condition_b": final["condition_id_b"].to_numpy(),
            "dose_a_uM": final["pert_dose_uM_a"].to_numpy(dtype=float),
            "dose_b_uM": final["pert_dose_uM_b"].to_numpy(dtype=float),
            "dlog10_dose": (final["log10_dose_b"] - final["log10_dose_a"]).to_numpy(dtype=float),
        }
    )
    # what became of each condition that had a counterpart: the best status wins
    rank = {s: i for i, s in enumerate(PAIR_STATUSES)}
    matched_ids = set()
    status: dict[str, pd.Series] = {}
    for side in ("a", "b"):
        col = f"condition_id_{side}"
        st = np.full(len(cand), "not_mutual_nearest", dtype=object)
        st[cand["mutual"].to_numpy()] = "dose_too_far"
        in_close = cand.index.isin(close.index)
        st[in_close] = "stratum_too_few_compounds"
        matched_ids = set(final[col])
        st[cand[col].isin(matched_ids).to_numpy() & in_close] = "matched"
        tab = pd.DataFrame({"id": cand[col].to_numpy(), "st": st})
        tab["r"] = tab["st"].map(rank)
        best = tab.sort_values(["id", "r"], kind="stable").drop_duplicates("id")
        status[side] = pd.Series(best["st"].to_numpy(), index=best["id"].to_numpy())
    return pairs, strata, status


_PAIR_COLUMNS = (
    "dataset_a",
    "dataset_b",
    "cell_context",
    "pert_time_h",
    "compound",
    "condition_a",
    "condition_b",
    "dose_a_uM",
    "dose_b_uM",
    "dlog10_dose",
)
_STRATA_COLUMNS = (
    "dataset_a",
    "dataset_b",
    "cell_context",
    "pert_time_h",
    "n_compounds",
    "n_pairs",
    "kept",
    "reason",
)
_EXCLUDED_COLUMNS = ("dataset", "other_dataset", "status", "reason", "n_conditions", "n_compounds")


def _stack(frames: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    """The frames one under the other, in ``columns`` (an empty table of them if none)."""
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return pd.concat(frames, ignore_index=True)[list(columns)].reset_index(drop=True)

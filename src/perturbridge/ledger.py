"""The ledger: where every input sample (or condition) ends up, and why.

Nothing in perturbridge drops a row outside a ledger. An ingest step records every
input sample as ``kept`` or ``dropped`` with a reason; the DE step records the
conditions it could not estimate (for instance ``no_matched_control``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import pandas as pd

__all__ = ["LEDGER_COLUMNS", "REASONS", "Ledger"]

#: Known drop reasons. Adapters may add their own; these are the common ones.
REASONS: dict[str, str] = {
    "positive_control": "a positive control, not a perturbation of interest",
    "missing_dose": "the dose is missing (empty, NA, -666); text that is not a number is an error",
    "missing_time": "the time is missing (empty, NA, -666); text that is not a number is an error",
    "qc_fail": "failed the upstream or our quality control",
    "no_matched_control": "no vehicle control for the same context and time",
    "not_estimable": "the contrast cannot be estimated from the design",
    "unsupported_pert_type": "a perturbation type this analysis does not model",
    "empty_well": "an empty well",
    "mito_fraction": "the cell's mitochondrial fraction is above the limit",
    "missing_counts": "listed in the metadata but absent from the count files",
    "empty_sample": "every count of the sample is zero (nothing was measured)",
    "rna_control": "an RNA-only control well, not a perturbation",
    "excluded_plate": "a plate the authors excluded",
    "low_quality": "below the upstream low-quality rule (e.g. log2 reads < q25 - 1.5 IQR)",
    "spike_in": "a spike-in control gene (ERCC), not a gene of the organism",
    "unresolved": "kept; its identifier did not resolve through the reference store",
    "ambiguous": "kept; its identifier names several structures or accessions",
    "vehicle_without_treated": (
        "a vehicle at a context and time with no treated sample (dropped from the fit, as "
        "the original pipeline did; DE option orphan_vehicles)"
    ),
    "control_row": "a control row of a release DE file (not a contrast)",
    "duplicate_contrast": "a repeated contrast with identical values (batch padding)",
}

LEDGER_COLUMNS: tuple[str, ...] = ("id", "stage", "status", "reason", "detail")

Status = Literal["kept", "dropped"]


class Ledger:
    """An append-only record of ``id → (stage, status, reason, detail)``.

    Examples
    --------
    >>> led = Ledger()
    >>> led.keep(["s1", "s2"], stage="ingest")
    >>> led.drop(["s3"], stage="ingest", reason="positive_control", detail="trt_poscon")
    >>> led.summary()["n"].tolist()
    [2, 1]
    """

    def __init__(self, frame: pd.DataFrame | None = None) -> None:
        self._parts: list[pd.DataFrame] = []
        if frame is not None:
            missing = [c for c in LEDGER_COLUMNS if c not in frame.columns]
            if missing:
                raise ValueError(f"ledger table lacks columns {missing}")
            self._parts.append(frame.loc[:, list(LEDGER_COLUMNS)].astype(str))

    def _add(
        self,
        ids: Iterable[str],
        *,
        stage: str,
        status: Status,
        reason: str,
        detail: str | Sequence[str],
    ) -> None:
        idx = pd.Index(ids).astype(str)
        if len(idx) == 0:
            return
        det = np.asarray(detail, dtype=object)
        if det.ndim == 0:
            det = np.full(len(idx), str(detail), dtype=object)
        elif len(det) != len(idx):
            raise ValueError(f"detail has {len(det)} entries for {len(idx)} ids")
        self._parts.append(
            pd.DataFrame(
                {
                    "id": idx.to_numpy(),
                    "stage": stage,
                    "status": status,
                    "reason": reason,
                    "detail": det.astype(str),
                }
            )
        )

    def keep(
        self,
        ids: Iterable[str],
        *,
        stage: str,
        detail: str | Sequence[str] = "",
        reason: str = "",
    ) -> None:
        """Record ``ids`` as kept at ``stage``; ``reason`` is an optional note for rows
        that stay with a caveat (e.g. an identifier that did not resolve)."""
        self._add(ids, stage=stage, status="kept", reason=reason, detail=detail)

    def drop(
        self,
        ids: Iterable[str],
        *,
        stage: str,
        reason: str,
        detail: str | Sequence[str] = "",
    ) -> None:
        """Record ``ids`` as dropped at ``stage`` for ``reason`` (see :data:`REASONS`)."""
        if not reason:
            raise ValueError("a dropped row needs a reason")
        self._add(ids, stage=stage, status="dropped", reason=reason, detail=detail)

    def extend(self, other: Ledger) -> None:
        """Append the entries of another ledger."""
        self._parts.extend(other._parts)

    def to_frame(self) -> pd.DataFrame:
        """All entries as a DataFrame with columns :data:`LEDGER_COLUMNS`."""
        if not self._parts:
            return pd.DataFrame({c: pd.Series(dtype=str) for c in LEDGER_COLUMNS})
        return pd.concat(self._parts, ignore_index=True)

    def __len__(self) -> int:
        return sum(len(p) for p in self._parts)

    def ids(self, *, stage: str | None = None, status: Status | None = None) -> pd.Index:
        """Ids recorded, optionally filtered by stage and status."""
        df = self.to_frame()
        if stage is not None:
            df = df[df["stage"] == stage]
        if status is not None:
            df = df[df["status"] == status]
        return pd.Index(df["id"])

    def summary(self) -> pd.DataFrame:
        """Counts per ``stage × status × reason``, kept first."""
        df = self.to_frame()
        out = (
            df.groupby(["stage", "status", "reason"], sort=False, observed=True)
            .size()
            .rename("n")
            .reset_index()
        )
        return out.sort_values(
            ["stage", "status", "n"], ascending=[True, False, False], kind="stable"
        ).reset_index(drop=True)

    def check_accounts_for(self, ids: Iterable[str], *, stage: str) -> None:
        """Raise if some of ``ids`` have no entry, or more than one, at ``stage``."""
        expected = pd.Index(ids).astype(str)
        got = self.ids(stage=stage)
        dup = got[got.duplicated()]
        if len(dup):
            raise ValueError(f"ledger stage {stage!r} records ids twice: {list(dup[:5])}")
        missing = expected.difference(got)
        if len(missing):
            raise ValueError(
                f"ledger stage {stage!r} does not account for {len(missing)} ids: "
                f"{list(missing[:5])}"
            )

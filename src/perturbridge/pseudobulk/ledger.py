"""Pseudobulk accounting: each cell's group and drop reason, and the ledger of them.

A cell is recorded once, with the first rule it breaks (the order of
:data:`PSEUDOBULK_REASONS`); 9 bytes a cell are kept during the pass and the ledger
(one row per cell, in input order) is built after it, in slices.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import anndata as ad
import numpy as np
import pandas as pd

from ..ledger import Ledger
from .groups import Groups
from .kernels import Stats
from .options import PseudobulkOptions

__all__ = [
    "KEPT",
    "PSEUDOBULK_REASONS",
    "REASONS",
    "STAGE",
    "CellState",
    "Filters",
    "log_summary",
]

logger = logging.getLogger("perturbridge.pseudobulk")

#: The ledger stage of :func:`pseudobulk`.
STAGE: Final = "pseudobulk"

#: Why :func:`pseudobulk` drops a cell, in the order the rules are applied (a cell
#: is recorded once, with the first rule it breaks).
PSEUDOBULK_REASONS: Final[dict[str, str]] = {
    "missing_metadata": "a grouping column is missing (NA or empty) for the cell",
    "min_counts": "the cell's total count is below min_counts",
    "min_genes": "the cell detects fewer than min_genes genes",
    "nucleus_quality": "the quality gene's fraction of the cell's counts is below "
    "quality_min_fraction (and the cell is not exempt)",
    "small_group": "the cell's group keeps fewer than min_cells cells; the whole group is dropped",
}
REASONS: Final = ("", *PSEUDOBULK_REASONS)  # code 0 is "kept"
KEPT, MISSING, MIN_COUNTS, MIN_GENES, QUALITY, SMALL = range(6)
#: Cells per slice when the ledger is built (bounds its temporary copies).
_LEDGER_ROWS = 1 << 20


@dataclass(frozen=True)
class Filters:
    min_counts: float
    min_genes: int
    quality_min_fraction: float
    exempt: np.ndarray | None
    quality_col: int | None = None

    @property
    def active(self) -> bool:
        """Whether any per-cell rule can drop a cell (else no statistics are needed)."""
        return self.min_counts > 0 or self.min_genes > 0 or self.quality_min_fraction > 0


class CellState:
    """Per cell: group, drop reason and the value that broke the rule (9 bytes a cell)."""

    def __init__(self, codes: np.ndarray) -> None:
        self.codes = codes  # int32
        self.reason = np.where(codes < 0, MISSING, KEPT).astype(np.int8)
        self.value = np.zeros(len(codes), dtype=np.float32)  # for the ledger's text only

    def apply_filters(self, cells: slice, stats: Stats, filters: Filters) -> None:
        reason = self.reason[cells]  # views: updated in place
        value = self.value[cells]
        open_ = reason == KEPT
        rules: list[tuple[int, np.ndarray, np.ndarray]] = [
            (MIN_COUNTS, stats.totals < filters.min_counts, stats.totals),
            (MIN_GENES, stats.n_genes < filters.min_genes, stats.n_genes),
        ]
        if stats.quality is not None and filters.quality_min_fraction > 0:
            fraction = np.divide(
                stats.quality,
                stats.totals,
                out=np.zeros_like(stats.totals),
                where=stats.totals > 0,
            )
            low = fraction < filters.quality_min_fraction
            if filters.exempt is not None:
                low &= ~filters.exempt[cells]
            rules.append((QUALITY, low, fraction))
        for code, fails, metric in rules:
            hit = open_ & fails
            reason[hit] = code
            value[hit] = metric[hit]
            open_ &= ~hit

    def summed_group(self, cells: slice) -> np.ndarray:
        """Group of each cell in ``cells``, −1 for cells not summed."""
        return np.where(self.reason[cells] == KEPT, self.codes[cells], -1)

    def kept_codes(self) -> np.ndarray:
        return self.codes[self.reason == KEPT]

    def drop_small_groups(self, small: np.ndarray) -> None:
        hit = (self.reason == KEPT) & small[np.maximum(self.codes, 0)]
        self.reason[hit] = SMALL

    def ledger(
        self,
        cell_index: pd.Index,
        groups: Groups,
        *,
        n_cells: np.ndarray,
        options: PseudobulkOptions,
    ) -> Ledger:
        """One ledger entry per cell, in input order.

        Built in slices of ``_LEDGER_ROWS`` cells: ``Ledger(frame)`` copies its frame
        twice, so one frame of all cells would briefly need several times the memory
        the ledger keeps.
        """
        ids = pd.Index(cell_index)
        id_values = ids.to_numpy(dtype=object) if ids.dtype == object else ids.astype(str)
        min_counts, min_genes = options.min_counts, options.min_genes
        quality_gene, quality_min_fraction = options.quality_gene, options.quality_min_fraction
        min_cells = options.min_cells
        templates = {
            MIN_COUNTS: f"total_counts {{:g}} < min_counts {min_counts:g}",
            MIN_GENES: f"n_genes {{:.0f}} < min_genes {min_genes}",
            QUALITY: f"{quality_gene} fraction {{:.4g}} < {quality_min_fraction:g}",
        }
        small_text = {
            g: f"group {groups.ids[g]} has {n_cells[g]} cells < min_cells {min_cells}"
            for g in np.unique(self.codes[self.reason == SMALL]).tolist()
        }
        # One string object each, shared by all rows (np.full(n, "x", dtype=object)
        # would make a string per row).
        stage = np.array([STAGE], dtype=object)
        status = np.array(["kept", "dropped"], dtype=object)
        reasons = np.array(REASONS, dtype=object)
        ledger = Ledger()
        for start in range(0, len(self.codes), _LEDGER_ROWS):
            cells = slice(start, min(start + _LEDGER_ROWS, len(self.codes)))
            reason, codes = self.reason[cells], self.codes[cells]
            detail = np.empty(len(reason), dtype=object)
            kept = reason == KEPT
            detail[kept] = groups.ids[codes[kept]]
            lo, hi = np.searchsorted(groups.missing_cells, [cells.start, cells.stop])
            detail[groups.missing_cells[lo:hi] - start] = groups.missing_detail[lo:hi]
            for code, template in templates.items():
                where = np.flatnonzero(reason == code)
                values = self.value[cells][where].tolist()
                detail[where] = [template.format(v) for v in values]
            where = np.flatnonzero(reason == SMALL)
            detail[where] = [small_text[g] for g in codes[where].tolist()]
            # Object columns that share a few strings (Ledger casts to str; categoricals
            # would become a new string per cell); copy=False: no consolidated copy.
            frame = pd.DataFrame(
                {
                    "id": id_values[cells],
                    "stage": np.repeat(stage, len(reason)),
                    "status": status[(reason != KEPT).view(np.int8)],
                    "reason": reasons[reason],
                    "detail": detail,
                },
                copy=False,
            )
            ledger.extend(Ledger(frame))
        return ledger


def log_summary(reason: np.ndarray, counts: ad.AnnData) -> None:
    n = np.bincount(reason, minlength=len(REASONS))
    dropped = ", ".join(f"{r}: {k}" for r, k in zip(REASONS[1:], n[1:], strict=True) if k)
    logger.info(
        "pseudobulk: %d groups from %d of %d cells; dropped %s",
        counts.n_obs,
        n[KEPT],
        len(reason),
        dropped or "none",
    )

"""The options of :func:`perturbridge.pseudobulk.pseudobulk`: the cell and group filters
and what the result carries, checked when they are made."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PseudobulkOptions"]


@dataclass(frozen=True)
class PseudobulkOptions:
    """How :func:`~perturbridge.pseudobulk.pseudobulk` filters cells and groups.

    Attributes
    ----------
    min_counts
        Drop cells whose total count is below this (reason ``min_counts``).
    min_genes
        Drop cells with fewer genes detected (nonzero) than this (``min_genes``).
    quality_gene
        A gene id (``var_names``) or symbol (``var["symbol"]``), e.g. ``"MALAT1"``,
        whose fraction of a cell's counts marks an intact nucleus.
    quality_min_fraction
        Drop cells where ``quality_gene`` makes up less than this fraction of the
        total count (reason ``nucleus_quality``); a cell with no counts has fraction 0.
    quality_exempt
        ``{obs column: values}``: cells whose value in any of these columns is listed
        are exempt from the quality-gene rule, e.g. ``{"cell_line": ["HEK293"]}``.
    min_cells
        Drop whole groups that keep fewer cells than this after the cell filters
        (reason ``small_group`` for each of their cells).
    fraction_expressing
        Add ``layers["frac_expressing"]``: per group and gene, the fraction of the
        group's cells with a nonzero count.
    cell_ids
        Also store the kept cells and their group in the result, as a table
        ``uns["perturbridge"]["cells"]`` (index: cell id; column ``group``). The ledger
        holds the same mapping; this copy travels with the AnnData when it is written.
        It grows with the number of cells, hence off by default.

    Raises
    ------
    ValueError
        A value out of range, or quality options without ``quality_gene``.
    TypeError
        A ``quality_exempt`` value that is a string, not a list of values.
    """

    min_counts: float = 0
    min_genes: int = 0
    quality_gene: str | None = None
    quality_min_fraction: float = 0.0
    quality_exempt: Mapping[str, Sequence[str]] | None = None
    min_cells: int = 1
    fraction_expressing: bool = False
    cell_ids: bool = False

    def __post_init__(self) -> None:
        if not np.isfinite(self.min_counts) or self.min_counts < 0:
            raise ValueError(f"min_counts must be a finite number >= 0; found {self.min_counts!r}")
        if int(self.min_genes) != self.min_genes or self.min_genes < 0:
            raise ValueError(f"min_genes must be an integer >= 0; found {self.min_genes!r}")
        if not 0.0 <= self.quality_min_fraction <= 1.0:
            raise ValueError(
                f"quality_min_fraction must lie in [0, 1]; found {self.quality_min_fraction!r}"
            )
        if self.quality_gene is None and (self.quality_min_fraction > 0 or self.quality_exempt):
            raise ValueError(
                "quality_min_fraction and quality_exempt need quality_gene "
                "(the gene whose fraction marks an intact nucleus, e.g. 'MALAT1')"
            )
        if int(self.min_cells) != self.min_cells or self.min_cells < 1:
            raise ValueError(f"min_cells must be an integer >= 1; found {self.min_cells!r}")
        for col, values in (self.quality_exempt or {}).items():
            if isinstance(values, str):
                raise TypeError(
                    f"quality_exempt[{col!r}] must be a list of values, found the string "
                    f"{values!r}; write [{values!r}]"
                )

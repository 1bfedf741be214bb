"""The genes of an L1000 level 3 matrix: annotation (gene_info or row metadata) and the
landmark / best-inferred / all selection, every row accounted for in the ledger."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import SchemaError
from ...ledger import Ledger
from .._common import GENE_STAGE, Triage, is_missing, parse_bools, resolve_columns
from .._tables import check_unique, read_table

__all__ = ["GENE_ALIASES", "N_LANDMARK", "gene_annotation", "gene_var", "select_genes"]

logger = logging.getLogger(__name__)

#: Number of landmark genes; a file without landmark flags and no more rows is all landmarks.
N_LANDMARK = 978

#: gene_info (GEO) and GCT(X) row-metadata spellings
GENE_ALIASES: dict[str, tuple[str, ...]] = {
    "entrez": ("pr_gene_id", "gene_id", "entrez_id"),
    "probe": ("pr_id", "probe_id"),
    "symbol": ("pr_gene_symbol", "gene_symbol", "symbol"),
    "is_lm": ("pr_is_lm", "pr_is_lmark", "is_lm", "is_landmark"),
    "is_bing": ("pr_is_bing", "is_bing"),
}


def _clean_id(values: pd.Series) -> pd.Series:
    return values.astype(str).str.strip().str.replace(r"\.0$", "", regex=True)


def gene_annotation(
    row_ids: pd.Index,
    row_meta: pd.DataFrame,
    gene_info: Path | None,
    *,
    where: str,
) -> tuple[pd.DataFrame, np.ndarray, str]:
    """Per GCTX row: ``entrez``, ``symbol``, ``probe``, ``is_lm``, ``is_bing`` (NA: unknown).

    Returns the annotation (indexed by row id), a mask of rows found in ``gene_info``
    (all true without it) and what the row ids are (``"entrez"`` or ``"probe"``).
    """
    n = len(row_ids)
    if gene_info is not None:
        table = read_table(gene_info, what="L1000 gene_info table")
        gwhere = str(gene_info)
        cols = resolve_columns(
            table.columns, GENE_ALIASES, required=("entrez",), where=gwhere, what="gene_info"
        )
        best, best_hits = "", -1
        for key in ("entrez", "probe"):
            if key in cols:
                keys = _clean_id(table[cols[key]])
                hits = int(pd.Index(row_ids).isin(keys).sum())
                if hits > best_hits:
                    best, best_hits = key, hits
        if best_hits <= 0:
            raise SchemaError(
                cols["entrez"],
                f"none of the {n} row ids of {where} (first: {list(row_ids[:3])}) are in "
                f"gene_info column(s) {[cols[k] for k in ('entrez', 'probe') if k in cols]} "
                f"(first: {list(table[cols['entrez']].iloc[:3])})",
                where=gwhere,
            )
        keys = _clean_id(table[cols[best]])
        check_unique(keys, column=cols[best], where=gwhere, what="gene ids")
        table.index = pd.Index(keys.to_numpy())
        found = np.asarray(pd.Index(row_ids).isin(table.index))
        meta = table.reindex(row_ids)
        kind = best
    else:
        cols = resolve_columns(
            row_meta.columns, GENE_ALIASES, required=(), where=where, what="row metadata"
        )
        meta = row_meta.astype(object).where(row_meta.notna(), "").astype(str)
        found = np.ones(n, dtype=bool)
        kind = "probe"
        if "entrez" in cols and (_clean_id(meta[cols["entrez"]]).to_numpy() == row_ids).all():
            kind = "entrez"
        elif "entrez" not in cols:
            kind = "entrez" if all(str(r).isdigit() for r in row_ids[:50]) else "probe"
        gwhere = where
    ann = pd.DataFrame(index=pd.Index(row_ids, dtype=str))
    ann["entrez"] = (
        _clean_id(meta[cols["entrez"]]).to_numpy() if "entrez" in cols else row_ids.to_numpy()
    )
    if kind == "entrez":
        ann["entrez"] = row_ids.to_numpy()
    ann["probe"] = (
        row_ids.to_numpy()
        if kind == "probe"
        else (meta[cols["probe"]].astype(str).to_numpy() if "probe" in cols else None)
    )
    ann["symbol"] = (
        meta[cols["symbol"]].astype(str).to_numpy() if "symbol" in cols else ann["entrez"]
    )
    for flag in ("is_lm", "is_bing"):
        if flag in cols:
            vals = meta[cols[flag]].astype(str).where(found, "")
            ann[flag] = parse_bools(vals, column=cols[flag], where=gwhere)
        else:
            ann[flag] = pd.NA
    return ann, found, kind


def select_genes(
    ann: pd.DataFrame, found: np.ndarray, genes: str, *, where: str, ledger: Ledger
) -> np.ndarray:
    """Positions of the selected rows; writes every row to the gene ledger."""
    if genes not in ("landmark", "bing", "all"):
        raise ValueError(f"genes must be 'landmark', 'bing' or 'all', found {genes!r}")
    t = Triage(ann.index)
    t.drop(~found, "missing_gene_info", "not in gene_info")
    if genes != "all":
        flag = "is_lm" if genes == "landmark" else "is_bing"
        if ann[flag].isna().all():
            if len(ann) > N_LANDMARK:
                raise ValueError(
                    f"{where}: genes={genes!r} needs the {flag} flags of the genes, but neither "
                    f"gene_info nor the row metadata has them ({GENE_ALIASES[flag]}) and the "
                    f"file has {len(ann)} rows (more than the {N_LANDMARK} landmarks); pass "
                    "gene_info= or genes='all'"
                )
            logger.info("%s: no %s flags; all %d rows taken as %s", where, flag, len(ann), genes)
        else:
            selected = ann[flag].astype(bool).to_numpy()
            t.drop(~selected, f"not_{genes}", f"genes={genes!r}")
    t.record(ledger, stage=GENE_STAGE)
    return np.flatnonzero(t.kept)


def gene_var(ann: pd.DataFrame, kind: str, *, where: str) -> pd.DataFrame:
    entrez = ann["entrez"].astype(str)
    var = pd.DataFrame(
        {"symbol": ann["symbol"].astype(str).to_numpy(), "entrez_id": entrez.to_numpy()}
    )
    if kind == "probe" or ann["probe"].notna().any():
        var["probe_id"] = ann["probe"].astype(str).to_numpy()
    for flag, name in (("is_lm", "is_landmark"), ("is_bing", "is_bing")):
        if ann[flag].notna().all():
            var[name] = ann[flag].astype(bool).to_numpy()
    if entrez.duplicated().any() or is_missing(entrez).any():
        logger.warning("%s: Entrez ids are missing or repeated; genes keyed by probe id", where)
        var.index = pd.Index(ann.index.to_numpy(), name="gene_id")
    else:
        var.index = pd.Index(entrez.to_numpy(), name="gene_id")
    return var

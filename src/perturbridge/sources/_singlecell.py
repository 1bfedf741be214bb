"""Helpers of the single-cell adapters (sci-Plex, Tahoe-100M): lazy ``.h5ad`` access,
streaming per-cell gene fractions, gene tables, and ledger bookkeeping around
:func:`perturbridge.pseudobulk.pseudobulk`.

Every single-cell adapter sums cells with :func:`~perturbridge.pseudobulk.pseudobulk`;
its ledger (stage ``"pseudobulk"``) accounts for every cell and the adapter adds the
sample-level ledger (stage ``"ingest"``) for the pseudobulk samples.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import sparse

from ..errors import FormatError
from ..io import provenance, read_element
from ..ledger import Ledger
from ..samples import build_samples
from ._base import IngestResult
from ._common import GENE_STAGE, STAGE, Accounts, Origin, resolve_columns

__all__ = [
    "CELL_STAGE",
    "as_text",
    "finish_samples",
    "gene_fraction",
    "gene_table",
    "key_column",
    "lazy_anndata",
    "matrix_element",
    "obs_columns",
    "open_h5ad_file",
    "read_cell_tables",
    "read_obs",
    "relabel_dropped",
    "samples_provenance",
]

logger = logging.getLogger(__name__)

#: Ledger stage of single cells (that of :func:`perturbridge.pseudobulk.pseudobulk`).
CELL_STAGE = "pseudobulk"

_ENSEMBL = r"^ENS[A-Z]*G\d{6,}(\.\d+)?$"
_SYMBOL_COLUMNS = (
    "symbol",
    "gene_symbol",
    "gene_symbols",
    "gene_short_name",
    "gene_name",
    "feature_name",
)
_ENSEMBL_COLUMNS = ("gene_id", "gene_ids", "ensembl_id", "ensembl_gene_id", "feature_id")


@contextlib.contextmanager
def open_h5ad_file(path: Path) -> Iterator[Any]:
    """The ``.h5ad`` as an open :class:`h5py.File`, or :class:`FormatError` naming it."""
    import h5py

    try:
        fh = h5py.File(path, "r")
    except OSError as err:
        raise FormatError(f"{path}: not a readable .h5ad (HDF5) file: {err}") from err
    try:
        for key in ("obs", "var"):
            if key not in fh:
                raise FormatError(f"{path}: not an .h5ad file: it has no {key!r} group")
        yield fh
    finally:
        fh.close()


def read_obs(fh: Any, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """``obs`` of an open ``.h5ad``, only ``columns`` (those present) when given.

    Reading a few columns of a large ``obs`` avoids decoding the others.
    """
    group = fh["obs"]
    if columns is None:
        obs: pd.DataFrame = read_element(group)
        return obs
    index_key = group.attrs.get("_index", "_index")
    index = pd.Index(np.asarray(read_element(group[index_key])).astype(str))
    data = {c: read_element(group[c]) for c in columns if c in group and c != index_key}
    return pd.DataFrame(data, index=index)


def obs_columns(fh: Any) -> list[str]:
    """The column names of an open ``.h5ad``'s ``obs`` (without reading them)."""
    group = fh["obs"]
    order = group.attrs.get("column-order", [])
    cols = [str(c) for c in np.atleast_1d(order)]
    return cols or [k for k in group if k != group.attrs.get("_index", "_index")]


def matrix_element(fh: Any, layer: str | None, *, where: str) -> Any:
    """The matrix ``X`` or ``layers/<layer>`` of an open ``.h5ad``."""
    key = "X" if layer is None else f"layers/{layer}"
    if key not in fh:
        layers = list(fh["layers"].keys()) if "layers" in fh else []
        raise KeyError(f"{where}: no matrix {key!r} in the .h5ad; layers present: {layers}")
    return fh[key]


def lazy_anndata(fh: Any, obs: pd.DataFrame, var: pd.DataFrame, *, layer: str | None) -> Any:
    """An AnnData with the given ``obs``/``var`` whose matrix stays on disk (CSR).

    :func:`~perturbridge.pseudobulk.pseudobulk` reads it in row chunks; nothing of the
    matrix is loaded here.
    """
    import anndata as ad
    from anndata.io import sparse_dataset

    elem = matrix_element(fh, layer, where=str(fh.filename))
    encoding = elem.attrs.get("encoding-type", "") if hasattr(elem, "attrs") else ""
    if encoding != "csr_matrix":
        raise FormatError(
            f"{fh.filename}: the count matrix is stored as {encoding or 'a dense array'!r}; "
            "single cells are read in row chunks, which needs a CSR matrix. Convert it once "
            "(adata.X = scipy.sparse.csr_matrix(adata.X)) and write the file again"
        )
    return ad.AnnData(X=sparse_dataset(elem), obs=obs, var=var)


def read_cell_tables(
    fh: Any,
    aliases: Mapping[str, Sequence[str]],
    *,
    required: Sequence[str],
    where: str,
    what: str,
) -> tuple[dict[str, str], pd.DataFrame, pd.DataFrame]:
    """The obs fields of an open single-cell ``.h5ad`` (:func:`resolve_columns` over its
    obs columns), the obs table of those fields, and the gene table of its var."""
    f = resolve_columns(
        obs_columns(fh), aliases, required=required, where=f"{where} obs", what=what
    )
    obs = read_obs(fh, list(f.values()))
    return f, obs, gene_table(read_element(fh["var"]), where=f"{where} var")


def gene_fraction(
    fh: Any,
    gene_columns: NDArray[np.intp],
    *,
    layer: str | None,
    chunk_size: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per cell: total count and the fraction of it in ``gene_columns``, streaming.

    Reads the matrix in row chunks of ``chunk_size`` cells (CSR or dense on disk); a
    cell without counts has fraction 0.
    """
    from anndata.io import sparse_dataset

    elem = matrix_element(fh, layer, where=str(fh.filename))
    is_sparse = hasattr(elem, "attrs") and elem.attrs.get("encoding-type", "") in (
        "csr_matrix",
        "csc_matrix",
    )
    matrix = sparse_dataset(elem) if is_sparse else elem
    n = int(matrix.shape[0])
    totals = np.zeros(n)
    part = np.zeros(n)
    cols = np.asarray(gene_columns, dtype=np.intp)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        block = sparse.csr_matrix(matrix[start:stop])
        totals[start:stop] = np.asarray(block.sum(axis=1)).ravel()
        if cols.size:
            part[start:stop] = np.asarray(block[:, cols].sum(axis=1)).ravel()
    frac = np.divide(part, totals, out=np.zeros(n), where=totals > 0)
    return totals, frac


def gene_table(var: pd.DataFrame, *, where: str) -> pd.DataFrame:
    """``var`` as gene ids (Ensembl when the upstream has them) and symbols.

    The id is the ``var`` index when it holds Ensembl ids, else an Ensembl column
    (``gene_id``, ``gene_ids``, ``ensembl_id``, …) when there is one, else the index.
    The symbol comes from the first of ``symbol``, ``gene_symbol``,
    ``gene_short_name``, ``gene_name``, ``feature_name`` present, else the index when
    the index is not Ensembl, else the id. Returns a frame indexed by id with columns
    ``symbol`` and ``var_name`` (the upstream index).
    """
    index = pd.Index(var.index.astype(str))
    is_ens = index.str.match(_ENSEMBL)
    sym_col = next((c for c in _SYMBOL_COLUMNS if c in var.columns), None)
    ens_col = next(
        (c for c in _ENSEMBL_COLUMNS if c in var.columns and c != sym_col),
        None,
    )
    if len(index) and is_ens.all():
        ids = index
        symbols = var[sym_col].astype(str).to_numpy() if sym_col else index.to_numpy()
    elif ens_col is not None and var[ens_col].astype(str).str.match(_ENSEMBL).all():
        ids = pd.Index(var[ens_col].astype(str).to_numpy())
        symbols = var[sym_col].astype(str).to_numpy() if sym_col else index.to_numpy()
    else:
        ids = index
        symbols = var[sym_col].astype(str).to_numpy() if sym_col else index.to_numpy()
    dup = ids[ids.duplicated()]
    if len(dup):
        raise FormatError(f"{where}: gene ids in var are repeated: {list(pd.unique(dup))[:5]}")
    return pd.DataFrame(
        {"symbol": symbols, "var_name": index.to_numpy()}, index=pd.Index(ids, name="gene_id")
    )


def relabel_dropped(
    ledger: Ledger,
    ids: pd.Index,
    *,
    stage: str,
    reason: str,
    detail: Sequence[str] | NDArray[Any],
) -> Ledger:
    """A copy of ``ledger`` where the entries of ``ids`` at ``stage`` carry ``reason``.

    Used when an adapter drops cells that :func:`~perturbridge.pseudobulk.pseudobulk`
    has no rule for: the adapter hides the cells' grouping key (pseudobulk records
    them as ``missing_metadata``), then gives them their real reason here.
    """
    frame = ledger.to_frame()
    if not len(ids):
        return ledger
    det = pd.Series(np.asarray(detail, dtype=object), index=pd.Index(ids).astype(str))
    hit = (frame["stage"] == stage).to_numpy() & frame["id"].isin(det.index).to_numpy()
    if int(hit.sum()) != len(det):
        raise RuntimeError(
            f"ledger stage {stage!r}: expected {len(det)} entries to relabel, found {hit.sum()}"
        )
    frame.loc[hit, "status"] = "dropped"
    frame.loc[hit, "reason"] = reason
    frame.loc[hit, "detail"] = det.reindex(frame.loc[hit, "id"]).astype(str).to_numpy()
    return Ledger(frame)


def samples_provenance(
    *, step: str, inputs: Sequence[str | os.PathLike[str]], params: Mapping[str, Any]
) -> dict[str, Any]:
    """A provenance record naming the inputs without hashing them.

    Single-cell inputs can be tens of GB; hashing them would read them a second time
    (the same choice as :func:`~perturbridge.pseudobulk.pseudobulk`). Their sizes and
    modification times are recorded instead.
    """
    prov = provenance(step=step, params=dict(params))
    prov["input_paths"] = [str(p) for p in inputs]
    prov["input_sha256"] = []
    stats = [Path(p).stat() for p in inputs]
    prov["input_bytes"] = [int(s.st_size) for s in stats]
    prov["input_mtime"] = [float(s.st_mtime) for s in stats]
    return prov


def as_text(values: pd.Series | Any) -> NDArray[np.object_]:
    """Values as strings, ``""`` where missing (categoricals decoded via their codes)."""
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = np.asarray(s.cat.categories.astype(str), dtype=object)
        codes = s.cat.codes.to_numpy()
        out = np.full(len(s), "", dtype=object)
        ok = codes >= 0
        out[ok] = cats[codes[ok]]
        return out
    obj = s.astype(object)
    return np.asarray(obj.where(obj.notna(), "").astype(str).str.strip(), dtype=object)


def key_column(values: NDArray[np.object_], *, hide: NDArray[np.bool_] | None = None) -> Any:
    """A grouping column for pseudobulk: categorical, missing where empty or hidden."""
    vals = np.asarray(values, dtype=object).copy()
    if hide is not None:
        vals[hide] = ""
    cat = pd.Categorical(vals)
    if "" in cat.categories:
        cat = cat.remove_categories([""])
    return cat


def finish_samples(
    x: Any,
    obs: pd.DataFrame,
    var: pd.DataFrame,
    *,
    accounts: Accounts,
    origin: Origin,
    pseudobulk_params: Mapping[str, Any],
) -> Any:
    """Check that the ledger accounts for every cell, sample and gene; build Samples.

    ``accounts.cells`` (all input cells) are checked at stage :data:`CELL_STAGE` when
    given (an adapter with very many cells checks per file instead).
    ``pseudobulk_params`` maps each input file name to the parameters its pseudobulk
    ran with; it is stored in ``uns["perturbridge"]["pseudobulk_params"]``.
    """
    ledger = accounts.ledger
    if accounts.cells is not None:
        ledger.check_accounts_for(accounts.cells, stage=CELL_STAGE)
    ledger.check_accounts_for(accounts.samples, stage=STAGE)
    if accounts.genes is not None:
        ledger.check_accounts_for(accounts.genes, stage=GENE_STAGE)
    x = sparse.csr_matrix(x)
    obs = obs.copy()
    obs["total_counts"] = np.asarray(x.sum(axis=1), dtype=float).ravel()
    if origin.biology is not None:
        obs = origin.biology.apply(obs)
    prov = samples_provenance(step="ingest", inputs=origin.inputs, params=origin.params)
    samples = build_samples(x, obs, var, value_kind="counts", provenance=prov, where=origin.where)
    samples.uns["perturbridge"]["pseudobulk_params"] = pseudobulk_params
    return IngestResult(samples, ledger)

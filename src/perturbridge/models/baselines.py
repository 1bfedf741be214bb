"""Trivial baselines that every evaluation table shows beside the models.

A registry (:data:`BASELINES`, :func:`list_baselines`) of predictors that need no
training beyond averaging:

* ``zero``: no effect (every logFC 0).
* ``train_mean``: the mean over the training rows of the same dataset × cell context ×
  gene (NaN-aware: only rows that measured the gene). A test row whose dataset × context
  has no training row gets the mean of its dataset, else 0; how each row was predicted is
  returned in :attr:`BaselinePrediction.how`.
* ``nearest_tanimoto``: the effect of the training compound nearest by Morgan Tanimoto
  similarity (RDKit, radius 2, 2,048 bits) in the same dataset × context × time × dose;
  where that stratum has no training compound with a structure, the same dataset ×
  context × time (the nearest compound's row nearest in log dose), then the same dataset
  × context, then the dataset. A test compound without a structure, or no candidate at
  all, falls back to ``train_mean`` (counted in ``how``). Ties go to the first compound
  key in sort order. Structures are matched to compound keys by
  :meth:`TrainingData.smiles <perturbridge.models.data.TrainingData.smiles>`.

Training values are read in blocks of rows (``block_rows``) so memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .data import TrainingData

__all__ = [
    "BASELINES",
    "BaselinePrediction",
    "BaselineSpec",
    "group_means",
    "list_baselines",
    "morgan_bits",
    "predict_baseline",
    "tanimoto_matrix",
    "train_mean_reference",
]

#: rows of values read from the data at a time
BLOCK_ROWS = 2048


@dataclass(frozen=True)
class BaselinePrediction:
    """Predictions of a baseline for some rows, and how each row was predicted."""

    values: np.ndarray  # float32 (n_rows, n_genes)
    how: np.ndarray  # str (n_rows,): the level or fallback used for each row

    def counts(self) -> dict[str, int]:
        """Rows per way of prediction."""
        u, c = np.unique(self.how.astype(str), return_counts=True)
        return {str(a): int(b) for a, b in zip(u, c, strict=True)}


Predictor = Callable[..., BaselinePrediction]


@dataclass(frozen=True)
class BaselineSpec:
    """One registered baseline."""

    name: str
    description: str
    predict: Predictor
    needs_structures: bool = False


def _blocks(rows: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def group_means(
    values: np.ndarray, groups: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """NaN-aware sums and counts of the rows of ``values`` per group code.

    Returns ``(sums, counts)``, each ``(n_groups, n_genes)`` float64; the mean is
    ``sums / counts`` where ``counts > 0``.
    """
    x = np.asarray(values, dtype=np.float64)
    m = np.isfinite(x)
    sums = np.zeros((n_groups, x.shape[1]))
    counts = np.zeros((n_groups, x.shape[1]))
    np.add.at(sums, groups, np.where(m, x, 0.0))
    np.add.at(counts, groups, m.astype(np.float64))
    return sums, counts


def _mean(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _keys(conds: pd.DataFrame, rows: np.ndarray, cols: list[str]) -> pd.Series:
    sub = conds.iloc[rows]
    key = sub[cols[0]].astype(str)
    for c in cols[1:]:
        key = key + "\x1f" + sub[c].astype(str)
    return key.reset_index(drop=True)


def train_mean_reference(
    data: TrainingData, train_rows: np.ndarray, rows: np.ndarray, *, block_rows: int = BLOCK_ROWS
) -> BaselinePrediction:
    """The training mean of the same dataset × context × gene for each of ``rows``.

    Genes without a training value in the dataset × context get the dataset's mean,
    else ``NaN`` (a gene nobody measured). A dataset × context without training rows
    takes the dataset mean (``how="dataset"``); a dataset without any, ``0``
    (``how="zero: no training row of the dataset"``).
    """
    conds = data.conditions
    train_rows = np.asarray(train_rows, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    n_genes = len(data.genes)
    dc_train = _keys(conds, train_rows, ["dataset", "context"])
    ds_train = conds["dataset"].astype(str).iloc[train_rows].reset_index(drop=True)
    dc_codes, dc_uniques = pd.factorize(dc_train)
    ds_codes, ds_uniques = pd.factorize(ds_train)
    dc_sum = np.zeros((len(dc_uniques), n_genes))
    dc_cnt = np.zeros((len(dc_uniques), n_genes))
    ds_sum = np.zeros((len(ds_uniques), n_genes))
    ds_cnt = np.zeros((len(ds_uniques), n_genes))
    pos = 0
    for block in _blocks(train_rows, block_rows):
        v = data.values(block)
        sl = slice(pos, pos + len(block))
        s, c = group_means(v, dc_codes[sl], len(dc_uniques))
        dc_sum += s
        dc_cnt += c
        s, c = group_means(v, ds_codes[sl], len(ds_uniques))
        ds_sum += s
        ds_cnt += c
        pos += len(block)
    dc_mean = _mean(dc_sum, dc_cnt)
    ds_mean = _mean(ds_sum, ds_cnt)
    dc_index = pd.Index(dc_uniques)
    ds_index = pd.Index(ds_uniques)
    dc_test = dc_index.get_indexer(_keys(conds, rows, ["dataset", "context"]))
    ds_test = ds_index.get_indexer(conds["dataset"].astype(str).iloc[rows])
    out = np.zeros((len(rows), n_genes), dtype=np.float64)
    how = np.full(len(rows), "dataset × context", dtype=object)
    has_dc = dc_test >= 0
    has_ds = ds_test >= 0
    if has_dc.any():
        dsm = np.where(has_ds[has_dc, None], ds_mean[np.maximum(ds_test[has_dc], 0)], np.nan)
        dcm = dc_mean[dc_test[has_dc]]
        out[has_dc] = np.where(np.isnan(dcm), dsm, dcm)
    only_ds = ~has_dc & has_ds
    out[only_ds] = ds_mean[ds_test[only_ds]]
    how[only_ds] = "dataset"
    how[~has_ds] = "zero: no training row of the dataset"
    return BaselinePrediction(out.astype(np.float32), how.astype(str))


def _zero(data: TrainingData, train_rows: np.ndarray, rows: np.ndarray, **_: Any):
    n = len(rows)
    return BaselinePrediction(
        np.zeros((n, len(data.genes)), dtype=np.float32),
        np.full(n, "zero", dtype=object).astype(str),
    )


def _train_mean(data: TrainingData, train_rows: np.ndarray, rows: np.ndarray, **kw: Any):
    return train_mean_reference(data, train_rows, rows, block_rows=kw.get("block_rows", BLOCK_ROWS))


# --------------------------------------------------------------------------- Tanimoto


def morgan_bits(smiles: list[str], *, radius: int = 2, n_bits: int = 2048) -> np.ndarray:
    """Morgan fingerprints (RDKit) as a boolean matrix (one row per SMILES).

    Raises ``ValueError`` naming the first SMILES that RDKit cannot parse.
    """
    from rdkit import Chem, rdBase
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    out = np.zeros((len(smiles), n_bits), dtype=bool)
    bad = []
    with rdBase.BlockLogs():  # RDKit's parse messages: the error below names the SMILES
        for i, s in enumerate(smiles):
            mol = Chem.MolFromSmiles(s) if isinstance(s, str) and s else None
            if mol is None:
                bad.append(s)
                continue
            out[i] = gen.GetFingerprintAsNumPy(mol).astype(bool)
    if bad:
        raise ValueError(f"{len(bad)} SMILES cannot be parsed by RDKit, first: {bad[:3]}")
    return out


def tanimoto_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Tanimoto similarity of every row of ``a`` with every row of ``b`` (fingerprints
    as booleans or 0/1 numbers); two empty fingerprints have similarity 0."""
    af = np.asarray(a, dtype=np.float32)
    bf = np.asarray(b, dtype=np.float32)
    inter = af @ bf.T
    union = af.sum(axis=1)[:, None] + bf.sum(axis=1)[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return sim.astype(np.float64)


_LEVELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("same dataset × context × time × dose", ("dataset", "context", "time_h", "_dose")),
    ("same dataset × context × time", ("dataset", "context", "time_h")),
    ("same dataset × context", ("dataset", "context")),
    ("same dataset", ("dataset",)),
)


def _nearest_tanimoto(
    data: TrainingData,
    train_rows: np.ndarray,
    rows: np.ndarray,
    *,
    structures: pd.DataFrame | None = None,
    block_rows: int = BLOCK_ROWS,
    **_: Any,
) -> BaselinePrediction:
    if structures is None:
        raise ValueError(
            "the nearest_tanimoto baseline needs compound structures (a table with "
            "compound/inchikey/pubchem_cid and smiles, e.g. --structures)"
        )
    train_rows = np.asarray(train_rows, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    if "smiles" not in structures.columns:
        raise KeyError(
            f"the structures table needs a 'smiles' column; it has {list(structures.columns)}"
        )
    smiles = data.smiles(structures).dropna().astype(str)
    keys = sorted(smiles.index)
    fps = morgan_bits([smiles[k] for k in keys]) if keys else np.zeros((0, 2048), dtype=bool)
    fps = fps.astype(np.float32)  # once, for the products of tanimoto_matrix
    fp_index = pd.Index(keys)
    conds = data.conditions.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        conds["_dose"] = np.round(np.log10(conds["dose_uM"].astype(float)), 3)
    conds["_ld"] = conds["_dose"].astype(float)
    tr = conds.iloc[train_rows]
    tr_fp = fp_index.get_indexer(tr["compound"].astype(str))
    tr = tr.assign(_row=train_rows, _fp=tr_fp).loc[tr_fp >= 0]
    test_fp = fp_index.get_indexer(conds["compound"].astype(str).iloc[rows])
    chosen = np.full(len(rows), -1, dtype=np.int64)
    how = np.full(len(rows), "train_mean: no structure for the compound", dtype=object)
    todo = test_fp >= 0
    for label, cols in _LEVELS:
        if not todo.any():
            break
        groups = {k: g for k, g in tr.groupby(list(cols), sort=False)}
        test = conds.iloc[rows[todo]]
        idx = np.flatnonzero(todo)
        for key, g in test.groupby(list(cols), sort=False):
            cand = groups.get(key)
            if cand is None or not len(cand):
                continue
            at = idx[test.index.get_indexer(g.index)]
            cand_fp = np.unique(cand["_fp"].to_numpy())  # sorted: ties -> first key
            sim = tanimoto_matrix(fps[test_fp[at]], fps[cand_fp])
            best = cand_fp[np.argmax(sim, axis=1)]
            # the chosen compound's rows: same time first, then the nearest log dose
            c_fp = cand["_fp"].to_numpy()
            c_ld = cand["_ld"].to_numpy()
            c_t = cand["time_h"].to_numpy()
            c_row = cand["_row"].to_numpy()
            lds = conds["_ld"].to_numpy()[rows[at]]
            times = conds["time_h"].to_numpy()[rows[at]]
            for pos, fp, ld, t in zip(at, best, lds, times, strict=True):
                mine = np.flatnonzero(c_fp == fp)
                order = np.lexsort((np.abs(c_ld[mine] - ld), c_t[mine] != t))
                chosen[pos] = int(c_row[mine[order[0]]])
                how[pos] = label
            todo[at] = False
    mean = train_mean_reference(data, train_rows, rows, block_rows=block_rows)
    out = mean.values.copy()
    have = chosen >= 0
    fallback = ~have & (test_fp >= 0)
    how[fallback] = "train_mean: no training compound with a structure"
    for block in _blocks(np.flatnonzero(have), block_rows):
        v = data.values(chosen[block])
        out[block] = np.where(np.isnan(v), mean.values[block], v)
    return BaselinePrediction(out.astype(np.float32), how.astype(str))


#: name → baseline
BASELINES: dict[str, BaselineSpec] = {
    "zero": BaselineSpec("zero", "no effect: every logFC 0", _zero),
    "train_mean": BaselineSpec(
        "train_mean", "training mean of the same dataset × context × gene", _train_mean
    ),
    "nearest_tanimoto": BaselineSpec(
        "nearest_tanimoto",
        "effect of the nearest training compound by Morgan Tanimoto, same dataset × "
        "context × time × dose where possible",
        _nearest_tanimoto,
        needs_structures=True,
    ),
}


def list_baselines() -> pd.DataFrame:
    """The registered baselines: name, description, needs_structures."""
    return pd.DataFrame(
        [
            {"name": b.name, "description": b.description, "needs_structures": b.needs_structures}
            for b in BASELINES.values()
        ]
    )


def predict_baseline(
    name: str,
    data: TrainingData,
    train_rows: np.ndarray,
    rows: np.ndarray,
    *,
    structures: pd.DataFrame | None = None,
    block_rows: int = BLOCK_ROWS,
) -> BaselinePrediction:
    """Predictions of the baseline ``name`` for ``rows`` from ``train_rows``."""
    if name not in BASELINES:
        raise KeyError(f"unknown baseline {name!r}; known: {sorted(BASELINES)}")
    return BASELINES[name].predict(
        data, train_rows, rows, structures=structures, block_rows=block_rows
    )

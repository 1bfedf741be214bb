"""Pseudobulk groups: numbering the combinations of the ``groupby`` keys, once for all
chunks, and the cell masks the filters need (the quality gene, exempt cells)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd

__all__ = ["Groups", "exempt_mask", "factorize_groups", "find_gene"]


@dataclass
class Groups:
    codes: np.ndarray  # group of each cell (int32), -1 where a key is missing
    keys: pd.DataFrame  # one row per group: the typed key values, indexed by ids
    ids: np.ndarray  # display ids (object array of str)
    missing_cells: np.ndarray  # positions of the cells with a key missing
    missing_detail: np.ndarray  # for each: "missing plate, well" (object array)

    @property
    def n_groups(self) -> int:
        return len(self.ids)


def _key_codes(values: pd.Series) -> tuple[np.ndarray, int]:
    """Codes of one key column in key order (−1 for NA or empty) and their number."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy().astype(np.int64)
        uniques = pd.Index(values.cat.categories)
    else:
        raw, uniq = pd.factorize(values, sort=True, use_na_sentinel=True)
        codes, uniques = raw.astype(np.int64), pd.Index(uniq)
    if uniques.dtype == object or pd.api.types.is_string_dtype(uniques.dtype):
        empty = np.array([isinstance(u, str) and not u.strip() for u in uniques], dtype=bool)
        if empty.any():
            codes = np.where((codes >= 0) & empty[np.maximum(codes, 0)], -1, codes)
    return codes, len(uniques)


def factorize_groups(obs: pd.DataFrame, groupby: tuple[str, ...]) -> Groups:
    """Number the groups (in key order) and type their keys, once for all chunks."""
    absent = [c for c in groupby if c not in obs.columns]
    if absent:
        raise KeyError(
            f"groupby columns {absent} are not in obs; available columns: {list(obs.columns)}"
        )
    n = len(obs)
    combined = np.zeros(n, dtype=np.int64)
    bad_by_key = []
    for col in groupby:
        codes, k = _key_codes(obs[col])
        bad_by_key.append(codes < 0)
        if (int(combined.max(initial=0)) + 1) * (k + 1) >= 2**62:
            # Renumber densely, order kept, before the mixed-radix code could overflow.
            combined = np.unique(combined, return_inverse=True)[1].reshape(-1).astype(np.int64)
        combined = combined * max(k, 1) + np.maximum(codes, 0)
    bad = np.logical_or.reduce(bad_by_key)
    valid_pos = np.flatnonzero(~bad)
    # pandas' hash factorize numbers in order of first appearance; sort its uniques.
    first_codes, uniq = pd.factorize(combined[valid_pos], sort=False)
    running_max = np.maximum.accumulate(first_codes)
    first = valid_pos[np.flatnonzero(np.diff(running_max, prepend=-1) > 0)]
    order = np.argsort(uniq, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    codes_all = np.full(n, -1, dtype=np.int32)
    codes_all[valid_pos] = rank[first_codes]
    first = first[order]
    keys = {}
    for col in groupby:
        s = obs[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            keys[col] = pd.Categorical(
                s.array[first], categories=s.cat.categories, ordered=s.cat.ordered
            ).remove_unused_categories()
        else:
            keys[col] = pd.Categorical(s.to_numpy()[first])
    key_frame = pd.DataFrame(keys)
    ids = pd.Index(
        ["_".join(map(str, row)) for row in zip(*(key_frame[c] for c in groupby), strict=True)],
        dtype=object,
    )
    if not ids.is_unique:  # e.g. ("a_b", "c") and ("a", "b_c"): display only, keep distinct
        ids = pd.Index(ad.utils.make_index_unique(ids.astype(str)), dtype=object)
    key_frame.index = ids
    bad_pos = np.flatnonzero(bad)
    missing_detail = np.empty(len(bad_pos), dtype=object)
    if len(bad_pos):
        which = np.stack([b[bad_pos] for b in bad_by_key], axis=1)
        patterns, inv = np.unique(which, axis=0, return_inverse=True)
        text = np.array(
            [
                "missing " + ", ".join(c for c, hit in zip(groupby, pat, strict=True) if hit)
                for pat in patterns
            ],
            dtype=object,
        )
        missing_detail[:] = text[inv.reshape(-1)]
    return Groups(
        codes=codes_all,
        keys=key_frame,
        ids=ids.to_numpy(dtype=object),
        missing_cells=bad_pos,
        missing_detail=missing_detail,
    )


def find_gene(var: pd.DataFrame, gene: str, where: str) -> int:
    pos = np.flatnonzero(var.index.astype(str) == gene)
    if len(pos) == 0 and "symbol" in var.columns:
        pos = np.flatnonzero(var["symbol"].astype(str).to_numpy() == gene)
    if len(pos) == 0:
        raise KeyError(
            f"quality_gene {gene!r} is neither a gene id (var_names) nor a var['symbol'] "
            f"of {where}; first genes: {list(var.index[:5])}"
        )
    if len(pos) > 1:
        raise ValueError(
            f"quality_gene {gene!r} matches {len(pos)} genes of {where}: "
            f"{list(var.index[pos[:5]])}; pass one gene id"
        )
    return int(pos[0])


def exempt_mask(
    obs: pd.DataFrame, quality_exempt: Mapping[str, Sequence[str]] | None
) -> np.ndarray | None:
    """Cells whose value in any ``quality_exempt`` column is listed (compared as text)."""
    if not quality_exempt:
        return None
    absent = [c for c in quality_exempt if c not in obs.columns]
    if absent:
        raise KeyError(
            f"quality_exempt columns {absent} are not in obs; available columns: "
            f"{list(obs.columns)}"
        )
    mask = np.zeros(len(obs), dtype=bool)
    for col, values in quality_exempt.items():
        wanted = {str(v) for v in values}
        s = obs[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            codes, uniques = s.cat.codes.to_numpy(), s.cat.categories
        else:
            codes, uniques = pd.factorize(s, use_na_sentinel=True)
        hit = np.array([str(u) in wanted for u in uniques], dtype=bool)
        if len(hit):
            mask |= (codes >= 0) & hit[np.maximum(codes, 0)]
    return mask

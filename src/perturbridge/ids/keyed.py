"""Saved lookups of a reference store: tables found by key without loading them whole.

A resolver needs, per call, the few rows of its lookup tables whose key is among the
queries. Converting a whole table of hundreds of thousands of strings to pandas objects
costs about a second per table and is paid by every process that loads a store;
reading it as an Arrow table costs a tenth of that. :class:`KeyedRows` holds an Arrow
table and returns, for a batch of keys, only the matching rows as a pandas frame (a
hash lookup of the keys in the key column, ``pyarrow.compute.is_in``).

The store builder saves the lookups of the cell and gene resolvers (and the compound
resolver's, :mod:`perturbridge.ids.compound_lookup`) as derived tables with a manifest
step (:func:`lookup_step`) that records the version of the rules they were made by and
a digest of those rules (the priority tables of the resolver). :func:`saved_step`
accepts a saved lookup only when its step matches what the running code would make;
otherwise the resolver builds the lookup in memory from the store's tables, with a log
message saying to rebuild the store.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import pyarrow as pa

    from .reader import RefStoreReader

__all__ = ["REBUILD_HINT", "KeyedRows", "lookup_step", "rules_digest", "saved_step", "step_problem"]

logger = logging.getLogger(__name__)

REBUILD_HINT: Final = (
    "rebuild the store (`perturbridge refs build --force`) to load it in a fraction of the time"
)


class KeyedRows:
    """An Arrow table looked up by the values of one key column.

    Parameters
    ----------
    table
        The rows (a pandas frame is converted once).
    key
        The key column.

    Examples
    --------
    >>> import pandas as pd
    >>> kr = KeyedRows(pd.DataFrame({"key": ["A", "B", "B"], "v": [1, 2, 3]}), "key")
    >>> kr.rows(["B", "Z"])["v"].tolist()
    [2, 3]
    """

    def __init__(self, table: pa.Table | pd.DataFrame, key: str) -> None:
        import pyarrow as pa

        if isinstance(table, pd.DataFrame):
            table = pa.Table.from_pandas(table, preserve_index=False)
        if key not in table.column_names:
            raise KeyError(f"expected a key column {key!r}, found columns {table.column_names}")
        self.table = table
        self.key = key

    def __len__(self) -> int:
        return int(self.table.num_rows)

    @property
    def columns(self) -> list[str]:
        """The column names, key included."""
        return list(self.table.column_names)

    def rows(self, keys: Iterable[object]) -> pd.DataFrame:
        """Every row whose key is one of ``keys``, in table order (a fresh ``RangeIndex``).

        Missing text is ``None``; integer columns without gaps stay ``int64``.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        col = self.table.column(self.key)
        wanted = [k for k in dict.fromkeys(keys) if isinstance(k, str)]
        if not wanted or self.table.num_rows == 0 or pa.types.is_null(col.type):
            return self.table.slice(0, 0).to_pandas()
        mask = pc.is_in(col, value_set=pa.array(wanted, type=col.type))
        return self.table.filter(mask).to_pandas()

    def reindex(self, keys: Iterable[object]) -> pd.DataFrame:
        """One row per item of ``keys`` (the index), ``NaN``/``None`` where the table has
        no such key, like ``frame.set_index(key).reindex(keys)``. The table's keys must
        be unique among the rows asked for."""
        wanted = np.asarray(list(keys), dtype=object)
        found = self.rows(wanted).set_index(self.key)
        if not found.index.is_unique:
            dup = found.index[found.index.duplicated()].unique()[:5].tolist()
            raise ValueError(f"key column {self.key!r} is not unique: {dup}")
        return found.reindex(wanted)

    def frame(self) -> pd.DataFrame:
        """The whole table as a pandas frame."""
        return self.table.to_pandas()


def rules_digest(*rules: Mapping[str, Any] | Iterable[Any]) -> str:
    """A short SHA-256 of the rules a lookup is made by (priority tables, suffix lists).

    Saved with the lookup so that a change of the rules in the code, even without a
    version bump, makes the saved lookup stale.
    """
    norm = [sorted(r.items()) if isinstance(r, Mapping) else sorted(r) for r in rules]
    text = json.dumps(norm, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def lookup_step(
    step: str, *, params: Mapping[str, Any], tables: Mapping[str, pd.DataFrame | KeyedRows]
) -> dict[str, Any]:
    """The manifest entry of a saved lookup: ``params`` (version, rules digest, resolver
    options) and the row count of each saved table."""
    return {
        "step": step,
        "status": "done",
        **params,
        "rows": {name: len(t) for name, t in tables.items()},
    }


def step_problem(
    manifest: Mapping[str, Any], step: str, *, params: Mapping[str, Any]
) -> str | None:
    """Why a store (its ``manifest``) has no usable saved ``step`` for ``params``; None
    when it has one."""
    steps = [d for d in manifest.get("derived", []) if d.get("step") == step]
    if not steps:
        return f"the reference store has no saved {step} (built before it existed)"
    entry = steps[-1]
    stale = {k: entry.get(k) for k, v in params.items() if entry.get(k) != v}
    if stale:
        want = {k: params[k] for k in stale}
        return f"the store's {step} was made with {stale}, not {want}"
    tables = manifest.get("tables", {})
    rows = entry.get("rows", {})
    bad = [n for n in rows if tables.get(n, {}).get("rows") != rows[n]]
    if not rows or bad:
        return f"the store's {step} tables {bad} are missing or were changed"
    return None


def saved_step(
    store: RefStoreReader, step: str, *, params: Mapping[str, Any]
) -> dict[str, pa.Table] | None:
    """The saved tables of ``step`` as Arrow tables when the step's recorded ``params``
    equal ``params`` and its tables are the ones it wrote (row counts in the manifest);
    ``None``, logged with the reason (:func:`step_problem`), otherwise."""
    problem = step_problem(store.manifest, step, params=params)
    if problem:
        logger.info("%s: built in memory; %s", problem, REBUILD_HINT)
        return None
    entry = [d for d in store.manifest["derived"] if d.get("step") == step][-1]
    out = {name: store.arrow_table(name) for name in entry["rows"]}
    bad = [n for n, t in out.items() if t.num_rows != entry["rows"][n]]
    if bad:
        logger.info("the store's %s tables %s have other row counts: built in memory", step, bad)
        return None
    return out

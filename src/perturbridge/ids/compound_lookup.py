"""The compound resolver's lookup, saved in a reference store and loaded from it.

Building a :class:`~perturbridge.ids.compounds.CompoundResolver` from the reference
tables joins records with their structures, keys every reference name, builds the key
index and links the records without a structure: seconds for a store of 40,000
compounds, paid by every process that loads the store. The store builder does it once
and saves the result as three derived tables:

``compound_records``
    the reference records as the resolver holds them (structures joined, structureless
    records linked, a connectivity ``block`` code and a source ``prio`` per record);
``compound_lookup``
    the key index: ``key`` (a lookup key of :mod:`perturbridge.ids.compound_index`),
    ``rec`` (the row of ``compound_records``);
``compound_parents``
    per parent InChIKey: the preferred name, CID and a representative record
    (:func:`~perturbridge.ids.compound_index.parent_table`).

The manifest's ``compound_lookup`` step records :data:`LOOKUP_VERSION`, the name rules
version and the majority threshold they were made with; a resolver loads them only
when all three are current, and otherwise rebuilds the lookup in memory (as for stores
built before the step existed) with a log message that says to rebuild the store.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final, Protocol

import numpy as np
import pandas as pd

from .names import NAME_RULES_VERSION

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "LOOKUP_STEP",
    "LOOKUP_TABLES",
    "LOOKUP_VERSION",
    "lookup_problem",
    "lookup_step",
    "saved_lookup",
]

logger = logging.getLogger(__name__)

#: Version of the saved lookup's layout and of the rules that make it; bump it when
#: :func:`~perturbridge.ids.compound_index.reference_records`,
#: :func:`~perturbridge.ids.compound_index.build_index` or the linking of structureless
#: records change what they produce.
LOOKUP_VERSION: Final = 1
LOOKUP_STEP: Final = "compound_lookup"
LOOKUP_TABLES: Final[tuple[str, ...]] = ("compound_records", "compound_lookup", "compound_parents")
REBUILD_HINT: Final = (
    "rebuild the store (`perturbridge refs build --force`) to load it in a fraction of the time"
)
_INT_COLUMNS: Final = {"compound_records": ("block", "prio"), "compound_lookup": ("rec",)}


class _Store(Protocol):
    def table(self, name: str) -> pd.DataFrame: ...


def lookup_step(*, majority: float | None, rows: dict[str, int]) -> dict[str, Any]:
    """The manifest entry of a saved lookup made with ``majority``."""
    return {
        "step": LOOKUP_STEP,
        "status": "done",
        "version": LOOKUP_VERSION,
        "rules_version": NAME_RULES_VERSION,
        "majority": majority,
        "rows": rows,
    }


def lookup_problem(manifest: dict[str, Any], *, majority: float | None = 0.65) -> str | None:
    """Why a store (its ``manifest``) has no usable saved lookup for ``majority``; None
    when it has one (or has no compounds at all)."""
    derived = manifest.get("derived", [])
    steps = [d for d in derived if d.get("step") == LOOKUP_STEP]
    if not steps:
        if any(d.get("step") == "compound_structures" for d in derived):
            return "the reference store has no saved compound lookup (built before it existed)"
        return None
    step = steps[-1]
    want = {"version": LOOKUP_VERSION, "rules_version": NAME_RULES_VERSION, "majority": majority}
    stale = {k: step.get(k) for k, v in want.items() if step.get(k) != v}
    if stale:
        return (
            f"the store's compound lookup was made with {stale}, not "
            f"{ {k: want[k] for k in stale} }"
        )
    return None


def saved_lookup(
    store: _Store, *, majority: float | None
) -> dict[str, pd.DataFrame | pa.Table] | None:
    """The saved lookup tables of ``store`` if they are current for ``majority``, else None.

    Integer columns come back as NumPy ``int64`` (Parquet readers give ``Int64``). The
    key index (``compound_lookup``, a million keys and more) comes as an Arrow table
    when the store can read one (``arrow_table``): the resolver looks keys up in it
    without converting it (:class:`~perturbridge.ids.keyed.KeyedRows`).
    """
    manifest = getattr(store, "manifest", None) or {}
    problem = lookup_problem(manifest, majority=majority)
    if problem:
        logger.info("%s: built in memory; %s", problem, REBUILD_HINT)
        return None
    if not any(d.get("step") == LOOKUP_STEP for d in manifest.get("derived", [])):
        return None  # a store without compounds
    out: dict[str, pd.DataFrame | pa.Table] = {}
    arrow = getattr(store, "arrow_table", None)
    for name in LOOKUP_TABLES:
        if name == "compound_lookup" and arrow is not None:
            out[name] = arrow(name)
            continue
        df = store.table(name)
        out[name] = df.astype({c: np.int64 for c in _INT_COLUMNS.get(name, ())})
    return out

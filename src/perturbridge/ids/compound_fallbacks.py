"""The fallbacks of compound resolution for names left unresolved as given.

Called by :meth:`perturbridge.ids.compounds.CompoundResolver.resolve` on the distinct
queries after the reference lookup: names as people type them (batch and dose notes,
multi-name cells; :mod:`perturbridge.ids.name_parts`), then systematic names through
OPSIN when it is installed (:mod:`perturbridge.ids.opsin`), and, when asked for, the
online PubChem resolver (:mod:`perturbridge.ids.pubchem`). Each fills the rows of the
resolver's result table that it resolves and leaves the others as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd

from .compound_index import CID_PATTERN, MATCH_TYPES, RESULT_COLUMNS
from .name_parts import split_names, strip_notes
from .opsin import looks_systematic, opsin_smiles, opsin_status
from .pubchem import PubChemClient

__all__ = ["object_array", "resolve_online", "resolve_systematic", "resolve_typed_names"]

logger = logging.getLogger(__name__)


class _Rows(Protocol):
    cols: dict[str, np.ndarray]

    def set(self, rows: np.ndarray, **values: Any) -> None: ...


class _Resolver(Protocol):
    def resolve(self, queries: Sequence[object], *, kind: str) -> pd.DataFrame: ...

    def _fill_structures(self, res: Any, rows: np.ndarray, structures: list[str]) -> None: ...


def object_array(values: Sequence[object]) -> np.ndarray:
    """An object array of tuples (numpy would otherwise make a 2-D array of them)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def resolve_typed_names(resolver: _Resolver, uniq: pd.DataFrame, res: _Rows) -> None:
    """Unresolved names: without batch/dose notes, then part by part (module notes)."""
    kinds, qstr = uniq["kind"].to_numpy(), uniq["qstr"].to_numpy()
    todo = np.flatnonzero((res.cols["status"] == "unresolved") & (kinds == "name"))
    plans: dict[int, tuple[list[str], str | None]] = {}
    for i in todo:
        q = str(qstr[i])
        parts = split_names(q)
        if parts is not None:
            plans[int(i)] = (parts, None)
            continue
        stripped = strip_notes(q)
        if stripped is not None:
            plans[int(i)] = ([stripped[0]], stripped[1])
    if not plans:
        return
    flat = sorted({p for parts, _ in plans.values() for p in parts})
    sub = resolver.resolve(flat, kind="name").set_index("query")
    for row, (parts, note) in plans.items():
        at = np.array([row])
        rows = sub.loc[parts]
        ok = rows[rows["status"] == "resolved"]
        blocks = list(dict.fromkeys(ok["connectivity"]))
        if len(blocks) == 1:
            best = ok.sort_values("confidence", ascending=False).iloc[0]
            missing = [p for p, st in zip(parts, rows["status"], strict=True) if st != "resolved"]
            why = note or (
                f"names agree: {', '.join(parts)}"
                if not missing
                else f"resolved by {', '.join(p for p in parts if p not in missing)}; "
                f"not resolved: {', '.join(missing)}"
            )
            values = {c: best[c] for c in RESULT_COLUMNS if c not in ("query", "kind")}
            values["confidence"] = float(ok["confidence"].min())
            values["error"] = why if not best["error"] else f"{why}; {best['error']}"
            res.set(at, **values)
        elif len(blocks) > 1:
            first = ok.drop_duplicates("connectivity")
            res.set(
                at,
                status="ambiguous",
                match_type="multi_name",
                candidates=object_array([tuple(first["parent_inchikey"])]),
                candidate_names=object_array([tuple(first["name"])]),
                candidate_sources=object_array([tuple(first.index)]),
                error="the names of this cell name different compounds: "
                + "; ".join(f"{q} → {n}" for q, n in zip(ok.index, ok["name"], strict=True)),
            )
        elif (rows["status"] == "ambiguous").any():
            amb = rows[rows["status"] == "ambiguous"].iloc[0]
            values = {c: amb[c] for c in RESULT_COLUMNS if c not in ("query", "kind")}
            res.set(at, **values)


def resolve_systematic(resolver: _Resolver, uniq: pd.DataFrame, res: _Rows) -> None:
    """Unresolved systematic names → OPSIN → structure (when OPSIN is installed)."""
    kinds, qstr = uniq["kind"].to_numpy(), uniq["qstr"].to_numpy()
    todo = np.array(
        [
            i
            for i in np.flatnonzero((res.cols["status"] == "unresolved") & (kinds == "name"))
            if looks_systematic(str(qstr[i]))
        ],
        dtype=np.int64,
    )
    if todo.size == 0:
        return
    jar, why = opsin_status()
    if jar is None:
        logger.debug("%d systematic names left unresolved: %s", todo.size, why)
        return
    try:
        smiles = opsin_smiles([str(qstr[i]) for i in todo], jar=jar)
    except RuntimeError as err:
        logger.warning("OPSIN not used: %s", err)
        return
    got = np.array([s is not None for s in smiles], dtype=bool)
    rows = todo[got]
    resolver._fill_structures(res, rows, [s for s in smiles if s is not None])
    done = rows[res.cols["status"][rows] == "resolved"]
    res.set(done, match_type="opsin", confidence=MATCH_TYPES["opsin"].confidence)
    res.set(done, error="structure from the systematic name (OPSIN)")


def resolve_online(
    resolver: _Resolver, uniq: pd.DataFrame, res: _Rows, client: PubChemClient
) -> None:
    """Names, CAS numbers, CIDs and Broad ids left unresolved: asked of PubChem online."""
    kinds = uniq["kind"].to_numpy()
    qstr = uniq["qstr"].to_numpy()
    todo = np.flatnonzero(
        (res.cols["status"] == "unresolved") & np.isin(kinds, ["name", "cas", "cid", "brd"])
    )
    found: dict[int, dict[str, Any]] = {}
    for i in todo:
        q = str(qstr[i])
        m = CID_PATTERN.match(q)
        hits = (
            client.lookup_cid(int(m.group(1))) if kinds[i] == "cid" and m else client.lookup_name(q)
        )
        hits = [h for h in hits if h.get("smiles")]
        blocks = {str(h.get("inchikey") or "")[:14] for h in hits}
        if hits and len(blocks) == 1:
            found[int(i)] = hits[0]
        elif len(blocks) > 1:
            res.set(
                np.array([i]),
                status="ambiguous",
                match_type="pubchem_online",
                candidates=object_array([tuple(h.get("inchikey") for h in hits)]),
                candidate_names=object_array([tuple(f"CID {h.get('cid')}" for h in hits)]),
                error="PubChem knows several compounds by this name",
            )
    if not found:
        return
    rows = np.array(sorted(found), dtype=np.int64)
    resolver._fill_structures(res, rows, [str(found[int(i)]["smiles"]) for i in rows])
    done = rows[res.cols["status"][rows] == "resolved"]
    cids = [found[int(i)].get("cid") for i in done]
    res.set(done, match_type="pubchem_online", confidence=MATCH_TYPES["pubchem_online"].confidence)
    no_cid = np.array([res.cols["pubchem_cid"][i] is None for i in done], dtype=bool)
    res.set(done[no_cid], pubchem_cid=[c for c, n in zip(cids, no_cid, strict=True) if n])
    no_ref = np.array([res.cols["ref_source"][i] is None for i in done], dtype=bool)
    res.set(
        done[no_ref],
        ref_source="pubchem_online",
        ref_id=[str(c) for c, n in zip(cids, no_ref, strict=True) if n],
        name=qstr[done[no_ref]],
    )

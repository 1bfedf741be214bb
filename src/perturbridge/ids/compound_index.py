"""Reference records, lookup index and query kinds of the compound resolver.

:func:`compound_structures` standardizes the structures of a ``compounds`` table once
(the store builder saves them as the ``compound_structures`` table); the rest turns
the reference tables into one record per reference compound (with its parent and
connectivity block), an index of lookup keys, and the ranked lookup keys of queries.
:class:`~perturbridge.ids.compounds.CompoundResolver` joins the two.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from ..errors import PerturbridgeError, SchemaError
from ._frames import int_objects, missing_as_none, none_where_not
from .chem import (
    INCHIKEY_PATTERN,
    STRUCTURE_COLUMNS,
    quiet_rdkit,
    standardize_smiles_many,
)
from .compound_ids import BRD_PATTERN, CAS_PATTERN, brd_prefix, is_valid_cas, normalize_brd
from .names import NAME_TIERS, name_key_table
from .tables import TABLE_COLUMNS

__all__ = [
    "MATCH_TYPES",
    "RESULT_COLUMNS",
    "SOURCE_PRIORITY",
    "CompoundResolverError",
    "MatchType",
    "compound_structures",
    "detect_kind",
]

logger = logging.getLogger(__name__)


class CompoundResolverError(PerturbridgeError, ValueError):
    """The reference tables or the queries given to the compound resolver are unusable."""


@dataclass(frozen=True)
class MatchType:
    """A way a query can match, with the confidence it carries."""

    name: str
    confidence: float
    description: str


def _match_types() -> dict[str, MatchType]:
    ids = [
        MatchType("structure", 1.0, "SMILES/InChI query, standardized (its own structure)"),
        MatchType("inchikey", 1.0, "InChIKey equal to a reference record's standard key"),
        MatchType("parent_inchikey", 0.97, "InChIKey equal to a reference parent key"),
        MatchType("exact_id", 0.98, "Broad id equal to a reference id (batch included)"),
        MatchType("brd_prefix", 0.95, "13-character Broad id (batch suffix ignored)"),
        MatchType("pubchem_cid", 0.95, "PubChem CID of reference records"),
        MatchType("cas", 0.9, "CAS number of reference records"),
        MatchType("connectivity", 0.85, "only the InChIKey connectivity block matched"),
        MatchType("input_inchikey", 0.8, "InChIKey not in the reference, reported as given"),
        MatchType("pubchem_online", 0.85, "found by the online PubChem resolver"),
        MatchType("multi_name", 0.0, "a multi-name cell whose names name different compounds"),
        MatchType("opsin", 0.8, "a systematic name parsed to a structure by OPSIN"),
    ]
    names = [MatchType(t.match_type, t.confidence, t.description) for t in NAME_TIERS]
    return {m.name: m for m in ids + names}


#: Match types and their confidences (a ``+majority`` suffix scales by the share).
MATCH_TYPES: Final[dict[str, MatchType]] = _match_types()

#: Preference among reference sources for the representative record and the name
#: (lower first; sources not listed come after these).
SOURCE_PRIORITY: Final[dict[str, int]] = {
    "user_compound_synonyms": 0,
    "lincs_compoundinfo": 1,
    "repurposing_samples": 2,
    "repurposing_drugs": 3,
    "lincs_pertinfo": 4,
    "pubchem_synonyms": 5,
    "pubchem_smiles": 6,
    "pubchem_inchikey": 7,
    "moabox_compounds": 8,
}
USER_SOURCE = "user_compound_synonyms"
_NAME_KINDS = frozenset({"name", "alias", "vendor_name", "user"})

#: Columns of :meth:`CompoundResolver.resolve`.
RESULT_COLUMNS: Final[tuple[str, ...]] = (
    "query",
    "kind",
    "status",
    "match_type",
    "confidence",
    "inchikey",
    "smiles",
    "parent_inchikey",
    "parent_smiles",
    "connectivity",
    "pubchem_cid",
    "name",
    "ref_source",
    "ref_id",
    "n_records",
    "n_parents",
    "candidates",
    "candidate_names",
    "candidate_sources",
    "matched_key",
    "error",
)

CID_PATTERN = re.compile(r"^(?:(?:pubchem[_ ]?)?cid[:\s]*|pubchem:\s*)?(\d{1,10})$", re.IGNORECASE)
_SMILES_CHARS = re.compile(r"^[A-Za-z0-9@+\-\[\]\(\)=#$%/\\.:*~]+$")
_SMILES_HINT = re.compile(r"[=#\[\]@()/\\]|[cnos]\d")
_SMILES_SURE = re.compile(r"[=#@]")
_CXSMILES_TAIL = re.compile(r"\s+\|[^|]*\|$")
KEY_SEP = "\x1f"


# --------------------------------------------------------------------------------------
# structures


def compound_structures(
    compounds: pd.DataFrame, *, n_jobs: int = 1, progress: bool = False
) -> pd.DataFrame:
    """Standardize every distinct structure of a ``compounds`` table.

    The store builder calls this once and saves the result as the ``compound_structures``
    table, so that resolvers built from the store skip RDKit entirely.

    Parameters
    ----------
    compounds
        A ``compounds`` table (contract of :mod:`perturbridge.ids.tables`); an extra
        ``inchi`` column is used where ``smiles`` is missing.
    n_jobs
        Worker processes for RDKit.
    progress
        Show a progress bar.

    Returns
    -------
    One row per distinct input structure, columns
    :data:`~perturbridge.ids.chem.STRUCTURE_COLUMNS`: ``smiles`` (the input string as
    it appears in ``compounds.smiles``, or the ``compounds.inchi`` string), ``inchikey``,
    ``canonical_smiles``, ``parent_smiles``, ``parent_inchikey``, ``connectivity``,
    ``error`` (missing unless the structure could not be standardized).
    """
    check_columns(compounds, ("smiles",), "compounds")
    inputs = _structure_inputs(compounds)
    uniques = pd.unique(inputs.dropna().to_numpy())
    out = standardize_smiles_many(list(uniques), n_jobs=n_jobs, progress=progress)
    return out.reset_index(drop=True)


def _structure_inputs(compounds: pd.DataFrame) -> pd.Series:
    smiles = compounds["smiles"].astype(object)
    smiles = none_where_not(smiles, _mask(smiles, lambda v: isinstance(v, str) and bool(v.strip())))
    if "inchi" in compounds.columns:
        inchi = compounds["inchi"].astype(object)
        inchi = inchi.where(_mask(inchi, lambda v: isinstance(v, str) and v.startswith("InChI=")))
        smiles = smiles.where(smiles.notna(), inchi)
    return missing_as_none(smiles)


def _mask(values: pd.Series, test: Callable[[Any], bool]) -> np.ndarray:
    """A boolean array of ``test`` over the values (safe on empty Series)."""
    return np.fromiter((bool(test(v)) for v in values), dtype=bool, count=len(values))


def check_columns(df: pd.DataFrame, columns: Sequence[str], table: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected the {table} table as a pandas DataFrame, found {type(df)}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SchemaError(
            missing[0],
            f"the {table} table lacks the columns {missing}",
            list(df.columns)[:12],
            where=table,
        )


# --------------------------------------------------------------------------------------
# query kinds


def detect_kind(query: object) -> str:
    """The kind of one query: ``inchikey``, ``inchi``, ``brd``, ``cas``, ``cid``,
    ``smiles``, ``name`` or ``missing``.

    Pure digits (optionally ``CID:``-prefixed) are a PubChem CID; a CAS number needs a
    correct check digit; a SMILES has no space, only SMILES characters, and either
    ``=``, ``#`` or ``@`` (then it is a SMILES even if it does not parse, so that the
    error is reported) or another SMILES-looking character (``[]()/\\`` or an aromatic
    atom followed by a ring digit) and parses.

    Examples
    --------
    >>> [detect_kind(q) for q in ["aspirin", "50-78-2", "CID 2244", "CC(=O)Oc1ccccc1C(=O)O"]]
    ['name', 'cas', 'cid', 'smiles']
    """
    if not isinstance(query, str) or not query.strip():
        return "missing"
    q = query.strip()
    if INCHIKEY_PATTERN.match(q):
        return "inchikey"
    if q.startswith("InChI="):
        return "inchi"
    if BRD_PATTERN.match(q):
        return "brd"
    if CAS_PATTERN.match(q) and is_valid_cas(q):
        return "cas"
    if CID_PATTERN.match(q):
        return "cid"
    core = _CXSMILES_TAIL.sub("", q)  # "SMILES |c:9,t:7|" (CXSMILES extensions)
    if " " not in core and _SMILES_CHARS.match(core) and _SMILES_HINT.search(core):
        if _SMILES_SURE.search(core):
            return "smiles"  # '=', '#' or '@' outside names: a SMILES, parsed or not
        from rdkit import Chem

        with quiet_rdkit():
            if Chem.MolFromSmiles(q) is not None:
                return "smiles"
    return "name"


# --------------------------------------------------------------------------------------
# construction helpers


def reference_records(
    compounds: pd.DataFrame,
    structures: pd.DataFrame | None,
    *,
    n_jobs: int,
    progress: bool,
) -> pd.DataFrame:
    """The reference records with standardized structure columns and a block code."""
    cols = list(TABLE_COLUMNS["compounds"]) + (["inchi"] if "inchi" in compounds.columns else [])
    rec = compounds[cols].copy().reset_index(drop=True)
    for c in ("ref_source", "ref_id", "name", "smiles", "inchikey", "cas"):
        rec[c] = missing_as_none(rec[c])
    rec["pubchem_cid"] = pd.to_numeric(rec["pubchem_cid"], errors="coerce").astype("Int64")
    rec["inchikey"] = rec["inchikey"].map(
        lambda v: v[9:] if isinstance(v, str) and v.startswith("InChIKey=") else v
    )
    rec = rec.rename(columns={"inchikey": "given_inchikey"})
    inputs = _structure_inputs(rec)
    needed = pd.unique(inputs.dropna().to_numpy())
    table: pd.DataFrame
    if structures is not None:
        required = [c for c in STRUCTURE_COLUMNS if c != "tautomer_connectivity"]
        check_columns(structures, required, "compound_structures")
        table = structures.reindex(columns=list(STRUCTURE_COLUMNS)).drop_duplicates("smiles")
        table["tautomer_connectivity"] = table["tautomer_connectivity"].fillna(
            table["connectivity"]
        )
        lacking = needed[~pd.Index(needed).isin(table["smiles"].dropna())]
        if lacking.size:
            logger.info(
                "standardizing %d structures missing from compound_structures", lacking.size
            )
            extra = standardize_smiles_many(list(lacking), n_jobs=n_jobs, progress=progress)
            table = pd.concat([table, extra], ignore_index=True)
    else:
        table = standardize_smiles_many(list(needed), n_jobs=n_jobs, progress=progress)
    table = table.set_index("smiles")
    joined = table.reindex(inputs.to_numpy())
    rec["inchikey"] = joined["inchikey"].to_numpy()
    rec["canonical_smiles"] = joined["canonical_smiles"].to_numpy()
    rec["parent_inchikey"] = joined["parent_inchikey"].to_numpy()
    rec["parent_smiles"] = joined["parent_smiles"].to_numpy()
    rec["connectivity"] = joined["connectivity"].to_numpy()
    rec["tautomer_connectivity"] = joined["tautomer_connectivity"].to_numpy()
    rec["structure_error"] = joined["error"].to_numpy()
    rec["structure_from"] = ["smiles" if isinstance(c, str) else None for c in rec["connectivity"]]
    rec = rec.astype(
        {
            c: object
            for c in (
                "inchikey",
                "canonical_smiles",
                "parent_inchikey",
                "parent_smiles",
                "connectivity",
            )
        }
    )

    # a given InChIKey without a usable structure: borrow from a record with that key,
    # else keep the key itself (its block stands for the compound, parent unknown)
    given = rec["given_inchikey"].map(
        lambda v: isinstance(v, str) and INCHIKEY_PATTERN.match(v) is not None
    )
    no_struct = rec["connectivity"].isna() & given
    if no_struct.any():
        donors = rec[rec["connectivity"].notna()].drop_duplicates("inchikey").set_index("inchikey")
        gk = rec.loc[no_struct, "given_inchikey"]
        found = gk.isin(donors.index)
        for c in (
            "canonical_smiles",
            "parent_inchikey",
            "parent_smiles",
            "connectivity",
            "tautomer_connectivity",
        ):
            rec.loc[gk.index[found], c] = donors[c].reindex(gk[found]).to_numpy()
        rec.loc[gk.index[found], "inchikey"] = gk[found].to_numpy()
        rec.loc[gk.index[found], "structure_from"] = "inchikey"
        rest = gk.index[~found]
        rec.loc[rest, "inchikey"] = gk[~found].to_numpy()
        rec.loc[rest, "connectivity"] = gk[~found].str[:14].to_numpy()
        # the tautomer block of a structured record with that connectivity, if any
        structured = rec[rec["structure_from"].notna() & rec["connectivity"].notna()]
        taut = structured.drop_duplicates("connectivity").set_index("connectivity")
        block = gk[~found].str[:14]
        known = taut["tautomer_connectivity"].to_dict()
        rec.loc[rest, "tautomer_connectivity"] = [known.get(b, b) for b in block]
        rec.loc[rest, "structure_from"] = "inchikey_only"
    rec["block"] = pd.factorize(rec["tautomer_connectivity"], use_na_sentinel=True)[0]
    rec["block"] = rec["block"].astype(np.int64)
    rec["prio"] = (
        rec["ref_source"].map(SOURCE_PRIORITY).fillna(len(SOURCE_PRIORITY)).astype(np.int64)
    )
    n_err = int(rec["structure_error"].notna().sum())
    if n_err:
        logger.info("%d reference records have a structure RDKit could not read", n_err)
    return rec


def structure_donors(structured: pd.DataFrame) -> dict[int, int]:
    """For each block: the record whose structure stands for it (most common parent)."""
    s = structured.assign(n=structured.groupby("parent_inchikey")["ref_id"].transform("size"))
    s = s.sort_values(["block", "n", "prio"], ascending=[True, False, True])
    first = s.drop_duplicates("block")
    return dict(zip(first["block"].to_numpy(), first.index.to_numpy(), strict=True))


#: Columns of :func:`parent_table`.
PARENT_COLUMNS: Final[tuple[str, ...]] = (
    "parent_inchikey",
    "name",
    "pubchem_cid",
    "ref_source",
    "ref_id",
)


def parent_table(parents: pd.DataFrame) -> pd.DataFrame:
    """Per parent InChIKey: preferred name, most frequent CID, a representative id.

    ``parents`` are reference records with a ``parent_inchikey``; returns one row per
    parent key with :data:`PARENT_COLUMNS` (``pubchem_cid`` as ``Int64``).
    """
    if parents.empty:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in PARENT_COLUMNS}).astype(
            {"pubchem_cid": "Int64"}
        )
    p = parents.assign(
        is_brd=_mask(
            parents["name"], lambda v: not isinstance(v, str) or bool(BRD_PATTERN.match(v))
        ),
    )
    p = p.sort_values(["parent_inchikey", "is_brd", "prio"], kind="stable")
    first = p.drop_duplicates("parent_inchikey").set_index("parent_inchikey")
    cid = (
        p[p["pubchem_cid"].notna()]
        .groupby(["parent_inchikey", "pubchem_cid"])
        .size()
        .rename("n")
        .reset_index()
        .sort_values(["parent_inchikey", "n", "pubchem_cid"], ascending=[True, False, True])
        .drop_duplicates("parent_inchikey")
        .set_index("parent_inchikey")["pubchem_cid"]
    )
    names = first["name"].astype(object)
    return pd.DataFrame(
        {
            "parent_inchikey": first.index.to_numpy(dtype=object),
            "name": none_where_not(names, _mask(names, lambda v: isinstance(v, str))).to_numpy(),
            "pubchem_cid": pd.array(cid.reindex(first.index).to_numpy(), dtype="Int64"),
            "ref_source": first["ref_source"].to_numpy(dtype=object),
            "ref_id": first["ref_id"].to_numpy(dtype=object),
        }
    )


class ParentInfo:
    """A :func:`parent_table` looked up by parent InChIKey: ``get(key)`` gives its other
    columns as a dict (CID an int) or ``None``. Only the key → row map is built up
    front (a dict of 30,000 rows of dicts took 0.2 s of every store load)."""

    def __init__(self, table: pd.DataFrame) -> None:
        keys = table["parent_inchikey"].to_numpy(dtype=object)
        self._row = dict(zip(keys.tolist(), range(len(keys)), strict=True))
        self._name = table["name"].to_numpy(dtype=object)
        self._cid = int_objects(table["pubchem_cid"])
        self._source = table["ref_source"].to_numpy(dtype=object)
        self._ref_id = table["ref_id"].to_numpy(dtype=object)

    def __len__(self) -> int:
        return len(self._row)

    def get(self, key: str) -> dict[str, Any] | None:
        i = self._row.get(key)
        if i is None:
            return None
        name = self._name[i]
        return {
            "name": name if isinstance(name, str) else None,
            "pubchem_cid": self._cid[i],
            "ref_source": self._source[i],
            "ref_id": self._ref_id[i],
        }


def parent_info(table: pd.DataFrame) -> ParentInfo:
    """A :func:`parent_table` as a lookup: parent InChIKey → its other columns."""
    return ParentInfo(table)


NAME_KEY_COLUMNS: Final[tuple[str, ...]] = ("synonym", "rank", "nkey", "alt")


def name_key_rows(
    names: Sequence[str] | np.ndarray, known: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The name keys of distinct ``names`` (columns :data:`NAME_KEY_COLUMNS`).

    ``known`` is a precomputed table of the same columns (the store's
    ``compound_name_keys``): names it has take their keys from it, the others are
    computed with :func:`~perturbridge.ids.names.name_key_table`.
    """
    uniq = np.asarray(pd.unique(np.asarray(names, dtype=object)), dtype=object)
    parts = []
    if known is not None and len(known):
        have = known[known["synonym"].isin(uniq).to_numpy()]
        parts.append(have[list(NAME_KEY_COLUMNS)])
        uniq = uniq[~pd.Index(uniq).isin(pd.unique(have["synonym"]))]
    table = name_key_table(list(uniq))
    parts.append(
        pd.DataFrame(
            {
                "synonym": uniq[table["i"].to_numpy()],
                "rank": table["tier"].to_numpy(),
                "nkey": table["key"].to_numpy(),
                "alt": table["alternative"].to_numpy(),
            }
        )
    )
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return out.astype({"rank": np.int64, "alt": bool})


def reference_names(records: pd.DataFrame, synonyms: pd.DataFrame) -> pd.DataFrame:
    """``rec``, ``synonym``: the names of the records (name-kind synonyms and own names).

    ``records`` needs ``ref_source``, ``ref_id``, ``name`` (a ``compounds`` table will
    do); ``rec`` is the row position in it. Synonyms of no record are left out.
    """
    rid = pd.Series(
        np.arange(len(records)),
        index=pd.MultiIndex.from_frame(records[["ref_source", "ref_id"]].astype(str)),
    )
    rid = rid[~rid.index.duplicated()]
    syn = synonyms[synonyms["synonym"].notna() & synonyms["kind"].isin(_NAME_KINDS)]
    rec = rid.reindex(pd.MultiIndex.from_frame(syn[["ref_source", "ref_id"]].astype(str)))
    ok = rec.notna().to_numpy()
    names = pd.concat(
        [
            pd.DataFrame(
                {
                    "rec": rec.to_numpy()[ok].astype(np.int64),
                    "synonym": syn["synonym"].astype(str).to_numpy()[ok],
                }
            ),
            pd.DataFrame({"rec": np.arange(len(records)), "synonym": records["name"].to_numpy()}),
        ],
        ignore_index=True,
    )
    names = names[_mask(names["synonym"], lambda v: isinstance(v, str) and bool(v.strip()))]
    return names.drop_duplicates()


def build_index(
    records: pd.DataFrame, synonyms: pd.DataFrame, *, name_keys: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The key → record index, and the name-key rows (to link structureless records).

    ``name_keys``: precomputed keys of names (see :func:`name_key_rows`).
    """
    rid = pd.Series(
        np.arange(len(records)),
        index=pd.MultiIndex.from_frame(records[["ref_source", "ref_id"]].astype(str)),
    )
    rid = rid[~rid.index.duplicated()]
    syn = synonyms[list(TABLE_COLUMNS["compound_synonyms"])].copy()
    syn = syn[syn["synonym"].notna()]
    syn["rec"] = rid.reindex(
        pd.MultiIndex.from_frame(syn[["ref_source", "ref_id"]].astype(str))
    ).to_numpy()
    orphans = syn["rec"].isna()
    if orphans.any():
        logger.info(
            "%d synonyms name no record of the compounds table; ignored", int(orphans.sum())
        )
    syn = syn[~orphans].astype({"rec": np.int64})
    syn["synonym"] = syn["synonym"].astype(str)

    # names: synonyms of name kinds plus every record's own name
    names = reference_names(records, synonyms)
    keys = name_key_rows(pd.unique(names["synonym"].to_numpy()), name_keys)
    name_rows = names.merge(keys, on="synonym")
    name_rows["key"] = name_rows["rank"].astype(str) + KEY_SEP + name_rows["nkey"]
    name_rows = name_rows[["rec", "rank", "key", "alt"]].drop_duplicates(["rec", "key"])

    # identifiers
    parts = [name_rows[["key", "rec"]]]

    def add(prefix: str, values: pd.Series, recs: pd.Series | pd.Index | np.ndarray) -> None:
        df = pd.DataFrame({"v": np.asarray(values, dtype=object), "rec": np.asarray(recs)})
        df = df[np.array([isinstance(v, str) and bool(v) for v in df["v"]], dtype=bool)]
        parts.append(pd.DataFrame({"key": prefix + KEY_SEP + df["v"], "rec": df["rec"]}))

    brd = syn[syn["kind"] == "brd"]
    add("brd", brd["synonym"].map(lambda v: normalize_brd(v) or v.upper()), brd["rec"])
    ref_brd = _mask(records["ref_id"], lambda v: isinstance(v, str) and brd_prefix(v) is not None)
    add("brd", records.loc[ref_brd, "ref_id"].str.upper(), records.index[ref_brd])
    add("brd", records.loc[ref_brd, "ref_id"].map(brd_prefix), records.index[ref_brd])
    cas = syn[syn["kind"] == "cas"]
    add("cas", cas["synonym"].str.strip(), cas["rec"])
    add("cas", records["cas"], records.index)
    cid = syn[syn["kind"] == "cid"]
    add("cid", cid["synonym"].str.strip().str.replace(r"\.0$", "", regex=True), cid["rec"])
    has_cid = records["pubchem_cid"].notna()
    add(
        "cid",
        records.loc[has_cid, "pubchem_cid"].astype("int64").astype(str),
        records.index[has_cid],
    )
    add("ik", records["inchikey"], records.index)
    add("ik", records["given_inchikey"], records.index)
    add("pik", records["parent_inchikey"], records.index)
    add("conn", records["connectivity"], records.index)
    index = pd.concat(parts, ignore_index=True).drop_duplicates()
    index["rec"] = index["rec"].astype(np.int64)
    return index.reset_index(drop=True), name_rows.reset_index(drop=True)


# --------------------------------------------------------------------------------------
# query helpers


def query_keys(
    qstr: np.ndarray, kinds: np.ndarray, *, name_keys: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The ranked lookup keys of every query (``qid``, ``rank``, ``key``, ``alt``, ``mtype``).

    ``name_keys``: precomputed keys of names (:func:`name_key_rows`); name queries it
    covers take their keys from it (the same rows, in the same order).
    """
    rows: list[tuple[int, int, str, bool, str]] = []
    is_name = np.flatnonzero(kinds == "name")
    tiers = np.array([t.match_type for t in NAME_TIERS], dtype=object)
    if name_keys is None:
        table = name_key_table([qstr[i] for i in is_name])
        qid, rank = is_name[table["i"].to_numpy()], table["tier"].to_numpy()
        nkey, alt = table["key"].to_numpy(), table["alternative"].to_numpy()
    else:
        asked = pd.DataFrame({"qid": is_name, "synonym": qstr[is_name]})
        table = asked.merge(name_key_rows(asked["synonym"].to_numpy(), name_keys), on="synonym")
        qid, rank = table["qid"].to_numpy(), table["rank"].to_numpy()
        nkey, alt = table["nkey"].to_numpy(), table["alt"].to_numpy()
    names = pd.DataFrame(
        {
            "qid": qid,
            "rank": rank,
            "key": rank.astype(str).astype(object) + KEY_SEP + nkey.astype(object),
            "alt": alt,
            "mtype": tiers[rank],
        }
    )
    for i, (q, k) in enumerate(zip(qstr, kinds, strict=True)):
        if k == "name":
            continue
        if k == "brd":
            full = normalize_brd(q) or q.upper()
            rows.append((i, 0, f"brd{KEY_SEP}{full}", False, "exact_id"))
            prefix = brd_prefix(q)
            if prefix and prefix != full:
                rows.append((i, 1, f"brd{KEY_SEP}{prefix}", False, "brd_prefix"))
        elif k == "cas":
            rows.append((i, 0, f"cas{KEY_SEP}{q}", False, "cas"))
        elif k == "cid":
            m = CID_PATTERN.match(q)
            if m:
                rows.append((i, 0, f"cid{KEY_SEP}{int(m.group(1))}", False, "pubchem_cid"))
        elif k == "inchikey":
            m = INCHIKEY_PATTERN.match(q)
            if m:
                key = m.group(1)
                rows.append((i, 0, f"ik{KEY_SEP}{key}", False, "inchikey"))
                rows.append((i, 1, f"pik{KEY_SEP}{key}", False, "parent_inchikey"))
                rows.append((i, 2, f"conn{KEY_SEP}{key[:14]}", False, "connectivity"))
    ids = pd.DataFrame(rows, columns=["qid", "rank", "key", "alt", "mtype"])
    return pd.concat([names, ids], ignore_index=True) if len(ids) else names


def empty_hits() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "qid": pd.Series([], dtype=np.int64),
            "rank": pd.Series([], dtype=np.int64),
            "key": pd.Series([], dtype=object),
            "alt": pd.Series([], dtype=bool),
            "mtype": pd.Series([], dtype=object),
            "rec": pd.Series([], dtype=np.int64),
            "block": pd.Series([], dtype=np.int64),
            "kgrp": pd.Series([], dtype=object),
        }
    )


class ResultRows:
    """The result columns of the distinct queries, as object arrays filled by row sets."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.cols: dict[str, np.ndarray] = {
            c: np.full(n, None, dtype=object) for c in RESULT_COLUMNS
        }
        self.cols["status"][:] = "unresolved"
        self.cols["confidence"] = np.zeros(n)
        self.cols["n_records"] = np.zeros(n, dtype=np.int64)
        self.cols["n_parents"] = np.zeros(n, dtype=np.int64)

    def set(self, rows: np.ndarray, **values: Any) -> None:
        if len(rows) == 0:
            return
        for col, value in values.items():
            self.cols[col][rows] = value

    def frame(self) -> pd.DataFrame:
        out = pd.DataFrame({c: self.cols[c] for c in RESULT_COLUMNS})
        out["pubchem_cid"] = pd.array(
            [None if v is None or pd.isna(v) else int(v) for v in self.cols["pubchem_cid"]],
            dtype="Int64",
        )
        return out

"""Compound resolution: any spelling or identifier → one canonical structure record.

:class:`CompoundResolver` is built from the reference tables of
:mod:`perturbridge.ids.tables` (``compounds``, ``compound_synonyms`` and the derived
``compound_structures`` of :func:`compound_structures`) and resolves names, aliases,
vendor and salt spellings, CAS numbers, Broad ids (with or without batch suffix),
SMILES, InChI, InChIKeys and PubChem CIDs, detecting the kind of each input.

How a query is resolved
-----------------------
Every query becomes a ranked list of lookup keys (a name: the tiers of
:mod:`perturbridge.ids.names`; a Broad id: the full id, then its 13-character prefix;
an InChIKey: the full key, the parent key, the connectivity block). All keys of all
queries are joined at once with an index of reference keys (a pandas merge, no Python
loop per query), and the strongest rank with a hit decides. The reference records hit
at that rank are grouped by their **parent connectivity block** (the first 14
characters of the parent InChIKey: salts, solvates, charge states and stereo variants
of one compound share it):

- one block → ``resolved``; several blocks → ``ambiguous`` with the candidates listed,
  never the first hit. When a name yields several keys at the deciding rank (the main
  name and names given in parentheses), a block must be hit by every key that hits
  something (``Navitoclax (ABT-263)``: both keys must agree).
- **Majority rule** (``majority``, default 0.65): the candidates of a query are
  weighed source by source: each reference source that hit the query splits one vote
  over the blocks in proportion to its records. A block is chosen when (a) at least
  two sources hit the query, (b) the block is the most frequent block (ties allowed)
  in every one of them, and (c) its mean share of the votes is at least ``majority``.
  The match type then gets a ``+majority`` suffix, the confidence is multiplied by the
  share, ``error`` says so and ``n_records`` counts all hit records. This absorbs
  curation errors such as LINCS records named ``dexamethasone`` that carry the
  structure of dexamethasone acetate (every source has mostly dexamethasone) without
  deciding true conflicts (a source whose records say otherwise blocks it). It never
  applies when the keys of a query disagree (a name and its parenthesized
  alternative pointing at different compounds). ``majority=None`` turns it off.
- **User synonyms win**: when a hit at the deciding rank comes from a user synonym
  table (source ``user_compound_synonyms``), the other hits of that rank are ignored.

What is reported
----------------
``inchikey``/``smiles``
    The standard InChIKey and canonical SMILES of one **representative reference
    record**, as recorded (a salt form when that record is a salt). Among the records
    hit in the chosen block, the representative has the most common parent InChIKey
    (ties: a parent with a PubChem CID, then the source priority), and among the
    records with that parent, the one of the highest-priority source. For SMILES and
    InChI queries they are the query's own structure.
``parent_inchikey``/``parent_smiles``/``connectivity``
    The parent (salt-stripped, neutralized) of that record. **Use ``parent_inchikey``
    as the compound identity** (``compound_inchikey`` of Samples): salts and hydrates
    of one compound get the same value. ``n_parents`` counts the distinct parent
    InChIKeys among the hit records of the block (more than one: stereo or isotope
    variants were collapsed; the most common was reported).
``pubchem_cid``, ``name``
    The most frequent CID and the preferred name over all reference records with the
    reported parent InChIKey (names that are Broad ids are used last).

Examples
--------
>>> import pandas as pd
>>> compounds = pd.DataFrame({
...     "ref_source": ["demo"] * 2, "ref_id": ["BRD-K92723993", "BRD-K11111111"],
...     "name": ["imatinib", "aspirin"], "inchikey": [None, None], "cas": [None, None],
...     "smiles": ["Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1",
...                "CC(=O)Oc1ccccc1C(=O)O"],
...     "pubchem_cid": pd.array([5291, 2244], dtype="Int64")})
>>> synonyms = pd.DataFrame({"ref_source": ["demo"], "ref_id": ["BRD-K92723993"],
...                          "synonym": ["Gleevec"], "kind": ["alias"]})
>>> res = CompoundResolver.from_tables(compounds=compounds, compound_synonyms=synonyms)
>>> out = res.resolve(["Imatinib Mesylate", "gleevec", "2244", "BRD-K92723993-001-05-3"])
>>> out[["status", "match_type", "connectivity"]].to_numpy().tolist()
[['resolved', 'desalted', 'KTUFNOKKBVMGRW'], ['resolved', 'synonym', 'KTUFNOKKBVMGRW'],
 ['resolved', 'pubchem_cid', 'BSYNRYMUTXBXSQ'], ['resolved', 'brd_prefix', 'KTUFNOKKBVMGRW']]
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import numpy as np
import pandas as pd

from ..errors import PerturbridgeError, SchemaError
from .chem import (
    INCHIKEY_PATTERN,
    STRUCTURE_COLUMNS,
    quiet_rdkit,
    standardize_smiles_many,
)
from .names import NAME_TIERS, name_key_table
from .parsers_compounds import BRD_PATTERN, CAS_PATTERN, brd_prefix, is_valid_cas, normalize_brd
from .tables import TABLE_COLUMNS

__all__ = [
    "MATCH_TYPES",
    "RESULT_COLUMNS",
    "SOURCE_PRIORITY",
    "CompoundResolver",
    "CompoundResolverError",
    "OfflineError",
    "PubChemClient",
    "PubChemError",
    "compound_structures",
    "detect_kind",
]

logger = logging.getLogger(__name__)

QueryKind = Literal["auto", "name", "smiles", "inchi", "inchikey", "brd", "cas", "cid"]
_KINDS: Final[tuple[str, ...]] = ("name", "smiles", "inchi", "inchikey", "brd", "cas", "cid")


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
_USER_SOURCE = "user_compound_synonyms"
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
    "matched_key",
    "error",
)

_CID = re.compile(r"^(?:(?:pubchem[_ ]?)?cid[:\s]*|pubchem:\s*)?(\d{1,10})$", re.IGNORECASE)
_SMILES_CHARS = re.compile(r"^[A-Za-z0-9@+\-\[\]\(\)=#$%/\\.:*~]+$")
_SMILES_HINT = re.compile(r"[=#\[\]@()/\\]|[cnos]\d")
_SMILES_SURE = re.compile(r"[=#@]")
_CXSMILES_TAIL = re.compile(r"\s+\|[^|]*\|$")
_SEP = "\x1f"


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
    _check_columns(compounds, ("smiles",), "compounds")
    inputs = _structure_inputs(compounds)
    uniques = pd.unique(inputs.dropna().to_numpy())
    out = standardize_smiles_many(list(uniques), n_jobs=n_jobs, progress=progress)
    return out.reset_index(drop=True)


def _structure_inputs(compounds: pd.DataFrame) -> pd.Series:
    smiles = compounds["smiles"].astype(object)
    smiles = smiles.where(_mask(smiles, lambda v: isinstance(v, str) and bool(v.strip())), None)
    if "inchi" in compounds.columns:
        inchi = compounds["inchi"].astype(object)
        inchi = inchi.where(_mask(inchi, lambda v: isinstance(v, str) and v.startswith("InChI=")))
        smiles = smiles.where(smiles.notna(), inchi)
    return smiles.where(smiles.notna(), None)


def _mask(values: pd.Series, test: Callable[[Any], bool]) -> np.ndarray:
    """A boolean array of ``test`` over the values (safe on empty Series)."""
    return np.fromiter((bool(test(v)) for v in values), dtype=bool, count=len(values))


def _check_columns(df: pd.DataFrame, columns: Sequence[str], table: str) -> None:
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
    if _CID.match(q):
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
# the resolver


class _Store(Protocol):
    def table(self, name: str) -> pd.DataFrame: ...


class CompoundResolver:
    """Resolve compound names and identifiers against reference tables, offline.

    Build it with :meth:`from_tables` or :meth:`from_store`; resolve with
    :meth:`resolve`. Construction precomputes the key index (a few seconds for 50,000
    compounds when the ``compound_structures`` table is given; RDKit standardization
    otherwise adds about a millisecond per distinct structure).
    """

    def __init__(self, records: pd.DataFrame, index: pd.DataFrame, *, majority: float | None):
        self._records = records
        self._index = index
        self._majority = majority
        self._block = records["block"].to_numpy()
        self._prio = records["prio"].to_numpy()
        self._has_cid = records["pubchem_cid"].notna().to_numpy()
        self._col: dict[str, np.ndarray] = {}
        self._refresh_columns()
        self._user = (records["ref_source"] == _USER_SOURCE).to_numpy()
        self._source_code = pd.factorize(records["ref_source"])[0]
        parents = records[records["parent_inchikey"].notna()]
        self._parent_info = _parent_info(parents)

    def _refresh_columns(self) -> None:
        rec = self._records
        for c in (
            "ref_source",
            "ref_id",
            "name",
            "inchikey",
            "canonical_smiles",
            "parent_inchikey",
            "parent_smiles",
            "connectivity",
        ):
            self._col[c] = rec[c].to_numpy(dtype=object)
        self._col["pubchem_cid"] = np.array(
            [None if pd.isna(v) else int(v) for v in rec["pubchem_cid"]], dtype=object
        )

    # ----------------------------------------------------------------------------------
    # construction

    @classmethod
    def from_tables(
        cls,
        *,
        compounds: pd.DataFrame,
        compound_synonyms: pd.DataFrame,
        structures: pd.DataFrame | None = None,
        majority: float | None = 0.65,
        n_jobs: int = 1,
        progress: bool = False,
    ) -> CompoundResolver:
        """A resolver from ``compounds`` and ``compound_synonyms`` tables.

        Parameters
        ----------
        compounds, compound_synonyms
            Tables in the contract of :mod:`perturbridge.ids.tables` (several sources
            concatenated).
        structures
            The ``compound_structures`` table of :func:`compound_structures`; computed
            here when missing (or for the structures it lacks).
        majority
            The share of support above which one of several candidate blocks is chosen
            (see the module docstring); ``None`` reports every conflict as ambiguous.
        n_jobs, progress
            For the RDKit standardization, when it runs.

        Raises
        ------
        SchemaError
            If a table lacks contract columns.
        """
        _check_columns(compounds, TABLE_COLUMNS["compounds"], "compounds")
        _check_columns(compound_synonyms, TABLE_COLUMNS["compound_synonyms"], "compound_synonyms")
        if majority is not None and not 0.5 < majority <= 1.0:
            raise ValueError(f"expected majority in (0.5, 1] or None, found {majority}")
        records = _records(compounds, structures, n_jobs=n_jobs, progress=progress)
        index, name_rows = _build_index(records, compound_synonyms)
        resolver = cls(records, index, majority=majority)
        resolver._link_structureless(name_rows)
        return resolver

    @classmethod
    def from_store(cls, store: _Store, **kwargs: Any) -> CompoundResolver:
        """A resolver from a reference store (anything with ``.table(name)``).

        Uses the store's ``compound_structures`` table when it has one. Keyword
        arguments go to :meth:`from_tables`.
        """
        try:
            structures: pd.DataFrame | None = store.table("compound_structures")
        except (KeyError, FileNotFoundError, PerturbridgeError):
            structures = None
        return cls.from_tables(
            compounds=store.table("compounds"),
            compound_synonyms=store.table("compound_synonyms"),
            structures=structures,
            **kwargs,
        )

    def _link_structureless(self, name_rows: pd.DataFrame) -> None:
        """Give records without structure the one their CID or exact name resolves to."""
        rec = self._records
        todo = np.flatnonzero(self._block < 0)
        if todo.size == 0:
            return
        # by PubChem CID
        cid = rec["pubchem_cid"]
        has = rec.index[(self._block >= 0) & cid.notna().to_numpy()]
        by_cid = (
            rec.loc[has, ["pubchem_cid", "block"]]
            .drop_duplicates()
            .groupby("pubchem_cid")["block"]
            .agg(["nunique", "first"])
        )
        block_of_cid = by_cid.loc[by_cid["nunique"] == 1, "first"].astype(np.int64).to_dict()
        donor_of_block = _donors(rec[self._block >= 0])
        links: list[tuple[int, int, str]] = []
        cids = rec.loc[todo, "pubchem_cid"]
        for i, c in zip(todo, cids, strict=True):
            if pd.notna(c) and c in block_of_cid:
                links.append((int(i), donor_of_block[block_of_cid[c]], "pubchem_cid"))
        self._copy_structures(links)
        # by exact or normalized name (tiers 0-1)
        todo = np.flatnonzero(self._block < 0)
        rows = name_rows[np.isin(name_rows["rec"].to_numpy(), todo)]
        rows = rows[rows["rank"] <= 1]
        by_name: list[tuple[int, int, str]] = []
        if len(rows):
            q = rows.rename(columns={"rec": "qid"})[["qid", "rank", "key", "alt"]]
            hits = self._hits(q.assign(mtype="synonym"))
            chosen = self._decide(hits)
            by_name = [
                (int(qid), donor_of_block[block], "name")
                for qid, block in zip(chosen["qid"], chosen["block"], strict=True)
                if block >= 0
            ]
            self._copy_structures(by_name)
        self._parent_info = _parent_info(self._records[self._records["parent_inchikey"].notna()])
        self._refresh_columns()
        logger.info(
            "%d of %d records without structure linked to one through their CID or name",
            len(links) + len(by_name),
            todo.size + len(links),
        )

    def _copy_structures(self, links: list[tuple[int, int, str]]) -> None:
        if not links:
            return
        cols = [
            "inchikey",
            "canonical_smiles",
            "parent_inchikey",
            "parent_smiles",
            "connectivity",
            "tautomer_connectivity",
        ]
        rec = self._records
        target = np.array([t for t, _, _ in links], dtype=np.int64)
        donor = np.array([d for _, d, _ in links], dtype=np.int64)
        for c in cols:
            values = rec[c].to_numpy(copy=True)
            values[target] = values[donor]
            rec[c] = values
        how = rec["structure_from"].to_numpy(copy=True)
        how[target] = [h for _, _, h in links]
        rec["structure_from"] = how
        self._block[target] = self._block[donor]
        rec["block"] = self._block

    # ----------------------------------------------------------------------------------
    # properties

    @property
    def records(self) -> pd.DataFrame:
        """The reference records with their standardized structures (a copy)."""
        return self._records.drop(columns=["block", "prio"]).copy()

    @property
    def n_compounds(self) -> int:
        """Distinct parent connectivity blocks in the reference."""
        return int(np.unique(self._block[self._block >= 0]).size)

    def __repr__(self) -> str:
        return (
            f"CompoundResolver({len(self._records)} records, {self.n_compounds} compounds, "
            f"{len(self._index)} keys, majority={self._majority})"
        )

    # ----------------------------------------------------------------------------------
    # resolution

    def resolve(
        self,
        queries: Sequence[object] | pd.Series,
        *,
        kind: QueryKind | Sequence[str] = "auto",
        online: PubChemClient | None = None,
    ) -> pd.DataFrame:
        """Resolve many queries at once.

        Parameters
        ----------
        queries
            Names, synonyms, Broad ids, CAS numbers, PubChem CIDs, SMILES, InChI or
            InChIKeys, mixed freely. Missing values give ``status="unresolved"``.
        kind
            ``"auto"`` detects each query's kind (:func:`detect_kind`); a kind forces it
            for all queries; a sequence gives one kind (or ``"auto"``) per query.
        online
            A :class:`PubChemClient` to ask about names, CAS numbers, CIDs and Broad ids
            the reference leaves unresolved. ``None`` (the default) never touches the
            network.

        Returns
        -------
        One row per query, in order, indexed like ``queries`` when it is a Series, with
        :data:`RESULT_COLUMNS` (see the module docstring for what they mean).
        """
        series = (
            queries if isinstance(queries, pd.Series) else pd.Series(list(queries), dtype=object)
        )
        values = series.astype(object).to_numpy()
        kinds = self._kinds(values, kind)
        frame = pd.DataFrame({"query": values, "kind": kinds})
        frame["qstr"] = [v.strip() if isinstance(v, str) else None for v in values]
        uniq = frame.drop_duplicates(["qstr", "kind"]).reset_index(drop=True)
        uniq["qid"] = np.arange(len(uniq))
        result = self._resolve_unique(uniq)
        if online is not None:
            self._resolve_online(uniq, result, online)
        table = result.frame().drop(columns=["query", "kind"])
        table["qstr"] = uniq["qstr"].to_numpy()
        table["kind"] = uniq["kind"].to_numpy()
        out = frame.merge(table, on=["qstr", "kind"], how="left", validate="many_to_one")
        out.index = series.index
        return out[list(RESULT_COLUMNS)]

    def resolve_one(self, query: object, *, kind: QueryKind = "auto") -> dict[str, Any]:
        """Resolve one query; the row of :meth:`resolve` as a dict."""
        return dict(self.resolve([query], kind=kind).iloc[0])

    def _kinds(self, values: np.ndarray, kind: QueryKind | Sequence[str]) -> np.ndarray:
        if isinstance(kind, str):
            if kind != "auto" and kind not in _KINDS:
                raise ValueError(f"expected kind 'auto' or one of {list(_KINDS)}, found {kind!r}")
            per = np.full(len(values), kind, dtype=object)
        else:
            per = np.asarray(list(kind), dtype=object)
            if per.size != len(values):
                raise ValueError(
                    f"expected one kind per query ({len(values)}), found {per.size} kinds"
                )
            bad = sorted({k for k in per if k != "auto" and k not in _KINDS})
            if bad:
                raise ValueError(f"unknown query kinds {bad}; known: 'auto', {list(_KINDS)}")
        missing = np.array([not (isinstance(v, str) and v.strip()) for v in values], dtype=bool)
        auto = (per == "auto") & ~missing
        if auto.any():
            cache: dict[str, str] = {}
            for i in np.flatnonzero(auto):
                v = values[i]
                if v not in cache:
                    cache[v] = detect_kind(v)
                per[i] = cache[v]
        per[missing] = "missing"
        return per

    # the engine ------------------------------------------------------------------------

    def _resolve_unique(self, uniq: pd.DataFrame) -> _Result:
        kinds = uniq["kind"].to_numpy()
        qstr = uniq["qstr"].to_numpy()
        res = _Result(len(uniq))
        res.cols["query"][:] = qstr
        res.cols["kind"][:] = kinds

        # structures given directly
        is_struct = np.flatnonzero(np.isin(kinds, ["smiles", "inchi"]))
        if is_struct.size:
            self._fill_structures(res, is_struct, [str(qstr[i]) for i in is_struct])

        keys = _query_keys(qstr, kinds)
        hits = self._hits(keys)
        decided = self._decide(hits)
        self._fill_decided(res, decided, hits)

        # InChIKeys not in the reference: reported as given
        ik = np.flatnonzero((kinds == "inchikey") & (res.cols["status"] == "unresolved"))
        if ik.size:
            given = [INCHIKEY_PATTERN.match(str(qstr[i])) for i in ik]
            res.set(
                ik,
                status="resolved",
                match_type="input_inchikey",
                confidence=MATCH_TYPES["input_inchikey"].confidence,
                inchikey=[m.group(1) if m else None for m in given],
                error="not in the reference: parent unknown",
            )
        res.set(np.flatnonzero(kinds == "missing"), error="missing query")
        return res

    def _fill_structures(self, res: _Result, rows: np.ndarray, structures: list[str]) -> None:
        std = standardize_smiles_many(structures)
        ok = std["error"].isna().to_numpy()
        res.set(rows[~ok], error=std["error"].to_numpy()[~ok])
        good = rows[ok]
        if good.size == 0:
            return
        s = std[ok]
        parents = s["parent_inchikey"].to_numpy()
        info = [self._parent_info.get(str(p)) for p in parents]
        res.set(
            good,
            status="resolved",
            match_type="structure",
            confidence=1.0,
            inchikey=s["inchikey"].to_numpy(),
            smiles=s["canonical_smiles"].to_numpy(),
            parent_inchikey=parents,
            parent_smiles=s["parent_smiles"].to_numpy(),
            connectivity=s["connectivity"].to_numpy(),
            pubchem_cid=[i["pubchem_cid"] if i else None for i in info],
            name=[i["name"] if i else None for i in info],
            ref_source=[i["ref_source"] if i else None for i in info],
            ref_id=[i["ref_id"] if i else None for i in info],
        )

    def _hits(self, keys: pd.DataFrame) -> pd.DataFrame:
        """Reference records hit at each query's strongest rank with a hit."""
        if keys.empty:
            return _empty_hits()
        hits = keys.merge(self._index, on="key", how="inner", sort=False)
        if hits.empty:
            return _empty_hits()
        rec = hits["rec"].to_numpy()
        hits["block"] = self._block[rec]
        hits = hits[hits["block"].to_numpy() >= 0]
        if hits.empty:
            return _empty_hits()
        best = hits.groupby("qid", sort=False)["rank"].transform("min")
        hits = hits[hits["rank"].to_numpy() == best.to_numpy()]
        user = self._user[hits["rec"].to_numpy()]
        if user.any():
            any_user = pd.Series(user, index=hits.index).groupby(hits["qid"]).transform("any")
            hits = hits[user | ~any_user.to_numpy()]
        return hits.reset_index(drop=True)

    def _decide(self, hits: pd.DataFrame) -> pd.DataFrame:
        """Per query: the chosen block (or -1), the candidate blocks and the support share."""
        cols = ["qid", "block", "share", "majority", "candidates"]
        if hits.empty:
            return pd.DataFrame({c: [] for c in cols})
        kb = hits[["qid", "key", "block"]].drop_duplicates()
        n_keys = kb.groupby("qid")["key"].nunique()
        per_block = kb.groupby(["qid", "block"]).size().rename("k").reset_index()
        per_block["all_keys"] = per_block["k"].to_numpy() == per_block["qid"].map(n_keys).to_numpy()
        has_consensus = per_block.groupby("qid")["all_keys"].transform("any")
        cand = per_block[per_block["all_keys"] | ~has_consensus]
        n_cand = cand.groupby("qid")["block"].transform("size")

        single = cand[n_cand.to_numpy() == 1]
        out = pd.DataFrame(
            {
                "qid": single["qid"].to_numpy(),
                "block": single["block"].to_numpy(),
                "share": 1.0,
                "majority": False,
            }
        )
        multi = cand[n_cand.to_numpy() > 1]
        # keys that disagree (a name and its parenthesized alternative) stay ambiguous;
        # only a consensus shared by several blocks goes to the majority rule
        agreed = multi["all_keys"].to_numpy()
        if agreed.any():
            support = self._support(
                hits.merge(multi[agreed][["qid", "block"]], on=["qid", "block"])
            )
            out = pd.concat([out, support], ignore_index=True)
        conflict = pd.unique(multi.loc[~agreed, "qid"].to_numpy())
        if conflict.size:
            out = pd.concat(
                [
                    out,
                    pd.DataFrame({"qid": conflict, "block": -1, "share": 0.0, "majority": False}),
                ],
                ignore_index=True,
            )
        multi_blocks = cand[n_cand.to_numpy() > 1]
        by_q: dict[int, list[int]] = {}
        for q, b in zip(
            multi_blocks["qid"].to_numpy(), multi_blocks["block"].to_numpy(), strict=True
        ):
            by_q.setdefault(int(q), []).append(int(b))
        out["candidates"] = _objects([tuple(by_q.get(int(q), ())) for q in out["qid"]])
        return out

    def _support(self, hits: pd.DataFrame) -> pd.DataFrame:
        """Majority rule over the candidate blocks of ambiguous queries."""
        src = self._source_code[hits["rec"].to_numpy()]
        recs = pd.DataFrame(
            {
                "qid": hits["qid"].to_numpy(),
                "block": hits["block"].to_numpy(),
                "src": src,
                "rec": hits["rec"].to_numpy(),
            }
        ).drop_duplicates()
        n = recs.groupby(["qid", "src", "block"]).size().rename("n").reset_index()
        total = n.groupby(["qid", "src"])["n"].transform("sum")
        n["share"] = n["n"] / total
        # a block must be (one of) the most frequent in every source that hit the query
        n["top"] = n["n"] == n.groupby(["qid", "src"])["n"].transform("max")
        n_src = n.groupby("qid")["src"].nunique()
        per_block = n.groupby(["qid", "block"]).agg(
            share=("share", "sum"), top=("top", "sum"), n_src=("src", "nunique")
        )
        per_block = per_block.reset_index()
        per_block["n_src_q"] = per_block["qid"].map(n_src).to_numpy()
        per_block["share"] = per_block["share"] / per_block["n_src_q"]
        per_block = per_block.sort_values(["qid", "share"], ascending=[True, False])
        top = per_block.drop_duplicates("qid").set_index("qid")
        threshold = self._majority if self._majority is not None else np.inf
        ok = (
            (top["share"] >= threshold - 1e-9)
            & (top["top"] == top["n_src_q"])
            & (top["n_src_q"] >= 2)
        )
        return pd.DataFrame(
            {
                "qid": top.index.to_numpy(),
                "block": np.where(ok, top["block"], -1),
                "share": top["share"].to_numpy(),
                "majority": ok.to_numpy(),
            }
        )

    def _fill_decided(self, res: _Result, decided: pd.DataFrame, hits: pd.DataFrame) -> None:
        if decided.empty:
            return
        qid = decided["qid"].to_numpy().astype(np.int64)
        # match type and matched key: of the hits of each query
        first = hits.drop_duplicates("qid").set_index("qid")
        mtype = first["mtype"].reindex(qid).to_numpy()
        key = first["key"].reindex(qid).to_numpy()
        res.set(
            qid,
            matched_key=[str(k).split(_SEP, 1)[-1] for k in key],
            n_records=hits.groupby("qid")["rec"].nunique().reindex(qid).to_numpy(),
        )
        chosen = decided["block"].to_numpy() >= 0
        parent_col = self._col["parent_inchikey"]
        inchikey_col = self._col["inchikey"]

        # ambiguous: list the candidates (one representative per block)
        amb = qid[~chosen]
        if amb.size:
            rep = self._representatives(hits[hits["qid"].isin(amb)])
            rep_by = {
                (int(q), int(b)): int(r)
                for q, b, r in zip(rep["qid"], rep["block"], rep["rec"], strict=True)
            }
            keys_col: list[tuple[object, ...]] = []
            names_col: list[tuple[object, ...]] = []
            for q, blocks in zip(amb, decided["candidates"].to_numpy()[~chosen], strict=True):
                rs = [rep_by[(int(q), int(b))] for b in blocks if (int(q), int(b)) in rep_by]
                keys_col.append(tuple(parent_col[r] or inchikey_col[r] for r in rs))
                names_col.append(tuple(self._display_name(r) for r in rs))
            res.set(
                amb,
                status="ambiguous",
                match_type=mtype[~chosen],
                candidates=_objects(keys_col),
                candidate_names=_objects(names_col),
                error="several compounds match; see candidates",
            )

        # resolved
        ok_q = qid[chosen]
        if ok_q.size == 0:
            return
        d = decided[chosen]
        sub = hits.merge(d[["qid", "block"]], on=["qid", "block"])
        rep = self._representatives(sub).set_index("qid").reindex(ok_q)
        r = rep["rec"].to_numpy().astype(np.int64)
        majority = d["majority"].to_numpy().astype(bool)
        mt = mtype[chosen]
        conf = np.array([MATCH_TYPES[str(m)].confidence for m in mt]) * d["share"].to_numpy()
        info = [self._parent_info.get(str(parent_col[i])) for i in r]
        res.set(
            ok_q,
            status="resolved",
            match_type=[f"{m}+majority" if maj else m for m, maj in zip(mt, majority, strict=True)],
            confidence=np.round(conf, 4),
            inchikey=inchikey_col[r],
            smiles=self._col["canonical_smiles"][r],
            parent_inchikey=parent_col[r],
            parent_smiles=self._col["parent_smiles"][r],
            connectivity=self._col["connectivity"][r],
            ref_source=self._col["ref_source"][r],
            ref_id=self._col["ref_id"][r],
            n_parents=rep["n_parents"].to_numpy(),
            name=[
                nfo["name"] if nfo else self._display_name(int(i))
                for nfo, i in zip(info, r, strict=True)
            ],
            pubchem_cid=[
                nfo["pubchem_cid"] if nfo else self._col["pubchem_cid"][i]
                for nfo, i in zip(info, r, strict=True)
            ],
        )
        res.set(ok_q[majority], error="conflicting reference records; chosen by majority")

    def _representatives(self, hits: pd.DataFrame) -> pd.DataFrame:
        """Per (query, block): the representative record and the number of parents."""
        h = hits[["qid", "block", "rec"]].drop_duplicates()
        r = h["rec"].to_numpy()
        parent = self._col["parent_inchikey"][r]
        parent = np.where(pd.isna(parent), self._col["inchikey"][r], parent)
        h = h.assign(parent=parent, has_cid=self._has_cid[r], prio=self._prio[r])
        grouped = h.groupby(["qid", "block", "parent"])
        h["n_parent"] = grouped["rec"].transform("size")
        h["parent_cid"] = grouped["has_cid"].transform("any")
        h["parent_prio"] = grouped["prio"].transform("min")
        n_parents = h.groupby(["qid", "block"])["parent"].nunique().rename("n_parents")
        h = h.sort_values(
            ["qid", "block", "n_parent", "parent_cid", "parent_prio", "parent", "prio", "rec"],
            ascending=[True, True, False, False, True, True, True, True],
        )
        top = h.drop_duplicates(["qid", "block"])[["qid", "block", "rec"]]
        return top.merge(n_parents.reset_index(), on=["qid", "block"])

    def _display_name(self, i: int) -> str | None:
        info = self._parent_info.get(str(self._col["parent_inchikey"][i]))
        if info is not None and info["name"]:
            return str(info["name"])
        name = self._col["name"][i]
        return str(name) if isinstance(name, str) else None

    # online ----------------------------------------------------------------------------

    def _resolve_online(self, uniq: pd.DataFrame, res: _Result, client: PubChemClient) -> None:
        kinds = uniq["kind"].to_numpy()
        qstr = uniq["qstr"].to_numpy()
        todo = np.flatnonzero(
            (res.cols["status"] == "unresolved") & np.isin(kinds, ["name", "cas", "cid", "brd"])
        )
        found: dict[int, dict[str, Any]] = {}
        for i in todo:
            q = str(qstr[i])
            m = _CID.match(q)
            hits = (
                client.lookup_cid(int(m.group(1)))
                if kinds[i] == "cid" and m
                else client.lookup_name(q)
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
                    candidates=_objects([tuple(h.get("inchikey") for h in hits)]),
                    candidate_names=_objects([tuple(f"CID {h.get('cid')}" for h in hits)]),
                    error="PubChem knows several compounds by this name",
                )
        if not found:
            return
        rows = np.array(sorted(found), dtype=np.int64)
        self._fill_structures(res, rows, [str(found[int(i)]["smiles"]) for i in rows])
        done = rows[res.cols["status"][rows] == "resolved"]
        cids = [found[int(i)].get("cid") for i in done]
        res.set(
            done, match_type="pubchem_online", confidence=MATCH_TYPES["pubchem_online"].confidence
        )
        no_cid = np.array([res.cols["pubchem_cid"][i] is None for i in done], dtype=bool)
        res.set(done[no_cid], pubchem_cid=[c for c, n in zip(cids, no_cid, strict=True) if n])
        no_ref = np.array([res.cols["ref_source"][i] is None for i in done], dtype=bool)
        res.set(
            done[no_ref],
            ref_source="pubchem_online",
            ref_id=[str(c) for c, n in zip(cids, no_ref, strict=True) if n],
            name=qstr[done[no_ref]],
        )


class _Result:
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


def _objects(values: Sequence[object]) -> np.ndarray:
    """An object array of tuples (numpy would otherwise make a 2-D array of them)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


# --------------------------------------------------------------------------------------
# construction helpers


def _records(
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
        rec[c] = rec[c].astype(object).where(rec[c].notna(), None)
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
        _check_columns(structures, required, "compound_structures")
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


def _donors(structured: pd.DataFrame) -> dict[int, int]:
    """For each block: the record whose structure stands for it (most common parent)."""
    s = structured.assign(n=structured.groupby("parent_inchikey")["ref_id"].transform("size"))
    s = s.sort_values(["block", "n", "prio"], ascending=[True, False, True])
    first = s.drop_duplicates("block")
    return dict(zip(first["block"].to_numpy(), first.index.to_numpy(), strict=True))


def _parent_info(parents: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per parent InChIKey: preferred name, most frequent CID, a representative id."""
    if parents.empty:
        return {}
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
    out: dict[str, dict[str, Any]] = {}
    for key, name, src, rid in zip(
        first.index, first["name"], first["ref_source"], first["ref_id"], strict=True
    ):
        c = cid.get(key)
        out[key] = {
            "name": name if isinstance(name, str) else None,
            "pubchem_cid": None if c is None or pd.isna(c) else int(c),
            "ref_source": src,
            "ref_id": rid,
        }
    return out


def _build_index(
    records: pd.DataFrame, synonyms: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The key → record index, and the name-key rows (to link structureless records)."""
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
    names = pd.concat(
        [
            syn.loc[syn["kind"].isin(_NAME_KINDS), ["rec", "synonym"]],
            pd.DataFrame({"rec": np.arange(len(records)), "synonym": records["name"].to_numpy()}),
        ],
        ignore_index=True,
    )
    names = names[_mask(names["synonym"], lambda v: isinstance(v, str) and bool(v.strip()))]
    names = names.drop_duplicates()
    uniq = pd.unique(names["synonym"].to_numpy())
    table = name_key_table(list(uniq))
    keys = pd.DataFrame(
        {
            "synonym": uniq[table["i"].to_numpy()],
            "rank": table["tier"].to_numpy(),
            "nkey": table["key"].to_numpy(),
            "alt": table["alternative"].to_numpy(),
        }
    )
    name_rows = names.merge(keys, on="synonym")
    name_rows["key"] = name_rows["rank"].astype(str) + _SEP + name_rows["nkey"]
    name_rows = name_rows[["rec", "rank", "key", "alt"]].drop_duplicates(["rec", "key"])

    # identifiers
    parts = [name_rows[["key", "rec"]]]

    def add(prefix: str, values: pd.Series, recs: pd.Series | pd.Index | np.ndarray) -> None:
        df = pd.DataFrame({"v": np.asarray(values, dtype=object), "rec": np.asarray(recs)})
        df = df[np.array([isinstance(v, str) and bool(v) for v in df["v"]], dtype=bool)]
        parts.append(pd.DataFrame({"key": prefix + _SEP + df["v"], "rec": df["rec"]}))

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


def _query_keys(qstr: np.ndarray, kinds: np.ndarray) -> pd.DataFrame:
    """The ranked lookup keys of every query (``qid``, ``rank``, ``key``, ``alt``, ``mtype``)."""
    rows: list[tuple[int, int, str, bool, str]] = []
    is_name = np.flatnonzero(kinds == "name")
    tiers = np.array([t.match_type for t in NAME_TIERS], dtype=object)
    table = name_key_table([qstr[i] for i in is_name])
    names = pd.DataFrame(
        {
            "qid": is_name[table["i"].to_numpy()],
            "rank": table["tier"].to_numpy(),
            "key": table["tier"].astype(str).to_numpy() + _SEP + table["key"].to_numpy(),
            "alt": table["alternative"].to_numpy(),
            "mtype": tiers[table["tier"].to_numpy()],
        }
    )
    for i, (q, k) in enumerate(zip(qstr, kinds, strict=True)):
        if k == "name":
            continue
        if k == "brd":
            full = normalize_brd(q) or q.upper()
            rows.append((i, 0, f"brd{_SEP}{full}", False, "exact_id"))
            prefix = brd_prefix(q)
            if prefix and prefix != full:
                rows.append((i, 1, f"brd{_SEP}{prefix}", False, "brd_prefix"))
        elif k == "cas":
            rows.append((i, 0, f"cas{_SEP}{q}", False, "cas"))
        elif k == "cid":
            m = _CID.match(q)
            if m:
                rows.append((i, 0, f"cid{_SEP}{int(m.group(1))}", False, "pubchem_cid"))
        elif k == "inchikey":
            m = INCHIKEY_PATTERN.match(q)
            if m:
                key = m.group(1)
                rows.append((i, 0, f"ik{_SEP}{key}", False, "inchikey"))
                rows.append((i, 1, f"pik{_SEP}{key}", False, "parent_inchikey"))
                rows.append((i, 2, f"conn{_SEP}{key[:14]}", False, "connectivity"))
    ids = pd.DataFrame(rows, columns=["qid", "rank", "key", "alt", "mtype"])
    return pd.concat([names, ids], ignore_index=True) if len(ids) else names


def _empty_hits() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "qid": pd.Series([], dtype=np.int64),
            "rank": pd.Series([], dtype=np.int64),
            "key": pd.Series([], dtype=object),
            "alt": pd.Series([], dtype=bool),
            "mtype": pd.Series([], dtype=object),
            "rec": pd.Series([], dtype=np.int64),
            "block": pd.Series([], dtype=np.int64),
        }
    )


# --------------------------------------------------------------------------------------
# optional online PubChem lookups


class PubChemError(PerturbridgeError, RuntimeError):
    """PubChem answered with an error that retrying did not cure."""


class OfflineError(PerturbridgeError, ConnectionError):
    """PubChem cannot be reached (no network, or the client is in offline mode)."""


_RETRY_STATUS: Final[frozenset[int]] = frozenset({429, 500, 502, 503, 504})
_PROPERTIES = "InChIKey,IsomericSMILES,CanonicalSMILES"


class PubChemClient:
    """A small, polite client of PubChem PUG REST with a persistent cache.

    Used only when a caller passes it (``CompoundResolver.resolve(..., online=client)``);
    nothing in perturbridge creates one on its own.

    Parameters
    ----------
    cache_path
        SQLite file of answers (created if missing). Every answer, a "not found"
        included, is kept, so a query is asked once. ``None``: an in-memory cache.
    base_url
        The PUG REST root (``…/rest/pug``); tests point it at a local server.
    max_per_second
        Request rate limit (PubChem asks for at most 5 per second).
    retries
        Further attempts after a 429/5xx answer or a connection failure, with
        exponential backoff (``backoff``, ``2 × backoff``, …).
    backoff
        First backoff in seconds.
    timeout
        Seconds to wait for one answer.
    offline
        Answer from the cache only; a cache miss raises :class:`OfflineError`.

    Raises
    ------
    OfflineError
        When PubChem cannot be reached after the retries (or ``offline=True`` and the
        answer is not cached).
    PubChemError
        When PubChem keeps answering with an error status.
    """

    def __init__(
        self,
        *,
        cache_path: str | os.PathLike[str] | None = None,
        base_url: str = "https://pubchem.ncbi.nlm.nih.gov/rest/pug",
        max_per_second: float = 5.0,
        retries: int = 4,
        backoff: float = 0.5,
        timeout: float = 10.0,
        offline: bool = False,
    ) -> None:
        import sqlite3
        import threading

        if max_per_second <= 0:
            raise ValueError(f"expected max_per_second > 0, found {max_per_second}")
        if retries < 0:
            raise ValueError(f"expected retries >= 0, found {retries}")
        self.base_url = base_url.rstrip("/")
        self.min_interval = 1.0 / max_per_second
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.offline = offline
        self.n_requests = 0
        self._last = 0.0
        self._lock = threading.Lock()
        path = ":memory:" if cache_path is None else str(cache_path)
        if cache_path is not None:
            Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS answers (url TEXT PRIMARY KEY, status INTEGER, "
            "body TEXT, fetched_utc TEXT)"
        )
        self._db.commit()

    def __repr__(self) -> str:
        return f"PubChemClient(base_url={self.base_url!r}, offline={self.offline})"

    def close(self) -> None:
        """Close the cache."""
        self._db.close()

    def __enter__(self) -> PubChemClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # lookups ------------------------------------------------------------------------

    def lookup_name(self, name: str) -> list[dict[str, Any]]:
        """Compounds PubChem knows by ``name`` (a synonym, CAS number, …).

        Returns
        -------
        A list of ``{"cid", "inchikey", "smiles"}`` (empty when PubChem does not know the
        name).
        """
        from urllib.parse import quote

        name_part = quote(name.strip(), safe="")
        return self._properties(
            f"{self.base_url}/compound/name/{name_part}/property/{_PROPERTIES}/JSON"
        )

    def lookup_cid(self, cid: int) -> list[dict[str, Any]]:
        """The compound with PubChem CID ``cid`` (a list of at most one)."""
        return self._properties(
            f"{self.base_url}/compound/cid/{int(cid)}/property/{_PROPERTIES}/JSON"
        )

    def cids_for_name(self, name: str) -> list[int]:
        """The CIDs PubChem lists for ``name``."""
        from urllib.parse import quote

        body = self._get(f"{self.base_url}/compound/name/{quote(name.strip(), safe='')}/cids/JSON")
        if body is None:
            return []
        return [int(c) for c in body.get("IdentifierList", {}).get("CID", [])]

    def _properties(self, url: str) -> list[dict[str, Any]]:
        body = self._get(url)
        if body is None:
            return []
        out = []
        for p in body.get("PropertyTable", {}).get("Properties", []):
            smiles = p.get("IsomericSMILES") or p.get("SMILES") or p.get("CanonicalSMILES")
            smiles = smiles or p.get("ConnectivitySMILES")
            out.append({"cid": p.get("CID"), "inchikey": p.get("InChIKey"), "smiles": smiles})
        return out

    # transport ----------------------------------------------------------------------

    def _get(self, url: str) -> dict[str, Any] | None:
        """The JSON answer of ``url`` (``None`` for "not found"), from the cache if there."""
        import json

        row = self._db.execute("SELECT status, body FROM answers WHERE url = ?", (url,)).fetchone()
        if row is not None:
            status, body = row
            return None if status == 404 else json.loads(body)
        if self.offline:
            raise OfflineError(
                f"PubChem answer not cached and the client is offline: {url}; run once "
                "online (offline=False) to fill the cache"
            )
        status, text = self._fetch(url)
        self._db.execute(
            "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, datetime('now'))", (url, status, text)
        )
        self._db.commit()
        return None if status == 404 else json.loads(text)

    def _fetch(self, url: str) -> tuple[int, str]:
        import time
        import urllib.error
        import urllib.request

        last_error: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            with self._lock:
                wait = self._last + self.min_interval - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                self._last = time.monotonic()
            self.n_requests += 1
            request = urllib.request.Request(url, headers={"User-Agent": "perturbridge"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return int(response.status), response.read().decode("utf-8")
            except urllib.error.HTTPError as err:
                err.close()  # it holds the connection
                if err.code in (400, 404):
                    # PUG REST answers 404 (and 400 for some malformed names): not found
                    return 404, ""
                if err.code not in _RETRY_STATUS:
                    raise PubChemError(
                        f"PubChem answered {err.code} {err.reason} for {url}"
                    ) from err
                last_error = err
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                last_error = err
        if isinstance(last_error, urllib.error.HTTPError):
            raise PubChemError(
                f"PubChem kept answering {last_error.code} for {url} after "
                f"{self.retries + 1} attempts; try again later"
            ) from last_error
        raise OfflineError(
            f"cannot reach PubChem at {self.base_url} ({last_error}) after {self.retries + 1} "
            "attempts; check the network or leave the online resolver off"
        ) from last_error

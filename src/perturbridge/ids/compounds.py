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
- **Exact spellings are one level of evidence**: when a name hits at the ``synonym``
  tier, the hits of the ``normalized_name`` tier (the same letters and digits) count
  too, so one source's ``17β-estradiol`` cannot hide another source's
  ``17-beta-estradiol`` with a different structure: the conflict goes to the
  majority rule, and without a clear majority the answer is ``ambiguous``, with the
  ``candidates``, their names and the sources that give each (``candidate_sources``).
- **Names as people type them** (:mod:`perturbridge.ids.name_parts`): a name left
  unresolved is tried without trailing batch or dose notes (``-batch1``, ``(50 uM)``;
  ``error`` says what was removed), and a multi-name cell (``Gefitinib///Iressa``,
  ``a; b``) is resolved part by part: parts that resolve must agree (the unresolved
  ones are named in ``error``), parts that disagree give ``ambiguous``.

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

Long because this docstring states the resolution rules in full; the code is one
resolver class whose steps share its index; the fallbacks for names left unresolved
(typed names, OPSIN) are in :mod:`perturbridge.ids.compound_fallbacks`. Records, the
index and query kinds are in :mod:`perturbridge.ids.compound_index`, the online client
in :mod:`perturbridge.ids.pubchem`.

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
from collections.abc import Sequence
from typing import Any, Final, Literal, Protocol

import numpy as np
import pandas as pd

from ..errors import PerturbridgeError
from ._frames import int_objects
from .chem import INCHIKEY_PATTERN, standardize_smiles_many
from .compound_fallbacks import (
    object_array,
    resolve_online,
    resolve_systematic,
    resolve_typed_names,
)
from .compound_index import (
    KEY_SEP,
    MATCH_TYPES,
    RESULT_COLUMNS,
    USER_SOURCE,
    ResultRows,
    build_index,
    check_columns,
    detect_kind,
    empty_hits,
    parent_info,
    parent_table,
    query_keys,
    reference_records,
    structure_donors,
)
from .compound_lookup import LOOKUP_TABLES, saved_lookup
from .keyed import KeyedRows
from .names import NAME_RULES_VERSION
from .pubchem import PubChemClient
from .tables import TABLE_COLUMNS

__all__ = ["CompoundResolver", "QueryKind"]

logger = logging.getLogger(__name__)

QueryKind = Literal["auto", "name", "smiles", "inchi", "inchikey", "brd", "cas", "cid"]
_EXACT_NAME_TIERS: Final = np.array(["synonym", "normalized_name"], dtype=object)
_KINDS: Final[tuple[str, ...]] = ("name", "smiles", "inchi", "inchikey", "brd", "cas", "cid")


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

    def __init__(
        self,
        records: pd.DataFrame,
        index: pd.DataFrame | KeyedRows,
        *,
        majority: float | None,
        parents: pd.DataFrame | None = None,
    ):
        self._records = records
        # key → record rows, looked up per call (an Arrow table: no pandas conversion of
        # the 1.5 million keys of a large store at load time)
        self._index = index if isinstance(index, KeyedRows) else KeyedRows(index, "key")
        self._majority = majority
        self._block = records["block"].to_numpy()
        self._prio = records["prio"].to_numpy()
        self._has_cid = records["pubchem_cid"].notna().to_numpy()
        self._col: dict[str, np.ndarray] = {}
        self._refresh_columns()
        self._user = (records["ref_source"] == USER_SOURCE).to_numpy()
        self._source_code = pd.factorize(records["ref_source"])[0]
        if parents is None:
            parents = parent_table(records[records["parent_inchikey"].notna()])
        self._parents = parents
        self._parent_info = parent_info(parents)

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
        self._col["pubchem_cid"] = int_objects(rec["pubchem_cid"])

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
        name_keys: pd.DataFrame | None = None,
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
        name_keys
            Precomputed keys of reference names (a store's ``compound_name_keys``,
            :func:`~perturbridge.ids.compound_index.name_key_rows`); names it lacks are
            keyed here.
        n_jobs, progress
            For the RDKit standardization, when it runs.

        Raises
        ------
        SchemaError
            If a table lacks contract columns.
        """
        check_columns(compounds, TABLE_COLUMNS["compounds"], "compounds")
        check_columns(compound_synonyms, TABLE_COLUMNS["compound_synonyms"], "compound_synonyms")
        if majority is not None and not 0.5 < majority <= 1.0:
            raise ValueError(f"expected majority in (0.5, 1] or None, found {majority}")
        records = reference_records(compounds, structures, n_jobs=n_jobs, progress=progress)
        index, name_rows = build_index(records, compound_synonyms, name_keys=name_keys)
        resolver = cls(records, index, majority=majority)
        resolver._link_structureless(name_rows)
        return resolver

    @classmethod
    def from_store(cls, store: _Store, **kwargs: Any) -> CompoundResolver:
        """A resolver from a reference store (anything with ``.table(name)``).

        Loads the lookup the store saved (:mod:`perturbridge.ids.compound_lookup`) when
        it is current; otherwise builds it with :meth:`from_tables` from the store's
        tables, using its ``compound_structures`` table when it has one, and its
        ``compound_name_keys`` when they were made by the name rules of this version
        (:data:`~perturbridge.ids.names.NAME_RULES_VERSION`, recorded in the manifest).
        Keyword arguments go to :meth:`from_tables`.
        """
        majority = kwargs.get("majority", 0.65)
        saved = saved_lookup(store, majority=majority)
        if saved is not None:
            if majority is not None and not 0.5 < majority <= 1.0:
                raise ValueError(f"expected majority in (0.5, 1] or None, found {majority}")
            records, index, parents = (saved[t] for t in LOOKUP_TABLES)
            return cls(records, KeyedRows(index, "key"), majority=majority, parents=parents)
        try:
            structures: pd.DataFrame | None = store.table("compound_structures")
        except (KeyError, FileNotFoundError, PerturbridgeError):
            structures = None
        name_keys = None
        manifest = getattr(store, "manifest", {})
        steps = [d for d in manifest.get("derived", []) if d.get("step") == "compound_name_keys"]
        if steps and steps[-1].get("rules_version") == NAME_RULES_VERSION:
            name_keys = store.table("compound_name_keys")
        elif steps:
            logger.info(
                "the store's name keys were made by name rules %s, not %s: recomputed",
                steps[-1].get("rules_version"),
                NAME_RULES_VERSION,
            )
        return cls.from_tables(
            compounds=store.table("compounds"),
            compound_synonyms=store.table("compound_synonyms"),
            structures=structures,
            name_keys=name_keys,
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
        donor_of_block = structure_donors(rec[self._block >= 0])
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
        self._parents = parent_table(self._records[self._records["parent_inchikey"].notna()])
        self._parent_info = parent_info(self._parents)
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

    def lookup_tables(self) -> dict[str, pd.DataFrame]:
        """The lookup as the tables a store saves (:mod:`~perturbridge.ids.compound_lookup`).

        :meth:`from_store` loads them instead of building the lookup again.
        """
        records, index, parents = self._records, self._index.frame(), self._parents
        return dict(zip(LOOKUP_TABLES, (records, index, parents), strict=True))

    # ----------------------------------------------------------------------------------
    # properties

    @property
    def records(self) -> pd.DataFrame:
        """The reference records with their standardized structures (a copy)."""
        return self._records.drop(columns=["block", "prio"]).copy()

    @property
    def majority(self) -> float | None:
        """The majority threshold of the resolver (``None``: off)."""
        return self._majority

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
        name_keys: pd.DataFrame | None = None,
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
        name_keys
            Precomputed keys of names
            (:func:`~perturbridge.ids.compound_index.name_key_rows`): name queries it
            covers are not keyed again (the store builder passes the keys it made).

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
        result = self._resolve_unique(uniq, name_keys=name_keys)
        resolve_typed_names(self, uniq, result)
        resolve_systematic(self, uniq, result)
        if online is not None:
            resolve_online(self, uniq, result, online)
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

    def _resolve_unique(
        self, uniq: pd.DataFrame, *, name_keys: pd.DataFrame | None = None
    ) -> ResultRows:
        kinds = uniq["kind"].to_numpy()
        qstr = uniq["qstr"].to_numpy()
        res = ResultRows(len(uniq))
        res.cols["query"][:] = qstr
        res.cols["kind"][:] = kinds

        # structures given directly
        is_struct = np.flatnonzero(np.isin(kinds, ["smiles", "inchi"]))
        if is_struct.size:
            self._fill_structures(res, is_struct, [str(qstr[i]) for i in is_struct])

        keys = query_keys(qstr, kinds, name_keys=name_keys)
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

    def _fill_structures(self, res: ResultRows, rows: np.ndarray, structures: list[str]) -> None:
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
            return empty_hits()
        index = self._index.rows(pd.unique(keys["key"].to_numpy()))
        hits = keys.merge(index, on="key", how="inner", sort=False)
        if hits.empty:
            return empty_hits()
        rec = hits["rec"].to_numpy()
        hits["block"] = self._block[rec]
        hits = hits[hits["block"].to_numpy() >= 0]
        if hits.empty:
            return empty_hits()
        # the synonym and normalized_name tiers of a name are one level of evidence
        exact = np.isin(hits["mtype"].to_numpy(), _EXACT_NAME_TIERS)
        level = np.where(exact, 0, hits["rank"].to_numpy())
        best = pd.Series(level, index=hits.index).groupby(hits["qid"], sort=False).transform("min")
        hits = hits[level == best.to_numpy()]
        exact = np.isin(hits["mtype"].to_numpy(), _EXACT_NAME_TIERS) & ~hits["alt"].to_numpy()
        hits = hits.assign(kgrp=np.where(exact, "exact", hits["key"].to_numpy()))
        hits = hits.sort_values(["qid", "rank"], kind="stable")
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
        kb = hits[["qid", "kgrp", "block"]].drop_duplicates().rename(columns={"kgrp": "key"})
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
        out["candidates"] = object_array([tuple(by_q.get(int(q), ())) for q in out["qid"]])
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

    def _fill_decided(self, res: ResultRows, decided: pd.DataFrame, hits: pd.DataFrame) -> None:
        if decided.empty:
            return
        qid = decided["qid"].to_numpy().astype(np.int64)
        # match type and matched key: of the hits of each query
        first = hits.drop_duplicates("qid").set_index("qid")
        mtype = first["mtype"].reindex(qid).to_numpy()
        key = first["key"].reindex(qid).to_numpy()
        res.set(
            qid,
            matched_key=[str(k).split(KEY_SEP, 1)[-1] for k in key],
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
            amb_hits = hits[hits["qid"].isin(amb)]
            src_of = (
                pd.DataFrame(
                    {
                        "qid": amb_hits["qid"].to_numpy(),
                        "block": amb_hits["block"].to_numpy(),
                        "src": self._col["ref_source"][amb_hits["rec"].to_numpy()],
                    }
                )
                .drop_duplicates()
                .groupby(["qid", "block"])["src"]
                .agg(lambda v: ",".join(sorted(v)))
                .to_dict()
            )
            keys_col: list[tuple[object, ...]] = []
            names_col: list[tuple[object, ...]] = []
            srcs_col: list[tuple[object, ...]] = []
            for q, blocks in zip(amb, decided["candidates"].to_numpy()[~chosen], strict=True):
                bs = [int(b) for b in blocks if (int(q), int(b)) in rep_by]
                rs = [rep_by[(int(q), b)] for b in bs]
                keys_col.append(tuple(parent_col[r] or inchikey_col[r] for r in rs))
                names_col.append(tuple(self._display_name(r) for r in rs))
                srcs_col.append(tuple(src_of.get((int(q), b)) for b in bs))
            res.set(
                amb,
                status="ambiguous",
                match_type=mtype[~chosen],
                candidates=object_array(keys_col),
                candidate_names=object_array(names_col),
                candidate_sources=object_array(srcs_col),
                error=[
                    "several compounds match: "
                    + "; ".join(f"{n} ({s})" for n, s in zip(nm, sc, strict=True))
                    for nm, sc in zip(names_col, srcs_col, strict=True)
                ],
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

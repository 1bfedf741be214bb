"""Cell contexts: cell line names → Cellosaurus ``CVCL_…``, primary cell types → ``CL:…``.

Normalization
-------------
Every name and synonym is compared through its *key*: upper case, letters and digits
only (``"Hep-G2"``, ``"HEPG2"`` and ``"hep g2"`` are all ``HEPG2``). An input is looked
up by its full key first (so the CCLE name ``TT_OESOPHAGUS`` finds its own line); when
that finds nothing and the input ends in a CCLE tissue suffix (``A549_LUNG``,
``K562_HAEMATOPOIETIC_AND_LYMPHOID_TISSUE``; see :data:`CCLE_TISSUES`), the suffix is
stripped and the rest looked up (``normalization`` is then ``ccle_suffix``). Drug-resistant
CCLE derivatives (``A375_SKIN_CJ1_RESISTANT``) are not stripped: they are other lines.

Priority
--------
When a key is a synonym of several accessions, the kind of synonym decides (lower wins):
``user`` and ``accession`` (0), ``name`` (1: Cellosaurus ID, Cell Ontology name, DepMap
display name), ``ccle_name``/``stripped_name``/``depmap_id`` (2), ``synonym`` (3),
``lincs_id`` (4), then the names of secondary sources (the cellxgene builds of
Cellosaurus and the Cell Ontology, :mod:`perturbridge.ids.parsers_packages`), which
never override the others: ``secondary_name`` (5), ``secondary_synonym`` and
``derived`` (6: spellings derived from a name, such as ``H460`` from ``NCI-H460``).
Several accessions at the best level are ambiguous, unless exactly one of them is of
the preferred species (human by default). Ambiguous inputs keep their candidates (a
display string) and no accession.

Status
------
``resolved`` (a ``CVCL_…`` or ``CL:…`` accession), ``ambiguous`` or ``unresolved`` (the
vocabulary of every resolver of :mod:`perturbridge.ids`). An ``unresolved`` input that
matched only a source-local ``DepMap:…``/``LINCS:…`` record (see
:mod:`perturbridge.ids.parsers_genes_cells`) keeps that placeholder as its ``accession``;
other unresolved and ambiguous inputs have none.

Saved lookup
------------
Keying the synonyms and choosing the best accession per key takes a second or two for
the 180,000 synonyms of a store with the Cellosaurus. ``refs build`` does it once and
saves the result as two tables, ``cell_records`` (the record of the best source per
accession) and ``cell_lookup`` (per key: ``n``, ``kind``, ``prio``, ``candidates``,
``accession``), with a manifest step ``cell_lookup`` that records
:data:`CELL_LOOKUP_VERSION`, a digest of the priority tables above and the preferred
species. :meth:`CellResolver.from_store` reads them as Arrow tables and looks up only
the keys of each call (:class:`~perturbridge.ids.keyed.KeyedRows`); a store without
them, or with a lookup made by other rules or for another species, is keyed in memory
as before (same answers, more time).
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ._frames import RESOLUTION_COLUMNS, missing_as_none, none_where_not
from .cell_ontology import cell_ontology_tables
from .genes import best_per_key
from .keyed import KeyedRows, lookup_step, rules_digest, saved_step
from .reader import RefStoreReader

__all__ = [
    "CCLE_TISSUES",
    "CELL_LOOKUP_STEP",
    "CELL_LOOKUP_TABLES",
    "CELL_LOOKUP_VERSION",
    "CellResolver",
    "cell_key",
    "link_lincs_cells",
    "strip_ccle_suffix",
]

#: CCLE name suffixes (tissue of origin) stripped by the normalization.
CCLE_TISSUES: frozenset[str] = frozenset(
    {
        "ADRENAL_CORTEX", "AUTONOMIC_GANGLIA", "BILIARY_TRACT", "BONE", "BREAST",
        "CENTRAL_NERVOUS_SYSTEM", "CERVIX", "ENDOMETRIUM", "ENGINEERED", "FIBROBLAST",
        "HAEMATOPOIETIC_AND_LYMPHOID_TISSUE", "KIDNEY", "LARGE_INTESTINE", "LIVER", "LUNG",
        "MATCHED_NORMAL_TISSUE", "OESOPHAGUS", "OVARY", "PANCREAS", "PLACENTA", "PLEURA",
        "PRIMARY", "PROSTATE", "SALIVARY_GLAND", "SKIN", "SMALL_INTESTINE", "SOFT_TISSUE",
        "STOMACH", "TESTIS", "THYROID", "UPPER_AERODIGESTIVE_TRACT", "URINARY_TRACT",
        "UVEA", "VULVA", "BILIARY", "HEAD_AND_NECK",
    }
)  # fmt: skip

#: Synonym kinds by priority (lower wins).
KIND_PRIORITY: dict[str, int] = {
    "user": 0,
    "accession": 0,
    "name": 1,
    "ccle_name": 2,
    "stripped_name": 2,
    "depmap_id": 2,
    "synonym": 3,
    "lincs_id": 4,
    "secondary_name": 5,
    "secondary_synonym": 6,
    "derived": 6,
}
#: Which source's record (name, sex, disease, …) describes an accession, best first.
SOURCE_PRIORITY: dict[str, int] = {
    "cellosaurus": 0,
    "cell_ontology_csv": 1,
    "cell_ontology_builtin": 2,
    "depmap": 3,
    "lincs_cellinfo": 4,
    "cellosaurus_cxg": 5,
    "cell_ontology_cxg": 6,
}
PLACEHOLDER_PREFIXES = ("DepMap:", "LINCS:")
#: Version of the saved cell lookup (its tables and the rules that make them).
CELL_LOOKUP_VERSION = 1
CELL_LOOKUP_STEP = "cell_lookup"
CELL_LOOKUP_TABLES = ("cell_records", "cell_lookup")
_RECORD_COLUMNS = ("name", "species", "sex", "disease", "category")
_NON_ALNUM = re.compile(r"[^0-9A-Z]")
_LOOKUP_COLUMNS = ["n", "kind", "prio", "candidates", "accession"]
#: Columns of :meth:`CellResolver.resolve`.
RESULT_COLUMNS = ("input", "accession", *_RECORD_COLUMNS, *RESOLUTION_COLUMNS, "candidates")


def cell_key(name: object) -> str:
    """Upper case, letters and digits only: ``"Hep-G2"`` → ``"HEPG2"``."""
    return _NON_ALNUM.sub("", str(name).upper())


def strip_ccle_suffix(name: object) -> str | None:
    """``"A549_LUNG"`` → ``"A549"``; ``None`` when there is no CCLE tissue suffix."""
    s = str(name).strip()
    base, sep, tissue = s.partition("_")
    if sep and base and tissue.upper() in CCLE_TISSUES:
        return base
    return None


def _is_placeholder(acc: pd.Series) -> pd.Series:
    return acc.astype(str).str.startswith(PLACEHOLDER_PREFIXES)


class CellResolver:
    """Resolve cell line names and primary cell types to accessions.

    Parameters
    ----------
    cells, cell_synonyms
        Reference tables (see :mod:`perturbridge.ids.tables`).
    species
        Preferred species, the tie-breaker between accessions that share a synonym;
        ``None`` for no preference.
    cell_ontology_csv
        A user CSV of Cell Ontology terms added to the tables (see
        :mod:`perturbridge.ids.cell_ontology`).

    Examples
    --------
    >>> res = CellResolver.from_store("refs")  # doctest: +SKIP
    >>> res.resolve(["A549", "A549_LUNG", "HEPG2", "T cells CD4+"])  # doctest: +SKIP
    """

    def __init__(
        self,
        cells: pd.DataFrame,
        cell_synonyms: pd.DataFrame,
        *,
        species: str | None = "Homo sapiens",
        cell_ontology_csv: str | os.PathLike[str] | None = None,
    ) -> None:
        for name, df, cols in (
            ("cells", cells, ("accession", "name", "species", "ref_source")),
            ("cell_synonyms", cell_synonyms, ("accession", "synonym", "kind")),
        ):
            missing = [c for c in cols if c not in df.columns]
            if missing:
                raise KeyError(f"table {name!r} lacks columns {missing}; found {list(df.columns)}")
        if cell_ontology_csv is not None:
            extra = cell_ontology_tables(cell_ontology_csv, builtin=False)
            cells = pd.concat([cells, extra["cells"]], ignore_index=True)
            cell_synonyms = pd.concat([cell_synonyms, extra["cell_synonyms"]], ignore_index=True)
        self.species = species
        records = self._make_records(cells)
        lookup = self._make_lookup(cell_synonyms, records, species)
        self._records = KeyedRows(records.reset_index(), "accession")
        self._lookup = KeyedRows(lookup.reset_index(), "key")

    @classmethod
    def from_store(
        cls,
        store: RefStoreReader | str | os.PathLike[str],
        *,
        species: str | None = "Homo sapiens",
        cell_ontology_csv: str | os.PathLike[str] | None = None,
    ) -> CellResolver:
        """A resolver over the ``cells`` and ``cell_synonyms`` tables of a store.

        Loads the lookup the store saved when it was made by the rules of this version
        for ``species`` (see the module docstring); otherwise, and with a
        ``cell_ontology_csv``, keys the tables in memory.
        """
        st = store if isinstance(store, RefStoreReader) else RefStoreReader.open(store)
        if cell_ontology_csv is None:
            saved = saved_step(st, CELL_LOOKUP_STEP, params=cell_lookup_params(species))
            if saved is not None:
                return cls._from_saved(saved, species=species)
        return cls(
            st.table("cells"),
            st.table("cell_synonyms"),
            species=species,
            cell_ontology_csv=cell_ontology_csv,
        )

    @classmethod
    def _from_saved(cls, saved: Mapping[str, Any], *, species: str | None) -> CellResolver:
        self = cls.__new__(cls)
        self.species = species
        self._records = KeyedRows(saved["cell_records"], "accession")
        self._lookup = KeyedRows(saved["cell_lookup"], "key")
        return self

    def lookup_tables(self) -> dict[str, pd.DataFrame]:
        """The lookup as the tables a store saves (``cell_records``, ``cell_lookup``)."""
        return {"cell_records": self._records.frame(), "cell_lookup": self._lookup.frame()}

    # ----------------------------------------------------------------------------------

    @staticmethod
    def _make_records(cells: pd.DataFrame) -> pd.DataFrame:
        rec = cells.copy()
        rec = rec[rec["accession"].notna()]
        rec["_prio"] = rec["ref_source"].map(SOURCE_PRIORITY).fillna(9)
        rec = rec.sort_values(["accession", "_prio"], kind="stable")
        cols = list(_RECORD_COLUMNS)
        for c in cols:
            if c not in rec.columns:
                rec[c] = None
        # the record of the best source only: fields are never mixed across sources
        rec = rec.drop_duplicates("accession").set_index("accession")[cols]
        return missing_as_none(rec)

    @staticmethod
    def _make_lookup(syn: pd.DataFrame, records: pd.DataFrame, species: str | None) -> pd.DataFrame:
        s = syn.loc[
            syn["accession"].notna() & syn["synonym"].notna(), ["accession", "synonym", "kind"]
        ]
        acc = pd.DataFrame(
            {"accession": records.index, "synonym": records.index, "kind": "accession"}
        )
        s = pd.concat([s, acc], ignore_index=True)
        s["key"] = s["synonym"].map(cell_key)
        s["prio"] = s["kind"].map(KIND_PRIORITY).fillna(9).astype(int)
        s = s[s["key"] != ""]
        out = best_per_key(s, "accession")
        if species and (out["n"] > 1).any():
            # tie-break: exactly one candidate of the preferred species
            amb = out.index[out["n"] > 1]
            c = s[s["key"].isin(amb)]
            c = c[c["prio"].to_numpy() == out.loc[c["key"], "prio"].to_numpy()]
            c = c.drop_duplicates(["key", "accession"])
            sp_ = records["species"].reindex(c["accession"]).to_numpy()
            pref = c[sp_ == species]
            one = pref.groupby("key")["accession"].agg(["size", "first"])
            one = one[one["size"] == 1]
            out.loc[one.index, "accession"] = one["first"]
        return out

    # ----------------------------------------------------------------------------------

    def resolve(self, values: Iterable[object]) -> pd.DataFrame:
        """Resolve names to accessions, one output row per input (in order).

        Returns
        -------
        Columns ``input``, ``accession``, ``name``, ``species``, ``sex``, ``disease``,
        ``category``, ``match_type`` (the kind of synonym that matched), ``normalization``
        (``""`` or ``ccle_suffix``), ``status`` (``resolved``, ``ambiguous``,
        ``unresolved``; an unresolved placeholder match keeps its ``accession``) and
        ``candidates`` (``;``-joined accessions, for display only).
        """
        inputs = pd.Series(list(values), dtype=object)
        uniq = pd.Series(pd.unique(inputs), dtype=object)
        text = uniq.map(
            lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()
        )
        key = text.map(cell_key)
        hit = self._lookup.reindex(key.to_numpy())[_LOOKUP_COLUMNS]
        hit.index = uniq.index
        norm = pd.Series("", index=uniq.index, dtype=object)
        miss = hit["n"].isna()
        if miss.any():
            stripped = text[miss].map(strip_ccle_suffix)
            has = stripped.notna()
            if has.any():
                idx = stripped[has].index
                alt = self._lookup.reindex(stripped[has].map(cell_key).to_numpy())[_LOOKUP_COLUMNS]
                alt.index = idx
                found = alt["n"].notna()
                hit.loc[idx[found.to_numpy()]] = alt[found]
                norm.loc[idx[found.to_numpy()]] = "ccle_suffix"
        acc = missing_as_none(hit["accession"])
        status = np.where(
            hit["n"].isna(),
            "unresolved",
            np.where(
                acc.isna(),
                "ambiguous",
                np.where(_is_placeholder(acc.fillna("")), "unresolved", "resolved"),
            ),
        )
        rec = self._records.reindex(acc.fillna("").to_numpy())[list(_RECORD_COLUMNS)]
        rec.index = uniq.index
        res = pd.DataFrame(
            {
                "input": uniq,
                "accession": acc,
                "name": rec["name"],
                "species": rec["species"],
                "sex": rec["sex"],
                "disease": rec["disease"],
                "category": rec["category"],
                "match_type": none_where_not(hit["kind"], hit["n"].notna()),
                "normalization": norm,
                "status": status,
                "candidates": none_where_not(hit["candidates"], hit["n"].fillna(0) > 1),
            }
        )
        res = missing_as_none(res)
        pos = pd.Index(uniq).get_indexer(inputs)
        return res.iloc[pos].reset_index(drop=True)


def cell_lookup_params(species: str | None) -> dict[str, Any]:
    """What a saved cell lookup must have been made with to be used (its manifest step)."""
    return {
        "version": CELL_LOOKUP_VERSION,
        "rules": rules_digest(KIND_PRIORITY, SOURCE_PRIORITY, sorted(CCLE_TISSUES)),
        "species": species,
    }


def cell_lookup_step(resolver: CellResolver) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The tables and the manifest step that save ``resolver``'s lookup in a store."""
    tables = resolver.lookup_tables()
    step = lookup_step(CELL_LOOKUP_STEP, params=cell_lookup_params(resolver.species), tables=tables)
    return tables, step


def coverage(resolved: pd.DataFrame) -> dict[str, Any]:
    """Counts per status and the resolved fraction of a :meth:`CellResolver.resolve` result."""
    counts = {str(k): int(v) for k, v in resolved["status"].value_counts().items()}
    n = len(resolved)
    return {"n": n, **counts, "resolved_fraction": counts.get("resolved", 0) / n if n else 0.0}


def _remap(values: pd.Series, mapping: Mapping[Hashable, Any]) -> pd.Series:
    """``values`` with each value that is a key of ``mapping`` replaced by its value, in
    one pass (``Series.replace`` with a dict compares every key with every row: minutes
    for the Cellosaurus tables)."""
    hit = values.isin(list(mapping))
    return values.where(~hit, values.map(mapping))


def link_lincs_cells(
    cells: pd.DataFrame, cell_synonyms: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Point LINCS cell ids at the accessions their names resolve to.

    ``LINCS:<cell_id>`` placeholders (from LINCS cell info files without a
    ``cellosaurus_id``) are resolved by cell id through every other record (Cellosaurus,
    DepMap, Cell Ontology, user synonyms). A placeholder that resolves to exactly one
    accession is replaced by it in both tables; one that is ambiguous or unknown stays a
    placeholder. Duplicate rows (the same LINCS id from two files) are dropped.

    Returns
    -------
    The new ``cells`` and ``cell_synonyms`` tables and a report: counts ``linked``,
    ``ambiguous``, ``unlinked`` and the first unlinked ids.
    """
    is_lincs_cell = cells["accession"].astype(str).str.startswith("LINCS:")
    is_lincs_syn = cell_synonyms["accession"].astype(str).str.startswith("LINCS:")
    report: dict[str, Any] = {"linked": 0, "ambiguous": 0, "unlinked": 0, "unlinked_ids": []}
    if not is_lincs_syn.any():
        return cells, cell_synonyms, report
    resolver = CellResolver(cells[~is_lincs_cell], cell_synonyms[~is_lincs_syn], species=None)
    ph = cell_synonyms.loc[is_lincs_syn & (cell_synonyms["kind"] == "lincs_id")]
    ph = ph.drop_duplicates("accession")
    res = resolver.resolve(ph["synonym"])
    res.index = ph["accession"].to_numpy()
    ok = res["accession"].notna()  # resolved, or a placeholder of another source
    mapping = res.loc[ok, "accession"].to_dict()
    report["linked"] = int(ok.sum())
    report["ambiguous"] = int((res["status"] == "ambiguous").sum())
    unl = res.loc[(res["status"] == "unresolved") & res["accession"].isna(), "input"]
    report["unlinked"] = len(unl)
    report["unlinked_ids"] = unl.head(20).tolist()
    cells = cells.assign(accession=_remap(cells["accession"], mapping))
    syn = cell_synonyms.assign(accession=_remap(cell_synonyms["accession"], mapping))
    base_c = [c for c in ("accession", "name", "ref_source") if c in cells.columns]
    base_s = [c for c in ("accession", "synonym", "kind", "ref_source") if c in syn.columns]
    return (
        cells.drop_duplicates(base_c).reset_index(drop=True),
        syn.drop_duplicates(base_s).reset_index(drop=True),
        report,
    )

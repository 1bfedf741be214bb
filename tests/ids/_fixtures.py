"""Small upstream reference files written by the tests, in the exact upstream formats.

Accessions, DepMap ids and names are the public values (checked against the RRID
column of the DepMap sample info in ../shared/data); disease codes are illustrative.
"""

from __future__ import annotations

import gzip
from pathlib import Path

# --------------------------------------------------------------------------------------
# Cellosaurus flat file (ExPASy line format): header notes, records ended by '//'
# --------------------------------------------------------------------------------------

CELLOSAURUS_TXT = """\
 ---------------------------------------------------------------------------
        CELLOSAURUS: an encyclopedic knowledge resource on cell lines
 ---------------------------------------------------------------------------

        Name:         cellosaurus.txt
        Release:      48.0 of 05-Feb-2024
        Description:  Cellosaurus data in a flat file format

 Code  Content                                    Occurrence in an entry
 ----  ---------------------------------          ----------------------
 ID    Identifier (cell line name)                Once; starts an entry
 AC    Accession (CVCL_xxxx)                      Once
 SY    Synonyms                                   Optional; once
 DR    Cross-references                           Optional; once or more
 //    Terminator                                 Once; ends an entry
 ___________________________________________________________________________
ID   A-549
AC   CVCL_0023
SY   A549; A 549; A.549; NCI-A549
DR   ATCC; CCL-185
DR   DepMap; ACH-000681
DR   Cosmic; 905949
DI   NCIt; C3512; Lung adenocarcinoma
OX   NCBI_TaxID=9606; ! Homo sapiens (Human)
SX   Male
AG   58Y
CA   Cancer cell line
//
ID   Hep-G2
AC   CVCL_0027
SY   HepG2; Hep G2; HEPG2; HEP-G2
DR   ATCC; HB-8065
DR   DepMap; ACH-000739
DI   NCIt; C3728; Hepatoblastoma
OX   NCBI_TaxID=9606; ! Homo sapiens (Human)
SX   Male
AG   15Y
CA   Cancer cell line
//
ID   Hep-G2/C3A
AC   CVCL_1098
SY   C3A; HepG2/C3A; Hep G2/C3A; HepG2-C3A
DR   ATCC; CRL-10741
DR   DepMap; ACH-001021
DI   NCIt; C3728; Hepatoblastoma
OX   NCBI_TaxID=9606; ! Homo sapiens (Human)
HI   CVCL_0027 ! Hep-G2
SX   Male
AG   15Y
CA   Cancer cell line
//
ID   NCI-H460
AC   CVCL_0459
SY   H460; H-460; NCIH460; NCI H460
DR   ATCC; HTB-177
DR   DepMap; ACH-000463
DI   NCIt; C4450; Lung large cell carcinoma
OX   NCBI_TaxID=9606; ! Homo sapiens (Human)
SX   Male
CA   Cancer cell line
//
ID   MCF-7
AC   CVCL_0031
SY   MCF7; MCF 7; Michigan Cancer Foundation-7
DR   ATCC; HTB-22
DR   DepMap; ACH-000019
DI   NCIt; C4194; Invasive breast carcinoma of no special type
OX   NCBI_TaxID=9606; ! Homo sapiens (Human)
SX   Female
AG   69Y
CA   Cancer cell line
//
ID   A-375
AC   CVCL_0132
SY   A375; A 375; A375P
DR   ATCC; CRL-1619
DR   DepMap; ACH-000219
DI   NCIt; C3510; Cutaneous melanoma
OX   NCBI_TaxID=9606; ! Homo sapiens (Human)
SX   Female
AG   54Y
CA   Cancer cell line
//
ID   PC-3
AC   CVCL_0035
SY   PC3; PC 3; Prostate Cancer-3
DR   ATCC; CRL-1435
DR   DepMap; ACH-000090
DI   NCIt; C2919; Prostate adenocarcinoma
OX   NCBI_TaxID=9606; ! Homo sapiens (Human)
SX   Male
AG   62Y
CA   Cancer cell line
//
ID   K-562
AC   CVCL_0004
SY   K562; K 562; GM05372
DR   ATCC; CCL-243
DR   DepMap; ACH-000551
DI   NCIt; C3174; Chronic myelogenous leukemia, BCR-ABL1 positive
OX   NCBI_TaxID=9606; ! Homo sapiens (Human)
SX   Female
AG   53Y
CA   Cancer cell line
//
ID   HEK293T
AC   CVCL_0063
SY   293T; 293-T; HEK-293T; HEK 293T
DR   ATCC; CRL-3216
OX   NCBI_TaxID=9606; ! Homo sapiens (Human)
HI   CVCL_0045 ! HEK293
SX   Female
CA   Transformed cell line
//
ID   MDA-MB-231
AC   CVCL_0062
SY   MDA-MB 231; MDAMB231; MDA.MB.231; MDA231
DR   ATCC; HTB-26
DR   DepMap; ACH-000768
DI   NCIt; C4194; Invasive breast carcinoma of no special type
OX   NCBI_TaxID=9606; ! Homo sapiens (Human)
SX   Female
AG   51Y
CA   Cancer cell line
//
ID   U2OS
AC   CVCL_0042
SY   U-2 OS; U-2OS; U2-OS; U 2 OS
DR   ATCC; HTB-96
DR   DepMap; ACH-000364
DI   NCIt; C9145; Osteosarcoma
OX   NCBI_TaxID=9606; ! Homo sapiens (Human)
SX   Female
AG   15Y
CA   Cancer cell line
//
ID   THP-1
AC   CVCL_0006
SY   THP1; THP 1; Tohoku Hospital Pediatrics-1
DR   ATCC; TIB-202
DR   DepMap; ACH-000146
DI   NCIt; C9162; Childhood acute monocytic leukemia
OX   NCBI_TaxID=9606; ! Homo sapiens (Human)
SX   Male
AG   1Y
CA   Cancer cell line
//
ID   NIH 3T3
AC   CVCL_0594
SY   NIH3T3; NIH-3T3
OX   NCBI_TaxID=10090; ! Mus musculus (Mouse)
CA   Spontaneously immortalized cell line
//
"""

#: accession → (Cellosaurus name, sex) of the fixture's human lines.
CELLOSAURUS_LINES = {
    "CVCL_0023": ("A-549", "Male"),
    "CVCL_0027": ("Hep-G2", "Male"),
    "CVCL_1098": ("Hep-G2/C3A", "Male"),
    "CVCL_0459": ("NCI-H460", "Male"),
    "CVCL_0031": ("MCF-7", "Female"),
    "CVCL_0132": ("A-375", "Female"),
    "CVCL_0035": ("PC-3", "Male"),
    "CVCL_0004": ("K-562", "Female"),
    "CVCL_0063": ("HEK293T", "Female"),
    "CVCL_0062": ("MDA-MB-231", "Female"),
    "CVCL_0042": ("U2OS", "Female"),
    "CVCL_0006": ("THP-1", "Male"),
}

# --------------------------------------------------------------------------------------
# DepMap sample_info.csv (21Q1 layout, a few lines; one without RRID)
# --------------------------------------------------------------------------------------

DEPMAP_CSV = """\
DepMap_ID,stripped_cell_line_name,CCLE_Name,alias,COSMIC_ID,lineage,sex,source,RRID,disease
ACH-000681,A549,A549_LUNG,"",905949,lung,Male,ATCC,CVCL_0023,Lung Cancer
ACH-000739,HEPG2,HEPG2_LIVER,"",1240149,liver,Male,ATCC,CVCL_0027,Liver Cancer
ACH-001021,C3A,C3A_LIVER,"",,liver,Male,ATCC,CVCL_1098,Liver Cancer
ACH-000463,NCIH460,NCIH460_LUNG,"",905944,lung,Male,ATCC,CVCL_0459,Lung Cancer
ACH-000019,MCF7,MCF7_BREAST,"",905946,breast,Female,ATCC,CVCL_0031,Breast Cancer
ACH-000364,U2OS,U2OS_BONE,"U2-OS, U-2 OS",,bone,Female,ATCC,CVCL_0042,Bone Cancer
ACH-001310,HA1E,HA1E_KIDNEY,"",,engineered_kidney,Unknown,Broad,CVCL_VU89,Engineered
ACH-002999,NOVELX1,NOVELX1_SKIN,"",,skin,Female,Academic lab,,Skin Cancer
"""

# --------------------------------------------------------------------------------------
# LINCS cellinfo.tsv (2015 API layout)
# --------------------------------------------------------------------------------------

LINCS_CELLINFO_TSV = (
    "cell_id\tcell_histology\tcell_lineage\tcell_source\tcell_source_id\tcell_type\tgender"
    "\tis_from_metastasis\tlincs_status\tmetastatic_site\n"
    "A549\tcarcinoma\tlung\tATCC\tCCL-185\tcancer\tM\tN\tcore_cline\t\n"
    "HA1E\tnormal kidney\tkidney\tBill Hahn, Broad Institute\t\timmortalized normal\t\t\t"
    "core_cline\t\n"
    "HEPG2\tcarcinoma\tliver\tATCC\tHB-8065\tcancer\tM\tN\tcore_cline\t\n"
    "PHH\tnormal primary liver\tliver\tCellzDirect\t\tprimary\t\t\tcore_pline\t\n"
    "NEU.KCL\tnormal terminally differentiated neuron treated with KCL\tneural\t\t\tprimary"
    "\t\t\tcore_pline\t\n"
)

# --------------------------------------------------------------------------------------
# HGNC complete set (the columns the parser reads, in the file's order; '|' lists quoted)
# --------------------------------------------------------------------------------------

HGNC_COLUMNS = [
    "hgnc_id", "symbol", "name", "locus_group", "locus_type", "status", "alias_symbol",
    "prev_symbol", "date_modified", "entrez_id", "ensembl_gene_id",
]  # fmt: skip

HGNC_ROWS = [
    ("HGNC:11998", "TP53", "tumor protein p53", "protein-coding gene", "P53|LFS1", "",
     "2024-10-01", "7157", "ENSG00000141510"),
    ("HGNC:1717", "SEPTIN7", "septin 7", "protein-coding gene", "CDC3|NBLA02942",
     "SEPT7|CDC10", "2024-05-12", "989", "ENSG00000122545"),
    ("HGNC:26077", "MARCHF1", "membrane associated ring-CH-type finger 1",
     "protein-coding gene", "RNF171", "MARCH1", "2023-01-20", "55016", "ENSG00000145416"),
    ("HGNC:26189", "MTARC1", "mitochondrial amidoxime reducing component 1",
     "protein-coding gene", "MOSC1", "MARC1", "2023-01-20", "64757", "ENSG00000186205"),
    ("HGNC:4931", "HLA-A", "major histocompatibility complex, class I, A",
     "protein-coding gene", "", "HLAA", "2024-01-10", "3105", "ENSG00000206503"),
    ("HGNC:8622", "PAX8", "paired box 8", "protein-coding gene", "", "", "2023-01-20",
     "7849", "ENSG00000125618"),
    ("HGNC:33275", "PAX8-AS1", "PAX8 antisense RNA 1", "non-coding RNA", "", "",
     "2023-01-20", "100009613", "ENSG00000189223"),
    ("HGNC:90001", "AAA1", "test gene one", "protein-coding gene", "BBB2|DDD4", "", "2020-01-01",
     "900001", "ENSG00000900001"),
    ("HGNC:90002", "BBB2", "test gene two", "protein-coding gene", "DDD4|CCC3", "",
     "2020-01-01", "900002", "ENSG00000900002"),
    ("HGNC:90003", "EEE5", "test gene three", "protein-coding gene", "", "CCC3", "2020-01-01",
     "900003", ""),
    ("HGNC:37133", "A1BG-AS1", "A1BG antisense RNA 1", "non-coding RNA", "FLJ23569",
     "NCRNA00181|A1BGAS|A1BG-AS", "2013-06-27", "503538", "ENSG00000268895"),
]  # fmt: skip


def _quote(v: str) -> str:
    return f'"{v}"' if "|" in v else v


def hgnc_text(rows: list[tuple[str, ...]] | None = None) -> str:
    lines = ["\t".join(HGNC_COLUMNS)]
    for hgnc_id, sym, name, group, alias, prev, date, entrez, ens in rows or HGNC_ROWS:
        fields = [hgnc_id, sym, name, group, "gene with protein product", "Approved", alias,
                  prev, date, entrez, ens]  # fmt: skip
        lines.append("\t".join(_quote(f) for f in fields))
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (gzip-compressed when the name ends in ``.gz``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def source_dir(root: Path) -> Path:
    """A ``--from`` folder with HGNC (gz), Cellosaurus, DepMap and LINCS files."""
    src = root / "upstream"
    write(src / "hgnc" / "hgnc_complete_set.txt.gz", hgnc_text())
    write(src / "cells" / "cellosaurus.txt", CELLOSAURUS_TXT)
    write(src / "cells" / "sample_info_21Q1.csv", DEPMAP_CSV)
    write(src / "lincs" / "cellinfo.tsv", LINCS_CELLINFO_TSV)
    write(src / "README.txt", "notes that no parser reads\n")
    write(src / ".hidden" / "cellosaurus.txt", "ignored")
    return src

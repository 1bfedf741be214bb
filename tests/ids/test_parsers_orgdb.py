"""Genes from Bioconductor's org.Hs.eg.db SQLite file, alone and folded into HGNC's."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from perturbridge.errors import FormatError
from perturbridge.ids.genes import GeneResolver
from perturbridge.ids.parsers_orgdb import SOURCE_ORGDB, parse_orgdb_sqlite
from perturbridge.ids.parsers_packages import installed_package_sources
from perturbridge.ids.store import RefStore

from ._fixtures import hgnc_text, write

#: (Entrez id, symbol, name, type, aliases, Ensembl ids): TP53 and SEPTIN7 are HGNC
#: genes of the fixture (hgnc_text); the last two only NCBI knows.
ORGDB_GENES = [
    (
        "7157",
        "TP53",
        "tumor protein p53",
        "protein-coding",
        ["P53", "TRP53X"],
        ["ENSG00000141510"],
    ),
    (
        "989",
        "SEPTIN7",
        "septin 7",
        "protein-coding",
        ["SEPT7"],
        ["ENSG00000122545", "ENSG00000999999"],
    ),
    (
        "100500001",
        "LOC100500001",
        "uncharacterized LOC100500001",
        "ncRNA",
        ["AC000068.1"],
        ["ENSG00000888888"],
    ),
    ("100500002", "MIR9999", "microRNA 9999", "ncRNA", [], []),
]


def write_orgdb(path: Path, genes=ORGDB_GENES, *, taxid: str = "9606") -> Path:
    """A minimal org.Hs.eg.sqlite with the tables and columns of the real one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE metadata (name VARCHAR(80) PRIMARY KEY, value VARCHAR(255));
        CREATE TABLE genes (_id INTEGER PRIMARY KEY, gene_id VARCHAR(10) NOT NULL UNIQUE);
        CREATE TABLE gene_info (_id INTEGER NOT NULL UNIQUE, gene_name VARCHAR(255) NOT NULL,
                                symbol VARCHAR(80) NOT NULL);
        CREATE TABLE alias (_id INTEGER NOT NULL, alias_symbol VARCHAR(80) NOT NULL);
        CREATE TABLE ensembl (_id INTEGER NOT NULL, ensembl_id VARCHAR(20) NOT NULL);
        CREATE TABLE genetype (_id INTEGER NOT NULL, gene_type VARCHAR(20) NOT NULL);
        """
    )
    con.executemany(
        "INSERT INTO metadata VALUES (?, ?)", [("TAXID", taxid), ("EGSOURCEDATE", "2022-Sep12")]
    )
    for i, (entrez, sym, name, kind, aliases, ens) in enumerate(genes, start=1):
        con.execute("INSERT INTO genes VALUES (?, ?)", (i, entrez))
        con.execute("INSERT INTO gene_info VALUES (?, ?, ?)", (i, name, sym))
        con.execute("INSERT INTO genetype VALUES (?, ?)", (i, kind))
        # the real alias table lists the symbol too
        con.executemany("INSERT INTO alias VALUES (?, ?)", [(i, a) for a in [sym, *aliases]])
        con.executemany("INSERT INTO ensembl VALUES (?, ?)", [(i, e) for e in ens])
    con.commit()
    con.close()
    return path


def test_parse_orgdb_tables(tmp_path: Path):
    t = parse_orgdb_sqlite(write_orgdb(tmp_path / "org.Hs.eg.sqlite"))
    genes = t["genes"].set_index("entrez_id")
    assert genes.loc["7157", "hgnc_id"] == "ENTREZ:7157"
    assert genes.loc["989", "ensembl_gene_id"] == "ENSG00000122545"  # the first, sorted
    assert pd.isna(genes.loc["100500002", "ensembl_gene_id"])
    assert genes.loc["100500001", "locus_group"] == "ncRNA"
    assert genes.attrs["ref_version"] == "Entrez Gene 2022-Sep12"
    syn = t["gene_synonyms"]
    of_989 = syn[syn["hgnc_id"] == "ENTREZ:989"]
    assert sorted(map(tuple, of_989[["kind", "synonym"]].to_numpy())) == [
        ("ensembl", "ENSG00000122545"),
        ("ensembl", "ENSG00000999999"),
        ("entrez", "989"),
        ("ncbi_alias", "SEPT7"),
        ("ncbi_symbol", "SEPTIN7"),
    ]


def test_parse_orgdb_errors(tmp_path: Path):
    with pytest.raises(FormatError, match="taxon 10090"):
        parse_orgdb_sqlite(write_orgdb(tmp_path / "mouse" / "org.Hs.eg.sqlite", taxid="10090"))
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE x (a INTEGER)")
    con.close()
    with pytest.raises(FormatError, match=r"not an org\.\*\.eg\.db SQLite file.*'genes'"):
        parse_orgdb_sqlite(other)
    bad = write(tmp_path / "text.sqlite", "not a database\n")
    with pytest.raises(FormatError, match=r"text\.sqlite"):
        parse_orgdb_sqlite(bad)


@pytest.fixture
def orgdb_store(tmp_path: Path) -> RefStore:
    write(tmp_path / "src" / "hgnc_complete_set.txt", hgnc_text())
    write_orgdb(tmp_path / "src" / "org.Hs.eg.sqlite")
    return RefStore.build(source_dir=tmp_path / "src", out=tmp_path / "refs")


def test_orgdb_genes_fold_into_hgnc(orgdb_store: RefStore):
    queries = [
        "TP53",  # HGNC symbol
        "7157",  # Entrez id of an HGNC gene
        "ENSG00000999999",  # an Ensembl id only NCBI gives SEPTIN7
        "TRP53X",  # an NCBI alias of TP53 (not in the HGNC fixture)
        "100500001",  # a gene HGNC does not know, with an Ensembl id
        "AC000068.1",  # its clone-based name (an NCBI alias)
        "MIR9999",  # a gene HGNC does not know, without an Ensembl id
    ]
    out = GeneResolver.from_store(orgdb_store).resolve(queries).set_index("input")
    assert (out["status"] == "resolved").all(), out[["status", "candidates"]]
    assert out.loc["7157", "hgnc_id"] == out.loc["TP53", "hgnc_id"] == "HGNC:11998"
    assert out.loc["ENSG00000999999", "symbol"] == "SEPTIN7"
    assert out.loc["ENSG00000999999", "hgnc_id"].startswith("HGNC:")
    assert out.loc["TRP53X", "match_type"] == "ncbi_alias"
    assert out.loc["TRP53X", "hgnc_id"] == "HGNC:11998"
    assert out.loc["100500001", "hgnc_id"] == "ENTREZ:100500001"
    assert out.loc["AC000068.1", "ensembl_gene_id"] == "ENSG00000888888"
    assert out.loc["MIR9999", "hgnc_id"] == "ENTREZ:100500002"
    assert pd.isna(out.loc["MIR9999", "ensembl_gene_id"])
    assert SOURCE_ORGDB in {i["parser"] for i in orgdb_store.manifest["inputs"]}


def test_orgdb_never_makes_an_hgnc_id_ambiguous(tmp_path: Path):
    # NCBI gives TP53's Ensembl id to another gene: HGNC's answer stands
    genes = [*ORGDB_GENES, ("555", "OTHER", "other gene", "protein-coding", [],
                            ["ENSG00000141510"])]  # fmt: skip
    write(tmp_path / "src" / "hgnc_complete_set.txt", hgnc_text())
    write_orgdb(tmp_path / "src" / "org.Hs.eg.sqlite", genes)
    st = RefStore.build(source_dir=tmp_path / "src", out=tmp_path / "refs")
    out = GeneResolver.from_store(st).resolve(["ENSG00000141510", "555"])
    assert out["status"].tolist() == ["resolved", "resolved"]
    assert out["symbol"].tolist() == ["TP53", "OTHER"]


def test_orgdb_package_source_found_in_an_r_library(tmp_path: Path, monkeypatch, no_network):
    lib = tmp_path / "Rlib"
    write(lib / "org.Hs.eg.db" / "DESCRIPTION", "Package: org.Hs.eg.db\nVersion: 3.16.0\n")
    write_orgdb(lib / "org.Hs.eg.db" / "extdata" / "org.Hs.eg.sqlite")
    monkeypatch.setattr("perturbridge.ids.parsers_packages.R_LIBRARIES", ())
    monkeypatch.setenv("R_LIBS", str(lib))
    found, skipped = installed_package_sources([SOURCE_ORGDB])
    assert not skipped and found[0].version == "3.16.0"
    write(tmp_path / "src" / "hgnc_complete_set.txt", hgnc_text())
    st = RefStore.build(
        source_dir=tmp_path / "src", out=tmp_path / "refs", package_sources=[SOURCE_ORGDB]
    )
    entry = next(i for i in st.manifest["inputs"] if i["parser"] == SOURCE_ORGDB)
    assert entry["package"] == "org.Hs.eg.db" and entry["package_version"] == "3.16.0"
    assert entry["file"] == "extdata/org.Hs.eg.sqlite"
    assert GeneResolver.from_store(st).resolve(["TRP53X"])["symbol"].tolist() == ["TP53"]
    # not installed: skipped with the reason, and refused when asked for by name
    monkeypatch.setenv("R_LIBS", str(tmp_path / "nowhere"))
    _found, skipped = installed_package_sources([SOURCE_ORGDB])
    assert "r-bioc-org.hs.eg.db" in skipped[SOURCE_ORGDB]


REAL_ORGDB = Path("/usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite")


def test_real_orgdb_package(no_network):
    found, skipped = installed_package_sources([SOURCE_ORGDB])
    if skipped:
        pytest.skip(f"org.Hs.eg.db not installed: {skipped[SOURCE_ORGDB]}")
    t = parse_orgdb_sqlite(found[0].path)
    genes = t["genes"].set_index("entrez_id")
    assert len(genes) > 60_000
    # NCBI's facts, independent of the code: TP53 is Entrez 7157, ENSG00000141510
    assert genes.loc["7157", "symbol"] == "TP53"
    assert genes.loc["7157", "ensembl_gene_id"] == "ENSG00000141510"


# --------------------------------------------------------------------------------------
# OP3's clone-based lncRNA names


OP3_COLUMNS = ["TP53", "SEPT7", "AC000068.1", "AC000123.2"]  # OP3 de_train columns
GTF_LINE = (
    "chr22\tHAVANA\tgene\t17000000\t17001000\t.\t+\t.\t"
    'gene_id "ENSG00000999901.1"; gene_type "lncRNA"; gene_name "AC000068.1";\n'
)


@pytest.mark.shared_data
@pytest.mark.parametrize("with_gtf", [False, True])
def test_op3_clone_names_mapped_with_a_gene_table_else_kept_unresolved(tmp_path, with_gtf):
    from conftest import shared_path
    from perturbridge.ids.annotate import IdentityResolvers, annotate_samples
    from perturbridge.schema import validate_samples
    from perturbridge.sources import read_l1000

    columns = shared_path("op3_neurips2023_kaggle", "de_train_gene_columns.txt").read_text()
    assert set(OP3_COLUMNS) <= set(columns.split())
    plate = read_l1000(shared_path("l1000_cmapPy", "test_l1000.gct")).samples
    samples = plate[:, : len(OP3_COLUMNS)].copy()
    samples.var = pd.DataFrame({"symbol": OP3_COLUMNS}, index=pd.Index(OP3_COLUMNS))
    write(tmp_path / "src" / "hgnc_complete_set.txt", hgnc_text())
    if with_gtf:
        write(tmp_path / "src" / "genes.gtf", GTF_LINE)
    st = RefStore.build(source_dir=tmp_path / "src", out=tmp_path / "refs")
    resolvers = IdentityResolvers(genes=GeneResolver.from_store(st))
    out, ledger = annotate_samples(samples, resolvers, gene_rule="first")
    validate_samples(out)
    var = out.var.set_index("symbol")
    assert out.n_vars == len(OP3_COLUMNS)  # never dropped
    assert var.loc["TP53", "gene_status"] == "resolved"
    notes = ledger.to_frame()
    notes = notes[notes["stage"] == "ids_genes"].set_index("id")
    if with_gtf:
        assert out.var_names[OP3_COLUMNS.index("AC000068.1")] == "ENSG00000999901"
        assert var.loc["AC000068.1", "gene_status"] == "resolved"
    else:
        assert var.loc["AC000068.1", "gene_status"] == "unresolved"
        assert "AC000068.1" in out.var_names
        assert notes.loc["AC000068.1", "reason"] == "unresolved"
    # not in either table: kept under its name with a ledger note
    assert var.loc["AC000123.2", "gene_status"] == "unresolved"
    assert notes.loc["AC000123.2", "reason"] == "unresolved"

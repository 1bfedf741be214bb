"""Ensembl/GENCODE gene tables: GTF and BioMart parsing, and the merge with HGNC."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from perturbridge.errors import FormatError
from perturbridge.ids.genes import GeneResolver
from perturbridge.ids.parsers_genes_cells import parse_ensembl_genes

# GENCODE v44 layout: 9 tab-separated fields, attributes as key "value"; pairs.
# ruff: noqa: E501
GTF = """##description: evidence-based annotation of the human genome (GRCh38), version 44
##provider: GENCODE
chr17\tHAVANA\tgene\t7661779\t7687538\t.\t-\t.\tgene_id "ENSG00000141510.18"; gene_type "protein_coding"; gene_name "TP53"; level 2; hgnc_id "HGNC:11998";
chr17\tHAVANA\ttranscript\t7661779\t7687538\t.\t-\t.\tgene_id "ENSG00000141510.18"; transcript_id "ENST00000269305.9"; gene_type "protein_coding"; gene_name "TP53";
chr21\tHAVANA\tgene\t8205906\t8206236\t.\t+\t.\tgene_id "ENSG00000277117.5"; gene_type "lncRNA"; gene_name "AC000068.1"; level 2;
chr1\tHAVANA\tgene\t14404\t29570\t.\t-\t.\tgene_id "ENSG00000227232.5"; gene_type "unprocessed_pseudogene"; gene_name "WASH7P"; level 2;
"""


def _hgnc_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    genes = pd.DataFrame(
        {
            "hgnc_id": ["HGNC:11998", "HGNC:38034"],
            "symbol": ["TP53", "WASH7P"],
            "name": ["tumor protein p53", "WASP family homolog 7, pseudogene"],
            "locus_group": ["protein-coding gene", "pseudogene"],
            "status": ["Approved", "Approved"],
            "entrez_id": ["7157", "653635"],
            "ensembl_gene_id": ["ENSG00000141510", "ENSG00000227232"],
        }
    )
    syn = pd.DataFrame(
        {
            "hgnc_id": ["HGNC:11998", "HGNC:11998", "HGNC:38034", "HGNC:38034"],
            "synonym": ["TP53", "ENSG00000141510", "WASH7P", "ENSG00000227232"],
            "kind": ["symbol", "ensembl", "symbol", "ensembl"],
        }
    )
    return genes, syn


def test_gtf_gene_lines_become_tables(tmp_path: Path) -> None:
    path = tmp_path / "gencode.v44.basic.annotation.gtf.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(GTF)
    tables = parse_ensembl_genes(path)
    genes = tables["genes"]
    assert genes["ensembl_gene_id"].tolist() == [
        "ENSG00000141510",
        "ENSG00000277117",
        "ENSG00000227232",
    ]  # versions dropped, transcript lines skipped
    assert genes.loc[1, "symbol"] == "AC000068.1"
    assert genes.loc[1, "locus_group"] == "lncRNA"
    assert set(tables["gene_synonyms"]["kind"]) == {"ensembl_name", "ensembl"}


def test_biomart_export(tmp_path: Path) -> None:
    path = tmp_path / "mart_export.txt"
    path.write_text(
        "Gene stable ID\tGene stable ID version\tGene name\tGene type\n"
        "ENSG00000277117\tENSG00000277117.5\tAC000068.1\tlncRNA\n"
        "ENSG00000141510\tENSG00000141510.18\tTP53\tprotein_coding\n"
    )
    genes = parse_ensembl_genes(path)["genes"]
    assert genes["symbol"].tolist() == ["AC000068.1", "TP53"]


def test_bad_gtf_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.gtf"
    path.write_text("chr1\tHAVANA\tgene\t1\t2\n")
    with pytest.raises(FormatError, match=r"broken.gtf: line 1 has 5 tab-separated fields"):
        parse_ensembl_genes(path)


def test_merge_with_hgnc_names_clone_genes_without_duplicating(tmp_path: Path) -> None:
    path = tmp_path / "genes.gtf"
    path.write_text(GTF)
    ens = parse_ensembl_genes(path)
    h_genes, h_syn = _hgnc_tables()
    resolver = GeneResolver(
        pd.concat([h_genes, ens["genes"]], ignore_index=True),
        pd.concat([h_syn, ens["gene_synonyms"]], ignore_index=True),
    )
    res = resolver.resolve(["AC000068.1", "TP53", "ENSG00000141510.17", "ENSG00000277117"])
    assert res["status"].tolist() == ["resolved"] * 4
    assert res["ensembl_gene_id"].tolist() == [
        "ENSG00000277117",
        "ENSG00000141510",
        "ENSG00000141510",
        "ENSG00000277117",
    ]
    assert res.loc[0, "match_type"] == "ensembl_name"
    assert res.loc[1, "hgnc_id"] == "HGNC:11998"  # the HGNC record, not a second gene
    assert res.loc[2, "hgnc_id"] == "HGNC:11998"
    # without the Ensembl table the clone name is unknown
    alone = GeneResolver(h_genes, h_syn).resolve(["AC000068.1"])
    assert alone.loc[0, "status"] == "unresolved"

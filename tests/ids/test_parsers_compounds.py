"""Tests of perturbridge.ids.parsers_compounds: upstream compound tables → contracts."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from conftest import shared_path
from perturbridge.errors import FormatError
from perturbridge.ids import compound_ids, parsers_compounds as pc
from perturbridge.ids.tables import TABLE_COLUMNS, get_parser, list_parsers

COMPOUND_PARSERS = [
    "lincs_compoundinfo",
    "lincs_pertinfo",
    "repurposing_samples",
    "repurposing_drugs",
    "pubchem_synonyms",
    "pubchem_smiles",
    "pubchem_inchikey",
    "moabox_compounds",
    "user_compound_synonyms",
]


def check_contract(tables: dict[str, pd.DataFrame]) -> None:
    for name in ("compounds", "compound_synonyms"):
        cols = list(TABLE_COLUMNS[name])
        assert list(tables[name].columns[: len(cols)]) == cols, name
    assert str(tables["compounds"]["pubchem_cid"].dtype) == "Int64"
    assert (
        tables["compound_synonyms"]["kind"]
        .isin(["name", "alias", "vendor_name", "cas", "brd", "cid", "user"])
        .all()
    )


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def synonyms_of(tables: dict[str, pd.DataFrame], ref_id: str, kind: str) -> set[str]:
    syn = tables["compound_synonyms"]
    return set(syn.loc[(syn["ref_id"] == ref_id) & (syn["kind"] == kind), "synonym"])


# registry ------------------------------------------------------------------------------


def test_parsers_are_registered_with_their_tables() -> None:
    names = {p.name for p in list_parsers()}
    assert set(COMPOUND_PARSERS) <= names
    for name in COMPOUND_PARSERS:
        assert get_parser(name).tables == ("compounds", "compound_synonyms")


@pytest.mark.parametrize(
    ("file_name", "header", "parser"),
    [
        ("compoundinfo_beta.txt", "pert_id\tcmap_name\tcanonical_smiles", "lincs_compoundinfo"),
        ("lincs_pert_info2.tsv.gz", "pert_id\tpert_iname\tcompound_aliases", "lincs_compoundinfo"),
        ("pertinfo.tsv.gz", "pert_id\tpert_iname\tpert_type", "lincs_pertinfo"),
        ("GSE92742_Broad_LINCS_pert_info.txt.gz", "pert_id\tpert_iname", "lincs_pertinfo"),
        ("repurposing_samples_20200324.txt", "!comment", "repurposing_samples"),
        ("repurposing_drugs_20200324.txt", "pert_iname\tmoa", "repurposing_drugs"),
        ("CID-Synonym-filtered.gz", "2244\taspirin", "pubchem_synonyms"),
        ("CID-SMILES.gz", "2244\tCC(=O)O", "pubchem_smiles"),
        ("CID-InChI-Key.gz", "2244\tInChI=1S", "pubchem_inchikey"),
        ("MoABox_compounds_metadata.txt", "cmpd_sample_id\tinchi_key", "moabox_compounds"),
        ("compound_synonyms_mine.csv", "synonym,inchikey", "user_compound_synonyms"),
    ],
)
def test_file_names_and_headers_select_one_parser(file_name: str, header: str, parser: str) -> None:
    import fnmatch

    name = file_name.lower()
    names = {name, name[:-3]} if name.endswith(".gz") else {name}
    hits = [
        p
        for p in list_parsers()
        if p.name in COMPOUND_PARSERS
        and any(fnmatch.fnmatch(n, pat.lower()) for n in names for pat in p.patterns)
        and (p.sniff is None or p.sniff(header))
    ]
    assert [p.name for p in hits] == [parser]


# LINCS ---------------------------------------------------------------------------------

COMPOUNDINFO = (
    "pert_id\tcmap_name\ttarget\tmoa\tcanonical_smiles\tinchi_key\tcompound_aliases\n"
    "BRD-K92723993\timatinib\tABL1\tBCR-ABL inhibitor\t"
    "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1\t"
    "KTUFNOKKBVMGRW-UHFFFAOYSA-N\tgleevec|STI-571\n"
    "BRD-K92723993\timatinib\tKIT\tBCR-ABL inhibitor\t"
    "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1\t"
    "KTUFNOKKBVMGRW-UHFFFAOYSA-N\t\n"
    "BRD-A00000001\tBRD-A00000001\t\t\t\t\t\n"
)


def test_compoundinfo_one_record_per_compound_with_aliases(tmp_path: Path) -> None:
    tables = pc.parse_lincs_compoundinfo(write(tmp_path / "compoundinfo_beta.txt", COMPOUNDINFO))
    check_contract(tables)
    comp = tables["compounds"]
    assert comp["ref_id"].tolist() == ["BRD-K92723993", "BRD-A00000001"]
    assert comp.loc[0, "inchikey"] == "KTUFNOKKBVMGRW-UHFFFAOYSA-N"
    assert comp.loc[1, "smiles"] is None
    assert synonyms_of(tables, "BRD-K92723993", "alias") == {"gleevec", "STI-571"}
    assert synonyms_of(tables, "BRD-K92723993", "brd") == {"BRD-K92723993"}
    assert (comp["ref_source"] == "lincs_compoundinfo").all()


def test_compoundinfo_missing_columns_are_named(tmp_path: Path) -> None:
    path = write(tmp_path / "compoundinfo_beta.txt", "pert_id\tcanonical_smiles\nBRD-1\tC\n")
    with pytest.raises(FormatError, match=r"compoundinfo_beta\.txt: expected a column 'cmap_name'"):
        pc.parse_lincs_compoundinfo(path)


PERTINFO = (
    "pert_id\tpert_iname\tpert_type\tpubchem_cid\tcanonical_smiles\tinchi_key\tinchi_string\n"
    "BRD-K38775274\tdexamethasone\ttrt_cp\t5743\tC\tInChIKey=UREBDLICKHMUKA-CXSFZGCWSA-N\t"
    "InChI=1S/CH4/h1H4\n"
    "BRD-K45192137\tdexamethasone\ttrt_cp\t-666\tC\tInChIKey=UREBDLICKHMUKA-UWJHKKLZSA-N\t-666\n"
    "TRCN0000000001\tTP53\ttrt_sh\t-666\t-666\t-666\t-666\n"
    "DMSO\tDMSO\tctl_vehicle\t-666\t-666\t-666\t-666\n"
    "BRD-K00000002\tstray\ttrt_cp\tMLS000000001\tC\t-666\t-666\n"
)


def test_pertinfo_prefixes_placeholders_and_non_compounds(tmp_path: Path) -> None:
    tables = pc.parse_lincs_pertinfo(write(tmp_path / "pertinfo.tsv.gz", PERTINFO))
    check_contract(tables)
    comp = tables["compounds"].set_index("ref_id")
    assert "TRCN0000000001" not in comp.index  # shRNA: not a compound
    assert "DMSO" in comp.index  # the vehicle is
    assert comp.loc["BRD-K38775274", "inchikey"] == "UREBDLICKHMUKA-CXSFZGCWSA-N"
    assert comp.loc["BRD-K38775274", "pubchem_cid"] == 5743
    assert pd.isna(comp.loc["BRD-K45192137", "pubchem_cid"])
    assert comp.loc["BRD-K38775274", "inchi"] == "InChI=1S/CH4/h1H4"
    assert comp.loc["BRD-K45192137", "inchi"] is None
    # a stray id in the CID column: no CID, kept as an alias (never dropped silently)
    assert pd.isna(comp.loc["BRD-K00000002", "pubchem_cid"])
    assert synonyms_of(tables, "BRD-K00000002", "alias") == {"MLS000000001"}


@pytest.mark.shared_data
def test_real_lincs_compoundinfo_dexamethasone_pitfall() -> None:
    tables = pc.parse_lincs_compoundinfo(
        shared_path("l1000_signatureSearch", "lincs_pert_info2.tsv.gz")
    )
    check_contract(tables)
    comp = tables["compounds"]
    assert len(comp) == 34419
    dex = comp[(comp["name"] == "dexamethasone") & (comp["pubchem_cid"] == 5743)]
    # several Broad ids with different stereo (and even ester) InChIKeys share CID 5743
    assert dex["inchikey"].nunique() > 2
    assert not comp["inchikey"].dropna().str.startswith("InChIKey=").any()


@pytest.mark.shared_data
def test_real_pertinfo_inchikey_prefix_removed() -> None:
    tables = pc.parse_lincs_pertinfo(shared_path("l1000_dhimmel_lincs", "pertinfo.tsv.gz"))
    check_contract(tables)
    keys = tables["compounds"]["inchikey"].dropna()
    assert len(keys) > 20000
    assert keys.str.match(r"^[A-Z]{14}-[A-Z]{10}-[A-Z]$").all()


# Repurposing Hub -----------------------------------------------------------------------

SAMPLES = (
    "!Drug Repurposing Hub samples\n!version 2020-03-24\n"
    "broad_id\tpert_iname\tqc_incompatible\tpurity\tvendor\tcatalog_no\tvendor_name\t"
    "expected_mass\tsmiles\tInChIKey\tpubchem_cid\tdeprecated_broad_id\n"
    "BRD-K92723993-001-05-3\timatinib\t0\t99\tSelleck\tS1026\tImatinib Mesylate\t493.6\t"
    "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1\t"
    "KTUFNOKKBVMGRW-UHFFFAOYSA-N\t5291\tBRD-K00000001-001-01-1|BRD-K00000001-001-01-1\n"
)


def test_repurposing_samples_comments_vendor_names_and_brd_prefixes(tmp_path: Path) -> None:
    tables = pc.parse_repurposing_samples(
        write(tmp_path / "repurposing_samples_20200324.txt", SAMPLES)
    )
    check_contract(tables)
    rid = "BRD-K92723993-001-05-3"
    assert tables["compounds"]["ref_id"].tolist() == [rid]
    assert synonyms_of(tables, rid, "vendor_name") == {"Imatinib Mesylate"}
    assert synonyms_of(tables, rid, "brd") == {
        rid,
        "BRD-K92723993",
        "BRD-K00000001-001-01-1",
        "BRD-K00000001",
    }
    assert synonyms_of(tables, rid, "cid") == {"5291"}


def test_repurposing_drugs_names_without_structure(tmp_path: Path) -> None:
    path = write(
        tmp_path / "repurposing_drugs_20200324.txt",
        "!comment\npert_iname\tclinical_phase\tmoa\nimatinib\tLaunched\tBCR-ABL inhibitor\n",
    )
    tables = pc.parse_repurposing_drugs(path)
    check_contract(tables)
    assert tables["compounds"][["ref_id", "name", "smiles"]].values.tolist() == [
        ["imatinib", "imatinib", None]
    ]


@pytest.mark.shared_data
def test_real_repurposing_tables() -> None:
    samples = pc.parse_repurposing_samples(
        shared_path("reference_compounds_repurposing_hub", "repurposing_samples_20200324.txt")
    )
    drugs = pc.parse_repurposing_drugs(
        shared_path("reference_compounds_repurposing_hub", "repurposing_drugs_20200324.txt")
    )
    check_contract(samples)
    check_contract(drugs)
    assert len(samples["compounds"]) == 13553
    assert len(drugs["compounds"]) == 6798
    brd = samples["compound_synonyms"].query("kind == 'brd'")["synonym"]
    assert brd.str.len().isin([13, 22]).all()


# PubChem extracts ----------------------------------------------------------------------


def test_pubchem_synonyms_first_name_and_cas(tmp_path: Path) -> None:
    text = "2244\taspirin\n2244\t50-78-2\n2244\tAcetylsalicylic acid\n5291\timatinib\n"
    tables = pc.parse_pubchem_synonyms(write(tmp_path / "CID-Synonym-filtered.gz", text))
    check_contract(tables)
    comp = tables["compounds"].set_index("ref_id")
    assert comp.loc["2244", "name"] == "aspirin"
    assert comp.loc["2244", "cas"] == "50-78-2"
    assert comp.loc["2244", "pubchem_cid"] == 2244
    assert synonyms_of(tables, "2244", "cas") == {"50-78-2"}
    assert synonyms_of(tables, "2244", "name") == {"aspirin", "Acetylsalicylic acid"}


def test_pubchem_smiles_and_inchikey(tmp_path: Path) -> None:
    smiles = pc.parse_pubchem_smiles(
        write(tmp_path / "CID-SMILES", "2244\tCC(=O)Oc1ccccc1C(=O)O\n702\tCCO\n")
    )
    keys = pc.parse_pubchem_inchikey(
        write(
            tmp_path / "CID-InChI-Key.gz",
            "702\tInChI=1S/C2H6O/c1-2-3/h3H,2H2,1H3\tLFQSCWFLJHTTHZ-UHFFFAOYSA-N\n",
        )
    )
    check_contract(smiles)
    check_contract(keys)
    assert smiles["compounds"]["smiles"].tolist() == ["CC(=O)Oc1ccccc1C(=O)O", "CCO"]
    assert keys["compounds"].loc[0, "inchikey"] == "LFQSCWFLJHTTHZ-UHFFFAOYSA-N"
    assert keys["compounds"].loc[0, "inchi"].startswith("InChI=1S/C2H6O")


def test_pubchem_extract_with_a_header_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "CID-SMILES", "cid\tsmiles\n2244\tCC\n")
    with pytest.raises(FormatError, match="first column should be a PubChem CID"):
        pc.parse_pubchem_smiles(path)


def test_pubchem_bad_inchikey_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "CID-InChI-Key", "702\tInChI=1S/x\tnot-a-key\n")
    with pytest.raises(FormatError, match="column 3 should hold InChIKeys"):
        pc.parse_pubchem_inchikey(path)


# MoA Box and user tables ---------------------------------------------------------------


def test_moabox_ids_cas_and_rows_without_structure(tmp_path: Path) -> None:
    text = (
        "cmpd_sample_id\tinchi_key\tsmiles\tcas_number\tmoa\n"
        "CB-43-EP73\t\t\t\t\n"
        "EF-73-IP33\tAAAQFGUYHFJNHI-SFHVURJKSA-N\tCCO\t1260907-17-2\tBET inhibitor\n"
    )
    tables = pc.parse_moabox_compounds(write(tmp_path / "MoABox_compounds_metadata.txt", text))
    check_contract(tables)
    comp = tables["compounds"].set_index("ref_id")
    assert comp.index.tolist() == ["CB-43-EP73", "EF-73-IP33"]  # nothing dropped
    assert comp.loc["EF-73-IP33", "cas"] == "1260907-17-2"
    assert synonyms_of(tables, "EF-73-IP33", "alias") == {"EF-73-IP33"}
    assert synonyms_of(tables, "EF-73-IP33", "cas") == {"1260907-17-2"}


@pytest.mark.shared_data
def test_real_moabox_table() -> None:
    tables = pc.parse_moabox_compounds(
        shared_path("drugseq_novartis_moabox", "MoABox_compounds_metadata.txt")
    )
    check_contract(tables)
    assert len(tables["compounds"]) == 4345
    assert tables["compounds"]["smiles"].notna().sum() > 3500


def test_user_synonyms_targets(tmp_path: Path) -> None:
    text = (
        "synonym,inchikey,smiles,pubchem_cid,name\n"
        "Gleevec,KTUFNOKKBVMGRW-UHFFFAOYSA-N,,,\n"
        "Glivec,KTUFNOKKBVMGRW-UHFFFAOYSA-N,,,\n"
        "my ethanol,,CCO,,\n"
        "ASA,,,2244,\n"
        "cmpd-7,,,,imatinib\n"
    )
    tables = pc.parse_user_compound_synonyms(write(tmp_path / "compound_synonyms.csv", text))
    check_contract(tables)
    comp = tables["compounds"]
    assert len(comp) == 4  # Gleevec and Glivec name one target
    assert (comp["ref_source"] == "user_compound_synonyms").all()
    syn = tables["compound_synonyms"]
    assert set(syn["kind"]) == {"user"}
    target = comp.loc[comp["inchikey"].notna(), "ref_id"].item()
    assert synonyms_of(tables, target, "user") == {"Gleevec", "Glivec"}
    assert comp.loc[comp["name"] == "imatinib", "smiles"].isna().all()


def test_user_synonyms_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="expected a column 'synonym'"):
        pc.parse_user_compound_synonyms(write(tmp_path / "compound_synonyms_a.csv", "name\nx\n"))
    with pytest.raises(FormatError, match="at least one of the columns"):
        pc.parse_user_compound_synonyms(
            write(tmp_path / "compound_synonyms_b.csv", "synonym,other\nx,y\n")
        )
    with pytest.raises(FormatError, match=r"none of \['smiles'\].*\['orphan'\]"):
        pc.parse_user_compound_synonyms(
            write(tmp_path / "compound_synonyms_c.csv", "synonym,smiles\nok,CCO\norphan,\n")
        )
    with pytest.raises(FormatError, match="malformed InChIKeys"):
        pc.parse_user_compound_synonyms(
            write(tmp_path / "compound_synonyms_d.csv", "synonym,inchikey\nx,ABC\n")
        )


# helpers -------------------------------------------------------------------------------


def test_cas_checksum_and_brd_prefix() -> None:
    assert compound_ids.is_valid_cas("50-78-2")
    assert not compound_ids.is_valid_cas("50-78-3")
    assert not compound_ids.is_valid_cas("5078-2")
    assert compound_ids.brd_prefix("brd-k92723993-001-05-3") == "BRD-K92723993"
    assert compound_ids.brd_prefix("BRD-K92723993") == "BRD-K92723993"
    assert compound_ids.brd_prefix("BRD4770") is None


def test_bad_cid_in_a_strict_table_names_file_and_values(tmp_path: Path) -> None:
    path = write(tmp_path / "CID-SMILES", "2244\tCC\n12x\tCC\n")
    with pytest.raises(FormatError, match=r"CID-SMILES.*\['12x'\]"):
        pc.parse_pubchem_smiles(path)

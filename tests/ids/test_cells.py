"""Cell contexts: parsers, name normalization, Cell Ontology, L1000 cell ids."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conftest import shared_path
from perturbridge.errors import FormatError, SchemaError
from perturbridge.ids.cell_ontology import CELL_ONTOLOGY_TERMS, cell_ontology_tables
from perturbridge.ids.cells import CellResolver, cell_key, coverage, strip_ccle_suffix
from perturbridge.ids.parsers_genes_cells import (
    parse_cell_synonyms_csv,
    parse_cellosaurus,
    parse_depmap_sample_info,
    parse_lincs_cellinfo,
)
from perturbridge.ids.store import RefStore

from ._fixtures import (
    CELLOSAURUS_LINES,
    CELLOSAURUS_TXT,
    DEPMAP_CSV,
    LINCS_CELLINFO_TSV,
    source_dir,
    write,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> RefStore:
    root = tmp_path_factory.mktemp("cells")
    return RefStore.build(source_dir=source_dir(root), out=root / "refs")


@pytest.fixture(scope="module")
def resolver(store: RefStore) -> CellResolver:
    return CellResolver.from_store(store)


def acc(resolver: CellResolver, *values: str) -> list[str | None]:
    return resolver.resolve(values)["accession"].tolist()


# --------------------------------------------------------------------------------------
# parsers
# --------------------------------------------------------------------------------------


def test_parse_cellosaurus_fixture(tmp_path: Path):
    t = parse_cellosaurus(write(tmp_path / "cellosaurus.txt", CELLOSAURUS_TXT))
    cells = t["cells"].set_index("accession")
    assert len(cells) == 13
    for accession, (name, sex) in CELLOSAURUS_LINES.items():
        assert cells.loc[accession, "name"] == name
        assert cells.loc[accession, "sex"] == sex
        assert cells.loc[accession, "species"] == "Homo sapiens"
    assert cells.loc["CVCL_0023", "disease"] == "Lung adenocarcinoma"
    assert cells.loc["CVCL_0023", "category"] == "Cancer cell line"
    assert cells.loc["CVCL_0594", "species"] == "Mus musculus"
    assert cells.loc["CVCL_0063", "disease"] is None
    syn = t["cell_synonyms"]
    a549 = syn[syn["accession"] == "CVCL_0023"].groupby("kind")["synonym"].agg(list).to_dict()
    assert a549 == {
        "depmap_id": ["ACH-000681"],
        "name": ["A-549"],
        "synonym": ["A549", "A 549", "A.549", "NCI-A549"],
    }
    assert t["cells"].attrs["ref_version"] == "48.0"


@pytest.mark.shared_data
def test_fixture_accessions_agree_with_depmap():
    depmap = pd.read_csv(shared_path("reference_cell_lines", "depmap_sample_info.csv"))
    known = set(depmap["RRID"].dropna())
    # every fixture line that DepMap lists has the accession DepMap gives it
    assert set(CELLOSAURUS_LINES) - {"CVCL_0063"} <= known  # HEK293T is not in DepMap
    ids = parse_depmap_sample_info(shared_path("reference_cell_lines", "depmap_sample_info.csv"))
    syn = ids["cell_synonyms"]
    by_name = syn[syn["kind"] == "stripped_name"].set_index("synonym")["accession"]
    assert by_name["A549"] == "CVCL_0023"
    assert by_name["NCIH460"] == "CVCL_0459"
    assert by_name["C3A"] == "CVCL_1098"


def test_cellosaurus_errors(tmp_path: Path):
    cut = CELLOSAURUS_TXT.index("ID   Hep-G2\n") + len("ID   Hep-G2\nAC   CVCL_0027\n")
    truncated = CELLOSAURUS_TXT[:cut]
    with pytest.raises(FormatError, match="no terminating '//'; the file is truncated"):
        parse_cellosaurus(write(tmp_path / "a" / "cellosaurus.txt", truncated))
    two_ids = CELLOSAURUS_TXT.replace(
        "CA   Cancer cell line\n//\nID   Hep-G2\n", "ID   Hep-G2\n", 1
    )
    with pytest.raises(FormatError, match="new ID line before the '//'"):
        parse_cellosaurus(write(tmp_path / "b" / "cellosaurus.txt", two_ids))
    with pytest.raises(FormatError, match="no Cellosaurus records"):
        parse_cellosaurus(write(tmp_path / "c" / "cellosaurus.txt", "just a header\n"))
    no_ac = "ID   X\nSX   Male\n//\n"
    with pytest.raises(FormatError, match=r"cellosaurus.txt:1: record without an ID or AC"):
        parse_cellosaurus(write(tmp_path / "d" / "cellosaurus.txt", no_ac))


def test_parse_depmap_keys_by_rrid_with_placeholders(tmp_path: Path):
    t = parse_depmap_sample_info(write(tmp_path / "sample_info.csv", DEPMAP_CSV))
    cells = t["cells"].set_index("accession")
    assert cells.loc["CVCL_0023", "name"] == "A549"
    assert cells.loc["CVCL_0023", "disease"] == "Lung Cancer"
    assert cells.loc["DepMap:ACH-002999", "name"] == "NOVELX1"
    syn = t["cell_synonyms"]
    u2os = syn[syn["accession"] == "CVCL_0042"].groupby("kind")["synonym"].agg(sorted)
    assert u2os.to_dict() == {
        "ccle_name": ["U2OS_BONE"],
        "depmap_id": ["ACH-000364"],
        "stripped_name": ["U2OS"],
        "synonym": ["U-2 OS", "U2-OS"],
    }


def test_parse_depmap_model_csv_layout(tmp_path: Path):
    text = (
        "ModelID,CellLineName,StrippedCellLineName,CCLEName,RRID,Sex,OncotreePrimaryDisease\n"
        "ACH-000681,A549,A549,A549_LUNG,CVCL_0023,Male,Non-Small Cell Lung Cancer\n"
    )
    t = parse_depmap_sample_info(write(tmp_path / "Model.csv", text))
    assert t["cells"].iloc[0][["accession", "name", "sex", "disease"]].tolist() == [
        "CVCL_0023",
        "A549",
        "Male",
        "Non-Small Cell Lung Cancer",
    ]
    assert set(t["cell_synonyms"]["kind"]) == {"depmap_id", "ccle_name", "stripped_name", "name"}


def test_parse_depmap_errors(tmp_path: Path):
    with pytest.raises(SchemaError, match=r"column 'DepMap_ID'.*missing"):
        parse_depmap_sample_info(write(tmp_path / "a" / "sample_info.csv", "name,RRID\nA,B\n"))
    bad = "DepMap_ID,stripped_cell_line_name,RRID\nACH-1,A549,CVCL-0023\n"
    with pytest.raises(SchemaError, match=r"column 'RRID'.*CVCL_xxxx.*\['CVCL-0023'\]"):
        parse_depmap_sample_info(write(tmp_path / "b" / "sample_info.csv", bad))


def test_parse_lincs_cellinfo_variants(tmp_path: Path):
    t = parse_lincs_cellinfo(write(tmp_path / "cellinfo.tsv", LINCS_CELLINFO_TSV))
    cells = t["cells"].set_index("name")
    assert cells.loc["A549", "accession"] == "LINCS:A549"
    assert cells.loc["A549", "sex"] == "Male"
    assert set(t["cell_synonyms"]["kind"]) == {"lincs_id"}
    beta = (
        "cell_iname\tcellosaurus_id\tdonor_sex\tprimary_disease\tcell_type\tccle_name\n"
        "A549\tCVCL_0023\tM\tlung cancer\ttumor\tA549_LUNG\n"
        "NEWLINE\t-666\tF\tother\ttumor\t\n"
    )
    t = parse_lincs_cellinfo(write(tmp_path / "cellinfo_beta.txt", beta))
    assert t["cells"]["accession"].tolist() == ["CVCL_0023", "LINCS:NEWLINE"]
    syn = t["cell_synonyms"]
    assert syn[syn["kind"] == "ccle_name"]["synonym"].tolist() == ["A549_LUNG"]
    with pytest.raises(SchemaError, match="cell_id or cell_iname"):
        parse_lincs_cellinfo(write(tmp_path / "x" / "cellinfo.tsv", "a\tb\n1\t2\n"))


def test_user_cell_synonyms_win(tmp_path: Path):
    src = source_dir(tmp_path)
    # a lab calls its own HepG2 subclone "A549" (an absurd but decisive example)
    write(
        src / "cell_synonyms_lab.csv", "synonym,accession\nmy hep line,CVCL_0027\nA549,CVCL_0027\n"
    )
    res = CellResolver.from_store(RefStore.build(source_dir=src, out=tmp_path / "refs"))
    out = res.resolve(["my hep line", "A549"])
    assert out["accession"].tolist() == ["CVCL_0027", "CVCL_0027"]
    assert out["match_type"].tolist() == ["user", "user"]
    with pytest.raises(SchemaError, match="synonym and accession must not be empty"):
        parse_cell_synonyms_csv(write(tmp_path / "cell_synonyms.csv", "synonym,accession\n,X\n"))


# --------------------------------------------------------------------------------------
# normalization and resolution
# --------------------------------------------------------------------------------------


def test_cell_key_and_ccle_suffix():
    assert cell_key("Hep-G2") == cell_key("HEPG2") == cell_key("hep g2") == "HEPG2"
    assert strip_ccle_suffix("A549_LUNG") == "A549"
    assert strip_ccle_suffix("K562_HAEMATOPOIETIC_AND_LYMPHOID_TISSUE") == "K562"
    assert strip_ccle_suffix("A375_SKIN_CJ1_RESISTANT") is None
    assert strip_ccle_suffix("A549") is None


@pytest.mark.parametrize(
    ("value", "accession", "match_type"),
    [
        ("A549", "CVCL_0023", "name"),
        ("A-549", "CVCL_0023", "name"),
        ("a549", "CVCL_0023", "name"),
        ("A549_LUNG", "CVCL_0023", "ccle_name"),
        ("NCI-H460", "CVCL_0459", "name"),
        ("H460", "CVCL_0459", "synonym"),
        ("HEPG2", "CVCL_0027", "name"),
        ("HepG2/C3A", "CVCL_1098", "name"),
        ("C3A", "CVCL_1098", "stripped_name"),
        ("MCF7", "CVCL_0031", "name"),
        ("A375", "CVCL_0132", "name"),
        ("PC3", "CVCL_0035", "name"),
        ("K562", "CVCL_0004", "name"),
        ("HEK293T", "CVCL_0063", "name"),
        ("MDAMB231", "CVCL_0062", "name"),
        ("U-2 OS", "CVCL_0042", "name"),
        ("THP1", "CVCL_0006", "name"),
        ("HA1E", "CVCL_VU89", "stripped_name"),
        ("ACH-000681", "CVCL_0023", "depmap_id"),
        ("CVCL_0023", "CVCL_0023", "accession"),
    ],
)
def test_cell_line_spellings(resolver, value, accession, match_type):
    r = resolver.resolve([value]).iloc[0]
    assert (r["accession"], r["match_type"], r["status"]) == (accession, match_type, "resolved")


def test_resolved_record_comes_from_the_best_source(resolver):
    r = resolver.resolve(["A549"]).iloc[0]
    assert (r["name"], r["species"], r["sex"], r["disease"]) == (
        "A-549",
        "Homo sapiens",
        "Male",
        "Lung adenocarcinoma",
    )


def test_ccle_suffix_is_stripped_only_when_the_full_name_is_unknown(resolver):
    r = resolver.resolve(["MCF7_BREAST", "PC3_PROSTATE", "A549_LUNG"])
    assert r["accession"].tolist() == ["CVCL_0031", "CVCL_0035", "CVCL_0023"]
    assert r["normalization"].tolist() == ["", "ccle_suffix", ""]


@pytest.mark.parametrize(
    ("value", "accession"),
    [
        ("T cells CD4+", "CL:0000624"),
        ("T cells CD8+", "CL:0000625"),
        ("T regulatory cells", "CL:0000815"),
        ("NK cells", "CL:0000623"),
        ("B cells", "CL:0000236"),
        ("Myeloid cells", "CL:0000763"),
        ("T cell", "CL:0000084"),
        ("PBMC", "CL:2000001"),
        ("monocytes", "CL:0000576"),
        ("primary human hepatocytes", "CL:0000182"),
        ("PHH", "CL:0000182"),
        ("CL:0000236", "CL:0000236"),
    ],
)
def test_primary_cell_types_map_to_cell_ontology(resolver, value, accession):
    r = resolver.resolve([value]).iloc[0]
    assert (r["accession"], r["status"]) == (accession, "resolved")


def test_placeholders_ambiguity_and_unresolved(resolver):
    r = resolver.resolve(["NEU.KCL", "NOVELX1", "no such line", None]).set_index("input")
    assert r.loc["NEU.KCL", "status"] == "unresolved"  # a placeholder record only
    assert r.loc["NEU.KCL", "accession"] == "LINCS:NEU.KCL"
    assert r.loc["NOVELX1", "accession"] == "DepMap:ACH-002999"
    assert r.loc["no such line", "status"] == "unresolved"
    assert r.loc["no such line", "accession"] is None
    cov = coverage(resolver.resolve(["A549", "NEU.KCL", "zzz"]))
    assert cov["n"] == 3
    assert cov["resolved"] == 1
    assert cov["resolved_fraction"] == pytest.approx(1 / 3)


def _tables(rows):
    cells = pd.DataFrame(
        [(a, n, sp, None, None, None, "cellosaurus") for a, n, sp in rows],
        columns=["accession", "name", "species", "sex", "disease", "category", "ref_source"],
    )
    syn = pd.DataFrame(
        [(a, "SHARED-1", "synonym", "cellosaurus") for a, _, _ in rows],
        columns=["accession", "synonym", "kind", "ref_source"],
    )
    return cells, syn


def test_shared_synonym_is_ambiguous_unless_one_is_human():
    cells, syn = _tables([("CVCL_A001", "L1", "Homo sapiens"), ("CVCL_A002", "L2", "Homo sapiens")])
    r = CellResolver(cells, syn).resolve(["shared1"]).iloc[0]
    assert (r["status"], r["accession"], r["candidates"]) == (
        "ambiguous",
        None,
        "CVCL_A001;CVCL_A002",
    )
    cells, syn = _tables([("CVCL_A001", "L1", "Mus musculus"), ("CVCL_A002", "L2", "Homo sapiens")])
    r = CellResolver(cells, syn).resolve(["shared1"]).iloc[0]
    assert (r["status"], r["accession"]) == ("resolved", "CVCL_A002")
    r = CellResolver(cells, syn, species=None).resolve(["shared1"]).iloc[0]
    assert r["status"] == "ambiguous"


def test_cell_ontology_csv_extends_and_overrides(tmp_path: Path, store: RefStore):
    csv = write(
        tmp_path / "cell_ontology_extra.csv",
        "accession,name,synonyms\n"
        "CL:0000359,vascular associated smooth muscle cell,VSMC|vascular smooth muscle cell\n"
        "CL:0000182,hepatocyte (lab),hepatocytes|PHH-lab\n",
    )
    res = CellResolver.from_store(store, cell_ontology_csv=csv)
    out = res.resolve(["VSMC", "PHH-lab", "hepatocytes"])
    assert out["accession"].tolist() == ["CL:0000359", "CL:0000182", "CL:0000182"]
    assert out["name"].tolist()[1] == "hepatocyte (lab)"
    t = cell_ontology_tables(csv)
    assert len(t["cells"]) == len(CELL_ONTOLOGY_TERMS) + 1  # one new, one replaced
    bad = write(tmp_path / "bad.csv", "accession,name\nCL_0000359,x\n")
    with pytest.raises(SchemaError, match=r"must look like CL:0000084.*\['CL_0000359'\]"):
        cell_ontology_tables(bad)
    with pytest.raises(SchemaError, match="column 'name'"):
        cell_ontology_tables(write(tmp_path / "bad2.csv", "accession\nCL:0000359\n"))


def test_resolver_checks_its_tables():
    with pytest.raises(KeyError, match=r"table 'cell_synonyms' lacks columns \['kind'\]"):
        CellResolver(
            pd.DataFrame(columns=["accession", "name", "species", "ref_source"]),
            pd.DataFrame(columns=["accession", "synonym"]),
        )


# --------------------------------------------------------------------------------------
# real data: L1000 cell ids → the RRID DepMap gives
# --------------------------------------------------------------------------------------


def _l1000_cell_ids() -> list[str]:
    from perturbridge.io import read_gct, read_gctx

    ids: set[str] = set()
    for folder in ("l1000_cmapPy", "l1000_cmapR"):
        for path in sorted(shared_path(folder).glob("*.gct*")):
            if path.name == "modzs_n25x50.gct":
                continue  # its header counts disagree with its body (upstream file)
            gct = read_gctx(path, meta_only=True) if path.suffix == ".gctx" else read_gct(path)
            if "cell_id" in gct.col_meta.columns:
                ids |= set(gct.col_meta["cell_id"].astype(str))
    return sorted(ids)


@pytest.mark.shared_data
def test_l1000_cell_ids_map_to_the_depmap_rrid(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "depmap_sample_info.csv").symlink_to(
        shared_path("reference_cell_lines", "depmap_sample_info.csv")
    )
    (src / "cellinfo.tsv.gz").symlink_to(shared_path("l1000_dhimmel_lincs", "cellinfo.tsv.gz"))
    store = RefStore.build(source_dir=src, out=tmp_path / "refs")
    ids = _l1000_cell_ids()
    res = CellResolver.from_store(store).resolve(ids).set_index("input")
    # the expectation, computed independently from the DepMap table
    depmap = pd.read_csv(shared_path("reference_cell_lines", "depmap_sample_info.csv"))
    depmap = depmap[depmap["RRID"].notna()]
    key = depmap["stripped_cell_line_name"].str.upper().str.replace(r"[^0-9A-Z]", "", regex=True)
    expected = dict(zip(key, depmap["RRID"], strict=True))
    known = [i for i in ids if cell_key(i) in expected]
    wrong = {i: (res.loc[i, "accession"], expected[cell_key(i)]) for i in known
             if res.loc[i, "accession"] != expected[cell_key(i)]}  # fmt: skip
    mapped = res["status"].eq("resolved")
    print(
        f"\nL1000 cell ids: {len(ids)} in the GCT/GCTX files, {len(known)} known to DepMap "
        f"with an RRID, {len(known) - len(wrong)} of those map to DepMap's RRID; "
        f"{int(mapped.sum())} of {len(ids)} map to a CVCL_/CL: accession "
        f"({100 * mapped.mean():.1f}%); not mapped: {sorted(res.index[~mapped])}"
    )
    assert not wrong
    assert len(known) >= 50
    assert res.loc["PHH", "accession"] == "CL:0000182"

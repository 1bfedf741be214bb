"""The reference store: build, manifest, atomic writes, reading, DuckDB views."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import shared_path
from perturbridge.errors import FormatError, SchemaError
from perturbridge.ids import store as store_mod, tables
from perturbridge.ids.biology import load_ontologies
from perturbridge.ids.reader import STORE_FORMAT, StoreError
from perturbridge.ids.store import RefStore, match_parser
from perturbridge.ids.tables import TABLE_COLUMNS, RefParser
from perturbridge.io import file_sha256

from ._fixtures import CELLOSAURUS_TXT, DEPMAP_CSV, hgnc_text, source_dir, write


@pytest.fixture
def built(tmp_path: Path) -> RefStore:
    return RefStore.build(source_dir=source_dir(tmp_path), out=tmp_path / "refs")


def test_build_writes_contract_tables_and_manifest(built: RefStore, tmp_path: Path):
    contract = ["cell_synonyms", "cells", "gene_synonyms", "genes"]
    # plus the saved lookups of the cell and gene resolvers (ids.cells, ids.genes)
    saved = ["cell_lookup", "cell_records", "gene_ids", "gene_records", "gene_symbols"]
    if load_ontologies() is not None:  # and MONDO/UBERON when their package is installed
        saved += ["ontology_labels", "ontology_texts"]
    assert built.tables == sorted([*saved, *contract])
    for name in contract:
        df = built.table(name)
        assert tuple(df.columns[: len(TABLE_COLUMNS[name])]) == TABLE_COLUMNS[name]
        assert df.columns[-1] == "ref_file"
        assert (built.path / f"{name}.parquet").is_file()
    m = built.manifest
    assert m["store_format"] == STORE_FORMAT
    assert m["package_version"]
    assert m["created_utc"].endswith("+00:00")
    by_parser = {i["parser"]: i for i in m["inputs"]}
    assert set(by_parser) == {
        "hgnc",
        "cellosaurus",
        "depmap_sample_info",
        "lincs_cellinfo",
        "cell_ontology_builtin",
    }
    hgnc = by_parser["hgnc"]
    src = tmp_path / "upstream"
    assert hgnc["path"] == "hgnc/hgnc_complete_set.txt.gz"
    assert hgnc["sha256"] == file_sha256(src / hgnc["path"])
    assert hgnc["size"] == (src / hgnc["path"]).stat().st_size
    assert hgnc["version"] == "date_modified<=2024-10-01"  # from the file's content
    assert hgnc["rows"]["genes"] == 11
    assert by_parser["cellosaurus"]["version"] == "48.0"  # from the header
    assert by_parser["depmap_sample_info"]["version"] == "21Q1"  # from the file name
    assert m["unmatched_files"] == [{"path": "README.txt", "reason": "no parser pattern matches"}]
    assert all(".hidden" not in (i["path"] or "") for i in m["inputs"])
    assert m["tables"]["genes"]["rows"] == 11
    on_disk = json.loads((built.path / "manifest.json").read_text())
    assert on_disk == m


def test_rows_keep_their_input_file(built: RefStore):
    genes = built.table("genes")
    assert set(genes["ref_file"]) == {"hgnc/hgnc_complete_set.txt.gz"}
    cells = built.table("cells")
    assert "builtin:cell_ontology_builtin" in set(cells["ref_file"])


def test_lincs_ids_are_linked_at_build_time(built: RefStore):
    syn = built.table("cell_synonyms")
    lincs = syn[syn["kind"] == "lincs_id"].drop_duplicates(["synonym", "accession"])
    lincs = lincs.set_index("synonym")["accession"]
    assert lincs["A549"] == "CVCL_0023"
    assert lincs["HEPG2"] == "CVCL_0027"
    assert lincs["HA1E"] == "CVCL_VU89"  # through DepMap (not in the Cellosaurus fixture)
    assert lincs["PHH"] == "CL:0000182"  # built-in Cell Ontology
    assert lincs["NEU.KCL"] == "LINCS:NEU.KCL"  # not linkable: stays a placeholder
    step = next(d for d in built.manifest["derived"] if d["step"] == "link_lincs_cells")
    assert step["linked"] == 4
    assert step["unlinked"] == 1
    assert step["unlinked_ids"] == ["NEU.KCL"]


def test_depmap_line_without_rrid_gets_a_placeholder(built: RefStore):
    cells = built.table("cells")
    assert "DepMap:ACH-002999" in set(cells["accession"])


def test_table_reads_columns_and_names_missing_tables(built: RefStore):
    assert list(built.table("genes", columns=["symbol"]).columns) == ["symbol"]
    with pytest.raises(
        KeyError,
        match=r"no table 'compounds'.*it has \['cell_lookup', 'cell_records', 'cell_synonyms'",
    ):
        built.table("compounds")


def test_duckdb_views(built: RefStore):
    con = built.duckdb()
    n = con.execute("select count(*) from genes").fetchone()
    assert n == (11,)
    sym = con.execute(
        "select g.symbol from gene_synonyms s join genes g using (hgnc_id) "
        "where s.synonym = 'SEPT7'"
    ).fetchall()
    assert sym == [("SEPTIN7",)]


def test_open_round_trip_and_repr(built: RefStore):
    again = RefStore.open(built.path)
    assert again.tables == built.tables
    assert "RefStore(" in repr(again)
    pd.testing.assert_frame_equal(again.table("cells"), built.table("cells"))


def test_open_errors(tmp_path: Path, built: RefStore):
    with pytest.raises(StoreError, match=r"not a reference store \(no manifest.json\)"):
        RefStore.open(tmp_path)
    m = dict(built.manifest)
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "manifest.json").write_text(json.dumps({**m, "store_format": STORE_FORMAT + 1}))
    with pytest.raises(StoreError, match="store format 2 is not supported"):
        RefStore.open(newer)
    (built.path / "genes.parquet").unlink()
    with pytest.raises(StoreError, match=r"tables \['genes'\] are listed"):
        RefStore.open(built.path)


def test_refuses_to_overwrite_a_folder_that_is_not_a_store(tmp_path: Path):
    src = source_dir(tmp_path)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.docx").write_text("precious")
    with pytest.raises(StoreError, match=r"refusing to overwrite .*busy.*not a reference store"):
        RefStore.build(source_dir=src, out=busy)
    assert (busy / "thesis.docx").read_text() == "precious"
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(StoreError, match="over the file"):
        RefStore.build(source_dir=src, out=a_file)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert RefStore.build(source_dir=src, out=empty).tables


def test_rebuild_replaces_a_store_and_leaves_no_temporaries(tmp_path: Path):
    src = source_dir(tmp_path)
    out = tmp_path / "refs"
    first = RefStore.build(source_dir=src, out=out)
    (src / "cells" / "cellosaurus.txt").unlink()
    with pytest.raises(StoreError, match=r"is a reference store .*pass --force"):
        RefStore.build(source_dir=src, out=out)  # never replaced without asking
    second = RefStore.build(source_dir=src, out=out, overwrite=True)
    assert "cellosaurus" not in {i["parser"] for i in second.manifest["inputs"]}
    assert first.manifest["created_utc"] <= second.manifest["created_utc"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["refs", "upstream"]


def test_a_failed_build_keeps_the_previous_store(tmp_path: Path):
    src = source_dir(tmp_path)
    out = tmp_path / "refs"
    RefStore.build(source_dir=src, out=out)
    before = (out / "manifest.json").read_text()
    write(src / "cells" / "cellosaurus.txt", CELLOSAURUS_TXT.rsplit("//", 1)[0])  # truncated
    with pytest.raises(FormatError, match=r"cellosaurus.txt: the last record .* truncated"):
        RefStore.build(source_dir=src, out=out, overwrite=True)
    assert (out / "manifest.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["refs", "upstream"]


def test_missing_source_folder(tmp_path: Path):
    with pytest.raises(StoreError, match="source folder not found"):
        RefStore.build(source_dir=tmp_path / "nope", out=tmp_path / "refs")


def test_store_inside_its_source_folder_is_not_read_back(tmp_path: Path):
    src = source_dir(tmp_path)
    RefStore.build(source_dir=src, out=src / "refs")
    again = RefStore.build(source_dir=src, out=src / "refs", overwrite=True)
    assert not [u for u in again.manifest["unmatched_files"] if u["path"].startswith("refs/")]


def test_match_parser_uses_patterns_gz_and_header_sniff(tmp_path: Path):
    hgnc = write(tmp_path / "hgnc_complete_set_2024.txt.gz", hgnc_text())
    parser, why = match_parser(hgnc)
    assert parser is not None
    assert parser.name == "hgnc"
    assert why == ""
    fake = write(tmp_path / "hgnc_complete_set.txt", "something\telse\n")
    parser, why = match_parser(fake)
    assert parser is None
    assert "header rejected by ['hgnc']" in why
    write(tmp_path / "x" / "my_sample_info.csv", DEPMAP_CSV)
    assert match_parser(tmp_path / "x" / "my_sample_info.csv")[0].name == "depmap_sample_info"
    assert match_parser(tmp_path / "notes.md") == (None, "")


def _parser(name: str, tables_: tuple[str, ...], fn, pattern: str) -> RefParser:
    return RefParser(name=name, description="test", patterns=(pattern,), tables=tables_, parse=fn)


def test_two_parsers_claiming_one_file_is_an_error(tmp_path: Path, monkeypatch):
    monkeypatch.setitem(
        tables._PARSERS,
        "greedy",
        _parser("greedy", ("cells",), lambda p: {}, "cellosaurus*"),
    )
    path = write(tmp_path / "cellosaurus.txt", CELLOSAURUS_TXT)
    with pytest.raises(FormatError, match=r"several reference parsers claim.*cellosaurus"):
        match_parser(path)


def test_parser_breaking_the_table_contract_names_the_file(tmp_path: Path, monkeypatch):
    def bad(path: Path) -> dict[str, pd.DataFrame]:
        return {"genes": pd.DataFrame({"symbol": ["A"], "hgnc_id": ["HGNC:1"]})}

    monkeypatch.setitem(tables._PARSERS, "bad", _parser("bad", ("genes",), bad, "bad_*.tsv"))
    src = tmp_path / "src"
    write(src / "bad_genes.tsv", "x\n")
    with pytest.raises(SchemaError, match=r"in bad_genes.tsv: table 'genes' must start with"):
        RefStore.build(source_dir=src, out=tmp_path / "refs")
    assert not (tmp_path / "refs").exists()


def test_parser_returning_an_undeclared_table(tmp_path: Path, monkeypatch):
    def sneaky(path: Path) -> dict[str, pd.DataFrame]:
        return {"cells": pd.DataFrame(columns=list(TABLE_COLUMNS["cells"]))}

    monkeypatch.setitem(tables._PARSERS, "sneaky", _parser("sneaky", ("genes",), sneaky, "sneaky*"))
    write(tmp_path / "src" / "sneaky.txt", "x\n")
    with pytest.raises(SchemaError, match="returned tables \\['cells'\\] it does not declare"):
        RefStore.build(source_dir=tmp_path / "src", out=tmp_path / "refs")


def test_parser_crash_becomes_a_format_error_naming_the_file(tmp_path: Path, monkeypatch):
    def crash(path: Path) -> dict[str, pd.DataFrame]:
        raise KeyError("pert_iname")

    monkeypatch.setitem(tables._PARSERS, "crash", _parser("crash", ("genes",), crash, "crash*"))
    write(tmp_path / "src" / "crash.txt", "x\n")
    with pytest.raises(FormatError, match=r"crash.txt: the crash parser failed: 'pert_iname'"):
        RefStore.build(source_dir=tmp_path / "src", out=tmp_path / "refs")


def _compound_parser(monkeypatch) -> None:
    def compounds(path: Path) -> dict[str, pd.DataFrame]:
        df = pd.DataFrame(
            {
                "ref_source": ["t", "t"],
                "ref_id": ["BRD-1", "BRD-2"],
                "name": ["aspirin", "caffeine"],
                "smiles": ["CC(=O)Oc1ccccc1C(=O)O", None],
                "inchikey": ["BSYNRYMUTXBXSQ-UHFFFAOYSA-N", None],
                "pubchem_cid": [2244, None],
                "cas": [None, None],
            }
        )
        return {"compounds": df}

    monkeypatch.setitem(
        tables._PARSERS, "tcmp", _parser("tcmp", ("compounds",), compounds, "tcmp_*.txt")
    )


def test_derived_compound_structures_use_the_compound_module(tmp_path: Path, monkeypatch):
    _compound_parser(monkeypatch)
    seen = {}
    real = store_mod.compound_structures

    def compound_structures(compounds_df: pd.DataFrame, *, progress: bool) -> pd.DataFrame:
        seen["rows"] = len(compounds_df)
        return real(compounds_df, progress=progress).assign(parent_inchikey="X")

    monkeypatch.setattr(store_mod, "compound_structures", compound_structures)
    write(tmp_path / "src" / "tcmp_20200324.txt", "x\n")
    st = RefStore.build(source_dir=tmp_path / "src", out=tmp_path / "refs")
    assert seen == {"rows": 2}
    assert "compound_structures" in st.tables
    assert set(st.table("compound_structures")["parent_inchikey"]) == {"X"}
    cmp_ = st.table("compounds")
    assert str(cmp_["pubchem_cid"].dtype) == "Int64"
    assert cmp_["pubchem_cid"].isna().tolist() == [False, True]
    n_structures = len(st.table("compound_structures"))
    step = {"step": "compound_structures", "status": "done", "rows": n_structures}
    assert step in st.manifest["derived"]
    tcmp = next(i for i in st.manifest["inputs"] if i["parser"] == "tcmp")
    assert tcmp["version"] == "2020-03-24"
    with pytest.raises(StoreError, match="no online_pubchem parameter"):
        RefStore.build(source_dir=tmp_path / "src", out=tmp_path / "refs2", online_pubchem=True)


def test_build_never_touches_the_network(tmp_path: Path, no_network):
    st = RefStore.build(source_dir=source_dir(tmp_path), out=tmp_path / "refs", progress=False)
    assert st.tables


@pytest.mark.shared_data
def test_build_from_real_hgnc_depmap_and_lincs_files(tmp_path: Path, no_network):
    src = tmp_path / "src"
    src.mkdir()
    for parts in (
        ("reference_hgnc", "hgnc_complete_set.txt.gz"),
        ("reference_cell_lines", "depmap_sample_info.csv"),
        ("l1000_dhimmel_lincs", "cellinfo.tsv.gz"),
    ):
        (src / parts[-1]).symlink_to(shared_path(*parts))
    st = RefStore.build(source_dir=src, out=tmp_path / "refs")
    m = st.manifest
    rows = {i["parser"]: i["rows"] for i in m["inputs"]}
    assert rows["hgnc"]["genes"] == 43_882
    assert rows["depmap_sample_info"]["cells"] == 1_775
    genes = st.table("genes")
    assert genes["hgnc_id"].is_unique
    assert genes["ensembl_gene_id"].dropna().str.match(r"^ENSG\d{11}$").all()
    syn = st.table("gene_synonyms")
    a1bg_as1 = set(syn.loc[syn["hgnc_id"] == "HGNC:37133", "synonym"])
    assert {"A1BG-AS1", "NCRNA00181", "A1BGAS", "A1BG-AS", "FLJ23569"} <= a1bg_as1
    link = next(d for d in m["derived"] if d["step"] == "link_lincs_cells")
    print(f"\nLINCS cellinfo ids linked to an accession: {link['linked']} of "
          f"{link['linked'] + link['unlinked'] + link['ambiguous']}")  # fmt: skip
    assert link["linked"] > 1_000


def test_the_store_folder_honours_the_umask(tmp_path: Path):
    from perturbridge.io._atomic import dir_mode

    store = RefStore.build(source_dir=source_dir(tmp_path), out=tmp_path / "refs")
    assert (store.path.stat().st_mode & 0o777) == dir_mode()

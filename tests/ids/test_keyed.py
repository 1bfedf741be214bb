"""Saved lookups: key lookups in Arrow tables, staleness checks, and the same answers as
the lookups the resolvers build from the tables (fixture store and a realistic store)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import shared_path
from perturbridge.ids.biology import CellBiology, load_ontologies, saved_ontologies
from perturbridge.ids.cells import CELL_LOOKUP_STEP, CellResolver, cell_key
from perturbridge.ids.genes import GENE_LOOKUP_STEP, GeneResolver
from perturbridge.ids.keyed import KeyedRows, rules_digest, saved_step, step_problem
from perturbridge.ids.reader import RefStoreReader
from perturbridge.ids.store import RefStore

from ._fixtures import source_dir

ORGDB = Path("/usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite")

# --------------------------------------------------------------------------------------
# KeyedRows


def test_rows_are_the_matching_rows_in_table_order():
    kr = KeyedRows(pd.DataFrame({"k": ["b", "a", "b", "c"], "v": [1, 2, 3, 4]}), "k")
    got = kr.rows(["b", "zz", None, "c", "b"])
    assert got["k"].tolist() == ["b", "b", "c"]
    assert got["v"].tolist() == [1, 3, 4]
    assert str(got["v"].dtype) == "int64"
    assert kr.rows([]).empty and list(kr.rows([]).columns) == ["k", "v"]
    assert len(kr) == 4 and kr.columns == ["k", "v"]


def test_reindex_is_one_row_per_key_with_gaps_for_unknown_keys():
    kr = KeyedRows(pd.DataFrame({"k": ["x", "y"], "v": ["X", None]}), "k")
    got = kr.reindex(["y", "nope", "x", "y"])
    assert got.index.tolist() == ["y", "nope", "x", "y"]
    assert got["v"].tolist()[2:] == ["X", None]
    assert got["v"].isna().tolist() == [True, True, False, True]
    with pytest.raises(ValueError, match="key column 'k' is not unique: \\['b'\\]"):
        KeyedRows(pd.DataFrame({"k": ["b", "b"], "v": [1, 2]}), "k").reindex(["b"])
    with pytest.raises(KeyError, match="expected a key column 'key'"):
        KeyedRows(pd.DataFrame({"k": ["b"]}), "key")


def test_empty_tables_find_nothing():
    kr = KeyedRows(pd.DataFrame({"k": pd.Series([], dtype=object)}), "k")
    assert kr.rows(["a"]).empty
    assert kr.reindex(["a"]).index.tolist() == ["a"]


def test_rules_digest_changes_with_the_rules():
    assert rules_digest({"a": 1}, ["x"]) == rules_digest({"a": 1}, ["x"])
    assert rules_digest({"a": 1}) != rules_digest({"a": 2})
    assert len(rules_digest({"a": 1})) == 16


# --------------------------------------------------------------------------------------
# saved lookups of the fixture store


@pytest.fixture(scope="module")
def fixture_store(tmp_path_factory: pytest.TempPathFactory) -> RefStore:
    root = tmp_path_factory.mktemp("keyed")
    return RefStore.build(source_dir=source_dir(root), out=root / "refs")


def _cell_queries(store: RefStoreReader, every: int = 1) -> list[object]:
    syn = store.table("cell_synonyms")["synonym"].dropna().astype(str).tolist()[::every]
    acc = store.table("cells")["accession"].dropna().astype(str).tolist()[::every]
    typed = [s.lower() for s in syn] + [s.replace("-", " ") for s in syn]
    ccle = [f"{cell_key(s)}_LUNG" for s in syn[:50]]
    return [*syn, *acc, *typed, *ccle, "nothing-like-it", "", None, float("nan")]


def _gene_queries(store: RefStoreReader, every: int = 1) -> list[object]:
    syn = store.table("gene_synonyms")["synonym"].dropna().astype(str).tolist()[::every]
    genes = store.table("genes")[::every]
    extra = ["2024-09-07 00:00:00", "1-Mar", "HLA.A", "ATXN7-1", "7157///7158", "nope"]
    return [*syn, *[s.lower() for s in syn], *genes["hgnc_id"].tolist(), *extra, None]


def test_fixture_store_saves_current_lookups(fixture_store: RefStore):
    for step in (CELL_LOOKUP_STEP, GENE_LOOKUP_STEP):
        entry = next(d for d in fixture_store.manifest["derived"] if d["step"] == step)
        assert entry["version"] == 1 and len(entry["rules"]) == 16
        assert all(fixture_store.manifest["tables"][t]["rows"] == n
                   for t, n in entry["rows"].items())  # fmt: skip


def _refuse(*args: object, **kwargs: object) -> None:
    raise AssertionError("the lookup was built, not loaded")


def test_saved_cell_lookup_gives_the_answers_of_the_rebuilt_one(
    fixture_store: RefStore, monkeypatch: pytest.MonkeyPatch
):
    queries = _cell_queries(fixture_store)
    with monkeypatch.context() as m:
        m.setattr(CellResolver, "_make_lookup", _refuse)
        saved = CellResolver.from_store(fixture_store)  # loaded, not keyed
    rebuilt = CellResolver(fixture_store.table("cells"), fixture_store.table("cell_synonyms"))
    pd.testing.assert_frame_equal(saved.resolve(queries), rebuilt.resolve(queries))
    # another species: the saved lookup (made for human) is not used
    mouse = CellResolver.from_store(fixture_store, species="Mus musculus").resolve(queries)
    rebuilt_mouse = CellResolver(
        fixture_store.table("cells"), fixture_store.table("cell_synonyms"), species="Mus musculus"
    ).resolve(queries)
    pd.testing.assert_frame_equal(mouse, rebuilt_mouse)


def test_saved_gene_lookup_gives_the_answers_of_the_rebuilt_one(
    fixture_store: RefStore, monkeypatch: pytest.MonkeyPatch
):
    queries = _gene_queries(fixture_store)
    with monkeypatch.context() as m:
        m.setattr(GeneResolver, "_best", _refuse)
        loaded = GeneResolver.from_store(fixture_store)  # loaded, not keyed
    saved = loaded.resolve(queries)
    rebuilt = GeneResolver(fixture_store.table("genes"), fixture_store.table("gene_synonyms"))
    pd.testing.assert_frame_equal(saved, rebuilt.resolve(queries))
    assert (saved["status"] == "resolved").sum() > len(queries) / 2


def test_stale_lookups_are_not_used(fixture_store: RefStore, tmp_path: Path, caplog):
    old = tmp_path / "old"
    shutil.copytree(fixture_store.path, old)
    manifest = json.loads((old / "manifest.json").read_text())
    for d in manifest["derived"]:
        if d["step"] == CELL_LOOKUP_STEP:
            d["rules"] = "0" * 16  # made by other priority tables
        if d["step"] == GENE_LOOKUP_STEP:
            d["rows"]["gene_symbols"] += 1  # not the table the step wrote
    (old / "manifest.json").write_text(json.dumps(manifest))
    st = RefStore.open(old)
    assert "was made with {'rules': '0000000000000000'}" in str(
        step_problem(st.manifest, CELL_LOOKUP_STEP, params={"rules": "x"})
    )
    with caplog.at_level(logging.INFO, logger="perturbridge.ids.keyed"):
        cells = CellResolver.from_store(st)
        genes = GeneResolver.from_store(st)
    assert "cell_lookup was made with" in caplog.text and "refs build --force" in caplog.text
    assert "gene_lookup tables ['gene_symbols'] are missing or were changed" in caplog.text
    # the answers come from the tables, and are the same
    q = _cell_queries(fixture_store)
    pd.testing.assert_frame_equal(
        cells.resolve(q), CellResolver.from_store(fixture_store).resolve(q)
    )
    g = _gene_queries(fixture_store)
    pd.testing.assert_frame_equal(
        genes.resolve(g), GeneResolver.from_store(fixture_store).resolve(g)
    )
    # a store built before the lookups were saved
    manifest["derived"] = [
        d for d in manifest["derived"] if d["step"] not in (CELL_LOOKUP_STEP, GENE_LOOKUP_STEP)
    ]
    (old / "manifest.json").write_text(json.dumps(manifest))
    st = RefStore.open(old)
    assert saved_step(st, CELL_LOOKUP_STEP, params={}) is None
    assert "no saved cell_lookup (built before it existed)" in str(
        step_problem(st.manifest, CELL_LOOKUP_STEP, params={})
    )
    pd.testing.assert_frame_equal(CellResolver.from_store(st).resolve(q), cells.resolve(q))


def test_cell_biology_from_the_store_reads_only_what_it_is_asked(fixture_store: RefStore):
    cells = fixture_store.table("cells")
    accessions = [*cells["accession"].dropna().unique().tolist(), "CVCL_NONE"]
    lazy = CellBiology.from_store(fixture_store, ontologies=None)
    whole = CellBiology(cells, ontologies=None)
    assert len(lazy._records) == 0  # nothing read before a lookup
    pd.testing.assert_frame_equal(lazy.lookup(accessions), whole.lookup(accessions))
    one = CellBiology.from_store(fixture_store, ontologies=None)
    assert one.sources(accessions[0]) == whole.sources(accessions[0])


def test_saved_ontologies_answer_like_the_package_files(fixture_store: RefStore):
    onto = load_ontologies()
    if onto is None:
        pytest.skip("cellxgene-ontology-guide is not installed: no ontologies to save")
    saved = saved_ontologies(fixture_store)
    assert saved is not None and dict(saved.versions) == dict(onto.versions)
    texts = ["melanoma", "Malignant Melanoma", "lung", "skin of body", "liver", "no such"]
    texts += list(onto.index["MONDO"])[:40] + list(onto.index["UBERON"])[:40]
    for prefix in ("MONDO", "UBERON"):
        assert [saved.find(prefix, t) for t in texts] == [onto.find(prefix, t) for t in texts]
    terms = list(onto.labels)[:100]
    assert [saved.labels[t] for t in terms] == [onto.labels[t] for t in terms]
    assert saved.labels.get("MONDO:not") is None
    lazy = CellBiology.from_store(fixture_store)
    whole = CellBiology(fixture_store.table("cells"), ontologies=onto)
    acc = fixture_store.table("cells")["accession"].dropna().unique().tolist()
    pd.testing.assert_frame_equal(lazy.lookup(acc), whole.lookup(acc))


# --------------------------------------------------------------------------------------
# a realistic store: the shared gene and cell tables (the cells of the package sources
# are compared in test_package_coverage.py, on the store it builds)


@pytest.mark.shared_data
@pytest.mark.slow
def test_saved_lookups_of_a_realistic_store_answer_like_the_rebuilt_ones(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    for name, folder in (
        ("depmap_sample_info.csv", "reference_cell_lines"),
        ("cellinfo.tsv.gz", "l1000_dhimmel_lincs"),
        ("hgnc_complete_set.txt.gz", "reference_hgnc"),
    ):
        (src / name).symlink_to(shared_path(folder, name))
    if ORGDB.is_file():  # NCBI genes too (Debian r-bioc-org.hs.eg.db)
        (src / ORGDB.name).symlink_to(ORGDB)
    st = RefStore.build(source_dir=src, out=tmp_path / "refs")
    cells = [*_cell_queries(st), "H460", "HEK293T", "293T"]
    saved_c = CellResolver.from_store(st).resolve(cells)
    rebuilt_c = CellResolver(st.table("cells"), st.table("cell_synonyms")).resolve(cells)
    pd.testing.assert_frame_equal(saved_c, rebuilt_c)
    genes = _gene_queries(st, every=25)
    saved_g = GeneResolver.from_store(st).resolve(genes)
    rebuilt_g = GeneResolver(st.table("genes"), st.table("gene_synonyms")).resolve(genes)
    pd.testing.assert_frame_equal(saved_g, rebuilt_g)
    print(
        f"\n{len(cells):,} cell queries ({(saved_c['status'] == 'resolved').mean():.1%} "
        f"resolved), {len(genes):,} gene queries "
        f"({(saved_g['status'] == 'resolved').mean():.1%}): identical answers"
    )

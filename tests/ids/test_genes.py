"""Gene resolution: priority rules, spreadsheet damage, ids, collapsing columns."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from conftest import shared_path
from perturbridge.ids.genes import (
    GeneResolver,
    collapse_genes,
    excel_date_candidates,
    gene_coverage,
)
from perturbridge.ids.parsers_genes_cells import parse_hgnc
from perturbridge.ids.store import RefStore

from ._fixtures import hgnc_text, write


@pytest.fixture(scope="module")
def resolver(tmp_path_factory: pytest.TempPathFactory) -> GeneResolver:
    path = write(tmp_path_factory.mktemp("hgnc") / "hgnc_complete_set.txt", hgnc_text())
    t = parse_hgnc(path)
    return GeneResolver(t["genes"], t["gene_synonyms"])


def one(resolver: GeneResolver, value: str, **kw) -> dict:
    return resolver.resolve([value], **kw).iloc[0].to_dict()


def test_parse_hgnc_splits_quoted_pipe_lists(tmp_path: Path):
    t = parse_hgnc(write(tmp_path / "hgnc_complete_set.txt.gz", hgnc_text()))
    syn = t["gene_synonyms"]
    got = syn[syn["hgnc_id"] == "HGNC:37133"].groupby("kind")["synonym"].agg(sorted).to_dict()
    assert got == {
        "alias": ["FLJ23569"],
        "ensembl": ["ENSG00000268895"],
        "entrez": ["503538"],
        "prev": ["A1BG-AS", "A1BGAS", "NCRNA00181"],
        "symbol": ["A1BG-AS1"],
    }
    assert t["genes"].attrs["ref_version"] == "date_modified<=2024-10-01"
    assert t["genes"].loc[t["genes"]["symbol"] == "EEE5", "ensembl_gene_id"].isna().all()


def test_current_symbol_case_insensitive(resolver):
    r = one(resolver, "tp53")
    assert (r["symbol"], r["ensembl_gene_id"], r["hgnc_id"]) == (
        "TP53",
        "ENSG00000141510",
        "HGNC:11998",
    )
    assert (r["match_type"], r["status"], r["normalization"]) == ("symbol", "resolved", "")


def test_priority_symbol_beats_prev_beats_alias(resolver):
    # BBB2 is the current symbol of HGNC:90002 and an alias of HGNC:90001
    r = one(resolver, "BBB2")
    assert (r["hgnc_id"], r["match_type"]) == ("HGNC:90002", "symbol")
    # CCC3 is a previous symbol of HGNC:90003 and an alias of HGNC:90002
    r = one(resolver, "CCC3")
    assert (r["hgnc_id"], r["match_type"]) == ("HGNC:90003", "prev")
    r = one(resolver, "P53")
    assert (r["symbol"], r["match_type"]) == ("TP53", "alias")
    r = one(resolver, "SEPT7")
    assert (r["symbol"], r["match_type"]) == ("SEPTIN7", "prev")


def test_alias_shared_by_two_genes_is_ambiguous(resolver):
    r = one(resolver, "DDD4")
    assert r["status"] == "ambiguous"
    assert r["hgnc_id"] is None
    assert r["ensembl_gene_id"] is None
    assert r["candidates"] == "HGNC:90001;HGNC:90002"
    assert r["match_type"] == "alias"


def test_mapped_gene_without_ensembl_id(resolver):
    r = one(resolver, "EEE5")
    assert r["status"] == "resolved"
    assert r["ensembl_gene_id"] is None


@pytest.mark.parametrize(
    ("value", "symbol"),
    [
        ("2024-09-07 00:00:00", "SEPTIN7"),
        ("2024-09-07", "SEPTIN7"),
        ("7-Sep", "SEPTIN7"),
        ("Sep-07", "SEPTIN7"),
    ],
)
def test_spreadsheet_dates_are_repaired(resolver, value, symbol):
    r = one(resolver, value)
    assert (r["symbol"], r["normalization"], r["match_type"]) == (symbol, "excel_date", "prev")


def test_spreadsheet_1_mar_is_ambiguous_between_march1_and_marc1(resolver):
    r = one(resolver, "1-Mar")
    assert r["status"] == "ambiguous"
    assert r["normalization"] == "excel_date"
    assert r["candidates"] == "HGNC:26077;HGNC:26189"  # MARCHF1, MTARC1
    assert one(resolver, "MARCH1")["symbol"] == "MARCHF1"
    assert one(resolver, "MARC1")["symbol"] == "MTARC1"


def test_excel_date_candidates():
    assert excel_date_candidates("2024-09-07 00:00:00") == ["SEPT7", "SEP7"]
    assert excel_date_candidates("1-Mar") == ["MARCH1", "MARC1", "MAR1"]
    assert excel_date_candidates("2024-12-01") == ["DEC1"]
    assert excel_date_candidates("2024-07-01") == []  # no gene family is spelled JUL
    assert excel_date_candidates("TP53") == []


def test_r_make_names_and_unique_suffix(resolver):
    r = one(resolver, "HLA.A")
    assert (r["symbol"], r["normalization"]) == ("HLA-A", "r_make_names")
    r = one(resolver, "TP53-1")
    assert (r["symbol"], r["normalization"]) == ("TP53", "unique_suffix")
    # a real symbol with a dash is never "repaired"
    r = one(resolver, "PAX8-AS1")
    assert (r["symbol"], r["normalization"]) == ("PAX8-AS1", "")


def test_entrez_ids_and_joined_lists(resolver):
    assert one(resolver, "7157")["symbol"] == "TP53"
    r = one(resolver, "7849///100009613")
    assert r["status"] == "ambiguous"
    assert r["candidates"] == "HGNC:8622;HGNC:33275"
    assert one(resolver, "7849///100009613", multi_entrez="first")["symbol"] == "PAX8"
    assert one(resolver, "7157///99999999")["symbol"] == "TP53"  # unknown parts are ignored
    assert one(resolver, "99999999")["status"] == "unresolved"
    with pytest.raises(ValueError, match="multi_entrez must be"):
        resolver.resolve(["7157"], multi_entrez="last")


def test_ensembl_ids_with_and_without_version(resolver):
    for value in ("ENSG00000141510", "ENSG00000141510.17", "ensg00000141510"):
        r = one(resolver, value)
        assert (r["symbol"], r["match_type"]) == ("TP53", "ensembl")
    assert one(resolver, "ENSG00000999999")["status"] == "unresolved"


def test_order_duplicates_missing_and_many_to_one(resolver):
    values = ["TP53", None, "", "P53", "TP53", "nonsense", float("nan")]
    res = resolver.resolve(values)
    assert res["input"].tolist()[:6] == values[:6]
    assert res["status"].tolist() == [
        "resolved",
        "unresolved",
        "unresolved",
        "resolved",
        "resolved",
        "unresolved",
        "unresolved",
    ]
    # TP53 and P53 are two distinct inputs of one gene
    assert res["many_to_one"].tolist() == [True, False, False, True, True, False, False]
    cov = gene_coverage(res)
    assert cov["n"] == 7
    assert cov["status"] == {"resolved": 3, "unresolved": 4}
    assert cov["many_to_one"] == 3
    assert cov["with_ensembl"] == 3


def test_resolver_checks_its_tables():
    with pytest.raises(KeyError, match=r"table 'genes' lacks columns \['entrez_id'"):
        GeneResolver(
            pd.DataFrame(columns=["hgnc_id", "symbol", "ensembl_gene_id"]),
            pd.DataFrame(columns=["hgnc_id", "synonym", "kind"]),
        )


def test_from_store(tmp_path: Path):
    write(tmp_path / "src" / "hgnc_complete_set.txt", hgnc_text())
    store = RefStore.build(source_dir=tmp_path / "src", out=tmp_path / "refs")
    assert GeneResolver.from_store(store).resolve(["SEPT7"])["symbol"].tolist() == ["SEPTIN7"]
    assert GeneResolver.from_store(tmp_path / "refs").resolve(["P53"])["symbol"][0] == "TP53"


# --------------------------------------------------------------------------------------
# collapse_genes
# --------------------------------------------------------------------------------------


@pytest.fixture
def matrix_case(resolver):
    cols = ["TP53", "P53", "SEPT7", "DDD4", "nonsense", "EEE5", "SEPTIN7", "HLA.A"]
    x = np.array(
        [
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            [10.0, 0.0, 30.0, 40.0, 50.0, 60.0, 1.0, 80.0],
        ]
    )
    var = pd.DataFrame(index=pd.Index(cols, name="gene"))
    return x, var, resolver.resolve(cols)


def test_collapse_counts_sums_and_reports_every_column(matrix_case):
    x, var, mapping = matrix_case
    res = collapse_genes(x, var, mapping, value_kind="counts")
    assert res.var.index.tolist() == ["ENSG00000141510", "ENSG00000122545", "ENSG00000206503"]
    assert res.var["symbol"].tolist() == ["TP53", "SEPTIN7", "HLA-A"]
    assert res.var["n_inputs"].tolist() == [2, 2, 1]
    np.testing.assert_allclose(res.matrix, [[3, 10, 8], [10, 31, 80]])
    rep = res.report.set_index("input")["action"].to_dict()
    assert rep == {
        "TP53": "summed",
        "P53": "summed",
        "SEPT7": "summed",
        "DDD4": "dropped_ambiguous",
        "nonsense": "dropped_unresolved",
        "EEE5": "dropped_no_ensembl",
        "SEPTIN7": "summed",
        "HLA.A": "kept",
    }
    assert len(res.report) == x.shape[1]


def test_collapse_sparse_counts_match_dense(matrix_case):
    x, var, mapping = matrix_case
    dense = collapse_genes(x, var, mapping, value_kind="counts")
    sparse = collapse_genes(sp.csr_matrix(x), var, mapping, value_kind="counts")
    assert sp.issparse(sparse.matrix)
    np.testing.assert_allclose(sparse.matrix.toarray(), dense.matrix)


def test_collapse_log_values_are_never_averaged(matrix_case):
    x, var, mapping = matrix_case
    with pytest.raises(ValueError, match=r"4 log-scale columns map to 2 genes.*'TP53', 'P53'"):
        collapse_genes(x, var, mapping, value_kind="log")
    with pytest.raises(ValueError, match="log values cannot be summed"):
        collapse_genes(x, var, mapping, value_kind="log", rule="sum")


def test_collapse_log_first_and_max_mean(matrix_case):
    x, var, mapping = matrix_case
    first = collapse_genes(x, var, mapping, value_kind="log", rule="first")
    np.testing.assert_allclose(first.matrix, x[:, [0, 2, 7]])
    rep = first.report.set_index("input")
    assert rep.loc["P53", "action"] == "dropped_rule"
    assert rep.loc["SEPTIN7", "action"] == "dropped_rule"
    assert (rep["rule"] == "first").all()
    best = collapse_genes(x, var, mapping, value_kind="log", rule="max_mean")
    # TP53 mean 5.5 vs P53 1.0 → TP53; SEPT7 16.5 vs SEPTIN7 4.0 → SEPT7
    np.testing.assert_allclose(best.matrix, x[:, [0, 2, 7]])
    x2 = x.copy()
    x2[:, 1] = 100.0
    best2 = collapse_genes(x2, var, mapping, value_kind="log", rule="max_mean")
    np.testing.assert_allclose(best2.matrix[:, 0], [100.0, 100.0])
    assert best2.report.set_index("input").loc["TP53", "action"] == "dropped_rule"


def test_collapse_keeps_the_upstream_var_columns(matrix_case):
    x, var, mapping = matrix_case
    # L1000-like columns: Entrez id, probe id, landmark flag (one value per input column)
    var = var.assign(
        entrez_id=[f"e{i}" for i in range(8)],
        probe_id=pd.Categorical([f"p{i}" for i in range(8)]),
        is_landmark=[True, False, True, True, True, True, False, True],
        mean=np.arange(8.0),
        symbol=[f"up{i}" for i in range(8)],  # the resolved symbol replaces it
    )
    summed = collapse_genes(x, var, mapping, value_kind="counts").var
    # TP53 ← TP53 (0) + P53 (1); SEPTIN7 ← SEPT7 (2) + SEPTIN7 (6); HLA-A ← HLA.A (7):
    # the values of the first input column of each gene
    assert summed["entrez_id"].tolist() == ["e0", "e2", "e7"]
    assert summed["probe_id"].tolist() == ["p0", "p2", "p7"]
    assert summed["is_landmark"].tolist() == [True, True, True]
    assert str(summed["is_landmark"].dtype) == "boolean"
    assert summed["mean"].tolist() == [0.0, 2.0, 7.0]
    assert summed["symbol"].tolist() == ["TP53", "SEPTIN7", "HLA-A"]
    # with max_mean, the values of the column that was kept
    x2 = x.copy()
    x2[:, 1] = 100.0
    best = collapse_genes(x2, var, mapping, value_kind="log", rule="max_mean").var
    assert best["entrez_id"].tolist() == ["e1", "e2", "e7"]
    assert best["is_landmark"].tolist() == [False, True, True]
    # genes added afterwards without the columns get missing values, not mixed types
    more = pd.concat([best, pd.DataFrame({"symbol": ["X"]}, index=["ENSG_X"])])
    assert str(more["is_landmark"].dtype) == "boolean"
    assert pd.isna(more["is_landmark"].iloc[-1]) and pd.isna(more["entrez_id"].iloc[-1])


def test_collapse_without_collisions_needs_no_rule(resolver):
    cols = ["TP53", "HLA-A"]
    x = np.arange(4.0).reshape(2, 2)
    res = collapse_genes(x, pd.DataFrame(index=cols), resolver.resolve(cols), value_kind="log")
    np.testing.assert_allclose(res.matrix, x)
    assert res.report["action"].tolist() == ["kept", "kept"]


def test_collapse_input_errors(matrix_case):
    x, var, mapping = matrix_case
    with pytest.raises(ValueError, match="var has 7 rows but the matrix has 8 columns"):
        collapse_genes(x, var.iloc[:7], mapping, value_kind="counts")
    with pytest.raises(KeyError, match=r"mapping lacks 1 identifiers of var, e.g. \['TP53'\]"):
        collapse_genes(x, var, mapping[mapping["input"] != "TP53"], value_kind="counts")
    with pytest.raises(ValueError, match="value_kind must be"):
        collapse_genes(x, var, mapping, value_kind="tpm")
    with pytest.raises(ValueError, match="rule must be"):
        collapse_genes(x, var, mapping, value_kind="counts", rule="mean")


# --------------------------------------------------------------------------------------
# real data
# --------------------------------------------------------------------------------------

# Names that HGNC never assigns: Ensembl/GENCODE clone-based lncRNA names (AC000068.1,
# CTD-2201I18.1) and Rfam family ids (RF00017-100).
_NOT_HGNC = re.compile(r"^([A-Z]{1,2}\d{5,6}\.\d+|[A-Z0-9]+-\d+[A-Z]\d+\.\d+|RF\d{5}(-\d+)?)$")


@pytest.mark.shared_data
def test_op3_gene_columns_map_to_current_ensembl_ids(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "hgnc_complete_set.txt.gz").symlink_to(
        shared_path("reference_hgnc", "hgnc_complete_set.txt.gz")
    )
    cols_file = shared_path("op3_neurips2023_kaggle", "de_train_gene_columns.txt")
    cols = [c.strip() for c in cols_file.read_text().splitlines() if c.strip()]
    assert len(cols) == 18_211
    store = RefStore.build(source_dir=src, out=tmp_path / "refs")
    t0 = time.perf_counter()
    res = GeneResolver.from_store(store).resolve(cols)
    elapsed = time.perf_counter() - t0
    cov = gene_coverage(res)
    nameable = ~res["input"].str.match(_NOT_HGNC)
    ens = (res["status"] == "resolved") & res["ensembl_gene_id"].notna()
    frac_nameable = float(ens[nameable].mean())
    print(
        f"\nOP3 gene columns: {cov['with_ensembl']:,} of {cov['n']:,} mapped to a current "
        f"Ensembl id ({100 * cov['ensembl_fraction']:.1f}%); {int(nameable.sum()):,} have "
        f"names HGNC can know, of which {100 * frac_nameable:.2f}% map; "
        f"{int((~nameable).sum()):,} are Ensembl clone-based or Rfam names without an HGNC "
        f"record; status {cov['status']}; match types {cov['match_type']}; "
        f"normalizations {cov['normalization']}; many-to-one {cov['many_to_one']}; "
        f"resolve took {elapsed:.2f} s"
    )
    assert frac_nameable >= 0.97
    assert cov["ensembl_fraction"] >= 0.83
    assert res.loc[res["input"] == "C10ORF143", "symbol"].tolist() == ["C10orf143"]

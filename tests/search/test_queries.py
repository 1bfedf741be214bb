"""Search queries: gene set, GMT/GRP and signature files; resolution onto a store's genes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest

from conftest import shared_path
from perturbridge.ids.genes import GeneResolver
from perturbridge.search.queries import (
    Query,
    queries_from_files,
    read_gene_set,
    read_gmt,
    read_signature,
    resolve_query,
)

GENES = pd.DataFrame(
    {
        "gene_id": ["ENSG00000141510", "ENSG00000012048", "ENSG00000146648", "ENSG00000000003"],
        "symbol": ["TP53", "BRCA1", "EGFR", "TSPAN6"],
        "zarr_col": [0, 1, 2, 3],
    }
)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_query_takes_sets_or_a_signature() -> None:
    a_list: Any = ["TP53"]  # a list given where a tuple is expected
    q = Query("q", up=a_list, down=("EGFR",))
    assert q.up == ("TP53",) and q.kind == "sets"
    assert Query("s", signature=pd.Series([1.0], index=["TP53"])).kind == "signature"
    with pytest.raises(ValueError, match="not both"):
        Query("x", up=("TP53",), signature=pd.Series([1.0], index=["TP53"]))
    with pytest.raises(ValueError, match="is empty"):
        Query("x")
    with pytest.raises(ValueError, match="non-empty name"):
        Query("", up=("TP53",))
    with pytest.raises(TypeError, match="pandas Series"):
        Query("x", signature=cast(Any, {"TP53": 1.0}))
    with pytest.raises(ValueError, match=r"1 signature values are not finite.*\['EGFR'\]"):
        Query("x", signature=pd.Series([1.0, np.nan], index=["TP53", "EGFR"]))
    with pytest.raises(ValueError, match="listed twice"):
        Query("x", signature=pd.Series([1.0, 2.0], index=["TP53", "TP53"]))
    with pytest.raises(ValueError, match="must be numbers"):
        Query("x", signature=pd.Series(["a"], index=["TP53"]))


def test_read_gene_set_text_and_grp(tmp_path: Path) -> None:
    grp = _write(tmp_path, "up.grp", "# a CMap GRP file\nTP53\n\nBRCA1\r\n  EGFR  \nTP53\n")
    assert read_gene_set(grp) == ("TP53", "BRCA1", "EGFR")


def test_read_gene_set_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="gene set file not found"):
        read_gene_set(tmp_path / "absent.txt")
    with pytest.raises(ValueError, match="lists no gene"):
        read_gene_set(_write(tmp_path, "empty.txt", "# nothing\n\n"))
    with pytest.raises(ValueError, match="line 2 holds several fields"):
        read_gene_set(_write(tmp_path, "set.gmt", "TP53\nSET\tdesc\tTP53\tEGFR\n"))
    binary = tmp_path / "set.bin"
    binary.write_bytes(b"\xff\xfe\x00TP53")
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        read_gene_set(binary)
    with pytest.raises(FileNotFoundError, match="GMT file not found"):
        read_gmt(tmp_path)  # a folder
    with pytest.raises(FileNotFoundError, match="signature file not found"):
        read_signature(tmp_path / "absent.csv")


def test_read_gmt(tmp_path: Path) -> None:
    path = _write(tmp_path, "q.gmt", "A_UP\tdesc a\tTP53\tEGFR\tTP53\n\nB_UP\t\tBRCA1\t\n")
    assert read_gmt(path) == [("A_UP", ("TP53", "EGFR")), ("B_UP", ("BRCA1",))]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("A\tdesc\n", "line 1 is not"),
        ("A\tdesc\tTP53\nA\tdesc\tEGFR\n", "set 'A' on line 2 repeats line 1"),
        ("\n# only comments\n", "holds no gene set"),
    ],
)
def test_read_gmt_errors(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        read_gmt(_write(tmp_path, "bad.gmt", text))


@pytest.mark.shared_data
def test_read_cmap_query_up_gmt() -> None:
    path = shared_path("l1000_cmapR", "query_up.gmt")
    sets = read_gmt(path)
    # independently: one set per line, genes are the fields after the description
    lines = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    assert [name for name, _ in sets] == [f[0] for f in lines]
    assert sets[0][0] == "HDAC_GLASER_UP"
    assert sets[0][1][:2] == ("202284_s_at", "202838_at")
    for (_, genes), fields in zip(sets, lines, strict=True):
        assert set(genes) == {g for g in fields[2:] if g}
    print("query_up.gmt sets:", [(name, len(genes)) for name, genes in sets])
    queries = queries_from_files(gmt=path)
    assert [q.name for q in queries] == [f[0] for f in lines]
    assert all(q.kind == "sets" and not q.down for q in queries)


def test_read_gmx(tmp_path: Path) -> None:
    path = _write(tmp_path, "q.gmx", "A\tB\n-666\tdesc\nTP53\tEGFR\nBRCA1\t\n\t\n")
    assert read_gmt(path) == [("A", ("TP53", "BRCA1")), ("B", ("EGFR",))]
    with pytest.raises(ValueError, match=r"set 'B' \(column 2\) has no gene"):
        read_gmt(_write(tmp_path, "e.gmx", "A\tB\nx\ty\nTP53\t\n"))
    with pytest.raises(ValueError, match="non-empty and unique"):
        read_gmt(_write(tmp_path, "d.gmx", "A\tA\nx\ty\nTP53\tEGFR\n"))


@pytest.mark.shared_data
def test_read_cmap_gmx_and_grp() -> None:
    gmx = shared_path("l1000_cmapR", "lm_probes.gmx")
    table = pd.read_csv(gmx, sep="\t", dtype=str)  # independently: one set per column
    sets = dict(read_gmt(gmx))
    assert list(sets) == list(table.columns)
    for name in table.columns:
        assert set(sets[name]) == set(table[name].iloc[1:].dropna())  # row 0: descriptions
    print("lm_probes.gmx sets:", {name: len(genes) for name, genes in sets.items()})
    grp = shared_path("l1000_cmapR", "lm_epsilon_n978.grp")
    genes = read_gene_set(grp)
    lines = [g.strip() for g in grp.read_text().splitlines() if g.strip()]
    assert genes == tuple(lines) and len(genes) == 978


def test_read_signature_csv_and_tsv(tmp_path: Path) -> None:
    csv = _write(tmp_path, "sig.csv", "gene,AveExpr,logFC\nTP53,5,1.5\nEGFR,6,-2\n")
    sig = read_signature(csv)
    assert sig.to_dict() == {"TP53": 1.5, "EGFR": -2.0}
    tsv = _write(tmp_path, "sig.tsv", "id\tvalue_x\nTP53\t0.5\nBRCA1\t-1\n")
    assert read_signature(tsv).to_dict() == {"TP53": 0.5, "BRCA1": -1.0}
    other = _write(tmp_path, "o.tsv", "name\tlogFC\tt\nTP53\t1\t9\n")
    assert read_signature(other, value_column="t").to_dict() == {"TP53": 9.0}


@pytest.mark.parametrize(
    ("text", "kwargs", "match"),
    [
        ("gene,logFC\nTP53,1\nEGFR,up\n", {}, r"1 values of column 'logFC'.*EGFR='up'"),
        ("gene,logFC\nTP53,1\nTP53,2\n", {}, "listed more than once.*TP53"),
        ("gene,a,b\nTP53,1,2\n", {}, "cannot tell the value column"),
        ("gene,logFC\nTP53,1\n", {"value_column": "t"}, "no value column 't'"),
        ("gene\nTP53\n", {}, "needs a gene column and a value column"),
        ("gene,logFC\nTP53,\n", {}, "missing or not finite"),
    ],
)
def test_read_signature_errors(
    tmp_path: Path, text: str, kwargs: dict[str, str], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        read_signature(_write(tmp_path, "sig.csv", text), **kwargs)


def test_queries_from_files(tmp_path: Path) -> None:
    up = _write(tmp_path, "drug_up.txt", "TP53\nEGFR\n")
    down = _write(tmp_path, "drug_down.txt", "BRCA1\n")
    (q,) = queries_from_files(up=up, down=down)
    assert (q.name, q.up, q.down) == ("drug", ("TP53", "EGFR"), ("BRCA1",))
    gmt_up = _write(tmp_path, "up.gmt", "X_UP\t\tTP53\nY\t\tEGFR\n")
    gmt_dn = _write(tmp_path, "dn.gmt", "Y\t\tTSPAN6\nX_DN\t\tBRCA1\n")
    pairs = queries_from_files(gmt=gmt_up, gmt_down=gmt_dn)
    assert [(q.name, q.up, q.down) for q in pairs] == [
        ("X", ("TP53",), ("BRCA1",)),
        ("Y", ("EGFR",), ("TSPAN6",)),
    ]
    sig = _write(tmp_path, "mysig.csv", "gene,logFC\nTP53,1\n")
    assert queries_from_files(signature=sig)[0].name == "mysig"


def test_queries_from_files_errors(tmp_path: Path) -> None:
    up = _write(tmp_path, "up.txt", "TP53\n")
    gmt = _write(tmp_path, "up.gmt", "X_UP\t\tTP53\nZ_UP\t\tEGFR\n")
    lonely = _write(tmp_path, "dn.gmt", "X_DN\t\tBRCA1\n")
    with pytest.raises(ValueError, match="exactly one kind"):
        queries_from_files(up=up, gmt=gmt)
    with pytest.raises(ValueError, match="exactly one kind"):
        queries_from_files()
    with pytest.raises(ValueError, match=r"without a partner: \['Z'\]"):
        queries_from_files(gmt=gmt, gmt_down=lonely)
    with pytest.raises(ValueError, match="needs gmt"):
        queries_from_files(gmt_down=lonely)


def test_resolve_by_gene_id_and_symbol() -> None:
    q = Query("q", up=("TP53", "ENSG00000146648", "egfr", "NOPE1"), down=("TSPAN6", "NOPE2"))
    rq = resolve_query(q, GENES)
    np.testing.assert_array_equal(rq.up_cols, [0, 2])
    np.testing.assert_array_equal(rq.down_cols, [3])
    assert rq.unmatched == ("NOPE1", "NOPE2")
    np.testing.assert_array_equal(rq.cols, [0, 2, 3])


def test_resolve_a_signature_keeps_values_on_their_columns() -> None:
    sig = pd.Series([2.0, -1.0, 0.5, 7.0], index=["EGFR", "TP53", "XYZ", "egfr"])
    rq = resolve_query(Query("s", signature=sig), GENES)
    np.testing.assert_array_equal(rq.signature_cols, [0, 2])
    np.testing.assert_array_equal(rq.signature_values, [-1.0, 2.0])
    assert rq.unmatched == ("XYZ", "egfr")  # unknown; a second gene onto EGFR's column


def test_resolve_through_a_gene_resolver_and_synonyms() -> None:
    genes = pd.DataFrame(
        {
            "hgnc_id": ["HGNC:11998"],
            "symbol": ["TP53"],
            "entrez_id": ["7157"],
            "ensembl_gene_id": ["ENSG00000141510"],
        }
    )
    syn = pd.DataFrame(
        {
            "hgnc_id": ["HGNC:11998"] * 3,
            "synonym": ["TP53", "P53", "7157"],
            "kind": ["symbol", "alias", "entrez"],
        }
    )
    resolver = GeneResolver(genes, syn)
    q = Query("q", up=("P53", "7157", "201746_at"))
    with pytest.raises(KeyError, match="none of its 3 genes"):
        resolve_query(q, GENES)  # an alias, an Entrez id and a probe: not the store's ids
    rq = resolve_query(q, GENES, resolver=resolver, synonyms={"201746_at": "TP53"})
    np.testing.assert_array_equal(rq.up_cols, [0])
    assert rq.unmatched == ()


def test_resolve_errors() -> None:
    with pytest.raises(KeyError, match="none of its 2 genes is in the store"):
        resolve_query(Query("q", up=("A", "B")), GENES)
    with pytest.raises(ValueError, match="in both the up and down sets"):
        resolve_query(Query("q", up=("TP53",), down=("TP53",)), GENES)
    with pytest.raises(ValueError, match="map onto the same store genes"):
        resolve_query(Query("q", up=("TP53",), down=("ENSG00000141510",)), GENES)
    with pytest.raises(KeyError, match="lacks columns"):
        resolve_query(Query("q", up=("TP53",)), GENES.drop(columns="zarr_col"))

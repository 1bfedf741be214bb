"""Signature search on real public signatures (../shared/data): CMap level 5 (cmapR) and the
signatureSearch sample database; the ranks are printed (pytest -s shows them).

- cmapR level 5 (272 MODZ signatures of vemurafenib, atorvastatin and venlafaxine in 65
  cell lines): one vemurafenib signature of A375 ranks the other vemurafenib signatures
  of A375 near the top of the 271 others.
- signatureSearch ``sample_db.h5`` (100 compounds in SKB cells): vorinostat's signature
  puts the other HDAC inhibitors of the set (trichostatin A, HC-toxin, pyroxamide,
  APHA compound 8) among the top hits.
- cmapR ``query_up.gmt`` (Affymetrix probe ids, the L1000 landmark naming): its up sets,
  mapped to Entrez ids through the level 5 file's row metadata, run through the command
  line and report hits. Most of their probes are not among the 978 landmarks, so a set
  keeps 0-5 genes: sets with none are left out (--skip-unmatched) and listed with the
  reason, never dropped silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import shared_path
from perturbridge.cli import app
from perturbridge.compendium import Compendium
from perturbridge.compendium.signatures import import_signatures
from perturbridge.io import read_gctx
from perturbridge.search import SearchOptions, search

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

LEVEL5 = ("l1000_cmapR", "cmapR_ds_level5_modz_n272x978.gctx")
SAMPLE_DB = ("l1000_signatureSearch", "sample_db.h5")
GMT = ("l1000_cmapR", "query_up.gmt")
HDAC_INHIBITORS = ("trichostatin-a", "HC-toxin", "pyroxamide", "APHA-compound-8")
VEMURAFENIB_A375 = "cmapr:BRAF001_A375_24H:BRD-U73308409-000-01-9:10"


@pytest.fixture(scope="module")
def cmapr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("cmapr") / "store"
    import_signatures(store, shared_path(*LEVEL5), kind="gctx", dataset="cmapr")
    return store


@pytest.fixture(scope="module")
def skb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("skb") / "store"
    import_signatures(store, shared_path(*SAMPLE_DB), kind="signaturesearch", dataset="skb")
    return store


@pytest.mark.parametrize(("method", "max_median"), [("wtcs", 10), ("cosine", 10), ("xsum", 10)])
def test_vemurafenib_finds_vemurafenib_of_the_same_cell_line(
    cmapr: Path, method: str, max_median: int
) -> None:
    with Compendium.open(cmapr) as comp:
        cond = comp.conditions(compound="vemurafenib", context="A375")
        n_all = len(comp.conditions())
    assert VEMURAFENIB_A375 in set(cond["condition_id"])
    res = search(cmapr, VEMURAFENIB_A375, options=SearchOptions(method=method, top=n_all))
    hits = res.hits
    assert len(hits) == n_all - 1
    same = hits[(hits["compound"] == "vemurafenib") & (hits["cell_context"] == "A375")]
    ranks = same["rank"].to_numpy()
    print(f"\n{method}: ranks of the other {len(ranks)} vemurafenib A375 signatures among "
          f"{len(hits)}: {ranks.tolist()} (chance median {len(hits) / 2:.0f})")  # fmt: skip
    print(same[["rank", "condition_id", "dose_uM", "time_h", "score", "p", "fdr"]].to_string())
    assert len(ranks) == len(cond) - 1
    assert np.median(ranks) <= max_median
    assert ranks.min() <= 3


@pytest.mark.parametrize("method", ["wtcs", "cosine", "spearman", "xsum"])
def test_vorinostat_finds_the_other_hdac_inhibitors(skb: Path, method: str) -> None:
    res = search(skb, "skb:vorinostat__SKB__trt_cp", options=SearchOptions(method=method, top=99))
    every = dict(zip(res.hits["compound"], res.hits["rank"], strict=True))
    ranks = {name: int(every[name]) for name in HDAC_INHIBITORS}
    print(f"\n{method}: ranks among 99 of the other HDAC inhibitors: {ranks}")
    print(res.hits[["rank", "compound", "score", "p", "fdr"]].head(8).to_string())
    assert max(ranks.values()) <= 10
    assert sorted(ranks.values())[:2] == [1, 2]  # trichostatin A and HC-toxin lead


def _entrez_gmt(out: Path) -> Path:
    """query_up.gmt with its landmark probe ids mapped to Entrez ids (the level 5 row
    metadata)."""
    probes = read_gctx(shared_path(*LEVEL5)).row_meta["pr_gene_id"].astype(str)
    lines = []
    for line in shared_path(*GMT).read_text().splitlines():
        name, desc, *genes = line.split("\t")
        # probes that are not landmarks stay as they are: reported as unmatched
        lines.append("\t".join([name, desc, *(str(probes.get(g, g)) for g in genes)]))
    out.write_text("\n".join(lines) + "\n")
    return out


def test_query_up_gmt_runs_and_reports_hits(cmapr: Path, skb: Path, tmp_path: Path) -> None:
    gmt = _entrez_gmt(tmp_path / "query_up_entrez.gmt")
    sets = [line.split("\t")[0] for line in gmt.read_text().splitlines()]
    runner = CliRunner(env={"COLUMNS": "200"})
    for store in (cmapr, skb):
        out = tmp_path / f"hits_{store.parent.name}"
        args = ["--gmt", str(gmt), "--top", "5", "--skip-unmatched", "--out", str(out)]
        res = runner.invoke(app, ["search", str(store), *args, "--no-progress"])
        assert res.exit_code == 0, res.output
        hits = pd.read_csv(out / "hits.tsv", sep="\t")
        queries = pd.read_csv(out / "queries.tsv", sep="\t")
        print(f"\n{store.parent.name}: genes matched per set\n"
              f"{queries[['query', 'n_up', 'n_unmatched', 'skipped']].to_string()}")  # fmt: skip
        print(hits.groupby("query", sort=False).head(1)[["query", "compound", "cell_context",
                                                          "score", "p"]].to_string())  # fmt: skip
        assert list(queries["query"]) == sets  # every set accounted for
        ran = queries.loc[queries["skipped"].isna(), "query"].tolist()
        left_out = queries.loc[queries["skipped"].notna(), "query"].tolist()
        assert len(ran) >= len(sets) // 2
        assert (queries.loc[queries["skipped"].notna(), "n_up"] == 0).all()
        assert set(hits["query"]) == set(ran)
        assert (hits.groupby("query").size() == 5).all()
        for name in ran:
            assert f"query {name}: top 5" in res.output
        for name in left_out:
            assert f"query {name!r}: none of its" in " ".join(res.output.split())


def test_assay_restriction(cmapr: Path) -> None:
    opts = SearchOptions(assays=("L1000",), n_null=0, top=3)
    res = search(cmapr, VEMURAFENIB_A375, options=opts)
    assert res.info["n_conditions"] == 272 and set(res.hits["assay"]) == {"L1000"}
    with pytest.raises(KeyError, match=r"assays \['RNA-seq'\] not in the store.*L1000"):
        search(cmapr, VEMURAFENIB_A375, options=SearchOptions(assays=("RNA-seq",)))

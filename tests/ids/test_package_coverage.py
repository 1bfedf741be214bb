"""Coverage of the team's real name lists before and after each package reference source.

Prints, per list, how many names resolve with the shared reference files alone and after
adding each source shipped in a package (FDA substance names; the cellxgene builds of
Cellosaurus and the Cell Ontology), so the gain of each is visible; asserts that no list
loses coverage and that the spellings of issue 17 give the structures and accessions
known independently (InChIKey connectivity blocks from PubChem, Cellosaurus accessions).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conftest import shared_path
from perturbridge.ids.cells import CellResolver
from perturbridge.ids.chem import standardize_smiles_many
from perturbridge.ids.compounds import CompoundResolver
from perturbridge.ids.parsers_packages import SOURCE_FDA, installed_package_sources
from perturbridge.ids.store import RefStore

from .test_cells import _l1000_cell_ids

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

#: Connectivity blocks of the parent structures (PubChem InChIKeys), independent of the code.
EXPECTED_COMPOUNDS = {
    "Gleevec": "KTUFNOKKBVMGRW",  # imatinib
    "Velcade": "GXJABQQUPOEUTA",  # bortezomib
    "JQ1": "DNVXATUJJDPFDM",
    "suberoylanilide hydroxamic acid": "WAEXFXRVDQXREF",  # vorinostat (SAHA)
    "4-hydroxytamoxifen": "TXUZVZSFRXZGTL",  # afimoxifene
    "beta-estradiol": "VOXZDWNPVJITMN",  # estradiol
    "ABT-888": "JNAHVYVRKWKWKQ",  # veliparib
    "ATRA": "SHGAZHPCJJPHSC",  # tretinoin
    "Gefitinib///Iressa": "XGALLCVXEZPNRQ",
    "ciclosporin": "PMATZTZNYRCHOR",  # cyclosporin A
    "colecalciferol": "QYSXJUFSXHHAJI",  # cholecalciferol
    "cicloheximide": "YPHMISFOHDHNIV",  # cycloheximide
    "difenidol": "OGAKLTJNUQRZJU",  # diphenidol
    "isoetarine": "HUYWAWARQUIQLE",  # isoetharine
}
ESTRADIOL, ESTRADIOL_VALERATE = "VOXZDWNPVJITMN", "RSEPBGGWRJCQGY"

#: Cellosaurus accessions (cellosaurus.org) of spellings DepMap does not list.
EXPECTED_CELLS = {
    "H460": "CVCL_0459",  # NCI-H460
    "H1299": "CVCL_0060",  # NCI-H1299
    "HEK293T": "CVCL_0063",
    "HEK 293T": "CVCL_0063",
    "293T": "CVCL_0063",
}


def _needs(*sources: str) -> None:
    _found, skipped = installed_package_sources(list(sources))
    if skipped:
        pytest.skip("; ".join(f"{k}: {v}" for k, v in skipped.items()))


def _link(root: Path, *names: tuple[str, Path]) -> Path:
    src = root / "src"
    src.mkdir(parents=True, exist_ok=True)
    for name, target in names:
        (src / name).symlink_to(target)
    return src


def _fraction(status: pd.Series) -> str:
    n = int((status == "resolved").sum())
    return f"{n}/{len(status)} ({n / len(status):.1%})"


# --------------------------------------------------------------------------------------
# cells


@pytest.fixture(scope="module")
def cell_lists() -> dict[str, list[str]]:
    sciplex = pd.read_csv(shared_path("sciplex_trapnell", "Supplementary_Table_3.txt"), sep="\t")
    tahoe = sorted(
        p.name.split(".")[1] for p in shared_path("sigrecon_signatures").glob("tahoe.*.rda")
    )
    return {
        "L1000 cell ids": _l1000_cell_ids(),
        "sci-Plex3 cell lines": sorted(set(sciplex["cell_type"].dropna())),
        "Tahoe cell lines (sigrecon files)": tahoe,
        "issue 17 spellings": list(EXPECTED_CELLS),
    }


def test_cell_coverage_before_and_after_each_source(tmp_path, cell_lists, no_network):
    _needs("cellosaurus_cxg", "cell_ontology_cxg")
    src = _link(
        tmp_path,
        ("depmap_sample_info.csv", shared_path("reference_cell_lines", "depmap_sample_info.csv")),
        ("cellinfo.tsv.gz", shared_path("l1000_dhimmel_lincs", "cellinfo.tsv.gz")),
    )
    steps = {
        "shared files": [],
        "+ cellosaurus_cxg": ["cellosaurus_cxg"],
        "+ cell_ontology_cxg": ["cellosaurus_cxg", "cell_ontology_cxg"],
    }
    results: dict[str, dict[str, pd.DataFrame]] = {}
    for step, sources in steps.items():
        st = RefStore.build(source_dir=src, out=tmp_path / step, package_sources=sources)
        res = CellResolver.from_store(st)
        results[step] = {name: res.resolve(values) for name, values in cell_lists.items()}
    # the lookup the last store saved answers as the one keyed from its tables, for
    # every name and synonym it holds (and the lists)
    rebuilt = CellResolver(st.table("cells"), st.table("cell_synonyms"))
    every = [*st.table("cell_synonyms")["synonym"], *[v for x in cell_lists.values() for v in x]]
    pd.testing.assert_frame_equal(res.resolve(every), rebuilt.resolve(every))
    print()
    for name in cell_lists:
        line = ", ".join(f"{s}: {_fraction(results[s][name]['status'])}" for s in steps)
        print(f"{name}: {line}")
    for name in cell_lists:
        counts = [int((results[s][name]["status"] == "resolved").sum()) for s in steps]
        assert counts == sorted(counts), f"{name} lost coverage: {counts}"
    last = results["+ cell_ontology_cxg"]
    # accessions resolved before keep their accession
    for name in cell_lists:
        before, after = results["shared files"][name], last[name]
        ok = before["status"] == "resolved"
        changed = before[ok & (before["accession"] != after["accession"])]
        assert changed.empty, changed[["input", "accession"]]
    spell = last["issue 17 spellings"].set_index("input")["accession"].to_dict()
    assert spell == EXPECTED_CELLS


# --------------------------------------------------------------------------------------
# compounds


@pytest.fixture(scope="module")
def compound_store(shared_compound_store: RefStore) -> RefStore:
    """The session's store of the shared compound tables and the FDA names (conftest.py)."""
    _needs(SOURCE_FDA)
    return shared_compound_store


@pytest.fixture(scope="module")
def resolvers(compound_store: RefStore) -> dict[str, CompoundResolver]:
    """Built once for the module: the shared files alone and with the FDA names (from
    the tables), and the lookup the store saved (loaded)."""
    store = compound_store
    comp, syn = store.table("compounds"), store.table("compound_synonyms")
    structures = store.table("compound_structures")
    shared = (comp["ref_source"] != SOURCE_FDA).to_numpy()
    shared_syn = (syn["ref_source"] != SOURCE_FDA).to_numpy()
    before = CompoundResolver.from_tables(
        compounds=comp[shared], compound_synonyms=syn[shared_syn], structures=structures
    )
    after = CompoundResolver.from_tables(
        compounds=comp, compound_synonyms=syn, structures=structures
    )
    return {
        "shared files": before,
        f"+ {SOURCE_FDA}": after,
        "saved": CompoundResolver.from_store(store),
    }


def test_compound_coverage_before_and_after_fda_names(resolvers, no_network):
    sciplex = pd.read_csv(shared_path("sciplex_trapnell", "Supplementary_Table_3.txt"), sep="\t")
    drugs = sciplex[["name", "SMILES"]].dropna().drop_duplicates("name").reset_index(drop=True)
    truth = standardize_smiles_many(drugs["SMILES"])["connectivity"]
    tahoe = shared_path("tahoe100m", "tahoe_drug_names_sigspace.txt").read_text().splitlines()
    tahoe = [n for n in tahoe if n.strip()]
    print()
    resolved: dict[str, list[int]] = {"sci-Plex3": [], "Tahoe": [], "issue 17": []}
    answers: dict[str, list[pd.DataFrame]] = {}
    for step, res in resolvers.items():
        sp = res.resolve(drugs["name"], kind="name")
        ok = sp["status"] == "resolved"
        judged = ok & truth.notna()
        agree = (sp["connectivity"] == truth)[judged]
        th = res.resolve(tahoe, kind="name")
        ex = res.resolve(list(EXPECTED_COMPOUNDS), kind="name")
        answers[step] = [sp, th, ex]
        if step == "saved":
            continue
        print(
            f"{step}: sci-Plex3 {_fraction(sp['status'])}, {int(agree.sum())}/{len(agree)} "
            f"agree with the file's SMILES; Tahoe {_fraction(th['status'])}; "
            f"issue 17 examples {_fraction(ex['status'])}"
        )
        resolved["sci-Plex3"].append(int(ok.sum()))
        resolved["Tahoe"].append(int((th["status"] == "resolved").sum()))
        resolved["issue 17"].append(int((ex["status"] == "resolved").sum()))
        assert agree.mean() >= 0.95
    for name, counts in resolved.items():
        assert counts[-1] >= counts[0], f"{name} lost coverage: {counts}"
    # the lookup the store saved answers as the one built from its tables
    for saved, rebuilt in zip(answers["saved"], answers[f"+ {SOURCE_FDA}"], strict=True):
        pd.testing.assert_frame_equal(saved, rebuilt)
    after = resolvers[f"+ {SOURCE_FDA}"]
    out = after.resolve(list(EXPECTED_COMPOUNDS), kind="name").set_index("query")
    wrong = {q: out.loc[q, "connectivity"] for q, c in EXPECTED_COMPOUNDS.items()
             if out.loc[q, "connectivity"] != c}  # fmt: skip
    assert not wrong


def test_17beta_estradiol_is_never_estradiol_valerate(resolvers, no_network):
    # LINCS names estradiol valerate's structure "17-beta-estradiol" (BRD-K66766661);
    # the FDA names list gives the name to estradiol: the answer shows the conflict
    after = resolvers["saved"]
    for spelling in ("17β-estradiol", "17beta-estradiol", "17-beta-estradiol"):
        hit = after.resolve_one(spelling, kind="name")
        assert hit["connectivity"] != ESTRADIOL_VALERATE
        if hit["status"] == "ambiguous":
            blocks = {k[:14] for k in hit["candidates"]}
            assert blocks == {ESTRADIOL, ESTRADIOL_VALERATE}
            assert "fda_unii_names" in " ".join(hit["candidate_sources"])
        else:
            assert hit["connectivity"] == ESTRADIOL

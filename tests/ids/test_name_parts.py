"""Names as people type them: multi-name cells, batch and dose notes, spelling variants."""

from __future__ import annotations

import pandas as pd
import pytest

from perturbridge.ids.compounds import CompoundResolver
from perturbridge.ids.name_parts import split_names, strip_notes
from perturbridge.ids.names import name_keys, spelling_variant

# structures typed by hand; connectivity blocks of their parents (PubChem)
GEFITINIB = "COc1cc2ncnc(Nc3ccc(F)c(Cl)c3)c2cc1OCCCN1CCOCC1"
GEFITINIB_CONN = "XGALLCVXEZPNRQ"
VORINOSTAT = "ONC(=O)CCCCCCC(=O)Nc1ccccc1"
VORINOSTAT_CONN = "WAEXFXRVDQXREF"
ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
ASPIRIN_CONN = "BSYNRYMUTXBXSQ"
CYCLOSPORIN_LIKE = "CCCCCCCCCCNC(=O)C"  # a stand-in structure for the spelling tests
DIPHENIDOL = "OC(CCCN1CCCCC1)(c1ccccc1)c1ccccc1"
DIPHENIDOL_CONN = "OGAKLTJNUQRZJU"


@pytest.fixture(scope="module")
def resolver() -> CompoundResolver:
    rows = [
        ("lincs", "BRD-K64052750", "gefitinib", GEFITINIB),
        ("lincs", "BRD-K81418486", "vorinostat", VORINOSTAT),
        ("lincs", "BRD-K11111111", "aspirin", ASPIRIN),
        ("lincs", "BRD-K22222222", "cyclosporine", CYCLOSPORIN_LIKE),
        ("lincs", "BRD-K33333333", "diphenidol", DIPHENIDOL),
    ]
    compounds = pd.DataFrame(
        {
            "ref_source": [r[0] for r in rows],
            "ref_id": [r[1] for r in rows],
            "name": [r[2] for r in rows],
            "smiles": [r[3] for r in rows],
            "inchikey": None,
            "pubchem_cid": pd.array([None] * len(rows), dtype="Int64"),
            "cas": None,
        }
    )
    synonyms = pd.DataFrame(
        {
            "ref_source": ["lincs", "lincs"],
            "ref_id": ["BRD-K64052750", "BRD-K81418486"],
            "synonym": ["Iressa", "SAHA"],
            "kind": ["alias", "alias"],
        }
    )
    return CompoundResolver.from_tables(compounds=compounds, compound_synonyms=synonyms)


@pytest.mark.parametrize(
    ("cell", "parts"),
    [
        ("Gefitinib///Iressa", ["Gefitinib", "Iressa"]),
        ("GSK461364///private_company_drug_8437", ["GSK461364", "private_company_drug_8437"]),
        ("a ; b;", ["a", "b"]),
        ("x///x", None),
        ("imatinib", None),
    ],
)
def test_split_names(cell: str, parts: list[str] | None) -> None:
    assert split_names(cell) == parts


@pytest.mark.parametrize(
    ("name", "bare", "removed"),
    [
        ("Vorinostat-batch1", "Vorinostat", ["batch1"]),
        ("JQ1_batch 3", "JQ1", ["batch 3"]),
        ("aspirin (lot 2)", "aspirin", ["lot 2"]),
        ("gefitinib (50 uM)", "gefitinib", ["(50 uM)"]),
        ("gefitinib [0.5 µM]", "gefitinib", ["[0.5 µM]"]),
        ("Vorinostat-batch2 (50 uM)", "Vorinostat", ["batch2", "(50 uM)"]),
    ],
)
def test_strip_notes(name: str, bare: str, removed: list[str]) -> None:
    got = strip_notes(name)
    assert got is not None
    assert got[0] == bare
    assert got[1] == "removed " + ", ".join(repr(r) for r in removed)


@pytest.mark.parametrize("name", ["Tofacitinib (citrate)", "batch1", "abc batch", "(50 uM)"])
def test_strip_notes_leaves_other_names(name: str) -> None:
    assert strip_notes(name) is None


@pytest.mark.parametrize(
    ("inn", "usan"),
    [
        ("ciclosporin", "cyclosporine"),
        ("colecalciferol", "cholecalciferol"),
        ("difenidol", "diphenidol"),
        ("isoetarine", "isoetharine"),
        ("beclometasone", "beclomethasone"),
        ("oestradiol", "estradiol"),
        ("cicloheximide", "cycloheximide"),
        ("sulfasalazine", "sulphasalazine"),
    ],
)
def test_spelling_variants_meet(inn: str, usan: str) -> None:
    assert spelling_variant(inn) == spelling_variant(usan) is not None
    tier7 = {k.key for k in name_keys(inn) if k.tier == 7}
    assert tier7 == {k.key for k in name_keys(usan) if k.tier == 7}
    # and they differ at every stricter tier
    assert not {k for k in name_keys(inn) if k.tier < 7} & {k for k in name_keys(usan)}


def test_spelling_variant_tier_is_the_weakest(resolver: CompoundResolver) -> None:
    out = resolver.resolve(["difenidol", "ciclosporin", "diphenidol"], kind="name")
    assert out["connectivity"].iloc[0] == DIPHENIDOL_CONN
    assert out["match_type"].tolist()[:2] == ["spelling_variant", "spelling_variant"]
    assert out["confidence"].iloc[0] == 0.5
    assert out["match_type"].iloc[2] == "synonym"  # the exact hit is never a variant


def test_multi_name_cells(resolver: CompoundResolver) -> None:
    out = resolver.resolve(
        [
            "Gefitinib///Iressa",
            "vorinostat///private_company_drug_8437",
            "gefitinib///aspirin",
            "nothing///nowhere",
        ],
        kind="name",
    ).set_index("query")
    agree = out.loc["Gefitinib///Iressa"]
    assert (agree["status"], agree["connectivity"]) == ("resolved", GEFITINIB_CONN)
    assert agree["error"] == "names agree: Gefitinib, Iressa"
    part = out.loc["vorinostat///private_company_drug_8437"]
    assert (part["status"], part["connectivity"]) == ("resolved", VORINOSTAT_CONN)
    assert "not resolved: private_company_drug_8437" in part["error"]
    clash = out.loc["gefitinib///aspirin"]
    assert clash["status"] == "ambiguous" and clash["match_type"] == "multi_name"
    assert {k[:14] for k in clash["candidates"]} == {GEFITINIB_CONN, ASPIRIN_CONN}
    assert "name different compounds" in clash["error"]
    assert out.loc["nothing///nowhere", "status"] == "unresolved"


def test_batch_and_dose_notes(resolver: CompoundResolver) -> None:
    out = resolver.resolve(["SAHA-batch1", "Iressa lot 2", "gefitinib (50 uM)"], kind="name")
    assert out["connectivity"].tolist() == [VORINOSTAT_CONN, GEFITINIB_CONN, GEFITINIB_CONN]
    # a dose in parentheses is already dropped as a parenthetical note by the name tiers
    assert out["error"].tolist() == ["removed 'batch1'", "removed 'lot 2'", None]

"""Tests of perturbridge.ids.names: the tiers of compound-name normalization."""

from __future__ import annotations

import pandas as pd
import pytest

from perturbridge.ids.names import NAME_TIERS, name_key_table, name_keys, prepare_name


def keys_at(name: str, tier: int) -> set[str]:
    return {k.key for k in name_keys(name) if k.tier == tier}


def main_key(name: str, tier: int) -> str | None:
    found = [k.key for k in name_keys(name) if k.tier == tier and not k.alternative]
    return found[0] if found else None


# prepare -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "prepared"),
    [
        ("  Imatinib   Mesylate ", "imatinib mesylate"),
        ("18β-Glycyrrhetinic acid", "18beta-glycyrrhetinic acid"),
        ("γ-Oryzanol", "gamma-oryzanol"),
        ("α-Tocopherol", "alpha-tocopherol"),
        ("Δ9-THC", "delta9-thc"),
        ("µ-opioid", "mu-opioid"),
        ("(−)-Epicatechin", "(minus)-epicatechin"),  # unicode minus
        ("(–)-Nicotine", "(minus)-nicotine"),  # en dash
        ("(+)-JQ1", "(plus)-jq1"),
        ("(±)-Propranolol", "(rac)-propranolol"),
        ("(+/-)-Propranolol", "(rac)-propranolol"),
        ("Café·HCl", "cafe hcl"),
        ('"quoted"', "quoted"),
    ],
)
def test_prepare_name(raw: str, prepared: str) -> None:
    assert prepare_name(raw) == prepared


def test_tier_table_is_ordered_and_confidence_decreases() -> None:
    assert [t.tier for t in NAME_TIERS] == list(range(len(NAME_TIERS)))
    conf = [t.confidence for t in NAME_TIERS]
    assert conf == sorted(conf, reverse=True)
    assert NAME_TIERS[0].match_type == "synonym"
    assert NAME_TIERS[1].match_type == "normalized_name"


# normalized ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spellings",
    [
        ["Trichostatin A", "trichostatin-a", "TRICHOSTATIN_A", "Trichostatin, A"],
        ["5-Fluorouracil", "5 fluorouracil", "5-FLUOROURACIL"],
        ["(R)-(-)-Apomorphine", "R-(-)-apomorphine", "(r)-(−)-apomorphine"],
        ["18β-Glycyrrhetinic acid", "18-beta-glycyrrhetinic-acid"],
    ],
)
def test_separators_and_case_collapse_at_tier_1(spellings: list[str]) -> None:
    assert len({main_key(s, 1) for s in spellings}) == 1


def test_plus_and_minus_stay_apart() -> None:
    assert main_key("(+)-JQ1", 1) != main_key("(-)-JQ1", 1)


# desalted ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "parent"),
    [
        ("Imatinib Mesylate", "imatinib"),
        ("Riluzole hydrochloride", "riluzole"),
        ("Quisinostat 2HCl", "quisinostat"),
        ("Vinblastine (sulfate)", "vinblastine"),
        ("Trametinib (DMSO_TF solvate)", "trametinib"),
        ("Edoxaban (tosylate monohydrate)", "edoxaban"),
        ("L-Thyroxine (sodium salt pentahydrate)", "lthyroxine"),
        ("Dapagliflozin ((2S)-1,2-propanediol, hydrate)", "dapagliflozin"),
        ("Cabozantinib (S-malate)", "cabozantinib"),
        ("SGI-1776 free base", "sgi1776"),
        ("Elagolix sodium", "elagolix"),
        ("Lapatinib ditosylate", "lapatinib"),
        ("Fostamatinib (disodium hexahydrate)", "fostamatinib"),
        ("Apomorphine (hydrochloride hemihydrate)", "apomorphine"),
    ],
)
def test_salt_hydrate_and_solvate_words_removed(name: str, parent: str) -> None:
    assert main_key(name, 2) == parent


def test_a_name_is_never_emptied() -> None:
    assert main_key("Sodium chloride", 2) == "sodiumchloride"
    assert main_key("Hydrochloride", 2) == "hydrochloride"


def test_ester_words_survive_until_the_loose_tier() -> None:
    # abiraterone acetate is an ester, not a salt of abiraterone
    assert main_key("Abiraterone acetate", 2) == "abirateroneacetate"
    assert main_key("Abiraterone acetate", 3) == "abirateroneacetate"
    assert main_key("Abiraterone acetate", 4) == "abiraterone"
    # in parentheses an ester-prone anion is a salt form (vendor style)
    assert main_key("Pasireotide (acetate)", 2) == "pasireotide"


def test_a_cation_keeps_the_anion_in_the_molecule() -> None:
    # estrone sulfate potassium: the sulfate is an ester of estrone
    assert main_key("Estrone sulfate (potassium)", 4) == "estronesulfate"
    assert main_key("Larotrectinib sulfate", 4) == "larotrectinib"


def test_acid_counterion_dropped_at_loose_tier() -> None:
    assert main_key("ENMD-2076 L-(+)-Tartaric acid", 4) == "enmd2076"
    # but an acid alone stays what it is
    assert main_key("Fumaric acid", 4) == "fumaricacid"


# parenthetical -------------------------------------------------------------------------


def test_parenthesized_names_become_alternatives() -> None:
    keys = [k for k in name_keys("Navitoclax (ABT-263)") if k.tier == 3]
    assert {(k.key, k.alternative) for k in keys} == {("navitoclax", False), ("abt263", True)}


def test_several_alternatives_and_salt_inside() -> None:
    assert keys_at("Temsirolimus (CCI-779, NSC 683864)", 3) == {
        "temsirolimus",
        "cci779",
        "nsc683864",
    }
    assert keys_at("Bisindolylmaleimide IX (Ro 31-8220 Mesylate)", 3) == {
        "bisindolylmaleimideix",
        "ro318220",
    }
    assert keys_at("Rucaparib (AG-014699,PF-01367338) phosphate", 4) == {
        "rucaparib",
        "ag014699",
        "pf01367338",
    }


def test_notes_in_parentheses_are_not_names() -> None:
    assert keys_at("Quinidine (15% dihydroquinidine)", 3) == {"quinidine"}


def test_stereo_groups_are_kept_until_the_stereo_tier() -> None:
    assert main_key("(S)-Crizotinib", 3) == "scrizotinib"
    assert main_key("(S)-Crizotinib", 6) == "crizotinib"


# acid form and stereo ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("salt", "acid"),
    [
        ("Sodium valproate", "Valproic acid"),
        ("Sodium Phenylbutyrate", "phenylbutyric acid"),
        ("Sodium Salicylate", "Salicylic acid"),
        ("Lactate (calcium)", "lactic acid"),
    ],
)
def test_acid_form_meets_the_acid(salt: str, acid: str) -> None:
    assert main_key(salt, 5) == main_key(acid, 5)


def test_alkyl_esters_are_not_salts() -> None:
    for tier in (2, 4, 5):
        assert main_key("Dimethyl fumarate", tier) == "dimethylfumarate"
    assert main_key("Quetiapine fumarate", 2) == "quetiapine"


def test_no_acid_form_without_a_cation() -> None:
    assert main_key("Tolmetin", 5) == "tolmetin"
    assert main_key("Methotrexate", 5) == "methotrexate"


@pytest.mark.parametrize(
    ("variant", "plain"),
    [
        ("(R)-Verapamil (hydrochloride)", "Verapamil"),
        ("L-Eflornithine (monohydrochloride)", "eflornithine"),
        ("(1R,2S)-Tranylcypromine", "tranylcypromine"),
        ("trans-Resveratrol", "resveratrol"),
        ("Levobupivacaine", "bupivacaine"),
        ("18β-Glycyrrhetinic acid", "18?-Glycyrrhetinic acid"),
    ],
)
def test_stereo_stripped_tier(variant: str, plain: str) -> None:
    assert keys_at(variant, 6) & keys_at(plain, 6)


def test_short_derived_keys_are_dropped() -> None:
    # "E-64": removing the stereo-looking "e" would leave "64"
    assert keys_at("E-64", 6) == set()
    assert keys_at("E-64", 1) == {"e64"}


# the vectorized table ------------------------------------------------------------------


def test_name_key_table_equals_name_keys() -> None:
    names = [
        "imatinib",
        "Imatinib Mesylate",
        "Navitoclax (ABT-263)",
        "BRD-K12345678",
        "5-FU",
        "E-64",
        "ab",
        "",
        "Sodium valproate",
        "Dexamethasone",
    ]
    table = name_key_table(names)
    expected = pd.DataFrame(
        [(i, k.tier, k.key, k.alternative) for i, n in enumerate(names) for k in name_keys(n)],
        columns=["i", "tier", "key", "alternative"],
    )
    cols = ["i", "tier", "key", "alternative"]
    pd.testing.assert_frame_equal(
        table.sort_values(cols).reset_index(drop=True),
        expected.sort_values(cols).reset_index(drop=True),
        check_dtype=False,
    )


def test_name_keys_rejects_non_strings() -> None:
    with pytest.raises(TypeError, match="expected a compound name as str"):
        name_keys(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("beta-estradiol", "estradiol"),  # a leading Greek letter without a locant
        ("(+)-JQ1", "jq1"),  # a code keeps three characters
        ("JQ1", "jq1"),
        ("17beta-estradiol", "17estradiol"),
    ],
)
def test_stereo_stripped_leading_greek_and_codes(name: str, key: str) -> None:
    main = [k.key for k in name_keys(name) if k.tier == 6 and not k.alternative]
    assert main == [key]
    assert set(name_key_table([name]).query("tier == 6 and not alternative")["key"]) == {key}
    # stricter tiers keep the Greek letter
    assert all("beta" in k.key for k in name_keys(name) if k.tier < 6 and "estradiol" in k.key)

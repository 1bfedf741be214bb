"""Tests of perturbridge.ids.chem: RDKit standardization, parents, connectivity."""

from __future__ import annotations

import pandas as pd
import pytest

from perturbridge.ids.chem import (
    STRUCTURE_COLUMNS,
    connectivity_block,
    is_inchikey,
    standardize_smiles_many,
    standardize_structure,
)

IMATINIB = "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1"
IMATINIB_KEY = "KTUFNOKKBVMGRW-UHFFFAOYSA-N"


def parent_key(smiles: str) -> str:
    row = standardize_structure(smiles)
    assert row["error"] is None, row["error"]
    return str(row["parent_inchikey"])


def test_imatinib_mesylate_parent_is_imatinib() -> None:
    row = standardize_structure("CS(=O)(=O)O." + IMATINIB)
    assert row["inchikey"] != IMATINIB_KEY  # the salt has its own standard key
    assert row["parent_inchikey"] == IMATINIB_KEY
    assert row["connectivity"] == "KTUFNOKKBVMGRW"
    assert row["parent_smiles"] == standardize_structure(IMATINIB)["canonical_smiles"]


@pytest.mark.parametrize(
    ("salt", "parent"),
    [
        ("Cl.CCN(CC)CC", "CCN(CC)CC"),  # hydrochloride
        ("O.O.Cl.Cl.CN1CCC(CC1)c1ccccc1", "CN1CCC(CC1)c1ccccc1"),  # dihydrate 2HCl
        ("OC(=O)/C=C\\C(O)=O.CN1CCCC1c1cccnc1", "CN1CCCC1c1cccnc1"),  # maleate
        ("OC(=O)CC(O)(CC(O)=O)C(O)=O.CN(C)C(=N)N=C(N)N", "CN(C)C(=N)N=C(N)N"),  # citrate
        ("Cc1ccc(cc1)S(O)(=O)=O.CCOc1ccccc1", "CCOc1ccccc1"),  # tosylate
        ("CS(C)=O.CC(=O)Nc1ccc(O)cc1", "CC(=O)Nc1ccc(O)cc1"),  # DMSO solvate
    ],
)
def test_counter_ions_and_solvents_are_stripped(salt: str, parent: str) -> None:
    assert parent_key(salt) == parent_key(parent)


@pytest.mark.parametrize(
    ("charged", "neutral"),
    [
        ("[Na+].CC(=O)[O-]", "CC(=O)O"),  # sodium acetate
        ("[Na]OC(=O)c1ccccc1O", "OC(=O)c1ccccc1O"),  # covalent sodium salicylate
        ("[K+].[K+].[O-]C(=O)CCC([O-])=O.CCCC[NH3+]", "CCCCN"),  # largest organic ion
        ("C[NH+](C)CCc1ccccc1.[Cl-]", "CN(C)CCc1ccccc1"),  # protonated amine
    ],
)
def test_charges_are_neutralized(charged: str, neutral: str) -> None:
    assert parent_key(charged) == parent_key(neutral)


def test_a_quaternary_ammonium_keeps_its_charge() -> None:
    row = standardize_structure("C[N+](C)(C)C.[Cl-]")
    assert row["parent_smiles"] == "C[N+](C)(C)C"


def test_inorganic_and_platinum_complexes_stay_whole() -> None:
    cisplatin = standardize_structure("N.N.Cl[Pt]Cl")
    assert cisplatin["parent_inchikey"] == cisplatin["inchikey"]
    oxaliplatin = standardize_structure("O=C1O[Pt]2(NC3CCCCC3N2)OC1=O")
    assert oxaliplatin["parent_inchikey"] == oxaliplatin["inchikey"]


def test_misdrawn_nitroso_groups_are_repaired() -> None:
    proper = parent_key("O=NN(CCCl)C(=O)NC1CCCCC1")  # lomustine
    assert parent_key("[O-][N+]N(CCCl)C(=O)NC1CCCCC1") == proper
    assert parent_key("[O-][NH2+]N(CCCl)C(=O)NC1CCCCC1") == proper


def test_stereo_variants_share_the_connectivity_block() -> None:
    r = standardize_structure("C[C@@H](N)C(=O)O")
    s = standardize_structure("C[C@H](N)C(=O)O")
    assert r["parent_inchikey"] != s["parent_inchikey"]
    assert r["connectivity"] == s["connectivity"]


def test_keto_and_enol_tautomers_share_the_tautomer_block() -> None:
    keto = standardize_structure("CN1C(C(=O)Nc2ncc(C)s2)C(=O)c2ccccc2S1(=O)=O")  # meloxicam
    enol = standardize_structure("CN1C(C(=O)Nc2ncc(C)s2)=C(O)c2ccccc2S1(=O)=O")
    assert keto["connectivity"] != enol["connectivity"]  # standard InChI keeps them apart
    assert keto["tautomer_connectivity"] == enol["tautomer_connectivity"]


def test_inchi_input() -> None:
    row = standardize_structure("InChI=1S/C2H6O/c1-2-3/h3H,2H2,1H3")
    assert row["inchikey"] == "LFQSCWFLJHTTHZ-UHFFFAOYSA-N"
    assert row["canonical_smiles"] == "CCO"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("C1CC(", "could not parse the SMILES"),
        ("not a smiles", "could not parse the SMILES"),
        ("InChI=1S/garbage", "could not parse the InChI"),
        ("", "missing structure"),
        (None, "missing structure"),
    ],
)
def test_bad_structures_are_recorded_not_raised(bad: object, message: str) -> None:
    row = standardize_structure(bad)  # type: ignore[arg-type]
    assert message in row["error"]
    assert row["inchikey"] is None and row["parent_inchikey"] is None


def test_standardize_many_keeps_order_dedupes_and_records_errors() -> None:
    inputs = ["CCO", "C1CC(", None, "[Na+].CC(=O)[O-]", "CCO", "OCC"]
    out = standardize_smiles_many(inputs)
    assert list(out.columns) == list(STRUCTURE_COLUMNS)
    assert len(out) == len(inputs)
    assert out["smiles"].tolist() == inputs
    assert out["error"].notna().tolist() == [False, True, True, False, False, False]
    assert out.loc[0, "inchikey"] == out.loc[4, "inchikey"] == out.loc[5, "inchikey"]
    assert out.loc[3, "parent_smiles"] == "CC(=O)O"


def test_standardize_many_empty_and_argument_checks() -> None:
    empty = standardize_smiles_many([])
    assert list(empty.columns) == list(STRUCTURE_COLUMNS) and empty.empty
    with pytest.raises(ValueError, match="n_jobs >= 1"):
        standardize_smiles_many(["C"], n_jobs=0)
    with pytest.raises(ValueError, match="chunk_size >= 1"):
        standardize_smiles_many(["C"], chunk_size=0)


def test_standardize_many_in_worker_processes_gives_the_same() -> None:
    smiles = ["CCO", "Cl.CCN", "C1CC(", "c1ccccc1O", "[Na+].CC(=O)[O-]"]
    serial = standardize_smiles_many(smiles)
    parallel = standardize_smiles_many(smiles, n_jobs=2, chunk_size=2)
    pd.testing.assert_frame_equal(serial, parallel)


def test_rdkit_messages_are_silenced(capfd: pytest.CaptureFixture[str]) -> None:
    standardize_smiles_many(["C1CC(", "c1cccc1", "C(C)(C)(C)(C)C"])
    captured = capfd.readouterr()
    assert "SMILES Parse Error" not in captured.err
    assert "Can't kekulize" not in captured.err
    assert "valence" not in captured.err.lower()


def test_rdkit_logging_is_restored_afterwards(capfd: pytest.CaptureFixture[str]) -> None:
    from rdkit import Chem

    standardize_structure("C1CC(")
    capfd.readouterr()
    Chem.MolFromSmiles("C1CC(")
    assert "SMILES Parse Error" in capfd.readouterr().err


def test_inchikey_helpers() -> None:
    assert is_inchikey(IMATINIB_KEY)
    assert is_inchikey("InChIKey=" + IMATINIB_KEY)
    assert not is_inchikey("KTUFNOKKBVMGRW")
    assert not is_inchikey(None)
    assert connectivity_block("InChIKey=" + IMATINIB_KEY) == "KTUFNOKKBVMGRW"
    with pytest.raises(ValueError, match="expected a standard InChIKey"):
        connectivity_block("imatinib")

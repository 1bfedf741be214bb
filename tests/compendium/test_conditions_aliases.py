"""``Compendium.conditions(compound=…, refs=…)``: aliases resolved through the reference."""

from __future__ import annotations

import pandas as pd
import pytest

from perturbridge.compendium import Compendium
from perturbridge.ids.compounds import CompoundResolver
from perturbridge.simulate import simulate_agreement_store
from perturbridge.simulate.agreement import AgreementDesign

SMALL = AgreementDesign(
    n_datasets=2, n_contexts=1, n_compounds=4, doses=(1.0, 10.0), n_genes=50, n_replicates=2
)


@pytest.fixture(scope="module")
def comp(tmp_path_factory: pytest.TempPathFactory):
    store = simulate_agreement_store(tmp_path_factory.mktemp("aliases") / "store", SMALL, seed=1)
    with Compendium.open(store) as c:
        yield c


def _resolver(key: str, alias: str) -> CompoundResolver:
    """A reference that knows one compound, by its InChIKey only, under ``alias``."""
    compounds = pd.DataFrame(
        {
            "ref_source": ["t"],
            "ref_id": ["T-1"],
            "name": ["some compound"],
            "smiles": [None],
            "inchikey": [key],
            "pubchem_cid": pd.array([None], dtype="Int64"),
            "cas": [None],
        }
    )
    synonyms = pd.DataFrame(
        {"ref_source": ["t"], "ref_id": ["T-1"], "synonym": [alias], "kind": ["alias"]}
    )
    return CompoundResolver.from_tables(compounds=compounds, compound_synonyms=synonyms)


def test_an_alias_finds_the_conditions_of_its_structure(comp, no_network):
    every = comp.conditions()
    key = every["compound_parent_inchikey"].dropna().iloc[0]
    expected = every[every["compound_parent_inchikey"] == key]
    assert len(expected) > 1
    resolver = _resolver(key, "PLX-ALIAS-4032")
    assert comp.conditions(compound="PLX-ALIAS-4032").empty  # the catalog does not know it
    found = comp.conditions(compound="plx-alias-4032", refs=resolver)
    assert sorted(found["condition_id"]) == sorted(expected["condition_id"])
    # a name that resolves to nothing adds nothing
    assert comp.conditions(compound="nothing at all", refs=resolver).empty


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def refuse(*args, **kwargs):
        raise RuntimeError("network access in a test that must stay offline")

    monkeypatch.setattr(socket.socket, "connect", refuse)

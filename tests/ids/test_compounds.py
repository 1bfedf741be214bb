"""Tests of perturbridge.ids.compounds, .compound_index and .pubchem: the compound resolver
and the PubChem client."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from conftest import shared_path
from perturbridge.errors import SchemaError
from perturbridge.ids import compound_index, compounds
from perturbridge.ids.chem import standardize_smiles_many
from perturbridge.ids.compound_index import (
    MATCH_TYPES,
    RESULT_COLUMNS,
    compound_structures,
    detect_kind,
)
from perturbridge.ids.compounds import CompoundResolver
from perturbridge.ids.parsers_packages import SOURCE_FDA
from perturbridge.ids.pubchem import OfflineError, PubChemClient, PubChemError
from perturbridge.ids.store import RefStore

IMATINIB = "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1"
IMATINIB_KEY = "KTUFNOKKBVMGRW-UHFFFAOYSA-N"
ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
ASPIRIN_KEY = "BSYNRYMUTXBXSQ-UHFFFAOYSA-N"
DEX_A = "C[C@@H]1C[C@H]2[C@@H]3CCC4=CC(=O)C=C[C@]4(C)[C@@]3(F)[C@@H](O)C[C@]2(C)[C@@]1(O)C(=O)CO"
DEX_B = "C[C@@H]1C[C@H]2[C@@H]3CCC4=CC(=O)C=C[C@]4(C)[C@]3(F)[C@H](O)C[C@]2(C)[C@]1(O)C(=O)CO"
DEX_ACETATE = (
    "C[C@@H]1C[C@H]2[C@@H]3CCC4=CC(=O)C=C[C@]4(C)[C@@]3(F)[C@@H](O)C[C@]2(C)[C@@]1(O)C(=O)COC(C)=O"
)
MELOXICAM_KETO = "CN1C(C(=O)Nc2ncc(C)s2)C(=O)c2ccccc2S1(=O)=O"
MELOXICAM_ENOL = "CN1C(C(=O)Nc2ncc(C)s2)=C(O)c2ccccc2S1(=O)=O"

# (ref_source, ref_id, name, smiles, inchikey, pubchem_cid, cas)
RECORDS: list[tuple[Any, ...]] = [
    ("lincs", "BRD-K92723993", "imatinib", IMATINIB, IMATINIB_KEY, 5291, None),
    ("hub", "BRD-K92723993-001-05-3", "imatinib", "CS(=O)(=O)O." + IMATINIB, None, 5291, None),
    ("lincs", "BRD-K38775274", "dexamethasone", DEX_A, None, 5743, None),
    ("lincs", "BRD-K45192137", "dexamethasone", DEX_B, None, 5743, None),
    ("hub", "BRD-K38775274-001-24-7", "dexamethasone", DEX_A, None, 5743, "50-02-2"),
    ("lincs", "BRD-K11111111", "aspirin", ASPIRIN, None, 2244, "50-78-2"),
    ("lincs", "BRD-K22222222", "foozumab", "CCCCCCCCN", None, None, None),
    ("hub", "BRD-K33333333-001-01-1", "foozumab", "c1ccccc1CCN", None, None, None),
    ("lincs", "BRD-K44444444", "meloxicam", MELOXICAM_KETO, None, None, None),
    ("hub", "BRD-K44444444-001-01-1", "meloxicam", MELOXICAM_ENOL, None, None, None),
    ("lincs", "BRD-K55555555", "curatol", "CCCCO", None, None, None),
    ("lincs", "BRD-K55555556", "curatol", "CCCCO", None, None, None),
    ("lincs", "BRD-K55555557", "curatol", "CCCCOC(C)=O", None, None, None),
    ("hub", "BRD-K55555555-001-01-1", "curatol", "CCCCO", None, None, None),
    ("drugs", "aspirin", "aspirin", None, None, None, None),
    ("pubchem", "2244", "Acetylsalicylic acid", None, None, 2244, None),
    (
        "lincs",
        "BRD-K66666666",
        "BRD-K66666666",
        "OCCCCCCCCCCO",
        "XXXXXXXXXXXXXX-UHFFFAOYSA-N",
        None,
        None,
    ),
    ("keys", "K1", "keyonly", None, "ZZZZZZZZZZZZZZ-UHFFFAOYSA-N", None, None),
    ("user_compound_synonyms", "user:1", "foozumab", "CCCCCCCCN", None, None, None),
]
SYNONYMS: list[tuple[str, str, str, str]] = [
    ("lincs", "BRD-K92723993", "Gleevec", "alias"),
    ("lincs", "BRD-K92723993", "STI-571", "alias"),
    ("hub", "BRD-K92723993-001-05-3", "Imatinib Mesylate", "vendor_name"),
    ("hub", "BRD-K92723993-001-05-3", "BRD-K92723993-001-05-3", "brd"),
    ("hub", "BRD-K92723993-001-05-3", "BRD-K92723993", "brd"),
    ("lincs", "BRD-K66666666", "decanediol-x", "alias"),
    ("user_compound_synonyms", "user:1", "FZB-1", "user"),
    ("user_compound_synonyms", "user:1", "zumab octyl", "user"),
    ("lincs", "BRD-K22222222", "zumab octyl", "alias"),
    ("hub", "BRD-K33333333-001-01-1", "zumab octyl", "vendor_name"),
]


def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    comp = pd.DataFrame(
        RECORDS,
        columns=["ref_source", "ref_id", "name", "smiles", "inchikey", "pubchem_cid", "cas"],
    ).astype({"pubchem_cid": "Int64"})
    syn = pd.DataFrame(SYNONYMS, columns=["ref_source", "ref_id", "synonym", "kind"])
    return comp, syn


@pytest.fixture(scope="module")
def resolver() -> CompoundResolver:
    comp, syn = tables()
    return CompoundResolver.from_tables(compounds=comp, compound_synonyms=syn)


def one(resolver: CompoundResolver, query: object, **kw: Any) -> dict[str, Any]:
    return resolver.resolve_one(query, **kw)


# kinds ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("imatinib", "name"),
        ("Imatinib Mesylate", "name"),
        ("BRD-K92723993", "brd"),
        ("brd-k92723993-001-05-3", "brd"),
        ("BRD4770", "name"),
        ("BRD K92723993", "brd"),
        ("CC(C)=CC |c:1|", "smiles"),
        ("50-78-2", "cas"),
        ("50-78-3", "name"),  # wrong check digit
        ("2244", "cid"),
        ("CID:2244", "cid"),
        ("cid 2244", "cid"),
        (IMATINIB_KEY, "inchikey"),
        ("InChIKey=" + IMATINIB_KEY, "inchikey"),
        ("InChI=1S/C2H6O/c1-2-3/h3H,2H2,1H3", "inchi"),
        (ASPIRIN, "smiles"),
        ("c1ccccc1", "smiles"),
        ("C1=CC=CC=C1C(=O", "smiles"),  # '=' makes it a (broken) SMILES
        ("(+)-JQ1", "name"),
        ("[sar9,met(o2)11]-substance-p", "name"),
        ("Navitoclax(ABT-263)", "name"),
        ("", "missing"),
        (None, "missing"),
    ],
)
def test_detect_kind(query: object, kind: str) -> None:
    assert detect_kind(query) == kind


# names ---------------------------------------------------------------------------------


def test_result_columns_and_order(resolver: CompoundResolver) -> None:
    out = resolver.resolve(["imatinib", "aspirin", "imatinib"])
    assert list(out.columns) == list(RESULT_COLUMNS)
    assert out["query"].tolist() == ["imatinib", "aspirin", "imatinib"]
    assert str(out["pubchem_cid"].dtype) == "Int64"
    assert out.loc[0].equals(out.loc[2])


def test_series_index_is_kept(resolver: CompoundResolver) -> None:
    queries = pd.Series(["aspirin", "Gleevec"], index=["w1", "w2"])
    out = resolver.resolve(queries)
    assert out.index.tolist() == ["w1", "w2"]
    assert out["connectivity"].tolist() == ["BSYNRYMUTXBXSQ", "KTUFNOKKBVMGRW"]


def test_salt_name_resolves_to_the_parent(resolver: CompoundResolver) -> None:
    r = one(resolver, "Imatinib mesylate")
    assert r["status"] == "resolved"
    assert r["parent_inchikey"] == IMATINIB_KEY
    assert r["match_type"] == "synonym"  # the vendor name of the Repurposing record
    r = one(resolver, "Imatinib (hydrochloride monohydrate)")
    assert (r["status"], r["match_type"], r["parent_inchikey"]) == (
        "resolved",
        "desalted",
        IMATINIB_KEY,
    )
    assert r["confidence"] == MATCH_TYPES["desalted"].confidence


def test_name_variants_and_aliases(resolver: CompoundResolver) -> None:
    out = resolver.resolve(["IMATINIB", " imatinib ", "gleevec", "STI571", "sti-571"])
    assert (out["status"] == "resolved").all()
    assert set(out["parent_inchikey"]) == {IMATINIB_KEY}
    assert out["match_type"].tolist()[:3] == ["synonym", "synonym", "synonym"]
    assert out.loc[3, "match_type"] == "normalized_name"
    assert set(out["name"]) == {"imatinib"}  # the preferred name, not the alias


def test_parenthesized_alternative(resolver: CompoundResolver) -> None:
    r = one(resolver, "Imatinib (STI-571)")
    assert (r["status"], r["match_type"]) == ("resolved", "parenthetical")
    # main name and alternative disagree: not resolved to either
    r = one(resolver, "aspirin (STI-571)")
    assert r["status"] == "ambiguous"
    assert set(r["candidates"]) == {IMATINIB_KEY, ASPIRIN_KEY}


def test_salt_and_stereo_variants_collapse_to_one_parent(resolver: CompoundResolver) -> None:
    # two LINCS ids named dexamethasone with different stereo InChIKeys (the pitfall)
    r = one(resolver, "dexamethasone")
    assert r["status"] == "resolved"
    assert r["connectivity"] == "UREBDLICKHMUKA"
    assert r["n_parents"] == 2
    assert r["n_records"] == 3
    # the most common parent InChIKey is reported (DEX_A: two records)
    dex_a = standardize_smiles_many([DEX_A]).loc[0, "parent_inchikey"]
    assert r["parent_inchikey"] == dex_a
    assert r["pubchem_cid"] == 5743


def test_ambiguous_name_lists_candidates_never_first_hit(resolver: CompoundResolver) -> None:
    r = one(resolver, "FOOZUMAB")
    # the user table says foozumab is the octylamine: user synonyms win
    assert r["status"] == "resolved" and r["ref_source"] == "user_compound_synonyms"
    r = one(resolver, "zumab octyl")
    assert r["status"] == "resolved" and r["ref_source"] == "user_compound_synonyms"
    comp, syn = tables()
    keep = comp["ref_source"] != "user_compound_synonyms"
    plain = CompoundResolver.from_tables(
        compounds=comp[keep], compound_synonyms=syn[syn["ref_source"] != "user_compound_synonyms"]
    )
    r = plain.resolve_one("foozumab")
    assert r["status"] == "ambiguous"
    assert r["parent_inchikey"] is None and r["inchikey"] is None
    assert len(r["candidates"]) == 2 and r["candidate_names"] == ("foozumab", "foozumab")
    assert "several compounds" in r["error"]


def test_tautomers_are_one_compound(resolver: CompoundResolver) -> None:
    r = one(resolver, "meloxicam")
    assert r["status"] == "resolved"
    assert r["n_parents"] == 2


def test_majority_rule(resolver: CompoundResolver) -> None:
    # lincs: 2 x butanol, 1 x butyl acetate (a curation error); hub: butanol only
    r = one(resolver, "curatol")
    assert r["status"] == "resolved"
    assert r["match_type"] == "synonym+majority"
    assert r["parent_smiles"] == "CCCCO"
    assert r["confidence"] < MATCH_TYPES["synonym"].confidence
    assert "majority" in r["error"]
    comp, syn = tables()
    strict = CompoundResolver.from_tables(compounds=comp, compound_synonyms=syn, majority=None)
    assert strict.resolve_one("curatol")["status"] == "ambiguous"
    with pytest.raises(ValueError, match="majority in"):
        CompoundResolver.from_tables(compounds=comp, compound_synonyms=syn, majority=0.3)


def test_a_single_source_never_decides_a_conflict() -> None:
    comp, syn = tables()
    lincs_only = CompoundResolver.from_tables(
        compounds=comp[comp["ref_source"] == "lincs"],
        compound_synonyms=syn[syn["ref_source"] == "lincs"],
    )
    assert lincs_only.resolve_one("curatol")["status"] == "ambiguous"


def test_unknown_name(resolver: CompoundResolver) -> None:
    r = one(resolver, "unobtainium")
    assert (r["status"], r["match_type"], r["confidence"]) == ("unresolved", None, 0.0)


def test_brd_id_as_name_is_not_the_preferred_name(resolver: CompoundResolver) -> None:
    r = one(resolver, "decanediol-x")
    assert r["status"] == "resolved"
    assert r["name"] == "BRD-K66666666"  # nothing better is known
    assert r["ref_id"] == "BRD-K66666666"


# identifiers ---------------------------------------------------------------------------


def test_brd_with_and_without_batch(resolver: CompoundResolver) -> None:
    out = resolver.resolve(
        [
            "BRD-K92723993",
            "BRD-K92723993-001-05-3",
            "BRD-K92723993-003-99-9",
            "brd-k92723993",
            "BRD K92723993 001 05 3",
        ]
    )
    assert (out["status"] == "resolved").all()
    assert set(out["parent_inchikey"]) == {IMATINIB_KEY}
    assert out["match_type"].tolist() == [
        "exact_id",
        "exact_id",
        "brd_prefix",
        "exact_id",
        "exact_id",
    ]
    assert out.loc[1, "ref_id"] == "BRD-K92723993-001-05-3"
    assert out.loc[1, "inchikey"] != IMATINIB_KEY  # that sample is the mesylate salt


def test_cas_and_cid(resolver: CompoundResolver) -> None:
    out = resolver.resolve(["50-78-2", "2244", "CID:2244", "50-02-2", "5291", "99999999"])
    assert out["kind"].tolist() == ["cas", "cid", "cid", "cas", "cid", "cid"]
    assert out["connectivity"].tolist()[:5] == [
        "BSYNRYMUTXBXSQ",
        "BSYNRYMUTXBXSQ",
        "BSYNRYMUTXBXSQ",
        "UREBDLICKHMUKA",
        "KTUFNOKKBVMGRW",
    ]
    assert out["match_type"].tolist()[:2] == ["cas", "pubchem_cid"]
    assert out.loc[5, "status"] == "unresolved"


def test_dexamethasone_cid_shared_by_stereo_variants(resolver: CompoundResolver) -> None:
    r = one(resolver, "5743")
    assert r["status"] == "resolved" and r["n_parents"] == 2


def test_inchikey_inputs(resolver: CompoundResolver) -> None:
    dex_b_key = standardize_smiles_many([DEX_B]).loc[0, "parent_inchikey"]
    mesylate_key = standardize_smiles_many(["CS(=O)(=O)O." + IMATINIB]).loc[0, "inchikey"]
    out = resolver.resolve(
        [
            IMATINIB_KEY,
            "InChIKey=" + mesylate_key,
            dex_b_key,
            "UREBDLICKHMUKA-XXXXXXXXSA-N",
            "QQQQQQQQQQQQQQ-UHFFFAOYSA-N",
            "ZZZZZZZZZZZZZZ-UHFFFAOYSA-N",
        ]
    )
    assert out["match_type"].tolist() == [
        "inchikey",
        "inchikey",
        "inchikey",
        "connectivity",
        "input_inchikey",
        "inchikey",
    ]
    assert out.loc[1, "parent_inchikey"] == IMATINIB_KEY
    assert out.loc[2, "parent_inchikey"] == dex_b_key  # the exact stereo record
    assert out.loc[4, "inchikey"] == "QQQQQQQQQQQQQQ-UHFFFAOYSA-N"
    assert out.loc[4, "parent_inchikey"] is None and "parent unknown" in out.loc[4, "error"]
    assert out.loc[5, "ref_id"] == "K1"  # a record known by its InChIKey only


def test_smiles_and_inchi_inputs(resolver: CompoundResolver) -> None:
    out = resolver.resolve(
        ["CS(O)(=O)=O." + IMATINIB, "InChI=1S/C2H6O/c1-2-3/h3H,2H2,1H3", "c1ccccc1N"]
    )
    assert (out["match_type"] == "structure").all()
    assert out.loc[0, "parent_inchikey"] == IMATINIB_KEY
    assert out.loc[0, "name"] == "imatinib"  # enriched from the reference parent
    assert out.loc[0, "pubchem_cid"] == 5291
    assert out.loc[1, "parent_smiles"] == "CCO"
    assert out.loc[2, "name"] is None  # not in the reference, still resolved


def test_bad_smiles_is_recorded_not_raised(resolver: CompoundResolver) -> None:
    out = resolver.resolve(["C1=CC=CC=C1C(=O", "CC(C)(C)(C)(C)C"], kind="smiles")
    assert (out["status"] == "unresolved").all()
    assert out["error"].str.contains("could not parse").all()


def test_missing_queries(resolver: CompoundResolver) -> None:
    out = resolver.resolve([None, "", np.nan, "  "])
    assert (out["kind"] == "missing").all()
    assert (out["status"] == "unresolved").all()
    assert (out["error"] == "missing query").all()


def test_forced_and_per_query_kinds(resolver: CompoundResolver) -> None:
    # "2244" forced to be a name is not a name
    assert one(resolver, "2244", kind="name")["status"] == "unresolved"
    out = resolver.resolve(["2244", "aspirin"], kind=["cid", "auto"])
    assert out["kind"].tolist() == ["cid", "name"]
    with pytest.raises(ValueError, match="expected kind 'auto' or one of"):
        resolver.resolve(["x"], kind="gene")
    with pytest.raises(ValueError, match="one kind per query"):
        resolver.resolve(["x", "y"], kind=["name"])
    with pytest.raises(ValueError, match="unknown query kinds"):
        resolver.resolve(["x"], kind=["nonsense"])


# construction --------------------------------------------------------------------------


def test_structureless_records_are_linked(resolver: CompoundResolver) -> None:
    rec = resolver.records.set_index(["ref_source", "ref_id"])
    assert rec.loc[("drugs", "aspirin"), "parent_inchikey"] == ASPIRIN_KEY
    assert rec.loc[("drugs", "aspirin"), "structure_from"] == "name"
    assert rec.loc[("pubchem", "2244"), "structure_from"] == "pubchem_cid"
    assert rec.loc[("keys", "K1"), "structure_from"] == "inchikey_only"
    # a synonym of the PubChem record now resolves
    assert one(resolver, "acetylsalicylic acid")["connectivity"] == "BSYNRYMUTXBXSQ"


def test_inchikey_only_record_joins_the_compound_of_its_block() -> None:
    apomorphine = "CN1CCc2cccc-3c2[C@H]1Cc1ccc(O)c(O)c-31"
    key = standardize_smiles_many([apomorphine]).loc[0]
    assert key["tautomer_connectivity"] != key["connectivity"]  # a case where they differ
    comp = pd.DataFrame(
        {
            "ref_source": ["a", "b"],
            "ref_id": ["1", "2"],
            "name": ["apomorphine", "apomorphine"],
            "smiles": [apomorphine, None],
            "inchikey": [None, key["connectivity"] + "-UHFFFAOYSA-N"],  # racemic, no SMILES
            "pubchem_cid": pd.array([None, None], dtype="Int64"),
            "cas": [None, None],
        }
    )
    syn = pd.DataFrame(columns=["ref_source", "ref_id", "synonym", "kind"])
    res = CompoundResolver.from_tables(compounds=comp, compound_synonyms=syn)
    r = res.resolve_one("apomorphine")
    assert r["status"] == "resolved" and r["n_records"] == 2


def test_compound_structures_table_is_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    comp, syn = tables()
    structures = compound_structures(comp)
    assert list(structures.columns) == [
        "smiles",
        "inchikey",
        "canonical_smiles",
        "parent_smiles",
        "parent_inchikey",
        "connectivity",
        "tautomer_connectivity",
        "error",
    ]
    assert structures["smiles"].is_unique
    assert set(structures["smiles"]) == set(comp["smiles"].dropna())

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("standardization should not run when structures are given")

    monkeypatch.setattr(compound_index, "standardize_smiles_many", refuse)
    monkeypatch.setattr(compounds, "standardize_smiles_many", refuse)
    res = CompoundResolver.from_tables(compounds=comp, compound_synonyms=syn, structures=structures)
    assert res.resolve_one("imatinib mesylate")["parent_inchikey"] == IMATINIB_KEY


def test_from_store_uses_its_tables() -> None:
    comp, syn = tables()

    class FakeStore:
        def __init__(self) -> None:
            self.asked: list[str] = []

        def table(self, name: str) -> pd.DataFrame:
            self.asked.append(name)
            if name == "compound_structures":
                raise KeyError("no table 'compound_structures'")
            return {"compounds": comp, "compound_synonyms": syn}[name]

    store = FakeStore()
    res = CompoundResolver.from_store(store)
    assert set(store.asked) == {"compounds", "compound_synonyms", "compound_structures"}
    assert res.resolve_one("gleevec")["status"] == "resolved"
    assert "records" in repr(res)


def test_missing_columns_raise_schema_error() -> None:
    comp, syn = tables()
    with pytest.raises(SchemaError, match=r"compounds table lacks the columns \['smiles'\]"):
        CompoundResolver.from_tables(compounds=comp.drop(columns="smiles"), compound_synonyms=syn)
    with pytest.raises(SchemaError, match="compound_synonyms table lacks"):
        CompoundResolver.from_tables(compounds=comp, compound_synonyms=syn.drop(columns="kind"))
    with pytest.raises(SchemaError, match="compound_structures table lacks"):
        CompoundResolver.from_tables(
            compounds=comp, compound_synonyms=syn, structures=pd.DataFrame({"smiles": ["C"]})
        )


def test_empty_reference() -> None:
    comp, syn = tables()
    res = CompoundResolver.from_tables(compounds=comp.iloc[:0], compound_synonyms=syn.iloc[:0])
    out = res.resolve(["aspirin", ASPIRIN, "2244"])
    assert out["status"].tolist() == ["unresolved", "resolved", "unresolved"]


def test_resolution_is_offline(no_network: None) -> None:
    comp, syn = tables()
    res = CompoundResolver.from_tables(compounds=comp, compound_synonyms=syn)
    out = res.resolve(["imatinib", "50-78-2", "BRD-K92723993", ASPIRIN, "unobtainium"])
    assert out["status"].tolist() == ["resolved"] * 4 + ["unresolved"]
    with pytest.raises(RuntimeError, match="network access blocked"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)


# online PubChem ------------------------------------------------------------------------


class _PubChemHandler(BaseHTTPRequestHandler):
    """Canned PUG REST answers: a list of (status, body) per path, the last one repeats."""

    answers: ClassVar[dict[str, list[tuple[int, dict[str, Any] | None]]]] = {}
    hits: ClassVar[dict[str, int]] = {}

    def do_GET(self) -> None:
        path = self.path
        self.hits[path] = self.hits.get(path, 0) + 1
        queue = self.answers.get(path, [(404, {"Fault": {"Code": "PUGREST.NotFound"}})])
        status, body = queue[0] if len(queue) == 1 else queue.pop(0)
        data = json.dumps(body or {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


PROPS = "property/InChIKey,IsomericSMILES,CanonicalSMILES/JSON"


def _props(cid: int, key: str, smiles: str) -> dict[str, Any]:
    return {
        "PropertyTable": {"Properties": [{"CID": cid, "InChIKey": key, "IsomericSMILES": smiles}]}
    }


@pytest.fixture
def pubchem_server() -> Iterator[str]:
    _PubChemHandler.answers = {
        f"/rest/pug/compound/name/salicin/{PROPS}": [
            (
                200,
                _props(
                    439503,
                    "NGFMICBWJRZIBI-UJPOAAIJSA-N",
                    "OC[C@H]1O[C@@H](Oc2ccccc2CO)[C@H](O)[C@@H](O)[C@@H]1O",
                ),
            )
        ],
        f"/rest/pug/compound/name/flaky%20name/{PROPS}": [
            (503, {"Fault": {"Code": "PUGREST.ServerBusy"}}),
            (200, _props(2244, ASPIRIN_KEY, ASPIRIN)),
        ],
        f"/rest/pug/compound/name/always%20busy/{PROPS}": [(503, None)],
        f"/rest/pug/compound/cid/702/{PROPS}": [
            (200, _props(702, "LFQSCWFLJHTTHZ-UHFFFAOYSA-N", "CCO"))
        ],
        "/rest/pug/compound/name/aspirin/cids/JSON": [(200, {"IdentifierList": {"CID": [2244]}})],
        f"/rest/pug/compound/name/twins/{PROPS}": [
            (
                200,
                {
                    "PropertyTable": {
                        "Properties": [
                            {"CID": 1, "InChIKey": ASPIRIN_KEY, "IsomericSMILES": ASPIRIN},
                            {"CID": 2, "InChIKey": IMATINIB_KEY, "IsomericSMILES": IMATINIB},
                        ]
                    }
                },
            )
        ],
    }
    _PubChemHandler.hits = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PubChemHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/rest/pug"
    finally:
        server.shutdown()
        server.server_close()


def _client(base_url: str, tmp_path: Path, **kw: Any) -> PubChemClient:
    kw = {"retries": 2, "backoff": 0.01, "max_per_second": 1000.0, **kw}
    return PubChemClient(cache_path=tmp_path / "pubchem.sqlite", base_url=base_url, **kw)


def test_pubchem_lookup_and_cache(pubchem_server: str, tmp_path: Path, no_network: None) -> None:
    with _client(pubchem_server, tmp_path) as client:
        hits = client.lookup_name("salicin")
        assert hits == [
            {
                "cid": 439503,
                "inchikey": "NGFMICBWJRZIBI-UJPOAAIJSA-N",
                "smiles": "OC[C@H]1O[C@@H](Oc2ccccc2CO)[C@H](O)[C@@H](O)[C@@H]1O",
            }
        ]
        assert client.lookup_name("salicin") == hits  # from the cache
        assert client.lookup_name("no such compound") == []  # 404: not found
        assert client.lookup_name("no such compound") == []
        assert client.lookup_cid(702)[0]["smiles"] == "CCO"
        assert client.cids_for_name("aspirin") == [2244]
        assert client.n_requests == 4
    assert _PubChemHandler.hits[f"/rest/pug/compound/name/salicin/{PROPS}"] == 1
    # a new client on the same cache file asks nothing
    with _client(pubchem_server, tmp_path, offline=True) as again:
        assert again.lookup_name("salicin") == hits
        assert again.lookup_name("no such compound") == []
        assert again.n_requests == 0
        with pytest.raises(OfflineError, match="not cached and the client is offline"):
            again.lookup_name("never asked")


def test_pubchem_retries_after_503(pubchem_server: str, tmp_path: Path) -> None:
    with _client(pubchem_server, tmp_path) as client:
        assert client.lookup_name("flaky name")[0]["cid"] == 2244
        assert client.n_requests == 2
        with pytest.raises(PubChemError, match="kept answering 503"):
            client.lookup_name("always busy")
    assert _PubChemHandler.hits[f"/rest/pug/compound/name/always%20busy/{PROPS}"] == 3


def test_pubchem_unreachable_raises_offline_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with (
        _client(f"http://127.0.0.1:{port}/rest/pug", tmp_path, retries=1) as client,
        pytest.raises(OfflineError, match="cannot reach PubChem"),
    ):
        client.lookup_name("aspirin")


def test_pubchem_client_arguments() -> None:
    with pytest.raises(ValueError, match="max_per_second > 0"):
        PubChemClient(max_per_second=0)
    with pytest.raises(ValueError, match="retries >= 0"):
        PubChemClient(retries=-1)


def test_resolver_uses_pubchem_only_when_asked(
    resolver: CompoundResolver, pubchem_server: str, tmp_path: Path, no_network: None
) -> None:
    queries = ["imatinib", "salicin", "twins", "702", "unknown thing"]
    offline = resolver.resolve(queries)
    assert offline["status"].tolist() == ["resolved"] + ["unresolved"] * 4
    assert _PubChemHandler.hits == {}
    with _client(pubchem_server, tmp_path) as client:
        out = resolver.resolve(queries, online=client)
    assert out["status"].tolist() == [
        "resolved",
        "resolved",
        "ambiguous",
        "resolved",
        "unresolved",
    ]
    assert out.loc[0, "match_type"] == "synonym"  # the reference answered first
    salicin = out.loc[1]
    assert salicin["match_type"] == "pubchem_online"
    assert salicin["pubchem_cid"] == 439503
    assert salicin["parent_inchikey"] == "NGFMICBWJRZIBI-UJPOAAIJSA-N"
    assert salicin["ref_source"] == "pubchem_online"
    assert out.loc[3, "parent_smiles"] == "CCO"
    assert set(out.loc[2, "candidates"]) == {ASPIRIN_KEY, IMATINIB_KEY}


# real data -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_resolver(shared_compound_store: RefStore) -> CompoundResolver:
    """The LINCS (compoundinfo, pertinfo) and Repurposing Hub tables, with the structures
    the session's store standardized (conftest.py), without the FDA names."""
    st = shared_compound_store
    comp, syn = st.table("compounds"), st.table("compound_synonyms")
    return CompoundResolver.from_tables(
        compounds=comp[(comp["ref_source"] != SOURCE_FDA).to_numpy()],
        compound_synonyms=syn[(syn["ref_source"] != SOURCE_FDA).to_numpy()],
        structures=st.table("compound_structures"),
        name_keys=st.table("compound_name_keys"),
    )


@pytest.mark.shared_data
@pytest.mark.slow
def test_sciplex_names_agree_with_their_smiles(real_resolver: CompoundResolver) -> None:
    table = pd.read_csv(shared_path("sciplex_trapnell", "Supplementary_Table_3.txt"), sep="\t")
    drugs = table[["name", "SMILES"]].dropna().drop_duplicates("name").reset_index(drop=True)
    assert len(drugs) == 188
    out = real_resolver.resolve(drugs["name"], kind="name")
    truth = standardize_smiles_many(drugs["SMILES"])
    resolved = out["status"] == "resolved"
    has_truth = truth["connectivity"].notna()
    agree = (out["connectivity"] == truth["connectivity"])[resolved & has_truth]
    taut_of_parent = real_resolver.records.drop_duplicates("parent_inchikey").set_index(
        "parent_inchikey"
    )["tautomer_connectivity"]
    agree_taut = (out["parent_inchikey"].map(taut_of_parent) == truth["tautomer_connectivity"])[
        resolved & has_truth
    ]
    print(
        f"\nsci-Plex: {int(resolved.sum())}/{len(out)} resolved ({resolved.mean():.1%}); "
        f"{int(agree.sum())}/{len(agree)} agree with the file's SMILES on the parent "
        f"connectivity block ({agree.mean():.1%}; {agree_taut.mean():.1%} up to tautomers); "
        f"{int((resolved & ~has_truth).sum())} resolved without a readable SMILES in the file"
    )
    print(out["status"].value_counts().to_dict(), out["match_type"].value_counts().to_dict())
    print(out.loc[~resolved, ["query", "status", "candidate_names"]].to_string())
    assert resolved.mean() >= 0.90
    assert agree.mean() >= 0.95


@pytest.mark.shared_data
@pytest.mark.slow
def test_tahoe_names(real_resolver: CompoundResolver) -> None:
    names = shared_path("tahoe100m", "tahoe_drug_names_sigspace.txt").read_text().splitlines()
    names = [n for n in names if n.strip()]
    assert len(names) == 379
    out = real_resolver.resolve(names, kind="name")
    resolved = out["status"] == "resolved"
    ambiguous = out[out["status"] == "ambiguous"]
    print(
        f"\nTahoe: {int(resolved.sum())}/{len(out)} resolved ({resolved.mean():.1%}), "
        f"{len(ambiguous)} ambiguous, {int((out['status'] == 'unresolved').sum())} unresolved"
    )
    print(out["match_type"].value_counts().to_dict())
    print(ambiguous[["query", "candidates", "candidate_names"]].to_string())
    assert resolved.mean() >= 0.85
    # one structure per resolved name, never a list of candidates
    ok = out[resolved]
    assert ok["connectivity"].notna().all() and ok["candidates"].isna().all()
    assert ambiguous["connectivity"].isna().all()
    # a salt spelling resolved by removing its salt words gets the structure of the bare
    # name (Tahoe lists both "Tofacitinib" and "Tofacitinib (citrate)"); names found as
    # given may differ (ixazomib citrate is a boronic ester, not a salt of ixazomib)
    from perturbridge.ids.names import name_keys

    def base(name: str) -> str:
        return next(k.key for k in name_keys(name) if k.tier == 3 and not k.alternative)

    ok = ok.assign(base=ok["query"].map(base))
    as_given = ok["match_type"].str.match(r"^(synonym|normalized_name)")
    bare = ok[as_given].drop_duplicates("base").set_index("base")["connectivity"]
    stripped = ok[~as_given & ok["base"].isin(bare.index)]
    assert len(stripped) > 5
    assert (stripped["connectivity"].to_numpy() == bare[stripped["base"]].to_numpy()).all()

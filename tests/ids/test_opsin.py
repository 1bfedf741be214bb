"""OPSIN for systematic names: detection, the subprocess protocol, its use by the resolver.

OPSIN itself (Debian ``libopsin-java``) is not installed here: the protocol is tested
with a stand-in ``java`` that answers like ``java -jar opsin.jar -osmi`` (one SMILES
line per name, an empty line for a name it cannot parse); the real tool is tested when
present.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from perturbridge.ids import compound_fallbacks as fallbacks_mod
from perturbridge.ids.compounds import CompoundResolver
from perturbridge.ids.opsin import looks_systematic, opsin_smiles, opsin_status

DCA = "OC(=O)C(Cl)Cl"  # dichloroacetic acid, typed by hand
DCA_CONN = "JXTHNDFMNIQAHM"  # its InChIKey connectivity block (PubChem CID 6597)

FAKE_JAVA = """#!/bin/sh
while IFS= read -r line; do
  case "$line" in
    "Acetic acid, 2,2-dichloro-"|"2,2-dichloroacetic acid") echo 'OC(=O)C(Cl)Cl' ;;
    *) echo '' ;;
  esac
done
"""


@pytest.fixture
def fake_opsin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    java = bin_dir / "java"
    java.write_text(FAKE_JAVA)
    java.chmod(java.stat().st_mode | stat.S_IXUSR)
    jar = tmp_path / "share" / "opsin-2.8.0.jar"
    jar.parent.mkdir()
    jar.write_bytes(b"")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(fallbacks_mod, "opsin_status", lambda: (jar, ""))
    return jar


def test_status_says_why_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jar, why = opsin_status(str(tmp_path / "opsin*.jar"))
    assert jar is None and "OPSIN is not installed" in why and "libopsin-java" in why
    (tmp_path / "opsin-2.8.0.jar").write_bytes(b"")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    jar, why = opsin_status(str(tmp_path / "opsin*.jar"))
    assert jar is None and "no java is on PATH" in why


@pytest.mark.parametrize(
    ("name", "systematic"),
    [
        ("Acetic acid, 2,2-dichloro-", True),
        ("N-{3-Chloro-4-[(3-fluorobenzyl)oxy]phenyl}-6-furan", True),
        ("imatinib", False),
        ("ABT-888", False),
    ],
)
def test_looks_systematic(name: str, systematic: bool) -> None:
    assert looks_systematic(name) is systematic


def test_opsin_protocol(fake_opsin: Path) -> None:
    assert opsin_smiles(["2,2-dichloroacetic acid", "gibberish"], jar=fake_opsin) == [DCA, None]
    assert opsin_smiles([], jar=fake_opsin) == []


def test_resolver_asks_opsin_only_about_unresolved_systematic_names(
    fake_opsin: Path, no_network
) -> None:
    compounds = pd.DataFrame(
        {
            "ref_source": ["t"],
            "ref_id": ["T-1"],
            "name": ["aspirin"],
            "smiles": ["CC(=O)Oc1ccccc1C(=O)O"],
            "inchikey": [None],
            "pubchem_cid": pd.array([None], dtype="Int64"),
            "cas": [None],
        }
    )
    syn = pd.DataFrame(columns=["ref_source", "ref_id", "synonym", "kind"])
    res = CompoundResolver.from_tables(compounds=compounds, compound_synonyms=syn)
    out = res.resolve(["Acetic acid, 2,2-dichloro-", "aspirin", "1,2-nonsense-ol"], kind="name")
    assert out["status"].tolist() == ["resolved", "resolved", "unresolved"]
    assert out["match_type"].tolist()[:2] == ["opsin", "synonym"]
    assert out["connectivity"].iloc[0] == DCA_CONN
    assert out["confidence"].iloc[0] == 0.8


def test_real_opsin_when_installed() -> None:
    jar, why = opsin_status()
    if jar is None:
        pytest.skip(why)
    assert opsin_smiles(["2,2-dichloroacetic acid"], jar=jar)[0] is not None

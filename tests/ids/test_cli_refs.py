"""``perturbridge refs build | fetch | info | resolve``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import shared_path
from perturbridge.cli import app

from ._fixtures import DEPMAP_CSV, hgnc_text, source_dir, write
from .test_fetch import serve

runner = CliRunner(env={"COLUMNS": "200"})  # no wrapping inside long temporary paths
#: the package sources are read in their own tests (tests/ids/test_parsers_packages.py)
NO_PKG = ("--packages", "none")


@pytest.fixture(scope="module")
def refs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    out = root / "refs"
    r = runner.invoke(
        app, ["refs", "build", "--from", str(source_dir(root)), "--out", str(out), *NO_PKG]
    )
    assert r.exit_code == 0, r.output
    return out


@pytest.mark.parametrize("cmd", ["build", "fetch", "info", "resolve"])
def test_every_refs_command_has_help_with_an_example(cmd):
    r = runner.invoke(app, ["refs", cmd, "--help"])
    assert r.exit_code == 0
    assert "Example" in r.output
    assert "perturbridge refs" in r.output


def test_build_prints_inputs_and_tables(tmp_path: Path, no_network):
    out = tmp_path / "refs"
    r = runner.invoke(
        app, ["refs", "build", "--from", str(source_dir(tmp_path)), "--out", str(out), *NO_PKG]
    )
    assert r.exit_code == 0, r.output
    assert "cellosaurus" in r.output
    assert "README.txt" in r.output  # unmatched files are shown, not hidden
    assert f"wrote {out}" in r.output
    assert (out / "manifest.json").is_file()


def test_build_replaces_a_store_only_with_force(tmp_path: Path, no_network):
    src, out = source_dir(tmp_path), tmp_path / "refs"
    args = ["refs", "build", "--from", str(src), "--out", str(out), *NO_PKG]
    assert runner.invoke(app, args).exit_code == 0
    before = (out / "manifest.json").read_text()
    r = runner.invoke(app, args)
    assert r.exit_code == 2
    assert "is a reference store" in " ".join(r.output.split())
    assert (out / "manifest.json").read_text() == before
    r = runner.invoke(app, [*args, "--force"])
    assert r.exit_code == 0, r.output


def test_build_refuses_a_foreign_folder(tmp_path: Path):
    busy = tmp_path / "busy"
    write(busy / "keep.txt", "x")
    r = runner.invoke(
        app, ["refs", "build", "--from", str(source_dir(tmp_path)), "--out", str(busy), *NO_PKG]
    )
    assert r.exit_code == 2
    assert "refusing to overwrite" in r.output


def test_info(refs: Path):
    r = runner.invoke(app, ["refs", "info", str(refs)])
    assert r.exit_code == 0, r.output
    assert "format 1" in r.output
    assert "gene_synonyms" in r.output
    assert "link_lincs_cells" in r.output
    r = runner.invoke(app, ["refs", "info", str(refs.parent)])
    assert r.exit_code == 2
    assert "not a reference store" in r.output


def test_info_says_when_the_compound_lookup_must_be_rebuilt(tmp_path: Path, refs: Path):
    import json
    import shutil

    r = runner.invoke(app, ["refs", "info", str(refs)])
    assert "compound lookup" not in r.output
    old = tmp_path / "old"
    shutil.copytree(refs, old)
    manifest = json.loads((old / "manifest.json").read_text())
    # a store built before the lookup was saved: compound structures, no lookup
    manifest["derived"] = [
        *(d for d in manifest.get("derived", []) if d["step"] != "compound_lookup"),
        {"step": "compound_structures", "status": "done", "rows": 1},
    ]
    (old / "manifest.json").write_text(json.dumps(manifest))
    r = runner.invoke(app, ["refs", "info", str(old)])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "no saved compound lookup" in text and "refs build --force" in text


def test_info_says_when_the_cell_and_gene_lookups_must_be_rebuilt(tmp_path: Path, refs: Path):
    import json
    import shutil

    r = runner.invoke(app, ["refs", "info", str(refs)])
    assert "resolvers build it" not in r.output
    old = tmp_path / "old"
    shutil.copytree(refs, old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["derived"] = [d for d in manifest["derived"] if d["step"] != "cell_lookup"]
    for d in manifest["derived"]:
        if d["step"] == "gene_lookup":
            d["version"] = 0
    (old / "manifest.json").write_text(json.dumps(manifest))
    r = runner.invoke(app, ["refs", "info", str(old)])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "no saved cell_lookup (built before it existed): cell resolvers build it" in text
    assert "gene_lookup was made with {'version': 0}, not {'version': 1}: gene resolvers" in text


def test_resolve_genes_from_a_plain_list(tmp_path: Path, refs: Path):
    genes = write(tmp_path / "genes.txt", "TP53\nSEPT7\n2024-09-07 00:00:00\nDDD4\nnope\n\n")
    out = tmp_path / "genes.tsv"
    r = runner.invoke(
        app,
        ["refs", "resolve", "--kind", "gene", "--refs", str(refs), str(genes), "--out", str(out)],
    )
    assert r.exit_code == 0, r.output
    assert "coverage: 3 of 5 mapped (60.0%)" in r.output
    assert "3 to an Ensembl id" in r.output
    res = pd.read_csv(out, sep="\t", keep_default_na=False)
    assert res["input"].tolist() == ["TP53", "SEPT7", "2024-09-07 00:00:00", "DDD4", "nope"]
    assert res["symbol"].tolist()[:3] == ["TP53", "SEPTIN7", "SEPTIN7"]
    assert res["match_type"].tolist()[:3] == ["symbol", "prev", "prev"]


def test_resolve_cells_from_a_table_column(tmp_path: Path, refs: Path):
    table = write(
        tmp_path / "meta.csv", "well,cell\nA1,A549_LUNG\nA2,NCI-H460\nA3,HepG2/C3A\nA4,PBMC\n"
    )
    out = tmp_path / "cells.tsv"
    args = ["refs", "resolve", "--kind", "cell", "--refs", str(refs), str(table)]
    r = runner.invoke(app, [*args, "--column", "cell", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "coverage: 4 of 4 mapped (100.0%)" in r.output
    res = pd.read_csv(out, sep="\t")
    assert res["accession"].tolist() == ["CVCL_0023", "CVCL_0459", "CVCL_1098", "CL:2000001"]
    r = runner.invoke(app, [*args, "--column", "cell_line", "--out", str(out)])
    assert r.exit_code == 2
    assert "no column 'cell_line'" in r.output


@pytest.mark.shared_data
def test_resolve_compounds(tmp_path: Path):
    real = shared_path("reference_compounds_repurposing_hub", "repurposing_samples_20200324.txt")
    head = real.read_text(encoding="utf-8").splitlines()[:12]  # apomorphine … rolipram
    write(tmp_path / "src" / real.name, "\n".join(head) + "\n")
    refs = tmp_path / "refs"
    r = runner.invoke(
        app, ["refs", "build", "--from", str(tmp_path / "src"), "--out", str(refs), *NO_PKG]
    )
    assert r.exit_code == 0, r.output
    names = write(tmp_path / "names.txt", "(R)-baclofen\nno such compound\n")
    out = tmp_path / "c.tsv"
    r = runner.invoke(
        app,
        [
            "refs",
            "resolve",
            "--kind",
            "compound",
            "--refs",
            str(refs),
            str(names),
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "coverage: 1 of 2 mapped (50.0%)" in r.output
    res = pd.read_csv(out, sep="\t")
    assert res["input"].tolist() == ["(R)-baclofen", "no such compound"]


def test_resolve_compounds_without_compound_tables(tmp_path: Path, refs: Path):
    names = write(tmp_path / "names.txt", "aspirin\n")
    r = runner.invoke(
        app,
        ["refs", "resolve", "--kind", "compound", "--refs", str(refs), str(names), "--out",
         str(tmp_path / "c.tsv")],
    )  # fmt: skip
    assert r.exit_code == 2
    assert "has no table 'compounds'" in " ".join(r.output.split())


def test_fetch_against_a_local_server_then_build(tmp_path: Path, no_network):
    mirror = tmp_path / "mirror"
    write(mirror / "sample_info.csv", DEPMAP_CSV)
    write(mirror / "hgnc" / "hgnc_complete_set.txt.gz", hgnc_text())
    up = tmp_path / "up"
    with serve(mirror) as base:
        r = runner.invoke(
            app,
            [
                "refs",
                "fetch",
                "--out",
                str(up),
                "--only",
                "depmap_sample_info",
                "--only",
                "hgnc_complete_set",
                "--base-url",
                base,
                "--url",
                f"hgnc_complete_set={base}/hgnc/hgnc_complete_set.txt.gz",
            ],
        )
    assert r.exit_code == 0, r.output
    assert "downloaded" in r.output
    assert sorted(p.name for p in up.iterdir()) == [
        "fetch_manifest.json",
        "hgnc_complete_set.txt.gz",
        "sample_info.csv",
    ]
    r = runner.invoke(
        app, ["refs", "build", "--from", str(up), "--out", str(tmp_path / "refs"), *NO_PKG]
    )
    assert r.exit_code == 0, r.output


def test_fetch_dry_run_and_errors(tmp_path: Path, no_network):
    r = runner.invoke(app, ["refs", "fetch", "--out", str(tmp_path), "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "hgnc_complete_set" in r.output
    assert not list(tmp_path.iterdir())
    r = runner.invoke(app, ["refs", "fetch", "--out", str(tmp_path), "--url", "oops"])
    assert r.exit_code == 2
    assert "--url expects NAME=URL" in r.output
    r = runner.invoke(app, ["refs", "fetch", "--out", str(tmp_path), "--only", "nope"])
    assert r.exit_code == 2
    assert "unknown reference file" in r.output
    with serve(tmp_path) as base:
        r = runner.invoke(
            app,
            ["refs", "fetch", "--out", str(tmp_path / "up"), "--only", "cellosaurus",
             "--base-url", base, "--retries", "0"],
        )  # fmt: skip
    assert r.exit_code == 2
    assert "HTTP 404" in r.output


def test_build_with_named_package_sources(tmp_path: Path, no_network, monkeypatch):
    from perturbridge.ids import store as store_mod

    seen: list[object] = []

    def installed(names=None):
        seen.append(names)
        return [], {}

    monkeypatch.setattr(store_mod, "installed_package_sources", installed)
    src = source_dir(tmp_path)
    args = ["refs", "build", "--from", str(src), "--out", str(tmp_path / "a")]
    r = runner.invoke(app, [*args, "--packages", "cellosaurus_cxg, cell_ontology_cxg"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["refs", "build", "--from", str(src), "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    assert seen == [["cellosaurus_cxg", "cell_ontology_cxg"], None]  # None: auto-detect
    r = runner.invoke(app, [*args[:-1], str(tmp_path / "c"), "--packages", "nope"])
    assert r.exit_code != 0
    assert "unknown package sources ['nope']" in " ".join(r.output.split())

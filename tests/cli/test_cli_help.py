"""Start-up: ``perturbridge --help`` and every command's help import no heavy library.

Each check runs the help of every command, subcommand and ``ingest <adapter>`` in one
child process and records, after each, which heavy modules and which adapter modules
``sys.modules`` holds, so that the first command to import one is named. (An
import-based check: timings are in ``benchmarks/startup.py``.)
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from perturbridge.cli import app
from perturbridge.sources import ADAPTERS

#: What no ``--help`` may import (a compute library, the store's engine, the models).
HEAVY = (
    "anndata",
    "dask",
    "duckdb",
    "h5py",
    "matplotlib",
    "numpy",
    "pandas",
    "pyarrow",
    "rdkit",
    "scipy",
    "torch",
    "zarr",
)
_PROBE = """
import json, sys
import typer
from perturbridge.cli import app
from perturbridge.sources import ADAPTERS

heavy = json.loads(sys.argv[1])


def walk(group, ctx, path):
    for name in group.list_commands(ctx):
        yield (*path, name)
        cmd = group.get_command(ctx, name)
        if hasattr(cmd, "list_commands"):
            sub = typer.Context(cmd, info_name=name, parent=ctx)
            yield from walk(cmd, sub, (*path, name))


root = typer.main.get_command(app)
loaded = {}
for path in [(), *walk(root, typer.Context(root), ())]:
    try:
        root.main([*path, "--help"], prog_name="perturbridge")
    except SystemExit as exit:
        if exit.code:
            loaded[" ".join(path)] = ["exit code %s" % exit.code]
            continue
    loaded[" ".join(path) or "(top)"] = [m for m in heavy if m in sys.modules]
    adapters = [n for n, d in ADAPTERS.items() if "perturbridge.sources" + d.module in sys.modules]
    loaded["adapters after " + (" ".join(path) or "(top)")] = adapters
print("RESULT" + json.dumps(loaded))
"""


def _probe() -> dict[str, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out.rpartition("RESULT")[2]))


@pytest.fixture(scope="module")
def loaded() -> dict[str, list[str]]:
    return _probe()


def test_every_help_is_checked(loaded: dict[str, list[str]]) -> None:
    expected = {"(top)", "ingest", "refs", "sources", "build", "query", "effects", "de"}
    expected |= {f"ingest {name}" for name in ADAPTERS} | {"refs build", "sources list"}
    assert expected <= set(loaded), sorted(expected - set(loaded))


def test_no_help_imports_a_heavy_library(loaded: dict[str, list[str]]) -> None:
    """In run order: the first command listed is the one that imported the library."""
    wrong = {c: mods for c, mods in loaded.items() if mods and not c.startswith("adapters ")}
    assert not wrong, f"--help imported heavy modules: {wrong}"


def test_ingest_help_lists_each_adapter_by_its_declaration() -> None:
    r = CliRunner().invoke(app, ["ingest", "--help"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.replace("│", " ").split())  # the help's lines unwrapped
    for name, declared in ADAPTERS.items():
        if name == "l1000":  # its own command, with its own help
            continue
        summary = f"Ingest {declared.description} ({declared.assay}) into Samples."
        assert f" {name} {summary}" in text, (name, summary)


def test_an_adapter_help_shows_its_declaration() -> None:
    r = CliRunner().invoke(app, ["ingest", "drugseq_moabox", "--help"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.replace("│", " ").split())
    assert "Expected files: DRUGseq_U2OS_MoABox_plate_wells_metadata_public.txt," in text
    assert "counts (required): Count table(s)." in text
    assert "chunk_size (default 256): Genes read per chunk." in text
    assert "perturbridge ingest drugseq_moabox --input metadata=FILE --out samples.h5ad" in text


def test_no_help_imports_an_adapter(loaded: dict[str, list[str]]) -> None:
    """The help of ``ingest <name>`` is made from the adapter's declaration: no help
    imports an adapter's module."""
    after = {
        k.removeprefix("adapters after "): v for k, v in loaded.items() if k.startswith("adapters ")
    }
    assert {f"ingest {n}" for n in ADAPTERS} <= set(after)
    assert {cmd: v for cmd, v in after.items() if v} == {}


def test_an_adapter_loads_when_its_command_runs(tmp_path) -> None:
    """The command of ``ingest <name>`` imports the adapter when it runs (here it fails
    on a missing input, as the adapter reports it)."""
    r = CliRunner().invoke(
        app,
        [
            *("ingest", "vcpi", "-i", f"metadata={tmp_path / 'm.csv'}", "-i", "counts=c.csv"),
            *("--out", str(tmp_path / "s.h5ad")),
        ],
    )
    assert r.exit_code != 0
    assert "VCPI metadata table" in r.output and "m.csv" in r.output, r.output


def test_an_unknown_adapter_is_an_error_naming_the_known_ones() -> None:
    from perturbridge.sources import get_source

    with pytest.raises(KeyError, match=r"unknown source 'nope'; known: .*'vcpi'"):
        get_source("nope")
    r = CliRunner().invoke(app, ["ingest", "nope", "--help"])
    assert r.exit_code == 2 and "No such command 'nope'" in r.output, r.output


def test_a_declared_module_that_registers_nothing_is_an_error(monkeypatch) -> None:
    from perturbridge.sources import SourceDeclaration, _base

    ghost = SourceDeclaration(
        "_tables", assay="-", value_kind="counts", description="-", expected_files=()
    )
    monkeypatch.setattr(_base, "ADAPTERS", {"_tables": ghost})
    with pytest.raises(RuntimeError, match=r"module \._tables does not register source '_tables'"):
        _base.get_source("_tables")

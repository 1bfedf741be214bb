"""The adapters' declarations (``sources._declarations``) against the adapters.

The help of ``perturbridge ingest <name>`` and ``perturbridge sources list`` are made
from the declarations alone; these tests fail when a declaration and its adapter
diverge: a module that registers another name, a parameter its reader does not take, a
default the reader does not have, an attribute the class declares again.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

from perturbridge.sources import (
    ADAPTERS,
    CliParameter,
    SourceAdapter,
    _base,
    get_source,
    list_sources,
    register_source,
)


def _reader_defaults(adapter: SourceAdapter) -> dict[str, Any]:
    """The reader's parameters and defaults, an options object's fields in its place."""
    defaults: dict[str, Any] = {}
    for prm in inspect.signature(adapter.reader()).parameters.values():
        group = adapter.option_groups.get(prm.name)
        if group is None:
            defaults[prm.name] = prm.default
        else:
            defaults.update({f.name: f.default for f in dataclasses.fields(group)})
    return defaults


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_each_declared_adapter_registers_its_declaration(name: str) -> None:
    declared = ADAPTERS[name]
    adapter = get_source(name)
    assert type(adapter).__module__.startswith("perturbridge.sources" + declared.module)
    for attr in ("name", "assay", "value_kind", "description", "expected_files"):
        assert getattr(adapter, attr) == getattr(declared, attr), attr
    assert adapter.cli_parameters is declared.cli_parameters


@pytest.mark.parametrize("name", [n for n in ADAPTERS if n != "l1000"])
def test_declared_parameters_are_the_readers_with_its_defaults(name: str) -> None:
    """``ingest <name>`` takes what the adapter declares; each declared parameter is one
    of the reader's, required when the reader has no default, else with its default."""
    adapter = get_source(name)
    defaults = _reader_defaults(adapter)
    assert ADAPTERS[name].cli_parameters, name
    for p in ADAPTERS[name].cli_parameters:
        assert p.name in defaults, (name, p.name, sorted(defaults))
        default = defaults[p.name]
        assert p.required == (default is inspect.Parameter.empty), (name, p.name)
        assert p.required or p.default == default, (name, p.name, p.default, default)


def test_l1000_is_declared_without_parameters() -> None:
    """``ingest l1000`` is a command of its own, with named options."""
    assert ADAPTERS["l1000"].cli_parameters == ()


def test_cigs_declares_the_files_of_its_subsets() -> None:
    from perturbridge.sources.cigs import COMPOUND_TABLE, SUBSETS

    files = " ".join(ADAPTERS["cigs"].expected_files)
    for s in SUBSETS:
        assert s.counts_file in files and s.metadata_file in files, s.key
    assert COMPOUND_TABLE in files


def test_listing_comes_from_the_declarations() -> None:
    listing = list_sources().set_index("name")
    assert list(ADAPTERS) == listing.index.tolist()[: len(ADAPTERS)]
    for name, d in ADAPTERS.items():
        assert listing.loc[name, "assay"] == d.assay
        assert listing.loc[name, "expected_files"] == ", ".join(d.expected_files)


def test_a_declared_adapter_is_registered_by_name_only() -> None:
    with pytest.raises(TypeError, match=r"source 'vcpi' is declared in .*by name only"):
        register_source(name="vcpi", assay="DRUG-seq", value_kind="counts")


def test_a_declared_adapter_may_not_declare_again(monkeypatch) -> None:
    monkeypatch.setattr(_base, "_REGISTRY", {})

    class Again(SourceAdapter):
        description = "another description"

    with pytest.raises(TypeError, match=r"\['description'\] are declared in .*not on .*Again"):
        register_source(name="vcpi")(Again)


def test_an_undeclared_adapter_gives_its_assay_and_value_kind() -> None:
    with pytest.raises(TypeError, match="source 'mine': give assay= and value_kind="):
        register_source(name="mine", assay="bulk")


def test_cli_parameter_converts_by_its_type() -> None:
    assert CliParameter("n", int).convert("12") == 12
    assert CliParameter("x", float).convert("0.5") == 0.5
    assert CliParameter("p", Path).convert("a/b.h5ad") == Path("a/b.h5ad")
    assert CliParameter("b", bool).convert("yes") is True
    assert CliParameter("f", Path, multiple=True).convert("a.tsv, b.tsv,") == ("a.tsv", "b.tsv")
    with pytest.raises(ValueError, match="n must be a whole number, got 'x'"):
        CliParameter("n", int).convert("x")
    with pytest.raises(ValueError, match="x must be a number, got 'a'"):
        CliParameter("x", float).convert("a")
    with pytest.raises(ValueError, match="b must be true or false, got 'maybe'"):
        CliParameter("b", bool).convert("maybe")

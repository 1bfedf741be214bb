"""The public signature conventions (scanpy-style), checked on every public function.

A public function is one named in the ``__all__`` of ``perturbridge`` or of one of its
packages. Each takes its data first, at most three positional parameters and the rest
keyword-only, annotates every parameter and its return, and uses the standard names
(docs/architecture.md, docs/glossary.md).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

import perturbridge

MAX_POSITIONAL = 3
# a synonym → the standard name to use instead
SYNONYMS = {
    "block_rows": "chunk_size",
    "n_workers": "n_jobs",
    "workers": "n_jobs",
    "n_threads": "n_jobs",
    "random_state": "seed",
}
POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _packages() -> Iterator[ModuleType]:
    yield perturbridge
    for info in pkgutil.walk_packages(perturbridge.__path__, prefix="perturbridge."):
        if info.ispkg and not info.name.rpartition(".")[2].startswith("_"):
            yield importlib.import_module(info.name)


def _public_functions() -> dict[str, Callable[..., Any]]:
    """``package.name`` → function, each function once (under the first package naming it)."""
    out: dict[str, Callable[..., Any]] = {}
    seen: set[int] = set()
    for package in _packages():
        for name in getattr(package, "__all__", ()):
            obj = getattr(package, name, None)
            if inspect.isfunction(obj) and id(obj) not in seen:
                seen.add(id(obj))
                out[f"{package.__name__}.{name}"] = obj
    return out


@pytest.fixture(scope="module")
def functions() -> dict[str, Callable[..., Any]]:
    return _public_functions()


def test_there_are_public_functions(functions: dict[str, Callable[..., Any]]) -> None:
    assert len(functions) > 10, sorted(functions)


def _check(
    functions: dict[str, Callable[..., Any]], rule: Callable[[inspect.Signature], list[str]]
) -> list[str]:
    wrong = []
    for where, function in sorted(functions.items()):
        for problem in rule(inspect.signature(function)):
            wrong.append(f"{where}: {problem}")
    return wrong


def _positional(sig: inspect.Signature) -> list[str]:
    names = [p.name for p in sig.parameters.values() if p.kind in POSITIONAL]
    if len(names) <= MAX_POSITIONAL:
        return []
    return [f"{len(names)} positional parameters {names} (make those after the 3rd keyword-only)"]


def _names(sig: inspect.Signature) -> list[str]:
    return [
        f"parameter {name!r} (the standard name is {SYNONYMS[name]!r})"
        for name in sig.parameters
        if name in SYNONYMS
    ]


def _annotations(sig: inspect.Signature) -> list[str]:
    out = [
        f"parameter {p.name!r} has no annotation"
        for p in sig.parameters.values()
        if p.annotation is inspect.Parameter.empty
    ]
    if sig.return_annotation is inspect.Signature.empty:
        out.append("no return annotation")
    return out


@pytest.mark.parametrize(
    "rule",
    [_positional, _names, _annotations],
    ids=["at_most_3_positional", "standard_names", "fully_typed"],
)
def test_public_signatures(
    functions: dict[str, Callable[..., Any]], rule: Callable[[inspect.Signature], list[str]]
) -> None:
    wrong = _check(functions, rule)
    assert not wrong, "public functions against the signature conventions:\n" + "\n".join(wrong)


def test_the_rules_catch_what_they_should() -> None:
    def bad(a, b, c, d, block_rows=1):
        return a

    def good(data: int, /, other: int = 0, *, chunk_size: int = 1) -> int:
        return data

    sig_bad, sig_good = inspect.signature(bad), inspect.signature(good)
    assert _positional(sig_bad) and _names(sig_bad) and _annotations(sig_bad)
    assert not (_positional(sig_good) or _names(sig_good) or _annotations(sig_good))

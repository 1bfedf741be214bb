"""Lazy exports of a package (PEP 562): a name loads its module on first use.

A package's ``__init__`` declares ``_EXPORTS`` (each module, relative to the package →
the public names it defines), takes ``__all__`` from :func:`public_names` and its
``__getattr__`` and ``__dir__`` from :func:`lazy_exports`. Importing the
package then costs nothing, so that ``perturbridge --help`` and store queries do not
import what they do not use (the DE engine, torch).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, Sequence
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports", "public_names"]


def public_names(exports: Mapping[str, Sequence[str]]) -> list[str]:
    """The exported names (``__all__``), sorted; a name exported twice is an error."""
    names = [name for group in exports.values() for name in group]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"names exported by more than one module: {twice}")
    return sorted(names)


def lazy_exports(
    package: str, exports: Mapping[str, Sequence[str]], namespace: MutableMapping[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose globals are ``namespace``.

    ``exports`` maps each module to the public names it defines (e.g.
    ``{".api": ("Compendium",)}``); a loaded name is cached in ``namespace``.
    """
    where = {name: module for module, group in exports.items() for name in group}

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(where[name], package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__

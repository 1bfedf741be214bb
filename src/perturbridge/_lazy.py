"""Lazy exports of a package (PEP 562): a name loads its module on first use.

A package's ``__init__`` declares ``_EXPORTS`` (public name → the module that defines
it, relative to the package) and gets its ``__getattr__`` and ``__dir__`` from
:func:`lazy_exports`; ``__all__`` is the list of the exported names. Importing the
package then costs nothing, so that ``perturbridge --help`` and store queries do not
import what they do not use (the DE engine, torch).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: MutableMapping[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose globals are ``namespace``.

    ``exports`` maps each public name to the module that defines it (e.g.
    ``{"Compendium": ".api"}``); a loaded name is cached in ``namespace``.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(exports[name], package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__

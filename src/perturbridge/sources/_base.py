"""The source-adapter registry and the result every adapter returns."""

from __future__ import annotations

import inspect
import sys
from abc import ABC
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import pandas as pd

from ._declarations import ADAPTERS, CliParameter

if TYPE_CHECKING:
    import anndata as ad

    from ..ledger import Ledger

__all__ = [
    "IngestResult",
    "SourceAdapter",
    "get_source",
    "list_sources",
    "register_source",
    "source_names",
]


@dataclass
class IngestResult:
    """Validated Samples and the ledger that accounts for every input sample."""

    samples: ad.AnnData
    ledger: Ledger


class SourceAdapter(ABC):
    """An upstream dataset family: reads its native files into Samples + ledger.

    The package's adapters get :attr:`name`, :attr:`assay`, :attr:`value_kind`,
    :attr:`description`, :attr:`expected_files` and :attr:`cli_parameters` from their
    declaration (:data:`~perturbridge.sources.ADAPTERS`) when registered; another
    adapter (a plug-in) sets them itself.
    """

    name: ClassVar[str]
    assay: ClassVar[str]
    description: ClassVar[str]
    #: The upstream files the adapter reads (names or patterns, for ``sources list``).
    expected_files: ClassVar[tuple[str, ...]] = ()
    #: ``"counts"`` or ``"log_expression"``: what the Samples ``X`` holds.
    value_kind: ClassVar[str] = ""
    #: The parameters ``perturbridge ingest <name>`` takes, passed to :meth:`ingest`.
    cli_parameters: ClassVar[tuple[CliParameter, ...]] = ()
    #: Options objects of the reader, by its parameter name (e.g. ``filters`` →
    #: :class:`~perturbridge.sources.sciplex.SciplexFilters`): a build plan and ``--set``
    #: give their fields as flat keys (``min_counts = 200``), which :meth:`reader_kwargs`
    #: groups.
    option_groups: ClassVar[Mapping[str, type[Any]]] = {}

    def ingest(self, **kwargs: Any) -> IngestResult:
        """Read the upstream files and return Samples and the ledger (calls
        :meth:`reader` with ``kwargs`` grouped by :meth:`reader_kwargs`; override for
        anything else)."""
        return self.reader()(**self.reader_kwargs(kwargs))

    @classmethod
    def reader_kwargs(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """Flat parameters (a plan's keys, ``--set`` names) as the reader takes them: the
        fields of each :attr:`option_groups` object gathered into that object."""
        out = dict(params)
        for name, group in cls.option_groups.items():
            given = {f.name: out.pop(f.name) for f in fields(group) if f.name in out}
            if given:
                if name in out:
                    raise TypeError(
                        f"source {cls.name!r}: give {name}= or its fields {sorted(given)}, not both"
                    )
                out[name] = group(**given)
        return out

    @classmethod
    def parameter_names(cls) -> tuple[set[str], set[str], bool] | None:
        """``(parameters, required parameters, takes **kwargs)`` as a plan gives them:
        the reader's parameters with each options object replaced by its fields; ``None``
        when the adapter has no reader to inspect."""
        try:
            fn = cls.reader()
        except (AttributeError, NotImplementedError):
            return None
        names: set[str] = set()
        required: set[str] = set()
        var_kw = False
        for prm in inspect.signature(fn).parameters.values():
            if prm.kind is prm.VAR_KEYWORD:
                var_kw = True
            elif prm.kind in (prm.POSITIONAL_OR_KEYWORD, prm.KEYWORD_ONLY):
                if prm.name in cls.option_groups:
                    names.update(f.name for f in fields(cls.option_groups[prm.name]))
                    continue
                names.add(prm.name)
                if prm.default is prm.empty:
                    required.add(prm.name)
        return names, required, var_kw

    def declared_files(self, params: Mapping[str, Any]) -> list[tuple[str, Path]]:
        """Files the adapter will read that are named *inside* its inputs, as
        ``(label, path)``.

        ``params`` are the keyword arguments :meth:`ingest` will get. Files passed as
        arguments are not repeated: only those an input names (the generic adapter's
        mapping file names its tables) are listed, so that a build's task key covers
        their content too. An input that does not exist gives nothing here (the caller
        reports it); one that cannot be parsed raises as :meth:`ingest` would. The
        default lists none.
        """
        return []

    @classmethod
    def reader(cls) -> Callable[..., IngestResult]:
        """The public function behind :meth:`ingest`: by convention ``read_<name>`` in
        the adapter's module (its signature and docstring document the inputs;
        :attr:`cli_parameters` declares those ``perturbridge ingest <name>`` takes)."""
        fn = getattr(sys.modules[cls.__module__], f"read_{cls.name}", None)
        if not callable(fn):
            raise NotImplementedError(
                f"source {cls.name!r} has no function read_{cls.name} in {cls.__module__}"
            )
        return fn


_REGISTRY: dict[str, type[SourceAdapter]] = {}
A = TypeVar("A", bound=type[SourceAdapter])


def register_source(
    *, name: str, assay: str | None = None, value_kind: str | None = None
) -> Callable[[A], A]:
    """Class decorator that adds an adapter to the registry under ``name``.

    ``name`` is the adapter's key (``perturbridge ingest <name>``, plans). An adapter of
    the package takes its assay, value kind, description, expected files and CLI
    parameters from its declaration in :data:`~perturbridge.sources.ADAPTERS`, and
    declares none of them again. Any other adapter gives ``assay`` (of its datasets) and
    ``value_kind`` (what its Samples ``X`` holds: ``"counts"`` or ``"log_expression"``)
    here and sets the others on its class.
    """
    declared = ADAPTERS.get(name)
    if declared is not None and (assay is not None or value_kind is not None):
        raise TypeError(
            f"source {name!r} is declared in perturbridge.sources.ADAPTERS: "
            "register it by name only"
        )
    if declared is None and (assay is None or value_kind is None):
        raise TypeError(f"source {name!r}: give assay= and value_kind=")

    def add(cls: A) -> A:
        if name in _REGISTRY:
            raise ValueError(f"source {name!r} is already registered")
        if declared is None:
            cls.name, cls.assay, cls.value_kind = name, str(assay), str(value_kind)
        else:
            again = sorted(set(_DECLARED) & set(vars(cls)))
            if again:
                raise TypeError(
                    f"source {name!r}: {again} are declared in perturbridge.sources.ADAPTERS, "
                    f"not on {cls.__qualname__}"
                )
            for attr in _DECLARED:
                setattr(cls, attr, getattr(declared, attr))
        _REGISTRY[name] = cls
        return cls

    return add


#: What an adapter of the package takes from its declaration.
_DECLARED = ("name", "assay", "value_kind", "description", "expected_files", "cli_parameters")


def source_names() -> list[str]:
    """Names of the adapters: the package's (:data:`~perturbridge.sources.ADAPTERS`, not
    imported by this), then those registered elsewhere, in registration order."""
    return [*ADAPTERS, *(name for name in _REGISTRY if name not in ADAPTERS)]


def _registered(name: str) -> type[SourceAdapter] | None:
    """The adapter class of ``name``, its module imported first when it is one of the
    package's; ``None`` when there is none."""
    if name not in _REGISTRY and name in ADAPTERS:
        module = ADAPTERS[name].module
        import_module(module, __package__)
        if name not in _REGISTRY:
            raise RuntimeError(f"module {module} does not register source {name!r}")
    return _REGISTRY.get(name)


def get_source(name: str) -> SourceAdapter:
    """An adapter instance by name (its module is imported on first use)."""
    cls = _registered(name)
    if cls is None:
        raise KeyError(f"unknown source {name!r}; known: {sorted(source_names())}")
    return cls()


def list_sources() -> pd.DataFrame:
    """The adapters: name, assay, value kind, expected files, description (the package's
    from their declarations, without importing them)."""
    about = [ADAPTERS.get(name) or _registered(name) for name in source_names()]
    return pd.DataFrame(
        [
            {
                "name": c.name,
                "assay": c.assay,
                "value_kind": c.value_kind,
                "expected_files": ", ".join(c.expected_files),
                "description": c.description,
            }
            for c in about
            if c is not None
        ],
        columns=["name", "assay", "value_kind", "expected_files", "description"],
    )

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

from . import ADAPTERS

if TYPE_CHECKING:
    import anndata as ad

    from ..ledger import Ledger

__all__ = [
    "CliParameter",
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


@dataclass(frozen=True)
class CliParameter:
    """A parameter of an adapter's reader as ``perturbridge ingest <name>`` takes it:
    files with ``--input NAME=PATH``, other values with ``--set NAME=VALUE``.

    ``type`` is what the value becomes (``Path``, ``str``, ``int``, ``float`` or
    ``bool``); a ``multiple`` parameter takes several values (a name repeated in
    ``--input``, or comma-separated) and becomes a tuple of strings. ``default`` is shown
    in the help; the reader's own default applies when the parameter is not given.
    """

    name: str
    type: type[Path] | type[str] | type[int] | type[float] | type[bool] = str
    help: str = ""
    default: object = None
    required: bool = False
    multiple: bool = False

    def convert(self, value: str) -> object:
        """The command-line string ``value`` as the reader takes it; a ``ValueError``
        names the parameter and the value when it is not of the parameter's type."""
        if self.multiple:
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if self.type is bool:
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"{self.name} must be true or false, got {value!r}")
            return value.lower() in ("true", "1", "yes")
        if self.type is int or self.type is float:
            try:
                return self.type(value)
            except ValueError:
                kind = "a whole number" if self.type is int else "a number"
                raise ValueError(f"{self.name} must be {kind}, got {value!r}") from None
        return self.type(value)


def dataset_parameter(default: str) -> CliParameter:
    """The ``dataset`` parameter every adapter takes: the name of the dataset in the
    Samples and the store, ``default`` when not given."""
    return CliParameter("dataset", str, "Dataset name.", default)


def h5ad_parameters(what: str, *, required: bool = True) -> tuple[CliParameter, CliParameter]:
    """The ``h5ad`` input (``what`` it holds) and the ``layer`` holding its counts."""
    return (
        CliParameter("h5ad", Path, what, required=required),
        CliParameter("layer", str, "Layer holding the counts (default: X)."),
    )


class SourceAdapter(ABC):
    """An upstream dataset family: reads its native files into Samples + ledger."""

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


def register_source(*, name: str, assay: str, value_kind: str) -> Callable[[A], A]:
    """Class decorator that adds an adapter to the registry under ``name``.

    ``name`` is the adapter's key (``perturbridge ingest <name>``, plans), ``assay`` the
    assay of its datasets and ``value_kind`` what its Samples ``X`` holds
    (``"counts"`` or ``"log_expression"``, or how the adapter declares it); they become
    the class's attributes.
    """

    def add(cls: A) -> A:
        if name in _REGISTRY:
            raise ValueError(f"source {name!r} is already registered")
        cls.name, cls.assay, cls.value_kind = name, assay, value_kind
        _REGISTRY[name] = cls
        return cls

    return add


def source_names() -> list[str]:
    """Names of the adapters: the package's (:data:`~perturbridge.sources.ADAPTERS`, not
    imported by this), then those registered elsewhere, in registration order."""
    return [*ADAPTERS, *(name for name in _REGISTRY if name not in ADAPTERS)]


def _registered(name: str) -> type[SourceAdapter] | None:
    """The adapter class of ``name``, its module imported first when it is one of the
    package's; ``None`` when there is none."""
    if name not in _REGISTRY and name in ADAPTERS:
        import_module(ADAPTERS[name], __package__)
        if name not in _REGISTRY:
            raise RuntimeError(f"module {ADAPTERS[name]} does not register source {name!r}")
    return _REGISTRY.get(name)


def get_source(name: str) -> SourceAdapter:
    """An adapter instance by name (its module is imported on first use)."""
    cls = _registered(name)
    if cls is None:
        raise KeyError(f"unknown source {name!r}; known: {sorted(source_names())}")
    return cls()


def list_sources() -> pd.DataFrame:
    """The adapters (all imported): name, assay, value kind, expected files, description."""
    return pd.DataFrame(
        [
            {
                "name": c.name,
                "assay": c.assay,
                "value_kind": c.value_kind,
                "expected_files": ", ".join(c.expected_files),
                "description": c.description,
            }
            for c in map(_registered, source_names())
            if c is not None
        ],
        columns=["name", "assay", "value_kind", "expected_files", "description"],
    )

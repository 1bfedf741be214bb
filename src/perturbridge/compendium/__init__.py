"""The compendium: build plans, a content-addressed task cache, the store and its API.

``build(plan)`` turns a TOML build plan into a store (:mod:`.store`): Effects files per
dataset × replicate mode × cell context, consolidated Zarr arrays for fast slicing, a
Parquet catalog queried with DuckDB, and a manifest. :class:`Compendium` opens a store
for queries; :mod:`.export` writes training shards and evaluation AnnData;
:func:`import_release` imports DE files of the original public release.

The names below load their module on first use (PEP 562), so that reading a store
(``Compendium``, ``perturbridge query``) does not import the DE engine and the build
machinery behind ``build``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._build import BuildReport, build, plan_tasks
    from ._common import BuildError, PlanError, StoreError
    from .api import Compendium
    from .executors import Executor, list_executors, make_executor
    from .export import export_anndata, export_shards
    from .importer import import_release
    from .plan import BuildPlan, load_plan
    from .store import store_digest
    from .tasks import read_task_log

#: public name → the module that defines it
_EXPORTS = {
    "BuildError": "._common",
    "BuildPlan": ".plan",
    "BuildReport": "._build",
    "Compendium": ".api",
    "Executor": ".executors",
    "PlanError": "._common",
    "StoreError": "._common",
    "build": "._build",
    "export_anndata": ".export",
    "export_shards": ".export",
    "import_release": ".importer",
    "list_executors": ".executors",
    "load_plan": ".plan",
    "make_executor": ".executors",
    "plan_tasks": "._build",
    "read_task_log": ".tasks",
    "store_digest": ".store",
}

__all__ = [
    "BuildError",
    "BuildPlan",
    "BuildReport",
    "Compendium",
    "Executor",
    "PlanError",
    "StoreError",
    "build",
    "export_anndata",
    "export_shards",
    "import_release",
    "list_executors",
    "load_plan",
    "make_executor",
    "plan_tasks",
    "read_task_log",
    "store_digest",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

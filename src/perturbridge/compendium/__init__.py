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

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:  # the names for type checkers (re-exported)
    from ._build import BuildReport as BuildReport
    from ._build import build as build
    from ._build import plan_tasks as plan_tasks
    from ._common import BuildError as BuildError
    from ._common import PlanError as PlanError
    from ._common import StoreError as StoreError
    from .api import Compendium as Compendium
    from .executors import Executor as Executor
    from .executors import list_executors as list_executors
    from .executors import make_executor as make_executor
    from .export import export_anndata as export_anndata
    from .export import export_shards as export_shards
    from .importer import import_release as import_release
    from .plan import BuildPlan as BuildPlan
    from .plan import load_plan as load_plan
    from .signatures import import_signatures as import_signatures
    from .store import store_digest as store_digest
    from .tasks import read_task_log as read_task_log

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
    "import_signatures": ".signatures",
    "list_executors": ".executors",
    "load_plan": ".plan",
    "make_executor": ".executors",
    "plan_tasks": "._build",
    "read_task_log": ".tasks",
    "store_digest": ".store",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

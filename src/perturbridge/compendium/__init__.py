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

from .._lazy import lazy_exports, public_names

if TYPE_CHECKING:  # the names for type checkers (re-exported)
    from ._build import BuildReport as BuildReport, build as build, plan_tasks as plan_tasks
    from ._common import BuildError as BuildError, PlanError as PlanError, StoreError as StoreError
    from ._prune import PruneReport as PruneReport, prune as prune
    from .api import Compendium as Compendium
    from .executors import (
        Executor as Executor,
        list_executors as list_executors,
        make_executor as make_executor,
    )
    from .export import export_anndata as export_anndata, export_shards as export_shards
    from .importer import import_release as import_release
    from .plan import BuildPlan as BuildPlan, load_plan as load_plan
    from .release_export import export_release as export_release
    from .signatures import import_signatures as import_signatures
    from .store import store_digest as store_digest
    from .tasks import read_task_log as read_task_log

#: each module → the public names it defines
_EXPORTS = {
    "._build": ("BuildReport", "build", "plan_tasks"),
    "._common": ("BuildError", "PlanError", "StoreError"),
    "._prune": ("PruneReport", "prune"),
    ".api": ("Compendium",),
    ".executors": ("Executor", "list_executors", "make_executor"),
    ".export": ("export_anndata", "export_shards"),
    ".importer": ("import_release",),
    ".plan": ("BuildPlan", "load_plan"),
    ".release_export": ("export_release",),
    ".signatures": ("import_signatures",),
    ".store": ("store_digest",),
    ".tasks": ("read_task_log",),
}

__all__ = public_names(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

"""The compendium: build plans, a content-addressed task cache, the store and its API.

``build(plan)`` turns a TOML build plan into a store (:mod:`.store`): Effects files per
dataset × replicate mode × cell context, consolidated Zarr arrays for fast slicing, a
Parquet catalog queried with DuckDB, and a manifest. :class:`Compendium` opens a store
for queries; :mod:`.export` writes training shards and evaluation AnnData;
:func:`import_release` imports DE files of the original public release.
"""

from ._common import BuildError, PlanError, StoreError
from .api import Compendium
from .build import BuildReport, build, plan_tasks
from .executors import Executor, list_executors, make_executor
from .export import export_anndata, export_shards
from .importer import import_release
from .plan import BuildPlan, load_plan
from .store import store_digest
from .tasks import read_task_log

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

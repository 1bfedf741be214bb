"""The compendium store on disk: effects files, consolidated arrays, catalog, manifest.

Layout::

    STORE/
      .perturbridge-store                      marks the folder as a store
      manifest.json                            provenance: inputs, checksums, versions,
                                               parameters, task keys, every file's SHA-256
      timings.json                             wall times of the last build that wrote
                                               the store (the only file that differs
                                               between two builds of the same plan)
      samples/<dataset>.h5ad                   Samples (rows sorted by cell context)
      effects/<dataset>/<mode>/<context>_de.h5ad   Effects, one file per context
                                               (float32 layers, gzip; only the layers
                                               neither in the arrays nor derived: see
                                               ``_footprint``; read them complete with
                                               :func:`read_effects_file`)
      zarr/<mode>.zarr/<layer>                 contrasts × union genes, float32, NaN
                                               where a gene was not measured
                                               (Zarr format 3, one row per inner chunk,
                                               ``chunk_conditions`` rows per shard file;
                                               Blosc-zstd; p-value layers hold -log10(p);
                                               consolidated metadata)
      catalog/{datasets,samples,conditions,contrasts,genes,compounds,contexts,ledger}.parquet
      .cache/                                  the task cache (default place; see tasks)

An update is prepared beside the store (``STORE/.update-<id>/``, same file system) and
committed by renames: the old manifest is removed, the managed folders (catalog first)
are swapped for the prepared ones, and the new manifest is moved into place last. The
manifest names the SHA-256 and size of every file it covers (the shards also with
their index CRC32C), so a reader can tell a consistent store from one caught between
two states (see :func:`check_store`, :func:`verify_store`, :func:`repair_store`).

Rows of ``zarr/<mode>.zarr`` are the contrasts of that mode ordered by dataset, context
(file) and row in the file; ``catalog/contrasts.parquet`` gives each contrast's
``zarr_row``. Columns are the union of all gene ids, sorted; ``catalog/genes.parquet``
gives each gene's ``zarr_col``. Everything is written in a fixed order with no
timestamps, so the same inputs give byte-identical files whichever executor ran the
tasks and however often the build was interrupted.

Modules: ``_layout`` (paths, parts, manifest reading), ``_catalog`` (the catalog
tables), ``_arrays`` (the consolidated arrays), ``_transaction`` (prepare and commit an
update), ``_verify`` (check, verify and repair against the manifest).
"""

from ._catalog import compound_ids, read_dataset_parts
from ._effects import DERIVED_LAYERS, StoreEffects, StoreFiles, read_effects_file
from ._layout import (
    CATALOG_TABLES,
    NEEDS_REBUILD,
    DatasetPart,
    EffectsPart,
    StoreLayout,
    read_manifest,
    store_is_current,
)
from ._transaction import mark_store, write_store
from ._verify import (
    RepairReport,
    StoreProblem,
    changed_files,
    check_store,
    repair_store,
    store_digest,
    verify_store,
)

__all__ = [
    "CATALOG_TABLES",
    "DERIVED_LAYERS",
    "NEEDS_REBUILD",
    "DatasetPart",
    "EffectsPart",
    "RepairReport",
    "StoreEffects",
    "StoreFiles",
    "StoreLayout",
    "StoreProblem",
    "changed_files",
    "check_store",
    "compound_ids",
    "mark_store",
    "read_dataset_parts",
    "read_effects_file",
    "read_manifest",
    "repair_store",
    "store_digest",
    "store_is_current",
    "verify_store",
    "write_store",
]

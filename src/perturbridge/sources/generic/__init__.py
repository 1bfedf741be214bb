"""The generic adapter: a TOML mapping file turns any expression table into Samples.

A mapping file declares where the data are and what each metadata column means; no
code is needed. The expression is an AnnData (``.h5ad``: ``obs`` is the metadata unless
a separate table is given) or a table (CSV, TSV, parquet) of genes × samples or
samples × genes with a separate metadata table. A complete example (every key, the
optional ones commented) is in ``docs/generic.md``; the keys are:

``version = 1`` (optional)

``[input]``
    ``expression`` (file), ``value_kind`` (``counts`` | ``log_expression``),
    ``metadata`` (file; required for tables), ``orientation`` (``genes_x_samples`` |
    ``samples_x_genes``; required for tables), ``layer`` (``.h5ad`` only),
    ``allow_non_integer`` (``true`` accepts counts that are not whole numbers, such as
    estimated counts; default ``false``: such counts are an error naming the samples).
    Relative paths are relative to the mapping file's folder.
``[samples]``
    ``id_column`` (metadata column naming the samples as the expression does; for an
    ``.h5ad`` without a separate table, default the ``obs`` index), ``keep_columns``
    (further metadata columns to carry into ``obs``).
``[fields]``
    Schema field → metadata column (a string) or a fixed value (``{ value = "…" }``).
    Required: ``dataset``, ``assay``, ``plate``, ``cell_context``, ``perturbagen``.
    Optional: ``well`` (or ``well_row`` + ``well_column``; default the sample id),
    ``replicate`` (default: the rank of the sample among the samples of its condition,
    by plate and well), ``cell_name`` (default ``cell_context``), ``compound_id``
    (``compound_id_source``; default ``perturbagen``), ``inchikey``, ``smiles``,
    ``pubchem_cid``, ``n_cells``.
``[dose]`` and ``[time]``
    ``column`` (numbers, or combined strings such as ``1000.0nM``/``24h``) or ``value``
    (one number for every sample); the unit from ``unit_column``, or ``unit`` (fixed,
    also the unit of bare numbers in a combined column), or written in the values.
    ``[dose] molecular_weight_column`` converts mass concentrations (``ng/mL``).
``[controls]``
    Either ``control_values = ["DMSO"]`` (values of ``control_column``, default the
    perturbagen column, that are vehicles) or ``pert_type_column`` with
    ``pert_type_map`` (every value → ``vehicle``, ``compound``, ``positive_control``,
    ``untreated``, ``empty`` or ``other``); ``positive_control_values`` (values of
    ``positive_control_column``, default the perturbagen column) go to the ledger as
    ``positive_control``; ``control_match_keys`` (metadata columns a treated sample
    must share with its vehicle, declared for the DE step). Values are compared
    case-insensitively.
``[[exclude]]`` (repeatable)
    ``column``, ``equals`` (one value) or ``values`` (a list), ``reason``: matching
    samples go to the ledger with that reason (e.g. ``qc_fail``).
``[genes]``
    ``id_type`` (``ensembl`` | ``symbol`` | ``entrez``), ``id_column`` (genes × samples
    tables: the first column, checked; ``.h5ad``: a ``var`` column, default the index),
    ``symbol_column`` (a column of the same table or ``var``), ``annotation`` (a table
    holding ``id_column`` and ``symbol_column``, which then name its columns).

Rules: every input sample (metadata rows and expression samples) is in the ledger
(stage ``ingest``): kept, or dropped as ``missing_metadata`` / ``missing_expression`` /
an exclusion reason / ``positive_control`` / ``untreated_control`` / ``empty_well`` /
``unsupported_pert_type`` / ``missing_dose`` / ``missing_time``, in that order of
precedence. Every gene is in the ledger (stage ``ingest_genes``); ERCC spike-ins are
dropped as ``spike_in``. Vehicles get dose 0. Errors name the mapping file and key, or
the data file and column, and the first offending values; the mapping is checked
completely before any data file is read, and every problem it has is reported at once.

The package: :mod:`.mapping` (the keys as data, their checks, :func:`load_mapping`),
:mod:`.readers` (the metadata table, the expression table or ``.h5ad``) and
:mod:`.assembly` (:func:`read_generic`: triage, ledger, Samples).
"""

from .assembly import GenericSource, read_generic
from .mapping import (
    ExcludeRule,
    FieldSpec,
    GenericMapping,
    MappingError,
    QuantitySpec,
    load_mapping,
)

__all__ = [
    "ExcludeRule",
    "FieldSpec",
    "GenericMapping",
    "GenericSource",
    "MappingError",
    "QuantitySpec",
    "load_mapping",
    "read_generic",
]

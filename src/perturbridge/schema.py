"""The standard schemas of perturbridge: Samples and Effects.

**Samples** is an AnnData with one row per well/sample (pseudobulk for single-cell
data). ``obs`` holds the columns of :data:`SAMPLE_COLUMNS`, ``var`` is indexed by gene
id and has a ``symbol`` column, ``X`` holds counts or log expression and
``uns["perturbridge"]["value_kind"]`` says which. After the schema columns come the
biology columns of :data:`BIOLOGY_COLUMNS` (organism, tissue, disease, sex, …: strings,
``unknown`` where no source says) and :data:`BIOLOGY_SOURCE`, where each value came from
(see ``docs/metadata.md``).

**Effects** is an AnnData with one row per contrast (a treated condition against its
matched vehicle), ``var`` as in Samples, and the layers of :data:`EFFECT_LAYERS`
(the layout of the original public release, so that its files interoperate).

:func:`validate_samples` and :func:`validate_effects` raise :class:`SchemaError` naming
the column, the rule and the first offending rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import pandas as pd

from .errors import SchemaError

if TYPE_CHECKING:
    import anndata as ad

__all__ = [
    "BIOLOGY_COLUMNS",
    "BIOLOGY_SOURCE",
    "BIOLOGY_VOCABULARIES",
    "CONTROL_PERT_TYPES",
    "DE_ENGINES",
    "DE_METHODS",
    "EFFECT_LAYERS",
    "EFFECT_OBS_COLUMNS",
    "ID_STATUSES",
    "ORPHAN_VEHICLES",
    "PERT_TYPES",
    "REPLICATE_MODES",
    "SAMPLE_COLUMNS",
    "UNKNOWN",
    "VALUE_KINDS",
    "Column",
    "DEEngine",
    "DEMethod",
    "IdStatus",
    "OrphanVehicles",
    "ReplicateMode",
    "ValueKind",
    "check_biology",
    "check_unique_index",
    "empty_samples_obs",
    "validate_effects",
    "validate_samples",
]

# The shared vocabularies: each a ``Literal`` type and the tuple of its values.

#: What ``X`` of a Samples holds (``uns["perturbridge"]["value_kind"]``).
ValueKind = Literal["counts", "log_expression"]
VALUE_KINDS: tuple[str, ...] = get_args(ValueKind)
#: How replicates enter DE: pooled into one contrast per condition (``group``) or one
#: contrast per treated sample (``separate``).
ReplicateMode = Literal["group", "separate"]
REPLICATE_MODES: tuple[str, ...] = get_args(ReplicateMode)
#: What DE does with vehicle samples no treated condition is contrasted with.
OrphanVehicles = Literal["drop", "keep"]
ORPHAN_VEHICLES: tuple[str, ...] = get_args(OrphanVehicles)
#: DE methods: ``auto`` (voom for counts, trend for log expression), limma-trend, limma-voom.
DEMethod = Literal["auto", "trend", "voom"]
DE_METHODS: tuple[str, ...] = get_args(DEMethod)
#: DE engines: perturbridge's own (``python``) or R limma/edgeR (``r``).
DEEngine = Literal["python", "r"]
DE_ENGINES: tuple[str, ...] = get_args(DEEngine)
#: Identifier resolution status of a compound or cell context.
IdStatus = Literal["resolved", "ambiguous", "unresolved"]

#: Controlled vocabulary of ``pert_type``.
PERT_TYPES: tuple[str, ...] = (
    "compound",  # a treated sample (small molecule)
    "vehicle",  # negative control: the vehicle (DMSO, water, ...)
    "positive_control",
    "untreated",
    "empty",
    "other",
)
#: Values of ``compound_status`` / ``cell_status`` (NA: identifiers not resolved).
ID_STATUSES: tuple[str, ...] = get_args(IdStatus)

#: ``pert_type`` values for which ``is_control`` is true.
CONTROL_PERT_TYPES: tuple[str, ...] = ("vehicle",)

#: The biological context of a sample or condition, named as in the public release
#: (CELLxGENE-style): filled from the reference store, ``unknown`` where no source says.
BIOLOGY_COLUMNS: tuple[str, ...] = (
    "organism",
    "tissue",
    "tissue_ontology_term_id",
    "disease",
    "disease_ontology_term_id",
    "sex",
    "development_stage",
    "self_reported_ethnicity",
    "suspension_type",
    "tissue_type",
)
#: The value of a biology column that no source gives.
UNKNOWN = "unknown"
#: The provenance of the biology columns of a row: ``;``-joined ``column=source`` pairs
#: (e.g. ``sex=depmap_sample_info; suspension_type=dataset:sciplex``), one column so that
#: it travels with the row into every table. Display only, never parsed back.
BIOLOGY_SOURCE = "biology_source"
#: Controlled vocabularies of the biology columns that have one (``unknown`` included).
BIOLOGY_VOCABULARIES: dict[str, tuple[str, ...]] = {
    "sex": ("female", "male", UNKNOWN),
    "suspension_type": ("cell", "nucleus", UNKNOWN),
    "tissue_type": ("cell line", "primary cell", "tissue", UNKNOWN),
}


@dataclass(frozen=True)
class Column:
    """One column of a schema.

    ``kind`` is ``"category"``, ``"float"``, ``"bool"``, ``"Int64"`` (nullable integer)
    or ``"string"``. ``nullable`` tells whether missing values are allowed.
    """

    name: str
    kind: Literal["category", "float", "bool", "Int64"]
    nullable: bool
    doc: str


SAMPLE_COLUMNS: tuple[Column, ...] = (
    Column("dataset", "category", False, "dataset name, e.g. 'lincs_l1000'"),
    Column("assay", "category", False, "assay type, e.g. 'L1000', 'DRUG-seq', 'scRNA-seq'"),
    Column("plate", "category", False, "plate (batch) the sample was measured on"),
    Column("well", "category", False, "well on the plate, e.g. 'A03'"),
    Column("replicate", "category", False, "replicate label (e.g. L1000 'X1')"),
    Column("cell_context", "category", False, "cell context id (Cellosaurus/CL once resolved)"),
    Column("cell_name", "category", False, "cell context name as given upstream"),
    Column("perturbagen", "category", False, "perturbagen name as given upstream"),
    Column("compound_id_source", "category", True, "the upstream compound id (e.g. BRD id)"),
    Column("compound_inchikey", "category", True, "standard InChIKey when known"),
    Column(
        "compound_parent_inchikey",
        "category",
        True,
        "InChIKey of the salt/solvent-stripped, neutralized parent when known",
    ),
    Column("pubchem_cid", "Int64", True, "PubChem CID when known"),
    Column(
        "compound_status",
        "category",
        True,
        "identifier resolution of the compound: resolved, ambiguous or unresolved "
        "(NA: not resolved through ids/, or not a compound)",
    ),
    Column(
        "cell_status",
        "category",
        True,
        "identifier resolution of the cell context: resolved, ambiguous or unresolved "
        "(NA: not resolved through ids/)",
    ),
    Column("pert_type", "category", False, f"one of {', '.join(PERT_TYPES)}"),
    Column("is_control", "bool", False, "true for vehicle (negative) controls"),
    Column("pert_dose_uM", "float", False, "dose in µM, 0 for vehicle"),
    Column("pert_time_h", "float", False, "time after treatment in hours"),
    Column("n_cells", "Int64", True, "cells in the sample (pseudobulk), NA for bulk assays"),
    Column("total_counts", "float", True, "library size for counts, NaN for log expression"),
)

#: Layers of an Effects AnnData, in the order of the original public release.
EFFECT_LAYERS: tuple[str, ...] = (
    "logFC",
    "t",
    "P.Value",
    "adj.P.Value.within_one_contrast",
    "adj.P.Value.across_all_contrasts",
    "CI.L",
    "CI.R",
    "AveExpr",
    "B",
    "stdev.unscaled",
)

_SAMPLE_COLUMN = {c.name: c for c in SAMPLE_COLUMNS}

#: Columns of an Effects ``obs``: the condition's columns as Samples define them, then
#: the contrast's own.
EFFECT_OBS_COLUMNS: tuple[Column, ...] = (
    *(
        _SAMPLE_COLUMN[name]
        for name in (
            "dataset",
            "cell_context",
            "perturbagen",
            "compound_inchikey",
            "compound_parent_inchikey",
            "pert_dose_uM",
            "pert_time_h",
        )
    ),
    Column("replicate", "category", True, "replicate (separate mode), NA when pooled"),
    Column("control_label", "category", False, "the vehicle label the contrast is against"),
    Column("n_treated", "Int64", False, "samples in the treated condition"),
    Column("n_control", "Int64", False, "samples in the matched vehicle label"),
)

_N_SHOW = 5


def _first(values: Iterable[Any], n: int = _N_SHOW) -> list[Any]:
    out = []
    for v in values:
        out.append(v)
        if len(out) >= n:
            break
    return out


def _check_column(df: pd.DataFrame, col: Column, *, where: str) -> None:
    if col.name not in df.columns:
        raise SchemaError(
            col.name,
            f"required column is missing ({col.doc}); present columns: {_first(df.columns, 12)}",
            where=where,
        )
    s = df[col.name]
    if col.kind == "category":
        if not isinstance(s.dtype, pd.CategoricalDtype):
            raise SchemaError(col.name, f"must be categorical, found dtype {s.dtype}", where=where)
    elif col.kind == "float":
        if not pd.api.types.is_float_dtype(s.dtype):
            raise SchemaError(col.name, f"must be float, found dtype {s.dtype}", where=where)
    elif col.kind == "bool":
        if not pd.api.types.is_bool_dtype(s.dtype) or s.dtype == object:
            raise SchemaError(col.name, f"must be bool, found dtype {s.dtype}", where=where)
    elif col.kind == "Int64" and not (
        pd.api.types.is_integer_dtype(s.dtype) and not pd.api.types.is_float_dtype(s.dtype)
    ):
        raise SchemaError(
            col.name, f"must be a (nullable) integer, found dtype {s.dtype}", where=where
        )
    if not col.nullable:
        missing = s.isna().to_numpy()
        if missing.any():
            raise SchemaError(
                col.name,
                "must not be missing",
                _first(df.index[missing]),
                where=where,
            )


def _check_rows(df: pd.DataFrame, mask: np.ndarray, column: str, rule: str, where: str) -> None:
    mask = np.asarray(mask, dtype=bool)
    if mask.any():
        rows = df.index[mask]
        vals = df[column].to_numpy()[mask]
        shown = [
            f"{r}={(v.item() if isinstance(v, np.generic) else v)!r}"
            for r, v in zip(_first(rows), _first(vals), strict=False)
        ]
        raise SchemaError(column, rule, shown, where=where)


def check_unique_index(index: pd.Index, *, what: str, where: str) -> None:
    """Raise :class:`SchemaError` if ``index`` has repeated or missing ids."""
    dup = index.duplicated(keep=False)
    if dup.any():
        raise SchemaError(
            "index", f"{what} ids must be unique", _first(pd.unique(index[dup])), where=where
        )
    if np.asarray(index.isna()).any():
        raise SchemaError("index", f"{what} ids must not be missing", where=where)


def _check_var(var: pd.DataFrame, *, where: str) -> None:
    check_unique_index(var.index, what="gene", where=f"{where} var")
    if "symbol" not in var.columns:
        raise SchemaError("symbol", "var must have a 'symbol' column", where=f"{where} var")


def check_biology(df: pd.DataFrame, *, where: str) -> None:
    """Check the biology columns of ``df`` that are present (all strings, none missing,
    controlled vocabularies, ``"<age>-year-old stage"`` or ``unknown`` for
    ``development_stage``); columns that are absent are not checked (frames written
    before the columns existed)."""
    for name in (c for c in (*BIOLOGY_COLUMNS, BIOLOGY_SOURCE) if c in df.columns):
        s = df[name]
        missing = s.isna().to_numpy()
        _check_rows(df, missing, name, f"must not be missing (use {UNKNOWN!r})", where)
        values = s.astype(str)
        allowed = BIOLOGY_VOCABULARIES.get(name)
        if allowed is not None:
            _check_rows(
                df, ~values.isin(allowed).to_numpy(), name, f"must be one of {allowed}", where
            )
        elif name == "development_stage":
            ok = values.str.fullmatch(r"\d+-year-old stage") | (values == UNKNOWN)
            _check_rows(
                df, ~ok.to_numpy(), name, f"must be '<age>-year-old stage' or {UNKNOWN!r}", where
            )
        elif name.endswith("_ontology_term_id"):
            ok = values.str.fullmatch(r"[A-Za-z]+[:_][A-Za-z0-9]+") | (values == UNKNOWN)
            _check_rows(df, ~ok.to_numpy(), name, f"must be an ontology id or {UNKNOWN!r}", where)
        else:
            empty = (values.str.strip() == "").to_numpy()
            _check_rows(df, empty, name, f"must not be empty (use {UNKNOWN!r})", where)


def validate_samples(adata: ad.AnnData, *, where: str = "Samples") -> None:
    """Check that ``adata`` follows the Samples schema.

    Parameters
    ----------
    adata
        The Samples AnnData.
    where
        A label for error messages (e.g. the file name).

    Raises
    ------
    SchemaError
        Naming the column, the rule and the first offending rows.
    """
    obs = adata.obs
    check_unique_index(obs.index, what="sample", where=f"{where} obs")
    for col in SAMPLE_COLUMNS:
        _check_column(obs, col, where=f"{where} obs")
    pt = obs["pert_type"].astype(str).to_numpy()
    _check_rows(obs, ~np.isin(pt, PERT_TYPES), "pert_type", f"must be one of {PERT_TYPES}", where)
    is_ctl = obs["is_control"].to_numpy(dtype=bool)
    _check_rows(
        obs,
        is_ctl != np.isin(pt, CONTROL_PERT_TYPES),
        "is_control",
        f"must be true exactly when pert_type is in {CONTROL_PERT_TYPES}",
        where,
    )
    for name in ("compound_status", "cell_status"):
        status = obs[name]
        bad_status = status.notna().to_numpy() & ~status.astype(str).isin(ID_STATUSES).to_numpy()
        _check_rows(obs, bad_status, name, f"must be NA or one of {ID_STATUSES}", where)
    dose = obs["pert_dose_uM"].to_numpy(dtype=float)
    _check_rows(
        obs, ~np.isfinite(dose) | (dose < 0), "pert_dose_uM", "must be finite and >= 0", where
    )
    _check_rows(obs, is_ctl & (dose != 0), "pert_dose_uM", "must be 0 for vehicle controls", where)
    time = obs["pert_time_h"].to_numpy(dtype=float)
    _check_rows(
        obs, ~np.isfinite(time) | (time < 0), "pert_time_h", "must be finite and >= 0", where
    )
    check_biology(obs, where=where)
    _check_var(adata.var, where=where)
    meta = adata.uns.get("perturbridge")
    if not isinstance(meta, Mapping) or meta.get("value_kind") not in VALUE_KINDS:
        raise SchemaError(
            "uns['perturbridge']['value_kind']",
            f"must be one of {VALUE_KINDS}",
            None if not isinstance(meta, Mapping) else meta.get("value_kind"),
            where=where,
        )


def validate_effects(adata: ad.AnnData, *, where: str = "Effects") -> None:
    """Check that ``adata`` follows the Effects schema (see :func:`validate_samples`)."""
    check_unique_index(adata.obs.index, what="contrast", where=f"{where} obs")
    for col in EFFECT_OBS_COLUMNS:
        _check_column(adata.obs, col, where=f"{where} obs")
    check_biology(adata.obs, where=where)
    _check_var(adata.var, where=where)
    missing = [name for name in EFFECT_LAYERS if name not in adata.layers]
    if missing:
        raise SchemaError("layers", "required layers are missing", missing, where=where)
    pv = np.asarray(adata.layers["P.Value"])
    bad = np.isfinite(pv) & ((pv < 0) | (pv > 1))
    if bad.any():
        rows = adata.obs_names[np.flatnonzero(bad.any(axis=1))]
        raise SchemaError("P.Value", "must lie in [0, 1]", _first(rows), where=where)


def empty_samples_obs(n: int, index: Iterable[str] | None = None) -> pd.DataFrame:
    """A Samples ``obs`` of ``n`` rows with every schema column, correctly typed, unset.

    Source adapters fill it in; categorical columns are set with
    :func:`pandas.Categorical` once their values are known.
    """
    idx = pd.Index(list(index) if index is not None else [str(i) for i in range(n)], dtype=str)
    data: dict[str, Any] = {}
    for col in SAMPLE_COLUMNS:
        if col.kind == "category":
            data[col.name] = pd.Categorical([None] * n)
        elif col.kind == "float":
            data[col.name] = np.full(n, np.nan)
        elif col.kind == "bool":
            data[col.name] = np.zeros(n, dtype=bool)
        else:
            data[col.name] = pd.array([pd.NA] * n, dtype="Int64")
    return pd.DataFrame(data, index=idx)

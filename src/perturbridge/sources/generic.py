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
completely before any data file is read.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import sparse

from ..errors import FormatError, SchemaError
from ..ledger import Ledger
from ..schema import PERT_TYPES, SAMPLE_COLUMNS, VALUE_KINDS
from ..units import parse_dose, parse_time
from ._base import CliParameter, IngestResult, SourceAdapter, register_source
from ._common import (
    STAGE,
    Accounts,
    Origin,
    Triage,
    assemble,
    categorical,
    check_unique,
    checked_text,
    h5ad_rows,
    is_missing,
    open_h5ad,
    parse_numbers,
    read_table,
    read_wide_counts,
    record_genes,
    replicate_rank,
    require_file,
    spike_in_mask,
    split_quantity,
    to_int64,
    well_from_row_col,
    wide_table_columns,
)

__all__ = ["GenericMapping", "GenericSource", "MappingError", "load_mapping", "read_generic"]

logger = logging.getLogger(__name__)

ORIENTATIONS = ("genes_x_samples", "samples_x_genes")
GENE_ID_TYPES = ("ensembl", "symbol", "entrez")
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".csv.gz", ".tsv.gz", ".txt.gz")
#: ``pert_type`` → ledger reason of samples that are not modelled
DROP_REASON: dict[str, str] = {
    "positive_control": "positive_control",
    "untreated": "untreated_control",
    "empty": "empty_well",
    "other": "unsupported_pert_type",
}
_GENE_ID_PATTERN = {
    "ensembl": re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?(_PAR_Y)?$"),
    "entrez": re.compile(r"^\d+$"),
}
_INCHIKEY = re.compile(r"^[A-Z]{14}-[A-Z]{10}-[A-Z]$")
_REASON = re.compile(r"^[a-z][a-z0-9_]*$")
_N_SHOW = 5


class MappingError(FormatError):
    """A mapping file is malformed: unknown or missing keys, wrong types or values."""


def _missing_key(m: GenericMapping | Path, key: str) -> MappingError:
    path = m.path if isinstance(m, GenericMapping) else m
    return MappingError(f"{path}: missing required key {key!r}")


# ------------------------------------------------------------------------------------
# The mapping file: its keys, their types, and the parsed mapping
# ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    kind: str  # "str", "bool", "number", "scalar", "list[str]", "list[scalar]", "map[str]", "field"
    required: bool
    doc: str
    choices: tuple[str, ...] = ()


_FIELD_DOC = "a metadata column name, or { value = ... } for a fixed value"
_SCHEMA: dict[str, dict[str, _Key]] = {
    "input": {
        "expression": _Key("str", True, "the expression file (.h5ad, .csv, .tsv, .parquet)"),
        "value_kind": _Key("str", True, "what the values are", VALUE_KINDS),
        "metadata": _Key("str", False, "the sample metadata table"),
        "orientation": _Key("str", False, "the layout of an expression table", ORIENTATIONS),
        "layer": _Key("str", False, "the .h5ad layer holding the values"),
        "allow_non_integer": _Key(
            "bool", False, "accept counts that are not whole numbers (estimated counts)"
        ),
    },
    "samples": {
        "id_column": _Key("str", False, "the metadata column naming the samples"),
        "keep_columns": _Key("list[str]", False, "metadata columns to carry into obs"),
    },
    "fields": {
        "dataset": _Key("field", True, _FIELD_DOC),
        "assay": _Key("field", True, _FIELD_DOC),
        "plate": _Key("field", True, _FIELD_DOC),
        "cell_context": _Key("field", True, _FIELD_DOC),
        "perturbagen": _Key("field", True, _FIELD_DOC),
        "well": _Key("field", False, _FIELD_DOC),
        "well_row": _Key("field", False, _FIELD_DOC),
        "well_column": _Key("field", False, _FIELD_DOC),
        "replicate": _Key("field", False, _FIELD_DOC),
        "cell_name": _Key("field", False, _FIELD_DOC),
        "compound_id": _Key("field", False, _FIELD_DOC),
        "inchikey": _Key("field", False, _FIELD_DOC),
        "smiles": _Key("field", False, _FIELD_DOC),
        "pubchem_cid": _Key("field", False, _FIELD_DOC),
        "n_cells": _Key("field", False, _FIELD_DOC),
    },
    "dose": {
        "column": _Key("str", False, "the dose column"),
        "value": _Key("number", False, "one dose for every treated sample"),
        "unit_column": _Key("str", False, "the dose unit column"),
        "unit": _Key("str", False, "the dose unit, e.g. 'uM'"),
        "molecular_weight_column": _Key("str", False, "g/mol, for mass concentrations"),
    },
    "time": {
        "column": _Key("str", False, "the time column"),
        "value": _Key("number", False, "one time for every sample"),
        "unit_column": _Key("str", False, "the time unit column"),
        "unit": _Key("str", False, "the time unit, e.g. 'h'"),
    },
    "controls": {
        "control_values": _Key("list[str]", False, "values that mark vehicle controls"),
        "control_column": _Key("str", False, "the column control_values are looked up in"),
        "pert_type_column": _Key("str", False, "a column giving each sample's type"),
        "pert_type_map": _Key("map[str]", False, f"its values → one of {PERT_TYPES}"),
        "positive_control_values": _Key("list[str]", False, "values of positive controls"),
        "positive_control_column": _Key("str", False, "the column they are looked up in"),
        "control_match_keys": _Key("list[str]", False, "columns shared with the vehicle"),
    },
    "genes": {
        "id_type": _Key("str", True, "the kind of gene ids", GENE_ID_TYPES),
        "id_column": _Key("str", False, "the column holding gene ids"),
        "symbol_column": _Key("str", False, "the column holding gene symbols"),
        "annotation": _Key("str", False, "a gene table with id_column and symbol_column"),
    },
}
_EXCLUDE: dict[str, _Key] = {
    "column": _Key("str", True, "the metadata column to test"),
    "equals": _Key("scalar", False, "the value that excludes a sample"),
    "values": _Key("list[scalar]", False, "the values that exclude a sample"),
    "reason": _Key("str", True, "the ledger reason, e.g. 'qc_fail'"),
}
_TOP: dict[str, str] = {
    "version": "the mapping format version (1)",
    **{t: f"the [{t}] table" for t in _SCHEMA},
    "exclude": "the [[exclude]] rules",
}
_REQUIRED_TABLES = ("input", "fields", "dose", "time", "controls", "genes")


@dataclass(frozen=True)
class FieldSpec:
    """A schema field taken from a metadata ``column`` or set to a fixed ``value``."""

    column: str | None = None
    value: Any = None


@dataclass(frozen=True)
class QuantitySpec:
    """How a dose or a time is given (see the module docs)."""

    column: str | None = None
    value: float | None = None
    unit_column: str | None = None
    unit: str | None = None
    molecular_weight_column: str | None = None


@dataclass(frozen=True)
class ExcludeRule:
    """Samples whose ``column`` holds one of ``values`` go to the ledger as ``reason``."""

    column: str
    values: tuple[Any, ...]
    reason: str


@dataclass(frozen=True)
class GenericMapping:
    """A validated mapping file (see :func:`load_mapping`)."""

    path: Path
    expression: Path
    value_kind: str
    metadata: Path | None
    orientation: str | None
    layer: str | None
    id_column: str | None
    keep_columns: tuple[str, ...]
    fields: dict[str, FieldSpec]
    dose: QuantitySpec
    time: QuantitySpec
    control_values: tuple[str, ...]
    control_column: str | None
    pert_type_column: str | None
    pert_type_map: dict[str, str]
    positive_control_values: tuple[str, ...]
    positive_control_column: str | None
    control_match_keys: tuple[str, ...]
    exclude: tuple[ExcludeRule, ...]
    gene_id_type: str
    gene_id_column: str | None
    symbol_column: str | None
    annotation: Path | None
    allow_non_integer: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_h5ad(self) -> bool:
        return self.expression.suffix.lower() == ".h5ad"

    def files(self) -> list[tuple[str, Path]]:
        """The data files the mapping names, keyed by the mapping key naming each."""
        named = (
            ("input.expression", self.expression),
            ("input.metadata", self.metadata),
            ("genes.annotation", self.annotation),
        )
        return [(key, p) for key, p in named if p is not None]

    def columns(self) -> dict[str, str]:
        """Every metadata column the mapping names, keyed by the mapping key naming it."""
        out: dict[str, str] = {}
        if self.id_column and (self.metadata is not None or self.is_h5ad):
            out["samples.id_column"] = self.id_column
        for i, c in enumerate(self.keep_columns):
            out[f"samples.keep_columns[{i}]"] = c
        for name, spec in self.fields.items():
            if spec.column is not None:
                out[f"fields.{name}"] = spec.column
        for what, q in (("dose", self.dose), ("time", self.time)):
            for key in ("column", "unit_column", "molecular_weight_column"):
                col = getattr(q, key, None)
                if col is not None:
                    out[f"{what}.{key}"] = col
        for key in ("control_column", "pert_type_column", "positive_control_column"):
            col = getattr(self, key)
            if col is not None:
                out[f"controls.{key}"] = col
        for i, c in enumerate(self.control_match_keys):
            out[f"controls.control_match_keys[{i}]"] = c
        for i, rule in enumerate(self.exclude):
            out[f"exclude[{i}].column"] = rule.column
        return out


def _toml_type(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({value!r})"
    if isinstance(value, int):
        return f"an integer ({value!r})"
    if isinstance(value, float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


class _Checker:
    """Validates the raw TOML against :data:`_SCHEMA`, naming the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, msg: str) -> MappingError:
        return MappingError(f"{self.path}: key {key!r}: {msg}")

    def unknown(self, table: Mapping[str, Any], known: Sequence[str], where: str) -> None:
        for k in table:
            if k not in known:
                close = difflib.get_close_matches(k, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                scope = f"[{where}]" if where else "the top level"
                raise MappingError(
                    f"{self.path}: unknown key {(where + '.' if where else '') + k!r}{hint} "
                    f"Known keys of {scope}: {sorted(known)}"
                )

    def value(self, key: str, spec: _Key, v: Any) -> Any:
        kind = spec.kind
        if kind == "str":
            if not isinstance(v, str) or not v.strip():
                raise self.fail(
                    key, f"must be a non-empty string ({spec.doc}), found {_toml_type(v)}"
                )
            if spec.choices and v not in spec.choices:
                raise self.fail(key, f"must be one of {list(spec.choices)}, found {v!r}")
            return v.strip()
        if kind == "bool":
            if not isinstance(v, bool):
                raise self.fail(key, f"must be true or false ({spec.doc}), found {_toml_type(v)}")
            return v
        if kind == "number":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise self.fail(key, f"must be a number ({spec.doc}), found {_toml_type(v)}")
            return float(v)
        if kind == "scalar":
            if not isinstance(v, (str, int, float, bool)):
                raise self.fail(
                    key, f"must be a string, number or boolean ({spec.doc}), found {_toml_type(v)}"
                )
            return v
        if kind in ("list[str]", "list[scalar]"):
            if not isinstance(v, list):
                raise self.fail(key, f"must be an array ({spec.doc}), found {_toml_type(v)}")
            inner = _Key("str" if kind == "list[str]" else "scalar", True, spec.doc)
            return tuple(self.value(f"{key}[{i}]", inner, x) for i, x in enumerate(v))
        if kind == "map[str]":
            if not isinstance(v, dict):
                raise self.fail(key, f"must be a table ({spec.doc}), found {_toml_type(v)}")
            out = {}
            for k, x in v.items():
                if not isinstance(x, str):
                    raise self.fail(f"{key}.{k}", f"must be a string, found {_toml_type(x)}")
                out[str(k)] = x
            return out
        if kind == "field":
            if isinstance(v, str):
                return FieldSpec(column=self.value(key, _Key("str", True, spec.doc), v))
            if isinstance(v, dict):
                self.unknown(v, ("column", "value"), key)
                if ("column" in v) == ("value" in v):
                    raise self.fail(key, "give exactly one of 'column' or 'value'")
                if "column" in v:
                    return FieldSpec(
                        column=self.value(f"{key}.column", _Key("str", True, ""), v["column"])
                    )
                return FieldSpec(
                    value=self.value(f"{key}.value", _Key("scalar", True, spec.doc), v["value"])
                )
            raise self.fail(key, f"must be {_FIELD_DOC}, found {_toml_type(v)}")
        raise AssertionError(kind)  # pragma: no cover

    def table(self, raw: Mapping[str, Any], name: str, schema: dict[str, _Key]) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.fail(name, f"must be a table ([{name}]), found {_toml_type(raw)}")
        self.unknown(raw, list(schema), name)
        out: dict[str, Any] = {}
        for k, spec in schema.items():
            if k not in raw:
                if spec.required:
                    raise MappingError(
                        f"{self.path}: missing required key '{name}.{k}' ({spec.doc})"
                    )
                continue
            out[k] = self.value(f"{name}.{k}", spec, raw[k])
        return out


def _quantity(chk: _Checker, t: dict[str, Any], name: str) -> QuantitySpec:
    if ("column" in t) == ("value" in t):
        raise chk.fail(name, "give exactly one of 'column' (a metadata column) or 'value'")
    if "unit_column" in t and "unit" in t:
        raise chk.fail(name, "give 'unit_column' or 'unit', not both")
    if "value" in t:
        if "unit" not in t:
            raise chk.fail(f"{name}.value", f"a fixed {name} needs '{name}.unit'")
        if t["value"] < 0:
            raise chk.fail(f"{name}.value", f"must be >= 0, found {t['value']}")
    return QuantitySpec(
        column=t.get("column"),
        value=t.get("value"),
        unit_column=t.get("unit_column"),
        unit=t.get("unit"),
        molecular_weight_column=t.get("molecular_weight_column"),
    )


def _file(chk: _Checker, base: Path, key: str, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def load_mapping(path: str | os.PathLike[str]) -> GenericMapping:
    """Read and validate a mapping file; no data file is opened.

    Raises
    ------
    FileNotFoundError
        If the mapping file does not exist.
    MappingError
        For TOML syntax errors, unknown keys (with the closest known key), missing
        required keys, wrong types and inconsistent choices, naming the file and key.
    """
    p = require_file(path, what="mapping file (TOML)")
    try:
        with open(p, "rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise MappingError(f"{p}: not valid TOML: {err}") from err
    except UnicodeDecodeError as err:
        raise MappingError(f"{p}: not a UTF-8 text file: {err}") from err
    chk = _Checker(p)
    chk.unknown(raw, list(_TOP), "")
    version = raw.get("version", 1)
    if version != 1 or isinstance(version, bool):
        raise chk.fail("version", f"must be 1 (the only mapping format so far), found {version!r}")
    for name in _REQUIRED_TABLES:
        if name not in raw:
            raise MappingError(f"{p}: missing required table [{name}] ({_TOP[name]})")
    t = {name: chk.table(raw.get(name, {}), name, schema) for name, schema in _SCHEMA.items()}
    base = p.parent
    inp = t["input"]
    expression = _file(chk, base, "input.expression", inp["expression"])
    is_h5ad = expression.suffix.lower() == ".h5ad"
    name = expression.name.lower()
    if not is_h5ad and not name.endswith(TABLE_SUFFIXES):
        raise chk.fail(
            "input.expression",
            f"must be a .h5ad or a table ({', '.join(TABLE_SUFFIXES)}), found {expression.name!r}",
        )
    if is_h5ad:
        if inp.get("orientation", "samples_x_genes") != "samples_x_genes":
            raise chk.fail("input.orientation", "an .h5ad is always samples × genes; remove it")
    else:
        for k in ("orientation", "metadata"):
            if k not in inp:
                raise MappingError(
                    f"{p}: missing required key 'input.{k}' ({_SCHEMA['input'][k].doc}; "
                    "required when the expression is a table)"
                )
        if "layer" in inp:
            raise chk.fail("input.layer", "applies to .h5ad input only")
    if "allow_non_integer" in inp and inp["value_kind"] != "counts":
        raise chk.fail("input.allow_non_integer", "applies to value_kind = 'counts' only")
    metadata = _file(chk, base, "input.metadata", inp["metadata"]) if "metadata" in inp else None
    samples = t["samples"]
    if metadata is not None and "id_column" not in samples:
        raise MappingError(
            f"{p}: missing required key 'samples.id_column' (the metadata column naming "
            "the samples; required with input.metadata)"
        )
    fields: dict[str, FieldSpec] = t["fields"]
    if ("well_row" in fields) != ("well_column" in fields):
        raise chk.fail("fields.well_row", "give both well_row and well_column, or neither")
    if "well" in fields and "well_row" in fields:
        raise chk.fail("fields.well", "give well, or well_row + well_column, not both")
    dose = _quantity(chk, t["dose"], "dose")
    time = _quantity(chk, t["time"], "time")
    ctl = t["controls"]
    if ("control_values" in ctl) == ("pert_type_column" in ctl):
        raise chk.fail(
            "controls",
            'give exactly one control rule: control_values = [...] (e.g. ["DMSO"]) or '
            "pert_type_column with pert_type_map",
        )
    if ("pert_type_column" in ctl) != ("pert_type_map" in ctl):
        raise chk.fail("controls.pert_type_map", "pert_type_column and pert_type_map go together")
    ptmap = ctl.get("pert_type_map", {})
    for k, v in ptmap.items():
        if v not in PERT_TYPES:
            raise chk.fail(
                f"controls.pert_type_map.{k}", f"must be one of {PERT_TYPES}, found {v!r}"
            )
    if ptmap and "vehicle" not in ptmap.values():
        raise chk.fail("controls.pert_type_map", "maps no value to 'vehicle'; vehicles are needed")
    perturbagen = fields["perturbagen"]
    for key in ("control_column", "positive_control_column"):
        values_key = "control_values" if key == "control_column" else "positive_control_values"
        if values_key in ctl and key not in ctl and perturbagen.column is None:
            raise chk.fail(
                f"controls.{key}",
                f"perturbagen is a fixed value, so {values_key} needs {key} (a metadata column)",
            )
    rules = raw.get("exclude", [])
    if not isinstance(rules, list):
        raise chk.fail(
            "exclude", f"must be an array of tables ([[exclude]]), found {_toml_type(rules)}"
        )
    exclude = []
    for i, r in enumerate(rules):
        e = chk.table(r, f"exclude[{i}]", _EXCLUDE)
        if ("equals" in e) == ("values" in e):
            raise chk.fail(f"exclude[{i}]", "give exactly one of 'equals' or 'values'")
        if not _REASON.match(e["reason"]):
            raise chk.fail(
                f"exclude[{i}].reason",
                f"must be a lower-case identifier such as 'qc_fail', found {e['reason']!r}",
            )
        values = (e["equals"],) if "equals" in e else e["values"]
        exclude.append(ExcludeRule(e["column"], tuple(values), e["reason"]))
    reserved = {c.name for c in SAMPLE_COLUMNS} | {"dose_source", "compound_smiles"}
    for key, cols in (
        ("samples.keep_columns", samples.get("keep_columns", ())),
        ("controls.control_match_keys", ctl.get("control_match_keys", ())),
    ):
        clash = [c for c in cols if c in reserved]
        if clash:
            raise chk.fail(
                key,
                f"{clash} are names of Samples obs columns the adapter fills; map them in "
                "[fields] instead, or rename the metadata column",
            )
    genes = t["genes"]
    annotation = (
        _file(chk, base, "genes.annotation", genes["annotation"]) if "annotation" in genes else None
    )
    if annotation is not None and "id_column" not in genes:
        raise MappingError(
            f"{p}: missing required key 'genes.id_column' (needed with genes.annotation)"
        )
    if (
        not is_h5ad
        and annotation is None
        and inp.get("orientation") == "samples_x_genes"
        and "symbol_column" in genes
    ):
        raise chk.fail(
            "genes.symbol_column",
            "a samples × genes table has no symbol column; give genes.annotation (a gene table)",
        )
    return GenericMapping(
        path=p,
        expression=expression,
        value_kind=inp["value_kind"],
        metadata=metadata,
        orientation=inp.get("orientation"),
        layer=inp.get("layer"),
        id_column=samples.get("id_column"),
        keep_columns=samples.get("keep_columns", ()),
        fields=fields,
        dose=dose,
        time=time,
        control_values=ctl.get("control_values", ()),
        control_column=ctl.get("control_column"),
        pert_type_column=ctl.get("pert_type_column"),
        pert_type_map=ptmap,
        positive_control_values=ctl.get("positive_control_values", ()),
        positive_control_column=ctl.get("positive_control_column"),
        control_match_keys=ctl.get("control_match_keys", ()),
        exclude=tuple(exclude),
        gene_id_type=genes["id_type"],
        gene_id_column=genes.get("id_column"),
        symbol_column=genes.get("symbol_column"),
        annotation=annotation,
        allow_non_integer=inp.get("allow_non_integer", False),
        raw=raw,
    )


# ------------------------------------------------------------------------------------
# Metadata
# ------------------------------------------------------------------------------------


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column as stripped strings, missing values as ``""``."""
    out = pd.DataFrame(index=frame.index.astype(str))
    for c in frame.columns:
        s = frame[c].astype(object)
        out[str(c)] = s.where(s.notna(), "").astype(str).str.strip().to_numpy()
    return out


def _first(values: Any, n: int = _N_SHOW) -> list[Any]:
    return list(dict.fromkeys(str(v) for v in values))[:n]


@dataclass
class _Meta:
    table: pd.DataFrame  # strings, indexed by sample id
    where: str  # the file the metadata came from


def _read_metadata(m: GenericMapping, h5ad_obs: pd.DataFrame | None) -> _Meta:
    if m.metadata is not None:
        where = str(m.metadata)
        table = read_table(m.metadata, what=f"metadata table named in {m.path.name} input.metadata")
    elif h5ad_obs is not None:  # an .h5ad's obs
        where = f"{m.expression} obs"
        table = _as_text(h5ad_obs)
        if m.id_column is None:
            table.insert(0, "__obs_names__", table.index.to_numpy())
    else:
        raise _missing_key(m, "input.metadata")
    table = table.reset_index(drop=True) if m.metadata is not None else table
    missing = [(k, c) for k, c in m.columns().items() if c not in table.columns]
    if missing:
        key, col = missing[0]
        raise SchemaError(
            col,
            f"column named by {m.path.name} key {key!r} is not in the metadata"
            + (f" (also missing: {[c for _, c in missing[1:6]]})" if len(missing) > 1 else "")
            + f"; columns present: {list(table.columns)[:20]}",
            where=where,
        )
    id_col = m.id_column or "__obs_names__"
    ids = table[id_col].astype(str).str.strip()
    empty = is_missing(ids)
    if empty.any():
        raise SchemaError(
            id_col, "sample ids must not be missing", _first(np.flatnonzero(empty)), where=where
        )
    check_unique(ids, column=id_col, where=where, what="sample ids")
    table.index = pd.Index(ids.to_numpy(), dtype=str)
    return _Meta(table, where)


def _field_values(spec: FieldSpec | None, meta: _Meta, n: int) -> NDArray[np.object_] | None:
    if spec is None:
        return None
    if spec.column is not None:
        return meta.table[spec.column].to_numpy(dtype=object)
    return np.full(n, str(spec.value), dtype=object)


def _matches(values: pd.Series, wanted: Sequence[Any]) -> NDArray[np.bool_]:
    """Case-insensitive match of strings; numbers and booleans compare as values."""
    s = pd.Series(values).astype(str).str.strip()
    out = np.zeros(len(s), dtype=bool)
    low = s.str.lower()
    for w in wanted:
        if isinstance(w, bool):
            words = (
                ("true", "t", "1", "1.0", "yes", "y")
                if w
                else ("false", "f", "0", "0.0", "no", "n")
            )
            out |= low.isin(words).to_numpy()
        elif isinstance(w, (int, float)):
            num = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
            out |= num == float(w)
        else:
            out |= (low == str(w).strip().lower()).to_numpy()
    return out


def _pert_types(m: GenericMapping, meta: _Meta, pert: NDArray[np.object_]) -> NDArray[np.object_]:
    t = meta.table
    if m.pert_type_column is not None:
        col = m.pert_type_column
        raw = t[col].astype(str).str.strip()
        lookup = {k.strip().lower(): v for k, v in m.pert_type_map.items()}
        mapped = raw.str.lower().map(lookup)
        bad = mapped.isna().to_numpy()
        if bad.any():
            raise SchemaError(
                col,
                f"{int(bad.sum())} samples have values that {m.path.name} controls.pert_type_map "
                f"does not map: {_first(raw[bad])}; add them to pert_type_map (as one of "
                f"{PERT_TYPES})",
                where=meta.where,
            )
        out = mapped.to_numpy(dtype=object)
    else:
        ctl_col = m.control_column
        vals = t[ctl_col] if ctl_col is not None else pd.Series(pert, index=t.index)
        out = np.where(_matches(vals, m.control_values), "vehicle", "compound").astype(object)
        if not (out == "vehicle").any():
            logger.warning(
                "%s: no sample matches controls.control_values %s", m.path, list(m.control_values)
            )
    if m.positive_control_values:
        pos_col = m.positive_control_column
        vals = t[pos_col] if pos_col is not None else pd.Series(pert, index=t.index)
        pos = _matches(vals, m.positive_control_values) & (out != "vehicle")
        out[pos] = "positive_control"
    return out


def _quantity_values(
    q: QuantitySpec,
    meta: _Meta,
    rows: NDArray[np.bool_],
    *,
    what: str,
    mapping: Path,
) -> tuple[NDArray[np.float64], NDArray[np.object_], NDArray[np.object_]]:
    """Numbers and units of ``rows`` (others NaN / ""), and the value as written."""
    t = meta.table
    n = len(t)
    nums = np.full(n, np.nan)
    units = np.full(n, "", dtype=object)
    if q.value is not None:
        nums[:] = q.value
        units[:] = q.unit
        return nums, units, np.full(n, f"{q.value:g} {q.unit}", dtype=object)
    if q.column is None:
        raise _missing_key(mapping, f"{what}.column")
    written = t[q.column].to_numpy(dtype=object)
    sub = t[q.column][rows]
    if q.unit_column is not None:
        nums[rows] = parse_numbers(sub, column=q.column, where=meta.where)
        units[rows] = t[q.unit_column][rows].to_numpy(dtype=object)
        written = (t[q.column] + " " + t[q.unit_column]).to_numpy(dtype=object)
    else:
        v, u = split_quantity(sub, column=q.column, where=meta.where, default_unit=q.unit or "")
        nums[rows], units[rows] = v, u
        no_unit = rows & np.isfinite(nums) & (units == "")
        if no_unit.any():
            raise MappingError(
                f"{meta.where}: {int(no_unit.sum())} values of the {what} column {q.column!r} "
                f"have no unit, e.g. {_first(t[q.column][no_unit])}; set {what}.unit or "
                f"{what}.unit_column in {mapping}"
            )
    return nums, units, written


# ------------------------------------------------------------------------------------
# Expression
# ------------------------------------------------------------------------------------


@dataclass
class _Expression:
    samples: pd.Index  # every sample of the expression file
    genes: pd.Index | None  # known before reading (None: read with the data)
    symbols: NDArray[np.object_] | None
    read: Any  # callable(kept sample ids) -> samples × genes matrix


def _table_expression(m: GenericMapping, chunk_size: int) -> _Expression:
    path = require_file(
        m.expression, what=f"expression table named in {m.path.name} input.expression"
    )
    where = str(path)
    if m.orientation == "genes_x_samples":
        gene_col, columns, _ = wide_table_columns(path, where=where)
        if m.annotation is None and m.gene_id_column is not None and m.gene_id_column != gene_col:
            raise SchemaError(
                m.gene_id_column,
                f"{m.path.name} genes.id_column must name the first column of a genes × samples "
                f"table (the gene ids); the first column is {gene_col!r}",
                where=where,
            )
        symbols = None
        sym_col = m.symbol_column if m.annotation is None else None
        if sym_col is not None:
            if sym_col not in columns:
                raise SchemaError(
                    sym_col,
                    f"column named by {m.path.name} key 'genes.symbol_column' is not in the "
                    f"expression table; columns: {[gene_col, *columns][:12]}",
                    where=where,
                )
            columns = [c for c in columns if c != sym_col]
            symbols = _read_columns(path, [gene_col, sym_col])[sym_col].to_numpy(dtype=object)

        def read(ids: Sequence[str]) -> tuple[pd.Index, Any]:
            wc = read_wide_counts(
                path, what="expression table", samples=list(ids), chunk_size=chunk_size
            )
            return wc.genes, wc.x

        return _Expression(pd.Index(columns, dtype=str), None, symbols, read)
    # samples × genes
    header = _header(path)
    sample_col, gene_names = header[0], header[1:]
    check_unique(pd.Index(gene_names), column="header", where=where, what="gene columns")
    samples = pd.Index(_read_columns(path, [sample_col])[sample_col].astype(str), dtype=str)
    check_unique(samples, column=sample_col, where=where, what="sample ids")

    def read_rows(ids: Sequence[str]) -> tuple[pd.Index, Any]:
        return pd.Index(gene_names, dtype=str), _read_sample_rows(
            path,
            sample_col,
            gene_names,
            ids,
            counts=m.value_kind == "counts",
            chunk_size=chunk_size,
        )

    return _Expression(samples, pd.Index(gene_names, dtype=str), None, read_rows)


def _header(path: Path) -> list[str]:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            names = list(pq.ParquetFile(path).schema_arrow.names)
        except (OSError, ValueError) as err:
            raise FormatError(f"{path}: cannot read the parquet expression table: {err}") from err
        return [n for n in names if not n.startswith("__index")]
    with checked_text(path, what="expression table") as fh:
        head = pd.read_csv(fh, sep=_sep(path), nrows=0)
    return [str(c) for c in head.columns]


def _sep(path: Path) -> str:
    return "," if path.name.lower().removesuffix(".gz").endswith(".csv") else "\t"


def _read_columns(path: Path, cols: list[str]) -> pd.DataFrame:
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path, columns=cols).astype(str)
    with checked_text(path, what="expression table") as fh:
        return pd.read_csv(fh, sep=_sep(path), usecols=cols, dtype=str, keep_default_na=False)


def _check_values(
    block: NDArray[np.float64],
    *,
    where: str,
    rows: Sequence[str],
    cols: Sequence[str],
    counts: bool,
) -> None:
    bad = ~np.isfinite(block)
    what = "missing or not numbers"
    if counts and not bad.any():
        bad = block < 0
        what = "negative counts"
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise FormatError(
            f"{where}: {int(bad.sum())} value(s) are {what}, first {block[i, j]!r} at sample "
            f"{rows[i]!r}, gene {cols[j]!r}"
        )


def _read_sample_rows(
    path: Path,
    sample_col: str,
    genes: list[str],
    ids: Sequence[str],
    *,
    counts: bool,
    chunk_size: int,
) -> Any:
    """Rows ``ids`` of a samples × genes table, in that order (CSR for counts)."""
    wanted = pd.Index([str(i) for i in ids])
    blocks: list[Any] = []
    names: list[pd.Index] = []
    where = str(path)

    def take(frame: pd.DataFrame) -> None:
        frame.index = frame.index.astype(str)
        frame = frame[frame.index.isin(wanted)]
        if not len(frame):
            return
        num = frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        _check_values(num, where=where, rows=list(frame.index), cols=genes, counts=counts)
        blocks.append(sparse.csr_matrix(num) if counts else num)
        names.append(frame.index)

    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=chunk_size, columns=[sample_col, *genes]):
            take(batch.to_pandas().set_index(sample_col))
    else:
        with (
            checked_text(path, what="expression table") as fh,
            pd.read_csv(fh, sep=_sep(path), index_col=0, chunksize=chunk_size, dtype=str) as reader,
        ):
            for chunk in reader:
                take(chunk.loc[:, genes])
    order = (names[0].append(names[1:]) if names else pd.Index([], dtype=str)).get_indexer(wanted)
    if not blocks:
        return sparse.csr_matrix((0, len(genes))) if counts else np.zeros((0, len(genes)))
    x = sparse.vstack(blocks).tocsr() if counts else np.vstack(blocks)
    return x[order]


def _h5ad_expression(
    m: GenericMapping, fh: Any, obs: pd.DataFrame, var: pd.DataFrame
) -> _Expression:
    where = str(m.expression)
    if m.metadata is None and m.id_column is not None:
        samples = pd.Index(_as_text(obs)[m.id_column].to_numpy(), dtype=str)
    else:
        samples = pd.Index(obs.index.astype(str), dtype=str)
    check_unique(samples, column="obs_names", where=where, what="sample ids")
    text_var = _as_text(var)
    for key, col in (
        ("genes.id_column", m.gene_id_column),
        ("genes.symbol_column", m.symbol_column),
    ):
        if m.annotation is None and col is not None and col not in text_var.columns:
            raise SchemaError(
                col,
                f"column named by {m.path.name} key {key!r} is not in var; var columns: "
                f"{list(var.columns)[:12]}",
                where=where,
            )
    if m.annotation is None and m.gene_id_column is not None:
        genes = pd.Index(text_var[m.gene_id_column].to_numpy(), dtype=str)
    else:
        genes = pd.Index(var.index.astype(str), dtype=str)
    symbols = None
    if m.annotation is None and m.symbol_column is not None:
        symbols = text_var[m.symbol_column].to_numpy(dtype=object)
    key = "X" if m.layer is None else f"layers/{m.layer}"
    counts = m.value_kind == "counts"

    def read(ids: Sequence[str]) -> tuple[pd.Index, Any]:
        pos = samples.get_indexer(pd.Index(ids, dtype=str))
        order = np.argsort(pos, kind="stable")
        x = h5ad_rows(fh, key, pos[order])
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        x = x[back]
        vals = x.data
        bad = ~np.isfinite(vals) | ((vals < 0) if counts else np.zeros(vals.shape, dtype=bool))
        if bad.any():
            what = "missing, infinite or negative" if counts else "missing or infinite"
            raise FormatError(
                f"{where}: {int(bad.sum())} values of {key} are {what}, e.g. {_first(vals[bad])}"
            )
        return genes, (x if counts else x.toarray())

    return _Expression(samples, genes, symbols, read)


def _annotation_symbols(m: GenericMapping, genes: pd.Index) -> NDArray[np.object_] | None:
    if m.annotation is None:
        return None
    where = str(m.annotation)
    table = read_table(
        m.annotation, what=f"gene annotation named in {m.path.name} genes.annotation"
    )
    if m.gene_id_column is None:
        raise _missing_key(m, "genes.id_column")
    need = [c for c in (m.gene_id_column, m.symbol_column) if c is not None]
    for c in need:
        if c not in table.columns:
            key = "genes.id_column" if c == m.gene_id_column else "genes.symbol_column"
            raise SchemaError(
                c,
                f"column named by {m.path.name} key {key!r} is not in the gene annotation; "
                f"columns present: {list(table.columns)[:12]}",
                where=where,
            )
    if m.symbol_column is None:
        return None
    ids = table[m.gene_id_column].astype(str).str.strip()
    check_unique(ids, column=m.gene_id_column, where=where, what="gene ids")
    sym = pd.Series(table[m.symbol_column].to_numpy(), index=ids.to_numpy())
    return sym.reindex(genes).to_numpy(dtype=object)


def _check_gene_ids(
    genes: pd.Index, spike: NDArray[np.bool_], m: GenericMapping, where: str
) -> None:
    pattern = _GENE_ID_PATTERN.get(m.gene_id_type)
    ids = genes.astype(str)
    empty = is_missing(ids.to_numpy())
    if empty.any():
        raise SchemaError(
            "gene id", "gene ids must not be missing", _first(np.flatnonzero(empty)), where=where
        )
    if pattern is None:
        return
    bad = ~spike & ~np.array([bool(pattern.match(g)) for g in ids], dtype=bool)
    if bad.any():
        expected = (
            "Ensembl gene ids (ENSG00000141510)"
            if m.gene_id_type == "ensembl"
            else "Entrez ids (7157)"
        )
        raise SchemaError(
            m.gene_id_column or "gene id",
            f"{int(bad.sum())} of {len(ids)} gene ids are not {expected}, as {m.path.name} "
            f"genes.id_type = {m.gene_id_type!r} says; fix the ids or id_type",
            _first(ids[bad]),
            where=where,
        )


# ------------------------------------------------------------------------------------
# The adapter
# ------------------------------------------------------------------------------------


def read_generic(
    mapping: str | os.PathLike[str] | GenericMapping, *, chunk_size: int = 256
) -> IngestResult:
    """Read the data a mapping file describes into Samples, accounting for every sample.

    Parameters
    ----------
    mapping
        The TOML mapping file (or a mapping loaded with :func:`load_mapping`); see the
        module documentation and ``docs/generic.md`` for its keys.
    chunk_size
        Samples read from an expression table at a time.

    Returns
    -------
    IngestResult
        Samples (counts or log expression, as ``input.value_kind`` says) and the ledger
        of every input sample (stage ``ingest``) and gene (stage ``ingest_genes``).

    Raises
    ------
    MappingError
        For a malformed mapping file (checked before any data is read).
    FileNotFoundError
        For a missing input file, naming the mapping key.
    SchemaError
        For a column the mapping names that the data lack (naming file and column), or
        repeated sample/gene ids.
    FormatError, UnitError
        For unparseable values or unknown units, naming file, column and values.

    Examples
    --------
    >>> res = read_generic("mapping.toml")  # doctest: +SKIP
    >>> res.ledger.summary()  # doctest: +SKIP
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, found {chunk_size}")
    m = mapping if isinstance(mapping, GenericMapping) else load_mapping(mapping)
    if m.metadata is not None:
        require_file(m.metadata, what=f"metadata table named in {m.path.name} input.metadata")
    if m.annotation is not None:
        require_file(m.annotation, what=f"gene annotation named in {m.path.name} genes.annotation")
    if m.is_h5ad:
        path = require_file(m.expression, what=f".h5ad named in {m.path.name} input.expression")
        obs, var, fh = open_h5ad(path, layer=m.layer)
        try:
            expr = _h5ad_expression(m, fh, obs, var)
            return _ingest(m, expr, obs, chunk_size)
        finally:
            fh.close()
    expr = _table_expression(m, chunk_size)
    return _ingest(m, expr, None, chunk_size)


def _ingest(
    m: GenericMapping, expr: _Expression, h5ad_obs: pd.DataFrame | None, chunk_size: int
) -> IngestResult:
    meta = _read_metadata(m, h5ad_obs)
    t = meta.table
    n_meta = len(t)
    extra = expr.samples[~expr.samples.isin(t.index)]
    ids = pd.Index(t.index).append(extra)
    pad = np.zeros(len(extra), dtype=bool)

    def full(mask: Any) -> NDArray[np.bool_]:
        return np.concatenate([np.asarray(mask, dtype=bool), pad])

    def full_detail(d: Any) -> NDArray[np.object_]:
        arr = np.asarray(d, dtype=object)
        if arr.ndim == 0:
            arr = np.full(n_meta, str(d), dtype=object)
        return np.concatenate([arr, np.full(len(extra), "", dtype=object)])

    pert = _field_values(m.fields.get("perturbagen"), meta, n_meta)
    if pert is None:
        raise _missing_key(m, "fields.perturbagen")
    pert_type = _pert_types(m, meta, pert)
    triage = Triage(ids)
    triage.drop(np.arange(len(ids)) >= n_meta, "missing_metadata", f"not in {meta.where}")
    triage.drop(
        full(~t.index.isin(expr.samples)), "missing_expression", f"not in {m.expression.name}"
    )
    for rule in m.exclude:
        hit = _matches(t[rule.column], rule.values)
        if not hit.any():
            logger.info(
                "%s: exclude rule %s=%s matches no sample", m.path, rule.column, rule.values
            )
        triage.drop(full(hit), rule.reason, full_detail(rule.column + "=" + t[rule.column]))
    for kind, why in DROP_REASON.items():
        src = t[m.pert_type_column] if m.pert_type_column is not None else pd.Series(pert)
        triage.drop(full(pert_type == kind), why, full_detail(src.astype(str).to_numpy()))

    is_vehicle = pert_type == "vehicle"
    treated = (pert_type == "compound") & triage.open[:n_meta]
    d_num, d_unit, d_written = _quantity_values(m.dose, meta, treated, what="dose", mapping=m.path)
    dose = np.where(is_vehicle, 0.0, np.nan)
    unit_missing = treated & np.isfinite(d_num) & is_missing(d_unit)
    check = treated & np.isfinite(d_num) & ~unit_missing
    mw = None
    if m.dose.molecular_weight_column is not None:
        mw = parse_numbers(
            t[m.dose.molecular_weight_column][check],
            column=m.dose.molecular_weight_column,
            where=meta.where,
        )
    if check.any():
        where_u = f"{meta.where} column {m.dose.unit_column or m.dose.column or 'dose'!r}"
        parsed = parse_dose(d_num[check], d_unit[check], molecular_weight=mw, where=where_u)
        dose[check] = parsed["pert_dose_uM"].to_numpy()
    triage.drop(
        full(treated & ~(np.isfinite(dose) & (dose > 0))),
        "missing_dose",
        full_detail(np.array([f"dose={w}" for w in d_written], dtype=object)),
    )
    timed = triage.open[:n_meta]
    t_num, t_unit, t_written = _quantity_values(m.time, meta, timed, what="time", mapping=m.path)
    time = np.full(n_meta, np.nan)
    tcheck = timed & np.isfinite(t_num) & ~is_missing(t_unit)
    if tcheck.any():
        where_t = f"{meta.where} column {m.time.unit_column or m.time.column or 'time'!r}"
        time[tcheck] = parse_time(t_num[tcheck], t_unit[tcheck], where=where_t)
    triage.drop(
        full(~(np.isfinite(time) & (time >= 0))),
        "missing_time",
        full_detail(np.array([f"time={w}" for w in t_written], dtype=object)),
    )
    ledger = Ledger()
    triage.record(ledger, stage=STAGE, kept_detail=full_detail(pert_type))
    kept = np.flatnonzero(triage.kept[:n_meta])

    obs = _obs(m, meta, kept, pert, pert_type, dose, time, d_written)
    kept_ids = list(t.index[kept])
    genes, x = expr.read(kept_ids)
    if expr.genes is not None and not genes.equals(expr.genes):
        raise FormatError(f"{m.expression}: the gene ids changed between reads")  # pragma: no cover
    spike = spike_in_mask(genes)
    _check_gene_ids(genes, spike, m, str(m.expression))
    keep_gene = record_genes(ledger, genes, drops={"spike_in": (spike, "ERCC spike-in")})
    symbols = _annotation_symbols(m, genes)
    if symbols is None:
        symbols = expr.symbols
    sym = pd.Series(symbols if symbols is not None else genes.to_numpy(), dtype=object)
    sym = sym.where(~is_missing(sym), pd.Series(genes.to_numpy(), dtype=object))
    gene_pos = np.flatnonzero(keep_gene)
    var = pd.DataFrame(
        {"symbol": sym.to_numpy()[gene_pos].astype(str)},
        index=pd.Index(genes[gene_pos], name="gene_id", dtype=str),
    )
    x = x[:, gene_pos]
    inputs = [m.path, m.expression, *(p for p in (m.metadata, m.annotation) if p is not None)]
    params: dict[str, Any] = {
        "source": "generic",
        "mapping": str(m.path),
        "value_kind": m.value_kind,
        "gene_id_type": m.gene_id_type,
    }
    if m.allow_non_integer:
        params["allow_non_integer"] = True
    if m.value_kind == "counts":
        res: IngestResult = assemble(
            x,
            obs,
            var,
            accounts=Accounts(ledger, samples=ids, genes=genes),
            origin=Origin(inputs=inputs, params=params, where=meta.where),
            control_match_keys=m.control_match_keys,
            allow_non_integer=m.allow_non_integer,
        )
    else:
        from ..io import provenance
        from ..samples import build_samples

        ledger.check_accounts_for(ids, stage=STAGE)
        dense = _dense(x)
        prov = provenance(step="ingest", inputs=inputs, params=params)
        samples = build_samples(
            dense, obs, var, value_kind="log_expression", provenance=prov, where=meta.where
        )
        if m.control_match_keys:
            samples.uns["perturbridge"]["control_match_keys"] = list(m.control_match_keys)
        res = IngestResult(samples, ledger)
    res.samples.uns["perturbridge"]["gene_id_type"] = m.gene_id_type
    return res


def _dense(x: Any) -> NDArray[np.float64]:
    to_array = getattr(x, "toarray", None)
    return np.asarray(to_array() if to_array is not None else x, dtype=np.float64)


def _obs(
    m: GenericMapping,
    meta: _Meta,
    kept: NDArray[np.intp],
    pert: NDArray[np.object_],
    pert_type: NDArray[np.object_],
    dose: NDArray[np.float64],
    time: NDArray[np.float64],
    dose_written: NDArray[np.object_],
) -> pd.DataFrame:
    t = meta.table
    n = len(t)
    f = m.fields

    def values(name: str) -> NDArray[np.object_] | None:
        return _field_values(f.get(name), meta, n)

    def need(name: str) -> NDArray[np.object_]:
        v = values(name)
        if v is None:  # a required field: load_mapping made sure it is there
            raise MappingError(f"{m.path}: missing required key 'fields.{name}'")
        return required(name, v)

    def required(name: str, v: NDArray[np.object_]) -> NDArray[np.object_]:
        miss = is_missing(v[kept])
        if miss.any():
            spec = f.get(name)
            col = spec.column if spec is not None and spec.column else name
            raise SchemaError(
                col,
                f"{int(miss.sum())} kept samples have no {name} (mapped by {m.path.name} key "
                f"'fields.{name}'); fill the column, map a fixed value, or exclude these "
                "samples with an [[exclude]] rule",
                _first(t.index[kept][miss]),
                where=meta.where,
            )
        return v

    cell = need("cell_context")
    cell_name = values("cell_name")
    plate = need("plate")
    if "well_row" in f:
        row, col = need("well_row"), need("well_column")
        cols = (f["well_row"].column or "well_row", f["well_column"].column or "well_column")
        well = np.full(n, "", dtype=object)
        well[kept] = well_from_row_col(
            pd.Series(row[kept]), pd.Series(col[kept]), where=meta.where, columns=cols
        )
    elif "well" in f:
        well = need("well")
    else:
        well = t.index.to_numpy(dtype=object)
    obs = pd.DataFrame(
        {
            "dataset": required("dataset", values("dataset")),  # type: ignore[arg-type]
            "assay": required("assay", values("assay")),  # type: ignore[arg-type]
            "plate": plate,
            "well": well,
            "replicate": "",
            "cell_context": cell,
            "cell_name": cell if cell_name is None else required("cell_name", cell_name),
            "perturbagen": required("perturbagen", pert),
            "compound_id_source": pert,
            "compound_inchikey": None,
            "pubchem_cid": pd.NA,
            "pert_type": pert_type,
            "is_control": pert_type == "vehicle",
            "pert_dose_uM": dose,
            "pert_time_h": time,
            "n_cells": pd.NA,
            "dose_source": dose_written,
        },
        index=t.index,
    ).iloc[kept]
    cid = values("compound_id")
    if cid is not None:
        ids = pd.Series(cid[kept], index=obs.index)
        obs["compound_id_source"] = ids.where(~is_missing(ids), obs["perturbagen"]).to_numpy()
    key = values("inchikey")
    if key is not None:
        k = pd.Series(key[kept]).str.replace(r"(?i)^inchikey=", "", regex=True)
        miss = is_missing(k)
        bad = ~miss & ~k.str.fullmatch(_INCHIKEY.pattern).fillna(False).to_numpy()
        if bad.any():
            raise FormatError(
                f"{meta.where}: column {f['inchikey'].column!r} (fields.inchikey) has "
                f"{int(bad.sum())} values that are not standard InChIKeys: {_first(k[bad])}; "
                "expected e.g. BSYNRYMUTXBXSQ-UHFFFAOYSA-N"
            )
        obs["compound_inchikey"] = categorical(k.where(~miss, "").to_numpy())
    smiles = values("smiles")
    if smiles is not None:
        obs["compound_smiles"] = categorical(smiles[kept])
    for name in ("pubchem_cid", "n_cells"):
        v = values(name)
        if v is None:
            continue
        num_col = f[name].column or name
        num = parse_numbers(pd.Series(v[kept], index=obs.index), column=num_col, where=meta.where)
        frac = np.isfinite(num) & ((num != np.round(num)) | (num < 0))
        if frac.any():
            raise FormatError(
                f"{meta.where}: column {num_col!r} (fields.{name}) must hold whole numbers >= 0; "
                f"found {_first(num[frac])}"
            )
        obs[name] = to_int64(num)
    rep = values("replicate")
    if rep is not None:
        obs["replicate"] = required("replicate", rep)[kept]
    else:
        obs["replicate"] = replicate_rank(
            obs[["dataset", "cell_context", "compound_id_source", "pert_dose_uM", "pert_time_h"]],
            obs[["plate", "well"]],
        )
    for c in dict.fromkeys([*m.keep_columns, *m.control_match_keys]):
        obs[c] = categorical(t[c].to_numpy(dtype=object)[kept])
    obs["dose_source"] = categorical(obs["dose_source"])
    return obs


@register_source
class GenericSource(SourceAdapter):
    """Any .h5ad or expression table + metadata, described by a TOML mapping file."""

    name: ClassVar[str] = "generic"
    assay: ClassVar[str] = "any (declared in the mapping)"
    description: ClassVar[str] = (
        "any .h5ad or count/expression table + metadata, via a TOML mapping"
    )
    expected_files: ClassVar[tuple[str, ...]] = (
        "mapping.toml (see docs/generic.md)",
        ".h5ad, or a CSV/TSV/parquet table (genes × samples or samples × genes)",
        "metadata table (CSV/TSV/parquet; optional for .h5ad)",
    )
    value_kind: ClassVar[str] = "declared: counts or log_expression"
    cli_parameters: ClassVar[tuple[CliParameter, ...]] = (
        CliParameter("mapping", Path, "The mapping file (TOML).", required=True),
        CliParameter("chunk_size", int, "Rows read per chunk.", 256),
    )

    def declared_files(self, params: Mapping[str, Any]) -> list[tuple[str, Path]]:
        """The data files the mapping names, labelled ``mapping:<key>`` (e.g.
        ``mapping:input.expression``); none while the mapping file is absent.

        Raises
        ------
        MappingError
            For a malformed mapping file, as :func:`read_generic` would.
        """
        mapping = params.get("mapping")
        if isinstance(mapping, GenericMapping):
            m = mapping
        elif isinstance(mapping, (str, os.PathLike)) and Path(mapping).is_file():
            m = load_mapping(mapping)
        else:
            return []
        return [(f"mapping:{key}", p) for key, p in m.files()]

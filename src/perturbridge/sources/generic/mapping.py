"""The generic adapter's mapping file: its keys (as data), their checks, the parsed mapping.

:func:`load_mapping` reads a mapping file with :class:`~perturbridge.io._toml.TomlReader`
and reports every problem of the file at once (unknown keys with the closest known key,
missing required keys, wrong types, inconsistent choices), naming the file and the keys;
no data file is opened. The keys are documented in :mod:`perturbridge.sources.generic`
and ``docs/generic.md``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import FormatError
from ...io._toml import INVALID, Key, TomlReader, describe, load_toml
from ...schema import PERT_TYPES, SAMPLE_COLUMNS, VALUE_KINDS
from .._tables import require_file

__all__ = [
    "ExcludeRule",
    "FieldSpec",
    "GenericMapping",
    "MappingError",
    "QuantitySpec",
    "load_mapping",
    "missing_key",
]

ORIENTATIONS = ("genes_x_samples", "samples_x_genes")
GENE_ID_TYPES = ("ensembl", "symbol", "entrez")
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".csv.gz", ".tsv.gz", ".txt.gz")
_REASON = re.compile(r"^[a-z][a-z0-9_]*$")


class MappingError(FormatError):
    """A mapping file is malformed: unknown or missing keys, wrong types or values."""


def missing_key(m: GenericMapping | Path, key: str) -> MappingError:
    """The error for a required key a mapping lacks (``m``: the mapping or its file)."""
    path = m.path if isinstance(m, GenericMapping) else m
    return MappingError(f"{path}: missing required key {key!r}")


_FIELD_DOC = "a metadata column name, or { value = ... } for a fixed value"
_SCHEMA: dict[str, dict[str, Key]] = {
    "input": {
        "expression": Key("str", True, "the expression file (.h5ad, .csv, .tsv, .parquet)"),
        "value_kind": Key("str", True, "what the values are", VALUE_KINDS),
        "metadata": Key("str", False, "the sample metadata table"),
        "orientation": Key("str", False, "the layout of an expression table", ORIENTATIONS),
        "layer": Key("str", False, "the .h5ad layer holding the values"),
        "allow_non_integer": Key(
            "bool", False, "accept counts that are not whole numbers (estimated counts)"
        ),
    },
    "samples": {
        "id_column": Key("str", False, "the metadata column naming the samples"),
        "keep_columns": Key("list[str]", False, "metadata columns to carry into obs"),
    },
    "fields": {
        "dataset": Key("raw", True, _FIELD_DOC),
        "assay": Key("raw", True, _FIELD_DOC),
        "plate": Key("raw", True, _FIELD_DOC),
        "cell_context": Key("raw", True, _FIELD_DOC),
        "perturbagen": Key("raw", True, _FIELD_DOC),
        "well": Key("raw", False, _FIELD_DOC),
        "well_row": Key("raw", False, _FIELD_DOC),
        "well_column": Key("raw", False, _FIELD_DOC),
        "replicate": Key("raw", False, _FIELD_DOC),
        "cell_name": Key("raw", False, _FIELD_DOC),
        "compound_id": Key("raw", False, _FIELD_DOC),
        "inchikey": Key("raw", False, _FIELD_DOC),
        "smiles": Key("raw", False, _FIELD_DOC),
        "pubchem_cid": Key("raw", False, _FIELD_DOC),
        "n_cells": Key("raw", False, _FIELD_DOC),
    },
    "dose": {
        "column": Key("str", False, "the dose column"),
        "value": Key("number", False, "one dose for every treated sample"),
        "unit_column": Key("str", False, "the dose unit column"),
        "unit": Key("str", False, "the dose unit, e.g. 'uM'"),
        "molecular_weight_column": Key("str", False, "g/mol, for mass concentrations"),
    },
    "time": {
        "column": Key("str", False, "the time column"),
        "value": Key("number", False, "one time for every sample"),
        "unit_column": Key("str", False, "the time unit column"),
        "unit": Key("str", False, "the time unit, e.g. 'h'"),
    },
    "controls": {
        "control_values": Key("list[str]", False, "values that mark vehicle controls"),
        "control_column": Key("str", False, "the column control_values are looked up in"),
        "pert_type_column": Key("str", False, "a column giving each sample's type"),
        "pert_type_map": Key("map[str]", False, f"its values → one of {PERT_TYPES}"),
        "positive_control_values": Key("list[str]", False, "values of positive controls"),
        "positive_control_column": Key("str", False, "the column they are looked up in"),
        "control_match_keys": Key("list[str]", False, "columns shared with the vehicle"),
    },
    "genes": {
        "id_type": Key("str", True, "the kind of gene ids", GENE_ID_TYPES),
        "id_column": Key("str", False, "the column holding gene ids"),
        "symbol_column": Key("str", False, "the column holding gene symbols"),
        "annotation": Key("str", False, "a gene table with id_column and symbol_column"),
    },
}
_EXCLUDE: dict[str, Key] = {
    "column": Key("str", True, "the metadata column to test"),
    "equals": Key("scalar", False, "the value that excludes a sample"),
    "values": Key("list[scalar]", False, "the values that exclude a sample"),
    "reason": Key("str", True, "the ledger reason, e.g. 'qc_fail'"),
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


def _mapping_error(path: Path, problems: Sequence[str]) -> MappingError:
    """One error listing every problem of the mapping file at ``path``."""
    if len(problems) == 1:
        return MappingError(f"{path}: {problems[0]}")
    return MappingError(f"{path}: {len(problems)} problems: " + "; ".join(problems))


def _field(r: TomlReader, q: str, v: Any) -> FieldSpec | None:
    """A ``[fields]`` value: a column name, or ``{ column = ... }`` / ``{ value = ... }``."""
    if isinstance(v, str):
        col = r.value(q, Key("str", doc=_FIELD_DOC), v)
        return None if col is INVALID else FieldSpec(column=col)
    if not isinstance(v, dict):
        r.problem(f"{q}: expected {_FIELD_DOC}, found {describe(v)}")
        return None
    r.known(v, ("column", "value"), q)
    if ("column" in v) == ("value" in v):
        r.problem(f"{q}: give exactly one of 'column' or 'value'")
        return None
    if "column" in v:
        col = r.value(f"{q}.column", Key("str"), v["column"])
        return None if col is INVALID else FieldSpec(column=col)
    val = r.value(f"{q}.value", Key("scalar", doc=_FIELD_DOC), v["value"])
    return None if val is INVALID else FieldSpec(value=val)


def _quantity(r: TomlReader, t: Mapping[str, Any], name: str) -> QuantitySpec:
    if ("column" in t) == ("value" in t):
        r.problem(f"{name}: give exactly one of 'column' (a metadata column) or 'value'")
    if "unit_column" in t and "unit" in t:
        r.problem(f"{name}: give 'unit_column' or 'unit', not both")
    if "value" in t:
        if "unit" not in t:
            r.problem(f"{name}.value: a fixed {name} needs '{name}.unit'")
        if t["value"] < 0:
            r.problem(f"{name}.value: expected a number >= 0, found {t['value']}")
    return QuantitySpec(
        column=t.get("column"),
        value=t.get("value"),
        unit_column=t.get("unit_column"),
        unit=t.get("unit"),
        molecular_weight_column=t.get("molecular_weight_column"),
    )


def _file(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _input(
    r: TomlReader, inp: Mapping[str, Any], base: Path
) -> tuple[Path | None, Path | None, bool]:
    """The expression and metadata files of ``[input]``, and whether it is an .h5ad."""
    if "expression" not in inp:
        return None, None, False
    expression = _file(base, inp["expression"])
    is_h5ad = expression.suffix.lower() == ".h5ad"
    if not is_h5ad and not expression.name.lower().endswith(TABLE_SUFFIXES):
        r.problem(
            f"input.expression: expected a .h5ad or a table ({', '.join(TABLE_SUFFIXES)}), "
            f"found {expression.name!r}"
        )
    if is_h5ad:
        if inp.get("orientation", "samples_x_genes") != "samples_x_genes":
            r.problem("input.orientation: an .h5ad is always samples × genes; remove it")
    else:
        for k in ("orientation", "metadata"):
            if k not in inp:
                r.problem(
                    f"input.{k}: required key is missing ({_SCHEMA['input'][k].doc}; "
                    "required when the expression is a table)"
                )
        if "layer" in inp:
            r.problem("input.layer: applies to .h5ad input only")
    if "allow_non_integer" in inp and inp.get("value_kind", "counts") != "counts":
        r.problem("input.allow_non_integer: applies to value_kind = 'counts' only")
    metadata = _file(base, inp["metadata"]) if "metadata" in inp else None
    return expression, metadata, is_h5ad


def _controls(r: TomlReader, ctl: Mapping[str, Any], fields: Mapping[str, FieldSpec]) -> None:
    if ("control_values" in ctl) == ("pert_type_column" in ctl):
        r.problem(
            'controls: give exactly one control rule: control_values = [...] (e.g. ["DMSO"]) '
            "or pert_type_column with pert_type_map"
        )
    if ("pert_type_column" in ctl) != ("pert_type_map" in ctl):
        r.problem("controls.pert_type_map: pert_type_column and pert_type_map go together")
    ptmap = ctl.get("pert_type_map", {})
    for k, v in ptmap.items():
        if v not in PERT_TYPES:
            r.problem(f"controls.pert_type_map.{k}: expected one of {PERT_TYPES}, found {v!r}")
    if ptmap and "vehicle" not in ptmap.values():
        r.problem("controls.pert_type_map: maps no value to 'vehicle'; vehicles are needed")
    perturbagen = fields.get("perturbagen")
    for key in ("control_column", "positive_control_column"):
        values_key = "control_values" if key == "control_column" else "positive_control_values"
        fixed = perturbagen is not None and perturbagen.column is None
        if values_key in ctl and key not in ctl and fixed:
            r.problem(
                f"controls.{key}: perturbagen is a fixed value, so {values_key} needs {key} "
                "(a metadata column)"
            )


def _exclude(r: TomlReader, rules: Any) -> tuple[ExcludeRule, ...]:
    if not isinstance(rules, list):
        r.problem(f"exclude: expected an array of tables ([[exclude]]), found {describe(rules)}")
        return ()
    out = []
    for i, rule in enumerate(rules):
        e = r.read(rule, _EXCLUDE, f"exclude[{i}]")
        if ("equals" in e) == ("values" in e):
            r.problem(f"exclude[{i}]: give exactly one of 'equals' or 'values'")
            continue
        if "reason" in e and not _REASON.match(e["reason"]):
            r.problem(
                f"exclude[{i}].reason: expected a lower-case identifier such as 'qc_fail', "
                f"found {e['reason']!r}"
            )
        elif "column" in e and "reason" in e:
            values = (e["equals"],) if "equals" in e else e["values"]
            out.append(ExcludeRule(e["column"], tuple(values), e["reason"]))
    return tuple(out)


def load_mapping(path: str | os.PathLike[str]) -> GenericMapping:
    """Read and validate a mapping file; no data file is opened.

    Raises
    ------
    FileNotFoundError
        If the mapping file does not exist.
    MappingError
        For TOML syntax errors, unknown keys (with the closest known key), missing
        required keys, wrong types and inconsistent choices, naming the file and listing
        every problem at once.
    """
    p = require_file(path, what="mapping file (TOML)")
    try:
        raw = load_toml(p)
    except ValueError as err:  # not valid TOML, not UTF-8
        raise MappingError(f"{p}: {err}") from err
    r = TomlReader(p.parent)
    r.known(raw, list(_TOP), "")
    version = raw.get("version", 1)
    if version != 1 or isinstance(version, bool):
        r.problem(f"version: expected 1 (the only mapping format so far), found {version!r}")
    for name in _REQUIRED_TABLES:
        if name not in raw:
            r.problem(f"[{name}]: required table is missing ({_TOP[name]})")
    t = {
        name: r.read(raw[name], schema, name) if name in raw else {}
        for name, schema in _SCHEMA.items()
    }
    inp, samples, ctl, genes = t["input"], t["samples"], t["controls"], t["genes"]
    expression, metadata, is_h5ad = _input(r, inp, p.parent)
    if metadata is not None and "id_column" not in samples:
        r.problem(
            "samples.id_column: required key is missing (the metadata column naming the "
            "samples; required with input.metadata)"
        )
    fields = {}
    for name, v in t["fields"].items():
        spec = _field(r, f"fields.{name}", v)
        if spec is not None:
            fields[name] = spec
    if ("well_row" in fields) != ("well_column" in fields):
        r.problem("fields.well_row: give both well_row and well_column, or neither")
    if "well" in fields and "well_row" in fields:
        r.problem("fields.well: give well, or well_row + well_column, not both")
    dose = _quantity(r, t["dose"], "dose")
    time = _quantity(r, t["time"], "time")
    _controls(r, ctl, fields)
    exclude = _exclude(r, raw.get("exclude", []))
    reserved = {c.name for c in SAMPLE_COLUMNS} | {"dose_source", "compound_smiles"}
    for key, cols in (
        ("samples.keep_columns", samples.get("keep_columns", ())),
        ("controls.control_match_keys", ctl.get("control_match_keys", ())),
    ):
        clash = [c for c in cols if c in reserved]
        if clash:
            r.problem(
                f"{key}: {clash} are names of Samples obs columns the adapter fills; map them "
                "in [fields] instead, or rename the metadata column"
            )
    annotation = _file(p.parent, genes["annotation"]) if "annotation" in genes else None
    if annotation is not None and "id_column" not in genes:
        r.problem("genes.id_column: required key is missing (needed with genes.annotation)")
    if (
        not is_h5ad
        and annotation is None
        and inp.get("orientation") == "samples_x_genes"
        and "symbol_column" in genes
    ):
        r.problem(
            "genes.symbol_column: a samples × genes table has no symbol column; give "
            "genes.annotation (a gene table)"
        )
    if r.problems or expression is None:
        raise _mapping_error(p, r.problems)
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
        pert_type_map=ctl.get("pert_type_map", {}),
        positive_control_values=ctl.get("positive_control_values", ()),
        positive_control_column=ctl.get("positive_control_column"),
        control_match_keys=ctl.get("control_match_keys", ()),
        exclude=exclude,
        gene_id_type=genes["id_type"],
        gene_id_column=genes.get("id_column"),
        symbol_column=genes.get("symbol_column"),
        annotation=annotation,
        allow_non_integer=inp.get("allow_non_integer", False),
        raw=raw,
    )

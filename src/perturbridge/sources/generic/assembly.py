"""The generic adapter's assembly: Samples and ledger from a mapping and its data.

:func:`read_generic` reads the metadata and opens the expression
(:mod:`.readers`), interprets the metadata as the mapping says (perturbation types,
exclusions, doses, times, schema fields), accounts for every input sample and gene in
the ledger, reads the kept samples' values and builds validated Samples.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ...errors import FormatError, SchemaError
from ...io import provenance
from ...ledger import Ledger
from ...samples import build_samples
from ...schema import PERT_TYPES
from ...units import parse_dose, parse_time
from .._base import IngestResult, SourceAdapter, register_source
from .._common import (
    STAGE,
    Accounts,
    Origin,
    Triage,
    assemble,
    categorical,
    is_missing,
    parse_numbers,
    record_genes,
    replicate_rank,
    spike_in_mask,
    split_quantity,
    to_int64,
    well_from_row_col,
)
from .._tables import open_h5ad, require_file
from .mapping import (
    FieldSpec,
    GenericMapping,
    MappingError,
    QuantitySpec,
    load_mapping,
    missing_key,
)
from .readers import (
    Expression,
    Meta,
    annotation_symbols,
    first_values,
    h5ad_expression,
    read_metadata,
    table_expression,
)

__all__ = ["GenericSource", "read_generic"]

logger = logging.getLogger(__name__)

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


def _field_values(spec: FieldSpec | None, meta: Meta, n: int) -> NDArray[np.object_] | None:
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


def _pert_types(m: GenericMapping, meta: Meta, pert: NDArray[np.object_]) -> NDArray[np.object_]:
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
                f"does not map: {first_values(raw[bad])}; add them to pert_type_map (as one of "
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
    meta: Meta,
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
        raise missing_key(mapping, f"{what}.column")
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
                f"have no unit, e.g. {first_values(t[q.column][no_unit])}; set {what}.unit or "
                f"{what}.unit_column in {mapping}"
            )
    return nums, units, written


def _check_gene_ids(
    genes: pd.Index, spike: NDArray[np.bool_], m: GenericMapping, where: str
) -> None:
    pattern = _GENE_ID_PATTERN.get(m.gene_id_type)
    ids = genes.astype(str)
    empty = is_missing(ids.to_numpy())
    if empty.any():
        raise SchemaError(
            "gene id",
            "gene ids must not be missing",
            first_values(np.flatnonzero(empty)),
            where=where,
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
            first_values(ids[bad]),
            where=where,
        )


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
            expr = h5ad_expression(m, fh, obs, var)
            return _ingest(m, expr, obs, chunk_size)
        finally:
            fh.close()
    expr = table_expression(m, chunk_size)
    return _ingest(m, expr, None, chunk_size)


def _ingest(
    m: GenericMapping, expr: Expression, h5ad_obs: pd.DataFrame | None, chunk_size: int
) -> IngestResult:
    meta = read_metadata(m, h5ad_obs)
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
        raise missing_key(m, "fields.perturbagen")
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
    symbols = annotation_symbols(m, genes)
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
    meta: Meta,
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
                first_values(t.index[kept][miss]),
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
            "pert_type": pert_type,
            "is_control": pert_type == "vehicle",
            "pert_dose_uM": dose,
            "pert_time_h": time,
            "dose_source": dose_written,
        },
        index=t.index,
    ).iloc[kept]
    obs = obs.copy()  # a frame of its own: columns are set on it below
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
                f"{int(bad.sum())} values that are not standard InChIKeys: {first_values(k[bad])}; "
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
                f"found {first_values(num[frac])}"
            )
        obs[name] = to_int64(num)
    rep = values("replicate")
    if rep is not None:
        obs["replicate"] = required("replicate", rep)[kept]
    else:
        obs["replicate"] = replicate_rank(
            obs, by=("dataset", "cell_context", "compound_id_source", "pert_dose_uM", "pert_time_h")
        )
    for c in dict.fromkeys([*m.keep_columns, *m.control_match_keys]):
        obs[c] = categorical(t[c].to_numpy(dtype=object)[kept])
    obs["dose_source"] = categorical(obs["dose_source"])
    return obs


@register_source(name="generic")
class GenericSource(SourceAdapter):
    """Any .h5ad or expression table + metadata, described by a TOML mapping file."""

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

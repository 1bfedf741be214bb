"""Helpers shared by the source adapters: files, columns, values, ledger triage, counts.

Every helper raises with a message that names the file (``where``), the column and the
first offending values, so an adapter never has to build those messages itself:

* :func:`resolve_columns` finds each field under one of its accepted spellings;
* :func:`parse_numbers`, :func:`split_quantity`, :func:`parse_bools`,
  :func:`parse_hours` read values and reject the unparseable ones by name (missing
  values stay missing: they go to the ledger, not to an error); :func:`doses_uM` gives
  the treated samples' doses in µM and the vehicle's 0;
* :class:`Triage` assigns each input sample the first drop reason that applies and
  writes kept and dropped samples to the ledger; :func:`record_genes` does the same for
  genes (:func:`spike_in_drops`: the ERCC spike-in rule);
* :func:`replicate_rank` numbers the samples of each condition by plate and well;

Reading the upstream files themselves (tables, count matrices, ``.h5ad``) is
:mod:`._tables`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import sparse

from ..errors import FormatError, SchemaError, UnitError
from ..io import provenance
from ..ledger import Ledger
from ..samples import build_samples, empty_samples, with_biology
from ..units import dose_to_uM, parse_quantity, time_to_h
from ._base import IngestResult
from ._tables import _first

__all__ = [
    "CONDITION",
    "DATASET_FACTS",
    "GENE_STAGE",
    "MISSING_TOKENS",
    "STAGE",
    "Accounts",
    "DatasetFacts",
    "Origin",
    "Triage",
    "categorical",
    "doses_uM",
    "is_missing",
    "parse_bools",
    "parse_hours",
    "parse_numbers",
    "record_genes",
    "replicate_rank",
    "resolve_columns",
    "spike_in_drops",
    "spike_in_mask",
    "split_quantity",
    "time_to_hours",
    "to_int64",
    "well_from_row_col",
]

logger = logging.getLogger(__name__)

#: Ledger stage of input samples and of input genes.
STAGE = "ingest"
GENE_STAGE = "ingest_genes"

#: Spellings of a missing value in upstream tables (compared lower-case, stripped).
MISSING_TOKENS = frozenset({"", "na", "nan", "none", "null", "<na>", "-666", "-666.0"})

#: ERCC spike-in ids (``ERCC-00002``), not human genes such as ``ERCC1``.
_SPIKE_IN = re.compile(r"^ERCC-\d+(\.\d+)?$")
_TRUE = frozenset({"true", "t", "1", "1.0", "yes", "y"})
_FALSE = frozenset({"false", "f", "0", "0.0", "no", "n"})
#: A ledger detail: one string for all rows, or one per row.
Detail = str | Sequence[str] | NDArray[Any]
_ROWS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def resolve_columns(
    columns: Iterable[str],
    aliases: Mapping[str, Sequence[str]],
    *,
    required: Sequence[str],
    where: str,
    what: str,
) -> dict[str, str]:
    """Map each field to the first of its accepted spellings present in ``columns``.

    Raises
    ------
    SchemaError
        Naming the file, the first missing field and the accepted spellings of all
        missing fields.
    """
    cols = list(columns)
    present = set(cols)
    found: dict[str, str] = {}
    for field, spellings in aliases.items():
        for s in spellings:
            if s in present:
                found[field] = s
                break
    missing = [f for f in required if f not in found]
    if missing:
        accepted = {m: tuple(aliases.get(m, (m,))) for m in missing}
        raise SchemaError(
            aliases.get(missing[0], (missing[0],))[0],
            f"the {what} lacks required column(s) {missing} (accepted spellings: {accepted}); "
            f"columns present: {cols[:20]}",
            where=where,
        )
    return found


def is_missing(values: pd.Series | Sequence[Any] | NDArray[Any]) -> NDArray[np.bool_]:
    """True where a value is missing (NaN/None or a :data:`MISSING_TOKENS` spelling)."""
    s = pd.Series(np.asarray(values, dtype=object))
    return (
        s.isna().to_numpy() | s.astype(str).str.strip().str.lower().isin(MISSING_TOKENS).to_numpy()
    )


def _bad_values(
    s: pd.Series, bad: NDArray[np.bool_], *, column: str, where: str, expected: str
) -> FormatError:
    vals = list(dict.fromkeys(str(v) for v in s[bad]))
    rows = _first(s.index[bad])
    return FormatError(
        f"{where}: column {column!r} has {int(bad.sum())} value(s) that cannot be parsed: "
        f"{_first(vals)} (first rows {rows}); expected {expected}"
    )


def parse_numbers(values: pd.Series, *, column: str, where: str) -> NDArray[np.float64]:
    """Numbers from a column; missing values become NaN, anything else unparseable raises.

    Raises
    ------
    FormatError
        Naming the file, the column and the first unparseable values.
    """
    s = pd.Series(values)
    missing = is_missing(s)
    num = pd.to_numeric(s.mask(missing, None), errors="coerce").to_numpy(dtype=float)
    bad = ~missing & ~np.isfinite(num)
    if bad.any():
        raise _bad_values(
            s,
            bad,
            column=column,
            where=where,
            expected="a number such as 10 or 0.5, with a decimal point (not a comma); "
            "a missing value is empty, NA or -666",
        )
    num[missing] = np.nan
    return num


def split_quantity(
    values: pd.Series, *, column: str, where: str, default_unit: str = ""
) -> tuple[NDArray[np.float64], NDArray[np.object_]]:
    """Split strings such as ``1000.0nM``, ``24h``, ``0.0625%`` or ``10`` into number and unit.

    :func:`perturbridge.units.parse_quantity` on the values as text (as a table read from
    a file has them), with the missing-value spellings of upstream tables
    (:data:`MISSING_TOKENS`): missing values give NaN and ``""``; a bare number gets
    ``default_unit``.

    Raises
    ------
    FormatError
        Naming the file, the column, the first values that are not a number with an
        optional unit, and their rows.
    """
    text = pd.Series(values).astype(str)
    try:
        return parse_quantity(
            text, where=where, column=column, default_unit=default_unit, missing=MISSING_TOKENS
        )
    except UnitError as err:  # a table cell that is not a quantity: a format error
        raise FormatError(str(err)) from err


def parse_bools(values: pd.Series, *, column: str, where: str) -> NDArray[np.bool_]:
    """Booleans from ``True/False``, ``1/0``, ``yes/no`` (any case); missing is False."""
    s = pd.Series(values)
    low = s.astype(str).str.strip().str.lower()
    missing = is_missing(s)
    t = low.isin(_TRUE).to_numpy()
    bad = ~missing & ~t & ~low.isin(_FALSE).to_numpy()
    if bad.any():
        raise _bad_values(s, bad, column=column, where=where, expected="True/False or 1/0")
    return t


def well_from_row_col(
    row: pd.Series, col: pd.Series, *, where: str, columns: tuple[str, str]
) -> NDArray[np.object_]:
    """Well names such as ``A01`` from 1-based row numbers (or row letters) and columns."""
    r = pd.Series(row).astype(str).str.strip()
    letters = r.str.fullmatch(r"[A-Za-z]{1,2}").to_numpy()
    rnum = pd.to_numeric(r.mask(letters, None), errors="coerce").to_numpy(dtype=float)
    cnum = parse_numbers(pd.Series(col), column=columns[1], where=where)
    bad_r = ~letters & ~((rnum >= 1) & (rnum <= len(_ROWS)) & (rnum == np.round(rnum)))
    if bad_r.any():
        raise _bad_values(r, bad_r, column=columns[0], where=where, expected="a row 1-26 or A-Z")
    bad_c = ~(np.isfinite(cnum) & (cnum >= 1) & (cnum == np.round(cnum)))
    if bad_c.any():
        raise _bad_values(
            pd.Series(col).astype(str), bad_c, column=columns[1], where=where, expected="1, 2, ..."
        )
    rows = np.where(
        letters, r.str.upper().to_numpy(), [_ROWS[int(x) - 1] if x == x else "" for x in rnum]
    )
    return np.array([f"{a}{int(c):02d}" for a, c in zip(rows, cnum, strict=True)], dtype=object)


def time_to_hours(
    values: NDArray[np.float64], units: NDArray[np.object_], *, column: str, where: str
) -> NDArray[np.float64]:
    """Times in hours from numbers and units (``""`` means hours); missing stays NaN.

    Raises
    ------
    UnitError
        Naming the file, the column and the unknown units.
    """
    vals = np.asarray(values, dtype=float)
    u = np.array([x if x else "h" for x in np.asarray(units, dtype=object)], dtype=object)
    return time_to_h(vals, u, where=f"{where} column {column!r}", ignore=~np.isfinite(vals))


def parse_hours(values: pd.Series, *, column: str, where: str) -> NDArray[np.float64]:
    """Times such as ``24h``, ``30min`` or ``24`` (hours) in hours; missing stays NaN
    (:func:`split_quantity`, then :func:`time_to_hours`)."""
    num, unit = split_quantity(values, column=column, where=where, default_unit="h")
    return time_to_hours(num, unit, column=column, where=where)


def doses_uM(
    values: NDArray[np.float64],
    units: str | NDArray[np.object_],
    *,
    treated: NDArray[np.bool_],
    vehicle: NDArray[np.bool_],
    where: str,
) -> NDArray[np.float64]:
    """Each sample's dose in µM: ``values`` in ``units`` (one unit, or one per sample)
    for the ``treated`` samples that have a number, 0 for the ``vehicle``, NaN for the
    others (a treated sample left NaN is then dropped by
    :meth:`Triage.drop_unusable_dose_time`). ``where`` names the unit column in errors.
    """
    dose = np.where(vehicle, 0.0, np.nan)
    check = treated & np.isfinite(values)
    unit = np.broadcast_to(np.asarray(units, dtype=object), dose.shape)
    dose[check] = dose_to_uM(values[check], unit[check], where=where)
    return dose


def to_int64(values: NDArray[np.float64]) -> Any:
    """Whole numbers as a nullable ``Int64`` array (NaN becomes ``<NA>``)."""
    arr = np.round(np.asarray(values, dtype=float))
    return pd.array(np.where(np.isfinite(arr), arr, np.nan), dtype="Float64").astype("Int64")


def spike_in_mask(gene_ids: Iterable[str]) -> NDArray[np.bool_]:
    """True for ERCC spike-in ids (``ERCC-00002``), false for genes such as ``ERCC1``."""
    return np.array([bool(_SPIKE_IN.match(str(g))) for g in gene_ids], dtype=bool)


def spike_in_drops(*gene_names: Iterable[str]) -> dict[str, tuple[NDArray[np.bool_], str]]:
    """The ``drops`` of :func:`record_genes` that drop ERCC spike-ins (``spike_in``): the
    genes whose name in any of ``gene_names`` (ids, symbols; one per gene) is one."""
    spike = np.logical_or.reduce([spike_in_mask(names) for names in gene_names])
    return {"spike_in": (np.asarray(spike, dtype=bool), "ERCC spike-in")}


def categorical(values: Any) -> pd.Categorical:
    """Strings as a categorical, with missing values (see :func:`is_missing`) as NaN."""
    arr = np.asarray(values, dtype=object)
    miss = is_missing(arr)
    return pd.Categorical([None if m else str(v) for v, m in zip(arr, miss, strict=True)])


class Triage:
    """Assigns each input sample the first drop reason that applies, then writes the ledger.

    ``ids`` are the samples of the metadata table; ``unmatched`` are further samples
    found only in the counts, dropped at once as ``missing_metadata``. Masks and details
    passed to :meth:`drop` and :meth:`record` are per metadata row (``len(ids)``). Rules
    are applied in the order they are called; a sample already given a reason keeps it.

    Examples
    --------
    >>> t = Triage(pd.Index(["a", "b", "c"]), unmatched=pd.Index(["z"]))
    >>> t.drop(np.array([True, False, True]), "positive_control", "Belinostat")
    >>> t.drop(np.array([True, True, False]), "empty_well", "EMPTY")
    >>> t.reason.tolist()
    ['positive_control', 'empty_well', 'positive_control', 'missing_metadata']
    """

    def __init__(
        self,
        ids: pd.Index,
        *,
        unmatched: pd.Index | None = None,
        unmatched_detail: str = "not in the metadata",
    ) -> None:
        self.n_rows = len(ids)
        extra = pd.Index([] if unmatched is None else unmatched, dtype=object)
        self.ids = pd.Index(ids).astype(str).append(extra.astype(str))
        self.reason = np.full(len(self.ids), "", dtype=object)
        self.detail = np.full(len(self.ids), "", dtype=object)
        self.reason[self.n_rows :] = "missing_metadata"
        self.detail[self.n_rows :] = unmatched_detail

    @property
    def open(self) -> NDArray[np.bool_]:
        """Samples not yet given a reason."""
        return self.reason == ""

    @property
    def kept(self) -> NDArray[np.bool_]:
        """Kept samples, per metadata row."""
        return self.open[: self.n_rows]

    def _pad(self, values: NDArray[Any], fill: Any) -> NDArray[Any]:
        extra = len(self.ids) - len(values)
        return np.concatenate([values, np.full(extra, fill, dtype=values.dtype)])

    def drop(self, mask: NDArray[np.bool_], reason: str, detail: Detail) -> None:
        """Give ``reason`` to the still-open samples in ``mask`` (one entry per row)."""
        m = self._pad(np.asarray(mask, dtype=bool), False) & self.open
        self.reason[m] = reason
        det = np.asarray(detail, dtype=object)
        self.detail[m] = det if det.ndim == 0 else self._pad(det, "")[m]

    def drop_unusable_dose_time(
        self,
        treated: NDArray[np.bool_],
        dose: NDArray[np.float64],
        time: NDArray[np.float64],
        *,
        raw: Mapping[str, pd.Series],
    ) -> None:
        """The standard rules of a treated sample's dose and every sample's time: a dose
        that is not a positive number → ``missing_dose``, a time that is not a
        non-negative number → ``missing_time``.

        ``raw`` maps the upstream dose column's name and then the time column's name to
        their values as read; the detail of a dropped sample is ``<column>=<value>``.
        """
        if len(raw) != 2:
            raise ValueError(f"raw names the dose and the time column, found {list(raw)}")
        (dose_col, dose_raw), (time_col, time_raw) = raw.items()
        detail_dose = (f"{dose_col}=" + dose_raw.astype(str)).to_numpy()
        detail_time = (f"{time_col}=" + time_raw.astype(str)).to_numpy()
        self.drop(treated & ~(np.isfinite(dose) & (dose > 0)), "missing_dose", detail_dose)
        self.drop(~(np.isfinite(time) & (time >= 0)), "missing_time", detail_time)

    def ledger(self, *, kept_detail: Detail = "") -> Ledger:
        """A new ledger with every sample (:meth:`record`, stage ``ingest``)."""
        ledger = Ledger()
        self.record(ledger, stage=STAGE, kept_detail=kept_detail)
        return ledger

    def record(self, ledger: Ledger, *, stage: str = STAGE, kept_detail: Detail = "") -> None:
        """Write every sample to ``ledger``: dropped ones by reason, then the kept ones."""
        for why in pd.unique(self.reason[~self.open]):
            m = self.reason == why
            ledger.drop(
                self.ids[m], stage=stage, reason=str(why), detail=[str(d) for d in self.detail[m]]
            )
        det = np.asarray(kept_detail, dtype=object)
        ledger.keep(
            self.ids[: self.n_rows][self.kept],
            stage=stage,
            detail=str(kept_detail) if det.ndim == 0 else [str(d) for d in det[self.kept]],
        )


def record_genes(
    ledger: Ledger,
    gene_ids: pd.Index,
    *,
    drops: Mapping[str, tuple[NDArray[np.bool_], str]] | None = None,
    stage: str = GENE_STAGE,
) -> NDArray[np.bool_]:
    """Write every input gene to ``ledger`` (kept, or dropped for a reason); returns kept.

    ``drops`` maps a reason to ``(mask, detail)``; the first reason that applies wins.
    """
    t = Triage(pd.Index(gene_ids))
    for reason, (mask, detail) in (drops or {}).items():
        t.drop(mask, reason, detail)
    t.record(ledger, stage=stage)
    return t.kept


@dataclass(frozen=True)
class Accounts:
    """The ledger of an ingest and the ids it must account for once each: every input
    sample (stage :data:`STAGE`), every input gene when ``genes`` is given
    (:data:`GENE_STAGE`) and every input cell when ``cells`` is given (single-cell
    sources, their cell stage)."""

    ledger: Ledger
    samples: pd.Index
    genes: pd.Index | None = None
    cells: pd.Index | None = None


@dataclass(frozen=True)
class Origin:
    """What Samples are made from, for their provenance: the files read (``inputs``),
    the reader's parameters (``params``) and the label messages name (``where``: a
    file or a folder)."""

    inputs: Sequence[str | os.PathLike[str]]
    params: Mapping[str, Any]
    where: str

    @property
    def biology(self) -> DatasetFacts | None:
        """What every sample of the adapter's datasets shares (:data:`DATASET_FACTS` of
        ``params["source"]``)."""
        return DATASET_FACTS.get(str(self.params.get("source", "")))


@dataclass(frozen=True)
class DatasetFacts:
    """Biology columns every sample of a dataset shares, stated by its adapter as data
    (``{"suspension_type": "nucleus"}`` for sci-Plex): set on the Samples where still
    ``unknown``, with ``biology_source`` ``column=dataset:<adapter>``. Cell-line facts
    (sex, disease, tissue, …) come from the reference store instead
    (:func:`perturbridge.ids.annotate.annotate_samples`)."""

    adapter: str
    values: Mapping[str, str]

    @classmethod
    def human(
        cls,
        adapter: str,
        suspension_type: str,
        tissue_type: str,
        *,
        tissue: tuple[str, str] | None = None,
    ) -> DatasetFacts:
        """Human samples of ``suspension_type`` and ``tissue_type``; ``tissue`` as
        (UBERON label, id) when all samples share one. Primary cells are of donors
        without disease (``normal``, ``PATO:0000461``)."""
        values = {
            "organism": "Homo sapiens",
            "suspension_type": suspension_type,
            "tissue_type": tissue_type,
        }
        if tissue is not None:
            values["tissue"], values["tissue_ontology_term_id"] = tissue
        if tissue_type == "primary cell":
            values["disease"], values["disease_ontology_term_id"] = "normal", "PATO:0000461"
        return cls(adapter, values)

    def apply(self, obs: pd.DataFrame) -> pd.DataFrame:
        return with_biology(obs, self.values, source=f"dataset:{self.adapter}")


#: What every sample of an adapter's datasets shares, as the adapter's documentation
#: states it (cell-line facts such as sex, disease and tissue come from the reference
#: store instead). Applied when the Samples are built (:func:`assemble`,
#: :func:`~perturbridge.sources._singlecell.finish_samples`).
DATASET_FACTS: dict[str, DatasetFacts] = {
    f.adapter: f
    for f in (
        # HTS2 / HiMAP-seq of lysed HEK293T and MDA-MB-231 cells
        DatasetFacts.human("cigs", "cell", "cell line"),
        # bulk SMART-seq of primary human hepatocytes
        DatasetFacts.human("dilimap", "cell", "primary cell", tissue=("liver", "UBERON:0002107")),
        # DRUG-seq of lysed U2OS cells
        DatasetFacts.human("drugseq_moabox", "cell", "cell line"),
        # DRUG-seq of four primary human cell types
        DatasetFacts.human("gdpx2", "cell", "primary cell"),
        # single cells of PBMC from healthy donors
        DatasetFacts.human("op3", "cell", "primary cell", tissue=("blood", "UBERON:0000178")),
        # sci-RNA-seq3 profiles nuclei (A549, K562, MCF7)
        DatasetFacts.human("sciplex", "nucleus", "cell line"),
        # single cells of 50 cancer cell lines (Parse GigaLab)
        DatasetFacts.human("tahoe", "cell", "cell line"),
        # DRUG-seq of lysed THP-1 cells
        DatasetFacts.human("vcpi", "cell", "cell line"),
        # L1000 lysates of whole cells, lines and primary cells (for the L1000 reader,
        # which builds its Samples itself)
        DatasetFacts("l1000", {"organism": "Homo sapiens", "suspension_type": "cell"}),
    )
}


def assemble(
    x: Any,
    obs: pd.DataFrame,
    var: pd.DataFrame,
    *,
    accounts: Accounts,
    origin: Origin,
    control_match_keys: Sequence[str] = (),
    allow_non_integer: bool = False,
) -> Any:
    """Validated counts Samples from the kept rows, after checking the ledger's accounts.

    Counts must be finite, non-negative, below 2**53 and whole numbers (unless
    ``allow_non_integer``): anything else is an error naming the samples by id. A kept
    sample whose counts are all zero is dropped, its ledger entry turned into
    ``empty_sample`` (stage :data:`STAGE`).

    ``obs`` and ``x`` hold the kept samples in the same order; ``total_counts`` is
    filled from ``x``. ``control_match_keys`` (``obs`` columns a treated sample must
    share with its vehicle) are declared in ``uns["perturbridge"]["control_match_keys"]``
    for the DE step. The ledger must account once for every input sample (stage
    :data:`STAGE`) and, when ``accounts.genes`` is given, every input gene
    (:data:`GENE_STAGE`).
    """
    ledger, where = accounts.ledger, origin.where
    ledger.check_accounts_for(accounts.samples, stage=STAGE)
    if accounts.genes is not None:
        ledger.check_accounts_for(accounts.genes, stage=GENE_STAGE)
    x = sparse.csr_matrix(x)
    ids = pd.Index(obs.index.astype(str))
    # a sample without any count is a drop; values that are not counts are errors
    # (build_samples, naming the samples)
    empty = empty_samples(x)
    if empty.any():
        ledger = _drop_kept(ledger, ids[empty], reason="empty_sample", detail="all counts 0")
        logger.warning("%s: %d samples without counts dropped (empty_sample)", where, empty.sum())
        x, obs = x[~empty], obs.loc[~empty]
    obs = obs.copy()
    obs["total_counts"] = np.asarray(x.sum(axis=1), dtype=float).ravel()
    if origin.biology is not None:
        obs = origin.biology.apply(obs)
    prov = provenance(step="ingest", inputs=list(origin.inputs), params=dict(origin.params))
    samples = build_samples(
        x,
        obs,
        var,
        value_kind="counts",
        provenance=prov,
        where=where,
        allow_non_integer=allow_non_integer,
    )
    if control_match_keys:
        samples.uns["perturbridge"]["control_match_keys"] = list(control_match_keys)
    return IngestResult(samples, ledger)


def _drop_kept(ledger: Ledger, ids: pd.Index, *, reason: str, detail: str) -> Ledger:
    """A copy of ``ledger`` whose kept entries of ``ids`` at :data:`STAGE` are drops."""
    frame = ledger.to_frame()
    hit = (
        (frame["stage"] == STAGE) & (frame["status"] == "kept") & frame["id"].isin(ids)
    ).to_numpy()
    frame.loc[hit, "status"] = "dropped"
    frame.loc[hit, "reason"] = reason
    frame.loc[hit, "detail"] = detail
    return Ledger(frame)


#: The columns of a condition, whose samples :func:`replicate_rank` numbers.
CONDITION = ("cell_name", "compound_id_source", "pert_dose_uM", "pert_time_h")


def replicate_rank(
    obs: pd.DataFrame, *, by: Sequence[str] = CONDITION, order: Sequence[str] = ("plate", "well")
) -> NDArray[np.object_]:
    """``"1"``, ``"2"``, … : each row's rank among the rows with the same values in the
    columns ``by`` (a condition), in the order of the columns ``order`` (plate, well)."""
    keys = obs[list(by)]
    sort = np.lexsort([obs[c].astype(str).to_numpy() for c in reversed(order)])
    ranked = keys.iloc[sort].astype(str).groupby(list(keys.columns), sort=False).cumcount() + 1
    out = np.empty(len(keys), dtype=object)
    out[sort] = ranked.astype(str).to_numpy()
    return out

"""Tahoe-100M (Vevo / Parse GigaLab, 14 plates × 50 cell lines) single cells → pseudobulk.

Reads the release as it is distributed: a folder with one ``.h5ad`` per plate
(``plate<N>_filt_Vevo_Tahoe100M_WServicesFrom_ParseGigalab.h5ad``: raw counts in ``X``
as CSR, cells indexed by ``BARCODE_SUB_LIB_ID``) and, optionally, the cell metadata
table ``obs_metadata.parquet``. One plate file is processed at a time and handed to
:func:`~perturbridge.pseudobulk.pseudobulk` by its path, which reads the count matrix
in row chunks: a plate is never loaded whole.

``obs`` columns used (first spelling present wins): ``drug``, ``drugname_drugconc``,
``Cell_ID_Cellosaur``/``cell_line`` (Cellosaurus accessions already),
``cell_name``, ``plate``, ``sample``, and for the well ``bc1_well``, ``bc1_wind``,
``BARCODE`` or the ``BARCODE_SUB_LIB_ID`` index.

Rules
-----
* **drugname_drugconc** is a Python literal such as ``[('Trametinib (DMSO_TF
  solvate)', 0.5, 'uM')]``: it is parsed with :func:`ast.literal_eval` (never
  ``eval``) and must be a non-empty list of ``(name, concentration ≥ 0, unit)``
  tuples; anything else raises :class:`~perturbridge.errors.FormatError` naming the
  file and the first unparseable values. A single entry's name must equal ``drug``.
* **Pseudobulk samples** are plate × ``sample`` × cell line × ``drugname_drugconc``
  (``sample`` is Tahoe's id of a treatment well). Cells without one of these
  (e.g. no cell-line call) are dropped by pseudobulk as ``missing_metadata``.
* **Well.** Parse's round-1 barcode is the sample well: ``bc1_well`` (``A1`` →
  ``A01``) when present, else the round-1 index (``bc1_wind``, or the first
  ``_``-separated field of ``BARCODE`` / ``BARCODE_SUB_LIB_ID``), 1–96, numbered
  row-major on the 96-well plate (1 = ``A01``, 12 = ``A12``, 13 = ``B01``, …). A
  sample whose cells carry several round-1 wells gets them joined with ``+``.
* **Controls.** ``DMSO_TF`` is the vehicle (dose 0). Sample ledger (stage
  ``ingest``): a combination (several drugs in ``drugname_drugconc``) →
  ``unsupported_pert_type``; a treated sample with concentration 0 → ``missing_dose``.
* **obs_metadata.parquet** (optional) is the manifest: a plate it lists without a
  plate file is an error; its cells missing from their plate file go to the cell
  ledger as ``missing_counts``.
* **Identities.** ``cell_context`` = the Cellosaurus accession, ``cell_name`` =
  ``cell_name``; ``perturbagen`` = ``compound_id_source`` = the drug as Tahoe spells
  it (salt forms included);
  :mod:`perturbridge.ids.annotate` resolves identities afterwards, as for every source.
  Time is 24 h (``time_h``).
"""

from __future__ import annotations

import ast
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import sparse

from ..errors import FormatError, SchemaError
from ..ledger import Ledger
from ..pseudobulk import PseudobulkOptions, pseudobulk
from ..units import dose_to_uM
from ._base import IngestResult, SourceAdapter, register_source
from ._common import (
    STAGE,
    Accounts,
    Origin,
    Triage,
    categorical,
    record_genes,
    replicate_rank,
)
from ._singlecell import (
    CELL_STAGE,
    as_text,
    finish_samples,
    open_h5ad_file,
    read_cell_tables,
)

__all__ = [
    "FIELD_ALIASES",
    "TahoeFilters",
    "TahoePlates",
    "TahoeSource",
    "parse_drugname_drugconc",
    "read_tahoe",
    "well_from_bc1",
]

logger = logging.getLogger(__name__)

FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "drug": ("drug",),
    "drugconc": ("drugname_drugconc",),
    "cell": ("Cell_ID_Cellosaur", "cell_line", "cell_line_id"),
    "cell_name": ("cell_name", "cell_line_name"),
    "plate": ("plate",),
    "sample": ("sample",),
    "bc1_well": ("bc1_well",),
    "bc1_wind": ("bc1_wind",),
    "barcode": ("BARCODE", "BARCODE_SUB_LIB_ID"),
}
REQUIRED = ("drug", "drugconc", "cell", "plate", "sample")
VEHICLE = "DMSO_TF"
_ROWS = "ABCDEFGH"
_MAX_LITERAL = 10_000  # characters: longer values are not parsed
_SHOW = 5


def parse_drugname_drugconc(
    values: Any, *, where: str, column: str = "drugname_drugconc"
) -> dict[str, list[tuple[str, float, str]]]:
    """Parse distinct ``drugname_drugconc`` strings into ``[(name, conc, unit), ...]``.

    Uses :func:`ast.literal_eval` (literals only, never ``eval``) and checks the shape.

    Raises
    ------
    FormatError
        Naming ``where``, the column and the first values that are not a non-empty
        list of ``(name, concentration, unit)`` tuples.

    Examples
    --------
    >>> parse_drugname_drugconc(["[('DMSO_TF', 0.0, 'uM')]"], where="x")
    {"[('DMSO_TF', 0.0, 'uM')]": [('DMSO_TF', 0.0, 'uM')]}
    """
    out: dict[str, list[tuple[str, float, str]]] = {}
    bad: list[str] = []
    for v in pd.unique(np.asarray(values, dtype=object)):
        s = str(v)
        if s == "":
            continue
        parsed = _literal_entries(s)
        if parsed is None:
            bad.append(s)
        else:
            out[s] = parsed
    if bad:
        raise FormatError(
            f"{where}: column {column!r} has {len(bad)} value(s) that cannot be parsed: "
            f"{bad[:_SHOW]}; expected a list of (drug name, concentration, unit) tuples "
            "such as \"[('Trametinib (DMSO_TF solvate)', 0.5, 'uM')]\""
        )
    return out


def _literal_entries(s: str) -> list[tuple[str, float, str]] | None:
    if len(s) > _MAX_LITERAL:
        return None
    try:
        obj = ast.literal_eval(s.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if isinstance(obj, tuple) and len(obj) == 3 and isinstance(obj[0], str):
        obj = [obj]
    if not isinstance(obj, (list, tuple)) or not obj:
        return None
    entries = []
    for item in obj:
        if not (isinstance(item, (list, tuple)) and len(item) == 3):
            return None
        name, conc, unit = item
        if not (isinstance(name, str) and name.strip() and isinstance(unit, str)):
            return None
        if isinstance(conc, bool) or not isinstance(conc, (int, float)):
            return None
        if not math.isfinite(conc) or conc < 0:
            return None
        entries.append((name.strip(), float(conc), unit.strip()))
    return entries


def well_from_bc1(values: Any, *, where: str, column: str) -> np.ndarray:
    """Well names (``A01`` … ``H12``) from round-1 well labels or indices.

    ``A1``/``A01`` labels are zero-padded; indices 1–96 are numbered row-major.
    Missing values give ``""``.

    Raises
    ------
    FormatError
        Naming the file, the column and the first values that are neither.
    """
    text = as_text(pd.Series(values))
    uniq = pd.unique(text)
    mapped: dict[str, str] = {"": ""}
    bad = []
    for u in uniq:
        if u == "":
            continue
        s = u.strip().upper()
        if len(s) >= 2 and s[0] in _ROWS and s[1:].isdigit() and 1 <= int(s[1:]) <= 12:
            mapped[u] = f"{s[0]}{int(s[1:]):02d}"
            continue
        try:
            idx = float(s)
        except ValueError:
            idx = float("nan")
        if idx == idx and idx == int(idx) and 1 <= idx <= 96:
            row, col = divmod(int(idx) - 1, 12)
            mapped[u] = f"{_ROWS[row]}{col + 1:02d}"
        else:
            bad.append(u)
    if bad:
        raise FormatError(
            f"{where}: column {column!r} has {len(bad)} round-1 well value(s) that are neither "
            f"a well (A1-H12) nor an index 1-96: {bad[:_SHOW]}"
        )
    return np.array([mapped[t] for t in text], dtype=object)


def _wells(obs: pd.DataFrame, f: dict[str, str], *, where: str) -> np.ndarray:
    """The round-1 well of each cell (see the module rules)."""
    if "bc1_well" in f:
        return well_from_bc1(obs[f["bc1_well"]], where=where, column=f["bc1_well"])
    if "bc1_wind" in f:
        return well_from_bc1(obs[f["bc1_wind"]], where=where, column=f["bc1_wind"])
    if "barcode" in f:
        source, column = as_text(obs[f["barcode"]]), f["barcode"]
    else:
        source, column = np.asarray(obs.index.astype(str), dtype=object), "obs index"
    first = pd.Series(source).str.split("_", n=1).str[0].fillna("")
    return well_from_bc1(first, where=where, column=f"{column} (round-1 field)")


@dataclass(frozen=True)
class TahoePlates:
    """How :func:`read_tahoe` finds and reads the plate files (the fields are also its
    plan keys and ``--set`` names)."""

    #: file name pattern of the plate ``.h5ad`` files in the folder
    pattern: str = "*.h5ad"
    #: the vehicle's ``drug`` value
    vehicle: str = VEHICLE
    #: treatment time in hours (24 h in Tahoe-100M)
    time_h: float = 24.0


@dataclass(frozen=True)
class TahoeFilters:
    """Cell and sample filters of :func:`read_tahoe`'s pseudobulk (also plan keys)."""

    min_counts: float = 0
    min_genes: int = 0
    min_cells: int = 1


def read_tahoe(
    folder: str | os.PathLike[str],
    *,
    obs_parquet: str | os.PathLike[str] | None = None,
    layer: str | None = None,
    dataset: str = "tahoe100m",
    plates: TahoePlates | None = None,
    filters: TahoeFilters | None = None,
    chunk_size: int = 100_000,
    progress: bool = False,
) -> IngestResult:
    """Read a folder of Tahoe-100M plate ``.h5ad`` files into pseudobulk Samples.

    Parameters
    ----------
    folder
        Folder with one ``.h5ad`` per plate (matched by ``plates.pattern``).
    obs_parquet
        Tahoe's ``obs_metadata.parquet`` (``BARCODE_SUB_LIB_ID``, ``plate``, …): the
        manifest of cells; optional.
    layer
        Read counts from this layer instead of ``X``.
    dataset
        Dataset name written to ``obs["dataset"]``.
    plates
        How the plate files are found and read (:class:`TahoePlates`: ``pattern``,
        ``vehicle``, ``time_h``).
    filters
        Cell and sample filters of :func:`~perturbridge.pseudobulk.pseudobulk`
        (:class:`TahoeFilters`: ``min_counts``, ``min_genes``, ``min_cells``).

        Plans and ``--set`` give the fields of both as flat keys (``time_h = 24``).
    chunk_size
        Cells read at a time.
    progress
        Show progress bars over each plate's chunks.

    Returns
    -------
    IngestResult
        Pseudobulk Samples and the ledger of every cell (``pseudobulk``), sample
        (``ingest``) and gene (``ingest_genes``).

    Examples
    --------
    >>> res = read_tahoe(
    ...     "tahoe100m/", obs_parquet="tahoe100m/obs_metadata.parquet"
    ... )  # doctest: +SKIP
    """
    plates = plates or TahoePlates()
    filters = filters or TahoeFilters()
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(
            f"Tahoe-100M plate folder not found: {root} (expected a folder of plate .h5ad files)"
        )
    files = sorted(root.glob(plates.pattern))
    if not files:
        raise FileNotFoundError(
            f"no Tahoe-100M plate files matching {plates.pattern!r} in {root} (expected e.g. "
            "plate1_filt_Vevo_Tahoe100M_WServicesFrom_ParseGigalab.h5ad)"
        )
    manifest = _Manifest(Path(obs_parquet)) if obs_parquet is not None else None
    reading = _PlateReading(
        layer=layer,
        vehicle=plates.vehicle,
        time_h=plates.time_h,
        min_counts=filters.min_counts,
        min_genes=filters.min_genes,
        min_cells=filters.min_cells,
        chunk_size=chunk_size,
        progress=progress,
    )
    ledger = Ledger()
    parts: list[pd.DataFrame] = []
    blocks: list[Any] = []
    sample_ids: list[pd.Index] = []
    genes: pd.DataFrame | None = None
    pb_params: dict[str, Any] = {}
    for path in files:
        plate_obs, x, plate_genes, plate_ledger, params = _read_plate(path, reading, manifest)
        if genes is None:
            genes = plate_genes
        elif not genes.index.equals(plate_genes.index):
            raise FormatError(
                f"{path}: its genes differ from those of {files[0].name} "
                f"({len(plate_genes)} vs {len(genes)} genes); all plates must share one var"
            )
        ledger.extend(plate_ledger)
        sample_ids.append(plate_obs.index)
        parts.append(plate_obs)
        blocks.append(x)
        pb_params[path.name] = params
    if manifest is not None:
        manifest.check_all_seen(root)
    assert genes is not None
    obs_all = pd.concat(parts)
    triage = Triage(obs_all.index)
    veh = obs_all["is_control"].to_numpy(dtype=bool)
    n_drugs = obs_all["_n_drugs"].to_numpy()
    dose = obs_all["pert_dose_uM"].to_numpy(dtype=float)
    combination = ("combination: " + obs_all["drugname_drugconc"]).to_numpy()
    triage.drop(n_drugs > 1, "unsupported_pert_type", combination)
    triage.drop(
        ~veh & ~(np.isfinite(dose) & (dose > 0)),
        "missing_dose",
        ("drugname_drugconc=" + obs_all["drugname_drugconc"]).to_numpy(),
    )
    triage.record(ledger, stage=STAGE, kept_detail=obs_all["pert_type"].to_numpy())
    keep_gene = record_genes(ledger, genes.index)
    kept = np.flatnonzero(triage.kept)
    obs = obs_all.iloc[kept].drop(columns=["_n_drugs"])
    obs["replicate"] = replicate_rank(
        obs, by=("cell_context", "compound_id_source", "pert_dose_uM", "pert_time_h")
    )
    for c in ("drugname_drugconc", "tahoe_sample", "dose_source"):
        obs[c] = categorical(obs[c])
    x_all = sparse.vstack(blocks, format="csr") if blocks else sparse.csr_matrix((0, len(genes)))
    var = pd.DataFrame(
        {"symbol": genes["symbol"].to_numpy(), "var_name": genes["var_name"].to_numpy()},
        index=genes.index,
    ).iloc[np.flatnonzero(keep_gene)]
    obs.insert(0, "dataset", dataset)
    logger.info("%s: %d of %d pseudobulk samples kept", root, len(obs), len(obs_all))
    return finish_samples(
        x_all[kept][:, np.flatnonzero(keep_gene)],
        obs,
        var,
        # no cells: they are checked per plate file (cell ids may repeat across plates)
        accounts=Accounts(ledger, samples=obs_all.index, genes=genes.index),
        origin=Origin(
            inputs=[*files, *([manifest.path] if manifest is not None else [])],
            params={
                "source": "tahoe",
                "dataset": dataset,
                "vehicle": plates.vehicle,
                "time_h": plates.time_h,
                "pattern": plates.pattern,
                "layer": layer,
            },
            where=str(root),
        ),
        pseudobulk_params=pb_params,
    )


class _Manifest:
    """``obs_metadata.parquet``: which cells each plate should hold."""

    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq

        if not path.is_file():
            raise FileNotFoundError(
                f"Tahoe-100M cell metadata (obs_metadata.parquet) not found: {path}"
            )
        self.path = path
        try:
            names = pq.ParquetFile(path).schema_arrow.names
        except (OSError, ValueError) as err:
            raise FormatError(f"{path}: cannot read the parquet cell metadata: {err}") from err
        self.id_col = next(
            (c for c in ("BARCODE_SUB_LIB_ID", "__index_level_0__") if c in names), None
        )
        if self.id_col is None or "plate" not in names:
            raise SchemaError(
                "BARCODE_SUB_LIB_ID" if self.id_col is None else "plate",
                f"the cell metadata lacks a required column; columns present: {names[:20]}",
                where=str(path),
            )
        plates = pq.read_table(path, columns=["plate"]).column("plate").unique().to_pylist()
        self.plates = {str(p) for p in plates if p is not None}
        self.seen: set[str] = set()

    def missing_cells(self, plate: str, present: pd.Index) -> pd.Index:
        """Cells of ``plate`` listed in the manifest but not in ``present``."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        self.seen.add(plate)
        table = pq.read_table(self.path, columns=[self.id_col], filters=[("plate", "=", plate)])
        ids = table.column(self.id_col)
        absent = pc.invert(pc.is_in(ids, value_set=_pa_strings(present)))
        return pd.Index(pc.filter(ids, absent).to_pylist(), dtype=str)

    def check_all_seen(self, root: Path) -> None:
        missing = sorted(self.plates - self.seen)
        if missing:
            raise FileNotFoundError(
                f"{self.path.name} lists plate(s) {missing} but no plate file in {root} holds "
                "them; expected one .h5ad per plate, e.g. "
                f"{missing[0]}_filt_Vevo_Tahoe100M_WServicesFrom_ParseGigalab.h5ad"
            )


def _pa_strings(index: pd.Index) -> Any:
    import pyarrow as pa

    return pa.array(np.asarray(index.astype(str), dtype=object), type=pa.string())


@dataclass(frozen=True)
class _PlateReading:
    """How every plate file is read: the counts ``layer``, the ``vehicle``'s drug name,
    the treatment time, and the cell and sample filters and chunking of its pseudobulk
    (the parameters of :func:`read_tahoe`)."""

    layer: str | None
    vehicle: str
    time_h: float
    min_counts: float
    min_genes: int
    min_cells: int
    chunk_size: int
    progress: bool


def _read_plate(
    path: Path, reading: _PlateReading, manifest: _Manifest | None
) -> tuple[pd.DataFrame, Any, pd.DataFrame, Ledger, dict[str, Any]]:
    """Pseudobulk one plate file; its samples (with parsed conditions) and cell ledger."""
    where = str(path)
    with open_h5ad_file(path) as fh:
        f, obs, genes = read_cell_tables(
            fh, FIELD_ALIASES, required=REQUIRED, where=where, what="Tahoe obs"
        )
    conc_text = as_text(obs[f["drugconc"]])
    parsed = parse_drugname_drugconc(conc_text, where=f"{where} obs", column=f["drugconc"])
    drug_text = as_text(obs[f["drug"]])
    _check_drug_names(drug_text, conc_text, parsed, where=f"{where} obs", f=f)
    sample_text = as_text(obs[f["sample"]])
    plate_text = as_text(obs[f["plate"]])
    _check_one_condition(plate_text, sample_text, conc_text, where=f"{where} obs", f=f)
    wells = _wells(obs, f, where=f"{where} obs")
    groupby = [f["plate"], f["sample"], f["cell"], f["drugconc"]]
    pb = pseudobulk(
        path,
        groupby=groupby,
        layer=reading.layer,
        options=PseudobulkOptions(
            min_counts=reading.min_counts,
            min_genes=reading.min_genes,
            min_cells=reading.min_cells,
        ),
        chunk_size=reading.chunk_size,
        progress=reading.progress,
    )
    plate_ledger = pb.ledger
    plate_ledger.check_accounts_for(obs.index, stage=CELL_STAGE)
    if manifest is not None:
        for plate in sorted(set(plate_text) - {""}):
            gone = manifest.missing_cells(plate, obs.index)
            plate_ledger.drop(
                gone,
                stage=CELL_STAGE,
                reason="missing_counts",
                detail=f"in {manifest.path.name}, not in {path.name}",
            )
    counts = pb.counts
    cobs = counts.obs
    # the well of each sample, and the cell line's name
    key = (
        pd.Series(wells)
        .groupby([plate_text, sample_text])
        .agg(lambda w: "+".join(sorted(set(w) - {""})))
    )
    well = [
        key.get((p, s), "")
        for p, s in zip(as_text(cobs[f["plate"]]), as_text(cobs[f["sample"]]), strict=True)
    ]
    cell = as_text(cobs[f["cell"]])
    if "cell_name" in f:
        names = pd.Series(as_text(obs[f["cell_name"]]), index=as_text(obs[f["cell"]]))
        names = names[names != ""]
        names = names[~names.index.duplicated()]
        cell_name = [names.get(c, c) for c in cell]
    else:
        cell_name = list(cell)
    conc = as_text(cobs[f["drugconc"]])
    entries = [parsed[c] for c in conc]
    n_drugs = np.array([len(e) for e in entries])
    name = np.array(
        [e[0][0] if len(e) == 1 else " + ".join(x[0] for x in e) for e in entries], dtype=object
    )
    is_veh = (name == reading.vehicle) & (n_drugs == 1)
    value = np.array([e[0][1] if len(e) == 1 else np.nan for e in entries])
    unit = np.array([e[0][2] if len(e) == 1 else "uM" for e in entries], dtype=object)
    dose = np.where(is_veh, 0.0, np.nan)
    usable = ~is_veh & (n_drugs == 1)
    if usable.any():
        dose[usable] = dose_to_uM(
            value[usable], unit[usable], where=f"{where} column {f['drugconc']!r}"
        )
    samples = pd.DataFrame(
        {
            "assay": "Tahoe-100M pseudobulk",
            "plate": as_text(cobs[f["plate"]]),
            "well": well,
            "replicate": "",
            "cell_context": cell,
            "cell_name": cell_name,
            "perturbagen": name,
            "compound_id_source": name,
            "pert_type": np.where(is_veh, "vehicle", "compound"),
            "is_control": is_veh,
            "pert_dose_uM": dose,
            "pert_time_h": float(reading.time_h),
            "n_cells": cobs["n_cells"].to_numpy(),
            "tahoe_sample": as_text(cobs[f["sample"]]),
            "drugname_drugconc": conc,
            "dose_source": [
                f"{v:g} {u}" if v == v else "" for v, u in zip(value, unit, strict=True)
            ],
            "_n_drugs": n_drugs,
        },
        index=cobs.index,
    )
    logger.info("%s: %d cells → %d pseudobulk samples", where, len(obs), len(samples))
    return samples, counts.X, genes, plate_ledger, counts.uns["perturbridge"]["params"]


def _check_drug_names(
    drug: np.ndarray,
    conc: np.ndarray,
    parsed: dict[str, list[tuple[str, float, str]]],
    *,
    where: str,
    f: dict[str, str],
) -> None:
    """A single-drug ``drugname_drugconc`` must name the cell's ``drug``."""
    pairs = pd.DataFrame({"drug": drug, "conc": conc}).drop_duplicates()
    bad = [
        (d, c)
        for d, c in zip(pairs["drug"], pairs["conc"], strict=True)
        if d and c and len(parsed[c]) == 1 and parsed[c][0][0] != d
    ]
    if bad:
        raise FormatError(
            f"{where}: column {f['drug']!r} disagrees with {f['drugconc']!r} for "
            f"{len(bad)} pair(s), e.g. {bad[:_SHOW]}"
        )


def _check_one_condition(
    plate: np.ndarray, sample: np.ndarray, conc: np.ndarray, *, where: str, f: dict[str, str]
) -> None:
    """Every sample (treatment well) of a plate has one ``drugname_drugconc``."""
    frame = pd.DataFrame({"plate": plate, "sample": sample, "conc": conc})
    frame = frame[(frame["sample"] != "") & (frame["conc"] != "")].drop_duplicates()
    n = frame.groupby(["plate", "sample"]).size()
    multi = n[n > 1]
    if len(multi):
        p, s = multi.index[0]
        values = frame[(frame["plate"] == p) & (frame["sample"] == s)]["conc"].tolist()
        raise FormatError(
            f"{where}: {len(multi)} sample(s) carry several {f['drugconc']!r} values, e.g. "
            f"sample {s!r} on plate {p!r}: {values[:_SHOW]}; a sample is one treatment well"
        )


@register_source(name="tahoe")
class TahoeSource(SourceAdapter):
    """Tahoe-100M: one .h5ad per plate (+ obs_metadata.parquet), pseudobulked per plate."""

    option_groups: ClassVar[Mapping[str, type[Any]]] = {
        "plates": TahoePlates,
        "filters": TahoeFilters,
    }

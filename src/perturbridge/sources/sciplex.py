"""sci-Plex3 (Srivatsan et al., Science 2020) single cells → pseudobulk Samples.

Reads one single-cell ``.h5ad`` of sci-Plex3 as scPerturb, LaminDB or the authors'
``pData`` ship it: raw UMI counts in ``X`` (CSR; or a named layer), ``var`` indexed by
Ensembl gene id (a symbol column such as ``gene_short_name``/``gene_symbol`` is used
when present), one ``obs`` row per cell. The ``obs`` fields are found under any of
their documented spellings (:data:`FIELD_ALIASES`):

=============  ==================================================================
field          accepted columns (first present wins)
=============  ==================================================================
cell line      ``cell_line``, ``cell_type``, ``celltype``
compound       ``product_name``, ``perturbation``, ``pert_compound``, ``compound``
dose           ``dose``, ``dose_value``, ``pert_dose`` (numbers, or ``"1000nM"``)
dose unit      ``dose_unit``, ``pert_dose_unit`` (absent: nM, the original unit)
time           ``time_point``, ``time``, ``pert_time`` (hours unless a unit is given)
plate hash     ``top_oligo_P``, ``plate_oligo``, ``plate``
well hash      ``top_oligo_W``, ``well_oligo``, ``well``
optional       ``replicate``, ``vehicle``, ``catalog_number``, ``SMILES``,
               ``InChIKey``, ``CAS.Number``, ``target``, ``pathway``
=============  ==================================================================

Rules
-----
* **Vehicle.** A cell is a vehicle control when ``vehicle`` is true, its compound is
  ``control``/``vehicle``/``DMSO`` (any case), or its catalog number is ``S0000``;
  vehicles become ``perturbagen="DMSO"``, dose 0.
* **Cells** (stage ``pseudobulk``, one ledger entry per cell, first rule wins):
  a missing plate hash, well hash, cell line or compound → ``missing_metadata``
  (unassigned hashes are missing in the upstream); mitochondrial fraction (genes whose
  symbol starts with ``MT-``) above ``max_mito_fraction`` → ``mito_fraction``; then
  the rules of :func:`~perturbridge.pseudobulk.pseudobulk`: ``min_counts``,
  ``min_genes``, ``nucleus_quality`` (``quality_gene``, e.g. ``MALAT1``, below
  ``quality_min_fraction``), ``small_group`` (``min_cells``).
* **Pseudobulk samples** are plate hash × well hash × cell line × condition (compound,
  dose, time) × replicate. Sample ledger (stage ``ingest``): a treated sample
  without a usable dose → ``missing_dose``; without a time → ``missing_time``.
* **Identities.** ``perturbagen`` = the compound name as given, ``compound_id_source``
  = the catalog number (Selleck ``S…``) when present, else the name; SMILES, InChIKey
  and CAS go to the extra columns ``compound_smiles``, ``compound_inchikey`` and
  ``compound_cas``; ``cell_context`` = ``cell_name`` = the cell line as given (sci-Plex
  carries no Cellosaurus accession);
  :mod:`perturbridge.ids.annotate` resolves identities afterwards, as for every source.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..errors import FormatError
from ..pseudobulk import PseudobulkOptions, pseudobulk
from ..units import dose_to_uM
from ._base import (
    IngestResult,
    SourceAdapter,
    register_source,
)
from ._common import (
    STAGE,
    Accounts,
    Origin,
    Triage,
    categorical,
    is_missing,
    parse_bools,
    record_genes,
    replicate_rank,
    split_quantity,
    time_to_hours,
)
from ._singlecell import (
    CELL_STAGE,
    as_text,
    finish_samples,
    gene_fraction,
    key_column,
    lazy_anndata,
    open_h5ad_file,
    read_cell_tables,
    relabel_dropped,
)
from ._tables import require_file

__all__ = ["FIELD_ALIASES", "SciPlexSource", "SciplexFilters", "read_sciplex"]

logger = logging.getLogger(__name__)

FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "cell": ("cell_line", "cell_type", "celltype"),
    "compound": ("product_name", "perturbation", "pert_compound", "compound"),
    "dose": ("dose", "dose_value", "pert_dose"),
    "dose_unit": ("dose_unit", "pert_dose_unit"),
    "time": ("time_point", "time", "pert_time"),
    "time_unit": ("time_unit", "pert_time_unit"),
    "plate": ("top_oligo_P", "plate_oligo", "plate"),
    "well": ("top_oligo_W", "well_oligo", "well"),
    "replicate": ("replicate",),
    "vehicle": ("vehicle",),
    "catalog": ("catalog_number",),
    "smiles": ("SMILES", "smiles", "canonical_smiles"),
    "inchikey": ("InChIKey", "inchikey", "inchi_key"),
    "cas": ("CAS.Number", "cas_number", "CAS"),
    "target": ("target",),
    "pathway": ("pathway", "pathway_level_1"),
}
REQUIRED = ("cell", "compound", "dose", "time", "plate", "well")
#: Compound spellings of the vehicle (compared lower-case).
VEHICLE_NAMES = ("control", "vehicle", "dmso", "dimethyl sulfoxide")
VEHICLE_CATALOG = "S0000"
#: What the condition depends on (besides plate, well and cell line).
_CONDITION_FIELDS = ("compound", "dose", "dose_unit", "time", "time_unit", "vehicle", "catalog")
_EXTRA_FIELDS = ("smiles", "inchikey", "cas", "target", "pathway")


@dataclass(frozen=True)
class SciplexFilters:
    """Cell and pseudobulk filters of :func:`read_sciplex` (the fields are also its plan
    keys and ``--set`` names)."""

    #: drop cells with fewer UMIs / detected genes
    min_counts: float = 100
    min_genes: int = 50
    #: drop cells whose fraction of UMIs in ``MT-`` genes is above this (``None``: off)
    max_mito_fraction: float | None = 0.1
    #: nucleus quality rule, e.g. ``quality_gene="MALAT1"`` (symbol or id)
    quality_gene: str | None = None
    quality_min_fraction: float = 0.0
    #: drop pseudobulk samples with fewer cells
    min_cells: int = 1


def read_sciplex(
    h5ad: str | os.PathLike[str],
    *,
    layer: str | None = None,
    dataset: str = "sciplex3",
    filters: SciplexFilters | None = None,
    default_dose_unit: str = "nM",
    chunk_size: int = 100_000,
    progress: bool = False,
) -> IngestResult:
    """Read a sci-Plex3 single-cell ``.h5ad`` into pseudobulk Samples, streaming.

    Parameters
    ----------
    h5ad
        Single cells × genes, raw counts in ``X`` (CSR) or ``layer``.
    layer
        Read counts from this layer instead of ``X``.
    dataset
        Dataset name written to ``obs["dataset"]``.
    filters
        The cell and pseudobulk filters (:class:`SciplexFilters`; plans and ``--set``
        give its fields as flat keys, e.g. ``min_counts = 200``):

        min_counts, min_genes
            Drop cells with fewer UMIs / detected genes (see
            :func:`~perturbridge.pseudobulk.pseudobulk`).
        max_mito_fraction
            Drop cells whose fraction of UMIs in ``MT-`` genes is above this (computed
            here in one streaming pass); ``None`` turns the rule off.
        quality_gene, quality_min_fraction
            Nucleus quality rule, e.g. ``quality_gene="MALAT1"`` (symbol or id).
        min_cells
            Drop pseudobulk samples with fewer cells (each cell: ``small_group``).
    default_dose_unit
        Unit of doses given as bare numbers without a unit column (the original: nM).
    chunk_size
        Cells read at a time.
    progress
        Show a progress bar over the chunks.

    Returns
    -------
    IngestResult
        Pseudobulk Samples (counts) and the ledger of every cell (stage
        ``pseudobulk``), pseudobulk sample (``ingest``) and gene (``ingest_genes``).

    Examples
    --------
    >>> res = read_sciplex("SrivatsanTrapnell2020_sciplex3.h5ad",
    ...     filters=SciplexFilters(quality_gene="MALAT1", quality_min_fraction=0.005),
    ... )  # doctest: +SKIP
    >>> res.ledger.summary()  # doctest: +SKIP
    """
    filt = filters or SciplexFilters()
    path = require_file(h5ad, what="sci-Plex single-cell AnnData (.h5ad)")
    where = str(path)
    with open_h5ad_file(path) as fh:
        f, obs_in, genes = read_cell_tables(
            fh, FIELD_ALIASES, required=REQUIRED, where=where, what="sci-Plex obs"
        )
        conditions, cell_condition = _conditions(
            obs_in, f, where=f"{where} obs", default_dose_unit=default_dose_unit
        )
        text = {k: as_text(obs_in[f[k]]) for k in ("plate", "well", "cell", "replicate") if k in f}
        complete = np.logical_and.reduce([t != "" for t in text.values()] + [cell_condition != ""])
        hide = np.zeros(len(obs_in), dtype=bool)
        mito_detail = np.empty(0, dtype=object)
        if filt.max_mito_fraction is not None:
            hide, mito_detail = _mito_rule(
                fh, genes, complete, filt.max_mito_fraction, layer=layer, chunk_size=chunk_size,
                where=where,
            )  # fmt: skip
        cells = pd.DataFrame(
            {
                "plate": key_column(text["plate"], hide=hide),
                "well": key_column(text["well"]),
                "cell_line": key_column(text["cell"]),
                "condition": key_column(cell_condition),
            },
            index=obs_in.index,
        )
        groupby = ["plate", "well", "cell_line", "condition"]
        if "replicate" in text:
            cells["replicate"] = key_column(text["replicate"])
            groupby.append("replicate")
        var = pd.DataFrame({"symbol": genes["symbol"].to_numpy()}, index=genes.index)
        pb = pseudobulk(
            lazy_anndata(fh, cells, var, layer=layer),
            groupby=groupby,
            options=PseudobulkOptions(
                min_counts=filt.min_counts,
                min_genes=filt.min_genes,
                quality_gene=filt.quality_gene,
                quality_min_fraction=filt.quality_min_fraction,
                min_cells=filt.min_cells,
            ),
            chunk_size=chunk_size,
            progress=progress,
        )
    ledger = pb.ledger
    if hide.any():
        ledger = relabel_dropped(
            ledger, obs_in.index[hide], stage=CELL_STAGE, reason="mito_fraction", detail=mito_detail
        )
    counts = pb.counts
    samples_obs, triage = _samples(counts.obs, conditions, text_has_replicate="replicate" in text)
    triage.record(ledger, stage=STAGE, kept_detail=samples_obs["pert_type"].to_numpy())
    keep_gene = record_genes(ledger, genes.index)
    kept = np.flatnonzero(triage.kept)
    obs = samples_obs.iloc[kept].copy()
    obs["cell_context"] = obs["cell_name"].astype(str).to_numpy()  # the cell line as given
    obs.insert(0, "dataset", dataset)
    if "replicate" not in text:
        obs["replicate"] = replicate_rank(obs)
    for c in ("compound_smiles", "compound_cas", "compound_catalog", "target", "pathway"):
        obs[c] = categorical(obs[c])
    var_out = pd.DataFrame(
        {"symbol": genes["symbol"].to_numpy(), "var_name": genes["var_name"].to_numpy()},
        index=genes.index,
    ).iloc[np.flatnonzero(keep_gene)]
    logger.info(
        "%s: %d of %d pseudobulk samples kept from %d cells",
        where,
        len(obs),
        counts.n_obs,
        len(obs_in),
    )
    return finish_samples(
        counts.X[kept][:, np.flatnonzero(keep_gene)],
        obs,
        var_out,
        accounts=Accounts(ledger, samples=counts.obs_names, genes=genes.index, cells=obs_in.index),
        origin=Origin(
            inputs=[path],
            params={
                "source": "sciplex",
                "dataset": dataset,
                "layer": layer,
                "max_mito_fraction": filt.max_mito_fraction,
                "default_dose_unit": default_dose_unit,
            },
            where=where,
        ),
        pseudobulk_params={path.name: counts.uns["perturbridge"]["params"]},
    )


def _conditions(
    obs: pd.DataFrame, f: dict[str, str], *, where: str, default_dose_unit: str
) -> tuple[pd.DataFrame, np.ndarray]:
    """The distinct conditions and each cell's condition label (``""``: no compound).

    Values are parsed once per distinct combination, so a bad dose or time is reported
    by value (naming the file and column) before any count is read.
    """
    fields = [k for k in (*_CONDITION_FIELDS, *_EXTRA_FIELDS) if k in f]
    raw = pd.DataFrame({k: as_text(obs[f[k]]) for k in fields}, index=obs.index)
    codes, uniq_idx = pd.factorize(pd.MultiIndex.from_frame(raw[fields]))
    uniq = pd.DataFrame(list(uniq_idx), columns=fields)
    name = uniq["compound"]
    vehicle = name.str.lower().isin(VEHICLE_NAMES).to_numpy()
    if "vehicle" in uniq:
        vehicle |= parse_bools(uniq["vehicle"], column=f["vehicle"], where=where)
    if "catalog" in uniq:
        vehicle |= (uniq["catalog"] == VEHICLE_CATALOG).to_numpy()
    dose_num, dose_unit = split_quantity(
        uniq["dose"], column=f["dose"], where=where, default_unit=""
    )
    if "dose_unit" in uniq:
        given = uniq["dose_unit"].to_numpy(dtype=object)
        dose_unit = np.where(dose_unit == "", given, dose_unit)
    dose_unit = np.where(dose_unit == "", default_dose_unit, dose_unit)
    treated = ~vehicle & (name != "").to_numpy()
    usable = treated & np.isfinite(dose_num)
    dose = np.where(vehicle, 0.0, np.nan)
    dose[usable] = dose_to_uM(
        dose_num[usable],
        dose_unit[usable],
        where=f"{where} column {f.get('dose_unit', f['dose'])!r}",
    )
    t_num, t_unit = split_quantity(uniq["time"], column=f["time"], where=where, default_unit="h")
    if "time_unit" in uniq:
        t_unit = np.where(uniq["time"].str.match(r"^\s*[-+.\d]+\s*$"), uniq["time_unit"], t_unit)
    time = time_to_hours(t_num, t_unit, column=f["time"], where=where)
    label = np.array(
        [
            "" if not nm else (
                f"DMSO|{t:g}h" if veh else f"{nm}|{d:.6g}uM|{t:g}h"
            )
            for nm, veh, d, t in zip(name, vehicle, dose, time, strict=True)
        ],
        dtype=object,
    )  # fmt: skip
    catalog = uniq["catalog"] if "catalog" in uniq else pd.Series("", index=uniq.index)
    table = pd.DataFrame(
        {
            "condition": label,
            "perturbagen": np.where(vehicle, "DMSO", name),
            "compound_name_source": name.to_numpy(),
            "compound_id_source": np.where(catalog != "", catalog, name),
            "compound_catalog": catalog.to_numpy(),
            "is_vehicle": vehicle,
            "pert_dose_uM": dose,
            "dose_source": (uniq["dose"] + " " + pd.Series(dose_unit)).str.strip().to_numpy(),
            "pert_time_h": time,
            **{
                col: (uniq[k].to_numpy() if k in uniq else np.full(len(uniq), "", dtype=object))
                for k, col in (
                    ("smiles", "compound_smiles"),
                    ("inchikey", "compound_inchikey"),
                    ("cas", "compound_cas"),
                    ("target", "target"),
                    ("pathway", "pathway"),
                )
            },
        }
    )
    table = table[table["condition"] != ""].drop_duplicates("condition").set_index("condition")
    return table, label[codes]


def _mito_rule(
    fh: Any,
    genes: pd.DataFrame,
    complete: np.ndarray,
    max_fraction: float,
    *,
    layer: str | None,
    chunk_size: int,
    where: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Cells (with complete keys) whose ``MT-`` fraction exceeds ``max_fraction``."""
    if not 0.0 <= max_fraction <= 1.0:
        raise ValueError(f"max_mito_fraction must lie in [0, 1]; found {max_fraction!r}")
    mito = np.flatnonzero(genes["symbol"].astype(str).str.upper().str.startswith("MT-"))
    if not mito.size:
        raise FormatError(
            f"{where}: no mitochondrial genes (symbols starting with 'MT-') in var to compute "
            "the mitochondrial fraction; give var a symbol column (e.g. gene_short_name) or "
            "pass max_mito_fraction=None"
        )
    _, frac = gene_fraction(fh, mito, layer=layer, chunk_size=chunk_size)
    hide = complete & (frac > max_fraction)
    detail = np.array(
        [f"mito fraction {v:.4g} > max_mito_fraction {max_fraction:g}" for v in frac[hide]],
        dtype=object,
    )
    return hide, detail


def _samples(
    pb_obs: pd.DataFrame, conditions: pd.DataFrame, *, text_has_replicate: bool
) -> tuple[pd.DataFrame, Triage]:
    """Samples ``obs`` (before dataset/identity columns) and the sample triage."""
    cond = conditions.loc[list(pb_obs["condition"].astype(str))]
    veh = cond["is_vehicle"].to_numpy(dtype=bool)
    dose = cond["pert_dose_uM"].to_numpy(dtype=float)
    time = cond["pert_time_h"].to_numpy(dtype=float)
    triage = Triage(pb_obs.index)
    triage.drop(
        ~veh & ~(np.isfinite(dose) & (dose > 0)),
        "missing_dose",
        ("dose=" + cond["dose_source"].astype(str)).to_numpy(),
    )
    triage.drop(~(np.isfinite(time) & (time >= 0)), "missing_time", "time is missing")
    obs = pd.DataFrame(
        {
            "assay": "sci-Plex pseudobulk",
            "plate": pb_obs["plate"].astype(str).to_numpy(),
            "well": pb_obs["well"].astype(str).to_numpy(),
            "replicate": (pb_obs["replicate"].astype(str).to_numpy() if text_has_replicate else ""),
            "cell_context": None,
            "cell_name": pb_obs["cell_line"].astype(str).to_numpy(),
            "perturbagen": cond["perturbagen"].to_numpy(),
            "compound_id_source": cond["compound_id_source"].to_numpy(),
            "compound_inchikey": categorical(cond["compound_inchikey"].to_numpy()),
            "pert_type": np.where(veh, "vehicle", "compound"),
            "is_control": veh,
            "pert_dose_uM": dose,
            "pert_time_h": time,
            "n_cells": pb_obs["n_cells"].to_numpy(),
            "compound_smiles": cond["compound_smiles"].to_numpy(),
            "compound_cas": cond["compound_cas"].to_numpy(),
            "compound_catalog": cond["compound_catalog"].to_numpy(),
            "compound_name_source": cond["compound_name_source"].to_numpy(),
            "dose_source": cond["dose_source"].to_numpy(),
            "target": cond["target"].to_numpy(),
            "pathway": cond["pathway"].to_numpy(),
        },
        index=pb_obs.index,
    )
    obs["compound_name_source"] = categorical(obs["compound_name_source"])
    obs["dose_source"] = categorical(obs["dose_source"])
    missing = is_missing(obs["compound_smiles"])
    logger.debug("%d samples without SMILES", int(missing.sum()))
    return obs, triage


@register_source(name="sciplex")
class SciPlexSource(SourceAdapter):
    """sci-Plex3 single cells (scPerturb / LaminDB / authors' h5ad), pseudobulked."""

    option_groups: ClassVar[Mapping[str, type[Any]]] = {"filters": SciplexFilters}

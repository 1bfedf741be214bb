"""Small seeded datasets written in the exact upstream layouts, with planted effects.

One writer per count-table source writes a folder of files as the upstream project
ships them, and returns an :class:`UpstreamFixture`: the paths, the planted log2 fold
changes of every treated condition against vehicle (``truth``) and the role of every
written sample (``layout``). The source adapters read these folders in the tests, and
:meth:`UpstreamFixture.recovery` scores how well a DE result recovers the truth.

=====================  ============================================================
writer                 files
=====================  ============================================================
:func:`write_op3`      ``op3_pseudobulk.h5ad`` (well × cell type pseudobulk counts,
                       Kaggle obs columns, gene symbols)
:func:`write_moabox`   ``DRUGseq_U2OS_MoABox_plate_wells_metadata_public.txt``,
                       ``MoABox_compounds_metadata.txt``,
                       ``robust_RC_ReferenceControl_DMSO_wells.txt``,
                       ``drugseq_ensg_v98.tsv`` and one ``UMI.counts_<plate>.tsv``
                       per plate (genes ``SYMBOL,grch38_<chr>`` × ``<plate>_<well
                       index>``, written as R ``write.table`` does)
:func:`write_vcpi`     ``metadata-<job>.csv``, ``vcpi_<job>_counts.parquet``
                       (``gene_id`` × ``sequenced_id``, ERCC spike-ins included),
                       ``chemistry-<job>.csv``
:func:`write_gdpx2`    ``Metadata.csv`` (with the upstream's exact duplicate rows) and
                       ``GDPx2-GeneCounts.h5`` (dense ``gene_counts`` samples × genes,
                       its dimnames and a CSC ``sparse_matrix``); or, with
                       ``layout="lamin"``, one curated ``gdpx2.h5ad``
=====================  ============================================================

Counts follow the model of :mod:`perturbridge.simulate.counts` (negative binomial
with gene-wise means and dispersions, per-sample library sizes, per-plate batch
effects), driven by an explicit plate layout (:func:`simulate_layout_counts`), so a
layout read from a real metadata file can be filled with counts too. A treated
condition's planted effect is a sparse signature of its compound in its cell context,
scaled with dose by a Hill curve; vehicles, empty wells and spike-ins carry none.

Long because each bulk DRUG-seq family (OP3, MoA Box, VCPI, GDPx2) is one writer of one
upstream layout sharing the count model and plate helpers at the top of this module.
"""

from __future__ import annotations

import os
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

__all__ = [
    "Gdpx2Design",
    "MoaBoxDesign",
    "Op3Design",
    "UpstreamFixture",
    "VcpiDesign",
    "simulate_layout_counts",
    "write_gdpx2",
    "write_moabox",
    "write_moabox_umi_counts",
    "write_op3",
    "write_vcpi",
]

_ROWS = string.ascii_uppercase[:16]
#: ERCC spike-in ids as they appear in upstream count tables.
ERCC_IDS = (
    "ERCC-00002", "ERCC-00003", "ERCC-00004", "ERCC-00009", "ERCC-00012", "ERCC-00013",
    "ERCC-00014", "ERCC-00016", "ERCC-00017", "ERCC-00019", "ERCC-00022", "ERCC-00024",
)  # fmt: skip


@dataclass
class UpstreamFixture:
    """A written upstream dataset and its ground truth.

    ``truth`` has one row per treated condition, indexed by ``(cell_name,
    compound_id, dose_uM, time_h)`` in the upstream identities that the adapter keeps
    in ``cell_name`` and ``compound_id_source``, and one column per gene id as the
    adapter keys ``var``. ``layout`` has one row per written sample (its upstream id
    as index) with its ``role`` (``vehicle``, ``compound``, ``positive_control``,
    ``empty``, ...).
    """

    source: str
    files: dict[str, Path]
    truth: pd.DataFrame
    layout: pd.DataFrame

    def recovery(self, effects: ad.AnnData) -> dict[str, float]:
        """Pearson r between estimated and planted logFC over matched contrasts × genes.

        Contrasts are matched on ``(cell_name, compound_id_source, pert_dose_uM,
        pert_time_h)``; genes the DE step filtered out (NaN) are skipped. Returns
        ``r``, the median per-contrast ``r_median``, ``n_contrasts`` and ``n_values``.
        """
        obs = effects.obs
        keys = list(
            zip(
                obs["cell_name"].astype(str),
                obs["compound_id_source"].astype(str),
                np.round(obs["pert_dose_uM"].to_numpy(dtype=float), 6),
                np.round(obs["pert_time_h"].to_numpy(dtype=float), 6),
                strict=True,
            )
        )
        tidx = pd.MultiIndex.from_tuples(
            [
                (str(a), str(b), round(float(c), 6), round(float(d), 6))
                for a, b, c, d in self.truth.index
            ]
        )
        pos = tidx.get_indexer(pd.MultiIndex.from_tuples(keys))
        rows = np.flatnonzero(pos >= 0)
        genes = effects.var_names.intersection(self.truth.columns)
        est = np.asarray(effects.layers["logFC"])[rows][:, effects.var_names.get_indexer(genes)]
        tru = self.truth.to_numpy()[pos[rows]][:, self.truth.columns.get_indexer(genes)]
        ok = np.isfinite(est)
        per = [
            np.corrcoef(e[m], t[m])[0, 1]
            for e, t, m in zip(est, tru, ok, strict=True)
            if m.sum() > 2 and np.std(t[m]) > 0
        ]
        r = float(np.corrcoef(est[ok], tru[ok])[0, 1]) if ok.sum() > 2 else float("nan")
        return {
            "r": r,
            "r_median": float(np.median(per)) if per else float("nan"),
            "n_contrasts": len(rows),
            "n_values": int(ok.sum()),
        }


def simulate_layout_counts(
    layout: pd.DataFrame,
    genes: Sequence[str],
    *,
    seed: int = 0,
    frac_affected: float = 0.15,
    effect_sd: float = 1.5,
    mean_library_size: float = 2e5,
    no_effect_genes: Sequence[str] = (),
    vehicle_level_sd: float = 0.0,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Negative-binomial counts for the samples of ``layout``, with planted effects.

    Parameters
    ----------
    layout
        One row per sample with columns ``plate``, ``context`` (cell context),
        ``compound`` (missing for vehicles and empty wells), ``dose_uM``, ``time_h``
        and optionally ``library_scale`` (e.g. 0.01 for empty wells) and
        ``vehicle_level`` (e.g. the DMSO volume of every well).
    genes
        Gene ids (columns of the result).
    no_effect_genes
        Genes that no compound affects (e.g. spike-ins).
    vehicle_level_sd
        SD of a per-gene log2 shift shared by all samples of a ``vehicle_level``
        (treated and vehicle alike), so that only a level-matched vehicle gives the
        planted effect.

    Returns
    -------
    counts, truth
        Samples × genes integer counts (float64), and the planted log2 fold changes
        indexed by ``(context, compound, dose_uM, time_h)``.
    """
    rng = np.random.default_rng(seed)
    n = len(layout)
    g = len(genes)
    log_mu = rng.normal(-10.5, 2.2, g) if g else np.zeros(0)
    contexts = pd.unique(layout["context"].astype(str))
    ctx_mu = {c: log_mu + rng.normal(0, 0.3, g) for c in contexts}
    disp = 0.02 + 0.4 * np.exp(-(rng.normal(0, 1, g) ** 2))
    size = 1.0 / disp
    batch = {p: rng.normal(0, 0.15, g) for p in pd.unique(layout["plate"].astype(str))}
    can_move = ~np.isin(np.asarray(genes, dtype=object), np.asarray(no_effect_genes, dtype=object))
    compound = layout["compound"].astype(object)
    treated = compound.notna().to_numpy() & (compound.astype(str) != "").to_numpy()
    dose = layout["dose_uM"].to_numpy(dtype=float)
    time = layout["time_h"].to_numpy(dtype=float)
    ctx = layout["context"].astype(str).to_numpy()
    # a compound's signature: shared across contexts, plus a context-specific part
    signature: dict[tuple[str, str], np.ndarray] = {}
    shared: dict[str, np.ndarray] = {}
    ec50: dict[str, float] = {}
    for c in pd.unique(compound[treated].astype(str)):
        mask = (rng.random(g) < frac_affected) & can_move
        shared[c] = rng.normal(0, effect_sd, g) * mask
        doses = dose[treated & (compound.astype(str) == c).to_numpy()]
        ec50[c] = float(np.exp(np.mean(np.log(doses[doses > 0])))) if (doses > 0).any() else 1.0
    keys = []
    for i in np.flatnonzero(treated):
        key = (ctx[i], str(compound.iloc[i]))
        if key not in signature:
            own = rng.normal(0, 0.3 * effect_sd, g) * (shared[key[1]] != 0)
            signature[key] = shared[key[1]] + own
        keys.append((ctx[i], str(compound.iloc[i]), float(dose[i]), float(time[i])))
    truth_keys = list(dict.fromkeys(keys))

    def lfc_of(c: str, k: str, d: float) -> np.ndarray:
        scale = 0.35 + 0.65 * d / (d + ec50[k]) if d > 0 else 0.35
        return signature[(c, k)] * scale

    lib_scale = (
        layout["library_scale"].to_numpy(dtype=float)
        if "library_scale" in layout.columns
        else np.ones(n)
    )
    lib = mean_library_size * np.exp(rng.normal(0, 0.4, n)) * lib_scale
    shift = np.zeros((n, g))
    if vehicle_level_sd > 0 and "vehicle_level" in layout.columns:
        level = layout["vehicle_level"].astype(str).to_numpy()
        for lv in pd.unique(level):
            shift[level == lv] = rng.normal(0, vehicle_level_sd, g) * can_move
    counts = np.empty((n, g))
    plates = layout["plate"].astype(str).to_numpy()
    mu_frac = {c: np.exp(m) / np.exp(m).sum() for c, m in ctx_mu.items()}
    for s_i in range(n):
        eff = lfc_of(ctx[s_i], str(compound.iloc[s_i]), dose[s_i]) if treated[s_i] else 0.0
        log2_fc = eff + shift[s_i]
        mu = lib[s_i] * mu_frac[ctx[s_i]] * np.exp(batch[plates[s_i]] + log2_fc * np.log(2))
        counts[s_i] = rng.negative_binomial(size, size / (size + mu))
    truth = pd.DataFrame(
        np.array([lfc_of(c, k, d) for c, k, d, _ in truth_keys]).reshape(len(truth_keys), g),
        index=pd.MultiIndex.from_tuples(
            truth_keys, names=["cell_name", "compound_id", "dose_uM", "time_h"]
        ),
        columns=pd.Index([str(x) for x in genes]),
    )
    return counts, truth


def _genes(genes: Sequence[str] | None, n: int, prefix: str) -> list[str]:
    if genes is None:
        return [f"{prefix}{j + 1}" for j in range(n)]
    genes = [str(x) for x in genes]
    if len(genes) < n:
        raise ValueError(f"need {n} gene ids, got {len(genes)}")
    return genes[:n]


def _well(i: int) -> tuple[str, int]:
    """Row letter and 1-based column of the ``i``-th well of a 384-well plate (column-major)."""
    col, row = divmod(i, 16)
    return _ROWS[row], col + 1


def _barcode(rng: np.random.Generator, n: int, length: int) -> list[str]:
    out: set[str] = set()
    res: list[str] = []
    while len(res) < n:
        b = "".join(rng.choice(list("ACGT"), length))
        if b not in out:
            out.add(b)
            res.append(b)
    return res


# ---------------------------------------------------------------------------------- OP3

OP3_VEHICLE = ("Dimethyl Sulfoxide", "LSM-36361", "CS(C)=O")
OP3_POSITIVE = (("Belinostat", "LSM-43181"), ("Dabrafenib", "LSM-6303"))
OP3_CELL_TYPES = ("T cells", "NK cells", "B cells", "Myeloid cells")


@dataclass(frozen=True)
class Op3Design:
    """The plates of :func:`write_op3`: the cell types, one plate per donor, and the
    vehicle wells per plate."""

    cell_types: Sequence[str] = OP3_CELL_TYPES
    n_donors: int = 3
    n_vehicle_wells: int = 6


def write_op3(
    folder: str | os.PathLike[str],
    design: Op3Design | None = None,
    *,
    genes: Sequence[str] | None = None,
    compounds: Sequence[str] | None = None,
    n_genes: int = 300,
    n_compounds: int = 12,
    seed: int = 0,
) -> UpstreamFixture:
    """Write an OP3 pseudobulk ``.h5ad`` (one plate per donor, one well per compound).

    ``genes`` (symbols) and ``compounds`` (``sm_name`` spellings) default to synthetic
    names; pass the real OP3 gene columns and names to mimic the release. ``design``:
    the cell types, donors and vehicle wells (:class:`Op3Design`).
    """
    op3_design = design or Op3Design()
    cell_types, n_donors, n_vehicle_wells = (
        op3_design.cell_types,
        op3_design.n_donors,
        op3_design.n_vehicle_wells,
    )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    gene_ids = _genes(genes, n_genes, "GENE")
    names = (
        list(compounds)[:n_compounds]
        if compounds is not None
        else [f"Compound-{k + 1:02d}" for k in range(n_compounds)]
    )
    if len(names) < n_compounds:
        raise ValueError(f"need {n_compounds} compound names, got {len(names)}")
    lincs = {nm: f"LSM-{2000 + k}" for k, nm in enumerate(names)}
    smiles = {nm: "C" * (k + 2) + "O" for k, nm in enumerate(names)}
    plate_wells: list[tuple[str, str, str, bool]] = []  # (sm_name, lincs, smiles, control)
    plate_wells += [(OP3_VEHICLE[0], OP3_VEHICLE[1], OP3_VEHICLE[2], True)] * n_vehicle_wells
    plate_wells += [(nm, lid, "CC", True) for nm, lid in OP3_POSITIVE]
    plate_wells += [(nm, lincs[nm], smiles[nm], False) for nm in names]
    rows = []
    for d in range(n_donors):
        plate = f"plate_{d}"
        for w, (nm, lid, smi, ctl) in enumerate(plate_wells):
            r, cn = divmod(w, 12)
            for ct in cell_types:
                role = (
                    "vehicle"
                    if nm == OP3_VEHICLE[0]
                    else ("positive_control" if ctl else "compound")
                )
                rows.append(
                    {
                        "id": f"{plate}_{_ROWS[r]}{cn + 1}_{ct.replace(' ', '_')}",
                        "cell_type": ct,
                        "sm_name": nm,
                        "sm_lincs_id": lid,
                        "SMILES": smi,
                        "control": ctl,
                        "dose_uM": 1.0,
                        "timepoint_hr": 24.0,
                        "plate_name": plate,
                        "row": _ROWS[r],
                        "col": cn + 1,
                        "well": f"{_ROWS[r]}{cn + 1}",
                        "donor_id": f"donor_{d}",
                        "library_id": f"library_{d}_{r}",
                        "cell_count_by_well_celltype": int(rng.integers(20, 400)),
                        "split": "control"
                        if ctl
                        else ("train" if rng.random() < 0.7 else "public_test"),
                        "role": role,
                    }
                )
    obs = pd.DataFrame(rows).set_index("id")
    obs.index.name = None
    layout = pd.DataFrame(
        {
            "plate": obs["plate_name"],
            "context": obs["cell_type"],
            "compound": obs["sm_lincs_id"].where(obs["role"] != "vehicle", cast(Any, None)),
            "dose_uM": obs["dose_uM"],
            "time_h": obs["timepoint_hr"],
            "library_scale": obs["cell_count_by_well_celltype"] / 200.0,
        }
    )
    counts, truth = simulate_layout_counts(layout, gene_ids, seed=seed + 1)
    truth = truth.loc[[k for k in truth.index if k[1] in set(lincs.values())]]
    roles = obs.pop("role")
    for c in ("cell_type", "sm_name", "sm_lincs_id", "SMILES", "plate_name", "row", "well",
              "donor_id", "library_id", "split"):  # fmt: skip
        obs[c] = obs[c].astype("category")
    adata = ad.AnnData(
        X=counts.astype(np.float32), obs=obs, var=pd.DataFrame(index=pd.Index(gene_ids))
    )
    path = folder / "op3_pseudobulk.h5ad"
    adata.write_h5ad(path)
    return UpstreamFixture("op3", {"h5ad": path}, truth, pd.DataFrame({"role": roles}))


# ---------------------------------------------------------------------- DRUG-seq MoA Box

MOABOX_DMSO = "CB-43-EP73"
MOABOX_WATER = "EC-27-RY89"
MOABOX_POSITIVE = ("EA-18-FP00", "SE-15-AV21", "BD-11-DV28")
MOABOX_DOSES_UM = (0.01, 0.1, 1.0, 10.0)
MOABOX_METADATA_COLUMNS = (
    "analysis_id", "investigation_id", "investigation_name", "batch_id", "plate_replicate",
    "experiment_id", "plate_name", "plate_barcode", "plate_index", "well_id", "well_index",
    "col", "row", "well_type", "cell_line_name", "cell_line_ncn", "concentration", "unit",
    "hours_post_treatment", "biosample_id", "external_biosample_id", "cmpd_sample_id",
    "plate_well",
)  # fmt: skip


def _moabox_id(rng: np.random.Generator) -> str:
    a = "".join(rng.choice(list(string.ascii_uppercase), 2))
    b = "".join(rng.choice(list(string.ascii_uppercase), 2))
    return f"{a}-{rng.integers(0, 100):02d}-{b}{rng.integers(0, 100):02d}"


def write_moabox_umi_counts(
    counts: np.ndarray,
    genes: Sequence[str],
    sample_ids: Sequence[str],
    plates: Sequence[str],
    folder: str | os.PathLike[str],
) -> dict[str, Path]:
    """Write one ``UMI.counts_<plate>.tsv`` per plate as R ``write.table`` does.

    Rows are the ``gene.ID`` strings, columns ``<plate_barcode>_<well_index>``; the
    header has no name for the row-name column.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plates_arr = np.asarray(plates, dtype=object)
    out: dict[str, Path] = {}
    for plate in pd.unique(plates_arr):
        idx = np.flatnonzero(plates_arr == plate)
        df = pd.DataFrame(
            counts[idx].T.astype(np.int64),
            index=list(genes),
            columns=[sample_ids[int(i)] for i in idx],
        )
        path = folder / f"UMI.counts_{plate}.tsv"
        with open(path, "w") as fh:
            fh.write("\t".join(df.columns) + "\n")
            df.to_csv(fh, sep="\t", header=False)
        out[f"counts_{plate}"] = path
    return out


@dataclass(frozen=True)
class MoaBoxDesign:
    """The wells of a :func:`write_moabox` plate besides the compounds and controls:
    ``n_empty`` ``EMPTY`` (water) wells, ``n_robust_rc`` of the RC wells listed as robust."""

    n_empty: int = 7
    n_robust_rc: int = 2


def write_moabox(
    folder: str | os.PathLike[str],
    design: MoaBoxDesign | None = None,
    *,
    genes: Sequence[str] | None = None,
    compounds: pd.DataFrame | None = None,
    n_genes: int = 300,
    n_batches: int = 2,
    n_compounds_per_batch: int = 8,
    seed: int = 0,
) -> UpstreamFixture:
    """Write a Novartis DRUG-seq U2OS MoA Box dataset: batches × 3 replicate plates.

    Each plate holds every compound of its batch at the four doses (``SA``), 16 DMSO
    reference-control wells in column 23 (``RC``), the three positive controls in
    triplicate at 10 µM in column 24 and ``n_empty`` ``EMPTY`` (water) wells. Of the RC
    wells ``n_robust_rc`` per plate are listed as robust. ``genes`` are symbols (made
    into ``SYMBOL,grch38_<chr>`` ids); ``compounds`` is a table with ``cmpd_sample_id``,
    ``inchi_key``, ``smiles`` (e.g. rows of the real ``MoABox_compounds_metadata.txt``).
    ``design``: the empty and robust RC wells (:class:`MoaBoxDesign`).
    """
    moabox_design = design or MoaBoxDesign()
    n_empty, n_robust_rc = moabox_design.n_empty, moabox_design.n_robust_rc
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    symbols = _genes(genes, n_genes, "GENE")
    chroms = rng.choice([*map(str, range(1, 23)), "X", "Y"], len(symbols))
    gene_ids = [f"{s},grch38_{c}" for s, c in zip(symbols, chroms, strict=True)]
    n_cmp = n_batches * n_compounds_per_batch
    if compounds is None:
        ids: list[str] = []
        while len(ids) < n_cmp:
            x = _moabox_id(rng)
            if x not in ids and x not in (MOABOX_DMSO, MOABOX_WATER, *MOABOX_POSITIVE):
                ids.append(x)
        cmp_table = pd.DataFrame(
            {
                "cmpd_sample_id": ids,
                "inchi_key": [
                    "".join(rng.choice(list(string.ascii_uppercase), 14)) + "-UHFFFAOYSA-N"
                    for _ in ids
                ],
                "smiles": ["C" * (k + 2) + "N" for k in range(n_cmp)],
                "cas_number": "",
                "moa": "",
            }
        )
    else:
        cmp_table = compounds.loc[:, ["cmpd_sample_id", "inchi_key", "smiles"]].head(n_cmp).copy()
        if len(cmp_table) < n_cmp:
            raise ValueError(f"need {n_cmp} compounds, got {len(cmp_table)}")
        cmp_table["cas_number"] = ""
        cmp_table["moa"] = ""
    extra = pd.DataFrame(
        {
            "cmpd_sample_id": [MOABOX_DMSO, MOABOX_WATER, *MOABOX_POSITIVE],
            "inchi_key": [
                "IAZDPXIOMUYVGZ-UHFFFAOYSA-N",
                "XLYOFNOQVPJJNP-UHFFFAOYSA-N",
                "HYFHYPWGAURHIV-JFIAXGOJSA-N",
                "NUUSUAWULNXMGF-UHFFFAOYSA-N",
                "",
            ],
            "smiles": ["C[S+](C)[O-]", "O", "", "O=C(Nc1ccc(Cl)c(Cl)c1)Nc1ccc2nnsc2c1", ""],
            "cas_number": "",
            "moa": "",
        }
    )
    cmp_table = pd.concat([cmp_table, extra], ignore_index=True)
    well_index = _barcode(rng, 384, 10)
    rows = []
    robust = []
    biosample = 1_990_000
    for b in range(n_batches):
        batch_cmp = cmp_table["cmpd_sample_id"].iloc[
            b * n_compounds_per_batch : (b + 1) * n_compounds_per_batch
        ]
        wells: list[tuple[int, str, str, float]] = []  # (well number, type, compound, dose)
        k = 0
        for c in batch_cmp:
            for d in MOABOX_DOSES_UM:
                wells.append((k, "SA", c, d))
                k += 1
        wells += [(22 * 16 + r, "RC", MOABOX_DMSO, 0.0) for r in range(16)]
        for j, c in enumerate(MOABOX_POSITIVE):
            wells += [(23 * 16 + 3 * j + r, "SA", c, 10.0) for r in range(3)]
        wells += [(23 * 16 + 9 + r, "EMPTY", MOABOX_WATER, 0.0) for r in range(n_empty)]
        for rep in (1, 2, 3):
            barcode = f"VH0{2010000 + 10 * b + rep}"
            pidx = "".join(rng.choice(list("ACGT"), 8))
            rc_rows = []
            for wnum, wtype, cmpd, dose in wells:
                r, c = _well(wnum)
                biosample += 1
                rows.append(
                    {
                        "analysis_id": 24,
                        "investigation_id": 2384,
                        "investigation_name": "DRUG-seq_CBT_U2OS_MoA",
                        "batch_id": b + 1,
                        "plate_replicate": rep,
                        "experiment_id": 6400 + 3 * b + rep,
                        "plate_name": f"U-2_OS_MoA_batch{b + 1}_rep{rep}",
                        "plate_barcode": barcode,
                        "plate_index": pidx,
                        "well_id": f"{r}{c:02d}",
                        "well_index": well_index[wnum],
                        "col": c,
                        "row": _ROWS.index(r) + 1,
                        "well_type": wtype,
                        "cell_line_name": "U-2 OS",
                        "cell_line_ncn": "FH55-48QE",
                        "concentration": dose,
                        "unit": "uM",
                        "hours_post_treatment": 24,
                        "biosample_id": biosample,
                        "external_biosample_id": _moabox_id(rng),
                        "cmpd_sample_id": cmpd,
                        "plate_well": f"{barcode}_{well_index[wnum]}",
                    }
                )
                if wtype == "RC":
                    rc_rows.append(rows[-1])
            for rr in rng.choice(len(rc_rows), n_robust_rc, replace=False):
                rc = rc_rows[int(rr)]
                robust.append(
                    {
                        "batch_id": rc["batch_id"],
                        "plate_barcode": rc["plate_barcode"],
                        "well_id": rc["well_id"],
                        "plate_well": rc["plate_well"],
                    }
                )
    meta = pd.DataFrame(rows, columns=list(MOABOX_METADATA_COLUMNS))
    role = np.select(
        [
            meta["well_type"].eq("RC"),
            meta["well_type"].eq("EMPTY"),
            meta["cmpd_sample_id"].isin(MOABOX_POSITIVE),
        ],
        ["vehicle", "empty", "positive_control"],
        "compound",
    )
    robust_ids = {r["plate_well"] for r in robust}
    role = np.where(
        (role == "vehicle") & ~meta["plate_well"].isin(robust_ids), "control_not_robust", role
    )
    layout = pd.DataFrame(
        {
            "plate": meta["plate_barcode"],
            "context": meta["cell_line_name"],
            "compound": meta["cmpd_sample_id"].where(meta["well_type"].eq("SA"), cast(Any, None)),
            "dose_uM": meta["concentration"].astype(float),
            "time_h": meta["hours_post_treatment"].astype(float),
            "library_scale": np.where(meta["well_type"].eq("EMPTY"), 0.01, 1.0),
        }
    )
    counts, truth = simulate_layout_counts(layout, gene_ids, seed=seed + 1)
    truth = truth.loc[[k for k in truth.index if k[1] not in MOABOX_POSITIVE]]
    files = {
        "metadata": folder / "DRUGseq_U2OS_MoABox_plate_wells_metadata_public.txt",
        "compounds": folder / "MoABox_compounds_metadata.txt",
        "robust_controls": folder / "robust_RC_ReferenceControl_DMSO_wells.txt",
        "gene_mapping": folder / "drugseq_ensg_v98.tsv",
    }
    meta.to_csv(files["metadata"], sep="\t", index=False)
    cmp_table.to_csv(files["compounds"], sep="\t", index=False)
    pd.DataFrame(robust).to_csv(files["robust_controls"], sep="\t", index=False)
    pd.DataFrame(
        {
            "gene.ID": gene_ids,
            "ensembl_gene_id": [f"ENSG{j + 1:011d}" for j in range(len(gene_ids))],
            "symbol": symbols,
        }
    ).to_csv(files["gene_mapping"], sep="\t", index=False)
    files.update(
        write_moabox_umi_counts(
            counts, gene_ids, meta["plate_well"].tolist(), meta["plate_barcode"].tolist(), folder
        )
    )
    return UpstreamFixture(
        "drugseq_moabox", files, truth, pd.DataFrame({"role": role}, index=meta["plate_well"])
    )


# ---------------------------------------------------------------------------------- VCPI

VCPI_CONTROLS = ("Staurosporin", "Brefeldin-A", "Rigosertib", "Trichostatin-A")
VCPI_DOSES_NM = (30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)


@dataclass(frozen=True)
class VcpiDesign:
    """The controls and labels of :func:`write_vcpi`: ERCC spike-in rows, DMSO wells per
    plate, wells of each active control per plate, and the job id."""

    n_spike_ins: int = 6
    n_dmso: int = 8
    n_per_control: int = 2
    job_id: str = "vcpi-0001"


def write_vcpi(
    folder: str | os.PathLike[str],
    design: VcpiDesign | None = None,
    *,
    genes: Sequence[str] | None = None,
    n_genes: int = 300,
    n_compounds: int = 8,
    n_plates: int = 2,
    seed: int = 0,
) -> UpstreamFixture:
    """Write a VCPI DRUG-seq release (THP-1, 24 h): metadata, counts parquet, chemistry.

    Every compound is tested at six concentrations (nM) once per plate (plates are the
    technical duplicates); each plate has ``n_dmso`` DMSO wells (0.15 %) and
    ``n_per_control`` wells of each of the four active controls at 10 µM. ``genes`` are
    Ensembl ids; ``n_spike_ins`` ERCC rows are appended to the counts (``design``:
    :class:`VcpiDesign`).
    """
    controls = design or VcpiDesign()
    n_spike_ins, n_dmso = controls.n_spike_ins, controls.n_dmso
    n_per_control, job_id = controls.n_per_control, controls.job_id
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    gene_ids = _genes(genes, n_genes, "ENSG0000090")
    spikes = list(ERCC_IDS[:n_spike_ins])
    all_genes = gene_ids + spikes
    lims = [str(1_000_000 + int(x)) for x in rng.choice(900_000, n_compounds, replace=False)]
    uuid = {c: f"{rng.integers(16**8):08x}-{rng.integers(16**4):04x}-4{rng.integers(16**3):03x}-"
               f"8{rng.integers(16**3):03x}-{rng.integers(16**12):012x}"
            for c in [*lims, "DMSO", *VCPI_CONTROLS]}  # fmt: skip
    wells: list[tuple[str, float, str, bool]] = []  # (user id, conc, unit, is_control)
    wells += [("DMSO", 0.15, "%", True)] * n_dmso
    for c in VCPI_CONTROLS:
        wells += [(c, 10000.0, "nM", True)] * n_per_control
    for c in lims:
        wells += [(c, d, "nM", False) for d in VCPI_DOSES_NM]
    rows = []
    seq = 101_160_268
    for p in range(n_plates):
        container = str(1_612_103 + p)
        order = rng.permutation(len(wells))
        for w, i in enumerate(order):
            uid, conc, unit, ctl = wells[i]
            row_l, col_n = _well(w)
            seq += 1
            rows.append(
                {
                    "sequenced_id": str(seq),
                    "job_id": job_id,
                    "container_id": container,
                    "row_id": _ROWS.index(row_l) + 1,
                    "column_id": col_n,
                    "is_edge": row_l in ("A", "P") or col_n in (1, 24),
                    "compound": uuid[uid],
                    "user_compound_id": uid,
                    "compound_concentration": conc,
                    "compound_concentration_unit": unit,
                    "cell_line": "THP-1",
                    "timepoint": "24h",
                    "is_control": ctl,
                    "total_sequenced_reads": int(rng.integers(1_000_000, 3_000_000)),
                    "total_umi_count": 0,
                    "ngenes3": 0,
                    "percent_mapped": round(float(rng.uniform(55, 75)), 2),
                    "percent_mitochondrial": round(float(rng.uniform(3, 15)), 2),
                    "percent_duplicated": round(float(rng.uniform(20, 60)), 2),
                }
            )
    meta = pd.DataFrame(rows)
    uid = meta["user_compound_id"]
    role = np.select(
        [uid.eq("DMSO"), meta["is_control"]], ["vehicle", "positive_control"], "compound"
    )
    layout = pd.DataFrame(
        {
            "plate": meta["container_id"],
            "context": meta["cell_line"],
            "compound": uid.where(uid.ne("DMSO"), cast(Any, None)),
            "dose_uM": np.where(uid.eq("DMSO"), 0.0, meta["compound_concentration"] / 1000.0),
            "time_h": 24.0,
        }
    )
    counts, truth = simulate_layout_counts(layout, all_genes, seed=seed + 1, no_effect_genes=spikes)
    truth = truth.loc[[k for k in truth.index if k[1] in set(lims)]]
    meta["total_umi_count"] = counts.sum(axis=1).astype(np.int64)
    meta["ngenes3"] = (counts >= 3).sum(axis=1)
    chem = pd.DataFrame(
        {
            "compound": [uuid[c] for c in [*lims, "DMSO", *VCPI_CONTROLS]],
            "user_compound_id": [*lims, "DMSO", *VCPI_CONTROLS],
            "smiles": [
                *("C" * (k + 2) + "Cl" for k in range(len(lims))),
                "CS(C)=O",
                *("" for _ in VCPI_CONTROLS),
            ],
            "inchi_key": [
                *(
                    "".join(rng.choice(list(string.ascii_uppercase), 14)) + "-UHFFFAOYSA-N"
                    for _ in lims
                ),
                "IAZDPXIOMUYVGZ-UHFFFAOYSA-N",
                *("" for _ in VCPI_CONTROLS),
            ],
            "molecular_weight": np.round(rng.uniform(150, 600, len(lims) + 5), 2),
            "log_p": np.round(rng.normal(2.5, 1.2, len(lims) + 5), 2),
            "tpsa": np.round(rng.uniform(20, 140, len(lims) + 5), 2),
        }
    )
    files = {
        "metadata": folder / f"metadata-{job_id}.csv",
        "counts": folder / f"vcpi_{job_id}_counts.parquet",
        "chemistry": folder / f"chemistry-{job_id}.csv",
    }
    meta.to_csv(files["metadata"], index=False)
    chem.to_csv(files["chemistry"], index=False)
    wide = pd.DataFrame(counts.T, columns=meta["sequenced_id"].tolist())
    wide.insert(0, "gene_id", all_genes)
    wide.to_parquet(files["counts"], index=False)
    return UpstreamFixture(
        "vcpi", files, truth, pd.DataFrame({"role": role}, index=meta["sequenced_id"])
    )


# --------------------------------------------------------------------------------- GDPx2

GDPX2_CELL_LINES = {
    "human_aortic_smooth_muscle_cells": "aortic smooth muscle cell",
    "human_dermal_fibroblast": "fibroblast of dermis",
    "human_epithelial_melanocytes": "epithelial melanocyte",
    "human_skeletal_muscle_myoblasts": "skeletal muscle myoblast",
}
GDPX2_DOSES_NM = (9.5, 28.5, 95.0, 300.0, 900.0, 3000.0)
GDPX2_PERCENT_DMSO = (0.0625, 0.1875, 0.625)
GDPX2_POSITIVE = ("Dexamethasone", "Staurosporine", "Trichostatin A")


@dataclass(frozen=True)
class Gdpx2Design:
    """The plates of :func:`write_gdpx2`: compounds, plates per cell type, DMSO wells at
    each volume, and ERCC spike-in rows."""

    n_compounds: int = 4
    n_plates: int = 2
    n_dmso_per_percent: int = 4
    n_spike_ins: int = 4


def write_gdpx2(
    folder: str | os.PathLike[str],
    design: Gdpx2Design | None = None,
    *,
    layout: Literal["datapoints", "lamin"] = "datapoints",
    genes: Sequence[str] | None = None,
    compounds: Sequence[str] | None = None,
    n_genes: int = 300,
    dmso_volume_effect: float = 0.0,
    seed: int = 0,
) -> UpstreamFixture:
    """Write a Ginkgo GDPx2 DRUG-seq dataset (four primary cell types, 24 h).

    Per cell type and plate: every compound at the six doses (nM), each dose with its
    DMSO volume (9.5 and 300 nM at 0.0625 %, 28.5 and 900 nM at 0.1875 %, 95 and
    3000 nM at 0.625 %), ``n_dmso_per_percent`` DMSO wells at each of the three
    volumes and one well of each of three positive controls. ``dmso_volume_effect`` is
    the SD of a per-gene log2 shift of each DMSO volume (0: the volume has no effect),
    so that only volume-matched vehicles give the planted effects.

    ``layout="datapoints"`` writes the Ginkgo Datapoints package (``Metadata.csv`` with
    every row written twice, as the release does, and ``GDPx2-GeneCounts.h5`` keyed by
    gene symbol); ``layout="lamin"`` writes the curated AnnData (``gdpx2.h5ad``: obs
    ``pert_name``, ``pert_dose`` such as ``1000.0nM`` / ``0.0625%``, ``pert_time``
    ``24.0h``, ``cell_type``, ``sample_type``, ``percent_volume_dmso``, …; var with
    ``ensembl_gene_id`` and ``symbol``, ERCC spike-ins included). ``design``: the
    compounds, plates, DMSO wells and spike-ins (:class:`Gdpx2Design`).
    """
    plates = design or Gdpx2Design()
    n_compounds, n_plates = plates.n_compounds, plates.n_plates
    n_dmso_per_percent, n_spike_ins = plates.n_dmso_per_percent, plates.n_spike_ins
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    symbols = _genes(genes, n_genes, "GENE")
    spikes = list(ERCC_IDS[:n_spike_ins]) if layout == "lamin" else []
    names = (
        list(compounds)[:n_compounds]
        if compounds is not None
        else [f"Drug-{k + 1:02d}" for k in range(n_compounds)]
    )
    wells: list[tuple[str, float, float, str]] = []  # (compound, conc, % DMSO, sample_type)
    for pct in GDPX2_PERCENT_DMSO:
        wells += [("DMSO", pct, pct, "Ginkgo Neg Control - DMSO")] * n_dmso_per_percent
    for c in GDPX2_POSITIVE:
        wells.append((c, 1000.0, 0.0625, f"Ginkgo Pos Control - {c}"))
    for c in names:
        for j, d in enumerate(GDPX2_DOSES_NM):
            wells.append((c, d, GDPX2_PERCENT_DMSO[j % 3], "library"))
    rows = []
    seq = 101_160_268
    for ci, cell in enumerate(GDPX2_CELL_LINES):
        for p in range(n_plates):
            container = str(1_612_103 + 100_000 * ci + p)
            for w, i in enumerate(rng.permutation(len(wells))):
                cmp_, conc, pct, stype = wells[i]
                row_l, col_n = _well(w)
                seq += 1
                rows.append(
                    {
                        "sample_id": str(seq),
                        "container_id": container,
                        "row_id": _ROWS.index(row_l) + 1,
                        "column_id": col_n,
                        "is_edge": row_l in ("A", "P") or col_n in (1, 24),
                        "cell_line": cell,
                        "compound": cmp_,
                        "compound_concentration": conc,
                        "compound_concentration_unit": "nM",
                        "timepoint": 24,
                        "percent_volume_dmso": pct,
                        "sample_type": stype,
                        "is_neg_control": stype.startswith("Ginkgo Neg") and pct == 0.0625,
                        "is_pos_control": stype.startswith("Ginkgo Pos"),
                        "total_umi_count": 0,
                        "n_mapped": 0,
                        "ngenes3": 0,
                        "percent_mapped": round(float(rng.uniform(58, 72)), 2),
                        "percent_mitochondrial": round(float(rng.uniform(4, 16)), 2),
                    }
                )
    meta = pd.DataFrame(rows)
    vehicle = meta["sample_type"].eq("Ginkgo Neg Control - DMSO")
    role = np.select([vehicle, meta["is_pos_control"]], ["vehicle", "positive_control"], "compound")
    context = (
        meta["cell_line"] if layout == "datapoints" else meta["cell_line"].map(GDPX2_CELL_LINES)
    )
    gene_keys = (
        symbols if layout == "datapoints" else [f"ENSG{j + 1:011d}" for j in range(len(symbols))]
    )
    sim = pd.DataFrame(
        {
            "plate": meta["container_id"],
            "context": context,
            "compound": meta["compound"].where(~vehicle, cast(Any, None)),
            "dose_uM": np.where(vehicle, 0.0, meta["compound_concentration"] / 1000.0),
            "time_h": 24.0,
            "vehicle_level": meta["percent_volume_dmso"],
        }
    )
    counts, truth = simulate_layout_counts(
        sim,
        [*gene_keys, *spikes],
        seed=seed + 1,
        no_effect_genes=spikes,
        vehicle_level_sd=dmso_volume_effect,
    )
    truth = truth.loc[[k for k in truth.index if k[1] in set(names)]]
    meta["total_umi_count"] = counts.sum(axis=1).astype(np.int64)
    meta["n_mapped"] = meta["total_umi_count"]
    meta["ngenes3"] = (counts >= 3).sum(axis=1)
    fixture_layout = pd.DataFrame({"role": role}, index=meta["sample_id"])
    if layout == "lamin":
        path = folder / "gdpx2.h5ad"
        dmso = meta["compound"].eq("DMSO")
        obs = pd.DataFrame(
            {
                "pert_name": meta["compound"],
                "pert_type": np.where(dmso, "control", "compound"),
                "pert_dose": np.where(
                    dmso,
                    meta["percent_volume_dmso"].map(lambda v: f"{v}%"),
                    meta["compound_concentration"].map(lambda v: f"{float(v)}nM"),
                ),
                "pert_time": "24.0h",
                "cell_type": meta["cell_line"].map(GDPX2_CELL_LINES),
                "sample_type": meta["sample_type"],
                "percent_volume_dmso": meta["percent_volume_dmso"],
                "container_id": meta["container_id"],
                "row_id": meta["row_id"],
                "column_id": meta["column_id"],
                "is_control": vehicle,
                "assay": "DRUG-seq",
                "organism": "human",
            }
        )
        obs.index = pd.Index(meta["sample_id"].to_numpy(), name="sequenced_id")
        for c in ("pert_name", "pert_type", "pert_dose", "pert_time", "cell_type",
                  "sample_type", "container_id", "assay", "organism"):  # fmt: skip
            obs[c] = obs[c].astype("category")
        var = pd.DataFrame(
            {"ensembl_gene_id": [*gene_keys, *spikes], "symbol": [*symbols, *spikes]},
            index=pd.Index([*gene_keys, *spikes], name="gene_id"),
        )
        ad.AnnData(X=sparse.csr_matrix(counts), obs=obs, var=var).write_h5ad(path)
        return UpstreamFixture("gdpx2", {"h5ad": path}, truth, fixture_layout)
    import h5py

    files = {"metadata": folder / "Metadata.csv", "counts": folder / "GDPx2-GeneCounts.h5"}
    dup = rng.permutation(len(meta))
    pd.concat([meta, meta.iloc[dup]], ignore_index=True).to_csv(files["metadata"], index=False)
    csc = sparse.csc_matrix(counts.T)  # genes × samples
    with h5py.File(files["counts"], "w") as h:
        h.create_dataset("gene_counts", data=counts, chunks=True)
        dn = h.create_group(".gene_counts_dimnames")
        dn.create_dataset("1", data=np.array(symbols, dtype=object), dtype=h5py.string_dtype())
        dn.create_dataset(
            "2", data=np.array(meta["sample_id"].tolist(), dtype=object), dtype=h5py.string_dtype()
        )
        sm = h.create_group("sparse_matrix")
        sm.create_dataset("dimensions", data=np.array(csc.shape, dtype=np.int64))
        sm.create_dataset("i_indices", data=csc.indices.astype(np.int64))
        sm.create_dataset("j_ptr", data=csc.indptr.astype(np.int64))
        sm.create_dataset("values", data=csc.data.astype(np.float64))
    return UpstreamFixture("gdpx2", files, truth, fixture_layout)

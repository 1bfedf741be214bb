"""Small seeded datasets in the exact upstream layouts of sci-Plex3, Tahoe-100M, CIGS and
DILImap, with planted effects and planted quality failures.

Each writer writes a folder of files as the upstream project ships them and returns a
:class:`ScFixture`: the paths, the planted log2 fold changes of every treated
condition against vehicle (``truth``), and ``layout``: one row per written input unit
(a cell for the single-cell sources, a sample for the bulk ones) with the ledger
``stage`` and the ``expected`` drop reason (``""`` when it should be kept).
:meth:`ScFixture.recovery` scores how well a DE result recovers the truth.

======================  ================================================================
writer                  files
======================  ================================================================
:func:`write_sciplex`   one single-cell ``.h5ad`` (CSR counts, Ensembl ids), obs in the
                        scPerturb spelling (``perturbation``, ``dose_value``,
                        ``dose_unit``, ``time``, ``plate``, ``well``) or the authors'
                        (``product_name``, ``catalog_number``, ``dose`` in nM,
                        ``time_point``, ``top_oligo_P``, ``top_oligo_W``, ``vehicle``)
:func:`write_tahoe`     ``plate<N>_filt_Vevo_Tahoe100M_WServicesFrom_ParseGigalab.h5ad``
                        per plate and ``obs_metadata.parquet``
:func:`write_cigs`      ``<library>_<cell line>_<dose>_Counts.xlsx`` and
                        ``..._MetaData.xlsx`` for the six subsets, and the compound
                        table ``41592_2025_2781_MOESM3_ESM.xlsx`` (needs ``openpyxl``)
:func:`write_dilimap`   ``validation_data_counts.h5ad`` (bulk SMART-seq counts, DILImap
                        obs columns ``COMPOUND``, ``CONCENTRATION_UM``, ``PLATE_NAME``,
                        ``WELL_ID``, ``DOSE_LEVEL``, ``LDH_QC``, …)
======================  ================================================================

Counts are negative binomial: per-gene base fractions, per-unit library sizes, per-plate
batch shifts and per-well biological noise. A compound's planted effect is a sparse
signature in its cell context, scaled with dose by a Hill curve.

Long because each single-cell family (sci-Plex, Tahoe, CIGS, DILImap) is one writer of
one upstream layout sharing the per-cell count model and planted failures of this module.
"""

from __future__ import annotations

import datetime as _dt
import os
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

__all__ = [
    "CIGS_SUBSETS",
    "ScFixture",
    "SciplexDesign",
    "TahoeDesign",
    "write_cigs",
    "write_dilimap",
    "write_sciplex",
    "write_tahoe",
]

_ROWS = string.ascii_uppercase[:16]
#: Special genes of the single-cell fixtures: Ensembl id and symbol.
MITO_GENES = (
    ("ENSG00000198888", "MT-ND1"),
    ("ENSG00000198804", "MT-CO1"),
    ("ENSG00000198727", "MT-CYB"),
)
MALAT1 = ("ENSG00000251562", "MALAT1")


@dataclass
class ScFixture:
    """A written upstream dataset, its planted truth and the expected ledger.

    ``truth``: one row per treated condition, indexed by ``(cell_context,
    compound_id, dose_uM, time_h)`` as the adapter writes ``cell_context``,
    ``compound_id_source``, ``pert_dose_uM`` and ``pert_time_h``; one column per gene id
    as the adapter keys ``var``. ``layout``: one row per input unit (cell or sample id
    as the ledger records it) with ``stage`` and ``expected`` (drop reason, ``""`` when
    kept), plus source-specific columns.
    """

    source: str
    files: dict[str, Path]
    truth: pd.DataFrame
    layout: pd.DataFrame

    def recovery(self, effects: ad.AnnData) -> dict[str, float]:
        """Pearson r between estimated and planted logFC over matched contrasts × genes.

        Returns ``r``, the median per-contrast ``r_median``, ``n_contrasts`` and
        ``n_values`` (genes filtered out by the DE step, NaN, are skipped).
        """
        obs = effects.obs
        keys = pd.MultiIndex.from_arrays(
            [
                obs["cell_context"].astype(str).to_numpy(),
                obs["compound_id_source"].astype(str).to_numpy(),
                np.round(obs["pert_dose_uM"].to_numpy(dtype=float), 6),
                np.round(obs["pert_time_h"].to_numpy(dtype=float), 6),
            ]
        )
        tidx = pd.MultiIndex.from_tuples(
            [
                (str(a), str(b), round(float(c), 6), round(float(d), 6))
                for a, b, c, d in self.truth.index
            ]
        )
        pos = tidx.get_indexer(keys)
        rows = np.flatnonzero(pos >= 0)
        genes = effects.var_names.intersection(self.truth.columns)
        est = np.asarray(effects.layers["logFC"])[rows][:, effects.var_names.get_indexer(genes)]
        tru = self.truth.to_numpy()[pos[rows]][:, self.truth.columns.get_indexer(genes)]
        ok = np.isfinite(est)
        per = [
            float(np.corrcoef(e[m], t[m])[0, 1])
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


# ------------------------------------------------------------------------ shared model


class _Model:
    """Base expression, planted signatures and count sampling shared by the writers."""

    def __init__(
        self,
        rng: np.random.Generator,
        genes: Sequence[str],
        *,
        movable: np.ndarray,
        base_sd: float = 1.5,
        frac_affected: float = 0.15,
        effect_sd: float = 1.5,
    ) -> None:
        self.rng = rng
        self.genes = [str(g) for g in genes]
        self.g = len(self.genes)
        self.log_base = rng.normal(0, base_sd, self.g)
        self.movable = np.asarray(movable, dtype=bool)
        self.frac_affected = frac_affected
        self.effect_sd = effect_sd
        self._ctx: dict[str, np.ndarray] = {}
        self._shared: dict[str, np.ndarray] = {}
        self._sig: dict[tuple[str, str], np.ndarray] = {}
        self._plate: dict[str, np.ndarray] = {}

    def base(self, context: str) -> np.ndarray:
        if context not in self._ctx:
            self._ctx[context] = self.log_base + self.rng.normal(0, 0.3, self.g)
        return self._ctx[context]

    def plate_shift(self, plate: str, sd: float = 0.1) -> np.ndarray:
        if plate not in self._plate:
            self._plate[plate] = self.rng.normal(0, sd, self.g) * self.movable
        return self._plate[plate]

    def signature(self, context: str, compound: str) -> np.ndarray:
        if compound not in self._shared:
            mask = (self.rng.random(self.g) < self.frac_affected) & self.movable
            self._shared[compound] = self.rng.normal(0, self.effect_sd, self.g) * mask
        key = (context, compound)
        if key not in self._sig:
            shared = self._shared[compound]
            own = self.rng.normal(0, 0.3 * self.effect_sd, self.g) * (shared != 0)
            self._sig[key] = shared + own
        return self._sig[key]

    def fractions(
        self, context: str, log2_fc: np.ndarray | float, plate: str, *, normalize: bool = False
    ) -> np.ndarray:
        """Expected fraction of a library per gene.

        Not renormalized by default, so planted fold changes stay exact; with
        ``normalize`` the fractions sum to one (library sizes then stay as drawn, at the
        price of a small compositional shift of the fold changes).
        """
        b = self.base(context)
        w = np.exp(b - b.max())
        w = w / w.sum()
        out = w * np.exp((self.plate_shift(plate) + log2_fc) * np.log(2))
        return out / out.sum() if normalize else out

    def counts(self, mu: np.ndarray, dispersion: float) -> np.ndarray:
        """Negative binomial counts with mean ``mu`` (any shape) and one dispersion."""
        if dispersion <= 0:
            return self.rng.poisson(mu).astype(np.float64)
        lam = self.rng.gamma(1.0 / dispersion, dispersion * np.asarray(mu))
        return self.rng.poisson(lam).astype(np.float64)


def _hill(doses: Sequence[float]) -> dict[float, float]:
    """Dose scaling 0.35 + 0.65·d/(d + EC50), EC50 the geometric mean of the doses."""
    pos = np.array([d for d in doses if d > 0], dtype=float)
    ec50 = float(np.exp(np.mean(np.log(pos)))) if pos.size else 1.0
    return {float(d): 0.35 + 0.65 * d / (d + ec50) for d in doses}


def _truth(rows: list[tuple[str, str, float, float]], lfc: list[np.ndarray], genes: Sequence[str]):
    return pd.DataFrame(
        np.array(lfc).reshape(len(rows), len(genes)),
        index=pd.MultiIndex.from_tuples(
            rows, names=["cell_context", "compound_id", "dose_uM", "time_h"]
        ),
        columns=pd.Index([str(g) for g in genes]),
    )


def _sc_genes(n_genes: int, genes: Sequence[tuple[str, str]] | None) -> pd.DataFrame:
    """``n_genes`` genes (Ensembl id, symbol): the mitochondrial genes and MALAT1 first."""
    special = [*MITO_GENES, MALAT1]
    if genes is None:
        rest = [(f"ENSG{900000 + j:011d}", f"GENE{j + 1}") for j in range(n_genes - len(special))]
    else:
        taken = {e for e, _ in special} | {s for _, s in special}
        rest = [(e, s) for e, s in genes if e not in taken and s not in taken]
        rest = rest[: n_genes - len(special)]
        if len(rest) < n_genes - len(special):
            raise ValueError(f"need {n_genes - len(special)} genes, got {len(rest)}")
    table = pd.DataFrame([*special, *rest], columns=["gene_id", "symbol"])
    return table.set_index("gene_id")


def _cells(
    model: _Model,
    frac: np.ndarray,
    n: int,
    *,
    lib_mean: float,
    kinds: Sequence[str],
    mito_cols: np.ndarray,
    malat_col: int,
    dispersion: float = 0.2,
) -> np.ndarray:
    """Counts of ``n`` cells of one well; ``kinds[i]`` plants a quality failure.

    ``"ok"``: about 2% mitochondrial and 3% MALAT1 counts; ``"mito"``: about 40%
    mitochondrial; ``"malat1"``: no MALAT1; ``"low"``: about 30 counts, none
    mitochondrial.
    """
    base = frac.copy()
    base[mito_cols] = 0.0
    base[malat_col] = 0.0
    base = base / base.sum()
    out = np.empty((n, len(base)))
    for i, kind in enumerate(kinds):
        lib = 30.0 if kind == "low" else lib_mean * float(np.exp(model.rng.normal(0, 0.25)))
        share = {"ok": (0.02, 0.03), "mito": (0.4, 0.03), "malat1": (0.02, 0.0), "low": (0.0, 0.0)}
        m, mal = share[kind]
        mu = base * lib * (1 - m - mal)
        out[i] = model.counts(mu, dispersion)
        # the quality genes are Poisson: their planted fractions stay clear of the cutoffs
        out[i, mito_cols] = model.rng.poisson(lib * m / len(mito_cols), len(mito_cols))
        out[i, malat_col] = model.rng.poisson(lib * mal)
    return out


def _write_h5ad(adata: ad.AnnData, path: Path) -> Path:
    adata.write_h5ad(path)
    return path


# ------------------------------------------------------------------------------ sci-Plex

SCIPLEX_CELL_LINES = ("A549", "K562", "MCF7")
_VEHICLE_INFO = {
    "name": "control", "catalog_number": "S0000", "CAS.Number": "", "SMILES": "", "target": "",
    "pathway": "",
}  # fmt: skip


def _sciplex_compounds(compounds: pd.DataFrame | None, n: int) -> pd.DataFrame:
    """``n`` compounds: name, catalog_number, CAS.Number, SMILES, target, pathway."""
    if compounds is None:
        return pd.DataFrame(
            {
                "name": [f"Compound-{k + 1:02d}" for k in range(n)],
                "catalog_number": [f"S9{k + 1:03d}" for k in range(n)],
                "CAS.Number": [f"{1000 + k}-00-{k % 10}" for k in range(n)],
                "SMILES": ["C" * (k + 2) + "O" for k in range(n)],
                "target": "synthetic",
                "pathway": "synthetic",
            }
        )
    table = compounds
    if "vehicle" in table.columns:
        table = table[table["vehicle"].astype(str).str.upper() != "TRUE"]
    table = table.dropna(subset=["name"]).drop_duplicates("catalog_number").head(n)
    if len(table) < n:
        raise ValueError(f"need {n} compounds, got {len(table)}")
    out = table[["name", "catalog_number", "CAS.Number", "SMILES"]].reset_index(drop=True)
    out["target"] = table["target"].to_numpy() if "target" in table.columns else "NA"
    out["pathway"] = table["pathway"].to_numpy() if "pathway" in table.columns else "NA"
    return out


@dataclass(frozen=True)
class SciplexDesign:
    """The plates of :func:`write_sciplex`: the doses of every compound (nM), the cell
    lines, the vehicle wells per plate and the range of cells per well."""

    doses_nM: Sequence[float] = (1000.0, 10000.0)
    cell_lines: Sequence[str] = SCIPLEX_CELL_LINES
    n_vehicle_wells: int = 3
    cells_per_well: tuple[int, int] = (18, 30)


def write_sciplex(
    folder: str | os.PathLike[str],
    design: SciplexDesign | None = None,
    *,
    compounds: pd.DataFrame | None = None,
    genes: Sequence[tuple[str, str]] | None = None,
    n_genes: int = 300,
    n_compounds: int = 4,
    flavor: str = "scperturb",
    seed: int = 0,
) -> ScFixture:
    """Write a sci-Plex3 single-cell ``.h5ad`` (24 h; two replicate plates per line).

    Parameters
    ----------
    compounds
        Rows of the authors' hash table (``Supplementary_Table_3.txt``: ``name``,
        ``catalog_number``, ``CAS.Number``, ``SMILES``, ``vehicle``) to take the first
        ``n_compounds`` real compounds from; synthetic names when ``None``.
    design
        Doses of every compound (the original used 10, 100, 1,000 and 10,000 nM), cell
        lines, vehicle wells and cells per well (:class:`SciplexDesign`).
    genes
        ``(Ensembl id, symbol)`` pairs; synthetic when ``None``. The mitochondrial
        genes ``MT-ND1``, ``MT-CO1``, ``MT-CYB`` and ``MALAT1`` are always included.
    flavor
        ``"scperturb"`` (``perturbation``/``dose_value``/``dose_unit``/``time``/
        ``plate``/``well``, vehicle ``control``, var indexed by symbol with an
        ``ensembl_id`` column) or ``"trapnell"`` (the authors' ``product_name``/
        ``catalog_number``/``dose``/``time_point``/``top_oligo_P``/``top_oligo_W``/
        ``vehicle``, var indexed by Ensembl id with ``gene_short_name``).

    Planted per-cell failures (``layout["expected"]``): cells without a hash
    (``missing_metadata``), high mitochondrial fraction (``mito_fraction``), few UMIs
    (``min_counts``), no MALAT1 (``nucleus_quality``, with ``quality_gene="MALAT1"``),
    and one three-cell well (``small_group`` with ``min_cells=5``). One extra treated
    well without a dose becomes a ``missing_dose`` sample.
    """
    if flavor not in ("scperturb", "trapnell"):
        raise ValueError(f"flavor must be 'scperturb' or 'trapnell'; got {flavor!r}")
    plates = design or SciplexDesign()
    doses_nM, cell_lines = plates.doses_nM, plates.cell_lines
    n_vehicle_wells, cells_per_well = plates.n_vehicle_wells, plates.cells_per_well
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cmp = _sciplex_compounds(compounds, n_compounds)
    gtab = _sc_genes(n_genes, genes)
    movable = ~gtab["symbol"].isin([s for _, s in (*MITO_GENES, MALAT1)]).to_numpy()
    model = _Model(rng, list(gtab.index), movable=movable)
    mito_cols = np.arange(len(MITO_GENES))
    malat_col = len(MITO_GENES)
    hill = _hill([d / 1000 for d in doses_nM])
    time_h = 24.0
    cells: list[pd.DataFrame] = []
    blocks: list[np.ndarray] = []
    truth_rows: list[tuple[str, str, float, float]] = []
    truth_lfc: list[np.ndarray] = []
    plate_no = 0
    for line in cell_lines:
        for rep in ("rep1", "rep2"):
            plate_no += 1
            plate = f"plate{plate_no}"
            wells: list[tuple[str, int | None, float | None, str]] = []  # (kind, cmp, dose)
            wells += [("vehicle", None, 0.0, "")] * n_vehicle_wells
            wells += [("compound", k, d, "") for k in range(n_compounds) for d in doses_nM]
            if plate_no == 1:
                wells.append(("compound", 0, None, "missing_dose"))
                wells.append(("vehicle", None, 0.0, "small_group"))
            for w, (kind, k, dose_nM, plant) in enumerate(wells):
                well = f"plate{(w // 96) + 1}_{_ROWS[(w % 96) // 12]}{w % 12 + 1}"
                info = _VEHICLE_INFO if k is None else {c: str(v) for c, v in cmp.iloc[k].items()}
                if kind == "vehicle":
                    lfc = np.zeros(model.g)
                else:
                    d_uM = (dose_nM or doses_nM[-1]) / 1000
                    lfc = model.signature(line, info["catalog_number"]) * hill[d_uM]
                    if dose_nM is not None and rep == "rep1":
                        cid = info["name" if flavor == "scperturb" else "catalog_number"]
                        truth_rows.append((line, str(cid), d_uM, time_h))
                        truth_lfc.append(lfc)
                noise = rng.normal(0, 0.1, model.g) * movable
                frac = model.fractions(line, lfc + noise, plate)
                n = 3 if plant == "small_group" else int(rng.integers(*cells_per_well))
                kinds = ["ok"] * n
                expected = ["small_group" if plant == "small_group" else ""] * n
                if plant == "":
                    for j, bad in enumerate(("mito", "low", "malat1")):
                        if rng.random() < 0.5:
                            kinds[j] = bad
                            expected[j] = {
                                "mito": "mito_fraction",
                                "low": "min_counts",
                                "malat1": "nucleus_quality",
                            }[bad]
                blocks.append(
                    _cells(
                        model, frac, n, lib_mean=1500, kinds=kinds,
                        mito_cols=mito_cols, malat_col=malat_col,
                    )
                )  # fmt: skip
                meta = {
                    "plate": plate,
                    "well": well,
                    "cell_line": line,
                    "replicate": rep,
                    "kind": kind,
                    "compound": info["name"],
                    "catalog_number": info["catalog_number"],
                    "cas": info["CAS.Number"],
                    "smiles": info["SMILES"],
                    "target": info["target"],
                    "pathway": info["pathway"],
                    "dose_nM": np.nan if dose_nM is None else float(dose_nM),
                    "expected": expected,
                    "sample_expected": plant if plant == "missing_dose" else "",
                }
                cells.append(pd.DataFrame(meta, index=range(n)))
    layout = pd.concat(cells, ignore_index=True)
    x = np.vstack(blocks)
    # cells whose hash could not be assigned: no plate or well
    n_unassigned = max(3, len(layout) // 100)
    extra = layout.sample(n_unassigned, random_state=seed).copy()
    extra["plate"] = None
    extra["well"] = None
    extra["expected"] = "missing_metadata"
    extra["sample_expected"] = ""
    x = np.vstack([x, x[extra.index.to_numpy()]])
    layout = pd.concat([layout, extra], ignore_index=True)
    order = rng.permutation(len(layout))  # cells of a well are not contiguous on disk
    layout = layout.iloc[order].reset_index(drop=True)
    x = x[order]
    layout.index = pd.Index([f"cell{i:06d}" for i in range(len(layout))], name="cell_id")
    layout["stage"] = "pseudobulk"
    obs = _sciplex_obs(layout, flavor=flavor, x=x, mito_cols=mito_cols)
    if flavor == "scperturb":
        var = pd.DataFrame({"ensembl_id": gtab.index.to_numpy()}, index=gtab["symbol"].to_numpy())
        truth_cols = gtab.index
    else:
        var = pd.DataFrame({"gene_short_name": gtab["symbol"].to_numpy()}, index=gtab.index)
        truth_cols = gtab.index
    adata = ad.AnnData(sparse.csr_matrix(x.astype(np.float32)), obs=obs, var=var)
    path = _write_h5ad(adata, folder / f"sciplex3_{flavor}.h5ad")
    truth = _truth(truth_rows, truth_lfc, list(truth_cols))
    return ScFixture("sciplex", {"h5ad": path}, truth, layout)


def _sciplex_obs(
    layout: pd.DataFrame, *, flavor: str, x: np.ndarray, mito_cols: np.ndarray
) -> pd.DataFrame:
    n_counts = x.sum(axis=1)
    is_vehicle = (layout["kind"] == "vehicle").to_numpy()
    dose = np.where(is_vehicle, 0.0, layout["dose_nM"].to_numpy(dtype=float))
    if flavor == "scperturb":
        obs = pd.DataFrame(
            {
                "ncounts": n_counts,
                "well": layout["well"].to_numpy(),
                "plate": layout["plate"].to_numpy(),
                "cell_line": layout["cell_line"].to_numpy(),
                "replicate": layout["replicate"].to_numpy(),
                "time": 24.0,
                "dose_value": dose,
                "pathway_level_1": layout["pathway"].to_numpy(),
                "perturbation": layout["compound"].to_numpy(),
                "target": layout["target"].to_numpy(),
                "pathway": layout["pathway"].to_numpy(),
                "dose_unit": "nM",
                "celltype": "lung adenocarcinoma",
                "perturbation_type": "drug",
                "ngenes": (x > 0).sum(axis=1),
                "percent_mito": 100 * x[:, mito_cols].sum(axis=1) / np.maximum(n_counts, 1),
                "nperts": 1,
            },
            index=layout.index,
        )
    else:
        obs = pd.DataFrame(
            {
                "cell": layout.index.to_numpy(),
                "n.umi": n_counts,
                "top_oligo_W": layout["well"].to_numpy(),
                "top_oligo_P": layout["plate"].to_numpy(),
                "cell_type": layout["cell_line"].to_numpy(),
                "replicate": layout["replicate"].to_numpy(),
                "time_point": 24,
                "catalog_number": layout["catalog_number"].to_numpy(),
                "vehicle": is_vehicle,
                "dose": dose,
                "treatment": layout["catalog_number"].to_numpy(),
                "product_name": np.where(is_vehicle, "Vehicle", layout["compound"].to_numpy()),
                "CAS.Number": layout["cas"].to_numpy(),
                "SMILES": layout["smiles"].to_numpy(),
                "target": layout["target"].to_numpy(),
                "pathway": layout["pathway"].to_numpy(),
            },
            index=layout.index,
        )
    # the planted missing-dose well: no dose value
    dose_col = "dose_value" if flavor == "scperturb" else "dose"
    obs.loc[(layout["sample_expected"] == "missing_dose").to_numpy(), dose_col] = np.nan
    for c in obs.columns:
        if obs[c].dtype == object:
            obs[c] = pd.Categorical(obs[c].where(obs[c].notna(), cast(Any, None)))
    return obs


# ------------------------------------------------------------------------------- Tahoe

#: Three Tahoe-100M cell lines: Cellosaurus accession and name.
TAHOE_CELL_LINES = (("CVCL_0023", "A549"), ("CVCL_0027", "Hep G2"), ("CVCL_0031", "MCF7"))
TAHOE_VEHICLE = "DMSO_TF"


def tahoe_plate_file(plate: int) -> str:
    """The upstream file name of a Tahoe-100M plate."""
    return f"plate{plate}_filt_Vevo_Tahoe100M_WServicesFrom_ParseGigalab.h5ad"


def tahoe_well(bc1: int) -> str:
    """Round-1 (sample) well of Parse's 96-well plate, numbered row-major from 1."""
    row, col = divmod(bc1 - 1, 12)
    return f"{_ROWS[row]}{col + 1:02d}"


@dataclass(frozen=True)
class TahoeDesign:
    """The plates of :func:`write_tahoe`: the doses of every drug (µM), the plates
    (replicates), the cell lines pooled in every well, the vehicle wells per plate and
    the range of cells per well and line."""

    doses_uM: Sequence[float] = (0.5, 5.0)
    n_plates: int = 2
    cell_lines: Sequence[tuple[str, str]] = TAHOE_CELL_LINES
    n_vehicle_wells: int = 4
    cells_per_well: tuple[int, int] = (15, 25)


def write_tahoe(
    folder: str | os.PathLike[str],
    design: TahoeDesign | None = None,
    *,
    drugs: Sequence[str] | None = None,
    n_drugs: int = 4,
    n_genes: int = 300,
    seed: int = 0,
) -> ScFixture:
    """Write Tahoe-100M plates (one ``.h5ad`` each) and ``obs_metadata.parquet``.

    Every plate holds every drug × dose once (one well; the plates are replicates) and
    ``n_vehicle_wells`` ``DMSO_TF`` wells; every well pools all ``cell_lines``. Cells
    are indexed by ``BARCODE_SUB_LIB_ID`` (``<bc1>_<bc2>_<bc3>-lib_<n>``, ``bc1`` the
    round-1 well, 1–96 row-major). ``drugs`` default to synthetic names; pass Tahoe's
    own spellings (``tahoe_drug_names_sigspace.txt``) to mimic the release.

    ``design``: doses, plates, cell lines, vehicle wells and cells per well
    (:class:`TahoeDesign`).

    Planted: cells without a cell-line call (``missing_metadata``), and cells that
    ``obs_metadata.parquet`` lists but no plate file holds (``missing_counts``).
    """
    plates = design or TahoeDesign()
    doses_uM, n_plates, cell_lines = plates.doses_uM, plates.n_plates, plates.cell_lines
    n_vehicle_wells, cells_per_well = plates.n_vehicle_wells, plates.cells_per_well
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = (
        list(drugs)[:n_drugs]
        if drugs is not None
        else [f"Drug-{k + 1:02d}" for k in range(n_drugs)]
    )
    if len(names) < n_drugs:
        raise ValueError(f"need {n_drugs} drug names, got {len(names)}")
    gene_ids = [f"ENSG{800000 + j:011d}" for j in range(n_genes)]
    symbols = [f"TGENE{j + 1}" for j in range(n_genes)]
    model = _Model(rng, gene_ids, movable=np.ones(n_genes, dtype=bool))
    hill = _hill(doses_uM)
    truth_rows: list[tuple[str, str, float, float]] = []
    truth_lfc: list[np.ndarray] = []
    for cvcl, _ in cell_lines:
        for drug in names:
            for d in doses_uM:
                truth_rows.append((cvcl, drug, float(d), 24.0))
                truth_lfc.append(model.signature(cvcl, drug) * hill[float(d)])
    truth = _truth(truth_rows, truth_lfc, gene_ids)
    files: dict[str, Path] = {}
    parquet_parts: list[pd.DataFrame] = []
    layouts: list[pd.DataFrame] = []
    sample_no = 0
    for p in range(1, n_plates + 1):
        plate = f"plate{p}"
        wells: list[tuple[str, float]] = [(TAHOE_VEHICLE, 0.0)] * n_vehicle_wells
        wells += [(drug, float(d)) for drug in names for d in doses_uM]
        order = rng.permutation(len(wells))
        obs_parts: list[pd.DataFrame] = []
        blocks: list[np.ndarray] = []
        for w_i, w in enumerate(order):
            drug, dose = wells[w]
            bc1 = w_i + 1
            sample_no += 1
            sample = f"smp_{1000 + sample_no}"
            conc = str([(drug, dose, "uM")])
            for cvcl, cname in cell_lines:
                lfc = 0.0 if drug == TAHOE_VEHICLE else model.signature(cvcl, drug) * hill[dose]
                frac = model.fractions(cvcl, lfc + rng.normal(0, 0.1, n_genes), plate)
                n = int(rng.integers(*cells_per_well))
                lib = 2000 * np.exp(rng.normal(0, 0.3, n))
                blocks.append(model.counts(lib[:, None] * frac[None, :] / frac.sum(), 0.2))
                obs_parts.append(
                    pd.DataFrame(
                        {
                            "sample": sample,
                            "drugname_drugconc": conc,
                            "drug": drug,
                            "cell_line": cvcl,
                            "cell_name": cname,
                            "plate": plate,
                            "bc1": bc1,
                            "expected": "",
                        },
                        index=range(n),
                    )
                )
        obs = pd.concat(obs_parts, ignore_index=True)
        x = np.vstack(blocks)
        lost = rng.choice(len(obs), size=max(2, len(obs) // 100), replace=False)
        obs.loc[lost, ["cell_line", "cell_name"]] = None
        obs.loc[lost, "expected"] = "missing_metadata"
        bc2 = rng.permutation(len(obs)) % 96 + 1
        bc3 = rng.integers(1, 97, len(obs))
        sublib = rng.integers(1, 9, len(obs))
        barcode = [f"{a:02d}_{b:03d}_{c:03d}" for a, b, c in zip(obs["bc1"], bc2, bc3, strict=True)]
        obs.index = pd.Index(
            [
                f"{b}-lib_{p}{s}{i:05d}"
                for i, (b, s) in enumerate(zip(barcode, sublib, strict=True))
            ],
            name="BARCODE_SUB_LIB_ID",
        )
        tscp = x.sum(axis=1)
        full = pd.DataFrame(
            {
                "sample": obs["sample"].to_numpy(),
                "gene_count": (x > 0).sum(axis=1),
                "tscp_count": tscp,
                "mread_count": np.round(tscp * 1.3),
                "drugname_drugconc": obs["drugname_drugconc"].to_numpy(),
                "drug": obs["drug"].to_numpy(),
                "cell_line": obs["cell_line"].to_numpy(),
                "sublibrary": [f"lib_{p}{s}" for s in sublib],
                "BARCODE": barcode,
                "pcnt_mito": rng.uniform(0.5, 5.0, len(obs)),
                "S_score": rng.normal(0, 0.1, len(obs)),
                "G2M_score": rng.normal(0, 0.1, len(obs)),
                "phase": rng.choice(["G1", "S", "G2M"], len(obs)),
                "pass_filter": "full",
                "cell_name": obs["cell_name"].to_numpy(),
                "plate": plate,
            },
            index=obs.index,
        )
        h5_obs = full.copy()
        for c in h5_obs.columns:
            if h5_obs[c].dtype == object:
                h5_obs[c] = pd.Categorical(h5_obs[c].where(h5_obs[c].notna(), cast(Any, None)))
        var = pd.DataFrame({"gene_id": gene_ids}, index=pd.Index(symbols))
        adata = ad.AnnData(sparse.csr_matrix(x.astype(np.float32)), obs=h5_obs, var=var)
        files[plate] = _write_h5ad(adata, folder / tahoe_plate_file(p))
        # cells filtered out upstream: in the metadata table, in no plate file
        gone = full.iloc[: max(2, len(full) // 200)].copy()
        gone.index = pd.Index([f"{i}-gone" for i in gone.index], name=full.index.name)
        parquet_parts += [full, gone]
        lay = pd.DataFrame(
            {"plate": plate, "expected": obs["expected"].to_numpy(), "stage": "pseudobulk"},
            index=obs.index,
        )
        lay["well"] = [tahoe_well(b) for b in obs["bc1"]]
        lay_gone = pd.DataFrame(
            {"plate": plate, "expected": "missing_counts", "stage": "pseudobulk", "well": ""},
            index=gone.index,
        )
        layouts += [lay, lay_gone]
    meta = pd.concat(parquet_parts).reset_index()
    files["obs_parquet"] = folder / "obs_metadata.parquet"
    meta.to_parquet(files["obs_parquet"], index=False)
    layout = pd.concat(layouts)
    return ScFixture("tahoe", files, truth, layout)


# -------------------------------------------------------------------------------- CIGS

#: The CIGS subsets: key → (library, cell line, file cell tag, cell value, dose µM, tag).
CIGS_SUBSETS: dict[str, tuple[str, str, str, object, float, str]] = {
    "mce_hek293t_10uM": ("MCE", "HEK293T", "HEK293T", "cell_293T", 10.0, "10μM"),
    "mce_mda_mb_231_10uM": ("MCE", "MDA-MB-231", "MDA_MB_231", "cell_MDA_MB_231", 10.0, "10μM"),
    "tcm_hek293t_10": ("TCM", "HEK293T", "HEK293T", "293T", 10.0, "10"),
    "tcm_hek293t_20": ("TCM", "HEK293T", "HEK293T", "293T", 20.0, "20"),
    "tcm_mda_mb_231_10": ("TCM", "MDA-MB-231", "MDA_MB_231", 231, 10.0, "10"),
    "tcm_mda_mb_231_20": ("TCM", "MDA-MB-231", "MDA_MB_231", 231, 20.0, "20"),
}
CIGS_NOTE = "Note: All these datasets are for non-commercial research use only"
#: Genes as the MCE and TCM workbooks spell them, and their repaired symbols.
CIGS_DAMAGED = (
    (_dt.datetime(2024, 9, 7), "X7.Sep", "SEPT7"),
    (_dt.datetime(2024, 3, 1), "X1.Mar", "MARCH1"),
    ("HLA-A", "HLA.A", "HLA-A"),
    ("NKX2-1", "NKX2.1", "NKX2-1"),
)
CIGS_EXCLUDED_PLATE = "MCE4_293T_24H_X1"


def _cigs_stem(key: str) -> str:
    library, _, file_cell, _, _, tag = CIGS_SUBSETS[key]
    if library == "MCE":
        return f"MCE_Bioactive_Compounds_{file_cell}_{tag}"
    return f"TCM_Compounds_{file_cell}_{tag}"


def _write_xlsx(path: Path, sheets: dict[str, list[Any]]) -> Path:
    import openpyxl

    wb = openpyxl.Workbook(write_only=True)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
    wb.save(path)
    return path


def write_cigs(
    folder: str | os.PathLike[str],
    *,
    subsets: Sequence[str] = tuple(CIGS_SUBSETS),
    n_compounds: int = 6,
    n_genes: int = 300,
    n_vehicle_wells: int = 4,
    seed: int = 0,
) -> ScFixture:
    """Write CIGS counts and metadata workbooks (``.xlsx``, needs ``openpyxl``).

    Per subset, two replicate plates (MCE ``MCE1_<cell>_24H_X1``/``_X2``; TCM ``P1``,
    ``P2``) each hold every compound once, ``n_vehicle_wells`` DMSO wells, one JQ1
    well and one BLANK well (MCE also one RNA well). The MCE HEK293T subset has a third
    plate ``MCE4_293T_24H_X1``, which the authors excluded. Gene headers carry the
    upstream damage (:data:`CIGS_DAMAGED`: date cells ``SEPT7``/``MARCH1`` in MCE, R's
    ``X7.Sep``/``HLA.A``/``NKX2.1`` in TCM); TCM workbooks have one gene the MCE ones
    lack. Planted: one low-library sample per subset (``low_quality``), a counts-only
    sample (``missing_metadata``) in ``mce_mda_mb_231_10uM`` and a metadata-only one
    (``missing_counts``) in ``tcm_hek293t_10``. Also writes the compound table
    ``41592_2025_2781_MOESM3_ESM.xlsx``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_plain = n_genes - len(CIGS_DAMAGED)
    plain = [f"CGENE{j + 1}" for j in range(n_plain)]
    symbols = [d[2] for d in CIGS_DAMAGED] + plain
    model = _Model(rng, [*symbols, "TCMONLY1"], movable=np.ones(n_genes + 1, dtype=bool))
    mce = [
        (f"HY-{10001 + k}", f"MCE compound {k + 1}", f"{2000 + k}-11-{k % 10}")
        for k in range(n_compounds)
    ]
    tcm = [
        (
            f"Compd{k + 1:03d}",
            f"Cpd{k + 1:03d}",
            f"TCM   natural\nproduct {k + 1}",
            f"{3000 + k}-22-{k % 10}",
        )
        for k in range(n_compounds)
    ]
    truth_rows: list[tuple[str, str, float, float]] = []
    truth_lfc: list[np.ndarray] = []
    layouts: list[pd.DataFrame] = []
    files: dict[str, Path] = {}
    tcm_doses = sorted({CIGS_SUBSETS[k][4] for k in subsets if CIGS_SUBSETS[k][0] == "TCM"})
    hill_tcm = _hill(tcm_doses) if tcm_doses else {}
    for key in subsets:
        library, cell, _, cell_value, dose, _ = CIGS_SUBSETS[key]
        is_mce = library == "MCE"
        genes_here = symbols if is_mce else [*symbols, "TCMONLY1"]
        labels = [d[0] for d in CIGS_DAMAGED] if is_mce else [d[1] for d in CIGS_DAMAGED]
        labels = [*labels, *plain] + ([] if is_mce else ["TCMONLY1"])
        ids = [c[0] for c in (mce if is_mce else tcm)]
        scale = 1.0 if is_mce else hill_tcm[dose]
        for cid in ids:
            truth_rows.append((cell, cid, dose, 24.0))
            truth_lfc.append(model.signature(cell, cid)[:n_genes] * scale)
        abbr = "293T" if cell == "HEK293T" else "231"
        plates = [f"MCE1_{abbr}_24H_X1", f"MCE1_{abbr}_24H_X2"] if is_mce else ["P1", "P2"]
        if key == "mce_hek293t_10uM":
            plates.append(CIGS_EXCLUDED_PLATE)
        wells = [(c, "compound") for c in ids] + [("DMSO", "vehicle")] * n_vehicle_wells
        wells += [("JQ1", "positive_control"), ("Blank" if is_mce else "BLANK", "empty_well")]
        if is_mce:
            wells.append(("RNA", "rna_control"))
        meta_rows: list[list[object]] = []
        count_rows: list[list[object]] = []
        lay: list[dict[str, object]] = []
        n = 0
        low_planted = False
        for plate in plates:
            for w, (treat, role) in enumerate(wells):
                n += 1
                r, c = divmod(w, 24)
                sample = f"{plate}_{_ROWS[r]}{c + 1:02d}" if is_mce else f"S{n:04d}"
                lfc = np.zeros(model.g)
                if role == "compound":
                    lfc = model.signature(cell, treat) * scale
                elif role == "positive_control":
                    lfc = model.signature(cell, "JQ1")
                frac = model.fractions(
                    cell, lfc + rng.normal(0, 0.1, model.g), f"{key}:{plate}", normalize=True
                )[: len(genes_here)]
                frac = frac / frac.sum()
                lib = 5e4 * float(np.exp(rng.uniform(-0.3, 0.3)))
                expected = role if role in ("positive_control", "empty_well", "rna_control") else ""
                if role == "empty_well":
                    lib = 200.0
                if plate == CIGS_EXCLUDED_PLATE and role not in ("empty_well", "rna_control"):
                    expected = "excluded_plate"
                elif plate == plates[1] and role == "compound" and not low_planted:
                    lib *= 0.01
                    expected = "low_quality"
                    low_planted = True
                counts = model.counts(lib * frac, 0.05).astype(int)
                if is_mce:
                    dose_txt = f"{dose:g} μM" if role == "compound" else "-666"
                    time_txt = "24 h" if role == "compound" else "-666"
                    meta_rows.append(
                        [sample, treat, cell_value, dose_txt, time_txt, plate, r + 1, c + 1]
                    )
                else:
                    dose_v = dose if role == "compound" else -666
                    time_v = 24 if role == "compound" else -666
                    meta_rows.append([sample, treat, cell_value, plate, dose_v, time_v])
                count_rows.append([sample, *counts.tolist()])
                lay.append(
                    {"id": f"{key}.{sample}", "expected": expected, "role": role, "subset": key}
                )
        if key == "mce_mda_mb_231_10uM":  # a sample in the counts only
            count_rows.append(
                ["UNLISTED_A01", *model.counts(5e4 * frac, 0.05).astype(int).tolist()]
            )
            lay.append(
                {
                    "id": f"{key}.UNLISTED_A01",
                    "expected": "missing_metadata",
                    "role": "",
                    "subset": key,
                }
            )
        if key == "tcm_hek293t_10":  # a sample in the metadata only
            meta_rows.append(["S9999", ids[0], cell_value, "P2", dose, 24])
            lay.append(
                {"id": f"{key}.S9999", "expected": "missing_counts", "role": "", "subset": key}
            )
        stem = _cigs_stem(key)
        id_col = "Sample_id" if is_mce else "Sample_unique_id"
        files[f"{key}_counts"] = _write_xlsx(
            folder / f"{stem}_Counts.xlsx",
            {"Sheet1": [[CIGS_NOTE], [id_col, *labels], *count_rows]},
        )
        header = (
            ["Sample_id", "treatment", "cell_id", "pert_idose", "pert_itime", "sample_plate",
             "sample_row", "sample_column"]
            if is_mce
            else ["Sample_unique_id", "Treat", "Cell", "Plate", "Dose", "Time"]
        )  # fmt: skip
        files[f"{key}_metadata"] = _write_xlsx(
            folder / f"{stem}_MetaData.xlsx",
            {"Sheet1": ([[CIGS_NOTE]] if is_mce else []) + [header, *meta_rows]},
        )
        layouts.append(pd.DataFrame(lay).set_index("id"))
    files["compounds"] = _write_xlsx(
        folder / "41592_2025_2781_MOESM3_ESM.xlsx",
        {
            "Supplementary Table 3": [
                ["Supplementary Table 3. Information of MCE compounds"],
                ["Compound Name", "Catalog Number", "CAS Number", "MoA", "Clinical Information",
                 "Approved type"],
                *[[nm, cat, cas, "synthetic", "NA", "NA"] for cat, nm, cas in mce],
            ],
            "Supplementary Table 4": [
                ["Supplementary Table 4. Information of TCM compounds"],
                ["Compound Name", "Catalog Number", "Catalog Number"],
                *[[nm, cpd, cas] for _, cpd, nm, cas in tcm],
            ],
        },
    )  # fmt: skip
    layout = pd.concat(layouts)
    layout["stage"] = "ingest"
    truth = _truth(truth_rows, truth_lfc, symbols)
    return ScFixture("cigs", files, truth, layout)


# ----------------------------------------------------------------------------- DILImap

#: Compounds of the DILImap validation plates (names as DILImap writes them).
DILIMAP_COMPOUNDS = ("Leflunomide", "Citalopram", "Nitazoxanide", "Maraviroc", "Mifepristone")
DILIMAP_DOSE_LEVELS = ("Low", "Middle", "Mid-High", "High")


def write_dilimap(
    folder: str | os.PathLike[str],
    *,
    compounds: Sequence[str] = DILIMAP_COMPOUNDS,
    n_genes: int = 300,
    n_replicates: int = 3,
    n_vehicle_wells: int = 8,
    seed: int = 0,
) -> ScFixture:
    """Write a DILImap counts ``.h5ad`` (bulk SMART-seq, primary hepatocytes, 24 h).

    Two plates (``RR1_S1``, ``RR1_S2``) each hold every compound at four dose levels in
    ``n_replicates`` wells, ``n_vehicle_wells`` DMSO wells and two ``DMSO_replaced``
    wells. The second plate's concentrations differ slightly from the first's (e.g.
    3.3333 vs 3.33 µM: merged by the adapter), except the last compound's top dose
    (12 vs 10 µM: kept apart). Planted QC failures (``layout["expected"]``): two wells
    flagged in ``LDH_QC`` (``qc_ldh``), one with 1% of the reads (``qc_total_rna``),
    one with 20% mitochondrial reads (``qc_mito``) and one per plate with a scrambled
    profile (``qc_rep_corr``); the ``DMSO_replaced`` wells are ``replaced_control``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    mito = ["MT-CO1", "MT-ND1", "MT-CYB"]
    symbols = mito + [f"DGENE{j + 1}" for j in range(n_genes - len(mito))]
    gene_ids = [f"ENSG{700000 + j:011d}" for j in range(n_genes)]
    movable = np.array([s not in mito for s in symbols])
    model = _Model(rng, gene_ids, movable=movable, base_sd=2.5)
    base1 = (0.37, 1.1, 3.3333, 10.0)
    base2 = (0.37, 1.11, 3.33, 10.02)
    cell = "CL:0000182"
    truth_rows: list[tuple[str, str, float, float]] = []
    truth_lfc: list[np.ndarray] = []
    hill = _hill(base1)
    rows: list[dict[str, object]] = []
    profiles: list[np.ndarray] = []
    for p, plate in enumerate(("RR1_S1", "RR1_S2")):
        wells: list[tuple[str, float, str]] = []
        for k, cmpd in enumerate(compounds):
            doses = base1 if p == 0 else base2
            if p == 1 and k == len(compounds) - 1:
                doses = (*doses[:3], 12.0)
            wells += [
                (cmpd, d, lvl) for d, lvl in zip(doses, DILIMAP_DOSE_LEVELS, strict=True)
            ] * n_replicates
        wells += [("DMSO", 0.0, "Control")] * n_vehicle_wells
        wells += [("DMSO_replaced", 0.0, "Control")] * 2
        for w, (cmpd, dose, level) in enumerate(wells):
            well = f"{_ROWS[w // 12]}{w % 12 + 1}"
            lfc = np.zeros(n_genes)
            if cmpd not in ("DMSO", "DMSO_replaced"):
                lfc = model.signature(cell, cmpd) * hill.get(
                    dose, hill[min(hill, key=lambda d: abs(d - dose))]
                )
            frac = model.fractions(
                cell, lfc + rng.normal(0, 0.03, n_genes) * movable, plate, normalize=True
            )
            frac[:3] = 0.01
            frac[3:] *= (1 - 0.03) / frac[3:].sum()
            rows.append(
                {
                    "COMPOUND": cmpd,
                    "CONCENTRATION_UM": dose,
                    "DOSE_LEVEL": level,
                    "PLATE_NAME": plate,
                    "WELL_ID": well,
                    "expected": "replaced_control" if cmpd == "DMSO_replaced" else "",
                }
            )
            profiles.append(frac)
    for k, cmpd in enumerate(compounds):
        # the adapter merges 1.1 with 1.11 (both in 3 wells: the smaller wins), …
        merged = [min(a, b) for a, b in zip(base1, base2, strict=True)]
        if k == len(compounds) - 1:
            merged.append(12.0)
        for d in merged:
            truth_rows.append((cell, cmpd, d, 24.0))
            truth_lfc.append(
                model.signature(cell, cmpd) * hill[min(hill, key=lambda h: abs(h - d))]
            )
    obs = pd.DataFrame(rows)
    n = len(obs)
    lib = 1e6 * 10 ** rng.uniform(-0.1, 0.1, n)
    mu = np.array(profiles) * lib[:, None]
    treated = np.flatnonzero(~obs["COMPOUND"].isin(["DMSO", "DMSO_replaced"]).to_numpy())
    pick = rng.choice(treated, size=4, replace=False)
    ldh = pick[:2]
    obs.loc[ldh, "expected"] = "qc_ldh"
    low = pick[2]
    mu[low] *= 0.01
    obs.loc[low, "expected"] = "qc_total_rna"
    hi_mito = pick[3]
    mu[hi_mito, :3] = mu[hi_mito].sum() * 0.2 / 3 / 0.8
    obs.loc[hi_mito, "expected"] = "qc_mito"
    # one scrambled well per plate (the rule's SD is a plate's spread of correlations)
    for plate in ("RR1_S1", "RR1_S2"):
        free = np.setdiff1d(treated[obs["PLATE_NAME"].to_numpy()[treated] == plate], pick[:4])
        scrambled = int(rng.choice(free))
        mu[scrambled, 3:] = rng.permutation(mu[scrambled, 3:])
        obs.loc[scrambled, "expected"] = "qc_rep_corr"
    x = model.counts(mu, 0.005)
    ids = [f"{pl}_{w}" for pl, w in zip(obs["PLATE_NAME"], obs["WELL_ID"], strict=True)]
    up = pd.DataFrame(
        {
            "COMPOUND": obs["COMPOUND"].to_numpy(),
            "CONCENTRATION_UM": obs["CONCENTRATION_UM"].to_numpy(dtype=float),
            "TIMEPOINT_HOURS": 24.0,
            "PLATE_NAME": obs["PLATE_NAME"].to_numpy(),
            "WELL_ID": obs["WELL_ID"].to_numpy(),
            "LIBRARY_ID": [f"LIB{i // 96 + 1:02d}" for i in range(n)],
            "SPECIES": "Human",
            "BATCH_ID": "B1",
            "DOSE_LEVEL": obs["DOSE_LEVEL"].to_numpy(),
            "LDH_QC": ["LDH > IC10" if i in set(ldh.tolist()) else "" for i in range(n)],
            "SPLIT": "validation",
            "CMPD_DOSE": (obs["COMPOUND"] + "_" + obs["DOSE_LEVEL"]).to_numpy(),
        },
        index=pd.Index(ids, name="sample_id"),
    )
    for c in (
        "COMPOUND",
        "PLATE_NAME",
        "WELL_ID",
        "LIBRARY_ID",
        "SPECIES",
        "BATCH_ID",
        "DOSE_LEVEL",
        "LDH_QC",
        "SPLIT",
        "CMPD_DOSE",
    ):
        up[c] = pd.Categorical(up[c])
    var = pd.DataFrame({"gene_id": gene_ids}, index=pd.Index(symbols))
    path = _write_h5ad(
        ad.AnnData(x.astype(np.float32), obs=up, var=var), folder / "validation_data_counts.h5ad"
    )
    layout = pd.DataFrame(
        {"expected": obs["expected"].to_numpy(), "stage": "ingest"},
        index=pd.Index(ids, name="sample_id"),
    )
    truth = _truth(truth_rows, truth_lfc, gene_ids)
    return ScFixture("dilimap", {"h5ad": path}, truth, layout)

"""A seeded simulator of L1000-like level 3 data with planted ground truth.

The simulated dataset mimics a CMap L1000 level 3 release (log2 quantile-normalized
expression of the 978 landmark genes, one column per well) closely enough that the
whole pipeline (GCTX reading, metadata harmonization, vehicle matching, limma) runs on
it, and it knows the answer: the expected log2 fold change of every treated condition
against its vehicle.

Generative model, per gene ``g``, well ``w`` on plate ``p`` of cell line ``c``::

    y[g, w] = mu[g, c] + plate[g, p] + offset[w] + truth[cond(w), g] + sigma[g] * eps[g, w]

- ``mu[g, c]``: gene baseline (about 3.6-14.8, median 8.5, as in real level 3) plus a
  cell-line deviation.
- ``plate[g, p]``: a per-plate, per-gene additive batch effect (shared by every well of
  the plate, vehicles included, so it cancels in a within-plate comparison).
- ``offset[w]``: a small per-well scalar shift (well quality).
- ``sigma[g]``: noise SD that falls with the mean (lowly expressed genes are noisier,
  as in real data) with gene-wise scatter, and a few outlier genes whose variance is
  inflated several-fold (they exercise robust empirical Bayes).
- ``truth[cond, g]``: zero for vehicles. A compound has a sparse signature (5-15 % of
  genes) whose amplitude follows a Hill curve in dose, rises with time and depends on
  the cell line (some compounds are inert in some cell lines).

Because plate and well terms have mean zero or are shared with the plate's vehicles,
``truth`` is exactly the expected log2 fold change of a condition against the vehicle
wells of the same plates. Values are not clipped, so the expectation is exact.

Plate layout: a plate is one cell line x one time point x one replicate (``X1``,
``X2``, ...) with up to ``wells_per_plate`` wells (rows A-P x columns 01-24 for 384):
``n_vehicle_per_plate`` DMSO wells, ``n_poscon_per_plate`` wells of a positive-control
compound at the top dose, and compound x dose wells, one well per condition. When the
compound x dose wells do not fit on one plate they are split over several plate groups
(``SIM001``, ``SIM002``, ...), each with its own vehicles and positive controls; a plate
group uses one plate map for every cell line, time and replicate.

Sizing
------
Every condition (cell line, compound, dose, time) appears in one well of each replicate
plate, so::

    n_conditions = n_cells * n_times * (n_compounds * n_doses + 1)      # +1: the poscon
    n_samples   ~= n_cells * n_times * n_replicates
                   * (n_compounds * n_doses + n_groups * (n_vehicle + n_poscon))

:func:`sizes_for` solves these for ``n_compounds`` and ``n_replicates``. For about
20,000 samples x 2,000 conditions with the default cell lines, times and doses it gives
``n_compounds=55, n_replicates=9`` (1,986 conditions, 19,332 samples). A ratio of ten
wells per condition needs many replicates; with the usual three replicates the sample
count is about 3.2 x the number of conditions.

Long because the level 3 simulator, its plate layout, its metadata tables and their
writer describe one upstream format whose parts depend on each other's row order.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import UnitError
from ..io import atomic_file, provenance, write_gctx

__all__ = ["L1000Plates", "SimulatedL1000", "simulate_l1000", "sizes_for"]

#: Factor from µM to each accepted ``pert_dose_unit`` (dose_in_unit = dose_uM * factor).
DOSE_UNIT_FACTORS: dict[str, float] = {
    "um": 1.0,
    "uM": 1.0,
    "µM": 1.0,
    "nm": 1e3,
    "nM": 1e3,
    "mm": 1e-3,
    "mM": 1e-3,
}

#: CMap's placeholder for "not applicable".
MISSING = -666

_ROWS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_PLATE_SHAPES = {96: (8, 12), 384: (16, 24), 1536: (32, 48)}

_POSCON_ID = "BRD-K00000000"
_POSCON_INAME = "sim-poscon"

# Kinds of wells in a plate map.
_VEHICLE, _POSCON, _COMPOUND = 0, 1, 2


@dataclass
class SimulatedL1000:
    """A simulated L1000-like level 3 dataset and its planted truth.

    Attributes
    ----------
    data
        ``(n_genes, n_samples)`` log2 expression, genes x wells as in a GCTX file.
    row_meta
        Gene metadata indexed by gene id (Entrez-like strings): ``pr_gene_id`` (int),
        ``pr_gene_symbol``, ``pr_is_lmark``.
    col_meta
        Well metadata indexed by sample id ``<det_plate>:<det_well>``, with the CMap
        fields ``rna_plate``, ``det_plate``, ``det_well``, ``cell_id``, ``pert_id``,
        ``pert_iname``, ``pert_type``, ``pert_dose``, ``pert_dose_unit``, ``pert_time``,
        ``pert_time_unit``, ``pert_vehicle`` (``-666`` where not applicable, as in CMap).
    truth_conditions
        One row per treated condition, indexed by ``condition_id``: ``cell_id``,
        ``pert_id``, ``pert_iname``, ``pert_type``, ``dose_uM``, ``time_h``,
        ``pert_dose`` and ``pert_dose_unit`` (as written in ``col_meta``), ``n_wells``,
        ``n_affected`` (genes with a non-zero effect) and ``effect_rms``.
    truth_logfc
        ``(n_conditions, n_genes)`` expected log2 fold change of each condition against
        the vehicle wells of the same plates; rows follow ``truth_conditions``, columns
        follow ``row_meta``.
    sample_condition
        ``(n_samples,)`` row of ``truth_conditions`` for each well, ``-1`` for vehicles.
    params
        The parameters of :func:`simulate_l1000` that produced the dataset.
    """

    data: np.ndarray
    row_meta: pd.DataFrame
    col_meta: pd.DataFrame
    truth_conditions: pd.DataFrame
    truth_logfc: np.ndarray
    sample_condition: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_genes, n_samples)``."""
        n_genes, n_samples = self.data.shape
        return n_genes, n_samples

    def inst_info(self) -> pd.DataFrame:
        """``col_meta`` as a CMap ``inst_info`` table: a plain table with an ``inst_id`` column."""
        info = self.col_meta.copy()
        info.insert(0, "inst_id", info.index.to_numpy())
        return info.reset_index(drop=True)

    def write(self, out_dir: str | os.PathLike[str], *, name: str = "level3") -> dict[str, Path]:
        """Write the dataset and its truth to ``out_dir``.

        Files: ``<name>.gctx`` (data with row and column metadata),
        ``<name>_inst_info.tsv`` (column metadata as a table with ``inst_id``),
        ``truth_conditions.tsv``, ``truth_logfc.npy`` (``(n_conditions, n_genes)``,
        float64), ``truth_samples.tsv`` (``inst_id`` -> ``condition_id``, empty for
        vehicles) and ``simulation_params.json``. Every file is written atomically.

        Returns
        -------
        A mapping ``{"gctx", "inst_info", "truth_conditions", "truth_logfc",
        "truth_samples", "params"}`` to the written paths.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "gctx": out / f"{name}.gctx",
            "inst_info": out / f"{name}_inst_info.tsv",
            "truth_conditions": out / "truth_conditions.tsv",
            "truth_logfc": out / "truth_logfc.npy",
            "truth_samples": out / "truth_samples.tsv",
            "params": out / "simulation_params.json",
        }
        write_gctx(paths["gctx"], self.data, row_meta=self.row_meta, col_meta=self.col_meta)
        with atomic_file(paths["inst_info"]) as tmp:
            self.inst_info().to_csv(tmp, sep="\t", index=False)
        with atomic_file(paths["truth_conditions"]) as tmp:
            self.truth_conditions.to_csv(tmp, sep="\t", index=True)
        with atomic_file(paths["truth_logfc"]) as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.asarray(self.truth_logfc, dtype=np.float64))
        cond_ids = self.truth_conditions.index.to_numpy()
        sample_cond = np.where(
            self.sample_condition >= 0, cond_ids[np.maximum(self.sample_condition, 0)], ""
        )
        with atomic_file(paths["truth_samples"]) as tmp:
            pd.DataFrame(
                {"inst_id": self.col_meta.index.to_numpy(), "condition_id": sample_cond}
            ).to_csv(tmp, sep="\t", index=False)
        record = provenance(step="simulate_l1000", params=self.params)
        with atomic_file(paths["params"]) as tmp:
            tmp.write_text(json.dumps(record, indent=2) + "\n")
        return paths


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Layout:
    """Plate maps shared by every (cell line, time, replicate)."""

    n_groups: int
    group: np.ndarray  # (L,) plate group of each template well
    kind: np.ndarray  # (L,) _VEHICLE / _POSCON / _COMPOUND
    pair: np.ndarray  # (L,) compound x dose pair (compound-major), -1 otherwise
    well: np.ndarray  # (L,) well name, e.g. "A03"


def _well_names(wells_per_plate: int) -> np.ndarray:
    n_rows, n_cols = _PLATE_SHAPES[wells_per_plate]
    rows = np.array(list(_ROWS[:n_rows]))
    cols = np.array([f"{j + 1:02d}" for j in range(n_cols)])
    return np.char.add(np.repeat(rows, n_cols), np.tile(cols, n_rows))


def _n_groups(n_pairs: int, *, capacity: int) -> int:
    return max(1, math.ceil(n_pairs / capacity))


def _layout(
    n_pairs: int,
    *,
    n_vehicle: int,
    n_poscon: int,
    wells_per_plate: int,
    rng: np.random.Generator,
) -> _Layout:
    """Split the compound x dose pairs over plate groups and draw one plate map per group."""
    capacity = wells_per_plate - n_vehicle - n_poscon
    n_groups = _n_groups(n_pairs, capacity=capacity)
    names = _well_names(wells_per_plate)
    groups, kinds, pairs, wells = [], [], [], []
    for g, chunk in enumerate(np.array_split(np.arange(n_pairs), n_groups)):
        kind = np.concatenate(
            [
                np.full(n_vehicle, _VEHICLE),
                np.full(n_poscon, _POSCON),
                np.full(chunk.size, _COMPOUND),
            ]
        )
        pair = np.concatenate([np.full(n_vehicle + n_poscon, -1), chunk])
        pos = rng.permutation(wells_per_plate)[: kind.size]
        order = np.argsort(pos, kind="stable")  # list wells in plate order (A01, A02, ...)
        groups.append(np.full(kind.size, g))
        kinds.append(kind[order])
        pairs.append(pair[order])
        wells.append(names[pos[order]])
    return _Layout(
        n_groups=n_groups,
        group=np.concatenate(groups),
        kind=np.concatenate(kinds),
        pair=np.concatenate(pairs),
        well=np.concatenate(wells),
    )


def sizes_for(
    n_samples: int,
    n_conditions: int,
    *,
    cell_lines: Sequence[str] = ("A375", "MCF7", "PC3"),
    times_h: Sequence[int] = (6, 24),
    doses_uM: Sequence[float] = (0.04, 0.12, 0.37, 1.11, 3.33, 10.0),
    n_vehicle_per_plate: int = 24,
    n_poscon_per_plate: int = 4,
    wells_per_plate: int = 384,
) -> dict[str, Any]:
    """Parameters of :func:`simulate_l1000` that give about ``n_samples`` x ``n_conditions``.

    ``n_compounds`` is chosen to match ``n_conditions`` (which counts the positive-control
    conditions too), then ``n_replicates`` to match ``n_samples``. The layout parameters
    are passed through unchanged (as ``plates``, an :class:`L1000Plates`).

    Returns
    -------
    Keyword arguments for :func:`simulate_l1000`, plus nothing else.

    Examples
    --------
    >>> kw = sizes_for(20_000, 2_000)
    >>> kw["n_compounds"], kw["n_replicates"]
    (55, 9)
    """
    if n_samples < 1 or n_conditions < 1:
        raise ValueError(
            f"expected n_samples >= 1 and n_conditions >= 1, found {n_samples}, {n_conditions}"
        )
    _check_layout(n_vehicle_per_plate, n_poscon_per_plate, wells_per_plate)
    n_ctx = len(cell_lines) * len(times_h)
    n_doses = len(doses_uM)
    if n_ctx == 0 or n_doses == 0:
        raise ValueError(
            "expected at least one cell line, time and dose; found "
            f"{len(cell_lines)} cell lines, {len(times_h)} times, {n_doses} doses"
        )
    n_compounds = max(1, round((n_conditions - n_ctx) / (n_ctx * n_doses)))
    capacity = wells_per_plate - n_vehicle_per_plate - n_poscon_per_plate
    n_pairs = n_compounds * n_doses
    per_replicate = n_ctx * (
        n_pairs + _n_groups(n_pairs, capacity=capacity) * (n_vehicle_per_plate + n_poscon_per_plate)
    )
    n_replicates = max(1, round(n_samples / per_replicate))
    return {
        "plates": L1000Plates(
            doses_uM=tuple(doses_uM),
            n_vehicle_per_plate=n_vehicle_per_plate,
            n_poscon_per_plate=n_poscon_per_plate,
            wells_per_plate=wells_per_plate,
        ),
        "cell_lines": tuple(cell_lines),
        "times_h": tuple(times_h),
        "n_compounds": n_compounds,
        "n_replicates": n_replicates,
    }


# --------------------------------------------------------------------------- validation


def _check_layout(n_vehicle: int, n_poscon: int, wells_per_plate: int) -> None:
    if wells_per_plate not in _PLATE_SHAPES:
        raise ValueError(
            f"expected wells_per_plate in {sorted(_PLATE_SHAPES)}, found {wells_per_plate}"
        )
    if n_vehicle < 0 or n_poscon < 0:
        raise ValueError(
            "expected n_vehicle_per_plate >= 0 and n_poscon_per_plate >= 0, "
            f"found {n_vehicle} and {n_poscon}"
        )
    if wells_per_plate - n_vehicle - n_poscon < 1:
        raise ValueError(
            f"a {wells_per_plate}-well plate has no room for compounds after "
            f"{n_vehicle} vehicle and {n_poscon} positive-control wells; lower them"
        )


def _check_inputs(
    *,
    n_genes: int,
    cell_lines: Sequence[str],
    times_h: Sequence[int],
    n_replicates: int,
    n_compounds: int,
    doses_uM: Sequence[float],
    missing_vehicle: Sequence[tuple[str, float]],
    dose_units: Sequence[str],
) -> None:
    if n_genes < 1:
        raise ValueError(f"expected n_genes >= 1, found {n_genes}")
    if n_replicates < 1:
        raise ValueError(f"expected n_replicates >= 1, found {n_replicates}")
    if n_compounds < 1:
        raise ValueError(f"expected n_compounds >= 1, found {n_compounds}")
    if len(cell_lines) == 0 or len(set(cell_lines)) != len(cell_lines):
        raise ValueError(f"expected distinct, non-empty cell_lines, found {list(cell_lines)}")
    bad_cells = [c for c in cell_lines if not isinstance(c, str) or not c or "_" in c]
    if bad_cells:
        raise ValueError(
            f"cell line names must be non-empty strings without '_' (they go into plate "
            f"names), found {bad_cells[:5]}"
        )
    if (
        len(times_h) == 0
        or len(set(times_h)) != len(times_h)
        or any(int(t) != t or t <= 0 for t in times_h)
    ):
        raise ValueError(f"expected distinct positive integer times_h, found {list(times_h)}")
    doses = np.asarray(doses_uM, dtype=float)
    if doses.size == 0 or np.any(~np.isfinite(doses)) or np.any(doses <= 0):
        raise ValueError(f"expected positive finite doses_uM, found {list(doses_uM)}")
    if np.unique(doses).size != doses.size:
        raise ValueError(f"expected distinct doses_uM, found {list(doses_uM)}")
    unknown = [u for u in dose_units if u not in DOSE_UNIT_FACTORS]
    if len(dose_units) == 0 or unknown:
        raise UnitError(
            f"expected dose_units from {sorted(DOSE_UNIT_FACTORS)}, found {list(dose_units)}"
        )
    contexts = {(c, int(t)) for c in cell_lines for t in times_h}
    bad = [mv for mv in missing_vehicle if (mv[0], int(mv[1])) not in contexts]
    if bad:
        raise ValueError(
            "missing_vehicle entries must be (cell_id, time_h) pairs of the simulated "
            f"contexts {sorted(contexts)[:6]}...; found unknown {bad[:5]}"
        )


# --------------------------------------------------------------------------- simulation


def _hill(dose: np.ndarray, ec50: np.ndarray, slope: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + (ec50 / dose) ** slope)


@dataclass(frozen=True)
class L1000Plates:
    """The plates of :func:`simulate_l1000`.

    Parameters
    ----------
    doses_uM
        Doses in µM.
    n_vehicle_per_plate, n_poscon_per_plate
        DMSO wells and positive-control wells (one compound at the top dose) per plate.
    wells_per_plate
        96, 384 or 1536. Compound x dose wells that do not fit on one plate go to more
        plate groups (``SIM001``, ``SIM002``, ...).
    missing_vehicle
        ``(cell_id, time_h)`` contexts whose vehicle wells are all removed (on every
        replicate and plate group), to exercise conditions without a matched control.
    dose_units
        ``pert_dose_unit`` values to use; compound ``k`` is reported in
        ``dose_units[k % len(dose_units)]`` with its dose converted (e.g. ``0.37`` µM is
        ``370`` nm), so the true µM dose is the same whatever the unit.
    """

    doses_uM: Sequence[float] = (0.04, 0.12, 0.37, 1.11, 3.33, 10.0)
    n_vehicle_per_plate: int = 24
    n_poscon_per_plate: int = 4
    wells_per_plate: int = 384
    missing_vehicle: Sequence[tuple[str, float]] = ()
    dose_units: Sequence[str] = ("um",)


def simulate_l1000(
    plates: L1000Plates | None = None,
    *,
    n_genes: int = 978,
    cell_lines: Sequence[str] = ("A375", "MCF7", "PC3"),
    times_h: Sequence[int] = (6, 24),
    n_replicates: int = 3,
    n_compounds: int = 40,
    seed: int = 0,
    dtype: Literal["float32", "float64"] = "float32",
) -> SimulatedL1000:
    """Simulate an L1000-like level 3 dataset with a planted truth.

    Parameters
    ----------
    plates
        Doses, wells per plate, vehicle and positive-control wells, contexts without
        vehicles and dose units (:class:`L1000Plates`; default: its defaults).
    n_genes
        Genes (rows); ids are Entrez-like integers from ``10001``, symbols ``GENE1``...
    cell_lines
        Cell line names (``cell_id``); no ``_`` (they are part of plate names).
    times_h
        Treatment times in hours (``pert_time``).
    n_replicates
        Replicate plates (``X1``, ``X2``, ...) per cell line and time.
    n_compounds
        Compounds (``trt_cp``), each given at every dose in every cell line and time.
    seed
        Seed of the random generator; the same seed gives the same dataset.
    dtype
        Float type of ``data`` (real GCTX files hold float32).

    Returns
    -------
    The dataset with its truth; see :class:`SimulatedL1000`. Use :func:`sizes_for` to
    pick ``n_compounds`` and ``n_replicates`` for a target size.

    Examples
    --------
    >>> sim = simulate_l1000(n_genes=50, n_compounds=4, n_replicates=2, seed=1)
    >>> sim.data.shape  # 3 cells x 2 times x 2 replicates x (4 x 6 + 24 + 4) wells
    (50, 624)
    >>> sim.truth_logfc.shape  # 3 cells x 2 times x (4 compounds x 6 doses + 1 poscon)
    (150, 50)
    """
    layout_in = plates or L1000Plates()
    doses_uM, missing_vehicle = layout_in.doses_uM, layout_in.missing_vehicle
    n_vehicle_per_plate, n_poscon_per_plate = (
        layout_in.n_vehicle_per_plate,
        layout_in.n_poscon_per_plate,
    )
    wells_per_plate, dose_units = layout_in.wells_per_plate, layout_in.dose_units
    _check_layout(n_vehicle_per_plate, n_poscon_per_plate, wells_per_plate)
    _check_inputs(
        n_genes=n_genes,
        cell_lines=cell_lines,
        times_h=times_h,
        n_replicates=n_replicates,
        n_compounds=n_compounds,
        doses_uM=doses_uM,
        missing_vehicle=missing_vehicle,
        dose_units=dose_units,
    )
    if dtype not in ("float32", "float64"):
        raise ValueError(f"expected dtype 'float32' or 'float64', found {dtype!r}")
    params: dict[str, Any] = {
        "n_genes": n_genes,
        "cell_lines": list(cell_lines),
        "times_h": [int(t) for t in times_h],
        "n_replicates": n_replicates,
        "n_compounds": n_compounds,
        "doses_uM": [float(d) for d in doses_uM],
        "n_vehicle_per_plate": n_vehicle_per_plate,
        "n_poscon_per_plate": n_poscon_per_plate,
        "wells_per_plate": wells_per_plate,
        "seed": seed,
        "missing_vehicle": [[c, float(t)] for c, t in missing_vehicle],
        "dose_units": list(dose_units),
        "dtype": dtype,
    }
    # independent streams: the genes do not change with the number of compounds, and
    # removing vehicle wells leaves every other value (data and metadata) unchanged
    rng_genes, rng_cpd, rng_layout, rng_noise, rng_meta = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)
    )
    cells = list(cell_lines)
    times = np.array([int(t) for t in times_h])
    doses = np.asarray(doses_uM, dtype=float)
    n_c, n_t, n_d, n_k = len(cells), times.size, doses.size, n_compounds
    n_pairs = n_k * n_d
    n_ctx = n_c * n_t

    row_meta = _gene_meta(n_genes)
    mu, sigma = _gene_model(n_genes, n_c, rng_genes)
    effects = _compound_model(n_k, n_c, mu, rng_cpd)

    # ---- truth: conditions ordered (cell, time, compound x dose), the poscon last
    hill = _hill(
        doses[None, None, :], effects["ec50"][:, :, None], effects["slope"][:, None, None]
    )  # (k, c, d)
    build_up = _time_curve(times[:, None], effects["tau"][None, :])  # (t, k)
    amp = (
        effects["cell_scale"].T[:, None, :, None]  # (c, 1, k, 1)
        * build_up[None, :, :, None]  # (1, t, k, 1)
        * hill.transpose(1, 0, 2)[:, None, :, :]  # (c, 1, k, d)
    )  # (c, t, k, d)
    n_cond_ctx = n_pairs + 1
    truth = np.empty((n_c, n_t, n_cond_ctx, n_genes))
    # (c, t, k, d, g) = amp (c, t, k, d) * signature (k, c, g)
    sig = effects["signature"].transpose(1, 0, 2)  # (c, k, g)
    truth[:, :, :n_pairs, :] = (amp[..., None] * sig[:, None, :, None, :]).reshape(
        n_c, n_t, n_pairs, n_genes
    )
    top = doses.max()
    pos_amp = _time_curve(times, effects["poscon_tau"]) * _hill(
        np.array(top), effects["poscon_ec50"], effects["poscon_slope"]
    )  # (t,)
    truth[:, :, n_pairs, :] = pos_amp[None, :, None] * effects["poscon_signature"][:, None, :]
    truth_logfc = truth.reshape(n_ctx * n_cond_ctx, n_genes)

    # ---- samples: contexts x replicates x template wells
    layout = _layout(
        n_pairs,
        n_vehicle=n_vehicle_per_plate,
        n_poscon=n_poscon_per_plate,
        wells_per_plate=wells_per_plate,
        rng=rng_layout,
    )
    n_tmpl = layout.kind.size
    ctx = np.repeat(np.arange(n_ctx), n_replicates * n_tmpl)
    rep = np.tile(np.repeat(np.arange(n_replicates), n_tmpl), n_ctx)
    tmpl = np.tile(np.arange(n_tmpl), n_ctx * n_replicates)
    kind = layout.kind[tmpl]
    n_plates = n_ctx * n_replicates * layout.n_groups
    # random parts drawn for the full layout before any vehicle wells are removed
    plate_eff = rng_noise.normal(0.0, 0.2, size=(n_genes, n_plates)) + rng_noise.normal(
        0.0, 0.1, size=(1, n_plates)
    )
    well_offset = rng_noise.normal(0.0, 0.05, size=kind.size)
    data = rng_noise.standard_normal(size=(n_genes, kind.size), dtype=np.float32)
    if missing_vehicle:
        drop_ctx = [
            cells.index(c) * n_t + int(np.flatnonzero(times == int(t))[0])
            for c, t in missing_vehicle
        ]
        keep = ~((kind == _VEHICLE) & np.isin(ctx, drop_ctx))
        ctx, rep, tmpl, kind = ctx[keep], rep[keep], tmpl[keep], kind[keep]
        well_offset, data = well_offset[keep], data[:, keep]
    ci, ti = ctx // n_t, ctx % n_t
    pair = layout.pair[tmpl]
    group = layout.group[tmpl]
    # condition row of each well
    local = np.where(kind == _POSCON, n_pairs, pair)
    sample_condition = np.where(kind == _VEHICLE, -1, ctx * n_cond_ctx + local)
    # plate index: (ctx, rep, group)
    plate = (ctx * n_replicates + rep) * layout.n_groups + group

    # ---- expression
    data = data.astype(dtype, copy=False)
    data *= sigma[:, None].astype(dtype)
    data += mu[:, ci]
    data += plate_eff[:, plate]
    data += well_offset[None, :]
    treated = sample_condition >= 0
    data[:, treated] += truth_logfc[sample_condition[treated]].T

    # ---- metadata
    col_meta, truth_conditions = _metadata(
        _Grid(cells, times, doses, n_k, n_replicates, list(dose_units)),
        layout,
        _Wells(ci, ti, rep, group, kind, pair, tmpl, sample_condition),
        truth_logfc=truth_logfc,
        rng=rng_meta,
    )
    return SimulatedL1000(
        data=data,
        row_meta=row_meta,
        col_meta=col_meta,
        truth_conditions=truth_conditions,
        truth_logfc=truth_logfc,
        sample_condition=sample_condition,
        params=params,
    )


def _gene_meta(n_genes: int) -> pd.DataFrame:
    ids = np.arange(10001, 10001 + n_genes)
    meta = pd.DataFrame(
        {
            "pr_gene_id": ids.astype(np.int64),
            "pr_gene_symbol": [f"GENE{i + 1}" for i in range(n_genes)],
            "pr_is_lmark": "Y",
        },
        index=pd.Index(ids.astype(str), name="rid"),
    )
    return meta


def _gene_model(
    n_genes: int, n_cells: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Baseline means ``(n_genes, n_cells)`` and noise SDs ``(n_genes,)``.

    Means and the mean-SD trend follow a real level 3 plate (LJP005 A375 24 h): means
    5th-95th percentile about 5-11.7, vehicle SD about 0.9 at a mean of 5 falling to 0.15
    at 12. About 2 % of genes (taken among those with a mean between 7 and 11, so that values stay
    in range) are outliers with a 3-5 times larger SD, the heavy upper tail of real data.
    """
    base = np.clip(rng.normal(8.5, 2.0, size=n_genes), 3.8, 14.5)
    mu = np.clip(base[:, None] + rng.normal(0.0, 0.5, size=(n_genes, n_cells)), 3.6, 14.8)
    trend = np.minimum(0.12 + 0.8 * np.exp(-(base - 5.0) / 1.8), 1.0)
    sigma = trend * np.exp(rng.normal(0.0, 0.25, size=n_genes))
    n_out = round(0.02 * n_genes)
    pool = np.flatnonzero((base > 7.0) & (base < 11.0))
    if n_out and pool.size >= n_out:
        out = rng.choice(pool, size=n_out, replace=False)
        sigma[out] *= rng.uniform(3.0, 5.0, size=n_out)
    return mu, np.minimum(sigma, 2.0)


def _time_curve(t: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Effect build-up with time, 1 at 24 h."""
    return (1.0 - np.exp(-t / tau)) / (1.0 - np.exp(-24.0 / tau))


def _signature(
    room_up: np.ndarray, room_down: np.ndarray, frac: float, scale: float, rng: np.random.Generator
) -> np.ndarray:
    """A sparse signature; effects stay within the room a gene has to move up or down."""
    n_genes = room_up.size
    n_hit = max(1, round(frac * n_genes))
    hit = rng.choice(n_genes, size=n_hit, replace=False)
    up = rng.random(n_hit) < rng.uniform(0.3, 0.7)
    size = np.minimum(scale * np.exp(rng.normal(np.log(1.2), 0.5, size=n_hit)), 4.0)
    s = np.zeros(n_genes)
    s[hit] = np.where(up, np.minimum(size, room_up[hit]), -np.minimum(size, room_down[hit]))
    return s


def _compound_model(n_k: int, n_c: int, mu: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    """Per compound: sparse signature per cell line, potency, Hill slope, time constant.

    Signatures keep expected values inside the real level 3 range (about 3.2-15): with the
    cell-line scale (at most x1.5) and modulation (at most x1.5) below, signature entries
    use at most 40 % of the distance from the lowest cell-line mean to 3.5 and from the
    highest to 14.8.
    """
    n_genes = mu.shape[0]
    room_down = np.maximum(0.4 * (mu.min(axis=1) - 3.5), 0.1)
    room_up = np.maximum(0.4 * (14.8 - mu.max(axis=1)), 0.1)
    shared = np.stack(
        [_signature(room_up, room_down, rng.uniform(0.05, 0.15), 1.0, rng) for _ in range(n_k)]
    )
    # cell-line modulation of the shared signature (same genes, different magnitudes)
    signature = shared[:, None, :] * np.exp(
        np.clip(rng.normal(0.0, 0.25, size=(n_k, n_c, n_genes)), -0.5, 0.4)
    )
    log_ec50 = rng.uniform(-1.5, 1.3, size=n_k)
    ec50 = 10.0 ** (log_ec50[:, None] + rng.normal(0.0, 0.3, size=(n_k, n_c)))
    active = rng.random((n_k, n_c)) < 0.85
    cell_scale = np.where(active, rng.uniform(0.5, 1.5, size=(n_k, n_c)), 0.0)
    poscon = _signature(room_up, room_down, 0.15, 1.5, rng)
    return {
        "signature": signature,  # (k, c, g)
        "ec50": ec50,  # (k, c)
        "slope": rng.uniform(0.7, 2.5, size=n_k),
        "tau": rng.uniform(3.0, 12.0, size=n_k),
        "cell_scale": cell_scale,  # (k, c)
        "poscon_signature": poscon[None, :]
        * np.exp(np.clip(rng.normal(0.0, 0.15, size=(n_c, n_genes)), -0.4, 0.4)),
        "poscon_ec50": 0.1,
        "poscon_slope": 1.5,
        "poscon_tau": 3.0,
    }


def _dose_in_unit(dose_uM: np.ndarray, unit_factor: np.ndarray) -> np.ndarray:
    # round like CMap's reported doses so that nm doses read as 40, 120, 370, ...
    return np.round(dose_uM * unit_factor, 6)


@dataclass(frozen=True)
class _Grid:
    """The condition grid: cell lines, times, doses, compounds, replicates, dose units."""

    cells: list[str]
    times: np.ndarray
    doses: np.ndarray
    n_k: int
    n_replicates: int
    dose_units: list[str]


@dataclass(frozen=True)
class _Wells:
    """Per well: context (cell, time) indices, replicate, plate group, kind, compound x
    dose pair, template well, and the condition row (``-1`` for vehicles)."""

    ci: np.ndarray
    ti: np.ndarray
    rep: np.ndarray
    group: np.ndarray
    kind: np.ndarray
    pair: np.ndarray
    tmpl: np.ndarray
    sample_condition: np.ndarray


def _metadata(
    grid: _Grid,
    layout: _Layout,
    wells: _Wells,
    *,
    truth_logfc: np.ndarray,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    cells, times, doses, n_k = grid.cells, grid.times, grid.doses, grid.n_k
    n_replicates, dose_units = grid.n_replicates, grid.dose_units
    ci, ti, rep, group, kind = wells.ci, wells.ti, wells.rep, wells.group, wells.kind
    pair, tmpl, sample_condition = wells.pair, wells.tmpl, wells.sample_condition
    n_t, n_d = times.size, doses.size
    n_pairs = n_k * n_d

    # compounds: BRD-like ids, synthetic names, one reporting unit each
    nums = 10_000_000 + rng.choice(90_000_000, size=n_k, replace=False)
    pert_ids = np.array([f"BRD-K{n:08d}" for n in nums])
    inames = np.array([f"simcpd-{k + 1:04d}" for k in range(n_k)])
    units = np.array([dose_units[k % len(dose_units)] for k in range(n_k)])
    factors = np.array([DOSE_UNIT_FACTORS[u] for u in units])
    pos_unit = dose_units[0]
    pos_factor = DOSE_UNIT_FACTORS[pos_unit]
    top = float(doses.max())

    # per-pair attributes (compound-major), plus the poscon as entry n_pairs
    pk = np.repeat(np.arange(n_k), n_d)
    pd_ = np.tile(np.arange(n_d), n_k)
    c_pert_id = np.append(pert_ids[pk], _POSCON_ID)
    c_iname = np.append(inames[pk], _POSCON_INAME)
    c_type = np.append(np.full(n_pairs, "trt_cp"), "trt_poscon")
    c_dose_uM = np.append(doses[pd_], top)
    c_unit = np.append(units[pk], pos_unit)
    c_dose = _dose_in_unit(c_dose_uM, np.append(factors[pk], pos_factor))

    # plates; bead batch per plate group and replicate, like "B19"
    n_groups = layout.n_groups
    beads = rng.integers(10, 40, size=(n_groups, n_replicates))
    cell_arr = np.array(cells)
    time_lbl = np.array([f"{t}H" for t in times])
    prefix = np.array([f"SIM{g + 1:03d}" for g in range(n_groups)])
    rna_plate = (
        pd.Series(prefix[group])
        + "_"
        + cell_arr[ci]
        + "_"
        + time_lbl[ti]
        + "_X"
        + pd.Series(rep + 1).astype(str)
    )
    det_plate = rna_plate + "_B" + pd.Series(beads[group, rep]).astype(str)
    well = layout.well[tmpl]
    sample_ids = det_plate + ":" + well

    is_veh = kind == _VEHICLE
    entry = np.where(kind == _POSCON, n_pairs, np.maximum(pair, 0))
    col_meta = pd.DataFrame(
        {
            "rna_plate": rna_plate.to_numpy(),
            "det_plate": det_plate.to_numpy(),
            "det_well": well,
            "cell_id": cell_arr[ci],
            "pert_id": np.where(is_veh, "DMSO", c_pert_id[entry]),
            "pert_iname": np.where(is_veh, "DMSO", c_iname[entry]),
            "pert_type": np.where(is_veh, "ctl_vehicle", c_type[entry]),
            "pert_dose": np.where(is_veh, float(MISSING), c_dose[entry]),
            "pert_dose_unit": np.where(is_veh, str(MISSING), c_unit[entry]),
            "pert_time": times[ti].astype(np.int64),
            "pert_time_unit": "h",
            "pert_vehicle": np.where(is_veh, str(MISSING), "DMSO"),
        },
        index=pd.Index(sample_ids.to_numpy(), name="cid"),
    )

    # truth conditions: (cell, time, entry)
    n_cond_ctx = n_pairs + 1
    n_cond = len(cells) * n_t * n_cond_ctx
    cond = np.arange(n_cond)
    cc = cond // (n_t * n_cond_ctx)
    ct = (cond // n_cond_ctx) % n_t
    ce = cond % n_cond_ctx
    n_wells = np.bincount(sample_condition[sample_condition >= 0], minlength=n_cond)
    truth_conditions = pd.DataFrame(
        {
            "cell_id": cell_arr[cc],
            "pert_id": c_pert_id[ce],
            "pert_iname": c_iname[ce],
            "pert_type": c_type[ce],
            "dose_uM": c_dose_uM[ce],
            "time_h": times[ct].astype(np.int64),
            "pert_dose": c_dose[ce],
            "pert_dose_unit": c_unit[ce],
            "n_wells": n_wells.astype(np.int64),
            "n_affected": np.count_nonzero(truth_logfc, axis=1).astype(np.int64),
            "effect_rms": np.sqrt(np.mean(truth_logfc**2, axis=1)),
        },
        index=pd.Index([f"cond{i + 1:06d}" for i in range(n_cond)], name="condition_id"),
    )
    return col_meta, truth_conditions

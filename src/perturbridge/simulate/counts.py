"""A seeded simulator of plate-based count data (DRUG-seq / pseudobulked screens).

Negative-binomial counts with gene-specific means and dispersions, per-well library
sizes, per-plate batch effects and planted compound effects, returned as validated
Samples. The ``tahoe_cell_line`` preset mimics one Tahoe-100M cell line after
pseudobulking: 14 plates, mostly one well per condition, DMSO wells on every plate.
"""

from __future__ import annotations

from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd

from ..samples import build_samples

__all__ = ["CountsDesign", "SimulatedCounts", "simulate_counts", "tahoe_cell_line"]


@dataclass
class SimulatedCounts:
    """Samples (counts) and the planted log2 fold changes per treated condition."""

    samples: ad.AnnData
    truth_logfc: pd.DataFrame  # conditions (compound|dose) × genes


@dataclass(frozen=True)
class CountsDesign:
    """The treatments and the count model of :func:`simulate_counts`.

    ``doses_uM``: the doses (compound ``k`` of a plate takes dose ``k % len(doses_uM)``);
    ``replicate_fraction``: the fraction of conditions with a second well;
    ``mean_library_size``: the mean counts per well; ``frac_affected``: the fraction of
    genes a compound changes.
    """

    doses_uM: tuple[float, ...] = (0.1, 1.0, 10.0)
    replicate_fraction: float = 0.2
    mean_library_size: float = 2e5
    frac_affected: float = 0.05


def simulate_counts(
    design: CountsDesign | None = None,
    *,
    n_genes: int = 2000,
    n_plates: int = 4,
    conditions_per_plate: int = 20,
    vehicles_per_plate: int = 8,
    cell_line: str = "CVCL_0023",
    time_h: float = 24.0,
    seed: int = 0,
) -> SimulatedCounts:
    """Simulate one cell line's plates of counts.

    Each plate holds its own ``conditions_per_plate`` compound × dose conditions (one
    well each; a ``design.replicate_fraction`` of them get a second well) and
    ``vehicles_per_plate`` DMSO wells; ``design`` (:class:`CountsDesign`) also sets the
    doses, the library size and the fraction of genes affected.
    """
    model = design or CountsDesign()
    doses_uM, replicate_fraction = model.doses_uM, model.replicate_fraction
    mean_library_size, frac_affected = model.mean_library_size, model.frac_affected
    rng = np.random.default_rng(seed)
    log_mu = rng.normal(-10.5, 2.2, n_genes)  # log fraction of the library per gene
    mu_frac = np.exp(log_mu) / np.exp(log_mu).sum()
    disp = 0.02 + 0.4 * np.exp(-(rng.normal(0, 1, n_genes) ** 2))
    rows = []
    k = 0
    for p in range(n_plates):
        plate = f"plate{p + 1:02d}"
        rows += [(plate, "DMSO", 0.0, "vehicle")] * vehicles_per_plate
        for _ in range(conditions_per_plate):
            cmp_i, dose = divmod(k, len(doses_uM))
            reps = 2 if rng.random() < replicate_fraction else 1
            rows += [(plate, f"drug{cmp_i:04d}", doses_uM[dose], "compound")] * reps
            k += 1
    obs = pd.DataFrame(rows, columns=["plate", "perturbagen", "pert_dose_uM", "pert_type"])
    n = len(obs)
    obs.index = pd.Index([f"{pl}_w{i:05d}" for i, pl in enumerate(obs["plate"])])
    obs["dataset"] = "simulated_counts"
    obs["assay"] = "scRNA-seq pseudobulk"
    obs["well"] = [f"W{i % 384:03d}" for i in range(n)]
    obs["replicate"] = "1"
    obs["cell_context"] = cell_line
    obs["cell_name"] = cell_line
    obs["compound_id_source"] = obs["perturbagen"]
    obs["is_control"] = obs["pert_type"] == "vehicle"
    obs["pert_time_h"] = time_h
    obs["n_cells"] = rng.integers(20, 400, n)
    keys = (obs["perturbagen"] + "|" + obs["pert_dose_uM"].map("{:g}".format)).to_numpy()
    treated_keys = pd.unique(keys[~obs["is_control"].to_numpy()])
    effects = rng.normal(0, 1.0, (treated_keys.size, n_genes)) * (
        rng.random((treated_keys.size, n_genes)) < frac_affected
    )
    eff_of = {key: i for i, key in enumerate(treated_keys)}
    batch = {pl: rng.normal(0, 0.15, n_genes) for pl in obs["plate"].unique()}
    lib = mean_library_size * np.exp(rng.normal(0, 0.5, n))
    counts = np.empty((n, n_genes), dtype=np.float64)
    size = 1.0 / disp
    for i, (pl, key, ctl) in enumerate(zip(obs["plate"], keys, obs["is_control"], strict=True)):
        lfc = 0.0 if ctl else effects[eff_of[key]]
        mu = lib[i] * mu_frac * np.exp(batch[pl] + lfc * np.log(2))
        counts[i] = rng.negative_binomial(size, size / (size + mu))
    obs["total_counts"] = counts.sum(axis=1)
    var = pd.DataFrame(
        {"symbol": [f"GENE{j}" for j in range(n_genes)]},
        index=pd.Index([f"ENSG{j + 1:011d}" for j in range(n_genes)]),
    )
    samples = build_samples(counts, obs, var, value_kind="counts")
    truth = pd.DataFrame(effects, index=treated_keys, columns=var.index)
    return SimulatedCounts(samples, truth)


def tahoe_cell_line(*, n_genes: int = 20_000, seed: int = 0) -> SimulatedCounts:
    """One Tahoe-like cell line: ~1,340 pseudobulk samples, 1,149 conditions, 14 plates."""
    return simulate_counts(
        CountsDesign(replicate_fraction=0.035, mean_library_size=3e5),
        n_genes=n_genes,
        n_plates=14,
        conditions_per_plate=82,
        vehicles_per_plate=10,
        seed=seed,
    )

"""Write the input of the generic-adapter example: counts, sample metadata, the truth.

Simulates one cell line's DRUG-seq-like plates with planted compound effects
(``perturbridge.simulate.counts.simulate_counts``) and writes them the way a lab would
share them, next to ``mapping.toml``:

* ``counts.csv``: genes × samples, columns ``gene_id`` (Ensembl), ``gene_name`` and one
  column per sample, with two ERCC spike-in rows;
* ``samples.tsv``: one row per well: ``sample, plate, row, col, cell_line, compound,
  dose`` (combined strings such as ``1000.0nM``), ``time_h``, ``qc_pass``; DMSO wells are
  the vehicle, Staurosporine wells positive controls, one well failed QC;
* ``truth_logfc.tsv``: the planted log2 fold change of every compound × dose (µM).

Run it, then ingest:

    python examples/generic/make_input.py examples/generic
    perturbridge ingest generic --input mapping=examples/generic/mapping.toml \\
        --out samples.h5ad --ledger ledger.tsv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from perturbridge.simulate.counts import simulate_counts


def write_example(out_dir: str | Path, *, n_genes: int = 2000, seed: int = 0) -> dict[str, Path]:
    """Write ``counts.csv``, ``samples.tsv`` and ``truth_logfc.tsv`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sim = simulate_counts(
        n_genes=n_genes, n_plates=3, conditions_per_plate=12, vehicles_per_plate=8, seed=seed
    )
    s = sim.samples
    rng = np.random.default_rng(seed + 1)
    x = np.asarray(s.X).T.astype(np.int64)  # genes × samples
    obs = s.obs
    # two Staurosporine wells per plate (positive controls), counts like a vehicle well's
    extra_ids, extra_plates, extra_cols = [], [], []
    for plate in pd.unique(obs["plate"].astype(str)):
        vehicle = np.flatnonzero((obs["plate"] == plate).to_numpy() & obs["is_control"].to_numpy())
        for k in range(2):
            extra_ids.append(f"{plate}_stauro{k}")
            extra_plates.append(plate)
            extra_cols.append(rng.poisson(x[:, vehicle[k]] * 0.5))
    x = np.column_stack([x, *extra_cols])
    samples = [*obs.index.astype(str), *extra_ids]
    ercc = rng.poisson(50, (2, x.shape[1]))
    counts = pd.DataFrame(
        np.vstack([x, ercc]),
        index=pd.Index([*s.var_names, "ERCC-00002", "ERCC-00003"], name="gene_id"),
        columns=samples,
    )
    counts.insert(0, "gene_name", [*s.var["symbol"].astype(str), "ERCC-00002", "ERCC-00003"])
    paths = {"counts": out / "counts.csv", "samples": out / "samples.tsv"}
    counts.to_csv(paths["counts"])

    plate = [*obs["plate"].astype(str), *extra_plates]
    well_no = pd.Series(plate).groupby(plate).cumcount().to_numpy()
    compound = [*obs["perturbagen"].astype(str), *["Staurosporine"] * len(extra_ids)]
    dose_uM = [*obs["pert_dose_uM"].astype(float), *[1.0] * len(extra_ids)]
    dose = [
        "0.1%" if c == "DMSO" else f"{d * 1000:.1f}nM"  # the vehicle's dose is a volume
        for d, c in zip(dose_uM, compound, strict=True)
    ]
    meta = pd.DataFrame(
        {
            "sample": samples,
            "plate": plate,
            "row": ["ABCDEFGHIJKLMNOP"[i // 24] for i in well_no],
            "col": well_no % 24 + 1,
            "cell_line": "HepG2",
            "compound": compound,
            "dose": dose,
            "time_h": 24,
            "qc_pass": True,
        }
    )
    meta.loc[meta.index[meta["compound"].str.startswith("drug")][-1], "qc_pass"] = False
    meta.to_csv(paths["samples"], sep="\t", index=False)
    truth = sim.truth_logfc.copy()
    truth.index.name = "compound|dose_uM"
    paths["truth"] = out / "truth_logfc.tsv"
    truth.to_csv(paths["truth"], sep="\t")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default=str(Path(__file__).parent))
    parser.add_argument("--n-genes", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name, path in write_example(args.out_dir, n_genes=args.n_genes, seed=args.seed).items():
        print(f"wrote {name}: {path}")


if __name__ == "__main__":
    main()

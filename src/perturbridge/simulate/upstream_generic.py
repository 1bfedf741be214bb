"""A DRUG-seq-like screen shared the way a lab would share it, for the generic adapter.

``counts.csv`` (genes × samples, Ensembl ids + names, two ERCC spike-in rows),
``samples.tsv`` (plate, row, col, cell line, compound, dose strings such as ``1000.0nM``,
time, a QC flag; DMSO vehicles, Staurosporine positive controls, one failed well),
``truth_logfc.tsv`` (planted log2 fold changes, ``compound|dose_uM`` × genes) and the
``mapping.toml`` that tells :func:`perturbridge.sources.generic.read_generic` how to read
them. ``examples/generic`` uses the same writer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .counts import simulate_counts

__all__ = ["MAPPING_TOML", "write_generic"]

#: The mapping file of the example (relative paths: relative to the file's folder).
MAPPING_TOML = """# A mapping file for the generic adapter:
#     perturbridge ingest generic --input mapping=<this file>
# Relative paths are relative to this file's folder. Produce the input with
#     python examples/generic/make_input.py examples/generic
version = 1

[input]
expression = "counts.csv"          # .h5ad, or a .csv/.tsv/.txt(.gz)/.parquet table
orientation = "genes_x_samples"    # the first column holds gene ids, every other a sample
metadata = "samples.tsv"           # one row per sample
value_kind = "counts"              # or "log_expression"

[samples]
id_column = "sample"               # matches the sample columns of counts.csv
keep_columns = ["qc_pass"]         # carried into obs as they are

[fields]                           # a column name, or { value = "..." } for a fixed value
dataset = { value = "example_drugseq" }
assay = { value = "DRUG-seq" }
plate = "plate"
well_row = "row"                   # or: well = "well"
well_column = "col"
cell_context = "cell_line"
perturbagen = "compound"
# replicate = "replicate"          # default: rank of the well among its condition's wells
# compound_id = "compound_id"
# inchikey = "inchikey"            # 'InChIKey=' prefixes are stripped
# smiles = "smiles"
# pubchem_cid = "cid"

[dose]
column = "dose"                    # combined strings such as "1000.0nM"
# unit_column = "dose_unit"        # or a unit column ...
# unit = "uM"                      # ... or one unit (also for bare numbers in `column`)

[time]
column = "time_h"
unit = "h"

[controls]
control_values = ["DMSO"]          # looked up in the perturbagen column (case-insensitive)
positive_control_values = ["Staurosporine"]
# control_match_keys = ["percent_dmso"]

[[exclude]]
column = "qc_pass"
equals = false
reason = "qc_fail"

[genes]
id_type = "ensembl"                # ensembl, symbol or entrez
id_column = "gene_id"
symbol_column = "gene_name"
"""


def write_generic(out_dir: str | Path, *, n_genes: int = 2000, seed: int = 0) -> dict[str, Path]:
    """Write ``counts.csv``, ``samples.tsv``, ``truth_logfc.tsv`` and ``mapping.toml``
    (the mapping of ``examples/generic``) into ``out_dir``."""
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
    paths["mapping"] = out / "mapping.toml"
    paths["mapping"].write_text(MAPPING_TOML)
    return paths

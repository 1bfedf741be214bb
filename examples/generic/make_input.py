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

from perturbridge.simulate.upstream_generic import write_generic


def write_example(out_dir: str | Path, *, n_genes: int = 2000, seed: int = 0) -> dict[str, Path]:
    """Write ``counts.csv``, ``samples.tsv`` and ``truth_logfc.tsv`` (and the mapping) into
    ``out_dir``."""
    return write_generic(out_dir, n_genes=n_genes, seed=seed)


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

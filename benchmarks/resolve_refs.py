"""Benchmark: loading a reference store's resolvers in a fresh process.

What an ingest task with ``--refs`` pays before it resolves anything: importing the
resolvers and loading the compound, cell and gene resolvers and the cell biology table
(:class:`perturbridge.ids.annotate.IdentityResolvers`). Each measurement runs in its
own fresh Python process (nothing cached from an earlier load), ``--repeats`` times;
the JSON reports every run and the best.

- ``load``: per resolver, the wall and CPU seconds of ``from_store`` after the imports,
  with the lookups the store saved (``saved``) and with them ignored, the lookup built
  from the store's tables as older stores do (``rebuilt``);
- ``task``: a fresh process that imports, loads the three resolvers and the biology
  table and resolves 5 compounds, 5 cell lines and 5 genes, with the MONDO/UBERON
  terms of their biology columns (wall seconds from process start to the end,
  interpreter start-up included; ``after_import``: the loading and resolving alone,
  without importing ``perturbridge.ids.annotate``, which brings AnnData, as every
  ingest task does anyway);
- ``refs_resolve``: ``perturbridge refs resolve --kind compound`` of 50 names (45
  sci-Plex3 names and 5 of issue 17), wall seconds of the whole command.

The store is ``--refs`` or, with ``--build DIR``, one built there from the shared
files (Repurposing Hub, LINCS ``pertinfo``/``compoundinfo``/``cellinfo``, DepMap,
HGNC and, when present, Bioconductor's ``org.Hs.eg.sqlite``) and the package sources
that are installed, as ``refs build`` does.

Usage::

    python benchmarks/resolve_refs.py (--refs REFS | --build DIR) [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
ORGDB = Path("/usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite")
SHARED_FILES = {
    "repurposing_samples_20200324.txt": "reference_compounds_repurposing_hub",
    "repurposing_drugs_20200324.txt": "reference_compounds_repurposing_hub",
    "pertinfo.tsv.gz": "l1000_dhimmel_lincs",
    "cellinfo.tsv.gz": "l1000_dhimmel_lincs",
    "lincs_pert_info2.tsv.gz": "l1000_signatureSearch",
    "depmap_sample_info.csv": "reference_cell_lines",
    "hgnc_complete_set.txt.gz": "reference_hgnc",
}
ISSUE_17 = ["Gleevec", "Velcade", "JQ1", "4-hydroxytamoxifen", "Gefitinib///Iressa"]

# one fresh process per measurement: the code run in it prints one JSON object
_LOAD = """
import json, sys, time
sys.path.insert(0, {src!r})
from perturbridge.ids.reader import RefStoreReader
from perturbridge.ids.compounds import CompoundResolver
from perturbridge.ids.cells import CellResolver
from perturbridge.ids.genes import GeneResolver
from perturbridge.ids.biology import CellBiology
st = RefStoreReader.open({refs!r})
what, mode = {what!r}, {mode!r}
w, c = time.perf_counter(), time.process_time()
if mode == "saved":
    cls = dict(compounds=CompoundResolver, cells=CellResolver, genes=GeneResolver,
               biology=CellBiology)[what]
    cls.from_store(st)
elif what == "compounds":
    CompoundResolver.from_tables(
        compounds=st.table("compounds"), compound_synonyms=st.table("compound_synonyms"),
        structures=st.table("compound_structures"), name_keys=st.table("compound_name_keys"))
elif what == "cells":
    CellResolver(st.table("cells"), st.table("cell_synonyms"))
elif what == "genes":
    GeneResolver(st.table("genes"), st.table("gene_synonyms"))
else:
    CellBiology(st.table("cells"))
print(json.dumps({{"wall": time.perf_counter() - w, "cpu": time.process_time() - c}}))
"""
_TASK = """
import json, sys, time
sys.path.insert(0, {src!r})
c0 = time.process_time()
from perturbridge.ids.annotate import IdentityResolvers
c1, w1 = time.process_time(), time.perf_counter()
r = IdentityResolvers.from_store({refs!r})
out = [r.compounds.resolve({compounds!r}), r.cells.resolve(["A549", "MCF7", "K562", "H460",
       "HEK293T"]), r.genes.resolve(["TP53", "EGFR", "7157", "ENSG00000141510", "SEPT7"])]
r.biology.lookup(out[1]["accession"].dropna())
print(json.dumps({{"import_cpu": c1 - c0, "cpu": time.process_time() - c0,
                  "after_import_wall": time.perf_counter() - w1,
                  "after_import_cpu": time.process_time() - c1,
                  "resolved": [int((o["status"] == "resolved").sum()) for o in out]}}))
"""


def _fresh(code: str) -> tuple[float, dict[str, Any]]:
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    return wall, json.loads(done.stdout.strip().splitlines()[-1])


def _build(out: Path) -> Path:
    sys.path.insert(0, str(ROOT / "src"))
    from perturbridge.ids.store import RefStore

    src = out / "upstream"
    src.mkdir(parents=True, exist_ok=True)
    for name, folder in SHARED_FILES.items():
        link = src / name
        if not link.exists():
            link.symlink_to(DATA / folder / name)
    if ORGDB.is_file() and not (src / ORGDB.name).exists():
        (src / ORGDB.name).symlink_to(ORGDB)
    refs = out / "refs"
    RefStore.build(source_dir=src, out=refs, package_sources="auto", overwrite=True)
    return refs


def _names50() -> list[str]:
    import pandas as pd

    sciplex = pd.read_csv(DATA / "sciplex_trapnell" / "Supplementary_Table_3.txt", sep="\t")
    names = list(dict.fromkeys(sciplex["name"].dropna()))[:45]
    return names + ISSUE_17


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--refs", type=Path, help="an existing reference store")
    where.add_argument("--build", type=Path, help="build the store from shared data here")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    load_before = os.getloadavg()
    t = time.perf_counter()
    refs = args.refs if args.refs is not None else _build(args.build)
    build_seconds = None if args.refs is not None else round(time.perf_counter() - t, 1)
    src = str(ROOT / "src")
    result: dict[str, Any] = {"refs": str(refs), "build_seconds": build_seconds}
    load: dict[str, dict[str, Any]] = {}
    for what in ("compounds", "cells", "genes", "biology"):
        for mode in ("saved", "rebuilt"):
            runs = [
                _fresh(_LOAD.format(src=src, refs=str(refs), what=what, mode=mode))[1]
                for _ in range(args.repeats)
            ]
            load[f"{what}_{mode}"] = {
                "wall_best": round(min(float(r["wall"]) for r in runs), 3),
                "cpu_best": round(min(float(r["cpu"]) for r in runs), 3),
                "wall_runs": [round(float(r["wall"]), 3) for r in runs],
            }
    result["load"] = load
    names = _names50()
    task = [
        _fresh(_TASK.format(src=src, refs=str(refs), compounds=names[-5:]))
        for _ in range(args.repeats)
    ]
    result["task"] = {
        "wall_best": round(min(w for w, _ in task), 3),
        "wall_runs": [round(w, 3) for w, _ in task],
        "cpu_runs": [round(float(r["cpu"]), 3) for _, r in task],
        "import_cpu_runs": [round(float(r["import_cpu"]), 3) for _, r in task],
        "after_import_wall_runs": [round(float(r["after_import_wall"]), 3) for _, r in task],
        "after_import_cpu_runs": [round(float(r["after_import_cpu"]), 3) for _, r in task],
        "resolved_compounds_cells_genes": task[0][1]["resolved"],
    }
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "names.txt"
        listing.write_text("\n".join(names) + "\n")
        # the installed command, as a user runs it
        cli = [str(Path(sys.executable).with_name("perturbridge")), "refs", "resolve", str(listing)]
        cli += ["--kind", "compound", "--refs", str(refs), "--out", str(Path(tmp) / "o.tsv")]
        walls = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            subprocess.run(cli, capture_output=True, check=True)
            walls.append(round(time.perf_counter() - t, 3))
    result["refs_resolve_50"] = {"wall_best": min(walls), "wall_runs": walls}
    result["loadavg_before"] = [round(x, 2) for x in load_before]
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["cpu_count"] = os.cpu_count()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

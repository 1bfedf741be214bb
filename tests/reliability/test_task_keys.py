"""Task keys from content: every file an ingest reads keys its task (docs/compendium.md).

Faults: a table named inside a generic mapping file is edited; an input is rewritten
with the same size and modification time; a file inside a folder input changes; a file
named by an adapter option changes; nothing changes. Each build runs in this process
(one worker), so the stat shortcut of the checksum cache can be forced on
(``RACY_NS = 0``) where a test needs it.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import perturbridge.compendium.tasks as tasks_mod
from compendium._fixtures import COUNTS_MODULE, write_counts
from perturbridge.compendium import Compendium, build, load_plan
from perturbridge.compendium._common import PlanError
from perturbridge.compendium.tasks import TaskCache
from perturbridge.simulate.upstream_generic import write_generic

GENE = "ENSG00000000001"


def _generic_plan(folder: Path) -> tuple[Path, dict[str, Path]]:
    files = write_generic(folder / "in", n_genes=40, seed=3)
    plan = folder / "plan.toml"
    plan.write_text(
        textwrap.dedent(
            f"""
            [store]
            path = "store"
            [executor]
            n_jobs = 1
            [[datasets]]
            name = "gen"
            source = "generic"
            inputs = {{ mapping = "{files["mapping"]}" }}
            """
        )
    )
    return plan, files


def _treated_samples(files: dict[str, Path]) -> tuple[str, list[str]]:
    """The first treated compound (at its first dose) and its sample columns."""
    meta = pd.read_csv(files["samples"], sep="\t", dtype=str)
    treated = meta[meta["compound"].str.startswith("drug") & (meta["qc_pass"] == "True")]
    first = treated[
        (treated["compound"] == treated["compound"].iloc[0])
        & (treated["dose"] == treated["dose"].iloc[0])
    ]
    return str(first["compound"].iloc[0]), first["sample"].tolist()


def _logfc(store: Path, compound: str) -> float:
    with Compendium.open(store) as comp:
        conds = comp.conditions()
        conds = conds[conds["perturbagen"].astype(str) == compound]
        eff = comp.effects(conds, genes=[GENE])
    return float(np.nanmax(np.asarray(eff.X, dtype=float)))


def _stat(p: Path) -> tuple[int, int]:
    st = p.stat()
    return st.st_size, st.st_mtime_ns


def test_editing_a_table_named_in_a_generic_mapping_recomputes_the_ingest(tmp_path, fault):
    plan, files = _generic_plan(tmp_path)
    build(plan)
    compound, samples = _treated_samples(files)
    before = _logfc(tmp_path / "store", compound)
    counts = pd.read_csv(files["counts"], dtype={"gene_name": str})
    row = counts.index[counts["gene_id"] == GENE][0]
    counts.loc[row, samples] = counts.loc[row, samples] * 20  # a value of the CSV
    counts.to_csv(files["counts"], index=False)
    report = build(plan)
    after = _logfc(tmp_path / "store", compound)
    fault(
        "table named in a mapping edited",
        "ingest recomputed, store holds the new logFC",
        f"computed {sorted(t for t in report.computed if t.startswith('ingest'))}, "
        f"logFC {before:.2f} -> {after:.2f}",
    )
    assert "ingest:gen" in report.computed
    assert report.store_written
    assert after > before + 2  # x20 counts: about +4.3 log2 units


def test_an_input_rewritten_with_the_same_size_and_mtime_is_noticed(tmp_path, fault, monkeypatch):
    monkeypatch.setattr(tasks_mod, "RACY_NS", 0)  # trust the stat shortcut at once
    plan, files = _generic_plan(tmp_path)
    build(plan)
    path = files["counts"]
    size, mtime = _stat(path)
    text = path.read_text()
    head, first, rest = text.partition(f"\n{GENE},")
    line, nl, tail = rest.partition("\n")
    cells = line.split(",")
    cells[1] = str(9 - int(cells[1][0])) + cells[1][1:]  # one digit, same length
    path.write_text(head + first + ",".join(cells) + nl + tail)
    os.utime(path, ns=(path.stat().st_atime_ns, mtime))
    assert _stat(path) == (size, mtime)
    report = build(plan)
    fault(
        "input rewritten, same size and mtime",
        "ingest recomputed (ctime differs)",
        f"computed {sorted(t for t in report.computed if t.startswith('ingest'))}",
    )
    assert "ingest:gen" in report.computed


def _counts_plan(folder: Path, *, extra_input: str = "", options: str = "") -> Path:
    counts = write_counts(folder / "in")
    plan = folder / "plan.toml"
    opts = f"\noptions = {{ {options} }}" if options else ""
    plan.write_text(
        textwrap.dedent(
            f"""
            [store]
            path = "store"
            [build]
            imports = ["{COUNTS_MODULE}"]
            [executor]
            n_jobs = 1
            [[datasets]]
            name = "sim_counts"
            source = "test_counts_h5ad"
            inputs = {{ h5ad = "{counts}"{extra_input} }}
            de = {{ modes = ["group"] }}"""
        )
        + opts
        + "\n"
    )
    return plan


def test_a_changed_file_in_a_folder_input_recomputes_the_ingest(tmp_path, fault):
    folder = tmp_path / "annotations"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "genes.tsv").write_text("gene\tsymbol\nG1\tA\n")
    (folder / "notes.txt").write_text("v1\n")
    plan = _counts_plan(tmp_path, extra_input=f', folder = "{folder}"')
    build(plan)
    (folder / "sub" / "genes.tsv").write_text("gene\tsymbol\nG1\tB\n")
    report = build(plan)
    fault(
        "file inside a folder input changed",
        "ingest recomputed",
        f"computed {sorted(t for t in report.computed if t.startswith('ingest'))}",
    )
    assert "ingest:sim_counts" in report.computed


def test_a_changed_file_named_by_an_option_recomputes_the_ingest(tmp_path, fault):
    notes = tmp_path / "notes.txt"
    notes.write_text("first\n")
    plan = _counts_plan(tmp_path, options=f'notes = "{notes}", label = "x"')
    d = load_plan(plan).datasets[0]
    assert ("options.notes", notes) in d.input_paths()
    build(plan)
    notes.write_text("second\n")
    report = build(plan)
    fault(
        "file named by an adapter option changed",
        "ingest recomputed",
        f"computed {sorted(t for t in report.computed if t.startswith('ingest'))}",
    )
    assert "ingest:sim_counts" in report.computed


def test_nothing_changed_computes_nothing(tmp_path, fault, monkeypatch):
    plan, _ = _generic_plan(tmp_path)
    first = build(plan)
    assert "ingest:gen" in first.computed
    again = build(plan)  # inputs just written: hashed again (racy), same keys
    monkeypatch.setattr(tasks_mod, "RACY_NS", 0)
    shortcut = build(plan)  # checksums from the stat shortcut
    fault(
        "nothing changed",
        "0 tasks computed",
        f"{len(again.computed)} computed (hashed), {len(shortcut.computed)} computed (stat)",
    )
    assert again.computed == [] and shortcut.computed == []
    assert not again.store_written and not shortcut.store_written


def test_the_generic_mapping_declares_its_tables(tmp_path):
    plan, files = _generic_plan(tmp_path)
    d = load_plan(plan).datasets[0]
    assert d.input_paths() == [
        ("mapping", files["mapping"]),
        ("mapping:input.expression", files["counts"]),
        ("mapping:input.metadata", files["samples"]),
    ]


def test_a_malformed_mapping_is_a_plan_problem(tmp_path):
    plan, files = _generic_plan(tmp_path)
    files["mapping"].write_text(files["mapping"].read_text() + "\n[nope]\nx = 1\n")
    with pytest.raises(PlanError, match=r"cannot list the files the ingest reads: .*nope"):
        load_plan(plan)


def test_a_recent_checksum_is_not_trusted_and_a_settled_one_is(tmp_path, monkeypatch):
    calls: list[Path] = []
    real = tasks_mod.file_sha256

    def counting(path: Path) -> str:
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(tasks_mod, "file_sha256", counting)
    cache = TaskCache(tmp_path / "cache")
    f = tmp_path / "a.txt"
    f.write_text("one")
    first = cache.checksums([f])[f]
    assert cache.checksums([f])[f] == first
    assert len(calls) == 2  # changed within RACY_NS of hashing: hashed again
    monkeypatch.setattr(tasks_mod, "RACY_NS", 0)  # as if the file had settled
    assert cache.checksums([f])[f] == first
    assert len(calls) == 2  # the stat shortcut answers
    mtime = f.stat().st_mtime_ns
    f.write_text("two")
    os.utime(f, ns=(mtime, mtime))
    assert cache.checksums([f])[f] != first

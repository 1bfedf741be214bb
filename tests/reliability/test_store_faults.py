"""Store faults: interrupted updates, damaged and missing files, file modes.

A store update is killed (SIGKILL, in a subprocess) at each step of its preparation and
commit: every read afterwards gives the old values, the new values or a StoreError,
never a mixture, and the next build gives the same bytes as an uninterrupted one. One
flipped bit in a shard, a catalog table and an Effects file is found by ``verify`` and
by the first read of it; a deleted shard raises; a build under umask 022 writes 0644
files and 0755 folders.
"""

from __future__ import annotations

import signal
import stat
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from compendium._fixtures import assert_same_store, write_counts, write_l1000, write_plan
from perturbridge.compendium import Compendium, build
from perturbridge.compendium._common import StoreError
from perturbridge.compendium.store import _transaction, _verify, repair_store, verify_store

from ._states import (
    EXTRA,
    copy_tree as _copy,
    read_values as _read,
    same_values as _same,
)

#: steps of a store update where the update is killed (see store._transaction._checkpoint)
KILL_POINTS = (
    "files_placed",
    "catalog_written",
    "zarr_shard",
    "prepared",
    "commit_manifest_removed",
    "commit_catalog",
    "commit_effects",
    "committed",
)

KILL_SCRIPT = """
import os, signal, sys
from perturbridge.compendium import build
from perturbridge.compendium.store import _transaction

def checkpoint(step):
    if step == sys.argv[2]:
        os.kill(os.getpid(), signal.SIGKILL)

_transaction._checkpoint = checkpoint
build(sys.argv[1])
"""


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS)
def test_an_update_killed_midway_never_reads_mixed(tmp_path, two_states, fault, point, forker):
    work = _copy(two_states["base"], tmp_path / "work")  # type: ignore[arg-type]
    l1000_b, counts = two_states["plan_b"]  # type: ignore[misc]
    plan = write_plan(work, l1000=l1000_b, counts=counts, extra=EXTRA)
    script = tmp_path / "kill.py"
    script.write_text(textwrap.dedent(KILL_SCRIPT))
    code, stderr = forker.run(script, str(plan), point)
    assert code == -signal.SIGKILL, stderr[-2000:]
    store = work / "store"
    values = two_states["values"]  # type: ignore[index]
    try:
        got = _read(store)
    except StoreError as err:
        observed = f"StoreError ({str(err).split(':', 1)[-1].strip()[:60]}…)"
    else:
        if _same(got, values["a"]):
            observed = "old values"
        elif _same(got, values["b"]):
            observed = "new values"
        else:
            observed = "MIXED values"
    fault(
        f"update killed at {point}",
        "old values, new values or StoreError; rebuild = uninterrupted bytes",
        observed,
    )
    assert observed != "MIXED values"
    if point in ("files_placed", "catalog_written", "zarr_shard", "prepared"):
        assert observed == "old values"  # nothing of the store was touched yet
    if point == "committed":
        assert observed == "new values"
    if point.startswith("commit_"):  # repair finishes the commit: the new store
        report = repair_store(store)
        assert report.ok and "finished the interrupted update" in report.actions[0]
        assert _same(_read(store), values["b"])
    build(plan)
    assert_same_store(store, two_states["refs"]["b"])  # type: ignore[index]
    assert not verify_store(store)
    assert _same(_read(store), values["b"])


def test_a_failed_preparation_leaves_the_old_store(tmp_path, two_states, fault, monkeypatch):
    """A full disk while the update is prepared: the old store stays, nothing is left."""
    work = _copy(two_states["base"], tmp_path / "work")  # type: ignore[arg-type]
    l1000_b, counts = two_states["plan_b"]  # type: ignore[misc]
    plan = write_plan(work, l1000=l1000_b, counts=counts, extra=EXTRA)

    def full(step: str) -> None:
        if step == "zarr_shard":
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(_transaction, "_checkpoint", full)
    with pytest.raises(OSError, match="No space left"):
        build(plan)
    store = work / "store"
    leftovers = [p.name for p in store.iterdir() if p.name.startswith(".update-")]
    same = _same(_read(store), two_states["values"]["a"])  # type: ignore[index]
    fault("ENOSPC while an update is prepared", "old store readable, no leftovers",
          f"old values: {same}, leftovers: {leftovers}")  # fmt: skip
    assert same and not leftovers
    monkeypatch.undo()
    build(plan)
    assert_same_store(store, two_states["refs"]["b"])  # type: ignore[index]


def test_a_store_updated_while_open_refuses_to_mix(tmp_path, two_states, fault):
    work = _copy(two_states["base"], tmp_path / "work")  # type: ignore[arg-type]
    l1000_b, counts = two_states["plan_b"]  # type: ignore[misc]
    with Compendium.open(work / "store") as comp:
        comp.effects(mode="group")  # everything opened and cached
        build(write_plan(work, l1000=l1000_b, counts=counts, extra=EXTRA))
        with pytest.raises(StoreError, match="updated while it was open") as info:
            comp.effects(mode="group")
    fault("store updated while a reader has it open", "StoreError on the next read",
          f"StoreError: {str(info.value)[-60:]}")  # fmt: skip


@pytest.fixture
def store_b(tmp_path, two_states) -> Path:
    """A copy of the reference store B (its folder: plan, store and task cache)."""
    ref = two_states["refs"]["b"]  # type: ignore[index]
    return _copy(ref.parent, tmp_path / "b") / "store"


def _flip(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x10
    path.write_bytes(bytes(raw))


def _app() -> typer.Typer:
    from perturbridge.cli.compendium import register

    app = typer.Typer()

    @app.callback()
    def _main() -> None:
        """perturbridge (test app)"""

    register(app)
    return app


def test_a_flipped_bit_in_a_shard(store_b, fault):
    shard = store_b / "zarr" / "group.zarr" / "logFC" / "c" / "0" / "0"
    _flip(shard, 20)  # inside the first row's compressed bytes
    problems = verify_store(store_b)
    assert [p.path for p in problems] == ["zarr/group.zarr/logFC/c/0/0"]
    res = CliRunner().invoke(_app(), ["verify", str(store_b)])
    assert res.exit_code == 1 and "group.zarr/logFC/c/0/0" in res.output
    with Compendium.open(store_b) as comp:
        rows = comp.contrasts(mode="group")
        first = rows.loc[rows["zarr_row"] == 0, "contrast_id"].tolist()
        other = rows.loc[rows["zarr_row"] == 1, "contrast_id"].tolist()
        comp.effects(other)  # another row of the same shard still reads
        with pytest.raises(StoreError, match=r"row 0 is damaged") as info:
            comp.effects(first)
    report = repair_store(store_b)
    fault("one bit flipped in a shard", "verify and the first read of the row report it",
          f"verify: {problems[0]}; read: {str(info.value).split(': ', 1)[1][:30]}; repair: "
          f"{len(report.needs_rebuild)} file needs a rebuild")  # fmt: skip
    assert [p.path for p in report.needs_rebuild] == ["zarr/group.zarr/logFC/c/0/0"]
    assert (store_b / ".needs-rebuild").is_file()
    build(store_b.parent / "plan.toml")  # same plan: rewritten because of the marker
    assert not verify_store(store_b) and not (store_b / ".needs-rebuild").exists()


def test_a_flipped_bit_in_a_catalog_table(store_b, fault):
    table = store_b / "catalog" / "genes.parquet"
    _flip(table, table.stat().st_size // 2)
    problems = verify_store(store_b)
    with pytest.raises(StoreError, match=r"catalog/genes.parquet does not match") as info:
        Compendium.open(store_b)
    fault("one bit flipped in a catalog table", "verify and open report it",
          f"verify: {problems[0]}; open: …{str(info.value)[-70:]}")  # fmt: skip
    assert [p.path for p in problems] == ["catalog/genes.parquet"]
    assert "perturbridge repair" in str(info.value)


def test_a_flipped_bit_in_an_effects_file(store_b, fault):
    rel = "effects/sim_counts/group/CVCL_0023_de.h5ad"
    path = store_b / rel
    with Compendium.open(store_b) as comp:
        rec = comp.manifest["files"][rel]
    cached = _verify._cached_copy(store_b / ".cache", rec)
    assert cached is not None and cached.stat().st_ino != path.stat().st_ino  # a copy
    _flip(path, path.stat().st_size // 2)
    problems = verify_store(store_b)
    with Compendium.open(store_b) as comp:
        cond = comp.conditions(dataset="sim_counts", context="CVCL_0023")
        comp.effects(cond, layer="logFC")  # consolidated: read from the arrays, intact
        with pytest.raises(StoreError, match=rf"{rel} does not match") as info:
            comp.effects(cond, layer="CI.L")  # read from the damaged Effects file
    report = repair_store(store_b)
    fault("one bit flipped in an Effects file", "verify and the first read report it; "
          "the cache copy is intact", f"verify: {problems[0]}; read: …{str(info.value)[-40:]}; "
          f"repair: {report.actions[-1][:40]}…")  # fmt: skip
    assert [p.path for p in problems] == [rel]
    assert report.ok and not verify_store(store_b)


def test_a_deleted_shard_raises(store_b, fault):
    (store_b / "zarr" / "separate.zarr" / "logFC" / "c" / "1" / "0").unlink()
    problems = verify_store(store_b)
    with Compendium.open(store_b) as comp, pytest.raises(StoreError, match="shard file missing"):
        comp.effects(mode="separate")
    fault("a shard deleted", "verify reports it, a read raises (no NaN rows)",
          f"verify: {problems[0]}; read: StoreError")  # fmt: skip
    assert [str(p) for p in problems] == ["zarr/separate.zarr/logFC/c/1/0: missing"]


def test_repair_removes_leftovers_and_reports_a_store_without_manifest(store_b, fault):
    (store_b / ".update-0123").mkdir()
    (store_b / ".update-0123" / "catalog").mkdir()
    (store_b / ".manifest.json.abc.part").write_text("")
    report = repair_store(store_b)
    assert report.ok and len(report.actions) == 2, report.actions
    (store_b / "manifest.json").unlink()
    report = repair_store(store_b)
    fault("no manifest and no prepared update", "repair says a rebuild is needed",
          f"needs rebuild: {report.needs_rebuild[0]}"[:90])  # fmt: skip
    assert not report.ok and report.needs_rebuild[0].path == "manifest.json"


UMASK_SCRIPT = """
import os, sys
import pandas as pd
os.umask(0o022)
from perturbridge.compendium import build
from perturbridge.agreement.run import write_agreement_folder
build(sys.argv[1])
write_agreement_folder(sys.argv[2], {"t": pd.DataFrame({"a": [1]})}, {"x": 1})
"""


@pytest.mark.slow
def test_outputs_honour_the_umask(tmp_path, fault, forker):
    inputs = tmp_path / "inputs"
    plan = write_plan(tmp_path, l1000=write_l1000(inputs), counts=write_counts(inputs), extra=EXTRA)
    script = tmp_path / "umask.py"
    script.write_text(textwrap.dedent(UMASK_SCRIPT))
    agreement = tmp_path / "agreement"
    code, stderr = forker.run(script, str(plan), str(agreement))
    assert code == 0, stderr[-2000:]
    wrong = []
    n = 0
    for top in (tmp_path / "store", agreement):
        for p in [top, *top.rglob("*")]:
            mode = stat.S_IMODE(p.lstat().st_mode)
            want = 0o755 if p.is_dir() else 0o644
            n += 1
            if mode != want:
                wrong.append(f"{p.relative_to(tmp_path)} {mode:o}")
    fault("build and agreement under umask 022", "files 0644, folders 0755",
          f"{n - len(wrong)} of {n} right" + (f"; e.g. {wrong[:3]}" if wrong else ""))  # fmt: skip
    assert not wrong, wrong[:20]

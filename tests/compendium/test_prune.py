"""``prune``: cache entries of an earlier plan go, the store's own stay usable."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from perturbridge.compendium import Compendium, PruneReport, build, prune
from perturbridge.compendium._common import StoreError
from perturbridge.compendium._lock import store_lock
from perturbridge.compendium.store import verify_store


def _plan(folder: Path, l1000: Path, *, robust: bool) -> Path:
    path = folder / "plan.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [store]
            path = "store"
            chunk_conditions = 16
            [executor]
            n_jobs = 1
            [[datasets]]
            name = "sim_l1000"
            source = "l1000"
            inputs = {{ level3 = "{l1000}" }}
            de = {{ modes = ["group"], robust = {str(robust).lower()} }}
            """
        )
    )
    return path


def _task_keys(store: Path) -> dict[str, set[str]]:
    """Task keys of the store's build, read from its manifest (kind → keys)."""
    manifest = json.loads((store / "manifest.json").read_text())
    (ds,) = manifest["datasets"]
    return {"ingest": {ds["tasks"]["ingest"]}, "de": set(ds["tasks"]["de"].values())}


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory, inputs: dict[str, Path]) -> dict:
    """A store built with one plan, then with the DE option ``robust`` changed."""
    folder = tmp_path_factory.mktemp("prune")
    build(_plan(folder, inputs["l1000"], robust=True))
    old = _task_keys(folder / "store")
    plan = _plan(folder, inputs["l1000"], robust=False)
    build(plan)
    new = _task_keys(folder / "store")
    return {"folder": folder, "store": folder / "store", "plan": plan, "old": old, "new": new}


def test_prune_removes_the_entries_of_the_earlier_plan_only(rebuilt: dict) -> None:
    store, old, new = rebuilt["store"], rebuilt["old"], rebuilt["new"]
    cache = store / ".cache"
    assert old["ingest"] == new["ingest"] and not (old["de"] & new["de"])  # what changed
    interrupted = cache / "tasks" / "de" / ".abc.tmp-123"
    interrupted.mkdir()
    (interrupted / "half.h5ad").write_bytes(b"x" * 100)
    stale = {f"tasks/de/{k}" for k in old["de"]} | {"tasks/de/.abc.tmp-123"}
    expected_bytes = sum(_dir_bytes(cache / p) for p in stale)

    dry = prune(store)
    assert isinstance(dry, PruneReport) and dry.dry_run
    assert set(dry.entries["path"]) == stale
    assert dry.bytes_freed == expected_bytes > 0
    assert all((cache / p).exists() for p in stale)  # a dry run removes nothing

    done = prune(store, dry_run=False)
    assert not done.dry_run
    assert set(done.entries["path"]) == stale and done.bytes_freed == expected_bytes
    assert not any((cache / p).exists() for p in stale)
    for kind, keys in new.items():  # the store's own build is whole
        assert all((cache / "tasks" / kind / k / "result.json").is_file() for k in keys)
    assert verify_store(store) == []
    with Compendium.open(store) as comp:
        eff = comp.effects(comp.conditions().head(3))
        assert np.isfinite(eff.X).any()
    again = build(rebuilt["plan"])  # nothing to recompute: every task it needs is cached
    assert again.computed == [] and not again.store_written
    assert prune(store).entries.empty


def test_prune_refuses_while_the_store_is_busy(rebuilt: dict) -> None:
    with store_lock(rebuilt["store"], purpose="build"):
        assert isinstance(prune(rebuilt["store"]), PruneReport)  # a dry run needs no lock
        with pytest.raises(StoreError, match="cannot prune"):
            prune(rebuilt["store"], dry_run=False)


def test_prune_needs_a_complete_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a perturbridge compendium store"):
        prune(tmp_path)


def test_import_conversions_are_kept_while_the_store_holds_their_files(rebuilt: dict) -> None:
    store = rebuilt["store"]
    cache = store / ".cache" / "tasks"
    held = cache / "import" / ("a" * 64)  # its Effects file is in the store
    gone = cache / "import" / ("b" * 64)
    for d in (held, gone):
        d.mkdir(parents=True)
    (held / "effects.h5ad").write_bytes(
        (store / "effects" / "sim_l1000" / "group" / "A375_de.h5ad").read_bytes()
    )
    (gone / "effects.h5ad").write_bytes(b"an older conversion")
    (cache / "join").mkdir(exist_ok=True)
    (cache / "join" / "ledger.parquet").write_bytes(b"x" * 10)
    report = prune(store)
    reasons = dict(zip(report.entries["path"], report.entries["reason"], strict=True))
    assert reasons == {
        f"tasks/import/{'b' * 64}": "import conversion not used by the store",
        "tasks/join/ledger.parquet": "work file of a finished store update",
    }
    prune(store, dry_run=False)
    assert held.is_dir() and not gone.exists() and not (cache / "join" / "ledger.parquet").exists()

"""Mistakes a user can make get a message, not a traceback, before any computation;
what the operating system refuses is one line with what to do; leftovers of killed
writes are cleaned (issue: late failures and leftovers)."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from perturbridge.cli import app

runner = CliRunner()


def _effects_file(path: Path) -> Path:
    eff = ad.AnnData(
        obs=pd.DataFrame(index=["c1", "c2"]),
        var=pd.DataFrame(index=["g1", "g2", "g3"]),
        layers={"logFC": np.zeros((2, 3))},
    )
    eff.uns["perturbridge"] = {"kind": "effects"}
    eff.write_h5ad(path)
    return path


def _plan_with_long_name(tmp: Path) -> Path:
    plan = tmp / "plan.toml"
    plan.write_text(
        '[store]\npath = "store"\n\n[[datasets]]\n'
        f'name = "{"d" * 250}"\nsource = "l1000"\n'
        f'inputs = {{ level3 = "{tmp / "none.gct"}" }}\n'
    )
    return plan


def _cases(tmp: Path) -> list[tuple[str, list[str], str]]:
    gct = tmp / "plate.gct"
    gct.write_text("#1.3\n1\t1\t0\t0\nid\tA\ng1\t1.0\n")
    folder = tmp / "a_folder"
    folder.mkdir(exist_ok=True)
    effects = _effects_file(tmp / "effects.h5ad")
    return [
        ("de on a GCT file", ["de", str(gct), "--out", str(tmp / "e.h5ad")], "not an .h5ad"),
        ("de on an Effects file", ["de", str(effects), "--out", str(tmp / "e.h5ad")],
         "holds Effects"),
        ("de --out a folder", ["de", str(effects), "--out", str(folder)], "is a folder"),
        ("pseudobulk --out a folder", ["pseudobulk", str(effects), "--out", str(folder)],
         "is a folder"),
        ("ingest --out a folder",
         ["ingest", "l1000", "--level3", str(gct), "--out", str(folder)], "is a folder"),
        ("de --out a name too long", ["de", str(effects), "--out", str(tmp / ("x" * 300))],
         "too long"),
        ("build: a 250-character dataset name", ["build", str(_plan_with_long_name(tmp))],
         "at most 128 characters"),
        ("agreement on a missing path",
         ["agreement", str(tmp / "nowhere"), "--profile", "published", "--out", str(tmp / "o")],
         "not found"),
    ]  # fmt: skip


def test_bad_invocations_get_a_message_not_a_traceback(tmp_path, fault):
    for name, args, message in _cases(tmp_path):
        res = runner.invoke(app, args)
        text = " ".join(res.output.split())
        ok = (
            res.exit_code != 0
            and "Traceback" not in res.output
            and (res.exception is None or isinstance(res.exception, SystemExit))
            and message in text
        )
        fault(
            name, f"exit != 0, no traceback, says '{message}'", f"exit {res.exit_code}: {text[:90]}"
        )
        assert ok, (name, res.exit_code, res.output, res.exception)


def test_full_disk_is_one_line_with_what_to_do(monkeypatch, capsys, fault):
    import perturbridge.cli._main as cli

    def full_disk() -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/out.h5ad")

    monkeypatch.setattr(cli, "app", full_disk)
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    err = capsys.readouterr().err
    fault("ENOSPC while writing", "exit 2, one line: disk full", f"exit {exit_info.value.code}")
    assert exit_info.value.code == 2
    assert "the disk is full" in err and "/data/out.h5ad" in err and "Traceback" not in err

    def bug() -> None:
        raise OSError(errno.EBADF, "bad file descriptor")

    monkeypatch.setattr(cli, "app", bug)
    with pytest.raises(OSError, match="bad file descriptor"):  # a bug keeps its traceback
        cli.main()


def test_leftovers_of_a_killed_write_are_cleaned(tmp_path, fault):
    from perturbridge.io import atomic_file

    out = tmp_path / "samples.h5ad"
    stale = tmp_path / ".samples.h5ad.k1ll3d.part"
    stale.write_bytes(b"x" * 1000)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".samples.h5ad.w0rk1ng.part"  # a write in progress
    fresh.write_bytes(b"y")
    other = tmp_path / ".other.h5ad.k1ll3d.part"
    other.write_bytes(b"z")
    os.utime(other, (old, old))
    with atomic_file(out) as tmp:
        tmp.write_text("new")
    fault(
        "kill -9 leaves .part files", "removed on the next write", f"stale left: {stale.exists()}"
    )
    assert out.read_text() == "new"
    assert not stale.exists() and fresh.exists() and other.exists()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small store built from a simulated L1000 GCT."""
    from compendium._fixtures import write_l1000, write_plan
    from perturbridge.compendium import build

    folder = tmp_path_factory.mktemp("export_store")
    build(write_plan(folder, l1000=write_l1000(folder), extra="[executor]\nn_jobs = 1\n"))
    return folder / "store"


def test_a_killed_export_leaves_nothing_and_the_rerun_works(tmp_path, store, monkeypatch, fault):
    from perturbridge.compendium import Compendium, export_shards

    out = tmp_path / "shards"
    calls = {"n": 0}
    real = Compendium.effects

    def dies_midway(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # as a killed or interrupted export
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Compendium, "effects", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        export_shards(store, out, rows_per_shard=500, block_conditions=4)
    monkeypatch.undo()
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    # a kill -9 leaves its unfinished folder: the next export removes it
    stale = tmp_path / ".shards.k1ll3d.part"
    (stale / "part-00000.parquet").parent.mkdir()
    (stale / "part-00000.parquet").write_bytes(b"x")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    shards = export_shards(store, out, rows_per_shard=500)
    fault(
        "killed export",
        "no partial export; the rerun succeeds",
        f"left after the kill: {leftovers or 'nothing'}; rerun wrote {len(shards)} shards",
    )
    assert leftovers == []
    assert shards and (out / "_manifest.json").is_file() and not stale.exists()

"""Task keys, input checksums and the content-addressed task cache."""

from __future__ import annotations

import pytest

from perturbridge.compendium import BuildError
from perturbridge.compendium.tasks import TaskCache, de_task, ingest_task


def _ingest(**changes):
    args = {
        "dataset": "a",
        "source": "l1000",
        "kwargs": {"level3": "/x/level3.gct", "dataset": "a"},
        "input_checksums": [("level3", "/x/level3.gct", "abc")],
        "options": {},
        "imports": (),
        "references": None,
        "references_checksum": None,
    }
    args.update(changes)
    return ingest_task(**args)


def test_task_keys_follow_inputs_parameters_and_version(monkeypatch):
    base = _ingest()
    assert base.id == "ingest:a"
    assert _ingest().key == base.key
    assert _ingest(input_checksums=[("level3", "/x/level3.gct", "abd")]).key != base.key
    assert _ingest(options={"chunk_size": 2}).key != base.key
    assert _ingest(references_checksum="r1").key != base.key
    # paths handed to the adapter but not part of the inputs do not change the key
    assert _ingest(kwargs={"level3": "/elsewhere", "dataset": "a"}).key == base.key
    ctx = {"context": "A375", "start": 0, "stop": 10}
    de_args = {
        "dataset": "a",
        "ingest_key": base.key,
        "samples": "/cache/samples.h5ad",
        "context": ctx,
        "mode": "group",
        "value_kind": "log_expression",
        "de_params": {"robust": True},
        "imports": (),
    }
    de = de_task(**de_args)
    assert de.id == "de:a/group/A375"
    assert de_task(**{**de_args, "samples": "/moved/samples.h5ad"}).key == de.key
    assert de_task(**{**de_args, "mode": "separate"}).key != de.key
    assert de_task(**{**de_args, "de_params": {"robust": False}}).key != de.key
    assert de_task(**{**de_args, "ingest_key": "other"}).key != de.key
    import perturbridge.compendium.tasks as tasks_mod

    monkeypatch.setattr(tasks_mod, "__version__", "99.0")
    assert _ingest().key != base.key


def test_checksums_are_remembered_and_follow_changes(tmp_path):
    cache = TaskCache(tmp_path / "cache")
    f = tmp_path / "a.txt"
    f.write_text("one")
    first = cache.checksums([f])[f]
    assert (tmp_path / "cache" / "checksums.json").is_file()
    assert cache.checksums([f])[f] == first
    f.write_text("two!")
    assert cache.checksums([f])[f] != first
    d = tmp_path / "folder"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "x").write_text("x")
    one = cache.checksums([d])[d]
    (d / "y").write_text("y")
    assert cache.checksums([d])[d] != one


def test_interrupted_task_folders_are_cleaned(tmp_path):
    cache = TaskCache(tmp_path)
    junk = tmp_path / "tasks" / "de" / ".abc.tmp-123"
    junk.mkdir(parents=True)
    (junk / "effects.h5ad").write_text("half")
    assert cache.clean_partial() == 1
    assert not junk.exists()


def test_the_cache_lock_is_exclusive(tmp_path):
    cache = TaskCache(tmp_path)
    with (
        cache.lock(),
        pytest.raises(BuildError, match="another build is using the cache"),
        cache.lock(),
    ):
        pass
    with cache.lock():  # released
        pass


def test_task_log_survives_a_cut_line(tmp_path):
    from perturbridge.compendium import read_task_log

    cache = TaskCache(tmp_path)
    cache.log("r1", "build_started")
    with open(tmp_path / "task_log.jsonl", "a") as fh:
        fh.write('{"run": "r1", "ev')  # a line cut by kill -9
    assert [e["event"] for e in read_task_log(tmp_path)] == ["build_started"]
    assert read_task_log(tmp_path / "none") == []

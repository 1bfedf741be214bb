"""``perturbridge prune``: a dry run by default, --apply removes, errors are one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from perturbridge.cli import app
from perturbridge.cli.compendium import _size

runner = CliRunner()


def _run(*args: str | Path) -> tuple[int, str]:
    """The exit code and the output, its lines joined (the console wraps them)."""
    r = runner.invoke(app, ["prune", *map(str, args)])
    return r.exit_code, " ".join(r.output.split())


@pytest.mark.slow  # the demo store (one session fixture shared with the demo tests)
def test_dry_run_then_apply(demo_run) -> None:
    store = demo_run.out / "compendium_demo" / "compendium"
    interrupted = store / ".cache" / "tasks" / "de" / ".abc.tmp-123"
    interrupted.mkdir(parents=True)
    (interrupted / "half.h5ad").write_bytes(b"x" * 1500)

    code, text = _run(store)
    assert code == 0, text
    assert "tasks/de/.abc.tmp-123" in text and "interrupted task" in text
    assert "would free 1.5 KB (1 entry); run with --apply to remove them" in text
    assert interrupted.is_dir()  # a dry run removes nothing

    code, text = _run(store, "--apply")
    assert code == 0, text
    assert "freed 1.5 KB (1 entry removed)" in text
    assert not interrupted.exists()
    assert _run(store) == (0, f"{store}: nothing to prune")


def test_a_folder_that_is_no_store_is_a_one_line_error(tmp_path: Path) -> None:
    code, text = _run(tmp_path / "nothing")
    assert code == 2
    assert text.startswith("error:") and "not a perturbridge compendium store" in text


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (999, "999 B"), (1500, "1.5 KB"), (2_345_678_901, "2.3 GB"), (7e15, "7000.0 TB")],
)
def test_sizes_for_people(n: int, text: str) -> None:
    assert _size(int(n)) == text

"""The options of our agreement profile, declared once for ``agreement`` and ``report``."""

from __future__ import annotations

import pytest
import typer

from perturbridge.cli import app
from perturbridge.cli.agreement import OUR_OPTIONS, OurOptions, with_our_options


def _params(command: str) -> dict[str, object]:
    root = typer.main.get_command(app)
    cmd = root.get_command(typer.Context(root), command)  # type: ignore[attr-defined]
    return {p.name: p.default for p in cmd.params}


@pytest.mark.parametrize("command", ["agreement", "report"])
def test_both_commands_take_every_option_with_its_default(command: str) -> None:
    params = _params(command)
    for name, (_, default) in OUR_OPTIONS.items():
        assert name in params, (command, name)
        assert params[name] == default, (command, name, params[name])
    assert "ours" not in params


def test_values_as_library_keywords_and_the_flags_published_refuses() -> None:
    values = {name: default for name, (_, default) in OUR_OPTIONS.items()}
    assert OurOptions(values).changed() == []
    given = OurOptions(values | {"alpha": 0.01, "n_boot": 10, "metrics": "pearson, spearman"})
    assert given.changed() == ["--alpha", "--metrics"]  # n_boot: the published profile's too
    kw = given.keywords()
    assert kw["identity"] == "parent" and kw["zscore"] == "none"  # enum values
    assert kw["metrics"] == ["pearson", "spearman"] and kw["n_boot"] == 10


def test_a_command_needs_the_ours_parameter() -> None:
    def command(store: str) -> None:  # pragma: no cover - never called
        del store

    with pytest.raises(TypeError, match="command has no parameter 'ours'"):
        with_our_options(command)

"""The command examples of README.md and docs/*.md are held to the command line.

Every ``perturbridge …`` line of a shell code block (after joining ``\\`` continuations) is
checked against the CLI itself (click introspection of ``perturbridge.cli.app``): the
command path exists, every option exists, each option that takes a value has one, the
positional arguments fit and the required ones are there, and ``--input NAME=PATH`` /
``--set NAME=VALUE`` of ``ingest <source>`` name parameters the source declares.
Each command path's ``--help`` runs, and the self-contained examples (``sources list``,
``demo``) run for real.
"""

from __future__ import annotations

import inspect
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGS = {"", "sh", "bash", "console", "shell"}
# where the shell stops passing words to perturbridge
SHELL_OPERATORS = {">", ">>", "|", "&&", "||", ";", "2>", "&"}
# quick examples that need nothing but the package (the demo, slow, has its own test)
SELF_CONTAINED = {("sources", "list")}


@dataclass(frozen=True)
class Example:
    """One ``perturbridge …`` command line of a document."""

    file: str
    line: int
    text: str

    @property
    def words(self) -> list[str]:
        words = shlex.split(self.text, comments=True)
        for i, w in enumerate(words):
            if w in SHELL_OPERATORS:
                words = words[:i]
                break
        # optional parts are written in square brackets: [--inst-info inst_info.tsv]
        return [w.strip("[]") for w in words[1:] if w.strip("[]")]

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.text}"


def _examples() -> list[Example]:
    out = []
    for path in DOCS:
        lines = path.read_text(encoding="utf-8").splitlines()
        in_block, lang, i = False, "", 0
        while i < len(lines):
            line = lines[i]
            fence = re.match(r"^\s*```(\S*)", line)
            if fence:
                in_block, lang = not in_block, fence.group(1)
                i += 1
                continue
            start = i
            if in_block and lang in SHELL_LANGS:
                text = line.strip().removeprefix("$ ")
                while text.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    text = text[:-1].rstrip() + " " + lines[i].strip()
                if text.startswith("perturbridge ") or text == "perturbridge":
                    out.append(Example(path.relative_to(ROOT).as_posix(), start + 1, text))
            i += 1
    return out


EXAMPLES = _examples()


def test_the_examples_are_found() -> None:
    files = {e.file for e in EXAMPLES}
    assert {"README.md", "docs/compendium.md", "docs/sources.md"} <= files, files
    assert len(EXAMPLES) > 30


@pytest.fixture(scope="module")
def root_command() -> Any:
    import typer.main

    from perturbridge.cli import app

    return typer.main.get_command(app)


def _is_group(cmd: Any) -> bool:
    # typer ships its own copy of click: duck typing, not isinstance(click.Group)
    return hasattr(cmd, "commands")


def _command_path(root: Any, words: list[str]) -> tuple[list[str], Any, list[str]]:
    """The command path, the click command it names and the words after it."""
    path: list[str] = []
    cmd = root
    rest = list(words)
    while _is_group(cmd) and rest and not rest[0].startswith("-"):
        name = rest[0]
        # a group may make its commands when they are looked up (ingest <source>)
        ctx = cmd.context_class(cmd, info_name=path[-1] if path else "perturbridge")
        sub = cmd.get_command(ctx, name)
        if sub is None:
            raise LookupError(
                f"'perturbridge {' '.join([*path, name])}' is not a command; "
                f"'perturbridge {' '.join(path)}' has {sorted(cmd.list_commands(ctx))}"
            )
        path.append(name)
        cmd = sub
        rest.pop(0)
    return path, cmd, rest


def _problems(root: Any, example: Example) -> list[str]:
    try:
        path, cmd, rest = _command_path(root, example.words)
    except LookupError as err:
        return [str(err)]
    if _is_group(cmd):
        return [f"'perturbridge {' '.join(path)}' needs a command: {sorted(cmd.commands)}"]
    options: dict[str, Any] = {}
    for p in cmd.params:
        if p.param_type_name == "option":
            for opt in (*p.opts, *p.secondary_opts):
                options[opt] = p
    where = f"perturbridge {' '.join(path)}"
    problems: list[str] = []
    positional: list[str] = []
    given: dict[str, list[str]] = {}
    i = 0
    while i < len(rest):
        word = rest[i]
        i += 1
        if not word.startswith("-") or word == "-":
            positional.append(word)
            continue
        name, eq, value = word.partition("=")
        if name in ("--help", "-h"):
            continue
        opt = options.get(name)
        if opt is None:
            problems.append(f"{where} has no option {name}; options: {sorted(options)}")
            continue
        if opt.is_flag or opt.count:
            given.setdefault(opt.name or name, [])
            continue
        if not eq:
            if i >= len(rest) or rest[i].startswith("--"):
                problems.append(f"{where}: option {name} needs a value")
                continue
            value = rest[i]
            i += 1
        given.setdefault(opt.name or name, []).append(value)
    arguments = [p for p in cmd.params if p.param_type_name == "argument"]
    capacity = sum(float("inf") if a.nargs < 0 else a.nargs for a in arguments)
    if len(positional) > capacity:
        problems.append(f"{where} takes {capacity:g} argument(s), given {positional}")
    n_required = sum(max(a.nargs, 1) for a in arguments if a.required)
    if len(positional) < n_required and "--help" not in rest:
        problems.append(
            f"{where} needs argument(s) {[a.name for a in arguments if a.required]}, "
            f"given {positional}"
        )
    missing = [
        p.opts[0]
        for p in cmd.params
        if p.param_type_name == "option" and p.required and p.name not in given
    ]
    if missing and "--help" not in rest:
        problems.append(f"{where}: required option(s) {missing} not given")
    if path[:1] == ["ingest"] and len(path) == 2 and "--input" in options:
        problems += _reader_problems(path[1], given, where)
    return problems


def _reader_problems(source: str, given: dict[str, list[str]], where: str) -> list[str]:
    from perturbridge.sources import get_source

    adapter = get_source(source)
    declared = [p.name for p in getattr(adapter, "cli_parameters", ())]
    params = declared or list(inspect.signature(adapter.reader()).parameters)
    out = []
    for option in ("inputs", "settings"):
        for item in given.get(option, []):
            name = item.partition("=")[0].strip().replace("-", "_")
            if name not in params:
                out.append(f"{where}: {item!r} names no parameter of the source; {list(params)}")
    return out


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_example_matches_the_command_line(root_command: Any, example: Example) -> None:
    problems = _problems(root_command, example)
    assert not problems, f"{example}\n" + "\n".join(problems)


def _run(args: list[str]) -> Any:
    from typer.testing import CliRunner

    from perturbridge.cli import app

    return CliRunner().invoke(app, args)


def test_help_of_every_documented_command_runs(root_command: Any) -> None:
    paths = set()
    for example in EXAMPLES:
        try:
            paths.add(tuple(_command_path(root_command, example.words)[0]))
        except LookupError:
            continue  # test_example_matches_the_command_line names it
    for path in sorted(paths):
        result = _run([*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output, (path, result.output)


def _self_contained(root_command: Any) -> list[Example]:
    return [e for e in EXAMPLES if tuple(e.words[:2]) in SELF_CONTAINED]


def test_self_contained_examples_run(
    root_command: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ran = 0
    for example in _self_contained(root_command):
        result = _run(example.words)
        assert result.exit_code == 0, f"{example}\n{result.output}"
        ran += 1
    assert ran, "no self-contained example (sources list) in the docs"


@pytest.mark.slow
def test_the_documented_demo_runs(demo_run: Any) -> None:
    """The documented `perturbridge demo` is the session's demo run (tests/conftest.py:
    `perturbridge demo --out DIR`), run once for this test and tests/test_demo.py."""
    demos = [e for e in EXAMPLES if e.words[:1] == ["demo"]]
    assert demos, "no `perturbridge demo` example in the docs"
    for example in demos:
        words = example.words
        assert words[:2] == ["demo", "--out"] and len(words) == 3, example
    assert demo_run.exit_code == 0, f"{demos[0]}\n{demo_run.output}"


# ---- the Python names the documents mention exist

DOTTED = re.compile(r"(?<![\w./-])perturbridge(?:\.[A-Za-z_]\w*)+")


def _python_imports() -> list[tuple[str, str, list[str]]]:
    """``(where, module, names)`` of every ``from perturbridge… import …`` and
    ``import perturbridge…`` in the Python code blocks of the documents."""
    import ast

    out = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for block in re.finditer(r"^```python\n(.*?)^```", text, flags=re.M | re.S):
            line = text[: block.start()].count("\n") + 2
            code = "\n".join(
                ln for ln in block.group(1).splitlines() if not ln.lstrip().startswith(">>>")
            )
            try:
                tree = ast.parse(code)
            except SyntaxError:
                continue  # a fragment, not a program; its names are checked as dotted names
            for node in ast.walk(tree):
                where = f"{path.relative_to(ROOT).as_posix()}:{line + node_line(node) - 1}"
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "perturbridge"
                ):
                    out.append((where, node.module or "", [a.name for a in node.names]))
                elif isinstance(node, ast.Import):
                    for a in node.names:
                        if a.name.startswith("perturbridge"):
                            out.append((where, a.name, []))
    return out


def node_line(node: Any) -> int:
    return int(getattr(node, "lineno", 1))


def _dotted_names() -> list[tuple[str, str]]:
    out = []
    for path in DOCS:
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for m in DOTTED.finditer(line):
                out.append((f"{path.relative_to(ROOT).as_posix()}:{i}", m.group(0)))
    return out


def _resolve(dotted: str) -> str | None:
    """``None`` when ``dotted`` is a module or an attribute of one, else what is missing."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        name = ".".join(parts[:cut])
        try:
            obj: Any = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name is not None and not name.startswith(err.name):
                return f"importing {name} fails: {err}"
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return f"{'.'.join(parts[:cut])} has no {attr!r}"
            obj = getattr(obj, attr)
        return None
    return "no such module"


def test_documented_python_imports_exist() -> None:
    wrong = []
    for where, module, names in _python_imports():
        for dotted in [module, *(f"{module}.{n}" for n in names)]:
            problem = _resolve(dotted)
            if problem:
                wrong.append(f"{where}: {dotted}: {problem}")
    assert not wrong, "imports in the documents that fail:\n" + "\n".join(wrong)


def test_documented_dotted_names_exist() -> None:
    wrong = []
    for where, dotted in _dotted_names():
        problem = _resolve(dotted)
        if problem:
            wrong.append(f"{where}: {dotted}: {problem}")
    assert not wrong, "perturbridge.… names in the documents that do not exist:\n" + "\n".join(
        wrong
    )


# ---- the files the documents name exist

PATH_DOCS = [*DOCS, ROOT / "BENCHMARKS.md"]
REPO_PATH = re.compile(r"(?<![\w/.-])((?:src|tests|benchmarks|scripts|examples)/[\w./-]*\w)")
PACKAGE_PARTS = sorted(
    p.name for p in (ROOT / "src" / "perturbridge").iterdir() if (p / "__init__.py").is_file()
)
PACKAGE_PATH = re.compile(
    r"(?<![\w/.-])((?:" + "|".join(map(re.escape, PACKAGE_PARTS)) + r")/[\w/]*\w\.py)\b"
)


def _named_paths() -> list[tuple[str, str, Path]]:
    out = []
    for path in PATH_DOCS:
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            where = f"{path.relative_to(ROOT).as_posix()}:{i}"
            for m in REPO_PATH.finditer(line):
                out.append((where, m.group(1), ROOT / m.group(1)))
            for m in PACKAGE_PATH.finditer(line):
                out.append((where, m.group(1), ROOT / "src" / "perturbridge" / m.group(1)))
    return out


def test_documented_paths_exist() -> None:
    wrong = [f"{where}: {text}" for where, text, path in _named_paths() if not path.exists()]
    assert not wrong, "files named in the documents that do not exist:\n" + "\n".join(wrong)

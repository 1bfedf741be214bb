"""The shape of the house, checked on the source text (AST only; the package is not imported).

The rules and the layers are written down in ``docs/architecture.md``; the layers are read
from its ```` ```layers ```` block, so the page and this test cannot drift apart.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "perturbridge"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
TOP = "perturbridge"
OUTSIDE = "outside"
MAX_PARAMETERS = 8
MAX_LINES = 700
# parts whose functions may import the package lazily and may take many parameters
CLI = "cli"


@dataclass(frozen=True)
class Import:
    """One import of a ``perturbridge`` module by a module of the package."""

    target: str
    line: int
    kind: str  # "module" (runs at import), "type" (if TYPE_CHECKING), "function"
    function: str | None  # the enclosing function's name, for kind "function"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _known(name: str) -> str:
    """The nearest module of the package that ``name`` (a dotted path) lives in."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
        return [_known(n) for n in names if n == TOP or n.startswith(TOP + ".")]
    if node.level:
        base = module if _is_package(module) else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        source = f"{base}.{node.module}" if node.module else base
    else:
        source = node.module or ""
    if source != TOP and not source.startswith(TOP + "."):
        return []
    out: list[str] = []
    for alias in node.names:
        sub = f"{source}.{alias.name}"
        out.append(sub if sub in MODULES else _known(source))
    return list(dict.fromkeys(out))  # one arrow per imported module


def _imports(module: str) -> list[Import]:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: list[Import] = []

    def visit(node: ast.AST, kind: str, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.extend(
                    Import(t, child.lineno, kind, function) for t in _targets(module, child)
                )
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                name = getattr(child, "name", "<lambda>")
                visit(child, "function", name if function is None else function)
            elif isinstance(child, ast.If) and kind == "module" and _is_type_checking(child.test):
                for stmt in child.body:
                    visit(ast.Module(body=[stmt], type_ignores=[]), "type", function)
                for stmt in child.orelse:
                    visit(ast.Module(body=[stmt], type_ignores=[]), kind, function)
            else:
                visit(child, kind, function)

    visit(tree, "module", None)
    return found


IMPORTS = {m: _imports(m) for m in MODULES}


def _runtime_edges(module: str) -> set[str]:
    """Modules that importing ``module`` imports first: its module-level imports and, for
    each, the packages above it that are not already above ``module``."""
    edges: set[str] = set()
    for imp in IMPORTS[module]:
        if imp.kind != "module":
            continue
        parts = imp.target.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name != module and not module.startswith(name + "."):
                edges.add(name)
    return edges


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else TOP


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return out


def _layers() -> dict[str, tuple[int, str]]:
    """Part → (rank, layer name), from the ``layers`` block of docs/architecture.md."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    block = re.search(r"^```layers\n(.*?)^```", text, flags=re.M | re.S)
    assert block, f"{ARCHITECTURE}: no ```layers block"
    out: dict[str, tuple[int, str]] = {}
    for rank, line in enumerate(block.group(1).strip().splitlines()):
        layer, _, parts = line.partition(":")
        for part in parts.split():
            assert part not in out, f"{ARCHITECTURE}: part {part!r} in two layers"
            out[part] = (rank, layer.strip())
    assert OUTSIDE in {layer for _, layer in out.values()}, "no 'outside' layer"
    return out


def _where(module: str, line: int | None = None) -> str:
    rel = MODULES[module].relative_to(ROOT)
    return f"{rel}:{line}" if line else str(rel)


def _function_nodes(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def test_the_package_is_found() -> None:
    assert f"{TOP}.de" in MODULES and f"{TOP}.sources" in MODULES


def test_no_import_cycles_between_modules() -> None:
    graph = {m: _runtime_edges(m) for m in MODULES}
    cycles = _cycles(graph)
    assert not cycles, "import cycles between modules (module-level imports):\n" + "\n".join(
        " ↔ ".join(c) for c in cycles
    )


def test_no_import_cycles_between_parts() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for module in MODULES:
        graph[_part(module)] |= {_part(t) for t in _runtime_edges(module)} - {_part(module)}
    cycles = _cycles(graph)
    assert not cycles, "import cycles between parts of the package:\n" + "\n".join(
        " ↔ ".join(c) for c in cycles
    )


def test_every_part_has_a_layer() -> None:
    layers = _layers()
    missing = sorted({_part(m) for m in MODULES} - set(layers))
    assert not missing, (
        f"parts of src/perturbridge without a layer in {ARCHITECTURE.name}: {missing} "
        "(move them into a part that has one, or place them in the ```layers block)"
    )


def _is_demo_command(module: str, imp: Import) -> bool:
    if _part(module) != CLI:
        return False
    return "demo" in module.rpartition(".")[2] or "demo" in (imp.function or "")


def test_no_upward_imports() -> None:
    layers = _layers()
    wrong = []
    for module, imports in IMPORTS.items():
        if _part(module) not in layers:
            continue  # test_every_part_has_a_layer names it
        rank, layer = layers[_part(module)]
        for imp in imports:
            if _part(imp.target) not in layers:
                continue
            t_rank, t_layer = layers[_part(imp.target)]
            if layer == OUTSIDE or _part(imp.target) == _part(module):
                continue
            ok = _is_demo_command(module, imp) if t_layer == OUTSIDE else t_rank <= rank
            if not ok:
                wrong.append(
                    f"{_where(module, imp.line)}: {module} ({layer}) imports {imp.target} "
                    f"({t_layer}) [{imp.kind}]"
                )
    assert not wrong, "imports against the layers of docs/architecture.md:\n" + "\n".join(wrong)


def test_no_function_level_imports_of_the_package() -> None:
    wrong = [
        f"{_where(module, imp.line)}: {imp.target} imported inside {imp.function}()"
        for module, imports in IMPORTS.items()
        if _part(module) != CLI
        for imp in imports
        if imp.kind == "function"
    ]
    assert not wrong, (
        "function-level imports of perturbridge modules (imports of the package go at "
        "module top; only CLI command bodies import lazily):\n" + "\n".join(wrong)
    )


def _n_parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = node.args
    names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    if names and names[0] in ("self", "cls"):
        names = names[1:]
    return len(names) + (a.vararg is not None) + (a.kwarg is not None)


def test_no_library_function_takes_more_than_8_parameters() -> None:
    wrong = []
    for module, path in MODULES.items():
        if _part(module) == CLI:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _function_nodes(tree):
            n = _n_parameters(node)
            if n > MAX_PARAMETERS:
                wrong.append(f"{_where(module, node.lineno)}: {node.name}() takes {n}")
    assert not wrong, (
        f"functions with more than {MAX_PARAMETERS} parameters (group them into a frozen "
        "dataclass of options):\n" + "\n".join(wrong)
    )


def test_long_modules_say_why() -> None:
    wrong = []
    for module, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        n = len(text.splitlines())
        if n <= MAX_LINES:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if "long because" not in doc.lower():
            wrong.append(f"{_where(module)}: {n} lines")
    assert not wrong, (
        f"modules over {MAX_LINES} lines whose docstring does not say why "
        '("Long because …"); split them or say why:\n' + "\n".join(wrong)
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from .errors import X", ["perturbridge.errors"]),
        ("from . import ledger", ["perturbridge.ledger"]),
        ("import perturbridge.de.limma", ["perturbridge.de.limma"]),
        ("from perturbridge.de.limma import limma_trend", ["perturbridge.de.limma"]),
        ("import numpy", []),
    ],
)
def test_import_targets_are_resolved(source: str, expected: list[str]) -> None:
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.Import | ast.ImportFrom)
    assert _targets("perturbridge.units", node) == expected


def test_cycles_are_found() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []

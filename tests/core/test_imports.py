"""The package's modules import each other without a circle (issue 20 §5: data/dataset.py and
data/toy.py did): every import at a module's top level, TYPE_CHECKING blocks included; and (issue
32) every import anywhere in a module, inside functions too (models/io.py imported models.peers
inside a function, whose importers import models/io.py). No module is over 500 lines."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "mdlcodec"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(tree: ast.Module, modules: set[str]) -> set[str]:
    out, stack = set(), list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If):  # if TYPE_CHECKING: ...
            stack.extend(node.body + node.orelse)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                    for a in node.names} & modules
    return out


def _every_import(tree: ast.Module, modules: set[str]) -> set[str]:
    """The package's modules imported anywhere in the module: at its top level, in functions, in classes."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                    for a in node.names} & modules
    return out


def _assert_no_circle(imports) -> None:
    files = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: imports(ast.parse(p.read_text()), set(files)) - {m} for m, p in files.items()}
    for m in graph:  # a package's __init__ importing its own submodules is not a circle through them
        graph[m] = {n for n in graph[m] if not m.startswith(n + ".")}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            assert state.get(n) != 1, "import circle: " + " -> ".join(path[path.index(n):] + [n]) if n in path else n
            if n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_no_module_imports_itself_through_others():
    _assert_no_circle(_top_level_imports)


def test_no_import_circle_through_imports_inside_functions():
    _assert_no_circle(_every_import)


def test_the_circle_check_sees_an_import_inside_a_function():
    """_every_import finds what _top_level_imports leaves out, so the test above can fail."""
    tree = ast.parse("def f():\n    from mdlcodec.models.peers import detect\n")
    modules = {"mdlcodec.models.peers", "mdlcodec.models.io"}
    assert _every_import(tree, modules) == {"mdlcodec.models.peers"}
    assert _top_level_imports(tree, modules) == set()


def test_no_module_is_over_500_lines():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"modules over 500 lines: {long}"

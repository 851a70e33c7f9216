"""The package's modules import each other without a circle (issue 20 §5: data/dataset.py and
data/toy.py did): every import at a module's top level, TYPE_CHECKING blocks included."""

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


def test_no_module_imports_itself_through_others():
    files = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: _top_level_imports(ast.parse(p.read_text()), set(files)) - {m} for m, p in files.items()}
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

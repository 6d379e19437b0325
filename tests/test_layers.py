"""The layers are checked, not hoped for: no import cycles, and no route blocks the event loop.

``lint-imports`` (pyproject ``[tool.importlinter]``) keeps the forbidden arrows
between packages; this module reads the source itself, so it also sees the
imports made inside functions, which a cycle through a lazy import still is.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROUTES = SRC / "aimass" / "api" / "routes"


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "aimass").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every module of ours that ``name`` imports, anywhere in its body."""
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                stem = base[: len(base) - node.level + 1]
                module = ".".join(stem + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for node in graph:
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return found


def _module_graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(name, path, known) for name, path in known.items()}


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_module_graph_has_no_cycles() -> None:
    assert _cycles(_module_graph()) == []


def test_top_level_packages_have_no_cycles() -> None:
    packages: dict[str, set[str]] = {}
    for module, targets in _module_graph().items():
        edges = packages.setdefault(_package(module), set())
        edges.update(_package(t) for t in targets if _package(t) != _package(module))
    for targets in list(packages.values()):
        for target in targets:
            packages.setdefault(target, set())
    # The root package's lazy ``Client`` is the public surface, not a dependency.
    packages["aimass"] = set()
    assert _cycles(packages) == []


def test_the_cycle_check_sees_lazy_imports(tmp_path: Path) -> None:
    """A cycle closed only by an import inside a function is found."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from pkg.a import x\n")
    known = {"pkg": pkg / "__init__.py", "pkg.a": pkg / "a.py", "pkg.b": pkg / "b.py"}
    graph = {name: _imports(name, path, known) for name, path in known.items()}
    assert _cycles(graph) == [["pkg.a", "pkg.b"]]


# -- the event loop ---------------------------------------------------------------------

#: Methods that block on the database or the artifact store.
BLOCKING = {"session", "put_file"}


def _is_blocking(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in BLOCKING
    )


def _direct_calls(function: ast.AsyncFunctionDef) -> list[ast.Call]:
    """Calls in the function's own body, not inside the functions it defines."""
    calls: list[ast.Call] = []
    todo: list[ast.AST] = list(function.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.Call):
            calls.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return calls


def _blocking_names(tree: ast.Module) -> set[str]:
    """The module's plain functions that open a session or write to the artifact store."""
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and any(map(_is_blocking, ast.walk(node)))
    }


def _offenders(source: str) -> list[str]:
    tree = ast.parse(source)
    blocking = _blocking_names(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.AsyncFunctionDef):
            continue
        for call in _direct_calls(node):
            func = call.func
            if _is_blocking(call) and isinstance(func, ast.Attribute):
                found.append(f"{node.name} calls .{func.attr}() on the event loop")
            elif isinstance(func, ast.Name) and func.id in blocking:
                found.append(f"{node.name} calls {func.id}() on the event loop")
    return found


def test_async_routes_leave_blocking_work_to_threads() -> None:
    """No ``async def`` in api/routes opens a session or calls a helper that does.

    Such work goes through ``run_in_threadpool`` (or the route is a plain ``def``,
    which FastAPI runs in its threadpool), so the event loop that also serves
    ``/v2`` inference never waits on the database.
    """
    offenders = {
        path.name: found
        for path in sorted(ROUTES.glob("*.py"))
        if (found := _offenders(path.read_text()))
    }
    assert offenders == {}


def test_the_route_check_finds_a_blocking_call() -> None:
    source = (
        "def _own(ctx):\n"
        "    with ctx.db.session() as s:\n"
        "        pass\n"
        "async def bad(ctx):\n"
        "    _own(ctx)\n"
        "    with ctx.db.session() as s:\n"
        "        pass\n"
        "async def good(ctx):\n"
        "    await run_in_threadpool(_own, ctx)\n"
        "    def inner():\n"
        "        with ctx.db.session() as s:\n"
        "            pass\n"
        "    await run_in_threadpool(inner)\n"
    )
    assert sorted(_offenders(source)) == [
        "bad calls .session() on the event loop",
        "bad calls _own() on the event loop",
    ]

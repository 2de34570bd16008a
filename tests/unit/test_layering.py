"""The package layering, checked: what each package may import, no Faust below the stream, no import cycles.

The contract (also in the README's package map and in each package's docstring):

- ``detectors``  imports nothing of the project (pure computation);
- ``sinks``      imports nothing of the project outside ``sinks``;
- ``alerts``     may import ``detectors`` and ``sinks``;
- ``windows``    (the model stage) may import ``detectors`` and ``sinks``;
- ``dashboards`` may import ``detectors`` and ``sinks``;
- ``streams``    (the Faust application) may import all of the above and the shell's settings;
- the shell (``watchkeeper.*`` modules: CLI, settings, demo, launchers) may import everything;
- only ``streams`` and the shell import Faust;
- no cycle among module-level imports.

import-linter's graph builder (grimp) only walks the folder of the root package, and the
subpackages here live in folders beside it (mapped by pyproject's ``package-dir``), so
the same contract is checked from the source with :mod:`ast`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHELL = "shell"
# Folder -> package name under the ``watchkeeper`` namespace.
FOLDERS = {
    "watchkeeper": SHELL,
    "streams": "streams",
    "windows": "windows",
    "detectors": "detectors",
    "alerts": "alerts",
    "sinks": "sinks",
    "dashboards": "dashboards",
}
ALLOWED: dict[str, set[str]] = {
    "detectors": set(),
    "sinks": set(),
    "alerts": {"detectors", "sinks"},
    "windows": {"detectors", "sinks"},
    "dashboards": {"detectors", "sinks"},
    "streams": {"detectors", "sinks", "alerts", "windows", SHELL},
    SHELL: {"detectors", "sinks", "alerts", "windows", "dashboards", "streams"},
}
# Of the shell, the lower packages' neighbours may use only these (streams: the settings it runs with).
SHELL_MODULES_FOR = {"streams": {"watchkeeper.settings"}}
FAUST = ("faust", "mode", "aiokafka")
WITH_FAUST = {"streams", SHELL}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. watchkeeper.windows.closer
    target: str  # the imported module, e.g. watchkeeper.detectors
    line: int
    top_level: bool  # executed at import time (not in a function, not under TYPE_CHECKING)


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] != "watchkeeper":
        parts.insert(0, "watchkeeper")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "watchkeeper":
        return None
    if len(parts) > 1 and parts[1] in FOLDERS and parts[1] != "watchkeeper":
        return FOLDERS[parts[1]]
    return SHELL


def source_files() -> Iterator[Path]:
    for folder in FOLDERS:
        yield from sorted((ROOT / folder).rglob("*.py"))


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, name: str | None = None) -> list[Import]:
    """The imports of one source file; ``name`` is its module name (default: from its path)."""
    name = name or module_name(path)
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(name, a.name, child.lineno, top) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                found.append(Import(name, target, child.lineno, top))
                # ``from pkg import module`` imports the module too.
                found.extend(Import(name, f"{target}.{a.name}", child.lineno, top) for a in child.names)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child):
                visit(child, False)
            else:
                visit(child, top)

    visit(ast.parse(path.read_text(), str(path)), True)
    return found


ALL = [imp for path in source_files() for imp in imports_of(path)]
MODULES = {module_name(p) for p in source_files()}


def _project(target: str) -> str | None:
    """The project module an import names (a ``from pkg import name`` of a non-module resolves to pkg)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def violations(imports: list[Import], package: str) -> list[str]:
    """The imports of ``package``'s modules that its layer forbids."""
    broken = []
    for imp in imports:
        if package_of(imp.module) != package:
            continue
        if package not in WITH_FAUST and imp.target.split(".")[0] in FAUST:
            broken.append(f"{imp.module}:{imp.line} imports {imp.target} (Faust)")
        target = _project(imp.target)
        if target is None or package_of(target) == package:
            continue
        other = package_of(target)
        allowed = other in ALLOWED[package]
        if other == SHELL and package in SHELL_MODULES_FOR:
            allowed = target in SHELL_MODULES_FOR[package]
        if not allowed:
            broken.append(f"{imp.module}:{imp.line} imports {target}")
    return broken


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_what_it_may(package: str) -> None:
    assert violations(ALL, package) == []


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for imp in ALL:
        target = _project(imp.target)
        if imp.top_level and target and target != imp.module:
            graph[imp.module].add(target)
    # A package imports its own submodules from __init__ by design; a cycle through a
    # package's __init__ and its own submodule is how re-exports work, not a layering fault.
    cycles = []
    for scc in _strongly_connected(graph):
        if len(scc) > 1 and not _only_reexports(scc):
            cycles.append(sorted(scc))
    assert cycles == []


def _only_reexports(scc: set[str]) -> bool:
    """True when every module of the cycle is one package's ``__init__`` or a module inside it."""
    return any(all(m == p or m.startswith(p + ".") for m in scc) for p in scc)


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm (iterative enough for a few hundred modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.add(w)
                if w == v:
                    break
            out.append(scc)

    for v in graph:
        if v not in index:
            strong(v)
    return out


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """A forbidden import is caught (guards against a checker that sees nothing)."""
    bad = tmp_path / "bad.py"
    bad.write_text("import faust\n\n\ndef f():\n    from ..streams import app\n")
    found = violations(imports_of(bad, "watchkeeper.detectors.bad"), "detectors")
    assert found == [
        "watchkeeper.detectors.bad:1 imports faust (Faust)",
        "watchkeeper.detectors.bad:5 imports watchkeeper.streams",
        "watchkeeper.detectors.bad:5 imports watchkeeper.streams.app",
    ]


def _module_level_calls(path: Path) -> list[str]:
    """Names of the functions a module calls at import (outside functions, classes' methods and TYPE_CHECKING)."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                for decorator in child.decorator_list:  # run at import: ``@app.agent(...)``
                    visit(ast.Expression(decorator))
                if isinstance(child, ast.ClassDef):  # its body runs at import, its methods' bodies do not
                    methods = (ast.FunctionDef, ast.AsyncFunctionDef)
                    visit(ast.Module([b for b in child.body if not isinstance(b, methods)], []))
                continue
            if isinstance(child, ast.Lambda):
                continue
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            if isinstance(child, ast.Call):
                f = child.func
                found.append(f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else "")
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


def test_the_worker_reads_its_settings_in_main_and_builds_nothing_at_import() -> None:
    """No module of the stream reads the settings, builds a Faust app or declares agents, timers or topics
    when imported: the assembly (streams/assembly.py) does, from the settings ``main`` read."""
    building = {"load_settings", "Settings", "App", "build_app", "assemble", "agent", "timer", "topic", "connect"}
    found = {
        f"{module_name(path)}: {name}"
        for path in sorted((ROOT / "streams").rglob("*.py"))
        for name in _module_level_calls(path)
        if name in building
    }
    assert found == set()

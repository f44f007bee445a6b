"""The core needs no Flask, and no ispflow module imports one that imports it back."""
import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import ispflow

PACKAGE = Path(ispflow.__file__).parent
# What runs without a web app: the collector, decoders, search, retention, router drivers and jobs.
CORE_PACKAGES = ["ispflow.collector", "ispflow.search", "ispflow.retention", "ispflow.routers", "ispflow.analytics",
                 "ispflow.security", "ispflow.alerts"]
CORE_MODULES = ["ispflow", "ispflow.config", "ispflow.database", "ispflow.jobs", "ispflow.worker", "ispflow.status",
                "ispflow.audit", "ispflow.module_settings", "ispflow.subscribers", "ispflow.signals"]
DRIVER_REGISTRY = "ispflow.routers.base"
KNOWN_CYCLES = [
    # upgrade() grants the app role its privileges late; the grants use the database helpers. To untie.
    {"ispflow.database", "ispflow.database_privileges"},
]


def is_driver_registry(cycle: set[str]) -> bool:
    """Drivers register themselves on import; the registry imports them late to fill itself."""
    return DRIVER_REGISTRY in cycle and all(name.startswith("ispflow.routers.") for name in cycle)


def modules_of(package: str) -> list[str]:
    path = PACKAGE.parent / package.replace(".", "/")
    return [package] + [f"{package}.{m.name}" for m in pkgutil.iter_modules([str(path)])]


def flask_modules_after_importing(modules: list[str]) -> list[str]:
    code = ("import importlib, sys\n"
            "for name in sys.argv[1:]: importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'flask_sqlalchemy')))")
    result = subprocess.run([sys.executable, "-c", code, *modules], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return eval(result.stdout)  # a printed list of names


@pytest.mark.parametrize("package", CORE_PACKAGES)
def test_a_core_package_imports_without_flask(package):
    assert flask_modules_after_importing(modules_of(package)) == []


def test_the_package_jobs_and_worker_import_without_flask():
    assert flask_modules_after_importing(CORE_MODULES) == []


def test_hosts_still_import_the_extension_from_the_package():
    from ispflow import ISPFlow
    from ispflow.extension import ISPFlow as defined

    assert ISPFlow is defined


def _imports(path: Path, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """ispflow modules ``module`` imports, at any depth, leaving out typing-only imports."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and ast.unparse(node.test) == "TYPE_CHECKING" for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = module.split(".") if is_package else module.split(".")[:-1]
            prefix = ".".join(base[:len(base) - node.level + 1]) if node.level else ""
            target = ".".join(p for p in (prefix, node.module) if p)
            names = [f"{target}.{alias.name}" for alias in node.names]
            found.update(names)
            if not all(name in modules for name in names):  # names defined in ``target`` itself
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        files[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    graph = {name: _imports(path, name, is_package, set(files)) & set(files) - {name}
             for name, (path, is_package) in files.items()}
    graph["ispflow"].discard("ispflow.extension")  # imported only when a host asks for ISPFlow
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(group)

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_one_that_imports_it_back():
    assert [c for c in cycles(import_graph()) if c not in KNOWN_CYCLES and not is_driver_registry(c)] == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]

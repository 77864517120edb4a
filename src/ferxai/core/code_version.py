"""Which ferxai source a command runs, and a hash of it: the code version that decides reruns.

The workflow gives each rule the hash of every ferxai module its command imports, transitively
(imports inside functions, registries that name modules as strings, parent packages and the
resource files a module names), so editing a module reruns exactly the rules whose commands use
it. The graph comes from the sources (``ast``), nothing is imported, so it is cheap enough to run
while Snakemake parses the workflow.
"""

from __future__ import annotations

import ast
import hashlib
import re
from functools import cache
from pathlib import Path

PACKAGE = "ferxai"
# this module lives in ferxai/core/; the package is one folder up
PACKAGE_DIR = Path(__file__).resolve().parents[1]
RESOURCES = PACKAGE_DIR / "resources"
# Every ferxai command runs through the CLI, which imports its module from a table by name. Spelled
# in two parts: a whole module name in a string constant would read as an import of it, here.
CLI_MODULE = PACKAGE + ".cli"
# The Python API (``import ferxai``) names its building blocks as strings and imports one only when
# it is used; no command uses it, so those names are not imports of the package.
LAZY_NAMING_MODULES = frozenset({CLI_MODULE, PACKAGE})
_MODULE_NAME = re.compile(rf"^{PACKAGE}(\.[A-Za-z_]\w*)+$")


def module_path(module: str) -> Path | None:
    """Source file of a ferxai module (``__init__.py`` for a package), None if there is none."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def all_modules() -> list[str]:
    """Every module of the package, dotted, sorted."""
    names = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join((PACKAGE, *parts)))
    return names


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """Absolute name of a (possibly relative) ``from`` import target."""
    if level == 0:
        return name or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


@cache
def direct_imports(module: str) -> frozenset[str]:
    """ferxai modules that ``module`` imports anywhere in its source (functions included) or names
    in a string constant (registries imported by name), excluding itself."""
    path = module_path(module)
    if path is None:
        raise ValueError(f"{module}: no such ferxai module")
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node.level, node.module)
            for alias in node.names:  # `from ferxai.core import provenance` imports a module
                sub = f"{target}.{alias.name}"
                found.add(sub if module_path(sub) else target)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # a package's own name in its modules is a logger name, not an import
            if module not in LAZY_NAMING_MODULES and _MODULE_NAME.match(node.value):
                if not module.startswith(node.value + "."):
                    found.add(node.value)
    return frozenset(m for m in found if m != module and module_path(m) is not None)


def import_graph() -> dict[str, frozenset[str]]:
    """module → the ferxai modules it imports, for every module of the package."""
    return {module: direct_imports(module) for module in all_modules()}


def find_cycle(graph: dict[str, frozenset[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as [a, b, ..., a], or None when imports run one way."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == 1:
                return path[path.index(child) :] + [child]
            if child not in state and (cycle := visit(child)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def closure(*modules: str) -> list[str]:
    """``modules`` and every ferxai module they import, transitively, with the packages whose
    ``__init__`` Python runs to import them; sorted."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        if module_path(module) is None:
            raise ValueError(
                f"{module}: no such ferxai module; is ferxai installed (pip install -e .)?"
            )
        seen.add(module)
        todo += [m for m in (*direct_imports(module), *_parents(module)) if m not in seen]
    return sorted(seen)


def resource_files(modules: list[str]) -> list[Path]:
    """Files of ``ferxai/resources`` whose name a module of ``modules`` spells out."""
    if not RESOURCES.is_dir():
        return []
    sources = "".join(module_path(m).read_text(encoding="utf-8") for m in modules)
    return sorted(p for p in RESOURCES.iterdir() if p.is_file() and p.name in sources)


def code_version(*modules: str) -> str:
    """Hash of the source of ``modules`` with everything they import (see :func:`closure`)."""
    names = closure(*modules)
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0" + module_path(name).read_bytes())
    for path in resource_files(names):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]

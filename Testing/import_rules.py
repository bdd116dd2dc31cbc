"""The extension's layering rules, checked on the source text: every import statement of every module,
including those inside functions, resolved to a module of the tree or to an outside package.

Tiers: a Lib's or the core's root is the engine; ``<package>.research`` is research tooling (training,
data, evaluation); ``<package>.slicer`` and the Slicer module files are the Slicer side.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGES = {"CTSynthesisCore": "CTSynthesisCore", "MRItoCTLib": "MRItoCT/MRItoCTLib",
            "SliceInterpLib": "SliceInterp/SliceInterpLib"}
MODULE_FILES = {"MRItoCT": "MRItoCT/MRItoCT.py", "SliceInterp": "SliceInterp/SliceInterp.py"}
SLICER_PACKAGES = {"slicer", "qt", "ctk", "vtk", "PythonQt", "SampleData", "PySide6", "mrml"}
LIBS = ("MRItoCTLib", "SliceInterpLib")


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str  # a module of the tree, or the top-level name of an outside package
    line: int


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for the three packages and the two Slicer module files."""
    modules = {name: root / path for name, path in MODULE_FILES.items() if (root / path).is_file()}
    for package, folder in PACKAGES.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = [package, *path.relative_to(root / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_package(name: str, modules: dict[str, Path]) -> bool:
    return name in modules and modules[name].name == "__init__.py"


def _resolve(importer: str, node: ast.ImportFrom, modules: dict[str, Path]) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        package = importer if _is_package(importer, modules) else importer.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
    return submodules or [base]


def imports_of(root: Path) -> list[Import]:
    """Every import of every module (outside packages by their top-level name)."""
    modules = module_files(root)
    found = []
    for importer, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = _resolve(importer, node, modules)
            else:
                continue
            for name in names:
                inside = name if name in modules else None
                found.append(Import(importer, inside or name.split(".")[0], node.lineno))
    return found


def tier(module: str) -> str:
    """engine, research, slicer (Slicer side) or outside."""
    parts = module.split(".")
    if parts[0] in MODULE_FILES:
        return "slicer"
    if parts[0] not in PACKAGES:
        return "outside"
    return parts[1] if len(parts) > 1 and parts[1] in ("research", "slicer") else "engine"


def rule_violations(imports: list[Import]) -> list[str]:
    """The imports that break a layering rule, one sentence each."""
    problems = []
    for item in imports:
        source, target = tier(item.importer), tier(item.imported)
        where = f"{item.importer} (line {item.line}) imports {item.imported}"
        top_source, top_target = item.importer.split(".")[0], item.imported.split(".")[0]
        if source != "slicer" and (target == "slicer" or item.imported in SLICER_PACKAGES):
            problems.append(f"{where}: only the Slicer side may import Slicer, Qt, VTK or Slicer-side code")
        if {top_source, top_target} == set(LIBS):
            problems.append(f"{where}: MRItoCTLib and SliceInterpLib never import each other")
        if top_source == "CTSynthesisCore" and top_target in (*LIBS, *MODULE_FILES):
            problems.append(f"{where}: the core never imports a module's code")
        if source == "engine" and target == "research" and not item.importer.endswith(".cli"):
            problems.append(f"{where}: the engine never needs research code (only a command line reaches it)")
    return problems


def import_cycles(imports: list[Import]) -> list[list[str]]:
    """Groups of modules of the tree that import each other, directly or through others (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for item in imports:
        if tier(item.imported) != "outside" and item.imported != item.importer:
            graph.setdefault(item.importer, set()).add(item.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for following in sorted(graph.get(node, ())):
            if following not in index:
                visit(following)
                low[node] = min(low[node], low[following])
            elif following in stack:
                low[node] = min(low[node], index[following])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles

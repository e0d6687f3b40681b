"""The shape of the package: the core never imports the built-in world, and no module imports
itself back through another (function-level imports included)."""
from __future__ import annotations

import ast
from pathlib import Path

import nada

SRC = Path(nada.__file__).resolve().parent.parent
CORE = ("nada.generators", "nada.guidance", "nada.adapt")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST):
    """Every node of the tree except what sits under ``if TYPE_CHECKING:`` (never executed)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            test = child.test if isinstance(child, ast.If) else None
            if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING" or \
                    isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING":
                stack.extend(child.orelse)
                continue
            stack.append(child)


def imported_names(path: Path) -> set[str]:
    """Every module (or module.attribute) an import statement anywhere in the file names, resolved
    (function-level imports included; imports only a type checker runs are not)."""
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    names: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            names |= {f"{target}.{a.name}" for a in node.names}
    return names


MODULES = {module_name(p): p for p in SRC.joinpath("nada").rglob("*.py")}


def test_module_table_is_complete():
    assert {"nada.generators.checkpoints", "nada.guidance.clip", "nada.adapt.engine", "nada.toyworld.plugin"} <= set(MODULES)


def test_core_never_imports_the_builtin_world():
    offenders = {m: sorted(n for n in imported_names(p) if n == "nada.toyworld" or n.startswith("nada.toyworld."))
                 for m, p in MODULES.items() if m.startswith(CORE)}
    assert {m: n for m, n in offenders.items() if n} == {}


def test_the_structure_check_sees_relative_imports(tmp_path):
    """Guards the test above: a relative import of the world would be caught."""
    fake = SRC / "nada" / "adapt" / "_probe_for_test.py"
    try:
        fake.write_text("def f():\n    from ..toyworld import renderer\n", encoding="utf-8")
        assert "nada.toyworld" in imported_names(fake)
    finally:
        fake.unlink()


def test_no_import_cycles():
    # the package root is a lazy facade (nada.load_generator...), so edges into it are not cycles
    graph = {m: {n for n in imported_names(p) if n in MODULES and n not in (m, "nada")} for m, p in MODULES.items()}
    cycles = []

    def visit(m: str, path: list[str], done: set[str]) -> None:
        for n in sorted(graph[m]):
            if n in path:
                cycles.append(path[path.index(n):] + [n])
            elif n not in done:
                visit(n, path + [n], done)
        done.add(m)

    done: set[str] = set()
    for m in sorted(graph):
        if m not in done:
            visit(m, [m], done)
    assert cycles == []

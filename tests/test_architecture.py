"""The layout's promises (docs/architecture.md): packages import downwards only, the light import stays light,
no module reaches into another's private names, and no function or module grows past what one reader holds."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mi_augment"
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 500


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        package = ".".join(parts) if path.name == "__init__.py" else ".".join(parts[:-1])
        yield path, ".".join(parts), package, ast.parse(path.read_text())


def _imports(tree, package):
    """(imported module, imported names) for every import in the file, lazy ones inside functions included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def _top_package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "mi_augment"


def test_packages_import_each_other_without_cycles():
    edges: dict[str, set[str]] = defaultdict(set)
    for _, module, package, tree in _modules():
        for target, _names in _imports(tree, package):
            if target.startswith("mi_augment"):
                a, b = _top_package(module), _top_package(target)
                if a != b and b != "mi_augment":
                    edges[a].add(b)
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                pytest.fail("package import cycle: " + " -> ".join([*path, node, nxt]))
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])


def test_importing_the_transforms_loads_neither_video_nor_opencv():
    code = ("import sys, mi_augment.transforms; "
            "print(sorted(m for m in sys.modules if m.startswith(('mi_augment.video', 'cv2'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"import mi_augment.transforms loaded {out.strip()}"


def test_no_module_imports_another_modules_private_names():
    offences = []
    for path, module, package, tree in _modules():
        for target, names in _imports(tree, package):
            if not target.startswith("mi_augment") or target == module:
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            # a leading underscore on a module marks it internal to its own package: siblings may use it
            same_package = target.rsplit(".", 1)[0] == package
            private_module = [p for p in target.split(".") if p.startswith("_") and not p.startswith("__")]
            if private or (private_module and not same_package):
                offences.append(f"{path.relative_to(PACKAGE.parent)}: from {target} import {', '.join(names)}")
    assert not offences, "\n".join(offences)


def test_functions_and_modules_stay_readable_in_one_sitting():
    too_long = []
    for path, _, _, tree in _modules():
        lines = path.read_text().count("\n")
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(PACKAGE.parent)}: module of {lines} lines")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                first = node.body[0]
                if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
                    length -= first.end_lineno - first.lineno + 1  # the docstring is documentation, not code
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}() of {length} lines")
    assert not too_long, "\n".join(too_long)

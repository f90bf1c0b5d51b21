"""No import inside a function or class body crosses apps.

The layers contract (``[tool.importlinter]`` in pyproject.toml) sees such imports too, but
an import hidden in a function is how a dependency the other way gets dodged past a
reader: an app names another app's modules at the top of the module, where the layers
are checked and seen. ``config`` (the foundation every app may import) is exempt as a
target; imports under ``if TYPE_CHECKING:`` are exempt everywhere.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = set(
    tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]
)
FOUNDATION = "config"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative: inside the same package
        return []
    return [node.module or ""]


def _nested_imports(tree: ast.Module):
    """(line, module) of every import inside a function or class body."""

    def visit(node: ast.AST, nested: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    yield from visit(other, nested)
                continue
            if nested and isinstance(child, (ast.Import, ast.ImportFrom)):
                for name in _imported(child):
                    yield child.lineno, name
            inner = nested or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
            )
            yield from visit(child, inner)

    yield from visit(tree, False)


def cross_app_nested_imports() -> list[tuple[str, int, str]]:
    """(path, line, module) of every import in a function or class body naming another
    app."""
    found = []
    for package in sorted(PACKAGES):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for line, name in _nested_imports(tree):
                target = name.split(".")[0]
                if target in PACKAGES and target not in {package, FOUNDATION}:
                    found.append((str(path.relative_to(ROOT)), line, name))
    return found


def test_the_scan_sees_an_import_in_a_function_and_ignores_type_checking():
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from tutor.models import Message\n"
        "def f():\n    from grading.models import Review\n"
        "class C:\n    import lti.ags\n"
    )
    assert list(_nested_imports(tree)) == [(5, "grading.models"), (7, "lti.ags")]


def test_no_function_or_class_body_imports_another_app():
    found = [f"{path}:{line} imports {name}" for path, line, name in cross_app_nested_imports()]
    assert not found, "move these imports to the top of their module:\n" + "\n".join(found)


def _models_looked_up(tree: ast.Module):
    """(line, app label) of every ``get_model("app", ...)`` or ``get_model("app.Model")``
    call with a literal app label."""
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get_model"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            continue
        yield node.lineno, node.args[0].value.split(".")[0]


def test_the_scan_sees_a_model_looked_up_by_its_app_label():
    tree = ast.parse(
        'apps.get_model("tutor", "Chunk")\napps.get_model("grading.Review")\n'
        "apps.get_model(label)\n"
    )
    assert list(_models_looked_up(tree)) == [(1, "tutor"), (2, "grading")]


def test_no_app_looks_up_another_apps_model_by_name():
    """``apps.get_model("other_app", ...)`` is an import the layers contract cannot see;
    migrations (historical models, the only way there) are exempt."""
    found = []
    for package in sorted(PACKAGES):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(), filename=str(path))
            for line, label in _models_looked_up(tree):
                if label in PACKAGES and label not in {package, FOUNDATION}:
                    found.append(f"{path.relative_to(ROOT)}:{line} looks up a {label} model")
    assert not found, "import these models at the top of their module:\n" + "\n".join(found)

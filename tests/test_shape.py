"""The codebase keeps the shape issue 15 gave it: no module of ``digest/`` over 500 lines and no class over
250, so no file or class grows back into one that does every job (``cli.py`` was 1,858 lines, ``Store`` 263)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "digest"
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 250


def _modules() -> list[Path]:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 50, f"found only {len(modules)} modules under {PACKAGE}"  # the scan looks where it should
    return modules


def _classes(path: Path) -> list[tuple[str, int]]:
    """Every class in a module, nested ones too, with its length in lines (decorators and docstring included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            found.append((node.name, (node.end_lineno or node.lineno) - first + 1))
    return found


def test_no_module_is_over_500_lines() -> None:
    long = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in _modules()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by job): {long}"


def test_no_class_is_over_250_lines() -> None:
    long = {
        f"{path.relative_to(PACKAGE.parent)}:{name}": lines
        for path in _modules()
        for name, lines in _classes(path)
        if lines > MAX_CLASS_LINES
    }
    assert not long, f"classes over {MAX_CLASS_LINES} lines (compose smaller ones): {long}"


def test_the_scan_measures_classes_as_written(tmp_path: Path) -> None:
    """The measure itself: a decorated class counts from its decorator to its last line, nested classes too."""
    module = tmp_path / "sample.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(3))
    module.write_text(f"@dataclass\nclass Outer:\n    class Inner:\n{body.replace('    ', '        ')}\n{body}\n")
    assert dict(_classes(module)) == {"Outer": 9, "Inner": 4}


def test_every_test_named_slow_exists() -> None:
    """conftest marks slow tests by name: a renamed one would fall back into the fast loop unnoticed."""
    from conftest import _SLOW_MODULES, _SLOW_TESTS

    tests = PACKAGE.parent / "tests"
    sources = "\n".join(p.read_text(encoding="utf-8") for p in tests.rglob("test_*.py"))
    assert sorted(n for n in _SLOW_TESTS if f"def {n}(" not in sources) == []
    assert sorted(m for m in _SLOW_MODULES if not list(tests.rglob(m))) == []

"""The size of recovery/'s pieces (issue 17): no class over 200 lines, no function over 8 parameters.

A class that long does several jobs, and a function taking that many values wants a settings
object. A click command is exempt from the parameter limit: click passes each option as one.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

RECOVERY = Path(__file__).resolve().parents[2] / "recovery"
MAX_CLASS_LINES = 200
MAX_PARAMETERS = 8

Function = ast.FunctionDef | ast.AsyncFunctionDef


def _is_click_command(function: Function) -> bool:
    """Declared by `@click.command(...)`, `@<group>.command(...)` or `@<group>.group(...)`."""
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr in ("command", "group"):
            return True
    return False


def _parameters(function: Function) -> list[str]:
    """Every parameter but self and cls, *args and **kwargs included."""
    arguments = function.args
    named = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg]
    return [a.arg for a in named if a is not None and a.arg not in ("self", "cls")]


def oversized(root: Path) -> Iterator[str]:
    """`path:line: what` for each class over MAX_CLASS_LINES and function over MAX_PARAMETERS under `root`."""
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root.parent)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ClassDef):
                lines = node.end_lineno - node.lineno + 1 if node.end_lineno else 0
                if lines > MAX_CLASS_LINES:
                    yield f"{where}:{node.lineno}: class {node.name} is {lines} lines"
            elif isinstance(node, Function) and not _is_click_command(node):
                count = len(_parameters(node))
                if count > MAX_PARAMETERS:
                    yield f"{where}:{node.lineno}: {node.name}() takes {count} parameters"


def test_no_class_over_200_lines_and_no_function_over_8_parameters() -> None:
    assert list(oversized(RECOVERY)) == []


def test_the_check_finds_what_it_looks_for(tmp_path: Path) -> None:
    """A long class and a long parameter list are found; a click command and self are not counted."""
    package = tmp_path / "recovery"
    package.mkdir()
    long_class = "class Long:\n" + "    x = 1\n" * MAX_CLASS_LINES
    many = ", ".join(f"p{i}" for i in range(MAX_PARAMETERS))
    (package / "shapes.py").write_text(
        f"{long_class}\n"
        f"def many(self, {many}, *rest): ...\n"
        f"class Fine:\n    def method(self, {many}): ...\n"
        f"@click.command()\ndef command({many}, extra): ...\n"
        f"@services.command('set')\ndef subcommand({many}, extra): ...\n"
    )
    assert list(oversized(package)) == [
        f"recovery/shapes.py:1: class Long is {MAX_CLASS_LINES + 1} lines",
        f"recovery/shapes.py:{MAX_CLASS_LINES + 3}: many() takes {MAX_PARAMETERS + 1} parameters",
    ]

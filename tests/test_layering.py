"""flow/ and policy/ stay pure: stdlib (+ phonenumbers in policy) imports only, and no I/O."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "asterisk_recorder"
PURE_PACKAGES = ("flow", "policy")
OWN = ("asterisk_recorder.flow", "asterisk_recorder.policy", "asterisk_recorder.errors")
TYPE_ONLY = ("asterisk_recorder.settings",)
IO_MODULES = frozenset({
    "asyncio", "socket", "socketserver", "ssl", "selectors", "select", "subprocess",
    "multiprocessing", "threading", "concurrent", "http", "urllib", "ftplib", "smtplib",
    "telnetlib", "xmlrpc", "sqlite3", "signal", "os", "shutil", "tempfile", "random",
    "logging", "pty", "fcntl", "mmap", "ctypes", "webbrowser", "aiohttp", "asyncpg", "structlog",
})
CLOCK_CALLS = frozenset({
    ("time", "time"), ("time", "time_ns"), ("time", "monotonic"), ("time", "monotonic_ns"),
    ("time", "perf_counter"), ("time", "sleep"), ("time", "localtime"), ("datetime", "now"),
    ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"), ("os", "system"),
    ("uuid", "uuid4"), ("uuid", "uuid1"),
})
BANNED_BUILTINS = frozenset({"open", "eval", "exec", "input", "print", "__import__"})
FILE_METHODS = frozenset({"read_text", "read_bytes", "write_text", "write_bytes", "open"})
FILE_READERS = frozenset({"policy/table.py"})
"""The only module allowed to read files: the policy table loader."""


def modules() -> list[Path]:
    """Every Python module under the pure packages."""
    return sorted(p for pkg in PURE_PACKAGES for p in (PACKAGE / pkg).rglob("*.py"))


def rel(path: Path) -> str:
    """Path relative to the package, e.g. ``flow/machine.py``."""
    return path.relative_to(PACKAGE).as_posix()


def type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and (
            (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
            or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
        ):
            for child in node.body:
                for sub in ast.walk(child):
                    found.add(id(sub))
    return found


def imported_names(tree: ast.Module) -> list[tuple[str, bool]]:
    """(module name, only for type checking) of every import in ``tree``."""
    typing_only = type_checking_nodes(tree)
    names: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(alias.name, id(node) in typing_only) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                names.append(("<relative>", id(node) in typing_only))
            else:
                names.append((node.module or "", id(node) in typing_only))
    return names


def import_problem(name: str, typing_only: bool, path: str) -> str | None:
    """Why importing ``name`` from ``path`` breaks the layering, or None."""
    top = name.split(".")[0]
    if name.startswith(OWN):
        return None
    if typing_only and name.startswith(TYPE_ONLY):
        return None
    if top == "phonenumbers" and path.startswith("policy/"):
        return None
    if top in IO_MODULES:
        return f"{path}: imports I/O module {name}"
    if top in sys.stdlib_module_names and top != "asterisk_recorder":
        return None
    return f"{path}: imports {name}, which is neither stdlib nor flow/policy"


def test_there_are_modules_to_check() -> None:
    """The walk finds the machine, the engine and the table loader."""
    found = {rel(p) for p in modules()}

    assert {"flow/machine.py", "flow/recording.py", "policy/engine.py", "policy/table.py"} <= found


@pytest.mark.parametrize("path", modules(), ids=rel)
def test_pure_module_imports_only_stdlib_and_its_own_layers(path: Path) -> None:
    """No third-party (except phonenumbers in policy), no I/O modules, no relative imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    where = rel(path)

    problems = [
        problem for name, typing_only in imported_names(tree)
        if (problem := import_problem(name, typing_only, where))
    ]

    assert [] == problems


def io_problems(source: str, where: str) -> list[str]:
    """Clock reads, console/file I/O and banned builtins in ``source`` (module ``where``)."""
    problems: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in CLOCK_CALLS:
                problems.append(f"{where}:{node.lineno}: {node.value.id}.{node.attr}")
            if node.value.id == "sys" and node.attr in ("stdout", "stderr", "stdin") and not (
                where.startswith("policy/tools/")
            ):
                problems.append(f"{where}:{node.lineno}: sys.{node.attr}")
        if isinstance(node, ast.Attribute) and node.attr in FILE_METHODS and (
            where not in FILE_READERS
        ):
            problems.append(f"{where}:{node.lineno}: .{node.attr}()")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (
            node.func.id in BANNED_BUILTINS
        ):
            problems.append(f"{where}:{node.lineno}: {node.func.id}()")
    return problems


@pytest.mark.parametrize("path", modules(), ids=rel)
def test_pure_module_reads_no_clock_and_does_no_io(path: Path) -> None:
    """No clock reads, no os.system/uuid4, no open/print/eval; only table.py reads files."""
    assert [] == io_problems(path.read_text(encoding="utf-8"), rel(path))


def test_the_checker_catches_clock_reads_and_file_io() -> None:
    """The I/O rule itself flags time.time(), open(), Path.read_text() and print()."""
    source = "import time\nt = time.time()\nopen('x')\nP.read_text()\nprint(1)\n"

    assert [
        "flow/x.py:2: time.time", "flow/x.py:3: open()", "flow/x.py:4: .read_text()",
        "flow/x.py:5: print()",
    ] == sorted(io_problems(source, "flow/x.py"))


def test_the_checker_catches_a_forbidden_import() -> None:
    """The import rule itself rejects asyncio, aiohttp and phonenumbers in flow/."""
    assert import_problem("asyncio", False, "flow/x.py")
    assert import_problem("aiohttp.web", False, "policy/x.py")
    assert import_problem("phonenumbers", False, "flow/x.py")
    assert import_problem("asterisk_recorder.ledger", False, "flow/x.py")
    assert import_problem("asterisk_recorder.settings", False, "flow/x.py")
    assert None is import_problem("asterisk_recorder.settings", True, "policy/x.py")
    assert None is import_problem("phonenumbers.geodata", False, "policy/tools/x.py")
    assert None is import_problem("dataclasses", False, "flow/x.py")


def test_errors_module_is_pure_too() -> None:
    """flow/ and policy/ may import ``errors``, so it must import nothing impure itself."""
    tree = ast.parse((PACKAGE / "errors.py").read_text(encoding="utf-8"))

    problems = [
        problem for name, typing_only in imported_names(tree)
        if (problem := import_problem(name, typing_only, "errors.py"))
    ]

    assert [] == problems

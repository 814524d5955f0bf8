"""flow/ and policy/ stay pure: stdlib (+ phonenumbers in policy) imports only, and no I/O."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
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


# -- no import cycles anywhere in the package ----------------------------------------------------
#
# Static, via ast: every ``import``/``from ... import`` in every module counts, at module level
# and inside functions alike (a function-level import is the usual way to hide a cycle). Two
# graphs are checked:
#
# - modules: every import, ``if TYPE_CHECKING:`` ones included (a type-only import still means
#   the two modules need each other). No exceptions.
# - packages (``flow``, ``policy``, ``ari``, ..., and each top-level module such as
#   ``settings``): runtime imports only, since type-only imports of ``settings`` are allowed by
#   design (``TYPE_ONLY`` above). Known cycles are listed in ``KNOWN_CYCLE_EDGES`` by the import
#   that closes them; remove an entry once the import is gone (a stale entry fails the suite).
#
# Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``; those implicit parent
# imports are not edges (else every package's ``__init__`` re-export would be a "cycle").

KNOWN_CYCLE_EDGES: dict[tuple[str, str], str] = {}
"""Imports that close a package cycle existing today, with the cycle they close."""


def module_name(path: Path) -> str:
    """Dotted name of the module at ``path`` (a package's ``__init__`` is the package)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    """Every module of ``asterisk_recorder`` by dotted name."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def import_edges(
    name: str, source: str, known: Iterable[str], *, is_package: bool = False
) -> set[tuple[str, bool]]:
    """(imported module, only for type checking) for every import in module ``name``.

    ``known`` are the modules that exist; an import resolves to the longest known prefix (``from
    a.b import c`` is ``a.b.c`` if that is a module, else ``a.b``). Imports of anything outside
    ``known`` (stdlib, third party) are dropped.
    """
    known = set(known)
    tree = ast.parse(source)
    typing_only = type_checking_nodes(tree)
    package = name if is_package else name.rpartition(".")[0]

    def resolve(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    edges: set[tuple[str, bool]] = set()
    for node in ast.walk(tree):
        targets: list[str | None] = []
        if isinstance(node, ast.Import):
            targets = [resolve(alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            targets = [
                f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else resolve(module)
                for alias in node.names
            ]
        for target in targets:
            if target is not None and target != name:
                edges.add((target, id(node) in typing_only))
    return edges


def import_graph() -> dict[str, set[tuple[str, bool]]]:
    """Module name -> (imported module, type-only) of the whole package."""
    mods = package_modules()
    return {
        name: import_edges(
            name, path.read_text(encoding="utf-8"), mods, is_package=path.name == "__init__.py"
        )
        for name, path in mods.items()
    }


def unit_of(module: str) -> str:
    """The package-level unit of ``module``: ``asterisk_recorder.<first part>``."""
    return ".".join(module.split(".")[:2])


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component of size > 1, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: set[str] = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.add(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)

    cycles: list[list[str]] = []
    for component in components:
        # The shortest way from the component's smallest module back to itself (BFS).
        start = min(component)
        parent: dict[str, str] = {}
        queue, end = [start], None
        while queue and end is None:
            node = queue.pop(0)
            for nxt in sorted(n for n in graph[node] if n in component):
                if nxt == start:
                    end = node
                    break
                if nxt not in parent:
                    parent[nxt] = node
                    queue.append(nxt)
        assert end is not None, component
        path = [end]
        while path[-1] != start:
            path.append(parent[path[-1]])
        cycles.append([*reversed(path), start])
    return sorted(cycles)


def module_graph(edges: dict[str, set[tuple[str, bool]]]) -> dict[str, set[str]]:
    """Module -> imported modules, type-only imports included."""
    return {name: {target for target, _ in out} for name, out in edges.items()}


def unit_graph(
    edges: dict[str, set[tuple[str, bool]]], ignore: Iterable[tuple[str, str]] = ()
) -> dict[str, set[str]]:
    """Package unit -> imported units, runtime imports only, minus the ``ignore`` edges."""
    skip = set(ignore)
    graph: dict[str, set[str]] = {}
    for name, out in edges.items():
        unit = graph.setdefault(unit_of(name), set())
        for target, typing_only in out:
            if not typing_only and (name, target) not in skip and unit_of(target) != unit_of(name):
                unit.add(unit_of(target))
    return graph


def test_the_import_graph_sees_the_whole_package() -> None:
    """The walk finds the ARI client's import of the stream and the CLI's of the commands."""
    graph = module_graph(import_graph())

    assert "asterisk_recorder.ari.stream" in graph["asterisk_recorder.ari.client"]
    assert "asterisk_recorder.ari.endpoint" in graph["asterisk_recorder.ari.stream"]
    assert len(graph) > 50


def test_no_module_imports_itself_back() -> None:
    """No cycle between modules, counting function-level and TYPE_CHECKING imports."""
    assert [] == find_cycles(module_graph(import_graph()))


def test_no_package_imports_itself_back_beyond_the_known_cycles() -> None:
    """No cycle between packages (flow, policy, ari, ...) except the listed known ones."""
    assert [] == find_cycles(unit_graph(import_graph(), ignore=KNOWN_CYCLE_EDGES))


def test_every_known_cycle_entry_still_closes_a_cycle() -> None:
    """A known-cycle entry whose import is gone (or no longer cycles) must be removed."""
    edges = import_graph()
    stale = []
    for edge in sorted(KNOWN_CYCLE_EDGES):
        importer, imported = edge
        others = [e for e in KNOWN_CYCLE_EDGES if e != edge]
        if (imported, False) not in edges.get(importer, set()) or not find_cycles(
            unit_graph(edges, ignore=others)
        ):
            stale.append(edge)

    assert [] == stale


def test_the_cycle_check_catches_hidden_imports() -> None:
    """A function-level import and a TYPE_CHECKING import each close a module cycle."""
    known = ["pkg.a", "pkg.b", "pkg.c"]
    edges = {
        "pkg.a": import_edges("pkg.a", "def f():\n    from pkg import b\n", known),
        "pkg.b": import_edges(
            "pkg.b",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.c.x\n",
            known,
        ),
        "pkg.c": import_edges("pkg.c", "from .a import thing\n", known),
    }

    assert [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]] == find_cycles(module_graph(edges))
    assert {("pkg.c", True)} == edges["pkg.b"]


def test_the_cycle_check_catches_a_package_cycle_through_different_modules() -> None:
    """x.m imports y.n and y.o imports x.p: a package cycle although no module cycle."""
    known = ["r.x.m", "r.x.p", "r.y.n", "r.y.o"]
    edges = {
        "r.x.m": import_edges("r.x.m", "from r.y.n import f\n", known),
        "r.x.p": set(),
        "r.y.n": set(),
        "r.y.o": import_edges("r.y.o", "import r.x.p\n", known),
    }

    assert [] == find_cycles(module_graph(edges))
    assert [["r.x", "r.y", "r.x"]] == find_cycles(unit_graph(edges))
    assert [] == find_cycles(unit_graph(edges, ignore=[("r.y.o", "r.x.p")]))

"""Dependencies point one way: each package imports only the layers below it (docs/architecture.md).

The graph is read statically (``ast``) from every module of the package, module-level and
function-level imports alike, ``TYPE_CHECKING`` blocks included: a type-only import still says
which way a dependency points. The allowed edges are the architecture; anything else fails.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "asterisk_recorder"

BASE = frozenset({"errors", "logs", "settings", "config"})
"""The base: one exception tree, logging, the settings types and their loader."""

ALLOWED: Mapping[str, frozenset[str]] = {
    "errors": frozenset(),
    "redaction": frozenset(),
    # Settings types assemble the sections that flow/ and policy/ own (their pure leaf modules).
    "settings": frozenset({"errors", "redaction", "flow", "policy"}),
    "config": frozenset({"errors", "redaction", "logs", "settings", "flow", "policy"}),
    "logs": frozenset({"errors", "redaction", "settings"}),
    # The pure core: the law as data, then the consent flow above it.
    "policy": frozenset({"errors", "settings"}),
    "flow": frozenset({"errors", "policy"}),
    # Storage and operations.
    "embedded_pg": frozenset({"errors"}),
    "ledger": frozenset({"errors", "logs", "settings", "flow", "policy", "embedded_pg"}),
    "ops": frozenset({"errors", "logs", "settings"}),
    # The recording lifecycle: keys, the sealed envelope, verify and open.
    # (the sealer also serves its own /metrics and /readyz through ops)
    "recordings": frozenset({"errors", "logs", "settings", "flow", "ledger", "ops"}),
    # The driver core and the transports over it.
    "drivers": frozenset({"errors", "logs", "flow", "policy"}),
    "ari": frozenset({"errors", "logs", "settings"}),
    "agi": frozenset({"errors", "logs", "settings", "flow", "policy", "drivers"}),
    "ami": frozenset({"errors", "logs", "settings", "flow"}),
    "controller": frozenset({"errors", "logs", "settings", "flow", "policy", "drivers", "ari"}),
    # The composition root, then the entry points.
    "service": frozenset({
        "errors", "logs", "settings", "config", "flow", "policy", "ledger", "ops", "embedded_pg",
        "drivers", "ari", "agi", "ami", "controller", "recordings",
    }),
    "testing": frozenset({"errors", "logs", "settings", "ari", "agi", "ami"}),
    "demo": frozenset({
        "errors", "logs", "settings", "config", "flow", "policy", "ledger", "ari", "service",
        "testing", "recordings",
    }),
    "commands": frozenset({
        "errors", "logs", "settings", "config", "flow", "policy", "ledger", "ops", "embedded_pg",
        "agi", "ari", "service", "demo", "recordings", "",
    }),
    "cli": frozenset({"errors", "logs", "settings", "config", "commands", ""}),
    "__main__": frozenset({"cli"}),
    "": frozenset(),  # asterisk_recorder/__init__.py
}
"""Which top-level packages each one may import (itself always)."""


def top_of(module: str) -> str | None:
    """``asterisk_recorder.flow.machine`` -> ``flow``; a foreign module -> None."""
    parts = module.split(".")
    if parts[0] != "asterisk_recorder":
        return None
    return parts[1] if len(parts) > 1 else ""


def source_top(path: Path) -> str:
    """The top-level package (or module) a file belongs to."""
    rel = path.relative_to(PACKAGE).with_suffix("")
    if rel.parts == ("__init__",):
        return ""
    return rel.parts[0]


def imports_of(tree: ast.Module) -> Iterator[tuple[str, int]]:
    """Every ``asterisk_recorder`` module imported anywhere in ``tree``, with its line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module, node.lineno


def violations(source: str, where: str, owner: str) -> list[str]:
    """The imports in ``source`` (file ``where`` of package ``owner``) the architecture forbids."""
    found: list[str] = []
    for module, line in imports_of(ast.parse(source)):
        target = top_of(module)
        if target is None or target == owner:
            continue
        if target not in ALLOWED.get(owner, frozenset()):
            found.append(f"{where}:{line}: {owner} -> {target} ({module})")
    return found


def product_files() -> list[Path]:
    """Every module of the package."""
    return sorted(PACKAGE.rglob("*.py"))


def test_every_package_has_a_place_in_the_architecture() -> None:
    """A new top-level package must be placed in ``ALLOWED`` (and in docs/architecture.md)."""
    tops = {source_top(p) for p in product_files()}

    assert set() == tops - set(ALLOWED)


@pytest.mark.parametrize("path", product_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_the_layers_below_it(path: Path) -> None:
    """No import points up or sideways: flow/policy pure, drivers above them, root above all."""
    owner = source_top(path)
    where = str(path.relative_to(PACKAGE))

    assert [] == violations(path.read_text(encoding="utf-8"), where, owner)


def test_only_the_demo_imports_the_shipped_fakes() -> None:
    """``asterisk_recorder.testing`` is imported by the demo package and nothing else."""
    importers = {
        source_top(p) for p in product_files()
        for module, _ in imports_of(ast.parse(p.read_text(encoding="utf-8")))
        if top_of(module) == "testing" and source_top(p) != "testing"
    }

    assert {"demo"} == importers


@pytest.mark.parametrize(
    ("owner", "source"),
    [
        ("policy", "from asterisk_recorder.flow.decision import ConsentDecision\n"),
        ("flow", "from asterisk_recorder.ledger import Ledger\n"),
        ("agi", "from asterisk_recorder.ledger.sink import MemorySink\n"),
        ("controller", "def f():\n    from asterisk_recorder.demo import run_demo\n"),
        ("ari", "from asterisk_recorder.ari.stream import EventStream\n"
                "from asterisk_recorder.flow import ConsentFlow\n"),
        ("drivers", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                    "    from asterisk_recorder.controller.call import AriPort\n"),
        ("service", "import asterisk_recorder.testing\n"),
        ("ledger", "from asterisk_recorder.service import build\n"),
    ],
)
def test_the_checker_catches_the_imports_that_once_leaked(owner: str, source: str) -> None:
    """Re-adding any of the leaks issue 12 found (and a few more) fails the rule."""
    assert [] != violations(source, f"{owner}/x.py", owner)

"""The fake Asterisk stays a package of small, documented modules with an unchanged public API."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import asterisk_recorder.testing as testing
from asterisk_recorder.testing import fake_asterisk

PACKAGE = Path(fake_asterisk.__file__).parent
MODULES = sorted(PACKAGE.glob("*.py"))
PUBLIC = (
    "DEFAULT_SOUNDS",
    "AmiChannel",
    "ContinueRecord",
    "FakeAmi",
    "FakeAsterisk",
    "FakeChannel",
    "RecordedRequest",
    "SentEvent",
)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_each_module_is_small_and_says_what_it_owns(path: Path) -> None:
    """Under 400 lines, with a module docstring that says what it owns and must not do."""
    source = path.read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(source)) or ""

    assert len(source.splitlines()) < 400
    assert "owns" in doc
    assert "must not" in doc


@pytest.mark.parametrize("name", PUBLIC)
def test_public_names_import_from_both_paths_as_the_same_object(name: str) -> None:
    """``asterisk_recorder.testing`` and ``...testing.fake_asterisk`` export the same objects."""
    assert getattr(testing, name) is getattr(fake_asterisk, name)
    assert name in testing.__all__
    assert name in fake_asterisk.__all__


def test_every_module_exports_what_it_defines() -> None:
    """Each module's ``__all__`` names only things it has (no stale entries)."""
    for path in MODULES:
        module = importlib.import_module(
            f"{fake_asterisk.__name__}.{path.stem}".removesuffix(".__init__")
        )
        missing = [n for n in getattr(module, "__all__", ()) if not hasattr(module, n)]
        assert [] == missing, path.name

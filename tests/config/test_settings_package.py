"""The settings package: small modules in one direction, and the old import paths still work."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from asterisk_recorder import config, settings
from asterisk_recorder.settings import cli, loader, render, schema

PACKAGE = Path(settings.__file__).resolve().parent
ORDER = (
    "sections", "pause_help", "schema", "values", "ledger_rules", "recording_rules", "retention",
    "pause_rules", "checks", "sources", "loader", "cli", "render",
)
"""Bottom up: a module may import only modules before it (render sits beside the loader)."""
ALLOWED = {name: set(ORDER[:i]) for i, name in enumerate(ORDER)}
ALLOWED["render"] = {"sections", "schema"}
ALLOWED["__init__"] = {"sections"}


def modules() -> list[Path]:
    """Every module of the settings package."""
    return sorted(PACKAGE.glob("*.py"))


def test_every_module_is_placed_in_the_order() -> None:
    """A new module must be given its place in ORDER (and so its allowed imports)."""
    assert sorted(ALLOWED) == sorted(p.stem for p in modules())


@pytest.mark.parametrize("path", modules(), ids=lambda p: p.name)
def test_module_is_small_and_says_what_it_owns(path: Path) -> None:
    """Each module stays under 400 lines and its docstring says what it owns and must not do."""
    text = path.read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(text)) or ""

    assert len(text.splitlines()) < 400
    assert ("owns" in doc or "re-exports" in doc, "must not" in doc) == (True, True)


@pytest.mark.parametrize("path", modules(), ids=lambda p: p.name)
def test_module_imports_only_the_layers_below_it(path: Path) -> None:
    """Imports inside the package point one way (no cycles): see ORDER."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {
        node.module.rsplit(".", 1)[1]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
        and node.module.startswith("asterisk_recorder.settings.")
    }

    assert set() == imported - ALLOWED[path.stem]


def test_old_import_paths_name_the_same_objects() -> None:
    """asterisk_recorder.config re-exports the package's entry points, not copies."""
    assert (config.load, config.secret_values, config.settings_from_args,
            config.add_config_arguments, config.render_sample, config.render_effective,
            config.render_reference, config.schema, config.KeyInfo) == (
        loader.load, loader.secret_values, cli.settings_from_args, cli.add_config_arguments,
        render.render_sample, render.render_effective, render.render_reference,
        schema.schema, schema.KeyInfo)
    assert [] == [name for name in config.__all__ if not hasattr(config, name)]


def test_importing_a_settings_type_does_not_load_the_loader() -> None:
    """``from asterisk_recorder.settings import Settings`` leaves the loader unimported."""
    code = ("import sys\nfrom asterisk_recorder.settings import Settings\n"
            "print(sorted(m for m in sys.modules if m.startswith('asterisk_recorder.settings.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout

    assert "['asterisk_recorder.settings.sections']" == out.strip()

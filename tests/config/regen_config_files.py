"""Regenerate etc/asterisk-recorder.toml and the reference tables of docs/configuration.md.

Run ``python tests/config/regen_config_files.py`` after adding or changing a settings field;
``test_config_files.py`` fails until the files match the schema again.
"""

from __future__ import annotations

from pathlib import Path

from asterisk_recorder import config

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "etc" / "asterisk-recorder.toml"
DOCS = ROOT / "docs" / "configuration.md"
BEGIN = "<!-- BEGIN GENERATED REFERENCE: python tests/config/regen_config_files.py -->"
END = "<!-- END GENERATED REFERENCE -->"


def docs_with_reference(text: str) -> str:
    """Return ``text`` with the part between the markers replaced by the current reference."""
    head, _sep, rest = text.partition(BEGIN)
    _old, _sep, tail = rest.partition(END)
    return f"{head}{BEGIN}\n\n{config.render_reference()}\n{END}{tail}"


def main() -> None:
    """Write both files."""
    SAMPLE.write_text(config.render_sample(), encoding="utf-8")
    DOCS.write_text(docs_with_reference(DOCS.read_text(encoding="utf-8")), encoding="utf-8")


if __name__ == "__main__":
    main()

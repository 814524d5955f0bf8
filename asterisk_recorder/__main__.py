"""``python -m asterisk_recorder``: the same as the ``asterisk-recorder`` console script."""

from __future__ import annotations

import sys

from asterisk_recorder.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())

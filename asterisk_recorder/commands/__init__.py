"""One module per ``asterisk-recorder`` sub-command.

Each module defines ``register(subparsers)`` which adds its parser(s) and sets
``func=<callable(args) -> int>`` as the parser default. ``cli.py`` discovers the modules in
this package, so adding a command means adding a file here. Modules keep argument parsing and
printing only; the work is done by the package they call.
"""

__all__: list[str] = []

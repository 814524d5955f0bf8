"""Maintenance scripts of the policy package (run by developers, never at runtime).

This package owns the generators of the policy data modules. Nothing here is imported by the
policy engine.
"""

__all__: list[str] = []

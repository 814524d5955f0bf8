"""The recording policy: which mode a call needs, from the law of every party, as data.

This package owns the recording modes (``modes``), the policy table (``table``, shipped as
``default_policy.toml``), number placement (``numbers``, ``nanp``) and the engine (``engine``).
It must not do I/O beyond reading policy tables: it imports only the standard library,
phonenumbers and ``asterisk_recorder.flow`` (a test enforces it).

This is not legal advice: the default table is an engineering default; operators override it.
"""

from asterisk_recorder.policy.engine import PartyDetail, PolicyEngine, PolicyResult
from asterisk_recorder.policy.modes import Mode, strictest
from asterisk_recorder.policy.numbers import NumberResolution, resolve_number
from asterisk_recorder.policy.table import (
    PolicyRow,
    PolicyTable,
    default_table,
    load_table_file,
    merge_tables,
    parse_table,
)

__all__ = [
    "Mode",
    "NumberResolution",
    "PartyDetail",
    "PolicyEngine",
    "PolicyResult",
    "PolicyRow",
    "PolicyTable",
    "default_table",
    "load_table_file",
    "merge_tables",
    "parse_table",
    "resolve_number",
    "strictest",
]

"""A static checker for the recorder's Asterisk dialplan (nothing here runs Asterisk).

This module owns a small parser of ``extensions.conf`` syntax (contexts, ``exten =>`` and
``same =>`` lines, priorities, labels, comments) and the safety checks the recorder's dialplan
must pass. Every check returns a list of human-readable problems; an empty list means the check
passed. It must not import the product package: the dialplan is checked as text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

__all__ = [
    "CALLER_CONTROLLED",
    "Dialplan",
    "DialplanSyntaxError",
    "Priority",
    "all_problems",
    "check_caller_text_never_reaches_sinks",
    "check_fail_closed_by_default",
    "check_hangup_handler_closes_recording",
    "check_labels_exist",
    "check_mixmonitor_arguments",
    "check_mixmonitor_guarded",
    "check_status_checked_after_consent",
    "check_subroutines_return",
    "filter_allowed",
    "parse",
]

CALLER_CONTROLLED = (
    "CALLERID",
    "CONNECTEDLINE",
    "DNID",
    "EXTEN",
    "RDNIS",
    "REDIRECTING",
    "CALLERPRES",
    "SIP_HEADER",
    "PJSIP_HEADER",
    "PJSIP_PARSE_URI",
    "HASH",
)
"""Variables and functions whose value a caller (or a far end) can choose."""

SUBROUTINE_ENDS = frozenset({"return"})
TERMINAL_APPS = frozenset({"return", "hangup"})


class DialplanSyntaxError(ValueError):
    """A line of the dialplan does not parse; the message names the line."""


@dataclass(frozen=True, slots=True)
class Priority:
    """One dialplan priority: ``exten => <exten>,<number>(<label>),<app>(<args>)``."""

    context: str
    exten: str
    number: int
    label: str | None
    app: str
    args: str
    line: int

    @property
    def where(self) -> str:
        """``context,exten,number`` (line N), for problem messages."""
        return f"{self.context},{self.exten},{self.number} (line {self.line})"


@dataclass
class Dialplan:
    """Contexts -> extensions -> ordered priorities, plus ``#include`` lines."""

    contexts: dict[str, dict[str, list[Priority]]] = field(default_factory=dict)
    includes: list[str] = field(default_factory=list)

    def priorities(self) -> Iterator[Priority]:
        """Every priority of every context, in file order per extension."""
        for extens in self.contexts.values():
            for prios in extens.values():
                yield from prios

    def find(self, context: str, exten: str, target: str) -> int | None:
        """Index in ``contexts[context][exten]`` of priority number or label ``target``."""
        prios = self.contexts.get(context, {}).get(exten)
        if prios is None:
            return None
        for index, prio in enumerate(prios):
            if prio.label == target or str(prio.number) == target:
                return index
        return None


_LINE = re.compile(r"^(exten|same)\s*=>?\s*(.*)$")
_PRIO = re.compile(r"^(\d+|n)(?:\((\w+)\))?$")


def _strip_comment(line: str) -> str:
    out = []
    escaped = False
    for char in line:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            out.append(char)
            escaped = True
        elif char == ";":
            break
        else:
            out.append(char)
    return "".join(out).strip()


def split_top(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` outside ``()``, ``[]``, ``{}`` and double quotes."""
    parts: list[str] = []
    depth = 0
    quote = False
    current: list[str] = []
    for char in text:
        if char == '"':
            quote = not quote
        elif not quote and char in "([{":
            depth += 1
        elif not quote and char in ")]}":
            depth = max(0, depth - 1)
        if char == sep and depth == 0 and not quote:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _split_app(text: str, lineno: int) -> tuple[str, str]:
    text = text.strip()
    paren = text.find("(")
    if paren < 0:
        return text, ""
    if not text.endswith(")"):
        raise DialplanSyntaxError(f"line {lineno}: application call without a closing ')'")
    return text[:paren].strip(), text[paren + 1 : -1]


def parse(text: str) -> Dialplan:
    """Parse extensions.conf text.

    Raises:
        DialplanSyntaxError: a priority line outside a context, a ``same`` before any
            ``exten``, an unknown priority token, or a duplicate label.
    """
    plan = Dialplan()
    context: str | None = None
    exten: str | None = None
    in_block_comment = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if in_block_comment:
            if "--;" in raw:
                in_block_comment = False
            continue
        if raw.lstrip().startswith(";--"):
            in_block_comment = "--;" not in raw.lstrip()[3:]
            continue
        line = _strip_comment(raw)
        if not line:
            continue
        if line.startswith("#"):
            plan.includes.append(line)
            continue
        if line.startswith("["):
            end = line.find("]")
            if end < 0:
                raise DialplanSyntaxError(f"line {lineno}: unterminated context header")
            context = line[1:end].strip()
            plan.contexts.setdefault(context, {})
            exten = None
            continue
        match = _LINE.match(line)
        if match is None:
            if re.match(r"^(include|switch|ignorepat)\s*=>", line) or "=" in line:
                continue  # include =>, [globals] assignments: not priorities
            raise DialplanSyntaxError(f"line {lineno}: not a dialplan line: {line!r}")
        if context is None:
            raise DialplanSyntaxError(f"line {lineno}: priority outside any context")
        kind, rest = match.groups()
        if kind == "exten":
            name, _, rest = rest.partition(",")
            exten = name.strip()
        elif exten is None:
            raise DialplanSyntaxError(f"line {lineno}: 'same =>' before any 'exten =>'")
        prio_text, _, app_text = rest.partition(",")
        prio_match = _PRIO.match(prio_text.strip())
        if prio_match is None:
            raise DialplanSyntaxError(f"line {lineno}: bad priority {prio_text!r}")
        prios = plan.contexts[context].setdefault(exten, [])
        number_text, label = prio_match.groups()
        number = (prios[-1].number + 1 if prios else 1) if number_text == "n" else int(number_text)
        if label is not None and any(p.label == label for p in prios):
            raise DialplanSyntaxError(f"line {lineno}: duplicate label {label!r}")
        app, args = _split_app(app_text, lineno)
        prios.append(Priority(context, exten, number, label, app, args, lineno))
    return plan


# --- control flow -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """One priority on a path, with the branch taken when it is a GotoIf (else None)."""

    prio: Priority
    branch: bool | None


def gotoif_parts(args: str) -> tuple[str, str, str]:
    """``cond?true:false`` -> (cond, true, false); either label may be empty."""
    parts = split_top(args, "?")
    if len(parts) != 2:
        raise DialplanSyntaxError(f"GotoIf without a single '?': {args!r}")
    cond, labels = parts
    branches = split_top(labels, ":")
    true = branches[0]
    false = branches[1] if len(branches) > 1 else ""
    return cond.strip(), true.strip(), false.strip()


def _resolve(plan: Dialplan, prio: Priority, target: str) -> tuple[str, str, int] | None:
    """Resolve a Goto target ``label`` / ``exten,label`` / ``context,exten,label``."""
    parts = [p.strip() for p in target.split(",")]
    if len(parts) == 1:
        context, exten, label = prio.context, prio.exten, parts[0]
    elif len(parts) == 2:
        context, exten, label = prio.context, parts[0], parts[1]
    else:
        context, exten, label = parts[0], parts[1], parts[2]
    index = plan.find(context, exten, label)
    if index is None:
        return None
    return context, exten, index


Oracle = Callable[[Priority], bool | None]
"""Decides a GotoIf branch (True/False) or returns None to explore both."""


def _explore_both(_: Priority) -> bool | None:
    return None


def paths(
    plan: Dialplan,
    context: str,
    exten: str = "s",
    start: int = 0,
    oracle: Oracle = _explore_both,
) -> Iterator[list[Step]]:
    """Every path from ``start`` to the end of the subroutine, following Goto/GotoIf.

    A path ends at Return/Hangup, or at the last priority when it falls off the end (the last
    step is then a non-terminal application; ``check_subroutines_return`` reports that).
    Gosub calls are single steps (the callee is checked on its own).
    """

    def walk(index: int, trail: list[Step], seen: frozenset[int]) -> Iterator[list[Step]]:
        prios = plan.contexts[context][exten]
        if index >= len(prios):
            yield trail
            return
        if index in seen:
            return  # a loop: this walker reports acyclic paths only
        prio = prios[index]
        seen = seen | {index}
        app = prio.app.lower()
        if app in TERMINAL_APPS:
            yield [*trail, Step(prio, None)]
            return
        if app == "goto":
            resolved = _resolve(plan, prio, prio.args)
            if resolved is None or resolved[0] != context or resolved[1] != exten:
                yield [*trail, Step(prio, None)]
                return
            yield from walk(resolved[2], [*trail, Step(prio, None)], seen)
            return
        if app == "gotoif":
            _, true, false = gotoif_parts(prio.args)
            decided = oracle(prio)
            for branch, target in ((True, true), (False, false)):
                if decided is not None and decided != branch:
                    continue
                step = [*trail, Step(prio, branch)]
                if not target:
                    yield from walk(index + 1, step, seen)
                    continue
                resolved = _resolve(plan, prio, target)
                if resolved is None:
                    yield step
                    continue
                yield from walk(resolved[2], step, seen)
            return
        yield from walk(index + 1, [*trail, Step(prio, None)], seen)

    yield from walk(start, [], frozenset())


def _gosub_target(prio: Priority) -> str | None:
    if prio.app.lower() != "gosub":
        return None
    return split_top(prio.args, ",")[0].strip()


# --- checks -------------------------------------------------------------------------------


def check_labels_exist(plan: Dialplan) -> list[str]:
    """Every label a Goto/GotoIf names, and every context a Gosub names, exists."""
    problems = []
    for prio in plan.priorities():
        app = prio.app.lower()
        targets: list[str] = []
        if app == "goto":
            targets = [prio.args]
        elif app == "gotoif":
            try:
                _, true, false = gotoif_parts(prio.args)
            except DialplanSyntaxError as exc:
                problems.append(f"{prio.where}: {exc}")
                continue
            targets = [t for t in (true, false) if t]
        for target in targets:
            if _resolve(plan, prio, target) is None:
                problems.append(f"{prio.where}: label {target!r} does not exist")
        gosub = _gosub_target(prio)
        if gosub is not None and gosub not in plan.contexts:
            problems.append(f"{prio.where}: Gosub to unknown context {gosub!r}")
    return problems


def _var_refs(text: str) -> list[str]:
    """Names inside every ``${...}`` of ``text`` (outermost first, nested included)."""
    refs = []
    for match in re.finditer(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text):
        refs.append(match.group(1))
    return refs


def check_mixmonitor_arguments(plan: Dialplan) -> list[str]:
    """MixMonitor gets ``${RECORDER_FILE}``, ``${RECORDER_MIXMON_OPTIONS}`` and fixed text only.

    No expression, no other variable, no third argument (the post-recording shell command).
    """
    problems = []
    allowed = {"RECORDER_FILE", "RECORDER_MIXMON_OPTIONS"}
    for prio in plan.priorities():
        if prio.app.lower() != "mixmonitor":
            continue
        refs = _var_refs(prio.args)
        bad = [r for r in refs if r not in allowed]
        if bad:
            problems.append(f"{prio.where}: MixMonitor uses {bad} (only {sorted(allowed)})")
        if "$[" in prio.args:
            problems.append(f"{prio.where}: MixMonitor argument contains an expression")
        args = split_top(prio.args, ",")
        if len(args) > 2:
            problems.append(f"{prio.where}: MixMonitor has a post-recording command argument")
        fixed = prio.args.replace("${RECORDER_FILE}", "").replace("${RECORDER_MIXMON_OPTIONS}", "")
        if not re.fullmatch(r"[A-Za-z0-9_(),]*", fixed):
            problems.append(f"{prio.where}: MixMonitor fixed text {fixed!r} is not plain")
        if args[0].strip() != "${RECORDER_FILE}":
            problems.append(f"{prio.where}: MixMonitor file must be exactly ${{RECORDER_FILE}}")
    return problems


_SINK_APPS = frozenset({"mixmonitor", "system", "trysystem", "record", "monitor", "exec"})
_SINK_FUNCS = ("STAT(", "FILE(", "SHELL(", "FILE_COUNT_LINE(")
_FILE_VAR = re.compile(r"(FILE|PATH|DIR|OPTIONS)$")


def _mentions(text: str, names: set[str] | tuple[str, ...]) -> list[str]:
    return [n for n in names if re.search(r"\$\{" + re.escape(n) + r"\b", text)]


def check_caller_text_never_reaches_sinks(plan: Dialplan) -> list[str]:
    """No caller-controlled value reaches MixMonitor, System, a file function or a file variable.

    Taint flows through ``Set(VAR=...)``: a variable set from caller-controlled text is itself
    caller-controlled.
    """
    tainted: set[str] = set(CALLER_CONTROLLED)
    changed = True
    while changed:
        changed = False
        for prio in plan.priorities():
            if prio.app.lower() != "set":
                continue
            name, _, value = prio.args.partition("=")
            name = name.strip()
            if _mentions(value, tainted) and name not in tainted:
                tainted.add(name)
                changed = True
    problems = []
    for prio in plan.priorities():
        app = prio.app.lower()
        sinks: list[str] = []
        if app in _SINK_APPS:
            sinks.append(prio.args)
        if app == "set":
            name, _, value = prio.args.partition("=")
            if _FILE_VAR.search(name.strip()):
                sinks.append(value)
        for func in _SINK_FUNCS:
            start = prio.args.find(func)
            while start >= 0:
                sinks.append(prio.args[start:])
                start = prio.args.find(func, start + 1)
        for text in sinks:
            found = _mentions(text, tainted)
            if found:
                problems.append(
                    f"{prio.where}: caller-controlled {sorted(found)} reaches {prio.app}"
                )
    return problems


def _consent_steps(plan: Dialplan) -> Iterator[tuple[Priority, str, int]]:
    for extens in plan.contexts.values():
        for prios in extens.values():
            for index, prio in enumerate(prios):
                app = prio.app.lower()
                if app == "stasis":
                    yield prio, "STASISSTATUS", index
                elif app in {"agi", "eagi"}:
                    yield prio, "AGISTATUS", index


def check_status_checked_after_consent(plan: Dialplan) -> list[str]:
    """After Stasis()/AGI(), every path tests the status before anything else decides.

    Before the test only ``Set``/``NoOp`` may run; the failure branch must reach the
    ``recorder-consent-unavailable`` subroutine; ``recorder-consent-apply`` is reachable only
    through the success branch.
    """
    problems = []
    for prio, status, index in _consent_steps(plan):
        for path in paths(plan, prio.context, prio.exten, index + 1):
            checked: Step | None = None
            blocked = False
            for step in path:
                app = step.prio.app.lower()
                if app == "gotoif" and "${" + status + "}" in step.prio.args:
                    checked = step
                    break
                if app not in {"set", "noop", "verbose"}:
                    problems.append(
                        f"{prio.where}: {step.prio.app} at {step.prio.where} runs before "
                        f"{status} is checked"
                    )
                    blocked = True
                    break
            if blocked:
                continue
            if checked is None:
                problems.append(f"{prio.where}: a path never checks {status}")
                continue
            cond, _, _ = gotoif_parts(checked.prio.args)
            success_branch = f'"${{{status}}}" = "SUCCESS"' in cond
            if not success_branch:
                problems.append(f"{checked.prio.where}: status test is not {status} = SUCCESS")
                continue
            rest = path[path.index(checked) + 1 :]
            gosubs = [_gosub_target(s.prio) for s in rest if _gosub_target(s.prio)]
            if checked.branch:
                if "recorder-consent-unavailable" in gosubs and gosubs[0] != (
                    "recorder-consent-apply"
                ):
                    problems.append(f"{prio.where}: SUCCESS path goes to the unavailable branch")
            else:
                if "recorder-consent-apply" in gosubs or any(
                    s.prio.app.lower() == "mixmonitor" for s in rest
                ):
                    problems.append(f"{prio.where}: a failed {status} path can record")
                if "recorder-consent-unavailable" not in gosubs:
                    problems.append(f"{prio.where}: a failed {status} path does not report the gap")
    return problems


_REQUIRED_GUARDS = {
    "decision is exactly record": '"record"',
    "RECORDER_FILE checked": "LEN(${RECORDER_FILE})",
    "RECORDER_FILE has no ..": "STRREPLACE(RECORDER_CHECK,..)",
    "RECORDER_FILE is absolute": '"${RECORDER_CHECK:0:1}" != "/"',
    "RECORDER_MIXMON_OPTIONS checked": "LEN(${RECORDER_MIXMON_OPTIONS})",
    "RECORDER_DECISION_ID checked": "LEN(${RECORDER_DECISION_ID})",
}


def check_mixmonitor_guarded(plan: Dialplan) -> list[str]:
    """Every path from a context's entry to MixMonitor passes every validation guard."""
    problems = []
    for context, extens in plan.contexts.items():
        for exten in extens:
            for path in paths(plan, context, exten):
                for position, step in enumerate(path):
                    if step.prio.app.lower() != "mixmonitor":
                        continue
                    conds = " ".join(
                        s.prio.args for s in path[:position] if s.prio.app.lower() == "gotoif"
                    )
                    missing = [name for name, text in _REQUIRED_GUARDS.items() if text not in conds]
                    if missing:
                        problems.append(
                            f"{step.prio.where}: MixMonitor reachable without {missing}"
                        )
    return problems


def _fail_open_oracle(fail_open: bool) -> Oracle:
    def decide(prio: Priority) -> bool | None:
        if "RECORDER_FAIL_OPEN}" in prio.args:
            return fail_open
        return None

    return decide


def check_fail_closed_by_default(plan: Dialplan) -> list[str]:
    """Without ``RECORDER_FAIL_OPEN=yes`` the unavailable path records nothing, says skip, and
    raises ``UserEvent(RecorderUnavailable)``; only the literal ``yes`` opens it."""
    context = "recorder-consent-unavailable"
    if context not in plan.contexts:
        return [f"context [{context}] is missing"]
    problems = []
    opens = [p for p in plan.priorities() if "RECORDER_FAIL_OPEN}" in p.args]
    for prio in opens:
        if prio.app.lower() != "gotoif" or prio.context != context:
            problems.append(f"{prio.where}: RECORDER_FAIL_OPEN read outside the fail-open test")
            continue
        cond, _, _ = gotoif_parts(prio.args)
        if cond != '$["${RECORDER_FAIL_OPEN}" = "yes"]':
            problems.append(f"{prio.where}: fail-open test is {cond!r}, not an exact 'yes'")
    for path in paths(plan, context, oracle=_fail_open_oracle(False)):
        apps = [(s.prio.app.lower(), s.prio.args) for s in path]
        if any(a == "mixmonitor" for a, _ in apps) or any(
            a == "gosub" and args.startswith("recorder-consent-apply") for a, args in apps
        ):
            problems.append(f"{context}: records while RECORDER_FAIL_OPEN is unset")
        sets = [args for a, args in apps if a == "set" and args.startswith("RECORDER_DECISION=")]
        if not sets or sets[-1] != "RECORDER_DECISION=skip":
            problems.append(f"{context}: default path does not leave RECORDER_DECISION=skip")
        outcome = [args for a, args in apps if a == "set" and args.startswith("RECORDER_OUTCOME=")]
        if not outcome or outcome[-1] != "RECORDER_OUTCOME=controller_unavailable":
            problems.append(f"{context}: default path does not set controller_unavailable")
        if not any(
            a == "userevent" and args.startswith("RecorderUnavailable,") for a, args in apps
        ):
            problems.append(f"{context}: default path raises no UserEvent(RecorderUnavailable)")
    return problems


def check_subroutines_return(plan: Dialplan) -> list[str]:
    """Every path of every subroutine context ends in ``Return()`` (no fall-off, no Hangup)."""
    problems = []
    for context, extens in plan.contexts.items():
        for exten in extens:
            for path in paths(plan, context, exten):
                last = path[-1].prio if path else None
                if last is None or last.app.lower() != "return":
                    where = last.where if last else f"{context},{exten}"
                    problems.append(f"{where}: a path of [{context}] ends without Return()")
    return problems


def check_hangup_handler_closes_recording(plan: Dialplan) -> list[str]:
    """A started recording pushes a hangup handler that stops it, then reports RecordingClosed
    without STAT() (the sealer measures the closed file)."""
    problems = []
    for prio in plan.priorities():
        if prio.app.lower() == "mixmonitor" and "i(RECORDER_MMID)" not in prio.args:
            problems.append(f"{prio.where}: MixMonitor without i(RECORDER_MMID)")
    pushes = [p for p in plan.priorities() if p.args.startswith("CHANNEL(hangup_handler_push)=")]
    if not pushes:
        problems.append("no hangup handler is pushed after MixMonitor")
    for push in pushes:
        handler = push.args.partition("=")[2].split(",")[0].strip()
        if handler not in plan.contexts:
            problems.append(f"{push.where}: hangup handler context {handler!r} is missing")
            continue
        for path in paths(plan, handler):
            apps = [s.prio.app.lower() for s in path]
            closed = [
                i
                for i, s in enumerate(path)
                if s.prio.app.lower() == "userevent" and s.prio.args.startswith("RecordingClosed,")
            ]
            if closed and "stopmixmonitor" not in apps[: closed[0]]:
                problems.append(f"[{handler}]: RecordingClosed is raised before StopMixMonitor")
            if "stopmixmonitor" in apps and not closed:
                problems.append(f"[{handler}]: StopMixMonitor without UserEvent(RecordingClosed)")
            for i in closed:
                if "STAT(" in path[i].prio.args.upper():
                    problems.append(
                        f"[{handler}]: RecordingClosed reads STAT(), which Asterisk blocks as a "
                        "dangerous function on the ARI path (an ERROR per call)")
    return problems


def all_problems(plan: Dialplan) -> list[str]:
    """Run every check; the recorder's dialplan must return an empty list."""
    checks = (
        check_labels_exist,
        check_mixmonitor_arguments,
        check_caller_text_never_reaches_sinks,
        check_status_checked_after_consent,
        check_mixmonitor_guarded,
        check_fail_closed_by_default,
        check_subroutines_return,
        check_hangup_handler_closes_recording,
    )
    return [problem for check in checks for problem in check(plan)]


# --- FILTER() as Asterisk implements it (funcs/func_strings.c, filter()) ---------------------


def filter_allowed(spec: str) -> frozenset[str]:
    """The set of characters ``FILTER(<spec>,...)`` keeps, expanding ranges like Asterisk.

    A ``-`` after a character starts a range; a trailing ``x-`` is the range x..x (the dash is
    NOT kept), which is why the recorder's specs put a literal ``-`` first. Backslash escapes
    are not supported here (the recorder's specs use none).
    """
    if "\\" in spec:
        raise ValueError("backslash escapes are not modelled")
    allowed: set[str] = set()
    i = 0
    while i < len(spec):
        c1 = spec[i]
        i += 1
        if i < len(spec) and spec[i] == "-":
            c2 = spec[i + 1] if i + 1 < len(spec) else c1
            i += 2 if i + 1 < len(spec) else 1
            code = ord(c1)
            while True:
                allowed.add(chr(code))
                if code == ord(c2):
                    break
                code = (code + 1) % 256
        else:
            allowed.add(c1)
    allowed.discard("\0")
    return frozenset(allowed)

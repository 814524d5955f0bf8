"""Static checks of dialplan/recorder.conf (and the FreePBX sample) without running Asterisk."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from dialplan_checker import (
    Dialplan,
    DialplanSyntaxError,
    all_problems,
    check_caller_text_never_reaches_sinks,
    check_fail_closed_by_default,
    check_hangup_handler_closes_recording,
    check_labels_exist,
    check_mixmonitor_arguments,
    check_mixmonitor_guarded,
    check_status_checked_after_consent,
    check_subroutines_return,
    filter_allowed,
    parse,
    paths,
)

ROOT = Path(__file__).resolve().parents[2]
RECORDER_CONF = ROOT / "dialplan" / "recorder.conf"
FREEPBX_SAMPLE = ROOT / "etc" / "extensions_custom.conf"
VANILLA_SAMPLE = ROOT / "etc" / "extensions.conf"


@pytest.fixture(scope="module")
def text() -> str:
    """The shipped recorder.conf."""
    return RECORDER_CONF.read_text(encoding="utf-8")


def _mutate(text: str, old: str, new: str) -> str:
    assert old in text, f"mutation anchor {old!r} not found"
    return text.replace(old, new, 1)


class TestShippedDialplan:
    """The shipped recorder.conf passes every check."""

    def test_defines_the_documented_subroutines(self, text: str) -> None:
        """recorder.conf defines the public and internal contexts the docs name."""
        plan = parse(text)

        assert {
            "recorder-consent",
            "recorder-consent-agi",
            "recorder-consent-callee",
            "recorder-consent-reset",
            "recorder-consent-unavailable",
            "recorder-consent-apply",
            "recorder-consent-hangup",
        } == set(plan.contexts)

    def test_passes_every_check(self, text: str) -> None:
        """No check reports a problem on the shipped file."""
        assert [] == all_problems(parse(text))

    def test_mixmonitor_runs_in_exactly_one_place(self, text: str) -> None:
        """MixMonitor appears once, in the shared apply subroutine, with the fixed id option."""
        mixmonitors = [p for p in parse(text).priorities() if p.app == "MixMonitor"]

        assert [
            (
                "recorder-consent-apply",
                "${RECORDER_FILE},${RECORDER_MIXMON_OPTIONS}i(RECORDER_MMID)",
            )
        ] == [(p.context, p.args) for p in mixmonitors]

    def test_stasis_passes_policy_and_language_to_the_configured_app(self, text: str) -> None:
        """Stasis runs the app named by RECORDER_APP (default consent-recorder) with the args."""
        plan = parse(text)
        stasis = [p for p in plan.priorities() if p.app == "Stasis"]
        defaults = [
            p.args for p in plan.priorities() if "RECORDER_APP_NAME=consent-recorder" in p.args
        ]

        assert [
            "${RECORDER_APP_NAME},policy=${ARG1},lang=${ARG2},linkedid=${CHANNEL(linkedid)}"
        ] == [p.args for p in stasis]
        assert [
            '$["${RECORDER_APP_NAME}" = ""]?Set(RECORDER_APP_NAME=consent-recorder)'
        ] == defaults

    def test_agi_variant_calls_the_fastagi_url(self, text: str) -> None:
        """The AGI variant calls agi://host:port/consent?policy&lang, 127.0.0.1:4573 by default."""
        plan = parse(text)
        agi = [p.args for p in plan.priorities() if p.app == "AGI"]
        execifs = [
            p.args for p in plan.priorities() if p.app == "ExecIf" and "AGI_TARGET" in p.args
        ]

        assert [
            "agi://${RECORDER_AGI_TARGET}:${RECORDER_AGI_TARGET_PORT}/consent?policy=${ARG1}&lang=${ARG2}"
        ] == agi
        assert [
            '$["${RECORDER_AGI_TARGET}" = ""]?Set(RECORDER_AGI_TARGET=127.0.0.1)',
            '$["${RECORDER_AGI_TARGET_PORT}" = ""]?Set(RECORDER_AGI_TARGET_PORT=4573)',
        ] == execifs

    def test_callee_subroutine_uses_the_agi_variant(self, text: str) -> None:
        """The outbound U() subroutine runs the AGI variant with its two arguments."""
        prios = parse(text).contexts["recorder-consent-callee"]["s"]

        assert [
            ("NoOp", None),
            ("Set", "RECORDER_LEG=callee"),
            ("Gosub", "recorder-consent-agi,s,1(${ARG1},${ARG2})"),
            ("Return", ""),
        ] == [(p.app, p.args if p.app != "NoOp" else None) for p in prios]

    def test_outputs_are_cleared_before_each_decision(self, text: str) -> None:
        """The reset subroutine clears every output before Stasis/AGI: stale values never record."""
        plan = parse(text)
        cleared = {p.args for p in plan.contexts["recorder-consent-reset"]["s"] if p.app == "Set"}

        assert {
            "RECORDER_DECISION=",
            "RECORDER_OUTCOME=",
            "RECORDER_DECISION_ID=",
            "RECORDER_FILE=",
            "RECORDER_MIXMON_OPTIONS=",
            "RECORDER_MODE=",
            "RECORDER_MMID=",
            "RECORDER_MMFILE=",
            "RECORDER_STATUS=",
            "RECORDER_RECORDING=no",
            "RECORDER_DRIVER=${ARG1}",
        } == cleared
        for context in ("recorder-consent", "recorder-consent-agi"):
            apps = [p.app for p in plan.contexts[context]["s"]]
            consent = "Stasis" if context == "recorder-consent" else "AGI"
            assert apps.index("Gosub") < apps.index(consent)

    def test_every_variable_the_controller_sets_is_cleared_first(self, text: str) -> None:
        """Each RECORDER_* the flow or the driver core hands back is reset before each use."""
        plan = parse(text)
        cleared = {
            p.args.partition("=")[0]
            for p in plan.contexts["recorder-consent-reset"]["s"] if p.app == "Set"
        }
        package = Path(__file__).resolve().parents[2] / "asterisk_recorder"
        sources = (package / "flow" / "machine.py").read_text() + (
            package / "drivers" / "ports.py"
        ).read_text()
        handed_back = set(re.findall(r'\("(RECORDER_[A-Z_]+)",', sources))

        assert {"RECORDER_DECISION", "RECORDER_MODE"} <= handed_back
        assert set() == handed_back - cleared

    def test_no_caller_controlled_variable_anywhere(self, text: str) -> None:
        """recorder.conf reads no caller-controlled variable at all, not even in events or logs."""
        code = "\n".join(p.args for p in parse(text).priorities())

        assert [] == re.findall(
            r"\$\{(CALLERID|CONNECTEDLINE|DNID|EXTEN|RDNIS|REDIRECTING|PJSIP_HEADER|SIP_HEADER)",
            code,
        )

    def test_fail_open_records_only_with_literal_yes(self, text: str) -> None:
        """With the fail-open branch forced, the path records a dialplan-built fail-open file."""
        plan = parse(text)
        opened = list(
            paths(
                plan,
                "recorder-consent-unavailable",
                oracle=lambda p: True if "FAIL_OPEN}" in p.args else None,
            )
        )
        sets = [s.prio.args for s in opened[0] if s.prio.app == "Set"]

        assert 1 == len(opened)
        assert "RECORDER_MIXMON_OPTIONS=b" in sets
        assert "RECORDER_DECISION=record" in sets
        assert (
            "RECORDER_FILE=${RECORDER_FAIL_OPEN_PATH}/${STRFTIME(${EPOCH},UTC,%Y/%m/%d)}/failopen-${UNIQUEID}.wav"
            in sets
        )

    def test_periodic_beep_needs_the_hook_module(self, text: str) -> None:
        """MixMonitor with B(n) runs only when IFMODULE(func_periodic_hook.so) is 1."""
        b_test = (
            "$[${LEN(${STRREPLACE(RECORDER_MIXMON_OPTIONS,B)})} = "
            "${LEN(${RECORDER_MIXMON_OPTIONS})}]?start"
        )
        module_test = '$["${IFMODULE(func_periodic_hook.so)}" != "1"]?nobeep'
        prefixes = {
            tuple(path[: [s.prio.app for s in path].index("MixMonitor")])
            for path in paths(parse(text), "recorder-consent-apply")
            if any(s.prio.app == "MixMonitor" for s in path)
        }
        recording_paths = [
            {s.prio.args: s.branch for s in prefix if s.prio.app == "GotoIf"} for prefix in prefixes
        ]

        assert 2 == len(recording_paths)
        for branches in recording_paths:
            assert branches[b_test] is True or branches[module_test] is False


class TestCheckerCatchesDefects:
    """Each check fails on a dialplan that breaks its rule (a check must be able to fail)."""

    @pytest.mark.parametrize(
        ("old", "new", "check", "expected"),
        [
            pytest.param(
                "MixMonitor(${RECORDER_FILE},",
                "MixMonitor(${CALLERID(num)}.wav,",
                check_mixmonitor_arguments,
                "MixMonitor uses ['CALLERID']",
                id="callerid-in-mixmonitor",
            ),
            pytest.param(
                "${RECORDER_MIXMON_OPTIONS}i(RECORDER_MMID))",
                "${RECORDER_MIXMON_OPTIONS}i(RECORDER_MMID),/bin/rm ${RECORDER_FILE})",
                check_mixmonitor_arguments,
                "post-recording command",
                id="post-command",
            ),
            pytest.param(
                "MixMonitor(${RECORDER_FILE},",
                "MixMonitor(${RECORDER_DECISION_ID}.wav,",
                check_mixmonitor_arguments,
                "MixMonitor uses ['RECORDER_DECISION_ID']",
                id="other-variable-in-mixmonitor",
            ),
            pytest.param(
                "Set(RECORDER_FILE=${RECORDER_FAIL_OPEN_PATH}/",
                "Set(RECORDER_FILE=${RECORDER_FAIL_OPEN_PATH}/${CALLERID(num)}/",
                check_caller_text_never_reaches_sinks,
                "caller-controlled ['CALLERID'] reaches Set",
                id="callerid-in-file-path",
            ),
            pytest.param(
                " same => n,Set(RECORDER_MIXMON_OPTIONS=b)\n",
                " same => n,Set(WHO=${CALLERID(name)})\n"
                " same => n,Set(RECORDER_MIXMON_OPTIONS=b${WHO})\n",
                check_caller_text_never_reaches_sinks,
                "caller-controlled ['WHO'] reaches Set",
                id="callerid-laundered-through-a-variable",
            ),
            pytest.param(
                " same => n,Set(RECORDER_STATUS=${STASISSTATUS})\n",
                " same => n,Set(RECORDER_STATUS=${STASISSTATUS})\n"
                " same => n,Gosub(recorder-consent-apply,s,1)\n",
                check_status_checked_after_consent,
                "runs before STASISSTATUS is checked",
                id="apply-before-status-check",
            ),
            pytest.param(
                '$["${AGISTATUS}" = "SUCCESS"]?decided)',
                '$["${AGISTATUS}" != "FAILURE"]?decided)',
                check_status_checked_after_consent,
                "status test is not AGISTATUS = SUCCESS",
                id="agi-status-negative-test",
            ),
            pytest.param(
                " same => n,Gosub(recorder-consent-unavailable,s,1(ari,${STASISSTATUS}))\n",
                " same => n,Gosub(recorder-consent-apply,s,1)\n",
                check_status_checked_after_consent,
                "a failed STASISSTATUS path can record",
                id="failed-stasis-records",
            ),
            pytest.param(
                '$["${RECORDER_FAIL_OPEN}" = "yes"]?failopen)',
                '$["${RECORDER_FAIL_OPEN}" != "no"]?failopen)',
                check_fail_closed_by_default,
                "not an exact 'yes'",
                id="fail-open-by-default",
            ),
            pytest.param(
                " same => n,UserEvent(RecorderUnavailable,"
                "Driver: ${ARG1},Status: ${ARG2},FailOpen: no)\n",
                "",
                check_fail_closed_by_default,
                "raises no UserEvent(RecorderUnavailable)",
                id="silent-gap",
            ),
            pytest.param(
                "exten => s,1,Set(RECORDER_DECISION=skip)\n",
                "exten => s,1,Set(RECORDER_DECISION=record)\n",
                check_fail_closed_by_default,
                "does not leave RECORDER_DECISION=skip",
                id="unavailable-says-record",
            ),
            pytest.param(
                '?skip)\n same => n,GotoIf($["${RECORDER_CHECK}" != "record"]?skip)',
                "?skip)",
                check_mixmonitor_guarded,
                "decision is exactly record",
                id="decision-not-checked",
            ),
            pytest.param(
                " same => n,GotoIf($[${LEN(${STRREPLACE(RECORDER_CHECK,..)})}"
                " != ${LEN(${RECORDER_CHECK})}]?reject)\n",
                "",
                check_mixmonitor_guarded,
                "RECORDER_FILE has no ..",
                id="dotdot-not-checked",
            ),
            pytest.param(
                "?decided)\n same => n,Gosub(recorder-consent-unavailable,s,1(agi",
                "?decidd)\n same => n,Gosub(recorder-consent-unavailable,s,1(agi",
                check_labels_exist,
                "label 'decidd' does not exist",
                id="missing-label",
            ),
            pytest.param(
                " same => n(done),Return()\n",
                " same => n(done),NoOp(end)\n",
                check_subroutines_return,
                "ends without Return()",
                id="missing-return",
            ),
            pytest.param(
                " same => n,StopMixMonitor(${RECORDER_MMID})\n",
                "",
                check_hangup_handler_closes_recording,
                "RecordingClosed is raised before StopMixMonitor",
                id="closed-before-stop",
            ),
            pytest.param(
                "MixMonitorID: ${RECORDER_MMID})\n same => n(done)",
                "MixMonitorID: ${RECORDER_MMID},Size: ${STAT(s,${RECORDER_MMFILE})})\n"
                " same => n(done)",
                check_hangup_handler_closes_recording,
                "RecordingClosed reads STAT()",
                id="closed-reads-stat",
            ),
            pytest.param(
                "i(RECORDER_MMID))",
                ")",
                check_hangup_handler_closes_recording,
                "MixMonitor without i(RECORDER_MMID)",
                id="no-mixmonitor-id",
            ),
        ],
    )
    def test_check_reports_the_defect(
        self, text: str, old: str, new: str, check: Callable[[Dialplan], list[str]], expected: str
    ) -> None:
        """A mutated recorder.conf makes the matching check report the defect."""
        problems = check(parse(_mutate(text, old, new)))

        assert any(expected in p for p in problems), problems


class TestParser:
    """The parser reads extensions.conf syntax and refuses what it cannot read."""

    def test_reads_labels_numbers_and_comments(self) -> None:
        """exten/same lines, n-priorities, labels, escaped semicolons and comments parse."""
        plan = parse(
            "[ctx] ; comment\n"
            "exten => s,1,NoOp(a\\;b) ; trailing comment\n"
            " same => n(here),Set(X=1)\n"
            ";-- block\ncomment --;\n"
            " same => n,Return()\n"
        )

        assert [(1, None, "NoOp", "a\\;b"), (2, "here", "Set", "X=1"), (3, None, "Return", "")] == [
            (p.number, p.label, p.app, p.args) for p in plan.contexts["ctx"]["s"]
        ]

    @pytest.mark.parametrize(
        ("source", "message"),
        [
            ("exten => s,1,NoOp()\n", "outside any context"),
            ("[c]\n same => n,NoOp()\n", "before any 'exten =>'"),
            ("[c]\nexten => s,x,NoOp()\n", "bad priority"),
            ("[c]\nexten => s,1(a),NoOp()\n same => n(a),NoOp()\n", "duplicate label"),
            ("[c]\nexten => s,1,NoOp(\n", "without a closing"),
            ("[c\n", "unterminated context"),
        ],
    )
    def test_rejects_malformed_lines(self, source: str, message: str) -> None:
        """Malformed dialplan raises DialplanSyntaxError naming the problem."""
        with pytest.raises(DialplanSyntaxError, match=re.escape(message)):
            parse(source)


def _specs(text: str) -> list[str]:
    return re.findall(r"\$\{FILTER\(([^,]+),", text)


class TestValueValidation:
    """The FILTER() sets in recorder.conf keep what the controller sends and nothing else."""

    def test_filter_specs_expand_to_the_intended_sets(self, text: str) -> None:
        """Each FILTER spec in recorder.conf expands (as Asterisk does) to the documented set."""
        digits = set("0123456789")
        lower = set("abcdefghijklmnopqrstuvwxyz")
        upper = {c.upper() for c in lower}

        assert ["a-z", "-0-9A-Za-z", "-./0-9A-Z_a-z", "0-9A-Za-z()"] == _specs(text)
        assert lower == filter_allowed("a-z")
        assert digits | lower | upper | {"-"} == filter_allowed("-0-9A-Za-z")
        assert digits | lower | upper | set("-./_") == filter_allowed("-./0-9A-Z_a-z")
        assert digits | lower | upper | set("()") == filter_allowed("0-9A-Za-z()")

    def test_trailing_dash_is_not_a_literal_dash(self) -> None:
        """Asterisk reads a trailing 'x-' as the range x..x, so the dash must come first."""
        assert {".", "_"} == filter_allowed("._-")

    @pytest.mark.parametrize(
        "value",
        [
            "/var/spool/asterisk/monitor/recorder/2026/11/23/0b8f6a8e-1d3c-4a57-9d55-2f4f1c7b9e10.wav",
            "/var/spool/asterisk/monitor/recorder/failopen/2026/11/23/failopen-1763900000.42.wav",
        ],
    )
    def test_controller_paths_pass(self, value: str) -> None:
        """A path built by the controller (or the fail-open branch) keeps every character."""
        allowed = filter_allowed("-./0-9A-Z_a-z")

        assert value == "".join(c for c in value if c in allowed)

    @pytest.mark.parametrize(
        "value",
        [
            "/tmp/a,b.wav",
            "/tmp/x.wav,b,/bin/sh -c id",
            "/tmp/a).wav",
            "/tmp/${SHELL(id)}.wav",
            "/tmp/a|b.wav",
            '/tmp/"q".wav',
            "/tmp/a'b.wav",
            "/tmp/a\nb.wav",
            "/tmp/a\0b.wav",
            "/tmp/a b.wav",
            "/tmp/\u00e9.wav",
            "/tmp/\udcff.wav",
        ],
    )
    def test_hostile_file_values_lose_characters_so_they_are_rejected(self, value: str) -> None:
        """Commas, parens, ${...}, pipes, quotes, newlines, NUL, spaces and non-ASCII never pass."""
        allowed = filter_allowed("-./0-9A-Z_a-z")

        assert len(value) != len("".join(c for c in value if c in allowed))

    @pytest.mark.parametrize(
        "value", ["b,/bin/sh", "b|p", "B(15),x", "b${X}", "b p", "b\n", "r(/etc/x)"]
    )
    def test_hostile_option_values_lose_characters_so_they_are_rejected(self, value: str) -> None:
        """Options with a comma, $, space, slash or newline never pass the options check."""
        allowed = filter_allowed("0-9A-Za-z()")

        assert len(value) != len("".join(c for c in value if c in allowed))

    @pytest.mark.parametrize("value", ["bB(15)", "bpB(30)", "b", ""])
    def test_controller_options_pass(self, value: str) -> None:
        """The options the controller builds (b, p, B(n)) keep every character."""
        allowed = filter_allowed("0-9A-Za-z()")

        assert value == "".join(c for c in value if c in allowed)

    def test_path_traversal_and_length_limits_are_checked(self, text: str) -> None:
        """recorder.conf refuses '..', relative paths and over-long values before MixMonitor."""
        apply = "\n".join(p.args for p in parse(text).contexts["recorder-consent-apply"]["s"])

        assert "${LEN(${STRREPLACE(RECORDER_CHECK,..)})} != ${LEN(${RECORDER_CHECK})}" in apply
        assert '"${RECORDER_CHECK:0:1}" != "/"' in apply
        assert "${LEN(${RECORDER_FILE})} > 255" in apply
        assert "${LEN(${RECORDER_MIXMON_OPTIONS})} > 32" in apply


@pytest.mark.parametrize("sample", [FREEPBX_SAMPLE, VANILLA_SAMPLE], ids=lambda p: p.name)
def test_sample_dialplans_pass_the_safety_checks(sample: Path, text: str) -> None:
    """The etc/ samples, recorder.conf included, pass the label, MixMonitor and caller checks."""
    source = sample.read_text(encoding="utf-8")
    plan = parse(source.replace("#include recorder.conf", text))

    assert "#include recorder.conf" in source
    assert [] == (
        check_labels_exist(plan)
        + check_mixmonitor_arguments(plan)
        + check_caller_text_never_reaches_sinks(plan)
    )


def test_freepbx_custom_destination_returns() -> None:
    """The FreePBX custom destination is a subroutine (Return=Yes) that runs the AGI variant."""
    plan = parse(FREEPBX_SAMPLE.read_text(encoding="utf-8"))

    assert [] == check_subroutines_return(plan)
    assert ["recorder-consent-agi,s,1"] == [
        p.args for p in plan.contexts["recorder-freepbx"]["s"] if p.app == "Gosub"
    ]

"""recorder.conf running in a real, private Asterisk 22 (skipped when no Asterisk is installed).

A throwaway Asterisk (own config, run, spool and log directories under tmp; no SIP, no HTTP,
no AMI; Local channels only) loads dialplan/recorder.conf. A scripted FastAGI server on
127.0.0.1 plays the controller's part (the same SET VARIABLE contract), including a compromised
controller sending hostile values. Which applications ran, with which substituted arguments, is
read from Asterisk's own verbose log ("Executing [...] App(...)").

Point ``ASTERISK_BIN`` at an asterisk binary (or put one on PATH) to run these tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parents[2]
ASTERISK = os.environ.get("ASTERISK_BIN") or shutil.which("asterisk")

pytestmark = pytest.mark.skipif(
    ASTERISK is None, reason="no Asterisk binary (set ASTERISK_BIN to run recorder.conf live)"
)

NOLOAD = [
    # Modules that would listen on a network port by default, or need hardware.
    "chan_iax2.so",
    "chan_unistim.so",
    "chan_mgcp.so",
    "chan_skinny.so",
    "chan_console.so",
    "chan_alsa.so",
    "chan_oss.so",
    "pbx_dundi.so",
    "res_stun_monitor.so",
    "res_xmpp.so",
    "res_phoneprov.so",
    "res_smdi.so",
]
"""Everything else autoloads: no http.conf, manager.conf or pjsip.conf means no listener."""

TEST_DIALPLAN = """
[globals]

#include recorder.conf

; The channels are not answered before the consent step (AGI and Stasis work on a ringing
; channel, and Answer() on a silent Local channel costs 500 ms); Dial answers them. The case id
; travels as the policy argument to the scripted FastAGI server.
[t-agi]
exten => _X!,1,Set(RECORDER_AGI_PORT=${AGI_TEST_PORT})
 same => n,Gosub(recorder-consent-agi,s,1(case${EXTEN},))
 same => n,@RESULT@
 same => n,Dial(Local/s@t-far/n,5)
 same => n,Hangup()

[t-agi-down]
exten => s,1,Set(RECORDER_AGI_PORT=${AGI_CLOSED_PORT})
 same => n,Gosub(recorder-consent-agi,s,1(,))
 same => n,@RESULT:down@
 same => n,Hangup()

[t-ari-down]
exten => s,1,Gosub(recorder-consent,s,1(,en))
 same => n,@RESULT:ari@
 same => n,Hangup()

[t-ari-up]
exten => s,1,Set(RECORDER_POLICY=opt_in)
 same => n,Gosub(recorder-consent,s,1(,fr))
 same => n,@RESULT:ariup@
 same => n,Dial(Local/s@t-far/n,5)
 same => n,Hangup()

[t-fail-open]
exten => s,1,Set(RECORDER_FAIL_OPEN=yes)
 same => n,Set(RECORDER_FAIL_OPEN_DIR=${FAIL_OPEN_DIR})
 same => n,Gosub(recorder-consent,s,1(,en))
 same => n,@RESULT:failopen@
 same => n,Dial(Local/s@t-far/n,5)
 same => n,Hangup()

[t-outbound]
exten => _X!,1,Set(__RECORDER_AGI_PORT=${AGI_TEST_PORT})
 same => n,Dial(Local/s@t-far/n,5,U(recorder-consent-callee^case${EXTEN}^en))
 same => n,Log(NOTICE,RESULT case=${EXTEN} caller_recording=${RECORDER_RECORDING})
 same => n,Hangup()

[t-twice]
exten => _X!,1,Set(RECORDER_AGI_PORT=${AGI_TEST_PORT})
 same => n,Gosub(recorder-consent-agi,s,1(case${EXTEN},))
 same => n,Gosub(recorder-consent-agi,s,1(case${EXTEN},))
 same => n,@RESULT@
 same => n,Dial(Local/s@t-far/n,5)
 same => n,Hangup()

[t-far]
exten => s,1,Answer()
 same => n,Echo(1)
 same => n,Hangup()

[t-caller]
exten => s,1,Wait(0.5)
 same => n,Hangup()

; A marker call after each test call: once its line is in the log, every line the test call
; queued before it is too (one logger thread writes them in order).
[t-mark]
exten => _X!,1,Log(NOTICE,MARK ${EXTEN})
 same => n,Hangup()
"""

SAMPLE_PASSWORD = "CHANGE-ME-to-a-long-random-secret"
ARI_PASSWORD = "test-only-secret"

RESULT = (
    "Log(NOTICE,RESULT case={case} decision=${{RECORDER_DECISION}} outcome=${{RECORDER_OUTCOME}}"
    " recording=${{RECORDER_RECORDING}} status=${{RECORDER_STATUS}})"
)
"""One log line per call with the outputs of the subroutine."""


def _test_dialplan(globals_: str) -> str:
    text = TEST_DIALPLAN.replace("[globals]\n", "[globals]\n" + globals_)
    text = text.replace("@RESULT@", RESULT.format(case="${EXTEN}"))
    for case in ("down", "ari", "ariup", "failopen"):
        text = text.replace(f"@RESULT:{case}@", RESULT.format(case=case))
    return text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Asterisk:
    """A private Asterisk process and the helpers the tests use."""

    base: Path
    process: subprocess.Popen[bytes]
    agi_port: int
    closed_port: int
    http_port: int
    _offset: int = 0

    @property
    def conf(self) -> Path:
        return self.base / "etc" / "asterisk.conf"

    @property
    def log(self) -> Path:
        return self.base / "log" / "full"

    def cli(self, command: str) -> str:
        """Run one CLI command against this instance."""
        assert ASTERISK is not None
        result = subprocess.run(
            [ASTERISK, "-C", str(self.conf), "-rx", command],
            capture_output=True,
            text=True,
            check=False,
            timeout=20,
        )
        return result.stdout

    def channel_count(self) -> int:
        match = re.search(r"(\d+) active channel", self.cli("core show channels count"))
        return int(match.group(1)) if match else -1

    async def call(self, destination: str) -> list[str]:
        """Originate a Local channel into ``destination``; return the log lines of the call."""
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        self.cli(f"channel originate Local/{destination} extension s@t-caller")
        started = f"Executing [{destination}:1]"
        await self._until_logged(started, f"call to {destination} never started")
        deadline = time.monotonic() + 20
        while self.channel_count() != 0:
            if time.monotonic() > deadline:
                raise AssertionError(f"call to {destination} did not end")
            await asyncio.sleep(0.05)
        marker = str(uuid.uuid4().int % 10**12).rjust(12, "0")
        self.cli(f"channel originate Local/{marker}@t-mark application NoOp")
        lines = await self._until_logged(f"MARK {marker}", "the log writer never caught up")
        mark_channel = f"Local/{marker}@t-mark"
        return lines[: next(i for i, line in enumerate(lines) if mark_channel in line)]

    async def _until_logged(self, text: str, failure: str) -> list[str]:
        """Wait (up to 20 s) until ``text`` is in the log after the call's offset; its lines."""
        deadline = time.monotonic() + 20
        while True:
            lines = await asyncio.to_thread(self._lines_since_offset)
            if any(text in line for line in lines):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError(failure + ":\n" + "\n".join(lines[-20:]))
            await asyncio.sleep(0.02)

    def _lines_since_offset(self) -> list[str]:
        if not self.log.exists():
            return []
        with self.log.open("rb") as handle:
            handle.seek(self._offset)
            return handle.read().decode("utf-8", "replace").splitlines()


def _executed(lines: list[str], app: str) -> list[str]:
    """Substituted arguments of every ``app`` Asterisk executed, in order."""
    pattern = re.compile(
        r"Executing \[[^\]]*\] " + re.escape(app) + r'\("[^"]*", "(.*)"\) in new stack'
    )
    return [m.group(1) for line in lines if (m := pattern.search(line))]


def _result(lines: list[str]) -> dict[str, str]:
    for line in lines:
        if "RESULT case=" in line and "Executing" not in line:
            text = line[line.index("RESULT ") + 7 :]
            return dict(part.split("=", 1) for part in text.split() if "=" in part)
    raise AssertionError("no RESULT line:\n" + "\n".join(lines[-40:]))


def _agi_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class ScriptedController:
    """A FastAGI server that sets the variables scripted for each case id."""

    cases: dict[str, dict[str, str]] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        env: dict[str, str] = {}
        while line := (await reader.readline()).decode().rstrip("\n"):
            key, _, value = line.partition(": ")
            env[key] = value
        script = env.get("agi_network_script", "")
        case = re.search(r"policy=case(\d+)", script)
        self.seen.append(script)
        for name, value in self.cases.get(case.group(1) if case else "", {}).items():
            writer.write(f"SET VARIABLE {name} {_agi_quote(value)}\n".encode())
            await writer.drain()
            reply = await reader.readline()
            assert reply.startswith(b"200 result=1"), reply
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@pytest.fixture(scope="module")
def asterisk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Asterisk]:
    """A private Asterisk with recorder.conf and the test contexts loaded."""
    with _running_asterisk(tmp_path_factory.mktemp("ast"), NOLOAD) as ast:
        yield ast


@pytest.fixture(scope="module")
def asterisk_without_beep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Asterisk]:
    """The same, with func_periodic_hook not loaded (MixMonitor's B(n) cannot work)."""
    noload = [*NOLOAD, "func_periodic_hook.so"]
    with _running_asterisk(tmp_path_factory.mktemp("ast-nobeep"), noload) as ast:
        yield ast


@contextlib.contextmanager
def _running_asterisk(
    base: Path, noload: list[str], extra_files: dict[str, str] | None = None
) -> Iterator[Asterisk]:
    assert ASTERISK is not None
    etc = base / "etc"
    etc.mkdir()
    for sub in ("run", "log", "spool", "lib"):
        (base / sub).mkdir()
    prefix = Path(ASTERISK).resolve().parent.parent
    moddir = prefix / "lib" / "asterisk" / "modules"
    # Read-only data (XML documentation, which the core needs to start) from the installation.
    datadir = prefix / "var" / "lib" / "asterisk"
    agi_port, closed_port = _free_port(), _free_port()
    (etc / "asterisk.conf").write_text(
        "[directories]\n"
        f"astetcdir => {etc}\nastmoddir => {moddir}\nastvarlibdir => {base / 'lib'}\n"
        f"astdbdir => {base / 'lib'}\nastkeydir => {base / 'lib'}\nastdatadir => {datadir}\n"
        f"astagidir => {base / 'lib'}\nastspooldir => {base / 'spool'}\n"
        f"astrundir => {base / 'run'}\nastlogdir => {base / 'log'}\n"
        "[options]\nverbose = 3\nnofork = yes\n"
    )
    (etc / "modules.conf").write_text(
        "[modules]\nautoload = yes\n" + "".join(f"noload => {m}\n" for m in noload)
    )
    (etc / "logger.conf").write_text("[logfiles]\nfull => notice,warning,error,verbose(3)\n")
    (etc / "recorder.conf").write_text((ROOT / "dialplan" / "recorder.conf").read_text())
    # The shipped samples, with a test password and a free port.
    http_port = _free_port()
    ari = (ROOT / "etc" / "ari.conf").read_text()
    (etc / "ari.conf").write_text(ari.replace(SAMPLE_PASSWORD, ARI_PASSWORD))
    http = (ROOT / "etc" / "http.conf").read_text()
    assert "bindport = 8088" in http  # never the demo Asterisk's port: always a free one
    (etc / "http.conf").write_text(http.replace("bindport = 8088", f"bindport = {http_port}"))
    globals_ = (
        f"AGI_TEST_PORT={agi_port}\nAGI_CLOSED_PORT={closed_port}\n"
        f"FAIL_OPEN_DIR={base / 'failopen'}\n"
    )
    (etc / "extensions.conf").write_text(_test_dialplan(globals_))
    for name, content in (extra_files or {}).items():
        (etc / name).write_text(content)
    process = subprocess.Popen(
        [ASTERISK, "-C", str(etc / "asterisk.conf"), "-f", "-n"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ast = Asterisk(base, process, agi_port, closed_port, http_port)
    try:
        deadline = time.monotonic() + 30
        while "fully booted" not in ast.cli("core waitfullybooted").lower():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("private Asterisk did not boot")
            time.sleep(0.2)
        yield ast
    finally:
        ast.cli("core stop now")
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
async def controller(asterisk: Asterisk) -> AsyncIterator[ScriptedController]:
    """The scripted FastAGI 'controller' on the port the test dialplan points at."""
    scripted = ScriptedController()
    server = await asyncio.start_server(scripted.handle, "127.0.0.1", asterisk.agi_port)
    try:
        yield scripted
    finally:
        server.close()
        await server.wait_closed()


def _decision(path: Path, options: str = "b", decision: str = "record") -> dict[str, str]:
    return {
        "RECORDER_DECISION": decision,
        "RECORDER_OUTCOME": "recorded_notified"
        if decision == "record"
        else "not_recorded_opted_out",
        "RECORDER_DECISION_ID": path.stem,
        "RECORDER_FILE": str(path),
        "RECORDER_MIXMON_OPTIONS": options,
    }


async def test_record_decision_starts_mixmonitor_and_reports_the_closed_file(
    asterisk: Asterisk, controller: ScriptedController
) -> None:
    """record: MixMonitor gets exactly the controller's file and options, the file exists, and
    RecordingClosed follows StopMixMonitor without reading STAT()."""
    target = asterisk.base / "rec" / "2026" / "11" / "23" / f"{uuid.uuid4()}.wav"
    controller.cases["1"] = _decision(target, "bB(15)")

    lines = await asterisk.call("1@t-agi")

    assert [f"{target},bB(15)i(RECORDER_MMID)"] == _executed(lines, "MixMonitor")
    assert {"decision": "record", "recording": "yes", "status": "SUCCESS"}.items() <= _result(
        lines
    ).items()
    assert target.exists()
    closed = _executed(lines, "UserEvent")[-1]
    assert closed.startswith(f"RecordingClosed,DecisionId: {target.stem},File: {target},")
    assert "STAT" not in closed
    assert "Size" not in closed
    stops = _executed(lines, "StopMixMonitor")
    assert 1 == len(stops)


async def test_skip_decision_records_nothing(
    asterisk: Asterisk, controller: ScriptedController
) -> None:
    """skip: no MixMonitor, no file, the call still goes on to Dial."""
    target = asterisk.base / "rec" / f"{uuid.uuid4()}.wav"
    controller.cases["2"] = _decision(target, decision="skip")

    lines = await asterisk.call("2@t-agi")

    assert [] == _executed(lines, "MixMonitor")
    assert {"decision": "skip", "recording": "no"}.items() <= _result(lines).items()
    assert not target.exists()
    assert 1 == len(_executed(lines, "Dial"))


@pytest.mark.parametrize(
    "bad_file",
    [
        "/tmp/x.wav,b,rm -rf /",
        "/tmp/a).wav",
        "/tmp/${SHELL(id)}.wav",
        "/tmp/a|b.wav",
        '/tmp/"q".wav',
        "/tmp/a b.wav",
        "/tmp/../../etc/x.wav",
        "relative/x.wav",
        "/tmp/" + "a" * 300 + ".wav",
        "/tmp/\u00e9.wav",
    ],
    ids=[
        "comma",
        "paren",
        "dollar",
        "pipe",
        "quote",
        "space",
        "dotdot",
        "relative",
        "long",
        "utf8",
    ],
)
async def test_hostile_file_from_a_compromised_controller_is_refused(
    asterisk: Asterisk, controller: ScriptedController, bad_file: str
) -> None:
    """A hostile RECORDER_FILE never reaches MixMonitor: RecordingRejected, decision skip."""
    controller.cases["3"] = {**_decision(asterisk.base / "x.wav"), "RECORDER_FILE": bad_file}

    lines = await asterisk.call("3@t-agi")

    assert [] == _executed(lines, "MixMonitor")
    assert {"decision": "skip", "recording": "no"}.items() <= _result(lines).items()
    assert any(e.startswith("RecordingRejected,") for e in _executed(lines, "UserEvent"))


@pytest.mark.parametrize(
    "bad_options",
    ["b,/bin/touch /tmp/pwned", "b${SHELL(id)}", "b p", "r(/etc/x)"],
    ids=["post-command", "dollar", "space", "slash"],
)
async def test_hostile_options_are_refused(
    asterisk: Asterisk, controller: ScriptedController, bad_options: str
) -> None:
    """Options with a comma (post-recording shell command), $, space or / are refused."""
    controller.cases["4"] = _decision(asterisk.base / "rec" / f"{uuid.uuid4()}.wav", bad_options)

    lines = await asterisk.call("4@t-agi")

    assert [] == _executed(lines, "MixMonitor")
    assert any(e.startswith("RecordingRejected,") for e in _executed(lines, "UserEvent"))


async def test_decision_with_trailing_text_is_not_record(
    asterisk: Asterisk, controller: ScriptedController
) -> None:
    """RECORDER_DECISION must be exactly 'record' ('record,x' or 'recordx' are skip)."""
    for value in ("record,x", "recordx", 'x" | "1'):
        controller.cases["5"] = _decision(
            asterisk.base / "rec" / f"{uuid.uuid4()}.wav", decision=value
        )

        lines = await asterisk.call("5@t-agi")

        assert [] == _executed(lines, "MixMonitor"), value


async def test_controller_returning_no_decision_is_fail_closed(
    asterisk: Asterisk, controller: ScriptedController
) -> None:
    """A FastAGI session that sets nothing: not recorded, RecorderUnavailable NODECISION."""
    lines = await asterisk.call("6@t-agi")

    assert [] == _executed(lines, "MixMonitor")
    assert ["RecorderUnavailable,Driver: agi,Status: NODECISION,FailOpen: no"] == _executed(
        lines, "UserEvent"
    )
    assert {"decision": "skip", "outcome": "controller_unavailable"}.items() <= _result(
        lines
    ).items()
    assert ["consent?policy=case6&lang="] == controller.seen


async def test_unreachable_fastagi_is_fail_closed(asterisk: Asterisk) -> None:
    """FastAGI port closed: AGISTATUS=FAILURE, not recorded, RecorderUnavailable raised."""
    lines = await asterisk.call("s@t-agi-down")

    assert [] == _executed(lines, "MixMonitor")
    assert ["RecorderUnavailable,Driver: agi,Status: FAILURE,FailOpen: no"] == _executed(
        lines, "UserEvent"
    )
    assert {
        "decision": "skip",
        "outcome": "controller_unavailable",
        "status": "FAILURE",
    }.items() <= _result(lines).items()


async def test_stasis_app_not_registered_is_fail_closed(asterisk: Asterisk) -> None:
    """No ARI controller: Stasis fails at once, not recorded, RecorderUnavailable raised."""
    lines = await asterisk.call("s@t-ari-down")

    stasis = _executed(lines, "Stasis")
    assert 1 == len(stasis)
    assert stasis[0].startswith("consent-recorder,policy=,lang=en,linkedid=")
    assert [] == _executed(lines, "MixMonitor")
    assert ["RecorderUnavailable,Driver: ari,Status: FAILED,FailOpen: no"] == _executed(
        lines, "UserEvent"
    )
    assert {
        "decision": "skip",
        "outcome": "controller_unavailable",
        "status": "FAILED",
    }.items() <= _result(lines).items()


async def test_fail_open_records_to_the_fail_open_directory(asterisk: Asterisk) -> None:
    """RECORDER_FAIL_OPEN=yes: recorded under the fail-open directory, with a warning."""
    lines = await asterisk.call("s@t-fail-open")

    started = _executed(lines, "MixMonitor")
    assert 1 == len(started)
    assert started[0].startswith(str(asterisk.base / "failopen") + "/")
    assert started[0].endswith(".wav,bi(RECORDER_MMID)")
    assert await asyncio.to_thread(Path(started[0].split(",")[0]).exists)
    assert (
        "RecorderUnavailable,Driver: ari,Status: FAILED,FailOpen: yes"
        == _executed(lines, "UserEvent")[0]
    )
    assert any("RECORDING ANYWAY" in line for line in lines)


async def test_outbound_callee_hears_the_disclosure_and_is_recorded(
    asterisk: Asterisk, controller: ScriptedController
) -> None:
    """Dial U(recorder-consent-callee^...): the called channel runs the FastAGI consent step
    and MixMonitor runs on it; the caller's channel is left alone."""
    target = asterisk.base / "rec" / f"{uuid.uuid4()}.wav"
    controller.cases["7"] = _decision(target)

    lines = await asterisk.call("7@t-outbound")

    assert ["consent?policy=case7&lang=en"] == controller.seen
    assert [f"{target},bi(RECORDER_MMID)"] == _executed(lines, "MixMonitor")
    mixmonitor_line = next(line for line in lines if "MixMonitor(" in line)
    assert "t-far" in mixmonitor_line  # the called Local channel, not the caller
    assert await asyncio.to_thread(target.exists)
    assert _executed(lines, "UserEvent")[-1].startswith("RecordingClosed,")


async def test_second_consent_on_a_recorded_channel_asks_nothing(
    asterisk: Asterisk, controller: ScriptedController
) -> None:
    """Running the subroutine again on a channel already recording returns at once."""
    controller.cases["8"] = _decision(asterisk.base / "rec" / f"{uuid.uuid4()}.wav")

    lines = await asterisk.call("8@t-twice")

    assert 1 == len(controller.seen)
    assert 1 == len(_executed(lines, "MixMonitor"))
    assert {"decision": "record", "recording": "yes"}.items() <= _result(lines).items()


async def test_periodic_beep_without_its_module_records_nothing_and_keeps_the_call(
    asterisk_without_beep: Asterisk,
) -> None:
    """B(n) with func_periodic_hook not loaded: RecordingFailed, no MixMonitor, Dial still runs
    (MixMonitor itself would fail and Asterisk would hang the call up)."""
    scripted = ScriptedController()
    target = asterisk_without_beep.base / "rec" / f"{uuid.uuid4()}.wav"
    scripted.cases["9"] = _decision(target, "bB(15)")
    server = await asyncio.start_server(
        scripted.handle, "127.0.0.1", asterisk_without_beep.agi_port
    )
    try:
        lines = await asterisk_without_beep.call("9@t-agi")
    finally:
        server.close()
        await server.wait_closed()

    assert (
        "0"
        == asterisk_without_beep.cli("module show like func_periodic_hook")
        .strip()
        .splitlines()[-1]
        .split()[0]
    )
    assert [] == _executed(lines, "MixMonitor")
    assert any(e.startswith("RecordingFailed,") for e in _executed(lines, "UserEvent"))
    assert 1 == len(_executed(lines, "Dial"))


async def test_ari_decision_is_applied_after_continue(asterisk: Asterisk) -> None:
    """Over real ARI (the shipped ari.conf/http.conf): the app gets policy/lang/linkedid args and
    the RECORDER_POLICY channelvar, sets the decision, continues, and the dialplan records."""
    base = f"http://127.0.0.1:{asterisk.http_port}/ari"
    auth = {"api_key": f"asterisk-recorder:{ARI_PASSWORD}"}
    target = asterisk.base / "rec" / f"{uuid.uuid4()}.wav"
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{base}/events", params={**auth, "app": "consent-recorder"})
        try:
            call = asyncio.create_task(asterisk.call("s@t-ari-up"))
            while True:
                event = await ws.receive_json(timeout=10)
                if event["type"] == "StasisStart":
                    break
            channel = event["channel"]
            for name, value in _decision(target).items():
                async with session.post(
                    f"{base}/channels/{channel['id']}/variable",
                    params={**auth, "variable": name, "value": value},
                ) as response:
                    assert 204 == response.status
            async with session.post(
                f"{base}/channels/{channel['id']}/continue", params=auth
            ) as response:
                assert 204 == response.status
            lines = await call
        finally:
            await ws.close()

    assert ["policy=", "lang=fr"] == event["args"][:2]
    assert event["args"][2].startswith("linkedid=")
    assert "opt_in" == channel["channelvars"]["RECORDER_POLICY"]
    assert [f"{target},bi(RECORDER_MMID)"] == _executed(lines, "MixMonitor")
    assert {"decision": "record", "recording": "yes", "status": "SUCCESS"}.items() <= _result(
        lines
    ).items()
    assert _executed(lines, "UserEvent")[-1].startswith(
        f"RecordingClosed,DecisionId: {target.stem},"
    )


def test_shipped_samples_load_into_asterisk(tmp_path: Path) -> None:
    """etc/extensions.conf (with recorder.conf) and etc/pjsip.conf load without a config error:
    the demo context and the softphone endpoint exist."""
    sip_port = _free_port()
    assert "bind = 0.0.0.0:5060" in (ROOT / "etc" / "pjsip.conf").read_text()  # replaced below
    files = {
        "extensions.conf": (ROOT / "etc" / "extensions.conf").read_text(),
        "pjsip.conf": (ROOT / "etc" / "pjsip.conf")
        .read_text()
        .replace("bind = 0.0.0.0:5060", f"bind = 127.0.0.1:{sip_port}"),
    }
    with _running_asterisk(tmp_path, NOLOAD, files) as ast:
        dialplan = ast.cli("dialplan show recorder-demo")
        endpoint = ast.cli("pjsip show endpoint softphone")
        log = ast.log.read_text(errors="replace")

    assert [] == [
        line
        for line in log.splitlines()
        if "ERROR" in line and ("pbx_config" in line or "extensions.conf" in line)
    ]
    for exten in ("'100'", "'101'", "'102'", "'200'"):
        assert exten in dialplan
    assert "Endpoint:  softphone" in endpoint
    assert re.search(r"dtmf_mode\s+:\s+rfc4733", endpoint)
    assert re.search(r"context\s+:\s+recorder-demo", endpoint)

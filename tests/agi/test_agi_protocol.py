"""The sans-I/O AGI protocol: environment, command quoting, replies, connection states."""

from __future__ import annotations

from pathlib import Path

import pytest

from asterisk_recorder.agi.protocol import (
    MAX_COMMAND_BYTES,
    AgiConnection,
    AgiReply,
    ConnectionState,
    digit_from_result,
    format_command,
    parse_environment,
    parse_reply_line,
    quote_argument,
    split_command,
)
from asterisk_recorder.errors import (
    AgiArgumentError,
    AgiCommandError,
    AgiHangup,
    AgiProtocolError,
)
from asterisk_recorder.testing.agi_peer import load_transcript

ENV = (
    b"agi_network: yes\n"
    b"agi_network_script: consent?policy=opt_in&lang=fr%5FCA\n"
    b"agi_request: agi://127.0.0.1:4573/consent?policy=opt_in&lang=fr%5FCA\n"
    b"agi_channel: PJSIP/alice-00000001\n"
    b"agi_uniqueid: 1795449972.115\n"
    b"agi_callerid: 5551235\n"
    b"agi_calleridname: AMI Probe\n"
    b"agi_accountcode: \n"
    b"agi_arg_1: opt_out\n"
    b"agi_arg_2: de\n"
    b"\n"
)


def connected(env: bytes = ENV) -> AgiConnection:
    """Return a connection that has read ``env``."""
    conn = AgiConnection()
    conn.receive_data(env)
    assert conn.next_environment() is not None
    return conn


def reply_to(conn: AgiConnection, data: bytes) -> AgiReply | None:
    """Send a NOOP, feed ``data`` as Asterisk's answer, return the parsed reply."""
    conn.send_command("NOOP")
    conn.receive_data(data)
    return conn.next_reply()


class TestEnvironment:
    def test_fastagi_environment_exposes_channel_script_query_and_args(self) -> None:
        """A FastAGI block yields its fields, the script path, the decoded query and args."""
        env = connected().environment
        assert env is not None

        assert "PJSIP/alice-00000001" == env.channel
        assert "1795449972.115" == env.uniqueid
        assert env.network
        assert "consent" == env.script_path
        assert {"policy": "opt_in", "lang": "fr_CA"} == dict(env.query)
        assert ("opt_out", "de") == env.args
        assert "" == env.get("accountcode")
        assert "AMI Probe" == env.get("calleridname")

    @pytest.mark.parametrize("name", ["agi-granted-ami-originate", "agi-optout-ari-originate"])
    def test_real_asterisk_environment_blocks_parse(self, traces_dir: Path, name: str) -> None:
        """The environment blocks recorded from Asterisk 22.10.1 parse completely."""
        transcript = load_transcript(traces_dir / f"{name}.agi.txt")
        conn = AgiConnection()
        conn.receive_data(transcript.environment_bytes())
        env = conn.next_environment()

        assert env is not None
        assert "consent" == env.script_path
        assert "22.10.1" == env.get("version")
        assert () == env.args
        assert ConnectionState.IDLE == conn.state

    def test_environment_split_byte_by_byte_parses_the_same(self) -> None:
        """Feeding one byte at a time gives the same environment as one chunk."""
        conn = AgiConnection()
        env = None
        for byte in ENV:
            conn.receive_data(bytes([byte]))
            env = conn.next_environment()
            if env is not None:
                break

        assert env is not None
        assert connected().environment == env

    def test_crlf_line_endings_are_accepted(self) -> None:
        """Lines ending in CRLF parse like LF lines."""
        env = connected(ENV.replace(b"\n", b"\r\n")).environment

        assert env is not None
        assert "5551235" == env.get("callerid")

    def test_invalid_utf8_in_caller_name_is_replaced_not_raised(self) -> None:
        """Caller-controlled bytes that are not UTF-8 become U+FFFD."""
        env = connected(b"agi_request: x\nagi_calleridname: caf\xe9 \xff\n\n").environment

        assert env is not None
        assert "caf\ufffd \ufffd" == env.get("calleridname")

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (b"\n", "empty"),
            (b"hello\n\n", "not an AGI environment line"),
            (b"agi_request: x\nagi_request: y\n\n", "twice"),
            (b"agi_request: x\nagi_arg_2: b\n\n", "numbered"),
            (b"agi_channel: x\n\n", "agi_request"),
            (b"agi_request: a\x00b\n\n", "NUL"),
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "not an AGI environment line"),
        ],
    )
    def test_malformed_environment_raises_protocol_error(self, data: bytes, message: str) -> None:
        """Each malformed block raises AgiProtocolError naming the problem."""
        conn = AgiConnection()
        conn.receive_data(data)

        with pytest.raises(AgiProtocolError, match=message):
            conn.next_environment()
        assert ConnectionState.CLOSED == conn.state

    def test_injected_duplicate_caller_id_line_is_rejected(self) -> None:
        """A caller name carrying a newline and a second agi_callerid cannot override it."""
        with pytest.raises(AgiProtocolError, match="twice"):
            parse_environment(["agi_request: x", "agi_callerid: 1", "agi_callerid: 911"])

    def test_injected_argument_line_before_asterisk_fields_is_rejected(self) -> None:
        """``agi_arg_1`` followed by a fixed field was injected through a caller value."""
        with pytest.raises(AgiProtocolError, match="injected"):
            parse_environment(
                ["agi_request: x", "agi_calleridname: x", "agi_arg_1: never", "agi_callingpres: 0"]
            )

    def test_peer_closing_before_the_blank_line_is_a_protocol_error(self) -> None:
        """EOF in the middle of the environment raises AgiProtocolError."""
        conn = AgiConnection()
        conn.receive_data(b"agi_request: x\n")
        assert conn.next_environment() is None
        conn.receive_data(b"")

        with pytest.raises(AgiProtocolError, match="closed"):
            conn.next_environment()

    def test_overlong_line_is_rejected_before_it_is_complete(self) -> None:
        """A line longer than the limit fails without waiting for its newline."""
        conn = AgiConnection(max_line=100)
        conn.receive_data(b"agi_request: " + b"x" * 200)

        with pytest.raises(AgiProtocolError, match="longer"):
            conn.next_environment()

    def test_query_keeps_first_of_repeated_keys_and_decodes_escapes(self) -> None:
        """``?policy=a&policy=b`` keeps ``a``; ``%20`` and ``+`` decode to spaces."""
        env = parse_environment(
            ["agi_request: x", "agi_network_script: /consent?policy=a&policy=b&x=1%202+3"]
        )

        assert {"policy": "a", "x": "1 2 3"} == dict(env.query)
        assert "consent" == env.script_path


class TestCommands:
    def test_plain_arguments_are_sent_unquoted_like_the_real_trace(self) -> None:
        """``SET VARIABLE CONSENT granted`` is written exactly as the probe wrote it."""
        assert b"SET VARIABLE CONSENT granted\n" == format_command(
            "SET VARIABLE", "CONSENT", "granted"
        )

    def test_stream_file_quotes_escape_digits_like_the_real_trace(self) -> None:
        """``STREAM FILE hello-world "12"`` matches the Asterisk 22 transcript."""
        assert b'STREAM FILE hello-world "12"\n' == format_command(
            "STREAM FILE", "hello-world", "12", force_quote=(1,)
        )
        assert ["STREAM", "FILE", "hello-world", "12"] == split_command(
            'STREAM FILE hello-world "12"'
        )

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "two words",
            'say "hi"',
            "back\\slash",
            "trailing\\",
            '\\"',
            "tab\there",
            "${SHELL(rm -rf /)}",
            "a,b)|c",
            "../../etc/passwd",
            "x" * 1500,
        ],
    )
    def test_asterisk_parser_reads_back_every_quoted_argument(self, value: str) -> None:
        """Asterisk's parse_args (ported) splits the formatted line into the same arguments."""
        line = format_command("SET VARIABLE", "RECORDER_X", value).decode().rstrip("\n")

        assert ["SET", "VARIABLE", "RECORDER_X", value] == split_command(line)

    @pytest.mark.parametrize("value", ["a\nANSWER", "a\rb", "a\x00b", "\ud800"])
    def test_arguments_that_could_inject_a_command_are_refused(self, value: str) -> None:
        """NUL, CR, LF and lone surrogates raise AgiArgumentError; nothing is formatted."""
        with pytest.raises(AgiArgumentError):
            quote_argument(value)

    def test_line_longer_than_asterisk_buffer_is_refused(self) -> None:
        """A command line Asterisk would cut in two raises AgiArgumentError."""
        with pytest.raises(AgiArgumentError, match="second command"):
            format_command("SET VARIABLE", "X", "y" * MAX_COMMAND_BYTES)

    @pytest.mark.parametrize("command", ["answer", "EXEC MixMonitor", "ANSWER\nHANGUP", ""])
    def test_command_words_must_be_fixed_upper_case_words(self, command: str) -> None:
        """Only upper-case command words are accepted as the command part."""
        with pytest.raises(AgiArgumentError, match="command name"):
            format_command(command)

    def test_sending_before_the_environment_is_refused(self) -> None:
        """A command before the environment was read is a protocol misuse."""
        with pytest.raises(AgiProtocolError, match="environment"):
            AgiConnection().send_command("ANSWER")

    def test_unsolicited_reply_lines_are_detected_when_sending(self) -> None:
        """Reply-shaped lines that arrived before any command (injection) close the session."""
        conn = AgiConnection()
        conn.receive_data(b"agi_request: x\n\n200 result=49\n")
        assert conn.next_environment() is not None

        with pytest.raises(AgiProtocolError, match="unsolicited"):
            conn.send_command("ANSWER")

    def test_hangup_before_a_command_is_noted_not_rejected(self) -> None:
        """A HANGUP that arrived between commands marks the connection hung up."""
        conn = AgiConnection()
        conn.receive_data(b"agi_request: x\n\nHANGUP\n")
        assert conn.next_environment() is not None
        conn.send_command("GET VARIABLE", "X")

        assert conn.hung_up


class TestReplies:
    @pytest.mark.parametrize(
        ("line", "expected"),
        [
            ("200 result=0", AgiReply(0)),
            ("200 result=0 endpos=11234", AgiReply(0, endpos=11234)),
            ("200 result=49 endpos=4160", AgiReply(49, endpos=4160)),
            ("200 result=1 (granted)", AgiReply(1, data="granted")),
            ("200 result=1 (a) b (c))", AgiReply(1, data="a) b (c)")),
            ("200 result=1 ()", AgiReply(1, data="")),
            ("200 result= (timeout)", AgiReply(None, data="timeout")),
            ("200 result=-1", AgiReply(-1)),
            ("200 result=1 (dtmf) endpos=120", AgiReply(1, data="dtmf", endpos=120)),
            ("200 result=0 Gosub complete", AgiReply(0, extra="Gosub complete")),
        ],
    )
    def test_200_replies_parse_into_result_data_endpos(self, line: str, expected: AgiReply) -> None:
        """Every reply shape res_agi.c writes parses into its fields."""
        assert expected == parse_reply_line(line)

    @pytest.mark.parametrize(
        "line",
        [
            "200",
            "200 result=x",
            "200 result=1 (unclosed",
            "200result=1",
            "2000 result=1",
            "200 result=" + "9" * 40,
        ],
    )
    def test_malformed_200_lines_raise_protocol_error(self, line: str) -> None:
        """Malformed 200 lines raise AgiProtocolError."""
        with pytest.raises(AgiProtocolError):
            parse_reply_line(line)

    def test_100_trying_is_skipped_until_the_final_reply(self) -> None:
        """``100 result=0 Trying...`` precedes the real reply and is not returned."""
        reply = reply_to(connected(), b"100 result=0 Trying...\n200 result=0 Gosub complete\n")

        assert AgiReply(0, extra="Gosub complete") == reply

    @pytest.mark.parametrize(
        ("data", "code"),
        [
            (b"510 Invalid or unknown command\n", 510),
            (b"511 Command Not Permitted on a dead channel or intercept routine\n", 511),
            (b"520 Invalid command syntax.  Proper usage not available.\n", 520),
            (b"503 result=-2 Memory allocation failure\n", 503),
        ],
    )
    def test_error_codes_raise_command_error_and_leave_connection_idle(
        self, data: bytes, code: int
    ) -> None:
        """510/511/520/503 raise AgiCommandError with the code; the next command may follow."""
        conn = connected()

        with pytest.raises(AgiCommandError) as caught:
            reply_to(conn, data)
        assert code == caught.value.code
        assert ConnectionState.IDLE == conn.state

    def test_multi_line_520_usage_is_collected_into_one_error(self) -> None:
        """``520-`` ... ``520 End of proper usage.`` becomes one AgiCommandError with the text."""
        usage = (
            b"520-Invalid command syntax.  Proper usage follows:\n"
            b" Usage: WAIT FOR DIGIT <timeout>\n"
            b"200 result=0 looks like a reply but is usage text\n"
            b"520 End of proper usage.\n"
        )
        conn = connected()

        with pytest.raises(AgiCommandError) as caught:
            reply_to(conn, usage)
        assert 520 == caught.value.code
        assert caught.value.text.startswith("Invalid command syntax.  Proper usage follows:")
        assert "200 result=0 looks like a reply" in caught.value.text
        assert caught.value.text.endswith("End of proper usage.")
        assert ConnectionState.IDLE == conn.state

    def test_hangup_line_raises_then_the_reply_still_follows(self) -> None:
        """``HANGUP`` raises AgiHangup; reading again returns the command's own reply."""
        conn = connected()

        with pytest.raises(AgiHangup):
            reply_to(conn, b"HANGUP\n511 Command Not Permitted on a dead channel\n")
        assert conn.hung_up
        with pytest.raises(AgiCommandError) as caught:
            conn.next_reply()
        assert 511 == caught.value.code

    def test_reply_split_across_chunks_is_reassembled(self) -> None:
        """A reply arriving in pieces is returned once its newline arrives."""
        conn = connected()
        conn.send_command("NOOP")
        conn.receive_data(b"200 res")
        assert conn.next_reply() is None
        conn.receive_data(b"ult=1 (x)\n")

        assert AgiReply(1, data="x") == conn.next_reply()

    @pytest.mark.parametrize(
        "data", [b"999 what\n", b"HTTP/1.1 200 OK\n", b"201-x\n", b"\xff\xfe\n", b"\n"]
    )
    def test_garbage_reply_closes_the_connection(self, data: bytes) -> None:
        """Anything that is not an AGI reply raises AgiProtocolError and closes."""
        conn = connected()

        with pytest.raises(AgiProtocolError):
            reply_to(conn, data)
        assert ConnectionState.CLOSED == conn.state
        with pytest.raises(AgiProtocolError):
            conn.next_reply()

    def test_reading_a_reply_without_a_command_is_refused(self) -> None:
        """``next_reply`` with nothing outstanding is a protocol misuse."""
        with pytest.raises(AgiProtocolError, match="no command"):
            connected().next_reply()

    @pytest.mark.parametrize(("result", "digit"), [(49, "1"), (50, "2"), (35, "#"), (42, "*")])
    def test_result_codes_map_to_dtmf_keys(self, result: int, digit: str) -> None:
        """``result=49`` is key ``1`` and so on."""
        assert digit == digit_from_result(result)

    @pytest.mark.parametrize("result", [1, 32, 97, 300, 10**6])
    def test_results_that_are_not_dtmf_keys_are_refused(self, result: int) -> None:
        """A result that is not the ASCII code of a DTMF key raises AgiProtocolError."""
        with pytest.raises(AgiProtocolError):
            digit_from_result(result)


class TestInterrupt:
    def test_interrupting_command_is_sent_while_a_reply_is_outstanding(self) -> None:
        """``send_interrupt`` formats a command while STREAM FILE still runs."""
        conn = connected()
        conn.send_command("STREAM FILE", "en/x", "1")

        assert b"GET FULL VARIABLE ${UNIQUEID}\n" == conn.send_interrupt(
            "GET FULL VARIABLE", "${UNIQUEID}"
        )
        assert ConnectionState.AWAITING_REPLY == conn.state

    def test_interrupt_without_an_outstanding_reply_is_refused(self) -> None:
        """Nothing to interrupt: ``send_command`` is the right call."""
        with pytest.raises(AgiProtocolError, match="nothing to interrupt"):
            connected().send_interrupt("NOOP")

    def test_replies_of_the_stopped_wait_and_the_interrupt_are_read_in_turn(self) -> None:
        """WAIT FOR DIGIT stopped (result=1), then the interrupting command's own reply."""
        conn = connected()
        conn.send_command("WAIT FOR DIGIT", "5000")
        conn.send_interrupt("GET FULL VARIABLE", "${UNIQUEID}")
        conn.receive_data(b"200 result=1\n200 result=1 (1795449978.119)\n")

        first = conn.next_reply()
        conn.expect_another_reply()
        second = conn.next_reply()

        assert (AgiReply(1), AgiReply(1, data="1795449978.119")) == (first, second)
        assert ConnectionState.IDLE == conn.state

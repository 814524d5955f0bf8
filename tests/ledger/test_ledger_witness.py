"""Witnesses: checkpoints reach a real directory, a real HTTP server and a real (moto) S3 bucket.

Each sink is idempotent and never overwrites (a different note at a held size is a conflict);
the pusher retries in order without ever blocking ``offer``, and no header value (a token)
reaches an error, a status or a log line.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import stat
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from asterisk_recorder.errors import LedgerError, WitnessError
from asterisk_recorder.ledger.witness import (
    MAX_BACKLOG,
    MAX_NOTE_BYTES,
    MAX_SIZE,
    DirectoryWitness,
    HttpWitness,
    S3Witness,
    Witness,
    WitnessedCheckpoint,
    WitnessMetrics,
    WitnessPusher,
    checkpoint_name,
    format_notes,
    parse_notes,
)
from asterisk_recorder.ops.metrics import RecorderMetrics

TOKEN = "Bearer s3cr3t-witness-token-0123456789"


def note(size: int, origin: str = "recorder.example/ledger", root: str = "AAAA") -> str:
    """A checkpoint-shaped note (the witness never checks its signature)."""
    return f"{origin}\n{size}\n{root}=\n\n\u2014 recorder.example/ledger Zm9vYmFy\n"


def cp(size: int, root: str = "AAAA") -> WitnessedCheckpoint:
    """A checkpoint of ``size`` with a note naming ``root``."""
    return WitnessedCheckpoint(size, note(size, root=root))


async def until(predicate: Callable[[], bool], what: str, limit: float = 20.0) -> None:
    """Wait until ``predicate()`` holds (fails the test after ``limit`` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class FakeClock:
    """A monotonic clock the test moves by hand (the only stand-in these tests use)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def strict_umask() -> Iterator[None]:
    """The systemd unit's umask (077): the witness must still make public files."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


# -- the checkpoint -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [-1, MAX_SIZE + 1, True, 1.0, "5", None])
def test_checkpoint_refuses_hostile_sizes(size: Any) -> None:
    """A size that is not an integer in 0..10**20-1 (bools and floats too) is refused."""
    with pytest.raises(WitnessError, match="size"):
        WitnessedCheckpoint(size, note(1))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        (b"origin\n1\nAAAA=\n", "text"),
        ("o\n1\n" + "x" * MAX_NOTE_BYTES + "\n", "bytes"),
        ("origin\n1\x00\nAAAA=\n", "U\\+0000"),
        ("origin\r\n1\r\nAAAA=\r\n", "U\\+000D"),
        ("origin\n1\n\udcff\n", "surrogate"),
        ("origin\n1\nAAAA=", "newline"),
        ("origin\n1\n---\nAAAA=\n", "separator"),
    ],
)
def test_checkpoint_refuses_notes_that_are_not_small_text(text: Any, reason: str) -> None:
    """Empty, bytes, over 64 KiB, control characters, lone surrogates, no final newline: refused."""
    with pytest.raises(WitnessError, match=reason):
        WitnessedCheckpoint(1, text)


def test_checkpoint_takes_the_extremes() -> None:
    """Size 0 and 10**20-1 and a note of exactly 64 KiB are accepted; names keep 20 digits."""
    full = "o\n0\n" + "x" * (MAX_NOTE_BYTES - 5) + "\n"

    assert MAX_NOTE_BYTES == len(WitnessedCheckpoint(0, full).data)
    assert "checkpoint-99999999999999999999.txt" == checkpoint_name(MAX_SIZE)
    assert "checkpoint-00000000000000000007.txt" == checkpoint_name(7)
    assert issubclass(WitnessError, LedgerError)


def test_notes_round_trip_through_the_http_answer_format() -> None:
    """format_notes joins with '---' lines; parse_notes reads them back ordered by size."""
    notes = [cp(9), cp(2), cp(5)]

    assert [2, 5, 9] == [c.size for c in parse_notes(format_notes(notes))]
    assert [] == parse_notes("")
    assert [cp(3)] == parse_notes(f"---\n{note(3)}---\n---\n")


def test_parse_notes_names_every_malformed_note() -> None:
    """A note whose second line is no size, and a missing final newline, are reported."""
    with pytest.raises(WitnessError, match=r"note 2: .*second line"):
        parse_notes(f"{note(1)}---\norigin\nnot-a-size\n")
    with pytest.raises(WitnessError, match="newline"):
        parse_notes(note(1)[:-1])


# -- directory ----------------------------------------------------------------------------------


async def test_directory_witness_writes_public_files_in_a_directory_it_creates(
    tmp_path: Path, strict_umask: None
) -> None:
    """Under umask 077 the created directory is 0755 and the file 0644, holding the exact note."""
    target = tmp_path / "mnt" / "witness"
    witness = DirectoryWitness(target)

    await witness.push(cp(42))

    path = target / "checkpoint-00000000000000000042.txt"
    assert 0o755 == _mode(target)
    assert 0o644 == _mode(path)
    assert note(42).encode() == path.read_bytes()
    assert [path.name] == os.listdir(target)  # no temporary file left behind
    assert f"dir:{target}" == witness.name
    assert isinstance(witness, Witness)


async def test_directory_witness_leaves_an_existing_directory_mode_alone(tmp_path: Path) -> None:
    """An operator's directory (here 0750) keeps its mode."""
    target = tmp_path / "witness"
    target.mkdir(mode=0o750)
    os.chmod(target, 0o750)  # noqa: S103 - an operator's group-readable directory

    await DirectoryWitness(target).push(cp(1))

    assert 0o750 == _mode(target)


async def test_directory_witness_is_idempotent_and_never_overwrites(tmp_path: Path) -> None:
    """The same note twice is fine; a different note at that size is a conflict, file unchanged."""
    witness = DirectoryWitness(tmp_path)
    await witness.push(cp(7))
    await witness.push(cp(7))

    with pytest.raises(WitnessError, match="conflict") as raised:
        await witness.push(cp(7, root="BBBB"))

    assert raised.value.conflict
    assert note(7).encode() == (tmp_path / checkpoint_name(7)).read_bytes()
    assert [checkpoint_name(7)] == os.listdir(tmp_path)


async def test_directory_witness_never_follows_a_planted_symlink(tmp_path: Path) -> None:
    """A symlink at a checkpoint's name is refused, and its target is not written."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    witness_dir = tmp_path / "w"
    witness_dir.mkdir()
    (witness_dir / checkpoint_name(3)).symlink_to(victim)

    with pytest.raises(WitnessError, match="symbolic link"):
        await DirectoryWitness(witness_dir).push(cp(3))

    assert "precious\n" == victim.read_text()


async def test_directory_witness_push_into_a_file_fails_clearly(tmp_path: Path) -> None:
    """A path through a regular file gives a WitnessError naming the witness."""
    blocker = tmp_path / "file"
    blocker.write_text("x")

    with pytest.raises(WitnessError, match=f"dir:{blocker}/w: cannot write"):
        await DirectoryWitness(blocker / "w").push(cp(1))


async def test_directory_fetch_orders_and_ignores_foreign_files(tmp_path: Path) -> None:
    """fetch returns checkpoints by size; READMEs and a crashed push's temp files are ignored."""
    witness = DirectoryWitness(tmp_path)
    for size in (30, 4, 12):
        await witness.push(cp(size))
    (tmp_path / "README").write_text("not a checkpoint")
    (tmp_path / f".{checkpoint_name(99)}.0123abcd.tmp").write_text("half a no")

    fetched = await witness.fetch()

    assert [4, 12, 30] == [c.size for c in fetched]
    assert note(12) == fetched[1].note


async def test_directory_fetch_reports_every_malformed_checkpoint_file(tmp_path: Path) -> None:
    """A bad name, non-UTF-8 bytes, an oversized file and a directory are all named."""
    witness = DirectoryWitness(tmp_path)
    await witness.push(cp(1))
    (tmp_path / "checkpoint-12.txt").write_text(note(12))
    (tmp_path / checkpoint_name(2)).write_bytes(b"\xff\xfe\n")
    (tmp_path / checkpoint_name(3)).write_bytes(b"x" * (MAX_NOTE_BYTES + 1))
    (tmp_path / checkpoint_name(4)).mkdir()

    with pytest.raises(WitnessError) as raised:
        await witness.fetch()

    message = str(raised.value)
    assert "checkpoint-12.txt: name is not" in message
    assert f"{checkpoint_name(2)}: not UTF-8" in message
    assert f"{checkpoint_name(3)}: more than" in message
    assert f"{checkpoint_name(4)}: not a regular file" in message


async def test_directory_fetch_of_a_missing_directory_says_so(tmp_path: Path) -> None:
    """``verify --witness`` with a mistyped directory fails loudly instead of finding nothing."""
    with pytest.raises(WitnessError, match="does not exist"):
        await DirectoryWitness(tmp_path / "typo").fetch()


async def test_concurrent_pushes_of_one_size_keep_exactly_one_file(tmp_path: Path) -> None:
    """Racing pushes of two notes at one size: one wins, the other is a conflict, no temp left."""
    witness = DirectoryWitness(tmp_path)
    results = await asyncio.gather(
        *(witness.push(cp(5, root=r)) for r in ("AAAA", "BBBB") * 4), return_exceptions=True
    )

    conflicts = [r for r in results if isinstance(r, WitnessError) and r.conflict]
    assert [checkpoint_name(5)] == os.listdir(tmp_path)
    stored = (tmp_path / checkpoint_name(5)).read_text()
    assert len(conflicts) == sum(1 for r in ("AAAA", "BBBB") * 4 if note(5, root=r) != stored)


# -- HTTP ---------------------------------------------------------------------------------------


class WitnessServer:
    """A real HTTP witness: keeps notes by size, fails the first ``fail_first`` POSTs with 503.

    Its error bodies echo the request's Authorization header, as a careless server might.
    """

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.notes: dict[int, str] = {}
        self.posted: list[int] = []
        self.authorizations: list[str | None] = []
        self.content_types: list[str] = []
        self.app = web.Application()
        self.app.router.add_post("/checkpoints", self.post)
        self.app.router.add_get("/checkpoints", self.get)
        self.app.router.add_post("/moved", self.moved)

    async def post(self, request: web.Request) -> web.Response:
        self.authorizations.append(request.headers.get("Authorization"))
        self.content_types.append(request.headers.get("Content-Type", ""))
        if self.fail_first > 0:
            self.fail_first -= 1
            echo = f"overloaded; you sent {request.headers.get('Authorization')} " + "z" * 500
            return web.Response(status=503, text=echo)
        size = int(request.headers["X-Checkpoint-Size"])
        text = await request.text()
        held = self.notes.get(size)
        if held is not None and held != text:
            return web.Response(status=409, text="different checkpoint at this size")
        self.notes[size] = text
        self.posted.append(size)
        return web.Response(status=201 if held is None else 200)

    async def get(self, request: web.Request) -> web.Response:
        self.authorizations.append(request.headers.get("Authorization"))
        ordered = [WitnessedCheckpoint(s, n) for s, n in sorted(self.notes.items())]
        return web.Response(text=format_notes(ordered), content_type="text/plain")

    async def moved(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/checkpoints")


ServerFactory = Callable[[web.Application], Awaitable[Any]]


@pytest.fixture
async def http_witness(
    aiohttp_server: ServerFactory,
) -> tuple[WitnessServer, str]:
    """A WitnessServer on 127.0.0.1 and its URL."""
    server = WitnessServer()
    running = await aiohttp_server(server.app)
    return server, str(running.make_url("/checkpoints"))


async def test_http_witness_posts_and_fetches_with_its_token(
    http_witness: tuple[WitnessServer, str],
) -> None:
    """POST carries the note, its size and the token; GET reads the notes back in order."""
    server, url = http_witness
    witness = HttpWitness(url, headers={"Authorization": TOKEN})

    for size in (3, 1, 2):
        await witness.push(cp(size))
    await witness.push(cp(2))  # the same again: the server answers 200

    assert {1: note(1), 2: note(2), 3: note(3)} == server.notes
    assert [TOKEN] * 4 == server.authorizations
    assert {"text/plain; charset=utf-8"} == set(server.content_types)
    assert [1, 2, 3] == [c.size for c in await witness.fetch()]
    assert TOKEN not in f"{witness.name} {witness!r}"
    assert f"http:{url}" == witness.name


async def test_http_witness_conflict_is_a_conflict(http_witness: tuple[WitnessServer, str]) -> None:
    """A 409 for a different note of a held size raises a conflict WitnessError."""
    server, url = http_witness
    witness = HttpWitness(url)
    await witness.push(cp(8))

    with pytest.raises(WitnessError, match="conflict") as raised:
        await witness.push(cp(8, root="BBBB"))

    assert raised.value.conflict
    assert note(8) == server.notes[8]


async def test_http_witness_error_has_the_status_a_short_body_and_no_token(
    http_witness: tuple[WitnessServer, str],
) -> None:
    """A 503 names the status, keeps at most 200 characters of body and masks the echoed token."""
    server, url = http_witness
    server.fail_first = 1

    with pytest.raises(WitnessError, match="HTTP 503") as raised:
        await HttpWitness(url, headers={"Authorization": TOKEN}).push(cp(1))

    message = str(raised.value)
    assert "s3cr3t" not in message
    assert "overloaded; you sent ***" in message
    assert len(message) < len(f"http:{url}: POST answered HTTP 503: ") + 201
    assert not raised.value.conflict


async def test_http_witness_does_not_follow_redirects(
    http_witness: tuple[WitnessServer, str],
) -> None:
    """A 302 is a failure: the token is never sent on to wherever it points."""
    server, url = http_witness

    with pytest.raises(WitnessError, match="HTTP 302"):
        await HttpWitness(url.replace("/checkpoints", "/moved"), headers={"X-Key": TOKEN}).push(
            cp(1)
        )

    assert {} == server.notes


async def test_http_witness_unreachable_fails_without_the_token() -> None:
    """A closed port raises WitnessError naming the witness, never the header value."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    witness = HttpWitness(f"http://127.0.0.1:{port}/w", headers={"Authorization": TOKEN})

    where = re.escape(f"http:http://127.0.0.1:{port}/w: POST failed")
    with pytest.raises(WitnessError, match=where) as raised:
        await witness.push(cp(1))

    assert "s3cr3t" not in str(raised.value)


async def test_http_fetch_refuses_a_malformed_answer(aiohttp_server: ServerFactory) -> None:
    """An answer whose note has no size line is a WitnessError, not an empty list."""

    async def garbage(request: web.Request) -> web.Response:
        return web.Response(text=f"{note(1)}---\nhello\n")

    app = web.Application()
    app.router.add_get("/w", garbage)
    running = await aiohttp_server(app)

    with pytest.raises(WitnessError, match="malformed GET answer: note 2"):
        await HttpWitness(str(running.make_url("/w"))).fetch()


@pytest.mark.parametrize(
    "url",
    [
        "https://alice:hunter2hunter2@witness.example/c",
        "https://hunter2hunter2@witness.example/c",
        "ftp://witness.example/c",
        "https:///c",
        "https://witness.example:99999/c",
        "https://witness.example/c d",
        "",
    ],
)
def test_http_witness_refuses_bad_urls_without_echoing_them(url: str) -> None:
    """Credentials in the URL, other schemes, no host, bad port, spaces: refused, never echoed."""
    with pytest.raises(WitnessError, match="HTTP witness: URL") as raised:
        HttpWitness(url)

    assert "hunter2" not in str(raised.value)


def test_http_witness_refuses_credentials_with_a_clear_error() -> None:
    """The error for user:pass@ says why and what to do instead."""
    with pytest.raises(WitnessError, match=r"must not carry credentials.*header instead"):
        HttpWitness("https://u:p@witness.example/")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Authorization": "Bearer abc\r\nX-Evil: 1"}, "Authorization must be a string"),
        ({"Bad Name": "v"}, "invalid header name"),
        ({"content-type": "text/html"}, "set by the witness"),
        ({"X-Checkpoint-Size": "1"}, "set by the witness"),
    ],
)
def test_http_witness_refuses_bad_headers_without_showing_values(
    headers: dict[str, str], reason: str
) -> None:
    """Header injection and our own headers are refused; the message never shows the value."""
    with pytest.raises(WitnessError, match=reason) as raised:
        HttpWitness("https://witness.example/", headers=headers)

    assert "abc" not in str(raised.value)


def test_http_witness_refuses_a_bad_timeout() -> None:
    """Zero, negative, NaN and infinite timeouts are refused."""
    for timeout in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(WitnessError, match="timeout"):
            HttpWitness("https://witness.example/", timeout=timeout)


# -- the pusher ---------------------------------------------------------------------------------


async def test_pusher_retries_a_failing_server_and_delivers_in_order(
    http_witness: tuple[WitnessServer, str],
) -> None:
    """The first 3 POSTs fail; offers return at once; 1, 2, 3 arrive in order; metrics agree."""
    server, url = http_witness
    server.fail_first = 3
    metrics = RecorderMetrics()
    witness = HttpWitness(url, headers={"Authorization": TOKEN})
    pusher = WitnessPusher([witness], metrics=metrics, retry_initial=0.01, retry_max=0.05)

    with capture_logs() as logs:
        async with pusher:
            for size in (1, 2, 3):
                pusher.offer(cp(size))  # synchronous: nothing ran yet, so it could not block
            queued = pusher.status()[0]
            await until(lambda: server.fail_first == 0, "the failures")
            failing = pusher.status()[0]
            await until(lambda: pusher.status()[0].pending == 0, "delivery")
            done = pusher.status()[0]

    assert 3 == queued.pending
    assert "HTTP 503" in str(failing.last_error)
    assert [1, 2, 3] == server.posted
    assert (3, None, 0.0, 3) == (
        done.delivered_size, done.last_error, done.lag_seconds, done.failures
    )
    text = metrics.exposition()
    label = f'{{witness="{witness.name}"}}'
    assert f"asterisk_recorder_checkpoint_witness_failures_total{label} 3.0" in text
    assert f"asterisk_recorder_checkpoint_witness_delivered_size{label} 3.0" in text
    assert f"asterisk_recorder_checkpoint_witness_lag_seconds{label} 0.0" in text
    assert 3 == sum(1 for e in logs if e["event"] == "ledger.witness.failed")
    assert "s3cr3t" not in repr(logs) + repr(failing) + text


async def test_offer_never_blocks_while_the_sink_is_down(
    http_witness: tuple[WitnessServer, str],
) -> None:
    """With every POST failing, many offers return and queue; lag grows with the clock only."""
    server, url = http_witness
    server.fail_first = 10**9
    clock = FakeClock()
    pusher = WitnessPusher([HttpWitness(url)], clock=clock, retry_initial=0.01, retry_max=0.02)
    await pusher.start()
    try:
        pusher.offer(cp(1))
        await until(lambda: pusher.status()[0].failures >= 2, "two failures")
        for size in range(2, 50):
            pusher.offer(cp(size))
        clock.now += 75.0
        status = pusher.status()[0]
        lagging = (pusher.lagging(60.0), pusher.lagging(80.0))
    finally:
        await pusher.close()

    assert 49 == status.pending
    assert 75.0 == status.lag_seconds
    assert ([pusher.names[0]], []) == lagging
    assert {} == server.notes


async def test_backlog_over_the_limit_keeps_the_newest_and_counts_the_rest(
    tmp_path: Path,
) -> None:
    """150 offers before delivery: the newest 100 are delivered in order, 50 superseded."""
    clock = FakeClock(0.0)
    metrics = RecorderMetrics()
    witness = DirectoryWitness(tmp_path)
    pusher = WitnessPusher([witness], metrics=metrics, clock=clock)
    for size in range(1, 151):
        clock.now = float(size)
        pusher.offer(cp(size))
    clock.now = 200.0
    before = pusher.status()[0]

    async with pusher:
        await until(lambda: pusher.status()[0].pending == 0, "delivery")
    after = pusher.status()[0]

    assert (MAX_BACKLOG, 50) == (before.pending, before.superseded)
    assert 199.0 == before.lag_seconds  # measured from the oldest offer, superseded or not
    assert list(range(51, 151)) == [c.size for c in await witness.fetch()]
    assert (150, 0.0) == (after.delivered_size, after.lag_seconds)
    label = f'{{witness="{witness.name}"}}'
    assert f"asterisk_recorder_checkpoint_witness_superseded_total{label} 50.0" in (
        metrics.exposition()
    )


async def test_a_conflict_is_counted_not_retried_and_later_checkpoints_go_on(
    tmp_path: Path,
) -> None:
    """A sink holding another note at size 1 reports a conflict; size 2 is still delivered."""
    witness = DirectoryWitness(tmp_path)
    await witness.push(cp(1, root="FORK"))
    pusher = WitnessPusher([witness], retry_initial=0.01, retry_max=0.02)

    with capture_logs() as logs:
        async with pusher:
            pusher.offer(cp(1))
            pusher.offer(cp(2))
            await until(lambda: pusher.status()[0].pending == 0, "the queue to drain")
    status = pusher.status()[0]

    assert (1, 2, 1) == (status.conflicts, status.delivered_size, status.failures)
    assert [note(1, root="FORK"), note(2)] == [c.note for c in await witness.fetch()]
    assert ["ledger.witness.conflict"] == [e["event"] for e in logs if e["log_level"] == "error"]


class HangingWitness:
    """A sink whose push never returns (a black-holed network)."""

    name = "hang:forever"

    def __init__(self) -> None:
        self.cancelled = False

    async def push(self, cp: WitnessedCheckpoint) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    async def fetch(self) -> list[WitnessedCheckpoint]:
        return []


class BrokenWitness:
    """A third-party sink that raises something other than WitnessError."""

    name = "broken:thing"

    async def push(self, cp: WitnessedCheckpoint) -> None:
        raise RuntimeError(f"token={TOKEN}")

    async def fetch(self) -> list[WitnessedCheckpoint]:
        return []


async def test_close_cancels_a_push_that_never_returns(tmp_path: Path) -> None:
    """close waits close_timeout, then cancels; the other sink still got its checkpoint."""
    hanging = HangingWitness()
    pusher = WitnessPusher([hanging, DirectoryWitness(tmp_path)], close_timeout=0.05)
    await pusher.start()
    pusher.offer(cp(1))
    await until(lambda: pusher.status()[1].pending == 0, "the directory delivery")

    await pusher.close()

    assert hanging.cancelled
    assert [1, 0] == [s.pending for s in pusher.status()]
    assert [checkpoint_name(1)] == os.listdir(tmp_path)


async def test_offer_never_raises_on_misuse(tmp_path: Path) -> None:
    """A non-checkpoint and an offer after close are logged and dropped, never raised."""
    pusher = WitnessPusher([DirectoryWitness(tmp_path)])
    with capture_logs() as logs:
        pusher.offer("not a checkpoint")  # type: ignore[arg-type]
        await pusher.close()
        pusher.offer(cp(1))

    assert ["ledger.witness.offer_refused", "ledger.witness.offer_after_close"] == [
        e["event"] for e in logs
    ]
    assert 0 == pusher.status()[0].pending


async def test_an_unexpected_exception_reports_only_its_type() -> None:
    """A foreign exception's text (which may hold anything) stays out of the status."""
    pusher = WitnessPusher([BrokenWitness()], retry_initial=0.01, retry_max=0.02)
    async with pusher:
        pusher.offer(cp(1))
        await until(lambda: pusher.status()[0].failures >= 1, "a failure")
        status = pusher.status()[0]

    assert "broken:thing: unexpected RuntimeError" == status.last_error


def test_pusher_refuses_two_witnesses_with_one_name(tmp_path: Path) -> None:
    """Two sinks with one label would share metric series: refused."""
    with pytest.raises(WitnessError, match="configured twice"):
        WitnessPusher([DirectoryWitness(tmp_path), DirectoryWitness(tmp_path)])


def test_recorder_metrics_is_what_the_pusher_reports_to() -> None:
    """ops' RecorderMetrics satisfies the ledger's WitnessMetrics protocol."""
    metrics = RecorderMetrics()
    sink: WitnessMetrics = metrics
    sink.witness_lag("dir:/w", 2.5)

    assert 'asterisk_recorder_checkpoint_witness_lag_seconds{witness="dir:/w"} 2.5' in (
        metrics.exposition()
    )


# -- S3 (a real moto server) --------------------------------------------------------------------

try:
    import boto3
    from moto.server import ThreadedMotoServer
except ImportError:  # the S3 tests skip; everything else still runs
    boto3 = None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server on a free 127.0.0.1 port; credentials come from the environment."""
    if boto3 is None:
        pytest.skip("moto[server] and boto3 are not installed (pip install -e '.[test]')")
    home = tmp_path_factory.mktemp("aws")
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def locked_bucket(moto_endpoint: str, request: pytest.FixtureRequest) -> str:
    """A fresh bucket with Object Lock enabled."""
    name = f"witness-{abs(hash(request.node.name)) % 10**10}"
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def _client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


async def test_s3_witness_pushes_fetches_and_never_overwrites(
    moto_endpoint: str, locked_bucket: str
) -> None:
    """Objects <prefix><20 digits>.txt; the same note again is fine; another is a conflict."""
    witness = S3Witness(locked_bucket, endpoint_url=moto_endpoint, region="us-east-1")
    for size in (5, 2):
        await witness.push(cp(size))
    await witness.push(cp(5))

    with pytest.raises(WitnessError, match="conflict") as raised:
        await witness.push(cp(5, root="BBBB"))

    body = _client(moto_endpoint).get_object(
        Bucket=locked_bucket, Key="checkpoints/00000000000000000005.txt"
    )["Body"].read()
    assert raised.value.conflict
    assert note(5).encode() == body
    assert [cp(2), cp(5)] == await witness.fetch()
    assert f"s3:{locked_bucket}/checkpoints/" == witness.name


async def test_s3_witness_puts_in_compliance_mode_when_asked(
    moto_endpoint: str, locked_bucket: str
) -> None:
    """object_lock_days=30: the object is COMPLIANCE-locked ~30 days and cannot be deleted.

    moto 5.2 does not implement GetObjectRetention (it answers 500), so the lock is read back
    with HEAD, which returns the same mode and retain-until date.
    """
    witness = S3Witness(
        locked_bucket, prefix="ck/", endpoint_url=moto_endpoint, object_lock_days=30
    )
    await witness.push(cp(9))

    client = _client(moto_endpoint)
    head = client.head_object(Bucket=locked_bucket, Key="ck/00000000000000000009.txt")
    assert "COMPLIANCE" == head["ObjectLockMode"]
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=29)
    with pytest.raises(Exception, match="AccessDenied"):
        client.delete_object(
            Bucket=locked_bucket, Key="ck/00000000000000000009.txt", VersionId=head["VersionId"]
        )


async def test_s3_lock_on_a_bucket_without_object_lock_fails_clearly(moto_endpoint: str) -> None:
    """Asking for a lock on a bucket without Object Lock is a WitnessError with S3's code."""
    _client(moto_endpoint).create_bucket(Bucket="witness-unlocked")
    witness = S3Witness("witness-unlocked", endpoint_url=moto_endpoint, object_lock_days=1)

    with pytest.raises(WitnessError, match=r"s3:witness-unlocked/checkpoints/: PUT .* failed"):
        await witness.push(cp(1))


async def test_s3_fetch_ignores_foreign_keys_and_reports_malformed_ones(
    moto_endpoint: str, locked_bucket: str
) -> None:
    """Keys not ending .txt and deeper keys are ignored; <prefix>junk.txt is named."""
    witness = S3Witness(locked_bucket, endpoint_url=moto_endpoint)
    await witness.push(cp(1))
    client = _client(moto_endpoint)
    client.put_object(Bucket=locked_bucket, Key="checkpoints/README.md", Body=b"hi")
    client.put_object(
        Bucket=locked_bucket, Key="checkpoints/old/00000000000000000001.txt", Body=b"x"
    )
    client.put_object(Bucket=locked_bucket, Key="other/00000000000000000002.txt", Body=b"x")
    assert [cp(1)] == await witness.fetch()

    client.put_object(Bucket=locked_bucket, Key="checkpoints/junk.txt", Body=b"x")
    with pytest.raises(WitnessError, match=r"checkpoints/junk\.txt: key is not"):
        await witness.fetch()


async def test_s3_without_credentials_fails_without_leaking(
    moto_endpoint: str, locked_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No credentials in the AWS chain: a WitnessError saying so (credentials are never args)."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    with pytest.raises(WitnessError, match="NoCredentialsError"):
        await S3Witness(locked_bucket, endpoint_url=moto_endpoint).push(cp(1))


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ({"bucket": "A_B"}, "bucket"),
        ({"bucket": "ok-bucket", "prefix": "/abs/"}, "prefix"),
        ({"bucket": "ok-bucket", "endpoint_url": "http://k:s@127.0.0.1:9000"}, "credentials"),
        ({"bucket": "ok-bucket", "object_lock_days": -1}, "object_lock_days"),
        ({"bucket": "ok-bucket", "object_lock_days": True}, "object_lock_days"),
        ({"bucket": "ok-bucket", "region": "EU WEST"}, "region"),
    ],
)
def test_s3_witness_refuses_bad_arguments(arguments: dict[str, Any], reason: str) -> None:
    """Bad bucket names, absolute prefixes, credentialed endpoints, bad lock days are refused."""
    with pytest.raises(WitnessError, match=reason):
        S3Witness(**arguments)

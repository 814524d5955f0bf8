"""systemd notifications: READY when the service takes calls, watchdog pings, STOPPING on drain."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from pathlib import Path

from asterisk_recorder.ledger.sink import MemorySink
from asterisk_recorder.ops.systemd import SystemdNotifier
from asterisk_recorder.service import build
from asterisk_recorder.settings import AgiSettings, AriServerSettings, HttpSettings, Settings


def _listener(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    return sock


def _received(sock: socket.socket) -> list[str]:
    got: list[str] = []
    while True:
        try:
            got.append(sock.recv(1024).decode())
        except BlockingIOError:
            return got


def test_outside_systemd_nothing_is_sent() -> None:
    """No ``NOTIFY_SOCKET``: the notifier is off and sends nothing."""
    notifier = SystemdNotifier({})

    assert not notifier.enabled
    assert notifier.notify("READY=1") is False
    assert 0.0 == notifier.watchdog_interval


def test_a_dead_notify_socket_is_reported_not_raised(tmp_path: Path) -> None:
    """A ``NOTIFY_SOCKET`` nobody listens on: ``notify`` says False, raises nothing."""
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})

    assert notifier.notify("READY=1") is False


async def test_service_says_ready_pings_the_watchdog_and_says_stopping(tmp_path: Path) -> None:
    """Under Type=notify: READY=1 once started, WATCHDOG=1 while running, STOPPING=1 on stop."""
    path = tmp_path / "notify.sock"
    sock = _listener(path)
    settings = dataclasses.replace(
        Settings(),
        instance_id="notify-test",
        ari=(AriServerSettings(enabled=False),),
        agi=AgiSettings(enabled=False),
        http=HttpSettings(host="127.0.0.1", port=0),
    )
    service = build(settings, sink=MemorySink())
    service.systemd = SystemdNotifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "100000"})
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await asyncio.wait_for(service.started.wait(), 10)
        await asyncio.sleep(0.3)
        running = _received(sock)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    after = _received(sock)
    sock.close()

    assert "READY=1" == running[0]
    assert running.count("WATCHDOG=1") >= 2
    # a watchdog ping may still go out between the last read and the stop; nothing else may
    assert ("STOPPING=1", set()) == (after[-1], set(after[:-1]) - {"WATCHDOG=1"})

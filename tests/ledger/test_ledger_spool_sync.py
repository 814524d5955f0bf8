"""Crash safety of the spool's directory entries: every create, rename and removal is followed by
an fsync of the spool directory before the operation returns (observed with strace, no mocks)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HELPERS = Path(__file__).parent

# Runs each spool operation between two marker syscalls (faccessat on "MARK:<phase>:<edge>"),
# checking the files after each one; prints "consistent" when every check held.
SCRIPT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from ledger_helpers import make_decision
    from asterisk_recorder.ledger.spool import Spool, SPOOL_NAME, QUARANTINE_NAME

    def mark(phase, edge):
        os.access(f"MARK:{phase}:{edge}", os.F_OK)

    spool = Spool(Path(sys.argv[1]))
    decisions = [make_decision() for _ in range(3)]

    mark("append", "begin")
    spool.append(decisions)
    mark("append", "end")
    assert 3 == spool.status().pending

    path = spool.directory / SPOOL_NAME
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])  # torn tail, as after a crash mid-write

    mark("take", "begin")
    [replay] = spool.take()
    mark("take", "end")
    assert not path.exists() and replay.exists()

    mark("read", "begin")
    batch = spool.read(replay)
    mark("read", "end")
    assert [d.decision_id for d in decisions[:2]] == [d.decision_id for d in batch.decisions]
    assert 1 == batch.quarantined
    assert 2 == len(replay.read_bytes().splitlines())
    assert not replay.with_suffix(".tmp").exists()

    mark("done", "begin")
    spool.done(replay)
    mark("done", "end")
    assert [] == spool.pending_files()

    (spool.directory / QUARANTINE_NAME).unlink()
    mark("quarantine", "begin")
    spool.quarantine([decisions[2]], "refused by PostgreSQL")
    mark("quarantine", "end")
    assert 1 == spool.status().quarantined
    print("consistent")
    """
)

_SYSCALL = re.compile(r"^(?:\d+\s+)?(\w+)\((.*)\)\s+=\s+(-?\d+)")


def _run_traced(spool_dir: Path) -> list[tuple[str, str, int]]:
    """Run SCRIPT under strace; return (syscall, arguments, result) in order."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    log = spool_dir.parent / "strace.log"
    traced = ["-f", "-qq", "-o", str(log), "-e", "trace=%file,fsync,close", "--"]
    script = [sys.executable, "-c", SCRIPT, str(spool_dir), str(HELPERS)]
    done = subprocess.run(
        [strace, *traced, *script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0 and "ptrace" in done.stderr:
        pytest.skip(f"strace cannot trace here: {done.stderr.strip()}")
    assert (0, "consistent") == (done.returncode, done.stdout.strip()), done.stderr
    out: list[tuple[str, str, int]] = []
    for line in log.read_text().splitlines():
        match = _SYSCALL.match(line)
        if match:
            out.append((match[1], match[2], int(match[3])))
    return out


def _unsynced_changes(calls: list[tuple[str, str, int]], directory: str) -> dict[str, list[str]]:
    """Per phase, the directory changes that no fsync of their directory followed in that phase."""
    parent = str(Path(directory).parent)
    fds: dict[int, str] = {}
    pending: list[tuple[str, str]] = []  # (what changed, the directory that must be fsynced)
    unsynced: dict[str, list[str]] = {}
    for name, args, result in calls:
        if name.startswith(("faccessat", "access")) and '"MARK:' in args:
            which, edge = args.split('"MARK:', 1)[1].split('"', 1)[0].split(":")
            if edge == "begin":
                pending = []
            else:
                unsynced[which] = [change for change, _ in pending]
            continue
        if result < 0:
            continue
        quoted = args.split('"')[1::2]
        if name in {"openat", "open"}:
            fds[result] = quoted[0]
            if "O_CREAT" in args and quoted[0].startswith(directory + "/"):
                pending.append((f"create {Path(quoted[0]).name}", directory))
        elif name == "close":
            fds.pop(int(args), None)
        elif name.startswith(("rename", "unlink")):
            for path in quoted:
                if path.startswith(directory + "/"):
                    pending.append((f"{name} {Path(path).name}", directory))
        elif name.startswith("mkdir") and directory in quoted:
            pending.append(("mkdir", parent))
        elif name == "fsync" and int(args) in fds:
            synced = fds[int(args)]
            pending = [(change, needs) for change, needs in pending if needs != synced]
    return unsynced


def test_spool_directory_is_fsynced_after_every_create_rename_and_removal(
    tmp_path: Path,
) -> None:
    """append, take, read (quarantine + rewrite), done and quarantine each fsync the directory."""
    spool_dir = tmp_path / "spool"
    calls = _run_traced(spool_dir)

    unsynced = _unsynced_changes(calls, str(spool_dir))

    assert {
        "append": [],
        "take": [],
        "read": [],
        "done": [],
        "quarantine": [],
    } == unsynced

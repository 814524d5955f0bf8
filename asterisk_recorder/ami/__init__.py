"""The Asterisk Manager Interface transport: the pause driver's way to mute MixMonitor.

This package owns the manager protocol without I/O (``protocol``), a thin asyncio client
(``client``) and the translation of AMI events into the pause book's events plus the
``MuteControl`` port over ``MixMonitorMute`` (``pauses``). It must not decide anything about a
pause (``flow/pause.py`` does).
"""

"""The FastAGI / AGI driver of the consent flow.

This package owns the AGI wire protocol (``protocol``, sans-I/O), the async channel that speaks
it (``channel``), the FastAGI TCP server (``server``) and the consent session run on each call
(``session``, over the AGI ``ChannelPort`` in ``port``; the call itself is the driver core's).
It must never interpolate caller-controlled text into an AGI command and never
``EXEC`` an application: the dialplan starts MixMonitor from the ``RECORDER_*`` variables.
"""

from asterisk_recorder.agi.channel import AgiChannel
from asterisk_recorder.agi.port import AgiPort
from asterisk_recorder.agi.protocol import AgiConnection, AgiEnvironment, AgiReply
from asterisk_recorder.agi.server import FastAgiServer, ServerStats, SessionHandler
from asterisk_recorder.agi.session import SessionResult, consent_handler

__all__ = [
    "AgiChannel",
    "AgiConnection",
    "AgiEnvironment",
    "AgiPort",
    "AgiReply",
    "FastAgiServer",
    "ServerStats",
    "SessionHandler",
    "SessionResult",
    "consent_handler",
]

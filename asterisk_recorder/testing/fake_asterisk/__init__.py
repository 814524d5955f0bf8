"""A fake Asterisk 22 speaking the ARI subset asterisk-recorder uses, on a real loopback socket.

``FakeAsterisk`` is an aiohttp server on 127.0.0.1 (port 0) that serves the REST resources and
the ``/ari/events`` WebSocket the way the real Asterisk 22.10.1 does in the traces under
``shared/asterisk-traces`` (status codes, event types and order, field names), with Basic auth
checked. It is shipped so integrators can test their own flows, and it must stay a *fake*: no
dialplan, no media, no SIP. What it models:

* calls placed into an app with ``originate()`` (caller id, dialled extension, language,
  channel variables, Stasis args); ``StasisStart`` arrives in state ``Ring`` as in the traces;
* the per-channel Stasis control queue: ``/answer`` and ``/variable`` wait behind a running
  playback and answer when it is done; ``/continue``, ``/play``, ``/ring`` and ``/dtmf`` are
  queued and answered at once (as ``stasis_app_send_command_async`` does);
* playbacks with per-sound durations scaled by ``time_scale``; an unknown sound gives
  ``PlaybackStarted`` then ``PlaybackFinished`` ``failed``; ``DELETE /playbacks/{id}`` still
  gives ``PlaybackFinished`` ``done``;
* caller DTMF (``ChannelDtmfReceived`` at the end of the digit) and hang-up from either side in
  Asterisk's order (``ChannelHangupRequest``, ``PlaybackFinished`` ``failed`` if playing,
  ``StasisEnd``); ``continue`` records where the call went and its variables at that moment;
* fault injection: refuse or drop the WebSocket, fail or delay chosen REST calls, stall,
  restart (all channels gone), ``ApplicationReplaced``, raw (bad) frames;
* a request log and helpers to await what happened;
* with ``mixmonitor_seconds``, the file dialplan's MixMonitor would write at ``RECORDER_FILE``
  after a ``record`` hand-back (a real 8 kHz WAV, completed and closed at hang-up); with
  ``mixmonitor_wall_clock`` its length follows the call;
* with ``ami=True``, the manager interface (``FakeAmi``): login, events, ``MixMonitorMute``
  that writes exact zeros into the recording (0.22 s late, as measured), and the user events
  the shipped dialplan raises (``RecordingStarted``, ``RecordingClosed``).

This package owns that fake, one concern per module, each layer building on the one below:

* ``records``: what a test reads back (``RecordedRequest``, ``SentEvent``, ``ContinueRecord``);
* ``channel``: the channel model (``FakeChannel``, playbacks, sounds, the ``Channel`` JSON);
* ``sockets``: one event socket and its in-order sender;
* ``mixmonitor``: the recording file a ``record`` hand-back leaves (``FakeRecording``);
* ``ami``: the fake manager interface (``FakeAmi``, ``AmiChannel``);
* ``core``: the shared state and options (``FakeCore``), auth, faults, error responses;
* ``events``: event sockets, app ownership and event delivery (``FakeEvents``);
* ``control``: the Stasis control queue, playbacks and hang-up (``FakeControl``);
* ``resources``: the REST resource handlers (``FakeResources``);
* ``rest``: authentication, faults, routing and the request log (``FakeRest``);
* ``scenarios``: calls, caller actions, fault injection, ``wait_*`` (``FakeScenarios``);
* ``server``: ``FakeAsterisk`` (all of the above) and its lifecycle.

Import the public names from here (or from ``asterisk_recorder.testing``). It must not be
imported by production code paths.
"""

from __future__ import annotations

from asterisk_recorder.testing.fake_asterisk.ami import AmiChannel, FakeAmi
from asterisk_recorder.testing.fake_asterisk.channel import DEFAULT_SOUNDS, FakeChannel
from asterisk_recorder.testing.fake_asterisk.records import (
    ContinueRecord,
    RecordedRequest,
    SentEvent,
)
from asterisk_recorder.testing.fake_asterisk.server import FakeAsterisk

__all__ = [
    "DEFAULT_SOUNDS",
    "AmiChannel",
    "ContinueRecord",
    "FakeAmi",
    "FakeAsterisk",
    "FakeChannel",
    "RecordedRequest",
    "SentEvent",
]

"""The ARI driver: one Asterisk server's calls over ARI, each run by the driver core.

This package owns ``call`` (the ARI ``ChannelPort`` of one channel and the controller's handle
on its call) and ``app`` (one Asterisk server's event stream dispatched to per-channel calls,
resync, the sweep for parked channels, drain). It must not hold consent logic (``flow``,
``policy``), call logic (``drivers``) nor the ARI client itself (``ari``); the composition root
(``asterisk_recorder.service``) builds it.
"""

from __future__ import annotations

from asterisk_recorder.controller.app import AriController, ControllerHooks
from asterisk_recorder.controller.call import AriPort, CallSession, call_info_from_channel

__all__ = ["AriController", "AriPort", "CallSession", "ControllerHooks", "call_info_from_channel"]

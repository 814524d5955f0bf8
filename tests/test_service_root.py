"""The composition root: one build for every entry point, a stable instance id."""

from __future__ import annotations

import dataclasses
import socket

from asterisk_recorder.service import Service, build, call_parts, default_instance_id
from asterisk_recorder.settings import AgiSettings, AriServerSettings, Settings


def test_instance_id_is_the_same_across_restarts() -> None:
    """Two builds from the same settings (a restart) get the same id, derived from the host."""
    settings = Settings()

    first, second = build(settings).instance_id, build(settings).instance_id

    assert first == second
    assert first.startswith(socket.gethostname())
    assert first == call_parts(settings).instance_id


def test_two_services_on_one_host_get_different_ids() -> None:
    """Another Stasis app or FastAGI port on the same host is another instance."""
    one = Settings()
    other_app = dataclasses.replace(one, ari=(AriServerSettings(app="consent-recorder-2"),))
    other_port = dataclasses.replace(one, agi=AgiSettings(port=4574))

    ids = {default_instance_id(s) for s in (one, other_app, other_port)}

    assert 3 == len(ids)


def test_a_configured_instance_id_wins() -> None:
    """``instance_id`` in the settings is used as it is, by the service and the AGI command."""
    settings = dataclasses.replace(Settings(), instance_id="pbx-east-1")

    assert "pbx-east-1" == build(settings).instance_id
    assert "pbx-east-1" == call_parts(settings).instance_id
    assert isinstance(build(settings), Service)

"""Settings of the consent flow and of the recording it hands to dialplan.

This module owns the flow's own, validated-elsewhere settings (``asterisk_recorder.settings``
builds them from TOML/env/CLI and runs ``check_flow_settings`` on them at load). Pure standard
library; no I/O. Defaults are what ships.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FlowSettings", "PromptSettings", "RecordingSettings"]


@dataclass(frozen=True, slots=True)
class PromptSettings:
    """Which sound plays for each mode, and in which languages it exists.

    Attributes:
        opt_in / opt_out / announce / never / none: Asterisk sound ids per mode (no extension).
        languages: languages the sounds exist in; the flow picks the caller's language through
            the fallback chain ``fr_CA`` -> ``fr`` -> ``fallback_language``.
        fallback_language: the last resort, always assumed to exist.
        opt_in_accept_after: seconds after ``PromptStarted`` from which the opt-in accept key
            counts as consent (the point of the prompt that names the key). None (the
            default): only after the prompt ended (``PromptFinished``). Keep it below the
            prompt's length. An accept key before that point is kept in the ledger as
            ``too_early`` and is not consent; the decline key counts at any time.
    """

    opt_in: str = "recorder/consent-opt-in"
    opt_out: str = "recorder/consent-opt-out"
    announce: str = "recorder/consent-announce"
    never: str = ""
    none: str = ""
    languages: tuple[str, ...] = ("en",)
    fallback_language: str = "en"
    opt_in_accept_after: float | None = None


@dataclass(frozen=True, slots=True)
class RecordingSettings:
    """How the recording file and MixMonitor options are built.

    The path is ``{directory}/{YYYY}/{MM}/{DD}/{decision_id}.{file_format}`` (UTC date of the
    decision): configuration, date and decision id only, never caller-controlled text.

    Attributes:
        directory: absolute directory Asterisk writes recordings into.
        file_format: ``wav``, ``wav49``, ``gsm``, ``sln`` ...
        mixmonitor_options: base MixMonitor options, e.g. ``b`` (only while bridged).
        start_beep: add ``p`` (beep when recording starts).
    """

    directory: str = "/var/spool/asterisk/monitor/recorder"
    file_format: str = "wav"
    mixmonitor_options: str = "b"
    start_beep: bool = False


@dataclass(frozen=True, slots=True)
class FlowSettings:
    """Keys, timeouts and prompts of the consent flow.

    Attributes:
        opt_out_key: refuses recording in ``opt_out`` mode.
        opt_in_accept_key / opt_in_decline_key: allow / refuse recording in ``opt_in`` mode.
        input_timeout: seconds to wait for a key after the disclosure ends.
        max_retries: how many times an invalid key (or no key, in opt_in) re-plays the prompt.
        play_prompt_for_never: play the ``never`` prompt (when set) before handing back.
        play_prompt_for_none: play the ``none`` prompt (when set) before handing back.
        answer_channel: answer the channel before the disclosure.
        guard_timeout: the longest the flow waits for ``Answered`` or for a prompt to finish
            (``PromptFinished``/``PromptFailed``) before it fails closed (not recorded).
    """

    opt_out_key: str = "1"
    opt_in_accept_key: str = "1"
    opt_in_decline_key: str = "2"
    input_timeout: float = 5.0
    max_retries: int = 2
    play_prompt_for_never: bool = False
    play_prompt_for_none: bool = False
    answer_channel: bool = True
    prompts: PromptSettings = field(default_factory=PromptSettings)
    recording: RecordingSettings = field(default_factory=RecordingSettings)
    guard_timeout: float = 120.0

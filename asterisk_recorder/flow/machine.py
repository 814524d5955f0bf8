"""The consent state machine: events in, actions out, no I/O.

This module owns ``State``, the ONE transition table ``TRANSITIONS`` (keyed by
``(state, event type)``) and ``ConsentFlow``, which both drivers (ARI controller, FastAGI
session) run once per call. Rules of this file:

1. Everything that decides what happens to a call lives here; drivers only carry out actions
   and report events.
2. Time is passed in on every event (``event.at``); the flow never reads a clock.
3. No event, in any state, raises: an event that makes no sense in the current state is
   ignored and counted in ``ConsentFlow.ignored``. The only exceptions are ``FlowError`` for
   driver misuse: invalid ``FlowSettings`` at construction and a ``CallOffered`` whose
   ``decision_id`` is not a UUID.
4. Exactly one ``StoreDecision`` per offered call; ``SetVariables`` + ``HandBack`` only after
   the ledger answered (``DecisionStored`` / ``DecisionStoreFailed``); never a hand-back after
   the caller hung up.
5. Fail closed: when anything goes wrong before a decision (a prompt that cannot be played in
   any language, no answer, a guard timer) the outcome is ``failed`` and nothing is recorded.

Life of a call (``answer_channel`` on, a mode with a disclosure)::

    NEW --CallOffered--> ANSWERING --Answered--> PROMPTING --PromptFinished--> AWAITING_INPUT
                                                     |  ^                           |
                               valid key (barge-in)  |  +--- invalid key/timeout ---+ (retries)
                                                     v                              v
                                      STORING <----------- decision ----------------+
                                         |  --DecisionStored / DecisionStoreFailed--> HANDED_BACK
                                         |  --CallerHungUp--> STORING_GONE --stored--> ENDED
    CallerHungUp before the decision: StoreDecision(abandoned) --> STORING_GONE --> ENDED

Timers: ``guard`` runs while waiting for ``Answered`` and while a prompt plays
(``FlowSettings.guard_timeout``); ``input`` runs after the disclosure
(``FlowSettings.input_timeout``). A driver that cancels or restarts a timer must not deliver
the old timer's expiry.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

from asterisk_recorder.errors import FlowError
from asterisk_recorder.flow.actions import (
    Action,
    Answer,
    CancelTimer,
    HandBack,
    PlayPrompt,
    SetVariables,
    StartTimer,
    StopPrompt,
    StoreDecision,
)
from asterisk_recorder.flow.decision import (
    ConsentDecision,
    KeyEffect,
    KeyPhase,
    KeyPress,
    Outcome,
    PartyRecord,
)
from asterisk_recorder.flow.events import (
    ActionFailed,
    Answered,
    CallerHungUp,
    CallInfo,
    CallOffered,
    DecisionStored,
    DecisionStoreFailed,
    DigitReceived,
    Event,
    PromptFailed,
    PromptFinished,
    PromptStarted,
    TimerExpired,
)
from asterisk_recorder.flow.recording import (
    RecordingPlan,
    check_recording_settings,
    validate_decision_id,
)
from asterisk_recorder.flow.settings import FlowSettings
from asterisk_recorder.policy.modes import Mode

if TYPE_CHECKING:
    from asterisk_recorder.policy.engine import PolicyEngine, PolicyResult

__all__ = [
    "DTMF_DIGITS",
    "EVENT_TYPES",
    "GUARD_TIMER",
    "INPUT_TIMER",
    "TRANSITIONS",
    "ConsentFlow",
    "State",
    "check_flow_settings",
    "language_chain",
    "transition_rows",
]

GUARD_TIMER: Final = "guard"
"""Timer bounding the wait for ``Answered`` and for a prompt to end."""

INPUT_TIMER: Final = "input"
"""Timer bounding the wait for a key after the disclosure."""

DTMF_DIGITS: Final = frozenset("0123456789*#ABCD")
"""The DTMF keys a caller can press."""

EVENT_TYPES: Final[tuple[type, ...]] = (
    CallOffered, Answered, PromptStarted, PromptFinished, PromptFailed, DigitReceived,
    TimerExpired, CallerHungUp, ActionFailed, DecisionStored, DecisionStoreFailed,
)
"""Every event type the flow accepts."""

_SOUND_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]*\Z")
_LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,3}(?:[_-][A-Za-z0-9]{1,8})*\Z")
_PRINTABLE_RE = re.compile(r"[^\x20-\x7e]")
_MAX_IGNORED_KEPT = 32


class State(enum.Enum):
    """Where a consent flow is."""

    __hash__ = object.__hash__  # members are singletons; identity hashing is faster

    NEW = "new"
    """Waiting for ``CallOffered``."""
    ANSWERING = "answering"
    """``Answer`` sent; waiting for ``Answered`` (guard timer running)."""
    PROMPTING = "prompting"
    """The disclosure is playing (guard timer running); a valid key barges in."""
    AWAITING_INPUT = "awaiting_input"
    """The disclosure ended; waiting for a key (input timer running)."""
    STORING = "storing"
    """``StoreDecision`` sent; the channel is handed back once the ledger answers."""
    STORING_GONE = "storing_gone"
    """``StoreDecision`` sent; the channel is gone, so there will be no hand-back."""
    HANDED_BACK = "handed_back"
    """Final: variables set and the channel handed back to dialplan."""
    ENDED = "ended"
    """Final: the decision was stored (or failed to), the channel is gone."""


_FINAL = frozenset({State.HANDED_BACK, State.ENDED})
_PROMPT_MODES = frozenset({Mode.OPT_IN, Mode.OPT_OUT, Mode.ANNOUNCE})


def _safe(text: str, limit: int = 80) -> str:
    """Driver-supplied text made printable and short, for a ``reason``."""
    return _PRINTABLE_RE.sub("?", str(text)[:limit])


def language_chain(language: str, available: tuple[str, ...], fallback: str) -> tuple[str, ...]:
    """Languages to try, best first: ``fr_CA`` -> ``fr`` -> ``fallback``, limited to ``available``.

    Only configured language names are ever returned, so channel text never reaches an action.
    """
    if len(language) <= 32:
        return _language_chain_cached(language, available, fallback)
    return _language_chain(language, available, fallback)


def _language_chain(language: str, available: tuple[str, ...], fallback: str) -> tuple[str, ...]:
    chain: list[str] = []
    candidate = language.strip()
    while candidate:
        if candidate in available and candidate not in chain:
            chain.append(candidate)
        cut = max(candidate.rfind("_"), candidate.rfind("-"))
        candidate = candidate[:cut] if cut > 0 else ""
    if fallback not in chain:
        chain.append(fallback)
    return tuple(chain)


def check_flow_settings(settings: FlowSettings) -> list[str]:
    """Every problem with ``settings`` (one line each); empty when the flow can run with them."""
    problems: list[str] = []
    for name in ("opt_out_key", "opt_in_accept_key", "opt_in_decline_key"):
        key = getattr(settings, name)
        if not isinstance(key, str) or key not in DTMF_DIGITS:
            problems.append(f"flow.{name} {key!r} must be one DTMF key (0-9 * # A-D)")
    if settings.opt_in_accept_key == settings.opt_in_decline_key:
        problems.append("flow.opt_in_accept_key and flow.opt_in_decline_key must differ")
    for name in ("input_timeout", "guard_timeout"):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            0 < value <= 3600
        ):
            problems.append(f"flow.{name} {value!r} must be a number of seconds in (0, 3600]")
    after: object = settings.prompts.opt_in_accept_after
    if after is not None and (
        isinstance(after, bool) or not isinstance(after, (int, float))
        or not math.isfinite(after) or after < 0
    ):
        problems.append(
            f"flow.prompts.opt_in_accept_after {after!r} must be a finite number of seconds "
            ">= 0 after the prompt starts, or unset (the end of the prompt)"
        )
    retries: object = settings.max_retries
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
        problems.append(f"flow.max_retries {retries!r} must be an integer 0..10")
    prompts = settings.prompts
    for mode in Mode:
        sound = getattr(prompts, mode.value)
        required = mode in _PROMPT_MODES
        if not isinstance(sound, str) or (required and not sound):
            problems.append(f"flow.prompts.{mode.value} must name a sound")
        elif sound and (not _SOUND_RE.match(sound) or ".." in sound.split("/")):
            problems.append(
                f"flow.prompts.{mode.value} {sound[:60]!r} must be a sound id of letters, "
                "digits and _ . - / (no extension, no '..')"
            )
    languages: tuple[object, ...] = (*prompts.languages, prompts.fallback_language)
    for lang in languages:
        if not isinstance(lang, str) or not _LANGUAGE_RE.match(lang):
            problems.append(f"flow.prompts language {str(lang)[:20]!r} is not a language code")
    problems.extend(f"flow.{p}" for p in check_recording_settings(settings.recording))
    return problems


_language_chain_cached = lru_cache(maxsize=256)(_language_chain)


class _Plan:
    """Validated ``FlowSettings`` with the constant actions of every flow precomputed."""

    __slots__ = (
        "accept_after", "prompts", "recording", "settings", "start_guard", "start_input",
    )

    def __init__(self, settings: FlowSettings) -> None:
        problems = check_flow_settings(settings)
        if problems:
            raise FlowError("invalid flow settings: " + "; ".join(problems))
        self.settings = settings
        self.recording = RecordingPlan(settings.recording)
        self.start_guard = StartTimer(GUARD_TIMER, settings.guard_timeout)
        self.start_input = StartTimer(INPUT_TIMER, settings.input_timeout)
        self.accept_after: float | None = settings.prompts.opt_in_accept_after
        self.prompts: dict[tuple[str, str, str], PlayPrompt] = {}

    def play(self, sound: str, language: str, escape: str) -> PlayPrompt:
        """The (shared, immutable) PlayPrompt action for these arguments."""
        key = (sound, language, escape)
        action = self.prompts.get(key)
        if action is None:
            action = self.prompts[key] = PlayPrompt(sound, language, escape)
        return action


_PLANS: dict[int, _Plan] = {}


def _plan_for(settings: FlowSettings) -> _Plan:
    plan = _PLANS.get(id(settings))
    if plan is not None and plan.settings is settings:
        return plan
    plan = _Plan(settings)
    if len(_PLANS) >= 64:
        _PLANS.clear()
    _PLANS[id(settings)] = plan
    return plan


_DECISION_FIELDS: Final = (
    "decision_id", "driver", "channel_id", "channel_name", "uniqueid", "linkedid",
    "asterisk_id", "instance_id", "caller_number", "caller_name", "called_number", "parties",
    "mode", "policy_rows", "policy_version", "prompt_id", "language", "keys", "outcome",
    "reason", "offered_at", "answered_at", "disclosure_started_at", "disclosure_finished_at",
    "decided_at", "recording_path",
)
"""The order in which ``_decide`` passes ``ConsentDecision``'s fields (pinned by a test)."""

_RECORDING: Final = (
    Outcome.RECORDED_NOTIFIED, Outcome.RECORDED_CONSENTED, Outcome.RECORDED_NO_NOTICE,
)
"""Outcomes that record (``Outcome.records``, as a tuple: identity tests beat enum hashing)."""

_CANCEL = {GUARD_TIMER: CancelTimer(GUARD_TIMER), INPUT_TIMER: CancelTimer(INPUT_TIMER)}
_ANSWER = Answer()
_STOP = StopPrompt()
_HANDBACK = HandBack()


class ConsentFlow:
    """The consent flow of one call. Feed it events with ``handle``; do the actions it returns.

    Attributes:
        state: the current ``State``.
        decision: the decision once made (the one sent in ``StoreDecision``), else None.
        policy: the ``PolicyResult`` of the call once offered.
        variables: the ``RECORDER_*`` variables of the hand-back, once sent.
        ignored: how many events were ignored because they made no sense in their state.
        ignored_events: the first few ignored events as ``(state, event type)`` names.
        errors: internal errors caught (always empty unless there is a bug; the flow then
            failed closed).
    """

    # Defaults live on the class (all immutable), so creating a flow sets three attributes.
    state: State = State.NEW
    decision: ConsentDecision | None = None
    policy: PolicyResult | None = None
    mode: Mode | None = None
    variables: tuple[tuple[str, str], ...] = ()
    ignored: int = 0
    ignored_events: tuple[tuple[str, str], ...] = ()
    errors: tuple[str, ...] = ()
    _call: CallInfo | None = None
    _chain: tuple[str, ...] = ()
    _lang_index: int = 0
    _sound: str = ""
    _escape: str = ""
    _valid: str = ""
    _retries: int = 0
    _keys: tuple[KeyPress, ...] = ()
    _timers: tuple[str, ...] = ()
    _offered_at: float = 0.0
    _answered_at: float | None = None
    _started_at: float | None = None
    _finished_at: float | None = None
    _prompt_played: bool = False
    _play_started_at: float | None = None
    _play_cut: bool = False
    _informed: bool = False
    _policy_note: str = ""

    def __init__(self, settings: FlowSettings, policy: PolicyEngine) -> None:
        """Create the flow of one call.

        Raises:
            FlowError: ``settings`` are invalid (see ``check_flow_settings``).
        """
        self._plan = _plan_for(settings)
        self._settings = settings
        self.policy_engine = policy

    @property
    def done(self) -> bool:
        """True once the flow has nothing more to do (handed back, or ended after a hang-up)."""
        return self.state in _FINAL

    def handle(self, event: Event) -> list[Action]:
        """Advance the flow by one event and return the actions to carry out, in order.

        Raises:
            FlowError: only for a ``CallOffered`` whose ``decision_id`` is not a UUID.
        """
        try:
            handler = _DISPATCH[self.state][type(event)]
        except KeyError:  # not an event type of the flow
            return self._note_ignored(event)
        try:
            return handler(self, event)
        except FlowError:
            if type(event) is CallOffered and self._call is None:
                raise  # the decision id is not a UUID: driver misuse
            return self._internal_error(event, "FlowError")
        except Exception as exc:  # fail closed on any bug; never raise into a driver
            return self._internal_error(event, type(exc).__name__)

    # -- helpers used by the transition functions --------------------------------------------

    def _note_ignored(self, event: object) -> list[Action]:
        self.ignored += 1
        if len(self.ignored_events) < _MAX_IGNORED_KEPT:
            self.ignored_events += ((self.state.value, type(event).__name__),)
        return []

    def _internal_error(self, event: object, kind: str) -> list[Action]:
        self.errors += (f"{kind} handling {type(event).__name__} in {self.state.value}",)
        if self._call is not None and self.state in (
            State.ANSWERING, State.PROMPTING, State.AWAITING_INPUT, State.NEW,
        ):
            at = getattr(event, "at", self._offered_at)
            try:
                return self._decide(Outcome.FAILED, f"internal error ({kind})", at)
            except Exception:  # the fallback itself failed: stop, never raise
                self.errors += ("could not store a failed decision",)
        if self.state not in _FINAL and self.decision is None:
            self.state = State.ENDED
        return []

    def _start(self, action: StartTimer) -> StartTimer:
        if action.name not in self._timers:
            self._timers += (action.name,)
        return action

    def _stopped(self, name: str) -> None:
        """The timer ``name`` is no longer running (it expired)."""
        timers = self._timers
        if name in timers:
            i = timers.index(name)
            self._timers = timers[:i] + timers[i + 1:]

    def _cancel_timer(self, name: str) -> list[Action]:
        if name in self._timers:
            self._stopped(name)
            return [_CANCEL[name]]
        return []

    def _play(self) -> list[Action]:
        """Play the prompt in the current language, with the guard timer."""
        self.state = State.PROMPTING
        self._prompt_played = True
        self._play_started_at = None
        self._play_cut = False
        plan = self._plan
        return [
            plan.play(self._sound, self._chain[self._lang_index], self._escape),
            self._start(plan.start_guard),
        ]

    def _replay_or(self, outcome: Outcome, reason: str, at: float) -> list[Action]:
        """Re-prompt if retries are left, else decide ``outcome``."""
        if self._retries < self._settings.max_retries:
            self._retries += 1
            return [*self._cancel_timer(INPUT_TIMER), *self._play()]
        return self._decide(
            outcome, f"{reason}; no retries left ({self._settings.max_retries})", at
        )

    def _decide(
        self, outcome: Outcome, reason: str, at: float, *, gone: bool = False,
        before: list[Action] | None = None,
    ) -> list[Action]:
        """Make the decision, cancel running timers and emit ``StoreDecision``."""
        call = self._call
        if call is None:  # pragma: no cover - every caller checks the call is offered
            raise FlowError("no call offered")
        actions: list[Action] = list(before) if before else []
        if self._policy_note:
            reason += self._policy_note
        if self._timers:
            for name in sorted(self._timers):
                actions.append(_CANCEL[name])
            self._timers = ()
        path: str | None = None
        options = ""
        record = outcome in _RECORDING
        if record:
            try:
                plan = self._plan.recording
                path = plan.path_for_valid_id(call.decision_id, at)
                options = plan.options(self.policy.beep_interval if self.policy else None)
            except FlowError as exc:
                record = False
                outcome, path, options = Outcome.FAILED, None, ""
                reason = f"{reason}; recording path not built: {_safe(str(exc))}"
        policy = self.policy
        mode = self.mode if self.mode is not None else Mode.NEVER
        parties: tuple[PartyRecord, ...] = policy.parties if policy else ()
        language = self._chain[self._lang_index] if self._chain else ""
        # Positional, in _DECISION_FIELDS order (a test pins it to the dataclass): keyword
        # arguments cost a third of a call's time in the benchmark.
        decision = ConsentDecision(
            call.decision_id, call.driver, call.channel_id, call.channel_name, call.uniqueid,
            call.linkedid, call.asterisk_id, call.instance_id, call.caller_number,
            call.caller_name, call.called_number, parties, mode,
            policy.rows if policy else (), policy.version if policy else "",
            self._sound if self._prompt_played else None, language, self._keys,
            outcome, reason, self._offered_at, self._answered_at, self._started_at,
            self._finished_at, at, path,
        )
        self.decision = decision
        self.variables = (
            ("RECORDER_DECISION", "record" if record else "skip"),
            ("RECORDER_OUTCOME", outcome._value_),
            ("RECORDER_DECISION_ID", call.decision_id),
            ("RECORDER_FILE", path or ""),
            ("RECORDER_MIXMON_OPTIONS", options),
            ("RECORDER_MODE", mode._value_),
        )
        actions.append(StoreDecision(decision, () if gone else self.variables))
        self.state = State.STORING_GONE if gone else State.STORING
        return actions

    def _note_key(self, event: DigitReceived, phase: KeyPhase, effect: KeyEffect) -> None:
        """Keep a key as evidence: when, relative to which prompt play, and what it did."""
        self._keys += (KeyPress(event.digit, event.at, self._play_started_at, phase, effect),)

    def _accepts(self, at: float) -> bool:
        """True when an opt-in accept key at ``at`` is informed consent.

        That is once the caller heard a prompt to its end, or, with
        ``prompts.opt_in_accept_after`` set, from that many seconds into the current play.
        """
        if self._informed:
            return True
        after = self._plan.accept_after
        started = self._play_started_at
        return after is not None and started is not None and at - started >= after

    def _decide_key(
        self, event: DigitReceived, phase: KeyPhase, before: list[Action]
    ) -> list[Action]:
        """Decide on a valid key of the current mode; the reason says when it came."""
        digit, at = event.digit, event.at
        started = self._play_started_at
        if phase is KeyPhase.AFTER_PROMPT:
            when = "after the prompt ended"
        elif started is None:
            when = "before the prompt started again"
        else:
            when = f"{at - started:.3f} s into the prompt"
        if self.mode is Mode.OPT_OUT:
            effect, outcome, name = KeyEffect.OPT_OUT, Outcome.NOT_RECORDED_OPTED_OUT, "opt-out"
        elif digit == self._settings.opt_in_accept_key:
            effect, outcome, name = KeyEffect.CONSENT, Outcome.RECORDED_CONSENTED, "accept"
            if phase is KeyPhase.DURING_PROMPT:
                when += (
                    " (the prompt had played to its end before)" if self._informed
                    else f" (counts from {self._plan.accept_after:g} s)"
                )
        else:
            effect, outcome, name = KeyEffect.DECLINE, Outcome.NOT_RECORDED_DECLINED, "decline"
        self._note_key(event, phase, effect)
        return self._decide(outcome, f"caller pressed the {name} key {digit} {when}", at,
                            before=before)

    def _after_prompt(self, at: float) -> list[Action]:
        """The disclosure ended: wait for a key, or decide for modes without a choice."""
        mode = self.mode
        if mode is Mode.OPT_OUT or mode is Mode.OPT_IN:
            self.state = State.AWAITING_INPUT
            return [self._start(self._plan.start_input)]
        if mode is Mode.ANNOUNCE:
            return self._decide(Outcome.RECORDED_NOTIFIED, "disclosure played (announce)", at)
        if mode is Mode.NONE:
            return self._decide(Outcome.RECORDED_NO_NOTICE, "mode none (prompt played)", at)
        return self._decide(Outcome.NOT_RECORDED_POLICY, "mode never (prompt played)", at)

    def _fail(self, reason: str, at: float, before: list[Action] | None = None) -> list[Action]:
        return self._decide(Outcome.FAILED, reason, at, before=before)

    def _hand_back(self, *, stored: bool) -> list[Action]:
        if not stored:
            decision_id = self.decision.decision_id if self.decision else ""
            mode = self.mode.value if self.mode else ""
            self.variables = (
                ("RECORDER_DECISION", "skip"),
                ("RECORDER_OUTCOME", Outcome.FAILED.value),
                ("RECORDER_DECISION_ID", decision_id),
                ("RECORDER_FILE", ""),
                ("RECORDER_MIXMON_OPTIONS", ""),
                ("RECORDER_MODE", mode),
            )
        self.state = State.HANDED_BACK
        return [SetVariables(self.variables), _HANDBACK]


# -- transition functions: (flow, event) -> actions; each sets flow.state --------------------


def _ignore(flow: ConsentFlow, event: object) -> list[Action]:
    """The event makes no sense in this state: count it and do nothing."""
    return flow._note_ignored(event)


def _offered(flow: ConsentFlow, event: CallOffered) -> list[Action]:
    """Evaluate the policy and start the disclosure (or decide at once for never/none)."""
    call = event.call
    validate_decision_id(call.decision_id)
    flow._call = call
    flow._offered_at = event.at
    s = flow._settings
    prompts = s.prompts
    flow._chain = language_chain(call.language, prompts.languages, prompts.fallback_language)
    engine = flow.policy_engine
    try:
        result = engine.evaluate(
            call.caller_number, call.called_number,
            policy_override=call.policy_override,
            jurisdiction_override=call.jurisdiction_override,
        )
    except Exception as exc:  # the engine promises not to raise; fail closed if it does
        flow.mode = getattr(getattr(engine, "settings", None), "unknown_mode", Mode.NEVER)
        return flow._fail(f"policy evaluation failed ({type(exc).__name__})", event.at)
    flow.policy = result
    mode = flow.mode = result.mode
    if result.forced or result.notes:
        notes = ("mode forced by RECORDER_POLICY",) if result.forced else ()
        flow._policy_note = "; " + "; ".join((*notes, *result.notes))
    if mode is Mode.OPT_OUT:
        flow._sound = prompts.opt_out
        flow._escape = flow._valid = s.opt_out_key
    elif mode is Mode.OPT_IN:
        flow._sound = prompts.opt_in
        flow._valid = s.opt_in_accept_key + s.opt_in_decline_key
        # The accept key stops the prompt (AGI escape digit) only where it can count: with no
        # accept point inside the prompt, pressing it early must not cut the disclosure short.
        flow._escape = flow._valid if flow._plan.accept_after is not None else (
            s.opt_in_decline_key
        )
    elif mode is Mode.ANNOUNCE:
        flow._sound = prompts.announce
    elif mode is Mode.NEVER:
        flow._sound = prompts.never if s.play_prompt_for_never else ""
    else:
        flow._sound = prompts.none if s.play_prompt_for_none else ""
    if not flow._sound:
        if mode is Mode.NEVER:
            return flow._decide(Outcome.NOT_RECORDED_POLICY, "mode never: not recorded", event.at)
        return flow._decide(
            Outcome.RECORDED_NO_NOTICE, "mode none: recorded without notice", event.at
        )
    if s.answer_channel:
        flow.state = State.ANSWERING
        return [_ANSWER, flow._start(flow._plan.start_guard)]
    return flow._play()


def _answered(flow: ConsentFlow, event: Answered) -> list[Action]:
    """The channel is up: play the disclosure."""
    flow._answered_at = event.at
    return [*flow._cancel_timer(GUARD_TIMER), *flow._play()]


def _late_answered(flow: ConsentFlow, event: Answered) -> list[Action]:
    """Answered outside ANSWERING (``answer_channel`` off): note the time only."""
    if flow._answered_at is None:
        flow._answered_at = event.at
        return []
    return flow._note_ignored(event)


def _prompt_started(flow: ConsentFlow, event: PromptStarted) -> list[Action]:
    """The disclosure started: note the time; from now on keys are no longer type-ahead."""
    if flow._started_at is None:
        flow._started_at = event.at
    if flow._play_started_at is None:
        flow._play_started_at = event.at
    return []


def _prompt_finished(flow: ConsentFlow, event: PromptFinished) -> list[Action]:
    """The disclosure ended: wait for a key, or decide (an opt-in prompt cut short replays).

    Cut short: an early accept key that is an escape digit stops AGI's ``STREAM FILE`` before
    the prompt named the key, so the caller was not informed: the prompt plays again
    (a retry), and without retries left the call is not recorded.
    """
    flow._finished_at = event.at
    if flow._started_at is None:
        flow._started_at = event.at
    cancel = flow._cancel_timer(GUARD_TIMER)
    if flow._play_cut and not flow._accepts(event.at):
        return [*cancel, *flow._replay_or(
            Outcome.NOT_RECORDED_NO_CONSENT,
            "prompt cut short by the accept key before it named that key", event.at,
        )]
    flow._informed = True
    return [*cancel, *flow._after_prompt(event.at)]


def _next_language(flow: ConsentFlow, at: float, why: str) -> list[Action]:
    """Try the prompt in the next language of the chain, or fail closed."""
    if flow._lang_index + 1 < len(flow._chain):
        flow._lang_index += 1
        return [*flow._cancel_timer(GUARD_TIMER), *flow._play()]
    tried = ", ".join(flow._chain)
    return flow._fail(f"prompt {flow._sound} could not be played ({tried}): {_safe(why)}", at)


def _prompt_failed(flow: ConsentFlow, event: PromptFailed) -> list[Action]:
    """The prompt could not be played: next language, else fail closed."""
    return _next_language(flow, event.at, event.reason)


def _digit_answering(flow: ConsentFlow, event: DigitReceived) -> list[Action]:
    """A key before the disclosure started (type-ahead): kept as evidence, counts as nothing.

    The caller cannot know yet which key means what (the digit is typically left over from an
    IVR menu), so it is neither consent nor a refusal; the refusal keys count from the first
    moment of the prompt.
    """
    if event.digit not in DTMF_DIGITS:
        return flow._note_ignored(event)
    flow._note_key(event, KeyPhase.BEFORE_PROMPT, KeyEffect.TYPE_AHEAD)
    return []


def _digit_prompting(flow: ConsentFlow, event: DigitReceived) -> list[Action]:
    """Barge-in: a refusal decides at once, the accept key once the prompt named it.

    Keys before the first ``PromptStarted`` are type-ahead (count as nothing); an accept key
    before the accept point is ``too_early``; other keys are only kept.
    """
    digit = event.digit
    if digit not in DTMF_DIGITS:
        return flow._note_ignored(event)
    if flow._started_at is None:
        flow._note_key(event, KeyPhase.BEFORE_PROMPT, KeyEffect.TYPE_AHEAD)
        return []
    if digit not in flow._valid:
        flow._note_key(event, KeyPhase.DURING_PROMPT, KeyEffect.NO_EFFECT)
        return []
    if (
        flow.mode is Mode.OPT_IN
        and digit == flow._settings.opt_in_accept_key
        and not flow._accepts(event.at)
    ):
        flow._play_cut |= digit in flow._escape
        flow._note_key(event, KeyPhase.DURING_PROMPT, KeyEffect.TOO_EARLY)
        return []
    return flow._decide_key(event, KeyPhase.DURING_PROMPT, [_STOP])


def _digit_waiting(flow: ConsentFlow, event: DigitReceived) -> list[Action]:
    """A key after the disclosure: decide on a valid key, re-prompt on another one."""
    digit = event.digit
    if digit not in DTMF_DIGITS:
        return flow._note_ignored(event)
    if digit in flow._valid:  # the prompt played to its end: every key of the mode counts
        return flow._decide_key(event, KeyPhase.AFTER_PROMPT, [])
    flow._note_key(event, KeyPhase.AFTER_PROMPT, KeyEffect.INVALID)
    if flow.mode is Mode.OPT_IN:
        return flow._replay_or(Outcome.NOT_RECORDED_NO_CONSENT, "no valid key", event.at)
    return flow._replay_or(
        Outcome.RECORDED_NOTIFIED, "disclosure played, no opt-out key", event.at
    )


def _timer_answering(flow: ConsentFlow, event: TimerExpired) -> list[Action]:
    """No ``Answered`` within the guard time: fail closed."""
    if event.name != GUARD_TIMER:
        return flow._note_ignored(event)
    flow._stopped(GUARD_TIMER)
    return flow._fail(
        f"channel not answered within {flow._settings.guard_timeout:g}s", event.at
    )


def _timer_prompting(flow: ConsentFlow, event: TimerExpired) -> list[Action]:
    """The prompt did not end within the guard time: stop it and fail closed."""
    if event.name != GUARD_TIMER:
        return flow._note_ignored(event)
    flow._stopped(GUARD_TIMER)
    return flow._fail(
        f"prompt did not finish within {flow._settings.guard_timeout:g}s", event.at,
        before=[_STOP],
    )


def _timer_waiting(flow: ConsentFlow, event: TimerExpired) -> list[Action]:
    """No key after the disclosure: opt-out records, opt-in re-prompts then gives up."""
    if event.name != INPUT_TIMER:
        return flow._note_ignored(event)
    flow._stopped(INPUT_TIMER)
    if flow.mode is Mode.OPT_IN:
        return flow._replay_or(Outcome.NOT_RECORDED_NO_CONSENT, "no key (timeout)", event.at)
    return flow._decide(
        Outcome.RECORDED_NOTIFIED, "disclosure played, no opt-out key (timeout)", event.at
    )


def _hung_up(flow: ConsentFlow, event: CallerHungUp) -> list[Action]:
    """The caller hung up before the decision: store ``abandoned``, no hand-back."""
    return flow._decide(
        Outcome.ABANDONED, f"caller hung up while {flow.state.value}", event.at, gone=True
    )


def _gone_while_storing(flow: ConsentFlow, event: Event) -> list[Action]:
    """The channel went away after the decision: no hand-back, nothing else to store."""
    flow.state = State.STORING_GONE
    return []


_HARMLESS_FAILURES: Final = frozenset({"StopPrompt", "CancelTimer"})
"""Actions whose failure changes nothing (the prompt or timer is over anyway)."""


def _failed_before_decision(flow: ConsentFlow, event: ActionFailed) -> list[Action]:
    """Failed action: channel gone -> abandoned; prompt -> next language; else fail closed.

    Channel gone: ``abandoned``, no hand-back. ``PlayPrompt`` while prompting: the next
    language. ``StopPrompt`` / ``CancelTimer``: nothing. Anything else (``Answer``,
    ``StartTimer``, or a driver's own ``Abort`` on shutdown): fail closed, not recorded.
    """
    action = _safe(event.action)
    if event.channel_gone:
        return flow._decide(
            Outcome.ABANDONED, f"channel gone ({action} failed)", event.at, gone=True
        )
    if event.action in _HARMLESS_FAILURES:
        return flow._note_ignored(event)
    if event.action == "PlayPrompt" and flow.state is State.PROMPTING:
        return _next_language(flow, event.at, event.reason)
    before: list[Action] = [_STOP] if flow.state is State.PROMPTING else []
    return flow._fail(f"{action} failed: {_safe(event.reason)}", event.at, before=before)


def _failed_storing(flow: ConsentFlow, event: ActionFailed) -> list[Action]:
    """StoreDecision failed: hand back, not recorded; channel gone: no hand-back."""
    if event.channel_gone:
        return _gone_while_storing(flow, event)
    if event.action == "StoreDecision":
        return flow._hand_back(stored=False)
    return flow._note_ignored(event)


def _failed_storing_gone(flow: ConsentFlow, event: ActionFailed) -> list[Action]:
    """StoreDecision failed after the channel left: the flow ends."""
    if event.action == "StoreDecision":
        flow.state = State.ENDED
        return []
    return flow._note_ignored(event)


def _stored(flow: ConsentFlow, event: DecisionStored) -> list[Action]:
    """The ledger kept the decision: set the variables and hand the channel back."""
    if flow.decision is None or event.decision_id != flow.decision.decision_id:
        return flow._note_ignored(event)
    return flow._hand_back(stored=True)


def _store_failed(flow: ConsentFlow, event: DecisionStoreFailed) -> list[Action]:
    """The ledger could not keep the decision: hand back with ``skip`` (fail closed).

    ``RECORDER_DECISION`` is ``skip`` and ``RECORDER_OUTCOME`` is ``failed`` so that no dialplan
    branch records a call whose consent evidence was not kept; ``flow.decision`` still holds
    the decision that was sent for storing.
    """
    return flow._hand_back(stored=False)


def _stored_gone(flow: ConsentFlow, event: DecisionStored) -> list[Action]:
    """Stored after the channel left: the flow ends without a hand-back."""
    if flow.decision is None or event.decision_id != flow.decision.decision_id:
        return flow._note_ignored(event)
    flow.state = State.ENDED
    return []


def _store_failed_gone(flow: ConsentFlow, event: DecisionStoreFailed) -> list[Action]:
    """Store failed after the channel left: the flow ends."""
    flow.state = State.ENDED
    return []


_Handler = Callable[[ConsentFlow, Any], list[Action]]

_S = State
TRANSITIONS: Final[dict[tuple[State, type], _Handler]] = {
    **{(state, etype): _ignore for state in State for etype in EVENT_TYPES},
    (_S.NEW, CallOffered): _offered,
    (_S.ANSWERING, Answered): _answered,
    (_S.ANSWERING, DigitReceived): _digit_answering,
    (_S.ANSWERING, TimerExpired): _timer_answering,
    (_S.ANSWERING, CallerHungUp): _hung_up,
    (_S.ANSWERING, ActionFailed): _failed_before_decision,
    (_S.PROMPTING, Answered): _late_answered,
    (_S.PROMPTING, PromptStarted): _prompt_started,
    (_S.PROMPTING, PromptFinished): _prompt_finished,
    (_S.PROMPTING, PromptFailed): _prompt_failed,
    (_S.PROMPTING, DigitReceived): _digit_prompting,
    (_S.PROMPTING, TimerExpired): _timer_prompting,
    (_S.PROMPTING, CallerHungUp): _hung_up,
    (_S.PROMPTING, ActionFailed): _failed_before_decision,
    (_S.AWAITING_INPUT, Answered): _late_answered,
    (_S.AWAITING_INPUT, DigitReceived): _digit_waiting,
    (_S.AWAITING_INPUT, TimerExpired): _timer_waiting,
    (_S.AWAITING_INPUT, CallerHungUp): _hung_up,
    (_S.AWAITING_INPUT, ActionFailed): _failed_before_decision,
    (_S.STORING, CallerHungUp): _gone_while_storing,
    (_S.STORING, ActionFailed): _failed_storing,
    (_S.STORING, DecisionStored): _stored,
    (_S.STORING, DecisionStoreFailed): _store_failed,
    (_S.STORING_GONE, ActionFailed): _failed_storing_gone,
    (_S.STORING_GONE, DecisionStored): _stored_gone,
    (_S.STORING_GONE, DecisionStoreFailed): _store_failed_gone,
}
"""THE transition table: ``(state, event type) -> transition function``.

Every pair is present; pairs mapped to ``_ignore`` change nothing (the event is counted in
``ConsentFlow.ignored``). Transition functions set the next state themselves.
"""

_DISPATCH: Final[dict[State, dict[type, _Handler]]] = {
    state: {etype: TRANSITIONS[(state, etype)] for etype in EVENT_TYPES} for state in State
}


def transition_rows() -> list[tuple[str, str, str]]:
    """``(state, event type, what happens)`` for every pair that is not ignored, table order.

    ``docs/policy.md`` shows this table (a test keeps the two in step).
    """
    rows: list[tuple[str, str, str]] = []
    for state in State:
        for etype in EVENT_TYPES:
            handler = TRANSITIONS[(state, etype)]
            if handler is _ignore:
                continue
            doc = (handler.__doc__ or handler.__name__).strip().splitlines()[0]
            rows.append((state.value, etype.__name__, doc))
    return rows

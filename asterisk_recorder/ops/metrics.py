"""A tiny, dependency-free Prometheus registry and the product's metrics.

This module owns the metric types (``Counter``, ``Gauge``, ``Histogram``), their text exposition
(Prometheus text format 0.0.4: ``# HELP``/``# TYPE`` lines, escaped label values) and
``RecorderMetrics``, the one set of metrics asterisk-recorder exports. It must not do I/O
(``ops.http`` serves the text) and must not import the drivers: they call into it.

Everything here runs on the event loop thread; no locking is done.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "FLOW_BUCKETS",
    "REACTION_BUCKETS",
    "Counter",
    "Gauge",
    "Histogram",
    "Metric",
    "RecorderMetrics",
    "Registry",
    "escape_help",
    "escape_label_value",
    "format_value",
]

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

FLOW_BUCKETS: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 20.0, 30.0, 60.0)
"""Buckets (seconds) of ``asterisk_recorder_flow_seconds``: a disclosure lasts seconds."""

REACTION_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)
"""Buckets (seconds) of ``asterisk_recorder_reaction_seconds``: the target p99 is 5 ms."""


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it: ``1.0``, ``0.005``, ``+Inf``, ``-Inf``, ``NaN``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def escape_label_value(value: str) -> str:
    """Escape a label value: backslash, double quote and newline (format 0.0.4).

    Lone surrogates (text decoded from invalid UTF-8 with ``surrogateescape``) are written as
    backslash escapes so the exposition always encodes to UTF-8.
    """
    value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """Escape HELP text: backslash and newline (format 0.0.4)."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _check_name(name: str) -> None:
    if not _METRIC_NAME.fullmatch(name):
        raise ValueError(f"invalid metric name {name!r}")


_PARAMETER_NAMES = ("amount", "value")
"""Label names that would collide with the keyword parameters of ``inc``/``set``/``observe``."""


def _check_label_names(names: Sequence[str], *, reserved: Iterable[str] = ()) -> tuple[str, ...]:
    reserved_set = {*reserved, *_PARAMETER_NAMES}
    for name in names:
        if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
            raise ValueError(f"invalid label name {name!r}")
        if name in reserved_set:
            raise ValueError(f"label name {name!r} is reserved for this metric type")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate label names in {list(names)!r}")
    return tuple(names)


def _label_text(pairs: Sequence[tuple[str, str]]) -> str:
    if not pairs:
        return ""
    inner = ",".join(f'{name}="{escape_label_value(value)}"' for name, value in pairs)
    return "{" + inner + "}"


class Metric:
    """Common parts of a metric family: name, help text, label names, exposition."""

    type_name = "untyped"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        _check_name(name)
        self.name = name
        self.documentation = documentation
        self.labelnames = _check_label_names(labelnames, reserved=self._reserved_labels())

    @staticmethod
    def _reserved_labels() -> tuple[str, ...]:
        return ()

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        if set(labels) != set(self.labelnames):
            raise ValueError(
                f"{self.name} takes labels {list(self.labelnames)}, got {sorted(labels)}"
            )
        for name, value in labels.items():
            if not isinstance(value, str):
                raise TypeError(f"label {name!r} of {self.name} must be str, got {type(value)}")
        return tuple(labels[name] for name in self.labelnames)

    def samples(self) -> list[str]:
        """The sample lines of this family, without HELP/TYPE."""
        raise NotImplementedError

    def exposition(self) -> str:
        """HELP, TYPE and sample lines, each ending in a newline."""
        lines = [
            f"# HELP {self.name} {escape_help(self.documentation)}",
            f"# TYPE {self.name} {self.type_name}",
            *self.samples(),
        ]
        return "\n".join(lines) + "\n"


class Counter(Metric):
    """A value that only goes up (``inc``), one per combination of label values."""

    type_name = "counter"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, documentation, labelnames)
        self._values: dict[tuple[str, ...], float] = {}
        if not self.labelnames:
            self._values[()] = 0.0

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        """Add ``amount`` (>= 0) to the series named by ``labels``.

        Raises:
            ValueError: a negative amount, or labels that are not exactly the declared ones.
        """
        if amount < 0 or math.isnan(amount):
            raise ValueError(f"{self.name}: a counter cannot go down (amount {amount!r})")
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        """The current value of one series (0.0 if it was never incremented)."""
        return self._values.get(self._key(labels), 0.0)

    def samples(self) -> list[str]:
        """One line per series, in first-seen order."""
        return [
            f"{self.name}{_label_text(list(zip(self.labelnames, key, strict=True)))} "
            f"{format_value(value)}"
            for key, value in self._values.items()
        ]


class Gauge(Metric):
    """A value that goes up and down, or is read from a callback at exposition time."""

    type_name = "gauge"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, documentation, labelnames)
        self._values: dict[tuple[str, ...], float] = {}
        self._function: Callable[[], float] | None = None
        if not self.labelnames:
            self._values[()] = 0.0

    def set(self, value: float, **labels: str) -> None:
        """Set the series named by ``labels`` to ``value``."""
        self._values[self._key(labels)] = float(value)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        """Add ``amount`` to the series named by ``labels``."""
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0.0) + amount

    def dec(self, amount: float = 1.0, **labels: str) -> None:
        """Subtract ``amount`` from the series named by ``labels``."""
        self.inc(-amount, **labels)

    def clear(self) -> None:
        """Forget every labelled series (before setting the current ones again)."""
        if self.labelnames:
            self._values.clear()

    def set_function(self, function: Callable[[], float] | None) -> None:
        """Read the (unlabelled) value from ``function`` at exposition time; None detaches.

        Raises:
            ValueError: on a gauge with labels.
        """
        if self.labelnames:
            raise ValueError(f"{self.name}: set_function needs a gauge without labels")
        self._function = function

    def value(self, **labels: str) -> float:
        """The current value of one series (the callback's, when one is attached)."""
        key = self._key(labels)
        if self._function is not None:
            return float(self._function())
        return self._values.get(key, 0.0)

    def samples(self) -> list[str]:
        """One line per series; a failing callback is exposed as NaN, never raised."""
        if self._function is not None:
            try:
                value = float(self._function())
            except Exception:  # a scrape must not fail because one source is broken
                value = math.nan
            return [f"{self.name} {format_value(value)}"]
        return [
            f"{self.name}{_label_text(list(zip(self.labelnames, key, strict=True)))} "
            f"{format_value(value)}"
            for key, value in self._values.items()
        ]


class _HistogramSeries:
    __slots__ = ("counts", "sum")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size
        self.sum = 0.0


class Histogram(Metric):
    """Observations counted into cumulative buckets, with their sum and count."""

    type_name = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float],
    ) -> None:
        super().__init__(name, documentation, labelnames)
        bounds = [float(b) for b in buckets]
        if not bounds or any(math.isnan(b) for b in bounds):
            raise ValueError(f"{name}: buckets must be non-empty numbers")
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ValueError(f"{name}: buckets must be strictly increasing, got {bounds}")
        if not math.isinf(bounds[-1]):
            bounds.append(math.inf)
        self.buckets: tuple[float, ...] = tuple(bounds)
        self._series: dict[tuple[str, ...], _HistogramSeries] = {}
        if not self.labelnames:
            self._series[()] = _HistogramSeries(len(self.buckets))

    @staticmethod
    def _reserved_labels() -> tuple[str, ...]:
        return ("le",)

    def observe(self, value: float, **labels: str) -> None:
        """Count ``value`` into its bucket of the series named by ``labels``.

        Raises:
            ValueError: a NaN value, or labels that are not exactly the declared ones.
        """
        if math.isnan(value):
            raise ValueError(f"{self.name}: cannot observe NaN")
        key = self._key(labels)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _HistogramSeries(len(self.buckets))
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                series.counts[index] += 1
                break
        series.sum += value

    def count(self, **labels: str) -> int:
        """How many values the series has observed."""
        series = self._series.get(self._key(labels))
        return sum(series.counts) if series else 0

    def samples(self) -> list[str]:
        """``_bucket`` lines (cumulative, ``le`` last), then ``_sum`` and ``_count``."""
        lines = []
        for key, series in self._series.items():
            pairs = list(zip(self.labelnames, key, strict=True))
            cumulative = 0
            for bound, count in zip(self.buckets, series.counts, strict=True):
                cumulative += count
                labels = _label_text([*pairs, ("le", format_value(bound))])
                lines.append(f"{self.name}_bucket{labels} {format_value(cumulative)}")
            lines.append(f"{self.name}_sum{_label_text(pairs)} {format_value(series.sum)}")
            lines.append(f"{self.name}_count{_label_text(pairs)} {format_value(cumulative)}")
        return lines


class Registry:
    """An ordered set of metric families and their joint exposition."""

    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}

    def register(self, metric: Metric) -> Metric:
        """Add ``metric``; returns it.

        Raises:
            ValueError: a metric of that name is already registered.
        """
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name!r} is already registered")
        self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> Counter:
        """Create and register a Counter."""
        metric = Counter(name, documentation, labelnames)
        self.register(metric)
        return metric

    def gauge(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> Gauge:
        """Create and register a Gauge."""
        metric = Gauge(name, documentation, labelnames)
        self.register(metric)
        return metric

    def histogram(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float],
    ) -> Histogram:
        """Create and register a Histogram."""
        metric = Histogram(name, documentation, labelnames, buckets=buckets)
        self.register(metric)
        return metric

    def exposition(self) -> str:
        """The whole registry in Prometheus text format 0.0.4."""
        return "".join(metric.exposition() for metric in self._metrics.values())


class RecorderMetrics:
    """The metrics asterisk-recorder exports, on a registry of their own.

    Attributes:
        calls_active: consent flows in progress (ARI and AGI).
        decisions: decisions by ``outcome``, ``mode`` and ``driver`` (``ari`` | ``agi``).
        flow_seconds: time from the call being offered to the decision.
        reaction_seconds: time from an event received to the REST request (or AGI command) sent.
        ari_reconnects: WebSocket reconnections by ``server``.
        ari_rest_errors: failed ARI REST requests by ``server`` and ``status`` (HTTP status,
            or ``timeout`` / ``connection``).
        ledger_spool_depth: decisions waiting in the local spool for PostgreSQL.
        agi_sessions_active: open FastAGI sessions.
        calls_crashed: calls ended fail-closed by an unexpected error, by error type.
        call_fates: what happened to channels after their decision, by fate and driver
            (``hand_back_failed`` means a caller was left for the sweep).
        agi_peers_refused: FastAGI connections refused by the peer allowlist (no label: a
            scan must not create a series per address).
        checkpoint_witness_delivered_size: tree size of the newest checkpoint each witness
            holds, by ``witness`` (its public label, e.g. ``dir:/srv/witness``).
        checkpoint_witness_failures: failed checkpoint deliveries, by witness.
        checkpoint_witness_lag_seconds: seconds since the oldest checkpoint not yet delivered to
            a witness was offered (0 when up to date), by witness.
        checkpoint_witness_superseded: undelivered checkpoints dropped for newer ones because a
            witness's backlog was full, by witness.
        ledger_tree_size / checkpoint_size: entries the Merkle tree covers, and the size of the
            newest signed checkpoint.
        checkpoint_uncovered_seconds: how long the oldest entry no checkpoint covers has waited.
        checkpoint_failures: checkpoint cycles that failed since start.
        pauses_active / pause_alerts: recordings paused now; pause alerts since start.

    It implements ``ledger.witness.WitnessMetrics`` (``witness_delivered``, ``witness_failed``,
    ``witness_lag``, ``witness_superseded``), so the ledger reports without importing ops.
    """

    def __init__(self) -> None:
        self.registry = Registry()
        self.calls_active = self.registry.gauge(
            "asterisk_recorder_calls_active", "Consent flows in progress."
        )
        self.decisions = self.registry.counter(
            "asterisk_recorder_decisions_total",
            "Consent decisions stored, by outcome, mode and driver.",
            ("outcome", "mode", "driver"),
        )
        self.flow_seconds = self.registry.histogram(
            "asterisk_recorder_flow_seconds",
            "Seconds from the call being offered to the consent decision.",
            buckets=FLOW_BUCKETS,
        )
        self.reaction_seconds = self.registry.histogram(
            "asterisk_recorder_reaction_seconds",
            "Seconds from an Asterisk event received to the request it causes being sent.",
            buckets=REACTION_BUCKETS,
        )
        self.ari_reconnects = self.registry.counter(
            "asterisk_recorder_ari_reconnects_total",
            "ARI WebSocket reconnections, by server.",
            ("server",),
        )
        self.ari_rest_errors = self.registry.counter(
            "asterisk_recorder_ari_rest_errors_total",
            "Failed ARI REST requests, by server and status.",
            ("server", "status"),
        )
        self.ledger_spool_depth = self.registry.gauge(
            "asterisk_recorder_ledger_spool_depth",
            "Decisions in the local spool waiting for PostgreSQL.",
        )
        self.agi_sessions_active = self.registry.gauge(
            "asterisk_recorder_agi_sessions_active", "Open FastAGI sessions."
        )
        self.calls_crashed = self.registry.counter(
            "asterisk_recorder_calls_crashed_total",
            "Calls ended fail-closed by an unexpected error, by error type.",
            ("error",),
        )
        self.call_fates = self.registry.counter(
            "asterisk_recorder_call_fates_total",
            "What happened to channels after their decision, by fate and driver.",
            ("fate", "driver"),
        )
        self.agi_peers_refused = self.registry.counter(
            "asterisk_recorder_agi_peers_refused_total",
            "FastAGI connections refused because the peer is not in agi.allowed_peers.",
        )
        self.checkpoint_witness_delivered_size = self.registry.gauge(
            "asterisk_recorder_checkpoint_witness_delivered_size",
            "Tree size of the newest signed checkpoint delivered to each witness.",
            ("witness",),
        )
        self.checkpoint_witness_failures = self.registry.counter(
            "asterisk_recorder_checkpoint_witness_failures_total",
            "Failed checkpoint deliveries, by witness.",
            ("witness",),
        )
        self.checkpoint_witness_lag_seconds = self.registry.gauge(
            "asterisk_recorder_checkpoint_witness_lag_seconds",
            "Seconds since the oldest checkpoint not yet delivered to a witness was offered.",
            ("witness",),
        )
        self.checkpoint_witness_superseded = self.registry.counter(
            "asterisk_recorder_checkpoint_witness_superseded_total",
            "Undelivered checkpoints dropped for newer ones (witness backlog full), by witness.",
            ("witness",),
        )
        self.ledger_tree_size = self.registry.gauge(
            "asterisk_recorder_ledger_tree_size",
            "Ledger entries the Merkle tree covers (as this controller last grew or saw it).",
        )
        self.checkpoint_size = self.registry.gauge(
            "asterisk_recorder_checkpoint_size",
            "Tree size of the newest signed checkpoint this controller saw.",
        )
        self.checkpoint_uncovered_seconds = self.registry.gauge(
            "asterisk_recorder_checkpoint_uncovered_seconds",
            "Seconds the oldest ledger entry not covered by a signed checkpoint has waited.",
        )
        self.checkpoint_failures = self.registry.gauge(
            "asterisk_recorder_checkpoint_failures",
            "Checkpoint cycles that failed (PostgreSQL away, a gap in the chain) since start.",
        )
        self.pauses_active = self.registry.gauge(
            "asterisk_recorder_pauses_active",
            "Recordings paused now (card payments; [pause]).",
        )
        self.pause_alerts = self.registry.gauge(
            "asterisk_recorder_pause_alerts",
            "Pause alerts raised since start (a pause past pause.max_pause, a pause or resume "
            "that failed, a pause asked for an unknown call).",
        )

    def observe_decision(
        self, *, outcome: str, mode: str, driver: str, flow_seconds: float
    ) -> None:
        """Count one stored decision and its offer-to-decision time."""
        self.decisions.inc(outcome=outcome, mode=mode, driver=driver)
        self.flow_seconds.observe(flow_seconds)

    def witness_delivered(self, witness: str, size: int) -> None:
        """A checkpoint of tree size ``size`` reached ``witness``."""
        self.checkpoint_witness_delivered_size.set(float(size), witness=witness)

    def witness_failed(self, witness: str) -> None:
        """One delivery attempt to ``witness`` failed."""
        self.checkpoint_witness_failures.inc(witness=witness)

    def witness_superseded(self, witness: str, count: int) -> None:
        """``count`` undelivered checkpoints of ``witness`` were dropped for newer ones."""
        self.checkpoint_witness_superseded.inc(float(count), witness=witness)

    def witness_lag(self, witness: str, seconds: float) -> None:
        """How far behind ``witness`` is, in seconds."""
        self.checkpoint_witness_lag_seconds.set(seconds, witness=witness)

    def exposition(self) -> str:
        """All product metrics in Prometheus text format 0.0.4."""
        return self.registry.exposition()
